//! Multi-objective search (NSGA-II) over architecture spaces.

pub mod hypervolume;
pub mod nsga2;
pub mod problems;
pub mod space;
