//! The ring cost model ([`crate::sim::ring`]) driven from a loaded `kind: ring` substrate:
//! one design, or the file's co-search grid.
//!
//! * [`evaluate`]: the file's own design (MACs/VAC, WMEM/core, max chips) for a model.
//! * [`co_search`]: every point of the file's grid, the choice, and the chosen design's full
//!   report. When the grid varies only the ring's design genes (`chip.macs_per_vac`,
//!   `max_chips`, `chip.wmem_per_core`), the ring module's own co-search prices it (one
//!   prepared model, one workspace); otherwise every point is taken from the design space
//!   as a value (the parsed base with the point's typed values, see
//!   [`crate::substrate::cosearch`]) and evaluated alone ([`co_search_generic`]). Both give
//!   the same table. Nothing here parses: a point that a field's rule rejects comes back as
//!   a typed [`PointError`].
//! * [`RingSpace`]: the fast path prepared once for many models (an architecture search's
//!   inner loop).

use super::program;
use super::ring::{
    self, GridDim, GridValue, Objective, PointOutcome, RingDesign, RingError, RingGrid, RingModel,
    RingOptions, RingReport, RingSpec, RingWorkload,
};
use super::ring::{RingBlock, RingEnds};
use crate::graph;
use crate::model::{Layer, Model};
use crate::substrate::cosearch::{
    self, CoSearchError, GridTable, PointError, PointMetrics, PointRow, PointStatus,
};
use crate::substrate::{DesignSpace, Kind, Ring, Substrate};
use crate::units::Bytes;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

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
    /// Occurs when the chosen grid point's values are out of their fields' ranges.
    #[error(transparent)]
    Point(#[from] PointError),
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

impl RingModel {
    /// Prepares `model` for `workload` on the ring: validated (an invalid model is a
    /// [`RingError::InvalidModel`] listing every problem), then lowered to its decode graph
    /// (one step of all users) once per distinct layer, each block's operators prepared once
    /// ([`RingBlock::new`]) and placed at every layer that repeats it, the LM head and the
    /// embedding read from the graph's head and tail ([`RingEnds::new`]), and the ring's
    /// model assembled ([`RingModel::from_blocks`]). The ring itself reads no model layers.
    ///
    /// Blocks and ends come from one process-wide [`BlockCache`] (bounded, each hit verified
    /// against the layer, `d_model` and users it was lowered for), so preparing a model again,
    /// or another with the same layers, lowers nothing: the paper-era timing's co-search costs
    /// about 13 us a model, and lowering a one-layer graph per distinct layer would add up to
    /// 60% to it. The result does not depend on what the cache holds (unit test).
    pub fn new(
        model: &Model,
        workload: &RingWorkload,
        options: &RingOptions,
    ) -> Result<RingModel, RingError> {
        static SHARED: std::sync::OnceLock<BlockCache> = std::sync::OnceLock::new();
        prepare(
            model,
            workload,
            options,
            Some(SHARED.get_or_init(BlockCache::default)),
        )
    }
}

/// Ring blocks and ends prepared once for many models (a search's candidates share layers):
/// blocks by (layer genes, d_model, users), ends by (d_model, vocabulary, users); each entry
/// is verified on a hit (the hash only finds it). Bounded: emptied when full.
#[derive(Default)]
pub struct BlockCache {
    blocks: std::sync::Mutex<HashMap<u64, Vec<CachedBlock>>>,
    ends: std::sync::Mutex<HashMap<(u64, u64, u64), RingEnds>>,
}

/// A cached block: the layer, d_model and users it was lowered for, and the block.
type CachedBlock = (Layer, u64, u64, Arc<RingBlock>);

/// Distinct layers a [`BlockCache`] keeps before it starts afresh.
const BLOCK_CACHE_ENTRIES: usize = 4096;

impl BlockCache {
    fn block(&self, model: &Model, layer: &Layer, phase: graph::Phase) -> Arc<RingBlock> {
        let (d, u) = (model.d_model, phase.batch());
        let key = super::engine::cached::layer_hash(d ^ u.rotate_left(32), Some(layer));
        let lock = || self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = lock().get(&key) {
            if let Some((.., b)) = v.iter().find(|(l, ld, lu, _)| l == layer && *ld == d && *lu == u) {
                return b.clone();
            }
        }
        let b = Arc::new(lower_block(model, layer, phase).0);
        let mut map = lock();
        if map.len() >= BLOCK_CACHE_ENTRIES {
            map.clear();
        }
        map.entry(key).or_default().push((*layer, d, u, b.clone()));
        b
    }

    fn ends(&self, model: &Model, phase: graph::Phase) -> Option<RingEnds> {
        let key = (model.d_model, model.vocab, phase.batch());
        let lock = || self.ends.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = lock().get(&key) {
            return Some(*e);
        }
        let g = graph::lower(&program::one_layer(model, None), phase);
        let e = RingEnds::new(g.ops())?;
        let mut map = lock();
        if map.len() >= BLOCK_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(key, e);
        Some(e)
    }
}

/// `layer` of `model` lowered alone for `phase`: its ring block, and the graph's ends.
fn lower_block(model: &Model, layer: &Layer, phase: graph::Phase) -> (RingBlock, Option<RingEnds>) {
    let g = graph::lower(&program::one_layer(model, Some(layer)), phase);
    let block = RingBlock::new(g.ops().filter(|o| o.layer.is_some()), &g.blocks[0]);
    (block, RingEnds::new(g.ops().filter(|o| o.layer.is_none())))
}

/// [`RingModel::new`], with blocks and ends from `cache` when given.
fn prepare(
    model: &Model,
    workload: &RingWorkload,
    options: &RingOptions,
    cache: Option<&BlockCache>,
) -> Result<RingModel, RingError> {
    model.validate().map_err(|errs| RingError::InvalidModel {
        model: model.name.clone(),
        message: errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "),
    })?;
    let (distinct, layers) = program::distinct_layers(model);
    let phase = graph::Phase::Decode {
        context: workload.prompt() + 1,
        batch: workload.users(),
    };
    let mut ends = None;
    let blocks: Vec<Arc<RingBlock>> = match cache {
        Some(c) => {
            ends = c.ends(model, phase);
            distinct.iter().map(|l| c.block(model, l, phase)).collect()
        }
        None => distinct
            .iter()
            .map(|l| {
                let (b, e) = lower_block(model, l, phase);
                if ends.is_none() {
                    ends = e;
                }
                Arc::new(b)
            })
            .collect(),
    };
    if ends.is_none() {
        let g = graph::lower(&program::one_layer(model, None), phase);
        ends = RingEnds::new(g.ops());
    }
    let ends = ends.ok_or_else(|| RingError::InvalidModel {
        model: model.name.clone(),
        message: "its decode graph has no LM head".into(),
    })?;
    RingModel::from_blocks(&model.name, &blocks, &layers, &ends, workload, options)
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

/// Co-search by evaluating every point of the design space alone (works for any grid).
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
        self.co_search_with(model, space, workload, |i| space.point(i))
    }

    /// [`RingSpace::co_search`] with the chosen point's substrate from `point`.
    fn co_search_with(
        &self,
        model: &Model,
        space: &DesignSpace,
        workload: RingWorkload,
        point: impl FnOnce(usize) -> Result<Substrate, PointError>,
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
            substrate: point(result.best_index)?,
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

/// The concrete hardware of a priced design; `grid`: (chosen point, points) of a co-search.
fn hardware(report: &RingReport, grid: Option<(usize, usize)>) -> RingHardware {
    RingHardware {
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
    }
}

/// Runs `model` on a ring file: its co-search when it has one, else its own design.
/// Returns the run summary (the cost engine's [`RunSummary`], the one summary type; the
/// chosen hardware in its `ring` field) and the full co-search result.
pub fn run(
    model: &Model,
    space: &DesignSpace,
    workload: RingWorkload,
) -> Result<(RunSummary, RingCoSearch), RingAdapterError> {
    let r = co_search(model, space, workload)?;
    let grid = space.cosearch().map(|c| (r.table.chosen, c.len()));
    let s = priced(model, space.base(), workload, &r, grid, false, None).summary;
    Ok((s, r))
}

// ---------------------------------------------------------------------------------------
// The cost engine's interface: `sim::run` / `sim::summary` on a ring substrate.

use super::result::{
    Bound, DeviceEvent, Energy, OpRecord, PhaseKind, PhaseSummary, Place, RunResult, RunSummary, Sink,
    Topology,
};
use super::ring::{EnergyBreakdown, LayerOrigin, LinkUse, Placement, RingTiming};
use crate::graph::{RoleBytes, Unit};
use crate::units::{Flops, Joules, Seconds};

/// The ring's energy in the engine's four buckets: compute = MACs, accumulator, softmax and
/// norms; on-chip = WMEM, KV cache, head SRAM and the chip-to-chip links; DRAM; static =
/// leakage.
pub fn energy_buckets(e: &EnergyBreakdown) -> Energy {
    Energy {
        compute: e.mac + e.accumulator + e.softmax_norm,
        onchip: e.wmem + e.kv_read + e.kv_write + e.head_sram + e.link,
        dram: e.dram,
        static_: e.leakage,
    }
}

fn layer_name(o: LayerOrigin) -> (&'static str, Option<u32>, String) {
    match o {
        LayerOrigin::Block(i) => ("block", Some(i as u32), format!("L{i}")),
        LayerOrigin::LmHead => ("lm_head", None, "lm_head".to_string()),
    }
}

/// `sim::run` for a ring substrate: the ring engine (the file's co-search when it declares
/// one, else its design), reported as a [`RunResult`]: one record per ring layer and phase
/// (`kind` `ring_layer`; decode records sum the `generate` steps), and, for a sink, one
/// event per layer per prompt token of the pipelined prefill (streamed layers after it) and
/// per decode step, on the matrix resource. `engine` is recorded as `ring`: the ring has one
/// cost model. When no design can hold the model (spilling off and chips limited), times
/// and energies are infinite and `fits_memory` is false.
pub fn engine_run(
    model: &Model,
    sub: &Substrate,
    w: super::Workload,
    records: bool,
    sink: Option<&mut dyn Sink>,
) -> RunResult {
    engine_run_prepared(model, sub, w, records, sink, &Prepared::new(sub))
}

/// A ring substrate's design space prepared once for many models (a search's
/// [`super::LayerCache`]): the space, its fast form, and each grid point's substrate as it is
/// first chosen (loaded once, not once per model).
pub struct Prepared {
    space: DesignSpace,
    /// `Err` when the grid cannot be prepared (then every co-search fails, as
    /// [`co_search`] does).
    fast: Result<Option<RingSpace>, ()>,
    points: std::sync::Mutex<std::collections::HashMap<usize, Substrate>>,
}

impl Prepared {
    pub fn new(sub: &Substrate) -> Prepared {
        let space = DesignSpace::of(sub);
        let fast = RingSpace::new(&space).map_err(|_| ());
        Prepared {
            space,
            fast,
            points: Default::default(),
        }
    }

    fn point(&self, i: usize) -> Result<Substrate, PointError> {
        if let Some(s) = self.points.lock().unwrap_or_else(|e| e.into_inner()).get(&i) {
            return Ok(s.clone());
        }
        let s = self.space.point(i)?;
        self.points
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(i, s.clone());
        Ok(s)
    }

    /// [`co_search`] of `model` on the prepared space.
    fn co_search(&self, model: &Model, workload: RingWorkload) -> Result<RingCoSearch, RingAdapterError> {
        match &self.fast {
            Ok(Some(fast)) => fast.co_search_with(model, &self.space, workload, |i| self.point(i)),
            Ok(None) => co_search_generic(model, &self.space, workload),
            Err(()) => co_search(model, &self.space, workload),
        }
    }
}

/// [`engine_run`] on a prepared design space (`prep` made from `sub`).
pub fn engine_run_prepared(
    model: &Model,
    sub: &Substrate,
    w: super::Workload,
    records: bool,
    sink: Option<&mut dyn Sink>,
    prep: &Prepared,
) -> RunResult {
    let workload = RingWorkload::new(w.prompt, w.generate, w.batch);
    let result = workload
        .map_err(RingAdapterError::from)
        .and_then(|wl| prep.co_search(model, wl).map(|r| (wl, r)));
    let (wl, r) = match result {
        Ok(x) => x,
        Err(_) => return does_not_fit(model, sub, w),
    };
    let grid = prep.space.cosearch().map(|c| (r.table.chosen, c.len()));
    priced(model, sub, wl, &r, grid, records, sink)
}

/// The run of a co-searched design in the engine's terms: records (with `records`), events
/// into `sink`, and the [`RunSummary`].
fn priced(
    model: &Model,
    sub: &Substrate,
    wl: RingWorkload,
    r: &RingCoSearch,
    grid: Option<(usize, usize)>,
    records: bool,
    sink: Option<&mut dyn Sink>,
) -> RunResult {
    let rep = &r.report;
    let clock = ring_of(&r.substrate).map_or(f64::NAN, |x| x.spec.chip().clock.get());
    let d = wl.decode() as f64;
    let cyc = |c: f64| Seconds::new(c / clock);

    let tl = Timeline::new(rep, wl, clock);
    let (pre_off, dec_off) = (&tl.pre_off, &tl.dec_off);
    if let Some(sink) = sink {
        sink.topology(&topology(rep));
        let steps = sink.decode_steps();
        tl.events(steps, &mut |e| match e {
            RingEvent::Layer {
                phase,
                step,
                context,
                layer,
                streamed,
                start,
                end,
            } => {
                let l = &rep.layers[layer];
                let (name, index, label) = layer_name(l.origin);
                let chips = &rep.stages[l.stage].chips;
                sink.device_event(&DeviceEvent {
                    phase,
                    step,
                    context,
                    name,
                    layer: index,
                    label: &label,
                    place: Place::Chips {
                        first: chips.start,
                        end: chips.end,
                    },
                    what: if streamed { "stream" } else { "compute" },
                    start,
                    end,
                });
            }
            RingEvent::Link {
                phase,
                step,
                link,
                start,
                end,
            } => {
                let l = &rep.links[link];
                let label = format!("{}->{}", l.from_chip, l.to_chip);
                let what = if l.usage == LinkUse::Hop {
                    "hop"
                } else {
                    "tensor_parallel"
                };
                sink.device_event(&DeviceEvent {
                    phase,
                    step,
                    context: 0,
                    name: what,
                    layer: None,
                    label: &label,
                    place: Place::Link(link as u64),
                    what,
                    start,
                    end,
                });
            }
            RingEvent::Pass {
                phase,
                step,
                start,
                end,
            } => sink.step_end(phase, step, start, end),
        });
    }

    // records and phase totals
    let mut ops = Vec::new();
    let bound_time = |p: &mut PhaseSummary, b: Bound, t: Seconds| match b {
        Bound::Compute => p.compute_bound_time += t,
        Bound::Memory => p.memory_bound_time += t,
        Bound::Overhead => p.overhead_bound_time += t,
    };
    let mut pre = PhaseSummary {
        steps: 1,
        time: Seconds::new(rep.ttft.get()),
        energy: energy_buckets(&rep.prefill_breakdown),
        ..PhaseSummary::default()
    };
    let mut dec = PhaseSummary {
        steps: wl.decode(),
        time: Seconds::new(rep.tpot.get() * d),
        energy: energy_buckets(&rep.decode_breakdown) * d,
        ..PhaseSummary::default()
    };
    // passes over the weights and the links in the prefill: one per prompt token, or one
    // under the paper-era timing (weights read once, hops priced once)
    let prefill_passes = if batched_prefill(rep) {
        1.0
    } else {
        wl.prompt() as f64
    };
    for (phase, out) in [(PhaseKind::Prefill, &mut pre), (PhaseKind::Decode, &mut dec)] {
        let count = if phase == PhaseKind::Prefill {
            1
        } else {
            wl.decode()
        };
        let n = count as f64;
        for (i, l) in rep.layers.iter().enumerate() {
            let (cost, passes, off) = match phase {
                PhaseKind::Prefill => (&l.prefill, prefill_passes, pre_off[i]),
                PhaseKind::Decode => (&l.decode_step, 1.0, dec_off[i]),
            };
            let flops = Flops::new(2.0 * cost.macs * n);
            let time = cyc(cost.cycles.get() * n);
            let bound = if l.placement == Placement::Streamed {
                Bound::Memory
            } else {
                Bound::Compute
            };
            out.flops += flops;
            out.dram_bytes += cost.dram_bytes * n;
            bound_time(out, bound, time);
            if records {
                let (name, layer, label) = layer_name(l.origin);
                let label = format!("{}.{label}", chips_label(&rep.stages[l.stage].chips));
                let own = match phase {
                    PhaseKind::Prefill => prefill_span(rep, i),
                    PhaseKind::Decode => l.decode_step.cycles.get(),
                };
                ops.push(OpRecord {
                    label,
                    name,
                    layer,
                    phase,
                    kind: "ring_layer",
                    unit: Unit::Matrix,
                    count,
                    flops,
                    // stationary weights swept once per token pass, all users
                    reads: RoleBytes {
                        weights: l.weight_bytes * (passes * n),
                        activations: Bytes::ZERO,
                        kv_cache: Bytes::ZERO,
                    },
                    writes: RoleBytes::default(),
                    dram_bytes: cost.dram_bytes * n,
                    compute_time: if bound == Bound::Compute {
                        time
                    } else {
                        Seconds::ZERO
                    },
                    memory_time: if bound == Bound::Memory {
                        time
                    } else {
                        Seconds::ZERO
                    },
                    overhead_time: Seconds::ZERO,
                    time,
                    start: cyc(off),
                    end: cyc(off + own),
                    bound,
                    energy: energy_buckets(&cost.energy) * n,
                });
            }
        }
        // the links: hops between stages carry their energy here; tensor-parallel traffic
        // is already in its layer's record (energy 0 here, time and bytes kept)
        let passes = match phase {
            PhaseKind::Prefill => prefill_passes,
            PhaseKind::Decode => 1.0,
        };
        for (li, link) in rep.links.iter().enumerate() {
            if link.usage == LinkUse::Idle {
                continue;
            }
            let time = cyc(link.cycles.get() * passes * n);
            out.memory_bound_time += time;
            if records {
                let hop = link.usage == LinkUse::Hop;
                let energy = if hop {
                    link.energy * (passes * n)
                } else {
                    Joules::ZERO
                };
                let (s0, s1) = tl.link_span(li, phase);
                ops.push(OpRecord {
                    label: format!("link{}->{}", link.from_chip, link.to_chip),
                    name: if hop { "hop" } else { "tensor_parallel" },
                    layer: None,
                    phase,
                    kind: "ring_link",
                    unit: Unit::Memory,
                    count,
                    flops: Flops::ZERO,
                    reads: RoleBytes {
                        weights: Bytes::ZERO,
                        activations: link.bytes * (passes * n),
                        kv_cache: Bytes::ZERO,
                    },
                    writes: RoleBytes::default(),
                    dram_bytes: Bytes::ZERO,
                    compute_time: Seconds::ZERO,
                    memory_time: time,
                    overhead_time: Seconds::ZERO,
                    time,
                    start: cyc(s0),
                    end: cyc(s1),
                    bound: Bound::Memory,
                    energy: Energy {
                        onchip: energy,
                        ..Energy::default()
                    },
                });
            }
        }
    }
    let users = wl.users() as f64;
    let prefill_energy = rep.prefill_energy.get() * users;
    let decode_energy = rep.decode_step_energy.get() * users * d;
    let total_energy = prefill_energy + decode_energy;
    let cap = rep.packing.n_chips as f64
        * rep.packing.chip.n_cores as f64
        * (rep.packing.chip.wmem_per_core.get() + rep.packing.chip.kv_per_core.get());
    let kv: f64 = rep.layers.iter().map(|l| l.kv_bytes.get()).sum();
    let stationary: f64 = rep
        .layers
        .iter()
        .filter(|l| l.placement != Placement::Streamed)
        .map(|l| l.weight_bytes.get())
        .sum();
    RunResult {
        summary: RunSummary {
            model: model.name.clone(),
            substrate: sub.name.clone(),
            engine: "ring",
            prompt: wl.prompt(),
            generate: wl.decode(),
            batch: wl.users(),
            precision: ring_precision(model, sub),
            ttft_s: rep.ttft.get(),
            tpot_s: rep.tpot.get(),
            tokens_per_s: users / rep.tpot.get(),
            energy_per_token_j: total_energy / (users * d),
            energy_per_processed_token_j: match rep.timing {
                RingTiming::Corrected => total_energy / ((wl.prompt() + wl.decode()) * wl.users()) as f64,
                // the release's "energy per token": one decode step's, per user
                RingTiming::PaperEra => rep.energy_per_token_paper.get(),
            },
            prefill_energy_j: prefill_energy,
            decode_energy_j: decode_energy,
            total_energy_j: total_energy,
            weight_bytes: rep.layers.iter().map(|l| l.weight_bytes.get()).sum(),
            kv_bytes: kv,
            memory_capacity_bytes: cap,
            fits_memory: stationary + kv <= cap,
            prefill: pre,
            decode: dec,
            ring: Some(hardware(rep, grid)),
        },
        ops,
    }
}

/// The ring's precision rules for `model`: int8 everything (its MACs, WMEM and KV cache are
/// 8-bit), other formats quantised to it.
fn ring_precision(model: &Model, sub: &Substrate) -> crate::substrate::PrecisionReport {
    let (resolved, rejected) = sub.resolve_forced(&model.precision);
    crate::substrate::PrecisionReport { resolved, rejected }
}

/// The summary of a model no design of the ring can hold.
fn does_not_fit(model: &Model, sub: &Substrate, w: super::Workload) -> RunResult {
    let inf = f64::INFINITY;
    let phase = |steps| PhaseSummary {
        steps,
        time: Seconds::new(inf),
        energy: Energy {
            static_: Joules::new(inf),
            ..Energy::default()
        },
        ..PhaseSummary::default()
    };
    RunResult {
        summary: RunSummary {
            model: model.name.clone(),
            substrate: sub.name.clone(),
            engine: "ring",
            prompt: w.prompt,
            generate: w.generate,
            batch: w.batch,
            precision: ring_precision(model, sub),
            ttft_s: inf,
            tpot_s: inf,
            tokens_per_s: 0.0,
            energy_per_token_j: inf,
            energy_per_processed_token_j: inf,
            prefill_energy_j: inf,
            decode_energy_j: inf,
            total_energy_j: inf,
            weight_bytes: crate::model::accounting::weight_bytes(model).get(),
            kv_bytes: 0.0,
            memory_capacity_bytes: sub.memory_capacity().get(),
            fits_memory: false,
            prefill: phase(1),
            decode: phase(w.generate),
            ring: None,
        },
        ops: Vec::new(),
    }
}

/// The roofline of a kernel on a ring ([`super::cost::Mapper::roofline`] for a Mapper built
/// directly on a ring; `sim::run` never gets here): weights and KV stream from on-chip WMEM
/// and KV cache at the aggregate WMEM bandwidth of `max_chips` template chips, activations
/// stay in the head SRAMs, nothing touches DRAM. Energy at the reference depths: MACs
/// (2 FLOP each), vector FLOPs at the norm energy, WMEM / KV / head-SRAM bytes.
/// Returns (memory time, read time, write time, energy) as the other kinds' arms do.
pub fn roofline(
    r: &Ring,
    matrix_flops: f64,
    vector_flops: f64,
    t: &super::cost::Traffic,
    eff: crate::substrate::Efficiency,
) -> (f64, f64, f64, Energy) {
    let e = &r.spec.chip().energy;
    let onchip_bytes = t.weights + t.kv_read + t.kv_write;
    let memory = onchip_bytes / (eff.memory * r.wmem_bandwidth().get());
    let energy = Energy {
        compute: e.mac * (matrix_flops / 2.0) + e.norm_per_element * vector_flops,
        onchip: e.wmem_per_byte * t.weights
            + e.kv_per_byte * (t.kv_read + t.kv_write)
            + e.head_sram_per_byte * (t.act_in + t.act_out),
        dram: Joules::ZERO,
        static_: Joules::ZERO,
    };
    (memory, 0.0, 0.0, energy)
}

/// Leakage power of `max_chips` template chips (leakage per cycle x clock).
pub fn leakage_power(r: &Ring) -> crate::units::Watts {
    let c = r.spec.chip();
    let template = super::ring::ChipConfig {
        n_cores: c.n_cores(),
        n_dxt: c.n_dxt,
        macs_per_vac: r.design.macs_per_vac,
        wmem_per_core: r.design.wmem_per_core,
        kv_per_core: c.kv_per_core,
    };
    let per_chip = template.leakage_per_cycle(c).get() * c.clock.get();
    crate::units::Watts::new(per_chip * r.design.max_chips as f64)
}

fn chips_label(chips: &std::ops::Range<u64>) -> String {
    if chips.end - chips.start <= 1 {
        format!("chip{}", chips.start)
    } else {
        format!("chip{}-{}", chips.start, chips.end - 1)
    }
}

/// One interval of a ring run's timeline.
#[derive(Clone, Copy, Debug)]
enum RingEvent {
    Layer {
        phase: PhaseKind,
        step: u64,
        context: u64,
        layer: usize,
        streamed: bool,
        start: Seconds,
        end: Seconds,
    },
    Link {
        phase: PhaseKind,
        step: u64,
        link: usize,
        start: Seconds,
        end: Seconds,
    },
    Pass {
        phase: PhaseKind,
        step: u64,
        start: Seconds,
        end: Seconds,
    },
}

/// Whether the report's prefill runs once per layer (the paper-era timing) rather than
/// token-pipelined.
fn batched_prefill(rep: &RingReport) -> bool {
    rep.timing == RingTiming::PaperEra
}

/// Cycles layer `i` occupies in one prefill pass: one prompt token's under the
/// token-pipelined prefill, its whole share of the TTFT under the paper-era timing.
fn prefill_span(rep: &RingReport, i: usize) -> f64 {
    let l = &rep.layers[i];
    if batched_prefill(rep) {
        l.prefill.cycles.get()
    } else {
        l.prefill_cycles_per_token.get()
    }
}

/// The schedule of a priced design: per-layer offsets (cycles) inside one prompt token's
/// pass and inside one decode step (stage after stage, a hop between stages).
struct Timeline<'a> {
    rep: &'a RingReport,
    wl: RingWorkload,
    clock: f64,
    hop: f64,
    pre_off: Vec<f64>,
    dec_off: Vec<f64>,
    /// (prefill, decode) offsets where each stage starts and ends.
    stage_pre: Vec<(f64, f64)>,
    stage_dec: Vec<(f64, f64)>,
}

impl<'a> Timeline<'a> {
    fn new(rep: &'a RingReport, wl: RingWorkload, clock: f64) -> Timeline<'a> {
        let hop = rep
            .links
            .iter()
            .find(|l| l.usage == LinkUse::Hop)
            .map_or(0.0, |l| l.cycles.get());
        let n = rep.layers.len();
        let (mut pre_off, mut dec_off) = (vec![0.0; n], vec![0.0; n]);
        let (mut stage_pre, mut stage_dec) = (Vec::new(), Vec::new());
        let (mut td, mut tp) = (0.0, 0.0);
        let batched = batched_prefill(rep);
        for (si, st) in rep.stages.iter().enumerate() {
            if si > 0 {
                td += hop;
                if !batched {
                    tp += hop;
                }
            }
            let (d0, p0) = (td, tp);
            for i in st.layers.clone() {
                dec_off[i] = td;
                pre_off[i] = tp;
                td += rep.layers[i].decode_step.cycles.get();
                tp += prefill_span(rep, i);
            }
            stage_pre.push((p0, tp));
            stage_dec.push((d0, td));
        }
        Timeline {
            rep,
            wl,
            clock,
            hop,
            pre_off,
            dec_off,
            stage_pre,
            stage_dec,
        }
    }

    fn s(&self, cycles: f64) -> Seconds {
        Seconds::new(cycles / self.clock)
    }

    /// Offsets (cycles) of link `li`'s traffic inside one pass: a hop follows the stage it
    /// leaves; tensor-parallel traffic runs inside its group's stage.
    fn link_span(&self, li: usize, phase: PhaseKind) -> (f64, f64) {
        let link = &self.rep.links[li];
        let stage = self
            .rep
            .stages
            .iter()
            .position(|s| s.chips.contains(&link.from_chip))
            .unwrap_or(0);
        let spans = match phase {
            PhaseKind::Prefill => &self.stage_pre,
            PhaseKind::Decode => &self.stage_dec,
        };
        let (s0, s1) = spans.get(stage).copied().unwrap_or((0.0, 0.0));
        match link.usage {
            LinkUse::Hop => (s1, s1 + link.cycles.get()),
            _ => (s0, s0 + link.cycles.get()),
        }
    }

    /// Every interval of the run: prompt token t's pass enters the pipeline at t x spacing
    /// (streamed layers run batched after it drains) or, under the paper-era timing, every
    /// layer takes its share of the TTFT once, chip after chip (the paper-era TTFT waits for
    /// no hop; the hops, priced once, follow each chip); decode step k starts at
    /// TTFT + (k-1) TPOT.
    /// Every event of the run; decode steps only those of `steps` (all when `None`).
    fn events(&self, steps: Option<u64>, f: &mut dyn FnMut(RingEvent)) {
        let rep = self.rep;
        let p = self.wl.prompt();
        let spacing = rep.prefill_spacing_cycles.get();
        let links: Vec<usize> = (0..rep.links.len())
            .filter(|&i| rep.links[i].usage != LinkUse::Idle)
            .collect();
        // one pass per prompt token, or one pass of whole shares (paper-era)
        let batched = batched_prefill(rep);
        let passes = if batched { 1 } else { p };
        for t in 0..passes {
            let base = t as f64 * spacing;
            for (i, l) in rep.layers.iter().enumerate() {
                let c = prefill_span(rep, i);
                if l.placement == Placement::Streamed || c <= 0.0 {
                    continue;
                }
                f(RingEvent::Layer {
                    phase: PhaseKind::Prefill,
                    step: 0,
                    context: p,
                    layer: i,
                    streamed: false,
                    start: self.s(base + self.pre_off[i]),
                    end: self.s(base + self.pre_off[i] + c),
                });
            }
            for &li in &links {
                let (a, b) = self.link_span(li, PhaseKind::Prefill);
                f(RingEvent::Link {
                    phase: PhaseKind::Prefill,
                    step: 0,
                    link: li,
                    start: self.s(base + a),
                    end: self.s(base + b),
                });
            }
        }
        let pipeline_end = if batched {
            (0..rep.layers.len()).map(|i| prefill_span(rep, i)).sum::<f64>()
        } else {
            rep.stages
                .iter()
                .map(|s| s.prefill_cycles_per_token.get())
                .sum::<f64>()
                + self.hop * rep.stages.len().saturating_sub(1) as f64
                + (p as f64 - 1.0) * spacing
        };
        let mut at = pipeline_end;
        for (i, l) in rep.layers.iter().enumerate() {
            if l.placement != Placement::Streamed {
                continue;
            }
            let c = l.prefill.cycles.get();
            f(RingEvent::Layer {
                phase: PhaseKind::Prefill,
                step: 0,
                context: p,
                layer: i,
                streamed: true,
                start: self.s(at),
                end: self.s(at + c),
            });
            at += c;
        }
        let ttft = rep.ttft_cycles.get();
        let step = rep.step_cycles.get();
        f(RingEvent::Pass {
            phase: PhaseKind::Prefill,
            step: 0,
            start: Seconds::ZERO,
            end: self.s(ttft),
        });
        for k in super::StepSample::new(self.wl.decode(), steps).iter() {
            let t0 = ttft + (k - 1) as f64 * step;
            for (i, l) in rep.layers.iter().enumerate() {
                f(RingEvent::Layer {
                    phase: PhaseKind::Decode,
                    step: k,
                    context: p + k,
                    layer: i,
                    streamed: l.placement == Placement::Streamed,
                    start: self.s(t0 + self.dec_off[i]),
                    end: self.s(t0 + self.dec_off[i] + l.decode_step.cycles.get()),
                });
            }
            for &li in &links {
                let (a, b) = self.link_span(li, PhaseKind::Decode);
                f(RingEvent::Link {
                    phase: PhaseKind::Decode,
                    step: k,
                    link: li,
                    start: self.s(t0 + a),
                    end: self.s(t0 + b),
                });
            }
            f(RingEvent::Pass {
                phase: PhaseKind::Decode,
                step: k,
                start: self.s(t0),
                end: self.s(t0 + step),
            });
        }
    }
}

/// The chips and links of a priced design, named for outputs: `chip 0` ..., and
/// `link 0->1 (hop)` per link of the ring (idle links included).
fn topology(rep: &RingReport) -> Topology {
    Topology {
        chips: (0..rep.n_chips()).map(|c| format!("chip {c}")).collect(),
        links: rep
            .links
            .iter()
            .map(|l| format!("link {}->{} ({:?})", l.from_chip, l.to_chip, l.usage).to_lowercase())
            .collect(),
    }
}

/// The chosen ring hardware as text lines (for `llmforge sim`'s table).
pub fn hardware_table(h: &RingHardware) -> String {
    let grid = match h.grid_point {
        Some(p) => format!("co-search point {p} of {}", h.grid_points),
        None => "the file's design".to_string(),
    };
    format!(
        "\n  ring hardware ({grid}):\n  chips {} of at most {}, {} cores/chip, {} MACs/VAC, WMEM {:.0} KiB/core, KV {:.0} KiB/core\n  chip {:.3} mm^2, total {:.3} mm^2, power {:.4} W, {}\n",
        h.chips,
        h.max_chips,
        h.cores_per_chip,
        h.macs_per_vac,
        h.wmem_per_core_bytes / 1024.0,
        h.kv_per_core_bytes / 1024.0,
        h.chip_area_mm2,
        h.area_mm2,
        h.power_w,
        if h.feasible {
            "within the envelope".to_string()
        } else {
            format!("INFEASIBLE (envelope violation {:.3})", h.violation)
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    /// The blocks of a search's cache (and of [`RingModel::new`]'s process-wide one) are the
    /// ones a fresh preparation makes, on a miss and on a hit, for dense, attention-free, MoE (shared experts and gate) and
    /// parallel-residual models, under both timings and with the LM head.
    #[test]
    fn cached_preparation_is_the_fresh_one() {
        let cache = BlockCache::default();
        for users in [1, 3] {
            let w = RingWorkload::new(64, 16, users).unwrap();
            for name in [
                "smollm2-135m",
                "llmforge-eco-294m",
                "qwen1.5-moe-a2.7b",
                "pythia-160m",
            ] {
                let m = model::preset(name).unwrap();
                for options in [RingOptions::corrected(), RingOptions::extended()] {
                    let fresh = prepare(&m, &w, &options, None).unwrap();
                    for _ in 0..2 {
                        assert_eq!(prepare(&m, &w, &options, Some(&cache)).unwrap(), fresh, "{name}");
                        // the process-wide cache, whatever other tests left in it
                        assert_eq!(RingModel::new(&m, &w, &options).unwrap(), fresh, "{name}");
                    }
                }
            }
        }
    }

    /// Blocks lowered for one batch are refused for a workload of another.
    #[test]
    fn blocks_of_another_batch_are_refused() {
        let m = model::preset("smollm2-135m").unwrap();
        let phase = graph::Phase::Decode { context: 9, batch: 2 };
        let (block, ends) = lower_block(&m, &m.layers[0], phase);
        let w = RingWorkload::new(8, 8, 3).unwrap();
        let err = RingModel::from_blocks(
            "m",
            &[block],
            &[0, 0],
            &ends.unwrap(),
            &w,
            &RingOptions::corrected(),
        );
        assert!(
            matches!(err, Err(RingError::InvalidWorkload { field: "users", .. })),
            "{err:?}"
        );
    }
}
