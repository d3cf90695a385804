//! `kind: ring` files: the shipped reference chip equals the ring module's built-in constants,
//! every field is read, bad values are located, overrides apply.

use super::set;
use llmforge::sim::ring::{ChipSizing, DecodeContext, LmHead, RingDesign, RingOptions, RingSpec, RingTiming};
use llmforge::substrate::{self, Kind, Ring, Substrate};
use llmforge::units::Bytes;
use serde_json::Value;

pub(super) fn ring(s: &Substrate) -> &Ring {
    match &s.kind {
        Kind::Ring(r) => r,
        other => panic!("not a ring: {other:?}"),
    }
}

fn load(name: &str, overrides: &[substrate::Override]) -> Substrate {
    substrate::load(name, overrides).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

/// Equal JSON trees, numbers within a relative 1e-12 (the file writes "135.685 um^2", the
/// built-in `SquareMeters::um2(135.685)`: the same figure through two roundings).
fn assert_close(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12 * x.abs().max(y.abs()), "{at}: {x} vs {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{at}");
            for (k, v) in x {
                assert_close(v, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn the_shipped_reference_chip_is_the_built_in_one() {
    for name in ["ring-edge", "ring-edge-cosearch"] {
        let s = load(name, &[]);
        let r = ring(&s);
        let want = serde_json::to_value(RingSpec::llmforge_reference()).unwrap();
        let got = serde_json::to_value(&r.spec).unwrap();
        assert_close(&got, &want, name);
        assert_eq!(r.design, RingDesign::new(16, 8, Bytes::kib(24.0)).unwrap());
        assert_eq!(r.options, RingOptions::corrected());
        // integers and exact binary figures are exact
        let c = r.spec.chip();
        assert_eq!((c.n_dxt, c.vacs_per_dxt, c.macs_per_vac), (8, 16, 16));
        assert_eq!((c.n_cores(), c.n_macs()), (128, 2048));
        assert_eq!((c.wmem_port_bits, c.kv_row_bits), (128, 128));
        assert_eq!(c.wmem_per_core.get(), 24576.0);
        assert_eq!(c.kv_per_core.get(), 8192.0);
        assert_eq!(c.clock.get(), 200e6);
        assert_eq!(s.envelope.max_power.unwrap().get(), 100.0);
        assert!((s.envelope.max_area.unwrap().as_mm2() - 800.0).abs() < 1e-9);
    }
}

#[test]
fn helper_figures_of_a_ring() {
    let s = load("ring-edge", &[]);
    assert_eq!(s.kind_name(), "ring");
    // 8 chips x 2048 MACs x 2 x 200 MHz
    let peak = 8.0 * 2048.0 * 2.0 * 200e6;
    assert_eq!(s.matrix_peak(llmforge::model::ComputeClass::Int8).get(), peak);
    assert_eq!(s.matrix_peak(llmforge::model::ComputeClass::F16).get(), peak);
    // WMEM: 16 B per core per cycle, 8 x 128 cores
    assert_eq!(s.memory_bandwidth().get(), 16.0 * 1024.0 * 200e6);
    assert_eq!(s.ridge_point(llmforge::model::ComputeClass::Int8), 2.0);
    assert_eq!(s.memory_capacity().get(), 1024.0 * 32768.0);
    assert_eq!(s.clock().get(), 200e6);
    assert_eq!(ring(&s).dram_bandwidth().get(), 6.4e9);
    assert_eq!(s.efficiency, substrate::Efficiency::EXACT);
}

/// Every field of a ring file reaches the spec: an override of each changes what it should.
#[test]
fn every_field_is_read() {
    type Check = fn(&Ring) -> f64;
    let cases: &[(&str, &str, f64, Check)] = &[
        ("max_chips", "16", 16.0, |r| r.design.max_chips as f64),
        ("chip.clock", "100 MHz", 100e6, |r| r.spec.chip().clock.get()),
        ("chip.dxts", "4", 4.0, |r| r.spec.chip().n_dxt as f64),
        ("chip.vacs_per_dxt", "8", 8.0, |r| {
            r.spec.chip().vacs_per_dxt as f64
        }),
        ("chip.macs_per_vac", "32", 32.0, |r| r.design.macs_per_vac as f64),
        ("chip.wmem_per_core", "48 KiB", 49152.0, |r| {
            r.design.wmem_per_core.get()
        }),
        ("chip.kv_per_core", "16 KiB", 16384.0, |r| {
            r.spec.chip().kv_per_core.get()
        }),
        ("chip.wmem_port", "256 bit", 256.0, |r| {
            r.spec.chip().wmem_port_bits as f64
        }),
        ("chip.kv_row", "8 B", 64.0, |r| r.spec.chip().kv_row_bits as f64),
        ("chip.wmem_ref_depth", "3072", 3072.0, |r| {
            r.spec.chip().wmem_ref_depth as f64
        }),
        ("chip.kv_ref_depth", "256", 256.0, |r| {
            r.spec.chip().kv_ref_depth as f64
        }),
        ("link.bandwidth", "32 B/cycle", 32.0, |r| {
            r.spec.link().bytes_per_cycle.get()
        }),
        ("link.latency", "20 cycle", 20.0, |r| r.spec.link().latency.get()),
        ("link.energy", "2 pJ/bit", 2.0, |r| {
            r.spec.link().energy_per_bit.as_pj()
        }),
        ("dram.bandwidth", "8 B/cycle", 8.0, |r| {
            r.spec.dram().bytes_per_cycle.get()
        }),
        ("dram.energy", "20 pJ/B", 20.0, |r| {
            r.spec.chip().energy.dram_per_byte.as_pj()
        }),
        ("energy.kv", "0.5 pJ/B", 0.5, |r| {
            r.spec.chip().energy.kv_per_byte.as_pj()
        }),
        ("energy.wmem", "0.5 pJ/B", 0.5, |r| {
            r.spec.chip().energy.wmem_per_byte.as_pj()
        }),
        ("energy.head_sram", "0.5 pJ/B", 0.5, |r| {
            r.spec.chip().energy.head_sram_per_byte.as_pj()
        }),
        ("energy.global_sram", "0.5 pJ/B", 0.5, |r| {
            r.spec.chip().energy.global_sram_per_byte.as_pj()
        }),
        ("energy.mac", "0.5 pJ", 0.5, |r| r.spec.chip().energy.mac.as_pj()),
        ("energy.accumulator", "0.5 pJ", 0.5, |r| {
            r.spec.chip().energy.accumulator_access.as_pj()
        }),
        ("energy.softmax", "1 pJ", 1.0, |r| {
            r.spec.chip().energy.softmax_per_element.as_pj()
        }),
        ("energy.norm", "1 pJ", 1.0, |r| {
            r.spec.chip().energy.norm_per_element.as_pj()
        }),
        ("energy.v_column_read_factor", "1.5", 1.5, |r| {
            r.spec.chip().energy.v_column_read_factor
        }),
        ("energy.kv_write_factor", "1.5", 1.5, |r| {
            r.spec.chip().energy.kv_write_factor
        }),
        ("energy.sram_depth_exponent", "0.5", 0.5, |r| {
            r.spec.chip().energy.sram_depth_exponent
        }),
        ("area.mac", "100 um^2", 100.0, |r| {
            r.spec.chip().area.per_mac.get() * 1e12
        }),
        ("area.accumulator", "100 um^2", 100.0, |r| {
            r.spec.chip().area.accumulator_per_core.get() * 1e12
        }),
        ("area.sram", "1 um^2/B", 1.0, |r| {
            r.spec.chip().area.sram_per_byte.get() * 1e12
        }),
        ("area.head_sram", "100 um^2", 100.0, |r| {
            r.spec.chip().area.head_sram_per_dxt.get() * 1e12
        }),
        ("area.global_sram", "100 um^2", 100.0, |r| {
            r.spec.chip().area.global_sram_per_chip.get() * 1e12
        }),
        ("leakage.sram", "1e-6 pJ/B/cycle", 1e-6, |r| {
            r.spec.chip().leakage.sram_per_byte.as_pj()
        }),
        ("leakage.accumulator", "1e-3 pJ/cycle", 1e-3, |r| {
            r.spec.chip().leakage.accumulator_per_core.as_pj()
        }),
        ("leakage.head_sram", "1e-3 pJ/cycle", 1e-3, |r| {
            r.spec.chip().leakage.head_per_dxt.as_pj()
        }),
        ("leakage.global_sram", "1e-3 pJ/cycle", 1e-3, |r| {
            r.spec.chip().leakage.global_per_chip.as_pj()
        }),
        ("envelope.area", "100 mm^2", 100.0, |r| {
            r.spec.envelope().max_area.as_mm2()
        }),
        ("envelope.power", "10 W", 10.0, |r| {
            r.spec.envelope().max_power.get()
        }),
        ("packing.weight_headroom", "1.5", 1.5, |r| {
            r.spec.packing().weight_headroom
        }),
        ("packing.kv_headroom", "1.5", 1.5, |r| {
            r.spec.packing().kv_headroom
        }),
        ("packing.min_kv_per_core", "4 KiB", 4096.0, |r| {
            r.spec.packing().min_kv_per_core.get()
        }),
        ("packing.core_doublings", "3", 3.0, |r| {
            r.spec.packing().core_doublings as f64
        }),
        ("packing.max_cores_per_chip", "4096", 4096.0, |r| {
            r.spec.packing().max_cores_per_chip.map_or(-1.0, |m| m as f64)
        }),
    ];
    let base = load("ring-edge", &[]);
    for (path, expr, want, get) in cases {
        assert_ne!(get(ring(&base)), *want, "{path}: the test must change the value");
        let s = load("ring-edge", &[set(path, expr)]);
        let got = get(ring(&s));
        assert!((got - want).abs() <= 1e-9 * want.abs(), "{path}: {got} != {want}");
    }
    let s = load(
        "ring-edge",
        &[
            set("options.decode_context", "average"),
            set("options.lm_head", "included"),
            set("options.spill_to_dram", "true"),
            set("options.tensor_parallel", "true"),
        ],
    );
    let o = ring(&s).options;
    assert_eq!(o, RingOptions::extended());
    assert_eq!(
        (o.decode_context, o.lm_head),
        (DecodeContext::Average, LmHead::Included)
    );
    // the chip-sizing reading of the packing rule (a word, default smallest_fitting)
    assert_eq!(
        ring(&base).spec.packing().chip_sizing,
        ChipSizing::SmallestFitting
    );
    let s = load("ring-edge", &[set("packing.chip_sizing", "smallest_total_area")]);
    assert_eq!(ring(&s).spec.packing().chip_sizing, ChipSizing::SmallestTotalArea);
    // the extended spec of the ring module: the reference with 4096 cores per chip
    let s = load("ring-edge", &[set("packing.max_cores_per_chip", "4096")]);
    let want = serde_json::to_value(RingSpec::llmforge_extended()).unwrap();
    assert_close(&serde_json::to_value(&ring(&s).spec).unwrap(), &want, "extended");
}

#[test]
fn overrides_may_reference_other_fields() {
    let s = load(
        "ring-edge",
        &[
            set("chip.kv_per_core", "wmem_per_core / 3"),
            set("dram.bandwidth", "link.bandwidth * 4"),
        ],
    );
    let r = ring(&s);
    assert_eq!(r.spec.chip().kv_per_core.get(), 8192.0);
    assert_eq!(r.spec.dram().bytes_per_cycle.get(), 64.0);
}

fn ring_source() -> &'static str {
    substrate::SHIPPED
        .iter()
        .find(|(n, _)| *n == "ring-edge")
        .unwrap()
        .1
}

#[test]
fn bad_values_are_reported_together_and_located() {
    let good = ring_source();
    let bad = good
        .replace("clock: \"200 MHz\"", "clock: \"200 MB\"")
        .replace("wmem_port: \"128 bit\"", "wmem_port: \"12 bit\"")
        .replace("kv: \"0.24 pJ/B\"", "kv: \"0.24 pJ\"")
        .replace("sram: \"5.907e-7 pJ/B/cycle\"", "sram: \"5.907e-7 pJ/B\"")
        .replace("decode_context: midpoint", "decode_context: middle")
        .replace("weight_headroom: 1.15", "weight_headroom: 0.9")
        .replace("dxts: 8", "dxts: 0");
    let errs = substrate::load_str(&bad, "bad.yaml", &[]).unwrap_err();
    let errs = errs.errors();
    assert_eq!(errs.len(), 7, "{errs:?}");
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (needle, words) in [
        ("clock: \"200 MB\"", "chip.clock"),
        ("wmem_port: \"12 bit\"", "whole number of bytes"),
        ("kv: \"0.24 pJ\"", "energy.kv"),
        ("sram: \"5.907e-7 pJ/B\"", "leakage.sram"),
        ("decode_context: middle", "midpoint or average"),
        ("weight_headroom: 0.9", "at least 1"),
        ("dxts: 0", "chip.dxts"),
    ] {
        let line = line_of(needle);
        let e = errs
            .iter()
            .find(|e| e.line() == line)
            .unwrap_or_else(|| panic!("{needle} (line {line}) not reported: {errs:?}"));
        assert_eq!(e.file(), "bad.yaml");
        assert!(e.column() > 1);
        let text = format!("{e} {}", e.help_text().unwrap_or(""));
        assert!(text.contains(words), "{needle}: {text}");
    }
}

#[test]
fn structural_problems_are_errors() {
    let good = ring_source();
    for (from, to, needle) in [
        // a ring needs its envelope
        ("envelope:", "envelope_:", "envelope_"),
        ("  power: \"100 W\"", "", "envelope.power"),
        // unknown fields and sections
        (
            "  kv_row: \"128 bit\"",
            "  kv_row: \"128 bit\"\n  kv_banks: 16",
            "kv_banks",
        ),
        ("spill_to_dram: false", "spill_to_dram: maybe", "true or false"),
        ("max_chips: 8 ", "max_chips: 2.5 ", "max_chips"),
        (
            "  # max_cores_per_chip: 4096",
            "  max_cores_per_chip: 100",
            "power of two",
        ),
    ] {
        let bad = good.replace(from, to);
        assert_ne!(bad, good, "{from}");
        let err = substrate::load_str(&bad, "bad.yaml", &[]).expect_err(to);
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{to}: {text}");
    }
    // bad overrides
    for (o, needle) in [
        (set("chip.wmem", "8 KiB"), "not a field"),
        (set("link.energy", "1 pJ"), "link.energy"),
        (set("options.lm_head", "maybe"), "excluded or included"),
        (set("packing.max_cores_per_chip", "3"), "power of two"),
        (
            set("packing.chip_sizing", "largest"),
            "expected smallest_fitting or smallest_total_area, found `largest`",
        ),
    ] {
        let err = substrate::load("ring-edge", std::slice::from_ref(&o)).expect_err(&o.path);
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{o:?}: {text}");
    }
    // an area limit needs an area model
    let gemmini = substrate::SHIPPED
        .iter()
        .find(|(n, _)| *n == "gemmini")
        .unwrap()
        .1;
    let with_area = format!("{gemmini}envelope: {{area: \"10 mm^2\"}}\n");
    let err = substrate::load_str(&with_area, "g.yaml", &[]).unwrap_err();
    assert!(format!("{err:?}").contains("no area model"));
    let with_power = format!("{gemmini}envelope: {{power: \"2 W\"}}\n");
    let s = substrate::load_str(&with_power, "g.yaml", &[]).unwrap();
    assert_eq!(s.envelope.max_power.unwrap().get(), 2.0);
    assert_eq!(s.envelope.max_area, None);
}

fn source(name: &str) -> &'static str {
    substrate::SHIPPED.iter().find(|(n, _)| *n == name).unwrap().1
}

/// `ring.timing`: corrected by default, paper_era in ring-edge-paper.yaml, settable with
/// `--set`, checked with located errors, and the options the paper-era model cannot honour
/// refused at their fields.
#[test]
fn the_timing_is_read_and_checked() {
    assert_eq!(
        ring(&load("ring-edge", &[])).options.timing,
        RingTiming::Corrected
    );
    let paper = load("ring-edge-paper", &[]);
    let r = ring(&paper);
    assert_eq!(r.options, RingOptions::paper_era());
    assert_eq!(r.design, RingDesign::new(16, 8, Bytes::kib(24.0)).unwrap());
    // the reference chip but for the paper-era SRAM area
    let mut want = RingSpec::llmforge_reference();
    let mut chip = *want.chip();
    chip.area.sram_per_byte = llmforge::units::SquareMeters::um2(3.38793);
    want = RingSpec::new(
        chip,
        *want.link(),
        *want.dram(),
        *want.envelope(),
        *want.packing(),
    )
    .unwrap();
    assert_close(
        &serde_json::to_value(&r.spec).unwrap(),
        &serde_json::to_value(&want).unwrap(),
        "ring-edge-paper",
    );
    let switched = load("ring-edge", &[set("ring.timing", "paper_era")]);
    assert_eq!(ring(&switched).options.timing, RingTiming::PaperEra);
    let back = load("ring-edge-paper", &[set("ring.timing", "corrected")]);
    assert_eq!(ring(&back).options, RingOptions::corrected());

    // a bad word in the file, and in an override of a field the file leaves out
    let good = source("ring-edge-paper");
    let bad = good.replace("timing: paper_era", "timing: paperera");
    let errs = substrate::load_str(&bad, "bad.yaml", &[]).unwrap_err();
    let e = &errs.errors()[0];
    assert_eq!(
        e.line(),
        bad.lines().position(|l| l.contains("paperera")).unwrap() + 1
    );
    assert!(
        e.to_string()
            .contains("expected corrected or paper_era, found `paperera`"),
        "{e}"
    );
    let err = substrate::load("ring-edge", &[set("ring.timing", "fast")]).unwrap_err();
    let e = &err.errors()[0];
    assert_eq!(e.file(), "--set ring.timing");
    assert!(e.to_string().contains("found `fast`"), "{e}");
    let unknown = good.replace("  timing: paper_era", "  timing: paper_era\n  speed: fast");
    assert!(format!("{:?}", substrate::load_str(&unknown, "u.yaml", &[]).unwrap_err()).contains("speed"));

    // what the paper-era model has no place for, located at the field that asks for it
    for (o, needle) in [
        (set("options.lm_head", "included"), "lm_head:"),
        (set("options.decode_context", "average"), "decode_context:"),
        (set("options.spill_to_dram", "true"), "spill_to_dram:"),
        (set("options.tensor_parallel", "true"), "tensor_parallel:"),
        (set("packing.chip_sizing", "smallest_total_area"), "chip_sizing:"),
    ] {
        let err = substrate::load("ring-edge-paper", std::slice::from_ref(&o)).expect_err(&o.path);
        let errs = err.errors();
        assert_eq!(errs.len(), 1, "{o:?}: {errs:?}");
        let e = &errs[0];
        assert_eq!(
            e.line(),
            good.lines().position(|l| l.contains(needle)).unwrap() + 1,
            "{o:?}"
        );
        assert!(
            e.to_string().contains(&o.path) && e.to_string().contains("paper_era"),
            "{e}"
        );
    }
    let capped = good.replace(
        "  core_doublings: 6",
        "  core_doublings: 6\n  max_cores_per_chip: 4096",
    );
    let err = substrate::load_str(&capped, "c.yaml", &[]).unwrap_err();
    assert!(err.errors()[0].to_string().contains("packing.max_cores_per_chip"));
}
