//! turboprop's index layer: exact, parallel vector search over committed segments, with file
//! filters applied before top-k, incremental diffing against the stored file records, and
//! atomic commits through `turboprop-storage`. It needs no embedder: any vectors will do.
//! An index lives in a folder on disk ([`Index::open`], [`IndexWriter::open`]) or in any
//! [`Directory`], such as a [`MemDirectory`] ([`Index::open_in`], [`IndexWriter::open_in`]).
//!
//! ```
//! use turboprop_index::{Index, IndexSpec, IndexWriter, NewChunk, SearchOptions, WriterOptions};
//! use turboprop_storage::ModelGuard;
//! use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};
//!
//! let tmp = tempfile::tempdir()?;
//! let path = tmp.path().join("index");
//! let spec = IndexSpec {
//!     lexical: None,
//!     model: ModelGuard { id: "my-vectors".into(), dimensions: 3 },
//!     chunking: ChunkingConfig::default(),
//!     spaces: vec![],
//! };
//! let chunk = |line: u32, v: [f32; 3]| NewChunk {
//!     lexical: None,
//!     line_start: line, line_end: line + 9, byte_start: 0, byte_end: 100,
//!     hash: ContentHash::of(&line.to_le_bytes()), vector: v.to_vec(), terms: vec![], spaces: vec![],
//!     symbol: None, kind: None,
//! };
//!
//! // Create, fill and commit.
//! let mut writer = IndexWriter::open(&path, spec, WriterOptions::default(), || {})?;
//! let record = FileRecord::new("src/pot.py", 100, 0, ContentHash::of(b"pot"))?;
//! writer.put_file(record, vec![chunk(1, [1.0, 0.0, 0.0]), chunk(11, [0.0, 0.6, 0.8])])?;
//! writer.commit()?;
//!
//! // Reopen from disk and search.
//! let index = Index::open(&path)?;
//! let hits = index.search(&[0.0, 0.8, 0.6], &SearchOptions::default())?;
//! assert_eq!(hits[0].chunk.file(), "src/pot.py");
//! assert_eq!(hits[0].chunk.line_start(), 11);
//! assert!((hits[0].score - 0.96).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// unsafe code only in the modules that allow it (ARCHITECTURE.md; tests/tidy.rs).
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod diff;
mod error;
mod filter;
mod fusion;
mod kernel;
mod quant;
mod reader;
mod sparse;
mod synthetic;
mod topk;
mod writer;

pub use diff::{Confirmed, Diff, FileStatus, ScannedFile};
pub use error::{IndexError, Result};
pub use filter::FileFilter;
pub use fusion::{hybrid_scores, LEXICAL_GAIN, LEXICAL_WEIGHT};
pub use kernel::{dot, Isa};
pub use reader::{
    fast_candidates, Hit, Index, IndexStats, LexicalQuery, SearchOptions, SegmentDamage,
    SpaceQuery, Strategy, FAST_MIN_ROWS,
};
pub use synthetic::LatentSpace;

/// The scoring kernels and the code layouts, for turboprop's own benchmarks (feature
/// `internals`, which the root package's benches turn on). Not part of the API: they change
/// with the search's tuning.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::kernel::{add_columns_i8, dot_rows, hamming_rows_hist, sum, PlaneCounts};
    pub use crate::quant::bit_planes;
}
pub use turboprop_storage::{Directory, FsDirectory, LockWait, MemDirectory, ModelGuard, ReadMode};
pub use writer::{
    BaseState, CommitStats, IndexSpec, IndexWriter, Lacking, NewChunk, ReusableVectors,
    WriterOptions,
};
