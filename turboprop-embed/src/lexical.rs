//! The exact lexical space: the terms of a chunk and of a query as strings, with the weights
//! BM25 scores them by over an index's postings (`turboprop_index`'s lexical search).
//!
//! A chunk's terms are the code-aware analyzer's words (identifier parts, stemmed; each
//! occurrence counts 1 towards the term frequency and towards the chunk's length) and the
//! compounds of adjacent words ([`crate::analyze_phrases`]: `rank_hand` and "rank the hand"
//! both give `rankhand`; each counts [`PHRASE_WEIGHT`]), plus the words of the chunk's
//! symbol path once more at [`SYMBOL_WEIGHT`]: the name a definition is searched by. A
//! query's terms are its words (weight 1) and the compounds of adjacent words (weight
//! [`QUERY_COMPOUND_WEIGHT`]). Every constant was chosen on the evaluation's tuning corpora
//! (`eval_modes --lexical-study`, docs/performance.md) and is part of [`LEXICAL_ID`]: a change
//! of any rule here is a new id, and an index recorded with another id is re-indexed.
//!
//! Nothing about the collection enters a chunk's terms: document frequencies and the mean
//! length are the index's, applied at query time.

use std::collections::BTreeMap;

use turboprop_storage::TermInterner;
use turboprop_types::{EmbedError, LexicalTerms};

use crate::analyze::{analyze_phrases, analyze_query, TermKind};

/// The id of these rules, recorded in an index's manifest.
pub const LEXICAL_ID: &str = "code-bm25-v1";

/// How much an occurrence of a compound of adjacent words counts in a chunk's term
/// frequency, against 1 for a word.
pub const PHRASE_WEIGHT: f32 = 1.5;

/// The extra term frequency of each word of a chunk's symbol path.
pub const SYMBOL_WEIGHT: f32 = 2.0;

/// A query compound's weight against a word's.
pub const QUERY_COMPOUND_WEIGHT: f32 = 0.5;

/// BM25's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LexicalParams {
    /// Term-frequency saturation.
    pub k1: f32,
    /// Length normalisation: 0 none, 1 full.
    pub b: f32,
}

impl LexicalParams {
    /// The parameters [`LEXICAL_ID`] searches with.
    pub const DEFAULT: LexicalParams = LexicalParams { k1: 1.6, b: 0.75 };
}

/// The terms of a chunk whose embedded text is `text` and whose symbol path is `symbol`
/// (`Table::deal`), sorted; its length counts the words (not the compounds, nor the
/// symbol's extra weight).
///
/// ```
/// let doc = turboprop_embed::document_terms("/// Splits the pot.\nfn split_pot() {}", Some("split_pot"));
/// let tf = |t: &str| doc.iter().find(|(x, _)| *x == t).map(|(_, f)| f);
/// assert_eq!(tf("split"), Some(2.0 + 2.0)); // twice in the text, once in the symbol
/// assert_eq!(tf("splitpot"), Some(2.0 * 1.5)); // "Splits the pot" and `split_pot`
/// assert_eq!(doc.length(), 4.0);
/// ```
pub fn document_terms(text: &str, symbol: Option<&str>) -> LexicalTerms {
    let mut terms = DocumentTerms::for_text(text);
    analyze_phrases(text, |term, kind| terms.add(term, kind));
    terms.finish(symbol)
}

/// A chunk's exact terms as they are gathered: [`document_terms`] from one pass of
/// [`analyze_phrases`] over the text, which `BuiltinEmbedder::embed_document_with_lexical`
/// shares with the hashed vector.
pub(crate) struct DocumentTerms {
    terms: TermInterner,
    /// Each term's frequency, by id.
    tf: Vec<f32>,
    /// Words so far.
    length: u32,
}

impl DocumentTerms {
    /// Room for the terms of `text`: a 40-line window of ~/.cargo/registry/src has 82
    /// distinct terms in 1.4 KB, one per 17 bytes; room for one per 10 bytes, so the table
    /// rarely grows.
    pub(crate) fn for_text(text: &str) -> DocumentTerms {
        let guess = text.len() / 10 + 16;
        DocumentTerms {
            terms: TermInterner::with_capacity(guess, guess * 8),
            tf: Vec::with_capacity(guess),
            length: 0,
        }
    }

    /// Counts one term of the text's analysis.
    pub(crate) fn add(&mut self, term: &str, kind: TermKind) {
        let w = match kind {
            TermKind::Word => {
                self.length += 1;
                1.0
            }
            TermKind::Compound => PHRASE_WEIGHT,
        };
        self.count(term, w);
    }

    fn count(&mut self, term: &str, w: f32) {
        // A chunk is kilobytes: its distinct terms always fit the interner.
        if let Some((id, new)) = self.terms.intern(term) {
            if new {
                self.tf.push(0.0);
            }
            if let Some(f) = self.tf.get_mut(id as usize) {
                *f += w;
            }
        }
    }

    /// Adds the words of the chunk's symbol path, if any, and gives the terms sorted.
    pub(crate) fn finish(mut self, symbol: Option<&str>) -> LexicalTerms {
        if let Some(symbol) = symbol {
            analyze_phrases(&symbol.replace("::", " "), |term, kind| {
                if kind == TermKind::Word {
                    self.count(term, SYMBOL_WEIGHT);
                }
            });
        }
        let mut out = LexicalTerms::new(self.length as f32);
        out.reserve(self.terms.len(), self.terms.text_len());
        for id in self.terms.sorted_ids() {
            let tf = self.tf.get(id as usize).copied().unwrap_or_default();
            out.push(self.terms.get(id), tf);
        }
        out
    }
}

/// The distinct terms of a query with their weights, sorted by term.
///
/// # Errors
/// [`EmbedError::EmptyQuery`] when the query has nothing to search for.
///
/// ```
/// let terms = turboprop_embed::query_terms("split the pot").expect("words");
/// assert_eq!(terms, [("pot".to_string(), 1.0), ("split".to_string(), 1.0), ("splitpot".to_string(), 0.5)]);
/// assert!(turboprop_embed::query_terms("  ").is_err());
/// ```
pub fn query_terms(query: &str) -> Result<Vec<(String, f32)>, EmbedError> {
    if query.trim().is_empty() {
        return Err(EmbedError::EmptyQuery);
    }
    let mut weights: BTreeMap<String, f32> = BTreeMap::new();
    analyze_query(query, |term, kind| {
        let w = match kind {
            TermKind::Word => 1.0,
            TermKind::Compound => QUERY_COMPOUND_WEIGHT,
        };
        *weights.entry(term.to_owned()).or_default() += w;
    });
    if weights.is_empty() {
        return Err(EmbedError::EmptyQuery);
    }
    Ok(weights.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_sorted_distinct_and_positive() {
        let doc = document_terms(
            "impl Table {\n    /// Deals a card to every seat.\n    fn deal(&mut self) { self.deck.pop(); }\n}\n",
            Some("Table::deal"),
        );
        let pairs = doc.pairs();
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(pairs.iter().all(|(_, f)| f.is_finite() && *f > 0.0));
        let tf = |t: &str| doc.iter().find(|(x, _)| *x == t).map(|(_, f)| f);
        // `deal` twice in the text (Deals, deal), and the symbol's extra weight.
        assert_eq!(tf("deal"), Some(2.0 + SYMBOL_WEIGHT));
        // `Table` is stemmed as a query's "tables" would be.
        let table = query_terms("tables").expect("a word")[0].0.clone();
        assert_eq!(tf(&table), Some(1.0 + SYMBOL_WEIGHT));
        assert_eq!(tf("dealcard"), Some(PHRASE_WEIGHT));
        // The prose's words are counted in the length, the compounds are not.
        assert!(doc.length() >= 8.0);
    }

    #[test]
    fn sentence_punctuation_parts_phrases() {
        let doc = document_terms("Reads the file. Writes the cache.", None);
        let has = |t: &str| doc.iter().any(|(x, _)| x == t);
        let compound = |q: &str| {
            query_terms(q)
                .expect("words")
                .into_iter()
                .find(|(_, w)| *w == QUERY_COMPOUND_WEIGHT)
                .expect("a compound")
                .0
        };
        assert!(has(&compound("read file")) && has(&compound("write cache")));
        assert!(!has(&compound("file writes")));
    }

    #[test]
    fn a_query_of_stopwords_keeps_them() {
        let q = query_terms("self").expect("kept");
        assert_eq!(q, [("self".to_string(), 1.0)]);
        assert!(matches!(query_terms("!!"), Err(EmbedError::EmptyQuery)));
    }
}
