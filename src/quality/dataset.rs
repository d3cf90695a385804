//! Reader for the LLMForge surrogate data set (`dataset_200M.csv` of the LLMForge release).
//!
//! One row is one trained architecture: `global_n_embd`, a `global_layer_mask` written as a
//! Python list of booleans (one per layer slot), and per slot `layerN_n_head`,
//! `layerN_n_kv_group`, `layerN_mlp_size`, `layerN_n_qk_head_dim`, `layerN_n_v_head_dim`,
//! `layerN_attention_variant` (`infinite` or `identity`), plus measured columns such as
//! `val_loss`. Each row becomes a [`Model`] as the paper trained it: GPT-2 vocabulary, tied
//! embeddings, RMSNorm, RoPE over the whole query/key head dim, bias-free SwiGLU FFNs of width
//! `mlp_size`, bf16 everywhere, and one [`Layer`] per active slot in slot order (`identity`
//! attention gives an FFN-only layer). Genes of inactive slots are not read.
//!
//! Nothing is dropped or changed silently: rows whose target is not a finite number are
//! listed in [`Dataset::dropped`], and KV-group genes that do not divide the head count are
//! repaired (to the largest divisor of H not above G, the search's repair) and listed in
//! [`Dataset::repairs`]. Malformed cells are errors naming file, line and column.

use crate::model::{Attention, Ffn, FfnKind, Layer, Model, NormKind, Positional, Precision, Precisions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// GPT-2 vocabulary, used by every LLMForge training run.
pub const LLMFORGE_VOCAB: u64 = 50_257;

/// Per-slot gene columns, without the `layerN_` prefix.
const GENES: [&str; 6] = [
    "n_head",
    "n_kv_group",
    "mlp_size",
    "n_qk_head_dim",
    "n_v_head_dim",
    "attention_variant",
];

/// A problem reading the data set.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{file}: cannot read: {source}")]
    Io { file: String, source: std::io::Error },
    /// The file cannot be read (see [`crate::input`]); the message names it.
    #[error("{0}")]
    Input(String),
    #[error("{file}:{line}: malformed CSV: {message}")]
    Csv {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}: missing column `{column}` ({why})")]
    MissingColumn {
        file: String,
        column: String,
        why: String,
    },
    #[error("{file}:{line}: column `{column}`: found `{value}`, expected {expected}")]
    BadCell {
        file: String,
        line: u64,
        column: String,
        value: String,
        expected: String,
    },
    #[error("{file}:{line}: {message}")]
    InvalidModel {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}: no data rows")]
    Empty { file: String },
}

/// One architecture of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line of the file.
    pub line: u64,
    /// The row's `#idx` (or `idx`) cell, else its line number.
    pub id: String,
    pub model: Model,
    /// The target value; `Some` and finite for every kept row when a target was asked for.
    pub target: Option<f64>,
}

/// A row left out because its target is not a finite number.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropped {
    pub line: u64,
    pub id: String,
    /// The cell as written.
    pub value: String,
    pub reason: String,
}

/// A KV-group gene changed so that it divides the head count.
#[derive(Clone, Debug, PartialEq)]
pub struct Repair {
    pub line: u64,
    pub id: String,
    /// Layer slot (the N of `layerN_`).
    pub slot: usize,
    pub heads: u64,
    pub kv_groups_from: u64,
    pub kv_groups_to: u64,
}

/// The rows of a file, with what was dropped and repaired on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub file: String,
    /// The target column, if one was asked for.
    pub target: Option<String>,
    /// Layer slots per row (length of the mask).
    pub slots: usize,
    pub rows: Vec<Row>,
    pub dropped: Vec<Dropped>,
    pub repairs: Vec<Repair>,
}

impl Dataset {
    pub fn models(&self) -> Vec<&Model> {
        self.rows.iter().map(|r| &r.model).collect()
    }

    /// Target values of the kept rows (NaN where no target column was read).
    pub fn targets(&self) -> Vec<f64> {
        self.rows.iter().map(|r| r.target.unwrap_or(f64::NAN)).collect()
    }

    /// Human-readable account of the read: rows kept, rows dropped and why, genes repaired.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "{}: {} rows kept", self.file, self.rows.len());
        if let Some(t) = &self.target {
            let _ = write!(s, " (target `{t}`)");
        }
        let _ = writeln!(s, ", {} layer slots", self.slots);
        if self.dropped.is_empty() {
            let _ = writeln!(s, "  dropped: none");
        } else {
            let _ = writeln!(s, "  dropped {} rows:", self.dropped.len());
            for d in &self.dropped {
                let _ = writeln!(s, "    line {} (id {}): `{}` {}", d.line, d.id, d.value, d.reason);
            }
        }
        if self.repairs.is_empty() {
            let _ = writeln!(
                s,
                "  KV-group repairs: none (G divides H in every active attention layer)"
            );
        } else {
            let _ = writeln!(s, "  KV-group repairs ({}):", self.repairs.len());
            for r in &self.repairs {
                let _ = writeln!(
                    s,
                    "    line {} (id {}) layer{}: H {} G {} -> {}",
                    r.line, r.id, r.slot, r.heads, r.kv_groups_from, r.kv_groups_to
                );
            }
        }
        s
    }
}

/// Reads an LLMForge CSV file. With `target`, rows whose target cell is not a finite number
/// are dropped and listed; a target cell that is not a number at all is an error.
pub fn read_llmforge_csv(path: &Path, target: Option<&str>) -> Result<Dataset, DatasetError> {
    let file = path.display().to_string();
    let src = crate::input::read_text(path, "data CSV", crate::limits::MAX_DATA_BYTES)
        .map_err(|e| DatasetError::Input(e.to_string()))?;
    parse_llmforge_csv(&src, &file, target)
}

/// Parses LLMForge CSV text; `file` names it in errors.
pub fn parse_llmforge_csv(src: &str, file: &str, target: Option<&str>) -> Result<Dataset, DatasetError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(src.as_bytes());
    // Line of a record from the text itself: the csv crate's record position can point at the
    // terminator of the previous line (it gave line 1 for the first data row of the LLMForge
    // file), so skip line breaks first, then count the newlines before the record.
    let newlines: Vec<usize> = src
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line_of = |byte: u64| {
        let bytes = src.as_bytes();
        let mut b = (byte as usize).min(bytes.len());
        while b < bytes.len() && (bytes[b] == b'\n' || bytes[b] == b'\r') {
            b += 1;
        }
        1 + newlines.partition_point(|&nl| nl < b) as u64
    };
    let csv_err = |e: csv::Error| DatasetError::Csv {
        file: file.to_string(),
        line: e.position().map_or(0, |p| line_of(p.byte())),
        message: e.to_string(),
    };
    let headers = rdr.headers().map_err(csv_err)?.clone();
    let columns: BTreeMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h.trim(), i)).collect();
    let need = |name: &str, why: &str| -> Result<usize, DatasetError> {
        columns
            .get(name)
            .copied()
            .ok_or_else(|| DatasetError::MissingColumn {
                file: file.to_string(),
                column: name.to_string(),
                why: why.to_string(),
            })
    };
    let c_embd = need("global_n_embd", "model width")?;
    let c_mask = need("global_layer_mask", "active layer slots")?;
    let c_target = match target {
        Some(t) => Some(need(t, "the requested target")?),
        None => None,
    };
    let c_id = columns.get("#idx").or_else(|| columns.get("idx")).copied();
    // Slot count: the highest N with a full set of `layerN_*` columns, checked against each mask.
    let mut slots = 0usize;
    while GENES
        .iter()
        .all(|g| columns.contains_key(format!("layer{slots}_{g}").as_str()))
    {
        slots += 1;
    }
    if slots == 0 {
        return Err(DatasetError::MissingColumn {
            file: file.to_string(),
            column: "layer0_n_head".into(),
            why: "per-layer genes layerN_{n_head, n_kv_group, mlp_size, n_qk_head_dim, n_v_head_dim, attention_variant}".into(),
        });
    }
    let slot_cols: Vec<[usize; 6]> = (0..slots)
        .map(|l| GENES.map(|g| columns[format!("layer{l}_{g}").as_str()]))
        .collect();

    let mut ds = Dataset {
        file: file.to_string(),
        target: target.map(str::to_string),
        slots,
        rows: Vec::new(),
        dropped: Vec::new(),
        repairs: Vec::new(),
    };
    for rec in rdr.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, |p| line_of(p.byte()));
        let cell = |c: usize| rec.get(c).unwrap_or("").trim();
        let bad = |c: usize, expected: &str| DatasetError::BadCell {
            file: file.to_string(),
            line,
            column: headers.get(c).unwrap_or("?").to_string(),
            value: cell(c).to_string(),
            expected: expected.to_string(),
        };
        let uint = |c: usize| -> Result<u64, DatasetError> {
            match cell(c).parse::<u64>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(bad(c, "a positive integer")),
            }
        };
        let id = c_id.map_or_else(|| line.to_string(), |c| cell(c).to_string());

        let target_value = match c_target {
            None => None,
            Some(c) => {
                let raw = cell(c);
                let v: f64 = if raw.is_empty() {
                    f64::NAN
                } else {
                    raw.parse()
                        .map_err(|_| bad(c, "a number (nan/inf rows are dropped and reported)"))?
                };
                if !v.is_finite() {
                    let reason = if raw.is_empty() {
                        "is empty".to_string()
                    } else if v.is_nan() {
                        "is NaN (the run produced no loss)".to_string()
                    } else {
                        "is infinite (no finite loss was recorded)".to_string()
                    };
                    ds.dropped.push(Dropped {
                        line,
                        id,
                        value: raw.to_string(),
                        reason,
                    });
                    continue;
                }
                Some(v)
            }
        };

        let d = uint(c_embd)?;
        let mask = parse_mask(cell(c_mask))
            .ok_or_else(|| bad(c_mask, "a list of True/False, e.g. `[True, False]`"))?;
        if mask.len() != slots {
            return Err(bad(
                c_mask,
                &format!(
                    "{slots} entries (one per layerN_ column group), found {}",
                    mask.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (slot, cols) in slot_cols.iter().enumerate().filter(|(s, _)| mask[*s]) {
            let [c_h, c_g, c_m, c_qk, c_v, c_var] = *cols;
            let width = uint(c_m)?;
            let attention = match cell(c_var) {
                "identity" => None,
                "infinite" => {
                    let heads = uint(c_h)?;
                    let g = uint(c_g)?;
                    let kv_groups = largest_divisor_at_most(heads, g);
                    if kv_groups != g {
                        ds.repairs.push(Repair {
                            line,
                            id: id.clone(),
                            slot,
                            heads,
                            kv_groups_from: g,
                            kv_groups_to: kv_groups,
                        });
                    }
                    Some(Attention {
                        heads,
                        kv_groups,
                        d_qk: uint(c_qk)?,
                        d_v: uint(c_v)?,
                        qkv_bias: false,
                        o_bias: false,
                    })
                }
                _ => return Err(bad(c_var, "`infinite` or `identity`")),
            };
            layers.push(Layer {
                attention,
                ffn: Ffn::Dense {
                    kind: FfnKind::SwiGlu,
                    width,
                    bias: false,
                },
                parallel_residual: false,
            });
        }
        let model = Model {
            name: format!("llmforge-{id}"),
            d_model: d,
            vocab: LLMFORGE_VOCAB,
            tied_embeddings: true,
            norm: NormKind::RmsNorm,
            positional: Positional::Rope { fraction: 1.0 },
            precision: Precisions {
                weights: Precision::Bf16,
                activations: Precision::Bf16,
                kv_cache: Precision::Bf16,
            },
            layers,
        };
        if let Err(errs) = model.validate() {
            let msg: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            return Err(DatasetError::InvalidModel {
                file: file.to_string(),
                line,
                message: format!("row does not describe a valid model: {}", msg.join("; ")),
            });
        }
        ds.rows.push(Row {
            line,
            id,
            model,
            target: target_value,
        });
    }
    if ds.rows.is_empty() && ds.dropped.is_empty() {
        return Err(DatasetError::Empty {
            file: file.to_string(),
        });
    }
    Ok(ds)
}

/// `[True, False, ...]` (Python repr; also `true`/`false`/`1`/`0`) -> booleans.
fn parse_mask(s: &str) -> Option<Vec<bool>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|t| match t.trim() {
            "True" | "true" | "1" => Some(true),
            "False" | "false" | "0" => Some(false),
            _ => None,
        })
        .collect()
}

/// The largest divisor of `h` that is at most `g` (at least 1).
pub fn largest_divisor_at_most(h: u64, g: u64) -> u64 {
    (1..=g.min(h)).rev().find(|k| h % k == 0).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(slots: usize) -> String {
        let mut h = vec![
            "#idx".to_string(),
            "global_n_embd".into(),
            "global_layer_mask".into(),
        ];
        for l in 0..slots {
            h.extend(GENES.iter().map(|g| format!("layer{l}_{g}")));
        }
        h.push("val_loss".into());
        h.join(",")
    }

    #[test]
    fn reads_rows_into_models() {
        let src = format!(
            "{}\n7,768,\"[True, False, True]\",8,2,1024,64,96,infinite,1,1,512,64,64,infinite,4,4,2048,32,32,identity,2.75\n",
            header(3)
        );
        let ds = parse_llmforge_csv(&src, "t.csv", Some("val_loss")).unwrap();
        assert_eq!(ds.rows.len(), 1);
        let r = &ds.rows[0];
        assert_eq!((r.line, r.id.as_str(), r.target), (2, "7", Some(2.75)));
        let m = &r.model;
        assert_eq!(m.layers.len(), 2);
        let a = m.layers[0].attention.unwrap();
        assert_eq!((a.heads, a.kv_groups, a.d_qk, a.d_v), (8, 2, 64, 96));
        assert!(m.layers[1].attention.is_none());
        assert_eq!(
            m.layers[1].ffn,
            Ffn::Dense {
                kind: FfnKind::SwiGlu,
                width: 2048,
                bias: false
            }
        );
        assert!(ds.dropped.is_empty() && ds.repairs.is_empty());
    }

    #[test]
    fn drops_non_finite_targets_and_repairs_groups() {
        let src = format!(
            "{}\n1,768,\"[True]\",6,4,512,64,64,infinite,inf\n2,768,\"[True]\",6,4,512,64,64,infinite,3.0\n",
            header(1)
        );
        let ds = parse_llmforge_csv(&src, "t.csv", Some("val_loss")).unwrap();
        assert_eq!(ds.dropped.len(), 1);
        assert_eq!(ds.dropped[0].line, 2);
        assert!(ds.dropped[0].reason.contains("infinite"));
        assert_eq!(ds.repairs.len(), 1);
        assert_eq!((ds.repairs[0].kv_groups_from, ds.repairs[0].kv_groups_to), (4, 3));
        assert_eq!(ds.rows[0].model.layers[0].attention.unwrap().kv_groups, 3);
        assert!(ds.report().contains("line 2 (id 1)"));
    }

    #[test]
    fn located_errors() {
        let src = format!("{}\n1,768,\"[True]\",six,1,512,64,64,infinite,3.0\n", header(1));
        let e = parse_llmforge_csv(&src, "t.csv", Some("val_loss"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "t.csv:2: column `layer0_n_head`: found `six`, expected a positive integer"
        );
        let src = format!(
            "{}\n1,768,\"[True, Maybe]\",1,1,512,64,64,infinite,3.0\n",
            header(1)
        );
        let e = parse_llmforge_csv(&src, "t.csv", None).unwrap_err().to_string();
        assert!(e.contains("t.csv:2: column `global_layer_mask`"), "{e}");
        let src = format!("{}\n1,768,\"[True]\",1,1,512,64,64,flash,3.0\n", header(1));
        let e = parse_llmforge_csv(&src, "t.csv", None).unwrap_err().to_string();
        assert!(e.contains("`layer0_attention_variant`: found `flash`"), "{e}");
        let src = format!("{}\n1,768,\"[True]\",1,1,512,64,64,infinite,abc\n", header(1));
        let e = parse_llmforge_csv(&src, "t.csv", Some("val_loss"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("column `val_loss`: found `abc`"), "{e}");
        let e = parse_llmforge_csv(&src, "t.csv", Some("loss"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing column `loss`"), "{e}");
        let src = format!("{}\n1,768,\"[False]\",1,1,512,64,64,infinite,3.0\n", header(1));
        let e = parse_llmforge_csv(&src, "t.csv", None).unwrap_err().to_string();
        assert!(e.contains("t.csv:2: row does not describe a valid model"), "{e}");
    }

    #[test]
    fn divisor_repair() {
        assert_eq!(largest_divisor_at_most(12, 5), 4);
        assert_eq!(largest_divisor_at_most(7, 3), 1);
        assert_eq!(largest_divisor_at_most(4, 9), 4);
    }
}
