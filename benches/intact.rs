//! The cost of [`Index::check_intact`], which every search runs before it returns (issue 13,
//! finding 8): on an index of 20 segments, while no mapping of the process has faulted (the
//! fast path: one atomic load), and after an unrelated mapping faulted (every file of the
//! index asked: one atomic load per mapped file).

use criterion::{criterion_group, criterion_main, Criterion};
use turboprop::index::{Index, IndexSpec, IndexWriter, ModelGuard, NewChunk, WriterOptions};
use turboprop::storage::{FileBytes, ReadMode};
use turboprop::types::{ChunkingConfig, ContentHash, FileRecord};

const SEGMENTS: usize = 20;

fn spec() -> IndexSpec {
    IndexSpec {
        lexical: None,
        model: ModelGuard {
            id: "bench".into(),
            dimensions: 8,
        },
        chunking: ChunkingConfig::default(),
        spaces: Vec::new(),
    }
}

/// An index of [`SEGMENTS`] segments (one commit each, no merging) of 10 files.
fn build(path: &std::path::Path) {
    let mut opts = WriterOptions::default();
    opts.compaction.max_segments = u32::MAX;
    let mut w = IndexWriter::open(path, spec(), opts, || {}).expect("writer");
    for s in 0..SEGMENTS {
        for f in 0..10 {
            let name = format!("s{s}/f{f}.rs");
            let hash = ContentHash::of(name.as_bytes());
            let chunk = NewChunk {
                lexical: None,
                line_start: 1,
                line_end: 2,
                byte_start: 0,
                byte_end: 1,
                hash,
                vector: vec![0.5; 8],
                terms: Vec::new(),
                spaces: Vec::new(),
                symbol: None,
                kind: None,
            };
            let record = FileRecord::new(name, 1, 1, hash).expect("record");
            w.put_file(record, vec![chunk]).expect("put");
        }
        w.commit_and_continue().expect("commit");
    }
}

fn intact(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("index");
    build(&path);
    let index = Index::open(&path).expect("open");
    assert_eq!(index.segment_count(), SEGMENTS);
    c.bench_function("check_intact/no fault in the process", |b| {
        b.iter(|| index.check_intact().expect("intact"))
    });

    // A mapping of another file faults: from now on every check asks each file.
    let other = tmp.path().join("other.bin");
    std::fs::write(&other, vec![1u8; 8192]).expect("write");
    let bytes = FileBytes::open(&other, ReadMode::Mmap).expect("map");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&other)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    assert_eq!(std::hint::black_box(bytes.bytes())[4096], 0);
    assert!(bytes.check_intact().is_err());
    c.bench_function(
        &format!("check_intact/after a fault elsewhere, {SEGMENTS} segments"),
        |b| b.iter(|| index.check_intact().expect("intact")),
    );
}

criterion_group!(benches, intact);
criterion_main!(benches);
