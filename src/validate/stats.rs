//! Error statistics: signed relative error per row, and per group the mean absolute
//! percentage error (MAPE), median and worst absolute error, and the mean signed error (bias).

use serde::Serialize;
use std::collections::BTreeMap;

/// Signed relative error of a prediction: `(predicted - measured) / measured`.
pub fn rel_error(predicted: f64, measured: f64) -> f64 {
    (predicted - measured) / measured
}

/// Statistics of a set of signed relative errors, in percent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorStats {
    pub n: usize,
    /// Mean absolute percentage error.
    pub mape: f64,
    /// Median absolute percentage error.
    pub median: f64,
    /// Largest absolute percentage error.
    pub worst: f64,
    /// Mean signed percentage error: positive when predictions run high.
    pub bias: f64,
    /// Line of the worst row.
    pub worst_line: u64,
}

impl ErrorStats {
    /// Statistics of `(line, signed relative error)` pairs; `None` when empty.
    pub fn of(errors: &[(u64, f64)]) -> Option<ErrorStats> {
        if errors.is_empty() {
            return None;
        }
        let n = errors.len();
        let mut abs: Vec<f64> = errors.iter().map(|e| e.1.abs() * 100.0).collect();
        let mape = abs.iter().sum::<f64>() / n as f64;
        let bias = errors.iter().map(|e| e.1 * 100.0).sum::<f64>() / n as f64;
        let (worst_line, worst) = errors
            .iter()
            .map(|e| (e.0, e.1.abs() * 100.0))
            .fold((0, f64::NEG_INFINITY), |acc, x| if x.1 > acc.1 { x } else { acc });
        abs.sort_by(f64::total_cmp);
        let median = if n % 2 == 1 {
            abs[n / 2]
        } else {
            (abs[n / 2 - 1] + abs[n / 2]) / 2.0
        };
        Some(ErrorStats {
            n,
            mape,
            median,
            worst,
            bias,
            worst_line,
        })
    }
}

/// Statistics of the rows sharing one key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    pub key: Vec<String>,
    #[serde(flatten)]
    pub stats: ErrorStats,
}

/// Groups `(key, line, error)` triples by key (sorted) and summarises each group.
pub fn group(items: impl IntoIterator<Item = (Vec<String>, u64, f64)>) -> Vec<Group> {
    let mut map: BTreeMap<Vec<String>, Vec<(u64, f64)>> = BTreeMap::new();
    for (k, line, e) in items {
        map.entry(k).or_default().push((line, e));
    }
    map.into_iter()
        .filter_map(|(key, errs)| ErrorStats::of(&errs).map(|stats| Group { key, stats }))
        .collect()
}

/// Compresses sorted line numbers into ranges: `3-7, 12, 15-16`.
pub fn line_ranges(lines: &[u64]) -> String {
    let mut v = lines.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_known_errors() {
        let s = ErrorStats::of(&[(2, 0.1), (3, -0.2), (4, 0.3), (5, -0.4)]).unwrap();
        assert_eq!(s.n, 4);
        assert!((s.mape - 25.0).abs() < 1e-12);
        assert!((s.median - 25.0).abs() < 1e-12);
        assert!((s.worst - 40.0).abs() < 1e-12);
        assert_eq!(s.worst_line, 5);
        assert!((s.bias + 5.0).abs() < 1e-12);
        let odd = ErrorStats::of(&[(1, 0.5), (2, 0.1), (3, -0.2)]).unwrap();
        assert!((odd.median - 20.0).abs() < 1e-12);
        assert!(ErrorStats::of(&[]).is_none());
    }

    #[test]
    fn ranges() {
        assert_eq!(line_ranges(&[7, 3, 4, 5, 12, 15, 16]), "3-5, 7, 12, 15-16");
        assert_eq!(line_ranges(&[]), "");
    }

    #[test]
    fn groups_sorted_by_key() {
        let g = group(vec![
            (vec!["b".into()], 1, 0.1),
            (vec!["a".into()], 2, 0.2),
            (vec!["b".into()], 3, -0.3),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].key, vec!["a".to_string()]);
        assert_eq!(g[1].stats.n, 2);
    }
}
