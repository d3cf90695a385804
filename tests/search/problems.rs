//! Benchmark problems: objective functions on their optimal sets, the variation operators,
//! and the true fronts' hypervolumes.

use llmforge::search::hypervolume::hypervolume;
use llmforge::search::nsga2::Problem;
use llmforge::search::problems::{
    Benchmark, BenchmarkProblem, PolynomialMutation, ProblemError, Sbx, polynomial_mutation, sbx,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

#[test]
fn names_round_trip_and_unknown_names_are_errors() {
    for benchmark in Benchmark::ALL {
        assert_eq!(benchmark.name().parse::<Benchmark>(), Ok(benchmark));
    }
    assert_eq!("ZDT1".parse::<Benchmark>(), Ok(Benchmark::Zdt1));
    assert_eq!(
        "zdt4".parse::<Benchmark>(),
        Err(ProblemError::UnknownBenchmark {
            given: "zdt4".to_string()
        })
    );
    assert!(matches!(
        BenchmarkProblem::with_variables(Benchmark::Dtlz2, 2),
        Err(ProblemError::TooFewVariables {
            minimum: 3,
            got: 2,
            ..
        })
    ));
}

#[test]
fn optimal_sets_map_onto_the_known_fronts() {
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..100 {
        let f1: f64 = rng.random();
        let mut x = vec![0.0; 30];
        x[0] = f1;
        let zdt = |b| BenchmarkProblem::standard(b).objectives(&x);
        assert_eq!(zdt(Benchmark::Zdt1), vec![f1, 1.0 - f1.sqrt()]);
        assert_eq!(zdt(Benchmark::Zdt2), vec![f1, 1.0 - f1 * f1]);
        let expected = 1.0 - f1.sqrt() - f1 * (10.0 * std::f64::consts::PI * f1).sin();
        assert!((zdt(Benchmark::Zdt3)[1] - expected).abs() < 1e-15);

        let mut y = vec![0.5; 12];
        y[0] = rng.random();
        y[1] = rng.random();
        let f = BenchmarkProblem::standard(Benchmark::Dtlz2).objectives(&y);
        let radius: f64 = f.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(
            (radius - 1.0).abs() < 1e-12,
            "DTLZ2 optimum off the unit sphere: {f:?}"
        );
    }
    // away from the optimal set, g > 1 pushes the point off the front
    let x = vec![0.5; 30];
    let f = BenchmarkProblem::standard(Benchmark::Zdt1).objectives(&x);
    assert_eq!(f[0], 0.5);
    assert!(f[1] > 1.0 - 0.5f64.sqrt());
}

#[test]
fn front_hypervolumes_match_dense_samples() {
    for benchmark in Benchmark::ALL {
        let problem = BenchmarkProblem::standard(benchmark);
        let reference = vec![1.1; benchmark.n_objectives()];
        let exact = problem.front_hypervolume(&reference).unwrap();
        let samples = if benchmark == Benchmark::Dtlz2 {
            2_500
        } else {
            20_000
        };
        let sampled = hypervolume(&problem.pareto_front(samples), &reference).unwrap();
        // a finite sample of the front approaches the exact value from below
        let gap = if benchmark == Benchmark::Dtlz2 { 0.03 } else { 1e-3 };
        assert!(
            sampled <= exact && exact - sampled < gap,
            "{benchmark}: sampled {sampled} exact {exact}"
        );
    }
    let zdt1 = BenchmarkProblem::standard(Benchmark::Zdt1);
    assert!((zdt1.front_hypervolume(&[1.1, 1.1]).unwrap() - (0.1 + 2.0 / 3.0 + 0.11)).abs() < 1e-15);
    assert_eq!(zdt1.front_hypervolume(&[0.9, 1.1]), None);
    assert_eq!(zdt1.front_hypervolume(&[1.1, 1.1, 1.1]), None);
    let dtlz2 = BenchmarkProblem::standard(Benchmark::Dtlz2);
    assert!(
        (dtlz2.front_hypervolume(&[1.1; 3]).unwrap() - (1.331 - std::f64::consts::PI / 6.0)).abs() < 1e-15
    );
}

#[test]
fn pymoo_operator_defaults() {
    let problem = BenchmarkProblem::standard(Benchmark::Zdt1);
    assert_eq!(
        problem.sbx,
        Sbx {
            eta: 15.0,
            prob_var: 0.5,
            prob_swap: 0.5
        }
    );
    assert_eq!(
        problem.mutation,
        PolynomialMutation {
            eta: 20.0,
            prob_var: 1.0 / 30.0
        }
    );
    assert_eq!(problem.n_variables(), 30);
    assert_eq!(BenchmarkProblem::standard(Benchmark::Dtlz2).n_variables(), 12);
}

#[test]
fn sbx_children_straddle_their_parents_on_average() {
    // SBX is mean-preserving per variable (before clipping): children's mean = parents' mean
    let mut rng = StdRng::seed_from_u64(5);
    let params = Sbx {
        eta: 15.0,
        prob_var: 1.0,
        prob_swap: 0.5,
    };
    let (a, b) = (vec![0.4], vec![0.6]);
    let mut spread = 0.0;
    for _ in 0..1000 {
        let (c, d) = sbx(&a, &b, &[0.0], &[1.0], &params, &mut rng);
        assert!((c[0] + d[0] - 1.0).abs() < 1e-9, "children {c:?} {d:?}");
        spread += (c[0] - d[0]).abs();
    }
    // eta 15 keeps children near the parents: mean spread close to the parents' 0.2
    let mean = spread / 1000.0;
    assert!((0.15..0.25).contains(&mean), "mean spread {mean}");
}

proptest! {
    #[test]
    fn operators_stay_in_bounds(
        a in proptest::collection::vec(0.0f64..=1.0, 8),
        b in proptest::collection::vec(0.0f64..=1.0, 8),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let problem = BenchmarkProblem::with_variables(Benchmark::Zdt1, 8).unwrap();
        let (mut c, mut d) = problem.crossover(&a, &b, &mut rng);
        problem.mutate(&mut c, &mut rng);
        polynomial_mutation(&mut d, &[0.0; 8], &[1.0; 8], &PolynomialMutation { eta: 20.0, prob_var: 1.0 }, &mut rng);
        for v in c.iter().chain(&d) {
            prop_assert!((0.0..=1.0).contains(v), "{v}");
        }
        // identical parents are copied
        let (e, f) = sbx(&a, &a, &[0.0; 8], &[1.0; 8], &problem.sbx, &mut rng);
        prop_assert_eq!(&e, &a);
        prop_assert_eq!(&f, &a);
    }
}
