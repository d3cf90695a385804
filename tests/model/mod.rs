//! Model import and accounting: exact parameter counts of real `config.json` files, preset
//! round trips, located errors for malformed descriptions.

use llmforge::model::{self, accounting, desc, hf};

fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// (config.json fixture, total params, active params). Totals are the published counts; MoE
/// active counts are total minus the routed experts a token skips (Mixtral: 6 of 8 experts x
/// 3 x 4096 x 14336 x 32 layers; Qwen1.5-MoE: 56 of 60 x 3 x 2048 x 1408 x 24), i.e. "12.9B" and
/// "2.7B" active as the model cards say.
const HF_COUNTS: &[(&str, u64, u64)] = &[
    ("smollm2-135m", 134_515_008, 134_515_008),
    ("smollm2-360m", 361_821_120, 361_821_120),
    ("qwen2.5-0.5b", 494_032_768, 494_032_768),
    ("llama-3.2-1b", 1_235_814_400, 1_235_814_400),
    ("pythia-160m", 162_322_944, 162_322_944),
    ("gpt2", 124_439_808, 124_439_808),
    ("gemma-2b", 2_506_172_416, 2_506_172_416),
    ("llama-2-7b", 6_738_415_616, 6_738_415_616),
    ("llama-3-8b", 8_030_261_248, 8_030_261_248),
    ("llama-3-70b", 70_553_706_496, 70_553_706_496),
    ("mistral-7b", 7_241_732_096, 7_241_732_096),
    ("mixtral-8x7b", 46_702_792_704, 12_879_925_248),
    ("qwen1.5-moe-a2.7b", 14_315_784_192, 2_689_173_504),
];

#[test]
fn hf_config_param_counts_are_exact() {
    for &(name, total, active) in HF_COUNTS {
        let src = fixture(&format!("hf/{name}.json"));
        let m = hf::from_config_json(&src, name, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = accounting::params(&m);
        assert_eq!(p.total, total, "{name} total");
        assert_eq!(p.active, active, "{name} active");
        assert_eq!(p.embedding + p.non_embedding, p.total, "{name}");
    }
}

#[test]
fn presets_equal_their_sources() {
    for &(name, _, _) in HF_COUNTS {
        let from_json = hf::from_config_json(&fixture(&format!("hf/{name}.json")), name, name).unwrap();
        let preset = model::preset(name).unwrap();
        assert_eq!(preset, from_json, "{name}");
    }
    for (preset, file) in [
        ("llmforge-eco-294m", "LLMForge-Eco-294M"),
        ("llmforge-fast-365m", "LLMForge-Fast-365M"),
        ("llmforge-acc-347m", "LLMForge-Acc-347M"),
    ] {
        let path = format!("llmforge-archs/{file}.yaml");
        let mut imported = model::layerlist::parse(&fixture(&path), &path, preset).unwrap();
        imported.name = preset.into();
        assert_eq!(model::preset(preset).unwrap(), imported, "{preset}");
    }
}

#[test]
fn every_preset_round_trips_through_the_description_format() {
    for name in model::presets::names() {
        let m = model::preset(name).unwrap();
        let text = desc::to_yaml(&m);
        let back = desc::parse(&text, "roundtrip.yaml").unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(back, m, "{name}");
    }
}

#[test]
fn llmforge_variants_match_the_paper() {
    // Layer counts, attention-free layers and widths from the paper (shared/reference/llmforge.md);
    // parameter counts from the files' own headers.
    for (name, d, layers, free, approx_m) in [
        ("llmforge-acc-347m", 960, 31, 5, 347.0),
        ("llmforge-eco-294m", 960, 27, 4, 294.1),
        ("llmforge-fast-365m", 1088, 32, 7, 365.2),
        ("llmforge-acc-123m", 576, 25, 0, 123.19),
        ("llmforge-compact-106m", 576, 20, 0, 106.21),
    ] {
        let m = model::preset(name).unwrap();
        assert_eq!(m.d_model, d, "{name}");
        assert_eq!(m.n_layers(), layers, "{name}");
        if free > 0 {
            assert_eq!(m.n_layers() - m.n_attention_layers(), free, "{name}");
        }
        let p = accounting::params(&m).total as f64 / 1e6;
        assert!(
            (p - approx_m).abs() / approx_m < 0.002,
            "{name}: {p}M vs {approx_m}M"
        );
    }
}

#[test]
fn quantised_weight_bytes_use_bits_per_weight() {
    let mut m = model::preset("llama-3-8b").unwrap();
    m.precision.weights = "Q4_0".parse().unwrap();
    let bytes = accounting::weight_bytes(&m).get();
    assert_eq!(bytes, 8_030_261_248.0 * 4.5 / 8.0);
    // KV: 32 layers x 8 groups x (128 + 128) x 2 bytes
    assert_eq!(
        accounting::kv_bytes_per_token(&m).get(),
        (32 * 8 * 256 * 2) as f64
    );
}

/// Malformed inputs: each must produce a located error (line and column) and never a panic.
#[test]
fn malformed_descriptions_give_located_errors() {
    let good = "name: x\nd_model: 64\nvocab: 100\ntied_embeddings: true\nnorm: rmsnorm\npositional: rope\nprecision: bf16\nlayers:\n  - repeat: 2\n    attention: {heads: 4, kv_groups: 2, head_dim: 16}\n    ffn: {kind: swiglu, width: 128}\n";
    assert!(desc::parse(good, "good.yaml").is_ok());
    let cases: &[(&str, &str, usize)] = &[
        ("kv_groups: 2", "kv_groups: 3", 9),
        ("norm: rmsnorm", "norm: batchnorm", 5),
        ("precision: bf16", "precision: fp12", 7),
        ("positional: rope", "positional: alibi", 6),
        ("width: 128", "width: -5", 11),
        ("head_dim: 16", "d_qk: 16", 9),
        ("repeat: 2", "repeat: 0", 9),
        ("vocab: 100", "vocab: many", 3),
        ("width: 128}", "width: 128, experts: 4}", 9),
        ("tied_embeddings: true", "tied_embedings: true", 4),
        ("    ffn: {kind: swiglu, width: 128}\n", "", 1),
    ];
    for (from, to, line) in cases {
        let bad = good.replace(from, to);
        assert_ne!(bad, good);
        match desc::parse(&bad, "bad.yaml") {
            Ok(m) => panic!("`{to}` accepted: {m:?}"),
            Err(d) => {
                let first = &d.errors()[0];
                assert_eq!(first.file(), "bad.yaml");
                assert!(first.line() >= 1 && first.column() >= 1, "`{to}`: {first}");
                if *line > 1 {
                    assert_eq!(first.line(), *line, "`{to}`: {first}");
                }
            }
        }
    }
}

#[test]
fn malformed_hf_configs_give_located_errors() {
    let src = fixture("hf/smollm2-360m.json");
    for (from, to, needle) in [
        (
            "\"model_type\": \"llama\"",
            "\"model_type\": \"rwkv\"",
            "unsupported model_type",
        ),
        (
            "\"hidden_size\": 960",
            "\"hidden_size\": \"960\"",
            "non-negative integer",
        ),
        (
            "\"num_key_value_heads\": 5",
            "\"num_key_value_heads\": 4",
            "must divide",
        ),
        (
            "\"vocab_size\": 49152",
            "\"vocab\": 49152",
            "missing field `vocab_size`",
        ),
        ("\"hidden_size\": 960,", "\"hidden_size\": 960", "invalid JSON"),
    ] {
        let bad = src.replace(from, to);
        let err = hf::from_config_json(&bad, "config.json", "x").expect_err(to);
        assert!(err.to_string().contains(needle), "{to}: {err}");
        assert!(err.line() >= 1);
    }
    let err = hf::from_config_json(
        &src.replace("\"hidden_size\": 960", "\"hidden_size\": \"960\""),
        "c.json",
        "x",
    )
    .unwrap_err();
    assert_eq!(err.line(), 8, "{err}");
}

/// Rendered errors for malformed descriptions, as a reader sees them (miette, no colour,
/// width 80). Each file in tests/fixtures/model/err must fail.
#[test]
fn rendered_model_errors() {
    insta::glob!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/model/err"),
        "*.yaml",
        |path| {
            let src = std::fs::read_to_string(path).unwrap();
            let name = format!("err/{}", path.file_name().unwrap().to_string_lossy());
            let err = desc::parse(&src, &name).expect_err("an err fixture must fail");
            let mut out = String::new();
            let handler =
                miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                    .with_width(80);
            handler.render_report(&mut out, &err).unwrap();
            insta::assert_snapshot!(out);
        }
    );
}

pub(crate) mod never_panics {
    use llmforge::model::{desc, hf, layerlist};
    use proptest::prelude::*;

    const DESC: &str = include_str!("../../dsl/models/llmforge-eco-294m.yaml");
    const HF: &str = include_str!("../fixtures/hf/qwen1.5-moe-a2.7b.json");
    const LAYERLIST: &str = include_str!("../fixtures/llmforge-archs/LLMForge-Fast-365M.yaml");

    /// Cuts `src` at a random place and splices in random text: the loaders must return a
    /// value or an error, never panic.
    pub(crate) fn mangled(src: &'static str) -> impl Strategy<Value = String> {
        (0..src.len(), 0..64usize, "[ -~\n\t{}\\[\\]:,\"'#-]{0,40}").prop_map(move |(at, cut, junk)| {
            let mut at = at;
            while !src.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + cut).min(src.len());
            while !src.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{}{}", &src[..at], junk, &src[end..])
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn model_description(src in mangled(DESC)) {
            let _ = desc::parse(&src, "fuzz.yaml");
        }
        #[test]
        fn hf_config(src in mangled(HF)) {
            let _ = hf::from_config_json(&src, "config.json", "fuzz");
        }
        #[test]
        fn layer_list(src in mangled(LAYERLIST)) {
            let _ = layerlist::parse(&src, "fuzz.yaml", "fuzz");
        }
        #[test]
        fn arbitrary_text(src in "\\PC{0,200}") {
            let _ = desc::parse(&src, "fuzz.yaml");
            let _ = hf::from_config_json(&src, "config.json", "fuzz");
            let _ = layerlist::parse(&src, "fuzz.yaml", "fuzz");
            let _ = llmforge::substrate::load_str(&src, "fuzz.yaml", &[]);
            let _ = llmforge::search::space::parse(&src, "fuzz.yaml");
            let _ = llmforge::system::load_source(&llmforge::yaml::SourceFile::new("fuzz.yaml", src.as_str()), None);
        }
    }
}
