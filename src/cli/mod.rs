//! One module per subcommand. Each has a clap `Args`/`Subcommand` type and `run`, returning
//! `miette::Result<()>` so located diagnostics render with their source.

pub mod calibrate;
pub mod gemm;
pub mod graph;
pub mod law;
pub mod model;
pub mod roofline;
pub mod search;
pub mod search_arch;
pub mod sim;
pub mod substrate;
pub mod surrogate;
pub mod sweep;
pub mod validate;
