//! Named model presets shipped in `dsl/models/` (embedded in the binary), and the loader that
//! takes a preset name or a file path.

use super::Model;
use crate::yaml::{DescErrors, shipped};
use std::path::Path;

/// (name, YAML source) of every shipped model description.
pub const PRESETS: &[(&str, &str)] = shipped!(
    "dsl/models",
    [
        "smollm2-135m",
        "smollm2-360m",
        "qwen2.5-0.5b",
        "llama-3.2-1b",
        "pythia-160m",
        "gpt2",
        "gemma-2b",
        "llama-2-7b",
        "llama-3-8b",
        "llama-3-70b",
        "mistral-7b",
        "mixtral-8x7b",
        "qwen1.5-moe-a2.7b",
        "llmforge-acc-123m",
        "llmforge-compact-106m",
        "llmforge-acc-347m",
        "llmforge-eco-294m",
        "llmforge-fast-365m",
        "llama-2-13b",
        "llama-2-70b",
        "codellama-34b",
        "qwen2-7b",
        "qwen2-72b",
        "qwen1.5-7b",
    ]
);

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("{0}")]
    Input(crate::input::InputError),
    #[error("`{name}` is neither a model preset nor a file")]
    #[diagnostic(help("presets: {available}"))]
    UnknownPreset { name: String, available: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] DescErrors),
}

impl From<crate::input::InputError> for LoadError {
    fn from(e: crate::input::InputError) -> LoadError {
        LoadError::Input(e)
    }
}

/// The names of all presets.
pub fn names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(n, _)| *n)
}

/// Loads a preset by name.
pub fn preset(name: &str) -> Result<Model, LoadError> {
    match preset_source(name) {
        Some(source) => source.parse(),
        None => Err(LoadError::UnknownPreset {
            name: name.into(),
            available: names().collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Parses model text whose format is told by the file name and contents: `.json` is a Hugging
/// Face config, YAML with `*_layerlist` / `n_layer` keys is the LLMForge release format, other
/// YAML is the model description format.
pub fn parse_text(src: &str, file: &str) -> Result<Model, LoadError> {
    let path = Path::new(file);
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let stem = if stem == "config" {
        path.parent()
            .and_then(|p| p.file_name())
            .and_then(|s| s.to_str())
            .unwrap_or(stem)
    } else {
        stem
    };
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return super::hf::from_config_json(src, file, stem).map_err(|e| LoadError::Invalid(e.into()));
    }
    let first_key = src
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    if first_key.starts_with("- n_layer") || src.contains("_layerlist:") {
        return Ok(super::layerlist::parse(src, file, stem)?);
    }
    Ok(super::desc::parse(src, file)?)
}

/// The text of a model description and where it comes from ([`source`]).
#[derive(Clone, Debug)]
pub struct ModelSource {
    /// The name shown in errors: the path as given, or `dsl/models/<preset>.yaml`.
    pub name: String,
    pub text: std::borrow::Cow<'static, str>,
    /// A shipped preset (embedded text) rather than a file.
    pub preset: bool,
}

impl ModelSource {
    /// Parses the text: presets are model descriptions; files go by [`parse_text`].
    pub fn parse(&self) -> Result<Model, LoadError> {
        if self.preset {
            Ok(super::desc::parse(&self.text, &self.name)?)
        } else {
            parse_text(&self.text, &self.name)
        }
    }
}

/// The model `spec` names: a file when one exists at that path (a file wins; another existing
/// path, such as a directory, is refused saying what it is unless it is also a preset's
/// name), else a preset.
pub fn source(spec: &str) -> Result<ModelSource, LoadError> {
    let path = Path::new(spec);
    let is_preset = PRESETS.iter().any(|(n, _)| n.eq_ignore_ascii_case(spec));
    if path.is_file() || (crate::input::exists(spec) && !is_preset) {
        let text = crate::input::read_text(path, "model", crate::limits::MAX_DESCRIPTION_BYTES)?;
        return Ok(ModelSource {
            name: spec.to_string(),
            text: text.into(),
            preset: false,
        });
    }
    let looks_like_path = spec.contains('/')
        || spec.contains('\\')
        || path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "json" || e == "yml");
    if looks_like_path && !is_preset {
        return Err(crate::input::InputError::NotFound { path: spec.into() }.into());
    }
    preset_source(spec).ok_or_else(|| LoadError::UnknownPreset {
        name: spec.into(),
        available: names().collect::<Vec<_>>().join(", "),
    })
}

/// The preset named `name` (ignoring case); no file is looked at.
pub fn preset_source(name: &str) -> Option<ModelSource> {
    PRESETS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, src)| ModelSource {
            name: format!("dsl/models/{n}.yaml"),
            text: (*src).into(),
            preset: true,
        })
}

/// Loads a model from a preset name or a file path (see [`source`]).
pub fn load(spec: &str) -> Result<Model, LoadError> {
    source(spec)?.parse()
}
