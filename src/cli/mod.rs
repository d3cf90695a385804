//! One module per subcommand. Each has a clap `Args`/`Subcommand` type and `run`, returning
//! `miette::Result<()>` so located diagnostics render with their source.

pub mod calibrate;
pub mod graph;
pub mod model;
pub mod substrate;
pub mod validate;
