//! [`TermInterner`]: dense ids for distinct terms, the texts back to back in one arena.
//!
//! Gathering a chunk's terms (`turboprop_embed::document_terms`) and a segment's postings
//! (the lexical writer) both map each occurrence of a term to its entry, hundreds of millions
//! of times in a large `tp index`. A table of ids keyed by positions in one text arena
//! allocates nothing per term, and foldhash (seeded per process, so no file can be crafted to
//! collide) hashes a short term in a few nanoseconds. The order of ids is the order of first
//! appearance; [`TermInterner::sorted_ids`] gives the order by bytes a lexicon is stored in.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// Distinct terms with dense ids (0, 1, … in order of first appearance).
///
/// ```
/// use turboprop_storage::TermInterner;
///
/// let mut terms = TermInterner::new();
/// assert_eq!(terms.intern("split"), Some((0, true)));
/// assert_eq!(terms.intern("pot"), Some((1, true)));
/// assert_eq!(terms.intern("split"), Some((0, false)));
/// assert_eq!(terms.get(1), "pot");
/// assert_eq!(terms.sorted_ids(), [1, 0]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct TermInterner {
    /// The terms back to back, in id order.
    text: String,
    /// Each id's (start, end) in `text`.
    spans: Vec<(u32, u32)>,
    /// Ids, by the hash of their term.
    table: HashTable<u32>,
    hasher: RandomState,
}

impl TermInterner {
    /// No terms yet.
    pub fn new() -> TermInterner {
        TermInterner::default()
    }

    /// No terms yet, with room for `terms` distinct terms of `bytes` bytes in all.
    pub fn with_capacity(terms: usize, bytes: usize) -> TermInterner {
        TermInterner {
            text: String::with_capacity(bytes),
            spans: Vec::with_capacity(terms),
            table: HashTable::with_capacity(terms),
            hasher: RandomState::default(),
        }
    }

    /// Forgets every term, keeping the memory for the next ones.
    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.table.clear();
    }

    /// The id of `term`, and whether it was new; `None` for a new term that does not fit (4
    /// GiB of text in all, or 2^32 terms).
    pub fn intern(&mut self, term: &str) -> Option<(u32, bool)> {
        let hash = self.hasher.hash_one(term);
        let TermInterner {
            text,
            spans,
            table,
            hasher,
        } = self;
        let found = table.find(hash, |&id| span_text(text, spans, id) == term);
        if let Some(&id) = found {
            return Some((id, false));
        }
        let (Ok(start), Ok(end), Ok(id)) = (
            u32::try_from(text.len()),
            u32::try_from(text.len() + term.len()),
            u32::try_from(spans.len()),
        ) else {
            return None;
        };
        text.push_str(term);
        spans.push((start, end));
        table.insert_unique(hash, id, |&id| hasher.hash_one(span_text(text, spans, id)));
        Some((id, true))
    }

    /// The term of `id` (empty for an id never given).
    pub fn get(&self, id: u32) -> &str {
        span_text(&self.text, &self.spans, id)
    }

    /// How many distinct terms there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes of all the distinct terms together.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The ids, ordered by their terms' bytes.
    pub fn sorted_ids(&self) -> Vec<u32> {
        // The first eight bytes as a big-endian integer decide most comparisons without
        // touching the arena (a shorter term is padded with zeros, which sorts it first
        // among equal prefixes, as its bytes do; ties fall back to the bytes).
        let mut keyed: Vec<(u64, u32)> = (0..self.spans.len())
            .map(|i| {
                let id = u32::try_from(i).unwrap_or(u32::MAX);
                let mut prefix = [0u8; 8];
                let bytes = self.get(id).as_bytes();
                let n = bytes.len().min(8);
                prefix[..n].copy_from_slice(&bytes[..n]);
                (u64::from_be_bytes(prefix), id)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| match a.0.cmp(&b.0) {
            Ordering::Equal => self.get(a.1).as_bytes().cmp(self.get(b.1).as_bytes()),
            other => other,
        });
        keyed.into_iter().map(|(_, id)| id).collect()
    }
}

fn span_text<'t>(text: &'t str, spans: &[(u32, u32)], id: u32) -> &'t str {
    spans
        .get(id as usize)
        .and_then(|&(s, e)| text.get(s as usize..e as usize))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ids_are_dense_and_sorted_ids_follow_the_bytes(
            words in proptest::collection::vec("[a-c\u{0}é]{0,10}", 0..60)
        ) {
            let mut t = TermInterner::new();
            let mut first: Vec<String> = Vec::new();
            for w in &words {
                let (id, new) = t.intern(w).expect("room");
                prop_assert_eq!(new, !first.contains(w));
                if new {
                    prop_assert_eq!(id as usize, first.len());
                    first.push(w.clone());
                }
                prop_assert_eq!(t.get(id), w.as_str());
            }
            prop_assert_eq!(t.len(), first.len());
            let sorted: Vec<&str> = t.sorted_ids().into_iter().map(|id| t.get(id)).collect();
            let mut want: Vec<&str> = first.iter().map(String::as_str).collect();
            want.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            prop_assert_eq!(sorted, want);
        }
    }
}
