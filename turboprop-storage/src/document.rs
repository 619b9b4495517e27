//! Self-describing JSON documents (`manifest.json`, `metadata.json`): one header line with
//! kind, format version, length and checksum, then the JSON body.
//!
//! ```text
//! turboprop manifest v1 len=1234 blake3=0123456789abcdef0123456789abcdef\n
//! {"generation": 7, ...}
//! ```
//! The body is plain JSON (`tail -n +2 manifest.json | jq .` reads it).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::directory::Directory;
use crate::error::{Result, StorageError};
use crate::header::payload_hash;
use crate::mmap::{FileBytes, ReadMode};

/// Version of the document header line written by this build.
pub const DOCUMENT_FORMAT_VERSION: u32 = 1;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes `value` as a document of `kind` (a single lowercase word).
pub fn encode_document<T: Serialize>(path: &Path, kind: &str, value: &T) -> Result<Vec<u8>> {
    encode_document_version(path, kind, DOCUMENT_FORMAT_VERSION, value)
}

/// Encodes `value` as a document of `kind` whose header line carries `version` (documents
/// whose body evolves on its own, like a segment's `metadata.json`, have their own version).
pub(crate) fn encode_document_version<T: Serialize>(
    path: &Path,
    kind: &str,
    version: u32,
    value: &T,
) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(value).map_err(|source| StorageError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = format!(
        "turboprop {kind} v{version} len={} blake3={}\n",
        body.len(),
        hex(&payload_hash(&body))
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks the header line and checksum of a document of `kind` and returns its JSON body.
pub fn document_body<'a>(path: &Path, kind: &str, bytes: &'a [u8]) -> Result<&'a [u8]> {
    document_body_versioned(path, kind, bytes, &[DOCUMENT_FORMAT_VERSION]).map(|(_, body)| body)
}

/// [`document_body`] for a document that may carry any of the `supported` versions (the
/// highest is the one this build writes); returns the version found and the body.
pub(crate) fn document_body_versioned<'a>(
    path: &Path,
    kind: &str,
    bytes: &'a [u8],
    supported: &[u32],
) -> Result<(u32, &'a [u8])> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .filter(|&n| n <= 200)
        .ok_or_else(|| StorageError::BadMagic {
            path: path.to_path_buf(),
            kind: "document",
        })?;
    let line = std::str::from_utf8(&bytes[..newline]).map_err(|_| StorageError::BadMagic {
        path: path.to_path_buf(),
        kind: "document",
    })?;
    let mut parts = line.split(' ');
    let (Some("turboprop"), Some(found_kind), Some(version), Some(len), Some(sum), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(StorageError::BadMagic {
            path: path.to_path_buf(),
            kind: "document",
        });
    };
    if found_kind != kind {
        return Err(StorageError::corrupt(
            path,
            format!("expected a {kind} document, found {found_kind}"),
        ));
    }
    let version: u32 = version
        .strip_prefix('v')
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StorageError::HeaderChecksum {
            path: path.to_path_buf(),
        })?;
    if !supported.contains(&version) {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: supported
                .iter()
                .copied()
                .max()
                .unwrap_or(DOCUMENT_FORMAT_VERSION),
        });
    }
    let len: u64 = len
        .strip_prefix("len=")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StorageError::HeaderChecksum {
            path: path.to_path_buf(),
        })?;
    let sum = sum
        .strip_prefix("blake3=")
        .ok_or_else(|| StorageError::HeaderChecksum {
            path: path.to_path_buf(),
        })?;
    let body = &bytes[newline + 1..];
    if body.len() as u64 != len {
        return Err(StorageError::SizeMismatch {
            path: path.to_path_buf(),
            expected: (newline as u64 + 1).saturating_add(len),
            found: bytes.len() as u64,
        });
    }
    if hex(&payload_hash(body)) != sum {
        return Err(StorageError::PayloadChecksum {
            path: path.to_path_buf(),
        });
    }
    Ok((version, body))
}

/// Reads, checks and parses the document `name` of `kind` from `dir`.
pub fn read_document<T: DeserializeOwned>(
    dir: &dyn Directory,
    name: &str,
    kind: &str,
) -> Result<T> {
    read_document_sized(dir, name, kind).map(|(value, _)| value)
}

/// The largest JSON document read by default: a format-1 segment's `metadata.json` lists
/// every file of the segment, about 150 bytes each.
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// [`read_document`], refusing a file longer than `max` bytes before reading it.
pub(crate) fn read_document_at_most<T: DeserializeOwned>(
    dir: &dyn Directory,
    name: &str,
    kind: &str,
    max: u64,
) -> Result<T> {
    read_document_bytes(dir.read_at_most(name, ReadMode::Heap, max)?, kind).map(|(v, _)| v)
}

/// [`read_document`], also returning the document's length in bytes.
pub(crate) fn read_document_sized<T: DeserializeOwned>(
    dir: &dyn Directory,
    name: &str,
    kind: &str,
) -> Result<(T, u64)> {
    read_document_bytes(
        dir.read_at_most(name, ReadMode::Heap, MAX_DOCUMENT_BYTES)?,
        kind,
    )
}

/// Parses a document's bytes read from disk.
fn read_document_bytes<T: DeserializeOwned>(file: FileBytes, kind: &str) -> Result<(T, u64)> {
    let path = file.path();
    let body = document_body(path, kind, file.bytes())?;
    let value = serde_json::from_slice(body).map_err(|source| StorageError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((value, file.bytes().len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let p = Path::new("m.json");
        let doc = encode_document(p, "manifest", &vec![1, 2, 3]).expect("encode");
        let body = document_body(p, "manifest", &doc).expect("valid");
        assert_eq!(body, b"[1,2,3]");
        assert!(document_body(p, "metadata", &doc).is_err());
        for i in 0..doc.len() {
            let mut bad = doc.clone();
            bad[i] ^= 0x01;
            assert!(
                document_body(p, "manifest", &bad).is_err(),
                "flip at byte {i}"
            );
        }
        for len in 0..doc.len() {
            assert!(document_body(p, "manifest", &doc[..len]).is_err());
        }
    }
}
