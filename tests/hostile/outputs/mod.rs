//! Output and concurrency cases of the hostile-input suite: issue 14 (outputs) and the
//! `--resume` part of issue 18. Every file the tool writes goes through `llmforge::output`;
//! one regression test per case the hardening issue found: an output that is an input or
//! another output, non-regular files, reused and concurrently used run directories, temporary
//! files left behind, interrupted runs exiting 0, write errors found at the end, untrusted
//! checkpoints, and `--resume` continuing on another problem.
//!
//! These run the binary, mostly on the `tiny` grid and an 8-member search, so the module takes
//! seconds. The full-disk test mounts a small tmpfs when run as root (CI) and skips with a
//! message otherwise; the same path is exercised without root through RLIMIT_FSIZE.

mod resume;
mod run_dir;
mod signals;
mod targets;
mod write_errors;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_llmforge");
pub const SLOW_GRID: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/outputs/slow-grid.yaml"
);

/// A copy of the shipped jetson-orin-nano-super substrate in `dir` (an input file the test can change).
pub fn copy_substrate(dir: &Path) -> PathBuf {
    let path = dir.join("g.yaml");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/substrates/jetson-orin-nano-super.yaml"
        ),
        &path,
    )
    .unwrap();
    path
}

/// `sweep` of the slow grid into `out` (not started).
pub fn slow_sweep(out: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.args([
        "sweep",
        "--grid",
        SLOW_GRID,
        "--substrate",
        "jetson-orin-nano-super",
        "--out",
        s(out),
    ]);
    command
}

/// Whether a sweep into `out` is writing its candidates.csv (it holds the run's lock then).
pub fn writing_candidates(out: &Path) -> bool {
    temporary_files(out).iter().any(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".candidates.csv.")
    })
}

pub fn llmforge(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("the binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh, empty folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmforge-outputs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every temporary file under `dir` (the output module names them `.<name>.<random>.tmp`).
pub fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".tmp") {
                found.push(path);
            }
        }
    }
    found
}

/// Text without whitespace and miette's frame (`×`, `│`, `╰─▶`), so a message can be found
/// however the report was wrapped (at 80 columns, sometimes inside a long path).
pub fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '×' | '│' | '╰' | '─' | '▶'))
        .collect()
}

/// Whether a (wrapped) report contains `needle`.
pub fn mentions(text: &str, needle: &str) -> bool {
    squash(text).contains(&squash(needle))
}

/// Asserts that a run failed (non-zero, not killed) and that its message contains `needle`.
#[track_caller]
pub fn assert_refused(out: &Output, needle: &str) {
    let text = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal, got {:?}: {text}",
        out.status
    );
    assert!(mentions(&text, needle), "expected `{needle}` in:\n{text}");
}

#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(out));
}

/// The flags of a small architecture search (8 members, 16 offspring, roofline engine).
pub const SEARCH: [&str; 13] = [
    "search",
    "--space",
    "smollm2-135m-seeded",
    "--substrate",
    "gemmini",
    "--engine",
    "roofline",
    "--constraint",
    "loss<=3.9",
    "--population",
    "8",
    "--offspring",
    "16",
];

/// `SEARCH` plus `extra`.
pub fn search(extra: &[&str]) -> Output {
    let mut args: Vec<&str> = SEARCH.to_vec();
    args.extend_from_slice(extra);
    llmforge(&args)
}
