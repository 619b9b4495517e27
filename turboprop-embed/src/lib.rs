//! turboprop's embedding backends behind the [`Embedder`] trait.
//!
//! [`BuiltinEmbedder`] is the default until a real model is installed: it needs no download,
//! no network and no model file. It turns code into code-aware terms (identifiers split on
//! camelCase and snake_case, lowercased, lightly stemmed, plus compounds of adjacent parts),
//! hashes them with signed feature hashing into a fixed-dimension, L2-normalized vector, and
//! weights queries by the index's inverse document frequencies, so that cosine similarity
//! ranks chunks much like BM25 does.
//!
//! ```
//! use turboprop_embed::BuiltinEmbedder;
//! use turboprop_types::{Embedder, TermId, TermStatistics};
//!
//! let embedder = BuiltinEmbedder::new();
//! let chunks = [
//!     "/// Splits the pot between tied winners.\nfn split_pot(pot: u64, winners: &[Seat]) {}",
//!     "/// Shuffles the deck before a new hand.\nfn shuffle(deck: &mut Deck) {}",
//! ];
//! let vectors = embedder.embed_documents(&chunks).expect("the built-in embedder cannot fail");
//! assert_eq!(vectors[0].len(), embedder.dimensions());
//!
//! // The index counts in how many chunks each term occurs...
//! struct Counts(Vec<Vec<TermId>>);
//! impl TermStatistics for Counts {
//!     fn documents(&self) -> u64 {
//!         self.0.len() as u64
//!     }
//!     fn document_frequency(&self, term: TermId) -> u64 {
//!         self.0.iter().filter(|terms| terms.binary_search(&term).is_ok()).count() as u64
//!     }
//! }
//! let stats = Counts(chunks.iter().filter_map(|c| embedder.document_terms(c)).collect());
//!
//! // ...and the query is weighted by those counts; vectors are compared by cosine.
//! let query = embedder.embed_query("split the pot", &stats).expect("a query");
//! let cosine = |v: &[f32]| v.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>();
//! assert!(cosine(&vectors[0]) > cosine(&vectors[1]));
//! ```
//!
//! [`BertEmbedder`] runs a BERT-family sentence-transformers model (such as
//! all-MiniLM-L6-v2) from a model folder, in pure Rust on the CPU:
//!
//! ```
//! use turboprop_embed::{write_tiny_bert, BertEmbedder, BertOptions, TINY_DIMENSIONS};
//! use turboprop_types::Embedder;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A real model folder holds model.safetensors, tokenizer.json and config.json; this one
//! // is tiny and random.
//! let dir = tempfile::tempdir()?;
//! write_tiny_bert(dir.path(), 7)?;
//! let embedder = BertEmbedder::load(dir.path(), "tiny-bert", BertOptions::default())?;
//! let vectors = embedder.embed_documents(&["fn split_pot() {}", "shuffle the deck"])?;
//! assert_eq!(vectors[0].len(), TINY_DIMENSIONS);
//! let norm: f32 = vectors[1].iter().map(|x| x * x).sum::<f32>().sqrt();
//! assert!((norm - 1.0).abs() < 1e-5);
//! # Ok(())
//! # }
//! ```
// unsafe code only in the modules that allow it (ARCHITECTURE.md; tests/tidy.rs).
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod analyze;
mod bert;
mod builtin;
mod encoder;
mod hash;
mod int8;
mod kernels;
mod lazy;
mod lexical;
mod model_dir;
mod model_file;
mod tiny;
mod tokenizer;
mod weights;
mod weights_cache;

pub use analyze::{analyze_document, analyze_phrases, analyze_query, TermKind};
pub use bert::{
    tokenizer_input, BertEmbedder, BertOptions, Precision, BYTES_PER_TOKEN, DEFAULT_MAX_TOKENS,
};
pub use builtin::{
    BuiltinEmbedder, DimensionError, DEFAULT_DIMENSIONS, MAX_DIMENSIONS, MIN_DIMENSIONS,
    MODEL_FAMILY,
};
pub use hash::term_id;
pub use int8::Int8Isa;
pub use lazy::LazyBertEmbedder;
pub use lexical::{
    document_terms, query_terms, LexicalParams, LEXICAL_ID, PHRASE_WEIGHT, QUERY_COMPOUND_WEIGHT,
    SYMBOL_WEIGHT,
};
pub use model_dir::{
    BertConfig, ConfigBounds, HiddenAct, ModelDir, ModelError, Pooling, BOUNDS, CONFIG_FILE,
    OPTIONAL_FILES, REQUIRED_FILES, TOKENIZER_FILE, WEIGHTS_FILE,
};
pub use model_file::{CONFIG_CAP, POOLING_CAP, TOKENIZER_CAP, WEIGHTS_CAP};
pub use tiny::{write_tiny_bert, TINY_DIMENSIONS, TINY_MAX_POSITIONS, TINY_TOKENIZER_FIXED_LENGTH};
pub use turboprop_types::{EmbedError, Embedder, LexicalTerms, TermId, TermStatistics};
pub use weights::{WeightsError, HEADER_CAP};
pub use weights_cache::CACHE_FILE;
