//! Integration tests: the real `weir` binary on temporary directories, outputs checked byte for
//! byte against values computed here, independently of weir (except where an interrupted run is
//! compared with an uninterrupted one). SPEC: /work/shared/SPEC.md.

mod common;
mod crash;
mod expr_limits;
mod jq_conformance;
mod logs;
mod windows;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// 1-based number of the first line of `text` that contains `needle`.
#[track_caller]
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the pipeline text"))
        + 1
}

/// A dead-letter line as the contract spells it: keys in this order, then `"raw"` or
/// `"record"` (`tail` is that last member, already encoded).
fn dead_letter(
    source: &str,
    file: &str,
    line: u64,
    offset: u64,
    node: &str,
    error: &str,
    tail: &str,
) -> String {
    format!(
        "{{\"source\":{},\"file\":{},\"line\":{line},\"offset\":{offset},\"node\":{},\"error\":{},{tail}}}",
        js(source),
        js(file),
        js(node),
        js(error)
    )
}

/// Checks a dead-letter file against `(line, offset, node, tail)` tuples, ordered by line. The
/// error text is weir's own wording: it must be a non-empty string, and is copied from the
/// actual line into the expected one so everything else is compared byte for byte.
#[track_caller]
fn check_dead_letters(text: &str, source: &str, file: &str, want: &[(u64, u64, &str, String)]) {
    let mut got: Vec<(u64, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("dead letter not JSON: {l}: {e}"));
            (v["line"].as_u64().unwrap_or(0), l.to_string())
        })
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got.len(),
        want.len(),
        "dead-letter file has {} lines, expected {}:\n{text}",
        got.len(),
        want.len()
    );
    for ((_, actual), (line, offset, node, tail)) in got.iter().zip(want) {
        let v: serde_json::Value = serde_json::from_str(actual).unwrap();
        let err = v["error"].as_str().unwrap_or("");
        assert!(
            !err.is_empty(),
            "dead letter without an error message: {actual}"
        );
        let expected = dead_letter(source, file, *line, *offset, node, err, tail);
        assert_eq!(actual, &expected);
    }
}

/// A one-source, one-sink jsonl pipeline: `in.jsonl` -> `out.jsonl`.
const PASS: &str = r#"name = "pass"

[sources.s]
type = "file"
path = "in.jsonl"

[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#;

/// Runs `pipeline` (written to `p.toml`) over `input` (written to `in.<ext>`), expecting exit 0.
fn run_simple(pipeline: &str, input_name: &str, input: &[u8]) -> Proj {
    let p = Proj::new();
    p.write("p.toml", pipeline);
    p.write(input_name, input);
    p.weir(&["run", &p.s("p.toml")])
        .expect_code(0)
        .expect_no_panic();
    p
}

// ---------------------------------------------------------------------------------------------
// Exit codes, stdout/stderr discipline
// ---------------------------------------------------------------------------------------------

#[test]
fn run_writes_compact_jsonl_with_keys_in_order_and_exits_0() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    p.write(
        "in.jsonl",
        "{ \"b\" : 1, \"a\": \"x\" }\n{\"z\":[1, 2],\"y\":{\"q\":null,\"e\":\"\\u00e9\\n\"}}\n{\"t\":true,\"f\":false,\"n\":-12,\"x\":1.5}\n",
    );
    let o = p.weir(&["run", &p.s("p.toml")]);
    o.expect_code(0).expect_no_panic();
    assert!(
        o.stdout.is_empty(),
        "stdout must carry data only: {:?}",
        o.stdout_str()
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"b\":1,\"a\":\"x\"}\n{\"z\":[1,2],\"y\":{\"q\":null,\"e\":\"é\\n\"}}\n{\"t\":true,\"f\":false,\"n\":-12,\"x\":1.5}\n"
    );
}

#[test]
fn stdout_sink_carries_only_data_and_every_message_goes_to_stderr_prefixed() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "pipe"
[sources.stdin]
type = "file"
path = "-"
format = "jsonl"
[transforms.big]
type = "filter"
inputs = ["stdin"]
expr = ".n > 1"
[sinks.stdout]
type = "file"
inputs = ["big"]
path = "-"
"#,
    );
    let o = p.weir_stdin(
        &["run", &p.s("p.toml"), "-v"],
        b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
    );
    o.expect_code(0).expect_no_panic();
    assert_eq!(o.stdout_str(), "{\"n\":2}\n{\"n\":3}\n");
    for l in o.stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            l.starts_with("weir: "),
            "stderr line without `weir: `: {l:?}"
        );
    }
}

#[test]
fn exit_2_for_usage_errors_with_nothing_on_stdout() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    p.write("in.jsonl", "{\"a\":1}\n");
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["frobnicate"],
        vec!["run"],
        vec!["run", "missing.toml"],
        vec!["resume", "missing.toml"],
        vec!["validate", "missing.toml"],
        vec!["run", "p.toml", "--at-end", "sometimes"],
        vec!["run", "p.toml", "--no-such-flag"],
    ];
    for args in cases {
        let o = p.weir(&args);
        assert_eq!(
            o.code, 2,
            "weir {args:?}: expected 2, got {}: {}",
            o.code, o.stderr
        );
        assert!(
            o.stdout.is_empty(),
            "weir {args:?} wrote on stdout: {}",
            o.stdout_str()
        );
        assert!(!o.stderr.trim().is_empty(), "weir {args:?} said nothing");
        o.expect_no_panic();
    }
    let o = p.weir(&["run", "missing.toml"]);
    assert!(o.stderr.starts_with("weir: "), "{}", o.stderr);
    assert!(!p.exists("out.jsonl"), "a usage error ran the pipeline");
}

#[test]
fn exit_2_for_an_invalid_pipeline_reads_and_writes_nothing() {
    let p = Proj::new();
    let text = r#"name = "broken"
[sources.s]
type = "file"
path = "in.jsonl"
[transforms.f]
type = "filter"
inputs = ["s"]
expr = ".a >"
[sinks.o]
type = "file"
inputs = ["f"]
path = "out.jsonl"
speed = 3
"#;
    let pf = p.write("p.toml", text);
    p.write("in.jsonl", "{\"a\":1}\n");
    let o = p.weir(&["run", &p.s("p.toml")]);
    o.expect_code(2).expect_no_panic();
    assert!(o.stdout.is_empty());
    assert!(
        !p.exists("out.jsonl"),
        "the sink was opened although the pipeline is invalid"
    );
    assert!(
        !p.exists(".weir"),
        "state was created although nothing may run"
    );
    let file = pf.to_str().unwrap();
    let problems: Vec<&str> = o.stderr.lines().map(strip_prefix).collect();
    for (needle, node) in [("expr = \".a >\"", "f"), ("speed = 3", "o")] {
        let want = format!("{file}:{}:", line_of(text, needle));
        assert!(
            problems
                .iter()
                .any(|l| l.starts_with(&want) && l.contains(&format!("node '{node}'"))),
            "no problem line starting with {want} for node {node}:\n{}",
            o.stderr
        );
    }
}

#[test]
fn exit_3_names_file_line_and_byte_offset_for_every_kind_of_bad_input() {
    let good = b"{\"ok\":1}\n"; // 9 bytes
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid JSON", b"{\"a\":".to_vec()),
        ("an array", b"[1,2]".to_vec()),
        ("a string", b"\"just a string\"".to_vec()),
        ("null", b"null".to_vec()),
        ("a number", b"42".to_vec()),
        ("trailing garbage", b"{\"a\":1} x".to_vec()),
        ("invalid UTF-8", b"{\"a\":\"\xff\xfe\"}".to_vec()),
        ("NaN", b"{\"a\":NaN}".to_vec()),
    ];
    for (what, bad) in cases {
        let p = Proj::new();
        p.write("p.toml", PASS);
        let mut input = Vec::new();
        input.extend_from_slice(good);
        input.extend_from_slice(good);
        input.extend_from_slice(&bad);
        input.extend_from_slice(b"\n");
        input.extend_from_slice(good);
        p.write("in.jsonl", &input);
        let o = p.weir(&["run", &p.s("p.toml")]);
        assert_eq!(
            o.code, 3,
            "{what}: expected exit 3, got {}: {}",
            o.code, o.stderr
        );
        o.expect_no_panic();
        assert!(o.stdout.is_empty());
        assert!(o.stderr.starts_with("weir: "), "{what}: {}", o.stderr);
        assert!(
            o.stderr.contains("in.jsonl"),
            "{what}: file not named: {}",
            o.stderr
        );
        assert!(
            o.stderr.contains("in.jsonl:3") || o.stderr.contains("line 3"),
            "{what}: line 3 not named: {}",
            o.stderr
        );
        assert!(
            o.stderr.contains("byte offset 18"),
            "{what}: byte offset 18 not named: {}",
            o.stderr
        );
    }
}

#[test]
fn exit_3_for_invalid_utf8_in_lines_format() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.txt"
format = "lines"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    p.write("in.txt", b"ok\nb\xffd\nfine\n");
    let o = p.weir(&["run", &p.s("p.toml")]);
    o.expect_code(3).expect_no_panic();
    assert!(
        o.stderr.contains("in.txt:2") || o.stderr.contains("line 2"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("byte offset 3"), "{}", o.stderr);
}

#[test]
fn exit_3_for_a_runtime_expression_error() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[transforms.m]
type = "map"
inputs = ["s"]
expr = "{b: .a.b}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.jsonl"
"#,
    );
    // `{"a":{"b":1}}\n` is 14 bytes.
    p.write(
        "in.jsonl",
        "{\"a\":{\"b\":1}}\n{\"a\":\"str\"}\n{\"a\":{\"b\":3}}\n",
    );
    let o = p.weir(&["run", &p.s("p.toml")]);
    o.expect_code(3).expect_no_panic();
    assert!(
        o.stderr.contains("in.jsonl:2") || o.stderr.contains("line 2"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("byte offset 14"), "{}", o.stderr);
    assert!(
        o.stderr.contains("'m'") || o.stderr.contains("node m"),
        "node not named: {}",
        o.stderr
    );
}

#[test]
fn exit_1_when_the_pipeline_fails_at_run_time_after_its_restarts() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "fails"
[restart]
attempts = 2
delay = "10ms"
backoff = 1.0
[sources.s]
type = "file"
path = "in.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "outdir"
"#,
    );
    p.write("in.jsonl", "{\"a\":1}\n");
    std::fs::create_dir(p.p("outdir")).unwrap();
    let o = p.weir(&["run", &p.s("p.toml"), "--stats", &p.s("stats.json")]);
    o.expect_code(1).expect_no_panic();
    assert!(o.stdout.is_empty());
    assert!(o.stderr.starts_with("weir: "), "{}", o.stderr);
    let st = read_stats(&p.p("stats.json"));
    assert_eq!(st["attempts"], 3, "1 attempt + 2 restarts: {st}");
    assert_eq!(st["outcome"], "failed", "{st}");
}

// ---------------------------------------------------------------------------------------------
// validate / explain
// ---------------------------------------------------------------------------------------------

const MANY_PROBLEMS: &str = r#"name = "bad"
bogus = 1
[sources.s]
type = "file"
path = "in.jsonl"
colour = "red"
[sources.g]
type = "kafka"
[transforms.f]
type = "filter"
inputs = ["s", "nope"]
expr = ".a >"
[transforms.a]
type = "aggregate"
inputs = ["s"]
aggs = { x = "median(.a)" }
[transforms.p]
type = "parse"
inputs = ["s"]
field = "line"
regex = "(?P<x>["
[transforms.c1]
type = "map"
inputs = ["c2"]
expr = "."
[transforms.c2]
type = "map"
inputs = ["c1"]
expr = "."
[sinks.o]
type = "file"
inputs = ["f", "a", "p"]
path = "o.jsonl"
"#;

#[test]
fn validate_lists_every_problem_at_once_with_file_line_and_node() {
    let p = Proj::new();
    let pf = p.write("bad.toml", MANY_PROBLEMS);
    let file = pf.to_str().unwrap();
    let o = p.weir(&["validate", file]);
    o.expect_code(2).expect_no_panic();
    assert!(
        o.stdout.is_empty(),
        "validate printed on stdout: {}",
        o.stdout_str()
    );
    let problems: Vec<&str> = o.stderr.lines().map(strip_prefix).collect();
    let has = |line: usize, col: Option<usize>, node: Option<&str>, why: &str| {
        let start = match col {
            Some(c) => format!("{file}:{line}:{c}: "),
            None => format!("{file}:{line}:"),
        };
        assert!(
            problems.iter().any(|l| l.starts_with(&start)
                && node.is_none_or(|n| l.contains(&format!("node '{n}'")))),
            "{why}: no problem line starting with {start} (node {node:?}):\n{}",
            o.stderr
        );
    };
    let t = MANY_PROBLEMS;
    has(line_of(t, "bogus"), Some(1), None, "unknown top-level key");
    has(
        line_of(t, "colour"),
        Some(1),
        Some("s"),
        "unknown key in a node",
    );
    has(line_of(t, "kafka"), None, Some("g"), "unknown source type");
    has(line_of(t, "\"nope\""), None, Some("f"), "unknown input");
    has(
        line_of(t, "expr = \".a >\""),
        None,
        Some("f"),
        "bad expression",
    );
    has(line_of(t, "median"), None, Some("a"), "bad aggregate");
    has(line_of(t, "(?P<x>["), None, Some("p"), "bad regex");
    assert!(
        problems.iter().any(|l| l.starts_with(file)
            && l.contains("cycle")
            && (l.contains("node 'c1'") || l.contains("node 'c2'"))),
        "the cycle is not reported:\n{}",
        o.stderr
    );
    // `run` reports the same problems and runs nothing.
    let r = p.weir(&["run", file]);
    r.expect_code(2);
    assert!(!p.exists("o.jsonl") && !p.exists(".weir"));
    for needle in ["colour", "kafka", "nope", "median", "cycle"] {
        assert!(
            r.stderr.contains(needle),
            "run does not report {needle}:\n{}",
            r.stderr
        );
    }
}

#[test]
fn validate_prints_each_problem_on_one_line() {
    // Editors and scripts read `FILE:LINE:COL: ...` one problem per line.
    let p = Proj::new();
    let pf = p.write(
        "bad.toml",
        r#"[sources.s]
type = "file"
path = "in.txt"
[transforms.p]
type = "parse"
inputs = ["s"]
field = "line"
regex = "(?P<x>["
[transforms.f]
type = "filter"
inputs = ["p"]
expr = ".a >"
[sinks.o]
type = "file"
inputs = ["f"]
path = "o.jsonl"
"#,
    );
    let file = pf.to_str().unwrap();
    let o = p.weir(&["validate", file]);
    o.expect_code(2);
    let re = regex::Regex::new(&format!("^{}:\\d+:\\d+: ", regex::escape(file))).unwrap();
    let summary = regex::Regex::new(r"^\d+ problems in ").unwrap();
    let mut n = 0;
    for l in o.stderr.lines().filter(|l| !l.trim().is_empty()) {
        let l = strip_prefix(l);
        if summary.is_match(l) {
            continue;
        }
        assert!(
            re.is_match(l),
            "a line that is not a `FILE:LINE:COL:` problem: {l:?}\nall:\n{}",
            o.stderr
        );
        n += 1;
    }
    assert_eq!(n, 2, "two problems, one line each:\n{}", o.stderr);
}

#[test]
fn validate_of_a_good_pipeline_prints_nothing_on_stdout_and_reads_nothing() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    // The input does not even exist: validate reads no data.
    let o = p.weir(&["validate", &p.s("p.toml")]);
    o.expect_code(0).expect_no_panic();
    assert!(o.stdout.is_empty(), "{}", o.stdout_str());
    assert!(!p.exists("out.jsonl") && !p.exists(".weir"));
}

#[test]
fn explain_prints_nodes_and_edges_and_dot() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "ex"
[sources.src]
type = "file"
path = "in.jsonl"
[transforms.keep]
type = "filter"
inputs = ["src"]
expr = ".a > 1"
[transforms.shape]
type = "map"
inputs = ["keep"]
expr = "{a}"
[sinks.out]
type = "file"
inputs = ["shape", "src"]
path = "out.jsonl"
"#,
    );
    let o = p.weir(&["explain", &p.s("p.toml")]);
    o.expect_code(0).expect_no_panic();
    let text = o.stdout_str();
    for n in ["src", "keep", "shape", "out"] {
        assert!(text.contains(n), "node {n} missing:\n{text}");
    }
    for (a, b) in [
        ("src", "keep"),
        ("keep", "shape"),
        ("shape", "out"),
        ("src", "out"),
    ] {
        assert!(
            text.lines().any(|l| {
                let (x, y) = (l.find(a), l.find("->"));
                matches!((x, y), (Some(x), Some(y)) if x < y && l[y..].contains(b))
            }),
            "edge {a} -> {b} missing:\n{text}"
        );
    }
    let d = p.weir(&["explain", "--dot", &p.s("p.toml")]);
    d.expect_code(0);
    let dot = d.stdout_str();
    assert!(dot.trim_start().starts_with("digraph"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    for (a, b) in [
        ("src", "keep"),
        ("keep", "shape"),
        ("shape", "out"),
        ("src", "out"),
    ] {
        assert!(
            dot.contains(&format!("\"{a}\" -> \"{b}\"")),
            "dot edge {a} -> {b} missing:\n{dot}"
        );
    }
    assert!(
        !p.exists("out.jsonl") && !p.exists(".weir"),
        "explain ran the pipeline"
    );
}

// ---------------------------------------------------------------------------------------------
// on_error: skip, dead_letter; --stats
// ---------------------------------------------------------------------------------------------

#[test]
fn on_error_skip_counts_bad_records_in_stats() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "skippy"
[sources.s]
type = "file"
path = "in.jsonl"
on_error = "skip"
[transforms.m]
type = "map"
inputs = ["s"]
expr = "{id, b: .a.b}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.jsonl"
"#,
    );
    p.write(
        "in.jsonl",
        "{\"id\":1,\"a\":{\"b\":1}}\nnot json\n{\"id\":2,\"a\":\"s\"}\n[]\n{\"id\":3,\"a\":{\"b\":3}}\n",
    );
    let o = p.weir(&["run", &p.s("p.toml"), "--stats", &p.s("stats.json")]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"id\":1,\"b\":1}\n{\"id\":3,\"b\":3}\n"
    );
    let st = read_stats(&p.p("stats.json"));
    assert_eq!(st["pipeline"], "skippy");
    assert_eq!(st["outcome"], "finished");
    assert_eq!(st["attempts"], 1);
    assert!(st["wall_time_s"].as_f64().is_some_and(|t| t >= 0.0), "{st}");
    let s = node_stats(&st, "s");
    let m = node_stats(&st, "m");
    let out = node_stats(&st, "o");
    assert_eq!(s["errors"], 2, "two unparseable lines: {st}");
    assert_eq!(s["records_out"], 3, "{st}");
    assert_eq!(m["errors"], 1, "one record .a.b fails on: {st}");
    assert_eq!(m["records_in"], 3, "{st}");
    assert_eq!(m["records_out"], 2, "{st}");
    assert_eq!(out["records_in"], 2, "{st}");
    assert_eq!(out["errors"], 0, "{st}");
    for n in st["nodes"].as_array().unwrap() {
        for k in [
            "node",
            "kind",
            "records_in",
            "records_out",
            "errors",
            "late",
        ] {
            assert!(!n[k].is_null(), "stats node without {k}: {n}");
        }
        assert_eq!(n["late"], 0);
    }
    assert_eq!(s["kind"], "source");
    assert_eq!(m["kind"], "transform");
    assert_eq!(out["kind"], "sink");
    let cks = st["checkpoints"].as_array().expect("checkpoints array");
    assert!(!cks.is_empty(), "a run checkpoints at its end: {st}");
    assert_eq!(st["checkpoints_taken"], cks.len());
    for c in cks {
        assert!(c["id"].as_u64().is_some(), "{c}");
        assert!(c["duration_ms"].as_f64().is_some(), "{c}");
        assert!(c["bytes"].as_u64().is_some_and(|b| b > 0), "{c}");
    }
    // The newest checkpoint on disk is the last one listed, with its size.
    let files = p.ckpts(".weir/skippy");
    let last = cks.last().unwrap();
    let newest = files.last().expect("a checkpoint file");
    assert!(newest.ends_with(format!("ckpt-{:010}.weir", last["id"].as_u64().unwrap())));
    assert_eq!(
        std::fs::metadata(newest).unwrap().len(),
        last["bytes"].as_u64().unwrap()
    );
}

#[test]
fn on_error_dead_letter_writes_raw_lines_and_rejected_records() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "dl"
[sources.s]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "bad/dead.jsonl"
[transforms.m]
type = "map"
inputs = ["s"]
expr = "{id, name: .u.name}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.jsonl"
"#,
    );
    let parts: Vec<&[u8]> = vec![
        b"{\"id\":1,\"u\":{\"name\":\"ann\"}}\n",       // 1 good
        b"{\"id\":2,\"u\":\"bob\"}\n",                  // 2 .u.name of a string: map rejects it
        b"[1,2]\n",                                     // 3 not an object
        b"\n",                                          // 4 blank: skipped, not an error
        b"{\"id\":3,\n",                                // 5 invalid JSON
        b"{\"id\":4,\"u\":{\"name\":\"\\u00e9\"}}\r\n", // 6 good, CRLF
        b"\xff\xfe{\"id\":5}\n",                        // 7 invalid UTF-8
        b"\"just a string\"\r\n",                       // 8 not an object, CRLF
        b"{\"id\":6,\"u\":{\"name\":\"cy\"}}",          // 9 good, no final newline
    ];
    let mut offsets = Vec::new();
    let mut input = Vec::new();
    for part in &parts {
        offsets.push(input.len() as u64);
        input.extend_from_slice(part);
    }
    p.write("in.jsonl", &input);
    let o = p.weir(&["run", &p.s("p.toml")]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"id\":1,\"name\":\"ann\"}\n{\"id\":4,\"name\":\"é\"}\n{\"id\":6,\"name\":\"cy\"}\n"
    );
    let file = p.s("in.jsonl");
    let raw = |s: &str| format!("\"raw\":{}", js(s));
    check_dead_letters(
        &p.read_str("bad/dead.jsonl"),
        "s",
        &file,
        &[
            (
                2,
                offsets[1],
                "m",
                "\"record\":{\"id\":2,\"u\":\"bob\"}".to_string(),
            ),
            (3, offsets[2], "s", raw("[1,2]")),
            (5, offsets[4], "s", raw("{\"id\":3,")),
            (7, offsets[6], "s", raw("\u{FFFD}\u{FFFD}{\"id\":5}")),
            (8, offsets[7], "s", raw("\"just a string\"")),
        ],
    );
}

#[test]
fn parse_non_matching_record_is_bad_input_and_goes_to_dead_letter() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.log]
type = "file"
path = "app.log"
on_error = "dead_letter"
dead_letter = "dead.jsonl"
[transforms.p]
type = "parse"
inputs = ["log"]
field = "line"
regex = '^(?P<method>\S+) (?P<path>\S+) (?P<status>\d+) (?P<ms>\d+)ms$'
[sinks.o]
type = "file"
inputs = ["p"]
path = "out.jsonl"
"#,
    );
    p.write(
        "app.log",
        "GET /a 200 12ms\ngarbage line\nPOST /b?x=1 500 7ms\n",
    );
    let o = p.weir(&["run", &p.s("p.toml")]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"line\":\"GET /a 200 12ms\",\"method\":\"GET\",\"path\":\"/a\",\"status\":\"200\",\"ms\":\"12\"}\n",
            "{\"line\":\"POST /b?x=1 500 7ms\",\"method\":\"POST\",\"path\":\"/b?x=1\",\"status\":\"500\",\"ms\":\"7\"}\n"
        )
    );
    check_dead_letters(
        &p.read_str("dead.jsonl"),
        "log",
        &p.s("app.log"),
        &[(
            2,
            16,
            "p",
            "\"record\":{\"line\":\"garbage line\"}".to_string(),
        )],
    );
}

#[test]
fn sum_of_a_string_is_bad_input_and_leaves_the_aggregate_untouched() {
    let pipeline = r#"[sources.s]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "dead.jsonl"
[transforms.agg]
type = "aggregate"
inputs = ["s"]
key = ".k"
aggs = { n = "count", t = "sum(.v)" }
[sinks.o]
type = "file"
inputs = ["agg"]
path = "out.jsonl"
"#;
    // `{"k":"a","v":1}\n` is 16 bytes.
    let input = "{\"k\":\"a\",\"v\":1}\n{\"k\":\"a\",\"v\":\"x\"}\n{\"k\":\"b\",\"v\":2}\n{\"k\":\"a\",\"v\":3}\n";
    let p = run_simple(pipeline, "in.jsonl", input.as_bytes());
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"key\":\"a\",\"n\":2,\"t\":4}\n{\"key\":\"b\",\"n\":1,\"t\":2}\n"
    );
    check_dead_letters(
        &p.read_str("dead.jsonl"),
        "s",
        &p.s("in.jsonl"),
        &[(
            2,
            16,
            "agg",
            "\"record\":{\"k\":\"a\",\"v\":\"x\"}".to_string(),
        )],
    );
    // Under on_error = "fail" the same record stops the run with exit 3.
    let q = Proj::new();
    q.write(
        "p.toml",
        pipeline.replace(
            "on_error = \"dead_letter\"\ndead_letter = \"dead.jsonl\"\n",
            "",
        ),
    );
    q.write("in.jsonl", input);
    let o = q.weir(&["run", &q.s("p.toml")]);
    o.expect_code(3);
    assert!(o.stderr.contains("byte offset 16"), "{}", o.stderr);
}

// ---------------------------------------------------------------------------------------------
// Input formats and awkward input
// ---------------------------------------------------------------------------------------------

#[test]
fn jsonl_skips_blank_lines_accepts_crlf_and_a_last_line_without_newline() {
    let p = run_simple(
        PASS,
        "in.jsonl",
        b"{\"a\":1}\r\n\n   \n{\"a\":2}\n\t\n{\"a\":3}",
    );
    assert_eq!(p.read_str("out.jsonl"), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
}

#[test]
fn numbers_print_as_jq_prints_them() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[transforms.m]
type = "map"
inputs = ["s"]
expr = "{a: (10 / 2), b: (1 / 4), c: (.x * 2), d: (.y + 0.5), e: .z, f: (.y / 3)}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.jsonl"
"#,
        "in.jsonl",
        b"{\"x\":1.5,\"y\":2,\"z\":2.0}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"a\":5,\"b\":0.25,\"c\":3,\"d\":2.5,\"e\":2,\"f\":0.6666666666666666}\n"
    );
}

#[test]
fn empty_input_file_finishes_with_an_empty_output() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    p.write("in.jsonl", b"");
    let o = p.weir(&["run", &p.s("p.toml"), "--stats", &p.s("st.json")]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(p.read("out.jsonl"), b"");
    let st = read_stats(&p.p("st.json"));
    assert_eq!(node_stats(&st, "s")["records_out"], 0);
    assert_eq!(node_stats(&st, "s")["errors"], 0);
}

#[test]
fn five_megabyte_lines_good_and_bad() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "dead.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    let big = format!("{{\"big\":\"{}\"}}", "x".repeat(5 << 20));
    let broken = format!("{{\"bad\":\"{}", "y".repeat(5 << 20));
    let input = format!("{big}\n{broken}\n{{\"ok\":true}}\n");
    p.write("in.jsonl", &input);
    let o = p.weir(&["run", &p.s("p.toml")]);
    o.expect_code(0).expect_no_panic();
    let out = p.read_str("out.jsonl");
    assert!(
        out == format!("{big}\n{{\"ok\":true}}\n"),
        "the 5 MB record did not come out unchanged ({} bytes out)",
        out.len()
    );
    let dead = p.read_str("dead.jsonl");
    assert_eq!(dead.lines().count(), 1, "one dead letter");
    let v: serde_json::Value = serde_json::from_str(dead.trim_end()).unwrap();
    let err = v["error"].as_str().unwrap_or("");
    let want = dead_letter(
        "s",
        &p.s("in.jsonl"),
        2,
        big.len() as u64 + 1,
        "s",
        err,
        &format!("\"raw\":{}", js(&broken)),
    );
    assert!(dead.trim_end() == want, "the 5 MB dead letter differs");
}

/// Bytes with no whitespace, no `{` and no DEL, split into non-empty lines.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(n + n / 20);
    let mut since = 0;
    while out.len() < n {
        let b = (r.next_u64() & 0xff) as u8;
        if matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | b'{' | 0x7f) {
            continue;
        }
        out.push(b);
        since += 1;
        if since >= 5 && r.range(0, 60) == 0 {
            out.push(b'\n');
            since = 0;
        }
    }
    out
}

#[test]
fn binary_garbage_never_panics_and_every_line_is_a_bad_record() {
    let data = garbage(42, 64 * 1024);
    let nlines = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "garbage"
[sources.s]
type = "file"
path = "in.bin"
format = "jsonl"
on_error = "skip"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    p.write("in.bin", &data);
    let o = p.weir(&["run", &p.s("p.toml"), "--stats", &p.s("st.json")]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(p.read("out.jsonl"), b"");
    let st = read_stats(&p.p("st.json"));
    assert_eq!(node_stats(&st, "s")["errors"], nlines, "{st}");

    // The same bytes as `lines`: valid UTF-8 lines become records, the others are bad input.
    let q = Proj::new();
    q.write(
        "p.toml",
        r#"name = "garbage-lines"
[sources.s]
type = "file"
path = "in.bin"
format = "lines"
on_error = "skip"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    q.write("in.bin", &data);
    let o = q.weir(&["run", &q.s("p.toml"), "--stats", &q.s("st.json")]);
    o.expect_code(0).expect_no_panic();
    let mut want = String::new();
    let mut bad = 0;
    for l in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match std::str::from_utf8(l) {
            Ok(s) => want.push_str(&format!("{{\"line\":{}}}\n", js(s))),
            Err(_) => bad += 1,
        }
    }
    assert_eq!(q.read_str("out.jsonl"), want);
    let st = read_stats(&q.p("st.json"));
    assert_eq!(node_stats(&st, "s")["errors"], bad, "{st}");
}

#[test]
fn lines_format_strips_crlf_and_reads_a_last_line_without_newline() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.log"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
        "in.log",
        "alpha\r\nbeta \"quoted\" \\ back\n\tgamma — δ".as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"line\":\"alpha\"}\n{\"line\":\"beta \\\"quoted\\\" \\\\ back\"}\n{\"line\":\"\\tgamma — δ\"}\n"
    );
}

#[test]
fn csv_input_infers_canonical_numbers_only() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.csv"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
        "in.csv",
        concat!(
            "id,zip,qty,price,neg,exp,plus,text,empty,dot,frac,under,hex,nan,quote\n",
            "1,007,3,2.50,-4,1e3,+3,\"a,b\",,.5,5.,1_000,0x1F,NaN,\"say \"\"hi\"\"\"\n",
            "20,0,0.5,-1.25E-2,-0.5,12e+1,3 ,x,,1.0e2,0.0,7,,inf,\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"id\":1,\"zip\":\"007\",\"qty\":3,\"price\":2.5,\"neg\":-4,\"exp\":1000,\"plus\":\"+3\",\"text\":\"a,b\",\"empty\":\"\",\"dot\":\".5\",\"frac\":\"5.\",\"under\":\"1_000\",\"hex\":\"0x1F\",\"nan\":\"NaN\",\"quote\":\"say \\\"hi\\\"\"}\n",
            "{\"id\":20,\"zip\":0,\"qty\":0.5,\"price\":-0.0125,\"neg\":-0.5,\"exp\":120,\"plus\":\"3 \",\"text\":\"x\",\"empty\":\"\",\"dot\":100,\"frac\":0,\"under\":7,\"hex\":\"\",\"nan\":\"inf\",\"quote\":\"\"}\n",
        )
    );
}

#[test]
fn csv_infer_types_false_keeps_every_field_a_string() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.csv"
infer_types = false
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
        "in.csv",
        b"a,b,c\n1,2.5,x\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"a\":\"1\",\"b\":\"2.5\",\"c\":\"x\"}\n"
    );
}

#[test]
fn tsv_in_and_tsv_out() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.tsv"
[transforms.m]
type = "map"
inputs = ["s"]
expr = ". + {total: (.qty * .price)}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.tsv"
"#,
        "in.tsv",
        b"item\tqty\tprice\nwidget\t3\t2.5\nsmall gadget\t10\t0.25\n",
    );
    assert_eq!(
        p.read_str("out.tsv"),
        "item\tqty\tprice\ttotal\nwidget\t3\t2.5\t7.5\nsmall gadget\t10\t0.25\t2.5\n"
    );
}

#[test]
fn csv_output_takes_its_header_from_the_first_record_and_quotes_as_rfc4180() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.csv"
"#,
        "in.jsonl",
        concat!(
            "{\"name\":\"widget\",\"qty\":3,\"price\":2.5,\"note\":\"a,b\"}\n",
            "{\"name\":\"gadget\",\"qty\":10,\"price\":5.0,\"note\":\"say \\\"hi\\\"\"}\n",
            "{\"name\":\"thing\",\"qty\":-1,\"price\":0.125,\"note\":\"plain\"}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.csv"),
        "name,qty,price,note\nwidget,3,2.5,\"a,b\"\ngadget,10,5,\"say \"\"hi\"\"\"\nthing,-1,0.125,plain\n"
    );
}

#[test]
fn formats_default_from_the_file_extension() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.c]
type = "file"
path = "a.csv"
[sources.t]
type = "file"
path = "b.tsv"
[sources.l]
type = "file"
path = "c.log"
[sources.x]
type = "file"
path = "d.txt"
[sources.j]
type = "file"
path = "e.ndjson"
[sinks.oc]
type = "file"
inputs = ["c"]
path = "oc.jsonl"
[sinks.ot]
type = "file"
inputs = ["t"]
path = "ot.jsonl"
[sinks.ol]
type = "file"
inputs = ["l"]
path = "ol.jsonl"
[sinks.ox]
type = "file"
inputs = ["x"]
path = "ox.jsonl"
[sinks.oj]
type = "file"
inputs = ["j"]
path = "oj.csv"
[sinks.ojt]
type = "file"
inputs = ["j"]
path = "oj.tsv"
[sinks.ojj]
type = "file"
inputs = ["j"]
path = "oj.out"
"#,
    );
    p.write("a.csv", "k,v\na,1\n");
    p.write("b.tsv", "k\tv\nb\t2\n");
    p.write("c.log", "{\"not\":\"json here\"}\n");
    p.write("d.txt", "plain,text\n");
    p.write("e.ndjson", "{\"k\":\"e\",\"v\":5}\n");
    p.weir(&["run", &p.s("p.toml")])
        .expect_code(0)
        .expect_no_panic();
    assert_eq!(p.read_str("oc.jsonl"), "{\"k\":\"a\",\"v\":1}\n");
    assert_eq!(p.read_str("ot.jsonl"), "{\"k\":\"b\",\"v\":2}\n");
    assert_eq!(
        p.read_str("ol.jsonl"),
        "{\"line\":\"{\\\"not\\\":\\\"json here\\\"}\"}\n"
    );
    assert_eq!(p.read_str("ox.jsonl"), "{\"line\":\"plain,text\"}\n");
    assert_eq!(p.read_str("oj.csv"), "k,v\ne,5\n");
    assert_eq!(p.read_str("oj.tsv"), "k\tv\ne\t5\n");
    assert_eq!(p.read_str("oj.out"), "{\"k\":\"e\",\"v\":5}\n");
}

// ---------------------------------------------------------------------------------------------
// Transforms
// ---------------------------------------------------------------------------------------------

/// `in.jsonl` -> one transform (given as its TOML body) named `t` -> `out.jsonl`.
fn one_transform(body: &str) -> String {
    format!(
        "[sources.s]\ntype = \"file\"\npath = \"in.jsonl\"\n[transforms.t]\ninputs = [\"s\"]\n{body}\n[sinks.o]\ntype = \"file\"\ninputs = [\"t\"]\npath = \"out.jsonl\"\n"
    )
}

#[test]
fn filter_keeps_records_whose_expression_is_truthy_as_in_jq() {
    let p = run_simple(
        &one_transform("type = \"filter\"\nexpr = \".f\""),
        "in.jsonl",
        concat!(
            "{\"id\":1,\"f\":0}\n",
            "{\"id\":2,\"f\":\"\"}\n",
            "{\"id\":3,\"f\":[]}\n",
            "{\"id\":4,\"f\":{}}\n",
            "{\"id\":5,\"f\":false}\n",
            "{\"id\":6,\"f\":null}\n",
            "{\"id\":7}\n",
            "{\"id\":8,\"f\":true}\n",
            "{\"id\":9,\"f\":\"x\"}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"id\":1,\"f\":0}\n",
            "{\"id\":2,\"f\":\"\"}\n",
            "{\"id\":3,\"f\":[]}\n",
            "{\"id\":4,\"f\":{}}\n",
            "{\"id\":8,\"f\":true}\n",
            "{\"id\":9,\"f\":\"x\"}\n",
        )
    );
}

#[test]
fn filter_looks_at_the_first_output_only_and_drops_on_no_output() {
    let p = run_simple(
        &one_transform("type = \"filter\"\nexpr = \".xs[]\""),
        "in.jsonl",
        concat!(
            "{\"id\":1,\"xs\":[]}\n",
            "{\"id\":2,\"xs\":[false,true]}\n",
            "{\"id\":3,\"xs\":[true,false]}\n",
            "{\"id\":4,\"xs\":[null]}\n",
            "{\"id\":5,\"xs\":[1,2,3]}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"id\":3,\"xs\":[true,false]}\n{\"id\":5,\"xs\":[1,2,3]}\n"
    );
}

#[test]
fn filter_with_comparisons_and_boolean_logic() {
    let p = run_simple(
        &one_transform(
            "type = \"filter\"\nexpr = '.status >= 400 and .status < 500 and (.path | startswith(\"/api\"))'",
        ),
        "in.jsonl",
        concat!(
            "{\"status\":404,\"path\":\"/api/x\"}\n",
            "{\"status\":500,\"path\":\"/api/x\"}\n",
            "{\"status\":403,\"path\":\"/login\"}\n",
            "{\"status\":499,\"path\":\"/api\"}\n",
            "{\"status\":\"404\",\"path\":\"/api/y\"}\n",
        )
        .as_bytes(),
    );
    // The string "404" is greater than every number in jq order: not < 500.
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"status\":404,\"path\":\"/api/x\"}\n{\"status\":499,\"path\":\"/api\"}\n"
    );
}

#[test]
fn map_emits_zero_one_or_many_records_in_order() {
    let p = run_simple(
        &one_transform("type = \"map\"\nexpr = \"{id, item: .items[]}\""),
        "in.jsonl",
        concat!(
            "{\"id\":1,\"items\":[\"a\",\"b\",\"c\"]}\n",
            "{\"id\":2,\"items\":[]}\n",
            "{\"id\":3,\"items\":[{\"x\":1}]}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"id\":1,\"item\":\"a\"}\n",
            "{\"id\":1,\"item\":\"b\"}\n",
            "{\"id\":1,\"item\":\"c\"}\n",
            "{\"id\":3,\"item\":{\"x\":1}}\n",
        )
    );
}

#[test]
fn map_builds_objects_with_computed_fields() {
    let p = run_simple(
        &one_transform(
            "type = \"map\"\nexpr = '{user: .u, kb: (.bytes / 1024), ok: (.status < 400), tag: (if .status >= 500 then \"server\" else \"fine\" end)}'",
        ),
        "in.jsonl",
        b"{\"u\":\"ann\",\"bytes\":2048,\"status\":200}\n{\"u\":\"bob\",\"bytes\":512,\"status\":503}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"user\":\"ann\",\"kb\":2,\"ok\":true,\"tag\":\"fine\"}\n{\"user\":\"bob\",\"kb\":0.5,\"ok\":false,\"tag\":\"server\"}\n"
    );
}

#[test]
fn aggregate_final_output_is_sorted_by_key_in_jq_order() {
    let p = run_simple(
        &one_transform("type = \"aggregate\"\nkey = \".k\"\naggs = { n = \"count\" }"),
        "in.jsonl",
        concat!(
            "{\"k\":\"b\"}\n",
            "{\"k\":10}\n",
            "{}\n",
            "{\"k\":true}\n",
            "{\"k\":[1]}\n",
            "{\"k\":\"a\"}\n",
            "{\"k\":false}\n",
            "{\"k\":2.5}\n",
            "{\"k\":{\"x\":1}}\n",
            "{\"k\":-1}\n",
            "{\"k\":\"a\"}\n",
            "{\"k\":10}\n",
            "{\"k\":null}\n",
            "{\"k\":[0,5]}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"key\":null,\"n\":2}\n",
            "{\"key\":false,\"n\":1}\n",
            "{\"key\":true,\"n\":1}\n",
            "{\"key\":-1,\"n\":1}\n",
            "{\"key\":2.5,\"n\":1}\n",
            "{\"key\":10,\"n\":2}\n",
            "{\"key\":\"a\",\"n\":2}\n",
            "{\"key\":\"b\",\"n\":1}\n",
            "{\"key\":[0,5],\"n\":1}\n",
            "{\"key\":[1],\"n\":1}\n",
            "{\"key\":{\"x\":1},\"n\":1}\n",
        )
    );
}

#[test]
fn aggregate_functions_ignore_nulls_and_keep_the_aggs_order() {
    let p = run_simple(
        &one_transform(
            "type = \"aggregate\"\nkey = \".k\"\naggs = { n = \"count\", total = \"sum(.v)\", lo = \"min(.v)\", hi = \"max(.v)\", mean = \"avg(.v)\", f = \"first(.v)\", l = \"last(.v)\", d = \"count_distinct(.s)\" }",
        ),
        "in.jsonl",
        concat!(
            "{\"k\":\"x\",\"v\":null,\"s\":\"p\"}\n",
            "{\"k\":\"y\",\"v\":1.5}\n",
            "{\"k\":\"x\",\"v\":1,\"s\":\"p\"}\n",
            "{\"k\":\"x\",\"s\":\"q\"}\n",
            "{\"k\":\"w\",\"v\":1}\n",
            "{\"k\":\"x\",\"v\":2,\"s\":null}\n",
            "{\"k\":\"y\",\"v\":2}\n",
            "{\"k\":\"x\",\"v\":3,\"s\":\"r\"}\n",
            "{\"k\":\"w\",\"v\":2}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"key\":\"w\",\"n\":2,\"total\":3,\"lo\":1,\"hi\":2,\"mean\":1.5,\"f\":1,\"l\":2,\"d\":0}\n",
            "{\"key\":\"x\",\"n\":5,\"total\":6,\"lo\":1,\"hi\":3,\"mean\":2,\"f\":1,\"l\":3,\"d\":3}\n",
            "{\"key\":\"y\",\"n\":2,\"total\":3.5,\"lo\":1.5,\"hi\":2,\"mean\":1.75,\"f\":1.5,\"l\":2,\"d\":0}\n",
        )
    );
}

#[test]
fn sum_of_integers_stays_an_exact_integer() {
    // 2^53 + 1 is not a double: a float sum would print 9007199254740992.
    let p = run_simple(
        &one_transform("type = \"aggregate\"\naggs = { t = \"sum(.v)\", hi = \"max(.v)\" }"),
        "in.jsonl",
        b"{\"v\":9007199254740991}\n{\"v\":1}\n{\"v\":1}\n{\"v\":0}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"t\":9007199254740993,\"hi\":9007199254740991}\n"
    );
}

#[test]
fn aggregate_without_key_has_no_key_field() {
    let p = run_simple(
        &one_transform("type = \"aggregate\"\naggs = { n = \"count\", total = \"sum(.v)\", mean = \"avg(.v)\" }"),
        "in.jsonl",
        b"{\"v\":1}\n{\"v\":2}\n{\"v\":4}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"n\":3,\"total\":7,\"mean\":2.3333333333333335}\n"
    );
}

#[test]
fn aggregate_emit_updates_after_every_record() {
    let p = run_simple(
        &one_transform(
            "type = \"aggregate\"\nkey = \".k\"\nemit = \"updates\"\naggs = { n = \"count\", total = \"sum(.v)\" }",
        ),
        "in.jsonl",
        b"{\"k\":\"a\",\"v\":1}\n{\"k\":\"b\",\"v\":10}\n{\"k\":\"a\",\"v\":2}\n{\"k\":\"a\"}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"key\":\"a\",\"n\":1,\"total\":1}\n",
            "{\"key\":\"b\",\"n\":1,\"total\":10}\n",
            "{\"key\":\"a\",\"n\":2,\"total\":3}\n",
            "{\"key\":\"a\",\"n\":3,\"total\":3}\n",
        )
    );
}

#[test]
fn window_tumbling_fires_in_event_time_with_late_side_output() {
    // size 10 s, no out-of-orderness, no lateness; event time in epoch seconds.
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[transforms.w]
type = "window"
inputs = ["s"]
key = ".k"
time = ".t"
time_unit = "s"
size = "10s"
out_of_orderness = "0s"
allowed_lateness = "0s"
aggs = { n = "count", total = "sum(.v)" }
[sinks.o]
type = "file"
inputs = ["w"]
path = "out.jsonl"
[sinks.late]
type = "file"
inputs = ["w.late"]
path = "late.jsonl"
"#,
    );
    p.write(
        "in.jsonl",
        concat!(
            "{\"k\":\"b\",\"t\":2,\"v\":1}\n",
            "{\"k\":\"a\",\"t\":1,\"v\":2}\n",
            "{\"k\":\"a\",\"t\":5,\"v\":3}\n",
            "{\"k\":\"a\",\"t\":12,\"v\":4}\n",
            "{\"k\":\"b\",\"t\":3,\"v\":5}\n",
            "{\"k\":\"a\",\"t\":25,\"v\":6}\n",
        ),
    );
    p.weir(&["run", &p.s("p.toml"), "--stats", &p.s("st.json")])
        .expect_code(0)
        .expect_no_panic();
    let st = read_stats(&p.p("st.json"));
    assert_eq!(node_stats(&st, "w")["late"], 1, "one late record: {st}");
    let w = |k: &str, s: &str, e: &str, n: u32, t: u32| {
        format!("{{\"key\":\"{k}\",\"window_start\":\"1970-01-01T00:00:{s}Z\",\"window_end\":\"1970-01-01T00:00:{e}Z\",\"n\":{n},\"total\":{t}}}\n")
    };
    // W = 12 fires [0,10) for a and b (end, start, key order); W = 25 fires [10,20); the end
    // of input fires [20,30).
    let want = [
        w("a", "00", "10", 2, 5),
        w("b", "00", "10", 1, 1),
        w("a", "10", "20", 1, 4),
        w("a", "20", "30", 1, 6),
    ]
    .concat();
    assert_eq!(p.read_str("out.jsonl"), want);
    assert_eq!(p.read_str("late.jsonl"), "{\"k\":\"b\",\"t\":3,\"v\":5}\n");
}

#[test]
fn dedup_drops_keys_seen_within_the_ttl_in_event_time() {
    let p = run_simple(
        &one_transform("type = \"dedup\"\nkey = \".id\"\nttl = \"1m\"\ntime = \".ts\""),
        "in.jsonl",
        concat!(
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:00:00Z\"}\n",
            "{\"id\":\"b\",\"ts\":\"2026-01-01T00:00:10Z\"}\n",
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:00:20Z\"}\n",
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:02:00Z\"}\n",
            "{\"id\":\"b\",\"ts\":\"2026-01-01T00:02:00Z\"}\n",
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:02:30Z\"}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:00:00Z\"}\n",
            "{\"id\":\"b\",\"ts\":\"2026-01-01T00:00:10Z\"}\n",
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:02:00Z\"}\n",
            "{\"id\":\"b\",\"ts\":\"2026-01-01T00:02:00Z\"}\n",
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Fan-out and fan-in
// ---------------------------------------------------------------------------------------------

#[test]
fn fan_out_gives_every_consumer_every_record() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[transforms.even]
type = "filter"
inputs = ["s"]
expr = ".n % 2 == 0"
[transforms.double]
type = "map"
inputs = ["s"]
expr = "{n: (.n * 2)}"
[sinks.a]
type = "file"
inputs = ["s"]
path = "a.jsonl"
[sinks.b]
type = "file"
inputs = ["s"]
path = "b.jsonl"
[sinks.e]
type = "file"
inputs = ["even"]
path = "e.jsonl"
[sinks.d]
type = "file"
inputs = ["double"]
path = "d.jsonl"
"#,
        "in.jsonl",
        b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n",
    );
    let all = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n";
    assert_eq!(p.read_str("a.jsonl"), all);
    assert_eq!(p.read_str("b.jsonl"), all);
    assert_eq!(p.read_str("e.jsonl"), "{\"n\":2}\n{\"n\":4}\n");
    assert_eq!(
        p.read_str("d.jsonl"),
        "{\"n\":2}\n{\"n\":4}\n{\"n\":6}\n{\"n\":8}\n"
    );
}

#[test]
fn union_output_is_deterministic_across_runs_and_keeps_each_inputs_order() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "union"
[checkpoint]
every = "20ms"
[sources.a]
type = "file"
path = "a.jsonl"
[sources.b]
type = "file"
path = "b.jsonl"
[sources.c]
type = "file"
path = "c.jsonl"
[transforms.odd]
type = "filter"
inputs = ["c"]
expr = ".i % 2 == 1"
[transforms.even]
type = "map"
inputs = ["c"]
expr = "select(.i % 2 == 0) | {i, even: true}"
[sinks.ab]
type = "file"
inputs = ["a", "b"]
path = "ab.jsonl"
[sinks.oe]
type = "file"
inputs = ["odd", "even"]
path = "oe.jsonl"
"#,
    );
    let gen = |src: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("{{\"src\":\"{src}\",\"i\":{i}}}"))
            .collect()
    };
    // Large enough to span many batches and checkpoints (every 20 ms): the union's order may
    // depend neither on thread timing nor on where the checkpoints fall.
    let (a, b, c) = (gen("a", 60000), gen("b", 25000), gen("c", 4000));
    p.write("a.jsonl", a.join("\n") + "\n");
    p.write("b.jsonl", b.join("\n") + "\n");
    p.write("c.jsonl", c.join("\n") + "\n");
    let odd: Vec<String> = (0..4000)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("{{\"src\":\"c\",\"i\":{i}}}"))
        .collect();
    let even: Vec<String> = (0..4000)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("{{\"i\":{i},\"even\":true}}"))
        .collect();
    let mut first: Option<(Vec<u8>, Vec<u8>)> = None;
    for run in 0..5 {
        let args = if run == 0 {
            vec!["run", "p.toml"]
        } else {
            vec!["run", "p.toml", "--fresh"]
        };
        p.weir(&args).expect_code(0).expect_no_panic();
        let (ab, oe) = (p.read("ab.jsonl"), p.read("oe.jsonl"));
        match &first {
            None => {
                let ab_l = lines(&String::from_utf8(ab.clone()).unwrap());
                let oe_l = lines(&String::from_utf8(oe.clone()).unwrap());
                assert_eq!(ab_l.len(), a.len() + b.len());
                assert_eq!(oe_l.len(), 4000);
                let from = |v: &[String], tag: &str| -> Vec<String> {
                    v.iter().filter(|l| l.contains(tag)).cloned().collect()
                };
                assert!(
                    from(&ab_l, "\"src\":\"a\"") == a,
                    "input a's order is not kept"
                );
                assert!(
                    from(&ab_l, "\"src\":\"b\"") == b,
                    "input b's order is not kept"
                );
                assert!(
                    from(&oe_l, "\"src\":\"c\"") == odd,
                    "the odd branch's order is not kept"
                );
                assert!(
                    from(&oe_l, "\"even\"") == even,
                    "the even branch's order is not kept"
                );
                first = Some((ab, oe));
            }
            Some((ab0, oe0)) => {
                assert!(
                    ab0 == &ab,
                    "union of two sources differs between run 1 and run {}",
                    run + 1
                );
                assert!(
                    oe0 == &oe,
                    "union of two branches differs between run 1 and run {}",
                    run + 1
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Paths, --state, --set, checkpoints off
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// run / resume life cycle
// ---------------------------------------------------------------------------------------------

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
const PAUSING: &str = r#"name = "grow"
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

fn rec(k: &str, v: i64) -> String {
    format!("{{\"k\":\"{k}\",\"v\":{v}}}\n")
}

/// Records `from..to` of a deterministic stream for the pausing pipeline.
fn recs(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| rec(["a", "b", "c"][i % 3], (i as i64 * 7) % 11 - 1))
        .collect()
}

/// What the pausing pipeline must write for this input after it finishes.
fn pausing_expected(input: &str) -> (String, String) {
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
fn resume_with_a_changed_pipeline_is_refused() {
    let p = Proj::new();
    p.write("p.toml", PAUSING);
    p.write("in.jsonl", recs(0, 10));
    p.weir(&["run", "p.toml"]).expect_code(0);
    let all = snapshot(&p.p("all.jsonl"));
    p.append("in.jsonl", recs(10, 20));

    // A different expression.
    p.write("p.toml", PAUSING.replace(".v >= 0", ".v >= 1"));
    let o = p.weir(&["resume", "p.toml"]);
    o.expect_code(2);
    assert!(
        o.stderr.contains("pipeline"),
        "unclear message: {}",
        o.stderr
    );
    assert_eq!(
        snapshot(&p.p("all.jsonl")),
        all,
        "a refused resume touched the output"
    );

    // Different wiring.
    p.write(
        "p.toml",
        PAUSING.replace(
            "inputs = [\"f\"]\npath = \"all.jsonl\"",
            "inputs = [\"s\"]\npath = \"all.jsonl\"",
        ),
    );
    p.weir(&["resume", "p.toml"]).expect_code(2);
    assert_eq!(snapshot(&p.p("all.jsonl")), all);

    // A different aggregate.
    p.write("p.toml", PAUSING.replace("sum(.v)", "max(.v)"));
    p.weir(&["resume", "p.toml"]).expect_code(2);

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
fn fallback_case(damage: impl Fn(&std::path::Path)) {
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

    let l = p.weir(&["checkpoints", "p.toml"]);
    l.expect_code(0);
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

// ---------------------------------------------------------------------------------------------
// stdin and stdout
// ---------------------------------------------------------------------------------------------

fn pausing_stdin() -> String {
    PAUSING.replace("path = \"in.jsonl\"", "path = \"-\"")
}

#[test]
fn stdin_resume_with_the_same_input_continues_where_it_stopped() {
    let p = Proj::new();
    p.write("p.toml", pausing_stdin());
    let (a, b) = (recs(0, 40), recs(40, 90));
    p.weir_stdin(&["run", "p.toml"], a.as_bytes())
        .expect_code(0)
        .expect_no_panic();
    assert_eq!(p.read_str("all.jsonl"), pausing_expected(&a).0);
    let o = p.weir_stdin(
        &["resume", "p.toml", "--at-end", "finish"],
        format!("{a}{b}").as_bytes(),
    );
    o.expect_code(0).expect_no_panic();
    let (want_all, want_agg) = pausing_expected(&format!("{a}{b}"));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
}

#[test]
fn stdin_resume_with_different_input_is_refused() {
    let p = Proj::new();
    p.write("p.toml", pausing_stdin());
    let a = recs(0, 40);
    p.weir_stdin(&["run", "p.toml"], a.as_bytes())
        .expect_code(0);
    let all = snapshot(&p.p("all.jsonl"));
    // Same length, one byte different, then more.
    let changed = a.replacen("\"k\":\"a\"", "\"k\":\"z\"", 1) + &recs(40, 50);
    let o = p.weir_stdin(&["resume", "p.toml"], changed.as_bytes());
    o.expect_code(2).expect_no_panic();
    assert!(o.stderr.contains("stdin"), "unclear message: {}", o.stderr);
    assert!(
        p.read("all.jsonl") == all.1,
        "a refused resume changed the output"
    );
    // Shorter than what was consumed.
    let o = p.weir_stdin(&["resume", "p.toml"], &a.as_bytes()[..a.len() / 2]);
    o.expect_code(2);
    assert!(
        p.read("all.jsonl") == all.1,
        "a refused resume changed the output"
    );
    // The right input still resumes.
    p.weir_stdin(&["resume", "p.toml", "--at-end", "finish"], a.as_bytes())
        .expect_code(0);
    assert_eq!(p.read_str("all.jsonl"), pausing_expected(&a).0);
    assert_eq!(p.read_str("agg.jsonl"), pausing_expected(&a).1);
}

#[test]
fn stdin_interrupted_by_sigint_resumes_with_the_same_input() {
    let p = Proj::new();
    p.write(
        "p.toml",
        pausing_stdin().replace(
            "name = \"grow\"\n",
            "name = \"grow\"\n[checkpoint]\nevery = \"50ms\"\n",
        ),
    );
    let (a, b) = (recs(0, 100), recs(100, 200));
    let mut bg = p.spawn("first", &["run", "p.toml"], Stdio::piped());
    {
        use std::io::Write;
        let mut stdin = bg.child.stdin.take().unwrap();
        stdin.write_all(a.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let want = pausing_expected(&a).0;
        let seen = wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(p.p("all.jsonl")).unwrap_or_default() == want
        });
        assert!(
            seen,
            "the first 100 records never reached the sink; stderr: {}",
            bg.stderr_str()
        );
        std::thread::sleep(Duration::from_millis(150));
        bg.signal(SIGINT);
        let code = bg.wait_for(Duration::from_secs(20));
        drop(stdin);
        assert_eq!(code, Some(130), "SIGINT: stderr: {}", bg.stderr_str());
    }
    let o = p.weir_stdin(
        &["resume", "p.toml", "--at-end", "finish"],
        format!("{a}{b}").as_bytes(),
    );
    o.expect_code(0).expect_no_panic();
    let (want_all, want_agg) = pausing_expected(&format!("{a}{b}"));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
}

const EXACT_STDOUT: &str = r#"name = "eo"
[checkpoint]
every = "50ms"
[sources.g]
type = "generate"
count = 50
seed = 5
[transforms.m]
type = "map"
inputs = ["g"]
expr = "{seq}"
[sinks.stdout]
type = "file"
inputs = ["m"]
path = "-"
delivery = "exactly-once"
"#;

#[test]
fn exactly_once_stdout_delivers_everything_once_in_a_normal_run() {
    let p = Proj::new();
    p.write("p.toml", EXACT_STDOUT);
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    let want: String = (0..50).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    assert_eq!(o.stdout_str(), want);
    // Resuming the finished run writes nothing more.
    let r = p.weir(&["resume", "p.toml"]);
    r.expect_code(0);
    assert!(r.stdout.is_empty(), "{}", r.stdout_str());
}

// ---------------------------------------------------------------------------------------------
// Crashes, signals, locks
// ---------------------------------------------------------------------------------------------

const CRASH_COUNT: usize = 80000;

const CRASH: &str = r#"name = "crash"
[checkpoint]
every = "50ms"
[sources.g]
type = "generate"
count = 80000
seed = 11
on_error = "dead_letter"
dead_letter = "out/dead.jsonl"
[transforms.proj]
type = "map"
inputs = ["g"]
expr = 'if .status == 404 then {seq, who: .user.name} else {seq, user, path, status, bytes} end'
[transforms.errors]
type = "filter"
inputs = ["proj"]
expr = ".status >= 500"
[transforms.per_path]
type = "aggregate"
inputs = ["proj"]
key = ".path"
aggs = { n = "count", bytes = "sum(.bytes)", users = "count_distinct(.user)", last = "last(.seq)" }
[sinks.all_out]
type = "file"
inputs = ["proj"]
path = "out/all.jsonl"
[sinks.errors_out]
type = "file"
inputs = ["errors"]
path = "out/errors.csv"
[sinks.agg_out]
type = "file"
inputs = ["per_path"]
path = "out/agg.jsonl"
[sources.g2]
type = "generate"
count = 30000
seed = 12
[transforms.tag2]
type = "map"
inputs = ["g2"]
expr = "{seq2: .seq, user}"
[transforms.big]
type = "filter"
inputs = ["proj"]
expr = ".bytes > 40000"
[sinks.mix_out]
type = "file"
inputs = ["errors", "big", "tag2"]
path = "out/mix.jsonl"
"#;

/// Starts `run`, then `resume --or-start`, killing each with SIGKILL at a seeded random
/// moment up to `max_ms`, `kills` times; then resumes until a resume exits 0. Returns how many
/// processes were killed. Each process's stdout goes to `run<i>.stdout`.
fn kill_and_resume(
    p: &Proj,
    kills: usize,
    seed: u64,
    max_ms: u64,
) -> (usize, Vec<std::path::PathBuf>) {
    let mut rng = Rng(seed);
    let mut killed = 0;
    let mut stdouts = Vec::new();
    let mut done = false;
    let mut i = 0;
    while i < kills + 10 {
        let args: Vec<&str> = if i == 0 {
            vec!["run", "p.toml"]
        } else {
            vec!["resume", "p.toml", "--or-start"]
        };
        let mut bg = p.spawn(&format!("run{i}"), &args, Stdio::null());
        stdouts.push(bg.stdout.clone());
        if i < kills {
            let at = rng.range(20, max_ms.max(40));
            match bg.wait_for(Duration::from_millis(at)) {
                Some(code) => {
                    assert_eq!(
                        code,
                        0,
                        "run {i} ended by itself with {code}: {}",
                        bg.stderr_str()
                    );
                    done = true;
                }
                None => {
                    let c = bg.kill9();
                    assert_eq!(c, 128 + SIGKILL, "run {i}: {}", bg.stderr_str());
                    killed += 1;
                }
            }
        } else {
            let code = bg.wait_for(Duration::from_secs(30));
            assert_eq!(
                code,
                Some(0),
                "resume {i} failed or hung (30 s): {}",
                bg.stderr_str()
            );
            assert!(!bg.stderr_str().contains("panicked"), "{}", bg.stderr_str());
            done = true;
        }
        i += 1;
        if done {
            break;
        }
    }
    assert!(done, "never finished");
    (killed, stdouts)
}

/// The crash pipeline without a dead-letter file: generate -> map -> filter / aggregate -> a
/// jsonl, a csv and an aggregate sink.
fn crash_without_dead_letter() -> String {
    CRASH
        .replace(
            "on_error = \"dead_letter\"\ndead_letter = \"out/dead.jsonl\"\n",
            "",
        )
        .replace("{seq, who: .user.name}", "{seq, who: .user}")
}

/// Runs `pipeline` once uninterrupted and once with kill -9 at seeded random moments and
/// resumes; every file in `files` must come out byte-identical. Returns the interrupted project.
fn crash_case(pipeline: &str, files: &[&str], seed: u64, with_dead_letter: bool) {
    let reference = Proj::new();
    reference.write("p.toml", pipeline);
    let t = Instant::now();
    reference
        .weir_t(&["run", "p.toml"], Duration::from_secs(30))
        .expect_code(0)
        .expect_no_panic();
    let full_ms = t.elapsed().as_millis() as u64;

    let p = Proj::new();
    p.write("p.toml", pipeline);
    let (killed, _) = kill_and_resume(&p, 8, seed, full_ms / 4);
    assert!(
        killed >= 4,
        "only {killed} kills landed (a full run takes {full_ms} ms)"
    );
    // Independent checks first (every record exactly once), then byte for byte.
    check_crash_outputs(&p, with_dead_letter);
    let differ: Vec<String> = files
        .iter()
        .filter(|f| reference.read(f) != p.read(f))
        .map(|f| {
            format!(
                "{f} ({} bytes vs {} uninterrupted)",
                p.read(f).len(),
                reference.read(f).len()
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "after {killed} kills these differ from an uninterrupted run: {}",
        differ.join(", ")
    );
}

/// Independent checks of the crash pipeline's outputs: every generated record exactly once.
fn check_crash_outputs(p: &Proj, with_dead_letter: bool) {
    let all = parse_jsonl(&p.read_str("out/all.jsonl"));
    let mut seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "all.jsonl is not in sequence order"
    );
    if with_dead_letter {
        for d in parse_jsonl(&p.read_str("out/dead.jsonl")) {
            assert_eq!(d["node"], "proj");
            assert_eq!(d["source"], "g");
            assert_eq!(d["record"]["status"], 404);
            seqs.push(d["record"]["seq"].as_u64().unwrap());
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs.len(), CRASH_COUNT, "records lost or duplicated");
    assert!(
        seqs.iter().enumerate().all(|(i, s)| *s == i as u64),
        "records lost or duplicated"
    );
    let agg = parse_jsonl(&p.read_str("out/agg.jsonl"));
    let n: u64 = agg.iter().map(|r| r["n"].as_u64().unwrap()).sum();
    assert_eq!(n as usize, all.len());
    let errors = all
        .iter()
        .filter(|r| r["status"].as_u64().is_some_and(|s| s >= 500))
        .count();
    let csv = p.read_str("out/errors.csv");
    assert_eq!(csv.lines().next(), Some("seq,user,path,status,bytes"));
    assert_eq!(csv.lines().count(), errors + 1);
    // The union of three inputs (two branches of one source, one of another source) holds
    // each input's records once, in that input's order.
    let mix = lines(&p.read_str("out/mix.jsonl"));
    let all_lines = lines(&p.read_str("out/all.jsonl"));
    let errs: Vec<String> = all
        .iter()
        .zip(&all_lines)
        .filter(|(r, _)| r["status"].as_u64().is_some_and(|s| s >= 500))
        .map(|(_, l)| l.clone())
        .collect();
    let big: Vec<String> = all
        .iter()
        .zip(&all_lines)
        .filter(|(r, _)| r["bytes"].as_u64().is_some_and(|b| b > 40000))
        .map(|(_, l)| l.clone())
        .collect();
    let tag2: Vec<serde_json::Value> = mix
        .iter()
        .filter(|l| l.contains("\"seq2\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        mix.len(),
        errs.len() + big.len() + tag2.len(),
        "mix.jsonl holds other records"
    );
    assert_eq!(
        tag2.len(),
        30000,
        "the second source's records are not all in the union"
    );
    assert!(
        tag2.iter().enumerate().all(|(i, r)| r["seq2"] == i),
        "second source out of order"
    );
    assert!(
        is_subsequence(&errs, &mix),
        "the errors branch's order is not kept in the union"
    );
    assert!(
        is_subsequence(&big, &mix),
        "the big branch's order is not kept in the union"
    );
}

#[test]
fn kill_9_at_random_moments_then_resume_gives_byte_identical_outputs() {
    crash_case(
        &crash_without_dead_letter(),
        &[
            "out/all.jsonl",
            "out/errors.csv",
            "out/agg.jsonl",
            "out/mix.jsonl",
        ],
        0xC0FFEE,
        false,
    );
}

#[test]
fn kill_9_at_random_moments_with_a_dead_letter_file_gives_byte_identical_outputs() {
    crash_case(
        CRASH,
        &[
            "out/all.jsonl",
            "out/errors.csv",
            "out/agg.jsonl",
            "out/mix.jsonl",
            "out/dead.jsonl",
        ],
        0xFACADE,
        true,
    );
}

#[test]
fn dead_letter_behind_a_transform_does_not_hang_on_a_large_input() {
    // Every tenth line is not JSON; the good ones go through a map. The run takes well under a
    // second when it works.
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[checkpoint]
every = "off"
[sources.s]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "dead.jsonl"
[transforms.m]
type = "map"
inputs = ["s"]
expr = "{i, n: .u.n}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.jsonl"
"#,
    );
    let mut input = String::new();
    let mut want = String::new();
    for i in 0..30000 {
        if i % 10 == 0 {
            input.push_str("{not json\n");
        } else {
            input.push_str(&format!("{{\"i\":{i},\"u\":{{\"n\":{}}}}}\n", i * 2));
            want.push_str(&format!("{{\"i\":{i},\"n\":{}}}\n", i * 2));
        }
    }
    p.write("in.jsonl", &input);
    p.weir_t(&["run", "p.toml"], Duration::from_secs(20))
        .expect_code(0);
    assert!(p.read_str("out.jsonl") == want, "out.jsonl differs");
    assert_eq!(p.read_str("dead.jsonl").lines().count(), 3000);
}

#[test]
fn exactly_once_stdout_survives_kill_9_with_no_line_written_twice() {
    // Paced at 100k records/s, so a run lasts about 0.6 s in a release build too and the
    // kills land while it is writing (unpaced, a release run ends in ~40 ms).
    let pipeline = EXACT_STDOUT
        .replace("count = 50", "count = 60000\nrate = 100000.0")
        .replace("{seq}", "{seq, user}");
    let reference = Proj::new();
    reference.write("p.toml", &pipeline);
    let t = Instant::now();
    let r = reference.weir(&["run", "p.toml"]);
    r.expect_code(0);
    let full_ms = t.elapsed().as_millis() as u64;
    let want = r.stdout;
    let want_lines = String::from_utf8(want.clone()).unwrap();
    assert_eq!(want_lines.lines().count(), 60000);

    let p = Proj::new();
    p.write("p.toml", &pipeline);
    // Kills within 150 ms of each start: the paced input takes at least 600 ms, so at least
    // four runs are killed before one can finish, however slow the reference run was (a busy
    // CI machine once measured it at 1.2 s, drew kills up to 400 ms late, and only two landed).
    let (killed, stdouts) = kill_and_resume(&p, 6, 0xBEEF, (full_ms / 3).min(150));
    assert!(
        killed >= 3,
        "only {killed} kills landed (a full run takes {full_ms} ms)"
    );
    let mut got = Vec::new();
    for s in &stdouts {
        got.extend_from_slice(&std::fs::read(s).unwrap());
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let mut seen = std::collections::HashSet::new();
    for l in text.lines() {
        assert!(seen.insert(l.to_string()), "line written twice: {l}");
    }
    assert!(
        got == want,
        "concatenated stdout of {} runs ({} lines) differs from the uninterrupted stdout (60000 lines)",
        stdouts.len(),
        text.lines().count()
    );
}

const SLOW: &str = r#"name = "slow"
[checkpoint]
every = "100ms"
[sources.g]
type = "generate"
count = 4000
rate = 2000.0
seed = 3
[transforms.agg]
type = "aggregate"
inputs = ["g"]
key = ".status"
aggs = { n = "count", b = "sum(.bytes)" }
[sinks.all]
type = "file"
inputs = ["g"]
path = "all.jsonl"
[sinks.aggout]
type = "file"
inputs = ["agg"]
path = "agg.jsonl"
"#;

fn signal_then_resume(sig: i32, want_code: i32) {
    let p = Proj::new();
    p.write("p.toml", SLOW);
    let mut bg = p.spawn("first", &["run", "p.toml"], Stdio::null());
    assert!(
        wait_until(Duration::from_secs(20), || !p
            .ckpts(".weir/slow")
            .is_empty()),
        "no checkpoint appeared; stderr: {}",
        bg.stderr_str()
    );
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        bg.running(),
        "the slow run ended too early: {}",
        bg.stderr_str()
    );
    bg.signal(sig);
    let code = bg.wait_for(Duration::from_secs(20));
    assert_eq!(code, Some(want_code), "stderr: {}", bg.stderr_str());
    for l in bg.stderr_str().lines().filter(|l| !l.trim().is_empty()) {
        assert!(l.starts_with("weir: "), "stderr line without prefix: {l:?}");
    }
    // A final checkpoint was written: the sink holds a committed prefix of the stream.
    let newest: serde_json::Value =
        serde_json::from_slice(&p.weir(&["inspect", "p.toml"]).stdout).unwrap();
    assert_eq!(newest["finished"], false, "{newest}");
    let partial = parse_jsonl(&p.read_str("all.jsonl"));
    assert!(
        !partial.is_empty() && partial.len() < 4000,
        "{} records before the signal",
        partial.len()
    );
    assert!(
        partial.iter().enumerate().all(|(i, r)| r["seq"] == i),
        "not a prefix of the stream"
    );
    assert_eq!(
        p.read_str("agg.jsonl"),
        "",
        "aggregates fire only at the end"
    );

    let o = p.weir(&["resume", "p.toml", "--set", "sources.g.rate=1000000.0"]);
    o.expect_code(0).expect_no_panic();
    let q = Proj::new();
    q.write("p.toml", SLOW);
    q.weir(&["run", "p.toml", "--set", "sources.g.rate=1000000.0"])
        .expect_code(0);
    assert!(
        p.read("all.jsonl") == q.read("all.jsonl"),
        "all.jsonl differs from an uninterrupted run"
    );
    assert_eq!(p.read_str("agg.jsonl"), q.read_str("agg.jsonl"));
    let all = parse_jsonl(&p.read_str("all.jsonl"));
    assert_eq!(all.len(), 4000);
    assert!(all.iter().enumerate().all(|(i, r)| r["seq"] == i));
    let agg = parse_jsonl(&p.read_str("agg.jsonl"));
    assert_eq!(
        agg.iter().map(|r| r["n"].as_u64().unwrap()).sum::<u64>(),
        4000
    );
}

#[test]
fn sigint_exits_130_after_a_final_checkpoint_and_resume_completes() {
    signal_then_resume(SIGINT, 130);
}

#[test]
fn sigterm_exits_143_after_a_final_checkpoint_and_resume_completes() {
    signal_then_resume(SIGTERM, 143);
}

#[test]
fn a_second_weir_on_a_locked_state_dir_exits_75_at_once() {
    let p = Proj::new();
    p.write(
        "p.toml",
        SLOW.replace("count = 4000\n", "")
            .replace("rate = 2000.0", "rate = 200.0"),
    );
    let mut bg = p.spawn("first", &["run", "p.toml"], Stdio::null());
    assert!(
        wait_until(Duration::from_secs(20), || !p
            .ckpts(".weir/slow")
            .is_empty()),
        "no checkpoint appeared; stderr: {}",
        bg.stderr_str()
    );
    for args in [
        vec!["resume", "p.toml"],
        vec!["resume", "p.toml", "--or-start"],
        vec!["run", "p.toml", "--fresh"],
        vec!["run", "p.toml"],
    ] {
        let o = p.weir(&args);
        assert_eq!(
            o.code, 75,
            "weir {args:?} on a locked state dir: {}",
            o.stderr
        );
        assert!(
            o.elapsed < Duration::from_secs(5),
            "weir {args:?} waited {:?}",
            o.elapsed
        );
        assert!(o.stderr.starts_with("weir: "), "{}", o.stderr);
    }
    let moved = std::fs::read_dir(p.p(".weir/slow"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("old-"));
    assert!(!moved, "--fresh moved the running weir's state aside");
    assert!(bg.running(), "the first weir died: {}", bg.stderr_str());
    bg.signal(SIGTERM);
    assert_eq!(
        bg.wait_for(Duration::from_secs(20)),
        Some(143),
        "{}",
        bg.stderr_str()
    );
    // Once it is gone, the state dir is free again.
    p.weir(&["checkpoints", "p.toml"]).expect_code(0);
}

/// Fault injection through the `fail` crate's FAILPOINTS variable (built with
/// `--features failpoints`): a sink write fails once ("disk full"), the restart strategy
/// restarts from the last checkpoint, `--stats` counts two attempts, and the output is still
/// exactly that of an uninterrupted run.
#[cfg(feature = "failpoints")]
#[test]
fn injected_write_error_restarts_in_process_with_identical_output() {
    let pipeline = crash_without_dead_letter()
        .replace("count = 80000", "count = 20000")
        .replace(
            "name = \"crash\"\n",
            "name = \"crash\"\n[restart]\nattempts = 2\ndelay = \"10ms\"\n",
        );
    let reference = Proj::new();
    reference.write("p.toml", &pipeline);
    reference
        .weir_t(&["run", "p.toml"], Duration::from_secs(30))
        .expect_code(0);

    let p = Proj::new();
    p.write("p.toml", &pipeline);
    let mut cmd = assert_cmd::Command::cargo_bin("weir").unwrap();
    let out = cmd
        .current_dir(p.root())
        .args(["run", "p.toml", "--stats", "st.json"])
        .env("FAILPOINTS", "sink-write-error=2*off->1*return")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code_of(out.status), 0, "{stderr}");
    let st = read_stats(&p.p("st.json"));
    assert_eq!(
        st["attempts"], 2,
        "the write error did not cause one restart: {st}"
    );
    assert_eq!(st["outcome"], "finished", "{st}");
    for f in ["out/all.jsonl", "out/errors.csv", "out/agg.jsonl"] {
        assert!(
            reference.read(f) == p.read(f),
            "{f} differs after an in-process restart"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The example pipelines of the repository, against testdata/expected (computed independently
// by scripts/expected.py)
// ---------------------------------------------------------------------------------------------

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A copy of `pipelines/` and `testdata/`, so the examples write into a temporary `out/`.
fn examples() -> Proj {
    let p = Proj::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("pipelines"), &p.p("pipelines"));
    copy_dir(&repo.join("testdata"), &p.p("testdata"));
    p
}

fn example_matches(name: &str, outputs: &[&str]) -> Proj {
    let p = examples();
    let o = p.weir(&[
        "run",
        &p.s(&format!("pipelines/{name}.toml")),
        "--stats",
        &p.s("st.json"),
    ]);
    o.expect_code(0).expect_no_panic();
    for f in outputs {
        let want = p.read_str(&format!("testdata/expected/{f}"));
        let got = p.read_str(&format!("out/{f}"));
        assert_eq!(got, want, "out/{f} differs from testdata/expected/{f}");
    }
    p
}

#[test]
fn example_errors_per_path() {
    example_matches("errors_per_path", &["errors_per_path.jsonl"]);
}

#[test]
fn example_user_totals_csv() {
    example_matches("user_totals_csv", &["user_totals_csv.csv"]);
}

#[test]
fn example_parse_syslog_skips_the_non_matching_lines() {
    let p = example_matches("parse_syslog", &["parse_syslog.jsonl"]);
    let skipped = p.read_str("testdata/expected/parse_syslog.skipped_lines.txt");
    let n = skipped.split_whitespace().count();
    let st = read_stats(&p.p("st.json"));
    let errors: u64 = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["errors"].as_u64().unwrap())
        .sum();
    assert_eq!(errors as usize, n, "{st}");
}

#[test]
fn example_dead_letter() {
    let p = example_matches("dead_letter", &["dead_letter.jsonl"]);
    let want: Vec<u64> = p
        .read_str("testdata/expected/dead_letter.bad_lines.txt")
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let mut got: Vec<u64> = parse_jsonl(&p.read_str("out/bad.jsonl"))
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn example_fanout_union() {
    let p = example_matches("fanout_union", &["fanout_union.server.jsonl"]);
    let want = lines(&p.read_str("testdata/expected/fanout_union.jsonl"));
    let got = lines(&p.read_str("out/fanout_union.jsonl"));
    let (mut a, mut b) = (want.clone(), got.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b, "the union holds other records");
    let client: Vec<String> = want
        .iter()
        .filter(|l| l.contains("\"client\""))
        .cloned()
        .collect();
    let server: Vec<String> = want
        .iter()
        .filter(|l| l.contains("\"server\""))
        .cloned()
        .collect();
    assert!(
        is_subsequence(&client, &got),
        "the client branch's order is not kept"
    );
    assert!(
        is_subsequence(&server, &got),
        "the server branch's order is not kept"
    );
}

#[test]
fn example_stdin_filter() {
    let p = examples();
    let input = p.read("testdata/access/access-1.jsonl");
    let o = p.weir_stdin(&["run", &p.s("pipelines/stdin_filter.toml")], &input);
    o.expect_code(0).expect_no_panic();
    assert_eq!(
        o.stdout_str(),
        p.read_str("testdata/expected/stdin_filter.jsonl")
    );
}

#[test]
fn example_windows_tumbling() {
    example_matches(
        "windows_tumbling",
        &["windows_tumbling.jsonl", "windows_tumbling.late.jsonl"],
    );
}

#[test]
fn example_session_window() {
    example_matches(
        "session_window",
        &["session_window.jsonl", "session_window.late.jsonl"],
    );
}

// ---------------------------------------------------------------------------------------------
// Globs, growing and replaced files, follow
// ---------------------------------------------------------------------------------------------

#[test]
fn glob_source_reads_files_in_name_order() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "logs/*.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    // Written in another order than their names sort in.
    for name in ["b", "10", "a", "c"] {
        p.write(
            &format!("logs/{name}.jsonl"),
            format!("{{\"f\":\"{name}\",\"n\":1}}\n{{\"f\":\"{name}\",\"n\":2}}\n"),
        );
    }
    p.write("logs/skip.txt", "not matched\n");
    p.weir(&["run", "p.toml"]).expect_code(0).expect_no_panic();
    let want: String = ["10", "a", "b", "c"]
        .iter()
        .map(|n| format!("{{\"f\":\"{n}\",\"n\":1}}\n{{\"f\":\"{n}\",\"n\":2}}\n"))
        .collect();
    assert_eq!(p.read_str("out.jsonl"), want);
}

#[test]
fn pause_with_a_glob_reads_appended_bytes_and_new_files_once() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "globby"
[sources.s]
type = "file"
path = "logs/*.jsonl"
at_end = "pause"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    let line = |f: &str, n: u32| format!("{{\"f\":\"{f}\",\"n\":{n}}}\n");
    p.write("logs/a.jsonl", line("a", 1));
    p.weir(&["run", "p.toml"]).expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), line("a", 1));
    p.append("logs/a.jsonl", line("a", 2));
    p.write("logs/b.jsonl", line("b", 1));
    p.weir(&["resume", "p.toml"]).expect_code(0);
    assert_eq!(
        p.read_str("out.jsonl"),
        [line("a", 1), line("a", 2), line("b", 1)].concat()
    );
    p.append("logs/b.jsonl", line("b", 2));
    p.weir(&["resume", "p.toml", "--at-end", "finish"])
        .expect_code(0);
    assert_eq!(
        p.read_str("out.jsonl"),
        [line("a", 1), line("a", 2), line("b", 1), line("b", 2)].concat()
    );
}

#[test]
fn pause_then_a_replaced_file_is_read_from_its_start() {
    let p = Proj::new();
    p.write("p.toml", PAUSING);
    let first = recs(0, 10);
    p.write("in.jsonl", &first);
    p.weir(&["run", "p.toml"]).expect_code(0);
    // Rotation: a new file (another inode) takes the name.
    let second = recs(100, 130);
    p.write("in.jsonl.new", &second);
    std::fs::rename(p.p("in.jsonl.new"), p.p("in.jsonl")).unwrap();
    p.weir(&["resume", "p.toml", "--at-end", "finish"])
        .expect_code(0)
        .expect_no_panic();
    let (want_all, want_agg) = pausing_expected(&format!("{first}{second}"));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
}

#[test]
fn pause_then_a_truncated_file_is_read_from_its_start() {
    let p = Proj::new();
    p.write("p.toml", PAUSING);
    let first = recs(0, 30);
    p.write("in.jsonl", &first);
    p.weir(&["run", "p.toml"]).expect_code(0);
    // Same inode, shorter, other content (copytruncate).
    let second = recs(200, 205);
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(p.p("in.jsonl"))
        .unwrap();
    p.append("in.jsonl", &second);
    p.weir(&["resume", "p.toml", "--at-end", "finish"])
        .expect_code(0)
        .expect_no_panic();
    let (want_all, want_agg) = pausing_expected(&format!("{first}{second}"));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

#[test]
fn follow_reads_appended_lines_until_sigterm_without_spinning() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "tail"
[checkpoint]
every = "50ms"
[sources.s]
type = "file"
path = "in.jsonl"
at_end = "follow"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    p.write("in.jsonl", "{\"n\":1}\n{\"n\":2}\n");
    let mut bg = p.spawn("follow", &["run", "p.toml"], Stdio::null());
    let has = |want: &str| {
        wait_until(Duration::from_secs(15), || {
            std::fs::read_to_string(p.p("out.jsonl")).unwrap_or_default() == want
        })
    };
    assert!(
        has("{\"n\":1}\n{\"n\":2}\n"),
        "first lines not written: {}",
        bg.stderr_str()
    );
    // Idle: following a quiet file must not burn a core.
    let t0 = cpu_ticks(bg.pid());
    std::thread::sleep(Duration::from_millis(1000));
    let idle = cpu_ticks(bg.pid()) - t0;
    p.append("in.jsonl", "{\"n\":3}\n{\"n\":");
    assert!(
        has("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"),
        "appended line not read: {}",
        bg.stderr_str()
    );
    p.append("in.jsonl", "4}\n");
    assert!(
        has("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n"),
        "completed line not read"
    );
    assert!(bg.running(), "follow ended by itself: {}", bg.stderr_str());
    bg.signal(SIGTERM);
    assert_eq!(
        bg.wait_for(Duration::from_secs(20)),
        Some(143),
        "{}",
        bg.stderr_str()
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n"
    );
    assert!(
        idle < 50,
        "an idle follow used {idle} ticks of CPU in one second"
    );
}

#[test]
fn csv_row_with_the_wrong_number_of_fields_is_bad_input() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.csv"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    p.write("in.csv", "a,b\n1,2\n3\n4,5\n");
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(3).expect_no_panic();
    assert!(
        o.stderr.contains("in.csv:3") || o.stderr.contains("line 3"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("byte offset 8"), "{}", o.stderr);
}

#[test]
fn progress_always_never_reaches_stdout() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.g]
type = "generate"
count = 3000
seed = 2
[transforms.m]
type = "map"
inputs = ["g"]
expr = "{seq}"
[sinks.stdout]
type = "file"
inputs = ["m"]
path = "-"
"#,
    );
    let o = p.weir(&["run", "p.toml", "--progress", "always"]);
    o.expect_code(0);
    let want: String = (0..3000).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    assert!(
        o.stdout_str() == want,
        "stdout holds something else than the 3000 records"
    );
}

// ---------------------------------------------------------------------------------------------
// Checkpoint settings
// ---------------------------------------------------------------------------------------------

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

#[test]
fn validate_reports_bad_values_of_known_keys() {
    let p = Proj::new();
    let text = r#"name = "values"
[checkpoint]
every = "2x"
[sources.s]
type = "file"
path = "in.jsonl"
at_end = "sometimes"
on_error = "explode"
[sources.t]
type = "file"
path = "in2.jsonl"
format = "xml"
[transforms.a]
type = "aggregate"
inputs = ["s", "t"]
emit = "always"
aggs = { n = "count" }
[sinks.o]
type = "file"
inputs = ["a"]
path = "o.jsonl"
"#;
    let pf = p.write("p.toml", text);
    let file = pf.to_str().unwrap();
    let o = p.weir(&["validate", file]);
    o.expect_code(2).expect_no_panic();
    assert!(o.stdout.is_empty());
    let problems: Vec<&str> = o.stderr.lines().map(strip_prefix).collect();
    for (needle, node) in [
        ("\"sometimes\"", Some("s")),
        ("\"xml\"", Some("t")),
        ("\"always\"", Some("a")),
        ("\"2x\"", None),
    ] {
        let start = format!("{file}:{}:", line_of(text, needle));
        assert!(
            problems.iter().any(|l| l.starts_with(&start)
                && node.is_none_or(|n| l.contains(&format!("node '{n}'")))),
            "no problem at {start} for {needle}:\n{}",
            o.stderr
        );
    }
    // A zero interval is refused rather than read as "checkpoint without pause".
    for (setting, needle) in [
        ("every = \"0\"", "\"0\""),
        ("every_records = 0", "every_records"),
    ] {
        let text = text.replace("every = \"2x\"", setting);
        let pf = p.write("p.toml", &text);
        let o = p.weir(&["validate", pf.to_str().unwrap()]);
        o.expect_code(2).expect_no_panic();
        let start = format!("{}:{}:", pf.display(), line_of(&text, needle));
        assert!(
            o.stderr
                .lines()
                .map(strip_prefix)
                .any(|l| l.starts_with(&start) && l.contains("\"off\"")),
            "no problem at {start}:\n{}",
            o.stderr
        );
    }
}

#[test]
fn explain_mentions_channel_capacities_and_parallelism_and_checkpoints_list_offsets() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    let input = "{\"a\":1}\n{\"a\":2}\n";
    p.write("in.jsonl", input);
    let e = p.weir(&["explain", "p.toml"]);
    e.expect_code(0);
    let text = e.stdout_str().to_lowercase();
    assert!(text.contains("capacit"), "no channel capacity:\n{text}");
    assert!(text.contains("parallelism"), "no parallelism:\n{text}");
    p.weir(&["run", "p.toml"]).expect_code(0);
    let c = p.weir(&["checkpoints", "p.toml"]);
    let line = c
        .stdout_str()
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        line.contains(&input.len().to_string()),
        "the source offset ({} bytes) is not listed: {line:?}",
        input.len()
    );
}

#[test]
fn exactly_once_stdout_across_sigint_and_resume() {
    let pipeline = EXACT_STDOUT
        .replace("count = 50", "count = 3000\nrate = 3000.0")
        .replace("every = \"50ms\"", "every = \"100ms\"");
    let p = Proj::new();
    p.write("p.toml", &pipeline);
    let mut bg = p.spawn("first", &["run", "p.toml"], Stdio::null());
    assert!(
        wait_until(Duration::from_secs(20), || !p.ckpts(".weir/eo").is_empty()),
        "no checkpoint appeared: {}",
        bg.stderr_str()
    );
    std::thread::sleep(Duration::from_millis(100));
    bg.signal(SIGINT);
    assert_eq!(
        bg.wait_for(Duration::from_secs(20)),
        Some(130),
        "{}",
        bg.stderr_str()
    );
    let first = bg.stdout_bytes();
    let o = p.weir(&["resume", "p.toml", "--set", "sources.g.rate=1000000.0"]);
    o.expect_code(0);
    let mut got = first.clone();
    got.extend_from_slice(&o.stdout);
    let want: String = (0..3000).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    assert!(
        !first.is_empty() && first.len() < want.len(),
        "the first run should have released part of the output ({} bytes)",
        first.len()
    );
    assert!(
        String::from_utf8_lossy(&got) == want,
        "stdout over both runs is not every record once, in order"
    );
}

/// A CSV file with a quoted newline, a short row and a long row, with `eol` line ends: the good
/// rows come out, the bad ones go to the dead-letter file with their physical line number,
/// byte offset and raw text.
fn csv_bad_rows(eol: &str) {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.csv"
on_error = "dead_letter"
dead_letter = "dead.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    // (text, physical lines it spans)
    let rows = [
        ("a,b".to_string(), 1),
        ("1,\"x\ny\"".to_string(), 2),
        ("2,z".to_string(), 1),
        ("3".to_string(), 1),
        ("4,5,6".to_string(), 1),
        ("7,w".to_string(), 1),
    ];
    let mut input = String::new();
    let mut at = Vec::new(); // (line, offset) of each row
    let mut line = 1;
    for (text, n) in &rows {
        at.push((line, input.len() as u64));
        input.push_str(text);
        input.push_str(eol);
        line += n;
    }
    p.write("in.csv", &input);
    p.weir(&["run", "p.toml"]).expect_code(0).expect_no_panic();
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"a\":1,\"b\":\"x\\ny\"}\n{\"a\":2,\"b\":\"z\"}\n{\"a\":7,\"b\":\"w\"}\n"
    );
    check_dead_letters(
        &p.read_str("dead.jsonl"),
        "s",
        &p.s("in.csv"),
        &[
            (at[3].0, at[3].1, "s", format!("\"raw\":{}", js("3"))),
            (at[4].0, at[4].1, "s", format!("\"raw\":{}", js("4,5,6"))),
        ],
    );
}

#[test]
fn csv_bad_rows_carry_their_line_offset_and_raw_text() {
    csv_bad_rows("\n");
}

#[test]
fn csv_with_crlf_line_ends_reports_the_same_lines_and_offsets() {
    csv_bad_rows("\r\n");
}

/// The final checkpoint is durable but weir dies before releasing the spool: the run is
/// finished, yet its last output has not reached stdout. `resume` must release it (not say
/// "nothing to resume" and drop it).
#[cfg(feature = "failpoints")]
#[test]
fn exactly_once_stdout_released_after_a_crash_right_after_the_final_checkpoint() {
    let p = Proj::new();
    // One checkpoint only: the final one.
    p.write(
        "p.toml",
        EXACT_STDOUT.replace("every = \"50ms\"", "every = \"1h\""),
    );
    let mut cmd = assert_cmd::Command::cargo_bin("weir").unwrap();
    let out = cmd
        .current_dir(p.root())
        .args(["run", "p.toml"])
        .env("FAILPOINTS", "checkpoint-after-write=return")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(
        code_of(out.status),
        0,
        "the crash point did not fire: {stderr}"
    );
    let r = p.weir(&["resume", "p.toml"]);
    r.expect_code(0);
    let mut got = out.stdout.clone();
    got.extend_from_slice(&r.stdout);
    let want: String = (0..50).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&got),
        want,
        "stdout over the crashed run and the resume; resume said: {}",
        r.stderr
    );
}

#[test]
fn map_outputs_that_are_not_objects_are_bad_input() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        "{\"a\":{\"x\":1}}\n{\"a\":2}\n{\"a\":{\"x\":3}}\n",
    );
    p.write(
        "p.toml",
        r#"[checkpoint]
every = "off"
[sources.in]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "bad.jsonl"
[transforms.m]
type = "map"
inputs = ["in"]
expr = ".a"
[sinks.out]
type = "file"
inputs = ["m"]
path = "out.jsonl"
"#,
    );
    p.weir(&["run", "p.toml"]).expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), "{\"x\":1}\n{\"x\":3}\n");
    let bad = p.read_str("bad.jsonl");
    assert_eq!(bad.lines().count(), 1, "{bad}");
    assert!(
        bad.contains("\"line\":2") && bad.contains("map made a number, not an object"),
        "{bad}"
    );
}

/// Runs weir in the project with extra environment variables; it must exit 0.
fn run_with_env(p: &Proj, args: &[&str], env: &[(&str, &str)]) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(p.root())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
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

/// A second SIGINT during the final checkpoint exits at once (130) without waiting for it;
/// the checkpoints already on disk stay valid, and `resume` works from them.
#[test]
fn a_second_sigint_exits_at_once_and_leaves_valid_checkpoints() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "twice"
[checkpoint]
every = "200ms"
[sources.g]
type = "generate"
keys = 5000000
seed = 3
[transforms.per_user]
type = "aggregate"
inputs = ["g"]
key = ".user"
aggs = { n = "count" }
[sinks.o]
type = "file"
inputs = ["per_user"]
path = "o.jsonl"
"#,
    );
    let mut bg = p.spawn("run", &["run", "p.toml"], Stdio::null());
    // Let it build up a few hundred thousand keys, so the final checkpoint takes a while.
    std::thread::sleep(Duration::from_millis(2500));
    bg.signal(2);
    std::thread::sleep(Duration::from_millis(30));
    bg.signal(2);
    let code = bg.wait_for(Duration::from_secs(20));
    let err = bg.stderr_str();
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("stopping at once"), "{err}");
    for c in ckpts_in(&p.p(".weir/twice")) {
        let o = p.weir(&["inspect", ".weir/twice"]);
        o.expect_code(0);
        assert!(c.exists());
    }
    let listing = p.weir(&["checkpoints", "p.toml"]).stdout_str();
    assert!(!listing.contains("INVALID"), "{listing}");
}

/// Binary garbage in every format under every on_error: never a panic; exit 0, or 3 under
/// `fail`, with a message that names the place.
#[test]
fn garbage_in_every_format_never_panics() {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut bytes = Vec::new();
    for i in 0..40_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mostly printable with separators, sometimes raw bytes and quotes.
        let b = match x % 11 {
            0 => b'\n',
            1 => b',',
            2 => b'"',
            3 => b'\t',
            4 => (x >> 8) as u8,
            5 => b'{',
            6 => b'}',
            _ => b'a' + (x % 26) as u8,
        };
        bytes.push(b);
        if i % 5000 == 0 {
            bytes.extend_from_slice(b"\r\n\xff\xfe\x00\n");
        }
    }
    for format in ["jsonl", "csv", "tsv", "lines"] {
        for on_error in ["skip", "dead_letter", "fail"] {
            let p = Proj::new();
            p.write("in.dat", &bytes);
            let dl = if on_error == "dead_letter" {
                "dead_letter = \"bad.jsonl\"\n"
            } else {
                ""
            };
            p.write(
                "p.toml",
                format!(
                    "[checkpoint]\nevery = \"off\"\n[sources.in]\ntype = \"file\"\npath = \"in.dat\"\nformat = \"{format}\"\non_error = \"{on_error}\"\n{dl}[sinks.o]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"o.jsonl\"\n"
                ),
            );
            let o = p.weir(&["run", "p.toml"]);
            o.expect_no_panic();
            if on_error == "fail" {
                // The garbage holds invalid UTF-8 and broken records in every format.
                o.expect_code(3);
                assert!(o.stderr.contains("byte offset"), "{}", o.stderr);
            } else {
                o.expect_code(0);
            }
        }
    }
}

/// A large CSV output (past the sink's internal writer being renewed every MB) has one
/// header and every record once, in order.
#[test]
fn large_csv_output_is_whole_and_in_order() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[checkpoint]
every = "off"
[sources.g]
type = "generate"
count = 60000
seed = 5
[sinks.o]
type = "file"
inputs = ["g"]
path = "o.csv"
"#,
    );
    p.weir(&["run", "p.toml"]).expect_code(0);
    let text = p.read_str("o.csv");
    assert!(text.len() > 3 << 20, "output should pass the 1 MB renewals");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 60001);
    assert_eq!(lines[0], "seq,ts,user,method,path,status,bytes,latency_ms");
    for (i, l) in lines[1..].iter().enumerate() {
        assert!(l.starts_with(&format!("{i},")), "line {} is {l}", i + 2);
        assert_eq!(l.split(',').count(), 8, "line {}: {l}", i + 2);
    }
}

/// What a run of `p.toml` (output `o.jsonl`, dead letters `bad.jsonl`) left.
struct PooledRun {
    out: Vec<u8>,
    /// With the project root replaced by `ROOT`.
    dead: String,
    /// (records in, records out, errors, late) per node.
    counts: Vec<(u64, u64, u64, u64)>,
    /// The final checkpoint as `weir inspect` prints it.
    state: String,
}

/// Runs `p.toml` in `p` with `WEIR_PARSE_THREADS` set to `pool`.
fn run_pooled(p: &Proj, pool: &str) -> PooledRun {
    run_with_env(
        p,
        &["run", "--stats", "s.json", "p.toml"],
        &[("WEIR_PARSE_THREADS", pool)],
    );
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
    let inspect = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["inspect", "p.toml"])
        .current_dir(p.root())
        .output()
        .unwrap();
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
        let mut outs = Vec::new();
        for pool in ["0", "2"] {
            let p = Proj::new();
            p.write("in.jsonl", &data);
            p.write("p.toml", toml);
            outs.push(run_pooled(&p, pool));
        }
        let (a, b) = (&outs[0], &outs[1]);
        assert!(a.out == b.out, "{case}: output differs");
        assert_eq!(a.dead, b.dead, "{case}: dead letters differ");
        assert_eq!(a.counts, b.counts, "{case}: stats differ");
        assert!(!a.state.contains("\"combined\""), "{case}: {}", a.state);
        let folded = b.state.contains("\"combined\":50000");
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
    let mut runs = Vec::new();
    for pool in ["0", "2"] {
        let p = Proj::new();
        p.write("in.jsonl", &data);
        p.write("p.toml", toml);
        runs.push(run_pooled(&p, pool));
    }
    assert!(runs[0].out == runs[1].out, "output differs");
    assert_eq!(runs[0].counts, runs[1].counts, "stats differ");
    assert!(
        runs[1].state.contains("\"combined\":200000"),
        "{}",
        runs[1].state
    );
    assert_eq!(runs[0].out.iter().filter(|&&b| b == b'\n').count(), 150_000);
}

/// The window pipeline of the folding tests: tumbling 10 s windows keyed by `.k` on `.ts`,
/// 3 s out of order, with `checkpoint` put first.
fn window_folding_toml(checkpoint: &str) -> String {
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
fn window_folding_data(late: impl Fn(u32) -> i64, at: u32, odd: &[&str]) -> String {
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
        let mut runs = Vec::new();
        for pool in ["0", "2"] {
            let p = Proj::new();
            p.write("in.jsonl", &data);
            p.write("p.toml", window_folding_toml(c.checkpoint));
            runs.push(run_pooled(&p, pool));
        }
        let (a, b) = (&runs[0], &runs[1]);
        assert!(a.out == b.out, "{case}: output differs");
        assert_eq!(a.dead, b.dead, "{case}: dead letters differ");
        assert_eq!(a.counts, b.counts, "{case}: stats differ");
        assert!(!a.state.contains("\"combined\""), "{case}: {}", a.state);
        // The window's watermark and largest time end where record by record left them.
        let win = |s: &str| -> String {
            let at = s.find("\"node\": \"win\"").expect("the window's state");
            s[at..].lines().nth(1).unwrap_or_default().to_string()
        };
        assert_eq!(win(&a.state), win(&b.state), "{case}");
        if let Some(folds) = c.folds {
            let folded = b.state.contains("\"combined\":60000");
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
        assert!(!b.state.contains("\"combined\""), "{toml}: {}", b.state);
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
        let o = common::run_weir_env(
            p.root(),
            &["explain", "p.toml"],
            None,
            &[("WEIR_PARSE_THREADS", "2")],
        );
        common::expect_exit(&o, Some(0));
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
    let filter = "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
        [transforms.keep]\ntype = \"filter\"\ninputs = [\"in\"]\nexpr = \".status >= 400\"\n\
        [sinks.o]\ntype = \"file\"\ninputs = [\"keep\"]\npath = \"o.jsonl\"\n";
    let text = explain(filter);
    assert!(text.contains("run filter 'keep' on each line"), "{text}");
    // CSV is not read by the parse workers.
    assert!(!explain(&filter.replace("in.jsonl", "in.csv")).contains("parse workers"));
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
        let mut runs = Vec::new();
        for pool in ["0", "2"] {
            let p = Proj::new();
            p.write("in.jsonl", &data);
            p.write("p.toml", &toml);
            runs.push(run_pooled(&p, pool));
        }
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
