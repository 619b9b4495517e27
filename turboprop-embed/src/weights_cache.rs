//! The converted-weights cache: tensors of `model.safetensors` that cannot be read in place
//! (stored as f16 or bf16, or f32 at an offset not 4-byte aligned) are converted to `f32`
//! once and kept in [`CACHE_FILE`] beside the weights, which later loads map and use in
//! place, like an f32 file's own tensors.
//!
//! The cache is checked before it is used, and rebuilt when it does not pass: it names the
//! weights file it was made from (its length, modification time and the BLAKE3 hash of its
//! header, which gives every tensor's name, dtype, shape and place), and the BLAKE3 hash of
//! its own payload, which is read whole to be checked (~1 ms per 8 MB). A cache that is
//! damaged, cut short, or made from other weights is replaced atomically; one that cannot be
//! written (a read-only folder) is not an error: the converted tensors stay in memory for
//! this process. The byte layout is in docs/format.md.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use turboprop_storage::{atomic_write, FileBytes, ReadMode};

/// The cache file's name, in the model folder.
pub const CACHE_FILE: &str = "turboprop-f32.cache";
/// The first 8 bytes of a cache file (format 1).
const MAGIC: &[u8; 8] = b"TPF32C\x00\x01";
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 128;
/// Every tensor of the payload starts at a multiple of this.
const ALIGN: usize = 64;

/// What the cache is made from: the weights file as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    /// Its length in bytes.
    pub len: u64,
    /// Its modification time, in nanoseconds since the epoch (0 when unknown).
    pub mtime_ns: i64,
    /// The BLAKE3 hash of its first `8 + n` bytes (the length and the JSON header).
    pub header_hash: [u8; 32],
}

/// Writes a tensor's values, converted, into the buffer it is given.
pub(crate) type Convert<'a> = Box<dyn Fn(&mut [f32]) + 'a>;

/// A tensor to convert: its name, its element count, and how to write its values.
pub(crate) struct Wanted<'a> {
    pub name: &'a str,
    pub count: usize,
    pub convert: Convert<'a>,
}

/// Where the converted tensors are: a mapped cache file, or memory when it could not be
/// written.
#[derive(Debug, Clone)]
pub(crate) enum Backing {
    /// The mapped cache file.
    File(Arc<FileBytes>),
    /// The converted values in memory (bytes of the payload as `f32`s).
    Memory(Arc<Vec<f32>>),
}

/// The converted tensors: their backing, and each one's place (start in `f32`s from the
/// payload's start, count).
#[derive(Debug, Clone)]
pub(crate) struct Converted {
    pub backing: Backing,
    pub places: HashMap<String, (usize, usize)>,
}

/// The payload's layout: each tensor's start (in `f32`s) and the payload's length in bytes.
fn layout(wanted: &[Wanted<'_>]) -> (HashMap<String, (usize, usize)>, usize) {
    let mut places = HashMap::with_capacity(wanted.len());
    let mut at = 0usize;
    for w in wanted {
        at = at.div_ceil(ALIGN) * ALIGN;
        places.insert(w.name.to_owned(), (at / 4, w.count));
        at += 4 * w.count;
    }
    (places, at.div_ceil(ALIGN) * ALIGN)
}

/// The header of a cache for `source` whose payload is `payload`.
fn header(source: &Source, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&source.len.to_le_bytes());
    h[16..24].copy_from_slice(&source.mtime_ns.to_le_bytes());
    h[24..56].copy_from_slice(&source.header_hash);
    h[56..88].copy_from_slice(blake3::hash(payload).as_bytes());
    h[88..96].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    h
}

/// The mapped cache at `path`, if it is there and passes every check for `source` and a
/// payload of `payload_len` bytes.
fn open_valid(path: &Path, source: &Source, payload_len: usize) -> Option<FileBytes> {
    let bytes =
        FileBytes::open_at_most(path, ReadMode::Mmap, (HEADER_LEN + payload_len) as u64).ok()?;
    let all = bytes.bytes();
    if all.len() != HEADER_LEN + payload_len {
        return None;
    }
    let (head, payload) = all.split_at(HEADER_LEN);
    let ok = head == header(source, payload).as_slice();
    (ok && bytes.check_intact().is_ok()).then_some(bytes)
}

/// The tensors of `wanted`, converted, from the cache beside `weights` when it is valid for
/// `source`, else converted now and, when `write`, written to it (kept in memory if it is
/// not, or cannot be). `Err` only when the memory for the conversion is not there.
pub(crate) fn load(
    weights: &Path,
    source: &Source,
    wanted: &[Wanted<'_>],
    write: bool,
) -> Result<Converted, std::collections::TryReserveError> {
    let (places, payload_len) = layout(wanted);
    let path = weights.with_file_name(CACHE_FILE);
    if let Some(bytes) = open_valid(&path, source, payload_len) {
        return Ok(Converted {
            backing: Backing::File(Arc::new(bytes)),
            places,
        });
    }
    let mut values: Vec<f32> = Vec::new();
    values.try_reserve_exact(payload_len / 4)?;
    values.resize(payload_len / 4, 0.0);
    for w in wanted {
        if let Some(&(start, count)) = places.get(w.name) {
            (w.convert)(&mut values[start..start + count]);
        }
    }
    let payload = turboprop_storage::f32_as_bytes(&values);
    let mut file = Vec::new();
    if write && file.try_reserve_exact(HEADER_LEN + payload.len()).is_ok() {
        file.extend_from_slice(&header(source, payload));
        file.extend_from_slice(payload);
        // Not being able to write the cache (a read-only folder) only costs the next load
        // this conversion again.
        if atomic_write(&path, &file).is_ok() {
            if let Some(bytes) = open_valid(&path, source, payload_len) {
                return Ok(Converted {
                    backing: Backing::File(Arc::new(bytes)),
                    places,
                });
            }
        }
    }
    Ok(Converted {
        backing: Backing::Memory(Arc::new(values)),
        places,
    })
}

impl Converted {
    /// Fails if the mapped cache shrank while it was read.
    pub(crate) fn check_intact(&self) -> Result<(), turboprop_storage::StorageError> {
        match &self.backing {
            Backing::File(bytes) => bytes.check_intact(),
            Backing::Memory(_) => Ok(()),
        }
    }
}
