//! Bad input files and records: each is bad input once, named, under the source's `on_error`,
//! and the run goes on (or stops with exit 3 under `fail`); nothing good is lost, nothing bad
//! is kept in part.

use crate::common::*;
use std::io::Write;
use std::process::Command;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn source(path: &str, on_error: &str) -> String {
    let dl = if on_error == "dead_letter" {
        "dead_letter = \"dl.jsonl\"\n"
    } else {
        ""
    };
    format!("[sources.s]\ntype = \"file\"\npath = \"{path}\"\non_error = \"{on_error}\"\n{dl}")
}

const SINK: &str = "[sinks.o]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"out.jsonl\"\n";

fn run_stats(p: &Proj) -> (Out, serde_json::Value) {
    let o = p.weir(&["run", "--fresh", "p.toml", "--stats", "stats.json"]);
    o.expect_no_panic();
    let st = if p.exists("stats.json") {
        read_stats(&p.p("stats.json"))
    } else {
        serde_json::Value::Null
    };
    (o, st)
}

const GOOD: &str = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":5}\n";

fn bad_gz_glob(p: &Proj) -> Vec<&'static str> {
    let good = gzip(b"{\"a\":1}\n{\"a\":2}\n");
    p.write("logs/a.jsonl.gz", &good);
    p.write("logs/b.jsonl.gz", b"");
    p.write("logs/c.jsonl.gz", b"{\"not\":\"gzip\"}\n");
    p.write("logs/d.jsonl.gz", &gzip(b"{\"a\":3}\n{\"a\":4}\n")[..20]);
    p.write("logs/e.jsonl.gz", gzip(b"{\"a\":5}\n"));
    vec!["b.jsonl.gz", "c.jsonl.gz", "d.jsonl.gz"]
}

#[test]
fn a_bad_gzip_file_in_a_glob_is_bad_input_named_by_file() {
    // skip: counted, the run goes on to the next files.
    let p = Proj::new();
    bad_gz_glob(&p);
    p.write("p.toml", source("logs/*.jsonl.gz", "skip") + SINK);
    let (o, st) = run_stats(&p);
    o.expect_code(0);
    // The truncated file's first line came through whole before the damage.
    assert_eq!(p.read_str("out.jsonl"), GOOD);
    assert_eq!(node_stats(&st, "s")["errors"], 3, "{st}");

    // dead_letter: one dead letter per bad file, naming the file, not the glob.
    let p = Proj::new();
    let bad = bad_gz_glob(&p);
    p.write("p.toml", source("logs/*.jsonl.gz", "dead_letter") + SINK);
    let (o, _) = run_stats(&p);
    o.expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), GOOD);
    let dl = parse_jsonl(&p.read_str("dl.jsonl"));
    assert_eq!(dl.len(), 3, "{dl:?}");
    for (d, name) in dl.iter().zip(&bad) {
        let file = d["file"].as_str().unwrap();
        assert!(file.ends_with(&format!("logs/{name}")), "{d}");
        assert!(d["error"].as_str().unwrap().contains("gzip"), "{d}");
    }
    // A resume reads none of them again.
    let o = p.weir(&["resume", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(parse_jsonl(&p.read_str("dl.jsonl")).len(), 3);

    // fail: exit 3 naming the first bad file.
    let p = Proj::new();
    bad_gz_glob(&p);
    p.write("p.toml", source("logs/*.jsonl.gz", "fail") + SINK);
    let (o, _) = run_stats(&p);
    o.expect_code(3);
    assert!(
        o.stderr.contains("logs/b.jsonl.gz:1 (byte offset 0)"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains('*'), "names the glob: {}", o.stderr);
}

#[test]
fn a_csv_header_that_is_not_utf8_makes_the_file_bad_input_not_its_first_row_a_header() {
    let p = Proj::new();
    p.write("in/a.csv", b"na\xffme,n\nann,1\nbob,2\n");
    p.write("in/b.csv", "name,n\ncid,3\n");
    p.write("p.toml", source("in/*.csv", "skip") + SINK);
    let (o, st) = run_stats(&p);
    o.expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), "{\"name\":\"cid\",\"n\":3}\n");
    assert_eq!(
        node_stats(&st, "s")["errors"],
        1,
        "one bad file, one error: {st}"
    );

    p.write("p.toml", source("in/*.csv", "dead_letter") + SINK);
    let (o, _) = run_stats(&p);
    o.expect_code(0);
    let dl = parse_jsonl(&p.read_str("dl.jsonl"));
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert!(
        dl[0]["file"].as_str().unwrap().ends_with("in/a.csv"),
        "{dl:?}"
    );
    assert_eq!(dl[0]["line"], 1);
    assert!(
        dl[0]["error"].as_str().unwrap().contains("header"),
        "{dl:?}"
    );

    p.write("p.toml", source("in/*.csv", "fail") + SINK);
    let (o, _) = run_stats(&p);
    o.expect_code(3);
    assert!(o.stderr.contains("in/a.csv:1"), "{}", o.stderr);
}

#[test]
fn records_an_aggregate_rejects_leave_no_group() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        "{\"key\":\"bad\",\"v\":\"x\"}\n{\"key\":\"ok\",\"v\":2}\n{\"key\":\"ok\",\"v\":[]}\n",
    );
    p.write(
        "p.toml",
        source("in.jsonl", "skip")
            + "[transforms.a]\ntype = \"aggregate\"\ninputs = [\"s\"]\nkey = \".key\"\n\
               aggs = { n = \"count\", s = \"sum(.v)\" }\n"
            + &SINK.replace("[\"s\"]", "[\"a\"]"),
    );
    let (o, st) = run_stats(&p);
    o.expect_code(0);
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"key\":\"ok\",\"n\":1,\"s\":2}\n"
    );
    assert_eq!(node_stats(&st, "a")["errors"], 2, "{st}");
}

#[test]
fn one_bad_record_in_a_map_is_one_dead_letter() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        "{\"a\":[1,{\"x\":1},2]}\n{\"a\":[{\"x\":2},{\"x\":3}]}\n",
    );
    p.write(
        "p.toml",
        source("in.jsonl", "dead_letter")
            + "[transforms.m]\ntype = \"map\"\ninputs = [\"s\"]\nexpr = \".a[]\"\n"
            + &SINK.replace("[\"s\"]", "[\"m\"]"),
    );
    let (o, st) = run_stats(&p);
    o.expect_code(0);
    let dl = parse_jsonl(&p.read_str("dl.jsonl"));
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(dl[0]["line"], 1);
    assert_eq!(node_stats(&st, "m")["errors"], 1, "{st}");
    // The bad record is rejected whole; the good one gives both its outputs.
    assert_eq!(p.read_str("out.jsonl"), "{\"x\":2}\n{\"x\":3}\n");
}

/// What jq makes of a file (the oracle for the byte order mark).
fn jq_reads(path: &std::path::Path) -> Option<String> {
    let o = Command::new("jq")
        .arg("-c")
        .arg(".")
        .arg(path)
        .output()
        .ok()?;
    assert!(
        o.status.success(),
        "jq: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8(o.stdout).unwrap())
}

#[test]
fn a_byte_order_mark_at_the_start_is_skipped_as_jq_does() {
    let bom = "\u{feff}";
    let jsonl = format!("{bom}{{\"a\":1}}\n{{\"a\":2}}\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "in.jsonl",
            jsonl.clone().into_bytes(),
            "{\"a\":1}\n{\"a\":2}\n",
        ),
        (
            "in.jsonl.gz",
            gzip(jsonl.as_bytes()),
            "{\"a\":1}\n{\"a\":2}\n",
        ),
        (
            "in.log",
            format!("{bom}hello\n").into_bytes(),
            "{\"line\":\"hello\"}\n",
        ),
        (
            "in.csv",
            format!("{bom}x,y\n1,2\n").into_bytes(),
            "{\"x\":1,\"y\":2}\n",
        ),
    ];
    for at_end in ["finish", "pause"] {
        for (name, data, want) in &cases {
            let p = Proj::new();
            p.write(name, data);
            p.write(
                "p.toml",
                source(name, "fail")
                    .replace("on_error", &format!("at_end = \"{at_end}\"\non_error"))
                    + SINK,
            );
            let (o, _) = run_stats(&p);
            o.expect_code(0);
            assert_eq!(p.read_str("out.jsonl"), *want, "{name} {at_end}");
        }
    }
    // From stdin too.
    let p = Proj::new();
    p.write("p.toml", source("-", "fail") + SINK);
    let o = p.weir_stdin(&["run", "p.toml"], jsonl.as_bytes());
    o.expect_code(0).expect_no_panic();
    assert_eq!(p.read_str("out.jsonl"), "{\"a\":1}\n{\"a\":2}\n");
    // jq agrees, where it is installed (CI installs it).
    p.write("bom.jsonl", &jsonl);
    match jq_reads(&p.p("bom.jsonl")) {
        Some(j) => assert_eq!(j, "{\"a\":1}\n{\"a\":2}\n"),
        None => eprintln!("SKIPPED the jq comparison: jq is not installed"),
    }
}

/// CSV read on the source's thread (a paused file, stdin) after a byte order mark: offsets
/// count its 3 bytes, and a resumed run goes on from the true offset (it started 3 bytes early,
/// and stdin's CRC left the mark out, so its resume was refused).
#[test]
fn csv_after_a_byte_order_mark_has_true_offsets_and_resumes_where_it_stopped() {
    let head = "\u{feff}x,y\n1,2\nbad\n";
    let more = "3,4\n";
    let want = "{\"x\":1,\"y\":2}\n{\"x\":3,\"y\":4}\n";
    let bad_at = format!("\"line\":3,\"offset\":{}", head.len() - 4);
    // A file read as a stream (`pause`), appended to, then resumed.
    let p = Proj::new();
    p.write("in.csv", head);
    p.write(
        "p.toml",
        source("in.csv", "dead_letter").replace("on_error", "at_end = \"pause\"\non_error") + SINK,
    );
    p.weir(&["run", "p.toml"]).expect_code(0).expect_no_panic();
    assert!(
        p.read_str("dl.jsonl").contains(&bad_at),
        "{}",
        p.read_str("dl.jsonl")
    );
    p.append("in.csv", more);
    p.weir(&["resume", "p.toml", "--at-end", "finish"])
        .expect_code(0)
        .expect_no_panic();
    assert_eq!(p.read_str("out.jsonl"), want);
    // Stdin: resumed with the same bytes and more.
    let p = Proj::new();
    p.write(
        "p.toml",
        source("-", "dead_letter")
            .replace("on_error", "format = \"csv\"\nat_end = \"pause\"\non_error")
            + SINK,
    );
    p.weir_stdin(&["run", "p.toml"], head.as_bytes())
        .expect_code(0)
        .expect_no_panic();
    assert!(
        p.read_str("dl.jsonl").contains(&bad_at),
        "{}",
        p.read_str("dl.jsonl")
    );
    p.weir_stdin(
        &["resume", "p.toml", "--at-end", "finish"],
        format!("{head}{more}").as_bytes(),
    )
    .expect_code(0)
    .expect_no_panic();
    assert_eq!(p.read_str("out.jsonl"), want);
}

#[test]
fn stats_count_what_sinks_write() {
    let p = Proj::new();
    p.write("in.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    p.write("p.toml", source("in.jsonl", "fail") + SINK);
    let (o, st) = run_stats(&p);
    o.expect_code(0);
    assert_eq!(node_stats(&st, "o")["records_in"], 3, "{st}");
    assert_eq!(node_stats(&st, "o")["records_out"], 3, "{st}");
}

#[test]
fn checkpoints_exits_1_when_the_newest_checkpoint_is_invalid() {
    let p = Proj::new();
    p.write("in.jsonl", "{\"a\":1}\n");
    p.write(
        "p.toml",
        source("in.jsonl", "fail").replace("\"fail\"", "\"fail\"\nat_end = \"pause\"") + SINK,
    );
    p.weir(&["run", "p.toml"]).expect_code(0);
    p.append("in.jsonl", "{\"a\":2}\n");
    p.weir(&["resume", "p.toml"]).expect_code(0);
    let o = p.weir(&["checkpoints", "p.toml"]);
    o.expect_code(0);
    let ck = p.ckpts(".weir/p");
    assert!(ck.len() >= 2, "{ck:?}");
    let newest = ck.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(newest, bytes).unwrap();
    let o = p.weir(&["checkpoints", "p.toml"]);
    o.expect_code(1).expect_no_panic();
    assert!(o.stdout_str().contains("INVALID"), "{}", o.stdout_str());
    assert!(
        o.stderr.contains("newest checkpoint") && o.stderr.contains("would continue from"),
        "{}",
        o.stderr
    );
}

#[test]
fn control_bytes_in_file_names_and_input_are_escaped_on_stderr() {
    let p = Proj::new();
    let name = "in\x1b[31m\nfake.jsonl";
    p.write(name, "{\"a\":1}\nbad \x1b]0;pwned\x07 \x00 line\n");
    p.write("p.toml", source("in*.jsonl", "fail") + SINK);
    let (o, _) = run_stats(&p);
    o.expect_code(3);
    let raw = o.stderr.as_bytes();
    assert!(
        !raw.contains(&0x1b) && !raw.contains(&0) && !raw.contains(&7),
        "{:?}",
        o.stderr
    );
    assert!(
        o.stderr.contains("in\\e[31m\\nfake.jsonl:2"),
        "{:?}",
        o.stderr
    );
    assert_eq!(o.stderr.trim_end().lines().count(), 1, "{:?}", o.stderr);
}

/// The SPEC's rule, computed here: a record is a duplicate iff a kept record with the same key
/// is less than `ttl` away from it in event time, on either side.
fn dedup_oracle(recs: &[(u32, i64)], ttl: i64) -> Vec<usize> {
    let mut kept: Vec<(u32, i64)> = Vec::new();
    let mut out = Vec::new();
    for (i, &(k, t)) in recs.iter().enumerate() {
        if !kept.iter().any(|&(kk, kt)| kk == k && (t - kt).abs() < ttl) {
            kept.push((k, t));
            out.push(i);
        }
    }
    out
}

/// The first record kept by one and not the other, rather than two lists of thousands.
#[track_caller]
fn same_kept(got: &[usize], want: &[usize], what: &str) {
    if got != want {
        let first = (0..).find(|&i| got.get(i) != want.get(i)).unwrap();
        panic!(
            "{what}: {} kept, {} by the rule; first difference at position {first}: weir kept {:?}, the rule {:?}",
            got.len(),
            want.len(),
            got.get(first),
            want.get(first)
        );
    }
}

fn dedup_line(i: usize, k: u32, t: i64) -> String {
    format!("{{\"i\":{i},\"k\":{k},\"t\":{t}}}\n")
}

#[test]
fn dedup_follows_the_rule_across_batch_boundaries_and_resumes() {
    // Out-of-order duplicates (up to 9 s back, ttl 10 s) spread over several 1,024-record
    // batches, with time jumps so purges happen in between.
    let ttl_s = 10;
    let mut rng = Rng(15);
    let mut recs = Vec::new();
    let mut clock = 1_000i64;
    let mut kept_at = 0;
    for i in 0..5_000 {
        if i == 1_000 {
            kept_at = clock;
        }
        if i % 700 == 0 {
            clock += 25;
        }
        clock += rng.range(0, 2) as i64;
        let (k, t) = match i {
            // On either side: a key kept, then the same key 5 s before it.
            500 => (77, clock),
            505 => (77, clock - 5),
            // Astride the first batch boundary (records 1,024 on are the second batch): a
            // key kept, records that move the clock past its ttl (so a purge may run), then
            // the same key 1 s after the kept one.
            1_000 => (99, clock),
            1_001..=1_022 => (rng.range(0, 40) as u32, kept_at + 11),
            1_030 => (99, kept_at + 1),
            _ => (rng.range(0, 40) as u32, clock - rng.range(0, 10) as i64),
        };
        if i == 1_022 {
            clock = kept_at + 11;
        }
        recs.push((k, t));
    }
    let want: Vec<usize> = dedup_oracle(&recs, ttl_s);
    let lines: Vec<String> = recs
        .iter()
        .enumerate()
        .map(|(i, &(k, t))| dedup_line(i, k, t))
        .collect();
    let toml = |at_end: &str| {
        format!(
            "[sources.s]\ntype = \"file\"\npath = \"in.jsonl\"\nat_end = \"{at_end}\"\n\
             [transforms.d]\ntype = \"dedup\"\ninputs = [\"s\"]\nkey = \".k\"\ntime = \".t\"\nttl = \"{ttl_s}s\"\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"d\"]\npath = \"out.jsonl\"\n"
        )
    };
    let kept = |p: &Proj| -> Vec<usize> {
        parse_jsonl(&p.read_str("out.jsonl"))
            .iter()
            .map(|v| v["i"].as_u64().unwrap() as usize)
            .collect()
    };
    let one = Proj::new();
    one.write("in.jsonl", lines.concat());
    one.write("p.toml", toml("finish"));
    one.weir(&["run", "p.toml"])
        .expect_code(0)
        .expect_no_panic();
    same_kept(&kept(&one), &want, "one run against the rule");
    assert!(
        want.contains(&500) && !want.contains(&505),
        "the case is in the data"
    );
    assert!(
        want.contains(&1_000) && !want.contains(&1_030),
        "the case is in the data"
    );

    // Paused and resumed at several cuts (mid-batch too): the same output.
    for cut in [1_001, 2_500, 4_099] {
        let p = Proj::new();
        p.write("in.jsonl", lines[..cut].concat());
        p.write("p.toml", toml("pause"));
        p.weir(&["run", "p.toml"]).expect_code(0);
        p.append("in.jsonl", lines[cut..].concat());
        p.weir(&["resume", "p.toml"]).expect_code(0);
        same_kept(&kept(&p), &want, &format!("paused after {cut} records"));
    }
}

/// Runs weir as the user `nobody`, for permission checks that root would pass; `None` (and
/// a loud note) where that cannot be done.
fn weir_as_nobody(dir: &std::path::Path, args: &[&str]) -> Option<Out> {
    let is_root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !is_root || !setpriv.exists() {
        eprintln!("SKIPPED: permission test needs root and setpriv to run weir as nobody");
        return None;
    }
    Some(super::weir_under(
        &[
            "/usr/bin/setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
        ],
        dir,
        args,
    ))
}

#[test]
fn an_unreadable_directory_is_permission_denied_not_no_input() {
    use std::os::unix::fs::PermissionsExt;
    let p = Proj::new();
    let set = |rel: &str, mode: u32| {
        std::fs::set_permissions(p.p(rel), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    p.write("locked/a.jsonl", "{\"a\":1}\n");
    p.write("glob.toml", source("locked/*.jsonl", "fail") + SINK);
    p.write("file.toml", source("locked/a.jsonl", "fail") + SINK);
    std::fs::create_dir(p.p("state")).unwrap();
    set("state", 0o777);
    set(".", 0o755);
    for (mode, toml) in [
        (0o700, "glob.toml"),
        (0o711, "glob.toml"),
        (0o700, "file.toml"),
    ] {
        set("locked", mode);
        let state = format!("state/{toml}{mode}");
        let Some(o) = weir_as_nobody(p.root(), &["run", toml, "--state", &state]) else {
            return;
        };
        o.expect_no_panic();
        assert_eq!(o.code, 2, "{toml} {mode:o}: {}", o.stderr);
        assert!(
            o.stderr.contains("Permission denied") && o.stderr.contains("/locked"),
            "{}",
            o.stderr
        );
        assert!(
            !o.stderr.contains("no file matches") && !o.stderr.contains("does not exist"),
            "{}",
            o.stderr
        );
    }
    // An unwritable state directory is a usage error too.
    set("locked", 0o755);
    set("state", 0o755);
    if let Some(o) = weir_as_nobody(p.root(), &["run", "file.toml", "--state", "state/x"]) {
        assert_eq!(o.code, 2, "{}", o.stderr);
        assert!(o.stderr.contains("state directory"), "{}", o.stderr);
    }
}
