//! Budgets: constraints such as `tpot<=20ms`, `weights+kv<=8GB`, `loss<=3.8`.
//!
//! The left side is a metric or a sum of metrics of the same dimension; the right side is a
//! quantity in the expression language (`20 ms`, `8 GB`, a plain number for loss).

use crate::dsl::{self, Dim, Quantity};
use serde::Serialize;
use std::fmt;

/// A quantity a candidate is measured by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Time to first token, seconds.
    Ttft,
    /// Time per output token, seconds.
    Tpot,
    /// Prefill plus all generated tokens, seconds.
    Latency,
    /// Weight bytes (all experts).
    Weights,
    /// KV-cache bytes at the workload's full context.
    Kv,
    /// Energy per generated token, joules.
    Energy,
    /// Predicted loss (nats).
    Loss,
    /// Parameters.
    Params,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Ttft,
        Metric::Tpot,
        Metric::Latency,
        Metric::Weights,
        Metric::Kv,
        Metric::Energy,
        Metric::Loss,
        Metric::Params,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft",
            Metric::Tpot => "tpot",
            Metric::Latency => "latency",
            Metric::Weights => "weights",
            Metric::Kv => "kv",
            Metric::Energy => "energy",
            Metric::Loss => "loss",
            Metric::Params => "params",
        }
    }

    fn dim(self) -> Dim {
        match self {
            Metric::Ttft | Metric::Tpot | Metric::Latency => Dim::SECONDS,
            Metric::Weights | Metric::Kv => Dim::BYTES,
            Metric::Energy => Dim::JOULES,
            Metric::Loss | Metric::Params => Dim::NONE,
        }
    }

    fn parse(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                format!("unknown metric `{s}`: expected one of {}", names.join(", "))
            })
    }
}

/// Metric values of one candidate, in base units (seconds, bytes, joules, nats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub ttft: f64,
    pub tpot: f64,
    pub latency: f64,
    pub weights: f64,
    pub kv: f64,
    pub energy: f64,
    pub loss: f64,
    pub params: f64,
}

impl Metrics {
    pub fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::Ttft => self.ttft,
            Metric::Tpot => self.tpot,
            Metric::Latency => self.latency,
            Metric::Weights => self.weights,
            Metric::Kv => self.kv,
            Metric::Energy => self.energy,
            Metric::Loss => self.loss,
            Metric::Params => self.params,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Cmp {
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">=")]
    Ge,
}

/// `lhs <= limit` (or `>=`), lhs a sum of metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Budget {
    pub text: String,
    pub terms: Vec<Metric>,
    pub cmp: Cmp,
    /// The limit in the metrics' base unit.
    pub limit: f64,
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Budget {
    /// Parses `metric[+metric...] (<=|>=) quantity`.
    pub fn parse(text: &str) -> Result<Budget, String> {
        let (lhs, cmp, rhs) = if let Some((l, r)) = text.split_once("<=") {
            (l, Cmp::Le, r)
        } else if let Some((l, r)) = text.split_once(">=") {
            (l, Cmp::Ge, r)
        } else {
            return Err(format!(
                "budget `{text}`: expected <metric> <= <value>, e.g. tpot<=20ms or weights+kv<=8GB"
            ));
        };
        let terms = lhs
            .split('+')
            .map(|t| Metric::parse(t.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("budget `{text}`: {e}"))?;
        let dim = terms[0].dim();
        if let Some(t) = terms.iter().find(|t| t.dim() != dim) {
            return Err(format!(
                "budget `{text}`: `{}` and `{}` have different units and cannot be added",
                terms[0].name(),
                t.name()
            ));
        }
        let q: Quantity = dsl::eval_str(rhs.trim(), &dsl::no_names)
            .map_err(|e| format!("budget `{text}`: {e}"))?
            .as_scalar()
            .ok_or_else(|| format!("budget `{text}`: the limit must be one value, not a range or set"))?;
        let limit = q.in_dim(dim).map_err(|e| format!("budget `{text}`: {e}"))?;
        Ok(Budget {
            text: text.trim().to_string(),
            terms,
            cmp,
            limit,
        })
    }

    pub fn value(&self, m: &Metrics) -> f64 {
        self.terms.iter().map(|t| m.get(*t)).sum()
    }

    /// 0 when met, else the relative amount by which it is missed.
    pub fn violation(&self, m: &Metrics) -> f64 {
        let v = self.value(m);
        let miss = match self.cmp {
            Cmp::Le => v - self.limit,
            Cmp::Ge => self.limit - v,
        };
        if miss <= 0.0 {
            0.0
        } else {
            miss / self.limit.abs().max(f64::MIN_POSITIVE)
        }
    }

    /// How far the value is from the limit, as a fraction of the limit (positive = slack).
    pub fn slack(&self, m: &Metrics) -> f64 {
        let v = self.value(m);
        let s = match self.cmp {
            Cmp::Le => self.limit - v,
            Cmp::Ge => v - self.limit,
        };
        s / self.limit.abs().max(f64::MIN_POSITIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_budgets() {
        let b = Budget::parse("tpot<=20ms").unwrap();
        assert_eq!(b.terms, [Metric::Tpot]);
        assert!((b.limit - 0.02).abs() < 1e-15);
        let b = Budget::parse("weights+kv<=8GB").unwrap();
        assert_eq!(b.terms, [Metric::Weights, Metric::Kv]);
        assert_eq!(b.limit, 8e9);
        let b = Budget::parse("loss <= 3.8").unwrap();
        assert_eq!(b.limit, 3.8);
        let m = Metrics {
            loss: 3.99,
            ..Default::default()
        };
        assert!((b.violation(&m) - 0.05).abs() < 1e-12);
        assert!(Budget::parse("tpot<=8GB").is_err());
        assert!(Budget::parse("weights+tpot<=1").is_err());
        assert!(Budget::parse("speed<=1").is_err());
        assert!(Budget::parse("tpot=1ms").is_err());
        assert!(Budget::parse("tpot<=20").is_err(), "a bare number is not a time");
    }
}
