//! A tiny BERT model folder with random weights and a small vocabulary, written on demand:
//! for tests and examples that need a real model folder without downloading one.
//!
//! The folder has the same shape as a sentence-transformers export (MiniLM's tokenizer
//! layout, including its fixed truncation and padding, which [`crate::BertEmbedder`] must
//! override), so everything but the numbers is exercised.

use std::path::Path;

use serde_json::{json, Value};

use crate::model_dir::{ModelError, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};

/// Hidden size (and so vector dimension) of the tiny model.
pub const TINY_DIMENSIONS: usize = 32;
/// Longest input of the tiny model, in tokens.
pub const TINY_MAX_POSITIONS: usize = 64;
/// The fixed truncation and padding the tiny tokenizer.json asks for (like MiniLM's 128).
pub const TINY_TOKENIZER_FIXED_LENGTH: usize = 8;

const LAYERS: usize = 2;
const HEADS: usize = 4;
const INTERMEDIATE: usize = 64;

fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in [
        "the", "a", "pot", "split", "win", "card", "player", "fn", "let", "rank", "hand", "tie",
        "break", "deck", "shuffle", "retry", "upload", "fail",
    ] {
        v.push(w.into());
    }
    for c in ('a'..='z').chain('0'..='9') {
        v.push(c.to_string());
        v.push(format!("##{c}"));
    }
    for p in "()[]{}<>;:,.=_&-+*/!?#'\"|\\@$%^~`".chars() {
        v.push(p.to_string());
    }
    v
}

fn tokenizer_json(vocab: &[String]) -> Value {
    let id = |t: &str| vocab.iter().position(|v| v == t).unwrap_or(1);
    let added: Vec<Value> = vocab[..5]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let map: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let fixed = TINY_TOKENIZER_FIXED_LENGTH;
    json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": fixed, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": fixed}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [id("[CLS]")], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [id("[SEP]")], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": map}
    })
}

/// Deterministic numbers in [-scale, scale] (a 64-bit LCG; no `rand` needed).
fn random(n: usize, state: &mut u64, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (*state >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            (unit * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Writes a tiny random BERT model folder (`config.json`, `tokenizer.json`,
/// `model.safetensors`) into `dir`, creating it. The same `seed` gives the same weights.
pub fn write_tiny_bert(dir: &Path, seed: u64) -> Result<(), ModelError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let vocab = vocabulary();
    let h = TINY_DIMENSIONS;
    let config = json!({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": h, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE, "max_position_embeddings": TINY_MAX_POSITIONS,
        "type_vocab_size": 2, "vocab_size": vocab.len(), "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "position_embedding_type": "absolute"
    });
    for (file, value) in [
        (CONFIG_FILE, config),
        (TOKENIZER_FILE, tokenizer_json(&vocab)),
    ] {
        let path = dir.join(file);
        let text = serde_json::to_string_pretty(&value).map_err(|e| ModelError::Json {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(io(&path))?;
    }

    let weights_path = dir.join(WEIGHTS_FILE);
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut put = |name: String, shape: &[usize], values: Vec<f32>| {
        tensors.push((name, shape.to_vec(), values));
    };
    let mut rnd = |shape: &[usize]| random(shape.iter().product(), &mut state, 0.2);
    let ones = |n: usize| vec![1f32; n];
    let zeros = |n: usize| vec![0f32; n];
    let shapes = [
        ("embeddings.word_embeddings.weight", vec![vocab.len(), h]),
        (
            "embeddings.position_embeddings.weight",
            vec![TINY_MAX_POSITIONS, h],
        ),
        ("embeddings.token_type_embeddings.weight", vec![2, h]),
    ];
    for (name, shape) in shapes {
        let v = rnd(&shape);
        put(name.into(), &shape, v);
    }
    put("embeddings.LayerNorm.weight".into(), &[h], ones(h));
    put("embeddings.LayerNorm.bias".into(), &[h], zeros(h));
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}.");
        let linears = [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", h, INTERMEDIATE),
            ("output.dense", INTERMEDIATE, h),
        ];
        for (name, inp, out) in linears {
            let w = rnd(&[out, inp]);
            put(format!("{p}{name}.weight"), &[out, inp], w);
            let b = rnd(&[out]);
            put(format!("{p}{name}.bias"), &[out], b);
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            put(format!("{p}{name}.weight"), &[h], ones(h));
            put(format!("{p}{name}.bias"), &[h], zeros(h));
        }
    }
    let bytes = safetensors_bytes(&mut tensors).map_err(|problem| ModelError::Json {
        path: weights_path.clone(),
        problem,
    })?;
    std::fs::write(&weights_path, bytes).map_err(io(&weights_path))
}

/// The bytes of a safetensors file holding `tensors` as little-endian `f32`s, in the order
/// of their names: an 8-byte header length, the JSON header (padded with spaces to a
/// multiple of 8, as the `safetensors` library writes it, so every tensor is aligned), the
/// data.
fn safetensors_bytes(tensors: &mut [(String, Vec<usize>, Vec<f32>)]) -> Result<Vec<u8>, String> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    let mut at = 0usize;
    for (name, shape, values) in tensors.iter() {
        let end = at + 4 * values.len();
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [at, end]}),
        );
        at = end;
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + at);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    for (_, _, values) in tensors.iter() {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    if out.len() != 8 + text.len() + at {
        return Err("the tensors' sizes do not add up".to_owned());
    }
    Ok(out)
}
