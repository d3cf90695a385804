//! Lowering for a placement: a model spread over `tp x pp` devices.
//!
//! * **Tensor parallelism** (Shoeybi et al., *Megatron-LM*, 2019, section 3): every layer's
//!   heads, KV groups and FFN width (MoE: each expert's width), and the vocabulary of the
//!   embedding and LM head, are split over the `tp` devices of a stage ([`shard`]); each
//!   device runs the graph of its shard. The partial sums meet in collectives: an all-reduce
//!   after the vocabulary-parallel embedding, after each attention output projection and
//!   after each FFN down projection (one all-reduce per block when the block has a parallel
//!   residual: the two partial sums are added first), and a gather of the logits' vocabulary
//!   slices after the LM head (as vLLM's `VocabParallelEmbedding` and `LogitsProcessor` do).
//!   When `tp` does not divide the KV groups, KV heads are replicated (one group per device at
//!   least, as vLLM does).
//! * **Pipeline parallelism**: the blocks are cut into `pp` contiguous stages
//!   ([`stage_layers`]: the first stages take one block more when `pp` does not divide the
//!   blocks); the embedding runs on the first stage, the final norm and LM head on the last;
//!   each stage boundary passes the residual stream point to point.
//!
//! Collectives carry the bytes of the whole tensor they combine and the size of their group:
//! nothing of hardware. They move in the stack's float type (2 bytes, or the activations'
//! width when wider), whatever format the GEMMs take their inputs in (fp8, int8).

use super::{Graph, Phase, lower};
use crate::model::{Ffn, Model};
use crate::units::Bytes;
use serde::Serialize;
use std::ops::Range;

/// How a model is spread over devices: `tp` devices per stage, `pp` stages (`tp x pp`
/// devices). Both at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub tp: u64,
    pub pp: u64,
}

impl Placement {
    /// One device.
    pub const SINGLE: Placement = Placement { tp: 1, pp: 1 };

    pub fn devices(&self) -> u64 {
        self.tp * self.pp
    }
}

/// What a collective does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectiveKind {
    /// Every member ends with the sum of the members' tensors.
    AllReduce,
    /// Every member ends with the concatenation of the members' slices.
    AllGather,
    /// One member's tensor to the next stage's member of the same rank.
    SendRecv,
}

impl CollectiveKind {
    pub fn name(self) -> &'static str {
        match self {
            CollectiveKind::AllReduce => "all_reduce",
            CollectiveKind::AllGather => "all_gather",
            CollectiveKind::SendRecv => "send_recv",
        }
    }
}

/// One collective or transfer of one pass.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Collective {
    /// `attn_allreduce`, `ffn_allreduce`, `block_allreduce`, `embed_allreduce`,
    /// `logits_gather`, `stage_send`.
    pub name: &'static str,
    /// The block it follows (`None`: embedding or LM head).
    pub layer: Option<u32>,
    pub kind: CollectiveKind,
    /// The whole tensor: the sum an all-reduce produces, the gathered tensor, the tensor sent.
    pub bytes: Bytes,
    /// Devices taking part: `tp` for the tensor-parallel collectives, 2 for a stage hand-off.
    pub group: u64,
    /// The pipeline stage whose devices run it (a hand-off: the sending stage).
    pub stage: u64,
}

impl Collective {
    /// `L3.attn_allreduce`, `logits_gather`.
    pub fn label(&self) -> String {
        match self.layer {
            Some(l) => format!("L{l}.{}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// One device's graph and the collectives of one pass.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The graph of one tensor-parallel shard (all blocks: split by [`stage_layers`]).
    pub device: Graph,
    pub collectives: Vec<Collective>,
    pub stages: Vec<Range<u32>>,
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// One tensor-parallel shard of `model` over `tp` devices (the model itself for `tp <= 1`).
pub fn shard(model: &Model, tp: u64) -> Model {
    if tp <= 1 {
        return model.clone();
    }
    let n = tp;
    let mut m = model.clone();
    m.name = format!("{}/tp{n}", model.name);
    m.vocab = ceil_div(model.vocab, n);
    for l in &mut m.layers {
        if let Some(a) = &mut l.attention {
            // KV groups fewer than devices are replicated: one group per device.
            let kv = ceil_div(a.kv_groups, n).max(1);
            let heads = ceil_div(a.heads, n).max(1);
            a.kv_groups = kv;
            // A whole number of query heads per group on each shard.
            a.heads = kv * ceil_div(heads, kv);
        }
        match &mut l.ffn {
            Ffn::Dense { width, .. } => *width = ceil_div(*width, n),
            Ffn::Moe { moe, .. } => {
                moe.expert_width = ceil_div(moe.expert_width, n);
                if moe.shared_experts > 0 {
                    moe.shared_width = ceil_div(moe.shared_width, n);
                }
            }
        }
    }
    m
}

/// The blocks of each of `pp` stages: contiguous, in order, sizes differing by at most one
/// (the first stages take the extra blocks). A stage may be empty when `pp` exceeds the blocks.
pub fn stage_layers(layers: u32, pp: u64) -> Vec<Range<u32>> {
    let pp = pp.max(1);
    let (base, extra) = (u64::from(layers) / pp, u64::from(layers) % pp);
    let mut start = 0u64;
    (0..pp)
        .map(|s| {
            let len = base + u64::from(s < extra);
            let r = start as u32..(start + len) as u32;
            start += len;
            r
        })
        .collect()
}

/// The stage that runs block `layer` (`None`: the embedding, stage 0; use [`last_stage`] for
/// the LM head).
pub fn stage_of(stages: &[Range<u32>], layer: u32) -> u64 {
    stages.iter().position(|r| r.contains(&layer)).unwrap_or(0) as u64
}

/// Bytes per element collectives move: the stack's float type, 2 bytes or the activations'
/// width when wider.
pub fn comm_element_bytes(model: &Model) -> f64 {
    model.precision.activations.bytes().max(2.0)
}

/// The collectives and transfers of one pass of `tokens` tokens (batch included) producing
/// `logit_rows` rows of logits, under `placement`, in execution order.
pub fn collectives(model: &Model, tokens: u64, logit_rows: u64, placement: Placement) -> Vec<Collective> {
    let (tp, pp) = (placement.tp.max(1), placement.pp.max(1));
    let stages = stage_layers(model.n_layers() as u32, pp);
    let e = comm_element_bytes(model);
    let act = Bytes::new(tokens as f64 * model.d_model as f64 * e);
    let mut out = Vec::new();
    let push = |out: &mut Vec<Collective>, name, layer, kind, bytes, group, stage| {
        out.push(Collective {
            name,
            layer,
            kind,
            bytes,
            group,
            stage,
        })
    };
    if tp > 1 {
        push(
            &mut out,
            "embed_allreduce",
            None,
            CollectiveKind::AllReduce,
            act,
            tp,
            0,
        );
    }
    for (i, layer) in model.layers.iter().enumerate() {
        let i = i as u32;
        let stage = stage_of(&stages, i);
        if tp > 1 {
            let ar = CollectiveKind::AllReduce;
            match (layer.attention.is_some(), layer.parallel_residual) {
                (true, false) => {
                    push(&mut out, "attn_allreduce", Some(i), ar, act, tp, stage);
                    push(&mut out, "ffn_allreduce", Some(i), ar, act, tp, stage);
                }
                (true, true) => push(&mut out, "block_allreduce", Some(i), ar, act, tp, stage),
                (false, _) => push(&mut out, "ffn_allreduce", Some(i), ar, act, tp, stage),
            }
        }
        // the last block of a stage hands the residual stream to the next stage
        if stage + 1 < pp && stages[stage as usize].end == i + 1 {
            push(
                &mut out,
                "stage_send",
                Some(i),
                CollectiveKind::SendRecv,
                act,
                2,
                stage,
            );
        }
    }
    // stages left empty (more stages than blocks) still pass the stream on
    for (s, r) in stages.iter().enumerate() {
        if r.is_empty() && (s as u64) + 1 < pp {
            let layer = r.start.checked_sub(1);
            push(
                &mut out,
                "stage_send",
                layer,
                CollectiveKind::SendRecv,
                act,
                2,
                s as u64,
            );
        }
    }
    if tp > 1 {
        let logits = Bytes::new(logit_rows as f64 * model.vocab as f64 * e);
        push(
            &mut out,
            "logits_gather",
            None,
            CollectiveKind::AllGather,
            logits,
            tp,
            pp - 1,
        );
    }
    out
}

/// A model and phase lowered for a placement: one shard's graph and the pass's collectives.
pub fn lower_placed(model: &Model, phase: Phase, placement: Placement) -> Placed {
    let device = lower(&shard(model, placement.tp), phase);
    let collectives = collectives(model, phase.tokens(), phase.batch(), placement);
    Placed {
        device,
        collectives,
        stages: stage_layers(model.n_layers() as u32, placement.pp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    #[test]
    fn stages_are_contiguous_and_balanced() {
        let s = stage_layers(10, 4);
        assert_eq!(s, vec![0..3, 3..6, 6..8, 8..10]);
        assert_eq!(stage_layers(2, 3), vec![0..1, 1..2, 2..2]);
        assert_eq!(stage_layers(5, 1), vec![0..5]);
    }

    #[test]
    fn megatron_collectives_per_pass() {
        let m = model::preset("llama-3-8b").unwrap();
        let c = collectives(&m, 7, 1, Placement { tp: 4, pp: 1 });
        let ar = c.iter().filter(|c| c.kind == CollectiveKind::AllReduce).count();
        assert_eq!(ar, 2 * m.n_layers() + 1);
        assert_eq!(c.last().unwrap().name, "logits_gather");
        let e = comm_element_bytes(&m);
        assert_eq!(c[1].bytes.get(), 7.0 * m.d_model as f64 * e);
        let c = collectives(&m, 7, 1, Placement { tp: 1, pp: 4 });
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| c.kind == CollectiveKind::SendRecv));
        assert!(collectives(&m, 7, 1, Placement::SINGLE).is_empty());
        // more stages than blocks: every boundary still hands off
        let small = model::preset("smollm2-135m").unwrap();
        let n = small.n_layers() as u64;
        let c = collectives(&small, 1, 1, Placement { tp: 1, pp: n + 2 });
        assert_eq!(c.len() as u64, n + 1);
    }

    #[test]
    fn one_device_placement_is_the_plain_graph() {
        let m = model::preset("smollm2-135m").unwrap();
        let phase = Phase::Decode { context: 9, batch: 2 };
        let p = lower_placed(&m, phase, Placement::SINGLE);
        let g = lower(&m, phase);
        assert!(p.collectives.is_empty());
        assert_eq!(
            p.device.ops().cloned().collect::<Vec<_>>(),
            g.ops().cloned().collect::<Vec<_>>()
        );
    }
}
