//! `dedup`: drops a record whose key was kept less than `ttl` ago. With `time`, `ttl` is a
//! duration of event time; without it, `ttl` counts records (so the result never depends on the
//! wall clock). Keys older than the ttl are forgotten, so memory stays bounded on an endless
//! stream; whether a key counts as seen depends only on the clock, never on when the state
//! happened to be purged, so output is deterministic.

use crate::error::Error;
use crate::expr::Expr;
use crate::runtime::message::Batch;
use crate::runtime::stage::{Operator, Output, StageResult};
use crate::time::TimeExpr;
use crate::value::Value;
use std::collections::HashMap;

pub struct Dedup {
    pub key: Expr,
    /// Event time; `None` counts records.
    pub time: Option<TimeExpr>,
    pub ttl: i64,
    /// When each key was last kept (event ms, or record number).
    seen: HashMap<Value, i64>,
    /// Largest event time seen, or records seen.
    clock: i64,
    purged_at: i64,
}

impl Dedup {
    pub fn new(key: Expr, time: Option<TimeExpr>, ttl: i64) -> Dedup {
        Dedup {
            key,
            time,
            ttl,
            seen: HashMap::new(),
            clock: i64::MIN,
            purged_at: i64::MIN,
        }
    }
}

impl Operator for Dedup {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        for r in batch.records {
            let now = match &self.time {
                Some(t) => match t.eval(&r.value) {
                    Ok(ms) => ms,
                    Err(msg) => {
                        out.bad(r.origin, &msg, None, Some(r.value))?;
                        continue;
                    }
                },
                None => self.clock.max(0) + 1,
            };
            let key = match self.key.eval_first(&r.value) {
                Ok(k) => k.unwrap_or(Value::Null),
                Err(e) => {
                    out.bad(r.origin, &e.message, None, Some(r.value))?;
                    continue;
                }
            };
            self.clock = self.clock.max(now);
            let dup = self
                .seen
                .get(&key)
                .is_some_and(|&kept| now >= kept && now - kept < self.ttl);
            if !dup {
                self.seen.insert(key, now);
                out.push(r);
            }
        }
        // Forget keys past the ttl (they would not count as seen any more).
        if self.clock.saturating_sub(self.purged_at) >= self.ttl.max(1) {
            let horizon = self.clock.saturating_sub(self.ttl);
            self.seen.retain(|_, kept| *kept > horizon);
            self.purged_at = self.clock;
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        let mut keys: Vec<(&Value, &i64)> = self.seen.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = format!(
            "{{\"clock\":{},\"purged_at\":{},\"seen\":[",
            self.clock, self.purged_at
        )
        .into_bytes();
        for (i, (k, t)) in keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            k.write_json(&mut out);
            out.extend_from_slice(format!(",{t}]").as_bytes());
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        let bad = |m: String| Error::runtime(format!("dedup state in checkpoint: {m}"));
        let v = Value::from_json(state).map_err(bad)?;
        let int = |k: &str| match v.field(k) {
            Some(Value::Int(i)) => *i,
            _ => i64::MIN,
        };
        self.clock = int("clock");
        self.purged_at = int("purged_at");
        self.seen.clear();
        if let Some(Value::Array(a)) = v.field("seen") {
            for p in a {
                if let Value::Array(p) = p {
                    if let [k, Value::Int(t)] = &p[..] {
                        self.seen.insert(k.clone(), *t);
                        continue;
                    }
                }
                return Err(bad("an entry is not [key, time]".into()));
            }
        }
        Ok(())
    }
}
