//! Exact parameter, byte and FLOP counts of a model, in closed form.
//!
//! These are computed independently of the operator graph; the graph's totals are tested
//! against them. Conventions:
//! - Parameters: every matrix, bias and norm weight. Embedding parameters are the input
//!   embedding, a learned position table and an untied LM head; the rest is non-embedding.
//!   A tied LM head is one weight, counted once. `active` counts only the routed experts a
//!   token uses (plus shared experts and the router).
//! - Weight bytes: every parameter stored at the weight precision (block formats include their
//!   scales in their bits per weight).
//! - FLOPs: 2 per multiply-accumulate in matrix products, plus elementwise work at the
//!   per-element costs in [`elementwise`] (norms, softmax, activations, RoPE, residual adds,
//!   bias adds). The embedding lookup is a gather: zero FLOPs.
//! - Attention over a causal prefill of P tokens scores P(P+1)/2 query-key pairs per head
//!   (the causal triangle, diagonal included); a decode step at context C scores C pairs.

use super::{Attention, Ffn, FfnKind, Layer, Model, Moe, NormKind, Positional};
use crate::units::{Bytes, Flops};
use serde::{Deserialize, Serialize};

/// FLOPs per element of the elementwise operators.
pub mod elementwise {
    /// RMSNorm: square, accumulate, scale by rsqrt, multiply by the weight.
    pub const RMSNORM: f64 = 4.0;
    /// LayerNorm: mean, subtract, square, accumulate, scale, weight, bias.
    pub const LAYERNORM: f64 = 7.0;
    /// Softmax: max, subtract, exp, accumulate, divide.
    pub const SOFTMAX: f64 = 5.0;
    /// Score scaling by 1/sqrt(Dqk).
    pub const SCALE: f64 = 1.0;
    /// SiLU(gate) * up: sigmoid (~3), multiply by gate, multiply by up.
    pub const SWIGLU: f64 = 5.0;
    /// GELU (tanh form) on one element.
    pub const GELU: f64 = 8.0;
    /// GEGLU: GELU(gate) * up.
    pub const GEGLU: f64 = 9.0;
    /// RoPE: two multiplies and one add per rotated element.
    pub const ROPE: f64 = 3.0;
    /// Residual or bias add.
    pub const ADD: f64 = 1.0;
}

/// An inference phase: what the graph is lowered for and the FLOPs are counted over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "phase")]
pub enum Phase {
    /// Process a prompt of `tokens` tokens for each of `batch` sequences (empty cache).
    Prefill { tokens: u64, batch: u64 },
    /// Generate one token for each of `batch` sequences, attending to `context` positions
    /// (the cached tokens plus the new one).
    Decode { context: u64, batch: u64 },
}

impl Phase {
    /// Tokens processed in this phase (rows of every projection GEMM).
    pub fn tokens(&self) -> u64 {
        match *self {
            Phase::Prefill { tokens, batch } => tokens * batch,
            Phase::Decode { batch, .. } => batch,
        }
    }
    pub fn batch(&self) -> u64 {
        match *self {
            Phase::Prefill { batch, .. } | Phase::Decode { batch, .. } => batch,
        }
    }
    /// Query-key pairs scored per head, over the whole batch.
    pub fn attention_pairs(&self) -> u64 {
        match *self {
            Phase::Prefill { tokens, batch } => batch * tokens * (tokens + 1) / 2,
            Phase::Decode { context, batch } => batch * context,
        }
    }
    /// KV positions read from the cache per sequence (0 in prefill: keys come from the
    /// projections just computed).
    pub fn cached_positions(&self) -> u64 {
        match *self {
            Phase::Prefill { .. } => 0,
            Phase::Decode { context, .. } => context.saturating_sub(1),
        }
    }
    /// KV positions attended to per sequence (the longest row of the score matrix).
    pub fn context(&self) -> u64 {
        match *self {
            Phase::Prefill { tokens, .. } => tokens,
            Phase::Decode { context, .. } => context,
        }
    }
}

/// Parameter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCounts {
    pub total: u64,
    /// Input embedding + learned positions + untied LM head.
    pub embedding: u64,
    pub non_embedding: u64,
    /// Parameters one token touches (MoE: routed experts counted `active` times, not `experts`).
    pub active: u64,
}

fn attention_params(a: &Attention, d: u64) -> u64 {
    let qkv_bias = if a.qkv_bias {
        a.q_width() + a.k_width() + a.v_width()
    } else {
        0
    };
    let o_bias = if a.o_bias { d } else { 0 };
    d * (a.q_width() + a.k_width() + a.v_width()) + a.o_width() * d + qkv_bias + o_bias
}

fn mlp_params(kind: FfnKind, d: u64, m: u64, bias: bool) -> u64 {
    let weights = kind.n_matrices() * d * m;
    let biases = if bias { (kind.n_matrices() - 1) * m + d } else { 0 };
    weights + biases
}

/// (total, active) parameters of one FFN.
fn ffn_params(ffn: &Ffn, d: u64) -> (u64, u64) {
    match *ffn {
        Ffn::Dense { kind, width, bias } => {
            let p = mlp_params(kind, d, width, bias);
            (p, p)
        }
        Ffn::Moe { kind, moe } => {
            let Moe {
                experts,
                active,
                expert_width,
                shared_experts,
                shared_width,
                shared_gate,
            } = moe;
            let router = d * experts;
            let expert = mlp_params(kind, d, expert_width, false);
            let shared = shared_experts * mlp_params(kind, d, shared_width, false);
            let gate = if shared_gate { d } else { 0 };
            let fixed = router + shared + gate;
            (fixed + experts * expert, fixed + active * expert)
        }
    }
}

/// Norms in one block: one before the FFN, one before attention when the block has it
/// (parallel-residual blocks keep both).
pub fn layer_norm_count(layer: &Layer) -> u64 {
    if layer.attention.is_some() || layer.parallel_residual {
        2
    } else {
        1
    }
}

/// (total, active) parameters of one block: matrices, biases and norms.
fn layer_params_split(layer: &Layer, d: u64, norm: NormKind) -> (u64, u64) {
    let attn = layer.attention.as_ref().map_or(0, |a| attention_params(a, d));
    let (ffn_total, ffn_active) = ffn_params(&layer.ffn, d);
    let norms = layer_norm_count(layer) * norm.params(d);
    (attn + ffn_total + norms, attn + ffn_active + norms)
}

/// Parameters of one block (matrices + biases + norms), with an RMSNorm-free count when the
/// caller does not know the model's norm: use [`layer_params`] with the model instead.
pub fn layer_weight_params(layer: &Layer, d_model: u64) -> u64 {
    layer_params_split(layer, d_model, NormKind::RmsNorm).0
}

/// Parameters of one block under the model's norm kind.
pub fn layer_params(model: &Model, layer: &Layer) -> u64 {
    layer_params_split(layer, model.d_model, model.norm).0
}

/// Parameter counts of the whole model. A validated model's counts fit (they are below
/// [`crate::limits::MAX_PARAMS`]); sums past `u64` saturate.
pub fn params(model: &Model) -> ParamCounts {
    checked_params(model).unwrap_or(ParamCounts {
        total: u64::MAX,
        embedding: u64::MAX,
        non_embedding: u64::MAX,
        active: u64::MAX,
    })
}

/// Parameter counts, or `None` when a sum passes `u64`. Each block's count fits `u64` when its
/// fields are within [`crate::limits`] (the largest is below 2^52); the sums over blocks and
/// the embeddings are checked.
pub fn checked_params(model: &Model) -> Option<ParamCounts> {
    let d = model.d_model;
    let input_embedding = model.vocab.checked_mul(d)?;
    let positions = match model.positional {
        Positional::Learned { max_positions } => max_positions.checked_mul(d)?,
        _ => 0,
    };
    let lm_head = if model.tied_embeddings { 0 } else { input_embedding };
    let embedding = input_embedding.checked_add(positions)?.checked_add(lm_head)?;
    let (mut blocks, mut blocks_active) = (0u64, 0u64);
    for layer in &model.layers {
        let (t, a) = layer_params_split(layer, d, model.norm);
        blocks = blocks.checked_add(t)?;
        blocks_active = blocks_active.checked_add(a)?;
    }
    let final_norm = model.norm.params(d);
    let non_embedding = blocks.checked_add(final_norm)?;
    Some(ParamCounts {
        total: embedding.checked_add(non_embedding)?,
        embedding,
        non_embedding,
        active: embedding.checked_add(blocks_active)?.checked_add(final_norm)?,
    })
}

/// Bytes to store every weight at the model's weight precision.
pub fn weight_bytes(model: &Model) -> Bytes {
    Bytes::new(params(model).total as f64 * model.precision.weights.bytes())
}

/// Bytes of weights one token reads (MoE: only the active experts).
pub fn active_weight_bytes(model: &Model) -> Bytes {
    Bytes::new(params(model).active as f64 * model.precision.weights.bytes())
}

/// KV-cache elements per token over all attention layers: sum of G * (Dqk + Dv).
pub fn kv_elements_per_token(model: &Model) -> u64 {
    model
        .layers
        .iter()
        .filter_map(|l| l.attention.as_ref())
        .map(Attention::kv_elements_per_token)
        .sum()
}

/// KV-cache bytes per token at the KV precision.
pub fn kv_bytes_per_token(model: &Model) -> Bytes {
    Bytes::new(kv_elements_per_token(model) as f64 * model.precision.kv_cache.bytes())
}

fn norm_cost(norm: NormKind) -> f64 {
    match norm {
        NormKind::RmsNorm => elementwise::RMSNORM,
        NormKind::LayerNorm => elementwise::LAYERNORM,
    }
}

/// FLOPs of one dense (or expert) MLP on `t` tokens.
fn mlp_flops(kind: FfnKind, d: u64, m: u64, bias: bool, t: f64) -> f64 {
    let (d, m) = (d as f64, m as f64);
    let gemm = 2.0 * t * d * m * kind.n_matrices() as f64;
    let act = t
        * m
        * match kind {
            FfnKind::SwiGlu => elementwise::SWIGLU,
            FfnKind::GeGlu => elementwise::GEGLU,
            FfnKind::Gelu => elementwise::GELU,
        };
    let bias_flops = if bias {
        t * ((kind.n_matrices() - 1) as f64 * m + d) * elementwise::ADD
    } else {
        0.0
    };
    gemm + act + bias_flops
}

/// FLOPs of one block in a phase.
pub fn layer_flops(model: &Model, layer: &Layer, phase: &Phase) -> Flops {
    let d = model.d_model;
    let t = phase.tokens() as f64;
    let df = d as f64;
    let mut f = 0.0;
    // norms and residual adds
    f += layer_norm_count(layer) as f64 * t * df * norm_cost(model.norm);
    let residual_adds = if layer.attention.is_some() || layer.parallel_residual {
        2.0
    } else {
        1.0
    };
    f += residual_adds * t * df * elementwise::ADD;
    if let Some(a) = &layer.attention {
        let (qw, kw, vw, ow) = (
            a.q_width() as f64,
            a.k_width() as f64,
            a.v_width() as f64,
            a.o_width() as f64,
        );
        f += 2.0 * t * df * (qw + kw + vw) + 2.0 * t * ow * df;
        if a.qkv_bias {
            f += t * (qw + kw + vw) * elementwise::ADD;
        }
        if a.o_bias {
            f += t * df * elementwise::ADD;
        }
        if let Positional::Rope { fraction } = model.positional {
            let rotated = (a.d_qk as f64 * fraction).round();
            f += t * (a.heads + a.kv_groups) as f64 * rotated * elementwise::ROPE;
        }
        let pairs = phase.attention_pairs() as f64 * a.heads as f64;
        f += pairs * (2.0 * a.d_qk as f64 + elementwise::SCALE + elementwise::SOFTMAX + 2.0 * a.d_v as f64);
    }
    match layer.ffn {
        Ffn::Dense { kind, width, bias } => f += mlp_flops(kind, d, width, bias, t),
        Ffn::Moe { kind, moe } => {
            // router GEMM + softmax over experts
            f += 2.0 * t * df * moe.experts as f64 + t * moe.experts as f64 * elementwise::SOFTMAX;
            f += moe.active as f64 * mlp_flops(kind, d, moe.expert_width, false, t);
            f += moe.shared_experts as f64 * mlp_flops(kind, d, moe.shared_width, false, t);
            // combining the routed outputs (weighted sum) and the shared output
            f += t * df * 2.0 * moe.active as f64;
            if moe.shared_experts > 0 {
                f += t * df * elementwise::ADD;
            }
            if moe.shared_gate {
                f += 2.0 * t * df + t * df;
            }
        }
    }
    Flops::new(f)
}

/// FLOPs of the embedding, final norm and LM head in a phase. Prefill computes logits only
/// for the last token of each sequence (what generation needs).
pub fn head_flops(model: &Model, phase: &Phase) -> Flops {
    let t = phase.tokens() as f64;
    let df = model.d_model as f64;
    let mut f = 0.0;
    if matches!(model.positional, Positional::Learned { .. }) {
        f += t * df * elementwise::ADD;
    }
    f += t * df * norm_cost(model.norm);
    let logit_rows = phase.batch() as f64;
    f += 2.0 * logit_rows * df * model.vocab as f64;
    Flops::new(f)
}

/// Total FLOPs of a phase.
pub fn phase_flops(model: &Model, phase: &Phase) -> Flops {
    let blocks: Flops = model.layers.iter().map(|l| layer_flops(model, l, phase)).sum();
    blocks + head_flops(model, phase)
}

/// FLOPs to generate one token at batch 1 with `context` positions attended.
pub fn flops_per_token(model: &Model, context: u64) -> Flops {
    phase_flops(model, &Phase::Decode { context, batch: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Precision, Precisions};

    fn gqa_model(n_layers: usize, d: u64, h: u64, g: u64, hd: u64, m: u64, vocab: u64) -> Model {
        let layer = Layer {
            attention: Some(Attention {
                heads: h,
                kv_groups: g,
                d_qk: hd,
                d_v: hd,
                qkv_bias: false,
                o_bias: false,
            }),
            ffn: Ffn::Dense {
                kind: FfnKind::SwiGlu,
                width: m,
                bias: false,
            },
            parallel_residual: false,
        };
        Model {
            name: "t".into(),
            d_model: d,
            vocab,
            tied_embeddings: true,
            norm: NormKind::RmsNorm,
            positional: Positional::Rope { fraction: 1.0 },
            precision: Precisions {
                weights: Precision::Bf16,
                activations: Precision::Bf16,
                kv_cache: Precision::Bf16,
            },
            layers: vec![layer; n_layers],
        }
    }

    #[test]
    fn smollm2_360m_shape_params() {
        // 49152*960 + 32*(960*960*2 + 960*320*2 + 3*960*2560 + 2*960) + 960
        let m = gqa_model(32, 960, 15, 5, 64, 2560, 49152);
        let p = params(&m);
        assert_eq!(p.total, 361_821_120);
        assert_eq!(p.embedding, 47_185_920);
        assert_eq!(p.active, p.total);
        assert_eq!(kv_elements_per_token(&m), 32 * 5 * 128);
        assert_eq!(weight_bytes(&m).get(), 2.0 * 361_821_120.0);
    }

    #[test]
    fn decode_flops_are_about_twice_the_matmul_params() {
        let m = gqa_model(32, 960, 15, 5, 64, 2560, 49152);
        let f = flops_per_token(&m, 1).get();
        let p = params(&m);
        // 2 * (non-embedding matrices + LM head) plus a little elementwise work
        let matmul = 2.0 * (p.non_embedding as f64 + p.embedding as f64);
        assert!(f > matmul && f < matmul * 1.01, "{f} vs {matmul}");
    }

    #[test]
    fn causal_pairs() {
        assert_eq!(Phase::Prefill { tokens: 4, batch: 2 }.attention_pairs(), 20);
        assert_eq!(Phase::Decode { context: 7, batch: 3 }.attention_pairs(), 21);
    }
}
