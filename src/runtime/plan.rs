//! The plan of a run: per file source, which fields it builds (projection), and which work of
//! its only consumer its parse workers take on (run a pure filter, fold counts and sums for an
//! aggregate or window); how many parse threads there are. Decided once, in `Plan::new`, and
//! read by node construction (`build`) and by `weir explain` (`Plan::worker_notes`), so what
//! explain says is what run does.

use crate::expr::Expr;
use crate::pipeline::graph::{Graph, Port, Role};
use crate::pipeline::spec::{source_format, AtEnd, Emit, Format, NodeConfig};
use crate::pipeline::validate::Checked;
use crate::pipeline::{Kind, PipelineSpec};
use crate::sources::file::rotation::is_gz;
use crate::sources::folding::FoldSpec;
use crate::time::window::Assigner;
use crate::transforms::aggs::{AggSpec, Func};
use crate::transforms::Compiled;
use crate::value::Str;

/// The one node a source's records go to (its only main edge): the node whose work the
/// source's parse workers may take on (see the two functions below).
fn sole_consumer_of(g: &Graph, source: usize) -> Option<usize> {
    let mut main = g.nodes[source]
        .outputs
        .iter()
        .map(|&e| &g.edges[e])
        .filter(|e| e.port == Port::Main);
    let edge = main.next()?;
    main.next().is_none().then_some(edge.to)
}

/// That node and its compiled transform.
fn sole_consumer(c: &Checked, source: usize) -> Option<(usize, &Compiled)> {
    let to = sole_consumer_of(&c.graph, source)?;
    let Role::Spec(si) = c.graph.nodes[to].role else {
        return None;
    };
    Some((to, c.transforms.get(si)?.as_ref()?))
}

/// The filter a source can run in its decode pool: the one consumer of the source's records,
/// with an expression that is all native (pure: no `now`, `input`, `debug` or `$ENV`), so
/// evaluating it early, on another thread, decides exactly what the filter would.
fn filter_pushdown(c: &Checked, source: usize) -> Option<(Expr, usize)> {
    let (to, Compiled::Filter(expr)) = sole_consumer(c, source)? else {
        return None;
    };
    expr.is_native().then(|| (expr.clone(), to))
}

/// The aggregate or window a source's parse workers can fold lines for: the one consumer of
/// the source's records and its only input, keyed by one field or path of fields (`.user`,
/// `.kubernetes.pod_name`), computing only `count` and sums of such paths. An aggregate must
/// emit at the end, without `state_ttl`. A window must be tumbling on such a time path,
/// without allowed lateness or a `.late` output,
/// and feed only sinks that read nothing else: sinks ignore which record made a window fire
/// (its origin and batch number), which folding cannot tell. Whether each line can be folded
/// is decided as it is read (see `sources::folding`).
fn fold_pushdown(c: &Checked, source: usize) -> Option<FoldSpec> {
    let g = &c.graph;
    let (to, compiled) = sole_consumer(c, source)?;
    if g.nodes[to].inputs.len() != 1 {
        return None;
    }
    let funcs = |aggs: &[AggSpec]| -> Option<Vec<Option<Vec<Str>>>> {
        aggs.iter()
            .map(|a| match (a.func, &a.arg) {
                (Func::Count, None) => Some(None),
                (Func::Sum, Some(e)) => Some(Some(e.field_path()?)),
                _ => None,
            })
            .collect()
    };
    match compiled {
        Compiled::Aggregate {
            key,
            aggs,
            emit,
            ttl,
            ..
        } => {
            if *emit != Emit::Final || ttl.is_some() {
                return None;
            }
            FoldSpec::new(&key.as_ref()?.field_path()?, &funcs(aggs)?)
        }
        Compiled::Window {
            key,
            time,
            assigner: Assigner::Tumbling { size },
            out_of_orderness,
            allowed_lateness: 0,
            aggs,
            ..
        } => {
            // Folding reads RFC 3339 and epoch times only.
            if time.format().is_some() {
                return None;
            }
            // Sinks only, each reading this window alone; and no `.late` output.
            for &e in &g.nodes[to].outputs {
                let e = &g.edges[e];
                let to = &g.nodes[e.to];
                match e.port {
                    Port::Main if to.kind == Kind::Sink && to.inputs.len() == 1 => {}
                    Port::Errors(_) => {}
                    _ => return None,
                }
            }
            FoldSpec::new(&key.as_ref()?.field_path()?, &funcs(aggs)?)?.tumbling(
                &time.expr.field_path()?,
                time.unit,
                *size,
                *out_of_orderness,
            )
        }
        _ => None,
    }
}

/// What one source does beyond reading: the plan's row for a graph node (empty for nodes that
/// are not file sources).
#[derive(Default)]
pub struct SourcePlan {
    /// The only fields to build from each record, as paths of keys (`None`: all of them).
    pub fields: Option<Vec<Vec<crate::value::Str>>>,
    /// The filter the parse workers run, and its node.
    pub pushdown: Option<(crate::expr::Expr, usize)>,
    /// The counts and sums the parse workers fold.
    pub fold: Option<std::sync::Arc<crate::sources::folding::FoldSpec>>,
}

pub struct Plan {
    /// Threads that decode lines of mapped files (see `parse_threads`).
    pub parse_threads: usize,
    /// Bytes per job of those threads, the least and the most (see `parse_job_bytes`).
    pub job_bytes: crate::sources::file::JobBytes,
    /// Whether a parse helper may take the second core: only when no other stage already
    /// keeps it busy (measured on 2 cores). `WEIR_PARALLEL_PARSE` = 1 or 0 forces it.
    pub parallel_parse: bool,
    /// Indexed by graph node.
    pub sources: Vec<SourcePlan>,
}

impl Plan {
    pub fn new(spec: &PipelineSpec, c: &Checked) -> Plan {
        let g = &c.graph;
        let mut projections = crate::pipeline::fields::source_projections(spec, c);
        let sources = (0..g.nodes.len())
            .map(|i| {
                if g.nodes[i].kind != Kind::Source {
                    return SourcePlan::default();
                }
                // A CSV or TSV cell is a string or a number: a row folds for top-level names
                // only, and a nested path is left to the record's own way from the start.
                let rows = match g.nodes[i].role {
                    Role::Spec(si) => match &spec.nodes[si].config {
                        NodeConfig::FileSource(f) => {
                            matches!(source_format(&f.path, f.format), Format::Csv | Format::Tsv)
                        }
                        _ => false,
                    },
                    _ => false,
                };
                SourcePlan {
                    fields: projections.get_mut(i).and_then(Option::take),
                    pushdown: filter_pushdown(c, i),
                    fold: fold_pushdown(c, i)
                        .filter(|f| !(rows && f.nested()))
                        .map(std::sync::Arc::new),
                }
            })
            .collect();
        let parallel_parse = match std::env::var("WEIR_PARALLEL_PARSE").as_deref() {
            Ok("1") => true,
            Ok("0") => false,
            _ => std::thread::available_parallelism()
                .map(|c| c.get() > g.nodes.len())
                .unwrap_or(false),
        };
        Plan {
            parse_threads: parse_threads(),
            job_bytes: parse_job_bytes(),
            parallel_parse,
            sources,
        }
    }

    /// For `weir explain`: what each file source's parse workers do beyond parsing JSON lines,
    /// if anything (run the filter downstream, or fold for the aggregate or window downstream),
    /// and that they read CSV and TSV rows at all (see `sources::file::csv_rows`).
    pub fn worker_notes(&self, spec: &PipelineSpec, g: &Graph) -> Vec<Option<String>> {
        let threads = self.parse_threads;
        (0..g.nodes.len())
            .map(|i| {
                let Role::Spec(si) = g.nodes[i].role else {
                    return None;
                };
                let NodeConfig::FileSource(c) = &spec.nodes[si].config else {
                    return None;
                };
                // The pool decodes mapped files only: files (not stdin) read to their end and
                // not gzipped (see `use_map` in `sources::file::open`).
                if threads == 0 || c.path == "-" || c.at_end != AtEnd::Finish || is_gz(&c.path) {
                    return None;
                }
                let plan = &self.sources[i];
                let format = source_format(&c.path, c.format);
                if matches!(format, Format::Csv | Format::Tsv) {
                    let to = sole_consumer_of(g, i).map_or("", |to| &g.nodes[to].name);
                    let also = if plan.pushdown.is_some() {
                        format!(
                            ", and run filter '{to}' on each row, so dropped rows never become \
                             records"
                        )
                    } else if plan.fold.is_some() {
                        format!(
                            ", and fold them straight into the counts and sums of '{to}' (a row \
                             that cannot be folded, such as a float or a bad row, turns this off \
                             for good)"
                        )
                    } else {
                        String::new()
                    };
                    let name = if format == Format::Tsv { "TSV" } else { "CSV" };
                    return Some(format!(
                        "parse workers ({threads} on this machine): read {name} rows in \
                         parallel, ahead of the read position{also}"
                    ));
                }
                if format != Format::Jsonl {
                    return None;
                }
                let what = if let Some((_, to)) = &plan.pushdown {
                    format!(
                        "run filter '{}' on each line, so dropped lines never become records",
                        g.nodes[*to].name
                    )
                } else if plan.fold.is_some() {
                    let to = sole_consumer_of(g, i).map_or("", |to| &g.nodes[to].name);
                    format!(
                        "fold lines straight into the counts and sums of '{to}' (a line that \
                         cannot be folded, such as a float or a bad line, turns this off for \
                         good)"
                    )
                } else {
                    return None;
                };
                Some(format!("parse workers ({threads} on this machine): {what}"))
            })
            .collect()
    }
}

/// Bytes per job of the parse threads, the least and the most: `POOL_JOB_BYTES` and
/// `POOL_BIG_JOB_BYTES`, or `WEIR_PARSE_JOB_BYTES` for every job (tests cut small files into
/// many jobs with it, or fix the size their cases were written for).
fn parse_job_bytes() -> crate::sources::file::JobBytes {
    use crate::sources::file::JobBytes;
    std::env::var("WEIR_PARSE_JOB_BYTES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map_or(JobBytes::USUAL, JobBytes::fixed)
}

/// How many threads decode JSON lines and CSV rows of mapped files: one per core (the source's own thread
/// then only cuts lines and emits), none on one core. `WEIR_PARSE_THREADS` overrides it.
fn parse_threads() -> usize {
    if let Some(n) = std::env::var("WEIR_PARSE_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return n.min(64);
    }
    match std::thread::available_parallelism().map(|c| c.get()) {
        Ok(c) if c >= 2 => c.min(8),
        _ => 0,
    }
}
