//! The x86-64 half of [`PlaneCounts`](super::PlaneCounts): the counting loop in AVX2
//! registers, with its carry-save helpers, and the comparisons compiled for AVX2 and POPCNT.
//! Callers check CPU support before calling.

use std::arch::x86_64::*;

/// A carry-save adder over four words at a time: (carries, sums) of `a`, `b` and `c`.
///
/// `#[inline]`, not `#[inline(always)]` (which `#[target_feature]` does not allow): its
/// callers are AVX2 functions too, which it is inlined into.
#[inline]
#[target_feature(enable = "avx2")]
fn csa256(a: __m256i, b: __m256i, c: __m256i) -> (__m256i, __m256i) {
    let u = _mm256_xor_si256(a, b);
    let lo = _mm256_xor_si256(u, c);
    let hi = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
    (hi, lo)
}

/// Adds one bit per row (`x`) into the bit-sliced counter `count` (lowest bit first).
/// `#[inline]` as [`csa256`] is.
#[inline]
#[target_feature(enable = "avx2")]
fn add_bits256(count: &mut [__m256i], mut x: __m256i) {
    for level in count.iter_mut() {
        let carry = _mm256_and_si256(*level, x);
        *level = _mm256_xor_si256(*level, x);
        x = carry;
    }
}

/// The bit-plane counting loop in AVX2 registers (four words, 256 rows, at a time),
/// asking for the next sixteen planes' words a line at a time while these are added:
/// the same sums as the portable loop, which counts the last words of a run (fewer
/// than four) and any plane too short to hold them all.
#[target_feature(enable = "avx2")]
pub(super) fn plane_counts_avx2(
    planes: &[&[u64]],
    flips: &[u64],
    doubled: usize,
    from: usize,
    out: &mut [[u64; 8]],
) {
    const LANES: usize = super::PLANE_LANES;
    let to = from + out.len();
    // Whole registers only, inside every plane: the rest goes the portable way.
    let shortest = planes.iter().map(|p| p.len()).min().unwrap_or(0);
    let whole = (to.min(shortest).saturating_sub(from)) / LANES * LANES;
    let (head, tail) = out.split_at_mut(whole);
    if !tail.is_empty() {
        super::plane_counts_with(planes, flips, doubled, from + whole, tail, |_| {});
    }
    let ask = |group: &[&[u64]], at: usize| {
        for plane in group {
            if let Some(word) = plane.get(at) {
                _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(word).cast::<i8>());
            }
        }
    };
    let zero = _mm256_setzero_si256();
    for (r, run) in head.chunks_mut(super::PLANE_RUN).enumerate() {
        let start = from + r * super::PLANE_RUN;
        let chunks = run.len() / LANES;
        let mut counts = [[zero; 8]; super::PLANE_RUN / LANES];
        let counts = &mut counts[..chunks];
        for at in (start..start + run.len()).step_by(8) {
            ask(&planes[..planes.len().min(16)], at);
        }
        for (pass, span) in super::plane_passes(planes.len(), doubled)
            .into_iter()
            .enumerate()
        {
            if pass == 1 {
                counts
                    .iter_mut()
                    .for_each(|c| super::double_counts(c, zero));
            }
            let (these, these_flips) = (&planes[span.clone()], &flips[span.clone()]);
            let groups = these.chunks_exact(16).zip(these_flips.chunks_exact(16));
            for (g, (group, flip)) in groups.enumerate() {
                let next = super::next_planes(planes, span.start + 16 * (g + 1));
                // Each plane's words of the run, checked once: `whole` words from `from`
                // are inside every plane.
                let words: [&[u64]; 16] =
                    std::array::from_fn(|i| &group[i][start..start + run.len()]);
                let flip: [__m256i; 16] =
                    std::array::from_fn(|i| _mm256_set1_epi64x(flip[i] as i64));
                for (ch, c) in counts.iter_mut().enumerate() {
                    let at = ch * LANES;
                    if at.is_multiple_of(8) {
                        ask(next, start + at);
                    }
                    let x = |i: usize| {
                        let w = &words[i][at..at + LANES];
                        // SAFETY: `w` holds four words; an unaligned load reads just them.
                        let v = unsafe { _mm256_loadu_si256(w.as_ptr().cast::<__m256i>()) };
                        _mm256_xor_si256(v, flip[i])
                    };
                    add_sixteen!(c, x, zero, csa256, add_bits256);
                }
            }
            let rest = these.chunks_exact(16).remainder();
            let rest_flips = these_flips.chunks_exact(16).remainder();
            for (plane, &flip) in rest.iter().zip(rest_flips) {
                let words = &plane[start..start + run.len()];
                let flip = _mm256_set1_epi64x(flip as i64);
                for (ch, c) in counts.iter_mut().enumerate() {
                    let w = &words[ch * LANES..(ch + 1) * LANES];
                    // SAFETY: `w` holds four words; an unaligned load reads just them.
                    let v = unsafe { _mm256_loadu_si256(w.as_ptr().cast::<__m256i>()) };
                    add_bits256(c, _mm256_xor_si256(v, flip));
                }
            }
        }
        for (ch, c) in counts.iter().enumerate() {
            let mut lanes = [[0u64; LANES]; 8];
            for (bit, lane) in lanes.iter_mut().enumerate() {
                // SAFETY: `lane` is four words; an unaligned store writes just them.
                unsafe { _mm256_storeu_si256(lane.as_mut_ptr().cast::<__m256i>(), c[bit]) };
            }
            for (l, word) in run[ch * LANES..(ch + 1) * LANES].iter_mut().enumerate() {
                *word = std::array::from_fn(|bit| lanes[bit][l]);
            }
        }
    }
}

/// The bit-sliced comparison's masks compiled for AVX2.
#[target_feature(enable = "avx2")]
pub(super) fn masks_within_avx2(bits: &[[u64; 8]], valid: &[u64], d: u32) -> Vec<u64> {
    super::masks_within(bits, valid, d)
}

/// The bit-sliced comparison compiled for AVX2 and POPCNT.
#[target_feature(enable = "avx2,popcnt")]
pub(super) fn count_within_avx2(bits: &[[u64; 8]], valid: &[u64], d: u32) -> usize {
    super::count_within(bits, valid, d)
}
