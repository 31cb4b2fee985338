//! The `file` source: one file, a glob of files in name order, or stdin; JSON lines, CSV, TSV
//! or plain lines. It knows the exact byte offset after every record, and identifies each file
//! by device, inode and a CRC32 of its first bytes, so a checkpoint can say precisely where to
//! continue even after the file was renamed.
//!
//! This file holds the source's settings, its state in a checkpoint and the read loop over
//! the files; the rooms beside it each do one part, as `impl FileSource` blocks over the
//! source or as types of their own it holds:
//! - `discovery`, `rotation`: which files, in which order, and which is which after rotation;
//! - `open`, `fingerprint`: opening the current file, and knowing it again;
//! - `reader`, `stdin`: bytes of the open input (mapped, streamed, `.gz`, a pipe);
//! - `lines`, `csv`, `csv_rows`: records from line formats and from CSV/TSV;
//! - `decode_pool`, `prefilter`, `fold`: the parse workers, and what they do beyond parsing.

mod csv;
mod csv_rows;
#[cfg(test)]
mod csv_tests;
mod decode_pool;
mod discovery;
mod fingerprint;
mod fold;
mod linebuf;
mod lines;
mod open;
mod prefilter;
mod reader;
pub mod rotation;
mod stdin;

use self::csv_rows::{CsvLayout, CsvRow};
use self::decode_pool::{DecodePool, DecodedLines, Folding};
pub use self::decode_pool::{JobBytes, POOL_JOB_BYTES};
use self::reader::{CsvState, Reader};
use self::rotation::is_gz;
pub use self::rotation::FileState;
pub use self::stdin::StdinState;
use super::folding::FoldSpec;
use super::{ReadStatus, Source};
use crate::error::Error;
use crate::pipeline::spec::{AtEnd, Format};
use crate::runtime::context::Context;
use crate::runtime::message::Origin;
use crate::runtime::stage::{Output, StageResult, Stop};
use crate::value::Str;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_FINGERPRINT_BYTES: usize = 1024;

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct FileSourceState {
    #[serde(default)]
    pub files: Vec<FileState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<StdinState>,
    /// Lines folded by the parse workers so far, while every line of the state's life was
    /// (see `folding`); absent once one was not, and in checkpoints from before folding.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "combined")]
    pub folded: Option<u64>,
    /// Folding for a window: the largest event time folded, which the window's watermark
    /// follows (see `folding`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "combined_max_time"
    )]
    pub folded_max_time: Option<i64>,
}

pub struct FileSourceSettings {
    pub node: usize,
    pub pattern: String,
    pub path: PathBuf,
    pub format: Format,
    pub at_end: AtEnd,
    pub infer_types: bool,
    pub fingerprint_bytes: usize,
    /// Fields the pipeline reads, as paths of keys (jsonl builds only these); `None`: all.
    pub fields: Option<Vec<Vec<Str>>>,
    /// Parse JSON lines of inputs that are not mapped on a parse worker as well (when there
    /// are cores to spare).
    pub parallel_parse: bool,
    /// Threads that decode JSON lines and CSV rows of mapped files ahead of the read position
    /// (0: none).
    pub parse_threads: usize,
    /// Bytes per job of those threads, the least and the most (`JobBytes::USUAL`; tests fix
    /// one size).
    pub job_bytes: JobBytes,
    /// The `filter` that is this source's only consumer (its expression, its graph node), when
    /// it is pure: the decode pool's workers drop the records it would drop (see
    /// `decode_range` and `runtime::plan::filter_pushdown`).
    pub pushdown: Option<(crate::expr::Expr, usize)>,
    /// The `aggregate` that is this source's only consumer, when the parse workers can fold
    /// lines for it (see `folding` and `runtime::plan::fold_pushdown`).
    pub folding: Option<Arc<FoldSpec>>,
}

pub struct FileSource {
    s: FileSourceSettings,
    ctx: Arc<Context>,
    files: Vec<FileState>,
    stdin: Option<StdinState>,
    /// Index into `files` of the open file (or 0 for stdin).
    cur: usize,
    reader: Option<Reader>,
    csv: Option<CsvState>,
    header: Option<Vec<Str>>,
    total: Option<u64>,
    last_scan: std::time::Instant,
    /// Records read since the last pass over the files began (follow).
    pass_progress: bool,
    projector: Option<crate::value::Projector>,
    pool: Option<DecodePool>,
    /// Decoded lines of the pool's oldest finished job not yet emitted.
    ready: DecodedLines,
    /// The same for CSV rows.
    csv_ready: std::vec::IntoIter<CsvRow>,
    /// The pushed-down filter kept every record of `ready` (or `csv_ready`) when the workers
    /// ran it: they go out with `Output::push_judged`.
    ready_judged: bool,
    /// The open file's header with what the pipeline reads of its rows, once known (reset
    /// with `header`).
    csv_layout: Option<Arc<CsvLayout>>,
    /// Folding lines for the aggregate downstream (see `folding`), while it may.
    folding: Option<Folding>,
    /// The open plain file, for its tail fingerprint (see `note_tail`).
    open_file: Option<File>,
    /// The open file's mapping, registered so that a truncation under it is survived (see
    /// `sigbus`).
    map_guard: Option<crate::sources::sigbus::Guard>,
}

/// How often `follow` looks for new, rotated and grown files while idle.
const SCAN_EVERY: Duration = Duration::from_millis(250);

impl FileSource {
    pub fn new(
        s: FileSourceSettings,
        ctx: Arc<Context>,
        restored: Option<FileSourceState>,
    ) -> Result<FileSource, Error> {
        let mut src = FileSource {
            s,
            ctx,
            files: Vec::new(),
            stdin: None,
            cur: 0,
            reader: None,
            csv: None,
            header: None,
            total: None,
            last_scan: std::time::Instant::now(),
            pass_progress: false,
            projector: None,
            pool: None,
            ready: Vec::new().into_iter().zip(Vec::new()),
            csv_ready: Vec::new().into_iter(),
            ready_judged: false,
            csv_layout: None,
            folding: None,
            open_file: None,
            map_guard: None,
        };
        // Folding resumes only from a state that was folded all its life (an older
        // checkpoint, or one made record by record, may hold float sums that folding would
        // add to in another order).
        let (folded, max_time) = match &restored {
            None => (Some(0), None),
            Some(r) => (r.folded, r.folded_max_time),
        };
        if let (Some(spec), Some(folded)) = (&src.s.folding, folded) {
            // A window's watermark follows the largest time folded, which a state that folded
            // lines for a window always records.
            let known = spec.window.is_none() || folded == 0 || max_time.is_some();
            if known
                && src.s.pattern != "-"
                && matches!(src.s.format, Format::Jsonl | Format::Csv | Format::Tsv)
                && src.s.at_end == AtEnd::Finish
                && src.s.parse_threads > 0
            {
                src.folding = Some(Folding {
                    spec: spec.clone(),
                    folded,
                    max_time,
                    lines: 0,
                    file_lines: 0,
                    bytes: 0,
                    late: 0,
                    epoch_max_time: max_time,
                    epoch_limit: crate::sources::folding::FIRST_EPOCH_LINES,
                });
            }
        }
        src.projector = src.s.fields.as_deref().map(crate::value::Projector::new);
        if src.s.pattern == "-" {
            src.stdin = Some(restored.and_then(|r| r.stdin).unwrap_or_default());
            src.register("<stdin>");
            return Ok(src);
        }
        let resumed = restored.is_some();
        src.files = restored.map(|r| r.files).unwrap_or_default();
        for f in &src.files {
            let name = f.path.clone();
            src.register(&name);
        }
        src.scan(!resumed)?;
        src.total = Some(src.files.iter().filter(|f| !f.gone).map(|f| f.size).sum());
        Ok(src)
    }

    fn name(&self) -> String {
        self.ctx.names[self.s.node].clone()
    }

    fn register(&self, name: &str) {
        if let Some(Some(info)) = self.ctx.sources.get(self.s.node) {
            if let Ok(mut f) = info.files.write() {
                f.push(name.to_string());
            }
        }
    }

    /// The newest file, the one a writer may be in the middle of.
    fn is_last_file(&self) -> bool {
        self.s.pattern == "-" || !self.files[self.cur + 1..].iter().any(|f| !f.gone)
    }

    /// Position bookkeeping after consuming through the reader's current offset.
    fn note_position(&mut self, lines: u64) {
        let Some(r) = &self.reader else { return };
        if let Some(st) = &mut self.stdin {
            // The CRC of what was consumed is finalised at snapshots, not per line.
            st.consumed = r.offset;
            st.line += lines;
        } else if let Some(f) = self.files.get_mut(self.cur) {
            f.offset = r.offset;
            f.line += lines;
        }
    }

    fn current_line(&self) -> u64 {
        match &self.stdin {
            Some(s) => s.line,
            None => self.files.get(self.cur).map(|f| f.line).unwrap_or(0),
        }
    }

    fn origin(&self, line: u64, offset: u64) -> Origin {
        Origin {
            source: self.s.node as u32,
            file: if self.stdin.is_some() {
                0
            } else {
                self.cur as u32
            },
            line,
            offset,
        }
    }

    /// Counts records the pushed-down filter dropped as this source's output and the filter's
    /// input, so `--stats` reads the same as without the pushdown.
    fn count_dropped(&self, n: usize) {
        if let (Some((_, node)), true) = (&self.s.pushdown, n > 0) {
            self.ctx.stats[self.s.node].add_out(n);
            self.ctx.stats[*node].add_in(n);
        }
    }

    /// Moves the read position past `lines` lines of `bytes` bytes, all emitted (a last CSV
    /// row without its newline moves no line).
    fn advance(&mut self, lines: u64, bytes: usize) {
        if bytes == 0 {
            return;
        }
        if let Some(r) = self.reader.as_mut() {
            r.consume(bytes);
        }
        self.note_position(lines);
    }

    fn file_is_bad(&self) -> bool {
        match &self.stdin {
            Some(st) => st.bad,
            None => self.files.get(self.cur).is_some_and(|f| f.bad),
        }
    }

    /// The open file as a whole is bad input, at the read position: one record to
    /// `on_error` (under `fail` the run stops with exit 3, naming the file), and the rest of
    /// the file is never read, in this run or a resumed one.
    fn bad_file(&mut self, why: &str, raw: Option<&[u8]>, out: &mut Output) -> StageResult {
        let offset = self.reader.as_ref().map_or_else(
            || {
                self.csv
                    .as_ref()
                    .map_or(0, |c| c.base + c.reader.position().byte())
            },
            |r| r.offset,
        );
        let origin = self.origin(self.current_line() + 1, offset);
        self.bad_file_at(origin, why, raw, out)
    }

    fn bad_file_at(
        &mut self,
        origin: Origin,
        why: &str,
        raw: Option<&[u8]>,
        out: &mut Output,
    ) -> StageResult {
        let what = if self.stdin.is_some() {
            "stdin".to_string()
        } else {
            let name = self.files.get(self.cur).map_or("", |f| f.path.as_str());
            if is_gz(name) {
                "this gzip file (empty, truncated or not gzip)".to_string()
            } else {
                "this file".to_string()
            }
        };
        out.bad(origin, &format!("{what} {why}"), raw, None)?;
        match &mut self.stdin {
            Some(st) => st.bad = true,
            None => {
                if let Some(f) = self.files.get_mut(self.cur) {
                    f.bad = true;
                }
            }
        }
        Ok(())
    }
}

fn io_stop(s: &FileSourceSettings, e: std::io::Error) -> Stop {
    Stop::Failed(Error::runtime(format!(
        "reading {}: {e}",
        if s.pattern == "-" {
            "stdin".to_string()
        } else {
            s.path.display().to_string()
        }
    )))
}

impl Source for FileSource {
    fn read(&mut self, n: usize, out: &mut Output) -> StageResult<(usize, ReadStatus)> {
        let mut total = 0;
        let stdin = self.s.pattern == "-";
        loop {
            if self.reader.is_none() && self.csv.is_none() {
                if !stdin && self.cur >= self.files.len() {
                    // A pass over every file is done.
                    if self.s.at_end != AtEnd::Follow {
                        return Ok((total, ReadStatus::Eof));
                    }
                    // Only this pass counts: records of an earlier pass in the same call
                    // must not make a quiet pass look busy.
                    let progressed = self.pass_progress;
                    self.pass_progress = false;
                    self.cur = 0;
                    if !progressed {
                        if self.last_scan.elapsed() >= SCAN_EVERY {
                            self.scan(false)?;
                        }
                        return Ok((total, ReadStatus::Idle));
                    }
                    if total >= n {
                        return Ok((total, ReadStatus::More));
                    }
                    continue;
                }
                if !self.open_current()? {
                    return Ok((total, ReadStatus::Eof));
                }
                if self.reader.is_none() {
                    // The file is gone: on to the next.
                    self.cur += 1;
                    continue;
                }
            }
            let (k, status) = match self.s.format {
                Format::Jsonl | Format::Lines => self.read_lines(n - total, out)?,
                Format::Csv | Format::Tsv => self.read_csv(n - total, out)?,
            };
            total += k;
            if k > 0 {
                self.pass_progress = true;
            }
            match status {
                ReadStatus::More => return Ok((total, ReadStatus::More)),
                ReadStatus::Idle => return Ok((total, ReadStatus::Idle)),
                ReadStatus::Eof => {
                    if stdin {
                        return Ok((total, ReadStatus::Eof));
                    }
                    // On to the next file (in follow, the next pass looks again).
                    self.note_tail();
                    self.open_file = None;
                    self.cur += 1;
                    self.reader = None;
                    self.csv = None;
                    if total >= n {
                        return Ok((total, ReadStatus::More));
                    }
                }
            }
        }
    }

    fn settle(&mut self, out: &mut Output) -> StageResult<usize> {
        self.settle_epoch(out)
    }

    fn folding(&self) -> bool {
        self.folding.is_some()
    }

    /// A source that may fold feeds one aggregate that emits only at the end, or one window
    /// that feeds only sinks (`runtime::plan::fold_pushdown`), folding or not.
    fn cut_free(&self) -> bool {
        self.s.folding.is_some()
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        self.note_tail();
        // Stdin: the CRC of exactly the bytes consumed so far.
        let crc = match (&self.reader, &self.csv) {
            (Some(r), _) => r.crc.as_ref().map(|h| h.clone().finalize()),
            (None, Some(cs)) => cs.reader.get_ref().crc(),
            _ => None,
        };
        if let (Some(st), Some(c)) = (&mut self.stdin, crc) {
            st.crc = c;
        }
        let st = FileSourceState {
            files: self.files.iter().filter(|f| !f.gone).cloned().collect(),
            stdin: self.stdin.clone(),
            folded: self.folding.as_ref().map(|c| c.folded),
            folded_max_time: self.folding.as_ref().and_then(|c| c.max_time),
        };
        serde_json::to_vec(&st).map_err(|e| Error::runtime(e.to_string()))
    }

    fn total_bytes(&self) -> Option<u64> {
        self.total
    }

    fn bytes_read(&self) -> u64 {
        match &self.stdin {
            Some(st) => st.consumed,
            None => self
                .files
                .iter()
                .filter(|f| !f.gone)
                .map(|f| f.offset)
                .sum(),
        }
    }

    fn at_end(&self) -> AtEnd {
        self.s.at_end
    }
}

#[cfg(test)]
mod tests {
    use super::FileSourceState;

    /// A checkpoint written before folding had one name reads as it did: its `combined`
    /// count and time are the `folded` ones, and a new one says `folded`.
    #[test]
    fn a_state_that_says_combined_reads_as_folded() {
        let old: FileSourceState =
            serde_json::from_str(r#"{"files":[],"combined":5,"combined_max_time":7}"#).unwrap();
        assert_eq!((old.folded, old.folded_max_time), (Some(5), Some(7)));
        let new = serde_json::to_string(&old).unwrap();
        assert_eq!(new, r#"{"files":[],"folded":5,"folded_max_time":7}"#);
    }
}
