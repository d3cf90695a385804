//! Pricing a packed model: per-layer cycles and action counts, stage and step timing, the
//! token-pipelined prefill, energies, leakage and power.

use super::RingError;
use super::gemm::{GemmCount, gemm};
use super::packing::{Oversize, Packing, Placement, best_packing};
use super::prepare::{AttnShape, LayerOrigin, PreparedLayer, RingModel, Split};
use super::spec::{ChipConfig, DecodeContext, Objective, RingDesign, RingSpec, RingTiming};
use crate::units::{Bytes, Cycles, Joules, Seconds, SquareMeters, Watts};
use serde::Serialize;
use std::ops::Range;

/// Energy by component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct EnergyBreakdown {
    pub mac: Joules,
    pub wmem: Joules,
    /// K reads and (x1.2) column-wise V reads from the KV cache.
    pub kv_read: Joules,
    pub kv_write: Joules,
    pub accumulator: Joules,
    pub head_sram: Joules,
    pub softmax_norm: Joules,
    pub dram: Joules,
    pub link: Joules,
    pub leakage: Joules,
}

impl EnergyBreakdown {
    pub fn total(&self) -> Joules {
        self.mac
            + self.wmem
            + self.kv_read
            + self.kv_write
            + self.accumulator
            + self.head_sram
            + self.softmax_norm
            + self.dram
            + self.link
            + self.leakage
    }
}

/// Cycles and energy of one piece of work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PhaseCost {
    pub cycles: Cycles,
    /// INT8 multiply-accumulates, padding included (what the MAC energy counts).
    pub macs: f64,
    /// Bytes read from DRAM (streamed weights, the embedding row).
    pub dram_bytes: Bytes,
    pub energy: EnergyBreakdown,
}

/// One ring layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerReport {
    pub index: usize,
    pub origin: LayerOrigin,
    pub stage: usize,
    pub placement: Placement,
    pub weight_bytes: Bytes,
    /// KV cache held at the longest context, all users.
    pub kv_bytes: Bytes,
    /// One decode step (all users): busy cycles of the layer's chip, energy with the layer's
    /// share of tensor-parallel communication, without leakage or inter-stage hops.
    pub decode_step: PhaseCost,
    /// The whole prefill of this layer (all prompt tokens, all users).
    pub prefill: PhaseCost,
    /// Its share of one prompt token's pass through the pipeline (0 for a streamed layer,
    /// which runs batched after the pipeline drains: its cycles are all in `prefill`).
    pub prefill_cycles_per_token: Cycles,
}

/// One pipeline stage: one chip, or one tensor-parallel group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageReport {
    pub index: usize,
    pub chips: Range<u64>,
    pub layers: Range<usize>,
    pub weight_bytes: Bytes,
    pub kv_bytes: Bytes,
    /// stage_c at the decode context.
    pub decode_cycles: Cycles,
    /// stage_c(P/2), the per-token time in the prefill pipeline (streamed layers excluded).
    pub prefill_cycles_per_token: Cycles,
    /// Streamed layers' batched prefill, run after the pipeline drains.
    pub prefill_barrier_cycles: Cycles,
}

/// One chip's stage time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChipReport {
    pub chip: u64,
    pub stage: usize,
    pub decode_cycles: Cycles,
    pub prefill_cycles_per_token: Cycles,
}

/// What a link carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkUse {
    /// Activations from one stage to the next.
    Hop,
    /// Broadcast and all-reduces inside a tensor-parallel group.
    TensorParallel,
    Idle,
}

/// Traffic on the link from chip `from` to chip `from + 1`, per decode step (all users).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LinkReport {
    pub from_chip: u64,
    pub to_chip: u64,
    pub usage: LinkUse,
    pub bytes: Bytes,
    pub cycles: Cycles,
    pub energy: Joules,
}

/// The result of one design for one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RingReport {
    pub model: String,
    /// The timing model that priced it.
    pub timing: RingTiming,
    pub design: RingDesign,
    pub packing: Packing,
    pub chip_area: SquareMeters,
    pub total_area: SquareMeters,
    pub ttft: Seconds,
    /// Decode step time (see `DecodeContext`; the paper-era model decodes at ctx 2048).
    pub tpot: Seconds,
    /// Prefill energy per user.
    pub prefill_energy: Joules,
    /// One decode step's energy per user (the paper's E_tok).
    pub decode_step_energy: Joules,
    /// The paper's "energy per token": (E_prefill + D*E_step)/(P + D) under the corrected
    /// timing (the reference's form); under the paper-era timing what the release saved as
    /// `energy_per_token_uJ`, one decode step's energy per user (its prefill is in
    /// `prefill_energy` and `energy_per_generated_token`).
    pub energy_per_token_paper: Joules,
    /// (E_prefill + D*E_step)/D: request energy per generated token.
    pub energy_per_generated_token: Joules,
    pub prefill_power: Watts,
    pub decode_power: Watts,
    /// The figure the envelope limits: max(prefill_power, decode_power) under the corrected
    /// timing, decode_power under the paper-era one (as the release).
    pub power: Watts,
    /// Envelope violation: max(0, area/max - 1) + max(0, power/max - 1); 0 when feasible.
    pub violation: f64,
    pub step_cycles: Cycles,
    pub ttft_cycles: Cycles,
    /// The token-pipelined prefill's spacing (0 under the paper-era timing, whose prefill is
    /// not token-pipelined).
    pub prefill_spacing_cycles: Cycles,
    /// Whole prefill, all users.
    pub prefill_breakdown: EnergyBreakdown,
    /// One decode step, all users.
    pub decode_breakdown: EnergyBreakdown,
    pub layers: Vec<LayerReport>,
    pub stages: Vec<StageReport>,
    pub chips: Vec<ChipReport>,
    pub links: Vec<LinkReport>,
}

/// What a timing model computes for a report beyond its [`Summary`].
pub(crate) struct ReportParts {
    pub chip_area: SquareMeters,
    pub prefill_breakdown: EnergyBreakdown,
    pub decode_breakdown: EnergyBreakdown,
    pub layers: Vec<LayerReport>,
    pub stages: Vec<StageReport>,
    pub chips: Vec<ChipReport>,
    pub links: Vec<LinkReport>,
    pub packing: Packing,
}

impl RingReport {
    /// The report of `design` from its summary (the headline figures) and its parts.
    pub(crate) fn assemble(
        spec: &RingSpec,
        model: &RingModel,
        design: &RingDesign,
        s: &Summary,
        parts: ReportParts,
    ) -> RingReport {
        RingReport {
            model: model.name.clone(),
            timing: s.timing,
            design: *design,
            chip_area: parts.chip_area,
            total_area: SquareMeters::new(s.area_m2),
            ttft: Seconds::new(s.ttft_s()),
            tpot: Seconds::new(s.tpot_s()),
            prefill_energy: Joules::new(s.e_prefill_pj * 1e-12 / s.users),
            decode_step_energy: Joules::new(s.e_step_pj * 1e-12 / s.users),
            energy_per_token_paper: Joules::new(s.energy_paper_j()),
            energy_per_generated_token: Joules::new(s.energy_generated_j()),
            prefill_power: Watts::new(s.prefill_power_w()),
            decode_power: Watts::new(s.decode_power_w()),
            power: Watts::new(s.power_w()),
            violation: s.violation(spec),
            step_cycles: Cycles::new(s.step_cycles),
            ttft_cycles: Cycles::new(s.ttft_cycles),
            prefill_spacing_cycles: Cycles::new(s.spacing_cycles),
            prefill_breakdown: parts.prefill_breakdown,
            decode_breakdown: parts.decode_breakdown,
            layers: parts.layers,
            stages: parts.stages,
            chips: parts.chips,
            links: parts.links,
            packing: parts.packing,
        }
    }

    pub fn is_feasible(&self) -> bool {
        self.violation == 0.0
    }
    pub fn n_chips(&self) -> u64 {
        self.packing.n_chips
    }
}

/// Action counts (the energy table multiplies them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Actions {
    macs: f64,
    wmem_bytes: f64,
    kv_k_bytes: f64,
    kv_v_bytes: f64,
    kv_write_bytes: f64,
    acc: f64,
    head_bytes: f64,
    softmax_el: f64,
    norm_el: f64,
    dram_bytes: f64,
    link_bits: f64,
}

impl Actions {
    #[inline]
    fn add(&mut self, o: &Actions) {
        self.macs += o.macs;
        self.wmem_bytes += o.wmem_bytes;
        self.kv_k_bytes += o.kv_k_bytes;
        self.kv_v_bytes += o.kv_v_bytes;
        self.kv_write_bytes += o.kv_write_bytes;
        self.acc += o.acc;
        self.head_bytes += o.head_bytes;
        self.softmax_el += o.softmax_el;
        self.norm_el += o.norm_el;
        self.dram_bytes += o.dram_bytes;
        self.link_bits += o.link_bits;
    }
    #[inline]
    fn scaled(&self, s: f64) -> Actions {
        Actions {
            macs: self.macs * s,
            wmem_bytes: self.wmem_bytes * s,
            kv_k_bytes: self.kv_k_bytes * s,
            kv_v_bytes: self.kv_v_bytes * s,
            kv_write_bytes: self.kv_write_bytes * s,
            acc: self.acc * s,
            head_bytes: self.head_bytes * s,
            softmax_el: self.softmax_el * s,
            norm_el: self.norm_el * s,
            dram_bytes: self.dram_bytes * s,
            link_bits: self.link_bits * s,
        }
    }
    #[inline]
    fn add_weights(&mut self, g: &GemmCount, s: f64) {
        self.macs += g.macs * s;
        self.wmem_bytes += g.operand_bytes * s;
        self.acc += g.acc_accesses * s;
        self.head_bytes += g.head_bytes * s;
    }
    #[inline]
    fn energy_pj(&self, c: &Coeffs) -> f64 {
        self.macs * c.mac
            + self.wmem_bytes * c.wmem
            + self.kv_k_bytes * c.kv
            + self.kv_v_bytes * c.kv_v
            + self.kv_write_bytes * c.kv_write
            + self.acc * c.acc
            + self.head_bytes * c.head
            + self.softmax_el * c.softmax
            + self.norm_el * c.norm
            + self.dram_bytes * c.dram
            + self.link_bits * c.link_bit
    }
    fn breakdown(&self, c: &Coeffs, leakage_pj: f64) -> EnergyBreakdown {
        EnergyBreakdown {
            mac: Joules::pj(self.macs * c.mac),
            wmem: Joules::pj(self.wmem_bytes * c.wmem),
            kv_read: Joules::pj(self.kv_k_bytes * c.kv + self.kv_v_bytes * c.kv_v),
            kv_write: Joules::pj(self.kv_write_bytes * c.kv_write),
            accumulator: Joules::pj(self.acc * c.acc),
            head_sram: Joules::pj(self.head_bytes * c.head),
            softmax_norm: Joules::pj(self.softmax_el * c.softmax + self.norm_el * c.norm),
            dram: Joules::pj(self.dram_bytes * c.dram),
            link: Joules::pj(self.link_bits * c.link_bit),
            leakage: Joules::pj(leakage_pj),
        }
    }
}

/// Everything the inner loop needs, as plain numbers (pJ, cycles, bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Coeffs {
    n_cores: u64,
    pe: u64,
    port: u64,
    mac: f64,
    wmem: f64,
    kv: f64,
    kv_v: f64,
    kv_write: f64,
    acc: f64,
    head: f64,
    softmax: f64,
    norm: f64,
    dram: f64,
    dram_bpc: f64,
    link_bit: f64,
    link_bpc: f64,
    link_latency: f64,
    leak_chip: f64,
    clock: f64,
}

impl Coeffs {
    fn new(spec: &RingSpec, chip: &ChipConfig) -> Coeffs {
        let t = spec.chip();
        let e = &t.energy;
        let wmem_scale = chip.wmem_depth_scale(t);
        let kv_scale = chip.kv_depth_scale(t);
        Coeffs {
            n_cores: chip.n_cores,
            pe: chip.macs_per_vac,
            port: t.wmem_port_bits / 8,
            mac: e.mac.as_pj(),
            wmem: e.wmem_per_byte.as_pj() * wmem_scale,
            kv: e.kv_per_byte.as_pj() * kv_scale,
            kv_v: e.kv_per_byte.as_pj() * kv_scale * e.v_column_read_factor,
            kv_write: e.kv_per_byte.as_pj() * kv_scale * e.kv_write_factor,
            acc: e.accumulator_access.as_pj(),
            head: e.head_sram_per_byte.as_pj(),
            softmax: e.softmax_per_element.as_pj(),
            norm: e.norm_per_element.as_pj(),
            dram: e.dram_per_byte.as_pj(),
            dram_bpc: spec.dram().bytes_per_cycle.get(),
            link_bit: spec.link().energy_per_bit.as_pj(),
            link_bpc: spec.link().bytes_per_cycle.get(),
            link_latency: spec.link().latency.get(),
            leak_chip: chip.leakage_per_cycle(t).as_pj(),
            clock: t.clock.get(),
        }
    }
}

/// The weight GEMMs of a layer on one chip of a k-chip group: (per-chip cycles, all-chip actions).
/// `rows` multiplies every GEMM's M (P for a streamed layer's batched prefill).
fn weight_part(
    model: &RingModel,
    layer: &PreparedLayer,
    c: &Coeffs,
    k: u64,
    rows: f64,
    streamed: bool,
) -> (f64, Actions) {
    let mut cycles = 0.0;
    let mut a = Actions::default();
    for g in &model.gemms[layer.gemms.clone()] {
        let (kk, nn) = if k > 1 {
            match g.split {
                Split::Columns => (g.k, g.n.div_ceil(k)),
                Split::Rows => (g.k.div_ceil(k), g.n),
            }
        } else {
            (g.k, g.n)
        };
        let cnt = gemm(g.m * rows, kk, nn, c.n_cores, c.pe, c.port);
        let mut cyc = cnt.cycles;
        if streamed {
            let bytes = (kk * nn) as f64;
            cyc = cyc.max(bytes / c.dram_bpc);
            a.dram_bytes += (g.k * g.n) as f64 * g.reps;
        }
        cycles += cyc * g.reps;
        a.add_weights(&cnt, k as f64 * g.reps);
    }
    a.norm_el += layer.norm_elements * rows;
    a.dram_bytes += layer.fixed_dram_bytes * rows;
    (cycles, a)
}

/// The attention core at context `ctx` on one chip of a k-chip group (groups divided over the
/// chips): (per-chip cycles, all-chip actions), per token step of all users.
fn attention_part(shape: &AttnShape, ctx: u64, c: &Coeffs, k: u64, users: f64) -> (f64, Actions) {
    let hg = shape.heads_per_group() as f64;
    let qk = gemm(hg, shape.d_qk, ctx, c.n_cores, c.pe, c.port);
    let pv = gemm(hg, ctx, shape.d_v, c.n_cores, c.pe, c.port);
    let groups_per_chip = shape.groups.div_ceil(k) as f64;
    let gu = shape.groups as f64 * users;
    let a = Actions {
        macs: (qk.macs + pv.macs) * gu,
        kv_k_bytes: qk.operand_bytes * gu,
        kv_v_bytes: pv.operand_bytes * gu,
        kv_write_bytes: shape.kv_bytes_per_token() as f64 * users,
        acc: (qk.acc_accesses + pv.acc_accesses) * gu,
        head_bytes: (qk.head_bytes + pv.head_bytes) * gu,
        softmax_el: (ctx * shape.heads) as f64 * users,
        ..Actions::default()
    };
    ((qk.cycles + pv.cycles) * groups_per_chip * users, a)
}

/// Decode-attention results already computed for this chip design, keyed by (shape, k):
/// layers of one model share few attention shapes, and the exact average costs D GEMM pairs.
/// A fixed array, so the grid loop does not allocate.
struct AttnCache {
    entries: [Option<(AttnShape, u64, f64, Actions)>; 16],
}

impl AttnCache {
    fn new() -> AttnCache {
        AttnCache { entries: [None; 16] }
    }
    fn get(&mut self, shape: &AttnShape, model: &RingModel, c: &Coeffs, k: u64) -> (f64, Actions) {
        for slot in self.entries.iter_mut() {
            match slot {
                Some((s, kk, cy, a)) if s == shape && *kk == k => return (*cy, *a),
                Some(_) => continue,
                None => {
                    let (cy, a) = attention_decode(shape, model, c, k);
                    *slot = Some((*shape, k, cy, a));
                    return (cy, a);
                }
            }
        }
        attention_decode(shape, model, c, k)
    }
}

/// Mean attention over the decode contexts.
fn attention_decode(shape: &AttnShape, model: &RingModel, c: &Coeffs, k: u64) -> (f64, Actions) {
    let w = &model.workload;
    let users = model.users as f64;
    match model.options.decode_context {
        DecodeContext::Midpoint => attention_part(shape, w.prompt() + w.decode() / 2, c, k, users),
        DecodeContext::Average => {
            let mut cycles = 0.0;
            let mut a = Actions::default();
            for ctx in w.prompt() + 1..=w.prompt() + w.decode() {
                let (cy, ac) = attention_part(shape, ctx, c, k, users);
                cycles += cy;
                a.add(&ac);
            }
            let inv = 1.0 / w.decode() as f64;
            (cycles * inv, a.scaled(inv))
        }
    }
}

/// Tensor-parallel communication of one layer over k chips, per token step: input broadcast
/// along the group, then a ring all-reduce of the d*u activation bytes per all-reduce point
/// (2(k-1) steps of bytes/k; each chip sends 2(k-1)/k * bytes). A layer without all-reduce
/// (the vocab-split LM head) gathers its local top-1 in k-1 latency-bound hops.
fn tp_comm(layer: &PreparedLayer, act_bytes: f64, c: &Coeffs, k: u64) -> (f64, f64) {
    if k <= 1 {
        return (0.0, 0.0);
    }
    let kf = k as f64;
    let mut cycles = (kf - 1.0) * c.link_latency + act_bytes / c.link_bpc;
    let mut bits = (kf - 1.0) * act_bytes * 8.0;
    if layer.allreduces == 0 {
        cycles += (kf - 1.0) * c.link_latency;
    } else {
        let n = layer.allreduces as f64;
        cycles += n * 2.0 * (kf - 1.0) * (c.link_latency + act_bytes / kf / c.link_bpc);
        bits += n * 2.0 * (kf - 1.0) * act_bytes * 8.0;
    }
    (cycles, bits)
}

/// Per-layer costs under its placement.
#[derive(Clone, Copy, Debug, Default)]
struct LayerEval {
    dec_cycles: f64,
    dec: Actions,
    /// per prompt token in the pipeline (zero for streamed layers)
    pre_cycles: f64,
    pre: Actions,
    /// a streamed layer's batched prefill (zero otherwise)
    barrier_cycles: f64,
    barrier: Actions,
}

fn eval_layer(
    model: &RingModel,
    layer: &PreparedLayer,
    placement: Placement,
    c: &Coeffs,
    cache: &mut AttnCache,
) -> LayerEval {
    let users = model.users as f64;
    let pre_ctx = model.workload.prefill_context();
    let prompt = model.workload.prompt() as f64;
    let act_bytes = model.d_model as f64 * users;
    match placement {
        Placement::Stationary | Placement::TensorParallel { .. } => {
            let k = match placement {
                Placement::TensorParallel { k } => k,
                _ => 1,
            };
            let (wc, wa) = weight_part(model, layer, c, k, 1.0, false);
            let (cc, cb) = tp_comm(layer, act_bytes, c, k);
            let mut out = LayerEval {
                dec_cycles: wc + cc,
                dec: wa,
                pre_cycles: wc + cc,
                pre: wa,
                ..Default::default()
            };
            out.dec.link_bits += cb;
            out.pre.link_bits += cb;
            if let Some(shape) = &layer.attn {
                let (dc, da) = cache.get(shape, model, c, k);
                out.dec_cycles += dc;
                out.dec.add(&da);
                let (pc, pa) = attention_part(shape, pre_ctx, c, k, users);
                out.pre_cycles += pc;
                out.pre.add(&pa);
            }
            out
        }
        Placement::Streamed => {
            let (wc, wa) = weight_part(model, layer, c, 1, 1.0, true);
            let (bc, ba) = weight_part(model, layer, c, 1, prompt, true);
            let mut out = LayerEval {
                dec_cycles: wc,
                dec: wa,
                barrier_cycles: bc,
                barrier: ba,
                ..Default::default()
            };
            if let Some(shape) = &layer.attn {
                let (dc, da) = cache.get(shape, model, c, 1);
                out.dec_cycles += dc;
                out.dec.add(&da);
                let (pc, pa) = attention_part(shape, pre_ctx, c, 1, users);
                out.barrier_cycles += pc * prompt;
                out.barrier.add(&pa.scaled(prompt));
            }
            out
        }
    }
}

/// The headline numbers of one packing (what the grid loop needs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Summary {
    pub step_cycles: f64,
    pub ttft_cycles: f64,
    pub spacing_cycles: f64,
    /// all users, leakage included (pJ)
    pub e_step_pj: f64,
    pub e_prefill_pj: f64,
    pub area_m2: f64,
    pub clock: f64,
    pub users: f64,
    pub prompt: f64,
    pub decode: f64,
    pub timing: RingTiming,
}

impl Summary {
    pub fn ttft_s(&self) -> f64 {
        self.ttft_cycles / self.clock
    }
    pub fn tpot_s(&self) -> f64 {
        self.step_cycles / self.clock
    }
    /// per user, pJ
    fn request_pj(&self) -> f64 {
        (self.e_prefill_pj + self.decode * self.e_step_pj) / self.users
    }
    /// The paper's energy per token (see [`RingReport::energy_per_token_paper`]).
    pub fn energy_paper_j(&self) -> f64 {
        match self.timing {
            RingTiming::Corrected => self.request_pj() / (self.prompt + self.decode) * 1e-12,
            RingTiming::PaperEra => self.e_step_pj / self.users * 1e-12,
        }
    }
    pub fn energy_generated_j(&self) -> f64 {
        self.request_pj() / self.decode * 1e-12
    }
    pub fn prefill_power_w(&self) -> f64 {
        self.e_prefill_pj * 1e-12 / self.ttft_s()
    }
    pub fn decode_power_w(&self) -> f64 {
        self.e_step_pj * 1e-12 / self.tpot_s()
    }
    /// The power the envelope limits (see [`RingReport::power`]).
    pub fn power_w(&self) -> f64 {
        match self.timing {
            RingTiming::Corrected => self.prefill_power_w().max(self.decode_power_w()),
            RingTiming::PaperEra => self.decode_power_w(),
        }
    }
    pub fn objective(&self, o: Objective) -> f64 {
        match o {
            Objective::Energy => self.energy_paper_j(),
            Objective::EnergyPerGeneratedToken => self.energy_generated_j(),
            Objective::Tpot => self.tpot_s(),
            Objective::Ttft => self.ttft_s(),
            Objective::Area => self.area_m2,
        }
    }
    pub fn violation(&self, spec: &RingSpec) -> f64 {
        let env = spec.envelope();
        (self.area_m2 / env.max_area.get() - 1.0).max(0.0)
            + (self.power_w() / env.max_power.get() - 1.0).max(0.0)
    }
}

/// Per-layer detail, filled only when a report is wanted.
struct Detail {
    layers: Vec<(LayerEval, usize)>,
    stages: Vec<(f64, f64, f64)>,
}

/// The stationary layers' costs on one core array (`n_cores` cores of `pe` MACs): per layer
/// class, an index into `evals` (`NONE` until priced; `evals` holds at most one entry per
/// class and is allocated at that size, so it never moves).
struct ArrayMemo {
    n_cores: u64,
    pe: u64,
    attn: AttnCache,
    slots: Vec<u32>,
    evals: Vec<LayerEval>,
}

const NONE: u32 = u32::MAX;

/// Per-layer costs already computed for one model. A stationary layer's cycles and action
/// counts depend only on the layer and the core array's shape (cores, MACs per VAC; the WMEM
/// port, the DRAM and the link are the spec's), not on WMEM depth, KV size or chip count,
/// which only set the energy coefficients applied to the summed actions afterwards. The
/// grid's points share few array shapes (45 points, typically a dozen shapes), and layers
/// with the same prepared shape (IHA models repeat them) cost the same, so each distinct
/// layer is priced once per array shape instead of once per layer and point. The sums over
/// layers are taken in the same order from the same values: the figures are the same bits.
pub(crate) struct LayerMemo {
    /// Per ring layer, its class: the first layer with the same prepared shape.
    class: Vec<u32>,
    /// Number of distinct classes.
    classes: usize,
    arrays: Vec<ArrayMemo>,
}

/// Whether two layers of `model` are priced alike under any placement.
fn same_shape(model: &RingModel, a: &PreparedLayer, b: &PreparedLayer) -> bool {
    a.attn == b.attn
        && a.norm_elements == b.norm_elements
        && a.fixed_dram_bytes == b.fixed_dram_bytes
        && a.allreduces == b.allreduces
        && model.gemms[a.gemms.clone()] == model.gemms[b.gemms.clone()]
}

impl LayerMemo {
    pub(crate) fn new() -> LayerMemo {
        LayerMemo {
            class: Vec::new(),
            classes: 0,
            // the paper's grid meets about a dozen array shapes; an ArrayMemo is ~2.5 KB
            arrays: Vec::with_capacity(16),
        }
    }

    /// The memo of one array shape, created empty on first use.
    fn array(&mut self, model: &RingModel, n_cores: u64, pe: u64) -> usize {
        if self.class.len() != model.layers.len() {
            self.class.clear();
            for (i, l) in model.layers.iter().enumerate() {
                let first = (0..i)
                    .find(|&j| self.class[j] as usize == j && same_shape(model, &model.layers[j], l))
                    .unwrap_or(i);
                self.class.push(first as u32);
            }
            self.classes = self
                .class
                .iter()
                .enumerate()
                .filter(|&(i, &c)| c as usize == i)
                .count();
        }
        match self
            .arrays
            .iter()
            .position(|a| a.n_cores == n_cores && a.pe == pe)
        {
            Some(at) => at,
            None => {
                self.arrays.push(ArrayMemo {
                    n_cores,
                    pe,
                    attn: AttnCache::new(),
                    slots: vec![NONE; model.layers.len()],
                    evals: Vec::with_capacity(self.classes),
                });
                self.arrays.len() - 1
            }
        }
    }

    /// Layer `i`'s stationary costs on array `at` (from [`LayerMemo::array`]).
    fn stationary(&mut self, at: usize, model: &RingModel, i: usize, c: &Coeffs) -> &LayerEval {
        let class = self.class[i] as usize;
        let array = &mut self.arrays[at];
        let mut slot = array.slots[class];
        if slot == NONE {
            let le = eval_layer(
                model,
                &model.layers[class],
                Placement::Stationary,
                c,
                &mut array.attn,
            );
            slot = array.evals.len() as u32;
            array.evals.push(le);
            array.slots[class] = slot;
        }
        &array.evals[slot as usize]
    }
}

/// Prices `packing`. With `detail`, records per-layer and per-stage numbers. `memo` holds
/// stationary layers' costs across calls for the same model and spec.
fn run(
    spec: &RingSpec,
    model: &RingModel,
    packing: &Packing,
    memo: &mut LayerMemo,
    mut detail: Option<&mut Detail>,
) -> (Summary, Coeffs) {
    let c = Coeffs::new(spec, &packing.chip);
    let array = memo.array(model, c.n_cores, c.pe);
    let users = model.users as f64;
    let prompt = model.workload.prompt() as f64;
    let mut dec = Actions::default();
    let mut pre = Actions::default();
    let mut barrier = Actions::default();
    let mut sum_dec = 0.0;
    let mut sum_pre = 0.0;
    let mut max_pre: f64 = 0.0;
    let mut sum_barrier = 0.0;
    let mut cache = AttnCache::new();
    for (s, stage) in packing.stages.iter().enumerate() {
        let (mut sd, mut sp, mut sb) = (0.0, 0.0, 0.0);
        for i in stage.layers.clone() {
            let other;
            let le = match packing.placement[i] {
                Placement::Stationary => memo.stationary(array, model, i, &c),
                placement => {
                    other = eval_layer(model, &model.layers[i], placement, &c, &mut cache);
                    &other
                }
            };
            sd += le.dec_cycles;
            sp += le.pre_cycles;
            sb += le.barrier_cycles;
            dec.add(&le.dec);
            pre.add(&le.pre);
            barrier.add(&le.barrier);
            if let Some(d) = detail.as_deref_mut() {
                d.layers.push((*le, s));
            }
        }
        sum_dec += sd;
        sum_pre += sp;
        max_pre = max_pre.max(sp);
        sum_barrier += sb;
        if let Some(d) = detail.as_deref_mut() {
            d.stages.push((sd, sp, sb));
        }
    }
    let hops = packing.stages.len().saturating_sub(1) as f64;
    let act_bytes = model.d_model as f64 * users;
    let hop_cycles = c.link_latency + act_bytes / c.link_bpc;
    let hop_bits = act_bytes * 8.0;
    let n_chips = packing.n_chips as f64;

    let step = sum_dec + hop_cycles * hops;
    dec.link_bits += hop_bits * hops;
    let e_step = dec.energy_pj(&c) + c.leak_chip * n_chips * step;

    let spacing = max_pre + hop_cycles;
    let ttft = sum_pre + hop_cycles * hops + (prompt - 1.0) * spacing + sum_barrier;
    pre.link_bits += hop_bits * hops;
    let e_prefill = pre.energy_pj(&c) * prompt + barrier.energy_pj(&c) + c.leak_chip * n_chips * ttft;

    let summary = Summary {
        step_cycles: step,
        ttft_cycles: ttft,
        spacing_cycles: spacing,
        e_step_pj: e_step,
        e_prefill_pj: e_prefill,
        area_m2: n_chips * packing.chip.area_m2(spec.chip()),
        clock: c.clock,
        users,
        prompt,
        decode: model.workload.decode() as f64,
        timing: RingTiming::Corrected,
    };
    (summary, c)
}

/// Workspace for repeated evaluations (no allocation once warm), for one model and one spec:
/// it remembers that model's per-layer costs (see [`LayerMemo`]).
pub(crate) struct Workspace {
    scratch: Packing,
    candidate: Packing,
    pub best: Packing,
    memo: LayerMemo,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            scratch: Packing::empty(),
            candidate: Packing::empty(),
            best: Packing::empty(),
            memo: LayerMemo::new(),
        }
    }
}

/// Packs `design` (trying both oversize policies when the options allow and they differ) and
/// keeps in `ws.best` the packing with the lower `objective`. None when nothing fits.
pub(crate) fn pack_and_price(
    spec: &RingSpec,
    model: &RingModel,
    design: &RingDesign,
    objective: Objective,
    ws: &mut Workspace,
) -> Option<Summary> {
    if model.options.timing == RingTiming::PaperEra {
        return super::paper_era::pack_and_price(spec, model, design, &mut ws.best);
    }
    let mut best: Option<Summary> = None;
    let policies: [(Oversize, bool); 2] = [
        (Oversize::TensorParallel, model.options.tensor_parallel),
        (Oversize::Stream, model.options.spill_to_dram),
    ];
    let any_policy = policies.iter().any(|p| p.1);
    for (policy, allowed) in policies {
        if any_policy && !allowed {
            continue;
        }
        let ok = best_packing(spec, model, design, policy, &mut ws.scratch, &mut ws.candidate);
        if !ok {
            continue;
        }
        if best.is_some() && ws.candidate == ws.best {
            continue;
        }
        let (s, _) = run(spec, model, &ws.candidate, &mut ws.memo, None);
        if best.is_none_or(|b| s.objective(objective) < b.objective(objective)) {
            best = Some(s);
            std::mem::swap(&mut ws.best, &mut ws.candidate);
        }
        if !any_policy {
            break;
        }
    }
    best
}

/// Evaluates one design in full.
pub fn evaluate(
    spec: &RingSpec,
    model: &RingModel,
    design: &RingDesign,
    objective: Objective,
) -> Result<RingReport, RingError> {
    let mut ws = Workspace::new();
    let does_not_fit = || RingError::DoesNotFit {
        model: model.name.clone(),
        design: *design,
        weight_bytes: Bytes::new(model.total_weight_bytes()),
    };
    if pack_and_price(spec, model, design, objective, &mut ws).is_none() {
        return Err(does_not_fit());
    }
    report_of(spec, model, design, &mut ws).ok_or_else(does_not_fit)
}

/// Builds the full report of a packed design: the corrected model's from its packing (taken
/// from `ws.best`), the paper-era model's from the design alone (its packing is a function of
/// the design). None only when a paper-era design does not pack (callers pack it first).
pub(crate) fn report_of(
    spec: &RingSpec,
    model: &RingModel,
    design: &RingDesign,
    ws: &mut Workspace,
) -> Option<RingReport> {
    match model.options.timing {
        RingTiming::Corrected => {
            let packing = std::mem::replace(&mut ws.best, Packing::empty());
            Some(report(spec, model, design, packing, &mut ws.memo))
        }
        RingTiming::PaperEra => super::paper_era::report(spec, model, design),
    }
}

/// Builds the full report of a packing.
pub(crate) fn report(
    spec: &RingSpec,
    model: &RingModel,
    design: &RingDesign,
    packing: Packing,
    memo: &mut LayerMemo,
) -> RingReport {
    let mut detail = Detail {
        layers: Vec::with_capacity(model.layers.len()),
        stages: Vec::new(),
    };
    let (s, c) = run(spec, model, &packing, memo, Some(&mut detail));
    let users = model.users as f64;
    let prompt = model.workload.prompt() as f64;
    let max_ctx = model.workload.max_context() as f64;
    let act_bytes = model.d_model as f64 * users;
    let hop_cycles = c.link_latency + act_bytes / c.link_bpc;
    let hop_bits = act_bytes * 8.0;

    let mut dec_total = Actions::default();
    let mut pre_total = Actions::default();
    let mut layers = Vec::with_capacity(detail.layers.len());
    for (i, (le, stage)) in detail.layers.iter().enumerate() {
        let l = &model.layers[i];
        dec_total.add(&le.dec);
        let pre_all = le.pre.scaled(prompt);
        pre_total.add(&pre_all);
        pre_total.add(&le.barrier);
        let mut pre_layer = pre_all;
        pre_layer.add(&le.barrier);
        layers.push(LayerReport {
            index: i,
            origin: l.origin,
            stage: *stage,
            placement: packing.placement[i],
            weight_bytes: Bytes::new(l.weight_bytes),
            kv_bytes: Bytes::new(
                l.attn
                    .map_or(0.0, |a| a.kv_bytes_per_token() as f64 * max_ctx * users),
            ),
            decode_step: PhaseCost {
                cycles: Cycles::new(le.dec_cycles),
                macs: le.dec.macs,
                dram_bytes: Bytes::new(le.dec.dram_bytes),
                energy: le.dec.breakdown(&c, 0.0),
            },
            prefill: PhaseCost {
                cycles: Cycles::new(le.pre_cycles * prompt + le.barrier_cycles),
                macs: pre_layer.macs,
                dram_bytes: Bytes::new(pre_layer.dram_bytes),
                energy: pre_layer.breakdown(&c, 0.0),
            },
            prefill_cycles_per_token: Cycles::new(le.pre_cycles),
        });
    }
    let hops = packing.stages.len().saturating_sub(1) as f64;
    dec_total.link_bits += hop_bits * hops;
    pre_total.link_bits += hop_bits * hops * prompt;
    let n_chips = packing.n_chips as f64;

    let mut stages = Vec::with_capacity(packing.stages.len());
    let mut chips = Vec::with_capacity(packing.n_chips as usize);
    let mut links = Vec::with_capacity(packing.n_chips.saturating_sub(1) as usize);
    for (si, (st, (sd, sp, sb))) in packing.stages.iter().zip(&detail.stages).enumerate() {
        let weight: f64 = model.layers[st.layers.clone()]
            .iter()
            .map(|l| l.weight_bytes)
            .sum();
        let kv: f64 = layers[st.layers.clone()].iter().map(|l| l.kv_bytes.get()).sum();
        stages.push(StageReport {
            index: si,
            chips: st.first_chip..st.first_chip + st.n_chips,
            layers: st.layers.clone(),
            weight_bytes: Bytes::new(weight),
            kv_bytes: Bytes::new(kv),
            decode_cycles: Cycles::new(*sd),
            prefill_cycles_per_token: Cycles::new(*sp),
            prefill_barrier_cycles: Cycles::new(*sb),
        });
        for chip in st.first_chip..st.first_chip + st.n_chips {
            chips.push(ChipReport {
                chip,
                stage: si,
                decode_cycles: Cycles::new(*sd),
                prefill_cycles_per_token: Cycles::new(*sp),
            });
            if chip + 1 >= packing.n_chips {
                continue;
            }
            let (usage, bytes, cycles, energy) = if chip + 1 < st.first_chip + st.n_chips {
                // inside a tensor-parallel group: its communication, shared evenly by its links
                let k = st.n_chips;
                let (mut cyc, mut bits) = (0.0, 0.0);
                for l in &model.layers[st.layers.clone()] {
                    let (cc, cb) = tp_comm(l, act_bytes, &c, k);
                    cyc += cc;
                    bits += cb;
                }
                let share = bits / (k - 1) as f64;
                (LinkUse::TensorParallel, share / 8.0, cyc, share * c.link_bit)
            } else {
                (LinkUse::Hop, act_bytes, hop_cycles, hop_bits * c.link_bit)
            };
            links.push(LinkReport {
                from_chip: chip,
                to_chip: chip + 1,
                usage,
                bytes: Bytes::new(bytes),
                cycles: Cycles::new(cycles),
                energy: Joules::pj(energy),
            });
        }
    }
    let parts = ReportParts {
        chip_area: packing.chip.area(spec.chip()),
        prefill_breakdown: pre_total.breakdown(&c, c.leak_chip * n_chips * s.ttft_cycles),
        decode_breakdown: dec_total.breakdown(&c, c.leak_chip * n_chips * s.step_cycles),
        layers,
        stages,
        chips,
        links,
        packing,
    };
    RingReport::assemble(spec, model, design, &s, parts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Attention, Ffn, FfnKind, Layer, Model, NormKind, Positional, Precision, Precisions};
    use crate::sim::ring::{PackingRules, RingOptions, RingWorkload};

    /// d 16; per layer H 2, G 1, Dqk = Dv = 16, plain GELU FFN of width 32.
    /// Bytes per layer: attention 16*16*(2+1) + 16*16*1 + 16*2*16 = 768 + 256 + 512 = 1536,
    /// FFN 2*16*32 = 1024, total 2560.
    pub(crate) fn tiny(n_layers: usize) -> Model {
        let layer = Layer {
            attention: Some(Attention {
                heads: 2,
                kv_groups: 1,
                d_qk: 16,
                d_v: 16,
                qkv_bias: false,
                o_bias: false,
            }),
            ffn: Ffn::Dense {
                kind: FfnKind::Gelu,
                width: 32,
                bias: false,
            },
            parallel_residual: false,
        };
        Model {
            name: "tiny".into(),
            d_model: 16,
            vocab: 100,
            tied_embeddings: true,
            norm: NormKind::RmsNorm,
            positional: Positional::Rope { fraction: 1.0 },
            precision: Precisions {
                weights: Precision::Int8,
                activations: Precision::Int8,
                kv_cache: Precision::Int8,
            },
            layers: vec![layer; n_layers],
        }
    }

    fn tiny_ring(n_layers: usize, options: RingOptions) -> RingModel {
        let w = RingWorkload::new(4, 2, 1).unwrap();
        RingModel::new(&tiny(n_layers), &w, &options).unwrap()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} != {b}");
    }

    // P = 4, D = 2, u = 1, pe = 16, WMEM 1 KiB/core.
    // Packing: cores = next_pow2(ceil(2560*1.15/1024 = 2.875)) = 4, one chip (capacity
    // 4*1024/1.15 = 3561.7 B); n_dxt = ceil(4/16) = 1; KV = 32 B/token * 6 * 1.15 / 4 -> 8 KiB.
    // Weight GEMMs (M = 1, 4 cores, 16-B port), cycles / MACs / WMEM B / acc / head B:
    //   QK proj K16 N48: n_cols 12, active 4, 1 tile: 12 + 12 = 24 / 768 / 768 / 48 / 64
    //   V proj  K16 N16: n_cols 4:                     4 + 4  = 8  / 256 / 256 / 16 / 32
    //   O proj  K32 N16: n_cols 4, 2 tiles: 8 + 4 + 1*max(0, 4-4) = 12 / 512 / 512 / 48 / 48
    //   FFN up  K16 N32: n_cols 8:                     8 + 8  = 16 / 512 / 512 / 32 / 48
    //   FFN dn  K32 N16: as O proj                            12 / 512 / 512 / 48 / 48
    //   sum: 72 cycles, 2560 MACs, 2560 WMEM B, 192 acc, 240 head B.
    // Attention (one group, M = H/G = 2) at decode ctx = P + D/2 = 5:
    //   QK^T K16 N5: n_cols 2, active 3, 1 tile: 2*2 + 2 = 6 / MACs 2*16*6 = 192 / KV 2*16*3 = 96
    //                / acc 2*6*1 = 12 / head 2*(16+5) = 42
    //   PV   K5 N16: n_cols 4, active 4, 1 tile: 8 + 4 = 12 / 512 / KV 4*16*4 = 256 / 32 / 42
    // at prefill ctx = P/2 = 2:
    //   QK^T K16 N2: n_cols 1, active 2: 2 + 1 = 3; PV K2 N16: 12 -> 15 cycles
    #[test]
    fn one_layer_one_chip_by_hand() {
        let spec = RingSpec::llmforge_reference();
        let model = tiny_ring(1, RingOptions::corrected());
        let design = RingDesign::new(16, 8, Bytes::kib(1.0)).unwrap();
        let r = evaluate(&spec, &model, &design, Objective::Energy).unwrap();
        assert_eq!(r.packing.chip.n_cores, 4);
        assert_eq!(r.packing.chip.n_dxt, 1);
        assert_eq!(r.packing.chip.kv_per_core, Bytes::kib(8.0));
        assert_eq!(r.n_chips(), 1);
        // step = 72 + 6 + 12 = 90 cycles, no hops; TPOT = 90 / 200 MHz = 450 ns
        assert_eq!(r.step_cycles.get(), 90.0);
        close(r.tpot.get(), 450e-9);
        // prefill stage = 72 + 15 = 87; hop = 10 + 16/16 = 11; spacing = 98
        // TTFT = 87 + 0 hops + (4-1)*98 = 381 cycles
        assert_eq!(r.prefill_spacing_cycles.get(), 98.0);
        assert_eq!(r.ttft_cycles.get(), 381.0);
        // decode energy (pJ):
        let e = &r.decode_breakdown;
        close(e.mac.as_pj(), (2560.0 + 192.0 + 512.0) * 0.2); // 652.8
        // WMEM rows 1024/16 = 64: scale (64/1536)^0.78
        close(e.wmem.as_pj(), 2560.0 * 0.243 * (64.0f64 / 1536.0).powf(0.78));
        close(e.kv_read.as_pj(), 96.0 * 0.24 + 256.0 * 0.24 * 1.2); // 96.768
        close(e.kv_write.as_pj(), 32.0 * 0.24 * 1.06); // 8.1408
        close(e.accumulator.as_pj(), (192.0 + 12.0 + 32.0) * 0.05); // 11.8
        close(e.head_sram.as_pj(), (240.0 + 42.0 + 42.0) * 0.14); // 45.36
        close(e.softmax_norm.as_pj(), 5.0 * 2.0 * 0.5 + 2.0 * 16.0 * 0.3); // 14.6
        close(e.link.as_pj(), 0.0);
        // leakage/cycle: 4*(1024+8192)*5.907e-7 + 4*1.7709e-3 + 1.7442e-3 + 5.3914e-3
        let leak = 36864.0 * 5.907e-7 + 4.0 * 1.7709e-3 + 1.7442e-3 + 5.3914e-3;
        close(e.leakage.as_pj(), leak * 90.0);
        close(r.decode_step_energy.get(), e.total().get());
        // prefill = 4 tokens at ctx 2 + leakage over 381 cycles
        let p = &r.prefill_breakdown;
        close(p.mac.as_pj(), 4.0 * (2560.0 + 2.0 * 16.0 * 2.0 + 512.0) * 0.2);
        close(p.leakage.as_pj(), leak * 381.0);
        // paper energy per token = (E_prefill + 2 E_step) / 6; per generated token / 2
        let request = r.prefill_energy.get() + 2.0 * r.decode_step_energy.get();
        close(r.energy_per_token_paper.get(), request / 6.0);
        close(r.energy_per_generated_token.get(), request / 2.0);
        // power: energy / time of each phase
        close(r.decode_power.get(), r.decode_step_energy.get() / 450e-9);
        close(r.prefill_power.get(), r.prefill_energy.get() / (381.0 / 200e6));
    }

    // Averaging decode over ctx = 5 and 6 instead of the midpoint 5: cycles are unchanged
    // (ceil(6/4) = 2 columns, ceil(6/16) = 1 tile), head bytes grow by 2*(6-5) per GEMM
    // (+4 at ctx 6, +2 on average) and softmax by H*(6-5) = 2 (+1 on average):
    // +2*0.14 + 1*0.5 = +0.78 pJ.
    #[test]
    fn average_decode_context() {
        let spec = RingSpec::llmforge_reference();
        let design = RingDesign::new(16, 8, Bytes::kib(1.0)).unwrap();
        let mid = evaluate(
            &spec,
            &tiny_ring(1, RingOptions::corrected()),
            &design,
            Objective::Energy,
        )
        .unwrap();
        let avg_opts = RingOptions {
            decode_context: DecodeContext::Average,
            ..RingOptions::corrected()
        };
        let avg = evaluate(&spec, &tiny_ring(1, avg_opts), &design, Objective::Energy).unwrap();
        assert_eq!(avg.step_cycles, mid.step_cycles);
        let d = avg.decode_breakdown.total().as_pj() - mid.decode_breakdown.total().as_pj();
        close(d, 0.78);
    }

    // Two layers on chips of at most 4 cores: one layer per chip, 2 chips, 1 hop.
    // step = 90 + 90 + 11 = 191; TTFT = 87*2 + 11 + 3*(87 + 11) = 479;
    // hop energy = d * 8 bit * 1 pJ/bit = 128 pJ per step.
    #[test]
    fn two_chips_and_a_hop() {
        let spec = RingSpec::llmforge_reference()
            .with_packing(PackingRules {
                max_cores_per_chip: Some(4),
                ..*RingSpec::llmforge_reference().packing()
            })
            .unwrap();
        let model = tiny_ring(2, RingOptions::corrected());
        let design = RingDesign::new(16, 8, Bytes::kib(1.0)).unwrap();
        let r = evaluate(&spec, &model, &design, Objective::Energy).unwrap();
        assert_eq!(r.n_chips(), 2);
        assert_eq!(r.step_cycles.get(), 191.0);
        assert_eq!(r.ttft_cycles.get(), 479.0);
        close(r.decode_breakdown.link.as_pj(), 128.0);
        assert_eq!(r.links.len(), 1);
        assert_eq!(r.links[0].usage, LinkUse::Hop);
        assert_eq!(r.links[0].cycles.get(), 11.0);
        // max_chips 1 cannot hold two chips and spilling is off
        let one = RingDesign::new(16, 1, Bytes::kib(1.0)).unwrap();
        assert!(matches!(
            evaluate(&spec, &model, &one, Objective::Energy),
            Err(RingError::DoesNotFit { .. })
        ));
    }

    // Spill: max_chips 1, so layer 2 streams from DRAM (32 B/cycle). Its GEMMs take
    // max(cycles, K*N/32): 24, 8, max(12, 16), 16, max(12, 16) = 80, plus attention 18 = 98;
    // step = 90 + 98 = 188 on one chip, and 2560 B * 64 pJ of DRAM per step.
    // Prefill: the streamed layer runs batched after the pipeline (M = 4).
    #[test]
    fn tail_spills_to_dram() {
        let spec = RingSpec::llmforge_reference()
            .with_packing(PackingRules {
                max_cores_per_chip: Some(4),
                ..*RingSpec::llmforge_reference().packing()
            })
            .unwrap();
        let opts = RingOptions {
            spill_to_dram: true,
            ..RingOptions::corrected()
        };
        let model = tiny_ring(2, opts);
        let design = RingDesign::new(16, 1, Bytes::kib(1.0)).unwrap();
        let r = evaluate(&spec, &model, &design, Objective::Energy).unwrap();
        assert_eq!(r.n_chips(), 1);
        assert_eq!(
            r.packing.placement,
            vec![Placement::Stationary, Placement::Streamed]
        );
        assert_eq!(r.layers[1].decode_step.cycles.get(), 98.0);
        assert_eq!(r.step_cycles.get(), 188.0);
        close(r.decode_breakdown.dram.as_pj(), 2560.0 * 64.0);
        // batched prefill of the streamed layer: weights read once, M = 4:
        // QK proj 4*12 + 12 = 60 vs 24; V 16 + 4 = 20; O 32 + 4 = 36; up 32 + 8 = 40; down 36
        // -> 192, plus 4 tokens of attention at ctx 2 (15 each) = 252; TTFT = 87 + 3*98 + 252
        assert_eq!(r.stages[0].prefill_barrier_cycles.get(), 252.0);
        assert_eq!(r.ttft_cycles.get(), 87.0 + 3.0 * 98.0 + 252.0);
        close(r.prefill_breakdown.dram.as_pj(), 2560.0 * 64.0);
    }

    // Tensor parallel: chips of at most 4 cores with 512 B/core hold 4*512/1.15 = 1780.9 B,
    // less than the 2560-B layer: k = ceil(2560/1780.9) = 2 chips.
    // Communication per token: broadcast (k-1)*10 + 16/16 = 11 cycles, 1*16*8 = 128 bit;
    // two all-reduces 2 * 2(k-1) * (10 + 16/2/16) = 42 cycles, 2 * 2(k-1) * 16 * 8 = 512 bit.
    #[test]
    fn tensor_parallel_split() {
        let spec = RingSpec::llmforge_reference()
            .with_packing(PackingRules {
                max_cores_per_chip: Some(4),
                ..*RingSpec::llmforge_reference().packing()
            })
            .unwrap();
        let opts = RingOptions {
            tensor_parallel: true,
            ..RingOptions::corrected()
        };
        let model = tiny_ring(1, opts);
        let design = RingDesign::new(16, 8, Bytes::new(512.0)).unwrap();
        let r = evaluate(&spec, &model, &design, Objective::Energy).unwrap();
        assert_eq!(r.packing.placement, vec![Placement::TensorParallel { k: 2 }]);
        assert_eq!(r.n_chips(), 2);
        close(r.decode_breakdown.link.as_pj(), 640.0);
        assert_eq!(r.links[0].usage, LinkUse::TensorParallel);
        assert_eq!(r.links[0].cycles.get(), 53.0);
        // every MAC of the unsplit layer is still done once (no padding at these sizes):
        // 2560 weight MACs + attention (192 + 512 at ctx 5)
        close(r.decode_breakdown.mac.as_pj(), (2560.0 + 704.0) * 0.2);
        // without splitting or spilling the layer fits nowhere
        let model = tiny_ring(1, RingOptions::corrected());
        assert!(evaluate(&spec, &model, &design, Objective::Energy).is_err());
    }
}
