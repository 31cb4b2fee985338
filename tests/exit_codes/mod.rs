//! Exit codes, and the stdout/stderr discipline: data on stdout, every message on stderr.

use crate::common::*;

// Exit codes, stdout/stderr discipline

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
