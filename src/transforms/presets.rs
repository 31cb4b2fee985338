//! `parse` presets: the log formats users meet most (web server access logs, syslog, logfmt,
//! JSON in a text field), so that nobody has to write (and get wrong) the regex for a quoted
//! user agent or an RFC 5424 structured-data block. Field names follow Vector's parse functions
//! where they exist, one name per idea across presets (`client`, `status`, `size`, ...).
//! Nothing here reads the wall clock: an RFC 3164 time has no year, so it is kept as written.

use crate::value::{Map, Str, Value};
use regex::Regex;

/// Which preset: the log format a `parse` node reads (not a node's kind, `pipeline::Kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    NginxCombined,
    ApacheCommon,
    ApacheCombined,
    SyslogRfc3164,
    SyslogRfc5424,
    Logfmt,
    Json,
}

pub const NAMES: &[&str] = &[
    "nginx_combined",
    "apache_common",
    "apache_combined",
    "syslog_rfc3164",
    "syslog_rfc5424",
    "logfmt",
    "json",
];

const ACCESS_COMMON: &str = r#"^(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<timestamp>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}|-) (?P<size>\d+|-)"#;
const ACCESS_COMBINED_TAIL: &str =
    r#" "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)""#;
const RFC3164: &str = r"^(?:<(?P<pri>\d{1,3})>)?(?P<timestamp>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\S+) (?P<hostname>\S+) (?P<appname>[^\s:\[]+)(?:\[(?P<procid>[^\]]*)\])?: ?(?P<message>.*)$";
const RFC5424_HEAD: &str = r"^<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<timestamp>\S+) (?P<hostname>\S+) (?P<appname>\S+) (?P<procid>\S+) (?P<msgid>\S+) ";

#[derive(Clone)]
pub struct Preset {
    dialect: Dialect,
    regex: Option<Regex>,
    /// The last access-log time and its RFC 3339 form: lines come in time order, many in a
    /// row from the same second, and comparing is far cheaper than parsing (as `TimeExpr`).
    last_time: std::cell::RefCell<(String, Str)>,
}

impl Preset {
    /// The preset called `name`, or an error listing the known ones.
    pub fn new(name: &str) -> Result<Preset, String> {
        let dialect = match name {
            "nginx_combined" => Dialect::NginxCombined,
            "apache_common" => Dialect::ApacheCommon,
            "apache_combined" => Dialect::ApacheCombined,
            "syslog_rfc3164" => Dialect::SyslogRfc3164,
            "syslog_rfc5424" => Dialect::SyslogRfc5424,
            "logfmt" => Dialect::Logfmt,
            "json" => Dialect::Json,
            other => {
                return Err(format!(
                    "unknown preset `{other}`; presets: {}",
                    NAMES.join(", ")
                ))
            }
        };
        let pattern = match dialect {
            Dialect::ApacheCommon => Some(format!("{ACCESS_COMMON}$")),
            Dialect::NginxCombined | Dialect::ApacheCombined => {
                // nginx may append fields after the user agent (e.g. `"$gzip_ratio"`).
                Some(format!("{ACCESS_COMMON}{ACCESS_COMBINED_TAIL}"))
            }
            Dialect::SyslogRfc3164 => Some(RFC3164.to_string()),
            Dialect::SyslogRfc5424 => Some(RFC5424_HEAD.to_string()),
            Dialect::Logfmt | Dialect::Json => None,
        };
        let regex = match pattern {
            Some(p) => Some(Regex::new(&p).map_err(|e| format!("internal: preset regex: {e}"))?),
            None => None,
        };
        Ok(Preset {
            dialect,
            regex,
            last_time: Default::default(),
        })
    }

    /// The fields this preset sets (none known in advance for `logfmt` and `json`).
    pub fn fields(&self) -> &'static [&'static str] {
        const COMBINED: &[&str] = &[
            "client",
            "ident",
            "user",
            "timestamp",
            "request",
            "method",
            "path",
            "protocol",
            "status",
            "size",
            "referer",
            "agent",
        ];
        const RFC3164: &[&str] = &[
            "facility",
            "severity",
            "timestamp",
            "hostname",
            "appname",
            "procid",
            "message",
        ];
        const RFC5424: &[&str] = &[
            "facility",
            "severity",
            "version",
            "timestamp",
            "hostname",
            "appname",
            "procid",
            "msgid",
            "structured_data",
            "message",
        ];
        match self.dialect {
            // Apache common is combined without the last two.
            Dialect::ApacheCommon => &COMBINED[..10],
            Dialect::NginxCombined | Dialect::ApacheCombined => COMBINED,
            Dialect::SyslogRfc3164 => RFC3164,
            Dialect::SyslogRfc5424 => RFC5424,
            Dialect::Logfmt | Dialect::Json => &[],
        }
    }

    /// The fields of one line, in a fixed order; the error says what did not fit.
    pub fn parse(&self, text: &str, out: &mut Vec<(Str, Value)>) -> Result<(), String> {
        out.clear();
        match self.dialect {
            Dialect::NginxCombined | Dialect::ApacheCommon | Dialect::ApacheCombined => {
                self.access(text, out)
            }
            Dialect::SyslogRfc3164 => self.rfc3164(text, out),
            Dialect::SyslogRfc5424 => self.rfc5424(text, out),
            Dialect::Logfmt => logfmt(text, out),
            Dialect::Json => json(text, out),
        }
    }

    fn access(&self, text: &str, out: &mut Vec<(Str, Value)>) -> Result<(), String> {
        let re = self.regex.as_ref().ok_or("internal: no regex")?;
        let c = re
            .captures(text)
            .ok_or_else(|| format!("not an {} line", self.label()))?;
        let g = |n: &str| c.name(n).map_or("", |m| m.as_str());
        let dash = |s: &str| {
            if s == "-" {
                Value::Null
            } else {
                Value::Str(unescape(s))
            }
        };
        let time = g("timestamp");
        let mut last = self.last_time.borrow_mut();
        if last.0 != time || last.1.is_empty() {
            let ts = crate::time::parse_with_format(time, "%d/%b/%Y:%H:%M:%S %z")
                .map_err(|_| format!("time `[{time}]` is not like [01/Nov/2026:10:00:00 +0000]"))?;
            last.0.clear();
            last.0.push_str(time);
            last.1 = Str::from(crate::time::format_millis(ts));
        }
        let timestamp = Value::Str(last.1.clone());
        drop(last);
        let request = unescape(g("request"));
        let mut parts = request.splitn(3, ' ');
        let (method, path, protocol) = match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(p), Some(v)) if v.starts_with("HTTP/") => {
                (Value::str(m), Value::str(p), Value::str(v))
            }
            (Some(m), Some(p), None) if !m.is_empty() => {
                (Value::str(m), Value::str(p), Value::Null)
            }
            // A probe or garbage ("-", TLS bytes): kept in `request`, the parts are null.
            _ => (Value::Null, Value::Null, Value::Null),
        };
        let num = |s: &str| s.parse::<i64>().map_or(Value::Null, Value::Int);
        let push = |out: &mut Vec<(Str, Value)>, k: &str, v: Value| out.push((Str::new(k), v));
        push(out, "client", Value::str(g("client")));
        push(out, "ident", dash(g("ident")));
        push(out, "user", dash(g("user")));
        push(out, "timestamp", timestamp);
        push(out, "request", Value::Str(request.clone()));
        push(out, "method", method);
        push(out, "path", path);
        push(out, "protocol", protocol);
        push(out, "status", num(g("status")));
        push(out, "size", num(g("size")));
        if self.dialect != Dialect::ApacheCommon {
            push(out, "referer", dash(g("referer")));
            push(out, "agent", dash(g("agent")));
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        match self.dialect {
            Dialect::NginxCombined => "nginx combined",
            Dialect::ApacheCommon => "Apache common",
            Dialect::ApacheCombined => "Apache combined",
            Dialect::SyslogRfc3164 => "RFC 3164 syslog",
            Dialect::SyslogRfc5424 => "RFC 5424 syslog",
            Dialect::Logfmt => "logfmt",
            Dialect::Json => "JSON",
        }
    }

    fn rfc3164(&self, text: &str, out: &mut Vec<(Str, Value)>) -> Result<(), String> {
        let re = self.regex.as_ref().ok_or("internal: no regex")?;
        let c = re
            .captures(text)
            .ok_or_else(|| format!("not an {} line", self.label()))?;
        let g = |n: &str| c.name(n).map(|m| m.as_str());
        let (facility, severity) = priority(g("pri"))?;
        let push = |out: &mut Vec<(Str, Value)>, k: &str, v: Value| out.push((Str::new(k), v));
        push(out, "facility", facility);
        push(out, "severity", severity);
        push(out, "timestamp", Value::str(g("timestamp").unwrap_or("")));
        push(out, "hostname", Value::str(g("hostname").unwrap_or("")));
        push(out, "appname", Value::str(g("appname").unwrap_or("")));
        push(out, "procid", g("procid").map_or(Value::Null, procid));
        push(out, "message", Value::str(g("message").unwrap_or("")));
        Ok(())
    }

    fn rfc5424(&self, text: &str, out: &mut Vec<(Str, Value)>) -> Result<(), String> {
        let re = self.regex.as_ref().ok_or("internal: no regex")?;
        let c = re
            .captures(text)
            .ok_or_else(|| format!("not an {} line", self.label()))?;
        let g = |n: &str| c.name(n).map_or("-", |m| m.as_str());
        let nil = |s: &str| {
            if s == "-" {
                Value::Null
            } else {
                Value::str(s)
            }
        };
        let (facility, severity) = priority(Some(g("pri")))?;
        let rest = &text[c.get(0).map_or(0, |m| m.end())..];
        let (sd, msg) = structured_data(rest)?;
        let msg = msg.strip_prefix(' ').unwrap_or(msg);
        // RFC 5424 section 6.4: a UTF-8 message starts with a BOM.
        let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
        let push = |out: &mut Vec<(Str, Value)>, k: &str, v: Value| out.push((Str::new(k), v));
        push(out, "facility", facility);
        push(out, "severity", severity);
        push(
            out,
            "version",
            g("version").parse::<i64>().map_or(Value::Null, Value::Int),
        );
        push(out, "timestamp", nil(g("timestamp")));
        push(out, "hostname", nil(g("hostname")));
        push(out, "appname", nil(g("appname")));
        push(
            out,
            "procid",
            if g("procid") == "-" {
                Value::Null
            } else {
                procid(g("procid"))
            },
        );
        push(out, "msgid", nil(g("msgid")));
        push(out, "structured_data", sd);
        push(out, "message", Value::str(msg));
        Ok(())
    }
}

/// A process id is a number when it reads as one (it nearly always does).
fn procid(s: &str) -> Value {
    s.parse::<i64>().map_or_else(|_| Value::str(s), Value::Int)
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// `<PRI>` as facility and severity names; both null when the line has none.
fn priority(pri: Option<&str>) -> Result<(Value, Value), String> {
    let Some(p) = pri else {
        return Ok((Value::Null, Value::Null));
    };
    let n: usize = p
        .parse()
        .map_err(|_| format!("priority <{p}> is not a number"))?;
    if n > 191 {
        return Err(format!("priority <{p}> is out of range (0 to 191)"));
    }
    Ok((Value::str(FACILITIES[n / 8]), Value::str(SEVERITIES[n % 8])))
}

/// RFC 5424 STRUCTURED-DATA at the start of `s` (`-` or `[id k="v" ...]...`) as an object of
/// objects, and the rest of the line.
fn structured_data(s: &str) -> Result<(Value, &str), String> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok((Value::Null, rest));
    }
    let bad = || "structured data is not like [id key=\"value\" ...]".to_string();
    let b = s.as_bytes();
    let mut i = 0;
    let mut elems = Map::new();
    while i < b.len() && b[i] == b'[' {
        i += 1;
        let start = i;
        while i < b.len() && !matches!(b[i], b' ' | b']') {
            i += 1;
        }
        let id = &s[start..i];
        if id.is_empty() {
            return Err(bad());
        }
        let mut params = Map::new();
        loop {
            match b.get(i) {
                Some(b']') => {
                    i += 1;
                    break;
                }
                Some(b' ') => i += 1,
                Some(_) => {
                    let ks = i;
                    while i < b.len() && b[i] != b'=' && b[i] != b']' && b[i] != b' ' {
                        i += 1;
                    }
                    let key = &s[ks..i];
                    if b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') || key.is_empty() {
                        return Err(bad());
                    }
                    i += 2;
                    let mut val = String::new();
                    loop {
                        match b.get(i) {
                            None => return Err(bad()),
                            Some(b'"') => break,
                            // PARAM-VALUE escapes `"`, `\` and `]` with a backslash.
                            Some(b'\\') if matches!(b.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                                val.push(b[i + 1] as char);
                                i += 2;
                            }
                            Some(_) => {
                                let ch = s[i..].chars().next().ok_or_else(bad)?;
                                val.push(ch);
                                i += ch.len_utf8();
                            }
                        }
                    }
                    i += 1;
                    params.insert(Str::new(key), Value::Str(Str::from(val)));
                }
                None => return Err(bad()),
            }
        }
        elems.insert(Str::new(id), Value::Object(params));
    }
    if i == 0 {
        return Err(bad());
    }
    Ok((Value::Object(elems), &s[i..]))
}

/// Undoes the escapes of quotes and backslashes web servers write in quoted fields: `\"` and
/// `\\` (Apache), `\x22` and `\x5C` (nginx).
fn unescape(s: &str) -> Str {
    if !s.contains('\\') {
        return Str::new(s);
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'"' | b'\\' => {
                    out.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                // Only the quote and the backslash: other bytes stay escaped, as written,
                // so that the field stays valid UTF-8 and nothing is lost.
                b'x' if b.len() >= i + 4 => {
                    let code = &b[i + 2..i + 4];
                    if code == b"22" || code.eq_ignore_ascii_case(b"5c") {
                        out.push(if code == b"22" { b'"' } else { b'\\' });
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Str::from(String::from_utf8_lossy(&out).as_ref())
}

/// `key=value key="quoted value" flag`: a bare key is `true`; an unquoted value that reads as
/// a number is a number (as CSV cells are), a quoted one stays a string.
fn logfmt(text: &str, out: &mut Vec<(Str, Value)>) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    let set = |out: &mut Vec<(Str, Value)>, k: &str, v: Value| match out
        .iter_mut()
        .find(|(x, _)| x.as_str() == k)
    {
        Some(slot) => slot.1 = v,
        None => out.push((Str::new(k), v)),
    };
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &text[ks..i];
        if key.contains('"') {
            return Err(format!("logfmt: a key cannot hold a quote at byte {ks}"));
        }
        if b.get(i) != Some(&b'=') {
            set(out, key, Value::Bool(true));
            continue;
        }
        if key.is_empty() {
            return Err(format!("logfmt: `=` without a key at byte {ks}"));
        }
        i += 1;
        if b.get(i) == Some(&b'"') {
            i += 1;
            let mut val = String::new();
            loop {
                match b.get(i) {
                    None => {
                        return Err(format!("logfmt: the value of `{key}` has no closing quote"))
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        val.push(match b[i + 1] {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            c => c as char,
                        });
                        i += 2;
                    }
                    Some(_) => {
                        let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                        val.push(ch);
                        i += ch.len_utf8().max(1);
                    }
                }
            }
            set(out, key, Value::Str(Str::from(val)));
        } else {
            let vs = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            set(out, key, crate::sources::formats::infer(&text[vs..i]));
        }
    }
    if out.is_empty() {
        return Err("logfmt: the line has no key=value pairs".into());
    }
    Ok(())
}

/// A field holding a JSON object: its fields.
fn json(text: &str, out: &mut Vec<(Str, Value)>) -> Result<(), String> {
    match Value::from_json(text.as_bytes()) {
        Ok(Value::Object(m)) => {
            out.extend(m.into_vec());
            Ok(())
        }
        Ok(other) => Err(format!(
            "the field holds JSON {}, not an object",
            other.type_name()
        )),
        Err(e) => Err(format!("the field is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(preset: &str, line: &str) -> Result<String, String> {
        let p = Preset::new(preset).unwrap();
        let mut out = Vec::new();
        p.parse(line, &mut out)?;
        let mut s = Vec::new();
        Value::Object(Map::from_vec(out)).write_json(&mut s);
        Ok(String::from_utf8(s).unwrap())
    }

    #[test]
    fn unescapes_what_web_servers_escape() {
        assert_eq!(unescape(r#"a \"b\" c\\d"#).as_str(), r#"a "b" c\d"#);
        assert_eq!(
            unescape(r"Mozilla \x22quoted\x22").as_str(),
            "Mozilla \"quoted\""
        );
        assert_eq!(unescape(r"\x16\x03\x5C").as_str(), r"\x16\x03\");
        assert_eq!(unescape(r"end\x2").as_str(), r"end\x2");
        assert_eq!(unescape(r"\").as_str(), r"\");
    }

    #[test]
    fn logfmt_pairs() {
        assert_eq!(
            parse(
                "logfmt",
                r#"level=info msg="hello \"you\"" n=3 ok dur=0.5s"#
            )
            .unwrap(),
            r#"{"level":"info","msg":"hello \"you\"","n":3,"ok":true,"dur":"0.5s"}"#
        );
        assert!(parse("logfmt", r#"msg="open"#).is_err());
        assert!(parse("logfmt", "   ").is_err());
    }

    #[test]
    fn structured_data_with_escapes() {
        let (v, rest) = structured_data(r#"[a@1 x="1" y="q\"\]"][b@2] msg"#).unwrap();
        let mut s = Vec::new();
        v.write_json(&mut s);
        assert_eq!(
            String::from_utf8(s).unwrap(),
            r#"{"a@1":{"x":"1","y":"q\"]"},"b@2":{}}"#
        );
        assert_eq!(rest, " msg");
        assert!(structured_data(r#"[a@1 x="1"#).is_err());
    }

    #[test]
    fn priorities() {
        let (f, s) = priority(Some("34")).unwrap();
        assert_eq!((f.as_str(), s.as_str()), (Some("auth"), Some("crit")));
        assert!(priority(Some("192")).is_err());
    }
}
