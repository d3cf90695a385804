//! Multi-device systems: `count` devices of one substrate, the interconnect between them and
//! the placement of a model on them (tensor-parallel degree `tp`, pipeline stages `pp`).
//!
//! A plain substrate is a one-device system ([`System::single`]): every command that takes a
//! `--substrate` keeps its figures. A system is read from YAML (`systems/*.yaml`, format in
//! `dsl/SYSTEMS.md`, generated from [`FIELDS`]) or built from `llmforge sim --devices N
//! --parallel ... --link ...` flags. The graph side of a placement (shards, collectives,
//! stages) is [`crate::graph::parallel`]; the engines price it in [`crate::sim::system`].
//!
//! Architecture invariant: like `substrate`, nothing here knows models or the simulator.

mod raw;

pub use crate::graph::parallel::Placement;
pub use raw::{FIELDS, SHIPPED, load, load_source, names, reference_markdown};

use crate::substrate::{Kind, Substrate};
use crate::units::{BytesPerSec, Seconds};
use serde::Serialize;
use thiserror::Error;

/// The most devices a system may have.
pub const MAX_DEVICES: u64 = 4096;
/// The most pipeline micro-batches a prompt may be cut into.
pub const MAX_MICRO_BATCHES: u64 = 65_536;

/// Errors of this module.
#[derive(Debug, Error)]
pub enum SystemError {
    /// Occurs when a system file (or the substrate it names) has problems: every one, located.
    #[error(transparent)]
    Desc(#[from] crate::yaml::DescErrors),
    /// Occurs when a system built from flags is inconsistent (`--devices` and `--parallel`).
    #[error("{0}")]
    Invalid(String),
}

/// How the devices are wired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Topology {
    /// Device `i` linked to `i + 1` (and the last to the first).
    Ring,
    /// Every device linked to one non-blocking switch (NVSwitch, a PCIe switch).
    Switch,
    /// A `rows x cols` grid, devices numbered row by row, each linked to its 2 to 4
    /// neighbours (no wrap-around).
    Mesh { rows: u64, cols: u64 },
}

impl Topology {
    pub fn name(&self) -> &'static str {
        match self {
            Topology::Ring => "ring",
            Topology::Switch => "switch",
            Topology::Mesh { .. } => "mesh",
        }
    }
}

/// The links between devices.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interconnect {
    pub topology: Topology,
    /// One link's bandwidth in one direction.
    pub bandwidth: BytesPerSec,
    /// Parallel links between two neighbours (ring, mesh) or between a device and the switch.
    pub links: u64,
    /// Ring and mesh: one hop between neighbours. Switch: one collective or transfer through
    /// the switch (what `nccl-tests` reports for a small message).
    pub latency: Seconds,
    /// Energy per byte crossing one link (a switch transfer crosses two: in and out).
    pub energy_per_byte: f64,
}

impl Interconnect {
    /// Bandwidth between two neighbours (or a device and the switch), one direction.
    pub fn pair_bandwidth(&self) -> BytesPerSec {
        self.bandwidth * self.links as f64
    }
}

/// The host side of a pipelined prompt: one thread submits every stage's kernels, micro-batch
/// by micro-batch and stage by stage, into one launch queue per device; a submission to a full
/// queue blocks the thread until that device retires a kernel (llama.cpp's layer split over
/// CUDA devices). A stage whose micro-batch needs more submissions than its queue holds keeps
/// the thread waiting for the stage before it, and the next micro-batch reaches the first
/// device late: the pipeline loses its overlap.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HostQueue {
    /// Submissions (kernel launches, library calls, copies, event records and waits) one
    /// device's queue holds before the submitting thread blocks.
    pub depth: u64,
    /// Submissions of one block (attention and FFN) for one micro-batch, weights in an
    /// arithmetic format.
    pub block_launches: u64,
    /// Further submissions per weight matrix of a block when the weights are in a block format
    /// (a dequantisation kernel before each GEMM).
    pub dequant_launches: u64,
    /// Submissions at each stage boundary per micro-batch (wait for the input, its copy, the
    /// record of the output).
    pub boundary_launches: u64,
}

/// A validated system.
#[derive(Clone, Debug)]
pub struct System {
    pub name: String,
    pub description: String,
    /// Every device is this substrate.
    pub device: Substrate,
    pub count: u64,
    /// `None` only for one device.
    pub interconnect: Option<Interconnect>,
    pub placement: Placement,
    /// Micro-batches a prompt is cut into to flow through the pipeline stages (1: none).
    pub micro_batches: u64,
    /// Bounded launch queues of one submitting host thread (`None`: the host never holds the
    /// pipeline back).
    pub host: Option<HostQueue>,
}

impl System {
    /// One device: the plain substrate.
    pub fn single(device: Substrate) -> System {
        System {
            name: device.name.clone(),
            description: device.description.clone(),
            device,
            count: 1,
            interconnect: None,
            placement: Placement::SINGLE,
            micro_batches: 1,
            host: None,
        }
    }

    /// A system built in code (`--devices`), checked as a file is.
    pub fn new(
        device: Substrate,
        interconnect: Option<Interconnect>,
        placement: Placement,
        micro_batches: u64,
    ) -> Result<System, SystemError> {
        let count = placement.tp.saturating_mul(placement.pp);
        let problems = check(&device, count, interconnect.as_ref(), placement, micro_batches);
        if let Some(p) = problems.into_iter().next() {
            return Err(SystemError::Invalid(p.1));
        }
        let name = format!("{}x {}", count, device.name);
        Ok(System {
            description: format!("{name}, {}", placement_words(placement)),
            name,
            device,
            count,
            interconnect,
            placement,
            micro_batches,
            host: None,
        })
    }

    pub fn is_single(&self) -> bool {
        self.count == 1
    }

    /// Device index of (stage, tensor-parallel rank): stages hold consecutive devices.
    pub fn device_of(&self, stage: u64, rank: u64) -> u64 {
        stage * self.placement.tp + rank
    }
}

/// `tp=2, pp=4` in words for descriptions.
pub fn placement_words(p: Placement) -> String {
    match (p.tp, p.pp) {
        (1, 1) => "one device".into(),
        (t, 1) => format!("tensor parallel over {t}"),
        (1, s) => format!("{s} pipeline stages"),
        (t, s) => format!("{s} pipeline stages of {t} tensor-parallel devices"),
    }
}

/// Parses `--parallel`: `tp` (all devices tensor parallel), `pp` (one device per stage), or
/// `tp=2,pp=4` (either part may be left out when `devices` fixes it).
pub fn parse_parallel(s: &str, devices: u64) -> Result<Placement, String> {
    let s = s.trim();
    match s {
        "tp" => return Ok(Placement { tp: devices, pp: 1 }),
        "pp" => return Ok(Placement { tp: 1, pp: devices }),
        _ => {}
    }
    let (mut tp, mut pp) = (None, None);
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("expected tp, pp or tp=<N>,pp=<M>, found `{part}`"))?;
        let v: u64 = v
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a positive integer", v.trim()))?;
        if v == 0 {
            return Err(format!("{} must be at least 1", k.trim()));
        }
        match k.trim() {
            "tp" if tp.is_none() => tp = Some(v),
            "pp" if pp.is_none() => pp = Some(v),
            "tp" | "pp" => return Err(format!("`{}` is given twice", k.trim())),
            other => return Err(format!("unknown part `{other}`: expected tp or pp")),
        }
    }
    let fill = |known: u64| {
        if known == 0 || devices % known != 0 {
            Err(format!("{known} does not divide the {devices} devices"))
        } else {
            Ok(devices / known)
        }
    };
    let (tp, pp) = match (tp, pp) {
        (Some(t), Some(p)) => (t, p),
        (Some(t), None) => (t, fill(t)?),
        (None, Some(p)) => (fill(p)?, p),
        (None, None) => return Err("expected tp, pp or tp=<N>,pp=<M>".into()),
    };
    if tp.checked_mul(pp) != Some(devices) {
        return Err(format!("tp={tp} x pp={pp} is not the {devices} devices"));
    }
    Ok(Placement { tp, pp })
}

/// Every problem of a system's values, each with the field it concerns (a path as in the
/// file: `devices.count`, `interconnect.bandwidth`...).
pub(crate) fn check(
    device: &Substrate,
    count: u64,
    ic: Option<&Interconnect>,
    p: Placement,
    micro_batches: u64,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if matches!(device.kind, Kind::Ring(_)) {
        out.push((
            "devices.substrate",
            format!(
                "`{}` is a ring substrate: the ring accelerator is its own multi-chip kind; \
                 a system takes gpu or systolic devices",
                device.name
            ),
        ));
    }
    if count == 0 || count > MAX_DEVICES {
        out.push((
            "devices.count",
            format!("{count} devices: expected 1 to {MAX_DEVICES}"),
        ));
    }
    if p.tp == 0 || p.pp == 0 {
        out.push(("placement", "tp and pp must be at least 1".into()));
    } else if p.tp.checked_mul(p.pp) != Some(count) {
        out.push((
            "placement",
            format!("tp={} x pp={} must equal the {count} devices", p.tp, p.pp),
        ));
    }
    if micro_batches == 0 || micro_batches > MAX_MICRO_BATCHES {
        out.push((
            "placement.micro_batches",
            format!("{micro_batches} micro-batches: expected 1 to {MAX_MICRO_BATCHES}"),
        ));
    }
    match ic {
        None if count > 1 => out.push((
            "interconnect",
            format!("{count} devices need an interconnect (topology, bandwidth, latency, energy)"),
        )),
        None => {}
        Some(ic) => {
            if !(ic.bandwidth.get() > 0.0 && ic.bandwidth.get().is_finite()) {
                out.push((
                    "interconnect.bandwidth",
                    "the link bandwidth must be positive and finite".into(),
                ));
            }
            if !(ic.latency.get() >= 0.0 && ic.latency.get().is_finite()) {
                out.push((
                    "interconnect.latency",
                    "the latency must be zero or positive and finite".into(),
                ));
            }
            if !(ic.energy_per_byte >= 0.0 && ic.energy_per_byte.is_finite()) {
                out.push((
                    "interconnect.energy",
                    "the energy per bit must be zero or positive and finite".into(),
                ));
            }
            if ic.links == 0 || ic.links > 1024 {
                out.push(("interconnect.links", "links must be 1 to 1024".into()));
            }
            if let Topology::Mesh { rows, cols } = ic.topology {
                if rows == 0 || rows.checked_mul(cols) != Some(count) {
                    out.push((
                        "interconnect.rows",
                        format!("a mesh of {rows} rows does not hold the {count} devices in whole rows"),
                    ));
                } else if p.tp > 0 && !(cols % p.tp == 0 || p.tp % cols == 0) {
                    out.push((
                        "placement.tp",
                        format!(
                            "tp={} neither divides a mesh row of {cols} devices nor fills whole rows",
                            p.tp
                        ),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_flag() {
        assert_eq!(parse_parallel("tp", 4).unwrap(), Placement { tp: 4, pp: 1 });
        assert_eq!(parse_parallel("pp", 8).unwrap(), Placement { tp: 1, pp: 8 });
        assert_eq!(
            parse_parallel("tp=2,pp=4", 8).unwrap(),
            Placement { tp: 2, pp: 4 }
        );
        assert_eq!(parse_parallel("tp=2", 8).unwrap(), Placement { tp: 2, pp: 4 });
        assert_eq!(parse_parallel("pp=2", 8).unwrap(), Placement { tp: 4, pp: 2 });
        for bad in ["tp=3", "tp=2,pp=2", "xx", "tp=0", "tp=a", "tp=2,tp=4", ""] {
            assert!(parse_parallel(bad, 8).is_err(), "{bad}");
        }
    }
}
