//! Issue 20: the layer cache prices each layer template once across candidates; figures do
//! not depend on what it holds, on its capacity or on the thread count.

use llmforge::model;
use llmforge::quality::ChinchillaPrior;
use llmforge::search::arch::ArchProblem;
use llmforge::search::nsga2::{Nsga2, Settings, Truncation};
use llmforge::sim::{self, Engine, LayerCache, RunSummary, Workload};
use llmforge::substrate::{self, Substrate};
use llmforge::sweep::budget::Metric;

fn problem(space: &str, sub: &str, cache: impl Fn(&Substrate, Workload) -> LayerCache) -> ArchProblem {
    let substrate = substrate::load(sub, &[]).unwrap();
    let workload = Workload::new(64, 48, 1).unwrap();
    ArchProblem {
        space: llmforge::search::space::load(space).unwrap(),
        layer_cache: cache(&substrate, workload),
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

/// Every evaluated candidate's objectives, as bits, in archive order.
fn search(p: &ArchProblem, threads: usize) -> Vec<Vec<u64>> {
    let settings = Settings {
        population: 12,
        offspring: 24,
        generations: 4,
        crossover_prob: 0.6,
        mutation_prob: 0.3,
        seed: 7,
        eliminate_duplicates: true,
        truncation: Truncation::IterativeCrowding,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut e = Nsga2::new(p, settings).unwrap();
        e.run(|_, _| {}).unwrap();
        e.archive()
            .iter()
            .map(|i| i.evaluation.objectives.iter().map(|x| x.to_bits()).collect())
            .collect()
    })
}

#[test]
fn searches_are_bit_identical_with_and_without_the_cache_at_one_and_two_threads() {
    for (space, sub) in [
        ("smollm2-135m-seeded", "flat-edge"),
        ("llmforge-200m", "jetson-orin-nano-super"),
    ] {
        let cached = problem(space, sub, ArchProblem::cache_for);
        let bare = problem(space, sub, LayerCache::disabled);
        // a cache so small that shards keep emptying
        let tiny = problem(space, sub, |s, w| LayerCache::new(s, w, 64 << 10));
        let reference = search(&bare, 1);
        assert!(reference.len() > 50, "{space} on {sub}");
        assert_eq!(
            search(&cached, 1),
            reference,
            "{space} on {sub}: cached, 1 thread"
        );
        assert_eq!(
            search(&cached, 2),
            reference,
            "{space} on {sub}: cached again, 2 threads"
        );
        assert_eq!(
            search(&bare, 2),
            reference,
            "{space} on {sub}: no cache, 2 threads"
        );
        assert_eq!(
            search(&tiny, 2),
            reference,
            "{space} on {sub}: 64 KiB cache, 2 threads"
        );
        let s = cached.layer_cache.stats();
        assert!(s.hits > 10 * s.misses, "{space} on {sub}: {s:?}");
        assert_eq!(bare.layer_cache.stats().hits, 0);
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn assert_close(a: &RunSummary, b: &RunSummary, what: &str) {
    for (name, x, y) in [
        ("ttft", a.ttft_s, b.ttft_s),
        ("tpot", a.tpot_s, b.tpot_s),
        ("prefill energy", a.prefill_energy_j, b.prefill_energy_j),
        ("decode energy", a.decode_energy_j, b.decode_energy_j),
        (
            "decode dram",
            a.decode.dram_bytes.get(),
            b.decode.dram_bytes.get(),
        ),
        ("decode flops", a.decode.flops.get(), b.decode.flops.get()),
    ] {
        assert!(close(x, y), "{what}: {name} {x} (cached) vs {y} (engine)");
    }
}

/// The cached path is the engine's schedule, layer-major: equal to `sim::summary` up to the
/// rounding of relative coordinates, on every kind of substrate it serves.
#[test]
fn the_cached_summary_is_the_engines_summary() {
    let w = Workload::new(96, 40, 2).unwrap();
    for sub in [
        "flat-edge",
        "gemmini",
        "eyeriss",
        "jetson-orin-nano-super",
        "a100-sxm4-80gb",
        "apple-m1",
    ] {
        let s = substrate::load(sub, &[]).unwrap();
        let cache = LayerCache::new(&s, w, 16 << 20);
        for name in ["smollm2-135m", "llmforge-acc-123m", "qwen1.5-moe-a2.7b"] {
            let mut m = model::preset(name).unwrap();
            if s.resolve(&m.precision).is_err() {
                m.precision = model::Precisions::all(model::Precision::Int8);
            }
            let engine = sim::summary(&m, &s, w, Engine::Sim);
            // twice: the second from a warm cache
            for _ in 0..2 {
                let cached = cache.summary(&m, &s, w, Engine::Sim);
                assert_close(&cached, &engine, &format!("{name} on {sub}"));
            }
        }
    }
}

/// A cache made for one substrate or workload never serves another: it falls back to the
/// engine.
#[test]
fn a_cache_serves_only_its_own_substrate_and_workload() {
    let w = Workload::new(32, 8, 1).unwrap();
    let a = substrate::load("jetson-orin-nano-super", &[]).unwrap();
    let o = substrate::parse_overrides(&["memory.bandwidth=51 GB/s".into()]).unwrap();
    let b = substrate::load("jetson-orin-nano-super", &o).unwrap();
    let m = model::preset("smollm2-135m").unwrap();
    let cache = LayerCache::new(&a, w, 16 << 20);
    let warm = cache.summary(&m, &a, w, Engine::Sim);
    let other = cache.summary(&m, &b, w, Engine::Sim);
    assert_eq!(other, sim::summary(&m, &b, w, Engine::Sim));
    assert!(other.tpot_s > warm.tpot_s);
    let w2 = Workload::new(32, 9, 1).unwrap();
    assert_eq!(
        cache.summary(&m, &a, w2, Engine::Sim),
        sim::summary(&m, &a, w2, Engine::Sim)
    );
    assert_eq!(
        cache.summary(&m, &a, w, Engine::Roofline),
        sim::summary(&m, &a, w, Engine::Roofline)
    );
}

/// On a ring substrate the cache keeps the design space and each chosen point's substrate;
/// the co-search per model is the ring's own, so the summaries are equal exactly.
#[test]
fn ring_summaries_through_the_cache_are_the_engines() {
    let w = Workload::new(128, 64, 1).unwrap();
    for sub in ["ring-edge-cosearch", "ring-edge", "ring-edge-paper"] {
        let s = substrate::load(sub, &[]).unwrap();
        let cache = LayerCache::new(&s, w, 16 << 20);
        for name in [
            "smollm2-135m",
            "llmforge-acc-123m",
            "llmforge-fast-365m",
            "llama-3-8b",
        ] {
            let m = model::preset(name).unwrap();
            for engine in [Engine::Sim, Engine::Roofline] {
                let direct = sim::summary(&m, &s, w, engine);
                for _ in 0..2 {
                    assert_eq!(cache.summary(&m, &s, w, engine), direct, "{name} on {sub}");
                }
            }
        }
    }
}
