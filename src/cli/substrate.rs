//! `llmforge substrate ...`: list, validate and show hardware descriptions.

use clap::{Subcommand, ValueEnum};
use llmforge::model::ComputeClass;
use llmforge::substrate::{self, Kind, Substrate};
use miette::IntoDiagnostic;

#[derive(Subcommand)]
pub enum SubstrateCmd {
    /// List the shipped substrates.
    List,
    /// Validate a substrate file, reporting every problem with its line and column.
    Check {
        /// A substrate file (or shipped name).
        file: String,
        /// Override a field before validation: `--set dram.read="8 B/cycle"`.
        #[arg(long = "set", value_name = "PATH=EXPR")]
        set: Vec<String>,
    },
    /// Print a substrate's derived figures: peak FLOP/s per precision, ridge points, bandwidths.
    Show {
        substrate: String,
        #[arg(long = "set", value_name = "PATH=EXPR")]
        set: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Loads a substrate with `--set` overrides (shared by every subcommand that takes one).
pub fn load(spec: &str, set: &[String]) -> miette::Result<Substrate> {
    let overrides = substrate::parse_overrides(set).map_err(|e| miette::miette!("{e}"))?;
    Ok(substrate::load(spec, &overrides)?)
}

const CLASSES: [ComputeClass; 5] = [
    ComputeClass::F32,
    ComputeClass::F16,
    ComputeClass::Fp8,
    ComputeClass::Int8,
    ComputeClass::Int4,
];

pub fn run(cmd: SubstrateCmd) -> miette::Result<()> {
    match cmd {
        SubstrateCmd::List => {
            for name in substrate::names() {
                let s = substrate::load(name, &[])?;
                println!("{name:26} {:9} {}", s.kind_name(), s.description);
            }
        }
        SubstrateCmd::Check { file, set } => {
            let s = load(&file, &set)?;
            println!("{file}: ok ({} substrate `{}`)", s.kind_name(), s.name);
        }
        SubstrateCmd::Show {
            substrate: spec,
            set,
            format,
        } => {
            let s = load(&spec, &set)?;
            match format {
                Format::Json => {
                    let derived: Vec<serde_json::Value> = CLASSES
                        .iter()
                        .map(|&c| {
                            serde_json::json!({
                                "class": c.name(),
                                "matrix_peak_flops": s.matrix_peak(c).get(),
                                "ridge_flop_per_byte": s.ridge_point(c),
                            })
                        })
                        .collect();
                    let out = serde_json::json!({
                        "substrate": s,
                        "memory_bandwidth_bytes_per_s": s.memory_bandwidth().get(),
                        "vector_peak_flops": s.vector_peak().get(),
                        "derived": derived,
                    });
                    println!("{}", serde_json::to_string_pretty(&out).into_diagnostic()?);
                }
                Format::Table => {
                    println!("{} ({}): {}", s.name, s.kind_name(), s.description);
                    println!("clock                  {:.3} GHz", s.clock().get() / 1e9);
                    println!(
                        "memory bandwidth       {:.2} GB/s",
                        s.memory_bandwidth().get() / 1e9
                    );
                    println!("memory capacity        {:.2} GB", s.memory_capacity().as_gb());
                    println!(
                        "vector peak            {:.3} TFLOP/s",
                        s.vector_peak().get() / 1e12
                    );
                    for c in CLASSES {
                        println!(
                            "matrix peak {:5}      {:10.3} TFLOP/s   ridge {:8.1} FLOP/B",
                            c.name(),
                            s.matrix_peak(c).get() / 1e12,
                            s.ridge_point(c)
                        );
                    }
                    match &s.kind {
                        Kind::Gpu(g) => println!(
                            "SMs {}, L2 {:.1} MiB at {:.2} TB/s, tile {}x{}",
                            g.sms,
                            g.l2_size.as_mib(),
                            g.l2_bandwidth.get() / 1e12,
                            g.tile.0,
                            g.tile.1
                        ),
                        Kind::Systolic(a) => {
                            let (i, f, o) = a.buffers.split_bytes();
                            println!(
                                "array {}x{} {}, mode {}, SRAM ifmap/filter/ofmap {:.0}/{:.0}/{:.0} KiB, DRAM {}/{} B/cycle",
                                a.rows,
                                a.cols,
                                a.dataflow.name(),
                                a.mode.name(),
                                i / 1024.0,
                                f / 1024.0,
                                o / 1024.0,
                                a.dram_read.get(),
                                a.dram_write.get()
                            )
                        }
                    }
                    let e = s.efficiency;
                    println!(
                        "efficiency             compute {}, memory {}, kernel overhead {}, token overhead {}",
                        e.compute, e.memory, e.kernel_overhead, e.token_overhead
                    );
                }
            }
        }
    }
    Ok(())
}
