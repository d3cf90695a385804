//! Issue 20: architecture-search throughput in the LLMForge setting (population 24,
//! offspring 48, 40 generations; loss, TTFT, TPOT and energy; the simulator engine; prompt
//! and generation 256), on one thread: with the layer cache; with it disabled (the same
//! layer-major code, nothing kept); and bypassed (the engine's own step-major path, as before
//! the cache: the baseline, measured in the same run). `cargo bench --bench search`; divan's
//! item rate is candidates evaluated per second.

use divan::Bencher;
use divan::counter::ItemsCount;
use llmforge::quality::ChinchillaPrior;
use llmforge::search::arch::ArchProblem;
use llmforge::search::nsga2::{Nsga2, Settings, Truncation};
use llmforge::sim::{Engine, LayerCache, Workload};
use llmforge::sweep::budget::Metric;

fn main() {
    divan::main();
}

const CASES: [&str; 6] = [
    "llmforge-200m/flat-edge",
    "llmforge-200m/jetson-orin-nano-super",
    "llmforge-200m/ring-edge-cosearch",
    "smollm2-135m-seeded/flat-edge",
    "smollm2-135m-seeded/jetson-orin-nano-super",
    "smollm2-135m-seeded/ring-edge-cosearch",
];

#[derive(Clone, Copy)]
enum Mode {
    Cached,
    Disabled,
    Bypassed,
}

fn problem(case: &str, mode: Mode) -> ArchProblem {
    let (space, sub) = case.split_once('/').unwrap();
    let substrate = llmforge::substrate::load(sub, &[]).unwrap();
    let workload = Workload::new(256, 256, 1).unwrap();
    let layer_cache = match mode {
        Mode::Cached => ArchProblem::cache_for(&substrate, workload),
        Mode::Disabled => LayerCache::disabled(&substrate, workload),
        Mode::Bypassed => LayerCache::bypass(&substrate, workload),
    };
    ArchProblem {
        space: llmforge::search::space::load(space).unwrap(),
        layer_cache,
        substrate,
        workload,
        engine: Engine::Sim,
        objectives: vec![Metric::Loss, Metric::Ttft, Metric::Tpot, Metric::Energy],
        constraints: Vec::new(),
        loss: Box::new(ChinchillaPrior {
            tokens_per_param: 20.0,
        }),
        beta: 0.0,
    }
}

/// One LLMForge-setting search; returns the candidates it evaluated.
fn search(p: &ArchProblem) -> u64 {
    let settings = Settings {
        population: 24,
        offspring: 48,
        generations: 40,
        crossover_prob: 0.6,
        mutation_prob: 0.3,
        seed: 42,
        eliminate_duplicates: true,
        truncation: Truncation::IterativeCrowding,
    };
    let mut e = Nsga2::new(p, settings).unwrap();
    e.run(|_, _| {}).unwrap();
    e.evaluations()
}

fn bench(b: Bencher, case: &str, mode: Mode) {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let n = one.install(|| search(&problem(case, mode)));
    b.counter(ItemsCount::new(n))
        .with_inputs(|| problem(case, mode))
        .bench_local_values(|p| one.install(|| search(&p)));
}

/// With a fresh layer cache per search, as `llmforge search` runs.
#[divan::bench(args = CASES, sample_count = 3, sample_size = 1)]
fn llmforge_setting_cached(b: Bencher, case: &str) {
    bench(b, case, Mode::Cached);
}

/// The cache's code with nothing kept: every layer priced and scheduled afresh.
#[divan::bench(args = CASES, sample_count = 3, sample_size = 1)]
fn llmforge_setting_disabled(b: Bencher, case: &str) {
    bench(b, case, Mode::Disabled);
}

/// The baseline: the engine's step-major path (`sim::summary`), as before the cache.
#[divan::bench(args = CASES, sample_count = 3, sample_size = 1)]
fn llmforge_setting_engine(b: Bencher, case: &str) {
    bench(b, case, Mode::Bypassed);
}
