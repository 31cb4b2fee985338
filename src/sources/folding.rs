//! Folding (partial aggregation) in the decode pool: when a file source feeds nothing but an
//! `aggregate` that counts and sums by one field or path of fields and emits at the end, the parse workers fold
//! the lines into per-worker tables instead of building a record per line, and the source
//! sends the aggregate the tables instead of the records. Building, moving and freeing a
//! record per line was most of what such a job cost beyond reading the JSON.
//!
//! The result must be the one record-by-record aggregation gives, whatever the timing, so a
//! worker only folds lines whose effect does not depend on order or grouping: a string key,
//! and integers in `0..2^32` (or nothing) to sum. Everything else (a float, a bad line, a
//! nested object, a blank line) is "irregular": the source drops the tables of the epoch
//! and reads it again the ordinary way, and stays in that way for good, which the
//! checkpoint remembers. Counts and integer sums are then exact in any order: with at most
//! `MAX_FOLDED` lines folded over the life of the state, no sum can leave `i64`, so no
//! key's sum ever becomes a float (whose rounding would depend on order).
//!
//! A tumbling `window` (no allowed lateness, sinks downstream) folds the same way, per window
//! end and key. What depends on order there is lateness: a record is late when its window
//! ended at or before the watermark, the largest time before it minus `out_of_orderness`.
//! Within a job the worker knows the largest time so far, so a record late by that alone is
//! late whatever came before the job, and is only counted. Any other record is late only if
//! its window ended at or before the watermark the job starts at, which the source checks as
//! it takes the jobs back in order: the job's earliest window end must lie after it, or the
//! epoch is irregular. Which windows fire is then decided by the watermark at the epoch's end,
//! in the same order (end, then key) as record by record.

use super::flat_json::{scan_fields, scan_paths, PathTree, Scalar};
use super::formats::trim_ascii;
use crate::pipeline::spec::TimeUnit;
use crate::value::{Lens, Str};
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// What a worker computes per line, for each of the aggregate's functions in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Count,
    /// The sum of the path at this position in `FoldSpec::paths`.
    Sum(usize),
}

/// The aggregate a source folds for: its key and functions.
#[derive(Debug, Clone)]
pub struct FoldSpec {
    /// The key's path of keys first, then each summed path once (and the time's, for a
    /// window): the slots a worker reads of each line.
    pub paths: Vec<Vec<Str>>,
    /// How a worker reads those slots of a line.
    pub reader: Reader,
    pub ops: Vec<Op>,
    /// Folding for a tumbling window instead of an aggregate.
    pub window: Option<WindowFold>,
}

/// How a worker reads `FoldSpec::paths` of a line.
#[derive(Debug, Clone)]
pub enum Reader {
    /// Every path is one key: the names `scan_fields` reads (found by `lens`), and the
    /// columns of a CSV row.
    Names { names: Vec<Str>, lens: Lens },
    /// Some path is nested (`.a.b`): the tree `scan_paths` walks. JSON lines only.
    Paths(PathTree),
}

/// A tumbling window's event time and sizes, all in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFold {
    /// The time field's position in `FoldSpec::fields`.
    pub time: usize,
    pub unit: TimeUnit,
    pub size: i64,
    pub out_of_orderness: i64,
}

/// Event times a worker folds: far inside what `i64` window arithmetic can hold (about
/// 285,000 years either side of 1970). Beyond it a line is irregular.
const MAX_TIME: i64 = 1 << 53;

fn path_slot(paths: &mut Vec<Vec<Str>>, path: &[Str]) -> usize {
    match paths.iter().position(|x| x[..] == path[..]) {
        Some(i) => i,
        None => {
            paths.push(path.to_vec());
            paths.len() - 1
        }
    }
}

impl FoldSpec {
    /// `key` and each sum's argument are paths of keys (`["user"]`, `["kubernetes",
    /// "pod_name"]`); `ops` refers to sums by path. `None` when no worker could read them in
    /// one pass: an empty path, or one path a prefix of another (`.a` beside `.a.b`).
    pub fn new(key: &[Str], funcs: &[Option<Vec<Str>>]) -> Option<FoldSpec> {
        let mut paths = vec![key.to_vec()];
        let ops = funcs
            .iter()
            .map(|f| match f {
                None => Op::Count,
                Some(path) => Op::Sum(path_slot(&mut paths, path)),
            })
            .collect();
        FoldSpec {
            paths,
            reader: Reader::Names {
                names: Vec::new(),
                lens: Lens::default(),
            },
            ops,
            window: None,
        }
        .with_paths()
    }

    /// Folds for a tumbling window of `size` ms on the event time at path `time`.
    pub fn tumbling(
        mut self,
        time: &[Str],
        unit: TimeUnit,
        size: i64,
        out_of_orderness: i64,
    ) -> Option<FoldSpec> {
        let time = path_slot(&mut self.paths, time);
        self.window = Some(WindowFold {
            time,
            unit,
            size,
            out_of_orderness,
        });
        self.with_paths()
    }

    /// `reader` from `paths`.
    fn with_paths(mut self) -> Option<FoldSpec> {
        let tree = PathTree::new(&self.paths)?;
        self.reader = if self.paths.iter().all(|p| p.len() == 1) {
            let names: Vec<Str> = self.paths.iter().map(|p| p[0].clone()).collect();
            let lens = Lens::of(&names);
            Reader::Names { names, lens }
        } else {
            Reader::Paths(tree)
        };
        Some(self)
    }

    /// Whether some path is nested (`.a.b`): then only JSON lines fold.
    pub fn nested(&self) -> bool {
        matches!(self.reader, Reader::Paths(_))
    }
}

/// Lines folded over the life of a state before folding stops for good: with every summed
/// value below 2^32, no sum of this many lines reaches 2^63.
pub const MAX_FOLDED: u64 = 1 << 31;
/// Lines per epoch at most, so an epoch always fits in what is left of `MAX_FOLDED`.
pub const EPOCH_LINES: u64 = 1 << 24;
/// Lines of a run's first epoch; each epoch sent doubles the next one's, up to `EPOCH_LINES`.
/// An irregular line throws its epoch's folding away and reads the epoch again, so small
/// epochs first bound that waste by what was folded before: a window with late lines all
/// through a file (or a key that is sometimes not a string) is found out in the first few
/// thousand lines, not at the end of the file, which cost a nested window 40% more
/// instructions than never folding.
pub const FIRST_EPOCH_LINES: u64 = 1 << 13;
/// Keys a worker's table may hold before the source ends the epoch (bounds their memory).
pub const TABLE_KEYS: usize = 1 << 16;
/// The largest value a line may add to a sum (see `MAX_FOLDED`).
const MAX_VALUE: i64 = (1 << 32) - 1;

/// One worker's running counts and sums per key (per window end and key, for a window).
#[derive(Debug, Clone, Default)]
pub struct Table {
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    pub keys: Vec<Str>,
    /// Each key's window end (0 when folding for an aggregate).
    pub ends: Vec<i64>,
    /// `ops.len()` values per key, in key order.
    pub vals: Vec<i64>,
    /// The last time string read and its value: log lines carry the same one many times in a
    /// row, and comparing it costs far less than parsing it again.
    last_time: Option<(String, i64)>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The values of `key` in the window ending at `end`, added (zeroed) if new.
    #[inline(always)]
    fn row(&mut self, end: i64, key: &str, width: usize) -> &mut [i64] {
        let h = self.hasher.hash_one((end, key));
        let Table {
            index,
            hasher,
            keys,
            ends,
            vals,
            ..
        } = self;
        let r = match index.entry(
            h,
            |&r| ends[r as usize] == end && keys[r as usize].as_str() == key,
            |&r| hasher.hash_one((ends[r as usize], keys[r as usize].as_str())),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get() as usize,
            hashbrown::hash_table::Entry::Vacant(e) => {
                let r = keys.len();
                e.insert(r as u32);
                keys.push(Str::new(key));
                ends.push(end);
                vals.resize(vals.len() + width, 0);
                r
            }
        };
        &mut vals[r * width..(r + 1) * width]
    }

    /// A time string in milliseconds, as `time::TimeExpr` reads it.
    fn time_of(&mut self, s: &str) -> Option<i64> {
        if let Some((text, ms)) = &self.last_time {
            if text == s {
                return Some(*ms);
            }
        }
        let ms = crate::time::parse_rfc3339(s).ok()?;
        let last = self.last_time.get_or_insert_with(|| (String::new(), 0));
        last.0.clear();
        last.0.push_str(s);
        last.1 = ms;
        Some(ms)
    }
}

/// A job whose every line was folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Records folded (or counted late). A JSON line is one; a CSV row is one, a blank line
    /// none.
    pub lines: u64,
    /// How far the file's line count moves past the job: as `lines` for JSON lines; a CSV
    /// row counts its newlines (one may hold several, a last one without its newline none).
    pub file_lines: u64,
    pub bytes: usize,
    /// The worker's table is full enough that the epoch should end.
    pub full: bool,
    /// Window only: lines late by the job's own earlier lines (counted, not folded).
    pub late: u64,
    /// Window only: the earliest window end folded (`i64::MAX`: none), which must lie after
    /// the watermark the job starts at.
    pub min_end: i64,
    /// Window only: the largest event time read.
    pub max_time: Option<i64>,
}

/// What a worker reports for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Folded(Folded),
    /// A line could not be folded: the epoch must be read again record by record.
    Irregular,
}

/// A job being folded, record by record in file order: what `Folded` reports of it so far.
pub struct JobFold {
    lines: u64,
    late: u64,
    min_end: i64,
    max_time: Option<i64>,
}

impl Default for JobFold {
    fn default() -> Self {
        JobFold {
            lines: 0,
            late: 0,
            min_end: i64::MAX,
            max_time: None,
        }
    }
}

impl JobFold {
    /// The job's report once its last record is folded.
    pub fn done(self, file_lines: u64, bytes: usize, table: &Table) -> Folded {
        Folded {
            lines: self.lines,
            file_lines,
            bytes,
            full: table.len() >= TABLE_KEYS,
            late: self.late,
            min_end: self.min_end,
            max_time: self.max_time,
        }
    }

    /// Folds one record given by the values of `spec.paths` in it, in that order (`None`:
    /// absent); false when it is irregular, which leaves the table as it was.
    #[inline(always)]
    pub fn record(
        &mut self,
        slots: &[Option<Scalar<'_>>],
        spec: &FoldSpec,
        table: &mut Table,
    ) -> bool {
        self.lines += 1;
        fold_slots(slots, spec, table, self)
    }
}

/// Folds the lines of `bytes[start..end]` (ending at a newline or the end of the mapping)
/// into `table`. On `Irregular` the table holds part of the job and must be thrown away.
pub fn fold_range(
    bytes: &[u8],
    start: usize,
    end: usize,
    spec: &FoldSpec,
    table: &mut Table,
) -> Ack {
    let mut slots: Vec<Option<Scalar<'_>>> = vec![None; spec.paths.len()];
    let mut job = JobFold::default();
    let mut lines = 0u64;
    let mut pos = start;
    while pos < end {
        let next = match memchr::memchr(b'\n', &bytes[pos..end]) {
            Some(i) => pos + i + 1,
            None => end,
        };
        let line = trim_ascii(&bytes[pos..next]);
        pos = next;
        lines += 1;
        slots.iter_mut().for_each(|s| *s = None);
        let scanned = match &spec.reader {
            Reader::Names { names, lens } => scan_fields(line, names, lens, &mut slots),
            Reader::Paths(tree) => scan_paths(line, tree, &mut slots),
        };
        if line.is_empty() || scanned.is_none() || !job.record(&slots, spec, table) {
            return Ack::Irregular;
        }
    }
    Ack::Folded(job.done(lines, end - start, table))
}

/// Folds one record (see `JobFold::record`); false when it is irregular.
#[inline(always)]
fn fold_slots(
    slots: &[Option<Scalar<'_>>],
    spec: &FoldSpec,
    table: &mut Table,
    times: &mut JobFold,
) -> bool {
    let width = spec.ops.len();
    let Some(Scalar::Str(key)) = slots[0] else {
        return false;
    };
    // Check every value before touching the table, so an irregular line adds nothing.
    for op in &spec.ops {
        if let Op::Sum(f) = op {
            match slots[*f] {
                None | Some(Scalar::Null) => {}
                Some(Scalar::Int(i)) if (0..=MAX_VALUE).contains(&i) => {}
                _ => return false,
            }
        }
    }
    let mut window_end = 0;
    if let Some(w) = &spec.window {
        let t = match slots[w.time] {
            Some(Scalar::Str(s)) => match table.time_of(s) {
                Some(t) => t,
                None => return false,
            },
            Some(Scalar::Int(i)) => match w.unit {
                TimeUnit::S => i.saturating_mul(1000),
                TimeUnit::Ms => i,
            },
            _ => return false,
        };
        if !(-MAX_TIME..=MAX_TIME).contains(&t) {
            return false;
        }
        window_end = t.div_euclid(w.size) * w.size + w.size;
        if let Some(m) = times.max_time {
            if window_end <= m.saturating_sub(w.out_of_orderness) {
                // Late whatever came before the job: the window fired on an earlier line.
                times.late += 1;
                return true;
            }
        }
        times.max_time = Some(times.max_time.map_or(t, |m| m.max(t)));
        times.min_end = times.min_end.min(window_end);
    }
    let row = table.row(window_end, key, width);
    for (v, op) in row.iter_mut().zip(&spec.ops) {
        *v += match op {
            Op::Count => 1,
            Op::Sum(f) => match slots[*f] {
                Some(Scalar::Int(i)) => i,
                _ => 0,
            },
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FoldSpec {
        let bytes = Some(vec![Str::new("bytes")]);
        FoldSpec::new(&[Str::new("user")], &[None, bytes.clone(), bytes]).unwrap()
    }

    fn fold_for(spec: &FoldSpec, text: &str) -> (Ack, Table) {
        let mut t = Table::default();
        let ack = fold_range(text.as_bytes(), 0, text.len(), spec, &mut t);
        (ack, t)
    }

    fn fold(text: &str) -> (Ack, Table) {
        fold_for(&spec(), text)
    }

    #[test]
    fn counts_and_sums_per_key_in_order_of_first_sight() {
        let text = "{\"user\":\"b\",\"bytes\":5}\n{\"bytes\":7,\"user\":\"a\"}\n  {\"user\":\"b\",\"bytes\":[1]}  \r\n{\"user\":\"b\",\"bytes\":null}";
        let (ack, t) = fold(text);
        // A summed field that is not a number: irregular.
        assert_eq!(ack, Ack::Irregular);
        // Nested values and escapes in the fields it does not read are skipped.
        let text = "{\"user\":\"b\",\"bytes\":5}\n{\"bytes\":7,\"user\":\"a\"}\n  {\"user\":\"b\",\"x\":{\"y\":[1,\"\\\"\"]}}  \r\n{\"user\":\"b\",\"bytes\":null}";
        let (ack2, t2) = fold(text);
        assert_eq!(
            ack2,
            Ack::Folded(Folded {
                lines: 4,
                file_lines: 4,
                bytes: text.len(),
                full: false,
                late: 0,
                min_end: i64::MAX,
                max_time: None,
            })
        );
        assert_eq!(t2.keys, vec![Str::new("b"), Str::new("a")]);
        assert_eq!(t2.vals, vec![3, 5, 5, 1, 7, 7]);
        assert!(t.len() <= 2);
    }

    #[test]
    fn anything_whose_effect_depends_on_order_is_irregular() {
        for line in [
            "",
            "{\"user\":\"a\",\"bytes\":1.5}",
            "{\"user\":\"a\",\"bytes\":-1}",
            "{\"user\":\"a\",\"bytes\":4294967296}",
            "{\"user\":\"a\",\"bytes\":\"7\"}",
            "{\"user\":\"a\",\"bytes\":true}",
            "{\"user\":7,\"bytes\":1}",
            "{\"bytes\":1}",
            "{\"user\":\"a\",\"user\":\"b\"}",
            "{\"user\":\"a\\u0041\"}",
            "{\"user\":\"a\"",
            "[1]",
        ] {
            let (ack, t) = fold(&format!("{{\"user\":\"z\",\"bytes\":2}}\n{line}\n"));
            assert_eq!(ack, Ack::Irregular, "{line:?}");
            // The line before was folded; the table is thrown away by the caller.
            assert_eq!(t.keys, vec![Str::new("z")], "{line:?}");
        }
        let (ack, _) = fold("{\"user\":\"a\",\"bytes\":4294967295}\n");
        assert!(matches!(ack, Ack::Folded(Folded { lines: 1, .. })));
    }

    #[test]
    fn a_full_table_asks_for_the_epoch_to_end() {
        let mut text = String::new();
        for i in 0..TABLE_KEYS {
            text.push_str(&format!("{{\"user\":\"{i}\"}}\n"));
        }
        let (ack, t) = fold(&text);
        assert_eq!(t.len(), TABLE_KEYS);
        assert!(matches!(ack, Ack::Folded(Folded { full: true, .. })));
    }

    fn window_spec() -> FoldSpec {
        FoldSpec::new(&[Str::new("k")], &[None, Some(vec![Str::new("v")])])
            .unwrap()
            .tumbling(&[Str::new("ts")], TimeUnit::S, 10_000, 3_000)
            .unwrap()
    }

    fn fold_window(text: &str) -> (Ack, Table) {
        fold_for(&window_spec(), text)
    }

    #[test]
    fn a_window_folds_per_end_and_key_and_counts_what_its_own_lines_make_late() {
        let text = [
            r#"{"k":"a","ts":"1970-01-01T00:00:05Z","v":1}"#,
            r#"{"k":"a","ts":12,"v":2}"#,
            r#"{"k":"b","ts":"1970-01-01T00:00:11Z"}"#,
            // The watermark is 12 - 3 = 9, before the end of [0, 10): not late.
            r#"{"k":"a","ts":"1970-01-01T00:00:09Z","v":4}"#,
            // Now it is 14 - 3 = 11: 9.5 is late by the lines above.
            r#"{"k":"b","ts":"1970-01-01T00:00:14Z"}"#,
            r#"{"k":"a","ts":"1970-01-01T00:00:09.500Z","v":8}"#,
            r#"{"k":"a","ts":"1970-01-01T00:00:21+00:00","v":16}"#,
        ]
        .join("\n");
        let (ack, t) = fold_window(&text);
        let Ack::Folded(f) = ack else {
            panic!("{ack:?}")
        };
        assert_eq!(
            (f.lines, f.late, f.min_end, f.max_time),
            (7, 1, 10_000, Some(21_000))
        );
        let rows: Vec<(i64, &str, &[i64])> = t
            .ends
            .iter()
            .zip(&t.keys)
            .zip(t.vals.chunks(2))
            .map(|((e, k), v)| (*e, k.as_str(), v))
            .collect();
        assert_eq!(
            rows,
            [
                (10_000, "a", &[2, 5][..]),
                (20_000, "a", &[1, 2][..]),
                (20_000, "b", &[2, 0][..]),
                (30_000, "a", &[1, 16][..]),
            ]
        );
    }

    #[test]
    fn a_window_time_it_cannot_read_as_the_window_does_is_irregular() {
        for ts in [
            "null",
            "1.5",
            "true",
            "\"yesterday\"",
            "9007199254740993000",
            "\"1970-01-01T00:00:0\\u0031Z\"",
        ] {
            let line = format!("{{\"k\":\"a\",\"ts\":{ts}}}\n");
            assert_eq!(fold_window(&line).0, Ack::Irregular, "{ts}");
        }
        let (ack, _) = fold_window("{\"k\":\"a\"}\n");
        assert_eq!(ack, Ack::Irregular);
        // Milliseconds when the window says so.
        let spec = FoldSpec::new(&[Str::new("k")], &[None])
            .unwrap()
            .tumbling(&[Str::new("ts")], TimeUnit::Ms, 10, 0)
            .unwrap();
        let (Ack::Folded(f), t) = fold_for(&spec, "{\"k\":\"a\",\"ts\":-5}\n") else {
            panic!()
        };
        assert_eq!(
            (f.min_end, f.max_time, t.ends.clone()),
            (0, Some(-5), vec![0])
        );
    }
}
