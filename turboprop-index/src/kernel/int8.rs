//! Weighted sums of int8 code columns ([`add_columns_i8`]), the approximate scores of
//! sparse vectors: the portable loop, which the x86-64 half (in `x86`) compiles for AVX2.

use super::Isa;

#[cfg(target_arch = "x86_64")]
mod x86;

/// Adds weighted columns of int8 codes into `acc`:
/// `acc[i] += Σ_k weights[k] * (columns[k][i] as i8)`, for `i` below the length of `acc`
/// and of every column (the shortest one bounds it). The bytes are two's-complement `i8`.
///
/// Columns are added four at a time (`(w0·c0 + w1·c1) + (w2·c2 + w3·c3)`, then one by one
/// for the rest), in plain f32 multiplies and adds on every instruction set, so every
/// version gives bit-identical sums. This is the scan of the int8 codes of sparse vectors:
/// a sparse query touches only the columns of its few non-zero dimensions.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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
    }
}

/// The examples of the documentation above, run as tests (the module is not public API).
#[cfg(test)]
mod examples {
    use super::*;

    #[test]
    fn adding_two_weighted_columns() {
        use crate::kernel::Isa;

        let a = [1u8, 2, 0xff]; // 1, 2, -1
        let b = [0u8, 3, 4];
        let mut acc = [0.5f32; 3];
        add_columns_i8(Isa::detect(), &[2.0, 0.5], &[&a, &b], &mut acc);
        assert_eq!(acc, [2.5, 6.0, 0.5]);
    }
}
