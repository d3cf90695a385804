//! `llmforge search --space <SPACE> --substrate <SUB> ...`: the architecture search.
//!
//! Every generation the engine state and the history are checkpointed (atomically) to
//! `<out>/checkpoint.json`; `--resume <DIR>` continues from it and reaches the same result as an
//! uninterrupted run. Results: `pareto.csv`, `history.csv`, `pareto.svg`, and the front's
//! models as model YAML files under `models/` (loadable by `sim`).

use super::search::{OutputFormat, SearchArgs, TruncationName, lexicographic};
use super::search_front;
use clap::{Args, ValueEnum};
use llmforge::model::desc;
use llmforge::quality::LossTally;
use llmforge::search::arch::{ArchProblem, SCREENED};
use llmforge::search::history::{History, ReferencePoint};
use llmforge::search::nsga2::{CacheInCheckpoint, Checkpoint, Individual, Nsga2, Settings, Truncation};
use llmforge::search::persist::{load_json, save_json, write_atomic};
use llmforge::search::space::{self, Genome};
use llmforge::sim::Engine;
use llmforge::sweep::budget::{Budget, Metric};
use llmforge::trace::plot::ParetoPlot;
use miette::{IntoDiagnostic, WrapErr, miette};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct ArchArgs {
    /// Substrate to cost candidates on (shipped name or file).
    #[arg(long)]
    pub substrate: Option<String>,
    /// Override substrate fields: `--set dram.read="8 B/cycle"`.
    #[arg(long = "set", value_name = "PATH=EXPR")]
    pub set: Vec<String>,
    /// Objectives, all minimised: loss, ttft, tpot, latency, energy, params, weights, kv.
    #[arg(long, value_delimiter = ',', default_value = "loss,ttft,tpot,energy")]
    pub objectives: Vec<String>,
    /// Constraints, e.g. `loss<=3.8`, `ttft<=50ms`, `weights+kv<=8GB` (repeatable).
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
    #[command(flatten)]
    pub quality: super::QualityArgs,
    /// Optimism of the loss objective: mu - beta * sigma.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    #[arg(long, default_value_t = 256, allow_negative_numbers = true)]
    pub prompt: u64,
    #[arg(long = "gen", default_value_t = 256, allow_negative_numbers = true)]
    pub generate: u64,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub batch: u64,
    #[arg(long, value_enum, default_value_t = EngineName::Sim)]
    pub engine: EngineName,
    /// Continue the run checkpointed in this directory (its settings are reused).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Also write report.html into the output directory (`llmforge report DIR` does the same).
    #[arg(long)]
    pub report: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EngineName {
    Sim,
    Roofline,
}

/// What is checkpointed after every generation.
#[derive(Serialize, Deserialize)]
struct State {
    engine: Checkpoint<Genome>,
    history: Option<History>,
}

fn metric(name: &str) -> miette::Result<Metric> {
    Metric::ALL
        .iter()
        .copied()
        .find(|m| m.name() == name.trim())
        .ok_or_else(|| miette!("unknown objective `{name}`: expected loss, ttft, tpot, latency, energy, params, weights or kv"))
}

pub fn run_space(space_spec: &str, args: &SearchArgs) -> miette::Result<()> {
    let a = &args.arch;
    let sub_spec = a
        .substrate
        .as_deref()
        .ok_or_else(|| miette!("--space needs --substrate"))?;
    if !(a.beta.is_finite() && a.beta >= 0.0) {
        return Err(miette!(
            "--beta {}: expected a finite optimism of at least 0",
            a.beta
        ));
    }
    let substrate = super::substrate::load(sub_spec, &a.set)?;
    let space = space::load(space_spec)?;
    let workload = super::sim::workload(a.prompt, a.generate, a.batch)?;
    let objectives = a
        .objectives
        .iter()
        .map(|o| metric(o))
        .collect::<miette::Result<Vec<_>>>()?;
    if objectives.is_empty() {
        return Err(miette!("--objectives needs at least one objective"));
    }
    let constraints = a
        .constraints
        .iter()
        .map(|c| Budget::parse(c).map_err(|e| miette!("--constraint: {e}")))
        .collect::<miette::Result<Vec<_>>>()?;
    let problem = ArchProblem {
        space,
        substrate,
        workload,
        engine: match a.engine {
            EngineName::Sim => Engine::Sim,
            EngineName::Roofline => Engine::Roofline,
        },
        objectives: objectives.clone(),
        constraints,
        loss: a.quality.load()?,
        beta: a.beta,
    };

    let (mut engine, mut history) = match &a.resume {
        Some(dir) => {
            let mut state: State = load_json(&dir.join("checkpoint.json"), "checkpoint").into_diagnostic()?;
            // A killed run resumes to its own end; `--generations` may extend a finished one.
            if let Some(g) = args.generations {
                state.engine.settings.generations = g;
            }
            (
                Nsga2::resume(&problem, state.engine).into_diagnostic()?,
                state.history,
            )
        }
        None => {
            let population = args.population.unwrap_or(24);
            let settings = Settings {
                population,
                offspring: args.offspring.unwrap_or(48),
                generations: args.generations.unwrap_or(40),
                crossover_prob: 0.6,
                mutation_prob: 0.3,
                seed: args.seed,
                eliminate_duplicates: true,
                truncation: match args.truncation {
                    TruncationName::Crowding => Truncation::Crowding,
                    TruncationName::IterativeCrowding => Truncation::IterativeCrowding,
                },
            };
            (Nsga2::new(&problem, settings).into_diagnostic()?, None)
        }
    };
    let out = args.out.clone().or_else(|| a.resume.clone());
    if a.report && out.is_none() {
        return Err(miette!("--report needs an output directory: --out DIR"));
    }
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir.join("models"))
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot create output directory {}", dir.display()))?;
    }
    let progress = args.format == OutputFormat::Table && std::io::stderr().is_terminal();
    let started = Instant::now();
    let generations = engine.settings().generations;
    let (mut tally, mut tallied) = (LossTally::default(), 0);
    while !engine.is_done() {
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
        if let Some(dir) = &out {
            let state = State {
                engine: engine.checkpoint(CacheInCheckpoint::Include),
                history: history.clone(),
            };
            save_json(&dir.join("checkpoint.json"), "checkpoint", &state).into_diagnostic()?;
        }
        if progress {
            eprint!(
                "\rgeneration {:>3}/{generations}  evaluations {:>6}  front {:>3}  hypervolume {:.4e}",
                row.generation, row.evaluations, row.front_size, row.hypervolume
            );
        }
    }
    if progress {
        eprintln!();
    }
    let wall = started.elapsed().as_secs_f64();
    // a resumed run that was already finished steps no generation: count its archive now
    search_front::tally_new(&problem, engine.archive(), &mut tallied, &mut tally);

    let mut front: Vec<Individual<Genome>> = engine.pareto_front().into_iter().cloned().collect();
    front.sort_by(|x, y| lexicographic(&x.evaluation.objectives, &y.evaluation.objectives));
    let names: Vec<&str> = objectives.iter().map(|m| m.name()).collect();
    let csv = pareto_csv(&problem, &names, &front);
    if let Some(dir) = &out {
        write_atomic(&dir.join("pareto.csv"), csv.as_bytes()).into_diagnostic()?;
        if let Some(h) = &history {
            write_atomic(&dir.join("history.csv"), h.to_csv().as_bytes()).into_diagnostic()?;
        }
        let svg = pareto_svg(&problem, &names, engine.archive(), &front)?;
        write_atomic(&dir.join("pareto.svg"), svg.as_bytes()).into_diagnostic()?;
        for (k, ind) in front.iter().enumerate() {
            let m = problem
                .space
                .model(&ind.genome, &format!("{}-pareto-{k}", problem.space.name));
            write_atomic(
                &dir.join("models").join(format!("pareto-{k}.yaml")),
                desc::to_yaml(&m).as_bytes(),
            )
            .into_diagnostic()?;
        }
        if a.report {
            super::report::write(dir)?;
        }
    }
    match args.format {
        OutputFormat::Json => {
            let rows: Vec<serde_json::Value> = front
                .iter()
                .map(|i| serde_json::json!({"objectives": i.evaluation.objectives, "violation": i.evaluation.violation, "genome": i.genome}))
                .collect();
            let j = serde_json::json!({
                "space": problem.space.name, "substrate": problem.substrate.name, "objectives": names,
                "evaluations": engine.evaluations(), "cache_hits": engine.cache_hits(), "wall_time_s": wall,
                "hypervolume": history.as_ref().and_then(|h| h.rows.last()).map(|r| r.hypervolume),
                "loss_model": problem.loss.name(), "scored_by": tally.scored,
                "out_of_domain": problem.loss.domain().map(|_| serde_json::json!({"total": tally.outside, "by": tally.outside_by})),
                "feasibility": "meets every constraint and fits the substrate's memory (weights + KV cache at the workload)",
                "memory_capacity_bytes": problem.substrate.memory_capacity().get(),
                "front": rows,
            });
            println!("{}", serde_json::to_string_pretty(&j).into_diagnostic()?);
        }
        OutputFormat::Table => {
            let run = format!(
                "{} evaluations ({} cache hits) in {wall:.2} s; front of {}",
                engine.evaluations(),
                engine.cache_hits(),
                front.len()
            );
            print!("{}", search_front::header(&problem, &tally, &run));
            print!("{}", search_front::front_table(&problem, &objectives, &front));
            match &out {
                Some(dir) => println!(
                    "wrote {}/{{pareto.csv, history.csv, pareto.svg, models/}}: every layer's genes in pareto.csv (layer_genes), the model of row # in models/pareto-#.yaml",
                    dir.display()
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
