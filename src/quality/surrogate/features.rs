//! A fixed-length feature vector from any [`Model`].
//!
//! The vector does not depend on how the model was described (CSV slots, YAML, `config.json`):
//! it is built from the validated layers in order. Groups, in order:
//! - global: width, vocabulary, depth, attention / attention-free layer counts;
//! - accounting (from [`crate::model::accounting`]): total and non-embedding parameters, FLOPs
//!   per generated token at a [`FEATURE_CONTEXT`]-token context, KV-cache bytes per token;
//! - over the attention layers, sum / mean / min / max / std of H, G, Dqk, Dv, H*Dqk, H*Dv,
//!   H/G and G*(Dqk+Dv) (all 0 when the model has no attention layer);
//! - over all layers, the same statistics of the FFN width a token uses (MoE: active experts
//!   times their width plus shared experts);
//! - where the attention-free layers sit: first and last relative position (-1 if none), the
//!   attention-free fraction of each third of the depth, and the relative position of the first
//!   attention layer (-1 if none);
//! - the genes of the first two attention layers wherever they sit (layer index, H, G, Dqk, Dv,
//!   H*Dqk, H*Dv; -1 if absent): the first attention layer's head count and widths separate
//!   good from bad runs more than any aggregate;
//! - the genes of the first [`HEAD_LAYERS`] and the last [`TAIL_LAYERS`] layers (attention
//!   flag, H, G, Dqk, Dv, H*Dqk, H*Dv, FFN width; attention genes 0 in an attention-free layer, every gene -1
//!   where the model is shallower). On the LLMForge data the first layers carry most of the
//!   signal (a model whose first layer has one head trains badly), which the aggregates miss.
//!
//! Every value is finite. The names are stored with a fitted surrogate; loading checks them.

use crate::model::{Ffn, Layer, Model, accounting};

/// Context length for the FLOPs-per-token feature (the block size of the LLMForge runs).
pub const FEATURE_CONTEXT: u64 = 1024;
/// Layers at the input end whose genes are features.
pub const HEAD_LAYERS: usize = 8;
/// Layers at the output end whose genes are features.
pub const TAIL_LAYERS: usize = 4;

const STATS: [&str; 5] = ["sum", "mean", "min", "max", "std"];
const ATTN_QTY: [&str; 8] = [
    "heads",
    "kv_groups",
    "d_qk",
    "d_v",
    "q_width",
    "o_width",
    "group_size",
    "kv_elems",
];
const LAYER_GENES: [&str; 8] = [
    "attn",
    "heads",
    "kv_groups",
    "d_qk",
    "d_v",
    "q_width",
    "o_width",
    "ffn_width",
];
/// Attention layers (in order) whose genes are features wherever they sit.
const ATTN_LAYERS: [&str; 2] = ["attn_a", "attn_b"];
const ATTN_GENES: [&str; 7] = ["index", "heads", "kv_groups", "d_qk", "d_v", "q_width", "o_width"];

/// Number of features.
pub const N_FEATURES: usize = 4
    + 4
    + ATTN_QTY.len() * STATS.len()
    + STATS.len()
    + 6
    + ATTN_LAYERS.len() * ATTN_GENES.len()
    + (HEAD_LAYERS + TAIL_LAYERS) * LAYER_GENES.len();
const NG: usize = LAYER_GENES.len();

/// The feature names, in vector order.
pub fn feature_names() -> Vec<String> {
    let mut v = Vec::with_capacity(N_FEATURES);
    v.extend(["d_model", "vocab", "layers", "attention_layers"].map(String::from));
    v.extend(
        [
            "params",
            "non_embedding_params",
            "flops_per_token",
            "kv_bytes_per_token",
        ]
        .map(String::from),
    );
    for q in ATTN_QTY {
        v.extend(STATS.iter().map(|s| format!("attn.{q}.{s}")));
    }
    v.extend(STATS.iter().map(|s| format!("ffn_width.{s}")));
    v.extend(
        [
            "free.first_pos",
            "free.last_pos",
            "free.frac_third0",
            "free.frac_third1",
            "free.frac_third2",
            "attn.first_pos",
        ]
        .map(String::from),
    );
    for a in ATTN_LAYERS {
        v.extend(ATTN_GENES.iter().map(|g| format!("{a}.{g}")));
    }
    for i in 0..HEAD_LAYERS {
        v.extend(LAYER_GENES.iter().map(|g| format!("first{i}.{g}")));
    }
    for i in 0..TAIL_LAYERS {
        v.extend(LAYER_GENES.iter().map(|g| format!("last{i}.{g}")));
    }
    v
}

/// Running sum / min / max / sum of squares.
#[derive(Clone, Copy)]
struct Acc {
    n: f64,
    sum: f64,
    sq: f64,
    min: f64,
    max: f64,
}

impl Acc {
    const EMPTY: Acc = Acc {
        n: 0.0,
        sum: 0.0,
        sq: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };
    #[inline]
    fn add(&mut self, x: f64) {
        self.n += 1.0;
        self.sum += x;
        self.sq += x * x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }
    #[inline]
    fn write(&self, out: &mut [f64]) {
        if self.n == 0.0 {
            out[..5].fill(0.0);
            return;
        }
        let mean = self.sum / self.n;
        let var = (self.sq / self.n - mean * mean).max(0.0);
        out[..5].copy_from_slice(&[self.sum, mean, self.min, self.max, var.sqrt()]);
    }
}

/// The FFN width one token uses.
fn ffn_width(layer: &Layer) -> f64 {
    match layer.ffn {
        Ffn::Dense { width, .. } => width as f64,
        Ffn::Moe { moe, .. } => {
            (moe.active * moe.expert_width + moe.shared_experts * moe.shared_width) as f64
        }
    }
}

fn layer_genes(layer: &Layer, out: &mut [f64]) {
    let w = ffn_width(layer);
    match &layer.attention {
        Some(a) => out[..NG].copy_from_slice(&[
            1.0,
            a.heads as f64,
            a.kv_groups as f64,
            a.d_qk as f64,
            a.d_v as f64,
            a.q_width() as f64,
            a.o_width() as f64,
            w,
        ]),
        None => out[..NG].copy_from_slice(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, w]),
    }
}

/// Writes the features of `model` into `out` (length [`N_FEATURES`]).
///
/// # Panics
/// If `out.len() != N_FEATURES` (a programming error, not bad input).
pub fn extract_into(model: &Model, out: &mut [f64]) {
    assert_eq!(out.len(), N_FEATURES, "feature buffer length");
    let n = model.layers.len();
    let n_attn = model.n_attention_layers();
    let p = accounting::params(model);
    let head = [
        model.d_model as f64,
        model.vocab as f64,
        n as f64,
        n_attn as f64,
        p.total as f64,
        p.non_embedding as f64,
        accounting::flops_per_token(model, FEATURE_CONTEXT).get(),
        accounting::kv_bytes_per_token(model).get(),
    ];
    out[..8].copy_from_slice(&head);
    let mut k = 8;

    let mut attn = [Acc::EMPTY; 8];
    let mut ffn = Acc::EMPTY;
    let (mut first_free, mut last_free, mut first_attn) = (None, None, None);
    let mut third = [(0.0f64, 0.0f64); 3];
    for (i, layer) in model.layers.iter().enumerate() {
        ffn.add(ffn_width(layer));
        let t = (3 * i / n.max(1)).min(2);
        third[t].1 += 1.0;
        match &layer.attention {
            Some(a) => {
                first_attn.get_or_insert(i);
                let (h, g, qk, v) = (a.heads as f64, a.kv_groups as f64, a.d_qk as f64, a.d_v as f64);
                for (acc, x) in attn
                    .iter_mut()
                    .zip([h, g, qk, v, h * qk, h * v, h / g, g * (qk + v)])
                {
                    acc.add(x);
                }
            }
            None => {
                first_free.get_or_insert(i);
                last_free = Some(i);
                third[t].0 += 1.0;
            }
        }
    }
    for acc in &attn {
        acc.write(&mut out[k..k + 5]);
        k += 5;
    }
    ffn.write(&mut out[k..k + 5]);
    k += 5;
    let rel = |i: Option<usize>| match i {
        Some(i) if n > 1 => i as f64 / (n - 1) as f64,
        Some(_) => 0.0,
        None => -1.0,
    };
    out[k] = rel(first_free);
    out[k + 1] = rel(last_free);
    for (j, (free, total)) in third.iter().enumerate() {
        out[k + 2 + j] = if *total > 0.0 { free / total } else { 0.0 };
    }
    out[k + 5] = rel(first_attn);
    k += 6;
    let mut attn_layers = model
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.attention.map(|a| (i, a)));
    for _ in ATTN_LAYERS {
        match attn_layers.next() {
            Some((i, a)) => out[k..k + 7].copy_from_slice(&[
                i as f64,
                a.heads as f64,
                a.kv_groups as f64,
                a.d_qk as f64,
                a.d_v as f64,
                a.q_width() as f64,
                a.o_width() as f64,
            ]),
            None => out[k..k + 7].fill(-1.0),
        }
        k += 7;
    }
    for i in 0..HEAD_LAYERS {
        match model.layers.get(i) {
            Some(l) => layer_genes(l, &mut out[k..k + NG]),
            None => out[k..k + NG].fill(-1.0),
        }
        k += NG;
    }
    for i in 0..TAIL_LAYERS {
        match n.checked_sub(i + 1).and_then(|j| model.layers.get(j)) {
            Some(l) => layer_genes(l, &mut out[k..k + NG]),
            None => out[k..k + NG].fill(-1.0),
        }
        k += NG;
    }
    debug_assert_eq!(k, N_FEATURES);
}

/// The features of `model`.
pub fn extract(model: &Model) -> Vec<f64> {
    let mut v = vec![0.0; N_FEATURES];
    extract_into(model, &mut v);
    v
}

/// Row-major feature matrix of several models (`models.len()` x [`N_FEATURES`]).
pub fn extract_matrix<'a>(models: impl IntoIterator<Item = &'a Model>) -> Vec<f64> {
    let mut v = Vec::new();
    for m in models {
        let start = v.len();
        v.resize(start + N_FEATURES, 0.0);
        extract_into(m, &mut v[start..]);
    }
    v
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{Attention, FfnKind, NormKind, Positional, Precision, Precisions};

    /// A dense SwiGLU layer; `attn` is (H, G, Dqk, Dv), `None` for an attention-free one.
    pub(in crate::quality::surrogate) fn layer(attn: Option<(u64, u64, u64, u64)>, m: u64) -> Layer {
        Layer {
            attention: attn.map(|(heads, kv_groups, d_qk, d_v)| Attention {
                heads,
                kv_groups,
                d_qk,
                d_v,
                qkv_bias: false,
                o_bias: false,
            }),
            ffn: Ffn::Dense {
                kind: FfnKind::SwiGlu,
                width: m,
                bias: false,
            },
            parallel_residual: false,
        }
    }

    /// A model of the LLMForge family (d 768, GPT-2 vocabulary, tied, RMSNorm, RoPE, bf16).
    pub(in crate::quality::surrogate) fn model(layers: Vec<Layer>) -> Model {
        Model {
            name: "t".into(),
            d_model: 768,
            vocab: 50257,
            tied_embeddings: true,
            norm: NormKind::RmsNorm,
            positional: Positional::Rope { fraction: 1.0 },
            precision: Precisions {
                weights: Precision::Bf16,
                activations: Precision::Bf16,
                kv_cache: Precision::Bf16,
            },
            layers,
        }
    }

    fn get(names: &[String], v: &[f64], name: &str) -> f64 {
        v[names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no feature {name}"))]
    }

    #[test]
    fn names_match_length_and_are_unique() {
        let names = feature_names();
        assert_eq!(names.len(), N_FEATURES);
        let set: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(set.len(), N_FEATURES);
    }

    #[test]
    fn hand_computed_features() {
        // layers: attn(8,2,64,96) m1024 | free m2048 | attn(4,4,32,32) m512
        let m = model(vec![
            layer(Some((8, 2, 64, 96)), 1024),
            layer(None, 2048),
            layer(Some((4, 4, 32, 32)), 512),
        ]);
        let v = extract(&m);
        let n = feature_names();
        assert_eq!(get(&n, &v, "layers"), 3.0);
        assert_eq!(get(&n, &v, "attention_layers"), 2.0);
        assert_eq!(get(&n, &v, "attn.heads.sum"), 12.0);
        assert_eq!(get(&n, &v, "attn.heads.mean"), 6.0);
        assert_eq!(get(&n, &v, "attn.heads.std"), 2.0);
        assert_eq!(get(&n, &v, "attn.q_width.max"), 512.0);
        assert_eq!(get(&n, &v, "attn.o_width.min"), 128.0);
        assert_eq!(get(&n, &v, "attn.group_size.max"), 4.0);
        assert_eq!(get(&n, &v, "attn.kv_elems.sum"), 2.0 * 160.0 + 4.0 * 64.0);
        assert_eq!(get(&n, &v, "ffn_width.sum"), 3584.0);
        assert_eq!(get(&n, &v, "free.first_pos"), 0.5);
        assert_eq!(get(&n, &v, "free.last_pos"), 0.5);
        assert_eq!(get(&n, &v, "free.frac_third1"), 1.0);
        assert_eq!(get(&n, &v, "free.frac_third0"), 0.0);
        assert_eq!(get(&n, &v, "attn.first_pos"), 0.0);
        assert_eq!(get(&n, &v, "first1.attn"), 0.0);
        assert_eq!(get(&n, &v, "first1.ffn_width"), 2048.0);
        assert_eq!(get(&n, &v, "first2.heads"), 4.0);
        assert_eq!(get(&n, &v, "first3.heads"), -1.0);
        assert_eq!(get(&n, &v, "last0.d_v"), 32.0);
        assert_eq!(get(&n, &v, "last2.d_v"), 96.0);
        assert_eq!(get(&n, &v, "last3.attn"), -1.0);
        assert_eq!(get(&n, &v, "first0.o_width"), 768.0);
        assert_eq!(get(&n, &v, "attn_a.index"), 0.0);
        assert_eq!(get(&n, &v, "attn_b.index"), 2.0);
        assert_eq!(get(&n, &v, "attn_b.q_width"), 128.0);
        // KV bytes: bf16 (2 B) x sum G*(Dqk+Dv)
        assert_eq!(get(&n, &v, "kv_bytes_per_token"), 2.0 * 576.0);
        let p = accounting::params(&m);
        assert_eq!(get(&n, &v, "params"), p.total as f64);
        assert_eq!(get(&n, &v, "non_embedding_params"), p.non_embedding as f64);
    }

    #[test]
    fn attention_free_model_is_finite() {
        let v = extract(&model(vec![layer(None, 512)]));
        assert!(v.iter().all(|x| x.is_finite()));
        let n = feature_names();
        assert_eq!(get(&n, &v, "attn.first_pos"), -1.0);
        assert_eq!(get(&n, &v, "attn.heads.max"), 0.0);
        assert_eq!(get(&n, &v, "free.first_pos"), 0.0);
        assert_eq!(get(&n, &v, "attn_a.heads"), -1.0);
    }
}
