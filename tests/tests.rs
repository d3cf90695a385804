//! The one integration-test binary; one module per area.

mod dsl;
mod model;
