//! Probe: kernel throughput on a buffer larger than the caches, two threads.
use rayon::prelude::*;
use std::time::Instant;
use turboprop_index::kernel::{dot_rows, hamming_rows, sum, Isa};

fn main() {
    let d = 384;
    let n = 1_000_000;
    let data: Vec<f32> = (0..n * d).map(|i| ((i * 7919) % 1000) as f32 * 1e-3).collect();
    let codes: Vec<u64> = (0..n * 6).map(|i| (i as u64).wrapping_mul(0x9E3779B97F4A7C15)).collect();
    let q: Vec<f32> = (0..d).map(|i| (i as f32).sin()).collect();
    let qc = [1u64, 2, 3, 4, 5, 6];
    let isa = Isa::detect();
    let block = 4096;
    for rep in 0..5 {
        let t = Instant::now();
        let s: f32 = data.par_chunks(block * d).map(|c| sum(isa, c)).sum();
        let ts = t.elapsed();
        let t = Instant::now();
        let m: f32 = data
            .par_chunks(block * d)
            .map(|c| {
                let mut out = [0.0f32; 4096];
                let k = c.len() / d;
                dot_rows(isa, &q, c, &mut out[..k]);
                out[..k].iter().copied().fold(f32::MIN, f32::max)
            })
            .reduce(|| f32::MIN, f32::max);
        let td = t.elapsed();
        let t = Instant::now();
        let h: u32 = codes
            .par_chunks(block * 6)
            .map(|c| {
                let mut out = [0u16; 4096];
                let k = c.len() / 6;
                hamming_rows(isa, &qc, c, &mut out[..k]);
                out[..k].iter().map(|&x| x as u32).min().unwrap_or(0)
            })
            .min()
            .unwrap_or(0);
        let th = t.elapsed();
        println!(
            "rep {rep}: sum {:.1} ms ({:.1} GB/s)  dot_rows {:.1} ms ({:.2}x)  hamming {:.2} ms  [{s} {m} {h}]",
            ts.as_secs_f64() * 1e3,
            (n * d * 4) as f64 / ts.as_secs_f64() / 1e9,
            td.as_secs_f64() * 1e3,
            td.as_secs_f64() / ts.as_secs_f64(),
            th.as_secs_f64() * 1e3
        );
    }
}
