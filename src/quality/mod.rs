//! Quality models: the loss objective of the search.
//!
//! [`dataset`] reads the LLMForge surrogate CSV; [`law`] fits parametric scaling laws; [`surrogate`] learns loss from architecture with
//! gradient-boosted trees. The surrogate only ranks candidates.

pub mod dataset;
pub mod law;
pub mod surrogate;
