//! The one integration-test binary; one module per area.

mod dsl;
mod model;
mod ring;
mod substrate;
mod systolic;
