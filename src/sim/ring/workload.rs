//! What the ring is asked to run (prompt, generated tokens, users) and the modelling choices
//! that are not hardware (decode context, LM head, spilling, tensor parallelism).

use super::RingError;
use serde::{Deserialize, Serialize};

/// One request shape: `users` concurrent requests, each with a `prompt`-token prompt and
/// `decode` generated tokens after the prefill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingWorkload {
    prompt: u64,
    decode: u64,
    users: u64,
}

impl RingWorkload {
    pub fn new(prompt: u64, decode: u64, users: u64) -> Result<RingWorkload, RingError> {
        for (field, v) in [("prompt", prompt), ("decode", decode), ("users", users)] {
            if v == 0 {
                return Err(RingError::InvalidWorkload {
                    field,
                    message: "must be at least 1".into(),
                });
            }
        }
        if prompt.checked_add(decode).is_none_or(|c| c > (1 << 40)) {
            return Err(RingError::InvalidWorkload {
                field: "prompt",
                message: format!("prompt + decode = {prompt} + {decode} is too large"),
            });
        }
        if users > (1 << 20) {
            return Err(RingError::InvalidWorkload {
                field: "users",
                message: format!("at most 1048576 users, got {users}"),
            });
        }
        Ok(RingWorkload {
            prompt,
            decode,
            users,
        })
    }

    /// The paper's workload: prompt 256, 256 generated tokens, one user.
    pub fn llmforge_paper() -> RingWorkload {
        RingWorkload {
            prompt: 256,
            decode: 256,
            users: 1,
        }
    }

    pub fn prompt(&self) -> u64 {
        self.prompt
    }
    pub fn decode(&self) -> u64 {
        self.decode
    }
    pub fn users(&self) -> u64 {
        self.users
    }
    /// Context the token-pipelined prefill prices every prompt token at: P/2 (at least 1).
    pub fn prefill_context(&self) -> u64 {
        (self.prompt / 2).max(1)
    }
    /// Longest context held in the KV cache: P + D.
    pub fn max_context(&self) -> u64 {
        self.prompt + self.decode
    }
}

/// The context length a decode step is priced at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeContext {
    /// One step at ctx = P + D/2 (integer division): the paper-comparable form, the decode
    /// analogue of the prefill's P/2.
    Midpoint,
    /// The exact mean over the D steps, step j (1..=D) attending over ctx = P + j.
    Average,
}

/// Whether the LM head (and the embedding lookup) is priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LmHead {
    /// Not priced, as in the paper's ring model.
    Excluded,
    /// The LM head is one more "layer" after the last block (V*d INT8 weights, one GEMM
    /// d -> V on whichever chip the packing puts it), plus a final norm and one d-byte
    /// embedding row read from DRAM per token.
    Included,
}

/// Modelling choices that are not hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingOptions {
    pub decode_context: DecodeContext,
    pub lm_head: LmHead,
    /// Layers that do not fit on the chips stream their weights from DRAM every token
    /// instead of making the design infeasible.
    pub spill_to_dram: bool,
    /// A layer larger than one chip's WMEM may be split across k chips (ring all-reduce).
    pub tensor_parallel: bool,
}

impl RingOptions {
    /// Exactly the paper's model: midpoint decode, no LM head, no spill, no splitting.
    pub fn paper() -> RingOptions {
        RingOptions {
            decode_context: DecodeContext::Midpoint,
            lm_head: LmHead::Excluded,
            spill_to_dram: false,
            tensor_parallel: false,
        }
    }

    /// The complete model: exact decode average, LM head priced, spill and splitting allowed.
    pub fn extended() -> RingOptions {
        RingOptions {
            decode_context: DecodeContext::Average,
            lm_head: LmHead::Included,
            spill_to_dram: true,
            tensor_parallel: true,
        }
    }
}
