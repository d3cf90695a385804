//! `llmforge validate`: predict every row of a measured-trace file and report the errors.

use clap::{Args, ValueEnum};
use llmforge::output::{Outputs, write_atomic};
use llmforge::trace::plot::{PlotPoint, scatter_svg};
use llmforge::trace::table::{Column, Table};
use llmforge::trace::{JsonMeta, PrecisionMeta, json_document};
use llmforge::validate::calibrate::HoldOut;
use llmforge::validate::mapping::Maps;
use llmforge::validate::overlay;
use llmforge::validate::predict::Engine;
use llmforge::validate::stats::ErrorStats;
use llmforge::validate::{self, Compare, Counts, Library, Options, ReasonCount, Report, gate, traces};
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
    /// device from a fit of the kernel model on the others of its dataset (of its family where
    /// the dataset has any).
    #[arg(long, conflicts_with = "traces")]
    pub kernels: Option<PathBuf>,
    /// With --kernels: also fit the kernel model on every device's fp16/bf16 rows together
    /// (in sample; how the defaults of the `kernel:` section were first found).
    #[arg(long, requires = "kernels")]
    pub fit_all: bool,
    /// With --kernels: also fit `kernel.sm_bandwidth` (the DRAM bytes per cycle one busy SM
    /// streams; otherwise as stated). The DRAM efficiency is the device's stated one either way.
    #[arg(long, requires = "kernels")]
    pub fit_sm_bandwidth: bool,
    /// Cost engine for the predictions (default: roofline for --traces, sim for --kernels).
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Extra mapping table (hardware, model or stack map, told by its header; with --kernels a
    /// kernel devices, dtypes or exclusions table); repeatable. Its entries take precedence over
    /// the shipped traces/*.csv (traces/kernels/*.csv) tables.
    #[arg(long = "substrate-map", value_name = "CSV")]
    pub substrate_map: Vec<PathBuf>,
    /// Per-stack efficiency overlay (as written by `llmforge calibrate --overlay-out`); repeatable.
    #[arg(long, value_name = "YAML")]
    pub overlay: Vec<PathBuf>,
    /// Also report calibrated predictions for rows held out of the fit: each device fitted on
    /// the other devices of its family and stack (from its stated efficiencies where the family
    /// has only one other device), or each model on the other models its device ran (on the
    /// family's where it ran none).
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
    /// Exit 1 when the MAPE exceeds PERCENT: over every row (`15`), or over one group of the
    /// report: `phase:decode batch 1=10`, `metric:NAME=20%`, `group:DEVICE | STACK |
    /// METRIC=12`. Repeatable; a scope naming no group is an error.
    #[arg(long = "max-mape", value_name = "[SCOPE=]PERCENT")]
    pub max_mape: Vec<String>,
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
    let limits = args
        .max_mape
        .iter()
        .map(|l| l.parse::<gate::Limit>())
        .collect::<Result<Vec<_>, _>>()?;
    Outputs::new()
        .input("--traces", traces_path)
        .inputs("--substrate-map", &args.substrate_map)
        .inputs("--overlay", &args.overlay)
        .file("--out", args.out.as_deref())
        .file("--svg", args.svg.as_deref())
        .check()
        .into_diagnostic()?;
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
        progress: super::progress::tick("validate hold-out", "fits"),
    };
    let report = validate::validate(&traces, &maps, &mut lib, &opts);
    let text = match args.format {
        Format::Json => json_document(
            &JsonMeta::cost(report.engine, Some(PrecisionMeta::PerRow)),
            &report,
        )
        .into_diagnostic()?,
        Format::Table => table(&report, args.rows),
    };
    match &args.out {
        Some(p) => write_atomic(p, text.as_bytes()).into_diagnostic()?,
        None => print!("{text}"),
    }
    if let Some(p) = &args.svg {
        write_atomic(p, svg(&report)?.as_bytes()).into_diagnostic()?;
    }
    let outcomes = gate::check(&report, &limits)?;
    for o in &outcomes {
        eprintln!("--max-mape {o}");
    }
    let exceeded: Vec<String> = outcomes
        .iter()
        .filter(|o| o.exceeded)
        .map(|o| o.to_string())
        .collect();
    if !exceeded.is_empty() {
        miette::bail!("MAPE above the limit: {}", exceeded.join("; "));
    }
    Ok(())
}

/// The kind of quantity a row's unit measures, the unit its panel shows, and the factor
/// from the row's unit to it: rows of every phase that measure the same kind share a panel.
fn quantity(unit: &str) -> (&'static str, &'static str, f64) {
    match unit.trim() {
        "s" => ("time", "s", 1.0),
        "ms" => ("time", "s", 1e-3),
        "us" | "µs" => ("time", "s", 1e-6),
        "tok/s" | "tokens/s" | "output tok/s" | "output tok/s/GPU" | "tok/s/device" => {
            ("throughput", "tokens/s", 1.0)
        }
        "W" => ("power", "W", 1.0),
        "mW" | "mW (as reported)" => ("power", "W", 1e-3),
        "J/tok" | "J/token" => ("energy per token", "J", 1.0),
        "mJ/tok" | "mJ/token" => ("energy per token", "J", 1e-3),
        _ => ("other", "as reported", 1.0),
    }
}

/// The scatter plot of a report (uncalibrated filled, held-out calibrated hollow).
pub fn svg(report: &Report) -> miette::Result<String> {
    let point = |r: &llmforge::validate::RowResult, series: usize, predicted: f64| {
        let (q, unit, f) = quantity(&r.unit);
        PlotPoint {
            quantity: q.to_string(),
            unit: unit.to_string(),
            color_key: r.stack.clone(),
            shape_key: r.phase.to_string(),
            series,
            measured: r.measured * f,
            predicted: predicted * f,
        }
    };
    let mut pts: Vec<PlotPoint> = report.rows.iter().map(|r| point(r, 0, r.predicted)).collect();
    let mut series = vec![format!("{} engine, uncalibrated", report.engine)];
    if let Some(h) = report.holdout.first() {
        series.push(format!("calibrated, {} held out", h.by.name()));
        for hr in &h.rows {
            if let Some(r) = report.rows.iter().find(|r| r.line == hr.line) {
                pts.push(point(r, 1, hr.predicted));
            }
        }
    }
    let refs: Vec<&str> = series.iter().map(String::as_str).collect();
    scatter_svg(&pts, &format!("Predicted vs measured: {}", report.file), &refs).into_diagnostic()
}

/// `x` cut to `n` characters (the last one `~`), so long device and stack names keep tables
/// narrow; the JSON report has them in full.
fn short(x: &str, n: usize) -> String {
    if x.chars().count() > n {
        let t: String = x.chars().take(n - 1).collect();
        format!("{t}~")
    } else {
        x.to_string()
    }
}

/// The error-statistics columns after `keys` text columns.
fn stats_table(keys: &[&str]) -> Table {
    let mut cols: Vec<Column> = keys.iter().map(|k| Column::text(k)).collect();
    cols.extend([
        Column::number("rows", ""),
        Column::number("MAPE", "%"),
        Column::number("median", "%"),
        Column::number("worst", "%"),
        Column::number("bias", "%"),
    ]);
    Table::new(cols).indent(2)
}

fn stats_row(t: &mut Table, key: &[String], s: &ErrorStats) {
    let mut cells: Vec<String> = key.to_vec();
    cells.extend([
        s.n.to_string(),
        format!("{:.1}", s.mape),
        format!("{:.1}", s.median),
        format!("{:.1}", s.worst),
        format!("{:+.1}", s.bias),
    ]);
    t.row(cells);
}

/// Lines that share a reason, one entry per reason: `  {label} (count): reason` and the lines.
fn write_by_reason(s: &mut String, label: &str, items: &[(u64, String)]) {
    let mut why: std::collections::BTreeMap<&str, Vec<u64>> = std::collections::BTreeMap::new();
    for (line, w) in items {
        why.entry(w.as_str()).or_default().push(*line);
    }
    for (w, lines) in why {
        let _ = writeln!(
            s,
            "  {label} ({}): {w}\n         lines {}",
            lines.len(),
            llmforge::validate::stats::line_ranges(&lines)
        );
    }
}

fn compare_table(out: &mut String, title: &str, keys: &[&str], rows: &[Compare]) {
    let _ = writeln!(out, "\n{title}");
    let mut cols: Vec<Column> = keys.iter().map(|k| Column::text(k)).collect();
    cols.extend([
        Column::number("rows", ""),
        Column::number("uncalibrated MAPE", "%"),
        Column::number("calibrated MAPE", "%"),
        Column::number("calibrated worst", "%"),
    ]);
    let mut t = Table::new(cols).indent(2);
    for c in rows {
        let mut cells = c.key.clone();
        cells.extend([
            c.calibrated.n.to_string(),
            format!("{:.1}", c.uncalibrated.mape),
            format!("{:.1}", c.calibrated.mape),
            format!("{:.1}", c.calibrated.worst),
        ]);
        t.row(cells);
    }
    out.push_str(&t.render());
}

/// The human-readable report.
pub fn table(r: &Report, rows: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} rows, {} predicted with the {} engine ({} of them excluded from the statistics), {} unmappable",
        r.file, r.counts.rows, r.counts.mapped, r.engine, r.counts.excluded, r.counts.unmapped
    );
    let _ = writeln!(s, "\nby phase");
    let mut t = stats_table(&["phase"]);
    for g in &r.by_phase {
        stats_row(&mut t, &g.key, &g.stats);
    }
    s.push_str(&t.render());
    let _ = writeln!(s, "\nby metric");
    let mut t = stats_table(&["metric"]);
    for g in &r.by_metric {
        stats_row(&mut t, &g.key, &g.stats);
    }
    s.push_str(&t.render());
    let _ = writeln!(s, "\nby device, stack, metric");
    let mut t = stats_table(&["device", "stack", "metric"]);
    for g in &r.groups {
        let key = [short(&g.key[0], 44), short(&g.key[1], 40), g.key[2].clone()];
        stats_row(&mut t, &key, &g.stats);
    }
    s.push_str(&t.render());
    write_reasons(&mut s, &r.counts, &r.reasons, &r.exclusions);
    for h in &r.holdout {
        let _ = writeln!(
            s,
            "\ncalibration, {} held out: {} rows predicted from fits that exclude their {}{}; {} rows without one",
            h.by.name(),
            h.rows.len() - h.stated.len(),
            h.by.name(),
            if h.stated.is_empty() {
                String::new()
            } else {
                format!(", {} from their device's stated efficiencies", h.stated.len())
            },
            h.not_predicted.len()
        );
        compare_table(&mut s, "  by phase", &["phase"], &h.by_phase);
        compare_table(
            &mut s,
            "  by phase, family, stack",
            &["phase", "family", "stack"],
            &h.by_family,
        );
        compare_table(
            &mut s,
            "  by phase, model, stack",
            &["phase", "model", "stack"],
            &h.by_model,
        );
        compare_table(
            &mut s,
            "  by phase, device, stack",
            &["phase", "substrate", "stack"],
            &h.by_device,
        );
        write_by_reason(&mut s, "not held out", &h.not_predicted);
        write_by_reason(&mut s, "stated", &h.stated);
    }
    if rows {
        let _ = writeln!(s, "\nrows");
        let mut t = Table::new(vec![
            Column::number("line", ""),
            Column::text("hardware"),
            Column::text("model"),
            Column::text("metric"),
            Column::text("unit"),
            Column::number("measured", ""),
            Column::number("predicted", ""),
            Column::number("error", "%"),
            Column::text("devices x substrate"),
            Column::text("weights"),
        ])
        .indent(2);
        for x in &r.rows {
            t.row([
                x.line.to_string(),
                short(&x.hardware, 40),
                x.preset.clone(),
                x.metric.clone(),
                x.unit.clone(),
                format!("{:.4}", x.measured),
                format!("{:.4}", x.predicted),
                format!("{:+.1}", x.error_pct),
                format!("{}x {}", x.devices, x.substrate),
                x.weights.clone(),
            ]);
        }
        s.push_str(&t.render());
    }
    s
}

/// The unmappable rows by reason and the excluded rows (both reports).
pub fn write_reasons(s: &mut String, counts: &Counts, reasons: &[ReasonCount], exclusions: &[ReasonCount]) {
    let _ = writeln!(s, "\nunmappable rows ({}), by reason:", counts.unmapped);
    for u in reasons {
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
        counts.excluded
    );
    for u in exclusions {
        let _ = writeln!(s, "  {:>5}  {}\n         lines {}", u.count, u.reason, u.lines);
    }
}
