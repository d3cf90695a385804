//! Layer packing: which chip holds which layers, how many cores a chip has, and how much KV
//! cache per core.
//!
//! The corrected model's rule (the reference's "Packing"), per WMEM/core option: cores start at next_pow2(ceil(largest_layer*1.15 /
//! wmem_per_core)) and are doubled up to 6 times; for each core count the layers are placed
//! on chips contiguously and greedily, a chip taking layers while its weights stay <=
//! WMEM_total/1.15; KV per core is the power-of-two KiB >= max(8 KiB, largest chip KV * 1.15 /
//! n_cores); the candidate with the smallest n_chips x chip area is kept; candidates needing
//! more than max_chips are rejected. (The paper-era model packs its own way, identical
//! first-layer copies: [`super::paper_era::pack`].)
//!
//! Which candidates compete is [`ChipSizing`]: by default ([`ChipSizing::SmallestFitting`])
//! the doubling stops at the first core count whose packing fits max_chips, so each chip is
//! the smallest that lets the model fit the design's chip budget; with
//! [`ChipSizing::SmallestTotalArea`] all candidates within max_chips are priced and the
//! smallest silicon wins, which in practice is the fewest, largest chips (see the ring
//! module docs for the numbers).
//!
//! Extensions (off in the corrected model's reference options, [`super::RingOptions::corrected`]):
//! - with `max_cores_per_chip`, a layer may exceed one chip (oversize). Policy
//!   [`Oversize::TensorParallel`] gives it its own stage of k = ceil(bytes / capacity)
//!   chips; [`Oversize::Stream`] leaves its weights in DRAM and runs it on the current chip.
//! - with `spill_to_dram`, once max_chips chips are used the remaining layers (the tail) are
//!   streamed from DRAM on the last chip instead of rejecting the design.

use super::prepare::RingModel;
use super::spec::RingDesign;
use super::spec::{ChipConfig, ChipSizing, RingSpec};
use crate::units::Bytes;
use serde::Serialize;
use std::ops::Range;

/// How a layer's weights are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Placement {
    /// Stationary in one chip's WMEM.
    Stationary,
    /// Split over `k` chips, stationary, with ring all-reduces.
    TensorParallel { k: u64 },
    /// Weights read from DRAM every token step (batched once over the prompt in prefill).
    Streamed,
}

/// What to do with a layer larger than one chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversize {
    TensorParallel,
    Stream,
}

/// Consecutive layers on one chip, or one layer on a tensor-parallel group of chips.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    pub first_chip: u64,
    pub n_chips: u64,
    pub layers: Range<usize>,
}

/// A packing of a model onto a ring of identical chips.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Packing {
    pub chip: ChipConfig,
    pub n_chips: u64,
    pub stages: Vec<Stage>,
    /// One per ring layer.
    pub placement: Vec<Placement>,
}

impl Packing {
    pub(crate) fn empty() -> Packing {
        Packing {
            chip: ChipConfig {
                n_cores: 0,
                n_dxt: 0,
                macs_per_vac: 0,
                wmem_per_core: Bytes::ZERO,
                kv_per_core: Bytes::ZERO,
            },
            n_chips: 0,
            stages: Vec::new(),
            placement: Vec::new(),
        }
    }

    /// Whether any layer is split or streamed.
    pub fn uses_extensions(&self) -> bool {
        self.placement.iter().any(|p| *p != Placement::Stationary)
    }

    /// Copies `other` into `self` reusing the buffers.
    pub(crate) fn copy_from(&mut self, other: &Packing) {
        self.chip = other.chip;
        self.n_chips = other.n_chips;
        self.stages.clone_from(&other.stages);
        self.placement.clone_from(&other.placement);
    }
}

/// Greedy contiguous placement for a fixed core count. Returns false when the model does not
/// fit in `max_chips` and the options forbid the way out.
#[allow(clippy::too_many_arguments)]
fn place(
    model: &RingModel,
    capacity: f64,
    max_chips: u64,
    oversize: Oversize,
    allow_tp: bool,
    allow_spill: bool,
    out: &mut Packing,
) -> bool {
    out.stages.clear();
    out.placement.clear();
    let mut chips_used: u64 = 0;
    let mut fill = 0.0;
    // the last stage can take more layers (a single chip, not a tensor-parallel group)
    let mut open = false;
    let mut tail = false;
    for (i, layer) in model.layers.iter().enumerate() {
        let bytes = layer.weight_bytes;
        if !tail && bytes > capacity {
            match oversize {
                Oversize::TensorParallel if allow_tp => {
                    let k = (bytes / capacity).ceil() as u64;
                    if chips_used + k <= max_chips {
                        out.stages.push(Stage {
                            first_chip: chips_used,
                            n_chips: k,
                            layers: i..i + 1,
                        });
                        out.placement.push(Placement::TensorParallel { k });
                        chips_used += k;
                        open = false;
                        continue;
                    } else if !allow_spill {
                        return false;
                    }
                    tail = true;
                }
                Oversize::Stream if allow_spill => {
                    if out.stages.is_empty() {
                        out.stages.push(Stage {
                            first_chip: 0,
                            n_chips: 1,
                            layers: i..i,
                        });
                        chips_used = 1;
                        fill = 0.0;
                        open = true;
                    }
                    if let Some(last) = out.stages.last_mut() {
                        last.layers.end = i + 1;
                    }
                    out.placement.push(Placement::Streamed);
                    continue;
                }
                _ => return false,
            }
        }
        if !tail {
            if open && fill + bytes <= capacity {
                fill += bytes;
                if let Some(last) = out.stages.last_mut() {
                    last.layers.end = i + 1;
                }
                out.placement.push(Placement::Stationary);
                continue;
            }
            if chips_used < max_chips {
                out.stages.push(Stage {
                    first_chip: chips_used,
                    n_chips: 1,
                    layers: i..i + 1,
                });
                out.placement.push(Placement::Stationary);
                chips_used += 1;
                fill = bytes;
                open = true;
                continue;
            }
            if !allow_spill {
                return false;
            }
            tail = true;
        }
        // the tail: streamed on the last chip
        if out.stages.is_empty() {
            out.stages.push(Stage {
                first_chip: 0,
                n_chips: 1,
                layers: i..i,
            });
            chips_used = 1;
        }
        if let Some(last) = out.stages.last_mut() {
            last.layers.end = i + 1;
        }
        out.placement.push(Placement::Streamed);
    }
    out.n_chips = chips_used;
    true
}

/// The largest KV footprint of one chip (bytes): KV of the attention layers of each stage at
/// the longest context for all users, divided over a tensor-parallel group.
pub(crate) fn max_chip_kv(model: &RingModel, packing: &Packing) -> f64 {
    let ctx = model.workload.max_context() as f64 * model.users as f64;
    packing
        .stages
        .iter()
        .map(|s| {
            let kv: f64 = model.layers[s.layers.clone()]
                .iter()
                .filter_map(|l| l.attn)
                .map(|a| a.kv_bytes_per_token() as f64 * ctx)
                .sum();
            kv / s.n_chips as f64
        })
        .fold(0.0, f64::max)
}

/// Power-of-two KiB >= max(min, need * headroom / n_cores).
pub(crate) fn kv_per_core(spec: &RingSpec, chip_kv: f64, n_cores: u64) -> Bytes {
    let rules = spec.packing();
    let need = (chip_kv * rules.kv_headroom / n_cores as f64).max(rules.min_kv_per_core.get());
    let kib = (need / 1024.0).ceil().max(1.0) as u64;
    Bytes::kib(kib.next_power_of_two() as f64)
}

/// The reference's packing search for one design point and one oversize policy:
/// the smallest n_chips x chip area over the core-count candidates. `scratch` is reused.
/// Returns false when no candidate fits.
pub(crate) fn best_packing(
    spec: &RingSpec,
    model: &RingModel,
    design: &RingDesign,
    oversize: Oversize,
    scratch: &mut Packing,
    best: &mut Packing,
) -> bool {
    let rules = spec.packing();
    let chip = spec.chip();
    let (macs_per_vac, max_chips, wmem_per_core) =
        (design.macs_per_vac, design.max_chips, design.wmem_per_core);
    let needed = (model.largest_layer_bytes * rules.weight_headroom / wmem_per_core.get())
        .ceil()
        .max(1.0) as u64;
    let mut cores = needed.next_power_of_two();
    if let Some(max) = rules.max_cores_per_chip {
        cores = cores.min(max);
    }
    let mut best_area = f64::INFINITY;
    for _ in 0..=rules.core_doublings {
        let capacity = cores as f64 * wmem_per_core.get() / rules.weight_headroom;
        let ok = place(
            model,
            capacity,
            max_chips,
            oversize,
            model.options.tensor_parallel,
            model.options.spill_to_dram,
            scratch,
        );
        if ok {
            let kv = kv_per_core(spec, max_chip_kv(model, scratch), cores);
            scratch.chip = ChipConfig {
                n_cores: cores,
                n_dxt: cores.div_ceil(chip.vacs_per_dxt),
                macs_per_vac,
                wmem_per_core,
                kv_per_core: kv,
            };
            let area = scratch.n_chips as f64 * scratch.chip.area_m2(chip);
            // the smallest chip that holds the whole model stationary in max_chips ends the
            // doubling; candidates that split or stream layers compete by area meanwhile
            if rules.chip_sizing == ChipSizing::SmallestFitting && !scratch.uses_extensions() {
                best.copy_from(scratch);
                return true;
            }
            if area < best_area {
                best_area = area;
                best.copy_from(scratch);
            }
        }
        match rules.max_cores_per_chip {
            Some(max) if cores >= max => break,
            _ => cores *= 2,
        }
    }
    best_area.is_finite()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ring::eval::tests::tiny;
    use crate::sim::ring::{PackingRules, RingOptions, RingWorkload};

    #[test]
    fn greedy_fill_by_capacity() {
        // 5 layers of 2560 B; capacity 3 * 2560 = 7680 B -> chips [0..3), [3..5)
        let m = RingModel::new(
            &tiny(5),
            &RingWorkload::new(4, 2, 1).unwrap(),
            &RingOptions::corrected(),
        )
        .unwrap();
        let mut p = Packing::empty();
        assert!(place(
            &m,
            7680.0,
            8,
            Oversize::TensorParallel,
            false,
            false,
            &mut p
        ));
        assert_eq!(p.n_chips, 2);
        assert_eq!(
            p.stages.iter().map(|s| s.layers.clone()).collect::<Vec<_>>(),
            vec![0..3, 3..5]
        );
        // max 1 chip: rejected without spill, tail streamed with it
        assert!(!place(
            &m,
            7680.0,
            1,
            Oversize::TensorParallel,
            false,
            false,
            &mut p
        ));
        assert!(place(
            &m,
            7680.0,
            1,
            Oversize::TensorParallel,
            false,
            true,
            &mut p
        ));
        assert_eq!(p.n_chips, 1);
        assert_eq!(p.placement[2], Placement::Stationary);
        assert_eq!(p.placement[3], Placement::Streamed);
        assert_eq!(p.stages[0].layers, 0..5);
    }

    #[test]
    fn kv_per_core_is_a_power_of_two_kib() {
        let spec = RingSpec::llmforge_reference();
        // 98304 B * 1.15 / 128 = 883 B < 8 KiB -> 8 KiB
        assert_eq!(kv_per_core(&spec, 98_304.0, 128), Bytes::kib(8.0));
        // 2e6 * 1.15 / 64 = 35937.5 B = 35.1 KiB -> 36 -> 64 KiB
        assert_eq!(kv_per_core(&spec, 2e6, 64), Bytes::kib(64.0));
    }

    fn packed(spec: &RingSpec, m: &RingModel, max_chips: u64) -> (u64, u64) {
        let (mut s, mut b) = (Packing::empty(), Packing::empty());
        let design = RingDesign::new(16, max_chips, Bytes::kib(1.0)).unwrap();
        assert!(best_packing(
            spec,
            m,
            &design,
            Oversize::TensorParallel,
            &mut s,
            &mut b
        ));
        (b.chip.n_cores, b.n_chips)
    }

    fn with_sizing(spec: &RingSpec, sizing: ChipSizing) -> RingSpec {
        spec.with_packing(PackingRules {
            chip_sizing: sizing,
            ..*spec.packing()
        })
        .unwrap()
    }

    #[test]
    fn smallest_fitting_doubles_only_until_the_model_fits() {
        // tiny(4) = 4 layers of 2560 B, WMEM 1 KiB/core:
        // start = next_pow2(ceil(2560*1.15/1024)) = next_pow2(3) = 4 cores, capacity
        // 4*1024/1.15 = 3562 B -> 1 layer/chip, 4 chips; 8 cores (7123 B) -> 2/chip, 2 chips;
        // 16 cores (14247 B) -> 4/chip, 1 chip.
        let spec = RingSpec::llmforge_reference();
        assert_eq!(spec.packing().chip_sizing, ChipSizing::SmallestFitting);
        let m = RingModel::new(
            &tiny(4),
            &RingWorkload::new(4, 2, 1).unwrap(),
            &RingOptions::corrected(),
        )
        .unwrap();
        // the start fits 8 chips: no doubling
        assert_eq!(packed(&spec, &m, 8), (4, 4));
        assert_eq!(packed(&spec, &m, 4), (4, 4));
        // 3 chips: 4 cores need 4 > 3, one doubling -> 8 cores, 2 chips
        assert_eq!(packed(&spec, &m, 3), (8, 2));
        // 1 chip: two doublings
        assert_eq!(packed(&spec, &m, 1), (16, 1));
        // no doubling allowed: 1 chip cannot hold it
        let none = spec
            .with_packing(PackingRules {
                core_doublings: 0,
                ..*spec.packing()
            })
            .unwrap();
        let (mut s, mut b) = (Packing::empty(), Packing::empty());
        let design = RingDesign::new(16, 1, Bytes::kib(1.0)).unwrap();
        assert!(!best_packing(
            &none,
            &m,
            &design,
            Oversize::TensorParallel,
            &mut s,
            &mut b
        ));
    }

    #[test]
    fn smallest_total_area_wins() {
        // Same candidates as above. Equal total cores (16), so the per-chip parts (head SRAM
        // per DXT scales with the cores; the global SRAM, 4824.14 um^2, is per chip) decide:
        // the single 16-core chip.
        let spec = with_sizing(&RingSpec::llmforge_reference(), ChipSizing::SmallestTotalArea);
        let m = RingModel::new(
            &tiny(4),
            &RingWorkload::new(4, 2, 1).unwrap(),
            &RingOptions::corrected(),
        )
        .unwrap();
        assert_eq!(packed(&spec, &m, 8), (16, 1));
        // max 4 cores per chip: the 4-core option only, under both readings
        for sizing in [ChipSizing::SmallestTotalArea, ChipSizing::SmallestFitting] {
            let capped = spec
                .with_packing(PackingRules {
                    max_cores_per_chip: Some(4),
                    chip_sizing: sizing,
                    ..*spec.packing()
                })
                .unwrap();
            assert_eq!(packed(&capped, &m, 8), (4, 4), "{sizing:?}");
        }
    }
}
