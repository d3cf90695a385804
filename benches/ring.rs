//! Ring accelerator benchmarks: one full model evaluation = prepare the model for the
//! workload, pack and price all 45 points of the hardware grid, report the winner.
//! Target: >= 1,000 models/s on one core (<= 1 ms per model).
//! Run: `cargo bench --bench ring`.

use llmforge::model;
use llmforge::sim::ring::{
    Objective, RingGrid, RingModel, RingOptions, RingSpec, RingWorkload, co_search, co_search_best,
};

fn main() {
    divan::main();
}

const MODELS: [&str; 4] = [
    "smollm2-360m",
    "qwen2.5-0.5b",
    "llmforge-eco-294m",
    "llmforge-fast-365m",
];

/// prepare + 45-point co-search + full report of the best design (the corrected model's
/// reference options).
#[divan::bench(args = MODELS)]
fn cosearch_full_report(b: divan::Bencher, name: &str) {
    let m = model::preset(name).unwrap();
    let spec = RingSpec::llmforge_reference();
    let grid = RingGrid::llmforge_ring();
    let w = RingWorkload::llmforge_paper();
    b.bench(|| {
        let rm = RingModel::new(divan::black_box(&m), &w, &RingOptions::corrected()).unwrap();
        co_search(&spec, &rm, &grid, Objective::Energy).unwrap()
    });
}

/// prepare + 45-point co-search returning only the winner's index and objective: what an
/// architecture search calls per candidate.
#[divan::bench(args = MODELS)]
fn cosearch_best_only(b: divan::Bencher, name: &str) {
    let m = model::preset(name).unwrap();
    let spec = RingSpec::llmforge_reference();
    let designs = RingGrid::llmforge_ring().ring_designs().unwrap();
    let w = RingWorkload::llmforge_paper();
    b.bench(|| {
        let rm = RingModel::new(divan::black_box(&m), &w, &RingOptions::corrected()).unwrap();
        co_search_best(&spec, &rm, &designs, Objective::Energy).unwrap()
    });
}

/// The same under the paper-era timing (`ring.timing: paper_era`): every layer priced like
/// the first, so one layer's GEMMs per grid point.
#[divan::bench(args = MODELS)]
fn cosearch_best_only_paper_era(b: divan::Bencher, name: &str) {
    let m = model::preset(name).unwrap();
    let spec = RingSpec::llmforge_reference();
    let designs = RingGrid::llmforge_ring().ring_designs().unwrap();
    let w = RingWorkload::llmforge_paper();
    b.bench(|| {
        let rm = RingModel::new(divan::black_box(&m), &w, &RingOptions::paper_era()).unwrap();
        co_search_best(&spec, &rm, &designs, Objective::Energy).unwrap()
    });
}

/// The complete model (exact decode average over 256 steps, LM head, spill and tensor
/// parallel allowed, 4096-core chips).
#[divan::bench(args = ["smollm2-360m", "llama-3-8b"])]
fn cosearch_extended(b: divan::Bencher, name: &str) {
    let m = model::preset(name).unwrap();
    let spec = RingSpec::llmforge_extended();
    let grid = RingGrid::llmforge_ring();
    let w = RingWorkload::llmforge_paper();
    b.bench(|| {
        let rm = RingModel::new(divan::black_box(&m), &w, &RingOptions::extended()).unwrap();
        co_search(&spec, &rm, &grid, Objective::Energy).unwrap()
    });
}

/// The same search through the YAML file (`substrates/ring-edge-cosearch.yaml`): loaded and
/// prepared once, then per model prepare + 45 points + the winner's index (the fast path).
#[divan::bench(args = MODELS)]
fn yaml_cosearch_best_only(b: divan::Bencher, name: &str) {
    let m = model::preset(name).unwrap();
    let space = llmforge::substrate::DesignSpace::load("ring-edge-cosearch", &[]).unwrap();
    let fast = llmforge::sim::ring_adapter::RingSpace::new(&space)
        .unwrap()
        .unwrap();
    let w = RingWorkload::llmforge_paper();
    b.bench(|| fast.best(divan::black_box(&m), w).unwrap().unwrap());
}

/// Through the YAML file with everything a caller gets: the 45-row table, the chosen point
/// re-loaded as a substrate, the winner's full report.
#[divan::bench(args = MODELS)]
fn yaml_cosearch_full(b: divan::Bencher, name: &str) {
    let m = model::preset(name).unwrap();
    let space = llmforge::substrate::DesignSpace::load("ring-edge-cosearch", &[]).unwrap();
    let w = RingWorkload::llmforge_paper();
    b.bench(|| llmforge::sim::ring_adapter::co_search(divan::black_box(&m), &space, w).unwrap());
}

/// `sim::summary` on the loaded co-search substrate (what `llmforge sim`, the architecture
/// search and the sweep call).
#[divan::bench(args = MODELS)]
fn sim_summary_ring_cosearch(b: divan::Bencher, name: &str) {
    let m = model::preset(name).unwrap();
    let sub = llmforge::substrate::load("ring-edge-cosearch", &[]).unwrap();
    let w = llmforge::sim::Workload::new(256, 256, 1).unwrap();
    b.bench(|| llmforge::sim::summary(divan::black_box(&m), &sub, w, llmforge::sim::Engine::Sim));
}
