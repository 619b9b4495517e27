//! [`LexicalTerms`]: a chunk's exact terms and length, what an index's lexical space (BM25
//! over postings) stores for each row.

/// A chunk's distinct terms with their term frequencies, sorted by term, and its length for
/// BM25's length normalisation. Made by an analyzer (`turboprop_embed::document_terms`),
/// stored by an index writer (`turboprop_index::NewChunk::lexical`).
///
/// ```
/// let terms = turboprop_types::LexicalTerms {
///     terms: vec![("pot".to_string(), 1.0), ("split".to_string(), 2.0)],
///     length: 3.0,
/// };
/// assert_eq!(terms.pairs(), [("pot", 1.0), ("split", 2.0)]);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LexicalTerms {
    /// `(term, frequency)`: strictly increasing by term, frequencies finite and above zero.
    pub terms: Vec<(String, f32)>,
    /// The chunk's length in words (finite, at least zero).
    pub length: f32,
}

impl LexicalTerms {
    /// The terms as borrowed pairs.
    pub fn pairs(&self) -> Vec<(&str, f32)> {
        self.terms.iter().map(|(t, f)| (t.as_str(), *f)).collect()
    }
}
