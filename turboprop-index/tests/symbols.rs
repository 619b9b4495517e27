//! Chunks' symbols and kinds through the index: written by `put_file`, read back in hits,
//! carried when a commit copies a file's rows into a new segment, and refused when invalid.

mod support;

use std::sync::Arc;

use support::{chunk, normalized, record, spec};
use turboprop_index::{
    Directory, Index, IndexError, IndexWriter, LockWait, MemDirectory, NewChunk, SearchOptions,
    WriterOptions,
};
use turboprop_types::CompactionConfig;

const DIMS: u32 = 4;

fn options(max_segments: u32) -> WriterOptions {
    WriterOptions {
        wait: LockWait::NoWait,
        rebuild: false,
        compaction: CompactionConfig {
            max_segments,
            max_deleted_ratio: 0.25,
        },
    }
}

fn unit(i: usize) -> Vec<f32> {
    let mut v = vec![0.1; DIMS as usize];
    v[i % DIMS as usize] = 1.0;
    normalized(v)
}

fn with_symbol(mut c: NewChunk, symbol: Option<&str>, kind: Option<&str>) -> NewChunk {
    c.symbol = symbol.map(str::to_owned);
    c.kind = kind.map(str::to_owned);
    c
}

/// The (file, line, symbol, kind) of every hit for `query`.
fn hits(index: &Index, query: &[f32]) -> Vec<(String, u32, Option<String>, Option<String>)> {
    let opts = SearchOptions {
        limit: 10,
        ..SearchOptions::default()
    };
    let mut out: Vec<_> = index
        .search(query, &opts)
        .expect("search")
        .into_iter()
        .map(|h| {
            (
                h.chunk.file().to_owned(),
                h.chunk.line_start(),
                h.chunk.symbol().map(str::to_owned),
                h.chunk.kind().map(str::to_owned),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn symbols_survive_rows_copied_into_a_merged_segment() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let mut w = IndexWriter::open_in(dir.clone(), spec(DIMS), options(8), || {}).expect("writer");
    w.put_file(
        record("src/table.rs", b"table"),
        vec![
            with_symbol(chunk(0, unit(0)), Some("Täble::deal"), Some("method")),
            chunk(1, unit(1)),
            with_symbol(chunk(2, unit(2)), None, Some("impl")),
        ],
    )
    .expect("put");
    w.commit().expect("commit");
    let expected = vec![
        (
            "src/table.rs".to_owned(),
            1,
            Some("Täble::deal".to_owned()),
            Some("method".to_owned()),
        ),
        ("src/table.rs".to_owned(), 11, None, None),
        ("src/table.rs".to_owned(), 21, None, Some("impl".to_owned())),
    ];
    let index = Index::open_in(dir.clone()).expect("open");
    assert_eq!(hits(&index, &unit(0)), expected);
    drop(index);

    // Another file in a second commit that merges every segment: table.rs's rows are
    // copied from the first segment into the new one.
    let mut w = IndexWriter::open_in(dir.clone(), spec(DIMS), options(1), || {}).expect("writer");
    w.put_file(
        record("src/other.rs", b"other"),
        vec![with_symbol(chunk(0, unit(3)), Some("other"), Some("fn"))],
    )
    .expect("put");
    let stats = w.commit().expect("commit");
    assert_eq!(stats.segments, 1);
    assert!(stats.segments_merged >= 1, "{stats:?}");
    let index = Index::open_in(dir).expect("open");
    assert_eq!(index.manifest().segments.len(), 1);
    let mut all = expected;
    all.push((
        "src/other.rs".to_owned(),
        1,
        Some("other".to_owned()),
        Some("fn".to_owned()),
    ));
    all.sort();
    assert_eq!(hits(&index, &unit(0)), all);
    assert!(index.verify().is_empty(), "{:?}", index.verify());
}

#[test]
fn invalid_symbols_and_kinds_are_refused_by_put_file() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let mut w = IndexWriter::open_in(dir, spec(DIMS), options(8), || {}).expect("writer");
    let long = "x".repeat(1025);
    for (symbol, kind) in [
        (Some(""), None),
        (Some(long.as_str()), None),
        (None, Some("Method")),
        (None, Some("")),
    ] {
        let err = w
            .put_file(
                record("a.rs", b"a"),
                vec![with_symbol(chunk(0, unit(0)), symbol, kind)],
            )
            .expect_err("invalid");
        assert!(
            matches!(&err, IndexError::InvalidVector { what, .. } if what == "a.rs"),
            "{err}"
        );
    }
}
