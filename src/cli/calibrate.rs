//! `llmforge calibrate`: fit a substrate's efficiencies to measured rows (and, when there are
//! power rows, the scales of its energy parameters), report how well the fit carries over to
//! rows held out of it, and write a calibrated substrate (and overlay).

use super::validate::{EngineArg, Format, load_maps};
use clap::Args;
use llmforge::output::{Outputs, write_atomic};
use llmforge::substrate::{self, Efficiency};
use llmforge::trace::{JsonMeta, PrecisionMeta, json_document};
use llmforge::validate::calibrate::{self, Fit, Point};
use llmforge::validate::energy::{self, EnergyFit};
use llmforge::validate::predict::Engine;
use llmforge::validate::stats::{self, ErrorStats};
use llmforge::validate::{self, Library, ValidateError, overlay, traces};
use miette::IntoDiagnostic;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct CalibrateArgs {
    /// Measured-trace CSV.
    #[arg(long)]
    pub traces: PathBuf,
    /// The substrate to calibrate (shipped name or file); rows mapped to it are fitted.
    #[arg(long)]
    pub substrate: String,
    /// Fit only rows of this software stack (`llama.cpp`, `vllm`, `tensorrt-llm`, ...).
    #[arg(long)]
    pub stack: Option<String>,
    /// Fit only rows of one phase (`prefill`, `decode`, or `e2e` for whole runs), freeing the
    /// parameters the hold-out frees for it: a prefill-calibrated substrate is for TTFT, a
    /// decode-calibrated one for TPOT. Without it, all rows are fitted jointly.
    #[arg(long, value_parser = ["prefill", "decode", "e2e"])]
    pub phase: Option<String>,
    /// Write the calibrated substrate here (a full substrate file `sim` accepts).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a per-stack overlay (efficiency overrides only).
    #[arg(long)]
    pub overlay_out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = EngineArg::Roofline)]
    pub engine: EngineArg,
    /// Extra mapping table; repeatable.
    #[arg(long = "substrate-map", value_name = "CSV")]
    pub substrate_map: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Errors of a set of rows under one efficiency.
#[derive(Clone, Debug, Serialize)]
struct Eval {
    stats: Option<ErrorStats>,
}

fn eval(points: &[Point], eff: Efficiency, engine: Engine) -> Eval {
    let errs: Vec<(u64, f64)> = points
        .iter()
        .map(|p| {
            let v = calibrate::predict_with(p, eff, engine);
            (p.line, stats::rel_error(v, p.case.measured))
        })
        .collect();
    Eval {
        stats: ErrorStats::of(&errs),
    }
}

#[derive(Serialize)]
struct HeldOutEval {
    /// What was held out: a model preset, or `this device` (fit on the family's others).
    held_out: String,
    fitted_on: usize,
    fit: Option<Fit>,
    uncalibrated: Option<ErrorStats>,
    calibrated: Option<ErrorStats>,
    note: Option<String>,
}

#[derive(Serialize)]
struct CalReport {
    traces: String,
    substrate: String,
    stack: Option<String>,
    engine: &'static str,
    rows: usize,
    /// Rows of the file left out of every fit (source anomalies, beyond the ideal bound).
    excluded_lines: String,
    start: FitEff,
    fit: Fit,
    in_sample_uncalibrated: Option<ErrorStats>,
    in_sample_calibrated: Option<ErrorStats>,
    held_out: Vec<HeldOutEval>,
    /// Power and energy rows of this substrate: the energy scales fitted on them (under the
    /// fitted efficiency) and written to the calibrated substrate, with their in-sample error.
    energy: Option<EnergyReport>,
    out: String,
}

#[derive(Serialize)]
struct EnergyReport {
    rows: usize,
    fit: Option<EnergyFit>,
    /// With the stated energy parameters (and the fitted efficiency).
    uncalibrated: Option<ErrorStats>,
    calibrated: Option<ErrorStats>,
    note: Option<String>,
}

#[derive(Serialize)]
struct FitEff {
    compute: f64,
    memory: f64,
    kernel_overhead_s: f64,
    token_overhead_s: f64,
    quantised_compute: f64,
    score_bytes: f64,
}

fn fe(e: &Efficiency) -> FitEff {
    FitEff {
        compute: e.compute,
        memory: e.memory,
        kernel_overhead_s: e.kernel_overhead.get(),
        token_overhead_s: e.token_overhead.get(),
        quantised_compute: e.quantised_compute,
        score_bytes: e.score_bytes.get(),
    }
}

pub fn run(args: CalibrateArgs) -> miette::Result<()> {
    Outputs::new()
        .input("--traces", &args.traces)
        .input("--substrate", &args.substrate)
        .inputs("--substrate-map", &args.substrate_map)
        .file("--out", Some(&args.out))
        .file("--overlay-out", args.overlay_out.as_deref())
        .check()
        .into_diagnostic()?;
    let engine: Engine = args.engine.into();
    let traces = traces::read(&args.traces)?;
    let maps = load_maps(&args.substrate_map)?;
    let base = substrate::load(&args.substrate, &[])?;
    let mut lib = Library::new(Vec::new());
    let (ready, excluded) = validate::ready_cases(&traces, &maps, &mut lib);
    let stack = args.stack.as_deref();
    let on_stack = |c: &llmforge::validate::mapping::Case| stack.is_none_or(|s| c.stack == s);
    let phase = args.phase.as_deref();
    let on_stack = |c: &llmforge::validate::mapping::Case| {
        on_stack(c) && phase.is_none_or(|ph| calibrate::fit_phase(c) == ph)
    };
    let free = calibrate::free_for(phase);
    let points = validate::points_where(&traces, &ready, &lib, |c| {
        c.substrate == args.substrate && on_stack(c)
    });
    if points.is_empty() {
        return Err(ValidateError::NothingToFit {
            file: traces.file.clone(),
            substrate: args.substrate.clone(),
            stack: stack.map(|s| format!(" with stack `{s}`")).unwrap_or_default()
                + &phase.map(|p| format!(" in phase `{p}`")).unwrap_or_default(),
        }
        .into());
    }
    let start = base.efficiency;
    let fit =
        calibrate::fit_some(&points, start, engine, free).ok_or_else(|| miette::miette!("nothing to fit"))?;
    let before = eval(&points, start, engine);
    let after = eval(&points, fit.efficiency, engine);
    let mut held = Vec::new();
    // Leave one model out, on this device.
    let models: BTreeSet<&str> = points.iter().map(|p| p.case.preset.as_str()).collect();
    for m in &models {
        let train: Vec<Point> = points.iter().filter(|p| p.case.preset != *m).copied().collect();
        let test: Vec<Point> = points.iter().filter(|p| p.case.preset == *m).copied().collect();
        let f = calibrate::fit_some(&train, start, engine, free);
        held.push(HeldOutEval {
            held_out: format!("model {m}"),
            fitted_on: train.len(),
            uncalibrated: eval(&test, start, engine).stats,
            calibrated: f.map(|f| eval(&test, f.efficiency, engine).stats).unwrap_or(None),
            note: f
                .is_none()
                .then(|| "no other model on this device to fit on".to_string()),
            fit: f,
        });
    }
    // This device, fitted on the other devices of its family (same stack).
    let families: BTreeSet<&str> = points.iter().map(|p| p.case.family.as_str()).collect();
    for fam in families {
        let others = validate::points_where(&traces, &ready, &lib, |c| {
            c.family == fam && c.substrate != args.substrate && on_stack(c)
        });
        let f = calibrate::fit_some(&others, start, engine, free);
        let subs: BTreeSet<&str> = others.iter().map(|p| p.case.substrate.as_str()).collect();
        let n = subs.len();
        held.push(HeldOutEval {
            held_out: format!(
                "this device (fitted on family {fam}: {})",
                subs.into_iter().collect::<Vec<_>>().join(", ")
            ),
            fitted_on: others.len(),
            uncalibrated: before.stats.clone(),
            calibrated: f
                .map(|f| eval(&points, f.efficiency, engine).stats)
                .unwrap_or(None),
            note: if f.is_none() {
                Some(format!("no other device of family `{fam}` to fit on"))
            } else if n < calibrate::MIN_FIT_DEVICES {
                Some(format!(
                    "fitted on {n} device{}: `validate --holdout device` carries a fit to another \
                     device only from {} or more, and predicts it from its stated efficiencies",
                    if n == 1 { "" } else { "s" },
                    calibrate::MIN_FIT_DEVICES
                ))
            } else {
                None
            },
            fit: f,
        });
    }
    // Power and energy rows of this substrate: scale its energy parameters (after time).
    let energy_points = validate::points_of(&traces, &ready, &lib, |c| {
        c.substrate == args.substrate
            && stack.is_none_or(|s| c.stack == s)
            && c.target.phase() == "energy"
            && phase.is_none_or(|ph| ph == "e2e")
    });
    let energy_report = (!energy_points.is_empty()).then(|| {
        let parts: Vec<Option<[f64; 3]>> = energy_points
            .iter()
            .map(|p| energy::parts(p, fit.efficiency, engine))
            .collect();
        let rows: Vec<([f64; 3], f64)> = parts
            .iter()
            .zip(&energy_points)
            .filter_map(|(v, p)| v.map(|v| (v, p.case.measured)))
            .collect();
        let efit = energy::fit(&rows);
        let errors = |k: [f64; 3]| {
            let e: Vec<(u64, f64)> = parts
                .iter()
                .zip(&energy_points)
                .filter_map(|(v, p)| {
                    let pred = energy::scaled((*v)?, k);
                    Some((p.line, stats::rel_error(pred, p.case.measured)))
                })
                .collect();
            ErrorStats::of(&e)
        };
        EnergyReport {
            rows: energy_points.len(),
            uncalibrated: errors([1.0; 3]),
            calibrated: efit.and_then(|f| errors(f.scales())),
            note: efit
                .is_none()
                .then(|| "no energy fit (a ring substrate, or no usable rows)".to_string()),
            fit: efit,
        }
    });
    // Write the calibrated substrate, checked by loading it back first.
    let src =
        llmforge::yaml::shipped_or_file(&args.substrate, substrate::SHIPPED, "substrates", "substrate")?
            .text()
            .to_string();
    let header = vec![
        format!(
            "Calibrated by `llmforge calibrate --substrate {}{}{} --engine {}` on {} rows of {}.",
            args.substrate,
            stack.map(|s| format!(" --stack {s}")).unwrap_or_default(),
            phase.map(|p| format!(" --phase {p}")).unwrap_or_default(),
            engine.name(),
            fit.n,
            traces.file
        ),
        format!(
            "Fit: RMS log error {:.4}, in-sample MAPE {:.1}% (uncalibrated {:.1}%).",
            fit.rms_log,
            fit.mape,
            before.stats.as_ref().map_or(f64::NAN, |s| s.mape)
        ),
    ];
    // The hardware map's overrides for this substrate (the fit ran with them), then the fit.
    let extra: Vec<substrate::Override> = points[0]
        .case
        .set
        .iter()
        .map(|(path, expr)| substrate::Override {
            path: path.clone(),
            expr: expr.clone(),
        })
        .collect();
    let mut header = header;
    if let Some(f) = energy_report.as_ref().and_then(|r| r.fit) {
        header.push(format!(
            "Energy scaled by compute x{:.3}, memory x{:.3}, static x{:.3}, fitted on {} power / energy rows (in-sample MAPE {:.1}%).",
            f.compute, f.memory, f.static_, f.n, f.mape
        ));
    }
    let energy_set = match energy_report.as_ref().and_then(|r| r.fit) {
        Some(f) => energy::energy_overrides(&substrate::load(&args.substrate, &extra)?, f.scales())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let all: Vec<substrate::Override> = extra
        .iter()
        .cloned()
        .chain(overlay::efficiency_overrides(&fit.efficiency))
        .chain(energy_set.iter().cloned())
        .collect();
    let text = overlay::with_values(&src, &all, &header).ok_or_else(|| ValidateError::Substrate {
        name: args.substrate.clone(),
        message: "a fitted field is not written in the file in the usual `section:` / `key:` form".into(),
    })?;
    let written = substrate::load_str(&text, &args.out.display().to_string(), &[])?;
    // (the map's overrides and the energy scales as written, then the fitted efficiency)
    let with_energy: Vec<substrate::Override> = extra.iter().cloned().chain(energy_set).collect();
    let fitted = calibrate::with_efficiency(
        &substrate::load(&args.substrate, &with_energy)?,
        written.efficiency,
    );
    if written.kind != fitted.kind || (written.efficiency.memory - fit.efficiency.memory).abs() > 1e-3 {
        return Err(ValidateError::Substrate {
            name: args.substrate.clone(),
            message: "the calibrated file does not read back as the fitted substrate".into(),
        }
        .into());
    }
    write_atomic(&args.out, text.as_bytes()).into_diagnostic()?;
    if let Some(p) = &args.overlay_out {
        let y = overlay::to_yaml(
            stack.unwrap_or("any"),
            ("substrate", &args.substrate),
            &fit.efficiency,
            &extra,
            &header,
        );
        overlay::parse(&y, &p.display().to_string())?;
        write_atomic(p, y.as_bytes()).into_diagnostic()?;
    }
    let report = CalReport {
        traces: traces.file.clone(),
        substrate: args.substrate.clone(),
        stack: args.stack.clone(),
        engine: engine.name(),
        rows: points.len(),
        excluded_lines: llmforge::validate::stats::line_ranges(
            &excluded.iter().map(|e| e.0).collect::<Vec<_>>(),
        ),
        start: fe(&start),
        fit,
        in_sample_uncalibrated: before.stats,
        in_sample_calibrated: after.stats,
        held_out: held,
        energy: energy_report,
        out: args.out.display().to_string(),
    };
    match args.format {
        Format::Json => print!(
            "{}",
            json_document(
                &JsonMeta::cost(engine.name(), Some(PrecisionMeta::PerRow)),
                &report
            )
            .into_diagnostic()?
        ),
        Format::Table => print!("{}", table(&report)),
    }
    Ok(())
}

fn table(r: &CalReport) -> String {
    let mut s = String::new();
    let e = &r.fit.efficiency;
    let _ = writeln!(
        s,
        "{} {}: {} rows of {} ({} engine)",
        r.substrate,
        r.stack
            .as_deref()
            .map(|s| format!("under {s}"))
            .unwrap_or_default(),
        r.rows,
        r.traces,
        r.engine
    );
    if !r.excluded_lines.is_empty() {
        let _ = writeln!(
            s,
            "  left out of every fit (source anomalies, beyond the ideal bound): lines {}",
            r.excluded_lines
        );
    }
    let _ = writeln!(
        s,
        "  start   compute {:.3}  memory {:.3}  kernel overhead {:.2} us  token overhead {:.1} us  quantised GEMMs {:.3}  score bytes {:.1} B",
        r.start.compute,
        r.start.memory,
        r.start.kernel_overhead_s * 1e6,
        r.start.token_overhead_s * 1e6,
        r.start.quantised_compute,
        r.start.score_bytes
    );
    let _ = writeln!(
        s,
        "  fitted  compute {:.3}  memory {:.3}  kernel overhead {:.2} us  token overhead {:.1} us  quantised GEMMs {:.3}  score bytes {:.1} B  ({} iterations)",
        e.compute,
        e.memory,
        e.kernel_overhead.get() * 1e6,
        e.token_overhead.get() * 1e6,
        e.quantised_compute,
        e.score_bytes.get(),
        r.fit.iterations
    );
    let m = |x: &Option<ErrorStats>| x.as_ref().map_or("-".to_string(), |s| format!("{:.1}%", s.mape));
    let _ = writeln!(
        s,
        "  in-sample MAPE: uncalibrated {}, calibrated {}",
        m(&r.in_sample_uncalibrated),
        m(&r.in_sample_calibrated)
    );
    let _ = writeln!(s, "  held out of the fit:");
    for h in &r.held_out {
        let _ = writeln!(
            s,
            "    {:<70} fitted on {:>4} rows: MAPE uncalibrated {:>7}, calibrated {:>7}{}",
            h.held_out,
            h.fitted_on,
            m(&h.uncalibrated),
            m(&h.calibrated),
            h.note.as_deref().map(|n| format!("  ({n})")).unwrap_or_default()
        );
    }
    if let Some(e) = &r.energy {
        let scales = e.fit.map_or("-".to_string(), |f| {
            format!(
                "compute x{:.3}, memory x{:.3}, static x{:.3}",
                f.compute, f.memory, f.static_
            )
        });
        let _ = writeln!(
            s,
            "  energy ({} power / energy rows): scales {scales}; in-sample MAPE uncalibrated {}, calibrated {}{}",
            e.rows,
            m(&e.uncalibrated),
            m(&e.calibrated),
            e.note.as_deref().map(|n| format!("  ({n})")).unwrap_or_default()
        );
    }
    let _ = writeln!(s, "  wrote {}", r.out);
    s
}
