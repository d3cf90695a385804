//! The fields of a substrate file, one table row each: which kinds have it, its dotted path,
//! its unit, whether it is required (or its default), an example and its meaning.
//!
//! The table is the single description of the file format's *shape*. It drives
//! * the structural check ([`check`]): every unknown, missing or wrongly typed field of a
//!   file, each located, in one run, before values are evaluated (an unknown field's help
//!   names the closest field of its section);
//! * `dsl/SUBSTRATES.md` ([`reference_markdown`]; a test regenerates it and compares,
//!   `LLMFORGE_UPDATE_DOCS=1 cargo test` rewrites it);
//! * `llmforge substrate new --kind K` ([`template`]), a commented file that validates.
//!
//! The typed readers (`raw.rs`, `ring.rs`, `cosearch.rs`) still parse each section with
//! `deny_unknown_fields`; tests check that the table and those structs name the same fields.
//! **Adding a field** to a substrate kind: add its field to the raw struct and its validation,
//! then one line to [`FIELDS`], then regenerate the document.

use crate::yaml::{DescError, Loc, Located, SourceFile};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt::{self, Write as _};

/// The substrate kinds a field belongs to (a bit set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds(u8);

pub const GPU: Kinds = Kinds(1);
pub const SYSTOLIC: Kinds = Kinds(2);
pub const RING: Kinds = Kinds(4);
/// GPU and systolic (the kinds with an `efficiency` section).
pub const CHIP: Kinds = Kinds(3);
pub const ALL: Kinds = Kinds(7);

impl Kinds {
    pub fn has(self, kind: &str) -> bool {
        match kind {
            "gpu" => self.0 & GPU.0 != 0,
            "systolic" => self.0 & SYSTOLIC.0 != 0,
            "ring" => self.0 & RING.0 != 0,
            _ => false,
        }
    }
}

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A section: a mapping of the fields below it.
    Section,
    /// A value: an expression with the unit in [`Field::unit`], a word or free text.
    Value,
    /// A mapping with free keys (the co-search grid: field path -> candidates).
    Map,
    /// A list of words (`[int8, fp16]`).
    List,
}

/// Whether a field must be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    /// Optional; the text says what leaving it out means.
    Optional(&'static str),
}

/// One field (or section) of a substrate file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub kinds: Kinds,
    /// Dotted path, as `--set` names it.
    pub path: &'static str,
    pub shape: Shape,
    /// The unit (`B/s`, `Hz`, `J/B`), `integer`, `fraction`, `number`, `word: a | b`, `text`.
    pub unit: &'static str,
    pub need: Need,
    /// An example value as written in YAML (for a section: empty).
    pub example: &'static str,
    pub meaning: &'static str,
}

const fn v(
    kinds: Kinds,
    path: &'static str,
    unit: &'static str,
    example: &'static str,
    meaning: &'static str,
) -> Field {
    Field {
        kinds,
        path,
        shape: Shape::Value,
        unit,
        need: Need::Required,
        example,
        meaning,
    }
}

const fn opt(
    kinds: Kinds,
    path: &'static str,
    unit: &'static str,
    default: &'static str,
    example: &'static str,
    meaning: &'static str,
) -> Field {
    Field {
        kinds,
        path,
        shape: Shape::Value,
        unit,
        need: Need::Optional(default),
        example,
        meaning,
    }
}

const fn list(
    kinds: Kinds,
    path: &'static str,
    need: Need,
    example: &'static str,
    meaning: &'static str,
) -> Field {
    Field {
        kinds,
        path,
        shape: Shape::List,
        unit: "list of precisions",
        need,
        example,
        meaning,
    }
}

const fn sec(kinds: Kinds, path: &'static str, meaning: &'static str) -> Field {
    Field {
        kinds,
        path,
        shape: Shape::Section,
        unit: "",
        need: Need::Required,
        example: "",
        meaning,
    }
}

const fn opt_sec(kinds: Kinds, path: &'static str, default: &'static str, meaning: &'static str) -> Field {
    Field {
        kinds,
        path,
        shape: Shape::Section,
        unit: "",
        need: Need::Optional(default),
        example: "",
        meaning,
    }
}

/// Every field of every kind, in file order. Sections precede their fields. One line per
/// field (kept so by `rustfmt::skip`).
#[rustfmt::skip]
pub const FIELDS: &[Field] = &[
    // --- every kind ---
    v(ALL, "name", "text", "my-chip", "The substrate's name, shown in every output."),
    v(ALL, "kind", "word: gpu | systolic | ring", "gpu", "Which cost model prices it; decides the other fields."),
    opt(ALL, "description", "text", "empty", "One line on what the chip is", "Free text, shown by `substrate list` and `show`."),
    // --- gpu ---
    v(GPU, "clock", "Hz", "\"1.41 GHz\"", "Clock the peaks are quoted at (boost)."),
    v(GPU, "sms", "integer", "108", "Streaming multiprocessors (compute units); waves of thread blocks are counted over them."),
    sec(GPU, "matrix_peak", "Dense peak of the matrix (tensor) units per arithmetic precision."),
    opt(GPU, "matrix_peak.fp16", "FLOP/s", "none (give fp16 or bf16, or both)", "\"312 TFLOP/s\"", "fp16 peak. The keys are the types the matrix units run natively (README: Cost engine)."),
    opt(GPU, "matrix_peak.bf16", "FLOP/s", "none: bf16 runs widened to fp32 (a chip without bf16 units, e.g. T4, V100)", "\"312 TFLOP/s\"", "bf16 peak, from the data sheet (GeForce: the FP32-accumulate rate)."),
    opt(GPU, "matrix_peak.fp32", "FLOP/s", "`vector_peak`", "\"19.5 TFLOP/s\"", "fp32 peak (TF32 tensor cores, or the CUDA cores)."),
    opt(GPU, "matrix_peak.fp8", "FLOP/s", "none: fp8 runs widened to fp16 (A100)", "\"1979 TFLOP/s\"", "fp8 peak."),
    opt(GPU, "matrix_peak.int8", "FLOP/s", "none: int8 runs widened to fp16", "\"624 TOPS\"", "int8 peak."),
    opt(GPU, "matrix_peak.int4", "FLOP/s", "none: int4 runs at the int8 peak, else fp16", "\"1248 TOPS\"", "int4 peak."),
    v(GPU, "vector_peak", "FLOP/s", "\"19.5 TFLOP/s\"", "Peak of the vector (CUDA) cores: norms, softmax, elementwise ops."),
    sec(GPU, "memory", "Device memory (DRAM / HBM)."),
    v(GPU, "memory.bandwidth", "B/s", "\"1555 GB/s\"", "DRAM bandwidth."),
    v(GPU, "memory.capacity", "B", "\"40 GB\"", "DRAM capacity (weights + KV cache must fit)."),
    sec(GPU, "l2", "Last-level cache."),
    v(GPU, "l2.size", "B", "\"40 MiB\"", "L2 capacity; operand panels reused between tiles hit it with a probability that grows with it (`kernel.l2_reuse`)."),
    v(GPU, "l2.bandwidth", "B/s", "\"5 TB/s\"", "L2 bandwidth."),
    sec(GPU, "tile", "Output tile of one thread block (wave quantisation of GEMMs)."),
    v(GPU, "tile.rows", "integer", "128", "Rows of the output tile."),
    v(GPU, "tile.cols", "integer", "128", "Columns of the output tile."),
    opt_sec(GPU, "kernel", "the defaults below", "Parameters of the GPU kernel model that no data sheet gives (`src/sim/gpu.rs`). The defaults were fitted on measured GEMMs when the kernel model was introduced and are kept fixed so that results stay comparable; `llmforge validate --kernels traces/kernels/gemm.csv --fit-all` prints the fit of today's model and data."),
    opt(GPU, "kernel.tile_cycles", "cycles", "2354 cycle", "\"2354 cycle\"", "Cycles a tile spends outside its K loop: prologue (first loads, pipeline fill) and epilogue (write-back)."),
    opt(GPU, "kernel.step_cycles", "cycles", "600 cycle", "\"600 cycle\"", "Least cycles of one K step (128 bytes of K per operand row): the barrier and shared-memory round trip a small tile cannot hide."),
    opt(GPU, "kernel.operand_bandwidth", "B/cycle", "128 B/cycle", "\"128 B/cycle\"", "Shared-memory (LDS) bytes per cycle feeding one SM's matrix units; small tiles run below the peak."),
    opt(GPU, "kernel.l2_reuse", "fraction", "0.197", "0.2", "Fraction of the L2 that keeps operand panels for reuse between tiles (DRAM re-reads fall smoothly as it grows)."),
    opt(GPU, "kernel.sm_bandwidth", "B/cycle", "64 B/cycle", "\"10 B/cycle\"", "DRAM bytes per cycle one busy SM / CU streams (its loads in flight over the memory latency); a kernel of few tiles, or a chip of few SMs, reads DRAM no faster than the busy SMs times this."),
    opt(GPU, "kernel.overlap", "number >= 1", "2", "2", "p of the p-norm combining arithmetic and DRAM time: 1 adds them, a large p takes their maximum."),
    // --- systolic ---
    v(SYSTOLIC, "clock", "Hz", "\"1 GHz\"", "Array clock; per-cycle figures become per-second ones with it."),
    sec(SYSTOLIC, "array", "The systolic array."),
    v(SYSTOLIC, "array.rows", "integer", "16", "Processing-element rows."),
    v(SYSTOLIC, "array.cols", "integer", "16", "Processing-element columns."),
    v(SYSTOLIC, "array.dataflow", "word: os | ws | is", "ws", "Output-, weight- or input-stationary."),
    v(SYSTOLIC, "array.mode", "word: overlapped | scalesim", "overlapped", "Timing: folds overlap with prefetch, or SCALE-Sim v3's exact cycles."),
    list(SYSTOLIC, "array.precisions", Need::Required, "[int8]", "Operand types the MACs take natively, each at one MAC per PE per cycle; other formats follow the precision rules (README: Cost engine)."),
    list(SYSTOLIC, "array.quantise", Need::Optional("none: a format that converts exactly to no native type is rejected"), "[bf16, fp16]", "Formats priced as quantised to the narrowest native type (stored and computed in it)."),
    sec(SYSTOLIC, "sram", "On-chip buffers: `unified`, or `operands`, or all of `ifmap`, `filter`, `ofmap`."),
    opt(SYSTOLIC, "sram.ifmap", "B", "none (give `unified` or `operands`)", "\"256 KiB\"", "Input-feature-map buffer (SCALE-Sim's split SRAMs)."),
    opt(SYSTOLIC, "sram.filter", "B", "none", "\"256 KiB\"", "Weight (filter) buffer."),
    opt(SYSTOLIC, "sram.ofmap", "B", "none", "\"128 KiB\"", "Output buffer."),
    opt(SYSTOLIC, "sram.unified", "B", "none", "\"512 KiB\"", "One buffer shared by inputs, weights and outputs."),
    opt(SYSTOLIC, "sram.operands", "B", "none", "\"512 KiB\"", "One scratchpad for both operands; outputs go to the accumulator (Gemmini)."),
    v(SYSTOLIC, "sram.accumulator", "B", "\"256 KiB\"", "Accumulator SRAM for partial sums."),
    sec(SYSTOLIC, "dram", "Off-chip memory."),
    v(SYSTOLIC, "dram.read", "B/cycle", "\"4 B/cycle\"", "DRAM read bandwidth per array clock (`\"51.2 GB/s / clock\"` converts)."),
    v(SYSTOLIC, "dram.write", "B/cycle", "\"4 B/cycle\"", "DRAM write bandwidth per array clock."),
    v(SYSTOLIC, "dram.capacity", "B", "\"4 GiB\"", "DRAM capacity (weights + KV cache must fit)."),
    sec(SYSTOLIC, "vector", "The vector unit beside the array."),
    v(SYSTOLIC, "vector.ops_per_cycle", "number", "16", "Elementwise operations per cycle (norms, softmax, activations)."),
    opt(SYSTOLIC, "vector.dequantise_ops", "number", "1", "1", "Vector operations per stored byte of weights dequantised in the load path (int4 or GGUF weights on an int8 array)."),
    // --- gpu and systolic: efficiency ---
    sec(CHIP, "efficiency", "Achieved fractions of peak and overheads (fitted by `llmforge calibrate`)."),
    v(CHIP, "efficiency.compute", "fraction", "0.75", "Fraction of the matrix peak GEMMs reach."),
    v(CHIP, "efficiency.memory", "fraction", "0.85", "Fraction of DRAM bandwidth streams reach."),
    v(CHIP, "efficiency.kernel_overhead", "s", "\"4 us\"", "Fixed cost per kernel (launch, sync)."),
    v(CHIP, "efficiency.token_overhead", "s", "\"0 s\"", "Fixed cost per forward pass (host-side scheduling)."),
    opt(CHIP, "efficiency.quantised_compute", "fraction", "1", "0.6", "Fraction of the peak GEMMs over block-quantised weights reach (dequantisation)."),
    opt(CHIP, "efficiency.score_bytes", "B", "\"0 B\" (fused attention)", "\"4 B\"", "DRAM bytes per attention score of a stack that does not fuse attention."),
    // --- gpu energy ---
    sec(GPU, "energy", "Energy per action and static power."),
    v(GPU, "energy.matrix_flop", "J/FLOP", "\"0.4 pJ/FLOP\"", "Energy per matrix-unit FLOP."),
    v(GPU, "energy.vector_flop", "J/FLOP", "\"1.5 pJ/FLOP\"", "Energy per vector-unit FLOP."),
    v(GPU, "energy.dram_byte", "J/B", "\"31 pJ/B\"", "Energy per DRAM byte."),
    v(GPU, "energy.l2_byte", "J/B", "\"5 pJ/B\"", "Energy per L2 byte."),
    v(GPU, "energy.static_power", "W", "\"60 W\"", "Power drawn whenever the device runs."),
    // --- systolic energy ---
    sec(SYSTOLIC, "energy", "Energy per action and leakage."),
    v(SYSTOLIC, "energy.mac", "J", "\"0.4 pJ\"", "Energy per multiply-accumulate."),
    v(SYSTOLIC, "energy.sram_byte", "J/B", "\"1.5 pJ/B\"", "Energy per SRAM byte."),
    v(SYSTOLIC, "energy.dram_byte", "J/B", "\"64 pJ/B\"", "Energy per DRAM byte."),
    v(SYSTOLIC, "energy.vector_op", "J", "\"1 pJ\"", "Energy per vector-unit operation."),
    v(SYSTOLIC, "energy.leakage", "W", "\"50 mW\"", "Static (leakage) power."),
    // --- ring ---
    v(RING, "max_chips", "integer", "8", "Chips the packing may use (a co-search design gene)."),
    sec(RING, "chip", "The template chip: DXTs of VACs (cores) of MACs."),
    v(RING, "chip.clock", "Hz", "\"200 MHz\"", "Chip clock."),
    v(RING, "chip.dxts", "integer", "8", "DXTs (clusters) per chip."),
    v(RING, "chip.vacs_per_dxt", "integer", "16", "Vector-MAC cores per DXT."),
    v(RING, "chip.macs_per_vac", "integer", "16", "INT8 MACs per core (a co-search design gene)."),
    v(RING, "chip.wmem_per_core", "B", "\"24 KiB\"", "Weight memory per core (a co-search design gene)."),
    v(RING, "chip.kv_per_core", "B", "\"8 KiB\"", "KV-cache memory per core of the template chip."),
    v(RING, "chip.wmem_port", "B", "\"128 bit\"", "Width of a core's WMEM read port (whole bytes)."),
    v(RING, "chip.kv_row", "B", "\"128 bit\"", "Width of a KV-cache row (whole bytes)."),
    v(RING, "chip.wmem_ref_depth", "integer", "1536", "WMEM rows at which `energy.wmem` holds."),
    v(RING, "chip.kv_ref_depth", "integer", "512", "KV rows at which `energy.kv` holds."),
    sec(RING, "link", "Chip-to-chip link of the ring."),
    v(RING, "link.bandwidth", "B/cycle", "\"16 B/cycle\"", "Link bandwidth per chip clock."),
    v(RING, "link.latency", "cycle", "\"10 cycle\"", "Link latency."),
    v(RING, "link.energy", "J/B", "\"1 pJ/bit\"", "Energy per transferred bit or byte."),
    sec(RING, "dram", "DRAM, only for layers spilled to it (`options.spill_to_dram`)."),
    v(RING, "dram.bandwidth", "B/cycle", "\"32 B/cycle\"", "DRAM bandwidth per chip clock."),
    v(RING, "dram.energy", "J/B", "\"64 pJ/B\"", "Energy per DRAM byte."),
    sec(RING, "energy", "Energy per byte of each memory and per action."),
    v(RING, "energy.kv", "J/B", "\"0.24 pJ/B\"", "KV-cache SRAM, per byte at `chip.kv_ref_depth`."),
    v(RING, "energy.wmem", "J/B", "\"0.243 pJ/B\"", "Weight SRAM, per byte at `chip.wmem_ref_depth`."),
    v(RING, "energy.head_sram", "J/B", "\"0.14 pJ/B\"", "Per-DXT head SRAM, per byte."),
    v(RING, "energy.global_sram", "J/B", "\"0.17 pJ/B\"", "Per-chip global SRAM, per byte."),
    v(RING, "energy.mac", "J", "\"0.2 pJ\"", "Per INT8 MAC."),
    v(RING, "energy.accumulator", "J", "\"0.05 pJ\"", "Per accumulator access."),
    v(RING, "energy.softmax", "J", "\"0.5 pJ\"", "Per softmax element."),
    v(RING, "energy.norm", "J", "\"0.3 pJ\"", "Per normalisation element."),
    v(RING, "energy.v_column_read_factor", "number", "1.2", "Extra cost of column-wise V reads."),
    v(RING, "energy.kv_write_factor", "number", "1.06", "Extra cost of a KV write over a read."),
    v(RING, "energy.sram_depth_exponent", "number", "0.78", "SRAM energy scales as depth^exponent."),
    sec(RING, "area", "Silicon area of the blocks (for the envelope)."),
    v(RING, "area.mac", "m^2", "\"135.685 um^2\"", "Per MAC."),
    v(RING, "area.accumulator", "m^2", "\"5474.79 um^2\"", "Accumulator, per core."),
    v(RING, "area.sram", "m^2/B", "\"0.711316 um^2/B\"", "WMEM and KV SRAM, per byte."),
    v(RING, "area.head_sram", "m^2", "\"1453.80 um^2\"", "Head SRAM, per DXT."),
    v(RING, "area.global_sram", "m^2", "\"4824.14 um^2\"", "Global SRAM, per chip."),
    sec(RING, "leakage", "Leakage energy per cycle."),
    v(RING, "leakage.sram", "J/(B cycle)", "\"5.907e-7 pJ/B/cycle\"", "Per SRAM byte per cycle."),
    v(RING, "leakage.accumulator", "J/cycle", "\"1.7709e-3 pJ/cycle\"", "Per core per cycle."),
    v(RING, "leakage.head_sram", "J/cycle", "\"1.7442e-3 pJ/cycle\"", "Per DXT per cycle."),
    v(RING, "leakage.global_sram", "J/cycle", "\"5.3914e-3 pJ/cycle\"", "Per chip per cycle."),
    // --- envelope (every kind; required for a ring) ---
    opt_sec(CHIP, "envelope", "no limits", "Limits a co-search point must meet."),
    sec(RING, "envelope", "Limits of the ring's co-search (both required)."),
    opt(CHIP, "envelope.area", "m^2", "no limit (only rings have an area model)", "\"800 mm^2\"", "Total silicon area (rings only)."),
    opt(CHIP, "envelope.power", "W", "no limit", "\"100 W\"", "Average power of the busier phase."),
    v(RING, "envelope.area", "m^2", "\"800 mm^2\"", "Silicon area of all chips."),
    v(RING, "envelope.power", "W", "\"100 W\"", "Average power of the busier phase."),
    sec(RING, "packing", "How a model's layers are packed onto chips."),
    v(RING, "packing.weight_headroom", "number", "1.15", "A chip holds at most WMEM / headroom of weights (>= 1)."),
    v(RING, "packing.kv_headroom", "number", "1.15", "KV per core >= largest chip KV x headroom / cores (>= 1)."),
    v(RING, "packing.min_kv_per_core", "B", "\"8 KiB\"", "Least KV memory per core."),
    v(RING, "packing.core_doublings", "integer", "6", "Times the core count may double to fit (at most 20)."),
    opt(RING, "packing.max_cores_per_chip", "integer", "no limit", "4096", "Largest core count of a chip (a power of two)."),
    opt(RING, "packing.chip_sizing", "word: smallest_fitting | smallest_total_area", "smallest_fitting", "smallest_fitting", "Which chip size the packing picks."),
    sec(RING, "options", "Modelling choices."),
    v(RING, "options.decode_context", "word: midpoint | average", "midpoint", "Price one decode step at P + D/2, or average every step."),
    v(RING, "options.lm_head", "word: excluded | included", "excluded", "Whether the LM head is priced."),
    v(RING, "options.spill_to_dram", "word: true | false", "false", "Let layers that do not fit spill to DRAM."),
    v(RING, "options.tensor_parallel", "word: true | false", "false", "Split a layer across chips."),
    opt_sec(RING, "ring", "the corrected timing", "Which cost model prices the ring."),
    opt(RING, "ring.timing", "word: corrected | paper_era", "corrected", "corrected", "The corrected model (the authors' later code) or the paper-era one that reproduces the paper's table (options as above, chip_sizing smallest_fitting, no max_cores_per_chip)."),
    // --- co-search (every kind) ---
    opt_sec(ALL, "cosearch", "no co-search", "A grid of hardware variants, searched per model (`substrate cosearch`)."),
    v(ALL, "cosearch.objective", "word: energy | energy_per_generated_token | tpot | ttft | area", "energy", "What the chosen point minimises."),
    grid(CHIP, "{clock: \"{800 MHz, 1 GHz}\"}"),
    grid(RING, "{max_chips: \"{8, 16, 32}\"}"),
];

const fn grid(kinds: Kinds, example: &'static str) -> Field {
    Field {
        kinds,
        path: "cosearch.grid",
        shape: Shape::Map,
        unit: "field path: candidates",
        need: Need::Required,
        example,
        meaning: "Axes of the grid: a numeric field's path and its candidates (a set or range).",
    }
}

/// The fields of `kind`, in file order.
pub fn fields(kind: &str) -> impl Iterator<Item = &'static Field> + '_ {
    FIELDS.iter().filter(move |f| f.kinds.has(kind))
}

fn field(kind: &str, path: &str) -> Option<&'static Field> {
    fields(kind).find(|f| f.path == path)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(p, _)| p)
}

fn leaf(path: &str) -> &str {
    path.rsplit_once('.').map_or(path, |(_, l)| l)
}

/// The direct children of section `path` ("" for the top level) of `kind`.
fn children<'k>(kind: &'k str, path: &'k str) -> impl Iterator<Item = &'static Field> + 'k {
    fields(kind).filter(move |f| parent(f.path) == path)
}

/// A YAML node of any shape, with positions: what the structural check walks.
#[derive(Debug)]
enum Node {
    Scalar,
    Null,
    Seq,
    Map(Vec<(Located<String>, Located<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Node::Seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Located<KeyText>>()? {
                    let value = map.next_value::<Located<Node>>()?;
                    let key = Located {
                        value: key.value.0,
                        loc: key.loc,
                        used_at: key.used_at,
                    };
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping key as text, whatever its YAML type.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, s: &str) -> Result<KeyText, E> {
                Ok(KeyText(s.to_string()))
            }
            fn visit_bool<E>(self, b: bool) -> Result<KeyText, E> {
                Ok(KeyText(b.to_string()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<KeyText, E> {
                Ok(KeyText(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<KeyText, E> {
                Ok(KeyText(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<KeyText, E> {
                Ok(KeyText(n.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Edit distance (for suggestions).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// What to write for a field: `key: example  # unit: meaning`.
fn how_to_write(f: &Field) -> String {
    match f.shape {
        Shape::Section => format!(
            "`{}:` is a section ({})",
            leaf(f.path),
            f.meaning.trim_end_matches('.')
        ),
        _ => format!(
            "e.g. `{}: {}` ({}; {})",
            leaf(f.path),
            f.example,
            f.unit,
            f.meaning.trim_end_matches('.')
        ),
    }
}

/// Checks the shape of a substrate file of `kind`: every unknown field, missing required field
/// or section, and value written where a section belongs (or the reverse), each located.
/// Values are not evaluated here.
pub fn check(file: &SourceFile, kind: &str) -> Vec<DescError> {
    let root: Located<Node> = match file.parse() {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    // Anchor for problems of the whole file: the `kind:` line.
    let top = match &root.value {
        Node::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.value == "kind")
            .map_or(root.loc, |(k, _)| k.loc),
        _ => root.loc,
    };
    walk(file, kind, "", &root, top, &mut errors);
    errors.sort_by_key(|e| (e.line(), e.column()));
    errors
}

fn walk(
    file: &SourceFile,
    kind: &str,
    path: &str,
    node: &Located<Node>,
    anchor: Loc,
    errors: &mut Vec<DescError>,
) {
    let Node::Map(entries) = &node.value else {
        return;
    };
    let known: Vec<&Field> = children(kind, path).collect();
    let present: Vec<&str> = entries.iter().map(|(k, _)| k.value.as_str()).collect();
    let missing: Vec<&Field> = known
        .iter()
        .copied()
        .filter(|f| f.need == Need::Required && !present.contains(&leaf(f.path)))
        .collect();
    let mut claimed: Vec<&str> = Vec::new();
    for (key, value) in entries {
        let full = if path.is_empty() {
            key.value.clone()
        } else {
            format!("{path}.{}", key.value)
        };
        let Some(f) = field(kind, &full) else {
            // The closest field of this section; a missing one first.
            let best = known
                .iter()
                .map(|f| (distance(&key.value, leaf(f.path)), !missing.contains(f), *f))
                .min_by_key(|(d, not_missing, f)| (*d, *not_missing, f.path));
            let names: Vec<&str> = known.iter().map(|f| leaf(f.path)).collect();
            let where_ = if path.is_empty() {
                format!("a {kind} substrate")
            } else {
                format!("section `{path}`")
            };
            let help = match best {
                Some((d, _, f)) if d <= 2.max(key.value.len() / 3) => {
                    if missing.contains(&f) {
                        claimed.push(leaf(f.path));
                    }
                    format!("did you mean `{}`? {}", leaf(f.path), how_to_write(f))
                }
                _ => format!("the fields of {where_}: {}", names.join(", ")),
            };
            errors.push(file.error(
                key.loc,
                format!("unknown field `{full}` in {where_}"),
                "not a field here",
                Some(help),
            ));
            continue;
        };
        match (f.shape, &value.value) {
            (Shape::Section, Node::Map(_)) => walk(file, kind, &full, value, key.loc, errors),
            (Shape::Section, _) => errors.push(file.error(
                value.loc,
                format!("`{full}` is a section, not a value"),
                "expected a mapping of fields",
                Some(format!(
                    "write its fields below it: {}",
                    children(kind, &full)
                        .filter(|c| c.need == Need::Required)
                        .map(|c| format!("{}: {}", leaf(c.path), c.example))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            )),
            (Shape::Map, Node::Map(_)) => {}
            (Shape::Map, _) => errors.push(file.error(
                value.loc,
                format!("`{full}` is a mapping ({}), not a value", f.unit),
                "expected a mapping",
                Some(how_to_write(f)),
            )),
            (Shape::Value, Node::Scalar) | (Shape::List, Node::Seq) => {}
            (Shape::List, _) => errors.push(file.error(
                value.loc,
                format!("`{full}` is a list ({}), not a single value", f.unit),
                "expected a list",
                Some(how_to_write(f)),
            )),
            (Shape::Value, Node::Null) => errors.push(file.error(
                key.loc,
                format!("`{full}` has no value"),
                "empty",
                Some(how_to_write(f)),
            )),
            (Shape::Value, Node::Map(_) | Node::Seq) => errors.push(file.error(
                value.loc,
                format!(
                    "`{full}` is a single value ({}), found a {}",
                    f.unit,
                    if matches!(value.value, Node::Seq) {
                        "list"
                    } else {
                        "section"
                    }
                ),
                "expected one value",
                Some(how_to_write(f)),
            )),
        }
    }
    for f in missing {
        if claimed.contains(&leaf(f.path)) {
            continue;
        }
        let where_ = if path.is_empty() {
            "this substrate".to_string()
        } else {
            format!("section `{path}`")
        };
        let what = if f.shape == Shape::Section {
            "section"
        } else {
            "field"
        };
        errors.push(file.error(
            anchor,
            format!("missing {what} `{}` in {where_}", f.path),
            format!("`{}` is required here", leaf(f.path)),
            Some(match f.shape {
                Shape::Section => format!(
                    "add `{}:` with {}",
                    leaf(f.path),
                    children(kind, f.path)
                        .filter(|c| c.need == Need::Required)
                        .map(|c| format!("{}: {}", leaf(c.path), c.example))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => format!("add {}", how_to_write(f)),
            }),
        ));
    }
}

/// Markdown-safe table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// `dsl/SUBSTRATES.md`: every field of every kind.
pub fn reference_markdown() -> String {
    let mut s = String::new();
    s.push_str(
        "# Substrate files: every field\n\n\
         <!-- Generated from src/substrate/schema.rs by `LLMFORGE_UPDATE_DOCS=1 cargo test`;\n     \
         a test fails when this file and the table differ. Do not edit by hand. -->\n\n\
         A substrate file describes one chip in YAML. Every number carries its unit, written in the\n\
         expression language of [README.md](README.md) (`\"1555 GB/s\"`, `\"16 * 16\"`, `\"clock * 4 B\"`);\n\
         a bare number is only allowed where the unit column says `integer`, `number` or `fraction`.\n\
         A value may refer to a field evaluated before it by its dotted path (`\"dram.read * 2\"`), or to\n\
         a sibling in its section by name. `--set path=expr` overrides any field on the command line.\n\
         `llmforge substrate new --kind gpu|systolic|ring` prints a commented template;\n\
         `llmforge substrate check FILE` reports every problem of a file at once, each with its line\n\
         and column.\n\n\
         Units: `B` bytes (`KiB`, `MiB`, `GiB` binary; `kB`, `MB`, `GB` decimal; `bit`), `Hz`, `s`,\n\
         `FLOP/s` (`TFLOP/s`, `TOPS`), `B/s`, `B/cycle`, `J` (`pJ`), `W`, `m^2` (`mm^2`, `um^2`).\n\
         Per-cycle figures convert with the clock: `\"51.2 GB/s / clock\"` is bytes per cycle.\n",
    );
    for (kind, title, intro) in [
        (
            "gpu",
            "GPU (`kind: gpu`)",
            "Streaming multiprocessors with matrix (tensor) and vector units, an L2 and DRAM; priced by the\nroofline or by the GPU kernel model (`src/sim/gpu.rs`). Example: `substrates/a100-sxm4-40gb.yaml`.",
        ),
        (
            "systolic",
            "Systolic array (`kind: systolic`)",
            "A rows x cols array of MACs with on-chip SRAM and DRAM, priced by the SCALE-Sim-compatible\nfold model (`src/sim/systolic.rs`). Example: `substrates/gemmini.yaml`.",
        ),
        (
            "ring",
            "Multi-chip ring (`kind: ring`)",
            "The LLMForge ring of identical chips running a decoder weight-stationary (`src/sim/ring/`).\nExample: `substrates/ring-edge.yaml`.",
        ),
    ] {
        let _ = write!(
            s,
            "\n## {title}\n\n{intro}\n\n| field | unit | required / default | example | meaning |\n|---|---|---|---|---|\n"
        );
        for f in fields(kind) {
            let need = match (f.shape, f.need) {
                (Shape::Section, Need::Required) => "required section".to_string(),
                (Shape::Section, Need::Optional(d)) => format!("optional section; without it: {d}"),
                (_, Need::Required) => "required".to_string(),
                (_, Need::Optional(d)) => format!("optional; default: {d}"),
            };
            let example = match (f.path, f.example) {
                ("kind", _) => format!("`{kind}`"),
                ("name", _) => format!("`my-{kind}`"),
                (_, "") => String::new(),
                (_, e) => format!("`{e}`"),
            };
            let unit = if f.shape == Shape::Section {
                "section"
            } else {
                f.unit
            };
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {} |",
                f.path,
                cell(unit),
                cell(&need),
                cell(&example),
                cell(f.meaning)
            );
        }
    }
    s
}

/// Optional fields the template writes out anyway: a systolic array needs one SRAM layout, a
/// GPU an fp16 or bf16 peak.
const TEMPLATE_INCLUDES: &[&str] = &["sram.unified", "matrix_peak.fp16", "matrix_peak.bf16"];

/// A commented template of a substrate file of `kind` that `substrate check` accepts: every
/// required field with its example, optional ones commented out with their default.
pub fn template(kind: &str) -> Option<String> {
    if !["gpu", "systolic", "ring"].contains(&kind) {
        return None;
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# A {kind} substrate: every field with its unit and meaning (dsl/SUBSTRATES.md).\n# Replace the example values with your chip's; check with `llmforge substrate check FILE`."
    );
    for f in fields(kind) {
        let depth = f.path.matches('.').count();
        let indent = "  ".repeat(depth);
        let key = leaf(f.path);
        let optional = matches!(f.need, Need::Optional(_)) && !TEMPLATE_INCLUDES.contains(&f.path);
        let prefix = if optional { "# " } else { "" };
        let note = match f.need {
            Need::Optional(d) => format!("optional, default {d}: {}", f.meaning),
            Need::Required => f.meaning.to_string(),
        };
        // an optional section's children are commented out with it
        let in_optional_section = {
            let mut p = parent(f.path);
            let mut any = false;
            while !p.is_empty() {
                if field(kind, p).is_some_and(|s| matches!(s.need, Need::Optional(_))) {
                    any = true;
                }
                p = parent(p);
            }
            any
        };
        let prefix = if in_optional_section { "# " } else { prefix };
        match f.shape {
            Shape::Section => {
                let _ = writeln!(s, "{prefix}{indent}{key}:  # {note}");
            }
            _ => {
                let value = match f.path {
                    "name" => format!("my-{kind}"),
                    "kind" => kind.to_string(),
                    _ => f.example.to_string(),
                };
                let _ = writeln!(s, "{prefix}{indent}{key}: {value}  # {}; {note}", f.unit);
            }
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document of `kind` with every field of the table (optional ones too), and `probe`
    /// added to section `section` ("" for the top level).
    fn full(kind: &str, section: &str, probe: bool) -> String {
        let mut s = String::new();
        for f in fields(kind) {
            let indent = "  ".repeat(f.path.matches('.').count());
            let key = leaf(f.path);
            match f.shape {
                Shape::Section => {
                    let _ = writeln!(s, "{indent}{key}:");
                }
                _ => {
                    let value = if f.path == "kind" { kind } else { f.example };
                    let _ = writeln!(s, "{indent}{key}: {value}");
                }
            }
            if probe
                && parent(f.path) == section
                && fields(kind).filter(|g| parent(g.path) == section).last() == Some(f)
            {
                let _ = writeln!(s, "{indent}zz_probe: 1");
            }
        }
        s
    }

    /// The field names a typed reader accepts in a section, from its unknown-field message.
    fn accepted(kind: &str, section: &str) -> Vec<String> {
        let file = SourceFile::new("probe.yaml", full(kind, section, true));
        let message = match kind {
            "gpu" => file.parse::<super::super::raw::RawGpu>().err(),
            "systolic" => file.parse::<super::super::raw::RawSystolic>().err(),
            _ => file.parse::<super::super::ring::RawRing>().err(),
        }
        .map(|e| e.message().to_string())
        .unwrap_or_default();
        assert!(message.contains("zz_probe"), "{kind} `{section}`: {message}");
        // "unknown field `zz_probe`, expected one of a, b, c" (or "expected a or b", "expected a")
        let list = message.split_once("expected").map_or("", |(_, l)| l);
        let list = list.trim().trim_start_matches("one of").replace(" or ", ",");
        let mut names: Vec<String> = list
            .split(',')
            .map(|n| n.trim().trim_matches('`').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        names
    }

    /// The table and the typed readers name the same fields, section by section: a field added
    /// to a reader but not to the table (or the reverse) fails here.
    #[test]
    fn table_matches_the_typed_readers() {
        for kind in ["gpu", "systolic", "ring"] {
            // the full document parses
            let file = SourceFile::new("full.yaml", full(kind, "", false));
            let ok = match kind {
                "gpu" => file.parse::<super::super::raw::RawGpu>().err(),
                "systolic" => file.parse::<super::super::raw::RawSystolic>().err(),
                _ => file.parse::<super::super::ring::RawRing>().err(),
            };
            assert!(ok.is_none(), "{kind}: {ok:?}");
            assert!(check(&file, kind).is_empty(), "{kind}: {:?}", check(&file, kind));
            let sections: Vec<&str> = std::iter::once("")
                .chain(fields(kind).filter(|f| f.shape == Shape::Section).map(|f| f.path))
                .filter(|s| *s != "matrix_peak")
                .collect();
            for section in sections {
                let mut table: Vec<String> = fields(kind)
                    .filter(|f| parent(f.path) == section)
                    .map(|f| leaf(f.path).to_string())
                    .collect();
                table.sort();
                assert_eq!(accepted(kind, section), table, "{kind} section `{section}`");
            }
        }
    }

    #[test]
    fn suggestions_find_typos() {
        assert_eq!(distance("clok", "clock"), 1);
        assert_eq!(distance("capacty", "capacity"), 1);
        assert_eq!(distance("", "ab"), 2);
    }
}
