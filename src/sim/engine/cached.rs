//! The simulator's summary with every layer priced once: a [`LayerCache`] shared by the
//! candidates of a search (and its threads).
//!
//! A candidate's cost is a sum over its layers, but the schedule couples them: a layer starts
//! from the units, channels and prefetch gate the previous one left busy. The cache keeps
//! what depends on a layer alone and reuses the coupling where it repeats:
//! * per distinct layer (its genes, with the model's width, vocabulary, norm, positions and
//!   formats): its lowering in both phases, and the templates made of it once priced, so a
//!   layer seen before is neither lowered, bound, fingerprinted nor split into kernels again;
//! * per layer *template* (its ops, shapes and precision; not its position): the costs of its
//!   kernels in prefill and at the first decode context, the context-dependent kernels' slots
//!   at every decode context of the workload, and their costs summed over the decode;
//! * per (template, the state it starts from at every decode step): the state it leaves and
//!   the time it adds, at every step. Decode is scheduled layer-major: all steps of one layer,
//!   then the next, each step in coordinates relative to its layer's input (the schedule is
//!   translation-invariant; see the engine docs), so an entry reused is bit for bit what
//!   computing it would give: results do not depend on what the cache holds, nor on threads.
//!   The state a layer leaves is snapped to a grid ([`snap`]) and put in a canonical form
//!   ([`canonical`]), both part of the schedule (with and without the cache), and interned, so
//!   equal states are one value and a lookup compares pointers.
//!
//! Entries are checked against their full content on every hit (the hash only finds them), so
//! a hash collision costs a recomputation, never a wrong figure. Memory is bounded: a shard
//! past its share of the capacity is emptied.

use super::*;
use crate::model::Layer;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Default bound of a cache's contents.
pub const DEFAULT_CAPACITY: usize = 256 << 20;

const SHARDS: usize = 16;

/// Layer costs and schedule pieces of one (substrate, workload), shared by every candidate
/// priced through it with the simulator engine.
pub struct LayerCache {
    substrate: Substrate,
    workload: Workload,
    /// Every summary from [`crate::sim::summary`] (the engine's own path; a baseline).
    bypass: bool,
    shard_bytes: usize,
    prefill: Shards<Arc<PreTemplate>>,
    decode: Shards<Arc<DecTemplate>>,
    series: Shards<Arc<Series>>,
    steps: Shards<Arc<StepOut>>,
    lowered: Shards<Arc<Lowered>>,
    /// Every distinct decode state, once ([`LayerCache::interned`]).
    states: Shards<Arc<States>>,
    start: OnceLock<Arc<States>>,
    /// A ring substrate's design space, prepared once (its co-search runs per model).
    ring: Option<super::super::ring_adapter::Prepared>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Hit and miss counts of a cache (all three kinds of entry together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl LayerCache {
    /// An empty cache for `substrate` and `workload`, holding at most about `capacity` bytes.
    pub fn new(substrate: &Substrate, workload: Workload, capacity: usize) -> LayerCache {
        LayerCache {
            substrate: substrate.clone(),
            workload,
            bypass: false,
            shard_bytes: capacity / SHARDS,
            prefill: Shards::default(),
            decode: Shards::default(),
            series: Shards::default(),
            steps: Shards::default(),
            lowered: Shards::default(),
            states: Shards::default(),
            start: OnceLock::new(),
            ring: match substrate.kind {
                crate::substrate::Kind::Ring(_) if capacity >= SHARDS => {
                    Some(super::super::ring_adapter::Prepared::new(substrate))
                }
                _ => None,
            },
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A cache that keeps nothing: every layer is priced afresh, through the same code.
    pub fn disabled(substrate: &Substrate, workload: Workload) -> LayerCache {
        LayerCache::new(substrate, workload, 0)
    }

    /// No cache at all: every summary is [`crate::sim::summary`] (the engine's step-major
    /// schedule; figures equal to the cached path's up to rounding). The baseline of
    /// `benches/search.rs`.
    pub fn bypass(substrate: &Substrate, workload: Workload) -> LayerCache {
        LayerCache {
            bypass: true,
            ..LayerCache::new(substrate, workload, 0)
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The summary of `model` on `sub` at `w`. When the cache was made for this substrate and
    /// workload: the simulator through the cached layers, a ring (either engine: it has one cost
    /// model) on its prepared design space; otherwise, and for the roofline, [`crate::sim::summary`].
    pub fn summary(&self, model: &Model, sub: &Substrate, w: Workload, engine: Engine) -> RunSummary {
        if self.bypass || w != self.workload || *sub != self.substrate {
            return super::super::summary(model, sub, w, engine);
        }
        // a ring has its own cost model, the same for both engines: its design space is kept
        if let crate::substrate::Kind::Ring(_) = sub.kind {
            return match &self.ring {
                Some(prep) => {
                    super::super::ring_adapter::engine_run_prepared(model, sub, w, false, None, prep).summary
                }
                None => super::super::summary(model, sub, w, engine),
            };
        }
        if engine != Engine::Sim {
            return super::super::summary(model, sub, w, engine);
        }
        summary(model, sub, w, self)
    }

    /// Whether anything can be kept (a disabled cache has no room).
    fn enabled(&self) -> bool {
        self.shard_bytes > 0
    }

    fn count(&self, hit: bool) {
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn get<V: Clone>(&self, shards: &Shards<V>, key: u64, valid: impl Fn(&V) -> bool) -> Option<V> {
        if !self.enabled() {
            return None;
        }
        let shard = shards.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let v = shard.map.get(&key).filter(|v| valid(v)).cloned();
        drop(shard);
        self.count(v.is_some());
        v
    }

    fn put<V>(&self, shards: &Shards<V>, key: u64, v: V, bytes: usize) {
        if bytes > self.shard_bytes {
            return;
        }
        let mut shard = shards.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.bytes + bytes > self.shard_bytes {
            shard.map.clear();
            shard.bytes = 0;
        }
        if shard.map.insert(key, v).is_none() {
            shard.bytes += bytes;
        }
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

struct Shard<V> {
    map: Map<V>,
    bytes: usize,
}

struct Shards<V>([Mutex<Shard<V>>; SHARDS]);

impl<V> Default for Shards<V> {
    fn default() -> Self {
        Shards(std::array::from_fn(|_| {
            Mutex::new(Shard {
                map: Map::default(),
                bytes: 0,
            })
        }))
    }
}

impl<V> Shards<V> {
    fn shard(&self, key: u64) -> &Mutex<Shard<V>> {
        &self.0[(key >> 60) as usize % SHARDS]
    }
}

/// The keys are hashes already.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// A fast 64-bit hash of words (multiply-rotate; entries are verified, so quality only
/// matters for speed).
#[derive(Clone, Copy)]
struct Fx(u64);

impl Fx {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    fn new(salt: u64) -> Fx {
        Fx(salt.wrapping_mul(Fx::K))
    }
    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Fx::K);
    }
    fn f(&mut self, x: f64) {
        self.word(x.to_bits());
    }
    fn str(&mut self, s: &str) {
        for chunk in s.as_bytes().chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.word(u64::from_le_bytes(w));
        }
        self.word(s.len() as u64);
    }
    fn finish(self) -> u64 {
        // final avalanche so the shard bits (the top four) depend on every word
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

/// The content of a template's ops, without their layer index.
fn fingerprint(ops: &[ProgOp], salt: u64, with_deps: bool) -> u64 {
    let mut h = Fx::new(salt);
    for o in ops {
        let op = &o.op;
        h.str(op.name);
        match op.kind {
            graph::OpKind::Gemm { m, n, k, batch } => {
                for w in [1, m, n, k, batch] {
                    h.word(w);
                }
            }
            graph::OpKind::Gather { rows, width } => {
                for w in [2, rows, width] {
                    h.word(w);
                }
            }
            graph::OpKind::Elementwise { elements } => {
                h.word(3);
                h.word(elements);
            }
            graph::OpKind::KvWrite { elements } => {
                h.word(4);
                h.word(elements);
            }
            graph::OpKind::Collective {
                kind,
                rows,
                width,
                group,
                stage,
            } => {
                for w in [5, kind as u64, rows, width, group, stage] {
                    h.word(w);
                }
            }
        }
        h.word(op.unit as u64);
        h.word(op.compute as u64);
        h.f(op.flops.get());
        for b in [op.reads, op.writes] {
            h.f(b.weights.get());
            h.f(b.activations.get());
            h.f(b.kv_cache.get());
        }
        let s = &o.slope;
        h.f(s.flops);
        for x in s.reads.iter().chain(&s.writes) {
            h.f(*x);
        }
        for x in s.shape {
            h.word(x as u64);
        }
        for d in o.deps.iter().filter(|_| with_deps) {
            h.word(match d {
                Dep::Input => u64::MAX,
                Dep::Local(i) => u64::from(*i),
            });
        }
        h.word(o.heads_per_group);
        h.word(o.ref_context);
    }
    h.finish()
}

/// Same ops but for their layer index.
fn same_ops(a: &[ProgOp], b: &[ProgOp], with_deps: bool) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (mut xo, yo) = (x.op.clone(), &y.op);
            xo.layer = yo.layer;
            xo == *yo
                && x.slope == y.slope
                && (!with_deps || x.deps == y.deps)
                && x.heads_per_group == y.heads_per_group
                && x.ref_context == y.ref_context
        })
}

/// One distinct layer lowered for both phases ([`Program::lower_layer`]), and the templates
/// made of its block once priced: a candidate's layers are looked up by their genes, so a
/// layer seen before is neither lowered, bound, fingerprinted nor split into kernels again.
struct Lowered {
    /// The model fields the lowering depends on (all but the name and the layers).
    globals: Model,
    layer: Option<Layer>,
    phases: [Phase; 2],
    /// Head, block and tail ops, unbound, in prefill and at the first decode context.
    ops: [[Vec<ProgOp>; 3]; 2],
    pre: OnceLock<Arc<PreTemplate>>,
    dec: OnceLock<Arc<DecTemplate>>,
}

/// The model fields a one-layer lowering depends on, equal.
fn same_globals(a: &Model, b: &Model) -> bool {
    a.d_model == b.d_model
        && a.vocab == b.vocab
        && a.tied_embeddings == b.tied_embeddings
        && a.norm == b.norm
        && a.positional == b.positional
        && a.precision == b.precision
}

/// Hash of those fields and the phases.
fn globals_hash(m: &Model, phases: [Phase; 2]) -> u64 {
    let mut h = Fx::new(5);
    h.str(&format!(
        "{:?}",
        (
            m.d_model,
            m.vocab,
            m.tied_embeddings,
            m.norm,
            m.positional,
            m.precision,
            phases
        )
    ));
    h.finish()
}

/// Hash of a layer's genes.
pub(crate) fn layer_hash(globals: u64, layer: Option<&Layer>) -> u64 {
    let mut h = Fx::new(globals);
    let Some(l) = layer else {
        h.word(u64::MAX);
        return h.finish();
    };
    match &l.attention {
        Some(a) => {
            for w in [
                1,
                a.heads,
                a.kv_groups,
                a.d_qk,
                a.d_v,
                a.qkv_bias as u64,
                a.o_bias as u64,
            ] {
                h.word(w);
            }
        }
        None => h.word(0),
    }
    match l.ffn {
        crate::model::Ffn::Dense { kind, width, bias } => {
            for w in [1, kind as u64, width, bias as u64] {
                h.word(w);
            }
        }
        crate::model::Ffn::Moe { kind, moe: m } => {
            for w in [
                2,
                kind as u64,
                m.experts,
                m.active,
                m.expert_width,
                m.shared_experts,
                m.shared_width,
                m.shared_gate as u64,
            ] {
                h.word(w);
            }
        }
    }
    h.word(l.parallel_residual as u64);
    h.finish()
}

/// `layer` of `model` (`None`: the model without layers) lowered for `phases`, from the
/// cache or lowered and kept.
fn lowered(
    cache: &LayerCache,
    model: &Model,
    layer: Option<&Layer>,
    phases: [Phase; 2],
    globals: u64,
) -> Arc<Lowered> {
    let key = layer_hash(globals, layer);
    let valid =
        |e: &Arc<Lowered>| e.phases == phases && e.layer.as_ref() == layer && same_globals(&e.globals, model);
    if let Some(e) = cache.get(&cache.lowered, key, valid) {
        return e;
    }
    let ops = phases.map(|p| Program::lower_layer(model, layer, p));
    let n: usize = ops.iter().flatten().map(Vec::len).sum();
    let e = Arc::new(Lowered {
        globals: super::super::program::one_layer(model, None),
        layer: layer.copied(),
        phases,
        ops,
        pre: OnceLock::new(),
        dec: OnceLock::new(),
    });
    cache.put(&cache.lowered, key, e.clone(), slot_bytes::<ProgOp>(n) + 512);
    e
}

/// `ops` bound to the model's formats on the substrate (as the engine's programs are).
fn bound(ops: &[ProgOp], r: &ResolvedPrecision) -> Vec<ProgOp> {
    let mut v = ops.to_vec();
    for o in &mut v {
        cost::bind(&mut o.op, r);
    }
    v
}

/// A part ready to schedule: its (bound) ops, kernels, kernel costs and slots.
struct Proto {
    precision: ResolvedPrecision,
    ops: Vec<ProgOp>,
    kernels: Vec<Kern>,
    costs: Vec<Cost>,
    slots: Vec<Slot>,
}

impl Proto {
    /// The part of `ops` with each kernel's cost from `cost`.
    fn new(ops: Vec<ProgOp>, mapper: &Mapper<'_>, mut cost: impl FnMut(&[ProgOp], &Kern) -> Cost) -> Proto {
        let part = Part::new(&ops, mapper.fuses_attention());
        let Part { kernels, slots, .. } = part;
        let costs: Vec<Cost> = kernels.iter().map(|k| cost(&ops, k)).collect();
        let mut slots = slots;
        for (s, c) in slots.iter_mut().zip(&costs) {
            s.set(c);
        }
        Proto {
            precision: mapper.precision,
            ops,
            kernels,
            costs,
            slots,
        }
    }

    fn part(&self) -> Part<'_> {
        Part {
            ops: &self.ops,
            kernels: self.kernels.clone(),
            costs: self.costs.clone(),
            slots: self.slots.clone(),
        }
    }

    fn bytes(&self) -> usize {
        slot_bytes::<ProgOp>(self.ops.len())
            + slot_bytes::<Kern>(self.kernels.len())
            + slot_bytes::<Cost>(self.costs.len())
            + slot_bytes::<Slot>(self.slots.len())
    }
}

/// A template's kernel costs in prefill.
struct PreTemplate {
    proto: Proto,
}

/// A template in decode: its kernel costs at the first decode context, the slots of its
/// context-dependent kernels at every priced context, and those kernels' costs over the
/// whole decode.
struct DecTemplate {
    proto: Proto,
    /// Per context-dependent kernel, in kernel order.
    dep: Vec<Arc<Series>>,
}

/// A context-dependent kernel (an attention core, a KV write) over the decode: shared by
/// every template with the same kernel, whatever its other ops.
struct Series {
    precision: ResolvedPrecision,
    /// The kernel's ops (their inputs aside: a kernel's cost does not depend on them).
    ops: Vec<ProgOp>,
    hpg: u64,
    /// Its slot durations at every priced context.
    slots: Vec<Slot>,
    /// Its costs summed over the runs, each times the run's steps.
    sum: Agg,
}

/// The relative schedule state at every priced decode context.
struct States {
    hash: u64,
    v: Vec<[f64; 7]>,
}

impl States {
    fn new(v: Vec<[f64; 7]>) -> States {
        let mut h = Fx::new(7);
        for s in &v {
            for x in s {
                h.f(*x);
            }
        }
        States { hash: h.finish(), v }
    }
}

/// One template run over every decode context from given states.
struct StepOut {
    template: Arc<DecTemplate>,
    entering: Arc<States>,
    exit: Arc<States>,
    /// Time from the template's input to its last kernel's end, per context.
    deltas: Vec<f64>,
}

fn slot_bytes<T>(n: usize) -> usize {
    n * std::mem::size_of::<T>()
}

/// The decode runs `(contexts, steps)` of the workload (see [`decode_runs`]).
fn runs(w: Workload) -> Vec<(u64, f64)> {
    decode_runs(w.generate, EXACT_STEPS, MAX_BLOCKS)
        .map(|(first, last)| (w.prompt + first + (last - first) / 2, (last - first + 1) as f64))
        .collect()
}

/// What every template of one summary is priced with.
struct Pricing<'a> {
    cache: &'a LayerCache,
    mapper: &'a Mapper<'a>,
    cm: cost::Model,
    /// The model's formats on the substrate: part of every template's identity.
    salt: u64,
    /// The first decode context.
    lo: u64,
    runs: &'a [(u64, f64)],
}

fn summary(model: &Model, sub: &Substrate, w: Workload, cache: &LayerCache) -> RunSummary {
    let engine = Engine::Sim;
    let (model, report, mapper, cm) = prepare(model, sub, engine);
    let model = model.as_ref();
    let pol = policy(&mapper, cm);
    let tok = sub.efficiency.token_overhead.get();
    let salt = {
        let mut h = Fx::new(0);
        h.str(&format!("{:?}", mapper.precision));
        h.finish()
    };
    let runs = if w.generate > 0 { runs(w) } else { Vec::new() };
    let lo = w.prompt + 1;
    let pr = Pricing {
        cache,
        mapper: &mapper,
        cm,
        salt,
        lo,
        runs: &runs,
    };

    // Every distinct layer lowered (from the cache); the head and tail from the first.
    let phases = [prefill_phase(w), decode_phase(w)];
    let globals = globals_hash(model, phases);
    let (distinct, blocks) = super::super::program::distinct_layers(model);
    let entries: Vec<Arc<Lowered>> = if distinct.is_empty() {
        vec![lowered(cache, model, None, phases, globals)]
    } else {
        distinct
            .iter()
            .map(|l| lowered(cache, model, Some(l), phases, globals))
            .collect()
    };
    let layers = &entries[..distinct.len()];
    let r = &mapper.precision;

    // Prefill: kernel costs by template, then the one pass as the engine schedules it.
    let ends = [0, 2].map(|i| pre_template(&pr, bound(&entries[0].ops[0][i], r)));
    let pre_t: Vec<Arc<PreTemplate>> = layers
        .iter()
        .map(|e| {
            known(cache, &e.pre, r).unwrap_or_else(|| {
                let t = pre_template(&pr, bound(&e.ops[0][1], r));
                remember(cache, &e.pre, &t);
                t
            })
        })
        .collect();
    let mut parts = Vec::with_capacity(pre_t.len() + 2);
    parts.push(ends[0].proto.part());
    parts.extend(pre_t.iter().map(|t| t.proto.part()));
    parts.push(ends[1].proto.part());
    let pre = Mapped::from_parts(parts, &blocks);
    let mut pre_out = PhaseOut::new(&pre);
    pre_out.time = schedule(&pre, 0.0, pol, &mut Quiet);
    pre_out.steps = 1;
    add_fixed(&mut pre_out, &pre, 1.0);
    add_dependent(&mut pre_out, &pre);

    // Decode.
    let ends = [0, 2].map(|i| dec_template(&pr, bound(&entries[0].ops[1][i], r)));
    let mut templates: Vec<Arc<DecTemplate>> = Vec::with_capacity(layers.len() + 2);
    templates.push(ends[0].clone());
    templates.extend(layers.iter().map(|e| {
        known(cache, &e.dec, r).unwrap_or_else(|| {
            let t = dec_template(&pr, bound(&e.ops[1][1], r));
            remember(cache, &e.dec, &t);
            t
        })
    }));
    templates.push(ends[1].clone());
    let dec = Mapped::from_parts(templates.iter().map(|t| t.proto.part()).collect(), &blocks);
    let mut dec_out = PhaseOut::new(&dec);
    dec_out.steps = w.generate;
    if w.generate > 0 {
        add_fixed(&mut dec_out, &dec, w.generate as f64);
        for (pi, t) in templates.iter().enumerate() {
            let cnt = dec.count[pi] as f64;
            let dep = dec.parts[pi]
                .kernels
                .iter()
                .enumerate()
                .filter(|(_, k)| k.dependent);
            for ((k, _), series) in dep.zip(&t.dep) {
                let sum = &series.sum;
                let a = &mut dec_out.aggs[pi][k];
                a.cost.add(&sum.cost.scaled(cnt));
                a.time += sum.time * cnt;
                for (b, s) in a.bound_time.iter_mut().zip(sum.bound_time) {
                    *b += s * cnt;
                }
            }
        }
        // Layer-major schedule of every run's step.
        let mut states = cache.start(runs.len(), pol);
        let mut total = vec![0.0; runs.len()];
        for &pi in &dec.order {
            let out = step_out(cache, &templates[pi], &states, pol);
            for (t, d) in total.iter_mut().zip(&out.deltas) {
                *t += d;
            }
            states = out.exit.clone();
        }
        for ((t, s), &(_, n)) in total.iter().zip(&states.v).zip(&runs) {
            dec_out.time += (t + State::from_relative(s).makespan_end()) * n;
        }
        // FLOPs and bytes are affine in the context: their sum over the steps is the number
        // of steps times their value at the mean context.
        let mean = (lo + w.prompt + w.generate) as f64 / 2.0;
        for &(pi, k) in &dec.dependent {
            let part = &dec.parts[pi];
            let n = (dec.count[pi] * w.generate) as f64;
            with_ops(part.ops, &part.kernels[k], mean, |refs| {
                dec_out.aggs[pi][k].add_ops(refs.iter().copied(), n)
            });
        }
    }
    let power = static_power(sub).get();
    let pre_summary = phase_summary(&pre_out, power, tok);
    let dec_summary = phase_summary(&dec_out, power, tok);
    summarize(model, sub, w, engine, report, pre_summary, dec_summary)
}

/// A lowered layer's template, when priced before at these formats (a hit).
fn known<T: HasProto>(cache: &LayerCache, slot: &OnceLock<Arc<T>>, r: &ResolvedPrecision) -> Option<Arc<T>> {
    let t = slot.get().filter(|t| t.proto().precision == *r)?.clone();
    cache.count(true);
    Some(t)
}

/// Keeps `t` with its lowered layer (unless the cache keeps nothing).
fn remember<T>(cache: &LayerCache, slot: &OnceLock<Arc<T>>, t: &Arc<T>) {
    if cache.enabled() {
        let _ = slot.set(t.clone());
    }
}

trait HasProto {
    fn proto(&self) -> &Proto;
}
impl HasProto for PreTemplate {
    fn proto(&self) -> &Proto {
        &self.proto
    }
}
impl HasProto for DecTemplate {
    fn proto(&self) -> &Proto {
        &self.proto
    }
}

/// The template of `ops` (bound) in `shards`, from the cache or made by `make` (which also
/// gives its size).
fn template<T: HasProto>(
    pr: &Pricing<'_>,
    shards: &Shards<Arc<T>>,
    tag: u64,
    ops: Vec<ProgOp>,
    make: impl FnOnce(Vec<ProgOp>) -> (T, usize),
) -> Arc<T> {
    let key = fingerprint(&ops, pr.salt ^ tag, true);
    let valid = |t: &Arc<T>| {
        let p = t.proto();
        p.precision == pr.mapper.precision && same_ops(&p.ops, &ops, true)
    };
    if let Some(t) = pr.cache.get(shards, key, valid) {
        return t;
    }
    let (t, bytes) = make(ops);
    let t = Arc::new(t);
    pr.cache.put(shards, key, t.clone(), bytes);
    t
}

/// The prefill template of `ops` (bound), from the cache or priced.
fn pre_template(pr: &Pricing<'_>, ops: Vec<ProgOp>) -> Arc<PreTemplate> {
    template(pr, &pr.cache.prefill, 1, ops, |ops| {
        let proto = Proto::new(ops, pr.mapper, |ops, k| kernel_cost(pr.mapper, pr.cm, ops, k, 0));
        let bytes = proto.bytes();
        (PreTemplate { proto }, bytes)
    })
}

/// The decode template of `ops` (bound), from the cache or priced.
fn dec_template(pr: &Pricing<'_>, ops: Vec<ProgOp>) -> Arc<DecTemplate> {
    template(pr, &pr.cache.decode, 2, ops, |ops| {
        let proto = Proto::new(ops, pr.mapper, |ops, k| {
            kernel_cost(pr.mapper, pr.cm, ops, k, pr.lo)
        });
        let dep: Vec<Arc<Series>> = proto
            .kernels
            .iter()
            .filter(|k| k.dependent)
            .map(|k| series(pr, &proto.ops, k))
            .collect();
        let bytes = proto.bytes() + slot_bytes::<Arc<Series>>(dep.len());
        (DecTemplate { proto, dep }, bytes)
    })
}

/// Kernel `kern` of a part of `all` ops at every priced context, from the cache or priced.
fn series(pr: &Pricing<'_>, all: &[ProgOp], kern: &Kern) -> Arc<Series> {
    let (cache, mapper) = (pr.cache, pr.mapper);
    let ops = &all[kern.first..kern.first + kern.len];
    let key = {
        let mut h = Fx::new(fingerprint(ops, pr.salt ^ 4, false));
        h.word(kern.hpg);
        h.finish()
    };
    let valid = |s: &Arc<Series>| {
        s.precision == mapper.precision && s.hpg == kern.hpg && same_ops(&s.ops, ops, false)
    };
    if let Some(s) = cache.get(&cache.series, key, valid) {
        return s;
    }
    let mut slots = Vec::with_capacity(pr.runs.len());
    let mut sum = Agg::default();
    for &(c, n) in pr.runs {
        let cost = kernel_cost(mapper, pr.cm, all, kern, c);
        let mut slot = Slot::default();
        slot.set(&cost);
        slots.push(slot);
        sum.add_cost(&cost, n);
    }
    let s = Arc::new(Series {
        precision: mapper.precision,
        ops: ops.to_vec(),
        hpg: kern.hpg,
        slots,
        sum,
    });
    let bytes = slot_bytes::<ProgOp>(s.ops.len()) + slot_bytes::<Slot>(s.slots.len()) + 256;
    cache.put(&cache.series, key, s.clone(), bytes);
    s
}

/// `slot` (a kernel's place in its template) with the durations and unit of `d`.
fn durations(slot: Slot, d: &Slot) -> Slot {
    Slot {
        unit: d.unit,
        fill: d.fill,
        main: d.main,
        overhead: d.overhead,
        stream_read: d.stream_read,
        stream_write: d.stream_write,
        drain: d.drain,
        ..slot
    }
}

/// A relative state ([`State::relative`]) with the read channel and the prefetch gate in a
/// canonical form, which the schedule that follows cannot tell from `rel`, so more layers
/// start from a state seen before. They act only through a weight fill, which starts at
/// `max(rd, gate)`, and a stream read, which starts at `max(rd, start + overhead)` (a kernel
/// starts at or after its part's input, 0 here) and moves `rd` past 0; a fill moves `rd` to
/// its end, at or after the gate, and a matrix kernel resets the gate. So a gate at or before
/// `rd` never counts (it becomes `rd`), and a read channel free before the input counts only
/// through `max(rd, gate)` (it becomes `min(gate, 0)`). Both are `max`es, exact in floating
/// point; the makespan (the largest of `rd`, the units and the last end, which is at least 0)
/// is unchanged too.
fn canonical(mut rel: [f64; 7]) -> [f64; 7] {
    let (rd, gate) = (rel[3], rel[5]);
    if gate <= rd {
        rel[5] = rd;
    } else if rd <= 0.0 {
        rel[3] = gate.min(0.0);
    }
    rel
}

/// Grid of the relative states a layer leaves: 2^-50 s (0.89 fs).
const GRID: f64 = (1u64 << 50) as f64;

/// `rel` on the [`GRID`]. A relative state is a difference of two absolute times of the
/// layer, so two paths to the same schedule leave it a few ulps of those times apart
/// (measured: 8 values within 6e-20 s of one another after the layers of llmforge-200m on
/// flat-edge, where the state is a 54.72 ns prefetch gate); on the grid they are one state,
/// whose next layer is scheduled once. Each layer's start moves by less than half a step of
/// the grid: over a decode of D steps of L layers the time moves by less than D * L * 0.45 fs
/// (about 1e-11 of it), and the figures stay the same with the cache, without it and at any
/// thread count, as the grid is part of the schedule, not of the cache.
fn snap(mut rel: [f64; 7]) -> [f64; 7] {
    for x in &mut rel {
        *x = (*x * GRID).round() / GRID;
    }
    rel
}

impl LayerCache {
    /// The decode's entering states (all at the input), one shared value per cache.
    fn start(&self, n: usize, pol: Policy) -> Arc<States> {
        let v = vec![canonical(State::at(0.0).relative(pol.channels)); n];
        if let Some(s) = self.start.get()
            && s.v == v
        {
            return s.clone();
        }
        let s = self.interned(States::new(v));
        if self.enabled() {
            let _ = self.start.set(s.clone());
        }
        s
    }

    /// `s`, or an equal value the cache holds already: equal states are one value, so a
    /// step's lookup compares pointers, not every context's state.
    fn interned(&self, s: States) -> Arc<States> {
        let valid = |x: &Arc<States>| x.v == s.v;
        if let Some(x) = self.get(&self.states, s.hash, valid) {
            return x;
        }
        let bytes = slot_bytes::<[f64; 7]>(s.v.len()) + 64;
        let s = Arc::new(s);
        self.put(&self.states, s.hash, s.clone(), bytes);
        s
    }
}

/// A placed prefix of a layer's kernels: the state it was entered in, the state it leaves,
/// its kernels' ends and the last one's.
type Prefix = ([f64; 7], State, Vec<f64>, Option<f64>);

/// The template run from `entering` at every priced context.
#[inline(never)]
fn step_out(cache: &LayerCache, t: &Arc<DecTemplate>, entering: &Arc<States>, pol: Policy) -> Arc<StepOut> {
    let key = {
        let mut h = Fx::new(3);
        h.word(entering.hash);
        h.word(Arc::as_ptr(t) as usize as u64);
        h.finish()
    };
    let valid = |s: &Arc<StepOut>| {
        Arc::ptr_eq(&s.template, t) && (Arc::ptr_eq(&s.entering, entering) || s.entering.v == entering.v)
    };
    if let Some(s) = cache.get(&cache.steps, key, valid) {
        return s;
    }
    let p = &t.proto;
    let mut slots = p.slots.clone();
    let dependent: Vec<usize> = (0..p.kernels.len()).filter(|&k| p.kernels[k].dependent).collect();
    let mut exit = Vec::with_capacity(entering.v.len());
    let mut deltas = Vec::with_capacity(entering.v.len());
    let mut ends: Vec<f64> = Vec::with_capacity(slots.len());
    // The kernels before the first context-dependent one are placed the same at every
    // context that enters in the same state (bit for bit): once per run of such contexts.
    let first = dependent.first().copied().unwrap_or(slots.len());
    let head: Vec<Slot> = slots[..first].to_vec();
    let n = slots.len();
    let prefix = |rel: &[f64; 7]| {
        let mut st = State::from_relative(rel);
        let input = st.input;
        let mut e = Vec::with_capacity(n);
        let last = place_range(&mut st, &head, 0..first, input, pol, &mut e, |_, _| {});
        (*rel, st, e, last)
    };
    let mut cur: Option<Prefix> = None;
    for (j, rel) in entering.v.iter().enumerate() {
        for (d, &k) in dependent.iter().enumerate() {
            slots[k] = durations(slots[k], &t.dep[d].slots[j]);
        }
        let same = cur
            .as_ref()
            .is_some_and(|(r, ..)| r.iter().zip(rel).all(|(a, b)| a.to_bits() == b.to_bits()));
        if !same {
            cur = Some(prefix(rel));
        }
        if let Some((_, st0, ends0, last0)) = &cur {
            let mut st = *st0;
            ends.clear();
            ends.extend_from_slice(ends0);
            let input = st.input;
            let last = place_range(
                &mut st,
                &slots,
                first..slots.len(),
                input,
                pol,
                &mut ends,
                |_, _| {},
            );
            if let Some(end) = last.or(*last0) {
                st.input = end;
            }
            deltas.push(st.input);
            exit.push(canonical(snap(st.relative(pol.channels))));
        }
    }
    let bytes = slot_bytes::<[f64; 7]>(exit.len()) + slot_bytes::<f64>(deltas.len()) + 128;
    let s = Arc::new(StepOut {
        template: t.clone(),
        entering: entering.clone(),
        exit: cache.interned(States::new(exit)),
        deltas,
    });
    cache.put(&cache.steps, key, s.clone(), bytes);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A part of up to six kernels on random units, each after a random earlier one (or the
    /// input), with random phase durations (zero or not).
    fn part() -> impl Strategy<Value = Vec<Slot>> {
        let d = || prop_oneof![Just(0.0), 1e-9..1e-6f64];
        let kernel = (0usize..3, any::<u32>(), d(), d(), d(), d(), d(), d());
        prop::collection::vec(kernel, 1..7).prop_map(|ks| {
            ks.iter()
                .enumerate()
                .map(|(k, &(unit, dep, fill, main, overhead, read, write, drain))| {
                    // an earlier kernel, or (k itself drawn) the part's input
                    let dep = dep % (k as u32 + 1);
                    Slot {
                        unit,
                        deps: [if dep == k as u32 { INPUT } else { dep }; 4],
                        n_deps: 1,
                        fill,
                        main,
                        overhead,
                        stream_read: read,
                        stream_write: write,
                        drain,
                    }
                })
                .collect()
        })
    }

    /// A relative state: units, write channel and last end at or after the input; read
    /// channel and gate before or after it.
    fn state() -> impl Strategy<Value = [f64; 7]> {
        let after = prop_oneof![Just(0.0), 0.0..1e-6f64];
        let around = prop_oneof![Just(0.0), -1e-6..1e-6f64];
        (
            after.clone(),
            after.clone(),
            after.clone(),
            around.clone(),
            after.clone(),
            around,
            after,
        )
            .prop_map(|(a, b, c, rd, wr, gate, last)| [a, b, c, rd, wr, gate, last])
    }

    fn run(rel: &[f64; 7], slots: &[Slot], pol: Policy) -> (u64, [u64; 7], u64) {
        let mut st = State::from_relative(rel);
        let mut ends = Vec::new();
        place_part(&mut st, slots, pol, &mut ends, |_, _| {});
        let exit = canonical(st.relative(pol.channels)).map(f64::to_bits);
        (st.input.to_bits(), exit, st.makespan_end().to_bits())
    }

    proptest! {
        /// The canonical form of a state is scheduled exactly as the state: the same input
        /// end, the same (canonical) state left and the same makespan, bit for bit.
        #[test]
        fn a_canonical_state_schedules_as_the_state(
            slots in part(),
            rel in state(),
            serial in any::<bool>(),
        ) {
            let pol = Policy { serial, channels: true };
            prop_assert_eq!(run(&canonical(rel), &slots, pol), run(&rel, &slots, pol));
            let end = |r: &[f64; 7]| State::from_relative(r).makespan_end();
            prop_assert_eq!(end(&canonical(rel)).to_bits(), end(&rel).to_bits());
        }
    }

    #[test]
    fn snapping_merges_states_ulps_apart() {
        let a = [
            0.0,
            0.0,
            0.0,
            -5.471999999997904e-8,
            0.0,
            -5.471999999997904e-8,
            0.0,
        ];
        let b = [
            0.0,
            0.0,
            0.0,
            -5.472000000003325e-8,
            0.0,
            -5.472000000003325e-8,
            0.0,
        ];
        assert_ne!(a, b);
        assert_eq!(snap(a), snap(b));
        assert!((snap(a)[3] - a[3]).abs() <= 0.5 / GRID);
    }
}
