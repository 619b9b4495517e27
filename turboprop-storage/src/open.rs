//! Opening files that arrive as untrusted input (an index folder, the files of a cloned
//! repository): never through a symbolic link, never a FIFO, device, socket or folder, and
//! never more bytes than the caller's bound.
//!
//! [`open_regular`] opens without following a link in the last component (`O_NOFOLLOW`) and
//! without blocking on a FIFO (`O_NONBLOCK`, which changes nothing for a regular file), then
//! checks the opened file itself (`fstat`), so nothing can be swapped in between a check and
//! the open. [`open_beneath`] also refuses links and non-folders among the folders between a
//! trusted root and the file, so a path recorded in an index can never lead out of the
//! repository. [`read_bounded`] reads at most a given number of bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use crate::error::{Result, StorageError};

/// What stands where a regular file (or a real folder) was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO (reading it could block forever).
    Fifo,
    /// A socket.
    Socket,
    /// A block or character device (`/dev/zero` never ends).
    Device,
    /// A folder where a file was expected.
    Folder,
    /// A regular file where a folder was expected.
    File,
}

impl EntryKind {
    /// The kind of `file_type`.
    pub fn of(file_type: std::fs::FileType) -> EntryKind {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if file_type.is_fifo() {
                return EntryKind::Fifo;
            }
            if file_type.is_socket() {
                return EntryKind::Socket;
            }
            if file_type.is_block_device() || file_type.is_char_device() {
                return EntryKind::Device;
            }
        }
        if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_dir() {
            EntryKind::Folder
        } else {
            EntryKind::File
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryKind::Symlink => "a symbolic link",
            EntryKind::Fifo => "a FIFO",
            EntryKind::Socket => "a socket",
            EntryKind::Device => "a device",
            EntryKind::Folder => "a folder",
            EntryKind::File => "a file",
        })
    }
}

/// Opens `path` read-only without following a symbolic link in its last component and
/// without blocking, and checks that it is a regular file. Returns the file and its length.
///
/// A link, FIFO, device, socket or folder is [`StorageError::NotRegular`]; a missing file is
/// [`StorageError::Missing`].
///
/// ```
/// use turboprop_storage::{open_regular, StorageError};
///
/// let tmp = tempfile::tempdir()?;
/// std::fs::write(tmp.path().join("a.txt"), b"hello")?;
/// let (_file, len) = open_regular(&tmp.path().join("a.txt"))?;
/// assert_eq!(len, 5);
/// # #[cfg(unix)] {
/// std::os::unix::fs::symlink(tmp.path().join("a.txt"), tmp.path().join("link"))?;
/// assert!(matches!(open_regular(&tmp.path().join("link")), Err(StorageError::NotRegular { .. })));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    #[cfg(not(unix))]
    {
        // No O_NOFOLLOW: check the entry itself first (a race with a local attacker remains).
        let meta =
            std::fs::symlink_metadata(path).map_err(|e| StorageError::io("open", path, e))?;
        if !meta.file_type().is_file() {
            return Err(StorageError::NotRegular {
                path: path.to_path_buf(),
                found: EntryKind::of(meta.file_type()),
            });
        }
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) => return Err(open_error(path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| StorageError::io("stat", path, e))?;
    if !meta.file_type().is_file() {
        return Err(StorageError::NotRegular {
            path: path.to_path_buf(),
            found: EntryKind::of(meta.file_type()),
        });
    }
    Ok((file, meta.len()))
}

/// Turns the error of an `O_NOFOLLOW` open into [`StorageError::NotRegular`] where the entry
/// is a link (the open fails with `ELOOP`; some systems say `EMLINK` or `EFTYPE`).
fn open_error(path: &Path, e: io::Error) -> StorageError {
    if e.kind() != io::ErrorKind::NotFound {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_file() {
                return StorageError::NotRegular {
                    path: path.to_path_buf(),
                    found: EntryKind::of(meta.file_type()),
                };
            }
        }
    }
    StorageError::io("open", path, e)
}

/// Checks that `path` is a real folder: it exists and is neither a link nor anything else.
/// A missing folder is [`StorageError::Missing`].
///
/// ```
/// use turboprop_storage::check_real_dir;
///
/// let tmp = tempfile::tempdir()?;
/// check_real_dir(tmp.path())?;
/// std::fs::write(tmp.path().join("f"), b"")?;
/// assert!(check_real_dir(&tmp.path().join("f")).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_real_dir(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| StorageError::io("stat", path, e))?;
    if meta.file_type().is_dir() {
        Ok(())
    } else {
        Err(StorageError::NotRegular {
            path: path.to_path_buf(),
            found: EntryKind::of(meta.file_type()),
        })
    }
}

/// Opens `relative`, a path below the trusted folder `root`, as [`open_regular`] does, after
/// checking that every folder between `root` and the file is a real folder (no link). An
/// absolute path or one with `..` is refused ([`StorageError::Outside`]).
///
/// ```
/// use turboprop_storage::{open_beneath, StorageError};
/// use std::path::Path;
///
/// let tmp = tempfile::tempdir()?;
/// std::fs::create_dir(tmp.path().join("src"))?;
/// std::fs::write(tmp.path().join("src/a.rs"), b"fn a() {}")?;
/// let (_file, len) = open_beneath(tmp.path(), Path::new("src/a.rs"))?;
/// assert_eq!(len, 9);
/// assert!(matches!(open_beneath(tmp.path(), Path::new("../etc/passwd")), Err(StorageError::Outside { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_beneath(root: &Path, relative: &Path) -> Result<(File, u64)> {
    let path = path_beneath(root, relative)?;
    let mut folder = root.to_path_buf();
    let parts: Vec<_> = relative.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        folder.push(part);
        check_real_dir(&folder)?;
    }
    open_regular(&path)
}

/// `root/relative`, or [`StorageError::Outside`] when `relative` is empty, absolute, or has a
/// `..`, `.` or prefix component.
fn path_beneath(root: &Path, relative: &Path) -> Result<PathBuf> {
    let plain = relative.components().next().is_some()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(StorageError::Outside {
            path: relative.to_path_buf(),
            root: root.to_path_buf(),
        });
    }
    Ok(root.join(relative))
}

/// Reads `file` (at `path`, for messages) to its end, refusing with
/// [`StorageError::TooLarge`] once it holds more than `max` bytes: at most `max + 1` bytes are
/// ever read, so a file that grows or lies about its size costs no more memory than `max`.
///
/// ```
/// use turboprop_storage::{open_regular, read_bounded};
///
/// let tmp = tempfile::tempdir()?;
/// let path = tmp.path().join("a.txt");
/// std::fs::write(&path, b"hello")?;
/// let (file, _) = open_regular(&path)?;
/// assert_eq!(read_bounded(file, &path, 5)?, b"hello");
/// let (file, _) = open_regular(&path)?;
/// assert!(read_bounded(file, &path, 4).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_bounded(file: File, path: &Path, max: u64) -> Result<Vec<u8>> {
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0).min(max);
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| StorageError::io("read", path, e))?;
    if bytes.len() as u64 > max {
        return Err(StorageError::TooLarge {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(made.success());
        let err = open_regular(&fifo).expect_err("a FIFO is not a regular file");
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn links_are_refused_in_the_last_and_the_middle_components() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"secret").expect("write");
        symlink(outside.path().join("secret"), dir.path().join("file")).expect("link");
        symlink(outside.path(), dir.path().join("folder")).expect("link");
        assert!(matches!(
            open_regular(&dir.path().join("file")),
            Err(StorageError::NotRegular { .. })
        ));
        assert!(matches!(
            open_beneath(dir.path(), Path::new("folder/secret")),
            Err(StorageError::NotRegular { .. })
        ));
        assert!(matches!(
            open_beneath(dir.path(), Path::new("/etc/passwd")),
            Err(StorageError::Outside { .. })
        ));
        assert!(open_beneath(dir.path(), Path::new("missing"))
            .expect_err("missing")
            .is_missing());
    }
}
