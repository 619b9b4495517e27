//! Whether the mapped files of an open [`Index`] are still what it opened: a file truncated
//! by another program while it is mapped reads zeros past its new end instead of killing the
//! process (see [`turboprop_storage::sigbus`]); every entry point of the reader returns its
//! result only after [`Index::check_intact`] says no mapping it may have read has faulted.
//!
//! The cost on the search path is one atomic load per query: the process-wide fault count
//! against its value when the index was opened ([`turboprop_storage::FaultWatch`]). Only
//! after a fault somewhere in the process are the index's files asked one by one, to name
//! the file that changed.

use std::path::Path;

use turboprop_storage::StorageError;

use super::{Index, LiveSegment};
use crate::error::{IndexError, Result};

impl Index {
    /// Fails with [`turboprop_storage::StorageError::ChangedUnderReader`] (see
    /// [`crate::IndexError::is_changed_under_reader`]) naming a file of the index that shrank
    /// under its mapping since the index was opened: results read since then are not to be
    /// trusted, and the index must be reopened. The search entry points ([`Index::search`],
    /// [`Index::search_space`], [`Index::search_fused`], [`Index::stream_vectors`],
    /// [`Index::files`], [`Index::verify`]) call it before they return, so a caller needs it
    /// only after reading the index by other means (term statistics).
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
    /// index.check_intact()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_intact(&self) -> Result<()> {
        if !self.watch.faulted_since() {
            return Ok(());
        }
        self.segments.iter().try_for_each(LiveSegment::check_intact)
    }

    /// `result`, unless a file of the index changed under it (then that error instead: an
    /// error computed from zeros would blame the wrong cause).
    pub(crate) fn checked<T>(&self, result: Result<T>) -> Result<T> {
        self.check_intact()?;
        result
    }
}

impl LiveSegment {
    /// Fails if one of the segment's files (its tables, delete set or codes) shrank under its
    /// mapping.
    fn check_intact(&self) -> Result<()> {
        self.reader.check_intact()?;
        if let Some(deletes) = &self.deletes {
            deletes.check_intact()?;
        }
        let spaces = self.spaces.iter().flatten().map(|d| &d.codes);
        for codes in std::iter::once(&self.codes).chain(spaces) {
            if let Some(bits) = &codes.bits {
                bits.check_intact()?;
            }
            if let Some(int8) = &codes.int8 {
                int8.check_intact()?;
            }
        }
        Ok(())
    }
}

/// The error to report when opening kept failing while mapped files faulted: the change
/// (naming the file the failure names), not the damage the zeros looked like.
pub(super) fn changed_while_opening(e: IndexError, root: &Path) -> IndexError {
    if e.is_changed_under_reader() {
        return e;
    }
    let path = match &e {
        IndexError::Storage(s) => s.path(),
        IndexError::BadMeta { path, .. } => path,
        _ => root,
    };
    StorageError::ChangedUnderReader {
        path: path.to_path_buf(),
    }
    .into()
}
