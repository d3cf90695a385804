//! What the engines produce: per-operator records, phase summaries and the run summary, all
//! plain values; and the [`Sink`] that receives per-op events while a run is scheduled.

use crate::graph::{RoleBytes, Unit};
use crate::units::{Bytes, Flops, Joules, Seconds};
use serde::Serialize;
use std::ops::{Add, AddAssign, Mul};

/// Which phase a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseKind {
    Prefill,
    Decode,
}

impl PhaseKind {
    pub fn name(self) -> &'static str {
        match self {
            PhaseKind::Prefill => "prefill",
            PhaseKind::Decode => "decode",
        }
    }
}

/// What limits an operator: its arithmetic, its memory traffic, or a fixed per-kernel cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Compute,
    Memory,
    Overhead,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
            Bound::Overhead => "overhead",
        }
    }
    /// The largest of the three times (ties go to compute, then memory).
    pub fn classify(compute: Seconds, memory: Seconds, overhead: Seconds) -> Bound {
        if overhead > compute && overhead > memory {
            Bound::Overhead
        } else if memory > compute {
            Bound::Memory
        } else {
            Bound::Compute
        }
    }
}

/// Energy by component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Energy {
    /// Arithmetic: MACs / FLOPs on matrix and vector units.
    pub compute: Joules,
    /// On-chip memory: SRAM buffers (systolic) or L2 (GPU).
    pub onchip: Joules,
    /// Off-chip DRAM traffic.
    pub dram: Joules,
    /// Leakage / static power over the time spent.
    #[serde(rename = "static")]
    pub static_: Joules,
}

impl Energy {
    pub fn total(&self) -> Joules {
        self.compute + self.onchip + self.dram + self.static_
    }
}

impl Add for Energy {
    type Output = Energy;
    fn add(self, o: Energy) -> Energy {
        Energy {
            compute: self.compute + o.compute,
            onchip: self.onchip + o.onchip,
            dram: self.dram + o.dram,
            static_: self.static_ + o.static_,
        }
    }
}

impl AddAssign for Energy {
    fn add_assign(&mut self, o: Energy) {
        *self = *self + o;
    }
}

impl Mul<f64> for Energy {
    type Output = Energy;
    fn mul(self, f: f64) -> Energy {
        Energy {
            compute: self.compute * f,
            onchip: self.onchip * f,
            dram: self.dram * f,
            static_: self.static_ * f,
        }
    }
}

/// One operator (or one fused kernel) of a phase.
///
/// Prefill records describe the one prefill pass. Decode records are **totals over every
/// decode step** (`count` executions): FLOPs, bytes, times and energy summed; `start` and
/// `end` are the op's place in the schedule of the *last* decode step, relative to that
/// step's start. `time` is the op's own duration (compute, stalls and overhead); the phase
/// time is the schedule's makespan, which can be shorter than the sum of op times where the
/// engine overlaps one op's transfers with another's compute.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpRecord {
    pub label: String,
    pub name: &'static str,
    pub layer: Option<u32>,
    pub phase: PhaseKind,
    /// `gemm`, `gather`, `elementwise`, `kv_write`, or `fused_attention` (scores + softmax +
    /// PV as one kernel).
    pub kind: &'static str,
    pub unit: Unit,
    /// Executions summed in this record (1 in prefill, the decode steps in decode).
    pub count: u64,
    pub flops: Flops,
    pub reads: RoleBytes,
    pub writes: RoleBytes,
    /// Bytes moved to and from DRAM as the engine priced them.
    pub dram_bytes: Bytes,
    pub compute_time: Seconds,
    pub memory_time: Seconds,
    pub overhead_time: Seconds,
    pub time: Seconds,
    pub start: Seconds,
    pub end: Seconds,
    pub bound: Bound,
    pub energy: Energy,
}

/// One kernel's time and energy in a phase, as its [`OpRecord`] gives them, without the
/// record's name, traffic and place in the schedule: what a system run splits its pipeline
/// stages by (the engine produces them without formatting or scheduling records).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpShare {
    pub name: &'static str,
    pub layer: Option<u32>,
    pub phase: PhaseKind,
    /// `time` of the record, seconds.
    pub time: f64,
    /// `energy.total()` of the record, joules.
    pub energy: f64,
}

impl OpRecord {
    /// The record's time and energy.
    pub fn share(&self) -> OpShare {
        OpShare {
            name: self.name,
            layer: self.layer,
            phase: self.phase,
            time: self.time.get(),
            energy: self.energy.total().get(),
        }
    }
}

/// Totals of one phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PhaseSummary {
    /// Passes of the phase: 1 for prefill, the generated tokens for decode.
    pub steps: u64,
    /// Makespan summed over the steps, per-pass token overhead included.
    pub time: Seconds,
    pub energy: Energy,
    pub flops: Flops,
    pub dram_bytes: Bytes,
    /// Sum of op times, by bound.
    pub compute_bound_time: Seconds,
    pub memory_bound_time: Seconds,
    pub overhead_bound_time: Seconds,
}

/// Totals of one kind of op (e.g. all `gemm`s) in one phase, for compact summaries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindTotal {
    pub phase: PhaseKind,
    pub kind: &'static str,
    pub ops: u64,
    pub flops: Flops,
    pub dram_bytes: Bytes,
    pub time: Seconds,
    pub energy: Joules,
}

/// The summary of a run: prefill of `prompt` tokens, then `gen` decode steps at contexts
/// `prompt + 1 ..= prompt + gen`, for `batch` sequences.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub model: String,
    pub substrate: String,
    pub engine: &'static str,
    pub prompt: u64,
    pub generate: u64,
    pub batch: u64,
    /// The model's formats on the substrate: the rule each tensor role ran by and the native
    /// arithmetic of the weight and attention GEMMs (`Substrate::resolve`).
    pub precision: crate::substrate::PrecisionReport,
    /// Time to first token: the prefill pass (it produces the first token's logits).
    pub ttft_s: f64,
    /// Time per output token: mean decode-step time over the `gen` steps.
    pub tpot_s: f64,
    /// Generated tokens per second of decode: `batch * gen / decode time`.
    pub tokens_per_s: f64,
    /// Total energy (prefill + decode) per generated token: `total / (batch * gen)`.
    pub energy_per_token_j: f64,
    /// The LLMForge paper's form, per processed token: `(E_prefill + E_decode) / (batch * (P +
    /// D))`, i.e. `(E_prefill + D * mean E_decode_step) / (P + D)` per sequence. On a ring
    /// under `ring.timing: paper_era`, the paper-era model's own "energy per token": one
    /// decode step's energy per sequence (its prefill is in `energy_per_token_j`).
    pub energy_per_processed_token_j: f64,
    pub prefill_energy_j: f64,
    pub decode_energy_j: f64,
    pub total_energy_j: f64,
    /// Weights as stored (every parameter at the weight precision).
    pub weight_bytes: f64,
    /// KV cache at the end of the run: `batch * (P + D)` positions.
    pub kv_bytes: f64,
    pub memory_capacity_bytes: f64,
    /// Weights plus the final KV cache fit the substrate's DRAM.
    pub fits_memory: bool,
    pub prefill: PhaseSummary,
    pub decode: PhaseSummary,
    /// Ring substrates only: the chosen hardware (see `sim::ring_adapter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<super::ring_adapter::RingHardware>,
}

impl RunSummary {
    /// 0 when the run fits the memory; otherwise how far weights plus the KV cache overshoot
    /// the capacity, relative to it (at least 1e-9, so that "does not fit" is never 0; a ring
    /// that holds no design of the model gives 1).
    pub fn memory_excess(&self) -> f64 {
        if self.fits_memory {
            return 0.0;
        }
        let over = (self.weight_bytes + self.kv_bytes) / self.memory_capacity_bytes - 1.0;
        if over.is_finite() { over.max(1e-9) } else { 1.0 }
    }
}

/// A run: the summary and the per-op records (prefill ops, then decode ops).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    pub summary: RunSummary,
    pub ops: Vec<OpRecord>,
}

impl RunResult {
    /// Totals per (phase, kind), in a stable order.
    pub fn kind_totals(&self) -> Vec<KindTotal> {
        let mut out: Vec<KindTotal> = Vec::new();
        for r in &self.ops {
            match out.iter_mut().find(|k| k.phase == r.phase && k.kind == r.kind) {
                Some(k) => {
                    k.ops += 1;
                    k.flops += r.flops;
                    k.dram_bytes += r.dram_bytes;
                    k.time += r.time;
                    k.energy += r.energy.total();
                }
                None => out.push(KindTotal {
                    phase: r.phase,
                    kind: r.kind,
                    ops: 1,
                    flops: r.flops,
                    dram_bytes: r.dram_bytes,
                    time: r.time,
                    energy: r.energy.total(),
                }),
            }
        }
        out.sort_by(|a, b| (a.phase, a.kind).cmp(&(b.phase, b.kind)));
        out
    }
}

/// A hardware resource an event occupies (one Chrome-trace thread each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Matrix units (systolic array, tensor cores).
    Matrix,
    /// Vector units.
    Vector,
    /// Data-movement engine (gathers, KV writes).
    Dma,
    /// DRAM read channel (prefetches and streamed operand reads).
    DramRead,
    /// DRAM write channel (output drains).
    DramWrite,
}

impl Resource {
    pub const ALL: [Resource; 5] = [
        Resource::Matrix,
        Resource::Vector,
        Resource::Dma,
        Resource::DramRead,
        Resource::DramWrite,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Resource::Matrix => "matrix",
            Resource::Vector => "vector",
            Resource::Dma => "dma",
            Resource::DramRead => "dram_read",
            Resource::DramWrite => "dram_write",
        }
    }
    pub fn of_unit(u: Unit) -> Resource {
        match u {
            Unit::Matrix => Resource::Matrix,
            Unit::Vector => Resource::Vector,
            Unit::Memory | Unit::Link => Resource::Dma,
        }
    }
}

/// One interval of an op on one resource, on the run's timeline (prefill starts at 0, each
/// decode step follows the previous one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpEvent {
    pub phase: PhaseKind,
    /// 0 in prefill; 1..=gen in decode.
    pub step: u64,
    /// Context of the step (prompt length in prefill).
    pub context: u64,
    pub name: &'static str,
    pub layer: Option<u32>,
    pub resource: Resource,
    /// `compute`, `prefetch`, `stream`, `drain` or `kernel`.
    pub what: &'static str,
    pub start: Seconds,
    pub end: Seconds,
}

impl OpEvent {
    /// `L3.q_proj`, `embed`.
    pub fn label(&self) -> String {
        match self.layer {
            Some(l) => format!("L{l}.{}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// Receives events while an engine schedules a run. Every method does nothing by default;
/// a run without a sink takes the fast path and builds no events at all.
pub trait Sink {
    /// How many decode steps the sink records (`None`: every step); see
    /// [`super::StepSample`] for which. Steps left out are not scheduled for the sink; the
    /// recorded ones keep their place on the run's timeline.
    fn decode_steps(&self) -> Option<u64> {
        None
    }
    /// One op interval on one resource.
    fn event(&mut self, _event: &OpEvent) {}
    /// A phase pass (prefill, or one decode step) ended at `end` on the run timeline.
    fn step_end(&mut self, _phase: PhaseKind, _step: u64, _start: Seconds, _end: Seconds) {}
    /// A run over several chips names its chips and links once, before its events (the ring
    /// engine). A sink that lays out per-chip tracks (the Chrome trace) uses it; by default
    /// it is ignored.
    fn topology(&mut self, _t: &Topology) {}
    /// One interval of a multi-chip run on chips or a link ([`DeviceEvent`]). By default an
    /// event on chips is received as an [`OpEvent`] on the matrix units (a ring core computes
    /// a layer on its MAC arrays) and a link event is dropped: a sink that only knows the
    /// single-device resources sees the run as one device.
    fn device_event(&mut self, e: &DeviceEvent<'_>) {
        if let Some(op) = e.as_op_event() {
            self.event(&op);
        }
    }
}

/// A sink that keeps every event.
#[derive(Clone, Debug, Default)]
pub struct Events {
    pub events: Vec<OpEvent>,
}

impl Sink for Events {
    fn event(&mut self, e: &OpEvent) {
        self.events.push(*e);
    }
}

/// The chips and links of a multi-chip run, named for outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Topology {
    /// One name per chip (`chip 0`), in chip order.
    pub chips: Vec<String>,
    /// One name per link (`link 0->1 (hop)`), in link order.
    pub links: Vec<String>,
}

/// Where a multi-chip event ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Chips `first..end` (a layer split over several chips runs on all of them at once).
    Chips { first: u64, end: u64 },
    /// One link of the [`Topology`].
    Link(u64),
}

/// One interval of a multi-chip run on chips or a link, on the run's timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceEvent<'a> {
    pub phase: PhaseKind,
    /// 0 in prefill; 1..=gen in decode.
    pub step: u64,
    /// Context of the step (prompt length in prefill; 0 for links).
    pub context: u64,
    /// What ran (`block`, `lm_head`; `hop`, `tensor_parallel` on links).
    pub name: &'static str,
    pub layer: Option<u32>,
    /// The short label of the track entry (`L3`, `lm_head`, `0->1`).
    pub label: &'a str,
    pub place: Place,
    /// `compute` or `stream` on chips; `hop` or `tensor_parallel` on links.
    pub what: &'static str,
    pub start: Seconds,
    pub end: Seconds,
}

impl DeviceEvent<'_> {
    /// The event as a single device sees it: an event on chips is an [`OpEvent`] on the
    /// matrix units (a ring core computes a layer on its MAC arrays); a link event is none.
    pub fn as_op_event(&self) -> Option<OpEvent> {
        match self.place {
            Place::Chips { .. } => Some(OpEvent {
                phase: self.phase,
                step: self.step,
                context: self.context,
                name: self.name,
                layer: self.layer,
                resource: Resource::Matrix,
                what: self.what,
                start: self.start,
                end: self.end,
            }),
            Place::Link(_) => None,
        }
    }
}
