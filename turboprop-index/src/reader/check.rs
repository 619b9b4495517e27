//! Damage checks of an opened index, segment by segment: what `tp verify` reports and what
//! `tp index` looks for before it builds on the committed generation.
//!
//! A segment is damaged when a file of it fails its checksum, a chunk or file record breaks
//! an invariant, a vector holds a non-finite value (NaN or infinity: a valid checksum
//! does not make it a vector a search can rank), or a live file of it is also live in
//! another segment. Findings are per segment, so a writer can drop exactly the damaged
//! segments and index their files again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use turboprop_storage::{
    space_file, DeleteSet, FaultWatch, IndexDir, ReadMode, StorageError, VECTORS_FILE,
};

use super::{Index, LiveSegment};
use crate::error::IndexError;
use crate::kernel::{self, Isa};

/// Rows whose values are summed at once when looking for non-finite values: a sum that is
/// finite proves every value of the block finite, and only a block whose sum is not is
/// searched value by value.
const FINITE_BLOCK_ROWS: usize = 4096;

/// The damage found in one segment of an index.
#[derive(Debug)]
pub struct SegmentDamage {
    /// The segment's position among the segments of the generation checked (manifest order).
    pub segment: usize,
    /// The segment's folder name (`seg-00000007`).
    pub name: String,
    /// Live files of the segment (whose rows are lost with it).
    pub files: u64,
    /// What is wrong, each naming the damaged file; never empty.
    pub problems: Vec<IndexError>,
}

impl Index {
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

    /// Checks every segment of the index for damage: every byte of every file against its
    /// checksum, every chunk and file record, every vector value (NaN and infinity are
    /// damage), and that no file is live in two segments. Returns the damaged segments
    /// (empty when the index is intact). Reads every file of the index whole.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use turboprop_index::{
    ///     Directory, Index, IndexSpec, IndexWriter, MemDirectory, ModelGuard, NewChunk,
    ///     WriterOptions,
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
    /// assert!(Index::open_in(dir)?.damaged_segments().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn damaged_segments(&self) -> Vec<SegmentDamage> {
        let mut found: Vec<Vec<IndexError>> =
            self.segments.par_iter().map(segment_problems).collect();
        // A path live in two segments: neither can be trusted to be the current one.
        let mut owner: HashMap<&str, usize> = HashMap::new();
        for (s, seg) in self.segments.iter().enumerate() {
            if !found[s].is_empty() {
                continue;
            }
            let files = match seg.live_files() {
                Ok(files) => files,
                Err(e) => {
                    found[s].push(e);
                    continue;
                }
            };
            for (_, f) in files {
                let path = f.record.path();
                if let Some(&first) = owner.get(path) {
                    for t in [first, s] {
                        let problem = StorageError::corrupt(
                            self.segments[t].reader.dir(),
                            format!("{path} is live in two segments"),
                        );
                        found[t].push(problem.into());
                    }
                } else {
                    owner.insert(path, s);
                }
            }
        }
        found
            .into_iter()
            .enumerate()
            .filter(|(_, problems)| !problems.is_empty())
            .map(|(s, problems)| SegmentDamage {
                segment: s,
                name: self.manifest.segments[s].name.clone(),
                files: self.manifest.segments[s].live_files(),
                problems,
            })
            .collect()
    }

    /// Removes the live segments at `drop` (positions in manifest order) from this opened
    /// generation, as if the manifest did not name them: their files are no longer indexed.
    pub(crate) fn forget_segments(&mut self, drop: &[usize]) {
        let mut s = 0;
        self.manifest.segments.retain(|_| {
            s += 1;
            !drop.contains(&(s - 1))
        });
        let mut s = 0;
        self.segments.retain(|_| {
            s += 1;
            !drop.contains(&(s - 1))
        });
    }
}

/// Everything wrong with one segment on its own (at most one problem per file).
fn segment_problems(seg: &LiveSegment) -> Vec<IndexError> {
    let mut problems: Vec<IndexError> = Vec::new();
    if let Err(e) = seg.reader.verify() {
        problems.push(e.into());
    }
    if let Some(Err(e)) = seg.deletes.as_ref().map(DeleteSet::verify) {
        problems.push(e.into());
    }
    let spaces = seg.spaces.iter().flatten().map(|d| &d.codes);
    for codes in std::iter::once(&seg.codes).chain(spaces) {
        if let Err(e) = codes.verify() {
            problems.push(e);
        }
    }
    for row in 0..seg.reader.rows() {
        if let Err(e) = seg
            .reader
            .chunk(row)
            .and(seg.reader.chunk_symbol(row).map(|_| ()))
        {
            problems.push(e.into());
            break;
        }
    }
    let dir = seg.reader.dir();
    if let Err(e) = check_finite(
        seg.reader.vectors(),
        seg.reader.dims(),
        &dir.join(VECTORS_FILE),
    ) {
        problems.push(e.into());
    }
    for (k, space) in seg.reader.spaces().iter().enumerate() {
        let path = dir.join(space_file(VECTORS_FILE, Some(&space.key)));
        if let Err(e) = check_finite(
            seg.reader.space_vectors(k),
            space.dimensions as usize,
            &path,
        ) {
            problems.push(e.into());
        }
    }
    problems
}

/// Fails naming `path` and the first row of `vectors` (rows of `dims` values) that holds a
/// NaN or an infinity.
pub(crate) fn check_finite(vectors: &[f32], dims: usize, path: &Path) -> Result<(), StorageError> {
    let dims = dims.max(1);
    let isa = Isa::detect();
    for (b, block) in vectors.chunks(FINITE_BLOCK_ROWS * dims).enumerate() {
        // Vectors are normalized, so a finite block sums to a finite number; a block of
        // huge finite values that overflows is searched and passes.
        if kernel::sum(isa, block).is_finite() {
            continue;
        }
        if let Some(i) = block.iter().position(|v| !v.is_finite()) {
            return Err(non_finite(path, b * FINITE_BLOCK_ROWS + i / dims));
        }
    }
    Ok(())
}

/// The damage of a vector holding a NaN or an infinity.
pub(crate) fn non_finite(path: &Path, row: usize) -> StorageError {
    StorageError::corrupt(
        path,
        format!("the vector of row {row} holds a non-finite value (NaN or infinity)"),
    )
}

/// The first row a search scored as NaN or infinity (only a vector holding such a value
/// scores so against a finite query): damage the search reports rather than ranking
/// around it. Shared by the threads of one search; the lowest (segment, row) wins, so the
/// error does not depend on how the work was split.
pub(crate) struct NonFiniteRows(AtomicU64);

impl NonFiniteRows {
    /// None seen yet.
    pub(crate) fn new() -> Self {
        NonFiniteRows(AtomicU64::new(u64::MAX))
    }

    /// Records that row `row` of segment `segment` scored non-finite.
    pub(crate) fn note(&self, segment: u32, row: u32) {
        let key = (u64::from(segment) << 32) | u64::from(row);
        self.0.fetch_min(key, Ordering::Relaxed);
    }

    /// Fails naming the vectors file (of space `space`) and row of the first row noted.
    pub(crate) fn check(&self, index: &Index, space: usize) -> Result<(), IndexError> {
        let key = self.0.load(Ordering::Relaxed);
        if key == u64::MAX {
            return Ok(());
        }
        let (segment, row) = ((key >> 32) as usize, (key & u64::from(u32::MAX)) as usize);
        let Some(seg) = index.segments.get(segment) else {
            return Ok(());
        };
        let key = match space {
            0 => None,
            k => index.manifest.spaces.get(k - 1).map(|s| s.key.as_str()),
        };
        let path = seg.reader.dir().join(space_file(VECTORS_FILE, key));
        Err(non_finite(&path, row).into())
    }
}

impl Index {
    /// Opens the committed generation like [`Index::open_dir`], except that a segment that
    /// does not open because it is damaged is left out (as if the manifest did not name
    /// it) and returned as damage, positioned in the manifest read. For a writer holding the
    /// lock: no other writer can remove files under it, so a missing file is damage.
    pub(crate) fn open_dir_salvaging(
        dir: IndexDir,
        mode: ReadMode,
    ) -> Result<(Index, Vec<SegmentDamage>), IndexError> {
        let mut manifest = Self::read_manifest(&dir)?;
        // Started before anything is mapped, as in `open_dir`.
        let watch = FaultWatch::start();
        let mut segments = Vec::with_capacity(manifest.segments.len());
        let mut damage = Vec::new();
        for (s, entry) in manifest.segments.iter().enumerate() {
            match LiveSegment::open(&dir, entry, &manifest, mode) {
                Ok(seg) => segments.push(seg),
                Err(e) if e.is_damage() => damage.push(SegmentDamage {
                    segment: s,
                    name: entry.name.clone(),
                    files: entry.live_files(),
                    problems: vec![e],
                }),
                Err(e) => return Err(e),
            }
        }
        let mut s = 0;
        manifest.segments.retain(|_| {
            s += 1;
            !damage.iter().any(|d| d.segment == s - 1)
        });
        let index = Index {
            dir,
            manifest,
            segments,
            watch,
        };
        index.check_intact()?;
        Ok((index, damage))
    }
}
