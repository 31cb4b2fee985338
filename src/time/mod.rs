//! Event time: reading a record's time (RFC 3339 strings with any offset and fractional
//! seconds, or epoch numbers in seconds or milliseconds) as milliseconds since the epoch.
//! Watermarks and windows are built on these numbers and never on the wall clock.

pub mod window;

use crate::expr::Expr;
use crate::pipeline::spec::TimeUnit;
use crate::value::Value;

#[derive(Clone)]
pub struct TimeExpr {
    pub expr: Expr,
    pub unit: TimeUnit,
    /// `time_format`: strftime syntax for time strings that are not RFC 3339.
    format: Option<String>,
    /// The last time string read and its value: log records come in time order, so many in
    /// a row carry the same string (one per second), and comparing it is far cheaper than
    /// parsing it again.
    last: std::cell::RefCell<Option<(crate::value::Str, i64)>>,
}

impl TimeExpr {
    pub fn new(expr: Expr, unit: TimeUnit) -> TimeExpr {
        TimeExpr {
            expr,
            unit,
            format: None,
            last: Default::default(),
        }
    }

    /// `time_format`, when the node has one.
    pub fn format(&self) -> Option<&str> {
        self.format.as_deref()
    }

    /// Reads time strings with `format` (strftime) instead of as RFC 3339.
    pub fn with_format(mut self, format: Option<String>) -> TimeExpr {
        self.format = format;
        self
    }

    pub fn eval(&self, record: &Value) -> Result<i64, String> {
        self.expr
            .with_first(record, |v| self.millis(v.unwrap_or(&Value::Null)))
            .map_err(|e| e.message)?
    }

    fn millis(&self, v: &Value) -> Result<i64, String> {
        if let Value::Str(s) = v {
            let mut last = self.last.borrow_mut();
            if let Some((text, ms)) = last.as_ref() {
                if text == s {
                    return Ok(*ms);
                }
            }
            let ms = match &self.format {
                Some(f) => parse_with_format(s, f),
                None => parse_rfc3339(s),
            }
            .map_err(|m| self.message(m))?;
            *last = Some((s.clone(), ms));
            return Ok(ms);
        }
        to_millis(v, self.unit).map_err(|m| self.message(m))
    }

    fn message(&self, m: String) -> String {
        format!("time `{}`: {m}", self.expr.source())
    }
}

pub fn to_millis(v: &Value, unit: TimeUnit) -> Result<i64, String> {
    match v {
        Value::Str(s) => parse_rfc3339(s),
        Value::Int(i) => Ok(match unit {
            TimeUnit::S => i.saturating_mul(1000),
            TimeUnit::Ms => *i,
        }),
        Value::Float(f, _) if f.is_finite() => Ok(match unit {
            TimeUnit::S => (f * 1000.0).round() as i64,
            TimeUnit::Ms => f.round() as i64,
        }),
        Value::Null => Err("the record has no time (null)".into()),
        other => Err(format!(
            "expected an RFC 3339 string or an epoch number, found {}",
            other.type_name()
        )),
    }
}

pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| format!("`{s}` is not an RFC 3339 time (like 2026-11-21T10:00:00Z)"))
}

/// A time string in strftime `format` (`"%d/%b/%Y:%H:%M:%S %z"` for nginx); without an
/// offset in the format (`%z`, `%:z`) or a time zone (`%Q`) the time is read as UTC.
pub fn parse_with_format(s: &str, format: &str) -> Result<i64, String> {
    let bad = |e: jiff::Error| format!("`{s}` does not match time_format `{format}`: {e}");
    let tm = jiff::fmt::strtime::parse(format, s).map_err(bad)?;
    if tm.offset().is_some() || tm.iana_time_zone().is_some() {
        return tm.to_timestamp().map(|t| t.as_millisecond()).map_err(bad);
    }
    tm.to_datetime()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp().as_millisecond())
        .map_err(bad)
}

/// Whether `format` is a strftime format jiff can read times with; the error says why not.
pub fn check_format(format: &str) -> Result<(), String> {
    if !format.contains('%') {
        return Err(format!(
            "`{format}` has no % directives (strftime syntax, like \"%d/%b/%Y:%H:%M:%S %z\")"
        ));
    }
    // Formatting a time exercises every directive: an unknown one is an error here.
    let ts = jiff::Timestamp::UNIX_EPOCH.to_zoned(jiff::tz::TimeZone::UTC);
    jiff::fmt::strtime::format(format, &ts)
        .map(|_| ())
        .map_err(|e| format!("`{format}` is not a strftime format weir can read: {e}"))
}

/// RFC 3339 in UTC, with milliseconds only when there are any.
pub fn format_millis(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => {
            if ms.rem_euclid(1000) == 0 {
                format!("{t:.0}")
            } else {
                format!("{t:.3}")
            }
        }
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:01.5+01:00"), Ok(1500));
        assert!(parse_rfc3339("yesterday").is_err());
        assert_eq!(to_millis(&Value::Int(2), TimeUnit::S), Ok(2000));
        assert_eq!(to_millis(&Value::Int(2), TimeUnit::Ms), Ok(2));
        assert_eq!(format_millis(60_000), "1970-01-01T00:01:00Z");
        assert_eq!(format_millis(1_500), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn reads_times_in_a_strftime_format() {
        let nginx = "%d/%b/%Y:%H:%M:%S %z";
        let want = parse_rfc3339("2026-11-01T10:00:00Z").unwrap();
        assert_eq!(
            parse_with_format("01/Nov/2026:10:00:00 +0000", nginx),
            Ok(want)
        );
        assert_eq!(
            parse_with_format("01/Nov/2026:11:30:00 +0130", nginx),
            Ok(want)
        );
        // No offset in the format: UTC.
        assert_eq!(
            parse_with_format("2026-11-01 10:00:00", "%Y-%m-%d %H:%M:%S"),
            Ok(want)
        );
        let e = parse_with_format("01/Nov/2026 10:00", nginx).unwrap_err();
        assert!(e.contains("does not match time_format"), "{e}");
        assert!(check_format(nginx).is_ok());
        assert!(check_format("%Y-%m-%d").is_ok());
        assert!(check_format("no directives").is_err());
        assert!(check_format("%Y %J").is_err());
    }

    #[test]
    fn the_last_time_string_is_remembered_not_mixed_up() {
        let t = TimeExpr::new(Expr::compile(".ts").unwrap(), TimeUnit::S);
        let rec = |ts: &str| Value::from_json(format!(r#"{{"ts":"{ts}"}}"#).as_bytes()).unwrap();
        let a = "1970-01-01T00:00:01Z";
        let b = "1970-01-01T00:00:02Z";
        for (ts, want) in [(a, Ok(1000)), (a, Ok(1000)), (b, Ok(2000)), (a, Ok(1000))] {
            assert_eq!(t.eval(&rec(ts)), want, "{ts}");
        }
        // A bad string is an error every time, and does not disturb the remembered one.
        assert!(t.eval(&rec("nope")).is_err());
        assert!(t.eval(&rec("nope")).is_err());
        assert_eq!(t.eval(&rec(b)), Ok(2000));
        let n = Value::from_json(br#"{"ts":3}"#).unwrap();
        assert_eq!(t.eval(&n), Ok(3000));
    }
}
