//! Bounded top-k selection: per-thread heaps of the best candidates, merged at the end.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A scored row: which segment, which row, how well it matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The score (dot product of normalized vectors = cosine similarity).
    pub score: f32,
    /// Segment index in the index's segment list.
    pub segment: u32,
    /// Row within the segment.
    pub row: u32,
}

impl Scored {
    /// Best first: higher score, then lower segment, then lower row (a total order, so the
    /// results do not depend on how the work was split between threads).
    pub fn better_first(&self, other: &Scored) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.segment.cmp(&other.segment))
            .then(self.row.cmp(&other.row))
    }
}

/// Heap entry whose `Ord` puts the *worst* candidate on top, so it can be evicted.
#[derive(Debug, Clone, Copy)]
struct Worst(Scored);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.better_first(&other.0)
    }
}

/// Keeps the `k` best of everything pushed into it, in O(log k) per push.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    /// An empty collector of the `k` best.
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }

    /// The score a candidate must beat to enter (or `-inf` while not full).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score)
        }
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, s: Scored) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(s));
        } else if let Some(mut top) = self.heap.peek_mut() {
            if s.better_first(&top.0) == Ordering::Less {
                *top = Worst(s);
            }
        }
    }

    /// Merges another collector into this one.
    pub fn merge(mut self, other: TopK) -> TopK {
        for w in other.heap {
            self.push(w.0);
        }
        self
    }

    /// The kept candidates, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(Scored::better_first);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn topk_equals_sort_and_truncate(scores in prop::collection::vec(-1.0f32..1.0, 0..300), k in 0usize..40) {
            let items: Vec<Scored> = scores
                .iter()
                .enumerate()
                .map(|(i, &score)| Scored { score, segment: (i % 3) as u32, row: i as u32 })
                .collect();
            let mut top = TopK::new(k);
            // Split in two collectors and merge, as threads do.
            let mut other = TopK::new(k);
            for (i, s) in items.iter().enumerate() {
                if i % 2 == 0 { top.push(*s) } else { other.push(*s) }
            }
            let got = top.merge(other).into_sorted();
            let mut want = items.clone();
            want.sort_by(Scored::better_first);
            want.truncate(k);
            prop_assert_eq!(got, want);
        }
    }
}
