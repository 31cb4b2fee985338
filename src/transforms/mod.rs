//! Transforms, and turning a transform's config into its runtime operator in two steps:
//! `compile` checks the config and compiles every expression, regex, duration and aggregate
//! once, up front, so mistakes are reported before any data is read; the [`Compiled`] config
//! it returns is what the plan reads (fields, pushdown, folding) and what makes a fresh
//! operator for every attempt of a run (`Compiled::operator`).

pub mod aggregate;
pub mod aggs;
pub mod dedup;
pub mod filter;
pub mod keyed;
pub mod keygroup;
pub mod map;
pub mod parallel;
pub mod parse;
pub mod presets;
pub mod window;

use crate::expr::Expr;
use crate::pipeline::spec::{keyed_parallelism, parse_duration_ms, Emit, NodeConfig, TimeUnit};
use crate::pipeline::spec::{DEFAULT_MAX_PARALLELISM, MAX_MAX_PARALLELISM};
use crate::pipeline::NodeSpec;
use crate::runtime::stage::Operator;
use crate::time::window::Assigner;
use crate::time::TimeExpr;
use std::ops::Range;

/// Problems found while building: a span in the pipeline file and a message.
pub type BuildProblems = Vec<(Range<usize>, String)>;

/// Compiles an expression written under `key`; the span points into the expression.
pub fn compile(node: &NodeSpec, key: &str, src: &str, p: &mut BuildProblems) -> Option<Expr> {
    match Expr::compile(src) {
        Ok(e) => Some(e),
        Err(e) => {
            let span = node.key_span(key);
            // +1 skips the opening quote of a TOML string.
            let at = span.start + 1 + e.offset;
            p.push((at..at, format!("`{key}`: {}", e.message)));
            None
        }
    }
}

pub fn duration(node: &NodeSpec, key: &str, v: &str, p: &mut BuildProblems) -> Option<i64> {
    match parse_duration_ms(v) {
        Ok(ms) => Some(ms),
        Err(m) => {
            p.push((node.key_span(key), format!("`{key}`: {m}")));
            None
        }
    }
}

/// The event time of a node: `time` read with `time_unit` or, for strings, `time_format`.
fn time_expr(
    node: &NodeSpec,
    expr: Expr,
    unit: Option<TimeUnit>,
    format: &Option<String>,
    p: &mut BuildProblems,
) -> TimeExpr {
    if let Some(f) = format {
        if let Err(m) = crate::time::check_format(f) {
            p.push((node.key_span("time_format"), format!("`time_format`: {m}")));
        }
    }
    TimeExpr::new(expr, unit.unwrap_or(TimeUnit::S)).with_format(format.clone())
}

pub fn aggs(node: &NodeSpec, table: &toml::Table, p: &mut BuildProblems) -> Vec<aggs::AggSpec> {
    let mut out = Vec::new();
    if table.is_empty() {
        p.push((
            node.key_span("aggs"),
            "`aggs` is empty: name at least one aggregate, like aggs = { n = \"count\" }".into(),
        ));
    }
    for (name, v) in table {
        let Some(text) = v.as_str() else {
            p.push((
                node.key_span("aggs"),
                format!("aggregate `{name}` must be a string like \"sum(.bytes)\""),
            ));
            continue;
        };
        if name == "key" {
            p.push((
                node.key_span("aggs"),
                "an aggregate may not be called `key`: the output uses that name for the key"
                    .into(),
            ));
            continue;
        }
        match aggs::parse_agg(name, text) {
            Ok(a) => out.push(a),
            Err((_, m)) => p.push((node.key_span("aggs"), format!("aggregate `{name}`: {m}"))),
        }
    }
    out
}

/// `parallelism` and `max_parallelism` of a keyed node, checked: (N, key groups).
fn parallelism(node: &NodeSpec, has_key: bool, p: &mut BuildProblems) -> (usize, u32) {
    let Some((n, max)) = keyed_parallelism(&node.config) else {
        return (1, DEFAULT_MAX_PARALLELISM as u32);
    };
    let mut ok = true;
    if !(1..=MAX_MAX_PARALLELISM).contains(&max) {
        p.push((
            node.key_span("max_parallelism"),
            format!("`max_parallelism` must be from 1 to {MAX_MAX_PARALLELISM} (the number of key groups the keys are spread over)"),
        ));
        ok = false;
    }
    if n < 1 {
        p.push((
            node.key_span("parallelism"),
            "`parallelism` must be at least 1 (the number of instances that share the keys)".into(),
        ));
        ok = false;
    } else if ok && n > max {
        p.push((
            node.key_span("parallelism"),
            format!("`parallelism` = {n} is more than `max_parallelism` = {max}: an instance owns whole key groups, so there cannot be more instances than groups"),
        ));
        ok = false;
    } else if n > 1 && !has_key {
        p.push((
            node.key_span("parallelism"),
            format!("`parallelism` = {n} needs `key`: without one every record has the same key, and one instance would do all the work"),
        ));
        ok = false;
    }
    if ok {
        (n as usize, max as u32)
    } else {
        (1, DEFAULT_MAX_PARALLELISM as u32)
    }
}

/// The operator itself with `parallelism` = 1; else N instances of it (`parallel`).
fn maybe_parallel<S: parallel::Split>(
    name: &str,
    op: S,
    (n, max): (usize, u32),
) -> Box<dyn Operator> {
    if n <= 1 {
        Box::new(op)
    } else {
        Box::new(parallel::Parallel::new(name, op, n, max))
    }
}

/// A transform's config, checked and compiled once.
#[derive(Clone)]
pub enum Compiled {
    Filter(Expr),
    Map(Expr),
    Parse {
        field: String,
        with: ParseWith,
    },
    Aggregate {
        key: Option<Expr>,
        aggs: Vec<aggs::AggSpec>,
        emit: Emit,
        ttl: Option<aggregate::Ttl>,
        /// (`parallelism`, `max_parallelism`)
        par: (usize, u32),
    },
    Window {
        key: Option<Expr>,
        time: TimeExpr,
        assigner: Assigner,
        out_of_orderness: i64,
        allowed_lateness: i64,
        aggs: Vec<aggs::AggSpec>,
        par: (usize, u32),
    },
    Dedup {
        key: Expr,
        time: Option<TimeExpr>,
        ttl: i64,
        par: (usize, u32),
    },
}

/// How a `parse` node reads its field.
#[derive(Clone)]
pub enum ParseWith {
    Regex(regex::Regex),
    Preset(presets::Preset),
}

impl Compiled {
    /// A fresh operator of node `name`, with empty state.
    pub fn operator(&self, name: &str) -> Box<dyn Operator> {
        match self.clone() {
            Compiled::Filter(expr) => Box::new(filter::Filter { expr }),
            Compiled::Map(expr) => Box::new(map::MapOp::new(expr)),
            Compiled::Parse {
                field,
                with: ParseWith::Regex(re),
            } => Box::new(parse::Parse::new(field, re)),
            Compiled::Parse {
                field,
                with: ParseWith::Preset(preset),
            } => Box::new(parse::Parse::with_preset(field, preset)),
            Compiled::Aggregate {
                key,
                aggs,
                emit,
                ttl,
                par,
            } => maybe_parallel(
                name,
                aggregate::Aggregate::new(key, aggs, emit, ttl, par.1),
                par,
            ),
            Compiled::Window {
                key,
                time,
                assigner,
                out_of_orderness,
                allowed_lateness,
                aggs,
                par,
            } => maybe_parallel(
                name,
                window::Window::new(
                    key,
                    time,
                    assigner,
                    out_of_orderness,
                    allowed_lateness,
                    aggs,
                    par.1,
                ),
                par,
            ),
            Compiled::Dedup {
                key,
                time,
                ttl,
                par,
            } => maybe_parallel(name, dedup::Dedup::new(key, time, ttl, par.1), par),
        }
    }

    /// The expressions that read the node's input records: what its source must build.
    pub fn reads(&self) -> Vec<&Expr> {
        fn args(a: &[aggs::AggSpec]) -> Vec<&Expr> {
            a.iter().filter_map(|s| s.arg.as_ref()).collect()
        }
        match self {
            Compiled::Filter(e) | Compiled::Map(e) => vec![e],
            Compiled::Parse { .. } => Vec::new(),
            Compiled::Aggregate { key, aggs, ttl, .. } => {
                let mut v = args(aggs);
                v.extend(key);
                v.extend(ttl.as_ref().map(|t| &t.time.expr));
                v
            }
            Compiled::Window {
                key, time, aggs, ..
            } => {
                let mut v = args(aggs);
                v.push(&time.expr);
                v.extend(key);
                v
            }
            Compiled::Dedup { key, time, .. } => {
                let mut v = vec![key];
                v.extend(time.as_ref().map(|t| &t.expr));
                v
            }
        }
    }
}

/// Checks a transform's config and compiles it, or every problem with it.
pub fn compile_node(node: &NodeSpec) -> Result<Compiled, BuildProblems> {
    let mut p = BuildProblems::new();
    let op: Option<Compiled> = match &node.config {
        NodeConfig::Filter(c) => compile(node, "expr", &c.expr, &mut p).map(Compiled::Filter),
        NodeConfig::Map(c) => compile(node, "expr", &c.expr, &mut p).map(Compiled::Map),
        NodeConfig::Parse(c) => match (&c.regex, &c.preset) {
            (None, Some(name)) => match presets::Preset::new(name) {
                Ok(preset) => Some(Compiled::Parse {
                    field: c.field.clone(),
                    with: ParseWith::Preset(preset),
                }),
                Err(m) => {
                    p.push((node.key_span("preset"), format!("`preset`: {m}")));
                    None
                }
            },
            (Some(_), Some(_)) | (None, None) => {
                p.push((
                    node.span.clone(),
                    format!(
                        "a parse needs `regex` (named groups) or `preset` ({}), one of the two",
                        presets::NAMES.join(", ")
                    ),
                ));
                None
            }
            (Some(re), None) => match regex::Regex::new(re) {
                Ok(re) => {
                    if re.capture_names().flatten().next().is_none() {
                        p.push((
                            node.key_span("regex"),
                            "`regex` has no named group like (?P<name>...): it would add no field"
                                .into(),
                        ));
                        None
                    } else {
                        Some(Compiled::Parse {
                            field: c.field.clone(),
                            with: ParseWith::Regex(re),
                        })
                    }
                }
                Err(e) => {
                    p.push((
                        node.key_span("regex"),
                        format!("`regex` does not compile: {e}"),
                    ));
                    None
                }
            },
        },
        NodeConfig::Aggregate(c) => {
            let key = c.key.as_ref().and_then(|k| compile(node, "key", k, &mut p));
            let specs = aggs(node, &c.aggs, &mut p);
            let ttl = match (&c.state_ttl, &c.time) {
                (Some(t), Some(src)) => {
                    let ms = duration(node, "state_ttl", t, &mut p);
                    let expr = compile(node, "time", src, &mut p);
                    match (ms, expr) {
                        (Some(ms), Some(expr)) => Some(aggregate::Ttl {
                            ms,
                            time: time_expr(node, expr, c.time_unit, &c.time_format, &mut p),
                        }),
                        _ => None,
                    }
                }
                (Some(_), None) => {
                    p.push((
                        node.key_span("state_ttl"),
                        "`state_ttl` needs `time`: a key's idleness is measured in event time"
                            .into(),
                    ));
                    None
                }
                (None, Some(_)) => {
                    p.push((
                        node.key_span("time"),
                        "`time` is only used with `state_ttl`".into(),
                    ));
                    None
                }
                (None, None) => None,
            };
            let par = parallelism(node, c.key.is_some(), &mut p);
            Some(Compiled::Aggregate {
                key,
                aggs: specs,
                emit: c.emit,
                ttl,
                par,
            })
        }
        NodeConfig::Window(c) => {
            let par = parallelism(node, c.key.is_some(), &mut p);
            let key = c.key.as_ref().and_then(|k| compile(node, "key", k, &mut p));
            let time = compile(node, "time", &c.time, &mut p)
                .map(|expr| time_expr(node, expr, c.time_unit, &c.time_format, &mut p));
            let mut positive = |key: &str, v: &Option<String>| -> Option<i64> {
                let v = v.as_ref()?;
                let ms = duration(node, key, v, &mut p)?;
                if ms <= 0 {
                    p.push((node.key_span(key), format!("`{key}` must be longer than 0")));
                    return None;
                }
                Some(ms)
            };
            let size = positive("size", &c.size);
            let slide = positive("slide", &c.slide);
            let gap = positive("gap", &c.gap);
            let assigner = match (c.size.is_some(), c.slide.is_some(), c.gap.is_some()) {
                (true, false, false) => size.map(|size| Assigner::Tumbling { size }),
                (true, true, false) => match (size, slide) {
                    (Some(size), Some(slide)) => Some(Assigner::Sliding { size, slide }),
                    _ => None,
                },
                (false, false, true) => gap.map(|gap| Assigner::Session { gap }),
                _ => {
                    p.push((
                        node.span.clone(),
                        "a window needs `size` (tumbling), `size` and `slide` (sliding), or `gap` (session)".into(),
                    ));
                    None
                }
            };
            let ooo = match &c.out_of_orderness {
                Some(v) => duration(node, "out_of_orderness", v, &mut p),
                None => Some(0),
            };
            let lateness = match &c.allowed_lateness {
                Some(v) => duration(node, "allowed_lateness", v, &mut p),
                None => Some(0),
            };
            let specs = aggs(node, &c.aggs, &mut p);
            for name in ["window_start", "window_end"] {
                if specs.iter().any(|s| s.name == name) {
                    p.push((
                        node.key_span("aggs"),
                        format!(
                            "an aggregate may not be called `{name}`: the output uses that name"
                        ),
                    ));
                }
            }
            match (time, assigner, ooo, lateness) {
                (Some(time), Some(assigner), Some(ooo), Some(lateness))
                    if ooo >= 0 && lateness >= 0 =>
                {
                    Some(Compiled::Window {
                        key,
                        time,
                        assigner,
                        out_of_orderness: ooo,
                        allowed_lateness: lateness,
                        aggs: specs,
                        par,
                    })
                }
                _ => None,
            }
        }
        NodeConfig::Dedup(c) => {
            let par = parallelism(node, true, &mut p);
            let key = compile(node, "key", &c.key, &mut p);
            let time = c.time.as_ref().and_then(|src| {
                compile(node, "time", src, &mut p)
                    .map(|expr| time_expr(node, expr, c.time_unit, &c.time_format, &mut p))
            });
            let ttl = match (&c.ttl, c.time.is_some()) {
                (toml::Value::String(s), true) => match duration(node, "ttl", s, &mut p) {
                    Some(0) => {
                        p.push((
                            node.key_span("ttl"),
                            format!("`ttl` = \"{s}\" would drop nothing: a duplicate is less than `ttl` away, so write a time longer than 0 like \"10m\""),
                        ));
                        None
                    }
                    other => other,
                },
                (toml::Value::Integer(n), false) if *n > 0 => Some(*n),
                (toml::Value::String(_), false) => {
                    p.push((node.key_span("ttl"), "without `time`, `ttl` counts records: write a number like ttl = 100000 (or give `time` for a duration of event time)".into()));
                    None
                }
                (toml::Value::Integer(_), true) => {
                    p.push((
                        node.key_span("ttl"),
                        "with `time`, `ttl` is a duration like \"10m\"".into(),
                    ));
                    None
                }
                _ => {
                    p.push((
                        node.key_span("ttl"),
                        "`ttl` must be a duration (with `time`) or a positive number of records"
                            .into(),
                    ));
                    None
                }
            };
            match (key, ttl) {
                (Some(key), Some(ttl)) if ttl > 0 => Some(Compiled::Dedup {
                    key,
                    time,
                    ttl,
                    par,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    match op {
        Some(op) if p.is_empty() => Ok(op),
        // Every refusal above says why; this keeps a forgotten one from being a silent exit 2.
        None if p.is_empty() => Err(vec![(
            node.span.clone(),
            format!("the {} settings are not valid", node.config.type_name()),
        )]),
        _ => Err(p),
    }
}
