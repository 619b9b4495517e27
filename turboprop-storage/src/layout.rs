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
//! files no manifest names are removed by the next writer.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use turboprop_types::{ChunkingConfig, IndexConfig};

use crate::atomic::{atomic_write, remove_temp_files, sync_dir};
use crate::document::{encode_document, read_document};
use crate::error::{Result, StorageError};
use crate::lock::{LockWait, WriterLock};

/// Layout version written to `version.txt`.
pub const LAYOUT_VERSION: u32 = 1;

const VERSION_FILE: &str = "version.txt";
const CONFIG_FILE: &str = "config.yaml";
const MANIFEST_FILE: &str = "manifest.json";
const LOCK_FILE: &str = "writer.lock";

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
    /// The chunking the rows were cut with.
    pub chunking: ChunkingConfig,
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
}

/// The index folder (`.turboprop/index`).
#[derive(Debug, Clone)]
pub struct IndexDir {
    root: PathBuf,
}

impl IndexDir {
    /// The index folder at `root` (nothing is read or created).
    pub fn new(root: impl Into<PathBuf>) -> IndexDir {
        IndexDir { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of an entry inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Path of `manifest.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.path(MANIFEST_FILE)
    }

    /// Path of `config.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.path(CONFIG_FILE)
    }

    /// Whether the folder looks like a turboprop index (has `version.txt`).
    pub fn exists(&self) -> bool {
        self.path(VERSION_FILE).is_file()
    }

    /// Whether the folder holds segments or delete sets (committed or left by a crash).
    pub fn has_data(&self) -> bool {
        self.list()
            .map(|names| names.iter().any(|n| Self::generation_of(n).is_some()))
            .unwrap_or(false)
    }

    /// Whether anything in the folder is a name turboprop writes (so the folder is an index,
    /// perhaps damaged or left half-made by a killed first run, and not someone else's).
    pub fn has_turboprop_entries(&self) -> bool {
        self.list()
            .map(|names| {
                names.iter().any(|n| {
                    [VERSION_FILE, CONFIG_FILE, MANIFEST_FILE, LOCK_FILE].contains(&n.as_str())
                        || n.starts_with(crate::atomic::TEMP_PREFIX)
                        || Self::generation_of(n).is_some()
                })
            })
            .unwrap_or(false)
    }

    /// Creates the folder, `version.txt` and (if absent) `config.yaml`. Idempotent.
    pub fn init(&self, config: &IndexConfig) -> Result<()> {
        fs::create_dir_all(&self.root)
            .map_err(|e| StorageError::io("create folder", &self.root, e))?;
        if !self.path(VERSION_FILE).exists() {
            self.write_version()?;
        }
        if !self.config_path().exists() {
            self.write_config(config)?;
        }
        Ok(())
    }

    /// Writes `version.txt` again (after damage), atomically.
    pub fn write_version(&self) -> Result<()> {
        atomic_write(
            &self.path(VERSION_FILE),
            format!("turboprop-index {LAYOUT_VERSION}\n").as_bytes(),
        )
    }

    /// Checks `version.txt`.
    pub fn check_version(&self) -> Result<()> {
        let path = self.path(VERSION_FILE);
        let text = fs::read_to_string(&path).map_err(|e| StorageError::io("read", &path, e))?;
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
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(IndexConfig::default()),
            Err(e) => return Err(StorageError::io("read", &path, e)),
        };
        let config: IndexConfig = if text.trim().is_empty() {
            IndexConfig::default()
        } else {
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
        atomic_write(&path, text.as_bytes())
    }

    /// Reads the manifest; `Ok(None)` when nothing has been committed yet.
    pub fn read_manifest(&self) -> Result<Option<Manifest>> {
        match read_document(&self.manifest_path(), "manifest") {
            Ok(m) => Ok(Some(m)),
            Err(StorageError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes the writer lock.
    pub fn lock(&self, wait: LockWait, on_wait: impl FnOnce()) -> Result<WriterLock> {
        WriterLock::acquire(&self.path(LOCK_FILE), wait, on_wait)
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
        let entries =
            fs::read_dir(&self.root).map_err(|e| StorageError::io("list", &self.root, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("list", &self.root, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    /// Publishes `manifest` atomically. The caller must hold the writer lock and have synced
    /// everything the manifest names.
    pub fn commit(&self, _lock: &WriterLock, manifest: &Manifest) -> Result<()> {
        let path = self.manifest_path();
        crate::failpoint::check("manifest:write", &path)?;
        atomic_write(&path, &encode_document(&path, "manifest", manifest)?)
    }

    /// Removes segments and tables that `live` does not name, and temp files left by a crash.
    /// Readers that already opened an older generation keep their mappings; a reader that
    /// finds a file gone re-reads the manifest. Returns how many entries were removed.
    pub fn collect_garbage(&self, _lock: &WriterLock, live: Option<&Manifest>) -> Result<usize> {
        let keep = live.map(Manifest::live_names).unwrap_or_default();
        let mut removed = remove_temp_files(&self.root)?;
        for name in self.list()? {
            let ours = Self::generation_of(&name).is_some();
            if !ours || keep.contains(&name) {
                continue;
            }
            let path = self.path(&name);
            crate::failpoint::check("gc:remove", &path)?;
            let result = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove", &path, e)),
            }
        }
        sync_dir(&self.root)?;
        Ok(removed)
    }
}
