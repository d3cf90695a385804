//! `llmforge graph`: lower a model and phase into its operator graph (with `--devices` and
//! `--parallel`, the graph placed on them: one tensor-parallel shard's operators with the
//! pass's collectives and stage hand-offs as operators of the interconnect).

use clap::{Args, ValueEnum};
use llmforge::graph::{self, Phase};
use llmforge::model;
use miette::IntoDiagnostic;
use petgraph::visit::EdgeRef;
use serde::Serialize;
use std::fmt::Write;

#[derive(Args)]
pub struct GraphArgs {
    /// A preset name or a model file.
    #[arg(long)]
    model: String,
    /// `prefill:<P>` (a prompt of P tokens) or `decode:<C>` (one step attending to C positions).
    #[arg(long)]
    phase: Phase,
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// Devices the model is placed on (with --parallel): the graph of one tensor-parallel
    /// shard with the pass's collectives and stage hand-offs as `collective` operators.
    #[arg(long, value_name = "N", requires = "parallel")]
    devices: Option<u64>,
    /// Placement over --devices: `tp` (tensor parallel over all), `pp` (one pipeline stage per
    /// device) or `tp=2,pp=4`.
    #[arg(long, value_name = "tp|pp|tp=N,pp=M", requires = "devices")]
    parallel: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Dot,
    Json,
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    model: &'a str,
    phase: Phase,
    total_flops: f64,
    weight_bytes_read: f64,
    kv_bytes_read: f64,
    kv_bytes_written: f64,
    ops: Vec<JsonOp<'a>>,
    edges: Vec<(usize, usize, f64)>,
}

#[derive(Serialize)]
struct JsonOp<'a> {
    id: usize,
    label: String,
    #[serde(flatten)]
    op: &'a graph::Op,
}

pub fn run(args: GraphArgs) -> miette::Result<()> {
    if args.batch == 0 {
        miette::bail!("--batch must be at least 1");
    }
    // The same limits as a run's workload: a prefill of P tokens, or a step at context C.
    let context = match args.phase {
        graph::Phase::Prefill { tokens, .. } => tokens,
        graph::Phase::Decode { context, .. } => context,
    };
    if let Some(m) = llmforge::limits::above("the context", context, llmforge::limits::MAX_CONTEXT) {
        miette::bail!("--phase: {m}");
    }
    llmforge::sim::Workload::new(context.max(1), 1, args.batch)
        .map_err(|e| miette::miette!("--phase / --batch: {e}"))?;
    let placement = match (args.devices, args.parallel.as_deref()) {
        (Some(n), Some(parallel)) => {
            let max = llmforge::system::MAX_DEVICES;
            if n == 0 || n > max {
                miette::bail!("--devices {n}: expected 1 to {max}");
            }
            let p = llmforge::system::parse_parallel(parallel, n)
                .map_err(|e| miette::miette!("--parallel: {e}"))?;
            Some(p)
        }
        _ => None,
    };
    let m = model::load(&args.model)?;
    let phase = args.phase.with_batch(args.batch);
    let g = match placement {
        Some(p) => graph::parallel::lower_placed(&m, phase, p).graph,
        None => graph::lower(&m, phase),
    };
    match args.format {
        Format::Json => {
            let out = JsonGraph {
                model: &g.model,
                phase: g.phase,
                total_flops: g.total_flops().get(),
                weight_bytes_read: g.weight_bytes_read().get(),
                kv_bytes_read: g.kv_bytes_read().get(),
                kv_bytes_written: g.kv_bytes_written().get(),
                ops: g
                    .dag
                    .node_indices()
                    .map(|i| JsonOp {
                        id: i.index(),
                        label: g.dag[i].label(),
                        op: &g.dag[i],
                    })
                    .collect(),
                edges: g
                    .dag
                    .edge_references()
                    .map(|e| (e.source().index(), e.target().index(), e.weight().bytes.get()))
                    .collect(),
            };
            print!(
                "{}",
                llmforge::trace::json_document(&llmforge::trace::JsonMeta::default(), &out)
                    .into_diagnostic()?
            );
        }
        Format::Dot => {
            let mut s =
                String::from("digraph ops {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n");
            for i in g.dag.node_indices() {
                let op = &g.dag[i];
                let _ = writeln!(
                    s,
                    "  n{} [label=\"{}\\n{:.3e} FLOP, {:.3e} B\"];",
                    i.index(),
                    op.label(),
                    op.flops.get(),
                    op.bytes().get()
                );
            }
            for e in g.dag.edge_references() {
                let _ = writeln!(
                    s,
                    "  n{} -> n{} [label=\"{:.3e} B\"];",
                    e.source().index(),
                    e.target().index(),
                    e.weight().bytes.get()
                );
            }
            s.push_str("}\n");
            print!("{s}");
        }
        Format::Table => {
            println!(
                "{:<22} {:>12} {:>14} {:>14} {:>14} {:>12}",
                "op", "kind", "FLOPs", "weight B", "activation B", "KV B"
            );
            for op in g.ops() {
                let kind = match op.kind {
                    graph::OpKind::Gemm { .. } => "gemm",
                    graph::OpKind::Gather { .. } => "gather",
                    graph::OpKind::Elementwise { .. } => "elementwise",
                    graph::OpKind::KvWrite { .. } => "kv_write",
                    graph::OpKind::Collective { .. } => "collective",
                };
                println!(
                    "{:<22} {:>12} {:>14.4e} {:>14.4e} {:>14.4e} {:>12.4e}",
                    op.label(),
                    kind,
                    op.flops.get(),
                    op.reads.weights.get(),
                    (op.reads.activations + op.writes.activations).get(),
                    (op.reads.kv_cache + op.writes.kv_cache).get()
                );
            }
            println!(
                "total: {} ops, {:.4e} FLOPs, {:.4e} weight bytes read, {:.4e} KV bytes read, {:.4e} KV bytes written",
                g.dag.node_count(),
                g.total_flops().get(),
                g.weight_bytes_read().get(),
                g.kv_bytes_read().get(),
                g.kv_bytes_written().get()
            );
        }
    }
    Ok(())
}
