//! Which files the source reads, in which order: the path or glob listed in name order, and
//! reconciled with the known files after rotation (see `rotation`), with a message for each
//! file renamed, replaced or gone.

use super::rotation::{self, Event, Listed};
use super::FileSource;
use crate::error::Error;
use crate::pipeline::spec::AtEnd;
use std::path::{Path, PathBuf};

pub(super) fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

impl FileSource {
    /// Reconciles the known files with what the glob matches now (see `rotation`): a known
    /// file under a new name (rotation, compression, a copy) keeps its offset; a file truncated
    /// or replaced in place starts again from 0; new files join at the end in name order;
    /// files that disappeared are forgotten, with a warning if they had not been read to the end.
    pub(super) fn scan(&mut self, first_run: bool) -> Result<(), Error> {
        self.last_scan = std::time::Instant::now();
        let listed: Vec<Listed> = self
            .list_files(first_run)?
            .into_iter()
            .filter_map(|p| {
                let md = std::fs::metadata(&p).ok()?;
                Some(Listed::new(p, &md))
            })
            .collect();
        let (new_files, events) =
            rotation::reconcile(&mut self.files, listed, self.s.fingerprint_bytes as u64)?;
        let name = self.name();
        for e in events {
            match e {
                Event::Renamed {
                    from,
                    to,
                    offset,
                    by_content,
                } => self.ctx.info(format!(
                    "source '{name}': {from} is now {to}{}; continuing at byte {offset}",
                    if by_content { " (same content)" } else { "" }
                )),
                Event::Replaced { path, read, lost } => {
                    let lost = if lost > 0 {
                        format!("; {lost} bytes lost (never read)")
                    } else {
                        String::new()
                    };
                    self.ctx.warn(format!(
                        "source '{name}': {path} was truncated or replaced (it had {read} bytes read{lost}); reading it again from the start"
                    ));
                }
                Event::Gone { path, lost } if lost > 0 => self.ctx.warn(format!(
                    "source '{name}': {path} disappeared before it was read to the end: {lost} bytes lost"
                )),
                Event::Copy { path, of, len } => self.ctx.info(format!(
                    "source '{name}': {path} holds the first {len} bytes of {of}, which is still there: a copy being made, not read as a new file"
                )),
                Event::CopyRead { from, to, read } => self.ctx.info(format!(
                    "source '{name}': {from} is now {to} (a copy of its first bytes, taken before {read} bytes were read there); read to its end"
                )),
                Event::Gone { path, .. } => self.ctx.info(format!(
                    "source '{name}': forgetting {path}, read to the end and gone"
                )),
            }
        }
        for f in new_files {
            self.register(&f.path);
            self.files.push(f);
        }
        Ok(())
    }

    pub(super) fn list_files(&self, first_run: bool) -> Result<Vec<PathBuf>, Error> {
        let p = self.s.path.to_string_lossy().into_owned();
        // A path weir may not look at is not a missing file: said so, and on the first scan
        // the run stops before reading anything (exit 2); later (follow) it is a warning.
        let denied = |path: &Path, e: &std::io::Error| -> Result<Vec<PathBuf>, Error> {
            let m = format!(
                "source '{}': cannot read {}: {e}",
                self.name(),
                crate::escape::path(path)
            );
            if first_run {
                return Err(Error::usage(m));
            }
            self.ctx.warn(m);
            Ok(Vec::new())
        };
        if !is_glob(&self.s.pattern) {
            match std::fs::metadata(&self.s.path) {
                Ok(_) => return Ok(vec![self.s.path.clone()]),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return denied(&self.s.path, &e)
                }
                Err(_) => {}
            }
            // Missing on the first run is a mistake in the pipeline; later (rotation,
            // follow) it is a file that comes and goes.
            if self.s.at_end == AtEnd::Follow || !first_run {
                return Ok(Vec::new());
            }
            return Err(Error::usage(format!(
                "source '{}': input file {} does not exist",
                self.name(),
                crate::escape::text(&p)
            )));
        }
        let paths = glob::glob(&p)
            .map_err(|e| Error::usage(format!("source '{}': bad glob `{p}`: {e}", self.name())))?;
        let mut v: Vec<PathBuf> = Vec::new();
        for r in paths {
            match r {
                Ok(p) => v.push(p),
                Err(e) => return denied(e.path(), e.error()),
            }
        }
        v.retain(|p| p.is_file());
        v.sort();
        if v.is_empty() && first_run && self.s.at_end == AtEnd::Finish {
            self.ctx
                .warn(format!("source '{}': no file matches {p}", self.name()));
        }
        Ok(v)
    }
}
