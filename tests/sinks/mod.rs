//! The sinks into other systems (`exec`, `sqlite`, `postgres`): rows and epochs checked
//! against values computed here or read back with the database's own client, and exactly-once
//! checked against an uninterrupted run after crash points and random kill -9s (including
//! while an exec command runs). PostgreSQL tests need a server: `WEIR_TEST_POSTGRES_URL`
//! (`.ci/run` starts one with `scripts/pg-test-server.sh`); without it they skip loudly, and
//! under `CI=true` they fail. Needs `--features failpoints`, as the crash tests do.
//! One file over 800 lines because the three sinks share its pipeline, crash and kill -9
//! helpers; it reads in three parts: sqlite, exec, postgres.
#![cfg(feature = "failpoints")]

use crate::common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Slows sources down so checkpoints (every few ms) fall inside the input.
const SLOW: &str = "source-batch=sleep(4)";

fn weir_fp(dir: &Path, args: &[&str], fp: &str) -> std::process::Output {
    run_weir(dir, args, Some(fp))
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A generated stream (`count` records over 37 users) to a file sink `out/all.jsonl`, plus
/// `sinks` (TOML); an aggregate `per_user` (emit updates) is there to feed upserts.
fn gen_pipeline(dir: &Path, name: &str, count: u64, sinks: &str) {
    let p = format!(
        r#"name = "{name}"
[checkpoint]
every = "5ms"
retain = 2

[sources.gen]
type = "generate"
count = {count}
seed = 11
keys = 37

[transforms.per_user]
type = "aggregate"
inputs = ["gen"]
key = ".user"
emit = "updates"
aggs = {{ n = "count", b = "sum(.bytes)" }}

[sinks.all]
type = "file"
inputs = ["gen"]
path = "out/all.jsonl"
{sinks}"#
    );
    std::fs::write(dir.join("p.toml"), p).unwrap();
}

/// Runs `resume --or-start` (with `fp`) until it exits 0; panics after `tries`.
fn resume_to_end(dir: &Path, fp: &str, tries: usize) -> String {
    let mut err = String::new();
    for _ in 0..tries {
        let o = weir_fp(dir, &["resume", "--or-start", "p.toml"], fp);
        err.push_str(&stderr_of(&o));
        if o.status.code() == Some(0) {
            return err;
        }
    }
    panic!("resume did not finish after {tries} tries:\n{err}");
}

/// Runs the pipeline until it aborts at crash point `point` (on its `nth` hit), then resumes
/// it to the end; returns the resumes' stderr.
fn crash_then_resume(dir: &Path, point: &str, nth: u32) -> String {
    let fp = if nth > 1 {
        format!("{SLOW};{point}={}*off->return", nth - 1)
    } else {
        format!("{SLOW};{point}=return")
    };
    let o = weir_fp(dir, &["run", "-q", "p.toml"], &fp);
    assert_eq!(
        o.status.code(),
        None,
        "no crash at {point}: {}",
        stderr_of(&o)
    );
    resume_to_end(dir, SLOW, 5)
}

/// Starts the pipeline and kills it with -9 at random moments, `kills` times, then resumes to
/// the end. Returns the kills that landed while weir ran.
fn kill9_at_random(dir: &Path, seed: u64, kills: usize, max_ms: u64) -> usize {
    let mut rng = Rng(seed);
    let mut landed = 0;
    for _ in 0..kills {
        let before = newest_checkpoint(dir);
        let mut bg = spawn_at(
            dir,
            "killed",
            &["resume", "--or-start", "-q", "p.toml"],
            Spawn {
                env: &[("FAILPOINTS", SLOW)],
                stdout: Some(Path::new("/dev/null")),
                ..Spawn::default()
            },
        );
        // A moment measured in the run's own progress, then in time: after 0 to 2 of its
        // checkpoints (each a few ms of input), up to a fortieth of `max_ms` more. Times alone
        // let a fast machine finish the input before the third kill (1 of 8 landed once), and
        // so did a 10 ms poll plus a tenth of `max_ms` (2 of 8 landed, in CI): each kill must
        // cost the run little of its input, so the checkpoints are watched every millisecond.
        let progress = rng.range(0, 3);
        let deadline = Instant::now() + Duration::from_secs(20);
        while bg.running()
            && newest_checkpoint(dir) < before + progress
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.range(0, max_ms / 40 + 1)));
        if bg.running() {
            landed += 1;
        }
        bg.kill9();
    }
    resume_to_end(dir, SLOW, 5);
    eprintln!("{landed} of {kills} kills landed while weir ran");
    landed
}

/// The id of the newest checkpoint of the pipeline in `dir` (0 before the first).
fn newest_checkpoint(dir: &Path) -> u64 {
    let Ok(states) = std::fs::read_dir(dir.join(".weir")) else {
        return 0;
    };
    states
        .flatten()
        .flat_map(|e| ckpts_in(&e.path()))
        .filter_map(|c| c.file_name()?.to_str()?.get(5..15)?.parse().ok())
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------- sqlite

fn sqlite_dump(db: &Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |row| {
        let mut cells = Vec::new();
        for i in 0..n {
            let v: rusqlite::types::Value = row.get(i)?;
            cells.push(format!("{v:?}"));
        }
        Ok(cells.join("|"))
    })
    .unwrap()
    .collect::<Result<Vec<_>, _>>()
    .unwrap()
}

const SQLITE_SINKS: &str = r#"
[sinks.db]
type = "sqlite"
inputs = ["gen"]
path = "out/db.sqlite"
table = "events"

[sinks.users]
type = "sqlite"
inputs = ["per_user"]
path = "out/db.sqlite"
table = "users"
key = ["key"]
"#;

/// Each sink alone in its file: rows go straight into the epoch's transaction (with
/// `SQLITE_SINKS`, the two share a file and stage their rows).
fn sqlite_sinks_apart() -> String {
    SQLITE_SINKS.replacen("out/db.sqlite", "out/events.sqlite", 1)
}

/// Rows of both tables, in the order they were written / by key.
fn sqlite_tables(dir: &Path) -> (Vec<String>, Vec<String>) {
    let db = dir.join("out/db.sqlite");
    let ev = if dir.join("out/events.sqlite").exists() {
        dir.join("out/events.sqlite")
    } else {
        db.clone()
    };
    (
        sqlite_dump(&ev, "SELECT * FROM events ORDER BY rowid"),
        sqlite_dump(&db, "SELECT * FROM users ORDER BY key"),
    )
}

/// The per-user count and byte sum, computed here from the records the file sink wrote.
fn per_user_oracle(all: &str) -> Vec<String> {
    let mut m: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for v in parse_jsonl(all) {
        let e = m
            .entry(v["user"].as_str().unwrap().to_string())
            .or_default();
        e.0 += 1;
        e.1 += v["bytes"].as_i64().unwrap();
    }
    m.into_iter()
        .map(|(k, (n, b))| format!("Text({k:?})|Integer({n})|Integer({b})"))
        .collect()
}

fn sqlite_reference(count: u64) -> (Vec<String>, Vec<String>, String) {
    let r = Proj::new();
    gen_pipeline(r.root(), "sq", count, SQLITE_SINKS);
    let o = weir_fp(r.root(), &["run", "-q", "p.toml"], SLOW);
    expect_exit(&o, Some(0));
    let (ev, us) = sqlite_tables(r.root());
    (ev, us, r.read_str("out/all.jsonl"))
}

#[test]
fn sqlite_writes_rows_with_their_types_and_the_position() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        concat!(
            r#"{"id":1,"name":"a","score":1.5,"ok":true,"tags":["x",2],"meta":{"k":1},"none":null}"#,
            "\n",
            r#"{"id":2,"name":"b\"q'","score":-2.25,"ok":false,"tags":[],"meta":{},"none":null}"#,
            "\n",
            r#"{"name":"c","id":3,"extra":"ignored"}"#,
            "\n",
        ),
    );
    p.write(
        "p.toml",
        r#"name = "types"
[sources.in]
type = "file"
path = "in.jsonl"
[sinks.db]
type = "sqlite"
inputs = ["in"]
path = "out/t.db"
table = "things"
[sinks.typed]
type = "sqlite"
inputs = ["in"]
path = "out/t.db"
table = "typed"
columns = { id = "INTEGER NOT NULL", name = "TEXT" }
"#,
    );
    p.weir(&["run", "-q", "--stats", "stats.json", "p.toml"])
        .expect_code(0);
    let stats = read_stats(&p.p("stats.json"));
    let committed = &node_stats(&stats, "db")["committed"];
    assert_eq!(committed["position"], 3, "{stats}");
    assert_eq!(committed["epochs"], 1, "{stats}");
    let db = p.p("out/t.db");
    assert_eq!(
        sqlite_dump(&db, "SELECT name, type FROM pragma_table_info('things')"),
        [
            "Text(\"id\")|Text(\"INTEGER\")",
            "Text(\"name\")|Text(\"TEXT\")",
            "Text(\"score\")|Text(\"REAL\")",
            "Text(\"ok\")|Text(\"INTEGER\")",
            "Text(\"tags\")|Text(\"TEXT\")",
            "Text(\"meta\")|Text(\"TEXT\")",
            "Text(\"none\")|Text(\"TEXT\")",
        ]
    );
    assert_eq!(
        sqlite_dump(&db, "SELECT * FROM things ORDER BY rowid"),
        [
            r#"Integer(1)|Text("a")|Real(1.5)|Integer(1)|Text("[\"x\",2]")|Text("{\"k\":1}")|Null"#,
            r#"Integer(2)|Text("b\"q'")|Real(-2.25)|Integer(0)|Text("[]")|Text("{}")|Null"#,
            r#"Integer(3)|Text("c")|Null|Null|Null|Null|Null"#,
        ]
    );
    assert_eq!(
        sqlite_dump(&db, "SELECT * FROM typed ORDER BY rowid"),
        [
            r#"Integer(1)|Text("a")"#,
            r#"Integer(2)|Text("b\"q'")"#,
            r#"Integer(3)|Text("c")"#
        ]
    );
    assert_eq!(
        sqlite_dump(
            &db,
            "SELECT pipeline, sink, position FROM _weir_commits ORDER BY sink"
        ),
        [
            r#"Text("types")|Text("db")|Integer(3)"#,
            r#"Text("types")|Text("typed")|Integer(3)"#
        ]
    );
    assert_eq!(
        sqlite_dump(&db, "PRAGMA journal_mode"),
        ["Text(\"wal\")"],
        "readers must never see half an epoch"
    );
    // `inspect` shows the committed position.
    let o = p.weir(&["inspect", "p.toml"]);
    o.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout_str()).unwrap();
    let db_state = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "db")
        .unwrap();
    assert_eq!(db_state["state"]["position"], 3, "{v}");
}

#[test]
fn sqlite_upserts_keep_a_live_table_of_an_aggregate() {
    let (events, users, all) = sqlite_reference(6000);
    assert_eq!(events.len(), 6000);
    assert_eq!(users, per_user_oracle(&all));
    assert_eq!(users.len(), 37);
}

/// Numbers that kept their input text (`415.50`, `1.0`, `1e3`): a TEXT column stores the text,
/// other columns SQLite numbers (which have no text), as a table made from the first record does.
#[test]
fn sqlite_text_columns_keep_number_text_and_number_columns_store_numbers() {
    let p = Proj::new();
    p.write(
        "in.jsonl",
        "{\"id\":1,\"x\":415.50}\n{\"id\":2,\"x\":1.0}\n{\"id\":3,\"x\":1e3}\n{\"id\":4,\"x\":2.5}\n",
    );
    p.write(
        "p.toml",
        r#"name = "texts"
[sources.in]
type = "file"
path = "in.jsonl"
[transforms.m]
type = "map"
inputs = ["in"]
expr = "{id, t: .x, r: .x, n: .x, i: .x}"
[sinks.typed]
type = "sqlite"
inputs = ["m"]
path = "out/t.db"
table = "typed"
columns = { id = "INTEGER", t = "VARCHAR(20)", r = "REAL", n = "NUMERIC", i = "INT" }
[sinks.made]
type = "sqlite"
inputs = ["in"]
path = "out/t.db"
table = "made"
"#,
    );
    p.weir(&["run", "-q", "p.toml"]).expect_code(0);
    let db = p.p("out/t.db");
    assert_eq!(
        sqlite_dump(&db, "SELECT * FROM typed ORDER BY id"),
        [
            r#"Integer(1)|Text("415.50")|Real(415.5)|Real(415.5)|Real(415.5)"#,
            r#"Integer(2)|Text("1.0")|Real(1.0)|Integer(1)|Integer(1)"#,
            r#"Integer(3)|Text("1e3")|Real(1000.0)|Integer(1000)|Integer(1000)"#,
            r#"Integer(4)|Text("2.5")|Real(2.5)|Real(2.5)|Real(2.5)"#,
        ]
    );
    assert_eq!(
        sqlite_dump(&db, "SELECT * FROM made ORDER BY id"),
        [
            "Integer(1)|Real(415.5)",
            "Integer(2)|Real(1.0)",
            "Integer(3)|Real(1000.0)",
            "Integer(4)|Real(2.5)",
        ]
    );
}

#[test]
fn sqlite_upsert_without_its_key_fails_the_run() {
    let p = Proj::new();
    gen_pipeline(
        p.root(),
        "nokey",
        100,
        &SQLITE_SINKS.replace("key = [\"key\"]", "key = [\"user\"]"),
    );
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(1).expect_no_panic();
    assert!(
        o.stderr
            .contains("sink 'users': key column `user` is not a field of the first record"),
        "{}",
        o.stderr
    );
    // With `columns`, the table has the key column but the records lack it.
    let toml = p.read_str("p.toml").replace(
        "key = [\"user\"]",
        "key = [\"user\"]\ncolumns = { user = \"TEXT\", n = \"INTEGER\" }",
    );
    p.write("p.toml", toml);
    let o = p.weir(&["run", "--fresh", "p.toml"]);
    o.expect_code(1).expect_no_panic();
    assert!(
        o.stderr
            .contains("sink 'users': a record has no value for key column `user`"),
        "{}",
        o.stderr
    );
}

#[test]
fn sqlite_readers_see_whole_epochs_only() {
    let p = Proj::new();
    gen_pipeline(p.root(), "rd", 30000, SQLITE_SINKS);
    let mut bg = spawn_at(
        p.root(),
        "run",
        &["run", "-q", "p.toml"],
        Spawn {
            env: &[("FAILPOINTS", SLOW)],
            stdout: Some(Path::new("/dev/null")),
            ..Spawn::default()
        },
    );
    let db = p.p("out/db.sqlite");
    let mut partial = 0;
    while bg.running() {
        assert!(
            bg.started.elapsed() < TIMEOUT,
            "weir did not finish within {TIMEOUT:?}; stderr:\n{}",
            bg.stderr_str()
        );
        if let Ok(mut c) = rusqlite::Connection::open(&db) {
            let _ = c.busy_timeout(Duration::from_secs(5));
            // One read transaction: the rows and the position as of one commit.
            if let Ok(tx) = c.transaction() {
                let n: Result<i64, _> =
                    tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0));
                let pos: Result<i64, _> = tx.query_row(
                    "SELECT position FROM _weir_commits WHERE sink = 'db'",
                    [],
                    |r| r.get(0),
                );
                if let (Ok(n), Ok(pos)) = (n, pos) {
                    assert_eq!(n, pos, "a reader saw rows without their commit");
                    if n > 0 && n < 30000 {
                        partial += 1;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    assert_eq!(bg.wait(), 0, "{}", bg.stderr_str());
    assert!(partial > 0, "the reader never looked during the run");
    assert_eq!(sqlite_tables(p.root()).0.len(), 30000);
}

#[test]
fn sqlite_exactly_once_through_crash_points() {
    let (events, users, _) = sqlite_reference(20000);
    // table-after-commit 1: rows committed before the first checkpoint exists.
    for (point, nth, sinks) in [
        ("table-after-commit", 1),
        ("table-before-commit", 3),
        ("table-after-commit", 4),
        ("checkpoint-before-write", 3),
        ("checkpoint-after-write", 2),
    ]
    .iter()
    .flat_map(|&(p, n)| {
        [
            (p, n, SQLITE_SINKS.to_string()),
            (p, n, sqlite_sinks_apart()),
        ]
    }) {
        let d = Proj::new();
        gen_pipeline(d.root(), "sq", 20000, &sinks);
        let err = crash_then_resume(d.root(), point, nth);
        let (ev, us) = sqlite_tables(d.root());
        assert!(
            ev == events,
            "events differ after {point}/{nth}: {} rows vs {}; {err}",
            ev.len(),
            events.len()
        );
        assert!(us == users, "users differ after {point}/{nth}; {err}");
    }
}

#[test]
fn sqlite_exactly_once_across_random_kill9s() {
    let (events, users, _) = sqlite_reference(20000);
    for (sinks, seed) in [
        (SQLITE_SINKS.to_string(), 0x5eed_5117),
        (sqlite_sinks_apart(), 7),
    ] {
        let d = Proj::new();
        gen_pipeline(d.root(), "sq", 20000, &sinks);
        let landed = kill9_at_random(d.root(), seed, 8, 150);
        assert!(landed >= 3, "only {landed} kills landed while weir ran");
        let (ev, us) = sqlite_tables(d.root());
        assert!(
            ev == events,
            "events: {} rows vs {}",
            ev.len(),
            events.len()
        );
        assert!(us == users);
    }
}

#[test]
fn sqlite_locked_database_is_a_clear_error_and_resume_finishes() {
    let p = Proj::new();
    gen_pipeline(p.root(), "lk", 3000, SQLITE_SINKS);
    std::fs::create_dir_all(p.p("out")).unwrap();
    let db = p.p("out/db.sqlite");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
    }
    // Another process holds the write lock.
    let mut holder = rusqlite::Connection::open(&db).unwrap();
    let tx = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    let o = p.weir(&["run", "p.toml"]);
    o.expect_code(1).expect_no_panic();
    assert!(
        o.stderr.contains("sink 'db'") && o.stderr.contains("locked"),
        "{}",
        o.stderr
    );
    drop(tx);
    drop(holder);
    p.weir(&["resume", "--or-start", "-q", "p.toml"])
        .expect_code(0);
    let (ev, us) = sqlite_tables(p.root());
    assert_eq!(ev.len(), 3000);
    assert_eq!(us, per_user_oracle(&p.read_str("out/all.jsonl")));
}

#[test]
fn weir_run_again_appends_and_resume_of_a_finished_run_writes_nothing() {
    let p = Proj::new();
    gen_pipeline(p.root(), "again", 500, SQLITE_SINKS);
    p.weir(&["run", "-q", "p.toml"]).expect_code(0);
    p.weir(&["resume", "-q", "p.toml"]).expect_code(0);
    assert_eq!(sqlite_tables(p.root()).0.len(), 500);
    // `run --fresh` is a new run: its rows come on top (the table is the user's to empty).
    p.weir(&["run", "-q", "--fresh", "p.toml"]).expect_code(0);
    assert_eq!(sqlite_tables(p.root()).0.len(), 1000);
}

#[test]
fn exec_epochs_number_on_across_fresh_runs() {
    let p = Proj::new();
    std::fs::create_dir_all(p.p("epochs")).unwrap();
    gen_pipeline(p.root(), "exn", 300, EXEC_KEEP);
    p.weir(&["run", "-q", "p.toml"]).expect_code(0);
    let first = kept_epochs(p.root()).len();
    p.weir(&["run", "-q", "--fresh", "p.toml"]).expect_code(0);
    let all = kept_epochs(p.root());
    assert!(
        all.len() > first,
        "the second run's epochs reused the first run's numbers"
    );
    assert!(all[first..].concat() == p.read("out/all.jsonl"));
}

// ---------------------------------------------------------------- exec

/// Keeps each epoch's stdin in `epochs/<n>` (written by rename, so it is whole), and notes
/// the environment.
const EXEC_KEEP: &str = r#"
[sinks.ex]
type = "exec"
inputs = ["gen"]
command = ["sh", "-c", "cat > epochs/.tmp.$WEIR_EPOCH && mv epochs/.tmp.$WEIR_EPOCH epochs/$WEIR_EPOCH && echo \"$WEIR_PIPELINE $WEIR_SINK $WEIR_EPOCH\" >> env.txt && echo got $WEIR_EPOCH >&2"]
"#;

/// The epochs a command kept, in order; panics unless they are 1..=n.
fn kept_epochs(dir: &Path) -> Vec<Vec<u8>> {
    let mut n: Vec<u64> = std::fs::read_dir(dir.join("epochs"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    n.sort();
    assert_eq!(n, (1..=n.len() as u64).collect::<Vec<_>>(), "epoch numbers");
    n.iter()
        .map(|e| std::fs::read(dir.join(format!("epochs/{e}"))).unwrap())
        .collect()
}

#[test]
fn exec_hands_each_epoch_to_the_command_once() {
    let p = Proj::new();
    std::fs::create_dir_all(p.p("epochs")).unwrap();
    gen_pipeline(p.root(), "ex", 8000, EXEC_KEEP);
    let o = weir_fp(p.root(), &["run", "p.toml"], SLOW);
    expect_exit(&o, Some(0));
    let epochs = kept_epochs(p.root());
    assert!(epochs.len() >= 2, "one epoch only");
    assert!(
        epochs.iter().all(|e| !e.is_empty()),
        "an empty epoch was handed over"
    );
    assert!(epochs.concat() == p.read("out/all.jsonl"));
    let env: Vec<String> = lines(&p.read_str("env.txt"));
    let want: Vec<String> = (1..=epochs.len()).map(|e| format!("ex ex {e}")).collect();
    assert_eq!(env, want);
    let err = stderr_of(&o);
    assert!(err.contains("weir: sink 'ex' epoch 1: got 1"), "{err}");
}

#[test]
fn exec_failure_fails_the_run_and_resume_gives_the_same_epoch_again() {
    let p = Proj::new();
    std::fs::create_dir_all(p.p("epochs")).unwrap();
    let sink = r#"
[sinks.ex]
type = "exec"
inputs = ["gen"]
format = "csv"
command = ["sh", "-c", "cat > tmp.$WEIR_EPOCH; if [ $WEIR_EPOCH = 2 ] && [ ! -e failed ]; then touch failed; cp tmp.2 first-try.2; echo no room >&2; exit 3; fi; mv tmp.$WEIR_EPOCH epochs/$WEIR_EPOCH"]
"#;
    gen_pipeline(p.root(), "exf", 8000, sink);
    let o = weir_fp(p.root(), &["run", "p.toml"], SLOW);
    expect_exit(&o, Some(1));
    let err = stderr_of(&o);
    assert!(
        err.contains("sink 'ex': epoch 2: the command exited with code 3")
            && err.contains("weir: sink 'ex' epoch 2: no room"),
        "{err}"
    );
    assert!(!p.exists("epochs/3"), "epoch 3 ran before epoch 2 was done");
    resume_to_end(p.root(), SLOW, 3);
    let epochs = kept_epochs(p.root());
    assert_eq!(
        epochs[1],
        p.read("first-try.2"),
        "epoch 2 changed between tries"
    );
    // CSV: every epoch has its header; the rows are the records in order.
    let header = "seq,ts,user,method,path,status,bytes,latency_ms";
    let mut rows = Vec::new();
    for e in &epochs {
        let t = String::from_utf8(e.clone()).unwrap();
        let mut l = t.lines();
        assert_eq!(l.next(), Some(header));
        rows.extend(l.map(|x| x.split(',').next().unwrap().to_string()));
    }
    let seqs: Vec<String> = parse_jsonl(&p.read_str("out/all.jsonl"))
        .iter()
        .map(|v| v["seq"].to_string())
        .collect();
    assert!(
        rows == seqs,
        "{} rows vs {} records",
        rows.len(),
        seqs.len()
    );
}

#[test]
fn exec_failure_is_retried_by_the_restart_strategy() {
    let p = Proj::new();
    std::fs::create_dir_all(p.p("epochs")).unwrap();
    let sink = EXEC_KEEP.replace(
        "cat > epochs",
        "if [ $WEIR_EPOCH = 1 ] && [ ! -e failed ]; then touch failed; exit 1; fi; cat > epochs",
    );
    gen_pipeline(p.root(), "exr", 3000, &sink);
    let toml = p.read_str("p.toml").replace(
        "[sources.gen]",
        "[restart]\nattempts = 2\ndelay = \"10ms\"\n\n[sources.gen]",
    );
    p.write("p.toml", toml);
    let o = weir_fp(p.root(), &["run", "p.toml"], SLOW);
    expect_exit(&o, Some(0));
    assert!(stderr_of(&o).contains("restarting"), "{}", stderr_of(&o));
    assert!(kept_epochs(p.root()).concat() == p.read("out/all.jsonl"));
}

#[test]
fn exec_timeout_kills_the_command_and_fails_the_run() {
    let p = Proj::new();
    let sink = r#"
[sinks.ex]
type = "exec"
inputs = ["gen"]
timeout = "300ms"
command = ["sleep", "30"]
"#;
    gen_pipeline(p.root(), "ext", 100, sink);
    let o = p.weir_t(&["run", "p.toml"], Duration::from_secs(20));
    o.expect_code(1).expect_no_panic();
    assert!(o.stderr.contains("timeout = 300ms"), "{}", o.stderr);
    assert!(o.elapsed < Duration::from_secs(20));
}

/// Appends an epoch's records to `out.jsonl` only when its number is new: the command a user
/// of a non-transactional target writes. `flock` keeps an orphaned command (its weir was
/// killed) and the resumed run's from interleaving; the sleep widens the window in which
/// kills land while the command runs.
const EXEC_APPEND: &str = r#"
[sinks.ex]
type = "exec"
inputs = ["gen"]
command = ["flock", "lock", "sh", "-c", "cat > cur; sleep 0.02; last=$(cat last 2>/dev/null || echo 0); if [ $WEIR_EPOCH -gt $last ]; then cat cur >> out.jsonl; echo $WEIR_EPOCH > last; fi"]
"#;

#[test]
fn exec_exactly_once_across_random_kill9s_and_crash_points() {
    let r = Proj::new();
    gen_pipeline(r.root(), "exk", 15000, EXEC_APPEND);
    expect_exit(&weir_fp(r.root(), &["run", "-q", "p.toml"], SLOW), Some(0));
    let want = r.read("out.jsonl");
    assert!(want == r.read("out/all.jsonl"));

    let d = Proj::new();
    gen_pipeline(d.root(), "exk", 15000, EXEC_APPEND);
    let landed = kill9_at_random(d.root(), 0xe8ec_0009, 10, 200);
    assert!(landed >= 3, "only {landed} kills landed while weir ran");
    assert!(
        d.read("out.jsonl") == want,
        "out.jsonl differs after kill -9s"
    );

    for (point, nth) in [
        ("exec-before-command", 2),
        ("exec-after-command", 2),
        ("checkpoint-after-write", 2),
        ("exec-after-command", 1),
    ] {
        let d = Proj::new();
        gen_pipeline(d.root(), "exk", 15000, EXEC_APPEND);
        let err = crash_then_resume(d.root(), point, nth);
        assert!(
            d.read("out.jsonl") == want,
            "out.jsonl differs after {point}/{nth}: {err}"
        );
    }
}

#[test]
fn resume_of_a_finished_run_still_hands_over_its_last_epoch() {
    // The final checkpoint is durable, then weir dies before the command ran: `resume` of a
    // finished run must still deliver the last epoch.
    let p = Proj::new();
    std::fs::create_dir_all(p.p("epochs")).unwrap();
    gen_pipeline(p.root(), "exl", 50, EXEC_KEEP);
    let o = weir_fp(
        p.root(),
        &["run", "-q", "p.toml"],
        "exec-before-command=return",
    );
    assert_eq!(o.status.code(), None, "{}", stderr_of(&o));
    assert!(kept_epochs(p.root()).is_empty());
    p.weir(&["resume", "-q", "p.toml"]).expect_code(0);
    assert!(kept_epochs(p.root()).concat() == p.read("out/all.jsonl"));
}

#[test]
fn validate_names_wrong_sink_settings() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "bad"
[sources.gen]
type = "generate"
count = 1
[sinks.a]
type = "sqlite"
inputs = ["gen"]
table = "t"
url = "host=x"
[sinks.b]
type = "postgres"
inputs = ["gen"]
url = "host=x"
table = "t"
columns = { a = "text" }
key = ["b"]
[sinks.c]
type = "exec"
inputs = ["gen"]
command = []
[sinks.d]
type = "exec"
inputs = ["gen"]
command = ["true"]
timeout = "5"
"#,
    );
    let o = p.weir(&["validate", "p.toml"]);
    o.expect_code(2);
    for want in [
        "node 'a': missing `path`",
        "node 'a': a sqlite sink takes `path`, not `url`",
        "node 'b': key column `b` is not in `columns`",
        "node 'c': `command` must name a program",
        "node 'd': `5` needs a unit",
    ] {
        assert!(o.stderr.contains(want), "{want:?} not in:\n{}", o.stderr);
    }
}

// ---------------------------------------------------------------- postgres

/// A fresh database on the test server, or None (skipped loudly) when there is no server.
fn pg_db(tag: &str) -> Option<String> {
    let Ok(url) = std::env::var("WEIR_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but WEIR_TEST_POSTGRES_URL is not set: .ci/run must start a PostgreSQL server"
        );
        eprintln!(
            "SKIPPED {tag}: no PostgreSQL server (set WEIR_TEST_POSTGRES_URL, e.g. from scripts/pg-test-server.sh)"
        );
        return None;
    };
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_err(&url);
    let name = format!(
        "weir_{tag}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    Some(format!("{url} dbname={name}"))
}

trait OrErr<T> {
    fn unwrap_or_err(self, url: &str) -> T;
}

impl<T> OrErr<T> for Result<T, postgres::Error> {
    fn unwrap_or_err(self, url: &str) -> T {
        self.unwrap_or_else(|e| panic!("cannot connect to the test server {url}: {e}"))
    }
}

fn pg_dump(url: &str, sql: &str) -> Vec<String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap_or_err(url);
    // Every column as text, so any table compares.
    let q = format!("SELECT row_to_json(x)::text FROM ({sql}) x");
    c.query(&q, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

fn pg_sinks(url: &str) -> String {
    SQLITE_SINKS
        .replace("\"sqlite\"", "\"postgres\"")
        .replace("path = \"out/db.sqlite\"", &format!("url = \"{url}\""))
}

fn pg_tables(url: &str) -> (Vec<String>, Vec<String>) {
    (
        pg_dump(url, "SELECT * FROM events ORDER BY seq"),
        pg_dump(url, "SELECT * FROM users ORDER BY key"),
    )
}

fn pg_reference(count: u64) -> Option<(Vec<String>, Vec<String>, String)> {
    let url = pg_db("ref")?;
    let r = Proj::new();
    gen_pipeline(r.root(), "pg", count, &pg_sinks(&url));
    expect_exit(&weir_fp(r.root(), &["run", "-q", "p.toml"], SLOW), Some(0));
    let (ev, us) = pg_tables(&url);
    Some((ev, us, r.read_str("out/all.jsonl")))
}

#[test]
fn postgres_rows_and_upserts() {
    let Some((events, users, all)) = pg_reference(6000) else {
        return;
    };
    let want: Vec<String> = parse_jsonl(&all).iter().map(|v| v.to_string()).collect();
    let got: Vec<String> = events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e)
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(got == want, "{} rows vs {} records", got.len(), want.len());
    let mut m: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for v in parse_jsonl(&all) {
        let e = m
            .entry(v["user"].as_str().unwrap().to_string())
            .or_default();
        e.0 += 1;
        e.1 += v["bytes"].as_i64().unwrap();
    }
    let want_users: Vec<String> = m
        .into_iter()
        .map(|(k, (n, b))| format!("{{\"key\":{},\"n\":{n},\"b\":{b}}}", js(&k)))
        .collect();
    assert_eq!(users, want_users);
}

/// Numbers that kept their input text go to PostgreSQL as that text, so `numeric` keeps
/// `415.50`'s scale and `text` its characters; integer columns get an integral number's digits
/// (`1.0` and `1e3` are integers there, and so are `1e16` and a computed 2e16, which print with
/// an exponent elsewhere).
#[test]
fn postgres_numeric_and_text_columns_keep_number_text() {
    let Some(url) = pg_db("texts") else { return };
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_err(&url);
    c.batch_execute(
        "CREATE TABLE nums (id bigint, num numeric, t text, f double precision, i integer, j jsonb, b bigint)",
    )
    .unwrap();
    let p = Proj::new();
    p.write(
        "in.jsonl",
        "{\"id\":1,\"x\":415.50,\"n\":1.0,\"b\":1e16}\n{\"id\":2,\"x\":-0,\"n\":1e3,\"b\":-0}\n{\"id\":3,\"x\":2.5,\"n\":7,\"b\":20000000000000000.0}\n{\"id\":4,\"x\":1,\"n\":1,\"b\":1e4}\n",
    );
    p.write(
        "p.toml",
        format!(
            r#"name = "texts"
[sources.in]
type = "file"
path = "in.jsonl"
[transforms.m]
type = "map"
inputs = ["in"]
expr = "{{id, num: .x, t: .x, f: .x, i: .n, j: [.x], b: (if .id == 4 then .b * 2e12 else .b end)}}"
[sinks.db]
type = "postgres"
inputs = ["m"]
url = "{url}"
table = "nums"
"#
        ),
    );
    p.weir(&["run", "-q", "p.toml"]).expect_code(0);
    assert_eq!(
        pg_dump(
            &url,
            "SELECT id, num::text, t, f, i, j::text, b FROM nums ORDER BY id"
        ),
        [
            r#"{"id":1,"num":"415.50","t":"415.50","f":415.5,"i":1,"j":"[415.50]","b":10000000000000000}"#,
            r#"{"id":2,"num":"0","t":"-0","f":-0,"i":1000,"j":"[0]","b":0}"#,
            r#"{"id":3,"num":"2.5","t":"2.5","f":2.5,"i":7,"j":"[2.5]","b":20000000000000000}"#,
            r#"{"id":4,"num":"1","t":"1","f":1,"i":1,"j":"[1]","b":20000000000000000}"#,
        ]
    );
}

#[test]
fn postgres_exactly_once_across_random_kill9s_and_crash_points() {
    let Some((events, users, _)) = pg_reference(15000) else {
        return;
    };
    let Some(url) = pg_db("kill") else { return };
    let d = Proj::new();
    gen_pipeline(d.root(), "pg", 15000, &pg_sinks(&url));
    let landed = kill9_at_random(d.root(), 0x0905_76e5, 8, 200);
    assert!(landed >= 3, "only {landed} kills landed while weir ran");
    let (ev, us) = pg_tables(&url);
    assert!(
        ev == events,
        "events: {} rows vs {}",
        ev.len(),
        events.len()
    );
    assert!(us == users);
    for (point, nth) in [("table-after-commit", 1), ("table-after-commit", 3)] {
        let Some(url) = pg_db("cp") else { return };
        let d = Proj::new();
        gen_pipeline(d.root(), "pg", 15000, &pg_sinks(&url));
        let err = crash_then_resume(d.root(), point, nth);
        let (ev, us) = pg_tables(&url);
        assert!(ev == events, "events differ after {point}/{nth}: {err}");
        assert!(us == users, "users differ after {point}/{nth}: {err}");
    }
}

#[test]
fn postgres_connections_cut_mid_run_restart_and_end_exact() {
    let Some((events, users, _)) = pg_reference(15000) else {
        return;
    };
    let Some(url) = pg_db("cut") else { return };
    let d = Proj::new();
    gen_pipeline(d.root(), "pg", 15000, &pg_sinks(&url));
    let toml = d.read_str("p.toml").replace(
        "[sources.gen]",
        "[restart]\nattempts = 10\ndelay = \"20ms\"\nbackoff = 1.0\n\n[sources.gen]",
    );
    d.write("p.toml", toml);
    let mut bg = spawn_at(
        d.root(),
        "run",
        &["run", "p.toml"],
        Spawn {
            env: &[("FAILPOINTS", SLOW)],
            stdout: Some(Path::new("/dev/null")),
            ..Spawn::default()
        },
    );
    // What a server restart does to a client: every backend of the database goes away.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_err(&url);
    let mut cuts = 0;
    for _ in 0..200 {
        if !bg.running() || cuts >= 3 {
            break;
        }
        let committed: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE tablename = '_weir_commits'",
                &[],
            )
            .map(|r| r.get(0))
            .unwrap_or(0);
        if committed > 0 {
            let n: i64 = admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .unwrap()
                .get(0);
            if n > 0 {
                cuts += 1;
                std::thread::sleep(Duration::from_millis(60));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let code = bg.wait();
    let err = bg.stderr_str();
    assert_eq!(code, 0, "{err}");
    assert!(cuts >= 1, "no connection was cut while weir ran");
    assert!(err.contains("restarting from the last checkpoint"), "{err}");
    let (ev, us) = pg_tables(&url);
    assert!(
        ev == events,
        "events: {} rows vs {}; {err}",
        ev.len(),
        events.len()
    );
    assert!(us == users);
}

#[test]
fn a_table_sink_pointed_at_a_new_table_on_resume_starts_it_from_the_checkpoint() {
    let d = Proj::new();
    gen_pipeline(d.root(), "edit", 20000, &sqlite_sinks_apart());
    let o = weir_fp(
        d.root(),
        &["run", "-q", "p.toml"],
        &format!("{SLOW};checkpoint-after-write=1*off->return"),
    );
    assert_eq!(o.status.code(), None, "{}", stderr_of(&o));
    let o = d.weir(&["inspect", "p.toml"]);
    o.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout_str()).unwrap();
    let at = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "db")
        .unwrap()["state"]["position"]
        .as_u64()
        .unwrap();
    assert!(at > 0 && at < 20000, "position {at}");
    let toml = d
        .read_str("p.toml")
        .replacen("table = \"events\"", "table = \"events2\"", 1);
    d.write("p.toml", toml);
    let plan = d.weir(&["resume", "--plan", "p.toml"]);
    assert!(
        plan.stdout_str()
            .lines()
            .any(|l| l.starts_with("db") && l.contains("changed")),
        "{}",
        plan.stdout_str()
    );
    resume_to_end(d.root(), SLOW, 3);
    let seqs: Vec<String> = sqlite_dump(
        &d.p("out/events.sqlite"),
        "SELECT seq FROM events2 ORDER BY rowid",
    );
    let want: Vec<String> = (at..20000).map(|i| format!("Integer({i})")).collect();
    assert!(
        seqs == want,
        "events2 has {} rows, want {} (from {at})",
        seqs.len(),
        want.len()
    );
}
