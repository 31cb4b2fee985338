//! The same exactly-once on CSV, whose rows are not lines: a quoted field holds commas, doubled
//! quotes, newlines and CRLFs, some rows end in CRLF, and every new file (created by the
//! application, or emptied by `copytruncate`) starts with the header again. Rotated by the real
//! `logrotate`, read by cron-style runs (`at_end = "pause"`: the sequential reader), by a
//! `follow` run killed and resumed while logrotate works, and by one-shot runs over the rotated
//! set (`at_end = "finish"`: the parse workers, in small jobs), killed and resumed.

use super::{diff, rotate, Figures};
use crate::common::*;
use std::process::Stdio;
use std::time::Duration;

const HEADER: &str = "id,msg,n";

/// The application: appends CSV rows to the live log, the header first in a new file. A row
/// is known by its `id`; `written` holds (id, msg) as a reader must see them.
struct App<'a> {
    p: &'a Proj,
    next: u64,
    written: Vec<(String, String)>,
    /// Per row written: how many rotations came before it (which file holds it).
    generation: Vec<u32>,
    rotations: u32,
}

impl App<'_> {
    fn append(&mut self, rng: &mut Rng, n: u64) {
        let path = self.p.p("logs/app.csv");
        let empty = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
        let mut text = String::new();
        if empty {
            text.push_str(HEADER);
            text.push('\n');
        }
        for _ in 0..n {
            let id = format!("r{:07}", self.next);
            self.next += 1;
            let pad = "x".repeat(rng.range(0, 30) as usize);
            // (as written in the file, as read)
            let (cell, msg) = match rng.range(0, 8) {
                0 => (format!("\"GET /a,b {pad}\""), format!("GET /a,b {pad}")),
                1 => (
                    format!("\"say \"\"hi\"\" {pad}\""),
                    format!("say \"hi\" {pad}"),
                ),
                2 => (format!("\"two\nlines {pad}\""), format!("two\nlines {pad}")),
                3 => (
                    format!("\"crlf\r\n\ninside {pad}\""),
                    format!("crlf\r\n\ninside {pad}"),
                ),
                // A stray quote in an unquoted field is text (and upsets the quote parity the
                // parse workers cut jobs by).
                4 => (format!("5'10\" {pad}"), format!("5'10\" {pad}")),
                _ => (format!("plain {pad}"), format!("plain {pad}")),
            };
            let end = if rng.range(0, 4) == 0 { "\r\n" } else { "\n" };
            text.push_str(&format!("{id},{cell},{}{end}", rng.range(0, 1000)));
            self.written.push((id, msg));
            self.generation.push(self.rotations);
        }
        self.p.append("logs/app.csv", text);
    }
}

fn pipeline(p: &Proj, at_end: &str) {
    p.write(
        "p.toml",
        format!(
            r#"name = "rot"
[checkpoint]
every_records = 300
[sources.log]
type = "file"
path = "logs/app.csv*"
format = "csv"
at_end = "{at_end}"
[sinks.out]
type = "file"
inputs = ["log"]
path = "out.jsonl"
"#
        ),
    );
}

fn conf(p: &Proj, scheme: &str) {
    std::fs::create_dir_all(p.p("logs")).unwrap();
    p.write(
        "logrotate.conf",
        format!(
            "{} {{\n    missingok\n    notifempty\n    nomail\n{scheme}\n}}\n",
            p.s("logs/app.csv")
        ),
    );
}

/// (id, msg) of each record written, in order.
fn rows_out(p: &Proj) -> Vec<(String, String)> {
    jsonl_so_far(&p.p("out.jsonl"))
        .into_iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap_or("?").to_string(),
                v["msg"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

#[track_caller]
fn check(written: &[(String, String)], got: &[(String, String)], stderr: &str) {
    if written != got {
        let s = |v: &[(String, String)]| v.iter().map(|(i, m)| format!("{i}:{m:?}")).collect();
        let (a, b): (Vec<String>, Vec<String>) = (s(written), s(got));
        panic!("{}\n{stderr}", diff(&a, &b));
    }
}

/// Cron-style runs (`pause`) between appends and rotations, some killed with SIGKILL.
fn cron_scenario(scheme: &str, seed: u64, rounds: u32) {
    let p = Proj::new();
    conf(&p, scheme);
    pipeline(&p, "pause");
    let mut rng = Rng(seed);
    let mut app = App {
        p: &p,
        next: 0,
        written: Vec::new(),
        generation: Vec::new(),
        rotations: 0,
    };
    let mut f = Figures::default();
    app.append(&mut rng, 10);
    super::cron(&p, &mut f);
    for _ in 0..rounds {
        let n = rng.range(50, 1200);
        app.append(&mut rng, n);
        let ms = rng.range(0, 30);
        super::killed_run(&p, &mut f, ms);
        let n = rng.range(1, 1200);
        app.append(&mut rng, n);
        rotate(&p, false);
        f.rotations += 1;
        if rng.range(0, 2) == 0 {
            let ms = rng.range(0, 30);
            super::killed_run(&p, &mut f, ms);
        }
        let n = rng.range(0, 600);
        app.append(&mut rng, n);
        super::cron(&p, &mut f);
    }
    let got = rows_out(&p);
    eprintln!("CSV logrotate (cron) {scheme:?} seed {seed}: {f:?}");
    check(&app.written, &got, "");
}

#[test]
fn logrotate_create_keeps_each_csv_row_once() {
    cron_scenario("    create\n    rotate 3", 21, 5);
}

#[test]
fn logrotate_copytruncate_keeps_each_csv_row_once() {
    cron_scenario("    copytruncate\n    rotate 3", 22, 5);
}

/// A `follow` run while the application appends and logrotate rotates, killed with SIGKILL
/// now and then and resumed (still following); at the end, once every row is out, SIGTERM.
fn follow_scenario(scheme: &str, seed: u64, rounds: u32) {
    let p = Proj::new();
    conf(&p, scheme);
    pipeline(&p, "follow");
    let mut rng = Rng(seed);
    let mut app = App {
        p: &p,
        next: 0,
        written: Vec::new(),
        generation: Vec::new(),
        rotations: 0,
    };
    app.append(&mut rng, 10);
    let start = |tag: &str| p.spawn(tag, &["resume", "--or-start", "p.toml"], Stdio::null());
    let mut run = start("f0");
    let mut kills = 0;
    // What every run said, for a failure message.
    let said = |runs: u32| -> String {
        (0..=runs)
            .map(|i| {
                format!(
                    "run {i}:\n{}",
                    std::fs::read_to_string(p.p(&format!("f{i}.stderr"))).unwrap_or_default()
                )
            })
            .collect()
    };
    for _ in 0..rounds {
        let n = rng.range(50, 800);
        app.append(&mut rng, n);
        std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
        let n = rng.range(1, 800);
        app.append(&mut rng, n);
        rotate(&p, false);
        app.rotations += 1;
        let n = rng.range(0, 400);
        app.append(&mut rng, n);
        std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
        if rng.range(0, 2) == 0 {
            assert!(run.running(), "the follow run ended: {}", run.stderr_str());
            run.kill9();
            kills += 1;
            run = start(&format!("f{}", kills));
        }
    }
    let all = app.written.len();
    let (code, caught_up) = stop_follow_when_caught_up(
        &mut run,
        || start(&format!("f{}", kills + 1)),
        || rows_out(&p).len(),
        all,
    );
    let kills = kills + u32::from(p.p(&format!("f{}.stderr", kills + 1)).exists());
    let got = rows_out(&p);
    eprintln!(
        "CSV logrotate (follow) {scheme:?} seed {seed}: {rounds} rotations, {kills} runs after the first, {} rows, caught up: {caught_up}",
        got.len()
    );
    // Each row once; each file's rows in the order written. Files found by one scan are taken
    // in name order (docs/reference.md), which puts the live log before its older rotation:
    // a run resumed after two rotations it had not seen reads them so.
    let mut sorted = got.clone();
    sorted.sort();
    check(&app.written, &sorted, &said(kills));
    for g in 0..=app.rotations {
        let of_g = |v: &[(String, String)]| -> Vec<(String, String)> {
            let ids: std::collections::BTreeSet<&str> = app
                .written
                .iter()
                .zip(&app.generation)
                .filter(|(_, &x)| x == g)
                .map(|((id, _), _)| id.as_str())
                .collect();
            v.iter()
                .filter(|(id, _)| ids.contains(id.as_str()))
                .cloned()
                .collect()
        };
        check(&of_g(&app.written), &of_g(&got), &said(kills));
    }
    assert_eq!(code, 143, "{}", run.stderr_str());
}

#[test]
fn logrotate_create_under_follow_keeps_each_csv_row_once() {
    follow_scenario("    create\n    rotate 5", 23, 5);
}

#[test]
fn logrotate_copytruncate_under_follow_keeps_each_csv_row_once() {
    follow_scenario("    copytruncate\n    rotate 5", 24, 5);
}

/// `copytruncate` while a `follow` run is in the middle of the live file (its rows read ahead
/// by the CSV parser), and the application writes more into the emptied file than the run had
/// read before the run reads on: the bytes before the run's offset in the file are then another
/// file's. The copy is still known by the bytes the run read (its tail fingerprint is taken from
/// what the reader consumed, not from the file), so it is not read again.
#[test]
fn copytruncate_under_a_csv_follow_run_then_more_bytes_than_were_read_keeps_each_row_once() {
    let p = Proj::new();
    conf(&p, "    copytruncate\n    rotate 5");
    pipeline(&p, "follow");
    let mut rng = Rng(26);
    let mut app = App {
        p: &p,
        next: 0,
        written: Vec::new(),
        generation: Vec::new(),
        rotations: 0,
    };
    app.append(&mut rng, 3000);
    // A batch of 1,024 rows every 1.5 s: the rotation comes between the first and the second.
    let mut run = p.spawn_env(
        "f0",
        &["-v", "resume", "--or-start", "p.toml"],
        Stdio::null(),
        &[("FAILPOINTS", "source-batch=sleep(1500)")],
    );
    assert!(wait_until(Duration::from_secs(60), || !rows_out(&p).is_empty()));
    rotate(&p, false);
    app.rotations += 1;
    let read = rows_out(&p).len();
    app.append(&mut rng, 4000);
    let all = app.written.len();
    let caught_up = wait_until(Duration::from_secs(120), || rows_out(&p).len() >= all);
    run.signal(15);
    let code = run.wait();
    let said = p.read_str("f0.stderr");
    eprintln!("{read} rows read before the rotation; caught up: {caught_up}");
    assert!(
        read < 3000,
        "the run read the whole file before the rotation"
    );
    let mut got = rows_out(&p);
    got.sort();
    check(&app.written, &got, &said);
    assert!(!said.contains("truncated or replaced"), "{said}");
    assert_eq!(code, 143, "{said}");
}

/// The rotated set (`app.csv.3` .. `app.csv`, plain files) read to its end by the parse
/// workers in small jobs, killed with SIGKILL at random and resumed: the output is the bytes of
/// an uninterrupted run, which holds each row once.
#[test]
fn a_rotated_csv_set_read_by_the_parse_workers_and_killed_gives_the_uninterrupted_bytes() {
    for scheme in ["    create\n    rotate 3", "    copytruncate\n    rotate 3"] {
        let p = Proj::new();
        conf(&p, scheme);
        pipeline(&p, "finish");
        let mut rng = Rng(25);
        let mut app = App {
            p: &p,
            next: 0,
            written: Vec::new(),
            generation: Vec::new(),
            rotations: 0,
        };
        for _ in 0..3 {
            let n = rng.range(1500, 3000);
            app.append(&mut rng, n);
            rotate(&p, false);
        }
        app.append(&mut rng, 2000);
        let env = [
            ("WEIR_PARSE_THREADS", "2"),
            ("WEIR_PARSE_JOB_BYTES", "3000"),
        ];
        let o = run_weir_env(p.root(), &["run", "-q", "p.toml"], None, &env);
        expect_exit(&o, Some(0));
        let want = p.read("out.jsonl");
        let mut got = rows_out(&p);
        let mut written = app.written.clone();
        got.sort();
        written.sort();
        check(&written, &got, "");
        std::fs::remove_file(p.p("out.jsonl")).unwrap();
        std::fs::remove_dir_all(p.p(".weir")).ok();
        let mut kills = 0;
        let mut done = false;
        for _ in 0..40 {
            let mut bg = p.spawn_env(
                "k",
                &["resume", "--or-start", "p.toml"],
                Stdio::null(),
                &[env[0], env[1], ("FAILPOINTS", "source-batch=sleep(50)")],
            );
            std::thread::sleep(Duration::from_millis(rng.range(10, 250)));
            if !bg.running() {
                assert_eq!(bg.wait(), 0, "{}", bg.stderr_str());
                done = true;
                break;
            }
            bg.kill9();
            kills += 1;
        }
        if !done {
            let o = run_weir_env(p.root(), &["resume", "-q", "p.toml"], None, &env);
            expect_exit(&o, Some(0));
        }
        eprintln!("rotated CSV set, {scheme:?}: {kills} kills");
        assert!(kills > 0, "no kill landed");
        assert!(
            p.read("out.jsonl") == want,
            "the output differs after kills"
        );
    }
}
