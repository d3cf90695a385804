//! ns per `SystolicArray::gemm` call. The headline case is 512x512x512 on a 32x32 array, the
//! GEMM `benches/scalesim_speed.py` also times on the real SCALE-Sim.
//!
//!     cargo bench --bench systolic

use divan::black_box;
use llmforge::sim::systolic::{Buffers, Dataflow, DramBandwidth, Mode, SystolicArray, SystolicConfig};
use llmforge::units::{Bytes, BytesPerCycle};

fn main() {
    divan::main();
}

fn array(df: Dataflow, mode: Mode) -> SystolicArray {
    SystolicArray::new(SystolicConfig {
        rows: 32,
        cols: 32,
        dataflow: df,
        buffers: Buffers::Split {
            ifmap: Bytes::kib(64.0),
            filter: Bytes::kib(64.0),
            ofmap: Bytes::kib(64.0),
        },
        dram: DramBandwidth::symmetric(BytesPerCycle::new(10.0)),
        word_bytes: Bytes::new(1.0),
        acc_bytes: Bytes::new(4.0),
        mode,
    })
    .expect("valid bench config")
}

#[divan::bench(args = [Dataflow::Os, Dataflow::Ws, Dataflow::Is])]
fn gemm_512_cubed_32x32_scalesim(bencher: divan::Bencher, df: Dataflow) {
    let a = array(df, Mode::ScaleSim);
    bencher.bench_local(|| black_box(&a).gemm(black_box(512), black_box(512), black_box(512)));
}

#[divan::bench(args = [Dataflow::Os, Dataflow::Ws, Dataflow::Is])]
fn gemm_512_cubed_32x32_overlapped(bencher: divan::Bencher, df: Dataflow) {
    let a = array(df, Mode::Overlapped);
    bencher.bench_local(|| black_box(&a).gemm(black_box(512), black_box(512), black_box(512)));
}

#[divan::bench]
fn gemm_transformer_512x2880x960_gemmini(bencher: divan::Bencher) {
    let a = SystolicArray::gemmini(Mode::Overlapped);
    bencher.bench_local(|| black_box(&a).gemm(black_box(512), black_box(2880), black_box(960)));
}
