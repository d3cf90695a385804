//! The one integration-test binary; one module per area.

mod cluster;
mod dsl;
mod hostile;
mod law;
mod model;
mod progress;
mod report;
mod ring;
mod search;
mod sim;
mod snapshot;
mod substrate;
mod surrogate;
mod sweep;
mod system;
mod systolic;
mod validate;
