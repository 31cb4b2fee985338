//! The shell user's weir (issue 17, part A): `weir do` checked against jq and Miller on the
//! same input, `--print-pipeline` run by `weir run`, `weir test`, completions and the man
//! page, clap's errors, `explain` in the file's words, `${VAR}`, validate's hints, `--fresh`
//! that changes nothing when the run cannot start, pruned `old-*`, the Ctrl-C resume command,
//! the progress bar on a stderr that is not a terminal, CSV piped into a jsonl source.
//! Over 800 lines because it holds a dozen small features of one issue, each test reading
//! alone, around one set of oracle helpers (the jq and Miller launchers, the line differ).

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const PATHS: &[&str] = &["/", "/api/users", "/api/orders", "/static/app.js", "/login"];
const USERS: &[&str] = &["ann", "bob", "cho", "dev", "eve", "fay"];

/// Access-log records in time order over a few minutes, seeded.
fn access_log(n: usize, seed: u64) -> String {
    let mut r = Rng(seed);
    let mut t = 0u64;
    let mut s = String::new();
    for _ in 0..n {
        t += r.range(0, 4);
        let status = [200, 200, 200, 201, 302, 404, 500, 503][r.range(0, 8) as usize];
        s.push_str(&format!(
            "{{\"ts\":\"2026-11-01T{:02}:{:02}:{:02}Z\",\"path\":{},\"status\":{status},\"bytes\":{},\"latency_ms\":{}.{},\"user\":{}}}\n",
            10 + t / 3600,
            (t / 60) % 60,
            t % 60,
            js(PATHS[r.range(0, PATHS.len() as u64) as usize]),
            r.range(0, 100_000),
            r.range(0, 3000),
            r.range(0, 10),
            js(USERS[r.range(0, USERS.len() as u64) as usize]),
        ));
    }
    s
}

/// Runs a real tool (jq, mlr) on `stdin`; its stdout.
#[track_caller]
fn tool(cmd: &str, args: &[&str], stdin: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd} is needed for this test (.ci/run installs it): {e}"));
    let mut input = c.stdin.take().unwrap();
    let data = stdin.to_vec();
    let w = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let o = c.wait_with_output().unwrap();
    w.join().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// JSON values equal, numbers by value (Miller keeps `415.50`, jq prints `415.5`).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, v), (l, w))| k == l && same(v, w))
        }
        _ => a == b,
    }
}

/// Equal texts, or the first line that differs (outputs here run to thousands of lines).
#[track_caller]
fn same_text(weir: &str, oracle: &str, what: &str) {
    same_text_keeping(weir, oracle, "", what)
}

/// `same_text`, where a line may also be a line of `input` unchanged that jq (1.6) prints
/// with other number text but the same values (`796.0` for jq's `796`): weir keeps a number's
/// input text while it is unchanged, as jq 1.7 does.
#[track_caller]
fn same_text_keeping(weir: &str, oracle: &str, input: &str, what: &str) {
    if weir == oracle {
        return;
    }
    let kept: std::collections::HashSet<&str> = input.lines().collect();
    let value = |l: &str| serde_json::from_str::<serde_json::Value>(l).ok();
    let (a, b): (Vec<&str>, Vec<&str>) = (weir.lines().collect(), oracle.lines().collect());
    if a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x == y
                || (kept.contains(x)
                    && matches!((value(x), value(y)), (Some(v), Some(w)) if same(&v, &w)))
        })
    {
        return;
    }
    if let Some(d) = first_difference(weir, oracle) {
        panic!("{what}: {d}");
    }
}

#[track_caller]
fn same_records(weir: &str, oracle: &str, what: &str) {
    let (a, b) = (parse_jsonl(weir), parse_jsonl(oracle));
    assert!(!b.is_empty(), "{what}: the oracle produced nothing");
    assert_eq!(
        a.len(),
        b.len(),
        "{what}: record counts differ\nweir:\n{weir}\noracle:\n{oracle}"
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            same(x, y),
            "{what}: record {} differs: weir {x} oracle {y}",
            i + 1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// weir do
// ---------------------------------------------------------------------------------------------

#[test]
fn do_expressions_give_what_jq_gives_on_the_same_input() {
    let p = Proj::new();
    let log = access_log(3000, 17);
    p.write("access.jsonl", &log);
    for expr in [
        "select(.status >= 500) | {path, status}",
        "{user, kb: (.bytes / 1024 | floor), slow: (.latency_ms > 1000)}",
        "select(.path | startswith(\"/api\")) | .user as $u | {u: $u, s: (.status | tostring)}",
        ".",
        "select(.user == \"eve\"), select(.status == 404) | {user, status}",
        // Two outputs of the condition: the record comes out once per true one, as in jq.
        "select((.status, .bytes) | . > 400) | {status, bytes}",
        "select(.status == 404)",
    ] {
        let want = tool("jq", &["-c", expr], log.as_bytes());
        let o = p.weir(&["do", expr, "access.jsonl"]);
        o.expect_code(0).expect_no_panic();
        // Byte for byte: jq's own output format (records passed through: their input text).
        same_text_keeping(
            &o.stdout_str(),
            &want,
            &log,
            &format!("weir do {expr:?} against jq"),
        );
        // stdin, as `jq EXPR < file`.
        let s = p.weir_stdin(&["do", expr], log.as_bytes());
        s.expect_code(0);
        same_text_keeping(
            &s.stdout_str(),
            &want,
            &log,
            &format!("weir do {expr:?} < file against jq"),
        );
    }
    // `-` is stdin, and no expression passes records through.
    let o = p.weir_stdin(&["do", "-"], log.as_bytes());
    o.expect_code(0);
    assert_eq!(
        o.stdout_str(),
        log,
        "weir do - passes records through unchanged"
    );
    assert!(!p.exists(".weir"), "weir do left state behind");
}

#[test]
fn do_keyed_aggregate_on_csv_gives_what_miller_gives() {
    let p = Proj::new();
    let mut r = Rng(5);
    let mut csv = String::from("user,amount,qty\n");
    for _ in 0..2000 {
        // Quarters add up exactly in binary, so sums compare exactly.
        csv.push_str(&format!(
            "u{:02},{}.{},{}\n",
            r.range(0, 40),
            r.range(0, 500),
            ["00", "25", "50", "75"][r.range(0, 4) as usize],
            r.range(1, 9)
        ));
    }
    p.write("orders.csv", &csv);
    let o = p.weir_stdin(
        &[
            "do",
            "--from",
            "csv",
            "--by",
            ".user",
            "--agg",
            "n=count",
            "--agg",
            "spent=sum(.amount)",
            "--agg",
            "most=max(.qty)",
            "--to",
            "csv",
        ],
        csv.as_bytes(),
    );
    o.expect_code(0).expect_no_panic();
    let mlr = tool(
        "mlr",
        &[
            "--icsv",
            "--ojsonl",
            "stats1",
            "-a",
            "count,sum",
            "-f",
            "amount",
            "-g",
            "user",
            "then",
            "put",
            "$most = 0",
            "then",
            "sort",
            "-f",
            "user",
        ],
        csv.as_bytes(),
    );
    let most = tool(
        "mlr",
        &[
            "--icsv", "--ojsonl", "stats1", "-a", "max", "-f", "qty", "-g", "user", "then", "sort",
            "-f", "user",
        ],
        csv.as_bytes(),
    );
    // Miller's rows, renamed to weir's: key (the --by), then the aggregates in flag order.
    let want: String = parse_jsonl(&mlr)
        .iter()
        .zip(parse_jsonl(&most))
        .map(|(m, x)| {
            format!(
                "{}\n",
                serde_json::json!({"key": m["user"], "n": m["amount_count"], "spent": m["amount_sum"], "most": x["qty_max"]})
            )
        })
        .collect();
    // weir's CSV back to records, Miller reading it (so CSV quoting is Miller's too).
    let got = tool("mlr", &["--icsv", "--ojsonl", "cat"], &o.stdout);
    assert!(
        o.stdout_str().starts_with("key,n,spent,most\n"),
        "{}",
        o.stdout_str()
    );
    same_records(&got, &want, "weir do --by --agg against mlr stats1");

    // A filter and projection, against Miller's filter and cut.
    let o = p.weir(&[
        "do",
        "--from",
        "csv",
        "select(.amount > 400) | {user, amount}",
        "orders.csv",
    ]);
    o.expect_code(0);
    let want = tool(
        "mlr",
        &[
            "--icsv",
            "--ojsonl",
            "filter",
            "$amount > 400",
            "then",
            "cut",
            "-o",
            "-f",
            "user,amount",
        ],
        csv.as_bytes(),
    );
    same_records(&o.stdout_str(), &want, "weir do select against mlr filter");
}

/// jq computes the tumbling one-minute windows per path: group by (minute, path).
const JQ_WINDOWS: &str = r#"group_by([(.ts | fromdateiso8601 / 60 | floor), .path]) | .[]
  | (.[0].ts | fromdateiso8601 / 60 | floor) as $m
  | {key: .[0].path, window_start: ($m * 60 | todateiso8601), window_end: (($m + 1) * 60 | todateiso8601),
     n: length, bytes: (map(.bytes) | add)}"#;

#[test]
fn do_window_gives_what_jq_computes() {
    let p = Proj::new();
    let log = access_log(4000, 23);
    p.write("app.jsonl", &log);
    let o = p.weir(&[
        "do",
        "--time",
        ".ts",
        "--window",
        "1m",
        "--by",
        ".path",
        "--agg",
        "n=count",
        "--agg",
        "bytes=sum(.bytes)",
        "app.jsonl",
    ]);
    o.expect_code(0).expect_no_panic();
    let want = tool("jq", &["-c", "-s", JQ_WINDOWS], log.as_bytes());
    same_text(&o.stdout_str(), &want, "weir do --window against jq");
    // --time and --window go together.
    p.weir(&["do", "--time", ".ts", "app.jsonl"]).expect_code(2);
}

#[test]
fn print_pipeline_is_a_file_weir_run_runs_to_the_same_output() {
    let p = Proj::new();
    let log = access_log(2500, 31);
    p.write("in/app.jsonl", &log);
    let shapes: &[&[&str]] = &[
        &["select(.status >= 500) | {path, status}", "in/app.jsonl"],
        &[
            "--by",
            ".user",
            "--agg",
            "n=count",
            "--agg",
            "b=sum(.bytes)",
            "in/app.jsonl",
        ],
        &[
            "--time",
            ".ts",
            "--window",
            "1m",
            "--by",
            ".path",
            "in/app.jsonl",
            "--to",
            "csv",
        ],
        &[
            "{user, path}",
            "--by",
            ".path",
            "--agg",
            "users=count_distinct(.user)",
            "in/app.jsonl",
        ],
    ];
    for (i, args) in shapes.iter().enumerate() {
        let mut argv = vec!["do"];
        argv.extend_from_slice(args);
        let direct = p.weir(&argv);
        direct.expect_code(0);
        assert!(!direct.stdout.is_empty(), "{argv:?} wrote nothing");
        argv.push("--print-pipeline");
        let printed = p.weir(&argv);
        printed.expect_code(0);
        let text = printed.stdout_str();
        assert!(text.contains("[sinks.out]"), "{text}");
        // Saved elsewhere and run from another directory: the paths still hold.
        let file = format!("jobs/job{i}.toml");
        p.write(&file, &text);
        let ran = weir_at(&p.p("in"), &["run", &p.s(&file)], None);
        ran.expect_code(0);
        same_text(
            &ran.stdout_str(),
            &direct.stdout_str(),
            &format!("{argv:?}: weir run of the printed pipeline"),
        );
        // A real pipeline: it checkpointed, beside the file.
        assert!(
            !p.ckpts("jobs/.weir/weir-do").is_empty(),
            "no checkpoint for {file}"
        );
        std::fs::remove_dir_all(p.p("jobs/.weir")).unwrap();
    }
    // The stdin form prints a pipeline that reads stdin.
    let o = p.weir(&["do", "{path}", "--print-pipeline"]);
    let text = o.stdout_str();
    p.write("jobs/stdin.toml", &text);
    let ran = p.weir_stdin(&["run", "jobs/stdin.toml"], log.as_bytes());
    ran.expect_code(0);
    same_text(
        &ran.stdout_str(),
        &tool("jq", &["-c", "{path}"], log.as_bytes()),
        "printed stdin pipeline",
    );
    assert!(
        !p.exists(".weir"),
        "weir do left state in the current directory"
    );
}

#[test]
fn do_first_argument_is_a_file_when_it_names_one_and_errors_say_what() {
    let p = Proj::new();
    let log = access_log(500, 3);
    p.write("events.jsonl", &log);
    let o = p.weir(&["do", "--by", ".user", "events.jsonl"]);
    o.expect_code(0);
    let want = tool(
        "jq",
        &[
            "-c",
            "-s",
            "group_by(.user) | .[] | {key: .[0].user, n: length}",
        ],
        log.as_bytes(),
    );
    same_text(
        &o.stdout_str(),
        &want,
        "weir do --by FILE against jq group_by",
    );
    // A file that does not exist, written as a file: said so, exit 2.
    let o = p.weir(&["do", "nope.jsonl"]);
    o.expect_code(2);
    assert!(
        o.stderr.starts_with("weir: ") && o.stderr.contains("no such file: nope.jsonl"),
        "{}",
        o.stderr
    );
    // An expression that does not compile: exit 2, before any data is read.
    let o = p.weir(&["do", "select(.a >", "events.jsonl"]);
    o.expect_code(2).expect_no_panic();
    assert!(o.stderr.contains("weir: EXPR: "), "{}", o.stderr);
    assert!(o.stdout.is_empty());
    let o = p.weir(&["do", "--agg", "oops", "events.jsonl"]);
    o.expect_code(2);
    assert!(o.stderr.contains("NAME=FN"), "{}", o.stderr);
}

#[test]
fn do_on_error_skip_counts_bad_lines_and_fail_names_the_line() {
    let p = Proj::new();
    let good = access_log(300, 9);
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(120, "{not json");
    let input = lines.join("\n") + "\n";
    p.write("in.jsonl", &input);
    let o = p.weir(&["do", "{user}", "in.jsonl"]);
    o.expect_code(3);
    assert!(
        o.stderr.contains(":121"),
        "the bad line is not named: {}",
        o.stderr
    );
    let o = p.weir(&["do", "--on-error", "skip", "{user}", "in.jsonl"]);
    o.expect_code(0);
    same_text(
        &o.stdout_str(),
        &tool("jq", &["-c", "{user}"], good.as_bytes()),
        "--on-error skip",
    );
}

// ---------------------------------------------------------------------------------------------
// weir test
// ---------------------------------------------------------------------------------------------

const TESTED: &str = r#"name = "tested"

[sources.access]
type = "file"
path = "access.jsonl"

[transforms.server_errors]
type = "filter"
inputs = ["access"]
expr = ".status >= 500"

[transforms.per_path]
type = "aggregate"
inputs = ["server_errors"]
key = ".path"
aggs = { n = "count", worst = "max(.latency_ms)" }

[sinks.out]
type = "file"
inputs = ["per_path"]
path = "out.jsonl"

[[tests]]
name = "server errors only"
input = { node = "access", records = [ { status = 500, path = "/a" }, { status = 200, path = "/b" } ] }
expect = { node = "server_errors", records = [ { status = 500, path = "/a" } ] }

[[tests]]
name = "counted per path at the end"
input = { node = "access", records = [
  { status = 503, path = "/b", latency_ms = 7 },
  { status = 500, path = "/a", latency_ms = 2.5 },
  { status = 502, path = "/b", latency_ms = 9 },
] }
expect = { node = "per_path", records = [ { key = "/a", n = 1, worst = 2.5 }, { key = "/b", n = 2, worst = 9 } ] }

[[tests]]
name = "a sink is checked by what reaches it"
input = { node = "access", records = [ { status = 500, path = "/q", latency_ms = 4 } ] }
expect = { node = "out", records = [ { key = "/q", n = 1, worst = 4 } ] }

[[tests]]
name = "several input tables feed in order"
inputs = [
  { node = "access", records = [ { status = 500, path = "/z", latency_ms = 1 } ] },
  { node = "access", records = [ { status = 501, path = "/y", latency_ms = 2 } ] },
]
expect = { node = "server_errors", records = [ { status = 500, path = "/z", latency_ms = 1 }, { status = 501, path = "/y", latency_ms = 2 } ] }
"#;

#[test]
fn weir_test_passes_fails_with_node_expected_actual_and_run_ignores_tests() {
    let p = Proj::new();
    p.write("p.toml", TESTED);
    let o = p.weir(&["test", "p.toml"]);
    o.expect_code(0).expect_no_panic();
    assert!(
        o.stderr.contains("server errors only' ... ok"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("counted per path at the end' ... ok"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("a sink is checked by what reaches it' ... ok"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("several input tables feed in order' ... ok"),
        "{}",
        o.stderr
    );
    assert!(
        !p.exists("out.jsonl") && !p.exists(".weir"),
        "weir test wrote a sink or state"
    );

    // One expectation wrong: exit 1, the node, expected and actual records.
    p.write(
        "bad.toml",
        TESTED.replace(
            "{ key = \"/b\", n = 2, worst = 9 }",
            "{ key = \"/b\", n = 3, worst = 9 }",
        ),
    );
    let o = p.weir(&["test", "bad.toml"]);
    o.expect_code(1);
    assert!(
        o.stderr.contains("server errors only' ... ok"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("counted per path at the end' ... FAILED"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("node 'per_path'"), "{}", o.stderr);
    let after = |m: &str| o.stderr.split(m).nth(1).unwrap_or("").to_string();
    assert!(
        after("expected:").contains(r#"{"key":"/b","n":3,"worst":9}"#),
        "{}",
        o.stderr
    );
    assert!(
        after("actual:").contains(r#"{"key":"/b","n":2,"worst":9}"#),
        "{}",
        o.stderr
    );
    // A record too many is a failure too (not a prefix match).
    p.write(
        "extra.toml",
        TESTED.replace("{ status = 500, path = \"/a\" } ] }", "] }"),
    );
    p.weir(&["test", "extra.toml"]).expect_code(1);
    // A test that names a node the pipeline lacks: exit 2.
    p.write(
        "nonode.toml",
        TESTED.replace("node = \"server_errors\"", "node = \"server_errorz\""),
    );
    let o = p.weir(&["test", "nonode.toml"]);
    o.expect_code(2);
    assert!(o.stderr.contains("server_errorz"), "{}", o.stderr);

    // `weir run` ignores [[tests]].
    p.write(
        "access.jsonl",
        "{\"status\":500,\"path\":\"/x\",\"latency_ms\":1}\n{\"status\":200,\"path\":\"/y\",\"latency_ms\":1}\n",
    );
    p.weir(&["validate", "p.toml"]).expect_code(0);
    p.weir(&["run", "p.toml"]).expect_code(0);
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"key\":\"/x\",\"n\":1,\"worst\":1}\n"
    );
}

#[test]
fn the_example_pipeline_with_tests_passes_them() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = weir_at(root, &["test", "pipelines/tests_in_pipeline.toml"], None);
    o.expect_code(0);
    assert!(o.stderr.contains("all passed"), "{}", o.stderr);
}

// ---------------------------------------------------------------------------------------------
// Command line: completions, man page, help, clap errors
// ---------------------------------------------------------------------------------------------

#[test]
fn completions_for_each_shell_and_a_man_page() {
    let p = Proj::new();
    for shell in ["bash", "zsh", "fish"] {
        let o = p.weir(&["completions", shell]);
        o.expect_code(0);
        let text = o.stdout_str();
        for word in ["resume", "or-start", "print-pipeline", "completions"] {
            assert!(text.contains(word), "{shell} completions lack {word}");
        }
        if shell == "bash" {
            p.write("weir.bash", &text);
            let ok = Command::new("bash")
                .arg("-n")
                .arg(p.p("weir.bash"))
                .status()
                .unwrap();
            assert!(ok.success(), "the bash completions do not parse");
        }
    }
    p.weir(&["completions", "powershell"]).expect_code(2);
    let o = p.weir(&["man"]);
    o.expect_code(0);
    let man = o.stdout_str();
    assert!(
        man.starts_with(".ie") || man.contains(".TH weir"),
        "{}",
        truncate(&man, 300)
    );
    assert!(man.contains("resume") && man.contains("completions"));
}

#[test]
fn help_describes_every_flag_and_usage_errors_say_weir_and_exit_2() {
    let p = Proj::new();
    for cmd in [
        "run",
        "resume",
        "validate",
        "explain",
        "checkpoints",
        "inspect",
        "do",
        "test",
        "completions",
    ] {
        let o = p.weir(&[cmd, "--help"]);
        o.expect_code(0);
        let text = o.stdout_str();
        let mut in_options = false;
        for line in text.lines() {
            if line.ends_with(':') && !line.starts_with(' ') {
                in_options = line == "Options:" || line == "Arguments:";
                continue;
            }
            let t = line.trim_start();
            if in_options && (t.starts_with('-') || t.starts_with('<') || t.starts_with('[')) {
                // "  --flag <X>  Description": something after the flag's own words.
                let described = line
                    .trim()
                    .split("  ")
                    .filter(|s| !s.trim().is_empty())
                    .count()
                    > 1;
                assert!(
                    described,
                    "`weir {cmd} --help`: no description for {line:?}\n{text}"
                );
            }
        }
    }
    let top = p.weir(&["--help"]);
    assert!(
        top.stdout_str().contains("Examples:"),
        "{}",
        top.stdout_str()
    );
    // --stats and --progress belong to the commands that read data.
    p.write("p.toml", "[sources.a]\ntype = \"file\"\npath = \"a.jsonl\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"a\"]\npath = \"-\"\n");
    for args in [
        &["validate", "p.toml", "--stats", "s.json"][..],
        &["explain", "p.toml", "--progress", "always"][..],
        &["run"][..],
        &["frobnicate"][..],
    ] {
        let o = p.weir(args);
        o.expect_code(2);
        assert!(o.stderr.starts_with("weir: "), "{args:?}: {}", o.stderr);
        assert!(
            !o.stderr.starts_with("weir: error:"),
            "{args:?}: {}",
            o.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// explain, ${VAR}, validate
// ---------------------------------------------------------------------------------------------

#[test]
fn explain_speaks_the_pipeline_files_words() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.logs]
type = "file"
path = "app.log"
[transforms.per_minute]
type = "window"
inputs = ["logs"]
key = ".path"
time = ".ts"
size = "1m"
aggs = { n = "count" }
[sinks.out]
type = "file"
inputs = ["per_minute"]
path = "-"
"#,
    );
    let o = p.weir(&["explain", "p.toml"]);
    o.expect_code(0);
    let text = o.stdout_str();
    for word in [
        "format = \"lines\"",
        "size = \"1m\"",
        "at_end = \"finish\"",
        "on_error = \"fail\"",
        "aggs = { n = \"count\" }",
        "format = \"jsonl\"",
    ] {
        assert!(text.contains(word), "explain lacks {word}:\n{text}");
    }
    for debug in ["Some(", "None", "Lines", "Jsonl", "Finish", "Fail"] {
        assert!(
            !text.contains(debug),
            "explain prints Rust debug text {debug:?}:\n{text}"
        );
    }
}

#[test]
fn env_variables_fill_pipeline_strings_and_unset_ones_are_refused() {
    let p = Proj::new();
    p.write("logs/web1/in.jsonl", "{\"a\":1}\n");
    p.write(
        "p.toml",
        r#"name = "env"
[checkpoint]
every = "off"
[sources.src]
type = "file"
path = "logs/${HOST_DIR}/in.jsonl"
[transforms.m]
type = "map"
inputs = ["src"]
expr = '. + {cost: "$$5", host: "${HOST_DIR}", zone: "${ZONE:-eu}"} | . as $r | $r'
[sinks.out]
type = "file"
inputs = ["m"]
path = "-"
"#,
    );
    let o = run_weir_env(p.root(), &["run", "p.toml"], None, &[("HOST_DIR", "web1")]);
    expect_exit(&o, Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "{\"a\":1,\"cost\":\"$5\",\"host\":\"web1\",\"zone\":\"eu\"}\n"
    );
    let o = run_weir_env(p.root(), &["validate", "p.toml"], None, &[]);
    expect_exit(&o, Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("p.toml:6:")
            && err.contains("node 'src'")
            && err.contains("`HOST_DIR` is not set"),
        "{err}"
    );
}

#[test]
fn validate_suggests_names_finds_duplicate_keys_two_stdout_sinks_and_takes_set() {
    let p = Proj::new();
    let base = "[sources.a]\ntype = \"file\"\npath = \"a.jsonl\"\n[transforms.f]\ntype = \"filter\"\ninputs = [\"a\"]\nexpr = \".x > 1\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"-\"\n";
    let check = |text: String, needles: &[&str]| {
        p.write("v.toml", &text);
        let o = p.weir(&["validate", "v.toml"]);
        o.expect_code(2).expect_no_panic();
        for n in needles {
            assert!(o.stderr.contains(n), "{n:?} not in:\n{}", o.stderr);
        }
    };
    check(
        base.replace("\"filter\"", "\"filtr\""),
        &["v.toml:5:", "did you mean `filter`?"],
    );
    check(
        base.replace("expr =", "exprr ="),
        &["v.toml:7:", "did you mean `expr`?"],
    );
    check(
        base.replace("[sinks.o]", "[sinkz.o]"),
        &["did you mean `sinks`?"],
    );
    check(
        base.replace(
            "path = \"a.jsonl\"\n",
            "path = \"a.jsonl\"\npath = \"b.jsonl\"\n",
        ),
        &["v.toml:4:", "duplicate key `path`", "line 3"],
    );
    check(
        format!("{base}[sinks.o2]\ntype = \"file\"\ninputs = [\"a\"]\npath = \"-\"\n"),
        &["node 'o2'", "stdout", "sink 'o'"],
    );
    // --set reaches validate: an invalid value fixed from the command line.
    p.write("s.toml", base.replace(".x > 1", ".x >"));
    p.weir(&["validate", "s.toml"]).expect_code(2);
    p.weir(&["validate", "s.toml", "--set", "transforms.f.expr=.x > 2"])
        .expect_code(0);
}

// ---------------------------------------------------------------------------------------------
// --fresh, old-* pruning, Ctrl-C
// ---------------------------------------------------------------------------------------------

const SIMPLE: &str = "name = \"s\"\n[checkpoint]\nretain = 2\n[sources.x]\ntype = \"file\"\npath = \"in.jsonl\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"x\"]\npath = \"out.jsonl\"\n";

fn old_dirs(p: &Proj) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p.p(".weir/s"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("old-"))
        .collect();
    v.sort();
    v
}

#[test]
fn fresh_moves_nothing_when_the_run_cannot_start_and_keeps_retain_old_states() {
    let p = Proj::new();
    p.write("p.toml", SIMPLE);
    p.write("in.jsonl", "{\"a\":1}\n");
    p.weir(&["run", "p.toml"]).expect_code(0);
    let before = p.ckpts(".weir/s");
    assert!(!before.is_empty());
    let out = snapshot(&p.p("out.jsonl"));
    // The source is missing: the run cannot start, and the state and output stay as they were.
    let o = p.weir(&[
        "run",
        "--fresh",
        "p.toml",
        "--set",
        "sources.x.path=missing.jsonl",
    ]);
    o.expect_code(2);
    assert!(o.stderr.contains("missing.jsonl"), "{}", o.stderr);
    assert_eq!(p.ckpts(".weir/s"), before, "the checkpoints moved");
    assert!(
        old_dirs(&p).is_empty(),
        "state moved aside: {:?}",
        old_dirs(&p)
    );
    assert_eq!(snapshot(&p.p("out.jsonl")), out, "the output was touched");
    // An invalid pipeline: the same.
    let o = p.weir(&["run", "--fresh", "p.toml", "--set", "sinks.o.format=lines"]);
    o.expect_code(2);
    assert!(old_dirs(&p).is_empty());
    p.weir(&["resume", "p.toml"]).expect_code(0);

    // Each --fresh moves the state aside; only `retain` (2) of those are kept.
    for _ in 0..4 {
        p.weir(&["run", "--fresh", "p.toml"]).expect_code(0);
    }
    let old = old_dirs(&p);
    assert_eq!(old.len(), 2, "{old:?}");
    for d in &old {
        assert!(
            !ckpts_in(&p.p(&format!(".weir/s/{d}"))).is_empty(),
            "{d} holds no checkpoint"
        );
    }
    assert_eq!(p.read_str("out.jsonl"), "{\"a\":1}\n");
}

#[test]
fn ctrl_c_prints_the_resume_command_that_continues() {
    let p = Proj::new();
    p.write(
        "p.toml",
        "name = \"c\"\n[checkpoint]\nevery = \"200ms\"\n[sources.x]\ntype = \"file\"\npath = \"in.jsonl\"\nat_end = \"follow\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"x\"]\npath = \"out.jsonl\"\n",
    );
    p.write("in.jsonl", "{\"a\":1}\n");
    let mut bg = p.spawn(
        "run",
        &["run", "p.toml", "--set", "sinks.o.path=o 2.jsonl"],
        Stdio::null(),
    );
    assert!(
        wait_until(Duration::from_secs(30), || !p.ckpts(".weir/c").is_empty()),
        "no checkpoint"
    );
    bg.signal(SIGINT);
    assert_eq!(bg.wait(), 130);
    let err = bg.stderr_str();
    assert!(
        err.contains("continue with: weir resume p.toml --set 'sinks.o.path=o 2.jsonl'"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Progress, CSV on stdin
// ---------------------------------------------------------------------------------------------

#[test]
fn progress_always_draws_on_a_pipe_and_leaves_a_summary_unless_quiet() {
    let p = Proj::new();
    let log = access_log(20_000, 41);
    p.write("in.jsonl", &log);
    let o = p.weir(&["do", "--progress", "always", "{path}", "in.jsonl"]);
    o.expect_code(0);
    same_text(
        &o.stdout_str(),
        &tool("jq", &["-c", "{path}"], log.as_bytes()),
        "stdout under --progress always",
    );
    // The last line, after the escapes that clear the bar.
    let last = o.stderr.lines().last().unwrap_or("");
    let summary = last.find("weir: ").map_or("", |i| &last[i..]);
    assert!(
        summary.starts_with("weir: 20000 records,")
            && summary.contains("MB/s")
            && summary.contains("0 late, 0 errors"),
        "no summary line: {:?}",
        o.stderr
    );
    let total = format!("{:.2} MB", log.len() as f64 / 1e6);
    assert!(
        o.stderr.contains(&total) || o.stderr.contains("ETA"),
        "no bar drawn: {:?}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("MiB") && !o.stderr.contains("KiB"),
        "two unit systems: {:?}",
        o.stderr
    );
    let q = p.weir(&["-q", "do", "--progress", "always", "{path}", "in.jsonl"]);
    q.expect_code(0);
    assert!(!q.stderr.contains("records,"), "{:?}", q.stderr);
    let n = p.weir(&["do", "{path}", "in.jsonl"]);
    assert!(n.stderr.is_empty(), "auto on a pipe drew: {:?}", n.stderr);
}

#[test]
fn csv_piped_into_a_jsonl_source_is_explained() {
    let p = Proj::new();
    p.write(
        "p.toml",
        "[checkpoint]\nevery = \"off\"\n[sources.in]\ntype = \"file\"\npath = \"-\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"-\"\n",
    );
    let o = p.weir(&["validate", "p.toml"]);
    o.expect_code(0);
    assert!(
        o.stderr.contains("reads stdin as jsonl") && o.stderr.contains("format = \"csv\""),
        "{}",
        o.stderr
    );
    let o = p.weir_stdin(&["run", "p.toml"], b"user,amount\nann,415.50\n");
    o.expect_code(3);
    assert!(
        o.stderr.contains("looks like a CSV header") && o.stderr.contains("--from csv"),
        "{}",
        o.stderr
    );
    // With the format set, the same bytes run.
    let o = p.weir_stdin(
        &["run", "p.toml", "--set", "sources.in.format=csv"],
        b"user,amount\nann,3\n",
    );
    o.expect_code(0);
    assert_eq!(o.stdout_str(), "{\"user\":\"ann\",\"amount\":3}\n");
}
