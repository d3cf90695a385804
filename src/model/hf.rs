//! Import a Hugging Face `config.json`.
//!
//! Supported `model_type`s: llama, mistral, qwen2, qwen3, gemma, phi3, mixtral, qwen2_moe,
//! gpt2, gpt_neox. Each family's defaults follow its `transformers` configuration class
//! (e.g. `tie_word_embeddings` defaults to false for llama/mistral/qwen2, true for gemma and
//! gpt2; gpt_neox uses parallel residuals and biases). A field the family needs and the file
//! lacks is an error naming the field; nothing is silently guessed.

use super::{Attention, Ffn, FfnKind, Layer, Model, Moe, NormKind, Positional, Precision, Precisions};
use crate::limits;
use crate::yaml::{DescError, Loc, SourceFile};

/// Errors here are description errors located in the config text.
type LocatedError = DescError;
use serde_json::{Map, Value};

pub const SUPPORTED: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "phi3",
    "mixtral",
    "qwen2_moe",
    "gpt2",
    "gpt_neox",
];

/// Reads fields from the JSON object, locating errors at the key in the source text.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    src: &'a str,
    file: &'a str,
}

impl<'a> Fields<'a> {
    fn err_at_key(&self, key: &str, message: String, help: Option<String>) -> LocatedError {
        let needle = format!("\"{key}\"");
        let span = match self.src.find(&needle) {
            Some(off) => (off, needle.len()),
            None => (0, 0),
        };
        error_at(self.file, self.src, span, message, help)
    }

    fn opt_u64(&self, key: &str) -> Result<Option<u64>, LocatedError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => Err(self.err_at_key(
                    key,
                    format!(
                        "`{key}` must be a non-negative integer, found {}",
                        crate::yaml::clipped(&v.to_string(), 60)
                    ),
                    None,
                )),
            },
        }
    }

    fn u64(&self, key: &str) -> Result<u64, LocatedError> {
        self.opt_u64(key)?.ok_or_else(|| self.missing(key))
    }

    fn u64_any(&self, keys: &[&str]) -> Result<u64, LocatedError> {
        for k in keys {
            if let Some(v) = self.opt_u64(k)? {
                return Ok(v);
            }
        }
        Err(error_at(
            self.file,
            self.src,
            (0, 0),
            format!(
                "missing field: expected one of {}",
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None,
        ))
    }

    /// The layer count under the first of `keys` present, within [`limits::MAX_LAYERS`]
    /// (checked before any layer is built).
    fn layer_count(&self, keys: &[&str]) -> Result<u64, LocatedError> {
        let n = self.u64_any(keys)?;
        if let Some(m) = limits::above("the number of layers", n, limits::MAX_LAYERS) {
            let key = keys
                .iter()
                .find(|k| self.obj.contains_key(**k))
                .unwrap_or(&keys[0]);
            return Err(self.err_at_key(key, format!("`{key}`: {m}"), Some(format!("see {}", limits::DOC))));
        }
        Ok(n)
    }

    fn missing(&self, key: &str) -> LocatedError {
        error_at(
            self.file,
            self.src,
            (0, 0),
            format!("missing field `{key}`"),
            Some(format!("add \"{key}\": <integer> to the config")),
        )
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, LocatedError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err_at_key(
                key,
                format!(
                    "`{key}` must be true or false, found {}",
                    crate::yaml::clipped(&v.to_string(), 60)
                ),
                None,
            )),
        }
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>, LocatedError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) => Ok(Some(x)),
                None => Err(self.err_at_key(
                    key,
                    format!(
                        "`{key}` must be a number, found {}",
                        crate::yaml::clipped(&v.to_string(), 60)
                    ),
                    None,
                )),
            },
        }
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, LocatedError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.err_at_key(
                key,
                format!(
                    "`{key}` must be a string, found {}",
                    crate::yaml::clipped(&v.to_string(), 60)
                ),
                None,
            )),
        }
    }

    fn opt_u64_list(&self, key: &str) -> Result<Vec<u64>, LocatedError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64().ok_or_else(|| {
                        self.err_at_key(
                            key,
                            format!(
                                "`{key}` must list integers, found {}",
                                crate::yaml::clipped(&v.to_string(), 60)
                            ),
                            None,
                        )
                    })
                })
                .collect(),
            Some(v) => Err(self.err_at_key(
                key,
                format!(
                    "`{key}` must be a list of integers, found {}",
                    crate::yaml::clipped(&v.to_string(), 60)
                ),
                None,
            )),
        }
    }
}

/// The precision of `torch_dtype` (bf16 when the config does not say).
fn dtype_precision(f: &Fields<'_>) -> Result<Precision, LocatedError> {
    let key = if f.obj.contains_key("torch_dtype") {
        "torch_dtype"
    } else {
        "dtype"
    };
    match f.opt_str(key)? {
        None => Ok(Precision::Bf16),
        Some("float32") => Ok(Precision::F32),
        Some("float16") => Ok(Precision::F16),
        Some("bfloat16") => Ok(Precision::Bf16),
        Some(other) => Err(f.err_at_key(
            key,
            format!("unknown `{key}` `{}`", crate::yaml::clipped(other, 40)),
            Some("expected float32, float16 or bfloat16".into()),
        )),
    }
}

/// A JSON value whose objects have no repeated key: serde_json keeps the last of repeated
/// keys silently; a config with two `hidden_size`s is refused, at the second.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, SeqAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Unique;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Unique, E> {
                Ok(Unique(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Unique, E> {
                Ok(Unique(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Unique, E> {
                Ok(Unique(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Unique, E> {
                Ok(Unique(
                    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
                ))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Unique, E> {
                Ok(Unique(Value::String(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Unique, E> {
                Ok(Unique(Value::String(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Unique, E> {
                Ok(Unique(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Unique, E> {
                Ok(Unique(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
                let mut items = Vec::new();
                while let Some(Unique(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Unique(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
                let mut obj = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if obj.contains_key(&key) {
                        return Err(de::Error::custom(format!(
                            "the key `{}` appears twice in one object",
                            crate::yaml::clipped(&key, 60)
                        )));
                    }
                    let Unique(v) = map.next_value()?;
                    obj.insert(key, v);
                }
                Ok(Unique(Value::Object(obj)))
            }
        }
        d.deserialize_any(V)
    }
}

/// An error at byte range `(offset, len)` of `src`.
fn error_at(file: &str, src: &str, span: (usize, usize), message: String, help: Option<String>) -> DescError {
    let f = SourceFile::new(file, src);
    let offset = span.0.min(src.len());
    let (line, column) = f.line_column(offset);
    let loc = Loc {
        line: line as u32,
        column: column as u32,
        offset,
        len: span.1.min(src.len() - offset),
    };
    f.error(loc, message, "here", help)
}

/// An error at a 1-based line and column (as serde_json reports them).
fn error_at_line_col(
    file: &str,
    src: &str,
    line: usize,
    column: usize,
    message: String,
    help: Option<String>,
) -> DescError {
    let mut offset = src.len();
    let mut start = 0;
    for (i, l) in src.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            offset = start
                + l.chars()
                    .take(column.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum::<usize>();
            break;
        }
        start += l.len();
    }
    let len = src[offset..].chars().next().map_or(0, char::len_utf8);
    error_at(file, src, (offset, len), message, help)
}

/// Parses a `config.json` text into a model. `name` becomes the model's name.
pub fn from_config_json(src: &str, file: &str, name: &str) -> Result<Model, LocatedError> {
    let value: Value = serde_json::from_str::<Unique>(src).map(|u| u.0).map_err(|e| {
        error_at_line_col(
            file,
            src,
            e.line(),
            e.column(),
            format!("invalid JSON: {e}"),
            None,
        )
    })?;
    let Some(obj) = value.as_object() else {
        return Err(error_at(
            file,
            src,
            (0, src.len().min(1)),
            "expected a JSON object at the top level".into(),
            None,
        ));
    };
    let f = Fields { obj, src, file };
    let model_type = f.opt_str("model_type")?.ok_or_else(|| {
        error_at(
            file,
            src,
            (0, 0),
            "missing field `model_type`".into(),
            Some(format!("supported model types: {}", SUPPORTED.join(", "))),
        )
    })?;
    let dtype = dtype_precision(&f)?;
    let precision = Precisions {
        weights: dtype,
        activations: dtype,
        kv_cache: dtype,
    };

    let model = match model_type {
        "llama" | "mistral" | "qwen2" | "qwen3" | "gemma" | "phi3" | "mixtral" | "qwen2_moe" => {
            let d = f.u64("hidden_size")?;
            let n_layers = f.layer_count(&["num_hidden_layers"])?;
            let heads = f.u64("num_attention_heads")?;
            let kv_groups = f.opt_u64("num_key_value_heads")?.unwrap_or(heads);
            if heads == 0 {
                return Err(f.err_at_key(
                    "num_attention_heads",
                    "`num_attention_heads` must be at least 1".into(),
                    None,
                ));
            }
            let head_dim = match f.opt_u64("head_dim")? {
                Some(h) => h,
                None => {
                    if d % heads != 0 {
                        return Err(f.err_at_key("hidden_size", format!("hidden_size {d} is not a multiple of num_attention_heads {heads} and no `head_dim` is given"), None));
                    }
                    d / heads
                }
            };
            let vocab = f.u64("vocab_size")?;
            let tied_default = model_type == "gemma";
            let tied = f.opt_bool("tie_word_embeddings")?.unwrap_or(tied_default);
            let qkv_bias = match model_type {
                "qwen2" | "qwen2_moe" => true,
                _ => f.opt_bool("attention_bias")?.unwrap_or(false),
            };
            let o_bias = match model_type {
                "llama" | "qwen3" => f.opt_bool("attention_bias")?.unwrap_or(false),
                _ => false,
            };
            let mlp_bias = f.opt_bool("mlp_bias")?.unwrap_or(false);
            let kind = if model_type == "gemma" {
                FfnKind::GeGlu
            } else {
                FfnKind::SwiGlu
            };
            let fraction = f.opt_f64("partial_rotary_factor")?.unwrap_or(1.0);
            let attention = Attention {
                heads,
                kv_groups,
                d_qk: head_dim,
                d_v: head_dim,
                qkv_bias,
                o_bias,
            };
            let dense_width = f.opt_u64("intermediate_size")?;
            let mut layers = Vec::with_capacity(n_layers as usize);
            for i in 0..n_layers {
                let ffn = match model_type {
                    "mixtral" => Ffn::Moe {
                        kind,
                        moe: Moe {
                            experts: f.u64("num_local_experts")?,
                            active: f.u64("num_experts_per_tok")?,
                            expert_width: f.u64("intermediate_size")?,
                            shared_experts: 0,
                            shared_width: 0,
                            shared_gate: false,
                        },
                    },
                    "qwen2_moe" => {
                        let experts = f.opt_u64("num_experts")?.unwrap_or(0);
                        let step = f.opt_u64("decoder_sparse_step")?.unwrap_or(1).max(1);
                        let mlp_only = f.opt_u64_list("mlp_only_layers")?;
                        if experts > 0 && !mlp_only.contains(&i) && (i + 1) % step == 0 {
                            let shared_width = f.opt_u64("shared_expert_intermediate_size")?.unwrap_or(0);
                            Ffn::Moe {
                                kind,
                                moe: Moe {
                                    experts,
                                    active: f.u64("num_experts_per_tok")?,
                                    expert_width: f.u64("moe_intermediate_size")?,
                                    shared_experts: u64::from(shared_width > 0),
                                    shared_width,
                                    shared_gate: shared_width > 0,
                                },
                            }
                        } else {
                            Ffn::Dense {
                                kind,
                                width: f.u64("intermediate_size")?,
                                bias: false,
                            }
                        }
                    }
                    _ => Ffn::Dense {
                        kind,
                        width: dense_width.ok_or_else(|| f.missing("intermediate_size"))?,
                        bias: mlp_bias,
                    },
                };
                layers.push(Layer {
                    attention: Some(attention),
                    ffn,
                    parallel_residual: false,
                });
            }
            Model {
                name: name.to_string(),
                d_model: d,
                vocab,
                tied_embeddings: tied,
                norm: NormKind::RmsNorm,
                positional: Positional::Rope { fraction },
                precision,
                layers,
            }
        }
        "gpt2" => {
            let d = f.u64_any(&["n_embd", "hidden_size"])?;
            let n_layers = f.layer_count(&["n_layer", "num_hidden_layers"])?;
            let heads = f.u64_any(&["n_head", "num_attention_heads"])?;
            if heads == 0 || d % heads != 0 {
                return Err(f.err_at_key(
                    "n_head",
                    format!("n_embd {d} must be a positive multiple of n_head {heads}"),
                    None,
                ));
            }
            let width = f.opt_u64("n_inner")?.unwrap_or(4 * d);
            let hd = d / heads;
            let attention = Attention {
                heads,
                kv_groups: heads,
                d_qk: hd,
                d_v: hd,
                qkv_bias: true,
                o_bias: true,
            };
            Model {
                name: name.to_string(),
                d_model: d,
                vocab: f.u64("vocab_size")?,
                tied_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(true),
                norm: NormKind::LayerNorm,
                positional: Positional::Learned {
                    max_positions: f.u64_any(&["n_positions", "max_position_embeddings"])?,
                },
                precision,
                layers: vec![
                    Layer {
                        attention: Some(attention),
                        ffn: Ffn::Dense {
                            kind: FfnKind::Gelu,
                            width,
                            bias: true
                        },
                        parallel_residual: false
                    };
                    n_layers as usize
                ],
            }
        }
        "gpt_neox" => {
            let d = f.u64("hidden_size")?;
            let heads = f.u64("num_attention_heads")?;
            if heads == 0 || d % heads != 0 {
                return Err(f.err_at_key(
                    "num_attention_heads",
                    format!("hidden_size {d} must be a positive multiple of num_attention_heads {heads}"),
                    None,
                ));
            }
            let hd = d / heads;
            let bias = f.opt_bool("attention_bias")?.unwrap_or(true);
            let attention = Attention {
                heads,
                kv_groups: heads,
                d_qk: hd,
                d_v: hd,
                qkv_bias: bias,
                o_bias: bias,
            };
            Model {
                name: name.to_string(),
                d_model: d,
                vocab: f.u64("vocab_size")?,
                tied_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(false),
                norm: NormKind::LayerNorm,
                positional: Positional::Rope {
                    fraction: f.opt_f64("rotary_pct")?.unwrap_or(0.25),
                },
                precision,
                layers: vec![
                    Layer {
                        attention: Some(attention),
                        ffn: Ffn::Dense {
                            kind: FfnKind::Gelu,
                            width: f.u64("intermediate_size")?,
                            bias: true
                        },
                        parallel_residual: f.opt_bool("use_parallel_residual")?.unwrap_or(true),
                    };
                    f.layer_count(&["num_hidden_layers"])? as usize
                ],
            }
        }
        other => {
            return Err(f.err_at_key(
                "model_type",
                format!("unsupported model_type `{other}`"),
                Some(format!("supported model types: {}", SUPPORTED.join(", "))),
            ));
        }
    };
    if let Err(errs) = model.validate() {
        // Every layer is built from the same keys: report each problem once, at the key it
        // comes from when there is one.
        let mut seen = Vec::new();
        for e in &errs {
            let path = match e.path.split_once("].") {
                Some((_, rest)) => rest.to_string(),
                None => e.path.clone(),
            };
            let msg = format!("{path}: {}", e.message);
            if !seen.contains(&msg) {
                seen.push(msg);
            }
        }
        let first = errs.first().map(|e| e.path.as_str()).unwrap_or("");
        let key = [
            ("d_model", "hidden_size"),
            ("vocab", "vocab_size"),
            ("positional", "partial_rotary_factor"),
            ("attention", "num_attention_heads"),
            ("ffn", "intermediate_size"),
            ("layers", "num_hidden_layers"),
        ]
        .into_iter()
        .find(|(p, k)| first.contains(p) && obj.contains_key(*k))
        .map(|(_, k)| k);
        let message = format!("the config describes an invalid model: {}", seen.join("; "));
        return Err(match key {
            Some(k) => f.err_at_key(k, message, None),
            None => error_at(file, src, (0, 0), message, None),
        });
    }
    Ok(model)
}
