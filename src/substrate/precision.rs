//! Which number formats a substrate runs, and by what rule it runs the others.
//!
//! A substrate declares the arithmetic types its matrix units run *natively*:
//!
//! * a GPU: the keys of its `matrix_peak` (`fp16`, `bf16`, `fp8`, `int8`, ...), from its data
//!   sheet; fp32 is always available (on the vector units at `vector_peak` when `matrix_peak`
//!   has no fp32 entry);
//! * a systolic array: `array.precisions` (e.g. `[int8]`): the operand types its MACs take,
//!   each at one MAC per PE per cycle;
//! * the ring: int8 (its MACs, WMEM and KV cache are 8-bit; `sim::ring`).
//!
//! [`Substrate::resolve`] takes a model's formats ([`Precisions`]) and applies these rules, in
//! order:
//!
//! 1. **Declared quantisation.** A format the substrate declares it quantises (systolic
//!    `array.quantise: [bf16, ...]`; the ring: every format but int8) is stored *and* computed
//!    as the substrate's narrowest native type: the model is priced as if quantised to it.
//! 2. **Arithmetic.** Each GEMM runs in the narrowest native type that both its operands
//!    reach exactly (activations with the weights; activations with the KV cache for attention);
//!    see [`crate::numeric`] for the exact conversions. So int4 on an int8 array runs at the
//!    int8 rate, W4A16 runs fp16 GEMMs, fp8 on an A100 (no fp8) runs fp16, bf16 on a chip
//!    without bf16 runs fp32.
//! 3. **Storage** stays at the model's real bits: weights (or a KV cache) stored narrower than
//!    the arithmetic are *dequantised* (weight-only quantisation: DRAM and capacity at the
//!    stored bits, arithmetic at the native type, a dequantisation cost where the cost model
//!    prices one); plain floats narrower than the arithmetic are *widened* (no cost).
//! 4. **Rejection.** When no native type works, the pair is rejected with a
//!    [`PrecisionError`] naming the substrate, the format and what the substrate supports
//!    (e.g. bf16 on an int8-only array, unless the array declares `quantise: [bf16]`).
//!
//! The result ([`ResolvedPrecision`]) says which rule applied to each tensor role, in words
//! that the simulator's outputs carry ([`PrecisionReport`]).

use super::{Kind, Substrate};
use crate::numeric::{ComputeClass, Precision, Precisions};
use serde::Serialize;
use std::fmt;

/// How a substrate treats formats it does not run natively beyond the exact conversions.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantise {
    /// Nothing is quantised: what does not convert exactly is rejected.
    Nothing,
    /// These formats are quantised to the narrowest native type (systolic `array.quantise`).
    Listed(Vec<Precision>),
    /// Every format that is not native is quantised to the narrowest native type (the ring).
    AllOthers,
}

/// A set of arithmetic types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassSet(u8);

impl ClassSet {
    fn bit(c: ComputeClass) -> u8 {
        1 << (c as u8)
    }
    pub fn insert(&mut self, c: ComputeClass) {
        self.0 |= Self::bit(c);
    }
    pub fn contains(self, c: ComputeClass) -> bool {
        self.0 & Self::bit(c) != 0
    }
    /// The members, in [`ComputeClass::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = ComputeClass> {
        ComputeClass::ALL.into_iter().filter(move |c| self.contains(*c))
    }
    pub fn to_vec(self) -> Vec<ComputeClass> {
        self.iter().collect()
    }
}

impl FromIterator<ComputeClass> for ClassSet {
    fn from_iter<I: IntoIterator<Item = ComputeClass>>(it: I) -> ClassSet {
        let mut s = ClassSet::default();
        for c in it {
            s.insert(c);
        }
        s
    }
}

impl Serialize for ClassSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The arithmetic types a substrate runs natively, and its declared quantisation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrecisionSupport {
    /// Native arithmetic types.
    pub native: ClassSet,
    pub quantise: Quantise,
}

impl PrecisionSupport {
    pub fn is_native(&self, c: ComputeClass) -> bool {
        self.native.contains(c)
    }
    /// The narrowest native type (by bits; integers before floats of the same width).
    pub fn narrowest(&self) -> Option<ComputeClass> {
        self.native.iter().min_by(|a, b| {
            a.bits()
                .total_cmp(&b.bits())
                .then(a.is_float().cmp(&b.is_float()))
        })
    }
    /// Whether the substrate declares it quantises `p` (which is not native).
    pub fn quantises(&self, p: Precision) -> bool {
        if p.arithmetic().is_some_and(|c| self.is_native(c)) {
            return false;
        }
        match &self.quantise {
            Quantise::Nothing => false,
            Quantise::Listed(v) => v.contains(&p),
            Quantise::AllOthers => true,
        }
    }
    /// The narrowest native type both `a` and `b` reach exactly.
    pub fn common(&self, a: Precision, b: Precision) -> Option<ComputeClass> {
        b.targets()
            .iter()
            .copied()
            .find(|c| self.is_native(*c) && a.reaches(*c))
    }
    /// Native types as a list for messages: `int8` or `fp16, bf16 and fp32`.
    pub fn list(&self) -> String {
        let names: Vec<&str> = self.native.iter().map(|c| c.name()).collect();
        match names.as_slice() {
            [] => "nothing".into(),
            [one] => (*one).into(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        }
    }
}

/// The rule a tensor role runs by.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "rule", content = "to", rename_all = "snake_case")]
pub enum Rule {
    /// Stored and computed in its own format.
    Native,
    /// Stored narrower than the arithmetic (a block format, an integer or fp8 below the
    /// native type): dequantised to this type before the MACs; storage at the real bits.
    Dequantised(ComputeClass),
    /// A float widened exactly to this type in the datapath (no cost): fp16 -> fp32.
    Widened(ComputeClass),
    /// Quantised to this type by the substrate's declared rule: stored and computed as it.
    Quantised(ComputeClass),
}

/// Why a format was quantised ([`Rule::Quantised`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantisedBecause {
    /// Not quantised.
    No,
    /// The substrate file declares it (`array.quantise`).
    Declared,
    /// The ring stores and computes 8-bit values.
    Ring,
    /// The pair was rejected and priced anyway ([`Substrate::resolve_forced`]).
    Forced,
}

/// One tensor role after resolution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TensorPrecision {
    /// The format the model gives.
    pub format: Precision,
    /// The format it is stored in on the substrate (differs only under [`Rule::Quantised`]).
    pub stored: Precision,
    pub rule: Rule,
    pub because: QuantisedBecause,
}

impl TensorPrecision {
    /// Bits per stored element.
    pub fn bits(&self) -> f64 {
        self.stored.bits()
    }
    /// The rule in words: `Q4_K_M (4.85 b/w) dequantised to int8`.
    pub fn description(&self) -> String {
        let f = self.format.describe();
        match (self.rule, self.because) {
            (Rule::Native, _) => f,
            (Rule::Quantised(_), QuantisedBecause::Ring) => {
                format!("{f} {} (the ring stores and computes 8-bit values)", self.rule)
            }
            (Rule::Quantised(_), QuantisedBecause::Declared) => {
                format!("{f} {} (declared by the substrate)", self.rule)
            }
            (Rule::Quantised(_), _) => format!("{f} {} (not supported: priced as if quantised)", self.rule),
            _ => format!("{f} {}", self.rule),
        }
    }
}

/// A model's formats resolved on one substrate: storage per tensor role, the arithmetic of
/// each kind of GEMM, and the rules that applied.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ResolvedPrecision {
    pub weights: TensorPrecision,
    pub activations: TensorPrecision,
    pub kv_cache: TensorPrecision,
    /// Native arithmetic of GEMMs over the weights (activations x weights).
    pub weight_gemm: ComputeClass,
    /// Native arithmetic of attention GEMMs (activations x KV cache).
    pub attention_gemm: ComputeClass,
}

impl ResolvedPrecision {
    /// The formats as stored on the substrate: the model's, except where a declared
    /// quantisation replaced one.
    pub fn stored(&self) -> Precisions {
        Precisions {
            weights: self.weights.stored,
            activations: self.activations.stored,
            kv_cache: self.kv_cache.stored,
        }
    }
    /// Whether any role was quantised by a declared rule (the model is priced with other
    /// formats than it states).
    pub fn quantised(&self) -> bool {
        [&self.weights, &self.activations, &self.kv_cache]
            .iter()
            .any(|t| matches!(t.rule, Rule::Quantised(_)))
    }
    /// The activations' rule in words, with the attention arithmetic when it differs.
    pub fn activations_description(&self) -> String {
        let mut d = self.activations.description();
        let own = self.activations.stored.arithmetic();
        if self.attention_gemm != self.weight_gemm && own != Some(self.attention_gemm) {
            d.push_str(&format!(", {} in attention", self.attention_gemm));
        }
        d
    }
}

/// The precision rules of a run (`sim` table and JSON): the resolution, and the rejection
/// when a library caller priced a pair [`Substrate::resolve`] refuses (it was then priced as
/// quantised to the substrate's narrowest native type). Serialises as the rules in words:
/// `{weights: "Q4_K_M (4.85 b/w) dequantised to int8", activations: "int8", kv_cache: "int8",
/// weight_gemm: "int8", attention_gemm: "int8"}` (plus `rejected`).
#[derive(Clone, Debug, PartialEq)]
pub struct PrecisionReport {
    pub resolved: ResolvedPrecision,
    pub rejected: Option<PrecisionError>,
}

impl PrecisionReport {
    pub fn weights(&self) -> String {
        self.resolved.weights.description()
    }
    pub fn activations(&self) -> String {
        self.resolved.activations_description()
    }
    pub fn kv_cache(&self) -> String {
        self.resolved.kv_cache.description()
    }
    /// Native arithmetic of the weight GEMMs.
    pub fn weight_gemm(&self) -> &'static str {
        self.resolved.weight_gemm.name()
    }
    /// Native arithmetic of the attention GEMMs.
    pub fn attention_gemm(&self) -> &'static str {
        self.resolved.attention_gemm.name()
    }
    /// The rejection in words, when there was one.
    pub fn rejected(&self) -> Option<String> {
        self.rejected
            .as_ref()
            .map(|e| format!("{e}; priced as quantised to the substrate's narrowest native type"))
    }
}

impl Serialize for PrecisionReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let rejected = self.rejected();
        let mut m = s.serialize_map(Some(5 + rejected.is_some() as usize))?;
        m.serialize_entry("weights", &self.weights())?;
        m.serialize_entry("activations", &self.activations())?;
        m.serialize_entry("kv_cache", &self.kv_cache())?;
        m.serialize_entry("weight_gemm", self.weight_gemm())?;
        m.serialize_entry("attention_gemm", self.attention_gemm())?;
        if let Some(r) = rejected {
            m.serialize_entry("rejected", &r)?;
        }
        m.end()
    }
}

/// A model format a substrate cannot run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PrecisionError {
    /// Occurs when a format converts exactly to none of the native types and the substrate
    /// declares no quantisation for it.
    #[error(
        "`{substrate}` cannot run {format} {role}: its matrix units run {native} only, and {format} \
         converts exactly to none of them"
    )]
    Unsupported {
        substrate: String,
        role: &'static str,
        format: Precision,
        native: String,
        /// The substrate's narrowest native type (for the help text).
        suggest: Option<ComputeClass>,
        kind: &'static str,
    },
    /// Occurs when both operands of a GEMM run natively on their own but share no native type.
    #[error(
        "`{substrate}` cannot run {a} activations with {b} {role}: its matrix units run {native}, \
         and no one of them takes both exactly"
    )]
    NoCommonType {
        substrate: String,
        a: Precision,
        b: Precision,
        role: &'static str,
        native: String,
        suggest: Option<ComputeClass>,
        kind: &'static str,
    },
}

impl PrecisionError {
    /// How to get a runnable pair.
    pub fn help(&self) -> String {
        let (suggest, kind, format) = match self {
            PrecisionError::Unsupported {
                suggest,
                kind,
                format,
                ..
            } => (*suggest, *kind, Some(*format)),
            PrecisionError::NoCommonType { suggest, kind, .. } => (*suggest, *kind, None),
        };
        let run = suggest.map_or(String::new(), |c| {
            format!("run the model at a native type (e.g. `--precision {c}`)")
        });
        match (kind, format) {
            ("systolic", Some(f)) => format!(
                "{run}, or declare `array.quantise: [{f}]` in the substrate to price {f} as quantised to {}",
                suggest.map_or("the array's type", |c| c.name())
            ),
            _ => run,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Native => f.write_str("native"),
            Rule::Dequantised(c) => write!(f, "dequantised to {c}"),
            Rule::Widened(c) => write!(f, "widened to {c}"),
            Rule::Quantised(c) => write!(f, "quantised to {c}"),
        }
    }
}

/// The rule of a stored operand (weights, KV cache) under arithmetic `c`.
fn stored_rule(format: Precision, stored: Precision, c: ComputeClass) -> Rule {
    if stored != format {
        return Rule::Quantised(stored.arithmetic().unwrap_or(c));
    }
    match format.arithmetic() {
        Some(own) if own == c => Rule::Native,
        Some(ComputeClass::Int4 | ComputeClass::Int8 | ComputeClass::Fp8) | None => Rule::Dequantised(c),
        Some(_) => Rule::Widened(c),
    }
}

impl Substrate {
    /// The arithmetic types this substrate runs natively and its declared quantisation.
    pub fn precision_support(&self) -> PrecisionSupport {
        match &self.kind {
            Kind::Gpu(g) => {
                let mut native: ClassSet = g.matrix_peak.keys().copied().collect();
                native.insert(ComputeClass::F32); // on the vector units without a key
                PrecisionSupport {
                    native,
                    quantise: Quantise::Nothing,
                }
            }
            Kind::Systolic(s) => PrecisionSupport {
                native: s.precisions.iter().copied().collect(),
                quantise: if s.quantise.is_empty() {
                    Quantise::Nothing
                } else {
                    Quantise::Listed(s.quantise.clone())
                },
            },
            Kind::Ring(_) => PrecisionSupport {
                native: [ComputeClass::Int8].into_iter().collect(),
                quantise: Quantise::AllOthers,
            },
        }
    }

    /// The narrowest native type `needed` widens to exactly (the type a matrix op that needs
    /// `needed` runs at); the narrowest native type when there is none (an array that lacks
    /// it: its one MAC rate).
    pub fn native_class(&self, needed: ComputeClass) -> ComputeClass {
        let s = self.precision_support();
        needed
            .widenings()
            .iter()
            .copied()
            .find(|c| s.is_native(*c))
            .or_else(|| s.narrowest())
            .unwrap_or(needed)
    }

    /// Resolves a model's formats on this substrate (see the module docs): storage per tensor
    /// role, the native arithmetic of weight and attention GEMMs, the rule of each role; or
    /// why the pair cannot run.
    pub fn resolve(&self, p: &Precisions) -> Result<ResolvedPrecision, PrecisionError> {
        self.resolve_with(p, Force::No)
    }

    /// As [`Self::resolve`], but a rejected format is quantised to the narrowest native type
    /// instead (for library callers that price a pair they did not check; the report carries
    /// the error).
    pub fn resolve_forced(&self, p: &Precisions) -> (ResolvedPrecision, Option<PrecisionError>) {
        match self.resolve_with(p, Force::No) {
            Ok(r) => (r, None),
            Err(e) => {
                let r = [Force::Unreachable, Force::AllOthers, Force::Everything]
                    .into_iter()
                    .find_map(|f| self.resolve_with(p, f).ok());
                match r {
                    Some(r) => (r, Some(e)),
                    // a substrate always has a native type, and everything quantised to the
                    // narrowest one resolves; this keeps the model's formats as a last resort
                    None => {
                        let t = |format: Precision| TensorPrecision {
                            format,
                            stored: format,
                            rule: Rule::Native,
                            because: QuantisedBecause::No,
                        };
                        let r = ResolvedPrecision {
                            weights: t(p.weights),
                            activations: t(p.activations),
                            kv_cache: t(p.kv_cache),
                            weight_gemm: self.native_class(p.weight_gemm()),
                            attention_gemm: self.native_class(p.attention_gemm()),
                        };
                        (r, Some(e))
                    }
                }
            }
        }
    }

    fn resolve_with(&self, p: &Precisions, force: Force) -> Result<ResolvedPrecision, PrecisionError> {
        let support = self.precision_support();
        let narrowest = support.narrowest();
        let because = |f: Precision| match &self.kind {
            Kind::Ring(_) => QuantisedBecause::Ring,
            _ if support.quantises(f) => QuantisedBecause::Declared,
            _ => QuantisedBecause::Forced,
        };
        let reachable = |f: Precision| f.targets().iter().any(|c| support.is_native(*c));
        let quantise = |f: Precision| -> Precision {
            let not_native = !f.arithmetic().is_some_and(|c| support.is_native(c));
            let q = support.quantises(f)
                || match force {
                    Force::No => false,
                    Force::Unreachable => !reachable(f),
                    Force::AllOthers => not_native,
                    Force::Everything => true,
                };
            match (q, narrowest) {
                (true, Some(n)) => precision_of(n),
                _ => f,
            }
        };
        let stored = Precisions {
            weights: quantise(p.weights),
            activations: quantise(p.activations),
            kv_cache: quantise(p.kv_cache),
        };
        let kind = self.kind_name();
        let unsupported = |role: &'static str, format: Precision| PrecisionError::Unsupported {
            substrate: self.name.clone(),
            role,
            format,
            native: support.list(),
            suggest: narrowest,
            kind,
        };
        let gemm =
            |b: Precision, b_format: Precision, role: &'static str| -> Result<ComputeClass, PrecisionError> {
                if let Some(c) = support.common(stored.activations, b) {
                    return Ok(c);
                }
                if !reachable(b) {
                    return Err(unsupported(role, b_format));
                }
                if !reachable(stored.activations) {
                    return Err(unsupported("activations", p.activations));
                }
                Err(PrecisionError::NoCommonType {
                    substrate: self.name.clone(),
                    a: p.activations,
                    b: b_format,
                    role,
                    native: support.list(),
                    suggest: narrowest,
                    kind,
                })
            };
        let weight_gemm = gemm(stored.weights, p.weights, "weights")?;
        let attention_gemm = gemm(stored.kv_cache, p.kv_cache, "KV cache")?;
        let operand = |format: Precision, stored: Precision, c: ComputeClass| {
            let rule = stored_rule(format, stored, c);
            TensorPrecision {
                format,
                stored,
                rule,
                because: if stored == format {
                    QuantisedBecause::No
                } else {
                    because(format)
                },
            }
        };
        let weights = operand(p.weights, stored.weights, weight_gemm);
        let kv_cache = operand(p.kv_cache, stored.kv_cache, attention_gemm);
        let activations = {
            let format = p.activations;
            let own = stored.activations.arithmetic();
            let rule = if stored.activations != format {
                Rule::Quantised(own.unwrap_or(weight_gemm))
            } else if own == Some(weight_gemm) {
                Rule::Native
            } else if format.is_block() {
                Rule::Dequantised(weight_gemm)
            } else {
                Rule::Widened(weight_gemm)
            };
            TensorPrecision {
                format,
                stored: stored.activations,
                rule,
                because: if stored.activations == format {
                    QuantisedBecause::No
                } else {
                    because(format)
                },
            }
        };
        Ok(ResolvedPrecision {
            weights,
            activations,
            kv_cache,
            weight_gemm,
            attention_gemm,
        })
    }
}

/// How far [`Substrate::resolve_forced`] goes beyond the declared rules.
#[derive(Clone, Copy, PartialEq)]
enum Force {
    No,
    /// Quantise the formats that reach no native type.
    Unreachable,
    /// Quantise every format that is not native.
    AllOthers,
    /// Quantise every format to the narrowest native type.
    Everything,
}

/// The storage format of an arithmetic type.
fn precision_of(c: ComputeClass) -> Precision {
    match c {
        ComputeClass::F32 => Precision::F32,
        ComputeClass::F16 => Precision::F16,
        ComputeClass::Bf16 => Precision::Bf16,
        ComputeClass::Fp8 => Precision::Fp8,
        ComputeClass::Int8 => Precision::Int8,
        ComputeClass::Int4 => Precision::Int4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::substrate::{Override, load};
    use ComputeClass::*;

    fn sub(name: &str) -> Substrate {
        load(name, &[]).unwrap()
    }
    fn set(name: &str, path: &str, expr: &str) -> Substrate {
        let o = Override {
            path: path.into(),
            expr: expr.into(),
        };
        load(name, &[o]).unwrap()
    }
    fn p(w: &str, a: &str, kv: &str) -> Precisions {
        Precisions {
            weights: w.parse().unwrap(),
            activations: a.parse().unwrap(),
            kv_cache: kv.parse().unwrap(),
        }
    }

    #[test]
    fn declared_native_types() {
        assert_eq!(sub("gemmini").precision_support().native.to_vec(), [Int8]);
        assert_eq!(
            sub("a100-sxm4-40gb").precision_support().native.to_vec(),
            [F32, F16, Bf16, Int8]
        );
        assert_eq!(
            sub("h100-sxm").precision_support().native.to_vec(),
            [F32, F16, Bf16, Fp8, Int8]
        );
        assert_eq!(
            sub("apple-m1").precision_support().native.to_vec(),
            [F32, F16, Bf16]
        );
        assert_eq!(sub("ring-edge").precision_support().native.to_vec(), [Int8]);
    }

    #[test]
    fn bf16_on_int8_only_array_is_rejected() {
        let e = sub("gemmini")
            .resolve(&Precisions::all(Precision::Bf16))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`gemmini`") && msg.contains("bf16 weights") && msg.contains("int8 only"),
            "{msg}"
        );
        assert!(e.help().contains("--precision int8") && e.help().contains("array.quantise: [bf16]"));
        // bf16 activations with int8 weights: the activations are named
        let e = sub("flat-edge").resolve(&p("int8", "bf16", "int8")).unwrap_err();
        assert!(e.to_string().contains("bf16 activations"), "{e}");
        // declared quantisation makes it run, as int8 in storage and arithmetic
        let q = set("gemmini", "array.quantise", "bf16");
        let r = q.resolve(&Precisions::all(Precision::Bf16)).unwrap();
        assert_eq!(r.weights.rule, Rule::Quantised(Int8));
        assert_eq!(r.stored(), Precisions::all(Precision::Int8));
        assert_eq!(
            r.weights.description(),
            "bf16 quantised to int8 (declared by the substrate)"
        );
    }

    #[test]
    fn int4_on_int8_array_runs_at_int8_rate() {
        let g = sub("gemmini");
        let r = g.resolve(&Precisions::all(Precision::Int4)).unwrap();
        assert_eq!((r.weight_gemm, r.attention_gemm), (Int8, Int8));
        assert_eq!(r.weights.rule, Rule::Dequantised(Int8));
        assert_eq!(r.weights.bits(), 4.0); // stored at its real bits
        assert_eq!(r.activations.rule, Rule::Widened(Int8));
        assert_eq!(g.native_class(Int4), Int8);
        assert_eq!(g.matrix_peak(Int4), g.matrix_peak(Int8));
        // a GPU without an int4 peak: int8's
        let a = sub("a100-sxm4-40gb");
        assert_eq!(
            a.resolve(&Precisions::all(Precision::Int4)).unwrap().weight_gemm,
            Int8
        );
        assert_eq!(a.matrix_peak(Int4).get(), 624e12);
    }

    #[test]
    fn weight_only_quantisation_is_dequantised_to_the_native_type() {
        // GGUF k-quant on an int8 array with int8 activations: int8 GEMMs, 4.85 bits stored
        let r = sub("gemmini").resolve(&p("Q4_K_M", "int8", "int8")).unwrap();
        assert_eq!(r.weights.description(), "Q4_K_M (4.85 b/w) dequantised to int8");
        assert_eq!((r.weights.bits(), r.weight_gemm), (4.85, Int8));
        // the llama.cpp case on a GPU: fp16 GEMMs over 4.5-bit weights
        let r = sub("apple-m1").resolve(&p("Q4_0", "fp16", "fp16")).unwrap();
        assert_eq!((r.weight_gemm, r.weights.rule), (F16, Rule::Dequantised(F16)));
        assert_eq!(r.weights.bits(), 4.5);
        assert_eq!(r.weights.description(), "Q4_0 (4.5 b/w) dequantised to fp16");
        // W8A16 runs fp16, not int8; int8 on Apple (no integer units) runs fp16
        let r = sub("a100-sxm4-40gb").resolve(&p("int8", "fp16", "fp16")).unwrap();
        assert_eq!((r.weight_gemm, r.weights.rule), (F16, Rule::Dequantised(F16)));
        let r = sub("apple-m1")
            .resolve(&Precisions::all(Precision::Int8))
            .unwrap();
        assert_eq!((r.weight_gemm, r.activations.rule), (F16, Rule::Widened(F16)));
    }

    #[test]
    fn gpu_floats_by_the_data_sheet() {
        // fp8 on an A100 (no fp8): fp16 GEMMs over fp8 storage; native on an H100
        let r = sub("a100-sxm4-40gb")
            .resolve(&Precisions::all(Precision::Fp8))
            .unwrap();
        assert_eq!((r.weight_gemm, r.weights.rule), (F16, Rule::Dequantised(F16)));
        assert_eq!(r.activations.description(), "fp8 widened to fp16");
        let r = sub("h100-sxm").resolve(&Precisions::all(Precision::Fp8)).unwrap();
        assert_eq!((r.weight_gemm, r.weights.rule), (Fp8, Rule::Native));
        // bf16 on a GPU without bf16 units (a T4 or V100): fp32
        let mut t = sub("a100-sxm4-40gb");
        if let Kind::Gpu(g) = &mut t.kind {
            g.matrix_peak.remove(&Bf16);
        }
        let r = t.resolve(&Precisions::all(Precision::Bf16)).unwrap();
        assert_eq!((r.weight_gemm, r.weights.rule), (F32, Rule::Widened(F32)));
        assert_eq!(t.matrix_peak(Bf16).get(), 19.5e12);
        // the GeForce BF16 rate is the FP32-accumulate one, half the FP16-accumulate figure
        let g = sub("rtx-3090");
        assert_eq!(g.matrix_peak(Bf16).get() * 2.0, g.matrix_peak(F16).get());
    }

    /// Every shipped GPU since Ampere / CDNA 2 runs bf16 on its matrix units (at the fp16 rate,
    /// or the FP32-accumulate rate on GeForce): a file that forgets the key silently prices
    /// bf16 at the fp32 rate (the B200, L4 and CDNA 3/4 files once did: a bf16 GEMM on a B200
    /// came out 28 times slower than fp16). Only the parts without bf16 units may omit it.
    #[test]
    fn every_shipped_gpu_with_bf16_units_declares_them() {
        for (name, s, has) in declaring(Bf16, &["p100", "t4", "v100-sxm2"]) {
            if has {
                let r = s.resolve(&Precisions::all(Precision::Bf16)).unwrap();
                assert_eq!((r.weight_gemm, r.weights.rule), (Bf16, Rule::Native), "{name}");
                assert!(s.matrix_peak(Bf16).get() <= s.matrix_peak(F16).get(), "{name}");
            }
        }
    }

    /// Every shipped GPU with whether its `matrix_peak` has `class`, which must be so exactly
    /// for the GPUs not named in `without`.
    fn declaring(class: ComputeClass, without: &[&str]) -> Vec<(&'static str, Substrate, bool)> {
        let mut out = Vec::new();
        for name in crate::substrate::names() {
            let s = sub(name);
            let Kind::Gpu(g) = &s.kind else { continue };
            let has = g.matrix_peak.contains_key(&class);
            assert_eq!(
                has,
                !without.contains(&name),
                "{name}: matrix_peak.{}",
                class.name()
            );
            out.push((name, s, has));
        }
        out
    }

    /// The same for FP8: Hopper, Ada, Blackwell, CDNA 3/4 and Gaudi 2 run it natively; the
    /// older parts (and Apple's, Jetson Orin, Intel's Max) widen it to fp16. A file of an FP8
    /// chip that forgets the key prices FP8 GEMMs at the fp16 rate (the RTX 4090's once did).
    #[test]
    fn every_shipped_gpu_with_fp8_units_declares_them() {
        let without = [
            "a100-pcie-80gb",
            "a100-sxm4-40gb",
            "a100-sxm4-80gb",
            "a40",
            "apple-m1",
            "apple-m1-max",
            "apple-m2-ultra",
            "apple-m3-max",
            "jetson-agx-orin-64gb",
            "jetson-orin-nano-super",
            "max-1550",
            "max-1550-stack",
            "mi210",
            "mi250-gcd",
            "p100",
            "rtx-3070",
            "rtx-3080-10gb",
            "rtx-3080-ti",
            "rtx-3090",
            "rtx-3090-ti",
            "rtx-a6000",
            "t4",
            "v100-sxm2",
        ];
        for (name, s, has) in declaring(Fp8, &without) {
            let r = s.resolve(&Precisions::all(Precision::Fp8)).unwrap();
            let rule = if has { Rule::Native } else { Rule::Dequantised(F16) };
            assert_eq!(r.weights.rule, rule, "{name}");
        }
    }

    /// The GeForce files state one convention (their comments and the README): `fp16` is the
    /// FP16-accumulate tensor rate llama.cpp's cuBLAS GEMMs run at, `bf16` the FP32-accumulate
    /// rate (half), INT8 twice `fp16`, and on Ada FP8 at its FP32-accumulate rate (= `fp16`).
    /// The RTX 4090's file once broke it (fp16 at the FP32-accumulate rate, half the INT8
    /// rate, no FP8), which a hardware-map override hid from the public-file figures.
    #[test]
    fn geforce_files_state_the_same_tensor_rate_convention() {
        let close = |a: f64, b: f64| (a / b - 1.0).abs() < 2e-3;
        let mut seen = 0;
        // GeForce only: the professional Ada cards (rtx-4000-ada, ...) run FP32 accumulate at
        // the full rate
        let geforce = |n: &&str| (n.starts_with("rtx-30") || n.starts_with("rtx-40")) && !n.ends_with("-ada");
        for name in crate::substrate::names().filter(geforce) {
            let g = sub(name);
            let (f16, b16, i8) = (
                g.matrix_peak(F16).get(),
                g.matrix_peak(Bf16).get(),
                g.matrix_peak(Int8).get(),
            );
            assert!(
                close(b16 * 2.0, f16),
                "{name}: bf16 {b16} is not half of fp16 {f16}"
            );
            assert!(close(i8, 2.0 * f16), "{name}: int8 {i8} is not twice fp16 {f16}");
            if name.starts_with("rtx-40") {
                let Kind::Gpu(gpu) = &g.kind else {
                    panic!("{name} is a GPU")
                };
                let f8 = gpu.matrix_peak.get(&Fp8).map(|v| v.get());
                assert!(
                    f8.is_some_and(|f8| close(f8, f16)),
                    "{name}: fp8 {f8:?} against fp16 {f16}"
                );
            }
            seen += 1;
        }
        assert!(seen >= 8, "{seen} GeForce files");
    }

    #[test]
    fn the_ring_quantises_every_format_to_int8() {
        let ring = sub("ring-edge");
        let r = ring.resolve(&p("Q4_0", "bf16", "fp16")).unwrap();
        assert_eq!(r.stored(), Precisions::all(Precision::Int8));
        assert_eq!(
            r.weights.description(),
            "Q4_0 (4.5 b/w) quantised to int8 (the ring stores and computes 8-bit values)"
        );
        assert_eq!(
            ring.resolve(&Precisions::all(Precision::Int8))
                .unwrap()
                .weights
                .rule,
            Rule::Native
        );
    }

    #[test]
    fn operands_native_alone_but_without_a_common_type() {
        let s = set("gemmini", "array.precisions", "int8, fp8");
        assert_eq!(s.precision_support().native.to_vec(), [Fp8, Int8]);
        let e = s.resolve(&p("int8", "fp8", "fp8")).unwrap_err();
        assert!(matches!(e, PrecisionError::NoCommonType { .. }), "{e}");
        assert!(e.to_string().contains("fp8 activations with int8 weights"), "{e}");
        // forced (a library caller that did not check): priced as int8, the error kept
        let (r, err) = s.resolve_forced(&p("int8", "fp8", "fp8"));
        assert!(err.is_some());
        assert_eq!(r.weight_gemm, Int8);
    }

    #[test]
    fn systolic_files_must_state_their_precisions() {
        let src = crate::substrate::SHIPPED
            .iter()
            .find(|(n, _)| *n == "gemmini")
            .map(|(_, s)| *s)
            .unwrap();
        let without = src.replace(", precisions: [int8]", "");
        let msg = |src: &str| {
            let e = crate::substrate::load_str(src, "g.yaml", &[]).unwrap_err();
            e.errors()
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let e = msg(&without);
        assert!(e.contains("array.precisions"), "{e}");
        let e = msg(&src.replace("precisions: [int8]", "precisions: [int7]"));
        assert!(e.contains("int7"), "{e}");
    }
}
