//! The ring cost model ([`crate::sim::ring`]) driven from a loaded `kind: ring` substrate:
//! one design, or the file's co-search grid.
//!
//! * [`evaluate`]: the file's own design (MACs/VAC, WMEM/core, max chips) for a model.
//! * [`co_search`]: every point of the file's grid, the choice, and the chosen design's full
//!   report. When the grid varies only the ring's design genes (`chip.macs_per_vac`,
//!   `max_chips`, `chip.wmem_per_core`), the ring module's own co-search prices it (one
//!   prepared model, one workspace, no re-loading); otherwise every point is loaded as the
//!   base file with overrides and evaluated alone ([`co_search_generic`]). Both give the
//!   same table.
//! * [`RingSpace`]: the fast path prepared once for many models (an architecture search's
//!   inner loop).

use super::ring::{
    self, GridDim, GridValue, Objective, PointOutcome, RingDesign, RingError, RingGrid, RingModel,
    RingOptions, RingReport, RingSpec, RingWorkload,
};
use crate::model::Model;
use crate::substrate::cosearch::{self, CoSearchError, GridTable, PointMetrics, PointRow, PointStatus};
use crate::substrate::{DesignSpace, Kind, Ring, Substrate};
use crate::units::Bytes;
use crate::yaml::DescErrors;
use serde::Serialize;

/// Errors of driving the ring model from a substrate.
#[derive(Debug, thiserror::Error)]
pub enum RingAdapterError {
    /// Occurs when the substrate is not a ring.
    #[error("substrate `{name}` is a {kind} substrate, not a ring")]
    NotARing { name: String, kind: &'static str },
    #[error(transparent)]
    Ring(#[from] RingError),
    #[error(transparent)]
    CoSearch(#[from] CoSearchError),
    /// Occurs when the chosen grid point does not load.
    #[error(transparent)]
    Load(#[from] DescErrors),
}

/// The ring of a substrate.
pub fn ring_of(sub: &Substrate) -> Result<&Ring, RingAdapterError> {
    match &sub.kind {
        Kind::Ring(r) => Ok(r),
        _ => Err(RingAdapterError::NotARing {
            name: sub.name.clone(),
            kind: sub.kind_name(),
        }),
    }
}

/// The file's own design for `model`: packed and priced in full.
pub fn evaluate(
    model: &Model,
    sub: &Substrate,
    workload: RingWorkload,
    objective: Objective,
) -> Result<RingReport, RingAdapterError> {
    let r = ring_of(sub)?;
    let rm = RingModel::new(model, &workload, &r.options)?;
    Ok(ring::evaluate(&r.spec, &rm, &r.design, objective)?)
}

/// The headline figures of a report, for the co-search table.
pub fn metrics(r: &RingReport) -> PointMetrics {
    PointMetrics {
        ttft_s: r.ttft.get(),
        tpot_s: r.tpot.get(),
        energy_per_token_j: r.energy_per_token_paper.get(),
        energy_per_generated_token_j: r.energy_per_generated_token.get(),
        area_m2: Some(r.total_area.get()),
        power_w: r.power.get(),
    }
}

/// The outcome of a ring co-search.
#[derive(Clone, Debug, PartialEq)]
pub struct RingCoSearch {
    /// The chosen point as a substrate (the file with the point's overrides).
    pub substrate: Substrate,
    /// The chosen design, packed and priced in full.
    pub report: RingReport,
    /// Every point and the choice.
    pub table: GridTable,
    /// Whether the ring module's fast co-search priced the grid.
    pub fast_path: bool,
}

/// Co-searches the file's grid for `model` (a file without a grid: its one design).
pub fn co_search(
    model: &Model,
    space: &DesignSpace,
    workload: RingWorkload,
) -> Result<RingCoSearch, RingAdapterError> {
    match RingSpace::new(space)? {
        Some(fast) => fast.co_search(model, space, workload),
        None => co_search_generic(model, space, workload),
    }
}

/// Co-search by loading every point as the base file with overrides (works for any grid).
pub fn co_search_generic(
    model: &Model,
    space: &DesignSpace,
    workload: RingWorkload,
) -> Result<RingCoSearch, RingAdapterError> {
    let base = ring_of(space.base())?;
    let objective = space.cosearch().map_or(Objective::Energy, |c| c.objective);
    // options are words, never grid axes: one preparation serves every point
    let rm = RingModel::new(model, &workload, &base.options)?;
    let table = cosearch::run_grid(space, Some(objective), |_, sub| -> Result<_, RingAdapterError> {
        let r = ring_of(sub)?;
        let report = ring::evaluate(&r.spec, &rm, &r.design, objective)?;
        Ok(metrics(&report))
    });
    let table = match table {
        Err(CoSearchError::NothingEvaluated { points, .. }) => {
            return Err(RingError::NothingFits {
                model: rm.name().to_string(),
                points,
            }
            .into());
        }
        t => t?,
    };
    let substrate = space.point(table.chosen)?;
    let r = ring_of(&substrate)?;
    let report = ring::evaluate(&r.spec, &rm, &r.design, objective)?;
    Ok(RingCoSearch {
        substrate,
        report,
        table,
        fast_path: false,
    })
}

const GENES: [(&str, &str); 3] = [
    ("chip.macs_per_vac", "macs_per_vac"),
    ("max_chips", "max_chips"),
    ("chip.wmem_per_core", "wmem_per_core"),
];

/// A ring file whose grid varies only the design genes, prepared for the ring module's
/// co-search: the validated spec, the designs in grid order, the objective and options.
#[derive(Clone, Debug)]
pub struct RingSpace {
    spec: RingSpec,
    options: RingOptions,
    objective: Objective,
    grid: RingGrid,
    designs: Vec<RingDesign>,
}

impl RingSpace {
    /// `Ok(None)` when the fast path does not apply (a grid axis outside the genes, or a
    /// candidate the ring's grid cannot take, such as a fractional count: the generic path
    /// then reports it against the file). A file without a grid is a one-point grid.
    pub fn new(space: &DesignSpace) -> Result<Option<RingSpace>, RingAdapterError> {
        let base = ring_of(space.base())?;
        let (objective, axes) = match space.cosearch() {
            Some(c) => (c.objective, c.axes.as_slice()),
            None => (Objective::Energy, &[][..]),
        };
        let mut dims = Vec::with_capacity(3);
        for axis in axes {
            let Some((_, name)) = GENES.iter().find(|(path, _)| *path == axis.path) else {
                return Ok(None);
            };
            let mut values = Vec::with_capacity(axis.values.len());
            for q in &axis.values {
                let v = if *name == "wmem_per_core" {
                    match q.to::<Bytes>() {
                        Ok(b) => GridValue::Bytes(b),
                        Err(_) => return Ok(None),
                    }
                } else {
                    match q.to::<u64>() {
                        Ok(c) => GridValue::Count(c),
                        Err(_) => return Ok(None),
                    }
                };
                values.push(v);
            }
            dims.push(GridDim {
                name: (*name).to_string(),
                values,
            });
        }
        // genes the grid does not vary keep the file's value (one-value dimensions)
        let d = base.design;
        for (path, name) in GENES {
            if !axes.iter().any(|a| a.path == path) {
                let value = match name {
                    "macs_per_vac" => GridValue::Count(d.macs_per_vac),
                    "max_chips" => GridValue::Count(d.max_chips),
                    _ => GridValue::Bytes(d.wmem_per_core),
                };
                dims.push(GridDim {
                    name: name.to_string(),
                    values: vec![value],
                });
            }
        }
        let grid = RingGrid::new(dims)?;
        let designs = match grid.ring_designs() {
            Ok(d) => d,
            // out-of-range candidates (0 MACs): the generic path reports them located
            Err(_) => return Ok(None),
        };
        Ok(Some(RingSpace {
            spec: base.spec.clone(),
            options: base.options,
            objective,
            grid,
            designs,
        }))
    }

    pub fn objective(&self) -> Objective {
        self.objective
    }
    pub fn designs(&self) -> &[RingDesign] {
        &self.designs
    }

    /// The hot loop: prepare `model`, price every point, return (point index, objective,
    /// feasible) of the choice, or `None` when no point fits.
    pub fn best(
        &self,
        model: &Model,
        workload: RingWorkload,
    ) -> Result<Option<(usize, f64, bool)>, RingError> {
        let rm = RingModel::new(model, &workload, &self.options)?;
        Ok(ring::co_search_best(
            &self.spec,
            &rm,
            &self.designs,
            self.objective,
        ))
    }

    /// The full co-search: table, chosen substrate and report.
    pub fn co_search(
        &self,
        model: &Model,
        space: &DesignSpace,
        workload: RingWorkload,
    ) -> Result<RingCoSearch, RingAdapterError> {
        let rm = RingModel::new(model, &workload, &self.options)?;
        let result = ring::co_search(&self.spec, &rm, &self.grid, self.objective)?;
        let rows = result
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| PointRow {
                index: i,
                settings: space.cosearch().map(|c| c.settings(i)).unwrap_or_default(),
                status: match p.outcome {
                    PointOutcome::DoesNotFit => PointStatus::Failed {
                        reason: RingError::DoesNotFit {
                            model: rm.name().to_string(),
                            design: p.design,
                            weight_bytes: Bytes::new(rm.total_weight_bytes()),
                        }
                        .to_string(),
                    },
                    PointOutcome::Priced {
                        objective,
                        violation,
                        area_mm2,
                        power_w,
                        ttft_s,
                        tpot_s,
                        energy_per_token_j,
                        energy_per_generated_token_j,
                        ..
                    } => PointStatus::Evaluated {
                        objective,
                        violation,
                        metrics: PointMetrics {
                            ttft_s,
                            tpot_s,
                            energy_per_token_j,
                            energy_per_generated_token_j,
                            area_m2: Some(area_mm2 * 1e-6),
                            power_w,
                        },
                    },
                },
            })
            .collect();
        let table = GridTable {
            objective: self.objective,
            chosen: result.best_index,
            feasible: result.feasible,
            points: rows,
        };
        Ok(RingCoSearch {
            substrate: space.point(result.best_index)?,
            report: result.best,
            table,
            fast_path: true,
        })
    }
}

/// The concrete hardware of a priced ring design.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RingHardware {
    pub chips: u64,
    pub cores_per_chip: u64,
    pub macs_per_vac: u64,
    pub wmem_per_core_bytes: f64,
    pub kv_per_core_bytes: f64,
    pub max_chips: u64,
    pub chip_area_mm2: f64,
    pub area_mm2: f64,
    pub power_w: f64,
    /// Within the envelope.
    pub feasible: bool,
    pub violation: f64,
    /// The chosen co-search point, when the file has a grid.
    pub grid_point: Option<usize>,
    /// Grid points priced (1 without a grid).
    pub grid_points: usize,
}

/// A ring run in the terms of the cost engine's run summary: `batch` users, `prompt` tokens
/// of prefill, `generate` decode steps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RingSummary {
    pub model: String,
    pub substrate: String,
    pub engine: &'static str,
    pub prompt: u64,
    pub generate: u64,
    pub batch: u64,
    /// Time to first token: the token-pipelined prefill.
    pub ttft_s: f64,
    /// Time per output token: one ring step (all users).
    pub tpot_s: f64,
    /// Generated tokens per second of decode, batch / TPOT.
    pub tokens_per_s: f64,
    /// Total energy per generated token, total / (batch * generate).
    pub energy_per_token_j: f64,
    /// The paper's form, (E_prefill + D E_step) / (P + D) per sequence.
    pub energy_per_processed_token_j: f64,
    /// All users.
    pub prefill_energy_j: f64,
    /// All users, all steps.
    pub decode_energy_j: f64,
    pub total_energy_j: f64,
    pub weight_bytes: f64,
    pub hardware: RingHardware,
}

/// The summary of a priced design.
pub fn summarize(
    report: &RingReport,
    substrate: &str,
    workload: RingWorkload,
    grid: Option<(usize, usize)>,
) -> RingSummary {
    let users = workload.users() as f64;
    let d = workload.decode() as f64;
    let prefill = report.prefill_energy.get() * users;
    let decode = report.decode_step_energy.get() * users * d;
    let total = prefill + decode;
    RingSummary {
        model: report.model.clone(),
        substrate: substrate.to_string(),
        engine: "ring",
        prompt: workload.prompt(),
        generate: workload.decode(),
        batch: workload.users(),
        ttft_s: report.ttft.get(),
        tpot_s: report.tpot.get(),
        tokens_per_s: users / report.tpot.get(),
        energy_per_token_j: total / (users * d),
        energy_per_processed_token_j: report.energy_per_token_paper.get(),
        prefill_energy_j: prefill,
        decode_energy_j: decode,
        total_energy_j: total,
        weight_bytes: report.layers.iter().map(|l| l.weight_bytes.get()).sum(),
        hardware: RingHardware {
            chips: report.n_chips(),
            cores_per_chip: report.packing.chip.n_cores,
            macs_per_vac: report.design.macs_per_vac,
            wmem_per_core_bytes: report.design.wmem_per_core.get(),
            kv_per_core_bytes: report.packing.chip.kv_per_core.get(),
            max_chips: report.design.max_chips,
            chip_area_mm2: report.chip_area.as_mm2(),
            area_mm2: report.total_area.as_mm2(),
            power_w: report.power.get(),
            feasible: report.is_feasible(),
            violation: report.violation,
            grid_point: grid.map(|g| g.0),
            grid_points: grid.map_or(1, |g| g.1),
        },
    }
}

/// Runs `model` on a ring file: its co-search when it has one, else its own design.
/// Returns the summary and the full result.
pub fn run(
    model: &Model,
    space: &DesignSpace,
    workload: RingWorkload,
) -> Result<(RingSummary, RingCoSearch), RingAdapterError> {
    let r = co_search(model, space, workload)?;
    let grid = space.cosearch().map(|c| (r.table.chosen, c.len()));
    let s = summarize(&r.report, &space.base().name, workload, grid);
    Ok((s, r))
}
