//! Predicting a mapped case with the library's cost engine.
//!
//! Every time and energy comes from [`engine_run`], the one call into [`crate::sim`]. This
//! module only turns a measured metric into engine workloads and back, and adds what the
//! single-device engine does not see: several devices.
//!
//! # Several devices
//! * **Tensor parallel** (vLLM, TensorRT-LLM, DeepSpeed, MLC): every layer's heads, KV groups
//!   and FFN width, and the vocabulary of the embedding and LM head, are split over the `N`
//!   devices (Shoeybi et al., *Megatron-LM*, 2019, section 3); the engine prices one shard on
//!   one device. Each layer then all-reduces its attention output and its FFN output (two
//!   all-reduces per layer and pass, Megatron-LM section 3), each of `tokens x d_model`
//!   activations, priced as a ring all-reduce: `latency + 2 (N - 1) / N * bytes / link_bw`
//!   (Patarasuk and Yuan, *Bandwidth optimal all-reduce algorithms*, JPDC 2009). When
//!   `N` does not divide the KV groups, KV heads are replicated (as vLLM does).
//! * **Layer split** (llama.cpp, ExLlamaV2): each device holds a range of whole layers; at
//!   batch 1 a token visits them in turn, so the pass takes as long as the whole model on one
//!   device, plus `N - 1` hops of `tokens x d_model` activations over the link. A stack that
//!   pipelines prompts (llama.cpp since PR #6017, March 2024: a prompt is cut into batches of
//!   `nbatch` tokens, each into micro-batches of `ubatch` tokens that flow through the devices
//!   one behind the other) runs a batch of `u` micro-batches in `(u + N - 1) / (u N)` of the
//!   single-device time: `u + N - 1` pipeline stages of one micro-batch on one device's share
//!   of the layers.
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
use crate::model::{Ffn, Model, Precisions};
use crate::substrate::Substrate;
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

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// One tensor-parallel shard of `model` over `n` devices.
pub fn shard(model: &Model, n: u64) -> Model {
    if n <= 1 {
        return model.clone();
    }
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

/// Communication time of one pass over `tokens` tokens (s).
fn comm_per_pass(model: &Model, case: &Case, tokens: u64) -> f64 {
    let n = case.devices;
    if n <= 1 {
        return 0.0;
    }
    let (Some(bw), Some(lat)) = (case.link_bw, case.link_latency) else {
        return 0.0;
    };
    // The all-reduce and the layer hand-off run in the stack's float type (fp16 or wider),
    // whatever format the GEMMs take their inputs in (fp8, int8).
    let bytes = tokens as f64 * model.d_model as f64 * model.precision.activations.bytes().max(2.0);
    match case.multi {
        MultiDevice::Tensor => {
            let per = lat + 2.0 * (n - 1) as f64 / n as f64 * bytes / bw;
            2.0 * model.n_layers() as f64 * per
        }
        MultiDevice::Layer => (n - 1) as f64 * (lat + bytes / bw),
    }
}

/// Fraction of the single-device prefill time a pipelined layer split takes (1 otherwise).
fn pipeline_factor(case: &Case) -> f64 {
    match (case.multi, case.pipeline) {
        (MultiDevice::Layer, Some((ubatch, nbatch))) if case.devices > 1 => {
            let n = case.devices as f64;
            let u = case.prompt.min(nbatch).div_ceil(ubatch).max(1) as f64;
            (u + n - 1.0) / (u * n)
        }
        _ => 1.0,
    }
}

/// Predicts one case: `model` is the preset with the case's formats, `sub` the substrate of
/// one device (efficiencies as the caller wants them).
pub fn predict(case: &Case, model: &Model, sub: &Substrate, engine: Engine) -> Prediction {
    let run_model = match case.multi {
        MultiDevice::Tensor if case.devices > 1 => shard(model, case.devices),
        _ => model.clone(),
    };
    let b = case.batch;
    let (p, g) = (case.prompt, case.generate);
    // The engine always runs a prefill and at least one decode step; take the parts asked for.
    let (engine_prompt, engine_gen) = match case.target {
        Target::DecodeRate | Target::Tpot => (p.max(1), g),
        Target::PrefillRate | Target::PrefillTime => (p, 1),
        // The first token comes from the prefill; gen - 1 decode steps follow it.
        _ => (p, g.saturating_sub(1).max(1)),
    };
    let out = engine_run(&run_model, sub, engine_prompt, engine_gen, b, engine);
    // Micro-batched prompts: one extra pass's fixed cost per further micro-batch.
    let extra_passes = match case.pipeline {
        Some((ubatch, _)) if ubatch > 0 => (b * p).div_ceil(ubatch).saturating_sub(1),
        _ => 0,
    };
    let (extra_s, extra_j) = if extra_passes > 0 {
        let one = engine_run(&run_model, sub, 1, 1, 1, engine);
        let n = extra_passes as f64;
        (one.prefill * n, one.prefill_energy * n)
    } else {
        (0.0, 0.0)
    };
    let comm_prefill = comm_per_pass(model, case, b * p.max(1));
    let comm_step = comm_per_pass(model, case, b);
    let prefill = (out.prefill + extra_s) * pipeline_factor(case) + comm_prefill;
    let out = EngineOut {
        prefill_energy: out.prefill_energy + extra_j,
        ..out
    };
    let decode_steps = match case.target {
        Target::DecodeRate | Target::Tpot => g,
        _ => g.saturating_sub(1),
    };
    let decode = if decode_steps == 0 {
        0.0
    } else {
        out.decode + comm_step * decode_steps as f64
    };
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
