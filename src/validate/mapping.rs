//! From a measured row to a case llmforge can predict: hardware string to substrate and
//! device count, model string to preset, weight format and bits per weight to precision,
//! software to stack (and how it spreads a model over devices), metric and unit to what to
//! predict. Every row either maps or gets a reason it cannot.
//!
//! The tables are data: `traces/hardware.csv`, `traces/models.csv` and `traces/stacks.csv`,
//! embedded in the binary; a user's file in the same layout adds or replaces entries
//! (`--substrate-map`).

use super::traces::{Batch, TraceRow};
use crate::model::Precision;
use crate::model::precision::GgufFormat;
use crate::yaml::{DescErrors, Diagnostics, Loc, SourceFile};
use serde::Serialize;
use std::fmt;
use std::path::Path;

const HARDWARE_CSV: &str = include_str!("../../traces/hardware.csv");
const MODELS_CSV: &str = include_str!("../../traces/models.csv");
const STACKS_CSV: &str = include_str!("../../traces/stacks.csv");

/// How a stack spreads one model over several devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiDevice {
    /// Megatron-style tensor parallelism: every layer's matrices split across the devices,
    /// two all-reduces of the activations per layer.
    Tensor,
    /// Layer (pipeline) split at batch 1: each device holds a range of layers; a token
    /// visits the devices in turn, so times add up and only activations cross the link.
    Layer,
}

impl MultiDevice {
    pub fn name(self) -> &'static str {
        match self {
            MultiDevice::Tensor => "tensor",
            MultiDevice::Layer => "layer",
        }
    }
}

/// One hardware entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HardwareEntry {
    /// The hardware string as written in traces (without a leading `<N>x `), or a whole
    /// string with its count, which then takes precedence.
    pub hardware: String,
    /// Shipped substrate name or file; `None` makes the hardware unmappable with `note`.
    pub substrate: Option<String>,
    /// Device family, the unit calibration is shared and held out over.
    pub family: String,
    pub link: String,
    /// Per-direction link bandwidth per device (bytes/s), for multi-device rows.
    pub link_bw: Option<f64>,
    /// Fixed latency of one collective or one hop (s).
    pub link_latency: Option<f64>,
    /// Substrate overrides for this hardware (`path=expr`, from the `set` column).
    pub set: Vec<(String, String)>,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelEntry {
    pub model: String,
    pub preset: Option<String>,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackEntry {
    /// Substring of the software column.
    pub pattern: String,
    pub stack: String,
    pub multi: MultiDevice,
    /// Layer split: prompt micro-batch and batch sizes (tokens) that pipeline over devices.
    pub ubatch: Option<u64>,
    pub nbatch: Option<u64>,
    /// Layer split: the host's launch queues (columns `host_queue`, `block_launches`,
    /// `dequant_launches`, `boundary_launches`; all four or none).
    pub host: Option<crate::system::HostQueue>,
    pub note: String,
}

/// The mapping tables.
#[derive(Clone, Debug, Default)]
pub struct Maps {
    pub hardware: Vec<HardwareEntry>,
    pub models: Vec<ModelEntry>,
    pub stacks: Vec<StackEntry>,
}

/// One table record: its line, byte offset, and (column, value) pairs.
pub(crate) type Record = (u64, usize, Vec<(String, String)>);

/// Reads a small CSV table with named columns, reporting located errors.
pub(crate) struct Table<'a> {
    pub(crate) src: SourceFile,
    text: &'a str,
    header: Vec<String>,
}

impl<'a> Table<'a> {
    pub(crate) fn new(text: &'a str, file: &str) -> Table<'a> {
        let header = text
            .lines()
            .next()
            .map(|l| l.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        Table {
            src: SourceFile::new(file, text),
            text,
            header,
        }
    }

    fn has(&self, col: &str) -> bool {
        self.header.iter().any(|h| h == col)
    }

    /// Every record as (line, line offset, column name -> value).
    pub(crate) fn records(&self, required: &[&str]) -> Result<Vec<Record>, DescErrors> {
        let mut diags = Diagnostics::new(&self.src);
        let missing: Vec<&str> = required.iter().copied().filter(|c| !self.has(c)).collect();
        if !missing.is_empty() {
            diags.push(self.src.error(
                Loc {
                    line: 1,
                    column: 1,
                    offset: 0,
                    len: self.text.find('\n').unwrap_or(self.text.len()),
                },
                format!("the header lacks the column(s) {}", missing.join(", ")),
                "header",
                Some(format!("expected the columns {}", required.join(","))),
            ));
            return diags.finish(Vec::new());
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(self.text.as_bytes());
        let mut out = Vec::new();
        for rec in reader.records() {
            match rec {
                Ok(r) => {
                    let pos = r.position().cloned().unwrap_or_else(csv::Position::new);
                    let fields = self
                        .header
                        .iter()
                        .zip(r.iter())
                        .map(|(h, v)| (h.clone(), v.trim().to_string()))
                        .collect();
                    out.push((pos.line(), usize::try_from(pos.byte()).unwrap_or(0), fields));
                }
                Err(e) => {
                    let offset = e
                        .position()
                        .and_then(|p| usize::try_from(p.byte()).ok())
                        .unwrap_or(0);
                    let line = e.position().map_or(0, |p| p.line());
                    diags.push(self.src.error(
                        Loc {
                            line: u32::try_from(line).unwrap_or(0),
                            column: 1,
                            offset,
                            len: 0,
                        },
                        format!("malformed CSV row: {e}"),
                        "here",
                        Some("quote fields that contain commas: \"a, b\"".into()),
                    ));
                }
            }
        }
        diags.finish(out)
    }

    /// The value of the key column `col` of the record at (`line`, `offset`), or `None` with a
    /// located error (`message`, `help`) pushed to `diags` when it is blank: a blank key would
    /// match every row, or none.
    pub(crate) fn key<'f>(
        &self,
        (line, offset): (u64, usize),
        fields: &'f [(String, String)],
        col: &str,
        (message, help): (&str, &str),
        diags: &mut Diagnostics,
    ) -> Option<&'f str> {
        let v = get(fields, col);
        if v.is_empty() {
            diags.push(self.error(line, offset, message.to_string(), help));
            return None;
        }
        Some(v)
    }

    pub(crate) fn error(
        &self,
        line: u64,
        offset: usize,
        message: String,
        help: &str,
    ) -> crate::yaml::DescError {
        let len = self.text[offset.min(self.text.len())..].find('\n').unwrap_or(0);
        self.src.error(
            Loc {
                line: u32::try_from(line).unwrap_or(0),
                column: 1,
                offset,
                len,
            },
            message,
            "in this row",
            Some(help.to_string()),
        )
    }
}

/// The `set` column of a mapping table: substrate overrides `path=expr`, `;` between them.
pub(crate) fn overrides(
    t: &Table<'_>,
    (line, offset): (u64, usize),
    text: &str,
    diags: &mut Diagnostics,
) -> Vec<(String, String)> {
    let mut set = Vec::new();
    for item in text.split(';').map(str::trim).filter(|x| !x.is_empty()) {
        match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                set.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => diags.push(t.error(
                line,
                offset,
                format!("`set`: `{item}` is not path=expression"),
                "write overrides as path=expr separated by `;`, e.g. matrix_peak.fp16=330.3 TFLOP/s",
            )),
        }
    }
    set
}

pub(crate) fn get<'f>(fields: &'f [(String, String)], col: &str) -> &'f str {
    fields
        .iter()
        .find(|(h, _)| h == col)
        .map_or("", |(_, v)| v.as_str())
}

fn opt(s: &str) -> Option<String> {
    if s.is_empty() { None } else { Some(s.to_string()) }
}

fn parse_hardware(text: &str, file: &str) -> Result<Vec<HardwareEntry>, DescErrors> {
    let t = Table::new(text, file);
    let recs = t.records(&["hardware", "substrate"])?;
    let mut diags = Diagnostics::new(&t.src);
    let mut out = Vec::new();
    for (line, offset, f) in recs {
        let mut number = |col: &str, scale: f64| -> Option<f64> {
            let s = get(&f, col);
            if s.is_empty() {
                return None;
            }
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Some(v * scale),
                _ => {
                    diags.push(t.error(
                        line,
                        offset,
                        format!("`{col}`: `{s}` is not a positive number"),
                        "link_GBps is GB/s per direction, link_latency_us microseconds",
                    ));
                    None
                }
            }
        };
        let link_bw = number("link_GBps", 1e9);
        let link_latency = number("link_latency_us", 1e-6);
        let set = overrides(&t, (line, offset), get(&f, "set"), &mut diags);
        let why = ("empty `hardware`", "name the hardware as traces write it");
        let Some(hardware) = t.key((line, offset), &f, "hardware", why, &mut diags) else {
            continue;
        };
        out.push(HardwareEntry {
            hardware: hardware.to_string(),
            substrate: opt(get(&f, "substrate")),
            family: get(&f, "family").to_string(),
            link: get(&f, "link").to_string(),
            link_bw,
            link_latency,
            set,
            note: get(&f, "note").to_string(),
        });
    }
    diags.finish(out)
}

fn parse_models(text: &str, file: &str) -> Result<Vec<ModelEntry>, DescErrors> {
    let t = Table::new(text, file);
    let recs = t.records(&["model", "preset"])?;
    Ok(recs
        .into_iter()
        .map(|(_, _, f)| ModelEntry {
            model: get(&f, "model").to_string(),
            preset: opt(get(&f, "preset")),
            note: get(&f, "note").to_string(),
        })
        .collect())
}

/// The largest count the stack table takes (tokens, launches).
const MAX_TABLE_COUNT: u64 = 1 << 32;

/// The stack table's host columns ([`crate::system::HostQueue`], in its field order) and the
/// least each takes: a queue holds at least one submission and a block makes at least one.
const HOST_COLUMNS: [(&str, u64); 4] = [
    ("host_queue", 1),
    ("block_launches", 1),
    ("dequant_launches", 0),
    ("boundary_launches", 0),
];

fn parse_stacks(text: &str, file: &str) -> Result<Vec<StackEntry>, DescErrors> {
    let t = Table::new(text, file);
    let recs = t.records(&["pattern", "stack", "multi_device"])?;
    let mut diags = Diagnostics::new(&t.src);
    let mut out = Vec::new();
    for (line, offset, f) in recs {
        let multi = match get(&f, "multi_device") {
            "tensor" => MultiDevice::Tensor,
            "layer" => MultiDevice::Layer,
            other => {
                diags.push(t.error(
                    line,
                    offset,
                    format!("`multi_device`: unknown `{other}`"),
                    "expected tensor or layer",
                ));
                continue;
            }
        };
        // a count of at least `min` (`what` for the message), or blank
        let mut count = |col: &str, min: u64, what: &str| -> Option<u64> {
            let v = get(&f, col);
            if v.is_empty() {
                return None;
            }
            match v.parse::<u64>() {
                Ok(n) if n >= min && n <= MAX_TABLE_COUNT => Some(n),
                _ => {
                    diags.push(t.error(
                        line,
                        offset,
                        format!("`{col}`: `{v}` is not {what}"),
                        "ubatch and nbatch are token counts, the host columns launch counts, or blank",
                    ));
                    None
                }
            }
        };
        let ubatch = count("ubatch", 1, "a positive token count");
        let nbatch = count("nbatch", 1, "a positive token count");
        let host_vals: Vec<Option<u64>> = HOST_COLUMNS
            .iter()
            .map(|&(c, min)| count(c, min, "a launch count"))
            .collect();
        let given = HOST_COLUMNS
            .iter()
            .filter(|(c, _)| !get(&f, c).is_empty())
            .count();
        let host = match host_vals[..] {
            [
                Some(depth),
                Some(block_launches),
                Some(dequant_launches),
                Some(boundary_launches),
            ] => Some(crate::system::HostQueue {
                depth,
                block_launches,
                dequant_launches,
                boundary_launches,
            }),
            _ => {
                if given > 0 && given < HOST_COLUMNS.len() {
                    diags.push(t.error(
                        line,
                        offset,
                        format!("the host columns: {given} of {} given", HOST_COLUMNS.len()),
                        "give host_queue, block_launches, dequant_launches and boundary_launches together, or none",
                    ));
                }
                None
            }
        };
        out.push(StackEntry {
            pattern: get(&f, "pattern").to_string(),
            stack: get(&f, "stack").to_string(),
            multi,
            ubatch,
            nbatch,
            host,
            note: get(&f, "note").to_string(),
        });
    }
    diags.finish(out)
}

impl Maps {
    /// The shipped tables.
    pub fn builtin() -> Result<Maps, DescErrors> {
        Ok(Maps {
            hardware: parse_hardware(HARDWARE_CSV, "traces/hardware.csv")?,
            models: parse_models(MODELS_CSV, "traces/models.csv")?,
            stacks: parse_stacks(STACKS_CSV, "traces/stacks.csv")?,
        })
    }

    /// Adds a user's table (hardware, model or stack map, told by its header); its entries
    /// take precedence over earlier ones.
    pub fn add_file(&mut self, path: &Path) -> Result<(), DescErrors> {
        let file = SourceFile::read(path)?;
        self.add_text(file.text(), file.name())
    }

    pub fn add_text(&mut self, text: &str, file: &str) -> Result<(), DescErrors> {
        let t = Table::new(text, file);
        if t.has("substrate") {
            let mut new = parse_hardware(text, file)?;
            new.append(&mut self.hardware);
            self.hardware = new;
        } else if t.has("preset") {
            let mut new = parse_models(text, file)?;
            new.append(&mut self.models);
            self.models = new;
        } else if t.has("multi_device") {
            let mut new = parse_stacks(text, file)?;
            new.append(&mut self.stacks);
            self.stacks = new;
        } else {
            return Err(t
                .src
                .error(
                    Loc {
                        line: 1,
                        column: 1,
                        offset: 0,
                        len: text.find('\n').unwrap_or(text.len()),
                    },
                    "not a mapping table",
                    "header",
                    Some(
                        "a hardware map has the columns hardware,substrate[,family,link,link_GBps,link_latency_us,note]; \
                         a model map model,preset[,note]; a stack map pattern,stack,multi_device[,note]"
                            .into(),
                    ),
                )
                .into());
        }
        Ok(())
    }

    /// The entry for a hardware string: the whole string first, then without its count.
    pub fn hardware_for(&self, full: &str) -> Option<&HardwareEntry> {
        let (_, base) = split_count(full);
        self.hardware
            .iter()
            .find(|h| h.hardware == full)
            .or_else(|| self.hardware.iter().find(|h| h.hardware == base))
    }

    pub fn model_for(&self, model: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.model == model)
    }

    pub fn stack_for(&self, software: &str) -> Option<&StackEntry> {
        self.stacks.iter().find(|s| software.contains(&s.pattern))
    }
}

/// `4x NVIDIA A40` -> (4, `NVIDIA A40`); no prefix -> (1, whole).
pub fn split_count(hardware: &str) -> (u64, &str) {
    if let Some((n, rest)) = hardware.split_once("x ")
        && let Ok(n) = n.trim().parse::<u64>()
        && n >= 1
    {
        return (n, rest.trim());
    }
    (1, hardware.trim())
}

/// What a row's metric asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Generated tokens per second over `gen` decode steps.
    DecodeRate,
    /// Prompt tokens per second of one prefill pass.
    PrefillRate,
    /// Time of the prefill pass (time to first token).
    PrefillTime,
    /// Mean time per output token (one decode step).
    Tpot,
    /// Prefill plus the decode steps after the first token.
    E2eTime,
    /// Output tokens per second over the whole run.
    OutputThroughput,
    /// The same per device.
    OutputThroughputPerDevice,
    /// Average power of one device over the run.
    AvgPowerPerDevice,
    /// Energy of all devices per generated token.
    JoulesPerToken,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::DecodeRate => "decode_rate",
            Target::PrefillRate => "prefill_rate",
            Target::PrefillTime => "prefill_time",
            Target::Tpot => "tpot",
            Target::E2eTime => "e2e_time",
            Target::OutputThroughput => "output_throughput",
            Target::OutputThroughputPerDevice => "output_throughput_per_device",
            Target::AvgPowerPerDevice => "avg_power_per_device",
            Target::JoulesPerToken => "joules_per_token",
        }
    }
    /// The phase the metric measures: `decode`, `prefill`, `e2e` or `energy`.
    pub fn phase(self) -> &'static str {
        match self {
            Target::DecodeRate | Target::Tpot => "decode",
            Target::PrefillRate | Target::PrefillTime => "prefill",
            Target::E2eTime | Target::OutputThroughput | Target::OutputThroughputPerDevice => "e2e",
            Target::AvgPowerPerDevice | Target::JoulesPerToken => "energy",
        }
    }
    /// Whether the metric is a time-like quantity calibration fits (not power or energy).
    pub fn is_timing(self) -> bool {
        self.phase() != "energy"
    }
    fn dimension(self) -> Dimension {
        match self {
            Target::DecodeRate
            | Target::PrefillRate
            | Target::OutputThroughput
            | Target::OutputThroughputPerDevice => Dimension::Rate,
            Target::PrefillTime | Target::Tpot | Target::E2eTime => Dimension::Time,
            Target::AvgPowerPerDevice => Dimension::Power,
            Target::JoulesPerToken => Dimension::EnergyPerToken,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dimension {
    Time,
    Rate,
    Power,
    EnergyPerToken,
}

/// The factor that turns a value in `unit` into SI (s, tokens/s, W, J/token).
fn unit_factor(unit: &str, dim: Dimension) -> Option<f64> {
    let u = unit.trim();
    match dim {
        Dimension::Time => match u {
            "s" => Some(1.0),
            "ms" => Some(1e-3),
            "us" | "µs" => Some(1e-6),
            _ => None,
        },
        Dimension::Rate => match u {
            "tok/s" | "tokens/s" | "output tok/s" | "output tok/s/GPU" | "tok/s/device" => Some(1.0),
            _ => None,
        },
        Dimension::Power => match u {
            "W" => Some(1.0),
            "mW" | "mW (as reported)" => Some(1e-3),
            _ => None,
        },
        Dimension::EnergyPerToken => match u {
            "J/tok" | "J/token" => Some(1.0),
            "mJ/tok" | "mJ/token" => Some(1e-3),
            _ => None,
        },
    }
}

fn expected_units(dim: Dimension) -> &'static str {
    match dim {
        Dimension::Time => "s, ms or us",
        Dimension::Rate => "tok/s, output tok/s or output tok/s/GPU",
        Dimension::Power => "W or mW",
        Dimension::EnergyPerToken => "J/tok or mJ/tok",
    }
}

/// Why a row cannot be predicted, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonKind {
    Metric,
    Unit,
    Hardware,
    Model,
    Weights,
    Workload,
    Stack,
    Load,
}

impl ReasonKind {
    pub fn name(self) -> &'static str {
        match self {
            ReasonKind::Metric => "metric",
            ReasonKind::Unit => "unit",
            ReasonKind::Hardware => "hardware",
            ReasonKind::Model => "model",
            ReasonKind::Weights => "weights",
            ReasonKind::Workload => "workload",
            ReasonKind::Stack => "stack",
            ReasonKind::Load => "load",
        }
    }
}

/// A row that cannot be predicted, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Unmappable {
    pub kind: ReasonKind,
    pub reason: String,
}

impl fmt::Display for Unmappable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.reason)
    }
}

fn unmappable(kind: ReasonKind, reason: impl Into<String>) -> Unmappable {
    Unmappable {
        kind,
        reason: reason.into(),
    }
}

/// The weight, KV-cache and activation formats of a row.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Formats {
    pub weights: Precision,
    pub kv_cache: Precision,
    pub activations: Precision,
}

/// A row mapped to something llmforge can predict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Case {
    pub substrate: String,
    pub devices: u64,
    pub family: String,
    pub stack: String,
    pub multi: MultiDevice,
    /// Per-direction bandwidth (bytes/s) and fixed latency (s) of the device link.
    pub link_bw: Option<f64>,
    pub link_latency: Option<f64>,
    /// Substrate overrides from the hardware map.
    pub set: Vec<(String, String)>,
    /// Layer-split prompt pipelining: (micro-batch, batch) in tokens.
    pub pipeline: Option<(u64, u64)>,
    /// The stack's host launch queues ([`crate::system::HostQueue`]), where it states them.
    pub host: Option<crate::system::HostQueue>,
    pub preset: String,
    pub formats: Formats,
    pub batch: u64,
    pub prompt: u64,
    pub generate: u64,
    pub target: Target,
    /// The measured value in SI (s, tokens/s, W, J/token).
    pub measured: f64,
    /// Factor from the row's unit to SI.
    pub unit_factor: f64,
    /// Assumptions made to map the row (stated, never silent).
    pub assumptions: Vec<String>,
}

fn target_of(metric: &str) -> Result<Target, Unmappable> {
    Ok(match metric {
        "tg_tokens_per_s" | "decode_tokens_per_s" => Target::DecodeRate,
        "pp_tokens_per_s" | "prefill_tokens_per_s" => Target::PrefillRate,
        "ttft" | "ttft_batch" => Target::PrefillTime,
        "tpot" => Target::Tpot,
        "e2e_batch_latency" | "e2e_latency" => Target::E2eTime,
        "throughput_output" | "throughput_output_total" => Target::OutputThroughput,
        "throughput_output_per_gpu" => Target::OutputThroughputPerDevice,
        "avg_gpu_power" => Target::AvgPowerPerDevice,
        "joules_per_token" => Target::JoulesPerToken,
        m if m == "gemm_latency" || m.starts_with("layer_op_latency") => {
            return Err(unmappable(
                ReasonKind::Metric,
                format!(
                    "`{m}` is an operator-level measurement (one GEMM or one operator of one layer); \
                     validate predicts whole-model phases"
                ),
            ));
        }
        m => {
            return Err(unmappable(
                ReasonKind::Metric,
                format!(
                    "unknown metric `{m}` (known: tg_tokens_per_s, decode_tokens_per_s, pp_tokens_per_s, \
                     prefill_tokens_per_s, ttft, ttft_batch, tpot, e2e_batch_latency, e2e_latency, \
                     throughput_output, throughput_output_total, throughput_output_per_gpu, avg_gpu_power, \
                     joules_per_token)"
                ),
            ));
        }
    })
}

/// The KV-cache format named in a weights string like `FP16 (Weight = fp16, KV Cache = fp8)`.
fn kv_format(weights: &str) -> Result<Option<Precision>, Unmappable> {
    let Some(i) = weights.find("KV Cache =") else {
        return Ok(None);
    };
    let rest = weights[i + "KV Cache =".len()..].trim_start();
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match word.to_ascii_lowercase().as_str() {
        "fp16" | "full_prec" => Ok(Some(Precision::F16)),
        "bf16" => Ok(Some(Precision::Bf16)),
        "fp8" => Ok(Some(Precision::Fp8)),
        "int8" => Ok(Some(Precision::Int8)),
        other => Err(unmappable(
            ReasonKind::Weights,
            format!("unknown KV-cache format `{other}` in `{weights}`"),
        )),
    }
}

/// Weight format and bits per weight to formats. The stated bits per weight win over a
/// format's nominal bits (they include block scales as the source measured them).
pub fn formats(weights: &str, bpw: Option<f64>) -> Result<(Formats, Vec<String>), Unmappable> {
    let w = weights.trim();
    let upper = w.to_ascii_uppercase();
    let mut notes = Vec::new();
    // Named format: (precision, whether its bits are fixed by the name).
    let named: Option<Precision> = if upper.starts_with("GGUF Q4_K_M") {
        Some(Precision::Gguf(GgufFormat::Q4KM))
    } else if upper.starts_with("GGUF Q4_0") {
        Some(Precision::Gguf(GgufFormat::Q4_0))
    } else if upper.starts_with("GGUF Q8_0") {
        Some(Precision::Gguf(GgufFormat::Q8_0))
    } else if upper.starts_with("GGUF F16")
        || upper.starts_with("FP16")
        || upper.starts_with("BF16")
        || upper.starts_with("FULL_PREC")
    {
        Some(Precision::F16)
    } else if upper.starts_with("FP8") {
        Some(Precision::Fp8)
    } else if upper.starts_with("INT8") {
        Some(Precision::Int8)
    } else if upper.starts_with("FP32") {
        Some(Precision::F32)
    } else {
        None
    };
    let weights_p = match (named, bpw) {
        (Some(p), Some(b)) if (p.bits() - b).abs() < 1e-9 => p,
        (
            Some(Precision::F16 | Precision::Bf16 | Precision::F32 | Precision::Fp8 | Precision::Int8),
            Some(b),
        ) => {
            return Err(unmappable(
                ReasonKind::Weights,
                format!(
                    "`{w}` is a {}-bit format but bits_per_weight says {b}",
                    named.map_or(0.0, |p| p.bits())
                ),
            ));
        }
        (Some(_), Some(b)) | (None, Some(b)) => {
            if !(0.5..=32.0).contains(&b) {
                return Err(unmappable(
                    ReasonKind::Weights,
                    format!("bits_per_weight {b} is outside 0.5..=32"),
                ));
            }
            // Block formats keep their fp16 arithmetic; the stated bits set the bytes.
            Precision::Bits(b)
        }
        (Some(p), None) => {
            if matches!(p, Precision::Gguf(_)) {
                notes.push(format!(
                    "bits_per_weight blank: {} taken at its nominal {} bits",
                    p,
                    p.bits()
                ));
            }
            p
        }
        (None, None) => {
            return Err(unmappable(
                ReasonKind::Weights,
                format!("bits per weight not stated for `{w}` (group size or block format unknown)"),
            ));
        }
    };
    if upper.starts_with("FP4") && bpw.is_none() {
        return Err(unmappable(
            ReasonKind::Weights,
            format!("bits per weight not stated for `{w}`"),
        ));
    }
    let kv = kv_format(w)?.unwrap_or(Precision::F16);
    // SmoothQuant runs int8 GEMMs; the FP8 stacks of the public rows (TensorRT-LLM, vLLM on
    // Hopper and Ada) quantise activations to fp8 for fp8 GEMMs (W8A8). Other formats are
    // weight-only: fp16 activations, the weights dequantised to them.
    let activations = if upper.starts_with("INT8_SQ") {
        Precision::Int8
    } else if weights_p == Precision::Fp8 {
        notes.push(
            "FP8: activations in fp8 for the GEMMs (W8A8, as TensorRT-LLM and vLLM run FP8 checkpoints)"
                .into(),
        );
        Precision::Fp8
    } else {
        Precision::F16
    };
    Ok((
        Formats {
            weights: weights_p,
            kv_cache: kv,
            activations,
        },
        notes,
    ))
}

/// Maps one row.
pub fn map_row(row: &TraceRow, maps: &Maps) -> Result<Case, Unmappable> {
    let target = target_of(&row.metric)?;
    let dim = target.dimension();
    let factor = unit_factor(&row.unit, dim).ok_or_else(|| {
        unmappable(
            ReasonKind::Unit,
            format!(
                "unit `{}` does not fit metric `{}` (expected {})",
                row.unit,
                row.metric,
                expected_units(dim)
            ),
        )
    })?;
    if row.value <= 0.0 {
        return Err(unmappable(
            ReasonKind::Workload,
            format!("measured value {} is not positive", row.value),
        ));
    }
    let (devices, _) = split_count(&row.hardware);
    let hw = maps.hardware_for(&row.hardware).ok_or_else(|| {
        unmappable(
            ReasonKind::Hardware,
            format!("no substrate mapped for hardware `{}`", row.hardware),
        )
    })?;
    let Some(substrate) = hw.substrate.clone() else {
        return Err(unmappable(
            ReasonKind::Hardware,
            if hw.note.is_empty() {
                format!("no substrate for `{}`", row.hardware)
            } else {
                hw.note.clone()
            },
        ));
    };
    let mut assumptions = Vec::new();
    if !hw.note.is_empty() {
        assumptions.push(hw.note.clone());
    }
    let m = maps.model_for(&row.model).ok_or_else(|| {
        unmappable(
            ReasonKind::Model,
            format!("no model description mapped for `{}`", row.model),
        )
    })?;
    let Some(preset) = m.preset.clone() else {
        return Err(unmappable(ReasonKind::Model, m.note.clone()));
    };
    if !m.note.is_empty() {
        assumptions.push(m.note.clone());
    }
    let (formats, notes) = formats(&row.weights, row.bits_per_weight)?;
    assumptions.extend(notes);
    let stack = maps.stack_for(&row.software).ok_or_else(|| {
        unmappable(
            ReasonKind::Stack,
            format!("no stack entry matches software `{}`", row.software),
        )
    })?;
    if devices > 1 && (hw.link_bw.is_none() || hw.link_latency.is_none()) {
        return Err(unmappable(
            ReasonKind::Hardware,
            format!(
                "{devices} devices but no link bandwidth and latency for `{}` in the hardware map",
                hw.hardware
            ),
        ));
    }
    let batch = match &row.batch {
        Batch::Fixed(b) if *b >= 1 => *b,
        Batch::Fixed(_) => {
            return Err(unmappable(ReasonKind::Workload, "batch 0"));
        }
        Batch::Text(t) if t.is_empty() => {
            return Err(unmappable(ReasonKind::Workload, "batch not stated"));
        }
        Batch::Text(t) => {
            return Err(unmappable(
                ReasonKind::Workload,
                format!("batch `{t}` is not a number (a scheduler-chosen batch cannot be replayed)"),
            ));
        }
    };
    let prompt = match row.prompt_len {
        Some(p) => p,
        None if target == Target::DecodeRate || target == Target::Tpot => {
            assumptions.push("prompt_len blank: decode taken from an empty context".into());
            0
        }
        None => {
            return Err(unmappable(ReasonKind::Workload, "prompt_len not stated"));
        }
    };
    let generate = row.gen_len.unwrap_or(0);
    let needs_gen = matches!(
        target,
        Target::DecodeRate
            | Target::Tpot
            | Target::OutputThroughput
            | Target::OutputThroughputPerDevice
            | Target::JoulesPerToken
            | Target::AvgPowerPerDevice
            | Target::E2eTime
    );
    if needs_gen && generate == 0 {
        return Err(unmappable(
            ReasonKind::Workload,
            format!("metric `{}` needs gen_len >= 1", row.metric),
        ));
    }
    if target.phase() == "prefill" && prompt == 0 {
        return Err(unmappable(
            ReasonKind::Workload,
            format!("metric `{}` needs prompt_len >= 1", row.metric),
        ));
    }
    if matches!(
        target,
        Target::E2eTime | Target::OutputThroughput | Target::OutputThroughputPerDevice
    ) && prompt == 0
    {
        return Err(unmappable(
            ReasonKind::Workload,
            "an end-to-end run needs prompt_len >= 1",
        ));
    }
    // The engine runs at least one prompt token and one step (predict::engine_run).
    if let Err(e) = crate::sim::Workload::new(prompt.max(1), generate.max(1), batch) {
        return Err(unmappable(ReasonKind::Workload, e.to_string()));
    }
    Ok(Case {
        substrate,
        devices,
        family: hw.family.clone(),
        stack: stack.stack.clone(),
        multi: stack.multi,
        link_bw: hw.link_bw,
        link_latency: hw.link_latency,
        set: hw.set.clone(),
        pipeline: stack.ubatch.zip(stack.nbatch),
        host: stack.host,
        preset,
        formats,
        batch,
        prompt,
        generate,
        target,
        measured: row.value * factor,
        unit_factor: factor,
        assumptions,
    })
}
