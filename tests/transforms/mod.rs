//! The transforms (filter, map, parse, aggregate, window, dedup) and fan-out / fan-in.

use crate::common::*;

// Transforms

/// `in.jsonl` -> one transform (given as its TOML body) named `t` -> `out.jsonl`.
pub(crate) fn one_transform(body: &str) -> String {
    format!(
        "[sources.s]\ntype = \"file\"\npath = \"in.jsonl\"\n[transforms.t]\ninputs = [\"s\"]\n{body}\n[sinks.o]\ntype = \"file\"\ninputs = [\"t\"]\npath = \"out.jsonl\"\n"
    )
}

#[test]
fn filter_keeps_records_whose_expression_is_truthy_as_in_jq() {
    let p = run_simple(
        &one_transform("type = \"filter\"\nexpr = \".f\""),
        "in.jsonl",
        concat!(
            "{\"id\":1,\"f\":0}\n",
            "{\"id\":2,\"f\":\"\"}\n",
            "{\"id\":3,\"f\":[]}\n",
            "{\"id\":4,\"f\":{}}\n",
            "{\"id\":5,\"f\":false}\n",
            "{\"id\":6,\"f\":null}\n",
            "{\"id\":7}\n",
            "{\"id\":8,\"f\":true}\n",
            "{\"id\":9,\"f\":\"x\"}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"id\":1,\"f\":0}\n",
            "{\"id\":2,\"f\":\"\"}\n",
            "{\"id\":3,\"f\":[]}\n",
            "{\"id\":4,\"f\":{}}\n",
            "{\"id\":8,\"f\":true}\n",
            "{\"id\":9,\"f\":\"x\"}\n",
        )
    );
}

#[test]
fn filter_looks_at_the_first_output_only_and_drops_on_no_output() {
    let p = run_simple(
        &one_transform("type = \"filter\"\nexpr = \".xs[]\""),
        "in.jsonl",
        concat!(
            "{\"id\":1,\"xs\":[]}\n",
            "{\"id\":2,\"xs\":[false,true]}\n",
            "{\"id\":3,\"xs\":[true,false]}\n",
            "{\"id\":4,\"xs\":[null]}\n",
            "{\"id\":5,\"xs\":[1,2,3]}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"id\":3,\"xs\":[true,false]}\n{\"id\":5,\"xs\":[1,2,3]}\n"
    );
}

#[test]
fn filter_with_comparisons_and_boolean_logic() {
    let p = run_simple(
        &one_transform(
            "type = \"filter\"\nexpr = '.status >= 400 and .status < 500 and (.path | startswith(\"/api\"))'",
        ),
        "in.jsonl",
        concat!(
            "{\"status\":404,\"path\":\"/api/x\"}\n",
            "{\"status\":500,\"path\":\"/api/x\"}\n",
            "{\"status\":403,\"path\":\"/login\"}\n",
            "{\"status\":499,\"path\":\"/api\"}\n",
            "{\"status\":\"404\",\"path\":\"/api/y\"}\n",
        )
        .as_bytes(),
    );
    // The string "404" is greater than every number in jq order: not < 500.
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"status\":404,\"path\":\"/api/x\"}\n{\"status\":499,\"path\":\"/api\"}\n"
    );
}

#[test]
fn map_emits_zero_one_or_many_records_in_order() {
    let p = run_simple(
        &one_transform("type = \"map\"\nexpr = \"{id, item: .items[]}\""),
        "in.jsonl",
        concat!(
            "{\"id\":1,\"items\":[\"a\",\"b\",\"c\"]}\n",
            "{\"id\":2,\"items\":[]}\n",
            "{\"id\":3,\"items\":[{\"x\":1}]}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"id\":1,\"item\":\"a\"}\n",
            "{\"id\":1,\"item\":\"b\"}\n",
            "{\"id\":1,\"item\":\"c\"}\n",
            "{\"id\":3,\"item\":{\"x\":1}}\n",
        )
    );
}

#[test]
fn map_builds_objects_with_computed_fields() {
    let p = run_simple(
        &one_transform(
            "type = \"map\"\nexpr = '{user: .u, kb: (.bytes / 1024), ok: (.status < 400), tag: (if .status >= 500 then \"server\" else \"fine\" end)}'",
        ),
        "in.jsonl",
        b"{\"u\":\"ann\",\"bytes\":2048,\"status\":200}\n{\"u\":\"bob\",\"bytes\":512,\"status\":503}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"user\":\"ann\",\"kb\":2,\"ok\":true,\"tag\":\"fine\"}\n{\"user\":\"bob\",\"kb\":0.5,\"ok\":false,\"tag\":\"server\"}\n"
    );
}

#[test]
fn aggregate_final_output_is_sorted_by_key_in_jq_order() {
    let p = run_simple(
        &one_transform("type = \"aggregate\"\nkey = \".k\"\naggs = { n = \"count\" }"),
        "in.jsonl",
        concat!(
            "{\"k\":\"b\"}\n",
            "{\"k\":10}\n",
            "{}\n",
            "{\"k\":true}\n",
            "{\"k\":[1]}\n",
            "{\"k\":\"a\"}\n",
            "{\"k\":false}\n",
            "{\"k\":2.5}\n",
            "{\"k\":{\"x\":1}}\n",
            "{\"k\":-1}\n",
            "{\"k\":\"a\"}\n",
            "{\"k\":10}\n",
            "{\"k\":null}\n",
            "{\"k\":[0,5]}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"key\":null,\"n\":2}\n",
            "{\"key\":false,\"n\":1}\n",
            "{\"key\":true,\"n\":1}\n",
            "{\"key\":-1,\"n\":1}\n",
            "{\"key\":2.5,\"n\":1}\n",
            "{\"key\":10,\"n\":2}\n",
            "{\"key\":\"a\",\"n\":2}\n",
            "{\"key\":\"b\",\"n\":1}\n",
            "{\"key\":[0,5],\"n\":1}\n",
            "{\"key\":[1],\"n\":1}\n",
            "{\"key\":{\"x\":1},\"n\":1}\n",
        )
    );
}

#[test]
fn aggregate_functions_ignore_nulls_and_keep_the_aggs_order() {
    let p = run_simple(
        &one_transform(
            "type = \"aggregate\"\nkey = \".k\"\naggs = { n = \"count\", total = \"sum(.v)\", lo = \"min(.v)\", hi = \"max(.v)\", mean = \"avg(.v)\", f = \"first(.v)\", l = \"last(.v)\", d = \"count_distinct(.s)\" }",
        ),
        "in.jsonl",
        concat!(
            "{\"k\":\"x\",\"v\":null,\"s\":\"p\"}\n",
            "{\"k\":\"y\",\"v\":1.5}\n",
            "{\"k\":\"x\",\"v\":1,\"s\":\"p\"}\n",
            "{\"k\":\"x\",\"s\":\"q\"}\n",
            "{\"k\":\"w\",\"v\":1}\n",
            "{\"k\":\"x\",\"v\":2,\"s\":null}\n",
            "{\"k\":\"y\",\"v\":2}\n",
            "{\"k\":\"x\",\"v\":3,\"s\":\"r\"}\n",
            "{\"k\":\"w\",\"v\":2}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"key\":\"w\",\"n\":2,\"total\":3,\"lo\":1,\"hi\":2,\"mean\":1.5,\"f\":1,\"l\":2,\"d\":0}\n",
            "{\"key\":\"x\",\"n\":5,\"total\":6,\"lo\":1,\"hi\":3,\"mean\":2,\"f\":1,\"l\":3,\"d\":3}\n",
            "{\"key\":\"y\",\"n\":2,\"total\":3.5,\"lo\":1.5,\"hi\":2,\"mean\":1.75,\"f\":1.5,\"l\":2,\"d\":0}\n",
        )
    );
}

#[test]
fn sum_of_integers_stays_an_exact_integer() {
    // 2^53 + 1 is not a double: a float sum would print 9007199254740992.
    let p = run_simple(
        &one_transform("type = \"aggregate\"\naggs = { t = \"sum(.v)\", hi = \"max(.v)\" }"),
        "in.jsonl",
        b"{\"v\":9007199254740991}\n{\"v\":1}\n{\"v\":1}\n{\"v\":0}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"t\":9007199254740993,\"hi\":9007199254740991}\n"
    );
}

#[test]
fn aggregate_without_key_has_no_key_field() {
    let p = run_simple(
        &one_transform("type = \"aggregate\"\naggs = { n = \"count\", total = \"sum(.v)\", mean = \"avg(.v)\" }"),
        "in.jsonl",
        b"{\"v\":1}\n{\"v\":2}\n{\"v\":4}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"n\":3,\"total\":7,\"mean\":2.3333333333333335}\n"
    );
}

#[test]
fn aggregate_emit_updates_after_every_record() {
    let p = run_simple(
        &one_transform(
            "type = \"aggregate\"\nkey = \".k\"\nemit = \"updates\"\naggs = { n = \"count\", total = \"sum(.v)\" }",
        ),
        "in.jsonl",
        b"{\"k\":\"a\",\"v\":1}\n{\"k\":\"b\",\"v\":10}\n{\"k\":\"a\",\"v\":2}\n{\"k\":\"a\"}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"key\":\"a\",\"n\":1,\"total\":1}\n",
            "{\"key\":\"b\",\"n\":1,\"total\":10}\n",
            "{\"key\":\"a\",\"n\":2,\"total\":3}\n",
            "{\"key\":\"a\",\"n\":3,\"total\":3}\n",
        )
    );
}

#[test]
fn window_tumbling_fires_in_event_time_with_late_side_output() {
    // size 10 s, no out-of-orderness, no lateness; event time in epoch seconds.
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[transforms.w]
type = "window"
inputs = ["s"]
key = ".k"
time = ".t"
time_unit = "s"
size = "10s"
out_of_orderness = "0s"
allowed_lateness = "0s"
aggs = { n = "count", total = "sum(.v)" }
[sinks.o]
type = "file"
inputs = ["w"]
path = "out.jsonl"
[sinks.late]
type = "file"
inputs = ["w.late"]
path = "late.jsonl"
"#,
    );
    p.write(
        "in.jsonl",
        concat!(
            "{\"k\":\"b\",\"t\":2,\"v\":1}\n",
            "{\"k\":\"a\",\"t\":1,\"v\":2}\n",
            "{\"k\":\"a\",\"t\":5,\"v\":3}\n",
            "{\"k\":\"a\",\"t\":12,\"v\":4}\n",
            "{\"k\":\"b\",\"t\":3,\"v\":5}\n",
            "{\"k\":\"a\",\"t\":25,\"v\":6}\n",
        ),
    );
    p.weir(&["run", &p.s("p.toml"), "--stats", &p.s("st.json")])
        .expect_code(0)
        .expect_no_panic();
    let st = read_stats(&p.p("st.json"));
    assert_eq!(node_stats(&st, "w")["late"], 1, "one late record: {st}");
    let w = |k: &str, s: &str, e: &str, n: u32, t: u32| {
        format!("{{\"key\":\"{k}\",\"window_start\":\"1970-01-01T00:00:{s}Z\",\"window_end\":\"1970-01-01T00:00:{e}Z\",\"n\":{n},\"total\":{t}}}\n")
    };
    // W = 12 fires [0,10) for a and b (end, start, key order); W = 25 fires [10,20); the end
    // of input fires [20,30).
    let want = [
        w("a", "00", "10", 2, 5),
        w("b", "00", "10", 1, 1),
        w("a", "10", "20", 1, 4),
        w("a", "20", "30", 1, 6),
    ]
    .concat();
    assert_eq!(p.read_str("out.jsonl"), want);
    assert_eq!(p.read_str("late.jsonl"), "{\"k\":\"b\",\"t\":3,\"v\":5}\n");
}

#[test]
fn dedup_drops_keys_seen_within_the_ttl_in_event_time() {
    let p = run_simple(
        &one_transform("type = \"dedup\"\nkey = \".id\"\nttl = \"1m\"\ntime = \".ts\""),
        "in.jsonl",
        concat!(
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:00:00Z\"}\n",
            "{\"id\":\"b\",\"ts\":\"2026-01-01T00:00:10Z\"}\n",
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:00:20Z\"}\n",
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:02:00Z\"}\n",
            "{\"id\":\"b\",\"ts\":\"2026-01-01T00:02:00Z\"}\n",
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:02:30Z\"}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:00:00Z\"}\n",
            "{\"id\":\"b\",\"ts\":\"2026-01-01T00:00:10Z\"}\n",
            "{\"id\":\"a\",\"ts\":\"2026-01-01T00:02:00Z\"}\n",
            "{\"id\":\"b\",\"ts\":\"2026-01-01T00:02:00Z\"}\n",
        )
    );
}

// Fan-out and fan-in

#[test]
fn fan_out_gives_every_consumer_every_record() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[transforms.even]
type = "filter"
inputs = ["s"]
expr = ".n % 2 == 0"
[transforms.double]
type = "map"
inputs = ["s"]
expr = "{n: (.n * 2)}"
[sinks.a]
type = "file"
inputs = ["s"]
path = "a.jsonl"
[sinks.b]
type = "file"
inputs = ["s"]
path = "b.jsonl"
[sinks.e]
type = "file"
inputs = ["even"]
path = "e.jsonl"
[sinks.d]
type = "file"
inputs = ["double"]
path = "d.jsonl"
"#,
        "in.jsonl",
        b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n",
    );
    let all = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n";
    assert_eq!(p.read_str("a.jsonl"), all);
    assert_eq!(p.read_str("b.jsonl"), all);
    assert_eq!(p.read_str("e.jsonl"), "{\"n\":2}\n{\"n\":4}\n");
    assert_eq!(
        p.read_str("d.jsonl"),
        "{\"n\":2}\n{\"n\":4}\n{\"n\":6}\n{\"n\":8}\n"
    );
}

#[test]
fn union_output_is_deterministic_across_runs_and_keeps_each_inputs_order() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "union"
[checkpoint]
every = "20ms"
[sources.a]
type = "file"
path = "a.jsonl"
[sources.b]
type = "file"
path = "b.jsonl"
[sources.c]
type = "file"
path = "c.jsonl"
[transforms.odd]
type = "filter"
inputs = ["c"]
expr = ".i % 2 == 1"
[transforms.even]
type = "map"
inputs = ["c"]
expr = "select(.i % 2 == 0) | {i, even: true}"
[sinks.ab]
type = "file"
inputs = ["a", "b"]
path = "ab.jsonl"
[sinks.oe]
type = "file"
inputs = ["odd", "even"]
path = "oe.jsonl"
"#,
    );
    let gen = |src: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("{{\"src\":\"{src}\",\"i\":{i}}}"))
            .collect()
    };
    // Large enough to span many batches and checkpoints (every 20 ms): the union's order may
    // depend neither on thread timing nor on where the checkpoints fall.
    let (a, b, c) = (gen("a", 60000), gen("b", 25000), gen("c", 4000));
    p.write("a.jsonl", a.join("\n") + "\n");
    p.write("b.jsonl", b.join("\n") + "\n");
    p.write("c.jsonl", c.join("\n") + "\n");
    let odd: Vec<String> = (0..4000)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("{{\"src\":\"c\",\"i\":{i}}}"))
        .collect();
    let even: Vec<String> = (0..4000)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("{{\"i\":{i},\"even\":true}}"))
        .collect();
    let mut first: Option<(Vec<u8>, Vec<u8>)> = None;
    for run in 0..5 {
        let args = if run == 0 {
            vec!["run", "p.toml"]
        } else {
            vec!["run", "p.toml", "--fresh"]
        };
        p.weir(&args).expect_code(0).expect_no_panic();
        let (ab, oe) = (p.read("ab.jsonl"), p.read("oe.jsonl"));
        match &first {
            None => {
                let ab_l = lines(&String::from_utf8(ab.clone()).unwrap());
                let oe_l = lines(&String::from_utf8(oe.clone()).unwrap());
                assert_eq!(ab_l.len(), a.len() + b.len());
                assert_eq!(oe_l.len(), 4000);
                let from = |v: &[String], tag: &str| -> Vec<String> {
                    v.iter().filter(|l| l.contains(tag)).cloned().collect()
                };
                assert!(
                    from(&ab_l, "\"src\":\"a\"") == a,
                    "input a's order is not kept"
                );
                assert!(
                    from(&ab_l, "\"src\":\"b\"") == b,
                    "input b's order is not kept"
                );
                assert!(
                    from(&oe_l, "\"src\":\"c\"") == odd,
                    "the odd branch's order is not kept"
                );
                assert!(
                    from(&oe_l, "\"even\"") == even,
                    "the even branch's order is not kept"
                );
                first = Some((ab, oe));
            }
            Some((ab0, oe0)) => {
                assert!(
                    ab0 == &ab,
                    "union of two sources differs between run 1 and run {}",
                    run + 1
                );
                assert!(
                    oe0 == &oe,
                    "union of two branches differs between run 1 and run {}",
                    run + 1
                );
            }
        }
    }
}
