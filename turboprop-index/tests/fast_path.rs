//! The fast path through the public API: it finds the exact top hits (dense 1-bit codes and
//! bit planes, sparse int8 codes, hits crowded into one block, with filters), each segment
//! gets the codes that fit its vectors, older manifests without codes or planes still open,
//! and damaged codes are named.

use std::fs;
use std::path::Path;

use turboprop_index::{FileFilter, Hit, Index, ReadMode, SearchOptions};

mod support;
use support::*;

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
    space: &turboprop_index::LatentSpace,
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
    let space = turboprop_index::LatentSpace::new(384, 7);
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
    let space = turboprop_index::LatentSpace::new(384, 13);
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

    let space = turboprop_index::LatentSpace::new(64, 3);
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
    use turboprop_index::LatentSpace;
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
    let space = turboprop_index::LatentSpace::new(64, 9);
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
    let space = turboprop_index::LatentSpace::new(64, 5);
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
