//! Physical quantities as newtypes.
//!
//! One base unit per dimension, converted only when printing: bytes, FLOPs (2 per MAC),
//! cycles, seconds, hertz, joules, watts, square metres. Every type wraps an `f64` (quantised
//! weight formats give fractional bytes per element, and averaged cycle counts are fractional),
//! keeps the raw field private, and offers only the arithmetic that makes physical sense:
//! `Bytes / BytesPerSec = Seconds`, `Cycles / Hertz = Seconds`, `Flops / FlopsPerSec = Seconds`,
//! `Watts * Seconds = Joules`. Decimal (kB, MB, GB) and binary (KiB, MiB, GiB) prefixes are
//! separate constructors; nothing here guesses which one a caller meant.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, Sub};

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $unit:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(f64);

        impl $name {
            pub const ZERO: $name = $name(0.0);
            /// The unit this type stores, for display and serialisation headers.
            pub const UNIT: &'static str = $unit;
            #[inline]
            pub const fn new(value: f64) -> Self {
                $name(value)
            }
            /// The raw value in the base unit.
            #[inline]
            pub const fn get(self) -> f64 {
                self.0
            }
            #[inline]
            pub fn max(self, other: Self) -> Self {
                $name(self.0.max(other.0))
            }
            #[inline]
            pub fn min(self, other: Self) -> Self {
                $name(self.0.min(other.0))
            }
            #[inline]
            pub fn is_finite(self) -> bool {
                self.0.is_finite()
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.0, $unit)
            }
        }
        impl Add for $name {
            type Output = $name;
            #[inline]
            fn add(self, rhs: $name) -> $name {
                $name(self.0 + rhs.0)
            }
        }
        impl AddAssign for $name {
            #[inline]
            fn add_assign(&mut self, rhs: $name) {
                self.0 += rhs.0;
            }
        }
        impl Sub for $name {
            type Output = $name;
            #[inline]
            fn sub(self, rhs: $name) -> $name {
                $name(self.0 - rhs.0)
            }
        }
        impl Mul<f64> for $name {
            type Output = $name;
            #[inline]
            fn mul(self, rhs: f64) -> $name {
                $name(self.0 * rhs)
            }
        }
        impl Mul<$name> for f64 {
            type Output = $name;
            #[inline]
            fn mul(self, rhs: $name) -> $name {
                $name(self * rhs.0)
            }
        }
        impl Div<f64> for $name {
            type Output = $name;
            #[inline]
            fn div(self, rhs: f64) -> $name {
                $name(self.0 / rhs)
            }
        }
        /// A ratio of two like quantities is a plain number.
        impl Div for $name {
            type Output = f64;
            #[inline]
            fn div(self, rhs: $name) -> f64 {
                self.0 / rhs.0
            }
        }
        impl Sum for $name {
            fn sum<I: Iterator<Item = $name>>(iter: I) -> $name {
                $name(iter.map(|q| q.0).sum())
            }
        }
        impl<'a> Sum<&'a $name> for $name {
            fn sum<I: Iterator<Item = &'a $name>>(iter: I) -> $name {
                $name(iter.map(|q| q.0).sum())
            }
        }
        impl From<$name> for f64 {
            #[inline]
            fn from(q: $name) -> f64 {
                q.0
            }
        }
    };
}

quantity!(/// A number of bytes (fractional for sub-byte formats).
    Bytes, "B");
quantity!(/// Floating-point (or integer) operations; one multiply-accumulate is 2.
    Flops, "FLOP");
quantity!(/// Clock cycles of some clock domain.
    Cycles, "cycle");
quantity!(/// Time.
    Seconds, "s");
quantity!(/// Frequency.
    Hertz, "Hz");
quantity!(/// Energy.
    Joules, "J");
quantity!(/// Power.
    Watts, "W");
quantity!(/// Memory or link bandwidth.
    BytesPerSec, "B/s");
quantity!(/// Bandwidth per clock cycle.
    BytesPerCycle, "B/cycle");
quantity!(/// Compute throughput.
    FlopsPerSec, "FLOP/s");
quantity!(/// Silicon area.
    SquareMeters, "m^2");

const KB: f64 = 1e3;
const KIB: f64 = 1024.0;

impl Bytes {
    pub fn kb(v: f64) -> Bytes {
        Bytes(v * KB)
    }
    pub fn mb(v: f64) -> Bytes {
        Bytes(v * KB * KB)
    }
    pub fn gb(v: f64) -> Bytes {
        Bytes(v * KB * KB * KB)
    }
    pub fn kib(v: f64) -> Bytes {
        Bytes(v * KIB)
    }
    pub fn mib(v: f64) -> Bytes {
        Bytes(v * KIB * KIB)
    }
    pub fn gib(v: f64) -> Bytes {
        Bytes(v * KIB * KIB * KIB)
    }
    pub fn as_gb(self) -> f64 {
        self.0 / (KB * KB * KB)
    }
    pub fn as_mb(self) -> f64 {
        self.0 / (KB * KB)
    }
    pub fn as_gib(self) -> f64 {
        self.0 / (KIB * KIB * KIB)
    }
    pub fn as_mib(self) -> f64 {
        self.0 / (KIB * KIB)
    }
    pub fn bits(self) -> f64 {
        self.0 * 8.0
    }
}

impl Joules {
    pub fn pj(v: f64) -> Joules {
        Joules(v * 1e-12)
    }
    pub fn as_pj(self) -> f64 {
        self.0 * 1e12
    }
    pub fn as_uj(self) -> f64 {
        self.0 * 1e6
    }
    pub fn as_mj(self) -> f64 {
        self.0 * 1e3
    }
}

impl Seconds {
    pub fn ms(v: f64) -> Seconds {
        Seconds(v * 1e-3)
    }
    pub fn us(v: f64) -> Seconds {
        Seconds(v * 1e-6)
    }
    pub fn as_ms(self) -> f64 {
        self.0 * 1e3
    }
    pub fn as_us(self) -> f64 {
        self.0 * 1e6
    }
}

impl Hertz {
    pub fn mhz(v: f64) -> Hertz {
        Hertz(v * 1e6)
    }
    pub fn ghz(v: f64) -> Hertz {
        Hertz(v * 1e9)
    }
}

impl SquareMeters {
    pub fn mm2(v: f64) -> SquareMeters {
        SquareMeters(v * 1e-6)
    }
    pub fn um2(v: f64) -> SquareMeters {
        SquareMeters(v * 1e-12)
    }
    pub fn as_mm2(self) -> f64 {
        self.0 * 1e6
    }
}

impl Div<BytesPerSec> for Bytes {
    type Output = Seconds;
    #[inline]
    fn div(self, rhs: BytesPerSec) -> Seconds {
        Seconds(self.0 / rhs.0)
    }
}
impl Div<FlopsPerSec> for Flops {
    type Output = Seconds;
    #[inline]
    fn div(self, rhs: FlopsPerSec) -> Seconds {
        Seconds(self.0 / rhs.0)
    }
}
impl Div<Hertz> for Cycles {
    type Output = Seconds;
    #[inline]
    fn div(self, rhs: Hertz) -> Seconds {
        Seconds(self.0 / rhs.0)
    }
}
impl Mul<Hertz> for Seconds {
    type Output = Cycles;
    #[inline]
    fn mul(self, rhs: Hertz) -> Cycles {
        Cycles(self.0 * rhs.0)
    }
}
impl Div<BytesPerCycle> for Bytes {
    type Output = Cycles;
    #[inline]
    fn div(self, rhs: BytesPerCycle) -> Cycles {
        Cycles(self.0 / rhs.0)
    }
}
impl Mul<Hertz> for BytesPerCycle {
    type Output = BytesPerSec;
    #[inline]
    fn mul(self, rhs: Hertz) -> BytesPerSec {
        BytesPerSec(self.0 * rhs.0)
    }
}
impl Mul<Seconds> for Watts {
    type Output = Joules;
    #[inline]
    fn mul(self, rhs: Seconds) -> Joules {
        Joules(self.0 * rhs.0)
    }
}
impl Div<Seconds> for Joules {
    type Output = Watts;
    #[inline]
    fn div(self, rhs: Seconds) -> Watts {
        Watts(self.0 / rhs.0)
    }
}
impl Div<Bytes> for Flops {
    /// Arithmetic intensity, FLOP per byte.
    type Output = f64;
    #[inline]
    fn div(self, rhs: Bytes) -> f64 {
        self.0 / rhs.0
    }
}

/// Formats a value with an SI prefix, e.g. `fmt_si(2.5e-3, "s") == "2.500 ms"`.
pub fn fmt_si(value: f64, unit: &str) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value} {unit}");
    }
    let (scale, prefix) = si_prefix(value.abs());
    format!("{:.3} {}{}", value / scale, prefix, unit)
}

/// The SI prefix for a magnitude (`u` for micro): the largest of P, T, G, M, k, -, m, u, n,
/// p, f whose scale is at most `magnitude`.
pub fn si_prefix(magnitude: f64) -> (f64, &'static str) {
    const PREFIXES: [(f64, &str); 11] = [
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
        (1.0, ""),
        (1e-3, "m"),
        (1e-6, "u"),
        (1e-9, "n"),
        (1e-12, "p"),
        (1e-15, "f"),
    ];
    PREFIXES
        .iter()
        .copied()
        .find(|(s, _)| magnitude >= *s)
        .unwrap_or((1e-15, "f"))
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_si(self.0, "s"))
    }
}
impl fmt::Display for Joules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_si(self.0, "J"))
    }
}
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_si(self.0, "B"))
    }
}
impl fmt::Display for Flops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_si(self.0, "FLOP"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_binary_prefixes_differ() {
        assert_eq!(Bytes::kb(1.0).get(), 1000.0);
        assert_eq!(Bytes::kib(1.0).get(), 1024.0);
        assert_eq!(Bytes::gib(1.0).get(), 1_073_741_824.0);
        assert!((Bytes::gib(1.0).as_gb() - 1.073741824).abs() < 1e-12);
    }

    #[test]
    fn derived_units() {
        let t = Bytes::gb(204.8) / BytesPerSec::new(204.8e9);
        assert!((t.get() - 1.0).abs() < 1e-12);
        let t = Cycles::new(2e9) / Hertz::ghz(1.0);
        assert_eq!(t.get(), 2.0);
        let e = Watts::new(10.0) * Seconds::ms(100.0);
        assert!((e.get() - 1.0).abs() < 1e-12);
        assert_eq!(fmt_si(2.5e-3, "s"), "2.500 ms");
    }
}
