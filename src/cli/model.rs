//! `llmforge model ...`

use clap::Subcommand;

#[derive(Subcommand)]
pub enum ModelCmd {
    /// Print a model's parameter, byte and FLOP accounting.
    Show {
        /// A preset name (see `llmforge model list`) or a path to a model file.
        model: String,
    },
}

pub fn run(cmd: ModelCmd) -> miette::Result<()> {
    match cmd {
        ModelCmd::Show { model } => {
            println!("{model}: (in progress)");
            Ok(())
        }
    }
}
