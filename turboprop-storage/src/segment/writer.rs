//! [`SegmentWriter`]: writes a new segment folder file by file, then its `metadata.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use turboprop_types::{ContentHash, FileRecord};

use super::lexical::{self, LexicalRow, LexicalWriter};
use super::records::{rows_hash, ChunkRecord, MetaV2, RawFile};
use super::symbols::{check_row, SymbolWriter};
use super::{
    check_space_key, space_file, SpaceMeta, ALL_FILES, CHUNKS_FILE, DF_FILE, FILES_FILE,
    LEXICAL_FILES, LEXICAL_FORMAT_VERSION, LEXICON_FILE, METADATA_FILE, PATHS_FILE,
    SEGMENT_FORMAT_VERSION, SPACES_FORMAT_VERSION, SYMBOLS_FORMAT_VERSION, SYMBOL_FILES,
    TERMS_FILE, VECTORS_FILE,
};
use crate::directory::{join_name, Directory};
use crate::document::encode_document_version;
use crate::error::{Result, StorageError};
use crate::mmap::f32_as_bytes;
use crate::table::{TableKind, TableWriter};
use crate::termstats::write_doc_freq;

/// A chunk to be written: its location, digest, vector, the symbol it defines and (format 5)
/// its exact lexical terms.
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
    /// The symbol the chunk defines (`Table::deal`): 1 to 1,024 bytes, or `None`.
    pub symbol: Option<&'a str>,
    /// The symbol's kind (`method`): 1 to 32 characters of `a-z`, `0-9`, `_` and `-`, or
    /// `None`.
    pub kind: Option<&'a str>,
    /// The row's exact lexical terms, for a segment with a lexical space (format 5); `None`
    /// otherwise.
    pub lexical: Option<LexicalRow<'a>>,
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
    /// `symbols.bin` and `symtext.bin` (format 4); `None` only for the tests' segments of
    /// the formats before it.
    symbols: Option<SymbolWriter<'a>>,
    /// The lexical space's tables (format 5); `None` for the other formats.
    lexical: Option<LexicalWriter<'a>>,
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
        Self::create_in_format(store, name, dims, spaces, true, false)
    }

    /// Creates the segment folder `name` of segment format 5: like
    /// [`Self::create_with_spaces`], plus an exact lexical space. Every row added must carry
    /// its [`NewRow::lexical`] terms; a row without them is refused (and the other
    /// constructors refuse rows with them). See [`crate::LexicalPostings`] for an example.
    pub fn create_lexical(
        store: &'a dyn Directory,
        name: &str,
        dims: u32,
        spaces: &[SpaceMeta],
    ) -> Result<SegmentWriter<'a>> {
        Self::create_in_format(store, name, dims, spaces, true, true)
    }

    /// A writer of the formats before 4 (2, or 3 with `spaces`): no symbols, and the rows
    /// hash as it was. For tests that old segments still open and verify.
    #[cfg(test)]
    pub(super) fn create_without_symbols(
        store: &'a dyn Directory,
        name: &str,
        dims: u32,
        spaces: &[SpaceMeta],
    ) -> Result<SegmentWriter<'a>> {
        Self::create_in_format(store, name, dims, spaces, false, false)
    }

    fn create_in_format(
        store: &'a dyn Directory,
        name: &str,
        dims: u32,
        spaces: &[SpaceMeta],
        symbols: bool,
        lexical: bool,
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
            symbols: if symbols {
                Some(SymbolWriter::create(store, name)?)
            } else {
                None
            },
            lexical: if lexical {
                Some(LexicalWriter::create(store, name)?)
            } else {
                None
            },
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
        let mut symbols_hash = blake3::Hasher::new();
        let mut lexical_hash = blake3::Hasher::new();
        for row in rows {
            let row_index = self.vectors.count();
            let chunk = row_index - first_row;
            check_row(&self.dir, record.path(), chunk, row.symbol, row.kind)?;
            match (&self.lexical, &row.lexical) {
                (Some(_), Some(terms)) => {
                    lexical::check_row(&self.dir, record.path(), chunk, terms)?;
                }
                (Some(_), None) => {
                    return Err(StorageError::corrupt(
                        self.dir.join(LEXICON_FILE),
                        format!(
                            "chunk {chunk} of {} has no lexical terms, in a segment with a \
                             lexical space",
                            record.path()
                        ),
                    ));
                }
                (None, Some(_)) => {
                    return Err(StorageError::corrupt(
                        &self.dir,
                        format!(
                            "chunk {chunk} of {} has lexical terms, written to a segment \
                             without a lexical space (format 5)",
                            record.path()
                        ),
                    ));
                }
                (None, None) => {}
            }
            if self.symbols.is_none() && (row.symbol.is_some() || row.kind.is_some()) {
                return Err(StorageError::corrupt(
                    &self.dir,
                    "a symbol written to a segment of a format before 4",
                ));
            }
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
            if let Some(symbols) = &mut self.symbols {
                symbols.push(row.symbol, row.kind, &mut symbols_hash)?;
            }
            if let (Some(lexical), Some(terms)) = (&mut self.lexical, &row.lexical) {
                lexical.push(row_index, terms, &mut lexical_hash)?;
            }
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
            rows_hash: *rows_hash(
                vectors_hash,
                chunks_hash,
                space_hashes,
                self.symbols.as_ref().map(|_| symbols_hash),
                self.lexical.as_ref().map(|_| lexical_hash),
            )
            .as_bytes(),
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
            symbols,
            lexical,
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
        let with_symbols = symbols.is_some();
        if let Some(symbols) = symbols {
            symbols.finish(rows)?;
        }
        let lexical = match lexical {
            Some(lexical) => Some(lexical.finish(rows)?),
            None => None,
        };
        let format = if lexical.is_some() {
            LEXICAL_FORMAT_VERSION
        } else if with_symbols {
            SYMBOLS_FORMAT_VERSION
        } else if space_metas.is_empty() {
            SEGMENT_FORMAT_VERSION
        } else {
            SPACES_FORMAT_VERSION
        };
        let meta = MetaV2 {
            dimensions: dims,
            rows,
            file_count,
            spaces: space_metas,
            lexical,
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
        if with_symbols {
            for file in SYMBOL_FILES {
                bytes += store.file_len(&join_name(&name, file))?;
            }
        }
        if meta.lexical.is_some() {
            for file in LEXICAL_FILES {
                bytes += store.file_len(&join_name(&name, file))?;
            }
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
