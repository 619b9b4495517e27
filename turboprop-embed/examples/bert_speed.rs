//! Embedding throughput of a BERT model folder on real code: chunks per CPU-second and per
//! wall-second, for the f32 and the int8 encoder side by side (alternated, three rounds
//! each, medians), with the cosine between their vectors.
//!
//! ```sh
//! cargo run --release -p turboprop-embed --example bert_speed -- MODEL_DIR [SOURCE_DIR] [CHUNKS] [MAX_TOKENS]
//! RAYON_NUM_THREADS=1 cargo run --release -p turboprop-embed --example bert_speed -- ...
//! ```
//! SOURCE_DIR (default: this crate's `src/`) is read for `.rs` files, cut into 40-line
//! windows; the first CHUNKS (default 128) are embedded, truncated at MAX_TOKENS (default
//! 256). The numbers in docs/performance.md use serde_json 1.0.154's `src/` from the cargo registry, so
//! they do not move when this crate's code does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use turboprop_embed::{BertEmbedder, BertOptions, Embedder, Int8Isa, Precision};

/// User + system CPU seconds of this process (Linux), from /proc/self/stat.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .ok_or("usage: bert_speed MODEL_DIR [SOURCE_DIR] [CHUNKS] [MAX_TOKENS]")?;
    let source = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let want: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let max_tokens: usize = args
        .get(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(turboprop_embed::DEFAULT_MAX_TOKENS);

    let mut files = Vec::new();
    rust_files(&source, &mut files);
    let mut chunks = Vec::new();
    'outer: for f in files {
        let text = std::fs::read_to_string(&f)?;
        let lines: Vec<&str> = text.lines().collect();
        let mut start = 0;
        while start < lines.len() {
            let end = (start + 40).min(lines.len());
            chunks.push(lines[start..end].join("\n"));
            if chunks.len() == want {
                break 'outer;
            }
            start += 30;
        }
    }
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();

    let load = |precision| -> Result<BertEmbedder, Box<dyn std::error::Error>> {
        let t = Instant::now();
        let options = BertOptions {
            max_tokens,
            precision,
            ..BertOptions::default()
        };
        let e = BertEmbedder::load(Path::new(model), "model", options)?;
        println!("load {precision:?}: {:.3}s", t.elapsed().as_secs_f64());
        Ok(e)
    };
    let encoders = [
        (Precision::F32, load(Precision::F32)?),
        (Precision::Int8, load(Precision::Int8)?),
    ];
    let e = &encoders[0].1;
    let tokens: usize = refs
        .iter()
        .map(|c| e.token_count(c))
        .sum::<Result<usize, _>>()?;
    println!(
        "{} chunks, {:.0} tokens on average (max {}), {} threads, int8 kernel {}",
        refs.len(),
        tokens as f64 / refs.len() as f64,
        e.options().max_tokens,
        rayon_threads(),
        Int8Isa::detect().name()
    );
    // Warm up (allocator, thread pool, page cache).
    for (_, e) in &encoders {
        e.embed_documents(&refs[..refs.len().min(8)])?;
    }
    let mut per_cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut per_wall: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut vectors: [Vec<Vec<f32>>; 2] = [Vec::new(), Vec::new()];
    for _round in 0..3 {
        for (i, (_, e)) in encoders.iter().enumerate() {
            let cpu0 = cpu_seconds();
            let t = Instant::now();
            let v = e.embed_documents(&refs)?;
            let wall = t.elapsed().as_secs_f64();
            let cpu = cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
            assert_eq!(v.len(), refs.len());
            per_wall[i].push(refs.len() as f64 / wall);
            if let Some(c) = cpu {
                per_cpu[i].push(refs.len() as f64 / c);
            }
            vectors[i] = v;
        }
    }
    for (i, (precision, _)) in encoders.iter().enumerate() {
        println!(
            "{precision:?}: {:.1} chunks/s, {:.1} chunks per CPU-second (medians of 3)",
            median(&mut per_wall[i]),
            median(&mut per_cpu[i])
        );
    }
    println!(
        "int8 / f32: {:.2}x chunks per CPU-second, {:.2}x chunks/s",
        median(&mut per_cpu[1]) / median(&mut per_cpu[0]),
        median(&mut per_wall[1]) / median(&mut per_wall[0])
    );
    let cosines: Vec<f32> = vectors[0]
        .iter()
        .zip(&vectors[1])
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum())
        .collect();
    println!(
        "cosine int8 vs f32: mean {:.5}, lowest {:.5}",
        cosines.iter().sum::<f32>() / cosines.len().max(1) as f32,
        cosines.iter().copied().fold(1f32, f32::min)
    );
    for (precision, e) in &encoders {
        let q = Instant::now();
        e.embed_query(
            "who wins when two players have the same cards",
            &turboprop_embed_nostats(),
        )?;
        println!(
            "query embedding {precision:?}: {:.1} ms",
            q.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Threads the embedder will use: rayon's default, or `RAYON_NUM_THREADS`.
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn turboprop_embed_nostats() -> impl turboprop_embed::TermStatistics {
    struct None_;
    impl turboprop_embed::TermStatistics for None_ {
        fn documents(&self) -> u64 {
            0
        }
        fn document_frequency(&self, _: turboprop_embed::TermId) -> u64 {
            0
        }
    }
    None_
}
