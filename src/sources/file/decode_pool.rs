//! The parse workers: threads that decode (or fold, see `sources::folding`) the JSON lines
//! or the CSV rows (see `csv_rows`) of a mapped file ahead of the read position, or decode the
//! later part of a batch of another input while the source decodes the earlier part (`fork`,
//! `join`). Results come back in input order, so what leaves the source never depends on
//! thread timing.

use super::csv_rows::{self, CsvJob, CsvLayout, RowReader};
use super::prefilter::{Judged, Prefilter};
use crate::sources::folding::{fold_range, Ack, FoldSpec, Folded, Table};
use crate::sources::formats::decode_jsonl;
use crate::value::Value;
use crossbeam_channel::{bounded, Receiver};
use std::sync::Arc;

pub(super) struct Folding {
    pub(super) spec: Arc<FoldSpec>,
    /// Lines folded and sent over the life of the state.
    pub(super) folded: u64,
    /// For a window: the largest event time in the lines sent.
    pub(super) max_time: Option<i64>,
    /// The epoch: lines (records) and bytes folded since the tables were last sent, from the
    /// read position (which moves only when they are sent), how far the file's line count
    /// moves past them (`Folded::file_lines`), the late lines among them and the largest event
    /// time.
    pub(super) lines: u64,
    pub(super) file_lines: u64,
    pub(super) bytes: usize,
    pub(super) late: u64,
    pub(super) epoch_max_time: Option<i64>,
    /// Lines after which the epoch ends (see `FIRST_EPOCH_LINES`).
    pub(super) epoch_limit: u64,
}

impl Folding {
    /// Whether a job cut to start at `at` starts where the epoch's jobs taken back so far end
    /// (the epoch started at `start`): a CSV job may have been cut inside a row, which the row
    /// before it then reads to its end (see `csv_rows`); a JSON job always does.
    pub(super) fn continues(&self, start: usize, at: usize) -> bool {
        at == start + self.bytes
    }

    /// Takes a job's report back, in the order of the jobs. False when a line of it was late
    /// for a window by the lines of the jobs before it, which the worker could not know: the
    /// epoch is then irregular.
    pub(super) fn accept(&mut self, f: &Folded) -> bool {
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
        self.file_lines += f.file_lines;
        self.bytes += f.bytes;
        true
    }
}

pub(super) type Decoded = Result<Option<Value>, String>;
/// A job's lines (length, terminator length) with their decoded results, in order.
/// `None`: a record the pushed-down filter drops.
pub(super) type DecodedLines =
    std::iter::Zip<std::vec::IntoIter<(usize, usize)>, std::vec::IntoIter<Option<Decoded>>>;

/// Decodes consecutive JSON lines of `bytes` starting at `start`: what the pool's workers do
/// with a forked block, and their fallbacks.
pub(super) fn decode_block(
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

/// Cuts `bytes[start..end]` into lines and decodes them: what a pool worker does with a job.
/// `end` is just after a newline, or the end of the mapping (a complete file needs no newline
/// after its last line). A record the pushed-down filter rejects comes back as `None`.
pub(super) fn decode_range(
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
        return (lines, results.into_iter().map(Some).collect(), false);
    };
    let mut judged = true;
    if !prefilter.as_mut().is_some_and(|p| p.judging()) {
        prefilter = None;
    }
    let mut results = Vec::with_capacity(lines.len());
    let mut pos = start;
    for &(len, term) in &lines {
        let line = &bytes[pos..pos + len];
        pos += len + term;
        if let Some(p) = prefilter.as_mut() {
            match p.judge(line, f) {
                Judged::Drop => {
                    results.push(None);
                    continue;
                }
                // Kept by the filter, which has run: no need to run it again here.
                Judged::Keep(v) => {
                    results.push(Some(Ok(Some(v))));
                    continue;
                }
                Judged::Unknown => {}
            }
        }
        results.push(match decode_jsonl(line, projector) {
            // Only a plain `false` drops the record here; an error is the filter's to report,
            // so such a record goes on to it.
            Ok(Some(v)) => match f.eval_bool(&v) {
                Ok(false) => None,
                Ok(true) => Some(Ok(Some(v))),
                Err(_) => {
                    judged = false;
                    Some(Ok(Some(v)))
                }
            },
            d => Some(d),
        });
    }
    (lines, results, judged)
}

/// Where a job that starts at `start` in `bytes` ends: just after the first newline at or past
/// `start + job`, or at the end of `bytes`. A JSON job ends there; a CSV job there or later
/// (`csv_rows::cut`).
pub(super) fn line_cut(bytes: &[u8], start: usize, job: usize) -> usize {
    let from = start.saturating_add(job);
    if from >= bytes.len() {
        return bytes.len();
    }
    memchr::memchr(b'\n', &bytes[from..]).map_or(bytes.len(), |i| from + i + 1)
}

/// JSON lines of a mapped file decoded by worker threads ahead of the read position.
///
/// The source thread cuts the mapping into jobs (see `job_size`) that end at a newline, hands
/// them out round-robin and takes the results back in the same order, so records leave
/// exactly as a single thread would emit them. The workers find the lines of their job
/// themselves: the source never reads the bytes of the file, and each byte is brought into a
/// cache once, by the core that parses it. Only decoding runs ahead:
/// positions, line numbers, bad-record handling and checkpoints advance as the source emits,
/// so a snapshot never covers a line that has not been emitted, and unemitted work is simply
/// dropped.
pub(super) struct DecodePool {
    pub(super) workers: Vec<PoolWorker>,
    /// Jobs handed out and not yet taken back, oldest first.
    pub(super) inflight: std::collections::VecDeque<InFlight>,
    pub(super) next: usize,
    /// The mapping the jobs are cut from, and the position just after the last job.
    pub(super) map: Option<Arc<memmap2::Mmap>>,
    pub(super) ahead: usize,
    /// Bytes per job (`JobBytes::USUAL`, or fixed by `WEIR_PARSE_JOB_BYTES` in tests), each
    /// at least 1 and `most` at least `least`.
    pub(super) job_bytes: JobBytes,
    /// The last job taken back kept at most a quarter of its lines or rows as records (a
    /// selective pushed-down filter): what comes back from a big job is small.
    pub(super) sparse: bool,
    /// CSV jobs cut so far, and the count up to which their cuts count quotes: none at first
    /// (a guess, see `csv_rows::cut`); after each wrong guess, for the next 64 jobs, then 128,
    /// 256, ..., so a file with many quoted newlines is soon cut by counting alone.
    pub(super) csv_cuts: u64,
    pub(super) count_quotes_until: u64,
    pub(super) wrong_guesses: u32,
}

/// (worker, start, end in the mapping) of a job handed out.
pub(super) type InFlight = (usize, usize, usize);

/// A job's lines, their results, and whether the pushed-down filter kept every record among
/// them (none kept for an error it gave, which the filter stage reports): see `Batch::judged`.
pub(super) type JobResult = (Vec<(usize, usize)>, Vec<Option<Decoded>>, bool);

pub(super) struct PoolWorker {
    pub(super) jobs: crossbeam_channel::Sender<PoolJob>,
    pub(super) results: Receiver<PoolReply>,
}

/// A byte range of a mapping, ending at a newline or the end of the mapping.
pub(super) struct Range {
    pub(super) map: Arc<memmap2::Mmap>,
    pub(super) start: usize,
    pub(super) end: usize,
}

pub(super) enum PoolJob {
    /// Decode the lines into records.
    Decode(Range),
    /// Read the CSV rows of a file with this header, none past the bound (see
    /// `csv_rows::parse_job`).
    Csv(Range, Arc<CsvLayout>, usize),
    /// Fold them into the worker's table (see `csv_rows::fold_job`).
    FoldCsv(Range, Arc<CsvLayout>),
    /// Fold the lines into the worker's table (see `folding`).
    Fold(Range),
    /// Hand the table over and start a new one.
    Flush,
    /// Throw the table away (the epoch is read again record by record).
    Discard,
    /// Decode these lines (length, terminator length) of a copied block: the later part of a
    /// batch from an input that is not mapped (see `fork`).
    Block(Vec<u8>, Vec<(usize, usize)>),
}

pub(super) enum PoolReply {
    Decoded(JobResult),
    Csv(CsvJob),
    Folded(Ack),
    Table(Table),
    Block(Vec<Decoded>),
}

/// Bytes per job (about a thousand log lines) when each line comes back as a record: large
/// enough that handing out a job costs little against decoding it, small enough that the
/// records of the jobs in flight hold little memory (with 1 MiB jobs they would be eight
/// times as many).
pub const POOL_JOB_BYTES: usize = 128 << 10;
/// Bytes per job when what comes back is small: folded lines, or lines a pushed-down filter
/// mostly drops. Each job costs the source a wait and a wake-up: k8s J1 (120 MB) with 128 KiB
/// jobs made 2,400 to 3,300 context switches and ran 1.1 cores on two, with 1 MiB jobs 460
/// to 800 and 1.7 cores (wall time 0.21 to 0.23 s, then 0.125 s).
pub const POOL_BIG_JOB_BYTES: usize = 1 << 20;
/// Bytes per job of the parse workers, the least and the most (see `DecodePool::job_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBytes {
    pub least: usize,
    pub most: usize,
}

impl JobBytes {
    /// `POOL_JOB_BYTES` where every line comes back as a record, up to `POOL_BIG_JOB_BYTES`.
    pub const USUAL: JobBytes = JobBytes {
        least: POOL_JOB_BYTES,
        most: POOL_BIG_JOB_BYTES,
    };

    /// `n` bytes for every job (tests cut small files into many jobs, or fix a size).
    pub fn fixed(n: usize) -> JobBytes {
        JobBytes { least: n, most: n }
    }
}

/// Jobs in flight per worker, so a worker has the next job at hand when it finishes one.
pub(super) const POOL_DEPTH: usize = 2;

/// How far past its end a CSV job cut at a guess reads its last row (or its job size, if
/// more): a row longer than that in such a job sends the source back to count quotes.
pub(super) const GUESS_OVERRUN_BYTES: usize = 1 << 20;

/// What `top_up` hands out.
#[derive(Clone, Copy)]
pub(super) enum Work<'a> {
    /// JSON lines to decode.
    Decode,
    /// JSON lines to fold (see `folding`).
    Fold,
    /// CSV rows of a file with this header, cut where quoting allows (`csv_rows::cut`).
    Csv(&'a Arc<CsvLayout>),
    /// The same rows to fold.
    FoldCsv(&'a Arc<CsvLayout>),
}

impl DecodePool {
    pub(super) fn start(
        threads: usize,
        job_bytes: JobBytes,
        projector: Option<crate::value::Projector>,
        filter: Option<crate::expr::Expr>,
        folding: Option<Arc<FoldSpec>>,
    ) -> DecodePool {
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (jobs, job_rx) = bounded::<PoolJob>(POOL_DEPTH);
            let (res_tx, results) = bounded::<PoolReply>(POOL_DEPTH);
            let projector = projector.clone();
            let filter = filter.clone();
            let folding = folding.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("weir:parse{i}"))
                .spawn(move || {
                    let mut table = Table::default();
                    let mut prefilter = filter
                        .as_ref()
                        .and_then(|f| Prefilter::new(f, projector.as_ref()));
                    let mut rows: Option<RowReader> = None;
                    for job in job_rx {
                        let out = match job {
                            PoolJob::Csv(j, layout, bound) => {
                                let rr = RowReader::reuse(&mut rows, layout.delim);
                                PoolReply::Csv(csv_rows::parse_job(
                                    &j.map,
                                    j.start,
                                    j.end,
                                    bound,
                                    &layout,
                                    rr,
                                    filter.as_ref(),
                                ))
                            }
                            PoolJob::Decode(j) => PoolReply::Decoded(decode_range(
                                &j.map,
                                j.start,
                                j.end,
                                projector.as_ref(),
                                filter.as_ref(),
                                prefilter.as_mut(),
                            )),
                            PoolJob::Fold(j) => PoolReply::Folded(match &folding {
                                Some(spec) => fold_range(&j.map, j.start, j.end, spec, &mut table),
                                None => Ack::Irregular,
                            }),
                            PoolJob::FoldCsv(j, layout) => PoolReply::Folded(match &folding {
                                Some(spec) => {
                                    let rr = RowReader::reuse(&mut rows, layout.delim);
                                    csv_rows::fold_job(
                                        &j.map, j.start, j.end, &layout, rr, spec, &mut table,
                                    )
                                }
                                None => Ack::Irregular,
                            }),
                            PoolJob::Flush => PoolReply::Table(std::mem::take(&mut table)),
                            PoolJob::Block(bytes, lines) => PoolReply::Block(decode_block(
                                &bytes,
                                0,
                                &lines,
                                projector.as_ref(),
                            )),
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
            job_bytes: JobBytes {
                least: job_bytes.least.max(1),
                most: job_bytes.most.max(job_bytes.least).max(1),
            },
            sparse: false,
            csv_cuts: 0,
            count_quotes_until: 0,
            wrong_guesses: 0,
        }
    }

    /// Bytes for the next job starting at `start` in a mapping of `len` bytes. Big jobs where
    /// little comes back, but at least four per worker in what is left, so a small file, and
    /// the tail of any, is still shared by every worker.
    fn job_size(&self, work: Work<'_>, start: usize, len: usize) -> usize {
        let small = matches!(work, Work::Decode | Work::Csv(_)) && !self.sparse;
        if small {
            return self.job_bytes.least;
        }
        let share = (len - start) / (4 * self.workers.len().max(1));
        share.clamp(self.job_bytes.least, self.job_bytes.most)
    }

    /// Forgets jobs cut from another mapping (their results are taken and dropped, so each
    /// worker's results stay in step with its jobs).
    pub(super) fn reset(&mut self, map: &Arc<memmap2::Mmap>, start: usize) {
        if self.map.as_ref().is_some_and(|m| Arc::ptr_eq(m, map)) && self.ahead >= start {
            return;
        }
        self.drop_inflight();
        self.map = Some(map.clone());
        self.ahead = start;
    }

    /// Hands out jobs until every worker has `POOL_DEPTH` or the mapping is all handed out.
    /// A job that cannot be handed out (its worker is gone) is decoded here instead, or
    /// reported irregular when folding.
    pub(super) fn top_up(&mut self, work: Work<'_>) {
        let Some(map) = self.map.clone() else { return };
        // With no worker at all (none could be started), jobs are still cut, one at a time,
        // and decoded here: an empty pool must not read as the end of the file.
        let depth = self.workers.len().max(1) * POOL_DEPTH;
        while self.inflight.len() < depth && self.ahead < map.len() {
            let start = self.ahead;
            let job = self.job_size(work, start, map.len());
            let end = line_cut(&map, start, job);
            let (end, bound) = match work {
                // A wrong guess costs a folding epoch its folding: only rows to parse guess.
                Work::Csv(_) => {
                    let count = self.csv_cuts < self.count_quotes_until;
                    self.csv_cuts += 1;
                    let end = csv_rows::cut(&map, start, end, job, count);
                    // A job that starts at a guess may start inside a quoted field, and then
                    // read the rest of the file as one row: it reads no row past the bound.
                    let bound = if count {
                        map.len()
                    } else {
                        let over = (end - start).max(GUESS_OVERRUN_BYTES);
                        end.saturating_add(over).min(map.len())
                    };
                    (end, bound)
                }
                Work::FoldCsv(_) => (csv_rows::cut(&map, start, end, job, true), map.len()),
                Work::Decode | Work::Fold => (end, map.len()),
            };
            self.ahead = end;
            let w = self.next % self.workers.len().max(1);
            self.next += 1;
            let range = Range {
                map: map.clone(),
                start,
                end,
            };
            let job = match work {
                Work::Fold => PoolJob::Fold(range),
                Work::Decode => PoolJob::Decode(range),
                Work::Csv(layout) => PoolJob::Csv(range, layout.clone(), bound),
                Work::FoldCsv(layout) => PoolJob::FoldCsv(range, layout.clone()),
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
    pub(super) fn take(
        &mut self,
        projector: Option<&crate::value::Projector>,
        filter: Option<&crate::expr::Expr>,
    ) -> Option<(DecodedLines, bool)> {
        let (start, end, reply) = self.next_reply()?;
        let (lines, results, judged) = match reply {
            Some(PoolReply::Decoded(r)) => r,
            // Decode on this thread (a worker failed): the same results, just slower.
            _ => decode_range(self.map.as_ref()?, start, end, projector, filter, None),
        };
        let kept = results.iter().filter(|r| r.is_some()).count();
        self.sparse = kept * 4 <= results.len();
        Some((lines.into_iter().zip(results), judged))
    }

    /// The oldest CSV job's rows (see `csv_rows::parse_job`); read on this thread if its worker
    /// is gone.
    pub(super) fn take_csv(
        &mut self,
        layout: &CsvLayout,
        filter: Option<&crate::expr::Expr>,
    ) -> Option<CsvJob> {
        let (start, end, reply) = self.next_reply()?;
        let job = match reply {
            Some(PoolReply::Csv(job)) => job,
            _ => {
                let mut rr = RowReader::new(layout.delim);
                let map = self.map.as_ref()?;
                csv_rows::parse_job(map, start, end, map.len(), layout, &mut rr, filter)
            }
        };
        let kept = job
            .rows
            .iter()
            .filter(|r| !matches!(r.out, csv_rows::RowOut::Dropped))
            .count();
        self.sparse = kept * 4 <= job.rows.len();
        Some(job)
    }

    /// Drops the jobs in flight and hands out jobs again from `start` in the same mapping:
    /// a CSV job was cut inside a row (see `csv_rows`), and so were the ones after it.
    pub(super) fn rewind(&mut self, start: usize) {
        self.drop_inflight();
        self.ahead = start;
        self.count_quotes_until = self.csv_cuts + (64 << self.wrong_guesses.min(20));
        self.wrong_guesses += 1;
    }

    /// The oldest folded job's report, with where the job was cut to start; `None` when
    /// nothing is in flight. A worker that is gone reports irregular, which sends the epoch
    /// down the decoding path that copes.
    pub(super) fn take_ack(&mut self) -> Option<(usize, Ack)> {
        let (start, _, reply) = self.next_reply()?;
        match reply {
            Some(PoolReply::Folded(ack)) => Some((start, ack)),
            _ => Some((start, Ack::Irregular)),
        }
    }

    /// Every worker's table (nothing may be in flight); `None` if a worker is gone.
    pub(super) fn tables(&mut self) -> Option<Vec<Table>> {
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

    /// Hands `lines` of `bytes` to a worker to decode, while the caller decodes the lines
    /// before them; `join` takes the results back. Jobs of a mapping still in flight (a file
    /// cut short under the source) are dropped first, so the worker's next reply is this
    /// block's. `None` when no worker took it: the caller then decodes the block itself.
    pub(super) fn fork(&mut self, bytes: Vec<u8>, lines: Vec<(usize, usize)>) -> Option<usize> {
        self.forget();
        let w = self.next % self.workers.len().max(1);
        self.next += 1;
        let wk = self.workers.get(w)?;
        wk.jobs.send(PoolJob::Block(bytes, lines)).ok()?;
        Some(w)
    }

    /// The decoded lines of the block forked to worker `w`; `None` if the worker is gone.
    pub(super) fn join(&mut self, w: usize) -> Option<Vec<Decoded>> {
        match self.workers.get(w)?.results.recv().ok()? {
            PoolReply::Block(out) => Some(out),
            _ => None,
        }
    }

    /// Takes back and drops the results of the jobs in flight, so each worker's next reply is
    /// for the next job handed to it.
    fn drop_inflight(&mut self) {
        while self.next_reply().is_some() {}
    }

    /// The oldest job in flight: (start, end, its worker's reply, `None` if the worker is gone
    /// or the job was never handed out).
    fn next_reply(&mut self) -> Option<(usize, usize, Option<PoolReply>)> {
        let (w, start, end) = self.inflight.pop_front()?;
        let reply = self.workers.get(w).and_then(|wk| wk.results.recv().ok());
        Some((start, end, reply))
    }

    /// Takes back and drops the jobs in flight, and forgets their mapping.
    fn forget(&mut self) {
        self.drop_inflight();
        self.map = None;
        self.ahead = 0;
    }

    /// Drops what is in flight and every worker's table, and goes on handing out jobs from
    /// `restart` in the current mapping.
    pub(super) fn discard(&mut self, restart: usize) {
        self.drop_inflight();
        for wk in &self.workers {
            let _ = wk.jobs.send(PoolJob::Discard);
        }
        self.ahead = restart;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Jobs are 128 KiB where every line comes back as a record, up to 1 MiB where little
    /// comes back (folding, or after a job whose filter kept at most one line in four), but at
    /// least four per worker in what is left; a size set for tests is used for every job.
    #[test]
    fn jobs_are_big_where_little_comes_back_and_shared_at_the_end() {
        let pool = DecodePool::start(2, JobBytes::USUAL, None, None, None);
        let mb = 1 << 20;
        assert_eq!(pool.job_size(Work::Decode, 0, 100 * mb), POOL_JOB_BYTES);
        assert_eq!(pool.job_size(Work::Fold, 0, 100 * mb), POOL_BIG_JOB_BYTES);
        assert_eq!(pool.job_size(Work::Fold, 99 * mb, 100 * mb), 128 << 10);
        assert_eq!(pool.job_size(Work::Fold, 96 * mb, 100 * mb), 512 << 10);
        assert_eq!(pool.job_size(Work::Fold, 0, mb / 2), POOL_JOB_BYTES);
        let mut f = tempfile::tempfile().unwrap();
        for i in 0..40_000 {
            writeln!(f, "{{\"m\":{}}}", i % 5).unwrap();
        }
        // SAFETY: a private temporary file, not changed while mapped.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap());
        for (keep, sparse) in [(".m == 1", true), (".m <= 1", false)] {
            let filter = crate::expr::Expr::compile(keep).unwrap();
            let mut pool = DecodePool::start(2, JobBytes::USUAL, None, Some(filter.clone()), None);
            pool.reset(&map, 0);
            pool.top_up(Work::Decode);
            let kept = pool
                .take(None, Some(&filter))
                .unwrap()
                .0
                .filter(|(_, r)| r.is_some())
                .count();
            assert!(kept > 0, "{keep}");
            assert_eq!(pool.sparse, sparse, "{keep}");
            let size = pool.job_size(Work::Decode, 0, 100 * mb);
            let want = if sparse {
                POOL_BIG_JOB_BYTES
            } else {
                POOL_JOB_BYTES
            };
            assert_eq!(size, want, "{keep}");
        }
        let fixed = DecodePool::start(1, JobBytes::fixed(2000), None, None, None);
        assert_eq!(fixed.job_size(Work::Fold, 0, 100 * mb), 2000);
        assert_eq!(fixed.job_size(Work::Decode, 0, 100 * mb), 2000);
    }

    /// The layout of a comma-separated file with this header, every column kept.
    fn csv_layout(names: &[&str]) -> Arc<CsvLayout> {
        let header: Vec<crate::value::Str> =
            names.iter().map(|n| crate::value::Str::new(n)).collect();
        Arc::new(CsvLayout::new(&header, None, true, b','))
    }

    /// CSV jobs are cut at the first newline past their size, quotes or not, until a cut is
    /// found wrong (`rewind`); then quotes are counted for the next 64 cuts, and for twice as
    /// many after each further wrong cut.
    #[test]
    fn csv_cuts_guess_until_a_guess_is_wrong_then_count_quotes() {
        let mut f = tempfile::tempfile().unwrap();
        // Each row is 206 bytes, with a quoted newline at byte 203: a 100-byte job's first
        // newline is inside the quotes.
        for i in 0..1000 {
            write!(f, "{},\"{}\nyz\"\n", i % 10, "x".repeat(199)).unwrap();
        }
        // SAFETY: a private temporary file, not changed while mapped.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap());
        let layout = csv_layout(&["i", "agent"]);
        let odd = |end: usize| memchr::memchr_iter(b'"', &map[..end]).count() % 2 == 1;
        let mut pool = DecodePool::start(1, JobBytes::fixed(100), None, None, None);
        // The next `n` cuts from `at`, in order, taking each job back as it is cut.
        let cuts = |pool: &mut DecodePool, at: usize, n: usize| {
            let mut ends = Vec::new();
            pool.ahead = at;
            while ends.len() < n {
                pool.top_up(Work::Csv(&layout));
                ends.extend(pool.inflight.iter().map(|j| j.2));
                pool.drop_inflight();
            }
            ends.truncate(n);
            pool.ahead = *ends.last().unwrap();
            ends
        };
        pool.reset(&map, 0);
        let first = cuts(&mut pool, 0, 10);
        assert_eq!(first[0], 203, "a guess takes the first newline");
        assert!(first.iter().all(|&e| odd(e)), "guesses: {first:?}");
        for wrong in 0..3 {
            pool.rewind(0);
            let counted = cuts(&mut pool, 0, 64 << wrong);
            assert!(counted.iter().all(|&e| !odd(e)), "counted after {wrong}");
            let at = pool.ahead;
            assert!(
                odd(cuts(&mut pool, at, 1)[0]),
                "a guess again after {wrong}"
            );
        }
    }

    /// A job cut at a guess just inside a quoted field whose text ends in a newline starts
    /// with the field's closing quote, and reads the rest of the file as one quoted field
    /// unless stopped: it stops at its bound, having read no further, and its rows end short
    /// of where the next job starts (which the source's order check catches).
    #[test]
    fn a_guessed_csv_job_reads_no_row_past_its_bound() {
        let mut f = tempfile::tempfile().unwrap();
        write!(f, "a,\"{}\n\"\n", "x".repeat(100)).unwrap();
        for i in 0..1_000_000 {
            writeln!(f, "{},c", i % 10).unwrap();
        }
        // SAFETY: a private temporary file, not changed while mapped.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap());
        let layout = csv_layout(&["a", "b"]);
        let mut pool = DecodePool::start(1, JobBytes::fixed(100), None, None, None);
        pool.reset(&map, 0);
        pool.top_up(Work::Csv(&layout));
        let first = pool.take_csv(&layout, None).unwrap();
        let read: usize = first.rows.iter().map(|r| r.bytes).sum();
        assert_eq!(read, 106, "the first job reads its one row whole");
        let second = pool.take_csv(&layout, None).unwrap();
        assert_eq!(second.start, 104, "cut after the quoted newline");
        pool.top_up(Work::Csv(&layout));
        let third = pool.take_csv(&layout, None).unwrap();
        assert_eq!(third.start, 206, "cut at the first newline 100 bytes on");
        // Read to the end, its one row would be the rest of the file; stopped at its bound,
        // it has no row, so its rows end before the third job's start.
        assert!(second.rows.is_empty(), "{} rows", second.rows.len());
        // Counted, the same start reads to the end of its one row, the rest of the file.
        let mut rr = RowReader::new(b',');
        let whole = csv_rows::parse_job(&map, 104, 204, map.len(), &layout, &mut rr, None);
        assert_eq!(whole.rows.len(), 1);
        assert_eq!(whole.rows[0].bytes, map.len() - 104);
    }

    /// A block forked while jobs of a mapping are still in flight (a mapped file cut short
    /// under the source, then a stream) comes back as its own lines, not a stale job's; and
    /// the mapping is handed out again from where it is asked for.
    #[test]
    fn a_block_forked_with_jobs_in_flight_gets_its_own_lines_back() {
        let mut f = tempfile::tempfile().unwrap();
        for i in 0..100_000 {
            writeln!(f, "{{\"m\":{i}}}").unwrap();
        }
        // SAFETY: a private temporary file, not changed while mapped.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap());
        let mut pool = DecodePool::start(1, JobBytes::fixed(POOL_JOB_BYTES), None, None, None);
        pool.reset(&map, 0);
        pool.top_up(Work::Decode);
        assert_eq!(pool.inflight.len(), POOL_DEPTH);
        let block = b"{\"b\":1}\n{\"b\":2}".to_vec();
        let lines = vec![(7, 1), (7, 0)];
        let w = pool.fork(block.clone(), lines.clone()).expect("a worker");
        let got = pool.join(w).expect("the block's reply");
        let want = decode_block(&block, 0, &lines, None);
        assert_eq!(got, want);
        pool.reset(&map, 0);
        pool.top_up(Work::Decode);
        let (line, first) = pool.take(None, None).unwrap().0.next().unwrap();
        assert_eq!(line, (7, 1));
        assert_eq!(
            first.unwrap().unwrap(),
            decode_jsonl(b"{\"m\":0}", None).unwrap()
        );
    }
}
