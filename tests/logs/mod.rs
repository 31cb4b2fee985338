//! Growing and rotating logs, run from "cron" (`weir resume --or-start` again and again):
//! appends, a partial last line, rotation by rename, compression of the rotated file,
//! truncation in place, removal, kill -9 in between; stdin resume with the right and the
//! wrong input; follow mode with rotation, stopped by a signal.

use crate::common::{spawn_at, Spawn, SIGINT};
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

fn run(dir: &Path, args: &[&str]) -> Output {
    crate::common::run_weir(dir, args, None)
}

/// Runs weir in `dir` with `input` on its stdin.
fn feed(dir: &Path, args: &[&str], input: impl AsRef<[u8]>) -> Output {
    crate::common::run_weir_stdin(dir, args, input)
}

fn cron(dir: &Path) -> String {
    let o = run(dir, &["-v", "resume", "--or-start", "p.toml"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{err}");
    err
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn lines_out(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("out.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["line"].as_str().unwrap().to_string()
        })
        .collect()
}

fn pipeline(dir: &Path) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(
        dir.join("p.toml"),
        r#"name = "rot"
[sources.log]
type = "file"
path = "logs/app.log*"
format = "lines"
at_end = "pause"
[sinks.out]
type = "file"
inputs = ["log"]
path = "out.jsonl"
"#,
    )
    .unwrap();
}

#[test]
fn cron_runs_read_each_byte_once_across_rotation_compression_truncation_and_removal() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pipeline(dir);
    let log = dir.join("logs/app.log");
    let mut want: Vec<String> = Vec::new();
    let add = |text: &str, want: &mut Vec<String>| {
        append(&log, text);
        want.extend(text.lines().map(str::to_string));
    };

    // 1. Two lines, then a run.
    add("one\ntwo\n", &mut want);
    cron(dir);
    // 2. A run with nothing new reads nothing.
    cron(dir);
    assert_eq!(lines_out(dir), want);
    // 3. A partial last line is left until it is complete.
    append(&log, "thr");
    cron(dir);
    assert_eq!(lines_out(dir), want);
    append(&log, "ee\nfour\n");
    want.push("three".into());
    want.push("four".into());
    cron(dir);
    assert_eq!(lines_out(dir), want);
    // 4. More lines, then rotation by rename and a new file; the rotated file also gets a
    // last line written after the rename (as a writer holding it open would).
    append(&log, "five\n");
    std::fs::rename(&log, dir.join("logs/app.log.1")).unwrap();
    append(&dir.join("logs/app.log.1"), "six\n");
    add("seven\n", &mut want);
    let err = cron(dir);
    want.retain(|l| l != "seven");
    want.extend(["five", "six", "seven"].map(String::from));
    assert_eq!(lines_out(dir), want, "{err}");
    assert!(err.contains("is now"), "rotation not reported: {err}");
    // 5. The rotated file is compressed (a new inode, same content): not read again.
    let plain = std::fs::read(dir.join("logs/app.log.1")).unwrap();
    let gz = std::fs::File::create(dir.join("logs/app.log.1.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    enc.write_all(&plain).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(dir.join("logs/app.log.1")).unwrap();
    add("eight\n", &mut want);
    let err = cron(dir);
    assert_eq!(lines_out(dir), want, "{err}");
    // 6. Truncated in place (copytruncate): read again from the start, with a warning.
    std::fs::write(&log, "").unwrap();
    add("nine after truncation\n", &mut want);
    let err = cron(dir);
    assert!(err.contains("truncated"), "{err}");
    assert_eq!(lines_out(dir), want, "{err}");
    // 7. The old compressed file is removed: forgotten quietly (it was read to the end).
    std::fs::remove_file(dir.join("logs/app.log.1.gz")).unwrap();
    add("ten\n", &mut want);
    let err = cron(dir);
    assert!(!err.contains("bytes lost"), "{err}");
    assert_eq!(lines_out(dir), want, "{err}");
}

#[test]
fn cron_with_kill_9_in_between_reads_everything_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pipeline(dir);
    std::fs::write(
        dir.join("p.toml"),
        std::fs::read_to_string(dir.join("p.toml"))
            .unwrap()
            .replace(
                "name = \"rot\"",
                "name = \"rot\"\n[checkpoint]\nevery = \"5ms\"",
            ),
    )
    .unwrap();
    let log = dir.join("logs/app.log");
    let mut want = Vec::new();
    let mut n = 0;
    for round in 0..6 {
        let mut text = String::new();
        for _ in 0..20_000 {
            n += 1;
            text.push_str(&format!("event {n}\n"));
            want.push(format!("event {n}"));
        }
        append(&log, &text);
        if round == 3 {
            let rotated = dir.join("logs/app.log.1");
            let _ = std::fs::remove_file(&rotated);
            std::fs::rename(&log, &rotated).unwrap();
        }
        // Start a run and kill it part way; the next cron run picks up from its checkpoint.
        let mut bg = spawn_at(
            dir,
            "killed",
            &["resume", "-q", "--or-start", "p.toml"],
            Spawn::default(),
        );
        std::thread::sleep(std::time::Duration::from_millis(40 + 25 * round));
        if round == 0 {
            // A checkpoint before the rotation: a first run takes the files in name order
            // (`app.log` before `app.log.1`), which a loaded machine reached when every run
            // was killed before its first checkpoint.
            crate::common::wait_until(std::time::Duration::from_secs(20), || {
                !crate::common::ckpts_in(&dir.join(".weir/rot")).is_empty()
            });
        }
        bg.kill9();
    }
    cron(dir);
    let got = lines_out(dir);
    assert_eq!(got.len(), want.len(), "lines read more or less than once");
    assert!(got == want, "lines out of order or changed");
}

#[test]
fn a_file_removed_before_it_was_read_fully_is_reported_with_the_bytes_lost() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pipeline(dir);
    let log = dir.join("logs/app.log");
    // The newest file ends with a partial line, left unread for its writer to finish...
    append(&log, "a\npartial");
    cron(dir);
    assert_eq!(lines_out(dir), ["a"]);
    // ...but it is deleted instead, and a new file starts.
    std::fs::remove_file(&log).unwrap();
    append(&log, "c\n");
    let err = cron(dir);
    assert!(err.contains("7 bytes lost"), "{err}");
    assert_eq!(lines_out(dir), ["a", "c"]);
}

#[test]
fn stdin_resume_continues_with_the_same_input_and_refuses_other_input() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("p.toml"),
        r#"name = "s"
[sources.in]
type = "file"
path = "-"
format = "lines"
at_end = "pause"
[sinks.out]
type = "file"
inputs = ["in"]
path = "out.jsonl"
"#,
    )
    .unwrap();
    let o = feed(dir, &["run", "p.toml"], b"a\nb\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The same bytes and more: only the new lines are read.
    let o = feed(dir, &["resume", "p.toml"], b"a\nb\nc\nd\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(lines_out(dir), ["a", "b", "c", "d"]);
    // Different bytes: refused with exit 2, nothing written.
    let o = feed(dir, &["resume", "p.toml"], b"X\nb\nc\nd\ne\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("stdin differs"), "{err}");
    assert_eq!(lines_out(dir), ["a", "b", "c", "d"]);
    // Stdin from a regular file works the same way.
    std::fs::write(dir.join("in.txt"), b"a\nb\nc\nd\ne\n").unwrap();
    let mut bg = spawn_at(
        dir,
        "from-file",
        &["resume", "p.toml"],
        Spawn {
            stdin: Some(Stdio::from(
                std::fs::File::open(dir.join("in.txt")).unwrap(),
            )),
            ..Spawn::default()
        },
    );
    assert_eq!(bg.wait(), 0, "{}", bg.stderr_str());
    assert_eq!(lines_out(dir), ["a", "b", "c", "d", "e"]);
}

/// Waits (up to 20 s) until the output holds `n` lines; follow flushes at each checkpoint.
fn wait_for_lines(dir: &Path, n: usize) -> Vec<String> {
    let t = std::time::Instant::now();
    loop {
        let got = lines_out(dir);
        if got.len() >= n || t.elapsed() > std::time::Duration::from_secs(20) {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn follow_reads_growth_and_rotation_until_a_signal() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pipeline(dir);
    std::fs::write(
        dir.join("p.toml"),
        std::fs::read_to_string(dir.join("p.toml"))
            .unwrap()
            .replace(
                "name = \"rot\"",
                "name = \"rot\"\n[checkpoint]\nevery = \"100ms\"",
            ),
    )
    .unwrap();
    let log = dir.join("logs/app.log");
    append(&log, "a1\n");
    let mut bg = spawn_at(
        dir,
        "follow",
        &["run", "-q", "--at-end", "follow", "p.toml"],
        Spawn::default(),
    );
    assert_eq!(wait_for_lines(dir, 1), ["a1"]);
    append(&log, "a2\n");
    assert_eq!(wait_for_lines(dir, 2), ["a1", "a2"]);
    std::fs::rename(&log, dir.join("logs/app.log.1")).unwrap();
    append(&log, "b1\n");
    append(&dir.join("logs/app.log.1"), "a3\n");
    wait_for_lines(dir, 4);
    append(&log, "b2\n");
    wait_for_lines(dir, 5);
    bg.signal(SIGINT);
    assert_eq!(bg.wait(), 130, "{}", bg.stderr_str());
    let got = lines_out(dir);
    assert_eq!(got, ["a1", "a2", "a3", "b1", "b2"]);
    // The final checkpoint lets a later run continue without reading anything again.
    append(&log, "b3\n");
    cron(dir);
    assert_eq!(lines_out(dir), ["a1", "a2", "a3", "b1", "b2", "b3"]);
}

#[test]
fn overlapping_cron_runs_exit_75() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pipeline(dir);
    append(&dir.join("logs/app.log"), "x\n");
    let mut bg = spawn_at(
        dir,
        "follow",
        &["run", "-q", "--at-end", "follow", "p.toml"],
        Spawn::default(),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    let o = run(dir, &["resume", "--or-start", "p.toml"]);
    assert_eq!(
        o.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "not at once"
    );
    bg.kill9();
}

/// Stdin resume for CSV and TSV too: the CRC must cover exactly the rows read, not the CSV
/// parser's read-ahead (it once recorded 0 and refused even the same input).
#[test]
fn stdin_resume_works_for_csv_and_tsv() {
    for (fmt, sep) in [("csv", ","), ("tsv", "\t")] {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        std::fs::write(
            dir.join("p.toml"),
            format!(
                "[sources.in]\ntype = \"file\"\npath = \"-\"\nformat = \"{fmt}\"\nat_end = \"pause\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.jsonl\"\n"
            ),
        )
        .unwrap();
        let rows = |n: usize| -> String {
            let mut s = format!("k{sep}v\n");
            for i in 0..n {
                s.push_str(&format!("{i}{sep}\"quoted {i}\"\n"));
            }
            s
        };
        // Big enough that the parser reads ahead of the rows it returns.
        let o = feed(dir, &["run", "p.toml"], rows(5000));
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = feed(dir, &["resume", "p.toml"], rows(5003));
        assert_eq!(
            o.status.code(),
            Some(0),
            "{fmt}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
        assert_eq!(out.lines().count(), 5003, "{fmt}");
        assert!(
            out.ends_with("{\"k\":5002,\"v\":\"quoted 5002\"}\n"),
            "{fmt}"
        );
        let o = feed(dir, &["resume", "p.toml"], rows(5004).replacen("0", "X", 2));
        assert_eq!(
            o.status.code(),
            Some(2),
            "{fmt}: different input must be refused"
        );
    }
}
