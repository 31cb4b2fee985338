//! `weir validate` and the same checks before every run: parse, wire, compile every
//! expression and regex, check formats and durations; report all problems at once, read no data.

use super::graph::{self, Graph};
use super::spec::{Format, NodeConfig};
use super::{Collector, Locator, PipelineSpec, Problems};
use crate::error::Result;
use crate::pipeline::Kind;
use crate::transforms::Compiled;

// The formats moved to `spec` (graph needs them, and graph must not import validate); the
// old path keeps working for callers.
pub use super::spec::{sink_format, source_format};

/// A valid pipeline: its wired graph and every transform compiled, once, for all that reads
/// them (the plan, `explain`, every attempt of a run).
pub struct Checked {
    pub graph: Graph,
    /// Indexed like `PipelineSpec::nodes`; `Some` for every transform.
    pub transforms: Vec<Option<Compiled>>,
}

/// Every check, returning the wired graph and the compiled transforms when the pipeline is
/// valid.
pub fn check(spec: &PipelineSpec) -> Result<Checked> {
    let (g, wiring) = graph::build_collect(spec);
    let mut transforms = vec![None; spec.nodes.len()];
    let loc = Locator::new(&spec.text);
    let mut c = Collector {
        loc: &loc,
        list: wiring,
    };
    if let Some(every) = &spec.checkpoint.every {
        if every != "off" {
            match super::spec::parse_duration_ms(every) {
                Err(m) => c.at(
                    spec.setting_span("checkpoint.every"),
                    None,
                    format!("[checkpoint] every: {m} (or \"off\")"),
                ),
                // Zero reads as "off" in many tools; here it would checkpoint without pause.
                Ok(0) => c.at(
                    spec.setting_span("checkpoint.every"),
                    None,
                    format!(
                        "[checkpoint] every: \"{every}\" would checkpoint without pause; \
                         write \"off\" to turn checkpoints off, or a time like \"1s\""
                    ),
                ),
                Ok(_) => {}
            }
        }
    }
    if spec.checkpoint.every_records == Some(0) {
        c.at(
            spec.setting_span("checkpoint.every_records"),
            None,
            "[checkpoint] every_records: 0 would checkpoint after every record; write a count \
             like 100000, or every = \"off\""
                .to_string(),
        );
    }
    if let Some(d) = &spec.restart.delay {
        if let Err(m) = super::spec::parse_duration_ms(d) {
            c.at(
                spec.setting_span("restart.delay"),
                None,
                format!("[restart] delay: {m}"),
            );
        }
    }
    super::safety::check(spec, &mut c);
    for (si, node) in spec.nodes.iter().enumerate() {
        let name = Some(node.name.as_str());
        match (&node.config, node.kind) {
            (NodeConfig::Filter(_), _)
            | (NodeConfig::Map(_), _)
            | (NodeConfig::Parse(_), _)
            | (NodeConfig::Aggregate(_), _)
            | (NodeConfig::Window(_), _)
            | (NodeConfig::Dedup(_), _) => match crate::transforms::compile_node(node) {
                Ok(t) => transforms[si] = Some(t),
                Err(problems) => {
                    for (span, m) in problems {
                        c.at(span, name, m);
                    }
                }
            },
            (NodeConfig::FileSink(s), Kind::Sink) => {
                if s.format == Some(Format::Lines) {
                    c.at(
                        node.key_span("format"),
                        name,
                        "a file sink writes jsonl, csv or tsv (not lines)",
                    );
                }
                if s.delivery.is_some() && s.path != "-" {
                    c.at(
                        node.key_span("delivery"),
                        name,
                        "`delivery` applies to stdout (path = \"-\"); files are always exactly-once",
                    );
                }
            }
            (NodeConfig::ExecSink(_), _)
            | (NodeConfig::SqliteSink(_), _)
            | (NodeConfig::PostgresSink(_), _) => {
                for (span, m) in crate::sinks::check(node) {
                    c.at(span, name, m);
                }
            }
            (NodeConfig::FileSource(s), _) => {
                if s.path.is_empty() {
                    c.at(node.key_span("path"), name, "`path` is empty");
                }
                if s.fingerprint_bytes == Some(0) {
                    c.at(
                        node.key_span("fingerprint_bytes"),
                        name,
                        "`fingerprint_bytes` must be at least 1",
                    );
                }
            }
            _ => {}
        }
    }
    if !c.list.is_empty() {
        c.list.sort_by_key(|p| (p.line, p.col));
        return Err(Problems {
            file: spec.file.clone(),
            list: c.list,
        }
        .into());
    }
    Ok(Checked {
        graph: g,
        transforms,
    })
}

/// What `validate` says besides problems: settings that are valid but often not meant.
pub fn notes(spec: &PipelineSpec) -> Vec<String> {
    let mut notes = Vec::new();
    for n in &spec.nodes {
        if let NodeConfig::FileSource(s) = &n.config {
            if s.path == "-" && s.format.is_none() {
                let (line, _) = Locator::new(&spec.text).at(n.span.start);
                notes.push(format!(
                    "{}:{line}: node '{}': reads stdin as jsonl (no `format`); for CSV, TSV or \
                     plain lines set format = \"csv\", \"tsv\" or \"lines\"",
                    spec.file.display(),
                    n.name
                ));
            }
        }
    }
    notes
}
