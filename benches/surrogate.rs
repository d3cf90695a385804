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
