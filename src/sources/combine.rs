//! Partial aggregation in the decode pool: when a file source feeds nothing but an
//! `aggregate` that counts and sums by one field and emits at the end, the parse workers fold
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
//! `MAX_COMBINED` lines folded over the life of the state, no sum can leave `i64`, so no
//! key's sum ever becomes a float (whose rounding would depend on order).

use super::flat_json::{scan_fields, Scalar};
use super::formats::trim_ascii;
use crate::value::Str;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// What a worker computes per line, for each of the aggregate's functions in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Count,
    /// The sum of the field at this position in `CombineSpec::fields`.
    Sum(usize),
}

/// The aggregate a source folds for: its key field and functions.
#[derive(Debug, Clone)]
pub struct CombineSpec {
    /// The key field first, then each summed field once.
    pub fields: Vec<Str>,
    /// Bit `n` set when some field name is `n` bytes long (see `flat_json::parse_flat`).
    pub lens: u64,
    pub ops: Vec<Op>,
}

impl CombineSpec {
    /// `key` and each sum's field are top-level field names; `ops` refers to sums by name.
    pub fn new(key: &Str, funcs: &[Option<Str>]) -> CombineSpec {
        let mut fields = vec![key.clone()];
        let ops = funcs
            .iter()
            .map(|f| match f {
                None => Op::Count,
                Some(name) => Op::Sum(match fields.iter().position(|x| x == name) {
                    Some(i) => i,
                    None => {
                        fields.push(name.clone());
                        fields.len() - 1
                    }
                }),
            })
            .collect();
        let lens = fields
            .iter()
            .filter(|f| f.len() < 64)
            .fold(0u64, |m, f| m | 1 << f.len());
        CombineSpec { fields, lens, ops }
    }
}

/// Lines folded over the life of a state before combining stops for good: with every summed
/// value below 2^32, no sum of this many lines reaches 2^63.
pub const MAX_COMBINED: u64 = 1 << 31;
/// Lines per epoch at most, so an epoch always fits in what is left of `MAX_COMBINED`.
pub const EPOCH_LINES: u64 = 1 << 24;
/// Keys a worker's table may hold before the source ends the epoch (bounds their memory).
pub const TABLE_KEYS: usize = 1 << 16;
/// The largest value a line may add to a sum (see `MAX_COMBINED`).
const MAX_VALUE: i64 = (1 << 32) - 1;

/// One worker's running counts and sums per key.
#[derive(Debug, Clone, Default)]
pub struct Table {
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    pub keys: Vec<Str>,
    /// `ops.len()` values per key, in key order.
    pub vals: Vec<i64>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The values of `key`, added (zeroed) if new.
    #[inline(always)]
    fn row(&mut self, key: &str, width: usize) -> &mut [i64] {
        let h = self.hasher.hash_one(key);
        let Table {
            index,
            hasher,
            keys,
            vals,
        } = self;
        let r = match index.entry(
            h,
            |&r| keys[r as usize].as_str() == key,
            |&r| hasher.hash_one(keys[r as usize].as_str()),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get() as usize,
            hashbrown::hash_table::Entry::Vacant(e) => {
                let r = keys.len();
                e.insert(r as u32);
                keys.push(Str::new(key));
                vals.resize(vals.len() + width, 0);
                r
            }
        };
        &mut vals[r * width..(r + 1) * width]
    }
}

/// What a worker reports for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Every line was folded: how many, over how many bytes, and whether the worker's table
    /// is full enough that the epoch should end.
    Folded {
        lines: u64,
        bytes: usize,
        full: bool,
    },
    /// A line could not be folded: the epoch must be read again record by record.
    Irregular,
}

/// Folds the lines of `bytes[start..end]` (ending at a newline or the end of the mapping)
/// into `table`. On `Irregular` the table holds part of the job and must be thrown away.
pub fn fold_range(
    bytes: &[u8],
    start: usize,
    end: usize,
    spec: &CombineSpec,
    table: &mut Table,
) -> Ack {
    let width = spec.ops.len();
    let mut slots: Vec<Option<Scalar<'_>>> = vec![None; spec.fields.len()];
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
        if !fold_line(line, spec, width, &mut slots, table) {
            return Ack::Irregular;
        }
    }
    Ack::Folded {
        lines,
        bytes: end - start,
        full: table.len() >= TABLE_KEYS,
    }
}

/// Folds one line (trimmed as `decode_jsonl` trims it); false when it is irregular.
#[inline(always)]
fn fold_line<'a>(
    line: &'a [u8],
    spec: &CombineSpec,
    width: usize,
    slots: &mut [Option<Scalar<'a>>],
    table: &mut Table,
) -> bool {
    slots.iter_mut().for_each(|s| *s = None);
    if line.is_empty() || scan_fields(line, &spec.fields, spec.lens, slots).is_none() {
        return false;
    }
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
    let row = table.row(key, width);
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

    fn spec() -> CombineSpec {
        CombineSpec::new(
            &Str::new("user"),
            &[None, Some(Str::new("bytes")), Some(Str::new("bytes"))],
        )
    }

    fn fold(text: &str) -> (Ack, Table) {
        let mut t = Table::default();
        let ack = fold_range(text.as_bytes(), 0, text.len(), &spec(), &mut t);
        (ack, t)
    }

    #[test]
    fn counts_and_sums_per_key_in_order_of_first_sight() {
        let text = "{\"user\":\"b\",\"bytes\":5}\n{\"bytes\":7,\"user\":\"a\"}\n  {\"user\":\"b\",\"x\":[1]}  \r\n{\"user\":\"b\",\"bytes\":null}";
        let (ack, t) = fold(text);
        // The nested array is not a flat line: irregular.
        assert_eq!(ack, Ack::Irregular);
        let text = "{\"user\":\"b\",\"bytes\":5}\n{\"bytes\":7,\"user\":\"a\"}\n  {\"user\":\"b\"}  \r\n{\"user\":\"b\",\"bytes\":null}";
        let (ack2, t2) = fold(text);
        assert_eq!(
            ack2,
            Ack::Folded {
                lines: 4,
                bytes: text.len(),
                full: false
            }
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
        assert!(matches!(ack, Ack::Folded { lines: 1, .. }));
    }

    #[test]
    fn a_full_table_asks_for_the_epoch_to_end() {
        let mut text = String::new();
        for i in 0..TABLE_KEYS {
            text.push_str(&format!("{{\"user\":\"{i}\"}}\n"));
        }
        let (ack, t) = fold(&text);
        assert_eq!(t.len(), TABLE_KEYS);
        assert!(matches!(ack, Ack::Folded { full: true, .. }));
    }
}
