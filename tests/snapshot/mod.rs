//! Cost-regression snapshots: `snapshot record|check` on a small cases file (a changed
//! substrate moves exactly its cases; tolerances; `--update`; added and removed cases;
//! byte-identical records across runs and thread counts), located errors for bad cases
//! files (and a proptest that mangles one), the project's own whole-model cost snapshot,
//! and the version / engine / precision every `--format json` output carries.

mod bad;
mod json;

use llmforge::snapshot::{self, Cases, Snapshot};
use llmforge::trace;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshot")
}

/// A fresh copy of the small fixture (cases file and `chip.yaml`) in its own folder.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmforge-snapshot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["small.cases.yaml", "chip.yaml"] {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    dir
}

fn llmforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmforge"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Replaces `from` by `to` in a file (exactly once).
fn edit(path: &Path, from: &str, to: &str) {
    let t = std::fs::read_to_string(path).unwrap();
    assert_eq!(t.matches(from).count(), 1, "{from} in {}", path.display());
    std::fs::write(path, t.replace(from, to)).unwrap();
}

fn record(dir: &Path) -> PathBuf {
    let out = dir.join("baseline.snap.yaml");
    let cases = dir.join("small.cases.yaml");
    let o = llmforge(&[
        "snapshot",
        "record",
        "--cases",
        cases.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    out
}

/// `snapshot check` of a cases file against a baseline, with extra arguments.
fn check_cli(cases: &Path, baseline: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "snapshot",
        "check",
        "--cases",
        cases.to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    llmforge(&args)
}

/// `snapshot check --format json` of the work folder's cases: exit code and the report.
fn check(dir: &Path, baseline: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let o = check_cli(&dir.join("small.cases.yaml"), baseline, &args);
    let (out, err) = text(&o);
    assert!(!err.contains("panicked"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (o.status.code(), v)
}

/// The names of the cases the report has rows for.
fn moved(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["case"].as_str().unwrap().to_string())
        .collect()
}

const CHIP_CASES: [&str; 4] = [
    "smollm2-135m/chip/long/roofline",
    "smollm2-135m/chip/long/sim",
    "smollm2-135m/chip/p32-g8-b1-int8/roofline",
    "smollm2-135m/chip/p32-g8-b1-int8/sim",
];

#[test]
fn a_changed_substrate_value_moves_exactly_the_cases_that_use_it() {
    let dir = workdir("moved");
    let baseline = record(&dir);
    let (code, v) = check(&dir, &baseline, &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["rows"].as_array().unwrap().len(), 0);
    assert_eq!(v["compared"], 9);

    // DRAM energy per byte +25% on the copied substrate only
    edit(
        &dir.join("chip.yaml"),
        "dram_byte: \"64 pJ/B\"",
        "dram_byte: \"80 pJ/B\"",
    );
    let (code, v) = check(&dir, &baseline, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["passes"], false);
    assert_eq!(moved(&v), CHIP_CASES.iter().map(|s| s.to_string()).collect());
    let rows = v["rows"].as_array().unwrap();
    for case in CHIP_CASES {
        let outside: Vec<&str> = rows
            .iter()
            .filter(|r| r["case"] == case && r["outside"] == true)
            .map(|r| r["metric"].as_str().unwrap())
            .collect();
        assert!(outside.contains(&"decode_energy_j"), "{case}: {outside:?}");
        // only energies move: times, bytes and the op mix are untouched
        assert!(
            outside.iter().all(|m| m.contains("energy")),
            "{case}: {outside:?}"
        );
    }
    for r in rows {
        assert!(r["old"].as_f64().is_some() && r["new"].as_f64().is_some(), "{r}");
        assert!(
            r["engine"].is_string() && r["precision"]["weights"].is_string(),
            "{r}"
        );
    }
    // the changed input is named, and nothing else
    let changed = v["changed_inputs"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["input"], "substrate ./chip.yaml");
    assert_eq!(v["llmforge_version"], llmforge::provenance::VERSION);

    // the text report: a table with those rows, and exit 1 with a reason
    let cases = dir.join("small.cases.yaml");
    let o = check_cli(&cases, &baseline, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    for col in ["case", "metric", "old", "new", "change", "tolerance"] {
        assert!(out.lines().any(|l| l.contains(col)), "{col}: {out}");
    }
    assert!(out.contains("substrate ./chip.yaml"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("smollm2-135m/chip/long/sim")
            && l.contains("decode_energy_j")
            && l.ends_with("OUTSIDE")),
        "{out}"
    );
    assert!(
        err.contains("cost snapshot check failed") && err.contains("4 of 9 cases moved"),
        "{err}"
    );
    // markdown, for a pull request
    let o = check_cli(&cases, &baseline, &["--format", "markdown"]);
    let (md, _) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(md.starts_with("### llmforge cost snapshot: FAILS"), "{md}");
    assert!(
        md.contains("| case | metric | old | new | change | tolerance |"),
        "{md}"
    );
    assert!(
        md.contains("**outside**") && md.contains("`substrate ./chip.yaml`"),
        "{md}"
    );
}

#[test]
fn changes_within_tolerance_pass_and_tol_overrides_the_file() {
    let dir = workdir("within");
    let baseline = record(&dir);
    // +0.16% DRAM energy per byte: energies move by less than the file's 1%
    edit(
        &dir.join("chip.yaml"),
        "dram_byte: \"64 pJ/B\"",
        "dram_byte: \"64.1 pJ/B\"",
    );
    let (code, v) = check(&dir, &baseline, &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["passes"], true);
    assert!(
        !v["rows"].as_array().unwrap().is_empty(),
        "the rounded energies moved"
    );
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outside"] == false)
    );
    // +25%: outside the file's 1%, within --tol 50%, outside --tol 0.1%
    edit(
        &dir.join("chip.yaml"),
        "dram_byte: \"64.1 pJ/B\"",
        "dram_byte: \"80 pJ/B\"",
    );
    assert_eq!(check(&dir, &baseline, &[]).0, Some(1));
    assert_eq!(check(&dir, &baseline, &["--tol", "50%"]).0, Some(0));
    let (code, v) = check(&dir, &baseline, &["--tol", "0.5"]);
    assert_eq!(code, Some(0), "{v:#}");
    let o = check_cli(&dir.join("small.cases.yaml"), &baseline, &["--tol", "2 ms"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("--tol `2 ms`"), "{}", text(&o).1);
}

#[test]
fn update_rewrites_the_baseline_and_check_then_passes() {
    let dir = workdir("update");
    let baseline = record(&dir);
    edit(&dir.join("chip.yaml"), "clock: \"1 GHz\"", "clock: \"1.2 GHz\"");
    let (code, v) = check(&dir, &baseline, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(moved(&v).len(), 4);
    let (code, _) = check(&dir, &baseline, &["--update"]);
    assert_eq!(code, Some(0));
    let (code, v) = check(&dir, &baseline, &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["rows"].as_array().unwrap().len(), 0);
    assert_eq!(v["changed_inputs"].as_array().unwrap().len(), 0);
    // no temporary file is left next to the baseline
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn added_and_removed_cases_are_reported_and_fail_until_updated() {
    let dir = workdir("added");
    let baseline = record(&dir);
    let cases = dir.join("small.cases.yaml");
    edit(&cases, "name: gemmini-int8", "name: gemmini-int8-renamed");
    let (code, v) = check(&dir, &baseline, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["new_cases"], serde_json::json!(["gemmini-int8-renamed"]));
    assert_eq!(v["removed_cases"], serde_json::json!(["gemmini-int8"]));
    assert_eq!(v["outside"], 0);
    assert_eq!(v["changed_inputs"][0]["input"], "cases file");
    // the text report lists both
    let o = check_cli(&cases, &baseline, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out.contains("new cases (not in the baseline): 1\n  gemmini-int8-renamed"),
        "{out}"
    );
    assert!(
        out.contains("removed cases") && out.contains("\n  gemmini-int8\n"),
        "{out}"
    );
    assert!(err.contains("1 new, 1 removed"), "{err}");
    // a case only removed (a workload dropped from the matrix) is reported too
    assert_eq!(check(&dir, &baseline, &["--update"]).0, Some(0));
    edit(&cases, "engines: [sim, roofline]", "engines: [sim]");
    let (code, v) = check(&dir, &baseline, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(v["removed_cases"].as_array().unwrap().len(), 4);
    assert_eq!(v["new_cases"].as_array().unwrap().len(), 0);
    assert_eq!(check(&dir, &baseline, &["--update"]).0, Some(0));
    assert_eq!(check(&dir, &baseline, &[]).0, Some(0));
}

#[test]
fn records_are_byte_identical_across_runs_and_thread_counts() {
    let cases = Cases::load(&fixtures().join("small.cases.yaml")).unwrap();
    let in_pool = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| trace::snapshot::yaml(&snapshot::record(&cases)))
    };
    let one = in_pool(1);
    assert_eq!(one, in_pool(2));
    assert_eq!(one, in_pool(3));
    // the file reads back to the same snapshot
    let file = llmforge::yaml::SourceFile::new("s.yaml", one.clone());
    let back = Snapshot::parse(&file).unwrap();
    assert_eq!(back, snapshot::record(&cases));
    assert_eq!(trace::snapshot::yaml(&back), one);

    // the binary, one and two threads, writes the same bytes as the library
    let dir = workdir("threads");
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.join(format!("t{threads}.yaml"));
        let o = Command::new(env!("CARGO_BIN_EXE_llmforge"))
            .env("RAYON_NUM_THREADS", threads)
            .args(["snapshot", "record", "--cases"])
            .arg(dir.join("small.cases.yaml"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
        outs.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(outs[0], outs[1]);
    // the copy has the same cases file and chip, so its record is the library's byte for byte
    assert_eq!(String::from_utf8(outs[0].clone()).unwrap(), one);
}

/// A snapshot far past serde-saphyr's default budget of 250,000 values (6,000 cases, about
/// 290,000 values) reads back equal.
#[test]
fn large_snapshots_read_back() {
    let cases = Cases::load(&fixtures().join("small.cases.yaml")).unwrap();
    let mut snap = snapshot::record(&cases);
    let one = snap.cases.values().next().unwrap().clone();
    snap.cases = (0..6000).map(|i| (format!("case-{i:05}"), one.clone())).collect();
    let text = trace::snapshot::yaml(&snap);
    let back = Snapshot::parse(&llmforge::yaml::SourceFile::new("big.yaml", text)).unwrap();
    assert_eq!(back, snap);
}

/// The project's own whole-model cost snapshot: every shipped model on every shipped
/// substrate, P = D = 256, batch 1, both engines, compared exactly (at 4 significant digits)
/// through the code path of `llmforge snapshot check`. After a reviewed cost change:
/// `cargo run --release -- snapshot check --cases tests/fixtures/snapshot/costs.cases.yaml
/// --baseline tests/fixtures/snapshot/costs.snap.yaml --update`.
#[test]
fn the_projects_whole_model_costs_match_their_snapshot() {
    let cases = Cases::load(&fixtures().join("costs.cases.yaml")).unwrap();
    let baseline_path = fixtures().join("costs.snap.yaml");
    let baseline = Snapshot::read(&baseline_path).unwrap();
    let current = snapshot::record(&cases);
    let report = snapshot::compare(&cases, &baseline, &current);
    if !report.passes(false) {
        let text = trace::snapshot::report_text(&report, &baseline_path.display().to_string());
        let shown: String = text.lines().take(120).collect::<Vec<_>>().join("\n");
        panic!(
            "{shown}\n\nThe whole-model costs moved. Review the rows above (they are cost \
             regressions or intended changes); to accept them, re-record with\n  cargo run \
             --release -- snapshot check --cases tests/fixtures/snapshot/costs.cases.yaml \
             --baseline tests/fixtures/snapshot/costs.snap.yaml --update"
        );
    }
    assert_eq!(
        report.compared,
        llmforge::model::presets::names().count() * llmforge::substrate::names().count() * 2
    );
}
