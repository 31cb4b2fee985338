//! `weir validate` and `weir explain`: every problem at once, named by file, line and node.

use crate::common::*;

// validate / explain

pub(crate) const MANY_PROBLEMS: &str = r#"name = "bad"
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

/// `weir explain` names parse workers only for a source the run reads with them: a JSON lines
/// file read to its end, not gzipped, on a machine with parse threads (explain said they ran
/// the filter of a `.gz`, a `follow` source, and with no threads at all).
#[test]
fn explain_names_parse_workers_only_where_the_run_has_them() {
    let explain = |toml: &str, threads: &str| -> String {
        let p = Proj::new();
        p.write("p.toml", toml);
        let o = run_weir_env(
            p.root(),
            &["explain", "p.toml"],
            None,
            &[("WEIR_PARSE_THREADS", threads)],
        );
        expect_exit(&o, Some(0));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let filter = "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
        [transforms.keep]\ntype = \"filter\"\ninputs = [\"in\"]\nexpr = \".status >= 400\"\n\
        [sinks.o]\ntype = \"file\"\ninputs = [\"keep\"]\npath = \"o.jsonl\"\n";
    let fold = "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
        [transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".user\"\n\
        aggs = { n = \"count\" }\n\
        [sinks.o]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"o.jsonl\"\n";
    for (toml, what) in [
        (filter, "run filter 'keep'"),
        (fold, "counts and sums of 'agg'"),
    ] {
        let text = explain(toml, "2");
        assert!(text.contains("parse workers (2 on this machine)"), "{text}");
        assert!(text.contains(what), "{text}");
        for (toml, threads) in [
            (toml.replace("in.jsonl\"", "in.jsonl.gz\""), "2"),
            (
                toml.replace("in.jsonl\"", "in.jsonl\"\nat_end = \"follow\""),
                "2",
            ),
            (toml.to_string(), "0"),
        ] {
            let text = explain(&toml, threads);
            assert!(!text.contains("parse workers"), "{toml}\n{text}");
        }
    }
}
