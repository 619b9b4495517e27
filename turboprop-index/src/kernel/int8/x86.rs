//! The x86-64 half of [`add_columns_i8`](super::add_columns_i8): the portable loop compiled
//! for AVX2. Callers check CPU support before calling.

/// The portable int8 column loop, compiled for AVX2 (8 rows per instruction).
#[target_feature(enable = "avx2")]
pub(super) fn add_columns_i8_avx2(weights: &[f32], columns: &[&[u8]], acc: &mut [f32]) {
    super::add_columns_i8_portable(weights, columns, acc)
}
