//! `parallelism = N` on a keyed node: one node of the graph whose operator owns N instances of
//! the node's operator, each holding the keys of its key groups (`keygroup`), and N - 1 worker
//! threads. Nothing else in the graph changes: the stage around it still merges inputs and
//! aligns barriers, and sees one operator.
//!
//! The output must be byte for byte what one instance gives, so the work is split where order
//! does not matter. Per batch:
//! 1. *Evaluate*, in parallel by position: the batch is cut into up to N runs of records, and
//!    each thread evaluates its run (key, event time, arguments, the key's group), freeing the
//!    records it will not need again. Evaluating reads no state, so any thread may do it.
//! 2. *Route*, on the stage thread, in order: bad records go to the dead letters, late ones to
//!    `.late`, and what is global is kept here: the clock of `dedup` and `state_ttl`, the
//!    watermark of `window`. Each good record becomes an *item* for the instance that owns its
//!    key group (key, time, arguments, its position in the batch, the clock after it);
//!    watermark advances go to every instance.
//! 3. *Apply*, in parallel by key: the instances update their state, one on the stage thread
//!    and the others on the workers, and note each output with the position that caused it
//!    (and, for windows that fire, their end, start and key).
//! 4. *Merge*, on the stage thread: outputs in the order one instance makes them, by position;
//!    at one position the record's own outputs first (one instance has them), then what the
//!    watermark fired there, by window end, start and key, as `window` fires them.
//!
//! Instances and evaluators move to the workers and back with each batch (a pointer through a
//! channel), so between batches the stage thread holds them all: finishing, snapshots and
//! restores see every instance without locks. Checkpoints store state per key group in the
//! same bytes whatever N wrote them (each operator encodes its instances in group order).

use super::keygroup::{instance_of, key_group};
use crate::error::Error;
use crate::runtime::message::{Batch, FoldedTables, Record};
use crate::runtime::stage::{DeferredSnapshot, Operator, Output, StageResult, Stop};
use crate::value::Value;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

/// One output of an instance, with what orders it among the others.
pub struct Out {
    /// Position in the batch of the record that caused it.
    pub pos: u32,
    /// A window fired by the watermark: (end, start, key). `None`: the record's own output.
    pub fire: Option<(i64, i64, Value)>,
    pub record: Record,
}

impl Out {
    /// Whether `self` comes before `other` in the output of one instance.
    #[inline]
    fn before(&self, other: &Out) -> bool {
        if self.pos != other.pos {
            return self.pos < other.pos;
        }
        match (&self.fire, &other.fire) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => (a.0, a.1, &a.2) < (b.0, b.1, &b.2),
        }
    }
}

/// An instance's share of a batch: its items, and the values that go with them (the
/// aggregates' arguments, `width` per item; folded counts and sums), kept flat so that an
/// item costs no allocation of its own.
pub struct Share<I> {
    pub items: Vec<I>,
    pub args: Vec<Option<Value>>,
    pub nums: Vec<i64>,
}

impl<I> Default for Share<I> {
    fn default() -> Self {
        Share {
            items: Vec::new(),
            args: Vec::new(),
            nums: Vec::new(),
        }
    }
}

impl<I> Share<I> {
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn clear(&mut self) {
        self.items.clear();
        self.args.clear();
        self.nums.clear();
    }
}

/// Where the router puts each record's item: the share of the instance that owns its key.
pub struct Routes<I> {
    n: usize,
    max: u32,
    pub shares: Vec<Share<I>>,
}

impl<I> Routes<I> {
    /// The share of the instance that owns `key`.
    #[inline]
    pub fn of(&mut self, key: &Value) -> &mut Share<I> {
        let g = key_group(key, self.max);
        self.at(g)
    }

    /// The share of the instance that owns key group `g`.
    #[inline]
    pub fn at(&mut self, g: u32) -> &mut Share<I> {
        &mut self.shares[instance_of(g, self.n, self.max)]
    }
}

/// What evaluating a run of records gave, one entry per record in order, with the good
/// records' arguments (`width` each) kept flat.
pub struct Evals<E> {
    pub list: Vec<E>,
    pub args: Vec<Option<Value>>,
}

impl<E> Default for Evals<E> {
    fn default() -> Self {
        Evals {
            list: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// A run of a batch's records and their evaluations.
pub struct Chunk<E> {
    pub records: Vec<Record>,
    pub evals: Evals<E>,
}

/// Reads a batch's evaluated runs in order for a router, each record at its position in the
/// batch: a bad one goes to the dead letters, a good one to `each` with what evaluating it
/// gave and its arguments (`width` of them).
pub fn walk<T>(
    chunks: &mut [Chunk<Result<T, String>>],
    width: usize,
    out: &mut Output,
    mut each: impl FnMut(u32, &mut Record, T, &mut [Option<Value>], &mut Output) -> StageResult,
) -> StageResult {
    let mut pos = 0u32;
    for c in chunks.iter_mut() {
        let Evals { list, args } = &mut c.evals;
        let mut a = 0;
        for (rec, ev) in c.records.iter_mut().zip(list.drain(..)) {
            match ev {
                Err(msg) => {
                    out.bad(rec.origin, &msg, None, Some(std::mem::take(&mut rec.value)))?
                }
                Ok(x) => {
                    each(pos, rec, x, &mut args[a..a + width], out)?;
                    a += width;
                }
            }
            pos += 1;
        }
    }
    Ok(())
}

/// A keyed operator that can run as several instances (see the module's introduction).
pub trait Split: Operator + Sized + 'static {
    /// What evaluating one record gives (or why it is bad).
    type Eval: Send + 'static;
    /// What evaluates: the node's expressions (which keep caches, so each thread has its own).
    type Evaluator: Send + 'static;
    /// What the router hands an instance for one record.
    type Item: Send + 'static;
    /// What every instance takes from a batch besides its items (watermark advances, a purge).
    type Shared: Send + Sync + 'static;
    /// The part that reads every record in order.
    type Router: Send + 'static;

    /// An instance with this operator's settings and no state.
    fn instance(&self) -> Self;
    fn router(&self) -> Self::Router;
    /// `max`: the number of key groups, whose numbers the evaluator works out.
    fn evaluator(&self, max: u32) -> Self::Evaluator;

    /// Evaluates records (any run of a batch, on any thread), freeing the values the router
    /// will not need: it needs bad records, records that may be late when the node's `.late`
    /// output is read (`keep_late`), and those the node outputs as they are.
    fn evaluate(
        ev: &mut Self::Evaluator,
        records: &mut [Record],
        evals: &mut Evals<Self::Eval>,
        keep_late: bool,
    );

    /// Reads a batch's evaluated runs in order: bad and late records go to `out`, items to
    /// `to`.
    fn route(
        r: &mut Self::Router,
        input: usize,
        chunks: &mut [Chunk<Self::Eval>],
        out: &mut Output,
        to: &mut Routes<Self::Item>,
    ) -> StageResult<Self::Shared>;

    /// The same for counts and sums folded upstream.
    fn route_folded(
        r: &mut Self::Router,
        p: FoldedTables,
        out: &mut Output,
        to: &mut Routes<Self::Item>,
    ) -> StageResult<Self::Shared>;

    /// For an instance without items: takes what it needs of `shared` when that is cheap and
    /// all there is to do (true), or says that `apply` must run (false).
    fn skip(&mut self, shared: &Self::Shared) -> bool;

    /// An instance's part of a batch; outputs in the order this instance makes them.
    fn apply(
        &mut self,
        share: &mut Share<Self::Item>,
        shared: &Self::Shared,
        outs: &mut Vec<Out>,
    ) -> Result<(), String>;

    /// The end of the stream: every instance's final output, merged.
    fn finish_all(r: &mut Self::Router, parts: &mut [Box<Self>], out: &mut Output) -> StageResult;

    /// The node's state, the same bytes one instance would write.
    fn snapshot_all(r: &mut Self::Router, parts: &mut [Box<Self>]) -> Result<Vec<u8>, Error>;

    /// Large state: a copy now, encoded on another thread.
    fn snapshot_deferred_all(
        _r: &mut Self::Router,
        _parts: &mut [Box<Self>],
    ) -> Option<DeferredSnapshot> {
        None
    }

    /// Loads a state whatever parallelism wrote it: each instance takes its key groups.
    fn restore_all(
        r: &mut Self::Router,
        parts: &mut [Box<Self>],
        state: &[u8],
    ) -> Result<(), Error>;
}

/// Work for a worker thread: evaluate a run of records, or apply an instance's share.
enum Job<S: Split> {
    Evaluate {
        i: usize,
        ev: Box<S::Evaluator>,
        chunk: Chunk<S::Eval>,
        keep_late: bool,
    },
    Apply {
        i: usize,
        part: Box<S>,
        share: Share<S::Item>,
        shared: Arc<S::Shared>,
        outs: Vec<Out>,
    },
}

/// A job done. `None` in place of what was sent: it panicked (a bug), and the run fails.
enum Done<S: Split> {
    Evaluated {
        i: usize,
        ev: Option<Box<S::Evaluator>>,
        chunk: Option<Chunk<S::Eval>>,
    },
    Applied {
        i: usize,
        part: Option<Box<S>>,
        share: Share<S::Item>,
        outs: Vec<Out>,
        result: Result<(), String>,
    },
}

/// The worker threads, started with the first batch that needs them (so `validate` and
/// `explain`, which build operators too, start none) and stopped when the operator is dropped.
struct Pool<S: Split> {
    jobs: Option<Sender<Job<S>>>,
    done: Receiver<Done<S>>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl<S: Split> Pool<S> {
    fn start(name: &str, workers: usize) -> Result<Pool<S>, Error> {
        let (jtx, jrx) = crossbeam_channel::unbounded::<Job<S>>();
        let (dtx, drx) = crossbeam_channel::unbounded::<Done<S>>();
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (jrx, dtx) = (jrx.clone(), dtx.clone());
            let h = std::thread::Builder::new()
                .name(format!("weir:{name}#{}", w + 1))
                .spawn(move || {
                    while let Ok(job) = jrx.recv() {
                        let _ = dtx.send(work(job));
                    }
                })
                .map_err(|e| {
                    Error::runtime(format!("node '{name}': cannot start a thread: {e}"))
                })?;
            handles.push(h);
        }
        Ok(Pool {
            jobs: Some(jtx),
            done: drx,
            handles,
        })
    }
}

impl<S: Split> Drop for Pool<S> {
    fn drop(&mut self) {
        // Closing the queue ends every worker's loop.
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn work<S: Split>(job: Job<S>) -> Done<S> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    match job {
        Job::Evaluate {
            i,
            mut ev,
            mut chunk,
            keep_late,
        } => match catch_unwind(AssertUnwindSafe(|| {
            S::evaluate(&mut ev, &mut chunk.records, &mut chunk.evals, keep_late);
            (ev, chunk)
        })) {
            Ok((ev, chunk)) => Done::Evaluated {
                i,
                ev: Some(ev),
                chunk: Some(chunk),
            },
            Err(_) => Done::Evaluated {
                i,
                ev: None,
                chunk: None,
            },
        },
        Job::Apply {
            i,
            mut part,
            mut share,
            shared,
            mut outs,
        } => match catch_unwind(AssertUnwindSafe(|| {
            let r = part.apply(&mut share, &shared, &mut outs);
            (part, share, outs, r)
        })) {
            Ok((part, share, outs, result)) => Done::Applied {
                i,
                part: Some(part),
                share,
                outs,
                result,
            },
            Err(_) => Done::Applied {
                i,
                part: None,
                share: Share::default(),
                outs: Vec::new(),
                result: Err("internal error: an instance panicked".into()),
            },
        },
    }
}

/// Runs of fewer records than this are not worth a worker's time to evaluate.
const MIN_RUN: usize = 128;

/// The operator of a keyed node with `parallelism` > 1.
pub struct Parallel<S: Split> {
    name: String,
    router: S::Router,
    /// Every instance, at home between batches (`None` only while out at a worker).
    parts: Vec<Option<Box<S>>>,
    /// One evaluator per thread (the stage thread's is the first).
    evaluators: Vec<Option<Box<S::Evaluator>>>,
    /// Each run's evaluations, kept between batches for their memory.
    evals: Vec<Evals<S::Eval>>,
    routes: Routes<S::Item>,
    outs: Vec<Vec<Out>>,
    pool: Option<Pool<S>>,
    /// State from a checkpoint, loaded when a batch or the end first needs it: a run with
    /// nothing new writes the same bytes back without decoding them.
    restored: Option<Vec<u8>>,
}

impl<S: Split> Parallel<S> {
    pub fn new(name: &str, op: S, n: usize, max: u32) -> Parallel<S> {
        let parts = (0..n).map(|_| Some(Box::new(op.instance()))).collect();
        Parallel {
            name: name.to_string(),
            router: op.router(),
            parts,
            evaluators: (0..n).map(|_| Some(Box::new(op.evaluator(max)))).collect(),
            evals: (0..n).map(|_| Evals::default()).collect(),
            routes: Routes {
                n,
                max,
                shares: (0..n).map(|_| Share::default()).collect(),
            },
            outs: (0..n).map(|_| Vec::new()).collect(),
            pool: None,
            restored: None,
        }
    }

    /// Every instance, which are all at home outside `run`.
    fn home(&mut self) -> Result<Vec<Box<S>>, Error> {
        if self.parts.iter().any(Option::is_none) {
            return Err(self.lost());
        }
        Ok(self.parts.iter_mut().filter_map(Option::take).collect())
    }

    fn lost(&self) -> Error {
        Error::runtime(format!(
            "node '{}': internal error: a worker thread failed",
            self.name
        ))
    }

    fn put_back(&mut self, parts: Vec<Box<S>>) {
        for (slot, p) in self.parts.iter_mut().zip(parts) {
            *slot = Some(p);
        }
    }

    /// Runs `f` with every instance in a slice.
    fn with_all<T>(
        &mut self,
        f: impl FnOnce(&mut S::Router, &mut [Box<S>]) -> T,
    ) -> Result<T, Error> {
        let mut parts = self.home()?;
        let r = f(&mut self.router, &mut parts);
        self.put_back(parts);
        Ok(r)
    }

    fn materialize(&mut self) -> Result<(), Error> {
        let Some(state) = self.restored.take() else {
            return Ok(());
        };
        self.with_all(|r, parts| S::restore_all(r, parts, &state))?
    }

    fn send(&mut self, job: Job<S>) -> Result<(), Error> {
        if self.pool.is_none() {
            self.pool = Some(Pool::start(&self.name, self.parts.len() - 1)?);
        }
        match self.pool.as_ref().and_then(|p| p.jobs.as_ref()) {
            Some(tx) => tx.send(job).map_err(|_| self.lost()),
            None => Err(self.lost()),
        }
    }

    fn receive(&self) -> Result<Done<S>, Error> {
        match &self.pool {
            Some(p) => p.done.recv().map_err(|_| self.lost()),
            None => Err(self.lost()),
        }
    }

    /// Step 1: the batch cut into runs, evaluated in parallel; the runs in order.
    fn evaluate(
        &mut self,
        records: Vec<Record>,
        keep_late: bool,
    ) -> StageResult<Vec<Chunk<S::Eval>>> {
        let len = records.len();
        let k = (len / MIN_RUN).clamp(1, self.parts.len());
        // The first run stays on the stage thread, which routes the batch afterwards: it is
        // half as long as the others (measured with callgrind: the stage thread and the
        // workers then do about as much).
        let start = |c: usize| {
            if c == 0 {
                0
            } else {
                (2 * c - 1) * len / (2 * k - 1)
            }
        };
        let mut rest = records;
        let mut tails: Vec<Vec<Record>> = Vec::with_capacity(k - 1);
        for c in (1..k).rev() {
            tails.push(rest.split_off(start(c)));
        }
        tails.reverse();
        let mut chunks: Vec<Option<Chunk<S::Eval>>> = (0..k).map(|_| None).collect();
        for (c, records) in tails.into_iter().enumerate() {
            let i = c + 1;
            let ev = self.evaluators[i].take().ok_or_else(|| self.lost())?;
            let mut evals = std::mem::take(&mut self.evals[i]);
            evals.list.clear();
            evals.args.clear();
            self.send(Job::Evaluate {
                i,
                ev,
                chunk: Chunk { records, evals },
                keep_late,
            })?;
        }
        let mut first = Chunk {
            records: rest,
            evals: std::mem::take(&mut self.evals[0]),
        };
        first.evals.list.clear();
        first.evals.args.clear();
        let ev = self.evaluators[0]
            .as_mut()
            .ok_or_else(|| Error::runtime("internal"))?;
        S::evaluate(ev, &mut first.records, &mut first.evals, keep_late);
        chunks[0] = Some(first);
        for _ in 1..k {
            match self.receive()? {
                Done::Evaluated { i, ev, chunk } => {
                    self.evaluators[i] = ev;
                    chunks[i] = chunk;
                }
                Done::Applied { .. } => return Err(self.lost().into()),
            }
        }
        chunks
            .into_iter()
            .map(|c| c.ok_or_else(|| self.lost().into()))
            .collect()
    }

    /// Steps 3 and 4: each instance's share applied, in parallel, and the outputs merged into
    /// `out`.
    fn apply(&mut self, shared: S::Shared, out: &mut Output) -> StageResult {
        let n = self.parts.len();
        let shared = Arc::new(shared);
        // Instances with items, or with something to do for the shared part.
        let mut busy: Vec<usize> = Vec::with_capacity(n);
        for i in 0..n {
            let idle = match &mut self.parts[i] {
                Some(p) => self.routes.shares[i].is_empty() && p.skip(&shared),
                None => true,
            };
            if !idle {
                busy.push(i);
            }
        }
        // The stage thread takes the biggest share itself; the others go to the workers.
        let own = busy
            .iter()
            .copied()
            .max_by_key(|&i| (self.routes.shares[i].items.len(), std::cmp::Reverse(i)));
        let mut sent = 0;
        let mut failure: Option<String> = None;
        for &i in &busy {
            if Some(i) == own {
                continue;
            }
            let Some(part) = self.parts[i].take() else {
                continue;
            };
            let job = Job::Apply {
                i,
                part,
                share: std::mem::take(&mut self.routes.shares[i]),
                shared: shared.clone(),
                outs: std::mem::take(&mut self.outs[i]),
            };
            match self.send(job) {
                Ok(()) => sent += 1,
                Err(e) => {
                    failure.get_or_insert(e.to_string());
                    break;
                }
            }
        }
        if let Some(i) = own {
            if let Some(p) = self.parts[i].as_mut() {
                let r = p.apply(&mut self.routes.shares[i], &shared, &mut self.outs[i]);
                if let Err(e) = r {
                    failure.get_or_insert(e);
                }
            }
        }
        for _ in 0..sent {
            match self.receive() {
                Ok(Done::Applied {
                    i,
                    part,
                    share,
                    outs,
                    result,
                }) => {
                    if let Err(e) = result {
                        failure.get_or_insert(e);
                    }
                    self.parts[i] = part;
                    self.routes.shares[i] = share;
                    self.outs[i] = outs;
                }
                Ok(Done::Evaluated { .. }) | Err(_) => {
                    failure.get_or_insert("internal error: a worker thread failed".into());
                    break;
                }
            }
        }
        for s in &mut self.routes.shares {
            s.clear();
        }
        if let Some(e) = failure {
            return Err(Stop::Failed(Error::runtime(format!(
                "node '{}': {e}",
                self.name
            ))));
        }
        merge(&mut self.outs, out);
        Ok(())
    }
}

/// Pushes the instances' outputs to `out` in the order one instance would have made them.
fn merge(outs: &mut [Vec<Out>], out: &mut Output) {
    let with_output = outs.iter().filter(|o| !o.is_empty()).count();
    let buf = out.buffer();
    if with_output <= 1 {
        for o in outs.iter_mut() {
            buf.extend(o.drain(..).map(|x| x.record));
        }
        return;
    }
    let mut at = vec![0usize; outs.len()];
    loop {
        // The instance whose next output comes first, and the first of the others.
        let (mut best, mut second): (Option<usize>, Option<usize>) = (None, None);
        for i in 0..outs.len() {
            let Some(h) = head(outs, &at, i) else {
                continue;
            };
            if best.is_none_or(|b| head(outs, &at, b).is_none_or(|x| h.before(x))) {
                second = best;
                best = Some(i);
            } else if second.is_none_or(|s| head(outs, &at, s).is_none_or(|x| h.before(x))) {
                second = Some(i);
            }
        }
        let Some(b) = best else { break };
        // A run of this instance's outputs, up to the other instances' next one.
        loop {
            let placeholder = Record {
                value: Value::Null,
                origin: crate::runtime::message::Origin::default(),
            };
            buf.push(std::mem::replace(&mut outs[b][at[b]].record, placeholder));
            at[b] += 1;
            let Some(next) = head(outs, &at, b) else {
                break;
            };
            if second.is_some_and(|s| head(outs, &at, s).is_some_and(|o| !next.before(o))) {
                break;
            }
        }
    }
    for o in outs.iter_mut() {
        o.clear();
    }
}

#[inline]
fn head<'a>(outs: &'a [Vec<Out>], at: &[usize], i: usize) -> Option<&'a Out> {
    outs[i].get(at[i])
}

impl<S: Split> Operator for Parallel<S> {
    fn process(&mut self, input: usize, batch: Batch, out: &mut Output) -> StageResult {
        if batch.records.is_empty() {
            return Ok(());
        }
        self.materialize()?;
        let mut chunks = self.evaluate(batch.records, out.has_late_output())?;
        let shared = S::route(&mut self.router, input, &mut chunks, out, &mut self.routes);
        // The runs' evaluation buffers are kept for the next batch.
        for (slot, c) in self.evals.iter_mut().zip(chunks) {
            *slot = c.evals;
        }
        self.apply(shared?, out)
    }

    fn folded(&mut self, p: FoldedTables, out: &mut Output) -> StageResult {
        self.materialize()?;
        let shared = S::route_folded(&mut self.router, p, out, &mut self.routes)?;
        self.apply(shared, out)
    }

    fn finish(&mut self, out: &mut Output) -> StageResult {
        self.materialize()?;
        let mut parts = self.home()?;
        let r = S::finish_all(&mut self.router, &mut parts, out);
        self.put_back(parts);
        r
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        if let Some(raw) = &self.restored {
            return Ok(raw.clone());
        }
        self.with_all(|r, parts| S::snapshot_all(r, parts))?
    }

    fn snapshot_deferred(&mut self) -> Option<DeferredSnapshot> {
        if self.restored.is_some() {
            return None;
        }
        self.with_all(|r, parts| S::snapshot_deferred_all(r, parts))
            .ok()
            .flatten()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        self.restored = Some(state.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
