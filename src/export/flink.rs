//! `weir export flink PIPELINE`: the pipeline as a Flink SQL script (for `sql-client.sh -f`).
//!
//! Sources and sinks become filesystem tables; stateless nodes are folded into the queries
//! that read them (a filter is a WHERE, a map a projection), and each stateful node becomes a
//! view: aggregate -> GROUP BY (or a running OVER aggregate for `emit = "updates"`), window ->
//! a TUMBLE/HOP/SESSION table-valued function, dedup -> the ROW_NUMBER pattern, `.late` -> the
//! records whose every window had ended under the watermark when they arrived. Whatever Flink
//! cannot do with the same result is refused (exit 2) with the node and the reason, never
//! approximated silently; the one approximation (dedup's ttl) is said on stderr and in the
//! script.
//!
//! Flink's watermark is the largest time so far minus the declared delay, and a window fires
//! when the watermark reaches its end - 1 ms; weir's fires when `max - out_of_orderness`
//! reaches its end. Declaring the delay as `out_of_orderness + 1 ms` makes both fire, and
//! drop late records, on the same record.
//!
//! One file of about 1,100 lines: every node's translation works on the same model (a
//! `Rel` of `Branch`es folded into queries) and adds to the same script state (`Out`), and the
//! refusals they share only make sense next to the translations they guard.

use super::jq_sql::{self as q, quote, Input, Rec, Sql, Ty};
use super::sample;
use crate::error::{Error, Result};
use crate::pipeline::graph::{Graph, Port};
use crate::pipeline::spec::{
    parse_duration_ms, sink_format, source_format, AggregateConfig, AtEnd, DedupConfig, Emit,
    FileSinkConfig, FileSourceConfig, Format, NodeConfig, OnError, TimeUnit, WindowConfig,
};
use crate::pipeline::PipelineSpec;
use crate::transforms::aggs::{parse_agg, Func};
use std::fmt::Write;

/// Where a query reads from, and the record it sees there.
#[derive(Clone)]
struct Branch {
    /// A table or view name (quoted).
    from: String,
    rec: Rec,
    /// The source table, while no stateful node stands between (windows need its watermark).
    source: Option<usize>,
    /// Whether a filter dropped records of the source on the way (weir's watermark would
    /// then come from fewer records than Flink's).
    filtered: bool,
}

/// A node's output: one branch per input path (a union has several).
#[derive(Clone)]
struct Rel {
    branches: Vec<Branch>,
    /// Whole source records: missing fields are left out on writing, not written as null.
    passthrough: bool,
}

struct Table {
    node: String,
    path: String,
    format: Format,
    cols: Vec<(String, Ty)>,
    at_end: AtEnd,
    on_error: OnError,
    glob: Option<String>,
    /// `(time column expression, out_of_orderness ms, window that asked, watermark delay)`.
    time: Option<(String, i64, String, String)>,
}

struct Out {
    spec_name: String,
    tables: Vec<Table>,
    views: Vec<String>,
    sinks: Vec<String>,
    inserts: Vec<String>,
    notes: Vec<String>,
    streaming: bool,
}

fn refuse(node: &str, msg: impl std::fmt::Display) -> Error {
    Error::usage(format!("node '{node}': {msg}"))
}

/// Builds the script; refusals are usage errors (exit 2) naming the node.
pub fn export(spec: &PipelineSpec, g: &Graph) -> Result<String> {
    let streaming = needs_streaming(spec);
    let mut out = Out {
        spec_name: spec.name.clone(),
        tables: Vec::new(),
        views: Vec::new(),
        sinks: Vec::new(),
        inserts: Vec::new(),
        notes: Vec::new(),
        streaming,
    };
    let mut main: Vec<Option<Rel>> = vec![None; g.nodes.len()];
    let mut late: Vec<Option<Rel>> = vec![None; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        let crate::pipeline::graph::Role::Spec(si) = n.role else {
            return Err(refuse(
                &n.name,
                "dead-letter files have no Flink twin (its formats only fail or skip bad records): use on_error = \"fail\" or \"skip\"",
            ));
        };
        let node = &spec.nodes[si];
        let name = node.name.as_str();
        // The input: the union of the upstream nodes' outputs, by port.
        let mut input = Rel {
            branches: Vec::new(),
            passthrough: true,
        };
        for &e in &n.inputs {
            let edge = &g.edges[e];
            let rel = match edge.port {
                Port::Main => main[edge.from].clone(),
                Port::Late => late[edge.from].clone(),
                Port::Errors(_) => None,
            };
            let rel = rel.ok_or_else(|| refuse(name, "reads an output that has no Flink twin"))?;
            input.passthrough &= rel.passthrough;
            input.branches.extend(rel.branches);
        }
        match &node.config {
            NodeConfig::FileSource(c) => {
                main[i] = Some(source(spec, &mut out, name, c)?);
            }
            NodeConfig::Generate(_) => {
                return Err(refuse(
                    name,
                    "a `generate` source has no Flink twin (Flink's datagen makes other records): write the records to a file and read that",
                ))
            }
            NodeConfig::Filter(c) => {
                main[i] = Some(stateless(name, &input, &format!("select({})", c.expr), true)?);
            }
            NodeConfig::Map(c) => {
                main[i] = Some(stateless(name, &input, &c.expr, false)?);
            }
            NodeConfig::Parse(_) => {
                return Err(refuse(
                    name,
                    "`parse` is not exported yet (regex dialects differ between Rust and Java)",
                ))
            }
            NodeConfig::Aggregate(c) => {
                main[i] = Some(aggregate(&mut out, name, &input, c)?);
            }
            NodeConfig::Window(c) => {
                let (m, l) = window(&mut out, name, &input, c)?;
                main[i] = Some(m);
                late[i] = Some(l);
            }
            NodeConfig::Dedup(c) => {
                main[i] = Some(dedup(&mut out, name, &input, c)?);
            }
            NodeConfig::FileSink(c) => sink(spec, &mut out, name, &input, c)?,
            NodeConfig::ExecSink(_) => {
                return Err(refuse(
                    name,
                    "an `exec` sink has no Flink twin (Flink runs no command per checkpoint): write to a file sink and hand the files on",
                ))
            }
            NodeConfig::SqliteSink(_) | NodeConfig::PostgresSink(_) => {
                return Err(refuse(
                    name,
                    "database sinks are not exported (Flink's JDBC connector is not part of its SQL client's defaults): write to a file sink",
                ))
            }
        }
    }
    for n in &out.notes {
        eprintln!("weir export flink: note: {n}");
    }
    Ok(render(spec, &out))
}

/// Streaming when a source does not finish, or when a result depends on the order records
/// arrive in (watermarks, running updates, first/last, dedup): Flink's batch mode reads in
/// no fixed order and knows no lateness.
fn needs_streaming(spec: &PipelineSpec) -> bool {
    spec.nodes.iter().any(|n| match &n.config {
        NodeConfig::FileSource(c) => c.at_end != AtEnd::Finish,
        _ => order_sensitive(&n.config),
    })
}

fn order_sensitive(c: &NodeConfig) -> bool {
    let first_last = |aggs: &toml::Table| {
        aggs.values().any(|v| {
            v.as_str()
                .is_some_and(|s| s.trim().starts_with("first") || s.trim().starts_with("last"))
        })
    };
    match c {
        NodeConfig::Window(_) | NodeConfig::Dedup(_) => true,
        NodeConfig::Aggregate(a) => a.emit == Emit::Updates || first_last(&a.aggs),
        _ => false,
    }
}

fn source(spec: &PipelineSpec, out: &mut Out, name: &str, c: &FileSourceConfig) -> Result<Rel> {
    if c.path == "-" {
        return Err(refuse(
            name,
            "stdin has no Flink twin: give a file, e.g. `--set sources.NAME.path=in.jsonl`",
        ));
    }
    if c.on_error == OnError::DeadLetter {
        return Err(refuse(
            name,
            "on_error = \"dead_letter\" has no Flink twin (its formats only fail or skip bad records)",
        ));
    }
    let format = source_format(&c.path, c.format);
    if format == Format::Lines {
        return Err(refuse(name, "the `lines` format is not exported yet"));
    }
    let path = spec.resolve(&c.path);
    let cols = sample::learn(&path, format)
        .map_err(|e| refuse(name, e))?
        .cols;
    if c.infer_types == Some(false) && matches!(format, Format::Csv | Format::Tsv) {
        return Err(refuse(name, "infer_types = false is not exported yet"));
    }
    if let Some((n, _)) = cols.iter().find(|(n, _)| n.starts_with("weir_")) {
        return Err(refuse(
            name,
            format!("field `{n}`: names starting with weir_ are the exported script's own columns"),
        ));
    }
    let text = path.to_string_lossy().to_string();
    let glob = text.contains(['*', '?', '[']).then(|| text.clone());
    let csv = matches!(format, Format::Csv | Format::Tsv);
    // CSV columns are read as text (so the header row reads at all) and cast here; the header
    // row itself is the one whose every cell is its column's name.
    let fields: Vec<(String, Sql)> = cols
        .iter()
        .map(|(n, t)| {
            let col = Sql::column(n, t.clone());
            let s = if csv && *t != Ty::Str {
                Sql::new(
                    format!("CAST({} AS {})", quote(n), t.sql()),
                    t.clone(),
                    true,
                )
            } else {
                col
            };
            (n.clone(), s)
        })
        .collect();
    let mut conds = Vec::new();
    if csv {
        let header: Vec<String> = cols
            .iter()
            .map(|(n, _)| format!("{} = {}", quote(n), q::lit(n)))
            .collect();
        conds.push(format!("NOT ({})", header.join(" AND ")));
    }
    out.tables.push(Table {
        node: name.to_string(),
        path: text,
        format,
        cols: if csv {
            cols.iter().map(|(n, _)| (n.clone(), Ty::Str)).collect()
        } else {
            cols
        },
        at_end: c.at_end,
        on_error: c.on_error,
        glob,
        time: None,
    });
    Ok(Rel {
        branches: vec![Branch {
            from: quote(name),
            rec: Rec { fields, conds },
            source: Some(out.tables.len() - 1),
            filtered: false,
        }],
        passthrough: true,
    })
}

fn stateless(name: &str, input: &Rel, expr: &str, is_filter: bool) -> Result<Rel> {
    let mut branches = Vec::new();
    let mut passthrough = input.passthrough;
    for b in &input.branches {
        let rec = q::with_term(expr, |t| q::record(t, &b.rec))
            .map_err(|e| refuse(name, format!("expression `{expr}`: {e}")))?;
        let filtered = b.filtered || rec.conds.len() > b.rec.conds.len();
        passthrough &= is_filter || rec.fields == b.rec.fields;
        branches.push(Branch {
            from: b.from.clone(),
            rec,
            source: b.source,
            filtered,
        });
    }
    Ok(Rel {
        branches,
        passthrough,
    })
}

/// The record's fields as the columns of a view that selected them.
fn as_columns(rec: &Rec) -> Vec<(String, Sql)> {
    rec.fields
        .iter()
        .map(|(n, s)| {
            let mut c = Sql::column(n, s.ty.clone());
            c.nullable = s.nullable;
            (n.clone(), c)
        })
        .collect()
}

/// `SELECT <fields> FROM <from> WHERE <conds>` for one branch, plus extra columns.
fn select(b: &Branch, extra: &[String]) -> String {
    let mut cols: Vec<String> = b
        .rec
        .fields
        .iter()
        .map(|(n, s)| format!("{} AS {}", s.text, quote(n)))
        .collect();
    cols.extend(extra.iter().cloned());
    let mut s = format!("SELECT {} FROM {}", cols.join(", "), b.from);
    if !b.rec.conds.is_empty() {
        let _ = write!(s, " WHERE {}", b.rec.conds.join(" AND "));
    }
    s
}

/// The one branch an order-sensitive node may read: several would interleave in an order
/// weir does not take, and a glob's files reach Flink in no fixed order.
fn one_branch<'a>(out: &Out, name: &str, input: &'a Rel, what: &str) -> Result<&'a Branch> {
    let [b] = input.branches.as_slice() else {
        return Err(refuse(
            name,
            format!(
                "{what} over a union of inputs: Flink interleaves them in another order than weir"
            ),
        ));
    };
    if let Some(t) = b.source.map(|s| &out.tables[s]) {
        if t.glob.is_some() {
            return Err(refuse(
                name,
                format!(
                    "{what} depends on the order records arrive, and Flink reads the files of a glob ({}) in no fixed order: read one file",
                    t.path
                ),
            ));
        }
    } else {
        return Err(refuse(
            name,
            format!("{what} after another stateful node is not exported yet"),
        ));
    }
    Ok(b)
}

struct Agg {
    name: String,
    /// The aggregate call, `{}` standing for the argument column.
    call: String,
    ty: Ty,
    nullable: bool,
    arg: Option<Sql>,
}

/// The aggregates of a node, their arguments translated in the record `rec`.
fn aggs(name: &str, table: &toml::Table, rec: &Rec) -> Result<Vec<Agg>> {
    let mut v = Vec::new();
    for (an, text) in table {
        let text = text
            .as_str()
            .ok_or_else(|| refuse(name, format!("aggregate `{an}` is not a string")))?;
        let spec = parse_agg(an, text).map_err(|(_, m)| refuse(name, m))?;
        let arg = match &spec.arg {
            None => None,
            Some(e) => Some(
                q::with_term(e.source(), |t| agg_arg(t, rec, spec.func))
                    .map_err(|m| refuse(name, format!("aggregate `{an} = \"{text}\"`: {m}")))?,
            ),
        };
        let num = |a: &Option<Sql>| -> Result<Ty> {
            match a.as_ref().map(|s| &s.ty) {
                Some(t @ (Ty::Int | Ty::Dbl)) => Ok(t.clone()),
                _ => Err(refuse(
                    name,
                    format!("aggregate `{an} = \"{text}\"`: its argument is not a number"),
                )),
            }
        };
        let arg_ty = arg.as_ref().map(|a| a.ty.clone()).unwrap_or(Ty::Int);
        let (call, ty, nullable) = match spec.func {
            Func::Count if arg.is_none() => ("COUNT(*)".to_string(), Ty::Int, false),
            Func::Count => ("COUNT({})".into(), Ty::Int, false),
            Func::Sum => ("COALESCE(SUM({}), 0)".into(), num(&arg)?, false),
            Func::Avg => {
                num(&arg)?;
                ("AVG(CAST({} AS DOUBLE))".into(), Ty::Dbl, true)
            }
            Func::Min => ("MIN({})".into(), arg_ty, true),
            Func::Max => ("MAX({})".into(), arg_ty, true),
            Func::First => ("FIRST_VALUE({})".into(), arg_ty, true),
            Func::Last => ("LAST_VALUE({})".into(), arg_ty, true),
            Func::CountDistinct => ("COUNT(DISTINCT {})".into(), Ty::Int, false),
        };
        if matches!(ty, Ty::Row(_)) {
            return Err(refuse(
                name,
                format!("aggregate `{an}`: objects have no SQL aggregate here"),
            ));
        }
        v.push(Agg {
            name: an.clone(),
            call,
            ty,
            nullable,
            arg,
        });
    }
    Ok(v)
}

/// An aggregate's argument: a value, or `select(c) | value` (NULL where `c` fails: every
/// function but `count` skips nulls, and weir's `count(e)` counts non-null values too).
fn agg_arg(
    t: &jaq_core::load::parse::Term<&str>,
    rec: &Rec,
    f: Func,
) -> std::result::Result<Sql, String> {
    use jaq_core::load::parse::{BinaryOp, Term};
    fn select_cond<'a>(t: &'a Term<&'a str>) -> Option<&'a Term<&'a str>> {
        match t {
            Term::Call(n, a) if *n == "select" && a.len() == 1 => Some(&a[0]),
            _ => None,
        }
    }
    if let Some(c) = select_cond(t) {
        if f != Func::Count {
            return Err("select(...) alone yields a record, which only count can take".into());
        }
        let c = q::scalar(c, Input::Record(rec))?;
        return Ok(Sql::new(
            format!("CASE WHEN {} THEN 1 END", q::truthy(&c)),
            Ty::Int,
            true,
        ));
    }
    if let Term::BinOp(l, BinaryOp::Pipe(None), r) = t {
        if let Some(c) = select_cond(l) {
            let c = q::scalar(c, Input::Record(rec))?;
            let v = q::scalar(r, Input::Record(rec))?;
            return Ok(Sql::new(
                format!("CASE WHEN {} THEN {} END", q::truthy(&c), v.text),
                v.ty,
                true,
            ));
        }
    }
    q::scalar(t, Input::Record(rec))
}

fn key_of(name: &str, key: Option<&str>, rec: &Rec) -> Result<Sql> {
    match key {
        None => Ok(Sql::new("CAST(NULL AS STRING)", Ty::Str, true)),
        Some(k) => q::with_term(k, |t| q::scalar(t, Input::Record(rec)))
            .map_err(|e| refuse(name, format!("key `{k}`: {e}"))),
    }
}

/// The per-record columns of a stateful node: `weir_key`, `weir_a0`.. over each branch.
fn keyed_input(
    name: &str,
    input: &Rel,
    key: Option<&str>,
    table: &toml::Table,
    extra: &[String],
) -> Result<(String, Sql, Vec<Agg>)> {
    let mut parts = Vec::new();
    let mut key_ty: Option<Sql> = None;
    let mut specs: Option<Vec<Agg>> = None;
    for b in &input.branches {
        let k = key_of(name, key, &b.rec)?;
        let a = aggs(name, table, &b.rec)?;
        let mut cols = vec![format!("{} AS `weir_key`", k.text)];
        for (i, x) in a.iter().enumerate() {
            if let Some(arg) = &x.arg {
                cols.push(format!("{} AS `weir_a{i}`", arg.text));
            }
        }
        cols.extend(extra.iter().cloned());
        let mut s = format!("SELECT {} FROM {}", cols.join(", "), b.from);
        if !b.rec.conds.is_empty() {
            let _ = write!(s, " WHERE {}", b.rec.conds.join(" AND "));
        }
        parts.push(s);
        if let Some(have) = &key_ty {
            if q::unify(&have.ty, &k.ty).is_none() {
                return Err(refuse(
                    name,
                    "its key has different types on different inputs",
                ));
            }
        }
        key_ty = Some(k);
        specs = Some(a);
    }
    let (Some(k), Some(a)) = (key_ty, specs) else {
        return Err(refuse(name, "has no input"));
    };
    Ok((parts.join(" UNION ALL "), k, a))
}

fn agg_call(a: &Agg, i: usize) -> String {
    a.call.replace("{}", &format!("`weir_a{i}`"))
}

fn output_rel(view: &str, k: &Sql, with_key: bool, head: &[(&str, Ty)], a: &[Agg]) -> Rel {
    let mut fields = Vec::new();
    if with_key {
        fields.push(("key".to_string(), Sql::column("key", k.ty.clone())));
    }
    for (n, t) in head {
        fields.push((n.to_string(), Sql::column(n, t.clone())));
    }
    for x in a {
        let mut s = Sql::column(&x.name, x.ty.clone());
        s.nullable = x.nullable;
        fields.push((x.name.clone(), s));
    }
    Rel {
        branches: vec![Branch {
            from: quote(view),
            rec: Rec {
                fields,
                conds: Vec::new(),
            },
            source: None,
            filtered: false,
        }],
        passthrough: false,
    }
}

fn aggregate(out: &mut Out, name: &str, input: &Rel, c: &AggregateConfig) -> Result<Rel> {
    if c.state_ttl.is_some() {
        return Err(refuse(
            name,
            "state_ttl counts event time in weir and processing time in Flink: not exported",
        ));
    }
    let over = c.emit == Emit::Updates;
    if over || order_sensitive(&NodeConfig::Aggregate(c.clone())) {
        one_branch(out, name, input, "a running aggregate")?;
    }
    if !over && out.streaming {
        return Err(refuse(
            name,
            "emit = \"final\" needs Flink's batch mode (a streaming GROUP BY writes updates a file cannot take), and this pipeline runs streaming (a source does not finish, or a window, dedup or running aggregate needs arrival order): use emit = \"updates\"",
        ));
    }
    let extra = if over {
        vec!["`weir_proc`".to_string()]
    } else {
        vec![]
    };
    let (inner, k, a) = keyed_input(name, input, c.key.as_deref(), &c.aggs, &extra)?;
    let mut cols = vec!["`weir_key` AS `key`".to_string()];
    for (i, x) in a.iter().enumerate() {
        let call = agg_call(x, i);
        let call = if over {
            // Each record's new result: the aggregate over the key's records so far.
            let w = "OVER (PARTITION BY `weir_key` ORDER BY `weir_proc` ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)";
            match call
                .strip_prefix("COALESCE(")
                .and_then(|s| s.strip_suffix(", 0)"))
            {
                Some(inner) => format!("COALESCE({inner} {w}, 0)"),
                None => format!("{call} {w}"),
            }
        } else {
            call
        };
        cols.push(format!("{call} AS {}", quote(&x.name)));
    }
    let group = if over { "" } else { " GROUP BY `weir_key`" };
    out.views.push(format!(
        "-- {name}: aggregate, emit = \"{}\"\nCREATE TEMPORARY VIEW {} AS\nSELECT {}\nFROM ({inner}){group};",
        if over { "updates" } else { "final" },
        quote(name),
        cols.join(", ")
    ));
    Ok(output_rel(name, &k, true, &[], &a))
}

/// `INTERVAL 'd hh:mm:ss.fff' DAY TO SECOND(3)`, Flink's own interval type (its planner takes
/// no other DAY precision, so 99 days at most), exact to the millisecond.
fn interval(name: &str, ms: i64) -> Result<String> {
    let (d, rest) = (ms / 86_400_000, ms % 86_400_000);
    if !(0..100).contains(&d) {
        return Err(refuse(
            name,
            "a duration of 100 days or more has no Flink interval literal",
        ));
    }
    Ok(format!(
        "INTERVAL '{d} {:02}:{:02}:{:02}.{:03}' DAY TO SECOND(3)",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    ))
}

/// A TIMESTAMP_LTZ(3) from the value of weir's `time` expression.
fn time_column(name: &str, t: &Sql, unit: TimeUnit) -> Result<String> {
    Ok(match (&t.ty, unit) {
        // Flink's parsers ignore the offset of an RFC 3339 time: parse the local part, then
        // move it by the offset read from the text (Z, +hh:mm or -hh:mm).
        (Ty::Str, _) => {
            let v = &t.text;
            let fmt = "'yyyy-MM-dd''T''HH:mm:ss[.SSSSSSSSS][.SSSSSS][.SSS][.SS][.S]XXX'";
            format!(
                "TIMESTAMPADD(MINUTE, CASE WHEN UPPER(RIGHT({v}, 1)) = 'Z' THEN 0 ELSE (CASE WHEN SUBSTRING({v} FROM CHAR_LENGTH({v}) - 5 FOR 1) = '-' THEN 1 ELSE -1 END) * (CAST(SUBSTRING({v} FROM CHAR_LENGTH({v}) - 4 FOR 2) AS INT) * 60 + CAST(RIGHT({v}, 2) AS INT)) END, TO_TIMESTAMP_LTZ({v}, {fmt}))"
            )
        }
        (Ty::Int, TimeUnit::S) => format!("TO_TIMESTAMP_LTZ({}, 0)", t.text),
        (Ty::Int, TimeUnit::Ms) => format!("TO_TIMESTAMP_LTZ({}, 3)", t.text),
        (Ty::Dbl, TimeUnit::S) => {
            format!(
                "TO_TIMESTAMP_LTZ(CAST(ROUND({} * 1000) AS BIGINT), 3)",
                t.text
            )
        }
        (Ty::Dbl, TimeUnit::Ms) => {
            format!("TO_TIMESTAMP_LTZ(CAST(ROUND({}) AS BIGINT), 3)", t.text)
        }
        _ => {
            return Err(refuse(
                name,
                "its time is neither an RFC 3339 string nor an epoch number",
            ))
        }
    })
}

/// Epoch milliseconds of a TIMESTAMP_LTZ column (the session time zone is UTC).
fn millis(col: &str) -> String {
    format!(
        "(EXTRACT(EPOCH FROM CAST({col} AS TIMESTAMP(3))) * 1000 + EXTRACT(MILLISECOND FROM CAST({col} AS TIMESTAMP(3))))"
    )
}

/// RFC 3339 text of a window bound, as weir writes it (milliseconds only when there are any).
fn rfc3339(col: &str) -> String {
    format!(
        "CONCAT(REGEXP_REPLACE(DATE_FORMAT({col}, 'yyyy-MM-dd''T''HH:mm:ss.SSS'), '\\.000$', ''), 'Z')"
    )
}

fn window(out: &mut Out, name: &str, input: &Rel, c: &WindowConfig) -> Result<(Rel, Rel)> {
    let b = one_branch(out, name, input, "a window")?.clone();
    if b.filtered {
        return Err(refuse(
            name,
            "its input is filtered: Flink's watermark comes from every record of the source table, weir's from the records the window reads, so lateness would differ. Filter after the window, or in the source file",
        ));
    }
    let src = b.source.unwrap_or_default();
    if matches!(out.tables[src].format, Format::Csv | Format::Tsv) {
        return Err(refuse(
            name,
            "a window over a CSV source is not exported (Flink reads the header row as a record)",
        ));
    }
    let dur = |what: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| parse_duration_ms(s).map_err(|e| refuse(name, format!("{what}: {e}"))))
            .transpose()
    };
    if let Some(f) = &c.time_format {
        return Err(refuse(
            name,
            format!("time_format = \"{f}\" is not exported yet (strftime and Java's patterns differ): times must be RFC 3339 or epoch numbers"),
        ));
    }
    let ooo = dur("out_of_orderness", &c.out_of_orderness)?.unwrap_or(0);
    let lateness = dur("allowed_lateness", &c.allowed_lateness)?.unwrap_or(0);
    if lateness != 0 {
        return Err(refuse(
            name,
            "allowed_lateness > 0 fires a window again with an updated result, which Flink's window functions do not do (its legacy windows emit retractions a file cannot take): set allowed_lateness = \"0s\"",
        ));
    }
    let (size, slide, gap) = (
        dur("size", &c.size)?,
        dur("slide", &c.slide)?,
        dur("gap", &c.gap)?,
    );
    let t = q::with_term(&c.time, |t| q::scalar(t, Input::Record(&b.rec)))
        .map_err(|e| refuse(name, format!("time `{}`: {e}", c.time)))?;
    let col = time_column(name, &t, c.time_unit.unwrap_or_default())?;
    let table = &mut out.tables[src];
    match &table.time {
        Some((have, o, other, _)) if *have != col || *o != ooo => {
            return Err(refuse(
                name,
                format!("source '{}' already has another time or out_of_orderness (window '{other}'): a Flink table has one watermark", table.node),
            ))
        }
        _ => table.time = Some((col, ooo, name.to_string(), interval(name, ooo + 1)?)),
    }
    let from = &b.from;
    let (tvf, last_end) = match (size, slide, gap) {
        (Some(size), None, None) if size > 0 => (
            format!(
                "TUMBLE(TABLE `weir_in_{name}`, DESCRIPTOR(`weir_time`), {})",
                interval(name, size)?
            ),
            format!("`weir_ms` - MOD(`weir_ms`, {size}) + {size}"),
        ),
        (Some(size), Some(slide), None) if size > 0 && slide > 0 => {
            if size % slide != 0 {
                return Err(refuse(
                    name,
                    "Flink's HOP needs size to be a multiple of slide",
                ));
            }
            (
                format!(
                    "HOP(TABLE `weir_in_{name}`, DESCRIPTOR(`weir_time`), {}, {})",
                    interval(name, slide)?,
                    interval(name, size)?
                ),
                format!("`weir_ms` - MOD(`weir_ms`, {slide}) + {size}"),
            )
        }
        (None, None, Some(gap)) if gap > 0 => (
            format!(
                "SESSION(TABLE `weir_in_{name}`{}, DESCRIPTOR(`weir_time`), {})",
                if c.key.is_some() {
                    " PARTITION BY `weir_key`"
                } else {
                    ""
                },
                interval(name, gap)?
            ),
            format!("`weir_ms` + {gap}"),
        ),
        _ => return Err(refuse(name, "needs size, size and slide, or gap")),
    };
    // Late, by weir's rule: every window of the record had ended under the watermark (the
    // largest time so far, this record's included, minus out_of_orderness) when it arrived.
    // The window reads only the other records: Flink's session windows would otherwise take
    // a record that is late on its own but merges into a session still open.
    let late_cond = format!("{last_end} <= `weir_max_ms` - {ooo}");
    out.views.push(format!(
        "-- {name}: each record with the watermark it arrives under\nCREATE TEMPORARY VIEW `weir_marked_{name}` AS\nSELECT *, {ms} AS `weir_ms`, MAX({ms}) OVER (ORDER BY `weir_proc` ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS `weir_max_ms` FROM {from};",
        ms = millis("`weir_time`"),
    ));
    let mut on_time = b.clone();
    on_time.from = format!("`weir_marked_{name}`");
    on_time.rec.conds.push(format!("NOT ({late_cond})"));
    let single = Rel {
        branches: vec![on_time],
        passthrough: input.passthrough,
    };
    let (inner, k, a) = keyed_input(
        name,
        &single,
        c.key.as_deref(),
        &c.aggs,
        &["`weir_time`".into()],
    )?;
    let mut cols = vec![
        "`weir_key`".to_string(),
        "`window_start` AS `weir_ws`".into(),
        "`window_end` AS `weir_we`".into(),
    ];
    for (i, x) in a.iter().enumerate() {
        cols.push(format!("{} AS `weir_r{i}`", agg_call(x, i)));
    }
    let mut outer = Vec::new();
    if c.key.is_some() {
        outer.push("`weir_key` AS `key`".to_string());
    }
    outer.push(format!("{} AS `window_start`", rfc3339("`weir_ws`")));
    outer.push(format!("{} AS `window_end`", rfc3339("`weir_we`")));
    for (i, x) in a.iter().enumerate() {
        outer.push(format!("`weir_r{i}` AS {}", quote(&x.name)));
    }
    out.views.push(format!(
        "-- {name}: window\nCREATE TEMPORARY VIEW `weir_in_{name}` AS\n{inner};\nCREATE TEMPORARY VIEW {} AS\nSELECT {}\nFROM (SELECT {} FROM TABLE({tvf}) GROUP BY `window_start`, `window_end`, `weir_key`);",
        quote(name),
        outer.join(", "),
        cols.join(", ")
    ));
    let fields: Vec<String> = b
        .rec
        .fields
        .iter()
        .map(|(n, s)| format!("{} AS {}", s.text, quote(n)))
        .collect();
    out.views.push(format!(
        "-- {name}.late: the records the window drops\nCREATE TEMPORARY VIEW `weir_late_{name}` AS\nSELECT {}\nFROM `weir_marked_{name}`\nWHERE {late_cond};",
        fields.join(", "),
    ));
    let late = Rel {
        branches: vec![Branch {
            from: format!("`weir_late_{name}`"),
            rec: Rec {
                fields: as_columns(&b.rec),
                conds: Vec::new(),
            },
            source: None,
            filtered: false,
        }],
        passthrough: input.passthrough,
    };
    let head = [("window_start", Ty::Str), ("window_end", Ty::Str)];
    let mut main = output_rel(name, &k, c.key.is_some(), &head, &a);
    for f in main.branches[0].rec.fields.iter_mut() {
        if f.0 == "window_start" || f.0 == "window_end" {
            f.1.nullable = false;
        }
    }
    Ok((main, late))
}

fn dedup(out: &mut Out, name: &str, input: &Rel, c: &DedupConfig) -> Result<Rel> {
    let b = one_branch(out, name, input, "dedup")?.clone();
    let k = key_of(name, Some(&c.key), &b.rec)?;
    let ttl = match &c.ttl {
        toml::Value::String(s) => s.clone(),
        v => format!("{v} records"),
    };
    out.notes.push(format!(
        "dedup '{name}' keeps the first record of each key for as long as Flink keeps the key's state; weir forgets a key {ttl} after keeping it: the results agree while no key comes back more than that later"
    ));
    let inner = select(
        &b,
        &[format!("{} AS `weir_key`", k.text), "`weir_proc`".into()],
    );
    let cols: Vec<String> = b.rec.fields.iter().map(|(n, _)| quote(n)).collect();
    out.views.push(format!(
        "-- {name}: dedup by `{}` (weir's ttl = {ttl}: see the note at the top)\nCREATE TEMPORARY VIEW {} AS\nSELECT {}\nFROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY `weir_key` ORDER BY `weir_proc` ASC) AS `weir_rn` FROM ({inner}))\nWHERE `weir_rn` = 1;",
        c.key,
        quote(name),
        cols.join(", ")
    ));
    let fields = as_columns(&b.rec);
    Ok(Rel {
        branches: vec![Branch {
            from: quote(name),
            rec: Rec {
                fields,
                conds: Vec::new(),
            },
            source: None,
            filtered: false,
        }],
        passthrough: input.passthrough,
    })
}

fn sink(
    spec: &PipelineSpec,
    out: &mut Out,
    name: &str,
    input: &Rel,
    c: &FileSinkConfig,
) -> Result<()> {
    if c.path == "-" {
        return Err(refuse(
            name,
            "stdout has no Flink twin (its print connector writes changelog rows to the task logs): give a file, e.g. `--set sinks.NAME.path=out.jsonl`",
        ));
    }
    let format = sink_format(&c.path, c.format);
    // The columns: every branch's fields, by name, in the first branch's order.
    let mut cols: Vec<(String, Ty)> = Vec::new();
    for b in &input.branches {
        for (n, s) in &b.rec.fields {
            match cols.iter_mut().find(|(m, _)| m == n) {
                None => cols.push((n.clone(), s.ty.clone())),
                Some((_, t)) => {
                    *t = q::unify(t, &s.ty).ok_or_else(|| {
                        refuse(
                            name,
                            format!("field `{n}` has different types on different inputs"),
                        )
                    })?
                }
            }
        }
    }
    for (_, t) in cols.iter_mut() {
        if *t == Ty::Null {
            *t = Ty::Str;
        }
    }
    let mut parts = Vec::new();
    for b in &input.branches {
        let sel: Vec<String> = cols
            .iter()
            .map(|(n, t)| match b.rec.fields.iter().find(|(m, _)| m == n) {
                Some((_, s)) if s.ty == *t => s.text.clone(),
                Some((_, s)) => format!("CAST({} AS {})", s.text, t.sql()),
                None => format!("CAST(NULL AS {})", t.sql()),
            })
            .collect();
        let mut s = format!("SELECT {} FROM {}", sel.join(", "), b.from);
        if !b.rec.conds.is_empty() {
            let _ = write!(s, " WHERE {}", b.rec.conds.join(" AND "));
        }
        parts.push(s);
    }
    let path = spec.resolve(&c.path).to_string_lossy().to_string();
    let mut with = vec![
        ("connector".to_string(), "filesystem".to_string()),
        ("path".into(), path),
    ];
    match format {
        Format::Jsonl => {
            with.push(("format".into(), "json".into()));
            if input.passthrough {
                with.push(("json.encode.ignore-null-fields".into(), "true".into()));
            }
        }
        Format::Csv => with.push(("format".into(), "csv".into())),
        Format::Tsv => {
            with.push(("format".into(), "csv".into()));
            with.push(("csv.field-delimiter".into(), "\t".into()));
        }
        Format::Lines => return Err(refuse(name, "the `lines` format is not a sink format")),
    }
    out.sinks.push(create_table(name, &cols, &[], &with));
    out.inserts.push(format!(
        "INSERT INTO {}\n{};",
        quote(name),
        parts.join("\nUNION ALL\n")
    ));
    Ok(())
}

fn create_table(
    name: &str,
    cols: &[(String, Ty)],
    computed: &[String],
    with: &[(String, String)],
) -> String {
    let mut lines: Vec<String> = cols
        .iter()
        .map(|(n, t)| format!("  {} {}", quote(n), t.sql()))
        .collect();
    lines.extend(computed.iter().map(|c| format!("  {c}")));
    let with: Vec<String> = with
        .iter()
        .map(|(k, v)| format!("  {} = {}", q::lit(k), q::lit(v)))
        .collect();
    format!(
        "CREATE TABLE {} (\n{}\n) WITH (\n{}\n);",
        quote(name),
        lines.join(",\n"),
        with.join(",\n")
    )
}

/// A glob as a Java regex over the absolute path, and the directory it starts from.
fn glob_regex(glob: &str) -> (String, String) {
    let cut = glob.find(['*', '?', '[']).unwrap_or(glob.len());
    let dir = match glob[..cut].rfind('/') {
        Some(i) => glob[..i.max(1)].to_string(),
        None => ".".into(),
    };
    let mut re = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' || c == '[' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                re.push(']');
            }
            c if "\\.^$|+(){}".contains(c) => {
                re.push('\\');
                re.push(c);
            }
            c => re.push(c),
        }
    }
    (dir, re)
}

fn render(spec: &PipelineSpec, out: &Out) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "-- Flink SQL for weir pipeline '{}' ({}), written by `weir export flink`.\n-- Run it with: sql-client.sh -f THIS_FILE",
        out.spec_name,
        spec.file.display()
    );
    for n in &out.notes {
        let _ = writeln!(s, "-- Note: {n}");
    }
    let mut set = |k: &str, v: &str, why: &str| {
        if !why.is_empty() {
            let _ = writeln!(s, "-- {why}");
        }
        let _ = writeln!(s, "SET {} = {};", q::lit(k), q::lit(v));
    };
    if out.streaming {
        set(
            "execution.runtime-mode",
            "streaming",
            "Streaming: a source does not finish, or a result depends on the order records arrive in.",
        );
        set(
            "parallelism.default",
            "1",
            "One reader and one instance per operator: records keep the order weir reads them in.",
        );
        set(
            "pipeline.auto-watermark-interval",
            "0 ms",
            "A watermark after every record that advances it, as weir's, not every 200 ms.",
        );
        set("table.optimizer.agg-phase-strategy", "ONE_PHASE", "");
    } else {
        set(
            "execution.runtime-mode",
            "batch",
            "Batch: every source finishes and no result depends on arrival order.",
        );
    }
    set("table.local-time-zone", "UTC", "weir's times are UTC.");
    if out.streaming {
        let ck = &spec.checkpoint;
        let every = ck.every.as_deref();
        let ms = every
            .and_then(|e| parse_duration_ms(e).ok())
            .unwrap_or(10_000);
        let why = if every == Some("off") {
            "[checkpoint] every = \"off\", but Flink's file sinks commit only at checkpoints."
        } else if ck.every_records.is_some() {
            "[checkpoint] every_records has no Flink twin; checkpoints by time instead."
        } else {
            "From [checkpoint] (weir's default: every 10 s)."
        };
        set("execution.checkpointing.interval", &format!("{ms} ms"), why);
        if let Some(r) = ck.retain {
            set("execution.checkpointing.num-retained", &r.to_string(), "");
        }
        if let Some(d) = &ck.dir {
            let dir = spec.resolve(d).to_string_lossy().to_string();
            set("execution.checkpointing.dir", &format!("file://{dir}"), "");
        }
    }
    let r = &spec.restart;
    if let Some(n) = r.attempts {
        let delay = r
            .delay
            .as_deref()
            .and_then(|d| parse_duration_ms(d).ok())
            .unwrap_or(1000);
        match r.backoff {
            Some(b) if b != 1.0 => {
                set(
                    "restart-strategy.type",
                    "exponential-delay",
                    "From [restart].",
                );
                set(
                    "restart-strategy.exponential-delay.initial-backoff",
                    &format!("{delay} ms"),
                    "",
                );
                set(
                    "restart-strategy.exponential-delay.backoff-multiplier",
                    &b.to_string(),
                    "",
                );
                set(
                    "restart-strategy.exponential-delay.attempts-before-reset-backoff",
                    &n.to_string(),
                    "",
                );
            }
            _ => {
                set("restart-strategy.type", "fixed-delay", "From [restart].");
                set("restart-strategy.fixed-delay.attempts", &n.to_string(), "");
                set(
                    "restart-strategy.fixed-delay.delay",
                    &format!("{delay} ms"),
                    "",
                );
            }
        }
    }
    s.push('\n');
    for t in &out.tables {
        let mut computed = Vec::new();
        if out.streaming {
            computed.push("`weir_proc` AS PROCTIME()".to_string());
        }
        if let Some((col, _, _, delay)) = &t.time {
            computed.push(format!("`weir_time` AS {col}"));
            computed.push(format!(
                "WATERMARK FOR `weir_time` AS `weir_time` - {delay}"
            ));
        }
        let mut with = vec![("connector".to_string(), "filesystem".to_string())];
        match &t.glob {
            Some(g) => {
                let (dir, re) = glob_regex(g);
                with.push(("path".into(), dir));
                with.push(("source.path.regex-pattern".into(), re));
            }
            None => with.push(("path".into(), t.path.clone())),
        }
        match t.format {
            Format::Jsonl => {
                with.push(("format".into(), "json".into()));
                if t.on_error == OnError::Skip {
                    with.push(("json.ignore-parse-errors".into(), "true".into()));
                }
            }
            Format::Csv | Format::Tsv => {
                with.push(("format".into(), "csv".into()));
                if t.format == Format::Tsv {
                    with.push(("csv.field-delimiter".into(), "\t".into()));
                }
                if t.on_error == OnError::Skip {
                    with.push(("csv.ignore-parse-errors".into(), "true".into()));
                }
            }
            Format::Lines => {}
        }
        if t.at_end != AtEnd::Finish {
            with.push(("source.monitor-interval".into(), "1 s".into()));
        }
        let _ = writeln!(s, "-- source {}", t.node);
        let _ = writeln!(s, "{}\n", create_table(&t.node, &t.cols, &computed, &with));
    }
    for v in &out.views {
        let _ = writeln!(s, "{v}\n");
    }
    for k in &out.sinks {
        let _ = writeln!(s, "{k}\n");
    }
    s.push_str("EXECUTE STATEMENT SET\nBEGIN\n");
    for i in &out.inserts {
        let _ = writeln!(s, "{i}");
    }
    s.push_str("END;\n");
    s
}
