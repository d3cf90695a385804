//! `llmforge sim`: a model's TTFT, TPOT, throughput and energy on a substrate.

use clap::{Args, ValueEnum};
use llmforge::model::{self, Model, Precision, Precisions};
use llmforge::output::{AtomicFile, Outputs, write_atomic};
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
    #[arg(long, default_value_t = 256, allow_negative_numbers = true)]
    pub prompt: u64,
    /// Generated tokens D (decode steps at contexts P+1 ..= P+D).
    #[arg(long = "gen", default_value_t = 256, allow_negative_numbers = true)]
    pub generate: u64,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
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
        check_precision(&m, &s)?;
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
    /// Decode steps in the Chrome trace: all of them when the run has at most this many,
    /// else this many spread evenly from the first step to the last (the prefill is always
    /// whole). At most 65,536.
    #[arg(long = "trace-steps", value_name = "N", default_value_t = llmforge::limits::DEFAULT_TRACE_STEPS)]
    pub trace_steps: u64,
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

/// The most decode steps `--trace-steps` may ask for.
const MAX_TRACE_STEPS: u64 = 1 << 16;

/// Loads the model, applying `--precision`.
pub fn load_model(spec: &str, precision: Option<&str>) -> miette::Result<Model> {
    let mut m = model::load(spec)?;
    if let Some(p) = precision {
        let p: Precision = p.parse().map_err(|e| miette::miette!("--precision: {e}"))?;
        m.precision = Precisions::all(p);
    }
    Ok(m)
}

/// Refuses a model whose formats the substrate cannot run (`Substrate::resolve`).
pub fn check_precision(m: &Model, s: &llmforge::substrate::Substrate) -> miette::Result<()> {
    check_formats(
        &format!("model `{}`", m.name),
        s,
        &[m.precision.weights],
        m.precision.activations,
        m.precision.kv_cache,
    )
}

/// Refuses a space or grid with a weight format (beside its activation and KV-cache formats)
/// the substrate cannot run.
pub fn check_formats(
    what: &str,
    s: &llmforge::substrate::Substrate,
    weights: &[Precision],
    activations: Precision,
    kv_cache: Precision,
) -> miette::Result<()> {
    for &w in weights {
        let p = Precisions {
            weights: w,
            activations,
            kv_cache,
        };
        if let Err(e) = s.resolve(&p) {
            return Err(miette::miette!(help = e.help(), "{what}: {e}"));
        }
    }
    Ok(())
}

/// The workload of the `--prompt`, `--gen` and `--batch` flags; an error names the flag(s).
pub fn workload(prompt: u64, generate: u64, batch: u64) -> miette::Result<Workload> {
    Workload::new(prompt, generate, batch).map_err(|e| {
        let field = match &e {
            sim::SimError::Zero { field } | sim::SimError::Limit { field, .. } => *field,
            sim::SimError::UnknownEngine(_) => "",
        };
        let flag = match field {
            "prompt" => "--prompt",
            "generate" => "--gen",
            "batch" => "--batch",
            "context" => "--prompt + --gen",
            "in_flight" => "--batch x (--prompt + --gen)",
            _ => "workload",
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
    if let Some(m) = llmforge::limits::above("--trace-steps", args.trace_steps, MAX_TRACE_STEPS) {
        return Err(miette::miette!("{m}"));
    }
    let steps = Some(args.trace_steps);
    let result = match &args.chrome_trace {
        // streamed to the file as the events arrive (a ring's trace: a process per chip and a
        // track per link, from the topology it announces)
        Some(path) => {
            let mut file = AtomicFile::create(path).into_diagnostic()?;
            let mut chrome = trace::ChromeTrace::to_writer(&mut file).decode_steps(steps);
            let r = sim::run_with_sink(&m, &s, w, engine, &mut chrome);
            chrome.finish().into_diagnostic()?;
            file.commit().into_diagnostic()?;
            r
        }
        None => sim::run(&m, &s, w, engine),
    };
    if let Some(path) = &args.trace {
        let csv = trace::ops_csv(&result.ops).into_diagnostic()?;
        write_atomic(path, csv.as_bytes()).into_diagnostic()?;
    }
    match args.format {
        Format::Json => print!("{}", trace::json(&result, &m.precision).into_diagnostic()?),
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
