//! The BERT backend: on a tiny random model the test writes itself, and on the real
//! all-MiniLM-L6-v2 against sentence-transformers' vectors when the model folder is given in
//! `TURBOPROP_TEST_MINILM` (`.ci/run` fetches it; see the README's "Models").

use turboprop_embed::{
    write_tiny_bert, BertEmbedder, BertOptions, Embedder, ModelDir, ModelError, Precision,
    TINY_DIMENSIONS, TINY_TOKENIZER_FIXED_LENGTH,
};
use turboprop_types::NoTermStats;

fn tiny(max_tokens: usize) -> (tempfile::TempDir, BertEmbedder) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tiny_bert(dir.path(), 42).expect("tiny model");
    let e = BertEmbedder::load(
        dir.path(),
        "tiny-bert",
        BertOptions {
            max_tokens,
            batch_size: 3,
            ..BertOptions::default()
        },
    )
    .expect("loads");
    (dir, e)
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b))
}

const TEXTS: [&str; 7] = [
    "fn split_pot(pot: u64) {}",
    "shuffle the deck",
    "a",
    "",
    "retry failed uploads with backoff, then give up after five tries and report the error",
    "let rank = hand.rank();",
    "who wins when two players tie",
];

#[test]
fn tiny_model_loads_and_embeds_normalized_vectors_of_its_dimension() {
    let (_dir, e) = tiny(32);
    assert_eq!(e.model_id(), "tiny-bert");
    assert_eq!(e.dimensions(), TINY_DIMENSIONS);
    let vs = e.embed_documents(&TEXTS).expect("embeds");
    assert_eq!(vs.len(), TEXTS.len());
    for v in &vs {
        assert_eq!(v.len(), TINY_DIMENSIONS);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!((norm(v) - 1.0).abs() < 1e-5, "norm {}", norm(v));
    }
    assert!(
        cosine(&vs[0], &vs[1]) < 0.9999,
        "different texts, different vectors"
    );
    assert!(e.embed_documents(&[]).expect("empty batch").is_empty());
}

#[test]
fn tiny_model_is_deterministic_and_independent_of_batching_and_order() {
    let (_dir, e) = tiny(32);
    let all = e.embed_documents(&TEXTS).expect("embeds");
    let again = e.embed_documents(&TEXTS).expect("embeds");
    assert_eq!(all, again, "same input, same bits");
    // Alone vs packed into a batch with longer texts: attention must stay within each text.
    for (i, t) in TEXTS.iter().enumerate() {
        let alone = e.embed_documents(&[t]).expect("embeds");
        assert!(
            cosine(&alone[0], &all[i]) > 0.99999,
            "text {i} alone vs batched: {}",
            cosine(&alone[0], &all[i])
        );
    }
    let reversed: Vec<&str> = TEXTS.iter().rev().copied().collect();
    let rev = e.embed_documents(&reversed).expect("embeds");
    for (i, v) in rev.iter().rev().enumerate() {
        assert!(cosine(v, &all[i]) > 0.99999);
    }
    // A second load of the same folder gives the same vectors.
    let (_dir2, e2) = tiny(32);
    assert_eq!(e2.embed_documents(&TEXTS).expect("embeds"), all);
}

#[test]
fn truncation_is_ours_not_the_tokenizer_files() {
    // The tiny tokenizer.json fixes truncation and padding at 8, like MiniLM's at 128.
    let long = "the pot split ".repeat(40);
    let (_dir, e) = tiny(24);
    assert_eq!(e.token_count(&long).expect("tokens"), 24);
    assert_eq!(
        e.token_count("a").expect("tokens"),
        3,
        "no padding to a fixed length"
    );
    const { assert!(24 > TINY_TOKENIZER_FIXED_LENGTH) };
    // Past the model's 64 positions the limit is lowered to what the model can read.
    let (_dir, e) = tiny(10_000);
    assert_eq!(e.options().max_tokens, 64);
    let v = e
        .embed_documents(&[long.as_str()])
        .expect("long text embeds");
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
}

#[test]
fn queries_embed_like_documents_and_empty_queries_are_refused() {
    let (_dir, e) = tiny(32);
    let q = e
        .embed_query("shuffle the deck", &NoTermStats)
        .expect("query");
    let d = e.embed_documents(&["shuffle the deck"]).expect("doc");
    assert!(cosine(&q, &d[0]) > 0.99999);
    assert!(e.embed_query("   ", &NoTermStats).is_err());
}

#[test]
fn broken_model_folders_are_typed_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tiny_bert(dir.path(), 1).expect("tiny model");
    let folder = dir.path().to_owned();

    std::fs::remove_file(folder.join("tokenizer.json")).expect("rm");
    let err = BertEmbedder::load(&folder, "x", BertOptions::default()).expect_err("missing");
    assert!(matches!(
        err,
        ModelError::MissingFile {
            file: "tokenizer.json",
            ..
        }
    ));
    assert!(err.to_string().contains(&folder.display().to_string()));

    write_tiny_bert(&folder, 1).expect("tiny model");
    std::fs::write(folder.join("config.json"), "{not json").expect("write");
    let err = ModelDir::open(&folder).expect_err("bad config");
    assert!(matches!(err, ModelError::Json { .. }), "{err}");

    write_tiny_bert(&folder, 1).expect("tiny model");
    let config = std::fs::read_to_string(folder.join("config.json")).expect("read");
    std::fs::write(
        folder.join("config.json"),
        config.replace("\"bert\"", "\"gpt2\""),
    )
    .expect("write");
    let err = ModelDir::open(&folder).expect_err("not bert");
    assert!(matches!(err, ModelError::Unsupported { .. }), "{err}");

    write_tiny_bert(&folder, 1).expect("tiny model");
    let config = std::fs::read_to_string(folder.join("config.json")).expect("read");
    std::fs::write(
        folder.join("config.json"),
        config.replace("\"hidden_size\": 32", "\"hidden_size\": 48"),
    )
    .expect("write");
    let err = BertEmbedder::load(&folder, "x", BertOptions::default()).expect_err("shapes");
    assert!(matches!(err, ModelError::Weights { .. }), "{err}");

    write_tiny_bert(&folder, 1).expect("tiny model");
    std::fs::write(folder.join("model.safetensors"), b"truncated").expect("write");
    let err = BertEmbedder::load(&folder, "x", BertOptions::default()).expect_err("weights");
    assert!(matches!(err, ModelError::Weights { .. }), "{err}");
}

#[derive(serde::Deserialize)]
struct Reference {
    max_tokens: usize,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    embedding: Vec<f32>,
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = turboprop_testkit::minilm("minilm_matches_sentence_transformers") else {
        return;
    };
    let reference: Reference =
        serde_json::from_str(include_str!("data/minilm_reference.json")).expect("reference json");
    // f32 within rounding. int8 (issue 15) holds 0.995 on every text but the two degenerate
    // ones (the empty text: 0.986; forty x's: 0.990), which is one reason it is not the
    // default; this pins what it does hold.
    for (precision, bar) in [(Precision::F32, 0.999), (Precision::Int8, 0.98)] {
        let e = BertEmbedder::load(
            &dir,
            "all-MiniLM-L6-v2",
            BertOptions {
                max_tokens: reference.max_tokens,
                precision,
                ..BertOptions::default()
            },
        )
        .expect("the model folder in TURBOPROP_TEST_MINILM loads");
        assert_eq!(e.dimensions(), 384);
        let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
        // All at once (batched, packed, reordered) and one at a time.
        let batched = e.embed_documents(&texts).expect("embeds");
        let mut worst = 1f32;
        let mut below = Vec::new();
        for (case, v) in reference.cases.iter().zip(&batched) {
            let alone = e.embed_documents(&[case.text.as_str()]).expect("embeds");
            for (how, v) in [("batched", v), ("alone", &alone[0])] {
                let c = cosine(v, &case.embedding);
                worst = worst.min(c);
                let short: String = case.text.chars().take(40).collect();
                if c < bar {
                    below.push(format!("{short:?} ({how}): cosine {c}"));
                }
            }
        }
        assert!(
            below.is_empty(),
            "{precision:?}: {} of {} below {bar}:\n{}",
            below.len(),
            2 * reference.cases.len(),
            below.join("\n")
        );
        eprintln!(
            "all-MiniLM-L6-v2 ({precision:?}) vs sentence-transformers: lowest cosine {worst}"
        );
    }
}

/// Found by tests/fuzz_model.rs: a tokenizer.json cut short inside its decoder section made
/// the tokenizers crate panic (`expect("Helper")`); it is now a one-line error.
#[test]
fn a_truncated_tokenizer_json_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_bert(dir.path(), 0).expect("tiny model");
    let path = dir.path().join("tokenizer.json");
    let bytes = std::fs::read(&path).expect("read");
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    let at = text.find("\"decoder\"").expect("a decoder section") + 20;
    for cut in [at, at + 5, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut.min(bytes.len())]).expect("write");
        let err = BertEmbedder::load(dir.path(), "x", BertOptions::default())
            .expect_err("a truncated tokenizer.json");
        assert!(err.to_string().contains("tokenizer.json"), "{err}");
    }
}

/// Found by tests/fuzz_model.rs: a post-processor template naming special tokens its
/// `special_tokens` map lacks loaded fine, then panicked on every text; it is now refused at
/// load with one line.
#[test]
fn a_template_naming_undefined_special_tokens_is_refused_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tiny_bert(dir.path(), 0).expect("tiny model");
    let path = dir.path().join("tokenizer.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    json["post_processor"]["special_tokens"] = serde_json::json!({});
    std::fs::write(&path, serde_json::to_vec(&json).expect("encode")).expect("write");
    let err = BertEmbedder::load(dir.path(), "x", BertOptions::default())
        .expect_err("an inconsistent template");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

/// Issue 15: the weights are read in place from a memory map. A `model.safetensors`
/// truncated while the model is loaded (a sync tool, a copy over the folder) must not kill
/// the process with SIGBUS: embedding fails with an error naming the file.
#[test]
fn weights_truncated_under_a_loaded_model_are_an_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tiny_bert(dir.path(), 9).expect("tiny model");
    let e = BertEmbedder::load(dir.path(), "tiny-bert", BertOptions::default()).expect("loads");
    e.embed_documents(&["before the truncation"])
        .expect("intact weights embed");
    let weights = dir.path().join("model.safetensors");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    let err = e
        .embed_documents(&["after the truncation"])
        .expect_err("the weights changed under the model");
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(chain.contains("model.safetensors"), "{chain}");
}

/// Rewrites the f32 `model.safetensors` in `dir` with every float tensor stored as f16 (the
/// header's offsets redone), so that loading it needs a conversion.
fn to_f16(dir: &std::path::Path) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).expect("read");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    let data = &bytes[8 + n..];
    let mut names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
    names.sort_by_key(|k| header[*k]["data_offsets"][0].as_u64());
    let (mut out_header, mut out_data) = (serde_json::Map::new(), Vec::new());
    for name in names {
        let t = &header[name];
        let [a, b] = [0, 1].map(|i| t["data_offsets"][i].as_u64().expect("offset") as usize);
        let mut entry = t.clone();
        let start = out_data.len();
        if t["dtype"] == "F32" {
            for v in data[a..b].chunks_exact(4) {
                let x = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                out_data.extend_from_slice(&half::f16::from_f32(x).to_le_bytes());
            }
            entry["dtype"] = "F16".into();
        } else {
            out_data.extend_from_slice(&data[a..b]);
        }
        entry["data_offsets"] = serde_json::json!([start, out_data.len()]);
        out_header.insert(name.clone(), entry);
    }
    let text = serde_json::Value::Object(out_header).to_string();
    let mut file = (text.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(text.as_bytes());
    file.extend_from_slice(&out_data);
    std::fs::write(&path, file).expect("write");
}

/// Issue 15: weights that must be converted (f16 here) are converted once into a cache
/// beside them, which later loads use; a damaged, shortened or stale cache is detected and
/// rebuilt, and the vectors never change because of it.
#[test]
fn converted_weights_are_cached_checked_and_rebuilt_when_damaged() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tiny_bert(dir.path(), 11).expect("tiny model");
    to_f16(dir.path());
    let cache = dir.path().join(turboprop_embed::CACHE_FILE);
    let texts = [
        "fn split_pot(winners: &[Seat]) {}",
        "shuffle the deck before a hand",
    ];
    let embed = || {
        BertEmbedder::load(dir.path(), "tiny-f16", BertOptions::default())
            .expect("loads")
            .embed_documents(&texts)
            .expect("embeds")
    };
    assert!(!cache.exists());
    // A folder that is not turboprop's (checked before `tp model import` copies it) is only
    // read: the conversion stays in memory.
    let read_only = BertEmbedder::load(
        dir.path(),
        "tiny-f16",
        BertOptions {
            write_cache: false,
            ..BertOptions::default()
        },
    )
    .expect("loads")
    .embed_documents(&texts)
    .expect("embeds");
    assert!(!cache.exists(), "nothing written with write_cache off");
    let first = embed();
    assert_eq!(first, read_only);
    let good = std::fs::read(&cache).expect("the first load wrote the cache");
    // From the cache: the same vectors, and the cache is left as it was.
    assert_eq!(embed(), first);
    assert_eq!(std::fs::read(&cache).expect("cache"), good);

    // A flipped byte in the payload, a cut, an empty file: detected, rebuilt, same vectors.
    let mut flipped = good.clone();
    let last = flipped.len() - 70;
    flipped[last] ^= 0x40;
    for damaged in [flipped, good[..good.len() / 2].to_vec(), Vec::new()] {
        std::fs::write(&cache, &damaged).expect("damage");
        assert_eq!(embed(), first);
        assert_eq!(std::fs::read(&cache).expect("cache"), good, "rebuilt");
    }

    // Other weights under the same name: the cache made from the old ones is not used.
    write_tiny_bert(dir.path(), 12).expect("other weights");
    to_f16(dir.path());
    let other = embed();
    assert_ne!(other, first);
    assert_ne!(std::fs::read(&cache).expect("cache"), good);
    assert_eq!(embed(), other);
}
