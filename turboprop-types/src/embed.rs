//! The [`Embedder`] trait: turns text into fixed-dimension vectors for the index.
//!
//! Lexical embedders can also report the terms of each document so the index keeps a
//! document-frequency table ([`TermStatistics`]) and the query can be weighted by inverse
//! document frequency, while stored vectors stay valid under incremental updates.

/// A term identifier: a 32-bit hash of a normalized token.
pub type TermId = u32;

/// A document's vector and its distinct terms.
pub type EmbeddedDocument = (Vec<f32>, Vec<TermId>);

/// Document-frequency statistics over the chunks of an index.
pub trait TermStatistics {
    /// Number of documents (chunks) counted.
    fn documents(&self) -> u64;
    /// Number of documents that contain `term`.
    fn document_frequency(&self, term: TermId) -> u64;
}

/// Statistics for an empty collection; every term is unseen.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTermStats;

impl TermStatistics for NoTermStats {
    fn documents(&self) -> u64 {
        0
    }
    fn document_frequency(&self, _term: TermId) -> u64 {
        0
    }
}

/// Why an embedding could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The query has no content to embed.
    #[error("the query is empty: give some words to search for")]
    EmptyQuery,
    /// The backend failed (model error, bad input to the model, ...).
    #[error("embedding model {model} failed")]
    Backend {
        /// The model that failed.
        model: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Turns text into vectors of a fixed dimension.
///
/// Document vectors must not depend on the rest of the collection (so an index can be updated
/// one file at a time); collection-wide weighting belongs in [`Embedder::embed_query`], which
/// receives the index's [`TermStatistics`].
pub trait Embedder: Send + Sync {
    /// A stable identifier of the model and its settings, recorded in the index.
    fn model_id(&self) -> &str;

    /// Length of every vector this embedder produces.
    fn dimensions(&self) -> usize;

    /// Loads whatever the embedder loads on first use (a model's weights), so that the next
    /// call does not wait for it; an embedder that loads nothing lazily does nothing (the
    /// default). A resident process calls it once at start-up.
    fn prepare(&self) -> Result<(), EmbedError> {
        Ok(())
    }

    /// Embeds a batch of documents; one vector of [`Embedder::dimensions`] floats per text,
    /// L2-normalized (or all zeros for a text with nothing to embed).
    fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Embeds a query, optionally weighting its terms with the collection's statistics.
    fn embed_query(&self, query: &str, stats: &dyn TermStatistics) -> Result<Vec<f32>, EmbedError>;

    /// The distinct terms of a document, for the index's document-frequency table.
    /// Embedders that do not use term statistics return `None` (the default).
    fn document_terms(&self, _text: &str) -> Option<Vec<TermId>> {
        None
    }

    /// Embeds a batch of documents and returns each one's distinct terms too (empty for
    /// embedders without term statistics). Embedders that analyze a text once for both
    /// override this; the default calls [`Embedder::embed_documents`] and
    /// [`Embedder::document_terms`].
    fn embed_documents_with_terms(
        &self,
        texts: &[&str],
    ) -> Result<Vec<EmbeddedDocument>, EmbedError> {
        let vectors = self.embed_documents(texts)?;
        Ok(vectors
            .into_iter()
            .zip(texts)
            .map(|(v, t)| (v, self.document_terms(t).unwrap_or_default()))
            .collect())
    }
}
