//! The read-ahead buffer of a file read as a stream (`pause`, `follow`, `.gz`, stdin): a line
//! must be whole in it before it is parsed, so one line of 200 MB makes it 200 MB.
//!
//! A `Vec` grows by reallocating, and for a moment holds the old and the new block (and the
//! allocator may keep the old ones for a while after): a huge line cost up to three times its
//! size before the record parsed from it was built. This buffer is anonymous memory that grows
//! with `mremap`, which moves page tables instead of bytes: no copy, no second block, and the
//! spare room costs nothing until bytes are read into it (no zero-filling either). Once a huge
//! line is consumed, the buffer shrinks back, so the pages go back to the kernel.

use memmap2::MmapMut;

/// Room the buffer keeps however small the lines: what one read asks for.
pub const CHUNK: usize = 1 << 20;

#[derive(Default)]
pub struct LineBuf {
    /// `None` until the first byte is read (a mapped file never needs one).
    map: Option<MmapMut>,
}

impl LineBuf {
    /// Bytes the buffer can hold.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// Makes room for at least `cap` bytes, keeping the first `keep` (the unconsumed ones,
    /// moved to the front already). Grows by doubling: growth is cheap, and a line found
    /// whole in fewer reads is scanned for its end fewer times.
    pub fn reserve(&mut self, cap: usize, keep: usize) -> std::io::Result<()> {
        let have = self.len();
        if cap <= have {
            return Ok(());
        }
        let cap = cap.max(have * 2).max(CHUNK);
        self.resize(cap, keep)
    }

    /// After a huge line: gives the pages beyond what the next lines need back to the kernel,
    /// keeping the first `keep` bytes.
    pub fn shrink(&mut self, keep: usize) -> std::io::Result<()> {
        let want = (keep + CHUNK).next_power_of_two().max(2 * CHUNK);
        if self.len() > 2 * want {
            self.resize(want, keep)?;
        }
        Ok(())
    }

    fn resize(&mut self, cap: usize, keep: usize) -> std::io::Result<()> {
        match &mut self.map {
            None => self.map = Some(MmapMut::map_anon(cap)?),
            #[cfg(target_os = "linux")]
            Some(m) => {
                let _ = keep;
                // SAFETY: a private anonymous mapping owned by this buffer; `&mut self` means
                // no slice of it is alive, so it may move.
                unsafe { m.remap(cap, memmap2::RemapOptions::new().may_move(true))? }
            }
            #[cfg(not(target_os = "linux"))]
            Some(m) => {
                let mut new = MmapMut::map_anon(cap)?;
                new[..keep].copy_from_slice(&m[..keep]);
                *m = new;
            }
        }
        Ok(())
    }
}

impl std::ops::Deref for LineBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

impl std::ops::DerefMut for LineBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_its_bytes_as_it_grows_and_shrinks() {
        let mut b = LineBuf::default();
        assert_eq!(b.len(), 0);
        b.reserve(10, 0).unwrap();
        assert_eq!(b.len(), CHUNK);
        b[..5].copy_from_slice(b"hello");
        b[CHUNK - 3..].copy_from_slice(b"end");
        b.reserve(CHUNK + 1, CHUNK).unwrap();
        assert_eq!(b.len(), 2 * CHUNK);
        assert_eq!(&b[..5], b"hello");
        assert_eq!(&b[CHUNK - 3..CHUNK], b"end");
        // New room reads as zeros (fresh pages), never as old bytes.
        assert!(b[CHUNK..].iter().all(|&x| x == 0));
        b.reserve(9 * CHUNK, 2 * CHUNK).unwrap();
        assert_eq!(b.len(), 9 * CHUNK);
        assert_eq!(&b[..5], b"hello");
        b.shrink(5).unwrap();
        assert_eq!(b.len(), 2 * CHUNK);
        assert_eq!(&b[..5], b"hello");
        // A buffer that is not much bigger than needed is left alone.
        b.shrink(5).unwrap();
        assert_eq!(b.len(), 2 * CHUNK);
    }

    /// Room the kernel cannot give (more than the address space) is an error, after which the
    /// buffer still holds its bytes: the read fails with a message, the data is not lost.
    #[test]
    fn a_failed_growth_leaves_the_buffer_as_it_was() {
        let mut b = LineBuf::default();
        b.reserve(10, 0).unwrap();
        b[..5].copy_from_slice(b"hello");
        let huge = 1usize << 50;
        assert!(b.reserve(huge, 5).is_err());
        assert_eq!(b.len(), CHUNK);
        assert_eq!(&b[..5], b"hello");
        b.reserve(2 * CHUNK + 1, 5).unwrap();
        assert_eq!(&b[..5], b"hello");
        // A buffer never mapped fails the same way.
        assert!(LineBuf::default().reserve(huge, 0).is_err());
    }
}
