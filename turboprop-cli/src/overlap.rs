//! No two hits of one search overlap in lines (DESIGN.md, "Output"). Line windows overlap
//! their neighbours by design (40 lines, 10 shared), so an index ranks two windows of one
//! function side by side. Overlapping hits of one file are **merged** into one hit spanning
//! their lines, with the best of their scores, in the place of the best of them. So are the
//! pieces of one definition that syntax-aware chunking split to fit the model's token budget
//! (the same symbol and kind, next to each other): a hit shows as much of the function as
//! matched, in one piece.
//!
//! Merged rather than the lower one dropped, by measurement: the function a doc-comment query
//! names often starts in the second of two windows while its comment is in the first, and
//! dropping the second cost 11 points of recall@10 on the evaluation crates (hybrid 96.8% ->
//! 85.4% on the tuning crates, 92.6% -> 81.4% held out). A merged hit keeps every part's
//! lines, and its snippet is checked against every part's hash.

use std::ops::{Range, RangeInclusive};

use turboprop_index::Hit;
use turboprop_types::{ChunkMeta, ContentHash};

/// A hit as `tp search` shows it: one chunk, or overlapping chunks of one file merged (with
/// the symbol and kind of the best of them).
#[derive(Debug, Clone)]
pub struct Found {
    /// The lines and bytes shown: the union of [`Found::parts`]. (Its hash is the best
    /// part's; the parts' hashes are what a snippet is checked against.)
    pub chunk: ChunkMeta,
    /// The best score of the parts.
    pub score: f32,
    /// The chunks shown, best first: one, or several that overlap.
    pub parts: Vec<ChunkMeta>,
}

impl Found {
    fn new(hit: Hit) -> Found {
        Found {
            chunk: hit.chunk.clone(),
            score: hit.score,
            parts: vec![hit.chunk],
        }
    }

    /// Whether `chunk` belongs in this hit: it overlaps its lines, or it is another piece of
    /// the definition this hit shows (same symbol and kind, at most [`PIECE_GAP`] lines
    /// away).
    fn joins(&self, chunk: &ChunkMeta) -> bool {
        if self.chunk.file() != chunk.file() {
            return false;
        }
        let near = |gap: u32| {
            chunk.line_start() <= self.chunk.line_end().saturating_add(gap)
                && self.chunk.line_start() <= chunk.line_end().saturating_add(gap)
        };
        near(0)
            || (chunk.symbol().is_some()
                && near(PIECE_GAP + 1)
                && self
                    .parts
                    .iter()
                    .any(|p| p.symbol() == chunk.symbol() && p.kind() == chunk.kind()))
    }

    /// Takes `other`'s parts in (its score is not better: it ranks lower).
    fn absorb(&mut self, other: Found) {
        self.parts.extend(other.parts);
        let (lines, bytes) = span(self.parts.iter());
        let best = &self.parts[0];
        if let Ok(span) = ChunkMeta::new(
            best.file(),
            *lines.start(),
            *lines.end(),
            bytes,
            best.hash(),
        )
        .and_then(|span| {
            span.with_symbol(
                best.symbol().map(str::to_owned),
                best.kind().map(str::to_owned),
            )
        }) {
            self.chunk = span;
        }
    }

    /// Whether `bytes`, read now at this hit's byte range, still hold every part as it was
    /// indexed (each part's bytes against its hash).
    pub fn parts_intact(&self, bytes: &[u8]) -> bool {
        let start = self.chunk.bytes().start;
        let at = |b: u64| b.checked_sub(start).and_then(|d| usize::try_from(d).ok());
        self.parts.iter().all(|part| {
            let r = part.bytes();
            match (at(r.start), at(r.end)) {
                (Some(s), Some(e)) if s <= e && e <= bytes.len() => {
                    ContentHash::of(&bytes[s..e]) == part.hash()
                }
                _ => false,
            }
        })
    }
}

/// The lines and bytes `parts` span together.
fn span<'a>(
    parts: impl Iterator<Item = &'a ChunkMeta> + Clone,
) -> (RangeInclusive<u32>, Range<u64>) {
    let lines = parts.clone().map(ChunkMeta::line_start).min().unwrap_or(1)
        ..=parts.clone().map(ChunkMeta::line_end).max().unwrap_or(1);
    let bytes = parts.clone().map(|p| p.bytes().start).min().unwrap_or(0)
        ..parts.map(|p| p.bytes().end).max().unwrap_or(0);
    (lines, bytes)
}

/// Blank lines that may lie between two pieces of one split definition (the chunker leaves
/// blank lines between chunks out of both).
const PIECE_GAP: u32 = 3;

/// A merged hit spans at most this many times its longest part's lines (120 lines of
/// 40-line windows); a hit that would stretch one further is left out instead, so a query
/// matching every window of a long file does not answer with the whole file.
const MAX_SPAN_PARTS: u32 = 3;

/// The hits of `hits` (best first) with overlapping hits of one file, and neighbouring pieces
/// of one definition, merged, at most `limit` of them. A hit that joins several earlier ones
/// joins them into one, in the place of
/// the best (or is left out when that would span more than [`MAX_SPAN_PARTS`] times the
/// longest part); once `limit` hits are kept, the first hit that overlaps none of them ends
/// the list.
pub fn merge_overlaps(hits: Vec<Hit>, limit: usize) -> Vec<Found> {
    let mut kept: Vec<Found> = Vec::with_capacity(limit.min(hits.len()));
    for hit in hits {
        let touched: Vec<usize> = (0..kept.len())
            .filter(|&i| kept[i].joins(&hit.chunk))
            .collect();
        if !touched.is_empty() && too_long(&hit.chunk, touched.iter().map(|&i| &kept[i])) {
            continue;
        }
        match touched.split_first() {
            None if kept.len() == limit => break,
            None => kept.push(Found::new(hit)),
            Some((&first, rest)) => {
                // The later groups it touches join the first, best first.
                let mut joined = Found::new(hit);
                for &i in rest.iter().rev() {
                    let mut group = kept.remove(i);
                    group.absorb(joined);
                    joined = group;
                }
                kept[first].absorb(joined);
            }
        }
    }
    kept
}

/// Whether `chunk` merged with `groups` would span more than [`MAX_SPAN_PARTS`] times the
/// longest part.
fn too_long<'a>(chunk: &ChunkMeta, groups: impl Iterator<Item = &'a Found> + Clone) -> bool {
    let parts = groups.flat_map(|g| g.parts.iter()).chain([chunk]);
    let longest = parts.clone().map(ChunkMeta::line_count).max().unwrap_or(1);
    let (lines, _) = span(parts);
    u64::from(lines.end() - lines.start() + 1) > u64::from(longest) * u64::from(MAX_SPAN_PARTS)
}

/// How many ranked hits to ask for to fill `limit` after merging: each window overlaps at
/// most its two neighbours, so twice the limit (and a little) almost always suffices;
/// [`crate::Searcher::search`] asks again for more when it does not.
pub fn first_fetch(limit: usize) -> usize {
    limit.saturating_mul(2).saturating_add(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(file: &str, start: u32, end: u32, score: f32) -> Hit {
        let bytes = u64::from(start) * 10..u64::from(end) * 10;
        let hash = ContentHash::of(&start.to_le_bytes());
        let chunk = ChunkMeta::new(file, start, end, bytes, hash).expect("meta");
        Hit { chunk, score }
    }

    fn spans(found: &[Found]) -> Vec<(String, u32, u32, usize)> {
        found
            .iter()
            .map(|f| {
                let c = &f.chunk;
                (
                    c.file().to_owned(),
                    c.line_start(),
                    c.line_end(),
                    f.parts.len(),
                )
            })
            .collect()
    }

    #[test]
    fn overlapping_windows_of_a_file_merge_into_one_hit_in_the_place_of_the_best() {
        let hits = vec![
            hit("pot.py", 1, 40, 0.9),
            hit("deck.py", 1, 40, 0.8),
            hit("pot.py", 31, 70, 0.7),
            hit("pot.py", 91, 130, 0.6),
        ];
        let found = merge_overlaps(hits, 3);
        assert_eq!(
            spans(&found),
            [
                ("pot.py".to_owned(), 1, 70, 2),
                ("deck.py".to_owned(), 1, 40, 1),
                ("pot.py".to_owned(), 91, 130, 1),
            ]
        );
        assert_eq!(found[0].score, 0.9);
        assert_eq!(found[0].chunk.bytes(), 10..700);
        assert_eq!(found[0].parts[1].line_start(), 31);
    }

    #[test]
    fn a_hit_bridging_two_kept_hits_joins_them() {
        let hits = vec![
            hit("a.rs", 1, 40, 0.9),
            hit("a.rs", 61, 100, 0.8),
            hit("b.rs", 1, 40, 0.7),
            hit("a.rs", 31, 70, 0.6),
            hit("c.rs", 1, 40, 0.5),
        ];
        assert_eq!(
            spans(&merge_overlaps(hits, 3)),
            [
                ("a.rs".to_owned(), 1, 100, 3),
                ("b.rs".to_owned(), 1, 40, 1),
                ("c.rs".to_owned(), 1, 40, 1),
            ]
        );
    }

    #[test]
    fn a_merge_past_three_windows_is_left_out() {
        let hits = vec![
            hit("a.rs", 31, 70, 0.9),
            hit("a.rs", 61, 100, 0.8),
            hit("a.rs", 91, 130, 0.7),
            hit("a.rs", 1, 40, 0.6),
            hit("b.rs", 1, 40, 0.5),
        ];
        // 31-130 is 100 lines; 1-130 would be 130, over 3 x 40.
        assert_eq!(
            spans(&merge_overlaps(hits, 5)),
            [
                ("a.rs".to_owned(), 31, 130, 3),
                ("b.rs".to_owned(), 1, 40, 1)
            ]
        );
    }

    #[test]
    fn touching_ranges_stay_apart_and_the_limit_caps_the_hits() {
        let hits = vec![
            hit("a.rs", 1, 10, 0.9),
            hit("a.rs", 11, 20, 0.8),
            hit("b.rs", 1, 10, 0.7),
        ];
        assert_eq!(merge_overlaps(hits.clone(), 10).len(), 3);
        assert_eq!(merge_overlaps(hits, 2).len(), 2);
        assert!(merge_overlaps(Vec::new(), 4).is_empty());
    }

    fn piece(file: &str, start: u32, end: u32, score: f32, symbol: &str, kind: &str) -> Hit {
        let mut h = hit(file, start, end, score);
        h.chunk = h
            .chunk
            .with_symbol(Some(symbol.to_owned()), Some(kind.to_owned()))
            .expect("symbol");
        h
    }

    #[test]
    fn neighbouring_pieces_of_one_definition_merge_and_other_definitions_do_not() {
        let hits = vec![
            piece("pot.py", 25, 44, 0.9, "split_pot", "function"),
            piece("pot.py", 47, 54, 0.8, "split_pot", "function"),
            // Next to split_pot, but another definition.
            piece("pot.py", 55, 70, 0.7, "award_pots", "function"),
            // The same symbol further away: not a neighbouring piece.
            piece("pot.py", 90, 99, 0.6, "split_pot", "function"),
            // The same lines in another file.
            piece("deck.py", 45, 54, 0.5, "split_pot", "function"),
        ];
        let found = merge_overlaps(hits, 10);
        assert_eq!(
            spans(&found),
            [
                ("pot.py".to_owned(), 25, 54, 2),
                ("pot.py".to_owned(), 55, 70, 1),
                ("pot.py".to_owned(), 90, 99, 1),
                ("deck.py".to_owned(), 45, 54, 1),
            ]
        );
        assert_eq!(found[0].chunk.symbol(), Some("split_pot"));
        assert_eq!(found[0].chunk.kind(), Some("function"));
    }
}
