//! The `file` source: one file, a glob of files in name order, or stdin; JSON lines, CSV, TSV
//! or plain lines. It knows the exact byte offset after every record, and identifies each file
//! by device, inode and a CRC32 of its first bytes, so a checkpoint can say precisely where to
//! continue even after the file was renamed.
//!
//! Regular files read to the end (`at_end = "finish"`) are memory-mapped: no copy, no syscall
//! per chunk. Files that may grow or be truncated underneath (`pause`, `follow`) are read with
//! `read()`, because a truncated mapping raises SIGBUS. Stdin is read on a helper thread so the
//! source can still take checkpoints and notice signals while the pipe is quiet.

use super::combine::{fold_range, Ack, CombineSpec, Folded, Table, EPOCH_LINES, MAX_COMBINED};
use super::formats::{decode_jsonl, decode_line, infer, strip_cr};
pub use super::rotation::FileState;
use super::rotation::{self, is_gz, Event, Listed};
use super::{ReadStatus, Source};
use crate::error::Error;
use crate::pipeline::spec::{AtEnd, Format};
use crate::runtime::context::Context;
use crate::runtime::message::{Origin, Partial, Record};
use crate::runtime::stage::{Output, StageResult, Stop};
use crate::value::{Map, Str, Value};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const CHUNK: usize = 1 << 20;
const BOM: &[u8] = b"\xEF\xBB\xBF";
pub const DEFAULT_FINGERPRINT_BYTES: usize = 1024;

/// Stdin in a checkpoint: bytes consumed and their CRC32, so `resume` can tell whether it is
/// being fed the same input again.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct StdinState {
    pub consumed: u64,
    pub crc: u32,
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
    /// As `FileState::bad`: the rest of stdin is read and dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bad: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct FileSourceState {
    #[serde(default)]
    pub files: Vec<FileState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<StdinState>,
    /// Lines folded by the parse workers so far, while every line of the state's life was
    /// (see `combine`); absent once one was not, and in checkpoints from before folding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined: Option<u64>,
    /// Folding for a window: the largest event time folded, which the window's watermark
    /// follows (see `combine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined_max_time: Option<i64>,
}

pub struct FileSourceSettings {
    pub node: usize,
    pub pattern: String,
    pub path: PathBuf,
    pub format: Format,
    pub at_end: AtEnd,
    pub infer_types: bool,
    pub fingerprint_bytes: usize,
    /// Top-level fields the pipeline reads (jsonl parses only these); `None`: all.
    pub fields: Option<Vec<Str>>,
    /// Parse JSON on a helper thread as well (when there are cores to spare).
    pub parallel_parse: bool,
    /// Threads that decode JSON lines of mapped files ahead of the read position (0: none).
    pub parse_threads: usize,
    /// The `filter` that is this source's only consumer (its expression, its graph node), when
    /// it is pure: the decode pool's workers drop the records it would drop (see
    /// `decode_range` and `runtime::run::filter_pushdown`).
    pub pushdown: Option<(crate::expr::Expr, usize)>,
    /// The `aggregate` that is this source's only consumer, when the parse workers can fold
    /// lines for it (see `combine` and `runtime::run::combine_pushdown`).
    pub combine: Option<Arc<CombineSpec>>,
}

/// Where bytes come from.
enum Input {
    /// Shared with the decode pool's workers, which parse lines ahead of the read position.
    Mapped(Arc<memmap2::Mmap>),
    /// A file read with `read()` (possibly through a gzip decoder).
    Stream(Box<dyn Read + Send>),
    Stdin(Receiver<std::io::Result<Vec<u8>>>),
}

/// The open input with its read-ahead buffer.
struct Reader {
    input: Input,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]` (or `map[start..]` when mapped).
    start: usize,
    end: usize,
    eof: bool,
    /// Absolute offset of `start`.
    offset: u64,
    /// Running CRC of consumed bytes (stdin only).
    crc: Option<crc32fast::Hasher>,
    /// Mapped input: bytes before this were handed back to the kernel.
    released: usize,
    /// Streams: the last consumed bytes before `buf[0]` (up to `rotation::TAIL_BYTES`), so
    /// the tail fingerprint of a `.gz` file can be taken without decompressing it again.
    kept: Vec<u8>,
    /// A plain file read as a stream (`pause`, `follow`): the same file, to check before each
    /// read that the bytes just consumed are still there (see `fill`).
    check: Option<File>,
}

/// Consumed parts of a mapped file are dropped from memory in steps of this size, so a
/// stateless pipeline's memory does not grow with the size of its input.
const RELEASE_STEP: usize = 16 << 20;

enum Fill {
    Data,
    Eof,
    Idle,
}

impl Reader {
    fn data(&self) -> &[u8] {
        match &self.input {
            Input::Mapped(m) => &m[self.start..],
            _ => &self.buf[self.start..self.end],
        }
    }

    /// Whether the file read as a stream still holds the bytes just consumed, where they were
    /// (the end of the unconsumed ones, which are in `buf` already).
    fn still_there(&self) -> bool {
        let Some(fd) = &self.check else { return true };
        let at = self.offset + (self.end - self.start) as u64;
        if fd.metadata().is_ok_and(|m| m.len() < at) {
            return false;
        }
        let v = self.last_bytes(self.end, 64);
        v.is_empty()
            || rotation::pread(fd, at - v.len() as u64, v.len() as u64).is_some_and(|b| b == v)
    }

    /// Up to `len` bytes just before `buf[upto]` (from `kept` when `buf` has fewer).
    fn last_bytes(&self, upto: usize, len: usize) -> Vec<u8> {
        let from_buf = upto.min(len);
        let from_kept = (len - from_buf).min(self.kept.len());
        let mut v = Vec::with_capacity(from_kept + from_buf);
        v.extend_from_slice(&self.kept[self.kept.len() - from_kept..]);
        v.extend_from_slice(&self.buf[upto - from_buf..upto]);
        v
    }

    /// The last `len` bytes consumed from a stream, when it has them.
    fn consumed_tail(&self, len: usize) -> Option<Vec<u8>> {
        if matches!(self.input, Input::Mapped(_)) {
            return None;
        }
        let v = self.last_bytes(self.start, len);
        (v.len() == len).then_some(v)
    }

    fn consume(&mut self, n: usize) {
        if let Some(h) = &mut self.crc {
            let s = self.start;
            h.update(&self.buf[s..s + n]);
        }
        self.start += n;
        self.offset += n as u64;
        self.release_to(self.start);
    }

    /// Hands the mapped pages before `pos` back to the kernel, in steps of `RELEASE_STEP`:
    /// the read position, or, while folding, the end of the lines folded so far.
    fn release_to(&mut self, pos: usize) {
        if let Input::Mapped(m) = &self.input {
            if pos.saturating_sub(self.released) >= RELEASE_STEP {
                let end = pos & !4095;
                // SAFETY: a read-only, file-backed mapping; these pages are behind the read
                // position (or folded already) and not needed again (records own copies of
                // their data), and if they were (an epoch read again record by record), the
                // kernel would read them back from the file.
                let _ = unsafe {
                    m.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        self.released,
                        end - self.released,
                    )
                };
                self.released = end;
            }
        }
    }

    /// A UTF-8 byte order mark at the very start of the input is no part of the data, as jq
    /// and Miller read it: it would make line 1 invalid JSON and `lines` keep U+FEFF. It is
    /// consumed like data, so offsets (and stdin's CRC) stay those of the bytes themselves.
    fn skip_bom(&mut self) {
        if self.offset == 0 && self.data().starts_with(BOM) {
            self.consume(BOM.len());
        }
    }

    /// Reads more bytes after the unconsumed ones.
    fn fill(&mut self) -> std::io::Result<Fill> {
        if matches!(self.input, Input::Mapped(_)) {
            self.eof = true;
            return Ok(Fill::Eof);
        }
        if !self.still_there() {
            // Truncated or written again in place since the last read: what the next read
            // returns would not follow what was read. The file ends here for this open; the
            // next open finds it replaced (its tail fingerprint is of the bytes consumed).
            self.eof = true;
            return Ok(Fill::Eof);
        }
        if self.start > 0 {
            let tail = rotation::TAIL_BYTES as usize;
            let from = self.start.saturating_sub(tail);
            if self.start - from < tail {
                self.kept.extend_from_slice(&self.buf[from..self.start]);
                let cut = self.kept.len().saturating_sub(tail);
                self.kept.drain(..cut);
            } else {
                self.kept.clear();
                self.kept.extend_from_slice(&self.buf[from..self.start]);
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < CHUNK / 2 {
            // A quarter more each time, not double: a line of hundreds of MB then costs at
            // most a quarter of its size in spare buffer (the record parsed from it needs as
            // much again), at the price of a few more copies while it grows.
            let grow = (self.buf.len() / 4).max(CHUNK);
            // reserve_exact: `resize` alone would double the capacity.
            self.buf.reserve_exact(grow);
            self.buf.resize(self.buf.len() + grow, 0);
        }
        match &mut self.input {
            Input::Stream(f) => {
                let n = f.read(&mut self.buf[self.end..])?;
                if n == 0 {
                    self.eof = true;
                    return Ok(Fill::Eof);
                }
                self.end += n;
                self.skip_bom();
                Ok(Fill::Data)
            }
            Input::Stdin(rx) => match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(chunk)) => {
                    if self.buf.len() - self.end < chunk.len() {
                        self.buf.resize(self.end + chunk.len(), 0);
                    }
                    self.buf[self.end..self.end + chunk.len()].copy_from_slice(&chunk);
                    self.end += chunk.len();
                    self.skip_bom();
                    Ok(Fill::Data)
                }
                Ok(Err(e)) => Err(e),
                Err(RecvTimeoutError::Timeout) => Ok(Fill::Idle),
                Err(RecvTimeoutError::Disconnected) => {
                    self.eof = true;
                    Ok(Fill::Eof)
                }
            },
            Input::Mapped(_) => Ok(Fill::Eof),
        }
    }
}

/// A sink that keeps the last `rotation::TAIL_BYTES` bytes written to it.
struct KeepTail(Vec<u8>);

impl std::io::Write for KeepTail {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let tail = rotation::TAIL_BYTES as usize;
        let b2 = &b[b.len().saturating_sub(tail)..];
        self.0.extend_from_slice(b2);
        let cut = self.0.len().saturating_sub(tail);
        self.0.drain(..cut);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Read` over the reader's unconsumed bytes, for the CSV parser.
struct CsvFeed<'a> {
    r: &'a mut Reader,
}

impl Read for CsvFeed<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let d = self.r.data();
            if !d.is_empty() {
                let n = d.len().min(out.len());
                out[..n].copy_from_slice(&d[..n]);
                self.r.consume(n);
                return Ok(n);
            }
            if self.r.eof {
                return Ok(0);
            }
            match self.r.fill()? {
                Fill::Eof => return Ok(0),
                Fill::Data | Fill::Idle => continue,
            }
        }
    }
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
    parser: Option<ParseHelper>,
    pool: Option<DecodePool>,
    /// Decoded lines of the pool's oldest finished job not yet emitted.
    ready: DecodedLines,
    /// Folding lines for the aggregate downstream (see `combine`), while it may.
    combine: Option<Combining>,
    /// The open plain file, for its tail fingerprint (see `note_tail`).
    open_file: Option<File>,
    /// The open file's mapping, registered so that a truncation under it is survived (see
    /// `sigbus`).
    map_guard: Option<super::sigbus::Guard>,
}

struct Combining {
    spec: Arc<CombineSpec>,
    /// Lines folded and sent over the life of the state.
    combined: u64,
    /// For a window: the largest event time in the lines sent.
    max_time: Option<i64>,
    /// The epoch: lines and bytes folded since the tables were last sent, from the read
    /// position (which moves only when they are sent), the late lines among them and the
    /// largest event time.
    lines: u64,
    bytes: usize,
    late: u64,
    epoch_max_time: Option<i64>,
}

impl Combining {
    /// Takes a job's report back, in the order of the jobs. False when a line of it was late
    /// for a window by the lines of the jobs before it, which the worker could not know: the
    /// epoch is then irregular.
    fn accept(&mut self, f: &Folded) -> bool {
        if let Some(w) = &self.spec.window {
            let watermark = self
                .epoch_max_time
                .map_or(i64::MIN, |m| m.saturating_sub(w.out_of_orderness));
            if f.min_end <= watermark {
                return false;
            }
            self.epoch_max_time = self.epoch_max_time.max(f.max_time);
            self.late += f.late;
        }
        self.lines += f.lines;
        self.bytes += f.bytes;
        true
    }
}

type Decoded = Result<Option<Value>, String>;
/// A job's lines (length, terminator length) with their decoded results, in order.
/// `None`: a record the pushed-down filter drops.
type DecodedLines =
    std::iter::Zip<std::vec::IntoIter<(usize, usize)>, std::vec::IntoIter<Option<Decoded>>>;

struct Job {
    bytes: Vec<u8>,
    lines: Vec<(usize, usize)>,
}

/// A thread that decodes JSON lines for the source, so parsing uses a second core.
struct ParseHelper {
    jobs: crossbeam_channel::Sender<Job>,
    results: Receiver<Vec<Decoded>>,
}

impl ParseHelper {
    fn start(projector: Option<crate::value::Projector>) -> ParseHelper {
        let (jobs, job_rx) = bounded::<Job>(1);
        let (res_tx, results) = bounded::<Vec<Decoded>>(1);
        let _ = std::thread::Builder::new()
            .name("weir:parse".into())
            .spawn(move || {
                for job in job_rx {
                    let out = decode_block(&job.bytes, 0, &job.lines, projector.as_ref());
                    if res_tx.send(out).is_err() {
                        return;
                    }
                }
            });
        ParseHelper { jobs, results }
    }
}

/// Decodes consecutive JSON lines of `bytes` starting at `start`: what the pool's workers, the
/// fork-join helper and their fallbacks all do.
fn decode_block(
    bytes: &[u8],
    start: usize,
    lines: &[(usize, usize)],
    projector: Option<&crate::value::Projector>,
) -> Vec<Decoded> {
    let mut out = Vec::with_capacity(lines.len());
    let mut pos = start;
    for &(len, term) in lines {
        out.push(decode_jsonl(&bytes[pos..pos + len], projector));
        pos += len + term;
    }
    out
}

/// The pushed-down filter's own fields, for a worker to judge a line on them alone before
/// building its record: most lines of a selective filter are dropped, and for those reading
/// a few fields without building anything costs far less than decoding the projection.
/// The filter reads no other field (`Expr::input_fields`), so on a record of just these it
/// decides as on the whole projection; only a plain `false` drops a line early, and anything
/// else (true, an error, a line the scanner leaves to sonic-rs) is decoded as before.
///
/// When most lines pass, judging them first is pure extra work (a pass-all filter ran 18%
/// slower), so a worker measures what the judging drops and stops judging for a while when it
/// drops less than a third of the lines; which lines are dropped never depends on it.
struct Prefilter {
    fields: crate::value::Projector,
    /// Reused for every line: the filter's fields of the line at hand.
    record: Value,
    /// Lines judged and dropped since the last look at the rate.
    judged: u64,
    dropped: u64,
    /// Jobs to decode without judging before judging is tried again, and how many the next
    /// rest lasts (doubling while judging keeps not paying).
    resting: u32,
    rest: u32,
}

/// Lines judged before the drop rate is looked at, and the jobs of a worker's first and
/// longest rests.
const PREFILTER_SAMPLE: u64 = 4096;
const PREFILTER_REST: u32 = 16;
const PREFILTER_REST_MAX: u32 = 1024;

impl Prefilter {
    fn new(filter: &crate::expr::Expr) -> Option<Prefilter> {
        let fields = filter.input_fields()?;
        if fields.is_empty() || fields.len() > 8 {
            return None;
        }
        Some(Prefilter {
            fields: crate::value::Projector::new(&fields),
            record: Value::Object(crate::value::Map::with_capacity(8)),
            judged: 0,
            dropped: 0,
            resting: 0,
            rest: PREFILTER_REST,
        })
    }

    /// Whether to judge the lines of the next job.
    fn judging(&mut self) -> bool {
        if self.resting > 0 {
            self.resting -= 1;
            return false;
        }
        if self.judged >= PREFILTER_SAMPLE {
            let worth = self.dropped * 3 >= self.judged;
            self.judged = 0;
            self.dropped = 0;
            if !worth {
                self.resting = self.rest;
                self.rest = (self.rest * 2).min(PREFILTER_REST_MAX);
                return false;
            }
            self.rest = PREFILTER_REST;
        }
        true
    }

    /// True when the filter drops `line` on its own fields.
    #[inline]
    fn drops(&mut self, line: &[u8], filter: &crate::expr::Expr) -> bool {
        let line = super::formats::trim_ascii(line);
        let (fields, lens) = self.fields.wanted();
        let mut slots: [Option<super::flat_json::Scalar<'_>>; 8] = [None; 8];
        let slots = &mut slots[..fields.len()];
        if line.is_empty() || super::flat_json::scan_fields(line, fields, lens, slots).is_none() {
            return false;
        }
        let Value::Object(m) = &mut self.record else {
            return false;
        };
        m.clear();
        for (f, s) in fields.iter().zip(slots.iter()) {
            if let Some(s) = s {
                m.push_unique(f.clone(), s.to_value());
            }
        }
        let drops = matches!(filter.eval_bool(&self.record), Ok(false));
        self.judged += 1;
        self.dropped += u64::from(drops);
        drops
    }
}

/// Cuts `bytes[start..end]` into lines and decodes them: what a pool worker does with a job.
/// `end` is just after a newline, or the end of the mapping (a complete file needs no newline
/// after its last line). A record the pushed-down filter rejects comes back as `None`.
fn decode_range(
    bytes: &[u8],
    start: usize,
    end: usize,
    projector: Option<&crate::value::Projector>,
    filter: Option<&crate::expr::Expr>,
    mut prefilter: Option<&mut Prefilter>,
) -> JobResult {
    let mut lines = Vec::with_capacity((end - start) / 64 + 1);
    let mut pos = start;
    while pos < end {
        match memchr::memchr(b'\n', &bytes[pos..end]) {
            Some(i) => {
                lines.push((i, 1));
                pos += i + 1;
            }
            None => {
                lines.push((end - pos, 0));
                pos = end;
            }
        }
    }
    let Some(f) = filter else {
        let results = decode_block(bytes, start, &lines, projector);
        return (lines, results.into_iter().map(Some).collect());
    };
    if !prefilter.as_mut().is_some_and(|p| p.judging()) {
        prefilter = None;
    }
    let mut results = Vec::with_capacity(lines.len());
    let mut pos = start;
    for &(len, term) in &lines {
        let line = &bytes[pos..pos + len];
        pos += len + term;
        if prefilter.as_mut().is_some_and(|p| p.drops(line, f)) {
            results.push(None);
            continue;
        }
        results.push(match decode_jsonl(line, projector) {
            // Only a plain `false` drops the record here; an error is the filter's to report,
            // so such a record goes on to it.
            Ok(Some(v)) if matches!(f.eval_bool(&v), Ok(false)) => None,
            d => Some(d),
        });
    }
    (lines, results)
}

/// JSON lines of a mapped file decoded by worker threads ahead of the read position.
///
/// The source thread cuts the mapping into jobs of about `POOL_JOB_BYTES` that end at a
/// newline, hands them out round-robin and takes the results back in the same order, so
/// records leave exactly as a single thread would emit them. The workers find the lines of
/// their job themselves: the source never reads the bytes of the file, and each byte is
/// brought into a cache once, by the core that parses it. Only decoding runs ahead:
/// positions, line numbers, bad-record handling and checkpoints advance as the source emits,
/// so a snapshot never covers a line that has not been emitted, and unemitted work is simply
/// dropped.
struct DecodePool {
    workers: Vec<PoolWorker>,
    /// Jobs handed out and not yet taken back, oldest first.
    inflight: std::collections::VecDeque<InFlight>,
    next: usize,
    /// The mapping the jobs are cut from, and the position just after the last job.
    map: Option<Arc<memmap2::Mmap>>,
    ahead: usize,
}

/// (worker, start, end in the mapping) of a job handed out.
type InFlight = (usize, usize, usize);

type JobResult = (Vec<(usize, usize)>, Vec<Option<Decoded>>);

struct PoolWorker {
    jobs: crossbeam_channel::Sender<PoolJob>,
    results: Receiver<PoolReply>,
}

/// A byte range of a mapping, ending at a newline or the end of the mapping.
struct Range {
    map: Arc<memmap2::Mmap>,
    start: usize,
    end: usize,
}

enum PoolJob {
    /// Decode the lines into records.
    Decode(Range),
    /// Fold the lines into the worker's table (see `combine`).
    Fold(Range),
    /// Hand the table over and start a new one.
    Flush,
    /// Throw the table away (the epoch is read again record by record).
    Discard,
}

enum PoolReply {
    Decoded(JobResult),
    Folded(Ack),
    Table(Table),
}

/// Bytes per job (about a thousand log lines): large enough that handing out a job costs
/// little against decoding it, small enough that the workers share the tail of a file.
const POOL_JOB_BYTES: usize = 128 << 10;
/// Jobs in flight per worker, so a worker has the next job at hand when it finishes one.
const POOL_DEPTH: usize = 2;

impl DecodePool {
    fn start(
        threads: usize,
        projector: Option<crate::value::Projector>,
        filter: Option<crate::expr::Expr>,
        combine: Option<Arc<CombineSpec>>,
    ) -> DecodePool {
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (jobs, job_rx) = bounded::<PoolJob>(POOL_DEPTH);
            let (res_tx, results) = bounded::<PoolReply>(POOL_DEPTH);
            let projector = projector.clone();
            let filter = filter.clone();
            let combine = combine.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("weir:parse{i}"))
                .spawn(move || {
                    let mut table = Table::default();
                    let mut prefilter = filter.as_ref().and_then(Prefilter::new);
                    for job in job_rx {
                        let out = match job {
                            PoolJob::Decode(j) => PoolReply::Decoded(decode_range(
                                &j.map,
                                j.start,
                                j.end,
                                projector.as_ref(),
                                filter.as_ref(),
                                prefilter.as_mut(),
                            )),
                            PoolJob::Fold(j) => PoolReply::Folded(match &combine {
                                Some(spec) => fold_range(&j.map, j.start, j.end, spec, &mut table),
                                None => Ack::Irregular,
                            }),
                            PoolJob::Flush => PoolReply::Table(std::mem::take(&mut table)),
                            PoolJob::Discard => {
                                table = Table::default();
                                continue;
                            }
                        };
                        if res_tx.send(out).is_err() {
                            return;
                        }
                    }
                });
            if spawned.is_ok() {
                workers.push(PoolWorker { jobs, results });
            }
        }
        DecodePool {
            workers,
            inflight: std::collections::VecDeque::new(),
            next: 0,
            map: None,
            ahead: 0,
        }
    }

    /// Forgets jobs cut from another mapping (their results are taken and dropped, so each
    /// worker's results stay in step with its jobs).
    fn reset(&mut self, map: &Arc<memmap2::Mmap>, start: usize) {
        if self.map.as_ref().is_some_and(|m| Arc::ptr_eq(m, map)) && self.ahead >= start {
            return;
        }
        while let Some((w, _, _)) = self.inflight.pop_front() {
            if let Some(wk) = self.workers.get(w) {
                let _ = wk.results.recv();
            }
        }
        self.map = Some(map.clone());
        self.ahead = start;
    }

    /// Hands out jobs until every worker has `POOL_DEPTH` or the mapping is all handed out:
    /// jobs to fold with `fold`, else to decode. A job that cannot be handed out (its worker is
    /// gone) is decoded here instead, or reported irregular when folding.
    fn top_up(&mut self, fold: bool) {
        let Some(map) = self.map.clone() else { return };
        // With no worker at all (none could be started), jobs are still cut, one at a time,
        // and decoded here: an empty pool must not read as the end of the file.
        let depth = self.workers.len().max(1) * POOL_DEPTH;
        while self.inflight.len() < depth && self.ahead < map.len() {
            let start = self.ahead;
            let cut = start + POOL_JOB_BYTES;
            let end = if cut >= map.len() {
                map.len()
            } else {
                memchr::memchr(b'\n', &map[cut..]).map_or(map.len(), |i| cut + i + 1)
            };
            self.ahead = end;
            let w = self.next % self.workers.len().max(1);
            self.next += 1;
            let range = Range {
                map: map.clone(),
                start,
                end,
            };
            let job = if fold {
                PoolJob::Fold(range)
            } else {
                PoolJob::Decode(range)
            };
            if self
                .workers
                .get(w)
                .is_some_and(|wk| wk.jobs.send(job).is_ok())
            {
                self.inflight.push_back((w, start, end));
            } else {
                // The worker is gone: `take` decodes this job on the source's thread.
                self.inflight.push_back((usize::MAX, start, end));
            }
        }
    }

    /// The oldest job's lines with their decoded results.
    fn take(
        &mut self,
        projector: Option<&crate::value::Projector>,
        filter: Option<&crate::expr::Expr>,
    ) -> Option<DecodedLines> {
        let (w, start, end) = self.inflight.pop_front()?;
        let (lines, results) = match self.workers.get(w).and_then(|wk| wk.results.recv().ok()) {
            Some(PoolReply::Decoded(r)) => r,
            // Decode on this thread (a worker failed): the same results, just slower.
            _ => decode_range(self.map.as_ref()?, start, end, projector, filter, None),
        };
        Some(lines.into_iter().zip(results))
    }

    /// The oldest folded job's report; `None` when nothing is in flight. A worker that is
    /// gone reports irregular, which sends the epoch down the decoding path that copes.
    fn take_ack(&mut self) -> Option<Ack> {
        let (w, _, _) = self.inflight.pop_front()?;
        match self.workers.get(w).and_then(|wk| wk.results.recv().ok()) {
            Some(PoolReply::Folded(ack)) => Some(ack),
            _ => Some(Ack::Irregular),
        }
    }

    /// Every worker's table (nothing may be in flight); `None` if a worker is gone.
    fn tables(&mut self) -> Option<Vec<Table>> {
        for wk in &self.workers {
            wk.jobs.send(PoolJob::Flush).ok()?;
        }
        let mut out = Vec::with_capacity(self.workers.len());
        for wk in &self.workers {
            match wk.results.recv() {
                Ok(PoolReply::Table(t)) => out.push(t),
                _ => return None,
            }
        }
        Some(out)
    }

    /// Drops what is in flight and every worker's table, and goes on handing out jobs from
    /// `restart` in the current mapping.
    fn discard(&mut self, restart: usize) {
        while let Some((w, _, _)) = self.inflight.pop_front() {
            if let Some(wk) = self.workers.get(w) {
                let _ = wk.results.recv();
            }
        }
        for wk in &self.workers {
            let _ = wk.jobs.send(PoolJob::Discard);
        }
        self.ahead = restart;
    }
}

/// How often `follow` looks for new, rotated and grown files while idle.
const SCAN_EVERY: Duration = Duration::from_millis(250);

struct CsvState {
    /// Bytes consumed by the CSV parser beyond the last record it returned.
    reader: csv::Reader<OwnedFeed>,
    base: u64,
    base_line: u64,
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

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
            parser: None,
            pool: None,
            ready: Vec::new().into_iter().zip(Vec::new()),
            combine: None,
            open_file: None,
            map_guard: None,
        };
        // Folding resumes only from a state that was folded all its life (an older
        // checkpoint, or one made record by record, may hold float sums that folding would
        // add to in another order).
        let (combined, max_time) = match &restored {
            None => (Some(0), None),
            Some(r) => (r.combined, r.combined_max_time),
        };
        if let (Some(spec), Some(combined)) = (&src.s.combine, combined) {
            // A window's watermark follows the largest time folded, which a state that folded
            // lines for a window always records.
            let known = spec.window.is_none() || combined == 0 || max_time.is_some();
            if known
                && src.s.pattern != "-"
                && src.s.format == Format::Jsonl
                && src.s.at_end == AtEnd::Finish
                && src.s.parse_threads > 0
            {
                src.combine = Some(Combining {
                    spec: spec.clone(),
                    combined,
                    max_time,
                    lines: 0,
                    bytes: 0,
                    late: 0,
                    epoch_max_time: max_time,
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

    /// Reconciles the known files with what the glob matches now (see `rotation`): a known
    /// file under a new name (rotation, compression, a copy) keeps its offset; a file truncated
    /// or replaced in place starts again from 0; new files join at the end in name order;
    /// files that disappeared are forgotten, with a warning if they had not been read to the end.
    fn scan(&mut self, first_run: bool) -> Result<(), Error> {
        self.last_scan = std::time::Instant::now();
        let listed: Vec<Listed> = self
            .list_files(first_run)?
            .into_iter()
            .filter_map(|p| {
                let md = std::fs::metadata(&p).ok()?;
                Some(Listed::new(p, &md))
            })
            .collect();
        let (new_files, events) =
            rotation::reconcile(&mut self.files, listed, self.s.fingerprint_bytes as u64)?;
        let name = self.name();
        for e in events {
            match e {
                Event::Renamed {
                    from,
                    to,
                    offset,
                    by_content,
                } => self.ctx.info(format!(
                    "source '{name}': {from} is now {to}{}; continuing at byte {offset}",
                    if by_content { " (same content)" } else { "" }
                )),
                Event::Replaced { path, read, lost } => {
                    let lost = if lost > 0 {
                        format!("; {lost} bytes lost (never read)")
                    } else {
                        String::new()
                    };
                    self.ctx.warn(format!(
                        "source '{name}': {path} was truncated or replaced (it had {read} bytes read{lost}); reading it again from the start"
                    ));
                }
                Event::Gone { path, lost } if lost > 0 => self.ctx.warn(format!(
                    "source '{name}': {path} disappeared before it was read to the end: {lost} bytes lost"
                )),
                Event::Gone { path, .. } => self.ctx.info(format!(
                    "source '{name}': forgetting {path}, read to the end and gone"
                )),
            }
        }
        for f in new_files {
            self.register(&f.path);
            self.files.push(f);
        }
        Ok(())
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

    fn list_files(&self, first_run: bool) -> Result<Vec<PathBuf>, Error> {
        let p = self.s.path.to_string_lossy().into_owned();
        // A path weir may not look at is not a missing file: said so, and on the first scan
        // the run stops before reading anything (exit 2); later (follow) it is a warning.
        let denied = |path: &Path, e: &std::io::Error| -> Result<Vec<PathBuf>, Error> {
            let m = format!(
                "source '{}': cannot read {}: {e}",
                self.name(),
                crate::escape::path(path)
            );
            if first_run {
                return Err(Error::usage(m));
            }
            self.ctx.warn(m);
            Ok(Vec::new())
        };
        if !is_glob(&self.s.pattern) {
            match std::fs::metadata(&self.s.path) {
                Ok(_) => return Ok(vec![self.s.path.clone()]),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return denied(&self.s.path, &e)
                }
                Err(_) => {}
            }
            // Missing on the first run is a mistake in the pipeline; later (rotation,
            // follow) it is a file that comes and goes.
            if self.s.at_end == AtEnd::Follow || !first_run {
                return Ok(Vec::new());
            }
            return Err(Error::usage(format!(
                "source '{}': input file {} does not exist",
                self.name(),
                crate::escape::text(&p)
            )));
        }
        let paths = glob::glob(&p)
            .map_err(|e| Error::usage(format!("source '{}': bad glob `{p}`: {e}", self.name())))?;
        let mut v: Vec<PathBuf> = Vec::new();
        for r in paths {
            match r {
                Ok(p) => v.push(p),
                Err(e) => return denied(e.path(), e.error()),
            }
        }
        v.retain(|p| p.is_file());
        v.sort();
        if v.is_empty() && first_run && self.s.at_end == AtEnd::Finish {
            self.ctx
                .warn(format!("source '{}': no file matches {p}", self.name()));
        }
        Ok(v)
    }

    fn open_current(&mut self) -> Result<bool, Error> {
        if self.s.pattern == "-" {
            let st = self.stdin.clone().unwrap_or_default();
            let input = open_stdin(st.consumed, &st, &self.name())?;
            let mut crc = crc32fast::Hasher::new();
            if st.consumed > 0 {
                crc = crc32fast::Hasher::new_with_initial_len(st.crc, st.consumed);
            }
            self.reader = Some(Reader {
                input,
                buf: Vec::new(),
                start: 0,
                end: 0,
                eof: false,
                offset: st.consumed,
                crc: Some(crc),
                released: 0,
                kept: Vec::new(),
                check: None,
            });
            self.header = st.header.map(|h| h.into_iter().map(Str::from).collect());
            return Ok(true);
        }
        self.open_file = None;
        self.map_guard = None;
        let Some(mut st) = self.files.get(self.cur).cloned() else {
            return Ok(false);
        };
        if st.gone || st.bad {
            return Ok(true);
        }
        // The name may now belong to another file (rotated since the last scan): check the
        // opened file itself, and if it is not the one we know, find where ours went.
        if is_fifo(&st.path) {
            // Opening a FIFO waits for a writer: that happens on a helper thread, as reading
            // stdin does, so this thread still sees signals and checkpoints meanwhile.
            self.reader = Some(Reader {
                input: Input::Stdin(read_fifo(PathBuf::from(&st.path), &self.name())?),
                buf: Vec::new(),
                start: 0,
                end: 0,
                eof: false,
                offset: st.offset,
                crc: None,
                released: 0,
                kept: Vec::new(),
                check: None,
            });
            return Ok(true);
        }
        let mut tries = 0;
        let (mut f, md) = loop {
            let f = match File::open(&st.path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if tries == 0 && (st.dev, st.ino) != (0, 0) {
                        tries += 1;
                        self.scan(false)?;
                        match self.files.get(self.cur) {
                            Some(x) if !x.gone => {
                                st = x.clone();
                                continue;
                            }
                            _ => return Ok(true),
                        }
                    }
                    // Gone between the scan and now (rotated away and deleted).
                    let unread = st.size.saturating_sub(st.offset);
                    if unread > 0 {
                        self.ctx.warn(format!(
                            "source '{}': {} disappeared before it was read to the end: {unread} bytes lost",
                            self.name(),
                            st.path
                        ));
                    }
                    self.files[self.cur].gone = true;
                    return Ok(true);
                }
                Err(e) => {
                    return Err(Error::runtime(format!(
                        "source '{}': cannot open {}: {e}",
                        self.name(),
                        st.path
                    )))
                }
            };
            let md = f
                .metadata()
                .map_err(|e| Error::runtime(format!("{}: {e}", st.path)))?;
            let known = (st.dev, st.ino) != (0, 0);
            let same = (md.dev(), md.ino()) == (st.dev, st.ino)
                && (is_gz(&st.path) || !md.is_file() || rotation::still_same(&f, md.len(), &st));
            if !known || same || tries >= 2 {
                break (f, md);
            }
            tries += 1;
            self.scan(false)?;
            match self.files.get(self.cur) {
                Some(x) if !x.gone => st = x.clone(),
                _ => return Ok(true),
            }
        };
        let path = Path::new(&st.path);
        let gz = is_gz(&st.path);
        self.open_file = if gz { None } else { f.try_clone().ok() };
        let len = md.len();
        // Remember what identifies this file as it is now. A gzip file is known by its
        // decompressed content, so it matches the plain file it was compressed from.
        {
            let fe = &mut self.files[self.cur];
            fe.dev = md.dev();
            fe.ino = md.ino();
            if !gz {
                fe.size = len;
            }
            let want = self.s.fingerprint_bytes as u64;
            if fe.fp_len < want && (gz || fe.fp_len < len) {
                let upto = if gz { want } else { want.min(len) };
                if let Some((n, crc)) = content_prefix(path, upto)? {
                    if n > fe.fp_len {
                        fe.fp_len = n;
                        fe.fp_crc = crc;
                    }
                }
            }
        }
        self.header = st
            .header
            .clone()
            .map(|h| h.into_iter().map(Str::from).collect());
        let use_map = self.s.at_end == AtEnd::Finish
            && !gz
            && md.is_file()
            && len > 0
            && !matches!(self.s.format, Format::Csv | Format::Tsv);
        let mut kept = Vec::new();
        let check = if gz || use_map {
            None
        } else {
            f.try_clone().ok()
        };
        let input = if use_map {
            // SAFETY: the file is opened read-only. If it is truncated while mapped, touching
            // a page past its new end raises SIGBUS, which `sigbus` turns into a page of zeros
            // for this registered mapping; the source stops at the new end (`shrunk_to`).
            match unsafe { memmap2::Mmap::map(&f) } {
                Ok(m) => {
                    let _ = m.advise(memmap2::Advice::Sequential);
                    self.map_guard = super::sigbus::protect(m.as_ptr(), m.len());
                    Input::Mapped(Arc::new(m))
                }
                Err(_) => Input::Stream(Box::new(f)),
            }
        } else if gz {
            let mut d: Box<dyn Read + Send> = Box::new(flate2::read::MultiGzDecoder::new(
                std::io::BufReader::with_capacity(CHUNK, f),
            ));
            // Offsets of a gzip file count decompressed bytes; the last of those skipped start
            // the reader's tail (see `note_tail`).
            let mut skip = KeepTail(Vec::new());
            let skipped = std::io::copy(&mut (&mut d).take(st.offset), &mut skip)
                .map_err(|e| Error::runtime(format!("{}: {e}", st.path)))?;
            kept = skip.0;
            if skipped < st.offset {
                return Err(Error::runtime(format!(
                    "source '{}': {} has {skipped} bytes but the checkpoint read {}",
                    self.name(),
                    st.path,
                    st.offset
                )));
            }
            Input::Stream(d)
        } else {
            if st.offset > 0 {
                // The bytes before the offset, checked against the tail fingerprint above.
                let n = st.offset.min(rotation::TAIL_BYTES);
                kept = rotation::pread(&f, st.offset - n, n).unwrap_or_default();
                f.seek(SeekFrom::Start(st.offset)).map_err(|e| {
                    Error::runtime(format!("{}: cannot seek to {}: {e}", st.path, st.offset))
                })?;
            }
            Input::Stream(Box::new(f))
        };
        let start = match &input {
            Input::Mapped(m) => (st.offset as usize).min(m.len()),
            _ => 0,
        };
        let mut reader = Reader {
            input,
            buf: Vec::new(),
            start,
            end: 0,
            eof: false,
            offset: st.offset,
            crc: None,
            released: 0,
            kept,
            check,
        };
        if matches!(reader.input, Input::Mapped(_)) {
            reader.skip_bom();
        }
        self.reader = Some(reader);
        Ok(true)
    }

    /// A mapped file that is now shorter than its mapping (truncated while `finish` reads it):
    /// its new length, with a warning the first time. Lines past it are not read: their bytes
    /// are gone (the mapping shows zeros there, see `sigbus`).
    fn shrunk_to(&mut self) -> Option<u64> {
        let Some(Input::Mapped(m)) = self.reader.as_ref().map(|r| &r.input) else {
            return None;
        };
        let mapped = m.len() as u64;
        let now = self.open_file.as_ref()?.metadata().ok()?.len();
        if now >= mapped {
            return None;
        }
        let (name, offset) = (self.name(), self.reader.as_ref().map_or(0, |r| r.offset));
        if let Some(f) = self.files.get_mut(self.cur) {
            if f.size == mapped {
                f.size = now;
                self.ctx.warn(format!(
                    "source '{name}': {} shrank from {mapped} to {now} bytes while it was read (at byte {offset}): {} bytes lost",
                    f.path,
                    mapped - now.max(offset)
                ));
            }
        }
        Some(now)
    }

    /// Records the tail fingerprint of the open file at its offset, for the next look at it.
    /// (A `.gz` file's from the decompressed bytes the reader has just consumed.)
    fn note_tail(&mut self) {
        let Some(f) = self.files.get_mut(self.cur) else {
            return;
        };
        if f.gone {
            return;
        }
        if let Some(fd) = &self.open_file {
            // The bytes the reader consumed, when it has them (the file may hold others by
            // now); else the file's own.
            let len = f.offset.min(rotation::TAIL_BYTES);
            let consumed = match &self.reader {
                Some(r) if r.offset == f.offset => r.consumed_tail(len as usize),
                _ => None,
            };
            (f.tail_len, f.tail_crc) = match consumed {
                Some(b) => (len, crc32fast::hash(&b)),
                None => rotation::tail_of(fd, f.offset).unwrap_or((0, 0)),
            };
            // A file opened empty and read as it was written has no head fingerprint yet.
            let want = (self.s.fingerprint_bytes as u64).min(f.offset);
            if f.fp_len < want {
                if let Some(b) = rotation::pread(fd, 0, want) {
                    (f.fp_len, f.fp_crc) = (b.len() as u64, crc32fast::hash(&b));
                }
            }
            return;
        }
        if !is_gz(&f.path) {
            return;
        }
        let len = f.offset.min(rotation::TAIL_BYTES);
        let tail = match &self.reader {
            Some(r) if r.offset == f.offset => r.consumed_tail(len as usize),
            _ => None,
        };
        (f.tail_len, f.tail_crc) = match tail {
            Some(b) => (len, crc32fast::hash(&b)),
            // Not at hand (CSV reads ahead): known by its head and inode only.
            None if self.reader.is_some() || self.csv.is_some() => (0, 0),
            None => (f.tail_len, f.tail_crc),
        };
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

    /// Reads line-based formats (jsonl, lines).
    fn read_lines(&mut self, n: usize, out: &mut Output) -> StageResult<(usize, ReadStatus)> {
        let mut consumed = 0usize;
        let finish = self.s.at_end == AtEnd::Finish;
        let last = self.is_last_file();
        let jsonl = self.s.format == Format::Jsonl;
        if jsonl && self.s.parse_threads > 0 {
            if let Some(Input::Mapped(m)) = self.reader.as_ref().map(|r| &r.input) {
                let m = m.clone();
                if self.combine.is_some() {
                    return self.read_folded(out, m);
                }
                return self.read_lines_pooled(n, out, m);
            }
        }
        let mut lines: Vec<(usize, usize)> = Vec::new();
        while consumed < n {
            // 1. The complete lines in the bytes at hand: (length, terminator length).
            lines.clear();
            {
                let r = self.reader.as_mut().expect("reader open");
                let data = r.data();
                let mut pos = 0;
                while lines.len() < n - consumed {
                    match memchr::memchr(b'\n', &data[pos..]) {
                        Some(i) => {
                            lines.push((i, 1));
                            pos += i + 1;
                        }
                        None => {
                            // A last line without a newline is complete when the input is
                            // over for good; when it may still grow, wait for the rest of it.
                            if pos < data.len() && r.eof && (finish || !last) {
                                lines.push((data.len() - pos, 0));
                            }
                            break;
                        }
                    }
                }
                if !lines.is_empty() {
                    // Records go out one by one: the aggregate's state is no longer all
                    // folded.
                    self.combine = None;
                }
                if lines.is_empty() {
                    if !r.eof {
                        match r.fill() {
                            Ok(Fill::Data | Fill::Eof) => continue,
                            Ok(Fill::Idle) => return Ok((consumed, ReadStatus::Idle)),
                            // A pipe that fails is no bad record: the run fails (resumable).
                            Err(e) if self.stdin.is_some() => return Err(io_stop(&self.s, e)),
                            Err(e) => {
                                self.bad_file(&format!("cannot be read: {e}"), None, out)?;
                                return Ok((consumed + 1, ReadStatus::Eof));
                            }
                        }
                    }
                    return Ok((consumed, ReadStatus::Eof));
                }
            }
            // A mapped file cut short under us: only the lines that are still in it.
            let mut cut_short = false;
            if let Some(limit) = self.shrunk_to() {
                let mut end = self.reader.as_ref().map_or(0, |r| r.offset);
                let keep = lines
                    .iter()
                    .take_while(|(l, t)| {
                        end += (l + t) as u64;
                        end <= limit
                    })
                    .count();
                cut_short = keep < lines.len();
                lines.truncate(keep);
            }
            // 2. Decode them (on two cores when there are enough).
            let results = self.decode_lines(&lines, jsonl);
            // 3. In input order: records out, bad ones to on_error, positions forward.
            for (&line, res) in lines.iter().zip(results) {
                if self.emit_line(line, res, out)? {
                    consumed += 1;
                }
            }
            if cut_short {
                return Ok((consumed, ReadStatus::Eof));
            }
        }
        Ok((consumed, ReadStatus::More))
    }

    /// Emits one decoded line at the read position and moves past it: the record, or the
    /// bad line to `on_error`. Whether it counts as an input record (blank lines do not).
    fn emit_line(
        &mut self,
        (len, term): (usize, usize),
        res: Decoded,
        out: &mut Output,
    ) -> StageResult<bool> {
        let line_no = self.current_line() + 1;
        let r = self.reader.as_mut().expect("reader open");
        let origin = Origin {
            source: self.s.node as u32,
            file: if self.stdin.is_some() {
                0
            } else {
                self.cur as u32
            },
            line: line_no,
            offset: r.offset,
        };
        match res {
            Ok(Some(value)) => {
                r.consume(len + term);
                self.note_position(1);
                out.push(Record { value, origin });
                Ok(true)
            }
            Ok(None) => {
                r.consume(len + term);
                self.note_position(1);
                Ok(false)
            }
            Err(msg) => {
                let raw = strip_cr(&r.data()[..len]).to_vec();
                r.consume(len + term);
                self.note_position(1);
                out.bad(origin, &msg, Some(&raw), None)?;
                Ok(true)
            }
        }
    }

    /// Starts the decode pool, once, with what its workers may need: the projection, the
    /// pushed-down filter and what to fold for.
    fn start_pool(&mut self) {
        if self.pool.is_none() {
            self.pool = Some(DecodePool::start(
                self.s.parse_threads,
                self.projector.clone(),
                self.s.pushdown.as_ref().map(|(e, _)| e.clone()),
                self.combine.as_ref().map(|c| c.spec.clone()),
            ));
        }
    }

    /// `read_lines` for JSON lines in a mapped file, decoded by the pool (see `DecodePool`).
    fn read_lines_pooled(
        &mut self,
        n: usize,
        out: &mut Output,
        map: Arc<memmap2::Mmap>,
    ) -> StageResult<(usize, ReadStatus)> {
        let start = self.reader.as_ref().map_or(0, |r| r.start);
        self.start_pool();
        let pool = self.pool.as_mut().expect("pool started");
        if self.ready.len() == 0 {
            pool.reset(&map, start);
        }
        // Where this file's records come from; each record adds its line and offset.
        let here = self.origin(0, 0);
        let mut consumed = 0;
        let mut dropped = 0;
        // A run of lines that decoded to records is pushed with positions computed here, and
        // the reader and file positions move once per run rather than once per line.
        let (mut run_lines, mut run_bytes) = (0u64, 0usize);
        let mut line0 = self.current_line();
        let mut off0 = self.reader.as_ref().map_or(0, |r| r.offset);
        let mut limit = self.shrunk_to();
        while consumed < n {
            let Some((line, res)) = self.ready.next() else {
                let pool = self.pool.as_mut().expect("pool started");
                pool.top_up(false);
                let filter = self.s.pushdown.as_ref().map(|(e, _)| e);
                match pool.take(self.projector.as_ref(), filter) {
                    Some(job) => self.ready = job,
                    None => {
                        self.advance(run_lines, run_bytes);
                        self.count_dropped(dropped);
                        return Ok((consumed, ReadStatus::Eof));
                    }
                }
                // Hand the next job out before emitting this one, so workers stay busy.
                pool.top_up(false);
                limit = self.shrunk_to();
                continue;
            };
            if limit.is_some_and(|l| off0 + (run_bytes + line.0 + line.1) as u64 > l) {
                // The file was cut short under us: what is past its end is gone.
                self.ready = Vec::new().into_iter().zip(Vec::new());
                self.advance(run_lines, run_bytes);
                self.count_dropped(dropped);
                return Ok((consumed, ReadStatus::Eof));
            }
            match res {
                // Dropped by the pushed-down filter: consumed, as if it had gone to the filter.
                None => {
                    run_lines += 1;
                    run_bytes += line.0 + line.1;
                    consumed += 1;
                    dropped += 1;
                }
                Some(Ok(Some(value))) => {
                    out.push(Record {
                        value,
                        origin: Origin {
                            line: line0 + run_lines + 1,
                            offset: off0 + run_bytes as u64,
                            ..here
                        },
                    });
                    run_lines += 1;
                    run_bytes += line.0 + line.1;
                    consumed += 1;
                }
                Some(res) => {
                    self.advance(run_lines, run_bytes);
                    (run_lines, run_bytes) = (0, 0);
                    if self.emit_line(line, res, out)? {
                        consumed += 1;
                    }
                    line0 = self.current_line();
                    off0 = self.reader.as_ref().map_or(0, |r| r.offset);
                }
            }
        }
        self.advance(run_lines, run_bytes);
        self.count_dropped(dropped);
        Ok((consumed, ReadStatus::More))
    }

    /// `read_lines` while folding (see `combine`): hands jobs to the pool to fold, takes one
    /// job's report per call, and sends the tables when the epoch ends (a full table, the
    /// epoch's line limit, the end of the file; checkpoints end it through `settle`). Until
    /// then it reports nothing consumed, so nothing moves but the jobs.
    fn read_folded(
        &mut self,
        out: &mut Output,
        map: Arc<memmap2::Mmap>,
    ) -> StageResult<(usize, ReadStatus)> {
        let start = self.reader.as_ref().map_or(0, |r| r.start);
        self.start_pool();
        let (Some(c), Some(pool)) = (self.combine.as_mut(), self.pool.as_mut()) else {
            return Ok((0, ReadStatus::More));
        };
        if c.lines == 0 && pool.inflight.is_empty() {
            // A new epoch, which must fit in what may still be folded (see `MAX_COMBINED`;
            // the jobs in flight when an epoch ends can add at most `EPOCH_LINES` again).
            if c.combined + 2 * EPOCH_LINES > MAX_COMBINED {
                self.stop_folding();
                return Ok((0, ReadStatus::More));
            }
            pool.reset(&map, start);
        }
        pool.top_up(true);
        match pool.take_ack() {
            None => {
                // Everything is folded: the file is done once the tables are out.
                let n = self.settle(out)?;
                if self.combine.is_none() {
                    return Ok((0, ReadStatus::More));
                }
                Ok((n, ReadStatus::Eof))
            }
            Some(Ack::Folded(f)) if c.accept(&f) => {
                self.ctx.stats[self.s.node].add_in(f.lines as usize);
                // Every job before this one was taken back already: their pages can go.
                if let Some(r) = self.reader.as_mut() {
                    r.release_to(start + c.bytes);
                }
                pool.top_up(true);
                if f.full || c.lines >= EPOCH_LINES {
                    let n = self.settle(out)?;
                    return Ok((n, ReadStatus::More));
                }
                Ok((0, ReadStatus::More))
            }
            Some(_) => {
                self.stop_folding();
                Ok((0, ReadStatus::More))
            }
        }
    }

    /// Stops folding for good: the epoch's tables are dropped and its lines are read again
    /// record by record from the read position, which has not moved since the epoch began.
    fn stop_folding(&mut self) {
        // The epoch's lines were counted as they were folded; they count again when read.
        if let Some(c) = self.combine.take() {
            self.ctx.stats[self.s.node]
                .records_in
                .fetch_sub(c.lines, std::sync::atomic::Ordering::Relaxed);
        }
        let restart = self.reader.as_ref().map_or(0, |r| r.start);
        if let Some(pool) = self.pool.as_mut() {
            pool.discard(restart);
        }
    }

    /// Ends the epoch: takes the jobs in flight, sends the workers' tables and moves the read
    /// position past the lines they hold. Returns how many input records that was (none if
    /// a line turned out irregular: then folding stops and the epoch is read again).
    fn settle_epoch(&mut self, out: &mut Output) -> StageResult<usize> {
        let (Some(c), Some(pool)) = (self.combine.as_mut(), self.pool.as_mut()) else {
            return Ok(0);
        };
        if c.lines == 0 && pool.inflight.is_empty() {
            return Ok(0);
        }
        let mut irregular = false;
        while let Some(ack) = pool.take_ack() {
            match ack {
                Ack::Folded(f) if !irregular && c.accept(&f) => {
                    self.ctx.stats[self.s.node].add_in(f.lines as usize);
                }
                _ => irregular = true,
            }
        }
        let tables = if irregular { None } else { pool.tables() };
        let Some(tables) = tables else {
            self.stop_folding();
            return Ok(0);
        };
        let (lines, bytes, late) = (c.lines, c.bytes, c.late);
        c.combined += lines;
        c.max_time = c.epoch_max_time;
        c.lines = 0;
        c.bytes = 0;
        c.late = 0;
        let max_time = c.max_time;
        self.advance(lines, bytes);
        out.send_partial(Partial {
            records: lines,
            tables,
            late,
            max_time,
        })?;
        Ok(lines as usize)
    }

    /// Counts records the pushed-down filter dropped as this source's output and the filter's
    /// input, so `--stats` reads the same as without the pushdown.
    fn count_dropped(&self, n: usize) {
        if let (Some((_, node)), true) = (&self.s.pushdown, n > 0) {
            self.ctx.stats[self.s.node].add_out(n);
            self.ctx.stats[*node].add_in(n);
        }
    }

    /// Moves the read position past `lines` lines of `bytes` bytes, all emitted.
    fn advance(&mut self, lines: u64, bytes: usize) {
        if lines == 0 {
            return;
        }
        if let Some(r) = self.reader.as_mut() {
            r.consume(bytes);
        }
        self.note_position(lines);
    }

    /// Decodes consecutive lines at the start of the unconsumed bytes. JSON parsing is the
    /// most expensive step of most pipelines, so for a large enough batch the later part is
    /// parsed by a helper thread while this one parses the rest; results come back in order.
    fn decode_lines(&mut self, lines: &[(usize, usize)], jsonl: bool) -> Vec<Decoded> {
        let r = self.reader.as_ref().expect("reader open");
        let data = r.data();
        let decode_one = |line: &[u8], p: Option<&crate::value::Projector>| -> Decoded {
            if jsonl {
                decode_jsonl(line, p)
            } else {
                decode_line(line).map(Some)
            }
        };
        let mut out = Vec::with_capacity(lines.len());
        let split = if jsonl && self.s.parallel_parse && lines.len() >= 256 {
            lines.len() * 45 / 100
        } else {
            lines.len()
        };
        let mut pos = 0;
        for &(len, term) in &lines[..split] {
            out.push(decode_one(&data[pos..pos + len], self.projector.as_ref()));
            pos += len + term;
        }
        if split == lines.len() {
            return out;
        }
        // The rest goes to the helper as one copied block (tens of kB; parsing it costs
        // far more than the copy).
        let end = pos + lines[split..].iter().map(|(l, t)| l + t).sum::<usize>();
        let job = Job {
            bytes: data[pos..end].to_vec(),
            lines: lines[split..].to_vec(),
        };
        let helper = self
            .parser
            .get_or_insert_with(|| ParseHelper::start(self.projector.clone()));
        let reply = helper
            .jobs
            .send(job)
            .ok()
            .and_then(|_| helper.results.recv().ok());
        match reply {
            Some(rest) => out.extend(rest),
            None => {
                // The helper is gone: decode here.
                let mut p = pos;
                for &(len, term) in &lines[split..] {
                    out.push(decode_one(&data[p..p + len], self.projector.as_ref()));
                    p += len + term;
                }
            }
        }
        out
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

    fn read_csv(&mut self, n: usize, out: &mut Output) -> StageResult<(usize, ReadStatus)> {
        let delim = if self.s.format == Format::Tsv {
            b'\t'
        } else {
            b','
        };
        if self.csv.is_none() {
            let r = self.reader.take().expect("reader open");
            let base = r.offset;
            let base_line = self.current_line();
            let mut r = r;
            // Stdin's CRC must cover exactly the bytes of the records returned, not the
            // parser's read-ahead: the feed hashes them once the parser is past them.
            let crc = r.crc.take();
            let boxed = OwnedFeed {
                pending_start: r.offset,
                r,
                crc,
                pending: Vec::new(),
            };
            // Records end at `\n` only (a CRLF's `\r` is taken off the last field below): with
            // its CRLF mode the csv crate places each record's start on the previous `\n`,
            // which would put every line number and offset one off.
            let reader = csv::ReaderBuilder::new()
                .delimiter(delim)
                .has_headers(false)
                .flexible(true)
                .terminator(csv::Terminator::Any(b'\n'))
                .from_reader(boxed);
            self.csv = Some(CsvState {
                reader,
                base,
                base_line,
            });
        }
        let mut consumed = 0;
        let mut rec = csv::ByteRecord::new();
        while consumed < n {
            let line_before = self.current_line();
            let file_is_bad = self.file_is_bad();
            let cs = self.csv.as_mut().expect("csv open");
            let start = cs.base + cs.reader.position().byte();
            if file_is_bad {
                // Read to the end and dropped, so stdin's position stays true.
                match cs.reader.read_byte_record(&mut rec) {
                    Ok(true) => {
                        let pos = cs.base + cs.reader.position().byte();
                        let lines = cs.base_line + cs.reader.position().line().saturating_sub(1);
                        self.set_csv_position(pos, lines);
                        continue;
                    }
                    _ => return Ok((consumed, ReadStatus::Eof)),
                }
            }
            let more = match cs.reader.read_byte_record(&mut rec) {
                Ok(m) => m,
                Err(e) if e.is_io_error() && self.stdin.is_none() => {
                    self.bad_file(&format!("cannot be read: {e}"), None, out)?;
                    return Ok((consumed + 1, ReadStatus::Eof));
                }
                Err(e) => {
                    let pos = cs.base + cs.reader.position().byte();
                    let lines = cs.base_line + cs.reader.position().line().saturating_sub(1);
                    let origin = self.origin(line_before + 1, start);
                    self.set_csv_position(pos, lines);
                    out.bad(origin, &format!("invalid CSV: {e}"), None, None)?;
                    consumed += 1;
                    continue;
                }
            };
            if !more {
                return Ok((consumed, ReadStatus::Eof));
            }
            let pos = cs.base + cs.reader.position().byte();
            let lines = cs.base_line + cs.reader.position().line().saturating_sub(1);
            // The record knows where it starts (after any CRLF of the previous one).
            let (rec_line, rec_byte) = match rec.position() {
                Some(p) => (cs.base_line + p.line(), cs.base + p.byte()),
                None => (line_before + 1, start),
            };
            let origin = self.origin(rec_line, rec_byte);
            self.set_csv_position(pos, lines);
            let mut cells = Vec::with_capacity(rec.len());
            let mut bad = None;
            let last = rec.len().saturating_sub(1);
            for (i, c) in rec.iter().enumerate() {
                let c = if i == last && c.last() == Some(&b'\r') {
                    &c[..c.len() - 1]
                } else {
                    c
                };
                match std::str::from_utf8(c) {
                    Ok(s) => cells.push(s),
                    Err(_) => {
                        bad = Some(format!("invalid UTF-8 in field {}", i + 1));
                        break;
                    }
                }
            }
            if let Some(msg) = bad {
                let raw = csv_text(&rec, delim);
                if self.header.is_none() {
                    // Without its header no row of the file can be read: taking the next
                    // row as the header would silently misname every field.
                    let msg = format!(
                        "the header (line {}) has {msg}: the file's rows cannot be named, so the file is skipped",
                        origin.line
                    );
                    self.bad_file_at(origin, &msg, Some(&raw), out)?;
                    consumed += 1;
                    continue;
                }
                out.bad(origin, &msg, Some(&raw), None)?;
                consumed += 1;
                continue;
            }
            if cells.len() == 1 && cells[0].is_empty() {
                continue;
            }
            let Some(header) = &self.header else {
                let h: Vec<Str> = cells
                    .iter()
                    .map(|c| Str::new(c.trim_start_matches('\u{feff}')))
                    .collect();
                let hs: Vec<String> = h.iter().map(|x| x.to_string()).collect();
                if let Some(st) = &mut self.stdin {
                    st.header = Some(hs);
                } else if let Some(f) = self.files.get_mut(self.cur) {
                    f.header = Some(hs);
                }
                self.header = Some(h);
                continue;
            };
            if cells.len() != header.len() {
                let raw = csv_text(&rec, delim);
                let msg = format!(
                    "the row has {} fields but the header has {}",
                    cells.len(),
                    header.len()
                );
                out.bad(origin, &msg, Some(&raw), None)?;
                consumed += 1;
                continue;
            }
            let mut m = Map::with_capacity(header.len());
            for (k, c) in header.iter().zip(cells) {
                let v = if self.s.infer_types {
                    infer(c)
                } else {
                    Value::str(c)
                };
                m.insert(k.clone(), v);
            }
            out.push(Record {
                value: Value::Object(m),
                origin,
            });
            consumed += 1;
        }
        Ok((consumed, ReadStatus::More))
    }

    fn set_csv_position(&mut self, pos: u64, lines_total: u64) {
        if let Some(st) = &mut self.stdin {
            if let Some(cs) = &mut self.csv {
                cs.reader.get_mut().commit(pos);
            }
            st.consumed = pos;
            st.line = lines_total;
        } else if let Some(f) = self.files.get_mut(self.cur) {
            f.offset = pos;
            f.line = lines_total;
        }
    }
}

/// A CSV row as text again (quoted where needed), for dead letters.
fn csv_text(rec: &csv::ByteRecord, delim: u8) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delim)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let last = rec.len().saturating_sub(1);
    let fields = rec.iter().enumerate().map(|(i, c)| {
        if i == last && c.last() == Some(&b'\r') {
            &c[..c.len() - 1]
        } else {
            c
        }
    });
    if w.write_record(fields).is_err() {
        return rec.as_slice().to_vec();
    }
    let mut v = w.into_inner().unwrap_or_default();
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    v
}

/// Owns the reader for the CSV parser.
struct OwnedFeed {
    r: Reader,
    /// Stdin only: CRC of the bytes before `pending_start`, and the bytes handed to the
    /// parser since then.
    crc: Option<crc32fast::Hasher>,
    pending: Vec<u8>,
    pending_start: u64,
}

impl OwnedFeed {
    /// The parser has consumed everything before `pos`: fold those bytes into the CRC.
    fn commit(&mut self, pos: u64) {
        if let Some(h) = &mut self.crc {
            let k = (pos.saturating_sub(self.pending_start) as usize).min(self.pending.len());
            h.update(&self.pending[..k]);
            self.pending.drain(..k);
            self.pending_start += k as u64;
        }
    }

    fn crc(&self) -> Option<u32> {
        self.crc.as_ref().map(|h| h.clone().finalize())
    }
}

impl Read for OwnedFeed {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = CsvFeed { r: &mut self.r }.read(out)?;
        if self.crc.is_some() {
            self.pending.extend_from_slice(&out[..n]);
        }
        Ok(n)
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
        self.combine.is_some()
    }

    /// A source that may fold feeds one aggregate that emits only at the end, or one window
    /// that feeds only sinks (`runtime::run::combine_pushdown`), folding or not.
    fn cut_free(&self) -> bool {
        self.s.combine.is_some()
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
            combined: self.combine.as_ref().map(|c| c.combined),
            combined_max_time: self.combine.as_ref().and_then(|c| c.max_time),
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

/// Up to `len` leading bytes of a file's content (decompressed for `.gz`): (how many, CRC32).
/// `None` if it cannot be read.
fn content_prefix(path: &Path, len: u64) -> Result<Option<(u64, u32)>, Error> {
    Ok(rotation::read_content(path, 0, len)?.map(|b| (b.len() as u64, crc32fast::hash(&b))))
}

/// CRC32 of the first `len` bytes of content; `None` if there are fewer than that now.
pub fn content_fingerprint(path: &Path, len: u64) -> Result<Option<u32>, Error> {
    Ok(match content_prefix(path, len)? {
        Some((n, crc)) if n == len => Some(crc),
        _ => None,
    })
}

fn is_fifo(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Opens and reads a FIFO on a helper thread (its writer's bytes, whatever came before).
fn read_fifo(path: PathBuf, source: &str) -> Result<Receiver<std::io::Result<Vec<u8>>>, Error> {
    let (tx, rx) = bounded::<std::io::Result<Vec<u8>>>(4);
    std::thread::Builder::new()
        .name("weir:fifo".into())
        .spawn(move || match File::open(&path) {
            Ok(f) => pump(f, tx),
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|e| Error::runtime(format!("source '{source}': cannot start a reader: {e}")))?;
    Ok(rx)
}

/// Sends what `r` reads, in chunks, until its end, an error, or the receiver is gone: the
/// helper thread of stdin and FIFOs.
fn pump(mut r: impl Read, tx: crossbeam_channel::Sender<std::io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0u8; 256 * 1024];
        match r.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if tx.send(Ok(chunk)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// Opens stdin for reading after `skip` bytes already consumed by an earlier run. Those bytes
/// are read (never seeked past, even where stdin is a file) so that their CRC can be checked
/// against the checkpoint's: resuming on different input is refused.
fn open_stdin(skip: u64, st: &StdinState, source: &str) -> Result<Input, Error> {
    let mut stdin = std::io::stdin();
    let mut prefix_crc = crc32fast::Hasher::new();
    let mut skipped = 0u64;
    // Read and check the prefix on this thread, so a mismatch is reported before any work.
    let mut buf = vec![0u8; CHUNK];
    while skipped < skip {
        let want = ((skip - skipped) as usize).min(buf.len());
        let n = match stdin.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::runtime(format!("reading stdin: {e}"))),
        };
        if n == 0 {
            break;
        }
        prefix_crc.update(&buf[..n]);
        skipped += n as u64;
    }
    if skip > 0 && (skipped < skip || prefix_crc.finalize() != st.crc) {
        return Err(Error::usage(format!(
            "source '{source}': stdin differs from the input of the checkpoint (its first {skip} bytes do not match); feed the same input to resume, or start over with `weir run --fresh`"
        )));
    }
    let (tx, rx) = bounded::<std::io::Result<Vec<u8>>>(4);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || pump(std::io::stdin(), tx))
        .map_err(|e| Error::runtime(format!("cannot start the stdin reader: {e}")))?;
    Ok(Input::Stdin(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Judging a line first stops while it drops less than a third of the lines judged, for
    /// rests that double while it keeps not paying, and starts again when it pays.
    #[test]
    fn a_worker_stops_judging_lines_first_while_it_does_not_pay() {
        let filter = crate::expr::Expr::compile(".a == 1").unwrap();
        let mut p = Prefilter::new(&filter).unwrap();
        let judge = |p: &mut Prefilter, line: &[u8], n: u64| {
            for _ in 0..n {
                p.drops(line, &filter);
            }
        };
        assert!(p.judging());
        // All pass (a == 1): not worth it; rests of 16, then 32 jobs.
        judge(&mut p, b"{\"a\":1}", PREFILTER_SAMPLE);
        for (i, rest) in [PREFILTER_REST, PREFILTER_REST * 2].into_iter().enumerate() {
            // The job that finds it not worth it, then the rest.
            assert!(!p.judging());
            for _ in 0..rest {
                assert!(!p.judging());
            }
            assert!(p.judging(), "after a rest of {rest}");
            if i == 0 {
                judge(&mut p, b"{\"a\":1}", PREFILTER_SAMPLE);
            }
        }
        // Half dropped: worth it again, and the next rest is back to the first length.
        judge(&mut p, b"{\"a\":2}", PREFILTER_SAMPLE / 2);
        judge(&mut p, b"{\"a\":1}", PREFILTER_SAMPLE / 2);
        assert!(p.judging());
        assert_eq!(p.rest, PREFILTER_REST);
        // A line the scanner leaves alone is not judged at all.
        let before = p.judged;
        assert!(!p.drops(b"{\"a\":[2]}", &filter));
        assert_eq!(p.judged, before);
    }
}
