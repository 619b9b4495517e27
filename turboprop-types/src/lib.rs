//! The vocabulary shared by every turboprop layer: configuration, chunk and file metadata,
//! content hashes and the [`Embedder`] trait. This crate does no I/O.
//!
//! ```
//! use turboprop_types::{ChunkMeta, ContentHash, IndexConfig};
//!
//! let config = IndexConfig::default();
//! assert!(config.chunking.overlap < config.chunking.lines);
//!
//! let chunk = ChunkMeta::new(
//!     "src/hand.rs",
//!     1,
//!     40,
//!     0..1200,
//!     ContentHash::of(b"fn rank_hand() {}"),
//! )
//! .expect("a valid chunk");
//! assert_eq!(chunk.line_count(), 40);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod chunk;
mod config;
mod embed;
mod hash;
mod lexical;
mod window;

pub use chunk::{
    check_kind, check_path, check_symbol, ChunkMeta, FileRecord, MetaError, MAX_KIND_BYTES,
    MAX_SYMBOL_BYTES,
};
pub use config::{
    ChunkMethod, ChunkingConfig, CompactionConfig, ConfigError, IndexConfig, CONFIG_FORMAT_VERSION,
};
pub use embed::{EmbedError, EmbeddedDocument, Embedder, NoTermStats, TermId, TermStatistics};
pub use hash::{ContentHash, HashParseError};
pub use lexical::LexicalTerms;
pub use window::{line_windows, LineWindow};
