//! The x86-64 int8 kernels: one call computes the `i32` sums of up to [`ROWS`] rows of
//! quantized activations against one block of [`COLS`] packed columns (two registers of 8
//! columns × 4 inputs), over all of `k`, with 8 accumulators in registers.

use std::arch::x86_64::*;

use super::{COLS, ROWS};

/// Whether the CPU runs [`block_avx2`].
pub(super) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Whether the CPU runs [`block_vnni`] (256-bit `vpdpbusd`, from AVX-512 VNNI with VL).
pub(super) fn has_vnni() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("avx512vl")
}

/// Loads 4 bytes of `q` at `at` as one `i32`, broadcast to every lane.
///
/// # Safety
/// `at + 4 <= q.len()`, and the CPU has AVX2.
#[inline(always)]
unsafe fn broadcast4(q: &[i8], at: usize) -> __m256i {
    debug_assert!(at + 4 <= q.len());
    // SAFETY: in bounds (the caller's contract); an unaligned read of 4 bytes.
    // SAFETY: the CPU has AVX2 (the caller's contract).
    unsafe {
        let word = std::ptr::read_unaligned(q.as_ptr().add(at).cast::<i32>());
        _mm256_set1_epi32(word)
    }
}

/// Loads the 32 bytes of `packed` at `at`.
///
/// # Safety
/// `at + 32 <= packed.len()`, and the CPU has AVX2.
#[inline(always)]
unsafe fn load32(packed: &[i8], at: usize) -> __m256i {
    debug_assert!(at + 32 <= packed.len());
    // SAFETY: in bounds (the caller's contract); an unaligned 32-byte load.
    unsafe { _mm256_loadu_si256(packed.as_ptr().add(at).cast::<__m256i>()) }
}

/// Writes the 8 lanes of `v` into `out`.
#[inline(always)]
fn store8(v: __m256i, out: &mut [i32]) {
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 writable bytes; an unaligned store.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), v) };
    out[..8].copy_from_slice(&lanes);
}

/// Checks the shapes every kernel relies on (cheap, once per call).
fn check(q: &[i8], nr: usize, kp: usize, packed: &[i8]) {
    assert!(
        nr <= ROWS && kp.is_multiple_of(4) && q.len() >= nr * kp && packed.len() >= COLS * kp,
        "int8 block shapes"
    );
}

/// The sums of `nr` rows of `q` (`kp` bytes each) against the 16 columns of `packed`, with
/// `vpmaddubsw` on `|xq|` and the weights given `xq`'s sign, widened by `vpmaddwd`.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn block_avx2(
    q: &[i8],
    nr: usize,
    kp: usize,
    packed: &[i8],
    acc: &mut [[i32; COLS]; ROWS],
) {
    check(q, nr, kp, packed);
    // Four rows at a time: 8 accumulators, the two weight registers and four temporaries
    // fit AVX2's 16 registers.
    let mut r0 = 0;
    while r0 < nr {
        let q = &q[r0 * kp..];
        let acc = &mut acc[r0..];
        // SAFETY: shapes checked above; the CPU has AVX2 (this function's contract).
        match nr - r0 {
            1 => unsafe { avx2_rows::<1>(q, kp, packed, acc) },
            2 => unsafe { avx2_rows::<2>(q, kp, packed, acc) },
            3 => unsafe { avx2_rows::<3>(q, kp, packed, acc) },
            _ => unsafe { avx2_rows::<4>(q, kp, packed, acc) },
        }
        r0 += 4;
    }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_rows<const R: usize>(q: &[i8], kp: usize, packed: &[i8], acc: &mut [[i32; COLS]]) {
    let kq = kp / 4;
    let second = kq * 32;
    let ones = _mm256_set1_epi16(1);
    let mut a0 = [_mm256_setzero_si256(); R];
    let mut a1 = [_mm256_setzero_si256(); R];
    for g in 0..kq {
        // SAFETY (all loads below): `check` made packed ≥ 2 · kq · 32 bytes and q ≥ R · kp.
        let b0 = unsafe { load32(packed, g * 32) };
        let b1 = unsafe { load32(packed, second + g * 32) };
        for r in 0..R {
            let x = unsafe { broadcast4(q, r * kp + g * 4) };
            let ux = _mm256_abs_epi8(x);
            let p0 = _mm256_maddubs_epi16(ux, _mm256_sign_epi8(b0, x));
            let p1 = _mm256_maddubs_epi16(ux, _mm256_sign_epi8(b1, x));
            a0[r] = _mm256_add_epi32(a0[r], _mm256_madd_epi16(p0, ones));
            a1[r] = _mm256_add_epi32(a1[r], _mm256_madd_epi16(p1, ones));
        }
    }
    for r in 0..R {
        store8(a0[r], &mut acc[r][..8]);
        store8(a1[r], &mut acc[r][8..]);
    }
}

/// The sums of `nr` rows of `q` against the 16 columns of `packed` with `vpdpbusd`, up to 8
/// rows at once (16 accumulators: AVX-512 VL gives 32 registers). The activations come
/// offset by 128 to be unsigned: every sum is too large by `128 · Σₖ wq[o][k]`, which the
/// caller subtracts.
///
/// # Safety
/// The CPU has AVX2, AVX-512 VNNI and AVX-512 VL.
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub(super) unsafe fn block_vnni(
    q: &[i8],
    nr: usize,
    kp: usize,
    packed: &[i8],
    acc: &mut [[i32; COLS]; ROWS],
) {
    check(q, nr, kp, packed);
    // SAFETY: shapes checked above; the CPU has the features (this function's contract).
    match nr {
        1 => unsafe { vnni_rows::<1>(q, kp, packed, acc) },
        2 => unsafe { vnni_rows::<2>(q, kp, packed, acc) },
        3 => unsafe { vnni_rows::<3>(q, kp, packed, acc) },
        4 => unsafe { vnni_rows::<4>(q, kp, packed, acc) },
        5 => unsafe { vnni_rows::<5>(q, kp, packed, acc) },
        6 => unsafe { vnni_rows::<6>(q, kp, packed, acc) },
        7 => unsafe { vnni_rows::<7>(q, kp, packed, acc) },
        _ => unsafe { vnni_rows::<8>(q, kp, packed, acc) },
    }
}

#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
unsafe fn vnni_rows<const R: usize>(
    q: &[i8],
    kp: usize,
    packed: &[i8],
    acc: &mut [[i32; COLS]; ROWS],
) {
    let kq = kp / 4;
    let second = kq * 32;
    let mut a0 = [_mm256_setzero_si256(); R];
    let mut a1 = [_mm256_setzero_si256(); R];
    for g in 0..kq {
        // SAFETY (all loads below): `check` made packed ≥ 2 · kq · 32 bytes and q ≥ R · kp.
        let b0 = unsafe { load32(packed, g * 32) };
        let b1 = unsafe { load32(packed, second + g * 32) };
        for r in 0..R {
            // Already stored as xq + 128 (see `quantize_rows`).
            let x = unsafe { broadcast4(q, r * kp + g * 4) };
            a0[r] = _mm256_dpbusd_epi32(a0[r], x, b0);
            a1[r] = _mm256_dpbusd_epi32(a1[r], x, b1);
        }
    }
    for r in 0..R {
        store8(a0[r], &mut acc[r][..8]);
        store8(a1[r], &mut acc[r][8..]);
    }
}

/// [`super::quantize_rows`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_rows_avx2(
    x: &[f32],
    rows: usize,
    k: usize,
    q: &mut [i8],
    scales: &mut [f32],
    offset: bool,
) {
    super::quantize_rows_generic(x, rows, k, q, scales, offset)
}

/// [`super::rows_block`] compiled for AVX2 + FMA (its epilogue vectorizes 8 wide).
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn rows_block_avx2(
    isa: super::Int8Isa,
    q: &[i8],
    nr: usize,
    sx: &[f32],
    w: &super::PackedWeights<'_>,
    dst: &mut [f32],
    dst_rs: usize,
) {
    super::rows_block(isa, q, nr, sx, w, dst, dst_rs)
}
