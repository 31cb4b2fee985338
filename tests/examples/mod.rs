//! The example pipelines of the repository, against testdata/expected (computed independently by scripts/expected.py).

use crate::common::*;

// The example pipelines of the repository, against testdata/expected (computed independently
// by scripts/expected.py)

pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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
pub(crate) fn examples() -> Proj {
    let p = Proj::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("pipelines"), &p.p("pipelines"));
    copy_dir(&repo.join("testdata"), &p.p("testdata"));
    p
}

pub(crate) fn example_matches(name: &str, outputs: &[&str]) -> Proj {
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
