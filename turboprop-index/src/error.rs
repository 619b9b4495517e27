//! [`IndexError`]: why opening, searching or updating an index failed.

use std::path::PathBuf;

use turboprop_storage::StorageError;

/// An error from the index layer.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A file of the index could not be read or written, or is damaged.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No index has been committed in this folder.
    #[error("no index at {path}: run tp index first")]
    NotIndexed {
        /// The index folder.
        path: PathBuf,
    },
    /// The index was built with another model or dimension than the caller's.
    #[error(
        "index at {path} was built with model {index_model} ({index_dims} dims); \
         this search uses {asked_model} ({asked_dims} dims): run tp index --rebuild"
    )]
    ModelMismatch {
        /// The index folder.
        path: PathBuf,
        /// The model recorded in the index.
        index_model: String,
        /// Its dimensions.
        index_dims: u32,
        /// The model asked for.
        asked_model: String,
        /// Its dimensions.
        asked_dims: u32,
    },
    /// A vector has the wrong length or non-finite values.
    #[error("invalid vector for {what}: {reason}")]
    InvalidVector {
        /// The file or query it belongs to.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--filter` glob does not parse.
    #[error("invalid filter glob {glob:?}")]
    BadGlob {
        /// The glob as given.
        glob: String,
        /// The parser's error.
        #[source]
        source: globset::Error,
    },
    /// Chunk metadata read back from the index breaks an invariant.
    #[error("chunk metadata in {path} is damaged")]
    BadMeta {
        /// The segment folder.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: turboprop_types::MetaError,
    },
}

impl IndexError {
    /// Whether the error means the index on disk is damaged (and `tp index --rebuild` is the
    /// way out), as opposed to a usage or environment problem.
    pub fn is_damage(&self) -> bool {
        match self {
            IndexError::Storage(e) => e.is_damage(),
            IndexError::BadMeta { .. } => true,
            _ => false,
        }
    }
}

impl IndexError {
    /// Whether the error means a memory-mapped file of the index changed (shrank) while it
    /// was being read ([`StorageError::ChangedUnderReader`]). The answer was thrown away;
    /// the index as opened stays unusable. A long-running process reopens the index and
    /// retries once; a command reports it and exits.
    pub fn is_changed_under_reader(&self) -> bool {
        matches!(self, IndexError::Storage(e) if e.is_changed_under_reader())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;
