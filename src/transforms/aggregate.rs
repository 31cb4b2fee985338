//! `aggregate`: keyed running aggregates without time. `emit = "final"` emits each key's result
//! when the stream finishes, sorted by key; `emit = "updates"` emits the key's new result after
//! every record. State is a hash map for speed; everything that leaves it (output, checkpoint)
//! is sorted first, so hash order never reaches a user.

use super::aggs::{eval_args, eval_key, fold, Acc, AggSpec};
use crate::error::Error;
use crate::expr::Expr;
use crate::pipeline::graph::BATCH_SIZE;
use crate::pipeline::spec::Emit;
use crate::runtime::message::{Batch, Origin, Record, END_SEQ};
use crate::runtime::stage::{Operator, Output, StageResult};
use crate::value::{Map, Str, Value};
use std::collections::HashMap;

pub struct Aggregate {
    pub key: Option<Expr>,
    pub specs: Vec<AggSpec>,
    pub emit: Emit,
    /// Drop a key after this many milliseconds of event time without an update.
    pub ttl: Option<Ttl>,
    groups: HashMap<Value, Group>,
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

#[derive(Clone)]
struct Group {
    accs: Vec<Acc>,
    last_seen: i64,
}

impl Aggregate {
    pub fn new(key: Option<Expr>, specs: Vec<AggSpec>, emit: Emit, ttl: Option<Ttl>) -> Self {
        Aggregate {
            key,
            specs,
            emit,
            ttl,
            groups: HashMap::new(),
            clock: i64::MIN,
            finished: false,
            key_name: Str::new("key"),
            args: Vec::new(),
            restored: None,
        }
    }

    fn result(&self, key: &Value, g: &Group) -> Value {
        let mut m = Map::with_capacity(self.specs.len() + 1);
        if self.key.is_some() {
            m.push_unique(self.key_name.clone(), key.clone());
        }
        for (s, a) in self.specs.iter().zip(&g.accs) {
            m.insert(s.name.clone(), a.result());
        }
        Value::Object(m)
    }

    /// Drops keys idle for longer than the ttl. A key counts as expired from the moment the
    /// clock passes its last update plus the ttl, whether or not this purge has run yet
    /// (`process` checks it per record), so purge timing never changes the output.
    fn expire(&mut self) {
        let Some(ttl) = &self.ttl else { return };
        let horizon = self.clock.saturating_sub(ttl.ms);
        self.groups.retain(|_, g| g.last_seen >= horizon);
    }
}

impl Operator for Aggregate {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        if batch.records.is_empty() {
            return Ok(());
        }
        self.materialize()?;
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
            if let Some(ttl) = &self.ttl {
                let clock = self.clock.max(now);
                if self
                    .groups
                    .get(&key)
                    .is_some_and(|g| clock.saturating_sub(g.last_seen) > ttl.ms)
                {
                    self.groups.remove(&key);
                }
            }
            let emit_key = (self.emit == Emit::Updates).then(|| key.clone());
            let specs = &self.specs;
            let g = self.groups.entry(key).or_insert_with(|| Group {
                accs: specs.iter().map(|s| Acc::new(s.func)).collect(),
                last_seen: now,
            });
            if let Err(msg) = fold(specs, &mut g.accs, &self.args) {
                out.bad(r.origin, &msg, None, Some(r.value))?;
                continue;
            }
            g.last_seen = g.last_seen.max(now);
            self.clock = self.clock.max(now);
            if let Some(key) = emit_key {
                if let Some(g) = self.groups.get(&key) {
                    let value = self.result(&key, g);
                    out.push(Record {
                        value,
                        origin: r.origin,
                    });
                }
            }
        }
        if self.ttl.is_some() {
            self.expire();
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) -> StageResult {
        self.materialize()?;
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.expire();
        if self.emit == Emit::Final {
            let mut keys: Vec<(&Value, &Group)> = self.groups.iter().collect();
            sort_by_key_value(&mut keys);
            let keys: Vec<&Value> = keys.into_iter().map(|k| k.0).collect();
            for (i, k) in keys.into_iter().enumerate() {
                let value = self.result(k, &self.groups[k]);
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
        self.groups = HashMap::new();
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        if let Some(raw) = &self.restored {
            return Ok(raw.clone());
        }
        Ok(encode_state(self.finished, self.clock, &self.groups))
    }

    fn snapshot_deferred(&mut self) -> Option<crate::runtime::stage::DeferredSnapshot> {
        if self.restored.is_some() {
            return None;
        }
        // Small state is cheaper to encode in place than to copy.
        if self.groups.len() < 10_000 {
            return None;
        }
        let groups = self.groups.clone();
        let (finished, clock) = (self.finished, self.clock);
        Some(Box::new(move || Ok(encode_state(finished, clock, &groups))))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        self.restored = Some(state.to_vec());
        Ok(())
    }
}

impl Aggregate {
    /// Decodes the restored state, if it has not been yet.
    fn materialize(&mut self) -> Result<(), Error> {
        match self.restored.take() {
            Some(raw) => self.decode_state(&raw),
            None => Ok(()),
        }
    }

    fn decode_state(&mut self, state: &[u8]) -> Result<(), Error> {
        let bad = |m: String| Error::runtime(format!("aggregate state in checkpoint: {m}"));
        let v = Value::from_json(state).map_err(bad)?;
        let field = |k: &str| v.field(k).cloned().unwrap_or(Value::Null);
        self.finished = field("finished").truthy();
        self.clock = field("clock")
            .as_f64()
            .map(|f| f as i64)
            .unwrap_or(i64::MIN);
        let Value::Array(groups) = field("groups") else {
            return Err(bad("no groups".into()));
        };
        self.groups = HashMap::with_capacity(groups.len());
        for g in groups {
            let Value::Array(mut parts) = g else {
                return Err(bad("a group is not an array".into()));
            };
            if parts.len() != self.specs.len() + 2 {
                return Err(bad(format!(
                    "a group has {} parts, the pipeline has {} aggregates",
                    parts.len().saturating_sub(2),
                    self.specs.len()
                )));
            }
            let rest = parts.split_off(2);
            let last_seen = parts[1].as_f64().map(|f| f as i64).unwrap_or(0);
            let key = std::mem::take(&mut parts[0]);
            let mut accs = Vec::with_capacity(self.specs.len());
            for (spec, a) in self.specs.iter().zip(rest.iter()) {
                accs.push(Acc::decode(spec.func, a).map_err(bad)?);
            }
            self.groups.insert(key, Group { accs, last_seen });
        }
        Ok(())
    }
}

/// Sorts entries by key in jq's order; string keys (the usual case) compare as plain strings,
/// which is the same order and much cheaper for millions of keys.
fn sort_by_key_value<T>(entries: &mut [(&Value, T)]) {
    if entries.iter().all(|e| matches!(e.0, Value::Str(_))) {
        entries.sort_unstable_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
    } else {
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
}

/// `{"finished":..,"clock":..,"groups":[[key,last_seen,acc,...],...]}`, groups sorted by key
/// so the bytes never depend on hash order.
fn encode_state(finished: bool, clock: i64, groups: &HashMap<Value, Group>) -> Vec<u8> {
    let mut keys: Vec<(&Value, &Group)> = groups.iter().collect();
    sort_by_key_value(&mut keys);
    let mut out = Vec::with_capacity(64 + keys.len() * 48);
    out.extend_from_slice(
        format!("{{\"finished\":{finished},\"clock\":{clock},\"groups\":[").as_bytes(),
    );
    for (i, (k, g)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        k.write_json(&mut out);
        out.extend_from_slice(format!(",{}", g.last_seen).as_bytes());
        for a in &g.accs {
            out.push(b',');
            a.encode(&mut out);
        }
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    out
}
