//! One module per subcommand. Each has a clap `Args`/`Subcommand` type and `run`, returning
//! `miette::Result<()>` so located diagnostics render with their source.

pub mod attention;
pub mod calibrate;
pub mod gemm;
pub mod graph;
pub mod kernels;
pub mod law;
pub mod model;
pub mod progress;
pub mod report;
pub mod roofline;
pub mod search;
pub mod search_arch;
pub mod search_front;
pub mod search_merge;
pub mod sim;
pub mod snapshot;
pub mod substrate;
pub mod surrogate;
pub mod sweep;
pub mod validate;

/// Registers an input description named by `flag`: a file by its path, a shipped name by its
/// embedded text (for the manifest's hash).
pub fn register_description(
    plan: &mut llmforge::output::Outputs,
    flag: &str,
    spec: &str,
    shipped: &[(&str, &'static str)],
    dir: &str,
    kind: &str,
) -> miette::Result<()> {
    if std::path::Path::new(spec).is_file() {
        plan.input(flag, spec);
    } else {
        let file = llmforge::yaml::shipped_or_file(spec, shipped, dir, kind)?;
        plan.shipped(flag, spec, file.text());
    }
    Ok(())
}

/// Writes one output file atomically (see `llmforge::output`).
pub fn write_output(path: &std::path::Path, text: &str) -> miette::Result<()> {
    use miette::IntoDiagnostic;
    llmforge::output::write_atomic(path, text.as_bytes()).into_diagnostic()
}

/// The loss objective's source, shared by `search --space` and `sweep`. The defaults are
/// applied by the accessors, so `search --resume` can tell a flag given from one left out.
#[derive(clap::Args, Clone, Debug)]
pub struct QualityArgs {
    /// Quality model: `auto` (the shipped surrogate llmforge-200m for candidates inside its
    /// training domain, the Chinchilla prior for the rest; both counted and flagged in the
    /// results), `chinchilla` (the published Hoffmann fit), a shipped surrogate's name
    /// (`llmforge-200m`: every candidate, those outside its domain flagged), a law file from
    /// `llmforge law fit`, or a surrogate file from `llmforge surrogate fit` [default: auto].
    #[arg(long)]
    pub quality: Option<String>,
    /// Training tokens per parameter the scaling laws assume (20 = compute-optimal) [default:
    /// 20].
    #[arg(long)]
    pub tokens_per_param: Option<f64>,
}

impl QualityArgs {
    pub const DEFAULT_QUALITY: &str = "auto";
    pub const DEFAULT_TOKENS_PER_PARAM: f64 = 20.0;

    /// The quality model's name or file.
    pub fn spec(&self) -> &str {
        self.quality.as_deref().unwrap_or(Self::DEFAULT_QUALITY)
    }

    pub fn tokens_per_param(&self) -> f64 {
        self.tokens_per_param.unwrap_or(Self::DEFAULT_TOKENS_PER_PARAM)
    }
}

/// Loads a quality model by name or file.
pub fn load_quality(
    spec: &str,
    tokens_per_param: f64,
) -> miette::Result<Box<dyn llmforge::quality::LossModel>> {
    llmforge::quality::load_loss_model(spec, tokens_per_param).map_err(|e| miette::miette!("--quality: {e}"))
}

/// The manifest of a finished run directory of `llmforge <command>`, for merges: refused,
/// naming the directory, when it is not a run directory (`what`: "a sweep's"), holds another
/// command's results, or is still running or interrupted (`again`: how to finish it, e.g.
/// "run that shard again (with --force)").
pub fn finished_run(
    path: &std::path::Path,
    command: &str,
    what: &str,
    again: &str,
) -> miette::Result<llmforge::output::Manifest> {
    use llmforge::output::{self, Status};
    use miette::IntoDiagnostic;
    let name = path.display();
    let manifest_path = path.join(output::MANIFEST);
    if !manifest_path.is_file() {
        return Err(miette::miette!(
            "`{name}` is not {what} run directory: it has no {}",
            output::MANIFEST
        ));
    }
    let manifest: output::Manifest = output::load_json(&manifest_path, "run manifest").into_diagnostic()?;
    if manifest.subcommand() != command {
        return Err(miette::miette!(
            "`{name}` holds the results of `llmforge {}`, not of `llmforge {command}`",
            manifest.command.join(" ")
        ));
    }
    match manifest.status {
        Status::Complete => Ok(manifest),
        Status::Running => Err(miette::miette!(
            "`{name}` is still running, or was stopped by an error or a kill (its manifest says `running`): {again} before merging"
        )),
        Status::Interrupted => Err(miette::miette!(
            "`{name}` was interrupted: its outputs cover only part of its work; {again} before merging"
        )),
    }
}
