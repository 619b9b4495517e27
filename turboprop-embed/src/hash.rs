//! Stable term hashing: the one function that turns a normalized term into a [`TermId`] and a
//! signed slot of the vector.
//!
//! Vectors are stored on disk, so this hash must never change between builds, platforms or
//! Rust versions: it is FNV-1a (64-bit) over the term's UTF-8 bytes followed by the SplitMix64
//! finalizer, written out here rather than borrowed from `std` (whose `DefaultHasher` makes
//! no such promise). Changing anything in this file changes every vector and needs a new
//! model id.

use turboprop_types::TermId;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit hash of a term: FNV-1a over its bytes, then the SplitMix64 finalizer so that
/// every output bit depends on every input byte.
pub(crate) fn term_hash(term: &str) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in term.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// The SplitMix64 finalizer (Steele, Lea and Flood), a bijection on `u64`.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The [`TermId`] of a term hash: its high 32 bits.
pub(crate) fn term_id_of(hash: u64) -> TermId {
    (hash >> 32) as TermId
}

/// How many slots of the vector each term is spread over.
///
/// With one slot, a query term that collides with some other term of a chunk adds a full,
/// spurious match to that chunk's score; spread over two slots, each collision adds half as
/// much and needs twice the luck, which measurably improves ranking at the same dimension.
pub(crate) const PROBES: usize = 2;

/// The factor each slot's share is scaled by, so that a term's total squared weight is
/// unchanged: `1 / sqrt(PROBES)`.
pub(crate) const PROBE_SCALE: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// The [`PROBES`] slots and signs of a term hash in a vector of `dims` dimensions.
///
/// Each probe's 64-bit hash gives a slot from its low 32 bits by multiply-shift range
/// reduction (uniform for any `dims`) and a sign from bit 32, which the slot does not use.
/// The first probe's hash is the term hash itself; the second is the term hash re-mixed.
pub(crate) fn slots(hash: u64, dims: usize) -> [(usize, f32); PROBES] {
    let second = mix64(hash ^ 0x9e37_79b9_7f4a_7c15);
    [slot_of(hash, dims), slot_of(second, dims)]
}

fn slot_of(hash: u64, dims: usize) -> (usize, f32) {
    let slot = (((hash & 0xffff_ffff) * dims as u64) >> 32) as usize;
    let sign = if (hash >> 32) & 1 == 0 { 1.0 } else { -1.0 };
    (slot, sign)
}

/// The [`TermId`] of a normalized term, as [`crate::analyze_document`] and
/// [`crate::analyze_query`] produce it.
///
/// ```
/// use turboprop_embed::term_id;
///
/// assert_eq!(term_id("pot"), term_id("pot"));
/// assert_ne!(term_id("pot"), term_id("pots"));
/// ```
pub fn term_id(term: &str) -> TermId {
    term_id_of(term_hash(term))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values (cross-checked with an independent Python implementation): if this test
    /// fails, every stored vector changed and the model id must change with it.
    #[test]
    fn hash_values_are_pinned() {
        assert_eq!(term_hash(""), mix64(FNV_OFFSET));
        assert_eq!(term_hash("a"), mix64(0xaf63_dc4c_8601_ec8c));
        assert_eq!(term_hash("pot"), 0x8dd3_8c1b_49ad_ca24);
        assert_eq!(term_id("split"), 0xb333_e2fe);
    }

    #[test]
    fn slots_cover_the_range_and_signs_are_balanced() {
        let dims = 7;
        let mut seen = [0usize; 7];
        let mut positive = 0;
        let mut same_slot = 0;
        for i in 0..7000 {
            let [a, b] = slots(term_hash(&format!("term{i}")), dims);
            for (slot, sign) in [a, b] {
                seen[slot] += 1;
                if sign > 0.0 {
                    positive += 1;
                }
            }
            if a.0 == b.0 {
                same_slot += 1;
            }
        }
        assert!(seen.iter().all(|&n| (1800..2200).contains(&n)), "{seen:?}");
        assert!((6700..7300).contains(&positive), "{positive}");
        // The two probes are independent: they share a slot about 1 time in `dims`.
        assert!((800..1200).contains(&same_slot), "{same_slot}");
    }

    #[test]
    fn slots_stay_in_range_for_any_dimension() {
        for dims in [1, 16, 100, 512, 8192] {
            for i in 0..1000 {
                for (slot, _) in slots(term_hash(&i.to_string()), dims) {
                    assert!(slot < dims);
                }
            }
        }
    }
}
