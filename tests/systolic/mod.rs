//! Systolic-array GEMM model: exact agreement with recorded SCALE-Sim v3 runs, and properties.

use llmforge::sim::systolic::{
    ActionEnergies, Buffers, Dataflow, DramBandwidth, GemmCost, Mode, SystolicArray, SystolicConfig,
    SystolicError,
};
use llmforge::units::{Bytes, BytesPerCycle, Hertz, Joules, Watts};
use proptest::prelude::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/systolic/scalesim_compute_cycles.csv"
);

#[derive(Debug, serde::Deserialize)]
struct Row {
    shape: String,
    m: u64,
    n: u64,
    k: u64,
    rows: u64,
    cols: u64,
    dataflow: String,
    cycles: u64,
    util_pct: f64,
    stall_cycles: u64,
    sram_ifmap_reads: u64,
    sram_filter_reads: u64,
    sram_ofmap_writes: u64,
    dram_ifmap_reads: u64,
    dram_filter_reads: u64,
    dram_ofmap_writes: u64,
}

fn fixture_rows() -> Vec<Row> {
    let mut rdr = csv::Reader::from_path(FIXTURE).expect("fixture CSV is checked in");
    rdr.deserialize()
        .map(|r| r.expect("fixture row parses"))
        .collect()
}

/// The configuration every fixture run used (README.md): 64 KiB per SRAM, 1-byte words.
fn scalesim_array(rows: u64, cols: u64, df: Dataflow) -> SystolicArray {
    SystolicArray::new(SystolicConfig {
        rows,
        cols,
        dataflow: df,
        buffers: Buffers::Split {
            ifmap: Bytes::kib(64.0),
            filter: Bytes::kib(64.0),
            ofmap: Bytes::kib(64.0),
        },
        dram: DramBandwidth::symmetric(BytesPerCycle::new(10.0)),
        word_bytes: Bytes::new(1.0),
        acc_bytes: Bytes::new(4.0),
        mode: Mode::ScaleSim,
    })
    .unwrap()
}

#[test]
fn fixture_covers_enough_shapes() {
    let rows = fixture_rows();
    // The brief: at least 50 GEMM shapes, including 1x960x2560 and 512x960x2880 (written
    // M x N x K: 1x2560x960, 512x2880x960), on every array and dataflow.
    let shapes: std::collections::BTreeSet<(u64, u64, u64)> = rows.iter().map(|r| (r.m, r.n, r.k)).collect();
    assert!(shapes.len() >= 50, "only {} shapes", shapes.len());
    for shape in [(1, 2560, 960), (512, 2880, 960)] {
        for df in ["os", "ws", "is"] {
            assert!(
                rows.iter().any(|r| (r.m, r.n, r.k) == shape && r.dataflow == df),
                "no {shape:?} {df} row"
            );
        }
    }
    for df in ["os", "ws", "is"] {
        for arr in [8, 32, 128] {
            assert!(
                rows.iter().any(|r| r.dataflow == df && r.rows == arr),
                "no {df} {arr}x{arr} rows"
            );
        }
    }
    // Regimes: M = 1, dims below and above the array, non-multiples.
    assert!(rows.iter().any(|r| r.m == 1 && r.rows == 128));
    assert!(rows.iter().any(|r| r.m > r.rows && r.m % r.rows != 0));
}

#[test]
fn compute_cycles_match_scalesim_exactly() {
    let mut bad = Vec::new();
    for r in fixture_rows() {
        let df: Dataflow = r.dataflow.parse().unwrap();
        let arr = scalesim_array(r.rows, r.cols, df);
        let cost = arr.gemm(r.m, r.n, r.k);
        // SCALE-Sim's "Total Cycles" = its stall-free compute + its stalls (0 in CALC mode).
        let theirs = r.cycles - r.stall_cycles;
        if cost.compute_cycles.get() != theirs as f64 {
            bad.push(format!(
                "{} {}x{} {}: ours {} theirs {}",
                r.shape,
                r.rows,
                r.cols,
                r.dataflow,
                cost.compute_cycles.get(),
                theirs
            ));
        }
        let util = 100.0 * cost.compute_utilization(&arr);
        if (util - r.util_pct).abs() > 1e-9 * r.util_pct.max(1e-12) {
            bad.push(format!(
                "{} {} {}: util ours {util} theirs {}",
                r.shape, r.rows, r.dataflow, r.util_pct
            ));
        }
    }
    assert!(bad.is_empty(), "{} mismatches:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn array_side_sram_counts_match_scalesim_exactly() {
    let mut bad = Vec::new();
    for r in fixture_rows() {
        let df: Dataflow = r.dataflow.parse().unwrap();
        let t = scalesim_array(r.rows, r.cols, df).gemm(r.m, r.n, r.k).traffic;
        let ours = [
            t.ifmap_sram_reads.get(),
            t.filter_sram_reads.get(),
            t.ofmap_sram_writes.get(),
        ];
        let theirs = [r.sram_ifmap_reads, r.sram_filter_reads, r.sram_ofmap_writes].map(|x| x as f64);
        if ours != theirs {
            bad.push(format!(
                "{} {} {}: ours {ours:?} theirs {theirs:?}",
                r.shape, r.rows, r.dataflow
            ));
        }
    }
    assert!(bad.is_empty(), "{} mismatches:\n{}", bad.len(), bad.join("\n"));
}

/// SCALE-Sim's CALC-mode read buffer fetches in sets of 1% of the SRAM and only re-fetches what
/// misses; our policy re-fetches a whole pass once a reuse window exceeds the active half.
/// Stated tolerance: DRAM reads exact on at least 95% of the rows and within 35% on every row
/// (recorded: 471 of 480 exact, worst 0.75x at a window exactly the size of the active half);
/// ofmap writes exact up to SCALE-Sim's padding of at most `cols - 1` elements.
#[test]
fn dram_traffic_close_to_scalesim() {
    let mut bad = Vec::new();
    let mut exact = 0;
    let mut worst = 1.0f64;
    let rows = fixture_rows();
    for r in &rows {
        let df: Dataflow = r.dataflow.parse().unwrap();
        let c = scalesim_array(r.rows, r.cols, df).gemm(r.m, r.n, r.k);
        let t = c.traffic;
        // SCALE-Sim's write buffer counts up to one padded line (cols - 1 elements) more when the
        // ofmap overflows its buffer.
        let extra = r.dram_ofmap_writes as f64 - t.ofmap_dram_writes.get();
        if !(0.0..=(r.cols - 1) as f64).contains(&extra) {
            bad.push(format!(
                "{} {} {}: ofmap writes ours {} theirs {}",
                r.shape,
                r.rows,
                r.dataflow,
                t.ofmap_dram_writes.get(),
                r.dram_ofmap_writes
            ));
        }
        let ours = c.dram_read_bytes.get();
        let theirs = (r.dram_ifmap_reads + r.dram_filter_reads) as f64;
        if ours == theirs {
            exact += 1;
        }
        let ratio = ours / theirs;
        worst = worst.max(ratio.max(1.0 / ratio));
        if ours != theirs {
            println!(
                "{} {} {}: reads ours {ours} theirs {theirs} ratio {ratio:.3}",
                r.shape, r.rows, r.dataflow
            );
        }
        if !(0.65..=1.35).contains(&ratio) {
            bad.push(format!(
                "{} {} {}: reads ours {ours} theirs {theirs}",
                r.shape, r.rows, r.dataflow
            ));
        }
    }
    println!(
        "DRAM reads: {exact} of {} rows exact, worst ratio {worst:.3}",
        rows.len()
    );
    assert!(bad.is_empty(), "{} mismatches:\n{}", bad.len(), bad.join("\n"));
    assert!(
        exact * 100 >= rows.len() * 95,
        "only {exact} of {} rows exact",
        rows.len()
    );
}

#[test]
fn table_formulas_by_hand() {
    // 100x70x50 on 32x32 os: folds 4*3, cpf 50+32+32-2 = 112 -> 1343 (also a fixture row).
    let a = scalesim_array(32, 32, Dataflow::Os);
    assert_eq!(a.gemm(100, 70, 50).compute_cycles.get(), 1343.0);
    assert_eq!(a.gemm(100, 70, 50).folds, 12);
    // ws: Sr=K, Sc=N, T=M; folds ceil(50/32)*ceil(70/32)=6, cpf 64+32+100-2=194 -> 1163.
    assert_eq!(
        a.with_dataflow(Dataflow::Ws)
            .gemm(100, 70, 50)
            .compute_cycles
            .get(),
        1163.0
    );
    // is: Sr=K, Sc=M, T=N; folds 2*4=8, cpf 64+32+70-2=164 -> 1311.
    assert_eq!(
        a.with_dataflow(Dataflow::Is)
            .gemm(100, 70, 50)
            .compute_cycles
            .get(),
        1311.0
    );
    // Overlapped: (cpf - 1) + (folds - 1) * max(T, R) = 111 + 11 * 50.
    assert_eq!(
        a.with_mode(Mode::Overlapped)
            .gemm(100, 70, 50)
            .compute_cycles
            .get(),
        111.0 + 11.0 * 50.0
    );
}

#[test]
fn batched_is_b_scalesim_layers_or_one_stream() {
    let a = scalesim_array(32, 32, Dataflow::Os);
    let one = a.gemm(64, 64, 64);
    let many = a.gemm_batched(9, 64, 64, 64);
    assert_eq!(many.compute_cycles.get(), 9.0 * one.compute_cycles.get());
    assert_eq!(many.macs, 9 * one.macs);
    assert_eq!(many.dram_read_bytes.get(), 9.0 * one.dram_read_bytes.get());
    let o = a.with_mode(Mode::Overlapped);
    let o1 = o.gemm(64, 64, 64);
    let o9 = o.gemm_batched(9, 64, 64, 64);
    assert!(o9.cycles.get() < 9.0 * o1.cycles.get());
    assert!(o9.cycles.get() <= many.cycles.get());
}

#[test]
fn empty_and_huge_shapes_do_not_panic() {
    let a = scalesim_array(8, 8, Dataflow::Ws);
    let e = a.gemm(0, 5, 5);
    assert_eq!(e.cycles.get(), 0.0);
    assert_eq!(e.macs, 0);
    assert_eq!(e.utilization, 0.0);
    for mode in [Mode::ScaleSim, Mode::Overlapped] {
        for df in Dataflow::ALL {
            let c = a
                .with_mode(mode)
                .with_dataflow(df)
                .gemm_batched(u64::MAX, u64::MAX, u64::MAX, u64::MAX);
            assert!(c.cycles.get().is_finite() && c.cycles.get() > 0.0);
            assert_eq!(c.macs, u128::MAX);
        }
    }
}

#[test]
fn construction_is_validated() {
    let ok = *scalesim_array(8, 8, Dataflow::Os).config();
    assert_eq!(
        SystolicArray::new(SystolicConfig { rows: 0, ..ok }),
        Err(SystolicError::ZeroDimension { field: "rows" })
    );
    let bad_bw = SystolicConfig {
        dram: DramBandwidth {
            read: BytesPerCycle::new(f64::NAN),
            write: BytesPerCycle::new(1.0),
        },
        ..ok
    };
    assert!(matches!(
        SystolicArray::new(bad_bw),
        Err(SystolicError::NotPositive {
            field: "dram.read",
            ..
        })
    ));
    let bad_word = SystolicConfig {
        word_bytes: Bytes::new(0.0),
        ..ok
    };
    assert!(SystolicArray::new(bad_word).is_err());
    let bad_buf = SystolicConfig {
        buffers: Buffers::Unified(Bytes::new(-1.0)),
        ..ok
    };
    let msg = SystolicArray::new(bad_buf).unwrap_err().to_string();
    assert!(msg.contains("buffers.unified") && msg.contains("-1"), "{msg}");
    assert!(
        "xs".parse::<Dataflow>()
            .unwrap_err()
            .to_string()
            .contains("expected one of os, ws, is")
    );
    assert_eq!("Overlapped".parse::<Mode>(), Ok(Mode::Overlapped));
}

#[test]
fn energy_is_counts_times_prices() {
    let a = SystolicArray::gemmini(Mode::Overlapped);
    let c = a.gemm(256, 1536, 576);
    let e = ActionEnergies {
        mac: Joules::pj(0.2),
        sram_byte: Joules::pj(0.1),
        dram_byte: Joules::pj(64.0),
        leakage: Watts::new(0.01),
    };
    let clock = Hertz::ghz(1.0);
    let b = c.energy_breakdown(&e, clock);
    assert!((b.mac.as_pj() - 0.2 * c.macs as f64).abs() < 1e-6 * b.mac.as_pj());
    let dram = (c.dram_read_bytes + c.dram_write_bytes).get() * 64.0;
    assert!((b.dram.as_pj() - dram).abs() < 1e-6 * dram);
    let leak = 0.01 * c.cycles.get() / 1e9;
    assert!((b.leakage.get() - leak).abs() < 1e-12);
    assert_eq!(c.energy(&e, clock), b.total());
}

#[test]
fn decode_on_gemmini_is_weight_streaming() {
    // Batch-1 decode of a 576 -> 1536 projection: every weight byte crosses DRAM once at 4 B/cycle.
    let c = SystolicArray::gemmini(Mode::Overlapped).gemm(1, 1536, 576);
    let weights = 576.0 * 1536.0;
    assert!(c.dram_read_bytes.get() >= weights);
    assert!(c.cycles.get() >= weights / 4.0);
    assert!(
        c.cycles.get() < 1.2 * (weights + 576.0) / 4.0 + 1000.0,
        "{:?}",
        c.cycles
    );
}

fn arb_array() -> impl Strategy<Value = SystolicArray> {
    (
        1u64..=64,
        1u64..=64,
        prop_oneof![Just(Dataflow::Os), Just(Dataflow::Ws), Just(Dataflow::Is)],
        prop_oneof![Just(Mode::ScaleSim), Just(Mode::Overlapped)],
        0u32..=22,
        0u32..=22,
        0u32..=22,
        0.1f64..64.0,
        0.1f64..64.0,
        prop_oneof![Just(0.5), Just(1.0), Just(2.0), Just(4.0)],
    )
        .prop_map(|(rows, cols, dataflow, mode, bi, bf, bo, rd, wr, word)| {
            SystolicArray::new(SystolicConfig {
                rows,
                cols,
                dataflow,
                buffers: Buffers::Split {
                    ifmap: Bytes::new(f64::from(1u32 << bi)),
                    filter: Bytes::new(f64::from(1u32 << bf)),
                    ofmap: Bytes::new(f64::from(1u32 << bo)),
                },
                dram: DramBandwidth {
                    read: BytesPerCycle::new(rd),
                    write: BytesPerCycle::new(wr),
                },
                word_bytes: Bytes::new(word),
                acc_bytes: Bytes::new(4.0),
                mode,
            })
            .unwrap()
        })
}

fn arb_shape() -> impl Strategy<Value = (u64, u64, u64, u64)> {
    (1u64..=4, 1u64..=3000, 1u64..=3000, 1u64..=3000)
}

fn check_invariants(a: &SystolicArray, c: &GemmCost) -> Result<(), TestCaseError> {
    let pes = a.pes();
    prop_assert!(c.cycles.get() >= c.compute_cycles.get());
    prop_assert!(c.compute_cycles.get() >= c.macs as f64 / pes, "{:?}", c);
    prop_assert!(c.stall_cycles.get() >= 0.0);
    prop_assert!(
        c.utilization > 0.0 && c.utilization <= 1.0,
        "util {}",
        c.utilization
    );
    prop_assert!(c.fill_cycles.get() + c.drain_cycles.get() <= c.stall_cycles.get() + 1e-6 * c.cycles.get());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn cycles_bound_compute_bound_macs(a in arb_array(), (b, m, n, k) in arb_shape()) {
        check_invariants(&a, &a.gemm_batched(b, m, n, k))?;
    }

    #[test]
    fn more_dram_bandwidth_never_slower(a in arb_array(), (b, m, n, k) in arb_shape(), f in 1.0f64..16.0, g in 1.0f64..16.0) {
        let base = a.gemm_batched(b, m, n, k);
        let d = a.config().dram;
        let faster = a.with_dram(DramBandwidth { read: d.read * f, write: d.write * g });
        prop_assert!(faster.gemm_batched(b, m, n, k).cycles.get() <= base.cycles.get() * (1.0 + 1e-12));
    }

    #[test]
    fn bigger_sram_never_more_dram_traffic(a in arb_array(), (b, m, n, k) in arb_shape(), f in 1.0f64..64.0) {
        let small = a.gemm_batched(b, m, n, k);
        let big = a.with_buffers_scaled(f).gemm_batched(b, m, n, k);
        prop_assert!(big.dram_read_bytes.get() <= small.dram_read_bytes.get());
        prop_assert!(big.dram_write_bytes.get() <= small.dram_write_bytes.get());
    }

    #[test]
    fn overlapped_never_slower_than_scalesim(a in arb_array(), (b, m, n, k) in arb_shape()) {
        let s = a.with_mode(Mode::ScaleSim).gemm_batched(b, m, n, k);
        let o = a.with_mode(Mode::Overlapped).gemm_batched(b, m, n, k);
        prop_assert!(o.cycles.get() <= s.cycles.get() * (1.0 + 1e-12), "overlapped {:?} scalesim {:?}", o.cycles, s.cycles);
        prop_assert!(o.compute_cycles.get() <= s.compute_cycles.get());
        prop_assert!(o.dram_read_bytes.get() <= s.dram_read_bytes.get());
    }

    #[test]
    fn any_u64_shape_is_finite(a in arb_array(), b in any::<u64>(), m in any::<u64>(), n in any::<u64>(), k in any::<u64>()) {
        let c = a.gemm_batched(b, m, n, k);
        prop_assert!(c.cycles.get().is_finite() && c.cycles.get() >= 0.0);
        prop_assert!(c.utilization >= 0.0 && c.utilization <= 1.0);
    }
}
