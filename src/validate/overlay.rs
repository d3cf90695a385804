//! Per-stack overlays: the efficiencies of a chip (or of a whole device family) under one
//! software stack, as `--set`-style overrides on the shipped substrate, so the same chip
//! description serves llama.cpp, vLLM and TensorRT-LLM without being copied.
//!
//! ```yaml
//! # written by `llmforge calibrate` (provenance in the comments)
//! stack: llama.cpp
//! substrate: rtx-4090        # or `family: nvidia-ada-gddr`
//! set:
//!   efficiency.compute: "0.512"
//!   efficiency.memory: "0.803"
//!   efficiency.kernel_overhead: "2.31 us"
//!   efficiency.token_overhead: "95.2 us"
//! ```

use crate::substrate::{Efficiency, Override};
use crate::yaml::{DescErrors, Diagnostics, Expression, Located, SourceFile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A validated overlay.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    pub file: String,
    pub stack: String,
    pub substrate: Option<String>,
    pub family: Option<String>,
    pub overrides: Vec<Override>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    stack: Located<String>,
    #[serde(default)]
    substrate: Option<Located<String>>,
    #[serde(default)]
    family: Option<Located<String>>,
    set: Located<BTreeMap<String, Expression>>,
}

impl Overlay {
    /// Whether the overlay applies to a device of `substrate` in `family` under `stack`.
    pub fn applies(&self, substrate: &str, family: &str, stack: &str) -> bool {
        self.stack == stack
            && (self.substrate.as_deref() == Some(substrate) || self.family.as_deref() == Some(family))
    }
}

/// Reads an overlay file.
pub fn read(path: &Path) -> Result<Overlay, DescErrors> {
    let file = SourceFile::read_as(path, "overlay")?;
    parse(file.text(), file.name())
}

/// Parses overlay text. Every value must be an expression; `efficiency.*` values are checked
/// here, located in the file, by the substrate loader's own rules
/// ([`crate::substrate::check_efficiency`]: fractions in (0, 1], times and bytes non-negative
/// and in their physical range). Other paths are checked when a substrate is loaded with
/// them (an unknown path is an error there, naming the valid ones).
pub fn parse(text: &str, name: &str) -> Result<Overlay, DescErrors> {
    let file = SourceFile::new(name, text);
    let raw: RawOverlay = file.parse()?;
    let mut diags = Diagnostics::new(&file);
    match (&raw.substrate, &raw.family) {
        (Some(_), Some(f)) => diags.push(file.error(
            f.loc,
            "give either `substrate` or `family`, not both",
            "here",
            None,
        )),
        (None, None) => diags.push(file.error(
            raw.stack.loc,
            "the overlay names neither a `substrate` nor a `family`",
            "for this stack",
            Some("add `substrate: <name>` or `family: <family>`".into()),
        )),
        _ => {}
    }
    if raw.set.value.is_empty() {
        diags.push(file.error(raw.set.loc, "`set` is empty", "here", None));
    }
    for (path, expr) in &raw.set.value {
        let valid_path = !path.is_empty()
            && path
                .split('.')
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !valid_path {
            diags.push(file.error(
                expr.loc(),
                format!("`{path}` is not a field path such as `efficiency.compute`"),
                "the value of this key",
                None,
            ));
            continue;
        }
        if let Err(e) = expr.expr(&file) {
            diags.push(e);
            continue;
        }
        if expr.references().is_empty() {
            match expr.eval_scalar(&file, &crate::dsl::no_names) {
                Ok(q) => {
                    if let Some(Err(m)) = crate::substrate::check_efficiency(path, q) {
                        diags.push(file.error(expr.loc(), m, "here", None));
                    }
                }
                Err(e) => diags.push(e),
            }
        }
    }
    let overrides = raw
        .set
        .value
        .iter()
        .map(|(k, v)| Override {
            path: k.clone(),
            expr: v.text().to_string(),
        })
        .collect();
    diags.finish(Overlay {
        file: name.to_string(),
        stack: raw.stack.value,
        substrate: raw.substrate.map(|s| s.value),
        family: raw.family.map(|s| s.value),
        overrides,
    })
}

/// The overrides that set `eff`, with values written to four significant digits.
pub fn efficiency_overrides(eff: &Efficiency) -> Vec<Override> {
    vec![
        Override {
            path: "efficiency.compute".into(),
            expr: format!("{:.4}", eff.compute),
        },
        Override {
            path: "efficiency.memory".into(),
            expr: format!("{:.4}", eff.memory),
        },
        Override {
            path: "efficiency.kernel_overhead".into(),
            expr: format!("{:.4} us", eff.kernel_overhead.get() * 1e6),
        },
        Override {
            path: "efficiency.token_overhead".into(),
            expr: format!("{:.4} us", eff.token_overhead.get() * 1e6),
        },
        Override {
            path: "efficiency.quantised_compute".into(),
            expr: format!("{:.4}", eff.quantised_compute),
        },
        Override {
            path: "efficiency.score_bytes".into(),
            expr: format!("{:.4} B", eff.score_bytes.get()),
        },
    ]
}

/// Overlay text for `eff` plus `extra` overrides (e.g. the hardware map's); `header` lines
/// become comments.
pub fn to_yaml(
    stack: &str,
    target: (&str, &str),
    eff: &Efficiency,
    extra: &[Override],
    header: &[String],
) -> String {
    let mut s = String::new();
    for h in header {
        s.push_str("# ");
        s.push_str(h);
        s.push('\n');
    }
    s.push_str(&format!(
        "stack: \"{stack}\"\n{}: \"{}\"\nset:\n",
        target.0, target.1
    ));
    for o in extra.iter().cloned().chain(efficiency_overrides(eff)) {
        s.push_str(&format!("  {}: \"{}\"\n", o.path, o.expr));
    }
    s
}

/// Substrate YAML `src` with the values at `overrides`' paths replaced (a path is `key` or
/// `section.key`, as `--set` takes them) and `header` comment lines put first. A `key` its
/// `section:` lacks (an optional field) is added at the end of the section. `None` when a
/// path is not written in the text as `key:`, or its section as `section:`.
pub fn with_values(src: &str, overrides: &[Override], header: &[String]) -> Option<String> {
    let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
    for o in overrides {
        let (section, key) = match o.path.split_once('.') {
            Some((a, b)) => (Some(a), b),
            None => (None, o.path.as_str()),
        };
        let value = if o.expr.contains(' ') || o.expr.contains(':') {
            format!("\"{}\"", o.expr)
        } else {
            o.expr.clone()
        };
        let idx = match section {
            None => lines.iter().position(|l| l.starts_with(&format!("{key}:")))?,
            Some(sec) => {
                let start = lines
                    .iter()
                    .position(|l| l.trim_end() == format!("{sec}:") || l.starts_with(&format!("{sec}:")))?;
                let mut found = None;
                // Last line of the section with content, and its indentation.
                let mut last = None;
                for (j, l) in lines.iter().enumerate().skip(start + 1) {
                    if !l.starts_with(' ') && !l.trim().is_empty() {
                        break;
                    }
                    if l.trim_start().starts_with(&format!("{key}:")) {
                        found = Some(j);
                        break;
                    }
                    if !l.trim().is_empty() && !l.trim_start().starts_with('#') {
                        last = Some(j);
                    }
                }
                match (found, last) {
                    (Some(j), _) => j,
                    (None, Some(j)) => {
                        let indent: String = lines[j].chars().take_while(|c| *c == ' ').collect();
                        lines.insert(j + 1, format!("{indent}{key}: 0"));
                        j + 1
                    }
                    (None, None) => return None,
                }
            }
        };
        let indent: String = lines[idx].chars().take_while(|c| *c == ' ').collect();
        lines[idx] = format!("{indent}{key}: {value}                # written by llmforge calibrate");
    }
    let mut out = String::new();
    for h in header {
        out.push_str("# ");
        out.push_str(h);
        out.push('\n');
    }
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    Some(out)
}

/// Substrate YAML `src` with its efficiencies set to `eff` (see [`with_values`]).
pub fn calibrated_substrate(src: &str, eff: &Efficiency, header: &[String]) -> Option<String> {
    with_values(src, &efficiency_overrides(eff), header)
}
