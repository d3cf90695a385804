//! The number formats of a model's tensors: re-exported from [`crate::numeric`], the neutral
//! module that substrates share.

pub use crate::numeric::{
    ComputeClass, GgufFormat, ParsePrecisionError, ParsePrecisionError as PrecisionError, Precision,
    Precisions,
};
