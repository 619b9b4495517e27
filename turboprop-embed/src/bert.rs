//! A BERT-family sentence embedder on candle's CPU backend, in pure Rust.
//!
//! [`BertEmbedder`] loads a model folder (`model.safetensors`, `tokenizer.json`,
//! `config.json`; see [`crate::ModelDir`]) and turns texts into L2-normalized vectors the way
//! sentence-transformers does: tokenize (truncating at [`BertOptions::max_tokens`]), run the
//! encoder, mean-pool the last hidden states under the attention mask (or take `[CLS]` when
//! the folder's pooling says so), normalize.
//!
//! Throughput: texts are sorted by token count before they are cut into batches, each batch
//! is padded only to its own longest member, and batches run in parallel on rayon's pool
//! (candle's matrix products use the same pool), so both cores of a small machine are busy.
//! The attention scale is folded into the query weights and the three attention projections
//! are one matrix product.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationParams};
use turboprop_types::{EmbedError, Embedder, TermStatistics};

use crate::model_dir::{HiddenAct, ModelDir, ModelError, Pooling, TOKENIZER_FILE, WEIGHTS_FILE};

/// Settings of a [`BertEmbedder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BertOptions {
    /// Tokens per text, `[CLS]` and `[SEP]` included; longer texts are truncated. Lowered to
    /// the model's `max_position_embeddings` when larger.
    pub max_tokens: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
}

/// The default [`BertOptions::max_tokens`].
pub const DEFAULT_MAX_TOKENS: usize = 256;

impl Default for BertOptions {
    fn default() -> Self {
        BertOptions {
            max_tokens: DEFAULT_MAX_TOKENS,
            batch_size: 16,
        }
    }
}

/// A sentence embedder over a BERT-family model folder.
pub struct BertEmbedder {
    model_id: String,
    model: Bert,
    tokenizer: Tokenizer,
    pooling: Pooling,
    options: BertOptions,
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("model_id", &self.model_id)
            .field("dimensions", &self.model.hidden)
            .field("layers", &self.model.layers.len())
            .field("pooling", &self.pooling)
            .field("options", &self.options)
            .finish()
    }
}

impl BertEmbedder {
    /// Loads the model folder at `dir`; `model_id` is the name recorded in indexes built with
    /// it (such as `all-MiniLM-L6-v2`).
    pub fn load(
        dir: &Path,
        model_id: impl Into<String>,
        options: BertOptions,
    ) -> Result<Self, ModelError> {
        let model_dir = ModelDir::open(dir)?;
        let config = &model_dir.config;
        if options.max_tokens < 2 {
            return Err(ModelError::InvalidOption(format!(
                "max_tokens {} must be at least 2",
                options.max_tokens
            )));
        }
        // A model cannot read past its position embeddings.
        let options = BertOptions {
            max_tokens: options.max_tokens.min(config.max_position_embeddings),
            ..options
        };
        if options.batch_size == 0 {
            return Err(ModelError::InvalidOption(
                "batch_size must be at least 1".into(),
            ));
        }

        let tok_path = dir.join(TOKENIZER_FILE);
        let tok_err = |source| ModelError::Tokenizer {
            path: tok_path.clone(),
            source,
        };
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(tok_err)?;
        // Model folders often fix padding and truncation (MiniLM: 128); we truncate at our own
        // length and pad each batch ourselves.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: options.max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(tok_err)?;

        let weights_path = dir.join(WEIGHTS_FILE);
        let tensors =
            candle_core::safetensors::load(&weights_path, &Device::Cpu).map_err(|source| {
                ModelError::Weights {
                    path: weights_path.clone(),
                    source,
                }
            })?;
        let model = Bert::new(&tensors, config).map_err(|source| ModelError::Weights {
            path: weights_path.clone(),
            source,
        })?;
        Ok(BertEmbedder {
            model_id: model_id.into(),
            model,
            tokenizer,
            pooling: model_dir.pooling,
            options,
        })
    }

    /// The settings this embedder runs with.
    pub fn options(&self) -> BertOptions {
        self.options
    }

    /// Token ids of `text` after truncation, `[CLS]` and `[SEP]` included.
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        let enc = self
            .tokenizer
            .encode_fast(text, true)
            .map_err(|e| self.backend(e))?;
        Ok(enc.get_ids().len())
    }

    fn backend(&self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> EmbedError {
        EmbedError::Backend {
            model: self.model_id.clone(),
            source: source.into(),
        }
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| self.backend(e))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        // Shortest first, so every batch holds texts of similar length and pads little.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let batches: Vec<&[usize]> = order.chunks(self.options.batch_size).collect();
        let pooled: Vec<Vec<Vec<f32>>> = batches
            .par_iter()
            .map(|batch| {
                let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i]).collect();
                self.model
                    .embed_batch(&rows, self.pooling)
                    .map_err(|e| self.backend(e))
            })
            .collect::<Result<_, _>>()?;
        let mut out = vec![Vec::new(); texts.len()];
        for (batch, vectors) in batches.iter().zip(pooled) {
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

impl Embedder for BertEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.model.hidden
    }

    fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed(texts)
    }

    fn embed_query(
        &self,
        query: &str,
        _stats: &dyn TermStatistics,
    ) -> Result<Vec<f32>, EmbedError> {
        if query.trim().is_empty() {
            return Err(EmbedError::EmptyQuery);
        }
        let mut v = self.embed(&[query])?;
        v.pop()
            .ok_or_else(|| self.backend("no vector for the query"))
    }
}

/// `x W + b` with `W` stored transposed, (in, out), contiguous.
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w)?.broadcast_add(&self.b)
    }
}

struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

struct Layer {
    /// Query (pre-scaled by 1/sqrt(head size)), key and value in one product.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

struct Bert {
    word: Tensor,
    position: Tensor,
    /// The token type 0 row: every text is a single segment.
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    act: HiddenAct,
}

type Tensors = std::collections::HashMap<String, Tensor>;

fn get(t: &Tensors, prefix: &str, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
    let key = format!("{prefix}{name}");
    let tensor = t
        .get(&key)
        .ok_or_else(|| candle_core::Error::Msg(format!("tensor {key} is missing")))?;
    if tensor.dims() != shape {
        candle_core::bail!(
            "tensor {key} has shape {:?}, the config asks for {shape:?}",
            tensor.dims()
        );
    }
    tensor.to_dtype(DType::F32)
}

fn linear(
    t: &Tensors,
    prefix: &str,
    name: &str,
    inp: usize,
    out: usize,
) -> candle_core::Result<Linear> {
    Ok(Linear {
        w: get(t, prefix, &format!("{name}.weight"), &[out, inp])?
            .t()?
            .contiguous()?,
        b: get(t, prefix, &format!("{name}.bias"), &[out])?,
    })
}

fn norm(
    t: &Tensors,
    prefix: &str,
    name: &str,
    h: usize,
    eps: f64,
) -> candle_core::Result<LayerNorm> {
    Ok(LayerNorm {
        w: get(t, prefix, &format!("{name}.weight"), &[h])?,
        b: get(t, prefix, &format!("{name}.bias"), &[h])?,
        eps: eps as f32,
    })
}

impl Bert {
    fn new(t: &Tensors, c: &crate::model_dir::BertConfig) -> candle_core::Result<Self> {
        // Checkpoints saved from BertFor* models prefix every name with `bert.`.
        let p = if t.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let h = c.hidden_size;
        let eps = c.layer_norm_eps;
        let head = h / c.num_attention_heads;
        let scale = 1.0 / (head as f64).sqrt();
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let lp = format!("{p}encoder.layer.{i}.");
            let q = linear(t, &lp, "attention.self.query", h, h)?;
            let k = linear(t, &lp, "attention.self.key", h, h)?;
            let v = linear(t, &lp, "attention.self.value", h, h)?;
            let qkv = Linear {
                w: Tensor::cat(&[&(q.w * scale)?, &k.w, &v.w], 1)?.contiguous()?,
                b: Tensor::cat(&[&(q.b * scale)?, &k.b, &v.b], 0)?,
            };
            layers.push(Layer {
                qkv,
                attn_out: linear(t, &lp, "attention.output.dense", h, h)?,
                attn_norm: norm(t, &lp, "attention.output.LayerNorm", h, eps)?,
                up: linear(t, &lp, "intermediate.dense", h, c.intermediate_size)?,
                down: linear(t, &lp, "output.dense", c.intermediate_size, h)?,
                out_norm: norm(t, &lp, "output.LayerNorm", h, eps)?,
            });
        }
        let ep = format!("{p}embeddings.");
        Ok(Bert {
            word: get(t, &ep, "word_embeddings.weight", &[c.vocab_size, h])?,
            position: get(
                t,
                &ep,
                "position_embeddings.weight",
                &[c.max_position_embeddings, h],
            )?,
            token_type: get(
                t,
                &ep,
                "token_type_embeddings.weight",
                &[c.type_vocab_size, h],
            )?
            .get(0)?,
            embed_norm: norm(t, &ep, "LayerNorm", h, eps)?,
            layers,
            hidden: h,
            heads: c.num_attention_heads,
            act: c.hidden_act,
        })
    }

    /// Runs one batch (each row a list of token ids, at most the model's positions) and
    /// pools each row into an L2-normalized vector.
    fn embed_batch(&self, rows: &[&[u32]], pooling: Pooling) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = rows.len();
        let s = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let h = self.hidden;
        let dev = &Device::Cpu;
        let mut ids = Vec::with_capacity(b * s);
        let mut mask = Vec::with_capacity(b * s);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(0u32, s - r.len()));
            mask.extend(std::iter::repeat_n(0f32, r.len()));
            mask.extend(std::iter::repeat_n(f32::MIN, s - r.len()));
        }
        let padded = rows.iter().any(|r| r.len() < s);
        let mask = if padded {
            Some(Tensor::from_vec(mask, (b, 1, 1, s), dev)?)
        } else {
            None
        };
        let ids = Tensor::from_vec(ids, b * s, dev)?;

        let x = self.word.index_select(&ids, 0)?.reshape((b, s, h))?;
        let x = x
            .broadcast_add(&self.position.narrow(0, 0, s)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.embed_norm.forward(&x)?.reshape((b * s, h))?;
        let (nh, hd) = (self.heads, h / self.heads);
        for layer in &self.layers {
            let qkv = layer
                .qkv
                .forward(&x)?
                .reshape((b, s, 3, nh, hd))?
                .permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let mut scores = q.matmul(&k.t()?)?;
            if let Some(m) = &mask {
                scores = scores.broadcast_add(m)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * s, h))?;
            let a = layer
                .attn_norm
                .forward(&(layer.attn_out.forward(&ctx)? + &x)?)?;
            let up = layer.up.forward(&a)?;
            let up = match self.act {
                HiddenAct::Gelu => up.gelu_erf()?,
                HiddenAct::GeluTanh => up.gelu()?,
                HiddenAct::Relu => up.relu()?,
            };
            x = layer.out_norm.forward(&(layer.down.forward(&up)? + &a)?)?;
        }

        let hidden = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = Vec::with_capacity(b);
        for (i, r) in rows.iter().enumerate() {
            let base = i * s * h;
            let mut v = vec![0f32; h];
            match pooling {
                Pooling::Cls => v.copy_from_slice(&hidden[base..base + h]),
                Pooling::Mean => {
                    let n = r.len().max(1);
                    for t in 0..n {
                        let row = &hidden[base + t * h..base + (t + 1) * h];
                        v.iter_mut().zip(row).for_each(|(a, x)| *a += x);
                    }
                    v.iter_mut().for_each(|a| *a /= n as f32);
                }
            }
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|a| *a /= norm);
            }
            out.push(v);
        }
        Ok(out)
    }
}
