//! What the ring is asked to run (prompt, generated tokens, users). The modelling choices
//! that are not hardware (decode context, LM head, spilling, tensor parallelism) are
//! [`RingOptions`](crate::substrate::ring_spec::RingOptions), part of the substrate file.

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
