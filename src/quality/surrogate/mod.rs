//! Gradient-boosted loss surrogate: predicts a training target (validation loss) from an
//! architecture, with an uncertainty for optimistic acquisition (`mu - beta * sigma`).
//!
//! - [`features`]: a fixed-length vector from any [`Model`].
//! - The learner is forust-ml's GBDT (squared loss), fitted on a log-shifted target
//!   `ln(y - shift)` by default: the LLMForge losses have a long upper tail (runs that train
//!   badly reach 5-6 nats), which squared loss on the raw value chases at the expense of the
//!   bulk. Predictions are mapped back with `exp(z) + shift`.
//! - Uncertainty: an ensemble; member `m` is fitted on a seeded resample of the rows
//!   ([`Resample`]: by default 80% drawn without replacement, which cost less CV accuracy than
//!   the classic bootstrap: MAE 0.248 vs 0.256 at equal settings) and the ensemble gives the
//!   mean `mu` and standard deviation `sigma` of the members' predictions.
//! - Fitted trees are flattened into complete binary trees ([`forest`]) for fast batch
//!   prediction; the saved file (JSON) holds them with the feature names, the fit settings, a
//!   hash of the training data and the feature importance, and needs no forust to load.
//! - [`metrics`]: MAE, RMSE, Spearman, Kendall tau-b, top-5% MAE, k@1% / k@5%.
//! - [`cross_validate`]: k-fold cross-validation with a seeded split ([`fold_assignment`]).
//!
//! Everything is deterministic for a seed: members are fitted independently (in parallel) and
//! collected in order.

pub mod features;
pub mod forest;
pub mod metrics;

use crate::model::Model;
use features::{N_FEATURES, feature_names};
use forest::{FlatTree, Forest};
use metrics::Metrics;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::{RngExt, seq::SliceRandom};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const _: () = assert!(
    N_FEATURES <= forest::ROW,
    "feature rows must fit the padded walk rows"
);

/// File format tag and version of a saved surrogate.
pub const FORMAT: &str = "llmforge-surrogate";
pub const FORMAT_VERSION: u32 = 1;

/// A problem fitting, loading or using a surrogate.
#[derive(Debug, thiserror::Error)]
pub enum SurrogateError {
    #[error("need at least {need} training rows, got {got}")]
    TooFewRows { need: usize, got: usize },
    #[error("training target {index} is not finite ({value})")]
    NonFiniteTarget { index: usize, value: f64 },
    #[error("feature matrix has {len} values, not a multiple of {n_features} features")]
    BadMatrix { len: usize, n_features: usize },
    #[error("invalid fit setting: {0}")]
    BadConfig(String),
    #[error("gradient boosting failed: {0}")]
    Booster(String),
    #[error("{file}: not a surrogate model file: {message}")]
    Parse { file: String, message: String },
    #[error(
        "{file}: the model was saved with a different feature schema ({saved} features; this build has {current}); refit it"
    )]
    Schema {
        file: String,
        saved: usize,
        current: usize,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{folds}-fold cross-validation needs at least 2 folds and 2 rows per fold, got {rows} rows")]
    Folds { folds: usize, rows: usize },
}

/// How the target is transformed before fitting.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Transform {
    Identity,
    /// `z = ln(y - shift)`; `shift` is set at fit time below the smallest target.
    LogShift {
        shift: f64,
    },
}

impl Transform {
    fn forward(self, y: f64) -> f64 {
        match self {
            Transform::Identity => y,
            Transform::LogShift { shift } => (y - shift).ln(),
        }
    }
    fn inverse(self, z: f64) -> f64 {
        match self {
            Transform::Identity => z,
            Transform::LogShift { shift } => z.exp() + shift,
        }
    }
}

/// Settings of a fit. The defaults were chosen by 5-fold CV on the LLMForge file under a
/// prediction-speed budget (>= 200,000 candidates per CPU-second for 8 members): depth 5 x 60
/// trees x 8 members gave CV MAE 0.228; depth 6 x 100 trees 0.224 at half the speed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    pub seed: u64,
    /// Bootstrap ensemble size (1 = a single model on all rows, sigma 0).
    pub ensemble: usize,
    pub iterations: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    /// L2 regularisation of leaf weights.
    pub l2: f32,
    /// Minimum hessian sum (rows, for squared loss) in a leaf.
    pub min_leaf_weight: f32,
    /// Row subsample per tree (stochastic boosting).
    pub subsample: f32,
    /// Column subsample per tree.
    pub colsample: f64,
    /// Fit `ln(y - shift)` instead of `y`.
    pub log_target: bool,
    /// Rows each ensemble member is fitted on.
    pub resample: Resample,
}

/// How ensemble members see the training rows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Resample {
    /// n rows drawn with replacement (the classic bootstrap).
    Bootstrap,
    /// `fraction` of the rows drawn without replacement (subbagging).
    Subsample { fraction: f64 },
    /// Every row; members differ only by their boosting seed (row / column subsampling).
    None,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            seed: 42,
            ensemble: 8,
            iterations: 60,
            learning_rate: 0.15,
            max_depth: 5,
            l2: 1.0,
            min_leaf_weight: 3.0,
            subsample: 0.8,
            colsample: 0.5,
            log_target: true,
            resample: Resample::Subsample { fraction: 0.8 },
        }
    }
}

impl FitConfig {
    fn check(&self) -> Result<(), SurrogateError> {
        let bad = |m: &str| Err(SurrogateError::BadConfig(m.to_string()));
        if self.ensemble == 0 {
            return bad("ensemble must be at least 1");
        }
        if self.iterations == 0 {
            return bad("iterations must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning_rate must be in (0, 1]");
        }
        if self.max_depth == 0 || self.max_depth > 16 {
            return bad("max_depth must be in 1..=16");
        }
        let unit = |v: f64| v > 0.0 && v <= 1.0;
        if !unit(f64::from(self.subsample)) || !unit(self.colsample) {
            return bad("subsample and colsample must be in (0, 1]");
        }
        if let Resample::Subsample { fraction } = self.resample {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return bad("resample fraction must be in (0, 1]");
            }
        }
        if !(self.l2 >= 0.0 && self.min_leaf_weight >= 0.0) {
            return bad("l2 and min_leaf_weight must be >= 0");
        }
        Ok(())
    }
}

/// Mean and spread of the ensemble for one candidate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub mu: f64,
    pub sigma: f64,
}

impl Prediction {
    /// Optimistic acquisition value for minimisation: `mu - beta * sigma`.
    pub fn optimistic(&self, beta: f64) -> f64 {
        self.mu - beta * self.sigma
    }
}

/// One feature's share of the total split gain over every tree of the ensemble.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    pub feature: String,
    pub gain_share: f64,
}

/// A fitted surrogate (what is saved).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Surrogate {
    pub format: String,
    pub version: u32,
    /// Name of the target column it predicts.
    pub target: String,
    pub feature_names: Vec<String>,
    /// FNV-1a 64 of the training features and targets ([`data_hash`]).
    pub data_hash: String,
    pub n_train: usize,
    pub config: FitConfig,
    pub transform: Transform,
    /// Features by descending gain share (ties by name).
    pub importance: Vec<Importance>,
    pub members: Vec<Forest>,
}

/// FNV-1a 64 over the target name, the feature names, and every feature and target value
/// (their IEEE bits), as `fnv1a64:<16 hex digits>`.
pub fn data_hash(target: &str, x: &[f64], y: &[f64]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(target.as_bytes());
    for n in feature_names() {
        eat(n.as_bytes());
        eat(&[0]);
    }
    eat(&(y.len() as u64).to_le_bytes());
    for v in x.iter().chain(y) {
        eat(&v.to_bits().to_le_bytes());
    }
    format!("fnv1a64:{h:016x}")
}

fn member_seed(seed: u64, m: usize) -> u64 {
    // splitmix64 of (seed, member) so members draw unrelated resamples.
    let mut z = seed ^ (m as u64).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fits one booster on the rows `rows` (with repeats) of row-major `x`; returns the flattened
/// forest and adds split gains to `gain`.
fn fit_member(
    x: &[f64],
    z: &[f64],
    rows: &[usize],
    cfg: &FitConfig,
    seed: u64,
) -> Result<(Forest, Vec<f64>), SurrogateError> {
    use forust_ml::objective::ObjectiveType;
    let n = rows.len();
    // forust wants column-major data.
    let mut cols = vec![0.0; n * N_FEATURES];
    for (r, &i) in rows.iter().enumerate() {
        for f in 0..N_FEATURES {
            cols[f * n + r] = x[i * N_FEATURES + f];
        }
    }
    let y: Vec<f64> = rows.iter().map(|&i| z[i]).collect();
    let matrix = forust_ml::Matrix::new(&cols, n, N_FEATURES);
    let booster_err = |e: forust_ml::errors::ForustError| SurrogateError::Booster(e.to_string());
    let mut b = forust_ml::GradientBooster::default()
        .set_objective_type(ObjectiveType::SquaredLoss)
        .set_iterations(cfg.iterations)
        .set_learning_rate(cfg.learning_rate)
        .set_max_depth(cfg.max_depth)
        .set_l2(cfg.l2)
        .set_min_leaf_weight(cfg.min_leaf_weight)
        .set_subsample(cfg.subsample)
        .set_colsample_bytree(cfg.colsample)
        .set_seed(seed)
        .set_parallel(false)
        .set_initialize_base_score(true);
    if cfg.subsample < 1.0 {
        b = b.set_sample_method(forust_ml::sampler::SampleMethod::Random);
    }
    b.fit_unweighted(&matrix, &y, None).map_err(booster_err)?;
    let mut gain = vec![0.0; N_FEATURES];
    let trees: Vec<FlatTree> = b
        .trees
        .iter()
        .map(|t| forest::flatten(t, &mut gain))
        .collect::<Result<_, _>>()
        .map_err(SurrogateError::Booster)?;
    Ok((
        Forest {
            base: b.base_score,
            trees,
        },
        gain,
    ))
}

impl Surrogate {
    /// Fits on models and their targets.
    pub fn fit_models(
        models: &[&Model],
        y: &[f64],
        target: &str,
        cfg: &FitConfig,
    ) -> Result<Surrogate, SurrogateError> {
        let x = features::extract_matrix(models.iter().copied());
        Self::fit(&x, y, target, cfg)
    }

    /// Fits on a row-major feature matrix ([`features::extract_matrix`]) and targets.
    pub fn fit(x: &[f64], y: &[f64], target: &str, cfg: &FitConfig) -> Result<Surrogate, SurrogateError> {
        cfg.check()?;
        if x.len() != y.len() * N_FEATURES {
            return Err(SurrogateError::BadMatrix {
                len: x.len(),
                n_features: N_FEATURES,
            });
        }
        const MIN_ROWS: usize = 10;
        if y.len() < MIN_ROWS {
            return Err(SurrogateError::TooFewRows {
                need: MIN_ROWS,
                got: y.len(),
            });
        }
        if let Some((index, &value)) = y.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(SurrogateError::NonFiniteTarget { index, value });
        }
        let transform = if cfg.log_target {
            let lo = y.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let margin = (0.05 * (hi - lo)).max(1e-6 * lo.abs()).max(1e-9);
            Transform::LogShift { shift: lo - margin }
        } else {
            Transform::Identity
        };
        let z: Vec<f64> = y.iter().map(|&v| transform.forward(v)).collect();
        let n = y.len();
        let fitted: Vec<(Forest, Vec<f64>)> = (0..cfg.ensemble)
            .into_par_iter()
            .map(|m| {
                let seed = member_seed(cfg.seed, m);
                let mut rng = StdRng::seed_from_u64(seed);
                let rows: Vec<usize> = match cfg.resample {
                    _ if cfg.ensemble == 1 => (0..n).collect(),
                    Resample::None => (0..n).collect(),
                    Resample::Bootstrap => {
                        let mut r: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
                        r.sort_unstable();
                        r
                    }
                    Resample::Subsample { fraction } => {
                        let k = ((fraction * n as f64).round() as usize).clamp(1, n);
                        let mut r: Vec<usize> = (0..n).collect();
                        r.shuffle(&mut rng);
                        r.truncate(k);
                        r.sort_unstable();
                        r
                    }
                };
                fit_member(x, &z, &rows, cfg, seed)
            })
            .collect::<Result<_, _>>()?;
        let names = feature_names();
        let mut gain = vec![0.0; N_FEATURES];
        for (_, g) in &fitted {
            for (a, b) in gain.iter_mut().zip(g) {
                *a += b;
            }
        }
        let total: f64 = gain.iter().sum();
        let mut importance: Vec<Importance> = names
            .iter()
            .zip(&gain)
            .filter(|(_, g)| **g > 0.0)
            .map(|(f, g)| Importance {
                feature: f.clone(),
                gain_share: g / total,
            })
            .collect();
        importance.sort_by(|a, b| {
            b.gain_share
                .total_cmp(&a.gain_share)
                .then_with(|| a.feature.cmp(&b.feature))
        });
        Ok(Surrogate {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            target: target.into(),
            feature_names: names,
            data_hash: data_hash(target, x, y),
            n_train: n,
            config: cfg.clone(),
            transform,
            importance,
            members: fitted.into_iter().map(|(f, _)| f).collect(),
        })
    }

    /// Predictions for row-major feature rows, walked [`forest::BLOCK`] rows at a time.
    pub fn predict_features(&self, x: &[f64]) -> Result<Vec<Prediction>, SurrogateError> {
        if x.len() % N_FEATURES != 0 {
            return Err(SurrogateError::BadMatrix {
                len: x.len(),
                n_features: N_FEATURES,
            });
        }
        let m = self.members.len() as f64;
        let mut out = Vec::with_capacity(x.len() / N_FEATURES);
        let mut rows = Box::new([[0.0; forest::ROW]; forest::BLOCK]);
        for xb in x.chunks(forest::BLOCK * N_FEATURES) {
            let n = xb.len() / N_FEATURES;
            for (row, src) in rows.iter_mut().zip(xb.chunks_exact(N_FEATURES)) {
                row[..N_FEATURES].copy_from_slice(src);
            }
            let (mut sum, mut sq) = ([0.0; forest::BLOCK], [0.0; forest::BLOCK]);
            for member in &self.members {
                let mut z = [0.0; forest::BLOCK];
                member.predict_block(&rows, &mut z);
                for i in 0..n {
                    let y = self.transform.inverse(z[i]);
                    sum[i] += y;
                    sq[i] += y * y;
                }
            }
            out.extend((0..n).map(|i| {
                let mu = sum[i] / m;
                let var = (sq[i] / m - mu * mu).max(0.0);
                Prediction {
                    mu,
                    sigma: var.sqrt(),
                }
            }));
        }
        Ok(out)
    }

    /// Prediction for one model.
    pub fn predict(&self, model: &Model) -> Prediction {
        let x = features::extract(model);
        // One row of the right width cannot fail.
        self.predict_features(&x).map(|v| v[0]).unwrap_or(Prediction {
            mu: f64::NAN,
            sigma: f64::NAN,
        })
    }

    /// Predictions for many models: features are extracted and predicted in chunks.
    pub fn predict_models<'a>(&self, models: impl IntoIterator<Item = &'a Model>) -> Vec<Prediction> {
        const CHUNK: usize = 256;
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(CHUNK * N_FEATURES);
        let flush = |buf: &mut Vec<f64>, out: &mut Vec<Prediction>| {
            if let Ok(p) = self.predict_features(buf) {
                out.extend(p);
            }
            buf.clear();
        };
        for m in models {
            let start = buf.len();
            buf.resize(start + N_FEATURES, 0.0);
            features::extract_into(m, &mut buf[start..]);
            if buf.len() == CHUNK * N_FEATURES {
                flush(&mut buf, &mut out);
            }
        }
        flush(&mut buf, &mut out);
        out
    }

    /// Metrics of this surrogate's `mu` against known targets.
    pub fn evaluate(&self, models: &[&Model], y: &[f64]) -> Metrics {
        let p: Vec<f64> = self
            .predict_models(models.iter().copied())
            .iter()
            .map(|p| p.mu)
            .collect();
        Metrics::compute(&p, y)
    }

    /// Serialises to compact JSON (deterministic: ordered fields, shortest round-trip floats).
    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a saved surrogate; `file` names it in errors. Checks the format, the feature
    /// schema against this build, and every tree.
    pub fn from_json(src: &str, file: &str) -> Result<Surrogate, SurrogateError> {
        let s: Surrogate = serde_json::from_str(src).map_err(|e| SurrogateError::Parse {
            file: file.into(),
            message: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        let invalid = |message: String| SurrogateError::Invalid {
            file: file.into(),
            message,
        };
        if s.format != FORMAT || s.version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format `{}` version {}, expected `{FORMAT}` version {FORMAT_VERSION}",
                s.format, s.version
            )));
        }
        if s.feature_names != feature_names() {
            return Err(SurrogateError::Schema {
                file: file.into(),
                saved: s.feature_names.len(),
                current: N_FEATURES,
            });
        }
        if s.members.is_empty() {
            return Err(invalid("no ensemble members".into()));
        }
        for (m, member) in s.members.iter().enumerate() {
            if !member.base.is_finite() {
                return Err(invalid(format!("member {m}: base score is not finite")));
            }
            for (t, tree) in member.trees.iter().enumerate() {
                tree.check(N_FEATURES)
                    .map_err(|e| invalid(format!("member {m} tree {t}: {e}")))?;
            }
        }
        Ok(s)
    }
}

/// Fold of each of `n` rows for `k`-fold cross-validation: a seeded shuffle, then row
/// `order[i]` goes to fold `i % k` (fold sizes differ by at most one).
pub fn fold_assignment(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut fold = vec![0; n];
    for (i, &r) in order.iter().enumerate() {
        fold[r] = i % k.max(1);
    }
    fold
}

/// Out-of-fold results of a cross-validation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CvResult {
    pub folds: usize,
    /// Fold of each row.
    pub fold: Vec<usize>,
    /// Out-of-fold prediction of each row.
    pub predictions: Vec<Prediction>,
    /// Metrics of each fold's held-out rows.
    pub per_fold: Vec<Metrics>,
    /// Metrics over every out-of-fold prediction.
    pub pooled: Metrics,
}

/// k-fold cross-validation of the surrogate with the given fold assignment (`fold[i] < k`).
pub fn cross_validate(
    x: &[f64],
    y: &[f64],
    fold: &[usize],
    k: usize,
    cfg: &FitConfig,
) -> Result<CvResult, SurrogateError> {
    if k < 2 || y.len() < 2 * k {
        return Err(SurrogateError::Folds {
            folds: k,
            rows: y.len(),
        });
    }
    let mut predictions = vec![
        Prediction {
            mu: f64::NAN,
            sigma: f64::NAN
        };
        y.len()
    ];
    let mut per_fold = Vec::with_capacity(k);
    for f in 0..k {
        let (mut xt, mut yt, mut test) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..y.len() {
            if fold[i] == f {
                test.push(i);
            } else {
                xt.extend_from_slice(&x[i * N_FEATURES..(i + 1) * N_FEATURES]);
                yt.push(y[i]);
            }
        }
        let s = Surrogate::fit(&xt, &yt, "cv", cfg)?;
        let xs: Vec<f64> = test
            .iter()
            .flat_map(|&i| x[i * N_FEATURES..(i + 1) * N_FEATURES].iter().copied())
            .collect();
        let p = s.predict_features(&xs)?;
        for (&i, pi) in test.iter().zip(&p) {
            predictions[i] = *pi;
        }
        let mu: Vec<f64> = p.iter().map(|p| p.mu).collect();
        let truth: Vec<f64> = test.iter().map(|&i| y[i]).collect();
        per_fold.push(Metrics::compute(&mu, &truth));
    }
    let mu: Vec<f64> = predictions.iter().map(|p| p.mu).collect();
    Ok(CvResult {
        folds: k,
        fold: fold.to_vec(),
        pooled: Metrics::compute(&mu, y),
        predictions,
        per_fold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic rows: y = 3 + x0/4 - 0.5*[x1 > 2] plus a small deterministic wobble.
    fn synthetic(n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut x = vec![0.0; n * N_FEATURES];
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let a = (i % 13) as f64;
            let b = ((i * 7) % 5) as f64;
            x[i * N_FEATURES] = a;
            x[i * N_FEATURES + 1] = b;
            x[i * N_FEATURES + 2] = ((i * 31) % 17) as f64;
            y.push(3.0 + a / 4.0 - if b > 2.0 { 0.5 } else { 0.0 } + 0.01 * ((i * 3) % 7) as f64);
        }
        (x, y)
    }

    fn small_cfg() -> FitConfig {
        FitConfig {
            ensemble: 3,
            iterations: 60,
            learning_rate: 0.2,
            max_depth: 3,
            ..FitConfig::default()
        }
    }

    #[test]
    fn flattened_trees_match_forust() {
        let (x, y) = synthetic(200);
        let cfg = FitConfig {
            ensemble: 1,
            log_target: false,
            ..small_cfg()
        };
        let rows: Vec<usize> = (0..200).collect();
        let (forest, _) = fit_member(&x, &y, &rows, &cfg, 7).unwrap();
        // Refit the same booster with forust and compare its own prediction.
        let mut cols = vec![0.0; 200 * N_FEATURES];
        for i in 0..200 {
            for f in 0..N_FEATURES {
                cols[f * 200 + i] = x[i * N_FEATURES + f];
            }
        }
        let m = forust_ml::Matrix::new(&cols, 200, N_FEATURES);
        let mut b = forust_ml::GradientBooster::default()
            .set_objective_type(forust_ml::objective::ObjectiveType::SquaredLoss)
            .set_iterations(cfg.iterations)
            .set_learning_rate(cfg.learning_rate)
            .set_max_depth(cfg.max_depth)
            .set_l2(cfg.l2)
            .set_min_leaf_weight(cfg.min_leaf_weight)
            .set_subsample(cfg.subsample)
            .set_colsample_bytree(cfg.colsample)
            .set_seed(7)
            .set_parallel(false)
            .set_initialize_base_score(true)
            .set_sample_method(forust_ml::sampler::SampleMethod::Random);
        b.fit_unweighted(&m, &y, None).unwrap();
        let theirs = b.predict(&m, false);
        for i in 0..200 {
            let ours = forest.predict(&x[i * N_FEATURES..(i + 1) * N_FEATURES]);
            assert!(
                (ours - theirs[i]).abs() < 1e-9,
                "row {i}: {ours} vs {}",
                theirs[i]
            );
        }
    }

    #[test]
    fn fit_is_deterministic_and_learns() {
        let (x, y) = synthetic(300);
        let a = Surrogate::fit(&x, &y, "y", &small_cfg()).unwrap();
        let b = Surrogate::fit(&x, &y, "y", &small_cfg()).unwrap();
        assert_eq!(a.to_json(), b.to_json());
        let p: Vec<f64> = a.predict_features(&x).unwrap().iter().map(|p| p.mu).collect();
        let m = Metrics::compute(&p, &y);
        assert!(m.mae < 0.1, "in-sample MAE {}", m.mae);
        assert!(a.importance[0].feature == "d_model" || a.importance[0].feature == "vocab");
        let c = Surrogate::fit(
            &x,
            &y,
            "y",
            &FitConfig {
                seed: 43,
                ..small_cfg()
            },
        )
        .unwrap();
        assert_ne!(a.to_json(), c.to_json());
    }

    #[test]
    fn save_load_round_trip_and_schema_check() {
        let (x, y) = synthetic(120);
        let s = Surrogate::fit(&x, &y, "y", &small_cfg()).unwrap();
        let json = s.to_json();
        let back = Surrogate::from_json(&json, "m.json").unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.predict_features(&x).unwrap(),
            s.predict_features(&x).unwrap()
        );
        let mut renamed = s.clone();
        renamed.feature_names[0] = "width".into();
        let e = Surrogate::from_json(&renamed.to_json(), "m.json").unwrap_err();
        assert!(matches!(e, SurrogateError::Schema { .. }), "{e}");
        let e = Surrogate::from_json("{\"format\": 3}", "m.json")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.json: not a surrogate model file: line 1"), "{e}");
    }

    #[test]
    fn rejects_bad_training_input() {
        let (x, mut y) = synthetic(50);
        y[4] = f64::INFINITY;
        assert!(matches!(
            Surrogate::fit(&x, &y, "y", &small_cfg()),
            Err(SurrogateError::NonFiniteTarget { index: 4, .. })
        ));
        let cfg = FitConfig {
            ensemble: 0,
            ..small_cfg()
        };
        assert!(matches!(
            Surrogate::fit(&x, &y, "y", &cfg),
            Err(SurrogateError::BadConfig(_))
        ));
    }

    #[test]
    fn folds_are_balanced_and_seeded() {
        let f = fold_assignment(23, 5, 42);
        let mut counts = [0; 5];
        for &k in &f {
            counts[k] += 1;
        }
        assert_eq!(counts, [5, 5, 5, 4, 4]);
        assert_eq!(f, fold_assignment(23, 5, 42));
        assert_ne!(f, fold_assignment(23, 5, 43));
    }

    #[test]
    fn sigma_is_zero_for_one_member_and_positive_for_bootstrap() {
        let (x, y) = synthetic(150);
        let one = Surrogate::fit(
            &x,
            &y,
            "y",
            &FitConfig {
                ensemble: 1,
                ..small_cfg()
            },
        )
        .unwrap();
        assert!(one.predict_features(&x).unwrap().iter().all(|p| p.sigma == 0.0));
        let many = Surrogate::fit(&x, &y, "y", &small_cfg()).unwrap();
        assert!(many.predict_features(&x).unwrap().iter().any(|p| p.sigma > 0.0));
    }
}
