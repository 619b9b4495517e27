//! [`IndexWriter`]: the one process allowed to change an index. It takes the writer lock,
//! collects file changes, and commits them as a new generation: new files under fresh names,
//! synced and checked, then the manifest replaced atomically, then old files collected.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use turboprop_storage::{
    write_doc_freq, IndexDir, LockWait, Manifest, ModelGuard, NewRow, SegmentEntry, SegmentWriter,
    StorageError, TermStatsEntry, WriterLock,
};
use turboprop_types::{ChunkingConfig, ContentHash, FileRecord, IndexConfig, TermId};

use crate::error::{IndexError, Result};
use crate::reader::Index;

/// What an index is built with; a writer refuses to mix two specs in one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Model id and dimensions of the vectors.
    pub model: ModelGuard,
    /// How files were cut into chunks.
    pub chunking: ChunkingConfig,
}

/// How to open a writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Wait for another writer, or fail at once.
    pub wait: LockWait,
    /// Start from an empty index, ignoring (and replacing) whatever is committed, even if
    /// it is damaged or was built with another spec.
    pub rebuild: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            wait: LockWait::Block,
            rebuild: false,
        }
    }
}

/// Why the committed index cannot be updated in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseState {
    /// Nothing committed yet.
    Empty,
    /// The committed index matches the spec and is the base of this update.
    Reused,
    /// The caller asked for a rebuild.
    Rebuild,
    /// The committed index was built with another spec (model or chunking); it is replaced.
    SpecChanged {
        /// The committed spec.
        old: IndexSpec,
    },
}

/// One new chunk of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
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
    /// The chunk's vector, normalized, of the index's dimensions.
    pub vector: Vec<f32>,
    /// The chunk's distinct terms, for embedders that use term statistics (else empty).
    pub terms: Vec<TermId>,
}

#[derive(Debug)]
enum Change {
    Put {
        record: FileRecord,
        chunks: Vec<NewChunk>,
    },
    Touch(FileRecord),
    Remove,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// The new generation (unchanged when there was nothing to commit).
    pub generation: u64,
    /// Whether a new generation was written.
    pub committed: bool,
    /// Files in the index after the commit.
    pub files: u64,
    /// Chunks in the index after the commit.
    pub chunks: u64,
    /// Files added or replaced with new chunks.
    pub files_written: u64,
    /// New chunks (embedded by the caller).
    pub chunks_written: u64,
    /// Files removed.
    pub files_removed: u64,
    /// Bytes written to data files.
    pub bytes_written: u64,
}

/// Exclusive access to an index for updating it.
#[derive(Debug)]
pub struct IndexWriter {
    dir: IndexDir,
    lock: WriterLock,
    spec: IndexSpec,
    base: Option<Index>,
    base_state: BaseState,
    next_generation: u64,
    changes: BTreeMap<String, Change>,
}

impl IndexWriter {
    /// Opens the index folder `path` for writing, creating it if needed. Takes the writer
    /// lock (calling `on_wait` once if it must wait for another writer). Unless
    /// `opts.rebuild`, the committed index is opened (and must be intact) to be updated.
    pub fn open(
        path: impl AsRef<Path>,
        spec: IndexSpec,
        opts: WriterOptions,
        on_wait: impl FnOnce(),
    ) -> Result<IndexWriter> {
        let dir = IndexDir::new(path.as_ref());
        if !dir.exists() {
            dir.init(&IndexConfig::default())?;
        }
        let lock = dir.lock(opts.wait, on_wait)?;
        // Leftovers of a crashed writer: temp files and uncommitted segments.
        let (base, base_state, next_generation) = if opts.rebuild {
            let last = dir
                .read_manifest()
                .ok()
                .flatten()
                .map_or(0, |m| m.generation);
            let next = last.max(dir.highest_generation_on_disk()?) + 1;
            (None, BaseState::Rebuild, next)
        } else {
            dir.check_version()?;
            match dir.read_manifest()? {
                None => {
                    dir.collect_garbage(&lock, None)?;
                    let next = dir.highest_generation_on_disk()? + 1;
                    (None, BaseState::Empty, next)
                }
                Some(manifest) => {
                    dir.collect_garbage(&lock, Some(&manifest))?;
                    let next = manifest.generation + 1;
                    let old = IndexSpec {
                        model: manifest.model.clone(),
                        chunking: manifest.chunking.clone(),
                    };
                    if old != spec {
                        (None, BaseState::SpecChanged { old }, next)
                    } else {
                        // The writer lock is held, so this generation cannot change under us.
                        (Some(Index::open(dir.root())?), BaseState::Reused, next)
                    }
                }
            }
        };
        Ok(IndexWriter {
            dir,
            lock,
            spec,
            base,
            base_state,
            next_generation,
            changes: BTreeMap::new(),
        })
    }

    /// The committed index this update starts from (`None` when empty, rebuilding, or the
    /// spec changed).
    pub fn base(&self) -> Option<&Index> {
        self.base.as_ref()
    }

    /// Why the base is what it is.
    pub fn base_state(&self) -> &BaseState {
        &self.base_state
    }

    /// The spec of this writer.
    pub fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    /// Adds a file or replaces all chunks of it.
    pub fn put_file(&mut self, record: FileRecord, chunks: Vec<NewChunk>) -> Result<()> {
        let dims = self.spec.model.dimensions as usize;
        for c in &chunks {
            if c.vector.len() != dims {
                return Err(IndexError::InvalidVector {
                    what: record.path().to_owned(),
                    reason: format!("{} dimensions, index has {dims}", c.vector.len()),
                });
            }
            if c.vector.iter().any(|v| !v.is_finite()) {
                return Err(IndexError::InvalidVector {
                    what: record.path().to_owned(),
                    reason: "non-finite value".to_owned(),
                });
            }
            if c.line_start == 0 || c.line_end < c.line_start || c.byte_end < c.byte_start {
                return Err(IndexError::InvalidVector {
                    what: record.path().to_owned(),
                    reason: "chunk with an invalid line or byte range".to_owned(),
                });
            }
        }
        self.changes
            .insert(record.path().to_owned(), Change::Put { record, chunks });
        Ok(())
    }

    /// Records new size and modification time for a file whose content is unchanged; its
    /// chunks are kept without re-embedding. Without a base holding the file, it is ignored.
    pub fn touch_file(&mut self, record: FileRecord) {
        self.changes
            .insert(record.path().to_owned(), Change::Touch(record));
    }

    /// Removes a file and its chunks.
    pub fn remove_file(&mut self, path: &str) {
        self.changes.insert(path.to_owned(), Change::Remove);
    }

    /// Whether anything would be committed.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty() || self.base.is_none()
    }

    /// Commits the changes as a new generation. With no changes over an intact base,
    /// nothing is written.
    pub fn commit(self) -> Result<CommitStats> {
        if !self.has_changes() {
            let stats = self.base.as_ref().map(Index::stats);
            return Ok(CommitStats {
                generation: stats.as_ref().map_or(0, |s| s.generation),
                committed: false,
                files: stats.as_ref().map_or(0, |s| s.files),
                chunks: stats.as_ref().map_or(0, |s| s.chunks),
                ..CommitStats::default()
            });
        }
        let generation = self.next_generation;
        let seg_name = IndexDir::segment_name(generation);
        let mut seg = SegmentWriter::create(&self.dir.path(&seg_name), self.spec.model.dimensions)?;
        let mut df: BTreeMap<TermId, u32> = BTreeMap::new();
        let mut stats = CommitStats {
            generation,
            committed: true,
            ..CommitStats::default()
        };

        // Base files by path, for merging with the changes in path order.
        let mut base_files: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        if let Some(base) = &self.base {
            for (s, i, f) in base.segment_files() {
                base_files.insert(f.record.path(), (s, i));
            }
        }
        let mut paths: Vec<&str> = base_files.keys().copied().collect();
        paths.extend(self.changes.keys().map(String::as_str));
        paths.sort_unstable();
        paths.dedup();

        for path in paths {
            match (self.changes.get(path), base_files.get(path)) {
                (Some(Change::Remove), old) => {
                    if old.is_some() {
                        stats.files_removed += 1;
                    }
                }
                (Some(Change::Put { record, chunks }), _) => {
                    let terms = file_terms(chunks);
                    for &(t, n) in &terms {
                        *df.entry(t).or_default() += n;
                    }
                    let rows = chunks.iter().map(|c| NewRow {
                        line_start: c.line_start,
                        line_end: c.line_end,
                        byte_start: c.byte_start,
                        byte_end: c.byte_end,
                        hash: c.hash,
                        vector: &c.vector,
                    });
                    seg.add_file(record.clone(), rows, &terms)?;
                    stats.files_written += 1;
                    stats.chunks_written += chunks.len() as u64;
                }
                (change, Some(&(s, i))) => {
                    let record = match change {
                        Some(Change::Touch(r)) => r.clone(),
                        _ => self.base_record(s, i).clone(),
                    };
                    self.copy_file(&mut seg, s, i, record, &mut df)?;
                }
                (Some(Change::Touch(_)), None) | (None, None) => {}
            }
        }
        let summary = seg.finish()?;
        stats.files = summary.files;
        stats.chunks = summary.rows;
        stats.bytes_written = summary.bytes;

        let term_stats = if df.is_empty() {
            None
        } else {
            let name = IndexDir::doc_freq_name(generation);
            let path = self.dir.path(&name);
            write_doc_freq(&path, summary.rows, &df)?;
            stats.bytes_written += std::fs::metadata(&path)
                .map_err(|e| StorageError::io("stat", &path, e))?
                .len();
            Some(TermStatsEntry {
                name,
                documents: summary.rows,
            })
        };
        let manifest = Manifest {
            generation,
            updated_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            model: self.spec.model.clone(),
            chunking: self.spec.chunking.clone(),
            segments: vec![SegmentEntry {
                name: seg_name,
                rows: summary.rows,
                files: summary.files,
            }],
            term_stats,
        };
        // The commit point. Before this line a crash leaves the previous generation; after
        // it, the new one.
        self.dir.commit(&self.lock, &manifest)?;
        // Close our maps of the old generation before removing its files.
        let IndexWriter {
            dir, lock, base, ..
        } = self;
        drop(base);
        dir.collect_garbage(&lock, Some(&manifest))?;
        Ok(stats)
    }

    fn base_record(&self, s: usize, i: usize) -> &FileRecord {
        // `s` and `i` come from iterating the base's own files.
        &self.base_segments()[s].files()[i].record
    }

    fn base_segments(&self) -> &[turboprop_storage::SegmentReader] {
        self.base.as_ref().map_or(&[], |b| b.segments())
    }

    fn copy_file(
        &self,
        seg: &mut SegmentWriter,
        s: usize,
        i: usize,
        record: FileRecord,
        df: &mut BTreeMap<TermId, u32>,
    ) -> Result<()> {
        let reader = &self.base_segments()[s];
        let file = &reader.files()[i];
        let terms = reader.file_terms(i)?;
        for &(t, n) in &terms {
            *df.entry(t).or_default() += n;
        }
        let first = file.first_row as usize;
        let mut rows = Vec::with_capacity(file.rows as usize);
        for row in first..first + file.rows as usize {
            let rec = reader.chunk(row)?;
            let vector = reader.vector(row).ok_or_else(|| {
                StorageError::corrupt(reader.dir(), format!("row {row} out of bounds"))
            })?;
            rows.push(NewRow {
                line_start: rec.line_start,
                line_end: rec.line_end,
                byte_start: rec.byte_start,
                byte_end: rec.byte_end,
                hash: rec.hash,
                vector,
            });
        }
        seg.add_file(record, rows, &terms)?;
        Ok(())
    }
}

/// For each distinct term of a file, the number of its chunks that contain it.
fn file_terms(chunks: &[NewChunk]) -> Vec<(TermId, u32)> {
    let mut counts: HashMap<TermId, u32> = HashMap::new();
    for c in chunks {
        let mut seen: Vec<TermId> = c.terms.clone();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            *counts.entry(t).or_default() += 1;
        }
    }
    let mut v: Vec<(TermId, u32)> = counts.into_iter().collect();
    v.sort_unstable();
    v
}
