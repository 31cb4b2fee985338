//! Tests for the expression engine. The main table compares the native evaluator with
//! jaq's interpreter on every (expression, input) pair, except where jaq is known to deviate
//! from jq; those pairs are checked against jq's answer instead (`JQ_EXPECT`, verified with
//! the `jq` binary).
//!
//! A long file (about 1,470 lines), most of it the table of (expression, input) pairs.

use super::*;
use proptest::prelude::*;

fn v(s: &str) -> Value {
    Value::from_json(s.as_bytes()).unwrap_or_else(|e| panic!("bad JSON {s}: {e}"))
}

fn run(e: &Expr, input: &Value) -> Result<Vec<Value>, EvalError> {
    let mut out = Vec::new();
    e.eval(input, &mut out).map(|()| out)
}

fn show(r: &Result<Vec<Value>, EvalError>) -> String {
    match r {
        Ok(vs) => vs
            .iter()
            .map(|v| v.to_json_string())
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => format!("ERROR: {}", e.message),
    }
}

/// Same outputs (jq equality, so 1 == 1.0), or both errors.
/// JSON text with object keys sorted: how a value prints, its field order aside.
fn sorted_text(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let fields: Vec<String> = m
                .sorted()
                .into_iter()
                .map(|(k, x)| {
                    format!(
                        "{}:{}",
                        Value::Str(k.clone()).to_json_string(),
                        sorted_text(x)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(sorted_text).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_json_string(),
    }
}

/// Equal results that also print alike (a number's kept input text included), field order
/// aside.
fn same(a: &Result<Vec<Value>, EvalError>, b: &Result<Vec<Value>, EvalError>) -> bool {
    let text = |v: &[Value]| v.iter().map(sorted_text).collect::<Vec<_>>();
    match (a, b) {
        (Ok(x), Ok(y)) => x == y && text(x) == text(y),
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

/// Parses an expected result written as space-separated JSON values or `ERROR: message`.
fn expected(s: &str) -> Result<Vec<Value>, String> {
    if let Some(m) = s.strip_prefix("ERROR: ") {
        return Err(m.to_string());
    }
    let mut out = Vec::new();
    let de = serde_json::Deserializer::from_str(s).into_iter::<Value>();
    for x in de {
        out.push(x.unwrap_or_else(|e| panic!("bad expectation {s}: {e}")));
    }
    Ok(out)
}

fn check_expected(src: &str, input: &Value, want: &str) {
    let e = Expr::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let got = run(&e, input);
    match (expected(want), &got) {
        (Ok(w), Ok(g)) => assert!(
            &w == g,
            "{src} on {}: want {want}, got {}",
            input.to_json_string(),
            show(&got)
        ),
        (Err(msg), Err(g)) => assert_eq!(
            msg,
            g.message,
            "{src} on {}: error message",
            input.to_json_string()
        ),
        _ => panic!(
            "{src} on {}: want {want}, got {}",
            input.to_json_string(),
            show(&got)
        ),
    }
}

const INPUTS: &[&str] = &[
    r#"{"status":503,"path":"/API/Users","user":"ann","bytes":2048,"ms":12.5,"tags":["a","b"],"geo":{"country":"FR","city":"Paris"},"ok":true,"n":null,"s":"héllo wörld 🎉","k":"user","v":7}"#,
    r#"{"status":200,"path":"/","user":"bob","bytes":0,"ms":0.25,"tags":[],"geo":null,"ok":false}"#,
    r#"{}"#,
    r#"null"#,
    r#"[1,2.5,-3]"#,
    r#""str""#,
    r#"42"#,
    r#"[{"a":1,"b":"x"},{"a":0,"b":"y"},{"a":1,"b":"z"}]"#,
];

/// Expressions made only of natively supported forms.
const NATIVE: &[&str] = &[
    r#"."#,
    r#".status"#,
    r#".geo.city"#,
    r#".geo.missing.deeper"#,
    r#".a?"#,
    r#".a.b?"#,
    r#".["path"]"#,
    r#".["a"]["b"]"#,
    r#".tags[0]"#,
    r#".tags[-1]"#,
    r#".tags[5]"#,
    r#".[0]"#,
    r#".[-1]"#,
    r#".[1]"#,
    r#".[]"#,
    r#".[]?"#,
    r#".tags[]"#,
    r#"[.[]?.a?]"#,
    r#".a[1:]?"#,
    r#"1"#,
    r#"-1"#,
    r#"1.5"#,
    r#"1e3"#,
    r#""lit""#,
    r#""esc\"aped\n\u00e9""#,
    r#"true"#,
    r#"false"#,
    r#"null"#,
    r#"[]"#,
    r#"{}"#,
    r#"[1, "a", null]"#,
    r#"{"a": [1, {"b": 2}]}"#,
    r#""\(.user)-\(.status)""#,
    r#""v=\(.)""#,
    r#""\(.missing) \(1+2) \([1]) \("s") \(.s)""#,
    r#""\(1,2)-\(3,4)""#,
    r#"@text "t=\(.status)""#,
    r#"@json "j=\(.user)""#,
    r#".status >= 400"#,
    r#".status == 503"#,
    r#".status != 200"#,
    r#".path < "/b""#,
    r#".ms <= 12.5"#,
    r#".bytes > 1000"#,
    r#".geo == null"#,
    r#". == {}"#,
    r#"1 < .status"#,
    r#".status == 503.0"#,
    r#".tags == ["a","b"]"#,
    r#".status < .bytes"#,
    r#"[(1,2) < (2,1)]"#,
    r#".status + 1"#,
    r#".status - 3"#,
    r#".status * 2"#,
    r#".status / 2"#,
    r#".status / 7"#,
    r#".status % 7"#,
    r#"-.status % 7"#,
    r#".bytes / 1024"#,
    r#".ms * 2"#,
    r#".ms + .status"#,
    r#".ms % 2"#,
    r#".user + "!""#,
    r#".tags + ["c"]"#,
    r#".geo + {"zip": 1}"#,
    r#".geo * {"x": {"y": 1}}"#,
    r#"null + .status"#,
    r#".status + null"#,
    r#".tags - ["a"]"#,
    r#".user * 2"#,
    r#".path / "/""#,
    r#".user - 1"#,
    r#"{} - 1"#,
    r#".bytes / 0"#,
    r#".bytes % 0"#,
    r#"[(1,2) + (10,20)]"#,
    r#"9007199254740993 + 1"#,
    r#"9223372036854775807 + 1"#,
    r#"-(.status)"#,
    r#"-.ms"#,
    r#"-.user"#,
    r#".status and .ok"#,
    r#".ok or false"#,
    r#".n and true"#,
    r#".missing or .ok"#,
    r#"[(true,false) and (true,false)]"#,
    r#"[(false,true) or (true,false)]"#,
    r#"false and error("x")"#,
    r#"true or error("x")"#,
    r#".ok | not"#,
    r#".missing // "default""#,
    r#".ok // "x""#,
    r#".tags[] // "none""#,
    r#"(.a, .b) // 3"#,
    r#"[(1,null,2) // 3]"#,
    r#"[(false,null) // (3,4)]"#,
    r#"empty // 1"#,
    r#".status, .path"#,
    r#"[.status, .path]"#,
    r#"[.[]?]"#,
    r#"if .status >= 500 then "err" elif .status >= 400 then "warn" else "ok" end"#,
    r#"if .ok then "yes" end"#,
    r#"if .n then 1 else 2 end"#,
    r#"[if (true, false) then 1 else 2 end]"#,
    r#"if (.[]? | numbers) > 1 then "big" else "small" end"#,
    r#"try .a.b catch "caught""#,
    r#"try error("x") catch ."#,
    r#"try error({"a":1}) catch .a"#,
    r#"try error(null) catch ."#,
    r#"try error catch ."#,
    r#"[try (1, error("x"), 3)]"#,
    r#"[.[]? | try if . == 2.5 then error("x") else . end catch "c"]"#,
    r#"(try (1,2)) | if . == 2 then error("boom") else . end"#,
    r#"try (.[] | error) catch "c""#,
    r#"[.[]? | (try error("\(.)") catch .)]"#,
    r#"(.user | .x)?"#,
    r#"[.[]? | .a?]"#,
    r#"{user: .user, path: .path, status: .status}"#,
    r#"{user, status}"#,
    r#"{"c": 1, (.user): .status}"#,
    r#"{(.k): .v}"#,
    r#"{a: (1,2), b: (3,4)}"#,
    r#"{a: 1, a: 2}"#,
    r#"{"a b": 1, "if": 2}"#,
    r#"{(.tags[]): 1}"#,
    r#"{"\(.user)": .status}"#,
    r#"{a: .missing.x}"#,
    r#"[{(.[]? | tostring): 1}]"#,
    r#"select(.status > 400) | .user"#,
    r#"select(.status > 400)"#,
    r#"select(.ok)"#,
    r#"[.[]? | select(type == "number") | . * 2]"#,
    r#"empty"#,
    r#"[empty]"#,
    r#"[.[]?, empty, 1]"#,
    r#"error("custom")"#,
    r#"error"#,
    r#"length"#,
    r#".user | length"#,
    r#".s | length"#,
    r#".tags | length"#,
    r#".geo | length"#,
    r#".ms | length"#,
    r#"-5 | length"#,
    r#"utf8bytelength"#,
    r#".s | utf8bytelength"#,
    r#"type"#,
    r#"[.[]? | type]"#,
    r#"keys"#,
    r#"keys_unsorted"#,
    r#"has("user")"#,
    r#"has("zzz")"#,
    r#".tags | has(0)"#,
    r#".tags | has(5)"#,
    r#"has(0)"#,
    r#"tostring"#,
    r#".status | tostring"#,
    r#".user | tostring"#,
    r#".ms | tostring"#,
    r#"[.[]? | tostring]"#,
    r#"tonumber"#,
    r#""12" | tonumber"#,
    r#""-1.5e2" | tonumber"#,
    r#""12a" | tonumber"#,
    r#".path | ascii_downcase"#,
    r#".path | ascii_upcase"#,
    r#".s | ascii_upcase"#,
    r#"ascii_downcase"#,
    r#".path | ltrimstr("/API")"#,
    r#".path | rtrimstr("Users")"#,
    r#".path | ltrimstr("zz")"#,
    r#".path | startswith("/API")"#,
    r#".path | endswith("Users")"#,
    r#"startswith("s")"#,
    r#".path | contains("API")"#,
    r#".s | contains("wö")"#,
    r#"contains("t")"#,
    r#".geo | contains({"country": "FR"})"#,
    r#".tags | contains(["a"])"#,
    r#".path | split("/")"#,
    r#".s | split("")"#,
    r#"split(",")"#,
    r#".tags | join(",")"#,
    r#".tags | join("-") | length"#,
    r#"join(",")"#,
    r#".ms | floor"#,
    r#".ms | ceil"#,
    r#".ms | round"#,
    r#".ms | fabs"#,
    r#"-3.5 | fabs"#,
    r#"-3.5 | round"#,
    r#".status | floor"#,
    r#".ms | sqrt"#,
    r#".bytes | sqrt"#,
    r#"floor"#,
    r#"abs"#,
    r#".path | test("api")"#,
    r#".path | test("api"; "i")"#,
    r#".path | test("^/API/[A-Z]")"#,
    r#".s | test("w.rld")"#,
    r#"test("s")"#,
    r#"tojson"#,
    r#".geo | tojson"#,
    r#".ms | tojson"#,
    r#"[.[]? | tojson]"#,
    r#""[1,{\"a\":2}]" | fromjson"#,
    r#"first(.tags[])"#,
    r#"first(empty)"#,
    r#"[first(1, error("e"))]"#,
    r#"try (first(error("e"))) catch "got""#,
    r#"first(.[]? | select(. == 2.5))"#,
    r#".tags | map(ascii_upcase)"#,
    r#"map(.a)"#,
    r#"map(. * 2)"#,
    r#"[.[]? | numbers] | add"#,
    r#".tags | add"#,
    r#"add"#,
    r#"[.[]?] | min"#,
    r#"[.[]?] | max"#,
    r#"min"#,
    r#"max"#,
    r#".tags | first"#,
    r#".tags | last"#,
    r#"first"#,
    r#"last"#,
    r#"[.[]?] | sort"#,
    r#"sort"#,
    r#"[.[]?] | unique"#,
    r#"to_entries"#,
    r#"with_entries(.value |= tostring)"#,
    r#".geo | to_entries | from_entries"#,
    r#"from_entries"#,
    r#".tags | reverse"#,
    r#"reverse"#,
    r#"[limit(2; .[]?)]"#,
    r#"[limit(0; .[]?)]"#,
    r#"any"#,
    r#"all"#,
    r#"[.[]?] | any(. == 2.5)"#,
    r#"any(.[]?; . == 2.5)"#,
    r#"all(.[]?; . != null)"#,
    r#"sort_by(.a)"#,
    r#"group_by(.a)"#,
    r#"min_by(.a)"#,
    r#"max_by(.a)"#,
    r#"unique_by(.a)"#,
    r#"sort_by(.a, .b)"#,
    r#"map(select(.a == 1) | .b)"#,
    r#"[.. | numbers]"#,
    r#"[..] | length"#,
    r#"[recurse]"#,
    r#"[.[]? | strings]"#,
    r#"[.[]? | objects | .a]"#,
    r#"values"#,
    r#"nulls"#,
    r#".a = 1"#,
    r#".geo.city = "Lyon""#,
    r#".status |= . + 1"#,
    r#".status += 10"#,
    r#".status -= 1"#,
    r#".status *= 2"#,
    r#".missing //= 5"#,
    r#".user |= ascii_upcase"#,
    r#".tags[0] = "z""#,
    r#".x.y = (1, 2)"#,
    r#".a |= empty"#,
    r#"del(.user)"#,
    r#"del(.user, .status)"#,
    r#"del(.geo.city)"#,
    r#"del(.tags[0])"#,
    r#"[1,2,3] | del(.[0], .[2])"#,
    r#"[.[]? | ltrimstr("s")]"#,
    r#".geo | .country + "/" + .city"#,
    r#".tags | .[1:]"#,
    r#".s | .[1:3]"#,
    r#".tags | .[:-1]"#,
    r#".[2:]"#,
    r#".[1:2.5]"#,
];

/// Expressions with forms that fall back to jaq (whole, or per subterm).
const MIXED: &[&str] = &[
    r#".status as $s | $s + 1"#,
    r#"reduce .[]? as $x (0; . + 1)"#,
    r#"def f: . + 1; .status | f"#,
    r#"[paths]"#,
    r#"$ENV | type"#,
    r#"@base64 "x\(1)""#,
    r#".tags | index("b")"#,
    r#"map(. as $x | $x)"#,
    r#"[.[]? | . as $x | [$x, 1]]"#,
    r#".user | @base64"#,
    r#"[range(3)]"#,
    r#"{a: (. as $x | 1)}"#,
    r#""\(. as $x | 2)""#,
];

/// (expression, index into INPUTS, jq's result) where jaq's interpreter deviates from jq:
/// `.[0]` of an object is an error in jq, `1 / 0` is an error, generators in binary
/// operators and string interpolations loop right-to-left, `ltrimstr`/`has`/`contains`/
/// `join`/`to_entries`/slices/assignment follow jq's rules on null and mixed types, ...
const JQ_EXPECT: &[(&str, usize, &str)] = &[
    (r#".[0]"#, 0, r#"ERROR: cannot index object with number"#),
    (r#".[0]"#, 1, r#"ERROR: cannot index object with number"#),
    (r#".[0]"#, 2, r#"ERROR: cannot index object with number"#),
    (r#".[-1]"#, 0, r#"ERROR: cannot index object with number"#),
    (r#".[-1]"#, 1, r#"ERROR: cannot index object with number"#),
    (r#".[-1]"#, 2, r#"ERROR: cannot index object with number"#),
    (r#".[1]"#, 0, r#"ERROR: cannot index object with number"#),
    (r#".[1]"#, 1, r#"ERROR: cannot index object with number"#),
    (r#".[1]"#, 2, r#"ERROR: cannot index object with number"#),
    (r#".a[1:]?"#, 0, r#"null"#),
    (r#".a[1:]?"#, 1, r#"null"#),
    (r#".a[1:]?"#, 2, r#"null"#),
    (r#".a[1:]?"#, 3, r#"null"#),
    (r#""\(1,2)-\(3,4)""#, 0, r#""1-3" "2-3" "1-4" "2-4""#),
    (r#""\(1,2)-\(3,4)""#, 1, r#""1-3" "2-3" "1-4" "2-4""#),
    (r#""\(1,2)-\(3,4)""#, 2, r#""1-3" "2-3" "1-4" "2-4""#),
    (r#""\(1,2)-\(3,4)""#, 3, r#""1-3" "2-3" "1-4" "2-4""#),
    (r#""\(1,2)-\(3,4)""#, 4, r#""1-3" "2-3" "1-4" "2-4""#),
    (r#""\(1,2)-\(3,4)""#, 5, r#""1-3" "2-3" "1-4" "2-4""#),
    (r#""\(1,2)-\(3,4)""#, 6, r#""1-3" "2-3" "1-4" "2-4""#),
    (r#""\(1,2)-\(3,4)""#, 7, r#""1-3" "2-3" "1-4" "2-4""#),
    (r#".ms % 2"#, 0, r#"0"#),
    (r#".ms % 2"#, 1, r#"0"#),
    (
        r#".bytes / 0"#,
        0,
        r#"ERROR: number (2048) and number (0) cannot be divided because the divisor is zero"#,
    ),
    (
        r#".bytes / 0"#,
        1,
        r#"ERROR: number (0) and number (0) cannot be divided because the divisor is zero"#,
    ),
    (r#"[(1,2) + (10,20)]"#, 0, r#"[11,12,21,22]"#),
    (r#"[(1,2) + (10,20)]"#, 1, r#"[11,12,21,22]"#),
    (r#"[(1,2) + (10,20)]"#, 2, r#"[11,12,21,22]"#),
    (r#"[(1,2) + (10,20)]"#, 3, r#"[11,12,21,22]"#),
    (r#"[(1,2) + (10,20)]"#, 4, r#"[11,12,21,22]"#),
    (r#"[(1,2) + (10,20)]"#, 5, r#"[11,12,21,22]"#),
    (r#"[(1,2) + (10,20)]"#, 6, r#"[11,12,21,22]"#),
    (r#"[(1,2) + (10,20)]"#, 7, r#"[11,12,21,22]"#),
    (
        r#"has(0)"#,
        0,
        r#"ERROR: cannot check whether object has a number key"#,
    ),
    (
        r#"has(0)"#,
        1,
        r#"ERROR: cannot check whether object has a number key"#,
    ),
    (
        r#"has(0)"#,
        2,
        r#"ERROR: cannot check whether object has a number key"#,
    ),
    (r#".path | ltrimstr("/API")"#, 2, r#"null"#),
    (r#".path | ltrimstr("/API")"#, 3, r#"null"#),
    (r#".path | rtrimstr("Users")"#, 2, r#"null"#),
    (r#".path | rtrimstr("Users")"#, 3, r#"null"#),
    (r#".path | ltrimstr("zz")"#, 2, r#"null"#),
    (r#".path | ltrimstr("zz")"#, 3, r#"null"#),
    (
        r#".path | contains("API")"#,
        2,
        r#"ERROR: null (null) and string ("API") cannot have their containment checked"#,
    ),
    (
        r#".path | contains("API")"#,
        3,
        r#"ERROR: null (null) and string ("API") cannot have their containment checked"#,
    ),
    (
        r#".s | contains("wö")"#,
        1,
        r#"ERROR: null (null) and string ("wö") cannot have their containment checked"#,
    ),
    (
        r#".s | contains("wö")"#,
        2,
        r#"ERROR: null (null) and string ("wö") cannot have their containment checked"#,
    ),
    (
        r#".s | contains("wö")"#,
        3,
        r#"ERROR: null (null) and string ("wö") cannot have their containment checked"#,
    ),
    (
        r#"contains("t")"#,
        0,
        r#"ERROR: object ({"status":503,"path":"/API...) and string ("t") cannot have their containment checked"#,
    ),
    (
        r#"contains("t")"#,
        1,
        r#"ERROR: object ({"status":200,"path":"/","...) and string ("t") cannot have their containment checked"#,
    ),
    (
        r#"contains("t")"#,
        2,
        r#"ERROR: object ({}) and string ("t") cannot have their containment checked"#,
    ),
    (
        r#"contains("t")"#,
        3,
        r#"ERROR: null (null) and string ("t") cannot have their containment checked"#,
    ),
    (
        r#"contains("t")"#,
        4,
        r#"ERROR: array ([1,2.5,-3]) and string ("t") cannot have their containment checked"#,
    ),
    (
        r#"contains("t")"#,
        6,
        r#"ERROR: number (42) and string ("t") cannot have their containment checked"#,
    ),
    (
        r#"contains("t")"#,
        7,
        r#"ERROR: array ([{"a":1,"b":"x"},{"a":0,"b...) and string ("t") cannot have their containment checked"#,
    ),
    (
        r#".geo | contains({"country": "FR"})"#,
        1,
        r#"ERROR: null (null) and object ({"country":"FR"}) cannot have their containment checked"#,
    ),
    (
        r#".geo | contains({"country": "FR"})"#,
        2,
        r#"ERROR: null (null) and object ({"country":"FR"}) cannot have their containment checked"#,
    ),
    (
        r#".geo | contains({"country": "FR"})"#,
        3,
        r#"ERROR: null (null) and object ({"country":"FR"}) cannot have their containment checked"#,
    ),
    (
        r#".tags | contains(["a"])"#,
        2,
        r#"ERROR: null (null) and array (["a"]) cannot have their containment checked"#,
    ),
    (
        r#".tags | contains(["a"])"#,
        3,
        r#"ERROR: null (null) and array (["a"]) cannot have their containment checked"#,
    ),
    (r#"join(",")"#, 2, r#""""#),
    (
        r#"join(",")"#,
        7,
        r#"ERROR: string ("") and object ({"a":1,"b":"x"}) cannot be added"#,
    ),
    (
        r#"abs"#,
        0,
        r#"ERROR: object ({"status":503,"path":"/API...) has no absolute value"#,
    ),
    (
        r#"abs"#,
        1,
        r#"ERROR: object ({"status":200,"path":"/","...) has no absolute value"#,
    ),
    (r#"abs"#, 2, r#"ERROR: object ({}) has no absolute value"#),
    (
        r#"abs"#,
        4,
        r#"ERROR: array ([1,2.5,-3]) has no absolute value"#,
    ),
    (
        r#"abs"#,
        5,
        r#"ERROR: string ("str") has no absolute value"#,
    ),
    (
        r#"abs"#,
        7,
        r#"ERROR: array ([{"a":1,"b":"x"},{"a":0,"b...) has no absolute value"#,
    ),
    (r#"first"#, 0, r#"ERROR: cannot index object with number"#),
    (r#"first"#, 1, r#"ERROR: cannot index object with number"#),
    (r#"first"#, 2, r#"ERROR: cannot index object with number"#),
    (r#"last"#, 0, r#"ERROR: cannot index object with number"#),
    (r#"last"#, 1, r#"ERROR: cannot index object with number"#),
    (r#"last"#, 2, r#"ERROR: cannot index object with number"#),
    (r#".tags | reverse"#, 2, r#"[]"#),
    (r#".tags | reverse"#, 3, r#"[]"#),
    (r#"reverse"#, 3, r#"[]"#),
    (r#"reverse"#, 5, r#""rts""#),
    (r#".a = 1"#, 3, r#"{"a":1}"#),
    (
        r#".geo.city = "Lyon""#,
        1,
        r#"{"status":200,"path":"/","user":"bob","bytes":0,"ms":0.25,"tags":[],"geo":{"city":"Lyon"},"ok":false}"#,
    ),
    (r#".geo.city = "Lyon""#, 2, r#"{"geo":{"city":"Lyon"}}"#),
    (r#".geo.city = "Lyon""#, 3, r#"{"geo":{"city":"Lyon"}}"#),
    (r#".status |= . + 1"#, 3, r#"{"status":1}"#),
    (r#".status += 10"#, 3, r#"{"status":10}"#),
    (r#".missing //= 5"#, 3, r#"{"missing":5}"#),
    (
        r#".tags[0] = "z""#,
        1,
        r#"{"status":200,"path":"/","user":"bob","bytes":0,"ms":0.25,"tags":["z"],"geo":null,"ok":false}"#,
    ),
    (r#".tags[0] = "z""#, 2, r#"{"tags":["z"]}"#),
    (r#".tags[0] = "z""#, 3, r#"{"tags":["z"]}"#),
    (
        r#".x.y = (1, 2)"#,
        0,
        r#"{"status":503,"path":"/API/Users","user":"ann","bytes":2048,"ms":12.5,"tags":["a","b"],"geo":{"country":"FR","city":"Paris"},"ok":true,"n":null,"s":"héllo wörld 🎉","k":"user","v":7,"x":{"y":1}} {"status":503,"path":"/API/Users","user":"ann","bytes":2048,"ms":12.5,"tags":["a","b"],"geo":{"country":"FR","city":"Paris"},"ok":true,"n":null,"s":"héllo wörld 🎉","k":"user","v":7,"x":{"y":2}}"#,
    ),
    (
        r#".x.y = (1, 2)"#,
        1,
        r#"{"status":200,"path":"/","user":"bob","bytes":0,"ms":0.25,"tags":[],"geo":null,"ok":false,"x":{"y":1}} {"status":200,"path":"/","user":"bob","bytes":0,"ms":0.25,"tags":[],"geo":null,"ok":false,"x":{"y":2}}"#,
    ),
    (r#".x.y = (1, 2)"#, 2, r#"{"x":{"y":1}} {"x":{"y":2}}"#),
    (r#".x.y = (1, 2)"#, 3, r#"{"x":{"y":1}} {"x":{"y":2}}"#),
    (r#".a |= empty"#, 3, r#"null"#),
    (r#"del(.user)"#, 3, r#"null"#),
    (r#"del(.user, .status)"#, 3, r#"null"#),
    (
        r#"del(.geo.city)"#,
        1,
        r#"{"status":200,"path":"/","user":"bob","bytes":0,"ms":0.25,"tags":[],"geo":null,"ok":false}"#,
    ),
    (r#"del(.geo.city)"#, 2, r#"{}"#),
    (r#"del(.geo.city)"#, 3, r#"null"#),
    (
        r#"del(.tags[0])"#,
        1,
        r#"{"status":200,"path":"/","user":"bob","bytes":0,"ms":0.25,"tags":[],"geo":null,"ok":false}"#,
    ),
    (r#"del(.tags[0])"#, 2, r#"{}"#),
    (r#"del(.tags[0])"#, 3, r#"null"#),
    (r#"[1,2,3] | del(.[0], .[2])"#, 0, r#"[2]"#),
    (r#"[1,2,3] | del(.[0], .[2])"#, 1, r#"[2]"#),
    (r#"[1,2,3] | del(.[0], .[2])"#, 2, r#"[2]"#),
    (r#"[1,2,3] | del(.[0], .[2])"#, 3, r#"[2]"#),
    (r#"[1,2,3] | del(.[0], .[2])"#, 4, r#"[2]"#),
    (r#"[1,2,3] | del(.[0], .[2])"#, 5, r#"[2]"#),
    (r#"[1,2,3] | del(.[0], .[2])"#, 6, r#"[2]"#),
    (r#"[1,2,3] | del(.[0], .[2])"#, 7, r#"[2]"#),
    (
        r#"[.[]? | ltrimstr("s")]"#,
        0,
        r#"[503,"/API/Users","ann",2048,12.5,["a","b"],{"country":"FR","city":"Paris"},true,null,"héllo wörld 🎉","user",7]"#,
    ),
    (
        r#"[.[]? | ltrimstr("s")]"#,
        1,
        r#"[200,"/","bob",0,0.25,[],null,false]"#,
    ),
    (r#"[.[]? | ltrimstr("s")]"#, 4, r#"[1,2.5,-3]"#),
    (
        r#"[.[]? | ltrimstr("s")]"#,
        7,
        r#"[{"a":1,"b":"x"},{"a":0,"b":"y"},{"a":1,"b":"z"}]"#,
    ),
    (r#".tags | .[1:]"#, 2, r#"null"#),
    (r#".tags | .[1:]"#, 3, r#"null"#),
    (r#".s | .[1:3]"#, 1, r#"null"#),
    (r#".s | .[1:3]"#, 2, r#"null"#),
    (r#".s | .[1:3]"#, 3, r#"null"#),
    (r#".tags | .[:-1]"#, 2, r#"null"#),
    (r#".tags | .[:-1]"#, 3, r#"null"#),
    (r#".[2:]"#, 3, r#"null"#),
    (r#".[1:2.5]"#, 3, r#"null"#),
    (r#".[1:2.5]"#, 4, r#"[2.5,-3]"#),
    (r#".[1:2.5]"#, 5, r#""tr""#),
    (r#".[1:2.5]"#, 7, r#"[{"a":0,"b":"y"},{"a":1,"b":"z"}]"#),
];

/// More jq semantics, with their own inputs.
const JQ_CASES: &[(&str, &str, &str)] = &[
    (".a", "1", r#"ERROR: cannot index number with "a""#),
    (
        ".a.b",
        r#"{"a":"x"}"#,
        r#"ERROR: cannot index string with "b""#,
    ),
    (".a", "[1]", r#"ERROR: cannot index array with "a""#),
    (".[0]", r#""abc""#, "ERROR: cannot index string with number"),
    (".[]", "5", "ERROR: cannot iterate over number (5)"),
    (".[]", "null", "ERROR: cannot iterate over null"),
    (".a", "null", "null"),
    (".[5]", "[1]", "null"),
    (".[-5]", "[1]", "null"),
    (".[1.7]", "[1,2,3]", "2"),
    (
        "1 + \"a\"",
        "null",
        r#"ERROR: number (1) and string ("a") cannot be added"#,
    ),
    (
        "1 / 0",
        "null",
        "ERROR: number (1) and number (0) cannot be divided because the divisor is zero",
    ),
    (
        ". + 1",
        r#""abcdefghijklmnopqrstuvwxyz0123""#,
        r#"ERROR: string ("abcdefghijklmnopqrstuvwxy...) and number (1) cannot be added"#,
    ),
    ("10 / 4", "null", "2.5"),
    ("10 / 5 | type", "null", r#""number""#),
    (". * 3", "4611686018427387904", "13835058055282163712"),
    (". - 1", "-9223372036854775808", "-9223372036854775809"),
    ("length", "true", "ERROR: boolean (true) has no length"),
    ("-.", r#""a""#, r#"ERROR: string ("a") cannot be negated"#),
    ("\"ab\" * 0", "null", "null"),
    ("\"ab\" * 2.5", "null", r#""abab""#),
    (
        "{(.a): 1}",
        r#"{"a":1}"#,
        "ERROR: object keys must be strings, not number (1)",
    ),
    ("{a: .b, c}", r#"{"b":1,"c":2,"a":0}"#, r#"{"a":1,"c":2}"#),
    (
        "{z: 1, a: 2, m: 3} | keys_unsorted",
        "null",
        r#"["z","a","m"]"#,
    ),
    ("{z: 1, a: 2, m: 3} | keys", "null", r#"["a","m","z"]"#),
    (". + {a: 9}", r#"{"b":1,"a":2}"#, r#"{"b":1,"a":9}"#),
    (
        "\"\\(.a) \\(.b)\"",
        r#"{"a":"é","b":[1,{"c":null}]}"#,
        r#""é [1,{\"c\":null}]""#,
    ),
    (".s | length", r#"{"s":"héllo 🎉"}"#, "7"),
    (".s | utf8bytelength", r#"{"s":"héllo 🎉"}"#, "11"),
    (".s | .[1:3]", r#"{"s":"héllo"}"#, r#""él""#),
    (".s | ascii_upcase", r#"{"s":"héllo"}"#, r#""HéLLO""#),
    ("if . then 1 end", "false", "false"),
    (
        "[.[] | if . > 1 then \"big\" elif . > 0 then \"small\" end]",
        "[0,1,2]",
        r#"[0,"small","big"]"#,
    ),
    ("try error(\"x\") catch . + \"!\"", "null", r#""x!""#),
    ("[.[] | tonumber?]", r#"["1","x","2.5"]"#, "[1,2.5]"),
    ("error", r#"{"a":1}"#, r#"ERROR: {"a":1} (not a string)"#),
    ("error(\"boom\")", "null", "ERROR: boom"),
    ("[limit(3; range(10))]", "null", "[0,1,2]"),
    ("first(range(10; 0; -1))", "null", "10"),
    ("[.[] | select(. >= 2)] | length", "[1,2,3]", "2"),
    ("map(. * 10) | add", "[1,2,3]", "60"),
    ("add", r#"["a","b"]"#, r#""ab""#),
    ("add", "[]", "null"),
    ("add", r#"[{"a":1},{"b":2}]"#, r#"{"a":1,"b":2}"#),
    ("min, max", "[]", "null null"),
    ("min, max", r#"[3,"a",null]"#, r#"null "a""#),
    ("join(\", \")", r#"["a",1,null,true]"#, r#""a, 1, , true""#),
    (
        "join(\",\")",
        r#"["a",[1]]"#,
        r#"ERROR: string ("a,") and array ([1]) cannot be added"#,
    ),
    ("split(\", \")", r#""a, b,c""#, r#"["a","b,c"]"#),
    ("test(\"B\"; \"i\")", r#""abc""#, "true"),
    ("test(\"^b\")", "\"a\\nb\"", "false"),
    ("test(\"a.b\"; \"p\")", "\"a\\nb\"", "true"),
    ("test(1)", r#""abc""#, "ERROR: cannot use 1 as string"),
    ("tonumber", r#"" 12 ""#, "12"),
    (
        "tonumber",
        r#""nan""#,
        "ERROR: cannot parse 'nan' as a number",
    ),
    ("tostring", r#"{"a":[1,2.5]}"#, r#""{\"a\":[1,2.5]}""#),
    ("has(\"a\"), has(\"b\")", r#"{"a":null}"#, "true false"),
    (
        "has(0)",
        r#"{"a":1}"#,
        "ERROR: cannot check whether object has a number key",
    ),
    ("contains(\"bar\")", r#""foobar""#, "true"),
    ("contains({a: [1]})", r#"{"a":[1,2],"b":3}"#, "true"),
    (
        "contains(1)",
        "[1]",
        "ERROR: array ([1]) and number (1) cannot have their containment checked",
    ),
    ("floor, ceil, round, fabs", "-2.5", "-3 -2 -3 2.5"),
    ("[sqrt] | tojson", "-4", r#""[null]""#),
    ("abs", "-7", "7"),
    (".a.b.c = 1", "null", r#"{"a":{"b":{"c":1}}}"#),
    (
        ".a.b = 1",
        r#"{"a":1}"#,
        r#"ERROR: cannot index number with "b""#,
    ),
    (".[3] = 1", "[1]", "[1,null,null,1]"),
    (
        ".[-3] = 1",
        "[1]",
        "ERROR: out of bounds negative array index",
    ),
    (".a |= empty", r#"{"a":1,"b":2}"#, r#"{"b":2}"#),
    (".a += 1", "{}", r#"{"a":1}"#),
    ("del(.[0], .[2])", "[1,2,3]", "[2]"),
    (
        "del(.a, .b.c)",
        r#"{"a":1,"b":{"c":2,"d":3}}"#,
        r#"{"b":{"d":3}}"#,
    ),
    ("to_entries", r#"{"a":1}"#, r#"[{"key":"a","value":1}]"#),
    (
        "from_entries",
        r#"[{"key":"a","value":1},{"k":"b","v":2},{"name":"c","value":3}]"#,
        r#"{"a":1,"b":2,"c":3}"#,
    ),
    (
        "with_entries(.value += 1)",
        r#"{"a":1,"b":2}"#,
        r#"{"a":2,"b":3}"#,
    ),
    ("[.[] | (1 / .)?]", "[1,0,2]", "[1,0.5]"),
    ("[.[]?]", "3", "[]"),
    ("[..]", "[[1]]", "[[[1]],[1],1]"),
    ("[.[] | numbers]", r#"[1,"a",null,2]"#, "[1,2]"),
    (
        "sort_by(.a) | map(.b)",
        r#"[{"a":2,"b":1},{"a":1,"b":2},{"a":2,"b":3}]"#,
        "[2,1,3]",
    ),
    (
        "group_by(.a) | map(length)",
        r#"[{"a":2},{"a":1},{"a":2}]"#,
        "[1,2]",
    ),
    ("unique_by(length)", r#"["a","bb","c"]"#, r#"["a","bb"]"#),
    (
        "min_by(.a), max_by(.a)",
        r#"[{"a":2},{"a":1},{"a":2,"b":0}]"#,
        r#"{"a":1} {"a":2,"b":0}"#,
    ),
    ("any(. > 2), all(. > 0)", "[1,2,3]", "true true"),
    ("[limit(-1; 1, 2)]", "null", "[1,2]"),
    ("reverse", r#""abc""#, r#""cba""#),
    ("@json \"x=\\(.)\"", r#""q""#, r#""x=\"q\"""#),
    (
        "[.[] | tostring]",
        "[1, 1.5, \"s\", null]",
        r#"["1","1.5","s","null"]"#,
    ),
];

#[test]
fn native_forms_are_native() {
    for src in NATIVE {
        let e = Expr::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(e.is_native(), "{src} should compile natively");
        assert_eq!(e.source(), *src);
    }
    for src in MIXED {
        let e = Expr::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(!e.is_native(), "{src} is expected to use jaq");
        assert!(!Expr::compile_fallback_only(src).unwrap().is_native());
    }
}

/// Native and jaq agree on every (expression, input) pair outside `JQ_EXPECT`.
#[test]
fn native_matches_jaq() {
    let inputs: Vec<Value> = INPUTS.iter().map(|s| v(s)).collect();
    let mut failures = Vec::new();
    for src in NATIVE.iter().chain(MIXED) {
        let native = Expr::compile(src).unwrap();
        let jaq = Expr::compile_fallback_only(src).unwrap();
        for (i, input) in inputs.iter().enumerate() {
            if JQ_EXPECT.iter().any(|(e, j, _)| e == src && *j == i) {
                continue;
            }
            let (a, b) = (run(&native, input), run(&jaq, input));
            if !same(&a, &b) {
                failures.push(format!(
                    "{src} on {}:\n  native: {}\n  jaq:    {}",
                    INPUTS[i],
                    show(&a),
                    show(&b)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Numbers that kept their input text print it while unchanged and canonically once computed,
/// alike in the native evaluator and in jaq (which would negate by editing the text); number
/// literals of the expression are values (jaq would keep a decimal's text).
#[test]
fn kept_number_text_is_the_same_natively_and_in_jaq() {
    let input =
        v(r#"{"a":1.50,"b":-0,"c":1e3,"d":[2.0,"x"],"e":123456789012345678901234567890,"f":2.5}"#);
    let cases: &[(&str, &str)] = &[
        (
            ".",
            r#"{"a":1.50,"b":-0,"c":1e3,"d":[2.0,"x"],"e":123456789012345678901234567890,"f":2.5}"#,
        ),
        (
            "[.a, .b, .c, .d[0], .e, .f]",
            "[1.50,-0,1e3,2.0,123456789012345678901234567890,2.5]",
        ),
        ("[.a, .c] | map(tostring)", r#"["1.50","1e3"]"#),
        (
            "[.[] | numbers | tojson]",
            r#"["1.50","-0","1e3","123456789012345678901234567890","2.5"]"#,
        ),
        (r#""\(.a)|\(.d)""#, r#""1.50|[2.0,\"x\"]""#),
        (
            "[-.a, -.b, -.c, -.e]",
            "[-1.5,0,-1000,-123456789012345680000000000000]",
        ),
        ("[.a + 0, .c * 1, .d[0] / 1, .a - 0]", "[1.5,1000,2,1.5]"),
        ("[.a | floor, fabs, length]", "[1,1.5,1.5]"),
        ("[.a, .f, .b] | sort", "[-0,1.50,2.5]"),
        ("[.a, .f] | max", "2.5"),
        ("[.d[0], 2] | unique", "[2.0]"),
        (".a == 1.5 and .c == 1000 and .b == 0", "true"),
        (
            "[1.50, 2.0, -1.50, 1e3, 7, -0, 100000000000000000001]",
            "[1.5,2,-1.5,1000,7,-0,1e+20]",
        ),
        ("{a} | to_entries | .[0].value", "1.50"),
        (".d | first(.[] | numbers)", "2.0"),
        ("[.a, .c] | map(. as $x | $x)", "[1.50,1e3]"),
    ];
    for (src, want) in cases {
        let want = [v(want)];
        let text = |v: &[Value]| v.iter().map(Value::to_json_string).collect::<Vec<_>>();
        for e in [
            Expr::compile(src).unwrap(),
            Expr::compile_fallback_only(src).unwrap(),
        ] {
            let got = run(&e, &input).unwrap_or_else(|err| panic!("{src}: {err}"));
            assert_eq!(text(&got), text(&want), "{src} (native: {})", e.is_native());
        }
    }
}

/// `tonumber` reads JSON number text as input numbers are read (keeping the text where
/// printing would change it), and the other forms jq's strtod takes as computed numbers.
#[test]
fn tonumber_reads_number_text_as_input_numbers_are_read() {
    let e = Expr::compile("tonumber").unwrap();
    for (s, want) in [
        (r#""1.50""#, "1.50"),
        (r#"" 1e3 ""#, "1e3"),
        (r#""-0""#, "-0"),
        (r#""12""#, "12"),
        (r#""2.5""#, "2.5"),
        (
            r#""123456789012345678901234567890""#,
            "123456789012345678901234567890",
        ),
        (r#""+3""#, "3"),
        (r#"".5""#, "0.5"),
        (r#""1.""#, "1"),
        (r#""1e999""#, "1.7976931348623157e+308"),
    ] {
        let got = run(&e, &v(s)).unwrap_or_else(|err| panic!("{s}: {err}"));
        assert_eq!(got[0].to_json_string(), want, "{s}");
    }
}

#[test]
fn jq_semantics_where_jaq_deviates() {
    let inputs: Vec<Value> = INPUTS.iter().map(|s| v(s)).collect();
    for (src, i, want) in JQ_EXPECT {
        check_expected(src, &inputs[*i], want);
    }
}

#[test]
fn jq_semantics_cases() {
    for (src, input, want) in JQ_CASES {
        check_expected(src, &v(input), want);
    }
}

/// `eval_first` and `eval_bool` agree with `eval`.
#[test]
fn first_and_bool_agree_with_eval() {
    let inputs: Vec<Value> = INPUTS.iter().map(|s| v(s)).collect();
    for src in NATIVE.iter().chain(MIXED) {
        for e in [
            Expr::compile(src).unwrap(),
            Expr::compile_fallback_only(src).unwrap(),
        ] {
            for input in &inputs {
                let all = run(&e, input);
                let first = e.eval_first(input);
                let truth = e.eval_bool(input);
                match &all {
                    Ok(vs) => {
                        let f = first.unwrap_or_else(|err| panic!("{src}: {err}"));
                        assert!(f.as_ref() == vs.first(), "{src}: eval_first");
                        let t = truth.unwrap_or_else(|err| panic!("{src}: {err}"));
                        assert_eq!(
                            t,
                            vs.first().is_some_and(|v| v.truthy()),
                            "{src}: eval_bool"
                        );
                    }
                    // The error may come after the first output.
                    Err(_) => {
                        if let Ok(Some(f)) = &first {
                            assert_eq!(truth.ok(), Some(f.truthy()), "{src}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn eval_first_stops_early() {
    // An infinite generator (jaq fallback) and a native comma with a later error.
    let e = Expr::compile("first(range(1; infinite))").unwrap();
    assert_eq!(e.eval_first(&Value::Null).unwrap(), Some(Value::Int(1)));
    let e = Expr::compile("range(1; infinite)").unwrap();
    assert_eq!(e.eval_first(&Value::Null).unwrap(), Some(Value::Int(1)));
    let e = Expr::compile("1, error(\"x\")").unwrap();
    assert!(e.is_native());
    assert_eq!(e.eval_first(&Value::Null).unwrap(), Some(Value::Int(1)));
    assert!(e.eval_bool(&Value::Null).unwrap());
    let mut out = Vec::new();
    assert!(e.eval(&Value::Null, &mut out).is_err());
    let e = Expr::compile("limit(2; repeat(1))").unwrap();
    let mut out = Vec::new();
    e.eval(&Value::Null, &mut out).unwrap();
    assert_eq!(out, vec![Value::Int(1), Value::Int(1)]);
}

#[test]
fn eval_bool_and_first_edge_cases() {
    let null = Value::Null;
    let t = |src: &str| Expr::compile(src).unwrap().eval_bool(&null).unwrap();
    assert!(!t("empty"));
    assert!(!t("null"));
    assert!(!t("false, true"));
    assert!(t("0"));
    assert!(t("\"\""));
    assert!(t("[]"));
    assert!(Expr::compile("error(\"x\")")
        .unwrap()
        .eval_bool(&null)
        .is_err());
    assert_eq!(
        Expr::compile("empty").unwrap().eval_first(&null).unwrap(),
        None
    );
    let e = Expr::compile(".a.b").unwrap();
    let err = e.eval_bool(&v(r#"{"a":"x"}"#)).unwrap_err();
    assert_eq!(err.message, r#"cannot index string with "b""#);
}

#[test]
fn eval_owned_matches_eval() {
    let inputs: Vec<Value> = INPUTS.iter().map(|s| v(s)).collect();
    for src in NATIVE.iter().chain(MIXED) {
        let e = Expr::compile(src).unwrap();
        for input in &inputs {
            let a = run(&e, input);
            let mut out = Vec::new();
            let b = e.eval_owned(input.clone(), &mut out).map(|()| out);
            assert!(same(&a, &b), "{src}: {} / {}", show(&a), show(&b));
            if let (Err(x), Err(y)) = (&a, &b) {
                assert_eq!(x.message, y.message, "{src}");
            }
        }
    }
}

#[test]
fn eval_leaves_out_unchanged_on_error() {
    let e = Expr::compile(".[] | if . == 3 then error(\"three\") else . end").unwrap();
    let mut out = vec![Value::str("keep")];
    let err = e.eval(&v("[1,2,3,4]"), &mut out).unwrap_err();
    assert_eq!(err.message, "three");
    assert_eq!(out, vec![Value::str("keep")]);
    e.eval(&v("[1,2]"), &mut out).unwrap();
    assert_eq!(out, vec![Value::str("keep"), Value::Int(1), Value::Int(2)]);
}

#[test]
fn subterms_fall_back_individually() {
    let e = Expr::compile("{n: .name, total: (reduce .xs[] as $x (0; . + $x))}").unwrap();
    assert!(!e.is_native());
    // The root is native object construction; only the reduce runs in jaq.
    assert!(matches!(e.inner.root.kind, Form::ObjLit { .. }));
    let mut out = Vec::new();
    e.eval(&v(r#"{"name":"a","xs":[1,2,3]}"#), &mut out)
        .unwrap();
    assert_eq!(out, vec![v(r#"{"n":"a","total":6}"#)]);
    // A native `try` catches errors raised inside a jaq subterm.
    let e = Expr::compile("try (. as $x | $x.a) catch \"caught\"").unwrap();
    assert_eq!(e.eval_first(&v("1")).unwrap(), Some(Value::str("caught")));
    // `$ENV` is provided to jaq.
    let e = Expr::compile("$ENV | type").unwrap();
    assert_eq!(
        e.eval_first(&Value::Null).unwrap(),
        Some(Value::str("object"))
    );
}

#[test]
fn shared_between_threads() {
    let exprs = [
        Expr::compile("{user, kb: (.bytes / 1024)}").unwrap(),
        Expr::compile("reduce .xs[] as $x (0; . + $x)").unwrap(),
    ];
    assert!(exprs[0].is_native() && !exprs[1].is_native());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let exprs = exprs.clone();
            std::thread::spawn(move || {
                let rec = v(&format!(r#"{{"user":"u{i}","bytes":2048,"xs":[{i},1]}}"#));
                let mut out = Vec::new();
                for e in &exprs {
                    e.eval(&rec, &mut out).unwrap();
                }
                out
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.join().unwrap();
        assert_eq!(out[0], v(&format!(r#"{{"user":"u{i}","kb":2}}"#)));
        assert_eq!(out[1], Value::Int(i as i64 + 1));
    }
}

#[test]
fn compile_errors() {
    let cases: &[(&str, &str, usize)] = &[
        (".a |", "expected term", 4),
        ("{a: }", "expected term", 4),
        (".[", "closing bracket", 2),
        ("\"abc", "closing quote", 4),
        ("if . then 1", "else or end", 11),
        (".a + (1", "closing parenthesis", 7),
        ("foo(1)", "undefined function `foo/1`", 0),
        (".a | map(.b; .c)", "undefined function `map/2`", 5),
        (".x | $nope", "undefined variable `$nope`", 5),
        ("1 + bogus", "undefined function `bogus/0`", 4),
        ("input", "undefined function `input/0`", 0),
        (".a ]", "syntax error", 3),
    ];
    for (src, msg, offset) in cases {
        let e = Expr::compile(src).unwrap_err();
        assert!(e.message.contains(msg), "{src}: {e}");
        assert_eq!(e.offset, *offset, "{src}: {e}");
        let f = Expr::compile_fallback_only(src).unwrap_err();
        assert_eq!(f.offset, *offset, "{src}");
    }
    // Valid programs that jaq accepts, including definitions and comments.
    for src in ["def f(x): x * 2; f(.a)", ".a # comment", "..", "$ENV.HOME"] {
        Expr::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    }
}

/// An expression the native compiler takes whole is not compiled by jaq (`compile_uncached`),
/// so no error jaq would give may be lost: every name the native compiler knows, called with
/// any arity it takes, compiles in jaq too. The names are read from `compile.rs` itself (each
/// string literal of `call`), so a native builtin added later is checked without listing it
/// here; and an unknown name, native or not, is still refused.
#[test]
fn every_native_name_compiles_in_jaq() {
    use jaq_core::load::{Lexer, Parser};
    let text = include_str!("compile.rs");
    let body = &text[text.find("\nfn call(").expect("compile.rs has fn call")..];
    let body = &body[..body.find("\n}\n").expect("fn call ends")];
    let names: std::collections::BTreeSet<&str> = body
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|n| {
            let n = n.strip_prefix('@').unwrap_or(n);
            !n.is_empty() && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        })
        .collect();
    assert!(
        names.len() > 60,
        "only {} names read from fn call",
        names.len()
    );
    let mut native = 0;
    for name in &names {
        for arity in 0..4 {
            let src = if arity == 0 {
                name.to_string()
            } else {
                format!("{name}({})", vec!["."; arity].join("; "))
            };
            let Ok(tokens) = Lexer::new(src.as_str()).lex() else {
                continue;
            };
            let Ok(term) = Parser::new(&tokens).parse(|p| p.term()) else {
                continue;
            };
            if let Ok(Some(_)) = compile::native(&term) {
                native += 1;
                assert!(
                    fallback::compile_jaq(&src).is_ok(),
                    "`{src}` compiles natively but not in jaq"
                );
            }
        }
    }
    assert!(native > 60, "only {native} native calls found");
    for src in [
        "no_such_function",
        "length(.)",
        "select",
        "@nosuchformat \"x\"",
    ] {
        assert!(Expr::compile(src).is_err(), "`{src}` must be refused");
    }
}

/// The term printer used for subterm fallback reproduces programs faithfully.
#[test]
fn printer_round_trips() {
    use jaq_core::load::{Lexer, Parser};
    let progs = [
        ".a.b[0][1:2][] | .c?",
        "reduce .[] as [$a, {b: $c, $d}] (0; . + $a)",
        "foreach .[] as $x (0; . + $x; [$x, .])",
        "def f(g; $x): g + $x; f(.a; 1)",
        "label $out | .[] | if . > 1 then ., break $out else . end",
        "try (1, error(\"x\")) catch (. | length)",
        "{a, \"b\": 1, (.c): 2, \"d\\(.e)\": 3}",
        ". as {a: $x, $c} | {$x, $c}",
        "\"a\\\"b\\\\c\\n\\u00e9 \\(.x + 1) end\"",
        "@base64 \"x\\(.)\" | @json",
        "-(1 + 2) * 3 % 4 // 5 and 6 or not",
        ".a = 1 | .b |= . + 1 | .c += 2 | .d //= 3",
        "[.[]?, ..] | .[-1:] | .[:1]",
        "if . then 1 elif . == null then 2 else 3 end",
        ". as $x | $x",
    ];
    let inputs = [
        v("null"),
        v(r#"{"a":{"b":[[1,2,3]]},"c":"k","e":1,"x":2}"#),
        v("[1,2,3]"),
    ];
    for src in progs {
        let tokens = Lexer::new(src).lex().unwrap();
        let term = Parser::new(&tokens).parse(|p| p.term()).unwrap();
        let printed = fallback::print_term(&term);
        let tokens2 = Lexer::new(&printed).lex().unwrap();
        let term2 = Parser::new(&tokens2).parse(|p| p.term()).unwrap();
        assert_eq!(fallback::print_term(&term2), printed, "{src}");
        let a = Expr::compile_fallback_only(src).unwrap();
        let b = Expr::compile_fallback_only(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
        for input in &inputs {
            let (x, y) = (run(&a, input), run(&b, input));
            assert!(
                same(&x, &y),
                "{src} vs {printed}: {} / {}",
                show(&x),
                show(&y)
            );
        }
    }
}

// --- property test ------------------------------------------------------------------------

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(Value::Int),
        (-2000i64..2000).prop_map(|i| Value::float(i as f64 / 4.0 + 0.125)),
        "[a-cé/ ]{0,5}".prop_map(|s| Value::str(&s)),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&["a", "b", "c"][..]), inner), 0..4)
                .prop_map(|kvs| {
                    Value::Object(kvs.into_iter().map(|(k, v)| (Str::new(k), v)).collect())
                }),
        ]
    })
}

fn arb_record() -> impl Strategy<Value = Value> {
    let keys = &["a", "b", "c", "status", "path", "tags", "user"][..];
    prop::collection::vec((prop::sample::select(keys), arb_value()), 0..7)
        .prop_map(|kvs| Value::Object(kvs.into_iter().map(|(k, v)| (Str::new(k), v)).collect()))
}

use crate::value::Str;

const PROP_EXPRS: &[&str] = &[
    ".",
    ".a",
    ".a.b",
    ".a?",
    ".a.b?",
    "[.[]]",
    "[.a[]?]",
    "[..]",
    ".status >= 400",
    ".a == .b",
    ".a < .b",
    ".a != null",
    "[.a, .b] | sort",
    ".a + .b",
    ".a - .b",
    ".a * 2",
    ".a + 1",
    "-.a",
    ".a and .b",
    ".a or .b",
    ".a // .b",
    ".a | not",
    "{user: .user, path: .path, status: .status}",
    "{a, b: .c, \"x y\": 1}",
    "\"\\(.a)-\\(.b)\"",
    "if .a then .b elif .c then 1 else 2 end",
    "try .a.b catch \"c\"",
    "select(.a) | .b",
    "[.[] | select(. != null)]",
    "length",
    ".a | length",
    "[.[] | type]",
    "keys",
    "has(\"a\")",
    "[.[] | tostring]",
    ".path | ascii_downcase?",
    ".path | strings | startswith(\"/\")",
    ".path | strings | split(\"/\")",
    ".path | strings | ltrimstr(\"a\")",
    ".path | strings | test(\"a.c\")",
    ".status | numbers | floor",
    ".status | numbers | round",
    "[.[] | numbers] | add",
    "[.[] | numbers] | min",
    "map(type)",
    "first(.[])",
    "to_entries",
    "with_entries(.value |= type)",
    "del(.a)",
    ".a = 1",
    ".a |= length?",
    ".b += 1",
    "[.[] | arrays | length]",
    ".tags | arrays | map(type)",
    "(.a | objects | keys) // []",
    "[paths]",
    "[.[] | tojson]",
];

fn prop_exprs() -> &'static [(&'static str, Expr, Expr)] {
    static EXPRS: std::sync::OnceLock<Vec<(&'static str, Expr, Expr)>> = std::sync::OnceLock::new();
    EXPRS.get_or_init(|| {
        PROP_EXPRS
            .iter()
            .map(|src| {
                let native = Expr::compile(src).unwrap();
                let jaq = Expr::compile_fallback_only(src).unwrap();
                (*src, native, jaq)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn prop_native_matches_jaq(rec in arb_record()) {
        for (src, native, jaq) in prop_exprs() {
            let (a, b) = (run(native, &rec), run(jaq, &rec));
            prop_assert!(
                same(&a, &b),
                "{} on {}:\n  native: {}\n  jaq:    {}",
                src, rec.to_json_string(), show(&a), show(&b)
            );
        }
    }
}

#[test]
fn input_fields_are_conservative() {
    let f = |s: &str| {
        Expr::compile(s)
            .unwrap()
            .input_fields()
            .map(|v| v.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(f(".status >= 400"), Some(vec!["status".into()]));
    assert_eq!(
        f("{user, path, status}"),
        Some(vec!["user".into(), "path".into(), "status".into()])
    );
    assert_eq!(f(".a.b | ascii_downcase"), Some(vec!["a".into()]));
    assert_eq!(f("\"\\(.x)-\\(.y)\""), Some(vec!["x".into(), "y".into()]));
    assert_eq!(f(".[\"k\"] // .j"), Some(vec!["k".into(), "j".into()]));
    assert_eq!(
        f("if .a then .b else 1 end"),
        Some(vec!["a".into(), "b".into()])
    );
    for whole in [
        ".",
        "keys",
        "length",
        "select(.a)",
        ". + {x: 1}",
        "to_entries",
        ".[.k]",
        "del(.a)",
        "map(.x)",
        "[.[] | .a]",
        "reduce .xs[] as $x (0; . + $x)",
    ] {
        assert_eq!(f(whole), None, "{whole}");
    }
}

#[test]
fn input_paths_stop_where_a_value_may_be_read_whole() {
    let f = |s: &str| {
        Expr::compile(s).unwrap().input_paths().map(|v| {
            v.iter()
                .map(|p| p.iter().map(|k| k.as_str()).collect::<Vec<_>>().join("."))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        f("{app: .kubernetes.labels.app, user, status}"),
        Some(vec![
            "kubernetes.labels.app".into(),
            "user".into(),
            "status".into()
        ])
    );
    // A path stops at an index; what follows a pipe works on the path's whole value.
    assert_eq!(f(".a.b[0].c"), Some(vec!["a.b".into()]));
    assert_eq!(f(".a.b | keys"), Some(vec!["a.b".into()]));
    assert_eq!(f(".a | length"), Some(vec!["a".into()]));
    assert_eq!(f(".[\"k\"].x"), Some(vec!["k.x".into()]));
    assert_eq!(
        f(".p.q == 1 and .p.r"),
        Some(vec!["p.q".into(), "p.r".into()])
    );
    // The top-level names are the paths' first keys.
    assert_eq!(
        Expr::compile(".a.b + .a.c + .d").unwrap().input_fields(),
        Some(vec![Str::new("a"), Str::new("d")])
    );
    for whole in [".", "keys", ".[0].a", "del(.a.b)", ".a.b |= 1"] {
        assert_eq!(f(whole), None, "{whole}");
    }
}

#[test]
fn single_field_lookup_agrees_with_the_evaluator() {
    let e = Expr::compile(".user").unwrap();
    let rec = v(r#"{"user":"u1","n":2}"#);
    assert_eq!(e.field_of(&rec), Some(&Value::str("u1")));
    assert_eq!(e.field_of(&v(r#"{"n":2}"#)), Some(&Value::Null));
    // Not an object: the evaluator decides (null gives null, a number is an error).
    assert_eq!(e.field_of(&Value::Null), None);
    assert_eq!(e.field_of(&Value::Int(3)), None);
    assert!(e.eval_first(&Value::Int(3)).is_err());
    assert_eq!(e.eval_first(&Value::Null).unwrap(), Some(Value::Null));
    // Anything but a single field is never looked up directly.
    for other in [".user.name", ".[0]", ".user // 1", "."] {
        assert_eq!(
            Expr::compile(other).unwrap().field_of(&rec),
            None,
            "{other}"
        );
    }
    for input in [rec, v(r#"{"n":2}"#)] {
        assert_eq!(
            e.eval_first(&input).unwrap(),
            e.field_of(&input).cloned(),
            "{}",
            input.to_json_string()
        );
    }
}

/// A second compile of the same text is the first one's result: the same compiled expression,
/// or the same error at the same offset.
#[test]
fn compiling_the_same_text_again_gives_the_same_result() {
    let a = Expr::compile(".a + 1 | tostring").unwrap();
    let b = Expr::compile(".a + 1 | tostring").unwrap();
    assert!(Arc::ptr_eq(&a.inner, &b.inner));
    let c = Expr::compile(".a + 2 | tostring").unwrap();
    assert!(!Arc::ptr_eq(&a.inner, &c.inner));
    assert_eq!(run(&c, &v(r#"{"a":1}"#)).unwrap(), vec![v(r#""3""#)]);
    for _ in 0..2 {
        let e = Expr::compile(".a | nosuchfn(1)").err().unwrap();
        assert_eq!(e.message, "undefined function `nosuchfn/1`");
        assert_eq!(e.offset, 5);
    }
}

/// `project_in_place` gives exactly what `eval` gives, key order and text included, on objects
/// with the fields present, missing, repeated in the projection's keys, renamed and swapped,
/// and on nested paths through objects, `null`, missing fields and values that are neither
/// (where `eval` reports jq's error, and the projection must decline and leave its input
/// alone); and it declines what it cannot do that way.
#[test]
fn a_projection_in_place_is_what_eval_builds() {
    let inputs = [
        r#"{"ts":"t","path":"/a","status":500,"user":"u1","agent":"é \"x\""}"#,
        r#"{"user":"u2","status":404.0,"path":null}"#,
        r#"{"status":1e3}"#,
        r#"{}"#,
        r#"{"a":1,"b":[1,{"c":2}],"x":{"y":3}}"#,
        r#"{"status":500,"user":"u3","k":{"labels":{"app":"web","tier":"a"},"pod":"p1"},"x":null}"#,
        r#"{"k":{"labels":null,"pod":{"n":[1,2]}},"user":"u4","x":{"y":{"z":true},"w":"s"}}"#,
        r#"{"k":"text","x":{"y":7}}"#,
        r#"{"k":{"labels":[1]},"x":{"y":[{"z":1}]}}"#,
    ];
    let projections = [
        "{user, path, status}",
        "{status, user}",
        "{u: .user, p: .path}",
        "{a: .b, b: .a}",
        "{path: .user, user: .path, status}",
        "{x, missing, a}",
        "{\"quoted key\": .a}",
        "{user}",
        "{a: .x.y}",
        "{app: .k.labels.app, user, status}",
        "{k: .user, app: .k.labels.app}",
        "{app: .k.labels.app, tier: .k.labels.tier, pod: .k.pod}",
        "{user, n: .k.pod.n, z: .x.y.z, w: .x.w}",
        "{x: .x.y, y: .x.w, k}",
        "{deep: .a.b.c.d}",
    ];
    let mut declined = 0;
    for src in projections {
        let e = Expr::compile(src).unwrap();
        for input in inputs {
            let input = v(input);
            let mut got = input.clone();
            let want = run(&e, &input);
            let Ok(want) = want else {
                // jq's error (a path through a string, a number, an array): eval's to report.
                assert!(
                    !e.project_in_place(&mut got),
                    "{src} on {input:?} fails in eval"
                );
                assert_eq!(got.to_json_string(), input.to_json_string());
                declined += 1;
                continue;
            };
            assert!(e.project_in_place(&mut got), "{src} is a projection");
            assert_eq!(want.len(), 1);
            assert_eq!(
                got.to_json_string(),
                want[0].to_json_string(),
                "{src} on {}",
                input.to_json_string()
            );
        }
    }
    assert!(declined >= 6, "the inputs reach errors: {declined}");
    // Not projections: a field taken twice, a repeated key, a path into another path or the
    // same path twice, a computed value.
    for src in [
        "{a: .x, b: .x}",
        "{a: .x, a: .y}",
        "{a: .x.y, x}",
        "{x, a: .x.y}",
        "{a: .x.y, b: .x.y}",
        "{a: .x.y.z, b: .x.y}",
        "{a: .x[0]}",
        "{a: (.x + 1)}",
        "{(.k): .x}",
        ".",
    ] {
        let e = Expr::compile(src).unwrap();
        let mut x = v(inputs[0]);
        assert!(!e.project_in_place(&mut x), "{src} is no projection");
        assert_eq!(x.to_json_string(), v(inputs[0]).to_json_string());
    }
    // Input that is no object goes to `eval`, which reports jq's error or builds nulls.
    let e = Expr::compile("{user}").unwrap();
    for input in ["\"s\"", "null", "[1]"] {
        let mut x = v(input);
        assert!(!e.project_in_place(&mut x));
    }
}
