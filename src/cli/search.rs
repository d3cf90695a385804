//! `llmforge search ...`: multi-objective search with the NSGA-II engine.
//!
//! The search target is one of a group of alternatives: `--problem` runs a standard
//! benchmark (ZDT1-3, DTLZ2) to check the optimiser against its known Pareto front; the
//! architecture search (`--space ... --substrate ...`) joins the same `target` group and gets
//! its own `run_*` function next to [`run_problem`].

use clap::{ArgGroup, Args, ValueEnum};
use llmforge::output::{Manifest, Outputs, Owned, Reuse, RunDir, Status, write_atomic};
use llmforge::search::history::{History, ReferencePoint};
use llmforge::search::nsga2::{Nsga2, Problem, Settings, Truncation};
use llmforge::search::problems::{Benchmark, BenchmarkProblem};
use miette::{IntoDiagnostic, miette};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).multiple(true)))]
pub struct SearchArgs {
    /// Optimise a standard benchmark problem (checks the optimiser against a known front).
    #[arg(long, value_enum, group = "target", conflicts_with_all = ["space", "resume"])]
    pub problem: Option<ProblemName>,
    /// Search an architecture space: a shipped name (llmforge-200m, smollm2-360m-seeded,
    /// smollm2-135m-seeded, edge-moe) or a space file.
    #[arg(long, group = "target")]
    pub space: Option<String>,
    #[command(flatten)]
    pub arch: super::search_arch::ArchArgs,
    /// Individuals kept each generation (mu) [default: 100 for --problem, 24 for --space].
    #[arg(long)]
    pub population: Option<usize>,
    /// Generations after the initial population [default: 250 for --problem, 40 for --space].
    #[arg(long)]
    pub generations: Option<usize>,
    /// Offspring per generation (lambda) [default: the population size for --problem, 48 for
    /// --space].
    #[arg(long)]
    pub offspring: Option<usize>,
    /// Seed of every random choice [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// How the last front that does not fit is cut: one crowding-distance pass (Deb 2002, as
    /// pymoo), or removing the most crowded member and recomputing (Kukkonen and Deb 2006)
    /// [default: iterative-crowding].
    #[arg(long, value_enum)]
    pub truncation: Option<TruncationName>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Cache evaluations by genome (off for the real-valued benchmarks, whose genomes do not
    /// repeat: hashing and storing them costs more than evaluating).
    #[arg(long)]
    pub cache: bool,
    /// Run directory for the results (created if missing; files written atomically, with a
    /// manifest.json). A directory holding an earlier run's results is refused unless --force.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the results of an earlier run in --out (they are removed first).
    #[arg(long, requires = "out", conflicts_with = "resume")]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProblemName {
    Zdt1,
    Zdt2,
    Zdt3,
    Dtlz2,
}

impl ProblemName {
    fn benchmark(self) -> Benchmark {
        match self {
            ProblemName::Zdt1 => Benchmark::Zdt1,
            ProblemName::Zdt2 => Benchmark::Zdt2,
            ProblemName::Zdt3 => Benchmark::Zdt3,
            ProblemName::Dtlz2 => Benchmark::Dtlz2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TruncationName {
    Crowding,
    IterativeCrowding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

pub fn run(args: SearchArgs) -> miette::Result<()> {
    check_sizes(&args)?;
    match &args.problem {
        Some(problem) => run_problem(problem.benchmark(), &args),
        None => super::search_arch::run_space(&args),
    }
}

/// The files of a benchmark search's run directory.
const OUTPUTS: &[Owned] = &[Owned::File("pareto.csv"), Owned::File("history.csv")];

/// `--population`, `--offspring` and `--generations` within their limits, the error naming
/// the flag (the engine checks the same limits on settings read back from a checkpoint).
fn check_sizes(args: &SearchArgs) -> miette::Result<()> {
    use llmforge::limits;
    for (flag, v, max) in [
        ("--population", args.population, limits::MAX_POPULATION),
        ("--offspring", args.offspring, limits::MAX_OFFSPRING),
        ("--generations", args.generations, limits::MAX_GENERATIONS),
    ] {
        if let Some(m) = v.and_then(|v| limits::above(&flag[2..], v as u64, max as u64)) {
            return Err(miette!("{flag}: {m} (see {})", limits::DOC));
        }
    }
    Ok(())
}

/// The benchmark reference point: 1.1 in every objective (the fronts lie in [0, 1]).
const BENCHMARK_REFERENCE: f64 = 1.1;

/// Runs NSGA-II with pymoo's default settings on a benchmark problem.
pub fn run_problem(benchmark: Benchmark, args: &SearchArgs) -> miette::Result<()> {
    let mut problem = BenchmarkProblem::standard(benchmark);
    problem.cache = args.cache;
    let population = args.population.unwrap_or(100);
    let settings = Settings {
        population,
        offspring: args.offspring.unwrap_or(population),
        generations: args.generations.unwrap_or(250),
        crossover_prob: 0.9,
        mutation_prob: 1.0,
        seed: args.seed.unwrap_or(42),
        eliminate_duplicates: true,
        truncation: match args.truncation.unwrap_or(TruncationName::IterativeCrowding) {
            TruncationName::Crowding => Truncation::Crowding,
            TruncationName::IterativeCrowding => Truncation::IterativeCrowding,
        },
    };
    let run = match &args.out {
        Some(dir) => {
            Outputs::new()
                .dir("--out", dir, OUTPUTS)
                .check()
                .into_diagnostic()?;
            let reuse = if args.force { Reuse::Force } else { Reuse::Fresh };
            let run = RunDir::open("--out", dir, reuse, OUTPUTS).into_diagnostic()?;
            let settings =
                serde_json::json!({"problem": benchmark.name(), "nsga2": &settings, "cache": args.cache});
            let manifest = Manifest::new(settings, Vec::new());
            run.write_manifest(&manifest).into_diagnostic()?;
            Some((run, manifest))
        }
        None => None,
    };
    let reference = vec![BENCHMARK_REFERENCE; benchmark.n_objectives()];
    let progress = args.format == OutputFormat::Table && std::io::stderr().is_terminal();
    let mut history =
        (args.out.is_some() || progress).then(|| History::new(ReferencePoint::Fixed(reference.clone())));

    let started = Instant::now();
    let mut engine = Nsga2::new(&problem, settings.clone()).into_diagnostic()?;
    while !engine.is_done() {
        let report = engine.step().into_diagnostic()?;
        if let Some(history) = history.as_mut() {
            let row = history.record(&engine, &report).into_diagnostic()?;
            if progress {
                eprint!(
                    "\rgeneration {:>4}/{}  hypervolume {:.6}  front {:>4}",
                    row.generation, settings.generations, row.hypervolume, row.front_size
                );
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    if progress {
        eprintln!();
    }

    let mut front: Vec<_> = engine.pareto_front().into_iter().cloned().collect();
    front.sort_by(|a, b| lexicographic(&a.evaluation.objectives, &b.evaluation.objectives));
    let objectives: Vec<&[f64]> = front.iter().map(|i| i.evaluation.objectives.as_slice()).collect();
    let volume = llmforge::search::hypervolume::hypervolume(&objectives, &reference).into_diagnostic()?;
    let ceiling = problem.front_hypervolume(&reference);

    if let Some((run, mut manifest)) = run {
        write_atomic(&run.join("pareto.csv"), pareto_csv(&problem, &front).as_bytes()).into_diagnostic()?;
        manifest.outputs.push("pareto.csv".into());
        if let Some(history) = &history {
            write_atomic(&run.join("history.csv"), history.to_csv().as_bytes()).into_diagnostic()?;
            manifest.outputs.push("history.csv".into());
        }
        manifest.status = Status::Complete;
        run.write_manifest(&manifest).into_diagnostic()?;
    }

    let summary = Summary {
        problem: benchmark.name(),
        variables: problem.n_variables(),
        objectives: problem.n_objectives(),
        settings: &settings,
        evaluations: engine.evaluations(),
        cache: problem.cache,
        cache_hits: engine.cache_hits(),
        front_size: front.len(),
        reference: &reference,
        hypervolume: volume,
        front_hypervolume: ceiling,
        wall_time_s: wall,
    };
    let mut stdout = std::io::stdout().lock();
    let text = match args.format {
        OutputFormat::Json => llmforge::trace::json_document(&llmforge::trace::JsonMeta::default(), &summary)
            .into_diagnostic()?,
        OutputFormat::Table => summary.table(args.out.as_deref()),
    };
    stdout.write_all(text.as_bytes()).into_diagnostic()?;
    Ok(())
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    problem: &'a str,
    variables: usize,
    objectives: usize,
    settings: &'a Settings,
    evaluations: u64,
    cache: bool,
    cache_hits: u64,
    front_size: usize,
    reference: &'a [f64],
    hypervolume: f64,
    /// Hypervolume of the whole true Pareto front at the same reference.
    front_hypervolume: Option<f64>,
    wall_time_s: f64,
}

impl Summary<'_> {
    fn table(&self, out: Option<&Path>) -> String {
        let s = self.settings;
        let reference: Vec<String> = self.reference.iter().map(|r| r.to_string()).collect();
        let mut text = String::new();
        let _ = writeln!(
            text,
            "problem       {} ({} variables, {} objectives)",
            self.problem, self.variables, self.objectives
        );
        let _ = writeln!(
            text,
            "settings      population {}, offspring {}, generations {}, crossover {}, mutation {}, seed {}",
            s.population, s.offspring, s.generations, s.crossover_prob, s.mutation_prob, s.seed
        );
        if self.cache {
            let _ = writeln!(
                text,
                "evaluations   {} ({} cache hits)",
                self.evaluations, self.cache_hits
            );
        } else {
            let _ = writeln!(text, "evaluations   {} (cache off)", self.evaluations);
        }
        let _ = writeln!(text, "front size    {}", self.front_size);
        let _ = write!(
            text,
            "hypervolume   {:.6} at reference ({})",
            self.hypervolume,
            reference.join(", ")
        );
        match self.front_hypervolume {
            Some(ceiling) => {
                let _ = writeln!(
                    text,
                    "; true front {ceiling:.6} ({:.2}%)",
                    100.0 * self.hypervolume / ceiling
                );
            }
            None => text.push('\n'),
        }
        let _ = writeln!(text, "wall time     {:.3} s", self.wall_time_s);
        if let Some(dir) = out {
            let _ = writeln!(
                text,
                "wrote         {}/pareto.csv, {}/history.csv",
                dir.display(),
                dir.display()
            );
        }
        text
    }
}

pub(crate) fn lexicographic(a: &[f64], b: &[f64]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// `f1..fm,x1..xn`, one row per front member, sorted by objectives; values in Rust's
/// shortest round-trip form, so the file reads back bit-exact.
fn pareto_csv(problem: &BenchmarkProblem, front: &[llmforge::search::nsga2::Individual<Vec<f64>>]) -> String {
    let mut header: Vec<String> = (1..=problem.n_objectives()).map(|k| format!("f{k}")).collect();
    header.extend((1..=problem.n_variables()).map(|k| format!("x{k}")));
    let mut text = header.join(",") + "\n";
    for individual in front {
        let row: Vec<String> = individual
            .evaluation
            .objectives
            .iter()
            .chain(&individual.genome)
            .map(|v| format!("{v:?}"))
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    text
}
