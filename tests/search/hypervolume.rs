//! Hypervolume: hand-computed cases, agreement of the two exact algorithms with an exact
//! grid enumeration, and agreement with Monte Carlo estimates.

use llmforge::search::hypervolume::{HypervolumeError, hypervolume, hypervolume_slicing};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn hand_computed_cases() {
    // one point: its box
    assert_eq!(hypervolume(&[[1.0, 2.0]], &[3.0, 3.0]).unwrap(), 2.0);
    // a staircase: strips of 3x1, 2x1, 1x1
    let stairs = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
    assert_eq!(hypervolume(&stairs, &[4.0, 4.0]).unwrap(), 6.0);
    // order does not matter, dominated and duplicate points add nothing
    let noisy = [
        [3.0, 1.0],
        [2.5, 2.5],
        [1.0, 3.0],
        [2.0, 2.0],
        [2.0, 2.0],
        [3.5, 3.5],
    ];
    assert_eq!(hypervolume(&noisy, &[4.0, 4.0]).unwrap(), 6.0);
    // points on or beyond the reference are ignored
    assert_eq!(hypervolume(&[[4.0, 0.0], [0.0, 5.0]], &[4.0, 4.0]).unwrap(), 0.0);
    assert_eq!(hypervolume::<[f64; 2]>(&[], &[1.0, 1.0]).unwrap(), 0.0);
    // one objective: a length
    assert_eq!(hypervolume(&[[0.25], [0.5]], &[1.0]).unwrap(), 0.75);
    // 3-D: boxes of 0.5 and 0.25 overlapping in a 0.125 cube
    let pair = [[0.0, 0.0, 0.5], [0.5, 0.5, 0.0]];
    assert_eq!(hypervolume(&pair, &[1.0, 1.0, 1.0]).unwrap(), 0.625);
    assert_eq!(hypervolume_slicing(&pair, &[1.0, 1.0, 1.0]).unwrap(), 0.625);
    // 3-D: three axis points in a 2x2x2 box; each box is 1x2x2 = 4, each pairwise overlap
    // 1x1x2 = 2, the triple overlap 1: 3 * 4 - 3 * 2 + 1 = 7
    let axes = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    assert_eq!(hypervolume(&axes, &[2.0, 2.0, 2.0]).unwrap(), 7.0);
    assert_eq!(hypervolume_slicing(&axes, &[2.0, 2.0, 2.0]).unwrap(), 7.0);
    // 4-D: a single point and its 4-box
    assert_eq!(hypervolume(&[[0.5, 0.5, 0.5, 0.5]], &[1.0; 4]).unwrap(), 0.0625);
}

#[test]
fn malformed_input_is_an_error() {
    assert_eq!(
        hypervolume::<[f64; 0]>(&[], &[]),
        Err(HypervolumeError::EmptyReference)
    );
    assert_eq!(
        hypervolume(&[vec![0.0, 0.0], vec![0.0]], &[1.0, 1.0]),
        Err(HypervolumeError::Dimension {
            index: 1,
            expected: 2,
            got: 1
        })
    );
    assert!(matches!(
        hypervolume(&[[0.0, f64::NAN]], &[1.0, 1.0]),
        Err(HypervolumeError::NonFinite { objective: 1, .. })
    ));
    assert!(matches!(
        hypervolume(&[[0.0, 0.0]], &[1.0, f64::INFINITY]),
        Err(HypervolumeError::NonFinite { objective: 1, .. })
    ));
}

/// Exact hypervolume by enumerating the cells of the grid all coordinates span: a cell is
/// dominated or not as a whole. Exponential, but independent of both algorithms under test.
fn grid_hypervolume(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let d = reference.len();
    let axes: Vec<Vec<f64>> = (0..d)
        .map(|k| {
            let mut axis: Vec<f64> = points
                .iter()
                .map(|p| p[k])
                .filter(|v| *v < reference[k])
                .chain([reference[k]])
                .collect();
            axis.sort_by(f64::total_cmp);
            axis.dedup();
            axis
        })
        .collect();
    let mut volume = 0.0;
    let mut cell = vec![0usize; d];
    'cells: loop {
        let low: Vec<f64> = (0..d).map(|k| axes[k][cell[k]]).collect();
        if points.iter().any(|p| p.iter().zip(&low).all(|(x, l)| x <= l)) {
            volume += (0..d)
                .map(|k| axes[k][cell[k] + 1] - axes[k][cell[k]])
                .product::<f64>();
        }
        for k in 0..d {
            cell[k] += 1;
            if cell[k] + 1 < axes[k].len() {
                continue 'cells;
            }
            cell[k] = 0;
        }
        break;
    }
    volume
}

fn random_set(rng: &mut StdRng, n: usize, d: usize, levels: Option<u32>) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| {
            (0..d)
                .map(|_| match levels {
                    // coarse values force ties and duplicates
                    Some(l) => rng.random_range(0..l) as f64 / l as f64,
                    None => rng.random::<f64>(),
                })
                .collect()
        })
        .collect()
}

#[test]
fn exact_algorithms_agree_with_grid_enumeration() {
    let mut rng = StdRng::seed_from_u64(7);
    for d in 2..=5 {
        for trial in 0..40 {
            let n = 1 + trial % if d >= 5 { 7 } else { 10 };
            let levels = if trial % 2 == 0 { Some(5) } else { None };
            let points = random_set(&mut rng, n, d, levels);
            let reference = vec![if trial % 3 == 0 { 0.9 } else { 1.0 }; d];
            let exact = grid_hypervolume(&points, &reference);
            let wfg = hypervolume(&points, &reference).unwrap();
            let hso = hypervolume_slicing(&points, &reference).unwrap();
            assert!(
                close(wfg, exact, 1e-12),
                "d={d} trial={trial}: wfg {wfg} vs grid {exact}"
            );
            assert!(
                close(hso, exact, 1e-12),
                "d={d} trial={trial}: hso {hso} vs grid {exact}"
            );
        }
    }
}

#[test]
fn wfg_agrees_with_slicing_on_larger_fronts() {
    let mut rng = StdRng::seed_from_u64(11);
    for (d, n) in [(3, 60), (4, 30), (5, 15)] {
        // points near the unit simplex: mostly mutually non-dominated
        let points: Vec<Vec<f64>> = (0..n)
            .map(|_| {
                let raw: Vec<f64> = (0..d).map(|_| rng.random::<f64>() + 0.05).collect();
                let sum: f64 = raw.iter().sum();
                raw.iter().map(|v| v / sum).collect()
            })
            .collect();
        let reference = vec![1.0; d];
        let wfg = hypervolume(&points, &reference).unwrap();
        let hso = hypervolume_slicing(&points, &reference).unwrap();
        assert!(close(wfg, hso, 1e-12), "d={d}: wfg {wfg} vs hso {hso}");
    }
}

#[test]
fn agrees_with_monte_carlo() {
    let mut rng = StdRng::seed_from_u64(3);
    let samples = 200_000;
    for d in 2..=5 {
        for _ in 0..3 {
            let points = random_set(&mut rng, 12, d, None);
            let reference = vec![1.0; d];
            let exact = hypervolume(&points, &reference).unwrap();
            let inside = (0..samples)
                .filter(|_| {
                    let sample: Vec<f64> = (0..d).map(|_| rng.random::<f64>()).collect();
                    points.iter().any(|p| p.iter().zip(&sample).all(|(x, s)| x <= s))
                })
                .count();
            let estimate = inside as f64 / samples as f64;
            let sigma = (exact * (1.0 - exact) / samples as f64).sqrt();
            assert!(
                (estimate - exact).abs() <= 5.0 * sigma + 1e-9,
                "d={d}: exact {exact}, Monte Carlo {estimate} (sigma {sigma})"
            );
        }
    }
}
