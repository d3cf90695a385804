//! Co-search grids declared in substrate files: expansion, overrides, errors, and the ring
//! co-search through the YAML file choosing as the ring module's own co-search does.

use super::ring::ring;
use super::set;
use llmforge::model::{self, Model};
use llmforge::sim::ring::{
    self as ringsim, Objective, RingGrid, RingModel, RingOptions, RingSpec, RingWorkload,
};
use llmforge::sim::ring_adapter::{self, RingAdapterError};
use llmforge::substrate::cosearch::{self, PointMetrics, PointStatus};
use llmforge::substrate::{DesignSpace, Kind, Override};

fn space(name: &str, overrides: &[Override]) -> DesignSpace {
    DesignSpace::load(name, overrides).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn the_paper_grid_expands_to_45_points_last_axis_fastest() {
    let sp = space("ring-edge-cosearch", &[]);
    let c = sp.cosearch().unwrap();
    assert_eq!(c.objective, Objective::Energy);
    assert_eq!((c.len(), sp.len()), (45, 45));
    let paths: Vec<&str> = c.axes.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["chip.macs_per_vac", "max_chips", "chip.wmem_per_core"]);
    assert_eq!(
        c.axes[2].labels,
        ["24 KiB", "48 KiB", "96 KiB", "192 KiB", "384 KiB"]
    );
    // every point loads; its design is the grid's, in the ring module's grid order
    let designs = RingGrid::llmforge_ring().ring_designs().unwrap();
    assert_eq!(sp.check_points().unwrap(), 45);
    for (i, want) in designs.iter().enumerate() {
        let s = sp.point(i).unwrap();
        assert!(s.cosearch.is_none());
        assert_eq!(ring(&s).design, *want, "point {i}");
    }
    assert_eq!(
        c.settings(1),
        [
            ("chip.macs_per_vac".to_string(), "16".to_string()),
            ("max_chips".to_string(), "8".to_string()),
            ("chip.wmem_per_core".to_string(), "48 KiB".to_string()),
        ]
    );
    // the plain file has no grid: one point, itself
    let one = space("ring-edge", &[]);
    assert!(one.cosearch().is_none());
    assert_eq!(one.len(), 1);
    assert_eq!(one.point(0).unwrap(), *one.base());
}

#[test]
fn ranges_and_overrides_change_the_grid() {
    // a range gives the same candidates as the set
    let sp = space(
        "ring-edge-cosearch",
        &[set(
            "cosearch.grid.chip.wmem_per_core",
            "24 KiB..=384 KiB step *2",
        )],
    );
    assert_eq!(sp.len(), 45);
    let wmem: Vec<f64> = (0..5)
        .map(|i| ring(&sp.point(i).unwrap()).design.wmem_per_core.get())
        .collect();
    assert_eq!(wmem, [24576.0, 49152.0, 98304.0, 196608.0, 393216.0]);
    // replace an axis, add one, change the objective
    let sp = space(
        "ring-edge-cosearch",
        &[
            set("cosearch.grid.max_chips", "{8, 16}"),
            set("cosearch.grid.link.bandwidth", "{8 B/cycle, 16 B/cycle}"),
            set("cosearch.objective", "tpot"),
        ],
    );
    let c = sp.cosearch().unwrap();
    assert_eq!((c.len(), c.objective), (60, Objective::Tpot));
    assert_eq!(c.axes[1].path, "max_chips");
    assert_eq!(c.axes[3].path, "link.bandwidth");
    let p = sp.point(59).unwrap();
    assert_eq!(ring(&p).design.max_chips, 16);
    assert_eq!(ring(&p).spec.link().bytes_per_cycle.get(), 16.0);
    assert_eq!(
        ring(&sp.point(58).unwrap()).spec.link().bytes_per_cycle.get(),
        8.0
    );
    // a plain file gains a grid from the command line (any kind of substrate)
    let sp = space(
        "jetson-orin-nano-super",
        &[
            set("cosearch.objective", "tpot"),
            set(
                "cosearch.grid.memory.bandwidth",
                "{68 GB/s, 102.4 GB/s, 136 GB/s}",
            ),
            set("cosearch.grid.clock", "{0.6 GHz, 1.02 GHz}"),
        ],
    );
    assert_eq!(sp.len(), 6);
    let s = sp.point(3).unwrap();
    assert_eq!(s.memory_bandwidth().get(), 102.4e9);
    assert_eq!(s.clock().get(), 1.02e9);
    assert_eq!(sp.base().memory_bandwidth().get(), 102e9);
}

#[test]
fn grid_errors_are_reported() {
    let cases: Vec<(Vec<Override>, &str)> = vec![
        (vec![set("max_chips", "16")], "conflicts with the co-search axis"),
        (vec![set("cosearch.grid.chip.wmem", "{1 KiB}")], "not a field"),
        (vec![set("cosearch.grid.max_chips", "{8 KiB}")], "bytes"),
        (vec![set("cosearch.grid.options.lm_head", "{1}")], "only numeric"),
        (vec![set("cosearch.objective", "speed")], "unknown objective"),
        (vec![set("cosearch.grid.max_chips", "{8, size}")], "size"),
        (vec![set("cosearch.budget", "3")], "not a co-search setting"),
    ];
    for (o, needle) in cases {
        let err = DesignSpace::load("ring-edge-cosearch", &o).expect_err(needle);
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{o:?}: {text}");
    }
    // an axis without an objective, on a file without a co-search
    let err = DesignSpace::load("gemmini", &[set("cosearch.grid.clock", "{1 GHz}")]).unwrap_err();
    assert!(format!("{err:?}").contains("needs an objective"));
    // `area` needs an area model
    let err = DesignSpace::load(
        "gemmini",
        &[
            set("cosearch.objective", "area"),
            set("cosearch.grid.clock", "{1 GHz}"),
        ],
    )
    .unwrap_err();
    assert!(format!("{err:?}").contains("area model"));
    // a file's grid errors are located in the file
    let src = llmforge::substrate::SHIPPED
        .iter()
        .find(|(n, _)| *n == "ring-edge-cosearch")
        .unwrap()
        .1;
    let bad = src
        .replace("max_chips: \"{8, 16, 32}\"", "max_chips: \"{8, 16, 32 W}\"")
        .replace("objective: energy ", "objective: joules ");
    let errs = DesignSpace::load_str(&bad, "bad.yaml", &[]).unwrap_err();
    let errs = errs.errors();
    assert_eq!(errs.len(), 2, "{errs:?}");
    for needle in ["{8, 16, 32 W}", "objective: joules"] {
        let line = bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert!(errs.iter().any(|e| e.line() == line), "{needle}: {errs:?}");
    }
    // values out of the field's range load as a base but fail as points, named
    let sp = space(
        "ring-edge-cosearch",
        &[set("cosearch.grid.chip.macs_per_vac", "{16, 0}")],
    );
    let err = sp.check_points().unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("chip.macs_per_vac") && text.contains("co-search point 15"),
        "{text}"
    );
}

const PAPER_MODELS: [&str; 5] = [
    "smollm2-360m",
    "qwen2.5-0.5b",
    "llmforge-acc-347m",
    "llmforge-eco-294m",
    "llmforge-fast-365m",
];

fn preset(name: &str) -> Model {
    model::preset(name).unwrap()
}

/// The YAML co-search (fast path and generic path) chooses what the ring module's co-search
/// chooses on its built-in reference and grid, and gives the same numbers.
#[test]
fn the_file_cosearch_chooses_as_the_ring_module() {
    let sp = space("ring-edge-cosearch", &[]);
    let w = RingWorkload::llmforge_paper();
    for name in PAPER_MODELS {
        let m = preset(name);
        let rm = RingModel::new(&m, &w, &RingOptions::corrected()).unwrap();
        let want = ringsim::co_search(
            &RingSpec::llmforge_reference(),
            &rm,
            &RingGrid::llmforge_ring(),
            Objective::Energy,
        )
        .unwrap();
        let fast = ring_adapter::co_search(&m, &sp, w).unwrap();
        assert!(fast.fast_path);
        assert_eq!(fast.table.chosen, want.best_index, "{name}");
        assert_eq!(fast.table.feasible, want.feasible);
        assert_eq!(fast.report, want.best, "{name}");
        assert_eq!(ring(&fast.substrate).design, want.best.design);
        let slow = ring_adapter::co_search_generic(&m, &sp, w).unwrap();
        assert!(!slow.fast_path);
        assert_eq!(slow.table.chosen, want.best_index, "{name}");
        assert_eq!(slow.report.design, want.best.design);
        assert_eq!(
            slow.report.energy_per_token_paper,
            want.best.energy_per_token_paper
        );
        assert_eq!(slow.table.points.len(), 45);
        for (a, b) in fast.table.points.iter().zip(&slow.table.points) {
            assert_eq!(a.settings, b.settings);
            match (&a.status, &b.status) {
                (
                    PointStatus::Evaluated {
                        objective: oa,
                        violation: va,
                        metrics: ma,
                    },
                    PointStatus::Evaluated {
                        objective: ob,
                        violation: vb,
                        metrics: mb,
                    },
                ) => {
                    assert_eq!((oa, ma.ttft_s, ma.tpot_s), (ob, mb.ttft_s, mb.tpot_s));
                    assert!((va - vb).abs() < 1e-12);
                    let (aa, ab) = (ma.area_m2.unwrap(), mb.area_m2.unwrap());
                    assert!((aa - ab).abs() <= 1e-12 * ab, "{aa} {ab}");
                }
                (x, y) => assert_eq!(x, y),
            }
        }
    }
}

#[test]
fn other_objectives_and_envelopes_follow_the_file() {
    let m = preset("qwen2.5-0.5b");
    let w = RingWorkload::llmforge_paper();
    let rm = RingModel::new(&m, &w, &RingOptions::corrected()).unwrap();
    for (objective, word) in [
        (Objective::Tpot, "tpot"),
        (Objective::Ttft, "ttft"),
        (Objective::Area, "area"),
        (Objective::EnergyPerGeneratedToken, "energy_per_generated_token"),
    ] {
        let sp = space("ring-edge-cosearch", &[set("cosearch.objective", word)]);
        let got = ring_adapter::co_search(&m, &sp, w).unwrap();
        let want = ringsim::co_search(
            &RingSpec::llmforge_reference(),
            &rm,
            &RingGrid::llmforge_ring(),
            objective,
        )
        .unwrap();
        assert_eq!(got.table.chosen, want.best_index, "{word}");
        assert_eq!(got.report, want.best, "{word}");
    }
    // a 100 mm^2 envelope: nothing is feasible; the least-violating point is flagged
    let sp = space("ring-edge-cosearch", &[set("envelope.area", "100 mm^2")]);
    let got = ring_adapter::co_search(&m, &sp, w).unwrap();
    assert!(!got.table.feasible && !got.report.is_feasible());
    let least = got
        .table
        .points
        .iter()
        .filter_map(|p| match &p.status {
            PointStatus::Evaluated { violation, .. } => Some(*violation),
            PointStatus::Failed { .. } => None,
        })
        .fold(f64::INFINITY, f64::min);
    assert!((got.report.violation - least).abs() < 1e-12);
    let slow = ring_adapter::co_search_generic(&m, &sp, w).unwrap();
    assert_eq!(slow.table.chosen, got.table.chosen);
}

#[test]
fn points_that_do_not_fit_are_rows_not_errors() {
    // one chip of at most 128 cores x 24 KiB cannot hold SmolLM2-360M's 9.8 MB layers
    // (no spilling): those points fail, the others are chosen among
    let m = preset("smollm2-360m");
    let w = RingWorkload::llmforge_paper();
    let sp = space(
        "ring-edge-cosearch",
        &[
            set("packing.max_cores_per_chip", "2048"),
            set("cosearch.grid.max_chips", "{1, 32}"),
        ],
    );
    for r in [
        ring_adapter::co_search(&m, &sp, w).unwrap(),
        ring_adapter::co_search_generic(&m, &sp, w).unwrap(),
    ] {
        let failed = r
            .table
            .points
            .iter()
            .filter(|p| matches!(p.status, PointStatus::Failed { .. }))
            .count();
        assert!(failed > 0 && failed < 30, "{failed}");
        if let PointStatus::Failed { reason } = &r.table.points[0].status {
            assert!(reason.contains("does not fit"), "{reason}");
        } else {
            panic!("point 0 fits");
        }
        assert_eq!(ring(&r.substrate).design.max_chips, 32);
    }
    // nothing fits: an error naming the grid
    let sp = space(
        "ring-edge-cosearch",
        &[
            set("packing.max_cores_per_chip", "128"),
            set("cosearch.grid.max_chips", "{1, 2}"),
        ],
    );
    assert!(matches!(
        ring_adapter::co_search(&m, &sp, w),
        Err(RingAdapterError::Ring(_))
    ));
    let err = ring_adapter::co_search_generic(&m, &sp, w).unwrap_err();
    assert!(matches!(err, RingAdapterError::Ring(_)));
    assert!(
        err.to_string().contains("fits none of the 30 grid points"),
        "{err}"
    );
}

/// The generic grid runner works for any kind: a GPU file's bandwidth grid priced by a
/// weight-streaming estimate (TPOT = weight bytes / bandwidth; energy = bytes x 20 pJ/B).
#[test]
fn run_grid_works_for_a_gpu_file() {
    let sp = space(
        "jetson-orin-nano-super",
        &[
            set("cosearch.objective", "tpot"),
            set("cosearch.grid.memory.bandwidth", "{68 GB/s, 102 GB/s, 136 GB/s}"),
            set("envelope.power", "25 W"),
        ],
    );
    let bytes = 1e9;
    let table = cosearch::run_grid(&sp, None, |_, s| -> Result<PointMetrics, String> {
        assert!(matches!(s.kind, Kind::Gpu(_)));
        let tpot = bytes / s.memory_bandwidth().get();
        let energy = bytes * 20e-12 + 10.0 * tpot;
        Ok(PointMetrics {
            ttft_s: tpot,
            tpot_s: tpot,
            energy_per_token_j: energy,
            energy_per_generated_token_j: energy,
            area_m2: None,
            power_w: energy / tpot,
        })
    })
    .unwrap();
    assert_eq!(table.points.len(), 3);
    // the fastest (136 GB/s) draws 10 + 2.72 W: within 25 W, chosen
    assert_eq!((table.chosen, table.feasible), (2, true));
    // with a 12 W envelope only the slower two are feasible
    let sp = space(
        "jetson-orin-nano-super",
        &[
            set("cosearch.objective", "tpot"),
            set("cosearch.grid.memory.bandwidth", "{68 GB/s, 102 GB/s, 136 GB/s}"),
            set("envelope.power", "12 W"),
        ],
    );
    let table = cosearch::run_grid(&sp, None, |_, s| -> Result<PointMetrics, String> {
        let tpot = bytes / s.memory_bandwidth().get();
        let energy = bytes * 20e-12 + 10.0 * tpot;
        Ok(PointMetrics {
            ttft_s: tpot,
            tpot_s: tpot,
            energy_per_token_j: energy,
            energy_per_generated_token_j: energy,
            area_m2: None,
            power_w: energy / tpot,
        })
    })
    .unwrap();
    // 68 GB/s: 11.36 W; 102 GB/s: 12.04 W (over); 136 GB/s: 12.72 W (over)
    assert_eq!((table.chosen, table.feasible), (0, true));
    // the area objective has no value on a GPU
    let err = cosearch::run_grid(
        &sp,
        Some(Objective::Area),
        |_, _| -> Result<PointMetrics, String> {
            Ok(PointMetrics {
                ttft_s: 1.0,
                tpot_s: 1.0,
                energy_per_token_j: 1.0,
                energy_per_generated_token_j: 1.0,
                area_m2: None,
                power_w: 1.0,
            })
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("area"));
}

fn sig(x: f64) -> String {
    format!("{x:.4e}")
}

/// Summaries of every shipped model on both shipped ring files (paper workload).
#[test]
fn shipped_models_on_ring_substrates_snapshot() {
    let w = RingWorkload::llmforge_paper();
    let mut rows = Vec::new();
    for sub in ["ring-edge", "ring-edge-cosearch"] {
        let sp = space(sub, &[]);
        for name in model::presets::names() {
            let m = preset(name);
            let row = match ring_adapter::run(&m, &sp, w) {
                Ok((s, _)) => {
                    let h = s.ring.as_ref().unwrap();
                    assert!(
                        (s.total_energy_j - s.prefill_energy_j - s.decode_energy_j).abs()
                            <= 1e-12 * s.total_energy_j
                    );
                    serde_json::json!({
                        "substrate": sub,
                        "model": name,
                        "ttft_s": sig(s.ttft_s),
                        "tpot_s": sig(s.tpot_s),
                        "tokens_per_s": sig(s.tokens_per_s),
                        "energy_per_token_j": sig(s.energy_per_token_j),
                        "energy_per_processed_token_j": sig(s.energy_per_processed_token_j),
                        "prefill_energy_j": sig(s.prefill_energy_j),
                        "decode_energy_j": sig(s.decode_energy_j),
                        "total_energy_j": sig(s.total_energy_j),
                        "chips": h.chips,
                        "cores_per_chip": h.cores_per_chip,
                        "macs_per_vac": h.macs_per_vac,
                        "wmem_per_core_B": h.wmem_per_core_bytes,
                        "kv_per_core_B": h.kv_per_core_bytes,
                        "area_mm2": sig(h.area_mm2),
                        "power_w": sig(h.power_w),
                        "feasible": h.feasible,
                        "grid_point": h.grid_point,
                    })
                }
                Err(e) => serde_json::json!({"substrate": sub, "model": name, "error": e.to_string()}),
            };
            rows.push(row);
        }
    }
    insta::assert_yaml_snapshot!("ring_substrate_summaries", rows);
}

#[test]
fn a_non_ring_substrate_is_refused_by_the_ring_adapter() {
    let m = preset("smollm2-135m");
    let sp = space("gemmini", &[]);
    let err = ring_adapter::co_search(&m, &sp, RingWorkload::llmforge_paper()).unwrap_err();
    assert!(err.to_string().contains("not a ring"), "{err}");
}

/// A point is a value: the parsed base with the point's typed values equals the file loaded
/// afresh with the point's `--set` overrides (what a point used to be), for a ring grid and
/// for a GPU grid whose `clock` the peaks' expressions name (they follow it).
#[test]
fn points_are_the_file_with_the_points_values() {
    let ring_grid = [
        set("cosearch.objective", "energy"),
        set("cosearch.grid.chip.macs_per_vac", "{16, 32, 64}"),
        set("cosearch.grid.link.bandwidth", "{8 B/cycle, 16 B/cycle}"),
        set("cosearch.grid.chip.wmem_per_core", "24 KiB..=96 KiB step *2"),
    ];
    let gpu_grid = [
        set("cosearch.objective", "tpot"),
        set("cosearch.grid.clock", "{0.6 GHz, 1.02 GHz}"),
        set("cosearch.grid.memory.bandwidth", "{68 GB/s, 136 GB/s}"),
    ];
    for (name, grid) in [
        ("ring-edge", &ring_grid[..]),
        ("jetson-orin-nano-super", &gpu_grid[..]),
    ] {
        let sp = space(name, grid);
        let c = sp.cosearch().unwrap();
        for i in 0..sp.len() {
            let want = llmforge::substrate::load(name, &c.overrides(i)).unwrap();
            assert_eq!(sp.point(i).unwrap(), want, "{name} point {i}");
        }
    }
    let sp = space("jetson-orin-nano-super", &gpu_grid);
    let slow = sp.point(0).unwrap();
    let fast = sp.point(2).unwrap();
    let f16 = llmforge::model::ComputeClass::F16;
    assert_eq!(fast.clock().get(), 1.02e9);
    let ratio = fast.matrix_peak(f16).get() / slow.matrix_peak(f16).get();
    assert!((ratio - 1.02 / 0.6).abs() < 1e-12, "{ratio}");
}

/// A point that a field's rule rejects fails with a typed error naming the point, its
/// settings and the field, never a parse error; the co-search reports it the same way.
#[test]
fn a_rejected_point_is_a_typed_error() {
    let sp = space(
        "ring-edge-cosearch",
        &[set("cosearch.grid.chip.macs_per_vac", "{16, 0}")],
    );
    let err = sp.point(15).unwrap_err();
    assert_eq!(err.index, 15);
    assert_eq!(err.settings[0], ("chip.macs_per_vac".into(), "0".into()));
    assert!(
        err.problems.iter().any(|p| p.contains("chip.macs_per_vac")),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("co-search point 15 (chip.macs_per_vac = 0, max_chips = 8"),
        "{err}"
    );
    assert!(sp.point(14).is_ok());
}

mod points_property {
    use super::{set, space};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Any candidates (in or out of the fields' ranges): a point evaluated from the parsed
        /// file equals the file loaded afresh with the point's `--set` text, and a point that
        /// fails to evaluate is one that fails to load, never a panic.
        #[test]
        fn a_point_is_the_file_with_its_values(
            macs in prop::collection::vec(0u64..300, 1..4),
            clock_mhz in prop::collection::vec(0.0f64..2000.0, 1..3),
            link in prop::collection::vec(0.5f64..64.0, 1..3),
        ) {
            let list = |v: Vec<String>| format!("{{{}}}", v.join(", "));
            let grid = [
                set("cosearch.objective", "tpot"),
                set("cosearch.grid.chip.macs_per_vac", &list(macs.iter().map(|m| m.to_string()).collect())),
                set("cosearch.grid.chip.clock", &list(clock_mhz.iter().map(|c| format!("{c} MHz")).collect())),
                set("cosearch.grid.link.bandwidth", &list(link.iter().map(|l| format!("{l} B/cycle")).collect())),
            ];
            let sp = space("ring-edge", &grid);
            let c = sp.cosearch().unwrap();
            for i in 0..sp.len() {
                let want = llmforge::substrate::load("ring-edge", &c.overrides(i));
                match (sp.point(i), want) {
                    (Ok(p), Ok(w)) => prop_assert_eq!(p, w),
                    (Err(e), Err(_)) => prop_assert_eq!(e.index, i),
                    (p, w) => prop_assert!(false, "point {i}: {:?} vs {:?}", p.map(|_| ()), w.map(|_| ())),
                }
            }
        }
    }
}
