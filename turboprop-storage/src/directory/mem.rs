//! [`MemDirectory`]: a [`Directory`] held in memory. Files are shared, immutable byte buffers
//! (`Arc`), so a read is zero-copy and a reader keeps its bytes when a file is replaced or
//! removed; clones share one store, so a reader and a writer built from clones see each other
//! exactly as two processes see one folder on disk. Nothing is durable beyond the process.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::{check_name, parent_name, Directory, WriteFile};
use crate::error::{Result, StorageError};
use crate::lock::{LockWait, WriterLock};
use crate::mmap::{AlignedBytes, FileBytes, ReadMode};

/// Prefix of every location in a memory directory.
const SCHEME: &str = "mem://";

/// An index folder in memory. Cloning is cheap and shares the store.
///
/// ```
/// use std::sync::Arc;
/// use turboprop_storage::{Directory, IndexDir, MemDirectory, ReadMode, SegmentReader, SegmentWriter, NewRow};
/// use turboprop_types::{ContentHash, FileRecord, IndexConfig};
///
/// let mem = MemDirectory::new();
/// let dir = IndexDir::with_directory(Arc::new(mem.clone()));
/// dir.init(&IndexConfig::default())?;
///
/// let mut seg = SegmentWriter::create(dir.directory(), "seg-00000001", 2)?;
/// let record = FileRecord::new("src/pot.py", 10, 0, ContentHash::of(b"..."))?;
/// let row = NewRow { line_start: 1, line_end: 3, byte_start: 0, byte_end: 10,
///                    hash: ContentHash::of(b"..."), vector: &[0.6, 0.8],
///                    symbol: None, kind: None, lexical: None };
/// seg.add_file(record, [row], &[])?;
/// seg.finish()?;
///
/// // A clone sees the same files; errors name them mem://...
/// let reader = SegmentReader::open(&mem, "seg-00000001", ReadMode::Mmap)?;
/// assert_eq!(reader.vector(0), Some(&[0.6f32, 0.8][..]));
/// assert_eq!(mem.location("seg-00000001/vectors.bin").to_str(), Some("mem://seg-00000001/vectors.bin"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemDirectory {
    store: Arc<Store>,
}

#[derive(Debug, Default)]
struct Store {
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Names of the writer locks held.
    locks: Mutex<BTreeSet<String>>,
    /// Signalled whenever a lock is released.
    released: Condvar,
}

#[derive(Debug, Clone)]
enum Entry {
    Folder,
    File(Arc<AlignedBytes>),
}

/// Locks a mutex; a panic elsewhere while it was held leaves the map itself consistent (every
/// change is a single insert or remove), so poisoning is ignored.
fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn other(op: &'static str, path: PathBuf, kind: io::ErrorKind, why: &str) -> StorageError {
    StorageError::Io {
        op,
        path,
        source: io::Error::new(kind, why.to_owned()),
    }
}

impl MemDirectory {
    /// An empty directory.
    pub fn new() -> MemDirectory {
        MemDirectory::default()
    }

    /// Every file (not folder) and its bytes, sorted by name: for copying a memory index to
    /// disk, or comparing two stores.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        guard(&self.store.entries)
            .iter()
            .filter_map(|(name, e)| match e {
                Entry::File(bytes) => Some((name.clone(), bytes.as_bytes().to_vec())),
                Entry::Folder => None,
            })
            .collect()
    }

    /// Checks that the folder holding `name` exists; `op` names the operation in the error.
    fn check_parent(
        &self,
        entries: &BTreeMap<String, Entry>,
        name: &str,
        op: &'static str,
    ) -> Result<()> {
        let parent = parent_name(name);
        match entries.get(parent) {
            _ if parent.is_empty() => Ok(()),
            Some(Entry::Folder) => Ok(()),
            Some(Entry::File(_)) => Err(other(
                op,
                self.location(name),
                io::ErrorKind::Other,
                "its parent is a file",
            )),
            None => Err(StorageError::Missing {
                path: self.location(parent),
            }),
        }
    }

    /// Reserves the new, empty file `name`.
    fn create_empty(&self, name: &str) -> Result<()> {
        let mut entries = guard(&self.store.entries);
        self.check_parent(&entries, name, "create")?;
        if entries.contains_key(name) {
            return Err(other(
                "create",
                self.location(name),
                io::ErrorKind::AlreadyExists,
                "already exists",
            ));
        }
        entries.insert(name.to_owned(), Entry::File(Arc::default()));
        Ok(())
    }

    /// Publishes the content of a file reserved by [`Self::create_empty`], unless it was
    /// removed meanwhile (as an unlinked file on disk takes its bytes with it).
    fn publish(&self, name: &str, bytes: &[u8]) {
        let mut entries = guard(&self.store.entries);
        if let Some(entry @ Entry::File(_)) = entries.get_mut(name) {
            *entry = Entry::File(Arc::new(AlignedBytes::copy_from(bytes)));
        }
    }
}

impl Directory for MemDirectory {
    fn location(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{SCHEME}{name}"))
    }

    fn create_root(&self) -> Result<()> {
        Ok(())
    }

    fn read(&self, name: &str, _mode: ReadMode) -> Result<FileBytes> {
        check_name(name, false)?;
        match guard(&self.store.entries).get(name) {
            Some(Entry::File(bytes)) => Ok(FileBytes::shared(self.location(name), bytes.clone())),
            Some(Entry::Folder) => Err(other(
                "read",
                self.location(name),
                io::ErrorKind::Other,
                "is a folder",
            )),
            None => Err(StorageError::Missing {
                path: self.location(name),
            }),
        }
    }

    fn create(&self, name: &str) -> Result<Box<dyn WriteFile>> {
        check_name(name, false)?;
        self.create_empty(name)?;
        Ok(Box::new(MemWriteFile {
            dir: self.clone(),
            name: name.to_owned(),
            buf: Cursor::new(Vec::new()),
        }))
    }

    fn write_new(&self, name: &str, bytes: &[u8]) -> Result<()> {
        check_name(name, false)?;
        self.create_empty(name)?;
        self.publish(name, bytes);
        Ok(())
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> Result<()> {
        check_name(name, false)?;
        let location = self.location(name);
        let bytes = Arc::new(AlignedBytes::copy_from(bytes));
        {
            let mut entries = guard(&self.store.entries);
            self.check_parent(&entries, name, "replace")?;
            if let Some(Entry::Folder) = entries.get(name) {
                return Err(other(
                    "replace",
                    location,
                    io::ErrorKind::Other,
                    "is a folder",
                ));
            }
            // The same steps as on disk: an injected failure before the swap leaves the old
            // file, one after it leaves the new file in place.
            crate::failpoint::check("manifest:rename", &location)?;
            entries.insert(name.to_owned(), Entry::File(bytes));
        }
        crate::failpoint::check("manifest:sync", &location)
    }

    fn create_dir(&self, name: &str) -> Result<()> {
        check_name(name, false)?;
        let mut entries = guard(&self.store.entries);
        self.check_parent(&entries, name, "create folder")?;
        if entries.contains_key(name) {
            return Err(other(
                "create folder",
                self.location(name),
                io::ErrorKind::AlreadyExists,
                "already exists",
            ));
        }
        entries.insert(name.to_owned(), Entry::Folder);
        Ok(())
    }

    fn sync_dir(&self, name: &str) -> Result<()> {
        check_name(name, true)?;
        match guard(&self.store.entries).get(name) {
            _ if name.is_empty() => Ok(()),
            Some(Entry::Folder) => Ok(()),
            Some(Entry::File(_)) => Err(other(
                "sync folder",
                self.location(name),
                io::ErrorKind::Other,
                "is a file",
            )),
            None => Err(StorageError::Missing {
                path: self.location(name),
            }),
        }
    }

    fn list(&self, name: &str) -> Result<Vec<String>> {
        check_name(name, true)?;
        let entries = guard(&self.store.entries);
        let prefix = if name.is_empty() {
            String::new()
        } else {
            match entries.get(name) {
                Some(Entry::Folder) => format!("{name}/"),
                Some(Entry::File(_)) => {
                    return Err(other(
                        "list",
                        self.location(name),
                        io::ErrorKind::Other,
                        "is a file",
                    ))
                }
                None => {
                    return Err(StorageError::Missing {
                        path: self.location(name),
                    })
                }
            }
        };
        Ok(entries
            .range(prefix.clone()..)
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(&prefix))
            .filter_map(|key| key.get(prefix.len()..))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_owned)
            .collect())
    }

    fn remove(&self, name: &str) -> Result<()> {
        check_name(name, false)?;
        let mut entries = guard(&self.store.entries);
        match entries.remove(name) {
            Some(Entry::File(_)) => Ok(()),
            Some(Entry::Folder) => {
                let prefix = format!("{name}/");
                entries.retain(|key, _| !key.starts_with(&prefix));
                Ok(())
            }
            None => Err(StorageError::Missing {
                path: self.location(name),
            }),
        }
    }

    fn exists(&self, name: &str) -> Result<bool> {
        check_name(name, true)?;
        Ok(name.is_empty() || guard(&self.store.entries).contains_key(name))
    }

    fn file_len(&self, name: &str) -> Result<u64> {
        check_name(name, false)?;
        match guard(&self.store.entries).get(name) {
            Some(Entry::File(bytes)) => Ok(bytes.as_bytes().len() as u64),
            Some(Entry::Folder) => Err(other(
                "stat",
                self.location(name),
                io::ErrorKind::Other,
                "is a folder",
            )),
            None => Err(StorageError::Missing {
                path: self.location(name),
            }),
        }
    }

    fn lock(&self, name: &str, wait: LockWait, on_wait: &mut dyn FnMut()) -> Result<WriterLock> {
        check_name(name, false)?;
        let location = self.location(name);
        {
            // Like the lock file on disk, the lock's name is an (empty) file.
            let mut entries = guard(&self.store.entries);
            self.check_parent(&entries, name, "open lock file")?;
            entries
                .entry(name.to_owned())
                .or_insert_with(|| Entry::File(Arc::default()));
        }
        let mut held = guard(&self.store.locks);
        if held.contains(name) {
            if wait == LockWait::NoWait {
                return Err(StorageError::Busy { path: location });
            }
            drop(held);
            on_wait();
            held = guard(&self.store.locks);
            while held.contains(name) {
                held = self
                    .store
                    .released
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        held.insert(name.to_owned());
        Ok(WriterLock::from_guard(
            location,
            Box::new(MemLock {
                dir: self.clone(),
                name: name.to_owned(),
            }),
        ))
    }
}

/// A held lock of a [`MemDirectory`]; released on drop.
#[derive(Debug)]
struct MemLock {
    dir: MemDirectory,
    name: String,
}

impl Drop for MemLock {
    fn drop(&mut self) {
        guard(&self.dir.store.locks).remove(&self.name);
        self.dir.store.released.notify_all();
    }
}

/// A new file of a [`MemDirectory`], published by [`WriteFile::finish`].
#[derive(Debug)]
struct MemWriteFile {
    dir: MemDirectory,
    name: String,
    buf: Cursor<Vec<u8>>,
}

impl Write for MemWriteFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for MemWriteFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.buf.seek(pos)
    }
}

impl WriteFile for MemWriteFile {
    fn finish(self: Box<Self>) -> Result<()> {
        self.dir.publish(&self.name, self.buf.get_ref());
        Ok(())
    }
}
