//! Segments: an immutable folder of rows (vectors, chunk records, per-file term counts) and
//! the metadata of the files they came from.
//!
//! ```text
//! seg-00000007/
//!   vectors.bin    rows of f32, one per chunk              (table, memory-mapped)
//!   chunks.bin     one 64-byte record per chunk            (table, memory-mapped)
//!   terms.bin      (term, chunk count) pairs of each file  (table, read by writers only)
//!   df.bin         chunks of the segment containing each term (table, for query weights)
//!   metadata.json  the files, each with its row range     (document)
//! ```
//! A file's chunks occupy consecutive rows, so a filter on files is a set of row ranges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use turboprop_types::{ContentHash, FileRecord};

use crate::directory::{join_name, Directory};
use crate::document::{encode_document, read_document_sized};
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
/// File metadata.
pub const METADATA_FILE: &str = "metadata.json";

const ALL_FILES: [&str; 5] = [
    VECTORS_FILE,
    CHUNKS_FILE,
    TERMS_FILE,
    DF_FILE,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SegmentMeta {
    dimensions: u32,
    rows: u64,
    files: Vec<SegmentFile>,
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
    df: BTreeMap<u32, u32>,
    files: Vec<SegmentFile>,
}

impl<'a> SegmentWriter<'a> {
    /// Creates the segment folder `name` in `store` (it must not exist) for vectors of
    /// `dims`.
    pub fn create(store: &'a dyn Directory, name: &str, dims: u32) -> Result<SegmentWriter<'a>> {
        let dir = store.location(name);
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
            df: BTreeMap::new(),
            files: Vec::new(),
        })
    }

    /// Appends one file with its chunks and its (term, chunk count) pairs, sorted by term.
    pub fn add_file<'r>(
        &mut self,
        record: FileRecord,
        rows: impl IntoIterator<Item = NewRow<'r>>,
        terms: &[(u32, u32)],
    ) -> Result<()> {
        let file_idx = u32::try_from(self.files.len())
            .map_err(|_| StorageError::corrupt(&self.dir, "more than 2^32 files in a segment"))?;
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
        self.files.push(SegmentFile {
            record,
            first_row,
            rows: self.vectors.count() - first_row,
            terms_start,
            terms_len: self.terms.count() - terms_start,
            rows_hash: rows_hash(vectors_hash, chunks_hash),
        });
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
            df,
            files,
        } = self;
        let rows = vectors.count();
        vectors.finish(0)?;
        chunks.finish(0)?;
        terms.finish(0)?;
        write_doc_freq(store, &join_name(&name, DF_FILE), rows, &df)?;
        let meta = SegmentMeta {
            dimensions: dims,
            rows,
            files,
        };
        let meta_name = join_name(&name, METADATA_FILE);
        let meta_path = store.location(&meta_name);
        crate::failpoint::check("segment:metadata", &meta_path)?;
        store.write_new(&meta_name, &encode_document(&meta_path, "metadata", &meta)?)?;
        crate::failpoint::check("segment:sync", &dir)?;
        store.sync_dir(&name)?;
        let mut bytes = 0;
        for file in ALL_FILES {
            bytes += store.file_len(&join_name(&name, file))?;
        }
        Ok(SegmentSummary {
            name,
            rows,
            files: meta.files.len() as u64,
            bytes,
        })
    }
}

/// An open segment: headers, sizes and metadata checked; vectors and records mapped.
#[derive(Debug)]
pub struct SegmentReader {
    /// The folder's location, for errors.
    dir: PathBuf,
    vectors: Table,
    chunks: Table,
    terms: Table,
    df: DocFreqTable,
    meta: SegmentMeta,
    meta_len: u64,
}

impl SegmentReader {
    /// Opens the segment folder `name` of `store`, checking every header, size and the
    /// metadata's checksum and consistency. Payload checksums of the tables are checked by
    /// [`Self::verify`].
    pub fn open(store: &dyn Directory, name: &str, mode: ReadMode) -> Result<SegmentReader> {
        let file = |f: &str| join_name(name, f);
        let (meta, meta_len): (SegmentMeta, u64) =
            read_document_sized(store, &file(METADATA_FILE), "metadata")?;
        let vectors = Table::open(store, &file(VECTORS_FILE), TableKind::Vectors, mode)?;
        let chunks = Table::open(store, &file(CHUNKS_FILE), TableKind::Chunks, mode)?;
        let terms = Table::open(store, &file(TERMS_FILE), TableKind::Terms, mode)?;
        let df = DocFreqTable::open(store, &file(DF_FILE), mode)?;
        let reader = SegmentReader {
            dir: store.location(name),
            vectors,
            chunks,
            terms,
            df,
            meta,
            meta_len,
        };
        reader.check_consistency()?;
        Ok(reader)
    }

    fn check_consistency(&self) -> Result<()> {
        let rows = self.meta.rows;
        if self.vectors.header().width != self.meta.dimensions {
            return Err(StorageError::corrupt(
                self.vectors.path(),
                format!(
                    "{} dimensions but metadata.json says {}",
                    self.vectors.header().width,
                    self.meta.dimensions
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
        let mut next_row = 0;
        for f in &self.meta.files {
            let terms_end = f.terms_start.checked_add(f.terms_len);
            if f.first_row != next_row
                || terms_end.is_none_or(|end| end > self.terms.header().count)
            {
                return Err(StorageError::corrupt(
                    self.dir.join(METADATA_FILE),
                    format!("row or term ranges of {} do not fit", f.record.path()),
                ));
            }
            next_row += f.rows;
        }
        if next_row != rows {
            return Err(StorageError::corrupt(
                self.dir.join(METADATA_FILE),
                format!("files cover {next_row} rows of {rows}"),
            ));
        }
        Ok(())
    }

    /// The segment folder's location (its path on disk).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Vector dimensions.
    pub fn dims(&self) -> usize {
        self.meta.dimensions as usize
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

    /// The chunk record of row `row`, checked against the segment's files.
    pub fn chunk(&self, row: usize) -> Result<ChunkRecord> {
        let bytes = self
            .chunks
            .record(row)
            .and_then(|b| <&[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| {
                StorageError::corrupt(self.chunks.path(), format!("no record for row {row}"))
            })?;
        let rec = ChunkRecord::decode(bytes);
        let file = self.meta.files.get(rec.file as usize);
        let row = row as u64;
        let fits = file.is_some_and(|f| row >= f.first_row && row < f.first_row + f.rows);
        if !fits
            || rec.line_start == 0
            || rec.line_end < rec.line_start
            || rec.byte_end < rec.byte_start
        {
            return Err(StorageError::corrupt(
                self.chunks.path(),
                format!("record of row {row} is inconsistent"),
            ));
        }
        Ok(rec)
    }

    /// The files of this segment, in row order.
    pub fn files(&self) -> &[SegmentFile] {
        &self.meta.files
    }

    /// Checks the rows of file `file` (vectors and chunk records) against the file's
    /// `rows_hash`, reading only those rows.
    pub fn verify_file_rows(&self, file: usize) -> Result<()> {
        let f = self.meta.files.get(file).ok_or_else(|| {
            StorageError::corrupt(self.dir.join(METADATA_FILE), format!("no file {file}"))
        })?;
        let (first, n) = (f.first_row as usize, f.rows as usize);
        let width = self.dims() * 4;
        let vectors = self
            .vectors
            .payload()
            .get(first * width..(first + n) * width);
        let chunks = self.chunks.payload().get(first * 64..(first + n) * 64);
        let (Some(vectors), Some(chunks)) = (vectors, chunks) else {
            return Err(StorageError::corrupt(
                self.vectors.path(),
                "rows out of bounds",
            ));
        };
        let mut vh = blake3::Hasher::new();
        vh.update(vectors);
        let mut ch = blake3::Hasher::new();
        ch.update(chunks);
        if rows_hash(vh, ch) != f.rows_hash {
            return Err(StorageError::PayloadChecksum {
                path: self.vectors.path().to_path_buf(),
            });
        }
        Ok(())
    }

    /// The (term, chunk count) pairs of file `file`.
    pub fn file_terms(&self, file: usize) -> Result<Vec<(u32, u32)>> {
        let f = self.meta.files.get(file).ok_or_else(|| {
            StorageError::corrupt(self.dir.join(METADATA_FILE), format!("no file {file}"))
        })?;
        (f.terms_start..f.terms_start + f.terms_len)
            .map(|i| {
                let rec = self.terms.record(i as usize).ok_or_else(|| {
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

    /// Checks every table's payload against its checksum.
    pub fn verify(&self) -> Result<()> {
        self.vectors.verify()?;
        self.chunks.verify()?;
        self.terms.verify()?;
        self.df.verify()
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
            + self.meta_len
    }
}

/// The per-file rows hash: BLAKE3 over the digests of the vectors and the chunk records.
fn rows_hash(vectors: blake3::Hasher, chunks: blake3::Hasher) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(vectors.finalize().as_bytes());
    h.update(chunks.finalize().as_bytes());
    ContentHash::from_bytes(*h.finalize().as_bytes())
}
