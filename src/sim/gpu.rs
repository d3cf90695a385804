//! Cycle-approximate GPU kernels.
//!
//! * **GEMMs** are cut into output tiles (`tm x tn`, optionally split along K) spread over the
//!   SMs; the kernel runs `ceil(tiles / SMs)` waves, each as long as one tile's work at the
//!   per-SM matrix peak (wave quantisation). A small mapper tries the substrate's tile and its
//!   halvings (down to 16 x 32, the smallest tensor-core-friendly tiles) and split-K factors
//!   1..32 (a K slice of at least 64), and keeps the fastest: a batch-1 decode GEMV splits K
//!   to occupy the SMs instead of idling 127 of 128 tile rows. A GEMM of few rows may also run
//!   as a GEMV on the vector units (CUDA cores, shader ALUs: what llama.cpp's `mul_mat_vec`
//!   kernels do for decode, up to 8 rows), unpadded at the vector peak, reading every operand
//!   once; the mapper keeps it when faster. Without it a batch-1 decode GEMV pads to a 16-row MMA and
//!   comes out compute-bound on chips with a small matrix peak (Apple M1: sixteen times the
//!   FLOPs, so Q4_0 and Q8_0 weights decoded equally slowly).
//! * **Memory**: every operand access goes through L2 (A re-read once per tile column, B once
//!   per tile row, C written once, split-K partials in fp32 written and read back). DRAM sees
//!   an operand once when it fits half the L2, else as often as L2 sees it; activations that
//!   fit on chip (see `cost.rs`) never reach DRAM. Time is the larger of DRAM bytes / (eta_m *
//!   bandwidth) and L2 bytes / L2 bandwidth.
//! * **Fused attention** (flash attention): one CTA per (sequence, head, query block of `tm`
//!   rows, KV split); causal prefill skips the KV blocks above the diagonal; a decode step
//!   (one query row) pads to a 16-row MMA and may split the context across CTAs to fill the
//!   SMs (flash-decoding; the mapper tries a fixed set of split factors and keeps the
//!   fastest). CTAs run heaviest first in waves of one per SM, each wave as long as its
//!   heaviest CTA; the softmax runs on the vector units, serially with the matrix work. K and
//!   V are re-read through L2 once per query block.
//! * **Vector and memory kernels** run at the vector peak and stream their bytes.
//! * Every kernel pays the substrate's launch overhead and runs alone on one stream (eager
//!   execution): kernel time = overhead + max(compute, memory).
//! * **Energy**: matrix FLOPs x pJ/FLOP (scaled by the arithmetic's bits / 16), vector FLOPs x
//!   pJ/FLOP, DRAM bytes and L2 bytes x their pJ/B; static power is added per phase.
//!
//! Every figure here is at least the roofline's for the same kernel (more FLOP time from
//! padding and waves, at least as many bytes), so the GPU roofline is a lower bound of this
//! model kernel by kernel (tested).

use super::cost::{Cost, Traffic, class_bits};
use super::result::{Energy, Resource};
use crate::graph::{Op, OpKind, Unit};
use crate::substrate::{Efficiency, Gpu};
use crate::units::{Bytes, Joules, Seconds};

fn cdiv(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// `from`, `from / 2`, ... down to `floor` (or just `from` when it is below the floor).
fn halvings(from: u64, floor: u64) -> impl Iterator<Item = u64> {
    let from = from.max(1);
    let floor = floor.min(from).max(1);
    std::iter::successors(Some(from), |v| Some(v / 2)).take_while(move |v| *v >= floor)
}

/// The most rows a GEMM may have to run as a GEMV on the vector units.
const GEMV_MAX_ROWS: u64 = 8;

struct GemmPlan {
    compute: f64,
    memory: f64,
    dram: f64,
    l2: f64,
}

#[allow(clippy::too_many_arguments)] // one GEMM's shape and traffic
fn gemm_plan(
    g: &Gpu,
    eff: Efficiency,
    peak: f64,
    (m, n, k, batch): (u64, u64, u64, u64),
    a: f64,
    b: f64,
    c: f64,
    act_on_chip: bool,
    flops: f64,
) -> GemmPlan {
    let sms = g.sms.max(1);
    let per_sm = eff.compute * peak / sms as f64;
    let l2_half = g.l2_size.get() / 2.0;
    let bw = eff.memory * g.memory_bandwidth.get();
    let l2_bw = g.l2_bandwidth.get();
    let floor_time = flops / (eff.compute * peak);
    let mut best: Option<GemmPlan> = None;
    let mut consider = |plan: GemmPlan| {
        let t = plan.compute.max(plan.memory);
        if best.as_ref().is_none_or(|p| t < p.compute.max(p.memory)) {
            best = Some(plan);
        }
    };
    for tm in halvings(g.tile.0, 16) {
        for tn in halvings(g.tile.1, 32) {
            for s in [1u64, 2, 4, 8, 16, 32] {
                if s > 1 && k / s < 64 {
                    break;
                }
                let (mt, nt) = (cdiv(m, tm), cdiv(n, tn));
                let tiles = batch.saturating_mul(mt).saturating_mul(nt).saturating_mul(s);
                let waves = cdiv(tiles, sms) as f64;
                let work = 2.0 * tm as f64 * tn as f64 * cdiv(k, s) as f64;
                let compute = (waves * work / per_sm).max(floor_time);
                let partials = if s > 1 {
                    2.0 * s as f64 * (batch * m * n) as f64 * 4.0
                } else {
                    0.0
                };
                let l2 = a * nt as f64 + b * mt as f64 + c + partials;
                let dram_a = if act_on_chip {
                    0.0
                } else if a <= l2_half {
                    a
                } else {
                    a * nt as f64
                };
                let dram_b = if b <= l2_half { b } else { b * mt as f64 };
                let dram_c = if act_on_chip { 0.0 } else { c };
                let dram = dram_a + dram_b + dram_c;
                let memory = (dram / bw).max(l2 / l2_bw);
                consider(GemmPlan {
                    compute,
                    memory,
                    dram,
                    l2,
                });
            }
        }
    }
    // GEMV on the vector units: no row padding, every operand read once (up to 8 rows, as
    // llama.cpp's mul_mat_vec kernels take; more rows are a GEMM and tile like one).
    if m <= GEMV_MAX_ROWS {
        let compute = (flops / (eff.compute * g.vector_peak.get())).max(floor_time);
        let (dram_a, dram_c) = if act_on_chip { (0.0, 0.0) } else { (a, c) };
        let dram = dram_a + b + dram_c;
        let l2 = a + b + c;
        let memory = (dram / bw).max(l2 / l2_bw);
        consider(GemmPlan {
            compute,
            memory,
            dram,
            l2,
        });
    }
    best.unwrap_or(GemmPlan {
        compute: floor_time,
        memory: 0.0,
        dram: 0.0,
        l2: 0.0,
    })
}

/// Cost of a kernel of `ops` on GPU `g`; `scores` are the DRAM bytes of a materialised
/// attention-score matrix (a stack without fused attention; 0 otherwise), added to an
/// attention kernel's traffic.
pub fn cost(g: &Gpu, eff: Efficiency, onchip: f64, ops: &[&Op], scores: f64) -> Cost {
    let t = Traffic::of(ops);
    let act_on_chip = t.activations() <= onchip;
    let bw = eff.memory * g.memory_bandwidth.get();
    let l2_bw = g.l2_bandwidth.get();
    let op = ops[0];
    let scale = class_bits(op.compute) / 16.0;
    let vpeak = eff.compute * g.vector_peak.get();
    let (compute, memory, dram, l2, matrix_flops, vector_flops, resource) = if ops.len() == 3 {
        let (c, m, d, l2, mf, vf, r) = fused_attention(g, eff, ops, &t, act_on_chip);
        let m = m.max((d + scores) / bw).max((l2 + scores) / l2_bw);
        (c, m, d + scores, l2 + scores, mf, vf, r)
    } else {
        match (op.kind, op.unit) {
            (OpKind::Gemm { m, n, k, batch }, _) => {
                let a = t.act_in;
                let b = t.weights + t.kv_read;
                let c = t.act_out + t.kv_write;
                let p = gemm_plan(
                    g,
                    eff,
                    g.matrix_peak_for(op.compute).get(),
                    (m, n, k, batch),
                    a,
                    b,
                    c,
                    act_on_chip,
                    op.flops.get(),
                );
                (
                    p.compute,
                    p.memory,
                    p.dram,
                    p.l2,
                    op.flops.get(),
                    0.0,
                    Resource::Matrix,
                )
            }
            (_, unit) => {
                let all = t.weights + t.kv_read + t.kv_write + t.activations();
                let act = if act_on_chip { 0.0 } else { t.activations() };
                let dram = t.weights + t.kv_read + t.kv_write + act;
                let (compute, vf) = match unit {
                    Unit::Vector => (op.flops.get() / vpeak, op.flops.get()),
                    _ => (0.0, 0.0),
                };
                let memory = (dram / bw).max(all / l2_bw);
                (compute, memory, dram, all, 0.0, vf, Resource::of_unit(unit))
            }
        }
    };
    let overhead = eff.kernel_overhead;
    let (compute, memory) = (Seconds::new(compute), Seconds::new(memory));
    Cost {
        resource: Some(resource),
        compute,
        memory,
        overhead,
        fill: Seconds::ZERO,
        main: overhead + compute.max(memory),
        stream_read: Seconds::ZERO,
        stream_write: Seconds::ZERO,
        drain: Seconds::ZERO,
        dram_bytes: Bytes::new(dram),
        energy: Energy {
            compute: g.energy.matrix_flop * (matrix_flops * scale) + g.energy.vector_flop * vector_flops,
            onchip: g.energy.l2_byte * l2,
            dram: g.energy.dram_byte * dram,
            static_: Joules::ZERO,
        },
    }
}

type KernelFigures = (f64, f64, f64, f64, f64, f64, Resource);

/// Split-K factors the flash-attention mapper tries. The set is fixed (it does not depend on
/// the shape), so the chosen time -- a minimum over plans that are each monotone in the
/// number of query rows and the context -- is itself monotone.
const ATTENTION_SPLITS: [u64; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// Duration of a grid of CTAs on `sms` SMs, in units of work: the CTAs are issued heaviest
/// first (as flash attention orders causal blocks) in waves of `sms`, and each wave lasts as
/// long as its heaviest CTA. `runs` holds (work per CTA, number of such CTAs). Making any
/// CTA heavier, or adding CTAs, never shortens it.
fn wave_time(runs: &mut [(u64, u64)], sms: u64) -> u64 {
    runs.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
    let (mut at, mut total) = (0u64, 0u64);
    for &(work, count) in runs.iter() {
        // Wave starts (multiples of `sms`) inside positions at .. at + count.
        let starts = cdiv(at + count, sms) - cdiv(at, sms);
        total += work * starts;
        at += count;
    }
    total
}

/// scores -> softmax -> PV as one flash-attention kernel.
///
/// Query blocks of `br` rows (the substrate's tile rows, or the query rows padded to a
/// 16-row MMA when fewer) meet KV blocks of `bc` columns; causal prefill skips the blocks
/// above the diagonal. Each query block's KV blocks may be split over `s` CTAs
/// (flash-decoding) whose fp32 partials are written and combined; the mapper tries every
/// `s` in [`ATTENTION_SPLITS`] and keeps the fastest plan.
fn fused_attention(g: &Gpu, eff: Efficiency, ops: &[&Op], t: &Traffic, act_on_chip: bool) -> KernelFigures {
    let (scores, softmax, pv) = (ops[0], ops[1], ops[2]);
    let (qrows, ctx, dqk, bh) = match scores.kind {
        OpKind::Gemm { m, n, k, batch } => (m, n, k, batch),
        _ => (1, 1, 1, 1),
    };
    let dv = match pv.kind {
        OpKind::Gemm { n, .. } => n,
        _ => dqk,
    };
    let sms = g.sms.max(1);
    let peak = g.matrix_peak_for(scores.compute).get();
    let per_sm = eff.compute * peak / sms as f64;
    let br = g.tile.0.min(qrows.next_multiple_of(16)).max(1);
    let bc = g.tile.1.max(1);
    let q_blocks = cdiv(qrows, br);
    let causal = qrows == ctx && qrows > 1;
    // KV blocks seen by query block `i`.
    let kv_blocks = |i: u64| {
        if causal {
            cdiv(ctx.min((i + 1) * br), bc)
        } else {
            cdiv(ctx, bc)
        }
    };
    // FLOPs of one (query block, KV block) pair, padded to whole blocks.
    let block_work = br as f64 * bc as f64 * 2.0 * (dqk + dv) as f64;
    let matrix_flops = scores.flops.get() + pv.flops.get();
    let floor = matrix_flops / (eff.compute * peak);
    let vector_flops = softmax.flops.get();
    let t_vector = vector_flops / (eff.compute * g.vector_peak.get());
    let l2_base = (t.act_in + t.kv_read) * q_blocks as f64 + t.act_out + t.kv_write;
    let act = if act_on_chip { 0.0 } else { t.activations() };
    let dram = t.kv_read + t.kv_write + act;
    let dram_time = dram / (eff.memory * g.memory_bandwidth.get());
    let l2_bw = g.l2_bandwidth.get();
    // Non-causal blocks all see the same KV, so one query block stands for all of them.
    let distinct = if causal { q_blocks } else { 1 };
    let copies = if causal { bh } else { bh.saturating_mul(q_blocks) };
    let mut runs: Vec<(u64, u64)> = Vec::with_capacity(2 * distinct as usize);
    let mut best: Option<(f64, f64, f64)> = None;
    for s in ATTENTION_SPLITS {
        runs.clear();
        let mut pieces = 0u64;
        for i in 0..distinct {
            let blocks = kv_blocks(i);
            let parts = s.min(blocks).max(1);
            let (q, r) = (blocks / parts, blocks % parts);
            runs.push((q + 1, r.saturating_mul(copies)));
            runs.push((q, (parts - r).saturating_mul(copies)));
            pieces += parts;
        }
        let t_matrix = (wave_time(&mut runs, sms) as f64 * block_work / per_sm).max(floor);
        // Partial outputs (fp32) of every split beyond the first: written, then read back.
        let split_rows = (pieces - distinct) as f64 * br.min(qrows) as f64 * copies as f64;
        let partials = 2.0 * split_rows * dv as f64 * 4.0;
        let l2 = l2_base + partials;
        let compute = t_matrix + t_vector;
        let memory = dram_time.max(l2 / l2_bw);
        if best.is_none_or(|(c, m, _)| compute.max(memory) < c.max(m)) {
            best = Some((compute, memory, l2));
        }
    }
    let (compute, memory, l2) = best.unwrap_or((floor + t_vector, dram_time, l2_base));
    (
        compute,
        memory,
        dram,
        l2,
        matrix_flops,
        vector_flops,
        Resource::Matrix,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halvings_cover_the_tile_down_to_the_floor() {
        assert_eq!(halvings(128, 16).collect::<Vec<_>>(), [128, 64, 32, 16]);
        assert_eq!(halvings(256, 32).collect::<Vec<_>>(), [256, 128, 64, 32]);
        assert_eq!(halvings(8, 16).collect::<Vec<_>>(), [8]);
        assert_eq!(halvings(1, 16).collect::<Vec<_>>(), [1]);
    }
}
