//! The index half of the `Directory` conformance suite: each test is written once and run
//! against both backends (`fs::*` on a temporary folder, `mem::*` in memory): a commit
//! searched back, incremental commits with delete sets and compaction agreeing with a rebuild,
//! garbage collection removing exactly what no manifest names, readers keeping their
//! generation, the writer lock, and damaged bytes reported as damage naming the file.
//! Below the suite, tests across the backends: both write the same bytes, and the committed
//! format-1 fixture opens in both.
//!
//! Longer than the ~800 lines files are held to, on purpose: it is one list of properties that
//! every backend must have, read and extended in one place.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use turboprop_index::{
    FileFilter, Index, IndexError, IndexSpec, IndexWriter, LockWait, ModelGuard, NewChunk,
    ReadMode, SearchOptions, WriterOptions,
};
use turboprop_storage::{
    join_name, Directory, FsDirectory, MemDirectory, SegmentReader, StorageError, CONFIG_FILE,
    LOCK_FILE, MANIFEST_FILE, VERSION_FILE,
};
use turboprop_types::{ChunkingConfig, CompactionConfig, ContentHash, FileRecord, TermId};

/// A directory of one backend, with whatever keeps it alive.
struct Backend {
    dir: Arc<dyn Directory>,
    _tmp: Option<tempfile::TempDir>,
}

fn fs_backend() -> Backend {
    let tmp = tempfile::tempdir().unwrap();
    Backend {
        // Not created: the writer creates its folder.
        dir: Arc::new(FsDirectory::new(tmp.path().join("index"))),
        _tmp: Some(tmp),
    }
}

fn mem_backend() -> Backend {
    Backend {
        dir: Arc::new(MemDirectory::new()),
        _tmp: None,
    }
}

/// Instantiates every conformance test for one backend, in a module named after it; each
/// test gets a factory, so it can make a second, independent directory of the same backend.
macro_rules! conformance {
    ($backend:ident => $make:path; $($test:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    super::$test($make);
                }
            )+
        }
    };
}

macro_rules! suite {
    ($($backend:ident => $make:path),+ $(,)?) => {
        $(
            conformance!($backend => $make;
                commit_then_open_and_search,
                incremental_commits_agree_with_a_rebuild,
                garbage_collection_removes_exactly_the_unnamed_files,
                a_reader_keeps_its_generation_while_a_writer_commits,
                second_writer_is_busy_or_waits,
                damaged_vectors_are_reported_naming_the_file,
                missing_index_is_not_indexed,
                searching_reads_no_file_list,
            );
        )+
    };
}

suite!(fs => super::fs_backend, mem => super::mem_backend);

type Factory = fn() -> Backend;

/// A file and its new (version, chunks), or `None` to remove it.
type Change = (&'static str, Option<(u64, u32)>);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const DIMS: u32 = 4;

fn spec() -> IndexSpec {
    IndexSpec {
        lexical: None,
        model: ModelGuard {
            id: "conformance".into(),
            dimensions: DIMS,
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

/// A number for one version of a file.
fn seed(path: &str, version: u64) -> u64 {
    path.bytes().fold(version, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    })
}

/// The seed of chunk `i` of a file version.
fn chunk_seed(seed: u64, i: u32) -> u64 {
    seed.wrapping_mul(100).wrapping_add(u64::from(i))
}

/// A deterministic, normalized vector with positive values.
fn vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..DIMS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1000) as f32 / 1000.0 + 0.01
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.into_iter().map(|a| a / n).collect()
}

/// One version of a file: `chunks` chunks whose vectors and terms depend on `version`.
fn put(w: &mut IndexWriter, path: &str, version: u64, chunks: u32) {
    let seed = seed(path, version);
    let record = FileRecord::new(
        path,
        u64::from(chunks) * 100,
        version as i64,
        ContentHash::of(&seed.to_le_bytes()),
    )
    .unwrap();
    let chunks = (0..chunks)
        .map(|i| NewChunk {
            lexical: None,
            line_start: i * 10 + 1,
            line_end: i * 10 + 10,
            byte_start: u64::from(i) * 100,
            byte_end: u64::from(i) * 100 + 100,
            hash: ContentHash::of(&[seed as u8, i as u8]),
            vector: vector(chunk_seed(seed, i)),
            terms: vec![(seed % 7) as TermId, 100 + i, 999],
            spaces: Vec::new(),
            symbol: None,
            kind: None,
        })
        .collect();
    w.put_file(record, chunks).unwrap();
}

/// What a search sees: every hit of a few queries, plus the term statistics.
#[derive(Debug, PartialEq)]
struct View {
    files: Vec<String>,
    hits: Vec<Vec<(String, u32, u32)>>,
    documents: u64,
    df: Vec<u64>,
}

fn view(index: &Index) -> View {
    let hits = (0..4)
        .map(|q| {
            index
                .search(
                    &vector(10_000 + q),
                    &SearchOptions {
                        limit: 1000,
                        ..SearchOptions::default()
                    },
                )
                .unwrap()
                .into_iter()
                // Scores compared to 1e-6, as integers.
                .map(|h| {
                    (
                        h.chunk.file().to_owned(),
                        h.chunk.line_start(),
                        (h.score * 1e6).round() as u32,
                    )
                })
                .collect()
        })
        .collect();
    let mut files: Vec<String> = index
        .files()
        .unwrap()
        .map(|f| f.path().to_owned())
        .collect();
    files.sort();
    let stats = index.term_stats();
    View {
        files,
        hits,
        documents: stats.documents(),
        df: [0, 1, 2, 3, 4, 5, 6, 100, 101, 102, 999]
            .iter()
            .map(|&t| stats.document_frequency(t))
            .collect(),
    }
}

/// The entries of the directory's top level that are segments, delete sets or temp files.
fn data_names(dir: &dyn Directory) -> BTreeSet<String> {
    dir.list("")
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("seg-") || n.starts_with("del-") || n.starts_with(".tp-tmp"))
        .collect()
}

/// Every file under the directory with its bytes (a name that lists is a folder).
fn all_files(dir: &dyn Directory) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &dyn Directory, folder: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for name in dir.list(folder).unwrap() {
            let name = join_name(folder, &name);
            if name.starts_with("seg-") && !name.contains('/') {
                walk(dir, &name, out);
            } else {
                let bytes = dir.read(&name, ReadMode::Heap).unwrap().bytes().to_vec();
                out.insert(name, bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

fn commit_then_open_and_search(make: Factory) {
    let b = make();
    let mut w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig::default()),
        || {},
    )
    .unwrap();
    put(&mut w, "src/a.rs", 1, 3);
    put(&mut w, "src/b.rs", 1, 2);
    let stats = w.commit().unwrap();
    assert!(stats.committed);
    assert_eq!((stats.files, stats.chunks, stats.segments), (2, 5, 1));
    assert_eq!(stats.bytes_written, {
        let files = all_files(&*b.dir);
        files
            .iter()
            .filter(|(n, _)| n.starts_with("seg-") || n.as_str() == MANIFEST_FILE)
            .map(|(_, v)| v.len() as u64)
            .sum::<u64>()
    });

    for mode in [ReadMode::Mmap, ReadMode::Heap] {
        let index = Index::open_in_with(b.dir.clone(), mode).unwrap();
        assert_eq!(index.path(), b.dir.location(""));
        assert!(index.verify().is_empty(), "{:?}", index.verify());
        // The best hit for a stored vector is its own chunk, scored 1.
        let hits = index
            .search(
                &vector(chunk_seed(seed("src/b.rs", 1), 1)),
                &SearchOptions::default(),
            )
            .unwrap();
        assert_eq!(
            (hits[0].chunk.file(), hits[0].chunk.line_start()),
            ("src/b.rs", 11)
        );
        assert!((hits[0].score - 1.0).abs() < 1e-5, "{}", hits[0].score);
        assert_eq!(hits.len(), 5);
        let s = index.stats();
        assert_eq!((s.files, s.chunks, s.generation), (2, 5, 1));
        let names = all_files(&*b.dir);
        let bytes: u64 = names
            .iter()
            .filter(|(n, _)| n.as_str() != LOCK_FILE)
            .map(|(_, v)| v.len() as u64)
            .sum();
        assert_eq!(s.bytes_on_disk, bytes);
        assert_eq!(index.term_stats().documents(), 5);
        assert_eq!(index.term_stats().document_frequency(999), 5);
    }
}

/// Opening an index and searching it (plain, filtered, over segments with delete sets) reads
/// only the file records of the hits: no segment's file list is ever built, so the cost of
/// opening does not grow with the number of files. Counted, not timed.
fn searching_reads_no_file_list(make: Factory) {
    let b = make();
    let keep = CompactionConfig {
        max_segments: 8,
        max_deleted_ratio: 0.9,
    };
    let mut w = IndexWriter::open_in(b.dir.clone(), spec(), opts(keep.clone()), || {}).unwrap();
    for i in 0..40 {
        let ext = if i % 2 == 0 { "rs" } else { "py" };
        put(&mut w, &format!("src/f{i:02}.{ext}"), 1, 1 + i % 3);
    }
    w.commit().unwrap();
    let mut w = IndexWriter::open_in(b.dir.clone(), spec(), opts(keep), || {}).unwrap();
    put(&mut w, "src/f03.py", 2, 2);
    w.remove_file("src/f04.rs");
    w.commit().unwrap();

    let index = Index::open_in(b.dir.clone()).unwrap();
    assert_eq!(index.segment_count(), 2);
    assert!(index.manifest().segments[0].deletes.is_some());
    assert_eq!(
        index.materialized_segments(),
        0,
        "opening built a file list"
    );
    let all = SearchOptions {
        limit: 1000,
        ..SearchOptions::default()
    };
    let hits = index.search(&vector(1), &all).unwrap();
    assert_eq!(hits.len(), index.stats().chunks as usize);
    assert!(hits.iter().all(|h| h.chunk.file() != "src/f04.rs"));
    let python = FileFilter::any().with_extensions(["py"]);
    let filtered = SearchOptions {
        filter: Some(&python),
        ..all.clone()
    };
    let hits = index.search(&vector(2), &filtered).unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.chunk.file().ends_with(".py")));
    assert_eq!(
        hits.iter()
            .filter(|h| h.chunk.file() == "src/f03.py")
            .count(),
        2,
        "only the live version of f03.py"
    );
    index.term_stats().document_frequency(999);
    index.stats();
    assert_eq!(
        index.materialized_segments(),
        0,
        "searching built a file list"
    );

    // Listing the files builds the lists, once.
    assert_eq!(index.files().unwrap().count(), 39);
    assert_eq!(index.materialized_segments(), 2);
}

/// A series of updates (replace, remove, touch, add) with thresholds that force delete sets
/// first and compaction later must leave the same answers as writing the final state at once.
fn incremental_commits_agree_with_a_rebuild(make: Factory) {
    let b = make();
    let compaction = CompactionConfig {
        max_segments: 3,
        max_deleted_ratio: 0.4,
    };
    let mut w =
        IndexWriter::open_in(b.dir.clone(), spec(), opts(compaction.clone()), || {}).unwrap();
    for f in 0..12 {
        put(&mut w, &format!("f{f:02}.rs"), 1, 1 + f % 4);
    }
    w.commit().unwrap();

    // The final content of each file: (version, chunks), absent when removed.
    let mut want: BTreeMap<String, (u64, u32)> = (0..12)
        .map(|f| (format!("f{f:02}.rs"), (1, 1 + f % 4)))
        .collect();
    let mut saw_deletes = false;
    let mut merged = 0;
    let steps: [&[Change]; 6] = [
        &[("f01.rs", Some((2, 2))), ("f02.rs", None)],
        &[("f03.rs", Some((2, 1))), ("new1.rs", Some((1, 3)))],
        &[
            ("f04.rs", None),
            ("f05.rs", Some((3, 2))),
            ("f01.rs", Some((3, 1))),
        ],
        &[
            ("f06.rs", None),
            ("f07.rs", None),
            ("f08.rs", None),
            ("new2.rs", Some((1, 1))),
        ],
        &[("new1.rs", None), ("f09.rs", Some((2, 4)))],
        &[
            ("f10.rs", Some((5, 2))),
            ("f11.rs", None),
            ("new3.rs", Some((1, 2))),
        ],
    ];
    for (i, step) in steps.iter().enumerate() {
        let mut w =
            IndexWriter::open_in(b.dir.clone(), spec(), opts(compaction.clone()), || {}).unwrap();
        for (path, change) in step.iter() {
            match change {
                Some((version, chunks)) => {
                    put(&mut w, path, *version, *chunks);
                    want.insert((*path).to_owned(), (*version, *chunks));
                }
                None => {
                    w.remove_file(path);
                    want.remove(*path);
                }
            }
        }
        // A touch keeps the rows (copied only if their segment is merged).
        if i == 2 {
            let base = w.base().unwrap();
            let f00 = base
                .files()
                .unwrap()
                .find(|f| f.path() == "f00.rs")
                .unwrap()
                .clone();
            let touched = FileRecord::new("f00.rs", f00.size(), 77, f00.hash()).unwrap();
            w.touch_file(touched);
        }
        let stats = w.commit().unwrap();
        merged += stats.segments_merged;
        let index = Index::open_in(b.dir.clone()).unwrap();
        assert!(index.verify().is_empty(), "step {i}: {:?}", index.verify());
        assert!(index.segment_count() <= 3, "step {i}");
        saw_deletes |= index
            .manifest()
            .segments
            .iter()
            .any(|s| s.deletes.is_some());
        // The same answers as the state written at once.
        let rebuilt = rebuild(make, &want, &compaction);
        assert_eq!(view(&index), view(&rebuilt), "step {i}");
        assert_eq!(
            view(&rebuilt).files,
            want.keys().cloned().collect::<Vec<_>>()
        );
    }
    assert!(saw_deletes, "the updates never wrote a delete set");
    assert!(merged > 0, "the updates never compacted");
    let incremental = Index::open_in(b.dir.clone()).unwrap();
    assert_eq!(
        incremental
            .files()
            .unwrap()
            .find(|f| f.path() == "f00.rs")
            .unwrap()
            .mtime_ns(),
        77,
        "the touch was lost"
    );
}

/// A new index of the same backend holding `files` (path -> (version, chunks)), written at
/// once.
fn rebuild(make: Factory, files: &BTreeMap<String, (u64, u32)>, c: &CompactionConfig) -> Index {
    let fresh = make();
    let mut w = IndexWriter::open_in(fresh.dir.clone(), spec(), opts(c.clone()), || {}).unwrap();
    for (path, (version, chunks)) in files {
        put(&mut w, path, *version, *chunks);
    }
    w.commit().unwrap();
    // The index keeps what it opened; the temporary folder may go.
    Index::open_in_with(fresh.dir.clone(), ReadMode::Heap).unwrap()
}

fn garbage_collection_removes_exactly_the_unnamed_files(make: Factory) {
    let b = make();
    let dir = &*b.dir;
    let mut w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig::default()),
        || {},
    )
    .unwrap();
    for f in 0..10 {
        put(&mut w, &format!("f{f}.rs"), 1, 2);
    }
    w.commit().unwrap();
    for g in 2..5u64 {
        let mut w = IndexWriter::open_in(
            b.dir.clone(),
            spec(),
            opts(CompactionConfig::default()),
            || {},
        )
        .unwrap();
        put(&mut w, &format!("f{g}.rs"), g, 1);
        w.commit().unwrap();
        let index = Index::open_in(b.dir.clone()).unwrap();
        assert_eq!(
            data_names(dir),
            index.manifest().live_names(),
            "generation {g}: a commit leaves exactly what its manifest names"
        );
    }

    // Leftovers of a crashed writer, and a file that is not ours.
    dir.create_dir("seg-00000099").unwrap();
    dir.write_new("seg-00000099/vectors.bin", b"half written")
        .unwrap();
    dir.write_new("del-00000001-00000099.bin", b"stray")
        .unwrap();
    dir.write_new(".tp-tmp-1-1-manifest.json", b"temp").unwrap();
    dir.write_new("notes.txt", b"someone else's").unwrap();
    let before = Index::open_in(b.dir.clone()).unwrap();
    let view_before = view(&before);

    let w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig::default()),
        || {},
    )
    .unwrap();
    let live = w.base().unwrap().manifest().live_names();
    let mut want = live.clone();
    for kept in [
        VERSION_FILE,
        CONFIG_FILE,
        MANIFEST_FILE,
        LOCK_FILE,
        "notes.txt",
    ] {
        want.insert(kept.to_owned());
    }
    let have: BTreeSet<String> = dir.list("").unwrap().into_iter().collect();
    assert_eq!(
        have, want,
        "opening a writer collects exactly the unnamed files"
    );
    drop(w);
    // The reader opened before the collection still answers, and so does a new one.
    assert_eq!(view(&before), view_before);
    assert_eq!(view(&Index::open_in(b.dir.clone()).unwrap()), view_before);
}

fn a_reader_keeps_its_generation_while_a_writer_commits(make: Factory) {
    let b = make();
    let mut w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig::default()),
        || {},
    )
    .unwrap();
    put(&mut w, "a.rs", 1, 2);
    put(&mut w, "b.rs", 1, 2);
    w.commit().unwrap();
    let old_map = Index::open_in_with(b.dir.clone(), ReadMode::Mmap).unwrap();
    let old_heap = Index::open_in_with(b.dir.clone(), ReadMode::Heap).unwrap();
    let before = view(&old_map);

    // Merge everything: every file of generation 1 is collected.
    let mut w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig {
            max_segments: 1,
            max_deleted_ratio: 0.0,
        }),
        || {},
    )
    .unwrap();
    put(&mut w, "a.rs", 2, 1);
    w.remove_file("b.rs");
    put(&mut w, "c.rs", 1, 3);
    w.commit().unwrap();
    assert!(
        !b.dir.exists("seg-00000001").expect("exists"),
        "generation 1 was not collected"
    );

    assert_eq!(
        view(&old_map),
        before,
        "an open reader changed under a commit"
    );
    assert_eq!(view(&old_heap), before);
    assert_eq!(old_map.manifest().generation, 1);
    let new = Index::open_in(b.dir.clone()).unwrap();
    assert_eq!(new.manifest().generation, 2);
    assert_eq!(view(&new).files, ["a.rs", "c.rs"]);
}

fn second_writer_is_busy_or_waits(make: Factory) {
    let b = make();
    let first = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig::default()),
        || {},
    )
    .unwrap();
    match IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig::default()),
        || {},
    ) {
        Err(IndexError::Storage(StorageError::Busy { path })) => {
            assert_eq!(path, b.dir.location(LOCK_FILE));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = b.dir.clone();
    let waiter = std::thread::spawn(move || {
        let wait = WriterOptions {
            wait: LockWait::Block,
            ..WriterOptions::default()
        };
        let mut w = IndexWriter::open_in(dir, spec(), wait, || tx.send(()).unwrap()).unwrap();
        // It starts from the first writer's commit.
        assert_eq!(w.base().unwrap().manifest().generation, 1);
        put(&mut w, "second.rs", 1, 1);
        w.commit().unwrap()
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("the second writer must report that it waits");
    let mut first = first;
    put(&mut first, "first.rs", 1, 1);
    first.commit().unwrap();
    let stats = waiter.join().unwrap();
    assert_eq!(stats.generation, 2);
    let index = Index::open_in(b.dir.clone()).unwrap();
    assert_eq!(view(&index).files, ["first.rs", "second.rs"]);
}

/// Every byte of a segment's `vectors.bin` flipped in turn (through the directory): opening
/// fails with damage naming the file, or `verify` reports it, or (payload bytes searches do
/// not hash) searching works and `verify` names it; never a panic, never an error naming
/// another file. A writer that must copy damaged rows refuses, naming the file.
fn damaged_vectors_are_reported_naming_the_file(make: Factory) {
    let b = make();
    let dir = &*b.dir;
    let mut w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig::default()),
        || {},
    )
    .unwrap();
    put(&mut w, "a.rs", 1, 2);
    put(&mut w, "b.rs", 1, 1);
    w.commit().unwrap();
    let name = "seg-00000001/vectors.bin";
    let location = dir.location(name);
    let names_it = |e: &IndexError| e.to_string().contains(&*location.to_string_lossy());
    let pristine = dir.read(name, ReadMode::Heap).unwrap().bytes().to_vec();
    let put_bytes = |bytes: &[u8]| {
        dir.remove(name).unwrap();
        dir.write_new(name, bytes).unwrap();
    };
    for at in 0..pristine.len() {
        let mut bad = pristine.clone();
        bad[at] ^= 0x10;
        put_bytes(&bad);
        match Index::open_in(b.dir.clone()) {
            Err(e) => {
                assert!(e.is_damage() && names_it(&e), "byte {at}: {e}");
            }
            Ok(index) => {
                assert!(at >= 64, "byte {at}: a damaged header went unnoticed");
                index.search(&vector(1), &SearchOptions::default()).unwrap();
                let problems = index.verify();
                assert!(
                    !problems.is_empty() && problems.iter().all(|e| e.is_damage() && names_it(e)),
                    "byte {at}: verify says {problems:?}"
                );
            }
        }
    }
    for len in [0, 63, 64, pristine.len() - 4] {
        put_bytes(&pristine[..len]);
        let e = Index::open_in(b.dir.clone()).unwrap_err();
        assert!(e.is_damage() && names_it(&e), "truncated to {len}: {e}");
    }

    // A payload flip in a.rs's rows: a commit that must copy them (compaction) refuses.
    let mut bad = pristine.clone();
    bad[64 + 4] ^= 0x10;
    put_bytes(&bad);
    let mut w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig {
            max_segments: 1,
            max_deleted_ratio: 0.0,
        }),
        || {},
    )
    .unwrap();
    put(&mut w, "b.rs", 2, 1);
    let e = w.commit().unwrap_err();
    assert!(e.is_damage() && names_it(&e), "{e}");
    // The damaged generation is still the committed one, and a rebuild recovers.
    assert_eq!(
        Index::open_in(b.dir.clone()).unwrap().manifest().generation,
        1
    );
    let mut w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        WriterOptions {
            rebuild: true,
            ..opts(CompactionConfig::default())
        },
        || {},
    )
    .unwrap();
    put(&mut w, "a.rs", 1, 2);
    w.commit().unwrap();
    let index = Index::open_in(b.dir.clone()).unwrap();
    assert!(index.verify().is_empty());
    assert!(
        !dir.exists("seg-00000001").expect("exists"),
        "the damaged segment was collected"
    );
}

fn missing_index_is_not_indexed(make: Factory) {
    let b = make();
    match Index::open_in(b.dir.clone()) {
        Err(IndexError::NotIndexed { path }) => assert_eq!(path, b.dir.location("")),
        other => panic!("expected NotIndexed, got {other:?}"),
    }
    // A folder with data but no manifest is damaged, not empty.
    let mut w = IndexWriter::open_in(
        b.dir.clone(),
        spec(),
        opts(CompactionConfig::default()),
        || {},
    )
    .unwrap();
    put(&mut w, "a.rs", 1, 1);
    w.commit().unwrap();
    b.dir.remove(MANIFEST_FILE).unwrap();
    let e = Index::open_in(b.dir.clone()).unwrap_err();
    assert!(e.is_damage(), "{e}");
    assert!(
        e.to_string()
            .contains(&*b.dir.location(MANIFEST_FILE).to_string_lossy()),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Across the backends
// ---------------------------------------------------------------------------------------------

/// The same commits in memory and on disk write the same files, byte for byte (manifests
/// differ only in their commit time), and an index written in memory opens from disk.
#[test]
fn both_backends_write_the_same_bytes() {
    let backends = [fs_backend(), mem_backend()];
    let mut files = Vec::new();
    for b in &backends {
        let mut w = IndexWriter::open_in(
            b.dir.clone(),
            spec(),
            opts(CompactionConfig::default()),
            || {},
        )
        .unwrap();
        for f in 0..8 {
            put(&mut w, &format!("f{f}.rs"), 1, 3);
        }
        w.commit().unwrap();
        let mut w = IndexWriter::open_in(
            b.dir.clone(),
            spec(),
            opts(CompactionConfig::default()),
            || {},
        )
        .unwrap();
        put(&mut w, "f1.rs", 2, 1);
        w.remove_file("f2.rs");
        w.commit().unwrap();
        let mut all = all_files(&*b.dir);
        let manifest = all.remove(MANIFEST_FILE).unwrap();
        let body: serde_like::Body = serde_like::body(&manifest);
        files.push((all, body));
    }
    assert!(
        files[0].0.keys().any(|n| n.starts_with("del-")),
        "no delete set written"
    );
    assert_eq!(
        files[0].0.keys().collect::<Vec<_>>(),
        files[1].0.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &files[0].0 {
        assert!(
            files[1].0[name] == *bytes,
            "{name} differs between the backends"
        );
    }
    assert_eq!(files[0].1, files[1].1, "manifest bodies differ");

    // Copy the memory index to disk and open it there.
    let tmp = tempfile::tempdir().unwrap();
    let disk = FsDirectory::new(tmp.path().join("copy"));
    copy_into(&*backends[1].dir, &disk);
    let from_disk = Index::open(tmp.path().join("copy")).unwrap();
    let in_mem = Index::open_in(backends[1].dir.clone()).unwrap();
    assert!(from_disk.verify().is_empty());
    assert_eq!(view(&from_disk), view(&in_mem));
    assert_eq!(
        view(&from_disk),
        view(&Index::open_in(backends[0].dir.clone()).unwrap())
    );
}

/// A manifest's body without its commit time.
mod serde_like {
    pub type Body = String;

    pub fn body(doc: &[u8]) -> Body {
        let text = std::str::from_utf8(doc).unwrap();
        let body = text.split_once('\n').unwrap().1;
        let at = body.find("\"updated_at_ms\":").unwrap();
        let end = at + body[at..].find(',').unwrap();
        format!("{}{}", &body[..at], &body[end..])
    }
}

fn copy_into(from: &dyn Directory, to: &dyn Directory) {
    to.create_root().unwrap();
    for (name, bytes) in all_files(from) {
        let parent = name.rsplit_once('/').map(|(p, _)| p);
        if let Some(p) = parent {
            if !to.exists(p).expect("exists") {
                to.create_dir(p).unwrap();
            }
        }
        to.write_new(&name, &bytes).unwrap();
    }
}

/// The committed format-1 fixture (`tests/fixtures/compat/v1`) opens from disk and, copied
/// into memory, gives the same answers there.
#[test]
fn format_v1_fixture_opens_in_both_backends() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/compat/v1/.turboprop/index");
    let on_disk = Index::open(&fixture).unwrap();
    assert!(on_disk.verify().is_empty(), "{:?}", on_disk.verify());
    assert_eq!(on_disk.manifest().generation, 2);
    let mut files: Vec<_> = on_disk
        .files()
        .unwrap()
        .map(|f| f.path().to_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["billing/invoice.py", "inventory/stock.rs", "web/cart.ts"]
    );

    let mem = MemDirectory::new();
    copy_into(&FsDirectory::new(&fixture), &mem);
    let in_mem = Index::open_in(Arc::new(mem)).unwrap();
    assert!(in_mem.verify().is_empty());
    assert_eq!(on_disk.manifest(), in_mem.manifest());
    assert_eq!(on_disk.stats().bytes_on_disk, in_mem.stats().bytes_on_disk);
    // Every stored row, as a query.
    let all = SearchOptions {
        limit: 100,
        ..SearchOptions::default()
    };
    let mut queries = 0;
    for segment in &on_disk.manifest().segments {
        let reader =
            SegmentReader::open(on_disk.directory(), &segment.name, ReadMode::Heap).unwrap();
        for row in 0..reader.rows() {
            let query = reader.vector(row).unwrap();
            let hits = on_disk.search(query, &all).unwrap();
            assert_eq!(hits, in_mem.search(query, &all).unwrap());
            queries += usize::from(!hits.is_empty());
        }
    }
    assert!(queries > 0, "no query found anything");
}

/// A commit that compacts the format-1 fixture's segments rewrites their files in the current
/// format (file records in `files.bin`), with the same answers.
#[test]
fn compaction_rewrites_format_1_segments_in_the_current_format() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/compat/v1/.turboprop/index");
    let mem: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    copy_into(&FsDirectory::new(&fixture), &*mem);
    let old = Index::open_in(mem.clone()).unwrap();
    let spec = IndexSpec {
        lexical: None,
        model: old.model().clone(),
        chunking: old.manifest().chunking.clone(),
        spaces: Vec::new(),
    };
    for segment in &old.manifest().segments {
        let reader = SegmentReader::open(&*mem, &segment.name, ReadMode::Heap).unwrap();
        assert_eq!(reader.format_version(), 1);
        assert!(
            reader.is_materialized(),
            "format 1 lists are parsed on open"
        );
    }
    let all = SearchOptions {
        limit: 100,
        ..SearchOptions::default()
    };
    let query = {
        let first = &old.manifest().segments[0].name;
        let reader = SegmentReader::open(&*mem, first, ReadMode::Heap).unwrap();
        reader.vector(0).unwrap().to_vec()
    };
    let answer = |i: &Index| -> Vec<(String, u32, u32)> {
        i.search(&query, &all)
            .unwrap()
            .into_iter()
            .map(|h| {
                (
                    h.chunk.file().to_owned(),
                    h.chunk.line_start(),
                    h.chunk.line_end(),
                )
            })
            .collect()
    };
    let before = answer(&old);
    let mut files_before: Vec<FileRecord> = old.files().unwrap().cloned().collect();
    files_before.sort_by(|a, b| a.path().cmp(b.path()));
    drop(old);

    let merge_all = CompactionConfig {
        max_segments: 1,
        max_deleted_ratio: 0.25,
    };
    let mut w = IndexWriter::open_in(mem.clone(), spec, opts(merge_all), || {}).unwrap();
    // Touch one file: a change, so the commit runs (and merges everything).
    let touched = files_before[0].clone();
    w.touch_file(touched);
    let stats = w.commit().unwrap();
    assert_eq!(stats.segments, 1);
    assert!(stats.segments_merged >= 2, "{stats:?}");

    let new = Index::open_in(mem.clone()).unwrap();
    assert_eq!(answer(&new), before);
    assert_eq!(new.materialized_segments(), 0);
    assert!(new.verify().is_empty(), "{:?}", new.verify());
    let name = &new.manifest().segments[0].name;
    let reader = SegmentReader::open(&*mem, name, ReadMode::Heap).unwrap();
    assert_eq!(
        reader.format_version(),
        turboprop_storage::SYMBOLS_FORMAT_VERSION
    );
    assert!(mem
        .exists(&join_name(name, turboprop_storage::FILES_FILE))
        .expect("exists"));
    let mut files_after: Vec<FileRecord> = new.files().unwrap().cloned().collect();
    files_after.sort_by(|a, b| a.path().cmp(b.path()));
    assert_eq!(files_after, files_before);
}
