//! Streaming evaluation of a grid: chunks of indices are evaluated in parallel (rayon), then
//! folded in index order into the outputs — the candidate rows, the online frontier, the
//! feasible region and the per-budget best designs — so memory stays bounded by the chunk
//! size whatever the grid's size, and the result is the same for any thread count.

use super::budget::{Budget, Metric, Metrics};
use super::frontier::{FrontPoint, Frontier};
use super::grid::{Grid, Point};
use crate::model::{Model, accounting};
use crate::quality::{LossModel, LossPrediction, LossTally};
use crate::sim::{self, Engine, Workload};
use crate::substrate::Substrate;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a sweep needs.
pub struct SweepSpec<'a> {
    pub grid: &'a Grid,
    pub substrate: &'a Substrate,
    pub workload: Workload,
    pub engine: Engine,
    /// Also cost every candidate with the simulator (the roofline is always computed).
    pub both_engines: bool,
    pub loss: &'a dyn LossModel,
    pub budgets: &'a [Budget],
    /// The frontier's latency axis.
    pub x: Metric,
    /// The two grid axes of the feasible-region map.
    pub region: (Axis, Axis),
}

/// A grid dimension, for the region map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    Depth,
    Width,
    KvHeads,
    FfnRatio,
    Experts,
    ActiveExperts,
    Weights,
}

impl Axis {
    pub const ALL: [(Axis, &'static str); 7] = [
        (Axis::Depth, "depth"),
        (Axis::Width, "width"),
        (Axis::KvHeads, "kv_heads"),
        (Axis::FfnRatio, "ffn_ratio"),
        (Axis::Experts, "experts"),
        (Axis::ActiveExperts, "active_experts"),
        (Axis::Weights, "weights"),
    ];
    pub fn parse(s: &str) -> Option<Axis> {
        Axis::ALL.iter().find(|(_, n)| *n == s).map(|(a, _)| *a)
    }
    pub fn name(self) -> &'static str {
        Axis::ALL.iter().find(|(a, _)| *a == self).map_or("?", |(_, n)| n)
    }
    /// The point's value on this axis, as a sortable label.
    pub fn value(self, p: &Point) -> String {
        match self {
            Axis::Depth => format!("{:05}", p.depth),
            Axis::Width => format!("{:05}", p.width),
            Axis::KvHeads => format!("{:03}", p.kv_heads),
            Axis::FfnRatio => format!("{:07.3}", p.ffn_ratio),
            Axis::Experts => format!("{:03}", p.experts),
            Axis::ActiveExperts => format!("{:03}", p.active_experts),
            Axis::Weights => p.weights.to_string(),
        }
    }
}

/// One evaluated candidate.
#[derive(Clone, Debug)]
pub struct Row {
    pub point: Point,
    pub metrics: Metrics,
    /// Simulator TPOT when both engines are asked for.
    pub sim_tpot: Option<f64>,
    pub active_params: u64,
    /// The loss model's prediction (`metrics.loss` is its `mu`): which model scored the
    /// candidate, and where it leaves the surrogate's training domain.
    pub loss: LossPrediction,
    /// Weights plus the KV cache at the workload fit the substrate's memory capacity (as the
    /// simulator's `fits_memory` states it).
    pub fits_memory: bool,
    /// Fits the memory and meets every budget.
    pub feasible: bool,
    /// The budget with the least slack (the binding one), when there are budgets.
    pub binding: Option<usize>,
}

/// The region map: per (axis 1 value, axis 2 value), counts and the best feasible loss.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub candidates: u64,
    pub feasible: u64,
    pub best_loss: Option<f64>,
}

/// Best design for one budget (or for all together).
#[derive(Clone, Debug)]
pub struct Best {
    pub row: Row,
}

/// Everything a sweep produces besides the candidate rows.
#[derive(Default)]
pub struct Outcome {
    pub evaluated: u64,
    pub skipped: u64,
    pub feasible: u64,
    pub frontier: Frontier,
    /// Rows of the frontier's points, by point index.
    pub frontier_rows: BTreeMap<u64, Row>,
    pub region: BTreeMap<(String, String), Cell>,
    /// Best (lowest loss) design meeting each budget alone, by budget index.
    pub best_per_budget: Vec<Option<Best>>,
    /// Best design meeting every budget.
    pub best_overall: Option<Best>,
    /// Candidates per loss model, and those outside the surrogate's training domain.
    pub losses: LossTally,
    /// A deterministic sample of evaluated points (x, loss, feasible) for plots.
    pub sample: Vec<(f64, f64, bool)>,
    pub interrupted: bool,
}

/// What one model measures on the substrate.
#[derive(Clone, Debug)]
pub struct Measure {
    pub metrics: Metrics,
    /// Simulator TPOT when both engines are asked for.
    pub sim_tpot: Option<f64>,
    pub active_params: u64,
    /// The loss model's prediction (`metrics.loss` is its `mu`).
    pub loss: LossPrediction,
    pub fits_memory: bool,
}

/// Metrics of one model on the substrate, the simulator's TPOT when both engines are asked
/// for, the active parameters, the loss model's prediction and whether it fits the memory.
pub fn measure(model: &Model, spec: &SweepSpec) -> Measure {
    let s = sim::summary(model, spec.substrate, spec.workload, spec.engine);
    let loss = spec.loss.predict(model);
    let p = accounting::params(model);
    let w = spec.workload;
    let metrics = Metrics {
        ttft: s.ttft_s,
        tpot: s.tpot_s,
        latency: s.ttft_s + s.tpot_s * w.generate as f64,
        weights: accounting::weight_bytes(model).get(),
        kv: accounting::kv_bytes_per_token(model).get() * ((w.prompt + w.generate) * w.batch) as f64,
        energy: s.energy_per_token_j,
        loss: loss.mu,
        params: p.total as f64,
    };
    let sim_tpot = (spec.both_engines && spec.engine != Engine::Sim)
        .then(|| sim::summary(model, spec.substrate, w, Engine::Sim).tpot_s);
    Measure {
        metrics,
        sim_tpot,
        active_params: p.active,
        loss,
        fits_memory: s.fits_memory,
    }
}

/// One grid point evaluated: `None` for a point that is not a valid candidate (heads that do
/// not divide, more active experts than experts, past the parameter limit). Deterministic, and
/// independent of any other point (so shards and merges can evaluate points again).
pub fn evaluate(spec: &SweepSpec, index: u64) -> Option<Row> {
    let point = spec.grid.point(index)?;
    let model = spec.grid.model(&point);
    // A point past the parameter limit is skipped as invalid, like a point whose heads do not
    // divide.
    if model.size_error().is_some() {
        return None;
    }
    let Measure {
        metrics,
        sim_tpot,
        active_params,
        loss,
        fits_memory,
    } = measure(&model, spec);
    let feasible = fits_memory && spec.budgets.iter().all(|b| b.violation(&metrics) == 0.0);
    let binding = (0..spec.budgets.len()).min_by(|&a, &b| {
        spec.budgets[a]
            .slack(&metrics)
            .total_cmp(&spec.budgets[b].slack(&metrics))
    });
    Some(Row {
        point,
        metrics,
        sim_tpot,
        active_params,
        loss,
        fits_memory,
        feasible,
        binding,
    })
}

/// Runs the sweep over `range`, handing each chunk's rows (in index order) to `emit`.
pub fn sweep(
    spec: &SweepSpec,
    range: std::ops::Range<u64>,
    chunk: u64,
    stop: &AtomicBool,
    mut emit: impl FnMut(&[Row], &Outcome),
) -> Outcome {
    let mut out = Outcome {
        best_per_budget: vec![None; spec.budgets.len()],
        ..Outcome::default()
    };
    // The plot sample is taken by grid index over the whole grid, not the range, so shards'
    // samples put together are the sample of one run over the grid.
    let sample_every = (spec.grid.len() / 4000).max(1);
    let mut start = range.start;
    while start < range.end {
        if stop.load(Ordering::Relaxed) {
            out.interrupted = true;
            break;
        }
        let end = (start + chunk).min(range.end);
        let rows: Vec<Row> = (start..end)
            .into_par_iter()
            .filter_map(|i| evaluate(spec, i))
            .collect();
        out.skipped += (end - start) - rows.len() as u64;
        for row in &rows {
            fold(&mut out, spec, row, sample_every);
        }
        emit(&rows, &out);
        start = end;
    }
    out
}

fn better(best: &Option<Best>, row: &Row) -> bool {
    match best {
        None => true,
        Some(b) => row.metrics.loss < b.row.metrics.loss,
    }
}

fn fold(out: &mut Outcome, spec: &SweepSpec, row: &Row, sample_every: u64) {
    out.evaluated += 1;
    out.losses.add((row.loss.scorer, row.loss.outside));
    let x = row.metrics.get(spec.x);
    if row.feasible {
        out.feasible += 1;
    }
    let rows = &mut out.frontier_rows;
    let point = FrontPoint {
        x,
        y: row.metrics.loss,
        id: row.point.index,
    };
    if out.frontier.insert_with(point, |id| {
        rows.remove(&id);
    }) {
        rows.insert(row.point.index, row.clone());
    }
    let key = (spec.region.0.value(&row.point), spec.region.1.value(&row.point));
    let cell = out.region.entry(key).or_default();
    cell.candidates += 1;
    if row.feasible {
        cell.feasible += 1;
        cell.best_loss = Some(
            cell.best_loss
                .map_or(row.metrics.loss, |l: f64| l.min(row.metrics.loss)),
        );
        if better(&out.best_overall, row) {
            out.best_overall = Some(Best { row: row.clone() });
        }
    }
    for (k, b) in spec.budgets.iter().enumerate() {
        if row.fits_memory && b.violation(&row.metrics) == 0.0 && better(&out.best_per_budget[k], row) {
            out.best_per_budget[k] = Some(Best { row: row.clone() });
        }
    }
    if row.point.index % sample_every == 0 {
        out.sample.push((x, row.metrics.loss, row.feasible));
    }
}
