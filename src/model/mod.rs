//! Candidate language-model architectures.
//!
//! A [`Model`] is a validated value: global settings plus one [`Layer`] per transformer block.
//! Every layer chooses its own attention shape (Infinite-Head Attention: H query heads,
//! G | H KV groups, Dqk and Dv head dims, or no attention at all) and its own FFN (dense
//! gated / plain MLP, or mixture-of-experts). Descriptions come from the YAML model format
//! ([`desc`]), Hugging Face `config.json` ([`hf`]) or the LLMForge release's layer-list YAML
//! ([`layerlist`]); [`presets`] names the shipped ones. [`accounting`] gives exact parameter,
//! byte and FLOP counts.
//!
//! Architecture invariant: nothing here knows about hardware.

pub mod accounting;
pub mod desc;
pub mod hf;
pub mod layerlist;
pub mod precision;
pub mod presets;

pub use precision::{ComputeClass, Precision, Precisions};
pub use presets::{LoadError, load, preset};
use serde::{Deserialize, Serialize};

/// Normalisation layer kind; LayerNorm carries a bias, RMSNorm does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    RmsNorm,
    LayerNorm,
}

impl NormKind {
    /// Parameters of one norm over `d` features.
    pub fn params(self, d: u64) -> u64 {
        match self {
            NormKind::RmsNorm => d,
            NormKind::LayerNorm => 2 * d,
        }
    }
}

/// Position encoding.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Positional {
    /// Rotary embeddings over a fraction of the query/key head dim (1.0 = all of it).
    Rope {
        fraction: f64,
    },
    /// A learned table of `max_positions` x d (GPT-2).
    Learned {
        max_positions: u64,
    },
    None,
}

/// Feed-forward kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FfnKind {
    /// gate and up (d -> m), elementwise act(gate) * up, down (m -> d): 3 matrices.
    SwiGlu,
    /// as SwiGLU with GELU: 3 matrices (Gemma).
    GeGlu,
    /// up (d -> m), GELU, down (m -> d): 2 matrices (GPT-2, Pythia).
    Gelu,
}

impl FfnKind {
    pub fn is_gated(self) -> bool {
        matches!(self, FfnKind::SwiGlu | FfnKind::GeGlu)
    }
    pub fn n_matrices(self) -> u64 {
        if self.is_gated() { 3 } else { 2 }
    }
}

/// One attention block (Infinite-Head Attention generalises MHA / GQA / MQA).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attention {
    /// Query heads H.
    pub heads: u64,
    /// KV groups G; G divides H. G = H is MHA, G = 1 is MQA.
    pub kv_groups: u64,
    /// Query/key head dim Dqk.
    pub d_qk: u64,
    /// Value head dim Dv.
    pub d_v: u64,
    /// Biases on the Q, K and V projections (Qwen2, GPT-2, Pythia).
    pub qkv_bias: bool,
    /// Bias on the output projection (GPT-2, Pythia).
    pub o_bias: bool,
}

impl Attention {
    /// Width of the concatenated queries, H * Dqk.
    pub fn q_width(&self) -> u64 {
        self.heads * self.d_qk
    }
    /// Width of the keys, G * Dqk.
    pub fn k_width(&self) -> u64 {
        self.kv_groups * self.d_qk
    }
    /// Width of the values, G * Dv.
    pub fn v_width(&self) -> u64 {
        self.kv_groups * self.d_v
    }
    /// Width of the concatenated head outputs, H * Dv.
    pub fn o_width(&self) -> u64 {
        self.heads * self.d_v
    }
    /// KV-cache elements per token: G * (Dqk + Dv).
    pub fn kv_elements_per_token(&self) -> u64 {
        self.kv_groups * (self.d_qk + self.d_v)
    }
}

/// A mixture-of-experts FFN: a router picks `active` of `experts` per token; `shared`
/// experts run on every token.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moe {
    pub experts: u64,
    pub active: u64,
    /// Width of each routed expert.
    pub expert_width: u64,
    /// Number of always-on shared experts (0 for Mixtral).
    pub shared_experts: u64,
    /// Width of each shared expert.
    pub shared_width: u64,
    /// A sigmoid gate (d -> 1) scales the shared experts' output (Qwen2-MoE).
    pub shared_gate: bool,
}

/// The FFN half of a block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum Ffn {
    Dense { kind: FfnKind, width: u64, bias: bool },
    Moe { kind: FfnKind, moe: Moe },
}

impl Ffn {
    pub fn kind(&self) -> FfnKind {
        match self {
            Ffn::Dense { kind, .. } | Ffn::Moe { kind, .. } => *kind,
        }
    }
}

/// One transformer block: optional attention, then FFN, each behind a norm, residual adds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// `None` makes the block FFN-only (LLMForge's "identity" attention).
    pub attention: Option<Attention>,
    pub ffn: Ffn,
    /// Attention and FFN read the same input and their outputs are added (GPT-NeoX).
    pub parallel_residual: bool,
}

/// A validated model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub d_model: u64,
    pub vocab: u64,
    /// The LM head reuses the embedding matrix.
    pub tied_embeddings: bool,
    pub norm: NormKind,
    pub positional: Positional,
    pub precision: Precisions,
    pub layers: Vec<Layer>,
}

/// A problem with a model description, found by validation.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ModelError {
    /// Where in the model, e.g. `layers[3].attention`.
    pub path: String,
    pub message: String,
}

impl Model {
    /// Checks the invariants the rest of the pipeline relies on; returns every problem.
    pub fn validate(&self) -> Result<(), Vec<ModelError>> {
        let mut errs = Vec::new();
        let mut err = |path: String, message: String| errs.push(ModelError { path, message });
        if self.d_model == 0 {
            err("d_model".into(), "must be at least 1".into());
        }
        if self.vocab == 0 {
            err("vocab".into(), "must be at least 1".into());
        }
        if self.layers.is_empty() {
            err("layers".into(), "a model needs at least one layer".into());
        }
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(a) = &layer.attention {
                let p = format!("layers[{i}].attention");
                if a.heads == 0 {
                    err(p.clone(), "heads must be at least 1".into());
                }
                if a.kv_groups == 0 {
                    err(p.clone(), "kv_groups must be at least 1".into());
                } else if a.heads % a.kv_groups != 0 {
                    err(
                        p.clone(),
                        format!("kv_groups {} must divide heads {}", a.kv_groups, a.heads),
                    );
                }
                if a.d_qk == 0 || a.d_v == 0 {
                    err(p.clone(), "head dims d_qk and d_v must be at least 1".into());
                }
            }
            let p = format!("layers[{i}].ffn");
            match &layer.ffn {
                Ffn::Dense { width, .. } => {
                    if *width == 0 {
                        err(p, "width must be at least 1".into());
                    }
                }
                Ffn::Moe { moe, .. } => {
                    if moe.experts == 0 || moe.active == 0 || moe.active > moe.experts {
                        err(
                            p.clone(),
                            format!(
                                "active experts {} must be in 1..={} (experts)",
                                moe.active, moe.experts
                            ),
                        );
                    }
                    if moe.expert_width == 0 {
                        err(p.clone(), "expert_width must be at least 1".into());
                    }
                    if moe.shared_experts > 0 && moe.shared_width == 0 {
                        err(
                            p,
                            "shared_width must be at least 1 when shared_experts > 0".into(),
                        );
                    }
                }
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }
    pub fn n_attention_layers(&self) -> usize {
        self.layers.iter().filter(|l| l.attention.is_some()).count()
    }
    pub fn is_moe(&self) -> bool {
        self.layers.iter().any(|l| matches!(l.ffn, Ffn::Moe { .. }))
    }
}
