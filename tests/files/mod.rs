//! Globs, growing and replaced files, `follow`.

use crate::common::*;
use crate::lifecycle::{pausing_expected, recs, PAUSING};
use std::process::Stdio;
use std::time::Duration;

// Globs, growing and replaced files, follow

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
pub(crate) fn cpu_ticks(pid: i32) -> u64 {
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
    // The bar was drawn (here, on a pipe: `always` means always), so stdout was at risk.
    assert!(
        o.stderr.contains("records (") && o.stderr.contains("weir: 3000 records,"),
        "--progress always drew nothing on stderr: {:?}",
        o.stderr
    );
}
