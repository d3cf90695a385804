//! The hardware-independent part of a model on the ring, computed once per (model, workload,
//! options): per-layer INT8 weight bytes, the weight GEMMs with their row counts, the attention
//! shape and KV bytes. The grid loop then only prices these shapes.

use super::RingError;
use super::paper_era::PaperLayer;
use super::spec::{LmHead, RingOptions, RingTiming};
use super::workload::RingWorkload;
use crate::model::{Attention, Ffn, FfnKind, Model};
use serde::Serialize;
use std::ops::Range;

/// How a GEMM is cut when its layer is split over k chips (Megatron-style).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Split {
    /// Output columns N are divided: no communication after it.
    Columns,
    /// Input rows K are divided: partial sums are all-reduced afterwards.
    Rows,
}

/// One weight GEMM of a layer: `reps` times an (m x k) . (k x n) product, the (k x n) INT8
/// weights stationary in WMEM.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub(crate) struct WeightGemm {
    /// Activation rows (u users; fractional for MoE experts' expected share).
    pub m: f64,
    pub k: u64,
    pub n: u64,
    /// Repetitions (fractional for the expected number of distinct experts touched).
    pub reps: f64,
    pub split: Split,
}

/// The attention core of a layer, priced per (user, group): QK^T is (H/G x Dqk).(Dqk x ctx),
/// PV is (H/G x ctx).(ctx x Dv), K and V read from the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct AttnShape {
    pub heads: u64,
    pub groups: u64,
    pub d_qk: u64,
    pub d_v: u64,
}

impl AttnShape {
    pub fn heads_per_group(&self) -> u64 {
        self.heads / self.groups
    }
    /// KV bytes written per token per user (INT8): G * (Dqk + Dv).
    pub fn kv_bytes_per_token(&self) -> u64 {
        self.groups * (self.d_qk + self.d_v)
    }
}

/// Where a ring layer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "index")]
pub enum LayerOrigin {
    /// Transformer block `i` of the model.
    Block(usize),
    /// The LM head (with the final norm and the embedding-row read).
    LmHead,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct PreparedLayer {
    pub origin: LayerOrigin,
    /// Stationary INT8 weight bytes.
    pub weight_bytes: f64,
    /// Range into `RingModel::gemms`.
    pub gemms: Range<usize>,
    pub attn: Option<AttnShape>,
    /// Norm elements per token step (all users): norms * d * u.
    pub norm_elements: f64,
    /// All-reduce points when the layer is split over chips (one after the attention output
    /// projection, one after the FFN down projection).
    pub allreduces: u32,
    /// DRAM bytes read per token step regardless of placement (the embedding row).
    pub fixed_dram_bytes: f64,
}

/// A model prepared for the ring under one workload and one set of options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RingModel {
    pub(crate) name: String,
    pub(crate) d_model: u64,
    pub(crate) users: u64,
    pub(crate) workload: RingWorkload,
    pub(crate) options: RingOptions,
    pub(crate) layers: Vec<PreparedLayer>,
    pub(crate) gemms: Vec<WeightGemm>,
    /// The largest stationary weight footprint of one layer (bytes).
    pub(crate) largest_layer_bytes: f64,
    /// The shape every layer is priced as under the paper-era timing (None under the
    /// corrected one).
    pub(crate) paper_layer: Option<PaperLayer>,
}

/// INT8 weights of one dense FFN of width `m`: 3*d*m gated, 2*d*m otherwise.
fn ffn_bytes(kind: FfnKind, d: u64, m: u64) -> f64 {
    (kind.n_matrices() * d * m) as f64
}

fn push_ffn(gemms: &mut Vec<WeightGemm>, kind: FfnKind, d: u64, m: u64, rows: f64, reps: f64) {
    // gate and up are two separate d -> m GEMMs (the corrected model; the release missed the gate)
    let first = if kind.is_gated() { 2 } else { 1 };
    for _ in 0..first {
        gemms.push(WeightGemm {
            m: rows,
            k: d,
            n: m,
            reps,
            split: Split::Columns,
        });
    }
    gemms.push(WeightGemm {
        m: rows,
        k: m,
        n: d,
        reps,
        split: Split::Rows,
    });
}

fn attention_bytes(a: &Attention, d: u64) -> f64 {
    // d*Dqk*(H+G) + d*Dv*G + Dv*H*d
    (d * a.d_qk * (a.heads + a.kv_groups) + d * a.d_v * a.kv_groups + a.d_v * a.heads * d) as f64
}

impl RingModel {
    /// Prepares `model` for `workload`. MoE layers keep all experts stationary (their bytes
    /// count for packing); per token step the router (d -> E) runs, plus the expected number
    /// of distinct routed experts touched by u users, E*(1-(1-a/E)^u), each on u*a/touched
    /// rows, plus the shared experts on all u rows.
    pub fn new(
        model: &Model,
        workload: &RingWorkload,
        options: &RingOptions,
    ) -> Result<RingModel, RingError> {
        model.validate().map_err(|errs| RingError::InvalidModel {
            model: model.name.clone(),
            message: errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "),
        })?;
        options.validate()?;
        let paper_layer = match options.timing {
            RingTiming::Corrected => None,
            RingTiming::PaperEra => Some(PaperLayer::of(model)?),
        };
        let d = model.d_model;
        let u = workload.users() as f64;
        let mut layers = Vec::with_capacity(model.layers.len() + 1);
        let mut gemms = Vec::with_capacity(model.layers.len() * 8 + 1);
        for (i, layer) in model.layers.iter().enumerate() {
            let start = gemms.len();
            let mut bytes = 0.0;
            let mut attn = None;
            let mut allreduces = 1;
            let mut norms = 1.0;
            if let Some(a) = &layer.attention {
                bytes += attention_bytes(a, d);
                // fused Q and K projection, V projection; the attention core is priced apart
                gemms.push(WeightGemm {
                    m: u,
                    k: d,
                    n: a.q_width() + a.k_width(),
                    reps: 1.0,
                    split: Split::Columns,
                });
                gemms.push(WeightGemm {
                    m: u,
                    k: d,
                    n: a.v_width(),
                    reps: 1.0,
                    split: Split::Columns,
                });
                gemms.push(WeightGemm {
                    m: u,
                    k: a.o_width(),
                    n: d,
                    reps: 1.0,
                    split: Split::Rows,
                });
                attn = Some(AttnShape {
                    heads: a.heads,
                    groups: a.kv_groups,
                    d_qk: a.d_qk,
                    d_v: a.d_v,
                });
                allreduces += 1;
                norms += 1.0;
            }
            match &layer.ffn {
                Ffn::Dense { kind, width, .. } => {
                    bytes += ffn_bytes(*kind, d, *width);
                    push_ffn(&mut gemms, *kind, d, *width, u, 1.0);
                }
                Ffn::Moe { kind, moe } => {
                    let experts = moe.experts as f64;
                    let active = moe.active as f64;
                    bytes += experts * ffn_bytes(*kind, d, moe.expert_width);
                    bytes += moe.shared_experts as f64 * ffn_bytes(*kind, d, moe.shared_width);
                    bytes += (d * moe.experts) as f64; // router
                    gemms.push(WeightGemm {
                        m: u,
                        k: d,
                        n: moe.experts,
                        reps: 1.0,
                        split: Split::Columns,
                    });
                    let touched = experts * (1.0 - (1.0 - active / experts).powf(u));
                    let rows = u * active / touched;
                    push_ffn(&mut gemms, *kind, d, moe.expert_width, rows, touched);
                    if moe.shared_experts > 0 {
                        push_ffn(
                            &mut gemms,
                            *kind,
                            d,
                            moe.shared_width,
                            u,
                            moe.shared_experts as f64,
                        );
                        if moe.shared_gate {
                            bytes += d as f64;
                            gemms.push(WeightGemm {
                                m: u,
                                k: d,
                                n: 1,
                                reps: 1.0,
                                split: Split::Columns,
                            });
                        }
                    }
                }
            }
            if layer.parallel_residual && layer.attention.is_some() {
                // one norm feeds both halves, and one all-reduce sums both partial outputs
                norms = 1.0;
                allreduces = 1;
            }
            layers.push(PreparedLayer {
                origin: LayerOrigin::Block(i),
                weight_bytes: bytes,
                gemms: start..gemms.len(),
                attn,
                norm_elements: norms * d as f64 * u,
                allreduces,
                fixed_dram_bytes: 0.0,
            });
        }
        if options.lm_head == LmHead::Included {
            let start = gemms.len();
            gemms.push(WeightGemm {
                m: u,
                k: d,
                n: model.vocab,
                reps: 1.0,
                split: Split::Columns,
            });
            layers.push(PreparedLayer {
                origin: LayerOrigin::LmHead,
                weight_bytes: (model.vocab * d) as f64,
                gemms: start..gemms.len(),
                attn: None,
                norm_elements: d as f64 * u,
                // vocab-split logits need no all-reduce (each chip keeps its local top-1)
                allreduces: 0,
                fixed_dram_bytes: d as f64 * u,
            });
        }
        let largest_layer_bytes = layers.iter().map(|l| l.weight_bytes).fold(0.0, f64::max);
        Ok(RingModel {
            name: model.name.clone(),
            d_model: d,
            users: workload.users(),
            workload: *workload,
            options: *options,
            layers,
            gemms,
            largest_layer_bytes,
            paper_layer,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    /// Ring layers (blocks, plus the LM head when priced).
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }
    /// Stationary INT8 weight bytes of ring layer `i`.
    pub fn layer_weight_bytes(&self, i: usize) -> f64 {
        self.layers[i].weight_bytes
    }
    /// All stationary INT8 weight bytes.
    pub fn total_weight_bytes(&self) -> f64 {
        self.layers.iter().map(|l| l.weight_bytes).sum()
    }
    pub fn largest_layer_bytes(&self) -> f64 {
        self.largest_layer_bytes
    }
    pub fn workload(&self) -> &RingWorkload {
        &self.workload
    }
    pub fn options(&self) -> &RingOptions {
        &self.options
    }
    /// The shape the paper-era timing prices every layer as (None under the corrected one).
    pub fn paper_layer(&self) -> Option<&PaperLayer> {
        self.paper_layer.as_ref()
    }
}
