//! Cycle-approximate GPU kernels.
//!
//! # GEMMs
//! A GEMM is cut into output tiles of `tm x tn` (the substrate's `tile` and its halvings,
//! down to 16 x 32), optionally split along K into `s` slices (split-K, tried while the tiles
//! alone leave SMs idle). One tile runs per SM at a time, so the kernel runs
//! `ceil(tiles / SMs)` waves (wave quantisation), each as long as one tile:
//!
//! * **Tile time**: its `2 tm tn k_s` FLOPs at the SM's share of `efficiency.compute` times
//!   the matrix peak, plus the operand feed a smaller tile adds -- per K step a tile loads
//!   `(tm + tn)` elements from shared memory for `2 tm tn` FLOPs, and the SM moves
//!   `kernel.operand_bandwidth` bytes per cycle, so feeding costs `(tm + tn) e P_sm /
//!   (2 tm tn B_op)` of the MMA time at peak. The largest tile's feed is contained in
//!   `efficiency.compute` (the fraction large GEMMs reach); a smaller tile adds what its feed
//!   exceeds that by, at the operand bandwidth: a time of the shared-memory path, not scaled
//!   by how far the stack's large GEMMs fall below the peak (a stack whose GEMMs reach 5% of
//!   the peak has the same shared-memory bandwidth, and its small tiles are not 20 times
//!   further behind).
//!   Each step of the K loop (128 bytes of K per operand row) takes at least
//!   `kernel.step_cycles` (the pipeline's barrier and shared-memory round trip, which a small
//!   tile's few MMAs cannot hide), and the tile pays `kernel.tile_cycles` of prologue and
//!   epilogue (first loads, pipeline fill, write-back). Small tiles therefore run below the
//!   peak, and short K loops pay the fixed part more often.
//! * **L2 traffic**: every tile reads its A and B panels through L2 (A once per tile
//!   column, B once per tile row), writes C, and split-K writes and reads back fp32
//!   partials.
//! * **DRAM traffic** is a smooth function of the operand sizes, the tile shape, the tile
//!   order and the L2 capacity. Tiles run in grouped order (CUTLASS / cuBLAS swizzle): a
//!   group of `r` tile rows sweeps the tile columns, `W = min(tiles, SMs)` tiles at a time,
//!   so one window touches `r` A panels and `c = W / r` B panels. A group's A panels are
//!   needed again by each later window of the group; a B panel again by each later group.
//!   A re-use hits L2 with probability `min(1, L / footprint)`, where `L` is
//!   `kernel.l2_reuse` times the L2 size and the footprint is what must stay resident in
//!   between (the group's A panels and a window's B panels; all of B and a group's A
//!   panels), so traffic falls smoothly from one read per use to one read in all as the
//!   L2 grows. The mapper takes the best group height (1 to 64 rows, or columns with the
//!   roles swapped), as a library's swizzle would. Activations that fit the L2 whole never
//!   reach DRAM (see `cost.rs`).
//! * **DRAM rate**: a busy SM streams at most `kernel.sm_bandwidth` bytes per cycle from DRAM
//!   (the loads it keeps in flight over the memory latency: Little's law), so a grid of `a`
//!   thread blocks (tiles times K slices) reads at `min(eta_m BW, min(a, SMs) sm_bandwidth
//!   clock)`: a GEMM of few tiles cannot reach the chip's bandwidth (split-K raises its
//!   block count), nor can a chip with few SMs per memory stack. The default (64 B/cycle)
//!   leaves every shipped GPU's full grid at its DRAM bandwidth.
//! * **Time** = `kernel_overhead + max(|| (compute, DRAM / rate) ||_p, L2 / L2_BW)`
//!   with `p = kernel.overlap`: arithmetic and DRAM transfers overlap imperfectly (p = 1 adds
//!   them, a large p takes their maximum); L2 transfers are prefetched asynchronously and
//!   only limit when they take longest. The mapper keeps the fastest tile shape and split.
//! * **Grouped GEMMs**: a weight GEMM that stands for several matrices (a mixture's experts;
//!   see `Mapper::weight_groups`) runs as a batched GEMM of one member per matrix over its
//!   share of the rows, as grouped-GEMM MoE kernels do (vLLM's `fused_moe`, TensorRT-LLM's
//!   MoE plugin): an expert's weight panel passes through the L2 once per tile row of its own
//!   rows, not of all the routed rows.
//! * **GEMV**: a GEMM of at most 8 rows may also run on the vector units (CUDA cores, shader
//!   ALUs: what llama.cpp's `mul_mat_vec` kernels do for decode), unpadded at the vector
//!   peak, reading every operand once and dequantising the weights once; the mapper keeps it
//!   when faster. Without it a batch-1 decode GEMV pads to a 16-row MMA and comes out
//!   compute-bound on chips with a small matrix peak (Apple M1: sixteen times the FLOPs, so
//!   Q4_0 and Q8_0 weights decoded equally slowly).
//! * **Block-quantised weights** (stored narrower than the arithmetic) are dequantised on
//!   the fly: the GEMM reaches `efficiency.quantised_compute` of the compute fraction, and
//!   every tile row re-dequantises its weight panel on the vector units ([`DEQUANT_OPS`]
//!   operations per weight; the roofline counts one pass). The dequantisation is a stage of
//!   the weight stream (load, convert, stage for the MMAs, as mixed-input GEMMs such as
//!   Marlin and llama.cpp's kernels pipeline it), so it runs beside the arithmetic at the
//!   vector peak times `efficiency.memory`, slowing with the stream, and the DRAM term is the
//!   longer of the transfers and that stage. Per weight it costs the same for every
//!   block format, so a narrower format never decodes slower; and since every shipped GPU
//!   runs at least `DEQUANT_OPS / 2` vector operations per byte of DRAM bandwidth, neither
//!   does a quantised weight against its fp16 original (tested).
//!
//! # Fused attention (flash attention)
//! One CTA per (sequence, head, query block of `br` rows, KV split): `br` is the tile rows
//! (or the query rows padded to a 16-row MMA when fewer; with grouped-query attention and few
//! query rows, as in decode, the query heads of one KV group are packed as the rows of one
//! block, as FlashDecoding and FlashInfer do), KV blocks are `bc =
//! min(tile cols, 128)` columns. Causal attention (the scores cover fewer pairs than the full
//! rectangle: the queries are the last of the keys' positions) skips the blocks above the
//! diagonal. A
//! decode step may split the context over CTAs (flash-decoding; the mapper tries a fixed set
//! of split factors and keeps the fastest) whose fp32 partials are written and combined.
//! CTAs run heaviest first in waves of one per SM, each wave as long as its heaviest CTA
//! plus the tile cycles; the softmax runs on the vector units, serially with the matrix
//! work. K and V are read through L2 once per query block; from DRAM once, plus the re-reads
//! by later waves of one KV group's query blocks that the L2 does not keep (the same
//! smooth rule as GEMM panels).
//!
//! # Other kernels
//! Vector and memory kernels run at the vector peak and stream their bytes. Every kernel
//! pays the substrate's launch overhead and runs alone on one stream (eager execution).
//! **Energy**: matrix FLOPs x pJ/FLOP (scaled by the arithmetic's bits / 16), vector FLOPs x
//! pJ/FLOP, DRAM bytes and L2 bytes x their pJ/B; static power is added per phase.
//!
//! Every figure here is at least the roofline's for the same kernel (at least its FLOPs at
//! no more than its peak, at least its DRAM bytes at the same bandwidth, a p-norm no smaller
//! than a maximum), so the GPU roofline is a lower bound of this model kernel by kernel;
//! every time is non-increasing in the L2 size (tested).

use super::cost::{Cost, Traffic, class_bits};
use super::result::{Energy, Resource};
use crate::graph::{Op, OpKind, Unit};
use crate::model::accounting::elementwise::SCALE;
use crate::substrate::{Efficiency, Gpu};
use crate::units::{Bytes, Joules, Seconds};

/// Vector operations per weight to dequantise a block-quantised weight (unpack, convert,
/// scale, offset).
pub const DEQUANT_OPS: f64 = 4.0;

fn cdiv(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// `from`, `from / 2`, ... down to `floor` (or just `from` when it is below the floor).
fn halvings(from: u64, floor: u64) -> impl Iterator<Item = u64> {
    let from = from.max(1);
    let floor = floor.min(from).max(1);
    std::iter::successors(Some(from), |v| Some(v / 2)).take_while(move |v| *v >= floor)
}

/// `(x^p + y^p)^(1/p)` for non-negative terms, `p >= 1`: their sum at 1, their maximum for
/// large `p`.
pub fn overlap_norm(x: f64, y: f64, p: f64) -> f64 {
    let m = x.max(y);
    if m <= 0.0 || !m.is_finite() {
        return m.max(0.0);
    }
    if p >= 64.0 {
        return m;
    }
    let r = x.min(y) / m;
    if p == 1.0 {
        return m * (1.0 + r);
    }
    if p == 2.0 {
        return m * (1.0 + r * r).sqrt();
    }
    m * (1.0 + r.powf(p)).powf(1.0 / p)
}

/// Per-kernel constants of the GPU model.
struct Machine {
    sms: u64,
    /// Achieved matrix FLOP/s of one SM.
    per_sm: f64,
    /// Matrix peak FLOP/s of one SM.
    peak_sm: f64,
    /// Seconds of prologue and epilogue per tile, and at least per K step.
    tile_s: f64,
    step_s: f64,
    /// Elements of K per step (128 bytes of each operand row).
    kstep: u64,
    /// Feed coefficient: `e P_sm / B_op` (FLOP per element of operand).
    feed: f64,
    /// The feed slow-down of the substrate's largest tile, which `efficiency.compute` (the
    /// fraction large GEMMs reach) already contains.
    feed_ref: f64,
    /// DRAM and L2 bandwidths, as achieved.
    bw: f64,
    /// DRAM bytes per second one busy SM streams at most (`kernel.sm_bandwidth`).
    sm_bw: f64,
    /// Vector operations per second of the dequantisation stage of the weight stream.
    dequant_rate: f64,
    l2_bw: f64,
    /// L2 bytes that keep operands for reuse.
    keep: f64,
    p: f64,
}

impl Machine {
    fn new(g: &Gpu, eff: Efficiency, peak: f64, operand_bytes: f64) -> Machine {
        let sms = g.sms.max(1);
        let clock = g.clock.get();
        let k = g.kernel;
        let mut m = Machine {
            sms,
            per_sm: eff.compute * peak / sms as f64,
            peak_sm: peak / sms as f64,
            tile_s: k.tile_cycles.get() / clock,
            step_s: k.step_cycles.get() / clock,
            kstep: ((128.0 / operand_bytes.max(0.5)) as u64).max(1),
            feed: operand_bytes * (peak / sms as f64) / (k.operand_bandwidth.get() * clock),
            feed_ref: 1.0,
            bw: eff.memory * g.memory_bandwidth.get(),
            sm_bw: k.sm_bandwidth.get() * clock,
            dequant_rate: eff.memory * g.vector_peak.get(),
            l2_bw: g.l2_bandwidth.get(),
            keep: k.l2_reuse * g.l2_size.get(),
            p: k.overlap,
        };
        m.feed_ref = m.raw_feed(g.tile.0.max(1), g.tile.1.max(1));
        m
    }
    /// DRAM bandwidth a kernel of `ctas` thread blocks reaches: the chip's, or what the SMs
    /// they occupy keep in flight, whichever is less.
    fn dram_bw(&self, ctas: u64) -> f64 {
        self.bw.min(ctas.clamp(1, self.sms) as f64 * self.sm_bw)
    }
    fn raw_feed(&self, tm: u64, tn: u64) -> f64 {
        1.0 + (tm + tn) as f64 * self.feed / (2.0 * (tm * tn) as f64)
    }
    /// Seconds of `flops` matrix FLOPs of one SM in `tm x tn` tiles: at the achieved rate, plus
    /// the feed the tile needs beyond the largest tile's, at the peak's pace (>= 0 for the
    /// tiles the mappers try, which are no larger).
    fn mma_time(&self, flops: f64, tm: u64, tn: u64) -> f64 {
        flops / self.per_sm + flops / self.peak_sm * (self.raw_feed(tm, tn) - self.feed_ref).max(0.0)
    }
}

/// Hit fraction of a re-use whose footprint is `f` bytes, with `keep` bytes of L2.
fn kept(keep: f64, f: f64) -> f64 {
    if f <= keep { 1.0 } else { keep / f }
}

/// DRAM bytes of the two operands of one GEMM (per batch entry: `a`, `b` bytes) in grouped
/// tile order, for `mt x nt` tiles of `tm x tn`, `w` of them in flight: the best group
/// height, grouping rows (A panels resident) or columns (B panels resident).
fn operand_dram(a: f64, b: f64, (mt, nt): (u64, u64), w: u64, keep: f64) -> (f64, f64) {
    if a + b <= keep {
        return (a, b);
    }
    // Rows grouped: A panels of the group stay, B streams.
    let one_way = |a: f64, b: f64, mt: u64, nt: u64| -> (f64, f64) {
        let mut best = (f64::INFINITY, 0.0, 0.0);
        let mut g = 1u64;
        loop {
            let r = g.min(mt);
            let c = cdiv(w, r).clamp(1, nt);
            let fa = a * r as f64 / mt as f64;
            let fb = b * c as f64 / nt as f64;
            let h1 = kept(keep, fa + fb);
            let h2 = kept(keep, b + fa);
            let da = a * (1.0 + (cdiv(nt, c) - 1) as f64 * (1.0 - h1));
            let db = b * (1.0 + (cdiv(mt, r) - 1) as f64 * (1.0 - h2));
            if da + db < best.0 {
                best = (da + db, da, db);
            }
            if r >= mt || g >= 64 {
                break;
            }
            g *= 2;
        }
        (best.1, best.2)
    };
    let (ra, rb) = one_way(a, b, mt, nt);
    let (cb, ca) = one_way(b, a, nt, mt);
    if ra + rb <= ca + cb { (ra, rb) } else { (ca, cb) }
}

/// The most rows a GEMM may have to run as a GEMV on the vector units.
const GEMV_MAX_ROWS: u64 = 8;

/// The plan the GEMM mapper chose, with its figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GemmPlan {
    pub tile: (u64, u64),
    pub split_k: u64,
    pub waves: u64,
    /// Ran as a GEMV on the vector units (few rows) instead of tiles on the matrix units.
    pub gemv: bool,
    /// Seconds of arithmetic (waves of tiles, operand feed, prologues).
    pub compute: f64,
    /// Seconds of DRAM traffic (or of the dequantisation stage of the weight stream, when
    /// longer) and of L2 traffic.
    pub dram_time: f64,
    pub l2_time: f64,
    /// Their overlap norm (the kernel time without the launch overhead).
    pub time: f64,
    pub dram: f64,
    pub l2: f64,
}

/// The operands of one GEMM: total bytes of A (activations), B (weights or KV cache) and C.
#[derive(Clone, Copy, Debug)]
pub struct GemmBytes {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// A and C stay in L2 (the kernel's activations fit it).
    pub act_on_chip: bool,
    /// Vector FLOPs per tile-row pass over B (dequantisation; 0 for native weights).
    pub dequant: f64,
}

/// The fastest tile shape and split of one GEMM (see the module docs).
pub fn gemm_plan(
    g: &Gpu,
    eff: Efficiency,
    class_peak: f64,
    operand_bytes: f64,
    (m, n, k, batch): (u64, u64, u64, u64),
    bytes: GemmBytes,
    flops: f64,
) -> GemmPlan {
    let mc = Machine::new(g, eff, class_peak, operand_bytes);
    let vpeak = eff.compute * g.vector_peak.get();
    let floor_time = flops / (eff.compute * class_peak);
    let (m, n, k, batch) = (m.max(1), n.max(1), k.max(1), batch.max(1));
    let per = batch as f64;
    let mut best: Option<GemmPlan> = None;
    for tm in halvings(g.tile.0, 16) {
        for tn in halvings(g.tile.1, 32) {
            let (mt, nt) = (cdiv(m, tm), cdiv(n, tn));
            let base = batch.saturating_mul(mt).saturating_mul(nt);
            let w = base.min(mc.sms);
            let (da, db) = operand_dram(bytes.a / per, bytes.b / per, (mt, nt), w, mc.keep);
            let dram_a = if bytes.act_on_chip { 0.0 } else { da * per };
            let dram_c = if bytes.act_on_chip { 0.0 } else { bytes.c };
            let dram_ops = dram_a + db * per + dram_c;
            let l2_ops = bytes.a * nt as f64 + bytes.b * mt as f64 + bytes.c;
            let dequant = bytes.dequant * mt as f64 / mc.dequant_rate;
            let mut s = 1u64;
            loop {
                let tiles = base.saturating_mul(s);
                let waves = cdiv(tiles, mc.sms);
                let steps = cdiv(cdiv(k, s), mc.kstep);
                let step = mc.mma_time(2.0 * (tm * tn * mc.kstep) as f64, tm, tn);
                let tile = steps as f64 * step.max(mc.step_s) + mc.tile_s;
                let compute = (waves as f64 * tile).max(floor_time);
                let partials = if s > 1 {
                    2.0 * s as f64 * (batch * m * n) as f64 * 4.0
                } else {
                    0.0
                };
                let dram = dram_ops + (partials - mc.keep).max(0.0);
                let l2 = l2_ops + partials;
                let (dt, lt) = ((dram / mc.dram_bw(tiles)).max(dequant), l2 / mc.l2_bw);
                // The norm is at least the maximum: skip it when that cannot win.
                let beaten = best.as_ref().is_some_and(|b| compute.max(dt).max(lt) >= b.time);
                let time = if beaten {
                    f64::INFINITY
                } else {
                    overlap_norm(compute, dt, mc.p).max(lt)
                };
                if time < best.as_ref().map_or(f64::INFINITY, |b| b.time) || best.is_none() {
                    best = Some(GemmPlan {
                        tile: (tm, tn),
                        split_k: s,
                        waves,
                        gemv: false,
                        compute,
                        dram_time: dt,
                        l2_time: lt,
                        time,
                        dram,
                        l2,
                    });
                }
                // Split K only while the tiles leave SMs idle, into slices of >= 64.
                if s >= 32 || tiles >= mc.sms || k / (2 * s) < 64 {
                    break;
                }
                s *= 2;
            }
        }
    }
    // GEMV on the vector units: no row padding, every operand read once, the weights
    // dequantised once (up to 8 rows, as llama.cpp's mul_mat_vec kernels take; more rows are
    // a GEMM and tile like one).
    if m <= GEMV_MAX_ROWS {
        let compute = (flops / vpeak).max(floor_time);
        let (dram_a, dram_c) = if bytes.act_on_chip {
            (0.0, 0.0)
        } else {
            (bytes.a, bytes.c)
        };
        let dram = dram_a + bytes.b + dram_c;
        let l2 = bytes.a + bytes.b + bytes.c;
        let (dt, lt) = ((dram / mc.bw).max(bytes.dequant / mc.dequant_rate), l2 / mc.l2_bw);
        let time = overlap_norm(compute, dt, mc.p).max(lt);
        if best.as_ref().is_none_or(|b| time < b.time) {
            best = Some(GemmPlan {
                tile: (m, 1),
                split_k: 1,
                waves: 1,
                gemv: true,
                compute,
                dram_time: dt,
                l2_time: lt,
                time,
                dram,
                l2,
            });
        }
    }
    best.unwrap_or(GemmPlan {
        tile: g.tile,
        split_k: 1,
        waves: 1,
        compute: floor_time,
        time: floor_time,
        ..GemmPlan::default()
    })
}

/// What a GEMM op moves and dequantises, for [`gemm_plan`].
pub fn gemm_bytes(op: &Op, t: &Traffic, act_on_chip: bool, dequantised: bool) -> GemmBytes {
    let dequant = match op.kind {
        OpKind::Gemm { n, k, batch, .. } if dequantised => DEQUANT_OPS * (n * k * batch) as f64,
        _ => 0.0,
    };
    GemmBytes {
        a: t.act_in,
        b: t.weights + t.kv_read,
        c: t.act_out + t.kv_write,
        act_on_chip,
        dequant,
    }
}

/// Cost of a kernel of `ops` on GPU `g`; `scores` are the DRAM bytes of a materialised
/// attention-score matrix (a stack without fused attention; 0 otherwise), added to an
/// attention kernel's traffic. `dequantised`: a GEMM over block-quantised weights.
/// `heads_per_group`: query heads sharing one KV group (attention).
pub fn cost(
    g: &Gpu,
    eff: Efficiency,
    onchip: f64,
    ops: &[&Op],
    scores: f64,
    dequantised: bool,
    heads_per_group: u64,
) -> Cost {
    let t = Traffic::of(ops);
    let act_on_chip = t.activations() <= onchip;
    let bw = eff.memory * g.memory_bandwidth.get();
    let l2_bw = g.l2_bandwidth.get();
    let p = g.kernel.overlap;
    let op = ops[0];
    let scale = class_bits(op.compute) / 16.0;
    let vpeak = eff.compute * g.vector_peak.get();
    let (compute, dram_t, l2_t, dram, l2, matrix_flops, vector_flops, resource) = if ops.len() == 3 {
        let k = fused_attention(g, eff, ops, &t, act_on_chip, heads_per_group);
        let (dram, l2) = (k.dram + scores, k.l2 + scores);
        (
            k.compute,
            dram / bw,
            l2 / l2_bw,
            dram,
            l2,
            k.matrix_flops,
            k.vector_flops,
            Resource::Matrix,
        )
    } else {
        match (op.kind, op.unit) {
            (OpKind::Gemm { m, n, k, batch }, _) => {
                let b = gemm_bytes(op, &t, act_on_chip, dequantised);
                let peak = g.matrix_peak_for(op.compute).get();
                let pl = gemm_plan(
                    g,
                    eff,
                    peak,
                    class_bits(op.compute) / 8.0,
                    (m, n, k, batch),
                    b,
                    op.flops.get(),
                );
                (
                    pl.compute,
                    pl.dram_time,
                    pl.l2_time,
                    pl.dram,
                    pl.l2,
                    op.flops.get(),
                    b.dequant * cdiv(m, pl.tile.0) as f64,
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
                (
                    compute,
                    dram / bw,
                    all / l2_bw,
                    dram,
                    all,
                    0.0,
                    vf,
                    Resource::of_unit(unit),
                )
            }
        }
    };
    let overhead = eff.kernel_overhead;
    let busy = Seconds::new(overlap_norm(compute, dram_t, p).max(l2_t));
    let (compute, memory) = (Seconds::new(compute), Seconds::new(dram_t.max(l2_t)));
    Cost {
        resource: Some(resource),
        compute,
        memory,
        overhead,
        fill: Seconds::ZERO,
        main: overhead + busy,
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

/// Figures of one fused attention kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AttentionPlan {
    /// Query rows per block and KV columns per block.
    pub block: (u64, u64),
    pub split_kv: u64,
    /// CTAs and waves of them.
    pub ctas: u64,
    pub waves: u64,
    /// Seconds of matrix plus vector work.
    pub compute: f64,
    pub dram: f64,
    pub l2: f64,
    pub matrix_flops: f64,
    pub vector_flops: f64,
}

/// Split-K factors the flash-attention mapper tries. The set is fixed (it does not depend on
/// the shape), so the chosen time -- a minimum over plans that are each monotone in the
/// number of query rows and the context -- is itself monotone.
const ATTENTION_SPLITS: [u64; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// KV columns per flash-attention block at most.
const KV_BLOCK: u64 = 128;

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

/// scores -> softmax -> PV as one flash-attention kernel (see the module docs).
pub fn fused_attention(
    g: &Gpu,
    eff: Efficiency,
    ops: &[&Op],
    t: &Traffic,
    act_on_chip: bool,
    heads_per_group: u64,
) -> AttentionPlan {
    // The mapper tries the query heads of a KV group apart and, where they fit one block,
    // packed, and keeps the faster.
    let (time, plan) = attention_plan(g, eff, ops, t, act_on_chip, heads_per_group, false);
    let (qrows, bh) = match ops[0].kind {
        OpKind::Gemm { m, batch, .. } => (m.max(1), batch.max(1)),
        _ => (1, 1),
    };
    let hpg = heads_per_group.clamp(1, bh);
    if !(hpg > 1 && bh % hpg == 0 && qrows * hpg <= g.tile.0) {
        return plan;
    }
    let (packed_time, packed) = attention_plan(g, eff, ops, t, act_on_chip, heads_per_group, true);
    if packed_time < time { packed } else { plan }
}

/// The fastest split of a fused attention kernel with the query heads of a KV group packed
/// into one block (`try_pack`, where they fit) or apart; its time without the launch overhead.
fn attention_plan(
    g: &Gpu,
    eff: Efficiency,
    ops: &[&Op],
    t: &Traffic,
    act_on_chip: bool,
    heads_per_group: u64,
    try_pack: bool,
) -> (f64, AttentionPlan) {
    let (scores, softmax, pv) = (ops[0], ops[1], ops[2]);
    let (qrows, ctx, dqk, bh) = match scores.kind {
        OpKind::Gemm { m, n, k, batch } => (m.max(1), n.max(1), k.max(1), batch.max(1)),
        _ => (1, 1, 1, 1),
    };
    let dv = match pv.kind {
        OpKind::Gemm { n, .. } => n.max(1),
        _ => dqk,
    };
    let peak = g.matrix_peak_for(scores.compute).get();
    let mc = Machine::new(g, eff, peak, class_bits(scores.compute) / 8.0);
    let sms = mc.sms;
    // Causal when the scores cover fewer (query, key) pairs than the full rectangle: the
    // queries are the last `qrows` of `ctx` positions (a prompt: all of them).
    let pairs = scores.flops.get() / (2.0 * dqk as f64 + SCALE);
    let causal_pairs = qrows > 1 && pairs < (qrows * ctx * bh) as f64 * (1.0 - 1e-9);
    // Grouped-query attention with few query rows (decode): the query heads of one KV group
    // share a CTA as the rows of one block (as FlashDecoding / FlashInfer pack them), so each
    // KV group's cache is read by one CTA per split.
    let hpg = heads_per_group.clamp(1, bh);
    let pack = try_pack && hpg > 1 && bh % hpg == 0 && qrows * hpg <= g.tile.0;
    let (rows, bh, hpg) = if pack {
        (qrows * hpg, bh / hpg, 1)
    } else {
        (qrows, bh, hpg)
    };
    let causal = causal_pairs && !pack;
    let br = g.tile.0.min(rows.next_multiple_of(16)).max(1);
    let bc = g.tile.1.clamp(1, KV_BLOCK);
    let q_blocks = cdiv(rows, br);
    let offset = ctx.saturating_sub(rows);
    // KV blocks seen by query block `i` (packed rows: all of them).
    let kv_blocks = |i: u64| {
        if causal {
            cdiv(ctx.min(offset + (i + 1) * br), bc)
        } else {
            cdiv(ctx, bc)
        }
    };
    // Time of one (query block, KV block) pair, padded to whole blocks, fed from shared memory.
    let block_work = br as f64 * bc as f64 * 2.0 * (dqk + dv) as f64;
    let block_time = mc.mma_time(block_work, br, bc).max(mc.step_s);
    let matrix_flops = scores.flops.get() + pv.flops.get();
    let floor = matrix_flops / (eff.compute * peak);
    let vector_flops = softmax.flops.get();
    let t_vector = vector_flops / (eff.compute * g.vector_peak.get());
    let l2_base = (t.act_in + t.kv_read) * q_blocks as f64 + t.act_out + t.kv_write;
    let act = if act_on_chip { 0.0 } else { t.activations() };
    // K and V of one KV group are read by its `q_blocks x heads_per_group` CTAs; those beyond
    // one wave re-read it unless the L2 keeps the groups in flight.
    let users = q_blocks.saturating_mul(hpg);
    let passes = cdiv(users, sms);
    let groups = (bh / hpg).max(1);
    let per_group = t.kv_read / groups as f64;
    let in_flight = (sms as f64 / users as f64).max(1.0) * per_group;
    let kv_dram = t.kv_read * (1.0 + (passes - 1) as f64 * (1.0 - kept(mc.keep, in_flight)));
    let dram = kv_dram + t.kv_write + act;
    let dram_time = dram / mc.bw;
    // Non-causal blocks all see the same KV, so one query block stands for all of them.
    let distinct = if causal { q_blocks } else { 1 };
    let copies = if causal { bh } else { bh.saturating_mul(q_blocks) };
    let most_blocks = (0..distinct).map(kv_blocks).max().unwrap_or(1);
    let mut runs: Vec<(u64, u64)> = Vec::with_capacity(if distinct > 1 { 2 * distinct as usize } else { 0 });
    let mut best: Option<(f64, AttentionPlan)> = None;
    for s in ATTENTION_SPLITS {
        if s > 1 && s / 2 >= most_blocks {
            // The previous split already gave every KV block its own CTA: the same plan.
            break;
        }
        let (work, pieces) = if distinct == 1 {
            // One kind of query block (non-causal, decode): the heavier splits first, then the
            // lighter ones, in closed form.
            let blocks = kv_blocks(0);
            let parts = s.min(blocks).max(1);
            let (q, r) = (blocks / parts, blocks % parts);
            let heavy = r.saturating_mul(copies);
            let total = parts.saturating_mul(copies);
            let first = cdiv(heavy, sms);
            ((q + 1) * first + q * (cdiv(total, sms) - first), parts)
        } else {
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
            (wave_time(&mut runs, sms), pieces)
        };
        let ctas = pieces.saturating_mul(copies);
        let waves = cdiv(ctas, sms);
        let t_matrix = (work as f64 * block_time + waves as f64 * mc.tile_s).max(floor);
        // Partial outputs (fp32) of every split beyond the first: written, then read back.
        let split_rows = (pieces - distinct) as f64 * br.min(rows) as f64 * copies as f64;
        let partials = 2.0 * split_rows * dv as f64 * 4.0;
        let l2 = l2_base + partials;
        let compute = t_matrix + t_vector;
        let lt = l2 / mc.l2_bw;
        // The norm is at least the maximum: skip it when that cannot win.
        if best
            .as_ref()
            .is_some_and(|(b, _)| compute.max(dram_time).max(lt) >= *b)
        {
            continue;
        }
        let time = overlap_norm(compute, dram_time, mc.p).max(lt);
        if best.as_ref().is_none_or(|(b, _)| time < *b) {
            best = Some((
                time,
                AttentionPlan {
                    block: (br, bc),
                    split_kv: s,
                    ctas,
                    waves,
                    compute,
                    dram,
                    l2,
                    matrix_flops,
                    vector_flops,
                },
            ));
        }
    }
    best.unwrap_or_else(|| {
        let compute = floor + t_vector;
        let time = overlap_norm(compute, dram_time, mc.p).max(l2_base / mc.l2_bw);
        (
            time,
            AttentionPlan {
                block: (br, bc),
                split_kv: 1,
                ctas: 1,
                waves: 1,
                compute,
                dram,
                l2: l2_base,
                matrix_flops,
                vector_flops,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of one fp16 GEMM of `m x n x k` (2-byte operands) on `g` under `eff`.
    fn fp16_gemm(g: &Gpu, eff: Efficiency, (m, n, k): (u64, u64, u64), act_on_chip: bool) -> GemmPlan {
        let bytes = GemmBytes {
            a: (2 * m * k) as f64,
            b: (2 * n * k) as f64,
            c: (2 * m * n) as f64,
            act_on_chip,
            dequant: 0.0,
        };
        let peak = g.matrix_peak_for(crate::model::ComputeClass::F16).get();
        gemm_plan(g, eff, peak, 2.0, (m, n, k, 1), bytes, 2.0 * (m * n * k) as f64)
    }

    #[test]
    fn halvings_cover_the_tile_down_to_the_floor() {
        assert_eq!(halvings(128, 16).collect::<Vec<_>>(), [128, 64, 32, 16]);
        assert_eq!(halvings(256, 32).collect::<Vec<_>>(), [256, 128, 64, 32]);
        assert_eq!(halvings(8, 16).collect::<Vec<_>>(), [8]);
        assert_eq!(halvings(1, 16).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn the_overlap_norm_lies_between_the_maximum_and_the_sum() {
        for p in [1.0, 1.5, 2.0, 4.0, 100.0] {
            let v = overlap_norm(3.0, 4.0, p);
            assert!((4.0..=7.0 + 1e-12).contains(&v), "{p}: {v}");
        }
        assert!((overlap_norm(3.0, 4.0, 2.0) - 5.0).abs() < 1e-12);
        assert_eq!(overlap_norm(0.0, 0.0, 2.0), 0.0);
    }

    #[test]
    fn a_grid_of_few_blocks_reads_dram_no_faster_than_its_sms_stream() {
        use crate::substrate::{Kind, Override, load};
        let at = |rate: &str| {
            let o = [Override {
                path: "kernel.sm_bandwidth".into(),
                expr: rate.into(),
            }];
            let s = load("mi308x", &o).unwrap();
            let Kind::Gpu(g) = &s.kind else { unreachable!() };
            (fp16_gemm(g, s.efficiency, (16, 6144, 4096), false), g.clone())
        };
        let (free, g) = at("64 B/cycle");
        let (slow, _) = at("8 B/cycle");
        // 80 CUs at 8 B/cycle and 2.1 GHz: 1.34 TB/s at most, a quarter of the HBM's.
        let rate = 80.0 * 8.0 * g.clock.get();
        assert!(slow.dram_time >= slow.dram / rate * (1.0 - 1e-9), "{slow:?}");
        assert!(slow.time > free.time * 1.5, "{} {}", slow.time, free.time);
        // The full grid at the default rate reaches the stated fraction of the bandwidth.
        assert!((free.dram_time - free.dram / (0.85 * g.memory_bandwidth.get())).abs() < 1e-12);
    }

    #[test]
    fn a_small_tiles_feed_is_shared_memory_time_not_a_multiple_of_the_compute_fraction() {
        use crate::substrate::{Kind, load};
        let s = load("mi300x", &[]).unwrap();
        let Kind::Gpu(g) = &s.kind else { unreachable!() };
        // A decode step's GEMM at batch 16: 16-row tiles, whose operand feed is far from the
        // largest tile's.
        let (m, n, k) = (16u64, 8192u64, 8192u64);
        let peak = g.matrix_peak_for(crate::model::ComputeClass::F16).get();
        let flops = 2.0 * (m * n * k) as f64;
        let at = |compute: f64| {
            let eff = Efficiency {
                compute,
                memory: 1.0,
                ..s.efficiency
            };
            fp16_gemm(g, eff, (m, n, k), true).compute
        };
        let (full, slow) = (at(1.0), at(0.05));
        // At the peak a 16-row tile runs well above its FLOPs' time (feed, K steps, prologue).
        assert!(full > 1.5 * flops / peak, "{full} {}", flops / peak);
        // A stack at 5% of the peak takes 20 times as long for the arithmetic, plus about the
        // same feed and fixed time (the shared-memory path is no slower): not 20 times those.
        assert!(slow >= 20.0 * flops / peak, "{slow}");
        assert!(
            slow < 20.0 * flops / peak + 1.5 * full,
            "{slow} {full} {}",
            flops / peak
        );
    }

    #[test]
    fn operand_traffic_falls_smoothly_from_one_read_per_use_to_one_read() {
        // 32 x 86 tiles (Llama-2-7B ffn_gate at 4096 tokens, 128 x 128), 58 in flight.
        let (a, b) = (33.5e6, 90.2e6);
        let mut last = f64::INFINITY;
        for mib in [1.0, 4.0, 8.0, 16.0, 24.0, 48.0, 96.0, 200.0] {
            let (da, db) = operand_dram(a, b, (32, 86), 58, mib * 1048576.0);
            let total = da + db;
            assert!(total >= a + b - 1e-6 && total <= last + 1e-6, "{mib}: {total}");
            last = total;
        }
        assert!((last - (a + b)).abs() < 1e-6);
        // Half of a 48 MiB L2: a few reads of each operand, not one per tile row.
        let (da, db) = operand_dram(a, b, (32, 86), 58, 24.0 * 1048576.0);
        assert!(da + db < 3.0 * (a + b), "{}", da + db);
    }
}
