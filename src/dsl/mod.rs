//! The description language: unit-carrying expressions used inside every YAML description.
//!
//! Every number in a substrate, model or search-space file is a string in this language:
//!
//! ```text
//! bandwidth: "204.8 GB/s"        clock: "1.5 GHz"          sram: "512 KiB"
//! energy:    "0.2 pJ/bit"        macs:  "16 * 16"          width: "4 B/cycle"
//! link:      "clock * 4 B/cycle" mid:   "(a + b) / 2"      lines: "2^10"
//! d_model:   "64..=512 step 32"  heads: "{16, 32, 64}"     smem:  "{24 KB, 48 KB}"
//! ```
//!
//! The full grammar, the precedence table, every unit spelling with its dimension and factor,
//! and example errors are in `dsl/README.md` (its examples are checked by the test suite).
//!
//! # Using it
//!
//! ```
//! use llmforge::dsl::{self, Quantity, Value};
//! use llmforge::units::{Bytes, BytesPerSec, Hertz};
//!
//! // No names: `dsl::no_names` as the environment.
//! let sram: Bytes = dsl::parse("512 KiB")?.eval_as(&dsl::no_names)?;
//! assert_eq!(sram.get(), 524_288.0);
//!
//! // Names resolve through a callback (a sibling field, another component...).
//! let clock = Quantity::from(Hertz::ghz(1.5));
//! let env = |name: &str| (name == "clock").then_some(clock);
//! let link: BytesPerSec = dsl::parse("clock * 4 B/cycle")?.eval_as(&env)?;
//! assert_eq!(link.get(), 6e9);
//!
//! // Search spaces: ranges and sets expand to candidates.
//! let widths: Vec<u64> = dsl::parse("64..=256 step 64")?.eval_candidates(&dsl::no_names)?;
//! assert_eq!(widths, [64, 128, 192, 256]);
//! assert!(matches!(dsl::eval_str("{24 KB, 48 KB}", &dsl::no_names)?, Value::Set(_)));
//! # Ok::<(), dsl::DslError>(())
//! ```
//!
//! * [`parse`] turns text into an [`Expr`] (a syntax tree that keeps its text for error
//!   spans); [`Expr::eval`] gives a [`Value`]: a [`Quantity`] (`f64` in base units plus a
//!   [`Dim`]), a [`Range`] or a set. [`eval_str`] does both.
//! * Typed results: [`Expr::eval_as`] / [`Quantity::to`] convert into the newtypes of
//!   [`crate::units`] (`Bytes`, `BytesPerSec`, `Hertz`...), `f64` (a plain number) or `u64` (a
//!   whole number), checking the dimension. Shorthands: [`Quantity::to_bytes`],
//!   [`Quantity::to_bytes_per_sec`], [`Quantity::to_bytes_per_cycle`], [`Quantity::to_hertz`],
//!   [`Quantity::to_seconds`], [`Quantity::to_joules`], [`Quantity::to_watts`],
//!   [`Quantity::to_flops_per_sec`], [`Quantity::to_area`], [`Quantity::to_count`],
//!   [`Quantity::to_integer`]; [`Quantity::in_dim`] for dimensions without a newtype
//!   (`pJ/B`). A bare number where a unit is required is an error: "expected a quantity in
//!   bytes such as `512 KiB`, found the bare number 512".
//! * [`Value::candidates`] expands ranges and sets; [`Expr::eval_candidates`] also converts.
//! * [`Expr::references`] lists the names used, so a caller can order sibling fields and
//!   report cycles. Names are letters, digits and `_`, with `.` between parts
//!   (`dram.bandwidth`).
//! * The `Display` of an [`Expr`] is canonical text that parses back to an equal tree.
//!
//! # Decisions
//!
//! * Units are case-sensitive (`mW` is a milliwatt; `MW` is rejected). Decimal prefixes
//!   (`kB` = 1e3 B, `MB`, `GB`, `TB`, `PB`) and binary ones (`KiB` = 1024 B, `MiB`, `GiB`,
//!   `TiB`, `PiB`) are distinct. `KB` is accepted as **decimal** (1e3 B), like `kB`: the
//!   binary spelling `KiB` exists, so a file that means 1024 must say `KiB`.
//! * `FLOP` and `OP` share one dimension (operations); `FLOPS`/`TFLOPS`/`TOPS` are rates
//!   (per second); `MAC` is 2 FLOP. `FLOPs` is rejected as ambiguous.
//! * `bit` is 1/8 B (so `pJ/bit` is energy per byte times 8); `b` is not a unit.
//! * `%` is 0.01 (dimensionless). `cycle` (or `cycles`) is its own dimension and `Hz` is
//!   `cycle/s` (a clock counts cycles per second), mirroring [`crate::units`]:
//!   `clock * 4 B/cycle` is a bandwidth, `1000 cycle / clock` a time, `clock * 20 ns` a cycle
//!   count. `B/cycle` never silently becomes `B/s`, and `clock * 4 B` is not a bandwidth
//!   (its help says to write `B/cycle`). A bare period inverts to `1/s`, not Hz.
//! * A unit after an operand binds tighter than `*` and `/` but looser than `^`:
//!   `2^10 B` is 1024 B, `1 / 2 s` is 0.5/s. After a unit, `/` continues the unit only when a
//!   unit follows (`4 B/cycle`); otherwise it divides (`1 GB / n`).
//! * Every evaluation error is an error: division by zero, overflow, NaN, adding unlike
//!   dimensions, unknown names. Nothing defaults silently.
//!
//! # Errors
//!
//! [`DslError`] is a [`miette::Diagnostic`]: the expression is its source code, the first
//! label points at the offending token (a second and third may point at the operands),
//! `help` suggests a fix, and [`DslError::kind`] classifies it ([`DslErrorKind`]). Spans are
//! byte ranges of the expression; [`crate::yaml`] re-bases them onto the enclosing file.

mod error;
mod expr;
mod parser;
mod units;

pub use error::{DslError, DslErrorKind, Span};
pub use expr::{BinOp, Expr, Node, NodeKind, Range, Step, StepNode, Top, UnitExpr, UnitTerm, Value};
pub use parser::{MAX_NESTING, MAX_NODES, parse};
pub use units::{BASE_SYMBOLS, Dim, FromQuantity, N_BASE, Quantity, UnitDef, lookup_unit, unit_table};

/// The most values a range may expand to.
pub const MAX_CANDIDATES: usize = 1 << 20;

/// An environment with no names: every reference is an unknown name.
pub fn no_names(_name: &str) -> Option<Quantity> {
    None
}

/// The shortest text of a number that parses back to the same `f64` (`1e-6`, `204.8`, `16`).
pub fn format_number(v: f64) -> String {
    expr::fmt_number(v)
}

/// Parses and evaluates in one step.
pub fn eval_str(src: &str, env: &dyn Fn(&str) -> Option<Quantity>) -> Result<Value, DslError> {
    parse(src)?.eval(env)
}

#[cfg(test)]
mod tests;
