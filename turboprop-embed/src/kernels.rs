//! The numeric kernels of the BERT encoder, on plain `f32` slices: matrix products through
//! the `gemm` crate (the one candle uses; called directly so products read strided views of
//! the fused QKV buffer and write into reused buffers, with no copies or allocations), and
//! fused row operations (bias + layer norm, softmax, GELU) with branch-free polynomial `exp`
//! and `erf` that the compiler vectorizes.
//!
//! Every row operation is compiled twice: for the baseline target and for AVX2 + FMA, picked
//! once per call at run time.
#![allow(unsafe_code)]

/// How a matrix product may use threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// On the calling thread only (the caller runs batches in parallel).
    One,
    /// On rayon's pool, up to this many threads (one batch, such as a query, at a time).
    Pool(usize),
}

/// A read-only matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix with `cols` columns starting at `data[0]`.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// Whether element (rows - 1, cols - 1) is inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `c = scale · a · b` (or `c += scale · a · b` with `accumulate`), `a` m×k, `b` k×n, `c`
/// m×n row-major with row stride `c_rs`.
///
/// # Panics
/// When a view is too short for its shape: callers derive shapes from the checked config, so
/// that is a bug, not bad input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    b: View<'_>,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    scale: f32,
    threads: Threads,
) {
    assert!(
        a.fits(m, k) && b.fits(k, n) && View::rows(c, c_rs).fits(m, n) && n <= c_rs,
        "matmul shapes: {m}x{k} · {k}x{n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(c_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = match threads {
        Threads::Pool(t) if t > 1 => gemm::Parallelism::Rayon(t),
        _ => gemm::Parallelism::None,
    };
    // SAFETY: the asserts above keep every element gemm reads ((m-1, k-1) of `a`, (k-1, n-1)
    // of `b`) and writes ((m-1, n-1) of `c`) inside its slice, with non-negative strides;
    // `c` is borrowed mutably, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Runs `$body` compiled for AVX2 + FMA when the CPU has them, else for the baseline.
macro_rules! dispatch {
    ($name:ident, ($($arg:ident: $ty:ty),*), $body:block) => {
        pub(crate) fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `fast` is compiled for.
                    return unsafe { fast($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

dispatch!(fill_rows, (dst: &mut [f32], row: &[f32]), {
    for chunk in dst.chunks_exact_mut(row.len()) {
        chunk.copy_from_slice(row);
    }
});

dispatch!(add_rows, (dst: &mut [f32], src: &[f32], row: &[f32]), {
    // dst = src + row, row broadcast over every row of src.
    for (d, s) in dst.chunks_exact_mut(row.len()).zip(src.chunks_exact(row.len())) {
        for ((d, s), r) in d.iter_mut().zip(s).zip(row) {
            *d = s + r;
        }
    }
});

dispatch!(layer_norm_rows, (x: &mut [f32], w: &[f32], b: &[f32], eps: f32), {
    let h = w.len();
    for row in x.chunks_exact_mut(h) {
        let mean = sum(row) / h as f32;
        row.iter_mut().for_each(|v| *v -= mean);
        let var = sum_squares(row) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(w).zip(b) {
            *v = *v * inv * w + b;
        }
    }
});

dispatch!(softmax_rows, (x: &mut [f32], n: usize), {
    for row in x.chunks_exact_mut(n) {
        let max = max(row);
        row.iter_mut().for_each(|v| *v = exp(*v - max));
        let inv = 1.0 / sum(row);
        row.iter_mut().for_each(|v| *v *= inv);
    }
});

/// Lanes of the reductions below: independent partial results the compiler keeps in one
/// vector register (a plain `sum()` is sequential, since float addition does not associate).
const LANES: usize = 8;

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &v| if v > m { v } else { m })
}

dispatch!(gelu_erf, (x: &mut [f32]), {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
});

dispatch!(gelu_tanh, (x: &mut [f32]), {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    for v in x.iter_mut() {
        let y = C * (*v + 0.044_715 * *v * *v * *v);
        // tanh(y) = 1 - 2 / (exp(2y) + 1)
        let t = 1.0 - 2.0 / (exp(2.0 * y) + 1.0);
        *v = 0.5 * *v * (1.0 + t);
    }
});

dispatch!(relu, (x: &mut [f32]), {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
});

/// `e^x` to about 2 ulp for x in [-87, 88] (Cephes' polynomial), 0 below, large above;
/// branch-free so that loops over it vectorize.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from n's bits: the integer sits in t's low mantissa bits.
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    y * f32::from_bits(((k + 127) as u32) << 23)
}

/// The error function to within 5e-7 (a rational approximation, as in Eigen's `erf`).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    // Past ±4, erf is ±1 in f32.
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.9546e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    (x * p / q).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 from its Taylor series (enough terms for |x| <= 4.5).
    fn erf64(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_5e7_of_the_exact_value() {
        let mut worst = 0.0f64;
        for i in -45_000..=45_000 {
            let x = i as f64 / 10_000.0;
            let err = (f64::from(erf(x as f32)) - erf64(x)).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "worst erf error {worst}");
        assert!((erf(10.0) - 1.0).abs() < 5e-7 && erf(10.0) <= 1.0);
        assert!((erf(-10.0) + 1.0).abs() < 5e-7 && erf(-10.0) >= -1.0);
    }

    #[test]
    fn exp_is_within_3_ulp_and_saturates() {
        let mut worst = 0.0f64;
        for i in -8_700..=8_800 {
            let x = i as f32 / 100.0;
            let exact = f64::from(x).exp();
            let rel = ((f64::from(exp(x)) - exact) / exact).abs();
            worst = worst.max(rel);
        }
        assert!(
            worst < 3.0 * f64::from(f32::EPSILON),
            "worst rel error {worst}"
        );
        assert!(exp(-1000.0) < 1e-37);
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn activations_match_their_formulas() {
        // Within ±6, where the series behind erf64 is exact enough.
        let xs: Vec<f32> = (-1200..=1200).map(|i| i as f32 / 200.0).collect();
        let (mut erf_gelu, mut tanh_gelu, mut relu_) = (xs.clone(), xs.clone(), xs.clone());
        gelu_erf(&mut erf_gelu);
        gelu_tanh(&mut tanh_gelu);
        relu(&mut relu_);
        for (i, &x) in xs.iter().enumerate() {
            let x64 = f64::from(x);
            let exact = 0.5 * x64 * (1.0 + erf64(x64 / std::f64::consts::SQRT_2));
            assert!((f64::from(erf_gelu[i]) - exact).abs() < 4e-6, "gelu({x})");
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let exact = 0.5 * x64 * (1.0 + (c * (x64 + 0.044715 * x64.powi(3))).tanh());
            assert!(
                (f64::from(tanh_gelu[i]) - exact).abs() < 4e-6,
                "gelu_tanh({x})"
            );
            assert_eq!(relu_[i], x.max(0.0));
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let mut x = vec![1.0, 2.0, 3.0, -1e30, 0.0, 0.0, 0.0, 0.0];
        softmax_rows(&mut x, 4);
        for row in x.chunks(4) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(x[3] < 1e-30);
        assert!((x[2] / x[1] - std::f32::consts::E).abs() < 1e-5);
    }

    #[test]
    fn matmul_reads_strided_views_and_accumulates() {
        // a: 2x3, b: 3x2 stored transposed (column-major) to exercise strides.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]; // b = [[1,0],[0,1],[1,0]]
        let b = View {
            data: &bt,
            rs: 1,
            cs: 3,
        };
        let mut c = [10.0; 4];
        matmul(
            2,
            2,
            3,
            View::rows(&a, 3),
            b,
            &mut c,
            2,
            false,
            1.0,
            Threads::One,
        );
        assert_eq!(c, [4.0, 2.0, 10.0, 5.0]);
        matmul(
            2,
            2,
            3,
            View::rows(&a, 3),
            b,
            &mut c,
            2,
            true,
            1.0,
            Threads::Pool(2),
        );
        assert_eq!(c, [8.0, 4.0, 20.0, 10.0]);
    }
}
