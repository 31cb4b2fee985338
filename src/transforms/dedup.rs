//! `dedup`: drops a record when a kept record with the same key is less than `ttl` away from
//! it, on either side (SPEC: an out-of-order record 1 s before a kept one is a duplicate).
//! With `time`, `ttl` is a duration of event time; without it, `ttl` counts records (so the
//! result never depends on the wall clock). Kept records more than twice the ttl behind the
//! newest time read are forgotten, so memory stays bounded on an endless stream; whether one
//! counts depends only on the records read, never on when the state happened to be purged,
//! so output does not depend on batch boundaries or on a pause and resume.

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
    /// When each key's remembered kept records were kept (event ms, or record number).
    seen: HashMap<Value, Kept>,
    /// Largest event time seen, or records seen.
    clock: i64,
    purged_at: i64,
}

/// The times of a key's remembered kept records, ascending, `EMPTY` in unused slots. Two
/// are enough: remembered records lie within [`Dedup::memory`] (twice the ttl) of the clock
/// and are at least `ttl` apart (the later one was kept while the earlier was remembered),
/// so a half-open span of two ttls holds at most two. Inline, so a key costs no allocation.
#[derive(Clone, Copy, Debug)]
struct Kept([i64; 2]);

const EMPTY: i64 = i64::MIN;

impl Kept {
    fn times(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().copied().filter(|&t| t != EMPTY)
    }

    /// Adds `t`, dropping times at or before `horizon` (no record can match them any more)
    /// and, should a checkpoint have held more than two, the oldest.
    fn add(&mut self, t: i64, horizon: i64) {
        let mut all = [EMPTY; 3];
        let mut n = 0;
        for k in self.times().filter(|&k| k > horizon) {
            all[n] = k;
            n += 1;
        }
        all[n] = t;
        n += 1;
        all[..n].sort_unstable();
        *self = Kept::newest(&all[..n]);
    }

    /// The two newest of ascending times.
    fn newest(sorted: &[i64]) -> Kept {
        let mut k = Kept([EMPTY; 2]);
        let from = sorted.len().saturating_sub(2);
        for (slot, t) in k.0.iter_mut().zip(&sorted[from..]) {
            *slot = *t;
        }
        k
    }
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

    /// How far behind the clock kept records are remembered: twice the ttl, so a record up
    /// to `ttl` older than the newest one read is compared with every kept record that
    /// could make it a duplicate, on either side.
    fn memory(&self) -> i64 {
        self.ttl.saturating_mul(2)
    }

    /// Whether a kept record of `kept` is less than `ttl` away from `now`. Kept records
    /// past [`Dedup::memory`] do not count, whether or not a purge has removed them yet: so
    /// the answer never depends on when purges ran (batch boundaries, checkpoints).
    fn is_duplicate(&self, kept: &Kept, now: i64) -> bool {
        let horizon = self.horizon();
        kept.times()
            .any(|k| k > horizon && now.abs_diff(k) < self.ttl as u64)
    }

    fn horizon(&self) -> i64 {
        self.clock.saturating_sub(self.memory())
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
            if let Err(msg) = super::aggs::check_kept(&key, "the key") {
                out.bad(r.origin, &msg, None, Some(r.value))?;
                continue;
            }
            self.clock = self.clock.max(now);
            let dup = self
                .seen
                .get(&key)
                .is_some_and(|kept| self.is_duplicate(kept, now));
            if !dup {
                let horizon = self.horizon();
                self.seen
                    .entry(key)
                    .and_modify(|k| k.add(now, horizon))
                    .or_insert(Kept([now, EMPTY]));
                out.push(r);
            }
        }
        // Forget what no record can be a duplicate of any more (memory stays bounded).
        if self.clock.saturating_sub(self.purged_at) >= self.ttl.max(1) {
            let horizon = self.horizon();
            self.seen
                .retain(|_, kept| kept.times().any(|k| k > horizon));
            self.purged_at = self.clock;
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        let mut keys: Vec<(&Value, &Kept)> = self.seen.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = format!(
            "{{\"clock\":{},\"purged_at\":{},\"seen\":[",
            self.clock, self.purged_at
        )
        .into_bytes();
        // [key, kept time, ...]: a checkpoint from before several kept times is [key, time].
        for (i, (k, times)) in keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            k.write_json(&mut out);
            for t in times.times() {
                out.extend_from_slice(format!(",{t}").as_bytes());
            }
            out.push(b']');
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
                    if let [k, times @ ..] = &p[..] {
                        let times: Option<Vec<i64>> = times
                            .iter()
                            .map(|t| match t {
                                Value::Int(t) => Some(*t),
                                _ => None,
                            })
                            .collect();
                        if let Some(mut times) = times.filter(|t| !t.is_empty()) {
                            times.sort_unstable();
                            self.seen.insert(k.clone(), Kept::newest(&times));
                            continue;
                        }
                    }
                }
                return Err(bad("an entry is not [key, time, ...]".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_one_or_several_kept_times_per_key_and_keeps_the_newest_two() {
        let mut d = Dedup::new(Expr::compile(".k").unwrap(), None, 10);
        // `["a",5]` is the layout of checkpoints from before several kept times.
        d.restore(br#"{"clock":10,"purged_at":0,"seen":[["a",5],["b",3,1,2]]}"#)
            .unwrap();
        let snap = String::from_utf8(d.snapshot().unwrap()).unwrap();
        assert_eq!(
            snap,
            r#"{"clock":10,"purged_at":0,"seen":[["a",5],["b",2,3]]}"#
        );
        for bad in [
            r#"{"seen":[["a"]]}"#,
            r#"{"seen":[["a","x"]]}"#,
            r#"{"seen":[5]}"#,
        ] {
            assert!(d.restore(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_holds_two_times_at_most_and_forgets_what_is_past_the_horizon() {
        let mut k = Kept([EMPTY; 2]);
        k.add(1, i64::MIN);
        k.add(20, i64::MIN);
        k.add(40, 5);
        assert_eq!(k.times().collect::<Vec<_>>(), vec![20, 40]);
        k.add(60, 30);
        assert_eq!(k.times().collect::<Vec<_>>(), vec![40, 60]);
    }
}
