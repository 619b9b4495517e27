//! Fused search over several vector spaces ([`Index::search_fused`]): each query's best rows
//! become candidates, every candidate is scored exactly in every queried space, and a
//! caller's function fuses those scores into one.

use super::{Hit, Index, LexicalQuery, SearchOptions};
use crate::error::{IndexError, Result};
use crate::kernel::{dot_rows, Isa};
use crate::topk::{Scored, TopK};

/// One query of [`Index::search_fused`].
#[derive(Debug, Clone, Copy)]
pub struct SpaceQuery<'q> {
    /// The vector space (0: primary; `k` ≥ 1: [`Index::spaces`]`[k - 1]`).
    pub space: usize,
    /// The query vector, normalized, of the space's dimensions.
    pub vector: &'q [f32],
    /// How many of the space's best rows become candidates.
    pub depth: usize,
}

impl Index {
    /// The chunks with the best fused scores over several vector spaces, best first.
    ///
    /// Each query's `depth` best rows in its space (among files that pass the filter)
    /// become candidates; every candidate is scored exactly in every queried space (0 in a
    /// space its segment has no vectors of); `fuse` maps those scores, `scores[c][q]` for
    /// candidate `c` and query `q`, to one fused score per candidate, and the best
    /// `opts.limit` with fused scores above zero and at least `opts.min_score` are returned
    /// with their fused scores (clamped to 0..=1).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use turboprop_index::{
    ///     Directory, Index, IndexSpec, IndexWriter, MemDirectory, ModelGuard, NewChunk,
    ///     SearchOptions, SpaceQuery, WriterOptions,
    /// };
    /// use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};
    ///
    /// let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    /// let guard = |id: &str| ModelGuard { id: id.into(), dimensions: 2 };
    /// let spec = IndexSpec {
    ///     lexical: None,
    ///     model: guard("words"),
    ///     chunking: ChunkingConfig::default(),
    ///     spaces: vec![guard("meaning")],
    /// };
    /// let mut writer = IndexWriter::open_in(dir.clone(), spec, WriterOptions::default(), || {})?;
    /// for (path, words, meaning) in [("a.rs", [1.0, 0.0], [0.0, 1.0]), ("b.rs", [0.6, 0.8], [0.6, 0.8])] {
    ///     let hash = ContentHash::of(path.as_bytes());
    ///     writer.put_file(FileRecord::new(path, 10, 0, hash)?, vec![NewChunk {
    ///         lexical: None,
    ///         line_start: 1, line_end: 1, byte_start: 0, byte_end: 10, hash,
    ///         vector: words.to_vec(), terms: vec![], spaces: vec![meaning.to_vec()],
    ///         symbol: None, kind: None,
    ///     }])?;
    /// }
    /// writer.commit()?;
    ///
    /// let index = Index::open_in(dir)?;
    /// let meaning = index.space_of_model("meaning").expect("a space");
    /// let queries = [
    ///     SpaceQuery { space: 0, vector: &[1.0, 0.0], depth: 10 },
    ///     SpaceQuery { space: meaning, vector: &[1.0, 0.0], depth: 10 },
    /// ];
    /// // The mean of both cosines: a.rs scores (1 + 0) / 2, b.rs (0.6 + 0.6) / 2.
    /// let mean = |scores: &[Vec<f32>]| -> Vec<f32> {
    ///     scores.iter().map(|s| s.iter().sum::<f32>() / s.len() as f32).collect()
    /// };
    /// let hits = index.search_fused(&queries, &SearchOptions::default(), &mean)?;
    /// assert_eq!(hits[0].chunk.file(), "b.rs");
    /// assert!((hits[0].score - 0.6).abs() < 1e-6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn search_fused(
        &self,
        queries: &[SpaceQuery<'_>],
        opts: &SearchOptions<'_>,
        fuse: &dyn Fn(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Vec<Hit>> {
        self.checked(self.fused(None, queries, opts, fuse))
    }

    /// [`Self::search_fused`] with the exact lexical space ([`Self::search_lexical`]) as the
    /// first ranker: its `depth` best rows are candidates too, and each candidate's
    /// normalized BM25 score comes first in `scores[c]`, before its scores in `queries`'
    /// spaces.
    pub fn search_fused_lexical(
        &self,
        lexical: &LexicalQuery,
        depth: usize,
        queries: &[SpaceQuery<'_>],
        opts: &SearchOptions<'_>,
        fuse: &dyn Fn(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Vec<Hit>> {
        self.checked(self.fused(Some((lexical, depth)), queries, opts, fuse))
    }

    /// [`Self::search_fused`] before the check that no file changed under it.
    fn fused(
        &self,
        lexical: Option<(&LexicalQuery, usize)>,
        queries: &[SpaceQuery<'_>],
        opts: &SearchOptions<'_>,
        fuse: &dyn Fn(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Vec<Hit>> {
        if opts.limit == 0 || (queries.is_empty() && lexical.is_none()) {
            return Ok(Vec::new());
        }
        let mut candidates: Vec<(u32, u32)> = Vec::new();
        let lexical = match lexical {
            Some((query, depth)) => {
                let scores = self.lexical_scores(query, opts.filter)?;
                candidates.extend(
                    scores
                        .top(depth.max(opts.limit), 0.0)
                        .into_sorted()
                        .into_iter()
                        .map(|s| (s.segment, s.row)),
                );
                Some(scores)
            }
            None => None,
        };
        for q in queries {
            let per_space = SearchOptions {
                limit: q.depth.max(opts.limit),
                min_score: 0.0,
                ..opts.clone()
            };
            candidates.extend(
                self.top(q.space, q.vector, &per_space)?
                    .into_sorted()
                    .into_iter()
                    .map(|s| (s.segment, s.row)),
            );
        }
        candidates.sort_unstable();
        candidates.dedup();
        let isa = Isa::detect();
        let scores: Vec<Vec<f32>> = candidates
            .iter()
            .map(|&(seg, row)| {
                let lexical = lexical.as_ref().map(|l| l.get(seg, row));
                lexical
                    .into_iter()
                    .chain(queries.iter().map(|q| {
                        let segment = &self.segments[seg as usize];
                        let d = q.vector.len();
                        let row = row as usize;
                        match segment
                            .vectors(q.space)
                            .and_then(|v| v.get(row * d..(row + 1) * d))
                        {
                            Some(v) => {
                                let mut s = [0.0f32];
                                dot_rows(isa, q.vector, v, &mut s);
                                s[0].max(0.0)
                            }
                            None => 0.0,
                        }
                    }))
                    .collect()
            })
            .collect();
        let fused = fuse(&scores);
        if fused.len() != candidates.len() {
            return Err(IndexError::InvalidVector {
                what: "fused scores".to_owned(),
                reason: format!("{} scores for {} candidates", fused.len(), candidates.len()),
            });
        }
        let floor = opts.min_score.max(0.0);
        let mut top = TopK::new(opts.limit);
        for (&(segment, row), &score) in candidates.iter().zip(&fused) {
            let score = if score.is_finite() {
                score.min(1.0)
            } else {
                0.0
            };
            if score > 0.0 && score >= floor && score >= top.threshold() {
                top.push(Scored {
                    score,
                    segment,
                    row,
                });
            }
        }
        top.into_sorted().into_iter().map(|s| self.hit(s)).collect()
    }
}
