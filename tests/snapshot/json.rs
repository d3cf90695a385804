//! Every `--format json` output carries the llmforge version; cost commands also the engine
//! and the precision their costs were computed at.

use super::{llmforge, text};

fn json(args: &[&str]) -> serde_json::Value {
    let o = llmforge(args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

const VERSION: &str = llmforge::provenance::VERSION;

#[test]
fn cost_commands_state_version_engine_and_precision() {
    let sim = |extra: &[&str]| {
        let mut a = vec![
            "sim",
            "--model",
            "smollm2-135m",
            "--substrate",
            "jetson-orin-nano-super",
            "--prompt",
            "16",
            "--gen",
            "2",
        ];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--format", "json"]);
        json(&a)
    };
    let v = sim(&[]);
    assert_eq!(v["llmforge_version"], VERSION);
    assert_eq!(v["engine"], "sim");
    assert_eq!(v["precision"]["weights"], "bf16");
    let v = sim(&["--precision", "int8", "--engine", "roofline"]);
    assert_eq!(v["engine"], "roofline");
    for part in ["weights", "activations", "kv_cache"] {
        assert_eq!(v["precision"][part], "int8", "{part}");
    }
    let v = json(&[
        "gemm",
        "--substrate",
        "gemmini",
        "--m",
        "8",
        "--n",
        "8",
        "--k",
        "8",
        "--format",
        "json",
    ]);
    assert_eq!(
        (v["llmforge_version"].as_str(), v["engine"].as_str()),
        (Some(VERSION), Some("sim"))
    );
    assert_eq!(v["precision"], "int8");
    let v = json(&[
        "validate",
        "--traces",
        "tests/fixtures/validate/sample.csv",
        "--format",
        "json",
    ]);
    assert_eq!(v["llmforge_version"], VERSION);
    assert_eq!(
        (v["engine"].as_str(), v["precision"].as_str()),
        (Some("roofline"), Some("per row"))
    );
    assert!(v["overall"]["mape"].as_f64().is_some());
}

#[test]
fn other_json_outputs_state_the_version() {
    for args in [
        &["model", "show", "gpt2", "--format", "json"][..],
        &["substrate", "show", "gemmini", "--format", "json"],
        &[
            "graph", "--model", "gpt2", "--phase", "decode:8", "--format", "json",
        ],
    ] {
        let v = json(args);
        assert_eq!(v["llmforge_version"], VERSION, "{args:?}");
        assert!(v.get("engine").is_none(), "{args:?}");
    }
}
