//! Tests of the JSON lines scanner, and a proptest holding it to the general parser on
//! nested, escaped, non-ASCII and mangled lines.

use super::*;
use crate::value::{Lens, Projector};
use proptest::prelude::*;

fn same_as_general(line: &[u8], fields: Option<&[Str]>) {
    same_projected(line, fields.map(Projector::new));
}

/// Nested paths: `"a.b"` is `.a.b`.
fn same_as_general_paths(line: &[u8], paths: &[&str]) {
    let paths: Vec<Vec<Str>> = paths
        .iter()
        .map(|p| p.split('.').map(Str::new).collect())
        .collect();
    same_projected(line, Some(Projector::new(&paths)));
}

/// `scan_paths` against the general parser: when it reads a line, the line is valid JSON and
/// every slot holds what the path gives on the whole record (unset for null or absent), with
/// the same kind of number; it gives up where the path would be an error (through a value
/// that is neither an object nor null), so it never takes one.
fn same_paths_as_general(line: &[u8], paths: &[&str]) {
    let paths: Vec<Vec<Str>> = paths
        .iter()
        .map(|p| p.split('.').map(Str::new).collect())
        .collect();
    let tree = PathTree::new(&paths).expect("no path is a prefix of another");
    let mut slots = vec![None; paths.len()];
    let shown = String::from_utf8_lossy(line);
    if scan_paths(line, &tree, &mut slots).is_none() {
        return;
    }
    let whole = Value::from_json(line)
        .unwrap_or_else(|e| panic!("scan_paths took a line sonic-rs refuses: {shown}: {e}"));
    for (path, slot) in paths.iter().zip(&slots) {
        let mut v = &whole;
        for k in path {
            v = match v {
                Value::Object(m) => m.get(k).unwrap_or(&Value::Null),
                Value::Null => &Value::Null,
                other => panic!("scan_paths read {path:?} through {other:?} in {shown}"),
            };
        }
        let got = slot.map_or(Value::Null, Scalar::to_value);
        assert_eq!(
            (
                got.to_json_string(),
                got.type_name(),
                matches!(got, Value::Int(_))
            ),
            (
                v.to_json_string(),
                v.type_name(),
                matches!(v, Value::Int(_))
            ),
            "{path:?} of {shown}"
        );
    }
}

/// One pass against `parse_flat` (see `marks`): with the projection of `paths` and the
/// top-level `fields` among them read as scalars, `scan_marks` takes a line only if
/// `parse_flat` does, and then `build_marked` gives the very record `parse_flat` builds (keys in
/// the same order, numbers of the same kind) and each field's slot holds its value.
fn same_marked_as_flat(line: &[u8], paths: &[&str], fields: &[&str]) {
    let paths: Vec<Vec<Str>> = paths
        .iter()
        .map(|p| p.split('.').map(Str::new).collect())
        .collect();
    let p = Projector::new(&paths);
    let tree = MarkTree::new(p.tree()).expect("few names");
    let mut slot_of = vec![None; tree.names().len()];
    for (k, f) in fields.iter().enumerate() {
        let n = tree
            .names()
            .iter()
            .position(|x| x == f)
            .expect("a top-level name");
        assert!(tree.whole(n), "{f} is wanted whole");
        slot_of[n] = Some(k);
    }
    let shown = String::from_utf8_lossy(line);
    let flat = parse_flat(line, Some(p.tree()));
    let mut marks = Marks::default();
    let mut slots = vec![None; fields.len()];
    let Some(text) = scan_marks(line, &tree, &slot_of, &mut marks, &mut slots) else {
        return;
    };
    let flat =
        flat.unwrap_or_else(|| panic!("scan_marks took a line parse_flat does not: {shown}"));
    let built = build_marked(text, &tree, &marks)
        .unwrap_or_else(|| panic!("scan_marks took a line it cannot build: {shown}"));
    assert_eq!(built, flat, "one pass and parse_flat differ on {shown}");
    // Debug shows the key order and each number's kind.
    assert_eq!(
        format!("{built:?}"),
        format!("{flat:?}"),
        "key order or kinds differ on {shown}"
    );
    for (f, slot) in fields.iter().zip(&slots) {
        let want = flat.as_object().and_then(|m| m.get(f)).cloned();
        assert_eq!(slot.map(Scalar::to_value), want, "{f} of {shown}");
    }
}

/// The one pass takes lines whose wanted objects hold members of every kind, unwanted and
/// wanted, with and without whitespace, escaped keys included, and builds what `parse_flat`
/// builds; it gives up only where a wanted key repeats or a field is not a scalar.
#[test]
fn one_pass_reads_every_kind_of_member() {
    let taken = [
        r#"{"k":{"n":1,"s":"x","e":"a\"b","o":{"x":[1,{"y":2}]},"a":[],"t":true,"z":null,"w":{"v":"1.50","u":-0}},"f":400}"#,
        r#"{ "f" : 1 , "k" : { "w" : { "v" : 2 , "q" : 3 } , "n" : "x" } , "m" : "é" }"#,
        r#"{"k":{"w":7,"\u0077x":1},"f":"a"}"#,
        r#"{"k":{"\u0077":{"v":"é\n"}},"f":null}"#,
        r#"{"k":"not an object","f":false}"#,
        r#"{"k":{},"f":1.5}"#,
        r#"{"f":2,"m":{"k":{"w":1}}}"#,
    ];
    let refused = [
        r#"{"k":{"n":1,"n":2},"f":1}"#,
        r#"{"k":{"w":{"v":1,"v":2}},"f":1}"#,
        r#"{"f":1,"f":2}"#,
        r#"{"k":{},"f":[1]}"#,
        r#"{"k":{},"f":"a\"b"}"#,
    ];
    let p = Projector::new(&[
        vec![Str::new("k"), Str::new("w"), Str::new("v")],
        vec![Str::new("k"), Str::new("n")],
        vec![Str::new("f")],
    ]);
    let tree = MarkTree::new(p.tree()).unwrap();
    let mut slot_of = vec![None; tree.names().len()];
    slot_of[tree.names().iter().position(|x| x == "f").unwrap()] = Some(0);
    for (line, take) in taken
        .iter()
        .map(|l| (l, true))
        .chain(refused.iter().map(|l| (l, false)))
    {
        let mut marks = Marks::default();
        let mut slots = [None];
        let text = scan_marks(line.as_bytes(), &tree, &slot_of, &mut marks, &mut slots);
        let flat = parse_flat(line.as_bytes(), Some(p.tree())).unwrap();
        match text {
            Some(text) if take => {
                let built = build_marked(text, &tree, &marks).unwrap();
                assert_eq!(format!("{built:?}"), format!("{flat:?}"), "{line}");
                same_marked_as_flat(line.as_bytes(), &["k.w.v", "k.n", "f"], &["f"]);
            }
            None if !take => {}
            _ => panic!("{line}: taken {}, wanted {take}", text.is_some()),
        }
    }
}

fn same_projected(line: &[u8], p: Option<Projector>) {
    let shown = String::from_utf8_lossy(line);
    if let Some(fast) = parse_flat(line, p.as_ref().map(Projector::tree)) {
        let slow = match &p {
            Some(p) => p.parse(line),
            None => Value::from_json(line),
        }
        .unwrap_or_else(|e| panic!("fast path took a line sonic-rs refuses: {shown}: {e}"));
        assert_eq!(
            fast.to_json_string(),
            slow.to_json_string(),
            "fast and general paths differ on {shown}"
        );
        // Int and Float print alike for integral values; the kind must match too.
        let kinds = |v: &Value| -> Vec<&'static str> {
            v.as_object()
                .map(|m| {
                    m.values()
                        .map(|x| match x {
                            Value::Int(_) => "int",
                            Value::Float(_, None) => "float",
                            Value::Float(_, Some(_)) => "float with its text",
                            other => other.type_name(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(kinds(&fast), kinds(&slow), "number kinds differ on {shown}");
    }
}

#[test]
fn handles_the_common_line_and_gives_up_on_the_rest() {
    let line =
        br#"{"ts":"2026-11-01T00:00:00Z","status":200,"latency_ms":118.5,"ok":true,"x":null}"#;
    let v = parse_flat(line, None).expect("a flat line takes the fast path");
    assert_eq!(v.to_json_string(), std::str::from_utf8(line).unwrap());
    let want = [Str::new("status"), Str::new("ts")];
    let v = parse_flat(line, Some(Projector::new(&want).tree())).unwrap();
    assert_eq!(
        v.to_json_string(),
        r#"{"ts":"2026-11-01T00:00:00Z","status":200}"#
    );
    assert_eq!(parse_flat(br#"{ }"#, None).unwrap().to_json_string(), "{}");
    // Numbers keep their text when printing would not give it back.
    let line = r#"{"a":-0,"b":1234567890123456789,"c":415.50,"d":1e3,"e":123456789012345678901234567890,"f":0.00001,"g":2.5,"h":-0.0}"#;
    let v = parse_flat(line.as_bytes(), None).unwrap();
    assert_eq!(v.to_json_string(), line);
    assert!(matches!(v.field("g"), Some(Value::Float(_, None))));
    assert!(matches!(v.field("c"), Some(Value::Float(_, Some(_)))));
    // Escapes in values are decoded here; in top-level keys they leave the fast path.
    let v = parse_flat(br#"{"a":"x\"y\\z\/\n\u00e9\ud83d\ude00","b":"\t"}"#, None).unwrap();
    assert_eq!(v.to_json_string(), r#"{"a":"x\"y\\z/\né😀","b":"\t"}"#);
    let v = parse_flat(br#"{"a":"\n","b":1}"#, Some(Projector::new(&want).tree()));
    assert_eq!(v.unwrap().to_json_string(), r#"{}"#);
    for other in [
        &br#"{"a\n":1}"#[..],
        br#"{"a":"x\"}"#,
        br#"{"a\"":1}"#,
        br#"{"a":"\ud800"}"#,
        br#"{"a":"\udc00\ud800"}"#,
        br#"{"a":"\ud800\u0041"}"#,
        br#"{"a":"\x"}"#,
        br#"{"a":"\u12"}"#,
        br#"{"a":"\u12g4"}"#,
        br#"{"a":[1,]}"#,
        br#"{"a":[1 2]}"#,
        br#"{"a":{"b"}}"#,
        br#"{"a":{"b":1,}}"#,
        br#"{"a":{1:2}}"#,
        br#"{"a":[}"#,
        br#"{"a":{]}"#,
        br#"{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
        br#"{"a":1e999}"#,
        br#"{"a":01}"#,
        br#"{"a":1.}"#,
        br#"{"a":.5}"#,
        br#"{"a":1e}"#,
        br#"{"a":tru}"#,
        br#"{"a":1,}"#,
        br#"{"a":1} x"#,
        br#"{"a" 1}"#,
        b"{\"a\":\"\x01\"}",
        b"{\"a\":\"\xff\"}",
        br#"{"a":1"#,
        br#"[1,2]"#,
        br#""s""#,
        b"",
    ] {
        assert!(
            parse_flat(other, None).is_none(),
            "{}",
            String::from_utf8_lossy(other)
        );
    }
}

/// Nested values and escaped strings are skipped (validated) when not wanted, and built,
/// escapes decoded, when wanted.
#[test]
fn nested_values_and_escapes_are_skipped_or_built() {
    let line = br#"{"k":{"labels":{"app":"x","t":[1,2.5,true,null,"\u00e9\n"]},"e":{}},"m":"a \"q\" \ud83d\ude80 \/ \t","n":[]}"#;
    let v = parse_flat(line, None).expect("nested lines take the fast path");
    assert_eq!(
        v.to_json_string(),
        Value::from_json(line).unwrap().to_json_string()
    );
    assert_eq!(
        v.field("m").and_then(Value::as_str),
        Some("a \"q\" 🚀 / \t")
    );
    let want = [Str::new("n")];
    let v = parse_flat(line, Some(Projector::new(&want).tree())).unwrap();
    assert_eq!(v.to_json_string(), r#"{"n":[]}"#);
    let want = [Str::new("k")];
    let v = parse_flat(line, Some(Projector::new(&want).tree())).unwrap();
    assert_eq!(
        v.to_json_string(),
        r#"{"k":{"labels":{"app":"x","t":[1,2.5,true,null,"é\n"]},"e":{}}}"#
    );
    // Duplicate keys inside a nested object: first position, last value.
    let v = parse_flat(br#"{"o":{"a":1,"b":2,"a":3}}"#, None).unwrap();
    assert_eq!(v.to_json_string(), r#"{"o":{"a":3,"b":2}}"#);
    // The filter's own scan skips nested values too.
    let fields = [Str::new("s")];
    let mut slots = [None];
    let line = br#"{"k":{"a":[{"s":1}]},"m":"x\"y","s":404}"#;
    assert!(scan_fields(line, &fields, &Lens::of(&fields), &mut slots).is_some());
    assert_eq!(slots[0], Some(Scalar::Int(404)));
}

/// `scan_paths` reads nested leaves without building anything, leaves a path through null
/// unset, and gives up where the path would be an error or a wanted key comes twice.
#[test]
fn scan_paths_reads_nested_leaves_and_gives_up_where_a_path_is_an_error() {
    let p = |s: &str| -> Vec<Str> { s.split('.').map(Str::new).collect() };
    let tree = PathTree::new(&[p("k.p"), p("b"), p("k.l.a")]).unwrap();
    fn scan<'a>(tree: &PathTree, line: &'a [u8]) -> Option<[Option<Scalar<'a>>; 3]> {
        let mut slots = [None; 3];
        scan_paths(line, tree, &mut slots).map(|()| slots)
    }
    let line = br#"{"b":3,"k":{"x":[1,{"p":2}],"p":"pod","l":{"a":1.5,"b":{}}},"z":"\"q\""}"#;
    assert_eq!(
        scan(&tree, line),
        Some([
            Some(Scalar::Str("pod")),
            Some(Scalar::Int(3)),
            Some(Scalar::Float(1.5))
        ])
    );
    assert_eq!(
        scan(&tree, br#"{"k":null,"b":1}"#),
        Some([None, Some(Scalar::Int(1)), None])
    );
    assert_eq!(
        scan(&tree, br#"{"k":{"\u0070":"x","l":null}}"#),
        Some([Some(Scalar::Str("x")), None, None])
    );
    for bad in [
        &br#"{"k":"s"}"#[..],
        br#"{"k":[{"p":1}]}"#,
        br#"{"k":{"p":1,"p":2}}"#,
        br#"{"k":{"l":[1]}}"#,
        br#"{"k":{"p":{"q":1}}}"#,
        br#"{"k":{},"k":{}}"#,
        br#"{"k":{"p":1},"b":tru}"#,
    ] {
        assert_eq!(scan(&tree, bad), None, "{}", String::from_utf8_lossy(bad));
    }
    assert!(PathTree::new(&[p("a"), p("a.b")]).is_none());
    assert!(PathTree::new(&[p("a.b"), p("a")]).is_none());
}

/// The proptests above check `scan_paths` only on lines it takes, so it must take most of the
/// generated valid lines (those without an escaped key) for them to prove anything.
#[test]
fn scan_paths_takes_most_generated_lines() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let members = proptest::collection::vec((key(), value()), 0..6);
    let paths: Vec<Vec<Str>> = ["a.b", "bc", "c.a.c"]
        .iter()
        .map(|p| p.split('.').map(Str::new).collect())
        .collect();
    let tree = PathTree::new(&paths).unwrap();
    let (mut lines, mut taken) = (0, 0);
    for _ in 0..400 {
        let m = members.new_tree(&mut runner).unwrap().current();
        if m.iter().any(|(k, _)| k.contains('\\')) {
            continue;
        }
        lines += 1;
        let line = object(&m, "");
        let mut slots = [None; 3];
        taken += usize::from(scan_paths(line.as_bytes(), &tree, &mut slots).is_some());
    }
    assert!(
        taken * 2 >= lines,
        "scan_paths took {taken} of {lines} lines"
    );
}

/// The string scan finds the first quote, backslash or control character wherever it falls in
/// a sixteen-byte block, an eight-byte word or the bytes after them, and no other byte stops
/// it (bytes from 0x80 up, the non-ASCII of UTF-8, included).
#[test]
fn the_string_scan_stops_at_the_first_stop_byte_at_any_position() {
    let plain: Vec<u8> = (0x20u8..=0xff)
        .filter(|&c| c != b'"' && c != b'\\')
        .cycle()
        .take(70)
        .collect();
    for stop_byte in [b'"', b'\\', 0x00, 0x0a, 0x1f] {
        for len in 0..plain.len() {
            for at in (0..=len).step_by(3).chain([len]) {
                let mut b = plain[..len].to_vec();
                if at < len {
                    b[at] = stop_byte;
                }
                for from in [0, 1, 5, 9, 17].into_iter().filter(|&f| f <= at) {
                    let s = Scan { t: "", b: &b, i: 0 };
                    assert_eq!(
                        s.stop(from),
                        at,
                        "stop {stop_byte:#x} at {at} of {len} from {from}"
                    );
                }
            }
        }
    }
}

/// Invalid UTF-8 anywhere in a key or a string is refused, whichever eight-byte word (or
/// the tail after the last whole word) of the ASCII check it falls in; valid UTF-8 there
/// is read.
#[test]
fn invalid_utf8_is_refused_at_any_position() {
    let line = br#"{"abcdefghijklmnopq":"0123456789abcdefghijk","r":"s"}"#;
    for p in 2..line.len() - 2 {
        if line[p] == b'"' || line[p] == b':' || line[p] == b',' {
            continue;
        }
        let mut bad = line.to_vec();
        bad[p] = 0xff;
        assert!(parse_flat(&bad, None).is_none(), "byte {p}");
        let mut good = line.to_vec();
        good.splice(p..p + 1, "é".bytes());
        assert!(parse_flat(&good, None).is_some(), "byte {p}");
    }
}

#[test]
fn duplicate_keys_keep_first_position_and_last_value() {
    let v = parse_flat(br#"{"a":1,"b":2,"a":3}"#, None).unwrap();
    assert_eq!(v.to_json_string(), r#"{"a":3,"b":2}"#);
    let want = [Str::new("a")];
    let v = parse_flat(
        br#"{"a":1,"b":2,"a":3}"#,
        Some(Projector::new(&want).tree()),
    )
    .unwrap();
    assert_eq!(v.to_json_string(), r#"{"a":3}"#);
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (0i64..1000).prop_map(|i| format!("-{i}")),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        any::<f64>().prop_map(|f| format!("{f}")),
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        "\"[a-z0-9 :/é\\-]{0,30}\"",
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
        // Numbers whose text printing would not give back.
        proptest::sample::select(vec![
            "-0", "-0.0", "1.0", "415.50", "1e3", "1.50e+2", "1E-7", "0.00001"
        ])
        .prop_map(str::to_string),
        "[1-9][0-9]{18,30}",
        // Strings long enough for the eight-byte scan, with a stop byte anywhere in them.
        proptest::collection::vec(
            proptest::sample::select(vec![
                "a",
                "0",
                " ",
                "é",
                "\\\\",
                "\\\"",
                "\u{1}",
                "\u{1f}",
                "\t",
                "\u{7f}",
                "\\n",
                "\\/",
                "\\u00e9",
                "\\u0000",
                "\\ud83d\\ude00",
                "\\ud800",
                "\\udc00",
                "\\x",
                "\\u12",
                "\\",
                "\\b\\f\\r\\t"
            ]),
            0..24
        )
        .prop_map(|parts| format!("\"{}\"", parts.concat())),
        // A few that must leave the fast path.
        Just("\"a\\nb\"".to_string()),
        Just("[1,{\"x\":2}]".to_string()),
        Just("{\"y\":[]}".to_string()),
    ]
}

proptest! {
    #[test]
    fn fast_path_matches_sonic(
        fields in proptest::collection::vec(("[abc]{1,2}", scalar()), 0..6),
        spaces in proptest::collection::vec("[ \t]{0,2}", 4),
    ) {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{s0}\"{k}\"{s1}:{s2}{v}{s3}", s0 = spaces[0], s1 = spaces[1], s2 = spaces[2], s3 = spaces[3]))
            .collect();
        let line = format!("{{{}}}", body.join(","));
        same_as_general(line.as_bytes(), None);
        let want = [Str::new("a"), Str::new("bc"), Str::new("zz")];
        same_as_general(line.as_bytes(), Some(&want));
    }

    #[test]
    fn mangled_lines_never_pass_when_sonic_refuses(
        line in "\\{(\"[ab]\":(1|-0|1\\.5e3|\"x\"|true|nul|\\[\\]|,|\\}| )){0,4}\\}?",
    ) {
        same_as_general(line.as_bytes(), None);
    }

    /// Real-shaped lines: nested objects and arrays, escapes of every kind, non-ASCII
    /// text, repeated keys at any depth, whitespace between tokens; whole and projected.
    /// All are valid, and the fast path must take every one (a keyless escape aside).
    #[test]
    fn nested_and_escaped_lines_match_sonic(
        members in proptest::collection::vec((key(), value()), 0..6),
        ws in "[ \t]{0,2}",
    ) {
        let line = object(&members, &ws);
        let escaped_key = members.iter().any(|(k, _)| k.contains('\\'));
        prop_assert!(escaped_key || parse_flat(line.as_bytes(), None).is_some(), "not taken: {}", line);
        same_as_general(line.as_bytes(), None);
        let want = [Str::new("a"), Str::new("bc"), Str::new("zz")];
        same_as_general(line.as_bytes(), Some(&want));
        same_as_general_paths(line.as_bytes(), &["a.b", "bc", "c.a.c", "c.a.b.a", "c.a"]);
        same_as_general_paths(line.as_bytes(), &["b.a.b", "b.c", "a.é"]);
        same_paths_as_general(line.as_bytes(), &["a.b", "bc", "c.a.c", "c.b"]);
        same_paths_as_general(line.as_bytes(), &["b.a.b", "b.c", "a.é", "zz"]);
        same_paths_as_general(line.as_bytes(), &["a", "c"]);
        same_marked_as_flat(line.as_bytes(), &["a.b", "bc", "c.a.c", "c.a.b.a"], &["bc"]);
        same_marked_as_flat(line.as_bytes(), &["b.a.b", "b.c", "a.é", "zz"], &["zz"]);
        same_marked_as_flat(line.as_bytes(), &["a", "c", "bc"], &["a", "c"]);
        same_marked_as_flat(line.as_bytes(), &["c.a", "c.b", "a"], &[]);
    }

    /// The same lines with one defect: a bad escape, a lone surrogate or a raw control
    /// character just after a quote (inside a key or a string at any depth, or outside
    /// one), or one byte deleted, replaced or inserted anywhere (structural characters,
    /// quotes, backslashes, invalid UTF-8). Whatever sonic-rs refuses, the fast path must
    /// not take, whether the defect is in a wanted field or a skipped one.
    #[test]
    fn mangled_nested_lines_never_pass_when_sonic_refuses(
        members in proptest::collection::vec((key(), value()), 1..5),
        at in any::<prop::sample::Index>(),
        edit in 0..4u8,
        byte in proptest::sample::select(b"{}[]\":,\\ u0e-.tn\xff\x01".to_vec()),
        bad in proptest::sample::select(vec![
            "\\x", "\\ud800", "\\udc00", "\\ud800\\u0041", "\\uDBFF\\uDBFF", "\\u12", "\\u12g4",
            "\\", "\u{1}", "\t", "\n", "\u{1f}",
        ]),
    ) {
        let mut line = object(&members, "").into_bytes();
        let i = at.index(line.len());
        match edit {
            0 => { line.remove(i); }
            1 => line[i] = byte,
            2 => line.insert(i, byte),
            _ => {
                let quotes: Vec<usize> = (0..line.len()).filter(|&j| line[j] == b'"').collect();
                let q = quotes[at.index(quotes.len())];
                line.splice(q + 1..q + 1, bad.bytes());
            }
        }
        same_as_general(&line, None);
        let want = [Str::new("a"), Str::new("bc")];
        same_as_general(&line, Some(&want));
        same_as_general_paths(&line, &["a.b", "c.a.c"]);
        same_paths_as_general(&line, &["a.b", "c.a.c", "bc"]);
        same_marked_as_flat(&line, &["a.b", "c.a.c", "bc"], &["bc"]);
        same_marked_as_flat(&line, &["a", "c.b"], &["a"]);
    }
}

fn object(members: &[(String, String)], ws: &str) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{ws}{k}{ws}:{ws}{v}{ws}"))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A key: mostly one of a few names (so that repeats and wanted names occur), sometimes
/// with an escape or non-ASCII.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "\"[abc]{1,2}\"",
        1 => Just("\"a\\u0062\"".to_string()),
        1 => Just("\"\\\"\"".to_string()),
        1 => Just("\"zz\"".to_string()),
        1 => Just("\"é\"".to_string()),
    ]
}

/// A valid string of plain text, non-ASCII and escapes of every kind, long enough for
/// the eight-byte scan.
fn string() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(vec![
            "a",
            "0",
            " ",
            "é",
            "日本",
            "🚀",
            "\\\\",
            "\\\"",
            "\\/",
            "\\b",
            "\\f",
            "\\n",
            "\\r",
            "\\t",
            "\\u00e9",
            "\\u0000",
            "\\uD83D\\uDE80",
            "\\udbff\\udfff",
            "\\u20AC",
            "\u{7f}",
        ]),
        0..20,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()))
}

/// Any valid JSON value whose numbers the fast path reads itself, nested up to five
/// levels (with the line's object, six).
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (-999_999i64..999_999).prop_map(|i| i.to_string()),
        "-?[1-9][0-9]{0,5}\\.[0-9]{1,4}",
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
        string(),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((key(), inner), 0..5).prop_map(|m| object(&m, "")),
        ]
    })
}
