//! `tp benchmark`: builds a synthetic index in a temporary folder through the real writer and
//! reader, then measures, in one run on this machine: build time, size, open time, exact and
//! fast search latency, the fast path's recall against exact search, and the memory bandwidth
//! of a plain streaming read of the same vectors (the floor exact search is compared with).
//!
//! The vectors are embedding-like ([`LatentSpace`]): points near a low-dimensional latent
//! space with a shared offset and noise, normalized. Queries are fresh points of the same
//! distribution.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use turboprop_index::{
    fast_candidates, Hit, Index, IndexSpec, IndexWriter, Isa, LatentSpace, LockWait, ModelGuard,
    NewChunk, SearchOptions, Strategy, WriterOptions,
};
use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};

use crate::args::{BenchmarkArgs, OutputFormat};

/// What `tp benchmark --output json` prints.
#[derive(Debug, Serialize)]
struct Report {
    vectors: usize,
    dim: usize,
    queries: usize,
    limit: usize,
    files: usize,
    build_s: f64,
    bytes_on_disk: u64,
    open_ms: f64,
    exact_p50_ms: f64,
    exact_p95_ms: f64,
    fast_p50_ms: f64,
    fast_p95_ms: f64,
    recall_at_10: f64,
    fast_candidates: usize,
    bandwidth_gbps: f64,
    exact_vs_bandwidth: f64,
    isa: &'static str,
    threads: usize,
    latent_dims: usize,
    noise: f32,
}

/// Runs `tp benchmark`.
pub fn run(args: &BenchmarkArgs) -> Result<()> {
    if args.vectors == 0 || args.dim == 0 || args.queries == 0 || args.limit == 0 {
        bail!("--vectors, --dim, --queries and --limit must be at least 1");
    }
    if args.chunks_per_file == 0 {
        bail!("--chunks-per-file must be at least 1");
    }
    if args.dim > 65_535 {
        bail!("--dim {} is too large: use at most 65535", args.dim);
    }
    let bytes_needed = (args.vectors as u128) * (args.dim as u128) * 4;
    if bytes_needed > 1 << 40 {
        bail!(
            "--vectors {} × --dim {} is more than 1 TiB of vectors",
            args.vectors,
            args.dim
        );
    }
    let parent = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    let tmp = tempfile::Builder::new()
        .prefix("tp-benchmark-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a folder in {}", parent.display()))?;
    let path = tmp.path().join("index");
    let space = LatentSpace::new(args.dim, args.seed);
    let text = args.output == OutputFormat::Text;
    let say = |msg: &str| {
        if text {
            eprintln!("{msg}");
        }
    };

    // Generate first (not timed), one file at a time in parallel.
    say(&format!(
        "generating {} vectors of {} dimensions...",
        args.vectors, args.dim
    ));
    let files = args.vectors.div_ceil(args.chunks_per_file);
    let generated: Vec<(FileRecord, Vec<NewChunk>)> = (0..files)
        .into_par_iter()
        .map(|f| synthetic_file(&space, f, args.chunks_per_file, args.vectors))
        .collect::<Result<_>>()?;

    say("building the index...");
    let started = Instant::now();
    let spec = IndexSpec {
        lexical: None,
        model: ModelGuard {
            id: format!("synthetic-latent-d{}", args.dim),
            dimensions: args.dim as u32,
        },
        chunking: ChunkingConfig::default(),
        spaces: Vec::new(),
    };
    let options = WriterOptions {
        wait: LockWait::NoWait,
        rebuild: true,
        ..WriterOptions::default()
    };
    let mut writer = IndexWriter::open(&path, spec, options, || {})?;
    for (record, chunks) in generated {
        writer.put_file(record, chunks)?;
    }
    writer.commit()?;
    let build_s = started.elapsed().as_secs_f64();

    say("measuring...");
    let mut opens = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let index = Index::open(&path)?;
        opens.push(t.elapsed());
        drop(index);
    }
    let index = Index::open(&path)?;
    let bytes_on_disk = index.stats().bytes_on_disk;

    // Warm the page cache, then time plain streaming reads of the vectors: a few now and
    // one before each query below, so the bandwidth exact search is compared with is
    // that of the same minutes (on a shared machine it drifts within a run).
    let (vector_bytes, _) = index.stream_vectors()?;
    let stream = || -> Result<Duration> {
        let t = Instant::now();
        let (_, sum) = index.stream_vectors()?;
        std::hint::black_box(sum);
        Ok(t.elapsed())
    };
    let mut reads = Vec::new();
    for _ in 0..3 {
        reads.push(stream()?);
    }

    let queries: Vec<Vec<f32>> = (0..args.queries as u64).map(|i| space.query(i)).collect();
    let exact_opts = SearchOptions {
        limit: args.limit,
        strategy: Strategy::Exact,
        ..SearchOptions::default()
    };
    let fast_opts = SearchOptions {
        limit: args.limit,
        strategy: Strategy::Fast,
        ..SearchOptions::default()
    };
    // Warm-up (thread pool, page tables).
    for q in queries.iter().take(3) {
        index.search(q, &exact_opts)?;
        index.search(q, &fast_opts)?;
    }
    let mut exact_times = Vec::new();
    let mut fast_times = Vec::new();
    let (mut found, mut wanted) = (0usize, 0usize);
    for q in &queries {
        reads.push(stream()?);
        let (exact, t) = timed(|| index.search(q, &exact_opts))?;
        exact_times.push(t);
        let (fast, t) = timed(|| index.search(q, &fast_opts))?;
        fast_times.push(t);
        wanted += exact.len();
        found += exact.iter().filter(|h| contains(&fast, h)).count();
    }
    let exact_p50 = median(&mut exact_times);
    let read = median(&mut reads);
    let bandwidth_gbps = vector_bytes as f64 / read.as_secs_f64() / 1e9;
    let ideal_s = vector_bytes as f64 / (bandwidth_gbps * 1e9);
    let report = Report {
        vectors: args.vectors,
        dim: args.dim,
        queries: args.queries,
        limit: args.limit,
        files,
        build_s: round(build_s, 3),
        bytes_on_disk,
        open_ms: round(ms(median(&mut opens)), 3),
        exact_p50_ms: round(ms(exact_p50), 3),
        exact_p95_ms: round(ms(percentile(&mut exact_times, 0.95)), 3),
        fast_p50_ms: round(ms(median(&mut fast_times)), 3),
        fast_p95_ms: round(ms(percentile(&mut fast_times, 0.95)), 3),
        recall_at_10: round(
            if wanted == 0 {
                1.0
            } else {
                found as f64 / wanted as f64
            },
            4,
        ),
        fast_candidates: fast_candidates(args.limit, args.vectors),
        bandwidth_gbps: round(bandwidth_gbps, 2),
        exact_vs_bandwidth: round(exact_p50.as_secs_f64() / ideal_s, 3),
        isa: Isa::detect().name(),
        threads: rayon::current_num_threads(),
        latent_dims: space.latent(),
        noise: space.noise(),
    };
    drop(index);
    tmp.close()
        .with_context(|| format!("cannot remove the benchmark folder in {}", parent.display()))?;

    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        OutputFormat::Text => print_text(&report),
    }
    Ok(())
}

fn synthetic_file(
    space: &LatentSpace,
    f: usize,
    per_file: usize,
    total: usize,
) -> Result<(FileRecord, Vec<NewChunk>)> {
    let first = f * per_file;
    let rows = per_file.min(total - first);
    let record = FileRecord::new(
        format!("src/m{:03}/f{f:07}.rs", f % 997),
        (rows * 1000) as u64,
        0,
        ContentHash::of(&(f as u64).to_le_bytes()),
    )?;
    let chunks = (0..rows)
        .map(|i| NewChunk {
            lexical: None,
            line_start: (i * 30 + 1) as u32,
            line_end: (i * 30 + 40) as u32,
            byte_start: (i * 1000) as u64,
            byte_end: (i * 1000 + 1000) as u64,
            hash: ContentHash::of(&((first + i) as u64).to_le_bytes()),
            vector: space.vector((first + i) as u64),
            terms: Vec::new(),
            spaces: Vec::new(),
            symbol: None,
            kind: None,
        })
        .collect();
    Ok((record, chunks))
}

fn contains(hits: &[Hit], h: &Hit) -> bool {
    hits.iter().any(|x| x.chunk == h.chunk)
}

fn timed<T>(f: impl FnOnce() -> turboprop_index::Result<T>) -> Result<(T, Duration)> {
    let t = Instant::now();
    let out = f()?;
    Ok((out, t.elapsed()))
}

fn median(v: &mut [Duration]) -> Duration {
    percentile(v, 0.5)
}

/// The nearest-rank percentile.
fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

fn print_text(r: &Report) {
    println!(
        "{} vectors × {} dims in {} files ({}, {} threads)",
        r.vectors, r.dim, r.files, r.isa, r.threads
    );
    println!(
        "build        {:>9.2} s      {:.1} MB on disk",
        r.build_s,
        r.bytes_on_disk as f64 / 1e6
    );
    println!("open         {:>9.3} ms", r.open_ms);
    println!(
        "exact        {:>9.3} ms p50  {:>8.3} ms p95  ({:.2}× a streaming read at {:.1} GB/s)",
        r.exact_p50_ms, r.exact_p95_ms, r.exact_vs_bandwidth, r.bandwidth_gbps
    );
    println!(
        "fast         {:>9.3} ms p50  {:>8.3} ms p95  recall@{} {:.4} ({} candidates re-ranked)",
        r.fast_p50_ms, r.fast_p95_ms, r.limit, r.recall_at_10, r.fast_candidates
    );
}
