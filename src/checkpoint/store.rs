//! The state directory: checkpoint files `ckpt-<id>.weir`, a lock held by the running weir, and
//! the rules for picking one to resume from (newest valid, never a silent fresh start).

use super::format::{self, Checkpoint};
use crate::error::Error;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

pub struct Store {
    pub dir: PathBuf,
    /// Held for as long as the store lives: one weir per state directory.
    _lock: Option<File>,
}

/// One file of the directory, as `weir checkpoints` shows it.
pub struct Entry {
    pub id: u64,
    pub path: PathBuf,
    pub bytes: u64,
    pub checkpoint: Result<Checkpoint, String>,
}

pub fn file_name(id: u64) -> String {
    format!("ckpt-{id:010}.weir")
}

fn parse_id(name: &str) -> Option<u64> {
    name.strip_prefix("ckpt-")?
        .strip_suffix(".weir")?
        .parse()
        .ok()
}

impl Store {
    /// Opens (creating) the directory and takes its lock; exit 75 if another weir has it.
    pub fn open_locked(dir: &Path) -> Result<Store, Error> {
        // Before anything runs, a state directory that cannot be made is a usage error
        // (exit 2): exit 1 promises a resumable state, and there is none.
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::usage(format!(
                "cannot create state directory {}: {e}",
                crate::escape::path(dir)
            ))
        })?;
        let lock_path = dir.join("LOCK");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                Error::usage(format!(
                    "cannot write in state directory {}: {e}",
                    crate::escape::path(dir)
                ))
            })?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::locked(format!(
                    "the state directory {} is locked by another running weir; try again when it is done",
                    dir.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::runtime(format!("cannot lock {}: {e}", lock_path.display())))
            }
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: Some(f),
        })
    }

    /// Opens a directory for reading only (`weir checkpoints`, `weir inspect`).
    pub fn open_read(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
            _lock: None,
        }
    }

    /// Checkpoint files, newest first, without reading them: (id, path, bytes).
    pub fn files(&self) -> Vec<(u64, PathBuf, u64)> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = parse_id(&name) else { continue };
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((id, e.path(), bytes));
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        out
    }

    fn load(id: u64, path: &Path) -> Result<Checkpoint, String> {
        match std::fs::read(path) {
            Ok(b) => format::decode(&b).and_then(|c| {
                if c.id == id {
                    Ok(c)
                } else {
                    Err(format!("holds checkpoint {} under the name of {id}", c.id))
                }
            }),
            Err(e) => Err(format!("unreadable: {e}")),
        }
    }

    /// Every checkpoint file, newest first, each read and checked.
    pub fn list(&self) -> Vec<Entry> {
        self.files()
            .into_iter()
            .map(|(id, path, bytes)| Entry {
                id,
                checkpoint: Self::load(id, &path),
                path,
                bytes,
            })
            .collect()
    }

    pub fn has_checkpoints(&self) -> bool {
        !self.files().is_empty()
    }

    pub fn next_id(&self) -> u64 {
        self.files().first().map(|e| e.0 + 1).unwrap_or(1)
    }

    /// The newest valid checkpoint (or `from`), with a warning for each newer invalid one.
    pub fn pick(
        &self,
        from: Option<u64>,
        warn: &dyn Fn(&str),
    ) -> Result<Option<Checkpoint>, Error> {
        // Files are read newest first and only until one is valid: a resume reads one
        // checkpoint, not all that are retained (each can be tens of MB of keyed state).
        let files = self.files();
        if let Some(id) = from {
            let (_, path, _) = files.iter().find(|f| f.0 == id).ok_or_else(|| {
                Error::usage(format!("no checkpoint {id} in {}", self.dir.display()))
            })?;
            return Self::load(id, path).map(Some).map_err(|why| {
                Error::usage(format!(
                    "checkpoint {id} ({}) is not valid: {why}",
                    path.display()
                ))
            });
        }
        if files.is_empty() {
            return Ok(None);
        }
        let mut reasons = Vec::new();
        for (id, path, _) in files {
            match Self::load(id, &path) {
                Ok(c) => return Ok(Some(c)),
                Err(why) => {
                    warn(&format!(
                        "checkpoint {id} ({}) is not valid, skipping it: {why}",
                        path.display()
                    ));
                    reasons.push(format!("{id}: {why}"));
                }
            }
        }
        Err(Error::runtime(format!(
            "no valid checkpoint in {} ({}); refusing to start over silently: use `weir run --fresh` to start from nothing",
            self.dir.display(),
            reasons.join("; ")
        )))
    }

    /// Writes checkpoint `id` (already encoded) atomically, then removes all but the newest
    /// `retain` files. Older files are not re-read: the new one was just written whole.
    pub fn write_encoded(&self, id: u64, bytes: &[u8], retain: usize) -> Result<u64, Error> {
        let path = self.dir.join(file_name(id));
        super::atomic::write(&path, bytes)?;
        for (i, (old, p, _)) in self.files().into_iter().enumerate() {
            if i >= retain.max(1) && old < id {
                let _ = std::fs::remove_file(&p);
            }
        }
        Ok(bytes.len() as u64)
    }

    /// `resume --from ID`: moves the checkpoints newer than `id` into `old-<time>/`, before
    /// the resumed run truncates its sinks to what `id` committed, so that the state directory
    /// goes on from `id` (a plain `resume` after a kill would otherwise pick a newer
    /// checkpoint whose sinks are longer than their files now).
    pub fn retire_newer(&self, id: u64) -> Result<Option<PathBuf>, Error> {
        let newer: Vec<(u64, PathBuf, u64)> =
            self.files().into_iter().filter(|f| f.0 > id).collect();
        if newer.is_empty() {
            return Ok(None);
        }
        let dest = self.aside_dir()?;
        for (_, p, _) in newer {
            if let Some(name) = p.file_name() {
                std::fs::rename(&p, dest.join(name)).map_err(|err| {
                    Error::runtime(format!("cannot move {} aside: {err}", p.display()))
                })?;
            }
        }
        super::atomic::sync_dir(&self.dir)?;
        Ok(Some(dest))
    }

    fn aside_dir(&self) -> Result<PathBuf, Error> {
        let stamp = jiff::Timestamp::now().as_second();
        let mut dest = self.dir.join(format!("old-{stamp}"));
        let mut k = 1;
        while dest.exists() {
            dest = self.dir.join(format!("old-{stamp}-{k}"));
            k += 1;
        }
        std::fs::create_dir_all(&dest)
            .map_err(|e| Error::runtime(format!("cannot create {}: {e}", dest.display())))?;
        Ok(dest)
    }

    /// `run --fresh`: moves the checkpoints (and spools) into `old-<time>/`, never deleting them.
    pub fn move_aside(&self) -> Result<Option<PathBuf>, Error> {
        if self.files().is_empty() {
            return Ok(None);
        }
        let dest = self.aside_dir()?;
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::runtime(format!("cannot list {}: {e}", self.dir.display())))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if parse_id(&name).is_some() || name.ends_with(".spool") || name.ends_with(".released")
            {
                std::fs::rename(e.path(), dest.join(&name)).map_err(|err| {
                    Error::runtime(format!("cannot move {} aside: {err}", e.path().display()))
                })?;
            }
        }
        super::atomic::sync_dir(&self.dir)?;
        Ok(Some(dest))
    }

    /// Removes all but the newest `keep` of the `old-*` directories `--fresh` left, so that
    /// a job started over every day does not pile them up. Returns those removed.
    pub fn prune_old(&self, keep: usize) -> Result<Vec<PathBuf>, Error> {
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::runtime(format!("cannot list {}: {e}", self.dir.display())))?;
        // `old-<seconds>` or `old-<seconds>-<k>`: newest last by (seconds, k), not by name.
        let mut old: Vec<((u64, u64), PathBuf)> = rd
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix("old-")?;
                let (secs, k) = rest.split_once('-').unwrap_or((rest, "0"));
                Some(((secs.parse().ok()?, k.parse().ok()?), e.path()))
            })
            .collect();
        old.sort();
        let excess = old.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for (_, p) in old.into_iter().take(excess) {
            std::fs::remove_dir_all(&p)
                .map_err(|e| Error::runtime(format!("cannot remove {}: {e}", p.display())))?;
            removed.push(p);
        }
        Ok(removed)
    }
}
