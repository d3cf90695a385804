//! Loss surrogate on the real LLMForge runs: dataset reading with its drop report, features
//! of real rows, cross-validation that must beat trivial predictors, deterministic fit / save /
//! load / predict through the CLI.

use llmforge::model::{Ffn, accounting};
use llmforge::quality::dataset::read_llmforge_csv;
use llmforge::quality::surrogate::metrics::Metrics;
use llmforge::quality::surrogate::{FitConfig, Surrogate, cross_validate, features, fold_assignment};
use std::path::{Path, PathBuf};
use std::process::Command;

fn data_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/surrogate/llmforge-iha-200m-train.csv")
}

fn llmforge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmforge"))
        .args(args)
        .output()
        .expect("run llmforge")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmforge-surrogate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Small, fast settings for tests in debug builds.
fn quick() -> FitConfig {
    FitConfig {
        ensemble: 3,
        iterations: 80,
        learning_rate: 0.1,
        ..FitConfig::default()
    }
}

#[test]
fn reads_the_llmforge_file_and_reports_drops() {
    let ds = read_llmforge_csv(&data_path(), Some("val_loss")).unwrap();
    assert_eq!(ds.slots, 40);
    assert_eq!(ds.rows.len(), 1643);
    let dropped: Vec<(u64, &str)> = ds.dropped.iter().map(|d| (d.line, d.id.as_str())).collect();
    assert_eq!(dropped, vec![(9, "15"), (21, "31"), (34, "47")]);
    assert!(ds.repairs.is_empty());
    let report = ds.report();
    assert!(
        report.contains("dropped 3 rows") && report.contains("line 21 (id 31): `inf`"),
        "{report}"
    );

    // First row (id 4): slots 1, 7, 12, 14, 15, 18, 19 active.
    let r = &ds.rows[0];
    assert_eq!((r.id.as_str(), r.line), ("4", 2));
    let m = &r.model;
    assert_eq!(m.layers.len(), 7);
    assert_eq!(m.d_model, 768);
    // Non-embedding parameters by the IHA formula (+ RMSNorm weights): per layer
    // d*H*Dqk + d*G*Dqk + d*G*Dv + H*Dv*d + 3*d*m.
    let d = 768u64;
    let mut expect = d; // final norm
    for l in &m.layers {
        let Ffn::Dense { width, .. } = l.ffn else {
            panic!("dense FFN")
        };
        expect += 3 * d * width + d;
        if let Some(a) = l.attention {
            expect += d * a.heads * a.d_qk + d * a.kv_groups * (a.d_qk + a.d_v) + a.heads * a.d_v * d + d;
        }
    }
    assert_eq!(accounting::params(m).non_embedding, expect);
    assert_eq!(accounting::params(m).embedding, 50_257 * 768);
    // The file's kv_cache_size column is sum G*(Dqk+Dv) x 1024 / 1e6 = 10.027008 for this row.
    assert_eq!(accounting::kv_elements_per_token(m) * 1024, 10_027_008);

    // Every row's features are finite.
    for row in &ds.rows {
        assert!(
            features::extract(&row.model).iter().all(|v| v.is_finite()),
            "row {}",
            row.id
        );
    }
}

#[test]
fn cross_validation_beats_trivial_predictors() {
    let ds = read_llmforge_csv(&data_path(), Some("val_loss")).unwrap();
    let x = features::extract_matrix(ds.models());
    let y = ds.targets();
    let fold = fold_assignment(y.len(), 5, 42);
    let r = cross_validate(&x, &y, &fold, 5, &quick()).unwrap();
    // Constant predictor: the median of the targets (MAE 0.396 on this file).
    let mut sorted = y.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let constant = Metrics::compute(&vec![median; y.len()], &y);
    assert!(constant.mae > 0.39);
    // Number of layers alone as a (negated) ranking signal.
    let depth: Vec<f64> = ds.rows.iter().map(|r| -(r.model.layers.len() as f64)).collect();
    let depth_tau = Metrics::compute(&depth, &y).kendall_tau_b;
    let p = &r.pooled;
    assert_eq!(p.n, 1643);
    assert!(p.mae < 0.29, "CV MAE {}", p.mae);
    assert!(
        p.kendall_tau_b > 0.45,
        "CV tau {} (depth alone {depth_tau})",
        p.kendall_tau_b
    );
    assert!(p.kendall_tau_b > depth_tau + 0.3);
    assert!(r.predictions.iter().all(|q| q.mu.is_finite() && q.sigma >= 0.0));
}

/// The default surrogate's 5-fold CV on the file (split seed 42), pinned: the figures the
/// README reports. Baselines on the same folds and features (benches/surrogate_baselines.py):
/// random forest on ln(y - shift) MAE 0.2205 / Kendall 0.5728, the best of them on both.
/// The paper's Forge-Former reports test MAE 0.2055 on its own 411-row split; this is below.
#[test]
fn default_cv_figures_are_pinned_and_beat_the_baselines() {
    let ds = read_llmforge_csv(&data_path(), Some("val_loss")).unwrap();
    let x = features::extract_matrix(ds.models());
    let y = ds.targets();
    let fold = fold_assignment(y.len(), 5, 42);
    let cfg = FitConfig::default();
    let r = cross_validate(&x, &y, &fold, 5, &cfg).unwrap();
    let p = &r.pooled;
    let close = |a: f64, b: f64| (a - b).abs() < 5e-5;
    assert!(
        close(p.mae, 0.2048) && close(p.kendall_tau_b, 0.5810),
        "CV MAE {} Kendall {}",
        p.mae,
        p.kendall_tau_b
    );
    assert!(close(p.spearman, 0.7549) && close(p.top5_mae, 0.0673), "{p:?}");
    assert_eq!((p.k_at_1pct, p.k_at_5pct), (834, 1236));
    assert!(p.mae < 0.2205 && p.kendall_tau_b > 0.5728);
    assert!(p.mae < 0.2055);
    // one residual table for every level (the version-2 model, plus Platt scaling) is worse
    let one_table = FitConfig {
        residual_window: Some(1.0),
        ..cfg
    };
    let s = cross_validate(&x, &y, &fold, 5, &one_table).unwrap().pooled;
    assert!(close(s.mae, 0.2113) && close(s.kendall_tau_b, 0.5811), "{s:?}");
    assert!(r.predictions.iter().all(|q| q.mu.is_finite() && q.sigma >= 0.0));
    // sigma (the members' disagreement) ranks the out-of-fold errors: Spearman 0.465 (the
    // version-2 mixture spread, which counted the failure risk itself, ranked them at 0.368)
    let sigma: Vec<f64> = r.predictions.iter().map(|q| q.sigma).collect();
    let err: Vec<f64> = r
        .predictions
        .iter()
        .zip(&y)
        .map(|(q, t)| (q.mu - t).abs())
        .collect();
    let rank = Metrics::compute(&sigma, &err).spearman;
    assert!(close(rank, 0.4654), "Spearman(sigma, |error|) {rank}");
}

#[test]
fn cli_fit_is_deterministic_and_round_trips() {
    let dir = tmpdir("fit");
    let data = data_path();
    let data = data.to_str().unwrap();
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    for out in [&a, &b] {
        let o = llmforge(&[
            "surrogate",
            "fit",
            "--data",
            data,
            "--target",
            "val_loss",
            "--out",
            out.to_str().unwrap(),
            "--seed",
            "7",
            "--ensemble",
            "2",
            "--iterations",
            "40",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("dropped 3 rows"), "{err}");
    }
    let (ja, jb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ja, jb, "same seed must give byte-identical model files");
    let s = Surrogate::from_json(std::str::from_utf8(&ja).unwrap(), "a.json").unwrap();
    assert_eq!(s.members.len(), 2);
    let regime = s.regime.as_ref().expect("two-regime fit by default");
    assert_eq!(regime.classifiers.len(), 2);
    assert_eq!(regime.split, 4.5);
    // the file's rows above 4.5 nats
    assert_eq!(regime.n_high, 118);
    assert_eq!(s.n_train, 1643);
    assert_eq!(s.feature_names, features::feature_names());
    assert!(s.data_hash.starts_with("fnv1a64:"));

    // eval on the training file is flagged in-sample.
    let o = llmforge(&[
        "surrogate",
        "eval",
        "--model",
        a.to_str().unwrap(),
        "--data",
        data,
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["in_sample"], true);
    assert_eq!(v["metrics"]["n"], 1643);

    // predict: one architecture file, and the CSV rows (CSV out, atomically written).
    let arch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llmforge-archs");
    let arch_file = std::fs::read_dir(&arch)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .min()
        .expect("an architecture fixture");
    let o = llmforge(&[
        "surrogate",
        "predict",
        "--model",
        a.to_str().unwrap(),
        "--arch",
        arch_file.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mu = v["rows"][0]["mu"].as_f64().unwrap();
    assert!(mu.is_finite() && v["rows"][0]["sigma"].as_f64().unwrap() >= 0.0);
    let pred = dir.join("pred.csv");
    let o = llmforge(&[
        "surrogate",
        "predict",
        "--model",
        a.to_str().unwrap(),
        "--data",
        data,
        "--format",
        "csv",
        "--out",
        pred.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&pred).unwrap();
    // no target read: all 1,646 rows are predicted, the inf rows included
    assert_eq!(text.lines().count(), 1 + 1646);
    assert!(text.starts_with("id,mu,sigma,acquisition\n4,"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// stderr with miette's wrapping at the terminal width undone.
fn unwrapped(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    s.split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn cli_errors_are_located() {
    let dir = tmpdir("err");
    let src = std::fs::read_to_string(data_path()).unwrap();
    let mut lines: Vec<String> = src.lines().take(4).map(String::from).collect();
    lines[2] = lines[2].replacen(",768,", ",wide,", 1);
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let o = llmforge(&["surrogate", "cv", "--data", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = unwrapped(&o.stderr);
    assert!(
        err.contains("bad.csv:3: column `global_n_embd`: found `wide`, expected a positive integer"),
        "{err}"
    );

    let model = dir.join("m.json");
    std::fs::write(&model, "{\"format\": \"llmforge-surrogate\"").unwrap();
    let o = llmforge(&[
        "surrogate",
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--arch",
        "x",
    ]);
    assert!(!o.status.success());
    let err = unwrapped(&o.stderr);
    assert!(
        err.contains("m.json: not a surrogate model file: line 1 column"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Saved surrogate files with one number changed (to a negative, huge, fractional, zero or
/// out-of-range value, anywhere in the file: tree nodes, feature indices, residual tables,
/// calibration, settings): loading returns a model or a located error, a loaded model
/// predicts without panicking, and every loader of surrogate files agrees on the file.
mod never_panics {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn saved() -> &'static (serde_json::Value, Vec<serde_json::Value>, Vec<f64>) {
        static SAVED: OnceLock<(serde_json::Value, Vec<serde_json::Value>, Vec<f64>)> = OnceLock::new();
        SAVED.get_or_init(|| {
            let ds = read_llmforge_csv(&data_path(), Some("val_loss")).unwrap();
            let x = features::extract_matrix(ds.models());
            let y = ds.targets();
            let cfg = FitConfig {
                ensemble: 2,
                iterations: 4,
                classifier_iterations: 2,
                max_depth: 3,
                ..FitConfig::default()
            };
            let s = Surrogate::fit(&x, &y, "val_loss", &cfg).unwrap();
            let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
            let pointers = crate::hostile::number_pointers(&v)
                .into_iter()
                .map(serde_json::Value::from)
                .collect();
            let rows = x[..20 * features::N_FEATURES].to_vec();
            (v, pointers, rows)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn one_number_changed(
            pick in any::<prop::sample::Index>(),
            value in prop::sample::select(vec![
                -1.0, 0.0, 0.5, 1.0, 2.0, 168.0, 169.0, 255.0, 256.0, 1e9, -1e9, 1e300, -1e300,
                4_294_967_296.0,
            ]),
        ) {
            let (v, pointers, rows) = saved();
            let at = pointers[pick.index(pointers.len())].as_str().unwrap();
            let mut m = v.clone();
            *m.pointer_mut(at).unwrap() = serde_json::json!(value);
            if let Ok(s) = Surrogate::from_json(&m.to_string(), "fuzz.json") {
                let p = s.predict_features(rows);
                prop_assert!(p.is_ok());
            }
            // Every loader agrees (`surrogate predict` and `--quality`): both load the file
            // or both refuse it, and a loaded model predicts finite positive losses.
            let path = std::env::temp_dir().join(format!("llmforge-surrogate-fuzz-{}.json", std::process::id()));
            std::fs::write(&path, m.to_string()).unwrap();
            let direct = Surrogate::load(&path);
            let quality = llmforge::quality::load_loss_model(path.to_str().unwrap(), 20.0);
            prop_assert_eq!(direct.is_ok(), quality.is_ok(), "{:?}", direct.err());
            if let Ok(q) = quality {
                prop_assert!(llmforge::quality::check_predictions(q.as_ref()).is_ok());
            }
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The shipped surrogate (`dsl/surrogates/llmforge-200m.json`, embedded in the binary) is the
/// fit of the shipped training data by the one documented command, `llmforge surrogate fit
/// --data tests/fixtures/surrogate/llmforge-iha-200m-train.csv --out
/// dsl/surrogates/llmforge-200m.json` (default settings, seed 42): refitted here through the
/// CLI, byte for byte.
///
/// Reproducibility: the fit does not depend on the thread count (each ensemble member is
/// one rayon task, fitted single-threaded by forust with `set_parallel(false)`, so every sum
/// runs in one fixed order, and members are collected in order; checked with
/// RAYON_NUM_THREADS=1 and 4) nor on the build profile (release and debug give the same
/// bytes: Rust does not reorder or fuse float operations). It may depend on the platform:
/// `ln` and `exp` (the log target, forust's log-loss sigmoid, Platt scaling) come from
/// the platform's libm, which need not be correctly rounded, and a last-bit difference can
/// move a split. So bytes are compared on x86_64 Linux, where the file was made and CI runs;
/// elsewhere the refit's predictions on the training rows must agree within a mean absolute
/// difference of 0.005 nats (a fortieth of the CV MAE), with every row within 0.25.
#[test]
fn the_shipped_surrogate_is_refitted_byte_for_byte() {
    let dir = tmpdir("shipped");
    let out = dir.join("llmforge-200m.json");
    let o = llmforge(&[
        "surrogate",
        "fit",
        "--data",
        data_path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let refit = std::fs::read_to_string(&out).unwrap();
    let shipped_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dsl/surrogates/llmforge-200m.json");
    let shipped = std::fs::read_to_string(&shipped_path).unwrap();
    // the binary embeds the file as it is on disk
    let (_, embedded) = llmforge::quality::SHIPPED_SURROGATES[0];
    assert!(embedded == shipped, "the embedded surrogate is stale: rebuild");
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        assert!(
            refit == shipped,
            "dsl/surrogates/llmforge-200m.json is not the fit of the shipped data: rerun the command in this test's doc"
        );
    } else {
        let ds = read_llmforge_csv(&data_path(), Some("val_loss")).unwrap();
        let (a, b) = (
            Surrogate::from_json(&refit, "refit").unwrap(),
            Surrogate::from_json(&shipped, "shipped").unwrap(),
        );
        let (pa, pb) = (a.predict_models(ds.models()), b.predict_models(ds.models()));
        let diffs: Vec<f64> = pa.iter().zip(&pb).map(|(x, y)| (x.mu - y.mu).abs()).collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        assert!(mean < 0.005 && diffs.iter().all(|d| *d < 0.25), "mean {mean}");
    }
    let s = llmforge::quality::shipped_surrogate("llmforge-200m")
        .unwrap()
        .unwrap();
    // the default settings: its held-out figures are those pinned in
    // default_cv_figures_are_pinned_and_beat_the_baselines (5-fold CV MAE 0.2048)
    assert_eq!(s.config, FitConfig::default());
    assert_eq!(s.n_train, 1643);
    let d = s
        .domain
        .as_ref()
        .expect("the shipped surrogate knows its training domain");
    assert_eq!(
        d.to_string(),
        "d_model 768, vocab 50257, 1-39 layers (0-39 with attention), H 1-16, G 1-16, Dqk 64-512, Dv 64-512, FFN 512-4096"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--quality auto` scores a candidate with the surrogate inside its training domain and with
/// the Chinchilla prior outside it, and says which and why; an explicit surrogate scores
/// everything but flags what lies outside; the prior has no domain.
#[test]
fn auto_picks_the_surrogate_inside_the_domain_and_the_prior_outside() {
    use llmforge::quality::{ChinchillaPrior, LossModel, Scorer, load_loss_model};
    let auto = load_loss_model("auto", 20.0).unwrap();
    assert!(auto.name().contains("surrogate llmforge-200m"), "{}", auto.name());
    let surrogate = load_loss_model("llmforge-200m", 20.0).unwrap();
    let prior = ChinchillaPrior {
        tokens_per_param: 20.0,
    };
    let ds = read_llmforge_csv(&data_path(), Some("val_loss")).unwrap();
    // every training model is inside, and scored by the surrogate exactly
    for m in ds.models().into_iter().step_by(40) {
        let p = auto.predict(m);
        assert_eq!((p.scorer, p.outside), (Scorer::Surrogate, None));
        assert_eq!(auto.scorer(m), (p.scorer, p.outside));
        assert_eq!(p.mu, surrogate.predict(m).mu);
        assert_eq!(p.sigma, surrogate.predict(m).sigma);
    }
    let inside = ds
        .rows
        .iter()
        .find(|r| r.model.layers.len() == 39)
        .unwrap()
        .model
        .clone();
    assert_eq!(auto.predict(&inside).scorer, Scorer::Surrogate);
    // outside: one layer too many, a head count too large, another width, another family
    let mut deep = inside.clone();
    deep.layers.push(*deep.layers.last().unwrap());
    let mut heads = ds.rows[0].model.clone();
    let a = heads
        .layers
        .iter_mut()
        .find_map(|l| l.attention.as_mut())
        .unwrap();
    a.heads = 20;
    a.kv_groups = 4;
    let smollm = llmforge::model::load("smollm2-135m").unwrap();
    let mut untied = ds.rows[0].model.clone();
    untied.tied_embeddings = false;
    for (m, why) in [
        (&deep, "layers 40 (trained 1-39)"),
        (&heads, "H 20 (trained 1-16)"),
        (&smollm, "d_model 576 (trained 768)"),
        (&untied, "untied embeddings (not in training)"),
    ] {
        let p = auto.predict(m);
        assert_eq!(p.scorer, Scorer::Chinchilla, "{why}");
        assert_eq!(auto.scorer(m), (p.scorer, p.outside));
        assert_eq!(p.outside.map(|o| o.to_string()).as_deref(), Some(why));
        assert_eq!((p.mu, p.sigma), (prior.predict(m).mu, 0.0));
        // the explicit surrogate extrapolates, flagged
        let q = surrogate.predict(m);
        assert_eq!(q.scorer, Scorer::Surrogate);
        assert_eq!(q.outside, p.outside);
        assert_eq!(surrogate.scorer(m), (q.scorer, q.outside));
        // the prior alone has no domain
        assert_eq!(prior.predict(m).outside, None);
    }
    assert!(prior.domain().is_none() && auto.domain().is_some());
    let e = load_loss_model("no-such-model", 20.0).err().unwrap();
    assert!(e.contains("shipped surrogate (llmforge-200m)"), "{e}");
}
