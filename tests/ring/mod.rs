//! Integration tests of the multi-chip ring model (`llmforge::sim::ring`).

mod layerlist;

use layerlist::fixture;
use llmforge::sim::ring::*;

const MODELS: [&str; 5] = [
    "SmolLM2-360M",
    "Qwen-0.5B",
    "LLMForge-Acc-347M",
    "LLMForge-Eco-294M",
    "LLMForge-Fast-365M",
];

#[test]
fn print_table() {
    let spec = RingSpec::llmforge_reference();
    let grid = RingGrid::llmforge_ring();
    for name in MODELS {
        let m = fixture(name);
        let rm = RingModel::new(&m, &RingWorkload::llmforge_paper(), &RingOptions::paper()).unwrap();
        let r = co_search(&spec, &rm, &grid, Objective::Energy).unwrap();
        let b = &r.best;
        println!(
            "{name:20} W {:.1} MB ttft {:.3} ms tpot {:.3} ms e {:.1} uJ chips {} area {:.1} mm2 pe {} wmem {} cores {} kv {} feas {}",
            rm.total_weight_bytes() / 1e6,
            b.ttft.as_ms(),
            b.tpot.as_ms(),
            b.energy_per_token_paper.as_uj(),
            b.n_chips(),
            b.total_area.as_mm2(),
            b.design.macs_per_vac,
            b.design.wmem_per_core,
            b.packing.chip.n_cores,
            b.packing.chip.kv_per_core,
            r.feasible
        );
        for o in [Objective::Tpot, Objective::Ttft] {
            let r = co_search(&spec, &rm, &grid, o).unwrap();
            let b = &r.best;
            println!(
                "   {o:?}: ttft {:.3} ms tpot {:.4} ms e {:.1} uJ chips {} area {:.1} pe {} wmem {} cores {}",
                b.ttft.as_ms(),
                b.tpot.as_ms(),
                b.energy_per_token_paper.as_uj(),
                b.n_chips(),
                b.total_area.as_mm2(),
                b.design.macs_per_vac,
                b.design.wmem_per_core,
                b.packing.chip.n_cores
            );
        }
        if name == "SmolLM2-360M" {
            for p in &r.points {
                println!("  {:?}", p);
            }
        }
    }
}
