//! What keyed state keeps must come back from a checkpoint exactly: a key too deep for the
//! checkpoint reader is refused when it is built (a bad record naming the limit), never
//! written into a checkpoint that `resume` then fails on; and a computed `-0` (which jq prints
//! as `-0`) is still `-0` after a resume, as in one uninterrupted run.

use crate::common::*;

/// An aggregate over `in.jsonl` keyed by `.x` inside 70 more levels of arrays; `min(.v)`.
fn pipeline(at_end: &str) -> String {
    let key = format!("{}.x{}", "[".repeat(70), "]".repeat(70));
    format!(
        "[sources.s]\ntype = \"file\"\npath = \"in.jsonl\"\nat_end = \"{at_end}\"\n\
         on_error = \"dead_letter\"\ndead_letter = \"dl.jsonl\"\n\
         [transforms.a]\ntype = \"aggregate\"\ninputs = [\"s\"]\nkey = \"{key}\"\n\
         aggs = {{ n = \"count\", lo = \"min(.v * 1)\" }}\n\
         [sinks.o]\ntype = \"file\"\ninputs = [\"a\"]\npath = \"out.jsonl\"\n"
    )
}

/// A record whose `.x` is nested `depth` levels deep, with `v`.
fn record(depth: usize, v: &str) -> String {
    format!(
        "{{\"x\":{}1{},\"v\":{v}}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn a_key_too_deep_for_a_checkpoint_is_a_bad_record_and_resume_gives_back_every_key() {
    // Keys of 70, 150 and 250 levels are kept; those of 320 (input 250 deep, 70 more) are not.
    let first = [
        record(0, "3"),
        record(80, "-0.0"),
        record(250, "2"),
        record(180, "1"),
    ]
    .concat();
    let second = [record(0, "-0.0"), record(80, "5"), record(250, "-0.0")].concat();

    // One uninterrupted run.
    let whole = Proj::new();
    whole.write("in.jsonl", format!("{first}{second}"));
    whole.write("p.toml", pipeline("finish"));
    whole
        .weir(&["run", "-q", "p.toml"])
        .expect_no_panic()
        .expect_code(0);
    let want = whole.read_str("out.jsonl");
    assert_eq!(lines(&want).len(), 3, "{want}");
    assert!(
        want.contains("\"lo\":-0"),
        "a computed -0 prints as jq prints it: {want}"
    );
    let dl = whole.read_str("dl.jsonl");
    assert_eq!(lines(&dl).len(), 2, "{dl}");
    assert!(
        dl.contains("the key is nested deeper than 252 levels"),
        "the dead letter names the limit: {dl}"
    );

    // The same input in two parts, with a checkpoint and a resume between them.
    let p = Proj::new();
    p.write("in.jsonl", &first);
    p.write("p.toml", pipeline("pause"));
    p.weir(&["run", "-q", "p.toml"])
        .expect_no_panic()
        .expect_code(0);
    p.append("in.jsonl", &second);
    p.write("p.toml", pipeline("finish"));
    p.weir(&["resume", "-q", "p.toml"])
        .expect_no_panic()
        .expect_code(0);
    assert_eq!(
        p.read_str("out.jsonl"),
        want,
        "resumed output differs from one run"
    );
    let root = |p: &Proj| p.root().display().to_string();
    assert_eq!(
        p.read_str("dl.jsonl").replace(&root(&p), "ROOT"),
        dl.replace(&root(&whole), "ROOT")
    );
}
