//! An error injected at each step of a commit leaves the previous commit intact (or, after the
//! commit point, the new one), readable and verifiable; the next commit cleans up and succeeds.
//! The same for an index on disk and one in memory: the failpoints fire at the same steps.
//! Run with `cargo test -p turboprop-index --features failpoints --test failpoints`.

use std::collections::BTreeSet;
use std::sync::Arc;

use turboprop_index::{
    Index, IndexSpec, IndexWriter, LockWait, ModelGuard, NewChunk, SearchOptions, WriterOptions,
};
use turboprop_storage::failpoint::{arm, disarm, FAILPOINTS};
use turboprop_storage::{Directory, FsDirectory, MemDirectory};
use turboprop_types::{ChunkingConfig, CompactionConfig, ContentHash, FileRecord};

fn spec() -> IndexSpec {
    IndexSpec {
        lexical: None,
        model: ModelGuard {
            id: "failpoint-test".into(),
            dimensions: 2,
        },
        chunking: ChunkingConfig::default(),
        spaces: Vec::new(),
    }
}

fn opts(compaction: CompactionConfig) -> WriterOptions {
    WriterOptions {
        wait: LockWait::NoWait,
        rebuild: false,
        compaction,
    }
}

fn put(w: &mut IndexWriter, name: &str, v: [f32; 2], n: u32) {
    let record =
        FileRecord::new(name, u64::from(n), 1, ContentHash::of(name.as_bytes())).expect("record");
    let chunks = (0..n)
        .map(|i| NewChunk {
            lexical: None,
            line_start: i * 10 + 1,
            line_end: i * 10 + 10,
            byte_start: 0,
            byte_end: 1,
            hash: ContentHash::of(&i.to_le_bytes()),
            vector: v.to_vec(),
            terms: vec![i, 99],
            spaces: Vec::new(),
            symbol: None,
            kind: None,
        })
        .collect();
    w.put_file(record, chunks).expect("put");
}

/// What a reader sees: files, hits and statistics.
fn snapshot(dir: &Arc<dyn Directory>) -> (Vec<String>, Vec<(String, u32)>, u64, u64) {
    let index = Index::open_in(dir.clone()).expect("the index must stay readable");
    assert!(index.verify().is_empty(), "{:?}", index.verify());
    let files = index
        .files()
        .expect("the files must stay readable")
        .map(|f| f.path().to_owned())
        .collect();
    let hits = index
        .search(
            &[0.6, 0.8],
            &SearchOptions {
                limit: 50,
                ..SearchOptions::default()
            },
        )
        .expect("search")
        .iter()
        .map(|h| (h.chunk.file().to_owned(), h.chunk.line_start()))
        .collect();
    let stats = index.term_stats();
    (files, hits, stats.documents(), stats.document_frequency(99))
}

fn data_names(dir: &dyn Directory) -> BTreeSet<String> {
    dir.list("")
        .expect("list")
        .into_iter()
        .filter(|n| n.starts_with("seg-") || n.starts_with("del-") || n.starts_with(".tp-tmp"))
        .collect()
}

/// One update: replace a.rs, remove b.rs, add c.rs (a new segment and a delete set).
fn update(dir: &Arc<dyn Directory>, compaction: CompactionConfig) -> turboprop_index::Result<()> {
    let mut w = IndexWriter::open_in(dir.clone(), spec(), opts(compaction), || {})?;
    put(&mut w, "a.rs", [0.0, 1.0], 2);
    w.remove_file("b.rs");
    put(&mut w, "c.rs", [1.0, 0.0], 1);
    w.commit().map(|_| ())
}

/// Two fresh directories (the index and its twin) of the backend `backend`.
fn directories(backend: &str, tmp: &tempfile::TempDir) -> [Arc<dyn Directory>; 2] {
    match backend {
        "fs" => ["index", "twin"]
            .map(|n| Arc::new(FsDirectory::new(tmp.path().join(n))) as Arc<dyn Directory>),
        _ => [(); 2].map(|()| Arc::new(MemDirectory::new()) as Arc<dyn Directory>),
    }
}

#[test]
fn a_failure_at_any_commit_step_keeps_a_whole_generation() {
    // One test, not one per backend: the armed failpoint is process-wide.
    for backend in ["fs", "mem"] {
        a_failure_at_any_commit_step_keeps_a_whole_generation_in(backend);
    }
}

fn a_failure_at_any_commit_step_keeps_a_whole_generation_in(backend: &str) {
    let mut fired = BTreeSet::new();
    for compaction in [
        CompactionConfig::default(),
        // Forces a merge, so the failing commit also rewrites old rows.
        CompactionConfig {
            max_segments: 1,
            max_deleted_ratio: 0.0,
        },
    ] {
        for &point in FAILPOINTS {
            let tmp = tempfile::tempdir().expect("tempdir");
            let [path, twin] = directories(backend, &tmp);
            let mut w = IndexWriter::open_in(path.clone(), spec(), opts(compaction.clone()), || {})
                .expect("writer");
            put(&mut w, "a.rs", [1.0, 0.0], 3);
            put(&mut w, "b.rs", [0.6, 0.8], 2);
            put(&mut w, "d.rs", [0.8, 0.6], 2);
            // Enough untouched rows that the default policy writes a delete set, not a merge.
            put(&mut w, "e.rs", [0.8, 0.6], 20);
            w.commit().expect("first commit");
            let before = snapshot(&path);

            // The expected state after the update, from a twin index.
            let mut w = IndexWriter::open_in(twin.clone(), spec(), opts(compaction.clone()), || {})
                .expect("writer");
            put(&mut w, "a.rs", [1.0, 0.0], 3);
            put(&mut w, "b.rs", [0.6, 0.8], 2);
            put(&mut w, "d.rs", [0.8, 0.6], 2);
            // Enough untouched rows that the default policy writes a delete set, not a merge.
            put(&mut w, "e.rs", [0.8, 0.6], 20);
            w.commit().expect("twin commit");
            update(&twin, compaction.clone()).expect("twin update");
            let after = snapshot(&twin);

            arm(point);
            let result = update(&path, compaction.clone());
            disarm();
            let seen = snapshot(&path);
            match result {
                Err(e) => {
                    fired.insert(point);
                    assert!(
                        e.to_string().contains("injected failure")
                            || format!("{e:?}").contains("injected"),
                        "{backend} {point}: unexpected error {e}"
                    );
                    let committed = matches!(point, "manifest:sync" | "gc:remove");
                    let want = if committed { &after } else { &before };
                    assert_eq!(
                        &seen, want,
                        "{backend} {point}: wrong state after the failure"
                    );
                    // A failed commit removes what it wrote (unless removing is what failed).
                    if point != "gc:remove" {
                        let index = Index::open_in(path.clone()).expect("open");
                        assert_eq!(
                            data_names(&*path),
                            index.manifest().live_names(),
                            "{backend} {point}: the failed commit left files behind"
                        );
                    }
                }
                Ok(()) => {
                    // Some points are not on every path (e.g. no merge without compaction).
                    assert_eq!(
                        seen, after,
                        "{backend} {point}: commit succeeded but state is wrong"
                    );
                }
            }

            // The next commit cleans every leftover and brings the index to the new state.
            update(&path, compaction.clone()).expect("the next commit succeeds");
            assert_eq!(
                snapshot(&path),
                after,
                "{backend} {point}: state after recovery"
            );
            let index = Index::open_in(path.clone()).expect("open");
            assert_eq!(
                data_names(&*path),
                index.manifest().live_names(),
                "{backend} {point}: garbage left"
            );
        }
    }
    // Every failpoint must be reached by some commit, or this test proves nothing about it.
    let missed: Vec<_> = FAILPOINTS.iter().filter(|p| !fired.contains(*p)).collect();
    assert!(
        missed.is_empty(),
        "{backend}: failpoints never reached: {missed:?}"
    );
}
