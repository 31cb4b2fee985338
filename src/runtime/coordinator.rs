//! The checkpoint coordinator, on the thread that started the run: triggers a checkpoint every
//! `every` or `every_records`, collects every node's state for it, writes the checkpoint file,
//! then tells the sinks it is durable (their commit). It also draws the progress bar, as it
//! wakes up regularly anyway.

use super::build::Attempt;
use super::context::{Context, Report, StopReason};
use super::settings::CheckpointSettings;
use crate::checkpoint::store::Store;
use crate::pipeline::PipelineSpec;
use crate::sources::Cut;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Id, each node's state so far, and when it started.
type Inflight = (u64, Vec<Option<Vec<u8>>>, Instant);

pub(super) struct Coordinator<'a> {
    n: usize,
    ck: &'a CheckpointSettings,
    store: Option<&'a Store>,
    spec: &'a PipelineSpec,
    hash: &'a str,
    configs: &'a super::edits::Stamp,
    next_id: u64,
    /// The checkpoint being taken: id, each node's state so far, when it started.
    inflight: Option<Inflight>,
    /// Final states of nodes whose stream ended, and whether it finished.
    ended: Vec<Option<(Vec<u8>, bool)>>,
    exited: usize,
    last: Instant,
    records_at_last: u64,
    cut: Arc<Cut>,
    pub(super) sources: Vec<usize>,
    commits: Vec<Sender<u64>>,
    /// (id, duration ms, bytes) of every checkpoint written.
    pub(super) taken: Vec<(u64, f64, u64)>,
    pub(super) progress: Option<super::progress::Progress>,
}

impl<'a> Coordinator<'a> {
    pub(super) fn new(
        a: &Attempt<'a>,
        cut: Arc<Cut>,
        sources: Vec<usize>,
        commits: Vec<Sender<u64>>,
        progress: Option<super::progress::Progress>,
    ) -> Coordinator<'a> {
        let n = a.g.nodes.len();
        Coordinator {
            n,
            ck: a.ck,
            store: a.store,
            spec: a.spec,
            hash: a.hash,
            configs: a.configs,
            next_id: a.store.map(|s| s.next_id()).unwrap_or(1),
            inflight: None,
            ended: vec![None; n],
            exited: 0,
            last: Instant::now(),
            records_at_last: 0,
            cut,
            sources,
            commits,
            taken: Vec::new(),
            progress,
        }
    }
    pub(super) fn run(&mut self, rx: &Receiver<Report>, ctx: &Context) {
        // Short intervals need a short tick; 20 ms otherwise keeps an idle weir idle. Sources
        // in lockstep wait for each decision.
        let tick = Duration::from_millis(match (&ctx.lockstep, self.ck.every_ms) {
            (Some(_), _) => 1,
            (None, Some(ms)) => (ms / 2).clamp(1, 20) as u64,
            (None, None) => 20,
        });
        // The first draw at once: a short run still shows its bar.
        let mut last_draw = Instant::now() - Duration::from_secs(1);
        while self.exited < self.n {
            match rx.recv_timeout(tick) {
                Ok(Report::State { id, node, state }) => {
                    if let Some((cur, slots, _)) = &mut self.inflight {
                        if *cur == id {
                            slots[node] = Some(state);
                        }
                    }
                    self.maybe_complete(ctx);
                }
                Ok(Report::Ended {
                    node,
                    state,
                    finished,
                }) => {
                    self.ended[node] = Some((state.clone(), finished));
                    // A node that ended stands in any later checkpoint with its final state.
                    if let Some((_, slots, _)) = &mut self.inflight {
                        if slots[node].is_none() {
                            slots[node] = Some(state);
                        }
                    }
                    if self.ended.iter().all(|e| e.is_some()) {
                        self.final_checkpoint(ctx);
                    } else {
                        self.maybe_complete(ctx);
                    }
                }
                Ok(Report::Failed { node, error }) => ctx.fail(node, error),
                Ok(Report::Exited { .. }) => self.exited += 1,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if ctx.stop_reason() == StopReason::Failure {
                // No checkpoint after a failure; let the sinks go.
                self.inflight = None;
                self.commits.clear();
            } else {
                self.maybe_trigger(ctx);
            }
            if let Some(p) = &self.progress {
                if last_draw.elapsed() >= Duration::from_millis(200) {
                    last_draw = Instant::now();
                    p.draw(ctx, &self.sources, self.taken.last().map(|c| c.0));
                }
            }
        }
    }

    fn maybe_trigger(&mut self, ctx: &Context) {
        if self.inflight.is_some() {
            return;
        }
        self.trigger_if_due(ctx);
        if let Some(l) = &ctx.lockstep {
            l.decided();
        }
    }

    fn trigger_if_due(&mut self, ctx: &Context) {
        if !self.ck.enabled || ctx.stopping() {
            return;
        }
        let live = self
            .sources
            .iter()
            .filter(|&&i| self.ended[i].is_none())
            .count();
        if live == 0 {
            return;
        }
        let records: u64 = self
            .sources
            .iter()
            .map(|&i| ctx.stats[i].records_in.load(Ordering::Relaxed))
            .sum();
        let due_time = self
            .ck
            .every_ms
            .is_some_and(|ms| self.last.elapsed() >= Duration::from_millis(ms.max(1) as u64));
        let due_records = self
            .ck
            .every_records
            .is_some_and(|r| records.saturating_sub(self.records_at_last) >= r.max(1));
        if !(due_time || due_records) {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut slots = vec![None; self.n];
        for (i, e) in self.ended.iter().enumerate() {
            if let Some((s, _)) = e {
                slots[i] = Some(s.clone());
            }
        }
        self.inflight = Some((id, slots, Instant::now()));
        self.records_at_last = records;
        self.cut.request(id);
        ctx.info(format!("checkpoint {id} triggered"));
    }

    fn maybe_complete(&mut self, ctx: &Context) {
        let complete =
            matches!(&self.inflight, Some((_, slots, _)) if slots.iter().all(|s| s.is_some()));
        if !complete {
            return;
        }
        let Some((id, slots, started)) = self.inflight.take() else {
            return;
        };
        self.last = Instant::now();
        let states: Vec<Vec<u8>> = slots.into_iter().map(|s| s.unwrap_or_default()).collect();
        if self.write(ctx, id, states, false, false, started) {
            for c in &self.commits {
                let _ = c.send(id);
            }
        }
    }

    fn final_checkpoint(&mut self, ctx: &Context) {
        self.inflight = None;
        if ctx.stop_reason() == StopReason::Failure {
            self.commits.clear();
            return;
        }
        let finished = self.ended.iter().all(|e| e.as_ref().is_some_and(|x| x.1));
        let states: Vec<Vec<u8>> = self
            .ended
            .iter()
            .map(|e| e.as_ref().map(|x| x.0.clone()).unwrap_or_default())
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        if self.write(ctx, id, states, true, finished, Instant::now()) {
            for c in &self.commits {
                let _ = c.send(id);
            }
        }
        // Sinks wait for this to leave; dropping the senders lets them go.
        self.commits.clear();
    }

    /// Writes checkpoint `id`; false (and the run failed) if it could not be written.
    fn write(
        &mut self,
        ctx: &Context,
        id: u64,
        states: Vec<Vec<u8>>,
        ended: bool,
        finished: bool,
        started: Instant,
    ) -> bool {
        let Some(store) = self.store else {
            return true;
        };
        let meta = crate::checkpoint::format::Meta {
            id,
            pipeline: &self.spec.name,
            pipeline_hash: self.hash,
            state_config: &self.configs.configs,
            dropped: &self.configs.dropped,
            created_ms: jiff::Timestamp::now().as_millisecond(),
            ended,
            finished,
        };
        let parts: Vec<(&str, &[u8])> = ctx
            .names
            .iter()
            .zip(&states)
            .map(|(n, s)| (n.as_str(), s.as_slice()))
            .collect();
        let bytes = match crate::checkpoint::format::encode_parts(&meta, &parts) {
            Ok(b) => b,
            Err(e) => {
                ctx.fail_run(e);
                return false;
            }
        };
        crate::crash_point!("checkpoint-before-write");
        match store.write_encoded(id, &bytes, self.ck.retain) {
            Ok(bytes) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                self.taken.push((id, ms, bytes));
                ctx.info(format!(
                    "checkpoint {id} written ({bytes} bytes, {ms:.1} ms)"
                ));
                // Between the checkpoint being durable and the sinks hearing of it.
                crate::crash_point!("checkpoint-after-write");
                true
            }
            Err(e) => {
                ctx.fail_run(e.context(format!("checkpoint {id}")));
                false
            }
        }
    }
}
