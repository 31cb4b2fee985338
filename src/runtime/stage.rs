//! The loop every transform and sink thread runs: receive messages, merge several inputs in a
//! deterministic order, align checkpoint barriers, hand batches to the operator, snapshot state
//! at barriers, and pass end-of-stream on.

use super::align::Alignment;
use super::context::{Context, Report};
use super::merge::{Merge, Step};
use super::message::{Batch, EndKind, FoldedTables, Msg, Origin, Record, END_SEQ};
use crate::error::Error;
use crate::pipeline::spec::OnError;
use crate::value::{Map, Str, Value};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

/// Why a stage loop stopped early.
pub enum Stop {
    /// A channel peer went away: some other stage failed or the run is stopping.
    Disconnected,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Failed(e)
    }
}

pub type StageResult<T = ()> = std::result::Result<T, Stop>;

pub type DeferredSnapshot = Box<dyn FnOnce() -> Result<Vec<u8>, Error> + Send>;

/// Takes the operator's state for checkpoint `id` and reports it; deferred encodings run on a
/// helper thread.
fn report_barrier(op: &mut dyn Operator, id: u64, node: usize, ctx: &Context) -> StageResult {
    let t = std::time::Instant::now();
    op.barrier(id);
    if let Some(job) = op.snapshot_deferred() {
        ctx.note_stall(node, t.elapsed());
        let tx = ctx.reports.clone();
        let spawned = std::thread::Builder::new()
            .name("weir:snapshot".into())
            .spawn(move || match job() {
                Ok(state) => {
                    let _ = tx.send(Report::State { id, node, state });
                }
                Err(e) => {
                    let _ = tx.send(Report::Failed { node, error: e });
                }
            });
        if spawned.is_err() {
            return Err(Stop::Failed(Error::runtime(
                "cannot start a snapshot thread",
            )));
        }
        return Ok(());
    }
    let state = op.snapshot()?;
    ctx.note_stall(node, t.elapsed());
    let _ = ctx.reports.send(Report::State { id, node, state });
    Ok(())
}

/// A transform or a sink, as the stage loop sees it.
pub trait Operator: Send {
    /// Handles one batch from input `input` (index into the node's inputs).
    fn process(&mut self, input: usize, batch: Batch, out: &mut Output) -> StageResult;

    /// Counts and sums folded upstream (only `aggregate` and `window` are ever sent them).
    fn folded(&mut self, _p: FoldedTables, _out: &mut Output) -> StageResult {
        Err(Stop::Failed(Error::runtime(
            "internal: folded counts sent to a node that does not aggregate",
        )))
    }

    /// Every input finished: emit final results.
    fn finish(&mut self, _out: &mut Output) -> StageResult {
        Ok(())
    }

    /// Checkpoint `id`'s barrier reached the operator; `snapshot` follows. (The final
    /// snapshot at the end of the stream has no barrier.)
    fn barrier(&mut self, _id: u64) {}

    /// The operator's state for a checkpoint; sinks make their output durable here.
    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        Ok(Vec::new())
    }

    /// For large state: take a cheap copy now and return the work of encoding it, which runs
    /// on another thread so the pipeline is not held up. `None` means use `snapshot`.
    fn snapshot_deferred(&mut self) -> Option<DeferredSnapshot> {
        None
    }

    /// Restores the state `snapshot` returned in an earlier run.
    fn restore(&mut self, _state: &[u8]) -> Result<(), Error> {
        Ok(())
    }

    /// A checkpoint this operator took part in is complete and durable.
    fn committed(&mut self, _id: u64) -> Result<(), Error> {
        Ok(())
    }

    /// Nothing has come in for a moment (sinks): write out what is buffered, so records read
    /// in `follow` reach their files and stdout within a second, not at the next checkpoint.
    fn idle(&mut self) -> StageResult {
        Ok(())
    }
}

/// How long a sink waits for more input before writing out what it holds.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// Where a node's results go: its main output, its late side output, and the dead-letter
/// sinks of the sources whose records it handles. Records are buffered and sent as one batch.
pub struct Output {
    pub node: usize,
    pub ctx: Arc<Context>,
    main: Vec<Sender<Msg>>,
    late: Vec<Sender<Msg>>,
    errors: Vec<(u32, Sender<Msg>)>,
    buf: Vec<Record>,
    /// How many records of `buf` came through `push_judged`.
    judged: usize,
    late_buf: Vec<Record>,
    err_buf: Vec<Record>,
}

impl Output {
    pub fn new(
        node: usize,
        ctx: Arc<Context>,
        main: Vec<Sender<Msg>>,
        late: Vec<Sender<Msg>>,
        errors: Vec<(u32, Sender<Msg>)>,
    ) -> Output {
        Output {
            node,
            ctx,
            main,
            late,
            errors,
            buf: Vec::new(),
            judged: 0,
            late_buf: Vec::new(),
            err_buf: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, r: Record) {
        self.buf.push(r);
    }

    /// A source's record that its pushed-down filter kept when the parse workers ran it: a
    /// batch of only such records is sent `judged` (see `Batch::judged`).
    #[inline]
    pub fn push_judged(&mut self, r: Record) {
        self.buf.push(r);
        self.judged += 1;
    }

    /// The main output buffer, for operators that fill it directly.
    #[inline]
    pub fn buffer(&mut self) -> &mut Vec<Record> {
        &mut self.buf
    }

    pub fn has_late_output(&self) -> bool {
        !self.late.is_empty()
    }

    pub fn push_late(&mut self, r: Record) {
        if !self.late.is_empty() {
            self.late_buf.push(r);
        }
    }

    /// A record this node could not handle: fail, skip or dead-letter, by its source's
    /// `on_error`. `raw` is the input line for parse errors; otherwise the record is written.
    pub fn bad(
        &mut self,
        origin: Origin,
        error: &str,
        raw: Option<&[u8]>,
        record: Option<Value>,
    ) -> StageResult {
        let ctx = &self.ctx;
        ctx.stats[self.node].add_errors(1);
        match ctx.on_error(&origin) {
            OnError::Fail => {
                let (src, file) = ctx.locate(&origin);
                // CSV piped into a source without `format` fails on its header: say why.
                let hint = if origin.line == 1
                    && file == "<stdin>"
                    && error.starts_with("invalid JSON")
                    && raw.is_some_and(|r| !r.starts_with(b"{") && r.contains(&b','))
                {
                    "; this source reads stdin as jsonl, and this line looks like a CSV header: \
                     for CSV set format = \"csv\" (weir do: --from csv)"
                } else {
                    ""
                };
                Err(Stop::Failed(Error::bad_input(format!(
                    "bad input in source '{src}' at {}:{} (byte offset {}): node '{}': {}{hint}",
                    crate::escape::text(&file),
                    origin.line,
                    origin.offset,
                    ctx.names[self.node],
                    crate::escape::text(error)
                ))))
            }
            OnError::Skip => Ok(()),
            OnError::DeadLetter => {
                let (src, file) = ctx.locate(&origin);
                let mut m = Map::with_capacity(8);
                m.push_unique(Str::new("source"), Value::Str(Str::from(src)));
                m.push_unique(Str::new("file"), Value::Str(Str::from(file)));
                m.push_unique(Str::new("line"), Value::Int(origin.line as i64));
                m.push_unique(Str::new("offset"), Value::Int(origin.offset as i64));
                m.push_unique(
                    Str::new("node"),
                    Value::Str(Str::new(&ctx.names[self.node])),
                );
                m.push_unique(Str::new("error"), Value::str(error));
                if let Some(raw) = raw {
                    m.push_unique(
                        Str::new("raw"),
                        Value::Str(Str::from(String::from_utf8_lossy(raw))),
                    );
                }
                if let Some(rec) = record {
                    m.push_unique(Str::new("record"), rec);
                }
                self.err_buf.push(Record {
                    value: Value::Object(m),
                    origin,
                });
                Ok(())
            }
        }
    }

    /// Sends what was buffered as batches numbered `seq`. With `progress`, every output gets
    /// a batch even when it is empty: a node that merges several inputs needs to hear from
    /// each of them how far it has got, or a quiet input (a selective filter, a dead-letter
    /// edge without bad records) would hold it waiting while the busy inputs' channels fill up.
    pub fn flush_batch(&mut self, seq: u64, progress: bool) -> StageResult {
        if progress || !self.buf.is_empty() {
            let records = std::mem::take(&mut self.buf);
            let judged = !records.is_empty() && self.judged == records.len();
            self.judged = 0;
            self.ctx.stats[self.node].add_out(records.len());
            send_all(
                &self.main,
                Msg::Batch(Batch {
                    seq,
                    records,
                    judged,
                }),
            )?;
        }
        if progress || !self.late_buf.is_empty() {
            let records = std::mem::take(&mut self.late_buf);
            send_all(&self.late, Msg::Batch(Batch::new(seq, records)))?;
        }
        if progress || !self.err_buf.is_empty() {
            let mut all = std::mem::take(&mut self.err_buf);
            let last = self.errors.len().saturating_sub(1);
            for (k, (src, tx)) in self.errors.iter().enumerate() {
                let records: Vec<Record> = if k == last && self.errors.len() == 1 {
                    std::mem::take(&mut all)
                } else {
                    all.iter()
                        .filter(|r| r.origin.source == *src)
                        .cloned()
                        .collect()
                };
                if progress || !records.is_empty() {
                    tx.send(Msg::Batch(Batch::new(seq, records)))
                        .map_err(|_| Stop::Disconnected)?;
                }
            }
        }
        Ok(())
    }

    /// Sends what was buffered (nothing when there is nothing).
    pub fn flush(&mut self, seq: u64) -> StageResult {
        self.flush_batch(seq, false)
    }

    /// Sends folded counts (see `sources::folding`) to the main output, which is one
    /// aggregate or window.
    pub fn send_folded(&mut self, p: FoldedTables) -> StageResult {
        self.ctx.stats[self.node].add_out(p.records as usize);
        send_all(&self.main, Msg::Folded(p))
    }

    /// Sends a control message (watermark, barrier, end) on every outgoing channel.
    pub fn broadcast(&mut self, msg: Msg) -> StageResult {
        for tx in self.main.iter().chain(self.late.iter()) {
            tx.send(msg.clone()).map_err(|_| Stop::Disconnected)?;
        }
        for (_, tx) in &self.errors {
            tx.send(msg.clone()).map_err(|_| Stop::Disconnected)?;
        }
        Ok(())
    }
}

/// Fan-out: the batch is cloned for all consumers but the last, which gets the original.
fn send_all(txs: &[Sender<Msg>], msg: Msg) -> StageResult {
    if let Some((last, rest)) = txs.split_last() {
        for tx in rest {
            tx.send(msg.clone()).map_err(|_| Stop::Disconnected)?;
        }
        last.send(msg).map_err(|_| Stop::Disconnected)?;
    }
    Ok(())
}

/// Runs one node until its inputs end or the run stops; failures go to the context.
pub fn run_stage(
    node: usize,
    mut op: Box<dyn Operator>,
    inputs: Vec<Receiver<Msg>>,
    mut out: Output,
    control: Option<Receiver<u64>>,
    ctx: Arc<Context>,
) {
    let r = stage_loop(node, op.as_mut(), &inputs, &mut out, control.as_ref(), &ctx);
    if let Err(Stop::Failed(e)) = r {
        ctx.fail(node, e);
    }
}

fn stage_loop(
    node: usize,
    op: &mut dyn Operator,
    inputs: &[Receiver<Msg>],
    out: &mut Output,
    control: Option<&Receiver<u64>>,
    ctx: &Context,
) -> StageResult {
    let n = inputs.len();
    let mut merge = Merge::new(n);
    let mut ended: Vec<Option<EndKind>> = vec![None; n];
    let mut align = Alignment::new(n);
    // Output caused by a watermark carries the seq of the batch that advanced it.
    let mut last_seq = 0u64;
    // The seq of what sits in the output buffer, flushed when it changes.
    let mut out_seq: Option<u64> = None;
    loop {
        // Fill the head of every live input that is not held at a barrier.
        for i in 0..n {
            while merge.is_empty(i) && ended[i].is_none() && !align.is_held(i) {
                let msg = match inputs[i].try_recv() {
                    Ok(m) => m,
                    Err(_) => {
                        // About to wait: send what is buffered so downstream is not starved,
                        // but no progress marker. This input may still bring records of
                        // batch `s`, so an empty batch `s` ("nothing more up to the end of
                        // `s`") would be untrue, and a merge downstream would order by thread
                        // timing. A non-empty batch promises nothing: the merge waits for the
                        // next message. The marker goes out when the merge here passes `s`.
                        if let Some(s) = out_seq {
                            out.flush(s)?;
                        }
                        recv(&inputs[i], control, op)?
                    }
                };
                match msg {
                    Msg::Batch(b) => {
                        ctx.stats[node].add_in(b.records.len());
                        if n == 1 {
                            // One input: no merge, hand the batch over whole.
                            last_seq = b.seq;
                            op.process(0, b, out)?;
                            out.flush_batch(last_seq, true)?;
                            continue;
                        }
                        merge.push(i, b.seq, b.records);
                    }
                    Msg::Folded(p) => {
                        if n != 1 {
                            return Err(Stop::Failed(Error::runtime(
                                "internal: folded counts sent to a node with several inputs",
                            )));
                        }
                        ctx.stats[node].add_in(p.records as usize);
                        op.folded(p, out)?;
                        // A window fires what the folded records' watermark reached.
                        out.flush_batch(last_seq, false)?;
                    }
                    Msg::Barrier(id) => align.arrived(i, id),
                    Msg::End(k) => ended[i] = Some(k),
                }
            }
        }
        if let Some(step) = merge.next_step() {
            let seq = match &step {
                Step::Run { seq, .. } | Step::Progress { seq } => *seq,
            };
            if let Some(s) = out_seq.filter(|&s| s != seq) {
                out_seq = None;
                out.flush_batch(s, true)?;
            }
            // A progress marker has done its job once it is the smallest head.
            if let Step::Run { input, records, .. } = step {
                last_seq = seq;
                out_seq = Some(seq);
                op.process(input, Batch::new(seq, records), out)?;
            }
            continue;
        }
        if let Some(s) = out_seq.take() {
            out.flush_batch(s, true)?;
        }
        // No data waiting: every live input is at a barrier, or every input has ended.
        if ended.iter().all(|k| k.is_some()) {
            let finished = ended.iter().all(|k| *k == Some(EndKind::Finish));
            if let Some(id) = align.owed() {
                report_barrier(op, id, node, ctx)?;
                out.broadcast(Msg::Barrier(id))?;
            }
            if finished {
                op.finish(out)?;
                out.flush(END_SEQ)?;
            }
            let state = op.snapshot()?;
            let _ = ctx.reports.send(Report::Ended {
                node,
                state,
                finished,
            });
            out.broadcast(Msg::End(if finished {
                EndKind::Finish
            } else {
                EndKind::Pause
            }))?;
            // Sinks stay to hear that the final checkpoint is durable (spooled output).
            if let Some(c) = control {
                while let Ok(id) = c.recv() {
                    op.committed(id)?;
                }
            }
            return Ok(());
        }
        if let Some(id) = align.complete(|i| ended[i].is_none()) {
            report_barrier(op, id, node, ctx)?;
            out.broadcast(Msg::Barrier(id))?;
            continue;
        }
        // Unreachable in a well-formed stream; treat as a broken peer rather than spin.
        return Err(Stop::Disconnected);
    }
}

/// Receives the next data message; commit notices for sinks are handled in between.
fn recv(
    rx: &Receiver<Msg>,
    control: Option<&Receiver<u64>>,
    op: &mut dyn Operator,
) -> StageResult<Msg> {
    let Some(c) = control else {
        return rx.recv().map_err(|_| Stop::Disconnected);
    };
    let mut flushed = false;
    loop {
        if flushed {
            crossbeam_channel::select! {
                recv(rx) -> m => return m.map_err(|_| Stop::Disconnected),
                recv(c) -> id => match id {
                    Ok(id) => op.committed(id)?,
                    Err(_) => return rx.recv().map_err(|_| Stop::Disconnected),
                },
            }
        } else {
            crossbeam_channel::select! {
                recv(rx) -> m => return m.map_err(|_| Stop::Disconnected),
                recv(c) -> id => match id {
                    Ok(id) => op.committed(id)?,
                    Err(_) => return rx.recv().map_err(|_| Stop::Disconnected),
                },
                default(IDLE_FLUSH) => {
                    op.idle()?;
                    flushed = true;
                }
            }
        }
    }
}
