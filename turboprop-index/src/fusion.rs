//! Hybrid ranking: fusing a chunk's lexical and semantic cosine similarities into one score.
//!
//! [`hybrid_scores`] is the fusion `tp search --mode hybrid` uses, chosen by measurement
//! (see the README's evaluation table and `turboprop-cli/examples/eval_modes.rs`).

/// The fused scores of candidates given their `[lexical, semantic]` cosines (`scores[c]`
/// for candidate `c`; missing values count as 0).
///
/// The fused score is a convex blend of the two cosines, so it stays in 0..=1 and reads as
/// a similarity: 1 only for a chunk that matches the query perfectly in both spaces.
///
/// ```
/// let fused = turboprop_index::hybrid_scores(&[vec![0.8, 0.4], vec![0.0, 0.9]]);
/// assert!(fused.iter().all(|s| (0.0..=1.0).contains(s)));
/// ```
pub fn hybrid_scores(scores: &[Vec<f32>]) -> Vec<f32> {
    scores
        .iter()
        .map(|s| {
            let lexical = s.first().copied().unwrap_or(0.0).clamp(0.0, 1.0);
            let semantic = s.get(1).copied().unwrap_or(0.0).clamp(0.0, 1.0);
            0.5 * lexical + 0.5 * semantic
        })
        .collect()
}
