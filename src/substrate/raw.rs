//! Substrate files as written, overrides, and validation into [`Substrate`].
//!
//! Every value is a [`crate::yaml::Expression`]; a value may refer to any field evaluated
//! before it by its dotted path (`"clock * 4 B"`, `"dram.read * 2"`), or by the name of a
//! sibling in the same section. `--set path=expr` replaces the expression at `path` before
//! evaluation; an unknown path is an error that lists the valid ones. Every problem in the
//! file is collected and reported together, each with its line and column.

use super::cosearch::{RawCoSearch, cosearch};
use super::ring::{RawRing, ring};
use super::{Buffers, Dataflow, Mode};
use super::{
    DesignEnvelope, Efficiency, Gpu, GpuEnergy, GpuKernel, Kind, Substrate, Systolic, SystolicEnergy,
};
use crate::dsl::{Dim, FromQuantity, Quantity};
use crate::numeric::{ComputeClass, Precision};
use crate::units::{
    Bytes, BytesPerCycle, BytesPerSec, Cycles, FlopsPerSec, Hertz, Joules, Seconds, SquareMeters, Watts,
};
use crate::yaml::{
    DescError, DescErrors, Diagnostics, Expression, Loc, Located, SourceFile, shipped, shipped_or_file,
};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// (name, YAML source) of every shipped substrate (`substrates/*.yaml`).
pub const SHIPPED: &[(&str, &str)] = shipped!(
    "substrates",
    [
        "jetson-agx-orin-64gb",
        "jetson-orin-nano-super",
        "a100-sxm4-40gb",
        "h100-sxm",
        "rtx-4090",
        "apple-m2-ultra",
        "gemmini",
        "eyeriss",
        "flat-edge",
        "scalesim-8x8",
        "scalesim-32x32",
        "scalesim-128x128",
        "ring-edge",
        "ring-edge-cosearch",
        "ring-edge-paper",
        "a100-sxm4-80gb",
        "a100-pcie-80gb",
        "h100-pcie",
        "h200-sxm",
        "gh200-96gb",
        "l40s",
        "rtx-3070",
        "rtx-3080-10gb",
        "rtx-3080-ti",
        "rtx-3090",
        "rtx-3090-ti",
        "rtx-4070-ti",
        "rtx-4080",
        "rtx-a6000",
        "a40",
        "rtx-6000-ada",
        "rtx-5000-ada",
        "rtx-4000-ada",
        "apple-m1",
        "apple-m1-max",
        "apple-m3-max",
        "mi300x",
        "mi250-gcd",
        "mi210",
        "max-1550",
        "max-1550-stack",
        "gaudi2",
        "b200",
        "mi355x",
        "mi350x",
        "mi308x",
        "v100-sxm2",
        "t4",
        "p100",
        "l4",
    ]
);

/// The names of the shipped substrates.
pub fn names() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(n, _)| *n)
}

/// One `--set path=expression` override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub path: String,
    pub expr: String,
}

/// Parses `path=expression` strings. A path given twice is an error (which value would
/// win is not obvious).
pub fn parse_overrides(items: &[String]) -> Result<Vec<Override>, String> {
    let mut out: Vec<Override> = Vec::with_capacity(items.len());
    for s in items {
        let o = match s.split_once('=') {
            Some((p, e)) if !p.trim().is_empty() && !e.trim().is_empty() => Override {
                path: p.trim().to_string(),
                expr: e.trim().trim_matches('"').to_string(),
            },
            _ => {
                return Err(format!(
                    "--set `{}`: expected path=expression, e.g. dram.read=\"8 B/cycle\"",
                    crate::yaml::clipped(s, 80)
                ));
            }
        };
        if let Some(first) = out.iter().find(|x| x.path == o.path) {
            return Err(format!(
                "--set {}: the field is set twice (`{}` and `{}`); give each field once",
                o.path,
                crate::yaml::clipped(&first.expr, 60),
                crate::yaml::clipped(&o.expr, 60)
            ));
        }
        out.push(o);
    }
    Ok(out)
}

/// The physical range every substrate value of a type must lie in, beyond its field's own
/// check ("positive", "a fraction"), so that no value (`clock: "1e-300 Hz"`) makes a time,
/// rate or energy infinite or NaN downstream. Generous: orders of magnitude past any chip.
pub(super) trait Physical: Copy {
    /// (lowest, highest, unit shown with the value, the range in words).
    const RANGE: Option<(f64, f64, &'static str, &'static str)>;
    fn magnitude(self) -> f64;
}

macro_rules! physical {
    ($ty:ty, $lo:expr, $hi:expr, $unit:literal, $words:literal) => {
        impl Physical for $ty {
            const RANGE: Option<(f64, f64, &'static str, &'static str)> = Some(($lo, $hi, $unit, $words));
            fn magnitude(self) -> f64 {
                self.get()
            }
        }
    };
}

physical!(Hertz, 1e3, 1e12, "Hz", "a clock must be between 1 kHz and 1 THz");
physical!(
    BytesPerSec,
    1e3,
    1e16,
    "B/s",
    "a bandwidth must be between 1 kB/s and 10 PB/s"
);
physical!(
    BytesPerCycle,
    1e-6,
    1e9,
    "B/cycle",
    "a width must be between 1e-6 and 1e9 B/cycle"
);
physical!(Bytes, 0.0, 1e18, "B", "a size must be at most 1 EB");
physical!(
    FlopsPerSec,
    1e3,
    1e21,
    "FLOP/s",
    "a throughput must be between 1 kFLOP/s and 1 ZFLOP/s"
);
physical!(Watts, 0.0, 1e7, "W", "a power must be at most 10 MW");
physical!(
    Joules,
    0.0,
    1e-3,
    "J",
    "an energy per operation must be at most 1 mJ"
);
physical!(Seconds, 0.0, 1e3, "s", "a time must be at most 1000 s");
physical!(
    Cycles,
    0.0,
    1e12,
    "cycles",
    "a latency must be at most 1e12 cycles"
);
physical!(SquareMeters, 0.0, 1.0, "m^2", "an area must be at most 1 m^2");

impl Physical for f64 {
    const RANGE: Option<(f64, f64, &'static str, &'static str)> =
        Some((-1e12, 1e12, "", "a plain number must be within 1e12"));
    fn magnitude(self) -> f64 {
        self
    }
}

impl Physical for u64 {
    const RANGE: Option<(f64, f64, &'static str, &'static str)> =
        Some((0.0, 16_777_216.0, "", "a count must be at most 16,777,216"));
    fn magnitude(self) -> f64 {
        self as f64
    }
}

/// `Some(message)` when `v` lies outside its type's physical range (or is not finite).
fn physical_error<T: Physical>(path: &str, v: T) -> Option<String> {
    let (lo, hi, unit, words) = T::RANGE?;
    let x = v.magnitude();
    if x.is_finite() && x >= lo && x <= hi {
        return None;
    }
    let shown = if unit.is_empty() {
        format!("{x:e}")
    } else {
        format!("{x:e} {unit}")
    };
    Some(format!("`{path}` is {shown}; {words}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEfficiency {
    compute: Expression,
    memory: Expression,
    kernel_overhead: Expression,
    token_overhead: Expression,
    #[serde(default)]
    quantised_compute: Option<Expression>,
    #[serde(default)]
    score_bytes: Option<Expression>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGpu {
    name: Located<String>,
    #[serde(default)]
    description: String,
    #[allow(dead_code)]
    kind: Located<String>,
    clock: Expression,
    sms: Expression,
    matrix_peak: Located<BTreeMap<String, Expression>>,
    vector_peak: Expression,
    memory: RawGpuMemory,
    l2: RawL2,
    tile: RawTile,
    #[serde(default)]
    kernel: Option<RawGpuKernel>,
    efficiency: RawEfficiency,
    energy: RawGpuEnergy,
    envelope: Option<RawEnvelope>,
    cosearch: Option<RawCoSearch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpuMemory {
    bandwidth: Expression,
    capacity: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawL2 {
    size: Expression,
    bandwidth: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTile {
    rows: Expression,
    cols: Expression,
}

/// `kernel:` of a GPU file: every field optional ([`GpuKernel::DEFAULT`]).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGpuKernel {
    tile_cycles: Option<Expression>,
    step_cycles: Option<Expression>,
    operand_bandwidth: Option<Expression>,
    l2_reuse: Option<Expression>,
    sm_bandwidth: Option<Expression>,
    overlap: Option<Expression>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpuEnergy {
    matrix_flop: Expression,
    vector_flop: Expression,
    dram_byte: Expression,
    l2_byte: Expression,
    static_power: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSystolic {
    name: Located<String>,
    #[serde(default)]
    description: String,
    #[allow(dead_code)]
    kind: Located<String>,
    clock: Expression,
    array: RawArray,
    sram: RawSram,
    dram: RawDram,
    vector: RawVector,
    efficiency: RawEfficiency,
    energy: RawSystolicEnergy,
    envelope: Option<RawEnvelope>,
    cosearch: Option<RawCoSearch>,
}

/// `envelope: {area: "800 mm^2", power: "100 W"}`: the limits a co-search point must meet.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvelope {
    pub area: Option<Expression>,
    pub power: Option<Expression>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArray {
    rows: Expression,
    cols: Expression,
    dataflow: Located<String>,
    mode: Located<String>,
    /// Operand types the MACs take natively: `[int8]`.
    precisions: Option<Located<Vec<Located<String>>>>,
    /// Formats the array quantises to its narrowest native type: `[bf16, fp16]`.
    quantise: Option<Located<Vec<Located<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSram {
    ifmap: Option<Expression>,
    filter: Option<Expression>,
    ofmap: Option<Expression>,
    unified: Option<Expression>,
    /// One scratchpad shared by both operands (Gemmini), with the accumulator for outputs.
    operands: Option<Expression>,
    accumulator: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDram {
    read: Expression,
    write: Expression,
    capacity: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVector {
    ops_per_cycle: Expression,
    /// Vector operations per stored byte of weights dequantised (default 1: unpack the byte's
    /// codes and apply their scale in one lane operation).
    #[serde(default)]
    dequantise_ops: Option<Expression>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystolicEnergy {
    mac: Expression,
    sram_byte: Expression,
    dram_byte: Expression,
    vector_op: Expression,
    leakage: Expression,
}

/// An error about an override's value, located in its `--set` text.
fn cli_error(o: &Override, message: String, label: &str, help: Option<String>) -> DescError {
    let cli = SourceFile::new(format!("--set {}", o.path), o.expr.clone());
    let at = Loc {
        line: 1,
        column: 1,
        offset: 0,
        len: o.expr.len(),
    };
    cli.error(at, message, label, help)
}

/// Evaluation state: the file, the overrides (and which were used), the values evaluated so
/// far (for references), and the errors.
pub(super) struct Ctx<'a> {
    pub file: &'a SourceFile,
    pub overrides: &'a [Override],
    used: RefCell<Vec<bool>>,
    values: RefCell<BTreeMap<String, Quantity>>,
    diags: RefCell<Diagnostics>,
    paths: RefCell<Vec<String>>,
    words: RefCell<Vec<String>>,
    /// Evaluating one co-search point: the `cosearch` section is skipped.
    pub point: bool,
    /// The point's values (field path, value), resolved and type-checked when the grid was
    /// read: they replace the fields' expressions without any parsing.
    point_values: &'a [(String, Quantity)],
    /// The parsed file being evaluated (kept by a co-search for its points).
    pub parsed: &'a Arc<RawFile>,
}

impl<'a> Ctx<'a> {
    fn new(
        file: &'a SourceFile,
        parsed: &'a Arc<RawFile>,
        overrides: &'a [Override],
        point_values: &'a [(String, Quantity)],
    ) -> Self {
        Ctx {
            file,
            overrides,
            used: RefCell::new(vec![false; overrides.len()]),
            values: RefCell::new(BTreeMap::new()),
            diags: RefCell::new(file.diagnostics()),
            paths: RefCell::new(Vec::new()),
            words: RefCell::new(Vec::new()),
            point: false,
            point_values,
            parsed,
        }
    }

    /// The co-search point's value of `path`, if the point sets it.
    fn point_value(&self, path: &str) -> Option<Quantity> {
        self.point_values.iter().find(|(p, _)| p == path).map(|(_, q)| *q)
    }

    pub fn push(&self, e: DescError) {
        self.diags.borrow_mut().push(e);
    }

    /// Whether an override names `path` (without marking it used).
    pub fn has_override(&self, path: &str) -> bool {
        self.overrides.iter().any(|o| o.path == path)
    }

    /// The overrides whose path starts with `prefix`, marked used, in command-line order.
    pub fn overrides_under(&self, prefix: &str) -> Vec<&'a Override> {
        let mut used = self.used.borrow_mut();
        self.overrides
            .iter()
            .enumerate()
            .filter(|(_, o)| o.path.starts_with(prefix))
            .map(|(i, o)| {
                used[i] = true;
                o
            })
            .collect()
    }

    /// The value evaluated at `path`, if it was evaluated without error.
    pub fn value_at(&self, path: &str) -> Option<Quantity> {
        self.values.borrow().get(path).copied()
    }

    /// Whether `path` is a word field (`ws`, `midpoint`).
    pub fn is_word(&self, path: &str) -> bool {
        self.words.borrow().iter().any(|p| p == path)
    }

    /// Every field path visited so far.
    pub fn visited(&self) -> Vec<String> {
        self.paths.borrow().clone()
    }

    /// The override for `path`, if any (marking it used).
    pub fn override_for(&self, path: &str) -> Option<&'a Override> {
        self.paths.borrow_mut().push(path.to_string());
        let i = self.overrides.iter().position(|o| o.path == path)?;
        self.used.borrow_mut()[i] = true;
        Some(&self.overrides[i])
    }

    /// Evaluates the quantity at `path`: the override if given, else the file's expression.
    /// An override may name the field itself (`--set clock=clock*2`): the name then stands for
    /// the file's value of the field.
    fn quantity(&self, path: &str, expr: &Expression) -> Option<Quantity> {
        if let Some(q) = self.point_value(path) {
            // a co-search point: the grid's value, checked against the field when the grid
            // was read; later fields that name this one see it
            self.paths.borrow_mut().push(path.to_string());
            self.values.borrow_mut().insert(path.to_string(), q);
            return Some(q);
        }
        let section = path.rsplit_once('.').map_or("", |(s, _)| s);
        let field = path.rsplit_once('.').map_or(path, |(_, f)| f);
        let mut values = self.values.borrow().clone();
        let result = match self.override_for(path) {
            Some(o) => {
                let cli = SourceFile::new(format!("--set {}", o.path), o.expr.clone());
                let over = Expression::new(&o.expr);
                let refs = over.references();
                if refs.iter().any(|r| *r == path || *r == field) && !values.contains_key(path) {
                    // The file's own value of the field, when the file gives one.
                    let own = {
                        let values = values.clone();
                        let env = move |name: &str| -> Option<Quantity> {
                            values
                                .get(name)
                                .copied()
                                .or_else(|| values.get(&format!("{section}.{name}")).copied())
                        };
                        (expr.loc().is_known() || !expr.text().is_empty())
                            .then(|| expr.eval_scalar(self.file, &env).ok())
                            .flatten()
                    };
                    if let Some(q) = own {
                        values.insert(path.to_string(), q);
                    }
                }
                let env = move |name: &str| -> Option<Quantity> {
                    values
                        .get(name)
                        .copied()
                        .or_else(|| values.get(&format!("{section}.{name}")).copied())
                };
                Expression::new(&o.expr).eval_scalar(&cli, &env).map_err(|e| {
                    if matches!(e.kind(), crate::yaml::DescErrorKind::Expression(crate::dsl::DslErrorKind::UnknownName { .. })) {
                        e.with_help(format!(
                            "a --set value may name fields evaluated before `{path}` in the file, and `{field}` itself for the file's value of it (e.g. --set {path}=\"{field} * 2\"); write a quantity such as \"8 B/cycle\" otherwise"
                        ))
                    } else {
                        e
                    }
                })
            }
            None => {
                let env = move |name: &str| -> Option<Quantity> {
                    values
                        .get(name)
                        .copied()
                        .or_else(|| values.get(&format!("{section}.{name}")).copied())
                };
                expr.eval_scalar(self.file, &env)
            }
        };
        match result {
            Ok(q) => {
                self.values.borrow_mut().insert(path.to_string(), q);
                Some(q)
            }
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    fn loc_of(expr: &Expression) -> Loc {
        expr.loc()
    }

    /// A typed value at `path`, checked with `valid` (a message when invalid) and against its
    /// type's physical range ([`Physical`]).
    pub fn get<T: FromQuantity + Copy + Physical>(
        &self,
        path: &str,
        expr: &Expression,
        valid: impl Fn(T) -> Option<&'static str>,
    ) -> Option<T> {
        let q = self.quantity(path, expr)?;
        match q.to::<T>() {
            Ok(v) => match valid(v) {
                None => match physical_error(path, v) {
                    None => Some(v),
                    Some(msg) => {
                        self.push(self.error_at(path, expr, msg, "out of range", None));
                        None
                    }
                },
                Some(msg) => {
                    self.push(self.error_at(path, expr, format!("`{path}` {msg}"), "invalid value", None));
                    None
                }
            },
            Err(e) => {
                let help = self
                    .conversion(path, expr, q, &e)
                    .or_else(|| e.help_text().map(str::to_string));
                self.push(self.error_at(path, expr, format!("`{path}`: {e}"), "wrong dimension", help));
                None
            }
        }
    }

    /// For a per-second value where a per-cycle one is expected (or the reverse), the
    /// conversion through the file's clock: `"51.2 GB/s / clock"`, with the number it gives.
    fn conversion(
        &self,
        path: &str,
        expr: &Expression,
        q: Quantity,
        e: &crate::dsl::DslError,
    ) -> Option<String> {
        let crate::dsl::DslErrorKind::WrongDimension { expected, found, .. } = e.kind() else {
            return None;
        };
        let (clock_path, clock) = ["clock", "chip.clock"]
            .iter()
            .find_map(|p| Some((*p, self.value_at(p)?.in_dim(Dim::HERTZ).ok()?)))?;
        let text = match self.overrides.iter().find(|o| o.path == path) {
            Some(o) => o.expr.clone(),
            None => expr.text().to_string(),
        };
        let value = q.in_dim(*found).ok()?;
        let ghz = crate::dsl::format_number(clock / 1e9);
        let num = |x: f64| crate::dsl::format_number((x * 1e4).round() / 1e4);
        if expected.checked_mul(Dim::HERTZ) == Some(*found) {
            Some(format!(
                "`{path}` is per clock cycle: write `\"{text} / {clock_path}\"` ({} {expected} at this file's {ghz} GHz clock)",
                num(value / clock)
            ))
        } else if expected.checked_div(Dim::HERTZ) == Some(*found) {
            Some(format!(
                "`{path}` is per second: write `\"{text} * {clock_path}\"` ({} {expected} at this file's {ghz} GHz clock)",
                num(value * clock)
            ))
        } else {
            None
        }
    }

    /// An error about the value at `path`: at its expression in the file, or, for a field the
    /// file leaves out and an override gives, at the `--set` text.
    fn error_at(
        &self,
        path: &str,
        expr: &Expression,
        message: String,
        label: &str,
        help: Option<String>,
    ) -> DescError {
        match self.overrides.iter().find(|o| o.path == path) {
            // A value given by --set is wrong at the --set text, not at the file's line.
            Some(o) => {
                let help = help.or_else(|| Some(format!("the value comes from --set {}={}", o.path, o.expr)));
                cli_error(o, message, label, help)
            }
            None => self.file.error(Self::loc_of(expr), message, label, help),
        }
    }

    /// A value in a dimension without a newtype (energy per byte: `pJ/B`).
    /// The physical range is 0 to 1 uJ per unit (a FLOP, a byte): real chips spend pJ.
    pub fn get_dim(&self, path: &str, expr: &Expression, dim: Dim, example: &str) -> Option<f64> {
        let q = self.quantity(path, expr)?;
        match q.in_dim(dim) {
            Ok(v) if v.is_finite() && (0.0..=1e-6).contains(&v) => Some(v),
            Ok(v) => {
                let msg = if v.is_finite() && v > 0.0 {
                    format!("`{path}` is {v:e} J per unit; an energy per FLOP or byte must be at most 1 uJ")
                } else {
                    format!("`{path}` must be finite and non-negative")
                };
                self.push(self.error_at(path, expr, msg, "invalid value", None));
                None
            }
            Err(e) => {
                self.push(self.error_at(
                    path,
                    expr,
                    format!("`{path}`: {e}"),
                    "wrong dimension",
                    Some(format!("write it like `{example}`")),
                ));
                None
            }
        }
    }

    /// A word field (`ws`, `overlapped`) with its override.
    pub fn word<T>(
        &self,
        path: &str,
        field: &Located<String>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.words.borrow_mut().push(path.to_string());
        let text = match self.override_for(path) {
            Some(o) => o.expr.clone(),
            None => field.value.clone(),
        };
        match parse(&text) {
            Ok(v) => Some(v),
            Err(msg) => {
                let message = format!("`{path}`: {msg}");
                let e = match self.overrides.iter().find(|o| o.path == path) {
                    Some(o) => cli_error(o, message, "here", None),
                    None => self.file.error(field.loc, message, "here", None),
                };
                self.push(e);
                None
            }
        }
    }

    /// An optional word field: the file's word, else the override's, else `default`. An
    /// invalid override of a field the file leaves out is reported at the `--set` text.
    pub fn optional_word<T>(
        &self,
        path: &str,
        field: Option<&Located<String>>,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        if let Some(field) = field {
            return self.word(path, field, parse);
        }
        self.words.borrow_mut().push(path.to_string());
        let Some(o) = self.override_for(path) else {
            return Some(default);
        };
        match parse(&o.expr) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.push(cli_error(o, format!("`{path}`: {msg}"), "here", None));
                None
            }
        }
    }

    /// A list of words (`[int8, fp16]`) with its override (`--set path=int8,fp16`); `Some(vec![])`
    /// when neither the file nor an override gives it.
    pub fn word_list<T>(
        &self,
        path: &str,
        field: Option<&Located<Vec<Located<String>>>>,
        at: Loc,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        self.words.borrow_mut().push(path.to_string());
        let items: Vec<(String, Loc)> = match self.override_for(path) {
            Some(o) => o
                .expr
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|w| w.trim())
                .filter(|w| !w.is_empty())
                .map(|w| (w.to_string(), field.map_or(at, |f| f.loc)))
                .collect(),
            None => field.map_or_else(Vec::new, |f| {
                f.value.iter().map(|w| (w.value.clone(), w.loc)).collect()
            }),
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (w, loc) in items {
            match parse(&w) {
                Ok(v) => out.push(v),
                Err(msg) => {
                    self.push(self.file.error(loc, format!("`{path}`: {msg}"), "here", None));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    pub fn finish<T>(self, value: Option<T>) -> Result<T, DescErrors> {
        let unused: Vec<&Override> = self
            .overrides
            .iter()
            .zip(self.used.borrow().iter())
            .filter(|(_, u)| !**u)
            .map(|(o, _)| o)
            .collect();
        let mut diags = self.diags.into_inner();
        for o in unused {
            let paths = self.paths.borrow().join(", ");
            diags.push(self.file.error(
                Loc::UNKNOWN,
                format!("--set {}: `{}` is not a field of this substrate", o.path, o.path),
                "",
                Some(format!("fields: {paths}")),
            ));
        }
        match value {
            Some(v) => diags.finish(v),
            None => {
                // A missing value always comes with at least one error; make sure of it.
                if diags.is_empty() {
                    diags.push(
                        self.file
                            .error(Loc::UNKNOWN, "the substrate is incomplete", "", None),
                    );
                }
                match diags.finish(()) {
                    Err(errors) => Err(errors),
                    Ok(()) => unreachable!("Diagnostics::finish is Err when an error was pushed"),
                }
            }
        }
    }
}

impl Ctx<'_> {
    /// A value that the file may leave out: `Some(None)` when neither the file nor an
    /// override gives it, `None` when it is given but invalid.
    pub fn optional<T: FromQuantity + Copy + Physical>(
        &self,
        path: &str,
        expr: Option<&Expression>,
        valid: impl Fn(T) -> Option<&'static str>,
    ) -> Option<Option<T>> {
        match expr {
            Some(e) => self.get(path, e, valid).map(Some),
            None if self.has_override(path) || self.point_value(path).is_some() => {
                self.get(path, &Expression::new(""), valid).map(Some)
            }
            None => {
                // listed among the fields an unknown override could have meant
                self.paths.borrow_mut().push(path.to_string());
                Some(None)
            }
        }
    }
}

/// The `envelope` section. `area_model` says whether the kind has an area figure to limit.
pub(super) fn envelope(
    ctx: &Ctx,
    raw: Option<&RawEnvelope>,
    area_model: bool,
    at: Loc,
) -> Option<DesignEnvelope> {
    let area = ctx.optional::<SquareMeters>("envelope.area", raw.and_then(|e| e.area.as_ref()), positive);
    let power = ctx.optional::<Watts>("envelope.power", raw.and_then(|e| e.power.as_ref()), positive);
    let (area, power) = (area?, power?);
    if area.is_some() && !area_model {
        let loc = raw.and_then(|e| e.area.as_ref()).map_or(at, |e| e.loc());
        ctx.push(ctx.file.error(
            loc,
            "`envelope.area`: this kind of substrate has no area model",
            "here",
            Some("only ring substrates can be limited by area; limit `envelope.power` instead".into()),
        ));
        return None;
    }
    Some(DesignEnvelope {
        max_area: area,
        max_power: power,
    })
}

pub(super) fn positive<T: Into<f64> + Copy>(v: T) -> Option<&'static str> {
    let x: f64 = v.into();
    if x.is_finite() && x > 0.0 {
        None
    } else {
        Some("must be positive and finite")
    }
}

pub(super) fn fraction(v: f64) -> Option<&'static str> {
    if v > 0.0 && v <= 1.0 {
        None
    } else {
        Some("must be a fraction in (0, 1]")
    }
}

pub(super) fn non_negative<T: Into<f64> + Copy>(v: T) -> Option<&'static str> {
    let x: f64 = v.into();
    if x.is_finite() && x >= 0.0 {
        None
    } else {
        Some("must be non-negative and finite")
    }
}

pub(super) fn positive_int(v: u64) -> Option<&'static str> {
    if v > 0 { None } else { Some("must be at least 1") }
}

/// The check of an `efficiency.*` value given outside a substrate file (a calibration
/// overlay's `set`): the same rule as the substrate loader's, `None` for another path.
pub fn check_efficiency(path: &str, q: Quantity) -> Option<Result<(), String>> {
    fn typed<T: FromQuantity + Copy + Physical>(
        path: &str,
        q: Quantity,
        valid: impl Fn(T) -> Option<&'static str>,
    ) -> Result<(), String> {
        let v = q.to::<T>().map_err(|e| format!("`{path}`: {e}"))?;
        if let Some(m) = valid(v) {
            return Err(format!("`{path}` {m}"));
        }
        physical_error(path, v).map_or(Ok(()), Err)
    }
    Some(match path {
        "efficiency.compute" | "efficiency.memory" | "efficiency.quantised_compute" => {
            typed::<f64>(path, q, fraction)
        }
        "efficiency.kernel_overhead" | "efficiency.token_overhead" => typed::<Seconds>(path, q, non_negative),
        "efficiency.score_bytes" => typed::<Bytes>(path, q, non_negative),
        _ => return None,
    })
}

fn efficiency(ctx: &Ctx, e: &RawEfficiency) -> Option<Efficiency> {
    let compute = ctx.get::<f64>("efficiency.compute", &e.compute, fraction);
    let memory = ctx.get::<f64>("efficiency.memory", &e.memory, fraction);
    let kernel = ctx.get::<Seconds>("efficiency.kernel_overhead", &e.kernel_overhead, non_negative);
    let token = ctx.get::<Seconds>("efficiency.token_overhead", &e.token_overhead, non_negative);
    let quantised = ctx.optional::<f64>(
        "efficiency.quantised_compute",
        e.quantised_compute.as_ref(),
        fraction,
    );
    let score = ctx.optional::<Bytes>("efficiency.score_bytes", e.score_bytes.as_ref(), non_negative);
    Some(Efficiency {
        compute: compute?,
        memory: memory?,
        kernel_overhead: kernel?,
        token_overhead: token?,
        quantised_compute: quantised?.unwrap_or(1.0),
        score_bytes: score?.unwrap_or(Bytes::ZERO),
    })
}

/// `p >= 1` of the overlap norm.
fn at_least_one(v: f64) -> Option<&'static str> {
    if v.is_finite() && v >= 1.0 {
        None
    } else {
        Some("must be a finite number >= 1")
    }
}

/// The `kernel:` section of a GPU file, defaults for what it leaves out.
fn gpu_kernel(ctx: &Ctx, raw: Option<&RawGpuKernel>) -> Option<GpuKernel> {
    let empty = RawGpuKernel::default();
    let r = raw.unwrap_or(&empty);
    let d = GpuKernel::DEFAULT;
    let tile = ctx.optional::<Cycles>("kernel.tile_cycles", r.tile_cycles.as_ref(), non_negative);
    let step = ctx.optional::<Cycles>("kernel.step_cycles", r.step_cycles.as_ref(), non_negative);
    let operand =
        ctx.optional::<BytesPerCycle>("kernel.operand_bandwidth", r.operand_bandwidth.as_ref(), positive);
    let reuse = ctx.optional::<f64>("kernel.l2_reuse", r.l2_reuse.as_ref(), fraction);
    let sm_bw = ctx.optional::<BytesPerCycle>("kernel.sm_bandwidth", r.sm_bandwidth.as_ref(), positive);
    let overlap = ctx.optional::<f64>("kernel.overlap", r.overlap.as_ref(), at_least_one);
    Some(GpuKernel {
        tile_cycles: tile?.unwrap_or(d.tile_cycles),
        step_cycles: step?.unwrap_or(d.step_cycles),
        operand_bandwidth: operand?.unwrap_or(d.operand_bandwidth),
        l2_reuse: reuse?.unwrap_or(d.l2_reuse),
        sm_bandwidth: sm_bw?.unwrap_or(d.sm_bandwidth),
        overlap: overlap?.unwrap_or(d.overlap),
    })
}

/// Vector operations per stored byte of dequantised weights when a systolic file does not say:
/// one lane operation unpacks a byte's codes (two int4 codes, one Q8_0 code) and applies their
/// block scale.
pub const DEFAULT_DEQUANTISE_OPS: f64 = 1.0;

fn parse_class(s: &str) -> Result<ComputeClass, String> {
    s.parse::<ComputeClass>()
        .map_err(|_| format!("unknown precision class `{s}`: expected fp32, fp16, bf16, fp8, int8 or int4"))
}

fn gpu(ctx: &Ctx, raw: &RawGpu) -> Option<Substrate> {
    let clock = ctx.get::<Hertz>("clock", &raw.clock, positive);
    let sms = ctx.get::<u64>("sms", &raw.sms, positive_int);
    let mut matrix_peak = BTreeMap::new();
    let mut peaks_ok = true;
    for (key, expr) in raw.matrix_peak.value.iter() {
        match parse_class(key) {
            Ok(class) => match ctx.get::<FlopsPerSec>(&format!("matrix_peak.{key}"), expr, positive) {
                Some(p) => {
                    matrix_peak.insert(class, p);
                }
                None => peaks_ok = false,
            },
            Err(msg) => {
                ctx.push(ctx.file.error(raw.matrix_peak.loc, msg, "here", None));
                peaks_ok = false;
            }
        }
    }
    if peaks_ok
        && !matrix_peak.contains_key(&ComputeClass::F16)
        && !matrix_peak.contains_key(&ComputeClass::Bf16)
    {
        ctx.push(
            ctx.file.error(
                raw.matrix_peak.loc,
                "`matrix_peak` needs at least an fp16 or bf16 entry",
                "here",
                Some(
                    "its keys are the types the matrix units run natively, e.g. fp16, bf16, fp8, int8, fp32"
                        .into(),
                ),
            ),
        );
        peaks_ok = false;
    }
    let vector_peak = ctx.get::<FlopsPerSec>("vector_peak", &raw.vector_peak, positive);
    let bandwidth = ctx.get::<BytesPerSec>("memory.bandwidth", &raw.memory.bandwidth, positive);
    let capacity = ctx.get::<Bytes>("memory.capacity", &raw.memory.capacity, positive);
    let l2_size = ctx.get::<Bytes>("l2.size", &raw.l2.size, non_negative);
    let l2_bw = ctx.get::<BytesPerSec>("l2.bandwidth", &raw.l2.bandwidth, positive);
    let tile_r = ctx.get::<u64>("tile.rows", &raw.tile.rows, positive_int);
    let tile_c = ctx.get::<u64>("tile.cols", &raw.tile.cols, positive_int);
    let kernel = gpu_kernel(ctx, raw.kernel.as_ref());
    let eff = efficiency(ctx, &raw.efficiency);
    let e = &raw.energy;
    let matrix_flop = ctx.get_dim(
        "energy.matrix_flop",
        &e.matrix_flop,
        Dim::JOULES_PER_FLOP,
        "0.5 pJ/FLOP",
    );
    let vector_flop = ctx.get_dim(
        "energy.vector_flop",
        &e.vector_flop,
        Dim::JOULES_PER_FLOP,
        "2 pJ/FLOP",
    );
    let dram_byte = ctx.get_dim("energy.dram_byte", &e.dram_byte, Dim::JOULES_PER_BYTE, "20 pJ/B");
    let l2_byte = ctx.get_dim("energy.l2_byte", &e.l2_byte, Dim::JOULES_PER_BYTE, "5 pJ/B");
    let static_power = ctx.get::<Watts>("energy.static_power", &e.static_power, non_negative);
    let env = envelope(ctx, raw.envelope.as_ref(), false, raw.name.loc);
    let cosearch = cosearch(ctx, raw.cosearch.as_ref(), raw.name.loc, false);
    if !peaks_ok {
        return None;
    }
    Some(Substrate {
        name: raw.name.value.clone(),
        description: raw.description.trim().to_string(),
        kind: Kind::Gpu(Gpu {
            clock: clock?,
            sms: sms?,
            matrix_peak,
            vector_peak: vector_peak?,
            memory_bandwidth: bandwidth?,
            memory_capacity: capacity?,
            l2_size: l2_size?,
            l2_bandwidth: l2_bw?,
            tile: (tile_r?, tile_c?),
            kernel: kernel?,
            energy: GpuEnergy {
                matrix_flop: Joules::new(matrix_flop?),
                vector_flop: Joules::new(vector_flop?),
                dram_byte: Joules::new(dram_byte?),
                l2_byte: Joules::new(l2_byte?),
                static_power: static_power?,
            },
        }),
        efficiency: eff?,
        envelope: env?,
        cosearch: cosearch?,
    })
}

fn systolic(ctx: &Ctx, raw: &RawSystolic) -> Option<Substrate> {
    let clock = ctx.get::<Hertz>("clock", &raw.clock, positive);
    let rows = ctx.get::<u64>("array.rows", &raw.array.rows, positive_int);
    let cols = ctx.get::<u64>("array.cols", &raw.array.cols, positive_int);
    let dataflow = ctx.word("array.dataflow", &raw.array.dataflow, |s| {
        s.parse::<Dataflow>().map_err(|e| e.to_string())
    });
    let mode = ctx.word("array.mode", &raw.array.mode, |s| {
        s.parse::<Mode>().map_err(|e| e.to_string())
    });
    let precisions = ctx
        .word_list("array.precisions", raw.array.precisions.as_ref(), raw.name.loc, parse_class)
        .and_then(|v| {
            if v.is_empty() {
                let loc = raw.array.precisions.as_ref().map_or(raw.array.dataflow.loc, |p| p.loc);
                ctx.push(ctx.file.error(
                    loc,
                    "`array.precisions`: the operand types the MACs take are required",
                    "in this array",
                    Some("e.g. array: {rows: 16, cols: 16, dataflow: ws, mode: overlapped, precisions: [int8]}".into()),
                ));
                None
            } else {
                let mut v = v;
                v.sort();
                v.dedup();
                Some(v)
            }
        });
    let quantise = ctx.word_list("array.quantise", raw.array.quantise.as_ref(), raw.name.loc, |s| {
        s.parse::<Precision>().map_err(|e| e.to_string())
    });
    let s = &raw.sram;
    let accumulator = ctx.get::<Bytes>("sram.accumulator", &s.accumulator, non_negative);
    let buffers = match (&s.unified, &s.operands, &s.ifmap, &s.filter, &s.ofmap) {
        (Some(u), None, None, None, None) => ctx
            .get::<Bytes>("sram.unified", u, positive)
            .map(Buffers::Unified),
        (None, Some(op), None, None, None) => {
            let op = ctx.get::<Bytes>("sram.operands", op, positive);
            Some(Buffers::Shared {
                operands: op?,
                accumulator: accumulator?,
            })
        }
        (None, None, Some(i), Some(f), Some(o)) => {
            let i = ctx.get::<Bytes>("sram.ifmap", i, positive);
            let f = ctx.get::<Bytes>("sram.filter", f, positive);
            let o = ctx.get::<Bytes>("sram.ofmap", o, positive);
            Some(Buffers::Split {
                ifmap: i?,
                filter: f?,
                ofmap: o?,
            })
        }
        _ => {
            ctx.push(ctx.file.error(
                raw.name.loc,
                "`sram` needs exactly one of `unified`, `operands`, or all of `ifmap`, `filter` and `ofmap`",
                "in this substrate",
                Some("e.g. sram: {unified: \"512 KiB\", accumulator: \"256 KiB\"}".into()),
            ));
            None
        }
    };
    let dram_read = ctx.get::<BytesPerCycle>("dram.read", &raw.dram.read, positive);
    let dram_write = ctx.get::<BytesPerCycle>("dram.write", &raw.dram.write, positive);
    let dram_capacity = ctx.get::<Bytes>("dram.capacity", &raw.dram.capacity, positive);
    let vector = ctx.get::<f64>("vector.ops_per_cycle", &raw.vector.ops_per_cycle, positive);
    let dequantise = ctx.optional::<f64>(
        "vector.dequantise_ops",
        raw.vector.dequantise_ops.as_ref(),
        non_negative,
    );
    let eff = efficiency(ctx, &raw.efficiency);
    let e = &raw.energy;
    let mac = ctx.get::<Joules>("energy.mac", &e.mac, non_negative);
    let sram_byte = ctx.get_dim("energy.sram_byte", &e.sram_byte, Dim::JOULES_PER_BYTE, "1.2 pJ/B");
    let dram_byte = ctx.get_dim("energy.dram_byte", &e.dram_byte, Dim::JOULES_PER_BYTE, "64 pJ/B");
    let vector_op = ctx.get::<Joules>("energy.vector_op", &e.vector_op, non_negative);
    let leakage = ctx.get::<Watts>("energy.leakage", &e.leakage, non_negative);
    let env = envelope(ctx, raw.envelope.as_ref(), false, raw.name.loc);
    let cosearch = cosearch(ctx, raw.cosearch.as_ref(), raw.name.loc, false);
    Some(Substrate {
        name: raw.name.value.clone(),
        description: raw.description.trim().to_string(),
        kind: Kind::Systolic(Systolic {
            clock: clock?,
            rows: rows?,
            cols: cols?,
            dataflow: dataflow?,
            buffers: buffers?,
            accumulator: accumulator?,
            dram_read: dram_read?,
            dram_write: dram_write?,
            dram_capacity: dram_capacity?,
            vector_ops_per_cycle: vector?,
            mode: mode?,
            precisions: precisions?,
            quantise: quantise?,
            dequantise_ops: dequantise?.unwrap_or(DEFAULT_DEQUANTISE_OPS),
            energy: SystolicEnergy {
                mac: mac?,
                sram_byte: Joules::new(sram_byte?),
                dram_byte: Joules::new(dram_byte?),
                vector_op: vector_op?,
                leakage: leakage?,
            },
        }),
        efficiency: eff?,
        envelope: env?,
        cosearch: cosearch?,
    })
}

/// Loads a substrate from text, applying overrides, reporting every problem.
pub fn load_str(src: &str, file: &str, overrides: &[Override]) -> Result<Substrate, DescErrors> {
    load_source(&SourceFile::new(file, src), overrides)
}

/// Loads a substrate from a file already read ([`source`]), applying overrides.
pub fn load_source(file: &SourceFile, overrides: &[Override]) -> Result<Substrate, DescErrors> {
    load_file(file, overrides)
}

/// A substrate file parsed into the raw form of its kind: every value an expression, parsed
/// once. A co-search keeps it to evaluate its points without parsing again.
pub(super) enum RawFile {
    Gpu(Box<RawGpu>),
    Systolic(Box<RawSystolic>),
    Ring(Box<RawRing>),
}

/// Parses `file` (its kind, its shape against the schema, then the kind's raw form).
pub(super) fn parse_file(file: &SourceFile) -> Result<RawFile, DescErrors> {
    // First read only the kind, then the whole file in that kind's shape.
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Located<String>,
    }
    let head: KindOnly = file.parse()?;
    // The file's shape first: every unknown, missing or mistyped field at once.
    if ["gpu", "systolic", "ring"].contains(&head.kind.value.as_str()) {
        let problems = super::schema::check(file, &head.kind.value);
        if !problems.is_empty() {
            let mut diags = file.diagnostics();
            for p in problems {
                diags.push(p);
            }
            diags.finish(())?;
        }
    }
    Ok(match head.kind.value.as_str() {
        "gpu" => RawFile::Gpu(Box::new(file.parse()?)),
        "systolic" => RawFile::Systolic(Box::new(file.parse()?)),
        "ring" => RawFile::Ring(Box::new(file.parse()?)),
        other => {
            return Err(file
                .error(
                    head.kind.loc,
                    format!("unknown substrate kind `{other}`"),
                    "here",
                    Some("expected gpu, systolic or ring".into()),
                )
                .into());
        }
    })
}

/// Evaluates a parsed file with its overrides into a validated [`Substrate`]. With
/// `point_values` (a co-search point's typed values), as that point: the values replace the
/// fields' expressions and the `cosearch` section and any `cosearch.*` override are left out.
pub(super) fn evaluate(
    file: &SourceFile,
    parsed: &Arc<RawFile>,
    overrides: &[Override],
    point_values: Option<&[(String, Quantity)]>,
) -> Result<Substrate, DescErrors> {
    let mut ctx = Ctx::new(file, parsed, overrides, point_values.unwrap_or(&[]));
    ctx.point = point_values.is_some();
    let substrate = match &**parsed {
        RawFile::Gpu(raw) => gpu(&ctx, raw),
        RawFile::Systolic(raw) => systolic(&ctx, raw),
        RawFile::Ring(raw) => ring(&ctx, raw),
    };
    ctx.finish(substrate)
}

/// Parses and evaluates `file` with `overrides`.
pub(super) fn load_file(file: &SourceFile, overrides: &[Override]) -> Result<Substrate, DescErrors> {
    let parsed = Arc::new(parse_file(file)?);
    evaluate(file, &parsed, overrides, None)
}

/// Loads a shipped substrate by name, or a substrate file by path, with overrides.
pub fn load(spec: &str, overrides: &[Override]) -> Result<Substrate, DescErrors> {
    load_file(&source(spec)?, overrides)
}

/// The text of a shipped substrate (by name) or of a substrate file (by path; a file wins).
pub fn source(spec: &str) -> Result<SourceFile, DescErrors> {
    Ok(shipped_or_file(spec, SHIPPED, "substrates", "substrate")?)
}
