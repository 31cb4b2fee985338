//! Fault injection at every step of the checkpoint protocol: weir is made to abort (as abruptly
//! as kill -9) at a crash point, then resumed until it finishes; every output must be
//! byte-identical to an uninterrupted run's. Needs `--features failpoints` (the README's test
//! command); without it these tests are not compiled.
#![cfg(feature = "failpoints")]

use std::path::Path;
use std::process::Output;

/// Every run here is in lockstep (`common::LOCKSTEP`), so checkpoints by record count fall
/// after the same batches however loaded the machine; and sources sleep 1 ms per batch, so
/// the n-th checkpoint by time comes before the end of the input in a release build too.
fn run(dir: &Path, args: &[&str], fail_points: Option<&str>) -> Output {
    let base = format!("{};source-batch=sleep(1)", crate::common::LOCKSTEP);
    let fp = match fail_points {
        Some(f) => format!("{base};{f}"),
        None => base,
    };
    // Two parse workers whatever the machine, so the decode pool (and folding) is what runs.
    crate::common::run_weir_env(dir, args, Some(&fp), &[("WEIR_PARSE_THREADS", "2")])
}

/// A pipeline with fan-out, a filter+map branch, a keyed aggregate, a dead-letter file and
/// (optionally) an exactly-once stdout sink, checkpointing every 4000 records: after every
/// fourth batch, nine times before the end (in lockstep).
fn pipeline(dir: &Path, stdout: bool) {
    let mut data = String::new();
    for i in 0..40000u32 {
        if i % 997 == 0 {
            data.push_str("{not json\n");
        }
        data.push_str(&format!(
            "{{\"i\":{i},\"user\":\"u{}\",\"status\":{},\"bytes\":{}}}\n",
            i % 37,
            if i % 7 == 0 { 500 } else { 200 },
            i * 3 % 1000
        ));
    }
    std::fs::write(dir.join("in.jsonl"), data).unwrap();
    let mut p = String::from(
        r#"name = "fp"
[checkpoint]
every_records = 4000
retain = 2

[sources.in]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "out/bad.jsonl"

[transforms.errs]
type = "filter"
inputs = ["in"]
expr = ".status >= 500"

[transforms.slim]
type = "map"
inputs = ["errs"]
expr = "{i, user}"

[transforms.per_user]
type = "aggregate"
inputs = ["in"]
key = ".user"
aggs = { n = "count", b = "sum(.bytes)" }

[sinks.errs_out]
type = "file"
inputs = ["slim"]
path = "out/errs.jsonl"

[sinks.users]
type = "file"
inputs = ["per_user"]
path = "out/users.csv"
"#,
    );
    if stdout {
        p.push_str(
            r#"
[sinks.console]
type = "file"
inputs = ["slim"]
path = "-"
delivery = "exactly-once"
"#,
        );
    }
    std::fs::write(dir.join("p.toml"), p).unwrap();
}

const OUTPUTS: &[&str] = &["out/errs.jsonl", "out/users.csv", "out/bad.jsonl"];

/// An output file with the run's directory replaced by `DIR` (dead letters name the input
/// file by its absolute path, and the reference runs in another directory).
fn read_out(dir: &Path, f: &str) -> Vec<u8> {
    let bytes = std::fs::read(dir.join(f)).unwrap_or_default();
    let text = String::from_utf8(bytes).expect("utf-8 output");
    let d = dir.to_string_lossy().into_owned();
    text.replace(&d, "DIR").into_bytes()
}

/// Runs the pipeline once uninterrupted; returns (files, stdout).
fn reference(stdout: bool) -> (Vec<Vec<u8>>, Vec<u8>) {
    let d = tempfile::tempdir().unwrap();
    pipeline(d.path(), stdout);
    let o = run(d.path(), &["run", "-q", "p.toml"], None);
    crate::common::expect_exit(&o, Some(0));
    let files = OUTPUTS.iter().map(|f| read_out(d.path(), f)).collect();
    (files, o.stdout)
}

/// Crashes at `point` (on its `nth` hit), resumes to the end; returns (files, all stdout, stderr).
fn crash_then_resume(point: &str, nth: u32, stdout: bool) -> (Vec<Vec<u8>>, Vec<u8>, String) {
    let d = tempfile::tempdir().unwrap();
    pipeline(d.path(), stdout);
    let (all_stdout, stderr) = abort_and_resume(d.path(), point, nth);
    let files = OUTPUTS.iter().map(|f| read_out(d.path(), f)).collect();
    (files, all_stdout, stderr)
}

/// Runs the pipeline in `dir` until it aborts at `point` (on its `nth` hit), then resumes it
/// until it finishes; returns (stdout of every run, stderr of every run).
fn abort_and_resume(dir: &Path, point: &str, nth: u32) -> (Vec<u8>, String) {
    let fp = if nth > 1 {
        format!("{point}={}*off->return", nth - 1)
    } else {
        format!("{point}=return")
    };
    let first = run(dir, &["run", "-q", "p.toml"], Some(&fp));
    let mut all_stdout = first.stdout.clone();
    let mut stderr = String::from_utf8_lossy(&first.stderr).into_owned();
    assert_eq!(
        first.status.code(),
        None,
        "weir was expected to abort at crash point {point}: {stderr}"
    );
    assert!(stderr.contains(&format!("crash point {point}")), "{stderr}");
    let mut finished = false;
    for _ in 0..5 {
        let o = run(dir, &["resume", "--or-start", "p.toml"], None);
        all_stdout.extend_from_slice(&o.stdout);
        stderr.push_str(&String::from_utf8_lossy(&o.stderr));
        if o.status.code() == Some(0) {
            finished = true;
            break;
        }
    }
    assert!(finished, "resume did not finish: {stderr}");
    (all_stdout, stderr)
}

fn check_point(point: &str, nth: u32) {
    let (want, _) = reference(false);
    let (got, _, stderr) = crash_then_resume(point, nth, false);
    for (i, f) in OUTPUTS.iter().enumerate() {
        assert!(
            want[i] == got[i],
            "{f} differs after a crash at {point}: {} vs {} bytes; stderr: {stderr}",
            want[i].len(),
            got[i].len()
        );
    }
}

/// The same input through a filter that is its source's only consumer, so the decode pool's
/// workers run the filter and drop records before the source emits them (positions must still
/// count every line).
fn pushdown_pipeline(dir: &Path) {
    pipeline(dir, false);
    let p = std::fs::read_to_string(dir.join("p.toml")).unwrap();
    let p = p
        .replace(
            "[transforms.per_user]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".user\"\naggs = { n = \"count\", b = \"sum(.bytes)\" }\n",
            "",
        )
        .replace(
            "[sinks.users]\ntype = \"file\"\ninputs = [\"per_user\"]\npath = \"out/users.csv\"\n",
            "",
        );
    assert!(!p.contains("per_user"), "{p}");
    std::fs::write(dir.join("p.toml"), p).unwrap();
}

#[test]
fn crash_with_the_filter_run_by_the_parse_workers() {
    let files = ["out/errs.jsonl", "out/bad.jsonl"];
    let r = tempfile::tempdir().unwrap();
    pushdown_pipeline(r.path());
    let o = run(r.path(), &["run", "-q", "p.toml"], None);
    crate::common::expect_exit(&o, Some(0));
    let want: Vec<Vec<u8>> = files.iter().map(|f| read_out(r.path(), f)).collect();
    assert!(want[0].len() > 10_000 && !want[1].is_empty());
    for (point, nth) in [("checkpoint-after-write", 3), ("atomic-before-rename", 4)] {
        let d = tempfile::tempdir().unwrap();
        pushdown_pipeline(d.path());
        let (_, stderr) = abort_and_resume(d.path(), point, nth);
        for (f, w) in files.iter().zip(&want) {
            let got = read_out(d.path(), f);
            assert!(
                got == *w,
                "{f} differs after a crash at {point}: {} vs {} bytes; stderr: {stderr}",
                got.len(),
                w.len()
            );
        }
    }
}

/// A source whose only consumer is an aggregate of counts and integer sums (or, with
/// `window`, a tumbling window of them, 10 s long, on times up to 2 s out of order), so the
/// parse workers fold its lines (`sources::folding`); `odd_at` puts a float, which cannot be
/// folded, at that line.
fn folding_pipeline(dir: &Path, odd_at: Option<u32>, window: bool) {
    let mut data = String::new();
    for i in 0..200_000u32 {
        if Some(i) == odd_at {
            data.push_str("{\"user\":\"u1\",\"bytes\":0.25,\"ts\":1800000000}\n");
        }
        data.push_str(&format!(
            "{{\"i\":{i},\"user\":\"u{}\",\"bytes\":{},\"ts\":{}}}\n",
            i % 37,
            i * 3 % 1000,
            1_800_000_000 + i / 50 - i * 7 % 3
        ));
    }
    std::fs::write(dir.join("in.jsonl"), data).unwrap();
    let transform = if window {
        "type = \"window\"\ntime = \".ts\"\nsize = \"10s\"\nout_of_orderness = \"3s\""
    } else {
        "type = \"aggregate\""
    };
    std::fs::write(
        dir.join("p.toml"),
        format!(
            r#"name = "fold"
[checkpoint]
every = "5ms"
every_records = 20000
retain = 2

[sources.in]
type = "file"
path = "in.jsonl"

[transforms.per_user]
{transform}
inputs = ["in"]
key = ".user"
aggs = {{ n = "count", b = "sum(.bytes)" }}

[sinks.users]
type = "file"
inputs = ["per_user"]
path = "out/users.csv"
"#
        ),
    )
    .unwrap();
}

/// The newest checkpoint as `weir inspect` prints it.
fn inspect(dir: &Path) -> String {
    let o = crate::common::run_weir(dir, &["inspect", "p.toml"], None);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A crash while the parse workers fold lines for an aggregate or a window, at two steps of
/// a checkpoint, loses and repeats nothing: the epoch a checkpoint ends is in its state
/// exactly once (for a window, with the watermark its lines reached). With every line
/// foldable, the resumed run folds too (the final checkpoint counts all 200000 lines as
/// folded); with a float late in the input, folding stops there, in the first run or the
/// resumed one. Checkpoints come every 5 ms and every 20,000 records, so the crash points are
/// reached however fast the workers fold (with 1 MiB jobs a run could end before its third
/// checkpoint by the clock alone).
#[test]
fn crash_while_the_parse_workers_fold_for_an_aggregate() {
    crash_while_folding(false, 38);
}

#[test]
fn crash_while_the_parse_workers_fold_for_a_window() {
    // 37 users in each of 400 windows, and a few in the window before (times go back 2 s).
    crash_while_folding(true, 14_800);
}

fn crash_while_folding(window: bool, lines: usize) {
    for odd_at in [None, Some(150_000)] {
        let r = tempfile::tempdir().unwrap();
        folding_pipeline(r.path(), odd_at, window);
        let o = run(r.path(), &["run", "-q", "p.toml"], None);
        crate::common::expect_exit(&o, Some(0));
        let want = read_out(r.path(), "out/users.csv");
        let n = want.iter().filter(|&&b| b == b'\n').count();
        assert!((lines..lines + 40).contains(&n), "{n}");
        let folded = inspect(r.path()).contains("\"folded\":200000");
        assert_eq!(folded, odd_at.is_none(), "{}", inspect(r.path()));
        for (point, nth) in [("checkpoint-after-write", 3), ("atomic-before-rename", 5)] {
            let d = tempfile::tempdir().unwrap();
            folding_pipeline(d.path(), odd_at, window);
            let (_, stderr) = abort_and_resume(d.path(), point, nth);
            let got = read_out(d.path(), "out/users.csv");
            assert!(
                got == want,
                "{odd_at:?}: output differs after a crash at {point}: {} vs {} bytes; \
                 stderr: {stderr}",
                got.len(),
                want.len()
            );
            let folded = inspect(d.path()).contains("\"folded\":200000");
            assert_eq!(folded, odd_at.is_none(), "{}", inspect(d.path()));
        }
    }
}

/// A checkpoint made record by record may hold float sums, which folded counts would add to
/// in another order: resuming it never folds. Here the sum is 1e16 (a float) when the first
/// run dies; adding 1 to it rounds back to 1e16 each time, so record by record it stays
/// 1e16, while folding would add the 7000-odd ones at once.
#[test]
fn resuming_a_checkpoint_made_record_by_record_never_folds() {
    let write = |dir: &Path| {
        let mut data = String::from("{\"user\":\"a\",\"bytes\":1e16}\n");
        for _ in 0..8000 {
            data.push_str("{\"user\":\"a\",\"bytes\":1}\n");
        }
        std::fs::write(dir.join("in.jsonl"), data).unwrap();
        std::fs::write(
            dir.join("p.toml"),
            "[checkpoint]\nevery_records = 1000\n[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".user\"\n\
             aggs = { n = \"count\", b = \"sum(.bytes)\" }\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"o.jsonl\"\n",
        )
        .unwrap();
    };
    let serial = [("WEIR_PARSE_THREADS", "0")];
    let pooled = [("WEIR_PARSE_THREADS", "2")];
    let d = tempfile::tempdir().unwrap();
    write(d.path());
    let first = crate::common::run_weir_env(
        d.path(),
        &["run", "-q", "p.toml"],
        // In lockstep, the first checkpoint comes after the first batch, not at the end.
        Some(&format!(
            "{};checkpoint-after-write=return",
            crate::common::LOCKSTEP
        )),
        &serial,
    );
    crate::common::expect_exit(&first, None);
    let state = inspect(d.path());
    assert!(state.contains("\"finished\": false"), "{state}");
    let o = crate::common::run_weir_env(d.path(), &["resume", "-q", "p.toml"], None, &pooled);
    crate::common::expect_exit(&o, Some(0));
    let got = std::fs::read_to_string(d.path().join("o.jsonl")).unwrap();
    // The float 1e16 prints as jq prints it.
    assert_eq!(got, "{\"key\":\"a\",\"n\":8001,\"b\":1e+16}\n");
    assert!(!inspect(d.path()).contains("\"folded\""));
}

#[test]
fn crash_before_checkpoint_fsync() {
    check_point("atomic-before-fsync", 3);
}

#[test]
fn crash_between_fsync_and_rename() {
    check_point("atomic-before-rename", 3);
}

#[test]
fn crash_between_rename_and_directory_fsync() {
    check_point("atomic-before-dir-fsync", 3);
}

#[test]
fn crash_before_checkpoint_write() {
    check_point("checkpoint-before-write", 4);
}

#[test]
fn crash_between_checkpoint_write_and_sink_commit() {
    check_point("checkpoint-after-write", 4);
}

#[test]
fn crash_before_sink_fsync() {
    check_point("sink-before-fsync", 5);
}

#[test]
fn crash_at_the_very_first_checkpoint() {
    check_point("atomic-before-rename", 1);
}

/// Dies after the checkpoint is durable but before the spool is released: the resume releases
/// it, and stdout over all runs is exactly the uninterrupted stdout.
#[test]
fn exactly_once_stdout_survives_a_crash_before_release() {
    let (want_files, want_out) = reference(true);
    let (files, out, stderr) = crash_then_resume("checkpoint-after-write", 3, true);
    assert!(files == want_files, "files differ: {stderr}");
    assert!(!want_out.is_empty());
    assert!(
        out == want_out,
        "stdout differs: {} vs {} bytes; {stderr}",
        out.len(),
        want_out.len()
    );
}

#[test]
fn exactly_once_stdout_survives_a_crash_after_writing_stdout() {
    let (_, want_out) = reference(true);
    let (_, out, stderr) = crash_then_resume("spool-after-stdout", 2, true);
    assert!(
        out == want_out,
        "stdout differs: {} vs {} bytes; {stderr}",
        out.len(),
        want_out.len()
    );
}

/// Dies between recording a release and writing it: that chunk may be missing from stdout,
/// and the next run says so, but no line is ever written twice.
#[test]
fn exactly_once_stdout_never_writes_a_line_twice() {
    let (_, want_out) = reference(true);
    let (_, out, stderr) = crash_then_resume("spool-before-stdout", 2, true);
    let want = String::from_utf8(want_out).unwrap();
    let got = String::from_utf8(out).unwrap();
    let mut seen = std::collections::HashSet::new();
    for line in got.lines() {
        assert!(seen.insert(line), "line written twice: {line}");
        assert!(want.contains(line), "unexpected line {line}");
    }
    assert!(stderr.contains("may be missing"), "{stderr}");
}

/// A full disk at the sink: with `[restart]` the run recovers in-process from the last
/// checkpoint and the output is exact; without it, exit 1 and `resume` finishes the job.
#[test]
fn injected_disk_full_restarts_from_the_last_checkpoint() {
    let (want, _) = reference(false);
    let d = tempfile::tempdir().unwrap();
    pipeline(d.path(), false);
    let p = d.path().join("p.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        format!("{text}\n[restart]\nattempts = 3\ndelay = \"10ms\"\n"),
    )
    .unwrap();
    let o = run(
        d.path(),
        &["run", "p.toml"],
        Some("sink-write-error=2*off->1*return"),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("restarting from the last checkpoint"),
        "{stderr}"
    );
    for (i, f) in OUTPUTS.iter().enumerate() {
        assert!(want[i] == read_out(d.path(), f), "{f} differs");
    }
}

#[test]
fn injected_disk_full_without_restart_exits_1_and_resumes() {
    let (want, _) = reference(false);
    let d = tempfile::tempdir().unwrap();
    pipeline(d.path(), false);
    let o = run(
        d.path(),
        &["run", "p.toml"],
        Some("sink-write-error=2*off->return"),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("weir resume"), "{stderr}");
    let o = run(d.path(), &["resume", "p.toml"], None);
    crate::common::expect_exit(&o, Some(0));
    for (i, f) in OUTPUTS.iter().enumerate() {
        assert!(want[i] == read_out(d.path(), f), "{f} differs");
    }
}

/// The records each source of the newest checkpoint had consumed, by node name.
fn consumed_by_source(dir: &Path) -> Vec<(String, u64)> {
    let v: serde_json::Value = serde_json::from_str(&inspect(dir)).expect("inspect prints JSON");
    v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| {
            Some((
                n["node"].as_str()?.to_string(),
                n["state"]["consumed"].as_u64()?,
            ))
        })
        .collect()
}

/// A source that may fold stays out of the cut where the other sources place their barriers:
/// folding reads far ahead (here about six times as many lines per step), and when its
/// position counted in the cut, a resumed run's next barrier had to wait until the other
/// source reached the same batch number, which here lies past its end: no checkpoint until
/// that source had read everything.
#[test]
fn a_folding_source_far_ahead_does_not_hold_back_the_next_checkpoint() {
    const SLOW: u64 = 40_000;
    let mut slow = String::new();
    for i in 0..SLOW {
        slow.push_str(&format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "p".repeat(80)));
    }
    let mut fast = String::new();
    for i in 0..400_000u32 {
        fast.push_str(&format!("{{\"u\":\"u{}\"}}\n", i % 7));
    }
    let env = [("WEIR_PARSE_THREADS", "2")];
    let at = |name: &str, c: &[(String, u64)]| c.iter().find(|x| x.0 == name).map(|x| x.1);
    // The case this test is about: a checkpoint where the folding source is past the other
    // source's end and the other is not. Every read step sleeps, so both sources take steps
    // at about the same rate; which checkpoint that is depends on the build's speed, so the
    // first run dies at the first, second, ... until one is.
    let mut case = None;
    // (slow, fast) at each checkpoint tried, for the message when none is the case.
    let mut seen = Vec::new();
    for nth in 1..16 {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("slow.jsonl"), &slow).unwrap();
        std::fs::write(d.path().join("fast.jsonl"), &fast).unwrap();
        std::fs::write(
            d.path().join("p.toml"),
            "name = \"cut\"\n[checkpoint]\nevery = \"2ms\"\nretain = 5\n\
             [sources.slow]\ntype = \"file\"\npath = \"slow.jsonl\"\n\
             [sources.fast]\ntype = \"file\"\npath = \"fast.jsonl\"\n\
             [transforms.per_u]\ntype = \"aggregate\"\ninputs = [\"fast\"]\nkey = \".u\"\n\
             aggs = { n = \"count\" }\n\
             [sinks.s]\ntype = \"file\"\ninputs = [\"slow\"]\npath = \"s.jsonl\"\n\
             [sinks.a]\ntype = \"file\"\ninputs = [\"per_u\"]\npath = \"a.jsonl\"\n",
        )
        .unwrap();
        let first = crate::common::run_weir_env(
            d.path(),
            &["run", "-q", "p.toml"],
            Some(&format!(
                "source-batch=sleep(3);checkpoint-after-write={}*off->return",
                nth - 1
            )),
            &env,
        );
        crate::common::expect_exit(&first, None);
        let before = consumed_by_source(d.path());
        let (slow0, fast0) = (at("slow", &before).unwrap(), at("fast", &before).unwrap());
        seen.push((slow0, fast0));
        if slow0 >= SLOW {
            break;
        }
        if fast0 > SLOW {
            case = Some((d, before, slow0));
            break;
        }
    }
    let Some((d, before, slow0)) = case else {
        panic!("no checkpoint found the folding source past the other's end and the other not: (slow, fast) records at each: {seen:?}")
    };
    let second = crate::common::run_weir_env(
        d.path(),
        &["resume", "-q", "p.toml"],
        Some("source-batch=sleep(3);checkpoint-after-write=return"),
        &env,
    );
    crate::common::expect_exit(&second, None);
    let after = consumed_by_source(d.path());
    let slow1 = at("slow", &after).unwrap();
    assert!(
        slow1 > slow0 && slow1 < SLOW,
        "the resumed run's first checkpoint waited for the slow source's end: {before:?} then {after:?}"
    );
    // And the whole run still gives what it should.
    let o = crate::common::run_weir_env(d.path(), &["resume", "-q", "p.toml"], None, &env);
    crate::common::expect_exit(&o, Some(0));
    let a = std::fs::read_to_string(d.path().join("a.jsonl")).unwrap();
    assert_eq!(a.lines().count(), 7, "{a}");
    assert!(a.contains("{\"key\":\"u0\",\"n\":57143}"), "{a}");
    let s = std::fs::read_to_string(d.path().join("s.jsonl")).unwrap();
    assert_eq!(s.lines().count() as u64, SLOW);
}
