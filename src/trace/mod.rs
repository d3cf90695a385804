//! Output formats of cost results: text tables, JSON, per-op CSV, Chrome trace-event JSON
//! (opens in Perfetto / chrome://tracing), the SVG plots ([`plot`]) and the HTML report
//! ([`report`]). Files are written by [`crate::output`].
//!
//! **API boundary**: the only module that knows output formats. Engines produce plain values
//! ([`crate::sim::RunResult`]) and events ([`crate::sim::Sink`]); everything here renders them.
//! Rendering is deterministic: fixed float formats, no maps with random order.

mod chrome;
mod envelope;
pub mod plot;
pub mod report;
pub mod snapshot;
pub mod table;

pub use chrome::{ChromeTrace, system_trace};
pub use envelope::{JsonMeta, PrecisionMeta, json_document};
pub use plot::{RooflinePoint, roofline_svg};

use crate::sim::{OpRecord, RunResult, RunSummary};
use crate::units::fmt_si;
use serde::Serialize;
use std::fmt::Write as _;
use thiserror::Error;

/// Errors rendering outputs.
#[derive(Debug, Error)]
pub enum TraceError {
    /// Occurs when a file an output is built from (a run directory's CSVs) cannot be read.
    #[error("cannot read `{path}`")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Occurs when an output cannot be written (see [`crate::output`]).
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    #[error("cannot encode output: {0}")]
    Encode(String),
    /// Occurs when a directory given to `report` is not a search or sweep output, or one of its
    /// files cannot be read as written.
    #[error("cannot report on {0}")]
    Report(String),
}

/// The run as pretty JSON in the [`json_document`] envelope (llmforge version, engine, the
/// precision the model ran at): the summary fields at the top level, per-op rows under `ops`.
pub fn json(result: &RunResult, precision: &crate::model::Precisions) -> Result<String, TraceError> {
    #[derive(Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        summary: &'a RunSummary,
        /// Problems with the result a reader must know: the model not fitting memory.
        warnings: Vec<String>,
        kind_totals: Vec<crate::sim::KindTotal>,
        ops: &'a [OpRecord],
    }
    let out = Out {
        summary: &result.summary,
        warnings: memory_warning(&result.summary).into_iter().collect(),
        kind_totals: result.kind_totals(),
        ops: &result.ops,
    };
    let meta = JsonMeta::cost(result.summary.engine, Some(PrecisionMeta::Run(*precision)));
    json_document(&meta, &out)
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
        let unit = r.unit.name();
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

/// When the model does not fit the substrate's memory (weights + KV cache > capacity), the
/// warning to print (the rates are still those of the cost model, as if it did).
pub fn memory_warning(s: &RunSummary) -> Option<String> {
    (!s.fits_memory).then(|| {
        format!(
            "{} does not fit {}'s memory: weights {} + KV cache {} = {} > capacity {}; the rates assume it did (a real run would need more devices, offloading or smaller weights)",
            s.model,
            s.substrate,
            fmt_si(s.weight_bytes, "B"),
            fmt_si(s.kv_bytes, "B"),
            fmt_si(s.weight_bytes + s.kv_bytes, "B"),
            fmt_si(s.memory_capacity_bytes, "B")
        )
    })
}

/// A value with an SI prefix, split into (number, unit) for a table's two columns.
fn si_parts(value: f64, unit: &str) -> (String, String) {
    let text = plot::si(value, unit);
    match text.split_once(' ') {
        Some((n, u)) => (n.to_string(), u.to_string()),
        None => (text, String::new()),
    }
}

/// The summary as an aligned text table, then per-(phase, kind) totals and, if `top` is
/// set, the `top` slowest operators of each phase. Every column names its unit.
pub fn table(result: &RunResult, top: usize) -> String {
    use table::{Column, Table};
    let s = &result.summary;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} on {} ({} engine): prompt {}, generate {}, batch {}",
        s.model, s.substrate, s.engine, s.prompt, s.generate, s.batch
    );
    // the precision rules that applied (Substrate::resolve)
    let p = &s.precision;
    let gemms = if p.weight_gemm() == p.attention_gemm() {
        p.weight_gemm().to_string()
    } else {
        format!("{} (attention {})", p.weight_gemm(), p.attention_gemm())
    };
    let mut pt = Table::new(vec![Column::text("precision"), Column::text("rule")]).indent(2);
    pt.row(["weights".to_string(), p.weights()]);
    pt.row(["activations".to_string(), p.activations()]);
    pt.row(["KV cache".to_string(), p.kv_cache()]);
    pt.row(["GEMM arithmetic".to_string(), gemms]);
    if let Some(r) = p.rejected() {
        pt.row(["REJECTED".to_string(), r]);
    }
    o.push_str(&pt.render());
    o.push('\n');
    let mut t = Table::new(vec![
        Column::text("quantity"),
        Column::number("value", ""),
        Column::text("unit"),
    ])
    .indent(2);
    let rows: [(&str, f64, &str); 11] = [
        ("TTFT", s.ttft_s, "s"),
        ("TPOT (mean)", s.tpot_s, "s"),
        ("throughput", s.tokens_per_s, "tokens/s"),
        ("energy / generated token", s.energy_per_token_j, "J"),
        (
            "energy / processed token (paper)",
            s.energy_per_processed_token_j,
            "J",
        ),
        ("prefill energy", s.prefill_energy_j, "J"),
        ("decode energy", s.decode_energy_j, "J"),
        ("total energy", s.total_energy_j, "J"),
        ("weights", s.weight_bytes, "B"),
        ("KV cache (end)", s.kv_bytes, "B"),
        ("memory capacity", s.memory_capacity_bytes, "B"),
    ];
    for (k, v, unit) in rows {
        let (num, unit) = if unit == "tokens/s" {
            (format!("{v:.1}"), unit.to_string())
        } else {
            si_parts(v, unit)
        };
        t.row([k.to_string(), num, unit]);
    }
    t.row([
        "fits memory".to_string(),
        if s.fits_memory { "yes" } else { "NO" }.to_string(),
        if s.fits_memory {
            String::new()
        } else {
            "weights + KV cache exceed the capacity".to_string()
        },
    ]);
    o.push_str(&t.render());
    o.push('\n');
    let mut t = Table::new(vec![
        Column::text("phase"),
        Column::text("kind"),
        Column::number("ops", ""),
        Column::number("FLOPs", ""),
        Column::number("DRAM", ""),
        Column::number("time", ""),
        Column::number("energy", ""),
    ])
    .indent(2);
    for k in result.kind_totals() {
        t.row([
            k.phase.name().to_string(),
            k.kind.to_string(),
            k.ops.to_string(),
            plot::si(k.flops.get(), "FLOP"),
            plot::si(k.dram_bytes.get(), "B"),
            plot::si(k.time.get(), "s"),
            plot::si(k.energy.get(), "J"),
        ]);
    }
    o.push_str(&t.render());
    if top > 0 && !result.ops.is_empty() {
        for phase in [crate::sim::PhaseKind::Prefill, crate::sim::PhaseKind::Decode] {
            let mut v: Vec<&OpRecord> = result.ops.iter().filter(|r| r.phase == phase).collect();
            if v.is_empty() {
                continue;
            }
            v.sort_by(|a, b| b.time.get().total_cmp(&a.time.get()).then(a.label.cmp(&b.label)));
            v.truncate(top);
            let _ = writeln!(
                o,
                "\n  slowest {} ops ({}{}):",
                phase.name(),
                v.len(),
                if phase == crate::sim::PhaseKind::Decode {
                    ", totals over all steps"
                } else {
                    ""
                }
            );
            let mut t = Table::new(vec![
                Column::text("op"),
                Column::text("kind"),
                Column::number("time", ""),
                Column::number("DRAM", ""),
                Column::text("bound"),
                Column::number("energy", ""),
            ])
            .indent(2);
            for r in v {
                t.row([
                    r.label.clone(),
                    r.kind.to_string(),
                    plot::si(r.time.get(), "s"),
                    plot::si(r.dram_bytes.get(), "B"),
                    r.bound.name().to_string(),
                    plot::si(r.energy.total().get(), "J"),
                ]);
            }
            o.push_str(&t.render());
        }
    }
    o
}

/// A system run as text: the system line, the summary and per-op tables of [`table`] (the
/// summary the whole system's; the ops one device's), then one row per device and per link.
pub fn system_table(run: &crate::sim::system::SystemRun, top: usize) -> String {
    use table::{Column, Table};
    let s = &run.system;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "system {}: {} devices, {} interconnect, tp={} pp={}, {} prompt micro-batch{}",
        s.system,
        s.devices,
        s.topology,
        s.tp,
        s.pp,
        s.micro_batches,
        if s.micro_batches == 1 { "" } else { "es" }
    );
    if !s.description.is_empty() {
        let _ = writeln!(o, "  {}", s.description);
    }
    let _ = writeln!(
        o,
        "  communication on the critical path: prefill {}, decode {}; links {}",
        plot::si(s.prefill_comm_s, "s"),
        plot::si(s.decode_comm_s, "s"),
        plot::si(s.link_energy_j, "J")
    );
    o.push('\n');
    let result = RunResult {
        summary: s.summary.clone(),
        ops: run.device.ops.clone(),
    };
    let body = table(&result, top);
    // the per-op rows are one device's
    o.push_str(&body.replacen('\n', " (per-op rows: one device of each stage)\n", 1));
    o.push('\n');
    let mut t = Table::new(vec![
        Column::text("device"),
        Column::number("stage", ""),
        Column::number("rank", ""),
        Column::text("blocks"),
        Column::number("busy", "ms"),
        Column::number("comm", "ms"),
        Column::number("energy", "J"),
        Column::number("weights", "GB"),
        Column::number("KV cache", "GB"),
        Column::text("fits"),
    ])
    .indent(2);
    for d in &s.per_device {
        t.row([
            format!("d{}", d.device),
            d.stage.to_string(),
            d.rank.to_string(),
            d.layers.clone(),
            format!("{:.3}", d.busy_s * 1e3),
            format!("{:.3}", d.comm_s * 1e3),
            format!("{:.4}", d.energy_j),
            format!("{:.3}", d.weight_bytes / 1e9),
            format!("{:.3}", d.kv_bytes / 1e9),
            if d.fits_memory { "yes" } else { "NO" }.to_string(),
        ]);
    }
    o.push_str(&t.render());
    if !s.per_link.is_empty() {
        o.push('\n');
        let mut t = Table::new(vec![
            Column::text("link"),
            Column::text("between"),
            Column::number("bytes", "MB"),
            Column::number("busy", "ms"),
            Column::number("energy", "mJ"),
        ])
        .indent(2);
        for l in &s.per_link {
            t.row([
                format!("l{}", l.link),
                format!("{} - {}", l.from, l.to),
                format!("{:.3}", l.bytes / 1e6),
                format!("{:.3}", l.busy_s * 1e3),
                format!("{:.4}", l.energy_j * 1e3),
            ]);
        }
        o.push_str(&t.render());
    }
    o
}

/// A system run as JSON in the [`json_document`] envelope: the system's figures (its summary
/// under `summary`), `per_device`, `per_link`, and one device's per-op rows under `ops`.
pub fn system_json(
    run: &crate::sim::system::SystemRun,
    precision: &crate::model::Precisions,
) -> Result<String, TraceError> {
    #[derive(Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        system: &'a crate::sim::system::SystemSummary,
        warnings: Vec<String>,
        ops: &'a [OpRecord],
    }
    let out = Out {
        system: &run.system,
        warnings: memory_warning(&run.system.summary).into_iter().collect(),
        ops: &run.device.ops,
    };
    let meta = JsonMeta::cost(run.system.summary.engine, Some(PrecisionMeta::Run(*precision)));
    json_document(&meta, &out)
}
