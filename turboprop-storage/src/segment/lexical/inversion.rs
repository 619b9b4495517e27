//! [`Inversion`]: a segment's postings gathered by row and handed back by term, in the byte
//! order `lexicon.bin` is written in.
//!
//! A large segment has millions of distinct terms and tens of millions of postings. Looking
//! every posting's term up in one table that size misses the cache several times per
//! posting, and that made a commit of `tp index` three times slower than writing the
//! vectors. So postings are first appended, in row order, to the bucket of their term's first
//! two bytes (a few hundred buckets are in use, each appended to at its end), and inverted
//! bucket by bucket at the end: each bucket's terms are interned in a table small enough to
//! stay in the cache, its postings counted and placed by term, and its terms sorted. Buckets
//! in key order hold terms in byte order, so the whole lexicon comes out sorted without a
//! global sort, and each bucket's memory is freed once it is written.

use super::TermInterner;

/// Keys of the buckets: 257 per first byte (none, then each second byte).
const KEYS: usize = 256 * 257;

/// One posting as appended, its term's bytes in the bucket's text.
#[derive(Debug, Clone, Copy)]
struct Appended {
    row: u32,
    tf: f32,
    /// Bytes of the term (at most `MAX_TERM_BYTES`).
    len: u16,
}

/// The postings of the terms that share their first two bytes.
#[derive(Debug, Default)]
struct Bucket {
    key: u32,
    /// The terms of `postings`, back to back.
    text: String,
    postings: Vec<Appended>,
}

/// Postings gathered in row order, handed back sorted by term (see the module docs).
#[derive(Debug)]
pub(super) struct Inversion {
    /// For each key, 1 + its bucket's index in `buckets` (0: no bucket yet).
    slots: Vec<u32>,
    buckets: Vec<Bucket>,
}

/// The bucket key of a term: its first byte, then none (a one-byte term) or its second.
fn key(term: &[u8]) -> usize {
    match term {
        [] => 0,
        [a] => usize::from(*a) * 257,
        [a, b, ..] => usize::from(*a) * 257 + usize::from(*b) + 1,
    }
}

impl Inversion {
    pub(super) fn new() -> Inversion {
        Inversion {
            slots: vec![0; KEYS],
            buckets: Vec::new(),
        }
    }

    /// Appends the posting (`row`, `tf`) of `term` (1 to `MAX_TERM_BYTES` bytes); rows are
    /// given in increasing order, each term at most once per row.
    pub(super) fn push(&mut self, term: &str, row: u32, tf: f32) {
        let k = key(term.as_bytes());
        let slot = match self.slots.get(k) {
            Some(&s) if s > 0 => s as usize - 1,
            _ => {
                self.buckets.push(Bucket {
                    key: u32::try_from(k).unwrap_or(u32::MAX),
                    ..Bucket::default()
                });
                let s = self.buckets.len();
                if let Some(slot) = self.slots.get_mut(k) {
                    *slot = u32::try_from(s).unwrap_or(u32::MAX);
                }
                s - 1
            }
        };
        if let Some(b) = self.buckets.get_mut(slot) {
            b.text.push_str(term);
            b.postings.push(Appended {
                row,
                tf,
                len: u16::try_from(term.len()).unwrap_or(u16::MAX),
            });
        }
    }

    /// Calls `each` with every distinct term in byte order and its (row, tf) postings in row
    /// order, stopping at its first error; `full()` is the error for a bucket whose distinct
    /// terms do not fit an interner (4 GiB of text, more than a segment's whole text may be).
    pub(super) fn drain<E>(
        self,
        full: impl Fn() -> E,
        mut each: impl FnMut(&str, &[(u32, f32)]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut buckets = self.buckets;
        buckets.sort_unstable_by_key(|b| b.key);
        let mut terms = TermInterner::new();
        let mut ids: Vec<u32> = Vec::new();
        let mut starts: Vec<usize> = Vec::new();
        let mut placed: Vec<(u32, f32)> = Vec::new();
        let mut next: Vec<usize> = Vec::new();
        for bucket in buckets {
            terms.clear();
            ids.clear();
            let mut at = 0usize;
            for p in &bucket.postings {
                let end = at + usize::from(p.len);
                let term = bucket.text.get(at..end).unwrap_or_default();
                at = end;
                let (id, _) = terms.intern(term).ok_or_else(&full)?;
                ids.push(id);
            }
            // Counting sort by term id; stable, so each term's rows stay increasing.
            starts.clear();
            starts.resize(terms.len() + 1, 0);
            for &id in &ids {
                if let Some(s) = starts.get_mut(id as usize + 1) {
                    *s += 1;
                }
            }
            for i in 1..starts.len() {
                starts[i] += starts[i - 1];
            }
            placed.clear();
            placed.resize(ids.len(), (0, 0.0));
            next.clear();
            next.extend_from_slice(&starts);
            for (&id, p) in ids.iter().zip(&bucket.postings) {
                if let Some(n) = next.get_mut(id as usize) {
                    if let Some(slot) = placed.get_mut(*n) {
                        *slot = (p.row, p.tf);
                    }
                    *n += 1;
                }
            }
            drop(bucket);
            for id in terms.sorted_ids() {
                let i = id as usize;
                let (start, end) = (starts[i], starts[i + 1]);
                each(terms.get(id), &placed[start..end])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A term's bytes and its postings.
    type Inverted = (Vec<u8>, Vec<(u32, f32)>);

    proptest! {
        #[test]
        fn terms_come_back_sorted_with_their_postings_in_row_order(
            rows in proptest::collection::vec(
                proptest::collection::btree_map("[ab\u{0}\u{7f}é]{1,4}", 0.5f32..4.0, 0..6),
                0..40,
            )
        ) {
            let mut inv = Inversion::new();
            let mut want: BTreeMap<Vec<u8>, Vec<(u32, f32)>> = BTreeMap::new();
            for (row, terms) in rows.iter().enumerate() {
                for (term, &tf) in terms {
                    inv.push(term, row as u32, tf);
                    want.entry(term.as_bytes().to_vec()).or_default().push((row as u32, tf));
                }
            }
            let mut got: Vec<Inverted> = Vec::new();
            inv.drain(|| (), |term, postings| {
                got.push((term.as_bytes().to_vec(), postings.to_vec()));
                Ok::<(), ()>(())
            }).expect("drained");
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        }
    }
}
