//! The fitting side of each form: a flat parameter vector theta, the log-prediction ln L(theta)
//! and its analytic gradient, and the conversion to and from the named [`Law`].
//!
//! Log-sum-exp forms (Chinchilla, Gemstones, Gemstones-ND) use
//! theta = [e_1..e_k, c_1..c_k, e] with ln L = LSE(c_i - e_i ln x_i, e), the parameterisation of
//! the Gemstones and Epoch fitting code. The conditional law multiplies two factors onto
//! L_opt; with L_opt fitted jointly a0 = b0 = 1 are fixed (the overall scale is already free in
//! E, A, B), with L_opt given b0 = 1 is fixed and a0 is free.

use super::forms::{Chinchilla, Conditional, Gemstones, GemstonesNd, Input, Law, LawForm, LawInputs, Term};

/// Largest parameter vector of any form (conditional, joint, with ratio factor: 9).
pub(crate) const MAX_PARAMS: usize = 12;

/// One data row with the logarithms the forms need, precomputed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    /// ln of [params, tokens, width, depth, ffn_ratio] (NaN where absent).
    pub ln: [f64; 5],
    pub ln_loss: f64,
}

impl Row {
    pub fn new(x: &LawInputs, loss: f64) -> Row {
        let mut ln = [f64::NAN; 5];
        for (slot, input) in ln.iter_mut().zip(Input::ALL) {
            let v = input.get(x);
            if v > 0.0 {
                *slot = v.ln();
            }
        }
        Row {
            ln,
            ln_loss: loss.ln(),
        }
    }
}

fn slot(input: Input) -> usize {
    match input {
        Input::Params => 0,
        Input::Tokens => 1,
        Input::Width => 2,
        Input::Depth => 3,
        Input::FfnRatio => 4,
    }
}

/// A fit-side model: which form, which features, which parameters are fixed.
#[derive(Debug, Clone)]
pub(crate) enum FitModel {
    /// LSE over the given features; `form` decides the conversion back to a [`Law`].
    Lse { form: LawForm, features: Vec<Input> },
    /// Conditional law. `l_opt`: Some = given and fixed; None = fitted jointly.
    Conditional { ratio: bool, l_opt: Option<Chinchilla> },
}

impl FitModel {
    pub fn for_form(form: LawForm, ratio: bool, l_opt: Option<Chinchilla>) -> FitModel {
        match form {
            LawForm::Chinchilla | LawForm::GemstonesNd => FitModel::Lse {
                form,
                features: vec![Input::Params, Input::Tokens],
            },
            LawForm::Gemstones => FitModel::Lse {
                form,
                features: vec![Input::Width, Input::Depth, Input::Params, Input::Tokens],
            },
            LawForm::Conditional => FitModel::Conditional { ratio, l_opt },
        }
    }

    pub fn n_params(&self) -> usize {
        match self {
            FitModel::Lse { features, .. } => 2 * features.len() + 1,
            FitModel::Conditional { ratio, l_opt } => {
                let shape = if *ratio { 4 } else { 2 };
                match l_opt {
                    Some(_) => shape + 1,
                    None => shape + 5,
                }
            }
        }
    }

    /// Names of theta's entries, in order.
    pub fn param_names(&self) -> Vec<String> {
        match self {
            FitModel::Lse { features, .. } => {
                let mut v: Vec<String> = features
                    .iter()
                    .map(|f| format!("{}.exponent", f.name()))
                    .collect();
                v.extend(features.iter().map(|f| format!("{}.log_coef", f.name())));
                v.push("irreducible_log".into());
                v
            }
            FitModel::Conditional { ratio, l_opt } => {
                let mut v: Vec<String> = Vec::new();
                if l_opt.is_some() {
                    v.push("a0".into());
                }
                v.extend(["a1".into(), "a2".into()]);
                if *ratio {
                    v.extend(["b1".into(), "b2".into()]);
                }
                if l_opt.is_none() {
                    v.extend([
                        "alpha".into(),
                        "beta".into(),
                        "ln_A".into(),
                        "ln_B".into(),
                        "ln_E".into(),
                    ]);
                }
                v
            }
        }
    }

    /// ln L(theta) at `row`, with d ln L / d theta written into `grad` (len n_params).
    /// NaN when theta is outside the form's domain (a factor of the conditional law <= 0).
    #[inline]
    pub fn log_pred_grad(&self, theta: &[f64], row: &Row, grad: &mut [f64]) -> f64 {
        match self {
            FitModel::Lse { features, .. } => {
                let k = features.len();
                let mut t = [0.0; 5];
                let mut m = theta[2 * k];
                t[k] = m;
                for (i, f) in features.iter().enumerate() {
                    t[i] = theta[k + i] - theta[i] * row.ln[slot(*f)];
                    m = m.max(t[i]);
                }
                let mut s = 0.0;
                for v in t.iter_mut().take(k + 1) {
                    *v = (*v - m).exp();
                    s += *v;
                }
                let inv = 1.0 / s;
                for (i, f) in features.iter().enumerate() {
                    let w = t[i] * inv;
                    grad[i] = -w * row.ln[slot(*f)];
                    grad[k + i] = w;
                }
                grad[2 * k] = t[k] * inv;
                m + s.ln()
            }
            FitModel::Conditional { ratio, l_opt } => {
                let (ln_n, ln_d, ln_w) = (row.ln[0], row.ln[1], row.ln[2]);
                let u = ln_w - 0.5 * ln_n;
                let v = (-u).exp();
                let mut j = 0;
                let a0 = if l_opt.is_some() {
                    j += 1;
                    theta[0]
                } else {
                    1.0
                };
                let (a1, a2) = (theta[j], theta[j + 1]);
                let ia = j;
                j += 2;
                let a = a0 + a1 * u + a2 * v;
                let (mut b, mut ln_r, mut inv_r, mut ib) = (1.0, 0.0, 0.0, 0);
                if *ratio {
                    ln_r = row.ln[4];
                    inv_r = (-ln_r).exp();
                    b = 1.0 + theta[j] * ln_r + theta[j + 1] * inv_r;
                    ib = j;
                    j += 2;
                }
                if !(a > 0.0 && b > 0.0) {
                    return f64::NAN;
                }
                let lse = match l_opt {
                    Some(c) => c.predict(ln_n.exp(), ln_d.exp()).ln(),
                    None => {
                        let (alpha, beta, la, lb, le) =
                            (theta[j], theta[j + 1], theta[j + 2], theta[j + 3], theta[j + 4]);
                        let t0 = la - alpha * ln_n;
                        let t1 = lb - beta * ln_d;
                        let m = t0.max(t1).max(le);
                        let (e0, e1, e2) = ((t0 - m).exp(), (t1 - m).exp(), (le - m).exp());
                        let s = e0 + e1 + e2;
                        let (w0, w1, w2) = (e0 / s, e1 / s, e2 / s);
                        grad[j] = -w0 * ln_n;
                        grad[j + 1] = -w1 * ln_d;
                        grad[j + 2] = w0;
                        grad[j + 3] = w1;
                        grad[j + 4] = w2;
                        m + s.ln()
                    }
                };
                if l_opt.is_some() {
                    grad[0] = 1.0 / a;
                }
                grad[ia] = u / a;
                grad[ia + 1] = v / a;
                if *ratio {
                    grad[ib] = ln_r / b;
                    grad[ib + 1] = inv_r / b;
                }
                a.ln() + b.ln() + lse
            }
        }
    }

    /// The named law for theta.
    pub fn to_law(&self, theta: &[f64]) -> Law {
        match self {
            FitModel::Lse { form, features } => {
                let k = features.len();
                let term = |i: usize| Term {
                    exponent: theta[i],
                    log_coef: theta[k + i],
                };
                let e = theta[2 * k];
                match form {
                    LawForm::Chinchilla => Law::Chinchilla(Chinchilla {
                        e: e.exp(),
                        a: theta[k].exp(),
                        b: theta[k + 1].exp(),
                        alpha: theta[0],
                        beta: theta[1],
                    }),
                    LawForm::GemstonesNd => Law::GemstonesNd(GemstonesNd {
                        irreducible_log: e,
                        params: term(0),
                        tokens: term(1),
                    }),
                    _ => Law::Gemstones(Gemstones {
                        irreducible_log: e,
                        width: term(0),
                        depth: term(1),
                        params: term(2),
                        tokens: term(3),
                    }),
                }
            }
            FitModel::Conditional { ratio, l_opt } => {
                let mut j = 0;
                let a0 = if l_opt.is_some() {
                    j += 1;
                    theta[0]
                } else {
                    1.0
                };
                let (a1, a2) = (theta[j], theta[j + 1]);
                j += 2;
                let (b1, b2) = if *ratio {
                    j += 2;
                    (theta[j - 2], theta[j - 1])
                } else {
                    (0.0, 0.0)
                };
                let l_opt = match l_opt {
                    Some(c) => *c,
                    None => Chinchilla {
                        alpha: theta[j],
                        beta: theta[j + 1],
                        a: theta[j + 2].exp(),
                        b: theta[j + 3].exp(),
                        e: theta[j + 4].exp(),
                    },
                };
                Law::Conditional(Conditional {
                    a0,
                    a1,
                    a2,
                    b0: 1.0,
                    b1,
                    b2,
                    l_opt,
                })
            }
        }
    }

    /// theta for a law of this model's form (used for warm starts); None if the law does not
    /// fit this model (other form, or a fixed part that differs).
    pub fn theta_of(&self, law: &Law) -> Option<Vec<f64>> {
        match (self, law) {
            (FitModel::Lse { .. }, Law::Chinchilla(c)) => {
                Some(vec![c.alpha, c.beta, c.a.ln(), c.b.ln(), c.e.ln()])
            }
            (FitModel::Lse { .. }, Law::GemstonesNd(g)) => Some(vec![
                g.params.exponent,
                g.tokens.exponent,
                g.params.log_coef,
                g.tokens.log_coef,
                g.irreducible_log,
            ]),
            (FitModel::Lse { features, .. }, Law::Gemstones(g)) if features.len() == 4 => {
                let t = [g.width, g.depth, g.params, g.tokens];
                let mut v: Vec<f64> = t.iter().map(|t| t.exponent).collect();
                v.extend(t.iter().map(|t| t.log_coef));
                v.push(g.irreducible_log);
                Some(v)
            }
            (FitModel::Conditional { ratio, l_opt }, Law::Conditional(c)) => {
                // Bring the law to this model's normalisation: b0 = 1 always, a0 = 1 when L_opt
                // is fitted (the scale moves into E, A, B).
                if c.b0 <= 0.0 || c.a0 <= 0.0 {
                    return None;
                }
                let mut v = Vec::new();
                let (sa, sb) = (c.a0, c.b0);
                match l_opt {
                    Some(_) => v.extend([c.a0 * sb, c.a1 * sb, c.a2 * sb]),
                    None => v.extend([c.a1 / sa, c.a2 / sa]),
                }
                if *ratio {
                    v.extend([c.b1 / sb, c.b2 / sb]);
                }
                if l_opt.is_none() {
                    let s = (sa * sb).ln();
                    v.extend([
                        c.l_opt.alpha,
                        c.l_opt.beta,
                        c.l_opt.a.ln() + s,
                        c.l_opt.b.ln() + s,
                        c.l_opt.e.ln() + s,
                    ]);
                }
                Some(v)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        let mut v = Vec::new();
        for (i, (n, d, w, l, r)) in [
            (1.2e8, 2.4e9, 512.0, 12.0, 2.0),
            (5.0e8, 1.0e10, 1024.0, 20.0, 2.7),
            (2.0e9, 4.0e10, 2048.0, 30.0, 1.5),
        ]
        .into_iter()
        .enumerate()
        {
            let x = LawInputs {
                params: n,
                tokens: d,
                width: w,
                depth: l,
                ffn_ratio: r,
            };
            v.push(Row::new(&x, 3.0 - 0.1 * i as f64));
        }
        v
    }

    fn check_grad(model: &FitModel, theta: &[f64]) {
        let n = model.n_params();
        assert_eq!(theta.len(), n);
        for row in rows() {
            let mut g = vec![0.0; n];
            let f = model.log_pred_grad(theta, &row, &mut g);
            assert!(f.is_finite());
            for i in 0..n {
                let h = 1e-6 * theta[i].abs().max(1.0);
                let mut tp = theta.to_vec();
                tp[i] += h;
                let mut tm = theta.to_vec();
                tm[i] -= h;
                let mut scratch = vec![0.0; n];
                let fd = (model.log_pred_grad(&tp, &row, &mut scratch)
                    - model.log_pred_grad(&tm, &row, &mut scratch))
                    / (2.0 * h);
                assert!(
                    (fd - g[i]).abs() <= 1e-6 * fd.abs().max(1e-3),
                    "param {i}: fd {fd} vs {}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_grad(
            &FitModel::for_form(LawForm::Gemstones, false, None),
            &[0.22, 0.48, 0.36, 0.49, 1.08, -0.22, 6.09, 10.47, 0.43],
        );
        check_grad(
            &FitModel::for_form(LawForm::Chinchilla, false, None),
            &[0.34, 0.28, 6.0, 6.0, 0.5],
        );
        check_grad(
            &FitModel::for_form(LawForm::Conditional, true, None),
            &[0.05, 0.3, 0.02, 0.1, 0.3, 0.3, 6.0, 6.0, 0.5],
        );
        check_grad(
            &FitModel::for_form(LawForm::Conditional, false, Some(Chinchilla::HOFFMANN_2022)),
            &[0.9, 0.05, 0.3],
        );
    }

    #[test]
    fn law_round_trip_and_prediction_agree() {
        let cases: Vec<(FitModel, Vec<f64>)> = vec![
            (
                FitModel::for_form(LawForm::Gemstones, false, None),
                vec![0.22, 0.48, 0.36, 0.49, 1.08, -0.22, 6.09, 10.47, 0.43],
            ),
            (
                FitModel::for_form(LawForm::GemstonesNd, false, None),
                vec![0.26, 0.59, 4.9, 12.7, 0.67],
            ),
            (
                FitModel::for_form(LawForm::Chinchilla, false, None),
                vec![0.34, 0.28, 6.0, 6.0, 0.5],
            ),
            (
                FitModel::for_form(LawForm::Conditional, true, None),
                vec![0.05, 0.3, 0.02, 0.1, 0.3, 0.3, 6.0, 6.0, 0.5],
            ),
        ];
        let x = LawInputs {
            params: 3e8,
            tokens: 6e9,
            width: 768.0,
            depth: 16.0,
            ffn_ratio: 2.2,
        };
        let row = Row::new(&x, 3.0);
        for (model, theta) in cases {
            let law = model.to_law(&theta);
            let mut g = vec![0.0; model.n_params()];
            let lp = model.log_pred_grad(&theta, &row, &mut g);
            let p = law.predict(&x);
            assert!((lp.exp() - p).abs() < 1e-12 * p, "{law:?}: {} vs {p}", lp.exp());
            let back = model.theta_of(&law).expect("same form");
            for (a, b) in back.iter().zip(&theta) {
                assert!((a - b).abs() < 1e-12 * b.abs().max(1.0));
            }
        }
    }
}
