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

/// Which timing (and energy) model prices a ring design.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingTiming {
    /// The corrected model of the LLMForge authors' later code (the default): every layer
    /// priced with its own shape, KV reads shared by a group's heads, depth-scaled SRAM
    /// energy, leakage, the token-pipelined prefill at ctx = P/2.
    #[default]
    Corrected,
    /// The model behind the paper's ring table, reconstructed from the release's saved
    /// results ([`super::paper_era`]): every layer priced like the first, decode at a fixed
    /// context of 2048, a serial softmax unit, no leakage.
    PaperEra,
}

impl RingTiming {
    /// The name in files (`ring.timing`).
    pub fn name(self) -> &'static str {
        match self {
            RingTiming::Corrected => "corrected",
            RingTiming::PaperEra => "paper_era",
        }
    }
}

/// Modelling choices that are not hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingOptions {
    /// The timing model; the options below refine the corrected one (the paper-era model
    /// takes them at their [`RingOptions::corrected`] values, see [`RingOptions::validate`]).
    /// Absent in serialized options written before it existed: corrected.
    #[serde(default)]
    pub timing: RingTiming,
    pub decode_context: DecodeContext,
    pub lm_head: LmHead,
    /// Layers that do not fit on the chips stream their weights from DRAM every token
    /// instead of making the design infeasible.
    pub spill_to_dram: bool,
    /// A layer larger than one chip's WMEM may be split across k chips (ring all-reduce).
    pub tensor_parallel: bool,
}

impl RingOptions {
    /// The corrected model as the reference states it: midpoint decode, no LM head, no
    /// spill, no splitting.
    pub fn corrected() -> RingOptions {
        RingOptions {
            timing: RingTiming::Corrected,
            decode_context: DecodeContext::Midpoint,
            lm_head: LmHead::Excluded,
            spill_to_dram: false,
            tensor_parallel: false,
        }
    }

    /// The paper-era model ([`super::paper_era`]); the other options at their corrected values.
    pub fn paper_era() -> RingOptions {
        RingOptions {
            timing: RingTiming::PaperEra,
            ..RingOptions::corrected()
        }
    }

    /// The complete corrected model: exact decode average, LM head priced, spill and
    /// splitting allowed.
    pub fn extended() -> RingOptions {
        RingOptions {
            timing: RingTiming::Corrected,
            decode_context: DecodeContext::Average,
            lm_head: LmHead::Included,
            spill_to_dram: true,
            tensor_parallel: true,
        }
    }

    /// The options the paper-era model cannot honour: it decodes at its fixed context,
    /// prices no LM head and neither spills nor splits layers. Returns the first offending
    /// option's name and why; always `Ok` under the corrected timing.
    pub fn validate(&self) -> Result<(), RingError> {
        if self.timing != RingTiming::PaperEra {
            return Ok(());
        }
        let bad = |field: &'static str, what: &str| {
            Err(RingError::InvalidOptions {
                field,
                message: format!("{what} is not part of the paper-era model (ring.timing: paper_era)"),
            })
        };
        if self.decode_context != DecodeContext::Midpoint {
            return bad(
                "decode_context",
                "an exact decode average (it prices decode at a fixed context of 2048)",
            );
        }
        if self.lm_head != LmHead::Excluded {
            return bad("lm_head", "the LM head");
        }
        if self.spill_to_dram {
            return bad("spill_to_dram", "spilling to DRAM");
        }
        if self.tensor_parallel {
            return bad("tensor_parallel", "tensor parallelism");
        }
        Ok(())
    }
}
