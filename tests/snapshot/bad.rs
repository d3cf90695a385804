//! Bad cases files: every problem located (file:line:col), never a panic.

use super::{fixtures, llmforge, text};
use llmforge::snapshot::{Cases, SnapshotError};
use llmforge::yaml::{DescError, SourceFile};
use proptest::prelude::*;

fn errors(src: &str) -> Vec<DescError> {
    match Cases::parse(&SourceFile::new("bad.cases.yaml", src), &fixtures()) {
        Ok(c) => panic!("{} cases from a bad file:\n{src}", c.cases.len()),
        Err(SnapshotError::Cases(e)) => e.into_vec(),
        Err(e) => panic!("{e}"),
    }
}

const CASE: &str = "cases:\n  - name: a\n    model: gpt2\n    substrate: gemmini\n";

#[test]
fn bad_cases_files_get_located_errors() {
    let tol = |t: &str| format!("tolerances:\n  {t}\n{CASE}");
    let table: Vec<(&str, String, usize, usize, &str)> = vec![
        ("wrong type", format!("{CASE}    prompt: lots\n"), 5, 13, "whole number"),
        ("negative", format!("{CASE}    gen: -3\n"), 5, 10, ""),
        ("unknown key", format!("{CASE}    promt: 3\n"), 5, 5, "unknown field `promt`"),
        ("unknown top key", format!("{CASE}matrx: []\n"), 5, 1, "unknown field `matrx`"),
        (
            "missing field",
            "cases:\n  - name: a\n    model: gpt2\n".into(),
            3,
            5,
            "missing field `substrate`",
        ),
        ("unknown model", CASE.replace("gpt2", "gtp2"), 3, 12, "unknown model `gtp2`"),
        (
            "missing model file",
            CASE.replace("gpt2", "./nope.yaml"),
            3,
            12,
            "no model file",
        ),
        (
            "unknown substrate",
            CASE.replace("gemmini", "gemini"),
            4,
            16,
            "unknown substrate `gemini`",
        ),
        ("relative tolerance with a unit", tol("rel: {ttft_s: 2 ms}"), 2, 17, "`rel.ttft_s` is"),
        ("absolute tolerance in the wrong unit", tol("abs: {tpot_s: 1 MB}"), 2, 17, "a time"),
        ("negative tolerance", tol("rel: {all: -1%}"), 2, 14, "at least 0"),
        ("unknown metric", tol("abs: {ttfb_s: 1 ms}"), 2, 9, "`abs.ttfb_s` is not a metric"),
        ("exact metric", tol("rel: {fits_memory: 1%}"), 2, 9, "not a metric"),
        ("abs.all", tol("abs: {all: 1 ms}"), 2, 9, "abs.all"),
        ("bad expression", tol("rel: {all: 2 %%}"), 2, 17, "found `%`"),
        ("empty", String::new(), 1, 1, "the cases file is empty"),
        ("only comments", "# nothing yet\n\n".into(), 1, 1, "the cases file is empty"),
        ("no cases", "digits: 4\n".into(), 1, 1, "defines no cases"),
        ("empty cases", "cases: []\n".into(), 1, 8, "defines no cases"),
        ("zero prompt", format!("{CASE}    prompt: 0\n"), 5, 13, "at least 1"),
        ("batch past its limit", format!("{CASE}    batch: 100000\n"), 5, 12, "65,536"),
        (
            "context past its limit",
            format!("{CASE}    prompt: 16777000\n    gen: 1000\n"),
            6,
            10,
            "context",
        ),
        ("unknown engine", format!("{CASE}    engine: cycle\n"), 5, 13, "unknown engine `cycle`"),
        ("bad precision", format!("{CASE}    precision: int7\n"), 5, 16, "unknown precision `int7`"),
        (
            "bad precision part",
            format!("{CASE}    precision: {{weights: int4, kv: fp8}}\n"),
            5,
            32,
            "unknown precision part `kv`",
        ),
        (
            "duplicate names",
            format!("{CASE}  - name: a\n    model: gpt2\n    substrate: eyeriss\n"),
            5,
            11,
            "two cases are named `a` (first at line 2)",
        ),
        (
            "set on no field",
            format!("{CASE}    set: {{dram.nope: \"8 B/cycle\"}}\n"),
            5,
            22,
            "`dram.nope` is not a field",
        ),
        (
            "set out of range",
            format!("{CASE}    set: {{dram.read: \"8 GHz\"}}\n"),
            5,
            22,
            "substrate `gemmini`: `dram.read`: expected a quantity in bytes per cycle",
        ),
        ("digits", format!("digits: 0\n{CASE}"), 1, 9, "`digits` is 0"),
        (
            "unknown placeholder",
            "matrix:\n  - name: \"{model}-{chip}\"\n    models: [gpt2]\n    substrates: [gemmini]\n".into(),
            2,
            11,
            "unknown placeholder `{chip}`",
        ),
        (
            "empty models",
            "matrix:\n  - models: []\n    substrates: all\n".into(),
            2,
            13,
            "`models` is empty",
        ),
        (
            "unknown model in a matrix",
            "matrix:\n  - models: allx\n    substrates: [gemmini]\n".into(),
            2,
            13,
            "unknown model `allx`",
        ),
        (
            "same default names",
            "matrix:\n  - models: [gpt2]\n    substrates: [gemmini]\n    workloads: [{precision: int8}, {precision: int8, set: {clock: 2 GHz}}]\n"
                .into(),
            2,
            13,
            "two cases are named `gpt2/gemmini/p256-g256-b1-int8/sim`",
        ),
        (
            "named defaults",
            format!("defaults: {{name: x, prompt: 8}}\n{CASE}"),
            1,
            18,
            "`defaults` take no name",
        ),
        (
            "engine in a workload",
            "matrix:\n  - models: gpt2\n    substrates: gemmini\n    workloads: [{engine: sim}]\n".into(),
            4,
            26,
            "a workload takes no engine",
        ),
        ("not a mapping", "- a\n- b\n".into(), 1, 1, ""),
        ("broken yaml", format!("{CASE}    prompt: [1\n"), 5, 13, ""),
    ];
    let mut wrong = Vec::new();
    for (what, src, line, column, needle) in table {
        let errs = errors(&src);
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let hit = errs.iter().find(|e| {
            e.line() == line
                && e.column() == column
                && e.message().contains(needle)
                && e.to_string()
                    .starts_with(&format!("bad.cases.yaml:{line}:{column}: "))
        });
        // every error of a cases file is placed somewhere
        if hit.is_none() || errs.iter().any(|e| e.line() == 0) {
            wrong.push(format!(
                "{what}: expected {line}:{column} `{needle}`, got {all:#?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_model_file_error_is_located_in_that_file() {
    let dir = super::workdir("bad-model");
    std::fs::write(dir.join("m.yaml"), "name: m\nd_model: 64\nvocab: oops\n").unwrap();
    let src = CASE.replace("gpt2", "./m.yaml");
    let errs = match Cases::parse(&SourceFile::new("c.yaml", src), &dir) {
        Err(SnapshotError::Cases(e)) => e.into_vec(),
        other => panic!("{other:?}"),
    };
    assert!(
        errs.iter().any(|e| e.file().ends_with("m.yaml") && e.line() == 3),
        "{errs:?}"
    );
}

#[test]
fn the_binary_reports_a_bad_cases_file_and_exits_1() {
    let dir = super::workdir("bad-cli");
    let path = dir.join("bad.cases.yaml");
    std::fs::write(&path, format!("{CASE}    prompt: 0\n")).unwrap();
    let out = dir.join("never.yaml");
    let o = llmforge(&[
        "snapshot",
        "record",
        "--cases",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.cases.yaml:5:13") || err.contains("bad.cases.yaml:5:13:"),
        "{err}"
    );
    assert!(err.contains("at least 1") && !err.contains("panicked"), "{err}");
    assert!(!out.exists());
    // a corrupt baseline is located too
    let good = super::fixtures().join("small.cases.yaml");
    std::fs::write(
        &out,
        "format: 1\nllmforge_version: x\ninputs: {cases: a}\ncases:\n  a: {model: 3}\n",
    )
    .unwrap();
    let o = super::check_cli(&good, &out, &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("never.yaml:5:"), "{err}");
    std::fs::write(&out, "format: 7\nllmforge_version: x\ninputs: {cases: a}\n").unwrap();
    let o = super::check_cli(&good, &out, &[]);
    let (_, err) = text(&o);
    assert!(
        err.contains("never.yaml:1:9") && err.contains("format 7"),
        "{err}"
    );
}

/// One edit of the text: delete, insert, duplicate or swap.
#[derive(Clone, Debug)]
enum Mangle {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn mangle(text: &str, ops: &[Mangle]) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for op in ops {
        match op {
            Mangle::Delete(at, n) => {
                let at = at % (s.len() + 1);
                let end = (at + n).min(s.len());
                s.drain(at..end);
            }
            Mangle::Insert(at, t) => {
                let at = at % (s.len() + 1);
                s.splice(at..at, t.chars());
            }
            Mangle::DuplicateLine(i) | Mangle::SwapLines(i, _) => {
                let joined: String = s.iter().collect();
                let mut lines: Vec<String> = joined.split('\n').map(str::to_string).collect();
                let a = i % lines.len();
                match op {
                    Mangle::DuplicateLine(_) => {
                        let l = lines[a].clone();
                        lines.insert(a, l);
                    }
                    Mangle::SwapLines(_, j) => {
                        let b = j % lines.len();
                        lines.swap(a, b);
                    }
                    _ => {}
                }
                s = lines.join("\n").chars().collect();
            }
        }
    }
    s.into_iter().collect()
}

fn arb_mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(a, n)| Mangle::Delete(a, n)),
        (
            any::<usize>(),
            prop_oneof![
                Just(":".to_string()),
                Just("- ".to_string()),
                Just("{".to_string()),
                Just("]".to_string()),
                Just("\n  ".to_string()),
                Just("0".to_string()),
                Just("-1".to_string()),
                Just("&a ".to_string()),
                Just("*a".to_string()),
                Just("\"".to_string()),
                Just("all".to_string()),
                Just("1e999".to_string()),
                Just("é".to_string()),
                "[a-z_ .%/{}]{1,6}",
            ]
        )
            .prop_map(|(a, t)| Mangle::Insert(a, t)),
        any::<usize>().prop_map(Mangle::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mangle::SwapLines(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A mangled cases file loads or fails with located errors; it never panics.
    #[test]
    fn mangled_cases_files_never_panic(ops in proptest::collection::vec(arb_mangle(), 1..4)) {
        let base = std::fs::read_to_string(fixtures().join("small.cases.yaml")).unwrap();
        let src = mangle(&base, &ops);
        match Cases::parse(&SourceFile::new("m.cases.yaml", src.clone()), &fixtures()) {
            Ok(cases) => prop_assert!(!cases.cases.is_empty()),
            Err(SnapshotError::Cases(e)) => {
                for err in e.errors() {
                    prop_assert!(err.line() > 0, "unlocated: {err}\n{src}");
                }
            }
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}
