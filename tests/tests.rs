//! The one integration-test binary; one module per area.

mod dsl;
mod hostile;
mod law;
mod model;
mod report;
mod ring;
mod search;
mod sim;
mod snapshot;
mod substrate;
mod surrogate;
mod sweep;
mod systolic;
mod validate;
