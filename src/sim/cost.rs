//! Per-kernel costs: what one operator (or one fused kernel) costs on a substrate, under the
//! roofline bound and under the cycle-approximate models of `gpu.rs` and `systolic_map.rs`.
//!
//! # Kernels
//! On GPUs the attention core of a block (`attn_scores`, `softmax`, `attn_pv`) is one fused
//! flash-attention kernel: the score and probability matrices never leave the SMs, one launch
//! overhead is paid, and the kernel's time is its matrix plus vector work against its memory
//! traffic (Q, K, V or the KV cache in, O out). Every other op is its own kernel. Systolic
//! substrates run each op separately (the array, then the vector unit for the softmax). Both
//! engines use the same grouping, so their per-kernel figures compare one to one.
//!
//! # DRAM traffic (the activation assumption)
//! Weights and the KV cache always come from (and KV writes go to) DRAM: nothing persists on
//! chip across operators or decode steps. Activations are the tensors passed between
//! operators: a kernel's activations (inputs plus outputs, fused intermediates excluded)
//! stay on chip when they fit the on-chip capacity (GPU: L2; systolic: the SRAM buffers), so
//! they cost no DRAM traffic; when they do not fit, all of them go through DRAM. The roofline
//! prices exactly this compulsory traffic. The cycle models add what their mappings re-fetch
//! (GPU operand panels the L2 does not keep between tiles, see `gpu.rs`; the systolic GEMM
//! model streams its operands and outputs through DRAM as its SRAM policy dictates).
//!
//! # Precision
//! The model's formats are resolved on the substrate once per run
//! ([`crate::substrate::Substrate::resolve`]): every matrix op computes in the native type of
//! its kind of GEMM (weights or attention) and every tensor is stored, read and written at its
//! real bits (a Q4_0 weight is 4.5 bits in DRAM on every substrate kind; the systolic model
//! prices the filter operand at its own width). On a systolic array a GEMM whose filter
//! operand is stored narrower than the arithmetic (int4 or GGUF weights on an int8 array) has
//! it dequantised by the vector unit in the load path: `vector.dequantise_ops` per stored
//! byte at `vector.ops_per_cycle` times `efficiency.memory` (a stage of the DRAM stream, so
//! it slows with it), beside the array; the GEMM takes at least that pass (both engines).
//! Priced per stored byte, a narrower format never dequantises for longer than a wider one.
//!
//! # Roofline
//! `time = max(compute, memory) + overhead` with `compute = FLOPs / (eta_c * peak)` (matrix
//! peak of the op's native arithmetic, or the vector peak; a fused kernel adds its matrix and
//! vector parts) and `memory = DRAM bytes / (eta_m * bandwidth)`; a GEMM over weights stored
//! narrower than its arithmetic takes at least its dequantisation pass, a stage of the weight
//! stream (on a GPU one pass over its weights at the vector peak times `eta_m`, `gpu.rs`; on a
//! systolic array beside the DRAM reads, above); systolic substrates have separate
//! read and write channels, so their memory time is the larger of reads / read bandwidth and
//! writes / write bandwidth. `overhead` is the substrate's kernel overhead.

use super::result::{Bound, Energy, Resource};
use super::systolic::{ActionEnergies, DramBandwidth, SystolicArray, SystolicConfig};
use crate::graph::{Op, OpKind, Unit};
use crate::numeric::{ComputeClass, Precisions};
use crate::substrate::{Efficiency, Kind, PrecisionError, ResolvedPrecision, Rule, Substrate, Systolic};
use crate::units::{Bytes, Joules, Seconds};

/// The cost of one kernel (one op or a fused group).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Resource the kernel's main phase occupies.
    pub resource: Option<Resource>,
    /// Arithmetic time, without memory stalls.
    pub compute: Seconds,
    /// Transfer time of its DRAM (and on-chip) traffic, were nothing else limiting.
    pub memory: Seconds,
    /// Fixed launch / dispatch cost.
    pub overhead: Seconds,
    /// Prefetchable load before the main phase (systolic first-fold operands).
    pub fill: Seconds,
    /// Time the unit is busy: overhead plus compute, stalls inside the kernel included.
    pub main: Seconds,
    /// DRAM read / write channel time during the main phase (systolic).
    pub stream_read: Seconds,
    pub stream_write: Seconds,
    /// Write-back after the main phase (systolic last outputs).
    pub drain: Seconds,
    pub dram_bytes: Bytes,
    /// Energy without the static part (added from the schedule's makespan).
    pub energy: Energy,
}

impl Cost {
    /// Every field times `n` (sums of identical kernels).
    pub fn scaled(&self, n: f64) -> Cost {
        Cost {
            resource: self.resource,
            compute: self.compute * n,
            memory: self.memory * n,
            overhead: self.overhead * n,
            fill: self.fill * n,
            main: self.main * n,
            stream_read: self.stream_read * n,
            stream_write: self.stream_write * n,
            drain: self.drain * n,
            dram_bytes: self.dram_bytes * n,
            energy: self.energy * n,
        }
    }
    /// Field-wise sum.
    pub fn add(&mut self, o: &Cost) {
        self.resource = self.resource.or(o.resource);
        self.compute += o.compute;
        self.memory += o.memory;
        self.overhead += o.overhead;
        self.fill += o.fill;
        self.main += o.main;
        self.stream_read += o.stream_read;
        self.stream_write += o.stream_write;
        self.drain += o.drain;
        self.dram_bytes += o.dram_bytes;
        self.energy += o.energy;
    }
    /// The kernel's own duration, alone on the machine.
    pub fn time(&self) -> Seconds {
        let main = self
            .main
            .max(self.overhead + self.stream_read)
            .max(self.overhead + self.stream_write);
        self.fill + main + self.drain
    }
    pub fn bound(&self) -> Bound {
        Bound::classify(self.compute, self.memory, self.overhead)
    }
}

/// Bits of a compute class, for energy scaling (energies are given for 16-bit arithmetic).
pub fn class_bits(c: ComputeClass) -> f64 {
    c.bits()
}

/// Whether `op` is an attention GEMM (activations x KV cache) rather than a GEMM over weights.
pub fn is_attention(op: &Op) -> bool {
    matches!(op.name, "attn_scores" | "attn_pv")
}

/// Sets a matrix op's arithmetic to the native type the substrate runs it at (the resolved
/// weight- or attention-GEMM type); other ops are left as they are.
pub fn bind(op: &mut Op, r: &ResolvedPrecision) {
    if op.unit == Unit::Matrix {
        op.compute = if is_attention(op) {
            r.attention_gemm
        } else {
            r.weight_gemm
        };
    }
}

/// Activation bytes of a kernel in and out, and of those the fused intermediates to leave out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub weights: f64,
    pub kv_read: f64,
    pub kv_write: f64,
    pub act_in: f64,
    pub act_out: f64,
}

impl Traffic {
    /// Traffic of a kernel made of `ops` (one op, or the three of an attention core, whose
    /// score / probability tensors stay on chip).
    pub fn of(ops: &[&Op]) -> Traffic {
        let mut t = Traffic::default();
        for op in ops {
            t.weights += op.reads.weights.get() + op.writes.weights.get();
            t.kv_read += op.reads.kv_cache.get();
            t.kv_write += op.writes.kv_cache.get();
            t.act_in += op.reads.activations.get();
            t.act_out += op.writes.activations.get();
        }
        if ops.len() == 3 {
            // scores -> softmax -> pv: the scores (written by 0, read by 1) and the
            // probabilities (written by 1, read by 2) are internal.
            let internal = ops[0].writes.activations.get() + ops[1].writes.activations.get();
            t.act_in -= internal;
            t.act_out -= internal;
        }
        t
    }
    pub fn activations(&self) -> f64 {
        self.act_in + self.act_out
    }
}

/// Prices kernels on one substrate. Built once per run; holds the arrays and constants.
#[derive(Clone, Debug)]
pub struct Mapper<'s> {
    pub substrate: &'s Substrate,
    /// On-chip capacity for activations: GPU L2, systolic SRAM buffers.
    pub onchip: f64,
    /// The model's formats on this substrate: storage per role, GEMM arithmetic, rules.
    pub precision: ResolvedPrecision,
    /// Why the pair is rejected, when it is ([`Substrate::resolve`]); it is then priced with
    /// the rejected formats quantised to the substrate's narrowest native type.
    pub rejected: Option<PrecisionError>,
    /// Bytes per stored weight, activation and KV-cache element.
    pub weight_bytes: f64,
    pub activation_bytes: f64,
    pub kv_bytes: f64,
    /// Whether some GEMM has a filter to dequantise on a systolic array (see
    /// [`Self::dequantise_ops`]).
    pub dequantises: bool,
    /// Systolic arrays (at the substrate's efficiencies) for weight GEMMs and attention GEMMs:
    /// activations as ifmap and ofmap at their width, the weights or the KV cache as filter.
    pub arrays: Option<(SystolicArray, SystolicArray)>,
}

/// The two cost models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Roofline,
    Sim,
}

impl<'s> Mapper<'s> {
    /// A mapper for a model stored in `precision` (resolved here; see [`Self::resolved`]).
    pub fn new(substrate: &'s Substrate, precision: &Precisions) -> Mapper<'s> {
        let (r, rejected) = substrate.resolve_forced(precision);
        Mapper::resolved(substrate, r, rejected)
    }

    /// A mapper for formats already resolved on `substrate`. The ops it prices must be
    /// lowered from the stored formats (`r.stored()`) and bound to the native arithmetic
    /// ([`bind`]).
    pub fn resolved(
        substrate: &'s Substrate,
        r: ResolvedPrecision,
        rejected: Option<PrecisionError>,
    ) -> Mapper<'s> {
        let onchip = match &substrate.kind {
            Kind::Gpu(g) => g.l2_size.get(),
            Kind::Systolic(s) => {
                let (i, f, o) = s.buffers.split_bytes();
                i + f + o
            }
            // ring: priced by sim::ring_adapter; a Mapper built directly sees on-chip memory
            Kind::Ring(r) => r.onchip_capacity().get(),
        };
        let stored = r.stored();
        let (wb, ab, kb) = (
            stored.weights.bytes(),
            stored.activations.bytes(),
            stored.kv_cache.bytes(),
        );
        let eff = substrate.efficiency;
        let arrays = match &substrate.kind {
            Kind::Systolic(s) => {
                let base = array(s, ab).with_efficiency(eff.compute, eff.memory);
                Some((
                    base.with_filter_word(Bytes::new(wb)),
                    base.with_filter_word(Bytes::new(kb)),
                ))
            }
            Kind::Gpu(_) | Kind::Ring(_) => None,
        };
        let dequantises = matches!(substrate.kind, Kind::Systolic(_))
            && [r.weights.rule, r.kv_cache.rule]
                .iter()
                .any(|rule| matches!(rule, Rule::Dequantised(_)));
        Mapper {
            substrate,
            onchip,
            precision: r,
            rejected,
            dequantises,
            weight_bytes: wb,
            activation_bytes: ab,
            kv_bytes: kb,
            arrays,
        }
    }

    /// Whether attention cores are fused into one kernel.
    pub fn fuses_attention(&self) -> bool {
        matches!(self.substrate.kind, Kind::Gpu(_))
    }

    /// Whether kernels run one after another on one stream (GPU eager execution).
    pub fn serial(&self) -> bool {
        matches!(self.substrate.kind, Kind::Gpu(_))
    }

    pub fn eff(&self) -> Efficiency {
        self.substrate.efficiency
    }

    /// The efficiency a kernel runs at: a GEMM over weights stored narrower than its
    /// arithmetic (block-quantised, dequantised on the fly) reaches `quantised_compute` of the
    /// compute fraction.
    pub fn eff_for(&self, ops: &[&Op]) -> Efficiency {
        let e = self.eff();
        match ops {
            [op] if self.quantised_gemm(op) => Efficiency {
                compute: e.compute * e.quantised_compute,
                ..e
            },
            _ => e,
        }
    }

    /// A GEMM over weights stored narrower than its arithmetic and narrower than 16 bits
    /// (block-quantised or integer weights that need scales applied; a 16-bit weight under
    /// 32-bit arithmetic only widens).
    pub fn quantised_gemm(&self, op: &Op) -> bool {
        matches!(op.kind, OpKind::Gemm { .. })
            && op.reads.weights.get() > 0.0
            && matches!(self.precision.weights.rule, Rule::Dequantised(_))
    }

    /// Vector-unit operations that dequantise the filter operand of a systolic GEMM stored
    /// narrower than its arithmetic (weights, or the KV cache of an attention GEMM): its
    /// stored bytes times `vector.dequantise_ops`; 0 for other ops and substrates.
    #[inline]
    pub fn dequantise_ops(&self, op: &Op) -> f64 {
        if !self.dequantises {
            return 0.0;
        }
        let Kind::Systolic(s) = &self.substrate.kind else {
            return 0.0;
        };
        if op.unit != Unit::Matrix || !matches!(op.kind, OpKind::Gemm { .. }) {
            return 0.0;
        }
        let (rule, bytes) = if is_attention(op) {
            (self.precision.kv_cache.rule, op.reads.kv_cache.get())
        } else {
            (self.precision.weights.rule, op.reads.weights.get())
        };
        match rule {
            Rule::Dequantised(_) => bytes * s.dequantise_ops,
            _ => 0.0,
        }
    }

    /// Seconds of a systolic dequantisation pass of `ops` vector operations (see
    /// [`Self::dequantise_ops`]); 0 elsewhere.
    pub fn dequantise_time(&self, ops: f64) -> f64 {
        match &self.substrate.kind {
            Kind::Systolic(s) if ops > 0.0 => {
                ops / (s.vector_ops_per_cycle * self.eff().memory * s.clock.get())
            }
            _ => 0.0,
        }
    }

    /// The matrices a weight GEMM stands for, as `(copies, rows of each)`, where it stands for
    /// more than one: a mixture's shared experts (FLOPs and weights both `s` times one
    /// matrix's: `s` GEMMs over all the rows) and its routed experts (the pass's `t * active`
    /// rows spread over the `touched` experts, each expert's weights read once: a grouped GEMM
    /// of `touched` members, rounded, over their share of the rows). `None` for a GEMM of one
    /// matrix (or of none: attention). The GEMM mappers run the copies as the members of a
    /// batched GEMM, each with its own weight operand, as grouped-GEMM MoE kernels do; priced
    /// as one GEMM over all the rows, a routed GEMM would read every touched expert's weights
    /// once per tile row.
    pub fn weight_groups(&self, op: &Op) -> Option<(u64, u64)> {
        let OpKind::Gemm { m, n, k, batch } = op.kind else {
            return None;
        };
        let weights = op.reads.weights.get();
        // in f64: a hostile shape must not overflow the products
        let one = k as f64 * n as f64 * self.weight_bytes;
        if batch != 1 || weights <= 0.0 || one <= 0.0 {
            return None;
        }
        // A bias (n more weights) is not a matrix: a one-matrix GEMM of small K with a bias
        // would otherwise count as two.
        let bias = n as f64 * self.weight_bytes;
        let copies = ((((weights - bias) / one) - 0.05).ceil() as u64).max(1);
        let mnk = 2.0 * m as f64 * n as f64 * k as f64;
        let flop_copies = if mnk > 0.0 {
            ((op.flops.get() / mnk).round() as u64).max(1)
        } else {
            1
        };
        (copies > 1).then(|| (copies, m.saturating_mul(flop_copies).div_ceil(copies)))
    }

    /// `op` with its shape as the GEMM mappers run it: a GEMM standing for several matrices
    /// (see [`Self::weight_groups`]) as the batched GEMM of its copies.
    pub fn grouped(&self, op: &Op) -> Option<Op> {
        let (copies, rows) = self.weight_groups(op)?;
        let OpKind::Gemm { n, k, .. } = op.kind else {
            return None;
        };
        let mut g = op.clone();
        g.kind = OpKind::Gemm {
            m: rows,
            n,
            k,
            batch: copies,
        };
        Some(g)
    }

    /// DRAM bytes of the attention-score matrix a stack that does not fuse attention moves
    /// (`score_bytes` per score element), for a fused attention kernel `ops`; 0 otherwise.
    pub fn score_traffic(&self, ops: &[&Op]) -> f64 {
        let per = self.eff().score_bytes.get();
        if ops.len() != 3 || per <= 0.0 || self.activation_bytes <= 0.0 {
            return 0.0;
        }
        per * ops[0].writes.activations.get() / self.activation_bytes
    }

    /// DRAM activation bytes (in, out) under the on-chip rule.
    pub fn dram_activations(&self, t: &Traffic) -> (f64, f64) {
        if t.activations() <= self.onchip {
            (0.0, 0.0)
        } else {
            (t.act_in, t.act_out)
        }
    }

    /// Cost of a kernel of `ops` (1 op, or the 3 of an attention core) under `model`.
    /// `heads_per_group` is the GQA grouping of attention GEMMs (see `ProgOp`).
    pub fn cost(&self, model: Model, ops: &[&Op], heads_per_group: u64) -> Cost {
        match model {
            Model::Roofline => self.roofline(ops),
            Model::Sim => match &self.substrate.kind {
                Kind::Gpu(g) => {
                    let grouped = match ops {
                        [op] => self.grouped(op),
                        _ => None,
                    };
                    let ops = match &grouped {
                        Some(op) => &[op][..],
                        None => ops,
                    };
                    super::gpu::cost(
                        g,
                        self.eff_for(ops),
                        self.onchip,
                        ops,
                        self.score_traffic(ops),
                        ops.len() == 1 && self.quantised_gemm(ops[0]),
                        heads_per_group,
                    )
                }
                Kind::Systolic(s) => super::systolic_map::cost(self, s, ops, heads_per_group),
                Kind::Ring(_) => self.roofline(ops),
            },
        }
    }

    /// The roofline's affine pieces of a kernel: (compute, first memory term, second memory
    /// term, overhead); the kernel time is `overhead + max(compute, max(mem_a, mem_b))`.
    /// Systolic substrates: reads and writes on their channels; GPUs: all traffic, and 0.
    pub fn roofline_parts(&self, ops: &[&Op]) -> [f64; 4] {
        let c = self.roofline(ops);
        let (a, b) = match &self.substrate.kind {
            Kind::Gpu(_) | Kind::Ring(_) => (c.memory.get(), 0.0),
            Kind::Systolic(_) => (c.stream_read.get(), c.stream_write.get()),
        };
        [c.compute.get(), a, b, c.overhead.get()]
    }

    /// The roofline of a kernel (see the module docs). For systolic substrates
    /// `stream_read` / `stream_write` carry the read and write channel times (informational:
    /// the roofline does not schedule channels).
    pub fn roofline(&self, ops: &[&Op]) -> Cost {
        let eff = self.eff_for(ops);
        let sub = &self.substrate;
        let t = Traffic::of(ops);
        let (ai, ao) = self.dram_activations(&t);
        let (mut matrix_flops, mut vector_flops) = (0.0, 0.0);
        let mut compute = 0.0;
        // A GPU dequantises block-quantised weights on its vector units, once per weight at
        // least (the simulator: once per tile row), as a stage of the weight stream (gpu.rs).
        let mut gpu_dequant = 0.0;
        if let (Kind::Gpu(_), [op]) = (&sub.kind, ops)
            && self.quantised_gemm(op)
            && let OpKind::Gemm { n, k, batch, .. } = op.kind
        {
            // every weight matrix the GEMM stands for (a mixture's touched experts)
            let matrices = self.weight_groups(op).map_or(batch, |(copies, _)| copies);
            let f = super::gpu::DEQUANT_OPS * (n as f64 * k as f64 * matrices as f64);
            vector_flops += f;
            gpu_dequant = f / (eff.memory * sub.vector_peak().get());
        }
        let mut dequantise = 0.0;
        for op in ops {
            let f = op.flops.get();
            match op.unit {
                Unit::Matrix => {
                    matrix_flops += f;
                    dequantise += self.dequantise_ops(op);
                    compute += f / (eff.compute * sub.matrix_peak(op.compute).get());
                }
                Unit::Vector => {
                    vector_flops += f;
                    compute += f / (eff.compute * sub.vector_peak().get());
                }
                // no collective reaches an engine (the placed graph is the system path's)
                Unit::Memory | Unit::Link => {}
            }
        }
        // A materialised score matrix (stacks without fused attention) goes through DRAM;
        // split evenly between reads and writes.
        let scores = self.score_traffic(ops);
        let reads = t.weights + t.kv_read + ai + scores / 2.0;
        let writes = t.kv_write + ao + scores / 2.0;
        let dram = reads + writes;
        let all_bytes = t.weights + t.kv_read + t.kv_write + t.activations();
        let class = ops[0].compute;
        let (memory, read_t, write_t, energy) = match &sub.kind {
            Kind::Gpu(g) => {
                let scale = class_bits(class) / 16.0;
                (
                    (dram / (eff.memory * g.memory_bandwidth.get())).max(gpu_dequant),
                    0.0,
                    0.0,
                    Energy {
                        compute: g.energy.matrix_flop * (matrix_flops * scale)
                            + g.energy.vector_flop * vector_flops,
                        onchip: g.energy.l2_byte * all_bytes,
                        dram: g.energy.dram_byte * dram,
                        static_: Joules::ZERO,
                    },
                )
            }
            Kind::Systolic(s) => {
                let rd = s.dram_read.get() * s.clock.get();
                let wr = s.dram_write.get() * s.clock.get();
                // the dequantisation pass streams beside the DRAM reads (module docs)
                (
                    ((reads / rd).max(writes / wr) / eff.memory).max(self.dequantise_time(dequantise)),
                    reads / rd / eff.memory,
                    writes / wr / eff.memory,
                    Energy {
                        compute: s.energy.mac * (matrix_flops / 2.0)
                            + s.energy.vector_op * (vector_flops + dequantise),
                        onchip: s.energy.sram_byte * all_bytes,
                        dram: s.energy.dram_byte * dram,
                        static_: Joules::ZERO,
                    },
                )
            }
            Kind::Ring(r) => super::ring_adapter::roofline(r, matrix_flops, vector_flops, &t, eff),
        };
        let overhead = eff.kernel_overhead;
        let (compute, memory) = (Seconds::new(compute), Seconds::new(memory));
        Cost {
            resource: Some(Resource::of_unit(ops[0].unit)),
            compute,
            memory,
            overhead,
            fill: Seconds::ZERO,
            main: overhead + compute.max(memory),
            stream_read: Seconds::new(read_t),
            stream_write: Seconds::new(write_t),
            drain: Seconds::ZERO,
            dram_bytes: Bytes::new(dram),
            energy,
        }
    }
}

/// Static (GPU) or leakage (systolic) power.
pub fn static_power(s: &Substrate) -> crate::units::Watts {
    match &s.kind {
        Kind::Gpu(g) => g.energy.static_power,
        Kind::Systolic(s) => s.energy.leakage,
        Kind::Ring(r) => super::ring_adapter::leakage_power(r),
    }
}

/// `kind` name of a kernel for records.
pub fn kind_name(ops: &[&Op]) -> &'static str {
    if ops.len() == 3 {
        return "fused_attention";
    }
    match ops[0].kind {
        OpKind::Gemm { .. } => "gemm",
        OpKind::Gather { .. } => "gather",
        OpKind::Elementwise { .. } => "elementwise",
        OpKind::KvWrite { .. } => "kv_write",
        OpKind::Collective { .. } => "collective",
    }
}

/// Action energies of a systolic substrate for the GEMM model (leakage added per phase).
pub fn systolic_actions(s: &Systolic) -> ActionEnergies {
    ActionEnergies {
        mac: s.energy.mac,
        sram_byte: s.energy.sram_byte,
        dram_byte: s.energy.dram_byte,
        leakage: crate::units::Watts::ZERO,
    }
}

/// A systolic array of substrate `s` for `word` bytes per element and 32-bit partial sums.
pub fn array(s: &Systolic, word: f64) -> SystolicArray {
    let cfg = SystolicConfig {
        rows: s.rows,
        cols: s.cols,
        dataflow: s.dataflow,
        buffers: s.buffers,
        dram: DramBandwidth {
            read: s.dram_read,
            write: s.dram_write,
        },
        word_bytes: Bytes::new(word),
        acc_bytes: Bytes::new(4.0),
        mode: s.mode,
    };
    // A validated substrate has positive dimensions and bandwidths, and a model precision
    // has a positive size, so this cannot fail; an 8-bit word is the fallback regardless.
    SystolicArray::new(cfg).unwrap_or_else(|_| {
        SystolicArray::new(SystolicConfig {
            word_bytes: Bytes::new(1.0),
            ..cfg
        })
        .unwrap_or(SystolicArray::gemmini(s.mode))
    })
}

// ---------------------------------------------------------------------------------------
// Collectives on an interconnect (`dsl/SYSTEMS.md`, "How collectives are priced").

/// What one collective costs: its time on the critical path and the bytes it puts on each
/// link (both directions added), with each link's busy time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectiveCost {
    pub time: Seconds,
    /// `(link index, bytes crossing it, busy time)`; link indices as [`system_links`].
    pub links: Vec<(usize, f64, f64)>,
}

impl CollectiveCost {
    /// Bytes crossing links, summed over links.
    pub fn link_bytes(&self) -> f64 {
        self.links.iter().map(|l| l.1).sum()
    }
}

/// The links of a topology of `count` devices, by index: each with the two ends' names
/// (`d3`, `switch`). Ring: link `i` joins `i` and `i + 1` (the last closes the ring; 2
/// devices have 1 link). Switch: link `i` joins device `i` and the switch. Mesh: the
/// horizontal links row by row, then the vertical ones.
pub fn system_links(topology: crate::system::Topology, count: u64) -> Vec<(String, String)> {
    use crate::system::Topology;
    let d = |i: u64| format!("d{i}");
    match topology {
        Topology::Ring => match count {
            0 | 1 => vec![],
            2 => vec![(d(0), d(1))],
            n => (0..n).map(|i| (d(i), d((i + 1) % n))).collect(),
        },
        Topology::Switch => (0..count).map(|i| (d(i), "switch".to_string())).collect(),
        Topology::Mesh { rows, cols } => {
            let mut out = Vec::new();
            for r in 0..rows {
                for c in 0..cols.saturating_sub(1) {
                    out.push((d(r * cols + c), d(r * cols + c + 1)));
                }
            }
            for r in 0..rows.saturating_sub(1) {
                for c in 0..cols {
                    out.push((d(r * cols + c), d((r + 1) * cols + c)));
                }
            }
            out
        }
    }
}

/// Index of the horizontal mesh link right of (r, c) and of the vertical one below it.
fn mesh_h(cols: u64, r: u64, c: u64) -> usize {
    (r * cols.saturating_sub(1) + c) as usize
}
fn mesh_v(rows: u64, cols: u64, r: u64, c: u64) -> usize {
    (rows * cols.saturating_sub(1) + r * cols + c) as usize
}

/// The ring algorithm over `g` devices joined by `path` links (`closes`: the path is a closed
/// ring, each link used in one direction; otherwise a line whose links carry the embedded
/// ring both ways). `factor` is 2 for an all-reduce, 1 for an all-gather.
fn ring_algorithm(
    path: &[usize],
    g: u64,
    closes: bool,
    bytes: f64,
    factor: f64,
    bw: f64,
    hop: f64,
) -> CollectiveCost {
    if g <= 1 {
        return CollectiveCost::default();
    }
    let gf = g as f64;
    let per_direction = factor * (gf - 1.0) / gf * bytes;
    // a step waits for its longest hop: the line's wrap-around crosses g - 1 links
    let step = if closes || g <= 2 { hop } else { hop * (gf - 1.0) };
    let time = factor * (gf - 1.0) * step + per_direction / bw;
    let both = if closes { 1.0 } else { 2.0 };
    CollectiveCost {
        time: Seconds::new(time),
        links: path
            .iter()
            .map(|&l| (l, both * per_direction, per_direction / bw))
            .collect(),
    }
}

/// The links between consecutive devices `a .. a + g` of a ring of `n` and whether they close it.
fn ring_path(n: u64, a: u64, g: u64) -> (Vec<usize>, bool) {
    if n == 2 {
        return (vec![0], true);
    }
    let closes = g == n;
    let mut p: Vec<usize> = (a..a + g - 1).map(|i| (i % n) as usize).collect();
    if closes {
        p.push(((a + g - 1) % n) as usize);
    }
    (p, closes)
}

/// Prices collective `c` over the devices `members` (consecutive for the tensor-parallel
/// collectives; `[from, to]` for a stage hand-off) of a system of `count` devices.
pub fn collective(
    ic: &crate::system::Interconnect,
    count: u64,
    members: &[u64],
    c: &crate::graph::parallel::Collective,
) -> CollectiveCost {
    use crate::graph::parallel::CollectiveKind;
    use crate::system::Topology;
    let bw = ic.pair_bandwidth().get();
    let lat = ic.latency.get();
    let bytes = c.bytes.get();
    let g = members.len() as u64;
    if g <= 1 || (bytes <= 0.0 && lat <= 0.0) {
        return CollectiveCost::default();
    }
    let factor = match c.kind {
        CollectiveKind::AllReduce => 2.0,
        CollectiveKind::AllGather => 1.0,
        CollectiveKind::SendRecv => 0.0,
    };
    let a = members[0];
    match (c.kind, ic.topology) {
        (CollectiveKind::SendRecv, topology) => {
            let (x, y) = (members[0], members[g as usize - 1]);
            let path: Vec<usize> = match topology {
                Topology::Switch => vec![x as usize, y as usize],
                Topology::Ring => {
                    let n = count;
                    if n == 2 {
                        vec![0]
                    } else {
                        // the shorter way round
                        let fwd = (y + n - x) % n;
                        if fwd <= n - fwd {
                            (0..fwd).map(|k| ((x + k) % n) as usize).collect()
                        } else {
                            (0..n - fwd).map(|k| ((y + k) % n) as usize).collect()
                        }
                    }
                }
                Topology::Mesh { rows, cols } => {
                    // along the row, then along the column
                    let (mut r, mut col) = (x / cols, x % cols);
                    let (ry, cy) = (y / cols, y % cols);
                    let mut p = Vec::new();
                    while col != cy {
                        let left = if col < cy { col } else { col - 1 };
                        p.push(mesh_h(cols, r, left));
                        col = if col < cy { col + 1 } else { col - 1 };
                    }
                    while r != ry {
                        let r0 = if r < ry { r } else { r - 1 };
                        p.push(mesh_v(rows, cols, r0, col));
                        r = if r < ry { r + 1 } else { r - 1 };
                    }
                    p
                }
            };
            let hops = match topology {
                Topology::Switch => 1.0,
                _ => path.len() as f64,
            };
            CollectiveCost {
                time: Seconds::new(hops * lat + bytes / bw),
                links: path.into_iter().map(|l| (l, bytes, bytes / bw)).collect(),
            }
        }
        (_, Topology::Switch) => {
            let gf = g as f64;
            let per_direction = factor * (gf - 1.0) / gf * bytes;
            CollectiveCost {
                time: Seconds::new(lat + per_direction / bw),
                links: members
                    .iter()
                    .map(|&m| (m as usize, 2.0 * per_direction, per_direction / bw))
                    .collect(),
            }
        }
        (_, Topology::Ring) => {
            let (path, closes) = ring_path(count, a, g);
            ring_algorithm(&path, g, closes, bytes, factor, bw, lat)
        }
        (_, Topology::Mesh { rows, cols }) => {
            if g <= cols {
                // a line within one row
                let (r, c0) = (a / cols, a % cols);
                let path: Vec<usize> = (c0..c0 + g - 1).map(|c| mesh_h(cols, r, c)).collect();
                return ring_algorithm(&path, g, false, bytes, factor, bw, lat);
            }
            // whole rows: along every row on the tensor, then along every column on its
            // 1/cols share (reduce-scatter, all-reduce, all-gather)
            let (r0, nr) = (a / cols, g / cols);
            let mut links = Vec::new();
            let mut time = 0.0;
            for r in r0..r0 + nr {
                let path: Vec<usize> = (0..cols - 1).map(|c| mesh_h(cols, r, c)).collect();
                let row = ring_algorithm(&path, cols, false, bytes, factor, bw, lat);
                time = row.time.get();
                links.extend(row.links);
            }
            let mut col_time = 0.0;
            for c in 0..cols {
                let path: Vec<usize> = (r0..r0 + nr - 1).map(|r| mesh_v(rows, cols, r, c)).collect();
                let col = ring_algorithm(&path, nr, false, bytes / cols as f64, factor, bw, lat);
                col_time = col.time.get();
                links.extend(col.links);
            }
            CollectiveCost {
                time: Seconds::new(time + col_time),
                links,
            }
        }
    }
}
