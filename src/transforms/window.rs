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
//!
//! With `parallelism` > 1 the node runs several `Window`s, one per range of key groups, under
//! one watermark (`split.rs`, `transforms::parallel`); checkpoints list windows per key group
//! (`state.rs`).

mod split;
mod state;
pub use split::{Advance, Eval, Evaluator, Item, Router};
use state::{decode_state, encode_state};

use super::aggs::{accumulate, check_args, eval_args, eval_key, Acc, AggSpec};
use super::parallel::Out;
use crate::error::Error;
use crate::expr::Expr;
use crate::pipeline::graph::BATCH_SIZE;
use crate::runtime::message::{Batch, FoldedTables, Origin, Record, END_SEQ};
use crate::runtime::stage::{Operator, Output, StageResult, Stop};
use crate::time::window::{sessions_meet, Assigner};
use crate::time::{format_millis, TimeExpr};
use crate::value::{Map, Str, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

/// (end, start, key): the firing order.
type WKey = (i64, i64, Value);

/// A window and its accumulators, as `Windows::sorted` lists them.
type Entry<'a> = (i64, i64, &'a Value, &'a Vec<Acc>);

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
    /// Key groups of the state (`max_parallelism`), as checkpoints store it.
    max: u32,
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

/// Where a window's results go: the node's output, or (an instance of a parallel window) a
/// list that notes what orders each result among the other instances'.
trait Emit {
    /// `fired`: fired by the watermark (else the output of the record being added).
    fn emit(&mut self, k: &WKey, record: Record, fired: bool);
}

impl Emit for Output {
    #[inline]
    fn emit(&mut self, _k: &WKey, record: Record, _fired: bool) {
        self.push(record);
    }
}

/// An instance's outputs, each with the position of the record that caused it.
struct Tagged<'a> {
    pos: u32,
    outs: &'a mut Vec<Out>,
}

impl Emit for Tagged<'_> {
    fn emit(&mut self, k: &WKey, record: Record, fired: bool) {
        self.outs.push(Out {
            pos: self.pos,
            fire: fired.then(|| (k.0, k.1, k.2.clone())),
            record,
        });
    }
}

/// Whether a record at `t` is late: every window it belongs to is past the allowed lateness
/// at watermark `wm` (it then goes to `.late`). `wins` is scratch space.
fn is_late(
    assigner: &Assigner,
    lateness: i64,
    wm: i64,
    t: i64,
    wins: &mut Vec<(i64, i64)>,
) -> bool {
    let expired = |end: i64| end.saturating_add(lateness) <= wm;
    if let Assigner::Session { gap } = *assigner {
        return expired(t.saturating_add(gap));
    }
    assigner.assign(t, wins);
    !wins.is_empty() && wins.iter().all(|w| expired(w.1))
}

/// A record's event time, key and arguments (checked), or why it is bad.
#[inline]
fn evaluate(
    time: &TimeExpr,
    key: &Option<Expr>,
    specs: &[AggSpec],
    args: &mut Vec<Option<Value>>,
    record: &Value,
) -> Result<(i64, Value), String> {
    let t = time.eval(record)?;
    let key = eval_key(key, record)?.into_owned();
    eval_args(specs, record, args)?;
    // Check the values once up front, so no window is half-updated.
    check_args(specs, args)?;
    Ok((t, key))
}

/// The watermark after input `input`'s largest time becomes at least `t`.
fn watermark(max_t: &mut [Option<i64>], input: usize, t: i64, ooo: i64) -> i64 {
    let m = &mut max_t[input];
    *m = Some(m.map_or(t, |x| x.max(t)));
    max_t
        .iter()
        .flatten()
        .min()
        .copied()
        .unwrap_or(i64::MIN)
        .saturating_sub(ooo)
}

impl Window {
    pub fn new(
        key: Option<Expr>,
        time: TimeExpr,
        assigner: Assigner,
        ooo: i64,
        lateness: i64,
        specs: Vec<AggSpec>,
        max: u32,
    ) -> Window {
        Window {
            key,
            time,
            assigner,
            ooo,
            lateness,
            specs,
            max,
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

    fn emit(&self, out: &mut impl Emit, k: &WKey, accs: &[Acc], origin: Origin, fired: bool) {
        let value = self.result(k, accs);
        out.emit(k, Record { value, origin }, fired);
    }

    /// Fires every open window with end <= W, in (end, start, key) order, and forgets fired
    /// windows past the allowed lateness.
    fn advance(&mut self, out: &mut impl Emit, origin: Origin) {
        while let Some(end) = self.open.first_end() {
            if end > self.wm {
                break;
            }
            for (k, accs) in self.open.take_first_group() {
                self.emit(out, &k, &accs, origin, true);
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

    /// Whether `advance` at watermark `wm` would do anything.
    fn would_advance(&self, wm: i64) -> bool {
        self.open.first_end().is_some_and(|end| end <= wm)
            || self
                .fired
                .first_end()
                .is_some_and(|end| end.saturating_add(self.lateness) <= wm)
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

    /// Adds one record (already checked, arguments in `args`) to its windows. Returns false
    /// if it was late (by `is_late`, which the router of a parallel window asks too).
    fn add(&mut self, key: Value, t: i64, out: &mut impl Emit, origin: Origin) -> bool {
        // Fills `wins` with the record's windows (not for sessions).
        if is_late(&self.assigner, self.lateness, self.wm, t, &mut self.wins) {
            return false;
        }
        let lateness = self.lateness;
        let wm = self.wm;
        let expired = |end: i64| end.saturating_add(lateness) <= wm;
        if let Assigner::Session { gap } = self.assigner {
            let mut w = (t, t.saturating_add(gap));
            let mut accs = self.new_accs();
            let _ = accumulate(&self.specs, &mut accs, &self.args);
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
                self.emit(out, &k, &total, origin, false);
                self.fired.insert(k, total);
            } else {
                self.open.insert(k, total);
            }
            return true;
        }
        let mut refire: Vec<WKey> = Vec::new();
        for i in 0..self.wins.len() {
            let (start, end) = self.wins[i];
            if expired(end) {
                continue;
            }
            let specs = &self.specs;
            let fresh = || fresh_accs(specs);
            if end <= self.wm {
                let accs = self.fired.get_or_insert_with(end, start, &key, fresh);
                let _ = accumulate(specs, accs, &self.args);
                refire.push((end, start, key.clone()));
            } else {
                let accs = match self.open.get_mut(end, start, &key) {
                    Some(a) => a,
                    None => self.open.get_or_insert_with(end, start, &key, fresh),
                };
                let _ = accumulate(specs, accs, &self.args);
            }
        }
        for k in refire {
            if let Some(a) = self.fired.get(&k) {
                self.emit(out, &k, a, origin, false);
            }
        }
        true
    }

    /// Adds a key's counts and sums for the window ending at `end`, folded by a parse worker.
    fn add_folded(&mut self, key: Value, end: i64, size: i64, vals: &[i64]) {
        let specs = &self.specs;
        let accs = self
            .open
            .get_or_insert_with(end, end - size, &key, || fresh_accs(specs));
        for (a, v) in accs.iter_mut().zip(vals) {
            a.add_folded(*v);
        }
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
            let (t, key) =
                match evaluate(&self.time, &self.key, &self.specs, &mut self.args, &r.value) {
                    Ok(x) => x,
                    Err(msg) => {
                        out.bad(r.origin, &msg, None, Some(std::mem::take(&mut r.value)))?;
                        continue;
                    }
                };
            if !self.add(key, t, out, r.origin) {
                out.ctx.stats[out.node].late.fetch_add(1, Ordering::Relaxed);
                out.push_late(Record {
                    value: std::mem::take(&mut r.value),
                    origin: r.origin,
                });
                continue;
            }
            let w = watermark(&mut self.max_t, input, t, self.ooo);
            if w > self.wm {
                self.wm = w;
                self.advance(out, r.origin);
            }
        }
        Ok(())
    }

    /// Counts and sums per window end and key that the source's parse workers folded (see
    /// `sources::folding`): the windows take them, then the watermark moves to where the
    /// last of the records would have moved it, firing what it passes. The source has made
    /// sure no folded record was late, so every window they reach is still open.
    fn folded(&mut self, p: FoldedTables, out: &mut Output) -> StageResult {
        let size = folded_size(&self.assigner)?;
        let (width, wm) = (self.specs.len(), self.wm);
        each_folded(p.tables, width, wm, |k, end, vals| {
            self.add_folded(Value::Str(k), end, size, vals)
        })?;
        out.ctx.stats[out.node]
            .late
            .fetch_add(p.late, Ordering::Relaxed);
        if let Some(w) = folded_watermark(&mut self.max_t, p.max_time, self.ooo) {
            if w > self.wm {
                self.wm = w;
                self.advance(out, Origin::default());
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) -> StageResult {
        let mut me = [self];
        finish_parts(&mut me, out)
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        Ok(encode_state(&[&*self]))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        let mut me = [self];
        decode_state(&mut me, state)
    }
}

fn internal<T>(m: &str) -> StageResult<T> {
    Err(Stop::Failed(Error::runtime(format!("internal: {m}"))))
}

/// The size of the windows folded counts are for (only tumbling windows are folded).
fn folded_size(a: &Assigner) -> StageResult<i64> {
    match *a {
        Assigner::Tumbling { size } => Ok(size),
        _ => internal("folded counts sent to a window that is not tumbling"),
    }
}

/// Each key's counts and sums in `tables` (folded by the source's parse workers, `width` a
/// key) with the end of their window, to `each`. The source has made sure no folded record
/// was late at watermark `wm`.
fn each_folded(
    tables: Vec<crate::sources::folding::Table>,
    width: usize,
    wm: i64,
    mut each: impl FnMut(Str, i64, &[i64]),
) -> StageResult {
    for t in tables {
        if width == 0 || t.vals.len() != t.keys.len() * width || t.ends.len() != t.keys.len() {
            return internal("folded counts do not fit the window");
        }
        let rows = t
            .keys
            .into_iter()
            .zip(t.ends)
            .zip(t.vals.chunks_exact(width));
        for ((k, end), vals) in rows {
            if end <= wm {
                return internal("a folded record is late");
            }
            each(k, end, vals);
        }
    }
    Ok(())
}

/// The watermark folded records move to, if the largest time they carry moves it.
fn folded_watermark(max_t: &mut Vec<Option<i64>>, max_time: Option<i64>, ooo: i64) -> Option<i64> {
    if max_t.is_empty() {
        max_t.push(None);
    }
    if max_time > max_t[0] {
        max_t[0] = max_time;
        return Some(max_time.map_or(i64::MIN, |m| m.saturating_sub(ooo)));
    }
    None
}

/// The end of the stream: every open window fires, in (end, start, key) order over all the
/// instances `parts` (one, without parallelism).
fn finish_parts(parts: &mut [&mut Window], out: &mut Output) -> StageResult {
    if parts.iter().any(|p| p.finished) {
        return Ok(());
    }
    let mut opens: Vec<Windows> = Vec::with_capacity(parts.len());
    for p in parts.iter_mut() {
        p.finished = true;
        opens.push(std::mem::take(&mut p.open));
    }
    let lists: Vec<Vec<Entry>> = opens.iter().map(|o| o.sorted()).collect();
    let mut at = vec![0usize; lists.len()];
    let mut emitted = 0usize;
    loop {
        let mut best: Option<usize> = None;
        for (i, l) in lists.iter().enumerate() {
            let Some(x) = l.get(at[i]) else { continue };
            let better = match best {
                None => true,
                Some(b) => {
                    let y = &lists[b][at[b]];
                    (x.0, x.1, x.2) < (y.0, y.1, y.2)
                }
            };
            if better {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        let (end, start, key, accs) = lists[b][at[b]];
        at[b] += 1;
        parts[b].emit(
            out,
            &(end, start, key.clone()),
            accs,
            Origin::default(),
            true,
        );
        emitted += 1;
        if emitted.is_multiple_of(BATCH_SIZE) {
            out.flush(END_SEQ)?;
        }
    }
    for p in parts.iter_mut() {
        p.fired.clear();
        p.sessions.clear();
    }
    Ok(())
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
