//! The fingerprints that tell a known file from another after rotation (see `rotation`):
//! the head (a CRC32 of the first bytes, decompressed for `.gz`) and the tail (of the bytes
//! just before the offset, taken from what the reader consumed when it has them).

use super::rotation::{self, is_gz};
use super::FileSource;
use crate::error::Error;
use std::path::Path;

impl FileSource {
    /// Records the tail fingerprint of the open file at its offset, for the next look at it.
    /// (A `.gz` file's from the decompressed bytes the reader has just consumed.)
    pub(super) fn note_tail(&mut self) {
        let Some(f) = self.files.get_mut(self.cur) else {
            return;
        };
        if f.gone {
            return;
        }
        // The open input: the source's reader, or the one the CSV parser reads through.
        let r = self
            .reader
            .as_ref()
            .or(self.csv.as_ref().map(|c| &c.reader.get_ref().r));
        let len = f.offset.min(rotation::TAIL_BYTES);
        // The bytes the reader consumed, when it has them (the file may hold others by now).
        let consumed = r.and_then(|r| r.consumed_before(f.offset, len as usize));
        if let Some(fd) = &self.open_file {
            // Else the file's own, unless it was truncated or written again under the reader
            // (`copytruncate`): its bytes at the offset are then another file's, and the copy
            // that holds the bytes read would not be known by them.
            let intact = r.is_none_or(|r| r.still_there());
            (f.tail_len, f.tail_crc) = match consumed {
                Some(b) => (len, crc32fast::hash(&b)),
                None if intact => rotation::tail_of(fd, f.offset).unwrap_or((0, 0)),
                None => (0, 0),
            };
            // A file opened empty and read as it was written has no head fingerprint yet.
            let want = (self.s.fingerprint_bytes as u64).min(f.offset);
            if f.fp_len < want && intact {
                if let Some(b) = rotation::pread(fd, 0, want) {
                    (f.fp_len, f.fp_crc) = (b.len() as u64, crc32fast::hash(&b));
                }
            }
            return;
        }
        if !is_gz(&f.path) {
            return;
        }
        (f.tail_len, f.tail_crc) = match consumed {
            Some(b) => (len, crc32fast::hash(&b)),
            // Not at hand: known by its head and inode only.
            None if r.is_some() => (0, 0),
            None => (f.tail_len, f.tail_crc),
        };
    }
}

/// Up to `len` leading bytes of a file's content (decompressed for `.gz`): (how many, CRC32).
/// `None` if it cannot be read.
pub(super) fn content_prefix(path: &Path, len: u64) -> Result<Option<(u64, u32)>, Error> {
    Ok(rotation::read_content(path, 0, len)?.map(|b| (b.len() as u64, crc32fast::hash(&b))))
}
