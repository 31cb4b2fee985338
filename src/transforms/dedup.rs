//! `dedup`: drops a record when a kept record with the same key is less than `ttl` away from
//! it, on either side (SPEC: an out-of-order record 1 s before a kept one is a duplicate).
//! With `time`, `ttl` is a duration of event time; without it, `ttl` counts records (so the
//! result never depends on the wall clock). Kept records more than twice the ttl behind the
//! newest time read are forgotten, so memory stays bounded on an endless stream; whether one
//! counts depends only on the records read, never on when the state happened to be purged,
//! so output does not depend on batch boundaries or on a pause and resume. With several
//! instances (`parallelism`) the node runs a `Dedup` per range of key groups, under one clock
//! (`transforms::parallel`).

use super::keygroup::{check_max, key_group, next_group, read_levels};
use super::parallel::{walk, Chunk, Evals, Out, Routes, Share, Split};
use crate::error::Error;
use crate::expr::Expr;
use crate::runtime::message::{Batch, FoldedTables, Record};
use crate::runtime::stage::{Operator, Output, StageResult, Stop};
use crate::time::TimeExpr;
use crate::value::Value;
use std::collections::HashMap;

pub struct Dedup {
    pub key: Expr,
    /// Event time; `None` counts records.
    pub time: Option<TimeExpr>,
    pub ttl: i64,
    /// Key groups of the state (`max_parallelism`), as checkpoints store it.
    max: u32,
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
    pub fn new(key: Expr, time: Option<TimeExpr>, ttl: i64, max: u32) -> Dedup {
        Dedup {
            key,
            time,
            ttl,
            max,
            seen: HashMap::new(),
            clock: i64::MIN,
            purged_at: i64::MIN,
        }
    }

    /// Whether a record of `key` at `now` is kept (and remembered as such); `self.clock`
    /// already counts it. Kept records past [`memory`] do not count, whether or not a purge
    /// has removed them yet: so the answer never depends on when purges ran (batch
    /// boundaries, checkpoints).
    #[inline]
    fn keep(&mut self, key: Value, now: i64) -> bool {
        let horizon = horizon(self.clock, self.ttl);
        let ttl = self.ttl as u64;
        let dup = self
            .seen
            .get(&key)
            .is_some_and(|kept| kept.times().any(|k| k > horizon && now.abs_diff(k) < ttl));
        if !dup {
            self.seen
                .entry(key)
                .and_modify(|k| k.add(now, horizon))
                .or_insert(Kept([now, EMPTY]));
        }
        !dup
    }

    /// Forgets what no record can be a duplicate of any more (memory stays bounded), when
    /// the clock has moved a ttl since the last time; the horizon it purged to, if it did.
    fn purge_due(clock: i64, purged_at: &mut i64, ttl: i64) -> Option<i64> {
        if clock.saturating_sub(*purged_at) >= ttl.max(1) {
            *purged_at = clock;
            Some(horizon(clock, ttl))
        } else {
            None
        }
    }

    fn purge(&mut self, horizon: i64) {
        self.seen
            .retain(|_, kept| kept.times().any(|k| k > horizon));
    }
}

/// How far behind the clock kept records are remembered: twice the ttl, so a record up to
/// `ttl` older than the newest one read is compared with every kept record that could make it
/// a duplicate, on either side.
fn horizon(clock: i64, ttl: i64) -> i64 {
    clock.saturating_sub(ttl.saturating_mul(2))
}

/// A record's time (or number) and key, or why it is bad. `clock` is the node's clock before
/// the record.
#[inline]
fn evaluate(
    key: &Expr,
    time: Option<&TimeExpr>,
    clock: i64,
    record: &Value,
) -> Result<(i64, Value), String> {
    let now = match time {
        Some(t) => t.eval(record)?,
        None => clock.max(0) + 1,
    };
    let key = key
        .eval_first(record)
        .map_err(|e| e.message)?
        .unwrap_or(Value::Null);
    super::aggs::check_kept(&key, "the key")?;
    Ok((now, key))
}

impl Operator for Dedup {
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Output) -> StageResult {
        for r in batch.records {
            let (now, key) = match evaluate(&self.key, self.time.as_ref(), self.clock, &r.value) {
                Ok(x) => x,
                Err(msg) => {
                    out.bad(r.origin, &msg, None, Some(r.value))?;
                    continue;
                }
            };
            self.clock = self.clock.max(now);
            if self.keep(key, now) {
                out.push(r);
            }
        }
        if let Some(h) = Self::purge_due(self.clock, &mut self.purged_at, self.ttl) {
            self.purge(h);
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        Ok(encode_state(&[&*self]))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        decode_state(&mut [self], state)
    }
}

/// A dedup's state, written by its instances together (`parts`, in order; one without
/// parallelism): `{"max_parallelism":M,"clock":..,"purged_at":..,"key_groups":[[g,[[key,
/// kept time,...],...]],...]}`, non-empty key groups in increasing order and keys in order
/// within each. The instances own increasing ranges of groups.
fn encode_state(parts: &[&Dedup]) -> Vec<u8> {
    let Some(first) = parts.first() else {
        return Vec::new();
    };
    let max = first.max;
    let mut out = format!(
        "{{\"max_parallelism\":{max},\"clock\":{},\"purged_at\":{},\"key_groups\":[",
        first.clock, first.purged_at
    )
    .into_bytes();
    let mut first_group = true;
    let mut num = itoa::Buffer::new();
    for p in parts {
        let mut keys: Vec<(u32, &Value, &Kept)> = p
            .seen
            .iter()
            .map(|(k, t)| (key_group(k, max), k, t))
            .collect();
        keys.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut open: Option<u32> = None;
        for (g, k, times) in keys {
            if open != Some(g) {
                if open.is_some() {
                    out.extend_from_slice(b"]]");
                }
                if !first_group {
                    out.push(b',');
                }
                first_group = false;
                out.push(b'[');
                out.extend_from_slice(num.format(g).as_bytes());
                out.extend_from_slice(b",[");
                open = Some(g);
            } else {
                out.push(b',');
            }
            out.push(b'[');
            k.write_json(&mut out);
            for t in times.times() {
                out.push(b',');
                out.extend_from_slice(num.format(t).as_bytes());
            }
            out.push(b']');
        }
        if open.is_some() {
            out.extend_from_slice(b"]]");
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// What the state's own levels hold; each key's entry is read on its own (see
/// `keygroup::read_levels`).
#[derive(serde::Deserialize)]
struct State<'a> {
    max_parallelism: i64,
    clock: i64,
    purged_at: i64,
    #[serde(borrow)]
    key_groups: Vec<(i64, Vec<&'a serde_json::value::RawValue>)>,
}

/// Loads a dedup's state into the instances `parts` (one without parallelism), whatever
/// parallelism wrote it: each takes the key groups it owns.
fn decode_state(parts: &mut [&mut Dedup], state: &[u8]) -> Result<(), Error> {
    let bad = |m: String| Error::runtime(format!("dedup state in checkpoint: {m}"));
    let Some(first) = parts.first() else {
        return Ok(());
    };
    let max = first.max;
    let st: State = read_levels(state).map_err(bad)?;
    check_max(st.max_parallelism, max, None).map_err(bad)?;
    for p in parts.iter_mut() {
        p.clock = st.clock;
        p.purged_at = st.purged_at;
        p.seen.clear();
    }
    let n = parts.len();
    let mut prev: Option<i64> = None;
    for (g, entries) in &st.key_groups {
        let part = &mut *parts[next_group(*g, &mut prev, max, n, None).map_err(bad)?];
        for raw in entries {
            let entry = Value::from_json(raw.get().as_bytes()).map_err(bad)?;
            if let Value::Array(p) = &entry {
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
                        part.seen.insert(k.clone(), Kept::newest(&times));
                        continue;
                    }
                }
            }
            return Err(bad("an entry is not [key, time, ...]".into()));
        }
    }
    Ok(())
}

/// What the router of a parallel dedup hands an instance: a record, its key and time, and
/// the clock after it.
pub struct Item {
    pos: u32,
    key: Value,
    now: i64,
    clock: i64,
    record: Record,
}

/// The part of a parallel dedup that reads every record in order: the clock, which is global
/// (kept records are forgotten twice the ttl behind the newest time of any key).
pub struct Router {
    ttl: i64,
    clock: i64,
    purged_at: i64,
}

/// The expressions of a parallel dedup, one copy per thread.
pub struct Evaluator {
    key: Expr,
    time: Option<TimeExpr>,
    max: u32,
}

/// A record's event time (`None`: records are counted), key and key group, or why it is bad.
pub type Eval = Result<(Option<i64>, Value, u32), String>;

impl Split for Dedup {
    type Eval = Eval;
    type Evaluator = Evaluator;
    type Item = Item;
    /// The horizon every instance purges to after the batch, when a purge is due.
    type Shared = Option<i64>;
    type Router = Router;

    fn instance(&self) -> Dedup {
        Dedup::new(self.key.clone(), self.time.clone(), self.ttl, self.max)
    }

    fn router(&self) -> Router {
        Router {
            ttl: self.ttl,
            clock: self.clock,
            purged_at: self.purged_at,
        }
    }

    fn evaluator(&self, max: u32) -> Evaluator {
        Evaluator {
            key: self.key.clone(),
            time: self.time.clone(),
            max,
        }
    }

    fn evaluate(ev: &mut Evaluator, records: &mut [Record], evals: &mut Evals<Eval>, _: bool) {
        for rec in records.iter() {
            // The number of a record (without `time`) depends on the records before it: the
            // router gives it; a time that does not read, and then a key that does not, are
            // errors in that order, as `process` finds them.
            let timed = ev.time.is_some();
            let r = evaluate(&ev.key, ev.time.as_ref(), 0, &rec.value)
                .map(|(t, k)| (timed.then_some(t), k));
            evals.list.push(r.map(|(t, key)| {
                let g = key_group(&key, ev.max);
                (t, key, g)
            }));
        }
    }

    fn route(
        r: &mut Router,
        _input: usize,
        chunks: &mut [Chunk<Eval>],
        out: &mut Output,
        to: &mut Routes<Item>,
    ) -> StageResult<Option<i64>> {
        walk(chunks, 0, out, |pos, rec, (t, key, g), _, _| {
            let now = t.unwrap_or(r.clock.max(0) + 1);
            r.clock = r.clock.max(now);
            to.at(g).items.push(Item {
                pos,
                key,
                now,
                clock: r.clock,
                record: Record {
                    value: std::mem::take(&mut rec.value),
                    origin: rec.origin,
                },
            });
            Ok(())
        })?;
        Ok(Dedup::purge_due(r.clock, &mut r.purged_at, r.ttl))
    }

    fn route_folded(
        _r: &mut Router,
        _p: FoldedTables,
        _out: &mut Output,
        _to: &mut Routes<Item>,
    ) -> StageResult<Option<i64>> {
        Err(Stop::Failed(Error::runtime(
            "internal: folded counts sent to a node that does not aggregate",
        )))
    }

    fn skip(&mut self, purge: &Option<i64>) -> bool {
        purge.is_none()
    }

    fn apply(
        &mut self,
        share: &mut Share<Item>,
        purge: &Option<i64>,
        outs: &mut Vec<Out>,
    ) -> Result<(), String> {
        for it in share.items.drain(..) {
            self.clock = it.clock;
            if self.keep(it.key, it.now) {
                outs.push(Out {
                    pos: it.pos,
                    fire: None,
                    record: it.record,
                });
            }
        }
        if let Some(h) = *purge {
            self.purge(h);
        }
        Ok(())
    }

    fn finish_all(_r: &mut Router, _parts: &mut [Box<Dedup>], _out: &mut Output) -> StageResult {
        Ok(())
    }

    fn snapshot_all(r: &mut Router, parts: &mut [Box<Dedup>]) -> Result<Vec<u8>, Error> {
        for p in parts.iter_mut() {
            p.clock = r.clock;
            p.purged_at = r.purged_at;
        }
        let refs: Vec<&Dedup> = parts.iter().map(|p| &**p).collect();
        Ok(encode_state(&refs))
    }

    fn restore_all(r: &mut Router, parts: &mut [Box<Dedup>], state: &[u8]) -> Result<(), Error> {
        let mut refs: Vec<&mut Dedup> = parts.iter_mut().map(|p| &mut **p).collect();
        decode_state(&mut refs, state)?;
        if let Some(p) = parts.first() {
            r.clock = p.clock;
            r.purged_at = p.purged_at;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_one_or_several_kept_times_per_key_and_keeps_the_newest_two() {
        let mut d = Dedup::new(Expr::compile(".k").unwrap(), None, 10, 1);
        d.restore(
            br#"{"max_parallelism":1,"clock":10,"purged_at":0,"key_groups":[[0,[["a",5],["b",3,1,2]]]]}"#,
        )
        .unwrap();
        let snap = String::from_utf8(d.snapshot().unwrap()).unwrap();
        assert_eq!(
            snap,
            r#"{"max_parallelism":1,"clock":10,"purged_at":0,"key_groups":[[0,[["a",5],["b",2,3]]]]}"#
        );
        for bad in [
            r#"{"max_parallelism":1,"key_groups":[[0,[["a"]]]]}"#,
            r#"{"max_parallelism":1,"key_groups":[[0,[["a","x"]]]]}"#,
            r#"{"max_parallelism":1,"key_groups":[[0,[5]]]}"#,
            r#"{"max_parallelism":1,"key_groups":[[1,[["a",5]]]]}"#,
            r#"{"max_parallelism":2,"key_groups":[]}"#,
            r#"{"max_parallelism":1,"seen":[]}"#,
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
