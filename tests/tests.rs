//! The one integration-test binary; one module per area.

mod model;
mod sim;
mod substrate;
mod systolic;
mod validate;
