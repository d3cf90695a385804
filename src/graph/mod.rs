//! Operator dataflow graph: a model and a phase lowered into a DAG of operators.
//!
//! Each [`Op`] carries its kind and shape, FLOPs, the bytes it reads and writes by role
//! (weights, activations, KV cache) and the compute class it runs on; each edge carries the
//! tensor passed from producer to consumer. Lowering follows the execution order of one
//! forward pass: embedding gather, then per block norm -> Q/K/V projections -> RoPE -> KV-cache
//! write -> attention scores (reading the KV cache) -> softmax -> PV -> output projection ->
//! residual add -> norm -> FFN (dense or routed experts) -> residual add; then final norm and
//! LM head.
//!
//! Lowered for a placement ([`parallel::lower_placed`]), the graph of a tensor-parallel shard
//! also holds the pass's collectives and stage hand-offs: [`OpKind::Collective`] operators on
//! [`Unit::Link`] (the interconnect; no FLOPs, the tensor's bytes as activations), each
//! between the operator it follows and its consumers. [`lower`] emits none.
//!
//! KV-cache reads are the `kv_cache` bytes of the attention-score and PV operators (a decode
//! step reads the C - 1 cached positions; prefill reads none). Prefill computes logits for the
//! last token of each sequence only.
//!
//! Architecture invariant: the graph knows nothing of hardware. Its totals equal
//! [`crate::model::accounting`]'s closed forms (tested).

pub mod parallel;

pub use crate::model::accounting::Phase;
use crate::model::accounting::{self, elementwise};
use crate::model::{ComputeClass, Ffn, FfnKind, Layer, Model, Moe, NormKind, Positional};
use crate::units::{Bytes, Flops};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

/// What an operator does, with its shape.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpKind {
    /// `batch` independent products of (m x k) by (k x n). Projections have batch 1;
    /// attention has one product per head and sequence.
    Gemm { m: u64, n: u64, k: u64, batch: u64 },
    /// Embedding lookup of `rows` rows of `width` elements.
    Gather { rows: u64, width: u64 },
    /// Any elementwise or reduction operator over `elements` elements.
    Elementwise { elements: u64 },
    /// Writing new keys and values into the cache.
    KvWrite { elements: u64 },
    /// A collective or a transfer between devices of a placement ([`parallel::lower_placed`]):
    /// `group` devices of pipeline stage `stage` (a hand-off: the sending stage) combine or pass
    /// a tensor of `rows` x `width` elements, the whole tensor (the sum an all-reduce
    /// produces, the gathered tensor, the tensor sent). Runs on [`Unit::Link`].
    Collective {
        kind: CollectiveKind,
        rows: u64,
        width: u64,
        group: u64,
        stage: u64,
    },
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

/// Which unit executes an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Matrix engines (tensor cores, systolic arrays).
    Matrix,
    /// Vector / SIMD units.
    Vector,
    /// Pure data movement.
    Memory,
    /// The interconnect between devices: the collectives and transfers of a placed graph
    /// ([`OpKind::Collective`]). No device runs it; the engines never see one.
    Link,
}

impl Unit {
    /// `matrix`, `vector`, `memory`, `link`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Matrix => "matrix",
            Unit::Vector => "vector",
            Unit::Memory => "memory",
            Unit::Link => "link",
        }
    }
}

/// Bytes by role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RoleBytes {
    pub weights: Bytes,
    pub activations: Bytes,
    pub kv_cache: Bytes,
}

impl RoleBytes {
    pub fn total(&self) -> Bytes {
        self.weights + self.activations + self.kv_cache
    }
}

/// One operator.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Op {
    /// Operator name within its block, e.g. `q_proj`, `attn_scores`, `ffn_down`.
    pub name: &'static str,
    /// Block index, or `None` for embedding, final norm and LM head.
    pub layer: Option<u32>,
    pub kind: OpKind,
    pub unit: Unit,
    /// The arithmetic the operator needs at least: for a GEMM, the narrowest type both its
    /// operands reach exactly (activations with the weights, or with the KV cache for the
    /// attention GEMMs; [`crate::numeric::exact_common`]); for other ops, that of the weight
    /// GEMMs. A substrate runs it at its narrowest native type this widens to
    /// (`Substrate::resolve`).
    pub compute: ComputeClass,
    pub flops: Flops,
    pub reads: RoleBytes,
    pub writes: RoleBytes,
}

impl Op {
    /// `L3.q_proj`, `embed`, `lm_head`.
    pub fn label(&self) -> String {
        match self.layer {
            Some(l) => format!("L{l}.{}", self.name),
            None => self.name.to_string(),
        }
    }
    /// Bytes moved in and out.
    pub fn bytes(&self) -> Bytes {
        self.reads.total() + self.writes.total()
    }
}

/// A tensor passed along an edge.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tensor {
    pub bytes: Bytes,
}

/// A lowered model and phase.
#[derive(Clone, Debug)]
pub struct Graph {
    pub model: String,
    pub phase: Phase,
    pub dag: DiGraph<Op, Tensor>,
    /// One record per block, in order: what its operators' shapes leave implicit.
    pub blocks: Vec<BlockShape>,
}

/// What a block's operators leave implicit, for a cost model that keeps the block's weights
/// in place and splits its attention by KV group (the ring accelerator). Hardware-free, a
/// record of the lowering: the operators' FLOPs and bytes do not depend on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockShape {
    /// The attention's heads and head dimensions (`None`: an attention-free block).
    pub attention: Option<BlockHeads>,
    /// The mixture of experts' counts (`None`: a dense FFN).
    pub experts: Option<ExpertCounts>,
    /// Attention and FFN read the same input and one add (`parallel_add`) sums both.
    pub parallel_residual: bool,
}

/// The heads of an attention block: `heads` query heads in `groups` KV groups, Q/K head
/// dimension `d_qk`, V head dimension `d_v` (the `attn_scores` GEMM has k = `d_qk`, the
/// `attn_pv` GEMM n = `d_v`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeads {
    pub heads: u64,
    pub groups: u64,
    pub d_qk: u64,
    pub d_v: u64,
}

/// The experts of a mixture-of-experts block. Its routed-expert GEMMs (the FFN ops between
/// `moe_router` and `moe_combine`) carry all routed rows (tokens x active) and read the
/// weights of `touched` experts; its shared-expert GEMMs (the FFN ops after `moe_combine`)
/// stand for `shared` identical matrices each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpertCounts {
    /// Routed experts stored.
    pub routed: u64,
    /// Routed experts each token runs.
    pub active: u64,
    /// Expected distinct routed experts the pass's tokens touch under uniform routing:
    /// E * (1 - (1 - a/E)^t).
    pub touched: f64,
    /// Shared experts (every token runs all of them).
    pub shared: u64,
}

impl std::str::FromStr for Phase {
    type Err = String;
    /// `prefill:<P>` or `decode:<C>` (batch 1; set the batch on the result).
    fn from_str(s: &str) -> Result<Phase, String> {
        let (kind, n) = s
            .split_once(':')
            .ok_or_else(|| format!("expected prefill:<tokens> or decode:<context>, found `{s}`"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a positive integer"))?;
        if n == 0 {
            return Err("the token count must be at least 1".into());
        }
        match kind.trim() {
            "prefill" => Ok(Phase::Prefill { tokens: n, batch: 1 }),
            "decode" => Ok(Phase::Decode { context: n, batch: 1 }),
            other => Err(format!("unknown phase `{other}`: expected prefill or decode")),
        }
    }
}

impl Phase {
    /// The same phase at another batch size.
    pub fn with_batch(self, b: u64) -> Phase {
        match self {
            Phase::Prefill { tokens, .. } => Phase::Prefill { tokens, batch: b },
            Phase::Decode { context, .. } => Phase::Decode { context, batch: b },
        }
    }
}

impl Graph {
    pub fn total_flops(&self) -> Flops {
        self.dag.node_weights().map(|o| o.flops).sum()
    }
    pub fn weight_bytes_read(&self) -> Bytes {
        self.dag.node_weights().map(|o| o.reads.weights).sum()
    }
    pub fn kv_bytes_read(&self) -> Bytes {
        self.dag.node_weights().map(|o| o.reads.kv_cache).sum()
    }
    pub fn kv_bytes_written(&self) -> Bytes {
        self.dag.node_weights().map(|o| o.writes.kv_cache).sum()
    }
    /// Operators in a valid execution order (the lowering emits them topologically).
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.dag.node_weights()
    }
}

/// How many identical matrices an op stands for: FLOPs and weight reads scale separately.
#[derive(Clone, Copy)]
struct Copies {
    weights: f64,
    flops: f64,
}

impl Copies {
    const ONE: Copies = Copies {
        weights: 1.0,
        flops: 1.0,
    };
}

/// Builds the graph: keeps the residual-stream producer and the byte sizes at hand.
struct Lowering<'m> {
    model: &'m Model,
    dag: DiGraph<Op, Tensor>,
    t: u64,
    w: f64,
    a: f64,
    kv: f64,
    compute: ComputeClass,
    attention: ComputeClass,
    layer: Option<u32>,
    /// The current block's expert counts, set by [`Self::moe`].
    experts: Option<ExpertCounts>,
    /// The placement whose collectives the lowering splices in (`None`: a plain graph).
    spread: Option<Spread>,
    /// The pipeline stage of the current block.
    stage: u64,
}

/// What a placed lowering needs of its placement and of the whole (unsharded) model.
struct Spread {
    tp: u64,
    pp: u64,
    stages: Vec<std::ops::Range<u32>>,
    /// Bytes per element collectives move ([`parallel::comm_element_bytes`]).
    element: f64,
    /// The whole vocabulary: the width of the gathered logits.
    vocab: u64,
}

impl Lowering<'_> {
    #[allow(clippy::too_many_arguments)] // a private builder taking one op's fields
    fn add(
        &mut self,
        name: &'static str,
        kind: OpKind,
        unit: Unit,
        flops: f64,
        reads: RoleBytes,
        writes: RoleBytes,
        inputs: &[NodeIndex],
    ) -> NodeIndex {
        let op = Op {
            name,
            layer: self.layer,
            kind,
            unit,
            compute: self.compute,
            flops: Flops::new(flops),
            reads,
            writes,
        };
        let idx = self.dag.add_node(op);
        for &src in inputs {
            let bytes = self.dag[src].writes.activations + self.dag[src].writes.kv_cache;
            self.dag.add_edge(src, idx, Tensor { bytes });
        }
        idx
    }

    /// A collective of `group` devices on a `rows` x `width` tensor after `input`, in the
    /// current block and stage.
    #[allow(clippy::too_many_arguments)] // a private builder taking one collective's fields
    fn collective(
        &mut self,
        name: &'static str,
        kind: CollectiveKind,
        rows: u64,
        width: u64,
        group: u64,
        stage: u64,
        element: f64,
        input: NodeIndex,
    ) -> NodeIndex {
        let bytes = Bytes::new(rows as f64 * width as f64 * element);
        let tensor = RoleBytes {
            activations: bytes,
            ..Default::default()
        };
        let kind = OpKind::Collective {
            kind,
            rows,
            width,
            group,
            stage,
        };
        self.add(name, kind, Unit::Link, 0.0, tensor, tensor, &[input])
    }

    /// The tensor-parallel all-reduce `name` of the residual stream's partial sums after
    /// `input` (`input` itself without tensor parallelism).
    fn all_reduce(&mut self, name: &'static str, input: NodeIndex) -> NodeIndex {
        let Some(&Spread { tp, element, .. }) = self.spread.as_ref() else {
            return input;
        };
        if tp <= 1 {
            return input;
        }
        let (t, d, stage) = (self.t, self.model.d_model, self.stage);
        self.collective(name, CollectiveKind::AllReduce, t, d, tp, stage, element, input)
    }

    /// The hand-off of the residual stream from `stage` to the next one, after `input`.
    fn stage_send(&mut self, stage: u64, input: NodeIndex) -> NodeIndex {
        let Some(element) = self.spread.as_ref().map(|s| s.element) else {
            return input;
        };
        let (t, d) = (self.t, self.model.d_model);
        self.collective(
            "stage_send",
            CollectiveKind::SendRecv,
            t,
            d,
            2,
            stage,
            element,
            input,
        )
    }

    fn act(&self, elements: f64) -> Bytes {
        Bytes::new(elements * self.a)
    }
    fn wt(&self, elements: f64) -> Bytes {
        Bytes::new(elements * self.w)
    }

    /// A (rows x k) by (k x n) projection with weights, optional bias. `copies` identical
    /// matrices (shared experts) multiply FLOPs and weight reads; `weight_reads` overrides
    /// how many matrices' weights are read (routed experts touched by the batch).
    #[allow(clippy::too_many_arguments)] // a private builder taking one GEMM's shape
    fn linear(
        &mut self,
        name: &'static str,
        rows: u64,
        k: u64,
        n: u64,
        bias: bool,
        copies: Copies,
        input: NodeIndex,
    ) -> NodeIndex {
        let (kf, nf, r) = (k as f64, n as f64, rows as f64);
        let bias_elems = if bias { nf } else { 0.0 };
        let flops = copies.flops * (2.0 * r * kf * nf + if bias { r * nf * elementwise::ADD } else { 0.0 });
        let reads = RoleBytes {
            weights: self.wt(copies.weights * (kf * nf + bias_elems)),
            activations: self.act(r * kf),
            ..Default::default()
        };
        let writes = RoleBytes {
            activations: self.act(r * nf),
            ..Default::default()
        };
        self.add(
            name,
            OpKind::Gemm {
                m: rows,
                n,
                k,
                batch: 1,
            },
            Unit::Matrix,
            flops,
            reads,
            writes,
            &[input],
        )
    }

    fn elementwise(
        &mut self,
        name: &'static str,
        elements: f64,
        cost: f64,
        in_elems: f64,
        weights: f64,
        inputs: &[NodeIndex],
    ) -> NodeIndex {
        let reads = RoleBytes {
            weights: self.wt(weights),
            activations: self.act(in_elems),
            ..Default::default()
        };
        let writes = RoleBytes {
            activations: self.act(elements),
            ..Default::default()
        };
        self.add(
            name,
            OpKind::Elementwise {
                elements: elements as u64,
            },
            Unit::Vector,
            elements * cost,
            reads,
            writes,
            inputs,
        )
    }

    /// As [`Self::elementwise`], with FLOPs multiplied by `copies`.
    fn elementwise_copies(
        &mut self,
        name: &'static str,
        elements: f64,
        cost: f64,
        copies: f64,
        inputs: &[NodeIndex],
        in_elems: f64,
    ) -> NodeIndex {
        let idx = self.elementwise(name, elements, cost, in_elems, 0.0, inputs);
        self.dag[idx].flops = Flops::new(elements * cost * copies);
        idx
    }

    fn norm(&mut self, name: &'static str, input: NodeIndex) -> NodeIndex {
        let d = self.model.d_model as f64;
        let n = self.t as f64 * d;
        let (cost, weights) = match self.model.norm {
            NormKind::RmsNorm => (elementwise::RMSNORM, d),
            NormKind::LayerNorm => (elementwise::LAYERNORM, 2.0 * d),
        };
        self.elementwise(name, n, cost, n, weights, &[input])
    }

    fn residual(&mut self, name: &'static str, a: NodeIndex, b: NodeIndex) -> NodeIndex {
        let n = self.t as f64 * self.model.d_model as f64;
        self.elementwise(name, n, elementwise::ADD, 2.0 * n, 0.0, &[a, b])
    }

    /// A dense MLP on `rows` rows; `copies` as in [`Self::linear`].
    fn mlp(
        &mut self,
        kind: FfnKind,
        rows: u64,
        width: u64,
        bias: bool,
        copies: Copies,
        input: NodeIndex,
    ) -> NodeIndex {
        let d = self.model.d_model;
        let up = self.linear("ffn_up", rows, d, width, bias, copies, input);
        let elems = rows as f64 * width as f64;
        let act = if kind.is_gated() {
            let gate = self.linear("ffn_gate", rows, d, width, bias, copies, input);
            let cost = if kind == FfnKind::SwiGlu {
                elementwise::SWIGLU
            } else {
                elementwise::GEGLU
            };
            self.elementwise_copies("ffn_act", elems, cost, copies.flops, &[gate, up], 2.0 * elems)
        } else {
            self.elementwise_copies("ffn_act", elems, elementwise::GELU, copies.flops, &[up], elems)
        };
        self.linear("ffn_down", rows, width, d, bias, copies, act)
    }

    fn moe(&mut self, kind: FfnKind, moe: &Moe, input: NodeIndex) -> NodeIndex {
        let d = self.model.d_model;
        let t = self.t;
        let router = self.linear("moe_router", t, d, moe.experts, false, Copies::ONE, input);
        let te = t as f64 * moe.experts as f64;
        let probs = self.elementwise("moe_softmax", te, elementwise::SOFTMAX, te, 0.0, &[router]);
        // Each token runs `active` experts: t * active rows in all. The weights read are those
        // of the distinct experts the batch touches, in expectation under uniform routing.
        let e = moe.experts as f64;
        let touched = e * (1.0 - (1.0 - moe.active as f64 / e).powf(t as f64));
        self.experts = Some(ExpertCounts {
            routed: moe.experts,
            active: moe.active,
            touched,
            shared: moe.shared_experts,
        });
        let routed = self.mlp(
            kind,
            t * moe.active,
            moe.expert_width,
            false,
            Copies {
                weights: touched,
                flops: 1.0,
            },
            input,
        );
        let (tf, df) = (t as f64, d as f64);
        let combine = self.elementwise(
            "moe_combine",
            tf * df,
            2.0 * moe.active as f64,
            tf * df * moe.active as f64,
            0.0,
            &[routed, probs],
        );
        if moe.shared_experts == 0 {
            return combine;
        }
        let s = moe.shared_experts as f64;
        let shared = self.mlp(
            kind,
            t,
            moe.shared_width,
            false,
            Copies { weights: s, flops: s },
            input,
        );
        let shared_out = if moe.shared_gate {
            let gate = self.linear("moe_shared_gate", t, d, 1, false, Copies::ONE, input);
            self.elementwise(
                "moe_shared_scale",
                tf * df,
                elementwise::ADD,
                tf * df + tf,
                0.0,
                &[shared, gate],
            )
        } else {
            shared
        };
        self.residual("moe_shared_add", combine, shared_out)
    }

    fn block(&mut self, layer: &Layer, phase: &Phase, x: NodeIndex) -> NodeIndex {
        let model = self.model;
        let d = model.d_model;
        let t = self.t;
        let tf = t as f64;
        let attn_out = if let Some(a) = &layer.attention {
            let h = self.norm("attn_norm", x);
            let q = self.linear("q_proj", t, d, a.q_width(), a.qkv_bias, Copies::ONE, h);
            let k = self.linear("k_proj", t, d, a.k_width(), a.qkv_bias, Copies::ONE, h);
            let v = self.linear("v_proj", t, d, a.v_width(), a.qkv_bias, Copies::ONE, h);
            let (q, k) = match model.positional {
                Positional::Rope { fraction } => {
                    let rotated = (a.d_qk as f64 * fraction).round();
                    let qe = tf * a.heads as f64 * rotated;
                    let ke = tf * a.kv_groups as f64 * rotated;
                    let q = self.elementwise("rope_q", qe, elementwise::ROPE, qe, 0.0, &[q]);
                    let k = self.elementwise("rope_k", ke, elementwise::ROPE, ke, 0.0, &[k]);
                    (q, k)
                }
                _ => (q, k),
            };
            let kv_elems = tf * a.kv_elements_per_token() as f64;
            let kv_write = self.add(
                "kv_write",
                OpKind::KvWrite {
                    elements: kv_elems as u64,
                },
                Unit::Memory,
                0.0,
                RoleBytes {
                    activations: self.act(kv_elems),
                    ..Default::default()
                },
                RoleBytes {
                    kv_cache: Bytes::new(kv_elems * self.kv),
                    ..Default::default()
                },
                &[k, v],
            );
            let heads = a.heads as f64;
            let pairs = phase.attention_pairs() as f64 * heads;
            let batch = phase.batch();
            let cached = (phase.cached_positions() * batch) as f64;
            let (qrows, ctx) = match *phase {
                Phase::Prefill { tokens, .. } => (tokens, tokens),
                Phase::Decode { context, .. } => (1, context),
            };
            // the attention GEMMs compute in the activations' and KV cache's common type
            let weight_class = std::mem::replace(&mut self.compute, self.attention);
            let scores = self.add(
                "attn_scores",
                OpKind::Gemm {
                    m: qrows,
                    n: ctx,
                    k: a.d_qk,
                    batch: batch * a.heads,
                },
                Unit::Matrix,
                pairs * (2.0 * a.d_qk as f64 + elementwise::SCALE),
                RoleBytes {
                    activations: self.act(tf * (a.q_width() + a.k_width()) as f64),
                    kv_cache: Bytes::new(cached * a.k_width() as f64 * self.kv),
                    ..Default::default()
                },
                RoleBytes {
                    activations: self.act(pairs),
                    ..Default::default()
                },
                &[q, k, kv_write],
            );
            self.compute = weight_class;
            let probs = self.elementwise("softmax", pairs, elementwise::SOFTMAX, pairs, 0.0, &[scores]);
            self.compute = self.attention;
            let pv = self.add(
                "attn_pv",
                OpKind::Gemm {
                    m: qrows,
                    n: a.d_v,
                    k: ctx,
                    batch: batch * a.heads,
                },
                Unit::Matrix,
                pairs * 2.0 * a.d_v as f64,
                RoleBytes {
                    activations: self.act(pairs + tf * a.v_width() as f64),
                    kv_cache: Bytes::new(cached * a.v_width() as f64 * self.kv),
                    ..Default::default()
                },
                RoleBytes {
                    activations: self.act(tf * a.o_width() as f64),
                    ..Default::default()
                },
                &[probs, v, kv_write],
            );
            self.compute = weight_class;
            let o = self.linear("o_proj", t, a.o_width(), d, a.o_bias, Copies::ONE, pv);
            Some(o)
        } else {
            None
        };
        let ffn_in = match (attn_out, layer.parallel_residual) {
            (Some(o), false) => {
                let o = self.all_reduce("attn_allreduce", o);
                self.residual("attn_residual", x, o)
            }
            _ => x,
        };
        let h = self.norm("ffn_norm", ffn_in);
        let f = match &layer.ffn {
            Ffn::Dense { kind, width, bias } => self.mlp(*kind, t, *width, *bias, Copies::ONE, h),
            Ffn::Moe { kind, moe } => self.moe(*kind, moe, h),
        };
        match (attn_out, layer.parallel_residual) {
            (Some(o), true) => {
                let sum = self.residual("parallel_add", o, f);
                let sum = self.all_reduce("block_allreduce", sum);
                self.residual("ffn_residual", x, sum)
            }
            _ => {
                let f = self.all_reduce("ffn_allreduce", f);
                self.residual("ffn_residual", ffn_in, f)
            }
        }
    }
}

/// Lowers a model and phase into its operator graph.
pub fn lower(model: &Model, phase: Phase) -> Graph {
    lower_spread(model, phase, None)
}

/// Lowers `model` (a tensor-parallel shard when `spread.tp > 1`) and phase, with the
/// collectives and stage hand-offs of `spread` spliced in after the ops they follow.
fn lower_spread(model: &Model, phase: Phase, spread: Option<Spread>) -> Graph {
    let per_block = 24 + if spread.is_some() { 3 } else { 0 };
    let n_ops = model.layers.len() * per_block + 6;
    let mut l = Lowering {
        model,
        dag: DiGraph::with_capacity(n_ops, n_ops * 2),
        t: phase.tokens(),
        w: model.precision.weights.bytes(),
        a: model.precision.activations.bytes(),
        kv: model.precision.kv_cache.bytes(),
        compute: model.precision.weight_gemm(),
        attention: model.precision.attention_gemm(),
        layer: None,
        experts: None,
        spread,
        stage: 0,
    };
    let mut blocks = Vec::with_capacity(model.layers.len());
    let d = model.d_model;
    let tf = l.t as f64;
    let df = d as f64;
    let mut x = l.add(
        "embed",
        OpKind::Gather { rows: l.t, width: d },
        Unit::Memory,
        0.0,
        RoleBytes {
            weights: l.wt(tf * df),
            ..Default::default()
        },
        RoleBytes {
            activations: l.act(tf * df),
            ..Default::default()
        },
        &[],
    );
    // the vocabulary-parallel embedding's partial rows (the positions are added whole)
    x = l.all_reduce("embed_allreduce", x);
    if let Positional::Learned { .. } = model.positional {
        x = l.elementwise("pos_embed", tf * df, elementwise::ADD, tf * df, tf * df, &[x]);
    }
    let pp = l.spread.as_ref().map_or(1, |s| s.pp);
    for (i, layer) in model.layers.iter().enumerate() {
        let i = i as u32;
        l.layer = Some(i);
        l.experts = None;
        let stage_end = match &l.spread {
            Some(s) => {
                l.stage = parallel::stage_of(&s.stages, i);
                s.stages[l.stage as usize].end
            }
            None => 0,
        };
        x = l.block(layer, &phase, x);
        // the last block of a stage hands the residual stream to the next stage
        if l.stage + 1 < pp && stage_end == i + 1 {
            x = l.stage_send(l.stage, x);
        }
        blocks.push(BlockShape {
            attention: layer.attention.map(|a| BlockHeads {
                heads: a.heads,
                groups: a.kv_groups,
                d_qk: a.d_qk,
                d_v: a.d_v,
            }),
            experts: l.experts,
            parallel_residual: layer.parallel_residual && layer.attention.is_some(),
        });
    }
    // stages left empty (more stages than blocks) still pass the stream on
    let empty: Vec<(u64, Option<u32>)> = l.spread.as_ref().map_or(Vec::new(), |s| {
        let stages = s.stages.iter().enumerate();
        stages
            .filter(|(i, r)| r.is_empty() && (*i as u64) + 1 < pp)
            .map(|(i, r)| (i as u64, r.start.checked_sub(1)))
            .collect()
    });
    for (stage, layer) in empty {
        l.layer = layer;
        x = l.stage_send(stage, x);
    }
    l.layer = None;
    let h = l.norm("final_norm", x);
    let rows = phase.batch();
    // logits of the last token of each sequence
    let logits = l.linear("lm_head", rows, d, model.vocab, false, Copies::ONE, h);
    // the vocabulary slices of the logits gathered
    if let Some(&Spread {
        tp, element, vocab, ..
    }) = l.spread.as_ref()
        && tp > 1
    {
        let kind = CollectiveKind::AllGather;
        l.collective("logits_gather", kind, rows, vocab, tp, pp - 1, element, logits);
    }
    Graph {
        model: model.name.clone(),
        phase,
        dag: l.dag,
        blocks,
    }
}

/// Weight bytes a graph is expected to read, from the accounting: every stored weight except
/// the rows of the input embedding and position tables that are not gathered (all of them
/// when the LM head is tied, since the head reads the whole matrix), with MoE experts counted
/// as touched.
pub fn expected_decode_weight_reads(model: &Model) -> Bytes {
    let w = model.precision.weights.bytes();
    let p = accounting::params(model);
    let d = model.d_model as f64;
    let mut bytes = p.active as f64 * w;
    // The input embedding is read as one gathered row (batch 1); when untied, the rest of it
    // is not read. When tied, the LM head reads it all, and the gathered row is read again.
    if model.tied_embeddings {
        bytes += d * w;
    } else {
        bytes -= (model.vocab as f64 - 1.0) * d * w;
    }
    if let Positional::Learned { max_positions } = model.positional {
        bytes -= (max_positions as f64 - 1.0) * d * w;
    }
    Bytes::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    #[test]
    fn graph_flops_equal_accounting() {
        for name in model::presets::names() {
            let m = model::preset(name).unwrap();
            for phase in [
                Phase::Prefill { tokens: 37, batch: 2 },
                Phase::Decode {
                    context: 300,
                    batch: 1,
                },
                Phase::Decode { context: 5, batch: 3 },
            ] {
                let g = lower(&m, phase);
                let want = accounting::phase_flops(&m, &phase).get();
                let got = g.total_flops().get();
                assert!(
                    (got - want).abs() <= 1e-9 * want,
                    "{name} {phase:?}: graph {got} vs accounting {want}"
                );
            }
        }
    }

    #[test]
    fn decode_reads_every_weight_once() {
        for name in model::presets::names() {
            let m = model::preset(name).unwrap();
            if m.is_moe() {
                continue;
            }
            let g = lower(
                &m,
                Phase::Decode {
                    context: 100,
                    batch: 1,
                },
            );
            let got = g.weight_bytes_read().get();
            let want = expected_decode_weight_reads(&m).get();
            assert!((got - want).abs() < 1e-6 * want, "{name}: {got} vs {want}");
            if m.tied_embeddings && !matches!(m.positional, Positional::Learned { .. }) {
                // the tied head is a read of the one stored matrix: all weights, plus the gathered row
                let all = accounting::weight_bytes(&m).get() + m.d_model as f64 * m.precision.weights.bytes();
                assert!((got - all).abs() < 1e-6 * all, "{name}");
            }
        }
    }

    #[test]
    fn moe_decode_reads_active_experts_only() {
        let m = model::preset("mixtral-8x7b").unwrap();
        let g = lower(
            &m,
            Phase::Decode {
                context: 10,
                batch: 1,
            },
        );
        let want = expected_decode_weight_reads(&m).get();
        let got = g.weight_bytes_read().get();
        assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
    }

    #[test]
    fn kv_traffic() {
        let m = model::preset("smollm2-360m").unwrap();
        let per_tok = accounting::kv_bytes_per_token(&m).get();
        let g = lower(
            &m,
            Phase::Decode {
                context: 257,
                batch: 1,
            },
        );
        assert_eq!(g.kv_bytes_read().get(), 256.0 * per_tok);
        assert_eq!(g.kv_bytes_written().get(), per_tok);
        let g = lower(&m, Phase::Prefill { tokens: 64, batch: 2 });
        assert_eq!(g.kv_bytes_read().get(), 0.0);
        assert_eq!(g.kv_bytes_written().get(), 128.0 * per_tok);
    }

    #[test]
    fn graph_is_acyclic_and_connected_to_the_head() {
        let m = model::preset("pythia-160m").unwrap();
        let g = lower(&m, Phase::Prefill { tokens: 8, batch: 1 });
        assert!(!petgraph::algo::is_cyclic_directed(&g.dag));
        let order = petgraph::algo::toposort(&g.dag, None).unwrap();
        assert_eq!(g.dag[order[0]].name, "embed");
        assert_eq!(g.dag[*order.last().unwrap()].name, "lm_head");
    }
}

/// Bytes per element of a standalone kernel's operands and the arithmetic it runs
/// ([`gemm_op`], [`attention_ops`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelFormats {
    /// Activations in (A of a GEMM; Q, and fresh K and V, of attention).
    pub input: f64,
    /// Weights (B of a GEMM) or the KV cache (attention).
    pub stored: f64,
    /// Outputs.
    pub output: f64,
    pub compute: ComputeClass,
}

/// One GEMM as its own kernel: `batch` products of an (m x k) activation by a (k x n) weight
/// matrix, each with its own operands.
pub fn gemm_op(m: u64, n: u64, k: u64, batch: u64, f: KernelFormats) -> Op {
    let (b, mf, nf, kf) = (batch as f64, m as f64, n as f64, k as f64);
    Op {
        name: "gemm",
        layer: None,
        kind: OpKind::Gemm { m, n, k, batch },
        unit: Unit::Matrix,
        compute: f.compute,
        flops: Flops::new(2.0 * b * mf * nf * kf),
        reads: RoleBytes {
            weights: Bytes::new(b * nf * kf * f.stored),
            activations: Bytes::new(b * mf * kf * f.input),
            ..Default::default()
        },
        writes: RoleBytes {
            activations: Bytes::new(b * mf * nf * f.output),
            ..Default::default()
        },
    }
}

/// The shape of one attention core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: u64,
    pub heads: u64,
    pub kv_heads: u64,
    /// Query rows per sequence and keys they attend to (the last `q_len` of `kv_len`
    /// positions are new; the others come from the KV cache).
    pub q_len: u64,
    pub kv_len: u64,
    pub d_qk: u64,
    pub d_v: u64,
    /// Query `j` sees only the keys up to its own position.
    pub causal: bool,
}

impl AttentionShape {
    /// (query, key) pairs per sequence and head.
    pub fn pairs(&self) -> u64 {
        let (q, kv) = (self.q_len, self.kv_len);
        if self.causal && q <= kv {
            q * (kv - q) + q * (q + 1) / 2
        } else {
            q * kv
        }
    }
}

/// The attention core as the lowering builds it (scores, softmax, PV; the engines fuse them
/// on GPUs): Q and the new keys and values are activations, the rest of the keys and values
/// come from the cache.
pub fn attention_ops(s: AttentionShape, f: KernelFormats) -> [Op; 3] {
    let b = s.batch as f64;
    let (h, g) = (s.heads as f64, s.kv_heads as f64);
    let pairs = b * h * s.pairs() as f64;
    let fresh = s.q_len.min(s.kv_len) as f64;
    let cached = s.kv_len.saturating_sub(s.q_len) as f64;
    let (dqk, dv) = (s.d_qk as f64, s.d_v as f64);
    let q_rows = b * s.q_len as f64;
    let op = |name, kind, unit, flops: f64, reads, writes| Op {
        name,
        layer: None,
        kind,
        unit,
        compute: f.compute,
        flops: Flops::new(flops),
        reads,
        writes,
    };
    let act = |elements: f64| RoleBytes {
        activations: Bytes::new(elements * f.input),
        ..Default::default()
    };
    let scores = op(
        "attn_scores",
        OpKind::Gemm {
            m: s.q_len,
            n: s.kv_len,
            k: s.d_qk,
            batch: s.batch * s.heads,
        },
        Unit::Matrix,
        pairs * (2.0 * dqk + elementwise::SCALE),
        RoleBytes {
            activations: Bytes::new((q_rows * h * dqk + b * fresh * g * dqk) * f.input),
            kv_cache: Bytes::new(b * cached * g * dqk * f.stored),
            ..Default::default()
        },
        act(pairs),
    );
    let softmax = op(
        "softmax",
        OpKind::Elementwise {
            elements: pairs as u64,
        },
        Unit::Vector,
        pairs * elementwise::SOFTMAX,
        act(pairs),
        act(pairs),
    );
    let pv = op(
        "attn_pv",
        OpKind::Gemm {
            m: s.q_len,
            n: s.d_v,
            k: s.kv_len,
            batch: s.batch * s.heads,
        },
        Unit::Matrix,
        pairs * 2.0 * dv,
        RoleBytes {
            activations: Bytes::new((pairs + b * fresh * g * dv) * f.input),
            kv_cache: Bytes::new(b * cached * g * dv * f.stored),
            ..Default::default()
        },
        RoleBytes {
            activations: Bytes::new(q_rows * h * dv * f.output),
            ..Default::default()
        },
    );
    [scores, softmax, pv]
}
