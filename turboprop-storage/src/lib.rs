//! turboprop's storage layer: atomic writes, self-describing binary tables read in place
//! through memory maps, segments, the manifest commit point, the writer lock and integrity
//! checks. It knows nothing about embeddings or search.
//!
//! Every byte goes through a [`Directory`]: [`FsDirectory`] keeps the index in a folder on
//! disk, [`MemDirectory`] in memory (same format, same checks, same conformance tests).
//!
//! ```
//! use turboprop_storage::{IndexDir, LockWait, ReadMode, SegmentReader, SegmentWriter, NewRow};
//! use turboprop_types::{ContentHash, FileRecord, IndexConfig};
//!
//! let tmp = tempfile::tempdir()?;
//! let dir = IndexDir::new(tmp.path().join("index"));
//! dir.init(&IndexConfig::default())?;
//! let _lock = dir.lock(LockWait::NoWait, || {})?;
//!
//! let name = IndexDir::segment_name(1);
//! let mut seg = SegmentWriter::create(dir.directory(), &name, 2)?;
//! let record = FileRecord::new("src/pot.py", 10, 0, ContentHash::of(b"..."))?;
//! let row = NewRow { line_start: 1, line_end: 3, byte_start: 0, byte_end: 10,
//!                    hash: ContentHash::of(b"..."), vector: &[0.6, 0.8],
//!                    symbol: None, kind: None, lexical: None };
//! seg.add_file(record, [row], &[(42, 1)])?;
//! seg.finish()?;
//!
//! let reader = SegmentReader::open(dir.directory(), &name, ReadMode::Mmap)?;
//! assert_eq!(reader.dir(), tmp.path().join("index/seg-00000001"));
//! assert_eq!(reader.vector(0), Some(&[0.6f32, 0.8][..]));
//! reader.verify()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// unsafe code only in the modules that allow it (ARCHITECTURE.md; tests/tidy.rs).
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod atomic;
mod deletes;
mod directory;
mod document;
mod error;
// Test machinery (compiled to nothing without the `failpoints` feature), public for the
// index's failpoint tests only.
#[doc(hidden)]
pub mod failpoint;
mod header;
mod layout;
mod lock;
mod mmap;
mod open;
mod segment;
pub mod sigbus;
mod table;
mod termstats;

pub use atomic::{atomic_write, sync_dir, write_new_file, TEMP_PREFIX};
pub use deletes::{write_delete_set, DeleteSet};
pub use directory::{join_name, Directory, FsDirectory, MemDirectory, WriteFile};
pub use document::{document_body, encode_document, read_document, DOCUMENT_FORMAT_VERSION};
pub use error::{Result, StorageError};
pub use header::{payload_hash, Header, BINARY_FORMAT_VERSION, HEADER_LEN};
pub use layout::{
    DeleteEntry, IndexDir, Manifest, ModelGuard, SegmentEntry, SegmentSpace, SpaceEntry,
    CONFIG_FILE, LAYOUT_VERSION, LOCK_FILE, MANIFEST_FILE, VERSION_FILE,
};
pub use lock::{LockWait, WriterLock};
pub use mmap::{bytes_as_f32, bytes_as_u64, f32_as_bytes, u64_as_bytes, FileBytes, ReadMode};
pub use open::{check_real_dir, open_beneath, open_regular, read_bounded, EntryKind};
pub use segment::{
    check_space_key, space_file, space_key, ChunkRecord, LexicalForward, LexicalPostings,
    LexicalRow, NewRow, PostingList, SegmentFile, SegmentReader, SegmentSummary, SegmentWriter,
    SpaceMeta, TermInterner, CHUNKS_FILE, DF_FILE, FILES_FILE, FILE_RECORD_LEN, LENGTHS_FILE,
    LEXICAL_FORMAT_VERSION, LEXICON_FILE, LEXTEXT_FILE, MAX_TERM_BYTES, METADATA_FILE, PATHS_FILE,
    POSTINGS_FILE, SEGMENT_FORMAT_VERSION, SPACES_FORMAT_VERSION, SYMBOLS_FILE,
    SYMBOLS_FORMAT_VERSION, SYMTEXT_FILE, TERMS_FILE, VECTORS_FILE,
};
pub use sigbus::FaultWatch;
pub use table::{Table, TableKind, TableWriter};
pub use termstats::{write_doc_freq, DocFreqTable, Pairs};
