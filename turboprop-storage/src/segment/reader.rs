//! [`SegmentReader`]: opens a segment (headers, sizes and `metadata.json` checked), reads
//! vectors, chunk records and file records in place with O(1) checked accessors, and verifies
//! checksums and per-file rows hashes.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use turboprop_types::{check_path, ContentHash, FileRecord};

use super::lexical::LexicalPostings;
use super::records::{rows_hash, ChunkRecord, MetaV2, RawFile, SegmentFile, FILE_RECORD_LEN};
use super::symbols::{hash_row, SymbolTables};
use super::v1::MetaV1;
use super::{
    check_space_key, space_file, SpaceMeta, CHUNKS_FILE, DF_FILE, FILES_FILE,
    LEXICAL_FORMAT_VERSION, METADATA_FILE, PATHS_FILE, READABLE_FORMATS, SPACES_FORMAT_VERSION,
    SYMBOLS_FORMAT_VERSION, TERMS_FILE, VECTORS_FILE,
};
use crate::directory::{join_name, Directory};
use crate::document::document_body_versioned;
use crate::error::{Result, StorageError};
use crate::mmap::{bytes_as_f32, ReadMode};
use crate::table::{Table, TableKind};
use crate::termstats::DocFreqTable;

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
    pub(super) dir: PathBuf,
    vectors: Table,
    chunks: Table,
    pub(super) terms: Table,
    df: DocFreqTable,
    /// `files.bin` and `paths.bin` (format 2); `None` for format 1.
    tables: Option<FileTables>,
    /// Segment format version (from `metadata.json`).
    format: u32,
    dims: u32,
    file_count: usize,
    /// The whole file list: parsed on open for format 1, built on demand for format 2.
    pub(super) list: OnceLock<Vec<SegmentFile>>,
    meta_len: u64,
    /// Additional vector spaces (format 3) and their tables.
    spaces: Vec<SpaceMeta>,
    space_tables: Vec<Table>,
    /// `symbols.bin` and `symtext.bin` (format 4); `None` before.
    symbols: Option<SymbolTables>,
    /// The exact lexical space (format 5); `None` before.
    lexical: Option<LexicalPostings>,
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
    ///                    hash: ContentHash::of(b"x"), vector: &[0.6, 0.8],
    ///                    symbol: Some("Table::deal"), kind: Some("method"),
    ///                    lexical: None };
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
    /// assert_eq!(r.chunk_symbol(2)?, (Some("Table::deal"), Some("method")));
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
        let (dims, rows, file_count, list, spaces, lexical) = if format == 1 {
            let meta: MetaV1 = serde_json::from_slice(body).map_err(json)?;
            (
                meta.dimensions,
                meta.rows,
                meta.files.len() as u64,
                Some(meta.files),
                Vec::new(),
                None,
            )
        } else {
            let meta: MetaV2 = serde_json::from_slice(body).map_err(json)?;
            (
                meta.dimensions,
                meta.rows,
                meta.file_count,
                None,
                meta.spaces,
                meta.lexical,
            )
        };
        let spaces_fit = match format {
            SPACES_FORMAT_VERSION => !spaces.is_empty(),
            SYMBOLS_FORMAT_VERSION | LEXICAL_FORMAT_VERSION => true,
            _ => spaces.is_empty(),
        };
        if (format == LEXICAL_FORMAT_VERSION) != lexical.is_some() {
            return Err(StorageError::corrupt(
                meta_path,
                format!(
                    "segment format {format} {} a lexical space",
                    if lexical.is_some() { "with" } else { "without" }
                ),
            ));
        }
        if !spaces_fit {
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
        let symbols = if format >= SYMBOLS_FORMAT_VERSION {
            Some(SymbolTables::open(store, name, mode)?)
        } else {
            None
        };
        let lexical = lexical
            .map(|meta| LexicalPostings::open(store, name, mode, rows, meta, meta_path))
            .transpose()?;
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
            symbols,
            lexical,
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
        if let Some(symbols) = &self.symbols {
            symbols.check_shape(rows)?;
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

    /// Fails with [`StorageError::ChangedUnderReader`] naming the first of the segment's
    /// files that shrank under its mapping since the segment was opened (see
    /// [`crate::sigbus`]): anything read from the segment since must be thrown away.
    pub fn check_intact(&self) -> Result<()> {
        for table in [&self.vectors, &self.chunks, &self.terms]
            .into_iter()
            .chain(self.tables.iter().flat_map(|t| [&t.files, &t.paths]))
            .chain(&self.space_tables)
            .chain(self.symbols.iter().flat_map(SymbolTables::tables))
            .chain(self.lexical.iter().flat_map(LexicalPostings::tables))
        {
            table.check_intact()?;
        }
        self.df.check_intact()
    }

    /// The segment folder's location (its path on disk).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment format version: 4 for segments written by this build, or 5 with an exact
    /// lexical space; 1 to 3 for older ones.
    pub fn format_version(&self) -> u32 {
        self.format
    }

    /// The exact lexical space of a format-5 segment (see [`LexicalPostings`]); `None` for
    /// the other formats.
    pub fn lexical(&self) -> Option<&LexicalPostings> {
        self.lexical.as_ref()
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

    /// The symbol (`Table::deal`) and kind (`method`) of row `row`, each `None` where the
    /// chunk has none and always both for segments of a format before 4. O(1): reads the
    /// row's record of `symbols.bin` and its text, checked (an error names `symbols.bin`).
    pub fn chunk_symbol(&self, row: usize) -> Result<(Option<&str>, Option<&str>)> {
        match &self.symbols {
            Some(symbols) => symbols.get(row),
            None if row < self.rows() => Ok((None, None)),
            None => Err(StorageError::corrupt(
                self.chunks.path(),
                format!("no record for row {row}"),
            )),
        }
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

    /// Checks the rows of file `file` (vectors and chunk records, and the other spaces,
    /// symbols and exact terms they carry) against the file's `rows_hash`, reading only those
    /// rows; in format 5 the segment's postings are inverted, every record checked, on the
    /// first call and kept (see [`LexicalPostings::forward`]).
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
        let symbols_hash = match &self.symbols {
            None => None,
            Some(symbols) => {
                let mut h = blake3::Hasher::new();
                for row in first..end {
                    let (symbol, kind) = symbols.get(row)?;
                    hash_row(&mut h, symbol, kind);
                }
                Some(h)
            }
        };
        let mut lexical_hash = self.lexical.as_ref().map(|_| blake3::Hasher::new());
        if let (Some(lexical), Some(h)) = (&self.lexical, &mut lexical_hash) {
            lexical.hash_rows(first..end, h)?;
        }
        if rows_hash(vh, ch, space_hashes, symbols_hash, lexical_hash) != layout.rows_hash {
            // Name the table whose checksum fails too, if one does (reads it whole, but only
            // on this error path).
            for table in [&self.vectors, &self.chunks]
                .into_iter()
                .chain(&self.space_tables)
                .chain(self.symbols.iter().flat_map(SymbolTables::tables))
                .chain(self.lexical.iter().flat_map(LexicalPostings::tables))
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
        for t in self
            .space_tables
            .iter()
            .chain(self.symbols.iter().flat_map(SymbolTables::tables))
        {
            t.verify()?;
        }
        if let Some(lexical) = &self.lexical {
            lexical.verify()?;
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
            + self
                .space_tables
                .iter()
                .chain(self.symbols.iter().flat_map(SymbolTables::tables))
                .chain(self.lexical.iter().flat_map(LexicalPostings::tables))
                .map(|t| t.file_len())
                .sum::<u64>()
    }
}
