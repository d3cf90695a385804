//! Validation against measured inference results, and calibration.
//!
//! A trace file ([`traces`], format in `traces/README.md`) lists published measurements. Each
//! row is mapped ([`mapping`]) to a substrate, a model preset with the row's weight format,
//! a workload and a metric, or reported unmappable with its reason; mapped rows are predicted
//! with the cost engine ([`predict`]) and compared ([`stats`]): per row, and per group
//! (device, stack, metric) the MAPE, median and worst error. [`calibrate`] fits a substrate's
//! efficiencies to measurements and measures how well a fit carries over to held-out devices
//! and models; [`overlay`] stores a fit per stack without copying the chip description.
//! `crate::trace::plot::scatter_svg` draws predicted against measured.
//!
//! Architecture invariant: every predicted number comes from [`crate::sim`]; nothing here
//! computes a roofline of its own.

pub mod calibrate;
pub mod energy;
pub mod gate;
pub mod kernels;
pub mod mapping;
pub mod overlay;
pub mod predict;
pub mod stats;
pub mod traces;

use calibrate::{HoldOut, Point};
use mapping::{Case, Maps, ReasonKind, Unmappable};
use overlay::Overlay;
use predict::{Engine, Prediction};
use rayon::prelude::*;
use serde::Serialize;
use stats::{ErrorStats, Group};
use std::collections::{BTreeMap, HashMap};
use traces::{TraceRow, Traces};

use crate::model::Model;
use crate::substrate::Substrate;

/// Errors of validation and calibration (file problems are reported, located, by the
/// readers as [`crate::yaml::DescErrors`]).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ValidateError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    File(#[from] crate::yaml::DescErrors),
    #[error("substrate `{name}`: {message}")]
    Substrate { name: String, message: String },
    #[error("no mappable row of `{file}` runs on substrate `{substrate}`{stack}")]
    NothingToFit {
        file: String,
        substrate: String,
        stack: String,
    },
    /// Occurs when a `--max-mape` limit is not `[SCOPE=]PERCENT` or names no group of the
    /// report.
    #[error("--max-mape `{spec}`: {message}")]
    #[diagnostic(help("{help}"))]
    Limit {
        spec: String,
        message: String,
        help: String,
    },
}

/// Models and substrates loaded once per name (and per stack, for overlays).
pub struct Library {
    models: BTreeMap<String, Result<Model, String>>,
    substrates: BTreeMap<(String, String, String), Result<Substrate, String>>,
    overlays: Vec<Overlay>,
}

impl Library {
    pub fn new(overlays: Vec<Overlay>) -> Library {
        Library {
            models: BTreeMap::new(),
            substrates: BTreeMap::new(),
            overlays,
        }
    }

    /// Loads everything the cases need (load problems become unmappable reasons).
    fn prepare(&mut self, cases: &[&Case]) {
        for c in cases {
            self.models.entry(c.preset.clone()).or_insert_with(|| {
                crate::model::load(&c.preset).map_err(|e| format!("model `{}`: {e}", c.preset))
            });
            let key = substrate_key(c);
            if !self.substrates.contains_key(&key) {
                // The hardware map's overrides, then the overlay's (which win on a shared path).
                let mut overrides: Vec<crate::substrate::Override> = c
                    .set
                    .iter()
                    .map(|(path, expr)| crate::substrate::Override {
                        path: path.clone(),
                        expr: expr.clone(),
                    })
                    .collect();
                if let Some(o) = self
                    .overlays
                    .iter()
                    .rev()
                    .find(|o| o.applies(&c.substrate, &c.family, &c.stack))
                {
                    overrides.retain(|x| o.overrides.iter().all(|y| y.path != x.path));
                    overrides.extend(o.overrides.iter().cloned());
                }
                let s = crate::substrate::load(&c.substrate, &overrides)
                    .map_err(|e| format!("substrate `{}`: {e}", c.substrate));
                self.substrates.insert(key, s);
            }
        }
    }

    /// The case's model with its formats applied, one shared copy per (preset, formats):
    /// a trace of a million rows of a few models holds a few models.
    fn formatted(
        &self,
        c: &Case,
        cache: &mut HashMap<(String, String), std::sync::Arc<Model>>,
    ) -> Result<std::sync::Arc<Model>, Unmappable> {
        let key = (c.preset.clone(), format!("{:?}", c.formats));
        if let Some(m) = cache.get(&key) {
            return Ok(m.clone());
        }
        let m = std::sync::Arc::new(predict::with_formats(self.model(c)?, c));
        cache.insert(key, m.clone());
        Ok(m)
    }

    fn model(&self, c: &Case) -> Result<&Model, Unmappable> {
        match self.models.get(&c.preset) {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(Unmappable {
                kind: ReasonKind::Load,
                reason: e.clone(),
            }),
            None => Err(Unmappable {
                kind: ReasonKind::Load,
                reason: format!("model `{}` not loaded", c.preset),
            }),
        }
    }

    fn substrate(&self, c: &Case) -> Result<&Substrate, Unmappable> {
        match self.substrates.get(&substrate_key(c)) {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(Unmappable {
                kind: ReasonKind::Load,
                reason: e.clone(),
            }),
            None => Err(Unmappable {
                kind: ReasonKind::Load,
                reason: format!("substrate `{}` not loaded", c.substrate),
            }),
        }
    }
}

fn substrate_key(c: &Case) -> (String, String, String) {
    let set: Vec<String> = c.set.iter().map(|(p, e)| format!("{p}={e}")).collect();
    (c.substrate.clone(), c.stack.clone(), set.join(";"))
}

/// One predicted row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RowResult {
    pub line: u64,
    pub hardware: String,
    pub software: String,
    pub model: String,
    pub metric: String,
    pub unit: String,
    /// Measured value, in the row's unit.
    pub measured: f64,
    /// Predicted value, in the row's unit.
    pub predicted: f64,
    /// Signed relative error in percent.
    pub error_pct: f64,
    pub substrate: String,
    pub devices: u64,
    pub family: String,
    pub stack: String,
    pub preset: String,
    pub weights: String,
    pub batch: u64,
    pub prompt: u64,
    pub generate: u64,
    /// `decode`, `prefill`, `e2e` or `energy`.
    pub phase: &'static str,
    pub prediction: Prediction,
    pub source: String,
    pub assumptions: Vec<String>,
    /// Why the row is kept out of the statistics and of calibration fits (an anomaly the
    /// source's curator marked, or a measurement beyond the ideal bound); `None` for most.
    pub excluded: Option<String>,
}

/// A row that could not be predicted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnmappedRow {
    pub line: u64,
    pub hardware: String,
    pub model: String,
    pub metric: String,
    pub kind: ReasonKind,
    pub reason: String,
}

/// Rows sharing one unmappable reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReasonCount {
    pub kind: ReasonKind,
    pub reason: String,
    pub count: usize,
    /// Their lines, compressed into ranges.
    pub lines: String,
}

/// Uncalibrated and calibrated statistics over the same rows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compare {
    pub key: Vec<String>,
    pub uncalibrated: ErrorStats,
    pub calibrated: ErrorStats,
}

/// A held-out calibrated prediction of one row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeldRow {
    pub line: u64,
    pub predicted: f64,
    pub error_pct: f64,
    pub uncalibrated_error_pct: f64,
    /// `stated`: predicted with the device's stated efficiencies, because its family has
    /// fewer than [`calibrate::MIN_FIT_DEVICES`] other devices to fit on.
    pub basis: calibrate::Basis,
    /// The fit it was predicted with (`None` when `basis` is `stated`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<calibrate::Fit>,
    /// Power and energy rows: the fitted energy scales ([`energy`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy: Option<energy::EnergyFit>,
}

/// Results of one hold-out scheme.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HoldoutReport {
    pub by: HoldOut,
    pub rows: Vec<HeldRow>,
    /// Rows with no held-out prediction, and why.
    pub not_predicted: Vec<(u64, String)>,
    /// Rows predicted from their device's stated efficiencies (in `rows`, basis `stated`),
    /// and why.
    pub stated: Vec<(u64, String)>,
    /// By phase class (`decode batch 1`, `prefill batch 1`, `prefill`, ...).
    pub by_phase: Vec<Compare>,
    pub by_family: Vec<Compare>,
    pub by_model: Vec<Compare>,
    pub by_device: Vec<Compare>,
}

/// Row counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub rows: usize,
    /// Rows predicted (including the excluded ones).
    pub mapped: usize,
    /// Predicted rows kept out of the statistics and fits, each with its reason.
    pub excluded: usize,
    pub unmapped: usize,
}

/// The whole validation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub file: String,
    pub engine: &'static str,
    pub counts: Counts,
    /// Every predicted row kept in the statistics (`None` when there is none).
    pub overall: Option<ErrorStats>,
    /// Per (device, stack, metric).
    pub groups: Vec<Group>,
    /// Per metric.
    pub by_metric: Vec<Group>,
    /// Per phase class.
    pub by_phase: Vec<Group>,
    pub reasons: Vec<ReasonCount>,
    /// Excluded rows by reason.
    pub exclusions: Vec<ReasonCount>,
    pub holdout: Vec<HoldoutReport>,
    pub rows: Vec<RowResult>,
    pub unmapped: Vec<UnmappedRow>,
}

/// Validation options.
#[derive(Clone, Debug)]
pub struct Options {
    pub engine: Engine,
    /// Hold-out calibration schemes to evaluate (none: uncalibrated only).
    pub holdout: Vec<HoldOut>,
    /// Told (fits done, fits) during each hold-out scheme.
    pub progress: crate::progress::Tick,
}

/// The phase class of a row for summaries: decode and prefill at batch 1 (one stream, the
/// edge case) are classes of their own.
pub fn phase_class(case: &Case) -> String {
    let p = case.target.phase();
    if (p == "decode" || p == "prefill") && case.batch == 1 {
        format!("{p} batch 1")
    } else {
        p.to_string()
    }
}

/// Maps every row; returns the cases (with their row index) and the unmappable rows.
pub fn map_rows(traces: &Traces, maps: &Maps) -> (Vec<(usize, Case)>, Vec<UnmappedRow>) {
    let mut cases = Vec::new();
    let mut unmapped = Vec::new();
    for (i, row) in traces.rows.iter().enumerate() {
        match mapping::map_row(row, maps) {
            Ok(c) => cases.push((i, c)),
            Err(u) => unmapped.push(unmapped_row(row, u)),
        }
    }
    (cases, unmapped)
}

fn unmapped_row(row: &TraceRow, u: Unmappable) -> UnmappedRow {
    UnmappedRow {
        line: row.line,
        hardware: row.hardware.clone(),
        model: row.model.clone(),
        metric: row.metric.clone(),
        kind: u.kind,
        reason: u.reason,
    }
}

/// A key identifying a prediction: cases with equal keys have equal predictions.
fn prediction_key(c: &Case) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}|{}|{}|{}|{:?}|{:?}|{}|{}|{}|{:?}|{}",
        c.preset,
        c.set,
        c.pipeline,
        c.formats,
        c.substrate,
        c.stack,
        c.devices,
        c.link_bw,
        c.link_latency,
        c.batch,
        c.prompt,
        c.generate,
        c.target,
        c.multi.name()
    )
}

/// Validates every row of `traces`.
pub fn validate(traces: &Traces, maps: &Maps, lib: &mut Library, opts: &Options) -> Report {
    let (cases, mut unmapped) = map_rows(traces, maps);
    lib.prepare(&cases.iter().map(|(_, c)| c).collect::<Vec<_>>());
    // Load problems make rows unmappable too.
    let mut ready: Vec<(usize, &Case, std::sync::Arc<Model>)> = Vec::new();
    let mut models = HashMap::new();
    for (i, c) in &cases {
        match lib.substrate(c).and_then(|_| lib.formatted(c, &mut models)) {
            Ok(m) => ready.push((*i, c, m)),
            Err(u) => unmapped.push(unmapped_row(&traces.rows[*i], u)),
        }
    }
    // Predict each distinct case once.
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut distinct: Vec<usize> = Vec::new();
    let keys: Vec<String> = ready.iter().map(|(_, c, _)| prediction_key(c)).collect();
    for (k, key) in keys.iter().enumerate() {
        if !first.contains_key(key) {
            first.insert(key.clone(), k);
            distinct.push(k);
        }
    }
    let lib_ref: &Library = lib;
    let predicted: Vec<Prediction> = distinct
        .par_iter()
        .map(|&k| {
            let (_, c, m) = &ready[k];
            match lib_ref.substrate(c) {
                Ok(s) => predict::predict(c, m, s, opts.engine),
                Err(_) => Prediction::default(),
            }
        })
        .collect();
    // The roofline at the ideal bound (full peak and bandwidth, no overheads), whatever the
    // engine, so that both engines are judged on the same rows.
    let ideal: Vec<Prediction> = distinct
        .par_iter()
        .map(|&k| {
            let (_, c, m) = &ready[k];
            match lib_ref.substrate(c) {
                Ok(s) => predict::predict(c, m, &calibrate::with_efficiency(s, IDEAL), Engine::Roofline),
                Err(_) => Prediction::default(),
            }
        })
        .collect();
    let by_key: HashMap<&str, (&Prediction, &Prediction)> = distinct
        .iter()
        .zip(predicted.iter().zip(&ideal))
        .map(|(&k, p)| (keys[k].as_str(), p))
        .collect();
    let mut rows = Vec::with_capacity(ready.len());
    for (k, (i, c, _)) in ready.iter().enumerate() {
        let row = &traces.rows[*i];
        let (p, best) = by_key
            .get(keys[k].as_str())
            .map(|(p, b)| (**p, **b))
            .unwrap_or_default();
        let excluded = exclusion(row, c, best.value);
        rows.push(RowResult {
            line: row.line,
            hardware: row.hardware.clone(),
            software: row.software.clone(),
            model: row.model.clone(),
            metric: row.metric.clone(),
            unit: row.unit.clone(),
            measured: row.value,
            predicted: p.value / c.unit_factor,
            error_pct: stats::rel_error(p.value, c.measured) * 100.0,
            substrate: c.substrate.clone(),
            devices: c.devices,
            family: c.family.clone(),
            stack: c.stack.clone(),
            preset: c.preset.clone(),
            weights: c.formats.weights.to_string(),
            batch: c.batch,
            prompt: c.prompt,
            generate: c.generate,
            phase: c.target.phase(),
            prediction: p,
            source: row.source.clone(),
            assumptions: c.assumptions.clone(),
            excluded,
        });
    }
    let classes: Vec<String> = ready.iter().map(|(_, c, _)| phase_class(c)).collect();
    let err = |r: &RowResult| r.error_pct / 100.0;
    let counted = || rows.iter().zip(&classes).filter(|(r, _)| r.excluded.is_none());
    let groups = stats::group(counted().map(|(r, _)| {
        (
            vec![r.hardware.clone(), r.software.clone(), r.metric.clone()],
            r.line,
            err(r),
        )
    }));
    let by_metric = stats::group(counted().map(|(r, _)| (vec![r.metric.clone()], r.line, err(r))));
    let by_phase = stats::group(counted().map(|(r, cl)| (vec![cl.clone()], r.line, err(r))));
    let overall = ErrorStats::of(&counted().map(|(r, _)| (r.line, err(r))).collect::<Vec<_>>());
    // Hold-out calibration.
    let mut holdout = Vec::new();
    if !opts.holdout.is_empty() {
        let points: Vec<Point> = ready
            .iter()
            .filter_map(|(i, c, m)| {
                lib_ref.substrate(c).ok().map(|s| Point {
                    line: traces.rows[*i].line,
                    case: c,
                    model: m,
                    substrate: s,
                })
            })
            .collect();
        let fit_ok: Vec<bool> = points
            .iter()
            .zip(&rows)
            .map(|(p, r)| p.case.target.is_timing() && r.excluded.is_none())
            .collect();
        for &by in &opts.holdout {
            let held = calibrate::holdout(&points, &fit_ok, by, opts.engine, &opts.progress);
            holdout.push(holdout_report(by, &held, &points, &rows, &classes));
        }
    }
    unmapped.sort_by_key(|u| u.line);
    let reasons = reason_counts(unmapped.iter().map(|u| (u.kind, u.reason.clone(), u.line)));
    let exclusions = reason_counts(rows.iter().filter_map(|r| {
        r.excluded
            .as_ref()
            .map(|e| (ReasonKind::Workload, e.clone(), r.line))
    }));
    let excluded = rows.iter().filter(|r| r.excluded.is_some()).count();
    Report {
        file: traces.file.clone(),
        engine: opts.engine.name(),
        counts: Counts {
            rows: traces.rows.len(),
            mapped: rows.len(),
            excluded,
            unmapped: unmapped.len(),
        },
        overall,
        groups,
        by_metric,
        by_phase,
        reasons,
        exclusions,
        holdout,
        rows,
        unmapped,
    }
}

/// Efficiencies of the ideal bound: full peak and bandwidth, no overheads.
const IDEAL: crate::substrate::Efficiency = crate::substrate::Efficiency {
    compute: 1.0,
    memory: 1.0,
    kernel_overhead: crate::units::Seconds::ZERO,
    token_overhead: crate::units::Seconds::ZERO,
    quantised_compute: 1.0,
    score_bytes: crate::units::Bytes::ZERO,
};

/// How far beyond the ideal bound a measurement may be before it is taken for an anomaly.
pub const BEYOND_IDEAL: f64 = 2.0;

/// Why a predicted row is kept out of the statistics: the source's curator marked it an
/// anomaly (`FLAG` in the note), or it is more than [`BEYOND_IDEAL`] times faster than the
/// roofline's ideal bound (every kernel at full peak and bandwidth, no overheads) allows,
/// whichever engine predicts the rows.
fn exclusion(row: &TraceRow, c: &Case, ideal: f64) -> Option<String> {
    if let Some(i) = row.note.find("FLAG") {
        let text: String = row.note[i..].chars().take(120).collect();
        return Some(format!("marked an anomaly in the source data: {text}"));
    }
    if !(ideal.is_finite() && ideal > 0.0 && c.target.is_timing()) {
        return None;
    }
    let rate = matches!(
        c.target,
        mapping::Target::DecodeRate
            | mapping::Target::PrefillRate
            | mapping::Target::OutputThroughput
            | mapping::Target::OutputThroughputPerDevice
    );
    let beyond = if rate {
        c.measured / ideal
    } else {
        ideal / c.measured
    };
    (beyond > BEYOND_IDEAL).then(|| {
        format!(
            "more than {BEYOND_IDEAL}x faster than the ideal bound (full peak and bandwidth, no overheads)"
        )
    })
}

pub(crate) fn reason_counts(items: impl Iterator<Item = (ReasonKind, String, u64)>) -> Vec<ReasonCount> {
    let mut by: BTreeMap<(ReasonKind, String), Vec<u64>> = BTreeMap::new();
    for (k, r, line) in items {
        by.entry((k, r)).or_default().push(line);
    }
    let mut out: Vec<ReasonCount> = by
        .into_iter()
        .map(|((kind, reason), lines)| ReasonCount {
            kind,
            reason,
            count: lines.len(),
            lines: stats::line_ranges(&lines),
        })
        .collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.kind.cmp(&b.kind))
            .then(a.reason.cmp(&b.reason))
    });
    out
}

fn holdout_report(
    by: HoldOut,
    held: &[calibrate::HeldOut],
    points: &[Point],
    rows: &[RowResult],
    classes: &[String],
) -> HoldoutReport {
    let mut out_rows = Vec::new();
    let mut not_predicted = Vec::new();
    let mut stated = Vec::new();
    // (key, line, uncalibrated error, calibrated error)
    let mut items: Vec<(usize, f64, f64)> = Vec::new();
    for h in held {
        let p = &points[h.index];
        let r = &rows[h.index];
        // A prediction comes with its fit, or from stated efficiencies (`basis`).
        match h.predicted {
            _ if r.excluded.is_some() => {}
            Some(v) if v.is_finite() && v > 0.0 => {
                let e = stats::rel_error(v, p.case.measured);
                out_rows.push(HeldRow {
                    line: p.line,
                    predicted: v / p.case.unit_factor,
                    error_pct: e * 100.0,
                    uncalibrated_error_pct: r.error_pct,
                    basis: h.basis,
                    fit: h.fit,
                    energy: h.energy,
                });
                items.push((h.index, r.error_pct / 100.0, e));
                if h.basis == calibrate::Basis::Stated {
                    stated.push((p.line, h.why.clone().unwrap_or_default()));
                }
            }
            _ => not_predicted.push((
                p.line,
                h.why
                    .clone()
                    .unwrap_or_else(|| "the fit gave no finite prediction".into()),
            )),
        }
    }
    let compare = |key: &dyn Fn(usize) -> Vec<String>| compare_groups(&items, &|i| rows[i].line, key);
    HoldoutReport {
        by,
        by_phase: compare(&|i| vec![classes[i].clone()]),
        by_family: compare(&|i| vec![classes[i].clone(), rows[i].family.clone(), rows[i].stack.clone()]),
        by_model: compare(&|i| vec![classes[i].clone(), rows[i].preset.clone(), rows[i].stack.clone()]),
        by_device: compare(&|i| {
            vec![
                classes[i].clone(),
                rows[i].substrate.clone(),
                rows[i].stack.clone(),
            ]
        }),
        rows: out_rows,
        not_predicted,
        stated,
    }
}

/// Points for fitting: the mapped rows with a timing metric that `keep` accepts.
pub fn points_where<'a>(
    traces: &Traces,
    ready: &'a [Ready],
    lib: &'a Library,
    keep: impl Fn(&Case) -> bool,
) -> Vec<Point<'a>> {
    points_of(traces, ready, lib, |c| c.target.is_timing() && keep(c))
}

/// Points of the mapped rows that `keep` accepts, whatever their metric (power and energy
/// rows included).
pub fn points_of<'a>(
    traces: &Traces,
    ready: &'a [Ready],
    lib: &'a Library,
    keep: impl Fn(&Case) -> bool,
) -> Vec<Point<'a>> {
    ready
        .iter()
        .filter(|(_, c, _)| keep(c))
        .filter_map(|(i, c, m)| {
            lib.substrate(c).ok().map(|s| Point {
                line: traces.rows[*i].line,
                case: c,
                model: m,
                substrate: s,
            })
        })
        .collect()
}

/// A mapped case with its row index and its model (formats applied, shared between the
/// cases of one preset and formats).
pub type Ready = (usize, Case, std::sync::Arc<Model>);

/// Mapped cases with their models loaded (formats applied), for calibration; rows
/// [`validate`] would exclude from statistics (source anomalies, beyond the ideal bound)
/// are left out and returned apart with their reasons.
pub fn ready_cases(traces: &Traces, maps: &Maps, lib: &mut Library) -> (Vec<Ready>, Vec<(u64, String)>) {
    let (cases, _) = map_rows(traces, maps);
    lib.prepare(&cases.iter().map(|(_, c)| c).collect::<Vec<_>>());
    let lib: &Library = lib;
    let mut models = HashMap::new();
    let loaded: Vec<Ready> = cases
        .into_iter()
        .filter_map(|(i, c)| {
            lib.substrate(&c).ok()?;
            let m = lib.formatted(&c, &mut models).ok()?;
            Some((i, c, m))
        })
        .collect();
    let why: Vec<Option<String>> = loaded
        .par_iter()
        .map(|(i, c, m)| {
            let ideal = lib
                .substrate(c)
                .map(|s| {
                    predict::predict(c, m, &calibrate::with_efficiency(s, IDEAL), Engine::Roofline).value
                })
                .unwrap_or(f64::NAN);
            exclusion(&traces.rows[*i], c, ideal)
        })
        .collect();
    let mut kept = Vec::new();
    let mut excluded = Vec::new();
    for (x, w) in loaded.into_iter().zip(why) {
        match w {
            Some(reason) => excluded.push((traces.rows[x.0].line, reason)),
            None => kept.push(x),
        }
    }
    (kept, excluded)
}

/// Uncalibrated against calibrated errors of `items` (index, uncalibrated, calibrated
/// relative error) grouped by `key`; `line` gives an item's source line.
pub(crate) fn compare_groups(
    items: &[(usize, f64, f64)],
    line: &dyn Fn(usize) -> u64,
    key: &dyn Fn(usize) -> Vec<String>,
) -> Vec<Compare> {
    type Errors = Vec<(u64, f64)>;
    let mut m: BTreeMap<Vec<String>, (Errors, Errors)> = BTreeMap::new();
    for &(i, u, c) in items {
        let e = m.entry(key(i)).or_default();
        e.0.push((line(i), u));
        e.1.push((line(i), c));
    }
    m.into_iter()
        .filter_map(|(key, (u, c))| {
            Some(Compare {
                key,
                uncalibrated: ErrorStats::of(&u)?,
                calibrated: ErrorStats::of(&c)?,
            })
        })
        .collect()
}
