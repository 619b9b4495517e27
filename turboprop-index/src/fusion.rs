//! Hybrid ranking: fusing a chunk's lexical and semantic scores into one.
//!
//! [`hybrid_scores`] is the fusion `tp search --mode hybrid` uses, chosen by measurement
//! (`turboprop-cli/examples/eval_modes/ --study`, docs/performance.md): on functions found by
//! the first sentence of their doc comment in Rust crates and Python, JavaScript and
//! TypeScript packages, with the exact lexical space (BM25 over postings, normalized by the
//! query's ceiling), a convex blend whose lexical weight rises with the best lexical score
//! among the candidates is at or above both single rankers with doc comments present and
//! with them blanked, on the tuning corpora it was chosen on and on held-out ones (with
//! comments present, held out, its MRR equals the lexical ranker's). A fixed blend of 0.6 or
//! 0.7 lexical stayed under the lexical ranker alone where doc comments are present, 0.8
//! gave up more where they are blanked; reciprocal-rank fusion lost to it everywhere.

/// The lexical score's weight in the hybrid score when no candidate matches the query's
/// words; it rises to `LEXICAL_WEIGHT + LEXICAL_GAIN` when one matches them perfectly.
pub const LEXICAL_WEIGHT: f32 = 0.7;

/// How much the lexical weight rises with the square of the best lexical score.
pub const LEXICAL_GAIN: f32 = 0.3;

/// The fused scores of candidates given their `[lexical, semantic]` scores (`scores[c]` for
/// candidate `c`; missing or negative values count as 0):
/// `w · lexical + (1 - w) · semantic` with `w = 0.7 + 0.3 · top²`, `top` the best lexical
/// score among the candidates.
///
/// Both scores are in 0..=1, so the blend is too, and reads as a similarity. The lexical
/// score gets the larger weight because it is the sharper ranker when the query's words are
/// in the code (its top hits score far above the rest); the semantic score, flatter across
/// chunks, reorders what the words leave close and rescues chunks that share no word with
/// the query. When some chunk holds the query's words with weight (a query that quotes a
/// comment, a name spelled out), the lexical ranker is right more often and the semantic
/// score gets less say.
///
/// ```
/// // The best lexical score is 0.5: the lexical weight is 0.7 + 0.3 · 0.25 = 0.775.
/// let fused = turboprop_index::hybrid_scores(&[vec![0.5, 0.2], vec![0.1, 0.9], vec![0.4]]);
/// assert!((fused[0] - (0.775 * 0.5 + 0.225 * 0.2)).abs() < 1e-6);
/// assert!((fused[1] - (0.775 * 0.1 + 0.225 * 0.9)).abs() < 1e-6);
/// assert!((fused[2] - 0.775 * 0.4).abs() < 1e-6, "a missing score counts as 0");
/// ```
pub fn hybrid_scores(scores: &[Vec<f32>]) -> Vec<f32> {
    let part = |s: &[f32], k: usize| s.get(k).copied().unwrap_or(0.0).clamp(0.0, 1.0);
    let top = scores.iter().map(|s| part(s, 0)).fold(0.0f32, f32::max);
    let w = LEXICAL_WEIGHT + LEXICAL_GAIN * top * top;
    scores
        .iter()
        .map(|s| w * part(s, 0) + (1.0 - w) * part(s, 1))
        .collect()
}
