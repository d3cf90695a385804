//! Hardware substrates: validated descriptions of the chips a graph is mapped onto.
//!
//! A substrate file (`substrates/*.yaml`) is read into a raw form (`raw.rs`, every value an
//! expression of [`crate::dsl`]), overridden field by field from the command line
//! (`--set dram.read="8 B/cycle"`), and validated into a [`Substrate`]: plain numbers in the
//! types of [`crate::units`], every problem of the file reported at once with its line and
//! column.
//!
//! Three kinds: a GPU, a systolic array (its organisation in [`array`]), and the multi-chip
//! ring accelerator ([`Ring`], its hardware description in [`ring_spec`]; the cost model
//! that prices it is `sim::ring`). Any file may also declare a hardware
//! co-search (`cosearch:`, see [`cosearch`]): a grid of values for some of its fields, each
//! grid point being the file with `--set`-style overrides.
//!
//! Which number formats a substrate runs natively, and the rules for the others, are in
//! [`precision`] ([`Substrate::resolve`]).
//!
//! Architecture invariant: nothing here knows about models, graphs or the simulator (the
//! number formats models and substrates share are in [`crate::numeric`]); a source scan
//! test (`substrate::imports_nothing_of_models_or_the_simulator`) fails if a file of this
//! folder names the `sim`, `model` or `graph` modules by path.

pub mod array;
pub mod cosearch;
pub mod precision;
mod raw;
mod ring;
pub mod ring_spec;
pub mod schema;

pub use cosearch::{CoSearch, DesignSpace, GridAxis};
pub use precision::{
    PrecisionError, PrecisionReport, PrecisionSupport, ResolvedPrecision, Rule, TensorPrecision,
};
pub use raw::{
    Override, SHIPPED, check_efficiency, load, load_source, load_str, names, parse_overrides, source,
};

use crate::numeric::{ComputeClass, Precision};
use crate::units::{
    Bytes, BytesPerCycle, BytesPerSec, Cycles, FlopsPerSec, Hertz, Joules, Seconds, SquareMeters, Watts,
};
pub use array::{Buffers, Dataflow, Mode};
pub use ring_spec::{Objective, RingDesign, RingOptions, RingSpec};
use serde::Serialize;
use std::collections::BTreeMap;

/// A validated substrate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Substrate {
    pub name: String,
    /// Free text: what the file describes and where its figures come from.
    pub description: String,
    pub kind: Kind,
    /// Achieved fractions and fixed overheads (calibrated from measurements, or defaults
    /// stated in the file). A ring file has no `efficiency` section: its cost model counts
    /// cycles exactly, so its efficiency is [`Efficiency::EXACT`].
    pub efficiency: Efficiency,
    /// Design limits (`envelope:`): what a co-search point must stay within. Required for a
    /// ring; optional for the other kinds, which have no area model (only `power` applies).
    pub envelope: DesignEnvelope,
    /// The hardware co-search declared in the file (`cosearch:`), if any.
    pub cosearch: Option<CoSearch>,
}

/// Area and power limits of a design; `None` = no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DesignEnvelope {
    /// Total silicon (a ring: all chips).
    pub max_area: Option<SquareMeters>,
    /// Average power of the busier phase (prefill or decode).
    pub max_power: Option<Watts>,
}

impl DesignEnvelope {
    /// max(0, area/limit - 1) + max(0, power/limit - 1): 0 when within the envelope (the
    /// ring module's rule). An area of `None` (no area model) is not checked.
    pub fn violation(&self, area: Option<SquareMeters>, power: Watts) -> f64 {
        let over = |v: f64, limit: f64| (v / limit - 1.0).max(0.0);
        let a = match (area, self.max_area) {
            (Some(a), Some(m)) => over(a.get(), m.get()),
            _ => 0.0,
        };
        let p = self.max_power.map_or(0.0, |m| over(power.get(), m.get()));
        a + p
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
// A substrate is loaded once and passed by reference; boxing the ring would only add a
// dereference to every match.
#[allow(clippy::large_enum_variant)]
pub enum Kind {
    Gpu(Gpu),
    Systolic(Systolic),
    Ring(Ring),
}

/// The multi-chip ring accelerator: the chip template, link, DRAM, envelope and packing rules
/// of [`RingSpec`], the design of the file (MACs per VAC and WMEM per core of the template
/// chip, the chip limit), and the modelling options. The packing of a model decides the core
/// count and KV cache of the concrete chips; see `sim::ring`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ring {
    pub spec: RingSpec,
    pub design: RingDesign,
    pub options: RingOptions,
}

impl Ring {
    /// INT8 MACs of the template chip (n_dxt x vacs_per_dxt x macs_per_vac).
    pub fn macs_per_chip(&self) -> u64 {
        self.spec.chip().n_cores() * self.design.macs_per_vac
    }
    /// Peak INT8 operations per second of `max_chips` template chips.
    pub fn peak(&self) -> FlopsPerSec {
        let c = self.spec.chip();
        FlopsPerSec::new(2.0 * (self.macs_per_chip() * self.design.max_chips) as f64 * c.clock.get())
    }
    /// Aggregate weight-memory read bandwidth of `max_chips` template chips: one WMEM port per
    /// core per cycle. The ring is weight-stationary: this, not DRAM, feeds its GEMMs.
    pub fn wmem_bandwidth(&self) -> BytesPerSec {
        let c = self.spec.chip();
        let bytes = (c.wmem_port_bits / 8 * c.n_cores() * self.design.max_chips) as f64;
        BytesPerSec::new(bytes * c.clock.get())
    }
    /// On-chip weight and KV memory of `max_chips` template chips.
    pub fn onchip_capacity(&self) -> Bytes {
        let c = self.spec.chip();
        (self.design.wmem_per_core + c.kv_per_core) * (c.n_cores() * self.design.max_chips) as f64
    }
    /// DRAM read bandwidth (used only by layers spilled to DRAM).
    pub fn dram_bandwidth(&self) -> BytesPerSec {
        self.spec.dram().bytes_per_cycle * self.spec.chip().clock
    }
}

/// Achieved fraction of peak and fixed overheads.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Efficiency {
    /// Fraction of the matrix peak reached by large GEMMs, in (0, 1].
    pub compute: f64,
    /// Fraction of the memory bandwidth reached by streaming, in (0, 1].
    pub memory: f64,
    /// Fixed cost of launching or dispatching one operator (kernel).
    pub kernel_overhead: Seconds,
    /// Fixed cost per generated token or prefill pass (framework, sampling, synchronisation).
    pub token_overhead: Seconds,
    /// Fraction of `compute` that GEMMs reach when their weights are stored narrower than
    /// their arithmetic (block-quantised formats such as GGUF k-quants, dequantised on the fly
    /// to fp16), in (0, 1]; 1 (the default) prices them like native-format GEMMs.
    pub quantised_compute: f64,
    /// DRAM bytes moved per attention-score element by a stack that materialises the score
    /// matrix instead of fusing attention (e.g. llama.cpp without flash attention: the QK
    /// product written in fp32, read and written by the softmax, read by the PV product, about
    /// 16 B). GPU fused-attention kernels only; 0 (the default) is flash attention.
    pub score_bytes: Bytes,
}

/// A GPU (or any SIMT chip with matrix units): streaming multiprocessors, a matrix peak per
/// precision, vector throughput, DRAM and L2.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gpu {
    pub clock: Hertz,
    pub sms: u64,
    /// Dense matrix-unit peak for the whole chip, per arithmetic type. Its keys are the types
    /// the chip runs natively ([`precision`]); fp32 without a key runs at `vector_peak`.
    pub matrix_peak: BTreeMap<ComputeClass, FlopsPerSec>,
    /// Vector (non-matrix) peak for the whole chip: norms, softmax, activations.
    pub vector_peak: FlopsPerSec,
    pub memory_bandwidth: BytesPerSec,
    pub memory_capacity: Bytes,
    pub l2_size: Bytes,
    /// L2 bandwidth; data that fits L2 is re-read at this rate.
    pub l2_bandwidth: BytesPerSec,
    /// Largest output tile (rows x cols) one SM computes per wave; the GEMM mapper tries it
    /// and its halvings.
    pub tile: (u64, u64),
    /// Parameters of the cycle-approximate kernel model (optional `kernel:` section).
    pub kernel: GpuKernel,
    pub energy: GpuEnergy,
}

/// Parameters of the GPU kernel model of `sim` (`sim/gpu.rs`), the optional `kernel:`
/// section of a GPU file. The defaults were fitted to the measured GEMMs of
/// `traces/kernels/gemm.csv` (see traces/README.md); `llmforge calibrate --kernels` refits
/// them. The roofline uses none of them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GpuKernel {
    /// Cycles an output tile (one CTA) spends outside its K loop: the prologue (first operand
    /// loads, pipeline fill) and the epilogue (accumulator write-back).
    pub tile_cycles: Cycles,
    /// Cycles one step of a tile's K loop takes at least (a step consumes 128 bytes of K per
    /// operand row): the barrier and shared-memory round trip of the software pipeline, which
    /// a small tile's few MMAs cannot hide.
    pub step_cycles: Cycles,
    /// Operand bytes per cycle that feed one SM's matrix units (shared memory / LDS): a tile
    /// of `tm x tn` needs `(tm + tn) * bytes` of operands per `2 tm tn` FLOPs per K step, so
    /// small tiles run below the matrix peak.
    pub operand_bandwidth: BytesPerCycle,
    /// Fraction of the L2 that keeps operand panels for reuse by later tiles, in (0, 1].
    pub l2_reuse: f64,
    /// DRAM bytes per cycle one busy SM (CU) can stream: the loads it keeps in flight over
    /// the memory latency (Little's law). A kernel whose tiles occupy `a` SMs reads DRAM at
    /// no more than `a` times this, so a GEMM of few tiles cannot reach the chip's
    /// bandwidth, and nor can a chip with few SMs per memory stack (the MI308X: 80 CUs on
    /// the MI300X's HBM).
    pub sm_bandwidth: BytesPerCycle,
    /// Exponent `p >= 1` of the norm `(c^p + d^p)^(1/p)` that combines a kernel's compute
    /// and DRAM times: 1 adds them (no overlap), large values approach their maximum
    /// (perfect overlap).
    pub overlap: f64,
}

impl GpuKernel {
    /// The defaults of a file without a `kernel:` section.
    pub const DEFAULT: GpuKernel = GpuKernel {
        tile_cycles: Cycles::new(2354.0),
        step_cycles: Cycles::new(600.0),
        operand_bandwidth: BytesPerCycle::new(128.0),
        l2_reuse: 0.197,
        sm_bandwidth: BytesPerCycle::new(64.0),
        overlap: 2.0,
    };
}

/// GPU energy per action plus static power.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GpuEnergy {
    /// Energy per FLOP on the matrix units (fp16/bf16; other classes scale by bits).
    pub matrix_flop: Joules,
    /// Energy per FLOP on the vector units.
    pub vector_flop: Joules,
    pub dram_byte: Joules,
    pub l2_byte: Joules,
    /// Power drawn whenever the chip is on (leakage, clocks, idle SMs).
    pub static_power: Watts,
}

/// A systolic-array accelerator with SRAM buffers and DRAM.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Systolic {
    pub clock: Hertz,
    pub rows: u64,
    pub cols: u64,
    #[serde(serialize_with = "ser_dataflow")]
    pub dataflow: Dataflow,
    #[serde(serialize_with = "ser_buffers")]
    pub buffers: Buffers,
    /// Accumulator SRAM (32-bit partial sums).
    pub accumulator: Bytes,
    pub dram_read: BytesPerCycle,
    pub dram_write: BytesPerCycle,
    pub dram_capacity: Bytes,
    /// Elementwise (vector) operations per cycle: norms, softmax, activations.
    pub vector_ops_per_cycle: f64,
    #[serde(serialize_with = "ser_mode")]
    pub mode: Mode,
    /// Operand types the MACs take natively (`array.precisions`), each at one MAC per PE per
    /// cycle.
    pub precisions: Vec<ComputeClass>,
    /// Formats the array declares it quantises to its narrowest native type
    /// (`array.quantise`); empty: none (others are rejected; see [`precision`]).
    pub quantise: Vec<Precision>,
    /// Vector-unit operations per stored byte of a filter operand dequantised on its way in
    /// (weights stored narrower than the arithmetic: GGUF block formats, int4 on an int8
    /// array): unpacking the byte's codes and applying their block scale
    /// (`vector.dequantise_ops`). The pass runs in the load path at `vector.ops_per_cycle`
    /// times `efficiency.memory`.
    pub dequantise_ops: f64,
    pub energy: SystolicEnergy,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SystolicEnergy {
    pub mac: Joules,
    pub sram_byte: Joules,
    pub dram_byte: Joules,
    /// Per elementwise operation on the vector unit.
    pub vector_op: Joules,
    pub leakage: Watts,
}

fn ser_dataflow<S: serde::Serializer>(d: &Dataflow, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}
fn ser_mode<S: serde::Serializer>(m: &Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}
fn ser_buffers<S: serde::Serializer>(b: &Buffers, s: S) -> Result<S::Ok, S::Error> {
    let (i, f, o) = b.split_bytes();
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Buffers", 3)?;
    st.serialize_field("ifmap", &i)?;
    st.serialize_field("filter", &f)?;
    st.serialize_field("ofmap", &o)?;
    st.end()
}

impl Efficiency {
    /// Full peak, no overheads: for cost models that count cycles exactly (the ring).
    pub const EXACT: Efficiency = Efficiency {
        compute: 1.0,
        memory: 1.0,
        kernel_overhead: Seconds::ZERO,
        token_overhead: Seconds::ZERO,
        quantised_compute: 1.0,
        score_bytes: Bytes::ZERO,
    };
}

impl Gpu {
    /// The native type an op needing `class` runs at: the narrowest type with a peak that
    /// `class` widens to exactly (int4 -> int8 -> fp16; fp8 -> fp16; bf16 -> fp32; see
    /// [`crate::numeric`]); fp32 when none has (on the vector units).
    pub fn native_for(&self, class: ComputeClass) -> ComputeClass {
        class
            .widenings()
            .iter()
            .copied()
            .find(|c| self.matrix_peak.contains_key(c))
            .unwrap_or(ComputeClass::F32)
    }
    /// Matrix peak of the native type an op needing `class` runs at ([`Self::native_for`]);
    /// fp32 without a matrix peak runs at the vector peak.
    #[inline]
    pub fn matrix_peak_for(&self, class: ComputeClass) -> FlopsPerSec {
        // ops are bound to a native type before pricing: one lookup on the hot path
        if let Some(p) = self.matrix_peak.get(&class) {
            return *p;
        }
        self.matrix_peak
            .get(&self.native_for(class))
            .copied()
            .unwrap_or(self.vector_peak)
    }
}

impl Substrate {
    /// Peak FLOP/s of the matrix units for an op needing arithmetic `class` (a GPU: the peak of
    /// the native type it runs at). A systolic array runs every native type at one MAC per PE
    /// per cycle; a ring is an INT8 machine: its peak is that of `max_chips` template chips.
    #[inline]
    pub fn matrix_peak(&self, class: ComputeClass) -> FlopsPerSec {
        match &self.kind {
            Kind::Gpu(g) => g.matrix_peak_for(class),
            Kind::Systolic(s) => FlopsPerSec::new(2.0 * (s.rows * s.cols) as f64 * s.clock.get()),
            Kind::Ring(r) => r.peak(),
        }
    }
    /// Peak FLOP/s of the vector units. A ring's vector work (norms, softmax) runs on the
    /// same vector-MAC units (the model gives it no cycles): the MAC peak.
    pub fn vector_peak(&self) -> FlopsPerSec {
        match &self.kind {
            Kind::Gpu(g) => g.vector_peak,
            Kind::Systolic(s) => FlopsPerSec::new(s.vector_ops_per_cycle * s.clock.get()),
            Kind::Ring(r) => r.peak(),
        }
    }
    /// Bandwidth of the memory that feeds the matrix units: DRAM read bandwidth for a GPU
    /// or systolic array; for a weight-stationary ring, the aggregate WMEM read bandwidth of
    /// `max_chips` template chips ([`Ring::wmem_bandwidth`]; DRAM only serves spilled layers).
    pub fn memory_bandwidth(&self) -> BytesPerSec {
        match &self.kind {
            Kind::Gpu(g) => g.memory_bandwidth,
            Kind::Systolic(s) => s.dram_read * s.clock,
            Kind::Ring(r) => r.wmem_bandwidth(),
        }
    }
    /// Capacity of that memory: DRAM, or for a ring the WMEM and KV cache of `max_chips`
    /// template chips.
    pub fn memory_capacity(&self) -> Bytes {
        match &self.kind {
            Kind::Gpu(g) => g.memory_capacity,
            Kind::Systolic(s) => s.dram_capacity,
            Kind::Ring(r) => r.onchip_capacity(),
        }
    }
    pub fn clock(&self) -> Hertz {
        match &self.kind {
            Kind::Gpu(g) => g.clock,
            Kind::Systolic(s) => s.clock,
            Kind::Ring(r) => r.spec.chip().clock,
        }
    }
    /// Arithmetic intensity (FLOP/B) where the roofline turns from memory- to compute-bound.
    pub fn ridge_point(&self, class: ComputeClass) -> f64 {
        self.matrix_peak(class).get() / self.memory_bandwidth().get()
    }
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Gpu(_) => "gpu",
            Kind::Systolic(_) => "systolic",
            Kind::Ring(_) => "ring",
        }
    }
}
