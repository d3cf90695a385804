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
//! [`lower_placed`] lowers a model and phase for a placement into one graph: the shard's graph
//! with each collective and hand-off spliced in as an operator of its own
//! ([`super::OpKind::Collective`] on [`super::Unit::Link`], the interconnect) between the
//! operator it follows and that operator's consumers, in execution order. The engines price
//! the shard's plain graph (its device operators); the system path
//! ([`crate::sim::system`]) reads the collectives from the placed graph
//! ([`Placed::collectives`], or [`PassCollectives`] for passes of any size) and prices them
//! on the interconnect.
//!
//! Collectives carry the bytes of the whole tensor they combine and the size of their group:
//! nothing of hardware. They move in the stack's float type (2 bytes, or the activations'
//! width when wider), whatever format the GEMMs take their inputs in (fp8, int8).

pub use super::CollectiveKind;
use super::{Graph, Op, OpKind, Phase, Spread, Unit, lower_spread};
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

    /// The collective a placed graph's [`OpKind::Collective`] operator stands for (`None` for
    /// any other operator).
    pub fn of(op: &Op) -> Option<Collective> {
        match op.kind {
            OpKind::Collective {
                kind, group, stage, ..
            } => Some(Collective {
                name: op.name,
                layer: op.layer,
                kind,
                bytes: op.writes.activations,
                group,
                stage,
            }),
            _ => None,
        }
    }
}

/// A model and phase lowered for a placement: the graph of one tensor-parallel shard (all
/// blocks; [`Placed::stages`] splits them) with the pass's collectives and stage hand-offs
/// spliced in as [`Unit::Link`] operators, each right after the operator it follows.
#[derive(Clone, Debug)]
pub struct Placed {
    pub graph: Graph,
    pub stages: Vec<Range<u32>>,
}

impl Placed {
    /// The collectives and hand-offs in execution order.
    pub fn collectives(&self) -> impl Iterator<Item = Collective> + '_ {
        self.graph.ops().filter_map(Collective::of)
    }

    /// The operators a device runs (every operator but the collectives), in execution order:
    /// the shard's plain graph.
    pub fn device_ops(&self) -> impl Iterator<Item = &Op> {
        self.graph.ops().filter(|o| o.unit != Unit::Link)
    }

    /// The stage running operator `op`: a block's stage, a collective's own (a hand-off: the
    /// sending stage), 0 for the embedding and learned positions, the last for the final norm
    /// and LM head.
    pub fn stage_of_op(&self, op: &Op) -> u64 {
        match op.kind {
            OpKind::Collective { stage, .. } => stage,
            _ => device_op_stage(&self.stages, op.name, op.layer),
        }
    }
}

/// The stage running the device operator `name` of block `layer` (`None`: 0 for the
/// embedding and learned positions, the last stage for the final norm and LM head).
pub fn device_op_stage(stages: &[Range<u32>], name: &str, layer: Option<u32>) -> u64 {
    match layer {
        Some(l) => stage_of(stages, l),
        None if name == "embed" || name == "pos_embed" => 0,
        None => stages.len().saturating_sub(1) as u64,
    }
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

/// The collectives of a model's passes under a placement, for passes of any size: its placed
/// graph lowered once (one token of one sequence), each collective kept with the width of
/// its tensor, its rows set to a pass's by [`PassCollectives::at`]: the pass's tokens, or for
/// the logits gather (the one all-gather) its sequences, as the lowering sets them. What
/// `lower_placed(model, phase, placement).collectives()` gives, for a fraction of the work
/// (tested).
#[derive(Clone, Debug)]
pub struct PassCollectives {
    /// Each collective (bytes at one row) and the width of its tensor.
    collectives: Vec<(Collective, u64)>,
    element: f64,
}

impl PassCollectives {
    pub fn new(model: &Model, placement: Placement) -> PassCollectives {
        let unit = Phase::Prefill { tokens: 1, batch: 1 };
        let placed = lower_placed(model, unit, placement);
        let collectives = placed
            .graph
            .ops()
            .filter_map(|op| match op.kind {
                OpKind::Collective { width, .. } => Collective::of(op).map(|c| (c, width)),
                _ => None,
            })
            .collect();
        PassCollectives {
            collectives,
            element: comm_element_bytes(model),
        }
    }

    /// The collectives of a pass of `phase`, in execution order.
    pub fn at(&self, phase: Phase) -> impl Iterator<Item = Collective> + '_ {
        let (tokens, sequences) = (phase.tokens(), phase.batch());
        self.collectives.iter().map(move |(c, width)| {
            let rows = match c.kind {
                CollectiveKind::AllGather => sequences,
                _ => tokens,
            };
            Collective {
                bytes: Bytes::new(rows as f64 * *width as f64 * self.element),
                ..c.clone()
            }
        })
    }
}

/// `model` and `phase` lowered for `placement`: the graph of one tensor-parallel shard
/// ([`shard`]) with the pass's collectives and hand-offs spliced in, each between the operator
/// it follows and that operator's consumers: `embed_allreduce` after `embed` (before the
/// learned positions, which are added whole), `attn_allreduce` after `o_proj`,
/// `ffn_allreduce` after the FFN's output (`ffn_down`, `moe_combine` or `moe_shared_add`),
/// `block_allreduce` after a parallel residual's `parallel_add`, `stage_send` after a stage's
/// last block (then one per empty stage), `logits_gather` after `lm_head`. Without them the
/// graph is the shard's plain [`super::lower`], op for op.
pub fn lower_placed(model: &Model, phase: Phase, placement: Placement) -> Placed {
    let (tp, pp) = (placement.tp.max(1), placement.pp.max(1));
    let stages = stage_layers(model.n_layers() as u32, pp);
    let spread = Spread {
        tp,
        pp,
        stages: stages.clone(),
        element: comm_element_bytes(model),
        vocab: model.vocab,
    };
    let graph = lower_spread(&shard(model, tp), phase, Some(spread));
    Placed { graph, stages }
}

#[cfg(test)]
mod tests {
    use super::super::{Tensor, lower};
    use super::*;
    use crate::model;
    use petgraph::graph::{DiGraph, NodeIndex};

    /// What `collectives` gave before the collectives were operators of the placed graph:
    /// the collectives and transfers of one pass of `tokens` tokens (batch included) producing
    /// `logit_rows` rows of logits, under `placement`, in execution order.
    fn reference(model: &Model, tokens: u64, logit_rows: u64, placement: Placement) -> Vec<Collective> {
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

    #[test]
    fn stages_are_contiguous_and_balanced() {
        let s = stage_layers(10, 4);
        assert_eq!(s, vec![0..3, 3..6, 6..8, 8..10]);
        assert_eq!(stage_layers(2, 3), vec![0..1, 1..2, 2..2]);
        assert_eq!(stage_layers(5, 1), vec![0..5]);
    }

    /// The collectives of a pass of `tokens` tokens and `rows` sequences, read from the placed
    /// graph.
    fn pass(model: &Model, tokens: u64, rows: u64, placement: Placement) -> Vec<Collective> {
        let phase = Phase::Prefill { tokens, batch: rows };
        lower_placed(model, phase, placement).collectives().collect()
    }

    #[test]
    fn megatron_collectives_per_pass() {
        let m = model::preset("llama-3-8b").unwrap();
        let c = pass(&m, 7, 1, Placement { tp: 4, pp: 1 });
        let ar = c.iter().filter(|c| c.kind == CollectiveKind::AllReduce).count();
        assert_eq!(ar, 2 * m.n_layers() + 1);
        assert_eq!(c.last().unwrap().name, "logits_gather");
        let e = comm_element_bytes(&m);
        assert_eq!(c[1].bytes.get(), 7.0 * m.d_model as f64 * e);
        let c = pass(&m, 7, 1, Placement { tp: 1, pp: 4 });
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| c.kind == CollectiveKind::SendRecv));
        assert!(pass(&m, 7, 1, Placement::SINGLE).is_empty());
        // more stages than blocks: every boundary still hands off
        let small = model::preset("smollm2-135m").unwrap();
        let n = small.n_layers() as u64;
        let c = pass(&small, 1, 1, Placement { tp: 1, pp: n + 2 });
        assert_eq!(c.len() as u64, n + 1);
    }

    /// Dense, parallel-residual, mixture-of-experts and learned-position models.
    const MODELS: [&str; 5] = [
        "llama-3-8b",
        "pythia-160m",
        "mixtral-8x7b",
        "gpt2",
        "smollm2-135m",
    ];

    /// tp only, pp only, both, and more stages than `blocks`.
    fn placements(blocks: u64) -> Vec<Placement> {
        let p = |tp, pp| Placement { tp, pp };
        vec![
            p(1, 1),
            p(4, 1),
            p(1, 4),
            p(2, 3),
            p(1, blocks + 2),
            p(2, blocks + 1),
        ]
    }

    const PHASES: [Phase; 2] = [
        Phase::Prefill { tokens: 7, batch: 3 },
        Phase::Decode { context: 9, batch: 2 },
    ];

    #[test]
    fn placed_graph_less_its_collectives_is_the_shards_graph() {
        for name in MODELS {
            let m = model::preset(name).unwrap();
            for p in placements(m.n_layers() as u64) {
                for phase in PHASES {
                    let placed = lower_placed(&m, phase, p);
                    let plain = lower(&shard(&m, p.tp), phase);
                    let device: Vec<&Op> = placed.device_ops().collect();
                    assert_eq!(device, plain.ops().collect::<Vec<_>>(), "{name} {p:?} {phase:?}");
                    assert_eq!(placed.graph.blocks, plain.blocks);
                    let links = placed.graph.ops().filter(|o| o.unit == Unit::Link).count();
                    assert_eq!(links, placed.collectives().count());
                    if p == Placement::SINGLE {
                        assert_eq!(links, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn placed_collectives_are_the_passes_collectives() {
        for name in MODELS {
            let m = model::preset(name).unwrap();
            for p in placements(m.n_layers() as u64) {
                for phase in PHASES {
                    let got: Vec<Collective> = lower_placed(&m, phase, p).collectives().collect();
                    let want = reference(&m, phase.tokens(), phase.batch(), p);
                    assert_eq!(got, want, "{name} {p:?} {phase:?}");
                }
            }
        }
    }

    /// A collective's one producer may be (by name): the ops it follows.
    fn producers(collective: &str) -> &'static [&'static str] {
        match collective {
            "embed_allreduce" => &["embed"],
            "attn_allreduce" => &["o_proj"],
            "ffn_allreduce" => &["ffn_down", "moe_combine", "moe_shared_add"],
            "block_allreduce" => &["parallel_add"],
            "logits_gather" => &["lm_head"],
            // a stage's last block, or the hand-off before an empty stage
            "stage_send" => &[
                "ffn_residual",
                "stage_send",
                "embed",
                "embed_allreduce",
                "pos_embed",
            ],
            other => panic!("unknown collective {other}"),
        }
    }

    #[test]
    fn pass_collectives_are_the_placed_graphs() {
        for name in MODELS {
            let m = model::preset(name).unwrap();
            for p in placements(m.n_layers() as u64) {
                let passes = PassCollectives::new(&m, p);
                let more = [
                    Phase::Prefill { tokens: 0, batch: 2 },
                    Phase::Prefill {
                        tokens: 513,
                        batch: 7,
                    },
                ];
                for phase in PHASES.into_iter().chain(more) {
                    let want: Vec<Collective> = lower_placed(&m, phase, p).collectives().collect();
                    assert_eq!(
                        passes.at(phase).collect::<Vec<_>>(),
                        want,
                        "{name} {p:?} {phase:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn collectives_sit_between_their_producer_and_its_consumers() {
        use petgraph::Direction::{Incoming, Outgoing};
        use std::collections::BTreeSet;
        for name in MODELS {
            let m = model::preset(name).unwrap();
            for p in placements(m.n_layers() as u64) {
                let phase = PHASES[0];
                let placed = lower_placed(&m, phase, p);
                let plain = lower(&shard(&m, p.tp), phase);
                let dag = &placed.graph.dag;
                // each device op's index in the plain graph (the same ops in the same order)
                let mut plain_index = vec![usize::MAX; dag.node_count()];
                let device = dag.node_indices().filter(|&i| dag[i].unit != Unit::Link);
                for (k, i) in device.enumerate() {
                    plain_index[i.index()] = k;
                }
                // a device op's consumers, looking through the collectives after it
                fn consumers(
                    dag: &DiGraph<Op, Tensor>,
                    plain_index: &[usize],
                    i: NodeIndex,
                ) -> BTreeSet<usize> {
                    let mut out = BTreeSet::new();
                    for j in dag.neighbors_directed(i, Outgoing) {
                        if dag[j].unit == Unit::Link {
                            out.extend(consumers(dag, plain_index, j));
                        } else {
                            out.insert(plain_index[j.index()]);
                        }
                    }
                    out
                }
                for i in dag.node_indices() {
                    let op = &dag[i];
                    if op.unit != Unit::Link {
                        let k = NodeIndex::new(plain_index[i.index()]);
                        let want: BTreeSet<usize> = plain
                            .dag
                            .neighbors_directed(k, Outgoing)
                            .map(|j| j.index())
                            .collect();
                        assert_eq!(
                            consumers(dag, &plain_index, i),
                            want,
                            "{name} {p:?} {}",
                            op.label()
                        );
                        continue;
                    }
                    let from: Vec<_> = dag.neighbors_directed(i, Incoming).collect();
                    assert_eq!(from.len(), 1, "{name} {p:?} {}", op.label());
                    let producer = &dag[from[0]];
                    assert!(
                        producers(op.name).contains(&producer.name),
                        "{name} {p:?} {} after {}",
                        op.label(),
                        producer.label()
                    );
                    // the collective is its producer's only consumer
                    assert_eq!(dag.neighbors_directed(from[0], Outgoing).count(), 1);
                    // and comes right after it
                    assert_eq!(from[0].index() + 1, i.index());
                    let next: BTreeSet<&str> =
                        dag.neighbors_directed(i, Outgoing).map(|j| dag[j].name).collect();
                    let want: &[&str] = match op.name {
                        "attn_allreduce" => &["attn_residual"],
                        "ffn_allreduce" | "block_allreduce" => &["ffn_residual"],
                        "logits_gather" => &[],
                        _ => continue,
                    };
                    assert_eq!(
                        next,
                        want.iter().copied().collect(),
                        "{name} {p:?} {}",
                        op.label()
                    );
                }
            }
        }
    }

    #[test]
    fn placed_graph_is_acyclic_in_execution_order() {
        for name in MODELS {
            let m = model::preset(name).unwrap();
            for p in placements(m.n_layers() as u64) {
                for phase in PHASES {
                    let placed = lower_placed(&m, phase, p);
                    let dag = &placed.graph.dag;
                    assert!(!petgraph::algo::is_cyclic_directed(dag));
                    // every edge runs forward in operator order: the order is a topological one
                    for e in dag.edge_indices() {
                        let (a, b) = dag.edge_endpoints(e).unwrap();
                        assert!(a < b, "{name} {p:?} {} -> {}", dag[a].label(), dag[b].label());
                    }
                    // the stages run in order: an operator's stage is never before its producer's
                    for e in dag.edge_indices() {
                        let (a, b) = dag.edge_endpoints(e).unwrap();
                        let (sa, sb) = (placed.stage_of_op(&dag[a]), placed.stage_of_op(&dag[b]));
                        let handoff = matches!(
                            dag[a].kind,
                            OpKind::Collective {
                                kind: CollectiveKind::SendRecv,
                                ..
                            }
                        );
                        assert!(
                            sb == sa || (handoff && sb >= sa),
                            "{name} {p:?} {} -> {}",
                            dag[a].label(),
                            dag[b].label()
                        );
                    }
                }
            }
        }
    }
}
