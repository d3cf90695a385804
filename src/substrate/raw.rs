//! Raw substrate files and their validation (being written).

use super::Substrate;
use crate::yaml::DescErrors;

/// One `--set path=expression` override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub path: String,
    pub expr: String,
}

/// Parses `path=expression` strings.
pub fn parse_overrides(items: &[String]) -> Result<Vec<Override>, String> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((p, e)) if !p.trim().is_empty() => Ok(Override { path: p.trim().to_string(), expr: e.trim().to_string() }),
            _ => Err(format!("--set `{s}`: expected path=expression, e.g. dram.read=\"8 B/cycle\"")),
        })
        .collect()
}

/// Loads a shipped substrate by name, or a substrate file by path, with overrides.
pub fn load(_spec: &str, _overrides: &[Override]) -> Result<Substrate, DescErrors> {
    todo!("substrate loading lands in the next commit")
}

/// Loads a substrate from text.
pub fn load_str(_src: &str, _file: &str, _overrides: &[Override]) -> Result<Substrate, DescErrors> {
    todo!("substrate loading lands in the next commit")
}
