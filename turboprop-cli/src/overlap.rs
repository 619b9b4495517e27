//! No two hits of one search overlap in lines (DESIGN.md, "Output"). Line windows overlap
//! their neighbours by design (40 lines, 10 shared), so a search can rank two windows of one
//! function side by side. Of two overlapping hits of one file the lower-ranked one is
//! **dropped**, not merged: a hit's score, lines and content belong together (a merged range
//! would show lines its score was not computed on, and its snippet could not be checked
//! against one chunk's hash), and the next hit that overlaps nothing takes the freed place.

use std::collections::HashMap;

use turboprop_index::Hit;

/// The first `limit` hits of `hits` (best first) that overlap no better hit of their file.
pub fn without_overlaps(hits: Vec<Hit>, limit: usize) -> Vec<Hit> {
    let mut kept: Vec<Hit> = Vec::with_capacity(limit.min(hits.len()));
    let mut taken: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
    for hit in hits {
        if kept.len() == limit {
            break;
        }
        let (start, end) = (hit.chunk.line_start(), hit.chunk.line_end());
        let ranges = taken.entry(hit.chunk.file().to_owned()).or_default();
        if ranges.iter().any(|&(s, e)| start <= e && s <= end) {
            continue;
        }
        ranges.push((start, end));
        kept.push(hit);
    }
    kept
}

/// How many ranked hits to ask for to fill `limit` after dropping overlaps: each window
/// overlaps at most its two neighbours, so twice the limit (and a little) almost always
/// suffices; [`crate::Searcher::search`] asks again for more when it does not.
pub fn first_fetch(limit: usize) -> usize {
    limit.saturating_mul(2).saturating_add(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use turboprop_types::{ChunkMeta, ContentHash};

    fn hit(file: &str, start: u32, end: u32, score: f32) -> Hit {
        let chunk = ChunkMeta::new(file, start, end, 0..1, ContentHash::of(b"x")).expect("meta");
        Hit { chunk, score }
    }

    fn spans(hits: &[Hit]) -> Vec<(String, u32, u32)> {
        hits.iter()
            .map(|h| {
                (
                    h.chunk.file().to_owned(),
                    h.chunk.line_start(),
                    h.chunk.line_end(),
                )
            })
            .collect()
    }

    #[test]
    fn the_lower_of_two_overlapping_windows_is_dropped_and_the_next_takes_its_place() {
        let hits = vec![
            hit("pot.py", 1, 40, 0.9),
            hit("pot.py", 31, 70, 0.8),
            hit("deck.py", 1, 40, 0.7),
            hit("pot.py", 61, 100, 0.6),
        ];
        assert_eq!(
            spans(&without_overlaps(hits, 3)),
            [
                ("pot.py".to_owned(), 1, 40),
                ("deck.py".to_owned(), 1, 40),
                ("pot.py".to_owned(), 61, 100),
            ]
        );
    }

    #[test]
    fn touching_ranges_and_other_files_are_kept() {
        let hits = vec![
            hit("a.rs", 1, 10, 0.9),
            hit("a.rs", 11, 20, 0.8),
            hit("b.rs", 1, 10, 0.7),
            hit("a.rs", 10, 11, 0.6),
        ];
        assert_eq!(without_overlaps(hits, 10).len(), 3);
    }

    #[test]
    fn the_limit_caps_what_is_kept() {
        let hits = (0..10)
            .map(|i| hit(&format!("f{i}.rs"), 1, 5, 1.0))
            .collect();
        assert_eq!(without_overlaps(hits, 4).len(), 4);
        assert!(without_overlaps(Vec::new(), 4).is_empty());
    }
}
