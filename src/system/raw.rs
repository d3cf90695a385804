//! The system file: raw YAML (through [`crate::yaml`]) validated into a [`System`], every
//! value problem collected and located.

use super::{Interconnect, Placement, System, Topology, check};
use crate::dsl::Dim;
use crate::substrate::{self, Override};
use crate::units::{BytesPerSec, Seconds};
use crate::yaml::{DescErrors, Entries, Expression, Loc, Located, SourceFile, shipped, shipped_or_file};
use serde::Deserialize;
use std::path::Path;

/// The shipped systems (`systems/*.yaml`), embedded.
pub const SHIPPED: &[(&str, &str)] = shipped!("systems", ["4x-h100-nvswitch", "8x-gemmini-ring"]);

/// Shipped system names.
pub fn names() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(n, _)| *n)
}

/// One field of the format: path, unit (or kind of value), required or its default, an
/// example, and what it means. `dsl/SYSTEMS.md` is generated from this table (a test
/// compares).
pub struct Field {
    pub path: &'static str,
    pub unit: &'static str,
    pub default: &'static str,
    pub example: &'static str,
    pub meaning: &'static str,
}

/// Every field of a system file.
pub const FIELDS: &[Field] = &[
    Field {
        path: "name",
        unit: "text",
        default: "required",
        example: "4x-h100-nvswitch",
        meaning: "The system's name in outputs.",
    },
    Field {
        path: "description",
        unit: "text",
        default: "empty",
        example: "four H100 SXM on NVSwitch",
        meaning: "One line for listings.",
    },
    Field {
        path: "devices.substrate",
        unit: "name or path",
        default: "required",
        example: "h100-sxm",
        meaning: "The substrate of every device: a shipped name, or a file relative to this file. \
                  gpu or systolic (the ring accelerator is its own multi-chip kind).",
    },
    Field {
        path: "devices.count",
        unit: "count",
        default: "required",
        example: "4",
        meaning: "Devices, 1 to 4096; must equal tp x pp.",
    },
    Field {
        path: "devices.set",
        unit: "mapping",
        default: "none",
        example: "{clock: \"1.2 GHz\"}",
        meaning: "Overrides of substrate fields (as `--set path=expr`), applied to every device.",
    },
    Field {
        path: "interconnect.topology",
        unit: "ring, switch or mesh",
        default: "required (2+ devices)",
        example: "switch",
        meaning: "ring: device i linked to i+1 and the last to the first. switch: every device \
                  linked to one non-blocking switch. mesh: a rows x cols grid, devices numbered \
                  row by row, linked to their neighbours, no wrap-around.",
    },
    Field {
        path: "interconnect.rows",
        unit: "count",
        default: "required for mesh",
        example: "2",
        meaning: "Mesh rows; must divide the devices (columns = devices / rows).",
    },
    Field {
        path: "interconnect.bandwidth",
        unit: "bandwidth",
        default: "required (2+ devices)",
        example: "\"25 GB/s\"",
        meaning: "One link, one direction.",
    },
    Field {
        path: "interconnect.links",
        unit: "count",
        default: "1",
        example: "18",
        meaning: "Parallel links between two neighbours (ring, mesh) or a device and the switch; \
                  their bandwidths add.",
    },
    Field {
        path: "interconnect.latency",
        unit: "time",
        default: "required (2+ devices)",
        example: "\"2 us\"",
        meaning: "ring, mesh: one hop between neighbours. switch: one collective or transfer \
                  through the switch (a small message's time in nccl-tests).",
    },
    Field {
        path: "interconnect.energy",
        unit: "energy per bit",
        default: "required (2+ devices)",
        example: "\"5 pJ/bit\"",
        meaning: "Per bit crossing one link; a transfer through the switch crosses two.",
    },
    Field {
        path: "placement.tp",
        unit: "count",
        default: "1",
        example: "4",
        meaning: "Tensor-parallel degree: devices per pipeline stage (Megatron-LM).",
    },
    Field {
        path: "placement.pp",
        unit: "count",
        default: "1",
        example: "2",
        meaning: "Pipeline stages of contiguous blocks; stage s holds devices s*tp .. s*tp+tp-1.",
    },
    Field {
        path: "placement.micro_batches",
        unit: "count",
        default: "1",
        example: "4",
        meaning: "Micro-batches a prompt is cut into to flow through the stages (1 to 65,536).",
    },
];

/// `dsl/SYSTEMS.md`, generated from [`FIELDS`].
pub fn reference_markdown() -> String {
    let mut o = String::from(
        "# System files\n\n\
         <!-- generated from src/system/raw.rs (FIELDS); `cargo test` checks this file -->\n\n\
         A system is `count` devices of one substrate, the interconnect between them and the\n\
         placement of a model on them. `llmforge sim --system <FILE|name>` runs one; the shipped\n\
         ones are under `systems/`. A plain `--substrate` is a one-device system. Values are\n\
         expressions of the description language (`dsl/README.md`) with their units.\n\n\
         ```yaml\n\
         name: 4x-h100-nvswitch\n\
         devices: {substrate: h100-sxm, count: 4}\n\
         interconnect: {topology: switch, bandwidth: \"25 GB/s\", links: 18, latency: \"2 us\", energy: \"5 pJ/bit\"}\n\
         placement: {tp: 4, pp: 1}\n\
         ```\n\n\
         | field | unit | default | example | meaning |\n|---|---|---|---|---|\n",
    );
    for f in FIELDS {
        o.push_str(&format!(
            "| `{}` | {} | {} | `{}` | {} |\n",
            f.path, f.unit, f.default, f.example, f.meaning
        ));
    }
    o.push_str(
        r#"
## How collectives are priced

With `B` the bytes of the whole tensor, `g` the group, `bw` the bandwidth between two
neighbours (`bandwidth x links`) and `a` the latency:

* all-reduce on a ring or a mesh line of `g` devices: `2 (g - 1) / g x B / bw + 2 (g - 1) x a'`,
  `a'` the hop latency times the longest hop of a step (1 when the group closes the ring or
  has 2 devices, `g - 1` on a line); a mesh group of whole rows runs it along the rows, then
  along the columns on `B / cols`.
* all-reduce through a switch: `a + 2 (g - 1) / g x B / bw`.
* all-gather: half of the all-reduce's bytes and steps.
* a stage hand-off: `hops x a + B / bw` (1 hop through a switch).

Collectives sit on the critical path of their stage (no overlap with compute). A prompt cut
into `m` micro-batches: stage `s` takes `u_s = t_s / m + c_s` per micro-batch (its share of
the pass, and its collectives on `B / m`), each hand-off `h_s`; the prefill takes
`sum u_s + sum h_s + (m - 1) max(u, h)`. A decode step visits the stages in turn:
`sum (t_s + c_s) + sum h_s`.

With `--devices N` instead of a file, the link is given by `--topology` (ring, switch,
mesh=<rows>), `--link`, `--links`, `--link-latency` and `--link-energy`; when none of them is
given, the interconnect of the shipped system built of the same substrate is used (and
named in the output); with neither, the command stops: no link figure is assumed.
"#,
    );
    o
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    name: Located<String>,
    #[serde(default)]
    description: Option<String>,
    devices: RawDevices,
    #[serde(default)]
    interconnect: Option<RawInterconnect>,
    #[serde(default)]
    placement: Option<RawPlacement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    substrate: Located<String>,
    count: Located<u64>,
    #[serde(default)]
    set: Option<Entries<Expression>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterconnect {
    topology: Located<String>,
    #[serde(default)]
    rows: Option<Located<u64>>,
    bandwidth: Expression,
    #[serde(default)]
    links: Option<Located<u64>>,
    latency: Expression,
    energy: Expression,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlacement {
    #[serde(default)]
    tp: Option<Located<u64>>,
    #[serde(default)]
    pp: Option<Located<u64>>,
    #[serde(default)]
    micro_batches: Option<Located<u64>>,
}

/// Loads a shipped system by name, or a system file by path (a file wins).
pub fn load(spec: &str) -> Result<System, DescErrors> {
    let file = shipped_or_file(spec, SHIPPED, "systems", "system")?;
    let shipped = !Path::new(spec).is_file();
    let base = if shipped {
        None
    } else {
        Path::new(spec).parent().map(Path::to_path_buf)
    };
    load_source(&file, base.as_deref())
}

/// Validates a system file's text. A substrate named by path is read relative to `base` (a
/// shipped system names shipped substrates: `base` is `None`).
pub fn load_source(file: &SourceFile, base: Option<&Path>) -> Result<System, DescErrors> {
    let raw: RawSystem = file.parse()?;
    let mut diags = file.diagnostics();
    let none = |_: &str| None;
    // the device substrate, with its overrides
    let mut overrides = Vec::new();
    if let Some(set) = &raw.devices.set {
        for (path, e) in &set.0 {
            overrides.push(Override {
                path: path.value.clone(),
                expr: e.text().to_string(),
            });
        }
    }
    let spec = &raw.devices.substrate;
    let spec_path = base
        .map(|b| b.join(&spec.value))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| spec.value.clone());
    let device = match substrate::load(&spec_path, &overrides) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.error(
                spec.loc,
                format!("the device substrate `{}` does not load", spec.value),
                "this substrate",
                Some(
                    e.errors()
                        .iter()
                        .map(|d| format!("{}:{}:{}: {}", d.file(), d.line(), d.column(), d.message()))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            );
            None
        }
    };
    let count = raw.devices.count.value;
    let interconnect = raw.interconnect.as_ref().and_then(|ic| {
        let topology = match ic.topology.value.as_str() {
            "ring" => Some(Topology::Ring),
            "switch" => Some(Topology::Switch),
            "mesh" => match &ic.rows {
                Some(r) if r.value > 0 => Some(Topology::Mesh {
                    rows: r.value,
                    cols: count / r.value,
                }),
                Some(r) => {
                    diags.error(r.loc, "a mesh needs at least 1 row", "here", None);
                    None
                }
                None => {
                    diags.error(
                        ic.topology.loc,
                        "a mesh needs `rows` (columns are the devices / rows)",
                        "this mesh",
                        None,
                    );
                    None
                }
            },
            other => {
                diags.error(
                    ic.topology.loc,
                    format!("unknown topology `{other}`"),
                    "here",
                    Some("expected ring, switch or mesh".into()),
                );
                None
            }
        };
        if let (Some(r), Some(t)) = (&ic.rows, topology)
            && t != (Topology::Mesh {
                rows: r.value,
                cols: count / r.value.max(1),
            })
        {
            diags.error(r.loc, "`rows` is for a mesh only", "not a mesh", None);
        }
        let bandwidth = diags.check(ic.bandwidth.eval_as::<BytesPerSec>(file, &none));
        let latency = diags.check(ic.latency.eval_as::<Seconds>(file, &none));
        let energy = diags.check(ic.energy.eval_scalar(file, &none).and_then(|q| {
            q.in_dim(Dim::JOULES_PER_BYTE).map_err(|_| {
                file.error(
                    ic.energy.loc(),
                    format!("expected an energy per bit such as \"5 pJ/bit\", found `{q}`"),
                    "not an energy per bit",
                    Some("write the energy of one bit crossing one link: \"5 pJ/bit\"".into()),
                )
            })
        }));
        Some(Interconnect {
            topology: topology?,
            bandwidth: bandwidth?,
            links: ic.links.as_ref().map_or(1, |l| l.value),
            latency: latency?,
            energy_per_byte: energy?,
        })
    });
    let p = raw.placement.as_ref();
    let get = |f: Option<&Located<u64>>| f.map_or(1, |v| v.value);
    let placement = Placement {
        tp: get(p.and_then(|p| p.tp.as_ref())),
        pp: get(p.and_then(|p| p.pp.as_ref())),
    };
    let micro_batches = get(p.and_then(|p| p.micro_batches.as_ref()));
    // where each field's problem is reported
    let loc_of = |field: &str| -> Loc {
        let ic = raw.interconnect.as_ref();
        let pl = raw.placement.as_ref();
        let l = match field {
            "devices.substrate" => Some(raw.devices.substrate.loc),
            "devices.count" => Some(raw.devices.count.loc),
            "interconnect" | "interconnect.topology" => ic.map(|i| i.topology.loc),
            "interconnect.rows" => ic.and_then(|i| i.rows.as_ref().map(|r| r.loc).or(Some(i.topology.loc))),
            "interconnect.bandwidth" => ic.map(|i| i.bandwidth.loc()),
            "interconnect.latency" => ic.map(|i| i.latency.loc()),
            "interconnect.energy" => ic.map(|i| i.energy.loc()),
            "interconnect.links" => ic.and_then(|i| i.links.as_ref().map(|l| l.loc)),
            "placement.tp" => pl.and_then(|p| p.tp.as_ref().map(|v| v.loc)),
            "placement.micro_batches" => pl.and_then(|p| p.micro_batches.as_ref().map(|v| v.loc)),
            "placement" => pl.and_then(|p| p.tp.as_ref().or(p.pp.as_ref()).map(|v| v.loc)),
            _ => None,
        };
        l.unwrap_or(raw.devices.count.loc)
    };
    let ic_ok = raw.interconnect.is_none() || interconnect.is_some();
    if let Some(device) = &device {
        for (field, message) in check(device, count, interconnect.as_ref(), placement, micro_batches) {
            // an interconnect with bad values is already reported
            if field == "interconnect" && !ic_ok {
                continue;
            }
            diags.error(loc_of(field), message, format!("`{field}`"), None);
        }
    }
    let (Some(device), true) = (device, ic_ok) else {
        // every way here recorded its problem; the fallback keeps this total
        if diags.is_empty() {
            diags.error(Loc::UNKNOWN, "the system does not load", "", None);
        }
        diags.finish(())?;
        return Err(file
            .error(Loc::UNKNOWN, "the system does not load", "", None)
            .into());
    };
    diags.finish(System {
        name: raw.name.value.clone(),
        description: raw.description.clone().unwrap_or_default(),
        device,
        count,
        interconnect,
        placement,
        micro_batches,
        host: None,
    })
}
