//! Behaviour of the index through its public API: every search path agrees with a naive
//! oracle, updates are incremental and atomic, guards and filters hold.

use std::path::Path;

use proptest::prelude::*;
use turboprop_index::{
    BaseState, FileFilter, Index, IndexError, IndexWriter, LockWait, NewChunk, ReadMode,
    SearchOptions, WriterOptions,
};
use turboprop_types::{ContentHash, FileRecord};

mod support;
use support::*;

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
