//! A baseline snapshot against a new record: what moved, and whether it is within tolerance.

use super::cases::{Case, Cases, Tolerance};
use super::metrics::{METRICS, TOP_OP_SHARE};
use super::record::{Record, Snapshot, TopOp};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One side of a row.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Number(f64),
    Text(String),
    /// Not recorded on this side (a metric of another llmforge version).
    Absent,
}

/// One thing that moved in one case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub case: String,
    /// A metric (`ttft_s`), a definition field (`engine`, `workload`, `precision`, ...),
    /// `fits_memory`, or a top op (`decode op ffn_down share`, `prefill op lm_head bound`).
    pub metric: String,
    /// The unit of numeric cells (`s`, `J`, `B`, `tokens/s`; empty for fractions and text).
    pub unit: &'static str,
    pub old: Cell,
    pub new: Cell,
    /// `(new - old) / |old|`, for numbers with a non-zero old value.
    pub change: Option<f64>,
    /// `None`: compared exactly.
    #[serde(serialize_with = "tolerance_json")]
    pub tolerance: Option<Tolerance>,
    /// Outside its tolerance: `check` fails.
    pub outside: bool,
}

fn tolerance_json<S: serde::Serializer>(t: &Option<Tolerance>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct T {
        rel: f64,
        abs: f64,
    }
    match t {
        Some(t) => T {
            rel: t.rel,
            abs: t.abs,
        }
        .serialize(s),
        None => s.serialize_str("exact"),
    }
}

/// An input whose content hash differs between the baseline and now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputChange {
    /// `cases file`, `model <name>`, `substrate <name>`.
    pub input: String,
    /// `None`: not an input on that side.
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Everything `snapshot check` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The llmforge that recorded the baseline, and this one.
    pub baseline_version: String,
    pub version: String,
    /// Cases in both.
    pub compared: usize,
    /// Of those, cases with at least one row.
    pub moved: usize,
    pub changed_inputs: Vec<InputChange>,
    /// In the cases file but not in the baseline.
    pub new_cases: Vec<String>,
    /// In the baseline but no longer in the cases file.
    pub removed_cases: Vec<String>,
    pub rows: Vec<Row>,
}

impl Report {
    /// Rows outside their tolerance.
    pub fn outside(&self) -> usize {
        self.rows.iter().filter(|r| r.outside).count()
    }

    /// Whether `check` passes: nothing outside tolerance, and no case added or removed
    /// unless the baseline is being updated.
    pub fn passes(&self, update: bool) -> bool {
        self.outside() == 0 && (update || (self.new_cases.is_empty() && self.removed_cases.is_empty()))
    }
}

/// Compares `current` (recorded from `cases`) against `baseline` under the cases'
/// tolerances. Numbers are compared as recorded (rounded); equal values give no row.
pub fn compare(cases: &Cases, baseline: &Snapshot, current: &Snapshot) -> Report {
    let by_name: HashMap<&str, &Case> = cases.cases.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut rows = Vec::new();
    let mut compared = 0;
    let mut moved = 0;
    for (name, new) in &current.cases {
        let Some(old) = baseline.cases.get(name) else {
            continue;
        };
        compared += 1;
        let before = rows.len();
        let tolerances = by_name.get(name.as_str()).map(|c| &c.tolerances);
        let tol = |metric: &str| tolerances.and_then(|t| t.get(metric));
        compare_case(name, old, new, &tol, &mut rows);
        if rows.len() > before {
            moved += 1;
        }
    }
    Report {
        baseline_version: baseline.version.clone(),
        version: current.version.clone(),
        compared,
        moved,
        changed_inputs: changed_inputs(baseline, current),
        new_cases: current
            .cases
            .keys()
            .filter(|k| !baseline.cases.contains_key(*k))
            .cloned()
            .collect(),
        removed_cases: baseline
            .cases
            .keys()
            .filter(|k| !current.cases.contains_key(*k))
            .cloned()
            .collect(),
        rows,
    }
}

fn changed_inputs(baseline: &Snapshot, current: &Snapshot) -> Vec<InputChange> {
    let mut out = Vec::new();
    if baseline.inputs.cases != current.inputs.cases {
        out.push(InputChange {
            input: "cases file".into(),
            old: Some(baseline.inputs.cases.clone()),
            new: Some(current.inputs.cases.clone()),
        });
    }
    for (kind, old, new) in [
        ("model", &baseline.inputs.models, &current.inputs.models),
        (
            "substrate",
            &baseline.inputs.substrates,
            &current.inputs.substrates,
        ),
    ] {
        let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for k in keys {
            let (o, n) = (old.get(k), new.get(k));
            if o != n {
                out.push(InputChange {
                    input: format!("{kind} {k}"),
                    old: o.cloned(),
                    new: n.cloned(),
                });
            }
        }
    }
    out
}

fn compare_case(
    name: &str,
    old: &Record,
    new: &Record,
    tol: &dyn Fn(&str) -> Option<Tolerance>,
    rows: &mut Vec<Row>,
) {
    let mut text = |metric: &str, o: String, n: String| {
        if o != n {
            rows.push(Row {
                case: name.to_string(),
                metric: metric.to_string(),
                unit: "",
                old: Cell::Text(o),
                new: Cell::Text(n),
                change: None,
                tolerance: None,
                outside: true,
            });
        }
    };
    let set = |r: &Record| {
        if r.set.is_empty() {
            "none".to_string()
        } else {
            r.set
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let workload = |r: &Record| format!("P={} D={} batch={}", r.prompt, r.generate, r.batch);
    text("model", old.model.clone(), new.model.clone());
    text("substrate", old.substrate.clone(), new.substrate.clone());
    text("set", set(old), set(new));
    text("engine", old.engine.clone(), new.engine.clone());
    text("workload", workload(old), workload(new));
    text("precision", old.precision.to_string(), new.precision.to_string());
    text(
        "fits_memory",
        old.fits_memory.to_string(),
        new.fits_memory.to_string(),
    );

    // metrics: the known ones in report order, then any other either side has
    let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
    let others: BTreeSet<&str> = old
        .metrics
        .keys()
        .chain(new.metrics.keys())
        .map(String::as_str)
        .filter(|k| !names.contains(k))
        .collect();
    names.extend(others);
    for metric in names {
        let unit = METRICS.iter().find(|m| m.name == metric).map_or("", |m| m.unit);
        match (old.metrics.get(metric), new.metrics.get(metric)) {
            (None, None) => {}
            (Some(&o), Some(&n)) => {
                if let Some(row) = number_row(name, metric, unit, o, n, tol(metric)) {
                    rows.push(row);
                }
            }
            (o, n) => rows.push(Row {
                case: name.to_string(),
                metric: metric.to_string(),
                unit,
                old: o.map_or(Cell::Absent, |&x| Cell::Number(x)),
                new: n.map_or(Cell::Absent, |&x| Cell::Number(x)),
                change: None,
                tolerance: None,
                outside: true,
            }),
        }
    }

    let share_tol = tol(TOP_OP_SHARE.name).unwrap_or(Tolerance {
        rel: TOP_OP_SHARE.rel,
        abs: TOP_OP_SHARE.abs,
    });
    for (phase, o, n) in [
        ("prefill", &old.top_ops.prefill, &new.top_ops.prefill),
        ("decode", &old.top_ops.decode, &new.top_ops.decode),
    ] {
        top_ops_rows(name, phase, o, n, share_tol, rows);
    }
}

fn number_row(
    case: &str,
    metric: &str,
    unit: &'static str,
    old: f64,
    new: f64,
    tol: Option<Tolerance>,
) -> Option<Row> {
    if old == new || (old.is_nan() && new.is_nan()) {
        return None;
    }
    let within = match tol {
        Some(t) => t.admits(old, new),
        None => false,
    };
    Some(Row {
        case: case.to_string(),
        metric: metric.to_string(),
        unit,
        old: Cell::Number(old),
        new: Cell::Number(new),
        change: (old != 0.0 && old.is_finite() && new.is_finite()).then(|| (new - old) / old.abs()),
        tolerance: tol,
        outside: !within,
    })
}

/// Top ops: the same op's bound (exactly) and share (within `tol`); an op that entered or
/// left the list is outside only when its share provably moved by more than `tol` (an op not
/// listed has at most the share of the last one listed).
fn top_ops_rows(case: &str, phase: &str, old: &[TopOp], new: &[TopOp], tol: Tolerance, rows: &mut Vec<Row>) {
    let index = |v: &[TopOp]| -> BTreeMap<String, (String, f64)> {
        v.iter()
            .map(|o| (o.op.clone(), (o.bound.clone(), o.share)))
            .collect()
    };
    let (oi, ni) = (index(old), index(new));
    let last = |v: &[TopOp]| v.last().map_or(0.0, |o| o.share);
    let (old_bound, new_bound) = (last(old), last(new));
    // in the order of the new list, then ops that left
    let order: Vec<&String> = new
        .iter()
        .map(|o| &o.op)
        .chain(old.iter().map(|o| &o.op).filter(|op| !ni.contains_key(*op)))
        .collect();
    for op in order {
        let share_metric = format!("{phase} op {op} share");
        match (oi.get(op), ni.get(op)) {
            (Some((ob, os)), Some((nb, ns))) => {
                if ob != nb {
                    rows.push(Row {
                        case: case.to_string(),
                        metric: format!("{phase} op {op} bound"),
                        unit: "",
                        old: Cell::Text(ob.clone()),
                        new: Cell::Text(nb.clone()),
                        change: None,
                        tolerance: None,
                        outside: true,
                    });
                }
                if let Some(row) = number_row(case, &share_metric, "", *os, *ns, Some(tol)) {
                    rows.push(row);
                }
            }
            (Some((_, os)), None) => rows.push(Row {
                case: case.to_string(),
                metric: share_metric,
                unit: "",
                old: Cell::Number(*os),
                new: Cell::Text(format!("not in top {}", new.len())),
                change: None,
                tolerance: Some(tol),
                outside: os - new_bound > tol.abs + tol.rel * os.abs(),
            }),
            (None, Some((_, ns))) => rows.push(Row {
                case: case.to_string(),
                metric: share_metric,
                unit: "",
                old: Cell::Text(format!("not in top {}", old.len())),
                new: Cell::Number(*ns),
                change: None,
                tolerance: Some(tol),
                outside: ns - old_bound > tol.abs + tol.rel * old_bound,
            }),
            (None, None) => {}
        }
    }
}
