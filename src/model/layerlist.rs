//! Import the LLMForge release's architecture YAML (`*_layerlist` keys).
//!
//! The file is a one-element list holding a mapping: global keys (`n_embd`, `n_layer`,
//! `mlp_variant`, `wte_weight_tying`, ...) and either scalar per-model genes (`n_head`,
//! `n_kv_group`, `mlp_size` or `mlp_expansion_factor`) or per-layer lists
//! (`n_head_layerlist`, `n_kv_group_layerlist`, `mlp_size_layerlist`,
//! `n_qk_head_dim_layerlist`, `n_v_head_dim_layerlist`, `attention_variant_layerlist` with
//! `infinite` or `identity`). Training-only keys are ignored. The paper trained every model
//! with the GPT-2 vocabulary (50,257), which the files do not state.
//!
//! Peri-LN output norms (`use_peri_ln`) add 2 x d norm weights per block; the model type has no
//! slot for them and they are left out (under 0.01% of parameters).

use super::{Attention, Ffn, FfnKind, Layer, Model, NormKind, Positional, Precision, Precisions};
use crate::yaml::{DescError, DescErrors, Loc, Located, SourceFile};
use serde::Deserialize;

/// The GPT-2 vocabulary the LLMForge models were trained with.
pub const GPT2_VOCAB: u64 = 50_257;

#[derive(Debug, Deserialize)]
struct RawArch {
    n_layer: Located<u64>,
    n_embd: u64,
    #[serde(default)]
    block_size: Option<u64>,
    #[serde(default)]
    mlp_variant: Option<String>,
    #[serde(default)]
    activation_variant: Option<String>,
    #[serde(default)]
    norm_variant_attn: Option<String>,
    #[serde(default)]
    use_abs_pos_embeddings: bool,
    #[serde(default)]
    use_rotary_embeddings: Option<bool>,
    #[serde(default)]
    use_parallel_mlp: bool,
    #[serde(default)]
    bias: bool,
    #[serde(default)]
    wte_weight_tying: Option<bool>,
    #[serde(default)]
    vocab_size: Option<u64>,
    n_head: Option<u64>,
    n_kv_group: Option<u64>,
    mlp_size: Option<u64>,
    mlp_expansion_factor: Option<u64>,
    n_qk_head_dim: Option<u64>,
    n_v_head_dim: Option<u64>,
    n_head_layerlist: Option<Located<Vec<u64>>>,
    n_kv_group_layerlist: Option<Located<Vec<u64>>>,
    mlp_size_layerlist: Option<Located<Vec<u64>>>,
    n_qk_head_dim_layerlist: Option<Located<Vec<u64>>>,
    n_v_head_dim_layerlist: Option<Located<Vec<u64>>>,
    attention_variant_layerlist: Option<Located<Vec<String>>>,
}

fn at<T>(s: &Located<T>, file: &SourceFile, msg: String) -> DescError {
    file.error(s.loc, msg, "here", None)
}

/// Parses a layer-list architecture file into a model named `name`.
pub fn parse(src: &str, file: &str, name: &str) -> Result<Model, DescErrors> {
    let file = &SourceFile::new(file, src);
    let mut list: Vec<RawArch> = file.parse()?;
    if list.len() != 1 {
        let msg = format!(
            "expected a list with exactly one architecture mapping, found {}",
            list.len()
        );
        return Err(file.error(Loc::UNKNOWN, msg, "", None).into());
    }
    let raw = list.remove(0);
    if let Some(m) = crate::limits::above("n_layer", raw.n_layer.value, crate::limits::MAX_LAYERS) {
        return Err(at(&raw.n_layer, file, m).into());
    }
    let mut errors = Vec::new();
    let n = raw.n_layer.value as usize;
    let d = raw.n_embd;
    // Each per-layer gene: the list if present (length-checked), else the scalar, else the default.
    let mut gene = |list: &Option<Located<Vec<u64>>>,
                    scalar: Option<u64>,
                    default: Option<u64>,
                    key: &str|
     -> Vec<u64> {
        match list {
            Some(l) if l.value.len() == n => l.value.clone(),
            Some(l) => {
                errors.push(at(
                    l,
                    file,
                    format!(
                        "`{key}_layerlist` has {} entries but n_layer is {n}",
                        l.value.len()
                    ),
                ));
                vec![0; n]
            }
            None => match scalar.or(default) {
                Some(v) => vec![v; n],
                None => {
                    errors.push(at(
                        &raw.n_layer,
                        file,
                        format!("missing `{key}` or `{key}_layerlist`"),
                    ));
                    vec![0; n]
                }
            },
        }
    };
    let heads = gene(&raw.n_head_layerlist, raw.n_head, None, "n_head");
    let groups = gene(&raw.n_kv_group_layerlist, raw.n_kv_group, None, "n_kv_group");
    // f x d, when it fits (a larger width fails the model's width limit below).
    let mlp_default = raw.mlp_expansion_factor.map(|f| f.saturating_mul(d));
    let mlp = gene(&raw.mlp_size_layerlist, raw.mlp_size, mlp_default, "mlp_size");
    let default_hd = raw.n_head.filter(|&h| h > 0 && d % h == 0).map(|h| d / h);
    let dqk = gene(
        &raw.n_qk_head_dim_layerlist,
        raw.n_qk_head_dim,
        default_hd,
        "n_qk_head_dim",
    );
    let dv = gene(
        &raw.n_v_head_dim_layerlist,
        raw.n_v_head_dim,
        default_hd,
        "n_v_head_dim",
    );
    let variants: Vec<bool> = match &raw.attention_variant_layerlist {
        Some(l) if l.value.len() == n => l
            .value
            .iter()
            .map(|v| match v.as_str() {
                "infinite" | "causal" => true,
                "identity" => false,
                other => {
                    errors.push(at(
                        l,
                        file,
                        format!("unknown attention_variant `{other}`: expected `infinite` or `identity`"),
                    ));
                    true
                }
            })
            .collect(),
        Some(l) => {
            errors.push(at(
                l,
                file,
                format!(
                    "`attention_variant_layerlist` has {} entries but n_layer is {n}",
                    l.value.len()
                ),
            ));
            vec![true; n]
        }
        None => vec![true; n],
    };
    let kind = match (raw.mlp_variant.as_deref(), raw.activation_variant.as_deref()) {
        (Some("swiglu") | None, _) => FfnKind::SwiGlu,
        (Some("mlp"), Some("gelu") | None) => FfnKind::Gelu,
        (Some(v), a) => {
            errors.push(at(
                &raw.n_layer,
                file,
                format!(
                    "unsupported mlp_variant `{v}` with activation {a:?}: expected swiglu, or mlp with gelu"
                ),
            ));
            FfnKind::SwiGlu
        }
    };
    let norm = match raw.norm_variant_attn.as_deref() {
        Some("layernorm") => NormKind::LayerNorm,
        _ => NormKind::RmsNorm,
    };
    let positional = if raw.use_abs_pos_embeddings {
        Positional::Learned {
            max_positions: raw.block_size.unwrap_or(1024),
        }
    } else if raw.use_rotary_embeddings.unwrap_or(true) {
        Positional::Rope { fraction: 1.0 }
    } else {
        Positional::None
    };
    let layers = (0..n)
        .map(|i| Layer {
            attention: variants[i].then_some(Attention {
                heads: heads[i],
                kv_groups: groups[i],
                d_qk: dqk[i],
                d_v: dv[i],
                qkv_bias: raw.bias,
                o_bias: raw.bias,
            }),
            ffn: Ffn::Dense {
                kind,
                width: mlp[i],
                bias: raw.bias,
            },
            parallel_residual: raw.use_parallel_mlp,
        })
        .collect();
    let model = Model {
        name: name.to_string(),
        d_model: d,
        vocab: raw.vocab_size.unwrap_or(GPT2_VOCAB),
        tied_embeddings: raw.wte_weight_tying.unwrap_or(true),
        norm,
        positional,
        precision: Precisions {
            weights: Precision::Bf16,
            activations: Precision::Bf16,
            kv_cache: Precision::Bf16,
        },
        layers,
    };
    if errors.is_empty() {
        if let Err(errs) = model.validate() {
            errors.extend(errs.into_iter().map(|e| at(&raw.n_layer, file, e.to_string())));
        }
    }
    let mut diags = file.diagnostics();
    for e in errors {
        diags.push(e);
    }
    diags.finish(model)
}
