//! Never-panic properties over the inputs the hostile suite samples: workload flags, search
//! checkpoints with one number changed or the text cut anywhere, and law files with any
//! coefficients. A load gives a value or an error; a value loaded is usable (a workload runs,
//! a checkpoint resumes and steps or is refused, a law predicts a finite positive loss).

use llmforge::model;
use llmforge::quality::law::FittedLaw;
use llmforge::search::nsga2::{CacheInCheckpoint, Checkpoint, Nsga2, Settings, Truncation};
use llmforge::search::problems::{Benchmark, BenchmarkProblem};
use llmforge::sim::{self, Engine, Workload};
use proptest::prelude::*;
use std::sync::OnceLock;

/// u64 values around every limit and edge.
fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..5000,
        prop::sample::select(vec![
            0,
            1,
            (1 << 16) - 1,
            1 << 16,
            (1 << 16) + 1,
            (1 << 24) - 1,
            1 << 24,
            (1 << 24) + 1,
            1 << 26,
            1 << 32,
            u64::MAX / 2,
            u64::MAX - 1,
            u64::MAX,
        ]),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any `--prompt`, `--gen`, `--batch`: refused with a message naming the field, or a
    /// workload whose sizes are exact (no overflow) and whose run (here the roofline, kept
    /// to short runs) gives finite numbers.
    #[test]
    fn workload_flags_never_panic(prompt in edgy_u64(), generate in edgy_u64(), batch in edgy_u64()) {
        match Workload::new(prompt, generate, batch) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(w) => {
                let context = w.prompt.checked_add(w.generate).unwrap();
                prop_assert!(context <= llmforge::limits::MAX_CONTEXT);
                prop_assert!(context.checked_mul(w.batch).unwrap() <= llmforge::limits::MAX_TOKENS_IN_FLIGHT);
                if w.prompt <= 4096 && w.generate <= 4096 && w.batch <= 64 {
                    let m = tiny();
                    let s = sim::summary(m, flat_edge(), w, Engine::Roofline);
                    prop_assert!(s.ttft_s.is_finite() && s.tpot_s.is_finite() && s.kv_bytes.is_finite());
                    prop_assert!(s.kv_bytes > 0.0);
                }
            }
        }
    }
}

fn tiny() -> &'static model::Model {
    static M: OnceLock<model::Model> = OnceLock::new();
    M.get_or_init(|| model::preset("smollm2-135m").unwrap())
}

fn flat_edge() -> &'static llmforge::substrate::Substrate {
    static S: OnceLock<llmforge::substrate::Substrate> = OnceLock::new();
    S.get_or_init(|| llmforge::substrate::load("flat-edge", &[]).unwrap())
}

// ---------------------------------------------------------------- checkpoints

fn problem() -> &'static BenchmarkProblem {
    static P: OnceLock<BenchmarkProblem> = OnceLock::new();
    P.get_or_init(|| BenchmarkProblem::standard(Benchmark::Zdt1))
}

/// A real checkpoint (ZDT1, 8 individuals after 2 generations, cache included) and the JSON
/// pointer of every number in it.
fn checkpoint() -> &'static (String, Vec<String>) {
    static C: OnceLock<(String, Vec<String>)> = OnceLock::new();
    C.get_or_init(|| {
        let settings = Settings {
            population: 8,
            offspring: 8,
            generations: 4,
            crossover_prob: 0.9,
            mutation_prob: 1.0,
            seed: 7,
            eliminate_duplicates: true,
            truncation: Truncation::IterativeCrowding,
        };
        let mut e = Nsga2::new(problem(), settings).unwrap();
        e.step().unwrap();
        e.step().unwrap();
        let text = serde_json::to_string(&e.checkpoint(CacheInCheckpoint::Include)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pointers = super::number_pointers(&v);
        (text, pointers)
    })
}

/// Resumes a checkpoint text and runs it to the end: an error or a finished run, no panic.
fn resume(text: &str) -> Result<(), String> {
    let c: Checkpoint<Vec<f64>> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut e = Nsga2::resume(problem(), c).map_err(|e| e.to_string())?;
    while !e.is_done() {
        e.step().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Found by `checkpoint_with_one_number_changed_never_panics` (seed 5): a checkpoint whose
/// evaluation counter is 2^64 - 1 overflowed the counter on the next generation. Counters are
/// now held to the genomes the checkpoint's batches asked for.
#[test]
fn checkpoint_counters_beyond_the_asked_genomes_are_refused() {
    let (text, _) = checkpoint();
    for (field, value) in [
        ("evaluations", u64::MAX),
        ("cache_hits", u64::MAX),
        ("evaluations", 1000),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v[field] = serde_json::json!(value);
        let err = resume(&v.to_string()).unwrap_err();
        assert!(err.contains("more than the"), "{field} = {value}: {err}");
    }
    // the untouched checkpoint resumes
    resume(text).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// One number of a checkpoint changed (settings, counters, genome values, objectives,
    /// violations) to a negative, zero, fractional, huge or 2^64-sized value.
    #[test]
    fn checkpoint_with_one_number_changed_never_panics(
        pick in any::<prop::sample::Index>(),
        value in prop::sample::select(vec![
            "-1", "0", "0.5", "1", "2", "7", "1e9", "-1e9", "1e300", "-1e300",
            "18446744073709551615", "18446744073709551616", "4294967296", "1e-320",
        ]),
    ) {
        let (text, pointers) = checkpoint();
        let at = &pointers[pick.index(pointers.len())];
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        *v.pointer_mut(at).unwrap() = serde_json::from_str(value).unwrap_or(serde_json::Value::Null);
        let _ = resume(&v.to_string());
    }

    /// A checkpoint cut anywhere (a write interrupted mid-file) is refused, never panics.
    #[test]
    fn truncated_checkpoint_never_panics(cut in any::<prop::sample::Index>()) {
        let (text, _) = checkpoint();
        let mut at = cut.index(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        prop_assert!(resume(&text[..at]).is_err());
    }
}

// ---------------------------------------------------------------- law files

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1e3f64..1e3).prop_map(|x| format!("{x}")),
        prop::sample::select(vec![
            "0",
            "-0",
            "-5",
            "1e-320",
            "1e300",
            "-1e300",
            "1e400",
            "3",
            "3.0001",
            "100",
            "100.5",
            "18446744073709551616",
            "0.34",
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A law file of each form with any coefficients: refused at load, or a law that predicts a
    /// finite positive loss for every reference preset and for any positive inputs.
    #[test]
    fn law_files_with_any_coefficients_never_panic(
        form in 0usize..4,
        c in prop::collection::vec(number(), 11),
        inputs in prop::collection::vec(1e-3f64..1e13, 5),
    ) {
        let law = match form {
            0 => format!(r#"{{"form": "chinchilla", "E": {}, "A": {}, "B": {}, "alpha": {}, "beta": {}}}"#, c[0], c[1], c[2], c[3], c[4]),
            1 => format!(
                r#"{{"form": "gemstones-nd", "irreducible_log": {}, "params": {{"log_coef": {}, "exponent": {}}}, "tokens": {{"log_coef": {}, "exponent": {}}}}}"#,
                c[0], c[1], c[2], c[3], c[4]
            ),
            2 => format!(
                r#"{{"form": "gemstones", "irreducible_log": {}, "width": {{"log_coef": {}, "exponent": {}}}, "depth": {{"log_coef": {}, "exponent": {}}}, "params": {{"log_coef": {}, "exponent": {}}}, "tokens": {{"log_coef": {}, "exponent": {}}}}}"#,
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
            ),
            _ => format!(
                r#"{{"form": "conditional", "a0": {}, "a1": {}, "a2": {}, "b0": {}, "b1": {}, "b2": {}, "l_opt": {{"E": {}, "A": {}, "B": {}, "alpha": {}, "beta": {}}}}}"#,
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]
            ),
        };
        let text = format!(r#"{{"format_version": 1, "law": {law}}}"#);
        // What every loader does: the file's checks, then predictions on the reference presets.
        let loaded = FittedLaw::from_json("fuzz.json", &text).ok().filter(|f| {
            let prior = llmforge::quality::LawPrior { law: f.clone(), tokens_per_param: 20.0 };
            llmforge::quality::check_predictions(&prior).is_ok()
        });
        if let Some(f) = loaded {
            if f.law.form() != llmforge::quality::law::LawForm::Conditional {
                let x = llmforge::quality::law::LawInputs {
                    params: inputs[0],
                    tokens: inputs[1],
                    width: inputs[2],
                    depth: inputs[3],
                    ffn_ratio: inputs[4],
                };
                let l = f.predict_loss(&x);
                prop_assert!(l.is_finite() && l > 0.0, "{text}: {l}");
            }
        }
    }
}
