//! `llmforge attention`: one attention core (scores, softmax, PV) on any substrate, through
//! the simulator or the roofline. On a GPU the three run as one fused flash-attention kernel
//! (`sim/gpu.rs`: the query and KV blocks, the KV split and the waves are shown); elsewhere as
//! three kernels one after another.

use super::gemm::{
    Format, KernelOut, check_dims, json, kernel_out, precision_for, resolve_kernel, rule_words, table,
};
use super::sim::EngineArg;
use clap::Args;
use llmforge::graph::{AttentionShape, attention_ops};

use llmforge::sim::cost::{self, Cost, Traffic};
use llmforge::sim::{Engine, gpu};
use llmforge::substrate::Kind;

#[derive(Args)]
pub struct AttentionArgs {
    /// A substrate (shipped name or file) of any kind.
    #[arg(long)]
    pub substrate: String,
    /// Sequences.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Query heads.
    #[arg(long)]
    pub heads: u64,
    /// Key/value heads (grouped-query attention; default: as many as query heads).
    #[arg(long)]
    pub kv_heads: Option<u64>,
    /// Query rows per sequence (1 for a decode step, the prompt for a prefill).
    #[arg(long)]
    pub q_len: u64,
    /// Keys per sequence (the context); the last `q-len` of them are new, the rest come
    /// from the KV cache.
    #[arg(long)]
    pub kv_len: u64,
    /// Head dimension (of queries, keys and values).
    #[arg(long)]
    pub head_dim: u64,
    /// Each query sees only the keys up to its own position.
    #[arg(long)]
    pub causal: bool,
    /// Precision of activations and the KV cache, e.g. fp16, fp8 (default as for `gemm`).
    #[arg(long)]
    pub precision: Option<String>,
    #[arg(long, value_enum, default_value_t = EngineArg::Sim)]
    pub engine: EngineArg,
    #[arg(long = "set", value_name = "PATH=EXPR")]
    pub set: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(args: AttentionArgs) -> miette::Result<()> {
    let kv_heads = args.kv_heads.unwrap_or(args.heads);
    use llmforge::limits::{MAX_BATCH, MAX_CONTEXT, MAX_HEAD_DIM, MAX_HEADS};
    check_dims(&[
        ("batch", args.batch, MAX_BATCH),
        ("heads", args.heads, MAX_HEADS),
        ("kv-heads", kv_heads, MAX_HEADS),
        ("q-len", args.q_len, MAX_CONTEXT),
        ("kv-len", args.kv_len, MAX_CONTEXT),
        ("head-dim", args.head_dim, MAX_HEAD_DIM),
    ])?;
    if args.heads % kv_heads != 0 {
        miette::bail!(
            "--heads {} is not a multiple of --kv-heads {kv_heads}: each KV head serves a whole group of query heads",
            args.heads
        );
    }
    if args.q_len > args.kv_len {
        miette::bail!(
            "--q-len {} exceeds --kv-len {}: the queries are the last positions of the context",
            args.q_len,
            args.kv_len
        );
    }
    let s = super::substrate::load(&args.substrate, &args.set)?;
    let p = precision_for(&s, args.precision.as_deref(), None)?;
    let engine: Engine = args.engine.into();
    let shape = AttentionShape {
        batch: args.batch,
        heads: args.heads,
        kv_heads,
        q_len: args.q_len,
        kv_len: args.kv_len,
        d_qk: args.head_dim,
        d_v: args.head_dim,
        causal: args.causal,
    };
    let (f, mapper) = resolve_kernel(&s, p, true)?;
    let ops = attention_ops(shape, f);
    let refs: Vec<&llmforge::graph::Op> = ops.iter().collect();
    let model = match engine {
        Engine::Roofline => cost::Model::Roofline,
        Engine::Sim => cost::Model::Sim,
    };
    let hpg = args.heads / kv_heads;
    let c = if mapper.fuses_attention() {
        mapper.cost(model, &refs, hpg)
    } else {
        // One kernel after another.
        let mut total = Cost::default();
        let mut t = 0.0;
        for r in &refs {
            let k = mapper.cost(model, &[r], hpg);
            t += k.time().get();
            total.add(&k);
        }
        // `add` sums the phases; the kernels ran back to back, so their time is the sum.
        total.main = llmforge::units::Seconds::new(t);
        total.fill = llmforge::units::Seconds::ZERO;
        total.drain = llmforge::units::Seconds::ZERO;
        total.stream_read = llmforge::units::Seconds::ZERO;
        total.stream_write = llmforge::units::Seconds::ZERO;
        total
    };
    let mut out: KernelOut = kernel_out(&s, engine, &rule_words(&mapper, true), &refs, &c);
    let d = &mut out.detail;
    let mut put = |k: &str, v: serde_json::Value| {
        d.insert(k.to_string(), v);
    };
    put("batch", args.batch.into());
    put("heads", args.heads.into());
    put("kv_heads", kv_heads.into());
    put("q_len", args.q_len.into());
    put("kv_len", args.kv_len.into());
    put("head_dim", args.head_dim.into());
    put("causal", args.causal.into());
    put("pairs", (args.batch * args.heads * shape.pairs()).into());
    if let (Kind::Gpu(g), Engine::Sim) = (&s.kind, engine) {
        let t = Traffic::of(&refs);
        let plan = gpu::fused_attention(
            g,
            mapper.eff_for(&refs),
            &refs,
            &t,
            t.activations() <= mapper.onchip,
            hpg,
        );
        put("block", format!("{}x{}", plan.block.0, plan.block.1).into());
        put("split_kv", plan.split_kv.into());
        put("ctas", plan.ctas.into());
        put("waves", plan.waves.into());
    }
    match args.format {
        Format::Json => print!("{}", json(&out, p)?),
        Format::Table => print!(
            "{}",
            table(
                &format!(
                    "attention {}x{} heads ({} KV), {} queries over {} keys{}",
                    args.batch,
                    args.heads,
                    kv_heads,
                    args.q_len,
                    args.kv_len,
                    if args.causal { ", causal" } else { "" }
                ),
                &out
            )
        ),
    }
    Ok(())
}
