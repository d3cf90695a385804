//! Accuracy and ranking metrics of a loss surrogate (the LLMForge paper's set).
//!
//! "Top" means lowest true loss. Ties are broken by position (stable sorts), so every metric is
//! a deterministic function of its inputs.

use serde::{Deserialize, Serialize};

/// Mean absolute error.
pub fn mae(pred: &[f64], truth: &[f64]) -> f64 {
    mean(pred.iter().zip(truth).map(|(p, t)| (p - t).abs()), pred.len())
}

/// Root mean squared error.
pub fn rmse(pred: &[f64], truth: &[f64]) -> f64 {
    mean(pred.iter().zip(truth).map(|(p, t)| (p - t) * (p - t)), pred.len()).sqrt()
}

fn mean(it: impl Iterator<Item = f64>, n: usize) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        it.sum::<f64>() / n as f64
    }
}

/// Indices sorted by value ascending, ties by index.
fn order(v: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]).then(a.cmp(&b)));
    idx
}

/// Ranks 1..n with ties given their average rank.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let idx = order(v);
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        f64::NAN
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Spearman's rank correlation (Pearson correlation of average ranks). NaN when either side
/// is constant.
pub fn spearman(pred: &[f64], truth: &[f64]) -> f64 {
    pearson(&average_ranks(pred), &average_ranks(truth))
}

/// Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x)(n0 - ties_y)), pairs tied
/// in both counted in neither. O(n^2); NaN when either side is constant.
pub fn kendall_tau_b(pred: &[f64], truth: &[f64]) -> f64 {
    let n = pred.len();
    let (mut conc, mut disc, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = pred[i] - pred[j];
            let dy = truth[i] - truth[j];
            if dx == 0.0 && dy == 0.0 {
                continue;
            } else if dx == 0.0 {
                tx += 1;
            } else if dy == 0.0 {
                ty += 1;
            } else if (dx > 0.0) == (dy > 0.0) {
                conc += 1;
            } else {
                disc += 1;
            }
        }
    }
    let denom = (((conc + disc + tx) as f64) * ((conc + disc + ty) as f64)).sqrt();
    if denom == 0.0 {
        f64::NAN
    } else {
        (conc - disc) as f64 / denom
    }
}

/// Size of the true top-`frac` set: ceil(frac * n), at least 1.
pub fn top_count(n: usize, frac: f64) -> usize {
    ((frac * n as f64).ceil() as usize).clamp(1, n.max(1))
}

/// MAE over the true top-`frac` (lowest truth) rows.
pub fn top_mae(pred: &[f64], truth: &[f64], frac: f64) -> f64 {
    let top = &order(truth)[..top_count(truth.len(), frac)];
    mean(top.iter().map(|&i| (pred[i] - truth[i]).abs()), top.len())
}

/// k@p: the smallest k such that the k rows with the lowest predictions contain every row of
/// the true top-`frac` set.
pub fn k_at(pred: &[f64], truth: &[f64], frac: f64) -> usize {
    let top = &order(truth)[..top_count(truth.len(), frac)];
    let mut pos = vec![0usize; pred.len()];
    for (r, &i) in order(pred).iter().enumerate() {
        pos[i] = r + 1;
    }
    top.iter().map(|&i| pos[i]).max().unwrap_or(0)
}

/// Every metric of one set of predictions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub mae: f64,
    pub rmse: f64,
    pub spearman: f64,
    pub kendall_tau_b: f64,
    /// MAE on the true top 5% (lowest loss).
    pub top5_mae: f64,
    /// Size of the true top-1% set, and k@1%.
    pub top1_count: usize,
    pub k_at_1pct: usize,
    pub top5_count: usize,
    pub k_at_5pct: usize,
}

impl Metrics {
    pub fn compute(pred: &[f64], truth: &[f64]) -> Metrics {
        assert_eq!(pred.len(), truth.len(), "prediction and truth lengths");
        let n = pred.len();
        Metrics {
            n,
            mae: mae(pred, truth),
            rmse: rmse(pred, truth),
            spearman: spearman(pred, truth),
            kendall_tau_b: kendall_tau_b(pred, truth),
            top5_mae: top_mae(pred, truth, 0.05),
            top1_count: top_count(n, 0.01),
            k_at_1pct: k_at(pred, truth, 0.01),
            top5_count: top_count(n, 0.05),
            k_at_5pct: k_at(pred, truth, 0.05),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    #[test]
    fn mae_rmse_by_hand() {
        let p = [1.0, 2.0, 3.0, 4.0];
        let t = [1.5, 2.0, 2.0, 6.0];
        // |e| = .5, 0, 1, 2 -> MAE 3.5/4; e^2 = .25, 0, 1, 4 -> RMSE sqrt(5.25/4)
        assert!((mae(&p, &t) - 0.875).abs() < EPS);
        assert!((rmse(&p, &t) - (5.25f64 / 4.0).sqrt()).abs() < EPS);
    }

    #[test]
    fn ranks_with_ties() {
        assert_eq!(average_ranks(&[10.0, 20.0, 10.0, 5.0]), vec![2.5, 4.0, 2.5, 1.0]);
    }

    #[test]
    fn spearman_by_hand() {
        // ranks p: 1 2 3 4 5; ranks t: 2 1 4 3 5; d^2 = 1+1+1+1+0 = 4
        // rho = 1 - 6*4/(5*24) = 0.8
        let p = [1.0, 2.0, 3.0, 4.0, 5.0];
        let t = [2.0, 1.0, 4.0, 3.0, 5.0];
        assert!((spearman(&p, &t) - 0.8).abs() < EPS);
        assert!((spearman(&p, &p) - 1.0).abs() < EPS);
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn kendall_by_hand() {
        // same data: 10 pairs, discordant (0,1) and (2,3): tau = (8-2)/10
        let p = [1.0, 2.0, 3.0, 4.0, 5.0];
        let t = [2.0, 1.0, 4.0, 3.0, 5.0];
        assert!((kendall_tau_b(&p, &t) - 0.6).abs() < EPS);
        // ties: p = [1,1,2], t = [1,2,3]: pairs (0,1) tied in p; (0,2),(1,2) concordant.
        // tau_b = 2 / sqrt((3-1)*(3-0)) = 2/sqrt(6)
        let v = kendall_tau_b(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]);
        assert!((v - 2.0 / 6f64.sqrt()).abs() < EPS);
        assert!((kendall_tau_b(&p, &[5.0, 4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < EPS);
    }

    #[test]
    fn top_and_k_at_by_hand() {
        // 20 rows: truth i, prediction reverses the first two and puts the best row 7th.
        let truth: Vec<f64> = (0..20).map(f64::from).collect();
        let mut pred = truth.clone();
        pred[0] = 6.5; // true best predicted as 7th lowest (after 1..6)
        assert_eq!(top_count(20, 0.05), 1);
        assert_eq!(top_count(20, 0.01), 1);
        assert_eq!(k_at(&pred, &truth, 0.05), 7);
        assert!((top_mae(&pred, &truth, 0.05) - 6.5).abs() < EPS);
        // top 10% = rows 0 and 1: row 1 is 1st, row 0 is 7th -> k = 7; MAE (6.5 + 0)/2
        assert_eq!(k_at(&pred, &truth, 0.10), 7);
        assert!((top_mae(&pred, &truth, 0.10) - 3.25).abs() < EPS);
        // perfect ranking: k = |top set|
        assert_eq!(k_at(&truth, &truth, 0.25), 5);
        let m = Metrics::compute(&truth, &truth);
        assert_eq!((m.k_at_1pct, m.k_at_5pct, m.mae), (1, 1, 0.0));
    }
}
