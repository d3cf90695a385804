//! Parametric scaling laws fitted to data: the loss prior of the search and the sweep.
//!
//! Forms ([`forms`]): Chinchilla L = E + A/N^alpha + B/D^beta; the Gemstones log-sum-exp law
//! L = exp(e) + sum_i exp(c_i) x_i^(-e_i) over (width, depth, N, D) and its (N, D)-only
//! variant; the conditional architecture law of arXiv 2510.18245,
//! L = (a0 + a1 ln(d/sqrt N) + a2 sqrt(N)/d)(b0 + b1 ln r + b2/r) L_opt(N, D).
//!
//! Fitting ([`fit`]): Huber loss on ln L (delta 1e-4 by default), summed over rows (the
//! published convention), minimised by L-BFGS ([`lbfgs`]) with analytic gradients from a grid
//! of starts, in parallel with rayon and deterministic. Data ([`data`]): CSV with mappable
//! columns. Cross-validation by held-out group ([`cv`]). A fitted law is saved as JSON
//! ([`FittedLaw`]) and predicts with [`FittedLaw::predict_loss`], allocation-free.
//!
//! ```
//! use llmforge::quality::law::{Chinchilla, FittedLaw, Law, LawInputs};
//! let law = FittedLaw::given(Law::Chinchilla(Chinchilla::HOFFMANN_2022));
//! let x = LawInputs { params: 70e9, tokens: 1.4e12, ..Default::default() };
//! let loss = law.predict_loss(&x);
//! assert!((loss - 1.937).abs() < 1e-3); // Chinchilla 70B at 1.4T tokens
//! ```

pub mod cv;
pub mod data;
pub mod file;
pub mod fit;
pub mod forms;
pub mod lbfgs;
mod model;

pub use cv::{CvFold, CvReport, leave_group_out};
pub use data::{ColumnMap, CsvSpec, DataRow, LawData, NonFinite, SkippedRow, load_csv, parse_csv};
pub use file::FittedLaw;
pub use fit::{FitOptions, FitOutcome, FitSpec, Grid, ObjectiveValue, fit, huber, huber_objective_sum};
pub use forms::{Chinchilla, Conditional, Gemstones, GemstonesNd, Input, Law, LawForm, LawInputs, Term};

/// Errors of the scaling-law module.
#[derive(Debug, thiserror::Error)]
pub enum LawError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: malformed CSV: {message}")]
    Csv {
        path: String,
        line: u64,
        message: String,
    },
    #[error("{path}: no column `{column}` (for `{logical}`); the header has {available}")]
    MissingColumn {
        path: String,
        column: String,
        logical: String,
        available: String,
    },
    #[error("{path}: line {line}: column `{column}`: found `{value}`, expected {expected}")]
    BadValue {
        path: String,
        line: u64,
        column: String,
        value: String,
        expected: String,
    },
    #[error("{path}: {} row(s) with a missing or non-finite value ({}); pass --skip-non-finite to leave them out", rows.len(), describe_skipped(rows))]
    NonFinite { path: String, rows: Vec<SkippedRow> },
    #[error("{path}: no usable data rows ({skipped} left out for non-finite values)")]
    Empty { path: String, skipped: usize },
    #[error("bad column mapping `{spec}`: {message}")]
    ColumnSpec { spec: String, message: String },
    #[error("{}: bad law file: {message}", at_line(path, *line, *column))]
    LawFile {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("input `{input}` = {value}, expected a finite positive number")]
    Input { input: &'static str, value: f64 },
    #[error("fit: {0}")]
    Fit(String),
    /// The file cannot be read (see [`crate::input`]); the message names it.
    #[error("{0}")]
    File(String),
}

/// `path:line:column`, or `path` when the line is unknown (0).
fn at_line(path: &str, line: usize, column: usize) -> String {
    if line == 0 {
        path.to_string()
    } else {
        format!("{path}:{line}:{column}")
    }
}

fn describe_skipped(rows: &[SkippedRow]) -> String {
    let mut parts: Vec<String> = rows
        .iter()
        .take(5)
        .map(|r| format!("line {} column `{}` = `{}`", r.line, r.column, r.value))
        .collect();
    if rows.len() > 5 {
        parts.push(format!("and {} more", rows.len() - 5));
    }
    parts.join("; ")
}
