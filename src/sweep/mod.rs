//! The co-design sweep: enumerate a grid of architectures, cost each on a substrate, score it
//! with a quality model, and read off the loss-latency frontier and the feasible regions.

pub mod budget;
pub mod frontier;
pub mod grid;
pub mod run;
pub mod shard;
