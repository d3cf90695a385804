//! `llmforge model ...`: inspect, list and convert model descriptions.

use clap::{Subcommand, ValueEnum};
use llmforge::model::{self, accounting, desc};
use miette::IntoDiagnostic;
use serde::Serialize;

#[derive(Subcommand)]
pub enum ModelCmd {
    /// Print a model's parameter, byte and FLOP accounting.
    Show {
        /// A preset name (see `llmforge model list`) or a path to a model file
        /// (model YAML, Hugging Face config.json, or LLMForge `*_layerlist` YAML).
        model: String,
        /// Context length for the per-token FLOP count.
        #[arg(long, default_value_t = 1024)]
        context: u64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List the shipped model presets.
    List,
    /// Convert any supported model file into the model description format (YAML on stdout).
    Convert {
        model: String,
        /// Rename the model.
        #[arg(long)]
        name: Option<String>,
        /// Override the weight precision (e.g. int8, Q4_K_M, bpw:4.5).
        #[arg(long)]
        weights: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Serialize)]
struct ModelReport {
    name: String,
    layers: usize,
    attention_layers: usize,
    d_model: u64,
    vocab: u64,
    weights_precision: String,
    kv_precision: String,
    params: u64,
    embedding_params: u64,
    non_embedding_params: u64,
    active_params: u64,
    weight_bytes: f64,
    kv_bytes_per_token: f64,
    flops_per_token: f64,
    flops_context: u64,
}

pub fn run(cmd: ModelCmd) -> miette::Result<()> {
    match cmd {
        ModelCmd::Show {
            model,
            context,
            format,
        } => {
            if let Some(m) = llmforge::limits::above("--context", context, llmforge::limits::MAX_CONTEXT) {
                return Err(miette::miette!("{m}"));
            }
            let m = model::load(&model)?;
            let p = accounting::params(&m);
            let r = ModelReport {
                name: m.name.clone(),
                layers: m.n_layers(),
                attention_layers: m.n_attention_layers(),
                d_model: m.d_model,
                vocab: m.vocab,
                weights_precision: m.precision.weights.to_string(),
                kv_precision: m.precision.kv_cache.to_string(),
                params: p.total,
                embedding_params: p.embedding,
                non_embedding_params: p.non_embedding,
                active_params: p.active,
                weight_bytes: accounting::weight_bytes(&m).get(),
                kv_bytes_per_token: accounting::kv_bytes_per_token(&m).get(),
                flops_per_token: accounting::flops_per_token(&m, context).get(),
                flops_context: context,
            };
            match format {
                Format::Json => print!(
                    "{}",
                    llmforge::trace::json_document(&llmforge::trace::JsonMeta::default(), &r)
                        .into_diagnostic()?
                ),
                Format::Table => {
                    println!("model                 {}", r.name);
                    println!(
                        "layers                {} ({} with attention)",
                        r.layers, r.attention_layers
                    );
                    println!("d_model / vocab       {} / {}", r.d_model, r.vocab);
                    println!(
                        "precision             weights {}, kv {}",
                        r.weights_precision, r.kv_precision
                    );
                    println!("params                {}", r.params);
                    println!("  embedding           {}", r.embedding_params);
                    println!("  non-embedding       {}", r.non_embedding_params);
                    println!("  active per token    {}", r.active_params);
                    println!(
                        "weight bytes          {:.4} GB ({:.4} GiB)",
                        r.weight_bytes / 1e9,
                        r.weight_bytes / 1073741824.0
                    );
                    println!("KV bytes per token    {}", r.kv_bytes_per_token);
                    println!(
                        "FLOPs per token       {:.4} GFLOP at context {}",
                        r.flops_per_token / 1e9,
                        context
                    );
                }
            }
            Ok(())
        }
        ModelCmd::List => {
            for name in model::presets::names() {
                let m = model::preset(name)?;
                let p = accounting::params(&m);
                println!(
                    "{name:24} {:>6.1}M params  {:>3} layers  d {}",
                    p.total as f64 / 1e6,
                    m.n_layers(),
                    m.d_model
                );
            }
            Ok(())
        }
        ModelCmd::Convert { model, name, weights } => {
            let mut m = model::load(&model)?;
            if let Some(n) = name {
                m.name = n;
            }
            if let Some(w) = weights {
                m.precision.weights = w
                    .parse()
                    .map_err(|e: model::precision::PrecisionError| miette::miette!("--weights: {e}"))?;
            }
            print!("{}", desc::to_yaml(&m));
            Ok(())
        }
    }
}
