//! Segments: an immutable folder of rows (vectors, chunk records, per-file term counts) and
//! the metadata of the files they came from.
//!
//! ```text
//! seg-00000007/
//!   vectors.bin    rows of f32, one per chunk              (table, memory-mapped)
//!   chunks.bin     one 64-byte record per chunk            (table, memory-mapped)
//!   terms.bin      (term, chunk count) pairs of each file  (table, read by writers only)
//!   df.bin         chunks of the segment containing each term (table, for query weights)
//!   files.bin      one 128-byte record per file: row, term and path ranges, stat, hashes
//!   paths.bin      the files' UTF-8 paths back to back     (table of 1-byte records)
//!   metadata.json  dimensions, rows, file count, spaces   (document, segment format 2 or 3)
//!   vectors.<key>.bin  rows of f32 of an additional vector space (format 3), e.g. a
//!                  transformer model's vectors beside the built-in lexical ones
//! ```
//! A segment may hold more than one vector space: the primary `vectors.bin` and, in format 3,
//! one `vectors.<key>.bin` per additional space listed in `metadata.json`, each with a row
//! per chunk, in the same row order.
//! A file's chunks occupy consecutive rows, so a filter on files is a set of row ranges.
//!
//! Opening a segment reads headers and the small `metadata.json`, never a per-file record:
//! a search reads only the records of the files it returns. Segments of format 1 (written
//! before `files.bin` existed) keep their file list inside `metadata.json`; it is parsed
//! whole when they are opened, and compaction rewrites them in format 2.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use turboprop_types::{check_path, ContentHash, FileRecord};

use crate::directory::{join_name, Directory};
use crate::document::{document_body_versioned, encode_document_version};
use crate::error::{Result, StorageError};
use crate::mmap::{bytes_as_f32, f32_as_bytes, ReadMode};
use crate::table::{Table, TableKind, TableWriter};
use crate::termstats::{write_doc_freq, DocFreqTable};

/// File names inside a segment folder.
pub const VECTORS_FILE: &str = "vectors.bin";
/// Chunk records.
pub const CHUNKS_FILE: &str = "chunks.bin";
/// Per-file term counts.
pub const TERMS_FILE: &str = "terms.bin";
/// Document frequencies of the segment's terms.
pub const DF_FILE: &str = "df.bin";
/// The segment's constant-size facts (dimensions, rows, file count).
pub const METADATA_FILE: &str = "metadata.json";
/// One fixed-size record per file (segment format 2).
pub const FILES_FILE: &str = "files.bin";
/// The files' paths back to back (segment format 2).
pub const PATHS_FILE: &str = "paths.bin";

/// The segment format this build writes, carried by the header line of `metadata.json`:
/// 2 keeps the files in `files.bin` and `paths.bin`, read in place; 1 (still read) kept them
/// as a JSON list inside `metadata.json`, parsed whole on open.
pub const SEGMENT_FORMAT_VERSION: u32 = 2;

/// The segment format of segments with additional vector spaces: format 2 plus the spaces
/// listed in `metadata.json`. Segments without them are still written as format 2, which
/// older builds read.
pub const SPACES_FORMAT_VERSION: u32 = 3;

/// Segment formats this build reads.
const READABLE_FORMATS: [u32; 3] = [1, SEGMENT_FORMAT_VERSION, SPACES_FORMAT_VERSION];

/// An additional vector space of a segment: the vectors of the same rows made by another
/// model, in `vectors.<key>.bin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceMeta {
    /// The space's key: part of its file names (see [`check_space_key`]).
    pub key: String,
    /// Vector dimensions.
    pub dimensions: u32,
}

/// The name of a segment file of space `key`: `vectors.bin` becomes `vectors.<key>.bin`;
/// `None` is the primary space (the name unchanged).
///
/// ```
/// assert_eq!(turboprop_storage::space_file("vectors.bin", Some("minilm")), "vectors.minilm.bin");
/// assert_eq!(turboprop_storage::space_file("codes.bin", None), "codes.bin");
/// ```
pub fn space_file(file: &str, key: Option<&str>) -> String {
    match (key, file.rsplit_once('.')) {
        (Some(k), Some((stem, ext))) => format!("{stem}.{k}.{ext}"),
        (Some(k), None) => format!("{file}.{k}"),
        (None, _) => file.to_owned(),
    }
}

/// Checks that `key` can name a space: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
///
/// ```
/// assert!(turboprop_storage::check_space_key("all-minilm-l6-v2").is_ok());
/// assert!(turboprop_storage::check_space_key("../x").is_err());
/// ```
pub fn check_space_key(key: &str) -> std::result::Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "space key {key:?} must be 1 to 64 characters of a-z, 0-9, - and _"
        ))
    }
}

/// The space key for a model id: lowercased, every other character than `a-z`, `0-9`, `-`
/// and `_` replaced by `_`, at most 64 characters.
///
/// ```
/// assert_eq!(turboprop_storage::space_key("sentence-transformers/all-MiniLM-L6-v2"),
///            "sentence-transformers_all-minilm-l6-v2");
/// ```
pub fn space_key(model_id: &str) -> String {
    let key: String = model_id
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if key.is_empty() {
        "_".to_owned()
    } else {
        key
    }
}

const ALL_FILES: [&str; 7] = [
    VECTORS_FILE,
    CHUNKS_FILE,
    TERMS_FILE,
    DF_FILE,
    FILES_FILE,
    PATHS_FILE,
    METADATA_FILE,
];

/// One row's chunk record: where the chunk is in its file and what it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Index of the chunk's file in the segment's [`SegmentReader::files`].
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
    /// BLAKE3 of the file's rows: its vectors' bytes, then its chunk records' bytes. Checked
    /// before rows are copied into a new segment, so damage is never carried forward.
    pub rows_hash: ContentHash,
}

/// `metadata.json` of segment format 1: the file list inside the document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetaV1 {
    dimensions: u32,
    rows: u64,
    files: Vec<SegmentFile>,
}

/// `metadata.json` of segment format 2: only constant-size facts; the files are in
/// `files.bin` and `paths.bin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetaV2 {
    dimensions: u32,
    rows: u64,
    file_count: u64,
    /// Additional vector spaces (format 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    spaces: Vec<SpaceMeta>,
}

/// Bytes of one `files.bin` record.
pub const FILE_RECORD_LEN: usize = 128;

/// One `files.bin` record as stored (see docs/format.md), before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawFile {
    first_row: u64,
    rows: u64,
    terms_start: u64,
    terms_len: u64,
    path_start: u64,
    path_len: u32,
    reserved: u32,
    size: u64,
    mtime_ns: i64,
    hash: [u8; 32],
    rows_hash: [u8; 32],
}

impl RawFile {
    fn encode(&self) -> [u8; FILE_RECORD_LEN] {
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

    fn decode(b: &[u8; FILE_RECORD_LEN]) -> RawFile {
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
    fn starts(&self) -> [u64; 3] {
        [self.first_row, self.terms_start, self.path_start]
    }

    /// Where they end, or `None` on overflow.
    fn ends(&self) -> Option<[u64; 3]> {
        Some([
            self.first_row.checked_add(self.rows)?,
            self.terms_start.checked_add(self.terms_len)?,
            self.path_start.checked_add(u64::from(self.path_len))?,
        ])
    }
}

/// A chunk to be written: its location, digest and vector.
#[derive(Debug, Clone, Copy)]
pub struct NewRow<'a> {
    /// First line, 1-based.
    pub line_start: u32,
    /// Last line, inclusive.
    pub line_end: u32,
    /// Byte range start.
    pub byte_start: u64,
    /// Byte range end.
    pub byte_end: u64,
    /// Digest of the chunk's bytes.
    pub hash: ContentHash,
    /// The chunk's vector (the segment's dimensions, finite values).
    pub vector: &'a [f32],
}

/// What a finished segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Folder name of the segment.
    pub name: String,
    /// Rows written.
    pub rows: u64,
    /// Files written.
    pub files: u64,
    /// Bytes written to disk.
    pub bytes: u64,
}

/// Writes a new segment folder, file by file.
#[derive(Debug)]
pub struct SegmentWriter<'a> {
    store: &'a dyn Directory,
    /// The folder's name in `store`.
    name: String,
    /// The folder's location, for errors.
    dir: PathBuf,
    dims: u32,
    vectors: TableWriter<'a>,
    chunks: TableWriter<'a>,
    terms: TableWriter<'a>,
    files: TableWriter<'a>,
    paths: TableWriter<'a>,
    df: BTreeMap<u32, u32>,
    /// Additional vector spaces and their tables.
    spaces: Vec<(SpaceMeta, TableWriter<'a>)>,
}

impl<'a> SegmentWriter<'a> {
    /// Creates the segment folder `name` in `store` (it must not exist) for vectors of
    /// `dims`.
    pub fn create(store: &'a dyn Directory, name: &str, dims: u32) -> Result<SegmentWriter<'a>> {
        Self::create_with_spaces(store, name, dims, &[])
    }

    /// Creates the segment folder `name` for primary vectors of `dims` and the additional
    /// vector `spaces` (distinct keys), whose rows [`Self::add_file_with_spaces`] takes.
    pub fn create_with_spaces(
        store: &'a dyn Directory,
        name: &str,
        dims: u32,
        spaces: &[SpaceMeta],
    ) -> Result<SegmentWriter<'a>> {
        let dir = store.location(name);
        for (i, s) in spaces.iter().enumerate() {
            check_space_key(&s.key).map_err(|e| StorageError::corrupt(&dir, e))?;
            if spaces[..i].iter().any(|o| o.key == s.key) {
                return Err(StorageError::corrupt(
                    &dir,
                    format!("space {} given twice", s.key),
                ));
            }
        }
        crate::failpoint::check("segment:create", &dir)?;
        store.create_dir(name)?;
        let table = |file: &str, kind: TableKind, width: u32| {
            TableWriter::create(store, &join_name(name, file), kind, width)
        };
        Ok(SegmentWriter {
            store,
            name: name.to_owned(),
            dir,
            dims,
            vectors: table(VECTORS_FILE, TableKind::Vectors, dims)?,
            chunks: table(CHUNKS_FILE, TableKind::Chunks, 0)?,
            terms: table(TERMS_FILE, TableKind::Terms, 0)?,
            files: table(FILES_FILE, TableKind::Files, 0)?,
            paths: table(PATHS_FILE, TableKind::Paths, 0)?,
            df: BTreeMap::new(),
            spaces: spaces
                .iter()
                .map(|s| {
                    let file = space_file(VECTORS_FILE, Some(&s.key));
                    Ok((s.clone(), table(&file, TableKind::Vectors, s.dimensions)?))
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Appends one file with its chunks and its (term, chunk count) pairs, sorted by term.
    /// For a segment without additional spaces.
    pub fn add_file<'r>(
        &mut self,
        record: FileRecord,
        rows: impl IntoIterator<Item = NewRow<'r>>,
        terms: &[(u32, u32)],
    ) -> Result<()> {
        self.add_file_with_spaces(record, rows, terms, &[])
    }

    /// Appends one file like [`Self::add_file`], with the rows of every additional space:
    /// `spaces[k]` holds the file's vectors in space `k` back to back (rows × dimensions
    /// values), in the order the spaces were given to [`Self::create_with_spaces`].
    pub fn add_file_with_spaces<'r>(
        &mut self,
        record: FileRecord,
        rows: impl IntoIterator<Item = NewRow<'r>>,
        terms: &[(u32, u32)],
        spaces: &[&[f32]],
    ) -> Result<()> {
        if spaces.len() != self.spaces.len() {
            return Err(StorageError::corrupt(
                &self.dir,
                format!(
                    "{} gets vectors of {} additional spaces; the segment has {}",
                    record.path(),
                    spaces.len(),
                    self.spaces.len()
                ),
            ));
        }
        let file_idx = u32::try_from(self.files.count())
            .map_err(|_| StorageError::corrupt(&self.dir, "more than 2^32 files in a segment"))?;
        let path_len = u32::try_from(record.path().len()).map_err(|_| {
            StorageError::corrupt(self.dir.join(PATHS_FILE), "a path of 4 GiB or more")
        })?;
        let first_row = self.vectors.count();
        let mut vectors_hash = blake3::Hasher::new();
        let mut chunks_hash = blake3::Hasher::new();
        for row in rows {
            if row.vector.len() != self.dims as usize {
                return Err(StorageError::corrupt(
                    self.dir.join(VECTORS_FILE),
                    format!(
                        "vector of {} dimensions written to a segment of {}",
                        row.vector.len(),
                        self.dims
                    ),
                ));
            }
            if row.vector.iter().any(|v| !v.is_finite()) {
                return Err(StorageError::corrupt(
                    self.dir.join(VECTORS_FILE),
                    format!("non-finite vector value for {}", record.path()),
                ));
            }
            self.vectors.push(f32_as_bytes(row.vector))?;
            vectors_hash.update(f32_as_bytes(row.vector));
            let chunk = ChunkRecord {
                file: file_idx,
                line_start: row.line_start,
                line_end: row.line_end,
                byte_start: row.byte_start,
                byte_end: row.byte_end,
                hash: row.hash,
            };
            let encoded = chunk.encode();
            self.chunks.push(&encoded)?;
            chunks_hash.update(&encoded);
        }
        let file_rows = self.vectors.count() - first_row;
        let mut space_hashes = Vec::with_capacity(spaces.len());
        for ((meta, table), values) in self.spaces.iter_mut().zip(spaces) {
            let path = || self.dir.join(space_file(VECTORS_FILE, Some(&meta.key)));
            if values.len() as u64 != file_rows * u64::from(meta.dimensions) {
                return Err(StorageError::corrupt(
                    path(),
                    format!(
                        "{} values for {} rows of {} dimensions of {}",
                        values.len(),
                        file_rows,
                        meta.dimensions,
                        record.path()
                    ),
                ));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(StorageError::corrupt(
                    path(),
                    format!("non-finite vector value for {}", record.path()),
                ));
            }
            for row in values.chunks_exact(meta.dimensions.max(1) as usize) {
                table.push(f32_as_bytes(row))?;
            }
            let mut h = blake3::Hasher::new();
            h.update(f32_as_bytes(values));
            space_hashes.push(h);
        }
        let terms_start = self.terms.count();
        let mut previous = None;
        for &(term, count) in terms {
            if previous.is_some_and(|p| p >= term) {
                return Err(StorageError::corrupt(
                    self.dir.join(TERMS_FILE),
                    format!("terms of {} are not sorted and distinct", record.path()),
                ));
            }
            previous = Some(term);
            self.terms.push(&crate::termstats::pair(term, count))?;
            *self.df.entry(term).or_default() += count;
        }
        let raw = RawFile {
            first_row,
            rows: self.vectors.count() - first_row,
            terms_start,
            terms_len: self.terms.count() - terms_start,
            path_start: self.paths.count(),
            path_len,
            reserved: 0,
            size: record.size(),
            mtime_ns: record.mtime_ns(),
            hash: *record.hash().as_bytes(),
            rows_hash: *rows_hash(vectors_hash, chunks_hash, space_hashes).as_bytes(),
        };
        self.paths.push_records(record.path().as_bytes())?;
        self.files.push(&raw.encode())?;
        Ok(())
    }

    /// Finishes every file, checks what was written and syncs the folder. The segment is not
    /// live until a manifest names it.
    pub fn finish(self) -> Result<SegmentSummary> {
        let SegmentWriter {
            store,
            name,
            dir,
            dims,
            vectors,
            chunks,
            terms,
            files,
            paths,
            df,
            spaces,
        } = self;
        let rows = vectors.count();
        let file_count = files.count();
        vectors.finish(0)?;
        chunks.finish(0)?;
        terms.finish(0)?;
        files.finish(rows)?;
        paths.finish(file_count)?;
        write_doc_freq(store, &join_name(&name, DF_FILE), rows, &df)?;
        let mut space_metas = Vec::with_capacity(spaces.len());
        for (meta, table) in spaces {
            table.finish(0)?;
            space_metas.push(meta);
        }
        let format = if space_metas.is_empty() {
            SEGMENT_FORMAT_VERSION
        } else {
            SPACES_FORMAT_VERSION
        };
        let meta = MetaV2 {
            dimensions: dims,
            rows,
            file_count,
            spaces: space_metas,
        };
        let meta_name = join_name(&name, METADATA_FILE);
        let meta_path = store.location(&meta_name);
        crate::failpoint::check("segment:metadata", &meta_path)?;
        let doc = encode_document_version(&meta_path, "metadata", format, &meta)?;
        store.write_new(&meta_name, &doc)?;
        crate::failpoint::check("segment:sync", &dir)?;
        store.sync_dir(&name)?;
        let mut bytes = 0;
        for file in ALL_FILES {
            bytes += store.file_len(&join_name(&name, file))?;
        }
        for s in &meta.spaces {
            bytes += store.file_len(&join_name(&name, &space_file(VECTORS_FILE, Some(&s.key))))?;
        }
        Ok(SegmentSummary {
            name,
            rows,
            files: file_count,
            bytes,
        })
    }
}

/// An open segment: headers, sizes and the constant-size metadata checked; vectors, chunk
/// records and (format 2) file records mapped.
///
/// Opening costs the same whatever the number of files: the per-file records of format 2 are
/// read in place, one at a time, by the O(1) accessors ([`Self::file_count`],
/// [`Self::file_rows`], [`Self::file_path`], [`Self::file`]), each checking what it reads.
/// [`Self::files`] builds the whole list (checking every file) only when asked, once.
#[derive(Debug)]
pub struct SegmentReader {
    /// The folder's location, for errors.
    dir: PathBuf,
    vectors: Table,
    chunks: Table,
    terms: Table,
    df: DocFreqTable,
    /// `files.bin` and `paths.bin` (format 2); `None` for format 1.
    tables: Option<FileTables>,
    /// Segment format version (from `metadata.json`).
    format: u32,
    dims: u32,
    file_count: usize,
    /// The whole file list: parsed on open for format 1, built on demand for format 2.
    list: OnceLock<Vec<SegmentFile>>,
    meta_len: u64,
    /// Additional vector spaces (format 3) and their tables.
    spaces: Vec<SpaceMeta>,
    space_tables: Vec<Table>,
}

#[derive(Debug)]
struct FileTables {
    files: Table,
    paths: Table,
}

/// A file's row and term ranges and rows hash, checked.
struct FileLayout {
    rows: Range<u64>,
    terms: Range<u64>,
    rows_hash: ContentHash,
}

impl SegmentReader {
    /// Opens the segment folder `name` of `store`, checking every header and size and the
    /// metadata's checksum. Payload checksums of the tables, and the consistency of every
    /// file record of format 2, are checked by [`Self::verify`].
    ///
    /// ```
    /// use turboprop_storage::{MemDirectory, NewRow, ReadMode, SegmentReader, SegmentWriter};
    /// use turboprop_types::{ContentHash, FileRecord};
    ///
    /// let dir = MemDirectory::new();
    /// let mut w = SegmentWriter::create(&dir, "seg-00000001", 2)?;
    /// let row = NewRow { line_start: 1, line_end: 3, byte_start: 0, byte_end: 10,
    ///                    hash: ContentHash::of(b"x"), vector: &[0.6, 0.8] };
    /// w.add_file(FileRecord::new("a.rs", 10, 0, ContentHash::of(b"a"))?, [row, row], &[])?;
    /// w.add_file(FileRecord::new("b.rs", 10, 0, ContentHash::of(b"b"))?, [row], &[])?;
    /// w.finish()?;
    ///
    /// let r = SegmentReader::open(&dir, "seg-00000001", ReadMode::Mmap)?;
    /// assert_eq!(r.file_count(), 2);
    /// assert_eq!(r.file_rows(1)?, 2..3);
    /// assert_eq!(r.file_path(1)?, "b.rs");
    /// assert!(!r.is_materialized(), "nothing per file was parsed");
    /// assert_eq!(r.files()?.len(), 2);
    /// assert!(r.is_materialized());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(store: &dyn Directory, name: &str, mode: ReadMode) -> Result<SegmentReader> {
        let file = |f: &str| join_name(name, f);
        let meta_bytes = store.read_at_most(
            &file(METADATA_FILE),
            ReadMode::Heap,
            crate::document::MAX_DOCUMENT_BYTES,
        )?;
        let meta_path = meta_bytes.path();
        let (format, body) =
            document_body_versioned(meta_path, "metadata", meta_bytes.bytes(), &READABLE_FORMATS)?;
        let json = |source| StorageError::Json {
            path: meta_path.to_path_buf(),
            source,
        };
        let (dims, rows, file_count, list, spaces) = if format == 1 {
            let meta: MetaV1 = serde_json::from_slice(body).map_err(json)?;
            (
                meta.dimensions,
                meta.rows,
                meta.files.len() as u64,
                Some(meta.files),
                Vec::new(),
            )
        } else {
            let meta: MetaV2 = serde_json::from_slice(body).map_err(json)?;
            (
                meta.dimensions,
                meta.rows,
                meta.file_count,
                None,
                meta.spaces,
            )
        };
        if (format == SPACES_FORMAT_VERSION) == spaces.is_empty() {
            return Err(StorageError::corrupt(
                meta_path,
                format!("segment format {format} with {} spaces", spaces.len()),
            ));
        }
        let mut space_tables = Vec::with_capacity(spaces.len());
        for (i, s) in spaces.iter().enumerate() {
            check_space_key(&s.key).map_err(|e| StorageError::corrupt(meta_path, e))?;
            if spaces[..i].iter().any(|o| o.key == s.key) {
                return Err(StorageError::corrupt(
                    meta_path,
                    format!("space {} listed twice", s.key),
                ));
            }
            let f = file(&space_file(VECTORS_FILE, Some(&s.key)));
            space_tables.push(Table::open(store, &f, TableKind::Vectors, mode)?);
        }
        let vectors = Table::open(store, &file(VECTORS_FILE), TableKind::Vectors, mode)?;
        let chunks = Table::open(store, &file(CHUNKS_FILE), TableKind::Chunks, mode)?;
        let terms = Table::open(store, &file(TERMS_FILE), TableKind::Terms, mode)?;
        let df = DocFreqTable::open(store, &file(DF_FILE), mode)?;
        let tables = if list.is_none() {
            Some(FileTables {
                files: Table::open(store, &file(FILES_FILE), TableKind::Files, mode)?,
                paths: Table::open(store, &file(PATHS_FILE), TableKind::Paths, mode)?,
            })
        } else {
            None
        };
        let file_count = usize::try_from(file_count).map_err(|_| {
            StorageError::corrupt(meta_path, format!("{file_count} files in one segment"))
        })?;
        let reader = SegmentReader {
            dir: store.location(name),
            vectors,
            chunks,
            terms,
            df,
            tables,
            format,
            dims,
            file_count,
            list: OnceLock::new(),
            meta_len: meta_bytes.bytes().len() as u64,
            spaces,
            space_tables,
        };
        reader.check_shape(rows)?;
        if let Some(list) = list {
            // Format 1: the list is already parsed; check it once, now.
            reader.check_list(&list)?;
            let _ = reader.list.set(list);
        }
        Ok(reader)
    }

    /// Checks the tables' headers against `metadata.json` (and each other): O(1).
    fn check_shape(&self, rows: u64) -> Result<()> {
        let meta = self.dir.join(METADATA_FILE);
        if self.vectors.header().width != self.dims {
            return Err(StorageError::corrupt(
                self.vectors.path(),
                format!(
                    "{} dimensions but metadata.json says {}",
                    self.vectors.header().width,
                    self.dims
                ),
            ));
        }
        for table in [&self.vectors, &self.chunks] {
            if table.header().count != rows {
                return Err(StorageError::corrupt(
                    table.path(),
                    format!(
                        "{} rows but metadata.json says {rows}",
                        table.header().count
                    ),
                ));
            }
        }
        if self.df.documents() != rows {
            return Err(StorageError::corrupt(
                self.df.path(),
                format!(
                    "counts {} chunks but metadata.json says {rows}",
                    self.df.documents()
                ),
            ));
        }
        if bytes_as_f32(self.vectors.payload()).is_none() {
            return Err(StorageError::corrupt(
                self.vectors.path(),
                "misaligned rows",
            ));
        }
        for (meta, table) in self.spaces.iter().zip(&self.space_tables) {
            let h = table.header();
            if h.width != meta.dimensions || h.count != rows {
                return Err(StorageError::corrupt(
                    table.path(),
                    format!(
                        "{} rows of {} dimensions but metadata.json says {rows} of {}",
                        h.count, h.width, meta.dimensions
                    ),
                ));
            }
            if bytes_as_f32(table.payload()).is_none() {
                return Err(StorageError::corrupt(table.path(), "misaligned rows"));
            }
        }
        if let Some(t) = &self.tables {
            let files = t.files.header();
            if files.count != self.file_count as u64 || files.extra != rows {
                return Err(StorageError::corrupt(
                    t.files.path(),
                    format!(
                        "{} files of {} rows but {} says {} files of {rows} rows",
                        files.count,
                        files.extra,
                        meta.display(),
                        self.file_count
                    ),
                ));
            }
            if t.paths.header().extra != self.file_count as u64 {
                return Err(StorageError::corrupt(
                    t.paths.path(),
                    format!(
                        "{} paths but {} says {} files",
                        t.paths.header().extra,
                        meta.display(),
                        self.file_count
                    ),
                ));
            }
            if self.file_count == 0 && (rows != 0 || !self.terms.is_empty() || !t.paths.is_empty())
            {
                return Err(StorageError::corrupt(
                    t.files.path(),
                    "no files but rows, terms or paths",
                ));
            }
        }
        Ok(())
    }

    /// Checks a format-1 file list: files tile the rows, term ranges are in bounds.
    fn check_list(&self, files: &[SegmentFile]) -> Result<()> {
        let mut next_row = 0u64;
        for f in files {
            let terms_end = f.terms_start.checked_add(f.terms_len);
            if f.first_row != next_row
                || terms_end.is_none_or(|end| end > self.terms.header().count)
            {
                return Err(StorageError::corrupt(
                    self.dir.join(METADATA_FILE),
                    format!("row or term ranges of {} do not fit", f.record.path()),
                ));
            }
            next_row = next_row.checked_add(f.rows).ok_or_else(|| {
                StorageError::corrupt(self.dir.join(METADATA_FILE), "row count overflows")
            })?;
        }
        let rows = self.rows() as u64;
        if next_row != rows {
            return Err(StorageError::corrupt(
                self.dir.join(METADATA_FILE),
                format!("files cover {next_row} rows of {rows}"),
            ));
        }
        Ok(())
    }

    /// Fails with [`StorageError::ChangedUnderReader`] naming the first of the segment's
    /// files that shrank under its mapping since the segment was opened (see
    /// [`crate::sigbus`]): anything read from the segment since must be thrown away.
    pub fn check_intact(&self) -> Result<()> {
        for table in [&self.vectors, &self.chunks, &self.terms]
            .into_iter()
            .chain(self.tables.iter().flat_map(|t| [&t.files, &t.paths]))
            .chain(&self.space_tables)
        {
            table.check_intact()?;
        }
        self.df.check_intact()
    }

    /// The segment folder's location (its path on disk).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment format version: 2 for segments written by this build, 1 for older ones.
    pub fn format_version(&self) -> u32 {
        self.format
    }

    /// Vector dimensions.
    pub fn dims(&self) -> usize {
        self.dims as usize
    }

    /// Number of rows (chunks).
    pub fn rows(&self) -> usize {
        self.vectors.len()
    }

    /// All vectors, row-major: row `i` is `[i * dims .. (i + 1) * dims]`.
    pub fn vectors(&self) -> &[f32] {
        // Alignment and length were checked on open.
        bytes_as_f32(self.vectors.payload()).unwrap_or(&[])
    }

    /// The vector of row `row`.
    pub fn vector(&self, row: usize) -> Option<&[f32]> {
        let d = self.dims();
        self.vectors().get(row * d..(row + 1) * d)
    }

    /// The additional vector spaces of the segment (empty before format 3).
    pub fn spaces(&self) -> &[SpaceMeta] {
        &self.spaces
    }

    /// The position of space `key` in [`Self::spaces`].
    pub fn space_index(&self, key: &str) -> Option<usize> {
        self.spaces.iter().position(|s| s.key == key)
    }

    /// All vectors of additional space `space` (a position in [`Self::spaces`]), row-major.
    pub fn space_vectors(&self, space: usize) -> &[f32] {
        // Alignment and length were checked on open.
        self.space_tables
            .get(space)
            .and_then(|t| bytes_as_f32(t.payload()))
            .unwrap_or(&[])
    }

    /// The vector of row `row` in additional space `space`.
    pub fn space_vector(&self, space: usize, row: usize) -> Option<&[f32]> {
        let d = self.spaces.get(space)?.dimensions as usize;
        self.space_vectors(space).get(row * d..(row + 1) * d)
    }

    /// The chunk record of row `row`, checked against its file's row range.
    pub fn chunk(&self, row: usize) -> Result<ChunkRecord> {
        let bytes = self
            .chunks
            .record(row)
            .and_then(|b| <&[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| {
                StorageError::corrupt(self.chunks.path(), format!("no record for row {row}"))
            })?;
        let rec = ChunkRecord::decode(bytes);
        let inconsistent = || {
            StorageError::corrupt(
                self.chunks.path(),
                format!("record of row {row} is inconsistent"),
            )
        };
        if rec.file as usize >= self.file_count
            || rec.line_start == 0
            || rec.line_end < rec.line_start
            || rec.byte_end < rec.byte_start
        {
            return Err(inconsistent());
        }
        let range = self.file_rows(rec.file as usize)?;
        if !range.contains(&(row as u64)) {
            // Either file may be the damaged one: name both.
            return Err(StorageError::corrupt(
                self.chunks.path(),
                format!(
                    "record of row {row} names file {}, whose rows are {}..{} in {}",
                    rec.file,
                    range.start,
                    range.end,
                    self.files_location().display()
                ),
            ));
        }
        Ok(rec)
    }

    /// Where the file records are (`files.bin`, or `metadata.json` for format 1).
    fn files_location(&self) -> PathBuf {
        match &self.tables {
            Some(t) => t.files.path().to_path_buf(),
            None => self.dir.join(METADATA_FILE),
        }
    }

    /// Number of files in the segment (deleted or not). O(1).
    pub fn file_count(&self) -> usize {
        self.file_count
    }

    /// Whether the whole file list has been built (always, for format 1; for format 2 only
    /// after [`Self::files`] or [`Self::verify`]). Searching never builds it.
    pub fn is_materialized(&self) -> bool {
        self.list.get().is_some()
    }

    /// The row range of file `file`. O(1): reads the file's record and its neighbours' and
    /// checks that the ranges tile; an error names the damaged file.
    pub fn file_rows(&self, file: usize) -> Result<Range<u64>> {
        Ok(self.layout(file)?.rows)
    }

    /// The path of file `file`, checked (UTF-8, a normalized relative path). O(1).
    pub fn file_path(&self, file: usize) -> Result<&str> {
        match &self.tables {
            None => Ok(self.listed(file)?.record.path()),
            Some(t) => {
                let raw = self.checked_raw(t, file)?;
                self.path_of(t, file, &raw)
            }
        }
    }

    /// Everything about file `file` (its record, ranges and rows hash). O(1).
    pub fn file(&self, file: usize) -> Result<SegmentFile> {
        match &self.tables {
            None => Ok(self.listed(file)?.clone()),
            Some(t) => {
                let raw = self.checked_raw(t, file)?;
                self.segment_file(t, file, &raw)
            }
        }
    }

    /// The files of this segment, in row order. For format 2 the list is built on the first
    /// call (checking the checksums of `files.bin` and `paths.bin` and every record), then
    /// kept; searches never need it.
    pub fn files(&self) -> Result<&[SegmentFile]> {
        if let Some(list) = self.list.get() {
            return Ok(list);
        }
        let built = self.materialize()?;
        Ok(self.list.get_or_init(|| built))
    }

    /// Builds the whole list from `files.bin` and `paths.bin`: checks both payloads against
    /// their checksums (the list is what writers copy into new segments, so it must be as
    /// trustworthy as a checksummed document), then that rows, terms and paths tile their
    /// tables and every path is valid.
    fn materialize(&self) -> Result<Vec<SegmentFile>> {
        let Some(t) = &self.tables else {
            // Format 1 lists are set on open.
            return Ok(Vec::new());
        };
        t.files.verify()?;
        t.paths.verify()?;
        let mut out = Vec::with_capacity(self.file_count);
        let mut next = [0u64; 3];
        for i in 0..self.file_count {
            let raw = self.raw(t, i)?;
            let ends = raw.ends();
            if raw.starts() != next || ends.is_none_or(|e| !self.within(t, e)) {
                return Err(self.ranges_broken(t, i));
            }
            out.push(self.segment_file(t, i, &raw)?);
            next = ends.unwrap_or(next);
        }
        if next != self.totals(t) {
            return Err(StorageError::corrupt(
                t.files.path(),
                format!(
                    "files cover {} rows, {} term pairs and {} path bytes of {:?}",
                    next[0],
                    next[1],
                    next[2],
                    self.totals(t)
                ),
            ));
        }
        Ok(out)
    }

    /// File `file` of a format-1 list.
    fn listed(&self, file: usize) -> Result<&SegmentFile> {
        self.list.get().and_then(|l| l.get(file)).ok_or_else(|| {
            StorageError::corrupt(self.dir.join(METADATA_FILE), format!("no file {file}"))
        })
    }

    /// The row and term ranges and rows hash of file `file`, checked. O(1).
    fn layout(&self, file: usize) -> Result<FileLayout> {
        match &self.tables {
            None => {
                let f = self.listed(file)?;
                Ok(FileLayout {
                    rows: f.first_row..f.first_row + f.rows,
                    terms: f.terms_start..f.terms_start + f.terms_len,
                    rows_hash: f.rows_hash,
                })
            }
            Some(t) => {
                let raw = self.checked_raw(t, file)?;
                Ok(FileLayout {
                    rows: raw.first_row..raw.first_row + raw.rows,
                    terms: raw.terms_start..raw.terms_start + raw.terms_len,
                    rows_hash: ContentHash::from_bytes(raw.rows_hash),
                })
            }
        }
    }

    /// Record `file` of `files.bin`, undecoded fields unchecked except the reserved ones.
    fn raw(&self, t: &FileTables, file: usize) -> Result<RawFile> {
        let bytes = t
            .files
            .record(file)
            .and_then(|b| <&[u8; FILE_RECORD_LEN]>::try_from(b).ok())
            .ok_or_else(|| {
                StorageError::corrupt(t.files.path(), format!("no record for file {file}"))
            })?;
        let raw = RawFile::decode(bytes);
        if raw.reserved != 0 {
            return Err(StorageError::corrupt(
                t.files.path(),
                format!("reserved bytes of file {file} are not zero"),
            ));
        }
        Ok(raw)
    }

    /// Record `file`, with its row, term and path ranges checked against its neighbours'
    /// and the tables' sizes: the ranges of all files tile their tables, so a record whose
    /// ranges do not meet its neighbours' is damaged.
    fn checked_raw(&self, t: &FileTables, file: usize) -> Result<RawFile> {
        let raw = self.raw(t, file)?;
        let ends = raw.ends().ok_or_else(|| self.ranges_broken(t, file))?;
        let before = match file.checked_sub(1) {
            None => Some([0; 3]),
            Some(p) => self.raw(t, p)?.ends(),
        };
        let after = if file + 1 == self.file_count {
            self.totals(t)
        } else {
            self.raw(t, file + 1)?.starts()
        };
        if before != Some(raw.starts()) || ends != after || !self.within(t, ends) {
            return Err(self.ranges_broken(t, file));
        }
        Ok(raw)
    }

    /// Rows of the segment, term pairs and path bytes: where the last file's ranges end.
    fn totals(&self, t: &FileTables) -> [u64; 3] {
        [
            self.vectors.header().count,
            self.terms.header().count,
            t.paths.header().count,
        ]
    }

    fn within(&self, t: &FileTables, ends: [u64; 3]) -> bool {
        ends.iter()
            .zip(self.totals(t))
            .all(|(e, total)| *e <= total)
    }

    fn ranges_broken(&self, t: &FileTables, file: usize) -> StorageError {
        StorageError::corrupt(
            t.files.path(),
            format!("row, term or path ranges of file {file} do not fit"),
        )
    }

    /// The path of `raw` (already range-checked) in `paths.bin`.
    fn path_of<'s>(&'s self, t: &'s FileTables, file: usize, raw: &RawFile) -> Result<&'s str> {
        let bytes = usize::try_from(raw.path_start)
            .ok()
            .and_then(|start| {
                t.paths
                    .payload()
                    .get(start..start.checked_add(raw.path_len as usize)?)
            })
            .ok_or_else(|| {
                StorageError::corrupt(
                    t.files.path(),
                    format!("path of file {file} is out of bounds"),
                )
            })?;
        let path = std::str::from_utf8(bytes).map_err(|_| {
            StorageError::corrupt(t.paths.path(), format!("path of file {file} is not UTF-8"))
        })?;
        check_path(path).map_err(|e| {
            StorageError::corrupt(t.paths.path(), format!("path of file {file}: {e}"))
        })?;
        Ok(path)
    }

    /// The whole entry of `raw` (already range-checked).
    fn segment_file(&self, t: &FileTables, file: usize, raw: &RawFile) -> Result<SegmentFile> {
        let path = self.path_of(t, file, raw)?;
        let record = FileRecord::new(
            path,
            raw.size,
            raw.mtime_ns,
            ContentHash::from_bytes(raw.hash),
        )
        .map_err(|e| StorageError::corrupt(t.paths.path(), e.to_string()))?;
        Ok(SegmentFile {
            record,
            first_row: raw.first_row,
            rows: raw.rows,
            terms_start: raw.terms_start,
            terms_len: raw.terms_len,
            rows_hash: ContentHash::from_bytes(raw.rows_hash),
        })
    }

    /// Checks the rows of file `file` (vectors and chunk records) against the file's
    /// `rows_hash`, reading only those rows.
    pub fn verify_file_rows(&self, file: usize) -> Result<()> {
        let layout = self.layout(file)?;
        let out_of_bounds = || StorageError::corrupt(self.vectors.path(), "rows out of bounds");
        let first = usize::try_from(layout.rows.start).map_err(|_| out_of_bounds())?;
        let end = usize::try_from(layout.rows.end).map_err(|_| out_of_bounds())?;
        let width = self.dims() * 4;
        let vectors = self.vectors.payload().get(first * width..end * width);
        let chunks = self.chunks.payload().get(first * 64..end * 64);
        let (Some(vectors), Some(chunks)) = (vectors, chunks) else {
            return Err(out_of_bounds());
        };
        let mut vh = blake3::Hasher::new();
        vh.update(vectors);
        let mut ch = blake3::Hasher::new();
        ch.update(chunks);
        let mut space_hashes = Vec::with_capacity(self.spaces.len());
        for (meta, table) in self.spaces.iter().zip(&self.space_tables) {
            let width = meta.dimensions as usize * 4;
            let bytes = table
                .payload()
                .get(first * width..end * width)
                .ok_or_else(out_of_bounds)?;
            let mut h = blake3::Hasher::new();
            h.update(bytes);
            space_hashes.push(h);
        }
        if rows_hash(vh, ch, space_hashes) != layout.rows_hash {
            // Name the table whose checksum fails too, if one does (reads it whole, but only
            // on this error path).
            for table in [&self.vectors, &self.chunks]
                .into_iter()
                .chain(&self.space_tables)
            {
                table.verify()?;
            }
            return Err(StorageError::PayloadChecksum {
                path: self.vectors.path().to_path_buf(),
            });
        }
        Ok(())
    }

    /// The (term, chunk count) pairs of file `file`.
    pub fn file_terms(&self, file: usize) -> Result<Vec<(u32, u32)>> {
        self.layout(file)?
            .terms
            .map(|i| {
                let rec = usize::try_from(i)
                    .ok()
                    .and_then(|i| self.terms.record(i))
                    .ok_or_else(|| {
                        StorageError::corrupt(self.terms.path(), "term range out of bounds")
                    })?;
                let term = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
                let count = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
                Ok((term, count))
            })
            .collect()
    }

    /// Chunks of this segment (deleted or not) containing `term`.
    pub fn doc_freq(&self, term: u32) -> u64 {
        self.df.frequency(term)
    }

    /// Checks every table's payload against its checksum, then every file record.
    pub fn verify(&self) -> Result<()> {
        self.vectors.verify()?;
        self.chunks.verify()?;
        self.terms.verify()?;
        self.df.verify()?;
        if let Some(t) = &self.tables {
            t.files.verify()?;
            t.paths.verify()?;
        }
        for t in &self.space_tables {
            t.verify()?;
        }
        self.files().map(|_| ())
    }

    /// Whether the vectors are memory-mapped.
    pub fn is_mapped(&self) -> bool {
        self.vectors.is_mapped()
    }

    /// Bytes of the segment's files (which never change once written).
    pub fn bytes_on_disk(&self) -> u64 {
        self.vectors.file_len()
            + self.chunks.file_len()
            + self.terms.file_len()
            + self.df.file_len()
            + self
                .tables
                .as_ref()
                .map_or(0, |t| t.files.file_len() + t.paths.file_len())
            + self.meta_len
            + self.space_tables.iter().map(Table::file_len).sum::<u64>()
    }
}

/// The per-file rows hash: BLAKE3 over the digests of the vectors, the chunk records and
/// then the vectors of each additional space, in the segment's space order.
fn rows_hash(
    vectors: blake3::Hasher,
    chunks: blake3::Hasher,
    spaces: Vec<blake3::Hasher>,
) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(vectors.finalize().as_bytes());
    h.update(chunks.finalize().as_bytes());
    for s in spaces {
        h.update(s.finalize().as_bytes());
    }
    ContentHash::from_bytes(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::directory::{FsDirectory, MemDirectory};
    use crate::header::HEADER_LEN;

    const SEG: &str = "seg-00000001";

    /// A file's (term, count) pairs.
    type Terms = &'static [(u32, u32)];

    fn record(path: &str, size: u64) -> FileRecord {
        FileRecord::new(path, size, -7, ContentHash::of(path.as_bytes())).expect("record")
    }

    /// A segment of 5 files (one empty, one with a non-ASCII path), 2 dimensions.
    fn write(dir: &dyn Directory) {
        static V: [f32; 2] = [0.6, 0.8];
        let row = |i: u32| NewRow {
            line_start: i + 1,
            line_end: i + 2,
            byte_start: u64::from(i),
            byte_end: u64::from(i) + 1,
            hash: ContentHash::of(&[i as u8]),
            vector: &V,
        };
        let mut w = SegmentWriter::create(dir, SEG, 2).expect("create");
        let files: [(&str, u32, Terms); 5] = [
            ("a/one.rs", 2, &[(1, 2), (3, 1)]),
            ("a/twö.rs", 1, &[(2, 1)]),
            ("empty.txt", 0, &[]),
            ("ab/c.rs", 3, &[(1, 3)]),
            ("z.py", 1, &[(9, 1)]),
        ];
        for (path, rows, terms) in files {
            w.add_file(
                record(path, u64::from(rows) * 10),
                (0..rows).map(row),
                terms,
            )
            .expect("add");
        }
        let summary = w.finish().expect("finish");
        assert_eq!((summary.files, summary.rows), (5, 7));
    }

    fn open(dir: &dyn Directory) -> Result<SegmentReader> {
        SegmentReader::open(dir, SEG, ReadMode::Mmap)
    }

    fn name(file: &str) -> String {
        join_name(SEG, file)
    }

    /// Rewrites table `file` of the segment with `edit` applied to its payload and a valid
    /// header, so only the checks of the records themselves can catch the damage.
    fn rewrite(dir: &dyn Directory, file: &str, kind: TableKind, edit: impl FnOnce(&mut Vec<u8>)) {
        let t = Table::open(dir, &name(file), kind, ReadMode::Heap).expect("open");
        let extra = t.header().extra;
        let mut payload = t.payload().to_vec();
        drop(t);
        edit(&mut payload);
        dir.remove(&name(file)).expect("remove");
        let mut w = TableWriter::create(dir, &name(file), kind, 0).expect("create");
        w.push_records(&payload).expect("push");
        w.finish(extra).expect("finish");
    }

    /// Calls every accessor on every file and row; returns the errors (none may panic).
    fn exercise(r: &SegmentReader) -> Vec<StorageError> {
        let mut errors = Vec::new();
        for i in 0..r.file_count() + 1 {
            errors.extend(r.file_rows(i).err());
            errors.extend(r.file_path(i).err());
            errors.extend(r.file(i).err());
            errors.extend(r.file_terms(i).err());
            errors.extend(r.verify_file_rows(i).err());
        }
        for row in 0..r.rows() + 1 {
            errors.extend(r.chunk(row).err());
        }
        errors.extend(r.files().err());
        errors
    }

    fn names(err: &StorageError, dir: &dyn Directory, file: &str) -> bool {
        err.to_string()
            .contains(&*dir.location(&name(file)).to_string_lossy())
    }

    #[test]
    fn file_records_round_trip_without_materializing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fs = FsDirectory::new(tmp.path());
        let mem = MemDirectory::new();
        for dir in [&fs as &dyn Directory, &mem] {
            write(dir);
            for mode in [ReadMode::Mmap, ReadMode::Heap] {
                let r = SegmentReader::open(dir, SEG, mode).expect("open");
                assert_eq!(r.format_version(), SEGMENT_FORMAT_VERSION);
                assert_eq!(r.file_count(), 5);
                assert_eq!(r.file_path(1).expect("path"), "a/twö.rs");
                assert_eq!(r.file_rows(3).expect("rows"), 3..6);
                assert_eq!(r.file_rows(2).expect("rows"), 3..3);
                assert_eq!(r.file(4).expect("file").record, record("z.py", 10));
                assert_eq!(r.file_terms(0).expect("terms"), [(1, 2), (3, 1)]);
                assert_eq!(r.chunk(6).expect("chunk").file, 4);
                assert!(r.file_path(5).is_err());
                assert!(!r.is_materialized());
                let files = r.files().expect("files").to_vec();
                assert!(r.is_materialized());
                assert_eq!(files.len(), 5);
                for (i, f) in files.iter().enumerate() {
                    assert_eq!(r.file(i).expect("file"), *f);
                    assert_eq!(r.file_path(i).expect("path"), f.record.path());
                    r.verify_file_rows(i).expect("rows intact");
                }
                assert_eq!(files[1].record.mtime_ns(), -7);
                r.verify().expect("intact");
                assert!(exercise(&r).len() >= 5, "only file 5 and row 7 are missing");
            }
        }
    }

    #[test]
    fn an_empty_segment_opens() {
        let dir = MemDirectory::new();
        SegmentWriter::create(&dir, SEG, 3)
            .expect("create")
            .finish()
            .expect("finish");
        let r = open(&dir).expect("open");
        assert_eq!((r.file_count(), r.rows()), (0, 0));
        assert!(r.files().expect("files").is_empty());
        r.verify().expect("intact");
    }

    #[test]
    fn a_path_out_of_bounds_is_an_error_naming_files_bin() {
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, FILES_FILE, TableKind::Files, |p| {
            // File 4's path starts 1000 bytes later.
            let at = 4 * FILE_RECORD_LEN + 32;
            p[at..at + 8].copy_from_slice(&1000u64.to_le_bytes());
        });
        let r = open(&dir).expect("open checks no record");
        r.file_path(2).expect("file 2 is intact");
        assert!(
            r.file_path(3).is_err(),
            "file 3's path no longer meets file 4's"
        );
        for err in [
            r.file_path(4).expect_err("offset"),
            r.file(4).expect_err("offset"),
            r.files().expect_err("offset"),
            r.verify().expect_err("offset"),
        ] {
            assert!(err.is_damage());
            assert!(names(&err, &dir, FILES_FILE), "{err}");
        }
        assert!(!exercise(&r).is_empty());
    }

    #[test]
    fn a_path_that_is_not_utf8_or_not_relative_is_an_error_naming_paths_bin() {
        for (edit, what) in [(&b"\xff"[..], "not UTF-8"), (&b"../"[..], "climbs out")] {
            let dir = MemDirectory::new();
            write(&dir);
            rewrite(&dir, PATHS_FILE, TableKind::Paths, |p| {
                // "ab/c.rs" is file 3's path.
                let at = p.windows(7).position(|w| w == b"ab/c.rs").expect("path");
                p[at..at + edit.len()].copy_from_slice(edit);
            });
            let r = open(&dir).expect("open checks no path");
            r.file_path(2).expect("file 2 is intact");
            for err in [
                r.file_path(3).expect_err(what),
                r.file(3).expect_err(what),
                r.files().expect_err(what),
                r.verify().expect_err(what),
            ] {
                assert!(err.is_damage());
                assert!(names(&err, &dir, PATHS_FILE), "{what}: {err}");
            }
        }
    }

    #[test]
    fn broken_row_ranges_are_errors_not_panics() {
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, FILES_FILE, TableKind::Files, |p| {
            // File 3's rows: 3 → u64::MAX - 1 (would overflow and run past the segment).
            let at = 3 * FILE_RECORD_LEN + 8;
            p[at..at + 8].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
        });
        let r = open(&dir).expect("open");
        let err = r.file_rows(3).expect_err("rows");
        assert!(names(&err, &dir, FILES_FILE), "{err}");
        // Its neighbour no longer meets it either.
        assert!(r.file_rows(4).is_err());
        let err = r.chunk(4).expect_err("row 4 is file 3's");
        assert!(names(&err, &dir, FILES_FILE), "{err}");
        assert!(r.files().is_err());
        r.file_rows(0).expect("file 0 is intact");
    }

    #[test]
    fn reserved_bytes_must_be_zero() {
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, FILES_FILE, TableKind::Files, |p| {
            p[FILE_RECORD_LEN + 44] = 1;
        });
        let r = open(&dir).expect("open");
        let err = r.file_path(1).expect_err("reserved");
        assert!(names(&err, &dir, FILES_FILE), "{err}");
    }

    #[test]
    fn every_damaged_record_byte_is_an_error_or_harmless_never_a_panic() {
        let dir = MemDirectory::new();
        write(&dir);
        let pristine = open(&dir).expect("open").files().expect("files").to_vec();
        let len = 5 * FILE_RECORD_LEN;
        for at in 0..len {
            let dir = MemDirectory::new();
            write(&dir);
            rewrite(&dir, FILES_FILE, TableKind::Files, |p| p[at] ^= 0x10);
            let r = open(&dir).expect("open");
            for err in exercise(&r) {
                assert!(err.is_damage(), "byte {at}: {err}");
            }
            let field = at % FILE_RECORD_LEN;
            match r.files() {
                // Sizes, times and hashes are not checked against anything here.
                Ok(files) => assert!(
                    field >= 48 && files != pristine.as_slice(),
                    "byte {at} (field offset {field}) went unnoticed"
                ),
                Err(e) => assert!(names(&e, &dir, FILES_FILE) || names(&e, &dir, PATHS_FILE)),
            }
        }
        // A flip under an intact header is what verify's payload checksum catches.
        let dir = MemDirectory::new();
        write(&dir);
        let mut bytes = dir
            .read(&name(FILES_FILE), ReadMode::Heap)
            .expect("read")
            .bytes()
            .to_vec();
        bytes[HEADER_LEN + 3] ^= 1;
        dir.remove(&name(FILES_FILE)).expect("remove");
        dir.write_new(&name(FILES_FILE), &bytes).expect("write");
        let r = open(&dir).expect("open");
        let err = r.verify().expect_err("checksum");
        assert!(matches!(err, StorageError::PayloadChecksum { .. }), "{err}");
        // So does building the list that writers copy from: damage is never carried forward.
        let err = r.files().expect_err("checksum");
        assert!(matches!(err, StorageError::PayloadChecksum { .. }), "{err}");
        assert!(names(&err, &dir, FILES_FILE), "{err}");
    }

    #[test]
    fn truncated_or_missing_file_tables_fail_to_open_naming_the_file() {
        for file in [FILES_FILE, PATHS_FILE] {
            let kind = if file == FILES_FILE {
                TableKind::Files
            } else {
                TableKind::Paths
            };
            // Cut under a valid header: one record fewer than the metadata says.
            let dir = MemDirectory::new();
            write(&dir);
            rewrite(&dir, file, kind, |p| {
                p.truncate(p.len() - kind.record_len(0) as usize)
            });
            let r = open(&dir);
            if file == FILES_FILE {
                let err = r.expect_err("one file short");
                assert!(names(&err, &dir, file), "{err}");
            } else {
                // The last path is one byte short: its file's range runs past the table.
                let r = r.expect("open");
                let err = r.file_path(4).expect_err("short path");
                assert!(names(&err, &dir, FILES_FILE), "{err}");
            }
            // Cut bytes off the file itself.
            let dir = MemDirectory::new();
            write(&dir);
            let bytes = dir
                .read(&name(file), ReadMode::Heap)
                .expect("read")
                .bytes()
                .to_vec();
            dir.remove(&name(file)).expect("remove");
            dir.write_new(&name(file), &bytes[..bytes.len() - 1])
                .expect("write");
            let err = open(&dir).expect_err("truncated");
            assert!(names(&err, &dir, file), "{err}");
            dir.remove(&name(file)).expect("remove");
            let err = open(&dir).expect_err("missing");
            assert!(err.is_missing() && names(&err, &dir, file), "{err}");
        }
    }

    #[test]
    fn format_1_segments_with_the_list_in_metadata_json_still_open() {
        let dir = MemDirectory::new();
        write(&dir);
        let files = open(&dir).expect("open").files().expect("files").to_vec();
        // Turn the segment into format 1: the list in metadata.json, no file tables.
        for f in [FILES_FILE, PATHS_FILE, METADATA_FILE] {
            dir.remove(&name(f)).expect("remove");
        }
        let meta = MetaV1 {
            dimensions: 2,
            rows: 7,
            files: files.clone(),
        };
        let path = dir.location(&name(METADATA_FILE));
        let doc = encode_document_version(&path, "metadata", 1, &meta).expect("encode");
        dir.write_new(&name(METADATA_FILE), &doc).expect("write");
        let r = open(&dir).expect("format 1 opens");
        assert_eq!(r.format_version(), 1);
        assert!(r.is_materialized(), "format 1 is parsed on open");
        assert_eq!(r.files().expect("files"), files.as_slice());
        assert_eq!(r.file_path(1).expect("path"), "a/twö.rs");
        assert_eq!(r.file_rows(3).expect("rows"), 3..6);
        assert_eq!(r.chunk(6).expect("chunk").file, 4);
        assert!(r.file_path(5).is_err());
        r.verify().expect("intact");
        // A format this build does not know is refused, naming the file.
        dir.remove(&name(METADATA_FILE)).expect("remove");
        let doc = encode_document_version(&path, "metadata", 4, &meta).expect("encode");
        dir.write_new(&name(METADATA_FILE), &doc).expect("write");
        let err = open(&dir).expect_err("format 4");
        assert!(matches!(
            err,
            StorageError::UnsupportedVersion {
                found: 4,
                supported: 3,
                ..
            }
        ));
    }
}
