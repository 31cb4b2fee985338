//! Issue 15, expressions: through the real binary (its allocator included), a runaway
//! expression or a hostile record is one bad record under every `on_error` (never a hang, an
//! abort or a lost run), and what a pipeline cannot run (`now`, `halt`, look-around regexes)
//! is refused by `validate` (exit 2).

use crate::common::*;
use std::time::Duration;

fn pipeline(expr: &str, on_error: &str) -> String {
    let dl = if on_error == "dead_letter" {
        "dead_letter = \"dl.jsonl\"\n"
    } else {
        ""
    };
    format!(
        "name = \"limits\"\n[checkpoint]\nevery = \"off\"\n\
         [sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\non_error = \"{on_error}\"\n{dl}\
         [transforms.m]\ntype = \"map\"\ninputs = [\"in\"]\nexpr = {}\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"out.jsonl\"\n",
        serde_json::to_string(expr).unwrap()
    )
}

/// Each (expression, hostile record, message): the record before and after it are fine.
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let big: Vec<u32> = (0..2000).collect();
    let deep = format!("{{\"v\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    vec![
        (
            "{r: [range(.b)]}",
            r#"{"b":"x"}"#.into(),
            "Range bounds must be numeric",
        ),
        (
            "{r: [range(.b)]}",
            r#"{"b":null}"#.into(),
            "Range bounds must be numeric",
        ),
        (
            "{r: (reduce .v[] as $x (null; [., $x]))}",
            format!("{{\"v\":{}}}", serde_json::to_string(&big).unwrap()),
            "nested deeper than 256 levels",
        ),
        (
            "{r: last(range(.n))}",
            r#"{"n":1e18}"#.into(),
            "steps on one record",
        ),
        (
            "{r: (def f: if . > 0 then [. - 1 | f] else 0 end; .n | f)}",
            r#"{"n":1e9}"#.into(),
            "recursion too deep",
        ),
        (
            "{r: (.v | tojson | length)}",
            deep,
            "nested deeper than 256 levels",
        ),
        // Memory the values never show: counted by the binary's allocator (main.rs wraps
        // mimalloc in weir::alloc::Counting; without it this record would take 1.2 GB).
        (
            "{r: (reduce range(.m // 0) as $i ([]; . + [\"x\" * 4000]) | length)}",
            r#"{"m":300000}"#.into(),
            "bytes of memory for one record",
        ),
        // A string doubling inside an array through weir's own `tostring`.
        (
            "{r: (def f: [tostring] | f; if .g then .g | f else 0 end)}",
            r#"{"g":41}"#.into(),
            "string longer than",
        ),
        // `"s" * n` run by jaq (inside a `reduce`): refused before jaq allocates.
        (
            "{r: (.t as $t | reduce 1 as $x (\"\"; \"ab\" * ($t // 1)))}",
            r#"{"t":100000000000}"#.into(),
            "repeat string result too long",
        ),
    ]
}

#[test]
fn a_runaway_expression_is_one_bad_record_under_every_on_error() {
    for (expr, bad, msg) in cases() {
        let input = format!("{{\"b\":2,\"n\":3,\"v\":[]}}\n{bad}\n{{\"b\":1,\"n\":1,\"v\":[]}}\n");
        // `fail`: exit 3 naming the line and the limit.
        let p = Proj::new();
        p.write("in.jsonl", &input);
        p.write("p.toml", pipeline(expr, "fail"));
        let o = p.weir_t(&["run", &p.s("p.toml")], Duration::from_secs(120));
        o.expect_no_panic().expect_code(3);
        assert!(o.stderr.contains(msg), "{expr}: {}", o.stderr);
        assert!(
            o.stderr.contains(":2") || o.stderr.contains("line 2"),
            "{expr}: {}",
            o.stderr
        );
        // `skip` and `dead_letter`: the run goes on, the good records come out.
        for mode in ["skip", "dead_letter"] {
            let p = Proj::new();
            p.write("in.jsonl", &input);
            p.write("p.toml", pipeline(expr, mode));
            let o = p.weir_t(&["run", &p.s("p.toml")], Duration::from_secs(120));
            o.expect_no_panic().expect_code(0);
            assert_eq!(p.read_str("out.jsonl").lines().count(), 2, "{expr} {mode}");
            if mode == "dead_letter" {
                let dl = p.read_str("dl.jsonl");
                let d: serde_json::Value = serde_json::from_str(dl.trim()).unwrap();
                assert_eq!(d["line"], 2, "{dl}");
                assert!(d["error"].as_str().unwrap().contains(msg), "{dl}");
            }
        }
    }
}

#[test]
fn validate_refuses_what_a_pipeline_cannot_run() {
    for (expr, msg) in [
        ("{t: now}", "wall clock"),
        ("{t: (.x | halt_error)}", "halt_error"),
        ("if .x then halt else . end", "halt"),
        ("select(.msg | test(\"(?<=a)b\"))", "look-around"),
        ("{m: (.msg | sub(\"(a)\\\\1\"; \"x\"))}", "backreferences"),
    ] {
        let p = Proj::new();
        p.write("in.jsonl", "{\"x\":1}\n");
        p.write("p.toml", pipeline(expr, "skip"));
        for cmd in ["validate", "run"] {
            let o = p.weir(&[cmd, &p.s("p.toml")]);
            o.expect_no_panic().expect_code(2);
            assert!(
                o.stderr.contains(msg) && o.stderr.contains("'m'"),
                "{expr}: {}",
                o.stderr
            );
        }
        assert!(!p.exists("out.jsonl"), "{expr}: run read data");
    }
}
