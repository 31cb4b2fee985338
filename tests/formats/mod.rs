//! Input and output formats: JSON lines, CSV, TSV and plain lines, and awkward input in each.

use crate::common::*;

// Input formats and awkward input

#[test]
fn jsonl_skips_blank_lines_accepts_crlf_and_a_last_line_without_newline() {
    let p = run_simple(
        PASS,
        "in.jsonl",
        b"{\"a\":1}\r\n\n   \n{\"a\":2}\n\t\n{\"a\":3}",
    );
    assert_eq!(p.read_str("out.jsonl"), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
}

/// Computed numbers print as jq prints them (`10 / 2` is `5`); a number passed through keeps its
/// input text (`2.0`), as in jq 1.7.
#[test]
fn numbers_print_as_jq_prints_them() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[transforms.m]
type = "map"
inputs = ["s"]
expr = "{a: (10 / 2), b: (1 / 4), c: (.x * 2), d: (.y + 0.5), e: .z, f: (.y / 3)}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.jsonl"
"#,
        "in.jsonl",
        b"{\"x\":1.5,\"y\":2,\"z\":2.0}\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"a\":5,\"b\":0.25,\"c\":3,\"d\":2.5,\"e\":2.0,\"f\":0.6666666666666666}\n"
    );
}

#[test]
fn empty_input_file_finishes_with_an_empty_output() {
    let p = Proj::new();
    p.write("p.toml", PASS);
    p.write("in.jsonl", b"");
    let o = p.weir(&["run", &p.s("p.toml"), "--stats", &p.s("st.json")]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(p.read("out.jsonl"), b"");
    let st = read_stats(&p.p("st.json"));
    assert_eq!(node_stats(&st, "s")["records_out"], 0);
    assert_eq!(node_stats(&st, "s")["errors"], 0);
}

#[test]
fn five_megabyte_lines_good_and_bad() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.jsonl"
on_error = "dead_letter"
dead_letter = "dead.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    let big = format!("{{\"big\":\"{}\"}}", "x".repeat(5 << 20));
    let broken = format!("{{\"bad\":\"{}", "y".repeat(5 << 20));
    let input = format!("{big}\n{broken}\n{{\"ok\":true}}\n");
    p.write("in.jsonl", &input);
    let o = p.weir(&["run", &p.s("p.toml")]);
    o.expect_code(0).expect_no_panic();
    let out = p.read_str("out.jsonl");
    assert!(
        out == format!("{big}\n{{\"ok\":true}}\n"),
        "the 5 MB record did not come out unchanged ({} bytes out)",
        out.len()
    );
    let dead = p.read_str("dead.jsonl");
    assert_eq!(dead.lines().count(), 1, "one dead letter");
    let v: serde_json::Value = serde_json::from_str(dead.trim_end()).unwrap();
    let err = v["error"].as_str().unwrap_or("");
    let want = dead_letter(
        "s",
        &p.s("in.jsonl"),
        2,
        big.len() as u64 + 1,
        "s",
        err,
        &format!("\"raw\":{}", js(&broken)),
    );
    assert!(dead.trim_end() == want, "the 5 MB dead letter differs");
}

/// Bytes with no whitespace, no `{` and no DEL, split into non-empty lines.
pub(crate) fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut out = Vec::with_capacity(n + n / 20);
    let mut since = 0;
    while out.len() < n {
        let b = (r.next_u64() & 0xff) as u8;
        if matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | b'{' | 0x7f) {
            continue;
        }
        out.push(b);
        since += 1;
        if since >= 5 && r.range(0, 60) == 0 {
            out.push(b'\n');
            since = 0;
        }
    }
    out
}

#[test]
fn binary_garbage_never_panics_and_every_line_is_a_bad_record() {
    let data = garbage(42, 64 * 1024);
    let nlines = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"name = "garbage"
[sources.s]
type = "file"
path = "in.bin"
format = "jsonl"
on_error = "skip"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    p.write("in.bin", &data);
    let o = p.weir(&["run", &p.s("p.toml"), "--stats", &p.s("st.json")]);
    o.expect_code(0).expect_no_panic();
    assert_eq!(p.read("out.jsonl"), b"");
    let st = read_stats(&p.p("st.json"));
    assert_eq!(node_stats(&st, "s")["errors"], nlines, "{st}");

    // The same bytes as `lines`: valid UTF-8 lines become records, the others are bad input.
    let q = Proj::new();
    q.write(
        "p.toml",
        r#"name = "garbage-lines"
[sources.s]
type = "file"
path = "in.bin"
format = "lines"
on_error = "skip"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    q.write("in.bin", &data);
    let o = q.weir(&["run", &q.s("p.toml"), "--stats", &q.s("st.json")]);
    o.expect_code(0).expect_no_panic();
    let mut want = String::new();
    let mut bad = 0;
    for l in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match std::str::from_utf8(l) {
            Ok(s) => want.push_str(&format!("{{\"line\":{}}}\n", js(s))),
            Err(_) => bad += 1,
        }
    }
    assert_eq!(q.read_str("out.jsonl"), want);
    let st = read_stats(&q.p("st.json"));
    assert_eq!(node_stats(&st, "s")["errors"], bad, "{st}");
}

#[test]
fn lines_format_strips_crlf_and_reads_a_last_line_without_newline() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.log"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
        "in.log",
        "alpha\r\nbeta \"quoted\" \\ back\n\tgamma — δ".as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"line\":\"alpha\"}\n{\"line\":\"beta \\\"quoted\\\" \\\\ back\"}\n{\"line\":\"\\tgamma — δ\"}\n"
    );
}

/// Cells that are JSON numbers become numbers (keeping their text: `2.50`, `1e3`); `007`, `+3`,
/// `.5` and the like stay strings.
#[test]
fn csv_input_infers_canonical_numbers_only() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.csv"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
        "in.csv",
        concat!(
            "id,zip,qty,price,neg,exp,plus,text,empty,dot,frac,under,hex,nan,quote\n",
            "1,007,3,2.50,-4,1e3,+3,\"a,b\",,.5,5.,1_000,0x1F,NaN,\"say \"\"hi\"\"\"\n",
            "20,0,0.5,-1.25E-2,-0.5,12e+1,3 ,x,,1.0e2,0.0,7,,inf,\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        concat!(
            "{\"id\":1,\"zip\":\"007\",\"qty\":3,\"price\":2.50,\"neg\":-4,\"exp\":1e3,\"plus\":\"+3\",\"text\":\"a,b\",\"empty\":\"\",\"dot\":\".5\",\"frac\":\"5.\",\"under\":\"1_000\",\"hex\":\"0x1F\",\"nan\":\"NaN\",\"quote\":\"say \\\"hi\\\"\"}\n",
            "{\"id\":20,\"zip\":0,\"qty\":0.5,\"price\":-1.25E-2,\"neg\":-0.5,\"exp\":12e+1,\"plus\":\"3 \",\"text\":\"x\",\"empty\":\"\",\"dot\":1.0e2,\"frac\":0.0,\"under\":7,\"hex\":\"\",\"nan\":\"inf\",\"quote\":\"\"}\n",
        )
    );
}

#[test]
fn csv_infer_types_false_keeps_every_field_a_string() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.csv"
infer_types = false
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
        "in.csv",
        b"a,b,c\n1,2.5,x\n",
    );
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"a\":\"1\",\"b\":\"2.5\",\"c\":\"x\"}\n"
    );
}

#[test]
fn tsv_in_and_tsv_out() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.tsv"
[transforms.m]
type = "map"
inputs = ["s"]
expr = ". + {total: (.qty * .price)}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.tsv"
"#,
        "in.tsv",
        b"item\tqty\tprice\nwidget\t3\t2.5\nsmall gadget\t10\t0.25\n",
    );
    assert_eq!(
        p.read_str("out.tsv"),
        "item\tqty\tprice\ttotal\nwidget\t3\t2.5\t7.5\nsmall gadget\t10\t0.25\t2.5\n"
    );
}

#[test]
fn csv_output_takes_its_header_from_the_first_record_and_quotes_as_rfc4180() {
    let p = run_simple(
        r#"[sources.s]
type = "file"
path = "in.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.csv"
"#,
        "in.jsonl",
        concat!(
            "{\"name\":\"widget\",\"qty\":3,\"price\":2.5,\"note\":\"a,b\"}\n",
            "{\"name\":\"gadget\",\"qty\":10,\"price\":5.0,\"note\":\"say \\\"hi\\\"\"}\n",
            "{\"name\":\"thing\",\"qty\":-1,\"price\":0.125,\"note\":\"plain\"}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        p.read_str("out.csv"),
        // `5.0` keeps its text, as every number passed through does.
        "name,qty,price,note\nwidget,3,2.5,\"a,b\"\ngadget,10,5.0,\"say \"\"hi\"\"\"\nthing,-1,0.125,plain\n"
    );
}

#[test]
fn formats_default_from_the_file_extension() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.c]
type = "file"
path = "a.csv"
[sources.t]
type = "file"
path = "b.tsv"
[sources.l]
type = "file"
path = "c.log"
[sources.x]
type = "file"
path = "d.txt"
[sources.j]
type = "file"
path = "e.ndjson"
[sinks.oc]
type = "file"
inputs = ["c"]
path = "oc.jsonl"
[sinks.ot]
type = "file"
inputs = ["t"]
path = "ot.jsonl"
[sinks.ol]
type = "file"
inputs = ["l"]
path = "ol.jsonl"
[sinks.ox]
type = "file"
inputs = ["x"]
path = "ox.jsonl"
[sinks.oj]
type = "file"
inputs = ["j"]
path = "oj.csv"
[sinks.ojt]
type = "file"
inputs = ["j"]
path = "oj.tsv"
[sinks.ojj]
type = "file"
inputs = ["j"]
path = "oj.out"
"#,
    );
    p.write("a.csv", "k,v\na,1\n");
    p.write("b.tsv", "k\tv\nb\t2\n");
    p.write("c.log", "{\"not\":\"json here\"}\n");
    p.write("d.txt", "plain,text\n");
    p.write("e.ndjson", "{\"k\":\"e\",\"v\":5}\n");
    p.weir(&["run", &p.s("p.toml")])
        .expect_code(0)
        .expect_no_panic();
    assert_eq!(p.read_str("oc.jsonl"), "{\"k\":\"a\",\"v\":1}\n");
    assert_eq!(p.read_str("ot.jsonl"), "{\"k\":\"b\",\"v\":2}\n");
    assert_eq!(
        p.read_str("ol.jsonl"),
        "{\"line\":\"{\\\"not\\\":\\\"json here\\\"}\"}\n"
    );
    assert_eq!(p.read_str("ox.jsonl"), "{\"line\":\"plain,text\"}\n");
    assert_eq!(p.read_str("oj.csv"), "k,v\ne,5\n");
    assert_eq!(p.read_str("oj.tsv"), "k\tv\ne\t5\n");
    assert_eq!(p.read_str("oj.out"), "{\"k\":\"e\",\"v\":5}\n");
}

/// A CSV file with a quoted newline, a short row and a long row, with `eol` line ends: the good
/// rows come out, the bad ones go to the dead-letter file with their physical line number,
/// byte offset and raw text.
pub(crate) fn csv_bad_rows(eol: &str) {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[sources.s]
type = "file"
path = "in.csv"
on_error = "dead_letter"
dead_letter = "dead.jsonl"
[sinks.o]
type = "file"
inputs = ["s"]
path = "out.jsonl"
"#,
    );
    // (text, physical lines it spans)
    let rows = [
        ("a,b".to_string(), 1),
        ("1,\"x\ny\"".to_string(), 2),
        ("2,z".to_string(), 1),
        ("3".to_string(), 1),
        ("4,5,6".to_string(), 1),
        ("7,w".to_string(), 1),
    ];
    let mut input = String::new();
    let mut at = Vec::new(); // (line, offset) of each row
    let mut line = 1;
    for (text, n) in &rows {
        at.push((line, input.len() as u64));
        input.push_str(text);
        input.push_str(eol);
        line += n;
    }
    p.write("in.csv", &input);
    p.weir(&["run", "p.toml"]).expect_code(0).expect_no_panic();
    assert_eq!(
        p.read_str("out.jsonl"),
        "{\"a\":1,\"b\":\"x\\ny\"}\n{\"a\":2,\"b\":\"z\"}\n{\"a\":7,\"b\":\"w\"}\n"
    );
    check_dead_letters(
        &p.read_str("dead.jsonl"),
        "s",
        &p.s("in.csv"),
        &[
            (at[3].0, at[3].1, "s", format!("\"raw\":{}", js("3"))),
            (at[4].0, at[4].1, "s", format!("\"raw\":{}", js("4,5,6"))),
        ],
    );
}

#[test]
fn csv_bad_rows_carry_their_line_offset_and_raw_text() {
    csv_bad_rows("\n");
}

#[test]
fn csv_with_crlf_line_ends_reports_the_same_lines_and_offsets() {
    csv_bad_rows("\r\n");
}

/// A large CSV output (past the sink's internal writer being renewed every MB) has one
/// header and every record once, in order.
#[test]
fn large_csv_output_is_whole_and_in_order() {
    let p = Proj::new();
    p.write(
        "p.toml",
        r#"[checkpoint]
every = "off"
[sources.g]
type = "generate"
count = 60000
seed = 5
[sinks.o]
type = "file"
inputs = ["g"]
path = "o.csv"
"#,
    );
    p.weir(&["run", "p.toml"]).expect_code(0);
    let text = p.read_str("o.csv");
    assert!(text.len() > 3 << 20, "output should pass the 1 MB renewals");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 60001);
    assert_eq!(lines[0], "seq,ts,user,method,path,status,bytes,latency_ms");
    for (i, l) in lines[1..].iter().enumerate() {
        assert!(l.starts_with(&format!("{i},")), "line {} is {l}", i + 2);
        assert_eq!(l.split(',').count(), 8, "line {}: {l}", i + 2);
    }
}

// Numbers keep their input text (as jq 1.7): while a number passes through unchanged it prints
// as it was read; once computed on it prints canonically.

/// JSON numbers whose text printing would not give back, each line read by the scanner (flat)
/// or the general parser (nested), by `weir do '.'` and by a pipeline whose filter runs in the
/// parse workers and whose map reads only `.x` (projection).
const KEPT_JSON: &str = concat!(
    "{\"x\":1.0,\"n\":[1e3,{\"y\":-0}]}\n",
    "{\"x\":1.50e+2}\n",
    "{\"x\":123456789012345678901234567890}\n",
    "{\"x\":-0}\n",
    "{\"x\":415.50,\"s\":\"a\\\"b\"}\n",
    "{\"x\":2.5}\n",
    "{\"x\":1e3}\n",
);

#[test]
fn json_numbers_pass_through_with_their_text_and_print_canonically_once_computed() {
    let p = Proj::new();
    p.write("in.jsonl", KEPT_JSON);
    let o = p.weir(&["do", ".", "in.jsonl"]);
    o.expect_code(0);
    assert_eq!(o.stdout_str(), KEPT_JSON);
    // Every text of a number reads it: tostring, tojson, interpolation, @csv; arithmetic does not.
    let o = p.weir(&[
        "do",
        "{x, c: (.x + 0), s: (.x | tostring), j: ([.x] | tojson), i: \"<\\(.x)>\", v: ([.x] | @csv)}",
        "in.jsonl",
    ]);
    o.expect_code(0);
    let want = [
        r#"{"x":1.0,"c":1,"s":"1.0","j":"[1.0]","i":"<1.0>","v":"1.0"}"#,
        r#"{"x":1.50e+2,"c":150,"s":"1.50e+2","j":"[1.50e+2]","i":"<1.50e+2>","v":"1.50e+2"}"#,
        r#"{"x":123456789012345678901234567890,"c":123456789012345680000000000000,"s":"123456789012345678901234567890","j":"[123456789012345678901234567890]","i":"<123456789012345678901234567890>","v":"123456789012345678901234567890"}"#,
        r#"{"x":-0,"c":0,"s":"-0","j":"[-0]","i":"<-0>","v":"-0"}"#,
        r#"{"x":415.50,"c":415.5,"s":"415.50","j":"[415.50]","i":"<415.50>","v":"415.50"}"#,
        r#"{"x":2.5,"c":2.5,"s":"2.5","j":"[2.5]","i":"<2.5>","v":"2.5"}"#,
        r#"{"x":1e3,"c":1000,"s":"1e3","j":"[1e3]","i":"<1e3>","v":"1e3"}"#,
    ];
    assert_eq!(lines(&o.stdout_str()), want);

    let p = run_simple(
        r#"name = "kept"
[sources.s]
type = "file"
path = "in.jsonl"
[transforms.f]
type = "filter"
inputs = ["s"]
expr = ".x >= 0"
[transforms.m]
type = "map"
inputs = ["f"]
expr = "{x}"
[sinks.o]
type = "file"
inputs = ["m"]
path = "out.jsonl"
[sinks.all]
type = "file"
inputs = ["s"]
path = "all.jsonl"
"#,
        "in.jsonl",
        KEPT_JSON.as_bytes(),
    );
    assert_eq!(p.read_str("all.jsonl"), KEPT_JSON);
    // `-0 >= 0` holds, as in jq.
    let want: Vec<String> = KEPT_JSON
        .lines()
        .map(|l| {
            let x = &l[5..l.find([',', '}']).unwrap()];
            format!("{{\"x\":{x}}}")
        })
        .collect();
    assert_eq!(lines(&p.read_str("out.jsonl")), want);
}

/// CSV `415.50` comes out `415.50` (issue 17), in JSON lines and back in CSV and TSV, byte for
/// byte; a sum over them is computed.
#[test]
fn csv_numbers_keep_their_text_into_jsonl_csv_and_tsv() {
    let csv = "item,price,qty\na,415.50,1\nb,12,-0\nc,1e3,2.0\nd,007,1.50\n";
    let p = Proj::new();
    p.write("in.csv", csv);
    let o = p.weir(&["do", "--from", "csv", ".", "in.csv"]);
    o.expect_code(0);
    assert_eq!(
        lines(&o.stdout_str()),
        [
            r#"{"item":"a","price":415.50,"qty":1}"#,
            r#"{"item":"b","price":12,"qty":-0}"#,
            r#"{"item":"c","price":1e3,"qty":2.0}"#,
            r#"{"item":"d","price":"007","qty":1.50}"#,
        ]
    );
    let o = p.weir(&["do", "--from", "csv", "--to", "csv", ".", "in.csv"]);
    o.expect_code(0);
    assert_eq!(o.stdout_str(), csv);
    let o = p.weir(&["do", "--from", "csv", "--to", "tsv", ".", "in.csv"]);
    o.expect_code(0);
    assert_eq!(o.stdout_str(), csv.replace(',', "\t"));
    let o = p.weir(&[
        "do",
        "--from",
        "csv",
        "--by",
        "null",
        "--agg",
        "t=sum(.qty)",
        "--agg",
        "f=first(.price)",
        "in.csv",
    ]);
    o.expect_code(0);
    assert_eq!(o.stdout_str(), "{\"key\":null,\"t\":4.5,\"f\":415.50}\n");
}

/// Group keys compare as numbers, as jq 1.7's `group_by` does: `1.0`, `1` and `1.00` are one
/// group, named by its first record's text; min, max, first and last keep the text of the value
/// they pick.
#[test]
fn group_keys_equal_as_numbers_are_one_group_named_by_the_first_text() {
    let p = Proj::new();
    p.write(
        "g.jsonl",
        concat!(
            "{\"k\":1.0,\"v\":2.50}\n",
            "{\"k\":1,\"v\":1}\n",
            "{\"k\":\"1\",\"v\":3}\n",
            "{\"k\":2.50,\"v\":1.0}\n",
            "{\"k\":1.00,\"v\":0.5e1}\n",
            "{\"k\":2.5,\"v\":-0}\n",
        ),
    );
    let o = p.weir(&[
        "do",
        "--by",
        ".k",
        "--agg",
        "n=count",
        "--agg",
        "lo=min(.v)",
        "--agg",
        "hi=max(.v)",
        "--agg",
        "f=first(.v)",
        "--agg",
        "l=last(.v)",
        "--agg",
        "s=sum(.v)",
        "g.jsonl",
    ]);
    o.expect_code(0);
    assert_eq!(
        lines(&o.stdout_str()),
        [
            r#"{"key":1.0,"n":3,"lo":1,"hi":0.5e1,"f":2.50,"l":0.5e1,"s":8.5}"#,
            r#"{"key":2.50,"n":2,"lo":-0,"hi":1.0,"f":1.0,"l":-0,"s":1}"#,
            r#"{"key":"1","n":1,"lo":3,"hi":3,"f":3,"l":3,"s":3}"#,
        ]
    );
}

/// Keyed state keeps the text through checkpoints: a run that dies (as abruptly as kill -9) just
/// after its second checkpoint and is resumed gives the output of an uninterrupted run, which is
/// the groups computed here (keys and values with their first text).
#[cfg(feature = "failpoints")]
#[test]
fn number_text_in_keyed_state_survives_a_crash_and_resume() {
    // Each group's first text is one that printing would not give back.
    const PRICES: [&str; 10] = [
        "415.50", "1.0", "2.50", "1e3", "-0", "0.10", "1", "1000", "2.5", "0",
    ];
    const QTY: [&str; 4] = ["1.50", "2.0", "-0", "3"];
    let mut input = String::new();
    for i in 0..20_000usize {
        let p = PRICES[if i < 10 { i } else { (i * 7 + i / 10) % 10 }];
        let q = QTY[(i / 3) % 4];
        input.push_str(&format!("{{\"i\":{i},\"price\":{p},\"q\":{q}}}\n"));
    }
    // Groups by value (-0 is 0), each with its first record's price and q, count, min and max.
    type Group = (f64, String, u64, String, f64, String, f64, String);
    let mut groups: Vec<Group> = Vec::new();
    for l in input.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let p = &l[l.find("\"price\":").unwrap() + 8..l.find(",\"q\"").unwrap()];
        let q = &l[l.find("\"q\":").unwrap() + 4..l.len() - 1];
        let (pv, qv) = (v["price"].as_f64().unwrap() + 0.0, v["q"].as_f64().unwrap());
        match groups.iter_mut().find(|g| g.0 == pv) {
            Some(g) => {
                g.2 += 1;
                if qv < g.4 {
                    (g.4, g.5) = (qv, q.to_string());
                }
                if qv > g.6 {
                    (g.6, g.7) = (qv, q.to_string());
                }
            }
            None => groups.push((pv, p.into(), 1, q.into(), qv, q.into(), qv, q.into())),
        }
    }
    groups.sort_by(|a, b| a.0.total_cmp(&b.0));
    let want: Vec<String> = groups
        .iter()
        .map(|g| {
            format!(
                "{{\"key\":{},\"n\":{},\"first\":{},\"lo\":{},\"hi\":{}}}",
                g.1, g.2, g.3, g.5, g.7
            )
        })
        .collect();
    assert_eq!(want.len(), 6);
    assert!(want[0].starts_with("{\"key\":-0,") && want[5].starts_with("{\"key\":1e3,"));
    let pipeline = r#"name = "kept"
[checkpoint]
every_records = 500
[sources.s]
type = "file"
path = "in.jsonl"
[transforms.by_price]
type = "aggregate"
inputs = ["s"]
key = ".price"
emit = "final"
aggs = { n = "count", first = "first(.q)", lo = "min(.q)", hi = "max(.q)" }
[sinks.o]
type = "file"
inputs = ["by_price"]
path = "out.jsonl"
"#;
    let reference = Proj::new();
    reference.write("p.toml", pipeline);
    reference.write("in.jsonl", &input);
    expect_exit(
        &run_weir(reference.root(), &["run", "-q", "p.toml"], None),
        Some(0),
    );
    assert_eq!(lines(&reference.read_str("out.jsonl")), want);

    let p = Proj::new();
    p.write("p.toml", pipeline);
    p.write("in.jsonl", &input);
    let o = run_weir(
        p.root(),
        &["run", "-q", "p.toml"],
        Some(&format!("{LOCKSTEP};checkpoint-after-write=1*off->return")),
    );
    assert_eq!(
        o.status.code(),
        None,
        "no crash: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The checkpoint it died after holds the keys and values with their text.
    let ckpts = p.ckpts(".weir/kept");
    let newest = std::fs::read(ckpts.last().expect("a checkpoint before the crash")).unwrap();
    let has = |t: &str| newest.windows(t.len()).any(|w| w == t.as_bytes());
    assert!(
        has("415.50") && has("1e3") && has("1.50"),
        "state without its text"
    );
    expect_exit(
        &run_weir(p.root(), &["resume", "-q", "p.toml"], None),
        Some(0),
    );
    assert_eq!(p.read("out.jsonl"), reference.read("out.jsonl"));
}
