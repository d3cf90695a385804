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

use crate::limits;
pub use precision::{ComputeClass, Precision, Precisions};
pub use presets::{LoadError, ModelSource, load, preset, preset_source, source};
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

impl Layer {
    /// Problems with this layer, their paths under `path` (e.g. `layers[3]`).
    pub fn errors(&self, path: &str) -> Vec<ModelError> {
        let mut errs = Vec::new();
        // the path is formatted only for a problem found (validation runs for every candidate
        // of a search)
        let join = |part: &str| {
            if path.is_empty() {
                part.to_string()
            } else {
                format!("{path}.{part}")
            }
        };
        let mut err = |part: &str, message: String| {
            errs.push(ModelError {
                path: join(part),
                message,
            })
        };
        let limit = |what: &str, v: u64, max: u64| limits::above(what, v, max);
        if let Some(a) = &self.attention {
            let p = "attention";
            if a.heads == 0 {
                err(p, "heads must be at least 1".into());
            }
            if a.kv_groups == 0 {
                err(p, "kv_groups must be at least 1".into());
            } else if a.heads % a.kv_groups != 0 {
                err(
                    p,
                    format!("kv_groups {} must divide heads {}", a.kv_groups, a.heads),
                );
            }
            if a.d_qk == 0 || a.d_v == 0 {
                err(p, "head dims d_qk and d_v must be at least 1".into());
            }
            for (what, v, max) in [
                ("heads", a.heads, limits::MAX_HEADS),
                ("kv_groups", a.kv_groups, limits::MAX_HEADS),
                ("d_qk", a.d_qk, limits::MAX_HEAD_DIM),
                ("d_v", a.d_v, limits::MAX_HEAD_DIM),
            ] {
                if let Some(m) = limit(what, v, max) {
                    err(p, m);
                }
            }
        }
        let p = "ffn";
        match &self.ffn {
            Ffn::Dense { width, .. } => {
                if *width == 0 {
                    err(p, "width must be at least 1".into());
                }
                if let Some(m) = limit("width", *width, limits::MAX_FFN_WIDTH) {
                    err(p, m);
                }
            }
            Ffn::Moe { moe, .. } => {
                if moe.experts == 0 || moe.active == 0 || moe.active > moe.experts {
                    err(
                        p,
                        format!(
                            "active experts {} must be in 1..={} (experts)",
                            moe.active, moe.experts
                        ),
                    );
                }
                if moe.expert_width == 0 {
                    err(p, "expert_width must be at least 1".into());
                }
                if moe.shared_experts > 0 && moe.shared_width == 0 {
                    err(
                        p,
                        "shared_width must be at least 1 when shared_experts > 0".into(),
                    );
                }
                for (what, v, max) in [
                    ("experts", moe.experts, limits::MAX_EXPERTS),
                    ("shared_experts", moe.shared_experts, limits::MAX_EXPERTS),
                    ("expert_width", moe.expert_width, limits::MAX_FFN_WIDTH),
                    ("shared_width", moe.shared_width, limits::MAX_FFN_WIDTH),
                ] {
                    if let Some(m) = limit(what, v, max) {
                        err(p, m);
                    }
                }
            }
        }
        errs
    }
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
    /// Checks the invariants the rest of the pipeline relies on and the documented limits
    /// ([`crate::limits`]); returns every problem.
    pub fn validate(&self) -> Result<(), Vec<ModelError>> {
        let mut errs = self.global_errors();
        if let Some(m) = limits::above(
            "the number of layers",
            self.layers.len() as u64,
            limits::MAX_LAYERS,
        ) {
            errs.push(ModelError {
                path: "layers".into(),
                message: m,
            });
        }
        for (i, layer) in self.layers.iter().enumerate() {
            errs.extend(layer.errors(&format!("layers[{i}]")));
        }
        if errs.is_empty() {
            if let Some(e) = self.size_error() {
                errs.push(e);
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Problems with the model-wide fields (not the layers).
    pub fn global_errors(&self) -> Vec<ModelError> {
        let mut errs = Vec::new();
        let mut err = |path: &str, message: String| {
            errs.push(ModelError {
                path: path.into(),
                message,
            })
        };
        if self.d_model == 0 {
            err("d_model", "must be at least 1".into());
        }
        if let Some(m) = limits::above("d_model", self.d_model, limits::MAX_D_MODEL) {
            err("d_model", m);
        }
        if self.vocab == 0 {
            err("vocab", "must be at least 1".into());
        }
        if let Some(m) = limits::above("vocab", self.vocab, limits::MAX_VOCAB) {
            err("vocab", m);
        }
        if self.layers.is_empty() {
            err("layers", "a model needs at least one layer".into());
        }
        match self.positional {
            Positional::Learned { max_positions } => {
                if let Some(m) = limits::above("learned positions", max_positions, limits::MAX_POSITIONS) {
                    err("positional", m);
                }
            }
            Positional::Rope { fraction } => {
                if !(fraction > 0.0 && fraction <= 1.0) {
                    err(
                        "positional",
                        format!("rope fraction {fraction} must be in (0, 1]"),
                    );
                }
            }
            Positional::None => {}
        }
        errs
    }

    /// The whole model's size: its parameter count, summed with checked arithmetic, is at most
    /// [`limits::MAX_PARAMS`]. Meaningful once every field is within its limit.
    pub fn size_error(&self) -> Option<ModelError> {
        let too_many = |n: String| ModelError {
            path: "layers".into(),
            message: format!(
                "the model has {n} parameters; the limit is {} (2^50)",
                limits::grouped(limits::MAX_PARAMS)
            ),
        };
        match accounting::checked_params(self) {
            None => Some(too_many("more than 2^64".into())),
            Some(p) if p.total > limits::MAX_PARAMS => Some(too_many(limits::grouped(p.total))),
            Some(_) => None,
        }
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
