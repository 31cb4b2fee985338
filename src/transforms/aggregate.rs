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
mod tests {
    //! The operator against a reference: the map-based state it replaced, kept here as it was
    //! (a HashMap of key -> accumulators, purged with `retain`, encoded with `format!`).

    use super::*;
    use crate::pipeline::spec::{OnError, TimeUnit};
    use crate::runtime::context::SourceInfo;
    use crate::runtime::message::Msg;
    use crate::time::TimeExpr;
    use crate::transforms::aggs::{accumulate, parse_agg, Acc};
    use crossbeam_channel::Receiver;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::sync::{Arc, RwLock};

    const ALL: [(&str, &str); 8] = [
        ("n", "count"),
        ("s", "sum(.v)"),
        ("lo", "min(.v)"),
        ("hi", "max(.v)"),
        ("m", "avg(.v)"),
        ("f", "first(.v)"),
        ("l", "last(.v)"),
        ("d", "count_distinct(.v)"),
    ];

    fn specs() -> Vec<AggSpec> {
        ALL.iter().map(|(n, t)| parse_agg(n, t).unwrap()).collect()
    }

    fn ttl(ms: Option<i64>) -> Option<Ttl> {
        ms.map(|ms| Ttl {
            ms,
            time: TimeExpr::new(Expr::compile(".ts").unwrap(), TimeUnit::Ms),
        })
    }

    struct Group {
        accs: Vec<Acc>,
        last_seen: i64,
    }

    /// The map-based aggregate, as it was.
    struct Reference {
        key: Option<Expr>,
        specs: Vec<AggSpec>,
        emit: Emit,
        ttl: Option<Ttl>,
        groups: HashMap<Value, Group>,
        clock: i64,
        finished: bool,
        args: Vec<Option<Value>>,
    }

    impl Reference {
        fn new(emit: Emit, ttl_ms: Option<i64>) -> Reference {
            Reference {
                key: Some(Expr::compile(".k").unwrap()),
                specs: specs(),
                emit,
                ttl: ttl(ttl_ms),
                groups: HashMap::new(),
                clock: i64::MIN,
                finished: false,
                args: Vec::new(),
            }
        }

        fn result(&self, key: &Value, g: &Group) -> String {
            let mut m = Map::new();
            m.push_unique(Str::new("key"), key.clone());
            for (s, a) in self.specs.iter().zip(&g.accs) {
                m.insert(s.name.clone(), a.result());
            }
            Value::Object(m).to_json_string()
        }

        fn expire(&mut self) {
            let Some(ttl) = &self.ttl else { return };
            let horizon = self.clock.saturating_sub(ttl.ms);
            self.groups.retain(|_, g| g.last_seen >= horizon);
        }

        fn process(&mut self, records: &[Value]) -> Vec<String> {
            let mut out = Vec::new();
            for r in records {
                let Ok(key) = eval_key(&self.key, r).map(std::borrow::Cow::into_owned) else {
                    continue;
                };
                let now = match &self.ttl {
                    Some(t) => match t.time.eval(r) {
                        Ok(ms) => ms,
                        Err(_) => continue,
                    },
                    None => 0,
                };
                // A record an aggregate rejects leaves no trace: no group, no reset.
                if eval_args(&self.specs, r, &mut self.args).is_err()
                    || check_args(&self.specs, &self.args).is_err()
                {
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
                let specs = &self.specs;
                let g = self.groups.entry(key.clone()).or_insert_with(|| Group {
                    accs: specs.iter().map(|s| Acc::new(s.func)).collect(),
                    last_seen: now,
                });
                if accumulate(specs, &mut g.accs, &self.args).is_err() {
                    continue;
                }
                g.last_seen = g.last_seen.max(now);
                self.clock = self.clock.max(now);
                if self.emit == Emit::Updates {
                    out.push(self.result(&key, &self.groups[&key]));
                }
            }
            if self.ttl.is_some() {
                self.expire();
            }
            out
        }

        fn sorted(&self) -> Vec<(&Value, &Group)> {
            let mut v: Vec<(&Value, &Group)> = self.groups.iter().collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            v
        }

        fn finish(&mut self) -> Vec<String> {
            self.finished = true;
            self.expire();
            let out = match self.emit {
                Emit::Final => self
                    .sorted()
                    .into_iter()
                    .map(|(k, g)| self.result(k, g))
                    .collect(),
                Emit::Updates => Vec::new(),
            };
            self.groups.clear();
            out
        }

        fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(
                format!(
                    "{{\"max_parallelism\":1,\"finished\":{},\"clock\":{},\"key_groups\":[",
                    self.finished, self.clock
                )
                .as_bytes(),
            );
            // One key group (max_parallelism = 1): group 0, when there is a key.
            if !self.groups.is_empty() {
                out.extend_from_slice(b"[0,[");
            }
            for (i, (k, g)) in self.sorted().iter().enumerate() {
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
            if !self.groups.is_empty() {
                out.extend_from_slice(b"]]");
            }
            out.extend_from_slice(b"]}");
            out
        }

        fn decode(&mut self, state: &[u8]) -> Result<(), String> {
            let bad = |m: String| format!("aggregate state in checkpoint: {m}");
            let v = Value::from_json(state).map_err(bad)?;
            let field = |k: &str| v.field(k).cloned().unwrap_or(Value::Null);
            self.finished = field("finished").truthy();
            self.clock = field("clock")
                .as_f64()
                .map(|f| f as i64)
                .unwrap_or(i64::MIN);
            let Value::Array(key_groups) = field("key_groups") else {
                return Err(bad("no key_groups".into()));
            };
            let mut groups = Vec::new();
            for kg in key_groups {
                match kg {
                    Value::Array(mut e) if e.len() == 2 && e[0] == Value::Int(0) => {
                        let Value::Array(rows) = e.pop().unwrap_or_default() else {
                            return Err(bad("a key group's rows are not an array".into()));
                        };
                        groups.extend(rows);
                    }
                    _ => return Err(bad("a key group is not [0, [...]]".into())),
                }
            }
            self.groups = HashMap::new();
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
                let mut accs = Vec::new();
                for (spec, a) in self.specs.iter().zip(rest.iter()) {
                    accs.push(Acc::decode(spec.func, a).map_err(bad)?);
                }
                self.groups.insert(key, Group { accs, last_seen });
            }
            Ok(())
        }
    }

    /// The operator with an output whose records can be read back.
    struct Harness {
        op: Aggregate,
        out: Output,
        rx: Receiver<Msg>,
        seq: u64,
    }

    impl Harness {
        fn new(emit: Emit, ttl_ms: Option<i64>) -> Harness {
            let (reports, _) = crossbeam_channel::unbounded();
            let source = SourceInfo {
                name: "s".into(),
                on_error: OnError::Skip,
                files: RwLock::new(Vec::new()),
            };
            let ctx = Arc::new(Context::new(
                vec!["a".into()],
                vec![Some(source)],
                reports,
                true,
                0,
            ));
            let (tx, rx) = crossbeam_channel::unbounded();
            let key = Some(Expr::compile(".k").unwrap());
            Harness {
                op: Aggregate::new(key, specs(), emit, ttl(ttl_ms), 1),
                out: Output::new(0, ctx, vec![tx], Vec::new(), Vec::new()),
                rx,
                seq: 0,
            }
        }

        fn drain(&mut self) -> Vec<String> {
            let mut v = Vec::new();
            for m in self.rx.try_iter() {
                if let Msg::Batch(b) = m {
                    v.extend(b.records.iter().map(|r| r.value.to_json_string()));
                }
            }
            v
        }

        fn process(&mut self, records: &[Value]) -> Vec<String> {
            let records = records
                .iter()
                .map(|v| Record {
                    value: v.clone(),
                    origin: Origin::default(),
                })
                .collect();
            self.seq += 1;
            let batch = Batch {
                seq: self.seq,
                records,
            };
            assert!(self.op.process(0, batch, &mut self.out).is_ok());
            assert!(self.out.flush(self.seq).is_ok());
            self.drain()
        }

        fn finish(&mut self) -> Vec<String> {
            assert!(self.op.finish(&mut self.out).is_ok());
            assert!(self.out.flush(END_SEQ).is_ok());
            self.drain()
        }
    }

    fn record(k: &Value, v: &Value, ts: &Value) -> Value {
        let mut m = Map::new();
        m.push_unique(Str::new("k"), k.clone());
        m.push_unique(Str::new("v"), v.clone());
        m.push_unique(Str::new("ts"), ts.clone());
        Value::Object(m)
    }

    fn key_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => (0u32..40).prop_map(|i| Value::str(&format!("k{i}"))),
            1 => (0i64..5).prop_map(Value::Int),
            1 => Just(Value::float(2.0)),
            1 => Just(Value::Null),
            1 => Just(Value::str("q\"\\é")),
        ]
    }

    fn arg_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => (-5i64..50).prop_map(Value::Int),
            1 => (-5i64..5).prop_map(|i| Value::float(i as f64 / 4.0)),
            1 => Just(Value::Null),
            // Not a number: a bad record for sum and avg.
            1 => "[xy]{1,2}".prop_map(|s| Value::str(&s)),
        ]
    }

    /// Records with times that mostly go forward, sometimes back, and sometimes are missing.
    fn batches() -> impl Strategy<Value = Vec<Vec<Value>>> {
        let rec = (key_strategy(), arg_strategy(), -40i64..60, 0u8..50);
        proptest::collection::vec(proptest::collection::vec(rec, 0..25), 1..12).prop_map(|bs| {
            let mut t = 0i64;
            bs.into_iter()
                .map(|b| {
                    b.into_iter()
                        .map(|(k, v, dt, odd)| {
                            t += dt.max(0);
                            let ts = match odd {
                                0 => Value::str("not a time"),
                                1..=5 => Value::Int(t + dt),
                                _ => Value::Int(t),
                            };
                            record(&k, &v, &ts)
                        })
                        .collect()
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Same results, same checkpoint bytes after every batch, with and without a ttl,
        /// both ways of emitting, and through a checkpoint and restore somewhere along the way.
        #[test]
        fn matches_the_map_based_aggregate(
            batches in batches(),
            ttl_ms in prop_oneof![Just(None), (1i64..150).prop_map(Some)],
            updates in any::<bool>(),
            restore_at in 0usize..14,
        ) {
            let emit = if updates { Emit::Updates } else { Emit::Final };
            let mut reference = Reference::new(emit, ttl_ms);
            let mut h = Harness::new(emit, ttl_ms);
            // Small states purge as often as big ones would, relative to their size: about
            // every other batch here.
            h.op.expire_fraction = 1;
            for (i, b) in batches.iter().enumerate() {
                if i == restore_at {
                    let state = h.op.snapshot().unwrap();
                    prop_assert_eq!(&state, &reference.encode());
                    h = Harness::new(emit, ttl_ms);
                    h.op.expire_fraction = 1;
                    h.op.restore(&state).unwrap();
                    reference = Reference::new(emit, ttl_ms);
                    reference.decode(&state).unwrap();
                }
                prop_assert_eq!(h.process(b), reference.process(b));
                // Checkpoints now and then (a checkpoint purges expired keys, which the
                // operator otherwise does only every so often).
                if i % 3 == 2 {
                    let state = String::from_utf8(h.op.snapshot().unwrap()).unwrap();
                    let want = String::from_utf8(reference.encode()).unwrap();
                    prop_assert_eq!(state, want);
                }
            }
            prop_assert_eq!(h.finish(), reference.finish());
            prop_assert_eq!(h.op.snapshot().unwrap(), reference.encode());
        }
    }

    #[test]
    fn many_keys_expire_as_in_the_reference_and_large_state_snapshots_on_the_side() {
        // 30,000 keys over 60,000 records, each idle now and then for longer than the ttl;
        // batches of 100 records, so purges (every 1/64 of the keys' worth of records) skip
        // a few batches.
        let mut reference = Reference::new(Emit::Final, Some(20_000));
        let mut h = Harness::new(Emit::Final, Some(20_000));
        let mut x: u64 = 7;
        for b in 0..600 {
            let mut batch = Vec::new();
            for i in 0..100 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = Value::str(&format!("user{}", (x >> 33) % 30_000));
                let ts = Value::Int(b * 100 + i - (x >> 60) as i64 * 50);
                batch.push(record(&k, &Value::Int((x >> 40) as i64 % 1000), &ts));
            }
            assert_eq!(h.process(&batch), reference.process(&batch));
            if b % 200 == 199 {
                let want = reference.encode();
                let job =
                    h.op.snapshot_deferred()
                        .expect("large state is encoded on the side");
                assert_eq!(job().unwrap(), want);
                assert_eq!(h.op.snapshot().unwrap(), want);
            }
        }
        let out = h.finish();
        assert!(out.len() > 1000);
        assert_eq!(out, reference.finish());
    }

    #[test]
    /// Every state the map-based decoder refused, the one reader refuses too, with a message
    /// that says it is the aggregate's state in the checkpoint.
    fn corrupt_states_fail_the_run_with_a_message() {
        for state in [
            &br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1]]]]}"#[..],
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,"x",0,null,null,[0.0,0],null,null,[]]]]]}"#,
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1,0,null,null,[0.0],null,null,[]]]]]}"#,
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1,0,null,null,[0.0,0],null,null,5]]]]}"#,
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[["a",0,1,"s",null,null,[0.0,0],null,null,[]]]]]}"#,
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":[[0,[7]]]}"#,
            br#"{"max_parallelism":1,"finished":false,"clock":0,"key_groups":{}}"#,
            br#"{"clock":0}"#,
            br#""text""#,
        ] {
            let mut h = Harness::new(Emit::Final, None);
            h.op.restore(state).unwrap();
            let got = match h.op.finish(&mut h.out) {
                Err(Stop::Failed(e)) => e.to_string(),
                _ => String::new(),
            };
            let mut reference = Reference::new(Emit::Final, None);
            assert!(reference.decode(state).is_err());
            assert!(
                got.starts_with("aggregate state in checkpoint: ") && got.len() > 32,
                "{got}"
            );
        }
    }
}
