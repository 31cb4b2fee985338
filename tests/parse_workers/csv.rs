//! CSV and TSV files read by the decode pool: the output, dead letters, stats and final state
//! of the sequential reader, whatever the number of workers and the job size (small jobs cut
//! inside quoted fields, which the pool must notice and cut again); and a parallel run killed
//! with SIGKILL and resumed writes the bytes of an uninterrupted run.

use super::{kill_and_resume_until_done, run_pooled_env, run_with_env, PooledRun};
use crate::common::*;
use std::process::Stdio;
use std::time::Duration;

/// A header and `n` rows: quoted commas and doubled quotes, a quoted newline (and a quoted
/// CRLF) every so often, a stray quote in an unquoted field, CRLF line ends, blank lines, rows
/// of the wrong width and a cell that is not UTF-8.
pub(crate) fn table(n: u32, delim: char) -> Vec<u8> {
    let d = delim;
    let mut t = format!("i{d}user{d}status{d}bytes{d}agent\n").into_bytes();
    for i in 0..n {
        let status = [200, 404, 500, 301, 503][(i % 5) as usize];
        let agent = match i % 13 {
            0 => "\"two\nlines, \"\"quoted\"\"\"".to_string(),
            1 => "\"crlf\r\ninside\"".to_string(),
            2 => "5'10\"".to_string(),
            3 => format!("\"a{d}b\""),
            _ => format!("agent-{}", "x".repeat((i % 17) as usize)),
        };
        if i % 97 == 0 {
            t.push(b'\n');
        }
        if i % 211 == 5 {
            t.extend_from_slice(format!("{i}{d}short\n").as_bytes());
            continue;
        }
        t.extend_from_slice(
            format!("{i}{d}u{}{d}{status}{d}{}{d}", i % 37, i * 7 % 1000).as_bytes(),
        );
        if i % 307 == 11 {
            t.extend_from_slice(b"bad\xffutf8");
        } else {
            t.extend_from_slice(agent.as_bytes());
        }
        t.extend_from_slice(if i % 7 == 0 { b"\r\n" } else { b"\n" });
    }
    t
}

/// A filter the source's only consumer (the workers run it), then a map; and a second pipeline
/// where the source feeds a filter and an aggregate (the workers only parse).
fn pipelines(input: &str) -> [String; 2] {
    let source = format!(
        "[checkpoint]\nevery = \"5ms\"\n[sources.in]\ntype = \"file\"\npath = \"{input}\"\n\
         on_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"\n"
    );
    [
        format!(
            "{source}[transforms.f]\ntype = \"filter\"\ninputs = [\"in\"]\n\
             expr = '.status >= 400 and .user != \"u3\"'\n[transforms.m]\ntype = \"map\"\n\
             inputs = [\"f\"]\nexpr = \"{{i, user, agent}}\"\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"o.jsonl\"\n"
        ),
        format!(
            "{source}[transforms.f]\ntype = \"filter\"\ninputs = [\"in\"]\nexpr = \".status >= 500\"\n\
             [transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".user\"\n\
             aggs = {{ n = \"count\", b = \"sum(.bytes)\" }}\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"o.jsonl\"\n\
             [sinks.a]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"a.jsonl\"\n"
        ),
    ]
}

/// The source's state in `weir inspect`'s text, without what differs between projects (the
/// file's path and inode).
fn source_state(inspect: &str) -> serde_json::Value {
    let line = inspect
        .lines()
        .find(|l| l.contains("\"consumed\""))
        .unwrap_or_else(|| panic!("no source state in {inspect}"));
    let mut v: serde_json::Value = serde_json::from_str(
        line.trim()
            .trim_start_matches("\"state\": ")
            .trim_end_matches(','),
    )
    .unwrap();
    for f in v["source"]["files"].as_array_mut().unwrap() {
        f["path"] = serde_json::Value::Null;
        f["ino"] = serde_json::Value::Null;
    }
    v
}

#[test]
fn csv_and_tsv_read_by_the_pool_give_what_the_sequential_reader_gives() {
    for (name, delim) in [("in.csv", ','), ("in.tsv", '\t')] {
        let data = table(12_000, delim);
        // A third pipeline: a filter that fails on every status-500 row (a string plus a
        // number). The workers run it and keep those rows for the filter to report, which it
        // does only for the jobs they are in: the others go out judged (`Batch::judged`).
        let failing = pipelines(name)[0].replace(
            "expr = '.status >= 400 and .user != \"u3\"'",
            "expr = 'if .status == 500 then .agent + 1 > 0 else .status >= 400 end'",
        );
        assert!(failing.contains("agent + 1"), "{failing}");
        for toml in pipelines(name).into_iter().chain([failing]) {
            let mut runs: Vec<(String, PooledRun, Vec<u8>)> = Vec::new();
            // (workers, job bytes): the sequential reader, then pools with jobs of the usual
            // size and small ones (many cut inside a quoted field).
            for (threads, job) in [("0", "131072"), ("1", "131072"), ("2", "700"), ("3", "61")] {
                let p = Proj::new();
                p.write(name, &data);
                p.write("p.toml", &toml);
                let r = run_pooled_env(
                    &p,
                    &[
                        ("WEIR_PARSE_THREADS", threads),
                        ("WEIR_PARSE_JOB_BYTES", job),
                    ],
                );
                let agg = std::fs::read(p.root().join("a.jsonl")).unwrap_or_default();
                runs.push((format!("{threads} workers, {job}-byte jobs"), r, agg));
            }
            let (_, want, want_agg) = &runs[0];
            assert!(want.out.len() > 10_000, "{name}: little output");
            if toml.contains("agent + 1") {
                let failed = want.dead.matches("\"node\":\"f\"").count();
                assert!(failed > 2000, "{name}: {failed} filter errors");
            }
            assert!(want.dead.lines().count() > 80, "{name}: {}", want.dead);
            assert!(
                want.dead.contains("invalid UTF-8 in field 5"),
                "{}",
                want.dead
            );
            for (what, got, agg) in &runs[1..] {
                assert!(got.out == want.out, "{name} {what}: output differs");
                assert!(agg == want_agg, "{name} {what}: aggregate differs");
                assert_eq!(got.dead, want.dead, "{name} {what}: dead letters differ");
                assert_eq!(got.counts, want.counts, "{name} {what}: stats differ");
                assert_eq!(
                    source_state(&got.state),
                    source_state(&want.state),
                    "{name} {what}: final state differs"
                );
            }
        }
    }
}

/// A CSV run with two parse workers and small jobs, killed with SIGKILL at seeded random
/// moments and resumed until it finishes, writes exactly the bytes of an uninterrupted run:
/// positions in checkpoints are those of rows emitted (or folded and sent), never of rows
/// parsed ahead. Three sources at once: one whose filter the workers run, one feeding an
/// aggregate (folding soon stops: the file has bad rows), and a clean file whose rows the
/// workers fold for a window all the way.
#[test]
fn a_parallel_csv_run_killed_and_resumed_writes_the_bytes_of_an_uninterrupted_run() {
    let data = table(40_000, ',');
    let [pushdown, plain] = pipelines("in.csv");
    // Both shapes at once: a second source reads the same file for the aggregate.
    let toml = format!(
        "{pushdown}[sources.in2]\ntype = \"file\"\npath = \"in.csv\"\n\
         on_error = \"dead_letter\"\ndead_letter = \"bad2.jsonl\"\n\
         [transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in2\"]\nkey = \".user\"\n\
         aggs = {{ n = \"count\", b = \"sum(.bytes)\" }}\n\
         [sinks.a]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"a.jsonl\"\n\
         [sources.in3]\ntype = \"file\"\npath = \"clean.csv\"\n\
         [transforms.win]\ntype = \"window\"\ninputs = [\"in3\"]\nkey = \".path\"\n\
         time = \".ts\"\nsize = \"10s\"\nout_of_orderness = \"3s\"\n\
         aggs = {{ n = \"count\", b = \"sum(.bytes)\" }}\n\
         [sinks.w]\ntype = \"file\"\ninputs = [\"win\"]\npath = \"w.jsonl\"\n"
    );
    let clean = clean_table(u32::MAX, &[]);
    assert!(plain.contains("aggregate"));
    let env = [
        ("WEIR_PARSE_THREADS", "2"),
        ("WEIR_PARSE_JOB_BYTES", "2000"),
        // Slower sources (with `--features failpoints`), so kills land mid-file.
        ("FAILPOINTS", "source-batch=sleep(2)"),
    ];
    let files = ["o.jsonl", "a.jsonl", "w.jsonl", "bad.jsonl", "bad2.jsonl"];
    let reference = Proj::new();
    reference.write("in.csv", &data);
    reference.write("clean.csv", &clean);
    reference.write("p.toml", &toml);
    let o = run_weir_env(reference.root(), &["run", "p.toml"], None, &env[..2]);
    expect_exit(&o, Some(0));

    let p = Proj::new();
    p.write("in.csv", &data);
    p.write("clean.csv", &clean);
    p.write("p.toml", &toml);
    let killed = kill_and_resume_until_done(&p, &env, 0x05ee_dc5f);
    assert!(killed >= 3, "only {killed} kills landed");
    let text = |q: &Proj, f: &str| q.read_str(f).replace(&q.s(""), "ROOT/");
    for f in files {
        assert!(
            text(&p, f) == text(&reference, f),
            "{f} differs after {killed} kills"
        );
    }
    assert!(reference.read("o.jsonl").len() > 100_000);
    // The window was folded to the end, across the kills too.
    let inspect = |q: &Proj| {
        let o = run_weir(q.root(), &["inspect", "p.toml"], None);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(inspect(&reference).contains("\"folded\":30000"));
    assert!(inspect(&p).contains("\"folded\":30000"), "{}", inspect(&p));
}

/// 30,000 rows a CSV corpus might hold: a time (RFC 3339 or epoch seconds, a few seconds out of
/// order), a user, a path, bytes, and an agent that is quoted now and then, with a comma,
/// doubled quotes or a newline inside (once followed by the text of a row); CRLF ends on some
/// rows. `odd` rows go before row `at`.
fn clean_table(at: u32, odd: &[&str]) -> String {
    let mut t = String::from("ts,user,path,bytes,agent\n");
    for i in 0..30_000u32 {
        if i == at {
            for o in odd {
                t.push_str(o);
                t.push('\n');
            }
        }
        let s = 1_793_491_200 + i64::from(i / 10) - i64::from(i * 7 % 3);
        let ts = match i % 3 {
            0 => s.to_string(),
            _ => jiff::Timestamp::from_second(s).unwrap().to_string(),
        };
        let agent = match i % 11 {
            0 => "\"curl, \"\"retry\"\"\"".to_string(),
            // A quoted newline before what reads as a row of its own: a job cut there
            // would fold a row that is not in the file.
            1 => format!("\"ghost\n{ts},u99,/p9,1,ghost\""),
            2 => "\"two\nlines\"".to_string(),
            _ => "Mozilla/5.0".to_string(),
        };
        let end = if i % 5 == 0 { "\r\n" } else { "\n" };
        t.push_str(&format!(
            "{ts},u{},/p{},{},{agent}{end}",
            i % 37,
            i % 5,
            i * 13 % 2000
        ));
    }
    t
}

/// An aggregate or a tumbling window that is a CSV source's only consumer: the parse workers
/// fold the rows, and the output, dead letters and stats are those of record-by-record, with
/// jobs of any size (small ones are often cut inside a quoted field, which stops folding).
/// The checkpoint says folded only while every row folded: a row with a float, a negative or
/// an empty sum, a number for a key or the wrong width turns folding off for good (a blank
/// line does not: it is no record).
#[test]
fn csv_folded_for_an_aggregate_or_a_window_gives_what_record_by_record_gives() {
    let head = "[sources.in]\ntype = \"file\"\npath = \"in.csv\"\n\
        on_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"\n";
    let sink = |from: &str| {
        format!("[sinks.o]\ntype = \"file\"\ninputs = [\"{from}\"]\npath = \"o.jsonl\"\n")
    };
    let aggregate = format!(
        "{head}[transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".user\"\n\
         aggs = {{ n = \"count\", b = \"sum(.bytes)\" }}\n{}",
        sink("agg")
    );
    let window = format!(
        "{head}[transforms.win]\ntype = \"window\"\ninputs = [\"in\"]\nkey = \".path\"\n\
         time = \".ts\"\nsize = \"10s\"\nout_of_orderness = \"3s\"\n\
         aggs = {{ n = \"count\", b = \"sum(.bytes)\" }}\n{}",
        sink("win")
    );
    let ts = "2026-11-01T00:00:00Z";
    // (row, whether folding holds to the end with the usual jobs; `None`: either)
    let odd: [(&str, Option<bool>); 8] = [
        ("", Some(true)),
        (&format!("{ts},u1,/p1,1.5,x"), Some(false)),
        (&format!("{ts},u1,/p1,-3,x"), Some(false)),
        (&format!("{ts},u1,/p1,,x"), Some(false)),
        (&format!("{ts},17,17,4,x"), Some(false)),
        (&format!("{ts},u1,/p1"), Some(false)),
        ("\r", Some(true)),
        // A stray quote: the quote count is odd from here on, so jobs are cut inside quoted
        // fields, and the job after such a cut must not be folded.
        (&format!("{ts},u1,/p1,4,5'10\""), None),
    ];
    for toml in [&aggregate, &window] {
        for (row, folds) in odd {
            let rows: &[&str] = if row.is_empty() { &[] } else { &[row] };
            let data = clean_table(12_345, rows);
            let mut runs = Vec::new();
            for (threads, job) in [("0", "131072"), ("2", "131072"), ("2", "1500"), ("1", "80")] {
                let p = Proj::new();
                p.write("in.csv", &data);
                p.write("p.toml", toml);
                let r = run_pooled_env(
                    &p,
                    &[
                        ("WEIR_PARSE_THREADS", threads),
                        ("WEIR_PARSE_JOB_BYTES", job),
                    ],
                );
                runs.push((threads, job, r));
            }
            let (_, _, want) = &runs[0];
            assert!(!want.state.contains("\"folded\""), "{}", want.state);
            for (threads, job, got) in &runs[1..] {
                let what = format!("{row:?}, {threads} workers, {job}-byte jobs");
                assert!(got.out == want.out, "{what}: output differs");
                assert_eq!(got.dead, want.dead, "{what}: dead letters differ");
                assert_eq!(got.counts, want.counts, "{what}: stats differ");
            }
            // With the usual jobs (cut outside quotes), folding holds to the end exactly when
            // every row folds.
            let folded = &runs[1].2.state;
            if let Some(folds) = folds {
                assert_eq!(folded.contains("\"folded\":"), folds, "{row:?}: {folded}");
            }
        }
    }
}

/// A stray quote in an unquoted field (`5'10"`, which csv-core reads as text) makes the quote
/// count odd, so the next cut lands inside a quoted field whose text reads as a row of its own.
/// The job after that cut is well-formed but wrong: it must be neither emitted nor folded (the
/// source sees it does not start where the rows before it end). Decoded or folded, the output
/// is that of the sequential reader, and no row that is not in the file appears.
#[test]
fn a_csv_job_cut_inside_a_quoted_field_is_neither_emitted_nor_folded() {
    let mut data = String::from("ts,user,path,bytes,agent\n");
    for i in 0..3000u32 {
        let ts = jiff::Timestamp::from_second(1_793_491_200 + i64::from(i)).unwrap();
        let agent = match i {
            0..1000 => "plain".to_string(),
            1000 => "5'10\"".to_string(),
            _ => format!("\"ghost\n{ts},u99,/p9,1,ghost\""),
        };
        data.push_str(&format!(
            "{ts},u{},/p{},{},{agent}\n",
            i % 7,
            i % 3,
            i % 100
        ));
    }
    let head = "[sources.in]\ntype = \"file\"\npath = \"in.csv\"\n";
    let fold = format!(
        "{head}[transforms.agg]\ntype = \"aggregate\"\ninputs = [\"in\"]\nkey = \".user\"\n\
         aggs = {{ n = \"count\", b = \"sum(.bytes)\" }}\n\
         [sinks.o]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"o.jsonl\"\n"
    );
    let decode = format!(
        "{head}[transforms.m]\ntype = \"map\"\ninputs = [\"in\"]\nexpr = \"{{user, bytes}}\"\n\
         [sinks.o]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"o.jsonl\"\n"
    );
    for toml in [fold, decode] {
        let mut outs = Vec::new();
        for (threads, job) in [("0", "131072"), ("2", "1500"), ("1", "700")] {
            let p = Proj::new();
            p.write("in.csv", &data);
            p.write("p.toml", &toml);
            let r = run_pooled_env(
                &p,
                &[
                    ("WEIR_PARSE_THREADS", threads),
                    ("WEIR_PARSE_JOB_BYTES", job),
                ],
            );
            outs.push(r.out);
        }
        assert!(!String::from_utf8_lossy(&outs[0]).contains("u99"));
        assert!(outs[1] == outs[0], "{toml}: 2 workers differ");
        assert!(outs[2] == outs[0], "{toml}: 1 worker differs");
    }
}

/// JSON lines beside `table`'s CSV: the same columns, with nested objects, escapes and
/// non-ASCII in the fields the pipelines do not read, and a few lines that are not JSON.
fn json_beside(n: u32) -> String {
    let mut t = String::new();
    for i in 0..n {
        if i % 401 == 7 {
            t.push_str("{not json\n");
            continue;
        }
        let status = [200, 404, 500, 301, 503][(i % 5) as usize];
        t.push_str(&format!(
            "{{\"i\":{i},\"user\":\"u{}\",\"status\":{status},\"bytes\":{},\"from\":\"j\",\
             \"agent\":{{\"ua\":\"Mozilla \\\"x\\\"\\n\\u00e9t\u{e9}\",\"tags\":[1,{{\"k\":\"]\"}}]}}}}\n",
            i % 37,
            i * 3 % 1000
        ));
    }
    t
}

/// A CSV source and a JSON lines source unioned into one node: a filter (each source's only
/// consumer, so the workers run it for both), an aggregate (they fold for it), or the sink
/// itself. Read by the parse workers in small jobs or record by record, and killed with SIGKILL
/// and resumed, each source's records reach the node in their file's order and the aggregate
/// and dead letters are the same (how the two inputs interleave is timing, see SPEC).
#[test]
fn a_union_of_csv_and_json_lines_reads_as_each_source_alone() {
    let csv = table(20_000, ',');
    let json = json_beside(20_000);
    let sources = "[checkpoint]\nevery = \"5ms\"\n\
         [sources.c]\ntype = \"file\"\npath = \"in.csv\"\non_error = \"dead_letter\"\ndead_letter = \"bad.jsonl\"\n\
         [sources.j]\ntype = \"file\"\npath = \"in.jsonl\"\non_error = \"dead_letter\"\ndead_letter = \"bad_j.jsonl\"\n";
    let pipelines = [
        format!(
            "{sources}[transforms.f]\ntype = \"filter\"\ninputs = [\"c\", \"j\"]\n\
             expr = '.status >= 400 and .user != \"u3\"'\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"o.jsonl\"\n"
        ),
        format!(
            "{sources}[transforms.agg]\ntype = \"aggregate\"\ninputs = [\"c\", \"j\"]\nkey = \".user\"\n\
             aggs = {{ n = \"count\", b = \"sum(.bytes)\" }}\n\
             [sinks.o]\ntype = \"file\"\ninputs = [\"agg\"]\npath = \"o.jsonl\"\n"
        ),
        format!("{sources}[sinks.o]\ntype = \"file\"\ninputs = [\"c\", \"j\"]\npath = \"o.jsonl\"\n"),
    ];
    // The output, each source's records apart (JSON lines carry `from`), and the dead letters
    // in order of (file, line).
    let split = |p: &Proj| -> (Vec<String>, Vec<String>, Vec<String>) {
        let out = p.read_str("o.jsonl");
        let (j, c) = out
            .lines()
            .map(str::to_string)
            .partition(|l| l.contains("\"from\""));
        let root = p.root().to_string_lossy().into_owned();
        let mut dead: Vec<String> = (p.read_str("bad.jsonl") + &p.read_str("bad_j.jsonl"))
            .replace(&root, "ROOT")
            .lines()
            .map(str::to_string)
            .collect();
        dead.sort();
        (c, j, dead)
    };
    for (k, toml) in pipelines.iter().enumerate() {
        let mut want = None;
        for (threads, job) in [("0", "131072"), ("2", "700")] {
            let p = Proj::new();
            p.write("in.csv", &csv);
            p.write("in.jsonl", &json);
            p.write("p.toml", toml);
            let env = [
                ("WEIR_PARSE_THREADS", threads),
                ("WEIR_PARSE_JOB_BYTES", job),
                ("FAILPOINTS", "source-batch=sleep(3)"),
            ];
            let mut rng = Rng(0xc5f + k as u64);
            let mut kills = 0;
            if threads != "0" {
                while kills < 25 {
                    let mut bg = p.spawn_env(
                        "k",
                        &["resume", "--or-start", "p.toml"],
                        Stdio::null(),
                        &env,
                    );
                    // The first kill comes early: an optimised build can finish the whole
                    // run within the later kills' 30 ms.
                    let wait = if kills == 0 {
                        rng.range(1, 15)
                    } else {
                        rng.range(30, 300)
                    };
                    if let Some(code) = bg.wait_for(Duration::from_millis(wait)) {
                        assert_eq!(code, 0, "{}", bg.stderr_str());
                        break;
                    }
                    bg.kill9();
                    kills += 1;
                }
                assert!(kills > 0, "pipeline {k}: no kill landed");
            }
            run_with_env(&p, &["resume", "--or-start", "p.toml"], &env[..2]);
            let got = split(&p);
            assert!(
                got.0.len() + got.1.len() > 10,
                "pipeline {k}: little output"
            );
            assert!(
                got.2.len() > 100,
                "pipeline {k}: {} dead letters",
                got.2.len()
            );
            match &want {
                None => want = Some(got),
                Some(w) => {
                    assert!(
                        got.0 == w.0,
                        "pipeline {k}: CSV records differ after {kills} kills"
                    );
                    assert!(
                        got.1 == w.1,
                        "pipeline {k}: JSON records differ after {kills} kills"
                    );
                    assert!(
                        got.2 == w.2,
                        "pipeline {k}: dead letters differ after {kills} kills"
                    );
                }
            }
        }
    }
}
