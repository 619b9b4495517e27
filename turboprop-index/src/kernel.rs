//! The scoring kernels of search: dot products of one query against many rows of f32,
//! Hamming distances of one 1-bit code against many codes (row by row, or over chosen bit
//! planes, counted bit-sliced: [`PlaneCounts`]), and weighted sums of int8 code columns
//! (the approximate scores of sparse vectors). Each kernel has a portable
//! version and, on x86-64, versions for AVX2+FMA and AVX-512F chosen once at run time
//! ([`Isa::detect`]); every version computes the same thing (the f32 ones up to rounding
//! order, the Hamming ones exactly), which the tests check against naive oracles.
//!
//! Search is bound by memory bandwidth, not arithmetic: the f32 kernels read one row at a
//! time front to back (a single sequential stream per thread, which the hardware prefetchers
//! follow best; four rows interleaved measured ~40% slower) with four independent
//! accumulators so the fused multiply-adds never wait on each other. The Hamming loop does
//! so little per byte that it also asks for its codes 2 KiB ahead (x86-64), so it does not
//! stall at each 4 KiB page, where the hardware prefetcher stops.
//!
//! One file per kernel: [`dot_rows`], [`dot()`] and [`sum`] in `dot`; [`hamming_rows_hist`] and
//! [`hamming_rows_hist`] in `hamming`; [`PlaneCounts`] in `planes`; [`add_columns_i8`] in
//! `int8`. Each holds its portable loop, and its x86-64 half sits in its own `x86` child.
#![allow(unsafe_code)]

use std::sync::OnceLock;

mod dot;
mod hamming;
mod int8;
mod planes;

pub use dot::{dot, dot_rows, sum};
pub use hamming::hamming_rows_hist;
pub use int8::add_columns_i8;
pub use planes::{PlaneCounts, MAX_PLANES};

/// An instruction set a kernel can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust (auto-vectorized with the baseline target features).
    Portable,
    /// x86-64 AVX2 with FMA and POPCNT.
    Avx2,
    /// x86-64 AVX-512F (plus AVX2, FMA and POPCNT).
    Avx512,
}

impl Isa {
    /// The instruction set the kernels use (detected once, then cached): the best this CPU
    /// has, up to AVX2. The AVX-512 path is used only when `TURBOPROP_ISA=avx512` asks for it:
    /// on the one AVX-512 machine it was measured on besides ours it was slower than AVX2
    /// (see docs/performance.md), and a path is the default only where it was
    /// measured faster. `TURBOPROP_ISA=portable|avx2` caps it, for comparisons.
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            Isa::choose(
                Isa::hardware(),
                std::env::var("TURBOPROP_ISA").ok().as_deref(),
            )
        })
    }

    /// The instruction set used on a CPU whose best is `best`, with `TURBOPROP_ISA` set to
    /// `asked` (see [`Isa::detect`]).
    ///
    /// ```
    /// use turboprop_index::Isa;
    ///
    /// assert_eq!(Isa::choose(Isa::Avx512, None), Isa::Avx2);
    /// assert_eq!(Isa::choose(Isa::Avx512, Some("avx512")), Isa::Avx512);
    /// assert_eq!(Isa::choose(Isa::Avx2, Some("avx512")), Isa::Avx2);
    /// assert_eq!(Isa::choose(Isa::Avx512, Some("portable")), Isa::Portable);
    /// ```
    pub fn choose(best: Isa, asked: Option<&str>) -> Isa {
        match asked {
            Some("portable") => Isa::Portable,
            Some("avx512") => best,
            _ => best.min(Isa::Avx2),
        }
    }

    /// The best instruction set of this CPU, uncapped (what the kernels check before they
    /// use an instruction).
    fn hardware() -> Isa {
        static HW: OnceLock<Isa> = OnceLock::new();
        *HW.get_or_init(|| Isa::available().into_iter().max().unwrap_or(Isa::Portable))
    }

    /// Every instruction set this CPU can run, portable first.
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut isas = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("popcnt")
            {
                isas.push(Isa::Avx2);
                if is_x86_feature_detected!("avx512f") {
                    isas.push(Isa::Avx512);
                }
            }
        }
        isas
    }

    /// A short name: `portable`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Asks the CPU to bring every cache line of `data` closer, without waiting for them
/// (x86-64: prefetch hints; elsewhere nothing). It never reads into the program and never
/// faults: for loops over scattered rows, a few rows ahead.
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = data.as_ptr().cast::<i8>();
        let bytes = std::mem::size_of_val(data);
        let lines = (start as usize % 64 + bytes).div_ceil(64);
        for line in 0..lines {
            // SAFETY: SSE is part of x86-64; a prefetch is a hint that never faults, and
            // the address is only computed (wrapping), never dereferenced.
            #[allow(unused_unsafe)]
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(line * 64),
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// The examples of the documentation above, run as tests (the module is not public API).
#[cfg(test)]
mod examples {
    use super::*;

    #[test]
    fn dot_products_of_one_query_against_rows() {
        let query = [0.6f32, 0.8];
        let rows = [1.0f32, 0.0, 0.0, 1.0, 0.6, 0.8];
        let mut scores = [0.0f32; 3];
        dot_rows(Isa::detect(), &query, &rows, &mut scores);
        for (got, want) in scores.iter().zip([0.6, 0.8, 1.0]) {
            assert!((got - want).abs() < 1e-6);
        }
    }
}
