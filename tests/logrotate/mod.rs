//! Exactly-once on logs rotated by the real `logrotate` (installed by `.ci/run`): one config per
//! scheme (create, copytruncate, compress, delaycompress, dateext, `rotate 1`), driven with
//! `logrotate -f -s STATE CONFIG` between appends, cron-style `weir resume --or-start` runs
//! (`at_end = "pause"`), and kill -9s between and during those runs. Every line written must
//! come out exactly once, in the order written.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod csv;

/// What one scenario tried and found, printed for the record (`--nocapture`).
#[derive(Debug, Default)]
struct Figures {
    rotations: u32,
    runs: u32,
    kills: u32,
    /// Kills that hit a running weir (the others came after it had finished).
    kills_landed: u32,
    expected: usize,
    got: usize,
}

fn logrotate() -> &'static str {
    for p in [
        "/usr/sbin/logrotate",
        "/sbin/logrotate",
        "/usr/bin/logrotate",
    ] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    panic!("these tests need the real logrotate: apt-get install -y logrotate (.ci/run does)");
}

/// The application: appends numbered lines to the live log (creating it if logrotate did
/// not), each first line of a new file being `header` when given.
struct App<'a> {
    p: &'a Proj,
    next: u64,
    header: Option<&'a str>,
    written: Vec<String>,
    /// JSON lines (`{"line": ...}`, read as such) rather than plain lines.
    json: bool,
}

impl App<'_> {
    fn append(&mut self, rng: &mut Rng, n: u64) {
        let path = self.p.p("logs/app.log");
        let empty = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
        let mut text = String::new();
        if let (Some(h), true) = (self.header, empty) {
            text.push_str(h);
            text.push('\n');
            self.written.push(h.to_string());
        }
        for _ in 0..n {
            let pad = "x".repeat(rng.range(0, 40) as usize);
            let line = format!("L{:07} GET /api/v1/items {pad}", self.next);
            self.next += 1;
            if self.json {
                text.push_str(&format!("{{\"line\":\"{line}\"}}"));
            } else {
                text.push_str(&line);
            }
            text.push('\n');
            self.written.push(line);
        }
        self.p.append("logs/app.log", text);
    }
}

fn setup(p: &Proj, scheme: &str, fingerprint_bytes: Option<u64>) {
    std::fs::create_dir_all(p.p("logs")).unwrap();
    let fp = fingerprint_bytes
        .map(|n| format!("fingerprint_bytes = {n}\n"))
        .unwrap_or_default();
    p.write(
        "p.toml",
        format!(
            r#"name = "rot"
[checkpoint]
every_records = 700
[sources.log]
type = "file"
path = "logs/app.log*"
format = "lines"
at_end = "pause"
{fp}[sinks.out]
type = "file"
inputs = ["log"]
path = "out.jsonl"
"#
        ),
    );
    p.write(
        "logrotate.conf",
        format!(
            "{} {{\n    missingok\n    notifempty\n    nomail\n{scheme}\n}}\n",
            p.s("logs/app.log")
        ),
    );
}

fn rotate(p: &Proj, dateext: bool) {
    if dateext {
        // dateext names rotations by the second (dateformat -%Y%m%d-%s): one per second.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let o = Command::new(logrotate())
        .arg("-f")
        .arg("-s")
        .arg(p.p("logrotate.state"))
        .arg(p.p("logrotate.conf"))
        .output()
        .expect("logrotate runs");
    assert!(
        o.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One cron run to the end (exit 0).
#[track_caller]
fn cron(p: &Proj, f: &mut Figures) {
    f.runs += 1;
    let o = p.weir(&["-v", "resume", "--or-start", "p.toml"]);
    o.expect_code(0);
    assert!(
        !o.stderr.contains("truncated or replaced"),
        "a rotation was taken for a truncation: {}",
        o.stderr
    );
}

/// A cron run killed with SIGKILL after `ms` milliseconds (slowed down per batch, so the kill
/// often lands in the middle).
fn killed_run(p: &Proj, f: &mut Figures, ms: u64) {
    f.runs += 1;
    f.kills += 1;
    let mut bg = spawn_at(
        p.root(),
        "killed",
        &["resume", "--or-start", "p.toml"],
        Spawn {
            env: &[("FAILPOINTS", "source-batch=sleep(4)")],
            stdout: Some(Path::new("/dev/null")),
            ..Spawn::default()
        },
    );
    std::thread::sleep(Duration::from_millis(ms));
    if bg.running() {
        bg.kill9();
        f.kills_landed += 1;
    } else {
        assert_eq!(bg.wait(), 0);
    }
}

fn lines_out(p: &Proj) -> Vec<String> {
    jsonl_so_far(&p.p("out.jsonl"))
        .into_iter()
        .map(|v| v["line"].as_str().unwrap().to_string())
        .collect()
}

/// Rounds of: append, a killed run, append, rotate, a killed run, append, a full run. `rotate 1`
/// deletes a rotation at the next one, so a full run comes between rotations, as cron would.
fn scenario(
    scheme: &str,
    seed: u64,
    rounds: u32,
    header: Option<&str>,
    fp: Option<u64>,
) -> Figures {
    let p = Proj::new();
    setup(&p, scheme, fp);
    let dateext = scheme.contains("dateext");
    let mut rng = Rng(seed);
    let mut app = App {
        p: &p,
        next: 0,
        header,
        written: Vec::new(),
        json: false,
    };
    let mut f = Figures::default();
    // weir is set up before the first rotation (the first run takes the files in name order,
    // which puts `app.log` before its older rotations).
    app.append(&mut rng, 10);
    cron(&p, &mut f);
    for _ in 0..rounds {
        let n = rng.range(50, 1500);
        app.append(&mut rng, n);
        let ms = rng.range(0, 30);
        killed_run(&p, &mut f, ms);
        let n = rng.range(1, 1500);
        app.append(&mut rng, n);
        rotate(&p, dateext);
        f.rotations += 1;
        if rng.range(0, 2) == 0 {
            let ms = rng.range(0, 30);
            killed_run(&p, &mut f, ms);
        }
        // The application writes on (with `create`, into the new file).
        let n = rng.range(0, 800);
        app.append(&mut rng, n);
        cron(&p, &mut f);
    }
    let n = rng.range(1, 300);
    app.append(&mut rng, n);
    cron(&p, &mut f);
    let got = lines_out(&p);
    f.expected = app.written.len();
    f.got = got.len();
    eprintln!("logrotate scheme {scheme:?} seed {seed}: {f:?}");
    if header.is_some() {
        // Files that start with the same bytes: each line still exactly once (see README).
        let mut a = app.written.clone();
        let mut b = got.clone();
        a.sort();
        b.sort();
        assert!(a == b, "{}", diff(&app.written, &got));
    } else {
        assert!(app.written == got, "{}", diff(&app.written, &got));
    }
    f
}

/// Lines written but not read, and lines read more than once, for a failure message.
fn diff(written: &[String], got: &[String]) -> String {
    let mut count = std::collections::BTreeMap::<&str, i64>::new();
    for l in written {
        *count.entry(l).or_default() += 1;
    }
    for l in got {
        *count.entry(l).or_default() -= 1;
    }
    let missing = count.values().filter(|&&c| c > 0).sum::<i64>();
    let extra = -count.values().filter(|&&c| c < 0).sum::<i64>();
    let first_bad = written.iter().zip(got).position(|(a, b)| a != b);
    let around = |v: &[String]| {
        let i = first_bad.unwrap_or(0);
        v[i.saturating_sub(2)..(i + 3).min(v.len())].join(" | ")
    };
    format!(
        "{} lines written, {} read: {missing} missing, {extra} read more than once; first difference at {first_bad:?}: written {} ; read {}",
        written.len(),
        got.len(),
        around(written),
        around(got)
    )
}

#[test]
fn logrotate_create_keeps_each_line_once() {
    scenario("    create\n    rotate 3", 1, 5, None, None);
}

#[test]
fn logrotate_copytruncate_keeps_each_line_once() {
    scenario("    copytruncate\n    rotate 3", 2, 5, None, None);
}

/// Without `create` the application makes the new log after gzip has freed the rotated
/// file's inode, which the new log then gets (ext4 hands it out again at once).
#[test]
fn logrotate_compress_keeps_each_line_once_when_the_new_log_gets_the_freed_inode() {
    scenario("    nocreate\n    compress\n    rotate 3", 3, 5, None, None);
    scenario("    create\n    compress\n    rotate 3", 13, 3, None, None);
}

#[test]
fn logrotate_delaycompress_keeps_each_line_once_across_two_step_rotations() {
    scenario(
        "    create\n    compress\n    delaycompress\n    rotate 3",
        4,
        5,
        None,
        None,
    );
}

#[test]
fn logrotate_dateext_keeps_each_line_once() {
    scenario(
        "    create\n    dateext\n    dateformat -%Y%m%d-%s\n    rotate 3",
        5,
        3,
        None,
        None,
    );
}

#[test]
fn logrotate_rotate_1_with_compress_keeps_each_line_once_as_old_files_vanish() {
    scenario("    nocreate\n    compress\n    rotate 1", 6, 5, None, None);
}

#[test]
fn logrotate_copytruncate_compress_keeps_each_line_once() {
    scenario(
        "    copytruncate\n    compress\n    rotate 2",
        7,
        5,
        None,
        None,
    );
}

/// Every file starts with the same header line, longer than the head fingerprint: files are
/// then told apart by inode and by the bytes before the offset (the tail fingerprint).
#[test]
fn logrotate_files_with_the_same_first_bytes_keep_each_line_once() {
    let header = "#Version: 1.0 #Fields: date time cs-method cs-uri-stem sc-status time-taken";
    for (scheme, seed) in [
        ("    nocreate\n    compress\n    rotate 3", 8),
        ("    copytruncate\n    rotate 3", 9),
        (
            "    create\n    compress\n    delaycompress\n    rotate 1",
            10,
        ),
    ] {
        scenario(scheme, seed, 5, Some(header), Some(64));
    }
}

/// The inode of the compressed file handed to the new log, for certain: the rotated file is
/// compressed by hand, emptied and renamed back as the live log (the kernel does not always
/// hand a freed inode out again at once, so logrotate alone may not show it).
#[test]
fn a_compressed_rotation_whose_inode_comes_back_as_the_new_log_is_read_once() {
    let p = Proj::new();
    setup(&p, "    create", None);
    let mut rng = Rng(11);
    let mut app = App {
        p: &p,
        next: 0,
        header: None,
        written: Vec::new(),
        json: false,
    };
    let mut f = Figures::default();
    for round in 0..4 {
        app.append(&mut rng, 300);
        cron(&p, &mut f);
        app.append(&mut rng, 200);
        let live = p.p("logs/app.log");
        let rotated = p.p(&format!("logs/app.log.{round}"));
        std::fs::rename(&live, &rotated).unwrap();
        let st = Command::new("gzip")
            .arg("-k")
            .arg(&rotated)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&rotated)
            .unwrap()
            .set_len(0)
            .unwrap();
        std::fs::rename(&rotated, &live).unwrap();
        app.append(&mut rng, 100);
        cron(&p, &mut f);
    }
    let got = lines_out(&p);
    assert!(app.written == got, "{}", diff(&app.written, &got));
}

/// A log of `format` ("lines", "jsonl" or "csv") that a test writes by hand, the copy and the
/// truncation of `copytruncate` as separate steps: rows are numbered; `written` holds each
/// row's id as the output names it.
struct ByHand<'a> {
    p: &'a Proj,
    format: &'a str,
    next: u64,
    written: Vec<String>,
}

impl ByHand<'_> {
    fn new<'a>(p: &'a Proj, format: &'a str) -> ByHand<'a> {
        std::fs::create_dir_all(p.p("logs")).unwrap();
        p.write(
            "p.toml",
            format!(
                r#"name = "rot"
[checkpoint]
every_records = 100
[sources.log]
type = "file"
path = "logs/app.log*"
format = "{format}"
at_end = "pause"
[sinks.out]
type = "file"
inputs = ["log"]
path = "out.jsonl"
"#
            ),
        );
        ByHand {
            p,
            format,
            next: 0,
            written: Vec::new(),
        }
    }

    fn append(&mut self, n: u64) {
        let live = self.p.p("logs/app.log");
        let empty = std::fs::metadata(&live).map_or(true, |m| m.len() == 0);
        let mut text = String::new();
        if self.format == "csv" && empty {
            text.push_str("id,msg\n");
        }
        for _ in 0..n {
            let id = format!("L{:07}", self.next);
            self.next += 1;
            text.push_str(&match self.format {
                "jsonl" => format!("{{\"id\":\"{id}\",\"msg\":\"GET /api/v1/items\"}}\n"),
                "csv" => format!("{id},\"GET /a,b\"\n"),
                _ => format!("{id} GET /api/v1/items\n"),
            });
            self.written.push(id);
        }
        self.p.append("logs/app.log", text);
    }

    /// The first `len` bytes of the live log as `app.log.1`, a new file (a partial copy while
    /// `len` is less than the log).
    fn copy(&self, len: Option<usize>) {
        let mut b = self.p.read("logs/app.log");
        b.truncate(len.unwrap_or(b.len()));
        std::fs::remove_file(self.p.p("logs/app.log.1")).ok();
        self.p.write("logs/app.log.1", b);
    }

    fn truncate(&self) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.p.p("logs/app.log"))
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    /// A run to the end: exit 0, no file taken for a truncated one; what it said.
    #[track_caller]
    fn run(&self) -> String {
        let o = self.p.weir(&["-v", "resume", "--or-start", "p.toml"]);
        o.expect_code(0);
        assert!(
            !o.stderr.contains("truncated or replaced"),
            "a copy was taken for a new file: {}",
            o.stderr
        );
        o.stderr.clone()
    }

    #[track_caller]
    fn check(&self) {
        let got: Vec<String> =
            parse_jsonl(&std::fs::read_to_string(self.p.p("out.jsonl")).unwrap_or_default())
                .into_iter()
                .map(|v| {
                    let s = v["id"].as_str().or(v["line"].as_str()).unwrap_or("?");
                    s.split(' ').next().unwrap().to_string()
                })
                .collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert!(
            self.written == sorted,
            "{} ({})",
            diff(&self.written, &got),
            self.format
        );
    }
}

/// `copytruncate` step by step, a run between each step: a run that comes while the copy is
/// being made (partial) or made and the live log not yet truncated sees the copy beside the
/// original, which still holds the same bytes under its inode. The copy is no new file; once
/// the original is truncated it is the file weir read, and continues where weir was in it.
#[test]
fn a_copy_seen_before_copytruncate_truncates_its_original_is_not_read_again() {
    for format in ["lines", "jsonl", "csv"] {
        let p = Proj::new();
        let mut app = ByHand::new(&p, format);
        app.append(300);
        app.run();
        app.append(200);
        let half = p.read("logs/app.log").len() / 2;
        app.copy(Some(half));
        let said = app.run();
        assert!(said.contains("a copy being made"), "{said}");
        app.append(50);
        app.copy(None);
        app.run();
        app.truncate();
        app.append(100);
        let said = app.run();
        assert!(said.contains("app.log is now"), "{said}");
        app.check();
    }
}

/// The same when the application wrote between the copy and the truncation and a run read
/// those rows from the original before it was truncated: the copy holds fewer bytes than weir
/// read there. The copy, seen (and remembered in the checkpoint) while the original was still
/// in place, is known as read to its end; nothing is read twice, and those rows (which
/// `copytruncate` loses when no reader has them yet) come out once.
#[test]
fn a_copy_shorter_than_what_was_read_of_its_original_is_not_read_again() {
    for format in ["lines", "jsonl", "csv"] {
        let p = Proj::new();
        let mut app = ByHand::new(&p, format);
        app.append(300);
        app.run();
        app.append(200);
        app.copy(None);
        app.append(40);
        app.run();
        app.truncate();
        app.append(100);
        let said = app.run();
        assert!(said.contains("read to its end"), "{said}");
        app.check();
    }
}

/// gzip writes `x.gz` before it removes `x` (logrotate's `compress`): a run in between sees
/// both, the `.gz` (partial, then whole) holding the content of a file weir knows and that is
/// still there. It is read once, from the plain file, and then known as the `.gz`.
#[test]
fn a_gz_seen_before_gzip_removes_its_input_is_not_read_again() {
    let p = Proj::new();
    let mut app = ByHand::new(&p, "jsonl");
    app.append(2000);
    app.run();
    std::fs::rename(p.p("logs/app.log"), p.p("logs/app.log.1")).unwrap();
    app.append(100);
    let st = Command::new("gzip")
        .arg("-k")
        .arg(p.p("logs/app.log.1"))
        .status()
        .unwrap();
    assert!(st.success());
    let gz = p.read("logs/app.log.1.gz");
    // gzip half-way through.
    p.write("logs/app.log.1.gz", &gz[..gz.len() / 2]);
    let said = app.run();
    assert!(said.contains("a copy being made"), "{said}");
    assert!(!said.contains("gzip file"), "{said}");
    p.append("logs/app.log.1.gz", &gz[gz.len() / 2..]);
    app.append(100);
    let said = app.run();
    assert!(said.contains("a copy being made"), "{said}");
    std::fs::remove_file(p.p("logs/app.log.1")).unwrap();
    app.append(100);
    let said = app.run();
    assert!(said.contains("app.log.1.gz (same content)"), "{said}");
    app.check();
}

/// A `follow` run over JSON lines (or plain lines) while the application appends and logrotate
/// rotates, killed with SIGKILL now and then and resumed; at the end, once every line is out,
/// SIGTERM. Each line once, each file's lines in the order written (the twin of the CSV one in
/// `csv`).
fn follow_scenario(format: &str, scheme: &str, seed: u64, rounds: u32) {
    let p = Proj::new();
    setup(&p, scheme, None);
    p.write(
        "p.toml",
        p.read_str("p.toml")
            .replace("format = \"lines\"", &format!("format = \"{format}\""))
            .replace("at_end = \"pause\"", "at_end = \"follow\"")
            .replace("every_records = 700", "every_records = 300"),
    );
    let mut rng = Rng(seed);
    let mut app = App {
        p: &p,
        next: 0,
        header: None,
        written: Vec::new(),
        json: format == "jsonl",
    };
    // Per line written: how many rotations came before it (which file holds it).
    let mut generation = Vec::new();
    let mut rotations = 0u32;
    let mut append = |app: &mut App, rng: &mut Rng, n: u64, rotations: u32| {
        app.append(rng, n);
        generation.resize(app.written.len(), rotations);
    };
    append(&mut app, &mut rng, 10, 0);
    let start = |tag: &str| {
        p.spawn(
            tag,
            &["-v", "resume", "--or-start", "p.toml"],
            Stdio::null(),
        )
    };
    let mut run = start("f0");
    let mut kills = 0;
    for _ in 0..rounds {
        let n = rng.range(50, 800);
        append(&mut app, &mut rng, n, rotations);
        std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
        let n = rng.range(1, 800);
        append(&mut app, &mut rng, n, rotations);
        rotate(&p, false);
        rotations += 1;
        let n = rng.range(0, 400);
        append(&mut app, &mut rng, n, rotations);
        std::thread::sleep(Duration::from_millis(rng.range(0, 300)));
        if rng.range(0, 2) == 0 {
            assert!(run.running(), "the follow run ended: {}", run.stderr_str());
            run.kill9();
            kills += 1;
            run = start(&format!("f{kills}"));
        }
    }
    let all = app.written.len();
    let (code, caught_up) = stop_follow_when_caught_up(
        &mut run,
        || start(&format!("f{}", kills + 1)),
        || lines_out(&p).len(),
        all,
    );
    let runs = kills + u32::from(p.p(&format!("f{}.stderr", kills + 1)).exists());
    let got = lines_out(&p);
    eprintln!(
        "{format} logrotate (follow) {scheme:?} seed {seed}: {rounds} rotations, {kills} kills, {runs} resumes, {} lines, caught up: {caught_up}",
        got.len()
    );
    let said: String = (0..=runs)
        .map(|i| format!("run {i}:\n{}", p.read_str(&format!("f{i}.stderr"))))
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert!(
        app.written == sorted,
        "{}\n{said}",
        diff(&app.written, &got)
    );
    // Files found by one scan are taken in name order (docs/reference.md), which puts the live
    // log before its older rotation: only each file's lines are in the order written.
    for g in 0..=rotations {
        let ids: std::collections::BTreeSet<&str> = app
            .written
            .iter()
            .zip(&generation)
            .filter(|(_, &x)| x == g)
            .map(|(l, _)| l.as_str())
            .collect();
        let of_g = |v: &[String]| -> Vec<String> {
            v.iter()
                .filter(|l| ids.contains(l.as_str()))
                .cloned()
                .collect()
        };
        assert!(
            of_g(&app.written) == of_g(&got),
            "rotation {g}: {}\n{said}",
            diff(&of_g(&app.written), &of_g(&got))
        );
    }
    assert_eq!(code, 143, "{}", run.stderr_str());
}

#[test]
fn logrotate_copytruncate_under_follow_keeps_each_json_line_once() {
    follow_scenario("jsonl", "    copytruncate\n    rotate 5", 31, 5);
}

#[test]
fn logrotate_create_under_follow_keeps_each_json_line_once() {
    follow_scenario("jsonl", "    create\n    rotate 5", 32, 5);
}
