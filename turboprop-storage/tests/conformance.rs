//! The `Directory` conformance suite: every test here is written once and run against both
//! backends (`fs::*` on a temporary folder, `mem::*` in memory), so the two keep one contract:
//! write-once files, atomic replace, stable reads, listing and removal, an exclusive writer
//! lock, and the storage types (tables, segments, the index folder) on top of them.
//! The index-level half (commits, search, compaction, GC, damage) is in
//! `turboprop-index/tests/conformance.rs`.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use turboprop_storage::{
    join_name, DeleteEntry, Directory, FsDirectory, IndexDir, LexicalRow, LockWait, Manifest,
    MemDirectory, ModelGuard, NewRow, ReadMode, SegmentEntry, SegmentReader, SegmentWriter,
    StorageError, Table, TableKind, TableWriter, CONFIG_FILE, LOCK_FILE, MANIFEST_FILE,
    TEMP_PREFIX, VERSION_FILE,
};
use turboprop_types::{ChunkMethod, ChunkingConfig, ContentHash, FileRecord, IndexConfig};

/// A directory of one backend, with whatever keeps it alive.
struct Backend {
    dir: Arc<dyn Directory>,
    _tmp: Option<tempfile::TempDir>,
}

fn fs_backend() -> Backend {
    let tmp = tempfile::tempdir().unwrap();
    let dir = FsDirectory::new(tmp.path().join("index"));
    dir.create_root().unwrap();
    Backend {
        dir: Arc::new(dir),
        _tmp: Some(tmp),
    }
}

fn mem_backend() -> Backend {
    Backend {
        dir: Arc::new(MemDirectory::new()),
        _tmp: None,
    }
}

/// Instantiates every conformance test for one backend, in a module named after it.
macro_rules! conformance {
    ($backend:ident => $make:path; $($test:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    super::$test(&$make());
                }
            )+
        }
    };
}

macro_rules! suite {
    ($($backend:ident => $make:path),+ $(,)?) => {
        $(
            conformance!($backend => $make;
                write_new_refuses_to_overwrite,
                streamed_file_exists_at_once_and_is_whole_after_finish,
                replace_keeps_old_readers_and_shows_new_ones,
                replace_is_all_or_nothing_under_concurrent_reads,
                list_remove_and_exists,
                reads_survive_removal,
                names_outside_the_folder_are_refused,
                lock_is_exclusive_and_waiting_works,
                segment_round_trip,
                lexical_segment_round_trip,
                damaged_table_is_reported_naming_the_file,
                index_dir_commit_and_garbage_collection,
            );
        )+
    };
}

suite!(fs => super::fs_backend, mem => super::mem_backend);

fn read(dir: &dyn Directory, name: &str) -> Vec<u8> {
    dir.read(name, ReadMode::Mmap).unwrap().bytes().to_vec()
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

fn write_new_refuses_to_overwrite(b: &Backend) {
    let dir = &*b.dir;
    dir.write_new("a.bin", b"precious").unwrap();
    let err = dir.write_new("a.bin", b"other").unwrap_err();
    assert!(!err.is_missing(), "{err}");
    assert!(dir.create("a.bin").is_err(), "create must refuse too");
    assert_eq!(read(dir, "a.bin"), b"precious");

    dir.create_dir("seg").unwrap();
    assert!(dir.create_dir("seg").is_err(), "a folder is created once");
    assert!(
        dir.write_new("seg", b"x").is_err(),
        "a folder is not a file"
    );
    dir.write_new("seg/a.bin", b"inside").unwrap();
    assert_eq!(read(dir, "seg/a.bin"), b"inside");

    let err = dir.write_new("missing/a.bin", b"x").unwrap_err();
    assert!(err.is_missing(), "a file in a missing folder: {err}");
    assert!(dir.create_dir("missing/sub").unwrap_err().is_missing());

    // An empty file is a file.
    dir.write_new("empty", b"").unwrap();
    assert_eq!(read(dir, "empty"), b"");
    assert_eq!(dir.file_len("empty").unwrap(), 0);
    assert_eq!(dir.file_len("a.bin").unwrap(), 8);
}

fn streamed_file_exists_at_once_and_is_whole_after_finish(b: &Backend) {
    let dir = &*b.dir;
    let mut file = dir.create("t.bin").unwrap();
    assert!(
        dir.exists("t.bin").expect("exists"),
        "the name is taken from create on"
    );
    assert!(dir.write_new("t.bin", b"x").is_err());
    file.write_all(&[0u8; 8]).unwrap();
    for i in 0..1000u32 {
        file.write_all(&i.to_le_bytes()).unwrap();
    }
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(b"HEADER!!").unwrap();
    file.finish().unwrap();

    let bytes = read(dir, "t.bin");
    assert_eq!(bytes.len(), 8 + 4000);
    assert_eq!(&bytes[..8], b"HEADER!!");
    assert_eq!(&bytes[8 + 4 * 999..], &999u32.to_le_bytes());
    assert_eq!(dir.file_len("t.bin").unwrap(), 4008);
    // Heap reads see the same bytes.
    assert_eq!(
        dir.read("t.bin", ReadMode::Heap).unwrap().bytes(),
        &bytes[..]
    );
}

fn replace_keeps_old_readers_and_shows_new_ones(b: &Backend) {
    let dir = &*b.dir;
    dir.replace("manifest.json", b"generation one").unwrap();
    let old_map = dir.read("manifest.json", ReadMode::Mmap).unwrap();
    let old_heap = dir.read("manifest.json", ReadMode::Heap).unwrap();
    dir.replace("manifest.json", b"generation two, longer")
        .unwrap();
    assert_eq!(old_map.bytes(), b"generation one");
    assert_eq!(old_heap.bytes(), b"generation one");
    assert_eq!(read(dir, "manifest.json"), b"generation two, longer");
    assert_eq!(
        old_map.path(),
        dir.location("manifest.json"),
        "reads name their file"
    );
    // No temp file is left behind, and a folder cannot be replaced by a file.
    assert_eq!(dir.list("").unwrap(), ["manifest.json"]);
    dir.create_dir("seg").unwrap();
    assert!(dir.replace("seg", b"x").is_err());
    assert!(dir.replace("missing/x", b"x").unwrap_err().is_missing());
}

fn replace_is_all_or_nothing_under_concurrent_reads(b: &Backend) {
    let a = vec![b'a'; 3000];
    let bb = vec![b'b'; 70_000];
    b.dir.replace("m", &a).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let dir = b.dir.clone();
            let stop = stop.clone();
            let (a, bb) = (a.clone(), bb.clone());
            thread::spawn(move || {
                let mut reads = 0u32;
                while !stop.load(Ordering::Relaxed) || reads < 10 {
                    let mode = if reads.is_multiple_of(2) {
                        ReadMode::Mmap
                    } else {
                        ReadMode::Heap
                    };
                    let got = dir.read("m", mode).unwrap();
                    assert!(
                        got.bytes() == &a[..] || got.bytes() == &bb[..],
                        "a reader saw a mix of {} bytes",
                        got.bytes().len()
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 0..40 {
        b.dir
            .replace("m", if i % 2 == 0 { &bb } else { &a })
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 10);
    }
    assert_eq!(read(&*b.dir, "m"), a);
}

fn list_remove_and_exists(b: &Backend) {
    let dir = &*b.dir;
    assert!(
        dir.exists("").expect("exists"),
        "the directory itself exists"
    );
    assert!(dir.list("").unwrap().is_empty());
    dir.write_new("b.txt", b"b").unwrap();
    dir.write_new("a.txt", b"a").unwrap();
    dir.create_dir("seg-1").unwrap();
    dir.write_new("seg-1/x.bin", b"x").unwrap();
    dir.create_dir("seg-1/deeper").unwrap();
    dir.write_new("seg-1/deeper/y.bin", b"y").unwrap();
    assert_eq!(dir.list("").unwrap(), ["a.txt", "b.txt", "seg-1"]);
    assert_eq!(dir.list("seg-1").unwrap(), ["deeper", "x.bin"]);
    assert!(dir.list("nope").unwrap_err().is_missing());
    assert!(dir.list("a.txt").is_err(), "a file is not a folder");
    assert!(
        dir.exists("seg-1/deeper/y.bin").expect("exists")
            && dir.exists("seg-1").expect("exists")
            && !dir.exists("c.txt").expect("exists")
    );

    dir.remove("a.txt").unwrap();
    assert!(!dir.exists("a.txt").expect("exists"));
    assert!(dir.read("a.txt", ReadMode::Mmap).unwrap_err().is_missing());
    assert!(dir.remove("a.txt").unwrap_err().is_missing());
    assert!(dir.file_len("a.txt").unwrap_err().is_missing());

    dir.remove("seg-1").unwrap();
    for gone in ["seg-1", "seg-1/x.bin", "seg-1/deeper", "seg-1/deeper/y.bin"] {
        assert!(
            !dir.exists(gone).expect("exists"),
            "{gone} survived its folder's removal"
        );
    }
    assert_eq!(dir.list("").unwrap(), ["b.txt"]);
    // The name is free again.
    dir.create_dir("seg-1").unwrap();
    assert!(dir.list("seg-1").unwrap().is_empty());
    dir.sync_dir("seg-1").unwrap();
    dir.sync_dir("").unwrap();
    assert!(dir.sync_dir("nope").unwrap_err().is_missing());
}

fn reads_survive_removal(b: &Backend) {
    let dir = &*b.dir;
    dir.create_dir("seg").unwrap();
    dir.write_new("seg/v.bin", &[7u8; 4096]).unwrap();
    let mapped = dir.read("seg/v.bin", ReadMode::Mmap).unwrap();
    let heap = dir.read("seg/v.bin", ReadMode::Heap).unwrap();
    dir.remove("seg").unwrap();
    assert_eq!(mapped.bytes(), &[7u8; 4096][..]);
    assert_eq!(heap.bytes(), &[7u8; 4096][..]);
}

fn names_outside_the_folder_are_refused(b: &Backend) {
    let dir = &*b.dir;
    for bad in ["../escape", "/etc/passwd", "a//b", "./a", "seg/..", ""] {
        assert!(dir.write_new(bad, b"x").is_err(), "write_new {bad:?}");
        assert!(dir.read(bad, ReadMode::Heap).is_err(), "read {bad:?}");
        assert!(dir.remove(bad).is_err(), "remove {bad:?}");
        assert!(dir.create_dir(bad).is_err(), "create_dir {bad:?}");
    }
    assert!(
        dir.exists("../escape").is_err(),
        "a name leading out is refused"
    );
}

fn lock_is_exclusive_and_waiting_works(b: &Backend) {
    let held = b.dir.lock(LOCK_FILE, LockWait::NoWait, &mut || {}).unwrap();
    assert_eq!(held.path(), b.dir.location(LOCK_FILE));
    let mut waited = false;
    match b
        .dir
        .lock(LOCK_FILE, LockWait::NoWait, &mut || waited = true)
    {
        Err(StorageError::Busy { path }) => assert_eq!(path, b.dir.location(LOCK_FILE)),
        other => panic!("a second NoWait lock must be Busy, got {other:?}"),
    }
    assert!(!waited, "NoWait never waits");

    // A waiting locker says so once, then blocks until the holder lets go.
    let acquired = Arc::new(AtomicBool::new(false));
    let (waiting_tx, waiting_rx) = mpsc::channel();
    let waiter = {
        let dir = b.dir.clone();
        let acquired = acquired.clone();
        thread::spawn(move || {
            let lock = dir
                .lock(LOCK_FILE, LockWait::Block, &mut || {
                    waiting_tx.send(()).unwrap();
                })
                .unwrap();
            acquired.store(true, Ordering::SeqCst);
            // Hold it a moment so the main thread can see it is busy.
            thread::sleep(Duration::from_millis(50));
            drop(lock);
        })
    };
    waiting_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the waiter must call on_wait when the lock is held");
    thread::sleep(Duration::from_millis(100));
    assert!(
        !acquired.load(Ordering::SeqCst),
        "the waiter got the lock while it was held"
    );
    drop(held);
    waiter.join().unwrap();
    assert!(acquired.load(Ordering::SeqCst));
    // Released again: anyone may take it.
    let again = b.dir.lock(LOCK_FILE, LockWait::NoWait, &mut || {});
    assert!(again.is_ok(), "{again:?}");
    // Another name is another lock.
    drop(again);
    let one = b
        .dir
        .lock("one.lock", LockWait::NoWait, &mut || {})
        .unwrap();
    let two = b.dir.lock("two.lock", LockWait::NoWait, &mut || {});
    assert!(two.is_ok(), "{two:?}");
    drop(one);
}

// ---------------------------------------------------------------------------------------------
// Storage types over the directory
// ---------------------------------------------------------------------------------------------

fn record(path: &str) -> FileRecord {
    FileRecord::new(path, 100, 5, ContentHash::of(path.as_bytes())).unwrap()
}

fn segment_round_trip(b: &Backend) {
    let dir = &*b.dir;
    let name = IndexDir::segment_name(3);
    let mut w = SegmentWriter::create(dir, &name, 3).unwrap();
    static V: [[f32; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.0, 0.8, 0.6]];
    let row = |i: usize, v: &'static [f32]| NewRow {
        line_start: i as u32 * 10 + 1,
        line_end: i as u32 * 10 + 10,
        byte_start: i as u64 * 50,
        byte_end: i as u64 * 50 + 50,
        hash: ContentHash::of(&[i as u8]),
        vector: v,
        symbol: None,
        kind: None,
        lexical: None,
    };
    w.add_file(
        record("a.rs"),
        [row(0, &V[0]), row(1, &V[1])],
        &[(5, 2), (9, 1)],
    )
    .unwrap();
    w.add_file(record("empty.rs"), [], &[]).unwrap();
    w.add_file(record("b.rs"), [row(0, &V[2])], &[(5, 1)])
        .unwrap();
    let summary = w.finish().unwrap();
    assert_eq!(
        (summary.name.as_str(), summary.rows, summary.files),
        (name.as_str(), 3, 3)
    );
    assert!(
        SegmentWriter::create(dir, &name, 3).is_err(),
        "a segment folder is written once"
    );

    let files = dir.list(&name).unwrap();
    assert_eq!(
        files,
        [
            "chunks.bin",
            "df.bin",
            "files.bin",
            "metadata.json",
            "paths.bin",
            "symbols.bin",
            "symtext.bin",
            "terms.bin",
            "vectors.bin"
        ]
    );
    let on_disk: u64 = files
        .iter()
        .map(|f| dir.file_len(&join_name(&name, f)).unwrap())
        .sum();
    assert_eq!(summary.bytes, on_disk);

    for mode in [ReadMode::Mmap, ReadMode::Heap] {
        let r = SegmentReader::open(dir, &name, mode).unwrap();
        assert_eq!(r.dir(), dir.location(&name));
        assert_eq!((r.rows(), r.dims()), (3, 3));
        assert_eq!(r.vectors(), V.concat().as_slice());
        assert_eq!(r.vector(2), Some(&V[2][..]));
        assert_eq!(r.vector(3), None);
        assert_eq!(r.file_count(), 3);
        assert_eq!(r.format_version(), 4);
        assert_eq!(r.chunk_symbol(2).unwrap(), (None, None));
        assert_eq!(r.file_path(2).unwrap(), "b.rs");
        assert_eq!(r.file_rows(0).unwrap(), 0..2);
        assert_eq!(r.file_rows(1).unwrap(), 2..2);
        assert_eq!(r.file_rows(2).unwrap(), 2..3);
        assert!(r.file_rows(3).is_err());
        assert_eq!(r.file(0).unwrap().record, record("a.rs"));
        assert!(!r.is_materialized());
        let paths: Vec<_> = r.files().unwrap().iter().map(|f| f.record.path()).collect();
        assert_eq!(paths, ["a.rs", "empty.rs", "b.rs"]);
        assert!(r.is_materialized());
        for (i, f) in r.files().unwrap().iter().enumerate() {
            assert_eq!(&r.file(i).unwrap(), f);
        }
        let c = r.chunk(2).unwrap();
        assert_eq!((c.file, c.line_start, c.byte_end), (2, 1, 50));
        assert!(r.chunk(3).is_err());
        assert_eq!(r.file_terms(0).unwrap(), [(5, 2), (9, 1)]);
        assert_eq!(r.file_terms(1).unwrap(), []);
        assert_eq!((r.doc_freq(5), r.doc_freq(9), r.doc_freq(1)), (3, 1, 0));
        r.verify().unwrap();
        for f in 0..3 {
            r.verify_file_rows(f).unwrap();
        }
        assert_eq!(r.bytes_on_disk(), on_disk);
    }
}

fn lexical_segment_round_trip(b: &Backend) {
    let dir = &*b.dir;
    let name = IndexDir::segment_name(5);
    let mut w = SegmentWriter::create_lexical(dir, &name, 1, &[]).unwrap();
    let row = |terms: &'static [(&'static str, f32)], length: f32| NewRow {
        line_start: 1,
        line_end: 1,
        byte_start: 0,
        byte_end: 1,
        hash: ContentHash::of(b"x"),
        vector: &[1.0],
        symbol: Some("pot"),
        kind: None,
        lexical: Some(LexicalRow { terms, length }),
    };
    w.add_file(
        record("a.rs"),
        [row(&[("bet", 1.0), ("pot", 2.0)], 3.0), row(&[], 0.5)],
        &[],
    )
    .unwrap();
    w.add_file(record("b.rs"), [row(&[("pot", 4.0)], 4.0)], &[])
        .unwrap();
    assert!(
        w.add_file(
            record("c.rs"),
            [NewRow {
                lexical: None,
                ..row(&[], 1.0)
            }],
            &[]
        )
        .is_err(),
        "every row of a lexical segment has terms"
    );
    drop(w);
    let name = IndexDir::segment_name(6);
    let mut w = SegmentWriter::create_lexical(dir, &name, 1, &[]).unwrap();
    w.add_file(
        record("a.rs"),
        [row(&[("bet", 1.0), ("pot", 2.0)], 3.0), row(&[], 0.5)],
        &[],
    )
    .unwrap();
    w.add_file(record("b.rs"), [row(&[("pot", 4.0)], 4.0)], &[])
        .unwrap();
    let summary = w.finish().unwrap();
    let files = dir.list(&name).unwrap();
    assert_eq!(
        files,
        [
            "chunks.bin",
            "df.bin",
            "files.bin",
            "lengths.bin",
            "lexicon.bin",
            "lextext.bin",
            "metadata.json",
            "paths.bin",
            "postings.bin",
            "symbols.bin",
            "symtext.bin",
            "terms.bin",
            "vectors.bin"
        ]
    );
    let on_disk: u64 = files
        .iter()
        .map(|f| dir.file_len(&join_name(&name, f)).unwrap())
        .sum();
    assert_eq!(summary.bytes, on_disk);
    for mode in [ReadMode::Mmap, ReadMode::Heap] {
        let r = SegmentReader::open(dir, &name, mode).unwrap();
        assert_eq!(r.format_version(), 5);
        let lexical = r.lexical().unwrap();
        assert_eq!((lexical.terms(), lexical.postings_len()), (2, 3));
        assert_eq!(lexical.total_length(), 7.5);
        let pot = lexical.lookup("pot").unwrap().unwrap();
        assert_eq!(pot.iter().collect::<Vec<_>>(), [(0, 2.0), (2, 4.0)]);
        assert!(lexical.lookup("pit").unwrap().is_none());
        assert_eq!(lexical.lengths(), [3.0, 0.5, 4.0]);
        let forward = lexical.forward().unwrap();
        assert_eq!(forward.terms_of(0), [("bet", 1.0), ("pot", 2.0)]);
        assert!(forward.terms_of(1).is_empty());
        r.verify().unwrap();
        for f in 0..2 {
            r.verify_file_rows(f).unwrap();
        }
        assert_eq!(r.bytes_on_disk(), on_disk);
        r.check_intact().unwrap();
    }
}

fn damaged_table_is_reported_naming_the_file(b: &Backend) {
    let dir = &*b.dir;
    let mut w = TableWriter::create(dir, "terms.bin", TableKind::Terms, 0).unwrap();
    for i in 0u32..4 {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&i.to_le_bytes());
        rec[4..].copy_from_slice(&(i + 1).to_le_bytes());
        w.push(&rec).unwrap();
    }
    w.finish(0).unwrap();
    let pristine = read(dir, "terms.bin");
    let location = dir.location("terms.bin");
    let put = |bytes: &[u8]| {
        dir.remove("terms.bin").unwrap();
        dir.write_new("terms.bin", bytes).unwrap();
    };
    for at in 0..pristine.len() {
        let mut bad = pristine.clone();
        bad[at] ^= 0x01;
        put(&bad);
        let err = Table::open(dir, "terms.bin", TableKind::Terms, ReadMode::Mmap)
            .and_then(|t| t.verify().map(|()| t))
            .expect_err("every flipped byte is caught");
        assert!(err.is_damage(), "byte {at}: {err}");
        assert!(
            err.to_string().contains(&*location.to_string_lossy()),
            "byte {at}: {err} does not name {}",
            location.display()
        );
    }
    for len in [0, 10, 64, pristine.len() - 1] {
        put(&pristine[..len]);
        let err = Table::open(dir, "terms.bin", TableKind::Terms, ReadMode::Heap).unwrap_err();
        assert!(err.is_damage(), "truncated to {len}: {err}");
    }
    put(&pristine);
    Table::open(dir, "terms.bin", TableKind::Terms, ReadMode::Mmap)
        .unwrap()
        .verify()
        .unwrap();
}

fn manifest(generation: u64, segments: Vec<SegmentEntry>) -> Manifest {
    Manifest {
        generation,
        updated_at_ms: 1,
        model: ModelGuard {
            id: "m".into(),
            dimensions: 3,
        },
        chunking: ChunkingConfig::default(),
        spaces: Vec::new(),
        lexical: None,
        segments,
    }
}

fn index_dir_commit_and_garbage_collection(b: &Backend) {
    let index = IndexDir::with_directory(b.dir.clone());
    assert!(!index.exists().expect("exists"));
    assert!(index.read_manifest().unwrap().is_none());
    index.init(&IndexConfig::default()).unwrap();
    assert!(index.exists().expect("exists"));
    index.check_version().unwrap();
    assert_eq!(index.read_config().unwrap(), IndexConfig::default());
    let lock = index.lock(LockWait::NoWait, || {}).unwrap();
    assert!(index.lock(LockWait::NoWait, || {}).is_err());

    // Generation 1 is committed; generation 2's files are written but never committed.
    for g in [1, 2] {
        let mut w = SegmentWriter::create(&*b.dir, &IndexDir::segment_name(g), 3).unwrap();
        w.add_file(record("a.rs"), [], &[]).unwrap();
        w.finish().unwrap();
    }
    b.dir
        .write_new(
            &IndexDir::delete_set_name("seg-00000001", 1),
            b"live delete set",
        )
        .unwrap();
    b.dir
        .write_new(&IndexDir::delete_set_name("seg-00000001", 2), b"stray")
        .unwrap();
    b.dir
        .write_new(&format!("{TEMP_PREFIX}1-2-manifest.json"), b"temp")
        .unwrap();
    b.dir.write_new("notes.txt", b"not ours: kept").unwrap();
    let live = manifest(
        1,
        vec![SegmentEntry {
            name: IndexDir::segment_name(1),
            rows: 0,
            files: 1,
            deletes: Some(DeleteEntry {
                name: IndexDir::delete_set_name("seg-00000001", 1),
                files: 0,
                rows: 0,
            }),
            codes: false,
            codes8: false,
            planes: false,
            spaces: Vec::new(),
        }],
    );
    index.commit(&lock, &live).unwrap();
    assert_eq!(index.read_manifest().unwrap(), Some(live.clone()));
    assert_eq!(index.highest_generation_on_disk().unwrap(), 2);

    let removed = index.collect_garbage(&lock, Some(&live)).unwrap();
    assert_eq!(removed, 3, "seg 2, the stray delete set and the temp file");
    let mut want: BTreeSet<String> = live.live_names();
    for kept in [
        VERSION_FILE,
        CONFIG_FILE,
        MANIFEST_FILE,
        LOCK_FILE,
        "notes.txt",
    ] {
        want.insert(kept.to_owned());
    }
    let have: BTreeSet<String> = b.dir.list("").unwrap().into_iter().collect();
    assert_eq!(have, want, "GC must remove exactly the unnamed files");
    SegmentReader::open(&*b.dir, "seg-00000001", ReadMode::Mmap).unwrap();

    // With nothing committed, every generation is garbage.
    assert_eq!(index.collect_garbage(&lock, None).unwrap(), 2);
    assert!(!index.has_data().expect("exists"));
    assert!(index.has_turboprop_entries().expect("exists"));
}

/// An index written before syntax-aware chunking records no chunking `method`: its rows were
/// all line windows, and that is how its manifest reads (so `tp` re-chunks it and says so),
/// while a manifest that names a method keeps it.
#[test]
fn a_manifest_without_a_chunking_method_records_windows() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let index = IndexDir::with_directory(dir.clone());
    index.init(&IndexConfig::default()).unwrap();
    let written = manifest(1, Vec::new());
    assert_eq!(written.chunking.method, ChunkMethod::Syntax);
    let mut json = serde_json::to_value(&written).unwrap();
    let put = |json: &serde_json::Value| {
        let doc = turboprop_storage::encode_document(
            std::path::Path::new(MANIFEST_FILE),
            "manifest",
            json,
        )
        .unwrap();
        dir.replace(MANIFEST_FILE, &doc).unwrap();
    };
    put(&json);
    assert_eq!(index.read_manifest().unwrap(), Some(written.clone()));
    json["chunking"]
        .as_object_mut()
        .unwrap()
        .remove("method")
        .expect("the manifest records its method");
    put(&json);
    let legacy = index.read_manifest().unwrap().unwrap();
    assert_eq!(legacy.chunking.method, ChunkMethod::Windows);
    assert_eq!(legacy.chunking.lines, written.chunking.lines);
}
