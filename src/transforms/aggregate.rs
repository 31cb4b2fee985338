//! `aggregate`: keyed running aggregates without time. `emit = "final"` emits each key's result
//! when the stream finishes, sorted by key; `emit = "updates"` emits the key's new result after
//! every record. The keyed state (`keyed.rs`) is kept in row order for speed and memory;
//! everything that leaves it (output, checkpoint) is sorted first, so neither hash order nor
//! row order ever reaches a user.

use super::aggs::{check_args, eval_args, eval_key, AggSpec};
use super::keyed::Keyed;
use crate::error::Error;
use crate::expr::Expr;
use crate::pipeline::graph::BATCH_SIZE;
use crate::pipeline::spec::Emit;
use crate::runtime::context::Context;
use crate::runtime::message::{Batch, Origin, Record, END_SEQ};
use crate::runtime::stage::{Operator, Output, StageResult, Stop};
use crate::value::{Map, Str, Value};

pub struct Aggregate {
    pub key: Option<Expr>,
    pub specs: Vec<AggSpec>,
    pub emit: Emit,
    /// Drop a key after this many milliseconds of event time without an update.
    pub ttl: Option<Ttl>,
    groups: Keyed,
    /// The largest event time seen (the clock of `state_ttl`).
    clock: i64,
    finished: bool,
    key_name: Str,
    args: Vec<Option<Value>>,
    /// State from a checkpoint, decoded only when a record or the end of the stream needs it:
    /// a cron run with nothing new hands the same bytes to its final checkpoint untouched.
    restored: Option<Vec<u8>>,
}

#[derive(Clone)]
pub struct Ttl {
    pub ms: i64,
    pub time: crate::time::TimeExpr,
}

/// Below this many keys a checkpoint encodes the state in place: cheaper than a copy.
const DEFER_FROM_KEYS: usize = 10_000;

impl Aggregate {
    pub fn new(key: Option<Expr>, specs: Vec<AggSpec>, emit: Emit, ttl: Option<Ttl>) -> Self {
        Aggregate {
            key,
            groups: Keyed::new(&specs),
            specs,
            emit,
            ttl,
            clock: i64::MIN,
            finished: false,
            key_name: Str::new("key"),
            args: Vec::new(),
            restored: None,
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
    /// (`process` checks it per record), so purge timing never changes the output.
    fn expire(&mut self) {
        let Some(ttl) = &self.ttl else { return };
        let horizon = self.clock.saturating_sub(ttl.ms);
        self.groups.expire(horizon);
    }
}

impl Operator for Aggregate {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        if batch.records.is_empty() {
            return Ok(());
        }
        self.materialize(&out.ctx)?;
        for r in batch.records {
            let key = match eval_key(&self.key, &r.value) {
                Ok(k) => k,
                Err(msg) => {
                    out.bad(r.origin, &msg, None, Some(r.value))?;
                    continue;
                }
            };
            let now = match &self.ttl {
                Some(Ttl { time: t, .. }) => match t.eval(&r.value) {
                    Ok(ms) => ms,
                    Err(msg) => {
                        out.bad(r.origin, &msg, None, Some(r.value))?;
                        continue;
                    }
                },
                None => 0,
            };
            if let Err(msg) = eval_args(&self.specs, &r.value, &mut self.args) {
                out.bad(r.origin, &msg, None, Some(r.value))?;
                continue;
            }
            let (row, new) = self
                .groups
                .find_or_insert(key, now)
                .map_err(|m| Stop::Failed(Error::runtime(m)))?;
            if let Some(ttl) = &self.ttl {
                // An expired key starts afresh, as if it had been dropped already.
                let clock = self.clock.max(now);
                if !new && clock.saturating_sub(self.groups.last_seen(row)) > ttl.ms {
                    self.groups.reset(row, now);
                }
            }
            // A bad record leaves a key it added, with empty aggregates (as the map did).
            if let Err(msg) = check_args(&self.specs, &self.args) {
                out.bad(r.origin, &msg, None, Some(r.value))?;
                continue;
            }
            self.groups.update(row, &self.args, now);
            self.clock = self.clock.max(now);
            if self.emit == Emit::Updates {
                let value = self.result(row);
                out.push(Record {
                    value,
                    origin: r.origin,
                });
            }
        }
        if self.ttl.is_some() {
            self.expire();
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) -> StageResult {
        self.materialize(&out.ctx)?;
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.expire();
        if self.emit == Emit::Final {
            let order = self.groups.rows().sorted_rows();
            for (i, &r) in order.iter().enumerate() {
                let value = self.result(r as usize);
                out.push(Record {
                    value,
                    origin: Origin::default(),
                });
                // Final results leave in batches too, not as one batch of every key.
                if (i + 1) % BATCH_SIZE == 0 {
                    out.flush(END_SEQ)?;
                }
            }
        }
        // A finished aggregate is never resumed (`resume` of a finished run does nothing), so
        // its groups can go, and the final checkpoint stays small.
        self.groups = Keyed::new(&self.specs);
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        if let Some(raw) = &self.restored {
            return Ok(raw.clone());
        }
        Ok(self.groups.rows().encode(self.finished, self.clock))
    }

    fn snapshot_deferred(&mut self) -> Option<crate::runtime::stage::DeferredSnapshot> {
        if self.restored.is_some() || self.groups.len() < DEFER_FROM_KEYS {
            return None;
        }
        // The copy is the pipeline's stall: flat columns, no index, no sorting (that is part
        // of the encoding, on the other thread).
        let rows = self.groups.rows().clone();
        let (finished, clock) = (self.finished, self.clock);
        Some(Box::new(move || Ok(rows.encode(finished, clock))))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        self.restored = Some(state.to_vec());
        Ok(())
    }
}

impl Aggregate {
    /// Decodes the restored state, if it has not been yet.
    fn materialize(&mut self, ctx: &Context) -> Result<(), Error> {
        let Some(raw) = self.restored.take() else {
            return Ok(());
        };
        let t = std::time::Instant::now();
        self.decode_state(&raw)?;
        ctx.info(format!(
            "aggregate: decoded {} keys ({} bytes) from the checkpoint in {:.1} ms",
            self.groups.len(),
            raw.len(),
            t.elapsed().as_secs_f64() * 1000.0
        ));
        Ok(())
    }

    fn decode_state(&mut self, state: &[u8]) -> Result<(), Error> {
        let (finished, clock) = self
            .groups
            .decode(&self.specs, state)
            .map_err(|m| Error::runtime(format!("aggregate state in checkpoint: {m}")))?;
        self.finished = finished;
        self.clock = clock;
        Ok(())
    }
}
