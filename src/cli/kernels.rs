//! `llmforge validate --kernels`: measured GPU kernels against the kernel model.

use super::validate::{EngineArg, Format, HoldOutArg, ValidateArgs, write_reasons};
use llmforge::output::{Outputs, write_atomic};
use llmforge::trace::table::{Column, Table};
use llmforge::trace::{JsonMeta, PrecisionMeta, json_document};
use llmforge::validate::Compare;
use llmforge::validate::kernels::{self, KernelFit, KernelMaps, KernelOptions, KernelReport};
use llmforge::validate::stats::ErrorStats;
use miette::IntoDiagnostic;
use std::fmt::Write;

pub fn validate(args: &ValidateArgs) -> miette::Result<()> {
    let Some(path) = &args.kernels else {
        miette::bail!("validate needs --traces or --kernels");
    };
    if args.holdout.iter().any(|h| matches!(h, HoldOutArg::Model)) {
        miette::bail!("--holdout model: kernel rows have no model; hold out by device");
    }
    if !args.max_mape.is_empty() || args.svg.is_some() {
        miette::bail!("--max-mape and --svg apply to --traces, not to --kernels");
    }
    if !args.overlay.is_empty() {
        miette::bail!("--overlay applies to --traces, not to --kernels");
    }
    Outputs::new()
        .input("--kernels", path)
        .inputs("--substrate-map", &args.substrate_map)
        .file("--out", args.out.as_deref())
        .check()
        .into_diagnostic()?;
    let traces = kernels::read(path)?;
    // Kernel mapping tables (devices, dtypes or exclusions, told by their header) over the
    // shipped traces/kernels/*.csv: how a user's own measurements of another device map.
    let mut maps = KernelMaps::builtin()?;
    for p in &args.substrate_map {
        maps.add_file(p)?;
    }
    let opts = KernelOptions {
        engine: args.engine.unwrap_or(EngineArg::Sim).into(),
        holdout: !args.holdout.is_empty(),
        fit_all: args.fit_all,
        fit_sm_bandwidth: args.fit_sm_bandwidth,
    };
    let report = kernels::validate(&traces, &maps, &opts);
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
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{x:.1}")
}

fn stat_row(key: &[String], s: &ErrorStats) -> Vec<String> {
    let mut v = key.to_vec();
    v.extend([
        s.n.to_string(),
        pct(s.mape),
        pct(s.median),
        pct(s.worst),
        format!("{:+.1}", s.bias),
    ]);
    v
}

fn stat_table(heads: &[&str], groups: impl Iterator<Item = (Vec<String>, ErrorStats)>) -> String {
    let mut cols: Vec<Column> = heads.iter().map(|h| Column::text(h)).collect();
    cols.extend([
        Column::number("n", ""),
        Column::number("MAPE", "%"),
        Column::number("median", "%"),
        Column::number("worst", "%"),
        Column::number("bias", "%"),
    ]);
    let mut t = Table::new(cols).indent(2);
    for (k, s) in groups {
        t.row(stat_row(&k, &s));
    }
    t.render()
}

fn compare_table(heads: &[&str], rows: &[Compare]) -> String {
    let mut cols: Vec<Column> = heads.iter().map(|h| Column::text(h)).collect();
    cols.extend([
        Column::number("n", ""),
        Column::number("uncalibrated", "% MAPE"),
        Column::number("held out", "% MAPE"),
        Column::number("median", "%"),
        Column::number("worst", "%"),
        Column::number("bias", "%"),
    ]);
    let mut t = Table::new(cols).indent(2);
    for c in rows {
        let mut v = c.key.clone();
        v.extend([
            c.calibrated.n.to_string(),
            pct(c.uncalibrated.mape),
            pct(c.calibrated.mape),
            pct(c.calibrated.median),
            pct(c.calibrated.worst),
            format!("{:+.1}", c.calibrated.bias),
        ]);
        t.row(v);
    }
    t.render()
}

fn fit_line(f: &KernelFit) -> String {
    let p = &f.params;
    format!(
        "memory {:.3}, kernel_overhead {:.2} us, tile_cycles {:.0}, step_cycles {:.0}, operand_bandwidth {:.0} B/cycle, l2_reuse {:.3}, overlap {:.2}, sm_bandwidth {:.1} B/cycle ({} rows, {} devices, MAPE {:.1}%)",
        p.memory,
        p.kernel_overhead_s * 1e6,
        p.tile_cycles,
        p.step_cycles,
        p.operand_bytes_per_cycle,
        p.l2_reuse,
        p.overlap,
        p.sm_bytes_per_cycle,
        f.rows,
        f.devices,
        f.mape
    )
}

/// The human-readable report.
pub fn table(r: &KernelReport, rows: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} rows, {} predicted with the {} engine ({} of them excluded from the statistics), {} unmappable",
        r.file, r.counts.rows, r.counts.mapped, r.engine, r.counts.excluded, r.counts.unmapped
    );
    let _ = writeln!(s, "\nby device and precision");
    s.push_str(&stat_table(
        &["substrate", "precision"],
        r.groups.iter().map(|g| (g.key.clone(), g.stats.clone())),
    ));
    let _ = writeln!(
        s,
        "\nby device, precision and regime (the roofline at the stated efficiencies: DRAM- or compute-bound)"
    );
    s.push_str(&stat_table(
        &["substrate", "precision", "regime"],
        r.by_regime.iter().map(|g| (g.key.clone(), g.stats.clone())),
    ));
    if let Some(f) = &r.fit_all {
        let _ = writeln!(
            s,
            "\nfit on every device's fp16/bf16 rows (in sample): {}",
            fit_line(f)
        );
    }
    if let Some(h) = &r.holdout {
        let _ = writeln!(
            s,
            "\ndevice held out: {} fp16/bf16 rows, each device predicted from a fit on the other devices of its dataset (of its family where there are any)",
            h.rows.len()
        );
        s.push_str(&compare_table(&["substrate", "precision"], &h.by_device));
        let _ = writeln!(s);
        s.push_str(&compare_table(
            &["substrate", "precision", "regime"],
            &h.by_regime,
        ));
        let _ = writeln!(
            s,
            "\n  fits (dataset, held-out device: parameters fitted on the others)"
        );
        for (d, dev, f) in &h.fits {
            let _ = writeln!(s, "  {d}, {dev}: {}", fit_line(f));
        }
        for (d, dev) in &h.not_predicted {
            let _ = writeln!(s, "  {d}, {dev}: no other device of the dataset to fit on");
        }
    }
    write_reasons(&mut s, &r.counts, &r.reasons, &r.exclusions);
    if rows {
        let mut t = Table::new(vec![
            Column::number("line", ""),
            Column::text("substrate"),
            Column::text("dtype"),
            Column::number("batch", ""),
            Column::number("m", ""),
            Column::number("n", ""),
            Column::number("k", ""),
            Column::number("measured", "us"),
            Column::number("predicted", "us"),
            Column::number("error", "%"),
            Column::text("regime"),
        ])
        .indent(2);
        for x in &r.rows {
            t.row([
                x.line.to_string(),
                x.substrate.clone(),
                x.dtype.chars().take(24).collect(),
                x.batch.to_string(),
                x.m.to_string(),
                x.n.to_string(),
                x.k.to_string(),
                format!("{:.2}", x.measured_s * 1e6),
                format!("{:.2}", x.predicted_s * 1e6),
                format!("{:+.1}", x.error_pct),
                x.regime.to_string(),
            ]);
        }
        let _ = writeln!(s, "\nrows");
        s.push_str(&t.render());
    }
    s
}
