//! `weir checkpoints` and `weir inspect`: what a state directory holds, read without taking
//! its lock.

use super::out;
use crate::checkpoint::store::Store;
use crate::error::{Error, Outcome, Result};
use crate::pipeline;
use crate::runtime::run::checkpoint_settings;
use std::path::{Path, PathBuf};

pub fn checkpoints(target: &Path) -> Result<Outcome> {
    let dir = state_dir(target)?;
    let (text, newest_invalid) = list_checkpoints(&dir);
    out(&text)?;
    // The list is printed either way; the exit code tells a script that `resume`
    // would not continue from the newest checkpoint (exit 1, see README).
    match newest_invalid {
        Some(m) => Err(Error::runtime(m)),
        None => Ok(Outcome::Finished),
    }
}

pub fn inspect(target: &Path, id: Option<u64>) -> Result<Outcome> {
    let dir = state_dir(target)?;
    out(&inspect_dir(&dir, id)?)
}

/// A pipeline file names its state directory; anything else is the directory itself.
fn state_dir(target: &Path) -> Result<PathBuf> {
    if target.is_dir() {
        return Ok(target.to_path_buf());
    }
    if !target.exists() {
        return Err(Error::usage(format!("{} does not exist", target.display())));
    }
    let spec = pipeline::load(target, &[])?;
    Ok(checkpoint_settings(&spec, None)?.dir)
}

/// The listing, and why the newest checkpoint is invalid when it is.
fn list_checkpoints(dir: &Path) -> (String, Option<String>) {
    let store = Store::open_read(dir);
    let list = store.list();
    if list.is_empty() {
        return (format!("no checkpoints in {}\n", dir.display()), None);
    }
    let newest_invalid = match &list[0].checkpoint {
        Ok(_) => None,
        Err(why) => {
            let fallback = list.iter().find(|e| e.checkpoint.is_ok());
            Some(format!(
                "the newest checkpoint, {}, is invalid ({why}); {}",
                list[0].id,
                match fallback {
                    Some(e) => format!("`weir resume` would continue from checkpoint {}", e.id),
                    None => "no checkpoint is valid: `weir resume` has nothing to continue from"
                        .to_string(),
                }
            ))
        }
    };
    let mut s = format!(
        "{:>6}  {:<24}  {:>12}  {:<8}  offsets\n",
        "id", "time", "state bytes", "status"
    );
    for e in list {
        match &e.checkpoint {
            Ok(c) => {
                let time = jiff::Timestamp::from_millisecond(c.created_ms)
                    .map(|t| format!("{t:.0}"))
                    .unwrap_or_default();
                let status = if c.finished {
                    "final"
                } else if c.ended {
                    "paused"
                } else {
                    "valid"
                };
                s.push_str(&format!(
                    "{:>6}  {:<24}  {:>12}  {:<8}  {}\n",
                    e.id,
                    time,
                    e.bytes,
                    status,
                    offsets_summary(c)
                ));
            }
            Err(why) => s.push_str(&format!(
                "{:>6}  {:<24}  {:>12}  INVALID   {why}\n",
                e.id, "", e.bytes
            )),
        }
    }
    (s, newest_invalid)
}

/// `source: file@offset, ...` from the source states in a checkpoint.
fn offsets_summary(c: &crate::checkpoint::format::Checkpoint) -> String {
    let mut parts = Vec::new();
    for n in &c.nodes {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(n.state.get()) else {
            continue;
        };
        let Some(src) = v.get("source") else { continue };
        if let Some(files) = src.get("files").and_then(|f| f.as_array()) {
            let f: Vec<String> = files
                .iter()
                .map(|f| {
                    let path = f.get("path").and_then(|p| p.as_str()).unwrap_or("?");
                    let name = Path::new(path)
                        .file_name()
                        .map(|x| x.to_string_lossy().into_owned())
                        .unwrap_or_else(|| path.to_string());
                    format!(
                        "{name}@{}",
                        f.get("offset").and_then(|o| o.as_u64()).unwrap_or(0)
                    )
                })
                .collect();
            parts.push(format!("{}: {}", n.node, f.join(" ")));
        }
        if let Some(st) = src.get("stdin").filter(|x| !x.is_null()) {
            parts.push(format!(
                "{}: stdin@{}",
                n.node,
                st.get("consumed").and_then(|o| o.as_u64()).unwrap_or(0)
            ));
        }
        if let Some(next) = src.get("next").and_then(|x| x.as_u64()) {
            parts.push(format!("{}: seq {next}", n.node));
        }
    }
    parts.join("; ")
}

fn inspect_dir(dir: &Path, id: Option<u64>) -> Result<String> {
    let store = Store::open_read(dir);
    let c = store
        .pick(id, &|m| {
            eprintln!("weir: warning: {}", crate::escape::text(m))
        })?
        .ok_or_else(|| Error::usage(format!("no checkpoints in {}", dir.display())))?;
    let mut s = serde_json::to_string_pretty(&c)
        .map_err(|e| Error::runtime(format!("cannot print the checkpoint: {e}")))?;
    s.push('\n');
    Ok(s)
}
