//! A BERT-family sentence embedder for the CPU, in pure Rust.
//!
//! [`BertEmbedder`] loads a model folder (`model.safetensors`, `tokenizer.json`,
//! `config.json`; see [`crate::ModelDir`]) and turns texts into L2-normalized vectors the way
//! sentence-transformers does: tokenize (truncating at [`BertOptions::max_tokens`]), run the
//! encoder, mean-pool each text's last hidden states (or take `[CLS]` when
//! the folder's pooling says so), normalize.
//!
//! The weights are used in place: `model.safetensors` is memory-mapped and its `f32`
//! tensors are read where they lie (see `weights.rs`), so loading a model converts and
//! copies nothing, and a query reads only the pages it needs. The forward pass is our own
//! code over plain `f32` slices (`kernels.rs`): matrix products through `gemm`, which reads
//! the weights in their stored (out, in) layout as a transposed view, and fused, vectorized
//! row operations, with buffers reused from batch to batch. That doubled throughput over
//! candle's tensor ops, which spent a third of their time allocating and faulting in fresh
//! buffers, in libm's scalar `erf` and `exp`, and in copies (see the crate README).
//!
//! Throughput: texts are sorted by token count and cut into batches; a batch is *packed*, not
//! padded (its texts' tokens are stacked for the per-token layers, attention runs per text),
//! so no work goes to padding. Several batches run in parallel on rayon's pool, one per
//! thread, each product single-threaded (the least synchronization); a single batch (a query)
//! spreads its products over the pool. The three attention projections write side by side
//! into one buffer, and the attention scale is applied by the score product itself.

use std::path::Path;
use std::sync::Mutex;

use rayon::prelude::*;
use tokenizers::Tokenizer;
use turboprop_types::{EmbedError, Embedder, TermStatistics};

use crate::kernels::{self, Threads, View};
use crate::model_dir::{HiddenAct, ModelDir, ModelError, Pooling, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::tokenizer::guarded;
use crate::weights::{try_vec, Floats, Weights, WeightsError};

/// Bytes of a text handed to the tokenizer per token kept ([`BertOptions::max_tokens`]):
/// the rest of a longer text is never tokenized, so one pathological chunk (megabytes on one
/// line, a tokenizer whose rules are slow on it) costs bounded time and memory. Generous:
/// code averages 3 to 5 bytes a token, and a text has to average more than 64 bytes a token
/// over its first `max_tokens` tokens for the cut to change its vector.
pub const BYTES_PER_TOKEN: usize = 64;

/// The prefix of `text` the tokenizer sees: at most `max_tokens` × [`BYTES_PER_TOKEN`]
/// bytes, cut at a character boundary.
///
/// ```
/// use turboprop_embed::{tokenizer_input, BYTES_PER_TOKEN};
///
/// let long = "ä".repeat(10_000);
/// let cut = tokenizer_input(&long, 8);
/// assert!(cut.len() <= 8 * BYTES_PER_TOKEN && long.starts_with(cut));
/// assert_eq!(tokenizer_input("short", 8), "short");
/// ```
pub fn tokenizer_input(text: &str, max_tokens: usize) -> &str {
    let cap = max_tokens.saturating_mul(BYTES_PER_TOKEN);
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

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
    /// Buffers of finished forward passes, reused by the next ones.
    workspaces: Mutex<Vec<Workspace>>,
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

/// The error of a tokenizer that panicked on a text.
const TOKENIZER_PANICKED: &str =
    "the tokenizer failed on this text (its tokenizer.json is inconsistent)";

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

        let tokenizer = crate::tokenizer::load(&dir.join(TOKENIZER_FILE), options.max_tokens)?;

        let weights_path = dir.join(WEIGHTS_FILE);
        let weights = Weights::open(&weights_path)?;
        let model = Bert::new(weights, config).map_err(|source| ModelError::Weights {
            path: weights_path.clone(),
            source,
        })?;
        Ok(BertEmbedder {
            model_id: model_id.into(),
            model,
            tokenizer,
            pooling: model_dir.pooling,
            options,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// The settings this embedder runs with.
    pub fn options(&self) -> BertOptions {
        self.options
    }

    /// Token ids of `text` after truncation, `[CLS]` and `[SEP]` included.
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        let input = tokenizer_input(text, self.options.max_tokens);
        let enc = guarded(|| self.tokenizer.encode_fast(input, true))
            .ok_or_else(|| self.backend(TOKENIZER_PANICKED))?
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
        let bounded: Vec<&str> = texts
            .iter()
            .map(|t| tokenizer_input(t, self.options.max_tokens))
            .collect();
        let encodings = guarded(|| self.tokenizer.encode_batch_fast(bounded, true))
            .ok_or_else(|| self.backend(TOKENIZER_PANICKED))?
            .map_err(|e| self.backend(e))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        // Shortest first, so every batch holds texts of similar length (attention work per
        // batch is even, and results do not depend on the order texts came in).
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let threads = rayon::current_num_threads();
        // At most `batch_size` texts a batch, and a whole number of batches per thread, so
        // no thread idles while another runs the last batch.
        let n = order.len();
        let mut count = n.div_ceil(self.options.batch_size);
        if count > 1 || n >= 2 * threads {
            count = count.div_ceil(threads) * threads;
        }
        let batches: Vec<&[usize]> = order.chunks(n.div_ceil(count.clamp(1, n))).collect();
        let run = |batch: &[usize], threads: Threads| {
            let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i]).collect();
            let mut ws = self.take_workspace();
            let out = self
                .model
                .embed_batch(&rows, self.pooling, &mut ws, threads);
            self.give_back(ws);
            out.map_err(|e| self.backend(e))
        };
        // Several batches: one per thread, each product on its own thread (the least
        // synchronization); a single batch (a query): its products use every thread.
        let pooled: Vec<Vec<Vec<f32>>> = if batches.len() > 1 && threads > 1 {
            batches
                .par_iter()
                .map(|b| run(b, Threads::One))
                .collect::<Result<_, _>>()?
        } else {
            batches
                .iter()
                .map(|b| run(b, Threads::Pool(threads)))
                .collect::<Result<_, _>>()?
        };
        // Weights read in place: a file truncated meanwhile read as zeros, so these vectors
        // are wrong; say so instead.
        self.model
            .weights
            .check_intact()
            .map_err(|e| self.backend(e))?;
        let mut out = vec![Vec::new(); texts.len()];
        for (batch, vectors) in batches.iter().zip(pooled) {
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn take_workspace(&self) -> Workspace {
        self.workspaces
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default()
    }

    fn give_back(&self, ws: Workspace) {
        if let Ok(mut pool) = self.workspaces.lock() {
            pool.push(ws);
        }
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

/// `x Wᵀ + b` with `W` as the file stores it, (out, in) row-major, read in place.
struct Linear {
    w: Floats,
    b: Floats,
    inp: usize,
    out: usize,
}

impl Linear {
    /// `W` as the right-hand factor of `x W`ᵀ: element (i, o) is `W[o][i]`.
    fn weights(&self) -> View<'_> {
        View {
            data: self.w.as_slice(),
            rs: 1,
            cs: self.inp,
        }
    }

    /// `dst = x W + b` (`dst` starts as the bias rows) or, with `residual`,
    /// `dst = residual + x W + b`; `x` holds `rows` rows of `inp` values.
    fn forward(
        &self,
        x: &[f32],
        rows: usize,
        residual: Option<&[f32]>,
        dst: &mut [f32],
        threads: Threads,
    ) {
        let dst = &mut dst[..rows * self.out];
        match residual {
            Some(r) => kernels::add_rows(dst, &r[..rows * self.out], self.b.as_slice()),
            None => kernels::fill_rows(dst, self.b.as_slice()),
        }
        self.accumulate(x, rows, dst, self.out, threads);
    }

    /// `dst += x W`, `dst`'s rows `dst_rs` apart.
    fn accumulate(&self, x: &[f32], rows: usize, dst: &mut [f32], dst_rs: usize, threads: Threads) {
        kernels::matmul(
            rows,
            self.out,
            self.inp,
            View::rows(x, self.inp),
            self.weights(),
            dst,
            dst_rs,
            true,
            threads,
        );
    }
}

struct LayerNorm {
    w: Floats,
    b: Floats,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &mut [f32]) {
        kernels::layer_norm_rows(x, self.w.as_slice(), self.b.as_slice(), self.eps);
    }
}

struct Layer {
    /// Query, key and value projections, written side by side into one row of 3 × hidden.
    qkv: [Linear; 3],
    /// Their biases, side by side.
    qkv_bias: Vec<f32>,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

struct Bert {
    /// (vocab, hidden), row-major.
    word: Floats,
    /// (max positions, hidden), row-major.
    position: Floats,
    /// (token types, hidden); only row 0 is used: every text is a single segment.
    token_type: Floats,
    /// The file the weights are read from, in place.
    weights: Weights,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    positions: usize,
    act: HiddenAct,
}

/// Buffers of one forward pass, kept between batches so a pass allocates nothing.
#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    attn: Vec<f32>,
    up: Vec<f32>,
    scores: Vec<f32>,
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// The tensor `{prefix}{name}`, checked to have `shape`.
fn get(t: &Weights, prefix: &str, name: &str, shape: &[usize]) -> Result<Floats, WeightsError> {
    t.floats(&format!("{prefix}{name}"), shape)
}

fn linear(
    t: &Weights,
    prefix: &str,
    name: &str,
    inp: usize,
    out: usize,
) -> Result<Linear, WeightsError> {
    Ok(Linear {
        w: get(t, prefix, &format!("{name}.weight"), &[out, inp])?,
        b: get(t, prefix, &format!("{name}.bias"), &[out])?,
        inp,
        out,
    })
}

fn norm(
    t: &Weights,
    prefix: &str,
    name: &str,
    h: usize,
    eps: f64,
) -> Result<LayerNorm, WeightsError> {
    Ok(LayerNorm {
        w: get(t, prefix, &format!("{name}.weight"), &[h])?,
        b: get(t, prefix, &format!("{name}.bias"), &[h])?,
        eps: eps as f32,
    })
}

impl Bert {
    /// The encoder of config `c` from weights `t`; `c` is within `BOUNDS` (so no size
    /// product overflows) and every buffer is reserved fallibly.
    fn new(t: Weights, c: &crate::model_dir::BertConfig) -> Result<Self, WeightsError> {
        // Checkpoints saved from BertFor* models prefix every name with `bert.`.
        let p = if t.contains("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let h = c.hidden_size;
        let eps = c.layer_norm_eps;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let lp = format!("{p}encoder.layer.{i}.");
            let qkv = [
                linear(&t, &lp, "attention.self.query", h, h)?,
                linear(&t, &lp, "attention.self.key", h, h)?,
                linear(&t, &lp, "attention.self.value", h, h)?,
            ];
            let mut qkv_bias = try_vec(3 * h, &format!("{lp}attention.self"))?;
            for l in &qkv {
                qkv_bias.extend_from_slice(l.b.as_slice());
            }
            layers.push(Layer {
                qkv,
                qkv_bias,
                attn_out: linear(&t, &lp, "attention.output.dense", h, h)?,
                attn_norm: norm(&t, &lp, "attention.output.LayerNorm", h, eps)?,
                up: linear(&t, &lp, "intermediate.dense", h, c.intermediate_size)?,
                down: linear(&t, &lp, "output.dense", c.intermediate_size, h)?,
                out_norm: norm(&t, &lp, "output.LayerNorm", h, eps)?,
            });
        }
        let ep = format!("{p}embeddings.");
        Ok(Bert {
            word: get(&t, &ep, "word_embeddings.weight", &[c.vocab_size, h])?,
            position: get(
                &t,
                &ep,
                "position_embeddings.weight",
                &[c.max_position_embeddings, h],
            )?,
            token_type: get(
                &t,
                &ep,
                "token_type_embeddings.weight",
                &[c.type_vocab_size, h],
            )?,
            embed_norm: norm(&t, &ep, "LayerNorm", h, eps)?,
            weights: t,
            layers,
            hidden: h,
            heads: c.num_attention_heads,
            intermediate: c.intermediate_size,
            vocab: c.vocab_size,
            positions: c.max_position_embeddings,
            act: c.hidden_act,
        })
    }

    /// Runs one batch (each row a list of token ids, at most the model's positions) and
    /// pools each row into an L2-normalized vector.
    ///
    /// The batch is packed, not padded: the rows' tokens are stacked into one matrix for the
    /// per-token layers, and attention runs per row over that row's tokens only, so no work
    /// is spent on padding and no mask is needed.
    fn embed_batch(
        &self,
        rows: &[&[u32]],
        pooling: Pooling,
        ws: &mut Workspace,
        threads: Threads,
    ) -> Result<Vec<Vec<f32>>, String> {
        let h = self.hidden;
        let (nh, hd) = (self.heads, h / self.heads);
        let scale = 1.0 / (hd as f32).sqrt();
        // Each row keeps at least one position (an empty text pools its single zero token).
        let lens: Vec<usize> = rows.iter().map(|r| r.len().max(1)).collect();
        if let Some(&long) = lens.iter().find(|&&l| l > self.positions) {
            return Err(format!(
                "{long} tokens, the model has {} positions",
                self.positions
            ));
        }
        let total: usize = lens.iter().sum();
        let longest = lens.iter().copied().max().unwrap_or(0);
        grow(&mut ws.x, total * h);
        grow(&mut ws.qkv, total * 3 * h);
        grow(&mut ws.ctx, total * h);
        grow(&mut ws.attn, total * h);
        grow(&mut ws.up, total * self.intermediate);
        grow(&mut ws.scores, longest * longest);

        // Embeddings: word + position + token type, then layer norm.
        let (word, position) = (self.word.as_slice(), self.position.as_slice());
        let token_type = &self.token_type.as_slice()[..h];
        let mut at = 0;
        for (r, &len) in rows.iter().zip(&lens) {
            for t in 0..len {
                let id = r.get(t).copied().unwrap_or(0) as usize;
                if id >= self.vocab {
                    return Err(format!(
                        "token id {id} is past the vocabulary of {} (tokenizer.json and the weights disagree)",
                        self.vocab
                    ));
                }
                let dst = &mut ws.x[(at + t) * h..(at + t + 1) * h];
                let word = &word[id * h..(id + 1) * h];
                let pos = &position[t * h..(t + 1) * h];
                for (((d, w), p), y) in dst.iter_mut().zip(word).zip(pos).zip(token_type) {
                    *d = w + p + y;
                }
            }
            at += len;
        }
        self.embed_norm.forward(&mut ws.x[..total * h]);

        for layer in &self.layers {
            // Query, key and value side by side in each row of `qkv`.
            let qkv = &mut ws.qkv[..total * 3 * h];
            kernels::fill_rows(qkv, &layer.qkv_bias);
            for (i, proj) in layer.qkv.iter().enumerate() {
                proj.accumulate(&ws.x[..total * h], total, &mut qkv[i * h..], 3 * h, threads);
            }
            // Attention, per row and head, on strided views of the fused QKV rows.
            let mut off = 0;
            for &len in &lens {
                let base = off * 3 * h;
                for head in 0..nh {
                    let q = View {
                        data: &ws.qkv[base + head * hd..],
                        rs: 3 * h,
                        cs: 1,
                    };
                    // Kᵀ: element (d, j) is key j's component d.
                    let kt = View {
                        data: &ws.qkv[base + h + head * hd..],
                        rs: 1,
                        cs: 3 * h,
                    };
                    let v = View {
                        data: &ws.qkv[base + 2 * h + head * hd..],
                        rs: 3 * h,
                        cs: 1,
                    };
                    let scores = &mut ws.scores[..len * len];
                    kernels::matmul_scaled(len, len, hd, q, kt, scores, len, scale, threads);
                    kernels::softmax_rows(scores, len);
                    kernels::matmul(
                        len,
                        hd,
                        len,
                        View::rows(scores, len),
                        v,
                        &mut ws.ctx[off * h + head * hd..],
                        h,
                        false,
                        threads,
                    );
                }
                off += len;
            }
            let x = &ws.x[..total * h];
            layer
                .attn_out
                .forward(&ws.ctx[..total * h], total, Some(x), &mut ws.attn, threads);
            layer.attn_norm.forward(&mut ws.attn[..total * h]);
            let up = &mut ws.up[..total * self.intermediate];
            layer
                .up
                .forward(&ws.attn[..total * h], total, None, up, threads);
            match self.act {
                HiddenAct::Gelu => kernels::gelu_erf(up),
                HiddenAct::GeluTanh => kernels::gelu_tanh(up),
                HiddenAct::Relu => kernels::relu(up),
            }
            layer.down.forward(
                &ws.up[..total * self.intermediate],
                total,
                Some(&ws.attn[..total * h]),
                &mut ws.x,
                threads,
            );
            layer.out_norm.forward(&mut ws.x[..total * h]);
        }

        let mut out = Vec::with_capacity(rows.len());
        let mut at = 0;
        for &len in &lens {
            let hidden = &ws.x[at * h..(at + len) * h];
            let mut v = vec![0f32; h];
            match pooling {
                Pooling::Cls => v.copy_from_slice(&hidden[..h]),
                Pooling::Mean => {
                    for row in hidden.chunks_exact(h) {
                        v.iter_mut().zip(row).for_each(|(a, x)| *a += x);
                    }
                    v.iter_mut().for_each(|a| *a /= len as f32);
                }
            }
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|a| *a /= norm);
            }
            out.push(v);
            at += len;
        }
        Ok(out)
    }
}
