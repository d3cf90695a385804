//! SIGINT and SIGTERM: an interrupted run exits 128 + the signal (130, 143), says so, writes
//! complete outputs for what was done where it can, and leaves no temporary file. Before, SIGINT
//! on a sweep exited 0 and SIGTERM left a partial temporary file and no outputs.

use super::{BIN, SEARCH, assert_ok, llmforge, s, scratch, stderr, temporary_files};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `ready` holds (the run is under way), then sends `signal` and collects the run.
fn interrupt(mut child: Child, signal: i32, ready: impl Fn() -> bool) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be interrupted");
        }
        assert!(Instant::now() < deadline, "the run never got under way");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    child.wait_with_output().unwrap()
}

fn assert_interrupted(out: &Output, code: i32, name: &str) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{text}");
    assert!(
        super::mentions(&text, &format!("interrupted by {name}")),
        "{text}"
    );
}

/// Every line of a CSV has the header's number of fields.
fn assert_complete_csv(path: &Path) -> usize {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{} ends mid-row", path.display());
    let columns = text.lines().next().unwrap().split(',').count();
    assert!(text.lines().all(|l| l.split(',').count() == columns));
    text.lines().count() - 1
}

fn sweep_is_interrupted(signal: i32, code: i32, name: &str) {
    let dir = scratch(&format!("signal-sweep-{code}"));
    let out = dir.join("run");
    let child = super::slow_sweep(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let result = interrupt(child, signal, || super::writing_candidates(&out));
    assert_interrupted(&result, code, name);
    assert_eq!(temporary_files(&out), Vec::<std::path::PathBuf>::new());
    // the chunk in flight was finished and written whole, with the outputs that go with it
    let rows = assert_complete_csv(&out.join("candidates.csv"));
    assert!(rows > 0 && rows < 61_440, "{rows} rows");
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("**Interrupted**"), "{summary}");
    assert_complete_csv(&out.join("frontier.csv"));
    let manifest = fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"status\": \"interrupted\""), "{manifest}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn sigint_on_a_sweep_exits_130_with_complete_outputs_and_no_temporary_file() {
    sweep_is_interrupted(libc::SIGINT, 130, "SIGINT");
}

#[test]
fn sigterm_on_a_sweep_exits_143_with_complete_outputs_and_no_temporary_file() {
    sweep_is_interrupted(libc::SIGTERM, 143, "SIGTERM");
}

fn completed_generations(out: &Path) -> Option<u64> {
    let text = fs::read_to_string(out.join("checkpoint.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["engine"]["completed_batches"].as_u64()
}

/// A search stops after the generation in flight with its checkpoint current, and resuming it
/// reaches the result of a run that never stopped.
fn search_is_interrupted(signal: i32, code: i32, name: &str) {
    let dir = scratch(&format!("signal-search-{code}"));
    let out = dir.join("run");
    let mut args: Vec<&str> = SEARCH.to_vec();
    args.extend(["--generations", "100000", "--out", s(&out)]);
    let child = spawn(&args);
    let result = interrupt(child, signal, || {
        completed_generations(&out).is_some_and(|g| g >= 2)
    });
    assert_interrupted(&result, code, name);
    assert!(
        super::mentions(&stderr(&result), "search --resume"),
        "{}",
        stderr(&result)
    );
    assert_eq!(temporary_files(&out), Vec::<std::path::PathBuf>::new());
    assert!(
        !out.join("pareto.csv").exists(),
        "no results for an unfinished search"
    );
    let manifest = fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"status\": \"interrupted\""), "{manifest}");

    // continue to one generation past the checkpoint, and compare with a straight run
    let done = completed_generations(&out).unwrap();
    let generations = done.to_string();
    assert_ok(&llmforge(&[
        "search",
        "--resume",
        s(&out),
        "--generations",
        &generations,
    ]));
    let straight = dir.join("straight");
    let mut args: Vec<&str> = SEARCH.to_vec();
    args.extend(["--generations", &generations, "--out", s(&straight)]);
    assert_ok(&llmforge(&args));
    for file in ["pareto.csv", "history.csv"] {
        assert_eq!(
            fs::read(out.join(file)).unwrap(),
            fs::read(straight.join(file)).unwrap(),
            "{file}"
        );
    }
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn sigint_on_a_search_exits_130_with_a_current_checkpoint_and_no_temporary_file() {
    search_is_interrupted(libc::SIGINT, 130, "SIGINT");
}

#[test]
fn sigterm_on_a_search_exits_143_with_a_current_checkpoint_and_no_temporary_file() {
    search_is_interrupted(libc::SIGTERM, 143, "SIGTERM");
}

/// A command without a stopping point (here `surrogate fit`) stops at once, exits 143 and
/// writes nothing.
#[test]
fn sigterm_on_a_fit_exits_143_and_writes_nothing() {
    let dir = scratch("signal-fit");
    let model = dir.join("s.json");
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/surrogate/llmforge-iha-200m-train.csv"
    );
    let child = spawn(&[
        "surrogate",
        "fit",
        "--data",
        data,
        "--ensemble",
        "64",
        "--out",
        s(&model),
    ]);
    let started = Instant::now();
    let result = interrupt(child, libc::SIGTERM, || {
        started.elapsed() > Duration::from_millis(300)
    });
    assert_interrupted(&result, 143, "SIGTERM");
    assert!(!model.exists());
    assert_eq!(temporary_files(&dir), Vec::<std::path::PathBuf>::new());
    let _ = fs::remove_dir_all(dir);
}
