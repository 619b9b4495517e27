//! [`StorageError`]: every way reading or writing an index file can fail, each naming the path.

use std::io;
use std::path::PathBuf;

/// An error from the storage layer. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O error.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("read", "write", "rename", ...).
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A required file does not exist.
    #[error("{path} is missing")]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// The file does not start with the expected magic bytes.
    #[error("{path} is not a turboprop {kind} file (bad magic)")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The kind of file that was expected.
        kind: &'static str,
    },
    /// The file was written by a newer (or unknown) format version.
    #[error("{path} has format version {found}; this turboprop reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The file is shorter or longer than its header says.
    #[error("{path} is {found} bytes but its header says {expected}")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Size implied by the header.
        expected: u64,
        /// Actual size.
        found: u64,
    },
    /// The header's own checksum does not match.
    #[error("{path} has a damaged header (checksum mismatch)")]
    HeaderChecksum {
        /// The file.
        path: PathBuf,
    },
    /// The payload does not match the checksum recorded in the header.
    #[error("{path} is damaged (payload checksum mismatch)")]
    PayloadChecksum {
        /// The file.
        path: PathBuf,
    },
    /// The file parsed but its content breaks an invariant.
    #[error("{path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A JSON document could not be parsed or written.
    #[error("{path} holds invalid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A YAML document could not be parsed or written.
    #[error("{path} holds invalid YAML")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// Where a regular file (or a real folder) was expected stands a symbolic link, a FIFO, a
    /// device, a socket or a folder. turboprop never reads, writes or deletes through one.
    #[error("{path} is {found}, not a regular file or folder (tp reads and writes no links or special files)")]
    NotRegular {
        /// The entry.
        path: PathBuf,
        /// What stands there.
        found: crate::open::EntryKind,
    },
    /// A file is larger than its format can plausibly hold; nothing was allocated for it.
    #[error("{path} is {len} bytes, more than the {max} bytes such a file can hold")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length (or the bytes read before giving up).
        len: u64,
        /// The bound.
        max: u64,
    },
    /// A path recorded in an index or given by a client leads outside its root.
    #[error("{path} is not a plain relative path inside {root}")]
    Outside {
        /// The path as given.
        path: PathBuf,
        /// The folder it must stay in.
        root: PathBuf,
    },
    /// The file shrank (was truncated, or rewritten in place) while it was memory-mapped and
    /// being read: what was read from it is not to be trusted. Not damage in itself: the file
    /// may be whole again by now. A long-running reader reopens the index and retries.
    #[error(
        "{path} changed while tp was reading it (another program truncated or rewrote it): \
         run the command again, and tp verify if it keeps failing"
    )]
    ChangedUnderReader {
        /// The file.
        path: PathBuf,
    },
    /// Another process holds the writer lock and the caller asked not to wait.
    #[error("another tp index is writing {path}: wait for it to finish, or run without --no-wait")]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
}

impl StorageError {
    /// Wraps an I/O error, turning "not found" into [`StorageError::Missing`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::NotFound {
            StorageError::Missing { path }
        } else {
            StorageError::Io { op, path, source }
        }
    }

    /// A [`StorageError::Corrupt`] for `path`.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Whether the error means the file is absent (a reader may retry with a newer manifest).
    pub fn is_missing(&self) -> bool {
        matches!(self, StorageError::Missing { .. })
    }

    /// The file or folder the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            StorageError::Io { path, .. }
            | StorageError::Missing { path }
            | StorageError::BadMagic { path, .. }
            | StorageError::UnsupportedVersion { path, .. }
            | StorageError::SizeMismatch { path, .. }
            | StorageError::HeaderChecksum { path }
            | StorageError::PayloadChecksum { path }
            | StorageError::Corrupt { path, .. }
            | StorageError::Json { path, .. }
            | StorageError::Yaml { path, .. }
            | StorageError::ChangedUnderReader { path }
            | StorageError::NotRegular { path, .. }
            | StorageError::TooLarge { path, .. }
            | StorageError::Busy { path } => path,
            // The path as given, which is what a caller can act on.
            StorageError::Outside { path, .. } => path,
        }
    }

    /// Whether the error means a mapped file changed while it was read
    /// ([`StorageError::ChangedUnderReader`]): reopening and retrying may succeed.
    pub fn is_changed_under_reader(&self) -> bool {
        matches!(self, StorageError::ChangedUnderReader { .. })
    }

    /// Whether the error means the bytes on disk are damaged, as opposed to an environment
    /// problem (permissions, a full disk, a busy lock).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StorageError::Missing { .. }
                | StorageError::BadMagic { .. }
                | StorageError::SizeMismatch { .. }
                | StorageError::HeaderChecksum { .. }
                | StorageError::PayloadChecksum { .. }
                | StorageError::Corrupt { .. }
                | StorageError::Json { .. }
                | StorageError::Yaml { .. }
                | StorageError::NotRegular { .. }
                | StorageError::TooLarge { .. }
                | StorageError::Outside { .. }
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
