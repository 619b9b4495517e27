//! Hamming distances over chosen bit planes, counted bit-sliced ([`PlaneCounts`]): the
//! carry-save counting loop, the bit-sliced comparisons against a distance, and their
//! helpers. The AVX2 half is in `x86`, declared after `add_sixteen!`, which it uses.

use super::Isa;

/// The most planes [`PlaneCounts`] counts: its counters have 8 bits.
pub const MAX_PLANES: usize = 255;

/// 64-bit words the bit-plane kernel works on side by side (one AVX2 register).
const PLANE_LANES: usize = 4;

/// [`PLANE_LANES`] words, one per run of 64 rows.
type Lanes = [u64; PLANE_LANES];

/// Words of each plane counted in one go (32,768 rows): the counters of a run (8 × 512
/// words, 32 KiB) stay in the L1 cache while sixteen planes at a time are added, and each
/// plane's words are read 4 KiB at a time.
const PLANE_RUN: usize = 512;

/// Hamming distances over a chosen set of bit planes, kept bit-sliced: for each row of a
/// run, the number of planes in which its bit differs from the query's.
///
/// `planes[t]` is the plane of one dimension (bit `r % 64` of word `r / 64` is row `r`'s
/// bit) and `flips[t]` is the query's bit in it spread over a word (`!0` for 1, `0` for 0).
/// The run is rows `first..first + rows` of the planes (rows past the end of the shortest
/// plane are left out); at most [`MAX_PLANES`] planes are counted.
///
/// The counts are grown by carry-save adders sixteen planes at a time (the Harley–Seal
/// popcount, turned sideways), one word of counter bits per 64 rows, so each plane word
/// costs about five bitwise operations whatever its bits. They stay bit-sliced: how many
/// rows are within a distance, and which, are answered 64 rows at a time by comparing the
/// counter bits against the distance, so a search never spends time on each of the many
/// rows that are far. A search reads only the planes of the dimensions that matter most
/// to its query: a fraction of the codes' bytes.
#[derive(Debug, Clone)]
pub struct PlaneCounts {
    /// Per word of 64 rows, the eight bits of their counts, lowest first.
    bits: Vec<[u64; 8]>,
    /// The run's rows in each word (the first and last words may be partial).
    valid: Vec<u64>,
    /// The row of the planes at bit 0 of the first word.
    base: usize,
    /// The run's first row.
    first: usize,
    rows: usize,
    isa: Isa,
}

impl PlaneCounts {
    /// Counts rows `first..first + rows` of `planes` against the query bits `flips`.
    #[cfg(any(test, feature = "internals"))]
    pub fn new(
        isa: Isa,
        planes: &[&[u64]],
        flips: &[u64],
        first: usize,
        rows: usize,
    ) -> PlaneCounts {
        PlaneCounts::weighted(isa, planes, flips, 0, first, rows)
    }

    /// Like [`Self::new`], but a mismatch in one of the first `doubled` planes counts
    /// twice: for planes ordered by how much they matter to the query. `doubled` is
    /// bounded so that no count exceeds [`MAX_PLANES`] (at most `MAX_PLANES - planes`).
    pub fn weighted(
        isa: Isa,
        planes: &[&[u64]],
        flips: &[u64],
        doubled: usize,
        first: usize,
        rows: usize,
    ) -> PlaneCounts {
        let k = planes.len().min(flips.len()).min(MAX_PLANES);
        let (planes, flips) = (&planes[..k], &flips[..k]);
        let doubled = doubled.min(k).min(MAX_PLANES - k);
        let limit = planes
            .iter()
            .map(|p| p.len().saturating_mul(64))
            .min()
            .unwrap_or(usize::MAX);
        let rows = rows.min(limit.saturating_sub(first));
        let (from, to) = (first / 64, (first + rows).div_ceil(64));
        let mut valid = vec![0u64; to - from];
        mark_rows(&mut valid, from * 64, first..first + rows);
        let mut bits = vec![[0u64; 8]; to - from];
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 if Isa::hardware() >= Isa::Avx2 => {
                // SAFETY: the CPU supports AVX2 (checked by `hardware`).
                unsafe { x86::plane_counts_avx2(planes, flips, doubled, from, &mut bits) }
            }
            _ => plane_counts_with(planes, flips, doubled, from, &mut bits, |_| {}),
        }
        PlaneCounts {
            bits,
            valid,
            base: from * 64,
            first,
            rows,
            isa,
        }
    }

    /// Rows in the run.
    #[cfg(any(test, feature = "internals"))]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Leaves out of [`Self::count_within`] and [`Self::rows_within`] every row of the run
    /// outside `parts` (positions in the run): for a run that spans rows a search skips.
    pub fn keep_only(&mut self, parts: &[std::ops::Range<usize>]) {
        let mut keep = vec![0u64; self.valid.len()];
        for part in parts {
            let end = part.end.min(self.rows);
            let start = part.start.min(end);
            mark_rows(&mut keep, self.base, self.first + start..self.first + end);
        }
        self.valid.iter_mut().zip(keep).for_each(|(v, k)| *v &= k);
    }

    /// The count of the run's row `i` (row `first + i` of the planes; 0 past the end).
    pub fn count(&self, i: usize) -> u32 {
        // `base` is `first` rounded down to a word, so never above it.
        let row = self.first - self.base + i;
        let Some(word) = self.bits.get(row / 64) else {
            return 0;
        };
        (0..8)
            .map(|l| (((word[l] >> (row % 64)) & 1) as u32) << l)
            .sum()
    }

    /// How many of the run's rows have a count of at most `d`.
    pub fn count_within(&self, d: u32) -> usize {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 if Isa::hardware() >= Isa::Avx2 => {
                // SAFETY: the CPU supports AVX2 and POPCNT (checked by `hardware`).
                unsafe { x86::count_within_avx2(&self.bits, &self.valid, d) }
            }
            _ => count_within(&self.bits, &self.valid, d),
        }
    }

    /// The run's rows (positions `i` in it, ascending) with a count of at most `d`.
    pub fn rows_within(&self, d: u32) -> Vec<u32> {
        let masks = match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 if Isa::hardware() >= Isa::Avx2 => {
                // SAFETY: the CPU supports AVX2 (checked by `hardware`).
                unsafe { x86::masks_within_avx2(&self.bits, &self.valid, d) }
            }
            _ => masks_within(&self.bits, &self.valid, d),
        };
        let mut out = Vec::new();
        for (w, &mask) in masks.iter().enumerate() {
            let mut mask = mask;
            while mask != 0 {
                let row = self.base + w * 64 + mask.trailing_zeros() as usize;
                out.push((row - self.first) as u32);
                mask &= mask - 1;
            }
        }
        out
    }
}

/// Sets the bits of rows `rows` in `masks`, whose bit 0 of word 0 is row `base`.
fn mark_rows(masks: &mut [u64], base: usize, rows: std::ops::Range<usize>) {
    let upto = |n: usize| if n >= 64 { !0u64 } else { (1u64 << n) - 1 };
    for (w, mask) in masks.iter_mut().enumerate() {
        let at = base + w * 64;
        let lo = rows.start.saturating_sub(at).min(64);
        let hi = rows.end.saturating_sub(at).min(64);
        *mask |= upto(hi) & !upto(lo);
    }
}

/// The rows of one word of 8-bit bit-sliced counts (`bits[l]`: bit `l`) whose count is at
/// most `d`: a comparison from the highest bit down, without branches.
#[inline(always)]
fn within(bits: &[u64; 8], d: u32) -> u64 {
    if d >= 255 {
        return !0;
    }
    // Rows below `d` so far, and rows equal to it so far.
    let (mut below, mut equal) = (0u64, !0u64);
    for l in (0..8).rev() {
        let one = 0u64.wrapping_sub(u64::from((d >> l) & 1));
        below |= equal & !bits[l] & one;
        equal &= !(bits[l] ^ one);
    }
    below | equal
}

/// Per word of `bits`, its `valid` rows with a count of at most `d`.
#[inline(always)]
fn masks_within(bits: &[[u64; 8]], valid: &[u64], d: u32) -> Vec<u64> {
    bits.iter()
        .zip(valid)
        .map(|(word, valid)| within(word, d) & valid)
        .collect()
}

/// [`PlaneCounts::count_within`] over `bits` and the `valid` rows of each word.
#[inline(always)]
fn count_within(bits: &[[u64; 8]], valid: &[u64], d: u32) -> usize {
    bits.iter()
        .zip(valid)
        .map(|(word, valid)| (within(word, d) & valid).count_ones() as usize)
        .sum()
}

/// Words `at..at + PLANE_LANES` of `plane` XOR `flip` (zero past its end).
#[inline(always)]
fn load_lanes(plane: &[u64], at: usize, flip: u64) -> Lanes {
    // Straight into registers in the common case; the last words of a plane are copied.
    let x = match plane.get(at..at + PLANE_LANES) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => load_tail(plane, at),
    };
    x.map(|w| w ^ flip)
}

/// The words of `plane` from `at` on, fewer than [`PLANE_LANES`], padded with zeros.
#[cold]
fn load_tail(plane: &[u64], at: usize) -> Lanes {
    let mut x = [0u64; PLANE_LANES];
    let tail = plane.get(at..).unwrap_or(&[]);
    let n = tail.len().min(PLANE_LANES);
    x[..n].copy_from_slice(&tail[..n]);
    x
}

/// A carry-save adder: (carries, sums) of three bit vectors.
#[inline(always)]
fn csa(a: Lanes, b: Lanes, c: Lanes) -> (Lanes, Lanes) {
    let mut hi = [0u64; PLANE_LANES];
    let mut lo = [0u64; PLANE_LANES];
    for l in 0..PLANE_LANES {
        let u = a[l] ^ b[l];
        lo[l] = u ^ c[l];
        hi[l] = (a[l] & b[l]) | (u & c[l]);
    }
    (hi, lo)
}

/// Adds one bit per row (`x`) into the bit-sliced counter `count` (lowest bit first).
#[inline(always)]
fn add_bits(count: &mut [Lanes], mut x: Lanes) {
    for level in count.iter_mut() {
        for l in 0..PLANE_LANES {
            let carry = level[l] & x[l];
            level[l] ^= x[l];
            x[l] = carry;
        }
    }
}

/// Adds the bits of sixteen planes, `$x(0)` to `$x(15)`, into the bit-sliced counts `$c`
/// (`&mut [_; 8]`): the Harley–Seal tree of carry-save adders (`$csa`) into the ones, twos,
/// fours and eights, then the sixteens carried up the higher counter bits (`$add_bits`).
/// One tree for the word loop and the AVX2 register loop; a macro, since through a generic
/// function over the two register types the AVX2 operations were not inlined (30× slower).
macro_rules! add_sixteen {
    ($c:expr, $x:expr, $zero:expr, $csa:path, $add_bits:path) => {{
        let (c, x) = ($c, $x);
        let mut eights = [$zero; 2];
        for (half, e) in eights.iter_mut().enumerate() {
            let b = half * 8;
            let (twos_a, ones) = $csa(c[0], x(b), x(b + 1));
            let (twos_b, ones) = $csa(ones, x(b + 2), x(b + 3));
            let (fours_a, twos) = $csa(c[1], twos_a, twos_b);
            let (twos_a, ones) = $csa(ones, x(b + 4), x(b + 5));
            let (twos_b, ones) = $csa(ones, x(b + 6), x(b + 7));
            let (fours_b, twos) = $csa(twos, twos_a, twos_b);
            let (eights_x, fours) = $csa(c[2], fours_a, fours_b);
            c[0] = ones;
            c[1] = twos;
            c[2] = fours;
            *e = eights_x;
        }
        let (sixteens, eights) = $csa(c[3], eights[0], eights[1]);
        c[3] = eights;
        $add_bits(&mut c[4..], sixteens);
    }};
}

/// The bit-plane counting loop over words `from..from + out.len()` of the planes (the
/// first `doubled` counted twice: added first, then every counter shifted up a bit), with
/// a hook called with a word of each of the next sixteen planes, a cache line apart, while
/// the current ones are added (a prefetch hint on x86-64: the planes of a run are many
/// short streams, more than the hardware prefetcher follows).
#[inline(always)]
fn plane_counts_with(
    planes: &[&[u64]],
    flips: &[u64],
    doubled: usize,
    from: usize,
    out: &mut [[u64; 8]],
    prefetch: impl Fn(&u64),
) {
    // Asks for the cache line holding word `at` of each plane of `group`.
    let ask = |group: &[&[u64]], at: usize| {
        for plane in group {
            if let Some(word) = plane.get(at) {
                prefetch(word);
            }
        }
    };
    for (r, run) in out.chunks_mut(PLANE_RUN).enumerate() {
        let start = from + r * PLANE_RUN;
        let stop = start + run.len();
        let chunks = run.len().div_ceil(PLANE_LANES);
        // The counts of the run's rows, bit-sliced, per PLANE_LANES words: ones, twos,
        // fours, eights, then the count of sixteens.
        let mut counts = [[[0u64; PLANE_LANES]; 8]; PLANE_RUN / PLANE_LANES];
        let counts = &mut counts[..chunks];
        for at in (start..stop).step_by(8) {
            ask(&planes[..planes.len().min(16)], at);
        }
        for (pass, span) in plane_passes(planes.len(), doubled).into_iter().enumerate() {
            if pass == 1 {
                counts
                    .iter_mut()
                    .for_each(|c| double_counts(c, [0; PLANE_LANES]));
            }
            let (these, these_flips) = (&planes[span.clone()], &flips[span.clone()]);
            let groups = these.chunks_exact(16).zip(these_flips.chunks_exact(16));
            for (g, (group, flip)) in groups.enumerate() {
                // The next sixteen planes' run is asked for a line at a time while these
                // are added, so the requests never queue up behind each other.
                let next = next_planes(planes, span.start + 16 * (g + 1));
                for (ch, c) in counts.iter_mut().enumerate() {
                    let at = start + ch * PLANE_LANES;
                    if at.is_multiple_of(8) {
                        ask(next, at);
                    }
                    add_sixteen!(
                        c,
                        |i: usize| load_lanes(group[i], at, flip[i]),
                        [0u64; PLANE_LANES],
                        csa,
                        add_bits
                    );
                }
            }
            let rest = these.chunks_exact(16).remainder();
            let rest_flips = these_flips.chunks_exact(16).remainder();
            for (plane, &flip) in rest.iter().zip(rest_flips) {
                for (ch, c) in counts.iter_mut().enumerate() {
                    add_bits(c, load_lanes(plane, start + ch * PLANE_LANES, flip));
                }
            }
        }
        for (w, word) in run.iter_mut().enumerate() {
            let c = &counts[w / PLANE_LANES];
            *word = std::array::from_fn(|bit| c[bit][w % PLANE_LANES]);
        }
    }
}

/// The planes counted twice, then the others: the two passes of the counting loop.
fn plane_passes(planes: usize, doubled: usize) -> [std::ops::Range<usize>; 2] {
    [0..doubled, doubled..planes]
}

/// The (up to) sixteen planes from `at` on: the ones to ask for next.
fn next_planes<'a>(planes: &'a [&'a [u64]], at: usize) -> &'a [&'a [u64]] {
    let at = at.min(planes.len());
    &planes[at..planes.len().min(at + 16)]
}

/// Doubles bit-sliced counts (every bit moves up a level; the top one is 0 while the
/// counts are below 128, which [`PlaneCounts::weighted`]'s bound on `doubled` ensures).
#[inline(always)]
fn double_counts<T: Copy>(count: &mut [T; 8], zero: T) {
    count.rotate_right(1);
    count[0] = zero;
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn plane_counts_agree_with_naive_on_every_isa(
            k in 0usize..40,
            rows in 0usize..700,
            first in 0usize..140,
            d in 0u32..45,
            doubled in 0usize..24,
            seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let words = (first + rows).div_ceil(64);
            let planes: Vec<Vec<u64>> = (0..k).map(|_| (0..words).map(|_| next()).collect()).collect();
            let flips: Vec<u64> = (0..k).map(|_| if next() & 1 == 1 { !0 } else { 0 }).collect();
            let refs: Vec<&[u64]> = planes.iter().map(|p| p.as_slice()).collect();
            // A mismatch in one of the first `doubled` planes counts twice.
            let weight = |t: usize| if t < doubled { 2 } else { 1 };
            let want: Vec<u32> = (first..first + rows)
                .map(|r| (0..k).filter(|&t| ((planes[t][r / 64] >> (r % 64)) & 1) != (flips[t] & 1)).map(weight).sum())
                .collect();
            let want_rows: Vec<u32> = (0..rows as u32).filter(|&i| want[i as usize] <= d).collect();
            for isa in Isa::available() {
                let counts = PlaneCounts::weighted(isa, &refs, &flips, doubled, first, rows);
                prop_assert_eq!(counts.rows(), rows);
                let got: Vec<u32> = (0..rows).map(|i| counts.count(i)).collect();
                prop_assert_eq!(&got, &want, "{:?}", isa);
                prop_assert_eq!(counts.count_within(d), want_rows.len(), "{:?}", isa);
                prop_assert_eq!(&counts.rows_within(d), &want_rows, "{:?}", isa);
                prop_assert_eq!(counts.count_within(255), rows);
                // Only the rows of two parts (positions), the rest left out.
                let parts = [0..rows / 3, rows / 2..rows / 2 + rows / 4];
                let mut some = counts.clone();
                some.keep_only(&parts);
                let kept: Vec<u32> = want_rows
                    .iter()
                    .copied()
                    .filter(|&i| parts.iter().any(|p| p.contains(&(i as usize))))
                    .collect();
                prop_assert_eq!(&some.rows_within(d), &kept, "{:?}", isa);
                prop_assert_eq!(some.count_within(d), kept.len(), "{:?}", isa);
            }
        }
    }

    #[test]
    fn plane_counts_span_several_runs_and_a_ragged_end() {
        // 70,001 rows from row 100: three runs of 32,768 rows, the last one ragged, and 40
        // planes, one longer than the others, the first 17 counted twice (each of the two
        // passes a group of sixteen and the rest one by one).
        let (first, rows, k, doubled) = (100usize, 70_001usize, 40usize, 17usize);
        let words = (first + rows).div_ceil(64);
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let planes: Vec<Vec<u64>> = (0..k)
            .map(|t| (0..words + usize::from(t == 3)).map(|_| next()).collect())
            .collect();
        let flips: Vec<u64> = (0..k).map(|t| if t % 3 == 0 { !0 } else { 0 }).collect();
        let refs: Vec<&[u64]> = planes.iter().map(|p| p.as_slice()).collect();
        let want: Vec<u32> = (first..first + rows)
            .map(|r| {
                (0..k)
                    .filter(|&t| ((planes[t][r / 64] >> (r % 64)) & 1) != (flips[t] & 1))
                    .map(|t| if t < doubled { 2 } else { 1 })
                    .sum::<u32>()
            })
            .collect();
        for isa in Isa::available() {
            let counts = PlaneCounts::weighted(isa, &refs, &flips, doubled, first, rows);
            let got: Vec<u32> = (0..rows).map(|i| counts.count(i)).collect();
            assert!(got == want, "{isa:?}");
            let near = want.iter().filter(|&&c| c <= 21).count();
            assert_eq!(counts.count_within(21), near, "{isa:?}");
        }
    }
}

/// The examples of the documentation above, run as tests (the module is not public API).
#[cfg(test)]
mod examples {
    use super::*;

    #[test]
    fn the_doubled_plane_counts_twice() {
        use crate::kernel::Isa;

        // Row 0 differs from the query in plane 0 only, row 1 in plane 1 only.
        let (p0, p1) = ([0b01u64], [0b10u64]);
        let counts = PlaneCounts::weighted(Isa::detect(), &[&p0, &p1], &[0, 0], 1, 0, 2);
        assert_eq!((counts.count(0), counts.count(1)), (2, 1));
    }

    #[test]
    fn counting_three_rows_over_two_planes() {
        use crate::kernel::Isa;

        // Three rows, two planes: rows 0 and 2 have bit 1 in plane 0, row 2 in plane 1.
        let (p0, p1) = ([0b101u64], [0b100u64]);
        // The query has bit 1 in plane 0 and bit 0 in plane 1.
        let counts = PlaneCounts::new(Isa::detect(), &[&p0, &p1], &[!0, 0], 0, 3);
        assert_eq!(
            (0..3).map(|r| counts.count(r)).collect::<Vec<_>>(),
            [0, 1, 1]
        );
        assert_eq!(counts.count_within(0), 1);
        assert_eq!(counts.rows_within(1), [0, 1, 2]);
    }
}
