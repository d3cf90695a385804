//! One module per subcommand. Each has a clap `Args`/`Subcommand` type and `run`, returning
//! `miette::Result<()>` so located diagnostics render with their source.

pub mod graph;
pub mod model;
pub mod search;
pub mod search_arch;
pub mod substrate;
pub mod sweep;
