//! Tests of the record type: jq order and equality, number text kept and printed as jq
//! prints it, parsing limits.

use super::*;

/// Computed numbers print as jq 1.6 prints them (each expected text is jq's output), and
/// read back as the same value and the same text: a checkpoint gives them back unchanged.
#[test]
fn numbers_print_as_jq_prints_them_and_read_back() {
    for (f, jq) in [
        (-0.0, "-0"),
        (0.0, "0"),
        (1e-7, "1e-07"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.0 / 3.0, "0.3333333333333333"),
        (3.0, "3"),
        (12.5, "12.5"),
        (-2.5e-3, "-0.0025"),
        (1e15, "1000000000000000"),
        (1e16, "1e+16"),
        (1e17, "1e+17"),
        (1e16 + 2.0, "10000000000000002"),
        (12345678901234567890.0, "12345678901234567000"),
        (9.223372036854776e18, "9223372036854776000"),
        (1e22, "1e+22"),
        (1.5e300, "1.5e+300"),
        (-1e100, "-1e+100"),
        (1e-300, "1e-300"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::INFINITY, "1.7976931348623157e+308"),
        (f64::NEG_INFINITY, "-1.7976931348623157e+308"),
        (f64::NAN, "null"),
    ] {
        let text = Value::float(f).to_json_string();
        assert_eq!(text, jq, "{f:e}");
        if f.is_finite() {
            let back = Value::from_json(text.as_bytes()).unwrap();
            assert_eq!(back.to_json_string(), jq, "{f:e} read back");
            assert_eq!(back.as_f64().map(f64::to_bits), Some(f.to_bits()), "{f:e}");
        }
    }
    // Inside records and arrays too, and in the projected parse.
    // (`-0.0` is input text that printing would not give back: it is kept.)
    let v = Value::from_json(br#"{"a":-0,"b":[-0.0,1e-07],"c":"x-0"}"#).unwrap();
    assert_eq!(v.to_json_string(), r#"{"a":-0,"b":[-0.0,1e-07],"c":"x-0"}"#);
    let p = Projector::new(&[Str::new("a")])
        .parse(br#"{"a":-0,"b":1}"#)
        .unwrap();
    assert_eq!(p.to_json_string(), r#"{"a":-0}"#);
}

/// Deep input is refused, and the deepest accepted input is parsed, printed, compared,
/// hashed, cloned and dropped on a thread with the 2 MiB stack of an operator thread.
#[test]
fn deep_nesting_is_bounded() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let deep = |d: usize| format!("{{\"a\":{}1{}}}", "[".repeat(d), "]".repeat(d));
            for d in [MAX_NESTING, 100_000] {
                let e = Value::from_json(deep(d).as_bytes()).unwrap_err();
                assert!(e.contains("nested deeper than 256"), "{e}");
                let p = Projector::new(&[Str::new("a")]).parse(deep(d).as_bytes());
                assert!(p.unwrap_err().contains("nested deeper"));
            }
            // Brackets inside strings do not count.
            let s = format!("{{\"a\":\"{}\\\"[\"}}", "[".repeat(1000));
            assert!(Value::from_json(s.as_bytes()).is_ok());
            let text = deep(MAX_NESTING - 1);
            let mut v = Value::Int(1);
            for _ in 0..MAX_NESTING - 1 {
                v = Value::Array(vec![v]);
            }
            let v = Value::Object([(Str::new("a"), v)].into_iter().collect());
            assert_eq!(v.to_json_string(), text);
            let v = Value::from_json(text.as_bytes()).unwrap();
            assert_eq!(v.to_json_string(), text);
            let w = v.clone();
            assert_eq!(v.cmp(&w), Ordering::Equal);
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            v.hash(&mut h);
            let _ = h.finish();
            let p = Projector::new(&[Str::new("a")])
                .parse(text.as_bytes())
                .unwrap();
            assert_eq!(p, v);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn round_trip_keeps_field_order() {
    let v = Value::from_json(br#"{"z":1,"a":[true,null,2.5],"m":{"x":"y"}}"#).unwrap();
    assert_eq!(
        v.to_json_string(),
        r#"{"z":1,"a":[true,null,2.5],"m":{"x":"y"}}"#
    );
}

#[test]
fn duplicate_keys_last_wins_in_first_position() {
    let v = Value::from_json(br#"{"a":1,"b":2,"a":3}"#).unwrap();
    assert_eq!(v.to_json_string(), r#"{"a":3,"b":2}"#);
}

#[test]
fn integral_floats_print_as_integers() {
    assert_eq!(Value::float(5.0).to_json_string(), "5");
    assert_eq!(Value::float(2.5).to_json_string(), "2.5");
    assert_eq!(Value::float(f64::NAN).to_json_string(), "null");
}

/// A number whose text printing would not give back keeps it (`Literal`); the rest do not,
/// and only printing sees the text: equality, order and hashing go by the value.
#[test]
fn numbers_keep_their_text_only_when_printing_would_change_it() {
    use std::hash::{BuildHasher, RandomState};
    for (text, kept) in [
        ("1", false),
        ("-12", false),
        ("2.5", false),
        ("0.1", false),
        ("1e-07", false),
        ("1e+20", false),
        ("-0", false),
        ("1e-7", true),
        ("1.0", true),
        ("415.50", true),
        ("1e3", true),
        ("1.50e+2", true),
        ("-0.0", true),
        ("0.0001", false),
        ("0.00001", true),
        ("0.000001", true),
        ("100000000000000000001", true),
        ("123456789012345678901234567890", true),
    ] {
        let v = Value::from_number_text(text).unwrap();
        assert_eq!(v.to_json_string(), text);
        assert_eq!(matches!(v, Value::Float(_, Some(_))), kept, "{text}");
        assert_eq!(v.as_f64(), text.parse().ok(), "{text}");
        // Its value alone (what computing on it gives) is equal and hashes alike.
        let computed = Value::number(v.as_f64().unwrap());
        assert_eq!(v, computed);
        let h = RandomState::new();
        assert_eq!(h.hash_one(&v), h.hash_one(&computed), "{text}");
    }
    assert_eq!(Value::number(1.0).to_json_string(), "1");
    assert_eq!(Value::from_number_text("1e999"), None);
    assert_eq!(Value::from_json(b"1.0").unwrap(), Value::Int(1));
    let mut v = vec![
        Value::from_number_text("2.0").unwrap(),
        Value::Int(1),
        Value::from_number_text("1.50").unwrap(),
    ];
    v.sort();
    assert_eq!(Value::Array(v).to_json_string(), "[1,1.50,2.0]");
}

/// A number's text costs the usual value nothing: a `Value` is as large as before.
#[test]
fn a_value_stays_32_bytes() {
    assert_eq!(std::mem::size_of::<Value>(), 32);
}

/// The general parser keeps the text too (inside arrays and objects as well), and a number
/// out of range is refused with sonic-rs's message, kept field or not.
#[test]
fn the_general_parser_keeps_number_text_and_refuses_infinities() {
    let t = r#"{"a":[1.0,{"b":-0}],"c":1e3,"d":2.5,"e":12345678901234567890123}"#;
    assert_eq!(Value::from_json(t.as_bytes()).unwrap().to_json_string(), t);
    let p = Projector::new(&[Str::new("a")]);
    assert_eq!(
        p.parse(t.as_bytes()).unwrap().to_json_string(),
        r#"{"a":[1.0,{"b":-0}]}"#
    );
    for bad in [&br#"{"a":1e999}"#[..], br#"{"a":1,"z":[-1e400]}"#] {
        let e = Value::from_json(bad).unwrap_err();
        assert!(e.contains("must be finite"), "{e}");
        let e = p.parse(bad).unwrap_err();
        assert!(e.contains("must be finite"), "{e}");
    }
}

#[test]
fn jq_order_and_equality() {
    let mut v = [
        Value::str("b"),
        Value::Int(2),
        Value::Null,
        Value::float(1.5),
        Value::Bool(true),
        Value::Bool(false),
    ];
    v.sort();
    let s: Vec<String> = v.iter().map(|x| x.to_json_string()).collect();
    assert_eq!(s, ["null", "false", "true", "1.5", "2", "\"b\""]);
    assert_eq!(Value::Int(1), Value::float(1.0));
    let a = Value::from_json(br#"{"a":1,"b":2}"#).unwrap();
    let b = Value::from_json(br#"{"b":2,"a":1}"#).unwrap();
    assert_eq!(a, b);
}

#[test]
fn projection_keeps_only_wanted_fields() {
    let want = [Str::new("b"), Str::new("d")];
    let v = Value::from_json_fields(br#"{"a":[1,{"x":2}],"b":"s","c":{"d":1},"d":2.5}"#, &want)
        .unwrap();
    assert_eq!(v.to_json_string(), r#"{"b":"s","d":2.5}"#);
    assert_eq!(
        Value::from_json_fields(b"[1,2]", &want)
            .unwrap()
            .type_name(),
        "array"
    );
    assert!(Value::from_json_fields(br#"{"a":1} x"#, &want).is_err());
    assert!(Value::from_json_fields(br#"{"a":"\u00ff"}"#, &want).is_ok());
    assert!(Value::from_json_fields(b"{\"a\":\"\xff\"}", &want).is_err());
    assert!(Value::from_json_fields(br#"{"a":1"#, &want).is_err());
    for bad in [
        &br#"{"a":[1,}"#[..],
        br#"{"a":{"x" 1},"b":2}"#,
        br#"{"a":tru,"b":2}"#,
        br#"{"a":"unterminated,"b":2}"#,
        br#"{"a":01,"b":2}"#,
        br#"{"a":[1 2],"b":2}"#,
        br#"{"a":"\q","b":2}"#,
    ] {
        assert!(
            Value::from_json_fields(bad, &want).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
        assert!(Value::from_json(bad).is_err());
    }
}

#[test]
fn bad_json_is_an_error_not_a_panic() {
    assert!(Value::from_json(b"{\"a\":").is_err());
    assert!(Value::from_json(b"\xff\xfe").is_err());
    assert!(Value::from_json(b"{\"a\":\"\xff\"}").is_err());
}

/// `find_name` compares keys without memcmp for up to 16 bytes by loads from both ends: a key
/// that differs from a name in any one byte, or in length, is never taken for it, at every
/// length the loads change shape (0 to 40 bytes).
#[test]
fn find_name_tells_keys_apart_by_every_byte() {
    for n in 0..40usize {
        let name: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let names = [Str::new("zz-other"), Str::new(&name)];
        let lens = Lens::of(&names);
        assert_eq!(find_name(name.as_bytes(), &names, &lens), Some(1), "{name}");
        for at in 0..n {
            let mut k = name.clone().into_bytes();
            k[at] = b'#';
            assert_eq!(
                find_name(&k, &names, &lens),
                None,
                "{n} bytes, differing at {at}"
            );
        }
        let mut longer = name.clone().into_bytes();
        longer.push(b'a');
        assert_eq!(find_name(&longer, &names, &lens), None);
        if n > 0 {
            assert_eq!(find_name(&name.as_bytes()[..n - 1], &names, &lens), None);
        }
    }
}

/// A projection of a few of many fields gives back the storage of the fields it dropped (a
/// record a window or a join keeps then holds only what it kept); a projection that keeps
/// a good share of its fields, or of a small record, keeps its storage (no reallocation).
#[test]
fn a_projection_of_few_of_many_fields_gives_its_storage_back() {
    let record = |n: usize| {
        let mut m = Map::with_capacity(n);
        for i in 0..n {
            m.push_unique(Str::from(format!("f{i}")), Value::Int(i as i64));
        }
        m
    };
    let pairs = |fields: &[usize]| -> Vec<(Str, Box<[Str]>)> {
        fields
            .iter()
            .map(|i| {
                (
                    Str::from(format!("k{i}")),
                    [Str::from(format!("f{i}"))].into(),
                )
            })
            .collect()
    };
    // 40 fields, 3 kept: shrunk to about their size, and the values are the kept ones.
    let mut m = record(40);
    assert!(m.project(&pairs(&[7, 30, 2])));
    assert!(m.0.capacity() < 8, "capacity {}", m.0.capacity());
    let got: Vec<_> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    assert_eq!(got, ["k7=Int(7)", "k30=Int(30)", "k2=Int(2)"]);
    // 40 fields, 12 kept (over a quarter): the storage stays.
    let mut m = record(40);
    assert!(m.project(&pairs(&(0..12).collect::<Vec<_>>())));
    assert_eq!(m.len(), 12);
    assert!(m.0.capacity() >= 40, "capacity {}", m.0.capacity());
    // 16 fields, 1 kept: small storage stays.
    let mut m = record(16);
    assert!(m.project(&pairs(&[3])));
    assert_eq!(m.len(), 1);
    assert!(m.0.capacity() >= 16, "capacity {}", m.0.capacity());
}
