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
pub mod ring_adapter;
pub mod system;
pub mod systolic;
pub mod systolic_map;

use crate::model::Model;
use crate::substrate::Substrate;
pub use engine::cached::{CacheStats, LayerCache};
pub use result::{
    Bound, DeviceEvent, Energy, Events, KindTotal, OpEvent, OpRecord, OpShare, PhaseKind, PhaseSummary,
    Place, Resource, RunResult, RunSummary, Sink, Topology,
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
    /// A workload past a documented limit ([`crate::limits`]); `field` is `prompt`,
    /// `generate`, `batch`, `context` (prompt + generate) or `in_flight` (batch x context).
    #[error("{message} (see {})", crate::limits::DOC)]
    Limit { field: &'static str, message: String },
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
    /// A workload of `prompt >= 1` tokens, `gen >= 1` generated tokens, `batch >= 1`, within
    /// the limits: prompt + gen <= [`limits::MAX_CONTEXT`], batch <= [`limits::MAX_BATCH`],
    /// batch x (prompt + gen) <= [`limits::MAX_TOKENS_IN_FLIGHT`] (all sums and products
    /// checked).
    pub fn new(prompt: u64, generate: u64, batch: u64) -> Result<Workload, SimError> {
        use crate::limits;
        for (field, v) in [("prompt", prompt), ("generate", generate), ("batch", batch)] {
            if v == 0 {
                return Err(SimError::Zero { field });
            }
        }
        let limit = |field, message| Err(SimError::Limit { field, message });
        for (field, what, v) in [
            ("prompt", "the prompt", prompt),
            ("generate", "gen (generated tokens)", generate),
        ] {
            if let Some(m) = limits::above(what, v, limits::MAX_CONTEXT) {
                return limit(field, m);
            }
        }
        if let Some(m) = limits::above("batch", batch, limits::MAX_BATCH) {
            return limit("batch", m);
        }
        let context = prompt + generate; // both below 2^24
        if let Some(m) = limits::above("the context (prompt + gen)", context, limits::MAX_CONTEXT) {
            return limit("context", m);
        }
        if let Some(m) = limits::above(
            "the tokens in flight (batch x (prompt + gen))",
            batch * context, // below 2^16 x 2^25
            limits::MAX_TOKENS_IN_FLIGHT,
        ) {
            return limit("in_flight", m);
        }
        Ok(Workload {
            prompt,
            generate,
            batch,
        })
    }
}

/// Which decode steps a trace records: all of them when there are at most `keep`, else `keep`
/// steps spread evenly from the first to the last (both included): step
/// `1 + round(i (D - 1) / (keep - 1))` for `i` in `0..keep`. With `keep` 1 only the first
/// step, with 0 none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepSample {
    pub steps: u64,
    pub keep: u64,
}

impl StepSample {
    pub fn new(steps: u64, keep: Option<u64>) -> StepSample {
        StepSample {
            steps,
            keep: keep.map_or(steps, |k| k.min(steps)),
        }
    }

    /// The `i`-th recorded step (1-based steps; `i < keep`).
    fn nth(&self, i: u64) -> u64 {
        if self.keep >= self.steps {
            return i + 1;
        }
        if self.keep <= 1 {
            return 1;
        }
        let (d, k) = (u128::from(self.steps - 1), u128::from(self.keep - 1));
        let i = u128::from(i);
        // round(i d / k) in integers
        1 + ((2 * i * d + k) / (2 * k)) as u64
    }

    /// The recorded steps, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.keep).map(|i| self.nth(i))
    }

    /// Whether `step` is recorded.
    pub fn contains(&self, step: u64) -> bool {
        if step == 0 || step > self.steps || self.keep == 0 {
            return false;
        }
        if self.keep >= self.steps {
            return true;
        }
        if self.keep == 1 {
            return step == 1;
        }
        // the index whose step is nearest, then compare
        let (d, k) = (u128::from(self.steps - 1), u128::from(self.keep - 1));
        let i = ((u128::from(step - 1) * k + d / 2) / d) as u64;
        (i.saturating_sub(1)..=(i + 1).min(self.keep - 1)).any(|j| self.nth(j) == step)
    }
}

/// Which cost engine./// Which cost engine.
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
            shares: None,
            sink: None,
            runs: engine::RUNS,
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
            shares: None,
            sink: None,
            runs: engine::RUNS,
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
            shares: None,
            sink: Some(sink),
            runs: engine::RUNS,
        },
    )
}

/// The slow exact path: the whole graph lowered afresh at every context, every kernel priced
/// and scheduled. For tests of the fast path.
pub fn reference(model: &Model, substrate: &Substrate, workload: Workload, engine: Engine) -> RunSummary {
    engine::reference(model, substrate, workload, engine)
}
