//! NSGA-II timings: the acceptance run (ZDT1, 30 variables, population 100, 250 generations,
//! pymoo's operator settings) and its parts. `cargo bench --bench nsga2`.
//! `benches/pymoo_zdt.py` times the same run in pymoo against the release binary.

use divan::{Bencher, black_box};
use llmforge::search::hypervolume::hypervolume;
use llmforge::search::nsga2::{Evaluation, Nsga2, Settings, Truncation, non_dominated_sort};
use llmforge::search::problems::{Benchmark, BenchmarkProblem};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn main() {
    divan::main();
}

fn settings(generations: usize, truncation: Truncation) -> Settings {
    Settings {
        population: 100,
        offspring: 100,
        generations,
        crossover_prob: 0.9,
        mutation_prob: 1.0,
        seed: 1,
        eliminate_duplicates: true,
        truncation,
    }
}

/// The whole acceptance run: 25,100 evaluations; returns the front's hypervolume.
#[divan::bench(sample_count = 10, sample_size = 1, args = [Truncation::IterativeCrowding, Truncation::Crowding])]
fn zdt1_250_generations(truncation: Truncation) -> f64 {
    let problem = BenchmarkProblem::standard(Benchmark::Zdt1);
    let mut engine = Nsga2::new(&problem, settings(250, truncation)).unwrap();
    engine.run(|_, _| {}).unwrap();
    let front: Vec<&[f64]> = engine
        .pareto_front()
        .iter()
        .map(|i| i.evaluation.objectives.as_slice())
        .collect();
    hypervolume(&front, &[1.1, 1.1]).unwrap()
}

/// DTLZ2 (3 objectives, 12 variables), population 100, 250 generations.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn dtlz2_250_generations() -> usize {
    let problem = BenchmarkProblem::standard(Benchmark::Dtlz2);
    let mut engine = Nsga2::new(&problem, settings(250, Truncation::IterativeCrowding)).unwrap();
    engine.run(|_, _| {}).unwrap();
    engine.pareto_front().len()
}

fn random_evaluations(n: usize, m: usize) -> Vec<Evaluation> {
    let mut rng = StdRng::seed_from_u64(0);
    (0..n)
        .map(|_| Evaluation::feasible((0..m).map(|_| rng.random::<f64>()).collect()))
        .collect()
}

/// The merged population of one generation (200) sorted into fronts.
#[divan::bench(args = [2, 3, 4])]
fn sort_200(bencher: Bencher, m: usize) {
    let evaluations = random_evaluations(200, m);
    let refs: Vec<&Evaluation> = evaluations.iter().collect();
    bencher.bench(|| non_dominated_sort(black_box(&refs)));
}

/// Hypervolume of 100 mutually non-dominated points (on the unit sphere), 2 to 5 objectives.
#[divan::bench(args = [2, 3, 4, 5])]
fn hypervolume_100(bencher: Bencher, m: usize) {
    let mut rng = StdRng::seed_from_u64(1);
    let points: Vec<Vec<f64>> = (0..100)
        .map(|_| {
            let raw: Vec<f64> = (0..m).map(|_| rng.random::<f64>() + 1e-3).collect();
            let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt();
            raw.iter().map(|v| v / norm).collect()
        })
        .collect();
    let reference = vec![1.1; m];
    bencher.bench(|| hypervolume(black_box(&points), &reference).unwrap());
}
