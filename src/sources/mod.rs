//! Sources and the loop that drives them: read records into logical batches of `BATCH_SIZE`
//! input records, inject checkpoint barriers at the batch the coordinator asked for, and stop
//! cleanly at end of input or on a signal.

pub mod file;
pub mod formats;
pub mod generate;

use crate::error::Error;
use crate::pipeline::graph::BATCH_SIZE;
use crate::pipeline::spec::AtEnd;
use crate::runtime::context::{Context, Report};
use crate::runtime::message::{EndKind, Msg};
use crate::runtime::stage::{Output, StageResult, Stop};
use crossbeam_channel::Receiver;
use std::sync::atomic::{AtomicU64, Ordering};
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

    /// Total input bytes when known (for the progress bar).
    fn total_bytes(&self) -> Option<u64> {
        None
    }

    fn at_end(&self) -> AtEnd;
}

/// A request from the coordinator: inject barrier `id` before the first batch whose logical
/// number is `at_seq` or more (or at once if the source is idle or ends first).
#[derive(Debug, Clone, Copy)]
pub struct Trigger {
    pub id: u64,
    pub at_seq: u64,
}

pub struct SourceDriver {
    pub node: usize,
    pub source: Box<dyn Source>,
    pub out: Output,
    pub triggers: Receiver<Trigger>,
    /// Logical number of the next batch; the coordinator reads it to pick `at_seq`.
    pub progress: Arc<AtomicU64>,
    /// Input records consumed before this run (restored from a checkpoint).
    pub consumed: u64,
}

impl SourceDriver {
    pub fn run(mut self, ctx: Arc<Context>) {
        let r = self.drive(&ctx);
        if let Err(Stop::Failed(e)) = r {
            ctx.fail(self.node, e);
        }
    }

    fn drive(&mut self, ctx: &Context) -> StageResult {
        let mut pending: Vec<Trigger> = Vec::new();
        let mut idle_sleep = Duration::from_millis(10);
        loop {
            while let Ok(t) = self.triggers.try_recv() {
                pending.push(t);
            }
            if ctx.stopping() {
                return self.end(ctx, EndKind::Pause, &mut pending);
            }
            let seq = self.consumed / BATCH_SIZE as u64;
            self.progress.store(seq, Ordering::Relaxed);
            self.emit_due(seq, false, &mut pending)?;
            // Fill up to the next logical batch boundary, so that batch numbers do not depend
            // on how reads happened to be cut.
            let want = BATCH_SIZE - (self.consumed % BATCH_SIZE as u64) as usize;
            let (n, status) = self.source.read(want, &mut self.out)?;
            self.consumed += n as u64;
            ctx.stats[self.node].add_in(n);
            self.out.flush(seq)?;
            match status {
                ReadStatus::More => idle_sleep = Duration::from_millis(10),
                ReadStatus::Idle => {
                    // Idle: a barrier cannot wait for records that may never come.
                    self.emit_due(u64::MAX, true, &mut pending)?;
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
                    return self.end(ctx, kind, &mut pending);
                }
            }
        }
    }

    fn emit_due(&mut self, seq: u64, all: bool, pending: &mut Vec<Trigger>) -> StageResult {
        while let Some(t) = pending.first().copied() {
            if !all && t.at_seq > seq {
                break;
            }
            pending.remove(0);
            let state = self.source.snapshot()?;
            let _ = self.out.ctx.reports.send(Report::State {
                id: t.id,
                node: self.node,
                state: with_consumed(state, self.consumed),
            });
            self.out.broadcast(Msg::Barrier(t.id))?;
        }
        Ok(())
    }

    fn end(&mut self, ctx: &Context, kind: EndKind, pending: &mut Vec<Trigger>) -> StageResult {
        self.emit_due(u64::MAX, true, pending)?;
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
