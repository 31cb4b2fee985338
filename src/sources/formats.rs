//! Turning input bytes into records: JSON lines, plain lines, and CSV/TSV cells with
//! Miller-style number inference.

use crate::value::{is_number_text, Map, Projector, Str, Value};

/// Decodes one JSON line, keeping only `fields` when given. `Ok(None)` for a blank line
/// (skipped, as jq does).
pub fn decode_jsonl(line: &[u8], fields: Option<&Projector>) -> Result<Option<Value>, String> {
    let line = trim_ascii(line);
    if line.is_empty() {
        return Ok(None);
    }
    if let Some(v) = super::flat_json::parse_flat(line, fields.map(Projector::tree)) {
        return Ok(Some(v));
    }
    let parsed = match fields {
        Some(p) => p.parse(line),
        None => Value::from_json(line),
    };
    match parsed {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        Ok(other) => Err(format!(
            "expected a JSON object, found {} {}",
            article(other.type_name()),
            other.type_name()
        )),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn article(t: &str) -> &'static str {
    if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// `{"line": "..."}`; a line that is not UTF-8 is bad input rather than silently altered.
pub fn decode_line(line: &[u8]) -> Result<Value, String> {
    let line = strip_cr(line);
    match std::str::from_utf8(line) {
        Ok(s) => {
            let mut m = Map::with_capacity(1);
            m.push_unique(Str::new("line"), Value::str(s));
            Ok(Value::Object(m))
        }
        Err(e) => Err(format!(
            "invalid UTF-8 at byte {} of the line",
            e.valid_up_to()
        )),
    }
}

pub fn strip_cr(line: &[u8]) -> &[u8] {
    match line.last() {
        Some(b'\r') => &line[..line.len() - 1],
        _ => line,
    }
}

pub(crate) fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map(|i| i + 1)
        .unwrap_or(start);
    &b[start..end.max(start)]
}

/// A CSV cell as a value: canonical decimal numbers become numbers (as in Miller), everything
/// else stays a string. `007`, `+3`, `1_000`, `0x1F`, `NaN` stay strings, so identifiers like
/// zip codes survive a round trip unchanged. A number keeps its text (`415.50` is written back
/// as `415.50`), decided by `value::read_number` as JSON numbers are.
#[inline]
pub fn infer(cell: &str) -> Value {
    // A cell that cannot start a number is text, decided by its first byte.
    match cell.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => {}
        _ => return Value::str(cell),
    }
    if let Some(i) = small_int(cell.as_bytes()) {
        return Value::Int(i);
    }
    infer_general(cell)
}

/// The value of a canonical integer of up to 18 digits (`0`, `-12`; not `-0`, `007` or `+3`),
/// read in one pass: most numeric cells (statuses, sizes, counts) are such, and the general
/// way (the grammar, then `str::parse`) was a tenth of a CSV filter job. What it does not
/// take, `infer_general` decides.
#[inline]
fn small_int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    match digits {
        [] => return None,
        [b'0', ..] if neg || digits.len() > 1 => return None,
        _ if digits.len() > 18 => return None,
        _ => {}
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if neg { -v } else { v })
}

fn infer_general(cell: &str) -> Value {
    if is_number_text(cell.as_bytes()) {
        if let Some(v) = Value::from_number_text(cell) {
            return v;
        }
    }
    Value::str(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_is_conservative() {
        assert_eq!(infer("42"), Value::Int(42));
        assert_eq!(infer("-3.5"), Value::float(-3.5));
        assert_eq!(infer("1e3"), Value::float(1000.0));
        for kept in ["415.50", "1e3", "-0", "1.0", "100000000000000000001"] {
            assert_eq!(infer(kept).to_json_string(), kept);
        }
        assert_eq!(infer("1e999"), Value::str("1e999"));
        assert_eq!(infer("0"), Value::Int(0));
        for s in [
            "007", "+3", "1_000", "0x1F", "NaN", "inf", "", "1.", ".5", "1e", "-",
        ] {
            assert_eq!(infer(s), Value::str(s), "{s}");
        }
    }

    /// The one-pass integer reading decides as the general way on every short digit string,
    /// with and without a sign or leading zeros, and around the 18-digit limit.
    #[test]
    fn small_integers_read_as_the_general_way_reads_them() {
        let mut texts: Vec<String> = Vec::new();
        for len in 0..=4 {
            let mut n = 0u32;
            while n < 10u32.pow(len) {
                let t = if len == 0 {
                    String::new()
                } else {
                    format!("{n:0w$}", w = len as usize)
                };
                for pre in ["", "-", "+", "0", "-0"] {
                    texts.push(format!("{pre}{t}"));
                }
                n += 1;
            }
        }
        for digits in 16..=21 {
            for first in ['1', '9'] {
                let t = format!("{first}{}", "9".repeat(digits - 1));
                texts.push(t.clone());
                texts.push(format!("-{t}"));
            }
        }
        for t in [
            "1a",
            "12 ",
            " 12",
            "1.0",
            "1e3",
            "-",
            "--1",
            "١٢",
            "9223372036854775807",
        ] {
            texts.push(t.to_string());
        }
        let mut fast = 0;
        for t in &texts {
            let (a, b) = (infer(t), infer_general(t));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{t:?}");
            fast += usize::from(small_int(t.as_bytes()).is_some());
        }
        assert!(fast > 10_000, "{fast} read the fast way");
    }

    #[test]
    fn jsonl_lines() {
        assert!(decode_jsonl(b"  \r", None).unwrap().is_none());
        assert!(decode_jsonl(b"{\"a\":1}\r", None).unwrap().is_some());
        assert!(decode_jsonl(b"[1,2]", None)
            .unwrap_err()
            .contains("an array"));
        let f = Projector::new(&[Str::new("a")]);
        assert!(decode_jsonl(b"[1,2]", Some(&f))
            .unwrap_err()
            .contains("an array"));
        assert!(decode_jsonl(b"{\"a\":", None)
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(decode_line(b"ab\xffc").is_err());
        assert_eq!(
            decode_line(b"x\r").unwrap().to_json_string(),
            r#"{"line":"x"}"#
        );
    }

    proptest::proptest! {
        /// Whatever the bytes, decoding gives a record, a skip or an error: never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode_jsonl(&bytes, None);
            let p = Projector::new(&[Str::new("a"), Str::new("b")]);
            let full = decode_jsonl(&bytes, None);
            let projected = decode_jsonl(&bytes, Some(&p));
            // Projection never changes whether a line is bad.
            proptest::prop_assert_eq!(full.is_err(), projected.is_err());
            let _ = decode_line(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = infer(s);
            }
        }

        /// Every number prints back as its input text, whichever parser read it (a flat line
        /// takes the scanner of `flat_json`, a nested one the general parser), and means the
        /// value of its text. Short decimals (the scanner's shortcut) are drawn apart.
        #[test]
        fn numbers_print_as_their_text(
            nums in proptest::collection::vec(
                proptest::prop_oneof![
                    "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?",
                    "-?(0|[1-9][0-9]{0,7})\\.[0-9]{1,7}",
                ],
                1..5,
            ),
            nested: bool,
        ) {
            let body: Vec<String> = nums
                .iter()
                .enumerate()
                .map(|(i, n)| if nested { format!("\"k{i}\":[{n},{{\"x\":{n}}}]") } else { format!("\"k{i}\":{n}") })
                .collect();
            let line = format!("{{{}}}", body.join(","));
            let v = decode_jsonl(line.as_bytes(), None).unwrap().unwrap();
            proptest::prop_assert_eq!(v.to_json_string(), line.clone());
            let p = Projector::new(&[Str::new("k0")]);
            let k0 = decode_jsonl(line.as_bytes(), Some(&p)).unwrap().unwrap();
            proptest::prop_assert_eq!(k0.to_json_string(), format!("{{{}}}", body[0]));
            if !nested {
                for (i, n) in nums.iter().enumerate() {
                    let got = v.field(&format!("k{i}")).and_then(Value::as_f64);
                    proptest::prop_assert_eq!(got, n.parse::<f64>().ok());
                }
            }
        }

        /// Near-JSON text (what corrupt logs look like) is as safe as random bytes.
        #[test]
        fn mangled_json_never_panics(
            s in r#"\{("[a-z]{0,3}":( ?-?[0-9]{0,4}(\.[0-9]{0,3})?|"[^"]{0,5}"|\[[0-9,]{0,6}\]|null|tru|\{"x":1\}),?){0,5}\}?"#
        ) {
            let p = Projector::new(&[Str::new("a")]);
            let full = decode_jsonl(s.as_bytes(), None);
            let projected = decode_jsonl(s.as_bytes(), Some(&p));
            proptest::prop_assert_eq!(full.is_err(), projected.is_err());
        }
    }
}
