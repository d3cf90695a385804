//! `llmforge snapshot record` cost: 100 cases (5 models x 20 substrates of every kind, sim
//! engine, prompt 256 + 256 generated tokens), recorded on one thread.
//! Target: under 1 s of CPU on one core for the 100 cases (issue #15). Measured: 92-189 ms wall
//! median per 100 cases (shared 2-core machine at load 5-10), the same as the bare `sim::run`
//! baseline; the whole `llmforge snapshot record` of these cases takes 0.06-0.07 s of CPU on
//! one thread (`RAYON_NUM_THREADS=1 /usr/bin/time`, release build).
//! Baseline in the same run: the 100 bare `sim::run` calls the record is made of, so the ratio
//! is the snapshot layer's own cost (top ops, rounding, the YAML text).
//! Run: `cargo bench --bench snapshot` (items/s = cases/s).

use divan::counter::ItemsCount;
use llmforge::model::presets;
use llmforge::sim::{self, Workload};
use llmforge::snapshot::{self, Cases};
use llmforge::trace;
use llmforge::yaml::SourceFile;

fn main() {
    divan::main();
}

const CASES: &str = "\
defaults: {prompt: 256, gen: 256, batch: 1, engine: sim}
matrix:
  - models: [smollm2-135m, smollm2-360m, qwen2.5-0.5b, llama-3.2-1b, llmforge-eco-294m]
    substrates: [jetson-orin-nano-super, jetson-agx-orin-64gb, a100-sxm4-40gb, h100-sxm, rtx-4090,
                 rtx-3070, l40s, a40, rtx-4000-ada, mi300x, gaudi2, max-1550, apple-m1,
                 apple-m2-ultra, gemmini, eyeriss, flat-edge, scalesim-32x32, scalesim-128x128,
                 ring-edge]
";

fn cases() -> Cases {
    let c = Cases::parse(
        &SourceFile::new("bench.cases.yaml", CASES),
        std::path::Path::new("."),
    )
    .unwrap();
    assert_eq!(c.cases.len(), 100);
    assert!(presets::names().count() >= 5);
    c
}

/// One thread: the figure is CPU time on one core.
fn one_core<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}

/// The whole command's work: parse and resolve the cases file, record, write the YAML text.
#[divan::bench(sample_count = 10)]
fn record_100_cases(b: divan::Bencher) {
    b.counter(ItemsCount::new(100usize)).bench(|| {
        one_core(|| {
            let c = cases();
            trace::snapshot::yaml(&snapshot::record(divan::black_box(&c)))
        })
    });
}

/// The record alone (cases already loaded).
#[divan::bench(sample_count = 10)]
fn record_only_100_cases(b: divan::Bencher) {
    let c = cases();
    b.counter(ItemsCount::new(100usize))
        .bench(|| one_core(|| snapshot::record(divan::black_box(&c))));
}

/// Baseline: the same 100 runs through `sim::run` (what `llmforge sim` calls).
#[divan::bench(sample_count = 10)]
fn sim_run_100_cases(b: divan::Bencher) {
    let c = cases();
    let w = Workload::new(256, 256, 1).unwrap();
    b.counter(ItemsCount::new(100usize)).bench(|| {
        for case in &c.cases {
            divan::black_box(sim::run(&case.model, &case.substrate, w, case.engine));
        }
    });
}
