//! [`IndexWriter`]: the one process allowed to change an index. It takes the writer lock,
//! collects file changes, and commits them as a new generation: new files under fresh names,
//! synced and checked, then the manifest replaced atomically, then old files collected.

mod apply;
mod changes;
mod plan;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use turboprop_storage::{
    check_space_key, space_key, Directory, IndexDir, LockWait, Manifest, ModelGuard, ReadMode,
    SpaceEntry, StorageError, WriterLock, MAX_TERM_BYTES,
};
use turboprop_types::{
    check_kind, check_symbol, ChunkingConfig, CompactionConfig, ContentHash, FileRecord,
    IndexConfig, LexicalTerms, TermId,
};

use crate::error::{IndexError, Result};
use crate::reader::{Index, LiveSegment, SegmentDamage};
use apply::copied_spaces;
use changes::Changes;
use plan::compaction_plan;

/// What an index is built with; a writer refuses to mix two specs in one index.
///
/// Besides the primary vectors (`model`), an index may hold any number of additional vector
/// spaces (`spaces`): vectors of the same chunks made by other models, each under its own
/// model guard. Adding a space to an existing index keeps the primary vectors: the files of
/// segments that lack the space are re-written with the new space's vectors only
/// ([`IndexWriter::fill_file`]). Changing `model` or `chunking` replaces the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Model id and dimensions of the primary vectors.
    pub model: ModelGuard,
    /// How files were cut into chunks.
    pub chunking: ChunkingConfig,
    /// Additional vector spaces, by model (distinct [`space_key`]s of their ids).
    pub spaces: Vec<ModelGuard>,
    /// The rules of the exact lexical space (the analyzer's id, such as
    /// `turboprop_embed::LEXICAL_ID`): every chunk then carries its terms
    /// ([`NewChunk::lexical`]) and segments hold postings for BM25.
    /// `None`: no lexical space.
    pub lexical: Option<String>,
}

impl IndexSpec {
    /// A spec with only the primary vectors of `model`.
    pub fn new(model: ModelGuard, chunking: ChunkingConfig) -> IndexSpec {
        IndexSpec {
            lexical: None,
            model,
            chunking,
            spaces: Vec::new(),
        }
    }

    /// The spec's additional spaces as the manifest records them.
    fn space_entries(&self) -> Result<Vec<SpaceEntry>> {
        let mut out: Vec<SpaceEntry> = Vec::with_capacity(self.spaces.len());
        for model in &self.spaces {
            let key = space_key(&model.id);
            let bad = |reason: String| IndexError::InvalidVector {
                what: format!("space {}", model.id),
                reason,
            };
            check_space_key(&key).map_err(bad)?;
            if out.iter().any(|e| e.key == key) {
                return Err(bad("two spaces with the same key".to_owned()));
            }
            if model.dimensions == 0 {
                return Err(bad("zero dimensions".to_owned()));
            }
            out.push(SpaceEntry {
                key,
                model: model.clone(),
            });
        }
        Ok(out)
    }
}

/// How to open a writer.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterOptions {
    /// Wait for another writer, or fail at once.
    pub wait: LockWait,
    /// Start from an empty index, ignoring (and replacing) whatever is committed, even if
    /// it is damaged or was built with another spec.
    pub rebuild: bool,
    /// When commits merge segments.
    pub compaction: CompactionConfig,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            wait: LockWait::Block,
            rebuild: false,
            compaction: CompactionConfig::default(),
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

/// What a file of the base lacks ([`IndexWriter::files_lacking`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lacking {
    /// Vectors in one of the spec's additional spaces.
    pub spaces: bool,
    /// Postings in the spec's lexical space.
    pub lexical: bool,
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
    /// The chunk's vector in each additional space of the spec, in order (empty without).
    pub spaces: Vec<Vec<f32>>,
    /// The symbol the chunk defines (`Table::deal`), from a syntax-aware chunker: 1 to
    /// 1,024 bytes (see [`turboprop_types::check_symbol`]), or `None`.
    pub symbol: Option<String>,
    /// The symbol's kind (`method`): 1 to 32 characters of `a-z`, `0-9`, `_` and `-` (see
    /// [`turboprop_types::check_kind`]), or `None`.
    pub kind: Option<String>,
    /// The chunk's exact terms: required when the spec has a lexical space
    /// ([`IndexSpec::lexical`]), refused otherwise.
    pub lexical: Option<LexicalTerms>,
}

#[derive(Debug)]
enum Change {
    Put {
        record: FileRecord,
        chunks: Vec<NewChunk>,
    },
    Touch(FileRecord),
    /// The file's rows are kept; its vectors in the spec's spaces are new.
    Fill {
        record: FileRecord,
        spaces: Vec<Vec<Vec<f32>>>,
        /// Each row's lexical terms (empty without a lexical space).
        lexical: Vec<LexicalTerms>,
    },
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
    /// Bytes written: new segment, delete sets and manifest.
    pub bytes_written: u64,
    /// Live segments after the commit.
    pub segments: usize,
    /// Old segments merged into the new one by compaction.
    pub segments_merged: usize,
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
    compaction: CompactionConfig,
    changes: BTreeMap<String, Change>,
    /// The spec's additional spaces as the manifest records them.
    space_entries: Vec<SpaceEntry>,
    /// Whether damaged segments were dropped from the base: the next commit must write a
    /// manifest without them even if nothing else changed.
    dropped: bool,
    /// Segments left out of the base by [`Self::open_repairing`], not yet reported.
    salvaged: Vec<SegmentDamage>,
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
        Self::open_dir(IndexDir::new(path.as_ref()), spec, opts, on_wait, false)
    }

    /// [`Self::open`] for the index held by `dir` (see [`Index::open_in`] for an example).
    pub fn open_in(
        dir: Arc<dyn Directory>,
        spec: IndexSpec,
        opts: WriterOptions,
        on_wait: impl FnOnce(),
    ) -> Result<IndexWriter> {
        Self::open_dir(IndexDir::with_directory(dir), spec, opts, on_wait, false)
    }

    /// [`Self::open`] for repairing: a segment of the committed index that does not open
    /// because it is damaged is left out of the base instead of failing the open, as
    /// [`Self::drop_damaged_segments`] drops the segments it finds damaged (and reports
    /// both). The next commit writes a manifest without them; their files are no longer in
    /// [`Self::base`], so the caller indexes them again. Damage that leaves no manifest to
    /// build on (the manifest or `version.txt`) still fails the open.
    pub fn open_repairing(
        path: impl AsRef<Path>,
        spec: IndexSpec,
        opts: WriterOptions,
        on_wait: impl FnOnce(),
    ) -> Result<IndexWriter> {
        Self::open_dir(IndexDir::new(path.as_ref()), spec, opts, on_wait, true)
    }

    /// [`Self::open_repairing`] for the index held by `dir`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use turboprop_index::{
    ///     Directory, IndexSpec, IndexWriter, MemDirectory, ModelGuard, WriterOptions,
    /// };
    /// use turboprop_types::ChunkingConfig;
    ///
    /// let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    /// let spec = IndexSpec::new(
    ///     ModelGuard { id: "my-vectors".into(), dimensions: 2 },
    ///     ChunkingConfig::default(),
    /// );
    /// let opts = WriterOptions::default();
    /// let mut writer = IndexWriter::open_in_repairing(dir, spec, opts, || {})?;
    /// for damage in writer.drop_damaged_segments() {
    ///     eprintln!("{}: {} files to index again", damage.name, damage.files);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_in_repairing(
        dir: Arc<dyn Directory>,
        spec: IndexSpec,
        opts: WriterOptions,
        on_wait: impl FnOnce(),
    ) -> Result<IndexWriter> {
        Self::open_dir(IndexDir::with_directory(dir), spec, opts, on_wait, true)
    }

    fn open_dir(
        dir: IndexDir,
        spec: IndexSpec,
        opts: WriterOptions,
        on_wait: impl FnOnce(),
        salvage: bool,
    ) -> Result<IndexWriter> {
        let space_entries = spec.space_entries()?;
        dir.directory().create_root()?;
        let lock = dir.lock(opts.wait, on_wait)?;
        // Under the lock, so two first runs never race on version.txt and config.yaml.
        if !dir.exists()? {
            dir.init(&IndexConfig::default())?;
        }
        let mut salvaged = Vec::new();
        // Leftovers of a crashed writer: temp files and uncommitted segments.
        let (base, base_state, next_generation) = if opts.rebuild {
            // A rebuild replaces damaged files; anything else (a folder it may not read, say)
            // is still an error, never taken for damage or absence.
            match dir.check_version() {
                Ok(()) => {}
                Err(e) if e.is_damage() || matches!(e, StorageError::UnsupportedVersion { .. }) => {
                    dir.write_version()?
                }
                Err(e) => return Err(e.into()),
            }
            let last = match dir.read_manifest() {
                Ok(manifest) => manifest.map_or(0, |m| m.generation),
                Err(e) if e.is_damage() => 0,
                Err(e) => return Err(e.into()),
            };
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
                        lexical: manifest.lexical.clone(),
                        model: manifest.model.clone(),
                        chunking: manifest.chunking.clone(),
                        spaces: manifest.spaces.iter().map(|s| s.model.clone()).collect(),
                    };
                    // Spaces may come and go over the same rows; the rows themselves
                    // (model and chunking) must be the same.
                    if old.model != spec.model || old.chunking != spec.chunking {
                        (None, BaseState::SpecChanged { old }, next)
                    } else {
                        // The writer lock is held, so this generation cannot change under us.
                        let base = if salvage {
                            let (base, damage) =
                                Index::open_dir_salvaging(dir.clone(), ReadMode::Mmap)?;
                            salvaged = damage;
                            base
                        } else {
                            Index::open_dir(dir.clone(), ReadMode::Mmap)?
                        };
                        (Some(base), BaseState::Reused, next)
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
            compaction: opts.compaction,
            changes: BTreeMap::new(),
            space_entries,
            dropped: !salvaged.is_empty(),
            salvaged,
        })
    }

    /// The live files of the base whose segment lacks one of the spec's spaces (or holds a
    /// space of the same key made by another model) or the spec's lexical space: they must be
    /// given what they lack with [`Self::fill_file`] (or be put again with
    /// [`Self::put_file`]) before they can be searched in those spaces. Builds the file lists
    /// of those segments.
    pub fn files_lacking_spaces(&self) -> Result<Vec<&FileRecord>> {
        Ok(self.files_lacking()?.into_iter().map(|(f, _)| f).collect())
    }

    /// [`Self::files_lacking_spaces`], with what each file lacks.
    pub fn files_lacking(&self) -> Result<Vec<(&FileRecord, Lacking)>> {
        let Some(base) = &self.base else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (s, seg) in base.live_segments().iter().enumerate() {
            let lacking = Lacking {
                spaces: !self.segment_has_model_spaces(base, s),
                lexical: !self.segment_has_lexical(base, s),
            };
            if !lacking.spaces && !lacking.lexical {
                continue;
            }
            for (_, f) in base.checked(seg.live_files())? {
                out.push((&f.record, lacking));
            }
        }
        Ok(out)
    }

    /// The vectors in the spec's additional spaces of the chunks of the base's files named
    /// in `paths`, by chunk content hash. A changed file's unchanged chunks need not be
    /// embedded again: the same bytes through the same model give the same vectors. Only
    /// segments holding every space of the spec, made by the spec's models, are used, and a
    /// file's rows are checked against their recorded hash first, so damage is never
    /// carried forward. Empty when the spec has no additional space.
    pub fn reusable_vectors(
        &self,
        paths: &std::collections::HashSet<&str>,
    ) -> Result<ReusableVectors> {
        let mut out = HashMap::new();
        let Some(base) = &self.base else {
            return Ok(out);
        };
        if self.space_entries.is_empty() || paths.is_empty() {
            return Ok(out);
        }
        let keys: Vec<&str> = self.space_entries.iter().map(|e| e.key.as_str()).collect();
        for (s, seg) in base.live_segments().iter().enumerate() {
            if !self.segment_has_spaces(base, s) {
                continue;
            }
            for (i, f) in base.checked(seg.live_files())? {
                if !paths.contains(f.record.path()) {
                    continue;
                }
                let reader = &seg.reader;
                reader.verify_file_rows(i)?;
                let spaces = copied_spaces(reader, i, &keys)?;
                let range = reader.file_rows(i)?;
                let mut by_hash = HashMap::new();
                for (j, row) in (range.start as usize..range.end as usize).enumerate() {
                    let rec = reader.chunk(row)?;
                    let vectors = spaces
                        .iter()
                        .zip(&self.spec.spaces)
                        .map(|(rows, model)| {
                            let d = model.dimensions as usize;
                            rows.get(j * d..(j + 1) * d).map(<[f32]>::to_vec)
                        })
                        .collect::<Option<Vec<_>>>();
                    if let Some(v) = vectors {
                        by_hash.insert(rec.hash, v);
                    }
                }
                out.insert(f.record.path().to_owned(), by_hash);
            }
        }
        Ok(out)
    }

    /// Whether base segment `s` holds every space of the spec, made by the spec's models,
    /// and the spec's lexical space.
    fn segment_has_spaces(&self, base: &Index, s: usize) -> bool {
        self.segment_has_lexical(base, s) && self.segment_has_model_spaces(base, s)
    }

    /// Whether base segment `s` holds postings made by the spec's lexical rules (or the spec
    /// has none).
    fn segment_has_lexical(&self, base: &Index, s: usize) -> bool {
        match &self.spec.lexical {
            None => true,
            Some(id) => {
                base.manifest().lexical.as_ref() == Some(id)
                    && base.live_segments()[s].reader.lexical().is_some()
            }
        }
    }

    /// Whether base segment `s` holds every additional space of the spec, made by the spec's
    /// models.
    fn segment_has_model_spaces(&self, base: &Index, s: usize) -> bool {
        let entry = &base.manifest().segments[s];
        let made_by = |key: &str| {
            base.manifest()
                .spaces
                .iter()
                .find(|e| e.key == key)
                .map(|e| &e.model)
        };
        self.space_entries.iter().all(|want| {
            entry.spaces.iter().any(|have| have.key == want.key)
                && made_by(&want.key) == Some(&want.model)
        })
    }

    /// Gives a file of the base its vectors in the spec's additional spaces, keeping its
    /// primary vectors, chunk records and terms: `spaces[k]` holds one vector per chunk (in
    /// row order) for space `k` of the spec, or `spaces` is empty to keep the vectors the
    /// file's segment has in every space of the spec (a file lacking only the lexical space).
    /// The file is rewritten into the new segment; `record` must describe the same content
    /// (same hash) as the indexed file. With a lexical space in the spec, `lexical` holds each
    /// chunk's terms (in row order), or is empty to keep the segment's.
    pub fn fill_file(
        &mut self,
        record: FileRecord,
        spaces: Vec<Vec<Vec<f32>>>,
        lexical: Vec<LexicalTerms>,
    ) -> Result<()> {
        if !spaces.is_empty() && spaces.len() != self.spec.spaces.len() {
            return Err(IndexError::InvalidVector {
                what: record.path().to_owned(),
                reason: format!(
                    "vectors of {} spaces, the spec has {}",
                    spaces.len(),
                    self.spec.spaces.len()
                ),
            });
        }
        for (model, rows) in self.spec.spaces.iter().zip(&spaces) {
            for v in rows {
                check_vector(record.path(), v, model.dimensions as usize)?;
            }
        }
        if self.spec.lexical.is_none() && !lexical.is_empty() {
            return Err(IndexError::InvalidVector {
                what: record.path().to_owned(),
                reason: "lexical terms for an index without a lexical space".to_owned(),
            });
        }
        for (row, terms) in lexical.iter().enumerate() {
            self.check_lexical(record.path(), row as u32 + 1, Some(terms))?;
        }
        self.changes.insert(
            record.path().to_owned(),
            Change::Fill {
                record,
                spaces,
                lexical,
            },
        );
        Ok(())
    }

    /// Checks the base for damage ([`Index::damaged_segments`]: checksums, records, vector
    /// values, files live twice) and drops every damaged segment from it, so that nothing
    /// damaged is carried into the next generation: the files of a dropped segment are no
    /// longer in [`Self::base`], and the caller indexes them again as new files. The next
    /// commit writes a manifest without the dropped segments, even with no other change.
    /// Returns what was found (empty when the base is intact), with the segments
    /// [`Self::open_repairing`] left out first. Reads every file of the base.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use turboprop_index::{
    ///     Directory, IndexSpec, IndexWriter, MemDirectory, ModelGuard, WriterOptions,
    /// };
    /// use turboprop_types::ChunkingConfig;
    ///
    /// let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    /// let spec = IndexSpec {
    ///     lexical: None,
    ///     model: ModelGuard { id: "my-vectors".into(), dimensions: 2 },
    ///     chunking: ChunkingConfig::default(),
    ///     spaces: vec![],
    /// };
    /// let mut writer = IndexWriter::open_in(dir, spec, WriterOptions::default(), || {})?;
    /// assert!(writer.drop_damaged_segments().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drop_damaged_segments(&mut self) -> Vec<SegmentDamage> {
        let mut found = std::mem::take(&mut self.salvaged);
        let Some(base) = &mut self.base else {
            return found;
        };
        let damage = base.damaged_segments();
        if !damage.is_empty() {
            let drop: Vec<usize> = damage.iter().map(|d| d.segment).collect();
            base.forget_segments(&drop);
            self.dropped = true;
        }
        found.extend(damage);
        found
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
            check_vector(record.path(), &c.vector, dims)?;
            if c.spaces.len() != self.spec.spaces.len() {
                return Err(IndexError::InvalidVector {
                    what: record.path().to_owned(),
                    reason: format!(
                        "vectors of {} additional spaces, the spec has {}",
                        c.spaces.len(),
                        self.spec.spaces.len()
                    ),
                });
            }
            for (v, model) in c.spaces.iter().zip(&self.spec.spaces) {
                check_vector(record.path(), v, model.dimensions as usize)?;
            }
            if c.line_start == 0 || c.line_end < c.line_start || c.byte_end < c.byte_start {
                return Err(IndexError::InvalidVector {
                    what: record.path().to_owned(),
                    reason: "chunk with an invalid line or byte range".to_owned(),
                });
            }
            let symbol = c.symbol.as_deref().map_or(Ok(()), check_symbol);
            if let Err(e) = symbol.and_then(|()| c.kind.as_deref().map_or(Ok(()), check_kind)) {
                return Err(IndexError::InvalidVector {
                    what: record.path().to_owned(),
                    reason: format!("chunk at line {}: {e}", c.line_start),
                });
            }
            self.check_lexical(record.path(), c.line_start, c.lexical.as_ref())?;
        }
        self.changes
            .insert(record.path().to_owned(), Change::Put { record, chunks });
        Ok(())
    }

    /// Checks a chunk's lexical terms against the spec: present exactly when it has a lexical
    /// space, sorted and distinct, each term 1 to [`MAX_TERM_BYTES`] bytes with a finite
    /// frequency above zero, and a finite length of at least zero.
    fn check_lexical(&self, path: &str, line: u32, terms: Option<&LexicalTerms>) -> Result<()> {
        let bad = |reason: String| IndexError::InvalidVector {
            what: path.to_owned(),
            reason: format!("chunk at line {line}: {reason}"),
        };
        let Some(t) = terms else {
            return match &self.spec.lexical {
                Some(id) => Err(bad(format!("no lexical terms for the lexical space {id}"))),
                None => Ok(()),
            };
        };
        if self.spec.lexical.is_none() {
            return Err(bad(
                "lexical terms for an index without a lexical space".into()
            ));
        }
        if !(t.length().is_finite() && t.length() >= 0.0) {
            return Err(bad(format!("lexical length {}", t.length())));
        }
        let mut previous: Option<&str> = None;
        for (term, tf) in t.iter() {
            if term.is_empty() || term.len() > MAX_TERM_BYTES {
                return Err(bad(format!(
                    "a lexical term of {} bytes (1 to {MAX_TERM_BYTES})",
                    term.len()
                )));
            }
            if !(tf.is_finite() && tf > 0.0) {
                return Err(bad(format!("term frequency {tf} for {term:?}")));
            }
            if previous.is_some_and(|p| p.as_bytes() >= term.as_bytes()) {
                return Err(bad("lexical terms not sorted and distinct".into()));
            }
            previous = Some(term);
        }
        Ok(())
    }

    /// Records new size and modification time for a file whose content is unchanged; its
    /// chunks are kept without re-embedding. Without a base holding the file (or a `put_file`
    /// of it in this update), it is ignored.
    pub fn touch_file(&mut self, record: FileRecord) {
        match self.changes.get_mut(record.path()) {
            // Touching a file put in this same update just updates its record.
            Some(Change::Put { record: r, .. }) | Some(Change::Fill { record: r, .. }) => {
                *r = record
            }
            _ => {
                self.changes
                    .insert(record.path().to_owned(), Change::Touch(record));
            }
        }
    }

    /// Removes a file and its chunks.
    pub fn remove_file(&mut self, path: &str) {
        self.changes.insert(path.to_owned(), Change::Remove);
    }

    /// Whether anything would be committed.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
            || self.dropped
            || self
                .base
                .as_ref()
                .is_none_or(|b| b.manifest().spaces != self.space_entries)
    }

    /// Commits the changes as a new generation: the new and changed files go into one new
    /// segment, their old rows are marked deleted in their segments' delete sets, and
    /// segments are merged when the compaction thresholds say so. With no changes over an
    /// intact base, nothing is written.
    pub fn commit(mut self) -> Result<CommitStats> {
        let (stats, manifest) = self.write_generation().inspect_err(|_| self.clean_up())?;
        if let Some(manifest) = manifest {
            // Close our maps of the old generation before removing its files.
            let IndexWriter {
                dir, lock, base, ..
            } = self;
            drop(base);
            dir.collect_garbage(&lock, Some(&manifest))?;
        }
        Ok(stats)
    }

    /// Commits like [`IndexWriter::commit`] and keeps the writer (and its lock) for more
    /// changes on top of the new generation, which becomes the base. A long update commits
    /// this way in batches, so an interrupted run keeps every batch committed before it.
    pub fn commit_and_continue(&mut self) -> Result<CommitStats> {
        let (stats, manifest) = self.write_generation().inspect_err(|_| self.clean_up())?;
        if let Some(manifest) = manifest {
            self.base = None;
            self.dir.collect_garbage(&self.lock, Some(&manifest))?;
            self.base = Some(Index::open_dir(self.dir.clone(), ReadMode::Mmap)?);
            self.base_state = BaseState::Reused;
            self.next_generation = stats.generation + 1;
            self.changes.clear();
            self.dropped = false;
        }
        Ok(stats)
    }

    /// After a failed commit, removes what it wrote: every segment, delete set and temp
    /// file that the manifest now on disk does not name (read again, since a failure after
    /// the commit point leaves the new generation committed). Best effort: the commit's own
    /// error is what the caller sees, and the next writer collects whatever is left.
    fn clean_up(&self) {
        if let Ok(committed) = self.dir.read_manifest() {
            let _ = self.dir.collect_garbage(&self.lock, committed.as_ref());
        }
    }

    /// Writes the changes as the next generation and makes it the committed one; returns
    /// its manifest (`None` when there was nothing to write). A failure while a file of the
    /// base changed under its mapping is reported as that change.
    fn write_generation(&mut self) -> Result<(CommitStats, Option<Manifest>)> {
        let written = self.write_new_generation();
        match &self.base {
            Some(base) => base.checked(written),
            None => written,
        }
    }

    /// Plans the commit (the files' moves and deletes, then the compaction) and applies it.
    fn write_new_generation(&mut self) -> Result<(CommitStats, Option<Manifest>)> {
        if !self.has_changes() {
            let stats = self.base.as_ref().map(Index::stats);
            let stats = CommitStats {
                generation: stats.as_ref().map_or(0, |s| s.generation),
                committed: false,
                files: stats.as_ref().map_or(0, |s| s.files),
                chunks: stats.as_ref().map_or(0, |s| s.chunks),
                segments: self.base.as_ref().map_or(0, Index::segment_count),
                ..CommitStats::default()
            };
            return Ok((stats, None));
        }
        let generation = self.next_generation;
        let mut stats = CommitStats {
            generation,
            committed: true,
            ..CommitStats::default()
        };
        let segments: &[LiveSegment] = self.base.as_ref().map_or(&[], |b| b.live_segments());

        // Which base segments hold every space of the spec (only those can be copied from).
        let complete: Vec<bool> = match &self.base {
            Some(b) => (0..segments.len())
                .map(|s| self.segment_has_spaces(b, s))
                .collect(),
            None => Vec::new(),
        };
        let mut changes = Changes::plan(segments, complete, &self.changes, &mut stats)?;

        // Compaction: segments with too many deleted rows (or none live) are merged into the
        // new segment; so are all but the largest when there are too many segments.
        let merge = compaction_plan(
            &changes.segment_facts(),
            !changes.incoming.is_empty(),
            &self.compaction,
        );
        changes.take_merged(&merge, &mut stats)?;

        self.apply(generation, &merge, &changes, stats)
    }
}

/// Vectors in the additional spaces of indexed chunks: by file path, then by chunk content
/// hash, one vector per space (see [`IndexWriter::reusable_vectors`]).
pub type ReusableVectors = HashMap<String, HashMap<ContentHash, Vec<Vec<f32>>>>;

/// Checks a vector's length and values.
fn check_vector(what: &str, v: &[f32], dims: usize) -> Result<()> {
    if v.len() != dims {
        return Err(IndexError::InvalidVector {
            what: what.to_owned(),
            reason: format!("{} dimensions, index has {dims}", v.len()),
        });
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(IndexError::InvalidVector {
            what: what.to_owned(),
            reason: "non-finite value".to_owned(),
        });
    }
    Ok(())
}
