//! Hybrid ranking: fusing a chunk's lexical and semantic cosine similarities into one score.
//!
//! [`hybrid_scores`] is the fusion `tp search --mode hybrid` uses. It was chosen by
//! measurement (`turboprop-cli/examples/eval_modes/`, table in the README): on functions
//! found by the first sentence of their doc comment in ten real crates, a convex blend of the
//! two cosines with [`LEXICAL_WEIGHT`] 0.7 beat both single rankers with doc comments present
//! and with them blanked, on crates it was tuned on and on held-out crates; reciprocal-rank
//! fusion lost to the lexical ranker where doc comments are present, and rules that trust the
//! lexical ranker when its top score or margin is high gained nothing over the plain blend.

/// The lexical cosine's weight in the hybrid score; the semantic cosine's is
/// `1 - LEXICAL_WEIGHT`.
pub const LEXICAL_WEIGHT: f32 = 0.7;

/// The fused scores of candidates given their `[lexical, semantic]` cosines (`scores[c]`
/// for candidate `c`; missing or negative values count as 0):
/// `0.7 · lexical + 0.3 · semantic`.
///
/// A convex blend of two cosines in 0..=1 is itself in 0..=1 and reads as a similarity: 1
/// only for a chunk that matches the query perfectly in both spaces. The lexical cosine gets
/// the larger weight because it is the sharper ranker when the query's words are in the code
/// (its top hits score far above the rest), while the semantic cosine, flatter across chunks,
/// reorders what the words leave close and rescues chunks that share no word with the query.
///
/// ```
/// let fused = turboprop_index::hybrid_scores(&[vec![0.5, 0.2], vec![0.1, 0.9], vec![0.4]]);
/// assert!((fused[0] - 0.41).abs() < 1e-6);
/// assert!((fused[1] - 0.34).abs() < 1e-6);
/// assert!((fused[2] - 0.28).abs() < 1e-6, "a missing score counts as 0");
/// ```
pub fn hybrid_scores(scores: &[Vec<f32>]) -> Vec<f32> {
    scores
        .iter()
        .map(|s| {
            let lexical = s.first().copied().unwrap_or(0.0).clamp(0.0, 1.0);
            let semantic = s.get(1).copied().unwrap_or(0.0).clamp(0.0, 1.0);
            LEXICAL_WEIGHT * lexical + (1.0 - LEXICAL_WEIGHT) * semantic
        })
        .collect()
}
