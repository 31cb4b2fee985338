//! Checks and pipelines shared by the topic modules: dead-letter lines as the contract spells
//! them, a pass-through pipeline, line numbers in pipeline text.

use super::*;

/// 1-based number of the first line of `text` that contains `needle`.
#[track_caller]
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the pipeline text"))
        + 1
}

/// A dead-letter line as the contract spells it: keys in this order, then `"raw"` or
/// `"record"` (`tail` is that last member, already encoded).
pub fn dead_letter(
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
pub fn check_dead_letters(text: &str, source: &str, file: &str, want: &[(u64, u64, &str, String)]) {
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
pub const PASS: &str = r#"name = "pass"

[sources.s]
type = "file"
path = "in.jsonl"

[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#;

/// Runs `pipeline` (written to `p.toml`) over `input` (written to `in.<ext>`), expecting exit 0.
pub fn run_simple(pipeline: &str, input_name: &str, input: &[u8]) -> Proj {
    let p = Proj::new();
    p.write("p.toml", pipeline);
    p.write(input_name, input);
    p.weir(&["run", &p.s("p.toml")])
        .expect_code(0)
        .expect_no_panic();
    p
}
