//! Substrate files as written, overrides, and validation into [`Substrate`].
//!
//! Every value is a [`crate::yaml::Expression`]; a value may refer to any field evaluated
//! before it by its dotted path (`"clock * 4 B"`, `"dram.read * 2"`), or by the name of a
//! sibling in the same section. `--set path=expr` replaces the expression at `path` before
//! evaluation; an unknown path is an error that lists the valid ones. Every problem in the
//! file is collected and reported together, each with its line and column.

use super::cosearch::{RawCoSearch, cosearch};
use super::ring::{RawRing, ring};
use super::{
    DesignEnvelope, Efficiency, Gpu, GpuEnergy, GpuKernel, Kind, Substrate, Systolic, SystolicEnergy,
};
use crate::dsl::{Dim, FromQuantity, Quantity};
use crate::model::ComputeClass;
use crate::sim::systolic::{Buffers, Dataflow, Mode};
use crate::units::{
    Bytes, BytesPerCycle, BytesPerSec, Cycles, FlopsPerSec, Hertz, Joules, Seconds, SquareMeters, Watts,
};
use crate::yaml::{
    DescError, DescErrors, Diagnostics, Expression, Loc, Located, SourceFile, shipped, shipped_or_file,
};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeMap;

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

/// Parses `path=expression` strings.
pub fn parse_overrides(items: &[String]) -> Result<Vec<Override>, String> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((p, e)) if !p.trim().is_empty() && !e.trim().is_empty() => Ok(Override {
                path: p.trim().to_string(),
                expr: e.trim().trim_matches('"').to_string(),
            }),
            _ => Err(format!(
                "--set `{s}`: expected path=expression, e.g. dram.read=\"8 B/cycle\""
            )),
        })
        .collect()
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
struct RawGpu {
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
struct RawSystolic {
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
    /// Loading one co-search point: the `cosearch` section is skipped.
    pub point: bool,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a SourceFile, overrides: &'a [Override]) -> Self {
        Ctx {
            file,
            overrides,
            used: RefCell::new(vec![false; overrides.len()]),
            values: RefCell::new(BTreeMap::new()),
            diags: RefCell::new(file.diagnostics()),
            paths: RefCell::new(Vec::new()),
            words: RefCell::new(Vec::new()),
            point: false,
        }
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
    fn quantity(&self, path: &str, expr: &Expression) -> Option<Quantity> {
        let section = path.rsplit_once('.').map_or("", |(s, _)| s);
        let values = self.values.borrow().clone();
        let env = move |name: &str| -> Option<Quantity> {
            values
                .get(name)
                .copied()
                .or_else(|| values.get(&format!("{section}.{name}")).copied())
        };
        let result = match self.override_for(path) {
            Some(o) => {
                let cli = SourceFile::new(format!("--set {}", o.path), o.expr.clone());
                Expression::new(&o.expr).eval_scalar(&cli, &env)
            }
            None => expr.eval_scalar(self.file, &env),
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

    /// A typed value at `path`, checked with `valid` (a message when invalid).
    pub fn get<T: FromQuantity + Copy>(
        &self,
        path: &str,
        expr: &Expression,
        valid: impl Fn(T) -> Option<&'static str>,
    ) -> Option<T> {
        let q = self.quantity(path, expr)?;
        match q.to::<T>() {
            Ok(v) => match valid(v) {
                None => Some(v),
                Some(msg) => {
                    self.push(self.error_at(path, expr, format!("`{path}` {msg}"), "invalid value", None));
                    None
                }
            },
            Err(e) => {
                let help = e.help_text().map(str::to_string);
                self.push(self.error_at(path, expr, format!("`{path}`: {e}"), "wrong dimension", help));
                None
            }
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
        let loc = Self::loc_of(expr);
        match self.overrides.iter().find(|o| o.path == path) {
            Some(o) if !loc.is_known() => {
                let cli = SourceFile::new(format!("--set {}", o.path), o.expr.clone());
                let at = Loc {
                    line: 1,
                    column: 1,
                    offset: 0,
                    len: o.expr.len(),
                };
                cli.error(at, message, label, help)
            }
            _ => self.file.error(loc, message, label, help),
        }
    }

    /// A value in a dimension without a newtype (energy per byte: `pJ/B`).
    pub fn get_dim(&self, path: &str, expr: &Expression, dim: Dim, example: &str) -> Option<f64> {
        let q = self.quantity(path, expr)?;
        match q.in_dim(dim) {
            Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
            Ok(_) => {
                self.push(self.file.error(
                    Self::loc_of(expr),
                    format!("`{path}` must be finite and non-negative"),
                    "invalid value",
                    None,
                ));
                None
            }
            Err(e) => {
                self.push(self.file.error(
                    Self::loc_of(expr),
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
                self.push(
                    self.file
                        .error(field.loc, format!("`{path}`: {msg}"), "here", None),
                );
                None
            }
        }
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
    pub fn optional<T: FromQuantity + Copy>(
        &self,
        path: &str,
        expr: Option<&Expression>,
        valid: impl Fn(T) -> Option<&'static str>,
    ) -> Option<Option<T>> {
        match expr {
            Some(e) => self.get(path, e, valid).map(Some),
            None if self.has_override(path) => self.get(path, &Expression::new(""), valid).map(Some),
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
    let overlap = ctx.optional::<f64>("kernel.overlap", r.overlap.as_ref(), at_least_one);
    Some(GpuKernel {
        tile_cycles: tile?.unwrap_or(d.tile_cycles),
        step_cycles: step?.unwrap_or(d.step_cycles),
        operand_bandwidth: operand?.unwrap_or(d.operand_bandwidth),
        l2_reuse: reuse?.unwrap_or(d.l2_reuse),
        overlap: overlap?.unwrap_or(d.overlap),
    })
}

fn parse_class(s: &str) -> Result<ComputeClass, String> {
    match s {
        "fp32" => Ok(ComputeClass::F32),
        "fp16" | "bf16" => Ok(ComputeClass::F16),
        "fp8" => Ok(ComputeClass::Fp8),
        "int8" => Ok(ComputeClass::Int8),
        "int4" => Ok(ComputeClass::Int4),
        other => Err(format!(
            "unknown precision class `{other}`: expected fp32, fp16, fp8, int8 or int4"
        )),
    }
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
    if peaks_ok && !matrix_peak.contains_key(&ComputeClass::F16) {
        ctx.push(ctx.file.error(
            raw.matrix_peak.loc,
            "`matrix_peak` needs at least an fp16 entry",
            "here",
            None,
        ));
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
    load_file(&SourceFile::new(file, src), overrides, false)
}

/// Loads `file`; with `point`, as one co-search point (the `cosearch` section and any
/// `cosearch.*` override are left out).
pub(super) fn load_file(
    file: &SourceFile,
    overrides: &[Override],
    point: bool,
) -> Result<Substrate, DescErrors> {
    // First read only the kind, then the whole file in that kind's shape.
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Located<String>,
    }
    let head: KindOnly = file.parse()?;
    let mut ctx = Ctx::new(file, overrides);
    ctx.point = point;
    let substrate = match head.kind.value.as_str() {
        "gpu" => {
            let raw: RawGpu = file.parse()?;
            gpu(&ctx, &raw)
        }
        "systolic" => {
            let raw: RawSystolic = file.parse()?;
            systolic(&ctx, &raw)
        }
        "ring" => {
            let raw: RawRing = file.parse()?;
            ring(&ctx, &raw)
        }
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
    };
    ctx.finish(substrate)
}

/// Loads a shipped substrate by name, or a substrate file by path, with overrides.
pub fn load(spec: &str, overrides: &[Override]) -> Result<Substrate, DescErrors> {
    load_file(&source(spec)?, overrides, false)
}

/// The text of a shipped substrate (by name) or of a substrate file (by path).
pub(super) fn source(spec: &str) -> Result<SourceFile, DescErrors> {
    Ok(shipped_or_file(spec, SHIPPED, "substrates", "substrate")?)
}
