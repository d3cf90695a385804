//! `sim::run` / `sim::summary` on ring substrates: the cost engine's interface dispatches to
//! the ring model and reports it in the engine's terms.

use llmforge::model;
use llmforge::sim::ring::RingWorkload;
use llmforge::sim::ring_adapter;
use llmforge::sim::{self, Engine, Events, PhaseKind, Workload};
use llmforge::substrate::{self, DesignSpace, Override};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-30), "{a} vs {b}");
}

#[test]
fn sim_summary_on_a_ring_is_the_ring_cosearch() {
    let m = model::preset("llmforge-eco-294m").unwrap();
    let sub = substrate::load("ring-edge-cosearch", &[]).unwrap();
    let w = Workload::new(256, 256, 1).unwrap();
    let s = sim::summary(&m, &sub, w, Engine::Sim);
    let (want, r) = ring_adapter::run(
        &m,
        &DesignSpace::load("ring-edge-cosearch", &[]).unwrap(),
        RingWorkload::llmforge_paper(),
    )
    .unwrap();
    assert!(r.fast_path);
    assert_eq!(s.engine, "ring");
    assert_eq!((s.ttft_s, s.tpot_s), (want.ttft_s, want.tpot_s));
    assert_eq!(s.total_energy_j, want.total_energy_j);
    assert_eq!(s.energy_per_token_j, want.energy_per_token_j);
    close(s.energy_per_processed_token_j, want.energy_per_processed_token_j);
    close(
        s.energy_per_processed_token_j,
        r.report.energy_per_token_paper.get(),
    );
    assert!(s.fits_memory);
    // phases carry the energy and time
    close(s.prefill.energy.total().get(), s.prefill_energy_j);
    close(s.decode.energy.total().get(), s.decode_energy_j);
    close(s.decode.time.get(), 256.0 * s.tpot_s);
    assert_eq!(s.prefill.time.get(), s.ttft_s);
    // the roofline engine and the exact reference path give the same ring numbers
    assert_eq!(sim::summary(&m, &sub, w, Engine::Roofline), s);
    assert_eq!(sim::reference(&m, &sub, w, Engine::Sim), s);
}

#[test]
fn records_and_events_add_up() {
    let m = model::preset("smollm2-135m").unwrap();
    let sub = substrate::load("ring-edge", &[]).unwrap();
    let w = Workload::new(16, 8, 2).unwrap();
    let r = sim::run(&m, &sub, w, Engine::Sim);
    let layers = m.n_layers();
    let hw = r.summary.ring.clone().unwrap();
    assert!(hw.chips > 1, "the test wants hops");
    let links = hw.chips as usize - 1;
    assert_eq!(r.ops.len(), 2 * (layers + links));
    for phase in [PhaseKind::Prefill, PhaseKind::Decode] {
        let ph = if phase == PhaseKind::Prefill {
            &r.summary.prefill
        } else {
            &r.summary.decode
        };
        let ops: Vec<_> = r.ops.iter().filter(|o| o.phase == phase).collect();
        // layer and link records plus leakage = the phase energy
        let e: f64 = ops.iter().map(|o| o.energy.total().get()).sum();
        close(e + ph.energy.static_.get(), ph.energy.total().get());
        assert_eq!(ops.iter().filter(|o| o.kind == "ring_link").count(), links);
        assert!(ops.iter().all(|o| o.end >= o.start));
        assert!(ops[0].label.starts_with("chip0.L0"), "{}", ops[0].label);
        let f: f64 = ops.iter().map(|o| o.flops.get()).sum();
        close(f, ph.flops.get());
    }
    let mut ev = Events::default();
    let r2 = sim::run_with_sink(&m, &sub, w, Engine::Sim, &mut ev);
    assert_eq!(r2.summary, r.summary);
    // one event per layer per prompt token, and per layer per decode step
    assert_eq!(ev.events.len(), layers * 16 + layers * 8);
    let last = ev.events.iter().map(|e| e.end.get()).fold(0.0, f64::max);
    close(last, r.summary.ttft_s + 8.0 * r.summary.tpot_s);
    let first_decode = ev.events.iter().find(|e| e.phase == PhaseKind::Decode).unwrap();
    close(first_decode.start.get(), r.summary.ttft_s);
}

#[test]
fn a_ring_that_cannot_hold_the_model_reports_infinite_costs() {
    let m = model::preset("smollm2-360m").unwrap();
    let sub = substrate::load(
        "ring-edge",
        &[
            Override {
                path: "packing.max_cores_per_chip".into(),
                expr: "128".into(),
            },
            Override {
                path: "max_chips".into(),
                expr: "2".into(),
            },
        ],
    )
    .unwrap();
    let s = sim::summary(&m, &sub, Workload::new(8, 8, 1).unwrap(), Engine::Sim);
    assert!(!s.fits_memory);
    assert!(s.ttft_s.is_infinite() && s.energy_per_token_j.is_infinite());
}

/// A Chrome trace's events and the time (us) its last `X` event ends.
pub(super) fn trace_events(text: &str) -> (Vec<serde_json::Value>, f64) {
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let events = doc["traceEvents"].as_array().unwrap().clone();
    let end = events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap())
        .fold(0.0, f64::max);
    (events, end)
}

/// The run and its Chrome trace through the engines' one trace path (`trace::ChromeTrace`
/// as the run's sink).
pub(super) fn chrome_trace(
    m: &model::Model,
    sub: &substrate::Substrate,
    w: Workload,
) -> (sim::RunResult, String) {
    let mut chrome = llmforge::trace::ChromeTrace::new();
    let r = sim::run_with_sink(m, sub, w, Engine::Sim, &mut chrome);
    (r, String::from_utf8(chrome.finish().unwrap()).unwrap())
}

#[test]
fn chrome_trace_has_a_process_per_chip_and_a_track_per_link() {
    let m = model::preset("smollm2-135m").unwrap();
    let sub = substrate::load("ring-edge", &[]).unwrap();
    let (p, d) = (6u64, 3u64);
    let w = Workload::new(p, d, 1).unwrap();
    let (r, text) = chrome_trace(&m, &sub, w);
    assert_eq!(r, sim::run(&m, &sub, w, Engine::Sim));
    let (events, end) = trace_events(&text);
    let chips = r.summary.ring.as_ref().unwrap().chips;
    let layers = m.n_layers() as u64;
    let count = |ph: &str, pid: u64| {
        events
            .iter()
            .filter(|e| e["ph"] == ph && e["pid"].as_u64() == Some(pid))
            .count() as u64
    };
    // every chip's layers in every pass (no tensor parallelism here: one chip per layer)
    let per_chip: u64 = (1..=chips).map(|c| count("X", c)).sum();
    assert_eq!(per_chip, layers * (p + d));
    // a track per link, each hop once per pass; the passes
    assert_eq!(count("M", chips + 1), chips); // process name + (chips - 1) links
    assert_eq!(count("X", chips + 1), (chips - 1) * (p + d));
    assert_eq!(count("X", chips + 2), 1 + d);
    // the last event ends at TTFT + D x TPOT
    let want = (r.summary.ttft_s + d as f64 * r.summary.tpot_s) * 1e6;
    assert!((end - want).abs() < 1e-3, "{end} vs {want}");
    // the CSV of the records: a row per layer and per link, per phase
    let csv = llmforge::trace::ops_csv(&r.ops).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * (layers + chips - 1) as usize);
    assert!(csv.contains("link0->1,,hop,ring_link"));
}
