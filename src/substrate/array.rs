//! The organisation of a systolic array that a substrate file names: its dataflow, its
//! timing mode and its on-chip buffers. Descriptions only; the cost model that prices them
//! is `sim::systolic`.

use crate::units::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A dataflow or timing-mode name that is not one of the known spellings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArrayError {
    #[error("unknown dataflow `{0}`: expected one of os, ws, is")]
    UnknownDataflow(String),
    #[error("unknown systolic mode `{0}`: expected scalesim or overlapped")]
    UnknownMode(String),
}

/// Which operand stays in the PEs while the others stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataflow {
    /// Output stationary: each PE accumulates one output over the whole reduction.
    Os,
    /// Weight (filter) stationary.
    Ws,
    /// Input (ifmap) stationary.
    Is,
}

impl Dataflow {
    pub const ALL: [Dataflow; 3] = [Dataflow::Os, Dataflow::Ws, Dataflow::Is];

    /// SCALE-Sim's spelling: `os`, `ws`, `is`.
    pub fn name(self) -> &'static str {
        match self {
            Dataflow::Os => "os",
            Dataflow::Ws => "ws",
            Dataflow::Is => "is",
        }
    }
}

impl fmt::Display for Dataflow {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataflow {
    type Err = ArrayError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "os" => Ok(Dataflow::Os),
            "ws" => Ok(Dataflow::Ws),
            "is" => Ok(Dataflow::Is),
            _ => Err(ArrayError::UnknownDataflow(s.to_string())),
        }
    }
}

/// Timing model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// SCALE-Sim v3 compatible: serialised folds, its SRAM policy and traffic counts.
    ScaleSim,
    /// Double-buffered folds and an SRAM tiling chosen to minimise DRAM traffic.
    Overlapped,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::ScaleSim => "scalesim",
            Mode::Overlapped => "overlapped",
        }
    }
}

impl fmt::Display for Mode {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = ArrayError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalesim" | "scale-sim" | "scale_sim" => Ok(Mode::ScaleSim),
            "overlapped" => Ok(Mode::Overlapped),
            _ => Err(ArrayError::UnknownMode(s.to_string())),
        }
    }
}

/// On-chip buffer organisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Buffers {
    /// SCALE-Sim's three SRAMs.
    Split {
        ifmap: Bytes,
        filter: Bytes,
        ofmap: Bytes,
    },
    /// One scratchpad for both operands (split in halves) and an accumulator for outputs
    /// (Gemmini's organisation).
    Shared { operands: Bytes, accumulator: Bytes },
    /// One global buffer: 3/8 ifmap, 3/8 filter, 1/4 ofmap.
    Unified(Bytes),
}

impl Buffers {
    /// Bytes given to (ifmap, filter, ofmap).
    #[inline]
    pub fn split_bytes(&self) -> (f64, f64, f64) {
        match *self {
            Buffers::Split { ifmap, filter, ofmap } => (ifmap.get(), filter.get(), ofmap.get()),
            Buffers::Shared {
                operands,
                accumulator,
            } => (operands.get() / 2.0, operands.get() / 2.0, accumulator.get()),
            Buffers::Unified(total) => {
                let t = total.get();
                (t * 0.375, t * 0.375, t * 0.25)
            }
        }
    }

    /// Every buffer scaled by `f`.
    #[inline]
    pub fn scaled(&self, f: f64) -> Buffers {
        match *self {
            Buffers::Split { ifmap, filter, ofmap } => Buffers::Split {
                ifmap: ifmap * f,
                filter: filter * f,
                ofmap: ofmap * f,
            },
            Buffers::Shared {
                operands,
                accumulator,
            } => Buffers::Shared {
                operands: operands * f,
                accumulator: accumulator * f,
            },
            Buffers::Unified(t) => Buffers::Unified(t * f),
        }
    }
}
