//! Sources and the loop that drives them: read records into logical batches of `BATCH_SIZE`
//! input records, inject checkpoint barriers at the batch the coordinator asked for, and stop
//! cleanly at end of input or on a signal.

pub mod file;
mod flat_json;
pub mod folding;
pub mod formats;
pub mod generate;
mod sigbus;

use crate::error::Error;
use crate::pipeline::graph::BATCH_SIZE;
use crate::pipeline::spec::AtEnd;
use crate::runtime::context::{Context, Report, StopReason};
use crate::runtime::message::{EndKind, Msg};
use crate::runtime::stage::{Output, StageResult, Stop};
use std::sync::Arc;
use std::time::Duration;

/// What a read call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Read as many records as asked; there may be more.
    More,
    /// Nothing more right now, but the input may grow (follow, or a slow pipe).
    Idle,
    /// The input is over for this run.
    Eof,
}

pub trait Source: Send {
    /// Reads up to `n` input records: good ones into `out.push`, bad ones through `out.bad`.
    /// Returns how many input records were consumed and what it found.
    fn read(&mut self, n: usize, out: &mut Output) -> StageResult<(usize, ReadStatus)>;

    /// Offsets as of the last record read, for a checkpoint.
    fn snapshot(&mut self) -> Result<Vec<u8>, Error>;

    /// Sends what was read but is still held back (folded counts, see `folding`), before a
    /// barrier or the end. Returns how many input records that consumed (which the source
    /// has counted in its stats already).
    fn settle(&mut self, _out: &mut Output) -> StageResult<usize> {
        Ok(0)
    }

    /// Whether input is being folded for an aggregate: the source then reports records
    /// consumed only when it sends the counts, so a barrier cannot wait for a batch number.
    fn folding(&self) -> bool {
        false
    }

    /// Whether this source stays out of the common cut (`Cut`): where its barrier falls
    /// against other sources' batches changes no merge, because its records reach only one
    /// aggregate that emits at the end (after every batch) or one window that feeds only
    /// sinks. Its barriers then go out as soon as asked, and its position (far ahead, say,
    /// after folding) never holds back the others'.
    fn cut_free(&self) -> bool {
        false
    }

    /// Total input bytes when known (for the progress bar).
    fn total_bytes(&self) -> Option<u64> {
        None
    }

    /// Input bytes consumed so far (for the progress bar).
    fn bytes_read(&self) -> u64 {
        0
    }

    fn at_end(&self) -> AtEnd;
}

/// Where every source puts the barrier of a checkpoint: before the same logical batch number
/// in all of them, so a union of several sources is cut at the same place in each input,
/// whatever their relative speed. Sources announce each batch before they make it and the
/// coordinator picks one past the largest announced, both under this lock (taken once per
/// batch of input records), so no source can be past the cut when it is chosen.
#[derive(Default)]
pub struct Cut {
    inner: std::sync::Mutex<CutInner>,
}

#[derive(Default)]
struct CutInner {
    /// (checkpoint id, batch number before which its barrier goes).
    request: Option<(u64, u64)>,
    /// On SIGINT/SIGTERM: the batch number before which every source stops, so the stop
    /// checkpoint is a cut like any other.
    stop: Option<u64>,
    /// The last batch number each source announced. A source that ended stays here: records
    /// it sent before its end may still be on their way to a merge, so a later cut must lie
    /// beyond them too.
    announced: Vec<(usize, u64)>,
}

impl Cut {
    /// A source takes part from batch `seq` on.
    pub fn add(&self, node: usize, seq: u64) {
        self.lock().announced.push((node, seq));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CutInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A source is about to make batch `seq`: the checkpoint whose barrier goes before it, if
    /// any (one this source has not emitted yet).
    pub fn announce(&self, node: usize, seq: u64, emitted: u64) -> Option<u64> {
        let mut c = self.lock();
        if let Some(a) = c.announced.iter_mut().find(|a| a.0 == node) {
            a.1 = a.1.max(seq);
        }
        match c.request {
            Some((id, at)) if id > emitted && seq >= at => Some(id),
            _ => None,
        }
    }

    /// A source is idle or ending: a requested barrier cannot wait for batches that may never
    /// come, so it goes out now.
    pub fn pending(&self, emitted: u64) -> Option<u64> {
        match self.lock().request {
            Some((id, _)) if id > emitted => Some(id),
            _ => None,
        }
    }

    /// The run is stopping on a signal: fixes where, one batch past the largest any source
    /// has announced (as for a checkpoint), unless fixed already.
    pub fn stop(&self) {
        let mut c = self.lock();
        if c.stop.is_none() {
            c.stop = Some(c.announced.iter().map(|a| a.1).max().unwrap_or(0) + 1);
        }
    }

    /// Whether a source about to make batch `seq` (announced already) stops instead.
    pub fn stops_before(&self, seq: u64) -> bool {
        self.lock().stop.is_some_and(|at| seq >= at)
    }

    /// The coordinator asks for checkpoint `id`.
    pub fn request(&self, id: u64) {
        let mut c = self.lock();
        let at = c.announced.iter().map(|a| a.1).max().unwrap_or(0) + 1;
        c.request = Some((id, at));
    }
}

pub struct SourceDriver {
    pub node: usize,
    pub source: Box<dyn Source>,
    pub out: Output,
    pub cut: Arc<Cut>,
    /// Input records consumed before this run (restored from a checkpoint).
    pub consumed: u64,
    /// The last checkpoint id this source put a barrier out for.
    pub emitted: u64,
}

impl SourceDriver {
    pub fn run(mut self, ctx: Arc<Context>) {
        let r = self.drive(&ctx);
        if let Err(Stop::Failed(e)) = r {
            ctx.fail(self.node, e);
        }
    }

    fn drive(&mut self, ctx: &Context) -> StageResult {
        let mut idle_sleep = Duration::from_millis(10);
        loop {
            let seq = self.consumed / BATCH_SIZE as u64;
            let cut_free = self.source.cut_free();
            if ctx.stopping() {
                // A failure stops at once (no checkpoint follows). A signal stops every
                // source before the same batch, as a barrier would: one that is behind reads
                // on to it (see `Cut::stop`).
                if cut_free || ctx.stop_reason() == StopReason::Failure {
                    return self.end(ctx, EndKind::Pause);
                }
                self.cut.stop();
                if self.cut.stops_before(seq) {
                    return self.end(ctx, EndKind::Pause);
                }
            }
            // A cut-free source's barrier goes out as soon as asked (see `Source::cut_free`).
            let barrier = if cut_free {
                self.cut.pending(self.emitted)
            } else {
                self.cut.announce(self.node, seq, self.emitted)
            };
            if let Some(id) = barrier {
                self.barrier(id)?;
            }
            // The stop may have been fixed since the check above, before this batch.
            if !cut_free && self.cut.stops_before(seq) {
                return self.end(ctx, EndKind::Pause);
            }
            // Fill up to the next logical batch boundary, so that batch numbers do not depend
            // on how reads happened to be cut.
            let want = BATCH_SIZE - (self.consumed % BATCH_SIZE as u64) as usize;
            // Tests slow sources down with this (`source-batch=sleep(1)`), so a crash point
            // after the n-th checkpoint is reached however fast the build is.
            fail::fail_point!("source-batch");
            let (n, status) = self.source.read(want, &mut self.out)?;
            self.consumed += n as u64;
            // A folding source counts its input as the workers report it, so that checkpoints
            // by record count come on time.
            if !self.source.folding() {
                ctx.stats[self.node].add_in(n);
            }
            ctx.stats[self.node].bytes_read.store(
                self.source.bytes_read(),
                std::sync::atomic::Ordering::Relaxed,
            );
            // Every batch that consumed input goes out on every edge, even empty, so merges
            // downstream know how far this source has got.
            self.out.flush_batch(seq, n > 0)?;
            if let (Some(l), true) = (&ctx.lockstep, n > 0) {
                l.await_decision(ctx, || self.cut.pending(self.emitted).is_some());
            }
            match status {
                ReadStatus::More => idle_sleep = Duration::from_millis(10),
                ReadStatus::Idle => {
                    // Idle: a barrier (or a stop) cannot wait for records that may never come.
                    if ctx.stopping() {
                        return self.end(ctx, EndKind::Pause);
                    }
                    if let Some(id) = self.cut.pending(self.emitted) {
                        self.barrier(id)?;
                    }
                    if n == 0 {
                        std::thread::sleep(idle_sleep);
                        idle_sleep = (idle_sleep * 2).min(Duration::from_millis(250));
                    }
                }
                ReadStatus::Eof => {
                    let kind = match self.source.at_end() {
                        AtEnd::Finish => EndKind::Finish,
                        _ => EndKind::Pause,
                    };
                    return self.end(ctx, kind);
                }
            }
        }
    }

    /// Lets the source send what it holds back (it counted that input already).
    fn settle(&mut self) -> StageResult {
        self.consumed += self.source.settle(&mut self.out)? as u64;
        Ok(())
    }

    fn barrier(&mut self, id: u64) -> StageResult {
        self.settle()?;
        self.emitted = id;
        let state = self.source.snapshot()?;
        let _ = self.out.ctx.reports.send(Report::State {
            id,
            node: self.node,
            state: with_consumed(state, self.consumed),
        });
        self.out.broadcast(Msg::Barrier(id))
    }

    fn end(&mut self, ctx: &Context, kind: EndKind) -> StageResult {
        self.settle()?;
        if let Some(id) = self.cut.pending(self.emitted) {
            self.barrier(id)?;
        }
        let state = self.source.snapshot()?;
        let _ = ctx.reports.send(Report::Ended {
            node: self.node,
            state: with_consumed(state, self.consumed),
            finished: kind == EndKind::Finish,
        });
        self.out.broadcast(Msg::End(kind))
    }
}

/// Wraps a source's own state with the count of records consumed, which fixes the logical
/// batch numbering on resume.
fn with_consumed(state: Vec<u8>, consumed: u64) -> Vec<u8> {
    let inner: serde_json::Value =
        serde_json::from_slice(&state).unwrap_or(serde_json::Value::Null);
    serde_json::to_vec(&serde_json::json!({ "consumed": consumed, "source": inner }))
        .unwrap_or_default()
}

/// Splits a restored source state into (records consumed, the source's own state).
pub fn split_state(state: &[u8]) -> Result<(u64, serde_json::Value), Error> {
    let v: serde_json::Value = serde_json::from_slice(state)
        .map_err(|e| Error::runtime(format!("source state in checkpoint is unreadable: {e}")))?;
    let consumed = v.get("consumed").and_then(|c| c.as_u64()).unwrap_or(0);
    Ok((
        consumed,
        v.get("source").cloned().unwrap_or(serde_json::Value::Null),
    ))
}
