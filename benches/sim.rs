//! Cost-engine benchmarks: one full evaluation (prefill of 256 tokens + 256 decode steps at
//! their own contexts) of a 32-layer model (SmolLM2-360M), roofline and cycle-approximate
//! engines, on a GPU and a systolic substrate; and one 512x512x512 GEMM on a 32x32 array
//! (SCALE-Sim v3 takes ~79 s for it, shared/reference/peers.md).
//! Targets: >= 5,000 models/s (sim), >= 100,000 models/s (roofline), on one core.
//! Run: `cargo bench --bench sim` (items/s = models/s).

use divan::counter::ItemsCount;
use llmforge::model;
use llmforge::sim::{self, Engine, Workload};
use llmforge::substrate;

fn main() {
    divan::main();
}

const SUBSTRATES: [&str; 2] = ["a100-sxm4-40gb", "gemmini"];

/// SmolLM2-360M as shipped (bf16) on the GPU; at int8 on gemmini, whose MACs are int8 only
/// (bf16 is rejected there).
fn smollm2_360m(sub: &str) -> model::Model {
    let mut m = model::preset("smollm2-360m").unwrap();
    if sub == "gemmini" {
        let p = model::Precision::Int8;
        m.precision = model::Precisions {
            weights: p,
            activations: p,
            kv_cache: p,
        };
    }
    m
}

fn eval(b: divan::Bencher, sub: &str, engine: Engine) {
    let m = smollm2_360m(sub);
    let s = substrate::load(sub, &[]).unwrap();
    let w = Workload::new(256, 256, 1).unwrap();
    b.counter(ItemsCount::new(1usize))
        .bench(|| sim::summary(divan::black_box(&m), divan::black_box(&s), w, engine));
}

/// Summary only (what a search evaluates).
#[divan::bench(args = SUBSTRATES)]
fn roofline_smollm2_360m(b: divan::Bencher, sub: &str) {
    eval(b, sub, Engine::Roofline);
}

#[divan::bench(args = SUBSTRATES)]
fn sim_smollm2_360m(b: divan::Bencher, sub: &str) {
    eval(b, sub, Engine::Sim);
}

/// With per-op records (what `llmforge sim` prints).
#[divan::bench(args = SUBSTRATES)]
fn sim_records_smollm2_360m(b: divan::Bencher, sub: &str) {
    let m = smollm2_360m(sub);
    let s = substrate::load(sub, &[]).unwrap();
    let w = Workload::new(256, 256, 1).unwrap();
    b.counter(ItemsCount::new(1usize))
        .bench(|| sim::run(divan::black_box(&m), divan::black_box(&s), w, Engine::Sim));
}

#[divan::bench]
fn gemm_512_on_32x32(b: divan::Bencher) {
    let s = substrate::load("scalesim-32x32", &[]).unwrap();
    let substrate::Kind::Systolic(sys) = &s.kind else {
        unreachable!("scalesim-32x32 is systolic")
    };
    let array = sim::cost::array(sys, 1.0);
    b.bench(|| divan::black_box(&array).gemm(512, 512, 512));
}

/// A multi-device system (`sim::system`): SmolLM2-360M on the shipped systems, tensor
/// parallel over 4 H100 (bf16) and 8 Gemmini chips in a pipeline (int8), summary only.
#[divan::bench(args = [("4x-h100-nvswitch", "h100-sxm"), ("8x-gemmini-ring", "gemmini")])]
fn system_smollm2_360m(b: divan::Bencher, (system, sub): (&str, &str)) {
    let m = smollm2_360m(sub);
    let sys = llmforge::system::load(system).unwrap();
    let w = Workload::new(256, 256, 1).unwrap();
    b.counter(ItemsCount::new(1usize))
        .bench(|| sim::system::summary(divan::black_box(&m), divan::black_box(&sys), w, Engine::Roofline));
}
