//! Behaviour of the index through its public API: every search path agrees with a naive
//! oracle, updates are incremental and atomic, guards and filters hold.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use turboprop_index::{
    BaseState, FileFilter, Hit, Index, IndexError, IndexSpec, IndexWriter, LockWait, ModelGuard,
    NewChunk, ReadMode, SearchOptions, WriterOptions,
};
use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};

fn spec(dims: u32) -> IndexSpec {
    IndexSpec {
        model: ModelGuard {
            id: "test-vectors".into(),
            dimensions: dims,
        },
        chunking: ChunkingConfig::default(),
        spaces: Vec::new(),
    }
}

fn normalized(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n == 0.0 {
        v
    } else {
        v.into_iter().map(|x| x / n).collect()
    }
}

fn chunk(i: u32, vector: Vec<f32>) -> NewChunk {
    NewChunk {
        line_start: i * 10 + 1,
        line_end: i * 10 + 10,
        byte_start: u64::from(i) * 100,
        byte_end: u64::from(i) * 100 + 100,
        hash: ContentHash::of(&i.to_le_bytes()),
        vector,
        terms: vec![i, 1000],
        spaces: Vec::new(),
    }
}

fn record(path: &str, content: &[u8]) -> FileRecord {
    FileRecord::new(path, content.len() as u64, 7, ContentHash::of(content)).expect("valid")
}

fn write(path: &Path, files: &[(String, Vec<Vec<f32>>)]) -> Index {
    let dims = files
        .iter()
        .flat_map(|(_, v)| v.first())
        .map(|v| v.len() as u32)
        .next()
        // With no vectors at all, the dimension of `arb_files` and its queries.
        .unwrap_or(8);
    let mut w = IndexWriter::open(
        path,
        spec(dims),
        WriterOptions {
            wait: LockWait::NoWait,
            rebuild: true,
            ..WriterOptions::default()
        },
        || {},
    )
    .expect("writer");
    for (name, vectors) in files {
        let chunks = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| chunk(i as u32, v.clone()))
            .collect();
        w.put_file(record(name, name.as_bytes()), chunks)
            .expect("put");
    }
    w.commit().expect("commit");
    Index::open(path).expect("open")
}

/// The oracle: score everything, sort, truncate.
fn naive(
    files: &[(String, Vec<Vec<f32>>)],
    q: &[f32],
    k: usize,
    filter: &FileFilter,
) -> Vec<(String, u32, f32)> {
    let mut all: Vec<(String, u32, f32)> = Vec::new();
    let mut sorted: Vec<&(String, Vec<Vec<f32>>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, vectors) in sorted {
        if !filter.matches(name) {
            continue;
        }
        for (i, v) in vectors.iter().enumerate() {
            let s: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            if s > 0.0 {
                all.push((name.clone(), i as u32 * 10 + 1, s));
            }
        }
    }
    // Stable sort keeps row order among equal scores, like the index's tie-break.
    all.sort_by(|a, b| b.2.total_cmp(&a.2));
    all.truncate(k);
    all
}

fn check_all_paths(
    index: &Index,
    files: &[(String, Vec<Vec<f32>>)],
    q: &[f32],
    k: usize,
    filter: &FileFilter,
) {
    let want = naive(files, q, k, filter);
    let heap = Index::open_with(index.path(), ReadMode::Heap).expect("heap open");
    let rows: usize = files.iter().map(|f| f.1.len()).sum();
    let paths = [(index, false), (index, true), (&heap, false), (&heap, true)];
    // Exact, and the fast path re-ranking every row (through the code scan).
    let strategies = [
        (turboprop_index::Strategy::Exact, 0),
        (turboprop_index::Strategy::Fast, rows),
    ];
    for ((idx, sequential), (strategy, candidates)) in paths
        .into_iter()
        .flat_map(|p| strategies.map(move |s| (p, s)))
    {
        let opts = SearchOptions {
            limit: k,
            min_score: 0.0,
            filter: Some(filter),
            sequential,
            strategy,
            candidates,
        };
        let got = idx.search(q, &opts).expect("search");
        assert_eq!(
            got.len(),
            want.len(),
            "sequential={sequential} {strategy:?}"
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g.score - w.2).abs() < 1e-4, "{g:?} vs {w:?}");
        }
        // Identical sets of (file, line) among hits with clearly distinct scores.
        let got_ids: Vec<(String, u32)> = got
            .iter()
            .map(|h| (h.chunk.file().to_owned(), h.chunk.line_start()))
            .collect();
        let want_ids: Vec<(String, u32)> = want.iter().map(|w| (w.0.clone(), w.1)).collect();
        assert_eq!(got_ids, want_ids);
    }
}

fn arb_files() -> impl Strategy<Value = Vec<(String, Vec<Vec<f32>>)>> {
    let vec8 = prop::collection::vec(-1.0f32..1.0, 8).prop_map(normalized);
    prop::collection::btree_map(
        "[a-c]{1,3}\\.(rs|py|ts)",
        prop::collection::vec(vec8, 0..30),
        1..12,
    )
    .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_path_agrees_with_the_oracle(
        files in arb_files(),
        q in prop::collection::vec(-1.0f32..1.0, 8).prop_map(normalized),
        k in 0usize..25,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let index = write(&tmp.path().join("index"), &files);
        check_all_paths(&index, &files, &q, k, &FileFilter::any());
        check_all_paths(&index, &files, &q, k, &FileFilter::any().with_extensions([".py"]));
    }
}

#[test]
fn parallel_blocks_agree_on_a_large_index() {
    // Enough rows for many rayon blocks.
    let mut seed = 42u64;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let files: Vec<(String, Vec<Vec<f32>>)> = (0..40)
        .map(|f| {
            let name = format!("dir{}/file{f}.{}", f % 3, ["rs", "py", "ts"][f % 3]);
            let vectors = (0..500)
                .map(|_| normalized((0..16).map(|_| rnd()).collect()))
                .collect();
            (name, vectors)
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = write(&tmp.path().join("index"), &files);
    let q = normalized((0..16).map(|_| rnd()).collect());
    check_all_paths(&index, &files, &q, 10, &FileFilter::any());
    check_all_paths(
        &index,
        &files,
        &q,
        50,
        &FileFilter::any().with_globs(["dir1/**"]).expect("glob"),
    );
}

/// Exact and fast top 10 of `q`; asserts that the fast path gives the same hits on one
/// thread over a heap copy (`heap`) as on all threads over the memory map (`index`).
fn exact_and_fast(index: &Index, heap: &Index, q: &[f32]) -> (Vec<Hit>, Vec<Hit>) {
    let exact = index
        .search(
            q,
            &SearchOptions {
                strategy: turboprop_index::Strategy::Exact,
                ..SearchOptions::default()
            },
        )
        .expect("exact");
    let opts = SearchOptions {
        strategy: turboprop_index::Strategy::Fast,
        ..SearchOptions::default()
    };
    let fast = index.search(q, &opts).expect("fast");
    let sequential = heap
        .search(
            q,
            &SearchOptions {
                sequential: true,
                ..opts
            },
        )
        .expect("fast, sequential, heap");
    assert_eq!(fast, sequential);
    (exact, fast)
}

/// 400 files `src/fNNNN.<extension(N)>` of 50 embedding-like rows each from `space`.
fn latent_files(
    space: &turboprop_index::synthetic::LatentSpace,
    extension: impl Fn(u64) -> &'static str,
) -> Vec<(String, Vec<Vec<f32>>)> {
    (0..400)
        .map(|f| {
            let rows = (0..50).map(|r| space.vector(f * 50 + r)).collect();
            (format!("src/f{f:04}.{}", extension(f)), rows)
        })
        .collect()
}

/// The fast path on embedding-like vectors: every score it returns is exact, it finds
/// nearly all of the exact top 10 with its default candidate count, and results do not
/// depend on threads or on how the index is read.
#[test]
fn the_fast_path_finds_the_exact_top_hits() {
    let space = turboprop_index::synthetic::LatentSpace::new(384, 7);
    let files = latent_files(&space, |_| "rs");
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = write(&tmp.path().join("index"), &files);
    let heap = Index::open_with(index.path(), ReadMode::Heap).expect("heap open");
    let (mut found, mut total) = (0usize, 0usize);
    for qi in 0..30 {
        let q = space.query(qi);
        let (exact, fast) = exact_and_fast(&index, &heap, &q);
        assert_eq!(fast.len(), 10);
        for hit in &fast {
            let (name, rows) = files
                .iter()
                .find(|f| f.0 == hit.chunk.file())
                .expect("a file of the index");
            let row = &rows[(hit.chunk.line_start() / 10) as usize];
            let score: f32 = row.iter().zip(&q).map(|(a, b)| a * b).sum();
            assert!(
                (hit.score - score).abs() < 1e-5,
                "{name}: {} vs {score}",
                hit.score
            );
        }
        total += exact.len();
        found += exact.iter().filter(|e| fast.contains(e)).count();
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.97, "recall@10 of the fast path: {recall}");
}

/// A filter that leaves every other file: the fast path scans the runs between the gaps
/// together and never returns a row of a file left out; it still finds nearly all of the
/// exact top 10, the same on one thread as on all.
#[test]
fn the_fast_path_with_a_filter_leaves_out_the_rows_between_runs() {
    let space = turboprop_index::synthetic::LatentSpace::new(384, 13);
    let files = latent_files(&space, |f| ["rs", "md"][f as usize % 2]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = write(&tmp.path().join("index"), &files);
    let filter = FileFilter::any().with_extensions(["rs"]);
    let opts = |strategy, sequential| SearchOptions {
        strategy,
        sequential,
        filter: Some(&filter),
        ..SearchOptions::default()
    };
    let (mut found, mut total) = (0usize, 0usize);
    for qi in 0..20 {
        let q = space.query(qi);
        let exact = index
            .search(&q, &opts(turboprop_index::Strategy::Exact, false))
            .expect("exact");
        let fast = index
            .search(&q, &opts(turboprop_index::Strategy::Fast, false))
            .expect("fast");
        let sequential = index
            .search(&q, &opts(turboprop_index::Strategy::Fast, true))
            .expect("fast, sequential");
        assert_eq!(fast, sequential);
        assert_eq!(fast.len(), 10);
        assert!(
            fast.iter().all(|h| h.chunk.file().ends_with(".rs")),
            "{fast:?}"
        );
        total += exact.len();
        found += exact.iter().filter(|e| fast.contains(e)).count();
    }
    let recall = found as f64 / total as f64;
    assert!(
        recall >= 0.97,
        "recall@10 of the filtered fast path: {recall}"
    );
}

/// Sparse vectors (most values exactly zero, like the built-in lexical embedder's) get int8
/// codes instead of 1-bit codes, and the fast path finds their exact top hits even with a
/// single candidate asked for; dense ones get 1-bit codes.
#[test]
fn sparse_segments_get_int8_codes_and_dense_ones_bit_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sparse: Vec<(String, Vec<Vec<f32>>)> = (0..20)
        .map(|f| {
            let rows = (0..10)
                .map(|r| {
                    let mut v = vec![0.0f32; 64];
                    v[(f * 7 + r) % 64] = 0.8;
                    v[(f * 3 + r * 5 + 1) % 64] = -0.6;
                    v
                })
                .collect();
            (format!("s{f:02}.rs"), rows)
        })
        .collect();
    let index = write(&tmp.path().join("sparse"), &sparse);
    assert!(!index.manifest().segments[0].codes);
    assert!(index.manifest().segments[0].codes8);
    let q = sparse[3].1[2].clone();
    let fast = SearchOptions {
        strategy: turboprop_index::Strategy::Fast,
        candidates: 1,
        ..SearchOptions::default()
    };
    let exact = SearchOptions {
        strategy: turboprop_index::Strategy::Exact,
        ..SearchOptions::default()
    };
    assert_eq!(
        index.search(&q, &fast).expect("fast"),
        index.search(&q, &exact).expect("exact")
    );

    let space = turboprop_index::synthetic::LatentSpace::new(64, 3);
    let dense: Vec<(String, Vec<Vec<f32>>)> = (0..20)
        .map(|f| {
            (
                format!("d{f:02}.rs"),
                (0..10).map(|r| space.vector(f * 10 + r)).collect(),
            )
        })
        .collect();
    let index = write(&tmp.path().join("dense"), &dense);
    assert!(index.manifest().segments[0].codes);
    assert!(!index.manifest().segments[0].codes8);
}

/// Lexical-like sparse vectors: each chunk is a handful of terms drawn from a skewed
/// vocabulary, each term added with a weight and a sign into two hashed slots of 256, as the
/// built-in embedder does; a query is a few terms of one chunk.
fn lexical_vector(terms: &[(u64, f32)]) -> Vec<f32> {
    let mut v = vec![0.0f32; 256];
    for &(t, w) in terms {
        for probe in 0..2u64 {
            let h = (t * 2 + probe)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(29);
            let sign = if h & 1 == 0 { 1.0 } else { -1.0 };
            v[(h >> 8) as usize % 256] += sign * w;
        }
    }
    normalized(v)
}

/// The fast path on an index whose best rows crowd into one block (a file of thousands of
/// near-duplicate chunks close to the query, as generated or vendored code gives): that
/// block holds most of the candidates the codes admit, far more than its proportional
/// part, and the fast path still returns the exact top 10, on any thread count and read
/// mode.
#[test]
fn the_fast_path_finds_the_exact_top_hits_when_they_crowd_into_one_block() {
    use turboprop_index::synthetic::LatentSpace;
    let space = LatentSpace::new(384, 11);
    let q = space.query(3);
    let near = |i: u64| -> Vec<f32> {
        // The query plus a little of another embedding-like vector, normalized.
        let other = space.vector(1_000_000 + i);
        let w = 0.25 + (i % 97) as f32 / 97.0;
        let v: Vec<f32> = q.iter().zip(&other).map(|(a, b)| a + w * b).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    };
    // 400 files of 50 rows; files 82..142 (rows 4100..7100, inside the second block of
    // 4096 rows) are the crowd.
    let files: Vec<(String, Vec<Vec<f32>>)> = (0..400u64)
        .map(|f| {
            let rows = (0..50)
                .map(|r| {
                    if (82..142).contains(&f) {
                        near(f * 50 + r)
                    } else {
                        space.vector(f * 50 + r)
                    }
                })
                .collect();
            (format!("src/f{f:04}.rs"), rows)
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = write(&tmp.path().join("index"), &files);
    let heap = Index::open_with(index.path(), ReadMode::Heap).expect("heap open");
    let (exact, fast) = exact_and_fast(&index, &heap, &q);
    assert!(exact
        .iter()
        .all(|h| ("src/f0082.rs".."src/f0142.rs").contains(&h.chunk.file())));
    assert_eq!(fast, exact);
}

/// The fast path on sparse vectors (int8 codes): every score it returns is exact, and its
/// top 10 with the default candidate count is the exact top 10 (recall at least 0.99), on
/// any thread count and read mode.
#[test]
fn the_fast_path_finds_the_exact_top_hits_of_sparse_vectors() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Zipf-like term ids: small ids are common.
    let mut term = || {
        let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
        (
            (2000.0f64).powf(u) as u64,
            0.3 + (next() % 100) as f32 / 100.0,
        )
    };
    let mut chunks: Vec<Vec<(u64, f32)>> = Vec::new();
    let files: Vec<(String, Vec<Vec<f32>>)> = (0..250)
        .map(|f| {
            let rows = (0..40)
                .map(|_| {
                    let terms: Vec<(u64, f32)> = (0..12).map(|_| term()).collect();
                    let v = lexical_vector(&terms);
                    chunks.push(terms);
                    v
                })
                .collect();
            (format!("src/f{f:04}.rs"), rows)
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let index = write(&tmp.path().join("index"), &files);
    assert!(index.manifest().segments[0].codes8);
    let heap = Index::open_with(index.path(), ReadMode::Heap).expect("heap open");
    let (mut found, mut total) = (0usize, 0usize);
    for qi in 0..40 {
        let source = &chunks[(qi * 7919) % chunks.len()];
        let q = lexical_vector(&source[..3]);
        let (exact, fast) = exact_and_fast(&index, &heap, &q);
        for hit in &fast {
            let (_, rows) = files
                .iter()
                .find(|f| f.0 == hit.chunk.file())
                .expect("a file of the index");
            let row = &rows[(hit.chunk.line_start() / 10) as usize];
            let score: f32 = row.iter().zip(&q).map(|(a, b)| a * b).sum();
            assert!((hit.score - score).abs() < 1e-5, "{} vs {score}", hit.score);
        }
        total += exact.len();
        found += exact.iter().filter(|e| fast.contains(e)).count();
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.99, "recall@10 of the fast path: {recall}");
}

/// Rewrites the manifest of the index at `path` as a build from before `key` existed
/// would have: every `,"key":value` removed, the header's length and hash made to match.
fn rewrite_manifest_without(path: &Path, key: &str, value: &str) {
    let manifest = path.join("manifest.json");
    let bytes = fs::read(&manifest).expect("read");
    let body = turboprop_storage::document_body(&manifest, "manifest", &bytes).expect("body");
    let old = String::from_utf8(body.to_vec())
        .expect("utf-8")
        .replace(&format!(",\"{key}\":{value}"), "");
    assert!(!old.contains(key), "{old}");
    let hash: String = turboprop_storage::payload_hash(old.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let header = format!("turboprop manifest v1 len={} blake3={hash}\n", old.len());
    fs::write(&manifest, [header.as_bytes(), old.as_bytes()].concat()).expect("write");
}

/// A manifest written before int8 codes existed (no `codes8` key) still opens; its segments
/// are scanned exactly.
#[test]
fn manifests_without_int8_codes_still_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files: Vec<(String, Vec<Vec<f32>>)> = (0..10)
        .map(|f| {
            let rows = (0..5)
                .map(|r| {
                    let mut v = vec![0.0f32; 32];
                    v[(f * 5 + r) % 32] = 1.0;
                    v
                })
                .collect();
            (format!("s{f:02}.rs"), rows)
        })
        .collect();
    let path = tmp.path().join("index");
    let index = write(&path, &files);
    assert!(index.manifest().segments[0].codes8);
    drop(index);
    rewrite_manifest_without(&path, "codes8", "true");
    let index = Index::open(&path).expect("an old manifest opens");
    assert!(!index.manifest().segments[0].codes8);
    let q = files[2].1[3].clone();
    let fast = SearchOptions {
        strategy: turboprop_index::Strategy::Fast,
        ..SearchOptions::default()
    };
    let hits = index.search(&q, &fast).expect("search");
    assert_eq!(hits[0].chunk.file(), "s02.rs");
    assert!(index.verify().is_empty());
}

/// A manifest written before bit planes existed (no `planes` key) still opens, and the fast
/// path's first filter then reads `codes.bin`: at 64 dimensions the planes hold every
/// dimension, so the hits are the same as with the planes.
#[test]
fn manifests_without_bit_planes_still_open_and_search_the_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let space = turboprop_index::synthetic::LatentSpace::new(64, 9);
    let files: Vec<(String, Vec<Vec<f32>>)> = (0..40)
        .map(|f| {
            (
                format!("f{f:02}.rs"),
                (0..25).map(|r| space.vector(f * 25 + r)).collect(),
            )
        })
        .collect();
    let path = tmp.path().join("index");
    let index = write(&path, &files);
    assert!(index.manifest().segments[0].codes && index.manifest().segments[0].planes);
    let opts = |strategy| SearchOptions {
        strategy,
        limit: 5,
        candidates: 60,
        ..SearchOptions::default()
    };
    let queries: Vec<Vec<f32>> = (0..8).map(|q| space.query(q)).collect();
    let with_planes: Vec<Vec<Hit>> = queries
        .iter()
        .map(|q| {
            index
                .search(q, &opts(turboprop_index::Strategy::Fast))
                .expect("search")
        })
        .collect();
    drop(index);
    rewrite_manifest_without(&path, "planes", "true");
    let index = Index::open(&path).expect("an old manifest opens");
    assert!(!index.manifest().segments[0].planes);
    for (q, planes) in queries.iter().zip(&with_planes) {
        let codes = index
            .search(q, &opts(turboprop_index::Strategy::Fast))
            .expect("search");
        assert_eq!(&codes, planes);
    }
    assert!(index.verify().is_empty());
}

/// A damaged `codes.bin`, `planes.bin`, `center.bin` (1-bit codes of dense vectors) or `codes8.bin` (int8
/// codes of sparse ones): truncated or deleted, opening fails naming it; a flipped payload
/// byte is named by verify. Never a panic.
#[test]
fn damaged_codes_are_named() {
    let space = turboprop_index::synthetic::LatentSpace::new(64, 5);
    let dense: Vec<(String, Vec<Vec<f32>>)> = (0..30)
        .map(|f| {
            (
                format!("f{f:02}.rs"),
                (0..20).map(|r| space.vector(f * 20 + r)).collect(),
            )
        })
        .collect();
    damage_each(&dense, &["codes.bin", "planes.bin", "center.bin"]);
    let sparse: Vec<(String, Vec<Vec<f32>>)> = (0..30)
        .map(|f| {
            let rows = (0..20)
                .map(|r| {
                    let mut v = vec![0.0f32; 64];
                    v[(f * 7 + r) % 64] = 0.8;
                    v[(f * 3 + r * 5 + 1) % 64] = -0.6;
                    v
                })
                .collect();
            (format!("s{f:02}.rs"), rows)
        })
        .collect();
    damage_each(&sparse, &["codes8.bin"]);
}

/// Writes `files` into an index, then for each file name of `names` in its segment: truncates
/// it, deletes it and flips a payload byte, each in a fresh copy, and checks that opening or
/// verify names it.
fn damage_each(files: &[(String, Vec<Vec<f32>>)], names: &[&str]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pristine = tmp.path().join("pristine");
    let index = write(&pristine, files);
    let seg = index.manifest().segments[0].name.clone();
    drop(index);
    for (n, name) in names.iter().copied().enumerate() {
        for damage in 0..3 {
            let path = tmp.path().join(format!("case{n}{damage}"));
            fs::create_dir_all(path.join(&seg)).expect("mkdir");
            for entry in fs::read_dir(&pristine).expect("ls") {
                let entry = entry.expect("entry");
                if entry.file_type().expect("type").is_file() {
                    fs::copy(entry.path(), path.join(entry.file_name())).expect("copy");
                }
            }
            for entry in fs::read_dir(pristine.join(&seg)).expect("ls") {
                let entry = entry.expect("entry");
                fs::copy(entry.path(), path.join(&seg).join(entry.file_name())).expect("copy");
            }
            let target = path.join(&seg).join(name);
            let mut bytes = fs::read(&target).expect("read");
            match damage {
                0 => {
                    bytes.truncate(bytes.len() / 2);
                    fs::write(&target, &bytes).expect("write");
                }
                1 => fs::remove_file(&target).expect("rm"),
                _ => {
                    let at = bytes.len() - 3;
                    bytes[at] ^= 0x10;
                    fs::write(&target, &bytes).expect("write");
                }
            }
            let problem = match Index::open(&path) {
                Err(e) => e.to_string(),
                Ok(index) => {
                    let problems = index.verify();
                    assert_eq!(problems.len(), 1, "{name} damage {damage}: {problems:?}");
                    problems[0].to_string()
                }
            };
            assert!(problem.contains(name), "{name} damage {damage}: {problem}");
        }
    }
}

#[test]
fn filters_apply_before_top_k() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The .rs file holds the best matches; the .py file's chunks are weaker but there are 5.
    let files = vec![
        ("best.rs".to_owned(), vec![vec![1.0, 0.0]; 20]),
        ("weak.py".to_owned(), vec![normalized(vec![0.5, 1.0]); 5]),
    ];
    let index = write(&tmp.path().join("index"), &files);
    let py = FileFilter::any().with_extensions(["py"]);
    let hits = index
        .search(
            &[1.0, 0.0],
            &SearchOptions {
                limit: 3,
                filter: Some(&py),
                ..SearchOptions::default()
            },
        )
        .expect("search");
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.chunk.file() == "weak.py"));
}

#[test]
fn updates_replace_remove_and_touch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    let open = |rebuild| {
        IndexWriter::open(
            &path,
            spec(2),
            WriterOptions {
                wait: LockWait::NoWait,
                rebuild,
                ..WriterOptions::default()
            },
            || {},
        )
        .expect("writer")
    };
    let mut w = open(false);
    assert_eq!(w.base_state(), &BaseState::Empty);
    w.put_file(record("a.rs", b"a"), vec![chunk(0, vec![1.0, 0.0])])
        .expect("put");
    w.put_file(
        record("b.rs", b"b"),
        vec![chunk(0, vec![0.0, 1.0]), chunk(1, vec![0.6, 0.8])],
    )
    .expect("put");
    let first = w.commit().expect("commit");
    assert_eq!((first.files, first.chunks, first.generation), (2, 3, 1));

    // Nothing changed: nothing is written, the generation stays.
    let w = open(false);
    assert_eq!(w.base_state(), &BaseState::Reused);
    let same = w.commit().expect("commit");
    assert!(!same.committed);
    assert_eq!(same.generation, 1);

    // Replace a.rs, remove b.rs, touch nothing.
    let mut w = open(false);
    w.put_file(record("a.rs", b"a2"), vec![chunk(3, vec![0.0, 1.0])])
        .expect("put");
    w.remove_file("b.rs");
    let second = w.commit().expect("commit");
    assert_eq!(
        (second.files, second.chunks, second.chunks_written),
        (1, 1, 1)
    );
    let index = Index::open(&path).expect("open");
    let hits = index
        .search(&[0.0, 1.0], &SearchOptions::default())
        .expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (hits[0].chunk.file(), hits[0].chunk.line_start()),
        ("a.rs", 31)
    );
    // Term statistics follow the live chunks only.
    assert_eq!(index.term_stats().documents(), 1);
    assert_eq!(index.term_stats().document_frequency(1000), 1);
    assert_eq!(index.term_stats().document_frequency(0), 0);
    assert_eq!(index.term_stats().document_frequency(3), 1);

    // Touch keeps the chunks and takes the new record.
    let mut w = open(false);
    let touched = FileRecord::new("a.rs", 2, 99, ContentHash::of(b"a2")).expect("valid");
    w.touch_file(touched.clone());
    w.commit().expect("commit");
    let index = Index::open(&path).expect("open");
    assert_eq!(
        index.files().expect("files").collect::<Vec<_>>(),
        vec![&touched]
    );
    assert_eq!(index.stats().chunks, 1);

    // Only what the manifest names is on disk: old generations are collected.
    assert_eq!(data_names(&path), index.manifest().live_names());
}

#[test]
fn commit_and_continue_commits_batches_under_one_lock() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    let opts = |rebuild| WriterOptions {
        wait: LockWait::NoWait,
        rebuild,
        ..WriterOptions::default()
    };
    let mut w = IndexWriter::open(&path, spec(2), opts(false), || {}).expect("writer");
    w.put_file(record("a.rs", b"a"), vec![chunk(0, vec![1.0, 0.0])])
        .expect("put");
    w.put_file(record("b.rs", b"b"), vec![chunk(0, vec![0.0, 1.0])])
        .expect("put");
    let first = w.commit_and_continue().expect("first batch");
    assert_eq!((first.generation, first.files, first.chunks), (1, 2, 2));
    // The batch is committed: a reader sees it while the writer goes on...
    assert_eq!(Index::open(&path).expect("open").stats().files, 2);
    // ...and the lock is still held.
    assert!(IndexWriter::open(&path, spec(2), opts(false), || {}).is_err());
    assert_eq!(w.base_state(), &BaseState::Reused);
    assert_eq!(w.base().map(|b| b.stats().files), Some(2));

    // Nothing new: nothing written.
    let same = w.commit_and_continue().expect("empty batch");
    assert!(!same.committed);
    assert_eq!(same.generation, 1);

    // The next batch builds on the first: replace a.rs, remove b.rs, add c.rs.
    w.put_file(record("a.rs", b"a2"), vec![chunk(1, vec![0.6, 0.8])])
        .expect("put");
    w.remove_file("b.rs");
    w.put_file(record("c.rs", b"c"), vec![chunk(0, vec![0.0, 1.0])])
        .expect("put");
    let second = w.commit().expect("last batch");
    assert_eq!((second.generation, second.files, second.chunks), (2, 2, 2));
    let index = Index::open(&path).expect("open");
    let files: Vec<&str> = index
        .files()
        .expect("file list")
        .map(FileRecord::path)
        .collect();
    assert_eq!(files, ["a.rs", "c.rs"]);
    assert_eq!(index.term_stats().documents(), 2);
    assert_eq!(data_names(&path), index.manifest().live_names());
    assert!(index.verify().is_empty(), "verifies");

    // A batch over a rebuild replaces the old index at its first commit.
    let mut w = IndexWriter::open(&path, spec(2), opts(true), || {}).expect("writer");
    w.put_file(record("d.rs", b"d"), vec![chunk(0, vec![1.0, 0.0])])
        .expect("put");
    let third = w.commit_and_continue().expect("batch");
    assert_eq!((third.generation, third.files), (3, 1));
    w.commit().expect("nothing more");
    assert_eq!(Index::open(&path).expect("open").stats().files, 1);
}

#[test]
fn a_reader_keeps_its_generation_while_a_writer_commits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    let files = vec![("a.rs".to_owned(), vec![vec![1.0, 0.0]])];
    let old = write(&path, &files);
    let newer = vec![("b.rs".to_owned(), vec![vec![1.0, 0.0]])];
    let _ = write(&path, &newer);
    // The old reader still answers from its own (now collected) generation.
    let hits = old
        .search(&[1.0, 0.0], &SearchOptions::default())
        .expect("search");
    assert_eq!(hits[0].chunk.file(), "a.rs");
    let fresh = Index::open(&path).expect("open");
    let hits = fresh
        .search(&[1.0, 0.0], &SearchOptions::default())
        .expect("search");
    assert_eq!(hits[0].chunk.file(), "b.rs");
}

#[test]
fn model_and_dimension_guards() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    let index = write(&path, &[("a.rs".to_owned(), vec![vec![1.0, 0.0]])]);
    let err = index.check_model("other-model", 2).expect_err("mismatch");
    let msg = err.to_string();
    assert!(
        msg.contains("test-vectors") && msg.contains("other-model") && msg.contains("--rebuild"),
        "{msg}"
    );
    assert!(index
        .search(&[1.0, 0.0, 0.0], &SearchOptions::default())
        .is_err());
    assert!(index
        .search(&[f32::NAN, 0.0], &SearchOptions::default())
        .is_err());

    // A writer with another spec starts over instead of mixing vectors.
    let w = IndexWriter::open(&path, spec(3), WriterOptions::default(), || {}).expect("writer");
    assert!(matches!(w.base_state(), BaseState::SpecChanged { .. }));
    assert!(w.base().is_none());
}

#[test]
fn bad_vectors_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut w = IndexWriter::open(
        tmp.path().join("i"),
        spec(2),
        WriterOptions::default(),
        || {},
    )
    .expect("writer");
    assert!(w
        .put_file(record("a.rs", b"a"), vec![chunk(0, vec![1.0])])
        .is_err());
    assert!(w
        .put_file(
            record("a.rs", b"a"),
            vec![chunk(0, vec![f32::INFINITY, 0.0])]
        )
        .is_err());
}

#[test]
fn second_writer_is_busy_or_waits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    let first = IndexWriter::open(&path, spec(2), WriterOptions::default(), || {}).expect("writer");
    let busy = IndexWriter::open(
        &path,
        spec(2),
        WriterOptions {
            wait: LockWait::NoWait,
            rebuild: false,
            ..WriterOptions::default()
        },
        || {},
    );
    assert!(matches!(
        busy,
        Err(IndexError::Storage(
            turboprop_storage::StorageError::Busy { .. }
        ))
    ));
    let path2 = path.clone();
    let waiter = std::thread::spawn(move || {
        let mut waited = false;
        let w = IndexWriter::open(&path2, spec(2), WriterOptions::default(), || waited = true)
            .expect("writer after wait");
        drop(w);
        waited
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(first);
    assert!(waiter.join().expect("thread"));
}

#[test]
fn missing_index_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = Index::open(tmp.path().join("nothing")).expect_err("no index");
    assert!(matches!(err, IndexError::NotIndexed { .. }));
    assert!(err.to_string().contains("tp index"));
}

/// Segment folders and delete sets on disk.
fn data_names(path: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(path)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-") || n.starts_with("del-"))
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, Vec<u8>),
    Touch(u8),
    Remove(u8),
}

fn arb_ops() -> impl Strategy<Value = Vec<Vec<Op>>> {
    let op = prop_oneof![
        4 => (0u8..12, 0u8..5, prop::collection::vec(0u8..8, 0..4)).prop_map(|(f, n, t)| Op::Put(f, n, t)),
        1 => (0u8..12).prop_map(Op::Touch),
        2 => (0u8..12).prop_map(Op::Remove),
    ];
    prop::collection::vec(prop::collection::vec(op, 0..6), 1..10)
}

/// A file's chunks, derived from (file, version): vectors and terms differ per version.
fn chunks_of(f: u8, n: u8, terms: &[u8]) -> Vec<NewChunk> {
    (0..n)
        .map(|i| {
            let mut c = chunk(
                u32::from(i),
                normalized(vec![f as f32 + 1.0, i as f32, n as f32 + 0.5]),
            );
            c.terms = terms
                .iter()
                .map(|&t| u32::from(t) + u32::from(i) % 2)
                .collect();
            c
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Any sequence of incremental commits, with aggressive compaction thresholds or none,
    /// leaves the same index as writing the final state from scratch: same files, same
    /// search results, same term statistics, and only live files on disk.
    #[test]
    fn incremental_commits_equal_a_rebuild(batches in arb_ops(), max_segments in 1u32..5, ratio in 0.0f64..1.0) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let inc = tmp.path().join("inc");
        let compaction = turboprop_types::CompactionConfig { max_segments, max_deleted_ratio: ratio };
        let mut state: std::collections::BTreeMap<u8, (u8, Vec<u8>, i64)> = Default::default();
        for (b, batch) in batches.iter().enumerate() {
            let opts = WriterOptions { wait: LockWait::NoWait, rebuild: false, compaction: compaction.clone() };
            let mut w = IndexWriter::open(&inc, spec(3), opts, || {}).expect("writer");
            for op in batch {
                match op {
                    Op::Put(f, n, t) => {
                        let rec = FileRecord::new(format!("f{f}.rs"), u64::from(*n), b as i64, ContentHash::of(&[*f, *n])).expect("rec");
                        w.put_file(rec, chunks_of(*f, *n, t)).expect("put");
                        state.insert(*f, (*n, t.clone(), b as i64));
                    }
                    Op::Touch(f) => {
                        if let Some((n, _, m)) = state.get_mut(f) {
                            *m = 1000 + b as i64;
                            let rec = FileRecord::new(format!("f{f}.rs"), u64::from(*n), *m, ContentHash::of(&[*f, *n])).expect("rec");
                            w.touch_file(rec);
                        }
                    }
                    Op::Remove(f) => {
                        w.remove_file(&format!("f{f}.rs"));
                        state.remove(f);
                    }
                }
            }
            let stats = w.commit().expect("commit");
            prop_assert!(stats.segments <= max_segments as usize || stats.segments <= 1);
        }
        let full = tmp.path().join("full");
        let opts = WriterOptions { wait: LockWait::NoWait, rebuild: true, ..WriterOptions::default() };
        let mut w = IndexWriter::open(&full, spec(3), opts, || {}).expect("writer");
        for (f, (n, t, m)) in &state {
            let rec = FileRecord::new(format!("f{f}.rs"), u64::from(*n), *m, ContentHash::of(&[*f, *n])).expect("rec");
            w.put_file(rec, chunks_of(*f, *n, t)).expect("put");
        }
        w.commit().expect("commit");

        let a = Index::open(&inc).expect("open inc");
        let b = Index::open(&full).expect("open full");
        let mut fa: Vec<_> = a.files().expect("files").cloned().collect();
        fa.sort_by(|x, y| x.path().cmp(y.path()));
        let fb: Vec<_> = b.files().expect("files").cloned().collect();
        prop_assert_eq!(fa, fb);
        prop_assert_eq!(a.stats().chunks, b.stats().chunks);
        for q in [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
            let opts = SearchOptions { limit: 100, ..SearchOptions::default() };
            let key = |h: &turboprop_index::Hit| (h.chunk.file().to_owned(), h.chunk.line_start(), (h.score * 1e5).round() as i64);
            let mut ha: Vec<_> = a.search(&q, &opts).expect("search").iter().map(key).collect();
            let mut hb: Vec<_> = b.search(&q, &opts).expect("search").iter().map(key).collect();
            ha.sort();
            hb.sort();
            prop_assert_eq!(ha, hb);
        }
        let (ta, tb) = (a.term_stats(), b.term_stats());
        prop_assert_eq!(ta.documents(), tb.documents());
        for t in 0..10u32 {
            prop_assert_eq!(ta.document_frequency(t), tb.document_frequency(t), "term {}", t);
        }
        prop_assert!(a.verify().is_empty());
        prop_assert_eq!(data_names(&inc), a.manifest().live_names());
    }
}

#[test]
fn a_one_file_change_writes_bytes_in_proportion_to_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    let files: Vec<(String, Vec<Vec<f32>>)> = (0..200)
        .map(|f| {
            (
                format!("src/f{f:03}.rs"),
                vec![normalized(vec![1.0, f as f32, 0.5, 2.0]); 50],
            )
        })
        .collect();
    let index = write(&path, &files);
    let total = index.stats().bytes_on_disk;
    drop(index);

    let opts = WriterOptions {
        wait: LockWait::NoWait,
        ..WriterOptions::default()
    };
    let mut w = IndexWriter::open(&path, spec(4), opts, || {}).expect("writer");
    let chunks = (0..50)
        .map(|i| chunk(i, normalized(vec![0.0, 1.0, 0.0, 0.0])))
        .collect();
    w.put_file(record("src/f007.rs", b"changed"), chunks)
        .expect("put");
    let stats = w.commit().expect("commit");
    assert_eq!(stats.chunks_written, 50);
    assert_eq!(stats.segments, 2);
    // One file of 200 is 0.5% of the index; allow headers, metadata and the manifest.
    assert!(
        stats.bytes_written * 20 < total,
        "wrote {} bytes of a {total}-byte index",
        stats.bytes_written
    );
    let index = Index::open(&path).expect("open");
    assert_eq!(index.stats().chunks, 200 * 50);
    let hits = index
        .search(&[0.0, 1.0, 0.0, 0.0], &SearchOptions::default())
        .expect("search");
    assert!(
        hits.iter().all(|h| h.chunk.file() == "src/f007.rs"),
        "{hits:?}"
    );
}
