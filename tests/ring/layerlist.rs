//! Test-only reader for the LLMForge release's `*_layerlist` YAML (one list entry with
//! global keys and optional per-layer lists). Replace with `llmforge::model::layerlist` once it
//! lands on main.

use llmforge::model::{Attention, Ffn, FfnKind, Layer, Model, NormKind, Positional, Precision, Precisions};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct Entry {
    n_layer: usize,
    n_embd: u64,
    n_head: Option<u64>,
    n_kv_group: Option<u64>,
    mlp_size: Option<u64>,
    mlp_expansion_factor: Option<u64>,
    mlp_variant: Option<String>,
    wte_weight_tying: Option<bool>,
    use_parallel_mlp: Option<bool>,
    norm_variant_attn: Option<String>,
    n_head_layerlist: Option<Vec<u64>>,
    n_kv_group_layerlist: Option<Vec<u64>>,
    mlp_size_layerlist: Option<Vec<u64>>,
    n_qk_head_dim_layerlist: Option<Vec<u64>>,
    n_v_head_dim_layerlist: Option<Vec<u64>>,
    attention_variant_layerlist: Option<Vec<String>>,
}

/// GPT-2 vocabulary, which every model of the paper was (re)trained with.
const VOCAB: u64 = 50_257;

fn per_layer(list: &Option<Vec<u64>>, global: Option<u64>, i: usize, key: &str) -> Result<u64, String> {
    match (list, global) {
        (Some(v), _) => v
            .get(i)
            .copied()
            .ok_or_else(|| format!("`{key}_layerlist` has no entry {i}")),
        (None, Some(g)) => Ok(g),
        (None, None) => Err(format!("neither `{key}` nor `{key}_layerlist` is given")),
    }
}

pub fn read(path: &Path) -> Result<Model, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let entries: Vec<Entry> =
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let e = entries
        .first()
        .ok_or_else(|| format!("{}: empty list", path.display()))?;
    let d = e.n_embd;
    let kind = match e.mlp_variant.as_deref() {
        Some("swiglu") => FfnKind::SwiGlu,
        Some("mlp") | None => FfnKind::Gelu,
        Some(other) => return Err(format!("{}: unknown mlp_variant `{other}`", path.display())),
    };
    let mut layers = Vec::with_capacity(e.n_layer);
    for i in 0..e.n_layer {
        let heads = per_layer(&e.n_head_layerlist, e.n_head, i, "n_head")?;
        let groups = per_layer(
            &e.n_kv_group_layerlist,
            e.n_kv_group.or(Some(heads)),
            i,
            "n_kv_group",
        )?;
        let width = per_layer(
            &e.mlp_size_layerlist,
            e.mlp_size.or(e.mlp_expansion_factor.map(|f| f * d)),
            i,
            "mlp_size",
        )?;
        let d_qk = per_layer(&e.n_qk_head_dim_layerlist, Some(d / heads), i, "n_qk_head_dim")?;
        let d_v = per_layer(&e.n_v_head_dim_layerlist, Some(d / heads), i, "n_v_head_dim")?;
        let attention_on = match &e.attention_variant_layerlist {
            Some(v) => match v.get(i).map(String::as_str) {
                Some("identity") => false,
                Some(_) => true,
                None => return Err(format!("`attention_variant_layerlist` has no entry {i}")),
            },
            None => true,
        };
        layers.push(Layer {
            attention: attention_on.then_some(Attention {
                heads,
                kv_groups: groups,
                d_qk,
                d_v,
                qkv_bias: false,
                o_bias: false,
            }),
            ffn: Ffn::Dense {
                kind,
                width,
                bias: false,
            },
            parallel_residual: e.use_parallel_mlp.unwrap_or(false),
        });
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let model = Model {
        name,
        d_model: d,
        vocab: VOCAB,
        tied_embeddings: e.wte_weight_tying.unwrap_or(true),
        norm: if e.norm_variant_attn.as_deref() == Some("layernorm") {
            NormKind::LayerNorm
        } else {
            NormKind::RmsNorm
        },
        positional: Positional::Rope { fraction: 1.0 },
        precision: Precisions {
            weights: Precision::Int8,
            activations: Precision::Int8,
            kv_cache: Precision::Int8,
        },
        layers,
    };
    model
        .validate()
        .map_err(|errs| format!("{}: {errs:?}", path.display()))?;
    Ok(model)
}

pub fn fixture(name: &str) -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ring")
        .join(format!("{name}.yaml"));
    match read(&path) {
        Ok(m) => m,
        Err(e) => panic!("fixture {name}: {e}"),
    }
}
