//! The 64-byte header that starts every binary turboprop file: magic, format version, shape,
//! payload length and checksums, all little-endian. See docs/format.md.
//!
//! ```text
//! offset size field
//!      0    8 magic            (e.g. b"TPVECTOR")
//!      8    4 format_version   u32
//!     12    4 width            u32   (kind-specific: dimensions, record size, ...)
//!     16    8 count            u64   (rows or records)
//!     24    8 payload_len      u64   (bytes after the header)
//!     32   16 payload_blake3   first 16 bytes of BLAKE3(payload)
//!     48    8 extra            u64   (kind-specific, 0 if unused)
//!     56    8 header_check     u64   first 8 bytes of BLAKE3(bytes 0..56), little-endian
//! ```

use std::path::Path;

use crate::error::{Result, StorageError};

/// Size of the header in bytes; payloads start here (64-byte aligned in a mapped file).
pub const HEADER_LEN: usize = 64;

/// The binary format version this build writes and reads.
pub const BINARY_FORMAT_VERSION: u32 = 1;

/// A decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The file kind's magic bytes.
    pub magic: [u8; 8],
    /// Format version.
    pub version: u32,
    /// Kind-specific width (vector dimensions, record size...).
    pub width: u32,
    /// Number of rows or records.
    pub count: u64,
    /// Length of the payload that follows the header.
    pub payload_len: u64,
    /// First 16 bytes of the payload's BLAKE3 digest.
    pub payload_hash: [u8; 16],
    /// Kind-specific extra value.
    pub extra: u64,
}

/// First 16 bytes of the BLAKE3 digest of `payload`.
pub fn payload_hash(payload: &[u8]) -> [u8; 16] {
    let digest = blake3::hash(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest.as_bytes()[..16]);
    out
}

fn header_check(bytes: &[u8]) -> u64 {
    let digest = blake3::hash(bytes);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(out)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// Encodes the header, computing its own checksum.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&self.magic);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.width.to_le_bytes());
        b[16..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..48].copy_from_slice(&self.payload_hash);
        b[48..56].copy_from_slice(&self.extra.to_le_bytes());
        let check = header_check(&b[..56]);
        b[56..64].copy_from_slice(&check.to_le_bytes());
        b
    }

    /// Decodes and checks the header at the start of `file_bytes`: size, magic, version,
    /// header checksum, and that the file is exactly header + payload long.
    pub fn decode(
        path: &Path,
        file_bytes: &[u8],
        magic: &[u8; 8],
        kind: &'static str,
    ) -> Result<Header> {
        if file_bytes.len() < HEADER_LEN {
            return Err(StorageError::SizeMismatch {
                path: path.to_path_buf(),
                expected: HEADER_LEN as u64,
                found: file_bytes.len() as u64,
            });
        }
        let b = &file_bytes[..HEADER_LEN];
        if &b[0..8] != magic {
            return Err(StorageError::BadMagic {
                path: path.to_path_buf(),
                kind,
            });
        }
        if header_check(&b[..56]) != u64_at(b, 56) {
            return Err(StorageError::HeaderChecksum {
                path: path.to_path_buf(),
            });
        }
        let version = u32_at(b, 8);
        if version != BINARY_FORMAT_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: BINARY_FORMAT_VERSION,
            });
        }
        let mut payload_hash = [0u8; 16];
        payload_hash.copy_from_slice(&b[32..48]);
        let header = Header {
            magic: *magic,
            version,
            width: u32_at(b, 12),
            count: u64_at(b, 16),
            payload_len: u64_at(b, 24),
            payload_hash,
            extra: u64_at(b, 48),
        };
        let expected = (HEADER_LEN as u64).saturating_add(header.payload_len);
        if expected != file_bytes.len() as u64 {
            return Err(StorageError::SizeMismatch {
                path: path.to_path_buf(),
                expected,
                found: file_bytes.len() as u64,
            });
        }
        Ok(header)
    }

    /// Checks `payload` against the recorded checksum.
    pub fn check_payload(&self, path: &Path, payload: &[u8]) -> Result<()> {
        if payload_hash(payload) == self.payload_hash {
            Ok(())
        } else {
            Err(StorageError::PayloadChecksum {
                path: path.to_path_buf(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Header, Vec<u8>) {
        let payload = vec![7u8; 24];
        let header = Header {
            magic: *b"TPTESTXX",
            version: BINARY_FORMAT_VERSION,
            width: 3,
            count: 2,
            payload_len: payload.len() as u64,
            payload_hash: payload_hash(&payload),
            extra: 42,
        };
        let mut file = header.encode().to_vec();
        file.extend_from_slice(&payload);
        (header, file)
    }

    #[test]
    fn round_trip() {
        let (header, file) = sample();
        let decoded = Header::decode(Path::new("f"), &file, b"TPTESTXX", "test").expect("valid");
        assert_eq!(decoded, header);
        decoded
            .check_payload(Path::new("f"), &file[HEADER_LEN..])
            .expect("payload intact");
    }

    #[test]
    fn every_damage_is_caught() {
        let (_, file) = sample();
        let p = Path::new("f");
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x40;
            let ok = Header::decode(p, &bad, b"TPTESTXX", "test")
                .and_then(|h| h.check_payload(p, &bad[HEADER_LEN..]));
            assert!(ok.is_err(), "flip at byte {i} went unnoticed");
        }
        for len in 0..file.len() {
            assert!(Header::decode(p, &file[..len], b"TPTESTXX", "test").is_err());
        }
        assert!(matches!(
            Header::decode(p, &file, b"TPOTHERX", "other"),
            Err(StorageError::BadMagic { .. })
        ));
    }
}
