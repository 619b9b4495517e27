//! The fast path: the codes of a segment's vectors (`FastCodes`), the scan of 1-bit codes
//! that picks the rows worth scoring (`closest_codes`), and the exact re-ranking of those
//! rows (`rerank`), with the constants that size them.

use std::ops::Range;

use rayon::prelude::*;
use turboprop_storage::{IndexDir, ReadMode, StorageError};

use super::exact::BLOCK_ROWS;
use super::{check, Index, SearchOptions};
use crate::error::Result;
use crate::kernel::{dot_rows, hamming_rows_hist, Isa, PlaneCounts};
use crate::quant::{self, Codes};
use crate::sparse::Codes8;
use crate::topk::{Scored, TopK};

#[cfg(test)]
mod tests;

/// The number of rows the fast path re-ranks exactly by default on 1-bit codes, for `limit`
/// hits out of `rows` (1/2000 of the rows, at least 50 per hit): each costs one random read
/// of an f32 row. On `tp benchmark`'s vectors this keeps recall@10 at or above 0.99 from
/// 100k to 1M rows. (Int8 codes: 20 × `limit`, at least 200.)
pub fn fast_candidates(limit: usize, rows: usize) -> usize {
    (limit.saturating_mul(50)).max(rows / 2000)
}

/// On the fast path over 1-bit codes, how many times the rows to re-rank the Hamming
/// distance keeps for the asymmetric estimate to choose from. Six since the distance over
/// bit planes counts the query's largest dimensions twice ([`quant::doubled_planes`]): on
/// 1M `tp benchmark` vectors that keeps recall@10 at 0.995, as ten did before. (Segments
/// without planes use the distance over every dimension, which keeps 0.993 offline with a
/// pool of six times the share, 0.996 with ten.)
pub(crate) const POOL_FACTOR: usize = 6;

/// On the fast path over 1-bit codes, the fewest rows a segment re-ranks per hit asked for
/// (or all its rows), however small its part of the index: a small segment of recent
/// changes may hold all the best hits.
pub(crate) const MIN_SHARE_PER_HIT: usize = 10;

/// A run of rows of one segment: (segment, rows).
type Block = (usize, Range<usize>);

/// One block of the fast path's scan over 1-bit codes.
enum ScannedBlock {
    /// Nothing to scan (the segment has no codes).
    Empty,
    /// Distances over every dimension, from the row-major codes.
    Rows {
        /// The Hamming distance of each row's code to the query's.
        dist: Vec<u16>,
        /// `within[d]`: how many rows are at distance `d` or less.
        within: Vec<u64>,
        /// Rows up to this distance have their estimates in `estimated` (computed while
        /// the block's codes were in cache).
        local_cut: u16,
        /// (distance, asymmetric estimate, row) of the rows up to `local_cut`.
        estimated: Vec<(u16, f32, u32)>,
    },
    /// Distances over the query's chosen dimensions, from the bit planes, kept bit-sliced.
    Planes {
        counts: PlaneCounts,
        /// `within[d]`: how many rows are at distance `d` or less, for `d` up to the
        /// block's local cut.
        within: Vec<u64>,
        /// (distance, row) of the rows up to the local cut.
        near: Vec<(u16, u32)>,
    },
}

impl ScannedBlock {
    /// How many of the block's rows are at distance `d` or less.
    fn within(&self, d: u16) -> u64 {
        let d = usize::from(d);
        match self {
            ScannedBlock::Empty => 0,
            ScannedBlock::Rows { within, .. } => {
                within.get(d).or(within.last()).copied().unwrap_or(0)
            }
            ScannedBlock::Planes { counts, within, .. } => match within.get(d) {
                Some(&n) => n,
                None => counts.count_within(d as u32) as u64,
            },
        }
    }
}

/// Rows per parallel task of the fast path's scan over 1-bit codes: a block's run of each
/// bit plane is then 4 KiB, long enough for the prefetchers to stream (runs of 512 bytes,
/// at 4,096 rows, made the scan twice as slow).
const FAST_BLOCK_ROWS: usize = 8 * BLOCK_ROWS;

/// The rows (`first` + position) of the distances in `low..=high`, in order. Compares 64
/// distances at a time into a bit mask, which vectorizes; the rows kept are few.
fn rows_within(dist: &[u16], low: u16, high: u16, first: usize) -> Vec<u32> {
    let mut out = Vec::new();
    for (k, chunk) in dist.chunks(64).enumerate() {
        let mut mask = chunk.iter().enumerate().fold(0u64, |m, (i, &x)| {
            m | (u64::from(x >= low && x <= high) << i)
        });
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            out.push((first + k * 64 + i) as u32);
            mask &= mask - 1;
        }
    }
    out
}

/// Candidates per parallel task of the re-ranking.
const RERANK_CHUNK: usize = 64;

/// Runs of rows of one segment scanned together by the fast path: (segment, the rows from
/// the first run's start to the last run's end, the runs).
type Group = (usize, Range<usize>, Vec<Range<usize>>);

/// `blocks` in groups of consecutive runs of one segment spanning at most `most` rows, so
/// that a search whose filter leaves many short runs still reads long runs of bit planes
/// (the rows between runs are read and left out).
fn group_blocks(blocks: &[Block], most: usize) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (seg, rows) in blocks {
        match out.last_mut() {
            Some((s, span, parts))
                if s == seg && span.end <= rows.start && rows.end - span.start <= most =>
            {
                span.end = rows.end;
                match parts.last_mut() {
                    Some(last) if last.end == rows.start => last.end = rows.end,
                    _ => parts.push(rows.clone()),
                }
            }
            _ => out.push((*seg, rows.clone(), vec![rows.clone()])),
        }
    }
    out
}

/// The fast path's codes of a segment's vectors in one space: 1-bit codes (dense vectors),
/// int8 codes (sparse vectors), or none (segments written before codes existed).
#[derive(Debug)]
pub(super) struct FastCodes {
    pub(super) bits: Option<Codes>,
    pub(super) int8: Option<Codes8>,
}

impl FastCodes {
    /// Opens the codes the manifest says segment `segment` has for space `key` (`None`: the
    /// primary vectors) of `rows` rows of `dims` dimensions.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        dir: &IndexDir,
        segment: &str,
        key: Option<&str>,
        (bits, planes, int8): (bool, bool, bool),
        rows: usize,
        dims: usize,
        mode: ReadMode,
    ) -> Result<FastCodes> {
        let store = dir.directory();
        if planes && !bits {
            return Err(StorageError::corrupt(
                store.location(segment),
                "the manifest lists bit planes without 1-bit codes",
            )
            .into());
        }
        Ok(FastCodes {
            bits: match bits {
                true => Some(Codes::open(store, segment, key, rows, dims, planes, mode)?),
                false => None,
            },
            int8: match int8 {
                true => Some(Codes8::open(store, segment, key, rows, dims, mode)?),
                false => None,
            },
        })
    }

    /// Bytes on disk.
    pub(super) fn bytes(&self) -> u64 {
        self.bits.as_ref().map_or(0, Codes::bytes) + self.int8.as_ref().map_or(0, Codes8::bytes)
    }

    /// Checks every payload against its checksum.
    pub(super) fn verify(&self) -> Result<()> {
        if let Some(c) = &self.bits {
            c.verify()?;
        }
        if let Some(c) = &self.int8 {
            c.verify()?;
        }
        Ok(())
    }
}

impl Index {
    /// The rows of `blocks` (all in segments with codes) to re-rank exactly: about `want`
    /// of them, each segment's share in proportion to its rows searched (at least
    /// [`MIN_SHARE_PER_HIT`] × `limit`, or all its rows).
    ///
    /// Two filters over the same codes, both inside one segment's frame (codes of different
    /// segments are relative to different centres, so their estimates are not compared):
    /// the Hamming distance of every row's code to the query's keeps the segment's pool,
    /// [`POOL_FACTOR`] times its share (the smallest distance admitting that many, and every
    /// row tied at it); the asymmetric estimate of the pool's codes
    /// ([`quant::ByteTables`]: the f32 query summed at the code's set bits) keeps the
    /// share.
    ///
    /// When the segment has bit planes (`planes.bin`), the distance is taken over the
    /// query's largest dimensions only ([`quant::plane_count`]), read from their planes:
    /// a quarter of the codes' bytes at 384 dimensions; a mismatch in the larger half of
    /// them counts twice ([`quant::doubled_planes`]). The counts stay bit-sliced
    /// ([`PlaneCounts`]); each block finds its local cut (the distance admitting twice its
    /// proportional part of the pool) by comparing them 64 rows at a time and lists only
    /// the rows within it. The pool's codes are then estimated once the segment's cut is
    /// known, asked for a few rows ahead since they are not in cache.
    ///
    /// Segments without planes (written before they existed) read `codes.bin` row by row,
    /// and the estimates are computed while a block's codes are still in cache: each block
    /// estimates its own best rows by distance, twice its proportional part of the pool.
    ///
    /// Either way the local cut covers the segment's cut in all but blocks unusually close
    /// to the query; those few list (and estimate) their remaining rows up to the cut
    /// afterwards. The result is that of estimating exactly the pool.
    pub(super) fn closest_codes(
        &self,
        space: usize,
        query: &[f32],
        blocks: &[(usize, Range<usize>)],
        want: usize,
        limit: usize,
        sequential: bool,
    ) -> Vec<(u32, u32)> {
        let isa = Isa::detect();
        let bits = query.len();
        let tables = quant::ByteTables::new(query);
        // The query's code in each segment's frame.
        let query_codes: Vec<Vec<u64>> = self
            .segments
            .iter()
            .map(|seg| match seg.codes(space) {
                Some(c) => {
                    let mut code = vec![0u64; c.words()];
                    quant::encode(query, c.center(), &mut code);
                    code
                }
                None => Vec::new(),
            })
            .collect();
        // The dimensions whose bit planes the first filter reads (the query's largest in
        // magnitude, the `doubled` largest first, counted twice), and the query's bit in
        // each, per segment.
        let mut chosen: Vec<usize> = (0..bits).collect();
        let planes = quant::plane_count(bits);
        let doubled = quant::doubled_planes(bits);
        let larger = |a: &usize, b: &usize| query[*b].abs().total_cmp(&query[*a].abs());
        if planes < bits {
            chosen.select_nth_unstable_by(planes, larger);
            chosen.truncate(planes);
            // `doubled` is below `planes`, and 0 unless the planes are a subset.
            chosen.select_nth_unstable_by(doubled, larger);
        }
        chosen[..doubled].sort_unstable();
        chosen[doubled..].sort_unstable();
        // The farthest distance a row can have over the planes, and over whole codes.
        let plane_farthest = planes + doubled;
        let farthest = bits.max(plane_farthest);
        let flips: Vec<Vec<u64>> = query_codes
            .iter()
            .map(|code| {
                let bit = |j: usize| code.get(j / 64).map_or(0, |w| (w >> (j % 64)) & 1);
                chosen.iter().map(|&j| 0u64.wrapping_sub(bit(j))).collect()
            })
            .collect();
        // Each segment's rows searched, then its share and pool.
        let mut seg_rows = vec![0usize; self.segments.len()];
        for (seg, rows) in blocks {
            seg_rows[*seg] += rows.len();
        }
        let all_rows: usize = seg_rows.iter().sum();
        let shares: Vec<(usize, usize)> = seg_rows
            .iter()
            .map(|&n| {
                let share = (want.saturating_mul(n).div_ceil(all_rows.max(1)))
                    .max(limit.saturating_mul(MIN_SHARE_PER_HIT))
                    .min(n);
                (share, share.saturating_mul(POOL_FACTOR))
            })
            .collect();
        // One block: the distances of its rows and how many are within each distance,
        // then, up to the block's local cut (twice its proportional part of the pool),
        // which rows: with their estimates when the codes are read row by row (they are
        // in cache), without when the distances came from the bit planes.
        let groups = group_blocks(blocks, FAST_BLOCK_ROWS);
        let scan = |&(seg, ref rows, ref parts): &Group| {
            let Some(c) = self.segments[seg].codes(space) else {
                return ScannedBlock::Empty;
            };
            let (_, pool) = shares[seg];
            let searched: usize = parts.iter().map(|p| p.len()).sum();
            let local =
                (pool.saturating_mul(2).saturating_mul(searched)).div_ceil(seg_rows[seg].max(1));
            let whole = parts.len() == 1;
            if c.has_planes() {
                let words = rows.start / 64..rows.end.div_ceil(64);
                let planes: Vec<&[u64]> = chosen
                    .iter()
                    .map(|&j| c.plane(j).and_then(|p| p.get(words.clone())).unwrap_or(&[]))
                    .collect();
                let mut counts = PlaneCounts::weighted(
                    isa,
                    &planes,
                    &flips[seg],
                    doubled,
                    rows.start % 64,
                    rows.len(),
                );
                if !whole {
                    let relative: Vec<Range<usize>> = parts
                        .iter()
                        .map(|p| p.start - rows.start..p.end - rows.start)
                        .collect();
                    counts.keep_only(&relative);
                }
                // The local cut: the smallest distance within which `local` rows lie.
                let (mut lo, mut hi) = (0u32, plane_farthest as u32);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    match counts.count_within(mid) >= local {
                        true => hi = mid,
                        false => lo = mid + 1,
                    }
                }
                let near: Vec<(u16, u32)> = counts
                    .rows_within(lo)
                    .into_iter()
                    .map(|i| {
                        (
                            counts.count(i as usize) as u16,
                            (rows.start + i as usize) as u32,
                        )
                    })
                    .collect();
                let mut within = vec![0u64; lo as usize + 1];
                for &(d, _) in &near {
                    within[usize::from(d)] += 1;
                }
                for d in 1..within.len() {
                    within[d] += within[d - 1];
                }
                return ScannedBlock::Planes {
                    counts,
                    within,
                    near,
                };
            }
            let w = c.words();
            let codes = &c.codes()[rows.start * w..rows.end * w];
            // Rows between the runs keep distance u16::MAX and are not counted.
            let mut dist = vec![u16::MAX; rows.len()];
            let mut hist = vec![0u32; bits + 1];
            for part in parts {
                let at = part.start - rows.start..part.end - rows.start;
                hamming_rows_hist(
                    isa,
                    &query_codes[seg],
                    &codes[at.start * w..at.end * w],
                    &mut dist[at],
                    &mut hist,
                );
            }
            let within: Vec<u64> = hist
                .iter()
                .scan(0u64, |sum, &h| {
                    *sum += u64::from(h);
                    Some(*sum)
                })
                .collect();
            let local_cut = within
                .iter()
                .position(|&n| n >= local as u64)
                .unwrap_or(bits);
            let local_cut = u16::try_from(local_cut).unwrap_or(u16::MAX);
            let mut estimated = Vec::with_capacity(local.min(rows.len()));
            for (i, &x) in dist.iter().enumerate() {
                if x <= local_cut {
                    let score = tables.score(&codes[i * w..(i + 1) * w]);
                    estimated.push((x, score, (rows.start + i) as u32));
                }
            }
            ScannedBlock::Rows {
                dist,
                within,
                local_cut,
                estimated,
            }
        };
        let scanned: Vec<ScannedBlock> = if sequential {
            groups.iter().map(scan).collect()
        } else {
            groups.par_iter().map(scan).collect()
        };
        // Each segment's cut: the smallest distance within which its pool lies.
        let mut seg_blocks: Vec<Vec<&ScannedBlock>> = vec![Vec::new(); self.segments.len()];
        for ((seg, _, _), block) in groups.iter().zip(&scanned) {
            seg_blocks[*seg].push(block);
        }
        let cuts: Vec<u16> = seg_blocks
            .iter()
            .zip(&shares)
            .map(|(scanned, &(_, pool))| {
                let most = u16::try_from(farthest).unwrap_or(u16::MAX);
                (0..=most)
                    .find(|&d| scanned.iter().map(|b| b.within(d)).sum::<u64>() >= pool as u64)
                    .unwrap_or(most)
            })
            .collect();
        // The pool's estimates, then the best of each segment's share.
        let pool = |((seg, rows, _), block): (&Group, &ScannedBlock)| {
            let cut = cuts[*seg];
            let scored = |score: f32, row: u32| Scored {
                score,
                segment: *seg as u32,
                row,
            };
            let Some(c) = self.segments[*seg].codes(space) else {
                return Vec::new();
            };
            // The rows still to estimate, read from the codes out of cache.
            let (mut out, rest): (Vec<Scored>, Vec<u32>) = match block {
                ScannedBlock::Empty => (Vec::new(), Vec::new()),
                ScannedBlock::Rows {
                    dist,
                    local_cut,
                    estimated,
                    ..
                } => {
                    let done = estimated
                        .iter()
                        .filter(|(x, _, _)| *x <= cut)
                        .map(|&(_, score, row)| scored(score, row))
                        .collect();
                    // The block holds more of the pool than it estimated: the rest now.
                    let rest = match *local_cut < cut {
                        true => rows_within(dist, local_cut + 1, cut, rows.start),
                        false => Vec::new(),
                    };
                    (done, rest)
                }
                ScannedBlock::Planes {
                    counts,
                    within,
                    near,
                } => {
                    let rest = match usize::from(cut) < within.len() {
                        true => near
                            .iter()
                            .filter(|(x, _)| *x <= cut)
                            .map(|&(_, row)| row)
                            .collect(),
                        false => counts
                            .rows_within(u32::from(cut))
                            .into_iter()
                            .map(|i| (rows.start + i as usize) as u32)
                            .collect(),
                    };
                    (Vec::new(), rest)
                }
            };
            let scores = tables.score_rows(c.codes(), c.words(), &rest);
            out.extend(
                rest.iter()
                    .zip(scores)
                    .map(|(&row, score)| scored(score, row)),
            );
            out
        };
        let found: Vec<Vec<Scored>> = if sequential {
            groups.iter().zip(&scanned).map(pool).collect()
        } else {
            groups.par_iter().zip(&scanned).map(pool).collect()
        };
        let mut per_segment: Vec<Vec<Scored>> = vec![Vec::new(); self.segments.len()];
        for scored in found.into_iter().flatten() {
            per_segment[scored.segment as usize].push(scored);
        }
        let mut out = Vec::new();
        for (mut scored, &(share, _)) in per_segment.into_iter().zip(&shares) {
            if scored.len() > share && share > 0 {
                scored.select_nth_unstable_by(share - 1, Scored::better_first);
            }
            scored.truncate(share);
            out.extend(scored.iter().map(|s| (s.segment, s.row)));
        }
        out
    }

    /// Exact f32 scores of the candidate rows, the best `opts.limit` kept.
    pub(super) fn rerank(
        &self,
        space: usize,
        query: &[f32],
        candidates: &[(u32, u32)],
        opts: &SearchOptions<'_>,
        non_finite: &check::NonFiniteRows,
    ) -> TopK {
        let floor = opts.min_score.max(0.0);
        let isa = Isa::detect();
        let d = query.len();
        let vector = |&(seg, row): &(u32, u32)| {
            let row_at = row as usize * d;
            self.segments
                .get(seg as usize)?
                .vectors(space)?
                .get(row_at..row_at + d)
        };
        let score = |chunk: &[(u32, u32)]| {
            let mut top = TopK::new(opts.limit);
            if let Some(v) = chunk.first().and_then(vector) {
                crate::kernel::prefetch(v);
            }
            for (i, &(seg, row)) in chunk.iter().enumerate() {
                // The next row is asked for while this one is scored: candidates are
                // scattered, and a row is many cache lines.
                if let Some(next) = chunk.get(i + 1).and_then(vector) {
                    crate::kernel::prefetch(next);
                }
                let Some(v) = vector(&(seg, row)) else {
                    continue;
                };
                let mut s = [0.0f32];
                dot_rows(isa, query, v, &mut s);
                let score = s[0];
                if !score.is_finite() {
                    non_finite.note(seg, row);
                }
                if score > 0.0 && score >= floor && score >= top.threshold() {
                    top.push(Scored {
                        score,
                        segment: seg,
                        row,
                    });
                }
            }
            top
        };
        if opts.sequential {
            score(candidates)
        } else {
            // Small chunks: a re-rank is a few hundred scattered rows, which both threads
            // should share.
            candidates
                .par_chunks(RERANK_CHUNK)
                .map(score)
                .reduce(|| TopK::new(opts.limit), TopK::merge)
        }
    }
}
