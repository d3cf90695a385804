//! The hardware-independent part of a model on the ring, computed once per (model, workload,
//! options) from the operators of its decode graph (one step of all users): per-layer INT8
//! weight bytes, the weight GEMMs with their row counts, the attention shape and KV bytes. The
//! grid loop then only prices these shapes. Nothing here reads a model's layers: the graph's
//! operators and its per-block records ([`crate::graph::BlockShape`]) say it all.

use super::RingError;
use super::paper_era::PaperLayer;
use super::spec::{LmHead, RingOptions, RingTiming};
use super::workload::RingWorkload;
use crate::graph::{BlockShape, Op, OpKind};
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

/// One distinct transformer block of the decode step, prepared for the ring from its
/// operators: computed once per distinct layer, then placed at every layer that repeats it.
#[derive(Clone, Debug, PartialEq)]
pub struct RingBlock {
    /// Stationary INT8 weight bytes (every expert of a mixture, biases aside).
    weight_bytes: f64,
    gemms: Vec<WeightGemm>,
    attn: Option<AttnShape>,
    norm_elements: f64,
    allreduces: u32,
    /// The dense FFN's width (`None`: a mixture of experts), for the paper-era layer.
    dense_ffn_width: Option<u64>,
    /// Activation rows of a dense projection: the users of the decode step.
    users: u64,
}

impl RingBlock {
    /// The ring's block from one block of a decode graph (one step of all users): `ops` are
    /// the block's operators in graph order, `shape` the graph's record of it.
    ///
    /// Weight GEMMs: Q and K fused into one column-split GEMM (n = q + k width), V
    /// column-split, the output projection row-split; FFN gate and up column-split, down
    /// row-split; for a mixture the router (column-split), the routed experts (the GEMMs
    /// between `moe_router` and `moe_combine`: `touched` repetitions of t*a/touched rows, every
    /// expert stationary), the shared experts (`shared` repetitions), the shared gate. The
    /// attention GEMMs are the attention core the ring prices from `shape.attention`. Norms:
    /// one per norm operator, one for a parallel residual (both halves read the same input).
    /// All-reduce points when split: after the output projection and after the FFN down
    /// projection, one with a parallel residual.
    pub fn new<'a>(ops: impl IntoIterator<Item = &'a Op>, shape: &BlockShape) -> RingBlock {
        let mut gemms = Vec::with_capacity(8);
        let mut bytes = 0u64;
        let mut expert_bytes = 0.0;
        let mut norm_elements = 0.0;
        let mut q_width = None;
        let mut dense_ffn_width = None;
        let mut users = 0;
        // None: outside the FFN of a mixture; Some(true): its routed experts; Some(false): its
        // shared experts
        let mut routed = None;
        for op in ops {
            let OpKind::Gemm { m, n, k, .. } = op.kind else {
                match (op.name, op.kind) {
                    ("moe_combine", _) => routed = Some(false),
                    // a parallel residual's two norms read one input: one is priced
                    ("attn_norm" | "ffn_norm", OpKind::Elementwise { elements })
                        if !(shape.parallel_residual && op.name == "ffn_norm") =>
                    {
                        norm_elements += elements as f64;
                    }
                    _ => {}
                }
                continue;
            };
            let mut gemm = |rows: f64, n: u64, reps: f64, split: Split| {
                gemms.push(WeightGemm {
                    m: rows,
                    k,
                    n,
                    reps,
                    split,
                })
            };
            let matrix = k * n;
            if users == 0 && !matches!(op.name, "attn_scores" | "attn_pv") {
                // the first projection (Q, FFN up or router) reads every token's row
                users = m;
            }
            match op.name {
                "q_proj" => {
                    q_width = Some(n);
                    bytes += matrix;
                }
                "k_proj" => {
                    // fused with Q: one pass over the normed input
                    gemm(m as f64, q_width.take().unwrap_or(0) + n, 1.0, Split::Columns);
                    bytes += matrix;
                }
                "v_proj" | "moe_router" | "moe_shared_gate" => {
                    if op.name == "moe_router" {
                        routed = Some(true);
                    }
                    gemm(m as f64, n, 1.0, Split::Columns);
                    bytes += matrix;
                }
                "o_proj" => {
                    gemm(m as f64, n, 1.0, Split::Rows);
                    bytes += matrix;
                }
                "ffn_up" | "ffn_gate" | "ffn_down" => {
                    let split = if op.name == "ffn_down" {
                        Split::Rows
                    } else {
                        Split::Columns
                    };
                    match (routed, shape.experts) {
                        (Some(true), Some(e)) => {
                            gemm(m as f64 / e.touched, n, e.touched, split);
                            expert_bytes += e.routed as f64 * matrix as f64;
                        }
                        (Some(false), Some(e)) => {
                            gemm(m as f64, n, e.shared as f64, split);
                            expert_bytes += e.shared as f64 * matrix as f64;
                        }
                        _ => {
                            if op.name == "ffn_up" {
                                dense_ffn_width = Some(n);
                            }
                            gemm(m as f64, n, 1.0, split);
                            bytes += matrix;
                        }
                    }
                }
                // the attention GEMMs: the ring's attention core, priced from the shape
                _ => {}
            }
        }
        let has_attention = shape.attention.is_some();
        RingBlock {
            weight_bytes: bytes as f64 + expert_bytes,
            gemms,
            attn: shape.attention.map(|a| AttnShape {
                heads: a.heads,
                groups: a.groups,
                d_qk: a.d_qk,
                d_v: a.d_v,
            }),
            norm_elements,
            allreduces: if shape.parallel_residual {
                1
            } else {
                1 + has_attention as u32
            },
            dense_ffn_width,
            users,
        }
    }

    /// Stationary INT8 weight bytes.
    pub fn weight_bytes(&self) -> f64 {
        self.weight_bytes
    }
    /// The attention heads and dimensions (`None`: attention-free).
    pub(crate) fn attention(&self) -> Option<AttnShape> {
        self.attn
    }
    /// The dense FFN's width (`None`: a mixture of experts).
    pub(crate) fn dense_ffn_width(&self) -> Option<u64> {
        self.dense_ffn_width
    }
}

/// The decode step outside the blocks, prepared for the ring from the graph's head and tail
/// operators: the LM head (`lm_head`, column-split, no all-reduce: each chip keeps its local
/// top-1 of its vocabulary slice) after the final norm, and the embedding-row read
/// (`embed`), a DRAM read wherever the layers are placed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RingEnds {
    d_model: u64,
    /// Rows of the LM head: the users.
    users: u64,
    vocab: u64,
    embed_bytes: f64,
    final_norm_elements: f64,
}

impl RingEnds {
    /// From the head and tail operators of a decode graph; `None` without an `lm_head` GEMM.
    pub fn new<'a>(ops: impl IntoIterator<Item = &'a Op>) -> Option<RingEnds> {
        let (mut head, mut embed_bytes, mut final_norm_elements) = (None, 0.0, 0.0);
        for op in ops {
            match (op.name, op.kind) {
                ("lm_head", OpKind::Gemm { m, n, k, .. }) => head = Some((m, n, k)),
                ("embed", OpKind::Gather { rows, width }) => embed_bytes = (rows * width) as f64,
                ("final_norm", OpKind::Elementwise { elements }) => final_norm_elements = elements as f64,
                _ => {}
            }
        }
        let (users, vocab, d_model) = head?;
        Some(RingEnds {
            d_model,
            users,
            vocab,
            embed_bytes,
            final_norm_elements,
        })
    }
}

impl RingModel {
    /// Prepares a model for `workload` from its decode step's operators: `blocks` the distinct
    /// blocks, `layers` the block of every layer in order, `ends` the embedding and LM head
    /// (see [`RingBlock::new`] and [`RingEnds::new`]; the graph lowered at batch = the
    /// workload's users). MoE layers keep all experts stationary (their bytes count for
    /// packing); per token step the router (d -> E) runs, plus the expected number of distinct
    /// routed experts touched by u users, E*(1-(1-a/E)^u), each on u*a/touched rows, plus the
    /// shared experts on all u rows. [`RingModel::new`] (in [`crate::sim::ring_adapter`])
    /// lowers a model and calls this.
    pub fn from_blocks<B: std::borrow::Borrow<RingBlock>>(
        name: &str,
        blocks: &[B],
        layers: &[usize],
        ends: &RingEnds,
        workload: &RingWorkload,
        options: &RingOptions,
    ) -> Result<RingModel, RingError> {
        options.validate()?;
        let u_rows = workload.users();
        if let Some(b) = std::iter::once(ends.users)
            .chain(
                layers
                    .iter()
                    .filter_map(|&i| blocks.get(i).map(|b| b.borrow().users)),
            )
            .find(|&b| b != u_rows)
        {
            return Err(RingError::InvalidWorkload {
                field: "users",
                message: format!("{u_rows} users, but the decode graph was lowered for a batch of {b}"),
            });
        }
        let paper_layer = match options.timing {
            RingTiming::Corrected => None,
            RingTiming::PaperEra => Some(PaperLayer::of(name, ends.d_model, blocks, layers)?),
        };
        let d = ends.d_model;
        let u = u_rows as f64;
        let mut out = Vec::with_capacity(layers.len() + 1);
        let mut gemms = Vec::with_capacity(layers.len() * 8 + 1);
        for (i, &b) in layers.iter().enumerate() {
            let Some(block) = blocks.get(b).map(B::borrow) else {
                return Err(RingError::InvalidModel {
                    model: name.to_string(),
                    message: format!("layer {i} names block {b} of {}", blocks.len()),
                });
            };
            let start = gemms.len();
            gemms.extend_from_slice(&block.gemms);
            out.push(PreparedLayer {
                origin: LayerOrigin::Block(i),
                weight_bytes: block.weight_bytes,
                gemms: start..gemms.len(),
                attn: block.attn,
                norm_elements: block.norm_elements,
                allreduces: block.allreduces,
                fixed_dram_bytes: 0.0,
            });
        }
        if options.lm_head == LmHead::Included {
            let start = gemms.len();
            gemms.push(WeightGemm {
                m: u,
                k: d,
                n: ends.vocab,
                reps: 1.0,
                split: Split::Columns,
            });
            out.push(PreparedLayer {
                origin: LayerOrigin::LmHead,
                weight_bytes: (ends.vocab * d) as f64,
                gemms: start..gemms.len(),
                attn: None,
                norm_elements: ends.final_norm_elements,
                // vocab-split logits need no all-reduce (each chip keeps its local top-1)
                allreduces: 0,
                fixed_dram_bytes: ends.embed_bytes,
            });
        }
        let largest_layer_bytes = out.iter().map(|l| l.weight_bytes).fold(0.0, f64::max);
        Ok(RingModel {
            name: name.to_string(),
            d_model: d,
            users: u_rows,
            workload: *workload,
            options: *options,
            layers: out,
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
