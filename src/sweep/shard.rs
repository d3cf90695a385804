//! Sharded sweeps: which part of a grid a shard evaluates (`--shard i/N`, or the index and
//! count from a cluster's environment: Slurm job arrays, Kubernetes Indexed Jobs), the exact
//! state a sweep records for merging (`outcome.json`, [`State`]), and putting shards back
//! together ([`combine`], [`State::restore`]): the union's counts, loss tally, frontier,
//! region map, best designs and plot sample, equal to what one run over the whole range
//! computes.
//!
//! Why this is exact: every fold of the sweep is either a sum (counts, tallies, region cells),
//! a minimum with ties to the lowest grid index (best designs, region losses), a Pareto set
//! whose dominance (with ties to the lowest index) is a strict partial order, so the
//! non-dominated set of the union is the non-dominated set of the shards' non-dominated sets
//! (the frontier), or a selection by grid index (the plot sample, taken every
//! `grid_points / 4000` indices of the whole grid, not of the shard). The rows of the
//! frontier and of the best designs are recorded in full ([`RowRecord`], exact values); a
//! merge rebuilds them from the records and evaluates one of them again as a spot check
//! (candidates are evaluated independently and deterministically, so a changed cost model
//! shows). Evaluating every shown row again was 23% of a merge's instructions on codesign-orin
//! in 8 shards, and 4% of the whole sweep's.

use super::budget::Metrics;
use super::frontier::{FrontPoint, Frontier};
use super::run::{Best, Cell, Outcome, Row, SweepSpec, evaluate};
use crate::quality::{LossPrediction, LossTally};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;

/// The `format` of [`State`] this build writes and reads.
pub const STATE_FORMAT: u32 = 3;

/// Occurs when a shard cannot be resolved, or shards cannot be put back together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShardError {
    /// Occurs when `--shard` is not `i/N`, `auto` or `auto/N`.
    #[error("--shard `{spec}`: {reason}")]
    Spec { spec: String, reason: String },
    /// Occurs when `--shard auto` finds no shard index in the environment.
    #[error(
        "--shard {spec}: no shard index in the environment: expected SLURM_ARRAY_TASK_ID (a Slurm \
         job array), JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or LLMFORGE_SHARD_INDEX"
    )]
    NoEnvironment { spec: String },
    /// Occurs when an environment variable holds something other than the number expected.
    #[error("--shard auto: {name}=`{value}`: {expected}")]
    Variable {
        name: String,
        value: String,
        expected: String,
    },
    /// Occurs when the environment gives an index but nothing gives the count.
    #[error(
        "--shard auto: {from} gives the shard index but not the number of shards: give it as \
         --shard auto/N (N = {what}) or in LLMFORGE_SHARD_COUNT"
    )]
    NoCount { from: String, what: &'static str },
    /// Occurs when `--shard auto/N` and the environment disagree on the number of shards.
    #[error("--shard auto/{given}: the environment says {count} shards ({from})")]
    CountMismatch { given: u64, count: u64, from: String },
    /// Occurs when the index is not below the count.
    #[error("--shard: index {index} is not below the number of shards {count} ({from}); indices run 0..N-1")]
    IndexOutOfRange { index: u64, count: u64, from: String },
    /// Occurs when two shards cover some of the same grid indices.
    #[error(
        "shards overlap: `{first}` covers grid indices {}..{} and `{second}` covers {}..{}; \
         give each part of the grid once",
        first_range.start, first_range.end, second_range.start, second_range.end
    )]
    Overlap {
        first: String,
        first_range: Range<u64>,
        second: String,
        second_range: Range<u64>,
    },
    /// Occurs when no shard covers some grid indices.
    #[error("grid indices {}..{} of {grid_points} are missing: no shard covers them ({context})", missing.start, missing.end)]
    Missing {
        missing: Range<u64>,
        grid_points: u64,
        context: String,
    },
    /// Occurs when shards were cut from grids of different sizes.
    #[error(
        "`{first}` is a shard of a grid of {first_points} points and `{second}` of one of {second_points}: \
         not the same grid"
    )]
    GridPoints {
        first: String,
        first_points: u64,
        second: String,
        second_points: u64,
    },
    /// Occurs when a shard's state was written by an unknown format, or is inconsistent.
    #[error("`{shard}`: {reason}")]
    State { shard: String, reason: String },
    /// Occurs when a recorded candidate does not evaluate to its recorded values.
    #[error(
        "`{shard}`: grid index {index} evaluates to {what} {now}, but the shard recorded {recorded}: \
         the inputs or the cost model changed since it ran"
    )]
    Reevaluation {
        shard: String,
        index: u64,
        what: String,
        recorded: String,
        now: String,
    },
}

/// Which part of a grid one run evaluates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
    /// Where the index came from, when not from the command line (e.g.
    /// `SLURM_ARRAY_TASK_ID=3, SLURM_ARRAY_TASK_COUNT=8`).
    pub from: Option<String>,
}

impl Shard {
    /// The grid indices of this shard of a grid of `len` points: contiguous ranges of sizes
    /// differing by at most one, covering `0..len` in order over `index = 0..count`.
    pub fn range(&self, len: u64) -> Range<u64> {
        let at = |i: u64| ((len as u128 * i as u128) / self.count as u128) as u64;
        at(self.index)..at(self.index + 1)
    }

    /// `i/N`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

fn number(name: &str, value: &str, expected: &str) -> Result<u64, ShardError> {
    value.trim().parse::<u64>().map_err(|_| ShardError::Variable {
        name: name.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    })
}

/// Resolves a `--shard` argument: `i/N`, `auto` (the index and count from the environment)
/// or `auto/N` (the index from the environment, N shards). `env` looks a variable up.
///
/// From the environment, in this order: a Slurm job array (`SLURM_ARRAY_TASK_ID`; the index
/// is counted from `SLURM_ARRAY_TASK_MIN` in steps of `SLURM_ARRAY_TASK_STEP`, the count is
/// `SLURM_ARRAY_TASK_COUNT`, or follows from `SLURM_ARRAY_TASK_MAX`), a Kubernetes Indexed Job
/// (`JOB_COMPLETION_INDEX`; the count is not in its environment: `auto/N` or
/// `LLMFORGE_SHARD_COUNT`), or `LLMFORGE_SHARD_INDEX` with `LLMFORGE_SHARD_COUNT` (any other
/// launcher).
pub fn resolve(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
    let bad = |reason: &str| ShardError::Spec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (index_part, count_part) = match spec.split_once('/') {
        Some((i, n)) => (i.trim(), Some(n.trim())),
        None => (spec.trim(), None),
    };
    let given = match count_part {
        Some(n) => Some(
            n.parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("expected i/N, auto or auto/N with N a whole number of at least 1"))?,
        ),
        None => None,
    };
    let shard = if index_part == "auto" {
        from_environment(spec, given, env)?
    } else {
        let index = index_part
            .parse::<u64>()
            .map_err(|_| bad("expected i/N (e.g. 3/8), auto or auto/N"))?;
        let count = given.ok_or_else(|| bad("expected i/N (e.g. 3/8), auto or auto/N"))?;
        Shard {
            index,
            count,
            from: None,
        }
    };
    if shard.index >= shard.count {
        return Err(ShardError::IndexOutOfRange {
            index: shard.index,
            count: shard.count,
            from: shard.from.clone().unwrap_or_else(|| format!("--shard {spec}")),
        });
    }
    Ok(shard)
}

fn from_environment(
    spec: &str,
    given: Option<u64>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Shard, ShardError> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let count_of =
        |from: String, found: Option<u64>, what: &'static str| -> Result<(u64, String), ShardError> {
            let from_count = match var("LLMFORGE_SHARD_COUNT") {
                Some(v) if found.is_none() => Some(number(
                    "LLMFORGE_SHARD_COUNT",
                    &v,
                    "expected the number of shards",
                )?),
                _ => found,
            };
            match (given, from_count) {
                (Some(g), Some(c)) if g != c => Err(ShardError::CountMismatch {
                    given: g,
                    count: c,
                    from,
                }),
                (Some(g), _) => Ok((g, from)),
                (None, Some(c)) if c >= 1 => Ok((c, from)),
                (None, Some(_)) => Err(ShardError::Variable {
                    name: "LLMFORGE_SHARD_COUNT".into(),
                    value: "0".into(),
                    expected: "expected at least 1 shard".into(),
                }),
                (None, None) => Err(ShardError::NoCount { from, what }),
            }
        };
    if let Some(id) = var("SLURM_ARRAY_TASK_ID") {
        let array = "expected a job array task id (sbatch --array)";
        let id = number("SLURM_ARRAY_TASK_ID", &id, array)?;
        let min = match var("SLURM_ARRAY_TASK_MIN") {
            Some(v) => number("SLURM_ARRAY_TASK_MIN", &v, array)?,
            None => 0,
        };
        let step = match var("SLURM_ARRAY_TASK_STEP") {
            Some(v) => number("SLURM_ARRAY_TASK_STEP", &v, "expected a step of at least 1")?.max(1),
            None => 1,
        };
        if id < min || (id - min) % step != 0 {
            return Err(ShardError::Variable {
                name: "SLURM_ARRAY_TASK_ID".into(),
                value: id.to_string(),
                expected: format!(
                    "not on the array's range from SLURM_ARRAY_TASK_MIN={min} in steps of {step}: use --array=0-<N-1>"
                ),
            });
        }
        let index = (id - min) / step;
        let count = match var("SLURM_ARRAY_TASK_COUNT") {
            Some(v) => Some(number(
                "SLURM_ARRAY_TASK_COUNT",
                &v,
                "expected the array's task count",
            )?),
            None => match var("SLURM_ARRAY_TASK_MAX") {
                Some(v) => {
                    let max = number("SLURM_ARRAY_TASK_MAX", &v, array)?;
                    Some(max.saturating_sub(min) / step + 1)
                }
                None => None,
            },
        };
        let mut from = format!("SLURM_ARRAY_TASK_ID={id}");
        if min != 0 {
            from.push_str(&format!(", SLURM_ARRAY_TASK_MIN={min}"));
        }
        if let Some(c) = count {
            from.push_str(&format!(", {c} array tasks"));
        }
        let (count, from) = count_of(from, count, "the array's task count")?;
        return Ok(Shard {
            index,
            count,
            from: Some(from),
        });
    }
    for (name, what) in [
        ("JOB_COMPLETION_INDEX", "the Job's completions"),
        ("LLMFORGE_SHARD_INDEX", "the number of shards"),
    ] {
        if let Some(v) = var(name) {
            let index = number(name, &v, "expected a shard index (0, 1, ...)")?;
            let (count, from) = count_of(format!("{name}={index}"), None, what)?;
            return Ok(Shard {
                index,
                count,
                from: Some(from),
            });
        }
    }
    Err(ShardError::NoEnvironment {
        spec: spec.to_string(),
    })
}

/// A frontier point as recorded: grid index, x (the latency metric), loss and its row.
/// Saved in columns ([`front_columns`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FrontRecord {
    pub index: u64,
    pub x: f64,
    pub loss: f64,
    pub row: RowRecord,
}

/// A best design as recorded: grid index, loss and its row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestRecord {
    pub index: u64,
    #[serde(with = "exact")]
    pub loss: f64,
    pub row: RowRecord,
}

/// Numbers recorded exactly, and read back fast: each `f64` of the state is written as a
/// string holding its shortest round-trip decimal (`"0.0010700928228021976"`, `"1e-300"`, or
/// `"inf"`, `"-inf"`, `"NaN"`; by ryu) and read with Rust's exact float parser. (serde_json's exact parser,
/// `float_roundtrip`, takes ~900 instructions a number: reading 8 shards' states was 23% of
/// a merge on codesign-orin.) Plain JSON numbers are read too.
pub mod exact {
    use serde::{Deserializer, Serializer, de};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_str(ryu::Buffer::new().format_finite(*v))
        } else {
            s.collect_str(v)
        }
    }

    struct V;

    impl de::Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, or a string holding one (`inf`, `-inf` and `NaN` too)")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            v.parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(V)
    }

    /// The same for an `Option<f64>` (`null` for `None`).
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super")] f64);

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// A candidate's row as recorded, exactly: what its output lines show beyond the grid point
/// and the model (both follow from the grid index) and the loss (recorded next to it); which
/// loss model scored it follows from the loss model's domain. Saved as an array in field
/// order (`[ttft, tpot, latency, weights, kv, energy, params, sim_tpot, active_params, sigma,
/// fits_memory, feasible, binding]`): a shard records its whole frontier, and the names
/// repeated on every row were half of the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "RowArray", from = "RowArray")]
pub struct RowRecord {
    pub ttft: f64,
    pub tpot: f64,
    pub latency: f64,
    pub weights: f64,
    pub kv: f64,
    pub energy: f64,
    pub params: f64,
    pub sim_tpot: Option<f64>,
    pub active_params: u64,
    pub sigma: f64,
    pub fits_memory: bool,
    pub feasible: bool,
    pub binding: Option<usize>,
}

/// [`RowRecord`] as saved.
#[derive(Serialize, Deserialize)]
struct RowArray(
    #[serde(with = "exact")] f64,
    #[serde(with = "exact")] f64,
    #[serde(with = "exact")] f64,
    #[serde(with = "exact")] f64,
    #[serde(with = "exact")] f64,
    #[serde(with = "exact")] f64,
    #[serde(with = "exact")] f64,
    #[serde(with = "exact::opt")] Option<f64>,
    u64,
    #[serde(with = "exact")] f64,
    bool,
    bool,
    Option<usize>,
);

impl From<RowRecord> for RowArray {
    fn from(r: RowRecord) -> RowArray {
        RowArray(
            r.ttft,
            r.tpot,
            r.latency,
            r.weights,
            r.kv,
            r.energy,
            r.params,
            r.sim_tpot,
            r.active_params,
            r.sigma,
            r.fits_memory,
            r.feasible,
            r.binding,
        )
    }
}

impl From<RowArray> for RowRecord {
    fn from(a: RowArray) -> RowRecord {
        let RowArray(
            ttft,
            tpot,
            latency,
            weights,
            kv,
            energy,
            params,
            sim_tpot,
            active_params,
            sigma,
            fits_memory,
            feasible,
            binding,
        ) = a;
        RowRecord {
            ttft,
            tpot,
            latency,
            weights,
            kv,
            energy,
            params,
            sim_tpot,
            active_params,
            sigma,
            fits_memory,
            feasible,
            binding,
        }
    }
}

impl RowRecord {
    pub fn of(r: &Row) -> RowRecord {
        let m = &r.metrics;
        RowRecord {
            ttft: m.ttft,
            tpot: m.tpot,
            latency: m.latency,
            weights: m.weights,
            kv: m.kv,
            energy: m.energy,
            params: m.params,
            sim_tpot: r.sim_tpot,
            active_params: r.active_params,
            sigma: r.loss.sigma,
            fits_memory: r.fits_memory,
            feasible: r.feasible,
            binding: r.binding,
        }
    }
}

/// A region cell as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    pub x: String,
    pub y: String,
    pub candidates: u64,
    pub feasible: u64,
    #[serde(with = "exact::opt")]
    pub best_loss: Option<f64>,
}

/// A sampled candidate as recorded: x, loss and feasibility. Saved in columns
/// ([`sample_columns`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleRecord(pub f64, pub f64, pub bool);

/// A column's flags as saved: one byte each, 0 or 1.
fn flags(v: impl Iterator<Item = bool>) -> Vec<u8> {
    v.map(u8::from).collect()
}

/// The flag a saved byte holds, or an error naming the column.
fn flag<E: serde::de::Error>(column: &str, b: u8) -> Result<bool, E> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(E::custom(format!("`{column}` holds {b}, expected 0 or 1"))),
    }
}

/// Checks that saved columns have one length, naming the first that differs.
fn same_length<E: serde::de::Error>(what: &str, columns: &[(&str, usize)]) -> Result<usize, E> {
    let n = columns.first().map_or(0, |c| c.1);
    match columns.iter().find(|c| c.1 != n) {
        Some((name, len)) => Err(E::custom(format!(
            "{what}: column `{name}` has {len} values, `{}` has {n}",
            columns[0].0
        ))),
        None => Ok(n),
    }
}

/// A shard's frontier as saved (format 3): one packed column ([`crate::packed`]) per field
/// of [`FrontRecord`], in its order; `sim_tpot` holds 0 where `has_sim_tpot` is 0, `binding`
/// `u64::MAX` for none. A frontier of 131 points written as decimal strings took 1.2 M
/// instructions to read back; packed, it is exact and decoded in a few instructions a value.
pub mod front_columns {
    use super::{FrontRecord, RowRecord, flag, flags, same_length};
    use crate::packed;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Columns {
        #[serde(with = "packed::u64s")]
        index: Vec<u64>,
        #[serde(with = "packed::f64s")]
        x: Vec<f64>,
        #[serde(with = "packed::f64s")]
        loss: Vec<f64>,
        #[serde(with = "packed::f64s")]
        ttft: Vec<f64>,
        #[serde(with = "packed::f64s")]
        tpot: Vec<f64>,
        #[serde(with = "packed::f64s")]
        latency: Vec<f64>,
        #[serde(with = "packed::f64s")]
        weights: Vec<f64>,
        #[serde(with = "packed::f64s")]
        kv: Vec<f64>,
        #[serde(with = "packed::f64s")]
        energy: Vec<f64>,
        #[serde(with = "packed::f64s")]
        params: Vec<f64>,
        #[serde(with = "packed::u8s")]
        has_sim_tpot: Vec<u8>,
        #[serde(with = "packed::f64s")]
        sim_tpot: Vec<f64>,
        #[serde(with = "packed::u64s")]
        active_params: Vec<u64>,
        #[serde(with = "packed::f64s")]
        sigma: Vec<f64>,
        #[serde(with = "packed::u8s")]
        fits_memory: Vec<u8>,
        #[serde(with = "packed::u8s")]
        feasible: Vec<u8>,
        #[serde(with = "packed::u64s")]
        binding: Vec<u64>,
    }

    pub fn serialize<S: Serializer>(v: &[FrontRecord], s: S) -> Result<S::Ok, S::Error> {
        let col = |f: fn(&FrontRecord) -> f64| v.iter().map(f).collect::<Vec<f64>>();
        Columns {
            index: v.iter().map(|p| p.index).collect(),
            x: col(|p| p.x),
            loss: col(|p| p.loss),
            ttft: col(|p| p.row.ttft),
            tpot: col(|p| p.row.tpot),
            latency: col(|p| p.row.latency),
            weights: col(|p| p.row.weights),
            kv: col(|p| p.row.kv),
            energy: col(|p| p.row.energy),
            params: col(|p| p.row.params),
            has_sim_tpot: flags(v.iter().map(|p| p.row.sim_tpot.is_some())),
            sim_tpot: col(|p| p.row.sim_tpot.unwrap_or(0.0)),
            active_params: v.iter().map(|p| p.row.active_params).collect(),
            sigma: col(|p| p.row.sigma),
            fits_memory: flags(v.iter().map(|p| p.row.fits_memory)),
            feasible: flags(v.iter().map(|p| p.row.feasible)),
            binding: v
                .iter()
                .map(|p| p.row.binding.map_or(u64::MAX, |b| b as u64))
                .collect(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FrontRecord>, D::Error> {
        use serde::de::Error;
        let c = Columns::deserialize(d)?;
        let n = same_length::<D::Error>(
            "frontier",
            &[
                ("index", c.index.len()),
                ("x", c.x.len()),
                ("loss", c.loss.len()),
                ("ttft", c.ttft.len()),
                ("tpot", c.tpot.len()),
                ("latency", c.latency.len()),
                ("weights", c.weights.len()),
                ("kv", c.kv.len()),
                ("energy", c.energy.len()),
                ("params", c.params.len()),
                ("has_sim_tpot", c.has_sim_tpot.len()),
                ("sim_tpot", c.sim_tpot.len()),
                ("active_params", c.active_params.len()),
                ("sigma", c.sigma.len()),
                ("fits_memory", c.fits_memory.len()),
                ("feasible", c.feasible.len()),
                ("binding", c.binding.len()),
            ],
        )?;
        (0..n)
            .map(|k| {
                Ok(FrontRecord {
                    index: c.index[k],
                    x: c.x[k],
                    loss: c.loss[k],
                    row: RowRecord {
                        ttft: c.ttft[k],
                        tpot: c.tpot[k],
                        latency: c.latency[k],
                        weights: c.weights[k],
                        kv: c.kv[k],
                        energy: c.energy[k],
                        params: c.params[k],
                        sim_tpot: flag::<D::Error>("has_sim_tpot", c.has_sim_tpot[k])?
                            .then_some(c.sim_tpot[k]),
                        active_params: c.active_params[k],
                        sigma: c.sigma[k],
                        fits_memory: flag("fits_memory", c.fits_memory[k])?,
                        feasible: flag("feasible", c.feasible[k])?,
                        binding: match c.binding[k] {
                            u64::MAX => None,
                            b => Some(usize::try_from(b).map_err(|_| {
                                D::Error::custom(format!("`binding` holds {b}, not a budget's number"))
                            })?),
                        },
                    },
                })
            })
            .collect()
    }
}

/// The plot sample as saved (format 3): packed columns `x`, `loss`, `feasible`.
pub mod sample_columns {
    use super::{SampleRecord, flag, flags, same_length};
    use crate::packed;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Columns {
        #[serde(with = "packed::f64s")]
        x: Vec<f64>,
        #[serde(with = "packed::f64s")]
        loss: Vec<f64>,
        #[serde(with = "packed::u8s")]
        feasible: Vec<u8>,
    }

    pub fn serialize<S: Serializer>(v: &[SampleRecord], s: S) -> Result<S::Ok, S::Error> {
        Columns {
            x: v.iter().map(|r| r.0).collect(),
            loss: v.iter().map(|r| r.1).collect(),
            feasible: flags(v.iter().map(|r| r.2)),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SampleRecord>, D::Error> {
        let c = Columns::deserialize(d)?;
        let n = same_length::<D::Error>(
            "sample",
            &[
                ("x", c.x.len()),
                ("loss", c.loss.len()),
                ("feasible", c.feasible.len()),
            ],
        )?;
        (0..n)
            .map(|k| Ok(SampleRecord(c.x[k], c.loss[k], flag("feasible", c.feasible[k])?)))
            .collect()
    }
}

/// Everything a sweep folds, exactly (`outcome.json`): enough to merge shards into the
/// outcome of one run over their union.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    /// The grid indices covered, `[start, end)`.
    pub range: [u64; 2],
    /// Points of the whole grid (after `--precision`).
    pub grid_points: u64,
    pub evaluated: u64,
    pub skipped: u64,
    pub feasible: u64,
    pub losses: LossTally,
    /// The frontier in increasing x.
    #[serde(with = "front_columns")]
    pub frontier: Vec<FrontRecord>,
    pub region: Vec<CellRecord>,
    /// Per budget, the best design meeting it alone.
    pub best_per_budget: Vec<Option<BestRecord>>,
    pub best_overall: Option<BestRecord>,
    #[serde(with = "sample_columns")]
    pub sample: Vec<SampleRecord>,
    pub interrupted: bool,
}

impl State {
    /// The state of a sweep's outcome over `range` of a grid of `grid_points`.
    pub fn of(o: &Outcome, range: Range<u64>, grid_points: u64) -> State {
        let best = |b: &Option<Best>| {
            b.as_ref().map(|b| BestRecord {
                index: b.row.point.index,
                loss: b.row.metrics.loss,
                row: RowRecord::of(&b.row),
            })
        };
        State {
            format: STATE_FORMAT,
            range: [range.start, range.end],
            grid_points,
            evaluated: o.evaluated,
            skipped: o.skipped,
            feasible: o.feasible,
            losses: o.losses.clone(),
            frontier: o
                .frontier
                .points()
                .map(|p| FrontRecord {
                    index: p.id,
                    x: p.x,
                    loss: p.y,
                    row: RowRecord::of(&o.frontier_rows[&p.id]),
                })
                .collect(),
            region: o
                .region
                .iter()
                .map(|((x, y), c)| CellRecord {
                    x: x.clone(),
                    y: y.clone(),
                    candidates: c.candidates,
                    feasible: c.feasible,
                    best_loss: c.best_loss,
                })
                .collect(),
            best_per_budget: o.best_per_budget.iter().map(best).collect(),
            best_overall: best(&o.best_overall),
            sample: o.sample.iter().map(|&(x, y, f)| SampleRecord(x, y, f)).collect(),
            interrupted: o.interrupted,
        }
    }

    pub fn range(&self) -> Range<u64> {
        self.range[0]..self.range[1]
    }

    /// `outcome.json`: compact JSON and a newline (a merge reads every shard's).
    pub fn to_json(&self) -> String {
        // plain structs of numbers, strings and booleans: cannot fail
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    /// Evaluates one recorded row again, the first of the frontier (else the best design), and
    /// compares it with its record bit for bit: a shard priced by another cost model, or whose
    /// record was edited, is refused. A merge checks every shard so.
    pub fn spot_check(&self, spec: &SweepSpec, shard: &str) -> Result<(), ShardError> {
        let first = (self.frontier.first().map(|p| (p.index, p.loss, &p.row)))
            .or_else(|| self.best_overall.as_ref().map(|b| (b.index, b.loss, &b.row)));
        let Some((index, loss, record)) = first else {
            return Ok(());
        };
        let now = evaluate(spec, index).ok_or_else(|| ShardError::State {
            shard: shard.to_string(),
            reason: format!("grid index {index} is not a valid candidate of the grid"),
        })?;
        const NAMES: [&str; 14] = [
            "ttft",
            "tpot",
            "latency",
            "weights",
            "kv",
            "energy",
            "params",
            "sim_tpot",
            "active_params",
            "sigma",
            "fits_memory",
            "feasible",
            "binding",
            "loss",
        ];
        // the record and the loss as saved (exact decimal strings), compared field by field
        let fields = |r: &RowRecord, loss: f64| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(a) = v.as_array_mut() {
                a.push(format!("{loss:?}").into());
            }
            v
        };
        let (was, is) = (
            fields(record, loss),
            fields(&RowRecord::of(&now), now.metrics.loss),
        );
        if let Some(k) = (0..NAMES.len()).find(|&k| was.get(k) != is.get(k)) {
            let show = |v: &serde_json::Value| {
                v.get(k).map_or("nothing".into(), |x| {
                    x.as_str().map_or(x.to_string(), str::to_string)
                })
            };
            return Err(ShardError::Reevaluation {
                shard: shard.to_string(),
                index,
                what: format!("the {}", NAMES[k]),
                recorded: show(&was),
                now: show(&is),
            });
        }
        Ok(())
    }

    /// The outcome this state records, its rows rebuilt from their records. `shard` names the
    /// state in errors.
    pub fn restore(&self, spec: &SweepSpec, shard: &str) -> Result<Outcome, ShardError> {
        let state_error = |reason: String| ShardError::State {
            shard: shard.to_string(),
            reason,
        };
        let row = |index: u64, loss: f64, r: &RowRecord| rebuild(spec, shard, index, loss, r);
        let mut out = Outcome {
            evaluated: self.evaluated,
            skipped: self.skipped,
            feasible: self.feasible,
            losses: self.losses.clone(),
            interrupted: self.interrupted,
            ..Outcome::default()
        };
        for p in &self.frontier {
            let r = row(p.index, p.loss, &p.row)?;
            let x = r.metrics.get(spec.x);
            if x.to_bits() != p.x.to_bits() {
                return Err(state_error(format!(
                    "grid index {}: its row's {} is {x:?}, its frontier point's {:?}",
                    p.index,
                    spec.x.name(),
                    p.x
                )));
            }
            if !out.frontier.insert(FrontPoint {
                x,
                y: r.metrics.loss,
                id: p.index,
            }) {
                return Err(state_error(format!(
                    "its frontier is not a Pareto set (grid index {} is dominated)",
                    p.index
                )));
            }
            out.frontier_rows.insert(p.index, r);
        }
        if out.frontier.len() != self.frontier.len() {
            return Err(state_error("its frontier is not a Pareto set".into()));
        }
        for c in &self.region {
            out.region.insert(
                (c.x.clone(), c.y.clone()),
                Cell {
                    candidates: c.candidates,
                    feasible: c.feasible,
                    best_loss: c.best_loss,
                },
            );
        }
        if self.best_per_budget.len() != spec.budgets.len() {
            return Err(state_error(format!(
                "it records {} budgets, the sweep has {}",
                self.best_per_budget.len(),
                spec.budgets.len()
            )));
        }
        for b in &self.best_per_budget {
            out.best_per_budget.push(match b {
                Some(b) => Some(Best {
                    row: row(b.index, b.loss, &b.row)?,
                }),
                None => None,
            });
        }
        out.best_overall = match &self.best_overall {
            Some(b) => Some(Best {
                row: row(b.index, b.loss, &b.row)?,
            }),
            None => None,
        };
        out.sample = self
            .sample
            .iter()
            .map(|&SampleRecord(x, y, f)| (x, y, f))
            .collect();
        Ok(out)
    }
}

/// The row a record gives at grid `index` with `loss` (`shard` names the state in errors).
fn rebuild(spec: &SweepSpec, shard: &str, index: u64, loss: f64, r: &RowRecord) -> Result<Row, ShardError> {
    let state_error = |reason: String| ShardError::State {
        shard: shard.to_string(),
        reason,
    };
    let point = spec
        .grid
        .point(index)
        .ok_or_else(|| state_error(format!("grid index {index} is not a valid candidate of the grid")))?;
    if r.binding.is_some_and(|k| k >= spec.budgets.len()) {
        return Err(state_error(format!(
            "grid index {index} is bound by budget {:?}, the sweep has {}",
            r.binding,
            spec.budgets.len()
        )));
    }
    let (scorer, outside) = spec.loss.scorer(&spec.grid.model(&point));
    Ok(Row {
        point,
        metrics: Metrics {
            ttft: r.ttft,
            tpot: r.tpot,
            latency: r.latency,
            weights: r.weights,
            kv: r.kv,
            energy: r.energy,
            loss,
            params: r.params,
        },
        sim_tpot: r.sim_tpot,
        active_params: r.active_params,
        loss: LossPrediction {
            mu: loss,
            sigma: r.sigma,
            scorer,
            outside,
        },
        fits_memory: r.fits_memory,
        feasible: r.feasible,
        binding: r.binding,
    })
}

/// Puts shards' states together into the state of one run over their union: `shards` are
/// (name, state) in any order; they must be cut from one grid and cover it without overlap
/// or gap. With `partial`, they may cover one contiguous part of the grid instead of all of
/// it (a merge of some shards, merged again later with the rest). Returns the union's state
/// and the shards' order by range.
pub fn combine(shards: &[(String, State)], partial: bool) -> Result<(State, Vec<usize>), ShardError> {
    let Some((first_name, first)) = shards.first() else {
        return Err(ShardError::Missing {
            missing: 0..0,
            grid_points: 0,
            context: "no shard given".into(),
        });
    };
    for (name, s) in shards {
        if s.format != STATE_FORMAT {
            return Err(ShardError::State {
                shard: name.clone(),
                reason: format!(
                    "its outcome.json has format {}, this llmforge reads format {STATE_FORMAT}",
                    s.format
                ),
            });
        }
        if s.range[0] > s.range[1] || s.range[1] > s.grid_points {
            return Err(ShardError::State {
                shard: name.clone(),
                reason: format!(
                    "its range {}..{} does not lie in its grid of {} points",
                    s.range[0], s.range[1], s.grid_points
                ),
            });
        }
        if s.grid_points != first.grid_points {
            return Err(ShardError::GridPoints {
                first: first_name.clone(),
                first_points: first.grid_points,
                second: name.clone(),
                second_points: s.grid_points,
            });
        }
    }
    let grid_points = first.grid_points;
    let mut order: Vec<usize> = (0..shards.len()).collect();
    order.sort_by_key(|&k| (shards[k].1.range[0], shards[k].1.range[1]));
    // coverage: contiguous from 0 to grid_points (or, partial, from the first shard's start),
    // without overlap
    let start = if partial { shards[order[0]].1.range[0] } else { 0 };
    let mut at = start;
    let mut previous: Option<usize> = None;
    for &k in &order {
        let (name, s) = &shards[k];
        let r = s.range();
        if r.start < at {
            let p = previous.unwrap_or(k);
            return Err(ShardError::Overlap {
                first: shards[p].0.clone(),
                first_range: shards[p].1.range(),
                second: name.clone(),
                second_range: r,
            });
        }
        if r.start > at {
            return Err(ShardError::Missing {
                missing: at..r.start,
                grid_points,
                context: match previous {
                    Some(p) => format!(
                        "`{}` ends at {at} and `{name}` starts at {}",
                        shards[p].0, r.start
                    ),
                    None => format!("the first shard, `{name}`, starts at {}", r.start),
                },
            });
        }
        at = r.end;
        previous = Some(k);
    }
    if at < grid_points && !partial {
        return Err(ShardError::Missing {
            missing: at..grid_points,
            grid_points,
            context: format!(
                "the last shard, `{}`, ends at {at}",
                shards[previous.unwrap_or(0)].0
            ),
        });
    }
    Ok((fold(shards, &order, start..at, grid_points), order))
}

/// The union of states in range order (coverage checked) over `range`.
fn fold(shards: &[(String, State)], order: &[usize], range: Range<u64>, grid_points: u64) -> State {
    let budgets = order
        .iter()
        .map(|&k| shards[k].1.best_per_budget.len())
        .max()
        .unwrap_or(0);
    let mut u = State {
        format: STATE_FORMAT,
        range: [range.start, range.end],
        grid_points,
        evaluated: 0,
        skipped: 0,
        feasible: 0,
        losses: LossTally::default(),
        frontier: Vec::new(),
        region: Vec::new(),
        best_per_budget: vec![None; budgets],
        best_overall: None,
        sample: Vec::new(),
        interrupted: false,
    };
    // lower loss wins; on equal loss the earlier grid index (shards come in range order)
    let better = |best: &Option<BestRecord>, b: &BestRecord| best.as_ref().is_none_or(|x| b.loss < x.loss);
    let mut frontier = Frontier::new();
    let mut front_records: BTreeMap<u64, &FrontRecord> = BTreeMap::new();
    let mut region: BTreeMap<(String, String), CellRecord> = BTreeMap::new();
    for &k in order {
        let s = &shards[k].1;
        u.evaluated += s.evaluated;
        u.skipped += s.skipped;
        u.feasible += s.feasible;
        u.losses.merge(&s.losses);
        u.interrupted |= s.interrupted;
        for p in &s.frontier {
            frontier.insert(FrontPoint {
                x: p.x,
                y: p.loss,
                id: p.index,
            });
            front_records.insert(p.index, p);
        }
        for c in &s.region {
            let cell = region
                .entry((c.x.clone(), c.y.clone()))
                .or_insert_with(|| CellRecord {
                    x: c.x.clone(),
                    y: c.y.clone(),
                    candidates: 0,
                    feasible: 0,
                    best_loss: None,
                });
            cell.candidates += c.candidates;
            cell.feasible += c.feasible;
            if let Some(l) = c.best_loss {
                cell.best_loss = Some(cell.best_loss.map_or(l, |b| b.min(l)));
            }
        }
        for (slot, b) in u.best_per_budget.iter_mut().zip(&s.best_per_budget) {
            if let Some(b) = b {
                if better(slot, b) {
                    *slot = Some(b.clone());
                }
            }
        }
        if let Some(b) = &s.best_overall {
            if better(&u.best_overall, b) {
                u.best_overall = Some(b.clone());
            }
        }
        u.sample.extend_from_slice(&s.sample);
    }
    u.frontier = frontier.points().map(|p| front_records[&p.id].clone()).collect();
    u.region = region.into_values().collect();
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn explicit_shards_and_ranges_cover_the_grid() {
        let none = env(&[]);
        let s = resolve("3/8", &none).unwrap();
        assert_eq!((s.index, s.count, s.from), (3, 8, None));
        for len in [0u64, 1, 5, 7, 100, 11_232] {
            for n in 1..=12u64 {
                let mut at = 0;
                for i in 0..n {
                    let r = Shard {
                        index: i,
                        count: n,
                        from: None,
                    }
                    .range(len);
                    assert_eq!(r.start, at);
                    assert!(r.end - r.start <= len / n + 1);
                    at = r.end;
                }
                assert_eq!(at, len);
            }
        }
        for bad in ["3", "3/0", "8/8", "a/b", "-1/4", "auto/0", ""] {
            assert!(resolve(bad, &none).is_err(), "{bad}");
        }
        assert!(
            resolve("8/8", &none)
                .unwrap_err()
                .to_string()
                .contains("not below")
        );
    }

    #[test]
    fn slurm_arrays_give_index_and_count() {
        let s = resolve(
            "auto",
            &env(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")]),
        )
        .unwrap();
        assert_eq!((s.index, s.count), (2, 4));
        assert_eq!(s.from.unwrap(), "SLURM_ARRAY_TASK_ID=2, 4 array tasks");
        // --array=1-8: counted from the minimum; the count from MIN / MAX
        let s = resolve(
            "auto",
            &env(&[
                ("SLURM_ARRAY_TASK_ID", "8"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_MAX", "8"),
            ]),
        )
        .unwrap();
        assert_eq!((s.index, s.count), (7, 8));
        // --array=0-6:2
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "6"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        let s = resolve("auto", &stepped).unwrap();
        assert_eq!((s.index, s.count), (2, 4));
        assert_eq!(resolve("auto/4", &stepped).unwrap().count, 4);
        let e = resolve("auto/5", &stepped).unwrap_err();
        assert!(
            matches!(
                e,
                ShardError::CountMismatch {
                    given: 5,
                    count: 4,
                    ..
                }
            ),
            "{e}"
        );
        let e = resolve("auto", &env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID=`x`"), "{e}");
        let e = resolve("auto", &env(&[("SLURM_ARRAY_TASK_ID", "3")])).unwrap_err();
        assert!(e.to_string().contains("auto/N"), "{e}");
        let e = resolve(
            "auto",
            &env(&[("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "4")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("index 4 is not below"), "{e}");
    }

    #[test]
    fn kubernetes_and_generic_indices_need_a_count() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "5")]);
        let e = resolve("auto", &k8s).unwrap_err();
        assert!(e.to_string().contains("completions"), "{e}");
        let s = resolve("auto/8", &k8s).unwrap();
        assert_eq!((s.index, s.count), (5, 8));
        assert_eq!(s.from.as_deref(), Some("JOB_COMPLETION_INDEX=5"));
        let s = resolve(
            "auto",
            &env(&[("JOB_COMPLETION_INDEX", "0"), ("LLMFORGE_SHARD_COUNT", "3")]),
        )
        .unwrap();
        assert_eq!((s.index, s.count), (0, 3));
        let s = resolve(
            "auto",
            &env(&[("LLMFORGE_SHARD_INDEX", "1"), ("LLMFORGE_SHARD_COUNT", "2")]),
        )
        .unwrap();
        assert_eq!((s.index, s.count), (1, 2));
        let e = resolve("auto", &env(&[])).unwrap_err();
        assert!(matches!(e, ShardError::NoEnvironment { .. }), "{e}");
    }
}
