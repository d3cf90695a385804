//! Loss surrogate speed: batch prediction (feature extraction + bootstrap-ensemble predict) per
//! candidate on one core, and fitting the default ensemble on the 1,643-row LLMForge file.
//!
//! `cargo bench --bench surrogate` (targets: >= 200,000 candidates/s predicting; fit < 5 s).

use divan::counter::ItemsCount;
use llmforge::model::Model;
use llmforge::quality::dataset::read_llmforge_csv;
use llmforge::quality::surrogate::{FitConfig, Surrogate, features};
use std::path::Path;
use std::sync::OnceLock;

fn main() {
    divan::main();
    cpu_time_report();
}

/// CPU time of this thread in ns (`/proc/thread-self/schedstat`, Linux), which unlike wall
/// time does not count waiting for a core on a shared machine.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Throughput per CPU-second on one thread: candidates predicted, and the fit.
fn cpu_time_report() {
    let Some(t0) = thread_cpu_ns() else {
        println!("(no /proc/thread-self/schedstat: CPU-time figures skipped)");
        return;
    };
    let f = fixture();
    let c = candidates();
    let reps = 5;
    let mut sink = 0.0;
    for _ in 0..reps {
        sink += f
            .surrogate
            .predict_models(c.iter().copied())
            .iter()
            .map(|p| p.mu)
            .sum::<f64>();
    }
    let t1 = thread_cpu_ns().unwrap_or(t0);
    let n = (reps * c.len()) as f64;
    let x = features::extract_matrix(c.iter().copied());
    let t2 = thread_cpu_ns().unwrap_or(t1);
    let p = f.surrogate.predict_features(&x).map(|v| v.len()).unwrap_or(0);
    let t3 = thread_cpu_ns().unwrap_or(t2);
    let refs: Vec<&Model> = f.models.iter().collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let fit = pool.install(|| {
        let a = thread_cpu_ns().unwrap_or(0);
        let s = Surrogate::fit_models(&refs, &f.targets, "val_loss", &FitConfig::default());
        (
            thread_cpu_ns().unwrap_or(a) - a,
            s.map(|s| s.members.len()).unwrap_or(0),
        )
    });
    println!("CPU time on one thread (not counting waits for a core):");
    println!(
        "  predict (features + {} members): {:.0} candidates/CPU-s  [checksum {sink:.3}]",
        f.surrogate.members.len(),
        n / ((t1 - t0) as f64 * 1e-9)
    );
    println!(
        "  features only: {:.0} candidates/CPU-s",
        c.len() as f64 / ((t2 - t1) as f64 * 1e-9)
    );
    println!(
        "  ensemble predict only: {:.0} candidates/CPU-s",
        p as f64 / ((t3 - t2) as f64 * 1e-9)
    );
    println!(
        "  fit ({} members x ({} regression + {} classifier trees), {} rows): {:.2} CPU-s",
        fit.1,
        FitConfig::default().iterations,
        FitConfig::default().classifier_iterations,
        f.targets.len(),
        fit.0 as f64 * 1e-9
    );
}

struct Fixture {
    models: Vec<Model>,
    targets: Vec<f64>,
    surrogate: Surrogate,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/surrogate/llmforge-iha-200m-train.csv");
        let ds = read_llmforge_csv(&path, Some("val_loss")).expect("fixture");
        let targets = ds.targets();
        let models: Vec<Model> = ds.rows.into_iter().map(|r| r.model).collect();
        let refs: Vec<&Model> = models.iter().collect();
        let surrogate =
            Surrogate::fit_models(&refs, &targets, "val_loss", &FitConfig::default()).expect("fit");
        Fixture {
            models,
            targets,
            surrogate,
        }
    })
}

/// 16,430 candidates (the file's models, 10 times over).
fn candidates() -> Vec<&'static Model> {
    let f = fixture();
    (0..10).flat_map(|_| f.models.iter()).collect()
}

#[divan::bench(sample_count = 10)]
fn predict_batch(b: divan::Bencher) {
    let f = fixture();
    let c = candidates();
    b.counter(ItemsCount::new(c.len()))
        .bench(|| f.surrogate.predict_models(c.iter().copied()));
}

#[divan::bench(sample_count = 10)]
fn features_only(b: divan::Bencher) {
    let c = candidates();
    b.counter(ItemsCount::new(c.len()))
        .bench(|| features::extract_matrix(c.iter().copied()));
}

#[divan::bench(sample_count = 10)]
fn ensemble_predict_only(b: divan::Bencher) {
    let f = fixture();
    let x = features::extract_matrix(candidates());
    b.counter(ItemsCount::new(x.len() / features::N_FEATURES))
        .bench(|| f.surrogate.predict_features(&x));
}

/// The default ensemble (8 bootstrap members) on all 1,643 rows, members fitted in parallel.
#[divan::bench(sample_count = 3)]
fn fit_default(b: divan::Bencher) {
    let f = fixture();
    let refs: Vec<&Model> = f.models.iter().collect();
    b.bench(|| Surrogate::fit_models(&refs, &f.targets, "val_loss", &FitConfig::default()));
}

/// The same on one thread.
#[divan::bench(sample_count = 3)]
fn fit_default_one_thread(b: divan::Bencher) {
    let f = fixture();
    let refs: Vec<&Model> = f.models.iter().collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    b.bench(|| pool.install(|| Surrogate::fit_models(&refs, &f.targets, "val_loss", &FitConfig::default())));
}
