//! Integration tests of `llmforge::search` and `llmforge search`.

mod cli;
mod hypervolume;
mod nsga2;
mod problems;
