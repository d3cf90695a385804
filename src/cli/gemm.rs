//! `llmforge gemm`: one GEMM on a systolic substrate through the systolic model.

use clap::{Args, ValueEnum};
use llmforge::sim::cost;
use llmforge::sim::systolic::{ActionEnergies, Dataflow};
use llmforge::substrate::Kind;
use llmforge::trace::{JsonMeta, PrecisionMeta, json_document};
use llmforge::units::fmt_si;
use miette::IntoDiagnostic;
use serde::Serialize;

#[derive(Args)]
pub struct GemmArgs {
    /// A systolic substrate (shipped name or file).
    #[arg(long)]
    pub substrate: String,
    /// Output rows.
    #[arg(long)]
    pub m: u64,
    /// Output columns.
    #[arg(long)]
    pub n: u64,
    /// Reduction.
    #[arg(long)]
    pub k: u64,
    /// Independent GEMMs of this shape.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Dataflow (default: the substrate's).
    #[arg(long, value_enum)]
    pub dataflow: Option<DataflowArg>,
    /// Bytes per element.
    #[arg(long, default_value_t = 1.0)]
    pub word_bytes: f64,
    #[arg(long = "set", value_name = "PATH=EXPR")]
    pub set: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DataflowArg {
    Os,
    Ws,
    Is,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Serialize)]
struct Out<'a> {
    substrate: &'a str,
    m: u64,
    n: u64,
    k: u64,
    batch: u64,
    dataflow: &'static str,
    mode: &'static str,
    cycles: f64,
    compute_cycles: f64,
    stall_cycles: f64,
    fill_cycles: f64,
    drain_cycles: f64,
    utilization: f64,
    dram_bytes: f64,
    dram_read_bytes: f64,
    dram_write_bytes: f64,
    sram_bytes: f64,
    time_s: f64,
    energy_j: f64,
}

/// GEMM dimensions up to 2^24 each, batches up to 2^16 (`dsl/README.md`, Limits).
const MAX_GEMM_DIM: u64 = 1 << 24;

pub fn run(args: GemmArgs) -> miette::Result<()> {
    for (flag, v, max) in [
        ("--m", args.m, MAX_GEMM_DIM),
        ("--n", args.n, MAX_GEMM_DIM),
        ("--k", args.k, MAX_GEMM_DIM),
        ("--batch", args.batch, llmforge::limits::MAX_BATCH),
    ] {
        if v == 0 {
            miette::bail!("{flag} must be at least 1");
        }
        if let Some(m) = llmforge::limits::above(&flag[2..], v, max) {
            miette::bail!("{flag}: {m}");
        }
    }
    if !(args.word_bytes.is_finite() && args.word_bytes > 0.0 && args.word_bytes <= 64.0) {
        miette::bail!(
            "--word-bytes {}: expected bytes per element in (0, 64]",
            args.word_bytes
        );
    }
    let s = super::substrate::load(&args.substrate, &args.set)?;
    let Kind::Systolic(sys) = &s.kind else {
        miette::bail!(
            "--substrate {}: `gemm` prices a GEMM on a systolic array; `{}` is a {} substrate",
            args.substrate,
            s.name,
            s.kind_name()
        );
    };
    if !(args.word_bytes.is_finite() && args.word_bytes > 0.0) {
        miette::bail!("--word-bytes must be a positive number, got {}", args.word_bytes);
    }
    let mut array = cost::array(sys, args.word_bytes);
    if let Some(d) = args.dataflow {
        array = array.with_dataflow(match d {
            DataflowArg::Os => Dataflow::Os,
            DataflowArg::Ws => Dataflow::Ws,
            DataflowArg::Is => Dataflow::Is,
        });
    }
    let g = array.gemm_batched(args.batch, args.m, args.n, args.k);
    let energies = ActionEnergies {
        mac: sys.energy.mac,
        sram_byte: sys.energy.sram_byte,
        dram_byte: sys.energy.dram_byte,
        leakage: sys.energy.leakage,
    };
    let out = Out {
        substrate: &s.name,
        m: args.m,
        n: args.n,
        k: args.k,
        batch: args.batch,
        dataflow: array.config().dataflow.name(),
        mode: array.config().mode.name(),
        cycles: g.cycles.get(),
        compute_cycles: g.compute_cycles.get(),
        stall_cycles: g.stall_cycles.get(),
        fill_cycles: g.fill_cycles.get(),
        drain_cycles: g.drain_cycles.get(),
        utilization: g.utilization,
        dram_bytes: (g.dram_read_bytes + g.dram_write_bytes).get(),
        dram_read_bytes: g.dram_read_bytes.get(),
        dram_write_bytes: g.dram_write_bytes.get(),
        sram_bytes: (g.sram_read_bytes + g.sram_write_bytes).get(),
        time_s: g.time(sys.clock).get(),
        energy_j: g.energy(&energies, sys.clock).get(),
    };
    match args.format {
        Format::Json => {
            let bits = llmforge::model::Precision::Bits(args.word_bytes * 8.0);
            let meta = JsonMeta::cost("systolic", Some(PrecisionMeta::Operands(bits)));
            print!("{}", json_document(&meta, &out).into_diagnostic()?);
        }
        Format::Table => {
            println!(
                "GEMM {}x{}x{} (batch {}) on {} ({}x{}, {}, {} mode)",
                out.m, out.n, out.k, out.batch, out.substrate, sys.rows, sys.cols, out.dataflow, out.mode
            );
            println!("  cycles          {:.0}", out.cycles);
            println!("  compute cycles  {:.0}", out.compute_cycles);
            println!(
                "  stall cycles    {:.0} (fill {:.0}, drain {:.0})",
                out.stall_cycles, out.fill_cycles, out.drain_cycles
            );
            println!("  utilization     {:.2}%", out.utilization * 100.0);
            println!(
                "  DRAM bytes      {:.0} (read {:.0}, write {:.0})",
                out.dram_bytes, out.dram_read_bytes, out.dram_write_bytes
            );
            println!("  SRAM bytes      {:.0}", out.sram_bytes);
            println!("  time            {}", fmt_si(out.time_s, "s"));
            println!("  energy          {}", fmt_si(out.energy_j, "J"));
        }
    }
    Ok(())
}
