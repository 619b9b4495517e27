//! The scoring kernels of search: dot products of one query against many rows of f32,
//! Hamming distances of one 1-bit code against many codes (row by row, or over chosen bit
//! planes, counted bit-sliced: [`PlaneCounts`]), and weighted sums of int8 code columns
//! (the approximate scores of sparse vectors). Each kernel has a portable
//! version and, on x86-64, versions for AVX2+FMA and AVX-512F chosen once at run time
//! ([`Isa::detect`]); every version computes the same thing (the f32 ones up to rounding
//! order, the Hamming ones exactly), which the tests check against naive oracles.
//!
//! Search is bound by memory bandwidth, not arithmetic: the f32 kernels read one row at a
//! time front to back (a single sequential stream per thread, which the hardware prefetchers
//! follow best; four rows interleaved measured ~40% slower) with four independent
//! accumulators so the fused multiply-adds never wait on each other. The Hamming loop does
//! so little per byte that it also asks for its codes 2 KiB ahead (x86-64), so it does not
//! stall at each 4 KiB page, where the hardware prefetcher stops.
//!
//! ```
//! use turboprop_index::kernel::{dot_rows, Isa};
//!
//! let query = [0.6f32, 0.8];
//! let rows = [1.0f32, 0.0, 0.0, 1.0, 0.6, 0.8];
//! let mut scores = [0.0f32; 3];
//! dot_rows(Isa::detect(), &query, &rows, &mut scores);
//! for (got, want) in scores.iter().zip([0.6, 0.8, 1.0]) {
//!     assert!((got - want).abs() < 1e-6);
//! }
//! ```

use std::sync::OnceLock;

/// An instruction set a kernel can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust (auto-vectorized with the baseline target features).
    Portable,
    /// x86-64 AVX2 with FMA and POPCNT.
    Avx2,
    /// x86-64 AVX-512F (plus AVX2, FMA and POPCNT).
    Avx512,
}

impl Isa {
    /// The instruction set the kernels use (detected once, then cached): the best this CPU
    /// has, up to AVX2. The AVX-512 path is used only when `TURBOPROP_ISA=avx512` asks for it:
    /// on the one AVX-512 machine it was measured on besides ours it was slower than AVX2
    /// (see the README's performance section), and a path is the default only where it was
    /// measured faster. `TURBOPROP_ISA=portable|avx2` caps it, for comparisons.
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            Isa::choose(
                Isa::hardware(),
                std::env::var("TURBOPROP_ISA").ok().as_deref(),
            )
        })
    }

    /// The instruction set used on a CPU whose best is `best`, with `TURBOPROP_ISA` set to
    /// `asked` (see [`Isa::detect`]).
    ///
    /// ```
    /// use turboprop_index::kernel::Isa;
    ///
    /// assert_eq!(Isa::choose(Isa::Avx512, None), Isa::Avx2);
    /// assert_eq!(Isa::choose(Isa::Avx512, Some("avx512")), Isa::Avx512);
    /// assert_eq!(Isa::choose(Isa::Avx2, Some("avx512")), Isa::Avx2);
    /// assert_eq!(Isa::choose(Isa::Avx512, Some("portable")), Isa::Portable);
    /// ```
    pub fn choose(best: Isa, asked: Option<&str>) -> Isa {
        match asked {
            Some("portable") => Isa::Portable,
            Some("avx512") => best,
            _ => best.min(Isa::Avx2),
        }
    }

    /// The best instruction set of this CPU, uncapped (what the kernels check before they
    /// use an instruction).
    fn hardware() -> Isa {
        static HW: OnceLock<Isa> = OnceLock::new();
        *HW.get_or_init(|| Isa::available().into_iter().max().unwrap_or(Isa::Portable))
    }

    /// Every instruction set this CPU can run, portable first.
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut isas = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("popcnt")
            {
                isas.push(Isa::Avx2);
                if is_x86_feature_detected!("avx512f") {
                    isas.push(Isa::Avx512);
                }
            }
        }
        isas
    }

    /// A short name: `portable`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Dot product of two slices of equal length (the shorter length if they differ).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut out = [0.0f32];
    dot_rows(Isa::detect(), &a[..n], &b[..n], &mut out);
    out[0]
}

/// Scores `out.len()` rows of `query.len()` values each, stored one after the other in
/// `rows`: `out[i] = query · rows[i*d..(i+1)*d]`. Extra values in `rows` are ignored; if
/// `rows` is short, only the rows it holds are scored.
pub fn dot_rows(isa: Isa, query: &[f32], rows: &[f32], out: &mut [f32]) {
    let d = query.len();
    if d == 0 {
        out.fill(0.0);
        return;
    }
    let n = out.len().min(rows.len() / d);
    let (rows, out) = (&rows[..n * d], &mut out[..n]);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if Isa::hardware() >= Isa::Avx512 => {
            // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked by `hardware`).
            unsafe { x86::dot_rows_avx512(query, rows, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::hardware() >= Isa::Avx2 => {
            // SAFETY: the CPU supports AVX2 and FMA (checked by `hardware`).
            unsafe { x86::dot_rows_avx2(query, rows, out) }
        }
        _ => dot_rows_portable(query, rows, out),
    }
}

fn dot_rows_portable(query: &[f32], rows: &[f32], out: &mut [f32]) {
    let d = query.len();
    for (row, o) in rows.chunks_exact(d).zip(out.iter_mut()) {
        *o = dot_portable(query, row);
    }
}

/// Eight independent accumulators so the compiler vectorizes the loop.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

/// Sums `values` with the widest loads the CPU has: the streaming-read baseline that
/// `tp benchmark` measures memory bandwidth with.
pub fn sum(isa: Isa, values: &[f32]) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::hardware() >= Isa::Avx2 => {
            // SAFETY: the CPU supports AVX2 (checked by `hardware`).
            unsafe { x86::sum_avx2(values) }
        }
        _ => {
            let mut acc = [0.0f32; 8];
            let mut chunks = values.chunks_exact(8);
            for c in &mut chunks {
                for j in 0..8 {
                    acc[j] += c[j];
                }
            }
            acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
        }
    }
}

/// Hamming distances of one code of `query.len()` 64-bit words against `out.len()` codes
/// stored one after the other in `codes`.
pub fn hamming_rows(isa: Isa, query: &[u64], codes: &[u64], out: &mut [u16]) {
    hamming_rows_hist(isa, query, codes, out, &mut [0]);
}

/// As [`hamming_rows`], also counting each distance into `hist` (`hist[d] += 1`; distances
/// past the end of `hist` count into its last slot; an empty `hist` counts nothing).
/// Counting while the distances are computed hides the counter updates behind the
/// popcounts.
pub fn hamming_rows_hist(
    isa: Isa,
    query: &[u64],
    codes: &[u64],
    out: &mut [u16],
    hist: &mut [u32],
) {
    let w = query.len();
    if w == 0 {
        out.fill(0);
        if let Some(first) = hist.first_mut() {
            *first += out.len() as u32;
        }
        return;
    }
    let hist = if hist.is_empty() { &mut [0][..] } else { hist };
    let n = out.len().min(codes.len() / w);
    let (codes, out) = (&codes[..n * w], &mut out[..n]);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::hardware() >= Isa::Avx2 => {
            // SAFETY: the CPU supports POPCNT (checked by `hardware`).
            unsafe { x86::hamming_hist_popcnt(query, codes, out, hist) }
        }
        _ => hamming_hist_portable(query, codes, out, hist),
    }
}

#[inline(always)]
fn hamming_hist_portable(query: &[u64], codes: &[u64], out: &mut [u16], hist: &mut [u32]) {
    hamming_hist_with(query, codes, out, hist, |_| {});
}

/// How far ahead of the row being scored the x86 Hamming loop asks for codes, in 64-bit
/// words (2 KiB: the hardware prefetcher stops at every 4 KiB page and the loop is short
/// per byte, so it otherwise waits at each page start).
const PREFETCH_WORDS: usize = 256;

/// The Hamming loop with a hook called with the address [`PREFETCH_WORDS`] ahead of each
/// row (a no-op on the portable path, a prefetch hint on x86-64; it never reads).
#[inline(always)]
fn hamming_hist_with(
    query: &[u64],
    codes: &[u64],
    out: &mut [u16],
    hist: &mut [u32],
    prefetch: impl Fn(*const u64),
) {
    let last = hist.len() - 1;
    macro_rules! fixed {
        ($($w:literal)*) => {
            match query.len() {
                $($w => {
                    let mut q = [0u64; $w];
                    q.copy_from_slice(query);
                    for (code, o) in codes.chunks_exact($w).zip(out.iter_mut()) {
                        prefetch(code.as_ptr().wrapping_add(PREFETCH_WORDS));
                        let mut d = 0u32;
                        for k in 0..$w {
                            d += (q[k] ^ code[k]).count_ones();
                        }
                        *o = d as u16;
                        hist[(d as usize).min(last)] += 1;
                    }
                })*
                // Other widths: a generic loop, then the counts.
                _ => {
                    hamming_any(query, codes, out);
                    for &d in out.iter() {
                        hist[usize::from(d).min(last)] += 1;
                    }
                }
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8 12 16)
}

#[inline(always)]
fn hamming_any(query: &[u64], codes: &[u64], out: &mut [u16]) {
    let w = query.len();
    for (code, o) in codes.chunks_exact(w).zip(out.iter_mut()) {
        let mut d = 0u32;
        for (a, b) in query.iter().zip(code) {
            d += (a ^ b).count_ones();
        }
        *o = d.min(u32::from(u16::MAX)) as u16;
    }
}

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
///
/// ```
/// use turboprop_index::kernel::{Isa, PlaneCounts};
///
/// // Three rows, two planes: rows 0 and 2 have bit 1 in plane 0, row 2 in plane 1.
/// let (p0, p1) = ([0b101u64], [0b100u64]);
/// // The query has bit 1 in plane 0 and bit 0 in plane 1.
/// let counts = PlaneCounts::new(Isa::detect(), &[&p0, &p1], &[!0, 0], 0, 3);
/// assert_eq!((0..3).map(|r| counts.count(r)).collect::<Vec<_>>(), [0, 1, 1]);
/// assert_eq!(counts.count_within(0), 1);
/// assert_eq!(counts.rows_within(1), [0, 1, 2]);
/// ```
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
    ///
    /// ```
    /// use turboprop_index::kernel::{Isa, PlaneCounts};
    ///
    /// // Row 0 differs from the query in plane 0 only, row 1 in plane 1 only.
    /// let (p0, p1) = ([0b01u64], [0b10u64]);
    /// let counts = PlaneCounts::weighted(Isa::detect(), &[&p0, &p1], &[0, 0], 1, 0, 2);
    /// assert_eq!((counts.count(0), counts.count(1)), (2, 1));
    /// ```
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

/// Asks the CPU to bring every cache line of `data` closer, without waiting for them
/// (x86-64: prefetch hints; elsewhere nothing). It never reads into the program and never
/// faults: for loops over scattered rows, a few rows ahead.
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = data.as_ptr().cast::<i8>();
        let bytes = std::mem::size_of_val(data);
        let lines = (start as usize % 64 + bytes).div_ceil(64);
        for line in 0..lines {
            // SAFETY: SSE is part of x86-64; a prefetch is a hint that never faults, and
            // the address is only computed (wrapping), never dereferenced.
            #[allow(unused_unsafe)]
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(line * 64),
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Adds weighted columns of int8 codes into `acc`:
/// `acc[i] += Σ_k weights[k] * (columns[k][i] as i8)`, for `i` below the length of `acc`
/// and of every column (the shortest one bounds it). The bytes are two's-complement `i8`.
///
/// Columns are added four at a time (`(w0·c0 + w1·c1) + (w2·c2 + w3·c3)`, then one by one
/// for the rest), in plain f32 multiplies and adds on every instruction set, so every
/// version gives bit-identical sums. This is the scan of the int8 codes of sparse vectors:
/// a sparse query touches only the columns of its few non-zero dimensions.
///
/// ```
/// use turboprop_index::kernel::{add_columns_i8, Isa};
///
/// let a = [1u8, 2, 0xff]; // 1, 2, -1
/// let b = [0u8, 3, 4];
/// let mut acc = [0.5f32; 3];
/// add_columns_i8(Isa::detect(), &[2.0, 0.5], &[&a, &b], &mut acc);
/// assert_eq!(acc, [2.5, 6.0, 0.5]);
/// ```
pub fn add_columns_i8(isa: Isa, weights: &[f32], columns: &[&[u8]], acc: &mut [f32]) {
    let k = weights.len().min(columns.len());
    let n = columns[..k]
        .iter()
        .map(|c| c.len())
        .fold(acc.len(), usize::min);
    let acc = &mut acc[..n];
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::hardware() >= Isa::Avx2 => {
            // SAFETY: the CPU supports AVX2 (checked by `hardware`).
            unsafe { x86::add_columns_i8_avx2(&weights[..k], &columns[..k], acc) }
        }
        _ => add_columns_i8_portable(&weights[..k], &columns[..k], acc),
    }
}

/// The loop of [`add_columns_i8`]; `acc` is no longer than any column.
#[inline(always)]
fn add_columns_i8_portable(weights: &[f32], columns: &[&[u8]], acc: &mut [f32]) {
    let n = acc.len();
    let mut groups = weights.chunks_exact(4).zip(columns.chunks_exact(4));
    for (w, c) in &mut groups {
        let (c0, c1, c2, c3) = (&c[0][..n], &c[1][..n], &c[2][..n], &c[3][..n]);
        for i in 0..n {
            let a = w[0] * f32::from(c0[i] as i8) + w[1] * f32::from(c1[i] as i8);
            let b = w[2] * f32::from(c2[i] as i8) + w[3] * f32::from(c3[i] as i8);
            acc[i] += a + b;
        }
    }
    let rest = weights.len() - weights.len() % 4;
    for (w, c) in weights[rest..].iter().zip(&columns[rest..]) {
        let c = &c[..n];
        for i in 0..n {
            acc[i] += w * f32::from(c[i] as i8);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! x86-64 kernels. Callers check CPU support before calling.

    use std::arch::x86_64::*;

    /// Adds the eight lanes of `v`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum256(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps::<1>(v);
        let lo = _mm256_castps256_ps128(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// One row at a time, read front to back as a single stream (what hardware prefetchers
    /// follow best), with four independent 8-lane accumulators over 32 values per step;
    /// then 8 values per step, then a scalar tail.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot_rows_avx2(query: &[f32], rows: &[f32], out: &mut [f32]) {
        let d = query.len();
        let wide = d - d % 32;
        let narrow = d - d % 8;
        let q = query.as_ptr();
        for (row, o) in rows.chunks_exact(d).zip(out.iter_mut()) {
            let p = row.as_ptr();
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            while i < wide {
                for (k, a) in acc.iter_mut().enumerate() {
                    // SAFETY: i + 32 <= wide <= d: inside `query` and `row`.
                    *a = unsafe {
                        _mm256_fmadd_ps(
                            _mm256_loadu_ps(q.add(i + 8 * k)),
                            _mm256_loadu_ps(p.add(i + 8 * k)),
                            *a,
                        )
                    };
                }
                i += 32;
            }
            while i < narrow {
                // SAFETY: i + 8 <= narrow <= d.
                acc[0] = unsafe {
                    _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), _mm256_loadu_ps(p.add(i)), acc[0])
                };
                i += 8;
            }
            let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut total = hsum256(s);
            for j in narrow..d {
                total += query[j] * row[j];
            }
            *o = total;
        }
    }

    /// As the AVX2 kernel with 512-bit registers: four 16-lane accumulators over 64 values
    /// per step, then 16 per step, then a scalar tail.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn dot_rows_avx512(query: &[f32], rows: &[f32], out: &mut [f32]) {
        let d = query.len();
        let wide = d - d % 64;
        let narrow = d - d % 16;
        let q = query.as_ptr();
        for (row, o) in rows.chunks_exact(d).zip(out.iter_mut()) {
            let p = row.as_ptr();
            let mut acc = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            while i < wide {
                for (k, a) in acc.iter_mut().enumerate() {
                    // SAFETY: i + 64 <= wide <= d: inside `query` and `row`.
                    *a = unsafe {
                        _mm512_fmadd_ps(
                            _mm512_loadu_ps(q.add(i + 16 * k)),
                            _mm512_loadu_ps(p.add(i + 16 * k)),
                            *a,
                        )
                    };
                }
                i += 64;
            }
            while i < narrow {
                // SAFETY: i + 16 <= narrow <= d.
                acc[0] = unsafe {
                    _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i)), _mm512_loadu_ps(p.add(i)), acc[0])
                };
                i += 16;
            }
            let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
            let mut total = _mm512_reduce_add_ps(s);
            for j in narrow..d {
                total += query[j] * row[j];
            }
            *o = total;
        }
    }

    /// Streaming sum with four 256-bit accumulators.
    #[target_feature(enable = "avx2")]
    pub(super) fn sum_avx2(values: &[f32]) -> f32 {
        let body = values.len() - values.len() % 32;
        let p = values.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < body {
            for (k, a) in acc.iter_mut().enumerate() {
                // SAFETY: i + 32 <= body <= len.
                *a = _mm256_add_ps(*a, unsafe { _mm256_loadu_ps(p.add(i + 8 * k)) });
            }
            i += 32;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum256(s) + values[body..].iter().sum::<f32>()
    }

    /// The portable int8 column loop, compiled for AVX2 (8 rows per instruction).
    #[target_feature(enable = "avx2")]
    pub(super) fn add_columns_i8_avx2(weights: &[f32], columns: &[&[u8]], acc: &mut [f32]) {
        super::add_columns_i8_portable(weights, columns, acc)
    }

    /// A carry-save adder over four words at a time: (carries, sums) of `a`, `b` and `c`.
    #[inline(always)]
    fn csa256(a: __m256i, b: __m256i, c: __m256i) -> (__m256i, __m256i) {
        // SAFETY (of the intrinsics): only called from AVX2 functions.
        unsafe {
            let u = _mm256_xor_si256(a, b);
            let lo = _mm256_xor_si256(u, c);
            let hi = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
            (hi, lo)
        }
    }

    /// Adds one bit per row (`x`) into the bit-sliced counter `count` (lowest bit first).
    #[inline(always)]
    fn add_bits256(count: &mut [__m256i], mut x: __m256i) {
        // SAFETY (of the intrinsics): only called from AVX2 functions.
        unsafe {
            for level in count.iter_mut() {
                let carry = _mm256_and_si256(*level, x);
                *level = _mm256_xor_si256(*level, x);
                x = carry;
            }
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

    /// The portable loop with counting, compiled with the POPCNT instruction, asking for
    /// the codes 2 KiB ahead.
    #[target_feature(enable = "popcnt")]
    pub(super) fn hamming_hist_popcnt(
        query: &[u64],
        codes: &[u64],
        out: &mut [u16],
        hist: &mut [u32],
    ) {
        super::hamming_hist_with(query, codes, out, hist, |p| {
            // SAFETY: SSE is part of x86-64; a prefetch is a hint that never faults and
            // never reads into the program, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    proptest! {
        #[test]
        fn dot_rows_agree_with_naive_on_every_isa(
            d in 1usize..70,
            n in 0usize..11,
            seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut next = || {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            };
            let query: Vec<f32> = (0..d).map(|_| next()).collect();
            let rows: Vec<f32> = (0..n * d).map(|_| next()).collect();
            for isa in Isa::available() {
                let mut out = vec![f32::NAN; n];
                dot_rows(isa, &query, &rows, &mut out);
                for (i, got) in out.iter().enumerate() {
                    let want = naive_dot(&query, &rows[i * d..(i + 1) * d]);
                    prop_assert!((f64::from(*got) - want).abs() < 1e-4, "{isa:?} row {i}: {got} vs {want}");
                }
            }
        }

        #[test]
        fn hamming_rows_agree_with_naive_on_every_isa(
            w in 1usize..8,
            codes in prop::collection::vec(any::<u64>(), 0..64),
            query in prop::collection::vec(any::<u64>(), 8),
        ) {
            let query = &query[..w];
            let n = codes.len() / w;
            for isa in Isa::available() {
                let mut out = vec![u16::MAX; n];
                hamming_rows(isa, query, &codes, &mut out);
                for (i, got) in out.iter().enumerate() {
                    let want: u32 = query.iter().zip(&codes[i * w..(i + 1) * w]).map(|(a, b)| (a ^ b).count_ones()).sum();
                    prop_assert_eq!(u32::from(*got), want);
                }
                let mut with_hist = vec![u16::MAX; n];
                let mut hist = vec![0u32; 65];
                hamming_rows_hist(isa, query, &codes, &mut with_hist, &mut hist);
                prop_assert_eq!(&with_hist, &out);
                let mut want_hist = vec![0u32; 65];
                for d in &out {
                    want_hist[usize::from(*d).min(64)] += 1;
                }
                prop_assert_eq!(hist, want_hist);
            }
        }

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

        #[test]
        fn add_columns_i8_agree_with_naive_on_every_isa(
            k in 0usize..11,
            n in 0usize..70,
            bytes in prop::collection::vec(any::<u8>(), 770),
            weights in prop::collection::vec(-2.0f32..2.0, 11),
        ) {
            let columns: Vec<&[u8]> = (0..k).map(|c| &bytes[c * 70..c * 70 + n]).collect();
            let weights = &weights[..k];
            let mut first: Option<Vec<f32>> = None;
            for isa in Isa::available() {
                let mut acc = vec![1.0f32; n];
                add_columns_i8(isa, weights, &columns, &mut acc);
                for (i, got) in acc.iter().enumerate() {
                    let want: f64 = 1.0 + weights.iter().zip(&columns)
                        .map(|(w, c)| f64::from(*w) * f64::from(c[i] as i8))
                        .sum::<f64>();
                    prop_assert!((f64::from(*got) - want).abs() < 1e-3, "{isa:?} row {i}: {got} vs {want}");
                }
                // Bit-identical on every instruction set.
                match &first {
                    None => first = Some(acc),
                    Some(f) => prop_assert_eq!(f.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        acc.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
                }
            }
        }

        #[test]
        fn sum_agrees_with_naive(values in prop::collection::vec(-1.0f32..1.0, 0..200)) {
            let want: f64 = values.iter().map(|v| f64::from(*v)).sum();
            for isa in Isa::available() {
                prop_assert!((f64::from(sum(isa, &values)) - want).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn a_rows_score_does_not_depend_on_its_neighbours() {
        let d = 37;
        let query: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
        let rows: Vec<f32> = (0..7 * d).map(|i| (i as f32 * 0.11).cos()).collect();
        for isa in Isa::available() {
            let mut all = vec![0.0f32; 7];
            dot_rows(isa, &query, &rows, &mut all);
            for (r, want) in all.iter().enumerate() {
                let mut one = [0.0f32];
                dot_rows(isa, &query, &rows[r * d..(r + 1) * d], &mut one);
                assert_eq!(one[0].to_bits(), want.to_bits(), "{isa:?} row {r}");
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

    #[test]
    fn short_rows_and_empty_query_do_not_panic() {
        let mut out = [1.0f32; 3];
        dot_rows(Isa::detect(), &[], &[1.0, 2.0], &mut out);
        assert_eq!(out, [0.0; 3]);
        let mut out = [7.0f32; 3];
        // Only one full row of 2 values: the other outputs are left alone.
        dot_rows(Isa::detect(), &[1.0, 1.0], &[1.0, 2.0, 3.0], &mut out);
        assert_eq!(out, [3.0, 7.0, 7.0]);
    }
}
