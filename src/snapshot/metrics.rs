//! The metrics a snapshot records per case, their units and default tolerances, and the
//! rounding of recorded values.

use crate::dsl::Dim;
use crate::sim::RunSummary;

/// One numeric metric of a run summary.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The key in snapshot files, tolerances and reports (the field of `sim --format json`).
    pub name: &'static str,
    /// The unit of the recorded value (SI base unit; `tokens/s` for throughput).
    pub unit: &'static str,
    /// The dimension an absolute tolerance is written in (`"10 us"`, `"1 mJ"`, `"1 MB"`).
    pub dim: Dim,
    /// Default relative tolerance (a fraction).
    pub rel: f64,
    /// Default absolute tolerance (in `unit`).
    pub abs: f64,
    pub get: fn(&RunSummary) -> f64,
}

/// Default relative tolerance of times, throughput, energies and DRAM traffic: 1%.
const COST_REL: f64 = 0.01;

/// Every numeric metric, in the order reports list them. Weights and KV bytes are closed
/// forms of the model and its precision, so any change is reported by default.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "ttft_s",
        unit: "s",
        dim: Dim::SECONDS,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.ttft_s,
    },
    Metric {
        name: "tpot_s",
        unit: "s",
        dim: Dim::SECONDS,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.tpot_s,
    },
    Metric {
        name: "tokens_per_s",
        unit: "tokens/s",
        dim: Dim::NONE,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.tokens_per_s,
    },
    Metric {
        name: "energy_per_token_j",
        unit: "J",
        dim: Dim::JOULES,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.energy_per_token_j,
    },
    Metric {
        name: "energy_per_processed_token_j",
        unit: "J",
        dim: Dim::JOULES,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.energy_per_processed_token_j,
    },
    Metric {
        name: "prefill_energy_j",
        unit: "J",
        dim: Dim::JOULES,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.prefill_energy_j,
    },
    Metric {
        name: "decode_energy_j",
        unit: "J",
        dim: Dim::JOULES,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.decode_energy_j,
    },
    Metric {
        name: "prefill_dram_bytes",
        unit: "B",
        dim: Dim::BYTES,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.prefill.dram_bytes.get(),
    },
    Metric {
        name: "decode_dram_bytes",
        unit: "B",
        dim: Dim::BYTES,
        rel: COST_REL,
        abs: 0.0,
        get: |s| s.decode.dram_bytes.get(),
    },
    Metric {
        name: "weight_bytes",
        unit: "B",
        dim: Dim::BYTES,
        rel: 0.0,
        abs: 0.0,
        get: |s| s.weight_bytes,
    },
    Metric {
        name: "kv_bytes",
        unit: "B",
        dim: Dim::BYTES,
        rel: 0.0,
        abs: 0.0,
        get: |s| s.kv_bytes,
    },
];

/// The tolerance key of the top ops' shares of their phase's op time (a fraction; default
/// absolute tolerance 0.02, i.e. two percentage points).
pub const TOP_OP_SHARE: Metric = Metric {
    name: "top_op_share",
    unit: "",
    dim: Dim::NONE,
    rel: 0.0,
    abs: 0.02,
    get: |_| f64::NAN,
};

/// Every key a tolerance can name: the metrics, then [`TOP_OP_SHARE`].
pub(super) fn tolerance_keys() -> impl Iterator<Item = &'static Metric> {
    METRICS.iter().chain(std::iter::once(&TOP_OP_SHARE))
}

/// `x` rounded to `digits` significant decimal digits (0 and non-finite values unchanged):
/// the decimal text a snapshot file holds, read back. Exact decimal rounding of the binary
/// value (Rust's formatting), so the same `x` rounds the same way everywhere.
pub fn round_to(x: f64, digits: u32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let precision = digits.clamp(1, 17) as usize - 1;
    format!("{x:.precision$e}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_significant_digits() {
        assert_eq!(round_to(0.176_43, 4), 0.1764);
        assert_eq!(round_to(71_449_876_543.0, 4), 71_450_000_000.0);
        assert_eq!(round_to(-2.345_67e-5, 3), -2.35e-5);
        assert_eq!(round_to(0.0, 4), 0.0);
        assert!(round_to(f64::NAN, 4).is_nan());
        assert_eq!(round_to(f64::INFINITY, 4), f64::INFINITY);
        assert_eq!(round_to(1.0 / 3.0, 17), 1.0 / 3.0);
    }

    #[test]
    fn metric_names_are_unique() {
        let mut names: Vec<&str> = tolerance_keys().map(|m| m.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
