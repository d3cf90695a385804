//! `llmforge sweep`: the co-design sweep over a grid of architectures.

use clap::{Args, ValueEnum};
use llmforge::model;
use llmforge::output::{
    AtomicFile, Manifest, Outputs, Owned, Reuse, RunDir, Status, interrupt, write_atomic,
};
use llmforge::sim::{Engine, Workload};
use llmforge::sweep::budget::{Budget, Metric, Metrics};
use llmforge::sweep::grid;
use llmforge::sweep::run::{Axis, Outcome, Row, SweepSpec, measure, sweep};
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
    #[arg(long, default_value_t = 1024)]
    prompt: u64,
    #[arg(long = "gen", default_value_t = 16)]
    generate: u64,
    #[arg(long, default_value_t = 1)]
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
];

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
    let workload = Workload::new(args.prompt, args.generate, args.batch).into_diagnostic()?;
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
            let (metrics, _, _) = measure(&m, &spec);
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
    write(
        "frontier.svg",
        &frontier_svg(&outcome, x, &budgets, reference.as_ref()),
    )?;
    write("region.svg", &region_svg(&outcome, region))?;
    let summary = summary_md(
        &args,
        &g.name,
        &substrate.name,
        &loss.name(),
        &outcome,
        &budgets,
        x,
        reference.as_ref(),
        wall,
        &range,
    );
    write("summary.md", &summary)?;
    manifest.status = if outcome.interrupted {
        Status::Interrupted
    } else {
        Status::Complete
    };
    run.write_manifest(&manifest).into_diagnostic()?;
    print!("{summary}");
    Ok(())
}

fn header(budgets: &[Budget], both: bool) -> String {
    let mut h = String::from(
        "index,depth,width,heads,kv_heads,head_dim,ffn,ffn_ratio,experts,active_experts,weights,params,active_params,weight_bytes,kv_bytes,ttft_s,tpot_s,latency_s,energy_per_token_j,loss,feasible,binding",
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
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.6},{},{}",
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
        r.feasible,
        r.binding.map_or(String::new(), |k| budgets[k].text.clone())
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
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Sweep of `{grid}` on `{substrate}`\n");
    let _ = writeln!(
        s,
        "Workload: prompt {}, generate {}, batch {}; quality: {quality}; engine: {}.",
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
        "Grid indices {}..{}: {} candidates evaluated, {} skipped as invalid, {} feasible, in {:.2} s ({:.0}/s).{}\n",
        range.start,
        range.end,
        o.evaluated,
        o.skipped,
        o.feasible,
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

struct Plot {
    w: f64,
    h: f64,
    pad: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    log_x: bool,
}

impl Plot {
    fn sx(&self, x: f64) -> f64 {
        let (a, b, v) = if self.log_x {
            (self.x0.ln(), self.x1.ln(), x.ln())
        } else {
            (self.x0, self.x1, x)
        };
        self.pad + (v - a) / (b - a).max(1e-300) * (self.w - 2.0 * self.pad)
    }
    fn sy(&self, y: f64) -> f64 {
        self.h - self.pad - (y - self.y0) / (self.y1 - self.y0).max(1e-300) * (self.h - 2.0 * self.pad)
    }
}

fn frontier_svg(o: &Outcome, x: Metric, budgets: &[Budget], reference: Option<&(String, Metrics)>) -> String {
    let pts = &o.sample;
    let fr: Vec<(f64, f64)> = o.frontier.points().map(|p| (p.x, p.y)).collect();
    let all = pts.iter().map(|(a, b, _)| (*a, *b)).chain(fr.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (a, b) in all {
        if a > 0.0 && a.is_finite() && b.is_finite() {
            x0 = x0.min(a);
            x1 = x1.max(a);
            y0 = y0.min(b);
            y1 = y1.max(b);
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (1e-3, 1.0, 0.0, 1.0);
    }
    let p = Plot {
        w: 720.0,
        h: 520.0,
        pad: 70.0,
        x0: x0 * 0.9,
        x1: x1 * 1.1,
        y0: y0 - 0.05,
        y1: y1 + 0.05,
        log_x: true,
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        p.w, p.h
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} (log scale, {} .. {})</text>",
        p.w / 2.0,
        p.h - 25.0,
        x.name(),
        fmt_metric(x, p.x0),
        fmt_metric(x, p.x1)
    );
    let _ = writeln!(
        s,
        "<text x=\"18\" y=\"{}\" transform=\"rotate(-90 18 {})\" text-anchor=\"middle\">loss ({:.3} .. {:.3})</text>",
        p.h / 2.0,
        p.h / 2.0,
        p.y0,
        p.y1
    );
    let _ = writeln!(
        s,
        "<rect x=\"{0}\" y=\"{0}\" width=\"{1}\" height=\"{2}\" fill=\"none\" stroke=\"black\"/>",
        p.pad,
        p.w - 2.0 * p.pad,
        p.h - 2.0 * p.pad
    );
    for (a, b, feasible) in pts {
        if *a > 0.0 {
            let c = if *feasible { "#9ecae1" } else { "#dddddd" };
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{c}\"/>",
                p.sx(*a),
                p.sy(*b)
            );
        }
    }
    let path: Vec<String> = fr
        .iter()
        .filter(|(a, _)| *a > 0.0)
        .map(|(a, b)| format!("{:.1},{:.1}", p.sx(*a), p.sy(*b)))
        .collect();
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    for b in budgets {
        if b.terms == [x] && b.limit > p.x0 && b.limit < p.x1 {
            let bx = p.sx(b.limit);
            let _ = writeln!(
                s,
                "<line x1=\"{bx:.1}\" y1=\"{}\" x2=\"{bx:.1}\" y2=\"{}\" stroke=\"#2ca02c\" stroke-dasharray=\"5,4\"/><text x=\"{:.1}\" y=\"{}\" fill=\"#2ca02c\">{}</text>",
                p.pad,
                p.h - p.pad,
                bx + 3.0,
                p.pad + 14.0,
                b.text
            );
        }
        if b.terms == [Metric::Loss] && b.limit > p.y0 && b.limit < p.y1 {
            let by = p.sy(b.limit);
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{by:.1}\" x2=\"{}\" y2=\"{by:.1}\" stroke=\"#2ca02c\" stroke-dasharray=\"5,4\"/><text x=\"{}\" y=\"{:.1}\" fill=\"#2ca02c\">{}</text>",
                p.pad,
                p.w - p.pad,
                p.pad + 4.0,
                by - 4.0,
                b.text
            );
        }
    }
    if let Some((name, m)) = reference {
        let (a, b) = (m.get(x), m.loss);
        if a > 0.0 {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"none\" stroke=\"black\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{name}</text>",
                p.sx(a),
                p.sy(b),
                p.sx(a) + 8.0,
                p.sy(b) - 8.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn region_svg(o: &Outcome, axes: (Axis, Axis)) -> String {
    let xs: std::collections::BTreeSet<&String> = o.region.keys().map(|(a, _)| a).collect();
    let ys: std::collections::BTreeSet<&String> = o.region.keys().map(|(_, b)| b).collect();
    let xs: Vec<&String> = xs.into_iter().collect();
    let ys: Vec<&String> = ys.into_iter().collect();
    let (cw, ch, pad) = (
        (640.0 / xs.len().max(1) as f64).min(40.0),
        (440.0 / ys.len().max(1) as f64).min(30.0),
        80.0,
    );
    let (w, h) = (pad * 2.0 + cw * xs.len() as f64, pad * 2.0 + ch * ys.len() as f64);
    let losses: Vec<f64> = o.region.values().filter_map(|c| c.best_loss).collect();
    let (lo, hi) = losses
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &l| (a.min(l), b.max(l)));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" font-family=\"sans-serif\" font-size=\"10\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.0}\" y=\"20\" text-anchor=\"middle\" font-size=\"13\">feasible region: best feasible loss per ({}, {}); grey = none feasible</text>",
        w / 2.0,
        axes.0.name(),
        axes.1.name()
    );
    for ((a, b), c) in &o.region {
        let i = xs.iter().position(|v| *v == a).unwrap_or(0) as f64;
        let j = ys.iter().position(|v| *v == b).unwrap_or(0) as f64;
        let fill = match c.best_loss {
            Some(l) => {
                let t = if hi > lo { (l - lo) / (hi - lo) } else { 0.0 };
                format!(
                    "rgb({},{},{})",
                    (30.0 + 200.0 * t) as u8,
                    (120.0 + 80.0 * (1.0 - t)) as u8,
                    (200.0 - 150.0 * t) as u8
                )
            }
            None => "#e0e0e0".into(),
        };
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{cw:.1}\" height=\"{ch:.1}\" fill=\"{fill}\" stroke=\"white\"><title>{}={}, {}={}: {}/{} feasible{}</title></rect>",
            pad + i * cw,
            h - pad - (j + 1.0) * ch,
            axes.0.name(),
            a.trim_start_matches('0'),
            axes.1.name(),
            b.trim_start_matches('0'),
            c.feasible,
            c.candidates,
            c.best_loss
                .map_or(String::new(), |l| format!(", best loss {l:.4}"))
        );
    }
    for (i, a) in xs.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" transform=\"rotate(-60 {:.1} {:.1})\" text-anchor=\"end\">{}</text>",
            pad + (i as f64 + 0.5) * cw,
            h - pad + 12.0,
            pad + (i as f64 + 0.5) * cw,
            h - pad + 12.0,
            a.trim_start_matches('0')
        );
    }
    for (j, b) in ys.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            pad - 4.0,
            h - pad - (j as f64 + 0.5) * ch + 3.0,
            b.trim_start_matches('0')
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
        w / 2.0,
        h - 10.0,
        axes.0.name()
    );
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{:.0}\" transform=\"rotate(-90 14 {:.0})\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
        h / 2.0,
        h / 2.0,
        axes.1.name()
    );
    s.push_str("</svg>\n");
    s
}
