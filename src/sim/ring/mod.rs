//! The multi-chip ring accelerator ("rDXE", LLMForge's featured substrate): an analytical
//! cost model of a decoder running weight-stationary on a ring of identical chips.
//!
//! In files: `kind: ring` substrates (`substrates/ring-edge.yaml`, the reference chip;
//! `substrates/ring-edge-cosearch.yaml`, with the 45-point grid declared in the file;
//! `substrates/ring-edge-paper.yaml`, the paper-era model with the same grid) load into
//! [`crate::substrate::Ring`]; [`crate::sim::ring_adapter`] runs them, and `sim::run` /
//! `llmforge sim` dispatch ring substrates there.
//!
//! Two timing models ([`RingTiming`], `ring.timing` in files):
//! - **corrected** (the default, described below): the corrected model from the LLMForge
//!   authors' later code, restated with every constant in `shared/reference/llmforge.md`;
//! - **paper_era** ([`paper_era`]): the model behind the paper's ring table, reconstructed from
//!   the release's saved results, kept to reproduce that table (every layer priced like the
//!   first, decode at ctx 2048, a serial softmax unit; see its docs for the formulas and how
//!   and why its figures differ).
//!
//! The corrected model's pipeline:
//!
//! 1. [`RingModel::from_blocks`] prepares a model once per workload from the operators of its
//!    decode graph, one step of all users (the ring reads no model layers: [`RingModel::new`]
//!    in [`crate::sim::ring_adapter`] validates a model and lowers one block per distinct
//!    layer; see [`prepare`]): per layer the INT8 weight bytes (d*Dqk*(H+G) + d*Dv*G + Dv*H*d + 3*d*m, 2*d*m for a
//!    non-gated FFN, no attention weights in attention-free layers) and the weight GEMMs
//!    (fused Q+K projection, V projection, output projection, FFN gate, up, down).
//! 2. [`packing`] places layers on chips (the reference's rule: core count per chip from the
//!    largest layer, doubled until the model fits max_chips, greedy contiguous fill).
//! 3. [`eval`] prices every GEMM with the analytical model of [`gemm`] (action counts times
//!    the energy table), the attention core per KV group reading K/V from the KV cache
//!    (M = H/G query rows share one read of the group's K and V, V reads x1.2), KV writes
//!    (x1.06), softmax and norm energy, link hops, leakage; then the ring step
//!    (TPOT = (sum of stage cycles + hops) / clock) and the token-pipelined prefill
//!    (every prompt token priced as a decode token at ctx = P/2; TTFT = fill + (P-1) x the
//!    slowest stage plus a hop).
//! 4. [`cosearch`] runs the grid of hardware genes and keeps the best design within the
//!    area and power envelope.
//!
//! Decisions (the paper leaves them open):
//! - *Cores and DXTs.* A core is one VAC of `pe` MACs; a chip of n cores has
//!   ceil(n / vacs_per_dxt) DXTs (head SRAMs). The reference chip is 8 DXT x 16 VAC.
//! - *Envelope.* Area is the total silicon (n_chips x chip area), power the larger of the
//!   prefill and decode average powers (energy / time of each phase).
//! - *Core doublings.* "Doubled up to 6 times" = 7 candidates, start .. start x 64.
//! - *Largest chip KV.* The KV of a chip's attention layers at context P + D for all users.
//! - *Decode context.* [`DecodeContext::Midpoint`] (paper-comparable) prices one step at
//!   ctx = P + D/2; [`DecodeContext::Average`] averages the D steps exactly.
//! - *Energy per token.* `energy_per_token_paper` = (E_prefill + D*E_step)/(P + D);
//!   `energy_per_generated_token` = (E_prefill + D*E_step)/D; `decode_step_energy` = E_step.
//! - *Prefill energy.* P x (dynamic energy of one token step at P/2, hops included) plus the
//!   leakage of all chips over the TTFT.
//! - *Norms.* 0.3 pJ per element for each norm of a block: 2 x d per token with attention,
//!   1 x d without (and 1 x d with a parallel residual). Peri-LN's extra norms are not priced,
//!   as in the paper's formula. Softmax and norms take no cycles.
//! - *Global SRAM.* Its 0.17 pJ/B is in the spec but priced nowhere: the corrected model has
//!   no global-SRAM traffic.
//! - *MoE.* All experts stationary (their bytes are packed); per token step the router and
//!   the expected distinct routed experts for u users, E*(1-(1-a/E)^u), each on u*a/touched
//!   rows, plus the shared experts, are computed.
//! - *Weight format.* The ring is an INT8 machine: 1 byte per weight, per KV element and per
//!   activation, whatever the model's own precision.
//! - *LM head and embedding.* The paper ignores them ([`LmHead::Excluded`], paper numbers);
//!   [`LmHead::Included`] adds the LM head as one more layer (V*d bytes, d -> V GEMM, final
//!   norm) packed like any other, plus a d-byte embedding-row DRAM read per token.
//!
//! Extensions beyond the reference (see [`packing`]; off in [`RingOptions::corrected`]):
//! - *DRAM spill* (`spill_to_dram`): layers that find no chip stream their weights from DRAM
//!   every decode step (64 pJ/B; GEMM cycles = max(compute, bytes / DRAM bandwidth)); in the
//!   prefill they are batched over the whole prompt (weights read once, M = P x u rows) and
//!   run after the pipeline drains.
//! - *Tensor parallelism* (`tensor_parallel`): a layer larger than one chip (possible only
//!   with `max_cores_per_chip`) is split over k chips, column-parallel Q/K/V/gate/up and
//!   row-parallel output/down projections, KV groups divided over the chips; per token the
//!   input is broadcast along the group and each all-reduce point costs a ring all-reduce
//!   (2(k-1) steps of bytes/k; each chip sends 2(k-1)/k x bytes). When both are allowed,
//!   both packings are priced and the one with the lower objective is kept.
//!
//! - *Chip size* ([`ChipSizing`], reference "Packing"). The reference starts the core count at
//!   next_pow2(ceil(largest_layer*1.15/wmem_per_core)), "doubled up to 6 times", keeps "the
//!   packing with the smallest n_chips x chip area" and rejects "configs needing more than
//!   max_chips". Read as "price all 7 candidates, keep the least silicon"
//!   ([`ChipSizing::SmallestTotalArea`]) the rule is degenerate: doubling the cores halves the
//!   chips, so the total silicon of every candidate is the same to within the per-chip global
//!   SRAM (0.005 mm^2 of ~600 mm^2) and that crumb picks the *fewest, largest* chips. SmolLM2-360M
//!   then lands on one 16,384-core, 615 mm^2 die, no design ever uses the max_chips the
//!   co-search varies (8, 16 or 32 give the same packing), and whether a model's prefill
//!   pipelines over several chips depends on greedy-fill rounding (Eco-294M: 3 chips, SmolLM2:
//!   1, TTFT 6.1 vs 22.9 ms). We read "up to 6 times" as a stopping rule
//!   ([`ChipSizing::SmallestFitting`], the default): double only while the packing needs more
//!   than max_chips, i.e. the smallest die that holds the model within the design's chip
//!   budget. That is what an architect building a *multi-chip* ring does (at equal silicon,
//!   smaller dies yield better and pipeline the prefill), it makes max_chips a live gene of
//!   the co-search, and it reproduces the paper's scale: SmolLM2-360M on 8 chips of 2048 cores
//!   (the paper-era model: 7 chips). The area rule still ranks design points; the old reading
//!   stays selectable (`packing.chip_sizing: smallest_total_area`).
//!
//! What the rules imply (measured with the reference constants, P = D = 256, u = 1, the
//! 45-point energy co-search):
//! - Every model picks 64 MACs/VAC, 24 KiB WMEM/core and the 8-chip budget: 24 KiB is the
//!   shallowest WMEM (energy per byte scales with depth^0.78: 48 KiB costs +72% per WMEM
//!   byte), 64-MAC VACs need the fewest accumulator read-modify-writes, and 16 or 32 smaller
//!   chips pipeline the prefill faster but decode slower, so their leakage over the 256 decode
//!   steps costs more than the prefill saves (SmolLM2: 149.4 / 150.5 / 153.7 uJ per token).
//! - Decode energy is ~one WMEM byte read plus one MAC per weight (0.443 pJ/B), within a few
//!   percent; the 100 W power envelope never binds for these models (< 10 W). Energy per
//!   token therefore follows the weight bytes: Eco-294M is lowest (115.7 uJ vs 149.4 for
//!   SmolLM2-360M, -23%; the paper reports -40%).
//! - Latency is not a bandwidth sum but a chain of GEMM latencies: a 64-MAC VAC reads its
//!   64-byte K tile through a 16 B/cycle WMEM port, so every weight GEMM takes about
//!   ceil(N/n_cores) x K/16 cycles however many cores the chip has, and one token step is
//!   ~600 to 800 cycles per layer. TPOT is therefore ~0.1 ms (the paper-era 5.6 ms, which its
//!   authors superseded, comes from a serial softmax unit of H x 2048 cycles per layer, see
//!   [`paper_era`])
//!   and it follows the number and width of the layers: Eco-294M (27 layers, d 960) decodes
//!   faster than Fast-365M (32 layers, d 1088), whose fewer heads (196 vs 301 across the
//!   model) save attention cycles that are only ~20% of a step at ctx <= 512: on 2048-core
//!   chips with 64-MAC VACs an attention layer of SmolLM2 or Eco takes 588 weight + 170
//!   attention cycles at ctx 384, one of Fast 608 + 128 (its wider d costs K tiles). TTFT is
//!   P x the slowest stage, 4 layers on every 8-chip design, so all three variants and
//!   SmolLM2 land within 1.3% of each other (3.61 to 3.66 ms). Fast being the lowest-latency
//!   variant does not reproduce at the paper's P = D = 256; its fewer heads do win the
//!   prefill once attention weighs more (lowest TTFT of the five from P = D = 1024 on, where
//!   Eco still decodes fastest).

pub mod cosearch;
pub mod eval;
pub mod gemm;
pub mod packing;
pub mod paper_era;
pub mod prepare;
/// The ring's hardware description lives in `substrate` (it needs nothing of the cost model).
pub use crate::substrate::ring_spec as spec;
pub mod workload;

pub use cosearch::{
    CoSearchResult, DesignGrid, GridDim, GridPoint, GridValue, PointOutcome, RingGrid, co_search,
    co_search_best,
};
pub use eval::{
    ChipReport, EnergyBreakdown, LayerReport, LinkReport, LinkUse, PhaseCost, RingReport, StageReport,
    evaluate,
};
pub use packing::{Oversize, Packing, Placement, Stage};
pub use prepare::{LayerOrigin, RingBlock, RingEnds, RingModel};
pub use spec::{
    ChipConfig, ChipSizing, DecodeContext, Envelope, LmHead, Objective, PackingRules, RingArea, RingChip,
    RingDesign, RingDram, RingEnergy, RingLeakage, RingLink, RingOptions, RingSpec, RingSpecError,
    RingTiming,
};
pub use workload::RingWorkload;

use crate::units::Bytes;

/// Errors of the ring model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RingError {
    // --- descriptions ---
    /// Occurs when the hardware description, a design point or the options are out of range.
    #[error(transparent)]
    Spec(#[from] RingSpecError),
    /// Occurs when a workload parameter is out of range.
    #[error("ring workload: `{field}` {message}")]
    InvalidWorkload { field: &'static str, message: String },
    /// Occurs when a co-search grid is malformed.
    #[error("ring grid: {message}")]
    InvalidGrid { message: String },
    /// Occurs when the model fails validation.
    #[error("model `{model}` is invalid: {message}")]
    InvalidModel { model: String, message: String },
    // --- results ---
    /// Occurs when no packing of the model fits the design and spilling is off.
    #[error(
        "model `{model}` ({weight_bytes} of INT8 weights) does not fit {} chips with {} MACs/VAC and {} WMEM/core (spilling to DRAM is off)",
        design.max_chips, design.macs_per_vac, design.wmem_per_core
    )]
    DoesNotFit {
        model: String,
        design: RingDesign,
        weight_bytes: Bytes,
    },
    /// Occurs when no grid point can hold the model.
    #[error("model `{model}` fits none of the {points} grid points (spilling to DRAM is off)")]
    NothingFits { model: String, points: usize },
}
