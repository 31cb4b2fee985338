//! Settings refused by `validate` (exit 2, nothing read, nothing written): outputs that are a
//! source's input, state placed outside its directory, durations and restart delays that
//! cannot be honoured; and the way problems are reported (every one, cycles as cycles).

use crate::common::*;

const SRC: &str = "[sources.s]\ntype = \"file\"\npath = \"in.jsonl\"\n";

fn sink(path: &str) -> String {
    format!("[sinks.o]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"{path}\"\n")
}

/// `validate` and `run` both refuse with exit 2 and a message holding every `needles`; the
/// input is untouched.
#[track_caller]
fn refused(p: &Proj, toml: &str, needles: &[&str]) -> String {
    p.write("p.toml", toml);
    let input = b"{\"a\":1}\n{\"a\":2}\n";
    p.write("in.jsonl", input);
    let v = p.weir(&["validate", "p.toml"]);
    v.expect_code(2).expect_no_panic();
    for n in needles {
        assert!(v.stderr.contains(n), "{n:?} not in:\n{}", v.stderr);
    }
    let r = p.weir(&["run", "p.toml"]);
    r.expect_code(2).expect_no_panic();
    assert_eq!(p.read("in.jsonl"), input, "the input was touched");
    v.stderr
}

#[test]
fn a_sink_that_is_the_input_is_refused_however_it_is_spelt() {
    for path in ["in.jsonl", "./sub/../in.jsonl", "link.jsonl"] {
        let p = Proj::new();
        std::fs::create_dir(p.p("sub")).unwrap();
        std::os::unix::fs::symlink("in.jsonl", p.p("link.jsonl")).unwrap();
        let err = refused(
            &p,
            &format!("{SRC}{}", sink(path)),
            &["node 'o'", "source 's'"],
        );
        assert!(err.contains("p.toml:7:"), "{err}");
    }
}

/// The same check holds for a SQLite sink's database file, which would replace the input.
#[test]
fn a_sqlite_database_that_is_the_input_is_refused() {
    let p = Proj::new();
    std::fs::create_dir(p.p("sub")).unwrap();
    let toml = format!(
        "{SRC}[sinks.db]\ntype = \"sqlite\"\ninputs = [\"s\"]\npath = \"./sub/../in.jsonl\"\ntable = \"t\"\n"
    );
    refused(&p, &toml, &["node 'db'", "source 's'"]);
}

#[test]
fn a_dead_letter_file_that_is_an_input_is_refused() {
    let p = Proj::new();
    let toml = "[sources.s]\ntype = \"file\"\npath = \"in.jsonl\"\non_error = \"dead_letter\"\n\
                dead_letter = \"./in.jsonl\"\n"
        .to_string()
        + &sink("out.jsonl");
    refused(&p, &toml, &["node 's'", "dead-letter", "source 's'"]);
}

#[test]
fn a_sink_that_a_glob_source_would_read_is_refused() {
    let p = Proj::new();
    p.write("logs/a.jsonl", "{\"a\":1}\n");
    // The sink's file does not exist yet: the glob would match it once written.
    let toml = "[sources.s]\ntype = \"file\"\npath = \"logs/*.jsonl\"\n".to_string()
        + &sink("logs/out.jsonl");
    refused(&p, &toml, &["node 'o'", "source 's'", "logs/*.jsonl"]);
    assert!(!p.exists("logs/out.jsonl"));
    // Through a link to the directory too.
    std::os::unix::fs::symlink(p.p("logs"), p.p("alias")).unwrap();
    let toml = "[sources.s]\ntype = \"file\"\npath = \"logs/*.jsonl\"\n".to_string()
        + &sink("alias/out.jsonl");
    refused(&p, &toml, &["node 'o'", "source 's'"]);
    // A sink beside the glob, not matched by it, is fine.
    p.write(
        "p.toml",
        "[sources.s]\ntype = \"file\"\npath = \"logs/*.jsonl\"\n".to_string()
            + &sink("logs/out.json"),
    );
    p.weir(&["validate", "p.toml"]).expect_code(0);
}

#[test]
fn name_must_be_a_plain_file_name() {
    let long = "n".repeat(300);
    for name in [
        "../..",
        "..",
        ".",
        "a/b",
        "/abs",
        "x\\u0000y",
        long.as_str(),
        "",
    ] {
        let p = Proj::new();
        let toml = format!("name = \"{name}\"\n{SRC}{}", sink("out.jsonl"));
        refused(&p, &toml, &["p.toml:1:8:", "`name`", "plain file name"]);
        // Nothing was created anywhere near: no state, no lock.
        assert!(!p.exists(".weir"), "{name}");
    }
}

#[test]
fn an_empty_checkpoint_dir_is_refused() {
    let p = Proj::new();
    let toml = format!("[checkpoint]\ndir = \"\"\n{SRC}{}", sink("out.jsonl"));
    refused(&p, &toml, &["p.toml:2:7:", "[checkpoint] dir is empty"]);
    assert!(!p.exists("LOCK"));
}

#[test]
fn durations_that_cannot_be_honoured_are_refused() {
    let cases = [
        ("type = \"dedup\"\nkey = \".a\"\ntime = \".t\"\nttl = \"0s\"", "would drop nothing"),
        (
            "type = \"window\"\ntime = \".t\"\nsize = \"999999999999999h\"\naggs = { n = \"count\" }",
            "longest duration",
        ),
        (
            "type = \"window\"\ntime = \".t\"\nsize = \"0.5ms\"\naggs = { n = \"count\" }",
            "whole number of milliseconds",
        ),
    ];
    for (body, needle) in cases {
        let p = Proj::new();
        let toml = format!(
            "{SRC}[transforms.t]\ninputs = [\"s\"]\n{body}\n[sinks.o]\ntype = \"file\"\ninputs = [\"t\"]\npath = \"out.jsonl\"\n"
        );
        let err = refused(&p, &toml, &["node 't'", needle]);
        // One line per problem, and it says something.
        assert!(err.lines().next().unwrap().len() > 30, "{err}");
    }
}

#[test]
fn restart_backoff_must_be_a_sane_number() {
    for b in ["inf", "1e308", "nan", "-1.0", "0.5", "-inf"] {
        let p = Proj::new();
        let toml = format!(
            "[restart]\nattempts = 2\nbackoff = {b}\n{SRC}{}",
            sink("out.jsonl")
        );
        refused(&p, &toml, &["p.toml:3:11:", "[restart] backoff"]);
    }
    let p = Proj::new();
    let toml = format!("[restart]\ndelay = \"1d\"\n{SRC}{}", sink("out.jsonl"));
    refused(&p, &toml, &["[restart] delay"]);
}

#[test]
fn a_cycle_is_named_as_the_cycle_it_is() {
    let p = Proj::new();
    let toml = format!(
        "{SRC}[transforms.b]\ntype = \"map\"\ninputs = [\"s\", \"c\"]\nexpr = \".\"\n\
         [transforms.c]\ntype = \"map\"\ninputs = [\"b\"]\nexpr = \".\"\n\
         [sinks.z]\ntype = \"file\"\ninputs = [\"c\"]\npath = \"out.jsonl\"\n"
    );
    let err = refused(&p, &toml, &["b -> c -> b"]);
    assert!(!err.contains("-> z"), "{err}");
}

#[test]
fn validate_reports_every_problem_of_a_node() {
    let p = Proj::new();
    let toml = "[sources.s]\ntype = \"file\"\npath = \"in.jsonl\"\nbogus = 1\nother = 2\n\
         [transforms.m]\ntype = \"map\"\ninputs = [\"s\"]\nexpr = \".a |||\"\nextra = 1\n\
         [sinks.o]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"out.jsonl\"\nformat = 7\n";
    let err = refused(
        &p,
        toml,
        &[
            "`bogus`",
            "`other`",
            "`extra`",
            "`expr`",
            "p.toml:15:",
            "5 problems",
        ],
    );
    assert!(!err.contains("missing field"), "{err}");
}

#[test]
fn an_unwritable_state_dir_is_a_usage_error() {
    let p = Proj::new();
    p.write("p.toml", format!("{SRC}{}", sink("out.jsonl")));
    p.write("in.jsonl", "{\"a\":1}\n");
    p.write("file", "not a directory");
    let o = p.weir(&["run", "p.toml", "--state", "file/state"]);
    o.expect_code(2).expect_no_panic();
    assert!(
        o.stderr.contains("state directory") && o.stderr.contains("file/state"),
        "{}",
        o.stderr
    );
    assert!(!p.exists("out.jsonl"));
}
