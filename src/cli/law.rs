//! `llmforge law ...`: fit scaling laws to CSV data, predict with them, cross-validate them.

use super::write_output;
use clap::{Args, Subcommand, ValueEnum};
use llmforge::output::Outputs;
use llmforge::quality::law::{
    self, ColumnMap, CsvSpec, FitOptions, FitSpec, FittedLaw, Grid, Input, Law, LawData, LawForm, LawInputs,
    NonFinite,
};
use miette::{IntoDiagnostic, Result, WrapErr, miette};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum LawCmd {
    /// Fit a law to CSV data (Huber loss on ln L, L-BFGS from a grid of starts) and write the
    /// law file (JSON).
    Fit(FitArgs),
    /// Predict loss with a law file, for one point or for every row of a CSV file.
    Predict(PredictArgs),
    /// Evaluate a law file's Huber objective on CSV data (e.g. published coefficients).
    Eval(EvalArgs),
    /// Leave-one-group-out cross-validation: hold out each group (e.g. model shape) in turn.
    Cv(CvArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormArg {
    Chinchilla,
    Gemstones,
    GemstonesNd,
    Conditional,
}

impl From<FormArg> for LawForm {
    fn from(f: FormArg) -> LawForm {
        match f {
            FormArg::Chinchilla => LawForm::Chinchilla,
            FormArg::Gemstones => LawForm::Gemstones,
            FormArg::GemstonesNd => LawForm::GemstonesNd,
            FormArg::Conditional => LawForm::Conditional,
        }
    }
}

/// A start grid: a preset name or a JSON file holding a [`Grid`].
#[derive(Clone)]
pub struct GridArg(String);

impl std::str::FromStr for GridArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(GridArg(s.to_string()))
    }
}

impl std::fmt::Display for GridArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl GridArg {
    /// paper: the published recipe (4,500 starts for 2 variables, 4,050,000 for 4); coarse: 128
    /// for 2 variables, 8,192 for 4; staged: coarse for (N, D), then 81 starts of the Gemstones
    /// law seeded from that fit; none: warm starts only; anything else: a JSON grid file.
    fn grid(&self) -> Result<Grid> {
        Ok(match self.0.as_str() {
            "paper" => Grid::paper(),
            "coarse" => Grid::coarse(),
            "staged" => Grid::staged(),
            "none" => Grid::none(),
            path => {
                let text = std::fs::read_to_string(path)
                    .into_diagnostic()
                    .wrap_err_with(|| {
                        format!("--grid {path}: not paper|coarse|staged|none, nor a readable file")
                    })?;
                serde_json::from_str(&text).map_err(|e| {
                    miette!(
                        "{path}: line {}, column {}: bad grid file: {e}",
                        e.line(),
                        e.column()
                    )
                })?
            }
        })
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// Options shared by commands that read law data.
#[derive(Args)]
pub struct DataArgs {
    /// CSV file with a header row.
    #[arg(long)]
    data: PathBuf,
    /// Map a logical column to a CSV column: `--col params="Model Size"`. Logical columns:
    /// params, tokens, loss, width, depth, ffn_ratio (default: same name).
    #[arg(long = "col", value_name = "LOGICAL=CSV")]
    cols: Vec<String>,
    /// Leave out rows with missing / non-finite values (they are listed) instead of failing.
    #[arg(long)]
    skip_non_finite: bool,
}

impl DataArgs {
    fn load(
        &self,
        required: &[Input],
        optional: &[Input],
        loss: bool,
        group_by: Vec<String>,
    ) -> Result<LawData> {
        let columns = ColumnMap::parse(&self.cols).map_err(|e| miette!("{e}"))?;
        let spec = CsvSpec {
            columns,
            required: required.to_vec(),
            optional: optional.to_vec(),
            loss,
            group_by,
            non_finite: if self.skip_non_finite {
                NonFinite::Skip
            } else {
                NonFinite::Error
            },
        };
        let data = law::load_csv(&self.data, &spec).map_err(|e| miette!("{e}"))?;
        if !data.skipped.is_empty() {
            eprintln!(
                "{}: left out {} row(s) with missing / non-finite values, at lines {}",
                data.path,
                data.skipped.len(),
                data.skipped
                    .iter()
                    .map(|s| s.line.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(data)
    }
}

/// Options of the optimiser.
#[derive(Args)]
pub struct OptimArgs {
    /// Huber delta on ln L residuals.
    #[arg(long, default_value_t = 1e-4)]
    huber_delta: f64,
    /// Start grid: paper | coarse | staged | none | a JSON grid file (default: staged for
    /// gemstones, coarse otherwise).
    #[arg(long)]
    grid: Option<GridArg>,
    /// Coarser Huber deltas run before the target delta for each start (comma-separated;
    /// `none` for no continuation).
    #[arg(long, default_value = "1e-2,1e-3")]
    continuation: String,
    /// Polish the best N runs with restarted L-BFGS.
    #[arg(long, default_value_t = 8)]
    polish: usize,
    /// Conditional law: take L_opt from this Chinchilla law file instead of fitting it jointly.
    #[arg(long, value_name = "FILE")]
    l_opt: Option<PathBuf>,
}

impl OptimArgs {
    /// Registers the grid and L_opt files (when given as files) as inputs.
    fn inputs<'a>(&self, outputs: &'a mut Outputs) -> &'a mut Outputs {
        outputs
            .inputs("--grid", self.grid.iter().map(|g| g.to_string()))
            .inputs("--l-opt", &self.l_opt)
    }

    fn options(&self, form: LawForm) -> Result<FitOptions> {
        let continuation = if self.continuation.trim() == "none" {
            Vec::new()
        } else {
            self.continuation
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| *v > 0.0 && v.is_finite())
                        .ok_or_else(|| {
                            miette!(
                                "--continuation: `{s}` is not a positive number (expected e.g. 1e-2,1e-3)"
                            )
                        })
                })
                .collect::<Result<Vec<f64>>>()?
        };
        if !(self.huber_delta > 0.0 && self.huber_delta.is_finite()) {
            return Err(miette!(
                "--huber-delta: expected a positive number, got {}",
                self.huber_delta
            ));
        }
        Ok(FitOptions {
            delta: self.huber_delta,
            grid: match &self.grid {
                Some(g) => g.grid()?,
                None if form == LawForm::Gemstones => Grid::staged(),
                None => Grid::coarse(),
            },
            continuation,
            polish: self.polish,
            ..FitOptions::default()
        })
    }

    fn spec(&self, form: LawForm, data: &LawData) -> Result<FitSpec> {
        let mut spec = FitSpec::new(form);
        if form == LawForm::Conditional {
            spec.ratio = data.inputs.contains(&Input::FfnRatio);
            if let Some(path) = &self.l_opt {
                let given = FittedLaw::load(path).map_err(|e| miette!("{e}"))?;
                match given.law {
                    Law::Chinchilla(c) => spec.l_opt = Some(c),
                    other => {
                        return Err(miette!(
                            "{}: --l-opt needs a chinchilla law, found {}",
                            path.display(),
                            other.form().name()
                        ));
                    }
                }
            }
        } else if self.l_opt.is_some() {
            return Err(miette!("--l-opt applies to --form conditional only"));
        }
        Ok(spec)
    }
}

#[derive(Args)]
pub struct FitArgs {
    #[arg(long, value_enum)]
    form: FormArg,
    #[command(flatten)]
    data: DataArgs,
    /// Where to write the fitted law (JSON).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    optim: OptimArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args)]
pub struct PredictArgs {
    /// Law file (JSON, as written by `law fit`).
    #[arg(long)]
    law: PathBuf,
    #[arg(long)]
    params: Option<f64>,
    #[arg(long)]
    tokens: Option<f64>,
    #[arg(long)]
    width: Option<f64>,
    #[arg(long)]
    depth: Option<f64>,
    #[arg(long)]
    ffn_ratio: Option<f64>,
    /// Predict every row of this CSV file instead of one point.
    #[arg(long, conflicts_with_all = ["params", "tokens", "width", "depth", "ffn_ratio"])]
    data: Option<PathBuf>,
    /// Column mappings for --data, as for `law fit`.
    #[arg(long = "col", value_name = "LOGICAL=CSV", requires = "data")]
    cols: Vec<String>,
    #[arg(long, requires = "data")]
    skip_non_finite: bool,
    /// Write the predictions to this file (atomically) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long)]
    law: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 1e-4)]
    huber_delta: f64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args)]
pub struct CvArgs {
    #[arg(long, value_enum)]
    form: FormArg,
    #[command(flatten)]
    data: DataArgs,
    /// CSV columns whose values define a group (comma-separated), e.g. d_model,n_layers,n_heads.
    #[arg(long, value_delimiter = ',', required = true)]
    group_by: Vec<String>,
    #[command(flatten)]
    optim: OptimArgs,
    /// Start grid of each fold's fit, besides the full-data fit as warm start (as --grid).
    #[arg(long, default_value = "none")]
    fold_grid: GridArg,
    /// Keep only the lowest-loss row of each group (e.g. each shape's best hyperparameters).
    #[arg(long)]
    best_per_group: bool,
    /// Also write the full report (per fold, per row) as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub fn run(cmd: LawCmd) -> Result<()> {
    match cmd {
        LawCmd::Fit(a) => run_fit(a),
        LawCmd::Predict(a) => run_predict(a),
        LawCmd::Eval(a) => run_eval(a),
        LawCmd::Cv(a) => run_cv(a),
    }
}

/// Pretty JSON in the envelope every `--format json` output carries (the llmforge version).
fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    llmforge::trace::json_document(&llmforge::trace::JsonMeta::default(), v).into_diagnostic()
}

fn coefficient_table(law: &Law) -> String {
    let mut s = String::new();
    for (name, v) in law.coefficients() {
        s.push_str(&format!("  {name:<18} {v:>16.10}\n"));
    }
    s
}

fn run_fit(a: FitArgs) -> Result<()> {
    a.optim
        .inputs(Outputs::new().input("--data", &a.data.data))
        .file("--out", Some(&a.out))
        .check()
        .into_diagnostic()?;
    let form: LawForm = a.form.into();
    let optional: &[Input] = if form == LawForm::Conditional {
        &[Input::FfnRatio]
    } else {
        &[]
    };
    let data = a.data.load(form.inputs(), optional, true, Vec::new())?;
    let spec = a.optim.spec(form, &data)?;
    let opts = a.optim.options(form)?;
    let start = Instant::now();
    let out = law::fit(&spec, &data.pairs(), &opts).map_err(|e| miette!("{}: {e}", data.path))?;
    let elapsed = start.elapsed().as_secs_f64();
    let fitted = FittedLaw::from_fit(&data, &opts, &out);
    write_output(&a.out, &fitted.to_json())?;
    eprintln!(
        "fit {} on {} rows: {} starts ({} finite) in {elapsed:.2} s, {} threads",
        form.name(),
        data.rows.len(),
        out.starts,
        out.finite_starts,
        rayon::current_num_threads()
    );
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "form": form.name(),
                "coefficients": out.law.coefficients().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "law": out.law,
                "objective": out.objective,
                "starts": out.starts,
                "best_start": out.best_start,
                "data_hash": data.hash,
                "out": a.out.display().to_string(),
            });
            print!("{}", json(&v)?);
        }
        Format::Table => {
            println!("form        {}", form.name());
            println!(
                "data        {} ({} rows, {})",
                data.path,
                data.rows.len(),
                data.hash
            );
            println!("coefficients");
            print!("{}", coefficient_table(&out.law));
            println!(
                "objective   {:.7e} (sum of Huber, delta {}), mean {:.7e} over {} rows",
                out.objective.sum, out.objective.delta, out.objective.mean, out.objective.rows
            );
            println!(
                "starts      {} ({} finite), best #{}",
                out.starts, out.finite_starts, out.best_start
            );
            println!("written     {}", a.out.display());
        }
    }
    Ok(())
}

fn run_predict(a: PredictArgs) -> Result<()> {
    Outputs::new()
        .input("--law", &a.law)
        .inputs("--data", &a.data)
        .file("--out", a.out.as_deref())
        .check()
        .into_diagnostic()?;
    let fitted = FittedLaw::load(&a.law).map_err(|e| miette!("{e}"))?;
    let needed = fitted.inputs();
    let text = match &a.data {
        None => {
            let mut x = LawInputs::default();
            let given = [
                (Input::Params, a.params),
                (Input::Tokens, a.tokens),
                (Input::Width, a.width),
                (Input::Depth, a.depth),
                (Input::FfnRatio, a.ffn_ratio),
            ];
            for (input, v) in given {
                if let Some(v) = v {
                    input.set(&mut x, v);
                } else if needed.contains(&input) {
                    return Err(miette!(
                        "the {} law needs --{}",
                        fitted.law.form().name(),
                        input.name().replace('_', "-")
                    ));
                }
            }
            let loss = fitted.try_predict_loss(&x).map_err(|e| miette!("{e}"))?;
            match a.format {
                Format::Json => json(&serde_json::json!({
                    "form": fitted.law.form().name(),
                    "inputs": x,
                    "predicted_loss": loss,
                }))?,
                Format::Table => format!("{loss:.6}\n"),
            }
        }
        Some(path) => {
            let data_args = DataArgs {
                data: path.clone(),
                cols: a.cols.clone(),
                skip_non_finite: a.skip_non_finite,
            };
            let data = data_args.load(needed, &[], false, Vec::new())?;
            let preds: Vec<f64> = data.rows.iter().map(|r| fitted.predict_loss(&r.inputs)).collect();
            match a.format {
                Format::Json => {
                    let rows: Vec<_> = data
                        .rows
                        .iter()
                        .zip(&preds)
                        .map(|(r, p)| serde_json::json!({"line": r.line, "inputs": r.inputs, "predicted_loss": p}))
                        .collect();
                    json(&serde_json::json!({ "rows": rows }))?
                }
                Format::Table => {
                    let mut s = String::from("line");
                    for i in needed {
                        s.push(',');
                        s.push_str(data.columns.get(i.name()).map(String::as_str).unwrap_or(i.name()));
                    }
                    s.push_str(",predicted_loss\n");
                    for (r, p) in data.rows.iter().zip(&preds) {
                        s.push_str(&r.line.to_string());
                        for i in needed {
                            s.push_str(&format!(",{}", i.get(&r.inputs)));
                        }
                        s.push_str(&format!(",{p}\n"));
                    }
                    s
                }
            }
        }
    };
    match &a.out {
        Some(path) => write_output(path, &text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn run_eval(a: EvalArgs) -> Result<()> {
    let fitted = FittedLaw::load(&a.law).map_err(|e| miette!("{e}"))?;
    let data = a.data.load(fitted.inputs(), &[], true, Vec::new())?;
    let pairs = data.pairs();
    let sum = law::huber_objective_sum(&fitted.law, &pairs, a.huber_delta)
        .ok_or_else(|| miette!("{}: the law's prediction is not finite on some row", data.path))?;
    let n = pairs.len() as f64;
    let mae = pairs
        .iter()
        .map(|(x, l)| (fitted.predict_loss(x) - l).abs())
        .sum::<f64>()
        / n;
    let mape = 100.0
        * pairs
            .iter()
            .map(|(x, l)| (fitted.predict_loss(x) - l).abs() / l)
            .sum::<f64>()
        / n;
    match a.format {
        Format::Json => print!(
            "{}",
            json(&serde_json::json!({
                "form": fitted.law.form().name(),
                "objective": {"delta": a.huber_delta, "sum": sum, "mean": sum / n, "rows": pairs.len()},
                "mae": mae, "mape_percent": mape, "data_hash": data.hash,
            }))?
        ),
        Format::Table => {
            println!("form        {}", fitted.law.form().name());
            println!("data        {} ({} rows, {})", data.path, pairs.len(), data.hash);
            println!(
                "objective   {sum:.7e} (sum of Huber, delta {}), mean {:.7e}",
                a.huber_delta,
                sum / n
            );
            println!("MAE         {mae:.5} nats, MAPE {mape:.3}%");
        }
    }
    Ok(())
}

fn run_cv(a: CvArgs) -> Result<()> {
    a.optim
        .inputs(Outputs::new().input("--data", &a.data.data))
        .file("--out", a.out.as_deref())
        .check()
        .into_diagnostic()?;
    let form: LawForm = a.form.into();
    let optional: &[Input] = if form == LawForm::Conditional {
        &[Input::FfnRatio]
    } else {
        &[]
    };
    let mut data = a.data.load(form.inputs(), optional, true, a.group_by.clone())?;
    if a.best_per_group {
        data = data.best_per_group();
    }
    let spec = a.optim.spec(form, &data)?;
    let opts = a.optim.options(form)?;
    let pairs = data.pairs();
    let start = Instant::now();
    let full = law::fit(&spec, &pairs, &opts).map_err(|e| miette!("{}: {e}", data.path))?;
    let fold_opts = FitOptions {
        grid: a.fold_grid.grid()?,
        warm_starts: vec![full.law],
        ..opts.clone()
    };
    let groups: Vec<String> = data.rows.iter().map(|r| r.group.clone()).collect();
    let report = law::leave_group_out(&spec, &pairs, &groups, &fold_opts)
        .map_err(|e| miette!("{}: {e}", data.path))?;
    eprintln!(
        "cv {}: full fit + {} folds in {:.2} s",
        form.name(),
        report.groups,
        start.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.out {
        write_output(path, &json(&report)?)?;
    }
    match a.format {
        Format::Json => print!(
            "{}",
            json(&serde_json::json!({
                "form": form.name(), "groups": report.groups, "rows": report.rows,
                "best_per_group": a.best_per_group,
                "mae": report.mae, "mape_percent": report.mape, "rmse": report.rmse,
                "max_abs_error": report.max_abs_error, "full_fit_objective": full.objective,
            }))?
        ),
        Format::Table => {
            println!("form        {}", form.name());
            println!("data        {} ({} rows, {})", data.path, report.rows, data.hash);
            println!(
                "held out    each of {} groups by {}{}",
                report.groups,
                a.group_by.join(","),
                if a.best_per_group {
                    " (best row per group only)"
                } else {
                    ""
                }
            );
            println!(
                "full fit    objective {:.7e} (sum of Huber, delta {})",
                full.objective.sum, full.objective.delta
            );
            println!("MAE         {:.5} nats", report.mae);
            println!("MAPE        {:.3}%", report.mape);
            println!(
                "RMSE        {:.5} nats, max |error| {:.5}",
                report.rmse, report.max_abs_error
            );
        }
    }
    Ok(())
}
