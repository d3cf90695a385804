//! Quality models: the loss objective of the search.
//!
//! [`law`] fits parametric scaling laws; [`surrogate`] learns loss from architecture with
//! gradient-boosted trees. The surrogate only ranks candidates.

pub mod law;
pub mod surrogate;
