//! Validation against measured traces: the reader's located errors, the mapping (every row
//! predicted or named unmappable with a reason), calibration recovering known efficiencies,
//! held-out calibration, overlays and calibrated substrates that load, the plot, determinism.

use llmforge::model::accounting;
use llmforge::substrate::{self, Efficiency};
use llmforge::trace::plot::{PlotPoint, scatter_svg};
use llmforge::units::{Bytes, Seconds};
use llmforge::validate::calibrate::{self, HoldOut, Point};
use llmforge::validate::mapping::{self, Maps, ReasonKind};
use llmforge::validate::predict::{self, Engine};
use llmforge::validate::{self, Library, Options, overlay, traces};
use std::path::Path;

mod gate;

const SAMPLE: &str = "tests/fixtures/validate/sample.csv";

fn sample() -> traces::Traces {
    traces::read(Path::new(SAMPLE)).expect("the sample trace parses")
}

/// The sample validated with the roofline engine and the given hold-outs.
fn validate_sample(holdout: Vec<HoldOut>) -> validate::Report {
    let maps = Maps::builtin().unwrap();
    let mut lib = Library::new(Vec::new());
    let o = Options {
        engine: Engine::Roofline,
        holdout,
        progress: Default::default(),
    };
    validate::validate(&sample(), &maps, &mut lib, &o)
}

fn opts() -> Options {
    Options {
        engine: Engine::Roofline,
        holdout: Vec::new(),
        progress: Default::default(),
    }
}

#[test]
fn new_presets_have_their_published_parameter_counts() {
    for (name, params) in [
        ("llama-2-13b", 13_015_864_320u64),
        ("llama-2-70b", 68_976_648_192),
        ("codellama-34b", 33_743_970_304),
        ("qwen2-7b", 7_615_616_512),
        ("qwen2-72b", 72_706_203_648),
        ("qwen1.5-7b", 7_721_324_544),
    ] {
        let m = llmforge::model::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(accounting::params(&m).total, params, "{name}");
    }
}

#[test]
fn reader_reports_every_error_with_line_and_column() {
    let err = traces::read(Path::new("tests/fixtures/validate/bad.csv")).unwrap_err();
    let errs = err.errors();
    assert_eq!(errs.len(), 3, "{err:?}");
    // `value` of line 2 is `fast`: column of the 15th field.
    assert_eq!((errs[0].line(), errs[0].column()), (2, 111));
    assert!(errs[0].message().contains("`value`"), "{}", errs[0].message());
    assert_eq!(errs[1].line(), 3);
    assert!(errs[1].message().contains("prompt_len"));
    // A quoted hardware field with a comma shifts the columns; the error still points at `lots`.
    assert_eq!((errs[2].line(), errs[2].column()), (4, 35));
    assert!(errs[2].message().contains("hw_bw_GBps"));
}

#[test]
fn reader_names_missing_columns() {
    let err = traces::parse("hardware,model\nA,B\n", "x.csv").unwrap_err();
    let msg = err.errors()[0].message().to_string();
    assert!(
        msg.contains("software") && msg.contains("metric") && msg.contains("value"),
        "{msg}"
    );
    assert_eq!(err.errors()[0].line(), 1);
}

#[test]
fn shipped_maps_load_and_point_at_shipped_substrates_and_presets() {
    let maps = Maps::builtin().expect("shipped maps parse");
    for h in &maps.hardware {
        if let Some(s) = &h.substrate {
            substrate::load(s, &[]).unwrap_or_else(|e| panic!("{}: {e:?}", h.hardware));
            assert!(!h.family.is_empty(), "{}", h.hardware);
        } else {
            assert!(
                !h.note.is_empty(),
                "unmappable hardware `{}` needs a reason",
                h.hardware
            );
        }
    }
    for m in &maps.models {
        match &m.preset {
            Some(p) => {
                llmforge::model::load(p).unwrap_or_else(|e| panic!("{}: {e}", m.model));
            }
            None => assert!(!m.note.is_empty(), "{}", m.model),
        }
    }
}

#[test]
fn weights_map_to_formats() {
    use llmforge::model::Precision;
    let (f, notes) = mapping::formats("GGUF Q4_K_M", Some(4.89)).unwrap();
    assert_eq!(f.weights, Precision::Bits(4.89));
    assert!(notes.is_empty());
    let (f, _) = mapping::formats("FP16 (Weight = fp16, KV Cache = fp8)", Some(16.0)).unwrap();
    assert_eq!((f.weights, f.kv_cache), (Precision::F16, Precision::Fp8));
    let (f, _) = mapping::formats("INT8_SQ (Weight = int8_sq, KV Cache = int8)", None).unwrap();
    assert_eq!(
        (f.weights, f.activations, f.kv_cache),
        (Precision::Int8, Precision::Int8, Precision::Int8)
    );
    let e = mapping::formats("GPTQ 4-bit", None).unwrap_err();
    assert_eq!(e.kind, ReasonKind::Weights);
    assert!(mapping::formats("FP16", Some(8.0)).is_err());
    assert_eq!(mapping::split_count("4x NVIDIA A40"), (4, "NVIDIA A40"));
    assert_eq!(mapping::split_count("NVIDIA A40"), (1, "NVIDIA A40"));
}

#[test]
fn every_row_is_predicted_or_named_with_a_reason() {
    let t = sample();
    let maps = Maps::builtin().unwrap();
    let mut lib = Library::new(Vec::new());
    let r = validate::validate(&t, &maps, &mut lib, &opts());
    assert_eq!(r.counts.rows, t.rows.len());
    assert_eq!(r.counts.mapped + r.counts.unmapped, r.counts.rows);
    assert_eq!(r.rows.len() + r.unmapped.len(), t.rows.len());
    let mut lines: Vec<u64> = r
        .rows
        .iter()
        .map(|x| x.line)
        .chain(r.unmapped.iter().map(|u| u.line))
        .collect();
    lines.sort_unstable();
    assert_eq!(lines, t.rows.iter().map(|x| x.line).collect::<Vec<_>>());
    for u in &r.unmapped {
        assert!(!u.reason.is_empty(), "line {}", u.line);
    }
    assert_eq!(
        r.reasons.iter().map(|x| x.count).sum::<usize>(),
        r.counts.unmapped
    );
    // The sample holds operator-level, scheduler-batch and unsupported-model rows.
    for kind in [
        ReasonKind::Metric,
        ReasonKind::Workload,
        ReasonKind::Model,
        ReasonKind::Hardware,
    ] {
        assert!(r.unmapped.iter().any(|u| u.kind == kind), "no {kind:?} reason");
    }
    // FLAG rows and rows beyond the ideal bound are predicted but excluded, with a reason.
    let flagged = r
        .rows
        .iter()
        .filter(|x| x.excluded.as_deref().is_some_and(|e| e.contains("anomaly")));
    assert!(flagged.count() >= 1, "{:?}", r.exclusions);
    let beyond = r
        .rows
        .iter()
        .filter(|x| x.excluded.as_deref().is_some_and(|e| e.contains("ideal bound")));
    assert!(beyond.count() >= 1);
    for x in &r.rows {
        assert!(
            x.predicted.is_finite() && x.predicted > 0.0,
            "line {}: {}",
            x.line,
            x.predicted
        );
    }
    // Statistics count only the rows not excluded.
    let counted: usize = r.by_metric.iter().map(|g| g.stats.n).sum();
    assert_eq!(counted, r.counts.mapped - r.counts.excluded);
}

#[test]
fn decode_rate_follows_bandwidth_and_tensor_parallel_adds_communication() {
    let maps = Maps::builtin().unwrap();
    let text = "hardware,software,model,weights,bits_per_weight,batch,prompt_len,gen_len,metric,value,unit,source\n\
        NVIDIA GeForce RTX 3090,llama.cpp CUDA,Meta-Llama-3-8B,GGUF F16,16,1,0,128,tg_tokens_per_s,47,tok/s,t\n\
        2x NVIDIA H100 SXM5 80GB,vLLM (fp16),meta-llama/Llama-2-70b-hf,FP16,16,1,128,128,e2e_batch_latency,3,s,t\n";
    let t = traces::parse(text, "inline.csv").unwrap();
    let cases: Vec<_> = t
        .rows
        .iter()
        .map(|r| mapping::map_row(r, &maps).unwrap())
        .collect();
    let m = llmforge::model::load("llama-3-8b").unwrap();
    let sub = substrate::load("rtx-3090", &[]).unwrap();
    let model = predict::with_formats(&m, &cases[0]);
    let p = predict::predict(&cases[0], &model, &sub, Engine::Roofline);
    // Decode of a 16 GB model is memory-bound: no faster than bandwidth allows.
    let bytes = accounting::weight_bytes(&model).get();
    let bound = 936e9 / bytes;
    assert!(p.value < bound && p.value > 0.3 * bound, "{} vs {bound}", p.value);
    // Tensor parallel over 2 devices: the shard has half the heads and FFN width, plus comm.
    let m70 = predict::with_formats(&llmforge::model::load("llama-2-70b").unwrap(), &cases[1]);
    let shard = predict::shard(&m70, 2);
    let full = accounting::weight_bytes(&m70).get();
    let half = accounting::weight_bytes(&shard).get();
    assert!((half / full - 0.5).abs() < 0.01, "{half} / {full}");
    let h100 = substrate::load("h100-sxm", &[]).unwrap();
    let p2 = predict::predict(&cases[1], &m70, &h100, Engine::Roofline);
    assert!(p2.comm_s > 0.0 && p2.comm_s < p2.value);
}

/// The rows of `t`, mapped, with their models (formats applied), each "measured" as the
/// engine predicts it on `truth`.
fn measured_by(
    t: &traces::Traces,
    maps: &Maps,
    truth: &substrate::Substrate,
    engine: Engine,
) -> (Vec<mapping::Case>, Vec<llmforge::model::Model>) {
    let mut cases: Vec<_> = t
        .rows
        .iter()
        .map(|r| mapping::map_row(r, maps).unwrap())
        .collect();
    let models: Vec<_> = cases
        .iter()
        .map(|c| predict::with_formats(&llmforge::model::load(&c.preset).unwrap(), c))
        .collect();
    for (c, m) in cases.iter_mut().zip(&models) {
        c.measured = predict::predict(c, m, truth, engine).value;
    }
    (cases, models)
}

/// The header of a synthetic trace table.
const TRACE_HEADER: &str =
    "hardware,software,model,weights,bits_per_weight,batch,prompt_len,gen_len,metric,value,unit,source\n";

/// Points fitting `cases` (with their `models`) on `base`, numbered from 0.
fn points_on<'a>(
    cases: &'a [mapping::Case],
    models: &'a [llmforge::model::Model],
    base: &'a substrate::Substrate,
) -> Vec<Point<'a>> {
    cases
        .iter()
        .zip(models)
        .enumerate()
        .map(|(i, (c, m))| Point {
            line: i as u64,
            case: c,
            model: m,
            substrate: base,
        })
        .collect()
}

#[test]
fn calibration_recovers_known_efficiencies() {
    // Measurements made by the engine itself at known efficiencies must be fitted back.
    let truth = Efficiency {
        compute: 0.45,
        memory: 0.72,
        kernel_overhead: Seconds::new(6e-6),
        token_overhead: Seconds::new(150e-6),
        quantised_compute: 0.8,
        score_bytes: Bytes::new(12.0),
    };
    let maps = Maps::builtin().unwrap();
    let mut rows = String::from(TRACE_HEADER);
    for (model, w, bpw) in [
        ("Meta-Llama-3-8B", "GGUF Q4_K_M", "4.89"),
        ("Meta-Llama-3-8B", "GGUF F16", "16"),
        ("Llama2-13B", "GGUF Q4_0", "4.5"),
    ] {
        for n in [128, 512, 2048] {
            rows.push_str(&format!(
                "NVIDIA GeForce RTX 3090,llama.cpp CUDA,{model},{w},{bpw},1,0,{n},tg_tokens_per_s,1,tok/s,t\n"
            ));
            rows.push_str(&format!(
                "NVIDIA GeForce RTX 3090,llama.cpp CUDA,{model},{w},{bpw},1,{n},0,pp_tokens_per_s,1,tok/s,t\n"
            ));
        }
    }
    let t = traces::parse(&rows, "synthetic.csv").unwrap();
    let base = substrate::load("rtx-3090", &[]).unwrap();
    let truth_sub = calibrate::with_efficiency(&base, truth);
    let (cases, models) = measured_by(&t, &maps, &truth_sub, Engine::Roofline);
    let points = points_on(&cases, &models, &base);
    let fit = calibrate::fit(&points, base.efficiency, Engine::Roofline).unwrap();
    assert!(fit.mape < 0.5, "{fit:?}");
    let e = fit.efficiency;
    assert!((e.memory - 0.72).abs() < 0.02, "{e:?}");
    assert!((e.compute - 0.45).abs() < 0.02, "{e:?}");
    // Start far away: the defaults predict these rows badly.
    let before: f64 = points
        .iter()
        .map(|p| {
            (calibrate::predict_with(p, base.efficiency, Engine::Roofline) / p.case.measured - 1.0).abs()
        })
        .sum::<f64>()
        / points.len() as f64;
    assert!(before > 0.1, "{before}");
    // A decode-only fit (`calibrate --phase decode`) sees only the tg rows and leaves the two
    // parameters those rows cannot identify where they started.
    let decode: Vec<Point> = points
        .iter()
        .filter(|p| calibrate::fit_phase(p.case) == "decode")
        .copied()
        .collect();
    assert_eq!(decode.len(), 9);
    let d = calibrate::fit_some(
        &decode,
        base.efficiency,
        Engine::Roofline,
        calibrate::free_for(Some("decode")),
    )
    .unwrap()
    .efficiency;
    assert_eq!(d.quantised_compute, base.efficiency.quantised_compute);
    assert_eq!(d.score_bytes, base.efficiency.score_bytes);
    assert!((d.memory - 0.72).abs() < 0.02, "{d:?}");
}

/// A fit through the simulator starts from the roofline's fit and moves the achieved
/// fractions to what the simulator needs: its kernel model prices tile, wave and K-loop losses
/// the roofline's fractions absorb, so rows the simulator made at a known compute fraction
/// take the roofline's fit below it, and the refinement, which pulls the fractions only
/// weakly towards the roofline's fit, must recover it from three rows. The parameters that
/// mean the same in both engines stay near the roofline's fit.
#[test]
fn simulator_fit_moves_the_fractions_from_the_roofline_fit() {
    let truth = Efficiency {
        compute: 0.6,
        score_bytes: Bytes::new(8.0),
        ..substrate::load("rtx-3090", &[]).unwrap().efficiency
    };
    let maps = Maps::builtin().unwrap();
    let mut rows = String::from(TRACE_HEADER);
    for n in [512, 2048, 8192] {
        rows.push_str(&format!(
            "NVIDIA GeForce RTX 3090,llama.cpp CUDA,Meta-Llama-3-8B,GGUF F16,16,1,{n},0,pp_tokens_per_s,1,tok/s,t\n"
        ));
    }
    let t = traces::parse(&rows, "synthetic.csv").unwrap();
    let base = substrate::load("rtx-3090", &[]).unwrap();
    let truth_sub = calibrate::with_efficiency(&base, truth);
    let (cases, models) = measured_by(&t, &maps, &truth_sub, Engine::Sim);
    let points = points_on(&cases, &models, &base);
    let free = calibrate::free_for(Some("prefill"));
    let rough = calibrate::fit_some(&points, base.efficiency, Engine::Roofline, free).unwrap();
    let sim = calibrate::fit_some(&points, base.efficiency, Engine::Sim, free).unwrap();
    // the roofline's fit is below the truth: the simulator's kernels lose more than its bound
    assert!(rough.efficiency.compute < truth.compute - 0.05, "{rough:?}");
    // held at the roofline's fit as firmly as the other parameters, the compute fraction
    // moved 0.05 and left 3.4% in sample
    assert!(sim.mape < 2.0, "{sim:?}");
    assert!(
        sim.efficiency.compute > rough.efficiency.compute + 0.08,
        "{sim:?}"
    );
    assert!((sim.efficiency.compute - truth.compute).abs() < 0.04, "{sim:?}");
    let score = sim.efficiency.score_bytes.get() / rough.efficiency.score_bytes.get();
    assert!(score.ln().abs() < 0.1, "{sim:?}");
}

#[test]
fn holdout_predicts_each_device_from_the_others() {
    let r = validate_sample(vec![HoldOut::Device, HoldOut::Model]);
    assert_eq!(r.holdout.len(), 2);
    for h in &r.holdout {
        // Every predicted, non-excluded row is either held-out predicted or said why not.
        let counted = r.rows.iter().filter(|x| x.excluded.is_none()).count();
        assert_eq!(h.rows.len() + h.not_predicted.len(), counted, "{:?}", h.by);
        for x in &h.rows {
            assert!(x.predicted.is_finite() && x.predicted > 0.0);
        }
    }
}

/// Held out by device, a family with one other device to fit on (the sample's AMD CDNA rows:
/// an MI250 and an MI300X) carries no fit: each of its devices is predicted from its own
/// stated efficiencies, which is its uncalibrated prediction, and the report says why. Families
/// with two or more other devices are fitted. Held out by model, nothing is predicted stated,
/// and a device's rows are fitted on its own other models where it ran any.
#[test]
fn holdout_fits_on_what_transfers() {
    use std::collections::{BTreeMap, BTreeSet};
    let r = validate_sample(vec![HoldOut::Device, HoldOut::Model]);
    let by_line: std::collections::HashMap<u64, &validate::RowResult> =
        r.rows.iter().map(|x| (x.line, x)).collect();
    let group = |x: &validate::RowResult| {
        let phase = if x.phase == "energy" { "e2e" } else { x.phase };
        (x.family.clone(), x.stack.clone(), phase)
    };
    // Devices with timing rows (the rows fitted on), per family, stack and fitted phase.
    let mut devices: BTreeMap<_, BTreeSet<&str>> = BTreeMap::new();
    for x in r
        .rows
        .iter()
        .filter(|x| x.excluded.is_none() && x.phase != "energy")
    {
        devices.entry(group(x)).or_default().insert(x.substrate.as_str());
    }
    let device = &r.holdout[0];
    assert_eq!(device.by, HoldOut::Device);
    let (mut stated, mut fitted) = (0, 0);
    for x in &device.rows {
        let row = by_line[&x.line];
        let others = devices[&group(row)].len() - 1;
        if others < calibrate::MIN_FIT_DEVICES {
            stated += 1;
            assert_eq!(x.basis, calibrate::Basis::Stated, "line {}", x.line);
            assert!(x.fit.is_none());
            assert!(
                (x.predicted - row.predicted).abs() <= 1e-9 * row.predicted,
                "line {}",
                x.line
            );
            let (_, why) = device.stated.iter().find(|(l, _)| *l == x.line).unwrap();
            assert!(why.contains("has 1 other device with"), "{why}");
        } else {
            fitted += 1;
            assert_eq!(x.basis, calibrate::Basis::Family, "line {}", x.line);
            assert!(x.fit.is_some());
        }
    }
    assert!(stated > 0 && fitted > 0, "stated {stated}, fitted {fitted}");
    assert_eq!(device.stated.len(), stated);
    // Held out by model, a device that ran another model of the phase is fitted on that
    // model's rows alone; a device that ran none borrows its family's other models.
    let mut models: BTreeMap<_, BTreeSet<&str>> = BTreeMap::new();
    for x in r
        .rows
        .iter()
        .filter(|x| x.excluded.is_none() && x.phase != "energy")
    {
        let (f, s, p) = group(x);
        models
            .entry((f, s, p, x.substrate.clone()))
            .or_default()
            .insert(x.preset.as_str());
    }
    let model = &r.holdout[1];
    assert!(model.stated.is_empty());
    let (mut own, mut borrowed) = (0, 0);
    for x in &model.rows {
        let row = by_line[&x.line];
        let (f, s, p) = group(row);
        let ran = models.get(&(f, s, p, row.substrate.clone()));
        let other = ran.is_some_and(|m| m.iter().any(|m| *m != row.preset));
        if other {
            own += 1;
            assert_eq!(x.basis, calibrate::Basis::Device, "line {}", x.line);
        } else {
            borrowed += 1;
            assert_eq!(x.basis, calibrate::Basis::Family, "line {}", x.line);
        }
    }
    assert!(own > 0 && borrowed > 0, "device {own}, family {borrowed}");
}

#[test]
fn calibrated_substrate_and_overlay_load_back() {
    let eff = Efficiency {
        compute: 0.512,
        memory: 0.803,
        kernel_overhead: Seconds::new(2.31e-6),
        token_overhead: Seconds::new(95.2e-6),
        quantised_compute: 0.7,
        score_bytes: Bytes::new(16.0),
    };
    let (_, src) = substrate::SHIPPED.iter().find(|(n, _)| *n == "rtx-3090").unwrap();
    let text = overlay::calibrated_substrate(src, &eff, &["calibrated in a test".into()]).unwrap();
    let s = substrate::load_str(&text, "cal.yaml", &[]).unwrap();
    assert!((s.efficiency.memory - 0.803).abs() < 1e-9);
    assert!((s.efficiency.kernel_overhead.get() - 2.31e-6).abs() < 1e-12);
    // The optional fields the shipped file leaves out are added to its efficiency section.
    assert!((s.efficiency.quantised_compute - 0.7).abs() < 1e-9);
    assert!((s.efficiency.score_bytes.get() - 16.0).abs() < 1e-9);
    let y = overlay::to_yaml("llama.cpp", ("substrate", "rtx-3090"), &eff, &[], &[]);
    let o = overlay::parse(&y, "o.yaml").unwrap();
    assert!(o.applies("rtx-3090", "any", "llama.cpp") && !o.applies("rtx-3090", "any", "vllm"));
    let s2 = substrate::load("rtx-3090", &o.overrides).unwrap();
    assert_eq!(s2.efficiency, s.efficiency);
    // Other paths are written in place too.
    let peak = substrate::Override {
        path: "matrix_peak.fp16".into(),
        expr: "300 TFLOP/s".into(),
    };
    let t2 = overlay::with_values(src, std::slice::from_ref(&peak), &[]).unwrap();
    assert_eq!(
        substrate::load_str(&t2, "t2.yaml", &[]).unwrap(),
        substrate::load("rtx-3090", &[peak]).unwrap()
    );
    let bad = overlay::parse("stack: x\nset: {efficiency.memory: \"0.5\"}\n", "b.yaml").unwrap_err();
    assert!(bad.errors()[0].message().contains("neither"));
}

#[test]
fn report_is_deterministic_and_plots() {
    let t = sample();
    let maps = Maps::builtin().unwrap();
    let a = serde_json::to_string(&validate::validate(
        &t,
        &maps,
        &mut Library::new(Vec::new()),
        &opts(),
    ))
    .unwrap();
    let r = validate::validate(&t, &maps, &mut Library::new(Vec::new()), &opts());
    let b = serde_json::to_string(&r).unwrap();
    assert_eq!(a, b);
    let pts: Vec<PlotPoint> = r
        .rows
        .iter()
        .map(|x| PlotPoint {
            quantity: x.phase.to_string(),
            unit: x.unit.clone(),
            color_key: x.stack.clone(),
            shape_key: "one phase".into(),
            series: 0,
            measured: x.measured,
            predicted: x.predicted,
        })
        .collect();
    let svg = scatter_svg(&pts, "test", &["roofline"]).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // one marker per row, and two in the legend (the series and the phase)
    assert_eq!(svg.matches("<circle").count(), r.rows.len() + 2);
}

#[test]
fn public_file_every_row_accounted_for() {
    let path = Path::new("traces/public-llm-inference.csv");
    let t = traces::read(path).unwrap();
    assert_eq!(t.rows.len(), 4520);
    let maps = Maps::builtin().unwrap();
    let r = validate::validate(&t, &maps, &mut Library::new(Vec::new()), &opts());
    assert_eq!(r.counts.mapped + r.counts.unmapped, 4520);
    // Batch-1 decode is predicted from the datasheet within a modest error before calibration.
    let decode = r.by_phase.iter().find(|g| g.key == ["decode batch 1"]).unwrap();
    assert!(
        decode.stats.n > 350 && decode.stats.mape < 30.0,
        "{:?}",
        decode.stats
    );
}

fn set(path: &str, expr: &str) -> substrate::Override {
    substrate::Override {
        path: path.into(),
        expr: expr.into(),
    }
}

fn prefill_s(model: &llmforge::model::Model, sub: &substrate::Substrate, prompt: u64, engine: Engine) -> f64 {
    let w = llmforge::sim::Workload {
        prompt,
        generate: 1,
        batch: 1,
    };
    llmforge::sim::summary(model, sub, w, engine).prefill.time.get()
}

#[test]
fn efficiency_extensions_default_to_the_old_model() {
    // Stated defaults (quantised GEMMs at the full compute fraction, no score traffic) price
    // exactly as a substrate without the fields.
    let base = substrate::load("rtx-3090", &[]).unwrap();
    assert_eq!(base.efficiency.quantised_compute, 1.0);
    assert_eq!(base.efficiency.score_bytes, Bytes::ZERO);
    let same = substrate::load(
        "rtx-3090",
        &[
            set("efficiency.quantised_compute", "1"),
            set("efficiency.score_bytes", "0 B"),
        ],
    )
    .unwrap();
    assert_eq!(base, same);
}

#[test]
fn quantised_weights_slow_only_quantised_gemms() {
    let f16 = llmforge::model::load("llama-3-8b").unwrap();
    let mut q4 = f16.clone();
    q4.precision.weights = llmforge::model::Precision::Bits(4.89);
    let base = substrate::load("rtx-4090", &[]).unwrap();
    let slow = substrate::load("rtx-4090", &[set("efficiency.quantised_compute", "0.5")]).unwrap();
    for engine in [Engine::Roofline, Engine::Sim] {
        // fp16 weights: unchanged.
        assert_eq!(
            prefill_s(&f16, &base, 2048, engine),
            prefill_s(&f16, &slow, 2048, engine)
        );
        // Block-quantised weights: a compute-bound prefill slows, by less than the factor 2
        // (attention and elementwise kernels are not weight GEMMs).
        let (a, b) = (
            prefill_s(&q4, &base, 2048, engine),
            prefill_s(&q4, &slow, 2048, engine),
        );
        assert!(b > 1.3 * a && b < 2.0 * a, "{engine:?}: {a} -> {b}");
    }
}

#[test]
fn materialised_scores_cost_more_for_longer_prompts() {
    let m = llmforge::model::load("llama-3-8b").unwrap();
    let base = substrate::load("rtx-4090", &[]).unwrap();
    let unfused = substrate::load("rtx-4090", &[set("efficiency.score_bytes", "16 B")]).unwrap();
    for engine in [Engine::Roofline, Engine::Sim] {
        let extra = |p: u64| prefill_s(&m, &unfused, p, engine) / prefill_s(&m, &base, p, engine);
        let (short, long) = (extra(512), extra(8192));
        assert!(short >= 1.0 && long > short + 0.1, "{engine:?}: {short} {long}");
    }
    // The cycle model stays at or above the roofline with the score traffic.
    let r = prefill_s(&m, &unfused, 4096, Engine::Roofline);
    let g = prefill_s(&m, &unfused, 4096, Engine::Sim);
    assert!(g >= r * (1.0 - 1e-9), "{g} < {r}");
}

#[test]
fn efficiency_extensions_are_checked_with_locations() {
    let (_, src) = substrate::SHIPPED.iter().find(|(n, _)| *n == "rtx-3090").unwrap();
    let bad = src.replace(
        "  kernel_overhead:",
        "  score_bytes: \"-3 B\"\n  quantised_compute: 1.5\n  kernel_overhead:",
    );
    let err = substrate::load_str(&bad, "bad.yaml", &[]).unwrap_err();
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let find = |word: &str| {
        err.errors()
            .iter()
            .find(|e| e.message().contains(word) || e.labels().iter().any(|l| l.1.contains(word)))
            .unwrap_or_else(|| panic!("no error about {word}: {err:?}"))
    };
    let e = find("non-negative");
    assert_eq!(
        (e.file(), e.line()),
        ("bad.yaml", line_of("score_bytes")),
        "{e:?}"
    );
    let e = find("(0, 1]");
    assert_eq!(
        (e.file(), e.line()),
        ("bad.yaml", line_of("quantised_compute")),
        "{e:?}"
    );
    let e = substrate::load("rtx-3090", &[set("efficiency.quantised_compute", "0")]).unwrap_err();
    assert!(e.errors()[0].file().contains("quantised_compute"), "{e:?}");
}

#[test]
fn micro_batched_prompts_pay_one_pass_per_micro_batch() {
    // llama.cpp cuts a 2048-token prompt into 4 micro-batches of 512: 3 more one-token passes
    // than the engine's single pass; a stack without micro-batches pays none.
    let maps = Maps::builtin().unwrap();
    let text = "hardware,software,model,weights,bits_per_weight,batch,prompt_len,gen_len,metric,value,unit,source\n\
        NVIDIA GeForce RTX 3090,llama.cpp CUDA,Meta-Llama-3-8B,GGUF F16,16,1,2048,0,pp_tokens_per_s,4000,tok/s,t\n\
        NVIDIA GeForce RTX 3090,llama.cpp CUDA,Meta-Llama-3-8B,GGUF F16,16,1,512,0,pp_tokens_per_s,4000,tok/s,t\n";
    let t = traces::parse(text, "inline.csv").unwrap();
    let cases: Vec<_> = t
        .rows
        .iter()
        .map(|r| mapping::map_row(r, &maps).unwrap())
        .collect();
    assert_eq!(cases[0].pipeline.map(|p| p.0), Some(512));
    let m = predict::with_formats(&llmforge::model::load("llama-3-8b").unwrap(), &cases[0]);
    let sub = substrate::load("rtx-3090", &[]).unwrap();
    let one = predict::engine_run(&m, &sub, 1, 1, 1, Engine::Roofline).prefill;
    let single = predict::engine_run(&m, &sub, 2048, 1, 1, Engine::Roofline).prefill;
    let p = predict::predict(&cases[0], &m, &sub, Engine::Roofline);
    assert!(
        (p.prefill_s - (single + 3.0 * one)).abs() < 1e-9 * single,
        "{p:?}"
    );
    assert!((p.value - 2048.0 / p.prefill_s).abs() < 1e-6);
    // One micro-batch: exactly the engine's pass.
    let p512 = predict::predict(&cases[1], &m, &sub, Engine::Roofline);
    let single512 = predict::engine_run(&m, &sub, 512, 1, 1, Engine::Roofline).prefill;
    assert!((p512.prefill_s - single512).abs() < 1e-12);
    // Without micro-batches (no ubatch in the stack entry) the pass is the engine's.
    let mut whole = cases[0].clone();
    whole.pipeline = None;
    let pw = predict::predict(&whole, &m, &sub, Engine::Roofline);
    assert!((pw.prefill_s - single).abs() < 1e-12);
}

#[test]
fn host_queues_hold_back_a_stage_that_fills_them() {
    // llama.cpp over four A40s: a stage of Llama-3-70B is 20 blocks. With k-quant weights a
    // micro-batch takes 20 x (43 + 7) + 3 = 1,003 submissions there, more than the 1,000 a
    // launch queue holds, and the host thread waits for each stage in turn; with F16 weights
    // 20 x 43 + 3 = 863 fit, and the stages overlap.
    let maps = Maps::builtin().unwrap();
    let text = "hardware,software,model,weights,bits_per_weight,batch,prompt_len,gen_len,metric,value,unit,source\n\
        4x NVIDIA A40,llama.cpp CUDA,Meta-Llama-3-70B,GGUF Q4_K_M,4.82,1,2048,0,pp_tokens_per_s,300,tok/s,t\n\
        4x NVIDIA A40,llama.cpp CUDA,Meta-Llama-3-70B,GGUF F16,16,1,2048,0,pp_tokens_per_s,900,tok/s,t\n";
    let t = traces::parse(text, "inline.csv").unwrap();
    let sub = substrate::load("a40", &[]).unwrap();
    let base = llmforge::model::load("llama-3-70b").unwrap();
    let mut ratios = Vec::new();
    for row in &t.rows {
        let case = mapping::map_row(row, &maps).unwrap();
        let q = case.host.expect("llama.cpp states its host queues");
        assert_eq!((q.depth, q.block_launches, q.dequant_launches), (1000, 43, 1));
        let m = predict::with_formats(&base, &case);
        let held = predict::predict(&case, &m, &sub, Engine::Roofline).prefill_s;
        let free = predict::predict(
            &llmforge::validate::mapping::Case {
                host: None,
                ..case.clone()
            },
            &m,
            &sub,
            Engine::Roofline,
        )
        .prefill_s;
        // queues deep enough for any stage are the pipeline without a host
        let mut deep = case.clone();
        deep.host = Some(llmforge::system::HostQueue { depth: 1 << 20, ..q });
        let d = predict::predict(&deep, &m, &sub, Engine::Roofline).prefill_s;
        assert!((d - free).abs() <= 1e-9 * free, "{d} against {free}");
        ratios.push(held / free);
    }
    // four micro-batches of 512 through four stages: the pipeline's (4 + 3) stage times
    // against 16 one after another
    assert!(
        ratios[0] > 1.5 && ratios[0] < 16.0 / 7.0 + 1e-9,
        "k-quant: {ratios:?}"
    );
    assert!(ratios[1] >= 1.0 - 1e-12 && ratios[1] < 1.35, "F16: {ratios:?}");
}

#[test]
fn host_queue_columns_are_checked_with_locations() {
    let mut maps = Maps::builtin().unwrap();
    let bad = "pattern,stack,multi_device,ubatch,nbatch,host_queue,block_launches,dequant_launches,boundary_launches,note\n\
        Mine,mine,layer,512,2048,1000,,1,3,three of four\n\
        Other,other,layer,512,2048,lots,43,1,3,a word\n\
        Third,third,layer,512,2048,0,43,1,3,an empty queue\n";
    let err = maps.add_text(bad, "stacks.csv").unwrap_err();
    let errs = err.errors();
    assert_eq!(errs.len(), 3, "{err:?}");
    assert_eq!(errs[0].line(), 2);
    assert!(errs[0].message().contains("3 of 4"), "{}", errs[0].message());
    assert_eq!(errs[1].line(), 3);
    assert!(
        errs[1].message().contains("`host_queue`: `lots`"),
        "{}",
        errs[1].message()
    );
    assert_eq!(errs[2].line(), 4);
    assert!(
        errs[2].message().contains("`host_queue`: `0`"),
        "{}",
        errs[2].message()
    );
    // all four blank: no host queues, as for a stack that does not state them
    let none = "pattern,stack,multi_device,ubatch,nbatch,host_queue,block_launches,dequant_launches,boundary_launches,note\n\
        Mine,mine,layer,512,2048,,,,,none\n";
    maps.add_text(none, "stacks.csv").unwrap();
    assert_eq!(maps.stack_for("Mine v1").unwrap().host, None);
}

#[test]
fn prefill_holdout_fits_keep_the_overheads_and_fit_per_phase() {
    let r = validate_sample(vec![HoldOut::Device]);
    let by_line: std::collections::HashMap<u64, &validate::RowResult> =
        r.rows.iter().map(|x| (x.line, x)).collect();
    let mut prefill = 0;
    for x in &r.holdout[0].rows {
        let row = by_line[&x.line];
        if row.phase != "prefill" {
            continue;
        }
        prefill += 1;
        let sub = substrate::load(&row.substrate, &[]).unwrap();
        let Some(fit) = &x.fit else {
            assert_eq!(x.basis, calibrate::Basis::Stated);
            continue;
        };
        assert_eq!(fit.efficiency.kernel_overhead, sub.efficiency.kernel_overhead);
        assert_eq!(fit.efficiency.token_overhead, sub.efficiency.token_overhead);
    }
    assert!(prefill > 0, "the sample has held-out prefill rows");
    // Every fit a prefill row gets is fitted on prefill rows only: its row count is at most
    // the number of prefill rows of other devices.
    let n_prefill = r.rows.iter().filter(|x| x.phase == "prefill").count();
    for x in &r.holdout[0].rows {
        if let (Some(fit), "prefill") = (&x.fit, by_line[&x.line].phase) {
            assert!(fit.n < n_prefill, "{} >= {n_prefill}", fit.n);
        }
    }
}

/// Average power made by the engine itself at known energy scales (compute x2, memory x3,
/// static x2.5) is fitted back by the energy calibration: the parts add up to the stated
/// prediction, and the fitted scales reproduce the rows.
#[test]
fn energy_calibration_recovers_known_scales() {
    let maps = Maps::builtin().unwrap();
    let mut rows = String::from(TRACE_HEADER);
    for model in ["meta-llama/Llama-2-7b-hf", "meta-llama/Meta-Llama-3-8B"] {
        for batch in [1, 16, 64] {
            for (p, g) in [(128, 128), (1024, 1024), (2048, 256)] {
                rows.push_str(&format!(
                    "NVIDIA H100 SXM5 80GB,\"vLLM (fp16; benchmark_latency/throughput.py, 2024)\",{model},FP16,16,{batch},{p},{g},avg_gpu_power,1,mW (as reported),t\n"
                ));
            }
        }
    }
    let t = traces::parse(&rows, "synthetic.csv").unwrap();
    let base = substrate::load("h100-sxm", &[]).unwrap();
    let truth = [2.0, 3.0, 2.5];
    let truth_sub = validate::energy::with_energy_scale(&base, truth).unwrap();
    let (cases, models) = measured_by(&t, &maps, &truth_sub, Engine::Roofline);
    let rows: Vec<([f64; 3], f64)> = cases
        .iter()
        .zip(&models)
        .enumerate()
        .map(|(i, (c, m))| {
            let p = Point {
                line: i as u64,
                case: c,
                model: m,
                substrate: &base,
            };
            (
                validate::energy::parts(&p, base.efficiency, Engine::Roofline).unwrap(),
                c.measured,
            )
        })
        .collect();
    // the parts add up to the stated substrate's prediction
    let stated = predict::predict(&cases[0], &models[0], &base, Engine::Roofline).value;
    let sum: f64 = rows[0].0.iter().sum();
    assert!((sum / stated - 1.0).abs() < 1e-9, "{sum} vs {stated}");
    let f = validate::energy::fit(&rows).unwrap();
    // The rows are reproduced; the groups are only partly separable (in memory-bound decode
    // both DRAM energy and static energy grow with the time spent), so each scale is only
    // required to move the right way from the stated value (1) and stay near the truth.
    assert!(f.mape < 2.0, "{f:?}");
    for (got, want) in f.scales().iter().zip(truth) {
        assert!(*got > 1.2 && (got - want).abs() < 0.3 * want, "{f:?}");
    }
}

/// `llmforge calibrate` on a substrate with power rows also fits the energy scales and writes
/// the scaled energy parameters into the calibrated substrate, which loads back.
#[test]
fn calibrate_writes_fitted_energy_into_the_substrate() {
    let dir = std::env::temp_dir().join(format!("llmforge-cal-energy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("h100.yaml");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_llmforge"))
        .args([
            "calibrate",
            "--traces",
            SAMPLE,
            "--substrate",
            "h100-sxm",
            "--stack",
            "tensorrt-llm",
        ])
        .args(["--format", "json", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &report["energy"];
    assert_eq!(e["rows"], 1, "{e}");
    let k = e["fit"]["static"].as_f64().unwrap();
    assert!(k > 1.5, "{e}");
    assert!(e["calibrated"]["mape"].as_f64().unwrap() < e["uncalibrated"]["mape"].as_f64().unwrap());
    let written = substrate::load(out.to_str().unwrap(), &[]).unwrap();
    let base = substrate::load("h100-sxm", &[]).unwrap();
    let static_power = |s: &substrate::Substrate| match &s.kind {
        substrate::Kind::Gpu(g) => g.energy.static_power.get(),
        _ => panic!("a GPU"),
    };
    let ratio = static_power(&written) / static_power(&base);
    assert!((ratio / k - 1.0).abs() < 1e-6, "{ratio} vs {k}");
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("# Energy scaled by")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kernel traces (`traces/kernels/`): the reader, the tables, every row predicted or named
/// unmappable, the hold-out by device.
mod kernels {
    use llmforge::validate::kernels::{self, KernelMaps, KernelOptions};
    use llmforge::validate::predict::Engine;
    use proptest::prelude::*;
    use std::path::Path;

    const FILE: &str = "traces/kernels/gemm.csv";

    fn opts(holdout: bool) -> KernelOptions {
        KernelOptions {
            engine: Engine::Sim,
            holdout,
            fit_all: false,
            fit_sm_bandwidth: false,
        }
    }

    #[test]
    fn every_kernel_row_is_predicted_or_named_with_a_reason() {
        let t = kernels::read(Path::new(FILE)).unwrap();
        assert_eq!(t.rows.len(), 17_586);
        let r = kernels::validate(&t, &KernelMaps::builtin().unwrap(), &opts(false));
        assert_eq!(r.counts.mapped + r.counts.unmapped, r.counts.rows);
        assert_eq!(
            r.reasons.iter().map(|x| x.count).sum::<usize>(),
            r.counts.unmapped
        );
        // Every GPU with >= 100 fp16/bf16 rows in the shared data is there.
        for s in ["h100-sxm", "b200", "mi355x", "mi308x", "v100-sxm2", "t4", "p100"] {
            let g = r
                .groups
                .iter()
                .find(|g| g.key == [s, "fp16/bf16"])
                .unwrap_or_else(|| panic!("{s}"));
            assert!(g.stats.n >= 100, "{s}: {}", g.stats.n);
            // uncalibrated, at the stated efficiencies and the shipped kernel defaults
            assert!(g.stats.mape < 35.0, "{s}: {}", g.stats.mape);
        }
        // The simulator is never faster than the roofline on any row.
        let roof = kernels::validate(
            &t,
            &KernelMaps::builtin().unwrap(),
            &KernelOptions {
                engine: Engine::Roofline,
                ..opts(false)
            },
        );
        for (a, b) in r.rows.iter().zip(&roof.rows) {
            assert_eq!(a.line, b.line);
            assert!(b.predicted_s <= a.predicted_s * (1.0 + 1e-9), "line {}", a.line);
        }
        // The mamf rows set the stated efficiencies, so they are kept out.
        assert!(r.exclusions.iter().any(|e| e.reason.contains("mamf")));
    }

    /// The shipped kernel traces cut to the first `per_device` rows of each device that `keep`
    /// keeps.
    fn first_rows(per_device: usize, keep: impl Fn(&kernels::KernelRow) -> bool) -> kernels::KernelTraces {
        let mut t = kernels::read(Path::new(FILE)).unwrap();
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        t.rows.retain(|r| {
            let kept = keep(r);
            let n = seen.entry(r.device.clone()).or_default();
            *n += kept as usize;
            kept && *n <= per_device
        });
        t
    }

    #[test]
    fn holdout_predicts_each_device_from_the_others_of_its_dataset() {
        // 30 rows of each DeepBench fp16 device.
        let small = first_rows(30, |r| {
            r.dataset == "deepbench_gemm" && r.dtype.starts_with("fp16 (")
        });
        let r = kernels::validate(&small, &KernelMaps::builtin().unwrap(), &opts(true));
        let h = r.holdout.unwrap();
        assert_eq!(h.fits.len(), 2, "{:?}", h.fits);
        assert_eq!(h.rows.len(), 60);
        assert!(
            h.rows
                .iter()
                .all(|x| x.predicted_s.is_finite() && x.predicted_s > 0.0)
        );
        for (_, held, f) in &h.fits {
            assert_eq!(f.devices, 1, "{held}");
            assert!(f.params.overlap >= 1.0);
            // the DRAM fraction is the held-out device's stated one, never fitted
            let stated = llmforge::substrate::load(held, &[]).unwrap().efficiency.memory;
            assert_eq!(f.params.memory, stated, "{held}");
        }
    }

    #[test]
    fn a_held_out_device_is_fitted_on_its_familys_others_in_its_dataset_where_there_are_any() {
        // 20 rows of each XLA bf16 device: the B200 and the H100 (NVIDIA) are each fitted on the
        // other alone; the MI355X, the dataset's only AMD part, on both NVIDIA parts.
        let small = first_rows(20, |r| {
            r.dataset == "xla_matmul_perf_table" && r.dtype.starts_with("bf16xbf16")
        });
        let r = kernels::validate(&small, &KernelMaps::builtin().unwrap(), &opts(true));
        let h = r.holdout.unwrap();
        let fit = |held: &str| {
            h.fits
                .iter()
                .find(|(_, d, _)| d == held)
                .map(|(_, _, f)| (f.devices, f.rows))
                .unwrap_or_else(|| panic!("{held}: {:?}", h.fits))
        };
        assert_eq!(fit("b200"), (1, 20));
        assert_eq!(fit("h100-sxm"), (1, 20));
        assert_eq!(fit("mi355x"), (2, 40));
    }

    #[test]
    fn a_held_out_prediction_never_sees_its_own_devices_measurements() {
        // 20 rows of each DeepBench fp16 device and 20 of each XLA bf16 device: the start fit
        // (every other device of every dataset) and the dataset fit both exclude the device.
        let small = first_rows(20, |r| {
            (r.dataset == "deepbench_gemm" && r.dtype.starts_with("fp16 ("))
                || (r.dataset == "xla_matmul_perf_table" && r.dtype.starts_with("bf16xbf16"))
        });
        let held = |t: &kernels::KernelTraces| {
            let r = kernels::validate(t, &KernelMaps::builtin().unwrap(), &opts(true));
            let lines: std::collections::BTreeMap<u64, String> =
                r.rows.iter().map(|x| (x.line, x.substrate.clone())).collect();
            r.holdout
                .unwrap()
                .rows
                .into_iter()
                .map(|x| (lines[&x.line].clone(), x.line, x.predicted_s))
                .collect::<Vec<_>>()
        };
        let before = held(&small);
        assert!(before.iter().any(|x| x.0 == "v100-sxm2") && before.iter().any(|x| x.0 == "b200"));
        for device in ["v100-sxm2", "b200"] {
            // the device's own measurements three times slower: its predictions do not move,
            // every other device's do (they were fitted on these rows)
            let mut slow = small.clone();
            let maps = KernelMaps::builtin().unwrap();
            for r in &mut slow.rows {
                if kernels::map_row(r, &maps).is_ok_and(|c| c.substrate == device) {
                    r.time_s *= 3.0;
                }
            }
            let after = held(&slow);
            let (mine, others): (Vec<_>, Vec<_>) =
                before.iter().zip(&after).partition(|(b, _)| b.0 == device);
            assert!(mine.iter().all(|(b, a)| b.2 == a.2), "{device}");
            assert!(others.iter().any(|(b, a)| b.2 != a.2), "{device}");
        }
    }

    #[test]
    fn kernel_reader_locates_bad_fields_and_names_missing_columns() {
        let e = kernels::parse(
            "device,dtype,batch,m,n,k,time_s\nNVIDIA T4,fp32 ;,1,12.5,16,16,1e-5\nNVIDIA T4,fp32 ;,1,16,16,16,soon\n",
            "bad.csv",
        )
        .unwrap_err();
        let errs = e.errors();
        assert_eq!(errs.len(), 2, "{e:?}");
        assert_eq!((errs[0].line(), errs[0].column()), (2, 20));
        assert!(errs[0].message().contains("`m`"));
        assert_eq!(errs[1].line(), 3);
        assert!(errs[1].message().contains("time_s"));
        let e = kernels::parse("device,m\nx,1\n", "x.csv").unwrap_err();
        assert!(e.errors()[0].message().contains("dtype"));
    }

    /// A user's own measurements of a device the shipped tables do not know: unmappable alone,
    /// predicted once `--substrate-map` names the device's substrate; a malformed table is a
    /// located error.
    #[test]
    fn a_users_device_table_maps_its_own_kernel_rows() {
        let dir = std::env::temp_dir().join(format!("llmforge-kernel-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("mine.csv");
        std::fs::write(
            &csv,
            "dataset,device,dtype,batch,m,n,k,time_s,tflops,library,flag,source\n\
             mine,ACME Lab H100 #3,bf16,1,8192,8192,8192,1.45e-03,758,cuBLAS,,lab\n",
        )
        .unwrap();
        let table = dir.join("devices.csv");
        std::fs::write(
            &table,
            "device,substrate,family,set,note\nACME Lab H100 #3,h100-sxm,nvidia,,\n",
        )
        .unwrap();
        let bad = dir.join("bad.csv");
        std::fs::write(
            &bad,
            "device,substrate,family,set,note\nACME Lab H100 #3,h100-sxm,nvidia,clock,\n",
        )
        .unwrap();
        let run = |maps: &[&Path]| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_llmforge"));
            cmd.args(["validate", "--kernels"])
                .arg(&csv)
                .args(["--format", "json", "-q"]);
            for m in maps {
                cmd.arg("--substrate-map").arg(m);
            }
            cmd.output().unwrap()
        };
        let json = |out: &std::process::Output| -> serde_json::Value {
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let alone = json(&run(&[]));
        assert_eq!(alone["counts"]["unmapped"], 1, "{alone}");
        let mapped = json(&run(&[&table]));
        assert_eq!(mapped["counts"]["mapped"], 1, "{mapped}");
        let row = &mapped["rows"][0];
        assert_eq!(row["substrate"], "h100-sxm");
        let err = row["error_pct"].as_f64().unwrap();
        assert!(
            err.abs() < 25.0,
            "an 8192^3 bf16 GEMM at 758 TFLOPS on an H100 SXM: {err}%"
        );
        let out = run(&[&bad]);
        assert!(!out.status.success());
        let msg = String::from_utf8_lossy(&out.stderr);
        assert!(msg.contains("bad.csv") && msg.contains(":2:"), "{msg}");
        std::fs::remove_dir_all(&dir).ok();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Any text: rows or located errors, never a panic.
        #[test]
        fn kernel_reader_never_panics(cut in 0usize..400, junk in "[ -~\n\",]{0,40}") {
            let text = std::fs::read_to_string(FILE).unwrap();
            let head: String = text.chars().take(2000).collect();
            let cut = cut.min(head.len());
            let mangled = format!("{}{}{}", &head[..cut], junk, &head[cut..]);
            if let Ok(t) = kernels::parse(&mangled, "m.csv") {
                let _ = kernels::validate(&t, &KernelMaps::builtin().unwrap(), &opts(false));
            }
        }
    }
}

/// Issue 18: the text report's headers line up with their numbers, and `--rows` has a header.
#[test]
fn text_report_headers_line_up() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmforge"))
        .args(["validate", "--traces", SAMPLE, "--rows"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // every table: a header, a unit line, a rule, then rows whose right-aligned "bias" column
    // ends where its header ends
    let heads: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with("phase ") && lines[i].contains("bias"))
        .collect();
    assert!(!heads.is_empty(), "{text}");
    for h in heads {
        let col = lines[h].find("bias").unwrap() + "bias".len();
        assert!(lines[h + 2].trim_start().starts_with('─'));
        for row in lines[h + 3..].iter().take_while(|l| !l.trim().is_empty()) {
            assert_eq!(row.chars().count(), col, "{row}");
        }
    }
    let rows = lines.iter().position(|l| *l == "rows").expect("a rows section");
    for name in ["line", "hardware", "metric", "measured", "predicted", "error"] {
        assert!(lines[rows + 1].contains(name), "{}", lines[rows + 1]);
    }
    assert!(lines[rows + 3].trim_start().starts_with('─'));
}
