//! Hostile inputs of every kind: model YAML, HF config.json, LLMForge layer lists, substrates
//! and `--set`, search spaces, sweep grids, law files, surrogate files, calibration overlays,
//! trace CSVs, search checkpoints, paths that are not files, and the workload and search flags.
//! Each family is a table: the input, the command, and what must happen.

use super::{Case, MODEL, fixture, run_all};

const SUBSTRATE: &str = include_str!("../../substrates/flat-edge.yaml");
const SPACE: &str = include_str!("../../dsl/spaces/smollm2-135m-seeded.yaml");
const GRID: &str = include_str!("../../dsl/grids/tiny.yaml");
const LAW: &str = r#"{
  "format_version": 1,
  "law": { "form": "chinchilla", "E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28 }
}
"#;
const CONFIG: &str = include_str!("../fixtures/hf/smollm2-135m.json");
const LAYERLIST: &str = include_str!("../fixtures/llmforge-archs/LLMForge-Eco-294M.yaml");
const OVERLAY: &str = "stack: llama.cpp
substrate: rtx-4090
set:
  efficiency.compute: \"0.5\"
  efficiency.memory: \"0.8\"
  efficiency.kernel_overhead: \"2 us\"
  efficiency.token_overhead: \"90 us\"
";

/// `text` with `from` replaced by `to` (which must occur).
fn with(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` not in the base text");
    text.replacen(from, to, 1)
}

/// Bytes 0..=255 over and over: not UTF-8, not YAML, not JSON.
fn binary(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 37 % 256) as u8).collect()
}

/// A YAML alias bomb: each level lists the previous one nine times.
fn billion_laughs() -> String {
    let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    s
}

fn model_cases() -> Vec<Case> {
    let show = |name: &str, text: String| Case::new(name, "model show {dir}/m.yaml").file("m.yaml", text);
    let mut v = vec![
        show("model valid", MODEL.into()).ok(&["params"]),
        show("model empty", String::new()).err(&["m.yaml"]),
        Case::new("model binary", "model show {dir}/m.yaml")
            .file("m.yaml", binary(4096))
            .err(&["m.yaml:1:", "not UTF-8"]),
        show(
            "model deep nesting",
            format!("name: {}{}\n", "[".repeat(20_000), "]".repeat(20_000)),
        )
        .err(&["m.yaml:1:7"]),
        show("model billion laughs", billion_laughs()).err(&["m.yaml"]),
        show(
            "model duplicate key",
            with(MODEL, "vocab: 100\n", "vocab: 100\nvocab: 200\n"),
        )
        .err(&["m.yaml:4:", "duplicate"]),
        show(
            "model unknown key",
            with(MODEL, "vocab: 100", "vocab: 100\nd_modle: 3"),
        )
        .err(&["m.yaml:4:1", "unknown field `d_modle`"]),
        show(
            "model wrong unit d_model",
            with(MODEL, "d_model: 64", "d_model: \"576 B\""),
        )
        .err(&["m.yaml:2:10", "a plain count", "576 B"]),
        show(
            "model d_model list",
            with(MODEL, "d_model: 64", "d_model: [1, 2]"),
        )
        .err(&["m.yaml:2:10"]),
        show(
            "model d_model string",
            with(MODEL, "d_model: 64", "d_model: wide"),
        )
        .err(&["m.yaml:2:10"]),
        show("model d_model float", with(MODEL, "d_model: 64", "d_model: 64.5")).err(&["m.yaml:2:10"]),
        show("model d_model nan", with(MODEL, "d_model: 64", "d_model: .nan")).err(&["m.yaml:2:10"]),
        show("model d_model inf", with(MODEL, "d_model: 64", "d_model: .inf")).err(&["m.yaml:2:10"]),
        show(
            "model d_model negative",
            with(MODEL, "d_model: 64", "d_model: -64"),
        )
        .err(&["m.yaml:2:10"]),
        show(
            "model d_model 2^64",
            with(MODEL, "d_model: 64", "d_model: 18446744073709551616"),
        )
        .err(&["m.yaml:2:10"]),
        show(
            "model d_model 2^64-1",
            with(MODEL, "d_model: 64", "d_model: 18446744073709551615"),
        )
        .err(&["m.yaml:2:10", "limit is 131,072"]),
        show("model d_model zero", with(MODEL, "d_model: 64", "d_model: 0"))
            .err(&["m.yaml:2:10", "at least 1"]),
        show("model vocab huge", with(MODEL, "vocab: 100", "vocab: 1000000000"))
            .err(&["m.yaml:3:8", "limit"]),
        show(
            "model repeat 2^64-1",
            with(MODEL, "repeat: 2", "repeat: 18446744073709551615"),
        )
        .err(&["m.yaml:9:13", "limit is 4,096"]),
        show("model repeat 1e9", with(MODEL, "repeat: 2", "repeat: 1000000000"))
            .err(&["m.yaml:9:13", "4,096"]),
        show("model repeat 3e7", with(MODEL, "repeat: 2", "repeat: 30000000")).err(&["m.yaml:9:13", "4,096"]),
        show("model repeat 4097", with(MODEL, "repeat: 2", "repeat: 4097")).err(&["m.yaml:9:13"]),
        show("model repeat 4096", with(MODEL, "repeat: 2", "repeat: 4096")).ok(&["4096"]),
        show("model repeat zero", with(MODEL, "repeat: 2", "repeat: 0")).err(&["m.yaml:9:13", "at least 1"]),
        show("model repeat negative", with(MODEL, "repeat: 2", "repeat: -1")).err(&["m.yaml:9:13"]),
        show(
            "model repeat sums past limit",
            format!("{MODEL}  - repeat: 4095\n    attention: none\n    ffn: {{kind: gelu, width: 8}}\n"),
        )
        .err(&["m.yaml:12:13", "more than 4,096 layers"]),
        show("model heads huge", with(MODEL, "heads: 4", "heads: 1000000")).err(&["m.yaml:9:5", "heads"]),
        show(
            "model head_dim huge",
            with(MODEL, "head_dim: 16", "head_dim: 100000000"),
        )
        .err(&["m.yaml:9:5", "d_qk"]),
        show(
            "model width huge",
            with(MODEL, "width: 128", "width: 4000000000000"),
        )
        .err(&["m.yaml:9:5", "width"]),
        show(
            "model kv_groups not dividing",
            with(MODEL, "kv_groups: 2", "kv_groups: 3"),
        )
        .err(&["m.yaml:9:5", "divide"]),
        show("model heads zero", with(MODEL, "heads: 4", "heads: 0")).err(&["m.yaml:9:5"]),
        show("model heads bool", with(MODEL, "heads: 4", "heads: true")).err(&["m.yaml"]),
        show(
            "model moe experts huge",
            with(
                MODEL,
                "ffn: {kind: swiglu, width: 128}",
                "ffn: {kind: swiglu, experts: 100000, active: 2, expert_width: 64}",
            ),
        )
        .err(&["m.yaml:9:5", "experts"]),
        show(
            "model too many parameters",
            with(
                &with(MODEL, "repeat: 2", "repeat: 4096"),
                "ffn: {kind: swiglu, width: 128}",
                "ffn: {kind: swiglu, experts: 4096, active: 1, expert_width: 1048576}",
            ),
        )
        .err(&["m.yaml", "parameters; the limit"]),
        show(
            "model rope fraction nan",
            with(MODEL, "positional: rope", "positional: \"rope:nan\""),
        )
        .err(&["m.yaml:6:13"]),
        show(
            "model rope fraction 2",
            with(MODEL, "positional: rope", "positional: \"rope:2\""),
        )
        .err(&["m.yaml:6:13"]),
        show(
            "model learned positions huge",
            with(MODEL, "positional: rope", "positional: \"learned:99999999999\""),
        )
        .err(&["m.yaml:6:13", "limit"]),
        show(
            "model unknown precision",
            with(MODEL, "precision: fp16", "precision: fp7"),
        )
        .err(&["m.yaml:7:12"]),
        show(
            "model precision nan bits",
            with(MODEL, "precision: fp16", "precision: \"bpw:nan\""),
        )
        .err(&["m.yaml:7:12"]),
        show(
            "model layers not a list",
            with(MODEL, "layers:\n", "layers: 3\nx:\n"),
        )
        .err(&["m.yaml"]),
        show(
            "model no layers",
            MODEL.split("layers:").next().unwrap().to_string() + "layers: []\n",
        )
        .err(&["m.yaml", "at least one layer"]),
        show(
            "model huge value",
            with(MODEL, "name: tiny", &format!("name: {}", "x".repeat(500_000))),
        )
        .ok(&["params"]),
        show(
            "model huge unknown key",
            with(
                MODEL,
                "vocab: 100",
                &format!("vocab: 100\n{}: 1", "k".repeat(500_000)),
            ),
        )
        .err(&["m.yaml:4:"]),
        show(
            "model line over limit",
            with(MODEL, "name: tiny", &format!("name: {}", "x".repeat(1_100_000))),
        )
        .err(&["m.yaml:1:", "a line may have at most"]),
        Case::new("model file over limit", "model show {dir}/m.yaml")
            .file("m.yaml", format!("{MODEL}#{}\n", "c".repeat(17 << 20)))
            .err(&["m.yaml", "may have at most 16,777,216"]),
        show("model tabs", with(MODEL, "  - repeat", "\t- repeat")).err(&["m.yaml:9:"]),
        show("model bom", format!("\u{feff}{MODEL}")).ok(&["params"]),
        show("model nul bytes", with(MODEL, "tiny", "ti\0ny")).err(&["m.yaml:1:"]),
        Case::new(
            "model sim 4096 layers roofline",
            "sim --engine roofline --substrate flat-edge --precision int8 --prompt 8 --gen 2 --model {dir}/m.yaml",
        )
        .file("m.yaml", with(MODEL, "repeat: 2", "repeat: 4096"))
        .ok(&["TTFT"]),
    ];
    // model convert keeps any name a model file can hold
    v.push(
        Case::new(
            "model convert name with colon",
            "model convert smollm2-135m --name",
        )
        .arg("a: b # c \"d\" \\ e")
        .ok(&["name: \"a: b # c \\\"d\\\" \\\\ e\""]),
    );
    v
}

fn config_cases() -> Vec<Case> {
    let show = |name: &str, text: String| {
        Case::new(name, "model show {dir}/x/config.json").file("x/config.json", text)
    };
    vec![
        show("config valid", CONFIG.into()).ok(&["134515008"]),
        show("config empty", String::new()).err(&["config.json"]),
        Case::new("config binary", "model show {dir}/x/config.json")
            .file("x/config.json", binary(1000))
            .err(&["config.json", "not UTF-8"]),
        show("config truncated", CONFIG[..CONFIG.len() / 2].to_string())
            .err(&["config.json:", "invalid JSON"]),
        show(
            "config deep nesting",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        )
        .err(&["config.json:1:"]),
        show("config not an object", "[1, 2]".into()).err(&["config.json", "JSON object"]),
        show(
            "config duplicate key",
            with(
                CONFIG,
                "\"hidden_size\": 576,",
                "\"hidden_size\": 576,\n  \"hidden_size\": 960,",
            ),
        )
        .err(&["config.json:", "appears twice"]),
        show(
            "config unknown torch_dtype",
            with(
                CONFIG,
                "\"torch_dtype\": \"bfloat16\"",
                "\"torch_dtype\": \"float7\"",
            ),
        )
        .err(&["config.json:", "unknown `torch_dtype` `float7`", "bfloat16"]),
        show(
            "config torch_dtype number",
            with(CONFIG, "\"torch_dtype\": \"bfloat16\"", "\"torch_dtype\": 16"),
        )
        .err(&["config.json:", "torch_dtype"]),
        show(
            "config layers 1e9",
            with(
                CONFIG,
                "\"num_hidden_layers\": 30",
                "\"num_hidden_layers\": 1000000000",
            ),
        )
        .err(&["config.json:", "num_hidden_layers", "4,096"]),
        show(
            "config layers 2^64",
            with(
                CONFIG,
                "\"num_hidden_layers\": 30",
                "\"num_hidden_layers\": 18446744073709551616",
            ),
        )
        .err(&["config.json:", "num_hidden_layers"]),
        show(
            "config layers negative",
            with(CONFIG, "\"num_hidden_layers\": 30", "\"num_hidden_layers\": -30"),
        )
        .err(&["config.json:", "non-negative integer"]),
        show(
            "config layers float",
            with(CONFIG, "\"num_hidden_layers\": 30", "\"num_hidden_layers\": 30.5"),
        )
        .err(&["config.json:", "num_hidden_layers"]),
        show(
            "config layers string",
            with(
                CONFIG,
                "\"num_hidden_layers\": 30",
                "\"num_hidden_layers\": \"30\"",
            ),
        )
        .err(&["config.json:", "num_hidden_layers"]),
        show(
            "config layers 1e400",
            with(
                CONFIG,
                "\"num_hidden_layers\": 30",
                "\"num_hidden_layers\": 1e400",
            ),
        )
        .err(&["config.json:"]),
        show(
            "config nan",
            with(CONFIG, "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": NaN"),
        )
        .err(&["config.json:", "invalid JSON"]),
        show(
            "config hidden huge",
            with(CONFIG, "\"hidden_size\": 576", "\"hidden_size\": 5760000"),
        )
        .err(&["config.json:", "limit"]),
        show(
            "config vocab huge",
            with(CONFIG, "\"vocab_size\": 49152", "\"vocab_size\": 4915200000"),
        )
        .err(&["config.json:", "vocab"]),
        show(
            "config heads zero",
            with(CONFIG, "\"num_attention_heads\": 9", "\"num_attention_heads\": 0"),
        )
        .err(&["config.json:", "num_attention_heads"]),
        show(
            "config missing model_type",
            with(CONFIG, "\"model_type\": \"llama\",", ""),
        )
        .err(&["config.json", "model_type"]),
        show(
            "config unknown model_type",
            with(CONFIG, "\"model_type\": \"llama\"", "\"model_type\": \"llama9\""),
        )
        .err(&["config.json:", "unsupported model_type"]),
        show(
            "config rope fraction 5",
            with(
                CONFIG,
                "\"model_type\": \"llama\",",
                "\"model_type\": \"llama\",\n  \"partial_rotary_factor\": 5,",
            ),
        )
        .err(&["config.json:", "rope fraction"]),
    ]
}

fn layerlist_cases() -> Vec<Case> {
    let show = |name: &str, text: String| Case::new(name, "model show {dir}/eco.yaml").file("eco.yaml", text);
    vec![
        show("layerlist valid", LAYERLIST.into()).ok(&["params"]),
        show(
            "layerlist n_layer 1e9",
            with(LAYERLIST, "n_layer: 27", "n_layer: 1000000000"),
        )
        .err(&["eco.yaml:", "4,096"]),
        show(
            "layerlist n_layer 2^64-1",
            with(LAYERLIST, "n_layer: 27", "n_layer: 18446744073709551615"),
        )
        .err(&["eco.yaml:"]),
        show(
            "layerlist list too short",
            with(LAYERLIST, "n_layer: 27", "n_layer: 28"),
        )
        .err(&["eco.yaml:", "entries but n_layer is 28"]),
        show(
            "layerlist n_embd string",
            with(LAYERLIST, "n_embd: 960", "n_embd: wide"),
        )
        .err(&["eco.yaml:"]),
        show("layerlist empty list", "[]\n".into()).err(&["eco.yaml:1:1"]),
    ]
}

fn substrate_cases() -> Vec<Case> {
    let check =
        |name: &str, text: String| Case::new(name, "substrate check {dir}/s.yaml").file("s.yaml", text);
    let sim = |name: &str, set: &[&str]| {
        let mut c = Case::new(
            name,
            "sim --model smollm2-135m --precision int8 --substrate flat-edge --engine roofline --prompt 16 --gen 2",
        );
        for s in set {
            c = c.arg("--set").arg(*s);
        }
        c
    };
    vec![
        check("substrate valid", SUBSTRATE.into()).ok(&["ok"]),
        check("substrate empty", String::new()).err(&["s.yaml"]),
        Case::new("substrate binary", "substrate check {dir}/s.yaml")
            .file("s.yaml", binary(3000))
            .err(&["s.yaml", "not UTF-8"]),
        check(
            "substrate clock 1e-300 Hz",
            with(SUBSTRATE, "\"1 GHz\"", "\"1e-300 Hz\""),
        )
        .err(&["s.yaml:7:8", "between 1 kHz and 1 THz"]),
        check(
            "substrate clock 1e300 Hz",
            with(SUBSTRATE, "\"1 GHz\"", "\"1e300 Hz\""),
        )
        .err(&["s.yaml:7:8"]),
        check(
            "substrate clock negative",
            with(SUBSTRATE, "\"1 GHz\"", "\"-1 GHz\""),
        )
        .err(&["s.yaml:7:8"]),
        check("substrate clock nan", with(SUBSTRATE, "\"1 GHz\"", ".nan")).err(&["s.yaml:7:8"]),
        check("substrate clock bytes", with(SUBSTRATE, "\"1 GHz\"", "\"1 GB\""))
            .err(&["s.yaml:7:8", "frequency"]),
        check(
            "substrate read bare number",
            with(SUBSTRATE, "read: \"25 B/cycle\"", "read: 25"),
        )
        .err(&["s.yaml:13:9", "B/cycle"]),
        check(
            "substrate capacity 1e30",
            with(SUBSTRATE, "\"8 GiB\"", "\"1e30 B\""),
        )
        .err(&["s.yaml:15:13", "1 EB"]),
        check(
            "substrate rows 2^64",
            with(SUBSTRATE, "rows: 32", "rows: 18446744073709551616"),
        )
        .err(&["s.yaml:8:"]),
        check(
            "substrate rows huge",
            with(SUBSTRATE, "rows: 32", "rows: 1000000000"),
        )
        .err(&["s.yaml:8:", "16,777,216"]),
        check(
            "substrate efficiency 5",
            with(SUBSTRATE, "compute: 1.0", "compute: 5"),
        )
        .err(&["s.yaml:20:12", "fraction"]),
        check(
            "substrate energy huge",
            with(SUBSTRATE, "\"64 pJ/B\"", "\"1 J/B\""),
        )
        .err(&["s.yaml:27:14", "at most 1 uJ"]),
        check(
            "substrate unknown key",
            with(SUBSTRATE, "clock: \"1 GHz\"", "clock: \"1 GHz\"\nclok: 2"),
        )
        .err(&["s.yaml:8:1", "clok"]),
        check(
            "substrate duplicate key",
            with(
                SUBSTRATE,
                "clock: \"1 GHz\"",
                "clock: \"1 GHz\"\nclock: \"2 GHz\"",
            ),
        )
        .err(&["s.yaml:8:", "duplicate"]),
        check(
            "substrate unknown kind",
            with(SUBSTRATE, "kind: systolic", "kind: quantum"),
        )
        .err(&["s.yaml:5:7", "quantum"]),
        check(
            "substrate deep nesting",
            format!("kind: systolic\nx: {}{}\n", "[".repeat(5000), "]".repeat(5000)),
        )
        .err(&["s.yaml:2:", "too large to read", "too deeply"]),
        check("substrate aliases", billion_laughs()).err(&["s.yaml", "too large to read"]),
        check(
            "substrate expression garbage",
            with(SUBSTRATE, "\"1 GHz\"", "\"1 GHz +* (\""),
        )
        .err(&["s.yaml:7:"]),
        check(
            "substrate unknown unit",
            with(SUBSTRATE, "\"1 GHz\"", "\"1 GXz\""),
        )
        .err(&["s.yaml:7:", "unknown unit"]),
        check(
            "substrate huge expression",
            with(
                SUBSTRATE,
                "\"1 GHz\"",
                &format!("\"1 GHz{}\"", " + 0 GHz".repeat(50_000)),
            ),
        )
        .err(&["s.yaml:7:"]),
        sim("set twice", &["clock=1 GHz", "clock=2 GHz"]).err(&["--set clock", "set twice"]),
        sim("set bare number", &["dram.read=8"]).err(&["--set dram.read", "8 B/cycle"]),
        sim("set self reference", &["clock=clock*2"]).ok(&["TTFT"]),
        sim("set unknown name", &["clock=speed*2"]).err(&[
            "--set clock",
            "unknown name `speed`",
            "a --set value may name",
        ]),
        sim("set unknown field", &["clok=1 GHz"]).err(&["clok", "not a field"]),
        sim("set no equals", &["clock"]).err(&["--set `clock`", "path=expression"]),
        sim("set 1e-300 Hz", &["clock=1e-300 Hz"]).err(&["--set clock", "between 1 kHz and 1 THz"]),
        sim("set nan", &["efficiency.compute=0/0"]).err(&["--set efficiency.compute"]),
        sim("set huge value", &[&format!("clock={} GHz", "9".repeat(100_000))]).err(&["--set clock"]),
        sim("set word wrong", &["array.dataflow=diagonal"]).err(&["--set array.dataflow"]),
        Case::new("substrate dir", "sim --model smollm2-135m --substrate {dir}")
            .err(&["a directory, not a substrate file"]),
    ]
}

fn space_cases() -> Vec<Case> {
    let search = |name: &str, text: String| {
        Case::new(
            name,
            "search --space {dir}/sp.yaml --substrate flat-edge --engine roofline --generations 1 --population 4 --offspring 4 --prompt 16 --gen 2",
        )
        .file("sp.yaml", text)
    };
    vec![
        search("space valid", SPACE.into()).ok(&["evaluations"]),
        search("space empty", String::new()).err(&["sp.yaml"]),
        search("space slots 1e9", with(SPACE, "slots: 40", "slots: 1000000000"))
            .err(&["sp.yaml:", "slots", "limit"]),
        search(
            "space d_model huge",
            with(SPACE, "\"384..=960 step 64\"", "\"{384, 9999999}\""),
        )
        .err(&["sp.yaml:", "d_model"]),
        search(
            "space range explosion",
            with(SPACE, "\"384..=960 step 64\"", "\"1..=1e12 step 1\""),
        )
        .err(&["sp.yaml:"]),
        search(
            "space ffn 2^64",
            with(SPACE, "\"512..=4096 step 512\"", "18446744073709551616"),
        )
        .err(&["sp.yaml:"]),
        search(
            "space unknown key",
            with(SPACE, "slots: 40", "slots: 40\nslotz: 3"),
        )
        .err(&["sp.yaml:", "slotz"]),
        search("space vocab zero", with(SPACE, "vocab: 50257", "vocab: 0")).err(&["sp.yaml:", "vocab"]),
        search(
            "space vocab huge",
            with(SPACE, "vocab: 50257", "vocab: 5000000000"),
        )
        .err(&["sp.yaml:", "vocab"]),
        search(
            "space binary",
            String::from_utf8_lossy(&binary(2000)).into_owned(),
        )
        .err(&["sp.yaml"]),
    ]
}

fn grid_cases() -> Vec<Case> {
    let sweep = |name: &str, text: String| {
        Case::new(
            name,
            "sweep --grid {dir}/g.yaml --substrate jetson-orin-nano-super --prompt 16 --gen 2 --out {dir}/out",
        )
        .file("g.yaml", text)
    };
    vec![
        sweep("grid valid", GRID.into()).ok(&["feasible (fit the substrate's memory"]),
        sweep("grid empty", String::new()).err(&["g.yaml"]),
        sweep("grid depth 1e9", with(GRID, "\"{2, 4}\"", "\"{2, 1000000000}\""))
            .err(&["g.yaml:", "depth", "limit"]),
        sweep(
            "grid width 2^64-1",
            with(GRID, "\"{128, 256}\"", "18446744073709551615"),
        )
        .err(&["g.yaml:"]),
        sweep(
            "grid ffn ratio huge",
            with(GRID, "\"{2, 4}\"\nexperts", "\"{2, 1e12}\"\nexperts"),
        )
        .err(&["g.yaml:", "ffn_ratio"]),
        sweep(
            "grid ffn ratio nan",
            with(GRID, "\"{2, 4}\"\nexperts", ".nan\nexperts"),
        )
        .err(&["g.yaml:"]),
        sweep(
            "grid too many candidates",
            with(
                &with(GRID, "\"{2, 4}\"", "\"1..=4096\""),
                "\"{128, 256}\"",
                "\"64..=131072 step 64\"",
            )
            .replace("\"{1, 2}\"\nffn_ratio", "\"1..=64\"\nffn_ratio")
            .replace("head_dim: 64", "head_dim: \"1..=64\""),
        )
        .err(&["g.yaml", "candidates; the limit is"]),
        sweep(
            "grid experts huge",
            with(GRID, "experts: \"{1, 4}\"", "experts: \"{1, 1000000}\""),
        )
        .err(&["g.yaml:", "experts"]),
        sweep(
            "grid unknown precision",
            with(GRID, "[fp16, int8]", "[fp16, int9]"),
        )
        .err(&["g.yaml:", "int9"]),
    ]
}

fn law_cases() -> Vec<Case> {
    let predict = |name: &str, text: String| {
        Case::new(name, "law predict --law {dir}/law.json --params 1e8 --tokens 2e9").file("law.json", text)
    };
    let search = |name: &str, text: String| {
        Case::new(
            name,
            "search --space smollm2-135m-seeded --substrate flat-edge --engine roofline --generations 1 --population 4 --offspring 4 --prompt 16 --gen 2 --quality {dir}/law.json",
        )
        .file("law.json", text)
    };
    let csv_one = "params,tokens,loss\n1e8,2e9,3.1\n";
    let csv_five =
        "params,tokens,loss\n1e8,2e9,3.1\n2e8,4e9,2.9\n4e8,8e9,2.7\n8e8,1.6e10,2.6\n1.6e9,3.2e10,2.5\n";
    vec![
        predict("law valid", LAW.into()).ok(&[""]),
        predict("law negative E", with(LAW, "\"E\": 1.69", "\"E\": -5")).err(&["law.json:3:", "`E` is -5", "from 0 to 100 nats"]),
        search("law negative E in search", with(LAW, "\"E\": 1.69", "\"E\": -5")).err(&["law.json", "`E`"]),
        Case::new("law negative E in eval", "law eval --law {dir}/law.json --data {dir}/d.csv")
            .file("law.json", with(LAW, "\"E\": 1.69", "\"E\": -5"))
            .file("d.csv", csv_five)
            .err(&["law.json", "`E`"]),
        predict("law alpha zero", with(LAW, "\"alpha\": 0.34", "\"alpha\": 0")).err(&["law.json:3:", "alpha", "exponent"]),
        predict("law alpha huge", with(LAW, "\"alpha\": 0.34", "\"alpha\": 1e300")).err(&["law.json:3:", "alpha"]),
        predict("law coefficient 1e400", with(LAW, "\"A\": 406.4", "\"A\": 1e400")).err(&["law.json:"]),
        predict("law coefficient string", with(LAW, "\"A\": 406.4", "\"A\": \"406\"")).err(&["law.json:"]),
        predict("law unknown form", with(LAW, "\"chinchilla\"", "\"kaplan\"")).err(&["law.json:"]),
        predict("law unknown field", with(LAW, "\"beta\": 0.28", "\"beta\": 0.28, \"gamma\": 1")).err(&["law.json:", "gamma"]),
        predict("law duplicate field", with(LAW, "\"beta\": 0.28", "\"beta\": 0.28, \"beta\": 0.3")).err(&["law.json:", "duplicate"]),
        predict("law version 2", with(LAW, "\"format_version\": 1", "\"format_version\": 2")).err(&["law.json", "format_version 2"]),
        predict("law empty", String::new()).err(&["law.json"]),
        predict("law deep nesting", format!("{}{}", "[".repeat(50_000), "]".repeat(50_000))).err(&["law.json:"]),
        Case::new("law binary", "law predict --law {dir}/law.json --params 1e8 --tokens 2e9")
            .file("law.json", binary(500))
            .err(&["law.json", "not UTF-8"]),
        predict(
            "law conditional negative factor",
            r#"{"format_version": 1, "law": {"form": "conditional", "a0": -1, "a1": 0, "a2": 0, "b0": 1, "b1": 0, "b2": 0,
               "l_opt": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}}}"#
                .into(),
        )
        .err(&["law.json", "width factor"]),
        Case::new("law fit one row", "law fit --form chinchilla --data {dir}/d.csv --out {dir}/o.json")
            .file("d.csv", csv_one)
            .err(&["1 data row", "at least 6 rows"]),
        Case::new("law fit five rows", "law fit --form chinchilla --data {dir}/d.csv --out {dir}/o.json")
            .file("d.csv", "params,tokens,loss\n1e8,2e9,3.1\n2e8,4e9,2.9\n4e8,8e9,2.7\n8e8,1.6e10,2.6\n1.6e9,3.2e10,2.5\n".replace("1.6e9,3.2e10,2.5\n", ""))
            .err(&["at least 6 rows"]),
        Case::new("law data binary", "law eval --law {dir}/law.json --data {dir}/d.csv")
            .file("law.json", LAW)
            .file("d.csv", binary(800))
            .err(&["d.csv"]),
        Case::new("law predict nan input", "law predict --law {dir}/law.json --params NaN --tokens 2e9")
            .file("law.json", LAW)
            .err(&["params"]),
        Case::new("quality dev null", "search --space smollm2-135m-seeded --substrate flat-edge --quality /dev/null --generations 1 --population 4 --offspring 4")
            .err(&["/dev/null", "character device"]),
        Case::new("quality tokens per param nan", "search --space smollm2-135m-seeded --substrate flat-edge --tokens-per-param NaN --generations 1 --population 4 --offspring 4")
            .err(&["--tokens-per-param"]),
        Case::new("law fixture valid", "law predict --params 1e9 --tokens 2e10 --law")
            .arg(fixture("law/published_chinchilla_hoffmann2022.json"))
            .ok(&[""]),
    ]
}

fn surrogate_cases() -> Vec<Case> {
    let predict = |name: &str, text: String| {
        Case::new(name, "surrogate predict --model {dir}/s.json --arch smollm2-135m").file("s.json", text)
    };
    let search = |name: &str, text: String| {
        Case::new(
            name,
            "search --space smollm2-135m-seeded --substrate flat-edge --generations 1 --population 4 --offspring 4 --quality {dir}/s.json",
        )
        .file("s.json", text)
    };
    vec![
        predict("surrogate empty", String::new()).err(&["s.json"]),
        predict("surrogate not json", "members: []".into()).err(&["s.json"]),
        predict(
            "surrogate wrong format",
            r#"{"format": "llmforge-surrogate", "version": 99}"#.into(),
        )
        .err(&["s.json"]),
        predict("surrogate law file", LAW.into()).err(&["s.json"]),
        predict(
            "surrogate deep nesting",
            format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)),
        )
        .err(&["s.json"]),
        Case::new(
            "surrogate binary",
            "surrogate predict --model {dir}/s.json --arch smollm2-135m",
        )
        .file("s.json", binary(700))
        .err(&["s.json", "not UTF-8"]),
        search(
            "surrogate garbage in search",
            r#"{"format": "llmforge-surrogate", "members": 3}"#.into(),
        )
        .err(&["s.json"]),
        Case::new(
            "surrogate dir",
            "surrogate predict --model {dir} --arch smollm2-135m",
        )
        .err(&["a directory"]),
    ]
}

fn overlay_cases() -> Vec<Case> {
    let validate = |name: &str, text: String| {
        Case::new(name, "validate --traces {dir}/t.csv --overlay {dir}/o.yaml")
            .file("t.csv", SAMPLE_HEAD.to_string() + SAMPLE_ROW)
            .file("o.yaml", text)
    };
    vec![
        validate("overlay valid", OVERLAY.into()).ok(&["rows"]),
        validate("overlay efficiency 5", with(OVERLAY, "\"0.5\"", "\"5\"")).err(&["o.yaml:4:23", "fraction"]),
        validate(
            "overlay efficiency negative",
            with(OVERLAY, "\"0.5\"", "\"-0.5\""),
        )
        .err(&["o.yaml:4:23"]),
        validate(
            "overlay overhead negative",
            with(OVERLAY, "\"2 us\"", "\"-2 us\""),
        )
        .err(&["o.yaml:6:31"]),
        validate("overlay overhead huge", with(OVERLAY, "\"2 us\"", "\"1e9 s\""))
            .err(&["o.yaml:6:31", "1000 s"]),
        validate(
            "overlay overhead wrong unit",
            with(OVERLAY, "\"2 us\"", "\"2 GB\""),
        )
        .err(&["o.yaml:6:31", "time"]),
        validate(
            "overlay garbage expression",
            with(OVERLAY, "\"0.5\"", "\"0.5 +\""),
        )
        .err(&["o.yaml:4:"]),
        validate(
            "overlay bad path",
            with(OVERLAY, "efficiency.compute", "efficiency..compute"),
        )
        .err(&["o.yaml:4:", "field path"]),
        validate(
            "overlay both targets",
            with(OVERLAY, "substrate: rtx-4090", "substrate: rtx-4090\nfamily: x"),
        )
        .err(&["o.yaml:3:", "either"]),
        validate("overlay empty", String::new()).err(&["o.yaml"]),
        validate("overlay aliases", billion_laughs()).err(&["o.yaml"]),
    ]
}

const SAMPLE_HEAD: &str = "hardware,hw_bw_GBps,hw_peak_tflops,hw_peak_dtype,hw_mem_GB,software,model,params_B,weights,bits_per_weight,batch,prompt_len,gen_len,metric,value,unit,source,note\n";
const SAMPLE_ROW: &str = "NVIDIA GeForce RTX 4090,1008,,,24,llama.cpp CUDA,Meta-Llama-3-8B,8.03,GGUF Q4_K_M,4.89,1,0,128,tg_tokens_per_s,127,tok/s,test,\n";

fn trace_cases() -> Vec<Case> {
    let validate =
        |name: &str, text: String| Case::new(name, "validate --traces {dir}/t.csv").file("t.csv", text);
    let mut many_bad = SAMPLE_HEAD.to_string();
    for _ in 0..2000 {
        many_bad.push_str(&SAMPLE_ROW.replace(",127,", ",fast,"));
    }
    vec![
        validate("trace valid", SAMPLE_HEAD.to_string() + SAMPLE_ROW).ok(&["1 rows"]),
        validate("trace empty", String::new()).err(&["t.csv"]),
        validate("trace header only", SAMPLE_HEAD.into()).err(&["t.csv", "no rows"]),
        Case::new("trace binary", "validate --traces {dir}/t.csv")
            .file("t.csv", binary(5000))
            .err(&["t.csv"]),
        validate("trace missing columns", "hardware,model\nA,B\n".into())
            .err(&["t.csv:1:1", "lacks the column"]),
        validate(
            "trace value word",
            SAMPLE_HEAD.to_string() + &SAMPLE_ROW.replace(",127,", ",fast,"),
        )
        .err(&["t.csv:2:", "`fast` is not a number"]),
        validate(
            "trace value nan",
            SAMPLE_HEAD.to_string() + &SAMPLE_ROW.replace(",127,", ",NaN,"),
        )
        .err(&["t.csv:2:"]),
        validate(
            "trace value inf",
            SAMPLE_HEAD.to_string() + &SAMPLE_ROW.replace(",127,", ",inf,"),
        )
        .err(&["t.csv:2:"]),
        validate(
            "trace prompt 2^64",
            SAMPLE_HEAD.to_string() + &SAMPLE_ROW.replace(",1,0,128,", ",1,18446744073709551616,128,"),
        )
        .err(&["t.csv:2:", "prompt_len"]),
        validate(
            "trace gen 2^64-1",
            SAMPLE_HEAD.to_string() + &SAMPLE_ROW.replace(",1,0,128,", ",1,0,18446744073709551615,"),
        )
        .ok(&["unmappable"]),
        validate(
            "trace batch huge",
            SAMPLE_HEAD.to_string() + &SAMPLE_ROW.replace(",1,0,128,", ",1000000000,0,128,"),
        )
        .ok(&["unmappable"]),
        validate(
            "trace unequal fields",
            SAMPLE_HEAD.to_string() + "a,b,c\n" + SAMPLE_ROW,
        )
        .err(&["t.csv:2:", "fields"]),
        validate(
            "trace quoted comma",
            SAMPLE_HEAD.to_string()
                + &SAMPLE_ROW.replace("NVIDIA GeForce RTX 4090,1008", "\"NVIDIA, quoted\",lots"),
        )
        .err(&["t.csv:2:", "hw_bw_GBps"]),
        validate(
            "trace unclosed quote",
            SAMPLE_HEAD.to_string() + "\"abc" + SAMPLE_ROW,
        )
        .err(&["t.csv"]),
        validate(
            "trace record over limit",
            format!(
                "{SAMPLE_HEAD}{}{SAMPLE_ROW}",
                SAMPLE_ROW.replace(",test,", &format!(",{},", "s".repeat(1_200_000)))
            ),
        )
        .err(&["t.csv:2:", "longer than 1,048,576 bytes"]),
        validate(
            "trace long field clipped",
            SAMPLE_HEAD.to_string() + &SAMPLE_ROW.replace(",127,", &format!(",{},", "9x".repeat(100_000))),
        )
        .err(&["t.csv:2:", "characters)"]),
        validate("trace many bad rows", many_bad).err(&["t.csv:2:", "more problems are not listed"]),
        Case::new("trace dir", "validate --traces {dir}").err(&["a directory, not a trace CSV file"]),
        Case::new("trace dev null", "validate --traces /dev/null").err(&["character device"]),
        Case::new("trace sample fixture", "validate --traces")
            .arg(fixture("validate/sample.csv"))
            .ok(&["rows"]),
    ]
}

fn checkpoint_cases() -> Vec<Case> {
    let resume = |name: &str, text: String| {
        Case::new(
            name,
            "search --space smollm2-135m-seeded --substrate flat-edge --engine roofline --generations 1 --population 4 --offspring 4 --resume {dir}/run",
        )
        .file("run/checkpoint.json", text)
    };
    vec![
        resume("checkpoint empty", String::new()).err(&["checkpoint.json"]),
        resume("checkpoint truncated", "{\"engine\": {\"format\": 1, \"settings\": ".into()).err(&["checkpoint.json:1:"]),
        resume("checkpoint not json", "generation: 3".into()).err(&["checkpoint.json:1:"]),
        resume("checkpoint deep nesting", format!("{}{}", "[".repeat(50_000), "]".repeat(50_000))).err(&["checkpoint.json:1:"]),
        Case::new(
            "checkpoint binary",
            "search --space smollm2-135m-seeded --substrate flat-edge --generations 1 --population 4 --offspring 4 --resume {dir}/run",
        )
        .file("run/checkpoint.json", binary(900))
        .err(&["checkpoint.json", "not UTF-8"]),
        Case::new(
            "checkpoint missing",
            "search --space smollm2-135m-seeded --substrate flat-edge --generations 1 --population 4 --offspring 4 --resume {dir}/none",
        )
        .err(&["--resume", "no such directory"]),
    ]
}

fn flag_cases() -> Vec<Case> {
    let sim = |name: &str, flags: &str| {
        Case::new(
            name,
            &format!("sim --model smollm2-135m --precision int8 --substrate flat-edge --format json {flags}"),
        )
    };
    let search = |name: &str, flags: &str| {
        Case::new(
            name,
            &format!(
                "search --space smollm2-135m-seeded --substrate flat-edge --engine roofline --prompt 16 --gen 2 {flags}"
            ),
        )
    };
    let sweep = |name: &str, flags: &str| {
        Case::new(
            name,
            &format!("sweep --grid tiny --substrate jetson-orin-nano-super --out {{dir}}/o {flags}"),
        )
    };
    vec![
        sim("flags prompt 2^64-1 gen 1", "--prompt 18446744073709551615 --gen 1").err(&["--prompt", "16,777,216"]),
        sim("flags gen 2^64-1", "--gen 18446744073709551615").err(&["--gen", "16,777,216"]),
        sim("flags prompt 2^64", "--prompt 18446744073709551616").err(&["--prompt"]),
        sim("flags prompt negative", "--prompt -1").err(&["--prompt"]),
        sim("flags prompt float", "--prompt 1.5").err(&["--prompt"]),
        sim("flags prompt zero", "--prompt 0").err(&["--prompt", "at least 1"]),
        sim("flags gen zero", "--gen 0").err(&["--gen", "at least 1"]),
        sim("flags batch zero", "--batch 0").err(&["--batch", "at least 1"]),
        sim("flags batch huge", "--batch 100000").err(&["--batch", "65,536"]),
        sim("flags context over limit", "--prompt 10000000 --gen 10000000").err(&["--prompt + --gen", "16,777,216"]),
        sim("flags tokens in flight", "--prompt 1000000 --gen 1 --batch 100").err(&["--batch x (--prompt + --gen)"]),
        sim("flags gen 1e7 sim", "--gen 10000000 --prompt 16").ok(&["\"fits_memory\": false"]),
        sim("flags gen 1e7 roofline", "--gen 10000000 --prompt 16 --engine roofline").ok(&["tpot_s"]),
        sim("flags prompt at limit roofline", "--prompt 16777215 --gen 1 --engine roofline").ok(&["\"fits_memory\": false"]),
        Case::new("flags kv bytes at limit", "sim --model smollm2-135m --substrate jetson-orin-nano-super --format json --prompt 8388608 --gen 8388608 --engine roofline").ok(&["\"kv_bytes\": 3"]),
        sim("flags trace steps huge", "--trace-steps 100000000").err(&["--trace-steps"]),
        sim("flags precision unknown", "--precision fp3").err(&["--precision"]),
        Case::new("flags chrome trace sampled", "sim --model llama-2-7b --substrate a100-sxm4-40gb --prompt 512 --gen 4096 --trace-steps 8 --chrome-trace {dir}/t.json")
            .ok(&["TTFT"]),
        Case::new("flags chrome trace no steps", "sim --model smollm2-135m --precision int8 --substrate gemmini --prompt 16 --gen 8 --trace-steps 0 --chrome-trace {dir}/t.json")
            .ok(&["TTFT"]),
        Case::new("flags model dir", "sim --substrate flat-edge --model {dir}").err(&["this is a directory, not a model file"]),
        Case::new("flags model dev null", "sim --substrate flat-edge --model /dev/null").err(&["character device"]),
        Case::new("flags model dev stdin", "sim --substrate flat-edge --model /dev/stdin").err(&["/dev/stdin", "not a model file"]),
        Case::new("flags model missing", "sim --substrate flat-edge --model {dir}/nope.yaml").err(&["no such file"]),
        Case::new("flags model unknown preset", "sim --substrate flat-edge --model gpt9").err(&["gpt9", "neither a model preset nor a file"]),
        search("flags population 1e8", "--population 100000000").err(&["--population", "65,536"]),
        search("flags offspring 1e8", "--offspring 100000000").err(&["--offspring"]),
        search("flags generations 1e9", "--generations 1000000000").err(&["--generations"]),
        search("flags population zero", "--population 0 --generations 1").err(&["population"]),
        search("flags search gen 2^64-1", "--gen 18446744073709551615 --generations 1").err(&["--gen"]),
        search("flags beta nan", "--beta NaN --generations 1 --population 4 --offspring 4").err(&["beta"]),
        search("flags constraint garbage", "--constraint loss<=banana --generations 1 --population 4 --offspring 4").err(&["--constraint"]),
        search("flags objective unknown", "--objectives speed --generations 1 --population 4 --offspring 4").err(&["speed"]),
        search("flags search small", "--generations 1 --population 4 --offspring 4")
            .ok(&["fits the substrate's memory"]),
        sweep("flags sweep prompt 2^64-1", "--prompt 18446744073709551615").err(&["--prompt"]),
        sweep("flags sweep batch huge", "--batch 1000000").err(&["--batch"]),
        sweep("flags sweep budget garbage", "--budget tpot<=fast").err(&["--budget"]),
        sweep("flags sweep shard garbage", "--shard 5/2").err(&["--shard"]),
        Case::new("flags gemm huge", "gemm --substrate flat-edge --m 18446744073709551615 --n 1 --k 1").err(&["--m"]),
        Case::new("flags graph context huge", "graph --model smollm2-135m --phase decode:18446744073709551615").err(&["--phase", "the context is 18,446,744,073,709,551,615"]),
        Case::new("flags model show context huge", "model show smollm2-135m --context 18446744073709551615").err(&["--context"]),
    ]
}

/// Multi-device systems: `--devices` flags and system files.
fn system_cases() -> Vec<Case> {
    const SYSTEM: &str = include_str!("../../systems/8x-gemmini-ring.yaml");
    let dev = |name: &str, flags: &str| {
        Case::new(
            name,
            &format!(
                "sim --model smollm2-135m --precision int8 --substrate flat-edge --prompt 8 --gen 2 {flags}"
            ),
        )
    };
    let link = |c: Case, bw: &str, lat: &str, e: &str| {
        c.arg("--topology")
            .arg("ring")
            .arg("--link")
            .arg(bw)
            .arg("--link-latency")
            .arg(lat)
            .arg("--link-energy")
            .arg(e)
    };
    let file = |name: &str, text: String| {
        Case::new(
            name,
            "sim --model smollm2-135m --precision int8 --prompt 8 --gen 2 --system {dir}/s.yaml",
        )
        .file("s.yaml", text)
    };
    vec![
        dev("system devices zero", "--devices 0 --parallel tp").err(&["0 devices", "4096"]),
        link(
            dev("system devices huge", "--devices 100000 --parallel pp"),
            "1 GB/s",
            "1 us",
            "1 pJ/bit",
        )
        .err(&["100000 devices"]),
        dev(
            "system devices 2^64-1",
            "--devices 18446744073709551615 --parallel tp=2",
        )
        .err(&["--parallel"]),
        dev("system parallel garbage", "--devices 4 --parallel tp=3").err(&["--parallel", "does not divide"]),
        dev("system parallel without devices", "--parallel tp").err(&["--devices"]),
        dev("system no link", "--devices 2 --parallel pp").err(&["--link-latency", "no link figure"]),
        link(
            dev("system link negative", "--devices 2 --parallel pp"),
            "-5 GB/s",
            "1 us",
            "1 pJ/bit",
        )
        .err(&["bandwidth must be positive"]),
        link(
            dev("system link in bytes", "--devices 2 --parallel pp"),
            "5 GB",
            "1 us",
            "1 pJ/bit",
        )
        .err(&["--link", "bandwidth"]),
        link(
            dev("system link energy in joules", "--devices 2 --parallel pp"),
            "5 GB/s",
            "1 us",
            "1 pJ",
        )
        .err(&["--link-energy", "per bit"]),
        link(
            dev(
                "system micro-batches huge",
                "--devices 2 --parallel pp --micro-batches 100000000",
            ),
            "5 GB/s",
            "1 us",
            "1 pJ/bit",
        )
        .err(&["micro-batches"]),
        link(
            dev(
                "system pipeline ok",
                "--devices 2 --parallel pp --micro-batches 2",
            ),
            "5 GB/s",
            "1 us",
            "1 pJ/bit",
        )
        .ok(&["d0 - d1", "tp=1 pp=2"]),
        file("system file valid", SYSTEM.into()).ok(&["d7 - d0"]),
        file("system file empty", String::new()).err(&["s.yaml"]),
        Case::new(
            "system file binary",
            "sim --model smollm2-135m --system {dir}/s.yaml",
        )
        .file("s.yaml", binary(4096))
        .err(&["s.yaml:1:", "not UTF-8"]),
        file("system file alias bomb", billion_laughs()).err(&["s.yaml"]),
        file(
            "system file ring device",
            with(SYSTEM, "substrate: gemmini", "substrate: ring-edge"),
        )
        .err(&["ring substrate"]),
        file(
            "system file mesh rows",
            with(SYSTEM, "topology: ring", "topology: mesh\n  rows: 3"),
        )
        .err(&["whole rows"]),
        file(
            "system file count huge",
            with(SYSTEM, "count: 8", "count: 18446744073709551615"),
        )
        .err(&["devices"]),
        Case::new(
            "system and substrate",
            "sim --model smollm2-135m --system 8x-gemmini-ring --substrate gemmini",
        )
        .err(&["--system"]),
    ]
}

#[test]
fn hostile_inputs() {
    let mut cases = Vec::new();
    cases.extend(model_cases());
    cases.extend(config_cases());
    cases.extend(layerlist_cases());
    cases.extend(substrate_cases());
    cases.extend(space_cases());
    cases.extend(grid_cases());
    cases.extend(law_cases());
    cases.extend(surrogate_cases());
    cases.extend(overlay_cases());
    cases.extend(trace_cases());
    cases.extend(checkpoint_cases());
    cases.extend(flag_cases());
    cases.extend(system_cases());
    assert!(cases.len() >= 150, "{} cases", cases.len());
    run_all("inputs", cases);
}
