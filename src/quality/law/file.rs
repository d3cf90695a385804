//! The fitted-law file: the law, and how it was obtained (objective, data hash, columns,
//! optimiser). JSON, pretty-printed, with no timestamps, so the same fit gives the same bytes.

use super::LawError;
use super::data::LawData;
use super::fit::{FitOptions, FitOutcome, ObjectiveValue};
use super::forms::{Input, Law, LawInputs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Current file format version.
pub const FORMAT_VERSION: u32 = 1;

/// A law ready to predict, with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedLaw {
    pub format_version: u32,
    pub law: Law,
    /// Absent for laws given by hand (published coefficients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<FitRecord>,
}

/// How a law was fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitRecord {
    /// "sum of huber_delta(ln L_pred - ln L_obs) over rows (scipy.special.huber)".
    pub objective_definition: String,
    pub objective: ObjectiveValue,
    pub data: DataRecord,
    /// Logical column -> CSV column.
    pub columns: BTreeMap<String, String>,
    pub optimizer: OptimizerRecord,
    /// The optimiser's parameter vector by name (for the conditional law it shows which
    /// coefficients were held fixed: those absent here).
    pub parameters: BTreeMap<String, f64>,
    /// Conditional law fitted jointly: the Chinchilla L_opt fit that seeded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l_opt_seed: Option<Law>,
    pub generator: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRecord {
    pub path: String,
    pub hash: String,
    pub rows: usize,
    /// Lines left out for missing / non-finite values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_lines: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerRecord {
    pub method: String,
    pub grid: super::fit::Grid,
    pub continuation_deltas: Vec<f64>,
    pub starts: usize,
    pub finite_starts: usize,
    pub best_start: usize,
    pub polished: usize,
    pub iterations: u64,
    pub evaluations: u64,
}

pub const OBJECTIVE_DEFINITION: &str =
    "sum over rows of huber_delta(ln L_pred - ln L_obs), huber as scipy.special.huber; mean = sum / rows";

impl FittedLaw {
    /// A law given by hand (no fit record).
    pub fn given(law: Law) -> FittedLaw {
        FittedLaw {
            format_version: FORMAT_VERSION,
            law,
            fit: None,
        }
    }

    /// Record a fit.
    pub fn from_fit(data: &LawData, opts: &FitOptions, out: &FitOutcome) -> FittedLaw {
        FittedLaw {
            format_version: FORMAT_VERSION,
            law: out.law,
            fit: Some(FitRecord {
                objective_definition: OBJECTIVE_DEFINITION.into(),
                objective: out.objective,
                data: DataRecord {
                    path: data.path.clone(),
                    hash: data.hash.clone(),
                    rows: data.rows.len(),
                    skipped_lines: data.skipped.iter().map(|s| s.line).collect(),
                },
                columns: data.columns.clone(),
                optimizer: OptimizerRecord {
                    method: "L-BFGS (m = 10, strong Wolfe line search), analytic gradients, grid of starts"
                        .into(),
                    grid: opts.grid.clone(),
                    continuation_deltas: opts
                        .continuation
                        .iter()
                        .copied()
                        .filter(|d| *d > opts.delta)
                        .collect(),
                    starts: out.starts,
                    finite_starts: out.finite_starts,
                    best_start: out.best_start,
                    polished: opts.polish,
                    iterations: out.iterations,
                    evaluations: out.evaluations,
                },
                parameters: out.theta.iter().cloned().collect(),
                l_opt_seed: out.l_opt_stage.as_ref().map(|s| s.law),
                generator: format!("llmforge {}", env!("CARGO_PKG_VERSION")),
            }),
        }
    }

    /// Predicted loss; allocation-free. NaN when an input the law reads is not positive.
    #[inline]
    pub fn predict_loss(&self, x: &LawInputs) -> f64 {
        self.law.predict(x)
    }

    /// The inputs the law reads.
    pub fn inputs(&self) -> &'static [Input] {
        self.law.inputs()
    }

    /// Predicted loss, or an error naming the first input that is missing or not positive.
    pub fn try_predict_loss(&self, x: &LawInputs) -> Result<f64, LawError> {
        for input in self.inputs() {
            let v = input.get(x);
            if !(v > 0.0 && v.is_finite()) {
                return Err(LawError::Input {
                    input: input.name(),
                    value: v,
                });
            }
        }
        Ok(self.predict_loss(x))
    }

    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parse a law file's text (`path` names it in errors).
    pub fn from_json(path: &str, text: &str) -> Result<FittedLaw, LawError> {
        let law: FittedLaw = serde_json::from_str(text).map_err(|e| LawError::LawFile {
            path: path.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if law.format_version != FORMAT_VERSION {
            return Err(LawError::LawFile {
                path: path.to_string(),
                line: 0,
                column: 0,
                message: format!(
                    "format_version {} is not supported (expected {FORMAT_VERSION})",
                    law.format_version
                ),
            });
        }
        // The coefficients (Law::problems, the one check of every law loader), each located
        // at its key in the file.
        if let Some((name, message)) = law.law.problems().into_iter().next() {
            let mut keys = vec!["law"];
            keys.extend(name.split('.'));
            let (line, column) = locate_key(text, &keys);
            return Err(LawError::LawFile {
                path: path.to_string(),
                line,
                column,
                message: format!("coefficient `{name}` {message}"),
            });
        }
        Ok(law)
    }

    /// Reads and checks a law file (at most [`crate::limits::MAX_FITTED_BYTES`]).
    pub fn load(path: &Path) -> Result<FittedLaw, LawError> {
        let shown = path.display().to_string();
        let text = crate::input::read_text(path, "law", crate::limits::MAX_FITTED_BYTES)
            .map_err(|e| LawError::File(e.to_string()))?;
        FittedLaw::from_json(&shown, &text)
    }
}

/// The 1-based line and column of the last of `keys` in a JSON text, each key searched after
/// the previous one (`["law", "l_opt", "E"]`); (0, 0) when one is not found.
pub fn locate_key(text: &str, keys: &[&str]) -> (usize, usize) {
    let mut at = 0;
    for key in keys {
        let needle = format!("\"{key}\"");
        match text[at..].find(&needle) {
            Some(k) => at += k,
            None => return (0, 0),
        }
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |k| k + 1);
    (line, before[start..].chars().count() + 1)
}
