//! The BERT encoder: embeddings, transformer layers and pooling over plain `f32` buffers,
//! with the weights where `weights.rs` found them (in place in the mapped file, or
//! converted), and the linear layers in `f32` (through `gemm`) or int8 (`int8`).
//!
//! A batch is packed, not padded: its texts' tokens are stacked for the per-token layers,
//! and attention runs per text over that text's tokens only, so no work goes to padding and
//! no mask is needed. Buffers live in a [`Workspace`] reused from batch to batch.

use crate::bert::Precision;
use crate::int8::{self, Int8Isa, PackedWeights, Scratch};
use crate::kernels::{self, Threads, View};
use crate::model_dir::{HiddenAct, Pooling};
use crate::weights::{try_vec, Floats, Weights, WeightsError};

/// Int8 weights of one linear layer, quantized when the model loads.
struct QuantLinear {
    scales: Vec<f32>,
    sums: Vec<i32>,
    packed: Vec<i8>,
}

impl QuantLinear {
    /// Quantizes `w`, `out` rows of `inp` values.
    fn new(w: &[f32], out: usize, inp: usize, name: &str) -> Result<Self, WeightsError> {
        let len = PackedWeights::packed_len(out, inp);
        let memory = || WeightsError::Memory {
            tensor: name.to_owned(),
            bytes: len as u64,
        };
        let mut packed = Vec::new();
        packed.try_reserve_exact(len).map_err(|_| memory())?;
        packed.resize(len, 0i8);
        let mut scales = try_vec(out, name)?;
        scales.resize(out, 0.0);
        let mut sums = Vec::new();
        sums.try_reserve_exact(out).map_err(|_| memory())?;
        sums.resize(out, 0i32);
        int8::quantize_weights(w, out, inp, &mut scales, &mut sums, &mut packed);
        Ok(QuantLinear {
            scales,
            sums,
            packed,
        })
    }
}

/// `x Wᵀ + b` with `W` as the file stores it, (out, in) row-major, read in place.
struct Linear {
    w: Floats,
    b: Floats,
    inp: usize,
    out: usize,
    /// The int8 weights, with [`Precision::Int8`].
    q: Option<QuantLinear>,
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
        ctx: &mut Ctx<'_>,
    ) {
        let dst = &mut dst[..rows * self.out];
        match residual {
            Some(r) => kernels::add_rows(dst, &r[..rows * self.out], self.b.as_slice()),
            None => kernels::fill_rows(dst, self.b.as_slice()),
        }
        self.accumulate(x, rows, dst, self.out, ctx);
    }

    /// `dst += x W`, `dst`'s rows `dst_rs` apart.
    fn accumulate(
        &self,
        x: &[f32],
        rows: usize,
        dst: &mut [f32],
        dst_rs: usize,
        ctx: &mut Ctx<'_>,
    ) {
        match &self.q {
            Some(q) => int8::matmul_int8(
                ctx.isa,
                x,
                rows,
                &PackedWeights {
                    n: self.out,
                    k: self.inp,
                    scales: &q.scales,
                    sums: &q.sums,
                    packed: &q.packed,
                },
                dst,
                dst_rs,
                ctx.scratch,
                ctx.threads,
            ),
            None => kernels::matmul(
                rows,
                self.out,
                self.inp,
                View::rows(x, self.inp),
                self.weights(),
                dst,
                dst_rs,
                true,
                1.0,
                ctx.threads,
            ),
        }
    }
}

/// How one forward pass runs its linear layers.
struct Ctx<'a> {
    threads: Threads,
    isa: Int8Isa,
    scratch: &'a mut Scratch,
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

pub(crate) struct Bert {
    /// (vocab, hidden), row-major.
    word: Floats,
    /// (max positions, hidden), row-major.
    position: Floats,
    /// (token types, hidden); only row 0 is used: every text is a single segment.
    token_type: Floats,
    /// The file the weights are read from, in place.
    pub(crate) weights: Weights,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    pub(crate) hidden: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    positions: usize,
    act: HiddenAct,
}

/// Buffers of one forward pass, kept between batches so a pass allocates nothing.
#[derive(Default)]
pub(crate) struct Workspace {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    attn: Vec<f32>,
    up: Vec<f32>,
    scores: Vec<f32>,
    int8: Scratch,
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
    precision: Precision,
) -> Result<Linear, WeightsError> {
    let w = get(t, prefix, &format!("{name}.weight"), &[out, inp])?;
    let q = match precision {
        Precision::F32 => None,
        Precision::Int8 => Some(QuantLinear::new(
            w.as_slice(),
            out,
            inp,
            &format!("{prefix}{name}.weight"),
        )?),
    };
    Ok(Linear {
        w,
        b: get(t, prefix, &format!("{name}.bias"), &[out])?,
        inp,
        out,
        q,
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
    /// Transformer layers.
    pub(crate) fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// The encoder of config `c` from weights `t`; `c` is within `BOUNDS` (so no size
    /// product overflows) and every buffer is reserved fallibly.
    pub(crate) fn new(
        t: Weights,
        c: &crate::model_dir::BertConfig,
        precision: Precision,
    ) -> Result<Self, WeightsError> {
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
                linear(&t, &lp, "attention.self.query", h, h, precision)?,
                linear(&t, &lp, "attention.self.key", h, h, precision)?,
                linear(&t, &lp, "attention.self.value", h, h, precision)?,
            ];
            let mut qkv_bias = try_vec(3 * h, &format!("{lp}attention.self"))?;
            for l in &qkv {
                qkv_bias.extend_from_slice(l.b.as_slice());
            }
            layers.push(Layer {
                qkv,
                qkv_bias,
                attn_out: linear(&t, &lp, "attention.output.dense", h, h, precision)?,
                attn_norm: norm(&t, &lp, "attention.output.LayerNorm", h, eps)?,
                up: linear(
                    &t,
                    &lp,
                    "intermediate.dense",
                    h,
                    c.intermediate_size,
                    precision,
                )?,
                down: linear(&t, &lp, "output.dense", c.intermediate_size, h, precision)?,
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
    pub(crate) fn embed_batch(
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
        let isa = Int8Isa::detect();

        for layer in &self.layers {
            // Query, key and value side by side in each row of `qkv`.
            let qkv = &mut ws.qkv[..total * 3 * h];
            kernels::fill_rows(qkv, &layer.qkv_bias);
            let mut ctx = Ctx {
                threads,
                isa,
                scratch: &mut ws.int8,
            };
            for (i, proj) in layer.qkv.iter().enumerate() {
                proj.accumulate(
                    &ws.x[..total * h],
                    total,
                    &mut qkv[i * h..],
                    3 * h,
                    &mut ctx,
                );
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
                    kernels::matmul(len, len, hd, q, kt, scores, len, false, scale, threads);
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
                        1.0,
                        threads,
                    );
                }
                off += len;
            }
            let x = &ws.x[..total * h];
            layer
                .attn_out
                .forward(&ws.ctx[..total * h], total, Some(x), &mut ws.attn, &mut ctx);
            layer.attn_norm.forward(&mut ws.attn[..total * h]);
            let up = &mut ws.up[..total * self.intermediate];
            layer
                .up
                .forward(&ws.attn[..total * h], total, None, up, &mut ctx);
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
                &mut ctx,
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
