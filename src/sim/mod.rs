//! Cost engines: map a graph onto a substrate and produce time and energy per operator,
//! per phase and per run.
//!
//! * [`run`] / [`summary`]: prefill of `P` tokens, then `D` decode steps at contexts
//!   `P + 1 ..= P + D`, for `batch` sequences, under the roofline bound ([`Engine::Roofline`])
//!   or the cycle-approximate schedule ([`Engine::Sim`]). See `engine.rs` for the schedule
//!   and the fast decode path, `cost.rs` for the kernels and the DRAM-traffic assumption,
//!   `gpu.rs` and `systolic_map.rs` for the two substrate models.
//! * [`run_with_sink`] also reports every scheduled interval to a [`Sink`] (trace writers).
//! * [`reference`]: the slow exact path (whole graph lowered at every context).
//!
//! Architecture invariant: no I/O here, and nothing here fails on validated input: a
//! [`Workload`] is validated when built, models and substrates when loaded.

pub mod cost;
pub mod engine;
pub mod gpu;
pub mod program;
pub mod result;
pub mod ring;
pub mod systolic;
pub mod systolic_map;

use crate::model::Model;
use crate::substrate::Substrate;
pub use result::{
    Bound, Energy, Events, KindTotal, OpEvent, OpRecord, PhaseKind, PhaseSummary, Resource, RunResult,
    RunSummary, Sink,
};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Errors of this module: only workload validation can fail.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SimError {
    #[error("{field} must be at least 1, got 0")]
    Zero { field: &'static str },
    #[error("unknown engine `{0}`: expected sim or roofline")]
    UnknownEngine(String),
}

/// Prompt length, generated tokens and batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub prompt: u64,
    pub generate: u64,
    pub batch: u64,
}

impl Workload {
    /// A workload of `prompt >= 1` tokens, `gen >= 1` generated tokens, `batch >= 1`.
    pub fn new(prompt: u64, generate: u64, batch: u64) -> Result<Workload, SimError> {
        for (field, v) in [("prompt", prompt), ("generate", generate), ("batch", batch)] {
            if v == 0 {
                return Err(SimError::Zero { field });
            }
        }
        Ok(Workload {
            prompt,
            generate,
            batch,
        })
    }
}

/// Which cost engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Cycle-approximate: kernels mapped onto units and DRAM channels and scheduled.
    Sim,
    /// Per-kernel roofline bound.
    Roofline,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sim => "sim",
            Engine::Roofline => "roofline",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Engine, SimError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sim" => Ok(Engine::Sim),
            "roofline" => Ok(Engine::Roofline),
            _ => Err(SimError::UnknownEngine(s.to_string())),
        }
    }
}

/// The run's summary only: the fast path (no per-op records, no events).
pub fn summary(model: &Model, substrate: &Substrate, workload: Workload, engine: Engine) -> RunSummary {
    engine::run(
        model,
        substrate,
        workload,
        engine,
        engine::Want {
            records: false,
            sink: None,
        },
    )
    .summary
}

/// Summary and per-op records.
pub fn run(model: &Model, substrate: &Substrate, workload: Workload, engine: Engine) -> RunResult {
    engine::run(
        model,
        substrate,
        workload,
        engine,
        engine::Want {
            records: true,
            sink: None,
        },
    )
}

/// As [`run`], reporting every scheduled interval of every pass to `sink` (slower: no block
/// is skipped).
pub fn run_with_sink(
    model: &Model,
    substrate: &Substrate,
    workload: Workload,
    engine: Engine,
    sink: &mut dyn Sink,
) -> RunResult {
    engine::run(
        model,
        substrate,
        workload,
        engine,
        engine::Want {
            records: true,
            sink: Some(sink),
        },
    )
}

/// The slow exact path: the whole graph lowered afresh at every context, every kernel priced
/// and scheduled. For tests of the fast path.
pub fn reference(model: &Model, substrate: &Substrate, workload: Workload, engine: Engine) -> RunSummary {
    engine::reference(model, substrate, workload, engine)
}
