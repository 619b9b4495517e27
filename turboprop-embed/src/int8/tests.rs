//! The int8 kernels against a naive oracle, on every kernel this CPU runs.

use proptest::prelude::*;

use super::*;

/// Packs `w` (n × k, row-major) and returns its parts.
fn pack(w: &[f32], n: usize, k: usize) -> (Vec<f32>, Vec<i32>, Vec<i8>) {
    let mut scales = vec![0f32; n];
    let mut sums = vec![0i32; n];
    let mut packed = vec![0i8; PackedWeights::packed_len(n, k)];
    quantize_weights(w, n, k, &mut scales, &mut sums, &mut packed);
    (scales, sums, packed)
}

/// The quantized value of weight (o, i), read back from the packed layout.
fn packed_at(packed: &[i8], k: usize, o: usize, i: usize) -> i8 {
    let kq = round_up(k, 4) / 4;
    packed[((o / 8) * kq + i / 4) * 32 + (o % 8) * 4 + i % 4]
}

/// `dst += x Wᵀ` the slow way: the same quantization, `i64` sums, the same final formula.
fn oracle(x: &[f32], rows: usize, w: &[f32], n: usize, k: usize, dst: &mut [f32], dst_rs: usize) {
    let (scales, _, packed) = pack(w, n, k);
    let kp = round_up(k, 4);
    let mut q = vec![0i8; rows * kp];
    let mut sx = vec![0f32; rows];
    quantize_rows(x, rows, k, &mut q, &mut sx, false);
    for r in 0..rows {
        for o in 0..n {
            let sum: i64 = (0..k)
                .map(|i| i64::from(q[r * kp + i]) * i64::from(packed_at(&packed, k, o, i)))
                .sum();
            let sum = i32::try_from(sum).expect("fits");
            dst[r * dst_rs + o] += sx[r] * scales[o] * sum as f32;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    isa: Int8Isa,
    x: &[f32],
    rows: usize,
    w: &[f32],
    n: usize,
    k: usize,
    dst_rs: usize,
    threads: Threads,
) -> Vec<f32> {
    let (scales, sums, packed) = pack(w, n, k);
    let pw = PackedWeights {
        n,
        k,
        scales: &scales,
        sums: &sums,
        packed: &packed,
    };
    let mut dst: Vec<f32> = (0..rows * dst_rs).map(|i| (i % 7) as f32).collect();
    let mut scratch = Scratch::default();
    matmul_int8(isa, x, rows, &pw, &mut dst, dst_rs, &mut scratch, threads);
    dst
}

/// Values with extremes: many at ±max of their row (which quantize to ±127), zeros, and
/// whole rows of zeros.
fn values(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![
            4 => -3.0f32..3.0,
            1 => Just(0.0f32),
            1 => Just(3.0f32),
            1 => Just(-3.0f32),
        ],
        len,
    )
}

fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>, bool)> {
    (1usize..23, 1usize..41, 1usize..70).prop_flat_map(|(rows, n, k)| {
        (
            Just(rows),
            Just(n),
            Just(k),
            values(rows * k),
            values(n * k),
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_kernel_gives_the_oracles_sums((rows, n, k, mut x, w, zero_row) in case()) {
        if zero_row {
            x[..k].fill(0.0);
        }
        let dst_rs = n + 3;
        let mut want: Vec<f32> = (0..rows * dst_rs).map(|i| (i % 7) as f32).collect();
        oracle(&x, rows, &w, n, k, &mut want, dst_rs);
        for isa in Int8Isa::available() {
            for threads in [Threads::One, Threads::Pool(2)] {
                let got = run(isa, &x, rows, &w, n, k, dst_rs, threads);
                prop_assert_eq!(&got, &want, "{} {:?}", isa.name(), threads);
            }
        }
    }
}

#[test]
fn the_largest_sums_are_exact_on_every_kernel() {
    // Every product 127 · 127 (and -127 · 127): the AVX2 pairs reach 32,258 and must not
    // saturate; the VNNI offset must cancel exactly.
    let (rows, n, k) = (5, 19, 1536);
    for sign in [1.0f32, -1.0] {
        let x = vec![sign; rows * k];
        let w: Vec<f32> = (0..n * k)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let mut want = vec![0f32; rows * n];
        oracle(&x, rows, &w, n, k, &mut want, n);
        for isa in Int8Isa::available() {
            let (scales, sums, packed) = pack(&w, n, k);
            let pw = PackedWeights {
                n,
                k,
                scales: &scales,
                sums: &sums,
                packed: &packed,
            };
            let mut got = vec![0f32; rows * n];
            matmul_int8(
                isa,
                &x,
                rows,
                &pw,
                &mut got,
                n,
                &mut Scratch::default(),
                Threads::One,
            );
            assert_eq!(got, want, "{}", isa.name());
        }
    }
}

#[test]
fn int8_products_stay_close_to_the_f32_products() {
    // Smooth random data: the quantization error of a 384-long dot product is a small
    // fraction of the product's scale.
    let (rows, n, k) = (8, 32, 384);
    let mut seed = 7u32;
    let mut next = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let x: Vec<f32> = (0..rows * k).map(|_| next()).collect();
    let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
    let got = run(Int8Isa::detect(), &x, rows, &w, n, k, n, Threads::One);
    let mut worst = 0f32;
    for r in 0..rows {
        for o in 0..n {
            let exact: f32 = (0..k).map(|i| x[r * k + i] * w[o * k + i]).sum();
            let start = ((r * n + o) % 7) as f32;
            worst = worst.max((got[r * n + o] - start - exact).abs());
        }
    }
    // |x|, |w| ≤ 0.5: a dot product's scale is ~ sqrt(384) · 0.083 ≈ 1.6; the error of 8-bit
    // operands, ~1.6 / 127 · sqrt(2 / 12) per product sum, stays under 4% of it.
    assert!(worst < 0.06, "largest error {worst}");
}
