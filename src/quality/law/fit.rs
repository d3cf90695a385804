//! Fitting: minimise the Huber loss between ln(predicted L) and ln(observed L) with L-BFGS from
//! a grid of starting points, in parallel over starts, deterministically.
//!
//! Objective normalisation: the fitter minimises and reports the **sum** over data points of
//! huber_delta(ln L_pred - ln L_obs), with huber_delta(r) = r^2/2 for |r| <= delta and
//! delta (|r| - delta/2) otherwise (scipy.special.huber). That is the convention of the
//! published Gemstones and Epoch objectives: the published Gemstones coefficients give
//! 2.949708e-4 on the 770 rows of `gemstones_hot_100b_plus.csv` as a sum (3.8308e-7 as a
//! mean). The mean is reported next to it.
//!
//! Search: every start of the grid is run through L-BFGS, first at the coarser Huber deltas of
//! [`FitOptions::continuation`] (a homotopy: the delta = 1e-4 loss is nearly an L1 loss, whose
//! kinks slow L-BFGS down), then at the target delta. The best `polish` runs are then
//! restarted with fresh memory until the objective stops improving. The best run wins; ties go
//! to the lower start index, so the result does not depend on the thread count.

use super::LawError;
use super::forms::{Chinchilla, Input, Law, LawForm};
use super::lbfgs::{self, LbfgsOptions, Objective, StopReason};
use super::model::{FitModel, MAX_PARAMS, Row};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// scipy.special.huber(delta, r).
#[inline]
pub fn huber(delta: f64, r: f64) -> f64 {
    let a = r.abs();
    if a <= delta {
        0.5 * r * r
    } else {
        delta * (a - 0.5 * delta)
    }
}

/// The Huber objective on log loss, as a mean over rows (the minimiser's scale).
pub(crate) struct HuberLogObjective<'a> {
    pub model: &'a FitModel,
    pub rows: &'a [Row],
    pub delta: f64,
}

impl Objective for HuberLogObjective<'_> {
    fn dim(&self) -> usize {
        self.model.n_params()
    }

    fn eval(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let n = theta.len();
        let mut row_grad = [0.0; MAX_PARAMS];
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut total = 0.0;
        for row in self.rows {
            let lp = self.model.log_pred_grad(theta, row, &mut row_grad[..n]);
            let r = lp - row.ln_loss;
            if !r.is_finite() {
                return f64::INFINITY;
            }
            total += huber(self.delta, r);
            let dr = r.clamp(-self.delta, self.delta);
            for i in 0..n {
                grad[i] += dr * row_grad[i];
            }
        }
        let inv = 1.0 / self.rows.len() as f64;
        grad.iter_mut().for_each(|g| *g *= inv);
        total * inv
    }
}

/// Sum of huber_delta(ln L_pred - ln L_obs) over `rows` for a law (for checking published
/// coefficients); `None` when a prediction is not finite.
pub fn huber_objective_sum(law: &Law, data: &[(super::LawInputs, f64)], delta: f64) -> Option<f64> {
    let mut s = 0.0;
    for (x, loss) in data {
        let r = law.predict(x).ln() - loss.ln();
        if !r.is_finite() {
            return None;
        }
        s += huber(delta, r);
    }
    Some(s)
}

/// Starting values.
///
/// Log-sum-exp forms, unstaged: the Cartesian product of `exponents` (for each e_i),
/// `log_coefs` (each c_i) and `irreducible_log` (e), as in the published recipes.
///
/// Staged (`staged`, Gemstones only): first fit the (N, D) law with the grid above, then start
/// the four-variable law from it, with the width and depth terms taking every combination of
/// `shape_exponents` x `shape_log_coefs` (the (N, D) law is the limit c_width, c_depth -> -inf
/// of the four-variable one, so each start is a small perturbation of a good fit).
///
/// Conditional law with L_opt fitted jointly: always staged. L_opt (Chinchilla form) is fitted
/// with the log-sum-exp grid, then each of a1, a2 (and b1, b2 with the ratio factor) takes
/// every value of `shape`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub exponents: Vec<f64>,
    pub log_coefs: Vec<f64>,
    pub irreducible_log: Vec<f64>,
    pub staged: bool,
    pub shape_exponents: Vec<f64>,
    pub shape_log_coefs: Vec<f64>,
    pub shape: Vec<f64>,
}

impl Grid {
    /// The published recipe (Epoch's Chinchilla replication, used unchanged by Gemstones):
    /// exponents {0, .5, 1, 1.5, 2}, log-coefficients {0, 5, .., 25}, e {-1, -.5, 0, .5, 1}.
    /// 4,500 starts for two variables; 4,050,000 for four.
    pub fn paper() -> Grid {
        Grid {
            exponents: vec![0.0, 0.5, 1.0, 1.5, 2.0],
            log_coefs: vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
            irreducible_log: vec![-1.0, -0.5, 0.0, 0.5, 1.0],
            staged: false,
            shape_exponents: vec![],
            shape_log_coefs: vec![],
            shape: vec![-0.05, 0.0, 0.05],
        }
    }

    /// A sparser grid over the same box: exponents {.25, .75}, log-coefficients {0, 8, 16, 24},
    /// e {-.5, .5}: 128 starts for two variables, 8,192 for four (unstaged).
    pub fn coarse() -> Grid {
        Grid {
            exponents: vec![0.25, 0.75],
            log_coefs: vec![0.0, 8.0, 16.0, 24.0],
            irreducible_log: vec![-0.5, 0.5],
            staged: false,
            shape_exponents: vec![],
            shape_log_coefs: vec![],
            shape: vec![-0.05, 0.0, 0.05],
        }
    }

    /// [`Grid::coarse`] for the (N, D) stage, then width/depth terms with exponents
    /// {.25, .5, 1} and log-coefficients {-2, 0, 2}: 128 + 81 starts for the Gemstones law.
    pub fn staged() -> Grid {
        Grid {
            staged: true,
            shape_exponents: vec![0.25, 0.5, 1.0],
            shape_log_coefs: vec![-2.0, 0.0, 2.0],
            ..Grid::coarse()
        }
    }

    /// No grid: only the warm starts of [`FitOptions::warm_starts`] are run.
    pub fn none() -> Grid {
        Grid {
            exponents: vec![],
            log_coefs: vec![],
            irreducible_log: vec![],
            staged: false,
            shape_exponents: vec![],
            shape_log_coefs: vec![],
            shape: vec![],
        }
    }

    fn lse_len(&self, k: usize) -> usize {
        let p = |v: &Vec<f64>, e: usize| v.len().checked_pow(e as u32).unwrap_or(usize::MAX);
        p(&self.exponents, k)
            .saturating_mul(p(&self.log_coefs, k))
            .saturating_mul(self.irreducible_log.len())
    }

    /// The i-th start of the k-variable LSE grid (mixed radix; the last parameter varies
    /// fastest).
    fn lse_start(&self, k: usize, mut i: usize, out: &mut Vec<f64>) {
        out.clear();
        out.resize(2 * k + 1, 0.0);
        let ne = self.irreducible_log.len();
        out[2 * k] = self.irreducible_log[i % ne];
        i /= ne;
        for j in (0..k).rev() {
            let nc = self.log_coefs.len();
            out[k + j] = self.log_coefs[i % nc];
            i /= nc;
        }
        for j in (0..k).rev() {
            let nx = self.exponents.len();
            out[j] = self.exponents[i % nx];
            i /= nx;
        }
    }
}

/// What to fit: the form, and for the conditional law whether the ratio factor is fitted and
/// whether L_opt is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitSpec {
    pub form: LawForm,
    /// Conditional law: fit b1, b2 (needs the `ffn_ratio` input).
    pub ratio: bool,
    /// Conditional law: L_opt fixed to this instead of fitted jointly.
    pub l_opt: Option<Chinchilla>,
}

impl FitSpec {
    pub fn new(form: LawForm) -> FitSpec {
        FitSpec {
            form,
            ratio: false,
            l_opt: None,
        }
    }

    /// The inputs the fit reads.
    pub fn inputs(&self) -> Vec<Input> {
        let mut v = self.form.inputs().to_vec();
        if self.form == LawForm::Conditional && self.ratio {
            v.push(Input::FfnRatio);
        }
        v
    }
}

/// Fitting options.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Huber delta on ln L residuals.
    pub delta: f64,
    pub grid: Grid,
    /// Coarser deltas run before the target delta for each start (those <= delta are skipped).
    pub continuation: Vec<f64>,
    /// How many of the best runs are polished by restarted L-BFGS.
    pub polish: usize,
    /// Extra starts run before the grid (e.g. a previous fit).
    pub warm_starts: Vec<Law>,
    pub lbfgs: LbfgsOptions,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            delta: 1e-4,
            grid: Grid::coarse(),
            continuation: vec![1e-2, 1e-3],
            polish: 8,
            warm_starts: Vec::new(),
            lbfgs: LbfgsOptions::default(),
        }
    }
}

/// The value of the objective at the fitted coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveValue {
    /// Huber delta.
    pub delta: f64,
    /// Sum over rows of huber_delta(ln L_pred - ln L_obs) (the published convention).
    pub sum: f64,
    /// `sum / rows`.
    pub mean: f64,
    pub rows: usize,
}

/// A fit's outcome.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    pub law: Law,
    pub objective: ObjectiveValue,
    /// Parameter names and fitted values of the optimiser's vector.
    pub theta: Vec<(String, f64)>,
    /// Starts tried (warm starts first), and how many had a finite objective.
    pub starts: usize,
    pub finite_starts: usize,
    /// Index of the winning start (0-based, warm starts first).
    pub best_start: usize,
    /// Total L-BFGS iterations and objective evaluations over all starts.
    pub iterations: u64,
    pub evaluations: u64,
    /// Staged fits: the (N, D) / L_opt fit that seeded it.
    pub l_opt_stage: Option<Box<FitOutcome>>,
}

#[derive(Clone)]
struct Candidate {
    f: f64,
    index: usize,
    theta: Vec<f64>,
}

fn better(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    let key = |c: &Candidate| if c.f.is_nan() { f64::INFINITY } else { c.f };
    key(a).total_cmp(&key(b)).then(a.index.cmp(&b.index))
}

fn merge_top(mut a: Vec<Candidate>, b: Vec<Candidate>, k: usize) -> Vec<Candidate> {
    a.extend(b);
    a.sort_by(better);
    a.truncate(k);
    a
}

struct RunStats {
    iterations: u64,
    evaluations: u64,
    finite: u64,
}

/// One start: continuation deltas, then the target.
fn run_start(model: &FitModel, rows: &[Row], opts: &FitOptions, theta0: &[f64]) -> (Vec<f64>, f64, RunStats) {
    let mut theta = theta0.to_vec();
    let mut stats = RunStats {
        iterations: 0,
        evaluations: 0,
        finite: 0,
    };
    let schedule = opts
        .continuation
        .iter()
        .copied()
        .filter(|d| *d > opts.delta)
        .chain([opts.delta]);
    let mut f = f64::INFINITY;
    for delta in schedule {
        let obj = HuberLogObjective { model, rows, delta };
        let r = lbfgs::minimize(&obj, &theta, &opts.lbfgs);
        stats.iterations += r.iterations as u64;
        stats.evaluations += r.evaluations as u64;
        if r.stop == StopReason::NonFiniteStart {
            return (theta, f64::INFINITY, stats);
        }
        theta = r.x;
        f = r.f;
    }
    stats.finite = 1;
    (theta, f, stats)
}

/// Restart L-BFGS (fresh memory) from `theta` at the target delta until the objective improves
/// by less than 1e-12 relative.
fn polish(model: &FitModel, rows: &[Row], opts: &FitOptions, cand: &mut Candidate) -> (u64, u64) {
    let obj = HuberLogObjective {
        model,
        rows,
        delta: opts.delta,
    };
    let (mut it, mut ev) = (0, 0);
    for _ in 0..20 {
        let r = lbfgs::minimize(&obj, &cand.theta, &opts.lbfgs);
        it += r.iterations as u64;
        ev += r.evaluations as u64;
        if r.f.is_nan() || r.f >= cand.f {
            break;
        }
        let gain = (cand.f - r.f) / cand.f.abs().max(1e-300);
        cand.theta = r.x;
        cand.f = r.f;
        if gain < 1e-12 {
            break;
        }
    }
    (it, ev)
}

/// Fit `spec` to `(inputs, loss)` data.
pub fn fit(
    spec: &FitSpec,
    data: &[(super::LawInputs, f64)],
    opts: &FitOptions,
) -> Result<FitOutcome, LawError> {
    if data.is_empty() {
        return Err(LawError::Fit("no data rows".into()));
    }
    // A fit needs more rows than free parameters: with as many, any law interpolates the data
    // and its coefficients say nothing.
    let free = FitModel::for_form(spec.form, spec.ratio, spec.l_opt).n_params();
    if data.len() <= free {
        return Err(LawError::Fit(format!(
            "{} data row(s) for the {} law's {free} free parameters: a fit needs at least {} rows",
            data.len(),
            spec.form.name(),
            free + 1
        )));
    }
    if !(opts.delta > 0.0 && opts.delta.is_finite()) {
        return Err(LawError::Fit(format!(
            "Huber delta must be finite and > 0, got {}",
            opts.delta
        )));
    }
    let inputs = spec.inputs();
    for (i, (x, loss)) in data.iter().enumerate() {
        for input in &inputs {
            let v = input.get(x);
            if !(v > 0.0 && v.is_finite()) {
                return Err(LawError::Fit(format!(
                    "row {i}: input `{}` = {v}, expected a finite positive number",
                    input.name()
                )));
            }
        }
        if !(*loss > 0.0 && loss.is_finite()) {
            return Err(LawError::Fit(format!(
                "row {i}: loss = {loss}, expected a finite positive number"
            )));
        }
    }
    let rows: Vec<Row> = data.iter().map(|(x, l)| Row::new(x, *l)).collect();

    // The conditional law fitted jointly starts from an L_opt fitted to the same data.
    let (model, grid_starts, l_opt_stage): (FitModel, Vec<Vec<f64>>, Option<Box<FitOutcome>>) =
        match spec.form {
            LawForm::Conditional => {
                let model = FitModel::for_form(LawForm::Conditional, spec.ratio, spec.l_opt);
                let (stage, base_l_opt) = match spec.l_opt {
                    Some(c) => (None, c),
                    None if opts.grid.shape.is_empty() => (None, Chinchilla::HOFFMANN_2022),
                    None => {
                        let chin_opts = FitOptions {
                            warm_starts: Vec::new(),
                            ..opts.clone()
                        };
                        let stage = fit(&FitSpec::new(LawForm::Chinchilla), data, &chin_opts)?;
                        let Law::Chinchilla(c) = stage.law else {
                            return Err(LawError::Fit("L_opt stage returned another form".into()));
                        };
                        (Some(Box::new(stage)), c)
                    }
                };
                let mut starts = Vec::new();
                let n_shape = if spec.ratio { 4 } else { 2 };
                let g = &opts.grid.shape;
                let total = g.len().pow(n_shape as u32);
                for mut i in 0..if g.is_empty() { 0 } else { total } {
                    let mut shape = [0.0; 4];
                    for s in shape.iter_mut().take(n_shape).rev() {
                        *s = g[i % g.len()];
                        i /= g.len();
                    }
                    let law = Law::Conditional(super::forms::Conditional {
                        a0: 1.0,
                        a1: shape[0],
                        a2: shape[1],
                        b0: 1.0,
                        b1: if spec.ratio { shape[2] } else { 0.0 },
                        b2: if spec.ratio { shape[3] } else { 0.0 },
                        l_opt: base_l_opt,
                    });
                    if let Some(t) = model.theta_of(&law) {
                        starts.push(t);
                    }
                }
                (model, starts, stage)
            }
            LawForm::Gemstones if opts.grid.staged => {
                let model = FitModel::for_form(LawForm::Gemstones, false, None);
                let nd_opts = FitOptions {
                    warm_starts: Vec::new(),
                    ..opts.clone()
                };
                let stage = fit(&FitSpec::new(LawForm::GemstonesNd), data, &nd_opts)?;
                let Law::GemstonesNd(nd) = stage.law else {
                    return Err(LawError::Fit("(N, D) stage returned another form".into()));
                };
                let g = &opts.grid;
                let mut starts = Vec::new();
                for &ew in &g.shape_exponents {
                    for &cw in &g.shape_log_coefs {
                        for &ed in &g.shape_exponents {
                            for &cd in &g.shape_log_coefs {
                                starts.push(vec![
                                    ew,
                                    ed,
                                    nd.params.exponent,
                                    nd.tokens.exponent,
                                    cw,
                                    cd,
                                    nd.params.log_coef,
                                    nd.tokens.log_coef,
                                    nd.irreducible_log,
                                ]);
                            }
                        }
                    }
                }
                (model, starts, Some(Box::new(stage)))
            }
            form => (FitModel::for_form(form, false, None), Vec::new(), None),
        };

    let warm: Vec<Vec<f64>> = opts
        .warm_starts
        .iter()
        .filter_map(|l| model.theta_of(l))
        .collect();
    let k_lse = match &model {
        FitModel::Lse { features, .. } if !(opts.grid.staged && features.len() == 4) => Some(features.len()),
        _ => None,
    };
    let n_grid = match k_lse {
        Some(k) => opts.grid.lse_len(k),
        None => grid_starts.len(),
    };
    let n_starts = warm.len().saturating_add(n_grid);
    if n_starts == 0 {
        return Err(LawError::Fit(
            "no starting points: empty grid and no warm starts".into(),
        ));
    }
    let top_k = opts.polish.max(1);

    let start_theta = |i: usize, buf: &mut Vec<f64>| {
        if i < warm.len() {
            buf.clone_from(&warm[i]);
        } else if let Some(k) = k_lse {
            opts.grid.lse_start(k, i - warm.len(), buf);
        } else {
            buf.clone_from(&grid_starts[i - warm.len()]);
        }
    };

    let (top, stats) = (0..n_starts)
        .into_par_iter()
        .map_init(Vec::new, |buf, i| {
            start_theta(i, buf);
            let (theta, f, st) = run_start(&model, &rows, opts, buf);
            (vec![Candidate { f, index: i, theta }], st)
        })
        .reduce(
            || {
                (
                    Vec::new(),
                    RunStats {
                        iterations: 0,
                        evaluations: 0,
                        finite: 0,
                    },
                )
            },
            |(a, sa), (b, sb)| {
                (
                    merge_top(a, b, top_k),
                    RunStats {
                        iterations: sa.iterations + sb.iterations,
                        evaluations: sa.evaluations + sb.evaluations,
                        finite: sa.finite + sb.finite,
                    },
                )
            },
        );

    let mut iterations = stats.iterations;
    let mut evaluations = stats.evaluations;
    let mut polished: Vec<(Candidate, u64, u64)> = top
        .into_par_iter()
        .filter(|c| c.f.is_finite())
        .map(|mut c| {
            let (it, ev) = polish(&model, &rows, opts, &mut c);
            (c, it, ev)
        })
        .collect();
    for (_, it, ev) in &polished {
        iterations += it;
        evaluations += ev;
    }
    polished.sort_by(|a, b| better(&a.0, &b.0));
    let Some((best, _, _)) = polished.into_iter().next() else {
        return Err(LawError::Fit(format!(
            "none of the {n_starts} starting points gave a finite objective"
        )));
    };

    let law = model.to_law(&best.theta);
    let mean = best.f;
    let n = rows.len();
    Ok(FitOutcome {
        law,
        objective: ObjectiveValue {
            delta: opts.delta,
            sum: mean * n as f64,
            mean,
            rows: n,
        },
        theta: model
            .param_names()
            .into_iter()
            .zip(best.theta.iter().copied())
            .collect(),
        starts: n_starts,
        finite_starts: stats.finite as usize,
        best_start: best.index,
        iterations,
        evaluations,
        l_opt_stage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::law::LawInputs;

    #[test]
    fn huber_matches_scipy_definition() {
        assert_eq!(huber(1.0, 0.5), 0.125);
        assert_eq!(huber(1.0, -3.0), 2.5);
        assert_eq!(huber(1e-4, 1e-4), 0.5e-8);
    }

    #[test]
    fn grid_enumeration_is_the_cartesian_product() {
        let g = Grid {
            exponents: vec![1.0, 2.0],
            log_coefs: vec![10.0, 20.0, 30.0],
            irreducible_log: vec![-1.0, 1.0],
            ..Grid::none()
        };
        assert_eq!(g.lse_len(2), 4 * 9 * 2);
        let mut seen = std::collections::BTreeSet::new();
        let mut buf = Vec::new();
        for i in 0..g.lse_len(2) {
            g.lse_start(2, i, &mut buf);
            seen.insert(buf.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
        assert_eq!(seen.len(), 72);
        g.lse_start(2, 0, &mut buf);
        assert_eq!(buf, vec![1.0, 1.0, 10.0, 10.0, -1.0]);
        g.lse_start(2, 71, &mut buf);
        assert_eq!(buf, vec![2.0, 2.0, 30.0, 30.0, 1.0]);
    }

    /// Noise-free data from a known Chinchilla law: the fit must recover its predictions.
    #[test]
    fn recovers_a_known_law() {
        let truth = Chinchilla {
            e: 1.8,
            a: 300.0,
            b: 2000.0,
            alpha: 0.3,
            beta: 0.35,
        };
        let mut data = Vec::new();
        for n in [1e7, 3e7, 1e8, 3e8, 1e9] {
            for tpp in [5.0, 20.0, 80.0] {
                let x = LawInputs {
                    params: n,
                    tokens: n * tpp,
                    ..Default::default()
                };
                data.push((x, truth.predict(x.params, x.tokens)));
            }
        }
        let out = fit(&FitSpec::new(LawForm::Chinchilla), &data, &FitOptions::default()).unwrap();
        assert!(out.objective.sum < 1e-12, "{:?}", out.objective);
        for (x, l) in &data {
            assert!((out.law.predict(x) - l).abs() < 1e-4 * l);
        }
    }
}
