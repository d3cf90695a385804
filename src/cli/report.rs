//! `llmforge report <DIR>`: one self-contained `report.html` for a search or sweep output
//! directory (plots, a sortable table of the front or frontier with units, each design's
//! architecture and model file). Also written by `search --report` and `sweep --report`.

use clap::Args;
use llmforge::trace::report::Report;
use miette::IntoDiagnostic;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ReportArgs {
    /// An output directory of `llmforge search --out` or `llmforge sweep --out`.
    pub dir: PathBuf,
}

pub fn run(args: ReportArgs) -> miette::Result<()> {
    let path = write(&args.dir)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Writes `<dir>/report.html`, returning its path.
pub fn write(dir: &Path) -> miette::Result<PathBuf> {
    Report::from_dir(dir)
        .into_diagnostic()?
        .write(dir)
        .into_diagnostic()
}
