//! Kernel, search, open and commit benchmarks on synthetic, embedding-like vectors (points
//! near a low-dimensional latent space plus noise, normalized: `turboprop_index::LatentSpace`),
//! built through the real writer; and search on the built-in lexical embedder's sparse
//! vectors of synthetic text (int8 codes).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use turboprop::embed::BuiltinEmbedder;
use turboprop::index::internals::{add_columns_i8, dot_rows, hamming_rows_hist, sum, PlaneCounts};
use turboprop::index::{
    FileFilter, Index, IndexSpec, IndexWriter, LockWait, ModelGuard, NewChunk, SearchOptions,
    Strategy, WriterOptions,
};
use turboprop::index::{Isa, LatentSpace};
use turboprop::types::{ChunkingConfig, ContentHash, Embedder, FileRecord};

const DIMS: usize = 384;
const ROWS_PER_FILE: usize = 50;

/// Embedding-like vectors: the same generator `tp benchmark` uses.
fn space() -> LatentSpace {
    LatentSpace::new(DIMS, 42)
}

fn vectors(space: &LatentSpace, first: usize, n: usize) -> Vec<Vec<f32>> {
    (first..first + n).map(|i| space.vector(i as u64)).collect()
}

fn spec() -> IndexSpec {
    IndexSpec {
        lexical: None,
        model: ModelGuard {
            id: "bench".into(),
            dimensions: DIMS as u32,
        },
        chunking: ChunkingConfig::default(),
        spaces: Vec::new(),
    }
}

fn put(w: &mut IndexWriter, f: usize, vs: Vec<Vec<f32>>) {
    let record = FileRecord::new(
        format!("src/f{f:06}.rs"),
        1,
        1,
        ContentHash::of(&f.to_le_bytes()),
    )
    .expect("valid record");
    let chunks = vs
        .into_iter()
        .enumerate()
        .map(|(i, vector)| NewChunk {
            lexical: None,
            line_start: i as u32 * 30 + 1,
            line_end: i as u32 * 30 + 40,
            byte_start: 0,
            byte_end: 1,
            hash: ContentHash::of(&i.to_le_bytes()),
            vector,
            terms: Vec::new(),
            spaces: Vec::new(),
            symbol: None,
            kind: None,
        })
        .collect();
    w.put_file(record, chunks).expect("put");
}

/// A commit of a one-file change (50 chunks) into a 100k-chunk index, beside a full rewrite of
/// the same index; prints the bytes each writes.
fn commit(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    build(&path, 100_000);
    let space = LatentSpace::new(DIMS, 7);
    let all: Vec<Vec<Vec<f32>>> = (0..100_000 / ROWS_PER_FILE)
        .map(|f| vectors(&space, f * ROWS_PER_FILE, ROWS_PER_FILE))
        .collect();
    let one_file = |w: &mut IndexWriter, f: usize| put(w, f, all[f].clone());
    let opts = |rebuild| WriterOptions {
        wait: LockWait::NoWait,
        rebuild,
        ..WriterOptions::default()
    };

    let mut w = IndexWriter::open(&path, spec(), opts(false), || {}).expect("writer");
    one_file(&mut w, 7);
    let s = w.commit().expect("commit");
    let mut w = IndexWriter::open(&path, spec(), opts(true), || {}).expect("writer");
    for (f, v) in all.iter().enumerate() {
        put(&mut w, f, v.clone());
    }
    let full = w.commit().expect("commit");
    eprintln!(
        "bytes written: one-file change {} ({} chunks), full rewrite {} ({} chunks)",
        s.bytes_written, s.chunks_written, full.bytes_written, full.chunks_written
    );

    let mut group = c.benchmark_group("commit_100k_d384");
    group.sample_size(10);
    let mut f = 0;
    group.bench_function("one_file_change", |b| {
        b.iter(|| {
            f = (f + 1) % all.len();
            let mut w = IndexWriter::open(&path, spec(), opts(false), || {}).expect("writer");
            one_file(&mut w, f);
            w.commit().expect("commit")
        })
    });
    group.bench_function("full_rewrite", |b| {
        b.iter(|| {
            let mut w = IndexWriter::open(&path, spec(), opts(true), || {}).expect("writer");
            for (f, v) in all.iter().enumerate() {
                put(&mut w, f, v.clone());
            }
            w.commit().expect("commit")
        })
    });
    group.finish();
}

fn build(path: &std::path::Path, rows: usize) -> Vec<Vec<f32>> {
    let space = space();
    let opts = WriterOptions {
        wait: LockWait::NoWait,
        rebuild: true,
        ..WriterOptions::default()
    };
    let mut w = IndexWriter::open(path, spec(), opts, || {}).expect("writer");
    for f in 0..rows / ROWS_PER_FILE {
        put(&mut w, f, vectors(&space, f * ROWS_PER_FILE, ROWS_PER_FILE));
    }
    w.commit().expect("commit");
    (0..16).map(|i| space.query(i)).collect()
}

/// Index sizes of the search benchmarks: `TURBOPROP_BENCH_ROWS=10000,100000,1000000` adds
/// the 1M-row index (1.5 GB of vectors, a minute to build).
fn bench_rows() -> Vec<usize> {
    std::env::var("TURBOPROP_BENCH_ROWS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000])
}

fn search(c: &mut Criterion) {
    let mut group = c.benchmark_group("search_top10_d384");
    group.sample_size(20);
    for rows in bench_rows() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("index");
        let queries = build(&path, rows);
        let index = Index::open(&path).expect("open");
        let rs = FileFilter::any().with_extensions(["rs"]);
        let half = FileFilter::any()
            .with_globs(["src/f0[0-4]*"])
            .expect("glob");
        let cases = [
            ("exact", None, Strategy::Exact),
            ("fast", None, Strategy::Fast),
            ("exact_ext", Some(&rs), Strategy::Exact),
            ("exact_glob", Some(&half), Strategy::Exact),
        ];
        for (name, filter, strategy) in cases {
            group.bench_with_input(BenchmarkId::new(name, rows), &rows, |b, _| {
                let mut q = 0;
                b.iter(|| {
                    q = (q + 1) % queries.len();
                    let opts = SearchOptions {
                        limit: 10,
                        filter,
                        strategy,
                        ..SearchOptions::default()
                    };
                    index.search(&queries[q], &opts).expect("search")
                });
            });
        }
    }
    group.finish();
}

/// A word of the synthetic text: word `i` of a 20,000-word vocabulary, spelled in letters.
fn word(mut i: u64) -> String {
    let mut w = String::new();
    for _ in 0..4 {
        w.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
    }
    w
}

/// Search with the built-in lexical embedder (512 dimensions, sparse vectors, int8 codes on
/// the fast path): chunks of 80 words drawn from a skewed vocabulary, queries of three words
/// of one chunk, weighted by the index's term statistics.
fn search_lexical(c: &mut Criterion) {
    let mut group = c.benchmark_group("search_lexical_top10_d512");
    group.sample_size(20);
    let embedder = BuiltinEmbedder::new();
    let dims = embedder.dimensions();
    for rows in bench_rows() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Zipf-like: small word numbers are common.
        let mut pick = || word(20_000f64.powf((next() >> 11) as f64 / (1u64 << 53) as f64) as u64);
        let texts: Vec<String> = (0..rows)
            .map(|_| (0..80).map(|_| pick()).collect::<Vec<_>>().join(" "))
            .collect();
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("index");
        let spec = IndexSpec {
            lexical: None,
            model: ModelGuard {
                id: embedder.model_id().to_owned(),
                dimensions: dims as u32,
            },
            chunking: ChunkingConfig::default(),
            spaces: Vec::new(),
        };
        let opts = WriterOptions {
            wait: LockWait::NoWait,
            rebuild: true,
            ..WriterOptions::default()
        };
        let mut w = IndexWriter::open(&path, spec, opts, || {}).expect("writer");
        for (f, file) in texts.chunks(ROWS_PER_FILE).enumerate() {
            let refs: Vec<&str> = file.iter().map(String::as_str).collect();
            let vs = embedder.embed_documents(&refs).expect("embed");
            put(&mut w, f, vs);
        }
        w.commit().expect("commit");
        let index = Index::open(&path).expect("open");
        let queries: Vec<Vec<f32>> = (0..16)
            .map(|i| {
                let words: Vec<&str> = texts[(i * 7919) % rows].split(' ').take(3).collect();
                embedder
                    .embed_query(&words.join(" "), index.term_stats())
                    .expect("query")
            })
            .collect();
        for (name, strategy) in [("exact", Strategy::Exact), ("fast", Strategy::Fast)] {
            group.bench_with_input(BenchmarkId::new(name, rows), &rows, |b, _| {
                let mut q = 0;
                b.iter(|| {
                    q = (q + 1) % queries.len();
                    let opts = SearchOptions {
                        limit: 10,
                        strategy,
                        ..SearchOptions::default()
                    };
                    index.search(&queries[q], &opts).expect("search")
                });
            });
        }
    }
    group.finish();
}

/// The kernels on one thread, in cache (512 rows of 384 f32 = 768 KB) and streaming from
/// memory (64k rows = 96 MB), on every instruction set this CPU has, beside a plain
/// streaming sum of the same bytes.
fn kernels(c: &mut Criterion) {
    let space = space();
    let mut group = c.benchmark_group("kernel_d384");
    group.sample_size(20);
    let query = space.query(0);
    for rows in [512usize, 65_536] {
        let data: Vec<f32> = (0..rows).flat_map(|i| space.vector(i as u64)).collect();
        group.throughput(criterion::Throughput::Bytes((data.len() * 4) as u64));
        let mut out = vec![0.0f32; rows];
        for isa in Isa::available() {
            group.bench_function(
                BenchmarkId::new(format!("dot_rows_{}", isa.name()), rows),
                |b| b.iter(|| dot_rows(isa, &query, &data, &mut out)),
            );
        }
        group.bench_function(BenchmarkId::new("sum", rows), |b| {
            b.iter(|| sum(Isa::detect(), &data))
        });
        let words = DIMS / 64;
        let codes: Vec<u64> = (0..rows * words)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let mut dist = vec![0u16; rows];
        let mut hist = vec![0u32; DIMS + 1];
        group.throughput(criterion::Throughput::Elements(rows as u64));
        for isa in Isa::available() {
            group.bench_function(
                BenchmarkId::new(format!("hamming_hist_{}", isa.name()), rows),
                |b| {
                    b.iter(|| hamming_rows_hist(isa, &codes[..words], &codes, &mut dist, &mut hist))
                },
            );
        }
        // The bit planes of the same codes: the 96 (of 384) a search reads, the first 48
        // counted twice, then asked how many rows lie within a distance. Each plane is
        // 8 KiB here; they are laid 64 bytes further apart than that, as in a segment whose
        // row count is not a multiple of 32,768 (planes a multiple of 4 KiB apart share
        // the L1 cache's sets and run about 2.5x slower: see docs/format.md).
        let planes = turboprop::index::internals::bit_planes(&codes, rows, DIMS);
        let plane_words = rows.div_ceil(64);
        let stride = plane_words + 8;
        let mut spaced = vec![0u64; DIMS * stride];
        for (j, plane) in planes.chunks_exact(plane_words).enumerate() {
            spaced[j * stride..j * stride + plane_words].copy_from_slice(plane);
        }
        let chosen: Vec<&[u64]> = (0..96)
            .map(|t| &spaced[t * 4 * stride..t * 4 * stride + plane_words])
            .collect();
        let flips: Vec<u64> = (0..96u64).map(|t| 0u64.wrapping_sub(t & 1)).collect();
        for isa in Isa::available() {
            group.bench_function(
                BenchmarkId::new(format!("planes96_{}", isa.name()), rows),
                |b| {
                    b.iter(|| {
                        PlaneCounts::weighted(isa, &chosen, &flips, 48, 0, rows).count_within(45)
                    })
                },
            );
        }
        // 14 int8 columns (a lexical query's median count of non-zero dimensions).
        let bytes: Vec<u8> = (0..rows * 14)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as u8 >> 2)
            .collect();
        let columns: Vec<&[u8]> = bytes.chunks_exact(rows).collect();
        let weights: Vec<f32> = (0..14).map(|i| 0.1 + i as f32 * 0.01).collect();
        let mut acc = vec![0.0f32; rows];
        for isa in Isa::available() {
            group.bench_function(
                BenchmarkId::new(format!("int8_columns14_{}", isa.name()), rows),
                |b| b.iter(|| add_columns_i8(isa, &weights, &columns, &mut acc)),
            );
        }
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    build(&path, 100_000);
    c.bench_function("open_100k_d384", |b| {
        b.iter(|| Index::open(&path).expect("open"))
    });
}

criterion_group!(benches, kernels, search, search_lexical, open, commit);
criterion_main!(benches);
