//! A model lowered once per phase into block *templates*, so that the engines never re-lower
//! the graph per decode step.
//!
//! A model's graph is a head (embedding, learned positions), one block per layer, and a tail
//! (final norm, LM head). Every op of a block depends only on that block's layer and the
//! phase, and a block's only outside input is the previous block's output. So the graph is
//! rebuilt exactly from the graphs of one-block models: [`Program::new`] lowers a one-layer
//! model per *distinct* layer (an identical layer is lowered once) with
//! [`crate::graph::lower`], and records, per layer, which template it uses.
//!
//! For decode, the per-op FLOPs, bytes and shapes are affine in the context C (attention
//! scores, softmax and PV grow with C; everything else is constant): each op is lowered at two
//! reference contexts and stored as a value plus a per-context slope ([`ProgOp::at`]). The
//! test suite checks that a program expanded at any context equals a fresh lowering of the
//! whole model op for op, and that its edges match the graph's.
//!
//! Templates come from the plain lowering ([`crate::graph::lower`]), which has no
//! [`crate::graph::Unit::Link`] operator: a placed graph's collectives never reach an engine
//! (the system path prices them on the interconnect).

use crate::graph::{self, Op, OpKind, Phase, RoleBytes};
use crate::model::{Layer, Model};
use crate::units::{Bytes, Flops};
use petgraph::visit::EdgeRef;

/// Where an op's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dep {
    /// The output of the previous part (previous block, or the head for the first block).
    Input,
    /// An earlier op of the same part.
    Local(u32),
}

/// The inputs of an op: at most four (attention scores read Q, K and the KV write).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deps {
    items: [Dep; 4],
    len: u8,
}

impl Default for Deps {
    fn default() -> Self {
        Deps {
            items: [Dep::Input; 4],
            len: 0,
        }
    }
}

impl Deps {
    /// Adds `d` unless present. An op with more than four inputs keeps the first four (the
    /// lowering never makes one).
    pub fn push(&mut self, d: Dep) {
        if !self.as_slice().contains(&d) && (self.len as usize) < self.items.len() {
            self.items[self.len as usize] = d;
            self.len += 1;
        }
    }
    pub fn as_slice(&self) -> &[Dep] {
        &self.items[..self.len as usize]
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Dep> {
        self.as_slice().iter()
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn sort(&mut self) {
        let n = self.len as usize;
        self.items[..n].sort_by_key(|d| match d {
            Dep::Input => -1,
            Dep::Local(i) => *i as i64,
        });
    }
}

/// Per-unit-context increments of an op's quantities (all zero for ops that do not depend on
/// the context, and in prefill).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Slope {
    pub flops: f64,
    pub reads: [f64; 3],
    pub writes: [f64; 3],
    /// Increments of the shape fields (Gemm m, n, k, batch; elements for the others).
    pub shape: [i64; 4],
}

impl Slope {
    pub fn is_zero(&self) -> bool {
        *self == Slope::default()
    }
}

/// One op of a template at the reference context, its slope and its inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgOp {
    pub op: Op,
    pub slope: Slope,
    pub deps: Deps,
    /// For attention GEMMs, query heads per KV group (H / G; 1 when G does not divide H), so
    /// that a mapper can run the heads of a group as one GEMM against their shared K or V.
    pub heads_per_group: u64,
    /// Context the op was lowered at (decode), or 0.
    pub ref_context: u64,
}

fn role(b: &RoleBytes) -> [f64; 3] {
    [b.weights.get(), b.activations.get(), b.kv_cache.get()]
}

fn shape(k: &OpKind) -> [i64; 4] {
    match *k {
        OpKind::Gemm { m, n, k, batch } => [m as i64, n as i64, k as i64, batch as i64],
        OpKind::Gather { rows, width } => [rows as i64, width as i64, 0, 0],
        OpKind::Elementwise { elements } | OpKind::KvWrite { elements } => [elements as i64, 0, 0, 0],
        OpKind::Collective { rows, width, .. } => [rows as i64, width as i64, 0, 0],
    }
}

fn with_shape(k: &OpKind, s: [i64; 4]) -> OpKind {
    let u = |x: i64| x.max(0) as u64;
    match *k {
        OpKind::Gemm { .. } => OpKind::Gemm {
            m: u(s[0]),
            n: u(s[1]),
            k: u(s[2]),
            batch: u(s[3]),
        },
        OpKind::Gather { .. } => OpKind::Gather {
            rows: u(s[0]),
            width: u(s[1]),
        },
        OpKind::Elementwise { .. } => OpKind::Elementwise { elements: u(s[0]) },
        OpKind::KvWrite { .. } => OpKind::KvWrite { elements: u(s[0]) },
        OpKind::Collective {
            kind, group, stage, ..
        } => OpKind::Collective {
            kind,
            rows: u(s[0]),
            width: u(s[1]),
            group,
            stage,
        },
    }
}

impl ProgOp {
    /// Whether the op's cost changes with the context.
    pub fn context_dependent(&self) -> bool {
        !self.slope.is_zero()
    }

    /// The op at integer context `c` (decode); the op itself for prefill or fixed ops.
    pub fn at(&self, c: u64) -> Op {
        if self.slope.is_zero() {
            return self.op.clone();
        }
        let mut op = self.op.clone();
        self.apply(&mut op, c as f64);
        let dc = c as i64 - self.ref_context as i64;
        let s0 = shape(&self.op.kind);
        let mut s = [0i64; 4];
        for i in 0..4 {
            s[i] = s0[i] + self.slope.shape[i] * dc;
        }
        op.kind = with_shape(&self.op.kind, s);
        op
    }

    /// The op at a (possibly fractional) context: FLOPs and bytes interpolated along the
    /// slope, shapes left at the reference (see [`Self::apply`]).
    pub fn at_f(&self, c: f64) -> Op {
        let mut op = self.op.clone();
        if !self.slope.is_zero() {
            self.apply(&mut op, c);
        }
        op
    }

    /// Writes the FLOPs and bytes at a (possibly fractional) context into `op`; shapes are
    /// left at the reference. Used by the roofline, whose sums over contexts are evaluated at
    /// segment midpoints.
    pub fn apply(&self, op: &mut Op, c: f64) {
        let dc = c - self.ref_context as f64;
        let s = &self.slope;
        let r = role(&self.op.reads);
        let w = role(&self.op.writes);
        op.flops = Flops::new(self.op.flops.get() + s.flops * dc);
        op.reads = RoleBytes {
            weights: Bytes::new(r[0] + s.reads[0] * dc),
            activations: Bytes::new(r[1] + s.reads[1] * dc),
            kv_cache: Bytes::new(r[2] + s.reads[2] * dc),
        };
        op.writes = RoleBytes {
            weights: Bytes::new(w[0] + s.writes[0] * dc),
            activations: Bytes::new(w[1] + s.writes[1] * dc),
            kv_cache: Bytes::new(w[2] + s.writes[2] * dc),
        };
    }
}

/// A model lowered for one phase kind: head, distinct block templates, tail.
#[derive(Clone, Debug)]
pub struct Program {
    pub model: String,
    /// The phase the program was lowered for (decode: at the reference context).
    pub phase: Phase,
    pub head: Vec<ProgOp>,
    pub templates: Vec<Vec<ProgOp>>,
    /// Template index of every layer, in order.
    pub blocks: Vec<usize>,
    pub tail: Vec<ProgOp>,
}

/// Where a mini-graph node belongs.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Head,
    Block,
    Tail,
}

/// `model` with only `layer` (or no layer) and no name: what a one-layer lowering sees.
pub fn one_layer(model: &Model, layer: Option<&Layer>) -> Model {
    Model {
        name: String::new(),
        d_model: model.d_model,
        vocab: model.vocab,
        tied_embeddings: model.tied_embeddings,
        norm: model.norm,
        positional: model.positional,
        precision: model.precision,
        layers: layer.into_iter().copied().collect(),
    }
}

/// Lowers `model` with only `layer` (or no layer) and splits it into head / block / tail.
fn lower_parts(model: &Model, layer: Option<&Layer>, phase: Phase) -> [Vec<(Op, Deps)>; 3] {
    let mini = one_layer(model, layer);
    let g = graph::lower(&mini, phase);
    let n = g.dag.node_count();
    let mut part = vec![Part::Head; n];
    let mut local = vec![0u32; n];
    let mut seen_block = false;
    let mut counts = [0u32; 3];
    for i in g.dag.node_indices() {
        let p = if g.dag[i].layer.is_some() {
            seen_block = true;
            Part::Block
        } else if seen_block || (layer.is_none() && matches!(g.dag[i].name, "final_norm" | "lm_head")) {
            Part::Tail
        } else {
            Part::Head
        };
        part[i.index()] = p;
        local[i.index()] = counts[p as usize];
        counts[p as usize] += 1;
    }
    let mut out: [Vec<(Op, Deps)>; 3] = [
        Vec::with_capacity(counts[0] as usize),
        Vec::with_capacity(counts[1] as usize),
        Vec::with_capacity(counts[2] as usize),
    ];
    for i in g.dag.node_indices() {
        let p = part[i.index()];
        let mut deps = Deps::default();
        for e in g.dag.edges_directed(i, petgraph::Direction::Incoming) {
            let s = e.source().index();
            let d = if part[s] == p {
                Dep::Local(local[s])
            } else {
                Dep::Input
            };
            deps.push(d);
        }
        deps.sort();
        out[p as usize].push((g.dag[i].clone(), deps));
    }
    out
}

fn heads_per_group(layer: Option<&Layer>, op: &Op) -> u64 {
    match (layer.and_then(|l| l.attention), op.name) {
        (Some(a), "attn_scores" | "attn_pv") if a.kv_groups > 0 && a.heads % a.kv_groups == 0 => {
            a.heads / a.kv_groups
        }
        _ => 1,
    }
}

/// Builds ProgOps from one lowering (prefill) or two (decode at c0 and c0 + 1).
fn prog_ops(a: Vec<(Op, Deps)>, b: Option<Vec<(Op, Deps)>>, layer: Option<&Layer>, c0: u64) -> Vec<ProgOp> {
    match b {
        None => a
            .into_iter()
            .map(|(op, deps)| ProgOp {
                heads_per_group: heads_per_group(layer, &op),
                op,
                slope: Slope::default(),
                deps,
                ref_context: 0,
            })
            .collect(),
        Some(b) => a
            .into_iter()
            .zip(b)
            .map(|((op, deps), (op1, _))| {
                let (r0, r1) = (role(&op.reads), role(&op1.reads));
                let (w0, w1) = (role(&op.writes), role(&op1.writes));
                let (s0, s1) = (shape(&op.kind), shape(&op1.kind));
                let slope = Slope {
                    flops: op1.flops.get() - op.flops.get(),
                    reads: [r1[0] - r0[0], r1[1] - r0[1], r1[2] - r0[2]],
                    writes: [w1[0] - w0[0], w1[1] - w0[1], w1[2] - w0[2]],
                    shape: [s1[0] - s0[0], s1[1] - s0[1], s1[2] - s0[2], s1[3] - s0[3]],
                };
                ProgOp {
                    heads_per_group: heads_per_group(layer, &op),
                    op,
                    slope,
                    deps,
                    ref_context: c0,
                }
            })
            .collect(),
    }
}

/// The distinct layers of `model` in order of first appearance, and the index among them of
/// every layer (a program's templates and blocks).
pub fn distinct_layers(model: &Model) -> (Vec<Layer>, Vec<usize>) {
    let mut distinct: Vec<Layer> = Vec::new();
    let mut blocks = Vec::with_capacity(model.layers.len());
    for l in &model.layers {
        match distinct.iter().position(|d| d == l) {
            Some(i) => blocks.push(i),
            None => {
                blocks.push(distinct.len());
                distinct.push(*l);
            }
        }
    }
    (distinct, blocks)
}

/// For decode, the phase one context later (the second reference of the slopes).
fn decode_next(phase: Phase) -> Option<Phase> {
    match phase {
        Phase::Decode { context, batch } => Some(Phase::Decode {
            context: context + 1,
            batch,
        }),
        Phase::Prefill { .. } => None,
    }
}

impl Program {
    /// Lowers `model` for `phase`. For decode the reference context is the phase's; any other
    /// context is reached through [`ProgOp::at`].
    pub fn new(model: &Model, phase: Phase) -> Program {
        let (distinct, blocks) = distinct_layers(model);
        let mut head = Vec::new();
        let mut tail = Vec::new();
        let mut templates = Vec::with_capacity(distinct.len());
        let layers: Vec<Option<&Layer>> = if distinct.is_empty() {
            vec![None]
        } else {
            distinct.iter().map(Some).collect()
        };
        for (i, layer) in layers.iter().enumerate() {
            let [h, blk, t] = Program::lower_layer(model, *layer, phase);
            if i == 0 {
                head = h;
                tail = t;
            }
            if layer.is_some() {
                templates.push(blk);
            }
        }
        Program {
            model: model.name.clone(),
            phase,
            head,
            templates,
            blocks,
            tail,
        }
    }

    /// The head, block and tail ops of `model` with `layer` as its only layer (`None`: no
    /// layers; then the block is empty), lowered for `phase`: what [`Program::new`] builds
    /// a program from. A function of the model's fields other than its name and layers, of
    /// `layer` and of `phase` alone (a search keeps it per distinct layer).
    pub fn lower_layer(model: &Model, layer: Option<&Layer>, phase: Phase) -> [Vec<ProgOp>; 3] {
        let c0 = phase.context();
        let [h, blk, t] = lower_parts(model, layer, phase);
        let next = decode_next(phase).map(|p| lower_parts(model, layer, p));
        let (hn, bn, tn) = match next {
            Some([a, b, c]) => (Some(a), Some(b), Some(c)),
            None => (None, None, None),
        };
        [
            prog_ops(h, hn, None, c0),
            prog_ops(blk, bn, layer, c0),
            prog_ops(t, tn, None, c0),
        ]
    }

    /// Number of ops of the expanded graph.
    pub fn n_ops(&self) -> usize {
        self.head.len()
            + self.tail.len()
            + self
                .blocks
                .iter()
                .map(|&t| self.templates[t].len())
                .sum::<usize>()
    }

    /// Every op of the whole model at context `c` (ignored in prefill), in graph order, with
    /// its inputs as global indices.
    pub fn expand(&self, c: u64) -> Vec<(Op, Vec<usize>)> {
        let mut out: Vec<(Op, Vec<usize>)> = Vec::with_capacity(self.n_ops());
        let mut input: Option<usize> = None;
        let push_part = |ops: &[ProgOp],
                         layer: Option<u32>,
                         out: &mut Vec<(Op, Vec<usize>)>,
                         input: &mut Option<usize>| {
            let base = out.len();
            for p in ops {
                let mut op = p.at(c);
                if layer.is_some() {
                    op.layer = layer;
                }
                let deps = p
                    .deps
                    .iter()
                    .filter_map(|d| match d {
                        Dep::Input => *input,
                        Dep::Local(i) => Some(base + *i as usize),
                    })
                    .collect();
                out.push((op, deps));
            }
            if !ops.is_empty() {
                *input = Some(out.len() - 1);
            }
        };
        push_part(&self.head, None, &mut out, &mut input);
        for (l, &t) in self.blocks.iter().enumerate() {
            push_part(&self.templates[t], Some(l as u32), &mut out, &mut input);
        }
        push_part(&self.tail, None, &mut out, &mut input);
        out
    }

    /// The phase at context `c` (decode) with this program's batch.
    pub fn phase_at(&self, c: u64) -> Phase {
        match self.phase {
            Phase::Decode { batch, .. } => Phase::Decode { context: c, batch },
            p => p,
        }
    }
}

/// Indices of GEMMs and elementwise ops that form one attention core: `attn_scores`,
/// `softmax`, `attn_pv` in a row. Returns the start index of each such run in `ops`.
pub fn attention_cores(ops: &[ProgOp]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + 2 < ops.len() {
        if ops[i].op.name == "attn_scores"
            && ops[i + 1].op.name == "softmax"
            && ops[i + 2].op.name == "attn_pv"
        {
            v.push(i);
            i += 3;
        } else {
            i += 1;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    fn check(name: &str, phase: Phase, contexts: &[u64]) {
        let m = model::preset(name).unwrap();
        let prog = Program::new(&m, phase);
        for &c in contexts {
            let full = graph::lower(&m, prog.phase_at(c));
            let ops = prog.expand(c);
            assert_eq!(ops.len(), full.dag.node_count(), "{name}");
            for (i, ((op, deps), idx)) in ops.iter().zip(full.dag.node_indices()).enumerate() {
                let g = &full.dag[idx];
                assert_eq!(op.name, g.name, "{name} op {i}");
                assert_eq!(op.layer, g.layer, "{name} op {i}");
                assert_eq!(op.kind, g.kind, "{name} {} at {c}", g.label());
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
                assert!(
                    close(op.flops.get(), g.flops.get()),
                    "{name} {} flops at {c}",
                    g.label()
                );
                assert!(
                    close(op.bytes().get(), g.bytes().get()),
                    "{name} {} bytes",
                    g.label()
                );
                assert!(close(op.reads.kv_cache.get(), g.reads.kv_cache.get()));
                let mut want: Vec<usize> = full
                    .dag
                    .edges_directed(idx, petgraph::Direction::Incoming)
                    .map(|e| e.source().index())
                    .collect();
                want.sort();
                want.dedup();
                let mut got = deps.clone();
                got.sort();
                assert_eq!(got, want, "{name} {} deps", g.label());
            }
        }
    }

    #[test]
    fn expanded_program_equals_full_lowering() {
        for name in model::presets::names() {
            check(name, Phase::Prefill { tokens: 17, batch: 2 }, &[0]);
            check(
                name,
                Phase::Decode {
                    context: 40,
                    batch: 3,
                },
                &[1, 2, 40, 41, 97, 1000],
            );
        }
    }

    #[test]
    fn identical_layers_share_a_template() {
        let m = model::preset("smollm2-360m").unwrap();
        let p = Program::new(
            &m,
            Phase::Decode {
                context: 10,
                batch: 1,
            },
        );
        assert_eq!(p.templates.len(), 1);
        assert_eq!(p.blocks.len(), 32);
        assert_eq!(attention_cores(&p.templates[0]).len(), 1);
        let dependent: Vec<&str> = p.templates[0]
            .iter()
            .filter(|o| o.context_dependent())
            .map(|o| o.op.name)
            .collect();
        assert_eq!(dependent, ["attn_scores", "softmax", "attn_pv"]);
        let eco = model::preset("llmforge-eco-294m").unwrap();
        let p = Program::new(&eco, Phase::Prefill { tokens: 8, batch: 1 });
        assert!(p.templates.len() > 1);
        assert_eq!(p.blocks.len(), eco.layers.len());
    }
}
