//! The x86-64 half of [`hamming_rows_hist`](super::hamming_rows_hist): the portable loop
//! compiled with POPCNT, asking for the codes ahead. Callers check CPU support before calling.

use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};

/// The portable loop with counting, compiled with the POPCNT instruction, asking for
/// the codes 2 KiB ahead.
#[target_feature(enable = "popcnt")]
pub(super) fn hamming_hist_popcnt(query: &[u64], codes: &[u64], out: &mut [u16], hist: &mut [u32]) {
    super::hamming_hist_with(query, codes, out, hist, |p| {
        // SAFETY: SSE is part of x86-64; a prefetch is a hint that never faults and
        // never reads into the program, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    })
}
