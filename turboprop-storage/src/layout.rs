//! The index folder and its commit point.
//!
//! ```text
//! .turboprop/index/
//!   version.txt        layout version ("turboprop-index 1")
//!   config.yaml        the IndexConfig (user-editable)
//!   manifest.json      the commit point: names the live segments (document)
//!   writer.lock        the writer lock file
//!   seg-00000007/      a segment (see segment.rs), never modified once written
//!   df-00000007.bin    the document-frequency table of generation 7
//! ```
//! A commit writes new segment folders and tables under fresh names, syncs them, then
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
    /// Rows in the segment.
    pub rows: u64,
    /// Files in the segment.
    pub files: u64,
}

/// The document-frequency table named by the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermStatsEntry {
    /// File name inside the index folder.
    pub name: String,
    /// Chunks counted.
    pub documents: u64,
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
    /// Live segments, in order.
    pub segments: Vec<SegmentEntry>,
    /// The term statistics, for embedders that use them.
    #[serde(default)]
    pub term_stats: Option<TermStatsEntry>,
}

impl Manifest {
    /// Total rows in all segments.
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    /// Total files in all segments.
    pub fn files(&self) -> u64 {
        self.segments.iter().map(|s| s.files).sum()
    }

    /// Names of every file or folder this manifest keeps alive.
    pub fn live_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.segments.iter().map(|s| s.name.clone()).collect();
        if let Some(t) = &self.term_stats {
            names.insert(t.name.clone());
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

    /// Creates the folder, `version.txt` and (if absent) `config.yaml`. Idempotent.
    pub fn init(&self, config: &IndexConfig) -> Result<()> {
        fs::create_dir_all(&self.root)
            .map_err(|e| StorageError::io("create folder", &self.root, e))?;
        if !self.path(VERSION_FILE).exists() {
            atomic_write(
                &self.path(VERSION_FILE),
                format!("turboprop-index {LAYOUT_VERSION}\n").as_bytes(),
            )?;
        }
        if !self.config_path().exists() {
            self.write_config(config)?;
        }
        Ok(())
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

    /// A name for generation `generation`'s document-frequency table.
    pub fn doc_freq_name(generation: u64) -> String {
        format!("df-{generation:08}.bin")
    }

    /// The highest generation number found in segment or table names, for choosing the next
    /// one when the manifest is unreadable.
    pub fn highest_generation_on_disk(&self) -> Result<u64> {
        let mut highest = 0;
        for name in self.list()? {
            let digits = name.strip_prefix("seg-").or_else(|| {
                name.strip_prefix("df-")
                    .and_then(|n| n.strip_suffix(".bin"))
            });
            if let Some(g) = digits.and_then(|d| d.parse::<u64>().ok()) {
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
        atomic_write(&path, &encode_document(&path, "manifest", manifest)?)
    }

    /// Removes segments and tables that `live` does not name, and temp files left by a crash.
    /// Readers that already opened an older generation keep their mappings; a reader that
    /// finds a file gone re-reads the manifest. Returns how many entries were removed.
    pub fn collect_garbage(&self, _lock: &WriterLock, live: Option<&Manifest>) -> Result<usize> {
        let keep = live.map(Manifest::live_names).unwrap_or_default();
        let mut removed = remove_temp_files(&self.root)?;
        for name in self.list()? {
            let ours =
                name.starts_with("seg-") || (name.starts_with("df-") && name.ends_with(".bin"));
            if !ours || keep.contains(&name) {
                continue;
            }
            let path = self.path(&name);
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
