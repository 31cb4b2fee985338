//! `weir validate`, `weir explain` and `weir export`: the pipeline checked (and planned, for
//! explain) without reading any data.

use super::out;
use crate::error::{Outcome, Result};
use crate::pipeline;
use std::path::Path;

pub fn validate(file: &Path, set: &[String], quiet: bool) -> Result<Outcome> {
    let spec = pipeline::load(file, set)?;
    let g = pipeline::validate::check(&spec)?.graph;
    if !quiet {
        for n in pipeline::validate::notes(&spec) {
            eprintln!("weir: note: {n}");
        }
        eprintln!(
            "{}: ok: pipeline '{}', {} nodes, {} edges",
            file.display(),
            spec.name,
            g.nodes.len(),
            g.edges.len()
        );
    }
    Ok(Outcome::Finished)
}

pub fn explain(file: &Path, dot: bool) -> Result<Outcome> {
    let spec = pipeline::load(file, &[])?;
    let checked = pipeline::validate::check(&spec)?;
    let g = &checked.graph;
    let notes = crate::runtime::plan::Plan::new(&spec, &checked).worker_notes(&spec, g);
    out(&pipeline::graph::explain(&spec, g, dot, &notes))
}

pub fn export_flink(file: &Path, set: &[String]) -> Result<Outcome> {
    let spec = pipeline::load(file, set)?;
    let g = pipeline::validate::check(&spec)?.graph;
    out(&crate::export::flink::export(&spec, &g)?)
}
