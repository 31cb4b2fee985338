//! stdin sources and stdout sinks, at-least-once and exactly-once.

use crate::common::*;
use crate::lifecycle::{pausing_expected, recs, PAUSING};
use std::process::Stdio;
use std::time::Duration;

// stdin and stdout

pub(crate) fn pausing_stdin() -> String {
    PAUSING.replace("path = \"in.jsonl\"", "path = \"-\"")
}

#[test]
fn stdin_resume_with_the_same_input_continues_where_it_stopped() {
    let p = Proj::new();
    p.write("p.toml", pausing_stdin());
    let (a, b) = (recs(0, 40), recs(40, 90));
    p.weir_stdin(&["run", "p.toml"], a.as_bytes())
        .expect_code(0)
        .expect_no_panic();
    assert_eq!(p.read_str("all.jsonl"), pausing_expected(&a).0);
    let o = p.weir_stdin(
        &["resume", "p.toml", "--at-end", "finish"],
        format!("{a}{b}").as_bytes(),
    );
    o.expect_code(0).expect_no_panic();
    let (want_all, want_agg) = pausing_expected(&format!("{a}{b}"));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
}

#[test]
fn stdin_resume_with_different_input_is_refused() {
    let p = Proj::new();
    p.write("p.toml", pausing_stdin());
    let a = recs(0, 40);
    p.weir_stdin(&["run", "p.toml"], a.as_bytes())
        .expect_code(0);
    let all = snapshot(&p.p("all.jsonl"));
    // Same length, one byte different, then more.
    let changed = a.replacen("\"k\":\"a\"", "\"k\":\"z\"", 1) + &recs(40, 50);
    let o = p.weir_stdin(&["resume", "p.toml"], changed.as_bytes());
    o.expect_code(2).expect_no_panic();
    assert!(o.stderr.contains("stdin"), "unclear message: {}", o.stderr);
    assert!(
        p.read("all.jsonl") == all.1,
        "a refused resume changed the output"
    );
    // Shorter than what was consumed.
    let o = p.weir_stdin(&["resume", "p.toml"], &a.as_bytes()[..a.len() / 2]);
    o.expect_code(2);
    assert!(
        p.read("all.jsonl") == all.1,
        "a refused resume changed the output"
    );
    // The right input still resumes.
    p.weir_stdin(&["resume", "p.toml", "--at-end", "finish"], a.as_bytes())
        .expect_code(0);
    assert_eq!(p.read_str("all.jsonl"), pausing_expected(&a).0);
    assert_eq!(p.read_str("agg.jsonl"), pausing_expected(&a).1);
}

#[test]
fn stdin_interrupted_by_sigint_resumes_with_the_same_input() {
    let p = Proj::new();
    p.write(
        "p.toml",
        pausing_stdin().replace(
            "name = \"grow\"\n",
            "name = \"grow\"\n[checkpoint]\nevery = \"50ms\"\n",
        ),
    );
    let (a, b) = (recs(0, 100), recs(100, 200));
    let mut bg = p.spawn("first", &["run", "p.toml"], Stdio::piped());
    {
        use std::io::Write;
        let mut stdin = bg.child.stdin.take().unwrap();
        stdin.write_all(a.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let want = pausing_expected(&a).0;
        let seen = wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(p.p("all.jsonl")).unwrap_or_default() == want
        });
        assert!(
            seen,
            "the first 100 records never reached the sink; stderr: {}",
            bg.stderr_str()
        );
        std::thread::sleep(Duration::from_millis(150));
        bg.signal(SIGINT);
        let code = bg.wait_for(Duration::from_secs(20));
        drop(stdin);
        assert_eq!(code, Some(130), "SIGINT: stderr: {}", bg.stderr_str());
    }
    let o = p.weir_stdin(
        &["resume", "p.toml", "--at-end", "finish"],
        format!("{a}{b}").as_bytes(),
    );
    o.expect_code(0).expect_no_panic();
    let (want_all, want_agg) = pausing_expected(&format!("{a}{b}"));
    assert_eq!(p.read_str("all.jsonl"), want_all);
    assert_eq!(p.read_str("agg.jsonl"), want_agg);
}

pub(crate) const EXACT_STDOUT: &str = r#"name = "eo"
[checkpoint]
every = "50ms"
[sources.g]
type = "generate"
count = 50
seed = 5
[transforms.m]
type = "map"
inputs = ["g"]
expr = "{seq}"
[sinks.stdout]
type = "file"
inputs = ["m"]
path = "-"
delivery = "exactly-once"
"#;

#[test]
fn exactly_once_stdout_delivers_everything_once_in_a_normal_run() {
    let p = Proj::new();
    p.write("p.toml", EXACT_STDOUT);
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    let want: String = (0..50).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    assert_eq!(o.stdout_str(), want);
    // Resuming the finished run writes nothing more.
    let r = p.weir(&["resume", "p.toml"]);
    r.expect_code(0);
    assert!(r.stdout.is_empty(), "{}", r.stdout_str());
}

#[test]
fn exactly_once_stdout_across_sigint_and_resume() {
    let pipeline = EXACT_STDOUT
        .replace("count = 50", "count = 3000\nrate = 3000.0")
        .replace("every = \"50ms\"", "every = \"100ms\"");
    let p = Proj::new();
    p.write("p.toml", &pipeline);
    let mut bg = p.spawn("first", &["run", "p.toml"], Stdio::null());
    assert!(
        wait_until(Duration::from_secs(20), || !p.ckpts(".weir/eo").is_empty()),
        "no checkpoint appeared: {}",
        bg.stderr_str()
    );
    std::thread::sleep(Duration::from_millis(100));
    bg.signal(SIGINT);
    assert_eq!(
        bg.wait_for(Duration::from_secs(20)),
        Some(130),
        "{}",
        bg.stderr_str()
    );
    let first = bg.stdout_bytes();
    let o = p.weir(&["resume", "p.toml", "--set", "sources.g.rate=1000000.0"]);
    o.expect_code(0);
    let mut got = first.clone();
    got.extend_from_slice(&o.stdout);
    let want: String = (0..3000).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    assert!(
        !first.is_empty() && first.len() < want.len(),
        "the first run should have released part of the output ({} bytes)",
        first.len()
    );
    assert!(
        String::from_utf8_lossy(&got) == want,
        "stdout over both runs is not every record once, in order"
    );
}

/// The final checkpoint is durable but weir dies before releasing the spool: the run is
/// finished, yet its last output has not reached stdout. `resume` must release it (not say
/// "nothing to resume" and drop it).
#[cfg(feature = "failpoints")]
#[test]
fn exactly_once_stdout_released_after_a_crash_right_after_the_final_checkpoint() {
    let p = Proj::new();
    // One checkpoint only: the final one.
    p.write(
        "p.toml",
        EXACT_STDOUT.replace("every = \"50ms\"", "every = \"1h\""),
    );
    let out = run_weir(
        p.root(),
        &["run", "p.toml"],
        Some("checkpoint-after-write=return"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(
        code_of(out.status),
        0,
        "the crash point did not fire: {stderr}"
    );
    let r = p.weir(&["resume", "p.toml"]);
    r.expect_code(0);
    let mut got = out.stdout.clone();
    got.extend_from_slice(&r.stdout);
    let want: String = (0..50).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&got),
        want,
        "stdout over the crashed run and the resume; resume said: {}",
        r.stderr
    );
}
