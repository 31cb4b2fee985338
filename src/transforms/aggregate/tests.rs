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
        let batch = Batch::new(self.seq, records);
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
