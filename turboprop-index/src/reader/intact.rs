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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::fs::OpenOptions;
    use std::path::Path;

    use turboprop_storage::{ModelGuard, VECTORS_FILE};
    use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};

    use crate::writer::{IndexSpec, IndexWriter, NewChunk, WriterOptions};
    use crate::{Index, SearchOptions, Strategy};

    const DIMS: usize = 16;

    /// An index on disk of 100 files of 40 rows (256 KiB of vectors, 64 pages).
    fn write_index(path: &Path) {
        let spec = IndexSpec {
            lexical: None,
            model: ModelGuard {
                id: "test".into(),
                dimensions: DIMS as u32,
            },
            chunking: ChunkingConfig::default(),
            spaces: vec![],
        };
        let mut writer =
            IndexWriter::open(path, spec, WriterOptions::default(), || {}).expect("writer");
        for f in 0..100u32 {
            let name = format!("f{f}.rs");
            let hash = ContentHash::of(name.as_bytes());
            let record = FileRecord::new(&name, 100, 0, hash).expect("record");
            let chunks = (0..40u32)
                .map(|r| {
                    let mut vector = vec![0.0f32; DIMS];
                    vector[((f + r) as usize) % DIMS] = 1.0;
                    NewChunk {
                        lexical: None,
                        line_start: 1,
                        line_end: 2,
                        byte_start: 0,
                        byte_end: 10,
                        hash,
                        vector,
                        terms: vec![],
                        spaces: vec![],
                        symbol: None,
                        kind: None,
                    }
                })
                .collect();
            writer.put_file(record, chunks).expect("put");
        }
        writer.commit().expect("commit");
    }

    fn vectors_file(index: &Index) -> std::path::PathBuf {
        index.live_segments()[0].reader.dir().join(VECTORS_FILE)
    }

    #[test]
    fn a_search_over_a_file_truncated_under_it_fails_typed_and_a_reopen_recovers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("index");
        write_index(&path);
        let index = Index::open(&path).expect("open");
        let opts = SearchOptions {
            limit: 5,
            strategy: Strategy::Exact,
            ..SearchOptions::default()
        };
        let mut query = vec![0.0f32; DIMS];
        query[3] = 1.0;
        let before = index.search(&query, &opts).expect("search");
        assert_eq!(before.len(), 5);

        // Another program truncates vectors.bin to half, then writes it back whole.
        let file = vectors_file(&index);
        let original = std::fs::read(&file).expect("read");
        OpenOptions::new()
            .write(true)
            .open(&file)
            .expect("open")
            .set_len(original.len() as u64 / 2)
            .expect("truncate");
        let err = index
            .search(&query, &opts)
            .expect_err("the change is reported");
        assert!(err.is_changed_under_reader(), "{err}");
        assert!(!err.is_damage(), "{err}");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        std::fs::write(&file, &original).expect("write back");
        // The index as opened stays unusable, for every entry point.
        assert!(index
            .search(&query, &opts)
            .is_err_and(|e| e.is_changed_under_reader()));
        assert!(index.files().is_err_and(|e| e.is_changed_under_reader()));
        assert!(index
            .stream_vectors()
            .is_err_and(|e| e.is_changed_under_reader()));
        let problems = index.verify();
        assert!(
            problems.len() == 1 && problems[0].is_changed_under_reader(),
            "{problems:?}"
        );

        // What a long-running process does: reopen and retry.
        let reopened = Index::open(&path).expect("reopen");
        let after = reopened
            .search(&query, &opts)
            .expect("search after reopening");
        assert_eq!(
            after.iter().map(|h| h.chunk.file()).collect::<Vec<_>>(),
            before.iter().map(|h| h.chunk.file()).collect::<Vec<_>>()
        );
        assert!(reopened.verify().is_empty());
    }
}
