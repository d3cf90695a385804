//! One test per case of issue #14 (inputs half), named after what it checks. The hostile
//! suite (`inputs.rs`) runs the same inputs through the binary; these pin the library's
//! answer, the located error and the words of the message.

use super::MODEL;
use llmforge::model::{self, desc, hf};
use llmforge::quality::law::{FitOptions, FitSpec, FittedLaw, LawForm, LawInputs};
use llmforge::search::nsga2::{Settings, Truncation};
use llmforge::sim::{self, Engine, Workload};
use llmforge::yaml::SourceFile;
use std::path::Path;

/// The SmolLM2-135M config.json fixture.
fn config() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hf/smollm2-135m.json"
    ))
    .unwrap()
}

fn model_with(from: &str, to: &str) -> String {
    assert!(MODEL.contains(from));
    MODEL.replacen(from, to, 1)
}

/// The rendered report of an error, as the binary prints it (no colour, 80 columns).
fn rendered(e: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(80)
        .render_report(&mut out, e)
        .unwrap();
    out
}

#[test]
fn repeat_u64_max_is_refused_at_its_value_without_allocating() {
    let e = desc::parse(&model_with("repeat: 2", "repeat: 18446744073709551615"), "m.yaml").unwrap_err();
    let first = &e.errors()[0];
    assert_eq!((first.line(), first.column()), (9, 13), "{e:?}");
    assert!(
        first.message().contains("the limit is 4,096"),
        "{}",
        first.message()
    );
}

#[test]
fn repeat_one_billion_and_thirty_million_are_refused() {
    for n in ["1000000000", "30000000", "4097"] {
        let e = desc::parse(&model_with("repeat: 2", &format!("repeat: {n}")), "m.yaml").unwrap_err();
        assert!(
            e.errors()[0].message().contains("more than 4,096 layers"),
            "{n}: {e:?}"
        );
    }
    let m = desc::parse(&model_with("repeat: 2", "repeat: 4096"), "m.yaml").unwrap();
    assert_eq!(m.n_layers(), 4096);
}

#[test]
fn num_hidden_layers_one_billion_is_refused_at_its_key() {
    let src = config();
    let bad = src.replace("\"num_hidden_layers\": 30", "\"num_hidden_layers\": 1000000000");
    let e = hf::from_config_json(&bad, "config.json", "x").unwrap_err();
    assert_eq!(e.line(), 15, "{e}");
    assert!(e.message().contains("4,096"), "{e}");
}

#[test]
fn config_json_duplicate_keys_are_refused_at_the_second() {
    let src = config();
    let bad = src.replace(
        "\"hidden_size\": 576,",
        "\"hidden_size\": 576,\n  \"hidden_size\": 960,",
    );
    let e = hf::from_config_json(&bad, "config.json", "x").unwrap_err();
    assert_eq!(e.line(), 9, "{e}");
    assert!(e.message().contains("`hidden_size` appears twice"), "{e}");
}

#[test]
fn config_json_unknown_torch_dtype_is_refused() {
    let src = config();
    let bad = src.replace("\"bfloat16\"", "\"float7\"");
    let e = hf::from_config_json(&bad, "config.json", "x").unwrap_err();
    assert!(
        e.line() > 0 && e.message().contains("unknown `torch_dtype` `float7`"),
        "{e}"
    );
    assert!(e.help_text().unwrap().contains("bfloat16"));
}

#[test]
fn d_model_with_a_unit_says_a_plain_count_is_expected() {
    let e = desc::parse(&model_with("d_model: 64", "d_model: \"576 B\""), "m.yaml").unwrap_err();
    let m = e.errors()[0].message();
    assert!(
        m.contains("a plain count: a whole number with no unit") && m.contains("found `576 B`"),
        "{m}"
    );
}

#[test]
fn prompt_u64_max_is_refused_instead_of_pricing_kv_bytes_zero() {
    let e = Workload::new(u64::MAX, 1, 1).unwrap_err();
    assert!(matches!(e, sim::SimError::Limit { field: "prompt", .. }), "{e}");
    // at the limit the KV cache is priced, and exceeds the chip's memory
    let w = Workload::new((1 << 24) - 1, 1, 1).unwrap();
    let m = model::preset("smollm2-135m").unwrap();
    let sub = llmforge::substrate::load("flat-edge", &[]).unwrap();
    let s = sim::summary(&m, &sub, w, Engine::Roofline);
    assert!(
        s.kv_bytes > 1e11 && !s.fits_memory,
        "{} {}",
        s.kv_bytes,
        s.fits_memory
    );
}

#[test]
fn gen_u64_max_and_sums_past_the_context_are_refused() {
    assert!(matches!(
        Workload::new(1, u64::MAX, 1),
        Err(sim::SimError::Limit {
            field: "generate",
            ..
        })
    ));
    assert!(matches!(
        Workload::new(1 << 23, (1 << 23) + 1, 1),
        Err(sim::SimError::Limit { field: "context", .. })
    ));
    assert!(matches!(
        Workload::new(1 << 20, 1, 1 << 7),
        Err(sim::SimError::Limit {
            field: "in_flight",
            ..
        })
    ));
    assert!(matches!(
        Workload::new(1, 1, 1 << 17),
        Err(sim::SimError::Limit { field: "batch", .. })
    ));
}

#[test]
fn ten_million_generated_tokens_run_and_match_the_decode_rate() {
    let m = model::preset("smollm2-135m").unwrap();
    let sub = llmforge::substrate::load("flat-edge", &[]).unwrap();
    let long = sim::summary(&m, &sub, Workload::new(16, 10_000_000, 1).unwrap(), Engine::Sim);
    assert!(long.tpot_s.is_finite() && long.tpot_s > 0.0);
    // the KV cache grows with the context: the mean step is slower than a short run's
    let short = sim::summary(&m, &sub, Workload::new(16, 256, 1).unwrap(), Engine::Sim);
    assert!(long.tpot_s > short.tpot_s);
}

#[test]
fn population_one_hundred_million_is_refused() {
    let s = Settings {
        population: 100_000_000,
        offspring: 48,
        generations: 40,
        crossover_prob: 0.9,
        mutation_prob: 1.0,
        seed: 1,
        eliminate_duplicates: true,
        truncation: Truncation::Crowding,
    };
    let e = s.validate().unwrap_err();
    assert!(e.to_string().contains("65,536"), "{e}");
}

#[test]
fn error_snippet_of_a_huge_value_is_clipped() {
    // a 500 kB value where a count belongs: the report stays a few lines long
    let text = model_with("d_model: 64", &format!("d_model: {}", "7x".repeat(250_000)));
    let e = desc::parse(&text, "m.yaml").unwrap_err();
    let out = rendered(&e);
    assert!(
        out.len() < 4000,
        "{} bytes:\n{}",
        out.len(),
        &out[..out.len().min(2000)]
    );
    assert!(out.contains("m.yaml:2:10") && out.contains("..."), "{out}");
    // a 10 MB line: refused at the line limit, clipped the same way
    let text = model_with("name: tiny", &format!("name: {}", "x".repeat(10 << 20)));
    let e = desc::parse(&text, "m.yaml").unwrap_err();
    let out = rendered(&e);
    assert!(
        out.len() < 4000 && out.contains("a line may have at most"),
        "{}",
        &out[..out.len().min(2000)]
    );
}

#[test]
fn yaml_budget_breaches_are_told_in_words() {
    let deep = format!("kind: gpu\nx: {}{}\n", "[".repeat(100), "]".repeat(100));
    let e = llmforge::substrate::load_str(&deep, "s.yaml", &[]).unwrap_err();
    let m = e.errors()[0].message();
    assert!(m.contains("levels deep") && !m.contains("Depth {"), "{m}");
}

#[test]
fn set_twice_says_set_twice() {
    let e = llmforge::substrate::parse_overrides(&["clock=1 GHz".into(), "clock=2 GHz".into()]).unwrap_err();
    assert!(e.contains("set twice"), "{e}");
}

#[test]
fn set_bare_number_points_at_the_set_argument() {
    let o = llmforge::substrate::parse_overrides(&["dram.read=8".into()]).unwrap();
    let e = llmforge::substrate::load("flat-edge", &o).unwrap_err();
    let first = &e.errors()[0];
    assert!(first.file().starts_with("--set dram.read"), "{first}");
    assert!(first.help_text().unwrap().contains("8 B/cycle"), "{first:?}");
}

#[test]
fn set_may_name_the_field_it_sets() {
    let o = llmforge::substrate::parse_overrides(&["clock=clock*2".into()]).unwrap();
    let s = llmforge::substrate::load("flat-edge", &o).unwrap();
    assert_eq!(s.clock().get(), 2e9);
    let o = llmforge::substrate::parse_overrides(&["clock=speed*2".into()]).unwrap();
    let e = llmforge::substrate::load("flat-edge", &o).unwrap_err();
    assert!(
        e.errors()[0]
            .help_text()
            .unwrap()
            .contains("a --set value may name"),
        "{e:?}"
    );
}

#[test]
fn clock_of_1e_minus_300_hz_is_out_of_physical_range() {
    let src = include_str!("../../substrates/flat-edge.yaml").replace("\"1 GHz\"", "\"1e-300 Hz\"");
    let e = llmforge::substrate::load_str(&src, "s.yaml", &[]).unwrap_err();
    let first = &e.errors()[0];
    assert_eq!((first.line(), first.column()), (7, 8));
    assert!(first.message().contains("between 1 kHz and 1 THz"), "{first}");
}

#[test]
fn every_shipped_substrate_is_within_the_physical_ranges() {
    for name in llmforge::substrate::names() {
        llmforge::substrate::load(name, &[]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}

#[test]
fn paths_that_are_not_files_say_what_they_are() {
    let dir = std::env::temp_dir();
    let e = model::load(dir.to_str().unwrap()).unwrap_err();
    assert!(
        e.to_string().contains("this is a directory, not a model file"),
        "{e}"
    );
    let e = model::load("/dev/null").unwrap_err();
    assert!(e.to_string().contains("character device"), "{e}");
    let e = llmforge::substrate::load(dir.to_str().unwrap(), &[]).unwrap_err();
    assert!(
        e.errors()[0]
            .message()
            .contains("a directory, not a substrate file"),
        "{e:?}"
    );
}

#[test]
fn model_convert_names_round_trip() {
    for name in [
        "a: b",
        "x # y",
        "\"quoted\"",
        "back\\slash",
        "tab\there",
        "- dash",
        "&anchor *alias",
        "",
        "日本語",
        "nul\0",
    ] {
        let mut m = model::preset("smollm2-135m").unwrap();
        m.name = name.to_string();
        let back =
            desc::parse(&desc::to_yaml(&m), "round.yaml").unwrap_or_else(|e| panic!("{name:?}: {e:?}"));
        assert_eq!(back.name, name);
    }
}

#[test]
fn law_with_negative_e_is_refused_by_every_loader() {
    let text = r#"{"format_version": 1, "law": {"form": "chinchilla", "E": -5, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}}"#;
    let e = FittedLaw::from_json("law.json", text).unwrap_err();
    assert!(e.to_string().starts_with("law.json:1:"), "{e}");
    assert!(e.to_string().contains("`E` is -5"), "{e}");
    let path = std::env::temp_dir().join(format!("llmforge-negative-e-{}.json", std::process::id()));
    std::fs::write(&path, text).unwrap();
    assert!(FittedLaw::load(&path).is_err());
    let q = llmforge::quality::load_loss_model(path.to_str().unwrap(), 20.0);
    assert!(q.is_err());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn law_fit_refuses_fewer_rows_than_parameters_plus_one() {
    let rows: Vec<(LawInputs, f64)> = (0..5)
        .map(|i| {
            let n = 1e8 * 2f64.powi(i);
            (
                LawInputs {
                    params: n,
                    tokens: 20.0 * n,
                    ..LawInputs::default()
                },
                3.0 - 0.1 * i as f64,
            )
        })
        .collect();
    let opts = FitOptions::default();
    let e = llmforge::quality::law::fit(&FitSpec::new(LawForm::Chinchilla), &rows[..1], &opts).unwrap_err();
    assert!(e.to_string().contains("at least 6 rows"), "{e}");
    assert!(llmforge::quality::law::fit(&FitSpec::new(LawForm::Chinchilla), &rows, &opts).is_err());
}

#[test]
fn overlay_values_are_checked_where_they_are_written() {
    let text = "stack: llama.cpp\nsubstrate: rtx-4090\nset:\n  efficiency.compute: \"5\"\n";
    let e = llmforge::validate::overlay::parse(text, "o.yaml").unwrap_err();
    let first = &e.errors()[0];
    assert_eq!((first.line(), first.column()), (4, 23), "{first}");
    assert!(first.message().contains("fraction"), "{first}");
}

#[test]
fn sweep_marks_designs_over_memory_capacity_infeasible() {
    use llmforge::quality::ChinchillaPrior;
    use llmforge::sweep::budget::Metric;
    use llmforge::sweep::run::{Axis, SweepSpec, sweep};
    let g = llmforge::sweep::grid::load("tiny").unwrap();
    let o = llmforge::substrate::parse_overrides(&["memory.capacity=1 MB".into()]).unwrap();
    // a GPU: the grid's fp16 designs run there (an int8-only array refuses them)
    let sub = llmforge::substrate::load("jetson-orin-nano-super", &o).unwrap();
    let loss = ChinchillaPrior {
        tokens_per_param: 20.0,
    };
    let spec = SweepSpec {
        grid: &g,
        substrate: &sub,
        workload: Workload::new(16, 2, 1).unwrap(),
        engine: Engine::Roofline,
        both_engines: false,
        loss: &loss,
        budgets: &[],
        x: Metric::Tpot,
        region: (Axis::Depth, Axis::Width),
    };
    let mut rows = Vec::new();
    let out = sweep(
        &spec,
        0..g.len(),
        64,
        &std::sync::atomic::AtomicBool::new(false),
        |r, _| rows.extend_from_slice(r),
    );
    assert!(!rows.is_empty());
    for r in &rows {
        let fits = r.metrics.weights + r.metrics.kv <= 1e6;
        assert_eq!(r.fits_memory, fits);
        assert_eq!(r.feasible, fits, "no budgets: feasible is fitting");
    }
    assert_eq!(
        out.feasible as usize,
        rows.iter().filter(|r| r.fits_memory).count()
    );
    assert!(rows.iter().any(|r| !r.fits_memory));
}

#[test]
fn search_counts_memory_excess_as_constraint_violation() {
    use llmforge::quality::ChinchillaPrior;
    use llmforge::search::arch::ArchProblem;
    use llmforge::search::nsga2::Problem;
    use llmforge::sweep::budget::Metric;
    let o = llmforge::substrate::parse_overrides(&["dram.capacity=10 MB".into()]).unwrap();
    let substrate = llmforge::substrate::load("flat-edge", &o).unwrap();
    let workload = Workload::new(16, 2, 1).unwrap();
    let p = ArchProblem {
        space: llmforge::search::space::load("smollm2-135m-seeded").unwrap(),
        layer_cache: ArchProblem::cache_for(&substrate, workload),
        substrate,
        workload,
        engine: Engine::Roofline,
        objectives: vec![Metric::Loss, Metric::Tpot],
        constraints: Vec::new(),
        loss: Box::new(ChinchillaPrior {
            tokens_per_param: 20.0,
        }),
        beta: 0.0,
    };
    let seed = p.space.genome_of(p.space.seed.as_ref().unwrap());
    let m = p.measure(&seed);
    assert!(
        m.memory_excess > 1.0,
        "SmolLM2-135M is over 10 times 10 MB: {}",
        m.memory_excess
    );
    assert_eq!(p.evaluate(&seed).unwrap().violation, m.memory_excess);
}

#[test]
fn chrome_trace_of_a_long_run_keeps_the_sampled_steps_only() {
    let m = model::preset("llama-2-70b").unwrap();
    let sub = llmforge::substrate::load("a100-sxm4-40gb", &[]).unwrap();
    let w = Workload::new(4096, 4096, 1).unwrap();
    let mut bytes = Vec::new();
    let mut t = llmforge::trace::ChromeTrace::to_writer(&mut bytes).decode_steps(Some(64));
    let r = sim::run_with_sink(&m, &sub, w, Engine::Sim, &mut t);
    t.finish().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let passes: Vec<&str> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cat"] == "pass")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(passes.len(), 65, "the prefill and 64 decode steps");
    assert!(passes.contains(&"decode step 1") && passes.contains(&"decode step 4096"));
    assert!(bytes.len() < 32 << 20, "{} bytes", bytes.len());
    // the last step still ends where the run ends
    let end = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some(e["ts"].as_f64()? + e["dur"].as_f64()?))
        .fold(0.0, f64::max);
    let total = (r.summary.ttft_s + r.summary.decode.time.get()) * 1e6;
    assert!((end - total).abs() < 1e-6 * total, "{end} vs {total}");
}

#[test]
fn trace_csv_errors_are_located_in_streamed_records() {
    let head = "hardware,hw_bw_GBps,hw_peak_tflops,hw_peak_dtype,hw_mem_GB,software,model,params_B,weights,bits_per_weight,batch,prompt_len,gen_len,metric,value,unit,source,note\n";
    let good = "NVIDIA GeForce RTX 4090,1008,,,24,llama.cpp CUDA,Meta-Llama-3-8B,8.03,GGUF Q4_K_M,4.89,1,0,128,tg_tokens_per_s,127,tok/s,test,\n";
    let mut text = head.to_string();
    for _ in 0..1000 {
        text.push_str(good);
    }
    text.push_str(&good.replace(",127,", ",fast,"));
    let e = llmforge::validate::traces::parse(&text, "t.csv").unwrap_err();
    let first = &e.errors()[0];
    assert_eq!((first.line(), first.column()), (1002, 112), "{first}");
}

#[test]
fn source_excerpts_keep_their_file_lines() {
    let f = SourceFile::excerpt("big.csv", "a,b,c", 41);
    let e = f.error_at_offset(2, "bad", "here", None);
    assert_eq!(e.to_string(), "big.csv:42:3: bad");
    let out = rendered(&e);
    assert!(out.contains(" 42 │ a,b,c"), "{out}");
    let _ = Path::new("");
}
