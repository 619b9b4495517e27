//! The writer lock: one process at a time may change an index. Readers never lock.
//!
//! A [`WriterLock`] is a guard handed out by a [`crate::Directory`]. On disk it is an
//! exclusive advisory lock (`fs2`) on a lock file; it is released when the guard is dropped or
//! the process dies, so a crashed writer never leaves a stale lock. In memory it is an
//! in-process exclusive flag with the same waiting rules.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::error::{Result, StorageError};

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait for it to be released.
    Block,
    /// Fail at once with [`StorageError::Busy`].
    NoWait,
}

/// Proof that this process is the index's only writer; released on drop.
#[derive(Debug)]
pub struct WriterLock {
    path: PathBuf,
    /// Releases the lock when dropped.
    _held: Box<dyn fmt::Debug + Send + Sync>,
}

/// An `fs2` lock on an open lock file, unlocked on drop.
#[derive(Debug)]
struct FileLock(File);

impl Drop for FileLock {
    fn drop(&mut self) {
        // Unlocking only releases the advisory lock; closing the file would do the same.
        let _ = FileExt::unlock(&self.0);
    }
}

impl WriterLock {
    /// A lock named `path` (in errors and [`Self::path`]) that lasts as long as `held`: a
    /// [`crate::Directory`] backend's guard, which releases the lock in its `Drop`.
    pub fn from_guard(path: PathBuf, held: Box<dyn fmt::Debug + Send + Sync>) -> WriterLock {
        WriterLock { path, _held: held }
    }

    /// Takes the lock at `path`, creating the file if needed. With [`LockWait::Block`],
    /// `on_wait` is called once before blocking if the lock is held elsewhere.
    ///
    /// ```
    /// use turboprop_storage::{LockWait, WriterLock};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("writer.lock");
    /// let held = WriterLock::acquire(&path, LockWait::NoWait, || {})?;
    /// assert!(WriterLock::acquire(&path, LockWait::NoWait, || {}).is_err());
    /// drop(held);
    /// assert!(WriterLock::acquire(&path, LockWait::NoWait, || {}).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire(path: &Path, wait: LockWait, on_wait: impl FnOnce()) -> Result<WriterLock> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            // Never through a link: a link named writer.lock must not create or open a file
            // elsewhere.
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        }
        let file = options
            .open(path)
            .map_err(|e| match std::fs::symlink_metadata(path) {
                Ok(meta) if !meta.file_type().is_file() => StorageError::NotRegular {
                    path: path.to_path_buf(),
                    found: crate::open::EntryKind::of(meta.file_type()),
                },
                _ => StorageError::io("open lock file", path, e),
            })?;
        let file_type = file
            .metadata()
            .map_err(|e| StorageError::io("stat", path, e))?
            .file_type();
        if !file_type.is_file() {
            return Err(StorageError::NotRegular {
                path: path.to_path_buf(),
                found: crate::open::EntryKind::of(file_type),
            });
        }
        match file.try_lock_exclusive() {
            Ok(()) => {}
            Err(e) if is_contended(&e) => match wait {
                LockWait::NoWait => {
                    return Err(StorageError::Busy {
                        path: path.to_path_buf(),
                    })
                }
                LockWait::Block => {
                    on_wait();
                    file.lock_exclusive()
                        .map_err(|e| StorageError::io("lock", path, e))?;
                }
            },
            Err(e) => return Err(StorageError::io("lock", path, e)),
        }
        Ok(WriterLock::from_guard(
            path.to_path_buf(),
            Box::new(FileLock(file)),
        ))
    }

    /// The lock file (or its name in a memory directory).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn is_contended(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
}
