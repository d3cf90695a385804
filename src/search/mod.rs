//! Multi-objective search (NSGA-II) over architecture spaces.
//!
//! [`nsga2`] is a generic engine over any [`nsga2::Problem`] with a typed genome (ask/tell,
//! parallel cached evaluation, checkpoint/resume); [`hypervolume`] measures fronts;
//! [`problems`] holds the standard benchmarks (ZDT1-3, DTLZ2) the engine is verified on;
//! [`history`] records per-generation hypervolume and front size. Checkpoints and result
//! files are written through [`crate::output`].

pub mod arch;
pub mod history;
pub mod hypervolume;
pub mod nsga2;
pub mod problems;
pub mod space;
