//! The x86-64 halves of [`dot_rows`](super::dot_rows) (AVX2+FMA and AVX-512F) and of
//! [`sum`](super::sum) (AVX2). Callers check CPU support before calling.

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
