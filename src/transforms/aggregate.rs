//! `aggregate`: keyed running aggregates without time. `emit = "final"` emits each key's result
//! when the stream finishes, sorted by key; `emit = "updates"` emits the key's new result after
//! every record. The keyed state (`keyed.rs`) is kept in row order for speed and memory;
//! everything that leaves it (output, checkpoint) is sorted first, so neither hash order nor
//! row order ever reaches a user. With `parallelism` > 1 the node runs several `Aggregate`s,
//! one per range of key groups (`split.rs`, `transforms::parallel`).

mod split;
pub use split::{Eval, Evaluator, Item, Router};

use super::aggs::{check_args, eval_args, eval_key, AggSpec};
use super::keyed::{decode_state, encode_state, Keyed, Rows};
use crate::error::Error;
use crate::expr::Expr;
use crate::pipeline::graph::BATCH_SIZE;
use crate::pipeline::spec::Emit;
use crate::runtime::context::Context;
use crate::runtime::message::{Batch, FoldedTables, Origin, Record, END_SEQ};
use crate::runtime::stage::{Operator, Output, StageResult, Stop};
use crate::value::{Map, Str, Value};

pub struct Aggregate {
    pub key: Option<Expr>,
    pub specs: Vec<AggSpec>,
    pub emit: Emit,
    /// Drop a key after this many milliseconds of event time without an update.
    pub ttl: Option<Ttl>,
    /// Key groups of the state (`max_parallelism`), as checkpoints store it.
    max: u32,
    groups: Keyed,
    /// The largest event time seen (the clock of `state_ttl`).
    clock: i64,
    finished: bool,
    key_name: Str,
    args: Vec<Option<Value>>,
    /// State from a checkpoint, decoded only when a record or the end of the stream needs it:
    /// a cron run with nothing new hands the same bytes to its final checkpoint untouched.
    restored: Option<Vec<u8>>,
    /// Records since expired keys were last dropped, and the fraction of the number of keys
    /// they may reach before the next purge (see `process`).
    since_expire: usize,
    expire_fraction: usize,
}

#[derive(Clone)]
pub struct Ttl {
    pub ms: i64,
    pub time: crate::time::TimeExpr,
}

/// Below this many keys a checkpoint encodes the state in place: cheaper than a copy.
const DEFER_FROM_KEYS: usize = 10_000;

impl Aggregate {
    pub fn new(
        key: Option<Expr>,
        specs: Vec<AggSpec>,
        emit: Emit,
        ttl: Option<Ttl>,
        max: u32,
    ) -> Self {
        Aggregate {
            key,
            groups: Keyed::new(&specs),
            specs,
            emit,
            ttl,
            max,
            clock: i64::MIN,
            finished: false,
            key_name: Str::new("key"),
            args: Vec::new(),
            restored: None,
            since_expire: 0,
            expire_fraction: 64,
        }
    }

    /// The result record of row `r`.
    fn result(&self, r: usize) -> Value {
        let mut m = Map::with_capacity(self.specs.len() + 1);
        if self.key.is_some() {
            m.push_unique(self.key_name.clone(), self.groups.key(r).clone());
        }
        for (i, s) in self.specs.iter().enumerate() {
            m.insert(s.name.clone(), self.groups.result(r, i));
        }
        Value::Object(m)
    }

    /// Drops keys idle for longer than the ttl. A key counts as expired from the moment the
    /// clock passes its last update plus the ttl, whether or not this purge has run yet
    /// (`process` checks it per record), so purge timing never changes the output; and every
    /// checkpoint and the final results purge first, so it does not change their bytes either.
    fn expire(&mut self) {
        self.since_expire = 0;
        let Some(ttl) = &self.ttl else { return };
        let horizon = self.clock.saturating_sub(ttl.ms);
        self.groups.expire(horizon);
    }

    /// A purge when records amounting to 1/64 of the keys have come in since the last: a
    /// fraction of a row check per record instead of a scan of a million rows per batch, for
    /// at most about that many keys' worth of memory.
    fn maybe_expire(&mut self, records: usize) {
        if self.ttl.is_some() {
            self.since_expire += records;
            if self.since_expire >= self.groups.len() / self.expire_fraction {
                self.expire();
            }
        }
    }
}

/// A good record's key, event time and arguments (checked), or why the record is bad.
#[inline]
fn evaluate<'a>(
    key: &'a Option<Expr>,
    ttl: &Option<Ttl>,
    specs: &[AggSpec],
    args: &mut Vec<Option<Value>>,
    record: &'a Value,
) -> Result<(std::borrow::Cow<'a, Value>, i64), String> {
    let key = eval_key(key, record)?;
    let now = match ttl {
        Some(Ttl { time: t, .. }) => t.eval(record)?,
        None => 0,
    };
    // Checked before the key is looked up: a bad record leaves no trace, not even a key with
    // empty aggregates.
    eval_args(specs, record, args)?;
    check_args(specs, args)?;
    Ok((key, now))
}

/// A good record's effect on its key's row (which it returns): `clock` is the largest event
/// time so far, this record's included.
#[inline]
fn add(
    groups: &mut Keyed,
    ttl: &Option<Ttl>,
    key: std::borrow::Cow<'_, Value>,
    now: i64,
    clock: i64,
    args: &[Option<Value>],
) -> Result<usize, String> {
    let (row, new) = groups.find_or_insert(key, now)?;
    if let Some(ttl) = ttl {
        // An expired key starts afresh, as if it had been dropped already.
        if !new && clock.saturating_sub(groups.last_seen(row)) > ttl.ms {
            groups.reset(row, now);
        }
    }
    groups.update(row, args, now);
    Ok(row)
}

impl Operator for Aggregate {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        if batch.records.is_empty() {
            return Ok(());
        }
        self.materialize(&out.ctx)?;
        let n = batch.records.len();
        let mut records = batch.records;
        // Records are read in place: moving each one out of the batch onto the stack and
        // reading it back in other widths stalled on store forwarding (a quarter of this
        // loop's cycles). Dropped together with the batch.
        for r in records.iter_mut() {
            let (key, now) =
                match evaluate(&self.key, &self.ttl, &self.specs, &mut self.args, &r.value) {
                    Ok(x) => x,
                    Err(msg) => {
                        out.bad(r.origin, &msg, None, Some(std::mem::take(&mut r.value)))?;
                        continue;
                    }
                };
            let clock = self.clock.max(now);
            let row = add(&mut self.groups, &self.ttl, key, now, clock, &self.args)
                .map_err(|m| Stop::Failed(Error::runtime(m)))?;
            self.clock = clock;
            if self.emit == Emit::Updates {
                let value = self.result(row);
                out.push(Record {
                    value,
                    origin: r.origin,
                });
            }
        }
        self.maybe_expire(n);
        Ok(())
    }

    fn folded(&mut self, p: FoldedTables, out: &mut Output) -> StageResult {
        self.materialize(&out.ctx)?;
        each_folded(p, self.specs.len(), |k, vals| self.fold(k, vals))
    }

    fn finish(&mut self, out: &mut Output) -> StageResult {
        self.materialize(&out.ctx)?;
        finish_parts(&mut [self], out)
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        if let Some(raw) = &self.restored {
            return Ok(raw.clone());
        }
        Ok(snapshot_parts(&mut [self]))
    }

    fn snapshot_deferred(&mut self) -> Option<crate::runtime::stage::DeferredSnapshot> {
        if self.restored.is_some() {
            return None;
        }
        snapshot_deferred_parts(&mut [self])
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        self.restored = Some(state.to_vec());
        Ok(())
    }
}

impl Aggregate {
    /// Folds in one key's counts and sums from a parse worker's table.
    fn fold(&mut self, k: Str, vals: &[i64]) -> StageResult {
        let (row, _) = self
            .groups
            .find_or_insert(std::borrow::Cow::Owned(Value::Str(k)), 0)
            .map_err(|m| Stop::Failed(Error::runtime(m)))?;
        self.groups.fold(row, vals);
        Ok(())
    }

    /// Decodes the restored state, if it has not been yet.
    fn materialize(&mut self, ctx: &Context) -> Result<(), Error> {
        let Some(raw) = self.restored.take() else {
            return Ok(());
        };
        let t = std::time::Instant::now();
        let mut one = [self];
        decode_all(&mut one, &raw)?;
        let [me] = one;
        ctx.info(format!(
            "aggregate: decoded {} keys ({} bytes) from the checkpoint in {:.1} ms",
            me.groups.len(),
            raw.len(),
            t.elapsed().as_secs_f64() * 1000.0
        ));
        Ok(())
    }
}

/// Each key's counts and sums in the tables of `p` (folded by the source's parse workers,
/// `width` a key), to `each`.
fn each_folded(
    p: FoldedTables,
    width: usize,
    mut each: impl FnMut(Str, &[i64]) -> StageResult,
) -> StageResult {
    for t in p.tables {
        if width == 0 || t.vals.len() != t.keys.len() * width {
            return Err(Stop::Failed(Error::runtime(
                "internal: folded counts do not fit the aggregate",
            )));
        }
        for (k, vals) in t.keys.into_iter().zip(t.vals.chunks_exact(width)) {
            each(k, vals)?;
        }
    }
    Ok(())
}

/// The end of the stream for the instances `parts` (one, without parallelism), the clock set:
/// with `emit = "final"` every key's result, in key order over all of them (a key is in one
/// instance only).
fn finish_parts(parts: &mut [&mut Aggregate], out: &mut Output) -> StageResult {
    if parts.iter().any(|p| p.finished) {
        return Ok(());
    }
    for p in parts.iter_mut() {
        p.finished = true;
        p.expire();
    }
    if parts.first().is_some_and(|p| p.emit == Emit::Final) {
        let orders: Vec<Vec<u32>> = parts
            .iter()
            .map(|p| p.groups.rows().sorted_rows())
            .collect();
        let mut at = vec![0usize; parts.len()];
        let mut emitted = 0usize;
        loop {
            let mut best: Option<usize> = None;
            for (i, o) in orders.iter().enumerate() {
                let Some(&row) = o.get(at[i]) else { continue };
                let better = best.is_none_or(|b| {
                    let other = parts[b].groups.key(orders[b][at[b]] as usize);
                    parts[i].groups.key(row as usize) < other
                });
                if better {
                    best = Some(i);
                }
            }
            let Some(b) = best else { break };
            let value = parts[b].result(orders[b][at[b]] as usize);
            at[b] += 1;
            out.push(Record {
                value,
                origin: Origin::default(),
            });
            emitted += 1;
            // Final results leave in batches too, not as one batch of every key.
            if emitted.is_multiple_of(BATCH_SIZE) {
                out.flush(END_SEQ)?;
            }
        }
    }
    // A finished aggregate is never resumed (`resume` of a finished run does nothing), so
    // its groups can go, and the final checkpoint stays small.
    for p in parts.iter_mut() {
        p.groups = Keyed::new(&p.specs);
    }
    Ok(())
}

/// The state of the instances `parts` (one, without parallelism), the clock set: the same
/// bytes whatever their number.
fn snapshot_parts(parts: &mut [&mut Aggregate]) -> Vec<u8> {
    for p in parts.iter_mut() {
        p.expire();
    }
    let Some(first) = parts.first() else {
        return Vec::new();
    };
    let rows: Vec<&Rows> = parts.iter().map(|p| p.groups.rows()).collect();
    encode_state(&rows, first.max, first.finished, first.clock)
}

/// A large state: a copy of the rows now, encoded on another thread (`None`: small enough to
/// encode in place).
fn snapshot_deferred_parts(
    parts: &mut [&mut Aggregate],
) -> Option<crate::runtime::stage::DeferredSnapshot> {
    for p in parts.iter_mut() {
        p.expire();
    }
    let keys: usize = parts.iter().map(|p| p.groups.len()).sum();
    if keys < DEFER_FROM_KEYS {
        return None;
    }
    let first = parts.first()?;
    let (max, finished, clock) = (first.max, first.finished, first.clock);
    // The copy is the pipeline's stall: flat columns, no index, no sorting (that is part
    // of the encoding, on the other thread).
    let rows: Vec<Rows> = parts.iter().map(|p| p.groups.rows().clone()).collect();
    Some(Box::new(move || {
        let refs: Vec<&Rows> = rows.iter().collect();
        Ok(encode_state(&refs, max, finished, clock))
    }))
}

/// Loads a state into the instances `parts` (one, without parallelism), each taking the key
/// groups it owns.
fn decode_all(parts: &mut [&mut Aggregate], state: &[u8]) -> Result<(), Error> {
    let Some(first) = parts.first() else {
        return Ok(());
    };
    let (specs, max) = (first.specs.clone(), first.max);
    let mut keyed: Vec<&mut Keyed> = parts.iter_mut().map(|p| &mut p.groups).collect();
    let (finished, clock) = decode_state(&mut keyed, &specs, state, max)
        .map_err(|m| Error::runtime(format!("aggregate state in checkpoint: {m}")))?;
    for p in parts.iter_mut() {
        p.finished = finished;
        p.clock = clock;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
