//! Leave-one-group-out cross-validation: each group (e.g. one (d_model, n_layers, n_heads)
//! shape) is held out in turn, the law is fitted on the rest and predicts the held-out rows.

use super::LawError;
use super::fit::{FitOptions, FitSpec, fit};
use super::forms::{LawForm, LawInputs};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Held-out error of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvFold {
    pub group: String,
    pub rows: usize,
    /// Mean absolute error of the loss (nats).
    pub mae: f64,
    /// Mean absolute percentage error of the loss (%).
    pub mape: f64,
}

/// Leave-one-group-out result. Errors are over all held-out rows (each row counts once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    pub form: LawForm,
    pub groups: usize,
    pub rows: usize,
    pub mae: f64,
    pub mape: f64,
    pub rmse: f64,
    pub max_abs_error: f64,
    pub folds: Vec<CvFold>,
    /// Held-out prediction for each row, in data order.
    pub predictions: Vec<f64>,
}

/// Hold out each distinct value of `groups` (one per row of `data`) in turn. Folds run in
/// parallel; each fold's fit is deterministic, so the report is too.
pub fn leave_group_out(
    spec: &FitSpec,
    data: &[(LawInputs, f64)],
    groups: &[String],
    opts: &FitOptions,
) -> Result<CvReport, LawError> {
    if groups.len() != data.len() {
        return Err(LawError::Fit(format!(
            "{} group labels for {} rows",
            groups.len(),
            data.len()
        )));
    }
    let mut keys: Vec<&String> = Vec::new();
    for g in groups {
        if !keys.contains(&g) {
            keys.push(g);
        }
    }
    if keys.len() < 2 {
        return Err(LawError::Fit(format!(
            "need at least 2 groups to hold one out, found {}",
            keys.len()
        )));
    }
    let folds: Vec<(Vec<usize>, Vec<f64>)> = keys
        .par_iter()
        .map(|key| {
            let (held, train): (Vec<usize>, Vec<usize>) = (0..data.len()).partition(|&i| &groups[i] == *key);
            let train_data: Vec<(LawInputs, f64)> = train.iter().map(|&i| data[i]).collect();
            let out = fit(spec, &train_data, opts)?;
            let preds = held.iter().map(|&i| out.law.predict(&data[i].0)).collect();
            Ok((held, preds))
        })
        .collect::<Result<_, LawError>>()?;
    let mut predictions = vec![f64::NAN; data.len()];
    let mut fold_reports = Vec::with_capacity(folds.len());
    for (key, (held, preds)) in keys.iter().zip(&folds) {
        let mut abs = 0.0;
        let mut pct = 0.0;
        for (&i, &p) in held.iter().zip(preds) {
            predictions[i] = p;
            let obs = data[i].1;
            abs += (p - obs).abs();
            pct += (p - obs).abs() / obs;
        }
        let n = held.len() as f64;
        fold_reports.push(CvFold {
            group: (*key).clone(),
            rows: held.len(),
            mae: abs / n,
            mape: 100.0 * pct / n,
        });
    }
    let n = data.len() as f64;
    let errs: Vec<f64> = predictions
        .iter()
        .zip(data)
        .map(|(p, (_, obs))| p - obs)
        .collect();
    Ok(CvReport {
        form: spec.form,
        groups: keys.len(),
        rows: data.len(),
        mae: errs.iter().map(|e| e.abs()).sum::<f64>() / n,
        mape: 100.0
            * errs
                .iter()
                .zip(data)
                .map(|(e, (_, obs))| e.abs() / obs)
                .sum::<f64>()
            / n,
        rmse: (errs.iter().map(|e| e * e).sum::<f64>() / n).sqrt(),
        max_abs_error: errs.iter().fold(0.0_f64, |m, e| m.max(e.abs())),
        folds: fold_reports,
        predictions,
    })
}
