//! An atomic file write: a temporary file in the same directory, write, fsync, rename over the
//! target, fsync the directory. A crash at any point leaves either the old file or the new
//! one, never a mix.

use crate::error::Error;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let err =
        |what: &str, e: std::io::Error| Error::runtime(format!("{what} {}: {e}", tmp.display()));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| err("cannot create", e))?;
    f.write_all(bytes).map_err(|e| err("cannot write", e))?;
    crate::crash_point!("atomic-before-fsync");
    f.sync_all().map_err(|e| err("cannot fsync", e))?;
    drop(f);
    crate::crash_point!("atomic-before-rename");
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::runtime(format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            path.display()
        ))
    })?;
    crate::crash_point!("atomic-before-dir-fsync");
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    let d = File::open(dir)
        .map_err(|e| Error::runtime(format!("cannot open directory {}: {e}", dir.display())))?;
    d.sync_all()
        .map_err(|e| Error::runtime(format!("cannot fsync directory {}: {e}", dir.display())))
}
