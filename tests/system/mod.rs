//! Multi-device systems: the file format (shipped examples, located errors, the generated
//! reference), the properties of tensor parallelism and links, the one-device identity, and
//! the CLI.

use llmforge::graph::parallel::{self, Placement};
use llmforge::graph::{self, Phase};
use llmforge::model::{self, Model, Precision, Precisions};
use llmforge::sim::{self, Engine, Workload};
use llmforge::substrate::{self, Substrate};
use llmforge::system::{self, Interconnect, System, Topology};
use llmforge::units::{BytesPerSec, Seconds};
use llmforge::yaml::SourceFile;
use proptest::prelude::*;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sub(name: &str) -> Substrate {
    substrate::load(name, &[]).unwrap()
}

fn int8(mut m: Model) -> Model {
    m.precision = Precisions::all(Precision::Int8);
    m
}

fn link(topology: Topology, gbps: f64) -> Interconnect {
    Interconnect {
        topology,
        bandwidth: BytesPerSec::new(gbps * 1e9),
        links: 1,
        latency: Seconds::new(2e-6),
        energy_per_byte: 8.0 * 5e-12,
    }
}

/// dsl/SYSTEMS.md is the field table, rendered; `LLMFORGE_UPDATE_DOCS=1 cargo test` rewrites it.
#[test]
fn systems_md_is_generated_from_the_fields() {
    let path = repo().join("dsl/SYSTEMS.md");
    let want = system::reference_markdown();
    if std::env::var("LLMFORGE_UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "dsl/SYSTEMS.md is out of date with src/system/raw.rs: run `LLMFORGE_UPDATE_DOCS=1 cargo test --test tests system::`"
    );
}

#[test]
fn shipped_systems_load() {
    for name in system::names() {
        let s = system::load(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(s.count, s.placement.devices(), "{name}");
        assert!(s.interconnect.is_some(), "{name}");
    }
    let h = system::load("4x-h100-nvswitch").unwrap();
    let ic = h.interconnect.unwrap();
    // 18 links of 25 GB/s: 450 GB/s per direction (H100 SXM5 data sheet: 900 GB/s both ways)
    assert_eq!(ic.pair_bandwidth().get(), 450e9);
    assert_eq!(ic.topology, Topology::Switch);
    assert!((ic.energy_per_byte - 40e-12).abs() < 1e-24);
}

/// Every value problem of a file at once, each at its line and column.
#[test]
fn a_bad_system_file_reports_every_problem_located() {
    let src = "name: bad\n\
               devices: {substrate: h100-sxm, count: 4}\n\
               interconnect:\n  topology: torus\n  bandwidth: \"25 GB\"\n  latency: \"2 us\"\n  energy: \"5 pJ\"\n\
               placement: {tp: 3, pp: 1}\n";
    let err = system::load_source(&SourceFile::new("bad.yaml", src), None).unwrap_err();
    let errs = err.errors();
    let at = |line: usize| errs.iter().find(|e| e.line() == line);
    let topo = at(4).expect("topology");
    assert!(
        topo.message().contains("unknown topology `torus`"),
        "{}",
        topo.message()
    );
    assert!(at(5).is_some(), "bandwidth in bytes: {errs:?}");
    let energy = at(7).expect("energy");
    assert!(energy.help_text().unwrap_or_default().contains("pJ/bit"));
    let e = system::load_source(
        &SourceFile::new(
            "p.yaml",
            "name: p\ndevices: {substrate: h100-sxm, count: 4}\n\
             interconnect: {topology: ring, bandwidth: \"25 GB/s\", latency: \"2 us\", energy: \"5 pJ/bit\"}\n\
             placement: {tp: 3, pp: 1}\n",
        ),
        None,
    )
    .unwrap_err();
    let p = &e.errors()[0];
    assert_eq!((p.line(), p.column()), (4, 17), "{}", p.message());
    assert!(p.message().contains("tp=3 x pp=1 must equal the 4 devices"));
    // no interconnect for several devices; a ring substrate as the device
    let e = system::load_source(
        &SourceFile::new(
            "n.yaml",
            "name: n\ndevices: {substrate: ring-edge, count: 2}\nplacement: {pp: 2}\n",
        ),
        None,
    )
    .unwrap_err();
    let msgs: Vec<&str> = e.errors().iter().map(|e| e.message()).collect();
    assert!(msgs.iter().any(|m| m.contains("ring substrate")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("need an interconnect")),
        "{msgs:?}"
    );
    // an unknown field, at its place
    let e = system::load_source(
        &SourceFile::new(
            "u.yaml",
            "name: u\ndevices: {substrate: h100-sxm, count: 1, colour: red}\n",
        ),
        None,
    )
    .unwrap_err();
    assert_eq!(e.errors()[0].line(), 2);
}

/// A one-device system is the plain substrate: the same summary, bit for bit.
#[test]
fn one_device_system_is_the_plain_substrate() {
    let w = Workload::new(64, 16, 2).unwrap();
    for (m, s) in [
        (model::preset("llama-3-8b").unwrap(), sub("h100-sxm")),
        (int8(model::preset("smollm2-135m").unwrap()), sub("gemmini")),
    ] {
        for engine in [Engine::Roofline, Engine::Sim] {
            let plain = sim::summary(&m, &s, w, engine);
            let one = sim::system::summary(&m, &System::single(s.clone()), w, engine);
            assert_eq!(one.summary, plain, "{} {engine}", m.name);
            assert!(one.per_link.is_empty());
            assert_eq!(one.prefill_comm_s, 0.0);
        }
    }
}

#[test]
fn collective_formulas() {
    use llmforge::graph::parallel::{Collective, CollectiveKind};
    use llmforge::sim::cost::collective;
    use llmforge::units::Bytes;
    let c = |kind, group| Collective {
        name: "x",
        layer: None,
        kind,
        bytes: Bytes::new(1e6),
        group,
        stage: 0,
    };
    let ar = c(CollectiveKind::AllReduce, 4);
    let ring = link(Topology::Ring, 100.0);
    let t = collective(&ring, 4, &[0, 1, 2, 3], &ar).time.get();
    let want = 2.0 * 3.0 / 4.0 * 1e6 / 100e9 + 2.0 * 3.0 * 2e-6;
    assert!((t - want).abs() < 1e-15, "{t} vs {want}");
    let sw = link(Topology::Switch, 100.0);
    let cost = collective(&sw, 4, &[0, 1, 2, 3], &ar);
    assert!((cost.time.get() - (2e-6 + 1.5e6 / 100e9)).abs() < 1e-15);
    // every port carries 2 (g-1)/g B each way
    assert_eq!(cost.links.len(), 4);
    assert!((cost.link_bytes() - 4.0 * 2.0 * 1.5e6).abs() < 1e-6);
    // a hand-off over 3 ring hops the short way round (devices 0 and 5 of 8)
    let hop = c(CollectiveKind::SendRecv, 2);
    let t = collective(&ring, 8, &[0, 5], &hop);
    assert_eq!(t.links.len(), 3);
    assert!((t.time.get() - (3.0 * 2e-6 + 1e6 / 100e9)).abs() < 1e-15);
    // a mesh of 2 x 4: whole rows, then columns
    let mesh = link(Topology::Mesh { rows: 2, cols: 4 }, 100.0);
    let t = collective(
        &mesh,
        8,
        &[0, 1, 2, 3, 4, 5, 6, 7],
        &c(CollectiveKind::AllReduce, 8),
    );
    let row = 2.0 * 3.0 * (3.0 * 2e-6) + 2.0 * 0.75 * 1e6 / 100e9;
    let col = 2.0 * 1.0 * 2e-6 + 2.0 * 0.5 * 0.25e6 / 100e9;
    assert!((t.time.get() - (row + col)).abs() < 1e-15, "{}", t.time.get());
}

/// `llama-3-70b` on 4 x H100 tensor parallel: a quarter of the weights on each device, two
/// all-reduces per block and pass, per-link traffic, TTFT and TPOT below one device's.
#[test]
fn llama_70b_on_four_h100() {
    let m = model::preset("llama-3-70b").unwrap();
    let sys = system::load("4x-h100-nvswitch").unwrap();
    let w = Workload::new(128, 4, 1).unwrap();
    let r = sim::system::summary(&m, &sys, w, Engine::Roofline);
    assert_eq!(r.per_device.len(), 4);
    assert_eq!(r.per_link.len(), 4);
    let whole = llmforge::model::accounting::weight_bytes(&m).get();
    for d in &r.per_device {
        assert!(d.weight_bytes < whole / 4.0 * 1.01 && d.weight_bytes > whole / 4.0 * 0.95);
        assert!(d.fits_memory);
    }
    assert!(r.per_link.iter().all(|l| l.bytes > 0.0 && l.energy_j > 0.0));
    let one = sim::summary(&m, &sub("h100-sxm"), w, Engine::Roofline);
    assert!(r.summary.ttft_s < one.ttft_s && r.summary.tpot_s < one.tpot_s);
    // 161 collectives per step at 10 us each at least
    assert!(r.decode_comm_s / 4.0 >= 161.0 * 10e-6);
}

/// 8 systolic chips in a pipeline: each stage runs its blocks, the hand-offs cross the ring.
#[test]
fn pipeline_on_systolic_chips() {
    let m = int8(model::preset("smollm2-135m").unwrap());
    let sys = system::load("8x-gemmini-ring").unwrap();
    let w = Workload::new(64, 4, 1).unwrap();
    let r = sim::system::summary(&m, &sys, w, Engine::Sim);
    assert_eq!(r.per_device.len(), 8);
    // 7 hand-offs per pass: links 0..7 carry traffic, the closing one none
    assert!(r.per_link[..7].iter().all(|l| l.bytes > 0.0));
    assert_eq!(r.per_link[7].bytes, 0.0);
    // the stages' compute adds up to the one device's
    let one = sim::summary(&m, &sys.device, w, Engine::Sim);
    let busy: f64 = r.per_device.iter().map(|d| d.busy_s).sum();
    let want = one.prefill.time.get() + one.decode.time.get();
    assert!((busy - want).abs() < 1e-9 * want, "{busy} vs {want}");
    // 8 micro-batches overlap the stages: faster than one device end to end
    assert!(r.summary.ttft_s < one.ttft_s);
    assert!(r.pipeline_factor < 1.0);
    // the totals path (validate's) gives the same totals, without per-device rows
    for micro in [1, 8] {
        let sys = System {
            micro_batches: micro,
            ..sys.clone()
        };
        let full = sim::system::summary(&m, &sys, w, Engine::Roofline);
        let t = sim::system::totals(&m, &sys, w, Engine::Roofline);
        assert!(t.per_device.is_empty() && t.per_link.is_empty());
        let (a, b) = (&t.summary, &full.summary);
        for (x, y) in [
            (a.ttft_s, b.ttft_s),
            (a.tpot_s, b.tpot_s),
            (a.total_energy_j, b.total_energy_j),
            (t.pipeline_factor, full.pipeline_factor),
            (t.prefill_comm_s, full.prefill_comm_s),
        ] {
            // the same sums, in another order
            assert!(
                (x - y).abs() <= 1e-12 * y.abs(),
                "{micro} micro-batches: {x} vs {y}"
            );
        }
    }
}

fn arb_system() -> impl Strategy<Value = (Placement, Topology)> {
    (
        prop::sample::select(vec![1u64, 2, 4, 8]),
        prop::sample::select(vec![1u64, 2, 3]),
        0usize..3,
    )
        .prop_map(|(tp, pp, t)| {
            let n = tp * pp;
            let topo = match t {
                0 => Topology::Ring,
                1 => Topology::Switch,
                _ => Topology::Mesh { rows: pp, cols: tp },
            };
            (Placement { tp, pp }, if n == 1 { Topology::Switch } else { topo })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Tensor parallelism never makes a kernel's per-device FLOPs larger than the one-device
    /// kernel's (the shard's ops match the model's one to one).
    #[test]
    fn tensor_parallel_never_adds_flops_to_a_kernel(
        name in prop::sample::select(vec!["llama-3-8b", "mixtral-8x7b", "qwen2-7b", "gpt2", "smollm2-135m", "qwen1.5-moe-a2.7b"]),
        tp in 1u64..=16,
        decode in any::<bool>(),
        batch in 1u64..4,
    ) {
        let m = model::preset(name).unwrap();
        let phase = if decode { Phase::Decode { context: 33, batch } } else { Phase::Prefill { tokens: 17, batch } };
        let one = graph::lower(&m, phase);
        let placed = parallel::lower_placed(&m, phase, Placement { tp, pp: 1 });
        let a: Vec<_> = one.ops().collect();
        let b: Vec<_> = placed.device_ops().collect();
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(x.label(), y.label());
            prop_assert!(y.flops.get() <= x.flops.get() * (1.0 + 1e-12), "{} {}: {} > {}", name, x.label(), y.flops.get(), x.flops.get());
        }
    }

    /// A one-device system is the plain substrate, exactly (every field of the summary).
    #[test]
    fn one_device_system_is_exactly_the_substrate(
        name in prop::sample::select(vec!["smollm2-135m", "gpt2", "pythia-160m", "qwen2.5-0.5b", "llama-3.2-1b"]),
        sname in prop::sample::select(vec!["h100-sxm", "l4", "gemmini", "eyeriss", "scalesim-32x32"]),
        prompt in 1u64..48,
        generate in 1u64..6,
        batch in 1u64..3,
        engine in prop::sample::select(vec![Engine::Roofline, Engine::Sim]),
    ) {
        let s = sub(sname);
        let m = model::preset(name).unwrap();
        let m = if s.resolve(&m.precision).is_ok() { m } else { int8(m) };
        let w = Workload::new(prompt, generate, batch).unwrap();
        let plain = sim::summary(&m, &s, w, engine);
        let one = sim::system::run(&m, &System::single(s), w, engine, true);
        prop_assert_eq!(&one.system.summary, &plain);
        prop_assert_eq!(&one.device.summary, &plain);
    }

    /// More link bandwidth never makes a run slower (TTFT, TPOT), on any topology and placement.
    #[test]
    fn more_link_bandwidth_is_never_slower(
        (placement, topology) in arb_system(),
        gbps in 1.0f64..500.0,
        more in 1.0f64..10.0,
        micro in 1u64..5,
        engine in prop::sample::select(vec![Engine::Roofline, Engine::Sim]),
    ) {
        let m = int8(model::preset("smollm2-135m").unwrap());
        let dev = sub("gemmini");
        let w = Workload::new(32, 3, 2).unwrap();
        let run = |bw: f64| {
            let ic = (placement.devices() > 1).then(|| link(topology, bw));
            let sys = System::new(dev.clone(), ic, placement, micro).unwrap();
            sim::system::summary(&m, &sys, w, engine).summary
        };
        let (slow, fast) = (run(gbps), run(gbps * more));
        prop_assert!(fast.ttft_s <= slow.ttft_s * (1.0 + 1e-12), "{} > {}", fast.ttft_s, slow.ttft_s);
        prop_assert!(fast.tpot_s <= slow.tpot_s * (1.0 + 1e-12), "{} > {}", fast.tpot_s, slow.tpot_s);
    }
}

/// Mangled system files and `--parallel` values: a value or an error, never a panic.
mod never_panics {
    use crate::model::never_panics::mangled;
    use llmforge::system;
    use llmforge::yaml::SourceFile;
    use proptest::prelude::*;

    const H100: &str = include_str!("../../systems/4x-h100-nvswitch.yaml");
    const RING: &str = include_str!("../../systems/8x-gemmini-ring.yaml");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn system_file(src in mangled(H100)) {
            let _ = system::load_source(&SourceFile::new("fuzz.yaml", src), None);
        }
        #[test]
        fn ring_system_file(src in mangled(RING)) {
            let _ = system::load_source(&SourceFile::new("fuzz.yaml", src), None);
        }
        #[test]
        fn arbitrary_text(src in "\\PC{0,120}") {
            let _ = system::load_source(&SourceFile::new("fuzz.yaml", src), None);
        }
        #[test]
        fn parallel_flag(s in "[tp=,0-9 a-z]{0,16}", n in 0u64..100) {
            let _ = system::parse_parallel(&s, n);
        }
    }
}

/// A rendered error with its wrapping undone (miette's frame characters and line breaks).
fn flat(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).replace(['│', '×'], " ");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn llmforge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_llmforge"))
}

#[test]
fn cli_tensor_parallel_and_pipeline() {
    let out = llmforge()
        .args([
            "sim",
            "--model",
            "llama-3-70b",
            "--substrate",
            "h100-sxm",
            "--devices",
            "4",
            "--parallel",
            "tp",
            "--engine",
            "roofline",
            "--prompt",
            "64",
            "--gen",
            "4",
            "--top",
            "0",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("tp=4 pp=1"), "{text}");
    assert!(text.contains("link of shipped system 4x-h100-nvswitch"), "{text}");
    assert!(text.contains("d3 - switch"), "{text}");
    // JSON: per device and per link
    let out = llmforge()
        .args([
            "sim",
            "--model",
            "smollm2-135m",
            "--precision",
            "int8",
            "--system",
            "8x-gemmini-ring",
            "--prompt",
            "32",
            "--gen",
            "2",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["per_device"].as_array().unwrap().len(), 8);
    // the Chrome trace: a process per device, a track per link
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.json");
    let out = llmforge()
        .args([
            "sim",
            "--model",
            "llama-3-8b",
            "--substrate",
            "h100-sxm",
            "--devices",
            "4",
            "--parallel",
            "tp=2,pp=2",
            "--prompt",
            "16",
            "--gen",
            "2",
            "--engine",
            "roofline",
            "--chrome-trace",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ev = t["traceEvents"].as_array().unwrap();
    let names: Vec<&str> = ev.iter().filter_map(|e| e["args"]["name"].as_str()).collect();
    assert!(
        names.contains(&"links") && names.contains(&"device d3") && names.contains(&"l2 d2 - switch"),
        "{names:?}"
    );
    let on_links = ev.iter().filter(|e| e["pid"] == 5 && e["ph"] == "X").count();
    assert!(on_links > 0);
    assert!(
        ev.iter()
            .any(|e| e["name"] == "L0.attn_allreduce" && e["pid"] == 1)
    );
    assert!(
        ev.iter()
            .any(|e| e["name"] == "L15.stage_send" && e["cat"] == "hand_off")
    );
    assert_eq!(v["per_link"].as_array().unwrap().len(), 8);
    assert_eq!(v["pp"], 8);
    // a substrate without a shipped system and no link flags: a clear error naming the flags
    let out = llmforge()
        .args([
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "l4",
            "--devices",
            "2",
            "--parallel",
            "tp",
        ])
        .output()
        .unwrap();
    let err = flat(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--link-latency") && err.contains("no link figure is assumed"),
        "{err}"
    );
    // part of the link given: the rest is named
    let out = llmforge()
        .args([
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "l4",
            "--devices",
            "2",
            "--parallel",
            "tp",
            "--link",
            "32 GB/s",
        ])
        .output()
        .unwrap();
    let err = flat(&out.stderr);
    assert!(
        err.contains("--topology, --link-latency, --link-energy missing"),
        "{err}"
    );
}

/// #19: `graph --devices --parallel` prints the placed graph, collectives as link operators.
#[test]
fn cli_graph_placed_on_devices() {
    let graph = |extra: &[&str]| {
        let mut args = vec![
            "graph",
            "--model",
            "llama-3-8b",
            "--phase",
            "prefill:8",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        llmforge().args(&args).output().unwrap()
    };
    let out = graph(&["--devices", "8", "--parallel", "tp=2,pp=4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops = v["ops"].as_array().unwrap();
    let links: Vec<&serde_json::Value> = ops.iter().filter(|o| o["unit"] == "link").collect();
    assert!(links.iter().all(|o| o["kind"]["type"] == "collective"));
    let named = |n: &str| links.iter().filter(|o| o["name"] == n).count();
    // 32 blocks: two all-reduces each, the embedding's, three hand-offs, the logits gather
    assert_eq!(named("attn_allreduce"), 32);
    assert_eq!(named("ffn_allreduce"), 32);
    assert_eq!(named("embed_allreduce"), 1);
    assert_eq!(named("stage_send"), 3);
    assert_eq!(named("logits_gather"), 1);
    assert_eq!(links.len(), 69);
    // the plain graph has none; a placement that does not fit the devices is refused
    let out = graph(&[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["ops"].as_array().unwrap().iter().all(|o| o["unit"] != "link"));
    for bad in [
        ["--devices", "8", "--parallel", "tp=3"],
        ["--devices", "0", "--parallel", "tp"],
    ] {
        let out = graph(&bad);
        assert!(!out.status.success(), "{bad:?}");
        assert!(flat(&out.stderr).contains("--"), "{bad:?}");
    }
}
