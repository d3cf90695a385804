//! `llmforge substrate ...`: list, validate and show hardware descriptions.

use clap::{Subcommand, ValueEnum};
use llmforge::model::{self, ComputeClass};
use llmforge::sim::ring::{ChipSizing, RingTiming, RingWorkload};
use llmforge::sim::ring_adapter;
use llmforge::substrate::cosearch::{PointStatus, objective_name};
use llmforge::substrate::{self, DesignSpace, Kind, Substrate};
use llmforge::trace::{JsonMeta, PrecisionMeta, json_document};
use miette::IntoDiagnostic;

#[derive(Subcommand)]
pub enum SubstrateCmd {
    /// List the shipped substrates.
    List,
    /// Print a commented template of a substrate file (every field, its unit and meaning).
    New {
        #[arg(long, value_enum)]
        kind: NewKind,
    },
    /// Validate a substrate file, reporting every problem with its line and column.
    Check {
        /// A substrate file (or shipped name).
        file: String,
        /// Override a field before validation: `--set dram.read="8 B/cycle"`.
        #[arg(long = "set", value_name = "PATH=EXPR")]
        set: Vec<String>,
    },
    /// Print a substrate's derived figures: peak FLOP/s per precision, ridge points, bandwidths.
    Show {
        substrate: String,
        #[arg(long = "set", value_name = "PATH=EXPR")]
        set: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run a ring substrate's hardware co-search for one model: every grid point, the choice.
    Cosearch {
        /// A ring substrate (shipped name or file), e.g. ring-edge-cosearch.
        substrate: String,
        /// A preset name or a model file.
        #[arg(long)]
        model: String,
        /// Prompt tokens.
        #[arg(long, default_value_t = 256)]
        prompt: u64,
        /// Generated tokens.
        #[arg(long = "gen", default_value_t = 256)]
        generate: u64,
        /// Concurrent users (the ring's batch).
        #[arg(long, default_value_t = 1)]
        users: u64,
        /// Override a field or the grid: `--set cosearch.grid.max_chips="{4, 8}"`.
        #[arg(long = "set", value_name = "PATH=EXPR")]
        set: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum NewKind {
    Gpu,
    Systolic,
    Ring,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Loads a substrate with `--set` overrides (shared by every subcommand that takes one).
pub fn load(spec: &str, set: &[String]) -> miette::Result<Substrate> {
    let overrides = substrate::parse_overrides(set).map_err(|e| miette::miette!("{e}"))?;
    Ok(substrate::load(spec, &overrides)?)
}

const CLASSES: [ComputeClass; 6] = ComputeClass::ALL;

pub fn run(cmd: SubstrateCmd) -> miette::Result<()> {
    match cmd {
        SubstrateCmd::List => {
            for name in substrate::names() {
                let s = substrate::load(name, &[])?;
                println!("{name:26} {:9} {}", s.kind_name(), s.description);
            }
        }
        SubstrateCmd::New { kind } => {
            let name = match kind {
                NewKind::Gpu => "gpu",
                NewKind::Systolic => "systolic",
                NewKind::Ring => "ring",
            };
            match substrate::schema::template(name) {
                Some(t) => print!("{t}"),
                None => return Err(miette::miette!("no template for kind `{name}`")),
            }
        }
        SubstrateCmd::Check { file, set } => {
            let overrides = substrate::parse_overrides(&set).map_err(|e| miette::miette!("{e}"))?;
            let space = DesignSpace::load(&file, &overrides)?;
            let s = space.base();
            match space.cosearch() {
                None => println!("{file}: ok ({} substrate `{}`)", s.kind_name(), s.name),
                Some(_) => {
                    let n = space.check_points()?;
                    println!(
                        "{file}: ok ({} substrate `{}`, co-search grid of {n} points, every point valid)",
                        s.kind_name(),
                        s.name
                    );
                }
            }
        }
        SubstrateCmd::Cosearch {
            substrate: spec,
            model: model_spec,
            prompt,
            generate,
            users,
            set,
            format,
        } => {
            let overrides = substrate::parse_overrides(&set).map_err(|e| miette::miette!("{e}"))?;
            let space = DesignSpace::load(&spec, &overrides)?;
            let m = model::load(&model_spec)?;
            let workload = RingWorkload::new(prompt, generate, users).into_diagnostic()?;
            let r = ring_adapter::co_search(&m, &space, workload).into_diagnostic()?;
            match format {
                Format::Json => {
                    let out = serde_json::json!({
                        "model": m.name,
                        "substrate": space.base().name,
                        "fast_path": r.fast_path,
                        "table": r.table,
                        "chosen": r.report,
                    });
                    let meta = JsonMeta::cost("ring", Some(PrecisionMeta::Run(m.precision)));
                    print!("{}", json_document(&meta, &out).into_diagnostic()?);
                }
                Format::Table => print_cosearch(&m.name, &space, &r),
            }
        }
        SubstrateCmd::Show {
            substrate: spec,
            set,
            format,
        } => {
            let s = load(&spec, &set)?;
            match format {
                Format::Json => {
                    let derived: Vec<serde_json::Value> = CLASSES
                        .iter()
                        .map(|&c| {
                            serde_json::json!({
                                "class": c.name(),
                                "runs_as": s.native_class(c).name(),
                                "matrix_peak_flops": s.matrix_peak(c).get(),
                                "ridge_flop_per_byte": s.ridge_point(c),
                            })
                        })
                        .collect();
                    let out = serde_json::json!({
                        "substrate": s,
                        "memory_bandwidth_bytes_per_s": s.memory_bandwidth().get(),
                        "vector_peak_flops": s.vector_peak().get(),
                        "precisions": s.precision_support(),
                        "derived": derived,
                    });
                    print!("{}", json_document(&JsonMeta::default(), &out).into_diagnostic()?);
                }
                Format::Table => {
                    println!("{} ({}): {}", s.name, s.kind_name(), s.description);
                    println!("clock                  {:.3} GHz", s.clock().get() / 1e9);
                    println!(
                        "memory bandwidth       {:.2} GB/s",
                        s.memory_bandwidth().get() / 1e9
                    );
                    println!("memory capacity        {:.2} GB", s.memory_capacity().as_gb());
                    println!(
                        "vector peak            {:.3} TFLOP/s",
                        s.vector_peak().get() / 1e12
                    );
                    let support = s.precision_support();
                    println!("native precisions      {}", support.list());
                    match &support.quantise {
                        llmforge::substrate::precision::Quantise::Nothing => {}
                        llmforge::substrate::precision::Quantise::Listed(v) => println!(
                            "quantises              {} (to {})",
                            v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                            support.narrowest().map_or("?", |c| c.name())
                        ),
                        llmforge::substrate::precision::Quantise::AllOthers => println!(
                            "quantises              every other format (to {})",
                            support.narrowest().map_or("?", |c| c.name())
                        ),
                    }
                    for c in CLASSES {
                        let runs = s.native_class(c);
                        let note = if runs == c {
                            String::new()
                        } else {
                            format!("   (runs as {runs})")
                        };
                        println!(
                            "matrix peak {:5}      {:10.3} TFLOP/s   ridge {:8.1} FLOP/B{note}",
                            c.name(),
                            s.matrix_peak(c).get() / 1e12,
                            s.ridge_point(c)
                        );
                    }
                    match &s.kind {
                        Kind::Ring(r) => print_ring(r),
                        Kind::Gpu(g) => println!(
                            "SMs {}, L2 {:.1} MiB at {:.2} TB/s, tile {}x{}",
                            g.sms,
                            g.l2_size.as_mib(),
                            g.l2_bandwidth.get() / 1e12,
                            g.tile.0,
                            g.tile.1
                        ),
                        Kind::Systolic(a) => {
                            let (i, f, o) = a.buffers.split_bytes();
                            println!(
                                "array {}x{} {}, mode {}, SRAM ifmap/filter/ofmap {:.0}/{:.0}/{:.0} KiB, DRAM {}/{} B/cycle",
                                a.rows,
                                a.cols,
                                a.dataflow.name(),
                                a.mode.name(),
                                i / 1024.0,
                                f / 1024.0,
                                o / 1024.0,
                                a.dram_read.get(),
                                a.dram_write.get()
                            )
                        }
                    }
                    if !matches!(s.kind, Kind::Ring(_)) {
                        let e = s.efficiency;
                        println!(
                            "efficiency             compute {}, memory {}, kernel overhead {}, token overhead {}",
                            e.compute, e.memory, e.kernel_overhead, e.token_overhead
                        );
                        println!(
                            "                       quantised-weight GEMMs {} of compute, attention scores {} per element",
                            e.quantised_compute, e.score_bytes
                        );
                    }
                    let env = s.envelope;
                    if env.max_area.is_some() || env.max_power.is_some() {
                        println!(
                            "envelope               area {}, power {}",
                            env.max_area
                                .map_or("-".into(), |a| format!("{} mm^2", a.as_mm2())),
                            env.max_power.map_or("-".into(), |p| format!("{} W", p.get()))
                        );
                    }
                    if let Some(c) = &s.cosearch {
                        println!(
                            "co-search              {} points, objective {}",
                            c.len(),
                            objective_name(c.objective)
                        );
                        for a in &c.axes {
                            println!("  {:22} {{{}}}", a.path, a.labels.join(", "));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_ring(r: &substrate::Ring) {
    let c = r.spec.chip();
    let d = r.design;
    println!(
        "ring                   up to {} chips; template chip {} DXT x {} VAC x {} MAC = {} cores, {} INT8 MACs",
        d.max_chips,
        c.n_dxt,
        c.vacs_per_dxt,
        d.macs_per_vac,
        c.n_cores(),
        r.macs_per_chip()
    );
    println!(
        "memories per core      WMEM {:.0} KiB ({}-bit port), KV {:.0} KiB ({}-bit rows)",
        d.wmem_per_core.get() / 1024.0,
        c.wmem_port_bits,
        c.kv_per_core.get() / 1024.0,
        c.kv_row_bits
    );
    let l = r.spec.link();
    println!(
        "link                   {} B/cycle, {} cycles, {} pJ/bit",
        g(l.bytes_per_cycle.get()),
        g(l.latency.get()),
        g(l.energy_per_bit.as_pj())
    );
    println!(
        "DRAM (spill)           {} B/cycle = {:.2} GB/s, {} pJ/B",
        r.spec.dram().bytes_per_cycle.get(),
        r.dram_bandwidth().get() / 1e9,
        c.energy.dram_per_byte.as_pj()
    );
    println!(
        "energy                 MAC {} pJ, WMEM {} pJ/B, KV {} pJ/B, head SRAM {} pJ/B, accumulator {} pJ",
        g(c.energy.mac.as_pj()),
        g(c.energy.wmem_per_byte.as_pj()),
        g(c.energy.kv_per_byte.as_pj()),
        g(c.energy.head_sram_per_byte.as_pj()),
        g(c.energy.accumulator_access.as_pj())
    );
    let template = llmforge::sim::ring::ChipConfig {
        n_cores: c.n_cores(),
        n_dxt: c.n_dxt,
        macs_per_vac: d.macs_per_vac,
        wmem_per_core: d.wmem_per_core,
        kv_per_core: c.kv_per_core,
    };
    match r.options.timing {
        RingTiming::Corrected => println!(
            "template chip          {:.3} mm^2, leakage {:.4} pJ/cycle",
            template.area(c).as_mm2(),
            template.leakage_per_cycle(c).as_pj()
        ),
        RingTiming::PaperEra => println!(
            "template chip          {:.3} mm^2 (SRAM only), no leakage",
            llmforge::sim::ring::paper_era::chip_sram_area(
                &r.spec,
                c.n_cores(),
                d.wmem_per_core,
                c.kv_per_core
            )
            .as_mm2()
        ),
    }
    let p = r.spec.packing();
    println!(
        "packing                weight headroom {}, KV headroom {}, min KV {:.0} KiB/core, {} core doublings, max cores/chip {}, chip sizing {}",
        p.weight_headroom,
        p.kv_headroom,
        p.min_kv_per_core.get() / 1024.0,
        p.core_doublings,
        p.max_cores_per_chip.map_or("none".into(), |m| m.to_string()),
        match p.chip_sizing {
            ChipSizing::SmallestFitting => "smallest_fitting",
            ChipSizing::SmallestTotalArea => "smallest_total_area",
        }
    );
    let o = r.options;
    println!(
        "options                decode context {:?}, LM head {:?}, spill to DRAM {}, tensor parallel {}",
        o.decode_context, o.lm_head, o.spill_to_dram, o.tensor_parallel
    );
    if o.timing == RingTiming::PaperEra {
        println!(
            "timing                 paper_era: every layer priced like the first, decode at ctx {}, serial softmax unit (the paper's table)",
            llmforge::sim::ring::paper_era::DECODE_CONTEXT
        );
    }
}

fn print_cosearch(model: &str, space: &DesignSpace, r: &ring_adapter::RingCoSearch) {
    let t = &r.table;
    println!(
        "{model} on {}: {} points, objective {}{}",
        space.base().name,
        t.points.len(),
        objective_name(t.objective),
        if r.fast_path { " (ring fast path)" } else { "" }
    );
    let axes: Vec<String> = space
        .cosearch()
        .map(|c| c.axes.iter().map(|a| a.path.clone()).collect())
        .unwrap_or_default();
    print!("{:>5}", "point");
    for a in &axes {
        print!(" {a:>20}");
    }
    println!(
        " {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "objective", "violation", "ttft_ms", "tpot_ms", "uJ/token", "area_mm2", "power_W"
    );
    for row in &t.points {
        let mark = if row.index == t.chosen { "*" } else { " " };
        print!("{mark}{:>4}", row.index);
        for (_, v) in &row.settings {
            print!(" {v:>20}");
        }
        match &row.status {
            PointStatus::Failed { reason } => println!(" {reason}"),
            PointStatus::Evaluated {
                objective,
                violation,
                metrics: m,
            } => println!(
                " {:>10.4e} {:>10.3} {:>10.4} {:>10.5} {:>9.3} {:>9.2} {:>9.4}",
                objective,
                violation,
                m.ttft_s * 1e3,
                m.tpot_s * 1e3,
                m.energy_per_token_j * 1e6,
                m.area_m2.unwrap_or(f64::NAN) * 1e6,
                m.power_w
            ),
        }
    }
    let b = &r.report;
    println!(
        "chosen: point {} ({}), {} chips x {} cores, {} MACs/VAC, WMEM {:.0} KiB/core, KV {:.0} KiB/core, area {:.2} mm^2, power {:.4} W",
        t.chosen,
        if t.feasible {
            "feasible"
        } else {
            "INFEASIBLE: least-violating"
        },
        b.n_chips(),
        b.packing.chip.n_cores,
        b.design.macs_per_vac,
        b.design.wmem_per_core.get() / 1024.0,
        b.packing.chip.kv_per_core.get() / 1024.0,
        b.total_area.as_mm2(),
        b.power.get()
    );
    println!(
        "        TTFT {:.4} ms, TPOT {:.5} ms, {:.3} uJ/token (paper), {:.3} uJ/generated token",
        b.ttft.as_ms(),
        b.tpot.as_ms(),
        b.energy_per_token_paper.as_uj(),
        b.energy_per_generated_token.as_uj()
    );
}

/// A number to 12 significant digits, shortest form (0.243, not 0.24299999999999997).
fn g(x: f64) -> String {
    format!("{x:.11e}")
        .parse::<f64>()
        .map_or_else(|_| x.to_string(), |v| v.to_string())
}
