//! The records a segment stores: the 64-byte chunk record of each row, the 128-byte
//! `files.bin` record of each file, the format-2 `metadata.json` and the per-file rows hash.

use serde::{Deserialize, Serialize};
use turboprop_types::{ContentHash, FileRecord};

use super::lexical::LexicalMeta;
use super::SpaceMeta;

/// One row's chunk record: where the chunk is in its file and what it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Index of the chunk's file in the segment's
    /// [`SegmentReader::files`](super::SegmentReader::files).
    pub file: u32,
    /// First line, 1-based.
    pub line_start: u32,
    /// Last line, 1-based, inclusive.
    pub line_end: u32,
    /// Byte range start in the file.
    pub byte_start: u64,
    /// Byte range end (exclusive).
    pub byte_end: u64,
    /// Digest of the chunk's bytes.
    pub hash: ContentHash,
}

impl ChunkRecord {
    /// The 64-byte little-endian encoding.
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.file.to_le_bytes());
        b[4..8].copy_from_slice(&self.line_start.to_le_bytes());
        b[8..12].copy_from_slice(&self.line_end.to_le_bytes());
        // 12..16 reserved, zero.
        b[16..24].copy_from_slice(&self.byte_start.to_le_bytes());
        b[24..32].copy_from_slice(&self.byte_end.to_le_bytes());
        b[32..64].copy_from_slice(self.hash.as_bytes());
        b
    }

    /// Decodes a 64-byte record.
    pub fn decode(b: &[u8; 64]) -> ChunkRecord {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[32..64]);
        ChunkRecord {
            file: u32_at(0),
            line_start: u32_at(4),
            line_end: u32_at(8),
            byte_start: u64_at(16),
            byte_end: u64_at(24),
            hash: ContentHash::from_bytes(hash),
        }
    }
}

/// A file's entry in a segment's `metadata.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFile {
    /// The file as it was indexed.
    #[serde(flatten)]
    pub record: FileRecord,
    /// First row of the file's chunks.
    pub first_row: u64,
    /// Number of rows (chunks) of the file.
    pub rows: u64,
    /// First pair of the file's term counts in `terms.bin`.
    pub terms_start: u64,
    /// Number of term-count pairs.
    pub terms_len: u64,
    /// BLAKE3 of the file's rows: its vectors' bytes, then its chunk records' bytes (and
    /// the other spaces' vectors, from format 4 the rows' symbols and kinds, and in format 5
    /// their exact terms, frequencies and lengths). Checked
    /// before rows are copied into a new segment, so damage is never carried forward.
    pub rows_hash: ContentHash,
}

/// `metadata.json` of segment format 2: only constant-size facts; the files are in
/// `files.bin` and `paths.bin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MetaV2 {
    pub(super) dimensions: u32,
    pub(super) rows: u64,
    pub(super) file_count: u64,
    /// Additional vector spaces (format 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) spaces: Vec<SpaceMeta>,
    /// The sizes of the exact lexical space (format 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) lexical: Option<LexicalMeta>,
}

/// Bytes of one `files.bin` record.
pub const FILE_RECORD_LEN: usize = 128;

/// One `files.bin` record as stored (see docs/format.md), before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawFile {
    pub(super) first_row: u64,
    pub(super) rows: u64,
    pub(super) terms_start: u64,
    pub(super) terms_len: u64,
    pub(super) path_start: u64,
    pub(super) path_len: u32,
    pub(super) reserved: u32,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) hash: [u8; 32],
    pub(super) rows_hash: [u8; 32],
}

impl RawFile {
    pub(super) fn encode(&self) -> [u8; FILE_RECORD_LEN] {
        let mut b = [0u8; FILE_RECORD_LEN];
        b[0..8].copy_from_slice(&self.first_row.to_le_bytes());
        b[8..16].copy_from_slice(&self.rows.to_le_bytes());
        b[16..24].copy_from_slice(&self.terms_start.to_le_bytes());
        b[24..32].copy_from_slice(&self.terms_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.path_start.to_le_bytes());
        b[40..44].copy_from_slice(&self.path_len.to_le_bytes());
        b[44..48].copy_from_slice(&self.reserved.to_le_bytes());
        b[48..56].copy_from_slice(&self.size.to_le_bytes());
        b[56..64].copy_from_slice(&self.mtime_ns.to_le_bytes());
        b[64..96].copy_from_slice(&self.hash);
        b[96..128].copy_from_slice(&self.rows_hash);
        b
    }

    pub(super) fn decode(b: &[u8; FILE_RECORD_LEN]) -> RawFile {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[64..96]);
        let mut rows_hash = [0u8; 32];
        rows_hash.copy_from_slice(&b[96..128]);
        RawFile {
            first_row: u64_at(0),
            rows: u64_at(8),
            terms_start: u64_at(16),
            terms_len: u64_at(24),
            path_start: u64_at(32),
            path_len: u32_at(40),
            reserved: u32_at(44),
            size: u64_at(48),
            mtime_ns: i64::from_le_bytes(u64_at(56).to_le_bytes()),
            hash,
            rows_hash,
        }
    }

    /// Where the file's rows, terms and path start.
    pub(super) fn starts(&self) -> [u64; 3] {
        [self.first_row, self.terms_start, self.path_start]
    }

    /// Where they end, or `None` on overflow.
    pub(super) fn ends(&self) -> Option<[u64; 3]> {
        Some([
            self.first_row.checked_add(self.rows)?,
            self.terms_start.checked_add(self.terms_len)?,
            self.path_start.checked_add(u64::from(self.path_len))?,
        ])
    }
}

/// The per-file rows hash: BLAKE3 over the digests of the vectors, the chunk records,
/// then the vectors of each additional space, in the segment's space order, (from format 4)
/// the rows' symbols and kinds by content (see `symbols::hash_row`) and (format 5) last the
/// rows' exact terms and lengths by content (see `lexical::hash_count`).
pub(super) fn rows_hash(
    vectors: blake3::Hasher,
    chunks: blake3::Hasher,
    spaces: Vec<blake3::Hasher>,
    symbols: Option<blake3::Hasher>,
    lexical: Option<blake3::Hasher>,
) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(vectors.finalize().as_bytes());
    h.update(chunks.finalize().as_bytes());
    for s in spaces {
        h.update(s.finalize().as_bytes());
    }
    for s in symbols.into_iter().chain(lexical) {
        h.update(s.finalize().as_bytes());
    }
    ContentHash::from_bytes(*h.finalize().as_bytes())
}
