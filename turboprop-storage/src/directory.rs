//! [`Directory`]: the only way the storage layer touches bytes. An index folder is a flat set
//! of write-once files and sub-folders under `/`-separated names (`manifest.json`,
//! `seg-00000007/vectors.bin`); tables, documents, segments, delete sets, the commit and
//! garbage collection are all written against this trait.
//!
//! Two backends implement it: [`FsDirectory`], a folder on disk (memory maps, `fsync`,
//! `rename`, an `fs2` lock), and [`MemDirectory`], a map in memory whose clones share one
//! store, for tests and for programs that never need the index on disk. Both must pass the
//! same conformance suite (`turboprop-storage/tests/conformance.rs` and
//! `turboprop-index/tests/conformance.rs`).
//!
//! The contract, which every backend keeps:
//! - **Write-once files.** [`Directory::create`] and [`Directory::write_new`] refuse a name
//!   that exists; a finished file is never modified in place.
//! - **Durable when the call returns.** [`WriteFile::finish`], [`Directory::write_new`],
//!   [`Directory::replace`] and [`Directory::sync_dir`] return only once their effect
//!   survives a crash; nothing depends on `Drop`.
//! - **Atomic replace.** [`Directory::replace`] swaps a whole file: a reader sees the old
//!   bytes or the new ones, never a mix.
//! - **Stable reads.** The [`FileBytes`] of [`Directory::read`] never change while held, even
//!   if the file is replaced or removed.
//! - **One writer.** [`Directory::lock`] hands out at most one [`WriterLock`] per name at a
//!   time; [`LockWait`] says whether a second caller waits or fails with `Busy`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::error::{Result, StorageError};
use crate::lock::{LockWait, WriterLock};
use crate::mmap::{FileBytes, ReadMode};

mod disk;
mod mem;

pub use disk::FsDirectory;
pub use mem::MemDirectory;

/// Where an index's files live. Names are relative and `/`-separated, without `.`, `..` or
/// empty parts; `""` names the directory itself (for [`Self::location`], [`Self::list`] and
/// [`Self::sync_dir`]).
///
/// ```
/// use std::sync::Arc;
/// use turboprop_storage::{Directory, MemDirectory, ReadMode};
///
/// let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
/// dir.create_dir("seg-00000001")?;
/// dir.write_new("seg-00000001/notes.txt", b"hello")?;
/// assert!(dir.write_new("seg-00000001/notes.txt", b"again").is_err()); // write-once
/// dir.replace("manifest.json", b"v1")?;
/// let old = dir.read("manifest.json", ReadMode::Mmap)?;
/// dir.replace("manifest.json", b"v2")?;
/// assert_eq!(old.bytes(), b"v1"); // held bytes never change
/// assert_eq!(dir.read("manifest.json", ReadMode::Mmap)?.bytes(), b"v2");
/// assert_eq!(dir.list("")?, ["manifest.json", "seg-00000001"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Directory: fmt::Debug + Send + Sync {
    /// How `name` is shown to people and in errors: the file's path for a folder on disk, a
    /// `mem://` name in memory.
    fn location(&self, name: &str) -> PathBuf;

    /// Creates the directory itself if it does not exist yet. Idempotent.
    fn create_root(&self) -> Result<()>;

    /// The whole file `name`. The bytes stay the same while held, even if the file is
    /// replaced or removed. `mode` says whether a file on disk is mapped or copied; a memory
    /// directory shares its bytes either way.
    fn read(&self, name: &str, mode: ReadMode) -> Result<FileBytes>;

    /// [`Directory::read`], refused with [`StorageError::TooLarge`] when the file is longer
    /// than `max` bytes; a directory on disk checks the length before mapping or allocating.
    fn read_at_most(&self, name: &str, mode: ReadMode, max: u64) -> Result<FileBytes> {
        let file = self.read(name, mode)?;
        let len = file.bytes().len() as u64;
        if len > max {
            return Err(StorageError::TooLarge {
                path: file.path().to_path_buf(),
                len,
                max,
            });
        }
        Ok(file)
    }

    /// Creates the file `name` for streaming writes. Fails if `name` exists or its folder
    /// does not. The file exists (empty) from this call on; its content is durable and
    /// readable once [`WriteFile::finish`] returns.
    fn create(&self, name: &str) -> Result<Box<dyn WriteFile>>;

    /// Creates the file `name` with `bytes`, durably. Fails if `name` exists.
    fn write_new(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut file = self.create(name)?;
        io::Write::write_all(&mut file, bytes)
            .map_err(|e| StorageError::io("write", self.location(name), e))?;
        file.finish()
    }

    /// Replaces (or creates) the file `name` with `bytes` atomically and durably: readers see
    /// the old content or the new one, never a mix, and after a crash one of the two.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<()>;

    /// Creates the folder `name`. Fails if it exists or its parent does not.
    fn create_dir(&self, name: &str) -> Result<()>;

    /// Makes the entries created, renamed or removed in folder `name` durable.
    fn sync_dir(&self, name: &str) -> Result<()>;

    /// The names of the entries of folder `name` (files and folders, not their contents),
    /// sorted.
    fn list(&self, name: &str) -> Result<Vec<String>>;

    /// Removes the file `name`, or the folder `name` with everything in it. Readers holding
    /// its bytes keep them. A missing `name` is [`StorageError::Missing`].
    fn remove(&self, name: &str) -> Result<()>;

    /// Whether a file or folder `name` exists (a link or special file counts: something is
    /// there). Errors other than "not found" (a folder that cannot be read, say) are errors,
    /// never taken for absence.
    fn exists(&self, name: &str) -> Result<bool>;

    /// The length in bytes of the file `name`.
    fn file_len(&self, name: &str) -> Result<u64>;

    /// Takes the exclusive writer lock `name`. If another holder has it, fails with
    /// [`StorageError::Busy`] ([`LockWait::NoWait`]) or calls `on_wait` once and waits
    /// ([`LockWait::Block`]). The lock is released when the guard is dropped.
    fn lock(&self, name: &str, wait: LockWait, on_wait: &mut dyn FnMut()) -> Result<WriterLock>;
}

/// A new file being written by [`Directory::create`]: bytes are written (and may be
/// overwritten after seeking back, as the table header is), then [`WriteFile::finish`] makes
/// them durable. A file dropped without `finish` may be left partial, and is garbage.
pub trait WriteFile: io::Write + io::Seek + fmt::Debug + Send {
    /// Flushes and syncs the file; once this returns its content is durable and
    /// [`Directory::read`] returns it.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// The name of `name`'s folder (`""` for a top-level name).
pub(crate) fn parent_name(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// `folder/name`, or `name` in the top-level folder.
pub fn join_name(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// Checks that `name` is a relative, `/`-separated name without `.`, `..` or empty parts
/// (`""`, the directory itself, only where `root_ok`).
pub(crate) fn check_name(name: &str, root_ok: bool) -> Result<()> {
    if name.is_empty() && root_ok {
        return Ok(());
    }
    let bad = name.is_empty()
        || name.contains('\\')
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(StorageError::Io {
            op: "use name",
            path: PathBuf::from(name),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a relative /-separated name inside the index folder",
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "seg-1/vectors.bin", ".tp-tmp-1"] {
            assert!(check_name(good, false).is_ok(), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b", "a\\b"] {
            assert!(check_name(bad, false).is_err(), "{bad}");
        }
        assert!(check_name("", true).is_ok());
        assert_eq!(parent_name("seg-1/vectors.bin"), "seg-1");
        assert_eq!(parent_name("manifest.json"), "");
        assert_eq!(join_name("", "a"), "a");
        assert_eq!(join_name("s", "a"), "s/a");
    }
}
