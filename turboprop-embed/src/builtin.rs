//! [`BuiltinEmbedder`]: the lexical embedder that ships inside turboprop and needs no model.
//!
//! A document (chunk) becomes a bag of code-aware terms ([`crate::analyze_document`]); each
//! term gets a BM25-style saturated term frequency, normalized by the chunk's length against a
//! fixed typical length, and is added with a hash-derived sign into a hash-derived slot of the
//! vector, which is finally L2-normalized. Nothing about the collection enters a document
//! vector, so stored vectors stay valid when other files change.
//!
//! A query is weighted by BM25's inverse document frequency, taken from the index's
//! [`TermStatistics`], so the cosine between query and chunk approximates a BM25 score (up to
//! hashing collisions and the cosine's own length normalization).

use turboprop_types::{EmbedError, Embedder, LexicalTerms, TermId, TermStatistics};

use crate::analyze::{analyze_document, analyze_document_and_phrases, analyze_query, TermKind};
use crate::hash::{slots, term_hash, term_id_of, PROBE_SCALE};
use crate::lexical::DocumentTerms;

/// The model family; [`BuiltinEmbedder::model_id`] appends the dimension to it.
pub const MODEL_FAMILY: &str = "builtin-lexical-v1";

/// The dimension [`BuiltinEmbedder::new`] uses, chosen by measurement (see the crate README).
pub const DEFAULT_DIMENSIONS: usize = 512;

/// The smallest dimension [`BuiltinEmbedder::with_dimensions`] accepts.
pub const MIN_DIMENSIONS: usize = 16;

/// The largest dimension [`BuiltinEmbedder::with_dimensions`] accepts.
pub const MAX_DIMENSIONS: usize = 8192;

/// BM25's term-frequency saturation (the usual 1.2 saturates a little early for 40-line
/// chunks of code, where a repeated identifier is a strong signal).
const K1: f32 = 2.0;
/// BM25's length normalization strength.
const B: f32 = 0.75;
/// The length, in words, that counts as typical for a chunk: 40-line windows of Rust source
/// average about 80 words after stopwords. A fixed constant rather than the collection's
/// average, so document vectors do not depend on the collection.
const TYPICAL_LENGTH: f32 = 80.0;
/// How much one occurrence of a compound counts against one of a word, in a document.
const DOC_COMPOUND_WEIGHT: f32 = 0.25;
/// How much a compound of the query weighs against a word of the same rarity.
const QUERY_COMPOUND_WEIGHT: f32 = 0.5;
/// Query terms are weighted by `idf^IDF_POWER`: a little flatter than plain IDF, so one rare
/// word (and the hash collisions it brings) does not drown the rest of the query.
const IDF_POWER: f32 = 0.6;

/// A dimension outside [`MIN_DIMENSIONS`]`..=`[`MAX_DIMENSIONS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the built-in embedder cannot use {requested} dimensions: choose between {} and {}",
    MIN_DIMENSIONS,
    MAX_DIMENSIONS
)]
pub struct DimensionError {
    /// The dimension asked for.
    pub requested: usize,
}

/// The built-in code-aware lexical embedder: no download, no network, no model file.
///
/// ```
/// use turboprop_embed::BuiltinEmbedder;
/// use turboprop_types::{Embedder, NoTermStats};
///
/// let embedder = BuiltinEmbedder::new();
/// assert_eq!(embedder.model_id(), "builtin-lexical-v1-d512");
/// let docs = embedder
///     .embed_documents(&["fn split_pot(winners: &[Seat])", "fn shuffle_deck()"])
///     .expect("the built-in embedder does not fail");
/// let query = embedder.embed_query("split the pot", &NoTermStats).expect("a query");
/// let score = |d: &[f32]| d.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>();
/// assert!(score(&docs[0]) > score(&docs[1]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinEmbedder {
    dims: usize,
    model_id: String,
}

impl Default for BuiltinEmbedder {
    fn default() -> Self {
        Self::new()
    }
}

impl BuiltinEmbedder {
    /// The embedder with [`DEFAULT_DIMENSIONS`] dimensions.
    pub fn new() -> Self {
        Self::build(DEFAULT_DIMENSIONS)
    }

    /// The embedder with `dims` dimensions; fewer dimensions save disk and search time at the
    /// cost of more hash collisions.
    ///
    /// ```
    /// let e = turboprop_embed::BuiltinEmbedder::with_dimensions(256).expect("in range");
    /// assert_eq!(turboprop_types::Embedder::model_id(&e), "builtin-lexical-v1-d256");
    /// assert!(turboprop_embed::BuiltinEmbedder::with_dimensions(3).is_err());
    /// ```
    pub fn with_dimensions(dims: usize) -> Result<Self, DimensionError> {
        if !(MIN_DIMENSIONS..=MAX_DIMENSIONS).contains(&dims) {
            return Err(DimensionError { requested: dims });
        }
        Ok(Self::build(dims))
    }

    /// The embedder a model id names: an id produced by [`Embedder::model_id`]
    /// (`builtin-lexical-v1-d<dims>`), or the bare family name [`MODEL_FAMILY`] or `builtin`
    /// for the default dimension. `None` for anything else.
    ///
    /// ```
    /// use turboprop_embed::BuiltinEmbedder;
    /// use turboprop_types::Embedder;
    ///
    /// let e = BuiltinEmbedder::from_model_id("builtin-lexical-v1-d256").expect("known id");
    /// assert_eq!(e.dimensions(), 256);
    /// assert_eq!(BuiltinEmbedder::from_model_id("builtin"), Some(BuiltinEmbedder::new()));
    /// assert!(BuiltinEmbedder::from_model_id("all-MiniLM-L6-v2").is_none());
    /// ```
    pub fn from_model_id(id: &str) -> Option<Self> {
        if id == MODEL_FAMILY || id == "builtin" {
            return Some(Self::new());
        }
        let digits = id.strip_prefix(MODEL_FAMILY)?.strip_prefix("-d")?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return None;
        }
        Self::with_dimensions(digits.parse().ok()?).ok()
    }

    fn build(dims: usize) -> Self {
        BuiltinEmbedder {
            dims,
            model_id: format!("{MODEL_FAMILY}-d{dims}"),
        }
    }

    /// The vector of one document: L2-normalized, or all zeros when the text has no terms.
    pub fn embed_document(&self, text: &str) -> Vec<f32> {
        let terms = self.weigh_document(text);
        self.hash_into_vector(terms.iter().map(|t| (t.hash, t.weight)))
    }

    /// The vector of one document together with its distinct terms (what
    /// [`Embedder::document_terms`] returns), analyzing the text once instead of twice.
    pub fn embed_document_with_terms(&self, text: &str) -> (Vec<f32>, Vec<TermId>) {
        let terms = self.weigh_document(text);
        let vector = self.hash_into_vector(terms.iter().map(|t| (t.hash, t.weight)));
        (vector, distinct_ids(&terms))
    }

    /// [`Self::embed_document_with_terms`] and the chunk's exact lexical terms
    /// ([`crate::document_terms`] of `text` and `symbol`) from one pass over the text: the
    /// two analyses walk the same words, and `tp index` needs both for every chunk.
    ///
    /// ```
    /// use turboprop_embed::{document_terms, BuiltinEmbedder};
    ///
    /// let e = BuiltinEmbedder::new();
    /// let text = "/// Splits the pot.\nfn split_pot(winners: &[Seat]) {}";
    /// let (vector, ids, terms) = e.embed_document_with_lexical(text, Some("split_pot"));
    /// assert_eq!((vector, ids), e.embed_document_with_terms(text));
    /// assert_eq!(terms, document_terms(text, Some("split_pot")));
    /// ```
    pub fn embed_document_with_lexical(
        &self,
        text: &str,
        symbol: Option<&str>,
    ) -> (Vec<f32>, Vec<TermId>, LexicalTerms) {
        let mut occurrences: Vec<(u64, f32)> = Vec::new();
        let mut length = 0u32;
        let mut lexical = DocumentTerms::for_text(text);
        analyze_document_and_phrases(text, |term, kind, in_document| {
            lexical.add(term, kind);
            if in_document {
                occur(&mut occurrences, &mut length, term, kind);
            }
        });
        let terms = weigh(occurrences, length);
        let vector = self.hash_into_vector(terms.iter().map(|t| (t.hash, t.weight)));
        (vector, distinct_ids(&terms), lexical.finish(symbol))
    }

    /// The weight of every distinct term of a document before hashing, sorted by term id:
    /// the sparse vector that the dense one approximates.
    pub fn document_term_weights(&self, text: &str) -> Vec<(TermId, f32)> {
        let mut out: Vec<(TermId, f32)> = self
            .weigh_document(text)
            .iter()
            .map(|t| (term_id_of(t.hash), t.weight))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        out
    }

    /// The weight of every distinct term of a query before hashing, sorted by term id.
    ///
    /// # Errors
    /// [`EmbedError::EmptyQuery`] when the query is empty or only whitespace.
    pub fn query_term_weights(
        &self,
        query: &str,
        stats: &dyn TermStatistics,
    ) -> Result<Vec<(TermId, f32)>, EmbedError> {
        let mut out: Vec<(TermId, f32)> = self
            .weigh_query(query, stats)?
            .iter()
            .map(|t| (term_id_of(t.hash), t.weight))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        Ok(out)
    }

    /// The distinct terms of a document with their BM25-style document weights.
    fn weigh_document(&self, text: &str) -> Vec<Weighted> {
        let mut occurrences: Vec<(u64, f32)> = Vec::new();
        let mut length = 0u32;
        analyze_document(text, |term, kind| {
            occur(&mut occurrences, &mut length, term, kind)
        });
        weigh(occurrences, length)
    }

    /// The distinct terms of a query with their IDF weights.
    fn weigh_query(
        &self,
        query: &str,
        stats: &dyn TermStatistics,
    ) -> Result<Vec<Weighted>, EmbedError> {
        if query.trim().is_empty() {
            return Err(EmbedError::EmptyQuery);
        }
        let mut occurrences: Vec<(u64, f32)> = Vec::new();
        analyze_query(query, |term, kind| {
            let w = match kind {
                TermKind::Word => 1.0,
                TermKind::Compound => QUERY_COMPOUND_WEIGHT,
            };
            occurrences.push((term_hash(term), w));
        });
        let n = stats.documents() as f64;
        Ok(group(occurrences)
            .map(|(hash, qtf)| {
                let df = stats.document_frequency(term_id_of(hash)) as f64;
                // A term no chunk contains cannot match anything; in the hashed vector it
                // could only collide with other terms, so it gets no weight. Without any
                // statistics (an empty index) every term is kept, equally weighted.
                let idf = if n > 0.0 && df == 0.0 {
                    0.0
                } else {
                    (1.0 + ((n - df).max(0.0) + 0.5) / (df + 0.5)).ln()
                };
                Weighted {
                    hash,
                    weight: qtf * (idf as f32).powf(IDF_POWER),
                }
            })
            .collect())
    }

    /// Adds each weighted term into its signed slot and L2-normalizes the sum.
    fn hash_into_vector(&self, terms: impl Iterator<Item = (u64, f32)>) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        for (hash, weight) in terms {
            for (slot, sign) in slots(hash, self.dims) {
                v[slot] += sign * weight * PROBE_SCALE;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            for x in &mut v {
                *x /= norm;
            }
        }
        v
    }
}

/// Records one occurrence of a document's term (its hash and term frequency), counting the
/// words in `length`.
fn occur(occurrences: &mut Vec<(u64, f32)>, length: &mut u32, term: &str, kind: TermKind) {
    let tf = match kind {
        TermKind::Word => {
            *length += 1;
            1.0
        }
        TermKind::Compound => DOC_COMPOUND_WEIGHT,
    };
    occurrences.push((term_hash(term), tf));
}

/// The distinct terms of a document of `length` words with their BM25-style document
/// weights.
fn weigh(occurrences: Vec<(u64, f32)>, length: u32) -> Vec<Weighted> {
    let norm = 1.0 - B + B * length as f32 / TYPICAL_LENGTH;
    group(occurrences)
        .map(|(hash, tf)| Weighted {
            hash,
            weight: tf * (K1 + 1.0) / (tf + K1 * norm),
        })
        .collect()
}

/// A distinct term and its weight.
struct Weighted {
    hash: u64,
    weight: f32,
}

/// Sorts `(hash, weight)` occurrences and sums the weights of each distinct hash, in a fixed
/// order so that the result is bit-for-bit reproducible.
fn group(mut occurrences: Vec<(u64, f32)>) -> impl Iterator<Item = (u64, f32)> {
    occurrences.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<(u64, f32)> = Vec::with_capacity(occurrences.len());
    for (hash, w) in occurrences {
        match out.last_mut() {
            Some(last) if last.0 == hash => last.1 += w,
            _ => out.push((hash, w)),
        }
    }
    out.into_iter()
}

fn distinct_ids(terms: &[Weighted]) -> Vec<TermId> {
    let mut ids: Vec<TermId> = terms.iter().map(|t| term_id_of(t.hash)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl Embedder for BuiltinEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        use rayon::prelude::*;
        // Small batches are not worth waking the thread pool for.
        if texts.len() < 16 {
            return Ok(texts.iter().map(|t| self.embed_document(t)).collect());
        }
        Ok(texts.par_iter().map(|t| self.embed_document(t)).collect())
    }

    fn embed_query(&self, query: &str, stats: &dyn TermStatistics) -> Result<Vec<f32>, EmbedError> {
        let terms = self.weigh_query(query, stats)?;
        Ok(self.hash_into_vector(terms.iter().map(|t| (t.hash, t.weight))))
    }

    fn document_terms(&self, text: &str) -> Option<Vec<TermId>> {
        Some(distinct_ids(&self.weigh_document(text)))
    }

    fn embed_documents_with_terms(
        &self,
        texts: &[&str],
    ) -> Result<Vec<turboprop_types::EmbeddedDocument>, EmbedError> {
        use rayon::prelude::*;
        if texts.len() < 16 {
            return Ok(texts
                .iter()
                .map(|t| self.embed_document_with_terms(t))
                .collect());
        }
        Ok(texts
            .par_iter()
            .map(|t| self.embed_document_with_terms(t))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::hash::term_id;
    use turboprop_types::NoTermStats;

    /// A document-frequency table built the way the index builds it.
    struct Stats {
        docs: u64,
        df: HashMap<TermId, u64>,
    }

    impl Stats {
        fn of(embedder: &BuiltinEmbedder, docs: &[&str]) -> Stats {
            let mut df = HashMap::new();
            for doc in docs {
                for t in embedder
                    .document_terms(doc)
                    .expect("lexical embedders have terms")
                {
                    *df.entry(t).or_insert(0) += 1;
                }
            }
            Stats {
                docs: docs.len() as u64,
                df,
            }
        }
    }

    impl TermStatistics for Stats {
        fn documents(&self) -> u64 {
            self.docs
        }
        fn document_frequency(&self, term: TermId) -> u64 {
            self.df.get(&term).copied().unwrap_or(0)
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn norm(v: &[f32]) -> f32 {
        dot(v, v).sqrt()
    }

    #[test]
    fn model_id_names_the_dimension_and_round_trips() {
        let e = BuiltinEmbedder::new();
        assert_eq!(e.model_id(), "builtin-lexical-v1-d512");
        assert_eq!(e.dimensions(), DEFAULT_DIMENSIONS);
        for dims in [MIN_DIMENSIONS, 384, 1024, MAX_DIMENSIONS] {
            let e = BuiltinEmbedder::with_dimensions(dims).expect("in range");
            assert_eq!(
                BuiltinEmbedder::from_model_id(e.model_id()),
                Some(e.clone())
            );
        }
        for bad in [
            "builtin-lexical-v1-d0512",
            "builtin-lexical-v1-d8",
            "builtin-lexical-v1-d",
            "builtin-lexical-v1-d+512",
            "builtin-lexical-v2-d512",
            "builtin-lexical-v1-d99999999999999999999999",
            "",
        ] {
            assert_eq!(BuiltinEmbedder::from_model_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn dimensions_out_of_range_are_refused() {
        assert_eq!(
            BuiltinEmbedder::with_dimensions(0),
            Err(DimensionError { requested: 0 })
        );
        let err = BuiltinEmbedder::with_dimensions(MAX_DIMENSIONS + 1).expect_err("too large");
        assert!(err.to_string().contains("8193"), "{err}");
    }

    #[test]
    fn document_vectors_are_normalized_and_deterministic() {
        let text = "/// Splits the pot between tied winners.\npub fn split_pot(&self) {}";
        let a = BuiltinEmbedder::new().embed_document(text);
        let b = BuiltinEmbedder::new().embed_document(text);
        assert_eq!(a.len(), 512);
        assert!((norm(&a) - 1.0).abs() < 1e-5);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
    }

    #[test]
    fn stored_vectors_are_pinned() {
        // If this fails, vectors already on disk no longer match new ones: bump MODEL_FAMILY.
        let e = BuiltinEmbedder::with_dimensions(16).expect("in range");
        let v = e.embed_document("fn split_pot(pot: Pot)");
        let pinned: Vec<(usize, f32)> = v
            .iter()
            .enumerate()
            .filter(|(_, x)| **x != 0.0)
            .map(|(i, x)| (i, (x * 1e4).round() / 1e4))
            .collect();
        assert_eq!(pinned, PINNED);
    }

    const PINNED: &[(usize, f32)] = &[
        (1, -0.792),
        (3, 0.1628),
        (4, -0.4509),
        (8, 0.3411),
        (11, 0.1628),
    ];

    proptest::proptest! {
        /// The one-pass analysis `tp index` uses gives exactly what the two analyses give
        /// on their own: the same vector bits, term ids and exact terms.
        #[test]
        fn one_pass_equals_the_two_analyses(
            text in "([a-zA-Z_]{1,12}|[0-9]{1,3}|[ .,;:()\\[\\]{}\n\"`#/*-]|ÜberGröße|ß|the|self|fn|x{41}){0,60}",
            symbol in proptest::option::of("[A-Za-z_]{1,10}(::[A-Za-z_]{1,10}){0,2}"),
        ) {
            let e = BuiltinEmbedder::new();
            let (vector, ids, terms) = e.embed_document_with_lexical(&text, symbol.as_deref());
            let (want_vector, want_ids) = e.embed_document_with_terms(&text);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&vector), bits(&want_vector));
            proptest::prop_assert_eq!(ids, want_ids);
            proptest::prop_assert_eq!(terms, crate::document_terms(&text, symbol.as_deref()));
        }
    }

    #[test]
    fn texts_without_terms_give_zero_vectors() {
        let e = BuiltinEmbedder::new();
        for text in ["", "   \n", "{ } ( ) ; 1 2 3", "the of and", "fn pub let"] {
            let v = e.embed_document(text);
            assert!(v.iter().all(|x| *x == 0.0), "{text:?}");
            assert_eq!(e.document_terms(text), Some(Vec::new()));
        }
        let q = e.embed_query("x", &NoTermStats).expect("not empty");
        assert!(q.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn empty_queries_are_refused() {
        let e = BuiltinEmbedder::new();
        for q in ["", " ", "\n\t "] {
            assert!(matches!(
                e.embed_query(q, &NoTermStats),
                Err(EmbedError::EmptyQuery)
            ));
        }
    }

    #[test]
    fn matching_document_scores_higher() {
        let e = BuiltinEmbedder::new();
        let docs = [
            "/// Splits the pot between tied winners.\nfn split_pot(winners: &[Seat], pot: u64) {}",
            "/// Deals two hole cards to every player.\nfn deal_hole_cards(deck: &mut Deck) {}",
            "/// Ranks a five-card hand.\nfn rank_hand(cards: [Card; 5]) -> HandRank {}",
        ];
        let vectors = e.embed_documents(&docs).expect("embeds");
        for stats in [&Stats::of(&e, &docs) as &dyn TermStatistics, &NoTermStats] {
            let q = e.embed_query("split the pot", stats).expect("a query");
            assert!((norm(&q) - 1.0).abs() < 1e-5);
            let scores: Vec<f32> = vectors.iter().map(|v| dot(v, &q)).collect();
            assert!(scores[0] > 0.3, "{scores:?}");
            assert!(
                scores[0] > scores[1] + 0.2 && scores[0] > scores[2] + 0.2,
                "{scores:?}"
            );
        }
    }

    #[test]
    fn prose_query_matches_the_identifier_that_spells_it() {
        let e = BuiltinEmbedder::new();
        let docs = [
            "fn hand_rank() {}\nlet rank = hand.len();",
            "fn rank() {}\nlet hand = 1;",
        ];
        let vectors = e.embed_documents(&docs).expect("embeds");
        let stats = Stats::of(&e, &docs);
        let q = e.embed_query("hand rank", &stats).expect("a query");
        assert!(dot(&vectors[0], &q) > dot(&vectors[1], &q));
    }

    #[test]
    fn question_in_prose_finds_the_function_by_its_words_only() {
        let e = BuiltinEmbedder::new();
        let docs = [
            "fn retry_upload(file: &Path, attempts: u32) -> io::Result<()> {}",
            "fn backoff_and_resend(file: &Path, attempts: u32) -> io::Result<()> {}",
            "fn render_progress_bar(done: u64, total: u64) {}",
        ];
        let vectors = e.embed_documents(&docs).expect("embeds");
        let stats = Stats::of(&e, &docs);
        let q = e
            .embed_query("where do we retry failed uploads", &stats)
            .expect("a query");
        let scores: Vec<f32> = vectors.iter().map(|v| dot(v, &q)).collect();
        assert!(scores[0] > 0.3, "{scores:?}");
        // Lexical: same meaning in different words does not match; what the other chunks
        // score comes from hash collisions only, well below a real match.
        assert!(scores[1] < 0.2 && scores[2] < 0.2, "{scores:?}");
    }

    #[test]
    fn rare_query_terms_outweigh_common_ones() {
        let e = BuiltinEmbedder::new();
        let hand = "fn hand() {}";
        let kicker = "fn kicker() {}";
        let (vh, vk) = (e.embed_document(hand), e.embed_document(kicker));
        // `hand` occurs everywhere, `kicker` once...
        let mut docs = vec!["let hand = deal();"; 50];
        docs.push(kicker);
        let q = e
            .embed_query("hand kicker", &Stats::of(&e, &docs))
            .expect("a query");
        assert!(dot(&vk, &q) > dot(&vh, &q));
        // ...and the other way round.
        let mut docs = vec!["let kicker = high_card();"; 50];
        docs.push(hand);
        let q = e
            .embed_query("hand kicker", &Stats::of(&e, &docs))
            .expect("a query");
        assert!(dot(&vh, &q) > dot(&vk, &q));
        // Without statistics both weigh the same.
        let q = e.embed_query("hand kicker", &NoTermStats).expect("a query");
        assert!((dot(&vh, &q) - dot(&vk, &q)).abs() < 1e-6);
    }

    #[test]
    fn query_terms_no_chunk_contains_are_ignored() {
        let e = BuiltinEmbedder::new();
        let stats = Stats::of(&e, &["fn hand() {}", "fn deck() {}"]);
        let with = e.embed_query("hand xyzzy", &stats).expect("a query");
        let without = e.embed_query("hand", &stats).expect("a query");
        assert_eq!(with, without);
    }

    #[test]
    fn document_terms_are_sorted_distinct_and_include_compounds() {
        let e = BuiltinEmbedder::new();
        let terms = e
            .document_terms("fn rank_hand(hand: Hand) -> Rank { rank(hand) }")
            .expect("terms");
        let mut sorted = terms.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(terms, sorted);
        let mut want = vec![term_id("rank"), term_id("hand"), term_id("rankhand")];
        want.sort_unstable();
        assert_eq!(terms, want);
    }

    #[test]
    fn combined_and_batch_paths_agree_with_single_ones() {
        let e = BuiltinEmbedder::with_dimensions(384).expect("in range");
        let texts: Vec<String> = (0..40)
            .map(|i| format!("fn handler_{i}(request: &Request) -> Response {{ route(request) }}"))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batch = e.embed_documents(&refs).expect("embeds");
        for (text, v) in refs.iter().zip(&batch) {
            assert_eq!(&e.embed_document(text), v);
            let (single, terms) = e.embed_document_with_terms(text);
            assert_eq!(&single, v);
            assert_eq!(Some(terms), e.document_terms(text));
        }
    }

    #[test]
    fn sparse_weights_are_what_the_vector_hashes() {
        let e = BuiltinEmbedder::new();
        let doc = e.document_term_weights("fn pot() { pot + pot }");
        assert_eq!(doc.len(), 1);
        assert_eq!(doc[0].0, term_id("pot"));
        // tf = 3 in a very short chunk: close to the saturation limit k1 + 1.
        assert!(doc[0].1 > 2.0 && doc[0].1 < K1 + 1.0, "{doc:?}");
        let query = e
            .query_term_weights("split pot", &NoTermStats)
            .expect("a query");
        let word = 2f32.ln().powf(IDF_POWER);
        let mut want = vec![
            (term_id("split"), word),
            (term_id("pot"), word),
            (term_id("splitpot"), word * QUERY_COMPOUND_WEIGHT),
        ];
        want.sort_by_key(|a| a.0);
        assert_eq!(query, want);
    }
}
