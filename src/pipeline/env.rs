//! `${VAR}` in pipeline strings, from the environment, as Vector does: one pipeline file
//! serves several hosts or days (`path = "/var/log/${SERVICE}/*.log"`). Only the braced form
//! is read, because `$name` is a jq variable in expressions; `$$` is a literal `$`, and
//! `${VAR:-default}` gives a default. A variable that is unset (with no default) is a
//! problem `validate` reports with the node and the line, never an empty string.

use super::Collector;
use toml::de::{DeTable, DeValue};

/// Replaces `${VAR}` in every string of the document's nodes and settings (not in
/// `[[tests]]`, whose records are data).
pub(crate) fn interpolate(
    doc: &mut DeTable<'_>,
    c: &mut Collector,
    lookup: &dyn Fn(&str) -> Option<String>,
) {
    for (key, value) in doc.iter_mut() {
        match key.get_ref().as_ref() {
            "tests" => {}
            "sources" | "transforms" | "sinks" => {
                if let DeValue::Table(nodes) = value.get_mut() {
                    for (name, node) in nodes.iter_mut() {
                        let name = name.get_ref().to_string();
                        walk(node, c, Some(&name), lookup);
                    }
                }
            }
            _ => walk(value, c, None, lookup),
        }
    }
}

fn walk(
    v: &mut toml::Spanned<DeValue<'_>>,
    c: &mut Collector,
    node: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
) {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand(s, lookup) {
            Ok(x) => *s = std::borrow::Cow::Owned(x),
            Err(m) => c.at(span, node, m),
        },
        DeValue::Array(a) => {
            for x in a.iter_mut() {
                walk(x, c, node, lookup);
            }
        }
        DeValue::Table(t) => {
            for (_, x) in t.iter_mut() {
                walk(x, c, node, lookup);
            }
        }
        _ => {}
    }
}

/// `${VAR}`, `${VAR:-default}` and `$$` in one string.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(format!(
                    "`${{` without a closing `}}` in \"{s}\" (write `$$` for a literal `$`)"
                ));
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                || name.starts_with(|ch: char| ch.is_ascii_digit())
            {
                return Err(format!(
                    "`${{{inner}}}` is not an environment variable name (letters, digits, `_`; write `$$` for a literal `$`)"
                ));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (used as `${{{name}}}`; `${{{name}:-default}}` gives a default)"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            // A lone `$` (a jq variable, a regex anchor) stays as written.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("web1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_defaults_and_escapes() {
        assert_eq!(
            expand("/logs/${HOST}/a.log", &env).unwrap(),
            "/logs/web1/a.log"
        );
        assert_eq!(expand("${EMPTY}x", &env).unwrap(), "x");
        assert_eq!(expand("${NOPE:-d}", &env).unwrap(), "d");
        assert_eq!(expand("$${HOST}", &env).unwrap(), "${HOST}");
        assert_eq!(expand(". as $x | $x", &env).unwrap(), ". as $x | $x");
        assert_eq!(expand("a$", &env).unwrap(), "a$");
        assert!(expand("${NOPE}", &env)
            .unwrap_err()
            .contains("`NOPE` is not set"));
        assert!(expand("${HOST", &env).is_err());
        assert!(expand("${1X}", &env).is_err());
    }
}
