//! The one integration-test binary; one module per area.

mod model;
mod substrate;
mod surrogate;
mod systolic;
