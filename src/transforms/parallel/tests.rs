//! `Parallel` against the operator it runs N of: outputs and checkpoint bytes through random
//! batches, rescales at every checkpoint, and folded counts; and the merge on its own.

use super::*;
use crate::pipeline::spec::OnError;
use crate::runtime::context::{Context, SourceInfo};
use crate::runtime::message::{Msg, Origin};
use std::sync::RwLock;

fn out(pos: u32, fire: Option<(i64, i64, &str)>, tag: &str) -> Out {
    Out {
        pos,
        fire: fire.map(|(e, s, k)| (e, s, Value::str(k))),
        record: Record {
            value: Value::str(tag),
            origin: Origin::default(),
        },
    }
}

fn context() -> Arc<Context> {
    let source = SourceInfo {
        name: "in".into(),
        on_error: OnError::DeadLetter,
        files: RwLock::new(vec!["in.jsonl".into()]),
    };
    Arc::new(Context::new(
        vec!["in".into(), "t".into()],
        vec![Some(source), None],
        crossbeam_channel::unbounded().0,
        true,
        0,
    ))
}

/// The records of every batch on a channel, as JSON text.
fn texts(rx: &Receiver<Msg>) -> Vec<String> {
    rx.try_iter()
        .flat_map(|m| match m {
            Msg::Batch(b) => b.records,
            _ => Vec::new(),
        })
        .map(|r| {
            format!(
                "{} @{}:{}",
                r.value.to_json_string(),
                r.origin.line,
                r.origin.offset
            )
        })
        .collect()
}

#[test]
fn outputs_merge_by_position_then_own_output_then_fired_windows_in_order() {
    let a = vec![
        out(0, None, "a0"),
        out(2, Some((10, 0, "k1")), "a2f"),
        out(2, Some((20, 10, "k1")), "a2g"),
        out(5, None, "a5"),
    ];
    let b = vec![
        out(1, None, "b1"),
        out(2, None, "b2"),
        out(2, Some((10, 0, "k0")), "b2f"),
        out(2, Some((10, 0, "k2")), "b2h"),
        out(9, None, "b9"),
    ];
    let c = vec![out(3, None, "c3"), out(4, None, "c4")];
    let mut outs = vec![a, b, c];
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut o = Output::new(1, context(), vec![tx], Vec::new(), Vec::new());
    merge(&mut outs, &mut o);
    assert!(o.flush(1).is_ok());
    let got: Vec<String> = texts(&rx)
        .into_iter()
        .map(|t| {
            t.split(' ')
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_string()
        })
        .collect();
    assert_eq!(
        got,
        ["a0", "b1", "b2", "b2f", "a2f", "b2h", "a2g", "c3", "c4", "a5", "b9"]
    );
    assert!(outs.iter().all(|o| o.is_empty()));
}

/// A node `t` with `settings` and `parallelism = n`, built as `weir run` builds it.
fn build(settings: &str, n: usize) -> Box<dyn Operator> {
    let text = format!(
        "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n[transforms.t]\ninputs = [\"in\"]\n{settings}\nparallelism = {n}\nmax_parallelism = 16\n[sinks.o]\ntype = \"file\"\ninputs = [\"t\"]\npath = \"o.jsonl\"\n"
    );
    let spec = crate::pipeline::parse(std::path::Path::new("/nonexistent/p.toml"), &text, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let node = spec.nodes.iter().find(|x| x.name == "t").unwrap();
    crate::transforms::compile_node(node)
        .unwrap_or_else(|p| panic!("{p:?}"))
        .operator(&node.name)
}

/// An operator with its three outputs (main, late, dead letters) read back.
struct Run {
    op: Box<dyn Operator>,
    out: Output,
    rx: [Receiver<Msg>; 3],
    got: [Vec<String>; 3],
}

impl Run {
    fn new(op: Box<dyn Operator>) -> Run {
        let (m, mr) = crossbeam_channel::unbounded();
        let (l, lr) = crossbeam_channel::unbounded();
        let (e, er) = crossbeam_channel::unbounded();
        Run {
            op,
            out: Output::new(1, context(), vec![m], vec![l], vec![(0, e)]),
            rx: [mr, lr, er],
            got: Default::default(),
        }
    }

    fn drain(&mut self) {
        for (rx, got) in self.rx.iter().zip(self.got.iter_mut()) {
            got.extend(texts(rx));
        }
    }

    fn process(&mut self, seq: u64, records: &[Record]) {
        let b = Batch::new(seq, records.to_vec());
        assert!(self.op.process(0, b, &mut self.out).is_ok());
        assert!(self.out.flush(seq).is_ok());
        self.drain();
    }

    fn folded(&mut self, p: FoldedTables) {
        assert!(self.op.folded(p, &mut self.out).is_ok());
        assert!(self.out.flush(99).is_ok());
        self.drain();
    }

    fn finish(&mut self) {
        assert!(self.op.finish(&mut self.out).is_ok());
        assert!(self.out.flush(crate::runtime::message::END_SEQ).is_ok());
        self.drain();
    }
}

/// Events of 40 users with times that mostly go forward, jump back now and then, and
/// sometimes are bad (no time, a string to sum).
fn events(seed: u64, n: usize) -> Vec<Record> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t: i64 = 1_000_000;
    (0..n)
        .map(|i| {
            let r = next();
            t += (r % 700) as i64;
            let ts = match r % 97 {
                0 => "\"soon\"".to_string(),
                1..=12 => (t - (r >> 20) as i64 % 20_000).to_string(),
                _ => t.to_string(),
            };
            let v = if r % 89 == 0 {
                "\"x\"".to_string()
            } else {
                ((r >> 8) % 1000).to_string()
            };
            let text = format!(r#"{{"k":"u{}","ts":{ts},"v":{v}}}"#, (r >> 32) % 40);
            Record {
                value: Value::from_json(text.as_bytes()).unwrap(),
                origin: Origin {
                    source: 0,
                    file: 0,
                    line: i as u64 + 1,
                    offset: i as u64 * 40,
                },
            }
        })
        .collect()
}

const NODES: &[&str] = &[
    "type = \"aggregate\"\nkey = \".k\"\nemit = \"updates\"\naggs = { n = \"count\", s = \"sum(.v)\", m = \"max(.v)\", d = \"count_distinct(.v)\" }",
    "type = \"aggregate\"\nkey = \".k\"\naggs = { n = \"count\", a = \"avg(.v)\" }\nstate_ttl = \"5s\"\ntime = \".ts\"\ntime_unit = \"ms\"",
    "type = \"window\"\nkey = \".k\"\ntime = \".ts\"\ntime_unit = \"ms\"\nsize = \"10s\"\nout_of_orderness = \"2s\"\nallowed_lateness = \"3s\"\naggs = { n = \"count\", s = \"sum(.v)\" }",
    "type = \"window\"\nkey = \".k\"\ntime = \".ts\"\ntime_unit = \"ms\"\nsize = \"10s\"\nslide = \"4s\"\nout_of_orderness = \"1s\"\naggs = { n = \"count\", f = \"first(.v)\" }",
    "type = \"window\"\nkey = \".k\"\ntime = \".ts\"\ntime_unit = \"ms\"\ngap = \"3s\"\nallowed_lateness = \"2s\"\naggs = { n = \"count\", l = \"last(.v)\" }",
    "type = \"dedup\"\nkey = \".k\"\ntime = \".ts\"\ntime_unit = \"ms\"\nttl = \"4s\"",
    "type = \"dedup\"\nkey = \".k\"\nttl = 30",
];

/// Whatever the parallelism, and through checkpoints restored at another parallelism: the
/// same records on every output in the same order, and the same checkpoint bytes.
#[test]
fn any_parallelism_gives_what_one_instance_gives_and_the_same_state() {
    for (ni, node) in NODES.iter().enumerate() {
        for seed in 1..4u64 {
            let evs = events(seed + 10 * ni as u64, 6000);
            // Batches of uneven sizes, a checkpoint after some of them.
            let mut cuts = Vec::new();
            let mut at = 0;
            let mut r = seed;
            while at < evs.len() {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let len = 1 + (r >> 33) as usize % 1100;
                cuts.push((at, (at + len).min(evs.len()), (r >> 20) % 4 == 0));
                at += len;
            }
            let mut one = Run::new(build(node, 1));
            // Rescaled at every checkpoint: 2, 3, 5, 1, 16, 2, ...
            let ns = [2usize, 3, 5, 1, 16];
            let mut k = 0;
            let mut many = Run::new(build(node, ns[0]));
            for (seq, &(a, b, ckpt)) in cuts.iter().enumerate() {
                one.process(seq as u64, &evs[a..b]);
                many.process(seq as u64, &evs[a..b]);
                if ckpt {
                    let s1 = one.op.snapshot().unwrap();
                    let s2 = many.op.snapshot().unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&s2),
                        String::from_utf8_lossy(&s1),
                        "{node}: state at batch {seq}"
                    );
                    k += 1;
                    let got = std::mem::take(&mut many.got);
                    many = Run::new(build(node, ns[k % ns.len()]));
                    many.got = got;
                    many.op.restore(&s1).unwrap();
                }
            }
            one.finish();
            many.finish();
            for (i, what) in ["output", "late", "dead letters"].iter().enumerate() {
                assert!(
                    one.got[i] == many.got[i],
                    "{node} (seed {seed}): {what} differ ({} against {} records)",
                    many.got[i].len(),
                    one.got[i].len()
                );
            }
            // The test means something: output, bad records (but for a dedup that reads
            // only the key) and, for windows, late records.
            assert!(!one.got[0].is_empty());
            assert!(
                !one.got[2].is_empty() || node.ends_with("ttl = 30"),
                "{node}: no bad record in the test"
            );
            assert!(
                !one.got[1].is_empty() || !node.contains("window"),
                "{node}: no late record in the test"
            );
            assert_eq!(one.op.snapshot().unwrap(), many.op.snapshot().unwrap());
        }
    }
}

fn folded(spec: &crate::sources::folding::FoldSpec, lines: &[String]) -> FoldedTables {
    use crate::sources::folding::{fold_range, Ack, Table};
    let text = lines.join("\n");
    let mut t = Table::default();
    let Ack::Folded(f) = fold_range(text.as_bytes(), 0, text.len(), spec, &mut t) else {
        panic!("lines that do not fold")
    };
    FoldedTables {
        records: f.lines,
        tables: vec![t],
        late: f.late,
        max_time: f.max_time,
    }
}

#[test]
fn folded_counts_reach_the_instance_of_their_key() {
    use crate::sources::folding::FoldSpec;
    use crate::value::Str;
    let line = |i: u64| {
        format!(
            r#"{{"k":"u{}","ts":{},"v":{}}}"#,
            (i * 7) % 23,
            1000 + i * 150,
            i % 13
        )
    };
    let aggregate = "type = \"aggregate\"\nkey = \".k\"\naggs = { n = \"count\", s = \"sum(.v)\" }";
    let window = "type = \"window\"\nkey = \".k\"\ntime = \".ts\"\nsize = \"10s\"\nout_of_orderness = \"1s\"\naggs = { n = \"count\", s = \"sum(.v)\" }";
    let counts = [None, Some(vec![Str::new("v")])];
    let specs = [
        (aggregate, FoldSpec::new(&[Str::new("k")], &counts).unwrap()),
        (
            window,
            FoldSpec::new(&[Str::new("k")], &counts)
                .unwrap()
                .tumbling(
                    &[Str::new("ts")],
                    crate::pipeline::spec::TimeUnit::S,
                    10_000,
                    1_000,
                )
                .unwrap(),
        ),
    ];
    for (node, spec) in specs {
        for n in [2, 3, 7] {
            let mut one = Run::new(build(node, 1));
            let mut many = Run::new(build(node, n));
            for epoch in 0..5u64 {
                let lines: Vec<String> = (epoch * 200..epoch * 200 + 200).map(line).collect();
                one.folded(folded(&spec, &lines));
                many.folded(folded(&spec, &lines));
                assert_eq!(one.op.snapshot().unwrap(), many.op.snapshot().unwrap());
            }
            one.finish();
            many.finish();
            assert!(one.got[0].len() > 20, "{node}: {:?}", one.got[0]);
            assert_eq!(one.got, many.got, "{node} at parallelism {n}");
        }
    }
}

/// Keys and values as deep as a checkpoint may keep (`aggs::MAX_KEPT_NESTING`) come back from
/// a checkpoint at any parallelism: the key groups around them do not count against the limit.
#[test]
fn keys_and_values_as_deep_as_allowed_survive_a_checkpoint() {
    let depth = crate::transforms::aggs::MAX_KEPT_NESTING;
    let deep = |leaf: &str| format!("{}{leaf}{}", "[".repeat(depth), "]".repeat(depth));
    let records: Vec<Record> = (0..40)
        .map(|i| {
            let text = format!(
                r#"{{"k":{},"ts":{},"v":{}}}"#,
                deep(&format!("\"u{}\"", i % 7)),
                1000 + i * 700,
                deep(&(i % 3).to_string())
            );
            Record {
                value: Value::from_json(text.as_bytes()).unwrap(),
                origin: Origin {
                    source: 0,
                    file: 0,
                    line: i + 1,
                    offset: i * 600,
                },
            }
        })
        .collect();
    let nodes = [
        "type = \"aggregate\"\nkey = \".k\"\naggs = { d = \"count_distinct(.v)\", m = \"max(.v)\" }",
        "type = \"window\"\nkey = \".k\"\ntime = \".ts\"\ntime_unit = \"ms\"\nsize = \"10s\"\naggs = { d = \"count_distinct(.v)\" }",
        "type = \"dedup\"\nkey = \".k\"\nttl = 3",
    ];
    for node in nodes {
        let mut one = Run::new(build(node, 1));
        one.process(0, &records[..20]);
        let state = one.op.snapshot().unwrap();
        one.process(1, &records[20..]);
        one.finish();
        assert!(one.got[2].is_empty(), "{node}: {:?}", one.got[2]);
        for n in [1, 3] {
            let mut again = Run::new(build(node, n));
            again.op.restore(&state).unwrap();
            let mut before = Run::new(build(node, 1));
            before.process(0, &records[..20]);
            again.got = before.got;
            again.process(1, &records[20..]);
            again.finish();
            assert_eq!(again.got, one.got, "{node} restored at parallelism {n}");
        }
    }
}
