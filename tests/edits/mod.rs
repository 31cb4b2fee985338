//! Resume after editing (SPEC section 3): a cron pipeline runs on the first half of a log,
//! its file is edited, the log grows, and `weir resume` continues; every output is checked
//! byte for byte against what the edit should give, computed here from the input. Refusals
//! must name the node and what changed, exit 2, and touch nothing.

use crate::common::*;

const PATHS: [&str; 3] = ["/a", "/b", "/c"];
const STATUS: [u32; 4] = [200, 404, 500, 503];

/// One access record: (path, status, jsonl line).
type Rec = (String, u32, String);

/// `n` access records, from record `from` on.
fn records(from: usize, n: usize) -> Vec<Rec> {
    (from..from + n)
        .map(|i| {
            let path = PATHS[(i * 7 + i / 3) % 3].to_string();
            let status = STATUS[(i * 5 + i / 2) % 4];
            let line = format!(
                "{{\"ts\":\"2026-11-01T10:{:02}:{:02}Z\",\"path\":\"{path}\",\"status\":{status}}}\n",
                i / 60,
                i % 60
            );
            (path, status, line)
        })
        .collect()
}

fn text(recs: &[Rec]) -> String {
    recs.iter().map(|r| r.2.as_str()).collect()
}

/// The output of an `aggregate` with `emit = "updates"` counting by `.path`, from `counts`.
fn count_updates<'a>(
    recs: impl IntoIterator<Item = &'a Rec>,
    counts: &mut std::collections::BTreeMap<String, u64>,
) -> String {
    let mut s = String::new();
    for (path, _, _) in recs {
        let n = counts.entry(path.clone()).or_insert(0);
        *n += 1;
        s.push_str(&format!("{{\"key\":\"{path}\",\"n\":{n}}}\n"));
    }
    s
}

/// Per path: records counted and the largest status.
type Worst = std::collections::BTreeMap<String, (u64, u32)>;

/// The output of the aggregate `{ n = "count", worst = "max(.status)" }` by `.path`, with
/// `emit = "updates"`, from `worst`.
fn worst_updates(recs: &[Rec], worst: &mut Worst) -> String {
    let mut s = String::new();
    for (path, status, _) in recs {
        let e = worst.entry(path.clone()).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(*status);
        s.push_str(&format!(
            "{{\"key\":\"{path}\",\"n\":{},\"worst\":{}}}\n",
            e.0, e.1
        ));
    }
    s
}

const HEAD: &str = r#"name = "edits"
[sources.access]
type = "file"
path = "access.jsonl"
at_end = "pause"
"#;

fn count_node(input: &str, key: &str, aggs: &str) -> String {
    format!(
        "[transforms.count]\ntype = \"aggregate\"\ninputs = [\"{input}\"]\nkey = \"{key}\"\naggs = {aggs}\nemit = \"updates\"\n"
    )
}

fn filter_node(name: &str) -> String {
    format!(
        "[transforms.{name}]\ntype = \"filter\"\ninputs = [\"access\"]\nexpr = \".status >= 500\"\n"
    )
}

fn sink(name: &str, input: &str, path: &str) -> String {
    format!("[sinks.{name}]\ntype = \"file\"\ninputs = [\"{input}\"]\npath = \"{path}\"\n")
}

/// The first pipeline of most tests: counts by path, written to `out.jsonl`.
fn counting() -> String {
    filtered(None, "{ n = \"count\" }", "out.jsonl")
}

/// Counts (with `aggs`) by path of what filter `filter` (if any) keeps, into `path`.
fn filtered(filter: Option<&str>, aggs: &str, path: &str) -> String {
    match filter {
        Some(f) => format!(
            "{HEAD}{}{}{}",
            filter_node(f),
            count_node(f, ".path", aggs),
            sink("out", "count", path)
        ),
        None => format!(
            "{HEAD}{}{}",
            count_node("access", ".path", aggs),
            sink("out", "count", path)
        ),
    }
}

/// A project with the first half of the log read by `pipeline`; returns the two halves.
fn first_run(pipeline: &str) -> (Proj, Vec<Rec>, Vec<Rec>) {
    let p = Proj::new();
    let (one, two) = (records(0, 40), records(40, 40));
    p.write("access.jsonl", text(&one));
    p.write("p.toml", pipeline);
    p.weir(&["run", "p.toml"]).expect_code(0);
    (p, one, two)
}

/// With `pipeline` as the file, `resume` exits 2 and says `why`; returns its stderr.
#[track_caller]
fn expect_refused(p: &Proj, pipeline: &str, why: &str) -> String {
    p.write("p.toml", pipeline);
    let o = resume(p, &[]);
    o.expect_code(2);
    assert!(o.stderr.contains(why), "{}", o.stderr);
    o.stderr
}

/// Writes the edited `pipeline`, appends `more` to the log, and returns `resume --plan`'s
/// table, which must exit `code`.
#[track_caller]
fn edit_and_plan(p: &Proj, pipeline: &str, more: &[Rec], code: i32) -> String {
    p.write("p.toml", pipeline);
    p.append("access.jsonl", text(more));
    let plan = resume(p, &["--plan"]);
    plan.expect_code(code);
    plan.stdout_str()
}

fn resume(p: &Proj, extra: &[&str]) -> Out {
    let mut args = vec!["resume", "p.toml"];
    args.extend_from_slice(extra);
    let o = p.weir(&args);
    o.expect_no_panic();
    o
}

#[test]
fn adding_a_filter_keeps_the_aggregate_state_and_filters_what_comes_next() {
    let v1 = counting();
    let (p, one, two) = first_run(&v1);
    let mut counts = Default::default();
    let mut want = count_updates(&one, &mut counts);
    assert_eq!(p.read_str("out.jsonl"), want);

    let v2 = filtered(Some("errors"), "{ n = \"count\" }", "out.jsonl");
    let plan = edit_and_plan(&p, &v2, &two, 0);
    assert!(plan.contains("errors  transform filter     new"), "{plan}");
    assert!(
        plan.lines().any(|l| l.starts_with("count ")
            && l.contains(" kept ")
            && l.contains("inputs changed from `access` to `errors`")),
        "{plan}"
    );
    // --plan ran nothing.
    assert_eq!(p.read_str("out.jsonl"), want);

    resume(&p, &[]).expect_code(0);
    want.push_str(&count_updates(
        two.iter().filter(|r| r.1 >= 500),
        &mut counts,
    ));
    assert_eq!(p.read_str("out.jsonl"), want);
}

#[test]
fn renaming_a_stateless_node_resumes_as_if_nothing_changed() {
    let v1 = filtered(Some("errors"), "{ n = \"count\" }", "out.jsonl");
    let (p, one, two) = first_run(&v1);
    let v2 = filtered(Some("server_errors"), "{ n = \"count\" }", "out.jsonl");
    let plan = edit_and_plan(&p, &v2, &two, 0);
    assert!(
        plan.contains("server_errors  transform filter     new"),
        "{plan}"
    );
    assert!(
        plan.contains("errors         transform filter     removed"),
        "{plan}"
    );
    resume(&p, &[]).expect_code(0);
    let mut counts = Default::default();
    let want = count_updates(one.iter().chain(&two).filter(|r| r.1 >= 500), &mut counts);
    assert_eq!(p.read_str("out.jsonl"), want);
}

#[test]
fn changing_an_aggregate_is_refused_naming_it_until_its_state_is_dropped() {
    let v1 = counting();
    let (p, one, two) = first_run(&v1);
    let before = p.read("out.jsonl");
    let ckpts = p.ckpts(".weir/edits");
    p.append("access.jsonl", text(&two));

    // A new key, then new aggregates: each is named in the refusal.
    for (key, aggs, why) in [
        (
            ".status",
            "{ n = \"count\" }",
            "key changed from `.path` to `.status`",
        ),
        (
            ".path",
            "{ n = \"count\", worst = \"max(.status)\" }",
            "aggs changed from `n = count` to `n = count, worst = max(.status)`",
        ),
    ] {
        let v2 = format!(
            "{HEAD}{}{}",
            count_node("access", key, aggs),
            sink("out", "count", "out.jsonl")
        );
        let err = expect_refused(&p, &v2, why);
        assert!(err.contains("node 'count': "), "{err}");
        assert!(err.contains("--drop-state count"), "{err}");
        let plan = resume(&p, &["--plan"]);
        plan.expect_code(2);
        assert!(
            plan.stdout_str()
                .lines()
                .any(|l| l.starts_with("count ") && l.contains(" refused ") && l.contains(why)),
            "{}",
            plan.stdout_str()
        );
        // Nothing ran: the output and the checkpoints are as they were.
        assert_eq!(p.read("out.jsonl"), before);
        assert_eq!(p.ckpts(".weir/edits"), ckpts);
    }

    // Dropped: the aggregate starts empty, by the new key, on what comes after the checkpoint.
    let plan = resume(&p, &["--plan", "--drop-state", "count"]);
    plan.expect_code(0);
    assert!(
        plan.stdout_str().contains("dropped"),
        "{}",
        plan.stdout_str()
    );
    resume(&p, &["--drop-state", "count"]).expect_code(0);
    let mut want = String::from_utf8(before).unwrap();
    let mut worst = Worst::default();
    want.push_str(&worst_updates(&two, &mut worst));
    assert_eq!(p.read_str("out.jsonl"), want);

    // The same command again (after a crash, or left in a cron line) drops nothing: the
    // checkpoint was written by a run that dropped it. A name that is nowhere is said.
    p.append("access.jsonl", text(&one[..6]));
    let o = resume(&p, &["--drop-state", "count", "--drop-state", "cuont"]);
    o.expect_code(0);
    assert!(
        o.stderr
            .contains("was written by a run that already dropped it; its state is kept"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("--drop-state cuont: no node 'cuont'"),
        "{}",
        o.stderr
    );
    let mut more = |recs: &[Rec], worst: &mut Worst| {
        want.push_str(&worst_updates(recs, worst));
        want.clone()
    };
    assert_eq!(p.read_str("out.jsonl"), more(&one[..6], &mut worst));

    // After a plain resume, asking again does start the node over: it is a request, not an
    // accident of retrying.
    p.append("access.jsonl", text(&one[6..9]));
    resume(&p, &[]).expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), more(&one[6..9], &mut worst));
    p.append("access.jsonl", text(&one[9..14]));
    let plan = resume(&p, &["--plan", "--drop-state", "count"]).stdout_str();
    assert!(
        plan.contains("dropped   state dropped: starts empty"),
        "{plan}"
    );
    resume(&p, &["--drop-state", "count"]).expect_code(0);
    worst.clear();
    assert_eq!(p.read_str("out.jsonl"), more(&one[9..14], &mut worst));
}

#[test]
fn a_sink_whose_path_changed_starts_the_new_file_and_a_renamed_sink_keeps_its_file() {
    let v1 = counting();
    let (p, one, two) = first_run(&v1);
    let mut counts = Default::default();
    let first = count_updates(&one, &mut counts);
    assert_eq!(p.read_str("out.jsonl"), first);

    let v2 = filtered(None, "{ n = \"count\" }", "out2.jsonl");
    let plan = edit_and_plan(&p, &v2, &two[..20], 0);
    assert!(
        plan.contains(
            "changed   path changed from `out.jsonl` to `out2.jsonl`: starts the new file"
        ),
        "{plan}"
    );
    resume(&p, &[]).expect_code(0);
    // The old file keeps what was committed; the new one has what came after.
    assert_eq!(p.read_str("out.jsonl"), first);
    let second = count_updates(&two[..20], &mut counts);
    assert_eq!(p.read_str("out2.jsonl"), second);

    // Renamed, same path: the sink keeps writing (and truncating to) its file.
    let v3 = format!(
        "{HEAD}{}{}",
        count_node("access", ".path", "{ n = \"count\" }"),
        sink("result", "count", "out2.jsonl")
    );
    let plan = edit_and_plan(&p, &v3, &two[20..], 0);
    assert!(
        plan.contains("renamed from 'out': keeps writing its file"),
        "{plan}"
    );
    resume(&p, &[]).expect_code(0);
    let third = count_updates(&two[20..], &mut counts);
    assert_eq!(p.read_str("out2.jsonl"), format!("{second}{third}"));
}

#[test]
fn an_added_source_reads_from_its_beginning_while_the_old_one_continues() {
    let v1 = counting();
    let (p, one, two) = first_run(&v1);
    let more = records(1000, 25);
    p.write("more.jsonl", text(&more));
    let v2 = format!(
        "{HEAD}{}{}[sources.more]\ntype = \"file\"\npath = \"more.jsonl\"\nat_end = \"pause\"\n{}",
        count_node("access", ".path", "{ n = \"count\" }"),
        sink("out", "count", "out.jsonl"),
        sink("more_out", "more", "more_out.jsonl")
    );
    let plan = edit_and_plan(&p, &v2, &two, 0);
    assert!(
        plan.contains("more      source file          new       not in the checkpoint: reads its input from the beginning"),
        "{plan}"
    );
    resume(&p, &[]).expect_code(0);
    let mut counts = Default::default();
    let want = count_updates(one.iter().chain(&two), &mut counts);
    assert_eq!(p.read_str("out.jsonl"), want);
    assert_eq!(p.read_str("more_out.jsonl"), text(&more));
}

#[test]
fn removing_a_node_that_holds_state_is_refused_unless_dropped_and_so_is_a_source_format_change() {
    let v1 = counting();
    let (p, _one, two) = first_run(&v1);
    let before = p.read_str("out.jsonl");
    p.append("access.jsonl", text(&two));

    let lines_src = HEAD.replace(
        "at_end = \"pause\"\n",
        "at_end = \"pause\"\nformat = \"lines\"\n",
    );
    let v_fmt = format!(
        "{lines_src}{}{}",
        count_node("access", ".line", "{ n = \"count\" }"),
        sink("out", "count", "out.jsonl")
    );
    expect_refused(
        &p,
        &v_fmt,
        "node 'access': format changed from `jsonl` to `lines`",
    );

    let v2 = format!("{HEAD}{}", sink("out", "access", "out.jsonl"));
    expect_refused(
        &p,
        &v2,
        "node 'count': removed from the file, but the checkpoint holds its state",
    );
    assert_eq!(p.read_str("out.jsonl"), before);
    resume(&p, &["--drop-state", "count"]).expect_code(0);
    assert_eq!(p.read_str("out.jsonl"), format!("{before}{}", text(&two)));
}

/// Re-frames checkpoint `path` as an older weir wrote it: no per-node state config.
fn as_older_weir(path: &std::path::Path) {
    use weir::checkpoint::format;
    let mut c = format::decode(&std::fs::read(path).unwrap()).unwrap();
    assert!(c.state_config.is_some());
    c.state_config = None;
    std::fs::write(path, format::encode(&c).unwrap()).unwrap();
}

#[test]
fn a_checkpoint_of_an_older_weir_resumes_only_the_unchanged_file() {
    let v1 = counting();
    let (p, one, two) = first_run(&v1);
    for c in p.ckpts(".weir/edits") {
        as_older_weir(&c);
    }
    p.append("access.jsonl", text(&two[..10]));
    let v2 = filtered(Some("errors"), "{ n = \"count\" }", "out.jsonl");
    expect_refused(&p, &v2, "written by an older weir");

    p.write("p.toml", &v1);
    resume(&p, &[]).expect_code(0);
    let mut counts = Default::default();
    let mut want = count_updates(one.iter().chain(&two[..10]), &mut counts);
    assert_eq!(p.read_str("out.jsonl"), want);
    // Its next checkpoint has the state config, so the edit now resumes node by node.
    p.write("p.toml", &v2);
    p.append("access.jsonl", text(&two[10..]));
    resume(&p, &[]).expect_code(0);
    want.push_str(&count_updates(
        two[10..].iter().filter(|r| r.1 >= 500),
        &mut counts,
    ));
    assert_eq!(p.read_str("out.jsonl"), want);
}

#[test]
fn a_window_keeps_its_state_through_a_new_out_of_orderness_but_not_a_new_size() {
    let v = |size: &str, ooo: &str| {
        format!(
            "{HEAD}[transforms.w]\ntype = \"window\"\ninputs = [\"access\"]\nkey = \".path\"\ntime = \".ts\"\nsize = \"{size}\"\nout_of_orderness = \"{ooo}\"\naggs = {{ n = \"count\" }}\n{}",
            sink("out", "w", "out.jsonl")
        )
    };
    let (p, _one, two) = first_run(&v("60s", "0s"));
    p.append("access.jsonl", text(&two));
    p.write("p.toml", v("1m", "5s"));
    let plan = resume(&p, &["--plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout_str()
            .lines()
            .any(|l| l.starts_with("w ") && l.contains(" kept ")),
        "{}",
        plan.stdout_str()
    );
    p.write("p.toml", v("2m", "0s"));
    let plan = resume(&p, &["--plan"]);
    plan.expect_code(2);
    assert!(
        plan.stdout_str().contains("size changed from `1m` to `2m`"),
        "{}",
        plan.stdout_str()
    );
}

/// The edited pipeline of the crash test: a filter added, the aggregate changed (so its state
/// is dropped) and the sink moved to a new file.
fn crash_v2() -> String {
    filtered(
        Some("errors"),
        "{ n = \"count\", worst = \"max(.status)\" }",
        "out2.jsonl",
    )
}

#[test]
fn a_crash_in_the_first_run_after_an_edit_and_the_same_command_again_give_the_uninterrupted_output()
{
    let v1 = counting();
    // Uninterrupted: the reference for the new file.
    let (p, _one, two) = first_run(&v1);
    let first = p.read("out.jsonl");
    p.write("p.toml", crash_v2());
    p.append("access.jsonl", text(&two));
    resume(&p, &["--drop-state", "count"]).expect_code(0);
    let want = p.read("out2.jsonl");
    assert!(!want.is_empty());

    for fp in [
        "checkpoint-before-write=return",
        "checkpoint-after-write=return",
        "sink-before-fsync=return",
        "atomic-before-rename=return",
    ] {
        let (p, _one, two) = first_run(&v1);
        p.write("p.toml", crash_v2());
        p.append("access.jsonl", text(&two));
        let o = run_weir(
            p.root(),
            &["resume", "p.toml", "--drop-state", "count"],
            Some(fp),
        );
        assert_ne!(o.status.code(), Some(0), "{fp}: no crash");
        let o = resume(&p, &["--drop-state", "count"]);
        o.expect_code(0);
        assert_eq!(p.read("out2.jsonl"), want, "{fp}");
        assert_eq!(p.read("out.jsonl"), first, "{fp}: the old file changed");
    }
}
