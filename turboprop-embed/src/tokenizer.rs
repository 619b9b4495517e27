//! Loading `tokenizer.json` fast, and safely.
//!
//! The tokenizers crate parses a whole `tokenizer.json` through generic, buffered serde
//! values: for all-MiniLM-L6-v2 (a WordPiece vocabulary of 30,522 entries) that took ~20 ms,
//! and dropping the result as much again — most of a cold search. A WordPiece tokenizer (what
//! BERT models use) is therefore built here from its parts: the vocabulary is read straight
//! into the model's own map type, and the small sections (normalizer, pre-tokenizer,
//! post-processor, added tokens) through the crate's own deserializers. The decoder is not
//! read: embedding never decodes. Any other tokenizer, or a WordPiece one whose sections do
//! not read this way, goes through the crate's full parser; both give the same token ids
//! (tested on the tiny model and on all-MiniLM-L6-v2).
//!
//! The file is untrusted input: it is read as a checked regular file of bounded size, its
//! syntax is checked before the crate sees it (the crate panics on some malformed files), a
//! panic left in the crate's parsers becomes an error, a probe encode refuses a tokenizer
//! that loads and then cannot encode, and errors never quote the file's content.

use std::path::Path;

use serde::Deserialize;
use tokenizers::models::bpe::Vocab;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{
    AddedToken, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer, TruncationParams,
};

use crate::model_dir::ModelError;
use crate::model_file::{describe_json_error, read_capped, TOKENIZER_CAP};

/// Calls into the tokenizers crate, which reads an untrusted `tokenizer.json` and panics on
/// some inconsistent ones: a panic becomes `None` (an error for the caller), never a crash.
/// Its message still reaches the panic hook (stderr).
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// The sections of a `tokenizer.json` a WordPiece tokenizer is built from.
#[derive(Deserialize)]
struct Sections {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    #[serde(default)]
    normalizer: Option<NormalizerWrapper>,
    #[serde(default)]
    pre_tokenizer: Option<PreTokenizerWrapper>,
    #[serde(default)]
    post_processor: Option<PostProcessorWrapper>,
    model: Model,
}

/// The `model` section, read only as far as telling WordPiece from the rest.
#[derive(Deserialize)]
struct Model {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    unk_token: Option<String>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
    #[serde(default)]
    max_input_chars_per_word: Option<usize>,
    /// A WordPiece vocabulary: token → id. (Other models' vocabularies may not read as one;
    /// then the whole file goes through the full parser.)
    #[serde(default)]
    vocab: Option<Vocab>,
}

/// A WordPiece tokenizer built from its parts, or `None` when `bytes` is not one that reads
/// this way (then the full parser decides, and gives the errors).
fn wordpiece(bytes: &[u8]) -> Option<Tokenizer> {
    let s: Sections = serde_json::from_slice(bytes).ok()?;
    let m = s.model;
    if m.kind.as_deref() != Some("WordPiece") || s.version.as_deref().is_some_and(|v| v != "1.0") {
        return None;
    }
    let model = WordPiece::builder()
        .vocab(m.vocab?)
        .unk_token(m.unk_token?)
        .continuing_subword_prefix(m.continuing_subword_prefix?)
        .max_input_chars_per_word(m.max_input_chars_per_word?)
        .build()
        .ok()?;
    let mut tokenizer = Tokenizer::new(ModelWrapper::WordPiece(model));
    tokenizer.with_normalizer(s.normalizer).ok()?;
    tokenizer.with_pre_tokenizer(s.pre_tokenizer);
    tokenizer.with_post_processor(s.post_processor);
    // As the full parser does: added tokens take the model's id for their content, when it
    // has one.
    tokenizer.add_tokens(s.added_tokens).ok()?;
    Some(tokenizer)
}

/// Loads the tokenizer at `path`, truncating at `max_tokens` and never padding.
pub(crate) fn load(path: &Path, max_tokens: usize) -> Result<Tokenizer, ModelError> {
    let err = |problem: String| ModelError::Tokenizer {
        path: path.to_owned(),
        problem,
    };
    // Read as a checked regular file of bounded size; errors never quote its content.
    let bytes = read_capped(path, TOKENIZER_CAP)?;
    let fast = guarded(|| wordpiece(&bytes)).flatten();
    let mut tokenizer = match fast {
        Some(t) => t,
        None => {
            // The tokenizers crate panics on some malformed JSON (its decoder section's
            // deserializer `expect`s; found by tests/fuzz_model.rs): the syntax is checked
            // here first, and a panic left in its parsers becomes an error, not a crash.
            serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
                .map_err(|e| err(describe_json_error(&e)))?;
            guarded(|| Tokenizer::from_bytes(&bytes))
                .ok_or_else(|| err("it is not a tokenizer this build can load".to_owned()))?
                .map_err(|e| {
                    err(match e.downcast_ref::<serde_json::Error>() {
                        Some(json) => describe_json_error(json),
                        None => "it is not a tokenizer this build can load".to_owned(),
                    })
                })?
        }
    };
    drop(bytes);
    // Model folders often fix padding and truncation (MiniLM: 128); we truncate at our own
    // length and pack batches ourselves.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|_| err(format!("cannot truncate at {max_tokens} tokens")))?;
    // A tokenizer can load and still panic on every text (a post-processor template naming
    // special tokens it does not define; found by tests/fuzz_model.rs): one probe now gives a
    // clear error at load instead.
    match guarded(|| tokenizer.encode_fast("probe a b", true)) {
        Some(Ok(_)) => Ok(tokenizer),
        _ => Err(err(
            "it cannot encode text (its special tokens or post-processor are inconsistent)"
                .to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::write_tiny_bert;
    use crate::TOKENIZER_FILE;

    /// Texts that exercise the normalizer, the pre-tokenizer, sub-words, unknown words, added
    /// tokens written in the text, and the length limit.
    const TEXTS: &[&str] = &[
        "fn split_pot(pot: u64, winners: &[Seat]) -> Vec<u64> {}",
        "Where do we RETRY failed uploads?",
        "naïve café — Ünïcödé 漢字 emoji 🎉 tabs\tand\nnewlines",
        "[CLS] [SEP] [MASK] [PAD] [UNK] literal special tokens",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "",
        "    ",
        "a_b_c::d.e->f(g)[h]{i}<j>k!l@m#n$o%p^q&r*s",
    ];

    fn same_ids(dir: &Path) {
        let path = dir.join(TOKENIZER_FILE);
        let fast = load(&path, 128).expect("fast path");
        let bytes = std::fs::read(&path).expect("read");
        let mut full = Tokenizer::from_bytes(&bytes).expect("full parser");
        full.with_padding(None);
        full.with_truncation(Some(TruncationParams {
            max_length: 128,
            ..TruncationParams::default()
        }))
        .expect("truncation");
        assert!(wordpiece(&bytes).is_some(), "took the fast path");
        let long = "tokens ".repeat(300);
        for text in TEXTS.iter().copied().chain([long.as_str()]) {
            let a = fast.encode_fast(text, true).expect("encode");
            let b = full.encode_fast(text, true).expect("encode");
            assert_eq!(a.get_ids(), b.get_ids(), "{text:?}");
        }
    }

    #[test]
    fn the_fast_wordpiece_loader_gives_the_full_parsers_ids() {
        let dir = tempfile::tempdir().expect("tmp");
        write_tiny_bert(dir.path(), 1).expect("tiny");
        same_ids(dir.path());
    }

    #[test]
    fn the_fast_wordpiece_loader_gives_minilms_ids() {
        // The real model's folder, when the test environment has it (`.ci/run` does).
        if let Some(dir) = turboprop_testkit::minilm("the_fast_wordpiece_loader_gives_minilms_ids")
        {
            same_ids(&dir);
        }
    }

    #[test]
    fn other_tokenizers_go_through_the_full_parser() {
        let dir = tempfile::tempdir().expect("tmp");
        write_tiny_bert(dir.path(), 1).expect("tiny");
        let path = dir.path().join(TOKENIZER_FILE);
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        // Not WordPiece: the fast path declines, and the full parser's error is reported.
        json["model"]["type"] = serde_json::Value::from("NoSuchModel");
        let bytes = serde_json::to_vec(&json).expect("json");
        assert!(wordpiece(&bytes).is_none());
        std::fs::write(&path, &bytes).expect("write");
        let e = load(&path, 128).expect_err("unknown model type");
        assert!(e.to_string().contains("tokenizer.json"), "{e}");
    }
}
