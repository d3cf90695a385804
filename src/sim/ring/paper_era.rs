//! The paper-era ring model (`ring.timing: paper_era`): the simulator behind the LLMForge
//! paper's ring table, reconstructed from the release's saved results
//! (`llmforge/reference_archs/baseline_results/*_rdxe.json` in the public LLMForge code;
//! `shared/reference/llmforge.md`, "Paper-era ring model"). Its source is not public; every
//! formula below was solved from those files and reproduces their TPOT exactly and their
//! energy per token to 1e-7 on all ten saved models (SmolLM2-135M/360M, Qwen2.5-0.5B,
//! GPT-2, Pythia-160M, Gemma-3-270M and four LLMForge searches), the alternative chip points
//! of each file included.
//!
//! What it prices (the corrected model in [`super::eval`] is the default and the one to use
//! for design work; this one exists to reproduce the paper's table):
//!
//! - **Every layer is the first.** All `L` blocks are priced like the first one, [`PaperLayer`]:
//!   its width, heads, groups and Q/K head dimension, the V head dimension taken equal to the
//!   Q/K one, a two-matrix FFN (d x m, m x d) whatever the model's kind. Attention is always
//!   on: a first block without attention borrows the first attention block's shape (the
//!   release priced the attention genes an attention-free layer still carries, which a model
//!   description does not hold; see [`PaperLayer::of`]).
//! - **Decode at a fixed context** of [`DECODE_CONTEXT`] = 2048, whatever P and D.
//! - **Per GEMM** the analytical model of [`super::gemm`] at the *template* chip's MACs per
//!   VAC (16 in every shipped file) whatever the design's: the release's analytical fallback
//!   ran at its default width. Per layer the seven GEMMs of [`PaperLayer::gemms`].
//! - **A serial softmax / norm unit**: `H x ctx + 2d` cycles per layer and user
//!   ([`softmax_unit_cycles`]), 87% of SmolLM2-360M's layer. It is why the model favours few
//!   heads (LLMForge-Fast-365M, 8 heads, is fastest here and not under the corrected model).
//! - **TPOT** = `(L x layer cycles + (n_chips - 1) x hop) / clock`, hop = latency + d*u/BW.
//! - **Energy per token** (pJ): per GEMM padded MACs x 0.2 + operand bytes x 0.243 (K and V
//!   read as if from WMEM: no sharing across a group's heads, no SRAM depth scaling) +
//!   accumulator accesses x 0.05 + head-SRAM activations x 0.14; per layer softmax
//!   `ctx x H x 0.5`, norms `2d x 0.3`, KV write `G x 2Dqk x 0.24 x 1.06`; hops `8d` pJ each
//!   (d bytes at 1 pJ/bit); no leakage ([`decode_layer`]).
//! - **Prefill energy**: per layer `(lb x P + 2 Dqk H P^2) x 0.07 + lb x 0.243 + G x 2Dqk x P
//!   x 0.24 x 1.06` (MACs at [`PREFILL_MAC_ENERGY`], each weight read once, the prompt's KV
//!   written; lb = the layer's weight bytes) plus one set of hops ([`prefill_layer`]); it
//!   reproduces the files' `session_e_per_tok_uJ` to 1e-15.
//! - **TTFT** = `(L x layer cycles + W / chip MACs) / clock`: the decode-step part without
//!   hops plus the prompt's work W at the chip's MAC rate. W scales exactly as 1 / chip MACs
//!   for a model (every file's two chip points agree), but its closed form is not recoverable
//!   from the ten files (it is not linear in the layer's GEMM sizes, and one file's two points
//!   disagree by 4%). We use the physically motivated form of [`prefill_work`]: a
//!   layer-pipelined prompt, P + L - 1 steps of one token through one layer at the mean
//!   context P/2, at [`PREFILL_MAC_UTILISATION`] of the chip's MACs (the one fitted constant).
//!   W is then within 2.0% of the files' (SmolLM2-360M +1.97%, Eco-294M +1.71%, Fast-365M
//!   +1.33%, Qwen2.5-0.5B -0.50%, NSGA-Best-347M -0.81%, SmolLM2-135M +0.40%, GPT-2 -1.88%,
//!   Gemma-3-270M +1.93%, Gen40-106M -1.98%, NSGA-Best-123M -1.97%), i.e. TTFT within 0.4%
//!   on the paper's models (SmolLM2-360M +0.31%, Eco-294M +0.20%, Fast-365M +0.20%). The
//!   files' W: SmolLM2-360M 3.483e9, Eco-294M 2.103e9, Fast-365M 3.806e9 MAC-cycles.
//! - **Packing**: the first layer's bytes `lb = d*Dqk*(H+2G) + Dqk*H*d + 2*d*m` per layer,
//!   cores from next_pow2(ceil(lb x 1.15 / WMEM per core)), doubled while the model needs
//!   more than max chips (the smallest fitting chip), chips filled greedily to
//!   floor(WMEM total / 1.15); KV per core the power-of-two KiB >= max(8 KiB, a chip's KV at
//!   ctx 2048 x 1.15 / cores) ([`pack`]). Area counts SRAM only: `n_chips x cores x (WMEM +
//!   KV per core) x area.sram` (3.38793 um^2/B in `ring-edge-paper.yaml`; [`sram_area`]).
//! - **Selection**: the 45-point grid in the file's order; lowest energy per token (one
//!   decode step's, the release's `per_tok_uJ`) within the envelope, else the smallest
//!   relative overshoot of area and power, ties to the first point; power is the decode
//!   power, E_step / TPOT. This picks the saved chip of every file.
//!
//! Users: the files are single-user. With u users the GEMM rows, the softmax unit, KV writes
//! and hop bytes scale by u and W by u (our extension, the same rule the corrected model
//! uses).

use super::RingError;
use super::eval::{
    ChipReport, EnergyBreakdown, LayerReport, LinkReport, LinkUse, PhaseCost, ReportParts, RingReport,
    StageReport, Summary,
};
use super::gemm::{GemmCount, gemm};
use super::packing::{Packing, Placement, Stage, kv_per_core};
use super::prepare::{LayerOrigin, RingBlock, RingModel};
use super::spec::{ChipConfig, RingDesign, RingSpec, RingTiming};
use crate::units::{Bytes, Cycles, Joules, SquareMeters};
use serde::Serialize;

/// The context every paper-era decode step (and the KV sizing) is priced at.
pub const DECODE_CONTEXT: u64 = 2048;

/// Energy of one MAC in the paper-era prefill (its "ERT" figure), against 0.2 pJ in its decode
/// GEMMs; solved from the files' prefill energies, which it reproduces to 1e-15.
pub const PREFILL_MAC_ENERGY: Joules = Joules::new(0.07e-12);

/// Fraction of the chip's MACs the prefill work of [`prefill_work`] runs at: the one constant
/// fitted to the saved files (geometric mean over the ten models; see the module docs).
pub const PREFILL_MAC_UTILISATION: f64 = 0.6157;

/// The shape every paper-era layer is priced as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PaperLayer {
    pub d_model: u64,
    /// Query heads H (0: the model has no attention at all).
    pub heads: u64,
    /// KV groups G.
    pub groups: u64,
    /// Q/K head dimension, also used for V.
    pub d_head: u64,
    /// FFN width m, priced as two matrices.
    pub ffn_width: u64,
}

/// One GEMM of the paper-era layer: `reps` times an (m x k).(k x n) product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaperGemm {
    pub name: &'static str,
    pub m: u64,
    pub k: u64,
    pub n: u64,
    pub reps: u64,
}

impl PaperLayer {
    /// The first block's shape, from the prepared blocks of model `name` (`layers`: the block
    /// of every layer). A first block without attention takes the first attention block's
    /// heads, groups and Q/K dimension (for LLMForge-Eco-294M and -Acc-347M these are the
    /// attention genes the release priced; for -Compact-106M and -Acc-123M, whose
    /// attention-free first blocks carried H = G = 1 in the search, they are not). An MoE
    /// first block is an error: the paper-era model prices a dense FFN.
    pub fn of<B: std::borrow::Borrow<RingBlock>>(
        name: &str,
        d_model: u64,
        blocks: &[B],
        layers: &[usize],
    ) -> Result<PaperLayer, RingError> {
        let invalid = |message: String| RingError::InvalidModel {
            model: name.to_string(),
            message,
        };
        let first = layers
            .first()
            .and_then(|&b| blocks.get(b).map(B::borrow))
            .ok_or_else(|| invalid("the paper-era model needs at least one layer".into()))?;
        let Some(ffn_width) = first.dense_ffn_width() else {
            return Err(invalid(
                "layers[0] is a mixture of experts; the paper-era ring model prices every \
                 layer as a dense first layer (use ring.timing: corrected)"
                    .into(),
            ));
        };
        let attention = layers
            .iter()
            .find_map(|&b| blocks.get(b).and_then(|b| b.borrow().attention()));
        let (heads, groups, d_head) = attention.map_or((0, 0, 0), |a| (a.heads, a.groups, a.d_qk));
        Ok(PaperLayer {
            d_model,
            heads,
            groups,
            d_head,
            ffn_width,
        })
    }

    pub fn has_attention(&self) -> bool {
        self.heads > 0
    }

    /// INT8 weight bytes the packing places per layer: d*Dqk*(H+2G) + Dqk*H*d + 2*d*m.
    pub fn weight_bytes(&self) -> u64 {
        let (d, h, g, dh) = (self.d_model, self.heads, self.groups, self.d_head);
        d * dh * (h + 2 * g) + dh * h * d + 2 * d * self.ffn_width
    }

    /// KV bytes per token and user: G * 2 * Dqk.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.groups * self.d_head
    }

    /// The layer's GEMMs for `users` users at context `ctx`: QK_gen (u, d, Dqk(H+G)),
    /// V_gen (u, d, Dqk G), QK_attn (u H/G, Dqk, ctx) x G, PV_attn (u H/G, ctx, Dqk) x G,
    /// O_proj (u, Dqk H, d), FC1 (u, d, m), FC2 (u, m, d). Without attention only the FFN.
    pub fn gemms(&self, users: u64, ctx: u64) -> Vec<PaperGemm> {
        let (d, h, g, dh, m) = (self.d_model, self.heads, self.groups, self.d_head, self.ffn_width);
        let gemm = |name, m, k, n, reps| PaperGemm { name, m, k, n, reps };
        let mut v = Vec::with_capacity(7);
        if self.has_attention() {
            let rows = users * (h / g);
            v.push(gemm("QK_gen", users, d, dh * (h + g), 1));
            v.push(gemm("V_gen", users, d, dh * g, 1));
            v.push(gemm("QK_attn", rows, dh, ctx, g));
            v.push(gemm("PV_attn", rows, ctx, dh, g));
            v.push(gemm("O_proj", users, dh * h, d, 1));
        }
        v.push(gemm("FC1", users, d, m, 1));
        v.push(gemm("FC2", users, m, d, 1));
        v
    }
}

/// Cycles of the serial softmax / norm unit for one layer and `users` users at context `ctx`:
/// (H x ctx + 2d) x u (d x u without attention: one norm).
pub fn softmax_unit_cycles(layer: &PaperLayer, ctx: u64, users: u64) -> u64 {
    let norms = if layer.has_attention() { 2 } else { 1 };
    (layer.heads * ctx + norms * layer.d_model) * users
}

/// Per-action energies (pJ) the paper-era formulas use: the file's, without depth scaling.
#[derive(Clone, Copy, Debug)]
struct Energies {
    mac: f64,
    wmem: f64,
    acc: f64,
    head: f64,
    softmax: f64,
    norm: f64,
    kv_write: f64,
    link_bit: f64,
    prefill_mac: f64,
}

impl Energies {
    fn of(spec: &RingSpec) -> Energies {
        let e = &spec.chip().energy;
        Energies {
            mac: e.mac.as_pj(),
            wmem: e.wmem_per_byte.as_pj(),
            acc: e.accumulator_access.as_pj(),
            head: e.head_sram_per_byte.as_pj(),
            softmax: e.softmax_per_element.as_pj(),
            norm: e.norm_per_element.as_pj(),
            kv_write: e.kv_per_byte.as_pj() * e.kv_write_factor,
            link_bit: spec.link().energy_per_bit.as_pj(),
            prefill_mac: PREFILL_MAC_ENERGY.as_pj(),
        }
    }
}

/// One paper-era layer's cost: cycles, MACs and energy by component (pJ).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerCost {
    pub cycles: f64,
    pub macs: f64,
    pub mac_pj: f64,
    /// Weight operands from WMEM.
    pub wmem_pj: f64,
    /// K and V operands (priced at the WMEM energy, no sharing, no depth scaling).
    pub kv_read_pj: f64,
    pub kv_write_pj: f64,
    pub acc_pj: f64,
    pub head_pj: f64,
    pub softmax_norm_pj: f64,
}

impl LayerCost {
    pub fn energy_pj(&self) -> f64 {
        self.mac_pj
            + self.wmem_pj
            + self.kv_read_pj
            + self.kv_write_pj
            + self.acc_pj
            + self.head_pj
            + self.softmax_norm_pj
    }

    fn breakdown(&self, scale: f64) -> EnergyBreakdown {
        EnergyBreakdown {
            mac: Joules::pj(self.mac_pj * scale),
            wmem: Joules::pj(self.wmem_pj * scale),
            kv_read: Joules::pj(self.kv_read_pj * scale),
            kv_write: Joules::pj(self.kv_write_pj * scale),
            accumulator: Joules::pj(self.acc_pj * scale),
            head_sram: Joules::pj(self.head_pj * scale),
            softmax_norm: Joules::pj(self.softmax_norm_pj * scale),
            ..EnergyBreakdown::default()
        }
    }
}

/// One decode step of one layer on a chip of `n_cores` cores (all `users`), at `ctx`: the
/// GEMMs of [`PaperLayer::gemms`] through the model of [`super::gemm`] at `pe` MACs per VAC
/// and a `port`-byte WMEM port, plus the softmax unit, softmax and norm energy and the KV
/// write of the new token.
fn decode_layer_with(
    layer: &PaperLayer,
    n_cores: u64,
    pe: u64,
    port: u64,
    ctx: u64,
    users: u64,
    e: &Energies,
) -> LayerCost {
    let mut c = LayerCost::default();
    for g in layer.gemms(users, ctx) {
        let GemmCount {
            cycles,
            macs,
            operand_bytes,
            acc_accesses,
            head_bytes,
        } = gemm(g.m as f64, g.k, g.n, n_cores, pe, port);
        let r = g.reps as f64;
        c.cycles += cycles * r;
        c.macs += macs * r;
        c.mac_pj += macs * r * e.mac;
        let operand = operand_bytes * r * e.wmem;
        if matches!(g.name, "QK_attn" | "PV_attn") {
            c.kv_read_pj += operand;
        } else {
            c.wmem_pj += operand;
        }
        c.acc_pj += acc_accesses * r * e.acc;
        c.head_pj += head_bytes * r * e.head;
    }
    let u = users as f64;
    let norms = if layer.has_attention() { 2.0 } else { 1.0 };
    c.cycles += softmax_unit_cycles(layer, ctx, users) as f64;
    c.softmax_norm_pj =
        (ctx * layer.heads) as f64 * u * e.softmax + norms * layer.d_model as f64 * u * e.norm;
    c.kv_write_pj = layer.kv_bytes_per_token() as f64 * u * e.kv_write;
    c
}

/// One decode step of one paper-era layer on `chip` (all `users`) at [`DECODE_CONTEXT`].
pub fn decode_layer(spec: &RingSpec, layer: &PaperLayer, chip: &ChipConfig, users: u64) -> LayerCost {
    let t = spec.chip();
    decode_layer_with(
        layer,
        chip.n_cores,
        t.macs_per_vac,
        t.wmem_port_bits / 8,
        DECODE_CONTEXT,
        users,
        &Energies::of(spec),
    )
}

/// One layer's prefill energy for `users` prompts of `prompt` tokens (cycles are not per
/// layer: see [`prefill_work`]): MACs (lb x P + 2 Dqk H P^2) x u at 0.07 pJ, the weights read
/// once, the prompt's KV written.
fn prefill_layer_with(layer: &PaperLayer, prompt: u64, users: u64, e: &Energies) -> LayerCost {
    let (p, u) = (prompt as f64, users as f64);
    let lb = layer.weight_bytes() as f64;
    let attn = 2.0 * (layer.d_head * layer.heads) as f64 * p * p;
    let macs = (lb * p + attn) * u;
    LayerCost {
        macs,
        mac_pj: macs * e.prefill_mac,
        wmem_pj: lb * e.wmem,
        kv_write_pj: layer.kv_bytes_per_token() as f64 * p * u * e.kv_write,
        ..LayerCost::default()
    }
}

/// One layer's prefill (energy and MACs; cycles 0) for `users` prompts of `prompt` tokens.
pub fn prefill_layer(spec: &RingSpec, layer: &PaperLayer, prompt: u64, users: u64) -> LayerCost {
    prefill_layer_with(layer, prompt, users, &Energies::of(spec))
}

/// The prompt's work W in MAC-cycles (TTFT adds W / chip MACs cycles to the decode-step part):
/// W = u x (P + L - 1) x (lb + Dqk x H x P) / [`PREFILL_MAC_UTILISATION`], a layer-pipelined
/// prompt of P tokens through L layers, each step one token through one layer at the mean
/// context P/2 (2 x Dqk x H x P/2 attention MACs), at the fitted MAC utilisation. An
/// approximation of the release's term (see the module docs for its error).
pub fn prefill_work(layer: &PaperLayer, n_layers: u64, prompt: u64, users: u64) -> f64 {
    let steps = (prompt + n_layers - 1) as f64;
    let per_step = layer.weight_bytes() as f64 + (layer.d_head * layer.heads * prompt) as f64;
    users as f64 * steps * per_step / PREFILL_MAC_UTILISATION
}

/// The paper-era packing of one design.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PaperPacking {
    pub n_cores: u64,
    /// Layers on every chip but the last (which takes the rest).
    pub layers_per_chip: u64,
    pub n_chips: u64,
    pub kv_per_core: Bytes,
}

/// Packs `n_layers` copies of `layer` for `design`: cores from next_pow2(ceil(lb x headroom /
/// WMEM per core)), doubled (at most `packing.core_doublings` times) while more than
/// min(max chips, L) chips are needed; a chip takes floor(floor(cores x WMEM / headroom) / lb)
/// layers; KV per core from the fullest chip's KV at [`DECODE_CONTEXT`]. None when nothing
/// fits.
pub fn pack(
    spec: &RingSpec,
    layer: &PaperLayer,
    n_layers: u64,
    design: &RingDesign,
    users: u64,
) -> Option<PaperPacking> {
    let rules = spec.packing();
    let lb = layer.weight_bytes() as f64;
    let wmem = design.wmem_per_core.get();
    let max_chips = design.max_chips.min(n_layers);
    let mut cores = ((lb * rules.weight_headroom / wmem).ceil().max(1.0) as u64).next_power_of_two();
    for _ in 0..=rules.core_doublings {
        let usable = (cores as f64 * wmem / rules.weight_headroom).floor();
        let per_chip = (usable / lb).floor() as u64;
        if per_chip >= 1 {
            let n_chips = n_layers.div_ceil(per_chip);
            if n_chips <= max_chips {
                let layers_per_chip = per_chip.min(n_layers);
                let chip_kv = (layers_per_chip * layer.kv_bytes_per_token() * DECODE_CONTEXT * users) as f64;
                return Some(PaperPacking {
                    n_cores: cores,
                    layers_per_chip,
                    n_chips,
                    kv_per_core: kv_per_core(spec, chip_kv, cores),
                });
            }
        }
        cores *= 2;
    }
    None
}

/// SRAM-only area of one chip: cores x (WMEM + KV per core) x `area.sram`.
pub fn chip_sram_area(
    spec: &RingSpec,
    n_cores: u64,
    wmem_per_core: Bytes,
    kv_per_core: Bytes,
) -> SquareMeters {
    let bytes = n_cores as f64 * (wmem_per_core + kv_per_core).get();
    SquareMeters::new(bytes * spec.chip().area.sram_per_byte.get())
}

/// SRAM-only area of the ring: n_chips x cores x (WMEM + KV per core) x `area.sram`.
pub fn sram_area(spec: &RingSpec, p: &PaperPacking, wmem_per_core: Bytes) -> SquareMeters {
    chip_sram_area(spec, p.n_cores, wmem_per_core, p.kv_per_core) * p.n_chips as f64
}

/// Everything a design's figures come from.
struct Priced {
    layer: PaperLayer,
    packing: PaperPacking,
    dec: LayerCost,
    pre: LayerCost,
    n_layers: f64,
    hop_cycles: f64,
    hop_pj: f64,
    /// W / chip MACs.
    prefill_cycles: f64,
    summary: Summary,
}

fn price(spec: &RingSpec, model: &RingModel, layer: PaperLayer, design: &RingDesign) -> Option<Priced> {
    let users = model.users;
    let n_layers = model.n_layers() as u64;
    let packing = pack(spec, &layer, n_layers, design, users)?;
    let t = spec.chip();
    let e = Energies::of(spec);
    let dec = decode_layer_with(
        &layer,
        packing.n_cores,
        t.macs_per_vac,
        t.wmem_port_bits / 8,
        DECODE_CONTEXT,
        users,
        &e,
    );
    let prompt = model.workload.prompt();
    let pre = prefill_layer_with(&layer, prompt, users, &e);
    let link = spec.link();
    let act_bytes = (layer.d_model * users) as f64;
    let hop_cycles = link.latency.get() + act_bytes / link.bytes_per_cycle.get();
    let hop_pj = act_bytes * 8.0 * e.link_bit;
    let hops = (packing.n_chips - 1) as f64;
    let l = n_layers as f64;
    let chip_macs = (packing.n_cores * design.macs_per_vac) as f64;
    let prefill_cycles = prefill_work(&layer, n_layers, prompt, users) / chip_macs;
    let step_cycles = l * dec.cycles + hops * hop_cycles;
    let summary = Summary {
        step_cycles,
        ttft_cycles: l * dec.cycles + prefill_cycles,
        spacing_cycles: 0.0,
        e_step_pj: l * dec.energy_pj() + hops * hop_pj,
        e_prefill_pj: l * pre.energy_pj() + hops * hop_pj,
        area_m2: sram_area(spec, &packing, design.wmem_per_core).get(),
        clock: t.clock.get(),
        users: users as f64,
        prompt: prompt as f64,
        decode: model.workload.decode() as f64,
        timing: RingTiming::PaperEra,
    };
    Some(Priced {
        layer,
        packing,
        dec,
        pre,
        n_layers: l,
        hop_cycles,
        hop_pj,
        prefill_cycles,
        summary,
    })
}

/// The layers of chip `c` (contiguous, `per_chip` each, the last chip the rest).
fn chip_layers(c: u64, per_chip: u64, n_layers: u64) -> std::ops::Range<usize> {
    let start = c * per_chip;
    start as usize..(start + per_chip).min(n_layers) as usize
}

/// The [`Packing`] of a paper-era packing (one stage per chip, every layer stationary).
fn packing_of(spec: &RingSpec, p: &PaperPacking, design: &RingDesign, n_layers: u64, out: &mut Packing) {
    out.chip = ChipConfig {
        n_cores: p.n_cores,
        n_dxt: p.n_cores.div_ceil(spec.chip().vacs_per_dxt),
        macs_per_vac: design.macs_per_vac,
        wmem_per_core: design.wmem_per_core,
        kv_per_core: p.kv_per_core,
    };
    out.n_chips = p.n_chips;
    out.stages.clear();
    out.placement.clear();
    for c in 0..p.n_chips {
        out.stages.push(Stage {
            first_chip: c,
            n_chips: 1,
            layers: chip_layers(c, p.layers_per_chip, n_layers),
        });
    }
    out.placement.resize(n_layers as usize, Placement::Stationary);
}

/// Packs and prices `design` under the paper-era model, leaving the packing in `out`.
pub(crate) fn pack_and_price(
    spec: &RingSpec,
    model: &RingModel,
    design: &RingDesign,
    out: &mut Packing,
) -> Option<Summary> {
    let layer = model.paper_layer?;
    let priced = price(spec, model, layer, design)?;
    packing_of(spec, &priced.packing, design, model.n_layers() as u64, out);
    Some(priced.summary)
}

/// The full report of `design` under the paper-era model (the packing is recomputed).
pub(crate) fn report(spec: &RingSpec, model: &RingModel, design: &RingDesign) -> Option<RingReport> {
    let priced = price(spec, model, model.paper_layer?, design)?;
    let Priced {
        layer,
        packing: pp,
        dec,
        pre,
        n_layers,
        hop_cycles,
        hop_pj,
        prefill_cycles,
        summary: s,
    } = priced;
    let mut packing = Packing::empty();
    packing_of(spec, &pp, design, n_layers as u64, &mut packing);
    let users = s.users;
    let prompt = s.prompt;
    let kv_layer = (layer.kv_bytes_per_token() * DECODE_CONTEXT) as f64 * users;
    let lb = layer.weight_bytes() as f64;
    // each layer's share of the TTFT: its decode-step part and 1/L of the prompt's work
    let pre_cycles = dec.cycles + prefill_cycles / n_layers;
    let layers: Vec<LayerReport> = (0..n_layers as usize)
        .map(|i| LayerReport {
            index: i,
            origin: LayerOrigin::Block(i),
            stage: i / pp.layers_per_chip as usize,
            placement: Placement::Stationary,
            weight_bytes: Bytes::new(lb),
            kv_bytes: Bytes::new(kv_layer),
            decode_step: PhaseCost {
                cycles: Cycles::new(dec.cycles),
                macs: dec.macs,
                dram_bytes: Bytes::ZERO,
                energy: dec.breakdown(1.0),
            },
            prefill: PhaseCost {
                cycles: Cycles::new(pre_cycles),
                macs: pre.macs,
                dram_bytes: Bytes::ZERO,
                energy: pre.breakdown(1.0),
            },
            prefill_cycles_per_token: Cycles::new(pre_cycles / prompt),
        })
        .collect();
    let act_bytes = layer.d_model as f64 * users;
    let mut stages = Vec::with_capacity(pp.n_chips as usize);
    let mut chips = Vec::with_capacity(pp.n_chips as usize);
    let mut links = Vec::with_capacity(pp.n_chips as usize);
    for (si, st) in packing.stages.iter().enumerate() {
        let k = st.layers.len() as f64;
        stages.push(StageReport {
            index: si,
            chips: st.first_chip..st.first_chip + 1,
            layers: st.layers.clone(),
            weight_bytes: Bytes::new(lb * k),
            kv_bytes: Bytes::new(kv_layer * k),
            decode_cycles: Cycles::new(dec.cycles * k),
            prefill_cycles_per_token: Cycles::new(pre_cycles * k / prompt),
            prefill_barrier_cycles: Cycles::ZERO,
        });
        chips.push(ChipReport {
            chip: st.first_chip,
            stage: si,
            decode_cycles: Cycles::new(dec.cycles * k),
            prefill_cycles_per_token: Cycles::new(pre_cycles * k / prompt),
        });
        if st.first_chip + 1 < pp.n_chips {
            links.push(LinkReport {
                from_chip: st.first_chip,
                to_chip: st.first_chip + 1,
                usage: LinkUse::Hop,
                bytes: Bytes::new(act_bytes),
                cycles: Cycles::new(hop_cycles),
                energy: Joules::pj(hop_pj),
            });
        }
    }
    let hops = (pp.n_chips - 1) as f64;
    let link = Joules::pj(hops * hop_pj);
    let decode_breakdown = EnergyBreakdown {
        link,
        ..dec.breakdown(n_layers)
    };
    let prefill_breakdown = EnergyBreakdown {
        link,
        ..pre.breakdown(n_layers)
    };
    let parts = ReportParts {
        chip_area: SquareMeters::new(s.area_m2 / pp.n_chips as f64),
        prefill_breakdown,
        decode_breakdown,
        layers,
        stages,
        chips,
        links,
        packing,
    };
    Some(RingReport::assemble(spec, model, design, &s, parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ring::gemm::gemm;

    /// SmolLM2-360M's layer: d 960, H 15, G 5, D 64, m 2560.
    fn smol() -> PaperLayer {
        PaperLayer {
            d_model: 960,
            heads: 15,
            groups: 5,
            d_head: 64,
            ffn_width: 2560,
        }
    }

    /// The paper-era chip: the reference spec with the SRAM-only area of ring-edge-paper.yaml.
    fn spec() -> RingSpec {
        let mut chip = *RingSpec::llmforge_reference().chip();
        chip.area.sram_per_byte = SquareMeters::um2(3.38793);
        let r = RingSpec::llmforge_reference();
        RingSpec::new(chip, *r.link(), *r.dram(), *r.envelope(), *r.packing()).unwrap()
    }

    fn chip(n_cores: u64) -> ChipConfig {
        ChipConfig {
            n_cores,
            n_dxt: n_cores / 16,
            macs_per_vac: 16,
            wmem_per_core: Bytes::kib(48.0),
            kv_per_core: Bytes::kib(8.0),
        }
    }

    fn close(a: f64, b: f64, rel: f64) {
        assert!((a - b).abs() <= rel * b.abs(), "{a} vs {b}");
    }

    #[test]
    fn gemm_cycles_with_and_without_stall() {
        // FC2 on 1024 cores, pe 16: n_cols = ceil(960/1024) = 1, k_tiles = 2560/16 = 160,
        // compute 160; one 16-B read per tile, 1 <= M*n_cols: only the first tile's read
        // stalls -> 161
        assert_eq!(gemm(1.0, 2560, 960, 1024, 16, 16).cycles, 161.0);
        // one K tile (QK_attn's K = 64 is 4 tiles; V_gen K 960 is 60): K = 16, N = 2048:
        // n_cols 2, compute 1*1*2 = 2, stall = the first tile's 2 reads -> 4
        assert_eq!(gemm(1.0, 16, 2048, 1024, 16, 16).cycles, 4.0);
        // port-bound tiles (a 64-MAC VAC, which the paper-era model never uses, shows the
        // formula's second term): K 128, N 8, 8 cores: 2 tiles of 64, compute 2, reads
        // ceil(64/16) = 4 per tile: stall = 4 + 1 * max(0, 4 - 1) = 7 -> 9
        assert_eq!(gemm(1.0, 128, 8, 8, 64, 16).cycles, 9.0);
    }

    #[test]
    fn softmax_unit_is_serial() {
        // H x ctx + 2d = 15 * 2048 + 2 * 960
        assert_eq!(softmax_unit_cycles(&smol(), 2048, 1), 32_640);
        assert_eq!(softmax_unit_cycles(&smol(), 2048, 3), 3 * 32_640);
        let no_attention = PaperLayer {
            heads: 0,
            groups: 0,
            d_head: 0,
            ..smol()
        };
        assert_eq!(softmax_unit_cycles(&no_attention, 2048, 1), 960);
    }

    // SmolLM2-360M's layer on 1024 cores at ctx 2048 (pe 16, 16-B port), per GEMM
    // (n_cols, k_tiles) -> cycles:
    //   QK_gen  1 x 960 x 1280       (2, 60)  -> 120 + 2   = 122
    //   V_gen   1 x 960 x 320        (1, 60)  ->  60 + 1   =  61
    //   QK_attn 3 x 64 x 2048, x5    (2, 4)   ->  24 + 2   =  26 x 5 =  130
    //   PV_attn 3 x 2048 x 64, x5    (1, 128) -> 384 + 1   = 385 x 5 = 1925
    //   O_proj  1 x 960 x 960        (1, 60)  ->  60 + 1   =  61
    //   FC1     1 x 960 x 2560       (3, 60)  -> 180 + 3   = 183
    //   FC2     1 x 2560 x 960       (1, 160) -> 160 + 1   = 161
    // GEMMs 2643 + softmax unit 32640 = 35283 cycles.
    #[test]
    fn decode_layer_cycles_by_hand() {
        let c = decode_layer(&spec(), &smol(), &chip(1024), 1);
        assert_eq!(c.cycles, 35_283.0);
        // the release's SmolLM2-360M TPOT: 32 layers + 6 hops of 10 + 960/16 cycles at 200 MHz
        let step = 32.0 * c.cycles + 6.0 * 70.0;
        assert_eq!(step, 1_129_476.0);
        close(step / 200e6, 5.64738e-3, 1e-12);
    }

    // The same layer's energy (pJ), by part:
    //   padded MACs: 1228800 + 307200 + 5*393216 + 5*393216 + 921600 + 960*2562 + 2457600
    //              = 11306880 (FC1: 3 columns on ceil(2560/3) = 854 cores, 2562 padded)
    //              x 0.2 = 2261376
    //   weight reads: 1228800 + 307200 + 921600 + 2459520 + 2457600 = 7374720 x 0.243
    //   K/V reads (as WMEM, no sharing): 5 * 131072 + 5 * 131072 = 1310720 x 0.243
    //   accumulator: 1280*119 + 320*119 + 5*3*2048*7 + 5*3*64*255 + 960*119 + 2562*119
    //              + 960*319 = 1375598 x 0.05
    //   head SRAM: 2240 + 1280 + 5*6336 + 5*6336 + 1920 + 3520 + 3520 = 75840 x 0.14
    //   softmax 2048 * 15 * 0.5; norms 2 * 960 * 0.3; KV write 5 * 128 * 0.24 * 1.06
    #[test]
    fn decode_layer_energy_by_part() {
        let c = decode_layer(&spec(), &smol(), &chip(1024), 1);
        close(c.macs, 11_306_880.0, 0.0);
        close(c.mac_pj, 11_306_880.0 * 0.2, 1e-12);
        close(c.wmem_pj, 7_374_720.0 * 0.243, 1e-12);
        close(c.kv_read_pj, 1_310_720.0 * 0.243, 1e-12);
        close(c.acc_pj, 1_375_598.0 * 0.05, 1e-12);
        close(c.head_pj, 75_840.0 * 0.14, 1e-12);
        close(c.softmax_norm_pj, 15_360.0 + 576.0, 1e-12);
        close(c.kv_write_pj, 640.0 * 0.24 * 1.06, 1e-12);
        // 32 layers + 6 hops of 8 * 960 pJ: the release's 143.00397555 uJ
        let e = 32.0 * c.energy_pj() + 6.0 * 7680.0;
        close(e, 143.003_975_552e6, 1e-9);
    }

    // Prefill of the layer, P = 256: MACs 7372800*256 + 2*64*15*256^2 = 2013265920 at
    // 0.07 pJ, the 7372800 weight bytes read once, 640 B of KV per token written.
    #[test]
    fn prefill_layer_by_hand() {
        let p = prefill_layer(&spec(), &smol(), 256, 1);
        assert_eq!(smol().weight_bytes(), 7_372_800);
        close(p.macs, 2_013_265_920.0, 0.0);
        close(p.mac_pj, 2_013_265_920.0 * 0.07, 1e-12);
        close(p.wmem_pj, 7_372_800.0 * 0.243, 1e-12);
        close(p.kv_write_pj, 640.0 * 256.0 * 0.24 * 1.06, 1e-12);
        assert_eq!(p.cycles, 0.0);
        // with 6 hops, the release's prefill energy (session_e_per_tok_uJ minus
        // energy_per_token_uJ, times D = 256): 4568.4264 uJ
        close(32.0 * p.energy_pj() + 6.0 * 7680.0, 4_568.426_422e6, 1e-9);
        // W = (256 + 32 - 1) * (7372800 + 64*15*256) / 0.6157
        close(
            prefill_work(&smol(), 32, 256, 1),
            287.0 * 7_618_560.0 / PREFILL_MAC_UTILISATION,
            1e-15,
        );
    }

    // SmolLM2-360M at 48 KiB WMEM per core: lb = 7372800 B; cores start at
    // next_pow2(ceil(7372800*1.15/49152) = 173) = 256 (floor(256*49152/1.15) = 10941773 B,
    // 1 layer a chip, 32 chips), 512 (2 a chip, 16 chips), 1024 (43767095 B: 5 a chip,
    // ceil(32/5) = 7 chips <= 8). KV: 5 layers * 640 B * 2048 * 1.15 / 1024 = 7360 B -> 8 KiB.
    // Area: 7 * 1024 * (48 + 8) KiB * 3.38793 um^2/B = 1392.58 mm^2.
    #[test]
    fn packing_of_smollm2_at_48_kib() {
        let s = spec();
        let design = RingDesign::new(16, 8, Bytes::kib(48.0)).unwrap();
        let p = pack(&s, &smol(), 32, &design, 1).unwrap();
        assert_eq!((p.n_cores, p.layers_per_chip, p.n_chips), (1024, 5, 7));
        assert_eq!(p.kv_per_core, Bytes::kib(8.0));
        let area = sram_area(&s, &p, design.wmem_per_core).as_mm2();
        close(area, 7.0 * 1024.0 * 57_344.0 * 3.38793e-6, 1e-12);
        close(area, 1392.58, 1e-6);
        // the last chip takes the rest: 5 x 6 + 2
        assert_eq!(chip_layers(6, 5, 32), 30..32);
        // a budget of 4 chips needs 2048 cores (87535190 B: 11 a chip, 3 chips)
        let four = RingDesign::new(16, 4, Bytes::kib(48.0)).unwrap();
        let p = pack(&s, &smol(), 32, &four, 1).unwrap();
        assert_eq!((p.n_cores, p.layers_per_chip, p.n_chips), (2048, 11, 3));
        // no doubling allowed: nothing fits 8 chips
        let none = s
            .with_packing(crate::sim::ring::PackingRules {
                core_doublings: 1,
                ..*s.packing()
            })
            .unwrap();
        assert!(pack(&none, &smol(), 32, &design, 1).is_none());
    }

    #[test]
    fn the_first_layer_sets_the_shape() {
        let m = crate::model::presets::preset("llmforge-eco-294m").unwrap();
        // layer 0 is attention-free (FFN 1024); attention from the first attention layer
        let w = crate::sim::ring::RingWorkload::llmforge_paper();
        let paper = crate::sim::ring::RingOptions::paper_era();
        let l = *RingModel::new(&m, &w, &paper).unwrap().paper_layer().unwrap();
        assert_eq!(
            l,
            PaperLayer {
                d_model: 960,
                heads: 15,
                groups: 5,
                d_head: 64,
                ffn_width: 1024,
            }
        );
        assert_eq!(l.gemms(1, 2048).len(), 7);
        let moe = crate::model::presets::preset("mixtral-8x7b").unwrap();
        assert!(matches!(
            RingModel::new(&moe, &w, &paper),
            Err(RingError::InvalidModel { .. })
        ));
    }
}
