//! The spool of an exactly-once stdout sink (`delivery = "exactly-once"`, path `-`): output is
//! written here first and copied to stdout ("released") only once the checkpoint that covers it
//! is durable, so that a resumed run, which writes the same bytes again, never writes a line
//! to stdout twice.
//!
//! Positions are logical: byte `n` of the sink's output, over all runs. The spool file holds
//! output from `base` on, after a 16-byte header that records `base`; compaction copies the
//! unreleased tail to a new file with a new header and renames it over the old one, so the
//! spool holds only what is not released yet (plus what a release left behind, until the next
//! compaction) and the base changes atomically with the content.
//!
//! What was released is recorded in `<sink>.released` before and after each release. stdout
//! cannot be read back, so a run killed in the middle of writing a chunk leaves it unknown how
//! much of the chunk got out, with one exception that is also the usual case: stdout is a
//! regular file (`>> out.jsonl`). The record then holds the file's identity and length before
//! the chunk, and the next run continues the chunk at the byte where it stopped: stdout over
//! all runs is byte for byte the output of one uninterrupted run. On a pipe or a terminal the
//! next run cannot know: it counts the chunk as released (so nothing is written twice), saves
//! it to `<sink>.<from>-<upto>.spool` in the state directory and says so on stderr.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"WEIRSPL1";
const HEADER: u64 = 16;
/// Compaction happens when this much released output sits in the spool and it is at least as
/// much as the unreleased output that would be copied.
const COMPACT_AT: u64 = 64 << 10;

/// `<sink>.released`: what stdout has had.
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
struct Released {
    /// Output bytes released (all of them written to stdout).
    released: u64,
    /// A release in progress: spool bytes `[from, upto)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    releasing: Option<(u64, u64)>,
    /// stdout when it is a regular file: device, inode and length before the chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdout: Option<(u64, u64, u64)>,
}

pub struct Spool {
    name: String,
    path: PathBuf,
    mark: PathBuf,
    file: File,
    /// Logical position of the first byte after the header.
    base: u64,
    /// Logical position of the end of the spool file's content. Output below it is not
    /// written again (after resuming from a checkpoint older than a compaction, the output
    /// between the checkpoint and the base was released already and is skipped).
    end: u64,
    released: u64,
    /// Logical positions covered by snapshots taken and not yet committed, oldest first.
    pending: std::collections::VecDeque<u64>,
}

fn err(name: &str, what: &str, p: &Path, e: impl std::fmt::Display) -> Error {
    Error::runtime(format!("sink '{name}': {what} {}: {e}", p.display()))
}

impl Spool {
    /// Opens the spool in `dir`. `committed`: the output length the checkpoint covers, when
    /// resuming (a fresh run starts an empty spool and forgets what was released).
    pub fn open(name: &str, dir: &Path, committed: Option<u64>) -> Result<Spool, Error> {
        let path = dir.join(format!("{name}.spool"));
        let mark = dir.join(format!("{name}.released"));
        let Some(committed) = committed else {
            let _ = std::fs::remove_file(&mark);
            let file = create(&path, 0).map_err(|e| err(name, "cannot create spool", &path, e))?;
            return Ok(Spool {
                name: name.into(),
                path,
                mark,
                file,
                base: 0,
                end: 0,
                released: 0,
                pending: Default::default(),
            });
        };
        let rec = read_mark(&mark);
        let (mut file, base, len) = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(mut f) => {
                let base = read_base(&mut f, &path).map_err(|e| err(name, "spool", &path, e))?;
                let len = f
                    .metadata()
                    .map_err(|e| err(name, "spool", &path, e))?
                    .len();
                (f, base, base + len.saturating_sub(HEADER))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && committed <= rec.released => {
                // All the checkpoint covers went out; an empty spool from there does.
                let f = create(&path, rec.released)
                    .map_err(|e| err(name, "cannot create spool", &path, e))?;
                (f, rec.released, rec.released)
            }
            Err(e) => return Err(err(name, "cannot open spool", &path, e)),
        };
        if len < committed && base <= committed {
            return Err(err(
                name,
                "spool",
                &path,
                format!("it holds output up to byte {len} but the checkpoint committed {committed}: it was changed outside weir"),
            ));
        }
        let mut released = rec.released;
        if let Some((from, upto)) = rec.releasing {
            released = settle_release(name, &path, &mut file, base, len, from, upto, rec.stdout)?;
        }
        // Output after the checkpoint is written again by this run; output the checkpoint
        // covers that is no longer in the spool (compacted away) was released already.
        let end = committed.max(base);
        file.set_len(HEADER + (end - base))
            .and_then(|_| file.seek(SeekFrom::End(0)).map(|_| ()))
            .map_err(|e| err(name, "cannot truncate spool", &path, e))?;
        let mut s = Spool {
            name: name.into(),
            path,
            mark,
            file,
            base,
            end,
            released,
            pending: Default::default(),
        };
        if rec.releasing.is_some() {
            s.write_mark(None, None)?;
        }
        // A checkpoint may have completed after the last release.
        s.release(committed)?;
        Ok(s)
    }

    /// Appends output bytes `[at, at + bytes.len())`, leaving out what is below `end`.
    pub fn append(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        let skip = self.end.saturating_sub(at).min(bytes.len() as u64) as usize;
        if skip < bytes.len() {
            self.file.write_all(&bytes[skip..])?;
            self.end = at + bytes.len() as u64;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// A snapshot covers output up to `written`.
    pub fn snapshot(&mut self, written: u64) {
        self.pending.push_back(written);
    }

    /// The oldest pending checkpoint is durable: release what it covers. Checkpoints complete
    /// in order; one that was abandoned only delays a release.
    pub fn committed(&mut self) -> Result<(), Error> {
        match self.pending.pop_front() {
            Some(upto) => self.release(upto),
            None => Ok(()),
        }
    }

    pub fn released(&self) -> u64 {
        self.released
    }

    fn write_mark(
        &self,
        releasing: Option<(u64, u64)>,
        stdout: Option<(u64, u64, u64)>,
    ) -> Result<(), Error> {
        let r = Released {
            released: self.released,
            releasing,
            stdout,
        };
        let bytes = serde_json::to_vec(&r).map_err(|e| Error::runtime(e.to_string()))?;
        crate::checkpoint::atomic::write(&self.mark, &bytes)
    }

    /// Copies output `[released, upto)` to stdout, recording the release before and after.
    fn release(&mut self, upto: u64) -> Result<(), Error> {
        if upto <= self.released {
            return Ok(());
        }
        let from = self.released;
        self.write_mark(Some((from, upto)), stdout_identity())?;
        crate::crash_point!("spool-before-stdout");
        let mut chunk = Vec::new();
        self.read_range(from, upto, &mut chunk)?;
        let mut out = std::io::stdout().lock();
        fail::fail_point!("spool-mid-stdout", |_| {
            // A kill in the middle of a chunk: half of it reached stdout.
            let _ = out.write_all(&chunk[..chunk.len() / 2]);
            let _ = out.flush();
            eprintln!("weir: crash point spool-mid-stdout reached: aborting");
            std::process::abort()
        });
        out.write_all(&chunk)
            .and_then(|_| out.flush())
            .map_err(|e| Error::runtime(format!("sink '{}': writing stdout: {e}", self.name)))?;
        drop(out);
        crate::crash_point!("spool-after-stdout");
        self.released = upto;
        self.write_mark(None, None)?;
        self.compact()
    }

    /// Output `[from, upto)` from the spool.
    fn read_range(&self, from: u64, upto: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        let mut f = File::open(&self.path)
            .map_err(|e| err(&self.name, "cannot read spool", &self.path, e))?;
        let at = HEADER + from.saturating_sub(self.base);
        f.seek(SeekFrom::Start(at))
            .and_then(|_| (&mut f).take(upto - from).read_to_end(out))
            .map_err(|e| err(&self.name, "cannot read spool", &self.path, e))?;
        if (out.len() as u64) < upto - from {
            return Err(err(
                &self.name,
                "spool",
                &self.path,
                format!("output {from}..{upto} is not all there: it was changed outside weir"),
            ));
        }
        Ok(())
    }

    /// Drops released output from the spool when there is enough of it: the unreleased rest
    /// goes to a new file whose header says where it starts, renamed over the old one.
    fn compact(&mut self) -> Result<(), Error> {
        let dead = self.released.saturating_sub(self.base);
        let live = self.end.saturating_sub(self.released);
        if dead < COMPACT_AT || dead < live {
            return Ok(());
        }
        let tmp = self.path.with_extension("spool.tmp");
        let mut rest = Vec::new();
        if live > 0 {
            self.read_range(self.released, self.end, &mut rest)?;
        }
        let base = self.released;
        let r = (|| -> std::io::Result<File> {
            let mut f = create(&tmp, base)?;
            f.write_all(&rest)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &self.path)?;
            Ok(f)
        })();
        let f = r.map_err(|e| err(&self.name, "cannot compact spool", &self.path, e))?;
        if let Some(dir) = self.path.parent() {
            crate::checkpoint::atomic::sync_dir(dir)?;
        }
        self.file = f;
        self.base = base;
        self.end = self.end.max(base);
        Ok(())
    }
}

/// A new spool file whose content starts at output byte `base`, open for appending.
fn create(path: &Path, base: u64) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(MAGIC)?;
    f.write_all(&base.to_le_bytes())?;
    Ok(f)
}

/// The spool's base. A spool of an older weir (no header, output from byte 0) gets one.
fn read_base(f: &mut File, path: &Path) -> std::io::Result<u64> {
    let mut all = Vec::new();
    f.seek(SeekFrom::Start(0))?;
    (&mut *f).take(HEADER).read_to_end(&mut all)?;
    if all.len() as u64 == HEADER && &all[..8] == MAGIC {
        let mut b = [0u8; 8];
        b.copy_from_slice(&all[8..]);
        return Ok(u64::from_le_bytes(b));
    }
    f.read_to_end(&mut all)?;
    let tmp = path.with_extension("spool.tmp");
    let mut n = create(&tmp, 0)?;
    n.write_all(&all)?;
    n.sync_data()?;
    std::fs::rename(&tmp, path)?;
    *f = n;
    Ok(0)
}

fn read_mark(p: &Path) -> Released {
    let Ok(b) = std::fs::read(p) else {
        return Released::default();
    };
    if let Ok(r) = serde_json::from_slice(&b) {
        return r;
    }
    // An older weir wrote "from upto" before a release and "upto upto" after: either way
    // it counted the chunk as released.
    let nums: Vec<u64> = String::from_utf8_lossy(&b)
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    Released {
        released: nums.get(1).copied().unwrap_or(0),
        ..Default::default()
    }
}

/// stdout's device, inode and length when it is a regular file.
fn stdout_identity() -> Option<(u64, u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let md = File::from(fd).metadata().ok()?;
    md.is_file().then(|| (md.dev(), md.ino(), md.len()))
}

/// A run died while releasing output `[from, upto)`: how much of it stdout has, as far as
/// can be known. A regular file says exactly; otherwise the chunk counts as released (never
/// twice) and is saved beside the spool for the user.
#[allow(clippy::too_many_arguments)]
fn settle_release(
    name: &str,
    path: &Path,
    file: &mut File,
    base: u64,
    len: u64,
    from: u64,
    upto: u64,
    before: Option<(u64, u64, u64)>,
) -> Result<u64, Error> {
    if let (Some((dev, ino, was)), Some((d, i, now))) = (before, stdout_identity()) {
        if (dev, ino) == (d, i) && now >= was {
            return Ok(from + (now - was).min(upto - from));
        }
    }
    let saved = path.with_file_name(format!("{name}.{from}-{upto}.spool"));
    let mut chunk = Vec::new();
    let at = HEADER + from.saturating_sub(base);
    let have = len.min(upto).saturating_sub(from);
    let _ = file
        .seek(SeekFrom::Start(at))
        .and_then(|_| (&mut *file).take(have).read_to_end(&mut chunk));
    let where_ = match std::fs::write(&saved, &chunk) {
        Ok(()) => format!("saved in {}", saved.display()),
        Err(e) => format!("could not be saved to {}: {e}", saved.display()),
    };
    eprintln!(
        "weir: warning: sink '{name}': a run stopped while writing output bytes {from}..{upto} to stdout, which is not a regular file: some of them may be missing from that output; they are not written again ({where_})"
    );
    Ok(upto)
}
