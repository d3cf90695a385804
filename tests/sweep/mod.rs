//! The co-design sweep: the streamed frontier equals the brute-force Pareto set of every
//! candidate; budgets and the region map agree with the rows; results do not depend on the
//! chunk size.

use llmforge::quality::ChinchillaPrior;
use llmforge::sim::{Engine, Workload};
use llmforge::sweep::budget::{Budget, Metric};
use llmforge::sweep::grid;
use llmforge::sweep::run::{Axis, Row, SweepSpec, sweep};
use std::sync::atomic::AtomicBool;

fn run(chunk: u64) -> (Vec<Row>, llmforge::sweep::run::Outcome) {
    run_with(
        chunk,
        &ChinchillaPrior {
            tokens_per_param: 20.0,
        },
    )
}

fn run_with(
    chunk: u64,
    loss: &dyn llmforge::quality::LossModel,
) -> (Vec<Row>, llmforge::sweep::run::Outcome) {
    let g = grid::load("tiny").unwrap();
    let sub = llmforge::substrate::load("jetson-agx-orin-64gb", &[]).unwrap();
    let budgets = vec![
        Budget::parse("tpot<=1ms").unwrap(),
        Budget::parse("weights+kv<=20MB").unwrap(),
    ];
    let spec = SweepSpec {
        grid: &g,
        substrate: &sub,
        workload: Workload::new(128, 16, 1).unwrap(),
        engine: Engine::Roofline,
        both_engines: false,
        loss,
        budgets: &budgets,
        x: Metric::Tpot,
        region: (Axis::Depth, Axis::Width),
    };
    let mut rows = Vec::new();
    let out = sweep(&spec, 0..g.len(), chunk, &AtomicBool::new(false), |r, _| {
        rows.extend_from_slice(r)
    });
    (rows, out)
}

#[test]
fn frontier_equals_brute_force_and_is_chunk_independent() {
    let (rows, out) = run(7);
    assert_eq!(out.evaluated as usize, rows.len());
    assert_eq!(out.evaluated + out.skipped, 128);
    // 2 depths x 2 widths x 1 head dim x 2 KV x 2 ratios x (dense + 4 experts x {1, 2} active)
    // x 2 precisions = 96 valid points; dense with 2 active experts is skipped (32).
    assert_eq!(rows.len(), 96);
    let mut brute: Vec<u64> = rows
        .iter()
        .filter(|r| {
            !rows.iter().any(|q| {
                let (qx, qy, rx, ry) = (q.metrics.tpot, q.metrics.loss, r.metrics.tpot, r.metrics.loss);
                qx <= rx && qy <= ry && (qx < rx || qy < ry || q.point.index < r.point.index)
            })
        })
        .map(|r| r.point.index)
        .collect();
    brute.sort();
    let mut got: Vec<u64> = out.frontier.points().map(|p| p.id).collect();
    got.sort();
    assert_eq!(got, brute);
    // hand check: under the Chinchilla prior loss falls with active parameters, so the
    // frontier's lowest-loss end is the candidate with the most active parameters
    let most = rows.iter().map(|r| r.active_params).max().unwrap();
    let last = out.frontier.points().last().unwrap();
    assert_eq!(
        rows.iter()
            .find(|r| r.point.index == last.id)
            .unwrap()
            .active_params,
        most
    );
    let (_, again) = run(1000);
    let a: Vec<(u64, f64)> = out.frontier.points().map(|p| (p.id, p.y)).collect();
    let b: Vec<(u64, f64)> = again.frontier.points().map(|p| (p.id, p.y)).collect();
    assert_eq!(a, b);
}

#[test]
fn budgets_and_region_agree_with_rows() {
    let (rows, out) = run(16);
    let feasible: Vec<&Row> = rows
        .iter()
        .filter(|r| r.metrics.tpot <= 1e-3 && r.metrics.weights + r.metrics.kv <= 20e6)
        .collect();
    assert_eq!(out.feasible as usize, feasible.len());
    let best = feasible.iter().map(|r| r.metrics.loss).fold(f64::MAX, f64::min);
    if let Some(b) = &out.best_overall {
        assert_eq!(b.row.metrics.loss, best);
    } else {
        assert!(feasible.is_empty());
    }
    let cells: u64 = out.region.values().map(|c| c.candidates).sum();
    assert_eq!(cells, out.evaluated);
    assert_eq!(out.region.len(), 4);
}

#[test]
fn moe_and_precision_change_bytes_but_capacity_counts_all_experts() {
    let g = grid::load("tiny").unwrap();
    let (rows, _) = run(64);
    let find = |experts: u64, active: u64, w: &str| {
        rows.iter()
            .find(|r| {
                r.point.experts == experts
                    && r.point.active_experts == active
                    && r.point.weights.to_string() == w
                    && r.point.depth == 4
                    && r.point.width == 256
                    && r.point.kv_heads == 2
                    && r.point.ffn_ratio == 4.0
            })
            .unwrap()
    };
    let dense = find(1, 1, "fp16");
    let moe = find(4, 1, "fp16");
    let moe2 = find(4, 2, "fp16");
    let int8 = find(4, 1, "int8");
    assert!(
        moe.metrics.weights > 3.0 * dense.metrics.weights * 0.9,
        "capacity holds all experts"
    );
    assert!(moe2.active_params > moe.active_params);
    assert!((int8.metrics.weights - moe.metrics.weights / 2.0).abs() < 1.0);
    assert!(int8.metrics.tpot < moe.metrics.tpot, "int8 weights stream faster");
    let _ = g;
}

/// Under `--quality auto` a grid outside the surrogate's training domain (widths 128 and 256,
/// vocabulary 1,000) is scored by the prior, candidate for candidate, and counted as such.
#[test]
fn auto_scores_a_grid_outside_the_domain_with_the_prior_and_counts_it() {
    let auto = llmforge::quality::load_loss_model("auto", 20.0).unwrap();
    let (rows, out) = run_with(16, auto.as_ref());
    let (prior_rows, _) = run(16);
    assert_eq!(rows.len(), prior_rows.len());
    for (a, b) in rows.iter().zip(&prior_rows) {
        assert_eq!(a.metrics.loss, b.metrics.loss);
        assert_eq!(a.loss.scorer, llmforge::quality::Scorer::Chinchilla);
        let why = a.loss.outside.unwrap().to_string();
        assert_eq!(why, format!("d_model {} (trained 768)", a.point.width));
    }
    assert_eq!(out.losses.scored.get("chinchilla"), Some(&96));
    assert_eq!(out.losses.scored.len(), 1);
    assert_eq!(
        (out.losses.outside, out.losses.outside_by.get("d_model")),
        (96, Some(&96))
    );
    assert_eq!(
        out.losses.describe(true),
        "chinchilla 96; outside the surrogate's training domain: 96 (d_model 96)"
    );
}
