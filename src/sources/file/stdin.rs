//! Stdin and FIFOs: read on a helper thread, so the source can still take checkpoints and
//! notice signals while the pipe is quiet, and, for stdin, the state a checkpoint keeps of it
//! (bytes consumed and their CRC32, so `resume` refuses other input).

use super::reader::{Input, CHUNK};
use crate::error::Error;
use crossbeam_channel::{bounded, Receiver};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

/// Stdin in a checkpoint: bytes consumed and their CRC32, so `resume` can tell whether it is
/// being fed the same input again.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct StdinState {
    pub consumed: u64,
    pub crc: u32,
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
    /// As `FileState::bad`: the rest of stdin is read and dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bad: bool,
}

pub(super) fn is_fifo(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Opens and reads a FIFO on a helper thread (its writer's bytes, whatever came before).
pub(super) fn read_fifo(
    path: PathBuf,
    source: &str,
) -> Result<Receiver<std::io::Result<Vec<u8>>>, Error> {
    let (tx, rx) = bounded::<std::io::Result<Vec<u8>>>(4);
    std::thread::Builder::new()
        .name("weir:fifo".into())
        .spawn(move || match File::open(&path) {
            Ok(f) => pump(f, tx),
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|e| Error::runtime(format!("source '{source}': cannot start a reader: {e}")))?;
    Ok(rx)
}

/// Sends what `r` reads, in chunks, until its end, an error, or the receiver is gone: the
/// helper thread of stdin and FIFOs.
pub(super) fn pump(mut r: impl Read, tx: crossbeam_channel::Sender<std::io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0u8; 256 * 1024];
        match r.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if tx.send(Ok(chunk)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// Opens stdin for reading after `skip` bytes already consumed by an earlier run. Those bytes
/// are read (never seeked past, even where stdin is a file) so that their CRC can be checked
/// against the checkpoint's: resuming on different input is refused.
pub(super) fn open_stdin(skip: u64, st: &StdinState, source: &str) -> Result<Input, Error> {
    let mut stdin = std::io::stdin();
    let mut prefix_crc = crc32fast::Hasher::new();
    let mut skipped = 0u64;
    // Read and check the prefix on this thread, so a mismatch is reported before any work.
    let mut buf = vec![0u8; CHUNK];
    while skipped < skip {
        let want = ((skip - skipped) as usize).min(buf.len());
        let n = match stdin.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::runtime(format!("reading stdin: {e}"))),
        };
        if n == 0 {
            break;
        }
        prefix_crc.update(&buf[..n]);
        skipped += n as u64;
    }
    if skip > 0 && (skipped < skip || prefix_crc.finalize() != st.crc) {
        return Err(Error::usage(format!(
            "source '{source}': stdin differs from the input of the checkpoint (its first {skip} bytes do not match); feed the same input to resume, or start over with `weir run --fresh`"
        )));
    }
    let (tx, rx) = bounded::<std::io::Result<Vec<u8>>>(4);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || pump(std::io::stdin(), tx))
        .map_err(|e| Error::runtime(format!("cannot start the stdin reader: {e}")))?;
    Ok(Input::Stdin(rx))
}
