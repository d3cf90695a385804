//! llmforge: a hardware-cost simulator with an architecture-search front end for edge
//! language models.
//!
//! The data flows one way: a [`model`] (per-layer Infinite-Head Attention, dense GQA or MoE,
//! at some precision) is lowered into an operator [`graph`] for one phase (prefill of P tokens
//! or one decode step at context C); the graph is mapped onto a [`substrate`] (GPU, systolic
//! array, multi-chip ring) and costed by [`sim`] (cycle-approximate events, or the roofline
//! bound); `trace` renders the results and [`output`] writes every file (atomically, checked,
//! cleaned up when interrupted). [`search`] drives that pipeline over a space of
//! architectures, with [`quality`] models (gradient-boosted surrogate, fitted scaling laws)
//! supplying the loss objective. Values in every YAML description are written in the small
//! unit-carrying expression language of [`dsl`]. See ARCHITECTURE.md.

// Located errors carry their source text for rendering; they are the cold path, so their size
// in `Result` does not matter.
#![allow(clippy::result_large_err)]

pub mod dsl;
pub mod graph;
pub mod input;
pub mod limits;
pub mod model;
pub mod numeric;
pub mod output;
pub mod packed;
pub mod progress;
pub mod provenance;
pub mod quality;
pub mod search;
pub mod sim;
pub mod snapshot;
pub mod substrate;
pub mod sweep;
pub mod system;
pub mod trace;
pub mod units;
pub mod validate;
pub mod yaml;
