//! `llmforge sim`: a model's TTFT, TPOT, throughput and energy on a substrate.

use clap::{Args, ValueEnum};
use llmforge::model::{self, Model, Precision, Precisions};
use llmforge::output::{Outputs, write_atomic};
use llmforge::sim::{self, Engine, Workload};
use llmforge::trace;
use miette::IntoDiagnostic;
use std::path::PathBuf;

/// What every costing command takes: the model, the substrate (with overrides) and the
/// workload. Flattened into `sim` and `roofline`.
#[derive(Args)]
pub struct RunArgs {
    /// A model preset name or a model file.
    #[arg(long)]
    pub model: String,
    /// A shipped substrate name or a substrate file.
    #[arg(long)]
    pub substrate: String,
    /// Prompt tokens P (prefill).
    #[arg(long, default_value_t = 256)]
    pub prompt: u64,
    /// Generated tokens D (decode steps at contexts P+1 ..= P+D).
    #[arg(long = "gen", default_value_t = 256)]
    pub generate: u64,
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Override a substrate field: `--set dram.read="8 B/cycle"` (repeatable).
    #[arg(long = "set", value_name = "PATH=EXPR")]
    pub set: Vec<String>,
    /// Run the model at this precision (weights, activations and KV cache), e.g. int8.
    #[arg(long)]
    pub precision: Option<String>,
}

impl RunArgs {
    /// Loads the model and substrate and validates the workload.
    pub fn load(
        &self,
    ) -> miette::Result<(
        llmforge::model::Model,
        llmforge::substrate::Substrate,
        llmforge::sim::Workload,
    )> {
        let m = load_model(&self.model, self.precision.as_deref())?;
        let s = super::substrate::load(&self.substrate, &self.set)?;
        let w = workload(self.prompt, self.generate, self.batch)?;
        Ok((m, s, w))
    }

    /// Registers the model and substrate files (when they are files) as inputs.
    pub fn inputs<'a>(&self, outputs: &'a mut Outputs) -> &'a mut Outputs {
        outputs
            .input("--model", &self.model)
            .input("--substrate", &self.substrate)
    }
}

#[derive(Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long, value_enum, default_value_t = EngineArg::Sim)]
    pub engine: EngineArg,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write per-op rows (prefill ops, then decode totals) as CSV.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Write a Chrome trace-event JSON of every scheduled interval (open in Perfetto).
    #[arg(long = "chrome-trace", value_name = "FILE")]
    pub chrome_trace: Option<PathBuf>,
    /// Rows of the slowest ops to list per phase in the table.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum EngineArg {
    Sim,
    Roofline,
}

impl From<EngineArg> for Engine {
    fn from(e: EngineArg) -> Engine {
        match e {
            EngineArg::Sim => Engine::Sim,
            EngineArg::Roofline => Engine::Roofline,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Loads the model, applying `--precision`.
pub fn load_model(spec: &str, precision: Option<&str>) -> miette::Result<Model> {
    let mut m = model::load(spec)?;
    if let Some(p) = precision {
        let p: Precision = p.parse().map_err(|e| miette::miette!("--precision: {e}"))?;
        m.precision = Precisions {
            weights: p,
            activations: p,
            kv_cache: p,
        };
    }
    Ok(m)
}

pub fn workload(prompt: u64, generate: u64, batch: u64) -> miette::Result<Workload> {
    Workload::new(prompt, generate, batch).map_err(|e| {
        let flag = match e {
            sim::SimError::Zero { field: "generate" } => "--gen".to_string(),
            sim::SimError::Zero { field } => format!("--{field}"),
            _ => String::new(),
        };
        miette::miette!("{flag}: {e}")
    })
}

pub fn run(args: SimArgs) -> miette::Result<()> {
    args.run
        .inputs(&mut Outputs::new())
        .file("--trace", args.trace.as_deref())
        .file("--chrome-trace", args.chrome_trace.as_deref())
        .check()
        .into_diagnostic()?;
    let (m, s, w) = args.run.load()?;
    let engine: Engine = args.engine.into();
    let ring = matches!(s.kind, llmforge::substrate::Kind::Ring(_));
    let result = match &args.chrome_trace {
        // a ring's trace has a process per chip and a track per link (sim::ring_adapter)
        Some(path) if ring => {
            let (r, text) = sim::ring_adapter::chrome_trace(&m, &s, w);
            write_atomic(path, text.as_bytes()).into_diagnostic()?;
            r
        }
        Some(path) => {
            let mut chrome = trace::ChromeTrace::new();
            let r = sim::run_with_sink(&m, &s, w, engine, &mut chrome);
            write_atomic(path, chrome.finish().as_bytes()).into_diagnostic()?;
            r
        }
        None => sim::run(&m, &s, w, engine),
    };
    if let Some(path) = &args.trace {
        let csv = trace::ops_csv(&result.ops).into_diagnostic()?;
        write_atomic(path, csv.as_bytes()).into_diagnostic()?;
    }
    match args.format {
        Format::Json => print!("{}", trace::json(&result).into_diagnostic()?),
        Format::Table => {
            print!("{}", trace::table(&result, args.top));
            if let Some(h) = &result.summary.ring {
                print!("{}", sim::ring_adapter::hardware_table(h));
            }
        }
    }
    if let Some(w) = trace::memory_warning(&result.summary) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        eprintln!("warning: {w}");
    }
    Ok(())
}
