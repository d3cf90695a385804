//! One module per subcommand. Each has a clap `Args`/`Subcommand` type and `run`, returning
//! `miette::Result<()>` so located diagnostics render with their source.

pub mod attention;
pub mod calibrate;
pub mod gemm;
pub mod graph;
pub mod kernels;
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

/// The loss objective's source, shared by `search --space` and `sweep`.
#[derive(clap::Args, Clone, Debug)]
pub struct QualityArgs {
    /// Quality model: `chinchilla` (the published Hoffmann fit), a law file from
    /// `llmforge law fit`, or a surrogate file from `llmforge surrogate fit`.
    #[arg(long, default_value = "chinchilla")]
    pub quality: String,
    /// Training tokens per parameter the scaling laws assume (20 = compute-optimal).
    #[arg(long, default_value_t = 20.0)]
    pub tokens_per_param: f64,
}

impl QualityArgs {
    /// Loads the quality model these arguments name.
    pub fn load(&self) -> miette::Result<Box<dyn llmforge::quality::LossModel>> {
        llmforge::quality::load_loss_model(&self.quality, self.tokens_per_param)
            .map_err(|e| miette::miette!("--quality: {e}"))
    }
}
