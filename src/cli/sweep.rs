//! `llmforge sweep`: the co-design sweep over a grid of architectures.

use clap::{Args, ValueEnum};
use llmforge::model;
use llmforge::output::{
    AtomicFile, Manifest, Outputs, Owned, Reuse, RunDir, Status, interrupt, write_atomic,
};
use llmforge::sim::Engine;
use llmforge::sweep::budget::{Budget, Metric, Metrics};
use llmforge::sweep::grid;
use llmforge::sweep::run::{Axis, Outcome, Row, SweepSpec, measure, sweep};
use llmforge::trace;
use llmforge::trace::plot::{FrontierPlot, Limit, RegionCell, RegionPlot};
use miette::{IntoDiagnostic, WrapErr, miette};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Args)]
pub struct SweepArgs {
    /// A sweep grid: shipped name (codesign-orin, codesign-10m, tiny) or a grid file.
    #[arg(long)]
    grid: String,
    #[arg(long)]
    substrate: String,
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
    /// Evaluate only shard i of N (`--shard 3/8`): a contiguous index range, for job arrays.
    #[arg(long)]
    shard: Option<String>,
    /// Run directory for the results (created if missing; files written atomically, with a
    /// manifest.json). A directory holding an earlier run's results is refused unless --force.
    #[arg(long)]
    out: PathBuf,
    /// Also write report.html into the output directory (`llmforge report DIR` does the same).
    #[arg(long)]
    report: bool,
    /// Replace the results of an earlier run in --out (they are removed first).
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineChoice {
    Roofline,
    Sim,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
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

/// The files of a sweep's run directory.
const OUTPUTS: &[Owned] = &[
    Owned::File("candidates.csv"),
    Owned::File("frontier.csv"),
    Owned::File("frontier.svg"),
    Owned::File("region.svg"),
    Owned::File("summary.md"),
    Owned::File("report.html"),
    Owned::Pattern {
        folder: "models",
        prefix: "frontier-",
        suffix: ".yaml",
    },
];
const FRONTIER_MODELS: Owned = OUTPUTS[6];

/// The sweep's settings after defaults, for the manifest.
fn settings(args: &SweepArgs) -> serde_json::Value {
    serde_json::json!({
        "grid": args.grid,
        "substrate": args.substrate,
        "set": args.set,
        "quality": args.quality.spec(),
        "tokens_per_param": args.quality.tokens_per_param(),
        "prompt": args.prompt,
        "gen": args.generate,
        "batch": args.batch,
        "budgets": args.budgets,
        "precision": args.precision,
        "engine": match args.engine {
            EngineChoice::Roofline => "roofline",
            EngineChoice::Sim => "sim",
            EngineChoice::Both => "both",
        },
        "x": args.x,
        "region": args.region,
        "reference": args.reference,
        "candidates": match args.candidates {
            Rows::All => "all",
            Rows::Feasible => "feasible",
            Rows::None => "none",
        },
        "shard": args.shard,
    })
}

fn shard(spec: &Option<String>, len: u64) -> miette::Result<std::ops::Range<u64>> {
    let Some(s) = spec else { return Ok(0..len) };
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| miette!("--shard `{s}`: expected i/N"))?;
    let (i, n): (u64, u64) = (
        i.trim().parse().into_diagnostic()?,
        n.trim().parse().into_diagnostic()?,
    );
    if n == 0 || i >= n {
        return Err(miette!("--shard {s}: need 0 <= i < N"));
    }
    Ok(len * i / n..len * (i + 1) / n)
}

pub fn run(args: SweepArgs) -> miette::Result<()> {
    let mut plan = Outputs::new();
    super::register_description(
        &mut plan,
        "--grid",
        &args.grid,
        grid::SHIPPED,
        "dsl/grids",
        "grid",
    )?;
    super::register_description(
        &mut plan,
        "--substrate",
        &args.substrate,
        llmforge::substrate::SHIPPED,
        "substrates",
        "substrate",
    )?;
    plan.input("--quality", args.quality.spec())
        .inputs("--reference", &args.reference)
        .dir("--out", &args.out, OUTPUTS)
        .check()
        .into_diagnostic()?;
    let reuse = if args.force { Reuse::Force } else { Reuse::Fresh };
    let mut g = grid::load(&args.grid)?;
    if !args.precision.is_empty() {
        let keep: Vec<model::Precision> = args
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
    let substrate = super::substrate::load(&args.substrate, &args.set)?;
    let loss = args.quality.load()?;
    let budgets: Vec<Budget> = args
        .budgets
        .iter()
        .map(|b| Budget::parse(b).map_err(|e| miette!("--budget: {e}")))
        .collect::<miette::Result<_>>()?;
    let x = Metric::ALL
        .iter()
        .copied()
        .find(|m| m.name() == args.x)
        .ok_or_else(|| miette!("--x `{}`: expected ttft, tpot or latency", args.x))?;
    if args.region.len() != 2 {
        return Err(miette!("--region takes two axes, e.g. depth,width"));
    }
    let axis = |s: &str| {
        Axis::parse(s).ok_or_else(|| miette!("--region axis `{s}`: expected depth, width, kv_heads, ffn_ratio, experts, active_experts or weights"))
    };
    let region = (axis(&args.region[0])?, axis(&args.region[1])?);
    let workload = super::sim::workload(args.prompt, args.generate, args.batch)?;
    let spec = SweepSpec {
        grid: &g,
        substrate: &substrate,
        workload,
        engine: if args.engine == EngineChoice::Sim {
            Engine::Sim
        } else {
            Engine::Roofline
        },
        both_engines: args.engine == EngineChoice::Both,
        loss: loss.as_ref(),
        budgets: &budgets,
        x,
        region,
    };
    let range = shard(&args.shard, g.len())?;
    // after the flags, so a bad flag is named first
    super::sim::check_formats(
        &format!("grid `{}`", g.name),
        &substrate,
        &g.weights,
        g.activations,
        g.kv_cache,
    )?;
    // from here on, SIGINT / SIGTERM stop the sweep after the chunk in flight
    let cooperation = interrupt::cooperate();
    let run = RunDir::open("--out", &args.out, reuse, OUTPUTS).into_diagnostic()?;
    let mut manifest = Manifest::new(settings(&args), plan.records().into_diagnostic()?);
    run.write_manifest(&manifest).into_diagnostic()?;

    // candidates.csv is streamed to a temporary file and renamed when complete (also after an
    // interruption: it then holds every candidate evaluated so far). A write error (a full
    // disk) stops the sweep after the chunk in flight.
    let mut csv = AtomicFile::create(&run.join("candidates.csv")).into_diagnostic()?;
    writeln!(csv, "{}", header(&budgets, spec.both_engines)).into_diagnostic()?;
    let halt = AtomicBool::new(cooperation.stopping());
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let total = range.end - range.start;
    let mut write_error = None;
    let mut done = 0u64;
    let chunk = chunk_size(total);
    let outcome = sweep(&spec, range.clone(), chunk, &halt, |rows, _| {
        done += chunk.min(total - done);
        for r in rows {
            if write_error.is_some() {
                break;
            }
            if args.candidates == Rows::All || (args.candidates == Rows::Feasible && r.feasible) {
                if let Err(e) = writeln!(csv, "{}", row_csv(r, &budgets)) {
                    write_error = Some(e);
                }
            }
        }
        if write_error.is_some() || cooperation.stopping() {
            halt.store(true, Ordering::Relaxed);
        }
        if progress {
            let el = started.elapsed().as_secs_f64();
            eprint!(
                "\r{done}/{total} candidates  {:.0}/s  eta {:.0} s   ",
                done as f64 / el,
                (total - done) as f64 / (done as f64 / el)
            );
        }
    });
    if progress {
        eprintln!();
    }
    if let Some(e) = write_error {
        return Err(e)
            .into_diagnostic()
            .wrap_err(format!("sweep stopped after {done} of {total} candidates"));
    }
    csv.commit().into_diagnostic()?;
    manifest.outputs.push("candidates.csv".into());
    let wall = started.elapsed().as_secs_f64();

    let reference = match &args.reference {
        Some(r) => {
            let m = model::load(r)?;
            let metrics = measure(&m, &spec).metrics;
            Some((m.name, metrics))
        }
        None => None,
    };
    let mut write = |name: &str, text: &str| {
        write_atomic(&run.join(name), text.as_bytes()).into_diagnostic()?;
        manifest.outputs.push(name.to_string());
        Ok::<(), miette::Report>(())
    };
    write("frontier.csv", &frontier_csv(&outcome, &budgets))?;
    let frontier_title = format!(
        "Loss frontier: {} on {} (loss vs {})",
        g.name,
        substrate.name,
        x.name()
    );
    write(
        "frontier.svg",
        &frontier_svg(&outcome, &frontier_title, x, &budgets, reference.as_ref())?,
    )?;
    let region_title = format!(
        "Feasible region: {} on {}, best loss per ({}, {})",
        g.name,
        substrate.name,
        region.0.name(),
        region.1.name()
    );
    write("region.svg", &region_svg(&outcome, &region_title, region)?)?;
    let summary = summary_md(
        &args,
        &g.name,
        &substrate.name,
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
        &outcome,
        &budgets,
        x,
        reference.as_ref(),
        wall,
        &range,
        substrate.memory_capacity().get(),
    );
    write("summary.md", &summary)?;
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
    if args.report {
        super::report::write(run.path())?;
        manifest.outputs.push("report.html".into());
    }
    manifest.status = if outcome.interrupted {
        Status::Interrupted
    } else {
        Status::Complete
    };
    run.write_manifest(&manifest).into_diagnostic()?;
    print!("{summary}");
    if args.report {
        println!("report: {}", args.out.join("report.html").display());
    }
    Ok(())
}

fn header(budgets: &[Budget], both: bool) -> String {
    let mut h = String::from(
        "index,depth,width,heads,kv_heads,head_dim,ffn,ffn_ratio,experts,active_experts,weights,params,active_params,weight_bytes,kv_bytes,ttft_s,tpot_s,latency_s,energy_per_token_j,loss,fits_memory,feasible,binding,loss_model,out_of_domain",
    );
    if both {
        h.push_str(",tpot_sim_s");
    }
    let _ = budgets;
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
    let mut s = header(budgets, false) + "\n";
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
    args: &SweepArgs,
    grid: &str,
    substrate: &str,
    quality: &str,
    o: &Outcome,
    budgets: &[Budget],
    x: Metric,
    reference: Option<&(String, Metrics)>,
    wall: f64,
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
        "Grid indices {}..{}: {} candidates evaluated, {} skipped as invalid, {} feasible (fit the substrate's memory of {:.3} GB with their weights and KV cache at this workload{}), in {:.2} s ({:.0}/s).{}\n",
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
        wall,
        (o.evaluated + o.skipped) as f64 / wall.max(1e-9),
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
