//! Damage through the library's public interface (issue 13, findings 11 and 12): a vector
//! holding NaN or infinity behind a valid checksum is damage for `search`, `verify` and a
//! writer, which drops exactly the damaged segment and commits a generation without it.

use std::sync::Arc;

use turboprop_index::{
    Directory, Index, IndexSpec, IndexWriter, MemDirectory, ModelGuard, NewChunk, SearchOptions,
    Strategy, WriterOptions,
};
use turboprop_storage::{payload_hash, Header, ReadMode, HEADER_LEN};
use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};

fn spec() -> IndexSpec {
    IndexSpec::new(
        ModelGuard {
            id: "test".into(),
            dimensions: 4,
        },
        ChunkingConfig::default(),
    )
}

/// Commits `path` with one chunk of `vector` as its own segment.
fn commit_file(dir: &Arc<dyn Directory>, path: &str, vector: [f32; 4]) {
    let mut writer =
        IndexWriter::open_in(dir.clone(), spec(), WriterOptions::default(), || {}).expect("open");
    let hash = ContentHash::of(path.as_bytes());
    let record = FileRecord::new(path, 10, 0, hash).expect("record");
    let chunk = NewChunk {
        lexical: None,
        line_start: 1,
        line_end: 1,
        byte_start: 0,
        byte_end: 10,
        hash,
        vector: vector.to_vec(),
        terms: vec![],
        spaces: vec![],
        symbol: None,
        kind: None,
    };
    writer.put_file(record, vec![chunk]).expect("put");
    writer.commit().expect("commit");
}

/// Overwrites row 0 of `segment`'s vectors with `value` and stores a valid checksum.
fn poison(dir: &Arc<dyn Directory>, segment: &str, value: f32) {
    let name = format!("{segment}/vectors.bin");
    let mut bytes = dir
        .read(&name, ReadMode::Heap)
        .expect("read")
        .bytes()
        .to_vec();
    bytes[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&value.to_le_bytes());
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let header = Header {
        magic: bytes[0..8].try_into().expect("8 bytes"),
        version: u32_at(8),
        width: u32_at(12),
        count: u64_at(16),
        payload_len: u64_at(24),
        payload_hash: payload_hash(&bytes[HEADER_LEN..]),
        extra: u64_at(48),
    };
    bytes[..HEADER_LEN].copy_from_slice(&header.encode());
    dir.replace(&name, &bytes).expect("replace");
}

#[test]
fn non_finite_vectors_are_damage_and_a_writer_drops_only_their_segment() {
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
        commit_file(&dir, "a.rs", [1.0, 0.0, 0.0, 0.0]);
        commit_file(&dir, "b.rs", [0.6, 0.8, 0.0, 0.0]);
        poison(&dir, "seg-00000002", value);

        let index = Index::open_in(dir.clone()).expect("opens: the bytes are well formed");
        let query = [0.6, 0.8, 0.0, 0.0];
        for strategy in [Strategy::Exact, Strategy::Fast] {
            let opts = SearchOptions {
                strategy,
                ..SearchOptions::default()
            };
            let err = index
                .search(&query, &opts)
                .expect_err("a non-finite score is damage, not a missing hit");
            assert!(err.is_damage(), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("seg-00000002/vectors.bin") && text.contains("row 0"),
                "{text}"
            );
        }
        let problems = index.verify();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].to_string().contains("non-finite"),
            "{}",
            problems[0]
        );
        drop(index);

        let mut writer = IndexWriter::open_in(dir.clone(), spec(), WriterOptions::default(), || {})
            .expect("open");
        let damage = writer.drop_damaged_segments();
        assert_eq!(damage.len(), 1);
        assert_eq!(
            (damage[0].name.as_str(), damage[0].files),
            ("seg-00000002", 1)
        );
        let left: Vec<String> = writer
            .base()
            .expect("a base")
            .files()
            .expect("files")
            .map(|f| f.path().to_owned())
            .collect();
        assert_eq!(left, ["a.rs"]);
        let stats = writer.commit().expect("commit");
        assert!(stats.committed, "dropping a segment is a change to commit");

        let index = Index::open_in(dir.clone()).expect("open");
        assert!(index.verify().is_empty());
        let hits = index
            .search(&query, &SearchOptions::default())
            .expect("search");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].chunk.file(), "a.rs");
    }
}

#[test]
fn a_repairing_writer_leaves_out_a_segment_that_does_not_open() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    commit_file(&dir, "a.rs", [1.0, 0.0, 0.0, 0.0]);
    commit_file(&dir, "b.rs", [0.6, 0.8, 0.0, 0.0]);
    let name = "seg-00000002/vectors.bin";
    let bytes = dir
        .read(name, ReadMode::Heap)
        .expect("read")
        .bytes()
        .to_vec();
    dir.replace(name, &bytes[..bytes.len() - 4])
        .expect("truncate");

    let strict = IndexWriter::open_in(dir.clone(), spec(), WriterOptions::default(), || {});
    assert!(strict.expect_err("a plain writer refuses").is_damage());

    let mut writer =
        IndexWriter::open_in_repairing(dir.clone(), spec(), WriterOptions::default(), || {})
            .expect("a repairing writer opens");
    let damage = writer.drop_damaged_segments();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(damage[0].name, "seg-00000002");
    assert!(damage[0].problems[0].to_string().contains(name));
    assert!(writer.commit().expect("commit").committed);

    let index = Index::open_in(dir).expect("open");
    assert!(index.verify().is_empty());
    let files: Vec<String> = index
        .files()
        .expect("files")
        .map(|f| f.path().to_owned())
        .collect();
    assert_eq!(files, ["a.rs"]);
}
