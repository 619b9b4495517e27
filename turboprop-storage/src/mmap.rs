//! Read-only views of immutable index files: memory-mapped when possible, read into the heap
//! otherwise, or shared with an in-memory directory. With [`crate::sigbus`], the only
//! `unsafe` of the storage layer. Every mapping is registered with [`crate::sigbus`], so a
//! file truncated under its reader reads zeros instead of killing the process, and
//! [`FileBytes::check_intact`] says so.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Result, StorageError};
use crate::sigbus::Slot;

#[cfg(target_endian = "big")]
compile_error!("turboprop's on-disk format is little-endian and is read in place; big-endian hosts are not supported");

/// The bytes of one file, mapped or owned.
#[derive(Debug)]
pub struct FileBytes {
    path: PathBuf,
    backing: Backing,
}

#[derive(Debug)]
enum Backing {
    Mapped(Mapped),
    Owned(AlignedBytes),
    /// The bytes of a [`crate::MemDirectory`] file, shared without copying.
    Shared(Arc<AlignedBytes>),
    Empty,
}

/// A mapping and its slot in the registry of [`crate::sigbus`].
#[derive(Debug)]
struct Mapped {
    // Fields drop in declaration order: the slot is released before the pages are unmapped,
    // so a registered range is never one the system may hand to another mapping.
    slot: Slot,
    map: Mmap,
}

/// An immutable byte buffer that starts 8-byte aligned, like a mapping's page alignment would,
/// so that f32 rows behind the 64-byte header can be viewed in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AlignedBytes {
    /// u64 words give the alignment; only the first `len` bytes are content.
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// A zeroed buffer of `len` bytes.
    fn zeroed(len: usize) -> AlignedBytes {
        AlignedBytes {
            words: vec![0u64; len.div_ceil(8)],
            len,
        }
    }

    /// An aligned copy of `bytes`.
    pub(crate) fn copy_from(bytes: &[u8]) -> AlignedBytes {
        let mut out = AlignedBytes::zeroed(bytes.len());
        out.as_bytes_mut().copy_from_slice(bytes);
        out
    }

    /// The content.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &words_as_bytes(&self.words)[..self.len]
    }

    fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut words_as_bytes_mut(&mut self.words)[..self.len]
    }
}

/// How to bring a file into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Memory-map the file, falling back to a plain read if mapping fails.
    #[default]
    Mmap,
    /// Read the whole file into the heap.
    Heap,
}

impl FileBytes {
    /// Opens `path` read-only in the given mode. The file must be a regular file, not a link
    /// or a special file ([`crate::open_regular`]).
    pub fn open(path: &Path, mode: ReadMode) -> Result<FileBytes> {
        Self::open_at_most(path, mode, u64::MAX)
    }

    /// [`FileBytes::open`], refusing a file longer than `max` bytes with
    /// [`StorageError::TooLarge`] before anything is mapped or allocated.
    pub fn open_at_most(path: &Path, mode: ReadMode, max: u64) -> Result<FileBytes> {
        let (file, len) = crate::open::open_regular(path)?;
        if len > max {
            return Err(StorageError::TooLarge {
                path: path.to_path_buf(),
                len,
                max,
            });
        }
        Self::from_file(path, file, len, mode)
    }

    /// The bytes of `file`, already opened (and checked by the caller) from `path`, which
    /// is `len` bytes long: mapped and registered with [`crate::sigbus`] as
    /// [`FileBytes::open`] does, or read into the heap.
    ///
    /// ```
    /// use turboprop_storage::{FileBytes, ReadMode};
    ///
    /// let tmp = tempfile::tempdir()?;
    /// let path = tmp.path().join("model.bin");
    /// std::fs::write(&path, [1u8, 2, 3])?;
    /// let file = std::fs::File::open(&path)?;
    /// let bytes = FileBytes::from_file(&path, file, 3, ReadMode::Mmap)?;
    /// assert_eq!(bytes.bytes(), &[1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: &Path, file: File, len: u64, mode: ReadMode) -> Result<FileBytes> {
        if len == 0 {
            return Ok(FileBytes {
                path: path.to_path_buf(),
                backing: Backing::Empty,
            });
        }
        // Mapped only with a slot in the registry (else read into the heap): a mapping the
        // SIGBUS handler does not know of would kill the process if the file shrank.
        if let Some(slot) = (mode == ReadMode::Mmap).then(Slot::claim).flatten() {
            // SAFETY: turboprop index files are write-once: they are created under a fresh
            // name, synced, and only then published by the manifest; nothing ever writes to
            // them again (they are replaced by new files and unlinked, which does not affect
            // an existing mapping). A process outside turboprop truncating the file while we
            // read makes the pages past the new end read as zeros (see `crate::sigbus`), and
            // `check_intact` reports it; the map's length is the file's length at mapping
            // time, so even a file truncated before it is mapped is read as such.
            if let Ok(map) = unsafe { Mmap::map(&file) } {
                if map.is_empty() {
                    // Emptied between fstat and mmap: nothing mapped, nothing to register.
                    return Ok(FileBytes {
                        path: path.to_path_buf(),
                        backing: Backing::Empty,
                    });
                }
                slot.publish(map.as_ptr(), map.len());
                return Ok(FileBytes {
                    path: path.to_path_buf(),
                    backing: Backing::Mapped(Mapped { slot, map }),
                });
            }
        }
        Self::read_owned(path, file, len)
    }

    fn read_owned(path: &Path, mut file: File, len: u64) -> Result<FileBytes> {
        use std::io::Read;
        let len = usize::try_from(len)
            .map_err(|_| StorageError::corrupt(path, "file too large for this platform"))?;
        let mut owned = AlignedBytes::zeroed(len);
        file.read_exact(owned.as_bytes_mut())
            .map_err(|e| StorageError::io("read", path, e))?;
        Ok(FileBytes {
            path: path.to_path_buf(),
            backing: Backing::Owned(owned),
        })
    }

    /// The bytes of a file held in memory, named `path` in errors; no copy is made.
    pub(crate) fn shared(path: PathBuf, bytes: Arc<AlignedBytes>) -> FileBytes {
        FileBytes {
            path,
            backing: Backing::Shared(bytes),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.backing {
            Backing::Mapped(mapped) => &mapped.map,
            Backing::Owned(owned) => owned.as_bytes(),
            Backing::Shared(shared) => shared.as_bytes(),
            Backing::Empty => &[],
        }
    }

    /// Asks the system to map the pages of `range` (byte offsets into [`FileBytes::bytes`])
    /// now, in one call, instead of one page fault at a time as they are first read
    /// (`MADV_POPULATE_READ`, Linux 5.14 and later). Only a hint: it does nothing for bytes
    /// that are not mapped, on other systems, or if the call fails; reading the bytes works
    /// the same either way.
    pub fn populate(&self, range: std::ops::Range<usize>) {
        #[cfg(target_os = "linux")]
        if let Backing::Mapped(Mapped { map, .. }) = &self.backing {
            let end = range.end.min(map.len());
            if range.start < end {
                let _hint = map.advise_range(
                    memmap2::Advice::PopulateRead,
                    range.start,
                    end - range.start,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = range;
    }

    /// Fails with [`StorageError::ChangedUnderReader`] if the file shrank while it was mapped
    /// and a read past its new end was answered with zeros (see [`crate::sigbus`]): whatever
    /// was computed from these bytes since they were opened must be thrown away. One atomic
    /// load; always `Ok` for bytes that are not mapped, which cannot change.
    ///
    /// ```
    /// use turboprop_storage::{FileBytes, ReadMode};
    ///
    /// let tmp = tempfile::tempdir()?;
    /// let path = tmp.path().join("chunks.bin");
    /// std::fs::write(&path, vec![1u8; 4 * 4096])?;
    /// let bytes = FileBytes::open(&path, ReadMode::Mmap)?;
    /// std::fs::OpenOptions::new().write(true).open(&path)?.set_len(4096)?;
    /// // Past the new end: zeros, not a SIGBUS.
    /// assert_eq!(bytes.bytes()[3 * 4096], 0);
    /// let err = bytes.check_intact().unwrap_err();
    /// assert!(err.is_changed_under_reader());
    /// assert!(err.to_string().contains("chunks.bin"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_intact(&self) -> Result<()> {
        match &self.backing {
            Backing::Mapped(mapped) if mapped.slot.faulted() => {
                Err(StorageError::ChangedUnderReader {
                    path: self.path.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the bytes are memory-mapped (as opposed to copied into the heap or shared with
    /// an in-memory directory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mapped(_))
    }
}

fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: u8 has no alignment or validity requirements; the byte slice covers exactly
    // the memory of `words` and borrows it immutably for the same lifetime.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

fn words_as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above; the mutable borrow of `words` is held for the slice's lifetime.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

/// Views little-endian f32 bytes as `&[f32]` without copying. Returns `None` when the slice
/// is not 4-byte aligned or its length is not a multiple of 4.
pub fn bytes_as_f32(bytes: &[u8]) -> Option<&[f32]> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    // SAFETY: every bit pattern is a valid f32, the host is little-endian (checked at compile
    // time above) and align_to only returns a middle part that is correctly aligned.
    let (head, body, tail) = unsafe { bytes.align_to::<f32>() };
    if head.is_empty() && tail.is_empty() {
        Some(body)
    } else {
        None
    }
}

/// Views little-endian u64 bytes as `&[u64]` without copying. Returns `None` when the slice
/// is not 8-byte aligned or its length is not a multiple of 8.
pub fn bytes_as_u64(bytes: &[u8]) -> Option<&[u64]> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    // SAFETY: every bit pattern is a valid u64, the host is little-endian and align_to only
    // returns a middle part that is correctly aligned.
    let (head, body, tail) = unsafe { bytes.align_to::<u64>() };
    if head.is_empty() && tail.is_empty() {
        Some(body)
    } else {
        None
    }
}

/// Views a `&[u64]` as its little-endian bytes.
pub fn u64_as_bytes(values: &[u64]) -> &[u8] {
    // SAFETY: u8 has no alignment or validity requirements; the host is little-endian.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

/// Views a `&[f32]` as its little-endian bytes.
pub fn f32_as_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: u8 has no alignment or validity requirements; the host is little-endian.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_heap_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello world").expect("write");
        let a = FileBytes::open(&path, ReadMode::Mmap).expect("map");
        let b = FileBytes::open(&path, ReadMode::Heap).expect("read");
        assert_eq!(a.bytes(), b.bytes());
        assert!(!b.is_mapped());
        std::fs::write(&path, b"").expect("write");
        assert!(FileBytes::open(&path, ReadMode::Mmap)
            .expect("empty")
            .bytes()
            .is_empty());
    }

    #[test]
    fn aligned_bytes_are_aligned_for_f32() {
        for len in [0usize, 1, 7, 8, 9, 64 + 12] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let a = AlignedBytes::copy_from(&data);
            assert_eq!(a.as_bytes(), &data[..]);
            assert_eq!(a.as_bytes().as_ptr() as usize % 8, 0);
        }
    }

    #[test]
    fn f32_views_round_trip() {
        let v = [1.0f32, -2.5, 3.25];
        let bytes = f32_as_bytes(&v);
        assert_eq!(bytes_as_f32(bytes), Some(&v[..]));
        assert_eq!(bytes_as_f32(&bytes[1..5]), None);
    }
}
