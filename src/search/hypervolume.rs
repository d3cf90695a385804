//! Exact hypervolume of a point set (all objectives minimised) with respect to a reference
//! point: the Lebesgue measure of the region dominated by the set and bounded by the reference.
//!
//! Points that do not strictly dominate the reference in every objective contribute nothing
//! and are dropped first. One objective is a min, two objectives a sort-and-sweep
//! (O(n log n)), three or more the WFG algorithm (While, Bradstreet and Barone, "A fast way of
//! calculating exact hypervolumes", IEEE TEVC 2012): the volume of a set is the sum of each
//! point's exclusive contribution against the points after it, and an exclusive contribution
//! is the point's own box minus the hypervolume of the other points clipped ("limited") to
//! that box. [`hypervolume_slicing`] is a second, independent exact algorithm (HSO: slice
//! along the last objective, recurse down to the 2-D sweep), kept for cross-checks.

use std::cmp::Ordering;

/// Occurs when the input to a hypervolume computation is malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HypervolumeError {
    /// Occurs when the reference point has no coordinates.
    #[error("the reference point is empty; it needs one coordinate per objective")]
    EmptyReference,
    /// Occurs when a point has a different number of objectives than the reference.
    #[error("point {index} has {got} objectives but the reference point has {expected}")]
    Dimension {
        index: usize,
        expected: usize,
        got: usize,
    },
    /// Occurs when a point or the reference holds NaN or an infinity.
    #[error("{what} has a non-finite coordinate ({value}) at objective {objective}")]
    NonFinite {
        what: String,
        objective: usize,
        value: f64,
    },
}

/// Exact hypervolume of `points` (minimisation) bounded by `reference`.
pub fn hypervolume<P: AsRef<[f64]>>(points: &[P], reference: &[f64]) -> Result<f64, HypervolumeError> {
    let set = prepare(points, reference)?;
    Ok(match reference.len() {
        1 => set.iter().map(|p| reference[0] - p[0]).fold(0.0, f64::max),
        2 => sweep_2d(set, reference),
        _ => wfg(set, reference),
    })
}

/// Exact hypervolume by slicing along the last objective (HSO). Same result as
/// [`hypervolume`] up to rounding; slower for many objectives (O(n^(d-1))). For tests.
pub fn hypervolume_slicing<P: AsRef<[f64]>>(
    points: &[P],
    reference: &[f64],
) -> Result<f64, HypervolumeError> {
    let set = prepare(points, reference)?;
    Ok(match reference.len() {
        1 => set.iter().map(|p| reference[0] - p[0]).fold(0.0, f64::max),
        _ => slicing(set, reference),
    })
}

/// Validates the input and keeps the points that strictly dominate the reference.
fn prepare<P: AsRef<[f64]>>(points: &[P], reference: &[f64]) -> Result<Vec<Vec<f64>>, HypervolumeError> {
    if reference.is_empty() {
        return Err(HypervolumeError::EmptyReference);
    }
    check_finite("the reference point", reference)?;
    let mut kept = Vec::with_capacity(points.len());
    for (index, point) in points.iter().enumerate() {
        let point = point.as_ref();
        if point.len() != reference.len() {
            return Err(HypervolumeError::Dimension {
                index,
                expected: reference.len(),
                got: point.len(),
            });
        }
        check_finite(&format!("point {index}"), point)?;
        if point.iter().zip(reference).all(|(p, r)| p < r) {
            kept.push(point.to_vec());
        }
    }
    Ok(kept)
}

fn check_finite(what: &str, values: &[f64]) -> Result<(), HypervolumeError> {
    match values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((objective, &value)) => Err(HypervolumeError::NonFinite {
            what: what.to_string(),
            objective,
            value,
        }),
        None => Ok(()),
    }
}

/// 2-D sweep over points that all dominate the reference: sort by the first objective and
/// add the strip each new staircase step adds.
fn sweep_2d(mut set: Vec<Vec<f64>>, reference: &[f64]) -> f64 {
    set.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut volume = 0.0;
    let mut best_y = reference[1];
    for point in &set {
        if point[1] < best_y {
            volume += (reference[0] - point[0]) * (best_y - point[1]);
            best_y = point[1];
        }
    }
    volume
}

/// Volume of the box between a point and the reference.
fn inclusive(point: &[f64], reference: &[f64]) -> f64 {
    point.iter().zip(reference).map(|(p, r)| r - p).product()
}

/// `a` weakly dominates `b` (no worse anywhere).
fn weakly_dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y)
}

/// Removes dominated points and duplicates, keeping the first of equal points.
fn non_dominated(set: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let mut kept: Vec<Vec<f64>> = Vec::with_capacity(set.len());
    for point in set {
        if kept.iter().any(|k| weakly_dominates(k, &point)) {
            continue;
        }
        kept.retain(|k| !weakly_dominates(&point, k));
        kept.push(point);
    }
    kept
}

/// WFG: points sorted by the first objective so that later points' limit sets collapse fast.
fn wfg(mut set: Vec<Vec<f64>>, reference: &[f64]) -> f64 {
    set.sort_by(|a, b| lexicographic(a, b));
    wfg_sorted(&set, reference)
}

fn lexicographic(a: &[f64], b: &[f64]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

fn wfg_sorted(set: &[Vec<f64>], reference: &[f64]) -> f64 {
    match set.len() {
        0 => 0.0,
        1 => inclusive(&set[0], reference),
        2 => {
            let corner: Vec<f64> = set[0].iter().zip(&set[1]).map(|(a, b)| a.max(*b)).collect();
            inclusive(&set[0], reference) + inclusive(&set[1], reference) - inclusive(&corner, reference)
        }
        _ if reference.len() == 2 => sweep_2d(set.to_vec(), reference),
        _ => (0..set.len()).map(|k| exclusive(set, k, reference)).sum(),
    }
}

/// The part of point `k`'s box not covered by the points after it.
fn exclusive(set: &[Vec<f64>], k: usize, reference: &[f64]) -> f64 {
    let point = &set[k];
    let limited: Vec<Vec<f64>> = set[k + 1..]
        .iter()
        .map(|q| point.iter().zip(q).map(|(p, q)| p.max(*q)).collect())
        .collect();
    let mut limited = non_dominated(limited);
    limited.sort_by(|a, b| lexicographic(a, b));
    inclusive(point, reference) - wfg_sorted(&limited, reference)
}

/// HSO: sort by the last objective; between consecutive levels the cross-section is the
/// (d-1)-dimensional hypervolume of the points at or below the level.
fn slicing(mut set: Vec<Vec<f64>>, reference: &[f64]) -> f64 {
    let d = reference.len();
    if d == 2 {
        return sweep_2d(set, reference);
    }
    set.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
    let mut volume = 0.0;
    for i in 0..set.len() {
        let upper = if i + 1 < set.len() {
            set[i + 1][d - 1]
        } else {
            reference[d - 1]
        };
        let depth = upper - set[i][d - 1];
        if depth <= 0.0 {
            continue;
        }
        let section: Vec<Vec<f64>> = set[..=i].iter().map(|p| p[..d - 1].to_vec()).collect();
        volume += depth * slicing(non_dominated(section), &reference[..d - 1]);
    }
    volume
}
