//! Atomic, durable file replacement: write a temp file in the same folder, sync it, rename it
//! over the target, then sync the folder so the rename itself survives a power cut.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, StorageError};

/// Prefix of every temp file this crate creates; [`crate::IndexDir::remove_temp_files`]
/// removes leftovers.
pub const TEMP_PREFIX: &str = ".tp-tmp-";

/// A temp-file name in the same folder as `target`, unique within this machine.
fn temp_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = format!("{TEMP_PREFIX}{}-{n}-{name}", std::process::id());
    target.with_file_name(tmp)
}

/// Replaces `target` with `bytes` atomically: readers see the old content or the new one,
/// never a mix, and once this returns the new content survives a crash.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("version.txt");
/// turboprop_storage::atomic_write(&path, b"1\n")?;
/// turboprop_storage::atomic_write(&path, b"2\n")?;
/// assert_eq!(std::fs::read(&path)?, b"2\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn atomic_write(target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(target);
    let result = (|| {
        write_new_file(&tmp, bytes)?;
        crate::failpoint::check("manifest:rename", target)?;
        fs::rename(&tmp, target).map_err(|e| StorageError::io("rename into place", target, e))?;
        crate::failpoint::check("manifest:sync", target)?;
        sync_dir(parent_of(target))
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is also removed by the next writer.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` (which must not exist), writes `bytes` and syncs them to disk.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StorageError::io("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| StorageError::io("write", path, e))?;
    file.sync_all()
        .map_err(|e| StorageError::io("sync", path, e))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs a folder so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let handle = File::open(dir).map_err(|e| StorageError::io("open folder", dir, e))?;
        handle
            .sync_all()
            .map_err(|e| StorageError::io("sync folder", dir, e))?;
    }
    #[cfg(not(unix))]
    {
        // Folders cannot be opened for syncing on this platform; renames are durable once
        // the file system flushes its journal.
        let _ = dir;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("manifest.json");
        atomic_write(&target, b"one").expect("first write");
        atomic_write(&target, b"two").expect("second write");
        assert_eq!(fs::read(&target).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn write_into_missing_folder_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("nope").join("f");
        let err = atomic_write(&target, b"x").expect_err("must fail");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
