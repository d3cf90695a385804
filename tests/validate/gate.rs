//! `validate --max-mape`: exit 1 when the overall or a group's MAPE exceeds its limit, with a
//! message naming what exceeded; a limit naming no group is an error.

use std::process::Command;

const SAMPLE: &str = "tests/fixtures/validate/sample.csv";

fn validate(limits: &[&str]) -> (Option<i32>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmforge"));
    c.args(["validate", "--traces", SAMPLE]);
    for l in limits {
        c.args(["--max-mape", l]);
    }
    let o = c.output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn max_mape_gates_overall_and_per_group() {
    let report = super::validate_sample(Vec::new());
    let overall = report.overall.as_ref().unwrap().mape;
    let phase = &report.by_phase[0];
    let above = |x: f64| format!("{}", (x * 1.01 + 0.1).ceil());
    let below = |x: f64| format!("{}", (x * 0.99 - 0.1).floor().max(0.0));

    let (code, err) = validate(&[&above(overall)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("--max-mape overall: MAPE"), "{err}");

    let (code, err) = validate(&[&format!("{}%", below(overall))]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("MAPE above the limit: overall"), "{err}");

    let name = phase.key.join(" | ");
    let ok = format!("phase:{name}={}", above(phase.stats.mape));
    let bad = format!("phase:{}={}", name.to_uppercase(), below(phase.stats.mape));
    let (code, err) = validate(&[&above(overall), &ok]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = validate(&[&above(overall), &bad]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("phase `{}`", name.to_uppercase())), "{err}");
    assert!(!err.contains("above the limit: overall"), "{err}");

    // a group that is not in the report, and a malformed limit: errors, not passes
    let (code, err) = validate(&["phase:no such phase=50"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no such phase") && err.contains(&name), "{err}");
    let (code, err) = validate(&["fifteen"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--max-mape `fifteen`"), "{err}");
}
