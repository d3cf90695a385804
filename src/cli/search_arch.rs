//! `llmforge search --space <SPACE> --substrate <SUB> ...`: the architecture search.
//!
//! With `--out DIR`, every generation the engine state, the history and the whole problem
//! (space and substrate with their content hashes, `--set` overrides, workload, engine,
//! objectives, constraints, quality model) are checkpointed (atomically) to
//! `DIR/checkpoint.json`, and `DIR/manifest.json` records the command, settings and input
//! hashes. `--resume DIR` alone continues the run from its checkpoint and reaches the same
//! result as an uninterrupted run; a flag given with it that differs from the checkpoint is
//! refused (only `--generations` may change, to extend a run). Results: `pareto.csv`,
//! `history.csv`, `pareto.svg`, and the front's models as model YAML files under `models/`
//! (loadable by `sim`). SIGINT / SIGTERM stop the run after the generation in flight, with
//! the checkpoint current.

use super::progress::Progress;
use super::search::{OutputFormat, SearchArgs, TruncationName, lexicographic};
use super::search_front;
use clap::{Args, ValueEnum};
use llmforge::model::desc;
use llmforge::output::{self, Manifest, Outputs, Owned, Reuse, RunDir, Status, interrupt};
use llmforge::quality::LossTally;
use llmforge::search::arch::{ArchProblem, SCREENED};
use llmforge::search::history::{History, ReferencePoint};
use llmforge::search::nsga2::{CacheInCheckpoint, Checkpoint, Individual, Nsga2, Settings, Truncation};
use llmforge::search::space::{self, Genome};
use llmforge::sim::Engine;
use llmforge::sweep::budget::{Budget, Metric};
use llmforge::trace::plot::ParetoPlot;
use llmforge::yaml::shipped_or_file;
use miette::{IntoDiagnostic, WrapErr, miette};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The flags of the architecture search. Those that define the problem have no clap default:
/// the defaults are applied in [`fresh_record`], so `--resume` can tell a flag given (to be
/// compared with the checkpoint) from one left out (restored from it).
#[derive(Args, Debug)]
pub struct ArchArgs {
    /// Substrate to cost candidates on (shipped name or file).
    #[arg(long)]
    pub substrate: Option<String>,
    /// Override substrate fields: `--set dram.read="8 B/cycle"`.
    #[arg(long = "set", value_name = "PATH=EXPR")]
    pub set: Vec<String>,
    /// Objectives, all minimised: loss, ttft, tpot, latency, energy, params, weights, kv
    /// [default: loss,ttft,tpot,energy].
    #[arg(long, value_delimiter = ',')]
    pub objectives: Option<Vec<String>>,
    /// Constraints, e.g. `loss<=3.8`, `ttft<=50ms`, `weights+kv<=8GB` (repeatable).
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
    #[command(flatten)]
    pub quality: super::QualityArgs,
    /// Optimism of the loss objective: mu - beta * sigma [default: 1].
    #[arg(long)]
    pub beta: Option<f64>,
    /// Prompt tokens [default: 256].
    #[arg(long, allow_negative_numbers = true)]
    pub prompt: Option<u64>,
    /// Generated tokens [default: 256].
    #[arg(long = "gen", allow_negative_numbers = true)]
    pub generate: Option<u64>,
    /// Batch size [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    pub batch: Option<u64>,
    /// Cost engine [default: sim].
    #[arg(long, value_enum)]
    pub engine: Option<EngineName>,
    /// Continue the run checkpointed in this directory. The whole problem (space, substrate,
    /// workload, objectives, constraints, quality model, seed and NSGA-II settings) comes from
    /// its checkpoint; a flag given that differs from it is refused. `--generations` may extend
    /// the run.
    #[arg(long, value_name = "DIR", group = "target")]
    pub resume: Option<PathBuf>,
    /// Also write report.html into the output directory (`llmforge report DIR` does the same).
    #[arg(long)]
    pub report: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineName {
    Sim,
    Roofline,
}

impl EngineName {
    fn name(self) -> &'static str {
        match self {
            EngineName::Sim => "sim",
            EngineName::Roofline => "roofline",
        }
    }
}

const DEFAULT_OBJECTIVES: [&str; 4] = ["loss", "ttft", "tpot", "energy"];
const DEFAULT_BETA: f64 = 1.0;
const DEFAULT_PROMPT: u64 = 256;
const DEFAULT_GENERATE: u64 = 256;
const DEFAULT_BATCH: u64 = 1;
const DEFAULT_POPULATION: usize = 24;
const DEFAULT_OFFSPRING: usize = 48;
const DEFAULT_GENERATIONS: usize = 40;
const DEFAULT_SEED: u64 = 42;

/// The files of a search's run directory.
const OUTPUTS: &[Owned] = &[
    Owned::File("checkpoint.json"),
    Owned::File("pareto.csv"),
    Owned::File("history.csv"),
    Owned::File("pareto.svg"),
    Owned::File("report.html"),
    Owned::Pattern {
        folder: "models",
        prefix: "pareto-",
        suffix: ".yaml",
    },
];
const MODELS: Owned = OUTPUTS[5];

/// A description a flag names: as given, and the hash of its text (`None` for a built-in
/// quality model such as `chinchilla`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Source {
    spec: String,
    sha256: Option<String>,
}

impl Source {
    fn show(&self) -> String {
        match &self.sha256 {
            Some(hash) => format!("`{}` ({})", self.spec, short(hash)),
            None => format!("`{}`", self.spec),
        }
    }

    /// The same contents (or, without a hash, the same name).
    fn same(&self, other: &Source) -> bool {
        match (&self.sha256, &other.sha256) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.spec == other.spec,
            _ => false,
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min("sha256:".len() + 12)]
}

/// The whole problem of a search, as its checkpoint and manifest record it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ProblemRecord {
    space: Source,
    substrate: Source,
    set: Vec<String>,
    prompt: u64,
    generate: u64,
    batch: u64,
    engine: String,
    objectives: Vec<String>,
    constraints: Vec<String>,
    quality: Source,
    tokens_per_param: f64,
    beta: f64,
}

/// What is checkpointed after every generation (generic only for the test of
/// [`CheckpointBytes`]).
#[derive(Serialize, Deserialize)]
struct State<R = ProblemRecord, G = Genome> {
    problem: R,
    engine: Checkpoint<G>,
    history: Option<History>,
}

/// Builds the checkpoint's bytes generation by generation. The evaluation cache is the
/// largest part of the checkpoint and only grows (the engine's archive, in evaluation order),
/// so the entries serialised at earlier generations are kept and only the new ones are
/// serialised: the LLMForge setting's 41 checkpoints used to serialise (and clone) the whole
/// archive each time, 39% of a ring search's instructions. The bytes are those of
/// `serde_json::to_vec(&State)` with the cache included (test).
#[derive(Default)]
struct CheckpointBytes {
    /// `[e0,e1,...` (no closing bracket) for the entries serialised so far; empty for none.
    cache: Vec<u8>,
    entries: usize,
}

impl CheckpointBytes {
    /// `State { problem, engine.checkpoint(Include), history }` as compact JSON.
    fn build<R, P>(
        &mut self,
        problem: &R,
        engine: &Nsga2<'_, P>,
        history: &Option<History>,
    ) -> serde_json::Result<Vec<u8>>
    where
        R: Serialize + Clone,
        P: llmforge::search::nsga2::Problem,
    {
        let archive = engine.archive();
        if archive.len() < self.entries {
            // not the run this writer started with: serialise it whole
            *self = CheckpointBytes::default();
        }
        for individual in &archive[self.entries..] {
            self.cache.push(if self.entries == 0 { b'[' } else { b',' });
            serde_json::to_writer(&mut self.cache, individual)?;
            self.entries += 1;
        }
        // the engine's state without the cache ends with its last field, `"cache":null}`
        let rest = serde_json::to_vec(&engine.checkpoint(CacheInCheckpoint::Omit))?;
        let Some(head) = rest.strip_suffix(b"null}".as_slice()) else {
            let whole = State {
                problem: problem.clone(),
                engine: engine.checkpoint(CacheInCheckpoint::Include),
                history: history.clone(),
            };
            return serde_json::to_vec(&whole);
        };
        let mut out = Vec::with_capacity(self.cache.len() + rest.len() + 4096);
        out.extend_from_slice(b"{\"problem\":");
        serde_json::to_writer(&mut out, problem)?;
        out.extend_from_slice(b",\"engine\":");
        out.extend_from_slice(head);
        if self.entries == 0 {
            out.extend_from_slice(b"[]");
        } else {
            out.extend_from_slice(&self.cache);
            out.push(b']');
        }
        out.extend_from_slice(b"},\"history\":");
        serde_json::to_writer(&mut out, history)?;
        out.push(b'}');
        Ok(out)
    }
}

fn metric(name: &str) -> miette::Result<Metric> {
    Metric::ALL
        .iter()
        .copied()
        .find(|m| m.name() == name.trim())
        .ok_or_else(|| miette!("unknown objective `{name}`: expected loss, ttft, tpot, latency, energy, params, weights or kv"))
}

/// A space or substrate by shipped name or file, with the hash of its text.
fn described(spec: &str, space: bool) -> miette::Result<Source> {
    let file = if space {
        shipped_or_file(spec, space::SHIPPED, "dsl/spaces", "search space")?
    } else {
        shipped_or_file(spec, llmforge::substrate::SHIPPED, "substrates", "substrate")?
    };
    Ok(Source {
        spec: spec.to_string(),
        sha256: Some(llmforge::provenance::sha256(file.text().as_bytes())),
    })
}

/// A quality model: a file (hashed) or a built-in name.
fn quality_source(spec: &str) -> miette::Result<Source> {
    let path = Path::new(spec);
    let sha256 = if path.is_file() {
        Some(
            llmforge::provenance::sha256_file(path)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot read --quality {spec}"))?,
        )
    } else {
        None
    };
    Ok(Source {
        spec: spec.to_string(),
        sha256,
    })
}

/// The problem of a new run: the flags given, defaults for the rest.
fn fresh_record(args: &SearchArgs) -> miette::Result<ProblemRecord> {
    let a = &args.arch;
    let space = args
        .space
        .as_deref()
        .ok_or_else(|| miette!("nothing to search: give --space (or --resume DIR to continue a run)"))?;
    let substrate = a
        .substrate
        .as_deref()
        .ok_or_else(|| miette!("--space needs --substrate"))?;
    let objectives = match &a.objectives {
        Some(list) => list.iter().map(|o| o.trim().to_string()).collect(),
        None => DEFAULT_OBJECTIVES.iter().map(|o| o.to_string()).collect(),
    };
    let beta = a.beta.unwrap_or(DEFAULT_BETA);
    if !(beta.is_finite() && beta >= 0.0) {
        return Err(miette!("--beta {beta}: expected a finite optimism of at least 0"));
    }
    Ok(ProblemRecord {
        space: described(space, true)?,
        substrate: described(substrate, false)?,
        set: a.set.clone(),
        prompt: a.prompt.unwrap_or(DEFAULT_PROMPT),
        generate: a.generate.unwrap_or(DEFAULT_GENERATE),
        batch: a.batch.unwrap_or(DEFAULT_BATCH),
        engine: a.engine.unwrap_or(EngineName::Sim).name().to_string(),
        objectives,
        constraints: a.constraints.clone(),
        quality: quality_source(a.quality.spec())?,
        tokens_per_param: a.quality.tokens_per_param(),
        beta,
    })
}

fn fresh_settings(args: &SearchArgs) -> Settings {
    Settings {
        population: args.population.unwrap_or(DEFAULT_POPULATION),
        offspring: args.offspring.unwrap_or(DEFAULT_OFFSPRING),
        generations: args.generations.unwrap_or(DEFAULT_GENERATIONS),
        crossover_prob: 0.6,
        mutation_prob: 0.3,
        seed: args.seed.unwrap_or(DEFAULT_SEED),
        eliminate_duplicates: true,
        truncation: truncation(args.truncation.unwrap_or(TruncationName::IterativeCrowding)),
    }
}

fn truncation(name: TruncationName) -> Truncation {
    match name {
        TruncationName::Crowding => Truncation::Crowding,
        TruncationName::IterativeCrowding => Truncation::IterativeCrowding,
    }
}

/// Every flag given with `--resume` that differs from the checkpoint: (flag, the checkpoint's
/// value, the given value).
fn differences(
    args: &SearchArgs,
    record: &ProblemRecord,
    settings: &Settings,
) -> miette::Result<Vec<(&'static str, String, String)>> {
    let a = &args.arch;
    let mut out = Vec::new();
    let mut differ = |flag: &'static str, was: String, given: String| out.push((flag, was, given));
    if let Some(spec) = &args.space {
        let given = described(spec, true)?;
        if !given.same(&record.space) {
            differ("--space", record.space.show(), given.show());
        }
    }
    if let Some(spec) = &a.substrate {
        let given = described(spec, false)?;
        if !given.same(&record.substrate) {
            differ("--substrate", record.substrate.show(), given.show());
        }
    }
    if !a.set.is_empty() && a.set != record.set {
        differ("--set", format!("{:?}", record.set), format!("{:?}", a.set));
    }
    let numbers = [
        ("--prompt", a.prompt, record.prompt),
        ("--gen", a.generate, record.generate),
        ("--batch", a.batch, record.batch),
    ];
    for (flag, given, was) in numbers {
        if let Some(given) = given.filter(|g| *g != was) {
            differ(flag, was.to_string(), given.to_string());
        }
    }
    if let Some(engine) = a.engine.filter(|e| e.name() != record.engine) {
        differ("--engine", record.engine.clone(), engine.name().to_string());
    }
    if let Some(list) = &a.objectives {
        let given: Vec<String> = list.iter().map(|o| o.trim().to_string()).collect();
        if given != record.objectives {
            differ("--objectives", record.objectives.join(","), given.join(","));
        }
    }
    if !a.constraints.is_empty() {
        let parse = |list: &[String]| -> miette::Result<Vec<Budget>> {
            list.iter()
                .map(|c| Budget::parse(c).map_err(|e| miette!("--constraint: {e}")))
                .collect()
        };
        let same = parse(&a.constraints)?
            .iter()
            .zip(parse(&record.constraints)?.iter())
            .all(|(x, y)| x.terms == y.terms && x.cmp == y.cmp && x.limit == y.limit);
        if !same || a.constraints.len() != record.constraints.len() {
            differ(
                "--constraint",
                record.constraints.join(" "),
                a.constraints.join(" "),
            );
        }
    }
    if let Some(spec) = &a.quality.quality {
        let given = quality_source(spec)?;
        if !given.same(&record.quality) {
            differ("--quality", record.quality.show(), given.show());
        }
    }
    let floats = [
        (
            "--tokens-per-param",
            a.quality.tokens_per_param,
            record.tokens_per_param,
        ),
        ("--beta", a.beta, record.beta),
    ];
    for (flag, given, was) in floats {
        if let Some(given) = given.filter(|g| *g != was) {
            differ(flag, was.to_string(), given.to_string());
        }
    }
    let counts = [
        ("--population", args.population, settings.population),
        ("--offspring", args.offspring, settings.offspring),
    ];
    for (flag, given, was) in counts {
        if let Some(given) = given.filter(|g| *g != was) {
            differ(flag, was.to_string(), given.to_string());
        }
    }
    if let Some(seed) = args.seed.filter(|s| *s != settings.seed) {
        differ("--seed", settings.seed.to_string(), seed.to_string());
    }
    if let Some(t) = args
        .truncation
        .map(truncation)
        .filter(|t| *t != settings.truncation)
    {
        differ(
            "--truncation",
            format!("{:?}", settings.truncation),
            format!("{t:?}"),
        );
    }
    Ok(out)
}

/// The search problem a record describes. Each description is read again, and must still have
/// the contents the record hashed.
fn build(record: &ProblemRecord) -> miette::Result<ArchProblem> {
    let changed = |what: &str, was: &Source, now: &Source| {
        miette!(
            "the {what} {} has changed since the run started (it was {}, it is now {}); a run resumes only on the inputs it started with",
            was.spec,
            was.sha256.as_deref().map_or("built in", short),
            now.sha256.as_deref().map_or("built in", short),
        )
    };
    let space_now = described(&record.space.spec, true)?;
    if !space_now.same(&record.space) {
        return Err(changed("search space", &record.space, &space_now));
    }
    let substrate_now = described(&record.substrate.spec, false)?;
    if !substrate_now.same(&record.substrate) {
        return Err(changed("substrate", &record.substrate, &substrate_now));
    }
    let quality_now = quality_source(&record.quality.spec)?;
    if !quality_now.same(&record.quality) {
        return Err(changed("quality model", &record.quality, &quality_now));
    }
    let objectives = record
        .objectives
        .iter()
        .map(|o| metric(o))
        .collect::<miette::Result<Vec<_>>>()?;
    if objectives.is_empty() {
        return Err(miette!("--objectives needs at least one objective"));
    }
    let constraints = record
        .constraints
        .iter()
        .map(|c| Budget::parse(c).map_err(|e| miette!("--constraint: {e}")))
        .collect::<miette::Result<Vec<_>>>()?;
    let space = space::load(&record.space.spec)?;
    let substrate = super::substrate::load(&record.substrate.spec, &record.set)?;
    super::sim::check_formats(
        &format!("space `{}`", space.name),
        &substrate,
        &space.weights,
        space.activations,
        space.kv_cache,
    )?;
    let workload = super::sim::workload(record.prompt, record.generate, record.batch)?;
    Ok(ArchProblem {
        space,
        layer_cache: ArchProblem::cache_for(&substrate, workload),
        substrate,
        workload,
        engine: match record.engine.as_str() {
            "roofline" => Engine::Roofline,
            "sim" => Engine::Sim,
            other => return Err(miette!("unknown engine `{other}` in the checkpoint")),
        },
        objectives,
        constraints,
        loss: super::load_quality(&record.quality.spec, record.tokens_per_param)?,
        beta: record.beta,
    })
}

/// The problem's input files (and shipped descriptions, by the hash of their text).
fn register_inputs(plan: &mut Outputs, record: &ProblemRecord) -> miette::Result<()> {
    let spaces = (space::SHIPPED, "dsl/spaces", "search space");
    let substrates = (llmforge::substrate::SHIPPED, "substrates", "substrate");
    for (flag, spec, (shipped, dir, kind)) in [
        ("--space", &record.space.spec, spaces),
        ("--substrate", &record.substrate.spec, substrates),
    ] {
        super::register_description(plan, flag, spec, shipped, dir, kind)?;
    }
    plan.input("--quality", &record.quality.spec);
    Ok(())
}

/// Reads `DIR/checkpoint.json` and checks it against the flags given and the manifest.
fn restore(args: &SearchArgs, run: &RunDir) -> miette::Result<State> {
    let path = run.join("checkpoint.json");
    if !path.exists() {
        return Err(miette!(
            "--resume {}: no checkpoint.json there, nothing to resume",
            run.path().display()
        ));
    }
    let state: State = output::load_json(&path, "checkpoint").into_diagnostic()?;
    if let Some(manifest) = run.previous() {
        let recorded = serde_json::to_value(&state.problem).into_diagnostic()?;
        if manifest.settings.get("problem") != Some(&recorded) {
            return Err(miette!(
                "{}: the checkpoint's problem is not the one {} records; refusing to resume from a mixed run directory",
                path.display(),
                run.join(output::MANIFEST).display()
            ));
        }
    }
    let differences = differences(args, &state.problem, &state.engine.settings)?;
    if !differences.is_empty() {
        let mut text = format!(
            "cannot resume {}: these flags differ from the run's checkpoint",
            run.path().display()
        );
        for (flag, was, given) in &differences {
            let _ = write!(
                text,
                "\n  {flag}: the checkpoint has {was}, the command line {given}"
            );
        }
        return Err(miette!(
            help = "leave these flags out to continue with the checkpoint's values, or start a new run with another --out",
            "{text}"
        ));
    }
    let rows = state.history.as_ref().map(|h| h.rows.len());
    if let Some(rows) = rows.filter(|r| *r != state.engine.completed_batches) {
        return Err(miette!(
            "{}: the history has {rows} rows but the engine completed {} generations",
            path.display(),
            state.engine.completed_batches
        ));
    }
    Ok(state)
}

pub fn run_space(args: &SearchArgs) -> miette::Result<()> {
    let a = &args.arch;
    let dir: Option<&Path> = match (&a.resume, &args.out) {
        (Some(resume), Some(out))
            if std::fs::canonicalize(resume).ok() != std::fs::canonicalize(out).ok() =>
        {
            return Err(miette!(
                "--resume {} continues the run in its own directory; leave out --out {}",
                resume.display(),
                out.display()
            ));
        }
        (Some(resume), _) => Some(resume),
        (None, out) => out.as_deref(),
    };
    let mut plan = Outputs::new();
    let (run, state, record, problem) = match (dir, a.resume.is_some()) {
        (Some(dir), true) => {
            if !dir.is_dir() {
                return Err(miette!(
                    "--resume {}: no such directory, nothing to resume",
                    dir.display()
                ));
            }
            let run = RunDir::open("--resume", dir, Reuse::Resume, OUTPUTS).into_diagnostic()?;
            let state = restore(args, &run)?;
            let record = state.problem.clone();
            register_inputs(&mut plan, &record)?;
            plan.dir("--resume", dir, OUTPUTS).check().into_diagnostic()?;
            let problem = build(&record)?;
            (Some(run), Some(state), record, problem)
        }
        (dir, _) => {
            let record = fresh_record(args)?;
            let problem = build(&record)?;
            let run = match dir {
                Some(dir) => {
                    register_inputs(&mut plan, &record)?;
                    plan.dir("--out", dir, OUTPUTS).check().into_diagnostic()?;
                    let reuse = if args.force { Reuse::Force } else { Reuse::Fresh };
                    Some(RunDir::open("--out", dir, reuse, OUTPUTS).into_diagnostic()?)
                }
                None => None,
            };
            (run, None, record, problem)
        }
    };

    let (mut engine, mut history) = match state {
        Some(mut state) => {
            // A killed run resumes to its own end; `--generations` may extend a finished one.
            if let Some(g) = args.generations {
                state.engine.settings.generations = g;
            }
            (
                Nsga2::resume(&problem, state.engine)
                    .into_diagnostic()
                    .wrap_err_with(|| {
                        let path = run.as_ref().map(|r| r.join("checkpoint.json"));
                        format!("{} does not hold up", path.unwrap_or_default().display())
                    })?,
                state.history,
            )
        }
        None => (
            Nsga2::new(&problem, fresh_settings(args)).into_diagnostic()?,
            None,
        ),
    };
    if a.report && run.is_none() {
        return Err(miette!("--report needs an output directory: --out DIR"));
    }
    // from here on, SIGINT / SIGTERM stop the search after the generation in flight
    let cooperation = interrupt::cooperate();
    let mut manifest = match run.as_ref().and_then(|r| r.previous()) {
        Some(previous) => {
            let mut m = previous.clone();
            m.resumed_by.push(output::command_line());
            m
        }
        None => Manifest::new(serde_json::Value::Null, plan.records().into_diagnostic()?),
    };
    manifest.status = Status::Running;
    manifest.settings = serde_json::json!({"problem": record, "nsga2": engine.settings()});
    manifest.outputs = vec!["checkpoint.json".into()];
    if let Some(run) = &run {
        run.write_manifest(&manifest).into_diagnostic()?;
    }

    let started = Instant::now();
    let generations = engine.settings().generations;
    // generation 0 (the initial population) and `generations` more; a resumed run counts
    // from where its checkpoint ended
    let (first, evaluated) = (engine.next_generation() as u64, engine.evaluations());
    let progress = Progress::start(
        &format!("search {} on {}", problem.space.name, problem.substrate.name),
        (generations as u64 + 1).saturating_sub(first),
        "generations",
    )
    .counting("evaluations");
    let (mut tally, mut tallied) = (LossTally::default(), 0);
    let mut checkpoint_bytes = CheckpointBytes::default();
    while !engine.is_done() && !cooperation.stopping() {
        let report = engine.step().into_diagnostic()?;
        // Hypervolume reference: 1.05 x the per-objective maximum over generation 0's
        // non-screened members (the LLMForge setting; screened members carry placeholders).
        let h = history
            .get_or_insert_with(|| History::new(ReferencePoint::Fixed(reference(engine.population()))));
        let row = h.record(&engine, &report).into_diagnostic()?.clone();
        search_front::tally_new(&problem, engine.archive(), &mut tallied, &mut tally);
        if problem.loss.domain().is_some() {
            h.set_out_of_domain(tally.outside);
        }
        if let Some(run) = &run {
            // Compact JSON: the evaluation cache in it grows every generation, and written
            // pretty (22.5 MB after the 40 generations of the LLMForge setting) it cost a run
            // with --out more CPU than its evaluations.
            let mut bytes = checkpoint_bytes
                .build(&record, &engine, &history)
                .into_diagnostic()?;
            bytes.push(b'\n');
            output::write_atomic(&run.join("checkpoint.json"), &bytes).into_diagnostic()?;
        }
        progress.update(
            engine.next_generation() as u64 - first,
            row.evaluations - evaluated,
            &format!("front {}, hypervolume {:.4e}", row.front_size, row.hypervolume),
        );
    }
    progress.finish();
    if cooperation.stopping() && !engine.is_done() {
        let done = engine.next_generation().saturating_sub(1);
        match &run {
            Some(run) => {
                manifest.status = Status::Interrupted;
                run.write_manifest(&manifest).into_diagnostic()?;
                eprintln!(
                    "stopped after generation {done} of {generations}; the checkpoint is current: `llmforge search --resume {}` continues the run",
                    run.path().display()
                );
            }
            None => eprintln!("stopped after generation {done} of {generations}; nothing written (no --out)"),
        }
        return Ok(());
    }
    drop(cooperation);
    let wall = started.elapsed().as_secs_f64();
    // a resumed run that was already finished steps no generation: count its archive now
    search_front::tally_new(&problem, engine.archive(), &mut tallied, &mut tally);

    let objectives = &problem.objectives;
    let mut front: Vec<Individual<Genome>> = engine.pareto_front().into_iter().cloned().collect();
    front.sort_by(|x, y| lexicographic(&x.evaluation.objectives, &y.evaluation.objectives));
    let names: Vec<&str> = objectives.iter().map(|m| m.name()).collect();
    let csv = pareto_csv(&problem, &names, &front);
    if let Some(run) = &run {
        let write =
            |name: &str, text: &str| output::write_atomic(&run.join(name), text.as_bytes()).into_diagnostic();
        write("pareto.csv", &csv)?;
        manifest.outputs.push("pareto.csv".into());
        if let Some(h) = &history {
            write("history.csv", &h.to_csv())?;
            manifest.outputs.push("history.csv".into());
        }
        let svg = pareto_svg(&problem, &names, engine.archive(), &front)?;
        write("pareto.svg", &svg)?;
        manifest.outputs.push("pareto.svg".into());
        // a resumed run's front may be smaller than the last one written
        run.clear(&MODELS).into_diagnostic()?;
        run.create_folder("models").into_diagnostic()?;
        for (k, ind) in front.iter().enumerate() {
            let m = problem
                .space
                .model(&ind.genome, &format!("{}-pareto-{k}", problem.space.name));
            let name = format!("models/pareto-{k}.yaml");
            write(&name, &desc::to_yaml(&m))?;
            manifest.outputs.push(name);
        }
        if a.report {
            super::report::write(run.path())?;
            manifest.outputs.push("report.html".into());
        }
        manifest.status = Status::Complete;
        run.write_manifest(&manifest).into_diagnostic()?;
    }
    match args.format {
        OutputFormat::Json => {
            let rows: Vec<serde_json::Value> = front
                .iter()
                .map(|i| {
                    let space = &problem.space;
                    let precision = llmforge::model::Precisions {
                        weights: space.weights[i.genome.weights],
                        activations: space.activations,
                        kv_cache: space.kv_cache,
                    };
                    serde_json::json!({"objectives": i.evaluation.objectives, "violation": i.evaluation.violation, "genome": i.genome, "precision": precision})
                })
                .collect();
            let j = serde_json::json!({
                "space": problem.space.name, "substrate": problem.substrate.name, "objectives": names,
                "evaluations": engine.evaluations(), "cache_hits": engine.cache_hits(), "layer_cache": {"hits": problem.layer_cache.stats().hits, "misses": problem.layer_cache.stats().misses}, "wall_time_s": wall,
                "hypervolume": history.as_ref().and_then(|h| h.rows.last()).map(|r| r.hypervolume),
                "loss_model": problem.loss.name(), "scored_by": tally.scored,
                "out_of_domain": problem.loss.domain().map(|_| serde_json::json!({"total": tally.outside, "by": tally.outside_by})),
                "feasibility": "meets every constraint and fits the substrate's memory (weights + KV cache at the workload)",
                "memory_capacity_bytes": problem.substrate.memory_capacity().get(),
                "front": rows,
            });
            let meta = llmforge::trace::JsonMeta::cost(
                problem.engine.name(),
                Some(llmforge::trace::PrecisionMeta::PerRow),
            );
            print!("{}", llmforge::trace::json_document(&meta, &j).into_diagnostic()?);
        }
        OutputFormat::Table => {
            let run_text = format!(
                "{} evaluations ({} cache hits) in {wall:.2} s; front of {}",
                engine.evaluations(),
                engine.cache_hits(),
                front.len()
            );
            print!("{}", search_front::header(&problem, &tally, &run_text));
            print!("{}", search_front::front_table(&problem, objectives, &front));
            match &run {
                Some(run) => println!(
                    "wrote {}/{{pareto.csv, history.csv, pareto.svg, models/}}: every layer's genes in pareto.csv (layer_genes), the model of row # in models/pareto-#.yaml",
                    run.path().display()
                ),
                None => println!("per-layer genes and model files: add --out DIR"),
            }
        }
    }
    Ok(())
}

fn reference(population: &[Individual<Genome>]) -> Vec<f64> {
    let n = population.first().map_or(0, |i| i.evaluation.objectives.len());
    let mut max = vec![0.0f64; n];
    for ind in population {
        for (m, v) in max.iter_mut().zip(&ind.evaluation.objectives) {
            if *v < SCREENED {
                *m = m.max(*v);
            }
        }
    }
    max.iter().map(|m| m * 1.05).collect()
}

/// One row per front member: objectives, feasibility, the loss model's prediction (`loss_mu`,
/// `loss_sigma`: the `loss` objective is `loss_mu - beta * loss_sigma`), which model made it
/// (`loss_model`) and, for a candidate outside the surrogate's training domain, the first
/// quantity that left it (`out_of_domain`, empty inside), then the architecture.
fn pareto_csv(problem: &ArchProblem, names: &[&str], front: &[Individual<Genome>]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "rank,{},feasible,violation,loss_mu,loss_sigma,loss_model,out_of_domain,d_model,layers,attention_layers,weights,params,layer_genes",
        names.join(",")
    );
    for (k, ind) in front.iter().enumerate() {
        let g = &ind.genome;
        let objectives: Vec<String> = ind
            .evaluation
            .objectives
            .iter()
            .map(|v| format!("{v:?}"))
            .collect();
        let genes: Vec<String> = g
            .active()
            .map(|l| {
                let attn = if l.attention {
                    format!("{}h{}g{}q{}v", l.heads, l.kv_groups, l.d_qk, l.d_v)
                } else {
                    "none".into()
                };
                let moe = if l.experts > 1 {
                    format!("x{}a{}", l.experts, l.active_experts)
                } else {
                    String::new()
                };
                format!("{attn}/{}{moe}", l.ffn)
            })
            .collect();
        let m = problem.space.model(g, "x");
        let loss = problem.loss.predict(&m);
        let _ = writeln!(
            text,
            "{k},{},{},{:?},{:?},{:?},{},{},{},{},{},{},{},{}",
            objectives.join(","),
            ind.evaluation.violation == 0.0,
            ind.evaluation.violation,
            loss.mu,
            loss.sigma,
            loss.scorer.name(),
            loss.outside.map_or(String::new(), |o| o.to_string()),
            g.d_model,
            m.n_layers(),
            m.n_attention_layers(),
            m.precision.weights,
            llmforge::model::accounting::params(&m).total,
            genes.join(" ")
        );
    }
    text
}

/// The scatter matrix of every pair of objectives: every evaluated candidate faint, the
/// front bold. Screened candidates (placeholder objectives) are left out.
fn pareto_svg(
    problem: &ArchProblem,
    names: &[&str],
    archive: &[Individual<Genome>],
    front: &[Individual<Genome>],
) -> miette::Result<String> {
    let real = |o: &[f64]| o.iter().all(|v| *v < SCREENED && v.is_finite());
    let plot = ParetoPlot {
        title: format!(
            "Pareto front: {} on {} ({} evaluated)",
            problem.space.name,
            problem.substrate.name,
            archive.len()
        ),
        objectives: names.iter().map(|n| n.to_string()).collect(),
        evaluated: archive
            .iter()
            .filter(|i| real(&i.evaluation.objectives))
            .map(|i| (i.evaluation.objectives.clone(), i.evaluation.is_feasible()))
            .collect(),
        front: front
            .iter()
            .filter(|i| real(&i.evaluation.objectives))
            .map(|i| i.evaluation.objectives.clone())
            .collect(),
    };
    llmforge::trace::plot::pareto_svg(&plot).into_diagnostic()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmforge::search::nsga2::{Evaluation, Problem};
    use rand::{Rng, RngExt as _};

    /// Two objectives over a pair of grid points, so genomes repeat and the cache has hits.
    struct Toy;

    impl Problem for Toy {
        type Genome = Vec<u32>;
        type Key = Vec<u32>;
        type Error = std::convert::Infallible;
        fn n_objectives(&self) -> usize {
            2
        }
        fn key(&self, genome: &Vec<u32>) -> Vec<u32> {
            genome.clone()
        }
        fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u32> {
            vec![rng.random_range(0..16), rng.random_range(0..16)]
        }
        fn crossover<R: Rng + ?Sized>(&self, a: &Vec<u32>, b: &Vec<u32>, _: &mut R) -> (Vec<u32>, Vec<u32>) {
            (vec![a[0], b[1]], vec![b[0], a[1]])
        }
        fn mutate<R: Rng + ?Sized>(&self, genome: &mut Vec<u32>, rng: &mut R) {
            genome[rng.random_range(0..2)] = rng.random_range(0..16);
        }
        fn repair(&self, _: &mut Vec<u32>) {}
        fn evaluate(&self, g: &Vec<u32>) -> Result<Evaluation, Self::Error> {
            let (x, y) = (g[0] as f64 / 15.0, g[1] as f64 / 15.0);
            Ok(Evaluation {
                objectives: vec![x, (1.0 + y) * (1.0 - x.sqrt()) + 0.1],
                violation: if y > 0.9 { y - 0.9 } else { 0.0 },
            })
        }
    }

    #[test]
    fn checkpoint_bytes_equal_the_whole_state_serialised_at_every_generation() {
        let settings = Settings {
            population: 8,
            offspring: 8,
            generations: 6,
            crossover_prob: 0.6,
            mutation_prob: 0.3,
            seed: 3,
            eliminate_duplicates: true,
            truncation: Truncation::IterativeCrowding,
        };
        let problem = Toy;
        let record = vec!["a record".to_string(), "with \"quotes\"".to_string()];
        let mut engine = Nsga2::new(&problem, settings).unwrap();
        let mut bytes = CheckpointBytes::default();
        let mut history: Option<History> = None;
        // before any generation: an empty cache, no history
        let whole = |engine: &Nsga2<'_, Toy>, history: &Option<History>| {
            serde_json::to_vec(&State {
                problem: record.clone(),
                engine: engine.checkpoint(CacheInCheckpoint::Include),
                history: history.clone(),
            })
            .unwrap()
        };
        assert_eq!(
            bytes.build(&record, &engine, &history).unwrap(),
            whole(&engine, &history)
        );
        while !engine.is_done() {
            let report = engine.step().unwrap();
            let h = history.get_or_insert_with(|| History::new(ReferencePoint::Fixed(vec![2.0, 3.0])));
            h.record(&engine, &report).unwrap();
            assert_eq!(
                bytes.build(&record, &engine, &history).unwrap(),
                whole(&engine, &history)
            );
        }
        assert!(bytes.entries > 8, "the cache grew over the run");
        // a writer handed another, shorter run starts over
        let fresh = Nsga2::new(&problem, engine.settings().clone()).unwrap();
        assert_eq!(bytes.build(&record, &fresh, &None).unwrap(), whole(&fresh, &None));
    }
}
