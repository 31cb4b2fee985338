//! Bad input under each `on_error`: skip, dead letters, `--stats` counts, garbage that must never panic.

use crate::common::*;

// on_error: skip, dead_letter; --stats

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
