//! `model.safetensors`, read with bounds and in place: the header is parsed and checked
//! against the file's real size before anything proportional to the file is allocated, and
//! the file is memory-mapped (registered with `turboprop_storage`'s SIGBUS guard, so a file
//! truncated under a running encoder reads as zeros and is reported, never a crash). An
//! `f32` tensor suitably aligned (every file `safetensors` writes) is used where it lies in
//! the map: loading copies and converts nothing, and a query touches only the pages it
//! reads (the word-embedding rows of its own tokens). Other tensors (f16, bf16, or f32 at an
//! unaligned offset) are converted into the heap.
//!
//! The format: an 8-byte little-endian header length `n`, `n` bytes of JSON naming each
//! tensor's dtype, shape and `[begin, end)` byte range in the data that follows, then the
//! data. Checked here: `n` is at most [`HEADER_CAP`] and fits in the file; every range lies
//! within the data; dtype size × shape is exactly its length (no overflow); the ranges tile
//! the data with no gap or overlap and end where the file ends. A weight is used only when
//! the encoder asks for it, with its shape checked against the config first; a converted
//! buffer is reserved fallibly: memory that is not there is an error, never an abort.

use std::collections::HashMap;
#[cfg(test)]
use std::fs::File;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use turboprop_storage::{bytes_as_f32, FileBytes, ReadMode};

use crate::model_dir::ModelError;
use crate::model_file::{describe_json_error, open_checked, WEIGHTS_CAP};
use crate::weights_cache::{self as cache, Backing, Converted, Source, Wanted};

/// The largest safetensors header read (all-MiniLM-L6-v2's is 13 KiB).
pub const HEADER_CAP: u64 = 8 << 20;
/// The most tensors a header may name.
pub const MAX_TENSORS: usize = 100_000;
/// The most dimensions a tensor may have.
pub const MAX_RANK: usize = 8;

/// Why the weights could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Mapping or reading the file failed, or it shrank while it was read.
    #[error("{0}")]
    Storage(#[from] turboprop_storage::StorageError),
    /// The header is malformed or does not fit the file.
    #[error("the safetensors header {0}")]
    Header(String),
    /// A tensor the config needs is not in the file.
    #[error("tensor {0} is missing")]
    Missing(String),
    /// A tensor's shape differs from the config's.
    #[error("tensor {tensor} has shape {found:?}, the config asks for {expected:?}")]
    Shape {
        /// The tensor.
        tensor: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The shape the config implies.
        expected: Vec<usize>,
    },
    /// A tensor is stored in a type the encoder does not read.
    #[error("tensor {tensor} is stored as {dtype}; tp reads F32, F16 and BF16 weights")]
    Dtype {
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: String,
    },
    /// There is not enough memory for the weights.
    #[error("not enough memory for tensor {tensor} ({bytes} bytes as f32)")]
    Memory {
        /// The tensor.
        tensor: String,
        /// The bytes it needs.
        bytes: u64,
    },
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// One tensor's place in the file.
#[derive(Debug, Clone)]
struct TensorInfo {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte offset in the file.
    start: u64,
    len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F16,
    BF16,
    /// Other dtypes are accepted in the header (their size is checked) but not read.
    Other(&'static str, u64),
}

impl Dtype {
    fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "F64" => Dtype::Other("F64", 8),
            "I64" => Dtype::Other("I64", 8),
            "U64" => Dtype::Other("U64", 8),
            "I32" => Dtype::Other("I32", 4),
            "U32" => Dtype::Other("U32", 4),
            "I16" => Dtype::Other("I16", 2),
            "U16" => Dtype::Other("U16", 2),
            "I8" => Dtype::Other("I8", 1),
            "U8" => Dtype::Other("U8", 1),
            "BOOL" => Dtype::Other("BOOL", 1),
            "F8_E4M3" => Dtype::Other("F8_E4M3", 1),
            "F8_E5M2" => Dtype::Other("F8_E5M2", 1),
            _ => return None,
        })
    }

    fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::Other(_, n) => n,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::Other(name, _) => name,
        }
    }
}

/// A name from the file, made safe to show: at most 80 characters, escaped.
fn shown(name: &str) -> String {
    let short: String = name.chars().take(80).collect();
    format!("{short:?}")
}

/// An opened, checked `model.safetensors`.
#[derive(Debug)]
pub(crate) struct Weights {
    bytes: Arc<FileBytes>,
    tensors: HashMap<String, TensorInfo>,
    /// The tensors that cannot be read in place, converted (see `weights_cache.rs`).
    converted: Option<Converted>,
}

/// A tensor's values as `f32`s: in place in the mapped file, or converted into the heap.
#[derive(Debug)]
pub(crate) enum Floats {
    /// `len` values at byte `start` of the file, 4-byte aligned (checked when made).
    Mapped {
        bytes: Arc<FileBytes>,
        start: usize,
        len: usize,
    },
    /// Converted values.
    Owned(Vec<f32>),
    /// `len` converted values from `start` of a buffer shared by several tensors.
    Shared {
        data: Arc<Vec<f32>>,
        start: usize,
        len: usize,
    },
}

impl Floats {
    /// The values.
    pub(crate) fn as_slice(&self) -> &[f32] {
        match self {
            Floats::Mapped { bytes, start, len } => bytes
                .bytes()
                .get(*start..*start + *len * 4)
                .and_then(bytes_as_f32)
                // Checked when made; the mapping's length never changes.
                .unwrap_or(&[]),
            Floats::Owned(v) => v,
            Floats::Shared { data, start, len } => data.get(*start..*start + *len).unwrap_or(&[]),
        }
    }
}

impl Weights {
    /// Opens and checks the weights file at `path` (see the module docs).
    ///
    /// Tensors that must be converted come from the cache beside the file when it is valid;
    /// with `write_cache`, a missing or invalid cache is written (see `weights_cache.rs`).
    pub(crate) fn open(path: &Path, write_cache: bool) -> Result<Weights, ModelError> {
        let (file, len) = open_checked(path, WEIGHTS_CAP)?;
        let mtime_ns = file
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let err = |source: WeightsError| ModelError::Weights {
            path: path.to_owned(),
            source,
        };
        let header = |m: String| err(WeightsError::Header(m));
        if len < 8 {
            return Err(header(format!(
                "needs 8 bytes and the file has {len}: the file is not a safetensors file"
            )));
        }
        let bytes =
            FileBytes::from_file(path, file, len, ReadMode::Mmap).map_err(|e| err(e.into()))?;
        // The map is as long as the file was when mapped (a file that shrank in between is
        // refused by the checks below, which use the map's length).
        let len = bytes.bytes().len() as u64;
        let prefix = bytes.bytes().get(..8).ok_or_else(|| {
            header("needs 8 bytes: the file is not a safetensors file".to_owned())
        })?;
        let mut n = [0u8; 8];
        n.copy_from_slice(prefix);
        let n = u64::from_le_bytes(n);
        if n > HEADER_CAP || n > len - 8 {
            return Err(header(format!(
                "claims {n} bytes, more than the {} the file holds after its length (or the cap of {HEADER_CAP})",
                len - 8
            )));
        }
        // Bounded by the cap and by the file's real size.
        let text = &bytes.bytes()[8..8 + n as usize];
        let raw: HashMap<String, serde_json::Value> = serde_json::from_slice(text)
            .map_err(|e| header(format!("is not valid: {}", describe_json_error(&e))))?;
        if raw.len() > MAX_TENSORS {
            return Err(header(format!(
                "names {} tensors, more than {MAX_TENSORS}",
                raw.len()
            )));
        }
        let data_start = 8 + n;
        let data_len = len - data_start;
        let mut tensors = HashMap::with_capacity(raw.len());
        let mut ranges = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            if name == "__metadata__" {
                continue;
            }
            let t: RawTensor = serde_json::from_value(value).map_err(|e| {
                header(format!(
                    "entry {} is not a tensor: {}",
                    shown(&name),
                    describe_json_error(&e)
                ))
            })?;
            let dtype = Dtype::parse(&t.dtype)
                .ok_or_else(|| header(format!("gives tensor {} an unknown dtype", shown(&name))))?;
            if t.shape.len() > MAX_RANK {
                return Err(header(format!(
                    "gives tensor {} {} dimensions, more than {MAX_RANK}",
                    shown(&name),
                    t.shape.len()
                )));
            }
            let bytes = t
                .shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
            let [begin, end] = t.data_offsets;
            if begin > end || end > data_len {
                return Err(header(format!(
                    "places tensor {} at bytes {begin}..{end}, outside the {data_len} bytes of data in the file",
                    shown(&name)
                )));
            }
            if bytes != Some(end - begin) {
                return Err(header(format!(
                    "gives tensor {} {} bytes of data, and its dtype and shape need {}",
                    shown(&name),
                    end - begin,
                    bytes.map_or_else(|| "more than 2^64".to_owned(), |b| b.to_string())
                )));
            }
            let shape = t
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<usize>, _>>()
                .map_err(|_| header(format!("gives tensor {} too large a shape", shown(&name))))?;
            ranges.push((begin, end));
            tensors.insert(
                name,
                TensorInfo {
                    dtype,
                    shape,
                    start: data_start + begin,
                    len: end - begin,
                },
            );
        }
        // The tensors tile the data: no gap, no overlap, nothing after the last one.
        ranges.sort_unstable();
        let mut at = 0;
        for (begin, end) in ranges {
            if begin != at {
                return Err(header(format!(
                    "leaves a gap or an overlap at byte {at} of the data (a tensor starts at {begin})"
                )));
            }
            at = end;
        }
        if at != data_len {
            return Err(header(format!(
                "accounts for {at} bytes of data and the file holds {data_len}"
            )));
        }
        bytes.check_intact().map_err(|e| err(e.into()))?;
        let source = Source {
            len,
            mtime_ns,
            header_hash: *blake3::hash(&bytes.bytes()[..8 + n as usize]).as_bytes(),
        };
        let converted = convert(path, &bytes, &tensors, &source, write_cache).map_err(err)?;
        Ok(Weights {
            bytes: Arc::new(bytes),
            tensors,
            converted,
        })
    }

    /// Whether the file has a tensor called `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name` as `f32`s, row-major, checked to have `shape`: in place when it is
    /// stored as aligned `f32`s, else converted into a buffer reserved fallibly.
    pub(crate) fn floats(&self, name: &str, shape: &[usize]) -> Result<Floats, WeightsError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| WeightsError::Missing(name.to_owned()))?;
        if t.shape != shape {
            return Err(WeightsError::Shape {
                tensor: name.to_owned(),
                found: t.shape.clone(),
                expected: shape.to_vec(),
            });
        }
        if !matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(WeightsError::Dtype {
                tensor: name.to_owned(),
                dtype: t.dtype.name().to_owned(),
            });
        }
        if let Some(&(start, len)) = self.converted.as_ref().and_then(|c| c.places.get(name)) {
            return Ok(match self.converted.as_ref().map(|c| &c.backing) {
                Some(Backing::File(bytes)) => Floats::Mapped {
                    bytes: Arc::clone(bytes),
                    start: cache::HEADER_LEN + 4 * start,
                    len,
                },
                Some(Backing::Memory(data)) => Floats::Shared {
                    data: Arc::clone(data),
                    start,
                    len,
                },
                None => Floats::Owned(Vec::new()),
            });
        }
        // Not converted: an aligned f32 tensor, read in place.
        Ok(Floats::Mapped {
            bytes: Arc::clone(&self.bytes),
            start: t.start as usize,
            len: t.len as usize / 4,
        })
    }

    /// Fails if the file shrank while it was mapped (whatever was computed from it since it
    /// was opened read zeros past the new end and must be thrown away).
    pub(crate) fn check_intact(&self) -> Result<(), WeightsError> {
        self.bytes.check_intact()?;
        if let Some(c) = &self.converted {
            c.check_intact()?;
        }
        Ok(())
    }
}

/// Whether tensor `t` of `bytes` is `f32` at a 4-byte aligned place (read in place).
fn in_place(t: &TensorInfo, bytes: &FileBytes) -> bool {
    let (start, len) = (t.start as usize, t.len as usize);
    t.dtype == Dtype::F32 && bytes_as_f32(&bytes.bytes()[start..start + len]).is_some()
}

/// The float tensors of `tensors` that cannot be read in place, converted to `f32` (from the
/// cache beside `path` when it is valid), or `None` when every one can.
fn convert(
    path: &Path,
    bytes: &FileBytes,
    tensors: &HashMap<String, TensorInfo>,
    source: &Source,
    write: bool,
) -> Result<Option<Converted>, WeightsError> {
    let mut names: Vec<&String> = tensors
        .iter()
        .filter(|(_, t)| matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16))
        .filter(|(_, t)| !in_place(t, bytes))
        .map(|(name, _)| name)
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    names.sort();
    let wanted: Vec<Wanted<'_>> = names
        .iter()
        .filter_map(|name| {
            let t = tensors.get(*name)?;
            // The header check kept every range within the map and made len = size × count.
            let raw = &bytes.bytes()[t.start as usize..(t.start + t.len) as usize];
            let dtype = t.dtype;
            Some(Wanted {
                name: name.as_str(),
                count: (t.len / dtype.size()) as usize,
                convert: Box::new(move |out: &mut [f32]| match dtype {
                    Dtype::F32 => {
                        for (o, b) in out.iter_mut().zip(raw.chunks_exact(4)) {
                            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        }
                    }
                    Dtype::F16 => {
                        for (o, b) in out.iter_mut().zip(raw.chunks_exact(2)) {
                            *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                        }
                    }
                    Dtype::BF16 => {
                        for (o, b) in out.iter_mut().zip(raw.chunks_exact(2)) {
                            *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
                        }
                    }
                    Dtype::Other(..) => {}
                }),
            })
        })
        .collect();
    let bytes_needed: u64 = wanted.iter().map(|w| 4 * w.count as u64).sum();
    let converted =
        cache::load(path, source, &wanted, write).map_err(|_| WeightsError::Memory {
            tensor: "the weights converted to f32".to_owned(),
            bytes: bytes_needed,
        })?;
    Ok(Some(converted))
}

/// An empty `Vec<f32>` with room for `count` values, or [`WeightsError::Memory`].
pub(crate) fn try_vec(count: usize, tensor: &str) -> Result<Vec<f32>, WeightsError> {
    let mut v = Vec::new();
    v.try_reserve_exact(count)
        .map_err(|_| WeightsError::Memory {
            tensor: tensor.to_owned(),
            bytes: (count as u64).saturating_mul(4),
        })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, header: &str, data_len: u64) -> PathBuf {
        use std::io::Write;
        let path = dir.join("model.safetensors");
        let mut f = File::create(&path).expect("create");
        f.write_all(&(header.len() as u64).to_le_bytes())
            .expect("write");
        f.write_all(header.as_bytes()).expect("write");
        f.set_len(8 + header.len() as u64 + data_len).expect("len");
        path
    }

    fn problem(path: &Path) -> String {
        match Weights::open(path, true) {
            Err(ModelError::Weights { source, .. }) => source.to_string(),
            other => panic!("expected a weights error, got {other:?}"),
        }
    }

    #[test]
    fn headers_are_checked_against_the_file_before_anything_is_allocated() {
        let dir = tempfile::tempdir().expect("tmp");
        let ok = r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        let w = Weights::open(&write(dir.path(), ok, 24), true).expect("valid");
        assert_eq!(w.floats("a", &[2, 3]).expect("read").as_slice(), &[0.0; 6]);
        assert!(w.floats("a", &[3, 2]).is_err());
        assert!(matches!(w.floats("b", &[1]), Err(WeightsError::Missing(_))));

        // Trailing bytes, short data, a huge shape, overlap, a header past the file.
        assert!(problem(&write(dir.path(), ok, 25)).contains("accounts for 24"));
        assert!(problem(&write(dir.path(), ok, 23)).contains("outside"));
        let huge = r#"{"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,24]}}"#;
        assert!(problem(&write(dir.path(), huge, 24)).contains("more than 2^64"));
        let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        assert!(problem(&write(dir.path(), overlap, 12)).contains("gap or an overlap"));
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, (1u64 << 40).to_le_bytes()).expect("write");
        assert!(problem(&path).contains("claims"));
    }
}
