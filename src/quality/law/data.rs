//! Reading law data from CSV: a header row, one run per line.
//!
//! The law's logical columns (`params`, `tokens`, `loss`, `width`, `depth`, `ffn_ratio`) are
//! read from CSV columns of the same name unless a [`ColumnMap`] maps them elsewhere
//! (`params` -> `Model Size`). Every error names the file, the 1-based line, the CSV column and
//! what was expected. Missing or non-finite values (empty, NaN, inf) are errors by default; with
//! [`NonFinite::Skip`] those rows are left out and listed in [`LawData::skipped`], never dropped
//! silently.

use super::LawError;
use super::forms::{Input, LawInputs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The logical column holding the observed loss.
pub const LOSS: &str = "loss";

/// Logical column -> CSV header. Logical names: the [`Input`] names and `loss`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMap(pub BTreeMap<String, String>);

impl ColumnMap {
    /// Parse `logical=CSV header` mappings (as given to `--col`).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<ColumnMap, LawError> {
        let mut map = BTreeMap::new();
        for spec in specs {
            let spec = spec.as_ref();
            let Some((key, value)) = spec.split_once('=') else {
                return Err(LawError::ColumnSpec {
                    spec: spec.to_string(),
                    message: "expected `logical=CSV column`, e.g. params=\"Model Size\"".into(),
                });
            };
            let key = key.trim();
            if key != LOSS && Input::from_name(key).is_none() {
                return Err(LawError::ColumnSpec {
                    spec: spec.to_string(),
                    message: format!(
                        "unknown logical column `{key}`; expected one of loss, {}",
                        Input::ALL.map(|i| i.name()).join(", ")
                    ),
                });
            }
            if value.is_empty() {
                return Err(LawError::ColumnSpec {
                    spec: spec.to_string(),
                    message: "empty CSV column name".into(),
                });
            }
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(LawError::ColumnSpec {
                    spec: spec.to_string(),
                    message: format!("`{key}` mapped twice"),
                });
            }
        }
        Ok(ColumnMap(map))
    }

    /// The CSV header for a logical column.
    pub fn header<'a>(&'a self, logical: &'a str) -> &'a str {
        self.0.get(logical).map(String::as_str).unwrap_or(logical)
    }

    fn is_explicit(&self, logical: &str) -> bool {
        self.0.contains_key(logical)
    }
}

/// What to do with rows whose value is missing or not finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Fail, listing the rows.
    #[default]
    Error,
    /// Leave the rows out and list them in [`LawData::skipped`].
    Skip,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct CsvSpec {
    pub columns: ColumnMap,
    /// Inputs that must be present.
    pub required: Vec<Input>,
    /// Inputs read when their column exists (an explicitly mapped column must exist).
    pub optional: Vec<Input>,
    /// Read the `loss` column (false for `law predict --data`).
    pub loss: bool,
    /// CSV columns whose values (as text) make up each row's group key, for cross-validation.
    pub group_by: Vec<String>,
    pub non_finite: NonFinite,
}

/// One row.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRow {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub inputs: LawInputs,
    /// Observed loss (NaN when not read).
    pub loss: f64,
    /// Group key: the `group_by` values joined with `/` (empty without `group_by`).
    pub group: String,
}

/// A row left out under [`NonFinite::Skip`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRow {
    pub line: u64,
    pub column: String,
    pub value: String,
}

/// Rows read from one CSV file.
#[derive(Debug, Clone)]
pub struct LawData {
    pub path: String,
    /// FNV-1a 64 of the file's bytes, `fnv1a64:<16 hex>` (identifies the data; not a
    /// cryptographic hash).
    pub hash: String,
    pub rows: Vec<DataRow>,
    pub skipped: Vec<SkippedRow>,
    /// Logical column -> CSV header, for the columns actually read.
    pub columns: BTreeMap<String, String>,
    /// Inputs read (required + optional found).
    pub inputs: Vec<Input>,
}

impl LawData {
    /// (inputs, loss) pairs, the fitter's input.
    pub fn pairs(&self) -> Vec<(LawInputs, f64)> {
        self.rows.iter().map(|r| (r.inputs, r.loss)).collect()
    }

    /// Keep only the lowest-loss row of each group (e.g. the best hyperparameters of each model
    /// shape), groups in order of first appearance, the earlier row on ties.
    pub fn best_per_group(&self) -> LawData {
        let mut best: Vec<DataRow> = Vec::new();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &self.rows {
            match index.get(r.group.as_str()) {
                Some(&i) => {
                    if r.loss < best[i].loss {
                        best[i] = r.clone();
                    }
                }
                None => {
                    index.insert(&r.group, best.len());
                    best.push(r.clone());
                }
            }
        }
        LawData {
            rows: best,
            ..self.clone()
        }
    }
}

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

enum Cell {
    Value(f64),
    Missing,
}

fn parse_cell(text: &str) -> Option<Cell> {
    let t = text.trim();
    if t.is_empty() {
        return Some(Cell::Missing);
    }
    let v: f64 = t.parse().ok()?;
    Some(if v.is_finite() {
        Cell::Value(v)
    } else {
        Cell::Missing
    })
}

/// Read `path` as described by `spec`.
pub fn load_csv(path: &Path, spec: &CsvSpec) -> Result<LawData, LawError> {
    let shown = path.display().to_string();
    let bytes = crate::input::read_bytes(path, "data CSV", crate::limits::MAX_DATA_BYTES)
        .map_err(|e| LawError::File(e.to_string()))?;
    parse_csv(&shown, &bytes, spec)
}

/// Parse CSV `bytes` (named `path` in errors) as described by `spec`.
pub fn parse_csv(path: &str, bytes: &[u8], spec: &CsvSpec) -> Result<LawData, LawError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        LawError::Csv {
            path: path.to_string(),
            line,
            message: e.to_string(),
        }
    };
    let headers = reader.headers().map_err(csv_err)?.clone();
    let find = |name: &str| headers.iter().position(|h| h.trim() == name);
    let available = || {
        headers
            .iter()
            .map(|h| format!("`{h}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };

    // (logical, header, index)
    let mut wanted: Vec<(String, String, usize)> = Vec::new();
    let mut inputs = Vec::new();
    let mut logicals: Vec<(&str, bool)> = spec.required.iter().map(|i| (i.name(), true)).collect();
    logicals.extend(spec.optional.iter().map(|i| (i.name(), false)));
    if spec.loss {
        logicals.push((LOSS, true));
    }
    for (logical, required) in logicals {
        let header = spec.columns.header(logical);
        match find(header) {
            Some(idx) => {
                wanted.push((logical.to_string(), header.to_string(), idx));
                if let Some(i) = Input::from_name(logical) {
                    inputs.push(i);
                }
            }
            None if required || spec.columns.is_explicit(logical) => {
                return Err(LawError::MissingColumn {
                    path: path.to_string(),
                    column: header.to_string(),
                    logical: logical.to_string(),
                    available: available(),
                });
            }
            None => {}
        }
    }
    let mut group_idx = Vec::new();
    for g in &spec.group_by {
        match find(g) {
            Some(i) => group_idx.push(i),
            None => {
                return Err(LawError::MissingColumn {
                    path: path.to_string(),
                    column: g.clone(),
                    logical: "group".into(),
                    available: available(),
                });
            }
        }
    }

    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(csv_err)? {
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let mut inputs_row = LawInputs {
            params: f64::NAN,
            tokens: f64::NAN,
            width: f64::NAN,
            depth: f64::NAN,
            ffn_ratio: f64::NAN,
        };
        let mut loss = f64::NAN;
        let mut missing: Option<SkippedRow> = None;
        for (logical, header, idx) in &wanted {
            let text = record.get(*idx).unwrap_or("");
            let value = match parse_cell(text) {
                None => {
                    return Err(LawError::BadValue {
                        path: path.to_string(),
                        line,
                        column: header.clone(),
                        value: text.to_string(),
                        expected: "a number".into(),
                    });
                }
                Some(Cell::Missing) => {
                    if missing.is_none() {
                        missing = Some(SkippedRow {
                            line,
                            column: header.clone(),
                            value: text.to_string(),
                        });
                    }
                    continue;
                }
                Some(Cell::Value(v)) => v,
            };
            if value <= 0.0 {
                return Err(LawError::BadValue {
                    path: path.to_string(),
                    line,
                    column: header.clone(),
                    value: text.to_string(),
                    expected: "a positive number (laws take logarithms)".into(),
                });
            }
            if logical == LOSS {
                loss = value;
            } else if let Some(i) = Input::from_name(logical) {
                i.set(&mut inputs_row, value);
            }
        }
        if let Some(m) = missing {
            skipped.push(m);
            continue;
        }
        let group = group_idx
            .iter()
            .map(|i| record.get(*i).unwrap_or("").trim())
            .collect::<Vec<_>>()
            .join("/");
        rows.push(DataRow {
            line,
            inputs: inputs_row,
            loss,
            group,
        });
    }
    if !skipped.is_empty() && spec.non_finite == NonFinite::Error {
        return Err(LawError::NonFinite {
            path: path.to_string(),
            rows: skipped,
        });
    }
    if rows.is_empty() {
        return Err(LawError::Empty {
            path: path.to_string(),
            skipped: skipped.len(),
        });
    }
    let columns = wanted.into_iter().map(|(l, h, _)| (l, h)).collect();
    Ok(LawData {
        path: path.to_string(),
        hash: format!("fnv1a64:{:016x}", fnv1a64(bytes)),
        rows,
        skipped,
        columns,
        inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CsvSpec {
        CsvSpec {
            required: vec![Input::Params, Input::Tokens],
            loss: true,
            ..Default::default()
        }
    }

    #[test]
    fn reads_mapped_columns() {
        let csv = b"Model Size,tokens,loss\n1e8,2e9,3.1\n2e8,4e9,2.9\n";
        let mut s = spec();
        s.columns = ColumnMap::parse(&["params=Model Size"]).unwrap();
        let d = parse_csv("x.csv", csv, &s).unwrap();
        assert_eq!(d.rows.len(), 2);
        assert_eq!(d.rows[1].line, 3);
        assert_eq!(d.rows[1].inputs.params, 2e8);
        assert_eq!(d.columns["params"], "Model Size");
    }

    #[test]
    fn errors_name_file_line_column_and_expectation() {
        let csv = b"params,tokens,loss\n1e8,2e9,3.1\n2e8,lots,2.9\n";
        let e = parse_csv("runs.csv", csv, &spec()).unwrap_err().to_string();
        assert!(
            e.contains("runs.csv") && e.contains("line 3") && e.contains("`tokens`"),
            "{e}"
        );
        assert!(e.contains("expected a number") && e.contains("lots"), "{e}");

        let csv = b"params,tokens,loss\n-1e8,2e9,3.1\n";
        let e = parse_csv("runs.csv", csv, &spec()).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("positive"), "{e}");

        let csv = b"params,toks,loss\n1e8,2e9,3.1\n";
        let e = parse_csv("runs.csv", csv, &spec()).unwrap_err().to_string();
        assert!(e.contains("`tokens`") && e.contains("`toks`"), "{e}");

        let csv = b"params,tokens,loss\n1e8,2e9\n";
        let e = parse_csv("runs.csv", csv, &spec()).unwrap_err().to_string();
        assert!(e.contains("runs.csv") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn non_finite_rows_are_reported_or_listed() {
        let csv = b"params,tokens,loss\n1e8,2e9,3.1\n2e8,4e9,nan\n3e8,,2.5\n";
        let e = parse_csv("r.csv", csv, &spec()).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("line 4") && e.contains("`loss`"),
            "{e}"
        );
        let mut s = spec();
        s.non_finite = NonFinite::Skip;
        let d = parse_csv("r.csv", csv, &s).unwrap();
        assert_eq!(d.rows.len(), 1);
        assert_eq!(d.skipped.iter().map(|r| r.line).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn column_specs_are_checked() {
        assert!(
            ColumnMap::parse(&["parms=x"])
                .unwrap_err()
                .to_string()
                .contains("unknown logical column")
        );
        assert!(ColumnMap::parse(&["params"]).is_err());
        assert!(ColumnMap::parse(&["params=a", "params=b"]).is_err());
    }
}
