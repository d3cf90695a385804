//! The one integration-test binary; one module per area.

mod model;
mod ring;
mod substrate;
mod systolic;
