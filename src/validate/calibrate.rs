//! Calibration: fitting a substrate's efficiencies (achieved fraction of the matrix peak and
//! of the memory bandwidth, fixed per-kernel and per-pass overheads) to measurements.
//!
//! The fit minimises the sum of squared log ratios `ln(predicted / measured)` over the rows
//! (a relative error, the same for a rate and for its time) with Levenberg-Marquardt on
//! bounded transforms of the four parameters: `compute = sigmoid(u0)`, `memory =
//! sigmoid(u1)`, `kernel_overhead = 1 us * exp(u2)`, `token_overhead = 10 us * exp(u3)`. The Jacobian is taken by forward differences through the cost engine
//! itself, so the fitted values are exactly the ones the engine then uses. A weak prior pulls
//! each transformed parameter towards its start, so a parameter the rows do not constrain
//! (the compute fraction when every row is a memory-bound decode) stays at the substrate's
//! stated default instead of drifting.
//!
//! [`holdout`] measures how well a fit generalises: each device (or model) of a family and
//! stack is predicted with parameters fitted on the *other* devices (models) only.

use super::mapping::Case;
use super::predict::{Engine, predict};
use crate::model::Model;
use crate::substrate::{Efficiency, Substrate};
use crate::units::Seconds;
use rayon::prelude::*;
use serde::Serialize;

/// One measured row ready to fit: the case, its model (formats applied), and the substrate of
/// its device (whose efficiency the fit replaces).
#[derive(Clone, Copy, Debug)]
pub struct Point<'a> {
    pub line: u64,
    pub case: &'a Case,
    pub model: &'a Model,
    pub substrate: &'a Substrate,
}

/// A fitted parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fit {
    #[serde(serialize_with = "ser_eff")]
    pub efficiency: Efficiency,
    /// Rows fitted.
    pub n: usize,
    /// Root-mean-square log ratio at the optimum.
    pub rms_log: f64,
    /// MAPE (%) on the fitted rows.
    pub mape: f64,
    pub iterations: usize,
}

fn ser_eff<S: serde::Serializer>(e: &Efficiency, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Efficiency", 4)?;
    st.serialize_field("compute", &e.compute)?;
    st.serialize_field("memory", &e.memory)?;
    st.serialize_field("kernel_overhead_s", &e.kernel_overhead.get())?;
    st.serialize_field("token_overhead_s", &e.token_overhead.get())?;
    st.end()
}

const KERNEL_SCALE: f64 = 1e-6;
const TOKEN_SCALE: f64 = 1e-5;
/// Weight of the prior on each transformed parameter (per unit of the transform).
const PRIOR: f64 = 0.01;

fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}
fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn to_eff(u: &[f64; 4]) -> Efficiency {
    Efficiency {
        compute: sigmoid(u[0]).max(1e-6),
        memory: sigmoid(u[1]).max(1e-6),
        kernel_overhead: Seconds::new(KERNEL_SCALE * u[2].clamp(-30.0, 30.0).exp()),
        token_overhead: Seconds::new(TOKEN_SCALE * u[3].clamp(-30.0, 30.0).exp()),
    }
}

fn from_eff(e: &Efficiency) -> [f64; 4] {
    [
        logit(e.compute),
        logit(e.memory),
        (e.kernel_overhead.get() / KERNEL_SCALE).max(1e-9).ln(),
        (e.token_overhead.get() / TOKEN_SCALE).max(1e-9).ln(),
    ]
}

/// `sub` with its efficiency replaced.
pub fn with_efficiency(sub: &Substrate, eff: Efficiency) -> Substrate {
    let mut s = sub.clone();
    s.efficiency = eff;
    s
}

/// Predicted value of one point under `eff`.
pub fn predict_with(p: &Point, eff: Efficiency, engine: Engine) -> f64 {
    let sub = with_efficiency(p.substrate, eff);
    predict(p.case, p.model, &sub, engine).value
}

fn log_residuals(points: &[Point], eff: Efficiency, engine: Engine) -> Vec<f64> {
    points
        .par_iter()
        .map(|p| {
            let v = predict_with(p, eff, engine);
            if v.is_finite() && v > 0.0 {
                (v / p.case.measured).ln()
            } else {
                10.0
            }
        })
        .collect()
}

fn cost(r: &[f64], u: &[f64; 4], u0: &[f64; 4]) -> f64 {
    let data: f64 = r.iter().map(|x| x * x).sum();
    let prior: f64 = u.iter().zip(u0).map(|(a, b)| (PRIOR * (a - b)).powi(2)).sum();
    data + prior
}

/// Solves the 4x4 system `a x = b` by Gaussian elimination with partial pivoting.
fn solve4(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> Option<[f64; 4]> {
    for c in 0..4 {
        let piv = (c..4).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[piv][c].abs() < 1e-300 {
            return None;
        }
        a.swap(c, piv);
        b.swap(c, piv);
        for r in c + 1..4 {
            let f = a[r][c] / a[c][c];
            let pivot_row = a[c];
            for (x, p) in a[r].iter_mut().zip(pivot_row).skip(c) {
                *x -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = [0.0; 4];
    for c in (0..4).rev() {
        let s: f64 = (c + 1..4).map(|k| a[c][k] * x[k]).sum();
        x[c] = (b[c] - s) / a[c][c];
    }
    Some(x)
}

/// Fits the efficiencies to `points`, starting from `start`. `None` when there are no points.
pub fn fit(points: &[Point], start: Efficiency, engine: Engine) -> Option<Fit> {
    if points.is_empty() {
        return None;
    }
    // Overheads start at no less than one unit of their scale (zero is outside the log
    // transform).
    let floored = Efficiency {
        kernel_overhead: Seconds::new(start.kernel_overhead.get().max(KERNEL_SCALE)),
        token_overhead: Seconds::new(start.token_overhead.get().max(TOKEN_SCALE)),
        ..start
    };
    let u0 = from_eff(&floored);
    let mut u = u0;
    let mut r = log_residuals(points, to_eff(&u), engine);
    let mut c = cost(&r, &u, &u0);
    let mut mu = 1e-2;
    let mut iterations = 0;
    let h = 1e-4;
    for _ in 0..80 {
        iterations += 1;
        // Jacobian of the data residuals by forward differences.
        let cols: Vec<Vec<f64>> = (0..4)
            .map(|j| {
                let mut v = u;
                v[j] += h;
                let rj = log_residuals(points, to_eff(&v), engine);
                rj.iter().zip(&r).map(|(a, b)| (a - b) / h).collect()
            })
            .collect();
        let mut a = [[0.0; 4]; 4];
        let mut g = [0.0; 4];
        for i in 0..4 {
            for k in 0..4 {
                a[i][k] = cols[i].iter().zip(&cols[k]).map(|(x, y)| x * y).sum();
            }
            g[i] = cols[i].iter().zip(&r).map(|(x, y)| x * y).sum::<f64>() + PRIOR * PRIOR * (u[i] - u0[i]);
            a[i][i] += PRIOR * PRIOR;
        }
        let mut improved = false;
        for _ in 0..12 {
            let mut m = a;
            for (i, row) in m.iter_mut().enumerate() {
                row[i] += mu * a[i][i] + 1e-12;
            }
            let Some(step) = solve4(m, [-g[0], -g[1], -g[2], -g[3]]) else {
                mu *= 10.0;
                continue;
            };
            let mut v = u;
            for i in 0..4 {
                v[i] += step[i].clamp(-4.0, 4.0);
            }
            let rv = log_residuals(points, to_eff(&v), engine);
            let cv = cost(&rv, &v, &u0);
            if cv < c {
                let rel = (c - cv) / c.max(1e-300);
                u = v;
                r = rv;
                c = cv;
                mu = (mu / 3.0).max(1e-9);
                improved = rel > 1e-10;
                break;
            }
            mu *= 4.0;
        }
        if !improved {
            break;
        }
    }
    let n = points.len();
    let rms_log = (r.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
    let mape = r.iter().map(|x| (x.exp() - 1.0).abs()).sum::<f64>() / n as f64 * 100.0;
    Some(Fit {
        efficiency: to_eff(&u),
        n,
        rms_log,
        mape,
        iterations,
    })
}

/// What is held out of each fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldOut {
    /// Each device (substrate) of a family and stack, fitted on the family's other devices.
    Device,
    /// Each model of a family and stack, fitted on the family's other models.
    Model,
}

impl HoldOut {
    pub fn name(self) -> &'static str {
        match self {
            HoldOut::Device => "device",
            HoldOut::Model => "model",
        }
    }
}

/// The held-out prediction of one point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeldOut {
    /// Index into the points given to [`holdout`].
    pub index: usize,
    /// Predicted value (SI) with parameters fitted without this point's device or model;
    /// `None` with `why` when no other device or model was there to fit on.
    pub predicted: Option<f64>,
    pub why: Option<String>,
    pub fit: Option<Fit>,
}

/// Held-out predictions for every point: points are grouped by (family, stack); within a
/// group, each device (or model) is predicted from a fit on the group's other points.
/// `fit_points` says which points may be fitted on (timing metrics); all are predicted.
pub fn holdout(points: &[Point], fit_ok: &[bool], by: HoldOut, engine: Engine) -> Vec<HeldOut> {
    use std::collections::BTreeMap;
    let key_of = |p: &Point| match by {
        HoldOut::Device => p.case.substrate.clone(),
        HoldOut::Model => p.case.preset.clone(),
    };
    // (family, stack) -> held-out key -> point indices
    let mut groups: BTreeMap<(String, String), BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        groups
            .entry((p.case.family.clone(), p.case.stack.clone()))
            .or_default()
            .entry(key_of(p))
            .or_default()
            .push(i);
    }
    let mut out: Vec<HeldOut> = (0..points.len())
        .map(|index| HeldOut {
            index,
            predicted: None,
            why: None,
            fit: None,
        })
        .collect();
    for ((family, stack), members) in &groups {
        for (held, idx) in members {
            let train: Vec<Point> = members
                .iter()
                .filter(|(k, _)| *k != held)
                .flat_map(|(_, v)| v.iter().copied())
                .filter(|&i| fit_ok[i])
                .map(|i| points[i])
                .collect();
            if train.is_empty() {
                let why = format!(
                    "no other {} in family `{family}` with stack `{stack}` to fit on",
                    by.name()
                );
                for &i in idx {
                    out[i].why = Some(why.clone());
                }
                continue;
            }
            let start = points[idx[0]].substrate.efficiency;
            let Some(f) = fit(&train, start, engine) else {
                continue;
            };
            for &i in idx {
                out[i].predicted = Some(predict_with(&points[i], f.efficiency, engine));
                out[i].fit = Some(f);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_round_trip() {
        let e = Efficiency {
            compute: 0.63,
            memory: 0.81,
            kernel_overhead: Seconds::new(3.5e-6),
            token_overhead: Seconds::new(120e-6),
        };
        let back = to_eff(&from_eff(&e));
        assert!((back.compute - 0.63).abs() < 1e-12);
        assert!((back.memory - 0.81).abs() < 1e-12);
        assert!((back.kernel_overhead.get() - 3.5e-6).abs() < 1e-15);
        assert!((back.token_overhead.get() - 120e-6).abs() < 1e-13);
    }

    #[test]
    fn solves_a_linear_system() {
        let a = [
            [4.0, 1.0, 0.0, 0.0],
            [1.0, 3.0, 1.0, 0.0],
            [0.0, 1.0, 2.0, 1.0],
            [0.0, 0.0, 1.0, 5.0],
        ];
        let x = [1.0, -2.0, 0.5, 3.0];
        let b: Vec<f64> = a
            .iter()
            .map(|r| r.iter().zip(&x).map(|(p, q)| p * q).sum())
            .collect();
        let got = solve4(a, [b[0], b[1], b[2], b[3]]).unwrap();
        for i in 0..4 {
            assert!((got[i] - x[i]).abs() < 1e-12);
        }
    }
}
