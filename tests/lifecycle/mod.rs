//! The life of a state directory: paths, `--state`, `--set`, `run`/`resume`/`--fresh`, checkpoint settings.

use crate::common::*;
use std::time::Duration;

// Paths, --state, --set, checkpoints off

#[test]
fn relative_paths_resolve_against_the_pipeline_file_not_the_cwd() {
    let p = Proj::new();
    p.write(
        "proj/sub/p.toml",
        r#"name = "rel"
[sources.s]
type = "file"
path = "../data/in.jsonl"
on_error = "dead_letter"
dead_letter = "out/dead.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out/o.jsonl"
"#,
    );
    p.write("proj/data/in.jsonl", "{\"a\":1}\n[]\n{\"a\":2}\n");
    std::fs::create_dir_all(p.p("elsewhere")).unwrap();
    let o = weir_at(&p.p("elsewhere"), &["run", "../proj/sub/p.toml"], None);
    o.expect_code(0).expect_no_panic();
    assert_eq!(p.read_str("proj/sub/out/o.jsonl"), "{\"a\":1}\n{\"a\":2}\n");
    assert_eq!(p.read_str("proj/sub/out/dead.jsonl").lines().count(), 1);
    assert!(
        !p.ckpts("proj/sub/.weir/rel").is_empty(),
        "no state in .weir/rel beside the pipeline"
    );
    assert_eq!(
        std::fs::read_dir(p.p("elsewhere")).unwrap().count(),
        0,
        "weir wrote into the current directory"
    );
    // The same pipeline seen from yet another directory finds the same state.
    let c = weir_at(&p.p("proj/data"), &["checkpoints", "../sub/p.toml"], None);
    c.expect_code(0);
    assert!(c.stdout_str().contains("final"), "{}", c.stdout_str());
    let r = weir_at(&p.p("proj"), &["resume", "sub/p.toml"], None);
    r.expect_code(0);
    assert_eq!(p.read_str("proj/sub/out/o.jsonl"), "{\"a\":1}\n{\"a\":2}\n");
}

#[test]
fn checkpoint_dir_in_the_file_is_relative_to_the_file() {
    let p = Proj::new();
    p.write(
        "proj/p.toml",
        r#"name = "dirs"
[checkpoint]
dir = "../state/here"
[sources.s]
type = "file"
path = "in.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "o.jsonl"
"#,
    );
    p.write("proj/in.jsonl", "{\"a\":1}\n");
    std::fs::create_dir_all(p.p("cwd")).unwrap();
    weir_at(&p.p("cwd"), &["run", "../proj/p.toml"], None).expect_code(0);
    assert!(
        !p.ckpts("state/here").is_empty(),
        "checkpoints not in [checkpoint] dir"
    );
    assert!(!p.exists("proj/.weir") && !p.exists("cwd/state"));
}

#[test]
fn state_flag_overrides_the_state_directory() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    p.write("in.jsonl", "{\"a\":1}\n");
    let st = p.s("elsewhere/state");
    p.weir(&["run", "p.toml", "--state", &st]).expect_code(0);
    assert!(!p.ckpts("elsewhere/state").is_empty());
    assert!(
        !p.exists(".weir"),
        "the default state dir was used despite --state"
    );
    let c = p.weir(&["checkpoints", &st]);
    c.expect_code(0);
    assert!(c.stdout_str().contains("final"), "{}", c.stdout_str());
    // Another state dir is another run: it starts from nothing without complaint.
    p.weir(&["run", "p.toml", "--state", &p.s("other")])
        .expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), "{\"a\":1}\n");
    // Resume of the finished run in the first one: nothing to do.
    p.weir(&["resume", "p.toml", "--state", &st]).expect_code(0);
}

#[test]
fn set_overrides_pipeline_values_by_dotted_path() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "set"
[checkpoint]
every = "off"
[sources.s]
type = "file"
path = "in.jsonl"
[transforms.f]
type = "filter"
inputs = ["s"]
expr = ".n > 1"
[sinks.o]
type = "file"
inputs = ["f"]
path = "out.jsonl"
"#,
    );
    p.write("in.jsonl", "{\"n\":5}\n");
    p.write(
        "other/x.jsonl",
        "{\"n\":1}\n{\"n\":20}\n{\"n\":11}\n{\"n\":3}\n",
    );
    let abs = format!("sources.s.path={}", p.s("other/x.jsonl"));
    p.weir(&[
        "run",
        "p.toml",
        "--set",
        &abs,
        "--set",
        "transforms.f.expr=.n > 10",
    ])
    .expect_code(0)
    .expect_no_panic();
    assert_eq!(p.read_str("out.jsonl"), "{\"n\":20}\n{\"n\":11}\n");
    // Numbers are numbers.
    let g = Proj::new();
    g.write(
        "g.toml",
        r#"[checkpoint]
every = "off"
[sources.g]
type = "generate"
count = 1000
seed = 1
[transforms.m]
type = "map"
inputs = ["g"]
expr = "{seq}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.jsonl"
"#,
    );
    g.weir(&["run", "g.toml", "--set", "sources.g.count=3"])
        .expect_code(0);
    assert_eq!(
        g.read_str("out.jsonl"),
        "{\"seq\":0}\n{\"seq\":1}\n{\"seq\":2}\n"
    );
}

#[test]
fn set_with_a_bad_key_or_no_value_is_a_usage_error() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    p.write("in.jsonl", "{\"a\":1}\n");
    for set in ["sources.s.bogus=1", "noequals", "sources.s.path.deeper=x"] {
        let o = p.weir(&["run", "p.toml", "--set", set]);
        assert_eq!(o.code, 2, "--set {set}: {}", o.stderr);
        assert!(!p.exists("out.jsonl"), "--set {set} ran the pipeline");
    }
}

#[test]
fn checkpoints_off_leaves_no_state_and_resume_says_there_is_nothing() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "nock"
[checkpoint]
every = "off"
[sources.s]
type = "file"
path = "in.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    p.write("in.jsonl", "{\"a\":1}\n");
    p.weir(&["run", "p.toml"]).expect_code(0);
    assert!(
        !p.exists(".weir"),
        "state written although checkpoints are off"
    );
    // With no state, running again is fine.
    p.weir(&["run", "p.toml"]).expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), "{\"a\":1}\n");
    let r = p.weir(&["resume", "p.toml"]);
    r.expect_code(2);
    assert!(
        r.stderr.starts_with("weir: ") && r.stderr.len() > 10,
        "{}",
        r.stderr
    );
}

// run / resume life cycle

#[test]
fn run_refuses_a_state_dir_with_checkpoints_and_fresh_moves_them_aside() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    p.write("in.jsonl", "{\"a\":1}\n");
    p.weir(&["run", "p.toml"]).expect_code(0);
    let before = p.ckpts(".weir/pass");
    assert_eq!(before.len(), 1, "{before:?}");
    let old_bytes = std::fs::read(&before[0]).unwrap();
    let out_before = snapshot(&p.p("out.jsonl"));
    std::thread::sleep(Duration::from_millis(20));

    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(2);
    assert!(
        o.stderr.contains("--fresh") || o.stderr.contains("resume"),
        "unclear: {}",
        o.stderr
    );
    assert_eq!(
        snapshot(&p.p("out.jsonl")),
        out_before,
        "a refused run touched the output"
    );
    assert_eq!(p.ckpts(".weir/pass"), before);

    p.write("in.jsonl", "{\"a\":2}\n");
    p.weir(&["run", "p.toml", "--fresh"]).expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), "{\"a\":2}\n");
    let old: Vec<_> = std::fs::read_dir(p.p(".weir/pass"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("old-") && e.path().is_dir())
        .collect();
    assert_eq!(old.len(), 1, "one old-<time>/ directory");
    let moved = old[0].path().join(before[0].file_name().unwrap());
    assert_eq!(
        std::fs::read(&moved).unwrap(),
        old_bytes,
        "the old checkpoint was not kept as it was"
    );
    assert!(
        !p.ckpts(".weir/pass").is_empty(),
        "the fresh run left no checkpoint"
    );
}

#[test]
fn resume_without_a_checkpoint_needs_or_start() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    p.write("in.jsonl", "{\"a\":1}\n{\"a\":2}\n");
    let o = p.weir(&["resume", "p.toml"]);
    o.expect_code(2);
    assert!(
        !p.exists("out.jsonl"),
        "resume without checkpoint ran the pipeline"
    );
    p.weir(&["resume", "p.toml", "--or-start"]).expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), "{\"a\":1}\n{\"a\":2}\n");
    // Then it is finished: --or-start again does nothing.
    let before = snapshot(&p.p("out.jsonl"));
    p.weir(&["resume", "p.toml", "--or-start"]).expect_code(0);
    assert_eq!(snapshot(&p.p("out.jsonl")), before);
}

#[test]
fn resume_of_a_finished_run_exits_0_and_writes_nothing() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "done"
[sources.s]
type = "file"
path = "in.jsonl"
[transforms.agg]
type = "aggregate"
inputs = ["s"]
aggs = { n = "count" }
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
[sinks.stdout]
type = "file"
inputs = ["agg"]
path = "-"
"#,
    );
    p.write("in.jsonl", "{\"a\":1}\n{\"a\":2}\n");
    let first = p.weir(&["run", "p.toml"]);
    first.expect_code(0);
    assert_eq!(first.stdout_str(), "{\"n\":2}\n");
    let out = snapshot(&p.p("out.jsonl"));
    let cks: Vec<(std::path::PathBuf, Vec<u8>)> = p
        .ckpts(".weir/done")
        .into_iter()
        .map(|c| {
            let b = std::fs::read(&c).unwrap();
            (c, b)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    let o = p.weir(&["resume", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    assert!(
        o.stdout.is_empty(),
        "resume of a finished run wrote: {}",
        o.stdout_str()
    );
    assert_eq!(snapshot(&p.p("out.jsonl")), out);
    let after: Vec<(std::path::PathBuf, Vec<u8>)> = p
        .ckpts(".weir/done")
        .into_iter()
        .map(|c| {
            let b = std::fs::read(&c).unwrap();
            (c, b)
        })
        .collect();
    assert!(after == cks, "the checkpoints changed");
}

/// A pausing pipeline: passthrough to `all.jsonl`, per-key count and sum to `agg.jsonl`.
pub(crate) const PAUSING: &str = r#"name = "grow"
[sources.s]
type = "file"
path = "in.jsonl"
at_end = "pause"
[transforms.f]
type = "filter"
inputs = ["s"]
expr = ".v >= 0"
[transforms.agg]
type = "aggregate"
inputs = ["f"]
key = ".k"
aggs = { n = "count", total = "sum(.v)" }
[sinks.all]
type = "file"
inputs = ["f"]
path = "all.jsonl"
[sinks.aggout]
type = "file"
inputs = ["agg"]
path = "agg.jsonl"
"#;

pub(crate) fn rec(k: &str, v: i64) -> String {
    format!("{{\"k\":\"{k}\",\"v\":{v}}}\n")
}

/// Records `from..to` of a deterministic stream for the pausing pipeline.
pub(crate) fn recs(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| rec(["a", "b", "c"][i % 3], (i as i64 * 7) % 11 - 1))
        .collect()
}

/// What the pausing pipeline must write for this input after it finishes.
pub(crate) fn pausing_expected(input: &str) -> (String, String) {
    let mut all = String::new();
    let mut agg: std::collections::BTreeMap<String, (u64, i64)> = Default::default();
    for l in input.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let n = v["v"].as_i64().unwrap();
        if n >= 0 {
            all.push_str(l);
            all.push('\n');
            let e = agg.entry(v["k"].as_str().unwrap().to_string()).or_default();
            e.0 += 1;
            e.1 += n;
        }
    }
    let agg = agg
        .iter()
        .map(|(k, (n, t))| format!("{{\"key\":\"{k}\",\"n\":{n},\"total\":{t}}}\n"))
        .collect();
    (all, agg)
}

#[test]
fn resume_with_a_changed_aggregate_is_refused() {
    // Stateless edits resume (SPEC "Resume after editing"; see tests/edits); a changed
    // aggregate would restore sums as maxima.
    let p = Proj::new();
    p.write("p.toml", PAUSING);
    p.write("in.jsonl", recs(0, 10));
    p.weir(&["run", "p.toml"]).expect_code(0);
    let all = snapshot(&p.p("all.jsonl"));
    p.append("in.jsonl", recs(10, 20));

    // A different aggregate.
    p.write("p.toml", PAUSING.replace("sum(.v)", "max(.v)"));
    let o = p.weir(&["resume", "p.toml"]);
    o.expect_code(2);
    assert!(
        o.stderr.contains("node 'agg'"),
        "unclear message: {}",
        o.stderr
    );
    assert_eq!(
        snapshot(&p.p("all.jsonl")),
        all,
        "a refused resume touched the output"
    );

    // The original pipeline resumes.
    p.write("p.toml", PAUSING);
    p.weir(&["resume", "p.toml", "--at-end", "finish"])
        .expect_code(0);
    let (want_all, want_agg) = pausing_expected(&recs(0, 20));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
}

#[test]
fn pause_append_resume_reads_only_new_bytes_and_waits_for_a_complete_last_line() {
    let p = Proj::new();
    p.write("p.toml", PAUSING);
    let part1 = recs(0, 40);
    p.write("in.jsonl", &part1);
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    let (all1, _) = pausing_expected(&part1);
    assert_eq!(p.read_str("all.jsonl"), all1);
    assert_eq!(
        p.read_str("agg.jsonl"),
        "",
        "aggregates stay in state while paused"
    );

    // More records and half a line.
    let part2 = recs(40, 70);
    let half = "{\"k\":\"a\",\"v\":";
    p.append("in.jsonl", format!("{part2}{half}"));
    p.weir(&["resume", "p.toml"]).expect_code(0);
    let (all2, _) = pausing_expected(&(part1.clone() + &part2));
    assert_eq!(
        p.read_str("all.jsonl"),
        all2,
        "half a line must wait for the rest"
    );
    assert_eq!(p.read_str("agg.jsonl"), "");

    // Nothing new: nothing changes.
    p.weir(&["resume", "p.toml"]).expect_code(0);
    assert_eq!(p.read_str("all.jsonl"), all2);

    // Complete the line, add more, and finish.
    let part3 = recs(70, 100);
    p.append("in.jsonl", format!("100}}\n{part3}"));
    p.weir(&["resume", "p.toml", "--at-end", "finish"])
        .expect_code(0);
    let whole = format!("{part1}{part2}{half}100}}\n{part3}");
    let (want_all, want_agg) = pausing_expected(&whole);
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);

    // The same as one run over the whole input.
    let q = Proj::new();
    q.write("p.toml", PAUSING);
    q.write("in.jsonl", &whole);
    q.weir(&["run", "p.toml", "--at-end", "finish"])
        .expect_code(0);
    assert_eq!(q.read("all.jsonl"), p.read("all.jsonl"));
    assert_eq!(q.read("agg.jsonl"), p.read("agg.jsonl"));
}

#[test]
fn checkpoints_lists_and_inspect_prints_checkpoints() {
    let p = Proj::new();
    p.write("p.toml", PAUSING);
    p.write("in.jsonl", recs(0, 10));
    p.weir(&["run", "p.toml"]).expect_code(0);
    p.append("in.jsonl", recs(10, 20));
    p.weir(&["resume", "p.toml"]).expect_code(0);
    let files = p.ckpts(".weir/grow");
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].ends_with("ckpt-0000000001.weir") && files[1].ends_with("ckpt-0000000002.weir"),
        "{files:?}"
    );

    let o = p.weir(&["checkpoints", "p.toml"]);
    o.expect_code(0);
    let text = o.stdout_str();
    for (i, f) in files.iter().enumerate() {
        let id = (i + 1).to_string();
        let size = std::fs::metadata(f).unwrap().len().to_string();
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("checkpoint {id} not listed:\n{text}"));
        assert!(
            line.split_whitespace().any(|w| w == size),
            "size {size} not in {line:?}"
        );
        assert!(line.contains("paused"), "status of {id}: {line:?}");
    }
    // The same listing from the directory.
    let d = p.weir(&["checkpoints", &p.s(".weir/grow")]);
    d.expect_code(0);
    assert_eq!(d.stdout_str(), text);

    let i = p.weir(&["inspect", "p.toml"]);
    i.expect_code(0);
    let v: serde_json::Value = serde_json::from_slice(&i.stdout).expect("inspect prints JSON");
    assert_eq!(v["id"], 2);
    assert_eq!(v["pipeline"], "grow");
    assert!(v["pipeline_hash"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(v["created_ms"]
        .as_i64()
        .is_some_and(|t| t > 1_600_000_000_000));
    assert_eq!(v["ended"], true);
    assert_eq!(v["finished"], false);
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    for n in ["s", "f", "agg", "all", "aggout"] {
        assert!(names.contains(&n), "node {n} not in {names:?}");
    }
    for n in v["nodes"].as_array().unwrap() {
        assert!(n.get("state").is_some(), "{n}");
    }
    let one = p.weir(&["inspect", &p.s(".weir/grow"), "1"]);
    one.expect_code(0);
    let v1: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(v1["id"], 1);
    assert_eq!(v1["pipeline_hash"], v["pipeline_hash"]);

    p.weir(&["resume", "p.toml", "--at-end", "finish"])
        .expect_code(0);
    let o = p.weir(&["checkpoints", "p.toml"]);
    let last = o
        .stdout_str()
        .lines()
        .find(|l| l.split_whitespace().next() == Some("3"))
        .map(str::to_string);
    assert!(
        last.as_deref().is_some_and(|l| l.contains("final")),
        "{}",
        o.stdout_str()
    );
    let f: serde_json::Value =
        serde_json::from_slice(&p.weir(&["inspect", "p.toml"]).stdout).unwrap();
    assert_eq!(f["finished"], true);
}

/// Two paused runs leave checkpoints 1 and 2; `damage` spoils 2; a finishing resume must fall
/// back to 1 and still produce exactly the output of one run over everything.
pub(crate) fn fallback_case(damage: impl Fn(&std::path::Path)) {
    let p = Proj::new();
    p.write("p.toml", PAUSING);
    let (a, b, c) = (recs(0, 30), recs(30, 60), recs(60, 90));
    p.write("in.jsonl", &a);
    p.weir(&["run", "p.toml"]).expect_code(0);
    p.append("in.jsonl", &b);
    p.weir(&["resume", "p.toml"]).expect_code(0);
    let files = p.ckpts(".weir/grow");
    assert_eq!(files.len(), 2);
    damage(&files[1]);

    // The list is printed; exit 1 says the newest checkpoint is invalid (README).
    let l = p.weir(&["checkpoints", "p.toml"]);
    l.expect_code(1);
    assert!(
        l.stderr.contains("would continue from checkpoint 1"),
        "{}",
        l.stderr
    );
    let text = l.stdout_str();
    let line2 = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("2"))
        .unwrap_or("");
    assert!(
        line2.contains("INVALID"),
        "damaged checkpoint 2 not INVALID:\n{text}"
    );
    let line1 = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or("");
    assert!(
        line1.contains("paused"),
        "checkpoint 1 should still be valid:\n{text}"
    );

    p.append("in.jsonl", &c);
    let o = p.weir(&["resume", "p.toml", "--at-end", "finish"]);
    o.expect_code(0).expect_no_panic();
    assert!(
        o.stderr.contains("warning")
            && (o.stderr.contains("checkpoint 2") || o.stderr.contains("ckpt-0000000002")),
        "no warning about the skipped checkpoint: {}",
        o.stderr
    );
    let (want_all, want_agg) = pausing_expected(&format!("{a}{b}{c}"));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
}

#[test]
fn corrupted_newest_checkpoint_is_skipped_and_resume_uses_the_previous_one() {
    fallback_case(|f| {
        let len = std::fs::metadata(f).unwrap().len() as usize;
        flip_byte(f, len / 2);
    });
}

#[test]
fn truncated_newest_checkpoint_is_skipped_and_resume_uses_the_previous_one() {
    fallback_case(|f| {
        let len = std::fs::metadata(f).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(f)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
}

#[test]
fn resume_from_an_older_checkpoint_id() {
    let p = Proj::new();
    p.write("p.toml", PAUSING);
    let (a, b) = (recs(0, 25), recs(25, 50));
    p.write("in.jsonl", &a);
    p.weir(&["run", "p.toml"]).expect_code(0);
    p.append("in.jsonl", &b);
    p.weir(&["resume", "p.toml"]).expect_code(0);
    p.weir(&["resume", "p.toml", "--from", "1", "--at-end", "finish"])
        .expect_code(0);
    let (want_all, want_agg) = pausing_expected(&format!("{a}{b}"));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
    p.weir(&["resume", "p.toml", "--from", "99"]).expect_code(2);
    // A named checkpoint that is damaged is refused, never loaded; with every checkpoint
    // damaged, resume refuses to start over silently.
    let files = p.ckpts(".weir/grow");
    let first = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("ckpt-0000000001.weir"))
        .unwrap();
    std::fs::write(first, b"not a checkpoint").unwrap();
    let o = p.weir(&["resume", "p.toml", "--from", "1"]);
    o.expect_code(2).expect_no_panic();
    assert!(
        o.stderr.contains("checkpoint 1") && o.stderr.contains("not valid"),
        "{}",
        o.stderr
    );
    for f in &files {
        std::fs::write(f, b"not a checkpoint").unwrap();
    }
    let o = p.weir(&["resume", "p.toml"]);
    o.expect_no_panic();
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("no valid checkpoint"), "{}", o.stderr);
    assert_eq!(
        p.read_str("all.jsonl"),
        want_all,
        "output changed by a refused resume"
    );
}

// Checkpoint settings

#[test]
fn retain_keeps_only_the_newest_complete_checkpoints() {
    let p = Proj::new();
    p.write(
        "p.toml",
        PAUSING.replace(
            "name = \"grow\"\n",
            "name = \"grow\"\n[checkpoint]\nretain = 2\n",
        ),
    );
    let mut input = String::new();
    for i in 0..5 {
        let part = recs(i * 10, i * 10 + 10);
        input.push_str(&part);
        p.append("in.jsonl", &part);
        let args = if i == 0 {
            vec!["run", "p.toml"]
        } else {
            vec!["resume", "p.toml"]
        };
        p.weir(&args).expect_code(0);
    }
    let names: Vec<String> = p
        .ckpts(".weir/grow")
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ckpt-0000000004.weir", "ckpt-0000000005.weir"]);
    p.weir(&["resume", "p.toml", "--at-end", "finish"])
        .expect_code(0);
    assert_eq!(p.read_str("all.jsonl"), pausing_expected(&input).0);
}

#[test]
fn every_records_checkpoints_by_record_count() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "byrec"
[checkpoint]
every_records = 1000
retain = 100
[sources.g]
type = "generate"
count = 6000
rate = 6000.0
seed = 4
[sinks.o]
type = "file"
inputs = ["g"]
path = "out.jsonl"
"#,
    );
    p.weir(&["run", "p.toml", "--stats", &p.s("st.json")])
        .expect_code(0);
    let st = read_stats(&p.p("st.json"));
    let n = st["checkpoints_taken"].as_u64().unwrap();
    // About one per 1000 records (the source is paced, so each completes before the next is
    // due), and a final one.
    assert!(
        (4..=8).contains(&n),
        "6000 records, a checkpoint every 1000: {n} checkpoints: {st}"
    );
    assert_eq!(
        p.ckpts(".weir/byrec").len() as u64,
        n,
        "retain = 100 keeps them all"
    );
    assert_eq!(p.read_str("out.jsonl").lines().count(), 6000);
}
