//! `llmforge sweep`: the co-design sweep over a grid of architectures, one shard of it
//! (`--shard i/N`, `--shard auto` on a cluster), and `sweep merge`, which puts shards back
//! together into the outputs one run over the whole grid writes, byte for byte.

use super::progress::Progress;
use clap::{Args, Subcommand, ValueEnum};
use llmforge::model::{self, Model};
use llmforge::output::{
    self, AtomicFile, InputRecord, Manifest, Outputs, Owned, Reuse, RunDir, ShardRecord, Status, interrupt,
    write_atomic,
};
use llmforge::quality::LossModel;
use llmforge::sim::{Engine, Workload};
use llmforge::substrate::Substrate;
use llmforge::sweep::budget::{Budget, Metric, Metrics};
use llmforge::sweep::grid::{self, Grid};
use llmforge::sweep::run::{Axis, Outcome, Row, SweepSpec, measure, sweep};
use llmforge::sweep::shard::{self, Shard, State};
use llmforge::trace;
use llmforge::trace::plot::{FrontierPlot, Limit, RegionCell, RegionPlot};
use miette::{IntoDiagnostic, WrapErr, miette};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// `llmforge sweep ...` or `llmforge sweep merge ...`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepCommand {
    #[command(subcommand)]
    command: Option<SweepSub>,
    #[command(flatten)]
    args: SweepArgs,
}

#[derive(Subcommand)]
enum SweepSub {
    /// Put the run directories of a sharded sweep (`sweep --shard`) back together: the
    /// outputs one run over their union writes (candidates.csv in index order, the frontier
    /// of the union, summary.md, the plots, the frontier's model files), byte for byte.
    Merge(MergeArgs),
}

#[derive(Args)]
pub struct SweepArgs {
    /// A sweep grid: shipped name (codesign-orin, codesign-10m, tiny) or a grid file.
    #[arg(long, required = true)]
    grid: Option<String>,
    #[arg(long, required = true)]
    substrate: Option<String>,
    #[arg(long = "set", value_name = "PATH=EXPR")]
    set: Vec<String>,
    #[command(flatten)]
    quality: super::QualityArgs,
    #[arg(long, default_value_t = 1024, allow_negative_numbers = true)]
    prompt: u64,
    #[arg(long = "gen", default_value_t = 16, allow_negative_numbers = true)]
    generate: u64,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    batch: u64,
    /// Budgets, e.g. `tpot<=20ms`, `weights+kv<=8GB`, `loss<=3.5` (repeatable).
    #[arg(long = "budget")]
    budgets: Vec<String>,
    /// Keep only these weight precisions of the grid (e.g. fp16,int8).
    #[arg(long, value_delimiter = ',')]
    precision: Vec<String>,
    /// Cost engine; `both` adds the simulator's TPOT to every row next to the roofline's.
    #[arg(long, value_enum, default_value_t = EngineChoice::Roofline)]
    engine: EngineChoice,
    /// The frontier's latency axis.
    #[arg(long, default_value = "tpot")]
    x: String,
    /// The two grid axes of region.svg.
    #[arg(long, value_delimiter = ',', default_value = "depth,width")]
    region: Vec<String>,
    /// Compare the frontier with a reference model at equal latency (preset or file).
    #[arg(long)]
    reference: Option<String>,
    /// Which candidates go to candidates.csv.
    #[arg(long, value_enum, default_value_t = Rows::All)]
    candidates: Rows,
    /// Evaluate only shard i of N (`--shard 3/8`: a contiguous range of grid indices), for job
    /// arrays; `--shard auto` takes i and N from the environment (SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT; JOB_COMPLETION_INDEX with LLMFORGE_SHARD_COUNT or
    /// `--shard auto/N`; LLMFORGE_SHARD_INDEX and LLMFORGE_SHARD_COUNT). `sweep merge` puts
    /// the shards' directories back together.
    #[arg(long, value_name = "i/N|auto|auto/N")]
    shard: Option<String>,
    /// Run directory for the results (created if missing; files written atomically, with a
    /// manifest.json). A directory holding an earlier run's results is refused unless --force.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Also write report.html into the output directory (`llmforge report DIR` does the same;
    /// for a sharded sweep, give it to `sweep merge`).
    #[arg(long, conflicts_with = "shard")]
    report: bool,
    /// Replace the results of an earlier run in --out (they are removed first).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct MergeArgs {
    /// The shards' run directories (`sweep --shard ... --out DIR`), in any order.
    #[arg(required = true, value_name = "DIR")]
    shards: Vec<PathBuf>,
    /// Run directory for the merged results.
    #[arg(long)]
    out: PathBuf,
    /// The shards may cover one contiguous part of the grid rather than all of it: the result
    /// is a shard itself, to be merged again with the rest (hierarchical merges).
    #[arg(long)]
    partial: bool,
    /// Also write report.html into the output directory.
    #[arg(long)]
    report: bool,
    /// Replace the results of an earlier run in --out (they are removed first).
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EngineChoice {
    Roofline,
    Sim,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Rows {
    All,
    Feasible,
    None,
}

/// Candidates evaluated (in parallel) between two writes of candidates.csv: at most 16,384,
/// and at most 1/64 of the range (but at least 1,024), so that an interrupt or a write error
/// is acted on within about 1.5% of a small sweep's run. Results do not depend on it.
fn chunk_size(total: u64) -> u64 {
    (total / 64).clamp(1_024, 16_384)
}

/// The files of a sweep's run directory. `outcome.json` holds the sweep's exact totals
/// ([`State`]), which `sweep merge` puts together.
const OUTPUTS: &[Owned] = &[
    Owned::File("candidates.csv"),
    Owned::File("frontier.csv"),
    Owned::File("frontier.svg"),
    Owned::File("region.svg"),
    Owned::File("summary.md"),
    Owned::File("outcome.json"),
    Owned::File("report.html"),
    Owned::Pattern {
        folder: "models",
        prefix: "frontier-",
        suffix: ".yaml",
    },
];
const FRONTIER_MODELS: Owned = OUTPUTS[7];

/// The sweep's settings after defaults, as the manifest records them; `sweep merge` rebuilds
/// the sweep from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    grid: String,
    substrate: String,
    set: Vec<String>,
    quality: String,
    tokens_per_param: f64,
    prompt: u64,
    #[serde(rename = "gen")]
    generate: u64,
    batch: u64,
    budgets: Vec<String>,
    precision: Vec<String>,
    engine: EngineChoice,
    x: String,
    region: Vec<String>,
    reference: Option<String>,
    candidates: Rows,
    /// `i/N` as resolved (also for `--shard auto`); `null` for a run over the whole grid.
    shard: Option<String>,
}

impl Settings {
    fn of(args: &SweepArgs, shard: Option<&Shard>) -> miette::Result<Settings> {
        let given = |v: &Option<String>, flag: &str| v.clone().ok_or_else(|| miette!("a sweep needs {flag}"));
        Ok(Settings {
            grid: given(&args.grid, "--grid")?,
            substrate: given(&args.substrate, "--substrate")?,
            set: args.set.clone(),
            quality: args.quality.spec().to_string(),
            tokens_per_param: args.quality.tokens_per_param(),
            prompt: args.prompt,
            generate: args.generate,
            batch: args.batch,
            budgets: args.budgets.clone(),
            precision: args.precision.clone(),
            engine: args.engine,
            x: args.x.clone(),
            region: args.region.clone(),
            reference: args.reference.clone(),
            candidates: args.candidates,
            shard: shard.map(Shard::label),
        })
    }

    /// Registers the sweep's input files (and shipped descriptions, by their text's hash).
    fn inputs(&self, plan: &mut Outputs) -> miette::Result<()> {
        super::register_description(plan, "--grid", &self.grid, grid::SHIPPED, "dsl/grids", "grid")?;
        super::register_description(
            plan,
            "--substrate",
            &self.substrate,
            llmforge::substrate::SHIPPED,
            "substrates",
            "substrate",
        )?;
        plan.input("--quality", &self.quality)
            .inputs("--reference", &self.reference);
        Ok(())
    }
}

/// Everything a sweep is built from its settings: what [`SweepSpec`] borrows.
struct Sweep {
    grid: Grid,
    substrate: Substrate,
    loss: Box<dyn LossModel>,
    budgets: Vec<Budget>,
    x: Metric,
    region: (Axis, Axis),
    workload: Workload,
    engine: EngineChoice,
}

impl Sweep {
    fn build(s: &Settings) -> miette::Result<Sweep> {
        let mut g = grid::load(&s.grid)?;
        if !s.precision.is_empty() {
            let keep: Vec<model::Precision> = s
                .precision
                .iter()
                .map(|p| {
                    p.parse()
                        .map_err(|e: model::precision::PrecisionError| miette!("--precision: {e}"))
                })
                .collect::<miette::Result<_>>()?;
            g.weights.retain(|w| keep.contains(w));
            if g.weights.is_empty() {
                return Err(miette!("--precision keeps none of the grid's weight precisions"));
            }
        }
        let substrate = super::substrate::load(&s.substrate, &s.set)?;
        let loss = super::load_quality(&s.quality, s.tokens_per_param)?;
        let budgets: Vec<Budget> = s
            .budgets
            .iter()
            .map(|b| Budget::parse(b).map_err(|e| miette!("--budget: {e}")))
            .collect::<miette::Result<_>>()?;
        let x = Metric::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s.x)
            .ok_or_else(|| miette!("--x `{}`: expected ttft, tpot or latency", s.x))?;
        if s.region.len() != 2 {
            return Err(miette!("--region takes two axes, e.g. depth,width"));
        }
        let axis = |a: &str| {
            Axis::parse(a).ok_or_else(|| miette!("--region axis `{a}`: expected depth, width, kv_heads, ffn_ratio, experts, active_experts or weights"))
        };
        let region = (axis(&s.region[0])?, axis(&s.region[1])?);
        let workload = super::sim::workload(s.prompt, s.generate, s.batch)?;
        // after the flags, so a bad flag is named first
        super::sim::check_formats(
            &format!("grid `{}`", g.name),
            &substrate,
            &g.weights,
            g.activations,
            g.kv_cache,
        )?;
        Ok(Sweep {
            grid: g,
            substrate,
            loss,
            budgets,
            x,
            region,
            workload,
            engine: s.engine,
        })
    }

    fn spec(&self) -> SweepSpec<'_> {
        SweepSpec {
            grid: &self.grid,
            substrate: &self.substrate,
            workload: self.workload,
            engine: if self.engine == EngineChoice::Sim {
                Engine::Sim
            } else {
                Engine::Roofline
            },
            both_engines: self.engine == EngineChoice::Both,
            loss: self.loss.as_ref(),
            budgets: &self.budgets,
            x: self.x,
            region: self.region,
        }
    }
}

pub fn run(command: SweepCommand) -> miette::Result<()> {
    match command.command {
        Some(SweepSub::Merge(args)) => merge(args),
        None => run_sweep(command.args),
    }
}

fn run_sweep(args: SweepArgs) -> miette::Result<()> {
    let shard = match &args.shard {
        Some(spec) => {
            Some(shard::resolve(spec, &|name| std::env::var(name).ok()).map_err(|e| miette!("{e}"))?)
        }
        None => None,
    };
    let settings = Settings::of(&args, shard.as_ref())?;
    let out = args
        .out
        .clone()
        .ok_or_else(|| miette!("a sweep needs --out DIR"))?;
    let mut plan = Outputs::new();
    settings.inputs(&mut plan)?;
    plan.dir("--out", &out, OUTPUTS).check().into_diagnostic()?;
    let reuse = if args.force { Reuse::Force } else { Reuse::Fresh };
    let sw = Sweep::build(&settings)?;
    // A shard does not use the reference (the merge compares the frontier with it): a file is
    // read and checked all the same, a shipped preset (each parsed by the tests) only named.
    let reference = match &settings.reference {
        Some(r) if shard.is_some() => {
            let source = model::source(r)?;
            if !source.preset {
                source.parse()?;
            }
            None
        }
        Some(r) => Some(model::load(r)?),
        None => None,
    };
    let spec = sw.spec();
    let grid_points = sw.grid.len();
    let range = match &shard {
        Some(s) => s.range(grid_points),
        None => 0..grid_points,
    };
    // from here on, SIGINT / SIGTERM stop the sweep after the chunk in flight
    let cooperation = interrupt::cooperate();
    let run = RunDir::open("--out", &out, reuse, OUTPUTS).into_diagnostic()?;
    let mut manifest = Manifest::new(
        serde_json::to_value(&settings).into_diagnostic()?,
        plan.records().into_diagnostic()?,
    );
    manifest.shard = shard.as_ref().map(|s| ShardRecord {
        index: Some(s.index),
        count: Some(s.count),
        indices: [range.start, range.end],
        grid_points,
        from: s.from.clone(),
    });
    run.write_manifest(&manifest).into_diagnostic()?;

    // candidates.csv is streamed to a temporary file and renamed when complete (also after an
    // interruption: it then holds every candidate evaluated so far). A write error (a full
    // disk) stops the sweep after the chunk in flight.
    let mut csv = AtomicFile::create(&run.join("candidates.csv")).into_diagnostic()?;
    writeln!(csv, "{}", header(spec.both_engines)).into_diagnostic()?;
    let halt = AtomicBool::new(cooperation.stopping());
    let started = Instant::now();
    let total = range.end - range.start;
    let what = match &shard {
        Some(s) => format!("sweep {} shard {}", sw.grid.name, s.label()),
        None => format!("sweep {}", sw.grid.name),
    };
    let progress = Progress::start(&what, total, "grid points").counting("candidates");
    let mut write_error = None;
    let mut done = 0u64;
    let chunk = chunk_size(total);
    let outcome = sweep(&spec, range.clone(), chunk, &halt, |rows, o| {
        done += chunk.min(total - done);
        for r in rows {
            if write_error.is_some() {
                break;
            }
            if settings.candidates == Rows::All || (settings.candidates == Rows::Feasible && r.feasible) {
                if let Err(e) = writeln!(csv, "{}", row_csv(r, spec.budgets)) {
                    write_error = Some(e);
                }
            }
        }
        if write_error.is_some() || cooperation.stopping() {
            halt.store(true, Ordering::Relaxed);
        }
        progress.update(done, o.evaluated, &format!("frontier {}", o.frontier.len()));
    });
    progress.finish();
    if let Some(e) = write_error {
        return Err(e)
            .into_diagnostic()
            .wrap_err(format!("sweep stopped after {done} of {total} grid points"));
    }
    csv.commit().into_diagnostic()?;
    manifest.outputs.push("candidates.csv".into());
    let wall = started.elapsed().as_secs_f64();
    if let Some(s) = &shard {
        // A shard writes what the merge needs (candidates.csv, outcome.json): its plots,
        // summary and frontier would be of a part of the grid, and drawing them in every shard
        // is most of the cost of sharding a small grid (benches/shard_overhead.sh).
        let state = State::of(&outcome, range.clone(), grid_points);
        write_atomic(&run.join("outcome.json"), state.to_json().as_bytes()).into_diagnostic()?;
        manifest.outputs.push("outcome.json".into());
        manifest.status = if outcome.interrupted {
            Status::Interrupted
        } else {
            Status::Complete
        };
        run.write_manifest(&manifest).into_diagnostic()?;
        println!(
            "shard {} of {}: grid indices {}..{} of {grid_points}: {} candidates evaluated, {} skipped as invalid, {} feasible, frontier of {}, in {wall:.2} s ({:.0} candidates/s){}",
            s.label(),
            sw.grid.name,
            range.start,
            range.end,
            outcome.evaluated,
            outcome.skipped,
            outcome.feasible,
            outcome.frontier.len(),
            outcome.evaluated as f64 / wall.max(1e-9),
            if outcome.interrupted {
                "; interrupted: run it again before merging"
            } else {
                "; put the shards together with `llmforge sweep merge`"
            }
        );
        return Ok(());
    }
    let summary = write_results(
        &run,
        &mut manifest,
        &settings,
        &sw,
        reference.as_ref(),
        &outcome,
        range,
        args.report,
    )?;
    print!("{summary}");
    println!(
        "{} candidates evaluated in {wall:.2} s ({:.0} candidates/s)",
        outcome.evaluated,
        outcome.evaluated as f64 / wall.max(1e-9)
    );
    if args.report {
        println!("report: {}", out.join("report.html").display());
    }
    Ok(())
}

/// Writes everything but candidates.csv from a sweep's outcome over `range` (a sweep's own,
/// or one put together by `sweep merge`), then the manifest, marked complete or interrupted.
/// Returns summary.md's text.
#[allow(clippy::too_many_arguments)]
fn write_results(
    run: &RunDir,
    manifest: &mut Manifest,
    settings: &Settings,
    sw: &Sweep,
    reference: Option<&Model>,
    outcome: &Outcome,
    range: std::ops::Range<u64>,
    report: bool,
) -> miette::Result<String> {
    let spec = sw.spec();
    let reference = reference.map(|m| (m.name.clone(), measure(m, &spec).metrics));
    let mut write = |name: &str, text: &str| {
        write_atomic(&run.join(name), text.as_bytes()).into_diagnostic()?;
        manifest.outputs.push(name.to_string());
        Ok::<(), miette::Report>(())
    };
    let (g, x, budgets) = (&sw.grid, sw.x, &sw.budgets);
    write("frontier.csv", &frontier_csv(outcome, budgets))?;
    let frontier_title = format!(
        "Loss frontier: {} on {} (loss vs {})",
        g.name,
        sw.substrate.name,
        x.name()
    );
    write(
        "frontier.svg",
        &frontier_svg(outcome, &frontier_title, x, budgets, reference.as_ref())?,
    )?;
    let region_title = format!(
        "Feasible region: {} on {}, best loss per ({}, {})",
        g.name,
        sw.substrate.name,
        sw.region.0.name(),
        sw.region.1.name()
    );
    write("region.svg", &region_svg(outcome, &region_title, sw.region)?)?;
    let loss = &sw.loss;
    let summary = summary_md(
        settings,
        &g.name,
        &sw.substrate.name,
        &format!(
            "{}.\nCandidates scored by {}{}",
            loss.name(),
            outcome.losses.describe(loss.domain().is_some()),
            if outcome.losses.scored.len() > 1 {
                ". **The losses of different models are on different scales**: compare candidates of one model (`loss_model` column), or name one with --quality"
            } else {
                ""
            }
        ),
        outcome,
        budgets,
        x,
        reference.as_ref(),
        &range,
        sw.substrate.memory_capacity().get(),
    );
    write("summary.md", &summary)?;
    let state = State::of(outcome, range, g.len());
    write("outcome.json", &state.to_json())?;
    // The frontier's designs as model files (loadable by `sim`, linked from report.html).
    run.clear(&FRONTIER_MODELS).into_diagnostic()?;
    run.create_folder("models").into_diagnostic()?;
    for (index, row) in &outcome.frontier_rows {
        let m = g.model(&row.point);
        write(
            &format!("models/frontier-{index}.yaml"),
            &model::desc::to_yaml(&m),
        )?;
    }
    if report {
        super::report::write(run.path())?;
        manifest.outputs.push("report.html".into());
    }
    manifest.status = if outcome.interrupted {
        Status::Interrupted
    } else {
        Status::Complete
    };
    run.write_manifest(manifest).into_diagnostic()?;
    Ok(summary)
}

/// One shard's run directory, as `sweep merge` reads it.
struct ShardDir {
    path: PathBuf,
    name: String,
    manifest: Manifest,
    settings: Settings,
    state: State,
}

impl ShardDir {
    fn read(path: &Path) -> miette::Result<ShardDir> {
        let name = path.display().to_string();
        let manifest =
            super::finished_run(path, "sweep", "a sweep's", "run that shard again (with --force)")?;
        let settings: Settings = serde_json::from_value(manifest.settings.clone())
            .into_diagnostic()
            .wrap_err_with(|| format!("`{name}`: its manifest's settings are not a sweep's"))?;
        let state_path = path.join("outcome.json");
        if !state_path.is_file() {
            return Err(miette!(
                "`{name}` has no outcome.json (the sweep's exact totals, which merging needs): was it written by an llmforge before {}? Run the shard again with this one",
                llmforge::provenance::VERSION
            ));
        }
        let state: State = match output::load_json(&state_path, "sweep outcome") {
            Ok(state) => state,
            Err(e) => {
                // another format's state does not read as this one: say which it is
                #[derive(Deserialize)]
                struct Format {
                    format: u32,
                }
                if let Ok(Format { format }) = output::load_json::<Format>(&state_path, "sweep outcome") {
                    if format != shard::STATE_FORMAT {
                        return Err(miette!(
                            "`{name}`: its outcome.json has format {format}, this llmforge reads format {}: run the shard again with this llmforge",
                            shard::STATE_FORMAT
                        ));
                    }
                }
                return Err(e).into_diagnostic();
            }
        };
        let range = state.range();
        let recorded = match &manifest.shard {
            Some(r) => r.indices[0]..r.indices[1],
            None => 0..state.grid_points,
        };
        if recorded != range {
            return Err(miette!(
                "`{name}`: its manifest covers grid indices {}..{}, its outcome.json {}..{}; the directory mixes two runs",
                recorded.start,
                recorded.end,
                range.start,
                range.end
            ));
        }
        Ok(ShardDir {
            path: path.to_path_buf(),
            name,
            manifest,
            settings,
            state,
        })
    }

    /// `name (shard i/N, grid indices a..b)`.
    fn describe(&self) -> String {
        let r = self.state.range();
        match &self.settings.shard {
            Some(label) => format!(
                "`{}` (shard {label}, grid indices {}..{})",
                self.name, r.start, r.end
            ),
            None => format!("`{}` (grid indices {}..{})", self.name, r.start, r.end),
        }
    }
}

/// The settings as JSON without the shard, for comparing shards.
fn comparable(s: &Settings) -> miette::Result<serde_json::Map<String, serde_json::Value>> {
    let mut v = serde_json::to_value(Settings {
        shard: None,
        ..s.clone()
    })
    .into_diagnostic()?;
    Ok(v.as_object_mut().map(std::mem::take).unwrap_or_default())
}

/// Inputs by flag: (flag, sha256) in order, the path left out (the same file may be named
/// differently from two machines).
fn hashes(inputs: &[InputRecord]) -> Vec<(String, String)> {
    inputs
        .iter()
        .map(|i| (i.flag.clone(), i.sha256.clone()))
        .collect()
}

/// Refuses shards that were not cut from one sweep: another llmforge version, other settings
/// (anything but the shard), other input contents. Every difference is named.
fn check_same_sweep(shards: &[ShardDir]) -> miette::Result<()> {
    let first = &shards[0];
    let mut problems = Vec::new();
    let base = comparable(&first.settings)?;
    for other in &shards[1..] {
        if other.manifest.llmforge != first.manifest.llmforge {
            problems.push(format!(
                "llmforge version: {} has {}, {} has {}",
                first.describe(),
                first.manifest.llmforge,
                other.describe(),
                other.manifest.llmforge
            ));
        }
        let theirs = comparable(&other.settings)?;
        for (key, value) in &base {
            let given = theirs.get(key).unwrap_or(&serde_json::Value::Null);
            if given != value {
                problems.push(format!(
                    "setting `{key}`: {} has {value}, {} has {given}",
                    first.describe(),
                    other.describe()
                ));
            }
        }
        let (a, b) = (hashes(&first.manifest.inputs), hashes(&other.manifest.inputs));
        if a != b {
            for (flag, hash) in &a {
                let theirs = b.iter().find(|(f, _)| f == flag).map(|(_, h)| h.as_str());
                if theirs != Some(hash.as_str()) {
                    problems.push(format!(
                        "input {flag}: {} read {hash}, {} read {}",
                        first.describe(),
                        other.describe(),
                        theirs.unwrap_or("nothing")
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(miette!(
            help = "merge only the shards of one sweep: the same llmforge, grid, substrate, settings and input files",
            "these shards are not parts of one sweep:\n  {}",
            problems.join("\n  ")
        ))
    }
}

fn merge(args: MergeArgs) -> miette::Result<()> {
    let started = Instant::now();
    let shards: Vec<ShardDir> = args
        .shards
        .iter()
        .map(|p| ShardDir::read(p))
        .collect::<miette::Result<_>>()?;
    check_same_sweep(&shards)?;
    let named: Vec<(String, State)> = shards.iter().map(|s| (s.name.clone(), s.state.clone())).collect();
    let (state, order) = shard::combine(&named, args.partial).map_err(|e| match e {
        shard::ShardError::Missing { .. } if !args.partial => miette!(
            help = "give every shard, or `sweep merge --partial` to merge a contiguous part of the grid (merged again later with the rest)",
            "{e}"
        ),
        e => miette!("{e}"),
    })?;
    let settings = Settings {
        shard: None,
        ..shards[0].settings.clone()
    };
    // The inputs are read again and must be the files the shards read.
    let mut plan = Outputs::new();
    settings.inputs(&mut plan)?;
    for s in &shards {
        // candidates.csv is checked against outcome.json's counts as it is copied, not
        // hashed: hashing the shards' rows was 29% of the merge's instructions on codesign-orin
        // (and no output may replace them, but the merged manifest does not hash them: it
        // names the shards in `merged_from`)
        for name in ["outcome.json", output::MANIFEST] {
            plan.guard("DIR", s.path.join(name));
        }
    }
    plan.dir("--out", &args.out, OUTPUTS).check().into_diagnostic()?;
    let now = plan.records().into_diagnostic()?;
    if hashes(&now) != hashes(&shards[0].manifest.inputs) {
        let was = hashes(&shards[0].manifest.inputs);
        let changed: Vec<String> = hashes(&now)
            .iter()
            .filter(|x| !was.contains(x))
            .map(|(flag, hash)| format!("{flag} is now {hash}"))
            .collect();
        return Err(miette!(
            "the sweep's inputs have changed since the shards ran ({}); the merge rebuilds the sweep from them, so they must be the files the shards read",
            changed.join(", ")
        ));
    }
    let sw = Sweep::build(&settings)?;
    if sw.grid.len() != state.grid_points {
        return Err(miette!(
            "the grid has {} points now, the shards were cut from {}",
            sw.grid.len(),
            state.grid_points
        ));
    }
    let reference = match &settings.reference {
        Some(r) => Some(model::load(r)?),
        None => None,
    };
    let spec = sw.spec();
    // Each shard's first frontier row is evaluated again (a shard priced by another cost
    // model is refused); the rows the outputs show are rebuilt from the shards' records.
    for s in &shards {
        s.state.spot_check(&spec, &s.name).map_err(|e| miette!("{e}"))?;
    }
    let outcome = state.restore(&spec, "the merge").map_err(|e| miette!("{e}"))?;
    let reuse = if args.force { Reuse::Force } else { Reuse::Fresh };
    let run = RunDir::open("--out", &args.out, reuse, OUTPUTS).into_diagnostic()?;
    let mut manifest = Manifest::new(serde_json::to_value(&settings).into_diagnostic()?, now);
    manifest.merged_from = order.iter().map(|&k| shards[k].name.clone()).collect();
    let range = state.range();
    if range != (0..state.grid_points) {
        manifest.shard = Some(ShardRecord {
            index: None,
            count: None,
            indices: [range.start, range.end],
            grid_points: state.grid_points,
            from: None,
        });
    }
    run.write_manifest(&manifest).into_diagnostic()?;

    // candidates.csv: the shards' rows in index order, streamed
    let expected_rows = |s: &State| match settings.candidates {
        Rows::All => s.evaluated,
        Rows::Feasible => s.feasible,
        Rows::None => 0,
    };
    let mut csv = AtomicFile::create(&run.join("candidates.csv")).into_diagnostic()?;
    let header_line = header(spec.both_engines);
    writeln!(csv, "{header_line}").into_diagnostic()?;
    let total: u64 = shards.iter().map(|s| expected_rows(&s.state)).sum();
    let progress = Progress::start("sweep merge", total, "candidate rows");
    let mut copied = 0u64;
    for &k in &order {
        let s = &shards[k];
        let path = s.path.join("candidates.csv");
        let file = std::fs::File::open(&path)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read {}", path.display()))?;
        // the header checked, the rows are copied in blocks and counted by their newlines
        // (line by line, the copy was 4% of a merge's instructions on codesign-orin)
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let read_error = || format!("cannot read {}", path.display());
        let mut line = Vec::new();
        let empty = reader
            .read_until(b'\n', &mut line)
            .into_diagnostic()
            .wrap_err_with(read_error)?
            == 0;
        if !empty {
            if line.last() != Some(&b'\n') {
                return Err(miette!(
                    "{}: its last line is cut short; the file is incomplete",
                    path.display()
                ));
            }
            if line[..line.len() - 1] != *header_line.as_bytes() {
                return Err(miette!(
                    "{}: its header is not the one this sweep writes:\n  {}\nexpected\n  {header_line}",
                    path.display(),
                    String::from_utf8_lossy(&line[..line.len() - 1])
                ));
            }
        }
        let mut rows = 0u64;
        let mut last = b'\n';
        loop {
            let block = reader.fill_buf().into_diagnostic().wrap_err_with(read_error)?;
            let Some(&end) = block.last() else {
                break;
            };
            rows += newlines(block);
            last = end;
            csv.write_all(block).into_diagnostic()?;
            let n = block.len();
            reader.consume(n);
            progress.update(copied + rows, copied + rows, "");
        }
        if last != b'\n' {
            return Err(miette!(
                "{}: its last line is cut short; the file is incomplete",
                path.display()
            ));
        }
        if empty {
            return Err(miette!("{}: empty, not a sweep's candidates.csv", path.display()));
        }
        if rows != expected_rows(&s.state) {
            return Err(miette!(
                "{}: {rows} candidate rows, but {} recorded {} ({} candidates): the file is incomplete or was edited",
                path.display(),
                s.describe(),
                expected_rows(&s.state),
                match settings.candidates {
                    Rows::All => "all",
                    Rows::Feasible => "feasible",
                    Rows::None => "no",
                }
            ));
        }
        copied += rows;
        progress.update(copied, copied, "");
    }
    progress.finish();
    csv.commit().into_diagnostic()?;
    manifest.outputs.push("candidates.csv".into());
    let summary = write_results(
        &run,
        &mut manifest,
        &settings,
        &sw,
        reference.as_ref(),
        &outcome,
        range,
        args.report,
    )?;
    print!("{summary}");
    println!(
        "merged {} shards ({} candidates) in {:.2} s",
        shards.len(),
        outcome.evaluated,
        started.elapsed().as_secs_f64()
    );
    if args.report {
        println!("report: {}", args.out.join("report.html").display());
    }
    Ok(())
}

/// The newlines in `bytes` (memchr's SIMD search: a byte loop took 2.5-3.3 instructions a
/// byte, 5% of a merge of codesign-orin's 8 shards).
fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

fn header(both: bool) -> String {
    let mut h = String::from(
        "index,depth,width,heads,kv_heads,head_dim,ffn,ffn_ratio,experts,active_experts,weights,params,active_params,weight_bytes,kv_bytes,ttft_s,tpot_s,latency_s,energy_per_token_j,loss,fits_memory,feasible,binding,loss_model,out_of_domain",
    );
    if both {
        h.push_str(",tpot_sim_s");
    }
    h
}

fn row_csv(r: &Row, budgets: &[Budget]) -> String {
    let p = &r.point;
    let m = &r.metrics;
    let mut s = format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.6},{},{},{}",
        p.index,
        p.depth,
        p.width,
        p.heads,
        p.kv_heads,
        p.head_dim,
        p.ffn,
        p.ffn_ratio,
        p.experts,
        p.active_experts,
        p.weights,
        m.params,
        r.active_params,
        m.weights,
        m.kv,
        m.ttft,
        m.tpot,
        m.latency,
        m.energy,
        m.loss,
        r.fits_memory,
        r.feasible,
        r.binding.map_or(String::new(), |k| budgets[k].text.clone())
    );
    let _ = write!(
        s,
        ",{},{}",
        r.loss.scorer.name(),
        r.loss.outside.map_or(String::new(), |o| o.to_string())
    );
    if let Some(t) = r.sim_tpot {
        let _ = write!(s, ",{t:.6e}");
    }
    s
}

fn frontier_csv(o: &Outcome, budgets: &[Budget]) -> String {
    let mut s = header(false) + "\n";
    for p in o.frontier.points() {
        if let Some(r) = o.frontier_rows.get(&p.id) {
            let mut r = r.clone();
            r.sim_tpot = None;
            s.push_str(&row_csv(&r, budgets));
            s.push('\n');
        }
    }
    s
}

fn fmt_metric(m: Metric, v: f64) -> String {
    match m {
        Metric::Ttft | Metric::Tpot | Metric::Latency => format!("{:.3} ms", v * 1e3),
        Metric::Weights | Metric::Kv => format!("{:.3} GB", v / 1e9),
        Metric::Energy => format!("{:.3} mJ", v * 1e3),
        Metric::Loss => format!("{v:.4}"),
        Metric::Params => format!("{:.1} M", v / 1e6),
    }
}

fn design(r: &Row) -> String {
    let p = &r.point;
    let moe = if p.experts > 1 {
        format!(", {} experts ({} active)", p.experts, p.active_experts)
    } else {
        String::new()
    };
    format!(
        "#{}: depth {}, width {}, {} heads / {} KV heads, FFN {}{}, {} weights",
        p.index, p.depth, p.width, p.heads, p.kv_heads, p.ffn, moe, p.weights
    )
}

#[allow(clippy::too_many_arguments)]
fn summary_md(
    args: &Settings,
    grid: &str,
    substrate: &str,
    quality: &str,
    o: &Outcome,
    budgets: &[Budget],
    x: Metric,
    reference: Option<&(String, Metrics)>,
    range: &std::ops::Range<u64>,
    memory_bytes: f64,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Sweep of `{grid}` on `{substrate}`\n");
    let _ = writeln!(
        s,
        "Workload: prompt {}, generate {}, batch {}; engine: {}.\nLoss model: {quality}.",
        args.prompt,
        args.generate,
        args.batch,
        match args.engine {
            EngineChoice::Roofline => "roofline",
            EngineChoice::Sim => "sim",
            EngineChoice::Both => "roofline (sim TPOT alongside)",
        }
    );
    let _ = writeln!(
        s,
        "Grid indices {}..{}: {} candidates evaluated, {} skipped as invalid, {} feasible (fit the substrate's memory of {:.3} GB with their weights and KV cache at this workload{}).{}\n",
        range.start,
        range.end,
        o.evaluated,
        o.skipped,
        o.feasible,
        memory_bytes / 1e9,
        if budgets.is_empty() {
            ""
        } else {
            ", and meet every budget"
        },
        if o.interrupted {
            " **Interrupted**: outputs cover what was evaluated."
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "Frontier (loss vs {}): {} designs (frontier.csv).\n",
        x.name(),
        o.frontier.len()
    );
    if !budgets.is_empty() {
        let _ = writeln!(s, "| budget | best design | loss | value | margin | binding |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for (k, b) in budgets.iter().enumerate() {
            match &o.best_per_budget[k] {
                Some(best) => {
                    let r = &best.row;
                    let v = b.value(&r.metrics);
                    let binding = r.binding.map_or("-".to_string(), |j| budgets[j].text.clone());
                    let _ = writeln!(
                        s,
                        "| `{}` | {} | {:.4} | {} | {:.1}% | `{}` |",
                        b.text,
                        design(r),
                        r.metrics.loss,
                        fmt_metric(b.terms[0], v),
                        100.0 * b.slack(&r.metrics),
                        binding
                    );
                }
                None => {
                    let _ = writeln!(s, "| `{}` | none meets it | - | - | - | - |", b.text);
                }
            }
        }
        match &o.best_overall {
            Some(best) => {
                let r = &best.row;
                let binding = r.binding.map_or("-".to_string(), |j| budgets[j].text.clone());
                let _ = writeln!(
                    s,
                    "\nBest design meeting every budget: {} — loss {:.4}; binding constraint `{binding}` ({:.1}% slack).",
                    design(r),
                    r.metrics.loss,
                    100.0 * r.binding.map_or(0.0, |j| budgets[j].slack(&r.metrics))
                );
            }
            None => {
                let _ = writeln!(s, "\nNo design meets every budget.");
            }
        }
    }
    if let Some((name, m)) = reference {
        let rx = m.get(x);
        let _ = write!(
            s,
            "\nReference `{name}`: {} {}, loss {:.4}. ",
            x.name(),
            fmt_metric(x, rx),
            m.loss
        );
        match o.frontier.best_within(rx) {
            Some(p) => {
                let diff = p.y - m.loss;
                let _ = writeln!(
                    s,
                    "Best frontier design at or below its {}: loss {:.4} ({:+.4} nats, perplexity x{:.4}, {:+.2}%), {}.",
                    x.name(),
                    p.y,
                    diff,
                    diff.exp(),
                    100.0 * (diff.exp() - 1.0),
                    o.frontier_rows.get(&p.id).map_or(String::new(), design)
                );
            }
            None => {
                let _ = writeln!(s, "No frontier design is as fast.");
            }
        }
    }
    s
}

/// The frontier plot: a sample of candidates, the frontier, budgets on its axes, the reference.
fn frontier_svg(
    o: &Outcome,
    title: &str,
    x: Metric,
    budgets: &[Budget],
    reference: Option<&(String, Metrics)>,
) -> miette::Result<String> {
    let limits = |m: Metric| -> Vec<Limit> {
        budgets
            .iter()
            .filter(|b| b.terms == [m])
            .map(|b| Limit {
                text: b.text.clone(),
                value: b.limit,
            })
            .collect()
    };
    let plot = FrontierPlot {
        title: title.to_string(),
        x_metric: x.name().to_string(),
        sample: o.sample.clone(),
        front: o.frontier.points().map(|p| (p.x, p.y)).collect(),
        x_limits: limits(x),
        y_limits: limits(Metric::Loss),
        reference: reference.map(|(name, m)| (name.clone(), m.get(x), m.loss)),
    };
    trace::plot::frontier_svg(&plot).into_diagnostic()
}

/// The region map: best feasible loss per pair of values of the two region axes.
fn region_svg(o: &Outcome, title: &str, axes: (Axis, Axis)) -> miette::Result<String> {
    // the distinct values of one axis, in order
    let values = |axis: fn(&(String, String)) -> &String| -> Vec<&String> {
        let set: std::collections::BTreeSet<&String> = o.region.keys().map(axis).collect();
        set.into_iter().collect()
    };
    let xs = values(|k| &k.0);
    let ys = values(|k| &k.1);
    // the keys sort by value (zero-padded); show them without the padding
    let shown = |v: &String| {
        let t = v.trim_start_matches('0');
        if t.is_empty() || t.starts_with('.') {
            format!("0{t}")
        } else {
            t.to_string()
        }
    };
    let cells = o
        .region
        .iter()
        .map(|((a, b), c)| RegionCell {
            x: xs.iter().position(|v| *v == a).unwrap_or(0),
            y: ys.iter().position(|v| *v == b).unwrap_or(0),
            candidates: c.candidates,
            feasible: c.feasible,
            best: c.best_loss,
        })
        .collect();
    let plot = RegionPlot {
        title: title.to_string(),
        x_name: axes.0.name().to_string(),
        y_name: axes.1.name().to_string(),
        x_labels: xs.into_iter().map(shown).collect(),
        y_labels: ys.into_iter().map(shown).collect(),
        cells,
        value: "the best loss among the cell's candidates that meet every budget".into(),
        bar: "loss (nats)".into(),
    };
    trace::plot::region_svg(&plot).into_diagnostic()
}

#[cfg(test)]
mod tests {
    #[test]
    fn newlines_are_counted_in_any_block() {
        // lengths around the lane width and the 255-step limit, newlines everywhere or nowhere
        for len in [0, 1, 31, 32, 33, 8159, 8160, 8161, 20_000] {
            for every in [1, 2, 7, 100_000] {
                let bytes: Vec<u8> = (0..len)
                    .map(|i| if i % every == 0 { b'\n' } else { b'x' })
                    .collect();
                let want = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                assert_eq!(super::newlines(&bytes), want, "{len} bytes, every {every}");
            }
        }
    }
}
