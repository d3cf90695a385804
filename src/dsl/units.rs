//! Dimensions, quantities and the table of unit spellings.
//!
//! A [`Dim`] is a vector of integer exponents over six base dimensions: bytes (`B`), seconds
//! (`s`), clock cycles (`cycle`), operations (`FLOP`; `OP` shares the dimension), joules (`J`)
//! and metres (`m`). Everything else is derived: hertz is `cycle/s` (a clock counts cycles per
//! second, so `clock * 4 B/cycle` is a bandwidth and `1000 cycle / clock` a time, as in
//! [`crate::units`]), watts are `J/s`, a bit is `1/8 B`, a multiply-accumulate (`MAC`) is
//! `2 FLOP` (the convention of [`crate::units`]).
//!
//! A [`Quantity`] is an `f64` in base units plus its [`Dim`]. Typed extraction into the
//! [`crate::units`] newtypes goes through [`FromQuantity`], which checks the dimension.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use crate::units::{
    Bytes, BytesPerCycle, BytesPerSec, Cycles, Flops, FlopsPerSec, Hertz, Joules, Seconds, SquareMeters,
    Watts,
};

use super::error::{DslError, DslErrorKind};

/// Number of base dimensions.
pub const N_BASE: usize = 6;
/// Symbols of the base dimensions, in the order of [`Dim`]'s exponent vector.
pub const BASE_SYMBOLS: [&str; N_BASE] = ["B", "s", "cycle", "FLOP", "J", "m"];

/// A physical dimension: integer exponents over bytes, seconds, cycles, operations, joules,
/// metres (in that order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Dim(pub [i8; N_BASE]);

impl Dim {
    /// A pure number.
    pub const NONE: Dim = Dim([0, 0, 0, 0, 0, 0]);
    pub const BYTES: Dim = Dim([1, 0, 0, 0, 0, 0]);
    pub const SECONDS: Dim = Dim([0, 1, 0, 0, 0, 0]);
    pub const CYCLES: Dim = Dim([0, 0, 1, 0, 0, 0]);
    pub const FLOP: Dim = Dim([0, 0, 0, 1, 0, 0]);
    pub const JOULES: Dim = Dim([0, 0, 0, 0, 1, 0]);
    pub const METRES: Dim = Dim([0, 0, 0, 0, 0, 1]);
    /// `cycle/s`: a clock frequency counts cycles per second.
    pub const HERTZ: Dim = Dim([0, -1, 1, 0, 0, 0]);
    /// `J/s`.
    pub const WATTS: Dim = Dim([0, -1, 0, 0, 1, 0]);
    pub const BYTES_PER_SEC: Dim = Dim([1, -1, 0, 0, 0, 0]);
    pub const BYTES_PER_CYCLE: Dim = Dim([1, 0, -1, 0, 0, 0]);
    pub const FLOPS_PER_SEC: Dim = Dim([0, -1, 0, 1, 0, 0]);
    pub const FLOP_PER_CYCLE: Dim = Dim([0, 0, -1, 1, 0, 0]);
    pub const JOULES_PER_BYTE: Dim = Dim([-1, 0, 0, 0, 1, 0]);
    pub const JOULES_PER_FLOP: Dim = Dim([0, 0, 0, -1, 1, 0]);
    /// `m^2`.
    pub const AREA: Dim = Dim([0, 0, 0, 0, 0, 2]);

    pub fn is_none(self) -> bool {
        self == Dim::NONE
    }

    /// Product of two dimensions; `None` when an exponent leaves `i8`.
    pub fn checked_mul(self, rhs: Dim) -> Option<Dim> {
        let mut out = [0i8; N_BASE];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.0[i].checked_add(rhs.0[i])?;
        }
        Some(Dim(out))
    }

    /// Quotient of two dimensions; `None` when an exponent leaves `i8`.
    pub fn checked_div(self, rhs: Dim) -> Option<Dim> {
        let mut out = [0i8; N_BASE];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.0[i].checked_sub(rhs.0[i])?;
        }
        Some(Dim(out))
    }

    /// The dimension raised to an integer power; `None` when an exponent leaves `i8`.
    pub fn powi(self, power: i32) -> Option<Dim> {
        let mut out = [0i8; N_BASE];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = i8::try_from(i32::from(self.0[i]).checked_mul(power)?).ok()?;
        }
        Some(Dim(out))
    }

    /// A plain-words name for the common dimensions (`bandwidth`, `energy`...).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Dim::NONE => "a plain number",
            Dim::BYTES => "bytes",
            Dim::SECONDS => "time",
            Dim::CYCLES => "cycles",
            Dim::FLOP => "operations",
            Dim::JOULES => "energy",
            Dim::METRES => "length",
            Dim::HERTZ => "frequency",
            Dim::WATTS => "power",
            Dim::BYTES_PER_SEC => "bandwidth",
            Dim::BYTES_PER_CYCLE => "bytes per cycle",
            Dim::FLOPS_PER_SEC => "compute throughput",
            Dim::FLOP_PER_CYCLE => "operations per cycle",
            Dim::JOULES_PER_BYTE => "energy per byte",
            Dim::JOULES_PER_FLOP => "energy per operation",
            Dim::AREA => "area",
            _ => return None,
        })
    }

    /// `name (symbol)` for messages, e.g. `bandwidth (B/s)`, or just the symbol.
    pub fn describe(self) -> String {
        match (self.name(), self) {
            (Some(name), Dim::NONE) => name.to_string(),
            (Some(name), _) => format!("{name} ({self})"),
            (None, _) => format!("`{self}`"),
        }
    }
}

/// Symbolic form in base units: `B/s`, `1/s`, `J/B`, `m^2`, `B*s/cycle^2`; `1` when
/// dimensionless.
impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut numerator = Vec::new();
        let mut denominator = Vec::new();
        for (i, &e) in self.0.iter().enumerate() {
            let sym = BASE_SYMBOLS[i];
            let text = |p: i8| {
                if p == 1 {
                    sym.to_string()
                } else {
                    format!("{sym}^{p}")
                }
            };
            match e.cmp(&0) {
                std::cmp::Ordering::Greater => numerator.push(text(e)),
                std::cmp::Ordering::Less => denominator.push(text(-e)),
                std::cmp::Ordering::Equal => {}
            }
        }
        let num = if numerator.is_empty() {
            "1".to_string()
        } else {
            numerator.join("*")
        };
        if denominator.is_empty() {
            f.write_str(&num)
        } else {
            write!(f, "{num}/{}", denominator.join("/"))
        }
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dim({self})")
    }
}

/// A number in base units together with its dimension.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Quantity {
    /// The value in base units (bytes, seconds, cycles, FLOP, joules, metres and their
    /// products).
    pub value: f64,
    pub dim: Dim,
}

impl Quantity {
    pub const fn new(value: f64, dim: Dim) -> Quantity {
        Quantity { value, dim }
    }

    /// A dimensionless number.
    pub const fn number(value: f64) -> Quantity {
        Quantity {
            value,
            dim: Dim::NONE,
        }
    }

    pub fn is_dimensionless(self) -> bool {
        self.dim.is_none()
    }

    /// Converts to any [`FromQuantity`] type, checking the dimension. The error carries no
    /// source span; [`super::Expr::eval_as`] attaches one.
    pub fn to<T: FromQuantity>(self) -> Result<T, DslError> {
        T::from_quantity(self).map_err(DslError::bare)
    }
    pub fn to_bytes(self) -> Result<Bytes, DslError> {
        self.to()
    }
    pub fn to_bytes_per_sec(self) -> Result<BytesPerSec, DslError> {
        self.to()
    }
    pub fn to_bytes_per_cycle(self) -> Result<BytesPerCycle, DslError> {
        self.to()
    }
    pub fn to_hertz(self) -> Result<Hertz, DslError> {
        self.to()
    }
    pub fn to_seconds(self) -> Result<Seconds, DslError> {
        self.to()
    }
    pub fn to_cycles(self) -> Result<Cycles, DslError> {
        self.to()
    }
    pub fn to_joules(self) -> Result<Joules, DslError> {
        self.to()
    }
    pub fn to_watts(self) -> Result<Watts, DslError> {
        self.to()
    }
    pub fn to_flops(self) -> Result<Flops, DslError> {
        self.to()
    }
    pub fn to_flops_per_sec(self) -> Result<FlopsPerSec, DslError> {
        self.to()
    }
    pub fn to_area(self) -> Result<SquareMeters, DslError> {
        self.to()
    }
    /// A dimensionless number (`16`, `2^10`, `50 %`).
    pub fn to_count(self) -> Result<f64, DslError> {
        self.to()
    }
    /// A dimensionless, non-negative, exact integer below 2^53.
    pub fn to_integer(self) -> Result<u64, DslError> {
        self.to()
    }
    /// The value in base units of `dim`, for dimensions without a newtype (e.g.
    /// [`Dim::JOULES_PER_BYTE`] for `pJ/B`).
    pub fn in_dim(self, dim: Dim) -> Result<f64, DslError> {
        if self.dim == dim {
            Ok(self.value)
        } else {
            Err(DslError::bare(wrong_dim(self, dim, "", "")))
        }
    }
}

/// `value unit`, the unit in base symbols (`2.048e11 B/s`).
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = super::expr::fmt_number(self.value);
        if self.dim.is_none() {
            f.write_str(&value)
        } else {
            write!(f, "{value} {}", self.dim)
        }
    }
}

fn wrong_dim(q: Quantity, expected: Dim, what: &'static str, example: &'static str) -> DslErrorKind {
    DslErrorKind::WrongDimension {
        expected,
        what,
        example,
        found: q.dim,
        value: q.value,
    }
}

/// Types a [`Quantity`] converts into, with a dimension check.
pub trait FromQuantity: Sized {
    /// The required dimension.
    const DIM: Dim;
    /// Words for messages: "bandwidth".
    const WHAT: &'static str;
    /// An example literal for messages: "`204.8 GB/s`".
    const EXAMPLE: &'static str;
    fn from_quantity(q: Quantity) -> Result<Self, DslErrorKind>;
}

macro_rules! from_quantity {
    ($ty:ty, $dim:expr, $what:literal, $example:literal) => {
        impl FromQuantity for $ty {
            const DIM: Dim = $dim;
            const WHAT: &'static str = $what;
            const EXAMPLE: &'static str = $example;
            fn from_quantity(q: Quantity) -> Result<Self, DslErrorKind> {
                if q.dim == Self::DIM {
                    Ok(<$ty>::new(q.value))
                } else {
                    Err(wrong_dim(q, Self::DIM, Self::WHAT, Self::EXAMPLE))
                }
            }
        }
        impl From<$ty> for Quantity {
            fn from(v: $ty) -> Quantity {
                Quantity::new(v.get(), $dim)
            }
        }
    };
}

from_quantity!(Bytes, Dim::BYTES, "a quantity in bytes", "512 KiB");
from_quantity!(BytesPerSec, Dim::BYTES_PER_SEC, "a bandwidth", "204.8 GB/s");
from_quantity!(
    BytesPerCycle,
    Dim::BYTES_PER_CYCLE,
    "a quantity in bytes per cycle",
    "64 B/cycle"
);
from_quantity!(Hertz, Dim::HERTZ, "a frequency", "1.5 GHz");
from_quantity!(Seconds, Dim::SECONDS, "a time", "20 ns");
from_quantity!(Cycles, Dim::CYCLES, "a number of cycles", "4 cycle");
from_quantity!(Joules, Dim::JOULES, "an energy", "0.2 pJ");
from_quantity!(Watts, Dim::WATTS, "a power", "15 W");
from_quantity!(Flops, Dim::FLOP, "a number of operations", "2 GFLOP");
from_quantity!(
    FlopsPerSec,
    Dim::FLOPS_PER_SEC,
    "a compute throughput",
    "275 TFLOPS"
);
from_quantity!(SquareMeters, Dim::AREA, "an area", "0.5 mm^2");

impl FromQuantity for f64 {
    const DIM: Dim = Dim::NONE;
    const WHAT: &'static str = "a plain number";
    const EXAMPLE: &'static str = "0.75";
    fn from_quantity(q: Quantity) -> Result<Self, DslErrorKind> {
        if q.dim.is_none() {
            Ok(q.value)
        } else {
            Err(wrong_dim(q, Dim::NONE, Self::WHAT, Self::EXAMPLE))
        }
    }
}

/// Largest integer an `f64` holds exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

impl FromQuantity for u64 {
    const DIM: Dim = Dim::NONE;
    const WHAT: &'static str = "a whole number";
    const EXAMPLE: &'static str = "16";
    fn from_quantity(q: Quantity) -> Result<Self, DslErrorKind> {
        if !q.dim.is_none() {
            return Err(wrong_dim(q, Dim::NONE, Self::WHAT, Self::EXAMPLE));
        }
        let v = q.value;
        if v.fract() == 0.0 && (0.0..=MAX_EXACT).contains(&v) {
            // Exact: v is a non-negative integer within the range f64 represents exactly.
            Ok(v as u64)
        } else {
            Err(DslErrorKind::NotAnInteger { value: v })
        }
    }
}

impl FromQuantity for Quantity {
    const DIM: Dim = Dim::NONE;
    const WHAT: &'static str = "any quantity";
    const EXAMPLE: &'static str = "1 GB";
    fn from_quantity(q: Quantity) -> Result<Self, DslErrorKind> {
        Ok(q)
    }
}

/// One spelling of a unit: `GB/s` is written with two of these, `GB` and `s`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitDef {
    /// The spelling accepted in expressions.
    pub spelling: &'static str,
    /// Its value in base units.
    pub factor: f64,
    pub dim: Dim,
}

const DECIMAL_UP: [(&str, f64); 5] = [("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15)];
const BINARY: [(&str, f64); 5] = [
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
];
fn leak(s: String) -> &'static str {
    // The table is built once per process (LazyLock); its strings live as long as it does.
    Box::leak(s.into_boxed_str())
}

fn build_table() -> Vec<UnitDef> {
    let mut table = Vec::new();
    let mut push_prefixed = |base: &str, factor: f64, dim: Dim, prefixes: &[(&str, f64)]| {
        for &(prefix, scale) in prefixes {
            table.push(UnitDef {
                spelling: leak(format!("{prefix}{base}")),
                factor: scale * factor,
                dim,
            });
        }
    };
    let unprefixed = [("", 1.0)];
    fn with(sets: &[&[(&'static str, f64)]]) -> Vec<(&'static str, f64)> {
        sets.iter().flat_map(|s| s.iter().copied()).collect()
    }
    let small = [
        ("m", 1e-3),
        ("u", 1e-6),
        ("µ", 1e-6),
        ("μ", 1e-6),
        ("n", 1e-9),
        ("p", 1e-12),
        ("f", 1e-15),
    ];

    // Bytes: decimal, `KB` (= kB, see the module docs), binary.
    let bytes_prefixes = with(&[&unprefixed, &DECIMAL_UP, &[("K", 1e3)], &BINARY]);
    push_prefixed("B", 1.0, Dim::BYTES, &bytes_prefixes);
    let bit_prefixes = with(&[&unprefixed, &DECIMAL_UP, &BINARY]);
    push_prefixed("bit", 0.125, Dim::BYTES, &bit_prefixes);
    // Time.
    push_prefixed("s", 1.0, Dim::SECONDS, &with(&[&unprefixed, &small[..6]]));
    // Frequency.
    push_prefixed("Hz", 1.0, Dim::HERTZ, &with(&[&unprefixed, &DECIMAL_UP[..4]]));
    // Cycles.
    push_prefixed("cycle", 1.0, Dim::CYCLES, &unprefixed);
    push_prefixed("cycles", 1.0, Dim::CYCLES, &unprefixed);
    // Operations and their rates.
    let ops = with(&[&unprefixed, &DECIMAL_UP]);
    push_prefixed("FLOP", 1.0, Dim::FLOP, &ops);
    push_prefixed("FLOPS", 1.0, Dim::FLOPS_PER_SEC, &ops);
    push_prefixed("OP", 1.0, Dim::FLOP, &ops);
    push_prefixed("OPS", 1.0, Dim::FLOPS_PER_SEC, &ops);
    push_prefixed("MAC", 2.0, Dim::FLOP, &ops);
    // Energy and power.
    push_prefixed(
        "J",
        1.0,
        Dim::JOULES,
        &with(&[&unprefixed, &DECIMAL_UP[..1], &small]),
    );
    push_prefixed(
        "W",
        1.0,
        Dim::WATTS,
        &with(&[&unprefixed, &DECIMAL_UP[..1], &small[..4]]),
    );
    // Length (area is `mm^2`).
    let lengths = with(&[&unprefixed, &[("c", 1e-2)], &small[..5]]);
    push_prefixed("m", 1.0, Dim::METRES, &lengths);
    // Percent.
    push_prefixed("%", 0.01, Dim::NONE, &unprefixed);
    table
}

static TABLE: LazyLock<Vec<UnitDef>> = LazyLock::new(build_table);
static INDEX: LazyLock<HashMap<&'static str, UnitDef>> =
    LazyLock::new(|| TABLE.iter().map(|u| (u.spelling, *u)).collect());

/// Every accepted unit spelling, in the order of the README table.
pub fn unit_table() -> &'static [UnitDef] {
    &TABLE
}

/// Looks up one unit spelling (case-sensitive: `mW` is milliwatt, `MW` is not a unit).
pub fn lookup_unit(spelling: &str) -> Option<UnitDef> {
    INDEX.get(spelling).copied()
}

/// A hint for a spelling that is not a unit: a case-insensitive match, or the usual slips.
pub(crate) fn suggest_unit(spelling: &str) -> Option<String> {
    if spelling == "FLOPs" || spelling.ends_with("FLOPs") {
        return Some(
            "`FLOPs` is ambiguous: write `FLOP` for a count, `FLOP/s` or `FLOPS` for a rate".to_string(),
        );
    }
    if spelling.len() >= 2
        && spelling.ends_with('b')
        && lookup_unit(&format!("{}B", &spelling[..spelling.len() - 1])).is_some()
    {
        let stem = &spelling[..spelling.len() - 1];
        return Some(format!(
            "`b` is not a unit: write `{stem}B` for bytes or `{stem}bit` for bits"
        ));
    }
    if let Some(stem) = spelling.strip_suffix("bps") {
        return Some(format!("write bit rates as `{stem}bit/s`"));
    }
    if spelling == "kiB" || spelling == "KIB" {
        return Some("binary prefixes are written `KiB`, `MiB`, `GiB`, `TiB`".to_string());
    }
    let matches: Vec<&str> = TABLE
        .iter()
        .filter(|u| u.spelling.eq_ignore_ascii_case(spelling))
        .map(|u| u.spelling)
        .collect();
    if matches.is_empty() {
        return None;
    }
    let list = matches
        .iter()
        .map(|m| format!("`{m}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    Some(format!("units are case-sensitive: did you mean {list}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicate_spellings() {
        assert_eq!(INDEX.len(), TABLE.len());
    }

    #[test]
    fn prefixes() {
        assert_eq!(lookup_unit("KiB").unwrap().factor, 1024.0);
        assert_eq!(lookup_unit("kB").unwrap().factor, 1e3);
        assert_eq!(lookup_unit("KB").unwrap().factor, 1e3);
        assert_eq!(lookup_unit("Gbit").unwrap().factor, 1.25e8);
        assert_eq!(lookup_unit("mW").unwrap().dim, Dim::WATTS);
        assert_eq!(lookup_unit("TFLOPS").unwrap().dim, Dim::FLOPS_PER_SEC);
        assert_eq!(lookup_unit("MAC").unwrap().factor, 2.0);
        assert_eq!(lookup_unit("%").unwrap().factor, 0.01);
        assert!(lookup_unit("MW").is_none());
        assert!(lookup_unit("Kb").is_none());
        assert!(lookup_unit("b").is_none());
    }

    #[test]
    fn dim_display() {
        assert_eq!(Dim::BYTES_PER_SEC.to_string(), "B/s");
        assert_eq!(Dim::HERTZ.to_string(), "cycle/s");
        assert_eq!(Dim([0, -1, 0, 0, 0, 0]).to_string(), "1/s");
        assert_eq!(Dim::AREA.to_string(), "m^2");
        assert_eq!(Dim::NONE.to_string(), "1");
        assert_eq!(Dim([1, -2, -1, 0, 0, 0]).to_string(), "B/s^2/cycle");
        assert_eq!(Dim::BYTES_PER_SEC.describe(), "bandwidth (B/s)");
    }

    #[test]
    fn dim_algebra_overflow_is_none() {
        assert!(
            Dim([100, 0, 0, 0, 0, 0])
                .checked_mul(Dim([100, 0, 0, 0, 0, 0]))
                .is_none()
        );
        assert!(Dim::BYTES.powi(200).is_none());
        assert_eq!(Dim::METRES.powi(2), Some(Dim::AREA));
    }

    #[test]
    fn integer_extraction() {
        assert_eq!(Quantity::number(16.0).to_integer().unwrap(), 16);
        assert!(Quantity::number(16.5).to_integer().is_err());
        assert!(Quantity::number(-1.0).to_integer().is_err());
        assert!(Quantity::number(1e300).to_integer().is_err());
        assert!(Quantity::new(16.0, Dim::BYTES).to_integer().is_err());
    }
}
