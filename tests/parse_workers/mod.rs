//! The decode pool: parallel parsing, the pushed-down filter and folding give exactly what record-by-record gives.

use crate::common::*;

mod csv;

/// Runs weir in the project with extra environment variables; it must exit 0.
pub(crate) fn run_with_env(p: &Proj, args: &[&str], env: &[(&str, &str)]) {
    let o = run_weir_env(p.root(), args, None, env);
    expect_exit(&o, Some(0));
}

/// JSON lines parsed on a helper thread (used when there are spare cores) give exactly the
/// output, dead letters and checkpoint offsets of parsing on the source's own thread.
#[test]
fn parallel_parsing_gives_the_same_output_as_serial_parsing() {
    let mut data = String::new();
    for i in 0..20_000u32 {
        match i % 997 {
            0 => data.push_str("{broken\n"),
            1 => data.push('\n'),
            2 => data.push_str("[1,2]\n"),
            // A record that only the aggregate rejects: its line number comes from the source.
            3 => data.push_str(&format!("{{\"i\":{i},\"k\":\"s\",\"v\":\"x\"}}\n")),
            _ => data.push_str(&format!(
                "{{\"i\":{i},\"k\":\"k{}\",\"v\":{},\"pad\":\"{}\"}}\n",
                i % 13,
                i % 7,
                "x".repeat((i % 50) as usize)
            )),
        }
    }
    data.push_str("{\"i\":-1,\"k\":\"last\",\"v\":1}");
    let toml = r#"[checkpoint]
every = "5ms"
[sources.in]
type = "file"
path = "in.jsonl"
on_error = "skip"
[transforms.f]
type = "filter"
inputs = ["in"]
expr = ".v >= 3"
[transforms.agg]
type = "aggregate"
inputs = ["in"]
key = ".k"
aggs = { n = "count", s = "sum(.v)" }
[sinks.o]
type = "file"
inputs = ["f"]
path = "o.jsonl"
[sinks.a]
type = "file"
inputs = ["agg"]
path = "a.jsonl"
"#;
    let toml = toml.replace(
        "on_error = \"skip\"",
        "on_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"",
    );
    let mut outs = Vec::new();
    // (helper thread for streams, decode pool threads for mapped files): none, the fork-join
    // helper, and pools of 1 and 3 threads.
    for (helper, pool) in [("0", "0"), ("1", "0"), ("0", "1"), ("0", "3")] {
        let p = Proj::new();
        p.write("in.jsonl", &data);
        p.write("p.toml", &toml);
        run_with_env(
            &p,
            &["run", "--stats", "s.json", "p.toml"],
            &[
                ("WEIR_PARALLEL_PARSE", helper),
                ("WEIR_PARSE_THREADS", pool),
            ],
        );
        let stats: serde_json::Value = serde_json::from_str(&p.read_str("s.json")).unwrap();
        let errors = stats["nodes"][0]["errors"].as_u64().unwrap();
        let root = p.root().to_string_lossy().into_owned();
        let bad = p.read_str("bad.jsonl").replace(&root, "ROOT");
        outs.push((p.read("o.jsonl"), p.read("a.jsonl"), errors, bad));
    }
    for o in &outs[1..] {
        assert!(outs[0].0 == o.0, "filtered output differs");
        assert!(outs[0].1 == o.1, "aggregate output differs");
        assert_eq!(outs[0].2, o.2);
        assert!(outs[0].3 == o.3, "dead letters differ (lines, offsets)");
    }
    assert_eq!(outs[0].2, 42, "bad lines counted");
    // 42 lines that do not parse and 21 records the aggregate rejects.
    assert_eq!(outs[0].3.lines().count(), 63, "dead letters");
    let i = 997 * 10 + 3;
    let want = format!(
        "\"line\":{},\"offset\":{},\"node\":\"agg\"",
        i + 1,
        data.split_inclusive('\n')
            .take(i)
            .map(str::len)
            .sum::<usize>()
    );
    assert!(outs[0].3.contains(&want), "{want} in {}", outs[0].3);
    assert!(outs[0].3.contains("\"line\":"), "{}", outs[0].3);
}

/// A filter that is its source's only consumer runs in the decode pool's workers: outputs,
/// dead letters (parse errors and the filter's own errors, with their lines) and `--stats` are
/// the same as when the filter alone decides.
#[test]
fn a_filter_run_by_the_parse_workers_decides_as_the_filter_does() {
    let mut data = String::new();
    for i in 0..30_000u32 {
        match i % 1009 {
            0 => data.push_str("{broken\n"),
            // `.a.b` of a string is an error the filter reports.
            1 => data.push_str(&format!("{{\"i\":{i},\"a\":\"s\"}}\n")),
            _ => data.push_str(&format!(
                "{{\"i\":{i},\"a\":{{\"b\":{}}},\"pad\":\"{}\"}}\n",
                i % 10,
                "y".repeat((i % 40) as usize)
            )),
        }
    }
    let toml = r#"[sources.in]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "bad.jsonl"
[transforms.f]
type = "filter"
inputs = ["in"]
expr = ".a.b >= 7"
[sinks.o]
type = "file"
inputs = ["f"]
path = "o.jsonl"
"#;
    let mut outs = Vec::new();
    for pool in ["0", "2"] {
        let p = Proj::new();
        p.write("in.jsonl", &data);
        p.write("p.toml", toml);
        let r = run_pooled(&p, pool);
        outs.push((r.out, r.dead, r.counts));
    }
    assert!(outs[0].0 == outs[1].0, "filtered output differs");
    assert_eq!(outs[0].1, outs[1].1, "dead letters differ");
    assert_eq!(outs[0].2, outs[1].2, "stats differ");
    let kept = data
        .lines()
        .filter(|l| l.contains("\"b\":7") || l.contains("\"b\":8") || l.contains("\"b\":9"))
        .count();
    assert_eq!(outs[0].0.iter().filter(|&&b| b == b'\n').count(), kept);
    assert_eq!(
        outs[0].1.lines().count(),
        60,
        "30 parse errors and 30 filter errors"
    );
    assert!(outs[0].1.contains("\"line\":1011,"), "{}", outs[0].1);
    assert!(outs[0].1.contains("\"node\":\"f\""), "{}", outs[0].1);
    // The source's output and the filter's input count every record, dropped early or not.
    assert_eq!(outs[0].2[0].1, 30_000 - 30);
    assert_eq!(outs[0].2[1].0, 30_000 - 30);
}

/// What a run of `p.toml` (output `o.jsonl`, dead letters `bad.jsonl`) left.
pub(crate) struct PooledRun {
    out: Vec<u8>,
    /// With the project root replaced by `ROOT`.
    dead: String,
    /// (records in, records out, errors, late) per node.
    counts: Vec<(u64, u64, u64, u64)>,
    /// The final checkpoint as `weir inspect` prints it.
    state: String,
}

/// Runs `p.toml` (`toml`) over `in.jsonl` (`data`) twice, each in a project of its own:
/// parsed on the source's thread, then by two parse workers.
pub(crate) fn serial_and_pooled(data: &str, toml: &str) -> [PooledRun; 2] {
    serial_and_pooled_env(data, toml, &[])
}

/// `serial_and_pooled` with more environment variables.
pub(crate) fn serial_and_pooled_env(
    data: &str,
    toml: &str,
    env: &[(&str, &str)],
) -> [PooledRun; 2] {
    ["0", "2"].map(|pool| {
        let p = Proj::new();
        p.write("in.jsonl", data);
        p.write("p.toml", toml);
        let mut env = env.to_vec();
        env.push(("WEIR_PARSE_THREADS", pool));
        run_pooled_env(&p, &env)
    })
}

/// Runs `p.toml` in `p` with `WEIR_PARSE_THREADS` set to `pool`.
pub(crate) fn run_pooled(p: &Proj, pool: &str) -> PooledRun {
    run_pooled_env(p, &[("WEIR_PARSE_THREADS", pool)])
}

/// Runs `p.toml` in `p` with `env`.
pub(crate) fn run_pooled_env(p: &Proj, env: &[(&str, &str)]) -> PooledRun {
    run_with_env(p, &["run", "--stats", "s.json", "p.toml"], env);
    let stats: serde_json::Value = serde_json::from_str(&p.read_str("s.json")).unwrap();
    let counts = stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let c = |k: &str| n[k].as_u64().unwrap();
            (c("records_in"), c("records_out"), c("errors"), c("late"))
        })
        .collect();
    let root = p.root().to_string_lossy().into_owned();
    let inspect = run_weir(p.root(), &["inspect", "p.toml"], None);
    PooledRun {
        out: p.read("o.jsonl"),
        dead: std::fs::read_to_string(p.root().join("bad.jsonl"))
            .unwrap_or_default()
            .replace(&root, "ROOT"),
        counts,
        state: String::from_utf8_lossy(&inspect.stdout).into_owned(),
    }
}

/// An aggregate whose counts and sums the parse workers fold gives what aggregating record by
/// record gives: output, dead letters and stats, whether every line folds, or a line that
/// cannot (a float, a bad line, a blank line, a negative, a key that is not a string) comes
/// early or late. The final checkpoint says whether folding lasted the whole run.
#[test]
fn an_aggregate_folded_by_the_parse_workers_gives_what_record_by_record_gives() {
    let toml = r#"[checkpoint]
every_records = 3000
[sources.in]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "bad.jsonl"
[transforms.agg]
type = "aggregate"
inputs = ["in"]
key = ".user"
aggs = { n = "count", b = "sum(.bytes)", again = "sum(.bytes)", w = "sum(.weight)" }
[sinks.o]
type = "file"
inputs = ["agg"]
path = "o.jsonl"
"#;
    let odd = [
        "{\"user\":\"u1\",\"bytes\":0.5}",
        "{broken",
        "",
        "{\"user\":\"u2\",\"bytes\":-3}",
        "{\"user\":17,\"bytes\":3}",
        "{\"user\":\"u\\u0033\",\"bytes\":3}",
        "{\"user\":\"u4\",\"bytes\":\"3\"}",
        "{\"user\":\"big\",\"bytes\":4294967296}",
    ];
    // Every odd line alone late in the input (so whole epochs fold before it), then all of
    // them at the start.
    let mut cases: Vec<(Option<u32>, Vec<&str>)> = vec![(None, vec![])];
    cases.extend(odd.iter().map(|&l| (Some(40_000), vec![l])));
    cases.push((Some(3), odd.to_vec()));
    for (at, lines) in cases {
        let case = format!("{lines:?} at {at:?}");
        let mut data = String::new();
        for i in 0..50_000u32 {
            if Some(i) == at {
                for l in &lines {
                    data.push_str(l);
                    data.push('\n');
                }
            }
            // `big` sums the largest value that folds (2^32 - 1); the odd lines add 2^32.
            let (user, bytes) = match i % 5 {
                0 => ("big".to_string(), 4_294_967_295u64),
                _ => (format!("u{}", i % 307), u64::from(i % 1000)),
            };
            let weight = if i % 3 == 0 {
                String::new()
            } else {
                format!(",\"weight\":{}", i % 11)
            };
            data.push_str(&format!(
                "{{\"user\":\"{user}\",\"bytes\":{bytes}{weight},\"pad\":\"{}\"}}\n",
                "x".repeat((i % 23) as usize)
            ));
        }
        let outs = serial_and_pooled(&data, toml);
        let (a, b) = (&outs[0], &outs[1]);
        assert!(a.out == b.out, "{case}: output differs");
        assert_eq!(a.dead, b.dead, "{case}: dead letters differ");
        assert_eq!(a.counts, b.counts, "{case}: stats differ");
        assert!(!a.state.contains("\"folded\""), "{case}: {}", a.state);
        let folded = b.state.contains("\"folded\":50000");
        assert_eq!(folded, at.is_none(), "{case}: {}", b.state);
        let out = String::from_utf8_lossy(&a.out).into_owned();
        // `big` and u0..u306, and key 17 where it is given.
        let keys = 308 + usize::from(lines.iter().any(|l| l.contains(":17")));
        assert_eq!(out.lines().count(), keys, "{case}");
        let big = out.lines().find(|l| l.contains("\"key\":\"big\"")).unwrap();
        let want = if lines.iter().any(|l| l.contains("big")) {
            "{\"key\":\"big\",\"n\":10001,\"b\":42953967917296,\"again\":42953967917296,\"w\":"
        } else {
            "{\"key\":\"big\",\"n\":10000,\"b\":42949672950000,\"again\":42949672950000,\"w\":"
        };
        assert!(big.starts_with(want), "{case}: {big}");
    }
}

/// An aggregate and a window keyed, summed and timed by nested paths (`.kubernetes.pod_name`,
/// `.m.w`, `.meta.time`) fold as top-level fields do, and give what record by record gives,
/// whatever odd line comes early or late: a path through null, a string or an array, a wanted
/// key twice, an escaped key, a missing key, a nested sum that is a float.
#[test]
fn nested_paths_fold_and_give_what_record_by_record_gives() {
    let agg = "[transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\n\
        key = \".kubernetes.pod_name\"\n\
        aggs = { n = \"count\", b = \"sum(.bytes)\", w = \"sum(.m.w)\", a = \"sum(.kubernetes.labels.n)\" }\n";
    let win = "[transforms.agg]\ntype = \"window\"\ninputs = [\"in\"]\n\
        key = \".kubernetes.labels.app\"\ntime = \".meta.time\"\nsize = \"10s\"\n\
        out_of_orderness = \"3s\"\naggs = { n = \"count\", w = \"sum(.m.w)\" }\n";
    let odd = [
        r#"{"kubernetes":null,"bytes":1}"#,
        r#"{"kubernetes":"pod","bytes":1}"#,
        r#"{"kubernetes":{"pod_name":"p1","labels":[1]},"bytes":1}"#,
        r#"{"kubernetes":{"pod_name":"p1","pod_name":"p2"},"bytes":1}"#,
        r#"{"kubernetes":{"pod\u005fname":"p1","labels":{"app":"a\u0031"}},"meta":{"time":5}}"#,
        r#"{"kubernetes":{"labels":{"app":"a1"}},"meta":{"time":5}}"#,
        r#"{"kubernetes":{"pod_name":"p1","labels":{"app":"a1"}},"m":{"w":0.5},"meta":{"time":5}}"#,
        r#"{"kubernetes":{"pod_name":"p1","labels":{"app":"a1"}},"meta":null}"#,
    ];
    let mut cases: Vec<(Option<u32>, Vec<&str>)> = vec![(None, vec![])];
    cases.extend(odd.iter().map(|&l| (Some(20_000), vec![l])));
    cases.push((Some(3), odd.to_vec()));
    for (node, name) in [(agg, "aggregate"), (win, "window")] {
        let toml = format!(
            "[checkpoint]\nevery_records = 3000\n[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             on_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"\n{node}\
             [sinks.o]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"o.jsonl\"\n"
        );
        for (at, lines) in &cases {
            let case = format!("{name}: {lines:?} at {at:?}");
            let mut data = String::new();
            for i in 0..30_000u32 {
                if Some(i) == *at {
                    for l in lines {
                        data.push_str(l);
                        data.push('\n');
                    }
                }
                data.push_str(&k8s_line(i));
                data.push('\n');
            }
            let outs = serial_and_pooled(&data, &toml);
            let (a, b) = (&outs[0], &outs[1]);
            assert!(a.out == b.out, "{case}: output differs");
            assert_eq!(a.dead, b.dead, "{case}: dead letters differ");
            assert_eq!(a.counts, b.counts, "{case}: stats differ");
            assert!(!a.state.contains("\"folded\""), "{case}: {}", a.state);
            // Odd lines that still fold: for the aggregate, the key behind an escaped key and a
            // `meta` it does not read; for the window, a line late by the lines before it in
            // its own job (counted late).
            let folding = if name == "aggregate" {
                [odd[4], odd[7]]
            } else {
                [odd[5], odd[5]]
            };
            let folds = at.is_none() || *at == Some(20_000) && folding.contains(&lines[0]);
            let all = 30_000 + lines.len();
            assert_eq!(
                b.state.contains(&format!("\"folded\":{all}")),
                folds,
                "{case}: {}",
                b.state
            );
            assert!(!a.out.is_empty(), "{case}");
        }
    }
}

/// More keys than a parse worker's table may hold (65,536) end epochs early: the tables go
/// out mid-file and folding goes on, with the same output as record by record.
#[test]
fn folding_more_keys_than_a_table_holds_ends_epochs_early_and_gives_the_same_output() {
    let mut data = String::new();
    for i in 0..200_000u32 {
        data.push_str(&format!("{{\"k\":\"k{}\",\"v\":{}}}\n", i % 150_000, i % 7));
    }
    let toml = "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\non_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"\n\
        [transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".k\"\n\
        aggs = { n = \"count\", s = \"sum(.v)\" }\n\
        [sinks.o]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"o.jsonl\"\n";
    let runs = serial_and_pooled(&data, toml);
    assert!(runs[0].out == runs[1].out, "output differs");
    assert_eq!(runs[0].counts, runs[1].counts, "stats differ");
    assert!(
        runs[1].state.contains("\"folded\":200000"),
        "{}",
        runs[1].state
    );
    assert_eq!(runs[0].out.iter().filter(|&&b| b == b'\n').count(), 150_000);
}

/// The window pipeline of the folding tests: tumbling 10 s windows keyed by `.k` on `.ts`,
/// 3 s out of order, with `checkpoint` put first.
pub(crate) fn window_folding_toml(checkpoint: &str) -> String {
    format!(
        "{checkpoint}\n[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         on_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"\n\
         [transforms.win]\ntype = \"window\"\ninputs = [\"in\"]\nkey = \".k\"\ntime = \".ts\"\n\
         size = \"10s\"\nout_of_orderness = \"3s\"\naggs = {{ n = \"count\", b = \"sum(.v)\" }}\n\
         [sinks.o]\ntype = \"file\"\ninputs = [\"win\"]\npath = \"o.jsonl\"\n"
    )
}

/// 60,000 events, 20 a second over 3000 s, each up to 2 s before the latest (never late with
/// 3 s out of order); times as RFC 3339 strings (some with milliseconds or an offset) or epoch
/// seconds. `late(i)` moves event `i` back (or forward, if negative) by that many seconds;
/// `odd` lines are put before event `at`.
pub(crate) fn window_folding_data(late: impl Fn(u32) -> i64, at: u32, odd: &[&str]) -> String {
    let mut data = String::new();
    for i in 0..60_000u32 {
        if i == at {
            for l in odd {
                data.push_str(l);
                data.push('\n');
            }
        }
        let t = 1_793_491_200 + i64::from(i / 20) - i64::from(i * 7 % 3) - late(i);
        let ts = match i % 4 {
            0 => t.to_string(),
            1 => format!("\"{}\"", jiff::Timestamp::from_second(t).unwrap()),
            2 => format!("\"{:.3}\"", jiff::Timestamp::from_second(t).unwrap()),
            _ => format!(
                "\"{}\"",
                jiff::Timestamp::from_second(t)
                    .unwrap()
                    .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(2)))
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
            ),
        };
        let v = if i % 5 == 0 {
            String::new()
        } else {
            format!(",\"v\":{}", i % 1000)
        };
        data.push_str(&format!(
            "{{\"k\":\"k{}\",\"ts\":{ts}{v},\"pad\":\"{}\"}}\n",
            i % 13,
            "x".repeat((i % 17) as usize)
        ));
    }
    data
}

/// A tumbling window whose counts and sums the parse workers fold gives what windowing record
/// by record gives: output, dead letters and stats (late records included), with and without
/// checkpoints mid-file. Lines late by the lines just before them are counted late while
/// folding goes on; a line late by lines another worker folded (after an event far ahead)
/// stops folding, as does any line whose time or values cannot be folded.
#[test]
fn a_window_folded_by_the_parse_workers_gives_what_record_by_record_gives() {
    struct Case {
        name: &'static str,
        checkpoint: &'static str,
        late: fn(u32) -> i64,
        odd: Vec<&'static str>,
        /// Whether folding lasts (None: it depends on where checkpoints cut the file).
        folds: Option<bool>,
        has_late: bool,
    }
    let none: fn(u32) -> i64 = |_| 0;
    let every_records = "[checkpoint]\nevery_records = 3000";
    let mut cases = vec![
        Case {
            name: "in order within 3 s, checkpoints",
            checkpoint: every_records,
            late: none,
            odd: vec![],
            folds: Some(true),
            has_late: false,
        },
        Case {
            name: "in order within 3 s",
            checkpoint: "",
            late: none,
            odd: vec![],
            folds: Some(true),
            has_late: false,
        },
        Case {
            name: "one in 997 events 30 s late",
            checkpoint: "",
            late: |i| if i % 997 == 500 { 30 } else { 0 },
            odd: vec![],
            folds: Some(true),
            has_late: true,
        },
        Case {
            name: "one in 997 events 30 s late, checkpoints",
            checkpoint: every_records,
            late: |i| if i % 997 == 500 { 30 } else { 0 },
            odd: vec![],
            folds: None,
            has_late: true,
        },
        Case {
            name: "one event 120 s ahead",
            checkpoint: "",
            late: |i| if i == 30_000 { -120 } else { 0 },
            odd: vec![],
            folds: Some(false),
            has_late: true,
        },
    ];
    // Put before event 40,000, whose time is 1793493200. The last is so far ahead (the end
    // of time) that every event after it is late.
    for (odd, has_late) in [
        ("{\"k\":\"k1\",\"ts\":1793493200.5}", false),
        ("{\"k\":\"k1\",\"ts\":\"soon\"}", false),
        ("{\"k\":\"k1\"}", false),
        ("{\"k\":3,\"ts\":1793493200}", false),
        ("{\"k\":\"k1\",\"ts\":1793493200,\"v\":0.5}", false),
        ("", false),
        ("{\"k\":\"k1\",\"ts\":9223372036854775}", true),
    ] {
        cases.push(Case {
            name: "an unfoldable line",
            checkpoint: every_records,
            late: none,
            odd: vec![odd],
            folds: Some(false),
            has_late,
        });
    }
    for c in cases {
        let case = format!("{} {:?}", c.name, c.odd);
        let data = window_folding_data(c.late, 40_000, &c.odd);
        // Jobs of 128 KiB, as the cases were written for: with bigger ones, the lines late by
        // the event far ahead fall in its own job, whose worker counts them late itself, and
        // the window folds on (rightly) instead of taking the irregular epoch's way.
        let runs = serial_and_pooled_env(
            &data,
            &window_folding_toml(c.checkpoint),
            &[("WEIR_PARSE_JOB_BYTES", "131072")],
        );
        let (a, b) = (&runs[0], &runs[1]);
        assert!(a.out == b.out, "{case}: output differs");
        assert_eq!(a.dead, b.dead, "{case}: dead letters differ");
        assert_eq!(a.counts, b.counts, "{case}: stats differ");
        assert!(!a.state.contains("\"folded\""), "{case}: {}", a.state);
        // The window's watermark and largest time end where record by record left them.
        let win = |s: &str| -> String {
            let at = s.find("\"node\": \"win\"").expect("the window's state");
            s[at..].lines().nth(1).unwrap_or_default().to_string()
        };
        assert_eq!(win(&a.state), win(&b.state), "{case}");
        if let Some(folds) = c.folds {
            let folded = b.state.contains("\"folded\":60000");
            assert_eq!(folded, folds, "{case}: {}", b.state);
        }
        assert_eq!(a.counts[1].3 > 0, c.has_late, "{case}: {:?}", a.counts);
        // 13 keys in each of the 300 windows (fewer when many events are late).
        let windows = String::from_utf8_lossy(&a.out).lines().count();
        let least = if c.has_late { 2600 } else { 3900 };
        assert!((least..3920).contains(&windows), "{case}: {windows}");
    }
}

/// A window is folded only where folding cannot show: with allowed lateness, a `.late`
/// output, sliding windows or anything but sinks downstream, the source sends records, and
/// the output (late records included) is what record by record gives.
#[test]
fn a_window_is_not_folded_where_folding_would_show() {
    let base = window_folding_toml("");
    let late_sink =
        "[sinks.late]\ntype = \"file\"\ninputs = [\"win.late\"]\npath = \"late.jsonl\"\n";
    let variants = [
        base.replace(
            "size = \"10s\"",
            "size = \"10s\"\nallowed_lateness = \"5s\"",
        ),
        format!("{base}{late_sink}"),
        base.replace("size = \"10s\"", "size = \"10s\"\nslide = \"5s\""),
        base.replace("inputs = [\"win\"]", "inputs = [\"m\"]")
            + "[transforms.m]\ntype = \"map\"\ninputs = [\"win\"]\nexpr = \".\"\n",
    ];
    let data = window_folding_data(|i| if i % 997 == 500 { 30 } else { 0 }, 0, &[]);
    for toml in variants {
        let mut runs = Vec::new();
        for pool in ["0", "2"] {
            let p = Proj::new();
            p.write("in.jsonl", &data);
            p.write("p.toml", &toml);
            let r = run_pooled(&p, pool);
            let late = std::fs::read(p.root().join("late.jsonl")).unwrap_or_default();
            runs.push((r, late));
        }
        let ((a, a_late), (b, b_late)) = (&runs[0], &runs[1]);
        assert!(a.out == b.out && a_late == b_late, "{toml}: output differs");
        assert_eq!(a.counts, b.counts, "{toml}");
        assert!(!b.state.contains("\"folded\""), "{toml}: {}", b.state);
        assert_eq!(toml.contains("late.jsonl"), !a_late.is_empty(), "{toml}");
    }
}

/// `weir explain` says what a source's parse workers do beyond parsing: fold for the window
/// or aggregate downstream, or run the filter downstream; and nothing where they cannot.
#[test]
fn explain_says_when_the_parse_workers_fold_or_filter() {
    let explain = |toml: &str| -> String {
        let p = Proj::new();
        p.write("p.toml", toml);
        let o = crate::common::run_weir_env(
            p.root(),
            &["explain", "p.toml"],
            None,
            &[("WEIR_PARSE_THREADS", "2")],
        );
        crate::common::expect_exit(&o, Some(0));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let window = window_folding_toml("");
    let text = explain(&window);
    assert!(
        text.contains("parse workers (2 on this machine): fold lines straight into the counts and sums of 'win'"),
        "{text}"
    );
    let late = format!(
        "{window}[sinks.late]\ntype = \"file\"\ninputs = [\"win.late\"]\npath = \"late.jsonl\"\n"
    );
    assert!(!explain(&late).contains("parse workers"));
    // A nested key folds for JSON lines, never for CSV rows (a cell holds no object).
    let nested = "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
        [transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".k8s.pod\"\n\
        aggs = { n = \"count\", b = \"sum(.m.bytes)\" }\n\
        [sinks.o]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"o.jsonl\"\n";
    let text = explain(nested);
    assert!(
        text.contains("fold lines straight into the counts and sums of 'agg'"),
        "{text}"
    );
    let text = explain(&nested.replace("in.jsonl", "in.csv"));
    assert!(text.contains("read CSV rows in parallel"), "{text}");
    assert!(!text.contains("fold"), "{text}");
    let filter = "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
        [transforms.keep]\ntype = \"filter\"\ninputs = [\"in\"]\nexpr = \".status >= 400\"\n\
        [sinks.o]\ntype = \"file\"\ninputs = [\"keep\"]\npath = \"o.jsonl\"\n";
    let text = explain(filter);
    assert!(text.contains("run filter 'keep' on each line"), "{text}");
    // CSV and TSV files read to the end are read by the parse workers, which run the filter.
    let csv = explain(&filter.replace("in.jsonl", "in.csv"));
    assert!(
        csv.contains("parse workers (2 on this machine): read CSV rows in parallel, ahead of the read position, and run filter 'keep' on each row"),
        "{csv}"
    );
    let tsv = explain(
        &filter
            .replace("in.jsonl", "in.tsv")
            .replace("keep\"]", "in\"]"),
    );
    assert!(
        tsv.contains("parse workers (2 on this machine): read TSV rows in parallel")
            && !tsv.contains("run filter"),
        "{tsv}"
    );
    let csv = explain(&window.replace("in.jsonl", "in.csv"));
    assert!(
        csv.contains("read CSV rows in parallel, ahead of the read position, and fold them straight into the counts and sums of 'win'"),
        "{csv}"
    );
    // Not a stream, nor a gzip file.
    let paused = filter
        .replace("in.jsonl", "in.csv")
        .replace("path = \"in.csv\"", "path = \"in.csv\"\nat_end = \"pause\"");
    assert!(!explain(&paused).contains("parse workers"));
    assert!(!explain(&filter.replace("in.jsonl", "in.csv.gz")).contains("parse workers"));
}

/// The parse workers judge a pushed-down filter on its own fields before building a record
/// (`Prefilter`): whatever the line (a field missing, repeated, escaped, of another type, a
/// bad or blank line, nesting elsewhere), the output, dead letters and stats are those of
/// the filter run record by record, including the filter's own errors.
#[test]
fn a_filter_judged_on_its_own_fields_by_the_parse_workers_decides_as_the_filter_does() {
    let odd = [
        "{\"path\":\"/a\"}",
        "{\"status\":\"500\",\"path\":\"/a\"}",
        "{\"status\":404.5,\"path\":\"/a\"}",
        "{\"status\":true,\"path\":\"/a\"}",
        "{\"status\":null,\"path\":\"/a\"}",
        "{\"status\":200,\"path\":\"/a\",\"status\":500}",
        "{\"status\":500,\"path\":\"/a\",\"status\":200}",
        "{\"status\":500,\"path\":\"\\/skip\"}",
        "{\"status\":500,\"path\":\"/\\u0061\"}",
        "{\"status\":500,\"path\":\"/a\",\"n\":{\"x\":[1]}}",
        "  {\"status\":503,\"path\":\"/a\"}  \r",
        "",
        "   ",
        "{broken",
        "[500]",
        "{\"status\":-0,\"path\":\"/a\"}",
        "{\"status\":1e3,\"path\":\"/a\"}",
        "{\"status\":123456789012345678901234,\"path\":\"/a\"}",
    ];
    let mut data = String::new();
    for i in 0..20_000u32 {
        if i % 1000 == 7 {
            data.push_str(odd[(i / 1000) as usize % odd.len()]);
            data.push('\n');
        }
        let status = [200, 301, 404, 500, 503][(i % 5) as usize];
        let path = ["/a", "/skip", "/b/c"][(i % 3) as usize];
        data.push_str(&format!(
            "{{\"i\":{i},\"status\":{status},\"path\":\"{path}\",\"pad\":\"{}\"}}\n",
            "z".repeat((i % 29) as usize)
        ));
    }
    // All of `odd` once more at the end, so each is met whatever the loop above picked.
    for l in odd {
        data.push_str(l);
        data.push('\n');
    }
    for expr in [
        ".status >= 400 and .path != \"/skip\"",
        // A string status is an error the filter reports.
        ".status - 100 >= 300",
        // Drops a fifth: the workers soon stop judging lines first, for a while.
        ".status != 200",
    ] {
        let toml = format!(
            "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\non_error = \"dead_letter\"\n\
             dead_letter = \"bad.jsonl\"\n[transforms.f]\ntype = \"filter\"\ninputs = [\"in\"]\n\
             expr = '{expr}'\n[transforms.m]\ntype = \"map\"\ninputs = [\"f\"]\n\
             expr = \"{{i, status, path}}\"\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"o.jsonl\"\n"
        );
        let runs = serial_and_pooled(&data, &toml);
        let (a, b) = (&runs[0], &runs[1]);
        assert!(
            a.out == b.out,
            "{expr}: output differs:\n{}\n---\n{}",
            String::from_utf8_lossy(&a.out)
                .lines()
                .filter(|l| !l.starts_with("{\"i\""))
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&b.out)
                .lines()
                .filter(|l| !l.starts_with("{\"i\""))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(a.dead, b.dead, "{expr}: dead letters differ");
        assert_eq!(a.counts, b.counts, "{expr}: stats differ");
        let kept = String::from_utf8_lossy(&a.out).lines().count();
        assert!(kept > 4000, "{expr}: {kept}");
        // The odd lines that pass: a string status, a repeat ending in 500, 503, 1e3.
        let out = String::from_utf8_lossy(&a.out);
        if expr.contains("!= \"/skip\"") {
            for want in [
                "{\"i\":null,\"status\":\"500\",\"path\":\"/a\"}",
                "{\"i\":null,\"status\":500,\"path\":\"/a\"}",
                "{\"i\":null,\"status\":503,\"path\":\"/a\"}",
            ] {
                assert!(out.contains(want), "{want}: {out}");
            }
        } else if expr.contains('-') {
            assert!(a.dead.contains("\"node\":\"f\""), "{}", a.dead);
        }
    }
}

/// A filter on one field and a map that reads nested paths: the parse workers read each line
/// once, noting where the wanted values are, and build a kept line's record from those places
/// alone (`flat_json::scan_marks`). Whatever the line (the nested object missing, empty, not
/// an object, a wanted key repeated at any depth or escaped, the filter's field a container),
/// the output and stats (errors counted) are those of the pipeline run record by record.
/// Errors are skipped, not sent to dead letters: a source with dead letters reads whole
/// records, and so would not project at all.
#[test]
fn a_filter_and_a_nested_projection_read_in_one_pass_decide_and_build_as_record_by_record() {
    let odd = [
        r#"{"status":500,"user":"u","kubernetes":"flat"}"#,
        r#"{"status":500,"user":"u","kubernetes":{}}"#,
        r#"{"status":500,"user":"u","kubernetes":null}"#,
        r#"{"status":500,"kubernetes":{"labels":{"app":"x","app":"y"}}}"#,
        r#"{"status":500,"kubernetes":{"labels":{"app":"x"},"labels":{"n":1}}}"#,
        r#"{"status":500,"kubernetes":{"labels":{"\u0061pp":"esc"}},"user":"e\"q"}"#,
        r#"{"status":500,"kubernetes":{"labels":[1,2]},"user":{"id":1}}"#,
        r#"{"status":[500],"kubernetes":{"labels":{"app":"z"}}}"#,
        r#"{"status":"500","kubernetes":{"labels":{"app":"s"}}}"#,
        r#"{"user":"first","status":503,"kubernetes":{"pod_name":"p","labels":{"app":"o"}},"user":"last"}"#,
        r#"{"status":500,"kubernetes":{"labels":{"app":"deep","x":{"y":{"z":[{}]}}}}}"#,
        r#"{"status":500,"kubernetes":{"labels":{"app":"bad"}}"#,
        "",
    ];
    let mut data = String::new();
    for i in 0..20_000u32 {
        if i % 500 == 3 {
            data.push_str(odd[(i / 500) as usize % odd.len()]);
            data.push('\n');
        }
        let line = k8s_line(i);
        let status = [200, 404, 500, 302][(i % 4) as usize];
        // The status and user first, last or between the nested objects.
        let line = match i % 3 {
            0 => line.replacen(
                '{',
                &format!("{{\"status\":{status},\"user\":\"u{}\",", i % 7),
                1,
            ),
            1 => format!(
                "{},\"user\":\"u{}\",\"status\":{status}}}",
                &line[..line.len() - 1],
                i % 7
            ),
            _ => line.replacen(
                "\"kubernetes\"",
                &format!("\"status\":{status},\"kubernetes\""),
                1,
            ),
        };
        data.push_str(&line);
        data.push('\n');
    }
    for l in odd {
        data.push_str(l);
        data.push('\n');
    }
    for (expr, map) in [
        (".status >= 400", "{app: .kubernetes.labels.app, user, status}"),
        (".status >= 400 and .user != \\\"u3\\\"", "{app: .kubernetes.labels.app, n: .kubernetes.labels.n, pod: .kubernetes.pod_name, user}"),
        (".status - 100 >= 300", "{k: .kubernetes, status}"),
    ] {
        let toml = format!(
            "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             on_error = \"skip\"\n[transforms.f]\ntype = \"filter\"\ninputs = [\"in\"]\n\
             expr = \"{expr}\"\n[transforms.m]\ntype = \"map\"\ninputs = [\"f\"]\n\
             expr = \"{map}\"\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"o.jsonl\"\n"
        );
        let runs = serial_and_pooled(&data, &toml);
        let (a, b) = (&runs[0], &runs[1]);
        assert!(a.out == b.out, "{expr} | {map}: output differs");
        assert_eq!(a.dead, b.dead, "{expr} | {map}: dead letters differ");
        assert_eq!(a.counts, b.counts, "{expr} | {map}: stats differ");
        let out = String::from_utf8_lossy(&a.out);
        let kept = out.lines().count();
        assert!((9_000..11_000).contains(&kept), "{expr} | {map}: {kept} kept");
        if map.starts_with("{app") && !map.contains("pod") {
            // The repeated user keeps its first place and its last value; an escaped key
            // is the key it spells; the repeated label its last value.
            for want in [
                r#"{"app":"o","user":"last","status":503}"#,
                r#"{"app":"esc","user":"e\"q","status":500}"#,
                r#"{"app":"y","user":null,"status":500}"#,
            ] {
                assert!(out.contains(want), "{want} not in the output");
            }
        }
    }
}

/// A filter and a nested projection read in one pass by the parse workers survive SIGKILL:
/// killed at random and resumed, the run writes the bytes of an uninterrupted run, which are
/// those of the run record by record. The workers judge and build lines far ahead of the read
/// position, while positions and checkpoints move only as the source emits; a kill between
/// the two must neither lose a kept line nor write one twice. Broken lines are skipped (a
/// source with dead letters reads whole records, and would not project).
#[test]
fn a_filter_and_projection_read_in_one_pass_killed_and_resumed_write_the_bytes_of_an_uninterrupted_run(
) {
    let mut data = String::new();
    for i in 0..40_000u32 {
        if i % 997 == 5 {
            data.push_str("{\"status\":500,\"kubernetes\":{\"labels\":{\"app\":\"broken\"}}\n");
        }
        let status = [200, 404, 500, 302, 503][(i % 5) as usize];
        data.push_str(&k8s_line(i).replacen(
            "\"kubernetes\"",
            &format!(
                "\"status\":{status},\"user\":\"u{}\",\"kubernetes\"",
                i % 13
            ),
            1,
        ));
        data.push('\n');
    }
    let toml = "[checkpoint]\nevery_records = 3000\n\
        [sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\non_error = \"skip\"\n\
        [transforms.f]\ntype = \"filter\"\ninputs = [\"in\"]\nexpr = \".status >= 400\"\n\
        [transforms.m]\ntype = \"map\"\ninputs = [\"f\"]\n\
        expr = \"{app: .kubernetes.labels.app, n: .kubernetes.labels.n, user, status}\"\n\
        [sinks.o]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"o.jsonl\"\n";
    let env = [
        ("WEIR_PARSE_THREADS", "2"),
        ("WEIR_PARSE_JOB_BYTES", "2000"),
        // Slower sources (with `--features failpoints`), so kills land mid-file.
        ("FAILPOINTS", "source-batch=sleep(5)"),
    ];
    let reference = project(&data, toml, Some(&env[..2]));
    let serial = project(&data, toml, Some(&[("WEIR_PARSE_THREADS", "0")]));
    assert!(
        reference.read_str("o.jsonl") == serial.read_str("o.jsonl"),
        "the parse workers' output differs from the one record by record"
    );
    let kept = reference.read_str("o.jsonl").lines().count();
    assert_eq!(kept, 24_000, "three statuses in five are kept");

    let p = project(&data, toml, None);
    let killed = kill_and_resume_until_done(&p, &env, 0x0be9_a55e);
    assert!(killed >= 3, "only {killed} kills landed");
    assert!(
        p.read_str("o.jsonl") == reference.read_str("o.jsonl"),
        "o.jsonl differs after {killed} kills"
    );
}

/// Nested paths folded by the parse workers survive SIGKILL: an aggregate keyed and summed by
/// nested paths (`.kubernetes.pod_name`, `.kubernetes.labels.n`) and a window keyed and timed
/// by them (`.kubernetes.labels.app`, `.meta.time`), killed at random and resumed, write the
/// bytes of an uninterrupted run, and the runs fold every line, across the kills too (each
/// epoch's tables counted once by the checkpoints).
#[test]
fn nested_folding_killed_and_resumed_writes_the_bytes_of_an_uninterrupted_run() {
    let n = 40_000u32;
    let data: String = (0..n).map(|i| k8s_line(i) + "\n").collect();
    let toml = "[checkpoint]\nevery_records = 3000\n\
        [sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
        [transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".kubernetes.pod_name\"\n\
        aggs = { n = \"count\", b = \"sum(.bytes)\", l = \"sum(.kubernetes.labels.n)\" }\n\
        [sinks.a]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"a.jsonl\"\n\
        [sources.in2]\ntype = \"file\"\npath = \"in.jsonl\"\n\
        [transforms.win]\ntype = \"window\"\ninputs = [\"in2\"]\nkey = \".kubernetes.labels.app\"\n\
        time = \".meta.time\"\nsize = \"10s\"\nout_of_orderness = \"3s\"\n\
        aggs = { n = \"count\", b = \"sum(.bytes)\" }\n\
        [sinks.w]\ntype = \"file\"\ninputs = [\"win\"]\npath = \"w.jsonl\"\n";
    let env = [
        ("WEIR_PARSE_THREADS", "2"),
        ("WEIR_PARSE_JOB_BYTES", "2000"),
        // Slower sources (with `--features failpoints`), so kills land mid-file.
        ("FAILPOINTS", "source-batch=sleep(2)"),
    ];
    let reference = project(&data, toml, Some(&env[..2]));

    let p = project(&data, toml, None);
    let killed = kill_and_resume_until_done(&p, &env, 0x0e57_ed01);
    assert!(killed >= 3, "only {killed} kills landed");
    for f in ["a.jsonl", "w.jsonl"] {
        assert!(
            p.read_str(f) == reference.read_str(f),
            "{f} differs after {killed} kills"
        );
    }
    assert_eq!(reference.read_str("a.jsonl").lines().count(), 37);
    assert!(reference.read_str("w.jsonl").lines().count() > 1000);
    let inspect = |q: &Proj| {
        let o = run_weir(q.root(), &["inspect", "p.toml"], None);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for q in [&reference, &p] {
        let state = inspect(q);
        assert_eq!(
            state.matches(&format!("\"folded\":{n}")).count(),
            2,
            "both sources fold every line: {state}"
        );
    }
}

/// A project holding `in.jsonl` (`data`) and `p.toml` (`toml`), run once to its end with
/// `env` when given.
fn project(data: &str, toml: &str, env: Option<&[(&str, &str)]>) -> Proj {
    let p = Proj::new();
    p.write("in.jsonl", data);
    p.write("p.toml", toml);
    if let Some(env) = env {
        let o = run_weir_env(p.root(), &["run", "p.toml"], None, env);
        expect_exit(&o, Some(0));
    }
    p
}

/// Line `i` of a Kubernetes shipper's shapes: keys sorted on every other line (as Vector writes
/// them), labels with and without `n`, `m` sometimes missing, an escaped JSON text in an
/// annotation, a nested `meta.time` ten lines a second.
fn k8s_line(i: u32) -> String {
    let pod = format!("p{}", i % 37);
    let labels = if i.is_multiple_of(4) {
        format!(r#"{{"app":"a{}","n":{}}}"#, i % 5, i % 9)
    } else {
        format!(r#"{{"app":"a{}"}}"#, i % 5)
    };
    let k8s = format!(
        r#"{{"pod_name":"{pod}","namespace":"ns","labels":{labels},"annotations":{{"x":"{{\"y\":[1,2]}}"}}}}"#
    );
    let m = if i.is_multiple_of(3) {
        String::new()
    } else {
        format!(r#","m":{{"w":{}}}"#, i % 11)
    };
    let time = 1_700_000_000 + u64::from(i) / 10;
    if i.is_multiple_of(2) {
        format!(
            r#"{{"bytes":{},"kubernetes":{k8s}{m},"meta":{{"time":{time}}},"msg":"caf\u00e9 \"q\""}}"#,
            i % 1000
        )
    } else {
        format!(
            r#"{{"msg":"ok","meta":{{"time":{time}}},"kubernetes":{k8s},"bytes":{}{m}}}"#,
            i % 1000
        )
    }
}

/// Runs `p.toml` in `p` (`run`, then `resume --or-start`), killing it with SIGKILL after a
/// random 10 to 150 ms eleven times at most while it has not ended, then lets the next run
/// end. Returns how many kills landed. (With 30 to 400 ms, a release build of the CSV test
/// finished its input after two kills once parsing got faster.)
pub(crate) fn kill_and_resume_until_done(p: &Proj, env: &[(&str, &str)], seed: u64) -> u32 {
    use std::process::Stdio;
    use std::time::Duration;
    let mut rng = Rng(seed);
    let mut killed = 0;
    for i in 0..40 {
        let args: &[&str] = if i == 0 {
            &["run", "p.toml"]
        } else {
            &["resume", "p.toml", "--or-start"]
        };
        let mut bg = p.spawn_env(&format!("run{i}"), args, Stdio::null(), env);
        if i < 12 {
            match bg.wait_for(Duration::from_millis(rng.range(10, 150))) {
                Some(code) => {
                    assert_eq!(code, 0, "run {i}: {}", bg.stderr_str());
                    return killed;
                }
                None => {
                    assert_eq!(bg.kill9(), 128 + SIGKILL, "run {i}: {}", bg.stderr_str());
                    killed += 1;
                }
            }
        } else {
            let code = bg.wait_for(Duration::from_secs(60));
            assert_eq!(code, Some(0), "resume {i}: {}", bg.stderr_str());
            assert!(!bg.stderr_str().contains("panicked"), "{}", bg.stderr_str());
            return killed;
        }
    }
    panic!("never finished");
}
