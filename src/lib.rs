//! turboprop: fast, trustworthy local semantic code search.
//!
//! This facade re-exports the layers so one dependency gives the whole stack; each layer can
//! also be used alone:
//! - [`types`]: configuration, chunk and file metadata, the `Embedder` trait (no I/O);
//! - [`storage`]: atomic and memory-mapped files, commits, locks, integrity checks;
//! - [`index`]: parallel vector search and incremental updates over storage;
//! - [`embed`]: embedding backends.
//!
//! ```
//! use turboprop::embed::BuiltinEmbedder;
//! use turboprop::index::{Index, IndexSpec, IndexWriter, NewChunk, SearchOptions, WriterOptions};
//! use turboprop::storage::ModelGuard;
//! use turboprop::types::{ChunkingConfig, ContentHash, Embedder, FileRecord};
//!
//! // The built-in lexical embedder's vectors, kept in an index on disk.
//! let embedder = BuiltinEmbedder::default();
//! let text = "def split_pot(winners): return winners";
//! // Its vector and its terms (the index keeps their document frequencies for the query).
//! let (vector, terms) = embedder.embed_documents_with_terms(&[text])?.remove(0);
//! let tmp = tempfile::tempdir()?;
//! let spec = IndexSpec {
//!     lexical: None,
//!     model: ModelGuard { id: embedder.model_id().into(), dimensions: embedder.dimensions() as u32 },
//!     chunking: ChunkingConfig::default(),
//!     spaces: vec![],
//! };
//! let mut writer = IndexWriter::open(tmp.path(), spec, WriterOptions::default(), || {})?;
//! let chunk = NewChunk {
//!     lexical: None,
//!     line_start: 1, line_end: 1, byte_start: 0, byte_end: text.len() as u64,
//!     hash: ContentHash::of(text.as_bytes()), vector, terms, spaces: vec![],
//!     symbol: None, kind: None,
//! };
//! let record = FileRecord::new("pot.py", text.len() as u64, 0, ContentHash::of(text.as_bytes()))?;
//! writer.put_file(record, vec![chunk])?;
//! writer.commit()?;
//!
//! let index = Index::open(tmp.path())?;
//! let query = embedder.embed_query("split the pot", index.term_stats())?;
//! let hits = index.search(&query, &SearchOptions::default())?;
//! assert_eq!(hits[0].chunk.file(), "pot.py");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use turboprop_embed as embed;
pub use turboprop_index as index;
pub use turboprop_storage as storage;
pub use turboprop_types as types;
