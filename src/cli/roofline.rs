//! `llmforge roofline`: the roofline of a substrate with every op of a run placed on it.

use clap::Args;
use llmforge::model::ComputeClass;
use llmforge::output::{Outputs, write_atomic};
use llmforge::sim::{self, Engine};
use llmforge::substrate::Kind;
use llmforge::trace::{self, RooflinePoint};
use miette::IntoDiagnostic;
use std::path::PathBuf;

#[derive(Args)]
pub struct RooflineArgs {
    #[command(flatten)]
    pub run: super::sim::RunArgs,
    /// Write the plot as SVG.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

pub fn run(args: RooflineArgs) -> miette::Result<()> {
    args.run
        .inputs(&mut Outputs::new())
        .file("--plot", args.plot.as_deref())
        .check()
        .into_diagnostic()?;
    let (m, s, w) = args.run.load()?;
    let r = sim::run(&m, &s, w, Engine::Roofline);
    let ceilings: Vec<(String, f64)> = match &s.kind {
        Kind::Gpu(g) => g
            .matrix_peak
            .iter()
            .map(|(c, p)| (format!("matrix {}", c.name()), p.get()))
            .collect(),
        Kind::Systolic(_) | Kind::Ring(_) => vec![(
            "matrix (all precisions)".to_string(),
            s.matrix_peak(ComputeClass::Int8).get(),
        )],
    };
    let bw = s.memory_bandwidth().get();
    println!(
        "{} on {}: DRAM {:.3e} B/s, vector {:.3e} FLOP/s",
        m.name,
        s.name,
        bw,
        s.vector_peak().get()
    );
    for (name, peak) in &ceilings {
        println!(
            "  {name:<24} peak {peak:.3e} FLOP/s, ridge {:.1} FLOP/B",
            peak / bw
        );
    }
    let mut by_bound = [0usize; 3];
    for op in &r.ops {
        by_bound[op.bound as usize] += 1;
    }
    println!(
        "  ops: {} compute-bound, {} memory-bound, {} overhead-bound",
        by_bound[0], by_bound[1], by_bound[2]
    );
    if let Some(path) = &args.plot {
        let points: Vec<RooflinePoint> = r
            .ops
            .iter()
            .map(|o| {
                let n = o.count.max(1) as f64;
                RooflinePoint {
                    label: o.label.clone(),
                    phase: o.phase.name(),
                    unit: match o.unit {
                        llmforge::graph::Unit::Matrix => "matrix",
                        llmforge::graph::Unit::Vector => "vector",
                        llmforge::graph::Unit::Memory => "memory",
                    },
                    flops: o.flops.get() / n,
                    dram_bytes: o.dram_bytes.get() / n,
                    time: o.time.get() / n,
                }
            })
            .collect();
        let title = format!(
            "{} on {} (P={}, D={}, batch {})",
            m.name, s.name, w.prompt, w.generate, w.batch
        );
        let svg = trace::roofline_svg(&title, &ceilings, s.vector_peak().get(), bw, &points);
        write_atomic(path, svg.as_bytes()).into_diagnostic()?;
        println!("  plot: {}", path.display());
    }
    Ok(())
}
