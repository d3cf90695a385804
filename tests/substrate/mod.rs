//! Substrate files: every shipped one validates; overrides apply; malformed files give every
//! problem with its line and column.

mod cosearch;
mod ring;
mod schema;

use llmforge::model::ComputeClass;
use llmforge::substrate::{self, Kind, Override};

fn set(path: &str, expr: &str) -> Override {
    Override {
        path: path.into(),
        expr: expr.into(),
    }
}

/// Lines of the Rust files under `src/<dir>` that contain one of `forbidden`.
fn source_lines_naming(dir: &str, forbidden: &[&str]) -> (usize, Vec<String>) {
    scan_sources(dir, forbidden, true)
}

/// Lines of the Rust files under `src/<dir>` that contain one of `forbidden`; without
/// `with_tests`, a file is read up to its `#[cfg(test)]` module (test fixtures may build
/// what the code itself must not read).
pub(crate) fn scan_sources(dir: &str, forbidden: &[&str], with_tests: bool) -> (usize, Vec<String>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(dir);
    let mut scanned = 0;
    let mut stack = vec![dir];
    let mut found = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                scanned += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    if !with_tests && line.trim_start().starts_with("#[cfg(test)]") {
                        break;
                    }
                    if forbidden.iter().any(|f| line.contains(f)) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    (scanned, found)
}

/// ARCHITECTURE.md: `substrate` knows no model, no graph and no simulator. Every file under
/// src/substrate/ is scanned for a path into those modules (a `use`, a qualified name or a
/// doc link): hardware descriptions live in `substrate`, and `sim` uses them from there.
#[test]
fn imports_nothing_of_models_or_the_simulator() {
    let forbidden = [
        "crate::sim",
        "crate::model",
        "crate::graph",
        "llmforge::sim",
        "llmforge::model",
    ];
    let (scanned, found) = source_lines_naming("substrate", &forbidden);
    assert!(scanned >= 8, "only {scanned} files under src/substrate");
    assert!(
        found.is_empty(),
        "substrate names a model / simulator module:\n{}",
        found.join("\n")
    );
}

/// ARCHITECTURE.md: `sim` does no parsing. No file under src/sim/ names the YAML boundary or
/// its errors: a co-search point reaches the engines as a value (`DesignSpace::point`).
#[test]
fn the_simulator_never_parses() {
    let forbidden = ["crate::yaml", "DescError", "serde_saphyr"];
    let (scanned, found) = source_lines_naming("sim", &forbidden);
    assert!(scanned >= 10, "only {scanned} files under src/sim");
    assert!(
        found.is_empty(),
        "sim names the YAML layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_shipped_substrate_loads() {
    let names: Vec<_> = substrate::names().collect();
    assert_eq!(names.len(), 50);
    for name in names {
        let s = substrate::load(name, &[]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(s.name, name);
        assert!(s.memory_bandwidth().get() > 0.0 && s.matrix_peak(ComputeClass::F16).get() > 0.0);
    }
}

#[test]
fn derived_figures() {
    let orin = substrate::load("jetson-agx-orin-64gb", &[]).unwrap();
    assert_eq!(orin.memory_bandwidth().get(), 204.8e9);
    assert_eq!(orin.matrix_peak(ComputeClass::F16).get(), 42.5e12);
    // int4 falls back to the int8 tensor rate; fp32 uses the CUDA cores (2048 x 2 x 1.3 GHz)
    assert_eq!(orin.matrix_peak(ComputeClass::Int4).get(), 85e12);
    assert!((orin.vector_peak().get() - 2048.0 * 2.0 * 1.3e9).abs() < 1.0);
    let gemmini = substrate::load("gemmini", &[]).unwrap();
    assert_eq!(gemmini.matrix_peak(ComputeClass::Int8).get(), 2.0 * 256.0 * 1e9);
    assert_eq!(gemmini.memory_bandwidth().get(), 4e9);
    let Kind::Systolic(a) = &gemmini.kind else {
        panic!("gemmini is systolic")
    };
    assert_eq!(a.buffers.split_bytes().0, 256.0 * 1024.0);
}

#[test]
fn overrides_replace_fields_and_may_reference_others() {
    let s = substrate::load("gemmini", &[set("dram.read", "8 B/cycle")]).unwrap();
    assert_eq!(s.memory_bandwidth().get(), 8e9);
    let s = substrate::load(
        "a100-sxm4-40gb",
        &[
            set("memory.bandwidth", "2 * 1 TB/s"),
            set("efficiency.memory", "0.5"),
        ],
    )
    .unwrap();
    assert_eq!(s.memory_bandwidth().get(), 2e12);
    assert_eq!(s.efficiency.memory, 0.5);
    let s = substrate::load("gemmini", &[set("array.dataflow", "os")]).unwrap();
    let Kind::Systolic(a) = &s.kind else { panic!() };
    assert_eq!(a.dataflow.name(), "os");
    let s = substrate::load("jetson-orin-nano-super", &[set("sms", "16")]).unwrap();
    assert!(
        (s.matrix_peak(ComputeClass::F16).get() - 16.0 * 2048.0 * 1.02e9).abs() < 1.0,
        "references follow the override"
    );
}

#[test]
fn bad_overrides_are_errors() {
    for (o, needle) in [
        (set("dram.bandwith", "8 B/cycle"), "not a field"),
        (set("dram.read", "8 GB/s"), "dram.read"),
        (set("dram.read", "8"), "dram.read"),
        (set("efficiency.compute", "1.5"), "fraction"),
        (set("array.dataflow", "rs"), "dataflow"),
    ] {
        let err = substrate::load("gemmini", std::slice::from_ref(&o)).expect_err(&o.path);
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{o:?}: {text}");
    }
    assert!(substrate::parse_overrides(&["dram.read".into()]).is_err());
    assert!(substrate::parse_overrides(&["=3".into()]).is_err());
}

#[test]
fn malformed_files_report_every_problem_located() {
    let good = llmforge::substrate::SHIPPED
        .iter()
        .find(|(n, _)| *n == "gemmini")
        .unwrap()
        .1;
    // three problems at once: wrong unit, bad dataflow, a fraction above 1
    let bad = good
        .replace("read: \"4 B/cycle\"", "read: \"4 GB/s\"")
        .replace("dataflow: ws", "dataflow: rs")
        .replace("compute: 1.0", "compute: 2.0");
    let errs = substrate::load_str(&bad, "bad.yaml", &[]).unwrap_err();
    let errs = errs.errors();
    assert_eq!(errs.len(), 3, "{errs:?}");
    for e in errs {
        assert_eq!(e.file(), "bad.yaml");
        assert!(e.line() > 1 && e.column() >= 1, "{e}");
    }
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let lines: Vec<usize> = errs.iter().map(|e| e.line()).collect();
    for needle in ["dataflow: rs", "read: \"4 GB/s\"", "compute: 2.0"] {
        assert!(
            lines.contains(&line_of(needle)),
            "{needle} not reported: {lines:?}"
        );
    }
    for (from, to, needle) in [
        ("kind: systolic", "kind: tpu", "unknown substrate kind"),
        ("clock: \"1 GHz\"", "clock: \"1 GHz +\"", "expected an operand"),
        ("clock: \"1 GHz\"", "clok: \"1 GHz\"", "clok"),
        ("  operands: \"512 KiB\"\n", "", "sram"),
        ("mac: \"0.4 pJ\"", "mac: \"0.4 pJ/B\"", "energy.mac"),
        (
            "dram_byte: \"64 pJ/B\"",
            "dram_byte: \"64 pJ\"",
            "energy.dram_byte",
        ),
    ] {
        let bad = good.replace(from, to);
        assert_ne!(bad, good, "{from}");
        let err = substrate::load_str(&bad, "bad.yaml", &[]).expect_err(to);
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{to}: {text}");
        assert!(
            err.errors()
                .iter()
                .all(|e| e.line() >= 1 || e.message().contains("incomplete")),
            "{to}: {text}"
        );
    }
}

/// Mangled substrate files, `--set` overrides, trace CSVs and overlays: the loaders return a
/// value or an error, never panic.
mod never_panics {
    use crate::model::never_panics::mangled;
    use llmforge::substrate;
    use llmforge::validate::{overlay, traces};
    use proptest::prelude::*;

    const GPU: &str = include_str!("../../substrates/a100-sxm4-40gb.yaml");
    const SYSTOLIC: &str = include_str!("../../substrates/gemmini.yaml");
    const RING: &str = include_str!("../../substrates/ring-edge-cosearch.yaml");
    const OVERLAY: &str = include_str!("../../traces/overlays/llama.cpp--rtx-3090.yaml");
    const TRACES: &str = include_str!("../fixtures/validate/sample.csv");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn gpu(src in mangled(GPU)) {
            let _ = substrate::load_str(&src, "fuzz.yaml", &[]);
        }
        #[test]
        fn systolic(src in mangled(SYSTOLIC)) {
            let _ = substrate::load_str(&src, "fuzz.yaml", &[]);
        }
        #[test]
        fn ring(src in mangled(RING)) {
            let _ = substrate::load_str(&src, "fuzz.yaml", &[]);
        }
        #[test]
        fn overrides(
            path in prop::sample::select(vec![
                "efficiency.compute", "efficiency.quantised_compute", "efficiency.score_bytes",
                "efficiency.kernel_overhead", "memory.bandwidth", "packing.chip_sizing",
                "packing.core_doublings", "chip.clock", "cosearch", "nope.nothing",
            ]),
            expr in "[ -~]{0,24}",
        ) {
            if let Ok(o) = substrate::parse_overrides(&[format!("{path}={expr}")]) {
                for s in ["a100-sxm4-40gb", "gemmini", "ring-edge-cosearch"] {
                    let _ = substrate::load(s, &o);
                }
            }
        }
        #[test]
        fn trace_csv(src in mangled(TRACES)) {
            let _ = traces::parse(&src, "fuzz.csv");
        }
        #[test]
        fn overlay_file(src in mangled(OVERLAY)) {
            let _ = overlay::parse(&src, "fuzz.yaml");
        }
    }
}

/// The GPU model prices dequantisation as a stage of the weight stream at
/// `DEQUANT_OPS` vector operations per weight; a quantised weight never decodes slower than its
/// fp16 original (2 bytes) only while every GPU runs at least `DEQUANT_OPS / 2` vector
/// operations per byte of DRAM bandwidth (`sim/gpu.rs`).
#[test]
fn every_gpu_dequantises_faster_than_it_streams_fp16_weights() {
    use llmforge::sim::gpu::DEQUANT_OPS;
    for name in substrate::names() {
        let s = substrate::load(name, &[]).unwrap();
        if let Kind::Gpu(g) = &s.kind {
            let ops_per_byte = g.vector_peak.get() / g.memory_bandwidth.get();
            assert!(
                ops_per_byte >= DEQUANT_OPS / 2.0,
                "{name}: {ops_per_byte:.2} vector ops per DRAM byte"
            );
        }
    }
}
