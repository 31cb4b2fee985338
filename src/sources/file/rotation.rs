//! Which file is which after logrotate has been at work: the `file` source's known files
//! (each with its offset) against what its path or glob matches now.
//!
//! A file is known by its content first and its inode second. logrotate's `compress` frees the
//! rotated file's inode, which the new live file then often gets; `copytruncate` keeps the
//! inode on the live file and moves its content to a new one. So a known file is the listed
//! file whose first bytes (its head fingerprint, decompressed for `.gz`) and the bytes just
//! before its offset (its tail fingerprint) are still what weir read there; the inode only says
//! which file to look at first. A file with the same inode whose content differs was truncated
//! or replaced in place, and is read again as a new file.

use crate::error::Error;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

fn is_zero<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

/// One file's entry in a checkpoint: its identity (head and tail fingerprints, device and
/// inode) and its position, which `reconcile` matches against what is listed now.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct FileState {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    /// How many leading bytes the fingerprint covers (less than asked for a short file).
    pub fp_len: u64,
    pub fp_crc: u32,
    /// Byte offset after the last record consumed.
    pub offset: u64,
    /// Lines consumed (the next record's line number is `line + 1`).
    pub line: u64,
    /// CSV/TSV header of this file, once read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
    /// Size when last looked at, to tell "read fully" from "lost" when the file disappears.
    #[serde(default)]
    pub size: u64,
    /// The tail fingerprint: CRC32 of the `tail_len` bytes just before `offset` (plain files),
    /// so that a file rewritten in place or a copy with the same first bytes is not taken for
    /// this one (see `rotation`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tail_len: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tail_crc: u32,
    /// The file as a whole is bad input (a corrupt or truncated `.gz`, a CSV header that is
    /// not UTF-8): it went to `on_error` once, and the rest of it is never read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bad: bool,
    /// No longer matched by the glob (rotated away or removed); kept until the run ends so
    /// record origins keep their file numbers, left out of the next checkpoint.
    #[serde(skip)]
    pub gone: bool,
}

/// Bytes before a file's offset that its tail fingerprint covers.
pub const TAIL_BYTES: u64 = 256;

/// A file the path or glob matches now.
pub struct Listed {
    pub path: PathBuf,
    pub name: String,
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub gz: bool,
    /// A regular file (not a FIFO): one whose content can be looked at.
    pub regular: bool,
    /// Its first bytes (decompressed) and how many were asked for, read once per scan when a
    /// fingerprint needs them.
    head: Option<(u64, Option<Vec<u8>>)>,
}

impl Listed {
    pub fn new(path: PathBuf, md: &std::fs::Metadata) -> Listed {
        let name = path.to_string_lossy().into_owned();
        Listed {
            gz: is_gz(&name),
            name,
            dev: md.dev(),
            ino: md.ino(),
            len: md.len(),
            regular: md.is_file(),
            path,
            head: None,
        }
    }

    /// Its first `want` bytes or fewer (all it has); read once per scan.
    fn head(&mut self, want: u64) -> Result<Option<&[u8]>, Error> {
        if self.head.as_ref().is_none_or(|(w, _)| *w < want) {
            self.head = Some((want, read_content(&self.path, 0, want)?));
        }
        Ok(self.head.as_ref().and_then(|(_, h)| h.as_deref()))
    }
}

/// What a scan found out, for the source to say.
pub enum Event {
    /// A known file is now under another name (`by_content`: found by its content, the inode
    /// changed: compressed, copied, or moved across file systems).
    Renamed {
        from: String,
        to: String,
        offset: u64,
        by_content: bool,
    },
    /// The file under a known inode is not the content weir read there.
    Replaced { path: String, read: u64, lost: u64 },
    /// A known file matches nothing any more.
    Gone { path: String, lost: u64 },
}

/// Matches `files` (the known ones, `gone` left alone) with `listed`. Known files take their
/// new names; the listed files that are none of them are returned as new, in listing order.
/// `fp_bytes` is the most a head fingerprint covers.
pub fn reconcile(
    files: &mut [FileState],
    mut listed: Vec<Listed>,
    fp_bytes: u64,
) -> Result<(Vec<FileState>, Vec<Event>), Error> {
    let mut events = Vec::new();
    let mut claimed = vec![false; listed.len()];
    // For each known file, the listed file that holds its content.
    let mut pair: Vec<Option<(usize, bool)>> = vec![None; files.len()];
    // 1. The inode says where to look first; the content must agree.
    for (i, f) in files.iter().enumerate() {
        if f.gone || (f.dev, f.ino) == (0, 0) {
            continue;
        }
        let Some(j) = listed.iter().position(|l| (l.dev, l.ino) == (f.dev, f.ino)) else {
            continue;
        };
        if !claimed[j] && same_content(f, &mut listed[j], true, fp_bytes)? {
            claimed[j] = true;
            pair[i] = Some((j, false));
        }
    }
    // 2. Known files not found under their inode: by content, among the files not taken.
    for (i, f) in files.iter().enumerate() {
        if pair[i].is_some() || f.gone || f.fp_len == 0 {
            continue;
        }
        // The same name first (a file copied back in place), then in listing order.
        let mut order: Vec<usize> = (0..listed.len()).filter(|&j| !claimed[j]).collect();
        order.sort_by_key(|&j| listed[j].name != f.path);
        for j in order {
            if same_content(f, &mut listed[j], false, fp_bytes)? {
                claimed[j] = true;
                pair[i] = Some((j, true));
                break;
            }
        }
    }
    // 3. The known files take their files' names and identities; the others are gone, or were
    // replaced in place when a listed file has their inode.
    for (i, f) in files.iter_mut().enumerate() {
        if f.gone {
            continue;
        }
        match pair[i] {
            Some((j, by_content)) => {
                let l = &listed[j];
                if f.path != l.name {
                    events.push(Event::Renamed {
                        from: f.path.clone(),
                        to: l.name.clone(),
                        offset: f.offset,
                        by_content,
                    });
                    f.path = l.name.clone();
                }
                f.dev = l.dev;
                f.ino = l.ino;
                if !l.gz {
                    f.size = l.len;
                }
            }
            None => {
                f.gone = true;
                let lost = if is_gz(&f.path) {
                    0
                } else {
                    f.size.saturating_sub(f.offset)
                };
                // Under the same name and inode with other content: truncated or rewritten
                // in place. Under another name, the inode was freed and taken again.
                let reused = (f.dev, f.ino) != (0, 0)
                    && listed
                        .iter()
                        .any(|l| (l.dev, l.ino) == (f.dev, f.ino) && l.name == f.path);
                events.push(if reused {
                    Event::Replaced {
                        path: f.path.clone(),
                        read: f.offset,
                        lost,
                    }
                } else {
                    Event::Gone {
                        path: f.path.clone(),
                        lost,
                    }
                });
            }
        }
    }
    let new = listed
        .into_iter()
        .zip(claimed)
        .filter(|(_, c)| !c)
        .map(|(l, _)| FileState {
            size: if l.gz { 0 } else { l.len },
            path: l.name,
            dev: l.dev,
            ino: l.ino,
            ..Default::default()
        })
        .collect();
    Ok((new, events))
}

/// Whether `l` holds the content weir read of `f`: the same first `fp_len` bytes, at least
/// `offset` bytes (plain files), and the same bytes just before the offset.
fn same_content(f: &FileState, l: &mut Listed, inode: bool, fp_bytes: u64) -> Result<bool, Error> {
    if !l.regular {
        // A FIFO is read as it comes: only its inode names it.
        return Ok(inode);
    }
    if f.fp_len == 0 {
        // Nothing read yet: only the inode can tell, and reading it from 0 loses nothing.
        return Ok(inode && f.offset == 0);
    }
    if !l.gz && l.len < f.offset.max(f.fp_len) {
        return Ok(false);
    }
    let Some(head) = l.head(f.fp_len.max(fp_bytes))? else {
        return Ok(false);
    };
    if (head.len() as u64) < f.fp_len || crc32fast::hash(&head[..f.fp_len as usize]) != f.fp_crc {
        return Ok(false);
    }
    // A compressed file weir already knows as compressed is not decompressed to its offset
    // again; a plain file that now has a `.gz` under its inode is (gzip may have been given
    // the inode of a file it deleted).
    if f.tail_len == 0 || (l.gz && inode && is_gz(&f.path)) {
        return Ok(true);
    }
    let from = f.offset - f.tail_len;
    Ok(match read_content(&l.path, from, f.tail_len)? {
        Some(b) => b.len() as u64 == f.tail_len && crc32fast::hash(&b) == f.tail_crc,
        None => false,
    })
}

pub fn is_gz(path: &str) -> bool {
    path.ends_with(".gz")
}

/// Up to `len` bytes of a file's content from `from` (decompressed for `.gz`); `None` if the
/// file is gone or its content cannot be read (a corrupt gzip file has no content to match).
pub fn read_content(path: &Path, from: u64, len: u64) -> Result<Option<Vec<u8>>, Error> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::runtime(format!(
                "cannot open {}: {e}",
                path.display()
            )))
        }
    };
    if !is_gz(&path.to_string_lossy()) {
        return Ok(pread(&f, from, len));
    }
    let mut r = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
    match std::io::copy(&mut (&mut r).take(from), &mut std::io::sink()) {
        Ok(n) if n == from => {}
        _ => return Ok(None),
    }
    let mut buf = Vec::with_capacity(len as usize);
    match r.take(len).read_to_end(&mut buf) {
        Ok(_) => Ok(Some(buf)),
        Err(_) => Ok(None),
    }
}

/// Up to `len` bytes of an open plain file at `from`.
pub fn pread(f: &File, from: u64, len: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], from + got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    buf.truncate(got);
    Some(buf)
}

/// The tail fingerprint of an open plain file at `offset`: (bytes covered, CRC32).
pub fn tail_of(f: &File, offset: u64) -> Option<(u64, u32)> {
    let len = offset.min(TAIL_BYTES);
    let b = pread(f, offset - len, len)?;
    (b.len() as u64 == len).then(|| (len, crc32fast::hash(&b)))
}

/// Whether an open plain file (of `len` bytes) still holds what weir read of `st`: the check
/// made each time a file is opened again (each pass of `follow`, each run), since between two
/// looks it may have been truncated and written again, even to more bytes than were read.
pub fn still_same(f: &File, len: u64, st: &FileState) -> bool {
    if len < st.offset {
        return false;
    }
    let head_ok = st.fp_len == 0
        || pread(f, 0, st.fp_len)
            .is_some_and(|b| b.len() as u64 == st.fp_len && crc32fast::hash(&b) == st.fp_crc);
    let tail_ok = st.tail_len == 0
        || st.offset < st.tail_len
        || pread(f, st.offset - st.tail_len, st.tail_len)
            .is_some_and(|b| b.len() as u64 == st.tail_len && crc32fast::hash(&b) == st.tail_crc);
    head_ok && tail_ok
}
