//! turboprop: fast, trustworthy local semantic code search.
//!
//! This facade re-exports the layers so one dependency gives the whole stack; each layer can
//! also be used alone:
//! - [`types`]: configuration, chunk and file metadata, the `Embedder` trait (no I/O);
//! - [`storage`]: atomic and memory-mapped files, commits, locks, integrity checks;
//! - [`index`]: parallel vector search and incremental updates over storage;
//! - [`embed`]: embedding backends.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use turboprop_embed as embed;
pub use turboprop_index as index;
pub use turboprop_storage as storage;
pub use turboprop_types as types;
