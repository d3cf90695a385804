//! Hardware co-search declared in a substrate file, for any kind of substrate.
//!
//! ```yaml
//! cosearch:
//!   objective: energy        # energy | energy_per_generated_token | tpot | ttft | area
//!   grid:                    # field path: candidates, a set or a range of the DSL
//!     chip.macs_per_vac: "{16, 32, 64}"
//!     max_chips: "{8, 16, 32}"
//!     chip.wmem_per_core: "24 KiB..=384 KiB step *2"     # 24, 48, 96, 192, 384 KiB
//! envelope: {area: "800 mm^2", power: "100 W"}           # top level: the limits
//! ```
//!
//! * A grid key is the path of a numeric field, exactly as `--set` names it. Its candidates
//!   are constants (no references) with the field's dimension, checked against the field
//!   when the grid is read (errors located there). The grid is the cartesian product of the
//!   axes in file order, the **last axis varying fastest**; point `i` is the base file with
//!   the point's typed values in place of the fields' expressions ([`DesignSpace::point`]):
//!   the file is parsed once, a point is evaluated from the parsed file without parsing, and
//!   fields whose expressions name a varied field follow it (a GPU's peaks follow its
//!   `clock`). A grid works for every kind of substrate and every numeric field. A point
//!   fails only when a field's rule rejects its value (0 MACs), with a typed [`PointError`].
//! * `--set cosearch.objective=tpot` changes the objective, `--set cosearch.grid.PATH=...`
//!   replaces an axis or adds one (a file without a `cosearch` section gains one when both
//!   an objective and an axis are given). `--set PATH=...` on a path the grid varies is an
//!   error: the grid decides that value.
//! * The choice ([`choose`]): the lowest objective among the points within the envelope
//!   (the file's top-level `envelope`); when none is, the least-violating point, flagged
//!   infeasible (violation = max(0, area/max - 1) + max(0, power/max - 1)). Ties keep the
//!   first point in grid order. The `area` objective needs an area model (rings only).
//! * [`run_grid`] evaluates every point through a caller's function (the substrate module
//!   knows no models); `sim::ring_adapter` has the ring's, which uses the ring module's fast
//!   co-search when the grid only varies the ring's design genes.

use super::Override;
use super::Substrate;
use super::raw::{Ctx, RawFile, evaluate, parse_file, source};
use super::ring_spec::Objective;
use crate::dsl::{self, Quantity, Top};
use crate::yaml::{DescErrors, Entries, Expression, Loc, Located, SourceFile};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The most points a declared grid may have.
pub const MAX_POINTS: usize = 1 << 20;

/// Errors of evaluating a co-search.
#[derive(Debug, thiserror::Error)]
pub enum CoSearchError {
    /// Occurs when a grid point's value is out of its field's range.
    #[error(transparent)]
    Point(#[from] PointError),
    /// Occurs when every point failed to evaluate (nothing fits, for instance).
    #[error("none of the {points} co-search points could be evaluated; point 0: {first}")]
    NothingEvaluated { points: usize, first: String },
    /// Occurs when the objective needs a figure the evaluator does not give (area of a GPU).
    #[error("point {index}: the evaluator gives no value for the objective `{objective}`")]
    NoObjective { index: usize, objective: &'static str },
}

/// A co-search point that a field's rule rejects (a candidate out of the field's range, such
/// as 0 MACs per VAC): the point, its settings and the problems in words. Never a parse
/// error: the file was parsed and the candidates type-checked when the grid was read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("co-search point {index} ({}): {}", settings_text(.settings), .problems.join("; "))]
pub struct PointError {
    pub index: usize,
    /// (path, candidate label) per axis.
    pub settings: Vec<(String, String)>,
    pub problems: Vec<String>,
}

fn settings_text(settings: &[(String, String)]) -> String {
    let text: Vec<String> = settings.iter().map(|(p, v)| format!("{p} = {v}")).collect();
    text.join(", ")
}

/// The name of an objective as written in files.
pub fn objective_name(o: Objective) -> &'static str {
    match o {
        Objective::Energy => "energy",
        Objective::EnergyPerGeneratedToken => "energy_per_generated_token",
        Objective::Tpot => "tpot",
        Objective::Ttft => "ttft",
        Objective::Area => "area",
    }
}

/// Parses an objective name.
pub fn parse_objective(s: &str) -> Result<Objective, String> {
    match s {
        "energy" => Ok(Objective::Energy),
        "energy_per_generated_token" => Ok(Objective::EnergyPerGeneratedToken),
        "tpot" => Ok(Objective::Tpot),
        "ttft" => Ok(Objective::Ttft),
        "area" => Ok(Objective::Area),
        other => Err(format!(
            "unknown objective `{other}`: expected energy, energy_per_generated_token, tpot, ttft or area"
        )),
    }
}

/// One axis of the grid: a field path and its candidates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridAxis {
    pub path: String,
    /// The candidates in base units (bytes, hertz, ...), in written order.
    #[serde(skip)]
    pub values: Vec<Quantity>,
    /// The candidates as written (`"48 KiB"`) or, for a range, in base units.
    pub labels: Vec<String>,
}

/// The co-search of a substrate file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoSearch {
    #[serde(serialize_with = "ser_objective")]
    pub objective: Objective,
    pub axes: Vec<GridAxis>,
    /// The parsed file and command-line overrides the points are evaluated from.
    #[serde(skip)]
    origin: Origin,
}

/// Where the grid's points come from: the file (parsed once) and the overrides it was
/// loaded with.
#[derive(Clone)]
struct Origin {
    file: SourceFile,
    parsed: Arc<RawFile>,
    overrides: Vec<Override>,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("file", &self.file.name())
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Origin {
    fn eq(&self, o: &Origin) -> bool {
        self.file.name() == o.file.name()
            && self.file.text() == o.file.text()
            && self.overrides == o.overrides
    }
}

fn ser_objective<S: serde::Serializer>(o: &Objective, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(objective_name(*o))
}

impl CoSearch {
    /// Number of points (the product of the axis lengths).
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }
    /// Never empty: every axis has a candidate.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The candidate index of axis `axis` at point `point` (mixed radix, last axis fastest).
    pub fn value_index(&self, point: usize, axis: usize) -> usize {
        let stride: usize = self.axes[axis + 1..].iter().map(|a| a.values.len()).product();
        (point / stride) % self.axes[axis].values.len()
    }
    /// The overrides that make point `point` of the base file, as `--set` text (to show
    /// or reproduce a point from the command line; points are evaluated from
    /// [`CoSearch::values`]).
    pub fn overrides(&self, point: usize) -> Vec<Override> {
        self.values(point)
            .into_iter()
            .map(|(path, q)| Override {
                path,
                expr: expression_text(q),
            })
            .collect()
    }
    /// The typed values of point `point`: (path, value) per axis.
    pub fn values(&self, point: usize) -> Vec<(String, Quantity)> {
        self.axes
            .iter()
            .enumerate()
            .map(|(k, a)| (a.path.clone(), a.values[self.value_index(point, k)]))
            .collect()
    }
    /// Point `point` evaluated from the parsed file, its errors located in the file.
    fn evaluate(&self, point: usize) -> Result<Substrate, DescErrors> {
        let o = &self.origin;
        evaluate(&o.file, &o.parsed, &o.overrides, Some(&self.values(point)))
    }
    /// Point `point`: the base file with the point's values, validated like any substrate
    /// (its `cosearch` is `None`). No parsing: it fails only when a field's rule rejects a
    /// value.
    pub fn point(&self, point: usize) -> Result<Substrate, PointError> {
        self.evaluate(point).map_err(|e| PointError {
            index: point,
            settings: self.settings(point),
            problems: e.errors().iter().map(|d| d.message().to_string()).collect(),
        })
    }
    /// (path, label) of every axis at point `point`.
    pub fn settings(&self, point: usize) -> Vec<(String, String)> {
        self.axes
            .iter()
            .enumerate()
            .map(|(k, a)| (a.path.clone(), a.labels[self.value_index(point, k)].clone()))
            .collect()
    }
    /// The axis varying `path`.
    pub fn axis(&self, path: &str) -> Option<&GridAxis> {
        self.axes.iter().find(|a| a.path == path)
    }
}

/// Text of the DSL that evaluates to exactly `q` (the number in shortest round-trip form,
/// the dimension as products of powers of base units).
pub fn expression_text(q: Quantity) -> String {
    let mut text = dsl::format_number(q.value);
    for (i, &e) in q.dim.0.iter().enumerate() {
        if e != 0 {
            let sym = dsl::BASE_SYMBOLS[i];
            text.push_str(&format!(" * (1 {sym})^{e}"));
        }
    }
    text
}

/// The grid as written: keys in file order.
pub(super) type RawGrid = Entries<Expression>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCoSearch {
    objective: Located<String>,
    grid: Located<RawGrid>,
}

/// Validates the `cosearch` section (with its overrides) against the fields evaluated so far.
/// `Some(None)`: no co-search; `None`: errors were reported.
pub(super) fn cosearch(
    ctx: &Ctx,
    raw: Option<&RawCoSearch>,
    at: Loc,
    area_model: bool,
) -> Option<Option<CoSearch>> {
    let set = ctx.overrides_under("cosearch.");
    if ctx.point {
        return Some(None);
    }
    let objective_set = set.iter().rev().find(|o| o.path == "cosearch.objective");
    let grid_set: Vec<&Override> = set
        .iter()
        .copied()
        .filter(|o| o.path.starts_with("cosearch.grid."))
        .collect();
    for o in &set {
        if o.path != "cosearch.objective" && !o.path.starts_with("cosearch.grid.") {
            ctx.push(ctx.file.error(
                Loc::UNKNOWN,
                format!("--set {}: not a co-search setting", o.path),
                "",
                Some("use cosearch.objective=NAME or cosearch.grid.FIELD=\"{a, b, c}\"".into()),
            ));
        }
    }
    if raw.is_none() && objective_set.is_none() && grid_set.is_empty() {
        return Some(None);
    }
    let cli = |o: &Override| SourceFile::new(format!("--set {}", o.path), o.expr.clone());
    // the objective
    let objective = match (objective_set, raw) {
        (Some(o), _) => parse_objective(&o.expr).map_err(|m| cli(o).error(Loc::UNKNOWN, m, "", None)),
        (None, Some(r)) => parse_objective(&r.objective.value).map_err(|m| {
            ctx.file.error(
                r.objective.loc,
                format!("`cosearch.objective`: {m}"),
                "here",
                None,
            )
        }),
        (None, None) => Err(ctx.file.error(
            at,
            "a co-search given on the command line needs an objective",
            "",
            Some("add --set cosearch.objective=energy (or tpot, ttft, area)".into()),
        )),
    };
    let objective = match objective {
        Ok(Objective::Area) if !area_model => {
            let loc = raw.map_or(Loc::UNKNOWN, |r| r.objective.loc);
            ctx.push(ctx.file.error(
                loc,
                "the `area` objective needs an area model, which only ring substrates have",
                "here",
                None,
            ));
            None
        }
        Ok(o) => Some(o),
        Err(e) => {
            ctx.push(e);
            None
        }
    };
    // the axes: file entries (replaced in place by overrides), then overrides of new paths
    let mut entries: Vec<(String, Expression, Option<SourceFile>)> = Vec::new();
    if let Some(r) = raw {
        for (key, expr) in &r.grid.value.0 {
            if entries.iter().any(|(p, _, _)| *p == key.value) {
                ctx.push(ctx.file.error(
                    key.loc,
                    format!("co-search axis `{}` appears twice", key.value),
                    "here",
                    None,
                ));
                continue;
            }
            entries.push((key.value.clone(), expr.clone(), None));
        }
        if r.grid.value.0.is_empty() {
            ctx.push(
                ctx.file
                    .error(r.grid.loc, "the co-search grid has no axis", "here", None),
            );
        }
    }
    for o in grid_set {
        let path = o.path["cosearch.grid.".len()..].to_string();
        let file = cli(o);
        let expr = Expression::new(&o.expr);
        match entries.iter_mut().find(|(p, _, _)| *p == path) {
            Some(slot) => *slot = (path, expr, Some(file)),
            None => entries.push((path, expr, Some(file))),
        }
    }
    if entries.is_empty() {
        ctx.push(ctx.file.error(
            at,
            "the co-search has no grid axis",
            "",
            Some("add --set cosearch.grid.FIELD=\"{a, b}\"".into()),
        ));
        return None;
    }
    let mut axes = Vec::new();
    let mut ok = true;
    for (path, expr, cli_file) in &entries {
        match axis(ctx, path, expr, cli_file.as_ref()) {
            Some(a) => axes.push(a),
            None => ok = false,
        }
    }
    let objective = objective?;
    if !ok {
        return None;
    }
    let mut points: usize = 1;
    for a in &axes {
        points = points.saturating_mul(a.values.len());
    }
    if points > MAX_POINTS {
        ctx.push(ctx.file.error(
            raw.map_or(at, |r| r.grid.loc),
            format!("the co-search grid has {points} points; at most {MAX_POINTS} are allowed"),
            "here",
            None,
        ));
        return None;
    }
    Some(Some(CoSearch {
        objective,
        axes,
        origin: Origin {
            file: ctx.file.clone(),
            parsed: ctx.parsed.clone(),
            overrides: ctx.overrides.to_vec(),
        },
    }))
}

/// One axis: candidates evaluated (constants), checked against the base field.
fn axis(ctx: &Ctx, path: &str, expr: &Expression, cli: Option<&SourceFile>) -> Option<GridAxis> {
    let file = cli.unwrap_or(ctx.file);
    let err = |msg: String, help: Option<String>| {
        ctx.push(file.error(expr.loc(), msg, "here", help));
    };
    if ctx.has_override(path) {
        err(
            format!("--set {path} conflicts with the co-search axis of the same path"),
            Some(format!(
                "the grid decides `{path}`; change its candidates with --set cosearch.grid.{path}=\"{{a, b}}\""
            )),
        );
        return None;
    }
    let base = match ctx.value_at(path) {
        Some(q) => q,
        None if ctx.is_word(path) => {
            err(
                format!("co-search axis `{path}`: only numeric fields can be searched"),
                None,
            );
            return None;
        }
        // the field's own value is wrong: already reported
        None if ctx.visited().iter().any(|p| p == path) => return None,
        None => {
            err(
                format!("co-search axis `{path}` is not a field of this substrate"),
                Some(format!("fields: {}", ctx.visited().join(", "))),
            );
            return None;
        }
    };
    let value = match expr.eval(file, &dsl::no_names) {
        Ok(v) => v,
        Err(e) => {
            ctx.push(e);
            return None;
        }
    };
    let values = value.candidates();
    if let Some(bad) = values.iter().find(|q| q.dim != base.dim) {
        err(
            format!(
                "co-search axis `{path}`: the candidate {bad} is {}, but the field is {}",
                bad.dim.describe(),
                base.dim.describe()
            ),
            None,
        );
        return None;
    }
    let labels = match expr.expr(file).map(|e| e.top().clone()) {
        Ok(Top::Set { members, .. }) => members
            .iter()
            .map(|m| expr.text()[m.span.offset..m.span.end()].trim().to_string())
            .collect(),
        _ => values.iter().map(|q| q.to_string()).collect(),
    };
    Some(GridAxis {
        path: path.to_string(),
        values,
        labels,
    })
}

/// A substrate file with its co-search: the base substrate and every grid point. The file is
/// parsed once (by [`DesignSpace::load`], or when the substrate was loaded); its points are
/// values evaluated from it.
#[derive(Clone, Debug)]
pub struct DesignSpace {
    base: Substrate,
}

impl DesignSpace {
    /// Loads a shipped substrate (by name) or a file (by path) with its co-search.
    pub fn load(spec: &str, overrides: &[Override]) -> Result<DesignSpace, DescErrors> {
        let file = source(spec)?;
        DesignSpace::from_file(file, overrides)
    }

    /// As [`DesignSpace::load`], from text.
    pub fn load_str(src: &str, name: &str, overrides: &[Override]) -> Result<DesignSpace, DescErrors> {
        DesignSpace::from_file(SourceFile::new(name, src), overrides)
    }

    /// The design space of a loaded substrate: its grid's points, or the substrate alone.
    pub fn of(sub: &Substrate) -> DesignSpace {
        DesignSpace { base: sub.clone() }
    }

    fn from_file(file: SourceFile, overrides: &[Override]) -> Result<DesignSpace, DescErrors> {
        let parsed = Arc::new(parse_file(&file)?);
        let base = evaluate(&file, &parsed, overrides, None)?;
        Ok(DesignSpace { base })
    }

    /// The file with the command-line overrides (and its grid, if any).
    pub fn base(&self) -> &Substrate {
        &self.base
    }
    pub fn cosearch(&self) -> Option<&CoSearch> {
        self.base.cosearch.as_ref()
    }
    /// Points to evaluate: the grid's, or 1 (the base) without a grid.
    pub fn len(&self) -> usize {
        self.cosearch().map_or(1, CoSearch::len)
    }
    /// Never empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The overrides of point `i` as `--set` text (empty without a grid).
    pub fn point_overrides(&self, i: usize) -> Vec<Override> {
        self.cosearch().map_or_else(Vec::new, |c| c.overrides(i))
    }
    /// Point `i`: the base with the point's typed values ([`CoSearch::point`]); the base
    /// itself without a grid.
    pub fn point(&self, i: usize) -> Result<Substrate, PointError> {
        match self.cosearch() {
            None => Ok(self.base.clone()),
            Some(c) => c.point(i),
        }
    }
    /// Evaluates every point; the errors of the first failing point, located in the file,
    /// with the point's settings.
    pub fn check_points(&self) -> Result<usize, DescErrors> {
        let Some(c) = self.cosearch() else {
            return Ok(1);
        };
        for i in 0..c.len() {
            if let Err(e) = c.evaluate(i) {
                let at = format!("at co-search point {i}: {}", settings_text(&c.settings(i)));
                let mut diags = c.origin.file.diagnostics();
                for d in e.into_vec() {
                    let help = match d.help_text() {
                        Some(h) => format!("{h}\n{at}"),
                        None => at.clone(),
                    };
                    diags.push(d.with_help(help));
                }
                diags.finish(())?;
            }
        }
        Ok(c.len())
    }
}

/// What an evaluator reports for one point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PointMetrics {
    pub ttft_s: f64,
    pub tpot_s: f64,
    /// The paper's energy per processed token, (E_prefill + D E_step) / (P + D) (a ring under
    /// the paper-era timing: one decode step's, as the release saved it).
    pub energy_per_token_j: f64,
    /// Request energy per generated token, (E_prefill + D E_step) / D.
    pub energy_per_generated_token_j: f64,
    /// Total silicon, when the substrate has an area model.
    pub area_m2: Option<f64>,
    /// The larger of the prefill and decode average powers (a ring under the paper-era
    /// timing: the decode power).
    pub power_w: f64,
}

impl PointMetrics {
    pub fn objective(&self, o: Objective) -> Option<f64> {
        match o {
            Objective::Energy => Some(self.energy_per_token_j),
            Objective::EnergyPerGeneratedToken => Some(self.energy_per_generated_token_j),
            Objective::Tpot => Some(self.tpot_s),
            Objective::Ttft => Some(self.ttft_s),
            Objective::Area => self.area_m2,
        }
    }
}

/// The outcome of one point.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PointStatus {
    /// The point could not be evaluated (the model does not fit, for instance).
    Failed { reason: String },
    Evaluated {
        objective: f64,
        violation: f64,
        metrics: PointMetrics,
    },
}

/// One row of the grid table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointRow {
    pub index: usize,
    /// (path, candidate label) per axis.
    pub settings: Vec<(String, String)>,
    pub status: PointStatus,
}

/// Every point's outcome and the choice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridTable {
    #[serde(serialize_with = "ser_objective")]
    pub objective: Objective,
    /// Index of the chosen point.
    pub chosen: usize,
    /// Whether the chosen point is within the envelope.
    pub feasible: bool,
    pub points: Vec<PointRow>,
}

/// The best row under the rule of the module docs: (index, feasible), or `None` when no row
/// was evaluated.
pub fn choose(rows: &[PointRow]) -> Option<(usize, bool)> {
    let mut best: Option<(bool, f64, usize)> = None;
    for row in rows {
        if let PointStatus::Evaluated {
            objective, violation, ..
        } = row.status
        {
            let feasible = violation == 0.0;
            let key = if feasible { objective } else { violation };
            let better = match best {
                None => true,
                Some((bf, bk, _)) => (feasible && !bf) || (feasible == bf && key < bk),
            };
            if better {
                best = Some((feasible, key, row.index));
            }
        }
    }
    best.map(|(f, _, i)| (i, f))
}

/// Evaluates every point of `space` with `eval` and chooses. `objective` is the grid's when
/// the file has one (pass `None`); a file without a grid is one point, chosen, under the
/// objective given (energy if `None`). A point that fails to load is an error (its values
/// are out of range); a point the evaluator rejects is a `Failed` row.
pub fn run_grid<E: fmt::Display>(
    space: &DesignSpace,
    objective: Option<Objective>,
    mut eval: impl FnMut(usize, &Substrate) -> Result<PointMetrics, E>,
) -> Result<GridTable, CoSearchError> {
    let objective = objective
        .or_else(|| space.cosearch().map(|c| c.objective))
        .unwrap_or(Objective::Energy);
    let mut rows = Vec::with_capacity(space.len());
    for i in 0..space.len() {
        let sub = space.point(i)?;
        let settings = space.cosearch().map(|c| c.settings(i)).unwrap_or_default();
        let status = match eval(i, &sub) {
            Err(e) => PointStatus::Failed {
                reason: e.to_string(),
            },
            Ok(m) => {
                let value = m.objective(objective).ok_or(CoSearchError::NoObjective {
                    index: i,
                    objective: objective_name(objective),
                })?;
                let area = m.area_m2.map(crate::units::SquareMeters::new);
                let violation = sub.envelope.violation(area, crate::units::Watts::new(m.power_w));
                PointStatus::Evaluated {
                    objective: value,
                    violation,
                    metrics: m,
                }
            }
        };
        rows.push(PointRow {
            index: i,
            settings,
            status,
        });
    }
    finish(objective, rows)
}

/// A table from evaluated rows (used by fast paths that price the grid themselves).
pub fn finish(objective: Objective, rows: Vec<PointRow>) -> Result<GridTable, CoSearchError> {
    match choose(&rows) {
        Some((chosen, feasible)) => Ok(GridTable {
            objective,
            chosen,
            feasible,
            points: rows,
        }),
        None => Err(CoSearchError::NothingEvaluated {
            points: rows.len(),
            first: match rows.first().map(|r| &r.status) {
                Some(PointStatus::Failed { reason }) => reason.clone(),
                _ => "no points".into(),
            },
        }),
    }
}
