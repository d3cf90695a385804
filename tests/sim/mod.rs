//! Cost engines: fast paths against the slow exact path, bounds, monotonicity, the CLI. The
//! whole-model cost snapshot of every preset on every substrate is tests/snapshot (the_projects_whole_model_costs_match_their_snapshot).

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

/// The model as shipped when the substrate runs its formats, else at int8 (the int8-only
/// arrays reject the presets' bf16 and fp16).
fn runnable(m: Model, s: &Substrate) -> Model {
    match s.resolve(&m.precision) {
        Ok(_) => m,
        Err(_) => int8(m),
    }
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
        let sub = sub(s);
        let model = runnable(model::preset(m).unwrap(), &sub);
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

/// The roofline is a bound kernel by kernel; the GPU model never overlaps kernels, so there
/// the roofline is a lower bound of the whole run. The systolic schedule overlaps a GEMM's
/// fill with the previous GEMM and vector ops with the array, so its makespan can dip below
/// the per-op roofline *sum*: at most by 1.4% here (Pythia-160M's prefill at int8 on
/// flat-edge, whose GELU and bias vector ops run beside the array; 0.01% in decode); the
/// per-kernel bound still holds, and the sim never beats the roofline by more than that
/// overlap.
#[test]
fn roofline_bounds_the_simulator() {
    let w = Workload::new(128, 8, 1).unwrap();
    for s in substrate::names() {
        let sub = sub(s);
        let gpu = matches!(sub.kind, substrate::Kind::Gpu(_));
        for m in model::presets::names() {
            let model = runnable(model::preset(m).unwrap(), &sub);
            let r = sim::summary(&model, &sub, w, Engine::Roofline);
            let q = sim::summary(&model, &sub, w, Engine::Sim);
            let slack = if gpu { 1e-12 } else { 2e-2 };
            for (what, a, b) in [("ttft", r.ttft_s, q.ttft_s), ("tpot", r.tpot_s, q.tpot_s)] {
                assert!(
                    a <= b * (1.0 + slack),
                    "{m} on {s}: roofline {what} {a} > sim {b}"
                );
            }
            if gpu {
                assert!(r.prefill.flops == q.prefill.flops && r.decode.flops == q.decode.flops);
                assert!(r.decode.dram_bytes.get() <= q.decode.dram_bytes.get() * (1.0 + 1e-12));
            }
        }
    }
}

#[test]
fn every_kernel_is_at_least_its_roofline() {
    let w = Workload::new(96, 4, 2).unwrap();
    for s in [
        "gemmini",
        "eyeriss",
        "flat-edge",
        "scalesim-8x8",
        "a100-sxm4-40gb",
        "rtx-4090",
    ] {
        let sub = sub(s);
        for m in ["smollm2-135m", "llmforge-eco-294m", "qwen1.5-moe-a2.7b", "gpt2"] {
            let model = runnable(model::preset(m).unwrap(), &sub);
            let r = sim::run(&model, &sub, w, Engine::Roofline);
            let q = sim::run(&model, &sub, w, Engine::Sim);
            assert_eq!(r.ops.len(), q.ops.len());
            for (a, b) in r.ops.iter().zip(&q.ops) {
                assert_eq!(a.label, b.label);
                assert!(
                    a.time.get() <= b.time.get() * (1.0 + 1e-9),
                    "{m} on {s}: {} {:?} roofline {} > sim {}",
                    a.label,
                    a.phase,
                    a.time.get(),
                    b.time.get()
                );
            }
        }
    }
}

#[test]
fn decode_on_the_dram_bound_accelerators_streams_the_weights() {
    // TPOT ~ weight bytes / DRAM bandwidth (llmforge.md): the whole model, tied LM head
    // included, is read once per step.
    let model = int8(model::preset("smollm2-135m").unwrap());
    let w = Workload::new(256, 256, 1).unwrap();
    for s in ["gemmini", "eyeriss", "flat-edge"] {
        let sub = sub(s);
        let stream = llmforge::model::accounting::weight_bytes(&model).get() / sub.memory_bandwidth().get();
        let q = sim::summary(&model, &sub, w, Engine::Sim);
        assert!(q.tpot_s >= stream, "{s}: {} < {stream}", q.tpot_s);
        assert!(q.tpot_s <= 1.1 * stream, "{s}: {} vs {stream}", q.tpot_s);
        let bound = q.decode.memory_bound_time.get() / q.decode.time.get();
        assert!(bound > 0.9, "{s}: decode memory-bound share {bound}");
    }
}

/// A mixture's expert GEMMs run as grouped GEMMs (one member per expert, each with its own
/// weights): in a prefill every touched expert's weights pass through the L2 about once per
/// tile row of that expert's own rows and come from DRAM about once, as the roofline counts
/// them. Priced as one GEMM over all the routed rows, every tile row streamed all the touched
/// experts' weights through the L2 (Mixtral's 1,024-token prefill on an H100: 3.8 times the
/// roofline's TTFT, its expert GEMMs bound by L2 traffic).
#[test]
fn expert_gemms_read_each_experts_weights_about_once() {
    let sub = sub("h100-sxm");
    let w = Workload::new(1024, 1, 1).unwrap();
    for name in ["mixtral-8x7b", "qwen1.5-moe-a2.7b"] {
        let model = model::preset(name).unwrap();
        let sim = sim::run(&model, &sub, w, Engine::Sim);
        let roof = sim::run(&model, &sub, w, Engine::Roofline);
        let experts = |r: &sim::RunResult| -> Vec<sim::OpRecord> {
            r.ops
                .iter()
                .filter(|o| {
                    o.phase == sim::PhaseKind::Prefill
                        && o.layer == Some(0)
                        && o.name.starts_with("ffn_")
                        && o.kind == "gemm"
                })
                .cloned()
                .collect()
        };
        let (s, r) = (experts(&sim), experts(&roof));
        assert!(s.len() >= 3 && s.len() == r.len(), "{name}: {} ops", s.len());
        for (s, r) in s.iter().zip(&r) {
            let moved = s.reads.weights.get() + s.reads.activations.get() + s.writes.activations.get();
            assert!(
                s.dram_bytes.get() <= 1.25 * moved,
                "{name} {}: {} B from DRAM for {moved} B of operands",
                s.label,
                s.dram_bytes.get()
            );
            assert!(
                s.time.get() <= 1.6 * r.time.get(),
                "{name} {}: {} s against the roofline's {} s",
                s.label,
                s.time.get(),
                r.time.get()
            );
        }
    }
}

/// Ours next to the LLMForge release's reference points (which leave out the SwiGLU gate,
/// the LM head and the embedding). Not tuned to match: the test pins the direction and size
/// of the gap that the missing work explains.
#[test]
fn smollm2_135m_next_to_the_llmforge_reference_points() {
    let text = std::fs::read_to_string("tests/fixtures/sim/llmforge_reference.csv").unwrap();
    let model = int8(model::preset("smollm2-135m").unwrap());
    let w = Workload::new(256, 256, 1).unwrap();
    // What the release priced per decode step: attention projections, FFN up and down.
    let mut partial = model.clone();
    let full_bytes = llmforge::model::accounting::weight_bytes(&model).get();
    for l in &mut partial.layers {
        if let llmforge::model::Ffn::Dense { kind, .. } = &mut l.ffn {
            *kind = llmforge::model::FfnKind::Gelu; // 2 matrices: no gate
        }
    }
    let d = model.d_model as f64;
    let release_bytes =
        llmforge::model::accounting::weight_bytes(&partial).get() - model.vocab as f64 * d - 61.0 * d;
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (s, ttft_ms, tpot_ms): (&str, f64, f64) = (f[0], f[1].parse().unwrap(), f[2].parse().unwrap());
        let sub = sub(s);
        let q = sim::summary(&model, &sub, w, Engine::Sim);
        // Ours is slower: we price the gate, the LM head and the embedding.
        assert!(q.ttft_s * 1e3 > ttft_ms && q.tpot_s * 1e3 > tpot_ms, "{s}");
        // The decode gap is the missing weights: scaling their TPOT by full / priced bytes
        // lands within 15% of ours.
        let scaled = tpot_ms * full_bytes / release_bytes;
        assert!(
            (q.tpot_s * 1e3 / scaled - 1.0).abs() < 0.15,
            "{s}: {} vs scaled {scaled}",
            q.tpot_s * 1e3
        );
    }
}

#[test]
fn energy_per_token_definitions() {
    let model = model::preset("smollm2-360m").unwrap();
    let w = Workload::new(100, 50, 3).unwrap();
    for s in ["gemmini", "jetson-agx-orin-64gb"] {
        let model = runnable(model.clone(), &sub(s));
        for e in [Engine::Sim, Engine::Roofline] {
            let q = sim::summary(&model, &sub(s), w, e);
            assert!(close(
                q.total_energy_j,
                q.prefill_energy_j + q.decode_energy_j,
                1e-12
            ));
            assert!(close(q.energy_per_token_j, q.total_energy_j / 150.0, 1e-12));
            assert!(close(
                q.energy_per_processed_token_j,
                q.total_energy_j / 450.0,
                1e-12
            ));
            assert!(close(q.tpot_s, q.decode.time.get() / 50.0, 1e-12));
            assert!(close(q.tokens_per_s, 150.0 / q.decode.time.get(), 1e-12));
            assert!(close(q.ttft_s, q.prefill.time.get(), 1e-12));
            assert!(q.fits_memory);
        }
    }
    let big = model::preset("llama-3-70b").unwrap();
    assert!(!sim::summary(&big, &sub("jetson-orin-nano-super"), w, Engine::Roofline).fits_memory);
}

/// A substrate whose SRAM is so small that the decode activations stop fitting on chip in the
/// middle of the decode range: the roofline's closed-form sum must split there.
#[test]
fn roofline_sum_is_exact_across_the_on_chip_threshold() {
    let model = model::preset("smollm2-135m").unwrap();
    let mut s = sub("gemmini");
    let substrate::Kind::Systolic(a) = &mut s.kind else {
        panic!()
    };
    // an array that takes the preset's bf16, so the activations stay 2 bytes
    a.precisions.push(llmforge::model::ComputeClass::Bf16);
    // softmax of batch 4 x 9 heads x C contexts at 2 bytes, in and out: 144 C bytes
    a.buffers = llmforge::sim::systolic::Buffers::Unified(llmforge::units::Bytes::new(144.0 * 70.0));
    let w = Workload::new(50, 40, 4).unwrap();
    let fast = sim::summary(&model, &s, w, Engine::Roofline);
    let slow = sim::reference(&model, &s, w, Engine::Roofline);
    assert_same(&fast, &slow, "threshold");
    // and the activations did change side within the range
    let lo = sim::summary(&model, &s, Workload::new(50, 1, 4).unwrap(), Engine::Roofline);
    let hi = sim::summary(&model, &s, Workload::new(89, 1, 4).unwrap(), Engine::Roofline);
    let per_ctx = |r: &RunSummary| r.decode.dram_bytes.get();
    assert!(
        per_ctx(&hi) - per_ctx(&lo) > 144.0 * 70.0,
        "no threshold crossing"
    );
}

#[test]
fn records_cover_every_op_with_schedule_times() {
    let w = Workload::new(32, 4, 1).unwrap();
    for s in ["gemmini", "a100-sxm4-40gb"] {
        let sub = sub(s);
        let model = runnable(model::preset("llmforge-eco-294m").unwrap(), &sub);
        let r = sim::run(&model, &sub, w, Engine::Sim);
        let pre: Vec<_> = r
            .ops
            .iter()
            .filter(|o| o.phase == sim::PhaseKind::Prefill)
            .collect();
        let dec: Vec<_> = r
            .ops
            .iter()
            .filter(|o| o.phase == sim::PhaseKind::Decode)
            .collect();
        assert_eq!(pre.len(), dec.len());
        let last_end = pre.iter().map(|o| o.end.get()).fold(0.0, f64::max);
        assert!(
            close(last_end, r.summary.ttft_s, 1e-9),
            "{s}: {last_end} vs {}",
            r.summary.ttft_s
        );
        for o in &r.ops {
            assert!(o.end >= o.start && o.time.get() >= 0.0, "{}", o.label);
            assert_eq!(o.count, if o.phase == sim::PhaseKind::Prefill { 1 } else { 4 });
        }
        let e: f64 = pre
            .iter()
            .map(|o| o.energy.total().get() - o.energy.static_.get())
            .sum();
        let want = r.summary.prefill_energy_j - r.summary.prefill.energy.static_.get();
        assert!(close(e, want, 1e-9), "{s}: {e} vs {want}");
        // events: every op of every pass, on the run timeline
        let mut ev = sim::Events::default();
        let r2 = sim::run_with_sink(&model, &sub, w, Engine::Sim, &mut ev);
        assert_same(&r2.summary, &r.summary, "events");
        let computes = ev.events.iter().filter(|e| e.what == "compute").count();
        assert_eq!(computes, pre.len() * 5);
        let end = ev.events.iter().map(|e| e.end.get()).fold(0.0, f64::max);
        assert!(close(end, r.summary.ttft_s + r.summary.decode.time.get(), 1e-9));
    }
}

/// A model with these weight, activation and KV-cache formats.
fn formats(mut m: Model, w: &str, a: &str, kv: &str) -> Model {
    m.precision = Precisions {
        weights: w.parse().unwrap(),
        activations: a.parse().unwrap(),
        kv_cache: kv.parse().unwrap(),
    };
    m
}

/// Issue 13: the simulator priced llama.cpp's Q4_0 decode on Apple silicon exactly as slowly
/// as Q8_0 (a batch-1 GEMV padded to a 16-row MMA came out compute-bound on the shader ALUs);
/// the roofline was right. Decode streams the weights: TPOT follows their bytes (4.5 / 8.5).
#[test]
fn q4_0_decode_faster_than_q8_0_on_apple_m1_sim() {
    let llama = model::preset("llama-2-7b").unwrap();
    let w = Workload::new(128, 16, 1).unwrap();
    for s in ["apple-m1", "apple-m1-max", "apple-m2-ultra"] {
        let sub = sub(s);
        let tpot =
            |f: &str, e: Engine| sim::summary(&formats(llama.clone(), f, "fp16", "fp16"), &sub, w, e).tpot_s;
        let (q4, q8) = (tpot("Q4_0", Engine::Sim), tpot("Q8_0", Engine::Sim));
        // 4.5 / 8.5 = 0.53 of the weight bytes; KV reads and launch overheads stay
        assert!(q4 / q8 < 0.7, "{s}: Q4_0 {q4} vs Q8_0 {q8}");
        // and the simulator agrees with the roofline within 5% (both DRAM-bound; the GPU
        // kernel model overlaps the GEMV arithmetic with its DRAM stream imperfectly)
        for f in ["Q4_0", "Q8_0"] {
            let (a, b) = (tpot(f, Engine::Roofline), tpot(f, Engine::Sim));
            assert!(a <= b && b < 1.05 * a, "{s} {f}: roofline {a} sim {b}");
        }
    }
}

/// Issue 13: the systolic simulator ignored `efficiency.memory` (and `.compute`): at memory
/// 0.5 the roofline's TPOT doubled and the simulator's did not, so the roofline came out
/// slower than the simulator. Both engines now apply both; decode (DRAM-bound) doubles.
/// SmolLM2-135M at int8 on each systolic substrate, as shipped and with `set` applied to its
/// efficiency, through the simulator (with per-op records).
fn efficiency_pairs(
    w: Workload,
    set: impl Fn(&mut substrate::Efficiency),
) -> Vec<(&'static str, Model, Substrate, sim::RunResult, sim::RunResult)> {
    let model = int8(model::preset("smollm2-135m").unwrap());
    ["gemmini", "eyeriss", "flat-edge", "scalesim-32x32"]
        .into_iter()
        .map(|s| {
            let base = sub(s);
            let mut changed = base.clone();
            set(&mut changed.efficiency);
            let a = sim::run(&model, &base, w, Engine::Sim);
            let b = sim::run(&model, &changed, w, Engine::Sim);
            (s, model.clone(), changed, a, b)
        })
        .collect()
}

#[test]
fn systolic_sim_honours_memory_efficiency() {
    let w = Workload::new(64, 16, 1).unwrap();
    for (s, model, half, a, b) in efficiency_pairs(w, |e| e.memory = 0.5) {
        let (a, b) = (a.summary, b.summary);
        let ratio = b.tpot_s / a.tpot_s;
        assert!((1.9..=2.0 + 1e-9).contains(&ratio), "{s}: TPOT x{ratio}");
        let r = sim::summary(&model, &half, w, Engine::Roofline);
        assert!(r.tpot_s <= b.tpot_s * (1.0 + 1e-3) && r.ttft_s <= b.ttft_s, "{s}");
    }
}

/// ... and `efficiency.compute`: every GEMM's array time doubles at 0.5.
#[test]
fn systolic_sim_honours_compute_efficiency() {
    let w = Workload::new(256, 4, 1).unwrap();
    for (s, model, half, a, b) in efficiency_pairs(w, |e| e.compute = 0.5) {
        for (x, y) in a.ops.iter().zip(&b.ops) {
            if x.kind == "gemm" {
                let (cx, cy) = (x.compute_time.get(), y.compute_time.get());
                assert!(close(2.0 * cx, cy, 1e-9), "{s} {}: {cx} -> {cy}", x.label);
            }
        }
        assert!(b.summary.ttft_s > a.summary.ttft_s, "{s}");
        let r = sim::summary(&model, &half, w, Engine::Roofline);
        assert!(
            r.ttft_s <= b.summary.ttft_s * 1.02,
            "{s}: roofline {} > sim {}",
            r.ttft_s,
            b.summary.ttft_s
        );
    }
}

/// Issue 13: the systolic mapping priced every operand at the wider of the weight and
/// activation widths, so int4 weights beside int8 activations moved 8 bits per weight. The
/// filter now has its own width: W4A8 decode moves half the weight bytes of W8A8.
#[test]
fn systolic_sim_prices_int4_weights_at_4_bits() {
    let m = model::preset("smollm2-135m").unwrap();
    let w = Workload::new(64, 8, 1).unwrap();
    for s in ["gemmini", "eyeriss", "flat-edge", "scalesim-8x8"] {
        let sub = sub(s);
        let w8 = sim::summary(&formats(m.clone(), "int8", "int8", "int8"), &sub, w, Engine::Sim);
        let w4 = sim::summary(&formats(m.clone(), "int4", "int8", "int8"), &sub, w, Engine::Sim);
        let q4 = sim::summary(&formats(m.clone(), "Q4_0", "int8", "int8"), &sub, w, Engine::Sim);
        let bytes = |r: &RunSummary| r.decode.dram_bytes.get();
        let ratio = bytes(&w4) / bytes(&w8);
        assert!(
            ratio > 0.5 && ratio < 0.56,
            "{s}: W4A8 / W8A8 decode bytes {ratio}"
        );
        assert!(
            w4.tpot_s < w8.tpot_s && q4.tpot_s < w8.tpot_s,
            "{s}: {} {} {}",
            w4.tpot_s,
            q4.tpot_s,
            w8.tpot_s
        );
        assert!(w4.tpot_s <= q4.tpot_s, "{s}");
        assert_eq!(w4.precision.weights(), "int4 dequantised to int8");
        assert_eq!(q4.precision.weights(), "Q4_0 (4.5 b/w) dequantised to int8");
    }
}

/// Issue 13: int4 on an int8-only array runs at the int8 rate (no faster int4 peak): every
/// prefill GEMM takes the same array time as at int8; only the bytes differ.
#[test]
fn int4_on_int8_array_runs_at_int8_rate() {
    let m = model::preset("smollm2-135m").unwrap();
    let w = Workload::new(128, 2, 1).unwrap();
    for s in ["gemmini", "flat-edge", "scalesim-32x32"] {
        let sub = sub(s);
        for e in [Engine::Sim, Engine::Roofline] {
            let a = sim::run(&formats(m.clone(), "int8", "int8", "int8"), &sub, w, e);
            let b = sim::run(&formats(m.clone(), "int4", "int4", "int4"), &sub, w, e);
            assert_eq!(b.summary.precision.weight_gemm(), "int8");
            for (x, y) in a.ops.iter().zip(&b.ops) {
                if x.kind == "gemm" {
                    let (cx, cy) = (x.compute_time.get(), y.compute_time.get());
                    assert!(close(cx, cy, 1e-12), "{s} {e} {}: int8 {cx} int4 {cy}", x.label);
                }
            }
        }
    }
}

/// Issue 13: bf16 on an int8-only array used to run silently at the int8 rate. It is refused
/// (library: `Substrate::resolve`; CLI: an error naming the substrate and what it runs).
#[test]
fn bf16_on_int8_only_array_is_rejected() {
    let m = model::preset("smollm2-135m").unwrap();
    for s in ["gemmini", "eyeriss", "flat-edge", "scalesim-8x8"] {
        let e = sub(s).resolve(&m.precision).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`{s}`")) && e.contains("bf16") && e.contains("int8 only"),
            "{e}"
        );
        // a library caller that prices it anyway gets the rejection in the report
        let r = sim::summary(&m, &sub(s), Workload::new(8, 2, 1).unwrap(), Engine::Sim);
        assert!(r.precision.rejected().is_some_and(|x| x.contains("bf16")), "{s}");
    }
    // the ring declares that it quantises: bf16 runs, and says so
    let r = sim::summary(
        &m,
        &sub("ring-edge"),
        Workload::new(8, 2, 1).unwrap(),
        Engine::Sim,
    );
    assert!(r.precision.rejected.is_none());
    assert!(
        r.precision.weights().starts_with("bf16 quantised to int8"),
        "{}",
        r.precision.weights()
    );
}

mod properties {
    use super::*;
    use llmforge::model::{Attention, Ffn, FfnKind, Layer, NormKind, Positional};
    use llmforge::substrate::Kind;
    use proptest::prelude::*;

    fn arb_model() -> impl Strategy<Value = Model> {
        (
            1usize..5,
            prop::sample::select(vec![128u64, 256, 384, 576]),
            1u64..6,
            prop::sample::select(vec![1u64, 2, 3]),
            prop::sample::select(vec![32u64, 64, 96]),
            prop::sample::select(vec![32u64, 64]),
            prop::sample::select(vec![256u64, 512, 1536]),
            prop::sample::select(vec![Precision::Int8, Precision::Bf16, Precision::F32]),
            any::<bool>(),
        )
            .prop_map(|(layers, d, g, hpg, dqk, dv, width, p, attn_free_first)| {
                let attn = Attention {
                    heads: g * hpg,
                    kv_groups: g,
                    d_qk: dqk,
                    d_v: dv,
                    qkv_bias: false,
                    o_bias: false,
                };
                model(layers, d, attn, width, p, attn_free_first)
            })
    }

    /// `layers` SwiGLU blocks of width `d` sharing `attn` (the first attention-free if asked).
    fn model(
        layers: usize,
        d: u64,
        attn: Attention,
        width: u64,
        p: Precision,
        attn_free_first: bool,
    ) -> Model {
        let layer = |a: bool| Layer {
            attention: a.then_some(attn),
            ffn: Ffn::Dense {
                kind: FfnKind::SwiGlu,
                width,
                bias: false,
            },
            parallel_residual: false,
        };
        Model {
            name: "prop".into(),
            d_model: d,
            vocab: 1000,
            tied_embeddings: true,
            norm: NormKind::RmsNorm,
            positional: Positional::Rope { fraction: 1.0 },
            precision: Precisions {
                weights: p,
                activations: p,
                kv_cache: p,
            },
            layers: (0..layers).map(|i| layer(!(attn_free_first && i == 0))).collect(),
        }
    }

    fn arb_substrate() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "gemmini",
            "eyeriss",
            "flat-edge",
            "scalesim-8x8",
            "a100-sxm4-40gb",
            "jetson-orin-nano-super",
        ])
    }

    /// The kinds priced kernel by kernel: GPUs (HBM, GDDR, unified memory without matrix
    /// units), systolic arrays in both modes.
    const KERNEL_SUBSTRATES: [&str; 10] = [
        "gemmini",
        "eyeriss",
        "flat-edge",
        "scalesim-8x8",
        "scalesim-32x32",
        "a100-sxm4-40gb",
        "h100-sxm",
        "rtx-4090",
        "apple-m1",
        "jetson-orin-nano-super",
    ];

    fn arb_kernel_substrate() -> impl Strategy<Value = &'static str> {
        prop::sample::select(KERNEL_SUBSTRATES.to_vec())
    }

    /// Every kind: those and the ring (its own model, the same in both engines).
    fn arb_any_substrate() -> impl Strategy<Value = &'static str> {
        let mut v = KERNEL_SUBSTRATES.to_vec();
        v.push("ring-edge");
        prop::sample::select(v)
    }

    /// The substrate reaching `compute` of its peaks and `memory` of its bandwidth.
    fn with_efficiency(s: &Substrate, compute: f64, memory: f64) -> Substrate {
        let mut s = s.clone();
        if !matches!(s.kind, Kind::Ring(_)) {
            s.efficiency.compute = compute;
            s.efficiency.memory = memory;
        }
        s
    }

    /// (read, write) bandwidth in bytes/s of the memory that feeds the matrix units.
    fn read_write_bandwidth(s: &Substrate) -> (f64, f64) {
        match &s.kind {
            Kind::Systolic(a) => ((a.dram_read * a.clock).get(), (a.dram_write * a.clock).get()),
            _ => (s.memory_bandwidth().get(), f64::INFINITY),
        }
    }

    fn arb_engine() -> impl Strategy<Value = Engine> {
        prop::sample::select(vec![Engine::Sim, Engine::Roofline])
    }

    /// The substrate with DRAM bandwidth times `f`.
    fn more_bandwidth(s: &Substrate, f: f64) -> Substrate {
        let mut s = s.clone();
        match &mut s.kind {
            Kind::Gpu(g) => {
                g.memory_bandwidth = g.memory_bandwidth * f;
                g.l2_bandwidth = g.l2_bandwidth * f;
            }
            Kind::Systolic(a) => {
                a.dram_read = a.dram_read * f;
                a.dram_write = a.dram_write * f;
            }
            Kind::Ring(_) => unreachable!("only GPU and systolic substrates are sampled"),
        }
        s
    }

    /// The substrate with every compute rate times `f` (GPU: matrix and vector peaks;
    /// systolic: the vector unit and the clock with the DRAM bandwidth in bytes/s held).
    fn more_compute(s: &Substrate, f: f64) -> Substrate {
        let mut s = s.clone();
        match &mut s.kind {
            Kind::Gpu(g) => {
                for p in g.matrix_peak.values_mut() {
                    *p = *p * f;
                }
                g.vector_peak = g.vector_peak * f;
            }
            Kind::Systolic(a) => {
                a.clock = a.clock * f;
                a.dram_read = a.dram_read * (1.0 / f);
                a.dram_write = a.dram_write * (1.0 / f);
            }
            Kind::Ring(_) => unreachable!("only GPU and systolic substrates are sampled"),
        }
        s
    }

    const EPS: f64 = 1e-9;

    /// The counterexample proptest once found (issue 3): a one-head, 128-wide model whose
    /// TTFT on the A100 dropped by 0.1% when the prompt grew from 113 to 129 tokens, because
    /// the flash-attention mapper spread padded work evenly over CTAs that were really
    /// imbalanced. Each wave now lasts as long as its heaviest CTA.
    #[test]
    fn prompt_113_to_129_does_not_lower_ttft_on_a100() {
        let attn = Attention {
            heads: 1,
            kv_groups: 1,
            d_qk: 32,
            d_v: 32,
            qkv_bias: false,
            o_bias: false,
        };
        let m = model(1, 128, attn, 256, Precision::Int8, false);
        let sub = sub("a100-sxm4-40gb");
        let mut last = 0.0;
        for p in 100..=160 {
            let r = sim::summary(&m, &sub, Workload::new(p, 1, 1).unwrap(), Engine::Sim);
            assert!(
                r.ttft_s >= last * (1.0 - EPS),
                "prompt {p}: ttft {} < {last}",
                r.ttft_s
            );
            last = r.ttft_s;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn more_bandwidth_is_never_slower(
            m in arb_model(), s in arb_substrate(), e in arb_engine(), f in 1.0f64..4.0,
            p in 1u64..200, d in 1u64..6, b in 1u64..3,
        ) {
            let base = sub(s);
            let m = runnable(m, &base);
            let w = Workload::new(p, d, b).unwrap();
            let a = sim::summary(&m, &base, w, e);
            let c = sim::summary(&m, &more_bandwidth(&base, f), w, e);
            prop_assert!(c.ttft_s <= a.ttft_s * (1.0 + EPS), "ttft {} -> {}", a.ttft_s, c.ttft_s);
            prop_assert!(c.tpot_s <= a.tpot_s * (1.0 + EPS), "tpot {} -> {}", a.tpot_s, c.tpot_s);
        }

        #[test]
        fn more_compute_is_never_slower(
            m in arb_model(), s in arb_substrate(), e in arb_engine(), f in 1.0f64..4.0,
            p in 1u64..200, d in 1u64..6, b in 1u64..3,
        ) {
            let base = sub(s);
            let m = runnable(m, &base);
            let w = Workload::new(p, d, b).unwrap();
            let a = sim::summary(&m, &base, w, e);
            let c = sim::summary(&m, &more_compute(&base, f), w, e);
            prop_assert!(c.ttft_s <= a.ttft_s * (1.0 + EPS), "ttft {} -> {}", a.ttft_s, c.ttft_s);
            prop_assert!(c.tpot_s <= a.tpot_s * (1.0 + EPS), "tpot {} -> {}", a.tpot_s, c.tpot_s);
        }

        #[test]
        fn more_layers_are_never_faster(
            m in arb_model(), s in arb_substrate(), e in arb_engine(),
            p in 1u64..200, d in 1u64..6, b in 1u64..3, at in 0usize..8,
        ) {
            let sub = sub(s);
            let m = runnable(m, &sub);
            let w = Workload::new(p, d, b).unwrap();
            let mut bigger = m.clone();
            let extra = m.layers[at % m.layers.len()];
            bigger.layers.insert(at % (m.layers.len() + 1), extra);
            let a = sim::summary(&m, &sub, w, e);
            let c = sim::summary(&bigger, &sub, w, e);
            prop_assert!(c.ttft_s >= a.ttft_s * (1.0 - EPS), "ttft {} -> {}", a.ttft_s, c.ttft_s);
            prop_assert!(c.tpot_s >= a.tpot_s * (1.0 - EPS), "tpot {} -> {}", a.tpot_s, c.tpot_s);
            prop_assert!(c.total_energy_j >= a.total_energy_j * (1.0 - EPS));
        }

        #[test]
        fn longer_prompts_never_lower_ttft_or_tpot(
            m in arb_model(), s in arb_substrate(), e in arb_engine(),
            p in 1u64..300, more in 1u64..64, d in 1u64..6, b in 1u64..3,
        ) {
            let sub = sub(s);
            let m = runnable(m, &sub);
            let a = sim::summary(&m, &sub, Workload::new(p, d, b).unwrap(), e);
            let c = sim::summary(&m, &sub, Workload::new(p + more, d, b).unwrap(), e);
            prop_assert!(c.ttft_s >= a.ttft_s * (1.0 - EPS), "ttft {} -> {}", a.ttft_s, c.ttft_s);
            prop_assert!(c.tpot_s >= a.tpot_s * (1.0 - EPS), "tpot {} -> {}", a.tpot_s, c.tpot_s);
        }

        #[test]
        fn fast_path_equals_slow_path_on_random_models(
            m in arb_model(), s in arb_substrate(), e in arb_engine(),
            p in 1u64..100, d in 1u64..12, b in 1u64..3,
        ) {
            let sub = sub(s);
            let m = runnable(m, &sub);
            let w = Workload::new(p, d, b).unwrap();
            let fast = sim::summary(&m, &sub, w, e);
            let slow = sim::reference(&m, &sub, w, e);
            for (a, c) in [(fast.ttft_s, slow.ttft_s), (fast.tpot_s, slow.tpot_s),
                           (fast.total_energy_j, slow.total_energy_j)] {
                prop_assert!(close(a, c, 1e-9), "{a} vs {c}");
            }
        }

        /// Issue 13: for every substrate kind and any efficiencies, every kernel of the
        /// simulator takes at least its roofline, at least its MAC floor (matrix FLOPs at the
        /// fastest matrix peak) and at least its DRAM floor (the weights and KV cache it must
        /// read at the bandwidth); the roofline run is no slower than the simulator's.
        #[test]
        fn roofline_and_floors_bound_every_kernel(
            m in arb_model(), s in arb_kernel_substrate(), ec in 0.05f64..=1.0, em in 0.05f64..=1.0,
            p in 1u64..160, d in 1u64..4, b in 1u64..3,
        ) {
            let sub = with_efficiency(&sub(s), ec, em);
            let m = runnable(m, &sub);
            let w = Workload::new(p, d, b).unwrap();
            let r = sim::run(&m, &sub, w, Engine::Roofline);
            let q = sim::run(&m, &sub, w, Engine::Sim);
            prop_assert_eq!(r.ops.len(), q.ops.len());
            let peak = llmforge::model::ComputeClass::ALL
                .iter()
                .map(|c| sub.matrix_peak(*c).get())
                .fold(sub.vector_peak().get(), f64::max);
            let (rd, wr) = read_write_bandwidth(&sub);
            for (a, c) in r.ops.iter().zip(&q.ops) {
                prop_assert!(a.time.get() <= c.time.get() * (1.0 + 1e-9),
                    "{} {:?}: roofline {} > sim {}", c.label, c.phase, a.time.get(), c.time.get());
                let per_step = c.count as f64;
                let t = c.time.get();
                let mac_floor = c.flops.get() / (ec * peak);
                prop_assert!(t >= mac_floor * (1.0 - 1e-9), "{}: {t} < MAC floor {mac_floor}", c.label);
                let reads = (c.reads.weights + c.reads.kv_cache).get();
                let writes = c.writes.kv_cache.get();
                let dram_floor = (reads / (em * rd)).max(writes / (em * wr));
                prop_assert!(t >= dram_floor * (1.0 - 1e-9),
                    "{}: {t} < DRAM floor {dram_floor} ({per_step} steps)", c.label);
            }
            // GPU kernels run one at a time: the bound holds for the whole run too (the systolic
            // schedule overlaps units, see `roofline_bounds_the_simulator`)
            if matches!(sub.kind, Kind::Gpu(_)) {
                prop_assert!(r.summary.ttft_s <= q.summary.ttft_s * (1.0 + 1e-12));
                prop_assert!(r.summary.tpot_s <= q.summary.tpot_s * (1.0 + 1e-12));
            }
        }

        /// Issue 13: storing the weights in fewer bits never makes decode slower, on every
        /// substrate kind, in both engines, at any efficiencies (activations and KV cache in
        /// the substrate's natural format: fp16 on GPUs, int8 on the arrays and the ring).
        #[test]
        fn lower_bit_weights_never_make_decode_slower(
            m in arb_model(), s in arb_any_substrate(), e in arb_engine(),
            ec in 0.05f64..=1.0, em in 0.05f64..=1.0, p in 1u64..200, d in 1u64..5, b in 1u64..3,
        ) {
            let sub = with_efficiency(&sub(s), ec, em);
            let w = Workload::new(p, d, b).unwrap();
            let act = if matches!(sub.kind, Kind::Gpu(_)) { "fp16" } else { "int8" };
            // by bits per weight: int4 4, Q4_0 4.5, Q4_K_M 4.85, int8 8, Q8_0 8.5, fp16 16
            let mut formats = vec!["int4", "Q4_0", "Q4_K_M", "int8", "Q8_0"];
            if act == "fp16" {
                formats.push("fp16");
            }
            let mut last: Option<(&str, f64)> = None;
            for f in formats {
                let mut mm = m.clone();
                mm.precision = Precisions {
                    weights: f.parse().unwrap(),
                    activations: act.parse().unwrap(),
                    kv_cache: act.parse().unwrap(),
                };
                prop_assert!(sub.resolve(&mm.precision).is_ok(), "{f} on {s}");
                let t = sim::summary(&mm, &sub, w, e).tpot_s;
                if let Some((g, before)) = last {
                    prop_assert!(before <= t * (1.0 + 1e-9), "{g} TPOT {before} > {f} TPOT {t} on {s}");
                }
                last = Some((f, t));
            }
        }
    }
}

mod cli {
    use std::path::PathBuf;
    use std::process::Command;

    fn llmforge(args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_llmforge"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `llmforge sim ... | head -1`: the reader goes away after one line; the tool must end
    /// without a panic message (it dies of SIGPIPE, like any Unix filter).
    #[cfg(unix)]
    #[test]
    fn a_closed_pipe_ends_the_tool_quietly() {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_llmforge"))
            // ~800 kB of JSON: far more than a pipe buffers.
            .args([
                "sim",
                "--model",
                "smollm2-135m",
                "--substrate",
                "a100-sxm4-40gb",
                "--gen",
                "4",
            ])
            .args(["--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader (and the pipe's only read end) is dropped here.
        let out = child.wait_with_output().unwrap();
        assert!(first.starts_with('{'), "{first}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_ne!(out.status.code(), Some(101), "{err}");
    }

    /// Issue 18: a model that does not fit memory still gets its rates, with a warning on
    /// stderr and in the JSON; a model that fits gets neither.
    #[test]
    fn does_not_fit_memory_is_a_warning() {
        let args = [
            "sim",
            "--model",
            "qwen2-72b",
            "--substrate",
            "jetson-orin-nano-super",
            "--gen",
            "4",
        ];
        let (ok, out, err) = llmforge(&args);
        assert!(ok, "{err}");
        assert!(
            err.contains("warning: qwen2-72b does not fit jetson-orin-nano-super's memory"),
            "{err}"
        );
        assert!(out.contains("fits memory") && out.contains("NO"), "{out}");
        let (ok, out, _) = llmforge(&[&args[..], &["--format", "json"]].concat());
        assert!(ok);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["fits_memory"], false);
        assert!(
            v["warnings"][0].as_str().unwrap().contains("does not fit"),
            "{}",
            v["warnings"]
        );
        assert!(v["tpot_s"].as_f64().unwrap() > 0.0, "the rate is still reported");
        let (ok, out, err) = llmforge(&[
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "gemmini",
            "--precision",
            "int8",
            "--format",
            "json",
        ]);
        assert!(ok && !err.contains("warning"), "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["warnings"], serde_json::json!([]));
    }

    /// The table's headers line up with their numbers, and every column names its unit.
    #[test]
    fn sim_table_columns_line_up() {
        let (ok, out, err) = llmforge(&[
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "gemmini",
            "--precision",
            "int8",
        ]);
        assert!(ok, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        let head = lines
            .iter()
            .position(|l| l.trim_start().starts_with("phase "))
            .unwrap();
        let end = |l: &str, w: &str| l.find(w).map(|k| k + w.len());
        // right-aligned: "energy" ends where each row's energy cell ends
        let col = end(lines[head], "energy").unwrap();
        for row in &lines[head + 2..] {
            if row.trim().is_empty() {
                break;
            }
            assert_eq!(row.trim_end().chars().count(), col, "{row}");
            assert!(row.ends_with('J'), "{row}");
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llmforge-sim-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn sim_json_carries_the_summary_and_per_op_rows() {
        let csv = tmp("ops.csv");
        let chrome = tmp("trace.json");
        let (ok, out, err) = llmforge(&[
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "gemmini",
            "--precision",
            "int8",
            "--prompt",
            "64",
            "--gen",
            "8",
            "--format",
            "json",
            "--trace",
            csv.to_str().unwrap(),
            "--chrome-trace",
            chrome.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        for key in [
            "ttft_s",
            "tpot_s",
            "tokens_per_s",
            "energy_per_token_j",
            "energy_per_processed_token_j",
            "prefill_energy_j",
            "decode_energy_j",
            "total_energy_j",
            "fits_memory",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        // the precision rules that applied (issue 13)
        assert_eq!(v["precision"]["weights"], "int8");
        assert_eq!(v["precision"]["weight_gemm"], "int8");
        let ops = v["ops"].as_array().unwrap();
        assert!(ops.len() > 400);
        assert!(
            ops.iter()
                .all(|o| ["compute", "memory", "overhead"].contains(&o["bound"].as_str().unwrap()))
        );
        // CSV: header + one row per op
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text.lines().count(), ops.len() + 1);
        assert!(text.starts_with("phase,label,layer"));
        // Chrome trace: valid JSON, complete events with microsecond times
        let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
        let events = t["traceEvents"].as_array().unwrap();
        let x: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert!(x.len() > 9 * 400);
        for e in &x {
            assert!(e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() >= 0.0);
            assert!(e["pid"].as_u64().is_some() && e["tid"].as_u64().is_some());
        }
        let end = x
            .iter()
            .map(|e| e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap())
            .fold(0.0, f64::max);
        let total_us = (v["ttft_s"].as_f64().unwrap() + 8.0 * v["tpot_s"].as_f64().unwrap()) * 1e6;
        assert!((end - total_us).abs() < 1e-3 * total_us, "{end} vs {total_us}");
        // the same run again gives byte-identical outputs
        let (_, out2, _) = llmforge(&[
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "gemmini",
            "--precision",
            "int8",
            "--prompt",
            "64",
            "--gen",
            "8",
            "--format",
            "json",
        ]);
        assert_eq!(out, out2);
    }

    #[test]
    fn sim_table_and_errors() {
        let (ok, out, _) = llmforge(&[
            "sim",
            "--model",
            "pythia-160m",
            "--substrate",
            "a100-sxm4-40gb",
            "--engine",
            "roofline",
            "--set",
            "memory.bandwidth=3 TB/s",
        ]);
        assert!(ok);
        assert!(out.contains("TTFT") && out.contains("roofline engine") && out.contains("fused_attention"));
        let (ok, _, err) = llmforge(&[
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "gemmini",
            "--gen",
            "0",
        ]);
        assert!(!ok && err.contains("--gen"), "{err}");
        let (ok, _, err) = llmforge(&["sim", "--model", "smollm2-135m", "--substrate", "nope"]);
        assert!(!ok && err.contains("nope"), "{err}");
        let (ok, _, err) = llmforge(&[
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "gemmini",
            "--set",
            "dram.read=8",
        ]);
        assert!(!ok && err.contains("dram.read"), "{err}");
        let (ok, _, err) = llmforge(&[
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "gemmini",
            "--precision",
            "int7",
        ]);
        assert!(!ok && err.contains("int7"), "{err}");
        // a format the array lacks: refused, naming the substrate and what it runs
        let (ok, _, err) = llmforge(&["sim", "--model", "smollm2-135m", "--substrate", "gemmini"]);
        assert!(
            !ok && err.contains("gemmini") && err.contains("bf16") && err.contains("int8"),
            "{err}"
        );
        let (ok, _, err) = llmforge(&["roofline", "--model", "smollm2-135m", "--substrate", "eyeriss"]);
        assert!(
            !ok && err.contains("eyeriss") && err.contains("--precision int8"),
            "{err}"
        );
        // the table says which rule applied
        let (ok, out, err) = llmforge(&[
            "sim",
            "--model",
            "llama-2-7b",
            "--substrate",
            "apple-m1",
            "--precision",
            "Q4_0",
            "--gen",
            "2",
            "--prompt",
            "8",
        ]);
        assert!(ok, "{err}");
        assert!(
            out.contains("Q4_0 (4.5 b/w) dequantised to int8")
                || out.contains("Q4_0 (4.5 b/w) dequantised to fp16"),
            "{out}"
        );
    }

    #[test]
    fn gemm_reports_cycles_and_energy() {
        let (ok, out, err) = llmforge(&[
            "gemm",
            "--substrate",
            "scalesim-32x32",
            "--m",
            "512",
            "--n",
            "512",
            "--k",
            "512",
            "--format",
            "json",
        ]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        for key in ["cycles", "compute_cycles", "stall_cycles", "utilization"] {
            assert!(v["detail"][key].as_f64().is_some(), "{key}");
        }
        for key in ["time_s", "dram_bytes", "onchip_bytes", "energy_j"] {
            assert!(v[key].as_f64().is_some(), "{key}");
        }
        let d = &v["detail"];
        assert!(d["cycles"].as_f64().unwrap() >= d["compute_cycles"].as_f64().unwrap());
        let (ok, out, _) = llmforge(&[
            "gemm",
            "--substrate",
            "gemmini",
            "--m",
            "64",
            "--n",
            "64",
            "--k",
            "64",
            "--dataflow",
            "os",
        ]);
        assert!(ok && out.contains("os"), "{out}");
        // A GPU: the tile, split and waves the kernel model chose; the roofline below it.
        let gpu = |engine: &str| {
            let (ok, out, err) = llmforge(&[
                "gemm",
                "--substrate",
                "a100-sxm4-40gb",
                "--m",
                "4096",
                "--n",
                "4096",
                "--k",
                "4096",
                "--precision",
                "bf16",
                "--engine",
                engine,
                "--format",
                "json",
            ]);
            assert!(ok, "{err}");
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        };
        let (sim, roof) = (gpu("sim"), gpu("roofline"));
        for key in ["time_s", "flops_per_s", "dram_bytes", "onchip_bytes", "energy_j"] {
            assert!(sim[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {sim}");
        }
        assert_eq!(sim["llmforge_version"], llmforge::provenance::VERSION);
        assert_eq!(
            (sim["engine"].as_str(), sim["precision"].as_str()),
            (Some("sim"), Some("bf16"))
        );
        assert!(sim["detail"]["tile"].is_string() && sim["detail"]["waves"].as_u64() >= Some(1));
        assert!(roof["time_s"].as_f64() <= sim["time_s"].as_f64());
        let (ok, _, err) = llmforge(&[
            "gemm",
            "--substrate",
            "a100-sxm4-40gb",
            "--m",
            "8",
            "--n",
            "8",
            "--k",
            "8",
            "--dataflow",
            "os",
        ]);
        assert!(!ok && err.contains("systolic"), "{err}");
        let (ok, _, err) = llmforge(&["gemm", "--substrate", "l4", "--m", "0", "--n", "8", "--k", "8"]);
        assert!(!ok && err.contains("--m"), "{err}");
    }

    #[test]
    fn attention_prices_one_fused_kernel_on_gpus_and_three_elsewhere() {
        let run = |sub: &str, extra: &[&str]| {
            let q = if extra.contains(&"--q-len") {
                &[][..]
            } else {
                &["--q-len", "1"][..]
            };
            let mut args = vec![
                "attention",
                "--substrate",
                sub,
                "--batch",
                "2",
                "--heads",
                "32",
                "--kv-heads",
                "8",
                "--kv-len",
                "4096",
                "--head-dim",
                "128",
                "--format",
                "json",
            ];
            args.extend_from_slice(q);
            args.extend_from_slice(extra);
            let (ok, out, err) = llmforge(&args);
            assert!(ok, "{err}");
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        };
        let d = run("h100-sxm", &[]);
        assert_eq!(d["bound"], "memory", "{d}");
        assert!(d["detail"]["split_kv"].as_u64() >= Some(1) && d["detail"]["block"].is_string());
        let r = run("h100-sxm", &["--engine", "roofline"]);
        assert!(r["time_s"].as_f64() <= d["time_s"].as_f64());
        let a = run("gemmini", &["--precision", "int8"]);
        assert!(a["time_s"].as_f64().is_some_and(|t| t > 0.0));
        // Causal prefill does about half the work of the full rectangle.
        let full = run("h100-sxm", &["--q-len", "4096"]);
        let causal = run("h100-sxm", &["--q-len", "4096", "--causal"]);
        let ratio = causal["flops"].as_f64().unwrap() / full["flops"].as_f64().unwrap();
        assert!((ratio - 0.5).abs() < 0.01, "{ratio}");
        assert!(causal["time_s"].as_f64() < full["time_s"].as_f64());
        let (ok, _, err) = llmforge(&[
            "attention",
            "--substrate",
            "h100-sxm",
            "--heads",
            "30",
            "--kv-heads",
            "8",
            "--q-len",
            "1",
            "--kv-len",
            "16",
            "--head-dim",
            "64",
        ]);
        assert!(!ok && err.contains("multiple"), "{err}");
    }

    #[test]
    fn roofline_plot_is_an_svg_with_every_placeable_op() {
        let svg = tmp("roofline.svg");
        let (ok, out, err) = llmforge(&[
            "roofline",
            "--model",
            "smollm2-135m",
            "--substrate",
            "jetson-agx-orin-64gb",
            "--prompt",
            "32",
            "--gen",
            "4",
            "--plot",
            svg.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        assert!(out.contains("ridge"));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
        assert!(
            text.matches("<title>").count() > 400,
            "one marker per op with FLOPs"
        );
        // fp16 and bf16 share a peak on Orin: one ceiling, both named
        assert!(text.contains("matrix bf16 = fp16") && text.contains("matrix int8"));
    }
}

/// The GPU kernel model one kernel at a time: random GEMM and attention shapes, random
/// precisions, every shipped GPU, any efficiency and kernel-model settings.
mod gpu_kernels {
    use super::*;
    use llmforge::graph::{AttentionShape, KernelFormats, Op, attention_ops, gemm_op};
    use llmforge::numeric::ComputeClass;
    use llmforge::sim::cost::{Mapper, Model as CostModel, bind};
    use llmforge::substrate::{Efficiency, Kind};
    use llmforge::units::{Bytes, BytesPerCycle, Cycles, Seconds};
    use proptest::prelude::*;

    fn gpus() -> Vec<&'static str> {
        substrate::names()
            .filter(|n| matches!(sub(n).kind, Kind::Gpu(_)))
            .collect()
    }

    fn precisions() -> Vec<Precision> {
        vec![
            Precision::F32,
            Precision::F16,
            Precision::Bf16,
            Precision::Fp8,
            Precision::Int8,
            Precision::Int4,
            "Q4_K_M".parse().unwrap(),
        ]
    }

    /// Any efficiency and kernel-model settings.
    #[derive(Clone, Debug)]
    struct Settings {
        compute: f64,
        memory: f64,
        quantised: f64,
        overhead_us: f64,
        score_bytes: f64,
        tile_cycles: f64,
        step_cycles: f64,
        operand: f64,
        reuse: f64,
        overlap: f64,
        sm_bandwidth: f64,
    }

    fn arb_settings() -> impl Strategy<Value = Settings> {
        (
            (
                0.02f64..=1.0,
                0.02f64..=1.0,
                0.02f64..=1.0,
                0.0f64..50.0,
                prop::sample::select(vec![0.0, 4.0, 16.0]),
            ),
            (
                0.0f64..20000.0,
                0.0f64..2000.0,
                8.0f64..2048.0,
                0.001f64..=1.0,
                1.0f64..200.0,
                prop::sample::select(vec![2.0, 10.0, 64.0, 1024.0]),
            ),
        )
            .prop_map(
                |(
                    (compute, memory, quantised, overhead_us, score_bytes),
                    (tile_cycles, step_cycles, operand, reuse, overlap, sm_bandwidth),
                )| Settings {
                    compute,
                    memory,
                    quantised,
                    overhead_us,
                    score_bytes,
                    tile_cycles,
                    step_cycles,
                    operand,
                    reuse,
                    overlap,
                    sm_bandwidth,
                },
            )
    }

    fn with(s: &Substrate, x: &Settings) -> Substrate {
        let mut s = s.clone();
        s.efficiency = Efficiency {
            compute: x.compute,
            memory: x.memory,
            kernel_overhead: Seconds::new(x.overhead_us * 1e-6),
            token_overhead: Seconds::ZERO,
            quantised_compute: x.quantised,
            score_bytes: Bytes::new(x.score_bytes),
        };
        if let Kind::Gpu(g) = &mut s.kind {
            g.kernel.tile_cycles = Cycles::new(x.tile_cycles);
            g.kernel.step_cycles = Cycles::new(x.step_cycles);
            g.kernel.operand_bandwidth = BytesPerCycle::new(x.operand);
            g.kernel.l2_reuse = x.reuse;
            g.kernel.overlap = x.overlap;
            g.kernel.sm_bandwidth = BytesPerCycle::new(x.sm_bandwidth);
        }
        s
    }

    fn with_l2(s: &Substrate, f: f64) -> Substrate {
        let mut s = s.clone();
        if let Kind::Gpu(g) = &mut s.kind {
            g.l2_size = g.l2_size * f;
        }
        s
    }

    fn dim() -> impl Strategy<Value = u64> {
        (0u32..14, 0u64..100).prop_map(|(e, j)| ((1u64 << e) + j * (1u64 << e) / 100).max(1))
    }

    /// Sim time, roofline time, and the floors at full peak and bandwidth without overheads.
    fn times(s: &Substrate, p: (Precision, Precision), ops: &[Op], hpg: u64) -> (f64, f64, f64, f64) {
        let (w, a) = p;
        let mapper = Mapper::new(
            s,
            &Precisions {
                weights: w,
                activations: a,
                kv_cache: w,
            },
        );
        // the ops run at the native arithmetic the substrate resolves their formats to
        let ops: Vec<Op> = ops
            .iter()
            .map(|op| {
                let mut op = op.clone();
                bind(&mut op, &mapper.precision);
                op
            })
            .collect();
        let refs: Vec<&Op> = ops.iter().collect();
        let sim = mapper.cost(CostModel::Sim, &refs, hpg).time().get();
        let roof = mapper.cost(CostModel::Roofline, &refs, hpg).time().get();
        let mut ideal = s.clone();
        ideal.efficiency = Efficiency::EXACT;
        let im = Mapper::new(
            &ideal,
            &Precisions {
                weights: w,
                activations: a,
                kv_cache: w,
            },
        );
        let floor = im.roofline(&refs);
        (sim, roof, floor.compute.get(), floor.memory.get())
    }

    fn gemm(m: u64, n: u64, k: u64, b: u64, w: Precision, a: Precision) -> Vec<Op> {
        let f = KernelFormats {
            input: a.bytes(),
            stored: w.bytes(),
            output: a.bytes(),
            compute: ComputeClass::F16, // bound to the substrate's in `times`
        };
        vec![gemm_op(m, n, k, b, f)]
    }

    /// A GEMM standing for several weight matrices (a mixture's experts) runs as a grouped GEMM
    /// of one member per matrix; a bias is not a matrix, however small K is.
    #[test]
    fn the_mappers_group_a_gemm_by_its_weight_matrices() {
        let s = sub("h100-sxm");
        let p = Precisions {
            weights: Precision::F16,
            activations: Precision::F16,
            kv_cache: Precision::F16,
        };
        let mapper = Mapper::new(&s, &p);
        let f = KernelFormats {
            input: 2.0,
            stored: 2.0,
            output: 2.0,
            compute: ComputeClass::F16,
        };
        let with_weights = |m: u64, n: u64, k: u64, matrices: f64, bias: bool| {
            let mut op = gemm_op(m, n, k, 1, f);
            op.reads.weights =
                Bytes::new(2.0 * (matrices * (k * n) as f64 + if bias { n as f64 } else { 0.0 }));
            op
        };
        // one matrix, with or without a bias, even at K = 16
        assert_eq!(
            mapper.weight_groups(&with_weights(64, 4096, 4096, 1.0, false)),
            None
        );
        assert_eq!(mapper.weight_groups(&with_weights(64, 4096, 16, 1.0, true)), None);
        // routed experts: 1,024 routed rows over 7.9 touched experts -> 8 members of 128 rows
        assert_eq!(
            mapper.weight_groups(&with_weights(1024, 14336, 4096, 7.9, false)),
            Some((8, 128))
        );
        // a fractional expectation rounds up: 6 rows over 4.6 experts -> 5 members of 2 rows
        assert_eq!(
            mapper.weight_groups(&with_weights(6, 1024, 2048, 4.6, false)),
            Some((5, 2))
        );
        // the largest shapes the limits allow do not overflow: 2^26 tokens x 8 active experts
        // of an FFN 2^20 wide at d_model 2^17
        let huge = with_weights(1 << 29, 1 << 20, 1 << 17, 8.0, false);
        assert_eq!(mapper.weight_groups(&huge), Some((8, 1 << 26)));
        // the grouped op keeps the FLOPs and bytes, as a batch of its members
        let op = with_weights(1024, 14336, 4096, 7.9, false);
        let g = mapper.grouped(&op).unwrap();
        assert_eq!((g.flops, g.reads, g.writes), (op.flops, op.reads, op.writes));
        assert!(matches!(
            g.kind,
            llmforge::graph::OpKind::Gemm {
                m: 128,
                n: 14336,
                k: 4096,
                batch: 8
            }
        ));
    }

    fn attention(s: AttentionShape, p: Precision) -> Vec<Op> {
        let f = KernelFormats {
            input: p.bytes(),
            stored: p.bytes(),
            output: p.bytes(),
            compute: ComputeClass::F16, // bound to the substrate's in `times`
        };
        attention_ops(s, f).to_vec()
    }

    fn arb_attention() -> impl Strategy<Value = AttentionShape> {
        (
            1u64..4,
            1u64..8,
            1u64..8,
            1u64..1500,
            0u64..3000,
            prop::sample::select(vec![32u64, 64, 128]),
            any::<bool>(),
        )
            .prop_map(|(batch, kv, hpg, q, extra, d, causal)| AttentionShape {
                batch,
                heads: kv * hpg,
                kv_heads: kv,
                q_len: q,
                kv_len: q + extra,
                d_qk: d,
                d_v: d,
                causal,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn gemms_are_bounded_below_by_the_roofline_and_the_floors(
            g in prop::sample::select(gpus()), x in arb_settings(),
            (m, n, k) in (dim(), dim(), dim()), b in 1u64..5,
            w in prop::sample::select(precisions()), a in prop::sample::select(vec![Precision::F16, Precision::Bf16, Precision::F32, Precision::Int8]),
        ) {
            let s = with(&sub(g), &x);
            let (sim, roof, mac, dram) = times(&s, (w, a), &gemm(m, n, k, b, w, a), 1);
            prop_assert!(roof <= sim * (1.0 + 1e-9), "{g} {m}x{n}x{k}x{b}: roofline {roof} > sim {sim}");
            prop_assert!(sim >= mac * (1.0 - 1e-9) && sim >= dram * (1.0 - 1e-9), "{sim} vs floors {mac} {dram}");
        }

        #[test]
        fn attention_is_bounded_below_by_the_roofline_and_the_floors(
            g in prop::sample::select(gpus()), x in arb_settings(), shape in arb_attention(),
            p in prop::sample::select(vec![Precision::F16, Precision::Fp8, Precision::F32]),
        ) {
            let s = with(&sub(g), &x);
            let hpg = shape.heads / shape.kv_heads;
            let (sim, roof, mac, dram) = times(&s, (p, p), &attention(shape, p), hpg);
            prop_assert!(roof <= sim * (1.0 + 1e-9), "{g} {shape:?}: roofline {roof} > sim {sim}");
            prop_assert!(sim >= mac * (1.0 - 1e-9) && sim >= dram * (1.0 - 1e-9), "{sim} vs floors {mac} {dram}");
        }

        #[test]
        fn more_l2_never_makes_a_kernel_slower(
            g in prop::sample::select(gpus()), x in arb_settings(), f in 1.0f64..16.0,
            (m, n, k) in (dim(), dim(), dim()), b in 1u64..5, shape in arb_attention(),
            w in prop::sample::select(precisions()),
        ) {
            let base = with(&sub(g), &x);
            let big = with_l2(&base, f);
            let a = Precision::F16;
            let ops = gemm(m, n, k, b, w, a);
            let (t0, ..) = times(&base, (w, a), &ops, 1);
            let (t1, ..) = times(&big, (w, a), &ops, 1);
            prop_assert!(t1 <= t0 * (1.0 + 1e-12), "{g} gemm {m}x{n}x{k}x{b}: {t0} -> {t1}");
            let hpg = shape.heads / shape.kv_heads;
            let ops = attention(shape, a);
            let (t0, ..) = times(&base, (a, a), &ops, hpg);
            let (t1, ..) = times(&big, (a, a), &ops, hpg);
            prop_assert!(t1 <= t0 * (1.0 + 1e-12), "{g} attention {shape:?}: {t0} -> {t1}");
        }
    }

    /// The case of issue 13: Llama-2-7B fp16, prompt 512, batch 8 on an NVIDIA L4 (48 MiB of
    /// L2). The simulator's TTFT was 4.5x the roofline's (operands re-read from DRAM once per
    /// tile row as soon as they did not fit half the L2); it must stay within 25%.
    #[test]
    fn llama_2_7b_ttft_on_an_l4_stays_near_the_roofline() {
        let mut m = model::preset("llama-2-7b").unwrap();
        m.precision = Precisions {
            weights: Precision::F16,
            activations: Precision::F16,
            kv_cache: Precision::F16,
        };
        let s = sub("l4");
        let w = Workload::new(512, 1, 8).unwrap();
        let roof = sim::summary(&m, &s, w, Engine::Roofline).ttft_s;
        let q = sim::summary(&m, &s, w, Engine::Sim).ttft_s;
        assert!(q >= roof && q <= 1.25 * roof, "sim {q} vs roofline {roof}");
        // The FFN gate's DRAM traffic: within 3x of its compulsory bytes (was 65x).
        let r = sim::run(&m, &s, w, Engine::Sim);
        let gate = r.ops.iter().find(|o| o.label == "L0.ffn_gate").unwrap();
        let compulsory = (gate.reads.total() + gate.writes.total()).get();
        assert!(
            gate.dram_bytes.get() <= 3.0 * compulsory,
            "{} vs {compulsory}",
            gate.dram_bytes.get()
        );
    }
}
