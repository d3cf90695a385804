//! The `llmforge` binary: parse arguments into raw clap structs, turn them into validated
//! library values, call the library, render. Each subcommand lives in `src/cli/<name>.rs`
//! with a `#[derive(clap::Args)]` struct and a `run` function.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc: a search's small allocations on rayon's worker threads (Cargo.toml says why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "llmforge",
    version,
    about = "Hardware-cost simulator and architecture search for edge language models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress on standard error (long commands otherwise show a bar on a terminal, or a
    /// line every 5 s in a log).
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a model description: parameters, bytes, FLOPs.
    #[command(subcommand)]
    Model(cli::model::ModelCmd),
    /// Lower a model and phase into its operator dataflow graph.
    Graph(cli::graph::GraphArgs),
    /// List, validate and show hardware substrates.
    #[command(subcommand)]
    Substrate(cli::substrate::SubstrateCmd),
    /// Cost a model on a substrate: TTFT, TPOT, tokens/s, energy, per-op records and traces.
    Sim(cli::sim::SimArgs),
    /// Price one GEMM on any substrate: time, achieved FLOP/s, DRAM and on-chip bytes, bound,
    /// energy, and what the engine chose (tile, split, waves; cycles on an array).
    Gemm(cli::gemm::GemmArgs),
    /// Price one attention core (fused flash attention on GPUs) on any substrate.
    Attention(cli::attention::AttentionArgs),
    /// Place every op of a run on the substrate's roofline (optionally as an SVG plot).
    Roofline(cli::roofline::RooflineArgs),
    /// Multi-objective search (NSGA-II): benchmark problems or architecture spaces.
    Search(cli::search::SearchCommand),
    /// Co-design sweep over a grid: loss-latency frontier, feasible regions, budgets.
    Sweep(cli::sweep::SweepCommand),
    /// Fit, evaluate and apply parametric scaling laws (the search's loss prior).
    #[command(subcommand)]
    Law(cli::law::LawCmd),
    /// Fit, evaluate, cross-validate and query the gradient-boosted loss surrogate.
    #[command(subcommand)]
    Surrogate(cli::surrogate::SurrogateCmd),
    /// Predict every row of a measured-trace CSV and report errors per row and group.
    Validate(cli::validate::ValidateArgs),
    /// Fit a substrate's efficiencies to measured rows and write a calibrated substrate.
    Calibrate(cli::calibrate::CalibrateArgs),
    /// Write report.html for a search or sweep output directory: plots, a sortable table of
    /// the front or frontier, each design's architecture and model file (self-contained).
    Report(cli::report::ReportArgs),
    /// Cost-regression snapshots: record the costs of a cases file, check later runs.
    #[command(subcommand)]
    Snapshot(cli::snapshot::SnapshotCmd),
}

/// Rust starts with SIGPIPE ignored, so writing to a closed pipe (`llmforge sim ... | head`)
/// makes `println!` panic. A command-line tool should instead end quietly, as `cat` does.
#[cfg(unix)]
fn default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; it only sets SIGPIPE back
    // to the default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = Cli::parse();
    cli::progress::set_quiet(cli.quiet);
    // SIGINT / SIGTERM / SIGHUP: long commands finish the work in flight and write complete
    // outputs; any other command removes its unfinished temporary files and stops at once.
    if let Err(err) = llmforge::output::interrupt::install() {
        eprintln!(
            "warning: cannot handle SIGINT / SIGTERM ({err}); an interrupted run may leave temporary files"
        );
    }
    let result = match cli.command {
        Command::Model(cmd) => cli::model::run(cmd),
        Command::Graph(args) => cli::graph::run(args),
        Command::Substrate(cmd) => cli::substrate::run(cmd),
        Command::Sim(args) => cli::sim::run(args),
        Command::Gemm(args) => cli::gemm::run(args),
        Command::Attention(args) => cli::attention::run(args),
        Command::Roofline(args) => cli::roofline::run(args),
        Command::Search(args) => cli::search::run_command(args),
        Command::Sweep(args) => cli::sweep::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::Law(cmd) => cli::law::run(cmd),
        Command::Surrogate(cmd) => cli::surrogate::run(cmd),
        Command::Validate(args) => cli::validate::run(args),
        Command::Calibrate(args) => cli::calibrate::run(args),
        Command::Snapshot(cmd) => cli::snapshot::run(cmd),
    };
    if let Err(err) = &result {
        // Rendered whole, then written at once: the renderer writes piece by piece, and
        // stderr is unbuffered.
        let text = format!("{err:?}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
    }
    // an interrupted run never exits 0, even when it wrote complete outputs for what it did
    match (llmforge::output::interrupt::received(), result) {
        (Some(signal), _) => {
            eprintln!(
                "llmforge: interrupted by {}: the outputs cover only the work done before it",
                signal.name()
            );
            ExitCode::from(signal.exit_code())
        }
        (None, Ok(())) => ExitCode::SUCCESS,
        (None, Err(_)) => ExitCode::FAILURE,
    }
}
