//! The YAML model description format (`dsl/models/*.yaml`).
//!
//! ```yaml
//! name: smollm2-360m
//! d_model: 960
//! vocab: 49152
//! tied_embeddings: true
//! norm: rmsnorm                 # rmsnorm | layernorm
//! positional: rope              # rope | rope:0.25 | learned:1024 | none
//! precision: bf16               # or {weights: Q4_K_M, activations: fp16, kv_cache: fp16}
//! layers:
//!   - repeat: 32                # this entry stands for 32 identical blocks
//!     attention: {heads: 15, kv_groups: 5, head_dim: 64}   # or d_qk + d_v; or `none`
//!     ffn: {kind: swiglu, width: 2560}
//!   # MoE: ffn: {kind: swiglu, experts: 8, active: 2, expert_width: 14336,
//!   #            shared_experts: 0, shared_width: 0, shared_gate: false}
//! ```
//!
//! `RawModel` is what the file says; [`into_model`] validates it into a [`Model`], reporting
//! every problem with its line and column.

use super::{Attention, Ffn, FfnKind, Layer, Model, Moe, NormKind, Positional, Precision, Precisions};
use crate::limits;
use crate::yaml::{DescError, DescErrors, Located, SourceFile};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: String,
    /// Where the shape comes from (free text, for provenance).
    #[serde(default)]
    pub source: Option<String>,
    pub d_model: Located<u64>,
    pub vocab: Located<u64>,
    pub tied_embeddings: bool,
    pub norm: NormKind,
    pub positional: Located<String>,
    pub precision: Located<RawPrecision>,
    pub layers: Vec<Located<RawLayer>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawPrecision {
    All(String),
    Split {
        weights: String,
        activations: String,
        kv_cache: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer {
    #[serde(default = "one")]
    pub repeat: Located<u64>,
    pub attention: RawAttention,
    pub ffn: RawFfn,
    #[serde(default)]
    pub parallel_residual: bool,
}

fn one() -> Located<u64> {
    Located::unlocated(1)
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAttention {
    None(String),
    Heads(RawHeads),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeads {
    pub heads: u64,
    pub kv_groups: Option<u64>,
    pub head_dim: Option<u64>,
    pub d_qk: Option<u64>,
    pub d_v: Option<u64>,
    #[serde(default)]
    pub qkv_bias: bool,
    #[serde(default)]
    pub o_bias: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFfn {
    pub kind: FfnKind,
    pub width: Option<u64>,
    #[serde(default)]
    pub bias: bool,
    pub experts: Option<u64>,
    pub active: Option<u64>,
    pub expert_width: Option<u64>,
    #[serde(default)]
    pub shared_experts: u64,
    #[serde(default)]
    pub shared_width: u64,
    #[serde(default)]
    pub shared_gate: bool,
}

/// Parses and validates a model description.
pub fn parse(src: &str, file: &str) -> Result<Model, DescErrors> {
    let source = SourceFile::new(file, src);
    let raw: RawModel = source.parse()?;
    into_model(raw, &source)
}

fn at<T>(s: &Located<T>, file: &SourceFile, message: String, help: Option<String>) -> DescError {
    file.error(s.loc, message, "here", help)
}

/// Validates a raw description, collecting every problem.
pub fn into_model(raw: RawModel, file: &SourceFile) -> Result<Model, DescErrors> {
    let mut errors = Vec::new();
    let positional = match parse_positional(&raw.positional.value) {
        Ok(p) => p,
        Err(msg) => {
            errors.push(at(
                &raw.positional,
                file,
                msg,
                Some("write rope, rope:<fraction>, learned:<max positions> or none".into()),
            ));
            Positional::None
        }
    };
    let parse_p = |s: &str| s.parse::<Precision>();
    let precision = match &raw.precision.value {
        RawPrecision::All(s) => parse_p(s).map(|p| Precisions {
            weights: p,
            activations: p,
            kv_cache: p,
        }),
        RawPrecision::Split {
            weights,
            activations,
            kv_cache,
        } => parse_p(weights).and_then(|w| {
            Ok(Precisions {
                weights: w,
                activations: parse_p(activations)?,
                kv_cache: parse_p(kv_cache)?,
            })
        }),
    };
    let precision = match precision {
        Ok(p) => p,
        Err(e) => {
            errors.push(at(&raw.precision, file, e.to_string(), None));
            Precisions {
                weights: Precision::Bf16,
                activations: Precision::Bf16,
                kv_cache: Precision::Bf16,
            }
        }
    };
    let base = empty(&raw, positional, precision);
    for e in base.global_errors() {
        let loc = match e.path.as_str() {
            "d_model" => raw.d_model.loc,
            "vocab" => raw.vocab.loc,
            "positional" => raw.positional.loc,
            _ => crate::yaml::Loc::UNKNOWN,
        };
        if e.path != "layers" || raw.layers.is_empty() {
            errors.push(file.error(loc, format!("`{}`: {}", e.path, e.message), "here", None));
        }
    }
    let mut layers = Vec::new();
    let mut total: u64 = 0;
    for spanned in &raw.layers {
        match raw_layer(&spanned.value) {
            Ok(layer) => {
                let repeat = &spanned.value.repeat;
                let at_repeat = |message: String| {
                    let loc = if repeat.loc.is_known() {
                        repeat.loc
                    } else {
                        spanned.loc
                    };
                    file.error(loc, message, "here", None)
                };
                if repeat.value == 0 {
                    errors.push(at_repeat("`repeat` must be at least 1".into()));
                }
                for e in layer.errors("") {
                    errors.push(at(spanned, file, format!("{}: {}", e.path, e.message), None));
                }
                // Layers are expanded only up to the limit: a huge `repeat` is an error, not
                // an allocation.
                match total
                    .checked_add(repeat.value)
                    .filter(|t| *t <= limits::MAX_LAYERS)
                {
                    Some(t) => {
                        total = t;
                        layers.extend(std::iter::repeat_n(layer, repeat.value as usize));
                    }
                    None if total <= limits::MAX_LAYERS => {
                        total = limits::MAX_LAYERS + 1;
                        errors.push(at_repeat(format!(
                            "`repeat: {}` makes the model more than {} layers deep; the limit is {}",
                            limits::grouped(repeat.value),
                            limits::grouped(limits::MAX_LAYERS),
                            limits::grouped(limits::MAX_LAYERS)
                        )));
                    }
                    None => {}
                }
            }
            Err((msg, help)) => errors.push(at(spanned, file, msg, help)),
        }
    }
    let model = Model { layers, ..base };
    if errors.is_empty() {
        if let Err(errs) = model.validate() {
            for e in errs {
                errors.push(file.error(crate::yaml::Loc::UNKNOWN, e.to_string(), "", None));
            }
        }
    }
    let mut diags = file.diagnostics();
    for e in errors {
        diags.push(e);
    }
    diags.finish(model)
}

fn empty(raw: &RawModel, positional: Positional, precision: Precisions) -> Model {
    Model {
        name: raw.name.clone(),
        d_model: raw.d_model.value,
        vocab: raw.vocab.value,
        tied_embeddings: raw.tied_embeddings,
        norm: raw.norm,
        positional,
        precision,
        layers: Vec::new(),
    }
}

fn parse_positional(s: &str) -> Result<Positional, String> {
    let s = s.trim();
    let (head, arg) = match s.split_once(':') {
        Some((h, a)) => (h.trim(), Some(a.trim())),
        None => (s, None),
    };
    match (head, arg) {
        ("rope", None) => Ok(Positional::Rope { fraction: 1.0 }),
        ("rope", Some(a)) => match a.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(Positional::Rope { fraction: f }),
            _ => Err(format!("rope fraction `{a}` must be a number in (0, 1]")),
        },
        ("learned", Some(a)) => match a.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Positional::Learned { max_positions: n }),
            _ => Err(format!("learned positions `{a}` must be a positive integer")),
        },
        ("none", None) => Ok(Positional::None),
        _ => Err(format!("unknown positional encoding `{s}`")),
    }
}

type RawErr = (String, Option<String>);

fn raw_layer(raw: &RawLayer) -> Result<Layer, RawErr> {
    let attention = match &raw.attention {
        RawAttention::None(s) if s == "none" => None,
        RawAttention::None(s) => {
            return Err((
                format!("attention `{s}` is not understood"),
                Some("write `none` or a mapping {heads, kv_groups, head_dim}".into()),
            ));
        }
        RawAttention::Heads(h) => {
            let (d_qk, d_v) = match (h.head_dim, h.d_qk, h.d_v) {
                (Some(hd), None, None) => (hd, hd),
                (None, Some(q), Some(v)) => (q, v),
                _ => {
                    return Err((
                        "attention needs either `head_dim` or both `d_qk` and `d_v`".into(),
                        Some("e.g. {heads: 15, kv_groups: 5, head_dim: 64}".into()),
                    ));
                }
            };
            Some(Attention {
                heads: h.heads,
                kv_groups: h.kv_groups.unwrap_or(h.heads),
                d_qk,
                d_v,
                qkv_bias: h.qkv_bias,
                o_bias: h.o_bias,
            })
        }
    };
    let f = &raw.ffn;
    let ffn = match (f.width, f.experts) {
        (Some(width), None) => Ffn::Dense {
            kind: f.kind,
            width,
            bias: f.bias,
        },
        (None, Some(experts)) => {
            let (Some(active), Some(expert_width)) = (f.active, f.expert_width) else {
                return Err((
                    "a mixture-of-experts ffn needs `active` and `expert_width`".into(),
                    None,
                ));
            };
            Ffn::Moe {
                kind: f.kind,
                moe: Moe {
                    experts,
                    active,
                    expert_width,
                    shared_experts: f.shared_experts,
                    shared_width: f.shared_width,
                    shared_gate: f.shared_gate,
                },
            }
        }
        _ => {
            return Err((
                "ffn needs either `width` (dense) or `experts` (mixture of experts), not both".into(),
                Some("e.g. {kind: swiglu, width: 2560}".into()),
            ));
        }
    };
    Ok(Layer {
        attention,
        ffn,
        parallel_residual: raw.parallel_residual,
    })
}

/// Writes a model in the description format, run-length encoding identical layers.
pub fn to_yaml(model: &Model) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "name: {}", crate::yaml::quote(&model.name));
    let _ = writeln!(out, "d_model: {}", model.d_model);
    let _ = writeln!(out, "vocab: {}", model.vocab);
    let _ = writeln!(out, "tied_embeddings: {}", model.tied_embeddings);
    let norm = match model.norm {
        NormKind::RmsNorm => "rmsnorm",
        NormKind::LayerNorm => "layernorm",
    };
    let _ = writeln!(out, "norm: {norm}");
    let pos = match model.positional {
        Positional::Rope { fraction: 1.0 } => "rope".to_string(),
        Positional::Rope { fraction } => format!("rope:{fraction}"),
        Positional::Learned { max_positions } => format!("learned:{max_positions}"),
        Positional::None => "none".to_string(),
    };
    let _ = writeln!(out, "positional: \"{pos}\"");
    let p = model.precision;
    let _ = writeln!(
        out,
        "precision: {{weights: \"{}\", activations: \"{}\", kv_cache: \"{}\"}}",
        p.weights, p.activations, p.kv_cache
    );
    let _ = writeln!(out, "layers:");
    let mut i = 0;
    while i < model.layers.len() {
        let layer = model.layers[i];
        let mut run = 1;
        while i + run < model.layers.len() && model.layers[i + run] == layer {
            run += 1;
        }
        let _ = writeln!(out, "  - repeat: {run}");
        match layer.attention {
            None => {
                let _ = writeln!(out, "    attention: none");
            }
            Some(a) => {
                let _ = writeln!(
                    out,
                    "    attention: {{heads: {}, kv_groups: {}, d_qk: {}, d_v: {}, qkv_bias: {}, o_bias: {}}}",
                    a.heads, a.kv_groups, a.d_qk, a.d_v, a.qkv_bias, a.o_bias
                );
            }
        }
        let kind = match layer.ffn.kind() {
            FfnKind::SwiGlu => "swiglu",
            FfnKind::GeGlu => "geglu",
            FfnKind::Gelu => "gelu",
        };
        match layer.ffn {
            Ffn::Dense { width, bias, .. } => {
                let _ = writeln!(out, "    ffn: {{kind: {kind}, width: {width}, bias: {bias}}}");
            }
            Ffn::Moe { moe, .. } => {
                let _ = writeln!(
                    out,
                    "    ffn: {{kind: {kind}, experts: {}, active: {}, expert_width: {}, shared_experts: {}, shared_width: {}, shared_gate: {}}}",
                    moe.experts,
                    moe.active,
                    moe.expert_width,
                    moe.shared_experts,
                    moe.shared_width,
                    moe.shared_gate
                );
            }
        }
        if layer.parallel_residual {
            let _ = writeln!(out, "    parallel_residual: true");
        }
        i += run;
    }
    out
}
