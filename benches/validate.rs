//! Validation benchmarks: reading the public trace file (4,520 rows), and the whole
//! uncalibrated validation of it (map, predict with the roofline engine, statistics).
//! Target: the full validation under 2 s. Run: `cargo bench --bench validate`.

use llmforge::validate::mapping::Maps;
use llmforge::validate::predict::Engine;
use llmforge::validate::{self, Library, Options, traces};

const PUBLIC: &str = include_str!("../traces/public-llm-inference.csv");

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 10)]
fn read_public_traces() -> usize {
    traces::parse(divan::black_box(PUBLIC), "public.csv")
        .unwrap()
        .rows
        .len()
}

#[divan::bench(sample_count = 5)]
fn validate_public_traces(b: divan::Bencher) {
    let t = traces::parse(PUBLIC, "public.csv").unwrap();
    let maps = Maps::builtin().unwrap();
    let opts = Options {
        engine: Engine::Roofline,
        holdout: Vec::new(),
        progress: Default::default(),
    };
    b.bench(|| {
        let mut lib = Library::new(Vec::new());
        validate::validate(divan::black_box(&t), &maps, &mut lib, &opts).counts
    });
}
