//! Nested JSON: a source builds only the paths its pipeline reads (`.a.b` keeps `b` of `.a`),
//! skipping the rest with a validating scan, and the results are exactly those of reading
//! whole records: values, errors of expressions on values of the wrong type, repeated keys,
//! escapes, and lines that are invalid only inside a value nobody reads.

use crate::common::*;
use std::path::Path;

/// One line of the data, by number: every shape the scanner must get right.
fn line(i: u32) -> String {
    let m = format!("m{}", i % 5);
    let a = match i % 11 {
        // `.a.b` of a string is an error, as in jq.
        0 => "\"just a string\"".to_string(),
        1 => "null".to_string(),
        // A repeated key inside `.a`: the last value wins.
        2 => format!("{{\"b\":\"first\",\"c\":{},\"b\":\"la\\\"st\"}}", i % 7),
        _ => format!(
            "{{\"x\":{{\"deep\":[1,{{\"b\":\"no\"}},\"\\u00e9\\n\"]}},\"b\":\"v\\\"{i} é\",\"c\":{},\"d\":[{i},\"\\ud83d\\ude80\"]}}",
            i % 7
        ),
    };
    let k = match i % 13 {
        // `.k.l` of an array is an error.
        0 => "[1,2]".to_string(),
        // The wanted key written with an escape.
        1 => format!("{{\"l\":{{\"\\u006d\":\"{m}\",\"o\":1}}}}"),
        _ => format!("{{\"p\":{{\"m\":\"not this\"}},\"l\":{{\"o\":\"x\",\"m\":\"{m}\",\"q\":[true,null]}}}}"),
    };
    match i % 17 {
        // Invalid only inside a value that nobody reads: still a bad line.
        0 => format!("{{\"n\":{i},\"a\":{a},\"k\":{k},\"z\":{{\"q\":\"\\x\"}}}}"),
        1 => format!("{{\"n\":{i},\"a\":{a},\"k\":{k},\"z\":[1,2,]}}"),
        // The whole `a` twice: the last one wins.
        2 => format!("{{\"a\":{{\"b\":\"gone\"}},\"n\":{i},\"k\":{k},\"a\":{a}}}"),
        _ => format!(
            "{{\"s\":\"caf\u{e9} \\\"q\\\" \\t {i}\",\"n\":{i},\"a\":{a},\"meta\":{{\"t\":[{{}},[]]}},\"k\":{k}}}"
        ),
    }
}

const PIPELINE: &str = r#"[sources.in]
type = "file"
path = "in.jsonl"
ON_ERROR
[transforms.f]
type = "filter"
inputs = ["in"]
expr = ".a.c != 3"
[transforms.m]
type = "map"
inputs = ["f"]
expr = "{n, b: .a.b, m: .k.l.m}"
[transforms.agg]
type = "aggregate"
inputs = ["in"]
key = ".k.l.m"
aggs = { n = "count", c = "sum(.a.c)" }
[sinks.o]
type = "file"
inputs = ["m"]
path = "o.jsonl"
[sinks.a]
type = "file"
inputs = ["agg"]
path = "a.jsonl"
"#;

/// The same pipeline with paths pushed down to the source (bad records skipped) and with
/// whole records (a dead-letter file makes the source keep records whole), on one thread and
/// on the decode pool: the outputs are the same bytes.
#[test]
fn nested_paths_read_by_the_pipeline_give_what_whole_records_give() {
    let data: String = (0..6000).map(|i| line(i) + "\n").collect();
    let mut outs = Vec::new();
    for on_error in [
        "on_error = \"skip\"",
        "on_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"",
    ] {
        for pool in ["0", "3"] {
            let p = Proj::new();
            p.write("in.jsonl", &data);
            p.write("p.toml", PIPELINE.replace("ON_ERROR", on_error));
            let o = run_weir_env(
                p.root(),
                &["run", "p.toml"],
                None,
                &[("WEIR_PARSE_THREADS", pool)],
            );
            expect_exit(&o, Some(0));
            outs.push((on_error, pool, p.read_str("o.jsonl"), p.read_str("a.jsonl")));
        }
    }
    for o in &outs[1..] {
        assert!(outs[0].2 == o.2, "map output differs: {} pool {}", o.0, o.1);
        assert!(
            outs[0].3 == o.3,
            "aggregate output differs: {} pool {}",
            o.0,
            o.1
        );
    }
    let out = &outs[0].2;
    // Lines 17k and 17k+1 are bad; `.a.b` of a string (i % 11 == 0) and `.k.l` of an array
    // (i % 13 == 0) are errors; `.a.c == 3` is filtered out.
    let want: Vec<u32> = (0..6000)
        .filter(|i| i % 17 > 1 && i % 11 != 0 && i % 13 != 0)
        .filter(|i| !(i % 11 > 1 && i % 7 == 3))
        .collect();
    assert_eq!(out.lines().count(), want.len(), "{}", truncate(out, 400));
    for (l, i) in out.lines().zip(&want) {
        let b = match i % 11 {
            1 => "null".to_string(),
            2 => "\"la\\\"st\"".to_string(),
            _ => format!("\"v\\\"{i} é\""),
        };
        assert_eq!(l, format!("{{\"n\":{i},\"b\":{b},\"m\":\"m{}\"}}", i % 5));
    }
}

/// The projections a `map` makes by moving the record's own values (`Map::project`), top-level
/// and nested, renamed onto a container's name and sharing a container, against the real
/// `jq` on the same lines (every shape of `line` that is valid JSON: escapes, non-ASCII,
/// repeated keys, paths through a string, an array, `null` and missing fields).
#[test]
fn projections_made_in_place_give_what_jq_gives() {
    let data: String = (0..3000)
        .filter(|i| i % 17 > 1)
        .map(|i| line(i) + "\n")
        .collect();
    for expr in [
        "{n, b: .a.b, m: .k.l.m}",
        "{m: .k.l.m, o: .k.l.o, s, n}",
        "{c: .a.c, d: .a.d, x: .a.x.deep, n}",
        "{a: .n, n: .k.p.m, k: .s}",
    ] {
        let errors = same_as_jq(&data, None, expr);
        if expr.contains(".a.b") || expr.contains(".k.l") {
            assert!(errors > 0, "{expr}: the data reaches jq's errors");
        }
    }
}

/// The same on JSON nobody here wrote: AWS's service models as botocore ships them, with their
/// own escapes (`testdata/real/aws_models.jsonl`: 978 lines of 47 bytes to 92 kB, HTML in
/// strings, `\uXXXX`, regex patterns), behind a filter as in the benchmark's J1.
#[test]
fn projections_of_real_json_give_what_jq_gives() {
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/real/aws_models.jsonl"),
    )
    .unwrap();
    for (filter, expr) in [
        (None, "{kind, name, type, doc: .documentation}"),
        (None, "{name, code: .error.code, status: .error.httpStatusCode}"),
        (None, "{name: .type, type: .name, members}"),
        (None, "{members: .input.shape, input: .members}"),
        (None, "{a: .members.Name.shape, b: .members.Name.documentation, c: .members.Tags.shape, kind}"),
        (None, "{v: .version, id: .metadata.serviceId, proto: .metadata.protocols, name}"),
        (Some(".type == \"string\""), "{name, p: .pattern, max, min}"),
        (Some(".http.method == \"POST\""), "{op: .name, uri: .http.requestUri, in: .input.shape}"),
    ] {
        assert_eq!(same_as_jq(&data, filter, expr), 0, "{expr}");
    }
    // A path through an array: jq's error on exactly the lines with `required`.
    assert_eq!(same_as_jq(&data, None, "{n: .name, e: .required.x}"), 218);
}

/// Runs `[filter |] map expr` on `data` with weir and `select(filter) | expr` with jq, and
/// returns how many lines jq reported an error on. Twice: with a dead-letter file (records
/// read whole), where the output must be jq's text, key order included, and the map's dead
/// letters must be on exactly jq's error lines; and skipping bad records (the source builds
/// only the paths read), where the output must be the same text. Needs `jq` on PATH
/// (`.ci/run` installs it).
fn same_as_jq(data: &str, filter: Option<&str>, expr: &str) -> usize {
    let p = Proj::new();
    p.write("in.jsonl", data);
    let jq_expr = match filter {
        Some(f) => format!("select({f}) | {expr}"),
        None => expr.to_string(),
    };
    let jq = std::process::Command::new("jq")
        .arg("-c")
        .arg(&jq_expr)
        .arg(p.root().join("in.jsonl"))
        .output()
        .expect("jq on PATH");
    let want = String::from_utf8(jq.stdout).unwrap();
    assert!(want.lines().count() > 100, "{expr}: jq gave {}", want.len());
    // jq: "jq: error (at <file>:LINE): Cannot index string with string \"b\"".
    let jq_errs: Vec<u64> = String::from_utf8_lossy(&jq.stderr)
        .lines()
        .filter_map(|l| {
            let at = l.split("(at ").nth(1)?;
            at.split(')').next()?.rsplit(':').next()?.parse().ok()
        })
        .collect();
    let keep = filter.unwrap_or("true");
    for on_error in [
        "on_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"",
        "on_error = \"skip\"",
    ] {
        for old in ["o.jsonl", "bad.jsonl"] {
            let _ = std::fs::remove_file(p.root().join(old));
        }
        p.write(
            "p.toml",
            format!(
                "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n{on_error}\n\
                 [transforms.f]\ntype = \"filter\"\ninputs = [\"in\"]\nexpr = {}\n\
                 [transforms.m]\ntype = \"map\"\ninputs = [\"f\"]\nexpr = {}\n\
                 [sinks.o]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"o.jsonl\"\n",
                serde_json::to_string(keep).unwrap(),
                serde_json::to_string(expr).unwrap()
            ),
        );
        let o = run_weir_env(p.root(), &["run", "--fresh", "p.toml"], None, &[]);
        expect_exit(&o, Some(0));
        let got = p.read_str("o.jsonl");
        if let Some(d) = first_difference(&got, &want) {
            panic!("{expr} ({on_error}): weir and jq differ: {d}");
        }
        if !on_error.contains("dead_letter") {
            continue;
        }
        let bad = if p.exists("bad.jsonl") {
            p.read_str("bad.jsonl")
        } else {
            String::new()
        };
        let mut weir_errs = Vec::new();
        for l in bad.lines() {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(d["node"], "m", "{expr}: {l}");
            let msg = d["error"].as_str().unwrap();
            assert!(msg.starts_with("cannot index "), "{expr}: {l}");
            weir_errs.push(d["line"].as_u64().unwrap());
        }
        assert_eq!(weir_errs, jq_errs, "{expr}: the lines with errors");
    }
    jq_errs.len()
}
