//! `weir do`: the one-off form for the shell. It writes the pipeline file the flags describe
//! and runs that text on the same engine as `weir run`, with checkpoints off, so a one-off is
//! exactly as fast as a pipeline and `--print-pipeline` shows precisely what ran.

use crate::cli::{DoArgs, DoFormat, DoOnError};
use crate::error::{Error, Outcome, Result};
use crate::pipeline;
use crate::runtime::run::{self, Options};
use std::path::{Path, PathBuf};

/// The name a one-off pipeline goes by in messages and, once printed, its state directory.
const NAME: &str = "weir-do";

pub fn execute(a: &DoArgs, opts: Options) -> Result<Outcome> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::usage(format!("cannot read the current directory: {e}")))?;
    let text = pipeline_text(a, &cwd)?;
    if a.print_pipeline {
        return super::out(&text);
    }
    // The same text, read as if it were a file in the current directory; only checkpoints
    // are turned off, so there is no state directory at all.
    let spec = pipeline::parse(
        &cwd.join(format!("({NAME})")),
        &text,
        &["checkpoint.every=off".to_string()],
    )?;
    run::execute(&spec, &opts).map_err(|e| {
        if e.kind == crate::error::ErrorKind::Usage {
            Error::usage(in_flag_words(&e.message))
        } else {
            e
        }
    })
}

/// A problem of the pipeline `do` wrote, said in terms of the flags that made it: no file
/// name or line (there is no file), and the flag for each node.
fn in_flag_words(message: &str) -> String {
    let marker = format!("({NAME}):");
    message
        .lines()
        .filter(|l| !(l.ends_with(&format!("({NAME})")) && l.contains(" problems in ")))
        .map(|l| {
            let l = match l.find(&marker) {
                // `(weir-do):12:20: ` — skip the line and column too.
                Some(i) => l[i + marker.len()..]
                    .splitn(3, ':')
                    .nth(2)
                    .unwrap_or("")
                    .trim_start(),
                None => l,
            };
            l.replacen("node 'expr': ", "EXPR: ", 1)
                .replacen("node 'select': ", "EXPR: ", 1)
                .replacen("node 'aggregate': ", "--by/--agg: ", 1)
                .replacen("node 'window': ", "--time/--window/--agg: ", 1)
                .replacen("node 'out': ", "--to: ", 1)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A key of a TOML table: bare when it can be.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

fn format_word(f: DoFormat) -> &'static str {
    match f {
        DoFormat::Jsonl => "jsonl",
        DoFormat::Csv => "csv",
        DoFormat::Tsv => "tsv",
        DoFormat::Lines => "lines",
    }
}

/// A word of the command line, quoted for a POSIX shell when it needs it.
pub(super) fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether a first positional that is not an existing file was meant as one: it reads as a
/// file name and not as a jq expression (`.status`, `select(...)`, `{a}`).
fn looks_like_file(s: &str) -> bool {
    let exts = [
        ".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".log", ".txt", ".gz",
    ];
    !s.starts_with('.')
        && !s.contains(|c: char| " ()|{}[]\"=<>!$".contains(c))
        && (s.contains('/') || exts.iter().any(|e| s.ends_with(e)))
}

/// The pipeline file the flags describe (also what `--print-pipeline` prints).
pub fn pipeline_text(a: &DoArgs, cwd: &Path) -> Result<String> {
    let (expr, files): (Option<&str>, &[String]) = match a.args.split_first() {
        None => (None, &[]),
        Some((first, _)) if first == "-" || Path::new(first).is_file() => (None, &a.args[..]),
        Some((first, rest)) => {
            if rest.is_empty() && looks_like_file(first) {
                return Err(Error::usage(format!(
                    "do: no such file: {first} (an expression that reads like a file name? write it as `. | {first}`)"
                )));
            }
            (Some(first.as_str()), rest)
        }
    };
    for f in files {
        if f != "-" && !Path::new(f).exists() && !f.contains(['*', '?', '[']) {
            return Err(Error::usage(format!("do: no such file: {f}")));
        }
    }
    if files.iter().filter(|f| *f == "-").count() > 1 {
        return Err(Error::usage("do: stdin (`-`) may be read only once"));
    }
    if a.to == DoFormat::Lines {
        return Err(Error::usage(
            "do: --to writes jsonl, csv or tsv (lines is an input format)",
        ));
    }
    if a.window.is_some() && a.time.is_none() || a.time.is_some() && a.window.is_none() {
        return Err(Error::usage("do: --time and --window go together"));
    }
    let mut aggs: Vec<(String, String)> = Vec::new();
    for x in &a.aggs {
        let Some((name, f)) = x.split_once('=') else {
            return Err(Error::usage(format!(
                "do: --agg {x}: expected NAME=FN, like n=count or 'spent=sum(.amount)'"
            )));
        };
        let (name, f) = (name.trim(), f.trim());
        if name.is_empty() || f.is_empty() {
            return Err(Error::usage(format!(
                "do: --agg {x}: expected NAME=FN, like n=count or 'spent=sum(.amount)'"
            )));
        }
        if aggs.iter().any(|(n, _)| n == name) {
            return Err(Error::usage(format!("do: --agg {name} is given twice")));
        }
        aggs.push((name.to_string(), f.to_string()));
    }
    let grouped = a.by.is_some() || a.time.is_some() || !aggs.is_empty();
    if grouped && aggs.is_empty() {
        aggs.push(("n".into(), "count".into()));
    }

    let mut t = String::new();
    let mut cmd = vec!["weir".to_string(), "do".to_string()];
    let argv: Vec<String> = std::env::args().collect();
    let from = argv
        .iter()
        .position(|x| x == "do")
        .map_or(argv.len(), |i| i + 1);
    cmd.extend(
        argv[from..]
            .iter()
            .filter(|x| *x != "--print-pipeline")
            .cloned(),
    );
    t.push_str(&format!(
        "# Made by: {}\n# Run it with `weir run FILE` (again: `weir resume --or-start FILE`).\n",
        cmd.iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    t.push_str(&format!("name = {}\n", quote(NAME)));

    // Sources: stdin, or one per FILE (several are a union).
    let paths: Vec<PathBuf> = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files
            .iter()
            .map(|f| {
                if f == "-" {
                    PathBuf::from("-")
                } else {
                    pipeline::normalize(&cwd.join(f))
                }
            })
            .collect()
    };
    let mut upstream: Vec<String> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let name = match (paths.len(), p.to_str()) {
            (_, Some("-")) => "stdin".to_string(),
            (1, _) => "input".to_string(),
            _ => format!("input{}", i + 1),
        };
        let path = p
            .to_str()
            .ok_or_else(|| Error::usage(format!("do: {} is not a UTF-8 path", p.display())))?;
        t.push_str(&format!(
            "\n[sources.{name}]\ntype = \"file\"\npath = {}\n",
            quote(path)
        ));
        if let Some(f) = a.from {
            t.push_str(&format!("format = \"{}\"\n", format_word(f)));
        }
        if a.on_error == Some(DoOnError::Skip) {
            t.push_str("on_error = \"skip\"\n");
        }
        upstream.push(name);
    }
    let inputs = |names: &[String]| {
        format!(
            "inputs = [{}]\n",
            names
                .iter()
                .map(|n| quote(n))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    // `select(C) | REST` becomes a filter on C and a map of REST, which is the same when C
    // has at most one output, and lets the parse workers run the filter (as a handwritten
    // pipeline's filter would): a one-off is then as fast as the pipeline a user would write.
    let (cond, expr) = match expr.map(split_select) {
        Some(Some((c, rest))) => (Some(c), rest),
        _ => (None, expr),
    };
    if let Some(c) = cond {
        t.push_str(&format!(
            "\n[transforms.select]\ntype = \"filter\"\n{}expr = {}\n",
            inputs(&upstream),
            quote(c)
        ));
        upstream = vec!["select".into()];
    }
    if let Some(e) = expr {
        t.push_str(&format!(
            "\n[transforms.expr]\ntype = \"map\"\n{}expr = {}\n",
            inputs(&upstream),
            quote(e)
        ));
        upstream = vec!["expr".into()];
    }
    if grouped {
        let aggs_text = format!(
            "aggs = {{ {} }}\n",
            aggs.iter()
                .map(|(n, f)| format!("{} = {}", key(n), quote(f)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let key_line =
            a.by.as_deref()
                .map(|k| format!("key = {}\n", quote(k)))
                .unwrap_or_default();
        match (&a.time, &a.window) {
            (Some(time), Some(size)) => t.push_str(&format!(
                "\n[transforms.window]\ntype = \"window\"\n{}{key_line}time = {}\nsize = {}\n{aggs_text}",
                inputs(&upstream),
                quote(time),
                quote(size)
            )),
            _ => t.push_str(&format!(
                "\n[transforms.aggregate]\ntype = \"aggregate\"\n{}{key_line}{aggs_text}emit = \"final\"\n",
                inputs(&upstream)
            )),
        }
        upstream = vec![if a.time.is_some() {
            "window"
        } else {
            "aggregate"
        }
        .into()];
    }
    t.push_str(&format!(
        "\n[sinks.out]\ntype = \"file\"\n{}path = \"-\"\nformat = \"{}\"\n",
        inputs(&upstream),
        format_word(a.to)
    ));
    Ok(t)
}

/// `select(C)` or `select(C) | REST` as (C, REST), when C compiles with at most one output.
/// Anything the scan below cannot be sure of (string interpolation, comments, a `|=` after
/// the parenthesis, `select(..) as $x`, `select(..), ...`) stays one map.
fn split_select(expr: &str) -> Option<(&str, Option<&str>)> {
    let e = expr.trim();
    let body = e.strip_prefix("select")?.trim_start().strip_prefix('(')?;
    if e.contains("\\(") || e.contains('#') {
        return None;
    }
    let (mut depth, mut in_str, mut esc) = (1usize, false, false);
    let mut close = None;
    for (i, ch) in body.char_indices() {
        if in_str {
            match (esc, ch) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close?;
    let cond = body[..close].trim();
    let after = body[close + 1..].trim_start();
    let rest = if after.is_empty() {
        None
    } else {
        let r = after.strip_prefix('|')?;
        if r.starts_with('=') || r.trim().is_empty() {
            return None;
        }
        Some(r.trim())
    };
    let c = crate::expr::Expr::compile(cond).ok()?;
    c.at_most_one_output().then_some((cond, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_argument_that_reads_as_a_file_is_one() {
        assert!(looks_like_file("access.jsonl"));
        assert!(looks_like_file("logs/app.log"));
        assert!(!looks_like_file(".status"));
        assert!(!looks_like_file("select(.a == \"x.csv\")"));
        assert!(!looks_like_file("{path}"));
    }

    #[test]
    fn a_leading_select_splits_only_when_it_is_sure() {
        assert_eq!(split_select("select(.a > 1)"), Some((".a > 1", None)));
        assert_eq!(
            split_select(" select(.s >= 500) | {path, status} "),
            Some((".s >= 500", Some("{path, status}")))
        );
        assert_eq!(
            split_select("select(.p == \")\") | .x"),
            Some((".p == \")\"", Some(".x")))
        );
        // Several outputs of the condition: select emits the record once per true output.
        assert_eq!(split_select("select(.a[] > 1)"), None);
        assert_eq!(split_select("select(.a) |= 1"), None);
        assert_eq!(split_select("select(.a) as $x | $x"), None);
        assert_eq!(split_select("select(.a), .b"), None);
        assert_eq!(
            split_select("select(.a) | .b, select(.c)"),
            Some((".a", Some(".b, select(.c)")))
        );
        assert_eq!(split_select("select(\"\\(.a)\" == \"x\")"), None);
        assert_eq!(split_select("{a} | select(.a)"), None);
        assert_eq!(split_select("select(.a"), None);
    }

    #[test]
    fn problems_are_said_in_flags() {
        let m = "/tmp/x/(weir-do):12:20: node 'expr': `expr`: syntax error\n\
                 /tmp/x/(weir-do):13:8: node 'aggregate': unknown aggregate function `summ`\n\
                 2 problems in /tmp/x/(weir-do)";
        assert_eq!(
            in_flag_words(m),
            "EXPR: `expr`: syntax error\n--by/--agg: unknown aggregate function `summ`"
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("--by"), "--by");
        assert_eq!(shell_word("sum(.a)"), "'sum(.a)'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
