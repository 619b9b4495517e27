//! [`Index`]: one committed generation opened for searching. Opening reads the manifest once
//! and maps what it names; it never takes a lock and never blocks a writer. The index lives in
//! a [`Directory`]: a folder on disk ([`Index::open`]) or any other ([`Index::open_in`]).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use turboprop_storage::{
    DeleteSet, Directory, FaultWatch, IndexDir, Manifest, ModelGuard, ReadMode, SegmentEntry,
    SegmentFile, SegmentReader, SpaceEntry, StorageError, CONFIG_FILE, MANIFEST_FILE, VERSION_FILE,
};
use turboprop_types::{ChunkMeta, FileRecord, TermId, TermStatistics};

use crate::error::{IndexError, Result};
use crate::filter::FileFilter;
use crate::kernel::{dot_rows, hamming_rows_hist, Isa, PlaneCounts};
use crate::quant::{self, Codes};
use crate::sparse::{self, Codes8};
use crate::topk::{Scored, TopK};

mod check;
pub(crate) use check::non_finite;
pub use check::SegmentDamage;
mod intact;

/// A run of rows of one segment: (segment, rows).
type Block = (usize, Range<usize>);

/// One block of the fast path's scan over 1-bit codes.
enum ScannedBlock {
    /// Nothing to scan (the segment has no codes).
    Empty,
    /// Distances over every dimension, from the row-major codes.
    Rows {
        /// The Hamming distance of each row's code to the query's.
        dist: Vec<u16>,
        /// `within[d]`: how many rows are at distance `d` or less.
        within: Vec<u64>,
        /// Rows up to this distance have their estimates in `estimated` (computed while
        /// the block's codes were in cache).
        local_cut: u16,
        /// (distance, asymmetric estimate, row) of the rows up to `local_cut`.
        estimated: Vec<(u16, f32, u32)>,
    },
    /// Distances over the query's chosen dimensions, from the bit planes, kept bit-sliced.
    Planes {
        counts: PlaneCounts,
        /// `within[d]`: how many rows are at distance `d` or less, for `d` up to the
        /// block's local cut.
        within: Vec<u64>,
        /// (distance, row) of the rows up to the local cut.
        near: Vec<(u16, u32)>,
    },
}

impl ScannedBlock {
    /// How many of the block's rows are at distance `d` or less.
    fn within(&self, d: u16) -> u64 {
        let d = usize::from(d);
        match self {
            ScannedBlock::Empty => 0,
            ScannedBlock::Rows { within, .. } => {
                within.get(d).or(within.last()).copied().unwrap_or(0)
            }
            ScannedBlock::Planes { counts, within, .. } => match within.get(d) {
                Some(&n) => n,
                None => counts.count_within(d as u32) as u64,
            },
        }
    }
}

/// Rows scored per parallel task.
const BLOCK_ROWS: usize = 4096;

/// Rows per parallel task of the fast path's scan over 1-bit codes: a block's run of each
/// bit plane is then 4 KiB, long enough for the prefetchers to stream (runs of 512 bytes,
/// at 4,096 rows, made the scan twice as slow).
const FAST_BLOCK_ROWS: usize = 8 * BLOCK_ROWS;

/// The rows (`first` + position) of the distances in `low..=high`, in order. Compares 64
/// distances at a time into a bit mask, which vectorizes; the rows kept are few.
fn rows_within(dist: &[u16], low: u16, high: u16, first: usize) -> Vec<u32> {
    let mut out = Vec::new();
    for (k, chunk) in dist.chunks(64).enumerate() {
        let mut mask = chunk.iter().enumerate().fold(0u64, |m, (i, &x)| {
            m | (u64::from(x >= low && x <= high) << i)
        });
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            out.push((first + k * 64 + i) as u32);
            mask &= mask - 1;
        }
    }
    out
}

/// Candidates per parallel task of the re-ranking.
const RERANK_CHUNK: usize = 64;

/// Runs of rows of one segment scanned together by the fast path: (segment, the rows from
/// the first run's start to the last run's end, the runs).
type Group = (usize, Range<usize>, Vec<Range<usize>>);

/// `blocks` in groups of consecutive runs of one segment spanning at most `most` rows, so
/// that a search whose filter leaves many short runs still reads long runs of bit planes
/// (the rows between runs are read and left out).
fn group_blocks(blocks: &[Block], most: usize) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (seg, rows) in blocks {
        match out.last_mut() {
            Some((s, span, parts))
                if s == seg && span.end <= rows.start && rows.end - span.start <= most =>
            {
                span.end = rows.end;
                match parts.last_mut() {
                    Some(last) if last.end == rows.start => last.end = rows.end,
                    _ => parts.push(rows.clone()),
                }
            }
            _ => out.push((*seg, rows.clone(), vec![rows.clone()])),
        }
    }
    out
}

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
    /// segment re-ranks its share, at least [`MIN_SHARE_PER_HIT`] × `limit` or all its
    /// rows). `0` picks [`fast_candidates`] for 1-bit codes and
    /// [`crate::sparse::fast_candidates`] for int8 codes.
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

/// The number of rows the fast path re-ranks exactly by default on 1-bit codes, for `limit`
/// hits out of `rows` (1/2000 of the rows, at least 50 per hit): each costs one random read
/// of an f32 row. On `tp benchmark`'s vectors this keeps recall@10 at or above 0.99 from
/// 100k to 1M rows. (Int8 codes: [`crate::sparse::fast_candidates`].)
pub fn fast_candidates(limit: usize, rows: usize) -> usize {
    (limit.saturating_mul(50)).max(rows / 2000)
}

/// On the fast path over 1-bit codes, how many times the rows to re-rank the Hamming
/// distance keeps for the asymmetric estimate to choose from. Six since the distance over
/// bit planes counts the query's largest dimensions twice ([`quant::doubled_planes`]): on
/// 1M `tp benchmark` vectors that keeps recall@10 at 0.995, as ten did before. (Segments
/// without planes use the distance over every dimension, which keeps 0.993 offline with a
/// pool of six times the share, 0.996 with ten.)
pub const POOL_FACTOR: usize = 6;

/// On the fast path over 1-bit codes, the fewest rows a segment re-ranks per hit asked for
/// (or all its rows), however small its part of the index: a small segment of recent
/// changes may hold all the best hits.
pub const MIN_SHARE_PER_HIT: usize = 10;

/// One query of [`Index::search_fused`].
#[derive(Debug, Clone, Copy)]
pub struct SpaceQuery<'q> {
    /// The vector space (0: primary; `k` ≥ 1: [`Index::spaces`]`[k - 1]`).
    pub space: usize,
    /// The query vector, normalized, of the space's dimensions.
    pub vector: &'q [f32],
    /// How many of the space's best rows become candidates.
    pub depth: usize,
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

/// The fast path's codes of a segment's vectors in one space: 1-bit codes (dense vectors),
/// int8 codes (sparse vectors), or none (segments written before codes existed).
#[derive(Debug)]
struct FastCodes {
    bits: Option<Codes>,
    int8: Option<Codes8>,
}

impl FastCodes {
    /// Opens the codes the manifest says segment `segment` has for space `key` (`None`: the
    /// primary vectors) of `rows` rows of `dims` dimensions.
    #[allow(clippy::too_many_arguments)]
    fn open(
        dir: &IndexDir,
        segment: &str,
        key: Option<&str>,
        (bits, planes, int8): (bool, bool, bool),
        rows: usize,
        dims: usize,
        mode: ReadMode,
    ) -> Result<FastCodes> {
        let store = dir.directory();
        if planes && !bits {
            return Err(StorageError::corrupt(
                store.location(segment),
                "the manifest lists bit planes without 1-bit codes",
            )
            .into());
        }
        Ok(FastCodes {
            bits: match bits {
                true => Some(Codes::open(store, segment, key, rows, dims, planes, mode)?),
                false => None,
            },
            int8: match int8 {
                true => Some(Codes8::open(store, segment, key, rows, dims, mode)?),
                false => None,
            },
        })
    }

    /// Bytes on disk.
    fn bytes(&self) -> u64 {
        self.bits.as_ref().map_or(0, Codes::bytes) + self.int8.as_ref().map_or(0, Codes8::bytes)
    }

    /// Checks every payload against its checksum.
    fn verify(&self) -> Result<()> {
        if let Some(c) = &self.bits {
            c.verify()?;
        }
        if let Some(c) = &self.int8 {
            c.verify()?;
        }
        Ok(())
    }
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
    ///     model: ModelGuard { id: "my-vectors".into(), dimensions: 2 },
    ///     chunking: ChunkingConfig::default(),
    ///     spaces: vec![],
    /// };
    /// let mut writer = IndexWriter::open_in(dir.clone(), spec, WriterOptions::default(), || {})?;
    /// let record = FileRecord::new("src/pot.py", 100, 0, ContentHash::of(b"pot"))?;
    /// writer.put_file(record, vec![NewChunk {
    ///     line_start: 1, line_end: 10, byte_start: 0, byte_end: 100,
    ///     hash: ContentHash::of(b"pot"), vector: vec![0.6, 0.8], terms: vec![], spaces: vec![],
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
    ///     model: ModelGuard { id: "my-vectors".into(), dimensions: 2 },
    ///     chunking: ChunkingConfig::default(),
    ///     spaces: vec![],
    /// };
    /// let mut writer = IndexWriter::open_in(dir.clone(), spec, WriterOptions::default(), || {})?;
    /// let record = FileRecord::new("src/pot.py", 100, 0, ContentHash::of(b"pot"))?;
    /// writer.put_file(record, vec![NewChunk {
    ///     line_start: 1, line_end: 10, byte_start: 0, byte_end: 100,
    ///     hash: ContentHash::of(b"pot"), vector: vec![0.6, 0.8], terms: vec![], spaces: vec![],
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

    /// Checks every byte of every live file against its checksum, every record, and every
    /// vector value (NaN and infinity are damage; see [`Self::damaged_segments`]), then
    /// `config.yaml`; returns the problems found (empty when the index is intact).
    pub fn verify(&self) -> Vec<IndexError> {
        let mut problems: Vec<IndexError> = self
            .damaged_segments()
            .into_iter()
            .flat_map(|d| d.problems)
            .collect();
        if let Err(e) = self.dir.read_config() {
            problems.push(e.into());
        }
        // Zeros read from a file that shrank under its mapping are not damage to report.
        match self.check_intact() {
            Ok(()) => problems,
            Err(changed) => vec![changed],
        }
    }

    /// The `limit` chunks most similar to `query` (a normalized vector of the index's
    /// dimensions), best first, among files that pass the filter.
    pub fn search(&self, query: &[f32], opts: &SearchOptions<'_>) -> Result<Vec<Hit>> {
        self.search_space(0, query, opts)
    }

    /// [`Self::search`] in vector space `space` (0: the primary vectors; `k` ≥ 1:
    /// [`Self::spaces`]`[k - 1]`). Rows of segments without vectors in the space (written
    /// before it was added, see [`Self::space_rows`]) are not searched.
    pub fn search_space(
        &self,
        space: usize,
        query: &[f32],
        opts: &SearchOptions<'_>,
    ) -> Result<Vec<Hit>> {
        let hits = self
            .top(space, query, opts)
            .and_then(|top| top.into_sorted().into_iter().map(|s| self.hit(s)).collect());
        self.checked(hits)
    }

    /// The chunks with the best fused scores over several vector spaces, best first.
    ///
    /// Each query's `depth` best rows in its space (among files that pass the filter)
    /// become candidates; every candidate is scored exactly in every queried space (0 in a
    /// space its segment has no vectors of); `fuse` maps those scores, `scores[c][q]` for
    /// candidate `c` and query `q`, to one fused score per candidate, and the best
    /// `opts.limit` with fused scores above zero and at least `opts.min_score` are returned
    /// with their fused scores (clamped to 0..=1).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use turboprop_index::{
    ///     Directory, Index, IndexSpec, IndexWriter, MemDirectory, ModelGuard, NewChunk,
    ///     SearchOptions, SpaceQuery, WriterOptions,
    /// };
    /// use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};
    ///
    /// let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    /// let guard = |id: &str| ModelGuard { id: id.into(), dimensions: 2 };
    /// let spec = IndexSpec {
    ///     model: guard("words"),
    ///     chunking: ChunkingConfig::default(),
    ///     spaces: vec![guard("meaning")],
    /// };
    /// let mut writer = IndexWriter::open_in(dir.clone(), spec, WriterOptions::default(), || {})?;
    /// for (path, words, meaning) in [("a.rs", [1.0, 0.0], [0.0, 1.0]), ("b.rs", [0.6, 0.8], [0.6, 0.8])] {
    ///     let hash = ContentHash::of(path.as_bytes());
    ///     writer.put_file(FileRecord::new(path, 10, 0, hash)?, vec![NewChunk {
    ///         line_start: 1, line_end: 1, byte_start: 0, byte_end: 10, hash,
    ///         vector: words.to_vec(), terms: vec![], spaces: vec![meaning.to_vec()],
    ///     }])?;
    /// }
    /// writer.commit()?;
    ///
    /// let index = Index::open_in(dir)?;
    /// let meaning = index.space_of_model("meaning").expect("a space");
    /// let queries = [
    ///     SpaceQuery { space: 0, vector: &[1.0, 0.0], depth: 10 },
    ///     SpaceQuery { space: meaning, vector: &[1.0, 0.0], depth: 10 },
    /// ];
    /// // The mean of both cosines: a.rs scores (1 + 0) / 2, b.rs (0.6 + 0.6) / 2.
    /// let mean = |scores: &[Vec<f32>]| -> Vec<f32> {
    ///     scores.iter().map(|s| s.iter().sum::<f32>() / s.len() as f32).collect()
    /// };
    /// let hits = index.search_fused(&queries, &SearchOptions::default(), &mean)?;
    /// assert_eq!(hits[0].chunk.file(), "b.rs");
    /// assert!((hits[0].score - 0.6).abs() < 1e-6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn search_fused(
        &self,
        queries: &[SpaceQuery<'_>],
        opts: &SearchOptions<'_>,
        fuse: &dyn Fn(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Vec<Hit>> {
        self.checked(self.fused(queries, opts, fuse))
    }

    /// [`Self::search_fused`] before the check that no file changed under it.
    fn fused(
        &self,
        queries: &[SpaceQuery<'_>],
        opts: &SearchOptions<'_>,
        fuse: &dyn Fn(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Vec<Hit>> {
        if opts.limit == 0 || queries.is_empty() {
            return Ok(Vec::new());
        }
        let mut candidates: Vec<(u32, u32)> = Vec::new();
        for q in queries {
            let per_space = SearchOptions {
                limit: q.depth.max(opts.limit),
                min_score: 0.0,
                ..opts.clone()
            };
            candidates.extend(
                self.top(q.space, q.vector, &per_space)?
                    .into_sorted()
                    .into_iter()
                    .map(|s| (s.segment, s.row)),
            );
        }
        candidates.sort_unstable();
        candidates.dedup();
        let isa = Isa::detect();
        let scores: Vec<Vec<f32>> = candidates
            .iter()
            .map(|&(seg, row)| {
                queries
                    .iter()
                    .map(|q| {
                        let segment = &self.segments[seg as usize];
                        let d = q.vector.len();
                        let row = row as usize;
                        match segment
                            .vectors(q.space)
                            .and_then(|v| v.get(row * d..(row + 1) * d))
                        {
                            Some(v) => {
                                let mut s = [0.0f32];
                                dot_rows(isa, q.vector, v, &mut s);
                                s[0].max(0.0)
                            }
                            None => 0.0,
                        }
                    })
                    .collect()
            })
            .collect();
        let fused = fuse(&scores);
        if fused.len() != candidates.len() {
            return Err(IndexError::InvalidVector {
                what: "fused scores".to_owned(),
                reason: format!("{} scores for {} candidates", fused.len(), candidates.len()),
            });
        }
        let floor = opts.min_score.max(0.0);
        let mut top = TopK::new(opts.limit);
        for (&(segment, row), &score) in candidates.iter().zip(&fused) {
            let score = if score.is_finite() {
                score.min(1.0)
            } else {
                0.0
            };
            if score > 0.0 && score >= floor && score >= top.threshold() {
                top.push(Scored {
                    score,
                    segment,
                    row,
                });
            }
        }
        top.into_sorted().into_iter().map(|s| self.hit(s)).collect()
    }

    /// The best rows of space `space` for `query`.
    fn top(&self, space: usize, query: &[f32], opts: &SearchOptions<'_>) -> Result<TopK> {
        let Some(model) = self.space_model(space) else {
            return Err(IndexError::InvalidVector {
                what: "query".to_owned(),
                reason: format!("no vector space {space} in the index"),
            });
        };
        let dims = model.dimensions as usize;
        if query.len() != dims {
            return Err(IndexError::InvalidVector {
                what: "query".to_owned(),
                reason: format!("{} dimensions, index has {dims}", query.len()),
            });
        }
        if query.iter().any(|v| !v.is_finite()) {
            return Err(IndexError::InvalidVector {
                what: "query".to_owned(),
                reason: "non-finite value".to_owned(),
            });
        }
        if opts.limit == 0 {
            return Ok(TopK::new(0));
        }
        let blocks = self.blocks(opts.filter, space)?;
        let rows: usize = blocks.iter().map(|(_, r)| r.len()).sum();
        let fast = match opts.strategy {
            Strategy::Exact => false,
            Strategy::Fast => true,
            Strategy::Auto => rows >= FAST_MIN_ROWS,
        };
        let want = if opts.candidates == 0 {
            fast_candidates(opts.limit, rows)
        } else {
            opts.candidates.max(opts.limit)
        };
        let (coded, plain): (Vec<_>, Vec<_>) = if fast {
            blocks.into_iter().partition(|(s, _)| {
                let seg = &self.segments[*s];
                seg.codes(space).is_some() || seg.codes8(space).is_some()
            })
        } else {
            (Vec::new(), blocks)
        };
        let coded_rows: usize = coded.iter().map(|(_, r)| r.len()).sum();
        let (coded, plain) = if coded_rows < want {
            // Re-ranking every coded row is exact search.
            (Vec::new(), [plain, coded].concat())
        } else {
            (coded, plain)
        };
        let non_finite = check::NonFiniteRows::new();
        let mut top = self.score_blocks(space, query, &plain, opts, &non_finite);
        if !coded.is_empty() {
            let (bits, int8): (Vec<_>, Vec<_>) = coded
                .into_iter()
                .partition(|(s, _)| self.segments[*s].codes(space).is_some());
            let mut candidates =
                self.closest_codes(space, query, &bits, want, opts.limit, opts.sequential);
            let codes8 = |s: usize| self.segments.get(s).and_then(|seg| seg.codes8(space));
            let want8 = match opts.candidates {
                0 => sparse::fast_candidates(opts.limit),
                n => n.max(opts.limit),
            };
            candidates.extend(sparse::closest(
                query,
                &int8,
                codes8,
                want8,
                opts.sequential,
            ));
            top = top.merge(self.rerank(space, query, &candidates, opts, &non_finite));
        }
        non_finite.check(self, space)?;
        Ok(top)
    }

    /// Exact f32 scores of every row of `blocks`, the best `opts.limit` kept.
    fn score_blocks(
        &self,
        space: usize,
        query: &[f32],
        blocks: &[(usize, Range<usize>)],
        opts: &SearchOptions<'_>,
        non_finite: &check::NonFiniteRows,
    ) -> TopK {
        let floor = opts.min_score.max(0.0);
        let isa = Isa::detect();
        let score_block = |&(seg, ref rows): &(usize, Range<usize>)| {
            let mut top = TopK::new(opts.limit);
            let d = query.len();
            let vectors = self.segments[seg].vectors(space).unwrap_or(&[]);
            let data = vectors.get(rows.start * d..rows.end * d).unwrap_or(&[]);
            let mut scores = [0.0f32; BLOCK_ROWS];
            let scores = &mut scores[..data.len() / d.max(1)];
            dot_rows(isa, query, data, scores);
            for (row, &score) in rows.clone().zip(scores.iter()) {
                if !score.is_finite() {
                    non_finite.note(seg as u32, row as u32);
                }
                if score > 0.0 && score >= floor && score >= top.threshold() {
                    top.push(Scored {
                        score,
                        segment: seg as u32,
                        row: row as u32,
                    });
                }
            }
            top
        };
        if opts.sequential || blocks.len() <= 1 {
            blocks
                .iter()
                .map(score_block)
                .fold(TopK::new(opts.limit), TopK::merge)
        } else {
            blocks
                .par_iter()
                .map(score_block)
                .reduce(|| TopK::new(opts.limit), TopK::merge)
        }
    }

    /// The rows of `blocks` (all in segments with codes) to re-rank exactly: about `want`
    /// of them, each segment's share in proportion to its rows searched (at least
    /// [`MIN_SHARE_PER_HIT`] × `limit`, or all its rows).
    ///
    /// Two filters over the same codes, both inside one segment's frame (codes of different
    /// segments are relative to different centres, so their estimates are not compared):
    /// the Hamming distance of every row's code to the query's keeps the segment's pool,
    /// [`POOL_FACTOR`] times its share (the smallest distance admitting that many, and every
    /// row tied at it); the asymmetric estimate of the pool's codes
    /// ([`quant::ByteTables`]: the f32 query summed at the code's set bits) keeps the
    /// share.
    ///
    /// When the segment has bit planes (`planes.bin`), the distance is taken over the
    /// query's largest dimensions only ([`quant::plane_count`]), read from their planes:
    /// a quarter of the codes' bytes at 384 dimensions; a mismatch in the larger half of
    /// them counts twice ([`quant::doubled_planes`]). The counts stay bit-sliced
    /// ([`PlaneCounts`]); each block finds its local cut (the distance admitting twice its
    /// proportional part of the pool) by comparing them 64 rows at a time and lists only
    /// the rows within it. The pool's codes are then estimated once the segment's cut is
    /// known, asked for a few rows ahead since they are not in cache.
    ///
    /// Segments without planes (written before they existed) read `codes.bin` row by row,
    /// and the estimates are computed while a block's codes are still in cache: each block
    /// estimates its own best rows by distance, twice its proportional part of the pool.
    ///
    /// Either way the local cut covers the segment's cut in all but blocks unusually close
    /// to the query; those few list (and estimate) their remaining rows up to the cut
    /// afterwards. The result is that of estimating exactly the pool.
    fn closest_codes(
        &self,
        space: usize,
        query: &[f32],
        blocks: &[(usize, Range<usize>)],
        want: usize,
        limit: usize,
        sequential: bool,
    ) -> Vec<(u32, u32)> {
        let isa = Isa::detect();
        let bits = query.len();
        let tables = quant::ByteTables::new(query);
        // The query's code in each segment's frame.
        let query_codes: Vec<Vec<u64>> = self
            .segments
            .iter()
            .map(|seg| match seg.codes(space) {
                Some(c) => {
                    let mut code = vec![0u64; c.words()];
                    quant::encode(query, c.center(), &mut code);
                    code
                }
                None => Vec::new(),
            })
            .collect();
        // The dimensions whose bit planes the first filter reads (the query's largest in
        // magnitude, the `doubled` largest first, counted twice), and the query's bit in
        // each, per segment.
        let mut chosen: Vec<usize> = (0..bits).collect();
        let planes = quant::plane_count(bits);
        let doubled = quant::doubled_planes(bits);
        let larger = |a: &usize, b: &usize| query[*b].abs().total_cmp(&query[*a].abs());
        if planes < bits {
            chosen.select_nth_unstable_by(planes, larger);
            chosen.truncate(planes);
            // `doubled` is below `planes`, and 0 unless the planes are a subset.
            chosen.select_nth_unstable_by(doubled, larger);
        }
        chosen[..doubled].sort_unstable();
        chosen[doubled..].sort_unstable();
        // The farthest distance a row can have over the planes, and over whole codes.
        let plane_farthest = planes + doubled;
        let farthest = bits.max(plane_farthest);
        let flips: Vec<Vec<u64>> = query_codes
            .iter()
            .map(|code| {
                let bit = |j: usize| code.get(j / 64).map_or(0, |w| (w >> (j % 64)) & 1);
                chosen.iter().map(|&j| 0u64.wrapping_sub(bit(j))).collect()
            })
            .collect();
        // Each segment's rows searched, then its share and pool.
        let mut seg_rows = vec![0usize; self.segments.len()];
        for (seg, rows) in blocks {
            seg_rows[*seg] += rows.len();
        }
        let all_rows: usize = seg_rows.iter().sum();
        let shares: Vec<(usize, usize)> = seg_rows
            .iter()
            .map(|&n| {
                let share = (want.saturating_mul(n).div_ceil(all_rows.max(1)))
                    .max(limit.saturating_mul(MIN_SHARE_PER_HIT))
                    .min(n);
                (share, share.saturating_mul(POOL_FACTOR))
            })
            .collect();
        // One block: the distances of its rows and how many are within each distance,
        // then, up to the block's local cut (twice its proportional part of the pool),
        // which rows: with their estimates when the codes are read row by row (they are
        // in cache), without when the distances came from the bit planes.
        let groups = group_blocks(blocks, FAST_BLOCK_ROWS);
        let scan = |&(seg, ref rows, ref parts): &Group| {
            let Some(c) = self.segments[seg].codes(space) else {
                return ScannedBlock::Empty;
            };
            let (_, pool) = shares[seg];
            let searched: usize = parts.iter().map(|p| p.len()).sum();
            let local =
                (pool.saturating_mul(2).saturating_mul(searched)).div_ceil(seg_rows[seg].max(1));
            let whole = parts.len() == 1;
            if c.has_planes() {
                let words = rows.start / 64..rows.end.div_ceil(64);
                let planes: Vec<&[u64]> = chosen
                    .iter()
                    .map(|&j| c.plane(j).and_then(|p| p.get(words.clone())).unwrap_or(&[]))
                    .collect();
                let mut counts = PlaneCounts::weighted(
                    isa,
                    &planes,
                    &flips[seg],
                    doubled,
                    rows.start % 64,
                    rows.len(),
                );
                if !whole {
                    let relative: Vec<Range<usize>> = parts
                        .iter()
                        .map(|p| p.start - rows.start..p.end - rows.start)
                        .collect();
                    counts.keep_only(&relative);
                }
                // The local cut: the smallest distance within which `local` rows lie.
                let (mut lo, mut hi) = (0u32, plane_farthest as u32);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    match counts.count_within(mid) >= local {
                        true => hi = mid,
                        false => lo = mid + 1,
                    }
                }
                let near: Vec<(u16, u32)> = counts
                    .rows_within(lo)
                    .into_iter()
                    .map(|i| {
                        (
                            counts.count(i as usize) as u16,
                            (rows.start + i as usize) as u32,
                        )
                    })
                    .collect();
                let mut within = vec![0u64; lo as usize + 1];
                for &(d, _) in &near {
                    within[usize::from(d)] += 1;
                }
                for d in 1..within.len() {
                    within[d] += within[d - 1];
                }
                return ScannedBlock::Planes {
                    counts,
                    within,
                    near,
                };
            }
            let w = c.words();
            let codes = &c.codes()[rows.start * w..rows.end * w];
            // Rows between the runs keep distance u16::MAX and are not counted.
            let mut dist = vec![u16::MAX; rows.len()];
            let mut hist = vec![0u32; bits + 1];
            for part in parts {
                let at = part.start - rows.start..part.end - rows.start;
                hamming_rows_hist(
                    isa,
                    &query_codes[seg],
                    &codes[at.start * w..at.end * w],
                    &mut dist[at],
                    &mut hist,
                );
            }
            let within: Vec<u64> = hist
                .iter()
                .scan(0u64, |sum, &h| {
                    *sum += u64::from(h);
                    Some(*sum)
                })
                .collect();
            let local_cut = within
                .iter()
                .position(|&n| n >= local as u64)
                .unwrap_or(bits);
            let local_cut = u16::try_from(local_cut).unwrap_or(u16::MAX);
            let mut estimated = Vec::with_capacity(local.min(rows.len()));
            for (i, &x) in dist.iter().enumerate() {
                if x <= local_cut {
                    let score = tables.score(&codes[i * w..(i + 1) * w]);
                    estimated.push((x, score, (rows.start + i) as u32));
                }
            }
            ScannedBlock::Rows {
                dist,
                within,
                local_cut,
                estimated,
            }
        };
        let scanned: Vec<ScannedBlock> = if sequential {
            groups.iter().map(scan).collect()
        } else {
            groups.par_iter().map(scan).collect()
        };
        // Each segment's cut: the smallest distance within which its pool lies.
        let mut seg_blocks: Vec<Vec<&ScannedBlock>> = vec![Vec::new(); self.segments.len()];
        for ((seg, _, _), block) in groups.iter().zip(&scanned) {
            seg_blocks[*seg].push(block);
        }
        let cuts: Vec<u16> = seg_blocks
            .iter()
            .zip(&shares)
            .map(|(scanned, &(_, pool))| {
                let most = u16::try_from(farthest).unwrap_or(u16::MAX);
                (0..=most)
                    .find(|&d| scanned.iter().map(|b| b.within(d)).sum::<u64>() >= pool as u64)
                    .unwrap_or(most)
            })
            .collect();
        // The pool's estimates, then the best of each segment's share.
        let pool = |((seg, rows, _), block): (&Group, &ScannedBlock)| {
            let cut = cuts[*seg];
            let scored = |score: f32, row: u32| Scored {
                score,
                segment: *seg as u32,
                row,
            };
            let Some(c) = self.segments[*seg].codes(space) else {
                return Vec::new();
            };
            // The rows still to estimate, read from the codes out of cache.
            let (mut out, rest): (Vec<Scored>, Vec<u32>) = match block {
                ScannedBlock::Empty => (Vec::new(), Vec::new()),
                ScannedBlock::Rows {
                    dist,
                    local_cut,
                    estimated,
                    ..
                } => {
                    let done = estimated
                        .iter()
                        .filter(|(x, _, _)| *x <= cut)
                        .map(|&(_, score, row)| scored(score, row))
                        .collect();
                    // The block holds more of the pool than it estimated: the rest now.
                    let rest = match *local_cut < cut {
                        true => rows_within(dist, local_cut + 1, cut, rows.start),
                        false => Vec::new(),
                    };
                    (done, rest)
                }
                ScannedBlock::Planes {
                    counts,
                    within,
                    near,
                } => {
                    let rest = match usize::from(cut) < within.len() {
                        true => near
                            .iter()
                            .filter(|(x, _)| *x <= cut)
                            .map(|&(_, row)| row)
                            .collect(),
                        false => counts
                            .rows_within(u32::from(cut))
                            .into_iter()
                            .map(|i| (rows.start + i as usize) as u32)
                            .collect(),
                    };
                    (Vec::new(), rest)
                }
            };
            let scores = tables.score_rows(c.codes(), c.words(), &rest);
            out.extend(
                rest.iter()
                    .zip(scores)
                    .map(|(&row, score)| scored(score, row)),
            );
            out
        };
        let found: Vec<Vec<Scored>> = if sequential {
            groups.iter().zip(&scanned).map(pool).collect()
        } else {
            groups.par_iter().zip(&scanned).map(pool).collect()
        };
        let mut per_segment: Vec<Vec<Scored>> = vec![Vec::new(); self.segments.len()];
        for scored in found.into_iter().flatten() {
            per_segment[scored.segment as usize].push(scored);
        }
        let mut out = Vec::new();
        for (mut scored, &(share, _)) in per_segment.into_iter().zip(&shares) {
            if scored.len() > share && share > 0 {
                scored.select_nth_unstable_by(share - 1, Scored::better_first);
            }
            scored.truncate(share);
            out.extend(scored.iter().map(|s| (s.segment, s.row)));
        }
        out
    }

    /// Exact f32 scores of the candidate rows, the best `opts.limit` kept.
    fn rerank(
        &self,
        space: usize,
        query: &[f32],
        candidates: &[(u32, u32)],
        opts: &SearchOptions<'_>,
        non_finite: &check::NonFiniteRows,
    ) -> TopK {
        let floor = opts.min_score.max(0.0);
        let isa = Isa::detect();
        let d = query.len();
        let vector = |&(seg, row): &(u32, u32)| {
            let row_at = row as usize * d;
            self.segments
                .get(seg as usize)?
                .vectors(space)?
                .get(row_at..row_at + d)
        };
        let score = |chunk: &[(u32, u32)]| {
            let mut top = TopK::new(opts.limit);
            if let Some(v) = chunk.first().and_then(vector) {
                crate::kernel::prefetch(v);
            }
            for (i, &(seg, row)) in chunk.iter().enumerate() {
                // The next row is asked for while this one is scored: candidates are
                // scattered, and a row is many cache lines.
                if let Some(next) = chunk.get(i + 1).and_then(vector) {
                    crate::kernel::prefetch(next);
                }
                let Some(v) = vector(&(seg, row)) else {
                    continue;
                };
                let mut s = [0.0f32];
                dot_rows(isa, query, v, &mut s);
                let score = s[0];
                if !score.is_finite() {
                    non_finite.note(seg, row);
                }
                if score > 0.0 && score >= floor && score >= top.threshold() {
                    top.push(Scored {
                        score,
                        segment: seg,
                        row,
                    });
                }
            }
            top
        };
        if opts.sequential {
            score(candidates)
        } else {
            // Small chunks: a re-rank is a few hundred scattered rows, which both threads
            // should share.
            candidates
                .par_chunks(RERANK_CHUNK)
                .map(score)
                .reduce(|| TopK::new(opts.limit), TopK::merge)
        }
    }

    /// Reads every vector row that exact search would score, in the same parallel blocks,
    /// summing the values so the reads cannot be skipped; returns the bytes read. This is
    /// the streaming-read baseline `tp benchmark` measures memory bandwidth with (and a way
    /// to warm the page cache).
    pub fn stream_vectors(&self) -> Result<(u64, f32)> {
        let isa = Isa::detect();
        let sum = self.blocks(None, 0).map(|blocks| {
            blocks
                .par_iter()
                .map(|(seg, rows)| {
                    let segment = &self.segments[*seg].reader;
                    let d = segment.dims();
                    let data = &segment.vectors()[rows.start * d..rows.end * d];
                    ((data.len() * 4) as u64, crate::kernel::sum(isa, data))
                })
                .reduce(|| (0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
        });
        self.checked(sum)
    }

    /// Row ranges to score, cut into blocks: whole segments, or only the rows of files that
    /// pass the filter. Without a filter or deletes, no file record is read; otherwise only
    /// the row ranges (and, with a filter, the paths) of the live files, each checked.
    fn blocks(
        &self,
        filter: Option<&FileFilter>,
        space: usize,
    ) -> Result<Vec<(usize, Range<usize>)>> {
        let filter = filter.filter(|f| !f.is_any());
        let mut ranges: Vec<(usize, Range<usize>)> = Vec::new();
        for (s, seg) in self.segments.iter().enumerate() {
            if seg.vectors(space).is_none() {
                continue;
            }
            if seg.deletes.is_none() && filter.is_none() {
                ranges.push((s, 0..seg.reader.rows()));
                continue;
            }
            for i in seg.live_indexes() {
                let rows = seg.reader.file_rows(i)?;
                if rows.is_empty() {
                    continue;
                }
                if let Some(f) = filter {
                    if !f.matches(seg.reader.file_path(i)?) {
                        continue;
                    }
                }
                // In bounds: file_rows checks the range against the segment's rows.
                let (start, end) = (rows.start as usize, rows.end as usize);
                // Merge with the previous range when adjacent.
                match ranges.last_mut() {
                    Some((ls, r)) if *ls == s && r.end == start => r.end = end,
                    _ => ranges.push((s, start..end)),
                }
            }
        }
        let mut blocks = Vec::new();
        for (s, r) in ranges {
            let mut start = r.start;
            while start < r.end {
                let end = (start + BLOCK_ROWS).min(r.end);
                blocks.push((s, start..end));
                start = end;
            }
        }
        Ok(blocks)
    }

    fn hit(&self, s: Scored) -> Result<Hit> {
        let seg = &self.segments[s.segment as usize].reader;
        // Reads this row's chunk record and its file's record and path, nothing else.
        let rec = seg.chunk(s.row as usize)?;
        let path = seg.file_path(rec.file as usize)?;
        let chunk = ChunkMeta::new(
            path,
            rec.line_start,
            rec.line_end,
            rec.byte_start..rec.byte_end,
            rec.hash,
        )
        .map_err(|source| IndexError::BadMeta {
            path: seg.dir().to_path_buf(),
            source,
        })?;
        Ok(Hit {
            chunk,
            score: s.score.clamp(0.0, 1.0),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{IndexSpec, IndexWriter, NewChunk, WriterOptions};
    use turboprop_storage::{LockWait, MemDirectory};
    use turboprop_types::{ChunkingConfig, ContentHash};

    /// A row of ±1 values (normalized) with the sign pattern of `bits` (bit j: dimension j)
    /// and a little noise, so its code is `bits`.
    fn row(bits: u64, i: u64) -> Vec<f32> {
        (0..64)
            .map(|j| {
                let noise = ((i.wrapping_mul(31).wrapping_add(j) * 2_654_435_761) % 1000) as f32;
                let sign = if bits >> j & 1 == 1 { 1.0 } else { -1.0 };
                sign * (1.0 + noise / 100_000.0) / 8.0
            })
            .collect()
    }

    fn xorshift(mut s: u64) -> u64 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }

    /// 20,000 rows of 64 dimensions in one segment. Rows 4100..4700 (group A) agree with
    /// the query's signs but for dimension 0 and up to 4 others: the smallest Hamming
    /// distances. Rows 4700..5100 (group B) agree on dimension 0, where the query is
    /// largest, and disagree on 20 others: farther by distance, better by estimate. The
    /// rest are random.
    fn index_with_a_decoy_crowd() -> Index {
        index_of(64, 400, |i| {
            let rnd = xorshift(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let bits = match i {
                4100..4700 => {
                    let flips =
                        (0..(rnd % 5)).fold(0u64, |m, k| m | 1 << (1 + xorshift(rnd + k) % 63));
                    !1u64 & !flips
                }
                4700..5100 => {
                    let mut zeros = 0u64;
                    let mut k = rnd;
                    while zeros.count_ones() < 20 {
                        k = xorshift(k);
                        zeros |= 1 << (1 + k % 63);
                    }
                    !zeros
                }
                _ => rnd,
            };
            row(bits, i)
        })
    }

    /// One segment of `files` files of 50 rows of `dims` dimensions, row `i` `vector(i)`.
    fn index_of(dims: u32, files: u64, vector: impl Fn(u64) -> Vec<f32>) -> Index {
        let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
        let spec = IndexSpec {
            model: ModelGuard {
                id: "test-vectors".into(),
                dimensions: dims,
            },
            chunking: ChunkingConfig::default(),
            spaces: Vec::new(),
        };
        let opts = WriterOptions {
            wait: LockWait::NoWait,
            rebuild: true,
            ..WriterOptions::default()
        };
        let mut w = IndexWriter::open_in(Arc::clone(&dir), spec, opts, || {}).expect("writer");
        for f in 0..files {
            let chunks = (0..50u64)
                .map(|r| {
                    let i = f * 50 + r;
                    NewChunk {
                        line_start: (r * 10 + 1) as u32,
                        line_end: (r * 10 + 10) as u32,
                        byte_start: r * 100,
                        byte_end: r * 100 + 100,
                        hash: ContentHash::of(&i.to_le_bytes()),
                        vector: vector(i),
                        terms: Vec::new(),
                        spaces: Vec::new(),
                    }
                })
                .collect();
            let name = format!("src/f{f:04}.rs");
            let record = FileRecord::new(name.as_str(), 5000, 7, ContentHash::of(name.as_bytes()))
                .expect("record");
            w.put_file(record, chunks).expect("put");
        }
        w.commit().expect("commit");
        Index::open_in(dir).expect("open")
    }

    /// The candidates of the 1-bit fast path are exactly those of the plain two-stage
    /// definition (the segment's pool by Hamming distance, every row tied at the cut
    /// included, then the best share by asymmetric estimate), also when one block holds
    /// far more of the pool than it estimates while its codes are in cache.
    #[test]
    fn candidates_are_the_best_estimates_of_the_whole_pool() {
        let index = index_with_a_decoy_crowd();
        let mut query = vec![1.0f32; 64];
        query[0] = 30.0;
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        query.iter_mut().for_each(|x| *x /= norm);
        // A pool of about 1,000 rows: all of group A and some of group B.
        let (want, limit) = (1000usize.div_ceil(POOL_FACTOR), 10);
        let want_rows = best_of_pool(&index, &query, want, |code, qc| {
            code.iter().zip(qc).map(|(a, b)| (a ^ b).count_ones()).sum()
        });
        // Group B wins by estimate, though group A is nearer by distance.
        let b = want_rows
            .iter()
            .filter(|r| (4700..5100).contains(*r))
            .count();
        assert!(b > want / 2, "{b} of group B in {want_rows:?}");
        assert_candidates(&index, &query, want, limit, &want_rows);
    }

    /// The plain two-stage definition of the fast path's candidates in segment 0: the
    /// `want` × [`POOL_FACTOR`] rows nearest by `distance(code, query's code)`, every row
    /// tied at the cut included, then the best `want` of those by asymmetric estimate
    /// (rows ascending).
    fn best_of_pool(
        index: &Index,
        query: &[f32],
        want: usize,
        distance: impl Fn(&[u64], &[u64]) -> u32,
    ) -> Vec<u32> {
        let codes = index.segments[0].codes(0).expect("codes");
        let rows = index.segments[0].reader.rows();
        let mut qc = vec![0u64; codes.words()];
        quant::encode(query, codes.center(), &mut qc);
        let w = codes.words();
        let code = |r: usize| &codes.codes()[r * w..(r + 1) * w];
        let dist: Vec<u32> = (0..rows).map(|r| distance(code(r), &qc)).collect();
        let mut sorted = dist.clone();
        sorted.sort_unstable();
        let cut = sorted[want * POOL_FACTOR - 1];
        let tables = quant::ByteTables::new(query);
        let mut pooled: Vec<Scored> = (0..rows)
            .filter(|&r| dist[r] <= cut)
            .map(|r| Scored {
                score: tables.score(code(r)),
                segment: 0,
                row: r as u32,
            })
            .collect();
        pooled.sort_by(Scored::better_first);
        let mut want_rows: Vec<u32> = pooled[..want].iter().map(|s| s.row).collect();
        want_rows.sort_unstable();
        want_rows
    }

    /// The distance of the fast path's first filter by its definition: mismatches over the
    /// query's [`quant::plane_count`] largest dimensions, the [`quant::doubled_planes`]
    /// largest of them counted twice.
    fn weighted_distance(query: &[f32]) -> impl Fn(&[u64], &[u64]) -> u32 {
        let (planes, doubled) = (
            quant::plane_count(query.len()),
            quant::doubled_planes(query.len()),
        );
        let mut order: Vec<usize> = (0..query.len()).collect();
        order.sort_by(|&a, &b| query[b].abs().total_cmp(&query[a].abs()));
        order.truncate(planes);
        let bit = |code: &[u64], j: usize| (code[j / 64] >> (j % 64)) & 1;
        move |code, qc| {
            order
                .iter()
                .enumerate()
                .filter(|&(_, &j)| bit(code, j) != bit(qc, j))
                .map(|(t, _)| if t < doubled { 2 } else { 1 })
                .sum()
        }
    }

    /// At 768 dimensions the filter reads 192 planes and counts 63 of them twice (so no
    /// distance exceeds 255): the candidates are still the best estimates of that pool.
    #[test]
    fn candidates_at_768_dimensions_follow_the_bounded_weighting() {
        let space = crate::synthetic::LatentSpace::new(768, 11);
        let index = index_of(768, 60, |i| space.vector(i));
        let query = space.query(5);
        assert_eq!(
            (quant::plane_count(768), quant::doubled_planes(768)),
            (192, 63)
        );
        let (want, limit) = (50, 5);
        let want_rows = best_of_pool(&index, &query, want, weighted_distance(&query));
        assert_candidates(&index, &query, want, limit, &want_rows);
    }

    /// The fast path's candidates over every row, in parallel and in sequence, are
    /// `want_rows`.
    fn assert_candidates(
        index: &Index,
        query: &[f32],
        want: usize,
        limit: usize,
        want_rows: &[u32],
    ) {
        let blocks = index.blocks(None, 0).expect("blocks");
        for sequential in [false, true] {
            let got = index.closest_codes(0, query, &blocks, want, limit, sequential);
            let mut got_rows: Vec<u32> = got.iter().map(|&(_, r)| r).collect();
            got_rows.sort_unstable();
            assert_eq!(got_rows, want_rows, "sequential: {sequential}");
        }
    }

    /// Over 384 dimensions the pool is by the distance over the bit planes of the query's
    /// 96 largest dimensions, a mismatch in the largest 48 counting twice: the candidates
    /// are the best estimates of exactly that pool. The query is largest in dimensions
    /// 0..48, then 48..96. Rows 1000..1600 (group X) disagree with it in 20 of 48..96,
    /// rows 3000..3600 (group Y) in 15 of 0..48: Y is nearer by plain Hamming distance over
    /// the 96 (15 against 20), X by the weighted one (20 against 30). The rest are random.
    #[test]
    fn candidates_over_bit_planes_are_the_best_estimates_of_the_weighted_pool() {
        // Row i's sign in dimension j: X and Y agree with the query (all +) in 0..96 but
        // for their chosen mismatches; every other sign is random.
        let zeros = |i: u64, span: Range<u64>, n: u32| {
            let (mut set, mut k) = (0u128, i | 1);
            while set.count_ones() < n {
                k = xorshift(k.wrapping_add(0x9E37));
                set |= 1 << (k % (span.end - span.start));
            }
            (span.start, set)
        };
        let index = index_of(384, 400, |i| {
            let wrong = match i {
                1000..1600 => Some(zeros(i, 48..96, 20)),
                3000..3600 => Some(zeros(i, 0..48, 15)),
                _ => None,
            };
            (0..384u64)
                .map(|j| {
                    let rnd = xorshift((i * 384 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                    let positive = match wrong {
                        Some(_) if j >= 96 => rnd & 1 == 1,
                        Some((at, set)) => !(j >= at && j - at < 128 && set >> (j - at) & 1 == 1),
                        None => rnd & 1 == 1,
                    };
                    let value = (1.0 + (rnd >> 40) as f32 / (1u64 << 24) as f32 / 100.0) / 20.0;
                    if positive {
                        value
                    } else {
                        -value
                    }
                })
                .collect()
        });
        let mut query: Vec<f32> = (0..384)
            .map(|j| match j {
                0..48 => 3.0,
                48..96 => 2.0,
                _ => 1.0,
            })
            .collect();
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        query.iter_mut().for_each(|x| *x /= norm);
        assert!(index.segments[0].codes(0).expect("codes").has_planes());
        let (want, limit) = (100, 10);
        assert_eq!(
            (quant::plane_count(384), quant::doubled_planes(384)),
            (96, 48)
        );
        let want_rows = best_of_pool(&index, &query, want, weighted_distance(&query));
        // The weighted distance keeps group X (Y would be kept by the plain one).
        assert!(
            want_rows.iter().all(|r| (1000..1600).contains(r)),
            "{want_rows:?}"
        );
        assert_candidates(&index, &query, want, limit, &want_rows);
    }
}
