//! Cost-regression snapshots: record what a set of cases costs, and check later runs
//! against that record.
//!
//! * [`Cases`] (`cases.rs`): the cases file, a YAML description of named cases and of
//!   matrices (models x substrates x workloads x engines) expanded into named cases, with
//!   per-metric tolerances. Read through [`crate::yaml`]; every problem is located
//!   (file, line, column). Models and substrates are resolved and loaded here, so a case that
//!   names an unknown model is an error at the name.
//! * [`record`] (`record.rs`): every case through the cost engine, exactly as `llmforge sim`
//!   costs it ([`crate::sim::run`] on the model at the case's precision), into a
//!   [`Snapshot`]: rounded metrics per case plus provenance (llmforge version, engine,
//!   resolved precision, the content hash of every input).
//! * [`Snapshot::read`] (`file.rs`): a recorded snapshot file back into a [`Snapshot`]
//!   (located errors, like every other description). Writing one is an output format, so it
//!   lives in [`crate::trace::snapshot`].
//! * [`compare`] (`compare.rs`): a baseline against a new record under the cases'
//!   tolerances: what moved, by how much, whether it is outside its tolerance; new and
//!   removed cases; changed inputs.
//!
//! The format of both files is documented in `dsl/SNAPSHOTS.md`.

mod cases;
mod compare;
mod file;
mod metrics;
mod record;

pub use cases::{Case, Cases, DEFAULT_DIGITS, DEFAULT_TOP_OPS, MAX_CASES, Tolerance, Tolerances};
pub use compare::{Cell, InputChange, Report, Row, compare};
pub use metrics::{METRICS, Metric, TOP_OP_SHARE, round_to};
pub use record::{FORMAT, Inputs, PrecisionNames, Record, Snapshot, TopOp, TopOps, record, record_case};

use crate::yaml::DescErrors;
use thiserror::Error;

/// Errors of this module: a cases file or a baseline snapshot that does not load.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum SnapshotError {
    /// Occurs when the cases file cannot be read, does not parse, or names something that
    /// does not exist (every problem, each located).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cases(DescErrors),
    /// Occurs when a snapshot file cannot be read or is not a snapshot of a known format.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Snapshot(DescErrors),
}
