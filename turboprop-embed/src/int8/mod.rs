//! The int8 matrix products of the encoder: per-channel int8 weights, activations quantized
//! per row as they come, exact `i32` sums, one `f32` scale product at the end.
//!
//! # Scheme
//!
//! - **Weights**: each output channel `o` of a linear layer (a row of the stored (out, in)
//!   matrix) is scaled by `sw[o] = max|W[o]| / 127` and rounded to `[-127, 127]`.
//! - **Activations**: each row `r` of the input is scaled the same way, `sx[r] = max|x[r]| /
//!   127`, when the product runs (a row of zeros has scale 0 and quantizes to zeros).
//! - **Product**: `dst[r][o] += sx[r] · sw[o] · Σₖ xq[r][k] · wq[o][k]`, the sum in `i32`,
//!   exact on every path (at most 127 · 127 · k < 2³¹ for k < 133,000).
//!
//! # Layout
//!
//! Weights are packed for the kernels once (see [`PackedWeights`]): columns in blocks of 8,
//! and within a block, for each group of 4 consecutive inputs, the 8 columns' 4 bytes side
//! by side (32 bytes, one 256-bit register). `k` is padded to a multiple of 4 and the
//! columns to a multiple of [`COLS`] with zeros.
//!
//! # Kernels
//!
//! Chosen once at run time ([`Int8Isa::detect`]):
//! - **VNNI** (`vpdpbusd` on 256-bit registers, from AVX-512 VNNI + VL or AVX-VNNI): 32
//!   multiply-adds per instruction. `vpdpbusd` multiplies unsigned by signed bytes, so the
//!   activations go in offset by 128 (`xq + 128`, in `[1, 255]`) and `128 · Σₖ wq[o][k]`,
//!   kept per column, is subtracted at the end.
//! - **AVX2** (`vpmaddubsw` + `vpmaddwd`): `vpmaddubsw` adds pairs of unsigned × signed
//!   products into `i16` with saturation, which would not be exact for full-range bytes; with
//!   `|xq|` as the unsigned operand and `wq` given `xq`'s sign (`vpsignb`), each pair is at
//!   most 2 · 127 · 127 = 32,258 < 32,767: exact.
//! - **Portable**: plain loops the compiler vectorizes.
//!
//! All three give bit-identical sums (tested against a naive oracle with proptest), so the
//! vectors an index holds do not depend on the CPU that made them.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::kernels::Threads;

/// Columns per kernel call: two blocks of 8.
pub(crate) const COLS: usize = 16;
/// Rows per kernel call.
pub(crate) const ROWS: usize = 8;

/// Which int8 kernel runs.
///
/// ```
/// use turboprop_embed::Int8Isa;
///
/// let all = Int8Isa::available();
/// assert_eq!(all[0], Int8Isa::Portable);
/// // The kernel in use is one this CPU runs (and `TURBOPROP_INT8_ISA` may cap it).
/// assert!(all.contains(&Int8Isa::detect()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Int8Isa {
    /// Plain Rust.
    Portable,
    /// AVX2 `vpmaddubsw` with the sign trick.
    Avx2,
    /// `vpdpbusd` on 256-bit registers (AVX-512 VNNI + VL, or AVX-VNNI).
    Vnni,
}

impl Int8Isa {
    /// Every kernel this CPU can run, portable first.
    pub fn available() -> Vec<Int8Isa> {
        #[allow(unused_mut)]
        let mut out = vec![Int8Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx2() {
                out.push(Int8Isa::Avx2);
            }
            if x86::has_vnni() {
                out.push(Int8Isa::Vnni);
            }
        }
        out
    }

    /// The fastest kernel of this CPU, detected once; `TURBOPROP_INT8_ISA=portable|avx2`
    /// caps it, for comparisons.
    pub fn detect() -> Int8Isa {
        static ISA: OnceLock<Int8Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Int8Isa::available()
                .into_iter()
                .max()
                .unwrap_or(Int8Isa::Portable);
            match std::env::var("TURBOPROP_INT8_ISA").as_deref() {
                Ok("portable") => Int8Isa::Portable,
                Ok("avx2") => best.min(Int8Isa::Avx2),
                _ => best,
            }
        })
    }

    /// Whether this kernel takes the activations offset by 128 (see the module docs).
    fn offsets(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self == Int8Isa::Vnni && x86::has_vnni() {
            return true;
        }
        false
    }

    /// A short name: `portable`, `avx2` or `vnni`.
    pub fn name(self) -> &'static str {
        match self {
            Int8Isa::Portable => "portable",
            Int8Isa::Avx2 => "avx2",
            Int8Isa::Vnni => "vnni",
        }
    }
}

/// Rounds `v` up to a multiple of `m`.
pub(crate) fn round_up(v: usize, m: usize) -> usize {
    v.div_ceil(m) * m
}

/// The quantized, packed weights of one linear layer (`n` outputs, `k` inputs), as the
/// kernels read them. The byte vectors may live in a cache file (see `cache.rs`); here they
/// are borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackedWeights<'a> {
    /// Outputs.
    pub n: usize,
    /// Inputs.
    pub k: usize,
    /// Per-column scales, `n` of them.
    pub scales: &'a [f32],
    /// Per-column sums of the quantized weights (for the VNNI offset), `n` of them.
    pub sums: &'a [i32],
    /// `round_up(n, COLS) · round_up(k, 4)` bytes in the packed layout.
    pub packed: &'a [i8],
}

impl PackedWeights<'_> {
    /// Bytes of the packed weights of an `n` × `k` layer.
    pub fn packed_len(n: usize, k: usize) -> usize {
        round_up(n, COLS) * round_up(k, 4)
    }

    /// Whether the slices have the lengths `n` and `k` imply.
    pub fn is_consistent(&self) -> bool {
        self.scales.len() == self.n
            && self.sums.len() == self.n
            && self.packed.len() == Self::packed_len(self.n, self.k)
    }
}

/// Quantizes the weights `w`, `n` rows (outputs) of `k` values (inputs), row-major as
/// safetensors stores them, into `scales` (n), `sums` (n) and `packed`
/// ([`PackedWeights::packed_len`] bytes), all of which the caller sized.
pub(crate) fn quantize_weights(
    w: &[f32],
    n: usize,
    k: usize,
    scales: &mut [f32],
    sums: &mut [i32],
    packed: &mut [i8],
) {
    let kq = round_up(k, 4) / 4;
    packed.fill(0);
    for (o, row) in w.chunks_exact(k).take(n).enumerate() {
        let (scale, inv) = scale_of(max_abs(row));
        scales[o] = scale;
        let (block, j) = (o / 8, o % 8);
        let mut sum = 0i32;
        for (i, &v) in row.iter().enumerate() {
            let q = quantize(v, inv);
            sum += i32::from(q);
            packed[(block * kq + i / 4) * 32 + j * 4 + i % 4] = q;
        }
        sums[o] = sum;
    }
}

/// `v · inv` rounded to the nearest integer (ties to even) in `[-127, 127]` (NaN to 0).
#[inline(always)]
fn quantize(v: f32, inv: f32) -> i8 {
    // Adding and taking away 1.5 · 2^23 rounds to the nearest integer (ties to even) for
    // |x| < 2^22, in two vectorizable instructions; the clamp is applied first, so that
    // bound always holds. `as` maps NaN to 0.
    const MAGIC: f32 = 12_582_912.0;
    let x = (v * inv).clamp(-127.0, 127.0);
    ((x + MAGIC) - MAGIC) as i8
}

/// The largest absolute value of `row`, in lanes the compiler keeps in one register.
#[inline(always)]
fn max_abs(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l = l.max(v.abs());
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |m, v| m.max(v.abs()));
    lanes.iter().fold(tail, |m, &l| m.max(l))
}

/// The scale of a row whose largest magnitude is `max`, and its inverse (0 for a row of
/// zeros, or one that is not finite).
#[inline(always)]
fn scale_of(max: f32) -> (f32, f32) {
    if max > 0.0 && max.is_finite() {
        (max / 127.0, 127.0 / max)
    } else {
        (0.0, 0.0)
    }
}

/// Quantizes `rows` rows of `x` (`k` values each) into `q` (`rows` × `round_up(k, 4)`,
/// zero-padded) and their scales into `scales`.
///
/// With `offset`, each value is stored plus 128 (as the bits of an unsigned byte, for the
/// VNNI kernel); the padding too, so it stays a zero after the offset is taken away.
pub(crate) fn quantize_rows(
    x: &[f32],
    rows: usize,
    k: usize,
    q: &mut [i8],
    scales: &mut [f32],
    offset: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx2() {
        // SAFETY: the CPU has AVX2.
        return unsafe { x86::quantize_rows_avx2(x, rows, k, q, scales, offset) };
    }
    quantize_rows_generic(x, rows, k, q, scales, offset);
}

#[inline(always)]
fn quantize_rows_generic(
    x: &[f32],
    rows: usize,
    k: usize,
    q: &mut [i8],
    scales: &mut [f32],
    offset: bool,
) {
    let flip = if offset { -128i8 } else { 0 };
    let kp = round_up(k, 4);
    for ((row, out), s) in x
        .chunks_exact(k)
        .zip(q.chunks_exact_mut(kp))
        .zip(scales.iter_mut())
        .take(rows)
    {
        let (scale, inv) = scale_of(max_abs(row));
        *s = scale;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = quantize(v, inv) ^ flip;
        }
        out[k..].fill(flip);
    }
}

/// Buffers of the quantized activations, reused between products.
#[derive(Default)]
pub(crate) struct Scratch {
    q: Vec<i8>,
    scales: Vec<f32>,
}

/// `dst[r][o] += x[r] · W[o]` for `rows` rows of `x` (`w.k` values each), through the int8
/// kernel `isa`; `dst`'s rows are `dst_rs` apart.
///
/// # Panics
/// When a slice is too short for its shape (shapes come from the checked config: a bug, not
/// bad input).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_int8(
    isa: Int8Isa,
    x: &[f32],
    rows: usize,
    w: &PackedWeights<'_>,
    dst: &mut [f32],
    dst_rs: usize,
    scratch: &mut Scratch,
    threads: Threads,
) {
    let (n, k) = (w.n, w.k);
    assert!(
        w.is_consistent()
            && x.len() >= rows * k
            && n <= dst_rs
            && (rows == 0 || dst.len() >= (rows - 1) * dst_rs + n),
        "int8 matmul shapes: {rows}x{k} · {k}x{n}"
    );
    if rows == 0 || n == 0 {
        return;
    }
    let kp = round_up(k, 4);
    scratch.q.resize(rows * kp, 0);
    scratch.scales.resize(rows, 0.0);
    let offset = isa.offsets();
    quantize_rows(x, rows, k, &mut scratch.q, &mut scratch.scales, offset);
    let (q, sx) = (&scratch.q[..rows * kp], &scratch.scales[..rows]);
    // Blocks of ROWS rows, each written by one kernel call per 16 columns.
    let run = |(block, out): (usize, &mut [f32])| {
        let r0 = block * ROWS;
        let nr = ROWS.min(rows - r0);
        let q = &q[r0 * kp..(r0 + nr) * kp];
        #[cfg(target_arch = "x86_64")]
        if x86::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { x86::rows_block_avx2(isa, q, nr, &sx[r0..r0 + nr], w, out, dst_rs) };
        }
        rows_block(isa, q, nr, &sx[r0..r0 + nr], w, out, dst_rs);
    };
    let chunk = ROWS * dst_rs;
    // Only whole rows: the last row may be shorter than `dst_rs`.
    let dst = &mut dst[..(rows - 1) * dst_rs + n];
    match threads {
        Threads::Pool(t) if t > 1 && rows >= 4 * ROWS => {
            dst.par_chunks_mut(chunk).enumerate().for_each(run);
        }
        _ => dst.chunks_mut(chunk).enumerate().for_each(run),
    }
}

/// Up to [`ROWS`] rows against every column block, then `dst += sx · sw · sum`.
#[inline(always)]
fn rows_block(
    isa: Int8Isa,
    q: &[i8],
    nr: usize,
    sx: &[f32],
    w: &PackedWeights<'_>,
    dst: &mut [f32],
    dst_rs: usize,
) {
    let kp = round_up(w.k, 4);
    let block_len = COLS * kp;
    let mut acc = [[0i32; COLS]; ROWS];
    for (cb, packed) in w.packed.chunks_exact(block_len).enumerate() {
        let c0 = cb * COLS;
        let cols = COLS.min(w.n - c0);
        match isa {
            #[cfg(target_arch = "x86_64")]
            Int8Isa::Vnni if x86::has_vnni() => {
                // SAFETY: the CPU has the features (checked above); `q` holds `nr` rows of
                // `kp` bytes and `packed` one block of COLS columns × `kp` bytes.
                unsafe { x86::block_vnni(q, nr, kp, packed, &mut acc) };
            }
            #[cfg(target_arch = "x86_64")]
            Int8Isa::Avx2 | Int8Isa::Vnni if x86::has_avx2() => {
                // SAFETY: as above, for AVX2.
                unsafe { x86::block_avx2(q, nr, kp, packed, &mut acc) };
            }
            _ => block_portable(q, nr, kp, packed, &mut acc),
        }
        // The block's scales and offset corrections, padded to COLS.
        let mut sw = [0f32; COLS];
        let mut corr = [0i32; COLS];
        sw[..cols].copy_from_slice(&w.scales[c0..c0 + cols]);
        if isa.offsets() {
            for (c, s) in corr.iter_mut().zip(&w.sums[c0..c0 + cols]) {
                *c = 128 * s;
            }
        }
        for (r, acc) in acc.iter().enumerate().take(nr) {
            let mut v = [0f32; COLS];
            for (((v, &a), &c), &s) in v.iter_mut().zip(acc).zip(&corr).zip(&sw) {
                *v = sx[r] * s * (a - c) as f32;
            }
            let out = &mut dst[r * dst_rs + c0..r * dst_rs + c0 + cols];
            for (o, v) in out.iter_mut().zip(v) {
                *o += v;
            }
        }
    }
}

/// The sums of `nr` rows of `q` against one block of [`COLS`] packed columns, in plain Rust.
fn block_portable(q: &[i8], nr: usize, kp: usize, packed: &[i8], acc: &mut [[i32; COLS]; ROWS]) {
    let kq = kp / 4;
    for (r, acc) in acc.iter_mut().enumerate().take(nr) {
        let row = &q[r * kp..(r + 1) * kp];
        for (half, cols) in acc.chunks_exact_mut(8).enumerate() {
            let block = &packed[half * kq * 32..(half + 1) * kq * 32];
            let mut sums = [0i32; 8];
            for (g, four) in row.chunks_exact(4).enumerate() {
                let b = &block[g * 32..(g + 1) * 32];
                for (j, s) in sums.iter_mut().enumerate() {
                    for t in 0..4 {
                        *s += i32::from(four[t]) * i32::from(b[j * 4 + t]);
                    }
                }
            }
            cols.copy_from_slice(&sums);
        }
    }
}

#[cfg(test)]
mod tests;
