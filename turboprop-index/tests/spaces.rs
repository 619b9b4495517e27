//! Several vector spaces in one index: the primary vectors and any number of additional
//! spaces (other models' vectors of the same chunks), each searched alone or fused; adding a
//! space to an existing index keeps the primary vectors and fills the new space in batches;
//! damage in a space's files is named and never carried forward.

use std::fs;
use std::path::Path;

use turboprop_index::{
    BaseState, Hit, Index, IndexError, IndexSpec, IndexWriter, LockWait, ModelGuard, NewChunk,
    ReadMode, SearchOptions, SpaceQuery, Strategy, WriterOptions,
};
use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};

const PRIMARY: u32 = 8;
const SECOND: u32 = 4;

fn guard(id: &str, dimensions: u32) -> ModelGuard {
    ModelGuard {
        id: id.into(),
        dimensions,
    }
}

fn spec(spaces: Vec<ModelGuard>) -> IndexSpec {
    IndexSpec {
        lexical: None,
        model: guard("words", PRIMARY),
        chunking: ChunkingConfig::default(),
        spaces,
    }
}

fn opts() -> WriterOptions {
    WriterOptions {
        wait: LockWait::NoWait,
        ..WriterOptions::default()
    }
}

/// A deterministic normalized vector.
fn vector(seed: u64, dims: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-6);
    v.into_iter().map(|a| a / n).collect()
}

/// File `f` has `1 + f % 3` chunks; chunk `c` has primary vector `(f, c)` and, in the
/// second space of model `model_seed`, another.
fn chunks(f: u64, spaces: &[u64]) -> Vec<NewChunk> {
    (0..1 + f % 3)
        .map(|c| NewChunk {
            lexical: None,
            line_start: c as u32 * 10 + 1,
            line_end: c as u32 * 10 + 10,
            byte_start: c * 100,
            byte_end: c * 100 + 100,
            hash: ContentHash::of(&[f as u8, c as u8]),
            vector: vector(f * 16 + c, PRIMARY),
            terms: vec![f as u32, 1000],
            spaces: spaces
                .iter()
                .map(|&m| vector(m * 1_000_000 + f * 16 + c, SECOND))
                .collect(),
            symbol: None,
            kind: None,
        })
        .collect()
}

/// The second-space vectors of file `f` for model seed `m`, as `fill_file` takes them.
fn fill_vectors(f: u64, m: u64) -> Vec<Vec<Vec<f32>>> {
    vec![chunks(f, &[m])
        .into_iter()
        .map(|c| c.spaces[0].clone())
        .collect()]
}

fn path(f: u64) -> String {
    format!("src/f{f:02}.rs")
}

fn record(f: u64) -> FileRecord {
    FileRecord::new(path(f), 100 + f, 7, ContentHash::of(path(f).as_bytes())).expect("record")
}

fn build(dir: &Path, files: u64, spaces: &[u64]) {
    let models: Vec<ModelGuard> = spaces
        .iter()
        .map(|m| guard(&format!("meaning-{m}"), SECOND))
        .collect();
    let mut w = IndexWriter::open(
        dir,
        spec(models),
        WriterOptions {
            rebuild: true,
            ..opts()
        },
        || {},
    )
    .expect("writer");
    for f in 0..files {
        w.put_file(record(f), chunks(f, spaces)).expect("put");
    }
    w.commit().expect("commit");
}

fn exact(limit: usize) -> SearchOptions<'static> {
    SearchOptions {
        limit,
        strategy: Strategy::Exact,
        ..SearchOptions::default()
    }
}

/// (file, first line, score) of hits.
fn summary(hits: &[Hit]) -> Vec<(String, u32, f32)> {
    hits.iter()
        .map(|h| (h.chunk.file().to_owned(), h.chunk.line_start(), h.score))
        .collect()
}

/// The oracle: every chunk scored in the second space of model `m`, sorted, truncated.
fn naive_second(files: u64, m: u64, q: &[f32], k: usize) -> Vec<(String, u32, f32)> {
    let mut all = Vec::new();
    for f in 0..files {
        for c in chunks(f, &[m]) {
            let s: f32 = c.spaces[0].iter().zip(q).map(|(a, b)| a * b).sum();
            if s > 0.0 {
                all.push((path(f), c.line_start, s));
            }
        }
    }
    all.sort_by(|a, b| b.2.total_cmp(&a.2));
    all.truncate(k);
    all
}

fn close(a: &[(String, u32, f32)], b: &[(String, u32, f32)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && x.1 == y.1 && (x.2 - y.2).abs() < 1e-5)
}

#[test]
fn each_space_is_searched_alone_and_fused() {
    let tmp = tempfile::tempdir().expect("tmp");
    build(tmp.path(), 40, &[1]);
    for mode in [ReadMode::Mmap, ReadMode::Heap] {
        let index = Index::open_with(tmp.path(), mode).expect("open");
        assert_eq!(index.spaces().len(), 1);
        let space = index.space_of_model("meaning-1").expect("the space");
        assert_eq!(space, 1);
        assert_eq!(index.space_rows(1), index.stats().chunks);
        assert!(index.verify().is_empty(), "{:?}", index.verify());
        for q in 0..5 {
            let query = vector(777 + q, SECOND);
            let hits = index.search_space(1, &query, &exact(7)).expect("search");
            assert!(close(&summary(&hits), &naive_second(40, 1, &query, 7)));
            // The primary space is unaffected by the second.
            let primary = vector(555 + q, PRIMARY);
            let a = index.search(&primary, &exact(5)).expect("primary");
            let b = index.search_space(0, &primary, &exact(5)).expect("space 0");
            assert_eq!(a, b);
            // A query of the wrong space's dimensions is refused.
            assert!(matches!(
                index.search_space(1, &primary, &exact(5)),
                Err(IndexError::InvalidVector { .. })
            ));
            // Fused with every chunk a candidate, the sum of both cosines (halved) ranks
            // like a naive scan of the sums.
            let queries = [
                SpaceQuery {
                    space: 0,
                    vector: &primary,
                    depth: 1000,
                },
                SpaceQuery {
                    space: 1,
                    vector: &query,
                    depth: 1000,
                },
            ];
            let mean = |scores: &[Vec<f32>]| -> Vec<f32> {
                scores.iter().map(|s| (s[0] + s[1]) / 2.0).collect()
            };
            let fused = index
                .search_fused(&queries, &exact(6), &mean)
                .expect("fused");
            let mut want = Vec::new();
            for f in 0..40 {
                for c in chunks(f, &[1]) {
                    let dot = |a: &[f32], b: &[f32]| -> f32 {
                        a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>().max(0.0)
                    };
                    let s = (dot(&c.vector, &primary) + dot(&c.spaces[0], &query)) / 2.0;
                    if s > 0.0 {
                        want.push((path(f), c.line_start, s));
                    }
                }
            }
            want.sort_by(|a, b| b.2.total_cmp(&a.2));
            want.truncate(6);
            assert!(
                close(&summary(&fused), &want),
                "{:?}\n{want:?}",
                summary(&fused)
            );
        }
        assert!(index
            .search_space(2, &vector(1, SECOND), &exact(3))
            .is_err());
    }
}

#[test]
fn adding_a_space_keeps_the_primary_vectors_and_fills_in_batches() {
    let tmp = tempfile::tempdir().expect("tmp");
    build(tmp.path(), 30, &[]);
    let before = Index::open(tmp.path()).expect("open");
    let primary_queries: Vec<Vec<f32>> = (0..4).map(|q| vector(900 + q, PRIMARY)).collect();
    let primary_hits: Vec<Vec<Hit>> = primary_queries
        .iter()
        .map(|q| before.search(q, &exact(10)).expect("search"))
        .collect();
    let chunks_total = before.stats().chunks;
    drop(before);

    let mut w = IndexWriter::open(
        tmp.path(),
        spec(vec![guard("meaning-2", SECOND)]),
        opts(),
        || {},
    )
    .expect("writer");
    assert_eq!(w.base_state(), &BaseState::Reused, "the rows are kept");
    let lacking: Vec<String> = w
        .files_lacking_spaces()
        .expect("lacking")
        .into_iter()
        .map(|r| r.path().to_owned())
        .collect();
    assert_eq!(lacking.len(), 30);

    // The first batch: ten files get the new space.
    for f in 0..10 {
        w.fill_file(record(f), fill_vectors(f, 2), Vec::new())
            .expect("fill");
    }
    w.commit_and_continue().expect("batch 1");
    {
        let mid = Index::open(tmp.path()).expect("open mid");
        assert!(mid.verify().is_empty(), "{:?}", mid.verify());
        assert_eq!(mid.stats().chunks, chunks_total);
        let filled: u64 = (0..10).map(|f| 1 + f % 3).sum();
        assert_eq!(mid.space_rows(1), filled);
        // Only filled files are found in the new space; the primary space is unchanged.
        let hits = mid
            .search_space(1, &vector(31, SECOND), &exact(100))
            .expect("space search");
        assert!(!hits.is_empty());
        assert!(hits
            .iter()
            .all(|h| (0..10).any(|f| h.chunk.file() == path(f))));
        for (q, want) in primary_queries.iter().zip(&primary_hits) {
            assert_eq!(
                summary(&mid.search(q, &exact(10)).expect("search")),
                summary(want)
            );
        }
    }
    assert_eq!(w.files_lacking_spaces().expect("lacking").len(), 20);

    // The rest, then a writer that finds nothing to fill.
    for f in 10..30 {
        w.fill_file(record(f), fill_vectors(f, 2), Vec::new())
            .expect("fill");
    }
    w.commit().expect("batch 2");
    let w = IndexWriter::open(
        tmp.path(),
        spec(vec![guard("meaning-2", SECOND)]),
        opts(),
        || {},
    )
    .expect("writer");
    assert!(w.files_lacking_spaces().expect("lacking").is_empty());
    assert!(!w.has_changes());
    drop(w);

    // The same index as one built with both spaces from the start.
    let filled = Index::open(tmp.path()).expect("open");
    assert!(filled.verify().is_empty());
    assert_eq!(filled.space_rows(1), chunks_total);
    assert!(
        filled
            .manifest()
            .segments
            .iter()
            .all(|s| s.spaces.len() == 1),
        "the segment without the space is gone"
    );
    let fresh_dir = tempfile::tempdir().expect("tmp");
    build(fresh_dir.path(), 30, &[2]);
    let fresh = Index::open(fresh_dir.path()).expect("open fresh");
    for q in 0..4 {
        let second = vector(40 + q, SECOND);
        assert_eq!(
            summary(&filled.search_space(1, &second, &exact(12)).expect("a")),
            summary(&fresh.search_space(1, &second, &exact(12)).expect("b"))
        );
        let primary = &primary_queries[q as usize];
        assert_eq!(
            summary(&filled.search(primary, &exact(12)).expect("a")),
            summary(&fresh.search(primary, &exact(12)).expect("b"))
        );
    }
    assert_eq!(filled.files().expect("files").count(), 30);
}

#[test]
fn a_fill_must_match_the_file_and_the_spec() {
    let tmp = tempfile::tempdir().expect("tmp");
    build(tmp.path(), 5, &[]);
    let mut w = IndexWriter::open(
        tmp.path(),
        spec(vec![guard("meaning-3", SECOND)]),
        opts(),
        || {},
    )
    .expect("writer");
    // Wrong dimensions and wrong number of spaces are refused at once.
    let mut wrong_dims = fill_vectors(1, 3);
    wrong_dims[0][0].push(0.0);
    assert!(matches!(
        w.fill_file(record(1), wrong_dims, Vec::new()),
        Err(IndexError::InvalidVector { .. })
    ));
    let mut two_spaces = fill_vectors(1, 3);
    two_spaces.push(two_spaces[0].clone());
    assert!(w.fill_file(record(1), two_spaces, Vec::new()).is_err());
    // A wrong number of chunks is found at commit, before anything is written.
    let mut short = fill_vectors(2, 3);
    short[0].pop();
    w.fill_file(record(2), short, Vec::new())
        .expect("shape is checked per vector");
    let err = w.commit_and_continue().expect_err("chunk count");
    assert!(matches!(err, IndexError::InvalidVector { .. }), "{err}");
    assert!(!err.is_damage());
    let index = Index::open(tmp.path()).expect("open");
    assert!(index.spaces().is_empty(), "nothing committed");
    assert!(index.verify().is_empty());
}

#[test]
fn a_space_made_by_another_model_is_refilled_never_mixed() {
    let tmp = tempfile::tempdir().expect("tmp");
    build(tmp.path(), 12, &[4]);
    // The same model name, now with other dimensions (a re-imported model): the old
    // vectors are not searched with the new model's queries.
    let other = ModelGuard {
        id: "meaning-4".into(),
        dimensions: SECOND + 2,
    };
    let w =
        IndexWriter::open(tmp.path(), spec(vec![other.clone()]), opts(), || {}).expect("writer");
    assert_eq!(w.files_lacking_spaces().expect("lacking").len(), 12);
    w.commit().expect("commit the new spec");
    let index = Index::open(tmp.path()).expect("open");
    assert_eq!(index.space_model(1), Some(&other));
    assert_eq!(index.space_rows(1), 0);
    let hits = index
        .search_space(1, &vector(5, SECOND + 2), &exact(5))
        .expect("search");
    assert!(hits.is_empty());
    assert!(index.verify().is_empty());

    // Dropping the space keeps the primary vectors and forgets the space.
    let w = IndexWriter::open(tmp.path(), spec(Vec::new()), opts(), || {}).expect("writer");
    assert_eq!(w.base_state(), &BaseState::Reused);
    w.commit().expect("commit");
    let index = Index::open(tmp.path()).expect("open");
    assert!(index.spaces().is_empty());
    assert_eq!(
        index.stats().chunks,
        (0..12).map(|f| 1 + f % 3).sum::<u64>()
    );
}

#[test]
fn two_spaces_with_one_key_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let err = IndexWriter::open(
        tmp.path(),
        spec(vec![guard("Meaning", SECOND), guard("meaning", SECOND)]),
        opts(),
        || {},
    )
    .expect_err("same key");
    assert!(err.to_string().contains("same key"), "{err}");
}

/// Flips one payload byte of `file` in every segment folder holding it.
fn flip(dir: &Path, file: &str) -> usize {
    let mut flipped = 0;
    for entry in fs::read_dir(dir).expect("read dir") {
        let p = entry.expect("entry").path().join(file);
        if p.is_file() {
            let mut bytes = fs::read(&p).expect("read");
            let at = bytes.len() - 3;
            bytes[at] ^= 0x40;
            fs::write(&p, bytes).expect("write");
            flipped += 1;
        }
    }
    flipped
}

#[test]
fn damage_in_a_space_is_named_and_never_carried_forward() {
    for file in [
        "vectors.meaning-5.bin",
        "codes.meaning-5.bin",
        "center.meaning-5.bin",
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        build(tmp.path(), 20, &[5]);
        let files_before = Index::open(tmp.path()).expect("open").stats().files;
        assert_eq!(flip(tmp.path(), file), 1, "{file} exists");
        let index = Index::open(tmp.path()).expect("header intact: opens");
        let problems = index.verify();
        assert!(
            problems.iter().any(|p| p.to_string().contains(file)),
            "{file}: {problems:?}"
        );
        drop(index);
        if file.starts_with("vectors") {
            // Rewriting every file (a merge) must refuse to copy the damaged rows.
            let mut w = IndexWriter::open(
                tmp.path(),
                spec(vec![guard("meaning-5", SECOND)]),
                WriterOptions {
                    compaction: turboprop_types::CompactionConfig {
                        max_segments: 1,
                        max_deleted_ratio: 0.0,
                    },
                    ..opts()
                },
                || {},
            )
            .expect("writer");
            w.touch_file(record(0));
            w.put_file(record(99), chunks(99, &[5])).expect("put");
            let err = w.commit().expect_err("damage found");
            assert!(err.is_damage(), "{err}");
            assert!(err.to_string().contains(file), "{err}");
            let index = Index::open(tmp.path()).expect("open");
            assert_eq!(index.stats().files, files_before, "nothing committed");
        }
    }
}
