//! Numeric formats of weights, activations and the KV cache.

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
    /// The arithmetic a compute unit runs for this format: integer formats run on integer
    /// MACs, block formats are dequantised to fp16 on GPUs.
    pub fn compute_class(self) -> ComputeClass {
        match self {
            Precision::F32 => ComputeClass::F32,
            Precision::F16 | Precision::Bf16 => ComputeClass::F16,
            Precision::Fp8 => ComputeClass::Fp8,
            Precision::Int8 => ComputeClass::Int8,
            Precision::Int4 => ComputeClass::Int4,
            Precision::Gguf(_) | Precision::Bits(_) => ComputeClass::F16,
        }
    }
    /// Every accepted spelling, for error messages.
    pub fn expected() -> String {
        let mut names: Vec<&str> = vec!["fp32", "fp16", "bf16", "fp8", "int8", "int4"];
        names.extend(GgufFormat::ALL.iter().map(|e| e.1));
        format!("one of {}, or bpw:<bits>", names.join(", "))
    }
}

/// The class of arithmetic units an operator needs; substrates give a peak per class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeClass {
    F32,
    F16,
    Fp8,
    Int8,
    Int4,
}

impl ComputeClass {
    pub fn name(self) -> &'static str {
        match self {
            ComputeClass::F32 => "fp32",
            ComputeClass::F16 => "fp16",
            ComputeClass::Fp8 => "fp8",
            ComputeClass::Int8 => "int8",
            ComputeClass::Int4 => "int4",
        }
    }
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

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown precision `{given}`: expected {expected}")]
pub struct PrecisionError {
    pub given: String,
    pub expected: String,
}

impl FromStr for Precision {
    type Err = PrecisionError;
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
                            return Err(PrecisionError {
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
                        return Err(PrecisionError {
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
    type Error = PrecisionError;
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
