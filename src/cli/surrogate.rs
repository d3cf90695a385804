//! `llmforge surrogate ...`: fit, evaluate, cross-validate and query the loss surrogate.

use super::write_output;
use clap::{Args, Subcommand, ValueEnum};
use llmforge::model;
use llmforge::output::Outputs;
use llmforge::quality::dataset::{self, Dataset};
use llmforge::quality::surrogate::{
    self, FitConfig, Prediction, Resample, Surrogate, cross_validate, features, fold_assignment,
    metrics::Metrics, nested_cross_validate,
};
use miette::{IntoDiagnostic, miette};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum SurrogateCmd {
    /// Fit a bootstrap ensemble of gradient-boosted trees on an LLMForge CSV.
    Fit {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "val_loss")]
        target: String,
        /// Where to write the model (JSON).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        fit: FitArgs,
    },
    /// Evaluate a saved model on an LLMForge CSV (every metric).
    Eval {
        /// A surrogate file or a shipped surrogate's name (llmforge-200m).
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// k-fold cross-validation on an LLMForge CSV (seeded split).
    Cv {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "val_loss")]
        target: String,
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Seed of the fold split (defaults to --seed).
        #[arg(long)]
        split_seed: Option<u64>,
        #[command(flatten)]
        fit: FitArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write each row's id, line, fold, target, out-of-fold mu and sigma and its features
        /// (CSV), so baselines can be run on the same folds and features.
        #[arg(long)]
        export: Option<PathBuf>,
        /// Nested CV: candidate depths of the regime classifiers (e.g. `3,4`); each outer
        /// fold picks one by an inner CV of its own training rows (overrides
        /// --classifier-max-depth).
        #[arg(long, value_delimiter = ',')]
        select_classifier_depth: Vec<usize>,
        /// Folds of the inner CV of --select-classifier-depth.
        #[arg(long, default_value_t = 4)]
        inner_folds: usize,
    },
    /// Predict mu and sigma for the rows of an LLMForge CSV or for one model file.
    Predict {
        /// A surrogate file or a shipped surrogate's name (llmforge-200m).
        #[arg(long)]
        model: PathBuf,
        #[arg(long, conflicts_with = "arch", required_unless_present = "arch")]
        data: Option<PathBuf>,
        /// A preset name or model file (YAML, config.json, LLMForge layer list).
        #[arg(long)]
        arch: Option<String>,
        /// Optimism of the acquisition value mu - beta * sigma.
        #[arg(long, default_value_t = 1.0)]
        beta: f64,
        #[arg(long, value_enum, default_value_t = PredictFormat::Table)]
        format: PredictFormat,
        /// Write to this file (atomically) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct FitArgs {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Bootstrap ensemble size.
    #[arg(long, default_value_t = FitConfig::default().ensemble)]
    ensemble: usize,
    /// Boosting rounds per member.
    #[arg(long, default_value_t = FitConfig::default().iterations)]
    iterations: usize,
    #[arg(long, default_value_t = FitConfig::default().learning_rate)]
    learning_rate: f32,
    #[arg(long, default_value_t = FitConfig::default().max_depth)]
    max_depth: usize,
    #[arg(long, default_value_t = FitConfig::default().subsample)]
    subsample: f32,
    #[arg(long, default_value_t = FitConfig::default().colsample)]
    colsample: f64,
    #[arg(long, default_value_t = FitConfig::default().min_leaf_weight)]
    min_leaf_weight: f32,
    /// Fit the raw target instead of ln(y - shift).
    #[arg(long)]
    raw_target: bool,
    /// Rows per ensemble member: `bootstrap`, `all`, or a fraction drawn without replacement.
    #[arg(long, default_value = "0.8", value_parser = parse_resample)]
    resample: Resample,
    /// Targets above this value form the high (failed-run) regime, recognised by a classifier.
    #[arg(long, default_value_t = 4.5)]
    regime_split: f64,
    /// One regressor on every row, no high-regime classifier.
    #[arg(long)]
    single_regime: bool,
    /// Boosting rounds of each regime classifier.
    #[arg(long, default_value_t = FitConfig::default().classifier_iterations)]
    classifier_iterations: usize,
    #[arg(long, default_value_t = FitConfig::default().classifier_max_depth)]
    classifier_max_depth: usize,
    /// Share of the out-of-bag residuals behind each level's residual table, in (0, 1]; by
    /// default the share with the least out-of-bag MAE on the training rows.
    #[arg(long)]
    residual_window: Option<f64>,
}

fn parse_resample(s: &str) -> Result<Resample, String> {
    match s {
        "bootstrap" => Ok(Resample::Bootstrap),
        "all" => Ok(Resample::None),
        _ => match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(Resample::Subsample { fraction: f }),
            _ => Err(format!(
                "expected `bootstrap`, `all` or a fraction in (0, 1], found `{s}`"
            )),
        },
    }
}

impl FitArgs {
    fn config(&self) -> FitConfig {
        FitConfig {
            seed: self.seed,
            ensemble: self.ensemble,
            iterations: self.iterations,
            learning_rate: self.learning_rate,
            max_depth: self.max_depth,
            subsample: self.subsample,
            colsample: self.colsample,
            min_leaf_weight: self.min_leaf_weight,
            log_target: !self.raw_target,
            resample: self.resample,
            regime_split: (!self.single_regime).then_some(self.regime_split),
            classifier_iterations: self.classifier_iterations,
            classifier_max_depth: self.classifier_max_depth,
            residual_window: self.residual_window,
            ..FitConfig::default()
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PredictFormat {
    Table,
    Json,
    Csv,
}

fn read_data(path: &Path, target: Option<&str>) -> miette::Result<Dataset> {
    let ds = dataset::read_llmforge_csv(path, target).map_err(|e| miette!("{e}"))?;
    eprint!("{}", ds.report());
    Ok(ds)
}

/// A surrogate file, or a shipped surrogate's name when no such file exists.
fn load_model(path: &Path) -> miette::Result<Surrogate> {
    let file = path.display().to_string();
    if !path.exists() {
        if let Some(s) = llmforge::quality::shipped_surrogate(&file) {
            return s.map_err(|e| miette!("{e}"));
        }
    }
    Surrogate::load(path).map_err(|e| miette!("{e}"))
}

fn metrics_table(title: &str, m: &Metrics) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{title} (n = {})", m.n);
    let _ = writeln!(s, "  MAE              {:.4}", m.mae);
    let _ = writeln!(s, "  RMSE             {:.4}", m.rmse);
    let _ = writeln!(s, "  Spearman         {:.4}", m.spearman);
    let _ = writeln!(s, "  Kendall tau-b    {:.4}", m.kendall_tau_b);
    let _ = writeln!(s, "  MAE true top-5%  {:.4} ({} rows)", m.top5_mae, m.top5_count);
    let _ = writeln!(s, "  k@1%             {} (top set {})", m.k_at_1pct, m.top1_count);
    let _ = writeln!(s, "  k@5%             {} (top set {})", m.k_at_5pct, m.top5_count);
    s
}

/// Pretty JSON (with a final newline) in the envelope every `--format json` output carries.
fn json<T: Serialize>(v: &T) -> miette::Result<String> {
    llmforge::trace::json_document(&llmforge::trace::JsonMeta::default(), v).into_diagnostic()
}

#[derive(Serialize)]
struct EvalReport<'a> {
    model: String,
    data: String,
    target: &'a str,
    in_sample: bool,
    metrics: Metrics,
}

#[derive(Serialize)]
struct CvReport<'a> {
    data: String,
    target: &'a str,
    folds: usize,
    split_seed: u64,
    config: &'a FitConfig,
    pooled: &'a Metrics,
    per_fold: &'a [Metrics],
    /// Nested CV: the classifier depth chosen for each outer fold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    selected_classifier_depth: Vec<usize>,
}

#[derive(Serialize)]
struct PredRow<'a> {
    id: &'a str,
    mu: f64,
    sigma: f64,
    acquisition: f64,
}

pub fn run(cmd: SurrogateCmd) -> miette::Result<()> {
    match cmd {
        SurrogateCmd::Fit {
            data,
            target,
            out,
            fit,
        } => {
            Outputs::new()
                .input("--data", &data)
                .file("--out", Some(&out))
                .check()
                .into_diagnostic()?;
            let ds = read_data(&data, Some(&target))?;
            let cfg = fit.config();
            let t0 = std::time::Instant::now();
            let s = Surrogate::fit_models(&ds.models(), &ds.targets(), &target, &cfg)
                .map_err(|e| miette!("{e}"))?;
            let secs = t0.elapsed().as_secs_f64();
            write_output(&out, &s.to_json())?;
            eprintln!(
                "fitted {} members x {} trees on {} rows in {secs:.2} s; data hash {}; wrote {}",
                s.members.len(),
                cfg.iterations,
                s.n_train,
                s.data_hash,
                out.display()
            );
            if let Some(d) = &s.domain {
                eprintln!("training domain: {d}");
            }
            if let Some(r) = &s.regime {
                eprintln!(
                    "high regime: {} training rows above {} (median {:.4}), {} classifier trees per member",
                    r.n_high, r.split, r.value, cfg.classifier_iterations
                );
                let tried: Vec<String> = r
                    .window_oob_mae
                    .iter()
                    .map(|[w, mae]| format!("{w} -> {mae:.4}"))
                    .collect();
                eprintln!(
                    "low regime: residual tables at {} levels, window {} of the out-of-bag rows (out-of-bag MAE by window: {})",
                    r.residual_levels.len(),
                    r.residual_window,
                    tried.join(", ")
                );
            }
            println!("feature importance of the regressors (share of split gain), top 15:");
            for imp in s.importance.iter().take(15) {
                println!("  {:<28} {:.4}", imp.feature, imp.gain_share);
            }
            Ok(())
        }
        SurrogateCmd::Eval { model, data, format } => {
            let s = load_model(&model)?;
            let ds = read_data(&data, Some(&s.target))?;
            let y = ds.targets();
            let models = ds.models();
            let x = features::extract_matrix(models.iter().copied());
            let in_sample = surrogate::data_hash(&s.target, &x, &y) == s.data_hash;
            let m = s.evaluate(&models, &y);
            match format {
                Format::Json => print!(
                    "{}",
                    json(&EvalReport {
                        model: model.display().to_string(),
                        data: data.display().to_string(),
                        target: &s.target,
                        in_sample,
                        metrics: m,
                    })?
                ),
                Format::Table => {
                    let note = if in_sample {
                        " [the training data: in-sample]"
                    } else {
                        ""
                    };
                    print!(
                        "{}",
                        metrics_table(&format!("{} on {}{note}", s.target, data.display()), &m)
                    );
                }
            }
            Ok(())
        }
        SurrogateCmd::Cv {
            data,
            target,
            folds,
            split_seed,
            fit,
            format,
            export,
            select_classifier_depth,
            inner_folds,
        } => {
            Outputs::new()
                .input("--data", &data)
                .file("--export", export.as_deref())
                .check()
                .into_diagnostic()?;
            let ds = read_data(&data, Some(&target))?;
            let cfg = fit.config();
            let split_seed = split_seed.unwrap_or(cfg.seed);
            let models = ds.models();
            let x = features::extract_matrix(models.iter().copied());
            let y = ds.targets();
            let fold = fold_assignment(y.len(), folds, split_seed);
            let r = if select_classifier_depth.is_empty() {
                cross_validate(&x, &y, &fold, folds, &cfg)
            } else {
                let candidates: Vec<FitConfig> = select_classifier_depth
                    .iter()
                    .map(|&d| FitConfig {
                        classifier_max_depth: d,
                        ..cfg.clone()
                    })
                    .collect();
                nested_cross_validate(&x, &y, &fold, folds, &candidates, inner_folds, split_seed)
            }
            .map_err(|e| miette!("{e}"))?;
            let depths: Vec<usize> = r.selected.iter().map(|&c| select_classifier_depth[c]).collect();
            if let Some(path) = &export {
                write_output(path, &export_csv(&ds, &x, &r.fold, &r.predictions))?;
                eprintln!(
                    "wrote folds, out-of-fold predictions and features to {}",
                    path.display()
                );
            }
            match format {
                Format::Json => print!(
                    "{}",
                    json(&CvReport {
                        data: data.display().to_string(),
                        target: &target,
                        folds,
                        split_seed,
                        config: &cfg,
                        pooled: &r.pooled,
                        per_fold: &r.per_fold,
                        selected_classifier_depth: depths,
                    })?
                ),
                Format::Table => {
                    let title = format!(
                        "{folds}-fold CV of {target} (split seed {split_seed}, ensemble {}, {} trees, depth {}), out-of-fold",
                        cfg.ensemble, cfg.iterations, cfg.max_depth
                    );
                    print!("{}", metrics_table(&title, &r.pooled));
                    println!("  per fold MAE / Kendall:");
                    for (i, m) in r.per_fold.iter().enumerate() {
                        let chosen = depths
                            .get(i)
                            .map(|d| format!("  (classifier depth {d}, chosen by inner CV)"))
                            .unwrap_or_default();
                        println!(
                            "    fold {i}: n {:>4}  MAE {:.4}  tau-b {:.4}{chosen}",
                            m.n, m.mae, m.kendall_tau_b
                        );
                    }
                }
            }
            Ok(())
        }
        SurrogateCmd::Predict {
            model,
            data,
            arch,
            beta,
            format,
            out,
        } => {
            Outputs::new()
                .input("--model", &model)
                .inputs("--data", &data)
                .inputs("--arch", &arch)
                .file("--out", out.as_deref())
                .check()
                .into_diagnostic()?;
            let s = load_model(&model)?;
            let (ids, preds): (Vec<String>, Vec<Prediction>) = match (&data, &arch) {
                (Some(path), _) => {
                    let ds = read_data(path, None)?;
                    let p = s.predict_models(ds.models());
                    (ds.rows.iter().map(|r| r.id.clone()).collect(), p)
                }
                (None, Some(spec)) => {
                    let m = model::load(spec)?;
                    (vec![m.name.clone()], vec![s.predict(&m)])
                }
                (None, None) => return Err(miette!("give --data <CSV> or --arch <model file>")),
            };
            let rows: Vec<PredRow> = ids
                .iter()
                .zip(&preds)
                .map(|(id, p)| PredRow {
                    id,
                    mu: p.mu,
                    sigma: p.sigma,
                    acquisition: p.optimistic(beta),
                })
                .collect();
            let text = match format {
                PredictFormat::Json => json(&serde_json::json!({ "rows": rows }))?,
                PredictFormat::Csv => {
                    let mut t = String::from("id,mu,sigma,acquisition\n");
                    for r in &rows {
                        let _ = writeln!(t, "{},{},{},{}", r.id, r.mu, r.sigma, r.acquisition);
                    }
                    t
                }
                PredictFormat::Table => {
                    let mut t = format!(
                        "{:<24} {:>9} {:>9} {:>12}\n",
                        "id",
                        "mu",
                        "sigma",
                        format!("mu-{beta}*sig")
                    );
                    for r in &rows {
                        let _ = writeln!(
                            t,
                            "{:<24} {:>9.4} {:>9.4} {:>12.4}",
                            r.id, r.mu, r.sigma, r.acquisition
                        );
                    }
                    t
                }
            };
            match out {
                Some(path) => write_output(&path, &text),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
    }
}

/// id,line,fold,target,mu,sigma then every feature, one row per data row.
fn export_csv(ds: &Dataset, x: &[f64], fold: &[usize], preds: &[Prediction]) -> String {
    let mut t = String::from("id,line,fold,target,mu,sigma");
    for n in features::feature_names() {
        t.push(',');
        t.push_str(&n);
    }
    t.push('\n');
    for (i, row) in ds.rows.iter().enumerate() {
        let _ = write!(
            t,
            "{},{},{},{},{},{}",
            row.id,
            row.line,
            fold[i],
            row.target.unwrap_or(f64::NAN),
            preds[i].mu,
            preds[i].sigma
        );
        for v in &x[i * features::N_FEATURES..(i + 1) * features::N_FEATURES] {
            let _ = write!(t, ",{v}");
        }
        t.push('\n');
    }
    t
}
