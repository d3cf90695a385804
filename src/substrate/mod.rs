//! Hardware substrates: validated descriptions of the chips a graph is mapped onto.
//!
//! A substrate file (`substrates/*.yaml`) is read into a raw form (`raw.rs`, every value an
//! expression of [`crate::dsl`]), overridden field by field from the command line
//! (`--set dram.read="8 B/cycle"`), and validated into a [`Substrate`]: plain numbers in the
//! types of [`crate::units`], every problem of the file reported at once with its line and
//! column.
//!
//! Architecture invariant: nothing here knows about models or graphs.

mod raw;

pub use raw::{Override, SHIPPED, load, load_str, names, parse_overrides};

use crate::model::ComputeClass;
use crate::sim::systolic::{Buffers, Dataflow, Mode};
use crate::units::{Bytes, BytesPerCycle, BytesPerSec, FlopsPerSec, Hertz, Joules, Seconds, Watts};
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
    /// stated in the file).
    pub efficiency: Efficiency,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    Gpu(Gpu),
    Systolic(Systolic),
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
}

/// A GPU (or any SIMT chip with matrix units): streaming multiprocessors, a matrix peak per
/// precision, vector throughput, DRAM and L2.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gpu {
    pub clock: Hertz,
    pub sms: u64,
    /// Dense matrix-unit peak for the whole chip, per arithmetic class.
    pub matrix_peak: BTreeMap<ComputeClass, FlopsPerSec>,
    /// Vector (non-matrix) peak for the whole chip: norms, softmax, activations.
    pub vector_peak: FlopsPerSec,
    pub memory_bandwidth: BytesPerSec,
    pub memory_capacity: Bytes,
    pub l2_size: Bytes,
    /// L2 bandwidth; data that fits L2 is re-read at this rate.
    pub l2_bandwidth: BytesPerSec,
    /// Output tile (rows x cols) one SM computes per wave, for wave quantisation.
    pub tile: (u64, u64),
    pub energy: GpuEnergy,
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

impl Gpu {
    /// Matrix peak for a class; a class the chip lacks runs at the next wider one it has
    /// (int4 falls back to int8, then fp16; fp8 to fp16; fp32 to the vector peak).
    pub fn matrix_peak_for(&self, class: ComputeClass) -> FlopsPerSec {
        let order: &[ComputeClass] = match class {
            ComputeClass::Int4 => &[ComputeClass::Int4, ComputeClass::Int8, ComputeClass::F16],
            ComputeClass::Int8 => &[ComputeClass::Int8, ComputeClass::F16],
            ComputeClass::Fp8 => &[ComputeClass::Fp8, ComputeClass::F16],
            ComputeClass::F16 => &[ComputeClass::F16],
            ComputeClass::F32 => &[ComputeClass::F32],
        };
        order
            .iter()
            .find_map(|c| self.matrix_peak.get(c).copied())
            .unwrap_or(self.vector_peak)
    }
}

impl Substrate {
    /// Peak FLOP/s of the matrix units for an arithmetic class.
    pub fn matrix_peak(&self, class: ComputeClass) -> FlopsPerSec {
        match &self.kind {
            Kind::Gpu(g) => g.matrix_peak_for(class),
            Kind::Systolic(s) => FlopsPerSec::new(2.0 * (s.rows * s.cols) as f64 * s.clock.get()),
        }
    }
    /// Peak FLOP/s of the vector units.
    pub fn vector_peak(&self) -> FlopsPerSec {
        match &self.kind {
            Kind::Gpu(g) => g.vector_peak,
            Kind::Systolic(s) => FlopsPerSec::new(s.vector_ops_per_cycle * s.clock.get()),
        }
    }
    /// DRAM read bandwidth.
    pub fn memory_bandwidth(&self) -> BytesPerSec {
        match &self.kind {
            Kind::Gpu(g) => g.memory_bandwidth,
            Kind::Systolic(s) => s.dram_read * s.clock,
        }
    }
    pub fn memory_capacity(&self) -> Bytes {
        match &self.kind {
            Kind::Gpu(g) => g.memory_capacity,
            Kind::Systolic(s) => s.dram_capacity,
        }
    }
    pub fn clock(&self) -> Hertz {
        match &self.kind {
            Kind::Gpu(g) => g.clock,
            Kind::Systolic(s) => s.clock,
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
        }
    }
}
