//! Tests of the evaluation limits, the refusals at compile time, the prelude's builtins, and a
//! proptest that feeds the compiler and the evaluator random programs and records: whatever
//! they are, compiling and evaluating returns (no panic, no hang, no stack overflow).

use super::*;
use proptest::prelude::*;

fn v(s: &str) -> Value {
    Value::from_json(s.as_bytes()).unwrap_or_else(|e| panic!("bad JSON {s}: {e}"))
}

fn eval(src: &str, input: &Value) -> Result<Vec<Value>, String> {
    let e = Expr::compile(src).map_err(|e| format!("COMPILE: {}", e.message))?;
    let mut out = Vec::new();
    e.eval(input, &mut out).map(|()| out).map_err(|e| e.message)
}

/// Runs `f` on a thread with the 2 MiB stack operator threads have.
fn on_operator_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

fn big_array(n: usize) -> Value {
    let mut m = crate::value::Map::new();
    m.insert(
        Str::new("v"),
        Value::Array((0..n as i64).map(Value::Int).collect()),
    );
    m.insert(Str::new("b"), Value::str("x"));
    Value::Object(m)
}

#[test]
fn runaway_expressions_are_errors_not_crashes() {
    let cases: &[(&str, &str)] = &[
        ("{r: [range(.b)]}", "Range bounds must be numeric"),
        ("[range(null)]", "Range bounds must be numeric"),
        ("[range(0; .b)]", "Range bounds must be numeric"),
        (
            "reduce .v[] as $x (null; [., $x])",
            "nested deeper than 256",
        ),
        (
            "reduce .v[] as $x (null; {a: ., b: $x})",
            "nested deeper than 256",
        ),
        (
            "try (reduce .v[] as $x (null; [., $x])) catch \"caught\"",
            "nested deeper than 256",
        ),
        (
            "(reduce .v[] as $x (null; [., $x]))?",
            "nested deeper than 256",
        ),
        // Only a number leaves jaq: the nesting is caught inside the loop (without the probe,
        // jaq would build 100,000 levels and overflow the stack dropping them).
        (
            "reduce range(100000) as $x (null; [., $x]) | length",
            "nested deeper than 256",
        ),
        (
            "[foreach range(100000) as $x (null; {a: .}; 0)] | length",
            "nested deeper than 256",
        ),
        ("last(range(1e18))", "steps on one record"),
        (
            "[limit(2; repeat(1))] | length, last(repeat(1))",
            "(evaluation limit)",
        ),
        ("def f: [f]; f", "recursion too deep"),
        // A tail call loops in constant stack until the step budget ends it.
        ("def f: f; f", "steps on one record"),
        ("[until(false; .)]", "steps on one record"),
        ("[.v[] | recurse(. + 1)] | length", "(evaluation limit)"),
        (
            "reduce range(40) as $i (\"x\"; . + .) | length",
            "string longer than",
        ),
        (
            "reduce range(100) as $i (0; [., .]) | length",
            "more than 4000000 values",
        ),
        // A string that doubles inside a container, through weir's own `tostring` (found by
        // the proptest below: it grew until the allocator failed), jaq's `@json`, `+`, or as a
        // key.
        ("def f: [tostring] | f; 41 | f", "string longer than"),
        ("def f: [@json] | f; 41 | f", "string longer than"),
        (
            "def f: {k: (.k + .k)} | f; {k: \"x\"} | f",
            "string longer than",
        ),
        ("def f: {(tojson): 1} | f; 1 | f", "string longer than"),
        // A recursion whose pending generators pile up on jaq's heap (found by the proptest:
        // 5 GB within the step budget).
        (
            "def f: fromstream(87 | tostream) | f; f",
            "bytes of memory for one record",
        ),
        // jaq repeats a string any number of times (found by the proptest: the process
        // aborted on an allocation of 6.9e18 bytes); weir's limit applies inside jaq too.
        (
            "reduce 1 as $x (.; .b * 100000000000)",
            "repeat string result too long (100000000000 copies)",
        ),
        (
            "fromstream((.b * 3461393385087501563) | tostream)",
            "repeat string result too long",
        ),
        (
            "reduce 1 as $x (.; .b *= 100000000000000000000000)",
            "repeat string result too long (9223372036854775807 copies)",
        ),
        // Shared strings multiply when weir copies them out of jaq.
        (
            "reduce range(10) as $i (\"x\" * 1000000; [., .])",
            "bytes of text",
        ),
    ];
    for (src, want) in cases {
        let s = src.to_string();
        let r = on_operator_stack(move || eval(&s, &big_array(2000)));
        match r {
            Err(m) => assert!(m.contains(want), "{src}: {m}"),
            Ok(out) if want.is_empty() => drop(out),
            Ok(out) => panic!("{src}: expected an error with {want:?}, got {out:?}"),
        }
    }
}

#[test]
fn limits_leave_legitimate_work_alone() {
    let rec = big_array(100_000);
    let ok: &[(&str, &str)] = &[
        ("reduce .v[] as $x (0; . + $x)", "4999950000"),
        ("[.v[] | select(. % 10000 == 0)] | length", "10"),
        ("reduce .v[] as $x ([]; . + [$x]) | length", "100000"),
        ("[range(0; 10; 3)]", "[0,3,6,9]"),
        ("[range(5; 0; -2)]", "[5,3,1]"),
        ("[range(0; 10; 0)]", "[]"),
        // jaq takes kilobytes of stack per level in a debug build: tens of levels here,
        // hundreds in a release build.
        (
            "def f(n): if n == 0 then 0 else 1 + f(n - 1) end; f(20)",
            "20",
        ),
        ("[limit(3; repeat(1))]", "[1,1,1]"),
        // Tail calls stay tail calls: long loops run in constant stack.
        ("[limit(100000; repeat(1))] | length", "100000"),
        ("1 | until(. >= 200000; . + 1)", "200000"),
        ("[0 | while(. < 100000; . + 1)] | length", "100000"),
        (
            "def loop: if . < 100000 then . + 1 | loop else . end; 0 | loop",
            "100000",
        ),
        (
            "[0 | recurse(if . < 50000 then . + 1 else empty end)] | length",
            "50001",
        ),
        ("[1 | until(. > 100; . * 2)]", "[128]"),
        (
            "reduce range(200) as $i (null; [.]) | [paths] | length",
            "200",
        ),
    ];
    for (src, want) in ok {
        let (s, r) = (src.to_string(), rec.clone());
        let got = on_operator_stack(move || eval(&s, &r));
        assert_eq!(got, Ok(vec![v(want)]), "{src}");
    }
    // The budget is per record: the next record starts afresh.
    let e = Expr::compile("last(range(999000))").unwrap();
    for _ in 0..2 {
        let mut out = Vec::new();
        e.eval(&Value::Null, &mut out).unwrap();
        assert_eq!(out, vec![v("998999")]);
    }
}

/// Values of the deepest nesting input may have go through jaq and back on an operator
/// thread's stack.
#[test]
fn deepest_input_goes_through_jaq() {
    let text = format!("{{\"a\":{}1{}}}", "[".repeat(250), "]".repeat(250));
    let got = on_operator_stack(move || {
        let rec = v(&text);
        let n = eval("[paths] | length", &rec).unwrap();
        let same = eval(". as $x | $x | tojson | fromjson", &rec).unwrap();
        (n, same == vec![rec])
    });
    assert_eq!(got, (vec![v("251")], true));
}

#[test]
fn refused_at_compile_time() {
    for src in [
        "now",
        "{t: now}",
        "halt",
        "halt_error",
        "halt_error(1)",
        "[inputs]",
        "input",
        "test(\"(?=a)\")",
        "test(\"(?<!a)b\")",
        "test(\"(a)\\\\1\")",
        "match(\"(a)\\\\1\"; \"g\")",
        "sub(\"(?=x)\"; \"y\")",
        "gsub(\"[a\"; \"y\")",
        "split(\"(?=,)\"; \"g\")",
        "test(\"a\"; \"q\")",
    ] {
        assert!(Expr::compile(src).is_err(), "{src} compiled");
    }
    let e = Expr::compile("1 + now").unwrap_err();
    assert!(e.message.contains("wall clock") && e.offset == 4, "{e}");
    // A user's own definition, a computed regex and ordinary regexes are fine.
    for src in [
        "def now: 1; now",
        "test(.re)",
        "test(\"a+\"; \"gix\")",
        "sub(\"(?<x>a)\"; \"\\(.x)\")",
    ] {
        assert!(Expr::compile(src).is_ok(), "{src}");
    }
}

#[test]
fn prelude_builtins_follow_jq() {
    // Expected values checked with jq 1.6 (`/usr/bin/jq`).
    let cases: &[(&str, &str, &str)] = &[
        (
            "@csv",
            r#"[1,"a\"b",null,true,1.5]"#,
            r#""1,\"a\"\"b\",,true,1.5""#,
        ),
        (
            "@tsv",
            r#"[1,"a\tb\\",null,true]"#,
            r#""1\ta\\tb\\\\\t\ttrue""#,
        ),
        ("@base32", r#""ab""#, r#""MFRA====""#),
        ("@base32d", r#""MFRA====""#, r#""ab""#),
        (
            "@base32 | @base32d",
            r#""héllo, wörld""#,
            r#""héllo, wörld""#,
        ),
        (
            "[leaf_paths]",
            r#"{"a":[1,{"b":2}]}"#,
            r#"[["a",0],["a",1,"b"]]"#,
        ),
        (
            "[tostream]",
            r#"[1,[2]]"#,
            r#"[[[0],1],[[1,0],2],[[1,0]],[[1]]]"#,
        ),
        (
            "fromstream(tostream)",
            r#"{"a":[1,{"b":2}],"c":"x"}"#,
            r#"{"a":[1,{"b":2}],"c":"x"}"#,
        ),
        ("[.[] | IN(2, 3)]", r#"[1,2,3]"#, r#"[false,true,true]"#),
        ("IN(.[]; 5, 1)", r#"[1,2]"#, r#"true"#),
        ("$__loc__", r#"null"#, r#"{"file":"<top-level>","line":1}"#),
        ("index(1)", r#"null"#, r#"null"#),
        ("rindex(1)", r#"null"#, r#"null"#),
        ("indices(1)", r#"null"#, r#"null"#),
        ("bsearch(1)", r#"null"#, r#"-1"#),
        ("[combinations]", r#"null"#, r#"[[]]"#),
        ("[combinations]", r#"[[1,2],[3]]"#, r#"[[1,3],[2,3]]"#),
        ("transpose", r#"[[1,2],[3]]"#, r#"[[1,3],[2,null]]"#),
        ("gamma", r#"5"#, r#"3.1780538303479458"#),
        (
            "setpath([\"a\",2,\"b\"]; 1)",
            r#"null"#,
            r#"{"a":[null,null,{"b":1}]}"#,
        ),
        (
            "implode",
            r#"[-1, 55296, 1114112, 65, 233.7]"#,
            r#""\ufffd\ufffd\ufffdAé""#,
        ),
        ("1 as $x | implode", r#"[-1, 65]"#, r#""\ufffdA""#),
        (
            "[1, 2] as $x | del(.[0, 2])",
            r#"[0, 1, 2, 3]"#,
            r#"[1, 3]"#,
        ),
        (
            "1 as $x | delpaths([[\"a\"]]) | keys_unsorted",
            r#"{"a":1,"b":2,"c":3}"#,
            r#"["b","c"]"#,
        ),
        (
            "1 as $x | [.[] | todate]",
            r#"[1.5, -1.5]"#,
            r#"["1970-01-01T00:00:01Z","1969-12-31T23:59:59Z"]"#,
        ),
        ("gmtime | todate", r#"0"#, r#""1970-01-01T00:00:00Z""#),
        ("[nth(1; empty), last(empty)]", r#"null"#, r#"[null,null]"#),
        (
            "[nan < 1, 1 < nan, nan == nan, nan < nan, -0.0 == 0]",
            r#"null"#,
            r#"[true,false,false,true,true]"#,
        ),
        (
            "[nan, 1, null] | sort | map(type)",
            r#"null"#,
            r#"["null","number","number"]"#,
        ),
        ("[.[1.7], .[-1.7]]", r#"[0,1,2,3,4]"#, r#"[1,4]"#),
        // `*` inside jaq (a `reduce` runs there) goes through `__weir_mul`: jq's order of
        // outputs, jq's results.
        (
            "reduce 1 as $x (.; [(1,2) * (3,4)])",
            r#"null"#,
            r#"[3,6,4,8]"#,
        ),
        (
            "reduce 1 as $x (.; [.a * 2, 2 * .a, .a * 0, .o * {c: 3}, .n * 1.5])",
            r#"{"a":"ab","o":{"b":1},"n":4}"#,
            r#"["abab","abab",null,{"b":1,"c":3},6]"#,
        ),
        (
            "reduce 1 as $x (.; [.n *= (2, 3)])",
            r#"{"n":4}"#,
            r#"[{"n":8},{"n":12}]"#,
        ),
    ];
    for (src, input, want) in cases {
        assert_eq!(eval(src, &v(input)), Ok(vec![v(want)]), "{src} on {input}");
    }
    assert!(eval("@csv", &v("{}"))
        .unwrap_err()
        .contains("cannot be csv-formatted"));
    assert!(eval("@csv", &v("[[1]]"))
        .unwrap_err()
        .contains("is not valid in a csv row"));
    assert!(eval("transpose", &v(r#"[{"a":1}]"#)).is_err());
}

/// Random programs built from jq's grammar, over random records: compiling and evaluating
/// always returns, within the limits.
fn arb_program() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(".".to_string()),
        Just(".a".to_string()),
        Just(".[]?".to_string()),
        Just("..".to_string()),
        Just("$__loc__".to_string()),
        "[a-c]{1,2}".prop_map(|k| format!(".{k}")),
        (-3i64..300).prop_map(|n| n.to_string()),
        Just("nan".to_string()),
        Just("null".to_string()),
        "[a-z\\[\\]()*+?.\\\\]{0,4}".prop_map(|s| format!("{s:?}")),
        prop_oneof![
            Just("length"),
            Just("keys"),
            Just("tostring"),
            Just("tojson"),
            Just("fromjson"),
            Just("sort"),
            Just("add"),
            Just("tostream"),
            Just("@csv"),
            Just("@tsv"),
            Just("@base32d"),
            Just("implode"),
            Just("explode"),
            Just("todate"),
            Just("gamma"),
            Just("leaf_paths"),
            Just("paths"),
            Just("transpose"),
            Just("combinations"),
            Just("ascii"),
            Just("input_line_number"),
            Just("env"),
            Just("empty"),
            Just("error"),
        ]
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} | {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} * {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} < {b})")),
            inner.clone().prop_map(|a| format!("[{a}]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{{a: {a}, b: {b}}}")),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| format!("reduce {a} as $x ({b}; [., $x])")),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| format!("[foreach {a} as $x ({b}; . + $x)]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[range({a}; {b})]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[limit(5; {a})] | {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("try {a} catch {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("if {a} then {b} else . end")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("def f: {a} | f; {b} | f")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[recurse({a})] | {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} as $v | {b} | test($v)")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a} | match({b}; \"g\")]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("setpath([{a}]; {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} |= {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[splits({a})] | {b}")),
            inner
                .clone()
                .prop_map(|a| format!("fromstream({a} | tostream)")),
            inner
                .clone()
                .prop_map(|a| format!("[{a}] | sort_by(.) | group_by(.)")),
            inner.prop_map(|a| format!("[{a}] | implode")),
        ]
    })
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::float),
        "\\PC{0,6}".prop_map(|s| Value::str(&s)),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-c]{1,2}", inner), 0..5).prop_map(|kv| {
                let mut m = crate::value::Map::new();
                for (k, v) in kv {
                    m.insert(Str::from(k), v);
                }
                Value::Object(m)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn prop_random_programs_never_panic(src in arb_program(), rec in arb_value()) {
        let r = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                if let Ok(e) = Expr::compile(&src) {
                    let mut out = Vec::new();
                    let _ = e.eval(&rec, &mut out);
                    let _ = e.eval_first(&rec);
                }
            })
            .unwrap()
            .join();
        prop_assert!(r.is_ok());
    }
}
