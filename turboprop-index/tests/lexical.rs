//! The exact lexical space through the public API: BM25 over postings equals BM25 computed
//! from scratch over the live chunks after any sequence of commits (puts, removals,
//! compaction), filters and deletes apply, and an index without postings gains them by
//! filling its files in place.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use turboprop_index::{
    Directory, FileFilter, Index, IndexSpec, IndexWriter, LexicalQuery, MemDirectory, NewChunk,
    SearchOptions, WriterOptions,
};
use turboprop_types::{CompactionConfig, ContentHash, FileRecord, LexicalTerms};

const RULES: &str = "test-words";
const K1: f32 = 1.2;
const B: f32 = 0.75;

fn lexical_spec() -> IndexSpec {
    IndexSpec {
        lexical: Some(RULES.to_owned()),
        ..support::spec(2)
    }
}

/// A chunk whose words are `words` (term frequency = occurrences, length = word count).
fn chunk(i: u32, words: &[&str]) -> NewChunk {
    let mut tf: BTreeMap<String, f32> = BTreeMap::new();
    for w in words {
        *tf.entry((*w).to_owned()).or_default() += 1.0;
    }
    NewChunk {
        lexical: Some(LexicalTerms::from_pairs(tf, words.len() as f32)),
        ..support::chunk(i, vec![1.0, 0.0])
    }
}

fn record(path: &str, version: u32) -> FileRecord {
    let content = format!("{path} {version}");
    FileRecord::new(
        path,
        content.len() as u64,
        7,
        ContentHash::of(content.as_bytes()),
    )
    .expect("a valid record")
}

fn writer(dir: &Arc<dyn Directory>, spec: IndexSpec, compaction: CompactionConfig) -> IndexWriter {
    let opts = WriterOptions {
        compaction,
        ..WriterOptions::default()
    };
    IndexWriter::open_in(Arc::clone(dir), spec, opts, || {}).expect("a writer")
}

/// The live files: path → chunks' words.
type Files = BTreeMap<String, Vec<Vec<&'static str>>>;

/// BM25 from scratch over `files`: `(path, line_start, normalized score)`, best first.
fn reference(files: &Files, query: &[(&str, f32)]) -> Vec<(String, u32, f32)> {
    let docs: Vec<(String, u32, &Vec<&str>)> = files
        .iter()
        .flat_map(|(p, chunks)| {
            chunks
                .iter()
                .enumerate()
                .map(move |(i, w)| (p.clone(), i as u32 * 10 + 1, w))
        })
        .collect();
    let n = docs.len() as f64;
    let mean = (docs.iter().map(|d| d.2.len() as f64).sum::<f64>() / n.max(1.0)).max(1.0) as f32;
    let mut scores = vec![0f32; docs.len()];
    let mut ceiling = 0f32;
    for (term, weight) in query {
        let df = docs.iter().filter(|d| d.2.contains(term)).count() as f64;
        if df == 0.0 {
            continue;
        }
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32;
        ceiling += weight * idf * (K1 + 1.0);
        for (k, d) in docs.iter().enumerate() {
            let tf = d.2.iter().filter(|w| *w == term).count() as f32;
            if tf > 0.0 {
                let norm = 1.0 - B + B * d.2.len() as f32 / mean;
                scores[k] += weight * idf * tf * (K1 + 1.0) / (tf + K1 * norm);
            }
        }
    }
    let mut out: Vec<(String, u32, f32)> = docs
        .iter()
        .zip(&scores)
        .filter(|(_, s)| **s > 0.0)
        .map(|(d, s)| (d.0.clone(), d.1, s / ceiling))
        .collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out
}

fn search(
    index: &Index,
    query: &[(&str, f32)],
    filter: Option<&FileFilter>,
) -> Vec<(String, u32, f32)> {
    let q = LexicalQuery {
        terms: query.iter().map(|(t, w)| ((*t).to_owned(), *w)).collect(),
        k1: K1,
        b: B,
    };
    let opts = SearchOptions {
        limit: 1000,
        filter,
        ..SearchOptions::default()
    };
    index
        .search_lexical(&q, &opts)
        .expect("a search")
        .into_iter()
        .map(|h| (h.chunk.file().to_owned(), h.chunk.line_start(), h.score))
        .collect()
}

/// Scores agree within float rounding, and the order agrees wherever scores differ.
fn assert_same(got: &[(String, u32, f32)], want: &[(String, u32, f32)]) {
    assert_eq!(got.len(), want.len(), "got {got:?}\nwant {want:?}");
    let by_key: HashMap<(&str, u32), f32> = want
        .iter()
        .map(|(p, l, s)| ((p.as_str(), *l), *s))
        .collect();
    for (p, l, s) in got {
        let w = by_key
            .get(&(p.as_str(), *l))
            .unwrap_or_else(|| panic!("{p}:{l} is not a match: {got:?}"));
        assert!((s - w).abs() < 1e-4, "{p}:{l} scores {s}, want {w}");
    }
    for pair in got.windows(2) {
        assert!(pair[0].2 >= pair[1].2, "not best first: {got:?}");
    }
}

const WORDS: [&str; 8] = [
    "pot", "split", "deck", "shuffle", "seat", "deal", "card", "rank",
];

fn arb_chunk() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(&WORDS[..]), 0..12)
}

/// One commit: files put (path index, chunks' words) and removed (path index).
type Commit = (Vec<(u8, Vec<Vec<&'static str>>)>, Vec<u8>);

fn arb_commit() -> impl Strategy<Value = Commit> {
    (
        prop::collection::vec((0u8..12, prop::collection::vec(arb_chunk(), 0..4)), 0..6),
        prop::collection::vec(0u8..12, 0..3),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Document frequencies, the chunk count and the mean length are those of the live
    /// chunks, whatever commits, deletes and merges came before.
    #[test]
    fn bm25_over_postings_equals_bm25_from_scratch(
        commits in prop::collection::vec(arb_commit(), 1..6),
        query in prop::collection::vec((prop::sample::select(&WORDS[..]), 0.5f32..2.0), 1..4),
        merge_small in any::<bool>(),
    ) {
        let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
        let compaction = if merge_small {
            CompactionConfig { max_segments: 2, ..CompactionConfig::default() }
        } else {
            CompactionConfig::default()
        };
        let mut files: Files = BTreeMap::new();
        for (version, (puts, removes)) in commits.iter().enumerate() {
            let mut w = writer(&dir, lexical_spec(), compaction.clone());
            for (p, chunks) in puts {
                let path = format!("f{p}.rs");
                let new: Vec<NewChunk> =
                    chunks.iter().enumerate().map(|(i, c)| chunk(i as u32, c)).collect();
                w.put_file(record(&path, version as u32), new).expect("put");
                files.insert(path, chunks.clone());
            }
            for p in removes {
                let path = format!("f{p}.rs");
                if !puts.iter().any(|(q, _)| q == p) {
                    w.remove_file(&path);
                    files.remove(&path);
                }
            }
            w.commit().expect("commit");
        }
        let index = Index::open_in(Arc::clone(&dir)).expect("open");
        prop_assert!(index.has_lexical(RULES));
        let mut dedup: BTreeMap<&str, f32> = BTreeMap::new();
        for (t, w) in &query {
            *dedup.entry(t).or_default() += w;
        }
        let query: Vec<(&str, f32)> = dedup.into_iter().collect();
        assert_same(&search(&index, &query, None), &reference(&files, &query));
        // A filter narrows the rows scored, not the statistics.
        let filter = FileFilter::any().with_globs(&["f1*.rs".to_owned()]).expect("a glob");
        let want: Vec<_> = reference(&files, &query)
            .into_iter()
            .filter(|(p, _, _)| p.starts_with("f1"))
            .collect();
        assert_same(&search(&index, &query, Some(&filter)), &want);
        let damage = index.verify();
        prop_assert!(damage.is_empty(), "{:?}", damage);
    }
}

#[test]
fn a_deleted_file_is_never_found_and_leaves_the_statistics() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let mut files: Files = BTreeMap::new();
    let mut w = writer(&dir, lexical_spec(), CompactionConfig::default());
    for (path, words) in [
        ("pot.rs", vec!["split", "pot"]),
        ("deck.rs", vec!["shuffle", "deck", "split"]),
        ("seat.rs", vec!["seat"]),
    ] {
        w.put_file(record(path, 0), vec![chunk(0, &words)])
            .expect("put");
        files.insert(path.to_owned(), vec![words]);
    }
    w.commit().expect("commit");
    let mut w = writer(&dir, lexical_spec(), CompactionConfig::default());
    w.remove_file("deck.rs");
    files.remove("deck.rs");
    w.commit().expect("commit");
    let index = Index::open_in(dir).expect("open");
    let query = [("split", 1.0)];
    let got = search(&index, &query, None);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "pot.rs");
    assert_same(&got, &reference(&files, &query));
}

#[test]
fn an_index_without_postings_gains_them_by_filling_its_files() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let words = vec!["split", "pot"];
    let mut w = writer(&dir, support::spec(2), CompactionConfig::default());
    let mut plain = chunk(0, &words);
    plain.lexical = None;
    w.put_file(record("pot.rs", 0), vec![plain]).expect("put");
    w.commit().expect("commit");
    let index = Index::open_in(Arc::clone(&dir)).expect("open");
    assert!(!index.has_lexical(RULES));
    assert!(search(&index, &[("pot", 1.0)], None).is_empty());

    let mut w = writer(&dir, lexical_spec(), CompactionConfig::default());
    let lacking: Vec<String> = w
        .files_lacking_spaces()
        .expect("listed")
        .into_iter()
        .map(|f| f.path().to_owned())
        .collect();
    assert_eq!(lacking, ["pot.rs"]);
    let terms = chunk(0, &words).lexical.expect("terms");
    w.fill_file(record("pot.rs", 0), Vec::new(), vec![terms])
        .expect("fill");
    w.commit().expect("commit");
    let index = Index::open_in(dir).expect("open");
    assert!(index.has_lexical(RULES));
    assert_eq!(search(&index, &[("pot", 1.0)], None).len(), 1);
}

#[test]
fn chunks_without_terms_or_bad_terms_are_refused() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let mut w = writer(&dir, lexical_spec(), CompactionConfig::default());
    let mut missing = chunk(0, &["pot"]);
    missing.lexical = None;
    let err = w
        .put_file(record("a.rs", 0), vec![missing])
        .expect_err("refused");
    assert!(err.to_string().contains("no lexical terms"), "{err}");
    for (terms, length, why) in [
        (vec![("pot", 1.0), ("deck", 1.0)], 2.0, "not sorted"),
        (vec![("pot", 1.0), ("pot", 1.0)], 2.0, "not sorted"),
        (vec![("", 1.0)], 1.0, "0 bytes"),
        (vec![("pot", f32::NAN)], 1.0, "frequency"),
        (vec![("pot", 0.0)], 1.0, "frequency"),
        (vec![("pot", 1.0)], -1.0, "length"),
    ] {
        let mut c = chunk(0, &[]);
        c.lexical = Some(LexicalTerms::from_pairs(terms, length));
        let err = w.put_file(record("a.rs", 0), vec![c]).expect_err("refused");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let long = "x".repeat(256);
    let mut c = chunk(0, &[]);
    c.lexical = Some(LexicalTerms::from_pairs([(long, 1.0)], 1.0));
    assert!(w.put_file(record("a.rs", 0), vec![c]).is_err());
    // Terms for an index without a lexical space.
    let other: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let mut w = writer(&other, support::spec(2), CompactionConfig::default());
    let err = w
        .put_file(record("a.rs", 0), vec![chunk(0, &["pot"])])
        .expect_err("refused");
    assert!(err.to_string().contains("without a lexical space"), "{err}");
}

#[test]
fn a_lexical_fill_keeps_the_vectors_of_every_space() {
    use turboprop_index::{Lacking, ModelGuard, SpaceQuery};
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let meaning = ModelGuard {
        id: "meaning".into(),
        dimensions: 2,
    };
    let with_space = |lexical: Option<String>| IndexSpec {
        spaces: vec![meaning.clone()],
        lexical,
        ..support::spec(2)
    };
    let mut w = writer(&dir, with_space(None), CompactionConfig::default());
    for (path, words, v) in [
        ("pot.rs", vec!["split", "pot"], [0.6, 0.8]),
        ("deck.rs", vec!["deck"], [1.0, 0.0]),
    ] {
        let mut c = chunk(0, &words);
        c.lexical = None;
        c.spaces = vec![v.to_vec()];
        w.put_file(record(path, 0), vec![c]).expect("put");
    }
    w.commit().expect("commit");
    let before = Index::open_in(Arc::clone(&dir)).expect("open");
    let query = [SpaceQuery {
        space: 1,
        vector: &[0.6, 0.8],
        depth: 10,
    }];
    let first = |scores: &[Vec<f32>]| -> Vec<f32> { scores.iter().map(|s| s[0]).collect() };
    let want = before
        .search_fused(&query, &SearchOptions::default(), &first)
        .expect("search");

    let mut w = writer(
        &dir,
        with_space(Some(RULES.into())),
        CompactionConfig::default(),
    );
    let lacking = w.files_lacking().expect("listed");
    assert_eq!(lacking.len(), 2);
    assert!(lacking.iter().all(|(_, l)| *l
        == Lacking {
            spaces: false,
            lexical: true
        }));
    for (path, words) in [("pot.rs", vec!["split", "pot"]), ("deck.rs", vec!["deck"])] {
        let terms = chunk(0, &words).lexical.expect("terms");
        w.fill_file(record(path, 0), Vec::new(), vec![terms])
            .expect("fill");
    }
    w.commit().expect("commit");
    let index = Index::open_in(dir).expect("open");
    assert!(index.has_lexical(RULES));
    let got = index
        .search_fused(&query, &SearchOptions::default(), &first)
        .expect("search");
    let pairs = |hits: &[turboprop_index::Hit]| -> Vec<(String, f32)> {
        hits.iter()
            .map(|h| (h.chunk.file().to_owned(), h.score))
            .collect()
    };
    assert_eq!(pairs(&got), pairs(&want), "the model's vectors are kept");
    assert_eq!(search(&index, &[("pot", 1.0)], None)[0].0, "pot.rs");
}
