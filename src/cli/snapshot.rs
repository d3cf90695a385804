//! `llmforge snapshot record|check`: cost-regression snapshots of a cases file.

use clap::{Args, Subcommand, ValueEnum};
use llmforge::output::{Outputs, write_atomic};
use llmforge::snapshot::{self, Cases, Snapshot};
use llmforge::trace;
use miette::IntoDiagnostic;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum SnapshotCmd {
    /// Cost every case of a cases file and write the snapshot (metrics and provenance).
    Record(RecordArgs),
    /// Cost every case again and compare with a baseline snapshot: exit 1 when a metric
    /// moved outside its tolerance, or a case was added or removed.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct RecordArgs {
    /// The cases file (format: dsl/SNAPSHOTS.md).
    #[arg(long)]
    pub cases: PathBuf,
    /// The snapshot file to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The cases file (format: dsl/SNAPSHOTS.md).
    #[arg(long)]
    pub cases: PathBuf,
    /// The snapshot recorded earlier.
    #[arg(long)]
    pub baseline: PathBuf,
    /// Relative tolerance of every metric, overriding the cases file (`2%` or `0.02`);
    /// absolute tolerances stay.
    #[arg(long, value_name = "REL")]
    pub tol: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// After reporting, rewrite the baseline with the new record (new cases added, removed
    /// ones dropped) and exit 0.
    #[arg(long)]
    pub update: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

pub fn run(cmd: SnapshotCmd) -> miette::Result<()> {
    match cmd {
        SnapshotCmd::Record(args) => {
            let cases = Cases::load(&args.cases)?;
            Outputs::new()
                .input("--cases", &args.cases)
                .inputs("--cases (a file it names)", &cases.files)
                .file("--out", Some(&args.out))
                .check()
                .into_diagnostic()?;
            let snap = snapshot::record(&cases);
            save(&args.out, &snap)?;
            eprintln!("recorded {} cases to {}", snap.cases.len(), args.out.display());
            Ok(())
        }
        SnapshotCmd::Check(args) => check(args),
    }
}

/// Every snapshot file this command writes goes through here (atomically).
fn save(path: &Path, snap: &Snapshot) -> miette::Result<()> {
    write_atomic(path, trace::snapshot::yaml(snap).as_bytes()).into_diagnostic()
}

/// `--tol`: a relative tolerance, `2%` or `0.02`.
fn parse_tolerance(text: &str) -> miette::Result<f64> {
    let value = llmforge::dsl::parse(text)
        .and_then(|e| e.eval_as::<f64>(&llmforge::dsl::no_names))
        .map_err(|e| miette::miette!("--tol `{text}`: {e}"))?;
    if !(value.is_finite() && value >= 0.0) {
        miette::bail!("--tol `{text}`: a tolerance must be finite and at least 0");
    }
    Ok(value)
}

fn check(args: CheckArgs) -> miette::Result<()> {
    let mut cases = Cases::load(&args.cases)?;
    if let Some(t) = &args.tol {
        cases.set_relative_tolerance(parse_tolerance(t)?);
    }
    let baseline = Snapshot::read(&args.baseline)?;
    let current = snapshot::record(&cases);
    let report = snapshot::compare(&cases, &baseline, &current);
    let text = match args.format {
        Format::Text => trace::snapshot::report_text(&report, &args.baseline.display().to_string()),
        Format::Markdown => trace::snapshot::report_markdown(&report, args.update),
        Format::Json => trace::snapshot::report_json(&report, &current, args.update).into_diagnostic()?,
    };
    print!("{text}");
    if args.update {
        save(&args.baseline, &current)?;
        eprintln!(
            "updated {} ({} cases)",
            args.baseline.display(),
            current.cases.len()
        );
        return Ok(());
    }
    if !report.passes(false) {
        miette::bail!(
            "cost snapshot check failed: {}",
            trace::snapshot::summary_line(&report)
        );
    }
    Ok(())
}
