//! The law forms, their named coefficients and their predictions.
//!
//! Every form predicts the final training/validation loss in nats per token. Prediction is
//! allocation-free and branch-light: the search calls it once per candidate.

use serde::{Deserialize, Serialize};

/// The inputs a law may read. A law ignores the inputs it does not use (see
/// [`LawForm::inputs`]); an input it uses must be finite and positive, or the prediction is NaN.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LawInputs {
    /// Parameter count N (as the law was fitted: total, active or non-embedding; see the law
    /// file's column mapping).
    pub params: f64,
    /// Training tokens D.
    pub tokens: f64,
    /// Model width (d_model).
    pub width: f64,
    /// Number of layers.
    pub depth: f64,
    /// r = FFN parameters / attention parameters (per layer), for the conditional law.
    pub ffn_ratio: f64,
}

/// One input variable of a law, with its default CSV column name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Params,
    Tokens,
    Width,
    Depth,
    FfnRatio,
}

impl Input {
    pub const ALL: [Input; 5] = [
        Input::Params,
        Input::Tokens,
        Input::Width,
        Input::Depth,
        Input::FfnRatio,
    ];

    /// The logical name, also the default CSV column.
    pub fn name(self) -> &'static str {
        match self {
            Input::Params => "params",
            Input::Tokens => "tokens",
            Input::Width => "width",
            Input::Depth => "depth",
            Input::FfnRatio => "ffn_ratio",
        }
    }

    pub fn from_name(name: &str) -> Option<Input> {
        Input::ALL.into_iter().find(|i| i.name() == name)
    }

    pub fn get(self, x: &LawInputs) -> f64 {
        match self {
            Input::Params => x.params,
            Input::Tokens => x.tokens,
            Input::Width => x.width,
            Input::Depth => x.depth,
            Input::FfnRatio => x.ffn_ratio,
        }
    }

    pub fn set(self, x: &mut LawInputs, v: f64) {
        match self {
            Input::Params => x.params = v,
            Input::Tokens => x.tokens = v,
            Input::Width => x.width = v,
            Input::Depth => x.depth = v,
            Input::FfnRatio => x.ffn_ratio = v,
        }
    }
}

/// Which functional form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LawForm {
    /// L = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022).
    Chinchilla,
    /// L = exp(e) + sum_i exp(c_i) x_i^(-e_i), x = (width, depth, N, D) (McLeish et al. 2025).
    Gemstones,
    /// The Gemstones log-sum-exp form over (N, D) only.
    GemstonesNd,
    /// L = (a0 + a1 ln(d/sqrt N) + a2 sqrt(N)/d)(b0 + b1 ln r + b2/r) L_opt(N, D)
    /// (arXiv 2510.18245), L_opt of the Chinchilla form.
    Conditional,
}

impl LawForm {
    pub const ALL: [LawForm; 4] = [
        LawForm::Chinchilla,
        LawForm::Gemstones,
        LawForm::GemstonesNd,
        LawForm::Conditional,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LawForm::Chinchilla => "chinchilla",
            LawForm::Gemstones => "gemstones",
            LawForm::GemstonesNd => "gemstones-nd",
            LawForm::Conditional => "conditional",
        }
    }

    /// The inputs the form needs. `ffn_ratio` is optional for the conditional law: without it
    /// the ratio factor is not fitted (b1 = b2 = 0).
    pub fn inputs(self) -> &'static [Input] {
        match self {
            LawForm::Chinchilla | LawForm::GemstonesNd => &[Input::Params, Input::Tokens],
            LawForm::Gemstones => &[Input::Width, Input::Depth, Input::Params, Input::Tokens],
            LawForm::Conditional => &[Input::Params, Input::Tokens, Input::Width],
        }
    }
}

/// One term exp(c) * x^(-e) of a log-sum-exp law.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// c = ln of the coefficient.
    pub log_coef: f64,
    /// e, the exponent of the decay.
    pub exponent: f64,
}

impl Term {
    #[inline]
    fn eval(self, x: f64) -> f64 {
        (self.log_coef - self.exponent * x.ln()).exp()
    }
}

/// L = E + A / N^alpha + B / D^beta.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chinchilla {
    #[serde(rename = "E")]
    pub e: f64,
    #[serde(rename = "A")]
    pub a: f64,
    #[serde(rename = "B")]
    pub b: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl Chinchilla {
    /// Hoffmann et al. 2022 approach 3, as rounded in the paper body (MassiveText, N = total
    /// parameters, D = tokens).
    pub const HOFFMANN_2022: Chinchilla = Chinchilla {
        e: 1.69,
        a: 406.4,
        b: 410.7,
        alpha: 0.34,
        beta: 0.28,
    };

    #[inline]
    pub fn predict(&self, params: f64, tokens: f64) -> f64 {
        self.e + self.a * (-self.alpha * params.ln()).exp() + self.b * (-self.beta * tokens.ln()).exp()
    }
}

/// The four-variable Gemstones law over (width, depth, N, D).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gemstones {
    /// e: the irreducible loss is exp(e).
    pub irreducible_log: f64,
    pub width: Term,
    pub depth: Term,
    pub params: Term,
    pub tokens: Term,
}

impl Gemstones {
    /// McLeish et al. 2025, `parameters_delta-4/approach_3_width_depth_parameters_grid_search_0_
    /// hot_100b+.json` (N = `params_active_precise`); objective 2.949708e-4 (Huber sum, delta
    /// 1e-4) on `gemstones_hot_100b_plus.csv`.
    pub const PUBLISHED_HOT_100B: Gemstones = Gemstones {
        irreducible_log: 0.4282048563,
        width: Term {
            log_coef: 1.082043835,
            exponent: 0.2195783536,
        },
        depth: Term {
            log_coef: -0.2186969889,
            exponent: 0.4758917337,
        },
        params: Term {
            log_coef: 6.0902355695,
            exponent: 0.3636454068,
        },
        tokens: Term {
            log_coef: 10.4720427681,
            exponent: 0.4935127042,
        },
    };

    #[inline]
    pub fn predict(&self, x: &LawInputs) -> f64 {
        self.irreducible_log.exp()
            + self.width.eval(x.width)
            + self.depth.eval(x.depth)
            + self.params.eval(x.params)
            + self.tokens.eval(x.tokens)
    }
}

/// The Gemstones log-sum-exp law over (N, D) only: the Chinchilla form in log coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GemstonesNd {
    pub irreducible_log: f64,
    pub params: Term,
    pub tokens: Term,
}

impl GemstonesNd {
    /// McLeish et al. 2025, `parameters_delta-4/approach_3_parameters_grid_search_0_hot_100b+.json`;
    /// objective 6.9233e-4 (Huber sum, delta 1e-4) on `gemstones_hot_100b_plus.csv`.
    pub const PUBLISHED_HOT_100B: GemstonesNd = GemstonesNd {
        irreducible_log: 0.6655226816,
        params: Term {
            log_coef: 4.8761769847,
            exponent: 0.2575546364,
        },
        tokens: Term {
            log_coef: 12.6984060933,
            exponent: 0.5909317455,
        },
    };

    #[inline]
    pub fn predict(&self, params: f64, tokens: f64) -> f64 {
        self.irreducible_log.exp() + self.params.eval(params) + self.tokens.eval(tokens)
    }
}

/// The conditional architecture law of arXiv 2510.18245:
/// L = (a0 + a1 ln(d / sqrt N) + a2 sqrt(N) / d) * (b0 + b1 ln r + b2 / r) * L_opt(N, D).
/// With b1 = b2 = 0 the ratio factor is the constant b0 and r is not read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditional {
    pub a0: f64,
    pub a1: f64,
    pub a2: f64,
    pub b0: f64,
    pub b1: f64,
    pub b2: f64,
    pub l_opt: Chinchilla,
}

impl Conditional {
    /// The width factor a0 + a1 ln(d / sqrt N) + a2 sqrt(N) / d.
    #[inline]
    pub fn width_factor(&self, width: f64, params: f64) -> f64 {
        let u = width.ln() - 0.5 * params.ln();
        self.a0 + self.a1 * u + self.a2 * (-u).exp()
    }

    /// The ratio factor b0 + b1 ln r + b2 / r (b0 when the factor is off).
    #[inline]
    pub fn ratio_factor(&self, ffn_ratio: f64) -> f64 {
        if self.b1 == 0.0 && self.b2 == 0.0 {
            self.b0
        } else {
            self.b0 + self.b1 * ffn_ratio.ln() + self.b2 / ffn_ratio
        }
    }

    /// Whether the ratio factor reads r.
    pub fn uses_ratio(&self) -> bool {
        !(self.b1 == 0.0 && self.b2 == 0.0)
    }

    #[inline]
    pub fn predict(&self, x: &LawInputs) -> f64 {
        self.width_factor(x.width, x.params)
            * self.ratio_factor(x.ffn_ratio)
            * self.l_opt.predict(x.params, x.tokens)
    }
}

/// A law with its coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "kebab-case")]
pub enum Law {
    Chinchilla(Chinchilla),
    Gemstones(Gemstones),
    GemstonesNd(GemstonesNd),
    Conditional(Conditional),
}

impl Law {
    pub fn form(&self) -> LawForm {
        match self {
            Law::Chinchilla(_) => LawForm::Chinchilla,
            Law::Gemstones(_) => LawForm::Gemstones,
            Law::GemstonesNd(_) => LawForm::GemstonesNd,
            Law::Conditional(_) => LawForm::Conditional,
        }
    }

    /// The inputs this law reads (for the conditional law, `ffn_ratio` only when its ratio
    /// factor is on).
    pub fn inputs(&self) -> &'static [Input] {
        match self {
            Law::Conditional(c) if c.uses_ratio() => {
                &[Input::Params, Input::Tokens, Input::Width, Input::FfnRatio]
            }
            other => other.form().inputs(),
        }
    }

    /// Predicted loss. Allocation-free; NaN when an input the law reads is not positive.
    #[inline]
    pub fn predict(&self, x: &LawInputs) -> f64 {
        match self {
            Law::Chinchilla(c) => c.predict(x.params, x.tokens),
            Law::Gemstones(g) => g.predict(x),
            Law::GemstonesNd(g) => g.predict(x.params, x.tokens),
            Law::Conditional(c) => c.predict(x),
        }
    }

    /// Problems with the coefficients, each as (coefficient name as in [`Law::coefficients`],
    /// message): every number finite; Chinchilla's E >= 0 and A, B > 0; exponents in (0, 3];
    /// log-coefficients within +-100; the irreducible loss exp(e) at most 100 nats; the
    /// conditional law's factors positive for d / sqrt(N) and r in [0.01, 100]. A law that
    /// passes predicts a finite positive loss for any finite positive inputs (for the
    /// conditional law, within those ranges). Shared by every loader of law files.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut need = |name: String, v: f64, ok: bool, what: &str| {
            if !v.is_finite() {
                out.push((name, format!("is {v}, expected a finite number")));
            } else if !ok {
                out.push((name, format!("is {v}, expected {what}")));
            }
        };
        let exponent = |v: f64| v > 0.0 && v <= 3.0;
        let chin = |prefix: &str, c: &Chinchilla, need: &mut dyn FnMut(String, f64, bool, &str)| {
            need(
                format!("{prefix}E"),
                c.e,
                c.e >= 0.0 && c.e <= 100.0,
                "an irreducible loss from 0 to 100 nats",
            );
            need(
                format!("{prefix}A"),
                c.a,
                c.a > 0.0 && c.a <= 1e12,
                "a coefficient in (0, 1e12]",
            );
            need(
                format!("{prefix}B"),
                c.b,
                c.b > 0.0 && c.b <= 1e12,
                "a coefficient in (0, 1e12]",
            );
            need(
                format!("{prefix}alpha"),
                c.alpha,
                exponent(c.alpha),
                "an exponent in (0, 3]",
            );
            need(
                format!("{prefix}beta"),
                c.beta,
                exponent(c.beta),
                "an exponent in (0, 3]",
            );
        };
        let term = |name: &str, t: &Term, need: &mut dyn FnMut(String, f64, bool, &str)| {
            need(
                format!("{name}.log_coef"),
                t.log_coef,
                t.log_coef.abs() <= 100.0,
                "a log-coefficient within +-100",
            );
            need(
                format!("{name}.exponent"),
                t.exponent,
                exponent(t.exponent),
                "an exponent in (0, 3]",
            );
        };
        let irreducible = |v: f64, need: &mut dyn FnMut(String, f64, bool, &str)| {
            need(
                "irreducible_log".into(),
                v,
                (-50.0..=100f64.ln()).contains(&v),
                "a log irreducible loss from -50 to ln(100)",
            )
        };
        match self {
            Law::Chinchilla(c) => chin("", c, &mut need),
            Law::Gemstones(g) => {
                irreducible(g.irreducible_log, &mut need);
                term("width", &g.width, &mut need);
                term("depth", &g.depth, &mut need);
                term("params", &g.params, &mut need);
                term("tokens", &g.tokens, &mut need);
            }
            Law::GemstonesNd(g) => {
                irreducible(g.irreducible_log, &mut need);
                term("params", &g.params, &mut need);
                term("tokens", &g.tokens, &mut need);
            }
            Law::Conditional(c) => {
                for (name, v) in [
                    ("a0", c.a0),
                    ("a1", c.a1),
                    ("a2", c.a2),
                    ("b0", c.b0),
                    ("b1", c.b1),
                    ("b2", c.b2),
                ] {
                    need(name.into(), v, v.abs() <= 1e6, "a coefficient within +-1e6");
                }
                chin("l_opt.", &c.l_opt, &mut need);
                if out.is_empty() {
                    // Both factors on a grid of d / sqrt(N) and r from 0.01 to 100 (real
                    // models: 0.03 for GPT-3 175B to 0.2 for a 100k-parameter toy).
                    let grid = (0..=40).map(|i| 0.01f64 * 10_000f64.powf(i as f64 / 40.0));
                    if let Some(x) = grid
                        .clone()
                        .find(|&x| c.width_factor(x, 1.0).is_nan() || c.width_factor(x, 1.0) <= 0.0)
                    {
                        out.push((
                            "a0".into(),
                            format!(
                                "the width factor a0 + a1 ln(d/sqrt N) + a2 sqrt(N)/d is {} at d/sqrt(N) = {x:.3}; it must be positive",
                                c.width_factor(x, 1.0)
                            ),
                        ));
                    }
                    if c.uses_ratio() {
                        if let Some(r) = grid
                            .clone()
                            .find(|&r| c.ratio_factor(r).is_nan() || c.ratio_factor(r) <= 0.0)
                        {
                            out.push((
                                "b0".into(),
                                format!(
                                    "the ratio factor b0 + b1 ln r + b2 / r is {} at r = {r:.3}; it must be positive",
                                    c.ratio_factor(r)
                                ),
                            ));
                        }
                    } else if c.b0.is_nan() || c.b0 <= 0.0 {
                        out.push(("b0".into(), format!("is {}, expected a positive factor", c.b0)));
                    }
                }
            }
        }
        out
    }

    /// The coefficients by name, in a fixed order (for tables and JSON summaries).
    pub fn coefficients(&self) -> Vec<(String, f64)> {
        let term = |name: &str, t: &Term| {
            [
                (format!("{name}.log_coef"), t.log_coef),
                (format!("{name}.exponent"), t.exponent),
            ]
        };
        let chin = |prefix: &str, c: &Chinchilla| {
            vec![
                (format!("{prefix}E"), c.e),
                (format!("{prefix}A"), c.a),
                (format!("{prefix}B"), c.b),
                (format!("{prefix}alpha"), c.alpha),
                (format!("{prefix}beta"), c.beta),
            ]
        };
        match self {
            Law::Chinchilla(c) => chin("", c),
            Law::Gemstones(g) => {
                let mut v = vec![("irreducible_log".to_string(), g.irreducible_log)];
                v.extend(term("width", &g.width));
                v.extend(term("depth", &g.depth));
                v.extend(term("params", &g.params));
                v.extend(term("tokens", &g.tokens));
                v
            }
            Law::GemstonesNd(g) => {
                let mut v = vec![("irreducible_log".to_string(), g.irreducible_log)];
                v.extend(term("params", &g.params));
                v.extend(term("tokens", &g.tokens));
                v
            }
            Law::Conditional(c) => {
                let mut v = vec![
                    ("a0".to_string(), c.a0),
                    ("a1".to_string(), c.a1),
                    ("a2".to_string(), c.a2),
                    ("b0".to_string(), c.b0),
                    ("b1".to_string(), c.b1),
                    ("b2".to_string(), c.b2),
                ];
                v.extend(chin("l_opt.", &c.l_opt));
                v
            }
        }
    }
}
