//! The index folder and its commit point.
//!
//! ```text
//! .turboprop/index/
//!   version.txt        layout version ("turboprop-index 1")
//!   config.yaml        the IndexConfig (user-editable)
//!   manifest.json      the commit point: names the live segments (document)
//!   writer.lock        the writer lock file
//!   seg-00000007/      a segment (see segment.rs), never modified once written
//!   del-00000007-00000009.bin  segment 7's delete set as of generation 9
//! ```
//! A commit writes a new segment folder and delete sets under fresh names, syncs them, then
//! atomically replaces `manifest.json`. Readers read the manifest once and open what it names;
//! files no manifest names are removed by the next writer. Every byte goes through the
//! folder's [`Directory`], on disk or in memory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use turboprop_types::{ChunkMethod, ChunkingConfig, IndexConfig};

use crate::atomic::TEMP_PREFIX;
use crate::directory::{Directory, FsDirectory};
use crate::document::{encode_document, read_document_at_most};
use crate::error::{Result, StorageError};
use crate::lock::{LockWait, WriterLock};
use crate::mmap::ReadMode;

/// Layout version written to `version.txt`.
pub const LAYOUT_VERSION: u32 = 1;

/// The layout version file.
pub const VERSION_FILE: &str = "version.txt";
/// The user-editable settings.
pub const CONFIG_FILE: &str = "config.yaml";
/// The commit point.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The writer lock.
pub const LOCK_FILE: &str = "writer.lock";

/// The largest `version.txt` read: one short line.
pub const MAX_VERSION_BYTES: u64 = 1024;
/// The largest `config.yaml` read: a handful of settings with comments.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// The deepest nesting of brackets or block sequences accepted in `config.yaml` (its
/// settings nest two levels); checked before parsing, whose cost grows with the square of the
/// depth.
pub const MAX_CONFIG_DEPTH: usize = 32;
/// The most segments a manifest may name. Compaction keeps a live index to a few dozen; each
/// segment maps about ten files, so this also bounds the memory maps a reader makes.
pub const MAX_SEGMENTS: usize = 4096;
/// The most vector spaces a manifest may name.
pub const MAX_SPACES: usize = 64;
/// The largest `manifest.json` read: [`MAX_SEGMENTS`] entries with room to spare.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// The model an index was built with; searches with another model are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelGuard {
    /// The embedder's model id.
    pub id: String,
    /// Vector dimensions.
    pub dimensions: u32,
}

/// A live segment named by the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Folder name inside the index folder.
    pub name: String,
    /// Rows in the segment (live or deleted).
    pub rows: u64,
    /// Files in the segment (live or deleted).
    pub files: u64,
    /// The segment's current delete set, if any of its files were deleted.
    #[serde(default)]
    pub deletes: Option<DeleteEntry>,
    /// Whether the segment has 1-bit codes of its vectors (`codes.bin`, `center.bin`) for
    /// the fast search path. Segments written before codes existed have none and are
    /// always scanned exactly.
    #[serde(default)]
    pub codes: bool,
    /// Whether the segment has int8 codes of its (sparse) vectors (`codes8.bin`) for the
    /// fast search path. Absent in manifests written before they existed: `false`.
    #[serde(default)]
    pub codes8: bool,
    /// Whether the segment's 1-bit codes also have bit planes (`planes.bin`, the codes
    /// dimension-major), which the fast path scans instead of `codes.bin`. Absent in
    /// manifests written before they existed: `false`.
    #[serde(default)]
    pub planes: bool,
    /// The additional vector spaces the segment holds (`vectors.<key>.bin`), by key, in the
    /// segment's order. A segment written before a space was added lacks it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spaces: Vec<SegmentSpace>,
}

/// An additional vector space held by a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSpace {
    /// The space's key (see [`crate::check_space_key`]).
    pub key: String,
    /// Whether the space has 1-bit codes (`codes.<key>.bin`, `center.<key>.bin`).
    #[serde(default)]
    pub codes: bool,
    /// Whether the space has int8 codes (`codes8.<key>.bin`, sparse vectors).
    #[serde(default)]
    pub codes8: bool,
    /// Whether the space's 1-bit codes have bit planes (`planes.<key>.bin`).
    #[serde(default)]
    pub planes: bool,
}

/// An additional vector space of an index: a second model's vectors of the same chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceEntry {
    /// The key naming the space's files (see [`crate::space_key`]).
    pub key: String,
    /// The model that made the space's vectors; searches with another are refused.
    pub model: ModelGuard,
}

impl SegmentEntry {
    /// Rows not deleted.
    pub fn live_rows(&self) -> u64 {
        self.rows - self.deletes.as_ref().map_or(0, |d| d.rows.min(self.rows))
    }

    /// Files not deleted.
    pub fn live_files(&self) -> u64 {
        self.files - self.deletes.as_ref().map_or(0, |d| d.files.min(self.files))
    }
}

/// A segment's delete set named by the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteEntry {
    /// File name inside the index folder.
    pub name: String,
    /// Deleted files.
    pub files: u64,
    /// Rows of the deleted files.
    pub rows: u64,
}

/// The commit point: everything a reader needs to find the live data of one generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Increases by one with every commit.
    pub generation: u64,
    /// When the commit was made, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// The model the vectors were made with.
    pub model: ModelGuard,
    /// The chunking the rows were cut with. A manifest written before `method` existed
    /// records windows: its rows were all cut into them.
    #[serde(deserialize_with = "recorded_chunking")]
    pub chunking: ChunkingConfig,
    /// Additional vector spaces beside the primary `model`'s, each with its own model
    /// guard. Segments that lack one of them (written before it was added) are not searched
    /// in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spaces: Vec<SpaceEntry>,
    /// The rules of the exact lexical space (the analyzer's id), when the index has one:
    /// segments of format 5 hold postings made by them. Segments without postings (written
    /// before) are not searched by them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexical: Option<String>,
    /// Live segments, oldest first.
    pub segments: Vec<SegmentEntry>,
}

impl Manifest {
    /// Live rows (chunks) in all segments.
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(SegmentEntry::live_rows).sum()
    }

    /// Live files in all segments.
    pub fn files(&self) -> u64 {
        self.segments.iter().map(SegmentEntry::live_files).sum()
    }

    /// Names of every file or folder this manifest keeps alive.
    pub fn live_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for s in &self.segments {
            names.insert(s.name.clone());
            if let Some(d) = &s.deletes {
                names.insert(d.name.clone());
            }
        }
        names
    }

    /// Fails unless every segment and delete set is named once: a manifest naming one twice
    /// would have searches return its hits twice and commits carry the damage forward.
    /// [`IndexDir::read_manifest`] checks this.
    ///
    /// ```
    /// use std::path::Path;
    /// use turboprop_storage::{Manifest, ModelGuard, SegmentEntry};
    /// use turboprop_types::ChunkingConfig;
    ///
    /// let segment = SegmentEntry {
    ///     name: "seg-00000001".into(), rows: 3, files: 1, deletes: None,
    ///     codes: false, codes8: false, planes: false, spaces: vec![],
    /// };
    /// let mut manifest = Manifest {
    ///     generation: 1, updated_at_ms: 0,
    ///     model: ModelGuard { id: "m".into(), dimensions: 2 },
    ///     chunking: ChunkingConfig::default(), spaces: vec![], lexical: None,
    ///     segments: vec![segment.clone()],
    /// };
    /// let path = Path::new("manifest.json");
    /// assert!(manifest.check_names(path).is_ok());
    /// manifest.segments.push(segment);
    /// let err = manifest.check_names(path).unwrap_err();
    /// assert!(err.is_damage());
    /// assert!(err.to_string().contains("names seg-00000001 more than once"));
    /// ```
    pub fn check_names(&self, path: &Path) -> Result<()> {
        let mut seen = BTreeSet::new();
        for s in &self.segments {
            let names = std::iter::once(&s.name).chain(s.deletes.as_ref().map(|d| &d.name));
            for name in names {
                if !seen.insert(name.as_str()) {
                    return Err(StorageError::corrupt(
                        path,
                        format!("names {name} more than once"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The chunking a manifest records. Manifests written before syntax-aware chunking have no
/// `method`: their rows were cut into line windows, which is what they are read as (the
/// default `method` of `config.yaml`, where it may be left out, is syntax).
fn recorded_chunking<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<ChunkingConfig, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let legacy = value.get("method").is_none();
    let mut chunking = ChunkingConfig::deserialize(value).map_err(serde::de::Error::custom)?;
    if legacy {
        chunking.method = ChunkMethod::Windows;
    }
    Ok(chunking)
}

/// The deepest nesting in a YAML text: flow brackets (`[`, `{`) and block sequences opened
/// on one line (`- - - x`), counted without parsing. Quotes and comments are not skipped, so
/// the count can only err high; `config.yaml`'s own settings nest two levels.
fn yaml_depth(text: &str) -> usize {
    let mut deepest = 0;
    let mut flow = 0usize;
    for line in text.lines() {
        let dashes = line
            .trim_start()
            .split_inclusive(' ')
            .take_while(|part| part.trim_end() == "-")
            .count();
        let indent = line.len() - line.trim_start().len();
        deepest = deepest.max(dashes + indent / 2);
        for b in line.bytes() {
            match b {
                b'[' | b'{' => {
                    flow += 1;
                    deepest = deepest.max(flow);
                }
                b']' | b'}' => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

/// The index folder (`.turboprop/index`), in a [`Directory`]. Clones share the directory.
#[derive(Debug, Clone)]
pub struct IndexDir {
    store: Arc<dyn Directory>,
    /// The directory's location, for messages.
    root: PathBuf,
}

impl IndexDir {
    /// The index folder at `root` on disk (nothing is read or created).
    pub fn new(root: impl Into<PathBuf>) -> IndexDir {
        IndexDir::with_directory(Arc::new(FsDirectory::new(root)))
    }

    /// The index folder held by `store` (nothing is read or created).
    pub fn with_directory(store: Arc<dyn Directory>) -> IndexDir {
        let root = store.location("");
        IndexDir { store, root }
    }

    /// The directory holding the files.
    pub fn directory(&self) -> &dyn Directory {
        &*self.store
    }

    /// The folder's location (its path on disk).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Location of an entry inside the folder (its path on disk).
    pub fn path(&self, name: &str) -> PathBuf {
        self.store.location(name)
    }

    /// Path of `manifest.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.path(MANIFEST_FILE)
    }

    /// Path of `config.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.path(CONFIG_FILE)
    }

    /// Whether the folder looks like a turboprop index (has `version.txt`). Errors other
    /// than absence (a folder that cannot be read, a link in place of the folder) are errors.
    pub fn exists(&self) -> Result<bool> {
        self.store.exists(VERSION_FILE)
    }

    /// Whether `manifest.json` exists (it may still be damaged).
    pub fn has_manifest(&self) -> Result<bool> {
        self.store.exists(MANIFEST_FILE)
    }

    /// The folder's entries; a folder that does not exist has none.
    fn names_if_any(&self) -> Result<Vec<String>> {
        if !self.store.exists("")? {
            return Ok(Vec::new());
        }
        self.list()
    }

    /// Whether the folder holds segments or delete sets (committed or left by a crash).
    pub fn has_data(&self) -> Result<bool> {
        Ok(self
            .names_if_any()?
            .iter()
            .any(|n| Self::generation_of(n).is_some()))
    }

    /// Whether anything in the folder is a name turboprop writes (so the folder is an index,
    /// perhaps damaged or left half-made by a killed first run, and not someone else's).
    pub fn has_turboprop_entries(&self) -> Result<bool> {
        Ok(self.names_if_any()?.iter().any(|n| {
            [VERSION_FILE, CONFIG_FILE, MANIFEST_FILE, LOCK_FILE].contains(&n.as_str())
                || n.starts_with(TEMP_PREFIX)
                || Self::generation_of(n).is_some()
        }))
    }

    /// Creates the folder, `version.txt` and (if absent) `config.yaml`. Idempotent.
    pub fn init(&self, config: &IndexConfig) -> Result<()> {
        self.store.create_root()?;
        if !self.store.exists(VERSION_FILE)? {
            self.write_version()?;
        }
        if !self.store.exists(CONFIG_FILE)? {
            self.write_config(config)?;
        }
        Ok(())
    }

    /// Writes `version.txt` again (after damage), atomically.
    pub fn write_version(&self) -> Result<()> {
        self.store.replace(
            VERSION_FILE,
            format!("turboprop-index {LAYOUT_VERSION}\n").as_bytes(),
        )
    }

    /// Reads a small text file, whole, refusing one longer than `max` bytes.
    fn read_text(&self, name: &str, max: u64) -> Result<String> {
        let file = self.store.read_at_most(name, ReadMode::Heap, max)?;
        String::from_utf8(file.bytes().to_vec()).map_err(|e| StorageError::Io {
            op: "read",
            path: file.path().to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// Checks `version.txt`.
    pub fn check_version(&self) -> Result<()> {
        let path = self.path(VERSION_FILE);
        let text = self.read_text(VERSION_FILE, MAX_VERSION_BYTES)?;
        let version = text
            .trim()
            .strip_prefix("turboprop-index ")
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| StorageError::BadMagic {
                path: path.clone(),
                kind: "version",
            })?;
        if version != LAYOUT_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path,
                found: version,
                supported: LAYOUT_VERSION,
            });
        }
        Ok(())
    }

    /// Reads and validates `config.yaml`; a missing file gives the defaults.
    pub fn read_config(&self) -> Result<IndexConfig> {
        let path = self.config_path();
        let text = match self.read_text(CONFIG_FILE, MAX_CONFIG_BYTES) {
            Ok(t) => t,
            Err(e) if e.is_missing() => return Ok(IndexConfig::default()),
            Err(e) => return Err(e),
        };
        let config: IndexConfig = if text.trim().is_empty() {
            IndexConfig::default()
        } else {
            if yaml_depth(&text) > MAX_CONFIG_DEPTH {
                return Err(StorageError::corrupt(
                    &path,
                    format!("nested more than {MAX_CONFIG_DEPTH} levels deep"),
                ));
            }
            serde_yaml::from_str(&text).map_err(|source| StorageError::Yaml {
                path: path.clone(),
                source,
            })?
        };
        config
            .validate()
            .map_err(|e| StorageError::corrupt(&path, e.to_string()))?;
        Ok(config)
    }

    /// Writes `config.yaml` atomically.
    pub fn write_config(&self, config: &IndexConfig) -> Result<()> {
        let path = self.config_path();
        let yaml = serde_yaml::to_string(config).map_err(|source| StorageError::Yaml {
            path: path.clone(),
            source,
        })?;
        let text = format!(
            "# turboprop index settings; changing chunking re-chunks every file on the next tp index\n{yaml}"
        );
        self.store.replace(CONFIG_FILE, text.as_bytes())
    }

    /// Reads the manifest; `Ok(None)` when nothing has been committed yet.
    pub fn read_manifest(&self) -> Result<Option<Manifest>> {
        let manifest: Manifest = match read_document_at_most(
            &*self.store,
            MANIFEST_FILE,
            "manifest",
            MAX_MANIFEST_BYTES,
        ) {
            Ok(m) => m,
            Err(StorageError::Missing { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let path = self.manifest_path();
        if manifest.segments.len() > MAX_SEGMENTS {
            return Err(StorageError::corrupt(
                &path,
                format!(
                    "names {} segments, more than the {MAX_SEGMENTS} an index can have",
                    manifest.segments.len()
                ),
            ));
        }
        if manifest.spaces.len() > MAX_SPACES
            || manifest
                .segments
                .iter()
                .any(|s| s.spaces.len() > MAX_SPACES)
        {
            return Err(StorageError::corrupt(
                &path,
                format!("names more than the {MAX_SPACES} vector spaces an index can have"),
            ));
        }
        manifest.check_names(&path)?;
        Ok(Some(manifest))
    }

    /// Takes the writer lock.
    pub fn lock(&self, wait: LockWait, on_wait: impl FnOnce()) -> Result<WriterLock> {
        let mut on_wait = Some(on_wait);
        self.store.lock(LOCK_FILE, wait, &mut || {
            if let Some(f) = on_wait.take() {
                f();
            }
        })
    }

    /// A name for generation `generation`'s segment folder.
    pub fn segment_name(generation: u64) -> String {
        format!("seg-{generation:08}")
    }

    /// A name for the delete set of segment `segment` written by generation `generation`.
    pub fn delete_set_name(segment: &str, generation: u64) -> String {
        let id = segment.strip_prefix("seg-").unwrap_or(segment);
        format!("del-{id}-{generation:08}.bin")
    }

    /// The generation number in a segment or delete-set name.
    fn generation_of(name: &str) -> Option<u64> {
        if let Some(id) = name.strip_prefix("seg-") {
            return id.parse().ok();
        }
        let rest = name.strip_prefix("del-")?.strip_suffix(".bin")?;
        rest.rsplit('-').next()?.parse().ok()
    }

    /// The highest generation number found in segment or table names, for choosing the next
    /// one when the manifest is unreadable.
    pub fn highest_generation_on_disk(&self) -> Result<u64> {
        let mut highest = 0;
        for name in self.list()? {
            if let Some(g) = Self::generation_of(&name) {
                highest = highest.max(g);
            }
        }
        Ok(highest)
    }

    fn list(&self) -> Result<Vec<String>> {
        self.store.list("")
    }

    /// Publishes `manifest` atomically. The caller must hold the writer lock and have synced
    /// everything the manifest names.
    pub fn commit(&self, _lock: &WriterLock, manifest: &Manifest) -> Result<()> {
        let path = self.manifest_path();
        crate::failpoint::check("manifest:write", &path)?;
        self.store.replace(
            MANIFEST_FILE,
            &encode_document(&path, "manifest", manifest)?,
        )
    }

    /// Removes entry `name`; one already gone (removed by someone else) is not an error.
    fn remove_if_present(&self, name: &str) -> Result<bool> {
        match self.store.remove(name) {
            Ok(()) => Ok(true),
            Err(e) if e.is_missing() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes temp files left by a writer that crashed. Call only while holding the writer
    /// lock. Returns how many were removed.
    pub fn remove_temp_files(&self, _lock: &WriterLock) -> Result<usize> {
        let mut removed = 0;
        for name in self.list()? {
            if name.starts_with(TEMP_PREFIX) && self.remove_if_present(&name)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes segments and tables that `live` does not name, and temp files left by a crash.
    /// Readers that already opened an older generation keep their mappings; a reader that
    /// finds a file gone re-reads the manifest. Returns how many entries were removed.
    pub fn collect_garbage(&self, lock: &WriterLock, live: Option<&Manifest>) -> Result<usize> {
        let keep = live.map(Manifest::live_names).unwrap_or_default();
        let mut removed = self.remove_temp_files(lock)?;
        for name in self.list()? {
            let ours = Self::generation_of(&name).is_some();
            if !ours || keep.contains(&name) {
                continue;
            }
            crate::failpoint::check("gc:remove", &self.path(&name))?;
            if self.remove_if_present(&name)? {
                removed += 1;
            }
        }
        self.store.sync_dir("")?;
        Ok(removed)
    }
}
