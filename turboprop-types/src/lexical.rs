//! [`LexicalTerms`]: a chunk's exact terms and length, what an index's lexical space (BM25
//! over postings) stores for each row.
//!
//! The terms are kept packed, back to back in one string with their frequencies beside
//! them: a chunk has about a hundred terms, and `tp index` makes and drops hundreds of
//! thousands of chunks' terms, so two allocations per chunk instead of one per term.

/// A chunk's distinct terms with their term frequencies, sorted by term, and its length for
/// BM25's length normalisation. Made by an analyzer (`turboprop_embed::document_terms`),
/// stored by an index writer (`turboprop_index::NewChunk::lexical`), which refuses terms
/// that are not strictly increasing by their bytes, empty or too long, frequencies that are
/// not finite and above zero, and a length that is not finite and at least zero.
///
/// ```
/// use turboprop_types::LexicalTerms;
///
/// let terms = LexicalTerms::from_pairs([("pot", 1.0), ("split", 2.0)], 3.0);
/// assert_eq!(terms.pairs(), [("pot", 1.0), ("split", 2.0)]);
/// assert_eq!((terms.len(), terms.length()), (2, 3.0));
/// assert_eq!(terms.iter().map(|(t, _)| t.len()).sum::<usize>(), 8);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LexicalTerms {
    /// The terms back to back, in order.
    text: String,
    /// Where each term ends in `text`, with its frequency.
    ends: Vec<(u32, f32)>,
    /// The chunk's length in words.
    length: f32,
}

impl LexicalTerms {
    /// No terms yet, and the chunk's `length`; [`push`](Self::push) adds the terms in order.
    pub fn new(length: f32) -> LexicalTerms {
        LexicalTerms {
            text: String::new(),
            ends: Vec::new(),
            length,
        }
    }

    /// `(term, frequency)` pairs in the order given, and the chunk's `length`.
    pub fn from_pairs<S: AsRef<str>>(
        pairs: impl IntoIterator<Item = (S, f32)>,
        length: f32,
    ) -> LexicalTerms {
        let mut terms = LexicalTerms::new(length);
        for (term, tf) in pairs {
            terms.push(term.as_ref(), tf);
        }
        terms
    }

    /// Reserves room for `terms` more terms of `bytes` bytes in all.
    pub fn reserve(&mut self, terms: usize, bytes: usize) {
        self.ends.reserve(terms);
        self.text.reserve(bytes);
    }

    /// Appends `term` with frequency `tf`. A chunk's terms beyond 4 GiB of text in all are
    /// not kept (no analyzer makes them: a chunk is a few kilobytes).
    pub fn push(&mut self, term: &str, tf: f32) {
        let Ok(end) = u32::try_from(self.text.len() + term.len()) else {
            return;
        };
        self.text.push_str(term);
        self.ends.push((end, tf));
    }

    /// The terms with their frequencies, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, f32)> + '_ {
        let mut start = 0usize;
        self.ends.iter().map(move |&(end, tf)| {
            let end = end as usize;
            let term = self.text.get(start..end).unwrap_or_default();
            start = end;
            (term, tf)
        })
    }

    /// The terms as borrowed pairs.
    pub fn pairs(&self) -> Vec<(&str, f32)> {
        self.iter().collect()
    }

    /// How many terms there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The chunk's length in words.
    pub fn length(&self) -> f32 {
        self.length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_come_back_as_pushed() {
        let mut t = LexicalTerms::new(4.0);
        t.reserve(3, 10);
        for (term, tf) in [("a", 1.0), ("größe", 2.5), ("z", 0.5)] {
            t.push(term, tf);
        }
        assert_eq!(t.pairs(), [("a", 1.0), ("größe", 2.5), ("z", 0.5)]);
        assert_eq!(t.iter().len(), 3);
        assert!(!t.is_empty() && LexicalTerms::default().is_empty());
        assert_eq!(t, LexicalTerms::from_pairs(t.pairs(), 4.0));
        assert_ne!(t, LexicalTerms::from_pairs(t.pairs(), 5.0));
    }
}
