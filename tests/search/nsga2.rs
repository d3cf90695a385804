//! The NSGA-II engine: sorting, crowding, truncation, the ask/tell protocol, the cache,
//! constraint handling, determinism across thread counts, and checkpoint/resume.

use llmforge::output::{load_json, save_json};
use llmforge::search::history::{History, ReferencePoint};
use llmforge::search::hypervolume::hypervolume;
use llmforge::search::nsga2::{
    CacheInCheckpoint, Checkpoint, Evaluation, Individual, Nsga2, Nsga2Error, Problem, Settings, Truncation,
    constrained_dominates, crowding_distance, non_dominated_sort, survive,
};
use llmforge::search::problems::{Benchmark, BenchmarkProblem};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use std::path::PathBuf;

fn settings(population: usize, offspring: usize, generations: usize, seed: u64) -> Settings {
    Settings {
        population,
        offspring,
        generations,
        crossover_prob: 0.9,
        mutation_prob: 1.0,
        seed,
        eliminate_duplicates: true,
        truncation: Truncation::IterativeCrowding,
    }
}

/// A scratch directory unique to one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("llmforge-search-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- a small constrained problem

/// Integer points (a, b) in 0..=20, minimise (a, b) subject to a + b >= 20. The Pareto front
/// is the 21 points with a + b = 20. Small enough (441 genomes) that repeats (cache hits)
/// are common.
struct Lattice {
    fail_on: Option<[i64; 2]>,
}

#[derive(Debug, thiserror::Error)]
#[error("refusing to evaluate {0:?}")]
struct Refused([i64; 2]);

impl Problem for Lattice {
    type Genome = [i64; 2];
    type Key = [i64; 2];
    type Error = Refused;

    fn n_objectives(&self) -> usize {
        2
    }
    fn key(&self, genome: &[i64; 2]) -> [i64; 2] {
        *genome
    }
    fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> [i64; 2] {
        [rng.random_range(0..=20), rng.random_range(0..=20)]
    }
    fn crossover<R: Rng + ?Sized>(&self, a: &[i64; 2], b: &[i64; 2], rng: &mut R) -> ([i64; 2], [i64; 2]) {
        if rng.random_bool(0.5) {
            ([a[0], b[1]], [b[0], a[1]])
        } else {
            (*a, *b)
        }
    }
    fn mutate<R: Rng + ?Sized>(&self, genome: &mut [i64; 2], rng: &mut R) {
        let k = rng.random_range(0..2);
        if rng.random_bool(0.5) {
            genome[k] += if rng.random_bool(0.5) { 1 } else { -1 };
        } else {
            genome[k] = rng.random_range(0..=20);
        }
    }
    fn repair(&self, genome: &mut [i64; 2]) {
        for v in genome.iter_mut() {
            *v = (*v).clamp(0, 20);
        }
    }
    fn evaluate(&self, genome: &[i64; 2]) -> Result<Evaluation, Refused> {
        if self.fail_on == Some(*genome) {
            return Err(Refused(*genome));
        }
        Ok(Evaluation {
            objectives: vec![genome[0] as f64, genome[1] as f64],
            violation: (20 - genome[0] - genome[1]).max(0) as f64,
        })
    }
}

#[test]
fn constrained_search_finds_the_whole_front_and_uses_the_cache() {
    let problem = Lattice { fail_on: None };
    let mut engine = Nsga2::new(&problem, settings(30, 30, 100, 5)).unwrap();
    let mut reports = Vec::new();
    engine.run(|_, report| reports.push(report.clone())).unwrap();
    assert_eq!(reports.len(), 101);
    assert_eq!(
        reports.iter().map(|r| r.generation).collect::<Vec<_>>(),
        (0..=100).collect::<Vec<_>>()
    );

    let mut front: Vec<[i64; 2]> = engine.pareto_front().iter().map(|i| i.genome).collect();
    front.sort();
    // only true optima, and elitism: every optimum ever evaluated is still in the population
    // (the first front never outgrows it)
    assert!(front.iter().all(|g| g[0] + g[1] == 20), "{front:?}");
    let mut found: Vec<[i64; 2]> = engine
        .archive()
        .iter()
        .map(|i| i.genome)
        .filter(|g| g[0] + g[1] == 20)
        .collect();
    found.sort();
    assert_eq!(front, found);
    assert!(
        front.len() >= 18,
        "only {} of the 21 optima found: {front:?}",
        front.len()
    );
    // every candidate was either evaluated once or answered from the cache
    assert_eq!(engine.evaluations() + engine.cache_hits(), 30 + 100 * 30);
    assert_eq!(engine.evaluations() as usize, engine.archive().len());
    assert!(engine.cache_hits() > 0);
    assert!(engine.evaluations() <= 21 * 21);
}

#[test]
fn evaluation_errors_name_the_candidate() {
    // fail on the sixth genome of the initial population
    let probe = Lattice { fail_on: None };
    let target = Nsga2::new(&probe, settings(30, 30, 40, 5))
        .unwrap()
        .ask()
        .unwrap()[5];
    let problem = Lattice {
        fail_on: Some(target),
    };
    let mut engine = Nsga2::new(&problem, settings(30, 30, 40, 5)).unwrap();
    match engine.run(|_, _| {}) {
        Err(Nsga2Error::Evaluation {
            generation,
            index,
            source,
        }) => {
            assert_eq!((generation, index), (0, 5));
            assert_eq!(source.to_string(), format!("refusing to evaluate {target:?}"));
        }
        other => panic!("expected an evaluation error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- protocol and settings

#[test]
fn settings_are_validated() {
    let problem = BenchmarkProblem::standard(Benchmark::Zdt1);
    for (mutate, field) in [
        (
            Box::new(|s: &mut Settings| s.population = 0) as Box<dyn Fn(&mut Settings)>,
            "population",
        ),
        (Box::new(|s: &mut Settings| s.offspring = 0), "offspring"),
        (
            Box::new(|s: &mut Settings| s.crossover_prob = 1.5),
            "crossover_prob",
        ),
        (
            Box::new(|s: &mut Settings| s.mutation_prob = f64::NAN),
            "mutation_prob",
        ),
    ] {
        let mut bad = settings(10, 10, 1, 0);
        mutate(&mut bad);
        match Nsga2::new(&problem, bad) {
            Err(Nsga2Error::Settings { field: got, .. }) => assert_eq!(got, field),
            Err(other) => panic!("{field}: wrong error {other}"),
            Ok(_) => panic!("{field}: accepted"),
        }
    }
}

#[test]
fn ask_tell_protocol() {
    let problem = BenchmarkProblem::standard(Benchmark::Zdt1);
    let mut engine = Nsga2::new(&problem, settings(8, 6, 1, 1)).unwrap();
    assert!(matches!(engine.tell(vec![]), Err(Nsga2Error::NothingAsked)));

    let first = engine.ask().unwrap().to_vec();
    assert_eq!(first.len(), 8);
    assert_eq!(
        engine.ask().unwrap(),
        first.as_slice(),
        "asking again gives the same batch"
    );
    assert!(matches!(
        engine.tell(vec![]),
        Err(Nsga2Error::BatchSize { expected: 8, got: 0 })
    ));
    let mut evaluations: Vec<Evaluation> = first
        .iter()
        .map(|g| Evaluation::feasible(problem.objectives(g)))
        .collect();
    evaluations[3].objectives.push(0.0);
    assert!(matches!(
        engine.tell(evaluations.clone()),
        Err(Nsga2Error::ObjectiveCount {
            index: 3,
            expected: 2,
            got: 3
        })
    ));
    evaluations[3].objectives.pop();
    evaluations[5].objectives[0] = f64::NAN;
    assert!(matches!(
        engine.tell(evaluations.clone()),
        Err(Nsga2Error::BadEvaluation { index: 5, .. })
    ));
    evaluations[5] = Evaluation::feasible(problem.objectives(&first[5]));
    evaluations[6].violation = -1.0;
    assert!(matches!(
        engine.tell(evaluations.clone()),
        Err(Nsga2Error::BadEvaluation { index: 6, .. })
    ));
    evaluations[6].violation = 0.0;
    // errors leave the asked batch pending
    let report = engine.tell(evaluations).unwrap();
    assert_eq!(report.generation, 0);
    assert_eq!(engine.population().len(), 8);

    let offspring = engine.ask().unwrap().to_vec();
    assert_eq!(offspring.len(), 6);
    assert!(
        offspring
            .iter()
            .all(|g| g.len() == 30 && g.iter().all(|v| (0.0..=1.0).contains(v)))
    );
    let evaluations = offspring
        .iter()
        .map(|g| Evaluation::feasible(problem.objectives(g)))
        .collect();
    assert_eq!(engine.tell(evaluations).unwrap().generation, 1);
    assert!(engine.is_done());
    assert!(matches!(
        engine.ask(),
        Err(Nsga2Error::Finished { generations: 1 })
    ));
}

#[test]
fn initial_population_of_the_wrong_size_is_an_error() {
    struct Short(BenchmarkProblem);
    impl Problem for Short {
        type Genome = Vec<f64>;
        type Key = Vec<u64>;
        type Error = std::convert::Infallible;
        fn n_objectives(&self) -> usize {
            2
        }
        fn key(&self, g: &Vec<f64>) -> Vec<u64> {
            self.0.key(g)
        }
        fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
            self.0.random(rng)
        }
        fn initial_population<R: Rng + ?Sized>(&self, size: usize, rng: &mut R) -> Vec<Vec<f64>> {
            (0..size - 1).map(|_| self.0.random(rng)).collect()
        }
        fn crossover<R: Rng + ?Sized>(
            &self,
            a: &Vec<f64>,
            b: &Vec<f64>,
            rng: &mut R,
        ) -> (Vec<f64>, Vec<f64>) {
            self.0.crossover(a, b, rng)
        }
        fn mutate<R: Rng + ?Sized>(&self, g: &mut Vec<f64>, rng: &mut R) {
            self.0.mutate(g, rng)
        }
        fn repair(&self, g: &mut Vec<f64>) {
            self.0.repair(g)
        }
        fn evaluate(&self, g: &Vec<f64>) -> Result<Evaluation, std::convert::Infallible> {
            self.0.evaluate(g)
        }
    }
    let problem = Short(BenchmarkProblem::standard(Benchmark::Zdt1));
    let mut engine = Nsga2::new(&problem, settings(10, 10, 1, 0)).unwrap();
    assert!(matches!(
        engine.ask(),
        Err(Nsga2Error::InitialPopulation { expected: 10, got: 9 })
    ));
}

// ---------------------------------------------------------------- sorting and crowding

/// Fronts by definition: repeatedly peel off the members no remaining member dominates.
fn peel_fronts(evaluations: &[&Evaluation]) -> Vec<Vec<usize>> {
    let mut remaining: Vec<usize> = (0..evaluations.len()).collect();
    let mut fronts = Vec::new();
    while !remaining.is_empty() {
        let front: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&i| {
                !remaining
                    .iter()
                    .any(|&j| constrained_dominates(evaluations[j], evaluations[i]))
            })
            .collect();
        remaining.retain(|i| !front.contains(i));
        fronts.push(front);
    }
    fronts
}

#[test]
fn non_dominated_sort_matches_the_definition() {
    let mut rng = StdRng::seed_from_u64(17);
    for trial in 0..300 {
        let m = 2 + trial % 3;
        let n = rng.random_range(0..60);
        let levels = if trial % 2 == 0 { 4 } else { 1000 };
        let evaluations: Vec<Evaluation> = (0..n)
            .map(|_| Evaluation {
                objectives: (0..m).map(|_| rng.random_range(0..levels) as f64).collect(),
                violation: if trial % 3 == 0 && rng.random_bool(0.3) {
                    rng.random_range(1..4) as f64 * 0.5
                } else {
                    0.0
                },
            })
            .collect();
        let refs: Vec<&Evaluation> = evaluations.iter().collect();
        assert_eq!(
            non_dominated_sort(&refs),
            peel_fronts(&refs),
            "trial {trial}: m={m} n={n}"
        );
    }
}

#[test]
fn crowding_distance_by_hand() {
    let points: [&[f64]; 4] = [&[0.5, 0.5], &[0.0, 1.0], &[1.0, 0.0], &[0.25, 0.75]];
    let distance = crowding_distance(&points);
    assert_eq!(distance, vec![1.5, f64::INFINITY, f64::INFINITY, 1.0]);
    assert_eq!(
        crowding_distance(&[&[1.0, 2.0], &[2.0, 1.0]]),
        vec![f64::INFINITY; 2]
    );
    // an objective all points agree on adds nothing and marks no extremes
    let flat: [&[f64]; 3] = [&[0.0, 1.0], &[0.5, 1.0], &[1.0, 1.0]];
    assert_eq!(crowding_distance(&flat), vec![f64::INFINITY, 1.0, f64::INFINITY]);
}

/// Kukkonen-Deb pruning the slow way: recompute every distance after each removal.
fn naive_iterative_pruning(points: &[Vec<f64>], keep: usize) -> Vec<usize> {
    let mut alive: Vec<usize> = (0..points.len()).collect();
    while alive.len() > keep {
        let subset: Vec<&[f64]> = alive.iter().map(|&i| points[i].as_slice()).collect();
        let distance = crowding_distance(&subset);
        let mut worst = 0;
        for (w, d) in distance.iter().enumerate() {
            if d.total_cmp(&distance[worst]).is_lt() {
                worst = w;
            }
        }
        alive.remove(worst);
    }
    alive
}

#[test]
fn iterative_truncation_equals_recomputing_from_scratch() {
    let mut rng = StdRng::seed_from_u64(23);
    for trial in 0..200 {
        let m = 2 + trial % 3;
        let n = rng.random_range(3..80);
        let keep = rng.random_range(1..n);
        // mutually non-dominated points: on the simplex, sometimes with repeated coordinates
        let points: Vec<Vec<f64>> = (0..n)
            .map(|_| {
                let raw: Vec<f64> = (0..m)
                    .map(|_| {
                        if trial % 4 == 0 {
                            rng.random_range(1..6) as f64
                        } else {
                            rng.random::<f64>() + 0.01
                        }
                    })
                    .collect();
                let sum: f64 = raw.iter().sum();
                raw.iter().map(|v| v / sum).collect()
            })
            .collect();
        let merged: Vec<Individual<usize>> = points
            .iter()
            .enumerate()
            .map(|(i, p)| Individual {
                genome: i,
                evaluation: Evaluation::feasible(p.clone()),
            })
            .collect();
        let refs: Vec<&Evaluation> = merged.iter().map(|i| &i.evaluation).collect();
        if non_dominated_sort(&refs).len() != 1 {
            continue; // the simplex normalisation can leave exact duplicates dominating nothing: fine
        }
        let survivors = survive(merged.clone(), keep, Truncation::IterativeCrowding);
        let mut kept: Vec<usize> = survivors.population.iter().map(|i| i.genome).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            naive_iterative_pruning(&points, keep),
            "trial {trial}: n={n} keep={keep}"
        );
        assert!(survivors.ranks.iter().all(|&r| r == 0));
    }
}

#[test]
fn survival_keeps_whole_better_fronts() {
    // fronts: {0: (0,1), 1: (1,0)}, {2: (1,2), 3: (2,1)}, {4: (3,3)}, infeasible 5
    let evaluations = [
        Evaluation::feasible(vec![0.0, 1.0]),
        Evaluation::feasible(vec![1.0, 0.0]),
        Evaluation::feasible(vec![1.0, 2.0]),
        Evaluation::feasible(vec![2.0, 1.0]),
        Evaluation::feasible(vec![3.0, 3.0]),
        Evaluation {
            objectives: vec![-5.0, -5.0],
            violation: 1.0,
        },
    ];
    let merged: Vec<Individual<usize>> = evaluations
        .iter()
        .enumerate()
        .map(|(i, e)| Individual {
            genome: i,
            evaluation: e.clone(),
        })
        .collect();
    for truncation in [Truncation::Crowding, Truncation::IterativeCrowding] {
        let survivors = survive(merged.clone(), 5, truncation);
        let kept: Vec<usize> = survivors.population.iter().map(|i| i.genome).collect();
        assert_eq!(kept, vec![0, 1, 2, 3, 4]);
        assert_eq!(survivors.ranks, vec![0, 0, 1, 1, 2]);
        let survivors = survive(merged.clone(), 3, truncation);
        assert_eq!(survivors.population.len(), 3);
        assert_eq!(survivors.ranks, vec![0, 0, 1]);
    }
}

// ---------------------------------------------------------------- determinism and resume

fn final_state<P: Problem>(engine: &Nsga2<'_, P>) -> String {
    serde_json::to_string(&engine.checkpoint(CacheInCheckpoint::Include)).unwrap()
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let mut problem = BenchmarkProblem::standard(Benchmark::Zdt2);
    problem.parallel_chunk = 1; // spread every batch over the pool
    problem.cache = true;
    let run_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut engine = Nsga2::new(&problem, settings(24, 24, 15, 9)).unwrap();
            engine.run(|_, _| {}).unwrap();
            final_state(&engine)
        })
    };
    let one = run_with(1);
    assert_eq!(one, run_with(4));
    assert_eq!(one, run_with(3));
}

#[test]
fn seeds_change_the_run_and_repeat_exactly() {
    let problem = BenchmarkProblem::standard(Benchmark::Zdt3);
    let run = |seed| {
        let mut engine = Nsga2::new(&problem, settings(20, 20, 10, seed)).unwrap();
        engine.run(|_, _| {}).unwrap();
        final_state(&engine)
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

/// Runs to `stop_after` generations saving a checkpoint file after each, then resumes from
/// the file in a fresh engine and finishes.
fn interrupted_run<P: Problem>(
    problem: &P,
    settings: Settings,
    stop_after: usize,
    cache: CacheInCheckpoint,
) -> String {
    let scratch = Scratch::new(&format!("resume-{}-{stop_after}-{:?}", settings.seed, cache));
    let path = scratch.0.join("checkpoint.json");
    {
        let mut engine = Nsga2::new(problem, settings).unwrap();
        while engine.next_generation() <= stop_after {
            engine.step().unwrap();
            save_json(&path, "checkpoint", &engine.checkpoint(cache)).unwrap();
        }
    }
    let checkpoint: Checkpoint<P::Genome> = load_json(&path, "checkpoint").unwrap();
    let mut engine = Nsga2::resume(problem, checkpoint).unwrap();
    engine.run(|_, _| {}).unwrap();
    final_state(&engine)
}

#[test]
fn resuming_from_a_checkpoint_file_is_byte_identical() {
    let mut zdt = BenchmarkProblem::standard(Benchmark::Zdt1);
    zdt.cache = true;
    let lattice = Lattice { fail_on: None };
    let zdt_settings = settings(20, 16, 25, 3);
    let lattice_settings = settings(30, 30, 25, 3);

    let mut straight = Nsga2::new(&zdt, zdt_settings.clone()).unwrap();
    straight.run(|_, _| {}).unwrap();
    let zdt_expected = final_state(&straight);
    let mut straight = Nsga2::new(&lattice, lattice_settings.clone()).unwrap();
    straight.run(|_, _| {}).unwrap();
    let lattice_expected = final_state(&straight);

    for stop_after in [0, 1, 12, 24] {
        assert_eq!(
            interrupted_run(&zdt, zdt_settings.clone(), stop_after, CacheInCheckpoint::Include),
            zdt_expected
        );
        assert_eq!(
            interrupted_run(
                &lattice,
                lattice_settings.clone(),
                stop_after,
                CacheInCheckpoint::Include
            ),
            lattice_expected
        );
    }
    // without the cache the population is identical; only cache statistics may differ
    let resumed = interrupted_run(&lattice, lattice_settings.clone(), 12, CacheInCheckpoint::Omit);
    let population = |json: &str| {
        serde_json::from_str::<Checkpoint<[i64; 2]>>(json)
            .unwrap()
            .population
    };
    assert_eq!(population(&resumed), population(&lattice_expected));
}

#[test]
fn foreign_checkpoints_are_refused() {
    let problem = BenchmarkProblem::standard(Benchmark::Zdt1);
    let mut engine = Nsga2::new(&problem, settings(10, 10, 5, 1)).unwrap();
    engine.step().unwrap();
    let good = engine.checkpoint(CacheInCheckpoint::Omit);

    let mut bad = good.clone();
    bad.format = 99;
    assert!(matches!(
        Nsga2::resume(&problem, bad),
        Err(Nsga2Error::Checkpoint { .. })
    ));
    let mut bad = good.clone();
    bad.population.pop();
    assert!(matches!(
        Nsga2::resume(&problem, bad),
        Err(Nsga2Error::Checkpoint { .. })
    ));
    let mut bad = good.clone();
    bad.completed_batches = 9;
    assert!(matches!(
        Nsga2::resume(&problem, bad),
        Err(Nsga2Error::Checkpoint { .. })
    ));
    let mut bad = good.clone();
    bad.population[0].evaluation.objectives = vec![0.0];
    let refused = |bad| match Nsga2::resume(&problem, bad) {
        Err(Nsga2Error::Checkpoint { reason }) => reason,
        other => panic!("accepted or wrong error: {:?}", other.err()),
    };
    let reason = refused(bad);
    assert!(
        reason.starts_with("population[0].evaluation: evaluation 0 has 1 objectives"),
        "{reason}"
    );
    // issue 14: checkpoints are not trusted; an edited objective or a genome out of bounds is
    // refused, naming the entry
    let mut bad = good.clone();
    bad.population[3].evaluation.objectives[1] = 0.5;
    let reason = refused(bad);
    assert!(
        reason.starts_with(
            "population[3]: objective `f2` is 0.5 in the checkpoint, but its genome evaluates to"
        ),
        "{reason}"
    );
    let mut bad = good.clone();
    bad.population[1].genome[4] = 1e12;
    let reason = refused(bad);
    assert!(
        reason.starts_with("population[1].genome: x5 = 1000000000000.0 is outside its bounds [0, 1]"),
        "{reason}"
    );
    let mut bad = good.clone();
    bad.population[2].genome.clear();
    let reason = refused(bad);
    assert!(
        reason.starts_with("population[2].genome: 0 variables, but zdt1 has 30"),
        "{reason}"
    );
    assert!(Nsga2::resume(&problem, good).is_ok());
}

#[test]
fn an_edited_cache_entry_is_refused() {
    let mut problem = BenchmarkProblem::standard(Benchmark::Zdt2);
    problem.cache = true;
    let mut engine = Nsga2::new(&problem, settings(10, 10, 5, 1)).unwrap();
    engine.step().unwrap();
    engine.step().unwrap();
    let mut bad = engine.checkpoint(CacheInCheckpoint::Include);
    let cache = bad.cache.as_mut().unwrap();
    let last = cache.len() - 1;
    cache[last].evaluation.objectives[0] += 1e-3;
    match Nsga2::resume(&problem, bad) {
        Err(Nsga2Error::Checkpoint { reason }) => {
            assert!(
                reason.starts_with(&format!("cache[{last}]: objective `f1`")),
                "{reason}"
            )
        }
        other => panic!("accepted or wrong error: {:?}", other.err()),
    }
}

#[test]
fn a_corrupt_checkpoint_file_reports_line_and_column() {
    let scratch = Scratch::new("corrupt");
    let path = scratch.0.join("checkpoint.json");
    std::fs::write(&path, "{\n  \"format\": 1,\n  \"settings\": nope\n}\n").unwrap();
    let error = load_json::<Checkpoint<Vec<f64>>>(&path, "checkpoint")
        .unwrap_err()
        .to_string();
    assert!(error.contains("checkpoint.json:3:"), "{error}");
    assert!(error.contains("not a valid checkpoint"), "{error}");
}

// ---------------------------------------------------------------- history

#[test]
fn history_records_every_generation() {
    let problem = BenchmarkProblem::standard(Benchmark::Zdt1);
    let mut engine = Nsga2::new(&problem, settings(20, 20, 10, 4)).unwrap();
    let mut fixed = History::new(ReferencePoint::Fixed(vec![1.1, 1.1]));
    let mut derived = History::new(ReferencePoint::FromFirstGeneration { factor: 1.05 });
    let mut first_max = Vec::new();
    engine
        .run(|engine, report| {
            if report.generation == 0 {
                first_max = (0..2)
                    .map(|k| {
                        engine
                            .population()
                            .iter()
                            .map(|i| i.evaluation.objectives[k])
                            .fold(f64::MIN, f64::max)
                    })
                    .collect();
            }
            fixed.record(engine, report).unwrap();
            derived.record(engine, report).unwrap();
        })
        .unwrap();
    assert_eq!(fixed.rows.len(), 11);
    assert_eq!(
        derived.resolved,
        Some(first_max.iter().map(|m| m * 1.05).collect())
    );
    let front: Vec<Vec<f64>> = engine
        .pareto_front()
        .iter()
        .map(|i| i.evaluation.objectives.clone())
        .collect();
    let last = fixed.rows.last().unwrap();
    assert_eq!(last.hypervolume, hypervolume(&front, &[1.1, 1.1]).unwrap());
    assert_eq!(last.front_size, front.len());
    assert_eq!(last.evaluations, engine.evaluations());
    let csv = fixed.to_csv();
    assert!(csv.starts_with("generation,evaluations,cache_hits,front_size,hypervolume\n0,20,0,"));
    assert_eq!(csv.lines().count(), 12);
}

// ---------------------------------------------------------------- quality on ZDT1

fn zdt1_median_hypervolume(generations: usize) -> (f64, Vec<f64>) {
    let problem = BenchmarkProblem::standard(Benchmark::Zdt1);
    let mut volumes: Vec<f64> = (1..=5)
        .map(|seed| {
            let mut engine = Nsga2::new(&problem, settings(100, 100, generations, seed)).unwrap();
            engine.run(|_, _| {}).unwrap();
            let front: Vec<&[f64]> = engine
                .pareto_front()
                .iter()
                .map(|i| i.evaluation.objectives.as_slice())
                .collect();
            hypervolume(&front, &[1.1, 1.1]).unwrap()
        })
        .collect();
    volumes.sort_by(f64::total_cmp);
    (volumes[2], volumes)
}

/// The acceptance criterion: ZDT1, 30 variables, population 100, 250 generations, median
/// hypervolume over seeds 1-5 at (1.1, 1.1) of at least 0.870 (the whole front has 0.8767;
/// pymoo 0.6.2 NSGA-II reaches 0.8695-0.8700 with the same budget). About 5 s in a debug
/// build on a loaded machine, 0.2 s in release.
#[test]
fn zdt1_full_budget_reaches_0_870() {
    let (median, all) = zdt1_median_hypervolume(250);
    assert!(median >= 0.870, "median {median}, all {all:?}");
}
