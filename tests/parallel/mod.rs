//! Keyed parallelism (`parallelism = N` on aggregate, window and dedup): the output of every
//! N is byte for byte the output of N = 1, on seeded data with many keys, out-of-order and late
//! records and bad lines; through kill -9 and resume; through resumes at another N (rescaling
//! key groups); with the parse workers folding counts. Plus what validate refuses, what
//! `inspect` and `explain` show, and a key-group hash checked against one written here.

use crate::common::*;
use std::process::Stdio;
use std::time::Duration;

/// Events like `scripts/gen_events.py` writes, from a seed: `users` users, 8 paths, RFC 3339
/// times at about 20 events a second, mostly increasing, one in eight set back by up to 40 s
/// (late for the windows below now and then), and one line in 150 bad (a string to sum, or no
/// time).
fn events(seed: u64, n: usize, users: u64) -> String {
    events_of(seed, n, users, |i| format!("\"u{i:05}\""))
}

/// The same events, the user written as `user(i)` gives it (JSON text).
fn events_of(seed: u64, n: usize, users: u64, user: impl Fn(u64) -> String) -> String {
    const PATHS: [&str; 8] = [
        "/",
        "/login",
        "/logout",
        "/api/orders",
        "/api/users",
        "/api/search",
        "/static/app.js",
        "/static/app.css",
    ];
    let mut r = Rng(seed);
    let start = 1_793_491_200i64; // 2026-11-01T00:00:00Z
    let mut s = String::with_capacity(n * 120);
    for i in 0..n {
        let mut t = start + i as i64 / 20;
        if r.range(0, 8) == 0 {
            t -= r.range(1, 41) as i64;
        }
        let ts = jiff::Timestamp::from_second(t).unwrap().to_string();
        let user = user(r.range(0, users));
        let path = PATHS[r.range(0, 8) as usize];
        let method = ["GET", "POST", "PUT"][r.range(0, 3) as usize];
        let bytes = r.range(0, 50_000);
        let lat = r.range(0, 5000) as f64 / 10.0;
        match r.range(0, 300) {
            0 => s.push_str(&format!(
                "{{\"ts\":\"{ts}\",\"method\":\"{method}\",\"path\":\"{path}\",\"bytes\":\"many\",\"user\":{user}}}\n"
            )),
            1 => s.push_str(&format!(
                "{{\"method\":\"{method}\",\"path\":\"{path}\",\"bytes\":{bytes},\"user\":{user}}}\n"
            )),
            _ => s.push_str(&format!(
                "{{\"ts\":\"{ts}\",\"method\":\"{method}\",\"path\":\"{path}\",\"status\":200,\"bytes\":{bytes},\"latency_ms\":{lat},\"user\":{user}}}\n"
            )),
        }
    }
    s
}

/// Every keyed node there is, each at parallelism `n` (and `max` key groups when given), fed
/// by one source whose bad records go to a dead-letter file; `every` is the checkpoint
/// interval.
fn all_nodes(n: usize, max: Option<u64>, every: &str) -> String {
    nodes_over(&["in"], n, max, every)
}

/// `all_nodes` over a union of sources: `<name>.jsonl` each, dead letters to
/// `out/bad.jsonl` for `in` and `out/bad_<name>.jsonl` for others.
fn nodes_over(sources: &[&str], n: usize, max: Option<u64>, every: &str) -> String {
    let max = max.map_or(String::new(), |m| format!("max_parallelism = {m}\n"));
    let par = format!("parallelism = {n}\n{max}");
    let inputs = sources
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sources: String = sources
        .iter()
        .map(|s| {
            let bad = if *s == "in" { "bad".to_string() } else { format!("bad_{s}") };
            format!("[sources.{s}]\ntype = \"file\"\npath = \"{s}.jsonl\"\non_error = \"dead_letter\"\ndead_letter = \"out/{bad}.jsonl\"\n")
        })
        .collect();
    format!(
        r#"name = "par"
[checkpoint]
every = "{every}"

{sources}

[transforms.tumbling]
type = "window"
inputs = [{inputs}]
key = ".user"
time = ".ts"
size = "10s"
out_of_orderness = "5s"
allowed_lateness = "5s"
aggs = {{ n = "count", bytes = "sum(.bytes)", slow = "max(.latency_ms)" }}
{par}
[transforms.sliding]
type = "window"
inputs = [{inputs}]
key = ".path"
time = ".ts"
size = "30s"
slide = "10s"
out_of_orderness = "2s"
aggs = {{ n = "count", avg = "avg(.bytes)" }}
{par}
[transforms.session]
type = "window"
inputs = [{inputs}]
key = ".user"
time = ".ts"
gap = "20s"
out_of_orderness = "3s"
allowed_lateness = "10s"
aggs = {{ n = "count", first = "first(.path)", last = "last(.path)" }}
{par}
[transforms.dedup_t]
type = "dedup"
inputs = [{inputs}]
key = ".user"
time = ".ts"
ttl = "15s"
{par}
[transforms.dedup_n]
type = "dedup"
inputs = [{inputs}]
key = ".path + \" \" + .method"
ttl = 40
{par}
[transforms.totals]
type = "aggregate"
inputs = [{inputs}]
key = ".user"
aggs = {{ n = "count", bytes = "sum(.bytes)", paths = "count_distinct(.path)" }}
{par}
[transforms.updates]
type = "aggregate"
inputs = [{inputs}]
key = ".path"
emit = "updates"
aggs = {{ n = "count", small = "min(.bytes)" }}
{par}
[transforms.idle]
type = "aggregate"
inputs = [{inputs}]
key = ".user"
state_ttl = "30s"
time = ".ts"
aggs = {{ n = "count" }}
{par}
{sinks}"#,
        sinks = sinks(&[
            "tumbling",
            "tumbling.late",
            "sliding",
            "sliding.late",
            "session",
            "session.late",
            "dedup_t",
            "dedup_n",
            "totals",
            "updates",
            "idle",
        ])
    )
}

/// A file sink `out/<node>.jsonl` for each output.
fn sinks(outputs: &[&str]) -> String {
    outputs
        .iter()
        .map(|o| {
            let name = o.replace('.', "_");
            format!(
                "[sinks.{name}_out]\ntype = \"file\"\ninputs = [\"{o}\"]\npath = \"out/{name}.jsonl\"\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every output file of a project, by name (dead letters name the input file: its directory
/// is written `ROOT`, so that projects compare).
fn outputs(p: &Proj) -> Vec<(String, Vec<u8>)> {
    let root = p.s("");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(p.p("out"))
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).unwrap();
            (
                name,
                text.replace(root.trim_end_matches('/'), "ROOT")
                    .into_bytes(),
            )
        })
        .filter(|(n, _)| n.ends_with(".jsonl"))
        .collect();
    v.sort();
    v
}

#[track_caller]
fn same_outputs(want: &[(String, Vec<u8>)], got: &[(String, Vec<u8>)], what: &str) {
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{what}: other output files");
    for ((name, a), (_, b)) in want.iter().zip(got) {
        let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
        if let Some(d) = first_difference(&b, &a) {
            panic!("{what}: {name} differs: {d}");
        }
    }
}

/// A project with `input` as in.jsonl and `toml` as p.toml.
fn project(input: &str, toml: &str) -> Proj {
    let p = Proj::new();
    p.write("in.jsonl", input);
    p.write("p.toml", toml);
    std::fs::create_dir_all(p.p("out")).unwrap();
    p
}

#[test]
fn every_parallelism_gives_the_bytes_of_parallelism_1_on_every_keyed_node() {
    let input = events(7, 20_000, 3000);
    let reference = project(&input, &all_nodes(1, None, "off"));
    reference
        .weir(&["run", "-q", "--stats", "stats.json", "p.toml"])
        .expect_code(0);
    let want = outputs(&reference);
    let want_stats = counts(&reference);
    // The data means something: late records, bad records, many windows and keys.
    let size = |name: &str| {
        let f = want.iter().find(|x| x.0 == name).unwrap();
        lines(&String::from_utf8_lossy(&f.1)).len()
    };
    for late in [
        "tumbling_late.jsonl",
        "sliding_late.jsonl",
        "session_late.jsonl",
    ] {
        assert!(size(late) > 20, "{late}: {} late records", size(late));
    }
    assert!(size("bad.jsonl") > 50, "{} bad records", size("bad.jsonl"));
    assert!(
        size("totals.jsonl") > 2900,
        "{} users",
        size("totals.jsonl")
    );
    assert!(size("tumbling.jsonl") > 10_000);
    assert!(size("session.jsonl") > 5_000);
    assert!(size("dedup_t.jsonl") > 5_000 && size("dedup_t.jsonl") < 19_000);
    for n in [2, 3, 8] {
        let p = project(&input, &all_nodes(n, None, "off"));
        p.weir(&["run", "-q", "--stats", "stats.json", "p.toml"])
            .expect_code(0);
        same_outputs(&want, &outputs(&p), &format!("parallelism {n}"));
        assert_eq!(counts(&p), want_stats, "--stats at parallelism {n}");
    }
    // Few key groups, each instance owning several or one.
    for (n, max) in [(3, 4), (5, 5)] {
        let p = project(&input, &all_nodes(n, Some(max), "off"));
        p.weir(&["run", "-q", "p.toml"]).expect_code(0);
        same_outputs(
            &want,
            &outputs(&p),
            &format!("parallelism {n} of {max} key groups"),
        );
    }
}

/// Every node's counts in a `--stats` file: records in and out, errors, late records.
fn counts(p: &Proj) -> Vec<String> {
    let stats = read_stats(&p.p("stats.json"));
    stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{} in {} out {} errors {} late {}",
                n["node"], n["records_in"], n["records_out"], n["errors"], n["late"]
            )
        })
        .collect()
}

/// The node states of the newest checkpoint, by node name, as `weir inspect` prints them.
fn states(p: &Proj) -> serde_json::Map<String, serde_json::Value> {
    let o = p.weir(&["inspect", "p.toml"]);
    o.expect_code(0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap().to_string(), n["state"].clone()))
        .collect()
}

const KEYED: [&str; 8] = [
    "tumbling", "sliding", "session", "dedup_t", "dedup_n", "totals", "updates", "idle",
];

#[test]
fn resuming_at_another_parallelism_rescales_and_changes_nothing() {
    // Four parts of the input, each read by a run that pauses at its end; the next part is
    // appended and read at another parallelism: 2, then 3, then 1, then 8 to the end.
    let input = events(11, 16_000, 2000);
    let all: Vec<&str> = input.split_inclusive('\n').collect();
    let quarter = all.len() / 4;
    let part =
        |i: usize| all[i * quarter..if i == 3 { all.len() } else { (i + 1) * quarter }].concat();
    let reference = project(&input, &all_nodes(1, None, "1h"));
    reference.weir(&["run", "-q", "p.toml"]).expect_code(0);
    let want = outputs(&reference);

    let p = project(&part(0), &all_nodes(2, None, "1h"));
    let one = project(&part(0), &all_nodes(1, None, "1h"));
    p.weir(&["run", "-q", "--at-end", "pause", "p.toml"])
        .expect_code(0);
    one.weir(&["run", "-q", "--at-end", "pause", "p.toml"])
        .expect_code(0);
    // The paused state is the same bytes whichever parallelism wrote it.
    let (a, b) = (states(&one), states(&p));
    for node in KEYED {
        assert_eq!(a[node], b[node], "state of {node} at parallelism 2");
        // Users spread over most of the 128 groups; the 8 paths over a few.
        let groups = a[node]["key_groups"].as_array().unwrap().len();
        assert!(
            groups > 100 || (groups > 1 && node != "tumbling"),
            "{node}: {groups}"
        );
    }
    for (i, n) in [(1, 3), (2, 1), (3, 8)] {
        p.append("in.jsonl", part(i));
        p.write("p.toml", all_nodes(n, None, "1h"));
        let plan = p.weir(&["resume", "--plan", "p.toml"]);
        plan.expect_code(0);
        assert!(
            plan.stdout_str().contains(&format!(
                "parallelism changed from {} to {n}",
                [2, 3, 1][i - 1]
            )),
            "{}",
            plan.stdout_str()
        );
        let at_end = if i == 3 { "finish" } else { "pause" };
        p.weir(&["resume", "-q", "--at-end", at_end, "p.toml"])
            .expect_code(0);
    }
    same_outputs(&want, &outputs(&p), "resumed at parallelism 2, 3, 1, 8");
}

#[test]
fn kill_9_at_random_moments_at_parallelism_2_and_3_then_resume_gives_the_bytes_of_one_run() {
    let input = events(23, 40_000, 4000);
    let reference = project(&input, &all_nodes(1, None, "1h"));
    reference.weir(&["run", "-q", "p.toml"]).expect_code(0);
    let want = outputs(&reference);
    let p = project(&input, &all_nodes(2, None, "25ms"));
    let mut r = Rng(5);
    let mut kills = 0;
    for round in 0..12 {
        // Every other attempt at the other parallelism: a kill, then a rescale.
        p.write("p.toml", all_nodes(2 + round % 2, None, "25ms"));
        let mut bg = p.spawn(
            "run",
            &["resume", "-q", "--or-start", "p.toml"],
            Stdio::null(),
        );
        let alive = Duration::from_millis(150 + r.range(0, 500));
        match bg.wait_for(alive) {
            Some(0) => break,
            Some(code) => panic!("exit {code} before the kill:\n{}", bg.stderr_str()),
            None => {
                bg.kill9();
                kills += 1;
            }
        }
    }
    assert!(
        kills >= 2,
        "only {kills} kills: the run was too quick to test anything"
    );
    p.write("p.toml", all_nodes(3, None, "25ms"));
    p.weir(&["resume", "-q", "--or-start", "p.toml"])
        .expect_code(0);
    same_outputs(&want, &outputs(&p), &format!("after {kills} kills"));
}

/// Users as logs have them, as JSON text: strings with escapes (and the same string with its
/// `é` unescaped), objects with nested arrays (and the same object with its fields swapped and
/// a number written `2.0`), arrays, numbers written two ways (one key), null, booleans and an
/// escaped surrogate pair. Equal keys written differently must meet in one key group.
fn nested_user(i: u64) -> String {
    match i % 8 {
        0 => format!(r#""caf\u00e9 \"{i}\"""#),
        1 => format!(r#""café \"{}\"""#, i - 1),
        2 => format!(r#"{{"id":{i},"tags":["a\\b","\n",{{"deep":[[{i}]]}}]}}"#),
        3 => format!(
            r#"{{"tags":["a\\b","\n",{{"deep":[[{j}]]}}],"id":{j}.0}}"#,
            j = i - 1
        ),
        4 => format!(r#"[{i},"x\ty",null]"#),
        5 => format!("{}", i / 8),
        6 => format!("{}.0", i / 8),
        _ => ["null", "true", "false", r#""\ud83d\ude00""#][(i / 8 % 4) as usize].to_string(),
    }
}

/// A union of two sources feeding every keyed node, keyed by nested and escaped values: every
/// parallelism gives the bytes of parallelism 1, and so do kill -9s at random moments of runs
/// whose every resume changes the parallelism (3, 2, 3, ...), finished at parallelism 1.
#[test]
fn a_union_keyed_by_nested_and_escaped_values_gives_the_bytes_of_parallelism_1_through_kills_and_rescales(
) {
    let a = events_of(31, 15_000, 800, nested_user);
    let b = events_of(32, 15_000, 800, nested_user);
    let union = |n: usize, every: &str| nodes_over(&["a", "b"], n, None, every);
    let make = |toml: &str| {
        let p = Proj::new();
        p.write("a.jsonl", &a);
        p.write("b.jsonl", &b);
        p.write("p.toml", toml);
        std::fs::create_dir_all(p.p("out")).unwrap();
        p
    };
    let reference = make(&union(1, "1h"));
    reference.weir(&["run", "-q", "p.toml"]).expect_code(0);
    let want = outputs(&reference);
    // The keys came through in every shape, and equal keys written differently are one.
    let totals = &want.iter().find(|x| x.0 == "totals.jsonl").unwrap().1;
    let totals = String::from_utf8_lossy(totals);
    for shape in [
        r#""key":"café \"0\"""#,
        r#""deep":[[2]]"#,
        r#""key":"😀""#,
        r#""key":[4,"x\ty",null]"#,
    ] {
        assert!(totals.contains(shape), "{shape} not in\n{totals}");
    }
    let keys: Vec<String> = parse_jsonl(&totals)
        .iter()
        .map(|r| r["key"].to_string())
        .collect();
    assert_eq!(
        keys.iter().filter(|k| *k == "1" || *k == "1.0").count(),
        1,
        "{keys:?}"
    );
    assert!(keys.len() > 400, "{} keys", keys.len());
    for n in [2, 3] {
        let p = make(&union(n, "off"));
        p.weir(&["run", "-q", "p.toml"]).expect_code(0);
        same_outputs(&want, &outputs(&p), &format!("union at parallelism {n}"));
    }
    let p = make(&union(3, "25ms"));
    let mut r = Rng(17);
    let mut kills = 0;
    for round in 0..12 {
        p.write("p.toml", union(3 - round % 2, "25ms"));
        let mut bg = p.spawn(
            "run",
            &["resume", "-q", "--or-start", "p.toml"],
            Stdio::null(),
        );
        match bg.wait_for(Duration::from_millis(150 + r.range(0, 500))) {
            Some(0) => break,
            Some(code) => panic!("exit {code} before the kill:\n{}", bg.stderr_str()),
            None => {
                bg.kill9();
                kills += 1;
            }
        }
    }
    assert!(kills >= 2, "only {kills} kills: the run was too quick");
    p.write("p.toml", union(1, "25ms"));
    p.weir(&["resume", "-q", "--or-start", "p.toml"])
        .expect_code(0);
    same_outputs(&want, &outputs(&p), &format!("union after {kills} kills"));
}

/// Folding in the parse workers (J2's aggregate, J3's window: each the only consumer of its
/// source) with parallel instances: the folded counts are routed by key too.
#[test]
fn folded_counts_with_parallel_instances_give_the_bytes_of_parallelism_1() {
    // Clean data: every line folds.
    let mut r = Rng(3);
    let mut input = String::new();
    for i in 0..60_000i64 {
        let t = 1_793_491_200 + i / 50
            - if r.range(0, 10) == 0 {
                r.range(1, 6) as i64
            } else {
                0
            };
        let ts = jiff::Timestamp::from_second(t).unwrap().to_string();
        input.push_str(&format!(
            "{{\"ts\":\"{ts}\",\"path\":\"/p{}\",\"bytes\":{},\"user\":\"u{:05}\"}}\n",
            r.range(0, 40),
            r.range(0, 100_000),
            r.range(0, 5000)
        ));
    }
    let j2 = |n: usize| {
        format!(
            "[checkpoint]\nevery = \"off\"\n[sources.events]\ntype = \"file\"\npath = \"in.jsonl\"\n[transforms.per_user]\ntype = \"aggregate\"\ninputs = [\"events\"]\nkey = \".user\"\naggs = {{ count = \"count\", bytes = \"sum(.bytes)\" }}\nparallelism = {n}\n{}",
            sinks(&["per_user"])
        )
    };
    let j3 = |n: usize| {
        format!(
            "[checkpoint]\nevery = \"off\"\n[sources.events]\ntype = \"file\"\npath = \"in.jsonl\"\n[transforms.per_minute]\ntype = \"window\"\ninputs = [\"events\"]\nkey = \".path\"\ntime = \".ts\"\nsize = \"1m\"\nout_of_orderness = \"10s\"\naggs = {{ n = \"count\", bytes = \"sum(.bytes)\" }}\nparallelism = {n}\n{}",
            sinks(&["per_minute"])
        )
    };
    for job in [&j2 as &dyn Fn(usize) -> String, &j3] {
        // Record by record (no parse workers, so no folding) at parallelism 1: the reference.
        let reference = project(&input, &job(1));
        let o = run_weir_env(
            reference.root(),
            &["run", "-q", "p.toml"],
            None,
            &[("WEIR_PARSE_THREADS", "0")],
        );
        expect_exit(&o, Some(0));
        let want = outputs(&reference);
        assert!(want[0].1.len() > 1000);
        for n in [1, 2, 3] {
            let p = project(&input, &job(n));
            let explain = p.weir(&["explain", "p.toml"]);
            assert!(
                explain.stdout_str().contains("fold lines straight into"),
                "{}",
                explain.stdout_str()
            );
            let o = run_weir_env(
                p.root(),
                &["run", "-q", "p.toml"],
                None,
                &[("WEIR_PARSE_THREADS", "2")],
            );
            expect_exit(&o, Some(0));
            same_outputs(&want, &outputs(&p), &format!("folded, parallelism {n}"));
        }
    }
}

/// The key-group hash, written out again here from its definition (FNV-1a 64 over a tag byte
/// 4, the string's bytes and 0xff; MurmurHash3's fmix64; modulo the number of groups).
fn group_of(key: &str, max: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in [4u8].iter().chain(key.as_bytes()).chain(&[0xffu8]) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (h ^ (h >> 33)) % max
}

#[test]
fn inspect_shows_the_key_groups_and_each_key_is_in_the_group_its_hash_names() {
    let input = events(5, 3000, 300);
    let p = project(&input, &all_nodes(3, Some(16), "1h"));
    p.weir(&["run", "-q", "--at-end", "pause", "p.toml"])
        .expect_code(0);
    let st = states(&p);
    let totals = &st["totals"];
    assert_eq!(totals["max_parallelism"], 16);
    let groups = totals["key_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 16, "300 users in fewer than 16 groups");
    let mut users = std::collections::BTreeSet::new();
    let mut prev = -1i64;
    for g in groups {
        let n = g[0].as_i64().unwrap();
        assert!(n > prev && n < 16, "group {n} after {prev}");
        prev = n;
        for row in g[1].as_array().unwrap() {
            let user = row[0].as_str().unwrap();
            assert_eq!(group_of(user, 16), n as u64, "{user}");
            users.insert(user.to_string());
        }
    }
    let want: std::collections::BTreeSet<String> = parse_jsonl(&input)
        .iter()
        .map(|e| e["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, want);
    // Windows and dedup too, with their own group numbers.
    for node in ["tumbling", "session", "dedup_t"] {
        let s = &st[node];
        assert_eq!(s["max_parallelism"], 16, "{node}");
        for g in s["key_groups"].as_array().unwrap() {
            let n = g[0].as_u64().unwrap();
            let keys: Vec<&str> = if node == "dedup_t" {
                g[1].as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r[0].as_str().unwrap())
                    .collect()
            } else {
                ["open", "fired"]
                    .iter()
                    .flat_map(|w| g[1][w].as_array().unwrap().iter())
                    .map(|w| w[2].as_str().unwrap())
                    .collect()
            };
            assert!(!keys.is_empty(), "{node}: empty group {n}");
            for k in keys {
                assert_eq!(group_of(k, 16), n, "{node}: {k}");
            }
        }
    }
}

#[test]
fn explain_shows_the_instances_and_their_key_groups() {
    let p = project("", &all_nodes(3, None, "off"));
    let o = p.weir(&["explain", "p.toml"]);
    o.expect_code(0);
    let text = o.stdout_str();
    assert!(
        text.contains("worker threads for parallelism: tumbling 3, sliding 3"),
        "{text}"
    );
    assert!(
        text.contains("parallelism = 3  max_parallelism = 128"),
        "{text}"
    );
    assert!(
        text.contains("3 instances (this node's thread and 2 workers), each record routed by a hash of its key to one of 128 key groups; groups: #0 0-42, #1 43-85, #2 86-127"),
        "{text}"
    );
    let dot = p.weir(&["explain", "--dot", "p.toml"]);
    dot.expect_code(0);
    assert!(
        dot.stdout_str().contains(
            "\"totals\" [shape=box3d, label=\"totals\\ntransform aggregate\\n3 instances\"]"
        ),
        "{}",
        dot.stdout_str()
    );
    // One instance: the default, shown as such.
    p.write("p.toml", all_nodes(1, None, "off"));
    let o = p.weir(&["explain", "p.toml"]);
    assert!(o
        .stdout_str()
        .contains("one thread per node, parallelism 1"));
    assert!(o
        .stdout_str()
        .contains("parallelism = 1  max_parallelism = 128"));
    assert!(!o.stdout_str().contains("instances"));
}

#[test]
fn validate_refuses_parallelism_that_cannot_be_and_names_the_node() {
    let base = |node: &str| {
        format!(
            "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n[transforms.x]\ninputs = [\"in\"]\n{node}\n[sinks.o]\ntype = \"file\"\ninputs = [\"x\"]\npath = \"o.jsonl\"\n"
        )
    };
    let window =
        "type = \"window\"\nkey = \".k\"\ntime = \".t\"\nsize = \"1m\"\naggs = { n = \"count\" }";
    let cases: Vec<(String, &str)> = vec![
        (format!("{window}\nparallelism = 0"), "`parallelism` must be at least 1"),
        (
            format!("{window}\nparallelism = 129"),
            "`parallelism` = 129 is more than `max_parallelism` = 128",
        ),
        (
            format!("{window}\nparallelism = 4\nmax_parallelism = 2"),
            "`parallelism` = 4 is more than `max_parallelism` = 2",
        ),
        (
            format!("{window}\nmax_parallelism = 0"),
            "`max_parallelism` must be from 1 to 32768",
        ),
        (
            format!("{window}\nmax_parallelism = 40000"),
            "`max_parallelism` must be from 1 to 32768",
        ),
        (
            "type = \"aggregate\"\naggs = { n = \"count\" }\nparallelism = 2".to_string(),
            "`parallelism` = 2 needs `key`",
        ),
        (
            "type = \"dedup\"\nkey = \".k\"\nttl = 5\nparallelism = -1".to_string(),
            "parallelism",
        ),
        (
            "type = \"filter\"\nexpr = \".a\"\nparallelism = 2".to_string(),
            "unknown field `parallelism`: only keyed nodes (aggregate, window, dedup) run as several instances",
        ),
        (
            "type = \"map\"\nexpr = \"{a}\"\nparallelism = 2".to_string(),
            "unknown field `parallelism`: only keyed nodes",
        ),
        (
            "type = \"filter\"\nexpr = \".a\"\nmax_parallelism = 8".to_string(),
            "unknown field `max_parallelism`: only keyed nodes",
        ),
    ];
    let p = Proj::new();
    p.write("in.jsonl", "{\"k\":1,\"t\":2}\n");
    for (node, want) in cases {
        p.write("p.toml", base(&node));
        for cmd in ["validate", "run"] {
            let o = p.weir(&[cmd, "p.toml"]);
            o.expect_code(2).expect_no_panic();
            assert!(
                o.stderr.contains("node 'x'") && o.stderr.contains(want),
                "{cmd} of\n{node}\nsaid:\n{}",
                o.stderr
            );
        }
    }
    // The same settings that are fine.
    p.write(
        "p.toml",
        base(&format!("{window}\nparallelism = 8\nmax_parallelism = 8")),
    );
    p.weir(&["validate", "p.toml"]).expect_code(0);
}

#[test]
fn a_resume_with_another_number_of_key_groups_is_refused_naming_the_node() {
    let input = events(9, 2000, 100);
    let p = project(&input, &all_nodes(2, None, "1h"));
    p.weir(&["run", "-q", "--at-end", "pause", "p.toml"])
        .expect_code(0);
    let before = outputs(&p);
    p.write("p.toml", all_nodes(2, Some(64), "1h"));
    let o = p.weir(&["resume", "p.toml"]);
    o.expect_code(2).expect_no_panic();
    for node in KEYED {
        assert!(
            o.stderr.contains(&format!(
                "node '{node}': max_parallelism changed from `128` to `64`"
            )),
            "{node}:\n{}",
            o.stderr
        );
    }
    assert!(o.stderr.contains("--drop-state"), "{}", o.stderr);
    assert_eq!(outputs(&p), before, "a refused resume wrote something");
    // Back to 128 key groups, at another parallelism: it resumes.
    p.write("p.toml", all_nodes(5, Some(128), "1h"));
    p.weir(&["resume", "-q", "p.toml"]).expect_code(0);
}
