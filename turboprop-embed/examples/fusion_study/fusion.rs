//! Hybrid ranking: one score per candidate chunk from its lexical and its semantic cosine.
//!
//! Self-contained (no crate imports) so that it can move into a library crate as it is.
//!
//! The fused score is a convex blend of the two cosines, each clamped to 0..1:
//!
//! ```text
//! score = w · max(lexical, 0) + (1 − w) · max(semantic, 0)        (so 0 ≤ score ≤ 1)
//! ```
//!
//! The weight `w` is chosen per query: [`Fusion::confident_weight`] when the lexical ranker is
//! confident about this query (its [`Confidence`] rule holds on the candidates' lexical
//! cosines), else [`Fusion::lexical_weight`]. A confident lexical ranker is one whose best
//! chunk stands out; that is the case when the words of the query are in the code (a doc
//! comment, a name), where lexical search is hard to beat, and it is not the case when the
//! query describes the code in other words, where the model's cosine is the better guide.
//! Within one query every score has the same weight, so the order of the results is the
//! order of one convex blend and `--threshold` applies to that blend.

/// The hybrid ranking chosen by `fusion_study` (see `EVAL.md`): `0.7 · lexical + 0.3 · semantic`
/// for every query. On 2,471 queries in sixteen crates (five for tuning, eleven held out) it is
/// at or above the better single ranker in recall@10 and MRR@10 both with doc comments
/// present and blanked; gating on the lexical ranker's confidence gained at most 0.001 on the
/// tuning crates and lost up to 0.005 on the held-out ones.
pub const HYBRID: Fusion = Fusion::blend(0.7);

/// When the lexical ranker is trusted with a query, judged from the lexical cosines of the
/// candidates (which must include the lexical top 10; see [`fuse`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Confidence {
    /// Never: every query gets [`Fusion::lexical_weight`].
    Never,
    /// The best lexical cosine is at least this.
    Top(f32),
    /// The best lexical cosine exceeds the second best by at least this.
    Margin(f32),
    /// The best lexical cosine exceeds the tenth best by at least this.
    Gap10(f32),
    /// `1 − tenth best / best` is at least this (the relative gap, 0..1).
    Ratio10(f32),
}

/// A fusion rule: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    /// Weight of the lexical cosine for queries the lexical ranker is not confident about.
    pub lexical_weight: f32,
    /// Weight of the lexical cosine for queries it is confident about.
    pub confident_weight: f32,
    /// The rule that decides.
    pub confidence: Confidence,
}

impl Fusion {
    /// A fixed blend: weight `w` for every query.
    pub const fn blend(w: f32) -> Fusion {
        Fusion {
            lexical_weight: w,
            confident_weight: w,
            confidence: Confidence::Never,
        }
    }

    /// Whether the lexical ranker is confident, given the lexical cosines of the candidates.
    pub fn confident(&self, lexical: impl Iterator<Item = f32>) -> bool {
        // The two best and the tenth best lexical cosines (0 where there are fewer).
        let mut top = [0.0f32; 10];
        for s in lexical {
            let s = s.max(0.0);
            if s > top[9] {
                let mut k = 9;
                while k > 0 && top[k - 1] < s {
                    top[k] = top[k - 1];
                    k -= 1;
                }
                top[k] = s;
            }
        }
        let (best, second, tenth) = (top[0], top[1], top[9]);
        match self.confidence {
            Confidence::Never => false,
            Confidence::Top(t) => best >= t,
            Confidence::Margin(t) => best - second >= t,
            Confidence::Gap10(t) => best - tenth >= t,
            Confidence::Ratio10(t) => best > 0.0 && 1.0 - tenth / best >= t,
        }
    }

    /// The weight of the lexical cosine for this query.
    pub fn weight(&self, candidates: &[(f32, f32)]) -> f32 {
        if self.confident(candidates.iter().map(|c| c.0)) {
            self.confident_weight
        } else {
            self.lexical_weight
        }
    }
}

/// The hybrid score, in 0..1, of each candidate `(lexical cosine, semantic cosine)` of one
/// query, in the candidates' order.
///
/// `candidates` must hold at least the lexical ranker's top 10 for the query (the union of
/// both rankers' top k, k ≥ 10, with both exact cosines for each chunk, does), because the
/// confidence rule reads the best, second best and tenth best lexical cosine from them.
/// Order is irrelevant. Cosines outside 0..1 are clamped, NaN counts as 0.
pub fn fuse(candidates: &[(f32, f32)], fusion: &Fusion) -> Vec<f32> {
    let clean = |x: f32| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    let w = clean(fusion.weight(candidates));
    candidates
        .iter()
        .map(|&(lex, sem)| (w * clean(lex) + (1.0 - w) * clean(sem)).clamp(0.0, 1.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATED: Fusion = Fusion {
        lexical_weight: 0.2,
        confident_weight: 1.0,
        confidence: Confidence::Top(0.5),
    };

    #[test]
    fn a_fixed_blend_is_the_convex_combination_of_the_clamped_cosines() {
        let got = fuse(
            &[(0.5, 0.1), (0.0, 1.0), (-0.3, 0.4), (1.2, -1.0)],
            &Fusion::blend(0.25),
        );
        let want = [0.2, 0.75, 0.3, 0.25];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn hybrid_is_seven_tenths_lexical() {
        let got = fuse(&[(0.5, 0.2), (0.1, 0.9)], &HYBRID);
        assert!(
            (got[0] - 0.41).abs() < 1e-6 && (got[1] - 0.34).abs() < 1e-6,
            "{got:?}"
        );
    }

    #[test]
    fn scores_stay_in_0_1_for_any_input() {
        let odd = [
            (f32::NAN, 0.5),
            (2.0, 2.0),
            (-2.0, -2.0),
            (f32::INFINITY, f32::NEG_INFINITY),
        ];
        for w in [-1.0, 0.0, 0.3, 1.0, 2.0, f32::NAN] {
            for s in fuse(&odd, &Fusion::blend(w)) {
                assert!((0.0..=1.0).contains(&s), "w {w}: {s}");
            }
        }
    }

    #[test]
    fn a_confident_lexical_ranker_keeps_its_order() {
        // Lexical best 0.8 ≥ 0.5: weight 1, the lexical cosines themselves.
        let c = [(0.8, 0.1), (0.3, 0.9), (0.1, 0.5)];
        assert_eq!(fuse(&c, &GATED), vec![0.8, 0.3, 0.1]);
    }

    #[test]
    fn an_unsure_lexical_ranker_is_blended_with_the_model() {
        // Lexical best 0.4 < 0.5: 0.2 · lexical + 0.8 · semantic.
        let c = [(0.4, 0.1), (0.3, 0.9)];
        let got = fuse(&c, &GATED);
        assert!((got[0] - 0.16).abs() < 1e-6 && (got[1] - 0.78).abs() < 1e-6);
        assert!(got[1] > got[0]);
    }

    #[test]
    fn confidence_rules_read_best_second_and_tenth() {
        let mut c: Vec<(f32, f32)> = (0..12).map(|i| (0.05 * i as f32, 0.0)).collect();
        c.reverse(); // best 0.55, second 0.5, tenth 0.10
        let rule = |confidence| Fusion {
            confidence,
            ..GATED
        };
        assert!(rule(Confidence::Top(0.55)).confident(c.iter().map(|x| x.0)));
        assert!(!rule(Confidence::Top(0.56)).confident(c.iter().map(|x| x.0)));
        assert!(rule(Confidence::Margin(0.049)).confident(c.iter().map(|x| x.0)));
        assert!(!rule(Confidence::Margin(0.051)).confident(c.iter().map(|x| x.0)));
        assert!(rule(Confidence::Gap10(0.449)).confident(c.iter().map(|x| x.0)));
        assert!(!rule(Confidence::Gap10(0.451)).confident(c.iter().map(|x| x.0)));
        let ratio = 1.0 - 0.10 / 0.55;
        assert!(rule(Confidence::Ratio10(ratio - 0.001)).confident(c.iter().map(|x| x.0)));
        assert!(!rule(Confidence::Ratio10(ratio + 0.001)).confident(c.iter().map(|x| x.0)));
        assert!(!rule(Confidence::Never).confident(c.iter().map(|x| x.0)));
    }

    #[test]
    fn fewer_than_ten_candidates_count_the_missing_as_zero() {
        let c = [(0.3, 0.0), (0.1, 0.0)];
        let f = Fusion {
            confidence: Confidence::Gap10(0.3),
            ..GATED
        };
        assert!(f.confident(c.iter().map(|x| x.0)));
        assert!(fuse(&[], &f).is_empty());
    }
}
