//! The one integration-test binary; one module per area.

mod model;
mod ring;
mod search;
mod substrate;
mod systolic;
