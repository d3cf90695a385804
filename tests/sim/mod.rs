//! Cost engines: fast paths against the slow exact path, bounds, monotonicity, snapshots.

use llmforge::model::{self, Model, Precision, Precisions};
use llmforge::sim::{self, Engine, RunSummary, Workload};
use llmforge::substrate::{self, Substrate};

fn sub(name: &str) -> Substrate {
    substrate::load(name, &[]).unwrap()
}

fn int8(mut m: Model) -> Model {
    m.precision = Precisions {
        weights: Precision::Int8,
        activations: Precision::Int8,
        kv_cache: Precision::Int8,
    };
    m
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

fn assert_same(fast: &RunSummary, slow: &RunSummary, what: &str) {
    let pairs = [
        ("ttft", fast.ttft_s, slow.ttft_s),
        ("tpot", fast.tpot_s, slow.tpot_s),
        ("prefill energy", fast.prefill_energy_j, slow.prefill_energy_j),
        ("decode energy", fast.decode_energy_j, slow.decode_energy_j),
        ("decode flops", fast.decode.flops.get(), slow.decode.flops.get()),
        (
            "decode dram",
            fast.decode.dram_bytes.get(),
            slow.decode.dram_bytes.get(),
        ),
        (
            "decode memory-bound time",
            fast.decode.memory_bound_time.get(),
            slow.decode.memory_bound_time.get(),
        ),
    ];
    for (name, a, b) in pairs {
        assert!(close(a, b, 1e-9), "{what}: {name} fast {a} vs slow {b}");
    }
}

#[test]
fn fast_paths_equal_the_slow_exact_path() {
    let cases = [
        ("smollm2-135m", "gemmini"),
        ("smollm2-135m", "a100-sxm4-40gb"),
        ("llmforge-eco-294m", "eyeriss"),
        ("llmforge-eco-294m", "jetson-agx-orin-64gb"),
        ("pythia-160m", "flat-edge"),
        ("qwen1.5-moe-a2.7b", "scalesim-32x32"),
    ];
    for (m, s) in cases {
        let model = model::preset(m).unwrap();
        let sub = sub(s);
        for (p, d, b) in [(17, 9, 1), (64, 5, 2)] {
            let w = Workload::new(p, d, b).unwrap();
            for e in [Engine::Roofline, Engine::Sim] {
                let fast = sim::summary(&model, &sub, w, e);
                let slow = sim::reference(&model, &sub, w, e);
                assert_same(&fast, &slow, &format!("{m} on {s}, {e}, P={p} D={d} B={b}"));
                let full = sim::run(&model, &sub, w, e);
                assert_same(&full.summary, &slow, &format!("{m} on {s}, {e} (records)"));
            }
        }
    }
}
