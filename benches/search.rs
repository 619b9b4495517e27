//! Search and commit benchmarks on synthetic, embedding-like vectors (points near a
//! low-dimensional latent space plus noise, normalized), built through the real writer.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use turboprop::index::{
    FileFilter, Index, IndexSpec, IndexWriter, LockWait, ModelGuard, NewChunk, SearchOptions,
    WriterOptions,
};
use turboprop::types::{ChunkingConfig, ContentHash, FileRecord};

const DIMS: usize = 384;
const LATENT: usize = 16;
const ROWS_PER_FILE: usize = 50;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Embedding-like vectors: a random mix of `LATENT` fixed directions plus a little noise.
fn vectors(n: usize, rng: &mut Rng, basis: &[Vec<f32>]) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let mut v = vec![0.0f32; DIMS];
            for b in basis {
                let w = rng.next();
                v.iter_mut().zip(b).for_each(|(x, y)| *x += w * y);
            }
            v.iter_mut().for_each(|x| *x += 0.05 * rng.next());
            normalize(&mut v);
            v
        })
        .collect()
}

fn spec() -> IndexSpec {
    IndexSpec {
        model: ModelGuard {
            id: "bench".into(),
            dimensions: DIMS as u32,
        },
        chunking: ChunkingConfig::default(),
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
            line_start: i as u32 * 30 + 1,
            line_end: i as u32 * 30 + 40,
            byte_start: 0,
            byte_end: 1,
            hash: ContentHash::of(&i.to_le_bytes()),
            vector,
            terms: Vec::new(),
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
    let mut rng = Rng(7);
    let basis: Vec<Vec<f32>> = (0..LATENT)
        .map(|_| (0..DIMS).map(|_| rng.next()).collect())
        .collect();
    let all: Vec<Vec<Vec<f32>>> = (0..100_000 / ROWS_PER_FILE)
        .map(|_| vectors(ROWS_PER_FILE, &mut rng, &basis))
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
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let basis: Vec<Vec<f32>> = (0..LATENT)
        .map(|_| (0..DIMS).map(|_| rng.next()).collect())
        .collect();
    let opts = WriterOptions {
        wait: LockWait::NoWait,
        rebuild: true,
        ..WriterOptions::default()
    };
    let mut w = IndexWriter::open(path, spec(), opts, || {}).expect("writer");
    for f in 0..rows / ROWS_PER_FILE {
        put(&mut w, f, vectors(ROWS_PER_FILE, &mut rng, &basis));
    }
    w.commit().expect("commit");
    vectors(16, &mut rng, &basis)
}

fn search(c: &mut Criterion) {
    let mut group = c.benchmark_group("search_top10_d384");
    group.sample_size(20);
    for rows in [10_000usize, 100_000] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("index");
        let queries = build(&path, rows);
        let index = Index::open(&path).expect("open");
        let rs = FileFilter::any().with_extensions(["rs"]);
        let half = FileFilter::any()
            .with_globs(["src/f0[0-4]*"])
            .expect("glob");
        for (name, filter) in [("all", None), ("ext", Some(&rs)), ("glob", Some(&half))] {
            group.bench_with_input(BenchmarkId::new(name, rows), &rows, |b, _| {
                let mut q = 0;
                b.iter(|| {
                    q = (q + 1) % queries.len();
                    let opts = SearchOptions {
                        limit: 10,
                        filter,
                        ..SearchOptions::default()
                    };
                    index.search(&queries[q], &opts).expect("search")
                });
            });
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

criterion_group!(benches, search, open, commit);
criterion_main!(benches);
