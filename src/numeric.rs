//! Number formats, shared by models (what a tensor is stored in) and substrates (what their
//! matrix units compute in), so that neither has to know the other.
//!
//! * [`Precision`]: a *storage* format, known by its bits per element: the plain types (fp32,
//!   fp16, bf16, fp8, int8, int4), the llama.cpp / GGUF block formats (codes plus per-block
//!   scales: Q4_0 = 4.5 bits) and `bpw:<bits>`.
//! * [`Precisions`]: the formats of a model's three tensor roles (weights, activations, KV
//!   cache).
//! * [`ComputeClass`]: an *arithmetic* type a matrix unit runs (fp32, fp16, bf16, fp8, int8,
//!   int4).
//!
//! # Exact conversions
//! A value converts to another type *exactly* along a fixed ladder ([`ComputeClass::widenings`]):
//! int4 -> int8 -> fp16 / bf16 -> fp32, int4 -> fp8 (e4m3 holds -8..7), fp8 -> fp16 / bf16 ->
//! fp32. Nothing else is exact: int8 does not fit fp8, fp16 and bf16 do not fit each other, no
//! float fits an integer. A block format holds integer codes with per-block scales; it has no
//! arithmetic of its own and is *dequantised* ([`Precision::targets`]): to int8 (the codes, with
//! the block scales applied to the partial sums, as llama.cpp's integer dot products do) or to
//! any float of at least 16 bits.
//!
//! [`exact_common`] is the narrowest type two operands both reach exactly: the arithmetic a GEMM
//! needs at least, before any hardware is known. Which type a substrate actually runs is the
//! substrate's decision (`crate::substrate::Substrate::resolve`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A storage format, known by its bits per element (block scales included for the
/// llama.cpp formats: Q4_0 stores 32 4-bit weights plus one fp16 scale = 4.5 bits).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Precision {
    F32,
    F16,
    Bf16,
    Fp8,
    Int8,
    Int4,
    /// A llama.cpp / GGUF block format.
    Gguf(GgufFormat),
    /// Any other format, by its average bits per element (e.g. `bpw:4.89`).
    Bits(f64),
}

/// The llama.cpp quantisation formats, with their average bits per weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GgufFormat {
    Q2K,
    Q3KM,
    Q4_0,
    Q4_1,
    Q4KS,
    Q4KM,
    Q5_0,
    Q5_1,
    Q5KM,
    Q6K,
    Q8_0,
}

impl GgufFormat {
    const ALL: [(GgufFormat, &'static str, f64); 11] = [
        (GgufFormat::Q2K, "Q2_K", 2.625),
        (GgufFormat::Q3KM, "Q3_K_M", 3.91),
        (GgufFormat::Q4_0, "Q4_0", 4.5),
        (GgufFormat::Q4_1, "Q4_1", 5.0),
        (GgufFormat::Q4KS, "Q4_K_S", 4.58),
        (GgufFormat::Q4KM, "Q4_K_M", 4.85),
        (GgufFormat::Q5_0, "Q5_0", 5.5),
        (GgufFormat::Q5_1, "Q5_1", 6.0),
        (GgufFormat::Q5KM, "Q5_K_M", 5.69),
        (GgufFormat::Q6K, "Q6_K", 6.5625),
        (GgufFormat::Q8_0, "Q8_0", 8.5),
    ];

    pub fn bits(self) -> f64 {
        Self::ALL
            .iter()
            .find(|(f, _, _)| *f == self)
            .map(|e| e.2)
            .unwrap_or(16.0)
    }
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _, _)| *f == self)
            .map(|e| e.1)
            .unwrap_or("?")
    }
}

impl Precision {
    /// Average bits per stored element.
    pub fn bits(self) -> f64 {
        match self {
            Precision::F32 => 32.0,
            Precision::F16 | Precision::Bf16 => 16.0,
            Precision::Fp8 | Precision::Int8 => 8.0,
            Precision::Int4 => 4.0,
            Precision::Gguf(f) => f.bits(),
            Precision::Bits(b) => b,
        }
    }
    pub fn bytes(self) -> f64 {
        self.bits() / 8.0
    }
    /// The arithmetic type whose values this format holds; `None` for block formats (GGUF,
    /// `bpw:`), which hold codes and scales and must be dequantised.
    pub fn arithmetic(self) -> Option<ComputeClass> {
        match self {
            Precision::F32 => Some(ComputeClass::F32),
            Precision::F16 => Some(ComputeClass::F16),
            Precision::Bf16 => Some(ComputeClass::Bf16),
            Precision::Fp8 => Some(ComputeClass::Fp8),
            Precision::Int8 => Some(ComputeClass::Int8),
            Precision::Int4 => Some(ComputeClass::Int4),
            Precision::Gguf(_) | Precision::Bits(_) => None,
        }
    }
    /// Whether the format is a block format (codes plus scales, dequantised before use).
    pub fn is_block(self) -> bool {
        self.arithmetic().is_none()
    }
    /// The arithmetic types this format converts to exactly, narrowest first: its own type
    /// and its [`ComputeClass::widenings`]; for a block format, its dequantisation targets
    /// (int8 for codes of at most 8.5 bits per weight, block scales included; fp16, bf16 and
    /// fp32 for any, fp32 only above 16 bits).
    pub fn targets(self) -> &'static [ComputeClass] {
        use ComputeClass::*;
        match self.arithmetic() {
            Some(c) => c.widenings(),
            None if self.bits() <= 8.5 => &[Int8, F16, Bf16, F32],
            None if self.bits() <= 16.0 => &[F16, Bf16, F32],
            None => &[F32],
        }
    }
    /// Whether this format converts exactly (or, for a block format, dequantises) to `c`.
    pub fn reaches(self, c: ComputeClass) -> bool {
        self.targets().contains(&c)
    }
    /// The name used in reports: the format and, for a block format, its bits per weight
    /// (`Q4_K_M (4.85 b/w)`).
    pub fn describe(self) -> String {
        if self.is_block() {
            format!("{self} ({} b/w)", trim_float(self.bits()))
        } else {
            self.to_string()
        }
    }
    /// Every accepted spelling, for error messages.
    pub fn expected() -> String {
        let mut names: Vec<&str> = vec!["fp32", "fp16", "bf16", "fp8", "int8", "int4"];
        names.extend(GgufFormat::ALL.iter().map(|e| e.1));
        format!("one of {}, or bpw:<bits>", names.join(", "))
    }
}

/// An arithmetic type of a matrix unit; substrates give a peak per type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeClass {
    F32,
    F16,
    Bf16,
    Fp8,
    Int8,
    Int4,
}

impl ComputeClass {
    pub const ALL: [ComputeClass; 6] = [
        ComputeClass::F32,
        ComputeClass::F16,
        ComputeClass::Bf16,
        ComputeClass::Fp8,
        ComputeClass::Int8,
        ComputeClass::Int4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ComputeClass::F32 => "fp32",
            ComputeClass::F16 => "fp16",
            ComputeClass::Bf16 => "bf16",
            ComputeClass::Fp8 => "fp8",
            ComputeClass::Int8 => "int8",
            ComputeClass::Int4 => "int4",
        }
    }
    /// Bits per operand.
    pub fn bits(self) -> f64 {
        match self {
            ComputeClass::F32 => 32.0,
            ComputeClass::F16 | ComputeClass::Bf16 => 16.0,
            ComputeClass::Fp8 | ComputeClass::Int8 => 8.0,
            ComputeClass::Int4 => 4.0,
        }
    }
    pub fn is_float(self) -> bool {
        !matches!(self, ComputeClass::Int8 | ComputeClass::Int4)
    }
    /// The types this one converts to exactly, itself first, narrowest first (see the module
    /// docs).
    pub fn widenings(self) -> &'static [ComputeClass] {
        use ComputeClass::*;
        match self {
            Int4 => &[Int4, Int8, Fp8, F16, Bf16, F32],
            Int8 => &[Int8, F16, Bf16, F32],
            Fp8 => &[Fp8, F16, Bf16, F32],
            F16 => &[F16, F32],
            Bf16 => &[Bf16, F32],
            F32 => &[F32],
        }
    }
}

impl fmt::Display for ComputeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ComputeClass {
    type Err = ParsePrecisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        ComputeClass::ALL
            .into_iter()
            .find(|c| c.name() == t.to_ascii_lowercase())
            .ok_or_else(|| ParsePrecisionError {
                given: t.to_string(),
                expected: "one of fp32, fp16, bf16, fp8, int8, int4".into(),
            })
    }
}

/// The narrowest type that both operands of a GEMM reach exactly (in the order of `b`'s
/// targets): the arithmetic the GEMM needs at least, whatever the hardware. fp32 ends every
/// ladder, so there always is one (fp16 with bf16 meet there).
pub fn exact_common(a: Precision, b: Precision) -> ComputeClass {
    b.targets()
        .iter()
        .copied()
        .find(|c| a.reaches(*c))
        .unwrap_or(ComputeClass::F32)
}

/// The formats a model is stored and run in, by tensor role.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Precisions {
    pub weights: Precision,
    pub activations: Precision,
    pub kv_cache: Precision,
}

impl Precisions {
    /// One format for all three roles.
    pub fn all(p: Precision) -> Precisions {
        Precisions {
            weights: p,
            activations: p,
            kv_cache: p,
        }
    }
    /// The exact arithmetic GEMMs over the weights need at least (activations x weights).
    pub fn weight_gemm(&self) -> ComputeClass {
        exact_common(self.activations, self.weights)
    }
    /// ... attention GEMMs (activations x KV cache).
    pub fn attention_gemm(&self) -> ComputeClass {
        exact_common(self.activations, self.kv_cache)
    }
}

/// `4.5` as `4.5`, `4.0` as `4`.
fn trim_float(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precision::F32 => f.write_str("fp32"),
            Precision::F16 => f.write_str("fp16"),
            Precision::Bf16 => f.write_str("bf16"),
            Precision::Fp8 => f.write_str("fp8"),
            Precision::Int8 => f.write_str("int8"),
            Precision::Int4 => f.write_str("int4"),
            Precision::Gguf(g) => f.write_str(g.name()),
            Precision::Bits(b) => write!(f, "bpw:{b}"),
        }
    }
}

/// A precision name that is not one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown precision `{given}`: expected {expected}")]
pub struct ParsePrecisionError {
    pub given: String,
    pub expected: String,
}

impl FromStr for Precision {
    type Err = ParsePrecisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let p = match lower.as_str() {
            "fp32" | "f32" | "float32" => Precision::F32,
            "fp16" | "f16" | "float16" | "half" => Precision::F16,
            "bf16" | "bfloat16" => Precision::Bf16,
            "fp8" | "f8" | "e4m3" => Precision::Fp8,
            "int8" | "i8" | "w8" => Precision::Int8,
            "int4" | "i4" | "w4" => Precision::Int4,
            _ => {
                if let Some(b) = lower.strip_prefix("bpw:") {
                    match b.trim().parse::<f64>() {
                        Ok(bits) if bits > 0.0 && bits <= 64.0 => return Ok(Precision::Bits(bits)),
                        _ => {
                            return Err(ParsePrecisionError {
                                given: t.to_string(),
                                expected: "bpw:<bits> with bits in (0, 64]".into(),
                            });
                        }
                    }
                }
                let upper = t.to_ascii_uppercase();
                match GgufFormat::ALL.iter().find(|e| e.1 == upper) {
                    Some(e) => Precision::Gguf(e.0),
                    None => {
                        return Err(ParsePrecisionError {
                            given: t.to_string(),
                            expected: Precision::expected(),
                        });
                    }
                }
            }
        };
        Ok(p)
    }
}

impl TryFrom<String> for Precision {
    type Error = ParsePrecisionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
impl From<Precision> for String {
    fn from(p: Precision) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ComputeClass::*;

    fn p(s: &str) -> Precision {
        s.parse().unwrap()
    }

    #[test]
    fn exact_conversions_by_hand() {
        // integers widen into floats wide enough for their range; no float fits an integer
        assert!(p("int4").reaches(Int8) && p("int4").reaches(Fp8) && p("int8").reaches(F16));
        assert!(!p("int8").reaches(Fp8) && !p("fp8").reaches(Int8) && !p("bf16").reaches(Int8));
        // the two 16-bit floats do not fit each other; both fit fp32
        assert!(!p("fp16").reaches(Bf16) && !p("bf16").reaches(F16) && p("bf16").reaches(F32));
        // block formats dequantise to int8 or any float of 16 bits or more
        assert_eq!(p("Q4_K_M").targets(), [Int8, F16, Bf16, F32]);
        assert_eq!(p("bpw:12").targets(), [F16, Bf16, F32]);
        assert_eq!(p("bpw:24").targets(), [F32]);
        assert_eq!(p("Q4_K_M").describe(), "Q4_K_M (4.85 b/w)");
        assert_eq!(p("Q4_0").describe(), "Q4_0 (4.5 b/w)");
        assert_eq!(p("int4").describe(), "int4");
    }

    #[test]
    fn the_arithmetic_a_gemm_needs() {
        let c = |a: &str, b: &str| exact_common(p(a), p(b));
        assert_eq!(c("fp16", "Q4_0"), F16); // weight-only quantisation: fp16 arithmetic
        assert_eq!(c("int8", "Q4_K_M"), Int8); // codes in int8, scales on the partial sums
        assert_eq!(c("int8", "int4"), Int8); // W4A8: int8
        assert_eq!(c("int4", "int4"), Int4);
        assert_eq!(c("fp16", "int8"), F16); // W8A16: fp16, not int8
        assert_eq!(c("fp16", "fp8"), F16);
        assert_eq!(c("fp8", "fp8"), Fp8);
        assert_eq!(c("int8", "fp8"), F16);
        assert_eq!(c("bf16", "fp16"), F32);
        assert_eq!(c("bf16", "int4"), Bf16);
        let m = Precisions {
            weights: p("Q4_0"),
            activations: p("fp16"),
            kv_cache: p("fp8"),
        };
        assert_eq!((m.weight_gemm(), m.attention_gemm()), (F16, F16));
        assert_eq!("bf16".parse::<ComputeClass>().unwrap(), Bf16);
        assert!("q4_0".parse::<ComputeClass>().is_err());
    }

    #[test]
    fn parses_and_round_trips() {
        for s in [
            "fp32", "fp16", "bf16", "fp8", "int8", "int4", "Q4_0", "Q4_K_M", "Q8_0", "bpw:4.89",
        ] {
            let p: Precision = s.parse().unwrap();
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p, "{s}");
        }
        assert_eq!("q4_0".parse::<Precision>().unwrap().bits(), 4.5);
        assert_eq!("Q8_0".parse::<Precision>().unwrap().bits(), 8.5);
        assert_eq!("Q4_K_M".parse::<Precision>().unwrap().bits(), 4.85);
        assert!("fp12".parse::<Precision>().is_err());
        assert!("bpw:-1".parse::<Precision>().is_err());
    }
}
