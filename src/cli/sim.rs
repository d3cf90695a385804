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
    /// A shipped substrate name or a substrate file (required, except for `sim --system`).
    #[arg(long)]
    pub substrate: Option<String>,
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
        let s = super::substrate::load(self.substrate()?, &self.set)?;
        let w = workload(self.prompt, self.generate, self.batch)?;
        check_precision(&m, &s)?;
        Ok((m, s, w))
    }

    /// The `--substrate` argument, or an error saying it is required.
    pub fn substrate(&self) -> miette::Result<&str> {
        self.substrate
            .as_deref()
            .ok_or_else(|| miette::miette!("--substrate is required (a shipped substrate name or a file)"))
    }

    /// Registers the model and substrate files (when they are files) as inputs.
    pub fn inputs<'a>(&self, outputs: &'a mut Outputs) -> &'a mut Outputs {
        let o = outputs.input("--model", &self.model);
        match &self.substrate {
            Some(s) => o.input("--substrate", s),
            None => o,
        }
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
    #[command(flatten)]
    pub system: SystemArgs,
}

/// A multi-device system: `--system FILE|name`, or `--devices N --parallel ...` on top of
/// `--substrate` with the link from the `--link*` flags (all four required: no link figure
/// is ever assumed). Format and pricing: `dsl/SYSTEMS.md`.
#[derive(Args, Default)]
pub struct SystemArgs {
    /// A shipped system name or a system file (devices, interconnect, placement; see
    /// dsl/SYSTEMS.md). Takes the place of --substrate.
    #[arg(long, conflicts_with_all = ["substrate", "devices"])]
    pub system: Option<String>,
    /// Devices of --substrate (a system built from flags; needs --parallel and the link).
    #[arg(long, value_name = "N")]
    pub devices: Option<u64>,
    /// Placement over --devices: `tp` (tensor parallel over all), `pp` (one pipeline stage
    /// per device) or `tp=2,pp=4`.
    #[arg(long, value_name = "tp|pp|tp=N,pp=M", requires = "devices")]
    pub parallel: Option<String>,
    /// Interconnect topology of --devices: ring, switch, or mesh=<rows>.
    #[arg(long, requires = "devices")]
    pub topology: Option<String>,
    /// One link's bandwidth, one direction: "450 GB/s".
    #[arg(long, requires = "devices", allow_hyphen_values = true)]
    pub link: Option<String>,
    /// Parallel links per neighbour pair (or device and switch); their bandwidths add.
    #[arg(long, requires = "devices", default_value_t = 1)]
    pub links: u64,
    /// Latency: one hop (ring, mesh) or one collective through the switch: "2 us".
    #[arg(long = "link-latency", requires = "devices", allow_hyphen_values = true)]
    pub link_latency: Option<String>,
    /// Energy per bit crossing a link: "5 pJ/bit".
    #[arg(long = "link-energy", requires = "devices", allow_hyphen_values = true)]
    pub link_energy: Option<String>,
    /// Micro-batches a prompt is cut into through the pipeline stages.
    #[arg(long = "micro-batches", requires = "devices", default_value_t = 1)]
    pub micro_batches: u64,
}

impl SystemArgs {
    fn wanted(&self) -> bool {
        self.system.is_some() || self.devices.is_some()
    }
}

/// A flag's value in the description language, as `T` (a unit type).
fn flag_value<T: llmforge::dsl::FromQuantity>(flag: &str, text: &str) -> miette::Result<T> {
    llmforge::dsl::parse(text)
        .and_then(|e| e.eval_as::<T>(&|_| None))
        .map_err(|e| miette::miette!("{flag} \"{text}\": {e}"))
}

/// The system of `--system`, or of `--devices` on `--substrate`.
fn load_system(run: &RunArgs, a: &SystemArgs) -> miette::Result<llmforge::system::System> {
    use llmforge::system::{self, Interconnect, System, Topology};
    if let Some(spec) = &a.system {
        if !run.set.is_empty() {
            return Err(miette::miette!(
                "--set applies to --substrate; with --system, write overrides under `devices.set` in the file"
            ));
        }
        return Ok(system::load(spec)?);
    }
    let n = a.devices.unwrap_or(1);
    let sub = super::substrate::load(run.substrate()?, &run.set)?;
    let parallel = a
        .parallel
        .as_deref()
        .ok_or_else(|| miette::miette!("--devices {n} needs --parallel (tp, pp or tp=<N>,pp=<M>)"))?;
    let placement = system::parse_parallel(parallel, n).map_err(|e| miette::miette!("--parallel: {e}"))?;
    let given = [
        a.topology.is_some(),
        a.link.is_some(),
        a.link_latency.is_some(),
        a.link_energy.is_some(),
    ];
    let mut source = String::new();
    let interconnect = if n > 1 && !given.contains(&true) {
        // no link flags: the interconnect of the shipped system built of this substrate
        let found = system::names()
            .filter_map(|name| system::load(name).ok().map(|s| (name, s)))
            .find(|(_, s)| s.device.name == sub.name && s.interconnect.is_some());
        let Some((name, shipped)) = found else {
            return Err(miette::miette!(
                help = "e.g. --topology switch --link \"25 GB/s\" --links 18 --link-latency \"10 us\" --link-energy \"5 pJ/bit\"",
                "--devices {n}: no shipped system is built of `{}`, so the link must be given: \
                 --topology, --link, --link-latency and --link-energy (no link figure is assumed)",
                sub.name
            ));
        };
        source = format!("link of shipped system {name} (systems/{name}.yaml)");
        shipped.interconnect.map(|mut ic| {
            if let Topology::Mesh { rows, .. } = ic.topology {
                ic.topology = Topology::Mesh {
                    rows,
                    cols: n / rows.max(1),
                };
            }
            ic
        })
    } else if n > 1 {
        let missing: Vec<&str> = ["--topology", "--link", "--link-latency", "--link-energy"]
            .into_iter()
            .zip(given)
            .filter_map(|(f, g)| (!g).then_some(f))
            .collect();
        if !missing.is_empty() {
            return Err(miette::miette!(
                help = "e.g. --topology switch --link \"25 GB/s\" --links 18 --link-latency \"10 us\" --link-energy \"5 pJ/bit\"",
                "--devices {n} needs the whole interconnect: {} missing (no link figure is assumed)",
                missing.join(", ")
            ));
        }
        let topology = match a.topology.as_deref().unwrap_or_default() {
            "ring" => Topology::Ring,
            "switch" => Topology::Switch,
            t => match t.strip_prefix("mesh=").map(str::parse::<u64>) {
                Some(Ok(rows)) if rows > 0 => Topology::Mesh { rows, cols: n / rows },
                _ => {
                    return Err(miette::miette!(
                        "--topology `{t}`: expected ring, switch or mesh=<rows>"
                    ));
                }
            },
        };
        let energy_text = a.link_energy.as_deref().unwrap_or_default();
        let energy = llmforge::dsl::parse(energy_text)
            .and_then(|e| e.eval_scalar(&|_| None))
            .and_then(|q| q.in_dim(llmforge::dsl::Dim::JOULES_PER_BYTE))
            .map_err(|e| {
                miette::miette!("--link-energy \"{energy_text}\": {e} (an energy per bit, e.g. \"5 pJ/bit\")")
            })?;
        Some(Interconnect {
            topology,
            bandwidth: flag_value("--link", a.link.as_deref().unwrap_or_default())?,
            links: a.links,
            latency: flag_value("--link-latency", a.link_latency.as_deref().unwrap_or_default())?,
            energy_per_byte: energy,
        })
    } else {
        None
    };
    let mut sys =
        System::new(sub, interconnect, placement, a.micro_batches).map_err(|e| miette::miette!("{e}"))?;
    if !source.is_empty() {
        sys.description = format!("{}; {source}", sys.description);
    }
    Ok(sys)
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
    if args.system.wanted() {
        return run_system(&args);
    }
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

/// `sim --system` / `sim --devices`: the system's summary, the per-op table of one device, and
/// the per-device and per-link tables (or all of it as JSON).
fn run_system(args: &SimArgs) -> miette::Result<()> {
    let mut outputs = Outputs::new();
    outputs.input("--model", &args.run.model);
    if let Some(s) = &args.system.system {
        outputs.input("--system", s);
    }
    outputs
        .file("--trace", args.trace.as_deref())
        .file("--chrome-trace", args.chrome_trace.as_deref())
        .check()
        .into_diagnostic()?;
    let m = load_model(&args.run.model, args.run.precision.as_deref())?;
    let sys = load_system(&args.run, &args.system)?;
    let w = workload(args.run.prompt, args.run.generate, args.run.batch)?;
    check_precision(&m, &sys.device)?;
    let engine: Engine = args.engine.into();
    let r = sim::system::run(&m, &sys, w, engine, true);
    if let Some(path) = &args.trace {
        // one device's per-op rows (each stage's ops run on its own devices)
        let csv = trace::ops_csv(&r.device.ops).into_diagnostic()?;
        write_atomic(path, csv.as_bytes()).into_diagnostic()?;
    }
    if let Some(path) = &args.chrome_trace {
        let events = sim::system::timeline(&m, &sys, w, &r);
        let text = trace::system_trace(&events, sys.count, &r.system.per_link);
        write_atomic(path, text.as_bytes()).into_diagnostic()?;
    }
    match args.format {
        Format::Json => print!("{}", trace::system_json(&r, &m.precision).into_diagnostic()?),
        Format::Table => print!("{}", trace::system_table(&r, args.top)),
    }
    if let Some(w) = trace::memory_warning(&r.system.summary) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        eprintln!("warning: {w}");
    }
    Ok(())
}
