//! Foundation benchmarks: parsing a model description, and lowering a 32-layer model
//! (SmolLM2-360M) to its prefill and decode graphs. Target: lowering < 50 us per phase.
//! Run: `cargo bench --bench graph`.

use llmforge::graph::{self, Phase};
use llmforge::model::{self, desc, hf};

fn main() {
    divan::main();
}

#[divan::bench]
fn parse_model_yaml(b: divan::Bencher) {
    let src = model::presets::PRESETS
        .iter()
        .find(|(n, _)| *n == "llmforge-eco-294m")
        .unwrap()
        .1;
    b.bench(|| desc::parse(divan::black_box(src), "eco.yaml").unwrap());
}

#[divan::bench]
fn parse_hf_config(b: divan::Bencher) {
    let src = include_str!("../tests/fixtures/hf/smollm2-360m.json");
    b.bench(|| hf::from_config_json(divan::black_box(src), "config.json", "smollm2-360m").unwrap());
}

#[divan::bench(args = ["prefill:256", "decode:512"])]
fn lower_smollm2_360m(b: divan::Bencher, phase: &str) {
    let m = model::preset("smollm2-360m").unwrap();
    let phase: Phase = phase.parse().unwrap();
    b.bench(|| graph::lower(divan::black_box(&m), phase));
}
