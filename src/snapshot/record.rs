//! Recording: every case through the cost engine into a [`Snapshot`].

use super::cases::{Case, Cases};
use super::metrics::{METRICS, round_to};
use crate::model::Precisions;
use crate::sim::{self, Bound, OpRecord, PhaseKind, RunResult};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// The snapshot file format version this llmforge writes and reads.
pub const FORMAT: u32 = 1;

/// A recorded set of cases: what each cost, and what produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The file format ([`FORMAT`]).
    pub format: u32,
    /// The llmforge version that recorded it ([`crate::provenance::VERSION`]).
    pub version: String,
    pub inputs: Inputs,
    /// By case name (sorted).
    pub cases: BTreeMap<String, Record>,
}

/// Content hashes (`sha256:<hex>`, [`crate::provenance`]) of every input: the cases file and
/// each model and substrate, by the name the cases file gives it. Shipped presets and
/// substrates are hashed from the text embedded in llmforge.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    pub cases: String,
    pub models: BTreeMap<String, String>,
    pub substrates: BTreeMap<String, String>,
}

/// The precision a case ran at, by format name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecisionNames {
    pub weights: String,
    pub activations: String,
    pub kv_cache: String,
}

impl From<Precisions> for PrecisionNames {
    fn from(p: Precisions) -> PrecisionNames {
        PrecisionNames {
            weights: p.weights.to_string(),
            activations: p.activations.to_string(),
            kv_cache: p.kv_cache.to_string(),
        }
    }
}

impl std::fmt::Display for PrecisionNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "weights {}, activations {}, KV cache {}",
            self.weights, self.activations, self.kv_cache
        )
    }
}

/// One op name's part of a phase: its share of the phase's op time (summed over layers and,
/// in decode, over the steps) and the bound that holds most of that time.
#[derive(Clone, Debug, PartialEq)]
pub struct TopOp {
    /// The op's name without its layer (`ffn_down`, `attn_scores`, `lm_head`).
    pub op: String,
    /// `compute`, `memory` or `overhead`.
    pub bound: String,
    pub share: f64,
}

/// The slowest op names of each phase, slowest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopOps {
    pub prefill: Vec<TopOp>,
    pub decode: Vec<TopOp>,
}

/// One case as recorded: its definition, the resolved precision, and its costs (rounded).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The model and substrate as the cases file names them (keys of [`Inputs`]).
    pub model: String,
    pub substrate: String,
    /// Substrate overrides, by field path.
    pub set: BTreeMap<String, String>,
    /// `sim` or `roofline`.
    pub engine: String,
    pub prompt: u64,
    pub generate: u64,
    pub batch: u64,
    pub precision: PrecisionNames,
    /// By [`METRICS`] name, rounded to the cases file's significant digits.
    pub metrics: BTreeMap<String, f64>,
    pub fits_memory: bool,
    pub top_ops: TopOps,
}

/// Records every case (in parallel; the result does not depend on the number of threads).
pub fn record(cases: &Cases) -> Snapshot {
    let records: Vec<Record> = cases
        .cases
        .par_iter()
        .map(|c| record_case(c, cases.digits, cases.top_ops))
        .collect();
    Snapshot {
        format: FORMAT,
        version: crate::provenance::VERSION.to_string(),
        inputs: cases.inputs.clone(),
        cases: cases.cases.iter().map(|c| c.name.clone()).zip(records).collect(),
    }
}

/// One case: the model at its precision on the substrate, through [`sim::run`] (the code
/// path of `llmforge sim`), summarised and rounded to `digits` significant digits.
pub fn record_case(case: &Case, digits: u32, top: usize) -> Record {
    let run = sim::run(&case.model, &case.substrate, case.workload, case.engine);
    let s = &run.summary;
    Record {
        model: case.model_spec.clone(),
        substrate: case.substrate_spec.clone(),
        set: case
            .set
            .iter()
            .map(|o| (o.path.clone(), o.expr.clone()))
            .collect(),
        engine: case.engine.name().to_string(),
        prompt: case.workload.prompt,
        generate: case.workload.generate,
        batch: case.workload.batch,
        precision: case.model.precision.into(),
        metrics: METRICS
            .iter()
            .map(|m| (m.name.to_string(), round_to((m.get)(s), digits)))
            .collect(),
        fits_memory: s.fits_memory,
        top_ops: TopOps {
            prefill: top_ops(&run, PhaseKind::Prefill, top, digits),
            decode: top_ops(&run, PhaseKind::Decode, top, digits),
        },
    }
}

/// The `top` op names of `phase` by time summed over their records.
fn top_ops(run: &RunResult, phase: PhaseKind, top: usize, digits: u32) -> Vec<TopOp> {
    // time by op name, split by bound (compute, memory, overhead)
    let mut by_name: BTreeMap<&str, [f64; 3]> = BTreeMap::new();
    let mut total = 0.0;
    for r in run.ops.iter().filter(|r: &&OpRecord| r.phase == phase) {
        let t = r.time.get();
        let slot = match r.bound {
            Bound::Compute => 0,
            Bound::Memory => 1,
            Bound::Overhead => 2,
        };
        by_name.entry(r.name).or_default()[slot] += t;
        total += t;
    }
    let mut ops: Vec<(&str, f64, Bound)> = by_name
        .into_iter()
        .map(|(name, t)| {
            // ties go to compute, then memory (as Bound::classify)
            let bound = if t[2] > t[0] && t[2] > t[1] {
                Bound::Overhead
            } else if t[1] > t[0] {
                Bound::Memory
            } else {
                Bound::Compute
            };
            (name, t[0] + t[1] + t[2], bound)
        })
        .collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    ops.into_iter()
        .take(top)
        .map(|(name, t, bound)| TopOp {
            op: name.to_string(),
            bound: bound.name().to_string(),
            share: if total > 0.0 {
                round_to(t / total, digits)
            } else {
                0.0
            },
        })
        .collect()
}
