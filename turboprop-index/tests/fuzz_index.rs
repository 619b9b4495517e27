//! Structure-aware fuzzing of every parser of an index folder, on stable Rust (proptest).
//!
//! An index folder is untrusted input (it can arrive with a `git clone`). Each case starts
//! from a real index on disk (three commits: two segments, a delete set, term statistics,
//! codes and planes, an additional vector space, the exact lexical space's postings,
//! `config.yaml`, `version.txt`) and damages
//! one of its files the way a crafted or broken file would be:
//! - bit flips, overwritten bytes, truncation, extension, random bytes;
//! - header fields (version, width, count, payload length, extra) set to extreme values,
//!   with the header's own checksum recomputed so the field reaches the parser;
//! - payload bytes changed with the payload checksum recomputed, so the table's records
//!   (offsets, lengths, ids) reach the code that trusts them;
//! - JSON documents (`manifest.json`, `metadata.json`) re-encoded, checksum and all, after a
//!   value in them was changed (huge, negative or fractional numbers, paths leading out,
//!   duplicated or emptied lists, removed keys);
//! - `config.yaml` and `version.txt` replaced by deep nesting, huge numbers or noise.
//!
//! Then everything a user can run on it is run: open, stats, verify, the file list, exact
//! and fast searches in both spaces, lexical (BM25 over the postings) and fused,
//! `read_manifest`/`read_config`, and a writer
//! that repairs and commits. Any outcome is allowed but a panic, and no case may allocate
//! more than [`MAX_CASE_ALLOCATION`] (a counting allocator watches): memory must never follow
//! a claimed size.
//!
//! `TURBOPROP_FUZZ_CASES` sets the number of cases (default 200, a few seconds in a debug
//! build); `cargo test --release -p turboprop-index --test fuzz_index` with a large number
//! is the long run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use turboprop_index::{
    FileFilter, Index, IndexSpec, IndexWriter, LexicalQuery, ModelGuard, NewChunk, SearchOptions,
    SpaceQuery, Strategy as SearchStrategy, WriterOptions,
};
use turboprop_storage::{encode_document, payload_hash, Header, IndexDir, HEADER_LEN};
use turboprop_types::{ChunkingConfig, ContentHash, FileRecord, IndexConfig, LexicalTerms};

/// Bytes allocated now and the most since the last reset.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counts are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most one case may allocate beyond what was live when it began.
const MAX_CASE_ALLOCATION: usize = 256 << 20;

const DIMS: u32 = 16;
const SPACE_DIMS: u32 = 8;

fn spec() -> IndexSpec {
    let mut spec = IndexSpec::new(
        ModelGuard {
            id: "fuzz-lexical".into(),
            dimensions: DIMS,
        },
        ChunkingConfig::default(),
    );
    spec.spaces = vec![ModelGuard {
        id: "fuzz-model".into(),
        dimensions: SPACE_DIMS,
    }];
    spec.lexical = Some("fuzz-words".into());
    spec
}

/// A chunk's exact terms: a few words shared across files, one of its own.
fn lexical(seed: u32, i: u32) -> LexicalTerms {
    let mut terms = vec![
        (format!("w{}", seed % 5), 1.0 + (i % 3) as f32),
        (format!("only{seed}x{i}"), 1.0),
        ("shared".to_owned(), 0.5),
    ];
    terms.sort_by(|a, b| a.0.cmp(&b.0));
    LexicalTerms::from_pairs(terms, 3.0 + i as f32)
}

fn unit(seed: u32, dims: u32) -> Vec<f32> {
    let v: Vec<f32> = (0..dims)
        .map(|j| (((seed * 31 + j * 17) % 23) as f32 - 11.0) / 7.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.into_iter().map(|x| x / n).collect()
}

fn put(writer: &mut IndexWriter, path: &str, chunks: u32, seed: u32) {
    let hash = ContentHash::of(format!("{path}{seed}").as_bytes());
    let record =
        FileRecord::new(path, 100 * u64::from(chunks), i64::from(seed), hash).expect("record");
    let chunks = (0..chunks)
        .map(|i| NewChunk {
            lexical: Some(lexical(seed, i)),
            line_start: 1 + i * 10,
            line_end: 10 + i * 10,
            byte_start: u64::from(i) * 100,
            byte_end: u64::from(i + 1) * 100,
            hash: ContentHash::of(format!("{path}{seed}{i}").as_bytes()),
            vector: unit(seed * 7 + i, DIMS),
            terms: vec![seed % 5, 7 + i, 100 + seed],
            spaces: vec![unit(seed * 3 + i, SPACE_DIMS)],
            // Symbols and kinds on some chunks, so symtext.bin has bytes to damage too.
            symbol: (i % 2 == 0).then(|| format!("Item{seed}::f{i}")),
            kind: (i % 3 != 2).then(|| "method".to_owned()),
        })
        .collect();
    writer.put_file(record, chunks).expect("put");
}

/// The pristine index's files: relative path and bytes.
fn pristine() -> &'static Vec<(PathBuf, Vec<u8>)> {
    static FILES: OnceLock<Vec<(PathBuf, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("index");
        for commit in 0..3u32 {
            // No compaction: the deletes stay in delete sets, the segments apart.
            let opts = WriterOptions {
                compaction: turboprop_types::CompactionConfig {
                    max_segments: 100,
                    max_deleted_ratio: 1.0,
                },
                ..WriterOptions::default()
            };
            let mut w = IndexWriter::open(&root, spec(), opts, || {}).expect("writer");
            for f in 0..4u32 {
                put(
                    &mut w,
                    &format!("src/c{commit}/f{f}.rs"),
                    1 + f % 3,
                    commit * 10 + f,
                );
            }
            if commit == 2 {
                w.remove_file("src/c0/f1.rs");
                put(&mut w, "src/c1/f2.rs", 2, 99);
            }
            w.commit().expect("commit");
        }
        IndexDir::new(&root)
            .write_config(&IndexConfig::default())
            .expect("config");
        let mut out = Vec::new();
        collect(&root, &root, &mut out);
        out.sort();
        out
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, out);
        } else if p.file_name().is_some_and(|n| n != "writer.lock") {
            let rel = p.strip_prefix(root).expect("below").to_path_buf();
            out.push((rel, std::fs::read(&p).expect("read")));
        }
    }
}

/// One way to damage a file.
#[derive(Debug, Clone)]
enum Damage {
    FlipBit(usize, u8),
    Overwrite(usize, Vec<u8>),
    Truncate(usize),
    Extend(Vec<u8>),
    Noise(Vec<u8>),
    /// A header field (0: version, 1: width, 2: count, 3: payload_len, 4: extra) set to a
    /// value, the header's checksum recomputed.
    HeaderField(u8, u64),
    /// Payload bytes overwritten, the payload checksum (and the header's) recomputed.
    Payload(usize, Vec<u8>),
    /// A value of a JSON document changed, the document re-encoded with its checksum.
    Json(usize, JsonEdit),
    /// A text file (config.yaml, version.txt) replaced.
    Text(String),
}

#[derive(Debug, Clone)]
enum JsonEdit {
    Number(f64),
    Text(String),
    DuplicateList,
    EmptyList,
    Remove,
}

fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::from(u32::MAX)),
        Just(u64::MAX),
        Just(1 << 40),
        Just(1 << 31),
        any::<u64>(),
        0u64..4096,
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    let bytes = proptest::collection::vec(any::<u8>(), 1..16);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(o, b)| Damage::FlipBit(o, b)),
        (any::<usize>(), bytes.clone()).prop_map(|(o, b)| Damage::Overwrite(o, b)),
        any::<usize>().prop_map(Damage::Truncate),
        proptest::collection::vec(any::<u8>(), 1..200).prop_map(Damage::Extend),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Damage::Noise),
        (0u8..5, extreme()).prop_map(|(f, v)| Damage::HeaderField(f, v)),
        (any::<usize>(), bytes).prop_map(|(o, b)| Damage::Payload(o, b)),
        (any::<usize>(), json_edit()).prop_map(|(i, e)| Damage::Json(i, e)),
        text().prop_map(Damage::Text),
    ]
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        prop_oneof![
            Just(-1.0),
            Just(0.0),
            Just(1e300),
            Just(9.3e18),
            Just(4294967296.0),
            Just(0.5),
            Just(1e6)
        ]
        .prop_map(JsonEdit::Number),
        prop_oneof![
            Just("../../../etc/passwd".to_owned()),
            Just("/etc/passwd".to_owned()),
            Just(String::new()),
            Just("seg-00000001".to_owned()),
            Just("x".repeat(5000)),
            "[a-z0-9./-]{0,20}",
        ]
        .prop_map(JsonEdit::Text),
        Just(JsonEdit::DuplicateList),
        Just(JsonEdit::EmptyList),
        Just(JsonEdit::Remove),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        (1usize..5000).prop_map(|n| "[".repeat(n)),
        (1usize..2000).prop_map(|n| "a:\n".to_owned() + &" b:\n".repeat(n)),
        Just("format_version: 99999999999999999999\n".to_owned()),
        Just("max_filesize: -1\nchunking: {lines: 0, overlap: 100}\n".to_owned()),
        Just("999999999999\n".to_owned()),
        Just(String::new()),
        "\\PC{0,200}",
    ]
}

/// The number of nodes of a JSON value.
fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(nodes).sum(),
        Value::Object(o) => o.values().map(nodes).sum(),
        _ => 0,
    }
}

fn edit_json(value: &mut Value, at: usize, edit: &JsonEdit) {
    let count = nodes(value);
    let target = at % count;
    let mut i = 0;
    edit_nth(value, target, &mut i, edit);
}

fn edit_nth(v: &mut Value, target: usize, i: &mut usize, edit: &JsonEdit) -> bool {
    if *i == target {
        match edit {
            JsonEdit::Number(n) => {
                *v = serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
            JsonEdit::Text(s) => *v = Value::String(s.clone()),
            JsonEdit::DuplicateList => {
                if let Value::Array(a) = v {
                    if let Some(first) = a.first().cloned() {
                        a.push(first);
                    }
                }
            }
            JsonEdit::EmptyList => {
                if let Value::Array(a) = v {
                    a.clear();
                }
            }
            JsonEdit::Remove => {
                if let Value::Object(o) = v {
                    let first = o.keys().next().cloned();
                    if let Some(k) = first {
                        o.remove(&k);
                    }
                }
            }
        }
        return true;
    }
    *i += 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|c| edit_nth(c, target, i, edit)),
        Value::Object(o) => o.values_mut().any(|c| edit_nth(c, target, i, edit)),
        _ => false,
    }
}

fn apply(path: &Path, bytes: &[u8], damage: &Damage) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let at = |o: usize, len: usize| if len == 0 { 0 } else { o % len };
    match damage {
        Damage::FlipBit(o, bit) => {
            if !b.is_empty() {
                let i = at(*o, b.len());
                b[i] ^= 1 << bit;
            }
        }
        Damage::Overwrite(o, new) => {
            let i = at(*o, b.len());
            for (k, x) in new.iter().enumerate() {
                if let Some(slot) = b.get_mut(i + k) {
                    *slot = *x;
                }
            }
        }
        Damage::Truncate(o) => b.truncate(at(*o, b.len())),
        Damage::Extend(more) => b.extend_from_slice(more),
        Damage::Noise(n) => b = n.clone(),
        Damage::HeaderField(field, value) => {
            if let Some(mut h) = header(path, &b) {
                match field {
                    0 => h.version = *value as u32,
                    1 => h.width = *value as u32,
                    2 => h.count = *value,
                    3 => h.payload_len = *value,
                    _ => h.extra = *value,
                }
                b[..HEADER_LEN].copy_from_slice(&h.encode());
            }
        }
        Damage::Payload(o, new) => {
            if let Some(mut h) = header(path, &b) {
                let payload = &mut b[HEADER_LEN..];
                let i = at(*o, payload.len());
                for (k, x) in new.iter().enumerate() {
                    if let Some(slot) = payload.get_mut(i + k) {
                        *slot = *x;
                    }
                }
                h.payload_hash = payload_hash(&b[HEADER_LEN..]);
                b[..HEADER_LEN].copy_from_slice(&h.encode());
            }
        }
        Damage::Json(node, edit) => {
            if let Some((kind, mut value)) = document(&b) {
                edit_json(&mut value, *node, edit);
                if let Ok(encoded) = encode_document(path, &kind, &value) {
                    b = encoded;
                }
            }
        }
        Damage::Text(t) => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".yaml") || name.ends_with(".txt") {
                b = t.clone().into_bytes();
            }
        }
    }
    b
}

/// The header of a binary file, if it has a valid one.
fn header(path: &Path, b: &[u8]) -> Option<Header> {
    let magic: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Header::decode(path, b, &magic, "fuzzed").ok()
}

/// The kind and JSON body of a document.
fn document(b: &[u8]) -> Option<(String, Value)> {
    let text = std::str::from_utf8(b).ok()?;
    let (head, body) = text.split_once('\n')?;
    let kind = head.split_whitespace().nth(1)?.to_owned();
    Some((kind, serde_json::from_str(body).ok()?))
}

/// Everything a user can do with an index, on a damaged one: nothing may panic.
fn exercise(root: &Path) {
    let dir = IndexDir::new(root);
    let _ = dir.read_manifest();
    let _ = dir.read_config();
    if let Ok(index) = Index::open(root) {
        let _ = index.stats();
        let _ = index.verify();
        let _ = index.files().map(|f| f.count());
        let q = unit(5, DIMS);
        let qs = unit(6, SPACE_DIMS);
        let filter = FileFilter::any();
        for strategy in [SearchStrategy::Exact, SearchStrategy::Auto] {
            let opts = SearchOptions {
                limit: 5,
                filter: Some(&filter),
                strategy,
                ..SearchOptions::default()
            };
            if let Ok(hits) = index.search(&q, &opts) {
                for h in hits {
                    let _ = (h.chunk.file(), h.chunk.bytes(), h.chunk.line_count());
                }
            }
            let _ = index.search_space(1, &qs, &opts);
            let queries = [
                SpaceQuery {
                    space: 0,
                    vector: &q,
                    depth: 20,
                },
                SpaceQuery {
                    space: 1,
                    vector: &qs,
                    depth: 20,
                },
            ];
            let _ = index.search_fused(&queries, &opts, &|s: &[Vec<f32>]| {
                s.first().cloned().unwrap_or_default()
            });
            let words = LexicalQuery {
                terms: vec![
                    ("w1".into(), 1.0),
                    ("shared".into(), 0.5),
                    ("only3x1".into(), 1.0),
                ],
                k1: 1.2,
                b: 0.75,
            };
            if let Ok(hits) = index.search_lexical(&words, &opts) {
                for h in hits {
                    let _ = (h.chunk.file(), h.chunk.bytes(), h.chunk.line_count());
                }
            }
            let _ = index.search_fused_lexical(&words, 20, &queries[1..], &opts, &|s: &[Vec<
                f32,
            >]| {
                s.iter().map(|c| c.iter().sum()).collect()
            });
        }
        let _ = index.check_intact();
    }
    // A writer that repairs what it finds, then commits.
    if let Ok(mut w) = IndexWriter::open_repairing(root, spec(), WriterOptions::default(), || {}) {
        let _ = w.drop_damaged_segments();
        let _ = w.files_lacking_spaces();
        put(&mut w, "src/after.rs", 2, 1234);
        if w.commit().is_ok() {
            if let Ok(index) = Index::open(root) {
                let _ = index.verify();
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("TURBOPROP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_damaged_index_file_never_panics_hangs_or_allocates_without_bound(
        file in any::<usize>(),
        damages in proptest::collection::vec(damage(), 1..3),
    ) {
        let files = pristine();
        let (victim, _) = &files[file % files.len()];
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("index");
        for (rel, bytes) in files {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            let mut b = bytes.clone();
            if rel == victim {
                for d in &damages {
                    b = apply(rel, &b, d);
                }
            }
            std::fs::write(&p, b).expect("write");
        }
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        exercise(&root);
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        prop_assert!(
            peak < MAX_CASE_ALLOCATION,
            "{} with {:?} made one case allocate {} MiB",
            victim.display(), damages, peak >> 20
        );
    }
}

#[test]
fn the_pristine_index_is_healthy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("index");
    for (rel, bytes) in pristine() {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
    }
    let index = Index::open(&root).expect("open");
    assert!(index.verify().is_empty());
    assert!(index.segment_count() >= 2, "several segments to damage");
    let names: Vec<String> = pristine()
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    for want in [
        "manifest.json",
        "config.yaml",
        "version.txt",
        "planes",
        "codes",
        "del-",
        "df",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "the pristine index has no {want} file to damage: {names:?}"
        );
    }
}
