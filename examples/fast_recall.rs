//! Recall and latency of the fast search path against exact search on a real index, for
//! queries read from a file (one a line), embedded with the index's built-in model:
//!
//! `cargo run --release --example fast_recall -- REPO/.turboprop/index QUERIES [LIMIT] [CANDIDATES...]`
//!
//! For each candidate count (0 = the default of the index's codes) it prints the mean
//! recall@LIMIT of the fast path (hits identified by file and first line) and the median
//! in-process search time of both paths.

use std::time::Instant;

use turboprop::embed::BuiltinEmbedder;
use turboprop::index::{Hit, Index, SearchOptions, Strategy};
use turboprop::types::Embedder;

fn key(h: &Hit) -> (String, u32) {
    (h.chunk.file().to_owned(), h.chunk.line_start())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [index, queries, rest @ ..] = args.as_slice() else {
        return Err("usage: fast_recall INDEX QUERIES [LIMIT] [CANDIDATES...]".into());
    };
    let limit: usize = rest.first().map_or(Ok(10), |s| s.parse())?;
    let mut counts: Vec<usize> = rest
        .iter()
        .skip(1)
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    if counts.is_empty() {
        counts.push(0);
    }
    let index = Index::open(index)?;
    let embedder = BuiltinEmbedder::from_model_id(&index.model().id)
        .ok_or("the index was not built with the built-in model")?;
    let rows = index.stats().chunks as usize;
    let queries: Vec<Vec<f32>> = std::fs::read_to_string(queries)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|q| embedder.embed_query(q, index.term_stats()))
        .collect::<Result<_, _>>()?;
    let nnz: Vec<f64> = queries
        .iter()
        .map(|q| q.iter().filter(|v| **v != 0.0).count() as f64)
        .collect();
    println!(
        "{} queries, median {} non-zero dimensions of {}; {rows} rows",
        queries.len(),
        median(nnz),
        index.dims()
    );
    let search = |q: &[f32], strategy, candidates| {
        let opts = SearchOptions {
            limit,
            strategy,
            candidates,
            ..SearchOptions::default()
        };
        let t = Instant::now();
        let hits = index.search(q, &opts)?;
        Ok::<_, turboprop::index::IndexError>((hits, t.elapsed().as_secs_f64() * 1e3))
    };
    let mut exact = Vec::new();
    let mut exact_ms = Vec::new();
    for q in &queries {
        let (hits, ms) = search(q, Strategy::Exact, 0)?;
        exact.push(hits);
        exact_ms.push(ms);
    }
    println!("exact: median {:.2} ms", median(exact_ms));
    for c in counts {
        let mut recall = 0.0;
        let mut worst = 1.0f64;
        let mut ms = Vec::new();
        for (q, want) in queries.iter().zip(&exact) {
            let (got, t) = search(q, Strategy::Fast, c)?;
            ms.push(t);
            let got: Vec<_> = got.iter().map(key).collect();
            let found = want.iter().filter(|h| got.contains(&key(h))).count();
            let r = if want.is_empty() {
                1.0
            } else {
                found as f64 / want.len() as f64
            };
            worst = worst.min(r);
            recall += r;
        }
        println!(
            "fast, {} candidates: recall@{limit} {:.4} (worst {:.2}), median {:.2} ms",
            if c == 0 {
                "default".to_owned()
            } else {
                c.to_string()
            },
            recall / queries.len() as f64,
            worst,
            median(ms)
        );
    }
    Ok(())
}
