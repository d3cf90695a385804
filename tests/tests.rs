//! The one integration-test binary; one module per area.

mod dsl;
mod model;
mod ring;
mod search;
mod sim;
mod substrate;
mod sweep;
mod systolic;
mod validate;
