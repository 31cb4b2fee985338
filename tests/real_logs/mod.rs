//! Issue 14, apart from logrotate (see `logrotate`): exactly-once stdout under kills at every
//! step of a release, after falling back from a corrupted checkpoint, and its spool compacted;
//! SIGINT/SIGTERM on unions; follow (in-place rewrites, latency); honest messages; sinks at
//! `/dev/null`; CSV output whose keys change.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs weir in `p` with stdout appended to the regular file `out` (as `>> out` does) and
/// `FAILPOINTS` set to `fp`; (exit code, stderr).
fn run_appending(p: &Proj, args: &[&str], out: &str, fp: Option<&str>) -> (i32, String) {
    let fp = fp.map(|fp| [("FAILPOINTS", fp)]);
    let env: &[(&str, &str)] = match &fp {
        Some(e) => e,
        None => &[],
    };
    let mut bg = spawn_at(
        p.root(),
        "appending",
        args,
        Spawn {
            env,
            stdout: Some(&p.p(out)),
            ..Spawn::default()
        },
    );
    let code = bg.wait();
    (code, bg.stderr_str())
}

const EO: &str = r#"name = "eo"
[checkpoint]
every_records = 3000
retain = 5
[sources.in]
type = "file"
path = "in.jsonl"
at_end = "pause"
[sinks.stdout]
type = "file"
inputs = ["in"]
path = "-"
delivery = "exactly-once"
"#;

fn records(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "p".repeat(i % 23)))
        .collect()
}

/// The run dies after recording a release and before writing it (on main the chunk was then
/// lost: at-most-once), or half-way through writing it. stdout is a regular file, so the next
/// run knows how much of the chunk got out and writes exactly the rest.
#[test]
fn exactly_once_stdout_to_a_file_is_byte_identical_after_a_kill_during_a_release() {
    for point in [
        "spool-before-stdout",
        "spool-mid-stdout",
        "spool-after-stdout",
    ] {
        for nth in [1, 2] {
            let p = Proj::new();
            p.write("p.toml", EO);
            let want = records(0, 10000);
            p.write("in.jsonl", &want);
            // Checkpoints (and releases) every three batches.
            let fp = format!("{point}={}*off->return;{LOCKSTEP}", nth - 1);
            let (code, err) = run_appending(&p, &["run", "p.toml"], "out.jsonl", Some(&fp));
            assert_ne!(code, 0, "{point} #{nth} did not fire: {err}");
            assert!(err.contains("crash point"), "{err}");
            let (code, err) = run_appending(&p, &["resume", "p.toml"], "out.jsonl", None);
            assert_eq!(code, 0, "{err}");
            assert!(!err.contains("may be missing"), "{err}");
            let got = p.read_str("out.jsonl");
            assert!(
                got == want,
                "{point} #{nth}: stdout has {} lines, want {}; {err}",
                got.lines().count(),
                want.lines().count()
            );
        }
    }
}

/// On a pipe nobody can tell how much of a chunk got out: the next run says so, saves the
/// chunk in the state directory and never writes a line of it twice.
#[test]
fn exactly_once_stdout_to_a_pipe_saves_a_chunk_cut_by_a_kill_and_writes_nothing_twice() {
    let p = Proj::new();
    p.write("p.toml", EO);
    let want = records(0, 10000);
    p.write("in.jsonl", &want);
    let first = run_weir(
        p.root(),
        &["run", "p.toml"],
        Some(&format!("spool-mid-stdout=1*off->return;{LOCKSTEP}")),
    );
    expect_exit(&first, None);
    let second = run_weir(p.root(), &["resume", "p.toml"], None);
    expect_exit(&second, Some(0));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("may be missing"), "{err}");
    let saved: Vec<_> = std::fs::read_dir(p.p(".weir/eo"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|x| {
            let n = x.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("stdout.") && n.ends_with(".spool") && n.contains('-')
        })
        .collect();
    assert_eq!(saved.len(), 1, "{err}");
    let chunk = std::fs::read(&saved[0]).unwrap();
    // First run: the chunks before and half of this one; then the rest of it is missing.
    let got1 = first.stdout.clone();
    let half = chunk.len() / 2;
    assert!(got1.ends_with(&chunk[..half]));
    let mut all = got1.clone();
    all.extend_from_slice(&chunk[half..]);
    all.extend_from_slice(&second.stdout);
    assert!(
        all == want.as_bytes(),
        "stdout + the rest of the saved chunk"
    );
    let text =
        String::from_utf8_lossy(&got1).into_owned() + &String::from_utf8_lossy(&second.stdout);
    let mut seen = std::collections::HashSet::new();
    for l in text.lines() {
        assert!(seen.insert(l.to_string()), "written twice: {l}");
    }
}

/// kill -9 at random moments, stdout appended to one file, resumed until done: the file is
/// the output of one uninterrupted run (on main a whole released chunk was missing in 4 of 8).
#[test]
fn exactly_once_stdout_appended_to_a_file_survives_random_kill_9() {
    let pipeline = r#"name = "eo"
[checkpoint]
every = "30ms"
[sources.g]
type = "generate"
count = 40000
rate = 80000.0
seed = 9
[sinks.stdout]
type = "file"
inputs = ["g"]
path = "-"
delivery = "exactly-once"
"#;
    let reference = Proj::new();
    reference.write("p.toml", pipeline);
    let r = reference.weir(&["run", "p.toml"]);
    r.expect_code(0);
    let want = r.stdout;
    let mut total_kills = 0;
    for seed in 1..=4u64 {
        let p = Proj::new();
        p.write("p.toml", pipeline);
        let mut rng = Rng(seed);
        let mut done = false;
        for i in 0..30 {
            let mut bg = spawn_at(
                p.root(),
                "run",
                &["resume", "--or-start", "-q", "p.toml"],
                Spawn {
                    stdout: Some(&p.p("out.jsonl")),
                    ..Spawn::default()
                },
            );
            let at = Duration::from_millis(rng.range(10, 200));
            let t = std::time::Instant::now();
            let mut code = None;
            while t.elapsed() < at {
                if let Some(st) = bg.child.try_wait().unwrap() {
                    code = Some(code_of(st));
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if i >= 8 && code.is_none() {
                code = Some(bg.wait());
            }
            match code {
                Some(0) => {
                    done = true;
                    break;
                }
                Some(c) => panic!("run {i} exited {c}"),
                None => {
                    bg.kill9();
                    total_kills += 1;
                }
            }
        }
        assert!(done);
        let got = p.read("out.jsonl");
        assert!(
            got == want,
            "seed {seed}: {} bytes, want {}",
            got.len(),
            want.len()
        );
    }
    assert!(total_kills >= 4, "only {total_kills} kills landed");
}

/// The newest checkpoint is corrupted after its output was released: resuming from the one
/// before reads that input again, and its output must not reach stdout a second time (on
/// main: every line of it did).
#[test]
fn exactly_once_stdout_is_not_released_again_after_falling_back_from_a_corrupted_checkpoint() {
    let p = Proj::new();
    p.write("p.toml", EO);
    p.write("in.jsonl", records(0, 10000));
    // In lockstep, checkpoints come after records 3072, 6144 and 9216, and at the end.
    let o1 = run_weir(p.root(), &["run", "p.toml"], Some(LOCKSTEP));
    expect_exit(&o1, Some(0));
    let cks = p.ckpts(".weir/eo");
    assert_eq!(cks.len(), 4, "{cks:?}");
    let newest = cks.last().unwrap();
    let len = std::fs::metadata(newest).unwrap().len() as usize;
    flip_byte(newest, len / 2);
    p.append("in.jsonl", records(10000, 12000));
    let o2 = run_weir(p.root(), &["resume", "p.toml"], None);
    expect_exit(&o2, Some(0));
    let mut all = o1.stdout.clone();
    all.extend_from_slice(&o2.stdout);
    let all = String::from_utf8(all).unwrap();
    assert!(
        all == records(0, 12000),
        "{} lines over both runs, want 12000; {}",
        all.lines().count(),
        String::from_utf8_lossy(&o2.stderr)
    );
}

/// Cron runs with exactly-once stdout: the spool holds what is not released yet, not every
/// byte ever written (on main it grew by the whole output of every run).
#[test]
fn exactly_once_stdout_spool_is_compacted() {
    let p = Proj::new();
    p.write("p.toml", EO);
    let mut out = Vec::new();
    let mut n = 0;
    for _ in 0..5 {
        p.append("in.jsonl", records(n, n + 4000));
        n += 4000;
        let o = run_weir(p.root(), &["resume", "--or-start", "p.toml"], None);
        expect_exit(&o, Some(0));
        out.extend_from_slice(&o.stdout);
        let spool = std::fs::metadata(p.p(".weir/eo/stdout.spool"))
            .unwrap()
            .len();
        assert!(spool <= 70_000, "the spool holds {spool} bytes");
    }
    assert!(out.len() > 500_000);
    assert!(out == records(0, n).as_bytes());
}

/// Two sources unioned into a sink and into a window, stopped by SIGINT or SIGTERM at random
/// moments and resumed: the output is byte for byte that of an uninterrupted run. The stop
/// checkpoint must cut both sources before the same batch, as every checkpoint does (on main
/// each source stopped where it was, and the union's order and the windows differed).
#[test]
fn sigint_and_sigterm_on_a_union_stop_at_a_cut() {
    let pipeline = r#"name = "u"
[checkpoint]
every = "1h"
[sources.a]
type = "file"
path = "a.jsonl"
[sources.b]
type = "file"
path = "b.jsonl"
[transforms.w]
type = "window"
inputs = ["a", "b"]
key = ".k"
time = ".t"
time_unit = "s"
size = "10s"
aggs = { n = "count", s = "sum(.v)", first = "first(.v)", last = "last(.v)" }
[sinks.all]
type = "file"
inputs = ["a", "b"]
path = "all.jsonl"
[sinks.win]
type = "file"
inputs = ["w"]
path = "win.jsonl"
"#;
    let write = |p: &Proj| {
        p.write("p.toml", pipeline);
        let mut a = String::new();
        let mut b = String::new();
        for i in 0..20000u64 {
            a.push_str(&format!(
                "{{\"k\":\"k{}\",\"t\":{},\"v\":{i},\"src\":\"a\"}}\n",
                i % 7,
                i / 50
            ));
        }
        for i in 0..10000u64 {
            b.push_str(&format!(
                "{{\"k\":\"k{}\",\"t\":{},\"v\":{},\"src\":\"b\",\"pad\":\"{}\"}}\n",
                i % 5,
                i / 25,
                i * 3,
                "x".repeat(200)
            ));
        }
        p.write("a.jsonl", a);
        p.write("b.jsonl", b);
    };
    let reference = Proj::new();
    write(&reference);
    let t = std::time::Instant::now();
    reference.weir(&["run", "p.toml"]).expect_code(0);
    let full = t.elapsed().as_millis() as u64;
    let want = (reference.read("all.jsonl"), reference.read("win.jsonl"));
    let mut rng = Rng(14);
    let mut landed = 0;
    for trial in 0..4 {
        let p = Proj::new();
        write(&p);
        let sig = if trial % 2 == 0 { SIGINT } else { SIGTERM };
        let mut bg = p.spawn("first", &["run", "p.toml"], Stdio::null());
        // Once records flow, the signal handlers are in place (a signal before that ends the
        // process as the default action does, with no checkpoint to resume).
        wait_until(Duration::from_secs(20), || {
            std::fs::metadata(p.p("all.jsonl")).is_ok_and(|m| m.len() > 0)
        });
        std::thread::sleep(Duration::from_millis(rng.range(0, (full / 3).max(30))));
        if bg.running() {
            bg.signal(sig);
        }
        let code = bg.wait();
        if code == 128 + sig {
            landed += 1;
            p.weir(&["resume", "p.toml"]).expect_code(0);
        } else {
            assert_eq!(code, 0, "{}", bg.stderr_str());
        }
        let got = (p.read("all.jsonl"), p.read("win.jsonl"));
        assert!(
            got.0 == want.0,
            "trial {trial} (signal {sig}): the union's output differs"
        );
        assert!(
            got.1 == want.1,
            "trial {trial} (signal {sig}): the windows differ"
        );
    }
    assert!(
        landed >= 2,
        "only {landed} signals landed (a run takes {full} ms)"
    );
}

const FOLLOW: &str = r#"name = "f"
[checkpoint]
every = "1h"
[sources.log]
type = "file"
path = "app.log"
format = "jsonl"
at_end = "follow"
[sinks.out]
type = "file"
inputs = ["log"]
path = "out.jsonl"
"#;

fn ns_out(p: &Proj) -> Vec<i64> {
    jsonl_so_far(&p.p("out.jsonl"))
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect()
}

/// A line appended in `follow` reaches the sink's file within a second or so, not at the next
/// checkpoint (here an hour away; on main it never came before the stop).
#[test]
fn follow_writes_records_to_sinks_without_waiting_for_a_checkpoint() {
    let p = Proj::new();
    p.write("p.toml", FOLLOW);
    p.write("app.log", "{\"n\":1}\n");
    let mut bg = p.spawn("f", &["run", "p.toml"], Stdio::null());
    assert!(
        wait_until(Duration::from_secs(10), || ns_out(&p) == [1]),
        "{:?}; {}",
        ns_out(&p),
        bg.stderr_str()
    );
    p.append("app.log", "{\"n\":2}\n");
    let t = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || ns_out(&p) == [1, 2]),
        "{:?}",
        ns_out(&p)
    );
    eprintln!("follow latency: {:?}", t.elapsed());
    bg.signal(SIGTERM);
    assert_eq!(bg.wait(), 143, "{}", bg.stderr_str());
    assert_eq!(ns_out(&p), [1, 2]);
}

/// In `follow`, the file is truncated and written again in place between two looks, with
/// more bytes than weir had read: on main the first new records were lost (lines of the same
/// width) or the old offset fell mid-line (exit 3 under on_error = "fail").
#[test]
fn follow_reads_a_file_rewritten_in_place_with_more_bytes_from_its_start() {
    let p = Proj::new();
    p.write("p.toml", FOLLOW);
    let lines = |from: i64, to: i64, pad: usize| -> String {
        (from..to)
            .map(|n| format!("{{\"n\":{n},\"p\":\"{}\"}}\n", "x".repeat(pad)))
            .collect()
    };
    p.write("app.log", lines(1, 4, 10));
    let mut bg = p.spawn("f", &["run", "p.toml"], Stdio::null());
    assert!(wait_until(Duration::from_secs(10), || ns_out(&p).len() == 3));
    // Same width: the old offset falls on a line start of the new content.
    std::fs::write(p.p("app.log"), lines(101, 107, 10)).unwrap();
    let want: Vec<i64> = (1..4).chain(101..107).collect();
    assert!(
        wait_until(Duration::from_secs(10), || ns_out(&p) == want),
        "{:?}; {}",
        ns_out(&p),
        bg.stderr_str()
    );
    // Another width: the old offset falls in the middle of a line.
    std::fs::write(p.p("app.log"), lines(201, 220, 3)).unwrap();
    let want: Vec<i64> = (1..4).chain(101..107).chain(201..220).collect();
    assert!(
        wait_until(Duration::from_secs(10), || ns_out(&p) == want),
        "{:?}; {}",
        ns_out(&p),
        bg.stderr_str()
    );
    bg.signal(SIGTERM);
    assert_eq!(bg.wait(), 143, "{}", bg.stderr_str());
    assert!(
        bg.stderr_str().contains("truncated or replaced"),
        "{}",
        bg.stderr_str()
    );
}

/// A FIFO source with no writer yet: the first SIGTERM stops the run (on main weir sat in
/// open(2) and ignored it).
#[test]
fn a_fifo_source_without_a_writer_stops_on_the_first_sigterm() {
    let p = Proj::new();
    let st = Command::new("mkfifo").arg(p.p("in.fifo")).status().unwrap();
    assert!(st.success());
    p.write(
        "p.toml",
        "[sources.in]\ntype = \"file\"\npath = \"in.fifo\"\nformat = \"jsonl\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.jsonl\"\n",
    );
    let mut bg = p.spawn("f", &["run", "p.toml"], Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    bg.signal(SIGTERM);
    let code = bg.wait_for(Duration::from_secs(10));
    assert_eq!(code, Some(143), "{}", bg.stderr_str());
    // And with a writer, the FIFO is read to its end.
    let p2 = Proj::new();
    Command::new("mkfifo")
        .arg(p2.p("in.fifo"))
        .status()
        .unwrap();
    p2.write("p.toml", p.read("p.toml"));
    let mut bg = p2.spawn("f", &["run", "p.toml"], Stdio::null());
    std::fs::write(p2.p("in.fifo"), "{\"a\":1}\n{\"a\":2}\n").unwrap();
    assert_eq!(bg.wait(), 0, "{}", bg.stderr_str());
    assert_eq!(p2.read_str("out.jsonl"), "{\"a\":1}\n{\"a\":2}\n");
}

/// Every hint is true: with no checkpoint, weir does not say one stands; with one, it does,
/// and `resume` does continue from it.
#[test]
fn the_hint_after_a_failure_names_a_checkpoint_only_when_there_is_one() {
    let p = Proj::new();
    p.write("in.jsonl", records(0, 5000));
    p.write(
        "p.toml",
        "[checkpoint]\nevery = \"1h\"\n[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.jsonl\"\n",
    );
    let o = run_weir(
        p.root(),
        &["run", "p.toml"],
        Some("sink-write-error=return"),
    );
    expect_exit(&o, Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("stands"), "{err}");
    assert!(err.contains("no checkpoint was completed"), "{err}");
    // A checkpoint, then a failure: the hint names it, and resume finishes the job.
    let p = Proj::new();
    p.write("in.jsonl", records(0, 5000));
    p.write(
        "p.toml",
        "[checkpoint]\nevery_records = 1000\n[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.jsonl\"\n",
    );
    let o = run_weir(
        p.root(),
        &["run", "p.toml"],
        Some(&format!("{LOCKSTEP};sink-write-error=1*off->return")),
    );
    expect_exit(&o, Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stands; `weir resume` continues from it"),
        "{err}"
    );
    p.weir(&["resume", "p.toml"]).expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), records(0, 5000));
}

/// `resume --from OLD` killed before its first checkpoint: a plain `resume` then continues
/// (on main it refused forever: the newest checkpoint's sink was longer than the file).
#[test]
fn resume_from_an_old_checkpoint_killed_early_leaves_a_resumable_state() {
    let p = Proj::new();
    p.write("in.jsonl", records(0, 8000));
    p.write(
        "p.toml",
        "name = \"r\"\n[checkpoint]\nevery_records = 1000\nretain = 10\n[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\nat_end = \"pause\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.jsonl\"\n",
    );
    // In lockstep, a checkpoint after each of the first seven batches of 1024 records, and one
    // at the end.
    let o = run_weir(p.root(), &["run", "p.toml"], Some(LOCKSTEP));
    expect_exit(&o, Some(0));
    let cks = p.ckpts(".weir/r");
    assert_eq!(cks.len(), 8, "{cks:?}");
    let oldest = cks[0].file_name().unwrap().to_string_lossy()[5..15]
        .parse::<u64>()
        .unwrap()
        .to_string();
    // Dies at its first checkpoint, its sink cut back to what the oldest one committed.
    let o = run_weir(
        p.root(),
        &["resume", "--from", &oldest, "p.toml"],
        Some(&format!("{LOCKSTEP};checkpoint-before-write=return")),
    );
    expect_exit(&o, None);
    assert!(p.read("out.jsonl").len() < records(0, 8000).len());
    let o = run_weir(p.root(), &["resume", "p.toml"], None);
    expect_exit(&o, Some(0));
    assert_eq!(p.read_str("out.jsonl"), records(0, 8000));
}

/// A file sink and a dead letter at /dev/null take checkpoints and resume (on main: "fsync
/// /dev/null: Invalid argument").
#[test]
fn sinks_and_dead_letters_at_dev_null_work() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        format!("{}not json\n{}", records(0, 3000), records(3000, 6000)),
    );
    p.write(
        "p.toml",
        "[checkpoint]\nevery_records = 1000\n[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\nat_end = \"pause\"\n\
         on_error = \"dead_letter\"\ndead_letter = \"/dev/null\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"/dev/null\"\n",
    );
    p.weir(&["run", "p.toml"]).expect_code(0);
    p.append("in.jsonl", records(6000, 7000));
    p.weir(&["resume", "p.toml"]).expect_code(0);
}

/// CSV output whose record keys change starts a new block with its own header, as the README
/// says (on main: exit 1 and an empty file).
#[test]
fn csv_output_starts_a_new_header_block_when_keys_change() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        "{\"a\":1,\"b\":2}\n{\"a\":3,\"b\":4}\n{\"a\":5}\n{\"x\":\"y\",\"a\":6,\"c\":null}\n",
    );
    p.write(
        "p.toml",
        "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.csv\"\n",
    );
    p.weir(&["run", "p.toml"]).expect_code(0);
    assert_eq!(
        p.read_str("out.csv"),
        "a,b\n1,2\n3,4\n\na\n5\n\nx,a,c\ny,6,\n"
    );
}

/// A file truncated while a `finish` run reads it (memory-mapped): a warning naming the bytes
/// lost, the lines still in the file read once, nothing made of the bytes that are gone, and
/// no crash (on main: SIGBUS, exit 135 with no message, in 3 of 4 tries). With the parse
/// workers and without them.
#[test]
fn a_mapped_file_truncated_while_read_is_a_warning_not_a_crash() {
    for threads in ["2", "0"] {
        let p = Proj::new();
        let text = records(0, 300_000);
        p.write("in.jsonl", &text);
        p.write(
            "p.toml",
            "[checkpoint]\nevery = \"off\"\n[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"out.jsonl\"\n",
        );
        let mut bg = spawn_at(
            p.root(),
            "run",
            &["run", "p.toml"],
            Spawn {
                env: &[
                    ("FAILPOINTS", "source-batch=sleep(3)"),
                    ("WEIR_PARSE_THREADS", threads),
                ],
                stdout: Some(Path::new("/dev/null")),
                ..Spawn::default()
            },
        );
        assert!(wait_until(Duration::from_secs(20), || {
            std::fs::metadata(p.p("out.jsonl")).is_ok_and(|m| m.len() > 0)
        }));
        let keep = text.len() / 3;
        std::fs::OpenOptions::new()
            .write(true)
            .open(p.p("in.jsonl"))
            .unwrap()
            .set_len(keep as u64)
            .unwrap();
        let code = bg.wait();
        let err = bg.stderr_str();
        assert_eq!(code, 0, "threads {threads}: {err}");
        assert!(err.contains("shrank"), "threads {threads}: {err}");
        let out = p.read_str("out.jsonl");
        // Whole lines, in order, all from the file as it was; none of zeros.
        assert!(
            text.starts_with(&out),
            "threads {threads}: output is not a prefix of the input"
        );
        assert!(
            out.len() <= keep,
            "threads {threads}: read past the new end"
        );
        assert!(!out.is_empty());
    }
}
