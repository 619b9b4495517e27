//! Dot products of one f32 query against rows of f32 ([`dot_rows`], [`dot()`]) and the
//! streaming [`sum`] that `tp benchmark` measures memory bandwidth with: the portable loops,
//! and the choice between them and their x86-64 versions (in `x86`).

use super::Isa;

#[cfg(target_arch = "x86_64")]
mod x86;

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
