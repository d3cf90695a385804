//! The `kind: ring` file: the multi-chip ring accelerator of `sim::ring` in YAML.
//!
//! ```yaml
//! kind: ring
//! max_chips: 8                      # design: chips the packing may use
//! chip: {clock, dxts, vacs_per_dxt, macs_per_vac, wmem_per_core, kv_per_core,
//!        wmem_port, kv_row, wmem_ref_depth, kv_ref_depth}
//! link: {bandwidth, latency, energy}            # "16 B/cycle", "10 cycle", "1 pJ/bit"
//! dram: {bandwidth, energy}                     # spilled weights only
//! energy: {kv, wmem, head_sram, global_sram,    # per byte ("0.24 pJ/B")
//!          mac, accumulator, softmax, norm,     # per action ("0.2 pJ")
//!          v_column_read_factor, kv_write_factor, sram_depth_exponent}
//! area: {mac, accumulator, sram, head_sram, global_sram}   # "135.685 um^2", "0.711316 um^2/B"
//! leakage: {sram, accumulator, head_sram, global_sram}     # "5.907e-7 pJ/B/cycle", "... pJ/cycle"
//! envelope: {area, power}                       # required for a ring
//! packing: {weight_headroom, kv_headroom, min_kv_per_core, core_doublings,
//!           max_cores_per_chip,                 # optional: no limit (the reference)
//!           chip_sizing}                        # optional: smallest_fitting (default) or
//!                                               #   smallest_total_area
//! options: {decode_context, lm_head, spill_to_dram, tensor_parallel}
//! ring: {timing}                                # optional: corrected (default) or paper_era
//! ```
//!
//! `ring.timing` picks the cost model: `corrected` (the LLMForge authors' later code, the
//! default) or `paper_era` (the model behind the paper's table, `sim::ring::paper_era`),
//! which takes the options at midpoint / excluded / false / false and sizes chips the
//! smallest fitting way, without a per-chip core limit; other values there are located errors.
//!
//! `chip.macs_per_vac`, `chip.wmem_per_core` and `max_chips` are the design genes of the
//! ring's co-search ([`RingDesign`]); the packing of a model then fixes each chip's core count
//! and KV cache. Every value is checked here with its location; [`RingSpec::new`] then checks
//! the assembled spec once more (its rules are the same, so it fails only on a bug).

use super::cosearch::{RawCoSearch, cosearch};
use super::raw::{Ctx, RawEnvelope, envelope, non_negative, positive, positive_int};
use super::ring_spec::{
    ChipSizing, DecodeContext, Envelope, LmHead, PackingRules, RingArea, RingChip, RingDesign, RingDram,
    RingEnergy, RingLeakage, RingLink, RingOptions, RingSpec, RingTiming,
};
use super::{Efficiency, Kind, Ring, Substrate};
use crate::dsl::Dim;
use crate::units::{Bytes, BytesPerCycle, Cycles, Hertz, Joules, SquareMeters};
use crate::yaml::{Expression, Located};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRing {
    name: Located<String>,
    #[serde(default)]
    description: String,
    #[allow(dead_code)]
    kind: Located<String>,
    max_chips: Expression,
    chip: RawChip,
    link: RawLink,
    dram: RawRingDram,
    energy: RawRingEnergy,
    area: RawRingArea,
    leakage: RawRingLeakage,
    envelope: Option<RawEnvelope>,
    packing: RawPacking,
    options: RawOptions,
    ring: Option<RawRingModel>,
    cosearch: Option<RawCoSearch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRingModel {
    timing: Option<Located<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChip {
    clock: Expression,
    dxts: Expression,
    vacs_per_dxt: Expression,
    macs_per_vac: Expression,
    wmem_per_core: Expression,
    kv_per_core: Expression,
    wmem_port: Expression,
    kv_row: Expression,
    wmem_ref_depth: Expression,
    kv_ref_depth: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    bandwidth: Expression,
    latency: Expression,
    energy: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRingDram {
    bandwidth: Expression,
    energy: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRingEnergy {
    kv: Expression,
    wmem: Expression,
    head_sram: Expression,
    global_sram: Expression,
    mac: Expression,
    accumulator: Expression,
    softmax: Expression,
    norm: Expression,
    v_column_read_factor: Expression,
    kv_write_factor: Expression,
    sram_depth_exponent: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRingArea {
    mac: Expression,
    accumulator: Expression,
    sram: Expression,
    head_sram: Expression,
    global_sram: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRingLeakage {
    sram: Expression,
    accumulator: Expression,
    head_sram: Expression,
    global_sram: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPacking {
    weight_headroom: Expression,
    kv_headroom: Expression,
    min_kv_per_core: Expression,
    core_doublings: Expression,
    max_cores_per_chip: Option<Expression>,
    chip_sizing: Option<Located<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    decode_context: Located<String>,
    lm_head: Located<String>,
    spill_to_dram: Located<String>,
    tensor_parallel: Located<String>,
}

/// J/(B cycle): leakage per byte of SRAM per cycle.
const J_PER_BYTE_CYCLE: Dim = Dim([-1, 0, -1, 0, 1, 0]);
/// J/cycle: leakage of a block per cycle.
const J_PER_CYCLE: Dim = Dim([0, 0, -1, 0, 1, 0]);
/// m^2/B: SRAM area per byte.
const AREA_PER_BYTE: Dim = Dim([-1, 0, 0, 0, 0, 2]);

fn whole_bytes(b: Bytes) -> Option<&'static str> {
    let v = b.get();
    if v.is_finite() && v >= 1.0 && v.fract() == 0.0 {
        None
    } else {
        Some("must be a whole number of bytes (a multiple of 8 bit), at least 1 B")
    }
}

fn headroom(v: f64) -> Option<&'static str> {
    if v.is_finite() && v >= 1.0 {
        None
    } else {
        Some("must be at least 1 (a headroom factor)")
    }
}

fn doublings(v: u64) -> Option<&'static str> {
    if v <= 20 { None } else { Some("must be at most 20") }
}

fn power_of_two(v: u64) -> Option<&'static str> {
    if v >= 1 && v.is_power_of_two() {
        None
    } else {
        Some("must be a power of two")
    }
}

fn at_least_one_byte(b: Bytes) -> Option<&'static str> {
    if b.get().is_finite() && b.get() >= 1.0 {
        None
    } else {
        Some("must be at least 1 B")
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("expected true or false, found `{other}`")),
    }
}

pub(super) fn ring(ctx: &Ctx, raw: &RawRing) -> Option<Substrate> {
    let max_chips = ctx.get::<u64>("max_chips", &raw.max_chips, positive_int);
    let c = &raw.chip;
    let clock = ctx.get::<Hertz>("chip.clock", &c.clock, positive);
    let dxts = ctx.get::<u64>("chip.dxts", &c.dxts, positive_int);
    let vacs = ctx.get::<u64>("chip.vacs_per_dxt", &c.vacs_per_dxt, positive_int);
    let macs = ctx.get::<u64>("chip.macs_per_vac", &c.macs_per_vac, positive_int);
    let wmem = ctx.get::<Bytes>("chip.wmem_per_core", &c.wmem_per_core, at_least_one_byte);
    let kv = ctx.get::<Bytes>("chip.kv_per_core", &c.kv_per_core, positive);
    let wmem_port = ctx.get::<Bytes>("chip.wmem_port", &c.wmem_port, whole_bytes);
    let kv_row = ctx.get::<Bytes>("chip.kv_row", &c.kv_row, whole_bytes);
    let wmem_depth = ctx.get::<u64>("chip.wmem_ref_depth", &c.wmem_ref_depth, positive_int);
    let kv_depth = ctx.get::<u64>("chip.kv_ref_depth", &c.kv_ref_depth, positive_int);

    let l = &raw.link;
    let link_bw = ctx.get::<BytesPerCycle>("link.bandwidth", &l.bandwidth, positive);
    let link_latency = ctx.get::<Cycles>("link.latency", &l.latency, non_negative);
    let link_energy = ctx.get_dim("link.energy", &l.energy, Dim::JOULES_PER_BYTE, "1 pJ/bit");

    let dram_bw = ctx.get::<BytesPerCycle>("dram.bandwidth", &raw.dram.bandwidth, positive);
    let dram_energy = ctx.get_dim("dram.energy", &raw.dram.energy, Dim::JOULES_PER_BYTE, "64 pJ/B");

    let e = &raw.energy;
    let per_byte = |path: &str, x: &Expression| ctx.get_dim(path, x, Dim::JOULES_PER_BYTE, "0.24 pJ/B");
    let kv_e = per_byte("energy.kv", &e.kv);
    let wmem_e = per_byte("energy.wmem", &e.wmem);
    let head_e = per_byte("energy.head_sram", &e.head_sram);
    let global_e = per_byte("energy.global_sram", &e.global_sram);
    let mac_e = ctx.get::<Joules>("energy.mac", &e.mac, non_negative);
    let acc_e = ctx.get::<Joules>("energy.accumulator", &e.accumulator, non_negative);
    let softmax_e = ctx.get::<Joules>("energy.softmax", &e.softmax, non_negative);
    let norm_e = ctx.get::<Joules>("energy.norm", &e.norm, non_negative);
    let v_factor = ctx.get::<f64>("energy.v_column_read_factor", &e.v_column_read_factor, positive);
    let w_factor = ctx.get::<f64>("energy.kv_write_factor", &e.kv_write_factor, positive);
    let exponent = ctx.get::<f64>("energy.sram_depth_exponent", &e.sram_depth_exponent, non_negative);

    let a = &raw.area;
    let area_mac = ctx.get::<SquareMeters>("area.mac", &a.mac, non_negative);
    let area_acc = ctx.get::<SquareMeters>("area.accumulator", &a.accumulator, non_negative);
    let area_sram = ctx.get_dim("area.sram", &a.sram, AREA_PER_BYTE, "0.711316 um^2/B");
    let area_head = ctx.get::<SquareMeters>("area.head_sram", &a.head_sram, non_negative);
    let area_global = ctx.get::<SquareMeters>("area.global_sram", &a.global_sram, non_negative);

    let k = &raw.leakage;
    let leak_sram = ctx.get_dim("leakage.sram", &k.sram, J_PER_BYTE_CYCLE, "5.907e-7 pJ/B/cycle");
    let per_cycle = |path: &str, x: &Expression| ctx.get_dim(path, x, J_PER_CYCLE, "1.7709e-3 pJ/cycle");
    let leak_acc = per_cycle("leakage.accumulator", &k.accumulator);
    let leak_head = per_cycle("leakage.head_sram", &k.head_sram);
    let leak_global = per_cycle("leakage.global_sram", &k.global_sram);

    let env = envelope(ctx, raw.envelope.as_ref(), true, raw.name.loc);
    let p = &raw.packing;
    let w_head = ctx.get::<f64>("packing.weight_headroom", &p.weight_headroom, headroom);
    let kv_head = ctx.get::<f64>("packing.kv_headroom", &p.kv_headroom, headroom);
    let min_kv = ctx.get::<Bytes>("packing.min_kv_per_core", &p.min_kv_per_core, positive);
    let doubl = ctx.get::<u64>("packing.core_doublings", &p.core_doublings, doublings);
    let max_cores = ctx.optional::<u64>(
        "packing.max_cores_per_chip",
        p.max_cores_per_chip.as_ref(),
        power_of_two,
    );
    let chip_sizing = match &p.chip_sizing {
        None => Some(ChipSizing::SmallestFitting),
        Some(w) => ctx.word("packing.chip_sizing", w, |s| match s {
            "smallest_fitting" => Ok(ChipSizing::SmallestFitting),
            "smallest_total_area" => Ok(ChipSizing::SmallestTotalArea),
            other => Err(format!(
                "expected smallest_fitting or smallest_total_area, found `{other}`"
            )),
        }),
    };

    let o = &raw.options;
    let decode_context = ctx.word("options.decode_context", &o.decode_context, |s| match s {
        "midpoint" => Ok(DecodeContext::Midpoint),
        "average" => Ok(DecodeContext::Average),
        other => Err(format!("expected midpoint or average, found `{other}`")),
    });
    let lm_head = ctx.word("options.lm_head", &o.lm_head, |s| match s {
        "excluded" => Ok(LmHead::Excluded),
        "included" => Ok(LmHead::Included),
        other => Err(format!("expected excluded or included, found `{other}`")),
    });
    let spill = ctx.word("options.spill_to_dram", &o.spill_to_dram, parse_bool);
    let tp = ctx.word("options.tensor_parallel", &o.tensor_parallel, parse_bool);
    let timing = ctx.optional_word(
        "ring.timing",
        raw.ring.as_ref().and_then(|r| r.timing.as_ref()),
        RingTiming::Corrected,
        |s| match s {
            "corrected" => Ok(RingTiming::Corrected),
            "paper_era" => Ok(RingTiming::PaperEra),
            other => Err(format!(
                "expected {} or {}, found `{other}`",
                RingTiming::Corrected.name(),
                RingTiming::PaperEra.name()
            )),
        },
    );
    if timing == Some(RingTiming::PaperEra) {
        // what the paper-era model cannot honour, at the field that asks for it
        let at = |loc, msg: String| {
            ctx.push(ctx.file.error(
                loc,
                msg,
                "with ring.timing: paper_era",
                Some("the paper-era model is fixed; use ring.timing: corrected for this option".into()),
            ));
        };
        let checks = [
            (
                decode_context.map(|v| v != DecodeContext::Midpoint),
                "options.decode_context",
                "midpoint",
                o.decode_context.loc,
            ),
            (
                lm_head.map(|v| v != LmHead::Excluded),
                "options.lm_head",
                "excluded",
                o.lm_head.loc,
            ),
            (spill, "options.spill_to_dram", "false", o.spill_to_dram.loc),
            (tp, "options.tensor_parallel", "false", o.tensor_parallel.loc),
            (
                chip_sizing.map(|v| v != ChipSizing::SmallestFitting),
                "packing.chip_sizing",
                "smallest_fitting",
                p.chip_sizing.as_ref().map_or(raw.name.loc, |w| w.loc),
            ),
            (
                max_cores.map(|v| v.is_some()),
                "packing.max_cores_per_chip",
                "left out",
                p.max_cores_per_chip.as_ref().map_or(raw.name.loc, |e| e.loc()),
            ),
        ];
        // a value that did not parse is reported already (None)
        for (bad, path, want, loc) in checks {
            if bad == Some(true) {
                at(
                    loc,
                    format!("`{path}` must be {want} under ring.timing: paper_era"),
                );
            }
        }
    }
    let cosearch = cosearch(ctx, raw.cosearch.as_ref(), raw.name.loc, true);

    let env = env?;
    let (max_area, max_power) = match (env.max_area, env.max_power) {
        (Some(a), Some(p)) => (a, p),
        _ => {
            ctx.push(ctx.file.error(
                raw.name.loc,
                "a ring needs `envelope.area` and `envelope.power` (the limits of its co-search)",
                "in this substrate",
                Some("e.g. envelope: {area: \"800 mm^2\", power: \"100 W\"}".into()),
            ));
            return None;
        }
    };
    let chip = RingChip {
        clock: clock?,
        n_dxt: dxts?,
        vacs_per_dxt: vacs?,
        macs_per_vac: macs?,
        wmem_per_core: wmem?,
        kv_per_core: kv?,
        wmem_port_bits: (wmem_port?.get() * 8.0) as u64,
        kv_row_bits: (kv_row?.get() * 8.0) as u64,
        wmem_ref_depth: wmem_depth?,
        kv_ref_depth: kv_depth?,
        energy: RingEnergy {
            dram_per_byte: Joules::new(dram_energy?),
            kv_per_byte: Joules::new(kv_e?),
            wmem_per_byte: Joules::new(wmem_e?),
            head_sram_per_byte: Joules::new(head_e?),
            global_sram_per_byte: Joules::new(global_e?),
            mac: mac_e?,
            accumulator_access: acc_e?,
            softmax_per_element: softmax_e?,
            norm_per_element: norm_e?,
            v_column_read_factor: v_factor?,
            kv_write_factor: w_factor?,
            sram_depth_exponent: exponent?,
        },
        area: RingArea {
            per_mac: area_mac?,
            accumulator_per_core: area_acc?,
            sram_per_byte: SquareMeters::new(area_sram?),
            head_sram_per_dxt: area_head?,
            global_sram_per_chip: area_global?,
        },
        leakage: RingLeakage {
            sram_per_byte: Joules::new(leak_sram?),
            accumulator_per_core: Joules::new(leak_acc?),
            head_per_dxt: Joules::new(leak_head?),
            global_per_chip: Joules::new(leak_global?),
        },
    };
    let link = RingLink {
        bytes_per_cycle: link_bw?,
        latency: link_latency?,
        // J/B -> J/bit
        energy_per_bit: Joules::new(link_energy? / 8.0),
    };
    let dram = RingDram {
        bytes_per_cycle: dram_bw?,
    };
    let packing = PackingRules {
        weight_headroom: w_head?,
        kv_headroom: kv_head?,
        min_kv_per_core: min_kv?,
        core_doublings: u32::try_from(doubl?).ok()?,
        max_cores_per_chip: max_cores?,
        chip_sizing: chip_sizing?,
    };
    let options = RingOptions {
        timing: timing?,
        decode_context: decode_context?,
        lm_head: lm_head?,
        spill_to_dram: spill?,
        tensor_parallel: tp?,
    };
    let envelope_spec = Envelope { max_area, max_power };
    let cosearch = cosearch?;
    let invalid = |msg: String| {
        ctx.push(ctx.file.error(raw.name.loc, msg, "in this substrate", None));
    };
    let spec = match RingSpec::new(chip, link, dram, envelope_spec, packing) {
        Ok(s) => s,
        Err(e) => {
            invalid(e.to_string());
            return None;
        }
    };
    let design = match RingDesign::new(chip.macs_per_vac, max_chips?, chip.wmem_per_core) {
        Ok(d) => d,
        Err(e) => {
            invalid(e.to_string());
            return None;
        }
    };
    Some(Substrate {
        name: raw.name.value.clone(),
        description: raw.description.trim().to_string(),
        kind: Kind::Ring(Ring {
            spec,
            design,
            options,
        }),
        efficiency: Efficiency::EXACT,
        envelope: env,
        cosearch,
    })
}
