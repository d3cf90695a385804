//! The engines: kernels of a [`Program`] placed on a substrate's resources, prefill once and
//! every decode step at its own context.
//!
//! # The schedule
//! Kernels are issued in graph order. Each occupies one unit (matrix, vector or DMA) for its
//! main phase and, on systolic substrates, the DRAM read and write channels for the bytes it
//! streams. A kernel starts when its unit is free and its inputs (graph edges) have ended. A
//! systolic GEMM's first-fold operands (its *fill*) are loaded over the read channel ahead of
//! time — as soon as the channel is free and the previous GEMM has started its main phase,
//! i.e. into the other half of a double buffer, one GEMM ahead — so a compute-bound GEMM hides
//! the next one's fill; its last outputs *drain* over the write channel after it, while the
//! array moves on. Vector ops run beside the array when the graph allows (RoPE beside the
//! K and V projections). GPU kernels run one after another on one stream (eager execution),
//! each paying its launch overhead. The roofline places its kernels back to back.
//!
//! # Decode without re-lowering
//! The program is lowered once; the context-dependent kernels (attention cores) are re-priced
//! at each context and everything else is priced once. Two shortcuts keep a 256-step decode
//! of a 32-layer model in the microseconds, both exact:
//! * *Identical blocks.* The schedule is translation-invariant: when a block starts from the
//!   same state relative to its input (unit, channel and prefetch-gate times) as the previous
//!   block of the same template did, it and every following identical block repeat it
//!   shifted by the same amount, so they are skipped in one step. (States are compared to a
//!   relative tolerance of 1e-12 of the block's duration; a max-plus schedule moves its
//!   outputs by no more than its inputs move, so this bounds the error.)
//! * *Roofline sums in closed form.* A roofline kernel's time is `overhead + max(compute,
//!   memory)` of terms affine in the context, with one step where its activations stop
//!   fitting on chip. The decode range is split at those points (and at every crossover of
//!   the terms); on each piece the cost is affine, so its sum over the piece's contexts is the
//!   piece's length times the cost at its midpoint — exact, not a midpoint approximation.
//!
//! * *Long generations.* The simulator prices the first 16,384 decode steps one by one; the
//!   steps past them go in at most 16,384 runs of equal length (at most 1,024 steps at the
//!   2^24-token limit), each priced at its middle step's context and counted for every step
//!   of the run. A step's cost is affine in the context between the mapping's tile
//!   boundaries, so a run is exact up to the curvature those add: held against the
//!   step-by-step schedule with runs of ~967 steps, TPOT and decode energy agree within
//!   1.3e-5 on gemmini, flat-edge, eyeriss and an A100 (`decode_runs_match_the_step_by_step_
//!   schedule`). A generation of 10M tokens costs about 32k step schedules, not 10M.
//!   Up to 16,384 steps nothing changes.
//!
//! # Roofline and simulator
//! Kernel by kernel the roofline is a lower bound of the simulator: the cycle models do at
//! least the roofline's FLOPs at no more than its peak and move at least its compulsory bytes
//! (tested on every op of several models and substrates). On GPUs kernels never overlap, so
//! the roofline's TTFT and TPOT bound the simulator's too. On systolic substrates the
//! schedule overlaps work the per-op roofline adds up serially (a GEMM's fill prefetched
//! under the previous GEMM, vector ops beside the array), so the simulator's makespan can
//! come in under the roofline's *sum*: by up to a few parts in 10^4 of TPOT over the shipped
//! models and substrates (tested with that slack), never in prefill.
//!
//! [`reference`] is the slow path the tests hold these against: it lowers the whole graph
//! afresh at every context and schedules every kernel of every step.

pub mod cached;

use super::cost::{self, Cost, Mapper, Traffic, kind_name, static_power};
use super::program::{Dep, ProgOp, Program, attention_cores};
use super::result::{
    Bound, Energy, OpEvent, OpRecord, OpShare, PhaseKind, PhaseSummary, Resource, RunResult, RunSummary, Sink,
};
use super::{Engine, Workload};
use crate::graph::{self, Op, Phase, RoleBytes};
use crate::model::{Model, accounting};
use crate::substrate::{PrecisionError, PrecisionReport, ResolvedPrecision, Substrate};
use crate::units::{Bytes, Flops, Seconds};

/// An input of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KDep {
    Input,
    Local(usize),
}

/// A kernel's inputs (at most four; see [`super::program::Deps`]).
#[derive(Clone, Copy, Debug)]
struct KDeps {
    items: [KDep; 4],
    len: usize,
}

impl KDeps {
    fn push(&mut self, d: KDep) {
        if !self.items[..self.len].contains(&d) && self.len < 4 {
            self.items[self.len] = d;
            self.len += 1;
        }
    }
    fn iter(&self) -> std::slice::Iter<'_, KDep> {
        self.items[..self.len].iter()
    }
}

/// One kernel of a part: `len` consecutive ops from `first`.
#[derive(Clone, Debug)]
struct Kern {
    first: usize,
    len: usize,
    deps: KDeps,
    dependent: bool,
    hpg: u64,
}

fn kernels(ops: &[ProgOp], fuse: bool) -> Vec<Kern> {
    let cores = if fuse { attention_cores(ops) } else { Vec::new() };
    let mut op_kernel = vec![0usize; ops.len()];
    let mut ks: Vec<Kern> = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        let len = if cores.contains(&i) { 3 } else { 1 };
        let k = ks.len();
        for slot in op_kernel.iter_mut().skip(i).take(len) {
            *slot = k;
        }
        let mut deps = KDeps {
            items: [KDep::Input; 4],
            len: 0,
        };
        for o in &ops[i..i + len] {
            for d in o.deps.iter() {
                let kd = match *d {
                    Dep::Input => KDep::Input,
                    Dep::Local(x) if op_kernel[x as usize] == k => continue,
                    Dep::Local(x) => KDep::Local(op_kernel[x as usize]),
                };
                deps.push(kd);
            }
        }
        ks.push(Kern {
            first: i,
            len,
            deps,
            dependent: ops[i..i + len].iter().any(ProgOp::context_dependent),
            hpg: ops[i].heads_per_group,
        });
        i += len;
    }
    ks
}

/// A program's parts (head, templates, tail) with their kernels and current costs.
struct Mapped<'p> {
    parts: Vec<Part<'p>>,
    /// Part index of every position in execution order (head, one per layer, tail).
    order: Vec<usize>,
    /// How many times each part runs per pass.
    count: Vec<u64>,
    /// (part, kernel) of every context-dependent kernel.
    dependent: Vec<(usize, usize)>,
}

fn dependent_list(parts: &[Part<'_>]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for (pi, p) in parts.iter().enumerate() {
        for (k, kern) in p.kernels.iter().enumerate() {
            if kern.dependent {
                v.push((pi, k));
            }
        }
    }
    v
}

struct Part<'p> {
    ops: &'p [ProgOp],
    kernels: Vec<Kern>,
    costs: Vec<Cost>,
    /// The scheduler's view of `costs` (kept in step by `set_cost`).
    slots: Vec<Slot>,
}

/// What the scheduler needs of a kernel, compact: its unit, its inputs (local kernel
/// indices; `INPUT` for the part's input) and its phase durations in seconds.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    unit: usize,
    deps: [u32; 4],
    n_deps: u8,
    fill: f64,
    main: f64,
    overhead: f64,
    stream_read: f64,
    stream_write: f64,
    drain: f64,
}

const INPUT: u32 = u32::MAX;

impl Slot {
    fn new(kern: &Kern) -> Slot {
        let mut s = Slot::default();
        for d in kern.deps.iter() {
            s.deps[s.n_deps as usize] = match *d {
                KDep::Input => INPUT,
                KDep::Local(j) => j as u32,
            };
            s.n_deps += 1;
        }
        s
    }
    fn set(&mut self, c: &Cost) {
        self.unit = unit_index(c.resource);
        self.fill = c.fill.get();
        self.main = c.main.get();
        self.overhead = c.overhead.get();
        self.stream_read = c.stream_read.get();
        self.stream_write = c.stream_write.get();
        self.drain = c.drain.get();
    }
}

impl Part<'_> {
    fn set_cost(&mut self, k: usize, c: Cost) {
        self.slots[k].set(&c);
        self.costs[k] = c;
    }
}

impl<'p> Part<'p> {
    /// The part of `ops`, its kernels unpriced.
    fn new(ops: &'p [ProgOp], fuse: bool) -> Part<'p> {
        let kernels = kernels(ops, fuse);
        let costs = vec![Cost::default(); kernels.len()];
        let slots = kernels.iter().map(Slot::new).collect();
        Part {
            ops,
            kernels,
            costs,
            slots,
        }
    }
}

impl<'p> Mapped<'p> {
    fn new(prog: &'p Program, mapper: &Mapper<'_>) -> Mapped<'p> {
        let fuse = mapper.fuses_attention();
        let mut parts = Vec::with_capacity(prog.templates.len() + 2);
        parts.push(Part::new(&prog.head, fuse));
        for t in &prog.templates {
            parts.push(Part::new(t, fuse));
        }
        parts.push(Part::new(&prog.tail, fuse));
        Mapped::from_parts(parts, &prog.blocks)
    }

    /// The head, one part per template and the tail, run in that order with the templates
    /// as `blocks` lists them (a program's template of every layer).
    fn from_parts(parts: Vec<Part<'p>>, blocks: &[usize]) -> Mapped<'p> {
        let tail = parts.len() - 1;
        let mut order = Vec::with_capacity(blocks.len() + 2);
        order.push(0);
        order.extend(blocks.iter().map(|t| t + 1));
        order.push(tail);
        let mut count = vec![0u64; parts.len()];
        for &p in &order {
            count[p] += 1;
        }
        let dependent = dependent_list(&parts);
        Mapped {
            parts,
            order,
            count,
            dependent,
        }
    }

    /// Prices every kernel (`all`) or only the context-dependent ones at context `c`.
    fn price(&mut self, mapper: &Mapper<'_>, model: cost::Model, c: u64, all: bool) {
        if all {
            for part in &mut self.parts {
                for k in 0..part.kernels.len() {
                    let cost = kernel_cost(mapper, model, part.ops, &part.kernels[k], c);
                    part.set_cost(k, cost);
                }
            }
        } else {
            for &(pi, k) in &self.dependent {
                let part = &mut self.parts[pi];
                let cost = kernel_cost(mapper, model, part.ops, &part.kernels[k], c);
                part.set_cost(k, cost);
            }
        }
    }
}

fn kernel_cost(mapper: &Mapper<'_>, model: cost::Model, ops: &[ProgOp], k: &Kern, c: u64) -> Cost {
    if k.len == 3 {
        let (a, b, d) = (ops[k.first].at(c), ops[k.first + 1].at(c), ops[k.first + 2].at(c));
        mapper.cost(model, &[&a, &b, &d], k.hpg)
    } else {
        let a = ops[k.first].at(c);
        mapper.cost(model, &[&a], k.hpg)
    }
}

/// Calls `f` with the ops of kernel `k` at (possibly fractional) context `c`, built on the
/// stack.
fn with_ops<R>(ops: &[ProgOp], k: &Kern, c: f64, f: impl FnOnce(&[&Op]) -> R) -> R {
    if k.len == 3 {
        let (a, b, d) = (
            ops[k.first].at_f(c),
            ops[k.first + 1].at_f(c),
            ops[k.first + 2].at_f(c),
        );
        f(&[&a, &b, &d])
    } else {
        let a = ops[k.first].at_f(c);
        f(&[&a])
    }
}

// ---------------------------------------------------------------------------------------
// Scheduling

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct State {
    unit: [f64; 3],
    rd: f64,
    wr: f64,
    gate: f64,
    last: f64,
    input: f64,
}

impl State {
    fn at(t: f64) -> State {
        State {
            unit: [t; 3],
            rd: t,
            wr: t,
            gate: t,
            last: t,
            input: t,
        }
    }
    /// The state relative to the block input, in a canonical form: a unit (or the write
    /// channel, or the serial stream) free before the input is as good as free at the input,
    /// since every kernel of a block transitively waits for the input; the read channel and
    /// the prefetch gate can matter before it (fills start early) and are kept as they are,
    /// or dropped when the policy has no channels.
    fn relative(&self, channels: bool) -> [f64; 7] {
        let i = self.input;
        let c = |x: f64| (x - i).max(0.0);
        let (rd, wr, gate) = if channels {
            (self.rd - i, c(self.wr), self.gate - i)
        } else {
            (0.0, 0.0, 0.0)
        };
        [
            c(self.unit[0]),
            c(self.unit[1]),
            c(self.unit[2]),
            rd,
            wr,
            gate,
            c(self.last),
        ]
    }
    /// The state `relative` describes, with the block input at 0.
    fn from_relative(rel: &[f64; 7]) -> State {
        State {
            unit: [rel[0], rel[1], rel[2]],
            rd: rel[3],
            wr: rel[4],
            gate: rel[5],
            last: rel[6],
            input: 0.0,
        }
    }
    fn shift(&mut self, d: f64) {
        for u in &mut self.unit {
            *u += d;
        }
        self.rd += d;
        self.wr += d;
        self.gate += d;
        self.last += d;
        self.input += d;
    }
    fn makespan_end(&self) -> f64 {
        self.unit
            .iter()
            .copied()
            .fold(self.last.max(self.rd).max(self.wr), f64::max)
    }
}

/// How kernels share the machine.
#[derive(Clone, Copy, Debug)]
struct Policy {
    /// One kernel at a time (GPU stream, roofline).
    serial: bool,
    /// DRAM channels are resources (systolic cycle model).
    channels: bool,
}

/// Where one kernel went.
#[derive(Clone, Copy, Debug, Default)]
struct Placed {
    fill: (f64, f64),
    main: (f64, f64),
    read: (f64, f64),
    write: (f64, f64),
    drain: (f64, f64),
    end: f64,
}

fn unit_index(r: Option<Resource>) -> usize {
    match r {
        Some(Resource::Matrix) | None => 0,
        Some(Resource::Vector) => 1,
        _ => 2,
    }
}

#[inline]
fn place(st: &mut State, c: &Slot, ready: f64, policy: Policy) -> Placed {
    let mut p = Placed::default();
    let mut ready = ready;
    if policy.serial {
        ready = ready.max(st.last);
    }
    let u = c.unit;
    let mut start = st.unit[u].max(ready);
    if policy.channels && c.fill > 0.0 {
        let fs = st.rd.max(st.gate);
        let fe = fs + c.fill;
        st.rd = fe;
        p.fill = (fs, fe);
        start = start.max(fe);
    }
    let mut main_end = start + c.main;
    if policy.channels {
        let ov = c.overhead;
        if c.stream_read > 0.0 {
            let rs = st.rd.max(start + ov);
            let re = rs + c.stream_read;
            st.rd = re;
            p.read = (rs, re);
            main_end = main_end.max(re);
        }
        if c.stream_write > 0.0 {
            let ws = st.wr.max(start + ov);
            let we = ws + c.stream_write;
            st.wr = we;
            p.write = (ws, we);
            main_end = main_end.max(we);
        }
    }
    st.unit[u] = main_end;
    if u == 0 {
        st.gate = start;
    }
    p.main = (start, main_end);
    let mut end = main_end;
    if policy.channels && c.drain > 0.0 {
        let ds = st.wr.max(main_end);
        let de = ds + c.drain;
        st.wr = de;
        p.drain = (ds, de);
        end = de;
    }
    p.end = end;
    st.last = st.last.max(end);
    p
}

/// What to do with each placed kernel.
trait Observe {
    /// Whether identical blocks may be skipped (no per-kernel output needed).
    fn may_skip(&self) -> bool;
    fn placed(&mut self, _pos: usize, _part: &Part<'_>, _k: usize, _p: &Placed) {}
}

struct Quiet;
impl Observe for Quiet {
    fn may_skip(&self) -> bool {
        true
    }
}

/// Records each kernel's main start and end, in execution order.
struct Capture {
    spans: Vec<(f64, f64)>,
}
impl Observe for Capture {
    fn may_skip(&self) -> bool {
        false
    }
    fn placed(&mut self, _pos: usize, _part: &Part<'_>, _k: usize, p: &Placed) {
        self.spans.push((p.main.0, p.end));
    }
}

/// Forwards every interval to a [`Sink`].
struct Forward<'s> {
    sink: &'s mut dyn Sink,
    phase: PhaseKind,
    step: u64,
    context: u64,
    n_layers: usize,
}
impl Observe for Forward<'_> {
    fn may_skip(&self) -> bool {
        false
    }
    fn placed(&mut self, pos: usize, part: &Part<'_>, k: usize, p: &Placed) {
        let kern = &part.kernels[k];
        let op = &part.ops[kern.first].op;
        let layer = if pos >= 1 && pos <= self.n_layers {
            Some((pos - 1) as u32)
        } else {
            None
        };
        let name = if kern.len == 3 { "attention" } else { op.name };
        let res = unit_resource(part, k);
        let mut emit = |resource, what, (s, e): (f64, f64)| {
            if e > s {
                self.sink.event(&OpEvent {
                    phase: self.phase,
                    step: self.step,
                    context: self.context,
                    name,
                    layer,
                    resource,
                    what,
                    start: Seconds::new(s),
                    end: Seconds::new(e),
                });
            }
        };
        emit(Resource::DramRead, "prefetch", p.fill);
        emit(res, "compute", p.main);
        emit(Resource::DramRead, "stream", p.read);
        emit(Resource::DramWrite, "stream", p.write);
        emit(Resource::DramWrite, "drain", p.drain);
    }
}

fn unit_resource(part: &Part<'_>, k: usize) -> Resource {
    part.costs[k].resource.unwrap_or(Resource::Matrix)
}

/// Places a part's kernels (`slots`, in order) from `st`, each after its inputs (the part's
/// input is `st.input`), reporting each to `placed`; moves `st.input` to the last kernel's end.
/// `ends` is scratch space.
#[inline]
fn place_part(
    st: &mut State,
    slots: &[Slot],
    policy: Policy,
    ends: &mut Vec<f64>,
    placed: impl FnMut(usize, &Placed),
) {
    let input = st.input;
    ends.clear();
    if let Some(end) = place_range(st, slots, 0..slots.len(), input, policy, ends, placed) {
        st.input = end;
    }
}

/// Places kernels `range` of a part (`slots`) whose input is at `input`, `ends` holding the
/// ends of the kernels before the range (and getting those of the range); returns the last
/// one's end. [`place_part`] in pieces: the layer cache places a layer's kernels before its
/// context-dependent ones once for every decode context that enters it in the same state.
#[inline]
fn place_range(
    st: &mut State,
    slots: &[Slot],
    range: std::ops::Range<usize>,
    input: f64,
    policy: Policy,
    ends: &mut Vec<f64>,
    mut placed: impl FnMut(usize, &Placed),
) -> Option<f64> {
    let mut last_end = None;
    for k in range {
        let slot = &slots[k];
        let mut ready = if slot.n_deps == 0 { input } else { f64::MIN };
        for &d in &slot.deps[..slot.n_deps as usize] {
            let t = if d == INPUT { input } else { ends[d as usize] };
            ready = ready.max(t);
        }
        let p = place(st, slot, ready, policy);
        placed(k, &p);
        ends.push(p.end);
        last_end = Some(p.end);
    }
    last_end
}

/// Schedules one pass starting at `t0`; returns its makespan end.
fn schedule<O: Observe>(m: &Mapped<'_>, t0: f64, policy: Policy, obs: &mut O) -> f64 {
    if obs.may_skip() && policy.serial && !policy.channels {
        // One kernel at a time and no channels: each starts when the previous one ends, so
        // the pass lasts the sum of the kernels' main phases.
        let mut t = t0;
        for (part, &n) in m.parts.iter().zip(&m.count) {
            t += n as f64 * part.slots.iter().map(|s| s.main).sum::<f64>();
        }
        return t;
    }
    let mut st = State::at(t0);
    let mut ends: Vec<f64> = Vec::with_capacity(64);
    let skip = obs.may_skip();
    let mut prev: Option<(usize, [f64; 7], f64)> = None;
    let mut pos = 0;
    while pos < m.order.len() {
        let pi = m.order[pos];
        let part = &m.parts[pi];
        if skip
            && let Some((pt, rel, delta)) = prev
            && pt == pi
            && delta > 0.0
        {
            {
                let now = st.relative(policy.channels);
                let tol = 1e-12 * delta;
                if now.iter().zip(rel.iter()).all(|(a, b)| (a - b).abs() <= tol) {
                    let mut run = 0;
                    while pos + run < m.order.len() && m.order[pos + run] == pi {
                        run += 1;
                    }
                    // This block and the rest of the run repeat the previous one.
                    st.shift(delta * run as f64);
                    pos += run;
                    continue;
                }
            }
        }
        let before = st.relative(policy.channels);
        let input = st.input;
        place_part(&mut st, &part.slots, policy, &mut ends, |k, p| {
            obs.placed(pos, part, k, p)
        });
        prev = Some((pi, before, st.input - input));
        pos += 1;
    }
    st.makespan_end()
}

// ---------------------------------------------------------------------------------------
// Accumulating results

/// Field sums of one kernel over executions.
#[derive(Clone, Copy, Debug, Default)]
struct Agg {
    cost: Cost,
    time: f64,
    bound_time: [f64; 3],
    flops: f64,
    reads: [f64; 3],
    writes: [f64; 3],
}

impl Agg {
    fn add_cost(&mut self, c: &Cost, n: f64) {
        self.cost.add(&c.scaled(n));
        let t = c.time().get() * n;
        self.time += t;
        self.bound_time[c.bound() as usize] += t;
    }
    fn add_ops<'o>(&mut self, ops: impl IntoIterator<Item = &'o Op>, n: f64) {
        for op in ops {
            self.flops += op.flops.get() * n;
            let (r, w) = (&op.reads, &op.writes);
            self.reads[0] += r.weights.get() * n;
            self.reads[1] += r.activations.get() * n;
            self.reads[2] += r.kv_cache.get() * n;
            self.writes[0] += w.weights.get() * n;
            self.writes[1] += w.activations.get() * n;
            self.writes[2] += w.kv_cache.get() * n;
        }
    }
}

fn role(a: [f64; 3]) -> RoleBytes {
    RoleBytes {
        weights: Bytes::new(a[0]),
        activations: Bytes::new(a[1]),
        kv_cache: Bytes::new(a[2]),
    }
}

/// One phase's totals: per part, per kernel aggregates; plus the pass times.
struct PhaseOut {
    aggs: Vec<Vec<Agg>>,
    /// Sum over passes of makespans (without the token overhead).
    time: f64,
    steps: u64,
}

impl PhaseOut {
    fn new(m: &Mapped<'_>) -> PhaseOut {
        PhaseOut {
            aggs: m
                .parts
                .iter()
                .map(|p| vec![Agg::default(); p.kernels.len()])
                .collect(),
            time: 0.0,
            steps: 0,
        }
    }
}

fn policy(mapper: &Mapper<'_>, model: cost::Model) -> Policy {
    match model {
        cost::Model::Roofline => Policy {
            serial: true,
            channels: false,
        },
        cost::Model::Sim => Policy {
            serial: mapper.serial(),
            channels: !mapper.serial(),
        },
    }
}

/// Adds the kernels whose cost did not change (`dependent == false`) `n` times, with their ops.
fn add_fixed(out: &mut PhaseOut, m: &Mapped<'_>, n: f64) {
    for (pi, part) in m.parts.iter().enumerate() {
        let cnt = m.count[pi] as f64;
        for (k, kern) in part.kernels.iter().enumerate() {
            if !kern.dependent {
                out.aggs[pi][k].add_cost(&part.costs[k], n * cnt);
                out.aggs[pi][k].add_ops(
                    part.ops[kern.first..kern.first + kern.len].iter().map(|o| &o.op),
                    n * cnt,
                );
            }
        }
    }
}

/// Adds the context-dependent kernels at their current costs once.
fn add_dependent(out: &mut PhaseOut, m: &Mapped<'_>) {
    add_dependent_n(out, m, 1.0);
}

/// The dependent kernels' costs at the priced context, for `n` steps.
fn add_dependent_n(out: &mut PhaseOut, m: &Mapped<'_>, n: f64) {
    for &(pi, k) in &m.dependent {
        out.aggs[pi][k].add_cost(&m.parts[pi].costs[k], m.count[pi] as f64 * n);
    }
}

/// Decode steps priced one by one, each at its own context.
pub(crate) const EXACT_STEPS: u64 = 1 << 14;
/// The steps past [`EXACT_STEPS`] are priced in at most this many blocks.
pub(crate) const MAX_BLOCKS: u64 = 1 << 14;

/// The decode steps `1..=D` as runs `(first, last)` priced at one context: each of the first
/// `exact` steps alone, the rest in at most `blocks` runs of equal length (the last may be
/// shorter), each priced at its middle step. Up to `exact` steps this is the step-by-step
/// schedule; past it a run of k steps costs k times its middle step, which is exact where the
/// step's cost is affine in the context over the run and otherwise off by the cost's curvature
/// (see the module docs for the measured error).
fn decode_runs(steps: u64, exact: u64, blocks: u64) -> impl Iterator<Item = (u64, u64)> {
    let first_exact = steps.min(exact);
    let rest = steps - first_exact;
    let k = rest.div_ceil(blocks.max(1)).max(1);
    (1..=first_exact)
        .map(|s| (s, s))
        .chain((0..rest.div_ceil(k)).map(move |b| {
            let a = first_exact + 1 + b * k;
            (a, (a + k - 1).min(steps))
        }))
}

/// Runs the decode schedule step by step (in runs past [`EXACT_STEPS`], see
/// [`decode_runs`]) from `t0` (`(t0, per-token overhead)`), calling `each(dec, step time,
/// steps in the run)`; returns where each step of `record` starts on the timeline (steps of
/// a run start one run-step time apart).
fn decode_pass(
    dec: &mut Mapped<'_>,
    mapper: &Mapper<'_>,
    (cm, pol): (cost::Model, Policy),
    w: Workload,
    (mut t0, tok): (f64, f64),
    (runs, record): ((u64, u64), Option<&super::StepSample>),
    mut each: impl FnMut(&Mapped<'_>, f64, f64),
) -> Vec<(u64, f64)> {
    let mut starts = Vec::new();
    let mut wanted = record.into_iter().flat_map(|r| r.iter()).peekable();
    for (first, last) in decode_runs(w.generate, runs.0, runs.1) {
        let mid = first + (last - first) / 2;
        dec.price(mapper, cm, w.prompt + mid, false);
        let end = schedule(dec, t0, pol, &mut Quiet);
        let d = end - t0;
        let n = last - first + 1;
        each(dec, d, n as f64);
        while let Some(&step) = wanted.peek().filter(|s| **s <= last) {
            starts.push((step, t0 + (step - first) as f64 * (d + tok)));
            wanted.next();
        }
        t0 = if n == 1 {
            end + tok
        } else {
            t0 + n as f64 * (d + tok)
        };
    }
    starts
}

/// Exact sum over integer contexts `lo..=hi` of a roofline kernel's cost (see module docs).
fn roofline_sum(mapper: &Mapper<'_>, ops: &[ProgOp], k: &Kern, lo: u64, hi: u64, agg: &mut Agg, n: f64) {
    let parts_at = |c: f64| with_ops(ops, k, c, |r| mapper.roofline_parts(r));
    let act_at = |c: f64| with_ops(ops, k, c, |r| Traffic::of(r).activations() - mapper.onchip);
    // Split where the activations stop (or start) fitting on chip: classify integers exactly.
    let mut pieces: Vec<(u64, u64)> = Vec::with_capacity(8);
    let (a_lo, a_hi) = (act_at(lo as f64), act_at(hi as f64));
    if (a_lo <= 0.0) != (a_hi <= 0.0) && hi > lo {
        let r = lo as f64 + a_lo / (a_lo - a_hi) * (hi - lo) as f64;
        let mut s = (r.floor() as u64).clamp(lo, hi);
        // last integer on the low side
        while s > lo && (act_at(s as f64) <= 0.0) != (a_lo <= 0.0) {
            s -= 1;
        }
        while s < hi && (act_at((s + 1) as f64) <= 0.0) == (a_lo <= 0.0) {
            s += 1;
        }
        pieces.push((lo, s));
        if s < hi {
            pieces.push((s + 1, hi));
        }
    } else {
        pieces.push((lo, hi));
    }
    // Split each piece at every crossover of the affine terms.
    let mut segments: Vec<(u64, u64)> = Vec::with_capacity(16);
    for (a, b) in pieces {
        let mut cuts: Vec<u64> = Vec::new();
        if b > a {
            let (pa, pb) = (parts_at(a as f64), parts_at(b as f64));
            for i in 0..4 {
                for j in i + 1..4 {
                    let (da, db) = (pa[i] - pa[j], pb[i] - pb[j]);
                    if (da > 0.0 && db < 0.0) || (da < 0.0 && db > 0.0) {
                        let r = a as f64 + da / (da - db) * (b - a) as f64;
                        let s = (r.floor() as u64).clamp(a, b - 1);
                        cuts.push(s);
                    }
                }
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut start = a;
        for s in cuts {
            segments.push((start, s));
            start = s + 1;
        }
        segments.push((start, b));
    }
    for (a, b) in segments {
        let len = (b - a + 1) as f64;
        let mid = (a as f64 + b as f64) / 2.0;
        with_ops(ops, k, mid, |r| {
            let c = mapper.roofline(r);
            agg.add_cost(&c, len * n);
            agg.add_ops(r.iter().copied(), len * n);
        });
    }
}

// ---------------------------------------------------------------------------------------
// Runs

/// What to produce.
pub(crate) struct Want<'s> {
    pub records: bool,
    /// Each kernel's time and energy (the records' numbers, without their names and
    /// schedule), appended here.
    pub shares: Option<&'s mut Vec<OpShare>>,
    pub sink: Option<&'s mut dyn Sink>,
    /// Decode steps priced alone, and the most runs for the rest ([`decode_runs`]).
    pub runs: (u64, u64),
}

/// The model's formats resolved on `sub` (a rejected pair priced with its rejected formats
/// quantised to the narrowest native type, the error kept in the report), and the model in
/// its stored formats when a quantisation replaced one.
pub(crate) fn resolve<'m>(
    model: &'m Model,
    sub: &Substrate,
) -> (
    std::borrow::Cow<'m, Model>,
    ResolvedPrecision,
    Option<PrecisionError>,
) {
    let (r, rejected) = sub.resolve_forced(&model.precision);
    let stored = r.stored();
    let model = if stored == model.precision {
        std::borrow::Cow::Borrowed(model)
    } else {
        let mut m = model.clone();
        m.precision = stored;
        std::borrow::Cow::Owned(m)
    };
    (model, r, rejected)
}

/// What both paths start from: the model in its stored formats, the precision report, the
/// mapper and the cost model of `engine`.
fn prepare<'m, 's>(
    model: &'m Model,
    sub: &'s Substrate,
    engine: Engine,
) -> (
    std::borrow::Cow<'m, Model>,
    PrecisionReport,
    Mapper<'s>,
    cost::Model,
) {
    let (model, resolved, rejected) = resolve(model, sub);
    let report = PrecisionReport {
        resolved,
        rejected: rejected.clone(),
    };
    let cm = match engine {
        Engine::Roofline => cost::Model::Roofline,
        Engine::Sim => cost::Model::Sim,
    };
    (model, report, Mapper::resolved(sub, resolved, rejected), cm)
}

/// `model` lowered for `phase`, every matrix op bound to its native arithmetic.
fn program(model: &Model, phase: Phase, r: &ResolvedPrecision) -> Program {
    let mut p = Program::new(model, phase);
    bind_program(&mut p, r);
    p
}

/// The workload's prefill pass.
fn prefill_phase(w: Workload) -> Phase {
    Phase::Prefill {
        tokens: w.prompt,
        batch: w.batch,
    }
}

/// The workload's decode, lowered at its first context.
fn decode_phase(w: Workload) -> Phase {
    Phase::Decode {
        context: w.prompt + 1,
        batch: w.batch,
    }
}

/// Sets every matrix op of a program to its native arithmetic on the substrate.
fn bind_program(p: &mut Program, r: &ResolvedPrecision) {
    for op in p
        .head
        .iter_mut()
        .chain(p.templates.iter_mut().flatten())
        .chain(p.tail.iter_mut())
    {
        cost::bind(&mut op.op, r);
    }
}

/// The engine's decode pricing: [`EXACT_STEPS`] alone, the rest in [`MAX_BLOCKS`] runs.
pub(crate) const RUNS: (u64, u64) = (EXACT_STEPS, MAX_BLOCKS);

pub(crate) fn run(model: &Model, sub: &Substrate, w: Workload, engine: Engine, want: Want<'_>) -> RunResult {
    // A ring has its own cost model (sim::ring, driven by sim::ring_adapter).
    if let crate::substrate::Kind::Ring(_) = sub.kind {
        let records = want.records || want.shares.is_some();
        let mut r = super::ring_adapter::engine_run(model, sub, w, records, want.sink);
        if let Some(v) = want.shares {
            v.extend(r.ops.iter().map(OpRecord::share));
        }
        if !want.records {
            r.ops.clear();
        }
        return r;
    }
    let (model, report, mapper, cm) = prepare(model, sub, engine);
    let model = model.as_ref();
    let pol = policy(&mapper, cm);
    let tok = sub.efficiency.token_overhead.get();
    let n_layers = model.layers.len();

    // Prefill: one pass.
    let pre_prog = program(model, prefill_phase(w), &mapper.precision);
    let mut pre = Mapped::new(&pre_prog, &mapper);
    pre.price(&mapper, cm, 0, true);
    let mut pre_out = PhaseOut::new(&pre);
    let mut pre_spans = Capture { spans: Vec::new() };
    // The summary always comes from the same (skipping) schedule, so that it does not
    // depend on whether records or events are asked for.
    let pre_end = schedule(&pre, 0.0, pol, &mut Quiet);
    if want.records {
        schedule(&pre, 0.0, pol, &mut pre_spans);
    }
    pre_out.time = pre_end;
    pre_out.steps = 1;
    add_fixed(&mut pre_out, &pre, 1.0);
    add_dependent(&mut pre_out, &pre);

    // Decode: steps at contexts P+1 ..= P+D. `starts`: where each step a sink records
    // begins on the run's timeline.
    let (lo, hi) = (w.prompt + 1, w.prompt + w.generate);
    let sample = want
        .sink
        .as_ref()
        .map(|s| super::StepSample::new(w.generate, s.decode_steps()));
    let mut starts: Option<Vec<(u64, f64)>> = None;
    let dec_prog = program(model, decode_phase(w), &mapper.precision);
    let mut dec = Mapped::new(&dec_prog, &mapper);
    dec.price(&mapper, cm, lo, true);
    let mut dec_out = PhaseOut::new(&dec);
    dec_out.steps = w.generate;
    if w.generate > 0 {
        add_fixed(&mut dec_out, &dec, w.generate as f64);
        let closed_form = cm == cost::Model::Roofline;
        if closed_form {
            // Fixed kernels: the same every step.
            let fixed: f64 = dec
                .parts
                .iter()
                .enumerate()
                .flat_map(|(pi, p)| {
                    let cnt = dec.count[pi] as f64;
                    p.kernels
                        .iter()
                        .zip(&p.costs)
                        .filter(|(k, _)| !k.dependent)
                        .map(move |(_, c)| c.time().get() * cnt)
                })
                .sum();
            let mut time = fixed * w.generate as f64;
            for (pi, part) in dec.parts.iter().enumerate() {
                let cnt = dec.count[pi] as f64;
                for (k, kern) in part.kernels.iter().enumerate() {
                    if kern.dependent && cnt > 0.0 {
                        let a = &mut dec_out.aggs[pi][k];
                        let before = a.time;
                        roofline_sum(&mapper, part.ops, kern, lo, hi, a, cnt);
                        time += a.time - before;
                    }
                }
            }
            dec_out.time = time;
        } else {
            let timeline = decode_pass(
                &mut dec,
                &mapper,
                (cm, pol),
                w,
                (pre_end + tok, tok),
                (want.runs, sample.as_ref()),
                |dec, d, n| {
                    dec_out.time += d * n;
                    add_dependent_n(&mut dec_out, dec, n);
                },
            );
            starts = Some(timeline);
            // FLOPs and bytes are affine in the context: their sum over the steps is the
            // number of steps times their value at the mean context.
            let mean = (lo + hi) as f64 / 2.0;
            for &(pi, k) in &dec.dependent {
                let part = &dec.parts[pi];
                let n = (dec.count[pi] * w.generate) as f64;
                with_ops(part.ops, &part.kernels[k], mean, |refs| {
                    dec_out.aggs[pi][k].add_ops(refs.iter().copied(), n)
                });
            }
        }
    }
    // The last step's schedule for the decode records.
    let mut dec_spans = Capture { spans: Vec::new() };
    if want.records && w.generate > 0 {
        dec.price(&mapper, cm, hi, false);
        schedule(&dec, 0.0, pol, &mut dec_spans);
    }

    // Events: every kernel of every pass, on one timeline.
    if let Some(s) = want.sink {
        let mut f = Forward {
            sink: s,
            phase: PhaseKind::Prefill,
            step: 0,
            context: w.prompt,
            n_layers,
        };
        let e = schedule(&pre, 0.0, pol, &mut f);
        f.sink
            .step_end(PhaseKind::Prefill, 0, Seconds::ZERO, Seconds::new(e + tok));
        f.phase = PhaseKind::Decode;
        let starts = match starts {
            Some(s) => s,
            // The roofline's summary needs no timeline: lay one out (the simulator's run did).
            None if w.generate > 0 => decode_pass(
                &mut dec,
                &mapper,
                (cm, pol),
                w,
                (e + tok, tok),
                (want.runs, sample.as_ref()),
                |_, _, _| {},
            ),
            None => Vec::new(),
        };
        for &(step, t0) in &starts {
            let c = w.prompt + step;
            dec.price(&mapper, cm, c, false);
            f.step = step;
            f.context = c;
            let e = schedule(&dec, t0, pol, &mut f);
            f.sink
                .step_end(PhaseKind::Decode, step, Seconds::new(t0), Seconds::new(e + tok));
        }
    }
    let power = static_power(sub).get();
    let pre_summary = phase_summary(&pre_out, power, tok);
    let dec_summary = phase_summary(&dec_out, power, tok);
    let ops = if want.records {
        let mut v = records(&pre, &pre_out, &pre_spans.spans, PhaseKind::Prefill, power);
        if w.generate > 0 {
            v.extend(records(
                &dec,
                &dec_out,
                &dec_spans.spans,
                PhaseKind::Decode,
                power,
            ));
        }
        v
    } else {
        Vec::new()
    };
    if let Some(v) = want.shares {
        if want.records {
            v.extend(ops.iter().map(OpRecord::share));
        } else {
            shares(&pre, &pre_out, PhaseKind::Prefill, power, v);
            if w.generate > 0 {
                shares(&dec, &dec_out, PhaseKind::Decode, power, v);
            }
        }
    }
    RunResult {
        summary: summarize(model, sub, w, engine, report, pre_summary, dec_summary),
        ops,
    }
}

fn phase_summary(out: &PhaseOut, power: f64, tok: f64) -> PhaseSummary {
    let mut s = PhaseSummary {
        steps: out.steps,
        time: Seconds::new(out.time + tok * out.steps as f64),
        ..Default::default()
    };
    let mut bt = [0.0; 3];
    for a in out.aggs.iter().flatten() {
        s.energy += a.cost.energy;
        s.flops += Flops::new(a.flops);
        s.dram_bytes += a.cost.dram_bytes;
        for (t, x) in bt.iter_mut().zip(a.bound_time) {
            *t += x;
        }
    }
    s.energy.static_ = crate::units::Watts::new(power) * s.time;
    s.compute_bound_time = Seconds::new(bt[Bound::Compute as usize]);
    s.memory_bound_time = Seconds::new(bt[Bound::Memory as usize]);
    s.overhead_bound_time = Seconds::new(bt[Bound::Overhead as usize]);
    s
}

/// Walks a phase's kernels in execution order, giving each its layer, name, aggregate and
/// the per-execution time and energy of its record (static power over that time): the
/// numbers both [`records`] and [`shares`] report.
fn each_kernel<'m>(
    m: &Mapped<'m>,
    out: &PhaseOut,
    power: f64,
    mut f: impl FnMut(Option<u32>, &'static str, &Part<'m>, &Kern, &Agg, f64, f64, Energy),
) {
    let n_layers = m.order.len() - 2;
    for (pos, &pi) in m.order.iter().enumerate() {
        let part = &m.parts[pi];
        let cnt = m.count[pi] as f64;
        for (k, kern) in part.kernels.iter().enumerate() {
            let a = &out.aggs[pi][k];
            let per = 1.0 / cnt;
            let op = &part.ops[kern.first].op;
            let layer = if pos >= 1 && pos <= n_layers {
                Some((pos - 1) as u32)
            } else {
                None
            };
            let name = if kern.len == 3 { "attention" } else { op.name };
            let time = a.time * per;
            let mut energy = a.cost.energy * per;
            energy.static_ = crate::units::Joules::new(power * time);
            f(layer, name, part, kern, a, per, time, energy);
        }
    }
}

/// Each kernel's time and energy, without the records' names and schedule (what a system
/// run splits its pipeline stages by).
fn shares(m: &Mapped<'_>, out: &PhaseOut, phase: PhaseKind, power: f64, v: &mut Vec<OpShare>) {
    each_kernel(m, out, power, |layer, name, _, _, _, _, time, energy| {
        v.push(OpShare {
            name,
            layer,
            phase,
            time,
            energy: energy.total().get(),
        })
    });
}

fn records(
    m: &Mapped<'_>,
    out: &PhaseOut,
    spans: &[(f64, f64)],
    phase: PhaseKind,
    power: f64,
) -> Vec<OpRecord> {
    let mut v = Vec::with_capacity(spans.len());
    let mut idx = 0;
    each_kernel(m, out, power, |layer, name, part, kern, a, per, time, energy| {
        let op = &part.ops[kern.first].op;
        let label = match layer {
            Some(l) => format!("L{l}.{name}"),
            None => name.to_string(),
        };
        let (start, end) = spans.get(idx).copied().unwrap_or((0.0, 0.0));
        idx += 1;
        let refs: Vec<&Op> = part.ops[kern.first..kern.first + kern.len]
            .iter()
            .map(|o| &o.op)
            .collect();
        let bound = if a.bound_time[0] >= a.bound_time[1] && a.bound_time[0] >= a.bound_time[2] {
            Bound::Compute
        } else if a.bound_time[1] >= a.bound_time[2] {
            Bound::Memory
        } else {
            Bound::Overhead
        };
        v.push(OpRecord {
            label,
            name,
            layer,
            phase,
            kind: kind_name(&refs),
            unit: op.unit,
            count: out.steps,
            flops: Flops::new(a.flops * per),
            reads: role(a.reads.map(|x| x * per)),
            writes: role(a.writes.map(|x| x * per)),
            dram_bytes: a.cost.dram_bytes * per,
            compute_time: a.cost.compute * per,
            memory_time: a.cost.memory * per,
            overhead_time: a.cost.overhead * per,
            time: Seconds::new(time),
            start: Seconds::new(start),
            end: Seconds::new(end),
            bound,
            energy,
        });
    });
    v
}

fn summarize(
    model: &Model,
    sub: &Substrate,
    w: Workload,
    engine: Engine,
    precision: PrecisionReport,
    prefill: PhaseSummary,
    decode: PhaseSummary,
) -> RunSummary {
    let gen_tokens = (w.generate * w.batch) as f64;
    let pre_e = prefill.energy.total().get();
    let dec_e = decode.energy.total().get();
    let total = pre_e + dec_e;
    let weight_bytes = accounting::weight_bytes(model).get();
    let kv_bytes = accounting::kv_bytes_per_token(model).get() * ((w.prompt + w.generate) * w.batch) as f64;
    let cap = sub.memory_capacity().get();
    let per = |x: f64, n: f64| if n > 0.0 { x / n } else { f64::NAN };
    RunSummary {
        model: model.name.clone(),
        substrate: sub.name.clone(),
        engine: engine.name(),
        prompt: w.prompt,
        generate: w.generate,
        batch: w.batch,
        precision,
        ttft_s: prefill.time.get(),
        tpot_s: per(decode.time.get(), w.generate as f64),
        tokens_per_s: per(gen_tokens, decode.time.get()),
        energy_per_token_j: per(total, gen_tokens),
        energy_per_processed_token_j: per(total, ((w.prompt + w.generate) * w.batch) as f64),
        prefill_energy_j: pre_e,
        decode_energy_j: dec_e,
        total_energy_j: total,
        weight_bytes,
        kv_bytes,
        memory_capacity_bytes: cap,
        fits_memory: weight_bytes + kv_bytes <= cap,
        prefill,
        decode,
        ring: None,
    }
}

// ---------------------------------------------------------------------------------------
// The slow exact path

/// Lowers the whole graph at every context, prices every kernel of it and schedules every
/// kernel of every pass: no templates, no skipping, no closed forms. Summary only.
pub fn reference(model: &Model, sub: &Substrate, w: Workload, engine: Engine) -> RunSummary {
    if let crate::substrate::Kind::Ring(_) = sub.kind {
        return super::ring_adapter::engine_run(model, sub, w, false, None).summary;
    }
    let (model, report, mapper, cm) = prepare(model, sub, engine);
    let model = model.as_ref();
    let pol = policy(&mapper, cm);
    let tok = sub.efficiency.token_overhead.get();
    let power = static_power(sub).get();
    let pass = |phase: Phase| -> (f64, Energy, f64, f64, [f64; 3]) {
        let g = graph::lower(model, phase);
        let ops: Vec<Op> = g
            .ops()
            .map(|o| {
                let mut o = o.clone();
                cost::bind(&mut o, &mapper.precision);
                o
            })
            .collect();
        // One-part program: the whole graph, heads per group from the model's layers.
        let mut prog_ops: Vec<ProgOp> = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let idx = petgraph::graph::NodeIndex::new(i);
            let mut deps = super::program::Deps::default();
            for s in g.dag.neighbors_directed(idx, petgraph::Direction::Incoming) {
                deps.push(Dep::Local(s.index() as u32));
            }
            let hpg = match (op.layer, op.name) {
                (Some(l), "attn_scores" | "attn_pv") => model.layers[l as usize]
                    .attention
                    .filter(|a| a.kv_groups > 0 && a.heads % a.kv_groups == 0)
                    .map_or(1, |a| a.heads / a.kv_groups),
                _ => 1,
            };
            prog_ops.push(ProgOp {
                op: op.clone(),
                slope: Default::default(),
                deps,
                heads_per_group: hpg,
                ref_context: 0,
            });
        }
        let kerns = kernels(&prog_ops, mapper.fuses_attention());
        let mut energy = Energy::default();
        let mut flops = 0.0;
        let mut dram = 0.0;
        let mut bt = [0.0; 3];
        let costs: Vec<Cost> = kerns
            .iter()
            .map(|k| {
                let refs: Vec<&Op> = prog_ops[k.first..k.first + k.len].iter().map(|o| &o.op).collect();
                let c = mapper.cost(cm, &refs, k.hpg);
                energy += c.energy;
                flops += refs.iter().map(|o| o.flops.get()).sum::<f64>();
                dram += c.dram_bytes.get();
                bt[c.bound() as usize] += c.time().get();
                c
            })
            .collect();
        let slots = kerns
            .iter()
            .zip(&costs)
            .map(|(k, c)| {
                let mut s = Slot::new(k);
                s.set(c);
                s
            })
            .collect();
        let part = Part {
            ops: &prog_ops,
            kernels: kerns,
            costs,
            slots,
        };
        let m = Mapped {
            parts: vec![part],
            order: vec![0],
            count: vec![1],
            dependent: Vec::new(),
        };
        let end = schedule(&m, 0.0, pol, &mut Capture { spans: Vec::new() });
        (end, energy, flops, dram, bt)
    };
    let phase_sum = |phases: Vec<Phase>| {
        let mut out = PhaseSummary {
            steps: phases.len() as u64,
            ..Default::default()
        };
        let mut t = 0.0;
        let mut bt = [0.0; 3];
        for p in phases {
            let (end, e, f, d, b) = pass(p);
            t += end + tok;
            out.energy += e;
            out.flops += Flops::new(f);
            out.dram_bytes += Bytes::new(d);
            for (t, x) in bt.iter_mut().zip(b) {
                *t += x;
            }
        }
        out.time = Seconds::new(t);
        out.energy.static_ = crate::units::Watts::new(power) * out.time;
        out.compute_bound_time = Seconds::new(bt[0]);
        out.memory_bound_time = Seconds::new(bt[1]);
        out.overhead_bound_time = Seconds::new(bt[2]);
        out
    };
    let prefill = phase_sum(vec![Phase::Prefill {
        tokens: w.prompt,
        batch: w.batch,
    }]);
    let decode = phase_sum(
        (w.prompt + 1..=w.prompt + w.generate)
            .map(|c| Phase::Decode {
                context: c,
                batch: w.batch,
            })
            .collect(),
    );
    summarize(model, sub, w, engine, report, prefill, decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    /// Counts placements while allowing skips.
    struct Count(usize);
    impl Observe for Count {
        fn may_skip(&self) -> bool {
            true
        }
        fn placed(&mut self, _pos: usize, _part: &Part<'_>, _k: usize, _p: &Placed) {
            self.0 += 1;
        }
    }

    #[test]
    fn identical_blocks_are_skipped_after_the_schedule_repeats() {
        let m = model::preset("smollm2-360m").unwrap();
        for name in ["gemmini", "a100-sxm4-40gb", "eyeriss", "flat-edge"] {
            let sub = crate::substrate::load(name, &[]).unwrap();
            let mapper = Mapper::new(&sub, &m.precision);
            for cm in [cost::Model::Sim, cost::Model::Roofline] {
                let prog = Program::new(
                    &m,
                    Phase::Decode {
                        context: 300,
                        batch: 1,
                    },
                );
                let mut mp = Mapped::new(&prog, &mapper);
                mp.price(&mapper, cm, 300, true);
                let pol = policy(&mapper, cm);
                let mut c = Count(0);
                let fast = schedule(&mp, 0.0, pol, &mut c);
                let per_block = mp.parts[1].kernels.len();
                let slow = schedule(&mp, 0.0, pol, &mut Capture { spans: Vec::new() });
                assert!(
                    (fast - slow).abs() <= 1e-9 * slow,
                    "{name} {cm:?}: {fast} vs {slow}"
                );
                assert!(c.0 <= 3 * per_block + 4, "{name} {cm:?}: {} placements", c.0);
            }
        }
    }

    fn summary_runs(m: &Model, sub: &Substrate, w: Workload, runs: (u64, u64)) -> RunSummary {
        run(
            m,
            sub,
            w,
            Engine::Sim,
            Want {
                records: false,
                shares: None,
                sink: None,
                runs,
            },
        )
        .summary
    }

    #[test]
    fn decode_runs_cover_every_step_once() {
        for (steps, exact, blocks) in [
            (0, 4, 2),
            (3, 4, 2),
            (10, 4, 2),
            (11, 4, 3),
            (1000, 16, 7),
            (17, 16, 100),
        ] {
            let runs: Vec<(u64, u64)> = decode_runs(steps, exact, blocks).collect();
            let mut next = 1;
            for &(a, b) in &runs {
                assert_eq!(a, next, "{steps} {exact} {blocks}: {runs:?}");
                assert!(b >= a);
                next = b + 1;
            }
            assert_eq!(next, steps + 1);
            assert!(runs.len() as u64 <= exact + blocks);
        }
    }

    /// Steps priced in runs at their middle context against every step priced alone: the
    /// decode time (TPOT) and energy of 3,000 steps past a 256-token prompt, the last 2,900 in
    /// 3 runs of ~967 steps (the engine's runs are at most 1,024 steps long, at D = 2^24).
    #[test]
    fn decode_runs_match_the_step_by_step_schedule() {
        let m = model::preset("smollm2-135m").unwrap();
        let w = Workload::new(256, 3000, 1).unwrap();
        for name in ["gemmini", "flat-edge", "a100-sxm4-40gb", "eyeriss"] {
            let sub = crate::substrate::load(name, &[]).unwrap();
            let exact = summary_runs(&m, &sub, w, (u64::MAX, 1));
            let runs = summary_runs(&m, &sub, w, (100, 3));
            let rel = |a: f64, b: f64| ((a - b) / b).abs();
            let (t, e) = (
                rel(runs.tpot_s, exact.tpot_s),
                rel(runs.decode_energy_j, exact.decode_energy_j),
            );
            eprintln!("{name}: TPOT error {t:.2e}, decode energy error {e:.2e}");
            assert!(t < 1e-4 && e < 1e-4, "{name}: {t} {e}");
            // and up to EXACT_STEPS the engine prices every step alone
            let small = Workload::new(256, 300, 1).unwrap();
            assert_eq!(
                summary_runs(&m, &sub, small, RUNS),
                summary_runs(&m, &sub, small, (u64::MAX, 1))
            );
        }
    }
}
