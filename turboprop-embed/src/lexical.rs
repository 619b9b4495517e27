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

use std::collections::HashMap;

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
    // A 40-line window of ~/.cargo/registry/src has 82 distinct terms in 1.4 KB, one per 17
    // bytes: room for one per 10 bytes, so the table rarely grows.
    let guess = text.len() / 10 + 16;
    let mut terms = TermInterner::with_capacity(guess, guess * 8);
    let mut tf: Vec<f32> = Vec::with_capacity(guess);
    let mut length = 0u32;
    let mut add = |term: &str, w: f32| {
        // A chunk is kilobytes: its distinct terms always fit the interner.
        if let Some((id, new)) = terms.intern(term) {
            if new {
                tf.push(0.0);
            }
            if let Some(f) = tf.get_mut(id as usize) {
                *f += w;
            }
        }
    };
    analyze_phrases(text, |term, kind| {
        let w = match kind {
            TermKind::Word => {
                length += 1;
                1.0
            }
            TermKind::Compound => PHRASE_WEIGHT,
        };
        add(term, w);
    });
    if let Some(symbol) = symbol {
        analyze_phrases(&symbol.replace("::", " "), |term, kind| {
            if kind == TermKind::Word {
                add(term, SYMBOL_WEIGHT);
            }
        });
    }
    let mut out = LexicalTerms::new(length as f32);
    out.reserve(terms.len(), terms.text_len());
    for id in terms.sorted_ids() {
        out.push(
            terms.get(id),
            tf.get(id as usize).copied().unwrap_or_default(),
        );
    }
    out
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
    let mut weights: HashMap<String, f32> = HashMap::new();
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
    let mut terms: Vec<(String, f32)> = weights.into_iter().collect();
    terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(terms)
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
