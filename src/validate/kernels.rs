//! Measured GPU kernels: the kernel-trace format (`traces/kernels/`, documented in
//! `traces/README.md`), the tables that map its rows onto substrates and precisions, the
//! prediction of each row through the cost engine (one GEMM, [`crate::sim::cost::Mapper`]),
//! errors per device and precision (all rows, DRAM-bound rows, compute-bound rows), and the
//! hold-out by device: each device's rows predicted with kernel-model parameters fitted on the
//! other devices measured the same way (same dataset).
//!
//! What the fit frees are the parameters of the GPU kernel model that describe the kernels and
//! no data sheet gives (`efficiency.kernel_overhead`, `kernel.tile_cycles`,
//! `kernel.step_cycles`, `kernel.l2_reuse`, `kernel.overlap`); `kernel.operand_bandwidth` is a
//! stated hardware figure. A device's achieved fractions of its matrix peak
//! (`efficiency.compute`) and of its DRAM bandwidth (`efficiency.memory`) are stated by its
//! substrate (or the device table) and never fitted here, so a held-out device brings only its
//! data sheet and those two stated fractions. The DRAM fraction is a property of the memory
//! system, which the other devices of a library do not share: fitted on the MI308X, whose 80
//! CUs do not draw its HBM, it took 0.56 and predicted the MI355X's DRAM-bound GEMMs 33% slow.
//! Every GPU substrate states 0.85, what STREAM reaches on GPUs (gpu-benches: triad 0.74-0.95 of
//! the data-sheet bandwidth on ten GPUs, median 0.87).
//!
//! A held-out device's fits start from a fit on every other device's rows (all datasets), not
//! from the shipped `kernel:` defaults, which were fitted with every device in sample: no row
//! of the held-out device reaches its prediction.

use super::mapping::{Table, get, overrides};
use super::predict::Engine;
use super::stats::{self, Group};
use super::traces::{csv_error_in, field_ranges, loc_at};
use super::{ReasonCount, ReasonKind};
use crate::graph::{KernelFormats, gemm_op};
use crate::model::{ComputeClass, Precision, Precisions};
use crate::sim::cost::{self, Mapper};
use crate::substrate::{Kind, Substrate};
use crate::units::{BytesPerCycle, Cycles, Seconds};
use crate::yaml::{DescErrors, Diagnostics, SourceFile};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

const DEVICES_CSV: &str = include_str!("../../traces/kernels/devices.csv");
const DTYPES_CSV: &str = include_str!("../../traces/kernels/dtypes.csv");
const EXCLUSIONS_CSV: &str = include_str!("../../traces/kernels/exclusions.csv");

/// The columns of the kernel-trace format.
pub const COLUMNS: [&str; 12] = [
    "dataset", "device", "dtype", "batch", "m", "n", "k", "time_s", "tflops", "library", "flag", "source",
];

/// Columns a row cannot be predicted without.
const REQUIRED: [&str; 7] = ["device", "dtype", "batch", "m", "n", "k", "time_s"];

/// One measured GEMM: `batch` products of (m x k) by (k x n).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelRow {
    pub line: u64,
    pub dataset: String,
    pub device: String,
    pub dtype: String,
    pub batch: u64,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    /// Measured time (s); may be infinite or zero as a source wrote it (such rows are
    /// reported, not predicted).
    pub time_s: f64,
    pub library: String,
    pub flag: String,
    pub source: String,
}

/// A parsed kernel-trace file.
#[derive(Clone, Debug)]
pub struct KernelTraces {
    pub file: String,
    pub rows: Vec<KernelRow>,
}

/// Reads a kernel-trace file.
pub fn read(path: &Path) -> Result<KernelTraces, DescErrors> {
    let file = SourceFile::read(path)?;
    parse(file.text(), file.name())
}

/// Parses kernel-trace CSV text; `file` names it in errors. Every problem is reported at
/// once, located.
pub fn parse(text: &str, file: &str) -> Result<KernelTraces, DescErrors> {
    let src = SourceFile::new(file, text);
    let mut diags = Diagnostics::new(&src);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_error_in(&src, text, &e).into()),
    };
    let index = |name: &str| headers.iter().position(|h| h.trim() == name);
    let missing: Vec<&str> = REQUIRED.iter().copied().filter(|c| index(c).is_none()).collect();
    if !missing.is_empty() {
        let header_len = text.find('\n').unwrap_or(text.len());
        return Err(src
            .error(
                loc_at(text, 0, header_len),
                format!("the header lacks the column(s) {}", missing.join(", ")),
                "header",
                Some(format!(
                    "a kernel-trace file's header names these columns: {}",
                    COLUMNS.join(",")
                )),
            )
            .into());
    }
    let col: Vec<Option<usize>> = COLUMNS.iter().map(|c| index(c)).collect();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                diags.push(csv_error_in(&src, text, &e));
                if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    continue;
                }
                break;
            }
        }
        let pos = record.position().cloned().unwrap_or_else(csv::Position::new);
        let rec_start = usize::try_from(pos.byte()).unwrap_or(0);
        let ranges = field_ranges(text, rec_start);
        let field = |k: usize| -> (&str, (usize, usize)) {
            match col[k] {
                Some(i) => (
                    record.get(i).unwrap_or("").trim(),
                    ranges.get(i).map_or((rec_start, 0), |&(a, b)| (a, b - a)),
                ),
                None => ("", (rec_start, 0)),
            }
        };
        let mut bad = false;
        // A dimension: a positive whole number (written `256` or `256.0`).
        let mut dim = |k: usize, diags: &mut Diagnostics| -> u64 {
            let (s, (offset, len)) = field(k);
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v < 1e15 => v as u64,
                _ => {
                    diags.push(src.error(
                        loc_at(text, offset, len),
                        format!("`{}`: `{s}` is not a positive whole number", COLUMNS[k]),
                        "here",
                        Some("GEMM dimensions and the batch are counts, e.g. 4096".into()),
                    ));
                    bad = true;
                    0
                }
            }
        };
        let batch = dim(3, &mut diags);
        let m = dim(4, &mut diags);
        let n = dim(5, &mut diags);
        let k = dim(6, &mut diags);
        let (t, (offset, len)) = field(7);
        let time_s = match t.parse::<f64>() {
            Ok(v) if !v.is_nan() => v,
            _ => {
                diags.push(src.error(
                    loc_at(text, offset, len),
                    format!("`time_s`: `{t}` is not a number"),
                    "here",
                    Some("the measured kernel time in seconds, e.g. 4.96e-06".into()),
                ));
                bad = true;
                0.0
            }
        };
        if bad {
            continue;
        }
        let text_of = |k: usize| field(k).0.to_string();
        rows.push(KernelRow {
            line: pos.line(),
            dataset: text_of(0),
            device: text_of(1),
            dtype: text_of(2),
            batch,
            m,
            n,
            k,
            time_s,
            library: text_of(9),
            flag: text_of(10),
            source: text_of(11),
        });
    }
    if rows.is_empty() && diags.is_empty() {
        diags.push(src.error(
            loc_at(text, 0, 0),
            "the kernel-trace file has a header but no rows",
            "",
            None,
        ));
    }
    diags.finish(KernelTraces {
        file: file.to_string(),
        rows,
    })
}

#[derive(Clone, Debug)]
struct DeviceEntry {
    device: String,
    substrate: Option<String>,
    family: String,
    set: Vec<(String, String)>,
    note: String,
}

/// Operand, arithmetic and output formats of a dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Formats {
    pub operands: Precision,
    pub compute: ComputeClass,
    pub output: Precision,
}

#[derive(Clone, Debug)]
struct DtypeEntry {
    pattern: String,
    formats: Option<Formats>,
    note: String,
}

#[derive(Clone, Debug)]
struct Exclusion {
    column: String,
    pattern: String,
    reason: String,
}

/// The tables that map kernel rows (`traces/kernels/devices.csv`, `dtypes.csv`,
/// `exclusions.csv`).
#[derive(Clone, Debug)]
pub struct KernelMaps {
    devices: Vec<DeviceEntry>,
    dtypes: Vec<DtypeEntry>,
    exclusions: Vec<Exclusion>,
}

fn parse_class(s: &str) -> Option<ComputeClass> {
    match s {
        "fp32" => Some(ComputeClass::F32),
        "fp16" => Some(ComputeClass::F16),
        "bf16" => Some(ComputeClass::Bf16),
        "fp8" => Some(ComputeClass::Fp8),
        "int8" => Some(ComputeClass::Int8),
        "int4" => Some(ComputeClass::Int4),
        _ => None,
    }
}

impl KernelMaps {
    /// The shipped tables.
    pub fn builtin() -> Result<KernelMaps, DescErrors> {
        let mut m = KernelMaps {
            devices: Vec::new(),
            dtypes: Vec::new(),
            exclusions: Vec::new(),
        };
        m.add_text(DEVICES_CSV, "traces/kernels/devices.csv")?;
        m.add_text(DTYPES_CSV, "traces/kernels/dtypes.csv")?;
        m.add_text(EXCLUSIONS_CSV, "traces/kernels/exclusions.csv")?;
        Ok(m)
    }

    /// Adds a table file (told by its header); its entries take precedence.
    pub fn add_file(&mut self, path: &Path) -> Result<(), DescErrors> {
        let file = SourceFile::read(path)?;
        self.add_text(file.text(), file.name())
    }

    fn add_text(&mut self, text: &str, file: &str) -> Result<(), DescErrors> {
        let t = Table::new(text, file);
        let head = |c: &str| {
            text.lines()
                .next()
                .is_some_and(|h| h.split(',').any(|x| x.trim() == c))
        };
        let mut diags = Diagnostics::new(&t.src);
        if head("device") {
            let recs = t.records(&["device", "substrate", "family"])?;
            let mut new = Vec::new();
            for (line, offset, f) in recs {
                let set = overrides(&t, (line, offset), get(&f, "set"), &mut diags);
                let sub = get(&f, "substrate");
                new.push(DeviceEntry {
                    device: get(&f, "device").to_string(),
                    substrate: (!sub.is_empty()).then(|| sub.to_string()),
                    family: get(&f, "family").to_string(),
                    set,
                    note: get(&f, "note").to_string(),
                });
            }
            new.append(&mut self.devices);
            self.devices = new;
        } else if head("pattern") && head("operands") {
            let recs = t.records(&["pattern", "operands", "compute", "output"])?;
            let mut new = Vec::new();
            for (line, offset, f) in recs {
                let why = (
                    "`pattern` is empty: it would start every dtype",
                    "the leading text of the dtypes it maps, e.g. bf16xbf16->f32",
                );
                let Some(pattern) = t.key((line, offset), &f, "pattern", why, &mut diags) else {
                    continue;
                };
                let (o, c, out) = (get(&f, "operands"), get(&f, "compute"), get(&f, "output"));
                let formats = if o.is_empty() && c.is_empty() && out.is_empty() {
                    None
                } else {
                    match (o.parse::<Precision>(), parse_class(c), out.parse::<Precision>()) {
                        (Ok(operands), Some(compute), Ok(output)) => Some(Formats {
                            operands,
                            compute,
                            output,
                        }),
                        _ => {
                            diags.push(t.error(
                                line,
                                offset,
                                format!("`{o}`, `{c}`, `{out}`: not operand precision, compute class, output precision"),
                                "e.g. bf16,bf16,fp32 (classes: fp32, fp16, bf16, fp8, int8, int4); all three blank for a dtype that cannot be priced",
                            ));
                            continue;
                        }
                    }
                };
                new.push(DtypeEntry {
                    pattern: pattern.to_string(),
                    formats,
                    note: get(&f, "note").to_string(),
                });
            }
            new.append(&mut self.dtypes);
            self.dtypes = new;
        } else if head("column") {
            let recs = t.records(&["column", "pattern", "reason"])?;
            for (line, offset, f) in recs {
                let column = get(&f, "column").to_string();
                let why = (
                    "`pattern` is empty: it would exclude nothing",
                    "the text a row's column contains, e.g. kernel=auto",
                );
                let Some(pattern) = t.key((line, offset), &f, "pattern", why, &mut diags) else {
                    continue;
                };
                if !COLUMNS.contains(&column.as_str()) {
                    diags.push(t.error(
                        line,
                        offset,
                        format!("`column`: `{column}` is not a kernel-trace column"),
                        "one of dataset, device, dtype, library, flag, source",
                    ));
                    continue;
                }
                self.exclusions.push(Exclusion {
                    column,
                    pattern: pattern.to_string(),
                    reason: get(&f, "reason").to_string(),
                });
            }
        } else {
            diags.push(t.error(
                1,
                0,
                "not a kernel mapping table".into(),
                "a devices table (device,substrate,family,set,note), a dtypes table (pattern,operands,compute,output,note) or an exclusions table (column,pattern,reason)",
            ));
        }
        diags.finish(())
    }
}

/// One row, mapped.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelCase {
    pub line: u64,
    pub dataset: String,
    pub device: String,
    pub dtype: String,
    pub substrate: String,
    pub family: String,
    /// Substrate overrides of the device table.
    pub set: Vec<(String, String)>,
    pub operands: String,
    pub compute: &'static str,
    pub batch: u64,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    /// Measured time (s).
    pub measured: f64,
    /// Why the row is kept out of the statistics and fits, if it is.
    pub excluded: Option<String>,
    pub assumptions: Vec<String>,
    #[serde(skip)]
    pub formats: Formats,
}

impl KernelCase {
    /// Whether the operands are 16-bit floats (fp16 / bf16): the rows the hold-out fits.
    pub fn sixteen_bit(&self) -> bool {
        matches!(self.formats.operands, Precision::F16 | Precision::Bf16)
    }
}

/// Maps one row; the reason when it cannot be predicted.
pub fn map_row(row: &KernelRow, maps: &KernelMaps) -> Result<KernelCase, (ReasonKind, String)> {
    let dev = maps
        .devices
        .iter()
        .find(|d| d.device == row.device)
        .ok_or_else(|| {
            (
                ReasonKind::Hardware,
                format!("device `{}` is not in the device table", row.device),
            )
        })?;
    let Some(substrate) = dev.substrate.clone() else {
        return Err((ReasonKind::Hardware, dev.note.clone()));
    };
    let dt = maps
        .dtypes
        .iter()
        .find(|d| row.dtype.starts_with(&d.pattern))
        .ok_or_else(|| {
            (
                ReasonKind::Weights,
                format!("dtype `{}` is not in the dtype table", row.dtype),
            )
        })?;
    let Some(formats) = dt.formats else {
        return Err((ReasonKind::Weights, dt.note.clone()));
    };
    if !(row.time_s.is_finite() && row.time_s > 0.0) {
        return Err((
            ReasonKind::Workload,
            format!("time `{}` is not a positive finite number", row.time_s),
        ));
    }
    let field = |c: &str| -> &str {
        match c {
            "dataset" => &row.dataset,
            "device" => &row.device,
            "dtype" => &row.dtype,
            "library" => &row.library,
            "flag" => &row.flag,
            "source" => &row.source,
            _ => "",
        }
    };
    let excluded = maps
        .exclusions
        .iter()
        .find(|x| field(&x.column).contains(x.pattern.as_str()))
        .map(|x| x.reason.clone());
    let mut assumptions = Vec::new();
    if !dev.note.is_empty() {
        assumptions.push(dev.note.clone());
    }
    if !dt.note.is_empty() {
        assumptions.push(dt.note.clone());
    }
    Ok(KernelCase {
        line: row.line,
        dataset: row.dataset.clone(),
        device: row.device.clone(),
        dtype: row.dtype.clone(),
        substrate,
        family: dev.family.clone(),
        set: dev.set.clone(),
        operands: formats.operands.to_string(),
        compute: formats.compute.name(),
        batch: row.batch,
        m: row.m,
        n: row.n,
        k: row.k,
        measured: row.time_s,
        excluded,
        assumptions,
        formats,
    })
}

/// What the engine gives for one GEMM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct KernelPrediction {
    pub time_s: f64,
    pub dram_bytes: f64,
    pub flops: f64,
}

/// The GEMM of a case as one op.
pub fn case_op(c: &KernelCase) -> crate::graph::Op {
    let f = KernelFormats {
        input: c.formats.operands.bytes(),
        stored: c.formats.operands.bytes(),
        output: c.formats.output.bytes(),
        compute: c.formats.compute,
    };
    gemm_op(c.m, c.n, c.k, c.batch, f)
}

fn mapper_for<'s>(c: &KernelCase, sub: &'s Substrate) -> Mapper<'s> {
    let p = c.formats.operands;
    Mapper::new(
        sub,
        &Precisions {
            weights: p,
            activations: p,
            kv_cache: p,
        },
    )
}

/// Predicts one case on `sub` with `engine`.
pub fn predict(c: &KernelCase, sub: &Substrate, engine: Engine) -> KernelPrediction {
    let op = case_op(c);
    let model = match engine {
        Engine::Roofline => cost::Model::Roofline,
        Engine::Sim => cost::Model::Sim,
    };
    let k = mapper_for(c, sub).cost(model, &[&op], 1);
    KernelPrediction {
        time_s: k.time().get(),
        dram_bytes: k.dram_bytes.get(),
        flops: op.flops.get(),
    }
}

/// `dram` when the roofline at the substrate's stated efficiencies is memory-bound, else
/// `compute`: the two subsets the errors are also reported for.
pub fn regime(c: &KernelCase, sub: &Substrate) -> &'static str {
    let op = case_op(c);
    let r = mapper_for(c, sub).roofline(&[&op]);
    if r.memory > r.compute { "dram" } else { "compute" }
}

/// The kernel-model parameters a fit may free ([`FREE`], [`FREE_SM`] say which it does), in
/// order: `efficiency.memory`, `efficiency.kernel_overhead`, `kernel.tile_cycles`,
/// `kernel.step_cycles`, `kernel.operand_bandwidth`, `kernel.l2_reuse`, `kernel.overlap`,
/// `kernel.sm_bandwidth`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct KernelParams {
    pub memory: f64,
    pub kernel_overhead_s: f64,
    pub tile_cycles: f64,
    pub step_cycles: f64,
    pub operand_bytes_per_cycle: f64,
    pub l2_reuse: f64,
    pub overlap: f64,
    pub sm_bytes_per_cycle: f64,
}

const NP: usize = 8;

/// Which of the parameters the fit frees: not the DRAM efficiency (stated: see the module
/// docs), nor the operand bandwidth, a hardware figure (the shared-memory / LDS bytes per cycle
/// of one SM) that the substrate states, nor the DRAM streaming rate of one SM (stated, default:
/// no limit on a shipped GPU's full grid).
const FREE: [bool; NP] = [false, true, true, true, false, true, true, false];

/// With [`KernelOptions::fit_sm_bandwidth`]: the DRAM streaming rate of one SM is fitted too,
/// the DRAM efficiency still as stated (at full occupancy the two are the same knob, so
/// freeing both leaves the fit to trade one for the other).
const FREE_SM: [bool; NP] = [false, true, true, true, false, true, true, true];

/// Index of `kernel.sm_bandwidth`, which a fit that frees it first sets by a scan of
/// [`SM_BW_SCAN`]: where no SM count limits the rows the parameter has no slope.
const SM_BW: usize = 7;

/// Values (B/cycle) of `kernel.sm_bandwidth` a fit scans before refining.
const SM_BW_SCAN: [f64; 8] = [4.0, 6.0, 8.0, 11.0, 16.0, 23.0, 32.0, 64.0];

impl KernelParams {
    /// The values of a substrate (a GPU's; others get the GPU defaults).
    pub fn of(s: &Substrate) -> KernelParams {
        let k = match &s.kind {
            Kind::Gpu(g) => g.kernel,
            _ => crate::substrate::GpuKernel::DEFAULT,
        };
        KernelParams {
            memory: s.efficiency.memory,
            kernel_overhead_s: s.efficiency.kernel_overhead.get(),
            tile_cycles: k.tile_cycles.get(),
            step_cycles: k.step_cycles.get(),
            operand_bytes_per_cycle: k.operand_bandwidth.get(),
            l2_reuse: k.l2_reuse,
            overlap: k.overlap,
            sm_bytes_per_cycle: k.sm_bandwidth.get(),
        }
    }
    /// `s` with these values.
    pub fn apply(&self, s: &Substrate) -> Substrate {
        let mut out = s.clone();
        out.efficiency.memory = self.memory;
        out.efficiency.kernel_overhead = Seconds::new(self.kernel_overhead_s);
        if let Kind::Gpu(g) = &mut out.kind {
            g.kernel.tile_cycles = Cycles::new(self.tile_cycles);
            g.kernel.step_cycles = Cycles::new(self.step_cycles);
            g.kernel.operand_bandwidth = BytesPerCycle::new(self.operand_bytes_per_cycle);
            g.kernel.l2_reuse = self.l2_reuse;
            g.kernel.overlap = self.overlap;
            g.kernel.sm_bandwidth = BytesPerCycle::new(self.sm_bytes_per_cycle);
        }
        out
    }
    /// `own` with the parameters `free` frees taken from these values.
    fn freed(&self, own: &KernelParams, free: &[bool; NP]) -> KernelParams {
        let pick = |i: usize, mine: f64, theirs: f64| if free[i] { mine } else { theirs };
        KernelParams {
            memory: pick(0, self.memory, own.memory),
            kernel_overhead_s: pick(1, self.kernel_overhead_s, own.kernel_overhead_s),
            tile_cycles: pick(2, self.tile_cycles, own.tile_cycles),
            step_cycles: pick(3, self.step_cycles, own.step_cycles),
            operand_bytes_per_cycle: pick(4, self.operand_bytes_per_cycle, own.operand_bytes_per_cycle),
            l2_reuse: pick(5, self.l2_reuse, own.l2_reuse),
            overlap: pick(6, self.overlap, own.overlap),
            sm_bytes_per_cycle: pick(SM_BW, self.sm_bytes_per_cycle, own.sm_bytes_per_cycle),
        }
    }
    /// The `--set` overrides that give a substrate these values.
    pub fn overrides(&self) -> Vec<(String, String)> {
        vec![
            ("efficiency.memory".into(), format!("{:.4}", self.memory)),
            (
                "efficiency.kernel_overhead".into(),
                format!("{:.3} us", self.kernel_overhead_s * 1e6),
            ),
            (
                "kernel.tile_cycles".into(),
                format!("{:.0} cycles", self.tile_cycles),
            ),
            (
                "kernel.step_cycles".into(),
                format!("{:.0} cycles", self.step_cycles),
            ),
            (
                "kernel.operand_bandwidth".into(),
                format!("{:.1} B/cycle", self.operand_bytes_per_cycle),
            ),
            ("kernel.l2_reuse".into(), format!("{:.4}", self.l2_reuse)),
            ("kernel.overlap".into(), format!("{:.3}", self.overlap)),
            (
                "kernel.sm_bandwidth".into(),
                format!("{:.2} B/cycle", self.sm_bytes_per_cycle),
            ),
        ]
    }
    fn to_u(self) -> [f64; NP] {
        let logit = |p: f64| {
            let p = p.clamp(1e-4, 1.0 - 1e-4);
            (p / (1.0 - p)).ln()
        };
        [
            logit(self.memory),
            (self.kernel_overhead_s / 1e-6).max(1e-9).ln(),
            (self.tile_cycles / 1000.0).max(1e-9).ln(),
            (self.step_cycles / 100.0).max(1e-9).ln(),
            (self.operand_bytes_per_cycle / 128.0).max(1e-9).ln(),
            logit(self.l2_reuse),
            (self.overlap - 1.0).max(1e-6).ln(),
            (self.sm_bytes_per_cycle / 16.0).max(1e-9).ln(),
        ]
    }
    fn from_u(u: &[f64; NP]) -> KernelParams {
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let e = |x: f64| x.clamp(-30.0, 30.0).exp();
        KernelParams {
            memory: sig(u[0]).max(1e-6),
            kernel_overhead_s: 1e-6 * e(u[1]),
            tile_cycles: 1000.0 * e(u[2]),
            step_cycles: 100.0 * e(u[3]),
            operand_bytes_per_cycle: 128.0 * e(u[4]),
            l2_reuse: sig(u[5]).max(1e-6),
            overlap: 1.0 + e(u[6]),
            sm_bytes_per_cycle: 16.0 * e(u[7]),
        }
    }
}

/// A kernel-parameter fit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct KernelFit {
    pub params: KernelParams,
    /// Rows fitted, and devices they came from.
    pub rows: usize,
    pub devices: usize,
    /// MAPE (%) on the fitted rows, each device weighted equally.
    pub mape: f64,
    pub iterations: usize,
}

/// One fitted row: its case and the substrate of its device (stated efficiencies).
#[derive(Clone, Copy, Debug)]
pub struct FitPoint<'a> {
    pub case: &'a KernelCase,
    pub substrate: &'a Substrate,
}

const HUBER: f64 = 0.1;
/// Pull of each transformed parameter towards its start.
const PRIOR: f64 = 0.01;

/// Log ratios predicted / measured of `points` under `p`: each point's substrate with the
/// parameters `free` frees set from `p`, the others at its own stated values.
fn residuals(points: &[FitPoint], p: &KernelParams, free: &[bool; NP], engine: Engine) -> Vec<f64> {
    // One modified substrate per distinct substrate (by address: the points borrow them).
    let mut subs: Vec<(usize, Substrate)> = Vec::new();
    let addr = |s: &Substrate| s as *const Substrate as usize;
    for pt in points {
        let key = addr(pt.substrate);
        if !subs.iter().any(|(k, _)| *k == key) {
            let own = KernelParams::of(pt.substrate);
            subs.push((key, p.freed(&own, free).apply(pt.substrate)));
        }
    }
    points
        .par_iter()
        .map(|pt| {
            let key = addr(pt.substrate);
            let sub = subs.iter().find(|(k, _)| *k == key).map(|(_, s)| s);
            let v = sub.map_or(f64::NAN, |s| predict(pt.case, s, engine).time_s);
            if v.is_finite() && v > 0.0 {
                (v / pt.case.measured).ln()
            } else {
                10.0
            }
        })
        .collect()
}

/// Each device's rows weigh together as much as any other device's.
fn device_weights(points: &[FitPoint]) -> Vec<f64> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for p in points {
        *count.entry(p.case.substrate.as_str()).or_default() += 1;
    }
    points
        .iter()
        .map(|p| 1.0 / count[p.case.substrate.as_str()] as f64)
        .collect()
}

fn huber(r: f64) -> f64 {
    let a = r.abs();
    if a <= HUBER {
        a * a
    } else {
        HUBER * (2.0 * a - HUBER)
    }
}

/// Fits the kernel parameters to `points` from `start` (robust Levenberg-Marquardt on the log
/// ratios, Huber weights, devices weighted equally, a weak prior towards the start).
/// `None` when there are no points.
pub fn fit(
    points: &[FitPoint],
    start: KernelParams,
    engine: Engine,
    sm_bandwidth: bool,
) -> Option<KernelFit> {
    if points.is_empty() {
        return None;
    }
    let wd = device_weights(points);
    let cost_of = |r: &[f64], u: &[f64; NP], u0: &[f64; NP]| -> f64 {
        let data: f64 = r.iter().zip(&wd).map(|(x, w)| w * huber(*x)).sum();
        let prior: f64 = u.iter().zip(u0).map(|(a, b)| (PRIOR * (a - b)).powi(2)).sum();
        data + prior
    };
    let mut u0 = start.to_u();
    let mut best: Option<(f64, [f64; NP], Vec<f64>)> = None;
    let (free, scan) = if sm_bandwidth {
        (FREE_SM, &SM_BW_SCAN[..])
    } else {
        (FREE, &[start.sm_bytes_per_cycle][..])
    };
    for &v in scan {
        let mut u = u0;
        u[SM_BW] = (v / 16.0f64).ln();
        let r = residuals(points, &KernelParams::from_u(&u), &free, engine);
        let c = cost_of(&r, &u, &u);
        if best.as_ref().is_none_or(|b| c < b.0) {
            best = Some((c, u, r));
        }
    }
    let (mut c, mut u, mut r) = best.expect("the scan is not empty");
    u0 = u;
    let mut mu = 1e-2;
    let mut iterations = 0;
    let h = 1e-3;
    for _ in 0..60 {
        iterations += 1;
        let cols: Vec<Vec<f64>> = (0..NP)
            .map(|j| {
                if !free[j] {
                    return vec![0.0; r.len()];
                }
                let mut v = u;
                v[j] += h;
                let rj = residuals(points, &KernelParams::from_u(&v), &free, engine);
                rj.iter().zip(&r).map(|(a, b)| (a - b) / h).collect()
            })
            .collect();
        let w: Vec<f64> = r
            .iter()
            .zip(&wd)
            .map(|(x, d)| d * if x.abs() <= HUBER { 1.0 } else { HUBER / x.abs() })
            .collect();
        let mut a = [[0.0; NP]; NP];
        let mut g = [0.0; NP];
        for i in 0..NP {
            for k in 0..NP {
                a[i][k] = (0..r.len()).map(|q| w[q] * cols[i][q] * cols[k][q]).sum();
            }
            g[i] =
                (0..r.len()).map(|q| w[q] * cols[i][q] * r[q]).sum::<f64>() + PRIOR * PRIOR * (u[i] - u0[i]);
            a[i][i] += PRIOR * PRIOR;
        }
        let mut improved = false;
        for _ in 0..10 {
            let mut m = a;
            for (i, row) in m.iter_mut().enumerate() {
                row[i] += mu * a[i][i] + 1e-12;
            }
            let Some(step) = super::calibrate::solve(m, g.map(|x| -x)) else {
                mu *= 10.0;
                continue;
            };
            let mut v = u;
            for i in 0..NP {
                v[i] += step[i].clamp(-3.0, 3.0);
            }
            let rv = residuals(points, &KernelParams::from_u(&v), &free, engine);
            let cv = cost_of(&rv, &v, &u0);
            if cv < c {
                improved = (c - cv) / c.max(1e-300) > 1e-7;
                u = v;
                r = rv;
                c = cv;
                mu = (mu / 3.0).max(1e-9);
                break;
            }
            mu *= 4.0;
        }
        if !improved {
            break;
        }
    }
    let wsum: f64 = wd.iter().sum();
    let mape = r
        .iter()
        .zip(&wd)
        .map(|(x, w)| w * (x.exp() - 1.0).abs())
        .sum::<f64>()
        / wsum
        * 100.0;
    let mut seen: Vec<&str> = points.iter().map(|p| p.case.substrate.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    Some(KernelFit {
        params: KernelParams::from_u(&u).freed(&start, &free),
        rows: points.len(),
        devices: seen.len(),
        mape,
        iterations,
    })
}

/// One predicted row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelResult {
    pub line: u64,
    pub dataset: String,
    pub device: String,
    pub substrate: String,
    pub dtype: String,
    pub operands: String,
    pub batch: u64,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    /// Measured and predicted time (s).
    pub measured_s: f64,
    pub predicted_s: f64,
    pub error_pct: f64,
    pub dram_bytes: f64,
    /// `dram` or `compute` (the roofline at the stated efficiencies).
    pub regime: &'static str,
    pub excluded: Option<String>,
}

/// A held-out prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelHeldRow {
    pub line: u64,
    pub predicted_s: f64,
    pub error_pct: f64,
}

/// The hold-out by device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelHoldout {
    /// Per (dataset, device): the fit on the dataset's other devices.
    pub fits: Vec<(String, String, KernelFit)>,
    /// Per (device, precision) and (device, precision, regime): uncalibrated and held-out.
    pub by_device: Vec<super::Compare>,
    pub by_regime: Vec<super::Compare>,
    pub rows: Vec<KernelHeldRow>,
    /// Devices with no other device in their dataset to fit on.
    pub not_predicted: Vec<(String, String)>,
}

/// The kernel validation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelReport {
    pub file: String,
    pub engine: &'static str,
    pub counts: super::Counts,
    /// Per (device, precision), per (device, precision, regime).
    pub groups: Vec<Group>,
    pub by_regime: Vec<Group>,
    pub reasons: Vec<ReasonCount>,
    pub exclusions: Vec<ReasonCount>,
    /// The fit on every device's 16-bit rows (in sample): how the defaults of the kernel model
    /// were first found (they are kept fixed since; this is today's fit).
    pub fit_all: Option<KernelFit>,
    pub holdout: Option<KernelHoldout>,
    pub rows: Vec<KernelResult>,
}

/// Options of [`validate`].
#[derive(Clone, Copy, Debug)]
pub struct KernelOptions {
    pub engine: Engine,
    pub holdout: bool,
    /// Also fit every device's 16-bit rows together (in sample).
    pub fit_all: bool,
    /// Also fit `kernel.sm_bandwidth` (one SM's DRAM streaming rate; otherwise as stated). The
    /// DRAM efficiency is stated either way.
    pub fit_sm_bandwidth: bool,
}

fn precision_key(c: &KernelCase) -> String {
    if c.sixteen_bit() {
        "fp16/bf16".to_string()
    } else {
        c.operands.clone()
    }
}

/// Validates every row of `traces`.
pub fn validate(traces: &KernelTraces, maps: &KernelMaps, opts: &KernelOptions) -> KernelReport {
    let mut cases: Vec<KernelCase> = Vec::new();
    let mut unmapped: Vec<(ReasonKind, String, u64)> = Vec::new();
    for row in &traces.rows {
        match map_row(row, maps) {
            Ok(c) => cases.push(c),
            Err((kind, reason)) => unmapped.push((kind, reason, row.line)),
        }
    }
    // Substrates, once per (name, overrides).
    let key = |c: &KernelCase| {
        let set: Vec<String> = c.set.iter().map(|(p, e)| format!("{p}={e}")).collect();
        format!("{}|{}", c.substrate, set.join(";"))
    };
    let mut subs: BTreeMap<String, Result<Substrate, String>> = BTreeMap::new();
    for c in &cases {
        subs.entry(key(c)).or_insert_with(|| {
            let o: Vec<crate::substrate::Override> = c
                .set
                .iter()
                .map(|(path, expr)| crate::substrate::Override {
                    path: path.clone(),
                    expr: expr.clone(),
                })
                .collect();
            match crate::substrate::load(&c.substrate, &o) {
                Ok(s) if matches!(s.kind, Kind::Gpu(_)) => Ok(s),
                Ok(s) => Err(format!(
                    "substrate `{}` is a {} substrate; the kernel traces are GPU GEMMs",
                    c.substrate,
                    s.kind_name()
                )),
                Err(e) => Err(format!("substrate `{}`: {e}", c.substrate)),
            }
        });
    }
    let mut ready: Vec<(KernelCase, &Substrate)> = Vec::new();
    for c in cases {
        match &subs[&key(&c)] {
            Ok(s) => ready.push((c, s)),
            Err(e) => unmapped.push((ReasonKind::Load, e.clone(), c.line)),
        }
    }
    let results: Vec<KernelResult> = ready
        .par_iter()
        .map(|(c, s)| {
            let p = predict(c, s, opts.engine);
            KernelResult {
                line: c.line,
                dataset: c.dataset.clone(),
                device: c.device.clone(),
                substrate: c.substrate.clone(),
                dtype: c.dtype.clone(),
                operands: c.operands.clone(),
                batch: c.batch,
                m: c.m,
                n: c.n,
                k: c.k,
                measured_s: c.measured,
                predicted_s: p.time_s,
                error_pct: stats::rel_error(p.time_s, c.measured) * 100.0,
                dram_bytes: p.dram_bytes,
                regime: regime(c, s),
                excluded: c.excluded.clone(),
            }
        })
        .collect();
    let counted = || ready.iter().zip(&results).filter(|(_, r)| r.excluded.is_none());
    let groups = stats::group(counted().map(|((c, _), r)| {
        (
            vec![c.substrate.clone(), precision_key(c)],
            r.line,
            r.error_pct / 100.0,
        )
    }));
    let by_regime = stats::group(counted().map(|((c, _), r)| {
        (
            vec![c.substrate.clone(), precision_key(c), r.regime.to_string()],
            r.line,
            r.error_pct / 100.0,
        )
    }));
    let fit_ok: Vec<bool> = ready
        .iter()
        .zip(&results)
        .map(|((c, _), r)| r.excluded.is_none() && c.sixteen_bit())
        .collect();
    let fit_all = if opts.fit_all {
        let points: Vec<FitPoint> = ready
            .iter()
            .zip(&fit_ok)
            .filter(|(_, ok)| **ok)
            .map(|((c, s), _)| FitPoint {
                case: c,
                substrate: s,
            })
            .collect();
        let start = points.first().map(|p| KernelParams::of(p.substrate));
        start.and_then(|s| fit(&points, s, opts.engine, opts.fit_sm_bandwidth))
    } else {
        None
    };
    let holdout = opts.holdout.then(|| holdout(&ready, &results, &fit_ok, opts));
    let reasons = super::reason_counts(unmapped.iter().cloned());
    let exclusions = super::reason_counts(results.iter().filter_map(|r| {
        r.excluded
            .as_ref()
            .map(|e| (ReasonKind::Workload, e.clone(), r.line))
    }));
    let excluded = results.iter().filter(|r| r.excluded.is_some()).count();
    KernelReport {
        file: traces.file.clone(),
        engine: opts.engine.name(),
        counts: super::Counts {
            rows: traces.rows.len(),
            mapped: results.len(),
            excluded,
            unmapped: unmapped.len(),
        },
        groups,
        by_regime,
        reasons,
        exclusions,
        fit_all,
        holdout,
        rows: results,
    }
}

/// Each device of each dataset predicted with parameters fitted on the dataset's other
/// devices (16-bit rows, not excluded), starting from a fit on every other device of every
/// dataset: no row of the held-out device reaches its prediction.
fn holdout(
    ready: &[(KernelCase, &Substrate)],
    results: &[KernelResult],
    fit_ok: &[bool],
    opts: &KernelOptions,
) -> KernelHoldout {
    let engine = opts.engine;
    // dataset -> substrate -> row indices
    let mut groups: BTreeMap<&str, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    for (i, (c, _)) in ready.iter().enumerate() {
        if fit_ok[i] {
            groups
                .entry(c.dataset.as_str())
                .or_default()
                .entry(c.substrate.as_str())
                .or_default()
                .push(i);
        }
    }
    let mut fits = Vec::new();
    let mut rows = Vec::new();
    let mut not_predicted = Vec::new();
    let mut items: Vec<(usize, f64, f64)> = Vec::new();
    let point = |i: usize| FitPoint {
        case: &ready[i].0,
        substrate: ready[i].1,
    };
    // Per held-out device: where its fits start.
    let mut starts: BTreeMap<&str, KernelParams> = BTreeMap::new();
    for (dataset, members) in &groups {
        for (held, idx) in members {
            // The other devices of its family in the dataset where there are any (the library
            // a vendor ships for its own parts), else every other device of the dataset.
            let family = |k: &str| members[k].first().map(|&i| ready[i].0.family.as_str());
            let kin = members.keys().any(|k| *k != *held && family(k) == family(held));
            let train: Vec<FitPoint> = members
                .iter()
                .filter(|(k, _)| *k != held && (!kin || family(k) == family(held)))
                .flat_map(|(_, v)| v.iter().copied())
                .map(point)
                .collect();
            if train.is_empty() {
                not_predicted.push((dataset.to_string(), held.to_string()));
                continue;
            }
            let stated = KernelParams::of(ready[idx[0]].1);
            let start = *starts.entry(*held).or_insert_with(|| {
                // The shipped kernel defaults were fitted with every device in sample: start
                // instead from a fit on every other device's rows, of every dataset.
                let others: Vec<FitPoint> = (0..ready.len())
                    .filter(|&i| fit_ok[i] && ready[i].0.substrate.as_str() != *held)
                    .map(point)
                    .collect();
                fit(&others, stated, engine, opts.fit_sm_bandwidth).map_or(stated, |f| f.params)
            });
            let f = fit(&train, start, engine, opts.fit_sm_bandwidth)
                .expect("a fit of training rows (not empty) gives parameters");
            let preds: Vec<(usize, f64)> = idx
                .par_iter()
                .map(|&i| {
                    let s = f.params.apply(ready[i].1);
                    (i, predict(&ready[i].0, &s, engine).time_s)
                })
                .collect();
            for (i, v) in preds {
                let e = stats::rel_error(v, ready[i].0.measured);
                rows.push(KernelHeldRow {
                    line: ready[i].0.line,
                    predicted_s: v,
                    error_pct: e * 100.0,
                });
                items.push((i, results[i].error_pct / 100.0, e));
            }
            fits.push((dataset.to_string(), held.to_string(), f));
        }
    }
    let compare =
        |key: &dyn Fn(usize) -> Vec<String>| super::compare_groups(&items, &|i| results[i].line, key);
    rows.sort_by_key(|r| r.line);
    KernelHoldout {
        fits,
        by_device: compare(&|i| vec![ready[i].0.substrate.clone(), precision_key(&ready[i].0)]),
        by_regime: compare(&|i| {
            vec![
                ready[i].0.substrate.clone(),
                precision_key(&ready[i].0),
                results[i].regime.to_string(),
            ]
        }),
        rows,
        not_predicted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_tables_load() {
        let m = KernelMaps::builtin().unwrap();
        assert!(m.devices.len() >= 10 && m.dtypes.len() >= 10 && m.exclusions.len() >= 3);
    }

    #[test]
    fn a_row_maps_to_its_substrate_and_formats() {
        let t = parse(
            "dataset,device,dtype,batch,m,n,k,time_s,tflops,library,flag,source\n\
             deepbench_gemm,NVIDIA T4,\"fp16 (fp16 in, fp32 accumulate; tensor cores on V100/T4) ; A^T=N B^T=N\",1,1760.0,16.0,1760.0,6.1e-05,1.6,cuBLAS,,x\n",
            "t.csv",
        )
        .unwrap();
        let c = map_row(&t.rows[0], &KernelMaps::builtin().unwrap()).unwrap();
        assert_eq!((c.substrate.as_str(), c.m, c.n, c.k), ("t4", 1760, 16, 1760));
        assert!(c.sixteen_bit() && c.excluded.is_none());
    }

    /// A bf16 row runs at the substrate's declared bf16 rate, by the same rules as a model's
    /// GEMMs: had its file no `matrix_peak.bf16` (as the B200's once had), the row would be
    /// priced widened to fp32 and the kernel figures would say so, instead of hiding it behind
    /// the fp16 rate.
    #[test]
    fn a_bf16_row_takes_the_substrates_bf16_rate() {
        let t = parse(
            "dataset,device,dtype,batch,m,n,k,time_s,tflops,library,flag,source\n\
             xla_matmul_perf_table,NVIDIA B200 (sm_100),bf16xbf16->bf16,1,8192,8192,8192,7.0e-04,1571,XLA,,x\n",
            "t.csv",
        )
        .unwrap();
        let c = map_row(&t.rows[0], &KernelMaps::builtin().unwrap()).unwrap();
        assert_eq!((c.substrate.as_str(), c.compute), ("b200", "bf16"));
        let b200 = crate::substrate::load("b200", &[]).unwrap();
        let mut no_bf16 = b200.clone();
        if let Kind::Gpu(g) = &mut no_bf16.kind {
            g.matrix_peak.remove(&ComputeClass::Bf16);
        }
        for engine in [Engine::Roofline, Engine::Sim] {
            let with = predict(&c, &b200, engine).time_s;
            let without = predict(&c, &no_bf16, engine).time_s;
            assert!(
                without > 10.0 * with,
                "{engine:?}: {with} s with bf16 units, {without} s without"
            );
        }
    }

    #[test]
    fn an_empty_dtype_pattern_is_a_located_error() {
        let mut m = KernelMaps::builtin().unwrap();
        let e = m
            .add_text(
                "pattern,operands,compute,output,note\nbf16,bf16,bf16,bf16,\n,fp16,fp16,fp16,\n",
                "d.csv",
            )
            .unwrap_err();
        let errs = e.errors();
        assert_eq!(errs.len(), 1, "{e:?}");
        assert_eq!(errs[0].line(), 3);
        assert!(
            errs[0].message().contains("`pattern` is empty"),
            "{}",
            errs[0].message()
        );
        let e = m
            .add_text("column,pattern,reason\nflag,,why\n", "x.csv")
            .unwrap_err();
        assert!(e.errors()[0].message().contains("exclude nothing"), "{e:?}");
    }

    #[test]
    fn bad_dimensions_and_times_are_located_errors() {
        let e = parse(
            "device,dtype,batch,m,n,k,time_s\nNVIDIA T4,fp32 ;,1,12.5,16,16,1e-5\nNVIDIA T4,fp32 ;,1,16,16,16,soon\n",
            "t.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("12.5") || e.contains("error"), "{e}");
    }
}
