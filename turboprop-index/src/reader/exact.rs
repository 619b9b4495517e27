//! Exact scoring: the rows a search covers, cut into parallel blocks (only the rows of files
//! that pass the filter), and f32 dot products over every row of those blocks. Also the
//! streaming read over the same blocks that `tp benchmark` measures bandwidth with.

use std::ops::Range;

use rayon::prelude::*;

use super::{check, Index, SearchOptions};
use crate::error::Result;
use crate::filter::FileFilter;
use crate::kernel::{dot_rows, Isa};
use crate::topk::{Scored, TopK};

/// Rows scored per parallel task.
pub(super) const BLOCK_ROWS: usize = 4096;

impl Index {
    /// Exact f32 scores of every row of `blocks`, the best `opts.limit` kept.
    pub(super) fn score_blocks(
        &self,
        space: usize,
        query: &[f32],
        blocks: &[(usize, Range<usize>)],
        opts: &SearchOptions<'_>,
        non_finite: &check::NonFiniteRows,
    ) -> TopK {
        let floor = opts.min_score.max(0.0);
        let isa = Isa::detect();
        let score_block = |&(seg, ref rows): &(usize, Range<usize>)| {
            let mut top = TopK::new(opts.limit);
            let d = query.len();
            let vectors = self.segments[seg].vectors(space).unwrap_or(&[]);
            let data = vectors.get(rows.start * d..rows.end * d).unwrap_or(&[]);
            let mut scores = [0.0f32; BLOCK_ROWS];
            let scores = &mut scores[..data.len() / d.max(1)];
            dot_rows(isa, query, data, scores);
            for (row, &score) in rows.clone().zip(scores.iter()) {
                if !score.is_finite() {
                    non_finite.note(seg as u32, row as u32);
                }
                if score > 0.0 && score >= floor && score >= top.threshold() {
                    top.push(Scored {
                        score,
                        segment: seg as u32,
                        row: row as u32,
                    });
                }
            }
            top
        };
        if opts.sequential || blocks.len() <= 1 {
            blocks
                .iter()
                .map(score_block)
                .fold(TopK::new(opts.limit), TopK::merge)
        } else {
            blocks
                .par_iter()
                .map(score_block)
                .reduce(|| TopK::new(opts.limit), TopK::merge)
        }
    }

    /// Row ranges to score, cut into blocks: whole segments, or only the rows of files that
    /// pass the filter. Without a filter or deletes, no file record is read; otherwise only
    /// the row ranges (and, with a filter, the paths) of the live files, each checked.
    pub(super) fn blocks(
        &self,
        filter: Option<&FileFilter>,
        space: usize,
    ) -> Result<Vec<(usize, Range<usize>)>> {
        let filter = filter.filter(|f| !f.is_any());
        let mut ranges: Vec<(usize, Range<usize>)> = Vec::new();
        for (s, seg) in self.segments.iter().enumerate() {
            if seg.vectors(space).is_none() {
                continue;
            }
            if seg.deletes.is_none() && filter.is_none() {
                ranges.push((s, 0..seg.reader.rows()));
                continue;
            }
            for i in seg.live_indexes() {
                let rows = seg.reader.file_rows(i)?;
                if rows.is_empty() {
                    continue;
                }
                if let Some(f) = filter {
                    if !f.matches(seg.reader.file_path(i)?) {
                        continue;
                    }
                }
                // In bounds: file_rows checks the range against the segment's rows.
                let (start, end) = (rows.start as usize, rows.end as usize);
                // Merge with the previous range when adjacent.
                match ranges.last_mut() {
                    Some((ls, r)) if *ls == s && r.end == start => r.end = end,
                    _ => ranges.push((s, start..end)),
                }
            }
        }
        let mut blocks = Vec::new();
        for (s, r) in ranges {
            let mut start = r.start;
            while start < r.end {
                let end = (start + BLOCK_ROWS).min(r.end);
                blocks.push((s, start..end));
                start = end;
            }
        }
        Ok(blocks)
    }

    /// Reads every vector row that exact search would score, in the same parallel blocks,
    /// summing the values so the reads cannot be skipped; returns the bytes read. This is
    /// the streaming-read baseline `tp benchmark` measures memory bandwidth with (and a way
    /// to warm the page cache).
    pub fn stream_vectors(&self) -> Result<(u64, f32)> {
        let isa = Isa::detect();
        let sum = self.blocks(None, 0).map(|blocks| {
            blocks
                .par_iter()
                .map(|(seg, rows)| {
                    let segment = &self.segments[*seg].reader;
                    let d = segment.dims();
                    let data = &segment.vectors()[rows.start * d..rows.end * d];
                    ((data.len() * 4) as u64, crate::kernel::sum(isa, data))
                })
                .reduce(|| (0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
        });
        self.checked(sum)
    }
}
