//! What the index's integration tests share: an index spec, chunks and file records made from
//! vectors, and an index written from a list of files.

// Not every test file uses every helper.
#![allow(dead_code)]

use std::path::Path;

use turboprop_index::{
    Index, IndexSpec, IndexWriter, LockWait, ModelGuard, NewChunk, WriterOptions,
};
use turboprop_types::{ChunkingConfig, ContentHash, FileRecord};

pub fn spec(dims: u32) -> IndexSpec {
    IndexSpec {
        lexical: None,
        model: ModelGuard {
            id: "test-vectors".into(),
            dimensions: dims,
        },
        chunking: ChunkingConfig::default(),
        spaces: Vec::new(),
    }
}

pub fn normalized(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n == 0.0 {
        v
    } else {
        v.into_iter().map(|x| x / n).collect()
    }
}

pub fn chunk(i: u32, vector: Vec<f32>) -> NewChunk {
    NewChunk {
        lexical: None,
        line_start: i * 10 + 1,
        line_end: i * 10 + 10,
        byte_start: u64::from(i) * 100,
        byte_end: u64::from(i) * 100 + 100,
        hash: ContentHash::of(&i.to_le_bytes()),
        vector,
        terms: vec![i, 1000],
        spaces: Vec::new(),
        symbol: None,
        kind: None,
    }
}

pub fn record(path: &str, content: &[u8]) -> FileRecord {
    FileRecord::new(path, content.len() as u64, 7, ContentHash::of(content)).expect("valid")
}

pub fn write(path: &Path, files: &[(String, Vec<Vec<f32>>)]) -> Index {
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
