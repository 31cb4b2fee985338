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
        if let Some(fd) = &self.open_file {
            // The bytes the reader consumed, when it has them (the file may hold others by
            // now); else the file's own.
            let len = f.offset.min(rotation::TAIL_BYTES);
            let consumed = match &self.reader {
                Some(r) if r.offset == f.offset => r.consumed_tail(len as usize),
                _ => None,
            };
            (f.tail_len, f.tail_crc) = match consumed {
                Some(b) => (len, crc32fast::hash(&b)),
                None => rotation::tail_of(fd, f.offset).unwrap_or((0, 0)),
            };
            // A file opened empty and read as it was written has no head fingerprint yet.
            let want = (self.s.fingerprint_bytes as u64).min(f.offset);
            if f.fp_len < want {
                if let Some(b) = rotation::pread(fd, 0, want) {
                    (f.fp_len, f.fp_crc) = (b.len() as u64, crc32fast::hash(&b));
                }
            }
            return;
        }
        if !is_gz(&f.path) {
            return;
        }
        let len = f.offset.min(rotation::TAIL_BYTES);
        let tail = match &self.reader {
            Some(r) if r.offset == f.offset => r.consumed_tail(len as usize),
            _ => None,
        };
        (f.tail_len, f.tail_crc) = match tail {
            Some(b) => (len, crc32fast::hash(&b)),
            // Not at hand (CSV reads ahead): known by its head and inode only.
            None if self.reader.is_some() || self.csv.is_some() => (0, 0),
            None => (f.tail_len, f.tail_crc),
        };
    }
}

/// Up to `len` leading bytes of a file's content (decompressed for `.gz`): (how many, CRC32).
/// `None` if it cannot be read.
pub(super) fn content_prefix(path: &Path, len: u64) -> Result<Option<(u64, u32)>, Error> {
    Ok(rotation::read_content(path, 0, len)?.map(|b| (b.len() as u64, crc32fast::hash(&b))))
}
