//! Predicting a mapped case with the library's cost engine.
//!
//! Every time and energy comes from [`engine_run`], the one call into [`crate::sim`]. This
//! module only turns a measured metric into engine workloads and back, and adds what the
//! single-device engine does not see: several devices.
//!
//! # Several devices
//! A multi-device row runs on a [`System`] ([`case_system`]): its devices on a switch with the
//! hardware map's link (`link_GBps` per direction, `link_latency_us` per collective or hop;
//! the map states no link energy, so links cost none). The system path
//! ([`crate::sim::system`]) prices it as it prices `llmforge sim --system`:
//! * **Tensor parallel** (vLLM, TensorRT-LLM, DeepSpeed, MLC): the model's tensor-parallel
//!   shard ([`crate::graph::parallel::shard`]) on one device, plus the Megatron collectives of
//!   every pass (an all-reduce after the embedding, the attention output and the FFN output of
//!   each block; a gather of the logits), each through the switch at
//!   `latency + 2 (N - 1) / N x bytes / link_bw` (Patarasuk and Yuan, *Bandwidth optimal
//!   all-reduce algorithms*, JPDC 2009).
//! * **Layer split** (llama.cpp, ExLlamaV2): `N` pipeline stages of contiguous layers; at
//!   batch 1 a token visits them in turn, plus `N - 1` hand-offs of `tokens x d_model`
//!   activations over the link. A stack that pipelines prompts (llama.cpp since PR #6017,
//!   March 2024: a prompt is cut into batches of `nbatch` tokens, each into micro-batches of
//!   `ubatch` tokens that flow through the devices one behind the other) runs the prompt as
//!   `u = ceil(min(P, nbatch) / ubatch)` micro-batches through the stages. A stack that states
//!   its host launch queues (llama.cpp: one thread submits every device's work into CUDA
//!   queues of about 1,000 launches) has the micro-batches scheduled through them
//!   ([`crate::system::HostQueue`]): a stage whose micro-batch fills its queue loses the
//!   overlap.
//!
//! # Micro-batched prompts
//! A stack that cuts a prompt into micro-batches of `ubatch` tokens (llama.cpp: `n_ubatch`,
//! 512 by default) runs one forward pass per micro-batch: every pass re-reads the weights,
//! relaunches every kernel and pays the per-pass overhead. The engine prices a prompt as one
//! pass, so each further micro-batch adds the engine's cost of a one-token pass (weights,
//! launches, per-pass overhead: the part of a pass that does not grow with its tokens). The
//! attention of micro-batch `i` over the `i * ubatch` earlier keys is the causal attention the
//! one-pass prompt already counts.

use super::mapping::{Case, MultiDevice, Target};
use crate::model::{Model, Precisions};
use crate::substrate::Substrate;
use crate::system::{Interconnect, Placement, System, Topology};
use crate::units::{BytesPerSec, Seconds};
use serde::Serialize;

pub use crate::sim::Engine;

/// What the engine gives for one workload (one device).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct EngineOut {
    /// Prefill pass time (s).
    pub prefill: f64,
    /// Sum of the decode-step times (s).
    pub decode: f64,
    pub prefill_energy: f64,
    pub decode_energy: f64,
}

/// The one call into the cost engine: prefill of `prompt` tokens then `gen` decode steps for
/// `batch` sequences. `prompt` and `gen` are at least 1 (the callers make sure).
pub fn engine_run(
    model: &Model,
    sub: &Substrate,
    prompt: u64,
    generate: u64,
    batch: u64,
    engine: Engine,
) -> EngineOut {
    let w = crate::sim::Workload {
        prompt: prompt.max(1),
        generate: generate.max(1),
        batch: batch.max(1),
    };
    let s = crate::sim::summary(model, sub, w, engine);
    EngineOut {
        prefill: s.prefill.time.get(),
        decode: s.decode.time.get(),
        prefill_energy: s.prefill_energy_j,
        decode_energy: s.decode_energy_j,
    }
}

/// A prediction for one row, with its parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Prediction {
    /// The predicted value, in SI (as [`Case::measured`]).
    pub value: f64,
    /// Prefill time per pass, communication included (s); 0 when the metric has none.
    pub prefill_s: f64,
    /// Decode time over the steps the metric covers, communication included (s).
    pub decode_s: f64,
    /// Of which inter-device communication (s).
    pub comm_s: f64,
    /// Energy of one device over the run (J).
    pub energy_j: f64,
}

/// The model with the case's formats.
pub fn with_formats(model: &Model, case: &Case) -> Model {
    let mut m = model.clone();
    m.precision = Precisions {
        weights: case.formats.weights,
        activations: case.formats.activations,
        kv_cache: case.formats.kv_cache,
    };
    m
}

/// One tensor-parallel shard of `model` over `n` devices (the one definition is
/// [`crate::graph::parallel::shard`]).
pub use crate::graph::parallel::shard;

/// The system a case runs on: one device, or its devices on a switch with the hardware map's
/// link, placed as its stack places a model (tensor parallel, or a layer split pipelining
/// `u` micro-batches of a prompt when the stack does).
pub fn case_system(case: &Case, sub: &Substrate) -> System {
    let n = case.devices.max(1);
    let (Some(bw), Some(latency)) = (case.link_bw, case.link_latency) else {
        // the mapping refuses several devices without a link
        return System::single(sub.clone());
    };
    if n <= 1 {
        return System::single(sub.clone());
    }
    let placement = match case.multi {
        MultiDevice::Tensor => Placement { tp: n, pp: 1 },
        MultiDevice::Layer => Placement { tp: 1, pp: n },
    };
    let micro_batches = match (case.multi, case.pipeline) {
        (MultiDevice::Layer, Some((ubatch, nbatch))) => {
            case.prompt.min(nbatch).div_ceil(ubatch.max(1)).max(1)
        }
        _ => 1,
    };
    System {
        name: format!("{n}x {}", sub.name),
        description: String::new(),
        device: sub.clone(),
        count: n,
        interconnect: Some(Interconnect {
            topology: Topology::Switch,
            bandwidth: BytesPerSec::new(bw),
            links: 1,
            latency: Seconds::new(latency),
            energy_per_byte: 0.0,
        }),
        placement,
        micro_batches,
        host: case.host,
    }
}

/// Predicts one case: `model` is the preset with the case's formats, `sub` the substrate of
/// one device (efficiencies as the caller wants them).
pub fn predict(case: &Case, model: &Model, sub: &Substrate, engine: Engine) -> Prediction {
    let sys = case_system(case, sub);
    let b = case.batch;
    let (p, g) = (case.prompt, case.generate);
    // The engine always runs a prefill and at least one decode step; take the parts asked for.
    let (engine_prompt, engine_gen) = match case.target {
        Target::DecodeRate | Target::Tpot => (p.max(1), g),
        Target::PrefillRate | Target::PrefillTime => (p, 1),
        // The first token comes from the prefill; gen - 1 decode steps follow it.
        _ => (p, g.saturating_sub(1).max(1)),
    };
    let w = crate::sim::Workload {
        prompt: engine_prompt.max(1),
        generate: engine_gen.max(1),
        batch: b.max(1),
    };
    let run = crate::sim::system::totals(model, &sys, w, engine);
    // one device of each stage (one tensor-parallel rank): the energy the engine gives
    let out = EngineOut {
        prefill: run.summary.prefill.time.get(),
        decode: run.summary.decode.time.get(),
        prefill_energy: run.rank_energy_prefill_j,
        decode_energy: run.rank_energy_decode_j,
    };
    // Micro-batched prompts: one extra pass's fixed cost per further micro-batch, through
    // the pipeline as the prompt's own compute.
    let extra_passes = match case.pipeline {
        Some((ubatch, _)) if ubatch > 0 => (b * p).div_ceil(ubatch).saturating_sub(1),
        _ => 0,
    };
    let (extra_s, extra_j) = if extra_passes > 0 {
        let one = engine_run(&shard(model, sys.placement.tp), sub, 1, 1, 1, engine);
        let n = extra_passes as f64;
        (one.prefill * n, one.prefill_energy * n)
    } else {
        (0.0, 0.0)
    };
    let comm_prefill = run.prefill_comm_s;
    let comm_step = run.decode_comm_s / w.generate as f64;
    let prefill = out.prefill + extra_s * run.pipeline_factor;
    let out = EngineOut {
        prefill_energy: out.prefill_energy + extra_j,
        ..out
    };
    let decode_steps = match case.target {
        Target::DecodeRate | Target::Tpot => g,
        _ => g.saturating_sub(1),
    };
    let decode = if decode_steps == 0 { 0.0 } else { out.decode };
    let n = case.devices.max(1) as f64;
    let (value, prefill_s, decode_s, comm_s, energy) = match case.target {
        Target::DecodeRate => (
            (b * g) as f64 / decode,
            0.0,
            decode,
            comm_step * g as f64,
            out.decode_energy,
        ),
        Target::Tpot => (
            decode / g as f64,
            0.0,
            decode,
            comm_step * g as f64,
            out.decode_energy,
        ),
        Target::PrefillRate => (
            (b * p) as f64 / prefill,
            prefill,
            0.0,
            comm_prefill,
            out.prefill_energy,
        ),
        Target::PrefillTime => (prefill, prefill, 0.0, comm_prefill, out.prefill_energy),
        Target::E2eTime
        | Target::OutputThroughput
        | Target::OutputThroughputPerDevice
        | Target::AvgPowerPerDevice
        | Target::JoulesPerToken => {
            let total = prefill + decode;
            let energy = out.prefill_energy + if decode_steps == 0 { 0.0 } else { out.decode_energy };
            let comm = comm_prefill + comm_step * decode_steps as f64;
            let v = match case.target {
                Target::E2eTime => total,
                Target::OutputThroughput => (b * g) as f64 / total,
                Target::OutputThroughputPerDevice => (b * g) as f64 / total / n,
                Target::AvgPowerPerDevice => energy / total,
                _ => energy * n / (b * g) as f64,
            };
            (v, prefill, decode, comm, energy)
        }
    };
    Prediction {
        value,
        prefill_s,
        decode_s,
        comm_s,
        energy_j: energy,
    }
}
