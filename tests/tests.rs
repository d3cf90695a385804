//! The one integration-test binary; one module per area.

mod dsl;
mod law;
mod model;
mod outputs;
mod ring;
mod search;
mod sim;
mod substrate;
mod surrogate;
mod sweep;
mod systolic;
mod validate;
