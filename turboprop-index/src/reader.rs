//! [`Index`]: one committed generation opened for searching. Opening reads the manifest once
//! and maps what it names; it never takes a lock and never blocks a writer. The index lives in
//! a [`Directory`]: a folder on disk ([`Index::open`]) or any other ([`Index::open_in`]).
//!
//! This file holds the index and its segments, opening (with its retries), the accessors and
//! the public types of a search; searching and checking live in the submodules: `search`
//! (one space), `exact`, `fast`, `fused`, `check` (damage, verify) and `intact`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use turboprop_storage::{
    DeleteSet, Directory, FaultWatch, IndexDir, Manifest, ModelGuard, ReadMode, SegmentEntry,
    SegmentFile, SegmentReader, SpaceEntry, StorageError, CONFIG_FILE, MANIFEST_FILE, VERSION_FILE,
};
use turboprop_types::{ChunkMeta, FileRecord, TermId, TermStatistics};

use crate::error::{IndexError, Result};
use crate::filter::FileFilter;
use crate::quant::Codes;
use crate::sparse::Codes8;

mod check;
pub(crate) use check::non_finite;
pub use check::SegmentDamage;
mod exact;
mod fast;
pub use fast::fast_candidates;
use fast::FastCodes;
mod fused;
pub use fused::SpaceQuery;
mod intact;
mod lexical;
pub use lexical::LexicalQuery;
mod search;

/// How many times a reader re-reads the manifest when a writer removed files under it.
const OPEN_ATTEMPTS: usize = 8;

/// How a search picks the rows it scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// [`Strategy::Fast`] when at least [`FAST_MIN_ROWS`] rows are to be searched,
    /// [`Strategy::Exact`] below.
    #[default]
    Auto,
    /// Score every row with f32 dot products: the reference result.
    Exact,
    /// Scan the codes (1-bit codes of dense vectors, int8 codes of sparse ones), then
    /// re-rank the closest rows with exact f32 dot products (segments without codes are
    /// scored exactly). Scores are exact; a true top hit can be missed only if its code is
    /// farther than every re-ranked candidate's.
    Fast,
}

/// Below this many rows to search, [`Strategy::Auto`] scores exactly (a few milliseconds at
/// most); above it, it takes the fast path.
pub const FAST_MIN_ROWS: usize = 200_000;

/// Options of one search.
#[derive(Debug, Clone)]
pub struct SearchOptions<'a> {
    /// Maximum number of hits.
    pub limit: usize,
    /// Hits must score at least this much (and always more than zero).
    pub min_score: f32,
    /// Which files may be returned; applied before top-k.
    pub filter: Option<&'a FileFilter>,
    /// Score on one thread (for tests and tiny indexes); results are identical.
    pub sequential: bool,
    /// Exact, fast, or chosen by size.
    pub strategy: Strategy,
    /// On the fast path, about how many rows to re-rank exactly (over 1-bit codes each
    /// segment re-ranks its share, at least 10 × `limit` or all its rows). `0` picks
    /// [`fast_candidates`] for 1-bit codes and 20 × `limit`, at least 200, for the int8
    /// codes of sparse vectors.
    pub candidates: usize,
}

impl Default for SearchOptions<'_> {
    fn default() -> Self {
        SearchOptions {
            limit: 10,
            min_score: 0.0,
            filter: None,
            sequential: false,
            strategy: Strategy::Auto,
            candidates: 0,
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The chunk: file, lines, bytes, digest.
    pub chunk: ChunkMeta,
    /// Cosine similarity with the query, in 0..=1.
    pub score: f32,
}

/// Counts and facts about a committed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStats {
    /// Files indexed.
    pub files: u64,
    /// Chunks (rows) indexed.
    pub chunks: u64,
    /// The model guard.
    pub model: ModelGuard,
    /// Commit generation.
    pub generation: u64,
    /// Bytes of all live files on disk.
    pub bytes_on_disk: u64,
    /// Commit time, milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

/// A segment of the open generation with its delete set.
#[derive(Debug)]
pub(crate) struct LiveSegment {
    pub(crate) reader: SegmentReader,
    pub(crate) deletes: Option<DeleteSet>,
    /// The fast path's codes of the primary vectors.
    codes: FastCodes,
    /// Per additional space of the manifest: the segment's vectors of it, if it has them.
    spaces: Vec<Option<SegmentSpaceData>>,
    /// Per file of the segment: deleted or not.
    deleted: Vec<bool>,
}

/// A segment's vectors in one additional space.
#[derive(Debug)]
struct SegmentSpaceData {
    /// Position in [`SegmentReader::spaces`].
    index: usize,
    /// The fast path's codes of the space's vectors.
    codes: FastCodes,
}

impl LiveSegment {
    fn open(
        dir: &IndexDir,
        entry: &SegmentEntry,
        manifest: &Manifest,
        mode: ReadMode,
    ) -> Result<Self> {
        let dims = manifest.model.dimensions;
        let reader = SegmentReader::open(dir.directory(), &entry.name, mode)?;
        if reader.dims() != dims as usize
            || reader.rows() as u64 != entry.rows
            || reader.file_count() as u64 != entry.files
        {
            return Err(StorageError::corrupt(
                reader.dir(),
                "segment does not match the manifest (rows, files or dimensions)",
            )
            .into());
        }
        // One flag per file: a memset, no file record is read.
        let mut deleted = vec![false; reader.file_count()];
        let deletes = match &entry.deletes {
            None => None,
            Some(d) => {
                let set = DeleteSet::open(dir.directory(), &d.name, mode)?;
                let mismatch = |why: &str| -> IndexError {
                    StorageError::corrupt(set.path(), why.to_owned()).into()
                };
                if set.files().len() as u64 != d.files || set.rows() != d.rows {
                    return Err(mismatch("does not match the manifest"));
                }
                for (file, rows) in set.files().iter() {
                    let file = file as usize;
                    if file >= reader.file_count() {
                        return Err(mismatch("names a file the segment does not have"));
                    }
                    let range = reader.file_rows(file)?;
                    if range.end - range.start != u64::from(rows) {
                        return Err(mismatch("row count of a deleted file is wrong"));
                    }
                    deleted[file] = true;
                }
                Some(set)
            }
        };
        let codes = FastCodes::open(
            dir,
            &entry.name,
            None,
            (entry.codes, entry.planes, entry.codes8),
            reader.rows(),
            reader.dims(),
            mode,
        )?;
        let mut spaces = Vec::with_capacity(manifest.spaces.len());
        for space in &manifest.spaces {
            let Some(listed) = entry.spaces.iter().find(|s| s.key == space.key) else {
                spaces.push(None);
                continue;
            };
            let index = reader.space_index(&space.key).ok_or_else(|| {
                StorageError::corrupt(
                    reader.dir(),
                    format!("the manifest says it has vectors of space {}", space.key),
                )
            })?;
            if reader.spaces()[index].dimensions != space.model.dimensions {
                return Err(StorageError::corrupt(
                    reader.dir(),
                    format!(
                        "space {} has {} dimensions but the manifest says {}",
                        space.key,
                        reader.spaces()[index].dimensions,
                        space.model.dimensions
                    ),
                )
                .into());
            }
            let codes = FastCodes::open(
                dir,
                &entry.name,
                Some(&space.key),
                (listed.codes, listed.planes, listed.codes8),
                reader.rows(),
                space.model.dimensions as usize,
                mode,
            )?;
            spaces.push(Some(SegmentSpaceData { index, codes }));
        }
        Ok(LiveSegment {
            reader,
            deletes,
            codes,
            spaces,
            deleted,
        })
    }

    /// The segment's vectors in space `space` (0: primary), if it has them.
    fn vectors(&self, space: usize) -> Option<&[f32]> {
        match space {
            0 => Some(self.reader.vectors()),
            k => {
                let data = self.spaces.get(k - 1)?.as_ref()?;
                Some(self.reader.space_vectors(data.index))
            }
        }
    }

    /// The fast path's codes of the segment's vectors in space `space`, if it has the space.
    fn fast_codes(&self, space: usize) -> Option<&FastCodes> {
        match space {
            0 => Some(&self.codes),
            k => Some(&self.spaces.get(k - 1)?.as_ref()?.codes),
        }
    }

    /// The 1-bit codes of the segment's vectors in space `space`, if written.
    fn codes(&self, space: usize) -> Option<&Codes> {
        self.fast_codes(space)?.bits.as_ref()
    }

    /// The int8 codes of the segment's vectors in space `space`, if written.
    fn codes8(&self, space: usize) -> Option<&Codes8> {
        self.fast_codes(space)?.int8.as_ref()
    }

    /// Live rows of the segment.
    fn live_rows(&self) -> u64 {
        self.reader.rows() as u64 - self.deletes.as_ref().map_or(0, DeleteSet::rows)
    }

    /// Indexes of the live files of the segment. Reads no file record.
    pub(crate) fn live_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.deleted
            .iter()
            .enumerate()
            .filter(|(_, d)| !**d)
            .map(|(i, _)| i)
    }

    /// The live files of the segment: (index in the segment, file). Builds the segment's
    /// whole file list (once), so it is for writers, status and verify, not for searches.
    pub(crate) fn live_files(&self) -> Result<impl Iterator<Item = (usize, &SegmentFile)> + '_> {
        let files = self.reader.files()?;
        Ok(files
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted.get(*i).copied().unwrap_or(true)))
    }
}

/// A committed index, opened read-only.
#[derive(Debug)]
pub struct Index {
    dir: IndexDir,
    manifest: Manifest,
    segments: Vec<LiveSegment>,
    /// Started before the first file was mapped (see [`Index::check_intact`]).
    watch: FaultWatch,
}

impl Index {
    /// Opens the last committed generation of the index folder `path` (memory-mapped).
    pub fn open(path: impl AsRef<Path>) -> Result<Index> {
        Self::open_with(path, ReadMode::Mmap)
    }

    /// Opens the index, mapping files or reading them into the heap.
    pub fn open_with(path: impl AsRef<Path>, mode: ReadMode) -> Result<Index> {
        Self::open_dir(IndexDir::new(path.as_ref()), mode)
    }

    /// Opens the last committed generation of the index held by `dir` (files on disk are
    /// memory-mapped).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use turboprop_index::{
    ///     Directory, Index, IndexSpec, IndexWriter, MemDirectory, ModelGuard, NewChunk,
    ///     SearchOptions, WriterOptions,
    /// };
    /// use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};
    ///
    /// let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    /// let spec = IndexSpec {
    ///     lexical: None,
    ///     model: ModelGuard { id: "my-vectors".into(), dimensions: 2 },
    ///     chunking: ChunkingConfig::default(),
    ///     spaces: vec![],
    /// };
    /// let mut writer = IndexWriter::open_in(dir.clone(), spec, WriterOptions::default(), || {})?;
    /// let record = FileRecord::new("src/pot.py", 100, 0, ContentHash::of(b"pot"))?;
    /// writer.put_file(record, vec![NewChunk {
    ///     lexical: None,
    ///     line_start: 1, line_end: 10, byte_start: 0, byte_end: 100,
    ///     hash: ContentHash::of(b"pot"), vector: vec![0.6, 0.8], terms: vec![], spaces: vec![],
    ///     symbol: None, kind: None,
    /// }])?;
    /// writer.commit()?;
    ///
    /// // A reader on a clone of the same directory sees the commit.
    /// let index = Index::open_in(dir)?;
    /// let hits = index.search(&[0.6, 0.8], &SearchOptions::default())?;
    /// assert_eq!(hits[0].chunk.file(), "src/pot.py");
    /// assert_eq!(index.path().to_str(), Some("mem://"));
    /// assert!(index.verify().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_in(dir: Arc<dyn Directory>) -> Result<Index> {
        Self::open_in_with(dir, ReadMode::Mmap)
    }

    /// Opens the index held by `dir`, mapping files on disk or reading them into the heap.
    pub fn open_in_with(dir: Arc<dyn Directory>, mode: ReadMode) -> Result<Index> {
        Self::open_dir(IndexDir::with_directory(dir), mode)
    }

    pub(crate) fn open_dir(dir: IndexDir, mode: ReadMode) -> Result<Index> {
        let mut last_generation = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Before anything is mapped, so that a fault while opening is seen.
            let watch = FaultWatch::start();
            let manifest = Self::read_manifest(&dir)?;
            let generation = manifest.generation;
            let opened = Self::open_generation(dir.clone(), manifest, mode, watch)
                .and_then(|index| index.check_intact().map(|()| index));
            match opened {
                Ok(index) => return Ok(index),
                // A mapped file shrank while it was opened: open again, the change may be
                // over (a copy finished) or show for what it left (a shorter file).
                Err(e) if watch.faulted_since() || e.is_changed_under_reader() => {
                    if attempt >= OPEN_ATTEMPTS {
                        return Err(intact::changed_while_opening(e, dir.root()));
                    }
                }
                // A writer may have committed and removed the files of the generation we
                // read; if the manifest moved on, try the new one.
                Err(IndexError::Storage(e)) if e.is_missing() && attempt < OPEN_ATTEMPTS => {
                    let now = dir.read_manifest()?.map(|m| m.generation);
                    if now == Some(generation) && last_generation == Some(generation) {
                        return Err(IndexError::Storage(e));
                    }
                    last_generation = Some(generation);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn read_manifest(dir: &IndexDir) -> Result<Manifest> {
        let not_indexed = || IndexError::NotIndexed {
            path: dir.root().to_path_buf(),
        };
        // A folder with data but no version.txt or manifest is a damaged index, not a
        // missing one: say which file is gone.
        let has_data = dir.has_data()?;
        if !dir.exists()? && !dir.has_manifest()? && !has_data {
            return Err(not_indexed());
        }
        dir.check_version()?;
        match dir.read_manifest()? {
            Some(m) => Ok(m),
            None if has_data => Err(StorageError::Missing {
                path: dir.manifest_path(),
            }
            .into()),
            None => Err(not_indexed()),
        }
    }

    fn open_generation(
        dir: IndexDir,
        manifest: Manifest,
        mode: ReadMode,
        watch: FaultWatch,
    ) -> Result<Index> {
        let segments = manifest
            .segments
            .iter()
            .map(|entry| LiveSegment::open(&dir, entry, &manifest, mode))
            .collect::<Result<Vec<_>>>()?;
        Ok(Index {
            dir,
            manifest,
            segments,
            watch,
        })
    }

    /// The index folder's location (its path on disk).
    pub fn path(&self) -> &Path {
        self.dir.root()
    }

    /// The directory holding the index's files.
    pub fn directory(&self) -> &dyn Directory {
        self.dir.directory()
    }

    /// The committed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The model guard: which model and dimensions the vectors were made with.
    pub fn model(&self) -> &ModelGuard {
        &self.manifest.model
    }

    /// Vector dimensions.
    pub fn dims(&self) -> usize {
        self.manifest.model.dimensions as usize
    }

    /// The additional vector spaces (space `k` ≥ 1 of the search methods is `spaces()[k - 1]`;
    /// space 0 is the primary vectors of [`Self::model`]).
    pub fn spaces(&self) -> &[SpaceEntry] {
        &self.manifest.spaces
    }

    /// The model of space `space` (0: the primary vectors), if the index has that space.
    pub fn space_model(&self, space: usize) -> Option<&ModelGuard> {
        match space {
            0 => Some(&self.manifest.model),
            k => self.manifest.spaces.get(k - 1).map(|s| &s.model),
        }
    }

    /// The space whose vectors were made by model `model_id`, primary first.
    pub fn space_of_model(&self, model_id: &str) -> Option<usize> {
        if self.manifest.model.id == model_id {
            return Some(0);
        }
        self.manifest
            .spaces
            .iter()
            .position(|s| s.model.id == model_id)
            .map(|k| k + 1)
    }

    /// Live rows that have vectors in space `space` (all of them for space 0; fewer for an
    /// additional space while an update that adds it has not finished).
    pub fn space_rows(&self, space: usize) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.vectors(space).is_some())
            .map(LiveSegment::live_rows)
            .sum()
    }

    /// Fails with [`IndexError::ModelMismatch`] unless space `space` was made with `model_id`
    /// and `dims`.
    pub fn check_space_model(&self, space: usize, model_id: &str, dims: usize) -> Result<()> {
        let m = self.space_model(space).unwrap_or(&self.manifest.model);
        if self.space_model(space).is_some() && m.id == model_id && m.dimensions as usize == dims {
            Ok(())
        } else {
            Err(IndexError::ModelMismatch {
                path: self.dir.root().to_path_buf(),
                index_model: m.id.clone(),
                index_dims: m.dimensions,
                asked_model: model_id.to_owned(),
                asked_dims: u32::try_from(dims).unwrap_or(u32::MAX),
            })
        }
    }

    /// Number of live segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub(crate) fn live_segments(&self) -> &[LiveSegment] {
        &self.segments
    }

    /// Every indexed (live) file. This reads every file record of the index (and keeps
    /// them); searching does not need it. Fails if a record is damaged.
    pub fn files(&self) -> Result<impl Iterator<Item = &FileRecord> + '_> {
        // The lists are built (into the heap) here; iterating reads no mapped byte.
        let files = self.checked(self.segment_files())?;
        Ok(files.map(|(_, _, f)| &f.record))
    }

    /// Number of live segments whose whole file list has been built (see
    /// [`SegmentReader::is_materialized`]): 0 after opening an index of current-format
    /// segments and searching it, however many files it holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use turboprop_index::{
    ///     Directory, Index, IndexSpec, IndexWriter, MemDirectory, ModelGuard, NewChunk,
    ///     SearchOptions, WriterOptions,
    /// };
    /// use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};
    ///
    /// let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    /// let spec = IndexSpec {
    ///     lexical: None,
    ///     model: ModelGuard { id: "my-vectors".into(), dimensions: 2 },
    ///     chunking: ChunkingConfig::default(),
    ///     spaces: vec![],
    /// };
    /// let mut writer = IndexWriter::open_in(dir.clone(), spec, WriterOptions::default(), || {})?;
    /// let record = FileRecord::new("src/pot.py", 100, 0, ContentHash::of(b"pot"))?;
    /// writer.put_file(record, vec![NewChunk {
    ///     lexical: None,
    ///     line_start: 1, line_end: 10, byte_start: 0, byte_end: 100,
    ///     hash: ContentHash::of(b"pot"), vector: vec![0.6, 0.8], terms: vec![], spaces: vec![],
    ///     symbol: None, kind: None,
    /// }])?;
    /// writer.commit()?;
    ///
    /// let index = Index::open_in(dir)?;
    /// index.search(&[0.6, 0.8], &SearchOptions::default())?;
    /// assert_eq!(index.materialized_segments(), 0);
    /// assert_eq!(index.files()?.count(), 1);
    /// assert_eq!(index.materialized_segments(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn materialized_segments(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| s.reader.is_materialized())
            .count()
    }

    /// Live files with their segment and index in it (builds every segment's file list).
    pub(crate) fn segment_files(
        &self,
    ) -> Result<impl Iterator<Item = (usize, usize, &SegmentFile)> + '_> {
        let mut per_segment = Vec::with_capacity(self.segments.len());
        for (s, seg) in self.segments.iter().enumerate() {
            per_segment.push((s, seg.live_files()?));
        }
        Ok(per_segment
            .into_iter()
            .flat_map(|(s, files)| files.map(move |(i, f)| (s, i, f))))
    }

    /// Document-frequency statistics of the live chunks, for query weighting.
    pub fn term_stats(&self) -> &dyn TermStatistics {
        self
    }

    /// Counts and facts for `tp status`.
    pub fn stats(&self) -> IndexStats {
        let mut bytes: u64 = self
            .segments
            .iter()
            .map(|s| {
                s.reader.bytes_on_disk()
                    + s.deletes.as_ref().map_or(0, DeleteSet::file_len)
                    + s.codes.bytes()
                    + s.spaces
                        .iter()
                        .flatten()
                        .map(|d| d.codes.bytes())
                        .sum::<u64>()
            })
            .sum();
        for name in [MANIFEST_FILE, CONFIG_FILE, VERSION_FILE] {
            bytes += self.dir.directory().file_len(name).unwrap_or(0);
        }
        IndexStats {
            files: self.manifest.files(),
            chunks: self.manifest.rows(),
            model: self.manifest.model.clone(),
            generation: self.manifest.generation,
            bytes_on_disk: bytes,
            updated_at_ms: self.manifest.updated_at_ms,
        }
    }

    /// Fails with [`IndexError::ModelMismatch`] unless the index was built with `model_id`
    /// and `dims`.
    pub fn check_model(&self, model_id: &str, dims: usize) -> Result<()> {
        let m = &self.manifest.model;
        if m.id == model_id && m.dimensions as usize == dims {
            Ok(())
        } else {
            Err(IndexError::ModelMismatch {
                path: self.dir.root().to_path_buf(),
                index_model: m.id.clone(),
                index_dims: m.dimensions,
                asked_model: model_id.to_owned(),
                asked_dims: u32::try_from(dims).unwrap_or(u32::MAX),
            })
        }
    }

    /// The path of the index folder inside a repository: `<repo>/.turboprop/index`.
    pub fn folder_of_repo(repo: &Path) -> PathBuf {
        repo.join(".turboprop").join("index")
    }
}

impl TermStatistics for Index {
    fn documents(&self) -> u64 {
        self.manifest.rows()
    }

    fn document_frequency(&self, term: TermId) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                let removed = s
                    .deletes
                    .as_ref()
                    .map_or(0, |d| u64::from(d.removed_terms().lookup(term)));
                s.reader.doc_freq(term).saturating_sub(removed)
            })
            .sum()
    }
}
