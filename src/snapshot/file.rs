//! Reading a snapshot file back (the writer is [`crate::trace::snapshot::yaml`]).

use super::SnapshotError;
use super::record::{FORMAT, Inputs, PrecisionNames, Record, Snapshot, TopOp, TopOps};
use crate::limits;
use crate::yaml::{DescError, Located, SourceFile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnapshot {
    format: Located<u64>,
    llmforge_version: String,
    inputs: RawInputs,
    #[serde(default)]
    cases: BTreeMap<String, RawRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInputs {
    cases: String,
    #[serde(default)]
    models: BTreeMap<String, String>,
    #[serde(default)]
    substrates: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    model: String,
    substrate: String,
    #[serde(default)]
    set: BTreeMap<String, String>,
    engine: String,
    workload: RawWorkload,
    precision: RawPrecision,
    metrics: BTreeMap<String, f64>,
    fits_memory: bool,
    #[serde(default)]
    top_ops: RawTopOps,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    prompt: u64,
    #[serde(rename = "gen")]
    generate: u64,
    batch: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrecision {
    weights: String,
    activations: String,
    kv_cache: String,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopOps {
    #[serde(default)]
    prefill: Vec<RawTopOp>,
    #[serde(default)]
    decode: Vec<RawTopOp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopOp {
    op: String,
    bound: String,
    share: f64,
}

impl Snapshot {
    /// Reads a snapshot file written by `llmforge snapshot record` (at most
    /// [`limits::MAX_SNAPSHOT_BYTES`]).
    pub fn read(path: &Path) -> Result<Snapshot, SnapshotError> {
        let name = path.display().to_string();
        let text = crate::input::read_text(path, "snapshot", limits::MAX_SNAPSHOT_BYTES)
            .map_err(|e| SnapshotError::Snapshot(DescError::io(&name, &e).into()))?;
        Snapshot::parse(&SourceFile::new(name, text))
    }

    /// Parses the text of a snapshot file.
    pub fn parse(file: &SourceFile) -> Result<Snapshot, SnapshotError> {
        let fail = |e: DescError| SnapshotError::Snapshot(e.into());
        let raw: RawSnapshot = file.parse_recorded(limits::MAX_SNAPSHOT_VALUES).map_err(fail)?;
        if raw.format.value != u64::from(FORMAT) {
            return Err(fail(file.error(
                raw.format.loc,
                format!(
                    "snapshot format {} is not one llmforge {} reads (format {FORMAT})",
                    raw.format.value,
                    crate::provenance::VERSION
                ),
                "here",
                Some("record the baseline again with this llmforge: `llmforge snapshot record`".into()),
            )));
        }
        let ops = |v: Vec<RawTopOp>| -> Vec<TopOp> {
            v.into_iter()
                .map(|o| TopOp {
                    op: o.op,
                    bound: o.bound,
                    share: o.share,
                })
                .collect()
        };
        Ok(Snapshot {
            format: FORMAT,
            version: raw.llmforge_version,
            inputs: Inputs {
                cases: raw.inputs.cases,
                models: raw.inputs.models,
                substrates: raw.inputs.substrates,
            },
            cases: raw
                .cases
                .into_iter()
                .map(|(name, r)| {
                    let record = Record {
                        model: r.model,
                        substrate: r.substrate,
                        set: r.set,
                        engine: r.engine,
                        prompt: r.workload.prompt,
                        generate: r.workload.generate,
                        batch: r.workload.batch,
                        precision: PrecisionNames {
                            weights: r.precision.weights,
                            activations: r.precision.activations,
                            kv_cache: r.precision.kv_cache,
                        },
                        metrics: r.metrics,
                        fits_memory: r.fits_memory,
                        top_ops: TopOps {
                            prefill: ops(r.top_ops.prefill),
                            decode: ops(r.top_ops.decode),
                        },
                    };
                    (name, record)
                })
                .collect(),
        })
    }
}
