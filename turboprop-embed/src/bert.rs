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

use crate::encoder::{Bert, Workspace};
use crate::kernels::Threads;
use crate::model_dir::{ModelDir, ModelError, Pooling, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::tokenizer::guarded;
use crate::weights::Weights;

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
    /// The arithmetic of the encoder's matrix products.
    pub precision: Precision,
    /// Whether weights that must be converted (f16, bf16) may be cached in the model
    /// folder (`turboprop-f32.cache`; see docs/format.md). Off for a folder that is not
    /// turboprop's own, such as one being checked before `tp model import` copies it.
    pub write_cache: bool,
}

/// The arithmetic of the encoder's linear layers (attention and the row operations are
/// always `f32`).
///
/// ```
/// use turboprop_embed::{write_tiny_bert, BertEmbedder, BertOptions, Precision};
/// use turboprop_types::Embedder;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// write_tiny_bert(dir.path(), 3)?;
/// let load = |precision| {
///     let options = BertOptions { precision, ..BertOptions::default() };
///     BertEmbedder::load(dir.path(), "tiny-bert", options)
/// };
/// let text = ["fn split_pot(winners: &[Seat]) {}"];
/// let f32 = load(Precision::F32)?.embed_documents(&text)?;
/// let int8 = load(Precision::Int8)?.embed_documents(&text)?;
/// let cosine: f32 = f32[0].iter().zip(&int8[0]).map(|(a, b)| a * b).sum();
/// assert!(cosine > 0.95, "{cosine}");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// `f32` weights and activations, the weights read in place.
    #[default]
    F32,
    /// Per-channel int8 weights and per-row int8 activations with exact `i32` sums: faster
    /// where the CPU has VNNI (1.8× on all-MiniLM-L6-v2), slightly less exact (cosine to
    /// `f32` 0.998 on average; see docs/performance.md).
    Int8,
}

/// The default [`BertOptions::max_tokens`].
pub const DEFAULT_MAX_TOKENS: usize = 256;

impl Default for BertOptions {
    fn default() -> Self {
        BertOptions {
            max_tokens: DEFAULT_MAX_TOKENS,
            batch_size: 16,
            precision: Precision::default(),
            write_cache: true,
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
            .field("layers", &self.model.layer_count())
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
        let weights = Weights::open(&weights_path, options.write_cache)?;
        let model = Bert::new(weights, config, options.precision).map_err(|source| {
            ModelError::Weights {
                path: weights_path.clone(),
                source,
            }
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
