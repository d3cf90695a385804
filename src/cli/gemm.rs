//! `llmforge gemm`: one GEMM on any substrate, through the simulator or the roofline.
//!
//! Both engines price the GEMM as the engines price a model's GEMMs ([`Mapper::cost`]): on a
//! GPU through the kernel model of `sim/gpu.rs` (the chosen tile, split-K and waves are
//! shown), on a systolic array through its cycle model (cycles, stalls and utilisation are
//! shown), on a ring through its roofline.

use super::sim::EngineArg;
use clap::{Args, ValueEnum};
use llmforge::graph::{KernelFormats, Op, gemm_op};
use llmforge::model::{Precision, Precisions};
use llmforge::sim::cost::{self, Cost, Mapper};
use llmforge::sim::{Engine, gpu};
use llmforge::substrate::{Kind, Substrate};
use llmforge::trace::table::{Column, Table};
use llmforge::trace::{JsonMeta, PrecisionMeta, json_document};
use llmforge::units::fmt_si;
use miette::IntoDiagnostic;
use serde::Serialize;

#[derive(Args)]
pub struct GemmArgs {
    /// A substrate (shipped name or file) of any kind.
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
    /// Operand precision (both operands and the output), e.g. fp16, bf16, fp8, int8. Default:
    /// fp16 on GPUs, int8 on rings, `--word-bytes` on systolic arrays.
    #[arg(long)]
    pub precision: Option<String>,
    #[arg(long, value_enum, default_value_t = EngineArg::Sim)]
    pub engine: EngineArg,
    /// Dataflow of a systolic array (default: the substrate's).
    #[arg(long, value_enum)]
    pub dataflow: Option<DataflowArg>,
    /// Bytes per element on a systolic array when no --precision is given.
    #[arg(long, conflicts_with = "precision")]
    pub word_bytes: Option<f64>,
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

/// What `gemm` and `attention` report for one kernel.
#[derive(Serialize)]
pub struct KernelOut {
    pub substrate: String,
    pub kind: &'static str,
    pub engine: &'static str,
    pub precision: String,
    pub time_s: f64,
    pub flops: f64,
    /// Achieved FLOP/s: FLOPs / time.
    pub flops_per_s: f64,
    pub dram_bytes: f64,
    /// L2 bytes (GPU) or SRAM bytes (systolic) moved.
    pub onchip_bytes: f64,
    /// `compute`, `memory` or `overhead`: the largest of the kernel's times.
    pub bound: &'static str,
    pub compute_s: f64,
    pub memory_s: f64,
    pub overhead_s: f64,
    pub energy_j: f64,
    /// The shape and what the engine chose for it (tile, split, waves; cycles on an array).
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// The JSON text of a kernel report at operand precision `p`, in the common envelope.
pub fn json(out: &KernelOut, p: Precision) -> miette::Result<String> {
    let meta = JsonMeta::cost(out.engine, Some(PrecisionMeta::Operands(p)));
    json_document(&meta, out).into_diagnostic()
}

/// The table text of a kernel report.
pub fn table(title: &str, out: &KernelOut) -> String {
    let mut t = Table::new(vec![Column::text("quantity"), Column::text("value")]).indent(2);
    let mut row = |k: &str, v: String| t.row([k.to_string(), v]);
    row("time", fmt_si(out.time_s, "s"));
    row("achieved", fmt_si(out.flops_per_s, "FLOP/s"));
    row("FLOPs", fmt_si(out.flops, "FLOP"));
    row("DRAM bytes", fmt_si(out.dram_bytes, "B"));
    let onchip = if out.kind == "gpu" {
        "L2 bytes"
    } else {
        "SRAM bytes"
    };
    row(onchip, fmt_si(out.onchip_bytes, "B"));
    row("bound", out.bound.to_string());
    row("compute time", fmt_si(out.compute_s, "s"));
    row("memory time", fmt_si(out.memory_s, "s"));
    row("overhead", fmt_si(out.overhead_s, "s"));
    row("energy", fmt_si(out.energy_j, "J"));
    for (k, v) in &out.detail {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        row(&k.replace('_', " "), text);
    }
    format!(
        "{title} on {} ({} engine, {})\n{}",
        out.substrate,
        out.engine,
        out.precision,
        t.render()
    )
}

/// The report of a kernel of `ops` priced as `cost` on `s`.
pub fn kernel_out(s: &Substrate, engine: Engine, precision: &str, ops: &[&Op], c: &Cost) -> KernelOut {
    let flops: f64 = ops.iter().map(|o| o.flops.get()).sum();
    let time = c.time().get();
    let l2_energy = match &s.kind {
        Kind::Gpu(g) => g.energy.l2_byte.get(),
        Kind::Systolic(sy) => sy.energy.sram_byte.get(),
        Kind::Ring(_) => 0.0,
    };
    let onchip = if l2_energy > 0.0 {
        c.energy.onchip.get() / l2_energy
    } else {
        0.0
    };
    KernelOut {
        substrate: s.name.clone(),
        kind: s.kind_name(),
        engine: engine.name(),
        precision: precision.to_string(),
        time_s: time,
        flops,
        flops_per_s: if time > 0.0 { flops / time } else { 0.0 },
        dram_bytes: c.dram_bytes.get(),
        onchip_bytes: onchip,
        bound: c.bound().name(),
        compute_s: c.compute.get(),
        memory_s: c.memory.get(),
        overhead_s: c.overhead.get(),
        energy_j: c.energy.total().get(),
        detail: serde_json::Map::new(),
    }
}

/// The precision a kernel command runs at: `--precision`, else the kind's default.
pub fn precision_for(
    s: &Substrate,
    given: Option<&str>,
    word_bytes: Option<f64>,
) -> miette::Result<Precision> {
    if let Some(p) = given {
        return p
            .parse::<Precision>()
            .map_err(|e| miette::miette!("--precision {p}: {e}"));
    }
    Ok(match (&s.kind, word_bytes) {
        (Kind::Systolic(_), w) => match w.unwrap_or(1.0) {
            w if !(w.is_finite() && w > 0.0 && w <= 64.0) => {
                miette::bail!("--word-bytes {w}: expected bytes per element in (0, 64]")
            }
            1.0 => Precision::Int8,
            2.0 => Precision::F16,
            4.0 => Precision::F32,
            w => Precision::Bits(8.0 * w),
        },
        (_, Some(_)) => miette::bail!("--word-bytes applies to systolic substrates; use --precision"),
        (Kind::Ring(_), None) => Precision::Int8,
        (Kind::Gpu(_), None) => Precision::F16,
    })
}

/// A standalone kernel at precision `p` on `s`: the formats resolved by the substrate's
/// precision rules (a format it lacks is dequantised, widened or quantised as it declares, or
/// refused), the operand formats of the kernel's ops (`stored`: the weights of a GEMM, the KV
/// cache of attention) and a mapper for them.
pub fn resolve_kernel<'s>(
    s: &'s Substrate,
    p: Precision,
    attention: bool,
) -> miette::Result<(KernelFormats, Mapper<'s>)> {
    let r = s
        .resolve(&Precisions {
            weights: p,
            activations: p,
            kv_cache: p,
        })
        .map_err(|e| miette::miette!(help = e.help(), "--precision {p} on {}: {e}", s.name))?;
    let stored = r.stored();
    let f = KernelFormats {
        input: stored.activations.bytes(),
        stored: if attention {
            stored.kv_cache.bytes()
        } else {
            stored.weights.bytes()
        },
        output: stored.activations.bytes(),
        compute: if attention {
            r.attention_gemm
        } else {
            r.weight_gemm
        },
    };
    Ok((f, Mapper::resolved(s, r, None)))
}

/// The precision rule a kernel ran by, in words (`fp16`, `Q4_0 (4.5 b/w) dequantised to
/// fp16`, ...).
pub fn rule_words(m: &Mapper, attention: bool) -> String {
    let r = &m.precision;
    if attention {
        r.kv_cache.description()
    } else {
        r.weights.description()
    }
}

/// GEMM dimensions up to 2^24 each, batches up to 2^16 (`dsl/README.md`, Limits).
const MAX_GEMM_DIM: u64 = 1 << 24;

/// Each `(flag, value, limit)`: at least 1 and at most the limit.
pub fn check_dims(items: &[(&str, u64, u64)]) -> miette::Result<()> {
    for (name, v, max) in items {
        if *v == 0 {
            miette::bail!("--{name} must be at least 1");
        }
        if let Some(m) = llmforge::limits::above(name, *v, *max) {
            miette::bail!("--{name}: {m}");
        }
    }
    Ok(())
}

pub fn run(args: GemmArgs) -> miette::Result<()> {
    check_dims(&[
        ("m", args.m, MAX_GEMM_DIM),
        ("n", args.n, MAX_GEMM_DIM),
        ("k", args.k, MAX_GEMM_DIM),
        ("batch", args.batch, llmforge::limits::MAX_BATCH),
    ])?;
    let mut s = super::substrate::load(&args.substrate, &args.set)?;
    if let Some(d) = args.dataflow {
        if !matches!(s.kind, Kind::Systolic(_)) {
            miette::bail!(
                "--dataflow applies to systolic substrates; `{}` is a {} substrate",
                s.name,
                s.kind_name()
            );
        }
        let name = match d {
            DataflowArg::Os => "os",
            DataflowArg::Ws => "ws",
            DataflowArg::Is => "is",
        };
        let mut set = args.set.clone();
        set.push(format!("array.dataflow={name}"));
        s = super::substrate::load(&args.substrate, &set)?;
    }
    let p = precision_for(&s, args.precision.as_deref(), args.word_bytes)?;
    let engine: Engine = args.engine.into();
    let (f, mapper) = resolve_kernel(&s, p, false)?;
    let op = gemm_op(args.m, args.n, args.k, args.batch, f);
    let model = match engine {
        Engine::Roofline => cost::Model::Roofline,
        Engine::Sim => cost::Model::Sim,
    };
    let c = mapper.cost(model, &[&op], 1);
    let mut out = kernel_out(&s, engine, &rule_words(&mapper, false), &[&op], &c);
    let d = &mut out.detail;
    let mut put = |k: &str, v: serde_json::Value| {
        d.insert(k.to_string(), v);
    };
    put("m", args.m.into());
    put("n", args.n.into());
    put("k", args.k.into());
    put("batch", args.batch.into());
    match (&s.kind, engine) {
        (Kind::Gpu(g), Engine::Sim) => {
            let t = llmforge::sim::cost::Traffic::of(&[&op]);
            let b = gpu::gemm_bytes(
                &op,
                &t,
                t.activations() <= mapper.onchip,
                mapper.quantised_gemm(&op),
            );
            let plan = gpu::gemm_plan(
                g,
                mapper.eff_for(&[&op]),
                g.matrix_peak_for(op.compute).get(),
                cost::class_bits(op.compute) / 8.0,
                (args.m, args.n, args.k, args.batch),
                b,
                op.flops.get(),
            );
            put("tile", format!("{}x{}", plan.tile.0, plan.tile.1).into());
            put("split_k", plan.split_k.into());
            put("waves", plan.waves.into());
            put("l2_time_s", plan.l2_time.into());
            put("dram_time_s", plan.dram_time.into());
        }
        (Kind::Systolic(sys), Engine::Sim) => {
            let array = cost::array(sys, p.bytes());
            let g = array.gemm_batched(args.batch, args.m, args.n, args.k);
            put("dataflow", array.config().dataflow.name().into());
            put("mode", array.config().mode.name().into());
            put("cycles", g.cycles.get().into());
            put("compute_cycles", g.compute_cycles.get().into());
            put("stall_cycles", g.stall_cycles.get().into());
            put("fill_cycles", g.fill_cycles.get().into());
            put("drain_cycles", g.drain_cycles.get().into());
            put("utilization", g.utilization.into());
            put("dram_read_bytes", g.dram_read_bytes.get().into());
            put("dram_write_bytes", g.dram_write_bytes.get().into());
        }
        _ => {}
    }
    match args.format {
        Format::Json => print!("{}", json(&out, p)?),
        Format::Table => print!(
            "{}",
            table(
                &format!("GEMM {}x{}x{} (batch {})", args.m, args.n, args.k, args.batch),
                &out
            )
        ),
    }
    Ok(())
}
