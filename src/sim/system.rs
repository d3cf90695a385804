//! A run on a multi-device system ([`crate::system::System`]).
//!
//! One tensor-parallel shard of the model ([`crate::graph::parallel::shard`]) is priced by the
//! engine on one device (roofline or sim, the single-device path); a pipeline splits that
//! device's per-op times and energies into its stages by the blocks each runs (the embedding
//! on the first stage, final norm and LM head on the last). The pass's collectives and stage
//! hand-offs are the [`crate::graph::Unit::Link`] operators of its placed graph
//! ([`crate::graph::parallel::lower_placed`]: the shard's graph with them spliced in, read once
//! per model, placement and pass); they are priced on the interconnect
//! ([`super::cost::collective`]) and sit on their stage's critical path (no overlap with
//! compute: Megatron's all-reduces block the next layer). The engine prices the shard's plain
//! graph: no collective reaches it. The Chrome trace's timeline walks each stage's operators
//! of the placed graph in order, a collective where the graph puts it.
//!
//! * Prefill: the prompt is cut into `m` micro-batches (the system's `micro_batches`); stage
//!   `s` takes `u_s = t_s / m + c_s(B / m)` per micro-batch (its share of the pass plus its
//!   collectives on `1/m` of the bytes), each hand-off `h_s`; the pipeline's makespan is
//!   `sum u_s + sum h_s + (m - 1) max(u, h)`.
//! * Decode: a step visits the stages in turn: `sum_s (t_s + c_s) + sum h_s`.
//! * Energy: every device's own energy (the engine's, static included over its own busy
//!   time; a device idle in the pipeline is not charged) plus the links' (`pJ/bit` times the
//!   bits crossing each link).
//!
//! A one-device system is the plain substrate: its summary is the engine's, unchanged.

use super::cost::{CollectiveCost, collective, system_links};
use super::{Engine, OpRecord, PhaseKind, RunResult, RunSummary, Workload};
use crate::graph::Phase;
use crate::graph::parallel::{
    self, Collective, CollectiveKind, PassCollectives, Placement, device_op_stage, lower_placed, stage_layers,
};
use crate::model::{Ffn, Layer, Model, Positional, accounting};
use crate::system::{HostQueue, Interconnect, System};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// One device's figures over the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceFigures {
    pub device: u64,
    pub stage: u64,
    /// Tensor-parallel rank within the stage.
    pub rank: u64,
    /// Blocks it runs, `first..end` (empty for a stage without blocks).
    pub layers: String,
    /// Compute (the engine's time of its share), prefill and decode.
    pub busy_s: f64,
    /// In collectives and hand-offs it takes part in.
    pub comm_s: f64,
    pub energy_j: f64,
    pub weight_bytes: f64,
    pub kv_bytes: f64,
    pub fits_memory: bool,
}

/// One link's figures over the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkFigures {
    pub link: usize,
    pub from: String,
    pub to: String,
    /// Bytes that crossed it, both directions.
    pub bytes: f64,
    /// Time it carried data (the busier direction).
    pub busy_s: f64,
    pub energy_j: f64,
}

/// A system run: the whole system's summary, and per device and per link.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SystemSummary {
    pub system: String,
    pub description: String,
    pub topology: &'static str,
    pub devices: u64,
    pub tp: u64,
    pub pp: u64,
    pub micro_batches: u64,
    /// TTFT, TPOT, energy... of the system (devices and links).
    pub summary: RunSummary,
    /// Time in collectives and hand-offs on the critical path.
    pub prefill_comm_s: f64,
    pub decode_comm_s: f64,
    /// The prefill compute's pipelined makespan over its sum over stages (1 without a
    /// pipeline): `(sum t_s / m + (m - 1) max t_s / m) / sum t_s`.
    pub pipeline_factor: f64,
    /// Energy of one tensor-parallel rank's devices (one per stage), devices only.
    pub rank_energy_prefill_j: f64,
    pub rank_energy_decode_j: f64,
    pub link_energy_j: f64,
    pub per_device: Vec<DeviceFigures>,
    pub per_link: Vec<LinkFigures>,
}

/// A system run with the per-op records of one device (the shard's ops; with a pipeline,
/// every stage's, each run by its own devices).
#[derive(Clone, Debug, PartialEq)]
pub struct SystemRun {
    pub system: SystemSummary,
    pub device: RunResult,
}

/// The device groups running collective `c`: the stage's tensor-parallel devices, or for a
/// hand-off each rank's pair (sending stage, next stage), which run side by side.
fn groups(sys: &System, c: &Collective) -> Vec<Vec<u64>> {
    let tp = sys.placement.tp;
    match c.kind {
        CollectiveKind::SendRecv => (0..tp)
            .map(|r| vec![sys.device_of(c.stage, r), sys.device_of(c.stage + 1, r)])
            .collect(),
        _ => vec![(0..tp).map(|r| sys.device_of(c.stage, r)).collect()],
    }
}

/// One device group's part in a collective, priced.
struct GroupCost {
    members: Vec<u64>,
    cost: CollectiveCost,
    /// `cost.link_bytes()`.
    link_bytes: f64,
}

/// What makes two collectives cost the same: kind, bytes (their bits), group size, stage.
type MemoKey = (CollectiveKind, u64, u64, u64);

/// A run's collectives priced once per distinct (kind, bytes, group, stage): the groups
/// running each and their costs on the interconnect. A pass's all-reduces all move the same
/// tensor on the same devices, so a pass of hundreds of collectives prices a handful.
struct Memo<'s> {
    sys: &'s System,
    ic: &'s Interconnect,
    seen: Vec<(MemoKey, Vec<GroupCost>)>,
    /// The entry the last lookup found.
    last: usize,
}

impl<'s> Memo<'s> {
    fn new(sys: &'s System, ic: &'s Interconnect) -> Memo<'s> {
        Memo {
            sys,
            ic,
            seen: Vec::new(),
            last: 0,
        }
    }

    /// The groups running `c` and what it costs each.
    fn get(&mut self, c: &Collective) -> &[GroupCost] {
        let key = (c.kind, c.bytes.get().to_bits(), c.group, c.stage);
        // a pass's collectives mostly repeat the one before
        let hit = match self.seen.get(self.last) {
            Some((k, _)) if *k == key => Some(self.last),
            _ => self.seen.iter().position(|(k, _)| *k == key),
        };
        let i = match hit {
            Some(i) => i,
            None => {
                let priced = groups(self.sys, c)
                    .into_iter()
                    .map(|members| {
                        let cost = collective(self.ic, self.sys.count, &members, c);
                        GroupCost {
                            link_bytes: cost.link_bytes(),
                            members,
                            cost,
                        }
                    })
                    .collect();
                self.seen.push((key, priced));
                self.seen.len() - 1
            }
        };
        self.last = i;
        &self.seen[i].1
    }
}

/// The graph phases of a workload's passes: the prefill pass (a micro-batch carries `1/m` of
/// its collectives' bytes) and a decode step (its first; a step's collectives do not depend on
/// the context).
fn pass_phases(w: Workload) -> [Phase; 2] {
    [
        Phase::Prefill {
            tokens: w.prompt,
            batch: w.batch,
        },
        Phase::Decode {
            context: w.prompt + 1,
            batch: w.batch,
        },
    ]
}

/// A model's collectives under a placement.
struct PassEntry {
    model: Model,
    placement: Placement,
    passes: Arc<PassCollectives>,
}

/// Distinct (model, placement) pairs the cache keeps before it starts afresh.
const PASS_CACHE_ENTRIES: usize = 1024;

/// The collectives of `model`'s passes under `placement`, read from its placed graph
/// ([`PassCollectives`]). Lowering a whole graph costs more than the rest of a system run's
/// pricing, and a calibration prices the same rows again and again: they are kept
/// process-wide per (model, placement), every hit checked against the whole model; bounded.
fn pass_collectives(model: &Model, placement: Placement) -> Arc<PassCollectives> {
    use std::hash::{Hash, Hasher};
    static CACHE: Mutex<Vec<Vec<PassEntry>>> = Mutex::new(Vec::new());
    const BUCKETS: usize = 256;
    let key = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        model.name.hash(&mut h);
        (model.d_model, model.vocab, model.layers.len()).hash(&mut h);
        (placement.tp, placement.pp).hash(&mut h);
        h.finish() as usize % BUCKETS
    };
    let find = |buckets: &Vec<Vec<PassEntry>>| {
        let bucket = buckets.get(key)?;
        let hit = bucket
            .iter()
            .find(|e| e.placement == placement && e.model == *model);
        hit.map(|e| e.passes.clone())
    };
    if let Some(hit) = find(&CACHE.lock().unwrap_or_else(|e| e.into_inner())) {
        return hit;
    }
    let passes = Arc::new(PassCollectives::new(model, placement));
    let mut buckets = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let held: usize = buckets.iter().map(Vec::len).sum();
    if buckets.len() != BUCKETS || held >= PASS_CACHE_ENTRIES {
        buckets.clear();
        buckets.resize_with(BUCKETS, Vec::new);
    }
    buckets[key].push(PassEntry {
        model: model.clone(),
        placement,
        passes: passes.clone(),
    });
    passes
}

/// Runs `model` on `sys` (summary, per device and per link; `records`: with the per-op
/// records of one device).
pub fn run(model: &Model, sys: &System, w: Workload, engine: Engine, records: bool) -> SystemRun {
    run_detail(model, sys, w, engine, records, true)
}

/// As [`run`]; without `per_device_wanted`, a pipeline whose prompt is one micro-batch does
/// not split its device's work into stages (its totals do not depend on how the stages
/// share it), and the per-device and per-link figures are left out (no traffic is kept per
/// link or device).
fn run_detail(
    model: &Model,
    sys: &System,
    w: Workload,
    engine: Engine,
    records: bool,
    per_device_wanted: bool,
) -> SystemRun {
    let p = sys.placement;
    // one tensor-parallel shard (the model itself on one device of each stage)
    let shard = if p.tp > 1 {
        std::borrow::Cow::Owned(parallel::shard(model, p.tp))
    } else {
        std::borrow::Cow::Borrowed(model)
    };
    let stages = stage_layers(model.n_layers() as u32, p.pp);
    let pp = p.pp.max(1) as usize;
    let split = pp > 1 && (per_device_wanted || sys.micro_batches > 1);
    // the device's run: records when the caller wants them; each kernel's time and energy
    // (without records) when stages must be split
    let mut ops = Vec::new();
    let device = super::engine::run(
        &shard,
        &sys.device,
        w,
        engine,
        super::engine::Want {
            records,
            shares: split.then_some(&mut ops),
            sink: None,
            runs: super::engine::RUNS,
        },
    );
    let dev = &device.summary;
    // each stage's share of the device's time and energy, per phase (prefill time, decode
    // time, prefill energy, decode energy)
    let mut parts = [vec![0.0; pp], vec![0.0; pp], vec![0.0; pp], vec![0.0; pp]];
    for r in &ops {
        let s = device_op_stage(&stages, r.name, r.layer) as usize;
        let (t, e) = match r.phase {
            PhaseKind::Prefill => (0, 2),
            PhaseKind::Decode => (1, 3),
        };
        parts[t][s] += r.time;
        parts[e][s] += r.energy;
    }
    let share = |v: &[f64]| -> Vec<f64> {
        if pp == 1 {
            return vec![1.0];
        }
        if !split {
            // totals only: any split gives them
            return vec![1.0 / pp as f64; pp];
        }
        let total: f64 = v.iter().sum();
        if total > 0.0 {
            v.iter().map(|x| x / total).collect()
        } else {
            vec![1.0 / pp as f64; pp]
        }
    };
    let t_pre: Vec<f64> = share(&parts[0])
        .iter()
        .map(|f| f * dev.prefill.time.get())
        .collect();
    let t_dec: Vec<f64> = share(&parts[1])
        .iter()
        .map(|f| f * dev.decode.time.get())
        .collect();
    let e_pre: Vec<f64> = share(&parts[2])
        .iter()
        .map(|f| f * dev.prefill_energy_j)
        .collect();
    let e_dec: Vec<f64> = share(&parts[3]).iter().map(|f| f * dev.decode_energy_j).collect();

    // the collectives of one prefill micro-batch and of one decode step, from the placed
    // graphs (none to price without links or on one device)
    let m = sys.micro_batches.max(1);
    let mf = m as f64;
    let [prefill_phase, decode_phase] = pass_phases(w);
    let passes = (sys.interconnect.is_some() && p.devices() > 1).then(|| pass_collectives(model, p));
    let pass = |phase| -> Vec<Collective> { passes.as_ref().map_or(Vec::new(), |c| c.at(phase).collect()) };
    let mut micro = pass(prefill_phase);
    if m > 1 {
        micro.iter_mut().for_each(|c| c.bytes = c.bytes / mf);
    }
    let step = pass(decode_phase);
    // the totals leave the per-link figures out: no traffic kept per link and device
    let links = match sys.interconnect {
        Some(ic) if per_device_wanted => system_links(ic.topology, sys.count),
        _ => Vec::new(),
    };
    let mut link_bytes = vec![0.0; links.len()];
    let mut link_busy = vec![0.0; links.len()];
    let mut device_comm = vec![0.0; sys.count as usize];
    // prices a pass's collectives: (per-stage collective time, per-stage hand-off time,
    // bytes crossing links), adding `times` passes' traffic to the links and devices
    let mut memo = sys.interconnect.as_ref().map(|ic| Memo::new(sys, ic));
    let mut price = |cs: &[Collective], times: f64| -> (Vec<f64>, Vec<f64>, f64) {
        let (mut coll, mut hand, mut crossing) = (vec![0.0; pp], vec![0.0; pp], 0.0);
        let Some(memo) = &mut memo else {
            return (coll, hand, crossing);
        };
        for c in cs {
            let s = c.stage as usize;
            let mut t: f64 = 0.0;
            for g in memo.get(c) {
                let time = g.cost.time.get();
                t = t.max(time);
                crossing += g.link_bytes * times;
                if !per_device_wanted {
                    continue;
                }
                for (l, b, busy) in &g.cost.links {
                    link_bytes[*l] += b * times;
                    link_busy[*l] += busy * times;
                }
                for d in &g.members {
                    device_comm[*d as usize] += time * times;
                }
            }
            match c.kind {
                CollectiveKind::SendRecv => hand[s] += t,
                _ => coll[s] += t,
            }
        }
        (coll, hand, crossing)
    };
    let (c_pre, h_pre, cross_pre) = price(&micro, mf);
    let (c_dec, h_dec, cross_dec) = price(&step, w.generate as f64);

    // prefill: the micro-batches through the stages
    let u: Vec<f64> = (0..pp).map(|s| t_pre[s] / mf + c_pre[s]).collect();
    let compute_sum: f64 = t_pre.iter().sum();
    // the host's submissions per stage and micro-batch, where its queues can hold the
    // pipeline back
    let host = sys
        .host
        .filter(|_| pp > 1 && m > 1)
        .map(|q| (q, stage_launches(&shard, &stages, &q)));
    let (prefill, compute_piped) = match &host {
        Some((q, k)) => {
            let t: Vec<f64> = t_pre.iter().map(|t| t / mf).collect();
            let none = vec![0.0; pp];
            (
                host_makespan(&u, &h_pre, k, q.depth, m),
                host_makespan(&t, &none, k, q.depth, m),
            )
        }
        None => {
            let compute_max = t_pre.iter().fold(0.0f64, |a, &b| a.max(b));
            (
                pipelined(&u, &h_pre, mf),
                compute_sum / mf + (mf - 1.0) * compute_max / mf,
            )
        }
    };
    let pipeline_factor = if compute_sum > 0.0 {
        compute_piped / compute_sum
    } else {
        1.0
    };
    // decode: stage-serial steps
    let d = w.generate as f64;
    let step_comm: f64 = c_dec.iter().sum::<f64>() + h_dec.iter().sum::<f64>();
    let decode = t_dec.iter().sum::<f64>() + d * step_comm;

    // per device
    let tp = p.tp.max(1);
    let weight_b = shard.precision.weights.bytes();
    let kv_b = shard.precision.kv_cache.bytes();
    let params = accounting::params(&shard);
    // the blocks' weights, to place them on their stages
    let layer_params: Vec<f64> = if pp > 1 {
        shard
            .layers
            .iter()
            .map(|l| accounting::layer_params(&shard, l) as f64)
            .collect()
    } else {
        Vec::new()
    };
    let (dm, vocab) = (shard.d_model as f64, shard.vocab as f64);
    let positions = match shard.positional {
        Positional::Learned { max_positions } => max_positions as f64 * dm,
        _ => 0.0,
    };
    // the first stage holds the input embedding (and positions); the last the final norm and
    // the head (a tied head: a copy of the embedding matrix there)
    let embedding = vocab * dm + positions;
    let head = shard.norm.params(shard.d_model) as f64 + vocab * dm;
    let in_flight = ((w.prompt + w.generate) * w.batch) as f64;
    let cap = sys.device.memory_capacity().get();
    let mut per_device = Vec::with_capacity(sys.count as usize);
    for (s, range) in stages.iter().enumerate() {
        let wparams = if pp == 1 {
            params.total as f64
        } else {
            let blocks: f64 = range.clone().map(|l| layer_params[l as usize]).sum();
            blocks + if s == 0 { embedding } else { 0.0 } + if s + 1 == pp { head } else { 0.0 }
        };
        let kv_elems: u64 = range
            .clone()
            .filter_map(|l| shard.layers[l as usize].attention.as_ref())
            .map(|a| a.kv_elements_per_token())
            .sum();
        let kv = kv_elems as f64 * kv_b * in_flight;
        let weights = wparams * weight_b;
        for r in 0..tp {
            let id = sys.device_of(s as u64, r);
            per_device.push(DeviceFigures {
                device: id,
                stage: s as u64,
                rank: r,
                layers: if per_device_wanted {
                    format!("{}..{}", range.start, range.end)
                } else {
                    String::new()
                },
                busy_s: t_pre[s] + t_dec[s],
                comm_s: device_comm[id as usize],
                energy_j: e_pre[s] + e_dec[s],
                weight_bytes: weights,
                kv_bytes: kv,
                fits_memory: weights + kv <= cap,
            });
        }
    }
    let e_byte = sys.interconnect.map_or(0.0, |ic| ic.energy_per_byte);
    let per_link: Vec<LinkFigures> = links
        .into_iter()
        .enumerate()
        .map(|(i, (from, to))| LinkFigures {
            link: i,
            from,
            to,
            bytes: link_bytes[i],
            busy_s: link_busy[i],
            energy_j: link_bytes[i] * e_byte,
        })
        .collect();
    let link_pre = cross_pre * e_byte;
    let link_dec = cross_dec * e_byte;
    let tpf = tp as f64;
    let rank_pre: f64 = e_pre.iter().sum();
    let rank_dec: f64 = e_dec.iter().sum();
    let pre_e = rank_pre * tpf + link_pre;
    let dec_e = rank_dec * tpf + link_dec;

    let summary = if sys.is_single() {
        dev.clone()
    } else {
        let gen_tokens = (w.generate * w.batch) as f64;
        let per = |x: f64, n: f64| if n > 0.0 { x / n } else { f64::NAN };
        let weight_bytes: f64 = per_device.iter().map(|d| d.weight_bytes).sum();
        let kv_bytes: f64 = per_device.iter().map(|d| d.kv_bytes).sum();
        let mut s = dev.clone();
        s.model = model.name.clone();
        s.substrate = sys.name.clone();
        s.ttft_s = prefill;
        s.tpot_s = per(decode, d);
        s.tokens_per_s = per(gen_tokens, decode);
        s.prefill_energy_j = pre_e;
        s.decode_energy_j = dec_e;
        s.total_energy_j = pre_e + dec_e;
        s.energy_per_token_j = per(pre_e + dec_e, gen_tokens);
        s.energy_per_processed_token_j = per(pre_e + dec_e, in_flight);
        s.weight_bytes = weight_bytes;
        s.kv_bytes = kv_bytes;
        s.memory_capacity_bytes = cap * sys.count as f64;
        s.fits_memory = per_device.iter().all(|d| d.fits_memory);
        s.prefill.time = crate::units::Seconds::new(prefill);
        s.decode.time = crate::units::Seconds::new(decode);
        s.prefill.flops = s.prefill.flops * tpf;
        s.decode.flops = s.decode.flops * tpf;
        s.prefill.dram_bytes = s.prefill.dram_bytes * tpf;
        s.decode.dram_bytes = s.decode.dram_bytes * tpf;
        s.prefill.energy = s.prefill.energy * tpf;
        s.decode.energy = s.decode.energy * tpf;
        s
    };
    if !per_device_wanted {
        // the stages' busy times and energies were not split: no per-device rows
        per_device.clear();
    }
    SystemRun {
        system: SystemSummary {
            system: sys.name.clone(),
            description: sys.description.clone(),
            topology: sys.interconnect.map_or("none", |ic| ic.topology.name()),
            devices: sys.count,
            tp,
            pp: p.pp,
            micro_batches: m,
            summary,
            prefill_comm_s: prefill - compute_piped,
            decode_comm_s: d * step_comm,
            pipeline_factor,
            rank_energy_prefill_j: rank_pre,
            rank_energy_decode_j: rank_dec,
            link_energy_j: link_pre + link_dec,
            per_device,
            per_link,
        },
        device,
    }
}

/// The summary only (no per-op records unless a pipeline needs them).
pub fn summary(model: &Model, sys: &System, w: Workload, engine: Engine) -> SystemSummary {
    run(model, sys, w, engine, false).system
}

/// The system's totals only (`per_device` and `per_link` empty): what `validate` needs,
/// without the per-kernel split a pipeline otherwise takes to split its stages (unless its
/// prompt is cut into micro-batches, whose pipeline depends on the slowest stage).
pub fn totals(model: &Model, sys: &System, w: Workload, engine: Engine) -> SystemSummary {
    run_detail(model, sys, w, engine, false, false).system
}

/// Where a timeline interval is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Device(u64),
    Link(usize),
}

/// One interval of a system's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEvent {
    pub track: Track,
    pub phase: PhaseKind,
    pub name: String,
    /// `op`, `collective` or `hand_off`.
    pub what: &'static str,
    pub start: f64,
    pub end: f64,
}

/// The system's timeline for a trace: the prefill pass (each micro-batch through the stages)
/// and one decode step drawn with the mean per-step op times, stage after stage. Each stage
/// walks its operators of the placed graph ([`lower_placed`]) in order: a device operator
/// draws the engine's records up to its own (a kernel fusing several operators, such as fused
/// attention, is drawn where it comes), a collective is drawn where the graph puts it. Op
/// durations are the engine's per-op times scaled to its makespan (the engine overlaps some
/// ops' transfers; the timeline draws them in sequence). Collectives appear on every device
/// taking part and on every link they cross (for the link's busy time).
pub fn timeline(model: &Model, sys: &System, w: Workload, run: &SystemRun) -> Vec<TimelineEvent> {
    let p = sys.placement;
    let pp = p.pp.max(1) as usize;
    let stages = stage_layers(model.n_layers() as u32, p.pp);
    let mut out = Vec::new();
    let dev = &run.device.summary;
    let mut t0: f64 = 0.0;
    // each distinct collective priced once, as the run priced them
    let mut memo = sys.interconnect.as_ref().map(|ic| Memo::new(sys, ic));
    let [prefill_phase, decode_phase] = pass_phases(w);
    for (phase, passes, graph_phase) in [
        (PhaseKind::Prefill, sys.micro_batches.max(1), prefill_phase),
        (PhaseKind::Decode, 1, decode_phase),
    ] {
        let ops: Vec<&OpRecord> = run.device.ops.iter().filter(|r| r.phase == phase).collect();
        if ops.is_empty() {
            continue;
        }
        let (steps, makespan) = match phase {
            PhaseKind::Prefill => (1.0, dev.prefill.time.get()),
            PhaseKind::Decode => (w.generate as f64, dev.decode.time.get()),
        };
        let total: f64 = ops.iter().map(|r| r.time.get()).sum();
        let scale = if total > 0.0 {
            makespan / total / steps
        } else {
            0.0
        };
        let m = passes as f64;
        // each stage's operators of the placed graph and the engine's records, in order
        let placed = lower_placed(model, graph_phase, p);
        let mut stage_ops = vec![Vec::new(); pp];
        for op in placed.graph.ops() {
            stage_ops[(placed.stage_of_op(op) as usize).min(pp - 1)].push(op);
        }
        let mut stage_records = vec![Vec::new(); pp];
        for r in ops {
            stage_records[(device_op_stage(&stages, r.name, r.layer) as usize).min(pp - 1)].push(r);
        }
        // (stage, micro-batch) end times
        let mut done = vec![vec![t0; passes as usize]; pp];
        let mut phase_end = t0;
        for k in 0..passes as usize {
            for s in 0..pp {
                let mut t = t0;
                if s > 0 {
                    t = t.max(done[s - 1][k]);
                }
                if k > 0 {
                    t = t.max(done[s][k - 1]);
                }
                let members: Vec<u64> = (0..p.tp).map(|r| sys.device_of(s as u64, r)).collect();
                let records = &stage_records[s];
                let draw = |r: &OpRecord, t: &mut f64, out: &mut Vec<TimelineEvent>| {
                    let d = r.time.get() * scale / m;
                    for dev in &members {
                        out.push(TimelineEvent {
                            track: Track::Device(*dev),
                            phase,
                            name: r.label.clone(),
                            what: "op",
                            start: *t,
                            end: *t + d,
                        });
                    }
                    *t += d;
                };
                // the next record to draw
                let mut next = 0;
                for op in &stage_ops[s] {
                    let Some(whole) = Collective::of(op) else {
                        // this op's own record, among the records of its block
                        let mut block = records[next..].iter().take_while(|r| r.layer == op.layer);
                        if let Some(j) = block.position(|r| r.name == op.name) {
                            for r in &records[next..=next + j] {
                                draw(r, &mut t, &mut out);
                            }
                            next += j + 1;
                        }
                        continue;
                    };
                    let Some(memo) = memo.as_mut() else { continue };
                    // one micro-batch's part
                    let c = Collective {
                        bytes: whole.bytes / m,
                        ..whole
                    };
                    let mut end = t;
                    for g in memo.get(&c) {
                        end = end.max(t + g.cost.time.get());
                        for (l, _, busy) in &g.cost.links {
                            out.push(TimelineEvent {
                                track: Track::Link(*l),
                                phase,
                                name: c.name.to_string(),
                                what: "collective",
                                start: t,
                                end: t + busy,
                            });
                        }
                    }
                    for d in &members {
                        out.push(TimelineEvent {
                            track: Track::Device(*d),
                            phase,
                            name: c.label(),
                            what: if c.kind == CollectiveKind::SendRecv {
                                "hand_off"
                            } else {
                                "collective"
                            },
                            start: t,
                            end,
                        });
                    }
                    t = end;
                }
                // records of no operator of the graph (none today)
                for r in &records[next..] {
                    draw(r, &mut t, &mut out);
                }
                done[s][k] = t;
                phase_end = phase_end.max(t);
            }
        }
        t0 = phase_end;
    }
    out
}

/// Submissions of one micro-batch on each stage: its blocks' ([`HostQueue::block_launches`],
/// plus [`HostQueue::dequant_launches`] per weight matrix when the weights are in a block
/// format) and the stage boundary's.
fn stage_launches(model: &Model, stages: &[std::ops::Range<u32>], q: &HostQueue) -> Vec<u64> {
    let dequant = model.precision.weights.is_block();
    stages
        .iter()
        .map(|r| {
            let blocks = model.layers.get(r.start as usize..r.end as usize).unwrap_or(&[]);
            let per_block = |l: &Layer| {
                let matrices = if dequant { weight_matrices(l) } else { 0 };
                q.block_launches
                    .saturating_add(q.dequant_launches.saturating_mul(matrices))
            };
            blocks
                .iter()
                .map(per_block)
                .fold(q.boundary_launches, u64::saturating_add)
        })
        .collect()
}

/// Weight matrices a block multiplies by: the attention's four (Q, K, V, output) and the
/// FFN's two or three (those of each expert a token visits, and the router's).
fn weight_matrices(l: &Layer) -> u64 {
    let attention = if l.attention.is_some() { 4 } else { 0 };
    let ffn = match l.ffn {
        Ffn::Dense { kind, .. } => kind.n_matrices(),
        Ffn::Moe { kind, moe } => {
            let experts = moe.active.saturating_add(moe.shared_experts);
            kind.n_matrices().saturating_mul(experts) + 1 + u64::from(moe.shared_gate)
        }
    };
    attention + ffn
}

/// Makespan of `m` micro-batches through stages taking `u[s]` each, with hand-offs `h[s]`,
/// when nothing but the stages and links holds them back: `sum u + sum h + (m - 1) max(u, h)`.
fn pipelined(u: &[f64], h: &[f64], m: f64) -> f64 {
    let sum: f64 = u.iter().sum::<f64>() + h.iter().sum::<f64>();
    let slowest = u.iter().chain(h).fold(0.0f64, |a, &b| a.max(b));
    sum + (m - 1.0) * slowest
}

/// Micro-batches [`host_makespan`] schedules one by one; each further one adds what the last
/// scheduled one added (the pipeline's steady state).
const HOST_MICRO_BATCHES: u64 = 4096;

/// Largest submission count and queue depth [`host_makespan`] takes as given (larger ones
/// are this: the schedule is the same, and the kernel indices stay within `u64`).
const HOST_MAX_COUNT: u64 = 1 << 40;

/// Back-to-back kernels of one device: the first ends at `end`, each of the `count` takes the
/// device's kernel time.
#[derive(Clone, Copy, Debug)]
struct Run {
    end: f64,
    count: u64,
}

/// One device's kernels in submission order, as runs, and a cursor for the completion-time
/// lookups (their indices only grow).
struct Timeline {
    runs: Vec<Run>,
    /// Kernels submitted.
    submitted: u64,
    /// Kernel time.
    each: f64,
    /// Cursor: run index and the kernel index it starts at.
    at: (usize, u64),
}

impl Timeline {
    /// The completion time of kernel `i` (submitted) and how many kernels from `i` on
    /// complete back to back with it.
    fn done(&mut self, i: u64) -> (f64, u64) {
        let (mut r, mut first) = self.at;
        while first + self.runs[r].count <= i {
            first += self.runs[r].count;
            r += 1;
        }
        self.at = (r, first);
        let run = self.runs[r];
        (run.end + (i - first) as f64 * self.each, first + run.count - i)
    }
    /// Submits `count` kernels that start back to back at `start`, `busy` being when the
    /// device's last kernel ends (they join its run when they start then); their last end.
    fn push(&mut self, start: f64, busy: f64, count: u64) -> f64 {
        match self.runs.last_mut() {
            Some(last) if start == busy => last.count += count,
            _ => self.runs.push(Run {
                end: start + self.each,
                count,
            }),
        }
        self.submitted += count;
        start + count as f64 * self.each
    }
    /// Whether run `r` is the device's last.
    fn is_last(&self, r: usize) -> bool {
        r + 1 == self.runs.len()
    }
}

/// Makespan of `m` micro-batches through `u.len()` stages when one host thread submits them
/// ([`HostQueue`]): micro-batch by micro-batch, stage by stage, stage `s` as `k[s]` equal
/// kernels taking `u[s]` together, into one queue per device that holds `depth` submissions
/// (a submission to a full queue waits until the device retires its oldest kernel). A stage
/// starts a micro-batch when the hand-off from the stage before it (`h[s - 1]`, on the link
/// between them, one at a time) has arrived. With queues deep enough this is [`pipelined`];
/// a stage whose micro-batch fills its queue holds the thread until the stage before it
/// finishes, and the next micro-batch reaches the first device only then.
///
/// Kernels that start back to back are kept as runs: a submission's kernels chain from their
/// first start until a lookup of the kernel `depth` places back (the one whose completion
/// frees the queue slot) crosses a gap in that device's timeline, so the schedule costs a few
/// steps per submission, not one per kernel.
fn host_makespan(u: &[f64], h: &[f64], k: &[u64], depth: u64, m: u64) -> f64 {
    let pp = u.len();
    let depth = depth.clamp(1, HOST_MAX_COUNT);
    let k: Vec<u64> = k.iter().map(|n| (*n).clamp(1, HOST_MAX_COUNT)).collect();
    let mut lines: Vec<Timeline> = (0..pp)
        .map(|s| Timeline {
            runs: Vec::new(),
            submitted: 0,
            each: u[s] / k[s] as f64,
            at: (0, 0),
        })
        .collect();
    let mut device_free = vec![0.0f64; pp];
    let mut link_free = vec![0.0f64; pp];
    let mut host = 0.0f64;
    let (mut end, mut step) = (0.0f64, 0.0f64);
    let scheduled = m.min(HOST_MICRO_BATCHES);
    for _ in 0..scheduled {
        let mut arrived = 0.0f64;
        for s in 0..pp {
            let line = &mut lines[s];
            let n = k[s];
            let q0 = line.submitted;
            let mut j = 0;
            while j < n {
                let idx = q0 + j;
                let first = if j == 0 { arrived } else { 0.0 };
                if idx < depth {
                    // the queue has room for these without waiting
                    let count = (depth - idx).min(n - j);
                    let start = device_free[s].max(host).max(first);
                    device_free[s] = line.push(start, device_free[s], count);
                    j += count;
                } else {
                    // each waits for the kernel `depth` places back; within one of its runs
                    // those complete a kernel time apart, as these then run
                    let (freed, run) = line.done(idx - depth);
                    let start = device_free[s].max(host).max(freed).max(first);
                    // in the device's last run, and these join it: the kernels they wait for
                    // are earlier ones of the same run, all of them
                    let joins = start == device_free[s] && line.is_last(line.at.0);
                    let count = if joins { n - j } else { run.min(n - j) };
                    device_free[s] = line.push(start, device_free[s], count);
                    host = host.max(freed + (count - 1) as f64 * line.each);
                    j += count;
                }
            }
            let hand = link_free[s].max(device_free[s]);
            link_free[s] = hand + h.get(s).copied().unwrap_or(0.0);
            arrived = link_free[s];
        }
        step = arrived.max(end) - end;
        end = arrived.max(end);
    }
    end + (m - scheduled) as f64 * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_host_queues_keep_the_pipeline() {
        let (u, h) = ([3.0, 5.0, 4.0, 2.0], [0.5, 0.25, 1.0, 0.0]);
        for m in [1, 2, 4, 9] {
            let got = host_makespan(&u, &h, &[40, 50, 60, 30], 1_000_000, m);
            let want = pipelined(&u, &h, m as f64);
            assert!((got - want).abs() < 1e-9 * want, "m {m}: {got} against {want}");
        }
    }

    #[test]
    fn a_stage_that_fills_its_queue_loses_the_overlap() {
        let (u, h) = ([1.0; 4], [0.0; 4]);
        let m = 4;
        let serial = 4.0 * m as f64;
        let fits = host_makespan(&u, &h, &[860; 4], 1000, m);
        let fills = host_makespan(&u, &h, &[1003; 4], 1000, m);
        // below the depth the stages overlap (queues a little short of two micro-batches
        // delay some: between the ideal 7 and serial 16)
        assert!(
            fits < 0.6 * serial && fits >= pipelined(&u, &h, m as f64) - 1e-9,
            "{fits}"
        );
        // above it each stage waits for the one before: close to one stage after another
        assert!(fills > 0.8 * serial && fills <= serial + 1e-9, "{fills}");
        // a deeper queue is never slower
        let mut last = f64::INFINITY;
        for depth in [200, 500, 900, 1003, 1500, 2100, 5000] {
            let t = host_makespan(&u, &h, &[1003; 4], depth, m);
            assert!(t <= last + 1e-9, "depth {depth}: {t} after {last}");
            last = t;
        }
    }

    #[test]
    fn huge_counts_and_many_micro_batches_stay_cheap() {
        let u = [1.0, 1.0];
        let t = host_makespan(&u, &[0.0, 0.0], &[u64::MAX, u64::MAX], u64::MAX, 1 << 24);
        assert!(t.is_finite() && t > 0.0);
        let t = host_makespan(&u, &[0.0, 0.0], &[u64::MAX, u64::MAX], 1000, 1 << 24);
        assert!(t.is_finite() && t > 0.0);
        // beyond the micro-batches scheduled one by one, each adds the steady state's step
        let (k, q) = ([1003, 1003, 1003], 1000);
        let many = host_makespan(&[1.0; 3], &[0.0; 3], &k, q, HOST_MICRO_BATCHES + 10);
        let slow = kernel_by_kernel(&[1.0; 3], &[0.0; 3], &k, q, HOST_MICRO_BATCHES + 10);
        assert!((many - slow).abs() <= 1e-6 * slow, "{many} against {slow}");
    }
    /// [`host_makespan`] kernel by kernel: the definition the runs must reproduce.
    fn kernel_by_kernel(u: &[f64], h: &[f64], k: &[u64], depth: u64, m: u64) -> f64 {
        let pp = u.len();
        let depth = depth.max(1) as usize;
        let mut done: Vec<Vec<f64>> = vec![Vec::new(); pp];
        let (mut device_free, mut link_free) = (vec![0.0f64; pp], vec![0.0f64; pp]);
        let (mut host, mut end) = (0.0f64, 0.0f64);
        for _ in 0..m {
            let mut arrived = 0.0f64;
            for s in 0..pp {
                let n = k[s].max(1) as usize;
                let each = u[s] / n as f64;
                for j in 0..n {
                    let queued = done[s].len();
                    if queued >= depth {
                        host = host.max(done[s][queued - depth]);
                    }
                    let mut start = device_free[s].max(host);
                    if j == 0 {
                        start = start.max(arrived);
                    }
                    device_free[s] = start + each;
                    done[s].push(device_free[s]);
                }
                link_free[s] = link_free[s].max(device_free[s]) + h[s];
                arrived = link_free[s];
            }
            end = end.max(arrived);
        }
        end
    }

    proptest::proptest! {
        #[test]
        fn runs_reproduce_the_kernel_by_kernel_schedule(
            stages in proptest::collection::vec((0.1f64..5.0, 0.0f64..1.0, 1u64..300), 1..6),
            depth in 1u64..700,
            m in 1u64..7,
        ) {
            let u: Vec<f64> = stages.iter().map(|s| s.0).collect();
            let h: Vec<f64> = stages.iter().map(|s| s.1).collect();
            let k: Vec<u64> = stages.iter().map(|s| s.2).collect();
            let fast = host_makespan(&u, &h, &k, depth, m);
            let slow = kernel_by_kernel(&u, &h, &k, depth, m);
            proptest::prop_assert!((fast - slow).abs() <= 1e-9 * slow, "{} against {}", fast, slow);
        }
    }
}
