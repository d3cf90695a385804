//! `llmforge validate`: predict every row of a measured-trace file and report the errors.

use clap::{Args, ValueEnum};
use llmforge::validate::calibrate::HoldOut;
use llmforge::validate::mapping::Maps;
use llmforge::validate::overlay;
use llmforge::validate::plot::{self, PlotPoint};
use llmforge::validate::predict::Engine;
use llmforge::validate::stats::ErrorStats;
use llmforge::validate::{self, Compare, Library, Options, Report, traces};
use miette::IntoDiagnostic;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum EngineArg {
    Roofline,
    Sim,
}

impl From<EngineArg> for Engine {
    fn from(e: EngineArg) -> Engine {
        match e {
            EngineArg::Roofline => Engine::Roofline,
            EngineArg::Sim => Engine::Sim,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum HoldOutArg {
    Device,
    Model,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Measured-trace CSV (the layout of traces/public-llm-inference.csv; see traces/README.md).
    #[arg(long, required_unless_present = "kernels")]
    pub traces: Option<PathBuf>,
    /// Measured GPU kernels instead (the kernel-trace format of traces/kernels/gemm.csv; see
    /// traces/README.md): errors per device and precision, `--holdout device` predicts each
    /// device from a fit of the kernel model on the others of its dataset.
    #[arg(long, conflicts_with = "traces")]
    pub kernels: Option<PathBuf>,
    /// With --kernels: also fit the kernel model on every device's fp16/bf16 rows together
    /// (in sample; how the shipped defaults of the `kernel:` section were found).
    #[arg(long, requires = "kernels")]
    pub fit_all: bool,
    /// Cost engine for the predictions (default: roofline for --traces, sim for --kernels).
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Extra mapping table (hardware, model or stack map, told by its header); repeatable.
    /// Its entries take precedence over the shipped traces/*.csv tables.
    #[arg(long = "substrate-map", value_name = "CSV")]
    pub substrate_map: Vec<PathBuf>,
    /// Per-stack efficiency overlay (as written by `llmforge calibrate --overlay-out`); repeatable.
    #[arg(long, value_name = "YAML")]
    pub overlay: Vec<PathBuf>,
    /// Also report calibrated predictions for rows held out of the fit: each device fitted on
    /// the other devices of its family and stack, or each model on the other models.
    #[arg(long, value_enum)]
    pub holdout: Vec<HoldOutArg>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the report here (atomically) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write an SVG scatter plot of predicted against measured.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// In the table format, list every predicted row.
    #[arg(long)]
    pub rows: bool,
}

/// Shared by validate and calibrate: the shipped maps plus the user's.
pub fn load_maps(extra: &[PathBuf]) -> miette::Result<Maps> {
    let mut maps = Maps::builtin()?;
    for p in extra {
        maps.add_file(p)?;
    }
    Ok(maps)
}

pub fn run(args: ValidateArgs) -> miette::Result<()> {
    let Some(traces_path) = &args.traces else {
        return super::kernels::validate(&args);
    };
    let traces = traces::read(traces_path)?;
    let maps = load_maps(&args.substrate_map)?;
    let overlays = args
        .overlay
        .iter()
        .map(|p| overlay::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut lib = Library::new(overlays);
    let opts = Options {
        engine: args.engine.unwrap_or(EngineArg::Roofline).into(),
        holdout: args
            .holdout
            .iter()
            .map(|h| match h {
                HoldOutArg::Device => HoldOut::Device,
                HoldOutArg::Model => HoldOut::Model,
            })
            .collect(),
    };
    let report = validate::validate(&traces, &maps, &mut lib, &opts);
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report).into_diagnostic()? + "\n",
        Format::Table => table(&report, args.rows),
    };
    match &args.out {
        Some(p) => validate::write_atomic(p, &text)?,
        None => print!("{text}"),
    }
    if let Some(p) = &args.svg {
        validate::write_atomic(p, &svg(&report))?;
    }
    Ok(())
}

fn panel(phase: &str, metric_unit: &str) -> String {
    format!("{phase} [{metric_unit}]")
}

/// The scatter plot of a report (uncalibrated filled, held-out calibrated hollow).
pub fn svg(report: &Report) -> String {
    let mut pts: Vec<PlotPoint> = report
        .rows
        .iter()
        .map(|r| PlotPoint {
            panel: panel(r.phase, &r.unit),
            color_key: r.stack.clone(),
            series: 0,
            measured: r.measured,
            predicted: r.predicted,
        })
        .collect();
    let mut series = vec![format!("{} (uncalibrated)", report.engine)];
    if let Some(h) = report.holdout.first() {
        series.push(format!("calibrated, {} held out", h.by.name()));
        for hr in &h.rows {
            if let Some(r) = report.rows.iter().find(|r| r.line == hr.line) {
                pts.push(PlotPoint {
                    panel: panel(r.phase, &r.unit),
                    color_key: r.stack.clone(),
                    series: 1,
                    measured: r.measured,
                    predicted: hr.predicted,
                });
            }
        }
    }
    let refs: Vec<&str> = series.iter().map(String::as_str).collect();
    plot::svg(&pts, &format!("predicted vs measured: {}", report.file), &refs)
}

fn stat_cols(s: &ErrorStats) -> String {
    format!(
        "{:>5} {:>8.1} {:>8.1} {:>8.1} {:>+8.1}",
        s.n, s.mape, s.median, s.worst, s.bias
    )
}

const STAT_HEAD: &str = "    n  MAPE(%)  med(%) worst(%)  bias(%)";

fn compare_table(out: &mut String, title: &str, rows: &[Compare]) {
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(
        out,
        "{:<58} {:>5} {:>12} {:>12} {:>12}",
        "", "n", "uncal MAPE", "cal MAPE", "cal worst"
    );
    for c in rows {
        let _ = writeln!(
            out,
            "{:<58} {:>5} {:>11.1}% {:>11.1}% {:>11.1}%",
            c.key.join(" | "),
            c.calibrated.n,
            c.uncalibrated.mape,
            c.calibrated.mape,
            c.calibrated.worst
        );
    }
}

/// The human-readable report.
pub fn table(r: &Report, rows: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} rows, {} predicted with the {} engine ({} of them excluded from the statistics), {} unmappable",
        r.file, r.counts.rows, r.counts.mapped, r.engine, r.counts.excluded, r.counts.unmapped
    );
    let _ = writeln!(s, "\nby phase{:>44}", STAT_HEAD);
    for g in &r.by_phase {
        let _ = writeln!(s, "  {:<50}{}", g.key.join(" | "), stat_cols(&g.stats));
    }
    let _ = writeln!(s, "\nby metric{:>43}", STAT_HEAD);
    for g in &r.by_metric {
        let _ = writeln!(s, "  {:<50}{}", g.key.join(" | "), stat_cols(&g.stats));
    }
    let _ = writeln!(s, "\nby device, stack, metric");
    let _ = writeln!(
        s,
        "  {:<44} {:<30} {:<20}{}",
        "device", "stack", "metric", STAT_HEAD
    );
    for g in &r.groups {
        let short = |x: &str, n: usize| -> String {
            if x.chars().count() > n {
                let t: String = x.chars().take(n - 1).collect();
                format!("{t}~")
            } else {
                x.to_string()
            }
        };
        let _ = writeln!(
            s,
            "  {:<44} {:<30} {:<20}{}",
            short(&g.key[0], 44),
            short(&g.key[1], 30),
            short(&g.key[2], 20),
            stat_cols(&g.stats)
        );
    }
    let _ = writeln!(s, "\nunmappable rows ({}), by reason:", r.counts.unmapped);
    for u in &r.reasons {
        let _ = writeln!(
            s,
            "  {:>5}  [{}] {}\n         lines {}",
            u.count,
            u.kind.name(),
            u.reason,
            u.lines
        );
    }
    let _ = writeln!(
        s,
        "\nexcluded rows ({}), predicted but kept out of the statistics and fits:",
        r.counts.excluded
    );
    for u in &r.exclusions {
        let _ = writeln!(s, "  {:>5}  {}\n         lines {}", u.count, u.reason, u.lines);
    }
    for h in &r.holdout {
        let _ = writeln!(
            s,
            "\ncalibration, {} held out: {} rows predicted from fits that exclude their {}; {} rows without one",
            h.by.name(),
            h.rows.len(),
            h.by.name(),
            h.not_predicted.len()
        );
        compare_table(&mut s, "  by phase", &h.by_phase);
        compare_table(&mut s, "  by phase, family, stack", &h.by_family);
        compare_table(&mut s, "  by phase, model, stack", &h.by_model);
        compare_table(&mut s, "  by phase, device, stack", &h.by_device);
        let mut why: std::collections::BTreeMap<&str, Vec<u64>> = std::collections::BTreeMap::new();
        for (line, w) in &h.not_predicted {
            why.entry(w.as_str()).or_default().push(*line);
        }
        for (w, lines) in why {
            let _ = writeln!(
                s,
                "  not held out ({}): {w}\n         lines {}",
                lines.len(),
                llmforge::validate::stats::line_ranges(&lines)
            );
        }
    }
    if rows {
        let _ = writeln!(s, "\nrows");
        for x in &r.rows {
            let _ = writeln!(
                s,
                "  {:>5} {:<40} {:<22} {:<16} {:>12.4} {:>12.4} {:>+8.1}%  {}x{} {}",
                x.line,
                x.hardware.chars().take(40).collect::<String>(),
                x.preset,
                x.metric,
                x.measured,
                x.predicted,
                x.error_pct,
                x.devices,
                x.substrate,
                x.weights
            );
        }
    }
    s
}
