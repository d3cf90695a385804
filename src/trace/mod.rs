//! Output formats of cost results: text tables, JSON, per-op CSV, Chrome trace-event JSON
//! (opens in Perfetto / chrome://tracing) and the SVG roofline plot. Files are written by
//! [`crate::output`].
//!
//! **API boundary**: the only module that knows output formats. Engines produce plain values
//! ([`crate::sim::RunResult`]) and events ([`crate::sim::Sink`]); everything here renders them.
//! Rendering is deterministic: fixed float formats, no maps with random order.

mod chrome;
mod svg;
pub mod table;

pub use chrome::ChromeTrace;
pub use svg::{RooflinePoint, roofline_svg};

use crate::sim::{OpRecord, RunResult, RunSummary};
use crate::units::fmt_si;
use serde::Serialize;
use std::fmt::Write as _;
use thiserror::Error;

/// Errors rendering outputs.
#[derive(Debug, Error)]
pub enum TraceError {
    #[error("cannot encode output: {0}")]
    Encode(String),
}

/// The run as pretty JSON: the summary fields at the top level, per-op rows under `ops`.
pub fn json(result: &RunResult) -> Result<String, TraceError> {
    #[derive(Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        summary: &'a RunSummary,
        kind_totals: Vec<crate::sim::KindTotal>,
        ops: &'a [OpRecord],
    }
    let out = Out {
        summary: &result.summary,
        kind_totals: result.kind_totals(),
        ops: &result.ops,
    };
    serde_json::to_string_pretty(&out)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| TraceError::Encode(e.to_string()))
}

/// Per-op rows as CSV (one row per op and phase; decode rows are totals over the steps).
pub fn ops_csv(ops: &[OpRecord]) -> Result<String, TraceError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let enc = |e: csv::Error| TraceError::Encode(e.to_string());
    w.write_record([
        "phase",
        "label",
        "layer",
        "name",
        "kind",
        "unit",
        "count",
        "flops",
        "weight_bytes",
        "activation_bytes",
        "kv_bytes",
        "dram_bytes",
        "compute_s",
        "memory_s",
        "overhead_s",
        "time_s",
        "start_s",
        "end_s",
        "bound",
        "energy_compute_j",
        "energy_onchip_j",
        "energy_dram_j",
        "energy_static_j",
        "energy_j",
    ])
    .map_err(enc)?;
    let g = |x: f64| format!("{x:.6e}");
    for r in ops {
        let unit = match r.unit {
            crate::graph::Unit::Matrix => "matrix",
            crate::graph::Unit::Vector => "vector",
            crate::graph::Unit::Memory => "memory",
        };
        w.write_record([
            r.phase.name().to_string(),
            r.label.clone(),
            r.layer.map(|l| l.to_string()).unwrap_or_default(),
            r.name.to_string(),
            r.kind.to_string(),
            unit.to_string(),
            r.count.to_string(),
            g(r.flops.get()),
            g((r.reads.weights + r.writes.weights).get()),
            g((r.reads.activations + r.writes.activations).get()),
            g((r.reads.kv_cache + r.writes.kv_cache).get()),
            g(r.dram_bytes.get()),
            g(r.compute_time.get()),
            g(r.memory_time.get()),
            g(r.overhead_time.get()),
            g(r.time.get()),
            g(r.start.get()),
            g(r.end.get()),
            r.bound.name().to_string(),
            g(r.energy.compute.get()),
            g(r.energy.onchip.get()),
            g(r.energy.dram.get()),
            g(r.energy.static_.get()),
            g(r.energy.total().get()),
        ])
        .map_err(enc)?;
    }
    let bytes = w.into_inner().map_err(|e| TraceError::Encode(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| TraceError::Encode(e.to_string()))
}

/// The summary as an aligned text table, then per-(phase, kind) totals and, if `ops` is
/// set, the `ops` slowest operators of each phase.
pub fn table(result: &RunResult, top: usize) -> String {
    let s = &result.summary;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} on {} ({} engine): prompt {}, generate {}, batch {}",
        s.model, s.substrate, s.engine, s.prompt, s.generate, s.batch
    );
    let rows: [(&str, String); 12] = [
        ("TTFT", fmt_si(s.ttft_s, "s")),
        ("TPOT (mean)", fmt_si(s.tpot_s, "s")),
        ("tokens/s", format!("{:.1}", s.tokens_per_s)),
        ("energy / generated token", fmt_si(s.energy_per_token_j, "J")),
        (
            "energy / processed token (paper)",
            fmt_si(s.energy_per_processed_token_j, "J"),
        ),
        ("prefill energy", fmt_si(s.prefill_energy_j, "J")),
        ("decode energy", fmt_si(s.decode_energy_j, "J")),
        ("total energy", fmt_si(s.total_energy_j, "J")),
        ("weights", fmt_si(s.weight_bytes, "B")),
        ("KV cache (end)", fmt_si(s.kv_bytes, "B")),
        ("memory capacity", fmt_si(s.memory_capacity_bytes, "B")),
        (
            "fits memory",
            if s.fits_memory { "yes".into() } else { "NO".into() },
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(o, "  {k:<34} {v}");
    }
    let _ = writeln!(
        o,
        "\n  {:<8} {:<16} {:>5} {:>12} {:>12} {:>12} {:>12}",
        "phase", "kind", "ops", "FLOPs", "DRAM bytes", "time", "energy"
    );
    for k in result.kind_totals() {
        let _ = writeln!(
            o,
            "  {:<8} {:<16} {:>5} {:>12.4e} {:>12.4e} {:>12} {:>12}",
            k.phase.name(),
            k.kind,
            k.ops,
            k.flops.get(),
            k.dram_bytes.get(),
            fmt_si(k.time.get(), "s"),
            fmt_si(k.energy.get(), "J")
        );
    }
    if top > 0 && !result.ops.is_empty() {
        for phase in [crate::sim::PhaseKind::Prefill, crate::sim::PhaseKind::Decode] {
            let mut v: Vec<&OpRecord> = result.ops.iter().filter(|r| r.phase == phase).collect();
            if v.is_empty() {
                continue;
            }
            v.sort_by(|a, b| b.time.get().total_cmp(&a.time.get()).then(a.label.cmp(&b.label)));
            let _ = writeln!(
                o,
                "\n  slowest {} ops ({}{}):",
                phase.name(),
                top.min(v.len()),
                if phase == crate::sim::PhaseKind::Decode {
                    ", totals over all steps"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                o,
                "  {:<22} {:<16} {:>12} {:>12} {:>9} {:>12}",
                "op", "kind", "time", "DRAM bytes", "bound", "energy"
            );
            for r in v.into_iter().take(top) {
                let _ = writeln!(
                    o,
                    "  {:<22} {:<16} {:>12} {:>12.4e} {:>9} {:>12}",
                    r.label,
                    r.kind,
                    fmt_si(r.time.get(), "s"),
                    r.dram_bytes.get(),
                    r.bound.name(),
                    fmt_si(r.energy.total().get(), "J")
                );
            }
        }
    }
    o
}
