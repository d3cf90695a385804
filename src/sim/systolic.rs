//! Systolic-array GEMM cost model: cycles, stalls, SRAM and DRAM traffic, energy.
//!
//! A [`SystolicArray`] of `rows x cols` MACs runs one GEMM `C[M x N] = A[M x K] * B[K x N]`
//! with one of SCALE-Sim's three dataflows. Conventions follow SCALE-Sim: `M` = output rows,
//! `N` = output columns, `K` = reduction; `A` is the *ifmap*, `B` the *filter*, `C` the *ofmap*.
//! Everything here is pure arithmetic on the shape (no per-cycle loop, no I/O, no panics on any
//! `u64` input): one call costs 45-120 ns (benches/systolic.rs).
//!
//! # Compute cycles
//! Each dataflow maps two GEMM dimensions onto the array (spatial, `Sr` rows and `Sc` columns)
//! and streams the third (`T`, temporal); the spatial plane is cut into `folds`:
//!
//! | dataflow | Sr | Sc | T | folds | cycles per fold (`cpf`) |
//! |---|---|---|---|---|---|
//! | os | M | N | K | ceil(M/R) * ceil(N/C) | T + R + C - 2 |
//! | ws | K | N | M | ceil(K/R) * ceil(N/C) | 2R + C + T - 2 |
//! | is | K | M | N | ceil(K/R) * ceil(M/C) | 2R + C + T - 2 |
//!
//! * [`Mode::ScaleSim`]: folds are fully serialised, exactly as SCALE-Sim v3 schedules them:
//!   `compute = folds * cpf - 1`. This equals SCALE-Sim's reported "Total Cycles" (which has no
//!   stalls in its default CALC bandwidth mode); the test suite checks it row by row against
//!   recorded runs of the real simulator (`tests/fixtures/systolic/`).
//! * [`Mode::Overlapped`]: a double-buffered array. The next fold's weight/input load and its
//!   pipeline fill overlap the current fold's drain, so after the first fold each further fold
//!   costs only `max(T, R)` cycles (it can stream no faster than its `T` operands and cannot
//!   swap stationary data or shift out results faster than the `R` cycles it takes to move a
//!   column through the array): `compute = (cpf - 1) + (folds - 1) * max(T, R)`. One fold costs
//!   the same in both modes; more folds are never slower than SCALE-Sim's.
//!
//! `gemm_batched(b, m, n, k)` prices `b` independent GEMMs of one shape (attention heads): in
//! ScaleSim mode as `b` separate SCALE-Sim layers (every cost times `b`), in overlapped mode as
//! one continuous stream of `b * folds` folds with one pipeline fill, one DRAM prologue and one
//! epilogue.
//!
//! # Memory side
//! Counts are made in elements and priced at `word_bytes` per element (`acc_bytes` for partial
//! sums kept in the accumulator in overlapped mode); the filter operand may have its own width
//! ([`SystolicArray::with_filter_word`]: int4 weights beside int8 activations), which also sets
//! how many filter elements its SRAM holds. Array-side SRAM traffic is SCALE-Sim's:
//!
//! | dataflow | ifmap SRAM reads | filter SRAM reads | ofmap SRAM writes |
//! |---|---|---|---|
//! | os | M*K*ceil(N/C) | K*N*ceil(M/R) | M*N |
//! | ws | M*K*ceil(N/C) | K*N | M*N*ceil(K/R) |
//! | is | M*K | K*N*ceil(M/C) | M*N*ceil(K/R) |
//!
//! (In ScaleSim mode the os ofmap count also carries SCALE-Sim's `(R + C)` extra writes per fold,
//! an artefact of its bookkeeping, so that the numbers compare one to one.)
//!
//! DRAM traffic:
//! * ScaleSim mode reads SCALE-Sim's source (`memory/read_buffer*.py`): each operand SRAM is a
//!   double buffer whose active half (`active = floor(bytes / word) / 2`, rounded up) serves the
//!   array while the other half prefetches. An operand is fetched once if the data between two
//!   uses of the same element (its reuse window) fits in the active half; otherwise it is
//!   streamed again on every pass. Fold loop order is SCALE-Sim's (column folds outer), so the
//!   reuse windows are: os ifmap `M*K` (re-read `ceil(N/C)` times), os filter `K*min(N,C)`
//!   (re-read `ceil(M/R)` times), ws ifmap `M*K` (`ceil(N/C)` times), is filter `K*N`
//!   (`ceil(M/C)` times); the stationary operand of ws/is is fetched once. Output writes are
//!   SCALE-Sim's ofmap DRAM writes: `M*N` for os, `M*N*ceil(K/R)` partial sums for ws/is.
//! * Overlapped mode picks, among a few SRAM tilings that fit the buffers, the one with the least
//!   DRAM traffic (reads and writes each no larger than the ScaleSim policy's, which is always a
//!   candidate): keep `B` resident and stream `A` once; keep `A` resident and stream `B` once; or
//!   output tiles `Tm x Tn` whose accumulators fit the ofmap buffer, reading
//!   `M*K*ceil(N/Tn) + K*N*ceil(M/Tm)` (the operand that does not fit is re-fetched). Outputs are
//!   written once (`M*N` words) when an `R x C` accumulator tile fits the ofmap buffer.
//!
//! # Stalls
//! Reads and writes use separate DRAM channels (`dram.read`, `dram.write` bytes per cycle) and are
//! double-buffered against compute. Before the first fold can start, its operands must be in SRAM
//! (the *fill*: ScaleSim mode loads the active halves like SCALE-Sim's prefetch; overlapped mode
//! only the first fold's tiles); after the last fold the last outputs must reach DRAM (the
//! *drain*). In between, compute and both DRAM streams overlap:
//!
//! `cycles = fill + max(compute, (reads - fill_bytes) / read_bw, (writes - drain_bytes) / write_bw) + drain`
//!
//! and `stall_cycles = cycles - compute_cycles` (fill and drain included; they are also reported
//! on their own). With uniform tiles this is the per-tile double-buffered rule
//! `stall = sum_tiles max(0, dram_time - compute_time)`. SCALE-Sim's own "Total Cycles" leaves
//! the initial prefetch and final write-back out (it reports them in "Total Cycles (incl.
//! prefetch)"): compare it with `cycles - fill_cycles - drain_cycles`.
//!
//! # Efficiency
//! [`SystolicArray::with_efficiency`] applies a substrate's achieved fractions: compute cycles
//! are the stall-free count over the compute fraction, DRAM transfers (fill, streams, drain)
//! run at the memory fraction of the bandwidth. Both default to 1, where every figure above
//! is unchanged (SCALE-Sim-exact in that mode).
//!
//! # Energy
//! [`GemmCost::energy`] is action counts times per-action energies: useful MACs x MAC energy, SRAM
//! bytes (array side plus the DRAM fills and drains passing through SRAM) x SRAM byte energy, DRAM
//! bytes x DRAM byte energy, plus leakage power x runtime.

use crate::units::{Bytes, BytesPerCycle, Cycles, Hertz, Joules, Seconds, Watts};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The array organisation named by a substrate file (descriptions live in `substrate`).
pub use crate::substrate::array::{ArrayError, Buffers, Dataflow, Mode};

/// Errors from building a [`SystolicArray`] or parsing its options.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SystolicError {
    #[error("systolic array `{field}` must be at least 1, got 0")]
    ZeroDimension { field: &'static str },
    #[error("systolic array `{field}` must be a finite number greater than 0, got {value}")]
    NotPositive { field: &'static str, value: f64 },
    #[error("systolic array `{field}` must be a finite number of at least 0, got {value}")]
    Negative { field: &'static str, value: f64 },
}

/// DRAM bandwidth per direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DramBandwidth {
    pub read: BytesPerCycle,
    pub write: BytesPerCycle,
}

impl DramBandwidth {
    pub fn symmetric(bw: BytesPerCycle) -> Self {
        DramBandwidth { read: bw, write: bw }
    }
}

/// Everything that describes an array; validated by [`SystolicArray::new`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SystolicConfig {
    pub rows: u64,
    pub cols: u64,
    pub dataflow: Dataflow,
    pub buffers: Buffers,
    pub dram: DramBandwidth,
    /// Bytes per operand/output element (1 for int8, 2 for fp16, 0.5 for int4).
    pub word_bytes: Bytes,
    /// Bytes per partial sum held in the accumulator (4 for an int32 accumulator).
    pub acc_bytes: Bytes,
    pub mode: Mode,
}

/// A validated systolic array. Construct with [`SystolicArray::new`] or a preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystolicArray {
    cfg: SystolicConfig,
    /// Bytes per filter (B operand) element when they differ from `word_bytes` (weights or a
    /// KV cache stored narrower or wider than the activations; [`Self::with_filter_word`]).
    filter_word: f64,
    /// Achieved fraction of one MAC per PE per cycle ([`Self::with_efficiency`]; 1 by default).
    compute_eff: f64,
}

/// Per-energy-action prices for [`GemmCost::energy`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActionEnergies {
    pub mac: Joules,
    pub sram_byte: Joules,
    pub dram_byte: Joules,
    pub leakage: Watts,
}

/// Energy split by action.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnergyBreakdown {
    pub mac: Joules,
    pub sram: Joules,
    pub dram: Joules,
    pub leakage: Joules,
}

impl EnergyBreakdown {
    pub fn total(&self) -> Joules {
        self.mac + self.sram + self.dram + self.leakage
    }
}

/// Per-operand traffic behind the totals of a [`GemmCost`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// Array-side SRAM traffic (what the PEs read and write).
    pub ifmap_sram_reads: Bytes,
    pub filter_sram_reads: Bytes,
    pub ofmap_sram_writes: Bytes,
    /// Partial sums read back for accumulation (overlapped mode, ws/is with several K folds).
    pub ofmap_sram_reads: Bytes,
    pub ifmap_dram_reads: Bytes,
    pub filter_dram_reads: Bytes,
    pub ofmap_dram_writes: Bytes,
}

/// The cost of one GEMM (or a batch of same-shape GEMMs) on one array.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GemmCost {
    /// End to end: `compute_cycles + stall_cycles`.
    pub cycles: Cycles,
    /// Stall-free array cycles (SCALE-Sim's "Total Cycles" in ScaleSim mode).
    pub compute_cycles: Cycles,
    /// Everything the array waits for memory, fill and drain included.
    pub stall_cycles: Cycles,
    /// Exposed load of the first operands before the first fold (part of `stall_cycles`).
    pub fill_cycles: Cycles,
    /// Exposed write-back of the last outputs (part of `stall_cycles`).
    pub drain_cycles: Cycles,
    /// Useful MACs / (cycles x PEs), in (0, 1] for a non-empty GEMM, 0 for an empty one.
    pub utilization: f64,
    /// Useful multiply-accumulates, `batch * M * N * K` (saturating).
    pub macs: u128,
    /// Array folds, summed over the batch (saturating).
    pub folds: u128,
    pub dram_read_bytes: Bytes,
    pub dram_write_bytes: Bytes,
    /// Array-side reads plus outputs read out of SRAM towards DRAM.
    pub sram_read_bytes: Bytes,
    /// Array-side writes plus operands written into SRAM from DRAM.
    pub sram_write_bytes: Bytes,
    pub traffic: Traffic,
}

impl GemmCost {
    fn empty() -> GemmCost {
        GemmCost {
            cycles: Cycles::ZERO,
            compute_cycles: Cycles::ZERO,
            stall_cycles: Cycles::ZERO,
            fill_cycles: Cycles::ZERO,
            drain_cycles: Cycles::ZERO,
            utilization: 0.0,
            macs: 0,
            folds: 0,
            dram_read_bytes: Bytes::ZERO,
            dram_write_bytes: Bytes::ZERO,
            sram_read_bytes: Bytes::ZERO,
            sram_write_bytes: Bytes::ZERO,
            traffic: Traffic::default(),
        }
    }

    /// Useful MACs / (compute cycles x PEs): SCALE-Sim's "Overall Util %" / 100 in ScaleSim mode.
    pub fn compute_utilization(&self, array: &SystolicArray) -> f64 {
        let denom = self.compute_cycles.get() * array.pes();
        if denom > 0.0 {
            self.macs as f64 / denom
        } else {
            0.0
        }
    }

    /// Runtime at `clock`.
    pub fn time(&self, clock: Hertz) -> Seconds {
        self.cycles / clock
    }

    /// Energy by action: counts x per-action energy, plus leakage x runtime at `clock`.
    pub fn energy_breakdown(&self, e: &ActionEnergies, clock: Hertz) -> EnergyBreakdown {
        let sram_bytes = (self.sram_read_bytes + self.sram_write_bytes).get();
        let dram_bytes = (self.dram_read_bytes + self.dram_write_bytes).get();
        EnergyBreakdown {
            mac: e.mac * (self.macs as f64),
            sram: e.sram_byte * sram_bytes,
            dram: e.dram_byte * dram_bytes,
            leakage: e.leakage * self.time(clock),
        }
    }

    /// Total energy in joules (see [`GemmCost::energy_breakdown`]).
    pub fn energy(&self, e: &ActionEnergies, clock: Hertz) -> Joules {
        self.energy_breakdown(e, clock).total()
    }
}

fn check_positive(field: &'static str, value: f64) -> Result<(), SystolicError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(SystolicError::NotPositive { field, value })
    }
}

fn check_nonnegative(field: &'static str, value: f64) -> Result<(), SystolicError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(SystolicError::Negative { field, value })
    }
}

/// Ceiling division on `u64`, exact; `div_ceil` never overflows.
#[inline]
fn cdiv(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// The shape-dependent quantities of one GEMM on one array (elements and cycles as f64).
struct Plan {
    t: f64,
    folds: u128,
    cpf: f64,
    a: f64,
    b: f64,
    o: f64,
    /// Array-side counts, elements.
    ifmap_sram: f64,
    filter_sram: f64,
    ofmap_sram: f64,
    /// ceil(K/R) for ws/is (partial-sum folds), 1 for os.
    k_folds: f64,
}

/// DRAM traffic of one GEMM, elements (ofmap may be in accumulator units: see `out_bytes`).
#[derive(Clone, Copy)]
struct Dram {
    ifmap: f64,
    filter: f64,
    ofmap: f64,
}

impl SystolicArray {
    /// Validates `cfg`: dimensions at least 1, bandwidths and element sizes finite and positive,
    /// buffer sizes finite and non-negative.
    pub fn new(cfg: SystolicConfig) -> Result<SystolicArray, SystolicError> {
        if cfg.rows == 0 {
            return Err(SystolicError::ZeroDimension { field: "rows" });
        }
        if cfg.cols == 0 {
            return Err(SystolicError::ZeroDimension { field: "cols" });
        }
        check_positive("dram.read", cfg.dram.read.get())?;
        check_positive("dram.write", cfg.dram.write.get())?;
        check_positive("word_bytes", cfg.word_bytes.get())?;
        check_positive("acc_bytes", cfg.acc_bytes.get())?;
        match cfg.buffers {
            Buffers::Split { ifmap, filter, ofmap } => {
                check_nonnegative("buffers.ifmap", ifmap.get())?;
                check_nonnegative("buffers.filter", filter.get())?;
                check_nonnegative("buffers.ofmap", ofmap.get())?;
            }
            Buffers::Shared {
                operands,
                accumulator,
            } => {
                check_nonnegative("buffers.operands", operands.get())?;
                check_nonnegative("buffers.accumulator", accumulator.get())?;
            }
            Buffers::Unified(t) => check_nonnegative("buffers.unified", t.get())?,
        }
        Ok(SystolicArray::of(cfg))
    }

    fn of(cfg: SystolicConfig) -> SystolicArray {
        SystolicArray {
            cfg,
            filter_word: cfg.word_bytes.get(),
            compute_eff: 1.0,
        }
    }

    /// The same array with `bytes` per filter (B operand) element: the weights of a projection
    /// or the KV cache of an attention GEMM, stored at their own width while the ifmap and
    /// ofmap (activations) keep `word_bytes` (invalid values: unchanged).
    pub fn with_filter_word(&self, bytes: Bytes) -> SystolicArray {
        let b = bytes.get();
        if !(b.is_finite() && b > 0.0) {
            return *self;
        }
        SystolicArray {
            filter_word: b,
            ..*self
        }
    }

    /// The same array reaching `compute` of one MAC per PE per cycle and `memory` of its DRAM
    /// bandwidth (fractions in (0, 1]; others leave the array unchanged). Compute cycles are the
    /// stall-free count divided by `compute`; DRAM transfers run at `memory` times the
    /// bandwidth. At 1 and 1 every figure is the plain model's (SCALE-Sim's, in that mode).
    pub fn with_efficiency(&self, compute: f64, memory: f64) -> SystolicArray {
        let ok = |x: f64| x > 0.0 && x <= 1.0;
        if !(ok(compute) && ok(memory)) {
            return *self;
        }
        let mut a = self.with_dram(DramBandwidth {
            read: self.cfg.dram.read * memory,
            write: self.cfg.dram.write * memory,
        });
        a.compute_eff = compute;
        a
    }

    /// Gemmini-like: 16x16 int8 weight-stationary, 512 KB scratchpad + 256 KB int32 accumulator,
    /// 4 B/cycle DRAM each way (reference/llmforge.md).
    pub fn gemmini(mode: Mode) -> SystolicArray {
        SystolicArray::of(SystolicConfig {
            rows: 16,
            cols: 16,
            dataflow: Dataflow::Ws,
            buffers: Buffers::Shared {
                operands: Bytes::kib(512.0),
                accumulator: Bytes::kib(256.0),
            },
            dram: DramBandwidth::symmetric(BytesPerCycle::new(4.0)),
            word_bytes: Bytes::new(1.0),
            acc_bytes: Bytes::new(4.0),
            mode,
        })
    }

    /// Eyeriss-like: 12x14 PEs, 128 KB global buffer (inputs + outputs), 4 B/cycle each way.
    /// Eyeriss is row-stationary, which none of os/ws/is is; psums stay in the PEs' register
    /// files, so it is priced here as output-stationary. Treat its numbers as an approximation.
    pub fn eyeriss_like(mode: Mode) -> SystolicArray {
        SystolicArray::of(SystolicConfig {
            rows: 12,
            cols: 14,
            dataflow: Dataflow::Os,
            buffers: Buffers::Unified(Bytes::kib(128.0)),
            dram: DramBandwidth::symmetric(BytesPerCycle::new(4.0)),
            word_bytes: Bytes::new(1.0),
            acc_bytes: Bytes::new(4.0),
            mode,
        })
    }

    /// FLAT-edge-like: 32x32 int8 MACs, 200 KB global buffer, 25 B/cycle DRAM each way,
    /// weight-stationary.
    pub fn flat_edge(mode: Mode) -> SystolicArray {
        SystolicArray::of(SystolicConfig {
            rows: 32,
            cols: 32,
            dataflow: Dataflow::Ws,
            buffers: Buffers::Unified(Bytes::kb(200.0)),
            dram: DramBandwidth::symmetric(BytesPerCycle::new(25.0)),
            word_bytes: Bytes::new(1.0),
            acc_bytes: Bytes::new(4.0),
            mode,
        })
    }

    pub fn config(&self) -> &SystolicConfig {
        &self.cfg
    }

    /// The same array under another timing model.
    pub fn with_mode(&self, mode: Mode) -> SystolicArray {
        SystolicArray {
            cfg: SystolicConfig { mode, ..self.cfg },
            ..*self
        }
    }

    /// The same array with another dataflow.
    pub fn with_dataflow(&self, dataflow: Dataflow) -> SystolicArray {
        SystolicArray {
            cfg: SystolicConfig { dataflow, ..self.cfg },
            ..*self
        }
    }

    /// The same array with every buffer scaled by `factor` (non-finite or negative: unchanged).
    pub fn with_buffers_scaled(&self, factor: f64) -> SystolicArray {
        if !(factor.is_finite() && factor >= 0.0) {
            return *self;
        }
        SystolicArray {
            cfg: SystolicConfig {
                buffers: self.cfg.buffers.scaled(factor),
                ..self.cfg
            },
            ..*self
        }
    }

    /// The same array with other DRAM bandwidths (invalid values: unchanged).
    pub fn with_dram(&self, dram: DramBandwidth) -> SystolicArray {
        let cfg = SystolicConfig { dram, ..self.cfg };
        match SystolicArray::new(cfg) {
            Ok(a) => SystolicArray { cfg: a.cfg, ..*self },
            Err(_) => *self,
        }
    }

    /// Number of MAC units.
    pub fn pes(&self) -> f64 {
        self.cfg.rows as f64 * self.cfg.cols as f64
    }

    /// One GEMM: `M` output rows, `N` output columns, `K` reduction. A GEMM with a zero
    /// dimension does no work and costs nothing.
    pub fn gemm(&self, m: u64, n: u64, k: u64) -> GemmCost {
        self.gemm_batched(1, m, n, k)
    }

    /// `batch` independent GEMMs of the same shape (e.g. attention heads).
    pub fn gemm_batched(&self, batch: u64, m: u64, n: u64, k: u64) -> GemmCost {
        if batch == 0 || m == 0 || n == 0 || k == 0 {
            return GemmCost::empty();
        }
        let plan = self.plan(m, n, k);
        let bf = batch as f64;
        let r = self.cfg.rows as f64;
        let w = self.cfg.word_bytes.get();
        let wf = self.filter_word;
        let acc = self.cfg.acc_bytes.get();
        let (buf_i, buf_f, buf_o) = self.cfg.buffers.split_bytes();
        let active = |bytes: f64, w: f64| ((bytes / w).floor() / 2.0).ceil();
        let (act_i, act_f, act_o) = (active(buf_i, w), active(buf_f, wf), active(buf_o, w));

        let scalesim_dram = self.scalesim_dram(&plan, m, n, act_i, act_f);
        // Fill and drain in elements (ifmap, filter), ScaleSim policy.
        let fill_s = (act_i.min(plan.a), act_f.min(plan.b));
        let drain_s = act_o.min(scalesim_dram.ofmap);

        let (compute_one, dram, out_bytes, fill, drain, ofmap_sram, ofmap_sram_reads, osram_bytes) =
            match self.cfg.mode {
                Mode::ScaleSim => {
                    let quirk = if self.cfg.dataflow == Dataflow::Os {
                        (self.cfg.rows as f64 + self.cfg.cols as f64) * plan.folds as f64
                    } else {
                        0.0
                    };
                    (
                        plan.folds as f64 * plan.cpf - 1.0,
                        scalesim_dram,
                        w,
                        fill_s,
                        drain_s,
                        plan.ofmap_sram + quirk,
                        0.0,
                        w,
                    )
                }
                Mode::Overlapped => {
                    let dram = self.overlapped_dram(&plan, m, n, buf_i, buf_f, buf_o, scalesim_dram);
                    let (fi, ff) = self.first_fold_tiles(m, n, k);
                    let fill = (fi.min(act_i), ff.min(act_f));
                    let last_out = plan.o.min(self.pes());
                    let drain = last_out.min(act_o).min(dram.ofmap);
                    // Partial sums of ws/is accumulate in the accumulator: read-modify-write.
                    let rmw = plan.o * (plan.k_folds - 1.0);
                    (
                        plan.cpf - 1.0,
                        dram,
                        w,
                        fill,
                        drain,
                        plan.ofmap_sram,
                        rmw,
                        if plan.k_folds > 1.0 { acc } else { w },
                    )
                }
            };

        let steady_fold = plan.t.max(r);
        let macs = (batch as u128)
            .saturating_mul(m as u128)
            .saturating_mul(n as u128)
            .saturating_mul(k as u128);
        let formula = match self.cfg.mode {
            Mode::ScaleSim => compute_one * bf,
            Mode::Overlapped => {
                let total_folds = plan.folds as f64 * bf;
                compute_one + (total_folds - 1.0) * steady_fold
            }
        };
        // The array cannot beat one MAC per PE per cycle. Only a 1x1 output-stationary array
        // hits this: SCALE-Sim's `- 1` then undercounts by a cycle.
        let compute = formula.max(macs as f64 / self.pes()) / self.compute_eff;
        // Fill/drain: once per GEMM in ScaleSim mode (separate layers), once per batch otherwise.
        let (fill_count, drain_count) = match self.cfg.mode {
            Mode::ScaleSim => (bf, bf),
            Mode::Overlapped => (1.0, 1.0),
        };
        let reads_b = (dram.ifmap * w + dram.filter * wf) * bf;
        let writes_b = dram.ofmap * out_bytes * bf;
        let fill_b = (fill.0 * w + fill.1 * wf) * fill_count;
        let drain_b = drain * out_bytes * drain_count;
        let rd_bw = self.cfg.dram.read.get();
        let wr_bw = self.cfg.dram.write.get();
        let fill_c = fill_b / rd_bw;
        let drain_c = drain_b / wr_bw;
        let steady = compute
            .max((reads_b - fill_b).max(0.0) / rd_bw)
            .max((writes_b - drain_b).max(0.0) / wr_bw);
        let cycles = fill_c + steady + drain_c;
        let traffic = Traffic {
            ifmap_sram_reads: Bytes::new(plan.ifmap_sram * w * bf),
            filter_sram_reads: Bytes::new(plan.filter_sram * wf * bf),
            ofmap_sram_writes: Bytes::new(ofmap_sram * osram_bytes * bf),
            ofmap_sram_reads: Bytes::new(ofmap_sram_reads * osram_bytes * bf),
            ifmap_dram_reads: Bytes::new(dram.ifmap * w * bf),
            filter_dram_reads: Bytes::new(dram.filter * wf * bf),
            ofmap_dram_writes: Bytes::new(writes_b),
        };
        let denom = cycles * self.pes();
        GemmCost {
            cycles: Cycles::new(cycles),
            compute_cycles: Cycles::new(compute),
            stall_cycles: Cycles::new(cycles - compute),
            fill_cycles: Cycles::new(fill_c),
            drain_cycles: Cycles::new(drain_c),
            utilization: if denom > 0.0 {
                (macs as f64 / denom).min(1.0)
            } else {
                0.0
            },
            macs,
            folds: plan.folds.saturating_mul(batch as u128),
            dram_read_bytes: Bytes::new(reads_b),
            dram_write_bytes: Bytes::new(writes_b),
            sram_read_bytes: traffic.ifmap_sram_reads
                + traffic.filter_sram_reads
                + traffic.ofmap_sram_reads
                + Bytes::new(writes_b),
            sram_write_bytes: traffic.ofmap_sram_writes + Bytes::new(reads_b),
            traffic,
        }
    }

    fn plan(&self, m: u64, n: u64, k: u64) -> Plan {
        let (r, c) = (self.cfg.rows, self.cfg.cols);
        let (sr, sc, t) = match self.cfg.dataflow {
            Dataflow::Os => (m, n, k),
            Dataflow::Ws => (k, n, m),
            Dataflow::Is => (k, m, n),
        };
        let (row_folds, col_folds) = (cdiv(sr, r), cdiv(sc, c));
        let folds = row_folds as u128 * col_folds as u128;
        let (rf, cf, tf) = (r as f64, c as f64, t as f64);
        let cpf = match self.cfg.dataflow {
            Dataflow::Os => tf + rf + cf - 2.0,
            Dataflow::Ws | Dataflow::Is => 2.0 * rf + cf + tf - 2.0,
        };
        let (mf, nf, kf) = (m as f64, n as f64, k as f64);
        let (a, b, o) = (mf * kf, kf * nf, mf * nf);
        let n_over_c = cdiv(n, c) as f64;
        let m_over_r = cdiv(m, r) as f64;
        let m_over_c = cdiv(m, c) as f64;
        let k_over_r = cdiv(k, r) as f64;
        let (ifmap_sram, filter_sram, ofmap_sram, k_folds) = match self.cfg.dataflow {
            Dataflow::Os => (a * n_over_c, b * m_over_r, o, 1.0),
            Dataflow::Ws => (a * n_over_c, b, o * k_over_r, k_over_r),
            Dataflow::Is => (a, b * m_over_c, o * k_over_r, k_over_r),
        };
        Plan {
            t: tf,
            folds,
            cpf,
            a,
            b,
            o,
            ifmap_sram,
            filter_sram,
            ofmap_sram,
            k_folds,
        }
    }

    /// SCALE-Sim's buffer policy: an operand is fetched once when its reuse window fits in the
    /// active half of its SRAM, otherwise once per pass.
    fn scalesim_dram(&self, p: &Plan, m: u64, n: u64, act_i: f64, act_f: f64) -> Dram {
        let (r, c) = (self.cfg.rows, self.cfg.cols);
        let nf = n as f64;
        let kf = p.b / nf;
        let once_or = |total: f64, window: f64, active: f64, passes: f64| {
            if window <= active { total } else { total * passes }
        };
        match self.cfg.dataflow {
            Dataflow::Os => Dram {
                ifmap: once_or(p.a, p.a, act_i, cdiv(n, c) as f64),
                filter: once_or(p.b, kf * nf.min(c as f64), act_f, cdiv(m, r) as f64),
                ofmap: p.o,
            },
            Dataflow::Ws => Dram {
                ifmap: once_or(p.a, p.a, act_i, cdiv(n, c) as f64),
                filter: p.b,
                ofmap: p.o * p.k_folds,
            },
            Dataflow::Is => Dram {
                ifmap: p.a,
                filter: once_or(p.b, p.b, act_f, cdiv(m, c) as f64),
                ofmap: p.o * p.k_folds,
            },
        }
    }

    /// Elements of ifmap and filter the first fold needs.
    fn first_fold_tiles(&self, m: u64, n: u64, k: u64) -> (f64, f64) {
        let (r, c) = (self.cfg.rows as f64, self.cfg.cols as f64);
        let (mf, nf, kf) = (m as f64, n as f64, k as f64);
        match self.cfg.dataflow {
            Dataflow::Os => (mf.min(r) * kf, kf * nf.min(c)),
            Dataflow::Ws => (mf * kf.min(r), kf.min(r) * nf.min(c)),
            Dataflow::Is => (kf.min(r) * mf.min(c), kf.min(r) * nf),
        }
    }

    /// The least-traffic SRAM tiling that fits the buffers (never more reads or writes than the
    /// ScaleSim policy, which is a candidate).
    #[allow(clippy::too_many_arguments)]
    fn overlapped_dram(
        &self,
        p: &Plan,
        m: u64,
        n: u64,
        buf_i: f64,
        buf_f: f64,
        buf_o: f64,
        base: Dram,
    ) -> Dram {
        let w = self.cfg.word_bytes.get();
        let wf = self.filter_word;
        let acc = self.cfg.acc_bytes.get();
        let (r, c) = (self.cfg.rows as f64, self.cfg.cols as f64);
        let (mf, nf) = (m as f64, n as f64);
        // Outputs are written once when an R x C accumulator tile fits the ofmap buffer.
        let acc_tile_fits = r.min(mf) * c.min(nf) * acc <= buf_o;
        let writes = if acc_tile_fits { p.o } else { base.ofmap };
        let mut best = Dram {
            ifmap: base.ifmap,
            filter: base.filter,
            ofmap: writes,
        };
        let mut consider = |cand: Dram| {
            if cand.ifmap + cand.filter <= base.ifmap + base.filter
                && cand.ofmap <= base.ofmap
                && cand.ifmap + cand.filter + cand.ofmap < best.ifmap + best.filter + best.ofmap
            {
                best = cand;
            }
        };
        if acc_tile_fits {
            // B resident, A streamed once (A row blocks of one K column double-buffered).
            if p.b * wf <= buf_f && r.min(mf) * w <= buf_i / 2.0 {
                consider(Dram {
                    ifmap: p.a,
                    filter: p.b,
                    ofmap: p.o,
                });
            }
            // A resident, B streamed once.
            if p.a * w <= buf_i && c.min(nf) * wf <= buf_f / 2.0 {
                consider(Dram {
                    ifmap: p.a,
                    filter: p.b,
                    ofmap: p.o,
                });
            }
            // Output tiles Tm x Tn held in the accumulator; K streamed through in chunks.
            let mut tm: u64 = 1;
            loop {
                let tmf = (tm as f64).min(mf);
                if tmf * w <= buf_i / 2.0 {
                    let tn = (buf_o / (tmf * acc))
                        .floor()
                        .min((buf_f / 2.0 / wf).floor())
                        .min(nf);
                    if tn >= 1.0 {
                        let ifmap = p.a * (nf / tn).ceil();
                        let filter = p.b * (mf / tmf).ceil();
                        consider(Dram {
                            ifmap,
                            filter,
                            ofmap: p.o,
                        });
                    }
                }
                if tm >= m {
                    break;
                }
                tm = tm.saturating_mul(2).min(m);
            }
        }
        best
    }
}
