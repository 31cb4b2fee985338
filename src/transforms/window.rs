//! `window`: keyed event-time windows (tumbling, sliding, session) with Flink's model.
//!
//! The watermark W is the largest event time read so far minus `out_of_orderness`, advanced by
//! the records themselves (after each record has been added to its windows), never by the wall
//! clock; with several inputs it is the minimum over the inputs that have sent records. A window
//! `[start, end)` fires when W >= end; windows that fire together come out ordered by end,
//! start, then key, which is simply the order of the map they live in. A fired window is kept
//! until end + `allowed_lateness` <= W, so a late record within the lateness updates it and it
//! fires again at once; a record all of whose windows are past that is late: it goes to the
//! `.late` side output and is counted.

use super::aggs::{check_args, eval_args, eval_key, fold, Acc, AggSpec, Func};
use crate::error::Error;
use crate::expr::Expr;
use crate::pipeline::graph::BATCH_SIZE;
use crate::runtime::message::{Batch, Origin, Partial, Record, END_SEQ};
use crate::runtime::stage::{Operator, Output, StageResult, Stop};
use crate::time::window::{sessions_meet, Assigner};
use crate::time::{format_millis, TimeExpr};
use crate::value::{Map, Str, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

/// (end, start, key): the firing order.
type WKey = (i64, i64, Value);

/// Empty accumulators, one per aggregate.
fn fresh_accs(specs: &[AggSpec]) -> Vec<Acc> {
    specs.iter().map(|s| Acc::new(s.func)).collect()
}

/// Windows with their accumulators, grouped by (end, start) in firing order, each group's keys
/// hashed: a record finds its window with one hash instead of a walk of string comparisons
/// through a tree of (end, start, key). Keys are sorted whenever windows come out (firing,
/// checkpoints, the end), so hash order never reaches an output or a checkpoint.
#[derive(Default)]
struct Windows {
    groups: BTreeMap<(i64, i64), hashbrown::HashMap<Value, Vec<Acc>>>,
}

impl Windows {
    fn get_mut(&mut self, end: i64, start: i64, key: &Value) -> Option<&mut Vec<Acc>> {
        self.groups.get_mut(&(end, start))?.get_mut(key)
    }

    fn get(&self, k: &WKey) -> Option<&Vec<Acc>> {
        self.groups.get(&(k.0, k.1))?.get(&k.2)
    }

    fn get_or_insert_with(
        &mut self,
        end: i64,
        start: i64,
        key: &Value,
        fresh: impl FnOnce() -> Vec<Acc>,
    ) -> &mut Vec<Acc> {
        self.groups
            .entry((end, start))
            .or_default()
            .entry_ref(key)
            .or_insert_with(fresh)
    }

    fn insert(&mut self, k: WKey, accs: Vec<Acc>) {
        self.groups.entry((k.0, k.1)).or_default().insert(k.2, accs);
    }

    fn remove(&mut self, k: &WKey) -> Option<Vec<Acc>> {
        let g = self.groups.get_mut(&(k.0, k.1))?;
        let accs = g.remove(&k.2);
        if g.is_empty() {
            self.groups.remove(&(k.0, k.1));
        }
        accs
    }

    /// The end of the windows that fire first.
    fn first_end(&self) -> Option<i64> {
        self.groups.first_key_value().map(|(k, _)| k.0)
    }

    /// Removes the windows that fire first (one end and start), in key order.
    fn take_first_group(&mut self) -> Vec<(WKey, Vec<Acc>)> {
        let Some(((end, start), g)) = self.groups.pop_first() else {
            return Vec::new();
        };
        let mut v: Vec<(WKey, Vec<Acc>)> =
            g.into_iter().map(|(k, a)| ((end, start, k), a)).collect();
        v.sort_unstable_by(|a, b| a.0 .2.cmp(&b.0 .2));
        v
    }

    /// Every window in firing order.
    fn sorted(&self) -> Vec<(i64, i64, &Value, &Vec<Acc>)> {
        let mut out = Vec::new();
        for (&(end, start), g) in &self.groups {
            let from = out.len();
            out.extend(g.iter().map(|(k, a)| (end, start, k, a)));
            out[from..].sort_unstable_by(|a, b| a.2.cmp(b.2));
        }
        out
    }

    fn clear(&mut self) {
        self.groups.clear();
    }
}

pub struct Window {
    pub key: Option<Expr>,
    pub time: TimeExpr,
    pub assigner: Assigner,
    pub ooo: i64,
    pub lateness: i64,
    pub specs: Vec<AggSpec>,
    /// Largest event time per input (None: no record yet).
    max_t: Vec<Option<i64>>,
    wm: i64,
    open: Windows,
    fired: Windows,
    /// Session windows of each key, (start, end), for merging.
    sessions: HashMap<Value, Vec<(i64, i64)>>,
    finished: bool,
    args: Vec<Option<Value>>,
    wins: Vec<(i64, i64)>,
    names: [Str; 3],
}

impl Window {
    pub fn new(
        key: Option<Expr>,
        time: TimeExpr,
        assigner: Assigner,
        ooo: i64,
        lateness: i64,
        specs: Vec<AggSpec>,
    ) -> Window {
        Window {
            key,
            time,
            assigner,
            ooo,
            lateness,
            specs,
            max_t: Vec::new(),
            wm: i64::MIN,
            open: Windows::default(),
            fired: Windows::default(),
            sessions: HashMap::new(),
            finished: false,
            args: Vec::new(),
            wins: Vec::new(),
            names: [
                Str::new("key"),
                Str::new("window_start"),
                Str::new("window_end"),
            ],
        }
    }

    fn new_accs(&self) -> Vec<Acc> {
        fresh_accs(&self.specs)
    }

    fn result(&self, k: &WKey, accs: &[Acc]) -> Value {
        let mut m = Map::with_capacity(self.specs.len() + 3);
        if self.key.is_some() {
            m.push_unique(self.names[0].clone(), k.2.clone());
        }
        m.push_unique(
            self.names[1].clone(),
            Value::Str(Str::from(format_millis(k.1))),
        );
        m.push_unique(
            self.names[2].clone(),
            Value::Str(Str::from(format_millis(k.0))),
        );
        for (s, a) in self.specs.iter().zip(accs) {
            m.insert(s.name.clone(), a.result());
        }
        Value::Object(m)
    }

    fn emit(&self, out: &mut Output, k: &WKey, accs: &[Acc], origin: Origin) {
        let value = self.result(k, accs);
        out.push(Record { value, origin });
    }

    /// Fires every open window with end <= W, in (end, start, key) order, and forgets fired
    /// windows past the allowed lateness.
    fn advance(&mut self, out: &mut Output, origin: Origin) {
        while let Some(end) = self.open.first_end() {
            if end > self.wm {
                break;
            }
            for (k, accs) in self.open.take_first_group() {
                self.emit(out, &k, &accs, origin);
                if k.0.saturating_add(self.lateness) > self.wm {
                    self.fired.insert(k, accs);
                } else {
                    self.forget_session(&k);
                }
            }
        }
        while let Some(end) = self.fired.first_end() {
            if end.saturating_add(self.lateness) > self.wm {
                break;
            }
            for (k, _) in self.fired.take_first_group() {
                self.forget_session(&k);
            }
        }
    }

    fn forget_session(&mut self, k: &WKey) {
        if let Assigner::Session { .. } = self.assigner {
            if let Some(list) = self.sessions.get_mut(&k.2) {
                list.retain(|w| !(w.0 == k.1 && w.1 == k.0));
                if list.is_empty() {
                    self.sessions.remove(&k.2);
                }
            }
        }
    }

    /// Adds one record (already checked) to its windows. Returns false if it was late.
    fn add(&mut self, key: Value, t: i64, out: &mut Output, origin: Origin) -> bool {
        let lateness = self.lateness;
        let wm = self.wm;
        let expired = |end: i64| end.saturating_add(lateness) <= wm;
        if let Assigner::Session { gap } = self.assigner {
            let mut w = (t, t.saturating_add(gap));
            if expired(w.1) {
                return false;
            }
            let mut accs = self.new_accs();
            let _ = fold(&self.specs, &mut accs, &self.args);
            // Merge with every session of the key it meets, oldest first.
            let mut merged: Vec<(i64, i64)> = self
                .sessions
                .get(&key)
                .map(|l| l.iter().copied().filter(|s| sessions_meet(*s, w)).collect())
                .unwrap_or_default();
            merged.sort_unstable();
            let mut parts: Vec<((i64, i64), Vec<Acc>)> = Vec::new();
            for s in &merged {
                let k = (s.1, s.0, key.clone());
                if let Some(a) = self.open.remove(&k).or_else(|| self.fired.remove(&k)) {
                    parts.push((*s, a));
                }
                w = (w.0.min(s.0), w.1.max(s.1));
            }
            parts.push(((t, t.saturating_add(gap)), accs));
            parts.sort_by_key(|p| p.0);
            let mut total = self.new_accs();
            for (_, a) in &parts {
                for (x, y) in total.iter_mut().zip(a) {
                    x.merge(y);
                }
            }
            let list = self.sessions.entry(key.clone()).or_default();
            list.retain(|s| !merged.contains(s));
            list.push(w);
            let k = (w.1, w.0, key);
            if k.0 <= self.wm {
                // Within the lateness: fires again at once.
                self.emit(out, &k, &total, origin);
                self.fired.insert(k, total);
            } else {
                self.open.insert(k, total);
            }
            return true;
        }
        self.assigner.assign(t, &mut self.wins);
        if self.wins.is_empty() {
            return true;
        }
        let mut any = false;
        let mut refire: Vec<WKey> = Vec::new();
        for i in 0..self.wins.len() {
            let (start, end) = self.wins[i];
            if expired(end) {
                continue;
            }
            any = true;
            let specs = &self.specs;
            let fresh = || fresh_accs(specs);
            if end <= self.wm {
                let accs = self.fired.get_or_insert_with(end, start, &key, fresh);
                let _ = fold(specs, accs, &self.args);
                refire.push((end, start, key.clone()));
            } else {
                let accs = match self.open.get_mut(end, start, &key) {
                    Some(a) => a,
                    None => self.open.get_or_insert_with(end, start, &key, fresh),
                };
                let _ = fold(specs, accs, &self.args);
            }
        }
        for k in refire {
            if let Some(a) = self.fired.get(&k) {
                self.emit(out, &k, a, origin);
            }
        }
        any
    }
}

impl Operator for Window {
    fn process(&mut self, input: usize, batch: Batch, out: &mut Output) -> StageResult {
        if self.max_t.len() <= input {
            self.max_t.resize(input + 1, None);
        }
        let mut records = batch.records;
        // Records are read in place, not moved out one by one (see `Aggregate::process`).
        for r in records.iter_mut() {
            let t = match self.time.eval(&r.value) {
                Ok(t) => t,
                Err(msg) => {
                    out.bad(r.origin, &msg, None, Some(std::mem::take(&mut r.value)))?;
                    continue;
                }
            };
            let key = match eval_key(&self.key, &r.value) {
                Ok(k) => k.into_owned(),
                Err(msg) => {
                    out.bad(r.origin, &msg, None, Some(std::mem::take(&mut r.value)))?;
                    continue;
                }
            };
            if let Err(msg) = eval_args(&self.specs, &r.value, &mut self.args) {
                out.bad(r.origin, &msg, None, Some(std::mem::take(&mut r.value)))?;
                continue;
            }
            // Check the values once up front, so no window is half-updated.
            if let Err(msg) = check_args(&self.specs, &self.args) {
                out.bad(r.origin, &msg, None, Some(std::mem::take(&mut r.value)))?;
                continue;
            }
            if !self.add(key, t, out, r.origin) {
                out.ctx.stats[out.node].late.fetch_add(1, Ordering::Relaxed);
                out.push_late(Record {
                    value: std::mem::take(&mut r.value),
                    origin: r.origin,
                });
                continue;
            }
            let m = &mut self.max_t[input];
            *m = Some(m.map_or(t, |x| x.max(t)));
            let w = self
                .max_t
                .iter()
                .flatten()
                .min()
                .copied()
                .unwrap_or(i64::MIN)
                .saturating_sub(self.ooo);
            if w > self.wm {
                self.wm = w;
                self.advance(out, r.origin);
            }
        }
        Ok(())
    }

    /// Counts and sums per window end and key that the source's parse workers folded (see
    /// `sources::combine`): the windows take them, then the watermark moves to where the
    /// last of the records would have moved it, firing what it passes. The source has made
    /// sure no folded record was late, so every window they reach is still open.
    fn partial(&mut self, p: Partial, out: &mut Output) -> StageResult {
        let internal = |m: &str| Err(Stop::Failed(Error::runtime(format!("internal: {m}"))));
        let Assigner::Tumbling { size } = self.assigner else {
            return internal("folded counts sent to a window that is not tumbling");
        };
        let width = self.specs.len();
        for t in p.tables {
            if width == 0 || t.vals.len() != t.keys.len() * width || t.ends.len() != t.keys.len() {
                return internal("folded counts do not fit the window");
            }
            let rows = t
                .keys
                .into_iter()
                .zip(t.ends)
                .zip(t.vals.chunks_exact(width));
            for ((k, end), vals) in rows {
                if end <= self.wm {
                    return internal("a folded record is late");
                }
                let specs = &self.specs;
                let key = Value::Str(k);
                let accs = self
                    .open
                    .get_or_insert_with(end, end - size, &key, || fresh_accs(specs));
                for (a, v) in accs.iter_mut().zip(vals) {
                    a.add_folded(*v);
                }
            }
        }
        out.ctx.stats[out.node]
            .late
            .fetch_add(p.late, Ordering::Relaxed);
        if self.max_t.is_empty() {
            self.max_t.push(None);
        }
        if p.max_time > self.max_t[0] {
            self.max_t[0] = p.max_time;
            let w = p.max_time.map_or(i64::MIN, |m| m.saturating_sub(self.ooo));
            if w > self.wm {
                self.wm = w;
                self.advance(out, Origin::default());
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) -> StageResult {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let open = std::mem::take(&mut self.open);
        for (i, (end, start, key, accs)) in open.sorted().into_iter().enumerate() {
            self.emit(out, &(end, start, key.clone()), accs, Origin::default());
            if (i + 1) % BATCH_SIZE == 0 {
                out.flush(END_SEQ)?;
            }
        }
        self.fired.clear();
        self.sessions.clear();
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        let enc = |m: &Windows, out: &mut Vec<u8>| {
            out.push(b'[');
            for (i, (end, start, key, accs)) in m.sorted().into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(format!("[{end},{start},").as_bytes());
                key.write_json(out);
                for a in accs {
                    out.push(b',');
                    a.encode(out);
                }
                out.push(b']');
            }
            out.push(b']');
        };
        let mut out = Vec::new();
        let max_t: Vec<Option<i64>> = self.max_t.clone();
        out.extend_from_slice(
            format!(
                "{{\"finished\":{},\"wm\":{},\"max_t\":{},\"open\":",
                self.finished,
                self.wm,
                serde_json::to_string(&max_t).unwrap_or_else(|_| "[]".into())
            )
            .as_bytes(),
        );
        enc(&self.open, &mut out);
        out.extend_from_slice(b",\"fired\":");
        enc(&self.fired, &mut out);
        out.push(b'}');
        Ok(out)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        let bad = |m: String| Error::runtime(format!("window state in checkpoint: {m}"));
        let v = Value::from_json(state).map_err(bad)?;
        let f = |k: &str| v.field(k).cloned().unwrap_or(Value::Null);
        self.finished = f("finished").truthy();
        self.wm = f("wm").as_f64().map(|x| x as i64).unwrap_or(i64::MIN);
        if let Value::Int(i) = f("wm") {
            self.wm = i;
        }
        self.max_t = match f("max_t") {
            Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    Value::Int(i) => Some(*i),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let funcs: Vec<Func> = self.specs.iter().map(|s| s.func).collect();
        let dec = |x: Value| -> Result<Windows, Error> {
            let mut m = Windows::default();
            let Value::Array(items) = x else {
                return Ok(m);
            };
            for it in items {
                let Value::Array(mut p) = it else {
                    return Err(bad("a window is not an array".into()));
                };
                if p.len() != funcs.len() + 3 {
                    return Err(bad(
                        "a window does not match the pipeline's aggregates".into()
                    ));
                }
                let rest = p.split_off(3);
                let end = p[0].as_f64().ok_or_else(|| bad("end".into()))? as i64;
                let start = p[1].as_f64().ok_or_else(|| bad("start".into()))? as i64;
                let key = std::mem::take(&mut p[2]);
                let mut accs = Vec::with_capacity(funcs.len());
                for (func, a) in funcs.iter().zip(rest.iter()) {
                    accs.push(Acc::decode(*func, a).map_err(bad)?);
                }
                m.insert((end, start, key), accs);
            }
            Ok(m)
        };
        self.open = dec(f("open"))?;
        self.fired = dec(f("fired"))?;
        self.sessions.clear();
        if let Assigner::Session { .. } = self.assigner {
            for (end, start, key, _) in self.open.sorted().into_iter().chain(self.fired.sorted()) {
                self.sessions
                    .entry(key.clone())
                    .or_default()
                    .push((start, end));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(w: &Windows) -> Vec<(i64, i64, String)> {
        w.sorted()
            .into_iter()
            .map(|(e, s, k, _)| (e, s, k.to_json_string()))
            .collect()
    }

    #[test]
    fn windows_come_out_in_end_start_key_order_whatever_the_insertion_order() {
        let items: Vec<WKey> = (0..40)
            .map(|i| {
                (
                    60 * (i % 3),
                    60 * (i % 3) - 60,
                    Value::str(&format!("k{}", (i * 7) % 13)),
                )
            })
            .collect();
        let (mut a, mut b) = (Windows::default(), Windows::default());
        for k in &items {
            a.insert(k.clone(), Vec::new());
        }
        for k in items.iter().rev() {
            b.insert(k.clone(), Vec::new());
        }
        let mut want: Vec<WKey> = items.clone();
        want.sort();
        want.dedup();
        let want: Vec<(i64, i64, String)> = want
            .into_iter()
            .map(|(e, s, k)| (e, s, k.to_json_string()))
            .collect();
        assert_eq!(keys(&a), want);
        assert_eq!(keys(&b), want);
        // Firing takes whole groups in the same order.
        let mut fired = Vec::new();
        while a.first_end().is_some() {
            fired.extend(
                a.take_first_group()
                    .into_iter()
                    .map(|(k, _)| (k.0, k.1, k.2.to_json_string())),
            );
        }
        assert_eq!(fired, want);
        assert!(b.remove(&(0, -60, Value::str("k0"))).is_some());
        assert!(b.get(&(0, -60, Value::str("k0"))).is_none());
    }
}
