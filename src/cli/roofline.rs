//! `llmforge roofline`: the roofline of a substrate with every op of a run placed on it.

use clap::Args;
use llmforge::model::ComputeClass;
use llmforge::output::{Outputs, write_atomic};
use llmforge::sim;
use llmforge::substrate::Kind;
use llmforge::trace::plot::{Ceiling, RooflinePlot, si};
use llmforge::trace::table::{Column, Table};
use llmforge::trace::{self, RooflinePoint};
use miette::IntoDiagnostic;
use std::path::PathBuf;

#[derive(Args)]
pub struct RooflineArgs {
    #[command(flatten)]
    pub run: super::sim::RunArgs,
    /// Cost engine placing the operators: the roofline bound, or the simulator's achieved
    /// rate (overheads, stalls and tiling included).
    #[arg(long, value_enum, default_value_t = super::sim::EngineArg::Roofline)]
    pub engine: super::sim::EngineArg,
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
    let engine: sim::Engine = args.engine.into();
    let r = sim::run(&m, &s, w, engine);
    let ceilings: Vec<Ceiling> = match &s.kind {
        Kind::Gpu(g) => g
            .matrix_peak
            .iter()
            .map(|(c, p)| Ceiling {
                name: c.name().to_string(),
                peak: p.get(),
            })
            .collect(),
        Kind::Systolic(_) | Kind::Ring(_) => vec![Ceiling {
            name: s.precision_support().list(),
            peak: s.matrix_peak(ComputeClass::Int8).get(),
        }],
    };
    let bw = s.memory_bandwidth().get();
    println!(
        "{} on {} ({} engine): DRAM {}, vector units {}",
        m.name,
        s.name,
        r.summary.engine,
        si(bw, "B/s"),
        si(s.vector_peak().get(), "FLOP/s")
    );
    let mut t = Table::new(vec![
        Column::text("matrix ceiling"),
        Column::number("peak", "TFLOP/s"),
        Column::number("ridge", "FLOP/B"),
    ])
    .indent(2);
    for c in &ceilings {
        t.row([
            c.name.clone(),
            format!("{:.3}", c.peak / 1e12),
            format!("{:.1}", c.peak / bw),
        ]);
    }
    print!("{}", t.render());
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
                    unit: o.unit.name(),
                    flops: o.flops.get() / n,
                    dram_bytes: o.dram_bytes.get() / n,
                    time: o.time.get() / n,
                }
            })
            .collect();
        let plot = RooflinePlot {
            title: format!(
                "Roofline: {} on {} (prompt {}, generate {}, batch {}; {} engine)",
                m.name, s.name, w.prompt, w.generate, w.batch, r.summary.engine
            ),
            ceilings,
            vector_peak: s.vector_peak().get(),
            bandwidth: bw,
            // a systolic array's DRAM has separate read and write channels: an op that also
            // writes can sit above the read roof
            roof_note: match &s.kind {
                Kind::Systolic(a) => Some(format!(
                    "reads; writes have their own {}",
                    si(a.dram_write.get() * a.clock.get(), "B/s")
                )),
                _ => None,
            },
            points: &points,
        };
        let svg = trace::roofline_svg(&plot).into_diagnostic()?;
        write_atomic(path, svg.as_bytes()).into_diagnostic()?;
        println!("  plot: {}", path.display());
    }
    Ok(())
}
