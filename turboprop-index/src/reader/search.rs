//! Search in one vector space: the public entry points, the choice per segment between
//! exact scoring and the fast path over codes, and the reading of each best row's chunk
//! record into a [`Hit`].

use turboprop_types::ChunkMeta;

use super::{check, fast_candidates, Hit, Index, SearchOptions, Strategy, FAST_MIN_ROWS};
use crate::error::{IndexError, Result};
use crate::sparse;
use crate::topk::{Scored, TopK};

impl Index {
    /// The `limit` chunks most similar to `query` (a normalized vector of the index's
    /// dimensions), best first, among files that pass the filter.
    pub fn search(&self, query: &[f32], opts: &SearchOptions<'_>) -> Result<Vec<Hit>> {
        self.search_space(0, query, opts)
    }

    /// [`Self::search`] in vector space `space` (0: the primary vectors; `k` ≥ 1:
    /// [`Self::spaces`]`[k - 1]`). Rows of segments without vectors in the space (written
    /// before it was added, see [`Self::space_rows`]) are not searched.
    pub fn search_space(
        &self,
        space: usize,
        query: &[f32],
        opts: &SearchOptions<'_>,
    ) -> Result<Vec<Hit>> {
        let hits = self
            .top(space, query, opts)
            .and_then(|top| top.into_sorted().into_iter().map(|s| self.hit(s)).collect());
        self.checked(hits)
    }

    /// The best rows of space `space` for `query`.
    pub(super) fn top(
        &self,
        space: usize,
        query: &[f32],
        opts: &SearchOptions<'_>,
    ) -> Result<TopK> {
        let Some(model) = self.space_model(space) else {
            return Err(IndexError::InvalidVector {
                what: "query".to_owned(),
                reason: format!("no vector space {space} in the index"),
            });
        };
        let dims = model.dimensions as usize;
        if query.len() != dims {
            return Err(IndexError::InvalidVector {
                what: "query".to_owned(),
                reason: format!("{} dimensions, index has {dims}", query.len()),
            });
        }
        if query.iter().any(|v| !v.is_finite()) {
            return Err(IndexError::InvalidVector {
                what: "query".to_owned(),
                reason: "non-finite value".to_owned(),
            });
        }
        if opts.limit == 0 {
            return Ok(TopK::new(0));
        }
        let blocks = self.blocks(opts.filter, space)?;
        let rows: usize = blocks.iter().map(|(_, r)| r.len()).sum();
        let fast = match opts.strategy {
            Strategy::Exact => false,
            Strategy::Fast => true,
            Strategy::Auto => rows >= FAST_MIN_ROWS,
        };
        let want = if opts.candidates == 0 {
            fast_candidates(opts.limit, rows)
        } else {
            opts.candidates.max(opts.limit)
        };
        let (coded, plain): (Vec<_>, Vec<_>) = if fast {
            blocks.into_iter().partition(|(s, _)| {
                let seg = &self.segments[*s];
                seg.codes(space).is_some() || seg.codes8(space).is_some()
            })
        } else {
            (Vec::new(), blocks)
        };
        let coded_rows: usize = coded.iter().map(|(_, r)| r.len()).sum();
        let (coded, plain) = if coded_rows < want {
            // Re-ranking every coded row is exact search.
            (Vec::new(), [plain, coded].concat())
        } else {
            (coded, plain)
        };
        let non_finite = check::NonFiniteRows::new();
        let mut top = self.score_blocks(space, query, &plain, opts, &non_finite);
        if !coded.is_empty() {
            let (bits, int8): (Vec<_>, Vec<_>) = coded
                .into_iter()
                .partition(|(s, _)| self.segments[*s].codes(space).is_some());
            let mut candidates =
                self.closest_codes(space, query, &bits, want, opts.limit, opts.sequential);
            let codes8 = |s: usize| self.segments.get(s).and_then(|seg| seg.codes8(space));
            let want8 = match opts.candidates {
                0 => sparse::fast_candidates(opts.limit),
                n => n.max(opts.limit),
            };
            candidates.extend(sparse::closest(
                query,
                &int8,
                codes8,
                want8,
                opts.sequential,
            ));
            top = top.merge(self.rerank(space, query, &candidates, opts, &non_finite));
        }
        non_finite.check(self, space)?;
        Ok(top)
    }

    pub(super) fn hit(&self, s: Scored) -> Result<Hit> {
        let seg = &self.segments[s.segment as usize].reader;
        // Reads this row's chunk and symbol records and its file's record and path, nothing
        // else.
        let rec = seg.chunk(s.row as usize)?;
        let path = seg.file_path(rec.file as usize)?;
        let (symbol, kind) = seg.chunk_symbol(s.row as usize)?;
        let chunk = ChunkMeta::new(
            path,
            rec.line_start,
            rec.line_end,
            rec.byte_start..rec.byte_end,
            rec.hash,
        )
        .and_then(|c| c.with_symbol(symbol.map(str::to_owned), kind.map(str::to_owned)))
        .map_err(|source| IndexError::BadMeta {
            path: seg.dir().to_path_buf(),
            source,
        })?;
        Ok(Hit {
            chunk,
            score: s.score.clamp(0.0, 1.0),
        })
    }
}
