//! [`FsDirectory`]: a [`Directory`] in a folder on disk. Reads are memory maps (or heap copies,
//! per [`ReadMode`]), new files are created with `create_new` and synced, replacements are a
//! temp file, `fsync`, `rename` and a folder `fsync` ([`crate::atomic_write`]), and the writer
//! lock is an `fs2` lock on a lock file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{check_name, Directory, WriteFile};
use crate::atomic::{atomic_write, sync_dir, write_new_file};
use crate::error::{Result, StorageError};
use crate::lock::{LockWait, WriterLock};
use crate::mmap::{FileBytes, ReadMode};
use crate::open::check_real_dir;

/// Buffer of a streamed new file: tables are written record by record.
const WRITE_BUFFER: usize = 1 << 20;

/// The index's files in a folder on disk; errors name the real paths.
///
/// ```
/// use turboprop_storage::{Directory, FsDirectory, ReadMode};
///
/// let tmp = tempfile::tempdir()?;
/// let dir = FsDirectory::new(tmp.path().join("index"));
/// dir.create_root()?;
/// dir.write_new("version.txt", b"turboprop-index 1\n")?;
/// assert_eq!(std::fs::read(tmp.path().join("index/version.txt"))?, b"turboprop-index 1\n");
/// assert!(dir.read("version.txt", ReadMode::Heap)?.bytes().starts_with(b"turboprop"));
/// assert_eq!(dir.location("seg-1/vectors.bin"), tmp.path().join("index/seg-1/vectors.bin"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FsDirectory {
    root: PathBuf,
}

impl FsDirectory {
    /// The folder `root` (nothing is read or created).
    pub fn new(root: impl Into<PathBuf>) -> FsDirectory {
        FsDirectory { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of folder `name` (`""` is the root), after checking that the root and every
    /// folder on the way are real folders.
    fn folder(&self, name: &str) -> Result<PathBuf> {
        check_name(name, true)?;
        self.check_parents(name, true)?;
        Ok(self.location(name))
    }

    /// The path of entry `name` (not the root), after checking that the root and every folder
    /// on the way to it are real folders.
    fn entry(&self, name: &str) -> Result<PathBuf> {
        check_name(name, false)?;
        self.check_parents(name, false)?;
        Ok(self.location(name))
    }

    /// Refuses a root or an intermediate folder that is a link (or not a folder): nothing is
    /// ever read, written or deleted through one. `name` itself is checked too when `itself`.
    fn check_parents(&self, name: &str, itself: bool) -> Result<()> {
        check_real_dir(&self.root)?;
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
        let folders = if itself {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        let mut path = self.root.clone();
        for part in &parts[..folders] {
            path.push(part);
            check_real_dir(&path)?;
        }
        Ok(())
    }
}

impl Directory for FsDirectory {
    fn location(&self, name: &str) -> PathBuf {
        let mut path = self.root.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            path.push(part);
        }
        path
    }

    fn create_root(&self) -> Result<()> {
        match fs::symlink_metadata(&self.root) {
            Ok(_) => return check_real_dir(&self.root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("stat", &self.root, e)),
        }
        fs::create_dir_all(&self.root)
            .map_err(|e| StorageError::io("create folder", &self.root, e))?;
        check_real_dir(&self.root)
    }

    fn read(&self, name: &str, mode: ReadMode) -> Result<FileBytes> {
        FileBytes::open(&self.entry(name)?, mode)
    }

    fn read_at_most(&self, name: &str, mode: ReadMode, max: u64) -> Result<FileBytes> {
        FileBytes::open_at_most(&self.entry(name)?, mode, max)
    }

    fn create(&self, name: &str) -> Result<Box<dyn WriteFile>> {
        let path = self.entry(name)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StorageError::io("create", &path, e))?;
        Ok(Box::new(FsWriteFile {
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            path,
        }))
    }

    fn write_new(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_new_file(&self.entry(name)?, bytes)
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> Result<()> {
        atomic_write(&self.entry(name)?, bytes)
    }

    fn create_dir(&self, name: &str) -> Result<()> {
        let path = self.entry(name)?;
        fs::create_dir(&path).map_err(|e| StorageError::io("create folder", &path, e))
    }

    fn sync_dir(&self, name: &str) -> Result<()> {
        sync_dir(&self.folder(name)?)
    }

    fn list(&self, name: &str) -> Result<Vec<String>> {
        let path = self.folder(name)?;
        let entries = fs::read_dir(&path).map_err(|e| StorageError::io("list", &path, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("list", &path, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn remove(&self, name: &str) -> Result<()> {
        let path = self.entry(name)?;
        // Not following links: a link named like a segment is removed, never its target.
        let meta = fs::symlink_metadata(&path).map_err(|e| StorageError::io("remove", &path, e))?;
        let removed = if meta.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|e| StorageError::io("remove", &path, e))
    }

    fn exists(&self, name: &str) -> Result<bool> {
        check_name(name, true)?;
        if name.is_empty() {
            return match fs::symlink_metadata(&self.root) {
                Ok(_) => check_real_dir(&self.root).map(|()| true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(StorageError::io("stat", &self.root, e)),
            };
        }
        let path = match self.entry(name) {
            Ok(path) => path,
            Err(e) if e.is_missing() => return Ok(false),
            Err(e) => return Err(e),
        };
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StorageError::io("stat", &path, e)),
        }
    }

    fn file_len(&self, name: &str) -> Result<u64> {
        let path = self.entry(name)?;
        let meta = fs::symlink_metadata(&path).map_err(|e| StorageError::io("stat", &path, e))?;
        if !meta.file_type().is_file() {
            return Err(StorageError::NotRegular {
                path,
                found: crate::open::EntryKind::of(meta.file_type()),
            });
        }
        Ok(meta.len())
    }

    fn lock(&self, name: &str, wait: LockWait, on_wait: &mut dyn FnMut()) -> Result<WriterLock> {
        WriterLock::acquire(&self.entry(name)?, wait, on_wait)
    }
}

/// A new file on disk, buffered; synced by [`WriteFile::finish`].
#[derive(Debug)]
struct FsWriteFile {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Write for FsWriteFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Seek for FsWriteFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.out.seek(pos)
    }
}

impl WriteFile for FsWriteFile {
    fn finish(self: Box<Self>) -> Result<()> {
        let FsWriteFile { out, path } = *self;
        let file = out
            .into_inner()
            .map_err(|e| StorageError::io("write", &path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| StorageError::io("sync", &path, e))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::IndexDir;

    #[test]
    fn errors_other_than_absence_are_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("index");
        let dir = FsDirectory::new(&root);
        assert!(!dir.exists("manifest.json").expect("absent root"));
        assert!(!IndexDir::new(&root).has_data().expect("absent root"));
        fs::write(&root, b"not a folder").expect("write");
        assert!(dir.exists("manifest.json").is_err());
        assert!(dir.exists("").is_err());
        assert!(IndexDir::new(&root).has_data().is_err());
        assert!(IndexDir::new(&root).has_turboprop_entries().is_err());
    }

    #[test]
    fn nothing_is_done_through_a_linked_root_or_folder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(outside.join("seg-00000001")).expect("mkdir");
        fs::write(outside.join("seg-00000001/vectors.bin"), b"theirs").expect("write");
        let root = tmp.path().join("index");
        std::os::unix::fs::symlink(&outside, &root).expect("link");
        let dir = FsDirectory::new(&root);
        assert!(dir.create_root().is_err());
        assert!(dir.write_new("version.txt", b"x").is_err());
        assert!(dir.replace("manifest.json", b"x").is_err());
        assert!(dir.list("").is_err());
        assert!(dir.remove("seg-00000001").is_err());
        assert!(dir
            .read("seg-00000001/vectors.bin", ReadMode::Mmap)
            .is_err());
        assert!(dir
            .lock("writer.lock", LockWait::NoWait, &mut || {})
            .is_err());

        // A real root with a linked segment folder: the link is removed, not its target.
        fs::remove_file(&root).expect("unlink");
        fs::create_dir(&root).expect("mkdir");
        std::os::unix::fs::symlink(outside.join("seg-00000001"), root.join("seg-00000001"))
            .expect("link");
        assert!(dir
            .read("seg-00000001/vectors.bin", ReadMode::Heap)
            .is_err());
        assert!(dir.create("seg-00000001/codes.bin").is_err());
        dir.remove("seg-00000001").expect("remove the link");
        assert_eq!(
            fs::read(outside.join("seg-00000001/vectors.bin")).expect("still there"),
            b"theirs"
        );
        let names: Vec<_> = fs::read_dir(&outside).expect("list").collect();
        assert_eq!(names.len(), 1);
    }
}
