//! Hamming distances of one 1-bit code against many codes, row by row, each optionally
//! counted into a histogram while it is computed: the portable loop, which the x86-64 half
//! (in `x86`) compiles with POPCNT and a prefetch hook.

use super::Isa;

#[cfg(target_arch = "x86_64")]
mod x86;

/// Hamming distances of one code of `query.len()` 64-bit words against `out.len()` codes
/// stored one after the other in `codes` (the tests' reference for the histogram's
/// distances).
#[cfg(test)]
pub fn hamming_rows(isa: Isa, query: &[u64], codes: &[u64], out: &mut [u16]) {
    hamming_rows_hist(isa, query, codes, out, &mut [0]);
}

/// Hamming distances of one code of `query.len()` 64-bit words against `out.len()` codes
/// stored one after the other in `codes`, each also counted into `hist` (`hist[d] += 1`; distances
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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
    }
}
