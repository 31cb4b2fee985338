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
//!
//! A copy is made before its original goes: `copytruncate` copies the live file, fsyncs the
//! copy and only then truncates the original; gzip writes `x.gz` before it removes `x`. A scan
//! in between lists both, the original still under its inode: the copy, which holds only bytes
//! of a known file still in place, is then no new file (reading it would give those bytes
//! again) and is left out until the original goes (see `held_back`). It is remembered on the
//! known file (`FileState::copy`), so that the copy is known as that file even when weir read
//! the original past the copy's end before the truncation.

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
    /// A listed file found holding only this file's first bytes while this file was still in
    /// place (a copy being made), left unread; what it was when last looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyOf>,
    /// No longer matched by the glob (rotated away or removed); kept until the run ends so
    /// record origins keep their file numbers, left out of the next checkpoint.
    #[serde(skip)]
    pub gone: bool,
}

/// A copy of a known file's first `content` bytes (decompressed for `.gz`), found while that
/// file was still in place: the listed file (device, inode, length) as it was then.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct CopyOf {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub content: u64,
}

impl CopyOf {
    /// Whether `l` is that file, unchanged since.
    fn is(&self, l: &Listed) -> bool {
        (self.dev, self.ino, self.len) == (l.dev, l.ino, l.len)
    }
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
    /// A listed file holds only the first `len` bytes of the known file `of`, still in place:
    /// a copy being made, not read (see `held_back`).
    Copy { path: String, of: String, len: u64 },
    /// A known file was truncated after weir had read past the end of its copy `to`: the copy
    /// is read to its end already (`read` bytes of the original were).
    CopyRead { from: String, to: String, read: u64 },
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
    // Known files found as a copy that holds fewer bytes than weir read: the offset there.
    // (the offset there, the copy's length)
    let mut cut: Vec<Option<(u64, u64)>> = vec![None; files.len()];
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
        // Its copy, seen while it was still in place and unchanged since, when it holds fewer
        // bytes than weir read there (bytes written between the copy and the truncation, read
        // from the original) or its tail fingerprint could not be taken at the offset.
        if pair[i].is_none() {
            if let Some(c) = &f.copy {
                if let Some(j) = (0..listed.len()).find(|&j| !claimed[j] && c.is(&listed[j])) {
                    claimed[j] = true;
                    pair[i] = Some((j, true));
                    cut[i] = Some((c.content.min(f.offset), c.content));
                }
            }
        }
    }
    // 3. A listed file that is none of them but holds only the first bytes of a known file
    // still in place is a copy being made: not a new file, left out of this scan.
    let (copies, held) = held_back(files, &pair, &mut listed, &claimed, fp_bytes)?;
    for (i, c) in copies.into_iter().enumerate() {
        let f = &mut files[i];
        if let (Some((j, c)), false) = (&c, f.copy.as_ref() == c.as_ref().map(|x| &x.1)) {
            events.push(Event::Copy {
                path: listed[*j].name.clone(),
                of: f.path.clone(),
                len: c.content,
            });
        }
        if pair[i].is_some() && !f.gone {
            f.copy = c.map(|(_, c)| c);
        }
    }
    for (c, h) in claimed.iter_mut().zip(held) {
        // Held back: claimed by no known file, but not new either.
        *c |= h;
    }
    // 4. The known files take their files' names and identities; the others are gone, or were
    // replaced in place when a listed file has their inode.
    for (i, f) in files.iter_mut().enumerate() {
        if f.gone {
            continue;
        }
        match pair[i] {
            Some((j, by_content)) => {
                let l = &listed[j];
                if let Some((to, len)) = cut[i] {
                    events.push(if to < f.offset {
                        Event::CopyRead {
                            from: f.path.clone(),
                            to: l.name.clone(),
                            read: f.offset,
                        }
                    } else {
                        Event::Renamed {
                            from: f.path.clone(),
                            to: l.name.clone(),
                            offset: f.offset,
                            by_content: true,
                        }
                    });
                    // Its fingerprints become the copy's at `to` (a copy shorter than the head
                    // fingerprint has a shorter one).
                    let t = to.min(TAIL_BYTES);
                    (f.tail_len, f.tail_crc) = match read_content(&l.path, to - t, t)? {
                        Some(b) if b.len() as u64 == t => (t, crc32fast::hash(&b)),
                        _ => (0, 0),
                    };
                    if f.fp_len > len {
                        (f.fp_len, f.fp_crc) = match read_content(&l.path, 0, len)? {
                            Some(b) => (b.len() as u64, crc32fast::hash(&b)),
                            None => (0, 0),
                        };
                    }
                    f.offset = to;
                    f.path = l.name.clone();
                    f.copy = None;
                } else if f.path != l.name {
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

/// The listed files not claimed that hold only the first bytes of a known file still in place
/// (one `pair` holds, a plain file): copies being made, which are no new files. Returns, per
/// known file, its longest such copy (listed index, what it is), and which listed files are
/// held back. An empty file is held back too (a copy just created: nothing to read yet), and a
/// file whose original shrank while it was compared (truncated just now: the next scan knows).
/// A copy already known as such and unchanged is not compared again.
#[allow(clippy::type_complexity)]
fn held_back(
    files: &[FileState],
    pair: &[Option<(usize, bool)>],
    listed: &mut [Listed],
    claimed: &[bool],
    fp_bytes: u64,
) -> Result<(Vec<Option<(usize, CopyOf)>>, Vec<bool>), Error> {
    let mut copies: Vec<Option<(usize, CopyOf)>> = vec![None; files.len()];
    let mut held = vec![false; listed.len()];
    let originals: Vec<(usize, usize)> = pair
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|(j, _)| (i, j)))
        .filter(|&(i, j)| listed[j].regular && !listed[j].gz && !files[i].gone)
        .collect();
    if originals.is_empty() {
        return Ok((copies, held));
    }
    let mut note = |i: usize, j: usize, l: &Listed, content: u64| {
        let c = CopyOf {
            dev: l.dev,
            ino: l.ino,
            len: l.len,
            content,
        };
        if content > 0 && copies[i].as_ref().is_none_or(|(_, x)| x.content < content) {
            copies[i] = Some((j, c));
        }
    };
    for j in 0..listed.len() {
        if claimed[j] || !listed[j].regular {
            continue;
        }
        if let Some(&(i, _)) = originals
            .iter()
            .find(|&&(i, _)| files[i].copy.as_ref().is_some_and(|c| c.is(&listed[j])))
        {
            let content = files[i].copy.as_ref().map_or(0, |c| c.content);
            held[j] = true;
            note(i, j, &listed[j], content);
            continue;
        }
        let Some(s) = Content::of(&listed[j], fp_bytes)? else {
            continue;
        };
        // A `.gz` with nothing to decompress yet is held back only beside the file gzip is
        // compressing into it (a new file that is not gzip is bad input, said at once).
        let stem = listed[j].name.strip_suffix(".gz").map(str::to_owned);
        for &(i, jf) in &originals {
            if s.len == 0 && listed[j].gz && stem.as_deref() != Some(listed[jf].name.as_str()) {
                continue;
            }
            match s.prefix_of(&mut listed[jf], fp_bytes)? {
                Prefix::No => continue,
                Prefix::Yes => note(i, j, &listed[j], s.len),
                Prefix::Unsure => {}
            }
            held[j] = true;
            break;
        }
    }
    Ok((copies, held))
}

/// What a listed file holds, to compare with a known file (see `held_back`): its length
/// (decompressed for `.gz`: as much as decompresses, of a file gzip is still writing), its
/// first bytes and its last.
struct Content {
    len: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
}

enum Prefix {
    No,
    Yes,
    /// The original is now shorter than when it was listed: truncated just now.
    Unsure,
}

impl Content {
    fn of(l: &Listed, fp_bytes: u64) -> Result<Option<Content>, Error> {
        if !l.gz {
            let len = l.len;
            let head = read_content(&l.path, 0, len.min(fp_bytes))?;
            let t = len.min(TAIL_BYTES);
            let tail = read_content(&l.path, len - t, t)?;
            return Ok(head
                .zip(tail)
                .map(|(head, tail)| Content { len, head, tail }));
        }
        let f = match File::open(&l.path) {
            Ok(f) => f,
            Err(_) => return Ok(None),
        };
        let mut r = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
        let (mut head, mut tail) = (Vec::new(), Vec::new());
        let mut len = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            // A file gzip is still writing ends in the middle of its stream: what decompresses
            // before that is its content so far.
            let n = match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let b = &buf[..n];
            let want = (fp_bytes as usize).saturating_sub(head.len()).min(n);
            head.extend_from_slice(&b[..want]);
            tail.extend_from_slice(&b[n.saturating_sub(TAIL_BYTES as usize)..]);
            let cut = tail.len().saturating_sub(TAIL_BYTES as usize);
            tail.drain(..cut);
            len += n as u64;
        }
        Ok(Some(Content { len, head, tail }))
    }

    /// Whether these are the first bytes of the plain file `o`.
    fn prefix_of(&self, o: &mut Listed, fp_bytes: u64) -> Result<Prefix, Error> {
        if self.len > o.len {
            return Ok(Prefix::No);
        }
        if self.len == 0 {
            return Ok(Prefix::Yes);
        }
        let Some(h) = o.head(fp_bytes)? else {
            return Ok(Prefix::Unsure);
        };
        if h.len() < self.head.len() {
            return Ok(Prefix::Unsure);
        }
        if h[..self.head.len()] != self.head[..] {
            return Ok(Prefix::No);
        }
        let t = self.tail.len() as u64;
        Ok(match read_content(&o.path, self.len - t, t)? {
            Some(b) if b == self.tail => Prefix::Yes,
            Some(b) if b.len() as u64 == t => Prefix::No,
            _ => Prefix::Unsure,
        })
    }
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
    // the inode of a file it deleted). A tail longer than the offset (a state weir never
    // writes, only a damaged one holds) is not checked, as `still_same` does not check it.
    if f.tail_len == 0 || f.offset < f.tail_len || (l.gz && inode && is_gz(&f.path)) {
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
