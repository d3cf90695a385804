//! Hardware description of the ring: the chip template, the link, DRAM, the packing rules
//! and the design envelope, one design point of its co-search ([`RingDesign`]), the modelling
//! options that select its timing model ([`RingOptions`]) and what a co-search minimises
//! ([`Objective`]). Raw parts are plain structs with public fields (the YAML loader fills
//! them); [`RingSpec::new`] validates them once and the cost model
//! (`sim::ring`) only ever sees a validated [`RingSpec`].
//!
//! These are descriptions of hardware and of modelling choices, not a model of cost: they
//! live in `substrate` so that `substrate` needs nothing from `sim` (ARCHITECTURE.md).

use crate::units::{Bytes, BytesPerCycle, Cycles, Hertz, Joules, SquareMeters, Watts};
use serde::{Deserialize, Serialize};

/// Errors of a ring description: a hardware parameter, a design point or a combination of
/// modelling options out of range. The loader reports them at the file's location; the cost
/// model wraps them in its own error.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RingSpecError {
    /// Occurs when a hardware parameter is out of range.
    #[error("ring spec: `{field}` {message}")]
    InvalidSpec { field: &'static str, message: String },
    /// Occurs when the modelling options contradict each other (the paper-era timing with
    /// an option only the corrected model has).
    #[error("ring options: `{field}`: {message}")]
    InvalidOptions { field: &'static str, message: String },
    /// Occurs when a design point is out of range.
    #[error("ring design: `{field}` {message}")]
    InvalidDesign { field: &'static str, message: String },
}

/// Per-action energies of one chip, at the reference SRAM depths.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingEnergy {
    /// One byte read from off-chip DRAM (only streamed weights and the embedding row).
    pub dram_per_byte: Joules,
    /// One byte read from the KV cache, at `kv_ref_depth`.
    pub kv_per_byte: Joules,
    /// One byte read from weight memory, at `wmem_ref_depth`.
    pub wmem_per_byte: Joules,
    /// One byte of activation in or out of the per-DXT head SRAM (not depth-scaled).
    pub head_sram_per_byte: Joules,
    /// One byte of the per-chip global SRAM. Kept for completeness: the corrected ring model
    /// prices no global-SRAM traffic, so nothing here multiplies it (see the module docs).
    pub global_sram_per_byte: Joules,
    /// One INT8 multiply-accumulate.
    pub mac: Joules,
    /// One accumulator access (a read-modify-write is two).
    pub accumulator_access: Joules,
    /// Softmax, per score element.
    pub softmax_per_element: Joules,
    /// RMSNorm, per element.
    pub norm_per_element: Joules,
    /// Factor on column-wise V reads from the KV cache (1.2).
    pub v_column_read_factor: f64,
    /// Factor on KV-cache writes (1.06).
    pub kv_write_factor: f64,
    /// SRAM energy per byte scales as (depth / reference depth)^exponent (0.78).
    pub sram_depth_exponent: f64,
}

/// Area coefficients (16 nm in the reference).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingArea {
    pub per_mac: SquareMeters,
    pub accumulator_per_core: SquareMeters,
    pub sram_per_byte: SquareMeters,
    pub head_sram_per_dxt: SquareMeters,
    pub global_sram_per_chip: SquareMeters,
}

/// Leakage energy per clock cycle.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingLeakage {
    /// Per byte of WMEM and KV cache, per cycle.
    pub sram_per_byte: Joules,
    pub accumulator_per_core: Joules,
    pub head_per_dxt: Joules,
    pub global_per_chip: Joules,
}

/// The chip template. A concrete chip of a design point takes its clock, ports and
/// coefficients from here; its core count, MACs per VAC, WMEM and KV per core come from the
/// grid point and the packing (the fields below describe the reference chip).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingChip {
    pub clock: Hertz,
    /// DXT tiles of the reference chip (8).
    pub n_dxt: u64,
    /// Vector-MAC units (cores) per DXT (16); also the KV-cache banks per DXT (one per core).
    pub vacs_per_dxt: u64,
    /// INT8 MACs per VAC, the GEMM model's `pe` (16).
    pub macs_per_vac: u64,
    pub wmem_per_core: Bytes,
    pub kv_per_core: Bytes,
    /// Width of the WMEM read port (128 bit = 16 B per cycle).
    pub wmem_port_bits: u64,
    /// Width of one KV-cache row (128 bit).
    pub kv_row_bits: u64,
    /// Rows of the reference WMEM (1536 x 128 b = 24 KiB).
    pub wmem_ref_depth: u64,
    /// Rows of the reference KV cache per core (512 x 128 b = 8 KiB).
    pub kv_ref_depth: u64,
    pub energy: RingEnergy,
    pub area: RingArea,
    pub leakage: RingLeakage,
}

impl RingChip {
    /// Cores of the reference chip, n_dxt * vacs_per_dxt (128).
    #[inline]
    pub fn n_cores(&self) -> u64 {
        self.n_dxt * self.vacs_per_dxt
    }
    /// INT8 MACs of the reference chip (2048).
    #[inline]
    pub fn n_macs(&self) -> u64 {
        self.n_cores() * self.macs_per_vac
    }
}

/// One chip-to-chip link of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingLink {
    pub bytes_per_cycle: BytesPerCycle,
    pub latency: Cycles,
    pub energy_per_bit: Joules,
}

/// Off-chip memory, used only for weights that do not fit on chip (and the embedding row when
/// the LM head is priced).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingDram {
    /// Read bandwidth at the ring clock (our assumption: 32 B/cycle = 6.4 GB/s at 200 MHz,
    /// one LPDDR4x-class channel; the paper's ring never touches DRAM).
    pub bytes_per_cycle: BytesPerCycle,
}

/// The design limits of the co-search.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Total silicon of all chips.
    pub max_area: SquareMeters,
    /// The larger of the prefill and decode average powers.
    pub max_power: Watts,
}

/// The packing rules of the corrected model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackingRules {
    /// WMEM headroom: a chip holds at most WMEM_total / 1.15 of weights.
    pub weight_headroom: f64,
    /// KV headroom: KV per core >= largest chip KV * 1.15 / n_cores.
    pub kv_headroom: f64,
    /// KV per core is at least this (8 KiB).
    pub min_kv_per_core: Bytes,
    /// Core counts tried: start, 2*start, ... (6 doublings: 7 candidates).
    pub core_doublings: u32,
    /// Largest core count a chip may have. `None` (the reference) sizes every chip so that the
    /// largest layer fits; a limit makes oversize layers possible (tensor-parallel or streamed).
    pub max_cores_per_chip: Option<u64>,
    /// Which of the core-count candidates becomes the chip.
    pub chip_sizing: ChipSizing,
}

/// How the packing picks a chip's core count among start x 2^0 ..= start x 2^core_doublings.
///
/// The reference ("Packing", shared/reference/llmforge.md) says: cores start at
/// next_pow2(ceil(largest_layer*1.15/wmem_per_core)), "doubled up to 6 times"; "keep the packing
/// with the smallest n_chips x chip area; reject configs needing more than max_chips". Two
/// readings; see the ring module docs for why [`ChipSizing::SmallestFitting`] is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChipSizing {
    /// Double only while the greedy packing needs more than `max_chips` chips: the chip is the
    /// smallest candidate that fits the budget ("up to 6 times" as a stopping rule), and
    /// "smallest n_chips x chip area" then ranks what differs between design points.
    SmallestFitting,
    /// Price every candidate within `max_chips` and keep the smallest n_chips x chip area.
    /// Doubling the cores halves the chips, so the silicon is nearly constant and the per-chip
    /// global SRAM (0.005 mm^2) decides: this picks the fewest, largest chips.
    SmallestTotalArea,
}

/// A validated ring description.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RingSpec {
    chip: RingChip,
    link: RingLink,
    dram: RingDram,
    envelope: Envelope,
    packing: PackingRules,
}

fn positive(field: &'static str, v: f64) -> Result<(), RingSpecError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(RingSpecError::InvalidSpec {
            field,
            message: format!("must be a finite positive number, got {v}"),
        })
    }
}

fn non_negative(field: &'static str, v: f64) -> Result<(), RingSpecError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(RingSpecError::InvalidSpec {
            field,
            message: format!("must be finite and >= 0, got {v}"),
        })
    }
}

fn at_least_one(field: &'static str, v: u64) -> Result<(), RingSpecError> {
    if v >= 1 {
        Ok(())
    } else {
        Err(RingSpecError::InvalidSpec {
            field,
            message: "must be at least 1".into(),
        })
    }
}

impl RingSpec {
    /// Validates the parts; the first problem found is returned.
    pub fn new(
        chip: RingChip,
        link: RingLink,
        dram: RingDram,
        envelope: Envelope,
        packing: PackingRules,
    ) -> Result<RingSpec, RingSpecError> {
        positive("chip.clock", chip.clock.get())?;
        at_least_one("chip.n_dxt", chip.n_dxt)?;
        at_least_one("chip.vacs_per_dxt", chip.vacs_per_dxt)?;
        at_least_one("chip.macs_per_vac", chip.macs_per_vac)?;
        positive("chip.wmem_per_core", chip.wmem_per_core.get())?;
        positive("chip.kv_per_core", chip.kv_per_core.get())?;
        for (field, bits) in [
            ("chip.wmem_port_bits", chip.wmem_port_bits),
            ("chip.kv_row_bits", chip.kv_row_bits),
        ] {
            if bits == 0 || bits % 8 != 0 {
                return Err(RingSpecError::InvalidSpec {
                    field,
                    message: format!("must be a positive multiple of 8 bits, got {bits}"),
                });
            }
        }
        at_least_one("chip.wmem_ref_depth", chip.wmem_ref_depth)?;
        at_least_one("chip.kv_ref_depth", chip.kv_ref_depth)?;
        let e = &chip.energy;
        for (field, v) in [
            ("chip.energy.dram_per_byte", e.dram_per_byte.get()),
            ("chip.energy.kv_per_byte", e.kv_per_byte.get()),
            ("chip.energy.wmem_per_byte", e.wmem_per_byte.get()),
            ("chip.energy.head_sram_per_byte", e.head_sram_per_byte.get()),
            ("chip.energy.global_sram_per_byte", e.global_sram_per_byte.get()),
            ("chip.energy.mac", e.mac.get()),
            ("chip.energy.accumulator_access", e.accumulator_access.get()),
            ("chip.energy.softmax_per_element", e.softmax_per_element.get()),
            ("chip.energy.norm_per_element", e.norm_per_element.get()),
            ("chip.energy.sram_depth_exponent", e.sram_depth_exponent),
        ] {
            non_negative(field, v)?;
        }
        positive("chip.energy.v_column_read_factor", e.v_column_read_factor)?;
        positive("chip.energy.kv_write_factor", e.kv_write_factor)?;
        let a = &chip.area;
        for (field, v) in [
            ("chip.area.per_mac", a.per_mac.get()),
            ("chip.area.accumulator_per_core", a.accumulator_per_core.get()),
            ("chip.area.sram_per_byte", a.sram_per_byte.get()),
            ("chip.area.head_sram_per_dxt", a.head_sram_per_dxt.get()),
            ("chip.area.global_sram_per_chip", a.global_sram_per_chip.get()),
        ] {
            non_negative(field, v)?;
        }
        let l = &chip.leakage;
        for (field, v) in [
            ("chip.leakage.sram_per_byte", l.sram_per_byte.get()),
            ("chip.leakage.accumulator_per_core", l.accumulator_per_core.get()),
            ("chip.leakage.head_per_dxt", l.head_per_dxt.get()),
            ("chip.leakage.global_per_chip", l.global_per_chip.get()),
        ] {
            non_negative(field, v)?;
        }
        positive("link.bytes_per_cycle", link.bytes_per_cycle.get())?;
        non_negative("link.latency", link.latency.get())?;
        non_negative("link.energy_per_bit", link.energy_per_bit.get())?;
        positive("dram.bytes_per_cycle", dram.bytes_per_cycle.get())?;
        positive("envelope.max_area", envelope.max_area.get())?;
        positive("envelope.max_power", envelope.max_power.get())?;
        if !(packing.weight_headroom.is_finite() && packing.weight_headroom >= 1.0) {
            return Err(RingSpecError::InvalidSpec {
                field: "packing.weight_headroom",
                message: format!("must be >= 1, got {}", packing.weight_headroom),
            });
        }
        if !(packing.kv_headroom.is_finite() && packing.kv_headroom >= 1.0) {
            return Err(RingSpecError::InvalidSpec {
                field: "packing.kv_headroom",
                message: format!("must be >= 1, got {}", packing.kv_headroom),
            });
        }
        positive("packing.min_kv_per_core", packing.min_kv_per_core.get())?;
        if packing.core_doublings > 20 {
            return Err(RingSpecError::InvalidSpec {
                field: "packing.core_doublings",
                message: format!("must be at most 20, got {}", packing.core_doublings),
            });
        }
        if let Some(max) = packing.max_cores_per_chip {
            if max == 0 || !max.is_power_of_two() {
                return Err(RingSpecError::InvalidSpec {
                    field: "packing.max_cores_per_chip",
                    message: format!("must be a power of two >= 1, got {max}"),
                });
            }
        }
        Ok(RingSpec {
            chip,
            link,
            dram,
            envelope,
            packing,
        })
    }

    /// The corrected ring model of the LLMForge authors' later code, with every constant of
    /// the reference (see `shared/reference/llmforge.md`). The DRAM bandwidth is ours (the
    /// paper's ring never streams weights); `max_cores_per_chip` is `None`, as in the reference.
    pub fn llmforge_reference() -> RingSpec {
        let chip = RingChip {
            clock: Hertz::mhz(200.0),
            n_dxt: 8,
            vacs_per_dxt: 16,
            macs_per_vac: 16,
            wmem_per_core: Bytes::kib(24.0),
            kv_per_core: Bytes::kib(8.0),
            wmem_port_bits: 128,
            kv_row_bits: 128,
            wmem_ref_depth: 1536,
            kv_ref_depth: 512,
            energy: RingEnergy {
                dram_per_byte: Joules::pj(64.0),
                kv_per_byte: Joules::pj(0.24),
                wmem_per_byte: Joules::pj(0.243),
                head_sram_per_byte: Joules::pj(0.14),
                global_sram_per_byte: Joules::pj(0.17),
                mac: Joules::pj(0.2),
                accumulator_access: Joules::pj(0.05),
                softmax_per_element: Joules::pj(0.5),
                norm_per_element: Joules::pj(0.3),
                v_column_read_factor: 1.2,
                kv_write_factor: 1.06,
                sram_depth_exponent: 0.78,
            },
            area: RingArea {
                per_mac: SquareMeters::um2(135.685),
                accumulator_per_core: SquareMeters::um2(5474.79),
                sram_per_byte: SquareMeters::um2(0.711316),
                head_sram_per_dxt: SquareMeters::um2(1453.80),
                global_sram_per_chip: SquareMeters::um2(4824.14),
            },
            leakage: RingLeakage {
                sram_per_byte: Joules::pj(5.907e-7),
                accumulator_per_core: Joules::pj(1.7709e-3),
                head_per_dxt: Joules::pj(1.7442e-3),
                global_per_chip: Joules::pj(5.3914e-3),
            },
        };
        let link = RingLink {
            bytes_per_cycle: BytesPerCycle::new(16.0),
            latency: Cycles::new(10.0),
            energy_per_bit: Joules::pj(1.0),
        };
        let dram = RingDram {
            bytes_per_cycle: BytesPerCycle::new(32.0),
        };
        let envelope = Envelope {
            max_area: SquareMeters::mm2(800.0),
            max_power: Watts::new(100.0),
        };
        let packing = PackingRules {
            weight_headroom: 1.15,
            kv_headroom: 1.15,
            min_kv_per_core: Bytes::kib(8.0),
            core_doublings: 6,
            max_cores_per_chip: None,
            chip_sizing: ChipSizing::SmallestFitting,
        };
        RingSpec {
            chip,
            link,
            dram,
            envelope,
            packing,
        }
    }

    /// The reference with a per-chip core limit of 4096 (32x the 128-core reference chip;
    /// 96 MiB of WMEM at 24 KiB/core). Our choice, not the paper's: it makes layers larger
    /// than one chip possible, so tensor-parallel splitting and DRAM streaming come into play.
    pub fn llmforge_extended() -> RingSpec {
        let mut spec = RingSpec::llmforge_reference();
        spec.packing.max_cores_per_chip = Some(4096);
        spec
    }

    #[inline]
    pub fn chip(&self) -> &RingChip {
        &self.chip
    }
    #[inline]
    pub fn link(&self) -> &RingLink {
        &self.link
    }
    #[inline]
    pub fn dram(&self) -> &RingDram {
        &self.dram
    }
    #[inline]
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
    #[inline]
    pub fn packing(&self) -> &PackingRules {
        &self.packing
    }

    /// The same spec with another envelope (validated).
    #[inline]
    pub fn with_envelope(&self, envelope: Envelope) -> Result<RingSpec, RingSpecError> {
        RingSpec::new(self.chip, self.link, self.dram, envelope, self.packing)
    }
    /// The same spec with other packing rules (validated).
    #[inline]
    pub fn with_packing(&self, packing: PackingRules) -> Result<RingSpec, RingSpecError> {
        RingSpec::new(self.chip, self.link, self.dram, self.envelope, packing)
    }
}

/// One concrete chip of a design: what the grid point and the packing fixed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChipConfig {
    pub n_cores: u64,
    /// ceil(n_cores / vacs_per_dxt).
    pub n_dxt: u64,
    pub macs_per_vac: u64,
    pub wmem_per_core: Bytes,
    pub kv_per_core: Bytes,
}

impl ChipConfig {
    /// Chip area = n_cores*(pe*A_mac + A_acc + (WMEM_B + KV_B)*A_sram) + n_dxt*A_head + A_global.
    #[inline]
    pub fn area(&self, chip: &RingChip) -> SquareMeters {
        SquareMeters::new(self.area_m2(chip))
    }

    #[inline]
    pub(crate) fn area_m2(&self, chip: &RingChip) -> f64 {
        let a = &chip.area;
        let per_core = self.macs_per_vac as f64 * a.per_mac.get()
            + a.accumulator_per_core.get()
            + (self.wmem_per_core.get() + self.kv_per_core.get()) * a.sram_per_byte.get();
        self.n_cores as f64 * per_core
            + self.n_dxt as f64 * a.head_sram_per_dxt.get()
            + a.global_sram_per_chip.get()
    }

    /// Leakage of one chip per cycle: SRAM bytes, accumulators, head SRAMs, global SRAM.
    #[inline]
    pub fn leakage_per_cycle(&self, chip: &RingChip) -> Joules {
        let l = &chip.leakage;
        let sram = self.n_cores as f64 * (self.wmem_per_core.get() + self.kv_per_core.get());
        sram * l.sram_per_byte
            + self.n_cores as f64 * l.accumulator_per_core
            + self.n_dxt as f64 * l.head_per_dxt
            + l.global_per_chip
    }

    /// WMEM energy-per-byte factor, (rows / reference rows)^0.78 with 128-bit rows.
    #[inline]
    pub fn wmem_depth_scale(&self, chip: &RingChip) -> f64 {
        let rows = self.wmem_per_core.get() / (chip.wmem_port_bits as f64 / 8.0);
        (rows / chip.wmem_ref_depth as f64).powf(chip.energy.sram_depth_exponent)
    }

    /// KV-cache energy-per-byte factor, (rows / reference rows)^0.78.
    #[inline]
    pub fn kv_depth_scale(&self, chip: &RingChip) -> f64 {
        let rows = self.kv_per_core.get() / (chip.kv_row_bits as f64 / 8.0);
        (rows / chip.kv_ref_depth as f64).powf(chip.energy.sram_depth_exponent)
    }

    /// Total WMEM of the chip.
    #[inline]
    pub fn wmem_total(&self) -> Bytes {
        self.wmem_per_core * self.n_cores as f64
    }
}

/// One point of the hardware grid: the genes the co-search chooses. The packing then fixes
/// the core count and the KV cache per core.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingDesign {
    pub macs_per_vac: u64,
    pub max_chips: u64,
    pub wmem_per_core: Bytes,
}

impl RingDesign {
    pub fn new(macs_per_vac: u64, max_chips: u64, wmem_per_core: Bytes) -> Result<RingDesign, RingSpecError> {
        if macs_per_vac == 0 {
            return Err(RingSpecError::InvalidDesign {
                field: "macs_per_vac",
                message: "must be at least 1".into(),
            });
        }
        if max_chips == 0 {
            return Err(RingSpecError::InvalidDesign {
                field: "max_chips",
                message: "must be at least 1".into(),
            });
        }
        if !(wmem_per_core.get().is_finite() && wmem_per_core.get() >= 1.0) {
            return Err(RingSpecError::InvalidDesign {
                field: "wmem_per_core",
                message: format!("must be at least 1 byte, got {wmem_per_core:?}"),
            });
        }
        Ok(RingDesign {
            macs_per_vac,
            max_chips,
            wmem_per_core,
        })
    }
}

/// What the co-search minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The paper's energy per token (`RingReport::energy_per_token_paper` of `sim::ring`): (E_prefill +
    /// D*E_step)/(P + D) under the corrected timing, E_step under the paper-era one.
    Energy,
    /// Request energy per generated token, (E_prefill + D*E_step)/D.
    EnergyPerGeneratedToken,
    Tpot,
    Ttft,
    /// Total silicon, n_chips x chip area.
    Area,
}

/// The context length a decode step is priced at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeContext {
    /// One step at ctx = P + D/2 (integer division): the paper-comparable form, the decode
    /// analogue of the prefill's P/2.
    Midpoint,
    /// The exact mean over the D steps, step j (1..=D) attending over ctx = P + j.
    Average,
}

/// Whether the LM head (and the embedding lookup) is priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LmHead {
    /// Not priced, as in the paper's ring model.
    Excluded,
    /// The LM head is one more "layer" after the last block (V*d INT8 weights, one GEMM
    /// d -> V on whichever chip the packing puts it), plus a final norm and one d-byte
    /// embedding row read from DRAM per token.
    Included,
}

/// Which timing (and energy) model prices a ring design.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingTiming {
    /// The corrected model of the LLMForge authors' later code (the default): every layer
    /// priced with its own shape, KV reads shared by a group's heads, depth-scaled SRAM
    /// energy, leakage, the token-pipelined prefill at ctx = P/2.
    #[default]
    Corrected,
    /// The model behind the paper's ring table, reconstructed from the release's saved
    /// results (`sim::ring::paper_era`): every layer priced like the first, decode at a fixed
    /// context of 2048, a serial softmax unit, no leakage.
    PaperEra,
}

impl RingTiming {
    /// The name in files (`ring.timing`).
    pub fn name(self) -> &'static str {
        match self {
            RingTiming::Corrected => "corrected",
            RingTiming::PaperEra => "paper_era",
        }
    }
}

/// Modelling choices that are not hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingOptions {
    /// The timing model; the options below refine the corrected one (the paper-era model
    /// takes them at their [`RingOptions::corrected`] values, see [`RingOptions::validate`]).
    /// Absent in serialized options written before it existed: corrected.
    #[serde(default)]
    pub timing: RingTiming,
    pub decode_context: DecodeContext,
    pub lm_head: LmHead,
    /// Layers that do not fit on the chips stream their weights from DRAM every token
    /// instead of making the design infeasible.
    pub spill_to_dram: bool,
    /// A layer larger than one chip's WMEM may be split across k chips (ring all-reduce).
    pub tensor_parallel: bool,
}

impl RingOptions {
    /// The corrected model as the reference states it: midpoint decode, no LM head, no
    /// spill, no splitting.
    pub fn corrected() -> RingOptions {
        RingOptions {
            timing: RingTiming::Corrected,
            decode_context: DecodeContext::Midpoint,
            lm_head: LmHead::Excluded,
            spill_to_dram: false,
            tensor_parallel: false,
        }
    }

    /// The paper-era model (`sim::ring::paper_era`); the other options at their corrected values.
    pub fn paper_era() -> RingOptions {
        RingOptions {
            timing: RingTiming::PaperEra,
            ..RingOptions::corrected()
        }
    }

    /// The complete corrected model: exact decode average, LM head priced, spill and
    /// splitting allowed.
    pub fn extended() -> RingOptions {
        RingOptions {
            timing: RingTiming::Corrected,
            decode_context: DecodeContext::Average,
            lm_head: LmHead::Included,
            spill_to_dram: true,
            tensor_parallel: true,
        }
    }

    /// The options the paper-era model cannot honour: it decodes at its fixed context,
    /// prices no LM head and neither spills nor splits layers. Returns the first offending
    /// option's name and why; always `Ok` under the corrected timing.
    #[inline]
    pub fn validate(&self) -> Result<(), RingSpecError> {
        if self.timing != RingTiming::PaperEra {
            return Ok(());
        }
        let bad = |field: &'static str, what: &str| {
            Err(RingSpecError::InvalidOptions {
                field,
                message: format!("{what} is not part of the paper-era model (ring.timing: paper_era)"),
            })
        };
        if self.decode_context != DecodeContext::Midpoint {
            return bad(
                "decode_context",
                "an exact decode average (it prices decode at a fixed context of 2048)",
            );
        }
        if self.lm_head != LmHead::Excluded {
            return bad("lm_head", "the LM head");
        }
        if self.spill_to_dram {
            return bad("spill_to_dram", "spilling to DRAM");
        }
        if self.tensor_parallel {
            return bad("tensor_parallel", "tensor parallelism");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_chip() -> ChipConfig {
        ChipConfig {
            n_cores: 128,
            n_dxt: 8,
            macs_per_vac: 16,
            wmem_per_core: Bytes::kib(24.0),
            kv_per_core: Bytes::kib(8.0),
        }
    }

    #[test]
    fn reference_is_valid() {
        let s = RingSpec::llmforge_reference();
        let again = RingSpec::new(*s.chip(), *s.link(), *s.dram(), *s.envelope(), *s.packing()).unwrap();
        assert_eq!(again, s);
        assert_eq!(s.chip().n_cores(), 128);
        assert_eq!(s.chip().n_macs(), 2048);
        assert!(
            RingSpec::new(
                *s.chip(),
                *s.link(),
                *s.dram(),
                *s.envelope(),
                *RingSpec::llmforge_extended().packing()
            )
            .is_ok()
        );
    }

    #[test]
    fn area_of_the_reference_chip() {
        // per core: 16*135.685 + 5474.79 + (24576 + 8192)*0.711316
        //         = 2170.96 + 5474.79 + 23308.402688 = 30954.152688 um^2
        // chip: 128 * 30954.152688 + 8*1453.8 + 4824.14 = 3978586.084064 um^2
        let s = RingSpec::llmforge_reference();
        let a = reference_chip().area(s.chip()).get() * 1e12;
        assert!((a - 3_978_586.084064).abs() < 1e-3, "{a}");
    }

    #[test]
    fn leakage_of_the_reference_chip() {
        // 128*32768 B * 5.907e-7 + 128*1.7709e-3 + 8*1.7442e-3 + 5.3914e-3
        // = 2.477584... + 0.2266752 + 0.0139536 + 0.0053914 pJ per cycle
        let s = RingSpec::llmforge_reference();
        let want = 4_194_304.0 * 5.907e-7 + 128.0 * 1.7709e-3 + 8.0 * 1.7442e-3 + 5.3914e-3;
        let got = reference_chip().leakage_per_cycle(s.chip()).as_pj();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!((got - 2.7236).abs() < 1e-3);
    }

    #[test]
    fn sram_depth_scaling() {
        // 24 KiB / 16 B = 1536 rows = reference -> 1; 48 KiB -> 3072 rows -> 2^0.78
        let s = RingSpec::llmforge_reference();
        let mut c = reference_chip();
        assert_eq!(c.wmem_depth_scale(s.chip()), 1.0);
        assert_eq!(c.kv_depth_scale(s.chip()), 1.0);
        c.wmem_per_core = Bytes::kib(48.0);
        c.kv_per_core = Bytes::kib(32.0);
        assert!((c.wmem_depth_scale(s.chip()) - 2f64.powf(0.78)).abs() < 1e-12);
        assert!((c.kv_depth_scale(s.chip()) - 4f64.powf(0.78)).abs() < 1e-12);
    }

    #[test]
    fn bad_parts_are_named() {
        let s = RingSpec::llmforge_reference();
        let mut chip = *s.chip();
        chip.clock = Hertz::new(0.0);
        let err = RingSpec::new(chip, *s.link(), *s.dram(), *s.envelope(), *s.packing()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ring spec: `chip.clock` must be a finite positive number, got 0"
        );
        let mut chip = *s.chip();
        chip.wmem_port_bits = 12;
        assert!(matches!(
            RingSpec::new(chip, *s.link(), *s.dram(), *s.envelope(), *s.packing()),
            Err(RingSpecError::InvalidSpec {
                field: "chip.wmem_port_bits",
                ..
            })
        ));
        let packing = PackingRules {
            max_cores_per_chip: Some(100),
            ..*s.packing()
        };
        assert!(s.with_packing(packing).is_err());
        let packing = PackingRules {
            weight_headroom: 0.9,
            ..*s.packing()
        };
        assert!(s.with_packing(packing).is_err());
    }
}
