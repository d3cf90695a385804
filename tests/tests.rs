//! The one integration-test binary; one module per area.

mod model;
mod substrate;
mod systolic;
mod sim;
