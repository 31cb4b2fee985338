//! jq conformance: a few hundred expressions run through weir (the real binary, a handful of
//! pipelines of many `map` nodes each) and through the real `jq` binary on the same varied
//! records, outputs compared value by value (numbers as jq compares them, so `1 == 1.0`).
//! An expression that fails on a record must fail in both (messages are not compared: jq 1.6
//! and 1.7 word them differently). `DIFFERENCES` lists, in one place, where weir deliberately
//! differs from the `jq` installed (jq 1.6 on Debian 12), with the reason; the same list is in
//! docs/reference.md. Needs `jq` on PATH (`.ci/run` installs it).

use crate::common::*;
use serde_json::Value as J;
use std::collections::BTreeMap;
use std::process::Command;

/// Records with nesting, escapes, non-ASCII text and numbers of every kind.
const RECORDS: &[&str] = &[
    r#"{"id":1,"user":"alice","status":200,"bytes":1024,"latency_ms":12.5,"path":"/api/v1/users","tags":["a","b"],"ts":"2026-11-01T10:00:01Z","epoch":1793527201}"#,
    r#"{"id":2,"user":"bob","status":500,"bytes":0,"latency_ms":1e3,"path":"/static/app.js?x=1&y=2","tags":[],"ts":"2026-11-01T10:00:02Z","epoch":1793527202.25,"nested":{"a":{"b":{"c":[1,2,{"d":null}]}}}}"#,
    r#"{"id":3,"user":"Zoë ünïcødé 日本語 🎉","status":404,"bytes":-17,"msg":"line1\nline2\ttab \"quoted\" back\\slash \u0001","tags":["x"],"neg":-0.0,"tiny":1e-7,"exp":1.5e300}"#,
    r#"{"id":4,"user":null,"status":"200","bytes":3.75,"tags":null,"path":"","arr":[3,1,2,[0],{"z":1,"a":2},null,true,"s"],"obj":{"b":2,"a":1,"c":{"x":[]}}}"#,
    r#"{"id":5,"empty":{},"ea":[],"bools":[true,false,null],"n":0,"s":"0","csv":"a,b;c","ws":"  padded  ","upper":"MiXeD Case"}"#,
    r#"{"id":6,"user":"carol","status":302,"bytes":99999999999,"latency_ms":0.1,"path":"/a/b/c/d","tags":["a","a","b"],"ts":"1999-12-31T23:59:59Z","epoch":946684799}"#,
    r#"{"id":7,"num_str":"12.50","ints":[5,3,9,1,7],"floats":[0.1,0.2,0.30000000000000004],"mixed":[1,"1",[1],{"1":1},null,false],"user":"dave"}"#,
    r#"{"id":8,"deep":[[[[[[1]]]]]],"kv":{"k1":"v1","k2":"v2","k3":"v3"},"text":"The quick brown fox jumps over the lazy dog","user":"Ève"}"#,
];

/// Where weir deliberately differs from the installed jq (1.6), and why: the expression, the
/// `id` of the one record it differs on (`None`: every record), the reason. These run through
/// weir (they must not crash) but are not compared there.
pub const DIFFERENCES: &[(&str, Option<u64>, &str)] = &[
    ("[.[] | numbers] | add", None, "weir keeps integers exact beyond 2^53 (jq 1.6 rounds every number to a double)"),
    (".bytes * 1000000000", None, "integer arithmetic stays integral while exact (jq 1.6 prints 1e+20 style doubles)"),
    ("\"abc\" | [match(\"\"; \"g\") | .offset]", None, "jq 1.7 also matches the empty string at the end ([0,1,2,3]); jq 1.6 stops before it"),
    ("[-1] | implode", None, "jq 1.6 aborts; weir errors"),
    ("[limit(0; 1, 2)]", None, "jq 1.7 gives [] (jq 1.6 gives [1])"),
    ("[range(5)] | [.[1.7], .[-1.7], .[-0.5], .[4.5], .[5.5], .[nan]]", None, "jq 1.7 truncates a fractional index towards zero (.[1], .[-1], .[0], .[4]); jq 1.6 gives null"),
    ("[range(5)] | 1.7 as $i | [.[$i], .[-$i]]", None, "as above, in the part jaq runs"),
    ("[range(5)] | [getpath([1.7]), getpath([-1.7])]", None, "as above"),
    ("[range(5)] | .[1.7] |= . + 10", None, "as above: jq 1.6 updates the null it reads at .[1.7]"),
    ("[range(5)] | path(.[1.7])", None, "weir's path is [1], the index it uses; jq gives the number as written"),
    (".user | @base32", None, "@base32 and @base32d are jq 1.7 builtins the Debian jq 1.6 lacks"),
    (".user | @base32 | @base32d", None, "@base32 and @base32d are jq 1.7 builtins the Debian jq 1.6 lacks"),
    (".user * 2?", Some(4), "`?` applies to `2` in jq 1.6 and 1.7 alike, but jq 1.6's `?` also swallows an error raised after its term gave a value (here null * 2); jq 1.7 fixed that"),
    (".user * 2?", Some(5), "as above"),
    (".user * (2?)", Some(4), "as above"),
    (".user * (2?)", Some(5), "as above"),
    (".user * 2? // \"d\"", Some(4), "as above"),
    (".user * 2? // \"d\"", Some(5), "as above"),
    ("try (.user * 2?) catch \"c\"", Some(4), "as above"),
    ("try (.user * 2?) catch \"c\"", Some(5), "as above"),
    (".tags | .[0.5]?", None, "jq 1.7 truncates a fractional index (.[0]); jq 1.6 gives null"),
    ("0 * -1 | tostring", None, "integer arithmetic: 0 * -1 is the integer 0 (jq's doubles give -0)"),
    (".text | @base64d?", None, "text that is not base64: jq 1.6 drops a trailing partial byte, weir decodes it"),
    ("[.ints[]?] | bsearch(9)", None, "bsearch of an unsorted array is unspecified; jq 1.6's bisection lands elsewhere"),
    (".latency_ms | tostring", Some(2), "input number text: weir keeps `1e3` as read while unchanged, as jq 1.7 keeps literals (jq 1.7 writes `1E+3`, jq 1.6 `1000`)"),
    ("with_entries(.value |= tostring)", Some(2), "input number text: as above"),
    ("tojson | length", Some(2), "input number text: as above"),
    ("tostring | length", Some(2), "input number text: as above"),
    ("@text | length", Some(2), "input number text: as above"),
    ("[.[] | try tostring catch \"x\"]", Some(2), "input number text: as above"),
    ("with_entries(.value |= tostring)", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
    ("tojson | length", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
    ("tostring | length", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
    ("@text | length", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
    ("[.[] | try tostring catch \"x\"]", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
    ("[.tiny, .neg, .exp, .latency_ms, .epoch] | map(tojson)", Some(2), "input number text: as above"),
    ("[.tiny, .neg, .exp, .latency_ms, .epoch] | map(tojson)", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
    ("\"\\(.tiny) \\(.neg) \\(.exp)\"", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
    ("[.tiny, .neg, 1e17] | join(\",\")", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
    ("[.tiny, .neg] | @csv", Some(3), "input number text: as above (the record has -0.0, 1e-7 and 1.5e300)"),
];

/// The expressions, by theme.
fn expressions() -> Vec<String> {
    let mut e: Vec<&str> = vec![
        // paths and indexing
        ".", ".id", ".user", ".nested.a.b.c", ".nested.a.b.c[2].d", ".nested?.a", ".tags[0]",
        ".tags[-1]", ".tags[1:]", ".tags[:1]", ".arr[2:4]", ".arr[-2:]", ".user[0:3]?",
        ".[\"user\"]", ".kv | .[\"k2\"]", ".missing", ".missing.deeper", ".tags[5]", ".deep[0][0][0]",
        ".arr[3][0]", "[.arr[]?]", "[.tags[]?]", "[.obj[]]?", ".obj | keys", ".obj | keys_unsorted",
        "[paths]", "[paths(type == \"number\")]", "[leaf_paths]", "[..] | length",
        "[.. | numbers]", "[.. | strings]", "getpath([\"nested\",\"a\",\"b\"])",
        "getpath([\"obj\",\"c\",\"x\"])", "[getpath([\"a\",\"b\"], [\"id\"])]",
        "path(.a.b)", "[path(..)] | length", "to_entries", "with_entries(.value |= tostring)",
        "has(\"user\")", "has(\"nope\")", ".tags | has(0)?", "[.[] | type]", "map_values(type)",
        "del(.user)", "del(.tags[0])?", "del(.obj.a, .obj.b)", "delpaths([[\"id\"], [\"user\"]])",
        "setpath([\"x\", \"y\"]; 1)", "setpath([\"tags\", 3]; 1)?", ".obj | to_entries | from_entries",
        "{user, id}", "{(.user // \"none\" | tostring): .id}", "{a: .id, b: [.tags[]?]}",
        "[.id, .user] | @json", ".obj.c.x |= . + [1]", ".id += 10", ".tags |= (. // [] | length)",
        ".obj // \"dflt\"", ".missing // .id", "[.[] | select(type == \"string\")] | length",
        "[tostream] | length", "fromstream(tostream)", "[tostream] | .[0]",
        "reduce paths as $p (0; . + 1)", "[splits(\", *\")]?",
        // arithmetic and numbers
        ".id + 1", ".id - 0.5", ".id * 3", ".id / 4", ".id % 3", "-.id", ".bytes / 1024",
        ".latency_ms * 2", ".bytes + .latency_ms", "(.bytes // 0) | floor", ".latency_ms | ceil?",
        ".latency_ms | round?", ".bytes | fabs?", ".bytes | sqrt?", ".id | pow(.; 2)",
        ".id | log | floor", ".id | exp | floor", "[.ints[]?] | add", "[.ints[]?] | min",
        "[.ints[]?] | max", "[.floats[]?] | add", ".tiny * 1e7", ".exp * 10", ".neg",
        ".num_str | tonumber?", ".s | tonumber?", ".id | tostring", ".latency_ms | tostring",
        "1 / 3", "10 / 2", "7 % 2", "-7 % 3", "5 % -3", "[1, 2] - [2]", "{a: 1} + {b: 2}",
        "{a: {b: 1}} * {a: {c: 2}}", "\"ab\" * 3", "null + 1", "1 + null", "[] + null",
        ".id / 0", ".id % 0", "infinite | floor?", "[nan] | length", "nan < 1", "nan > nan",
        "[nan, 1, null] | sort", "(.id | . * .) as $sq | $sq - .id", "[range(5)]",
        "[range(2; 10; 3)]", "[range(10; 0; -4)]", "[range(0; 1; 0.25)]", "[limit(3; range(100))]",
        "first(range(10; 20))", "[.ints[]?] | sort", "[.ints[]?] | sort | reverse",
        "[.ints[]?] | unique", "[.ints[]?] | min_by(-.)", "[.ints[]?] | max_by(-.)",
        "[.ints[]?] | group_by(. % 2)", "[.ints[]?] | sort_by(-.)", "[.ints[]?] | unique_by(. % 3)",
        "[.ints[]?] | any(. > 8)", "[.ints[]?] | all(. > 0)", "[.ints[]?] | index(9)", "[.ints[]?] | sort | bsearch(9)", "(.user * 2)?",
        "[.ints[]?] | indices(1)", "[.ints[]?] | bsearch(9)", "[1,2,3] | bsearch(2)",
        "[.ints[]?] | flatten", "[[1,[2]],[[3]]] | flatten(1)", "[.ints[]?] | length",
        "[.ints[]?] | contains([1])", "[.ints[]?] | inside([1,3,5,7,9,11])",
        "[.ints[]?] | transpose?", "[[1,2],[3]] | transpose", "[[1,2],[3,4]] | combinations",
        "[[1,2],[3,4]] | [combinations]", "[0, 1] | [combinations(2)]", "[.ints[]?] | implode",
        "[.mixed[]?] | sort", "[.mixed[]?] | map(type)", ".mixed | tojson?", "[.bools[]? | not]",
        "[.arr[]? | numbers]", "[.arr[]? | iterables]", "[.arr[]? | scalars]", "[.arr[]? | values]",
        // strings
        ".user | ascii_downcase?", ".user | ascii_upcase?", ".user | length?",
        ".user | utf8bytelength?", ".user | explode?", ".user | explode? | implode",
        ".msg | length?", ".msg | @json?", ".msg | tojson?", ".msg | @text?", ".msg | @html?",
        ".msg | @uri?", ".msg | @sh?", ".msg | @base64?", ".msg | @base64? | @base64d",
        "[.id, .user, null, true] | @csv",
        "[.id, .user, null, true] | @tsv", "[.msg] | @tsv?", "[.msg] | @csv?", "@csv \"x,\\(.id)\"",
        ".path | split(\"/\")?", ".csv | split(\",\")?", ".csv | split(\"[,;]\"; null)?",
        ".path | ltrimstr(\"/\")?", ".path | rtrimstr(\"/d\")?", ".path | startswith(\"/a\")?",
        ".path | endswith(\"js\")?", ".tags | join(\"-\")?", ".tags | join(\", \")?",
        ".ws | ltrimstr(\" \")?", ".upper | ascii_downcase?", ".text | test(\"quick\")?",
        ".text | test(\"QUICK\"; \"i\")?", ".text | [match(\"o\"; \"g\") | .offset]?",
        ".text | capture(\"(?<first>\\\\w+) (?<second>\\\\w+)\")?", ".text | [scan(\"\\\\b\\\\w{5}\\\\b\")]?",
        ".text | sub(\"quick\"; \"slow\")?", ".text | gsub(\"o\"; \"0\")?", ".text | gsub(\"(?<c>[aeiou])\"; \"<\\(.c)>\")?",
        ".text | [splits(\" +\")] | length?", ".path | test(\"^/a\")?", ".user | test(\"\\\\p{L}+\")?",
        ".text | ascii_downcase | split(\" \") | map(length)?", ".user | index(\"l\")?",
        ".user | rindex(\"l\")?", ".user | indices(\"a\")?", "\"a,b, c\" | split(\", \")",
        "\"\\(.id)-\\(.user)\"", "\"id=\\(.id) tags=\\(.tags)\"", ".user + \"!\"?",
        ".user * 2?", "\"x\" | . * 0", ".tags | tostring?", "[.tags[]?] | tojson | fromjson",
        ".num_str | tonumber? | . * 2", "(.user // \"\") | ascii_downcase | explode | map(. + 1) | implode",
        ".msg | fromjson?", "\"[1,2]\" | fromjson", "\"{\\\"a\\\":1}\" | fromjson | .a",
        "INDEX(.id)?", "[{id: 1, v: \"a\"}, {id: 2, v: \"b\"}] | INDEX(.id)", "INDEX(.tags[]?; .)",
        "[{id: 1}] | JOIN({\"1\": \"one\"}; .id | tostring)", "[.tags[]?] | format(\"csv\")",
        "[.tags[]?] | format(\"tsv\")", ".user | format(\"json\")", "[1] | format(\"nope\")",
        "5 | lgamma_r", "-0.5 | lgamma_r", "[{a: [1]} | recurse_down]", ".user | ltrimstr(\"al\")?", "\"VGhlIHF1aWNr\" | @base64d", "1.5 | todate", "-1.5 | todate",
        "{a: 1, b: 2, c: 3} | delpaths([[\"a\"]]) | keys_unsorted", "{a: 1, b: 2, c: 3} | del(.a, .c)",
        "[nth(5; 1, 2)]", "[last(empty)]", "[last(.tags[]?)]", "-0.0 == 0", "[1, nan] | min",
        "[.[] | numbers] | sort", "[nan, -1] | max", "[nan] | unique", "[1, nan, 0] | sort_by(.)",
        // dates
        ".epoch | todate?", ".epoch | floor | todate?", ".ts | fromdate?", ".ts | fromdateiso8601?",
        ".epoch | gmtime? | todate?", ".epoch | floor | gmtime?", ".epoch | floor | gmtime? | mktime",
        ".ts | strptime(\"%Y-%m-%dT%H:%M:%SZ\")? | mktime", ".epoch | floor | strftime(\"%Y/%m/%d %H:%M\")?",
        ".epoch | floor | strftime(\"%A, %B %d, %Y\")?", ".ts | fromdate? | . + 86400 | todate",
        ".epoch | floor | todate? | fromdate", "0 | todate", "0 | gmtime | todate",
        "[.epoch?, 0] | map(floor? | todate?)",
        // control flow, reduce, foreach, variables, functions
        "if .status >= 500 then \"server\" elif .status >= 400 then \"client\" else \"ok\" end?",
        "if .user then .user else \"anon\" end", "[.[] | numbers] | length",
        "reduce .tags[]? as $t ({}; .[$t] += 1)", "reduce (.ints[]?) as $x (0; . + $x)",
        "[foreach (.ints[]?) as $x (0; . + $x)]", "[foreach (.ints[]?) as $x (0; . + $x; [$x, .])]",
        "[limit(2; .ints[]?)]", "first(.tags[]?)", "[.tags[]?] | first?", "[.tags[]?] | last?",
        "nth(1; .ints[]?)", "until(. > 100; . * 2)?", "[.id | while(. < 40; . * 2)]",
        "[.id | recurse(if . < 20 then . * 3 else empty end)]",
        "[limit(5; .id | repeat(. + 1))]", "def inc: . + 1; .id | inc | inc",
        "def f(g): [g, g]; f(.id)", "def fac: if . <= 1 then 1 else . * (. - 1 | fac) end; .id | fac",
        ". as {id: $i, user: $u} | [$i, $u]",
        ".tags as [$first] | $first", "[.ints[]?] as [$a, $b] | $a + $b",
        "label $out | foreach (.ints[]?) as $x (0; . + $x; if . > 10 then ., break $out else empty end)",
        "try error(\"boom\") catch .", "try (.user | ascii_downcase) catch \"not a string\"",
        "[.[] | try tostring catch \"x\"]", "(.user | ascii_downcase)?", "error(\"x\")?",
        "try error({code: 1}) catch .code", "[.tags[]? | select(. == \"a\")]",
        "isempty(.tags[]?)", "[.tags[]?] | IN([\"a\", \"b\"]; [\"a\", \"b\"])", ".id | IN(1, 2, 3)",
        "[.ints[]? | select(IN(1, 9))]", "any(.tags[]?; . == \"b\")", "all(.tags[]?; . == \"a\")",
        "[.. | select(type == \"object\") | keys[]] | unique", "walk(if type == \"number\" then . + 1 else . end)",
        "[.obj | .. | numbers]", "to_entries | map(select(.value | type == \"number\")) | from_entries",
        "with_entries(select(.key | startswith(\"t\")))", "[splits(\"a\")]?", "env | type",
        "$ENV | type", "[.id, .user] | @sh?",
        "(.id | tostring) as $s | {($s): .user}", "[.tags[]?] | to_entries", "[.kv[]] | join(\",\")",
        ".kv | with_entries(.key |= ascii_upcase)", ".kv | map_values(. + \"!\")", ".kv | [.[]]",
        ".kv | length", ".obj | add?", ".obj | any", "[.obj[] ] | all", "getpath([\"kv\",\"k1\"])",
        "[paths(..)] | length", "tojson | length", "tostring | length", "@text | length",
        ". == .", ". != {}", "[.id, .status] | sort", "{} | .a.b.c = 1", "[] | .[2] = 1",
        "null | [.[]?]", "null | length", "null | keys?", "null | not", "true and (.id > 3)",
        "false or (.id < 3)", ".user == null", "[.id] | inside([1,2,3,4])", "splits(\"x\")?",
        "{} | has(\"a\")", "[[]] | add", "[{}, {a: 1}] | add", "[\"a\", \"b\"] | add",
        "[] | add", "[1, [2]] | tostream", "[\"a\", 1, null] | tostring", "{a: [1, {b: null}]} | tojson",
        "[.[] | length?]", "getpath([\"tags\", 0, \"x\"])?", "try getpath([\"tags\", \"x\"]) catch \"err\"",
        "[\"b\", \"a\", \"c\"] | sort_by(.) | reverse", "{b: 1, a: 2} | keys", "{b: 1, a: 2} | to_entries | map(.key)",
        "{b: 1, a: 2} | del(.b) | keys_unsorted", "{a: 1, b: 2, c: 3} | delpaths([[\"a\"], [\"c\"]])",
        "[range(10)] | .[2:5] = [\"x\"]", "[range(10)] | del(.[2, 4, 6])", 
        "[range(5)] | .[-1:]", "[range(5)] | .[:-2]", "\"abcdef\" | .[2:4]", "\"日本語\" | .[1:]",
        "[3, 1, 2] | sort | bsearch(2)", "[3, 1, 2] | bsearch(4)", "null | index(1)",
        "null | bsearch(1)", "null | [combinations]", "5 | gamma | . * 1000 | floor",
        "[10, 2, 5] | [min, max]", "[] | min", "[{a: 2}, {a: 1}] | min_by(.a)",
        "[\"a\", \"ab\", \"abc\"] | map(length) | add / length", "splits(\", \")?",
        "[limit(0; 1, 2)]", "[first(empty)]", "[.[] | scalars] | length",
        "ltrimstr(\"x\")", "\"VGhlIHF1aWNr\" | @base64d", "1.5 | todate", "-1.5 | todate",
        "{a: 1, b: 2, c: 3} | delpaths([[\"a\"]]) | keys_unsorted", "{a: 1, b: 2, c: 3} | del(.a, .c)",
        "[nth(5; 1, 2)]", "[last(empty)]", "[last(.tags[]?)]", "-0.0 == 0", "[1, nan] | min",
        "[.[] | numbers] | sort", "[nan, -1] | max", "[nan] | unique", "[1, nan, 0] | sort_by(.)",
        // number text (jq's `%.17g`-like layout: `1e-07`, `1e+17`, `-0`), natively and through
        // jaq (`as $x`, `reduce`), in tostring, tojson, interpolation, join and @csv
        "[-0.0, 1e-7, 1e-5, 0.0001, 1e15 * 1, 1e16 * 1, 1e17, 12345678901234567890 * 1, 1.5e300 * 1, 1e-300, 5e-324, 0.1 + 0.2, 1 / 3, infinite, -infinite] | tostring",
        "[.tiny, .neg, .exp, .latency_ms, .epoch] | map(tojson)", "-0 | tostring", "0 | -. | tostring",
        ".tiny * 1 | tostring", ".neg * 1 | tojson", "\"\\(.tiny) \\(.neg) \\(.exp)\"", "[.tiny, .neg, 1e17] | join(\",\")",
        "[.tiny, .neg] | @csv", "(-0.0) as $z | [$z, ($z | tojson), \"\\($z)\", ([$z, 1e-7] | join(\" \")), ([$z] | @csv)]",
        "reduce (1e-7, -0.0, 1e17) as $x ([]; . + [$x]) | tostring", "1e-7 as $x | {a: $x} | tojson",
        // `?` binds to the term before it (`.user * (2?)`), where jq 1.6 agrees
        ".user * .id?", ".id * 2?", "-.id?", "[.ints[]? * 2?]", "(.user * 2)?", "[.tags[]? + \"!\"?]",
        ".user * 2? // \"d\"", "try (.user * 2?) catch \"c\"", "[.ints[]? | . * 2?]",
        // fractional indices and slice bounds (start rounded down, end up), natively and in jaq
        "[range(5)] | [.[1.2:3.7], .[-1.5:-0.5], .[2.5:1.5], .[:1.5], .[-0.5:], .[:-0.5], .[-9:1.5]]",
        "[range(5)] | 1.2 as $a | [.[$a:3.7], .[-1.5:-0.5], .[2.5:1.5], .[:-0.5]]",
        "\"abcdef\" | [.[1.2:3.7], .[2.5:1.5]]", "1.5 as $a | \"abcdef\" | .[$a:]",
        "[range(5)] | .[1.7] = 9", "[range(5)] | .[-1.7] = 9", "[range(5)] | 1.7 as $i | .[$i] = 9",
        "[range(5)] | del(.[1.7], .[-1.7])", "[range(5)] | 1.7 as $i | del(.[$i])",
        "[range(5)] | setpath([1.7]; 9)", "[range(5)] | delpaths([[1.7]])", "[range(10)] | .[1.5:3.5] = [\"x\"]",
        ".ints | .[1.5:]?", "[range(5)] | has(1.7)",
        "tostream | select(length == 2) | .[0] | join(\".\")?",
        // `*` and `*=` where jaq runs them (in `reduce`, `def`): weir's `__weir_mul`, jq's order
        "reduce 1 as $x (.; [(1, 2) * (3, 4)])", "reduce (.ints[]?) as $x (1; . * $x)",
        "reduce 1 as $x (.; [try (.user * (0, 2)) catch \"e\", try (.obj * {c: {y: 1}}) catch \"e\"])",
        "def m: . * 2; [.ints[]? | m]", "reduce 1 as $x (.; .id *= (2, 3))",
        "reduce 1 as $x (.; [.s * .id?, .id * .s?])",
        "reduce 1 as $x (.; [try (.user * (2.5, 0.5, -1, .latency_ms)) catch \"e\"])",
        "[foreach (.ints[]?, 5) as $x ([]; . + [$x]; length)]",
        // an update with several outputs, or none: `reduce` keeps the last (null for none),
        // `foreach` emits each and goes on from the last
        "[reduce (.ints[]?) as $x (0; . + $x, . * 10)]", "[reduce (1, 2) as $x (.id; empty)]",
        "[reduce (.ints[]?) as $x (0; if $x == 3 then empty else . + $x end)]",
        "[foreach (.ints[]?) as $x (0; . + $x, . * 10)]", "[foreach (.ints[]?) as $x (0; . + $x, -.; [$x, .])]",
        "[foreach (1, 2, 3) as $x (.id; if $x == 2 then empty else . + $x end)]",
        "[foreach (.tags[]?) as $t ({}; .[$t] += 1, {})]",
    ];
    e.extend(DIFFERENCES.iter().map(|(x, _, _)| *x));
    let mut seen = std::collections::BTreeSet::new();
    e.into_iter()
        .filter(|x| seen.insert(*x))
        .map(String::from)
        .collect()
}

/// jq compares numbers as doubles; weir keeps integers. Compare the way jq does.
fn norm(v: &J) -> J {
    match v {
        J::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            serde_json::Number::from_f64(f).map_or(J::Null, J::Number)
        }
        J::Array(a) => J::Array(a.iter().map(norm).collect()),
        J::Object(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
        other => other.clone(),
    }
}

/// One expression's result on one record: its outputs, or `None` for an error.
type Res = Option<J>;

/// Runs `exprs` through jq on every record: results by expression, then record. One jq
/// process for all of them (each expression in its own `try`), or one per expression if jq
/// cannot compile the whole (then an expression jq cannot compile is `None`).
fn run_jq(exprs: &[String], records: &str) -> Vec<Option<Vec<Res>>> {
    let jq = |prog: &str| -> Option<Vec<J>> {
        let out = Command::new("jq")
            .arg("-c")
            .arg(prog)
            .arg(records)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Some(
            text.lines()
                .map(|l| serde_json::from_str(l).expect("jq prints JSON"))
                .collect(),
        )
    };
    let wrap = |e: &str| format!("(try {{out: [{e}]}} catch {{error: true}})");
    let res = |v: &J| v.get("out").map(norm);
    let all: Vec<String> = exprs.iter().map(|e| wrap(e)).collect();
    if let Some(lines) = jq(&format!("[{}]", all.join(",\n"))) {
        return (0..exprs.len())
            .map(|k| Some(lines.iter().map(|l| res(&l[k])).collect()))
            .collect();
    }
    exprs
        .iter()
        .map(|e| Some(jq(&wrap(e))?.iter().map(res).collect()))
        .collect()
}

/// Runs every expression through weir, `per_run` at a time (one `map` node each), and
/// returns results by (expression index, record index).
fn run_weir(p: &Proj, exprs: &[String], per_run: usize) -> BTreeMap<(usize, usize), Res> {
    let mut all = BTreeMap::new();
    for (batch, chunk) in exprs.chunks(per_run).enumerate() {
        let base = batch * per_run;
        let mut toml = format!(
            "name = \"conf{batch}\"\n[checkpoint]\nevery = \"off\"\n\
             [sources.in]\ntype = \"file\"\npath = \"records.jsonl\"\nformat = \"jsonl\"\n\
             on_error = \"dead_letter\"\ndead_letter = \"dl{batch}.jsonl\"\n"
        );
        let mut names = Vec::new();
        for (i, e) in chunk.iter().enumerate() {
            let k = base + i;
            let expr = format!("{{k: {k}, out: [{e}]}}");
            toml += &format!(
                "[transforms.e{k}]\ntype = \"map\"\ninputs = [\"in\"]\nexpr = {}\n",
                serde_json::to_string(&expr).unwrap()
            );
            names.push(format!("\"e{k}\""));
        }
        toml += &format!(
            "[sinks.out]\ntype = \"file\"\ninputs = [{}]\npath = \"out{batch}.jsonl\"\n",
            names.join(", ")
        );
        let pipe = format!("conf{batch}.toml");
        p.write(&pipe, &toml);
        p.weir(&["run", &pipe]).expect_no_panic().expect_code(0);
        // Each map node sees the records in order, so the n-th output of node k is record n.
        let mut next: BTreeMap<usize, usize> = BTreeMap::new();
        let mut errs: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        if p.exists(&format!("dl{batch}.jsonl")) {
            for l in p.read_str(&format!("dl{batch}.jsonl")).lines() {
                let d: J = serde_json::from_str(l).unwrap();
                let k: usize = d["node"].as_str().unwrap()[1..].parse().unwrap();
                let line = d["line"].as_u64().unwrap() as usize - 1;
                errs.entry(k).or_default().push(line);
            }
        }
        for k in base..base + chunk.len() {
            for &line in errs.get(&k).into_iter().flatten() {
                all.insert((k, line), None);
            }
        }
        for l in p.read_str(&format!("out{batch}.jsonl")).lines() {
            let v: J = serde_json::from_str(l).unwrap();
            let k = v["k"].as_u64().unwrap() as usize;
            let n = next.entry(k).or_insert(0);
            while all.contains_key(&(k, *n)) {
                *n += 1;
            }
            all.insert((k, *n), Some(norm(&v["out"])));
            *n += 1;
        }
    }
    all
}

#[test]
fn weir_agrees_with_jq() {
    if Command::new("jq").arg("--version").output().is_err() {
        panic!("jq is not installed (`.ci/run` installs it)");
    }
    let p = Proj::new();
    p.write("records.jsonl", RECORDS.join("\n") + "\n");
    let records = p.s("records.jsonl");
    let exprs = expressions();
    assert!(exprs.len() >= 300, "{} expressions", exprs.len());
    let weir = run_weir(&p, &exprs, 80);
    let (mut compared, mut failures) = (0, Vec::new());
    let jq_results = run_jq(&exprs, &records);
    for (k, e) in exprs.iter().enumerate() {
        let differs = |n: usize| {
            DIFFERENCES.iter().any(|(d, rec, _)| {
                *d == e.as_str()
                    && rec.is_none_or(|id| RECORDS[n].starts_with(&format!("{{\"id\":{id},")))
            })
        };
        if DIFFERENCES
            .iter()
            .any(|(d, r, _)| *d == e.as_str() && r.is_none())
        {
            continue;
        }
        let Some(jq) = &jq_results[k] else {
            failures.push(format!("{e}: jq could not run it"));
            continue;
        };
        for (n, want) in jq.iter().enumerate() {
            if differs(n) {
                continue;
            }
            let got = weir.get(&(k, n)).cloned().flatten();
            let got_err = !weir.contains_key(&(k, n)) || weir[&(k, n)].is_none();
            compared += 1;
            let same = match (want, got_err) {
                (None, true) => true,
                (Some(w), false) => got.as_ref() == Some(w),
                _ => false,
            };
            if !same {
                let show = |r: &Res| r.as_ref().map_or("error".to_string(), |v| v.to_string());
                failures.push(format!(
                    "{e}\n    on {}\n    jq:   {}\n    weir: {}",
                    RECORDS[n],
                    show(want),
                    if got_err { "error".into() } else { show(&got) }
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} (expression, record) pairs differ from jq:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
