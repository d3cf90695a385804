//! Progress of long commands on standard error: plain lines when not on a terminal (here
//! forced every update with LLMFORGE_PROGRESS_SECONDS=0), nothing with `--quiet`, and the
//! results the same either way. The sweep's rate counts candidates, not grid points.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_llmforge");

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env("LLMFORGE_PROGRESS", "lines")
        .env("LLMFORGE_PROGRESS_SECONDS", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn long_commands_report_progress_unless_quiet() {
    let dir = std::env::temp_dir().join(format!("llmforge-progress-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b) = (dir.join("a"), dir.join("b"));
    let sweep = |out: &Path, quiet: bool| {
        let mut args = vec![
            "sweep",
            "--grid",
            "tiny",
            "--substrate",
            "jetson-orin-nano-super",
            "--out",
            out.to_str().unwrap(),
        ];
        if quiet {
            args.insert(0, "--quiet");
        }
        run(&args)
    };
    let loud = sweep(&a, false);
    let text = stderr(&loud);
    // 128 grid points, 96 of them candidates (the rest skipped as invalid)
    assert!(
        text.contains("sweep tiny: 128/128 grid points (100.0%), 96 candidates,"),
        "{text}"
    );
    assert!(text.contains(" candidates/s"), "{text}");
    assert!(text.contains("sweep tiny: ended after"), "{text}");
    let quiet = sweep(&b, true);
    assert_eq!(stderr(&quiet), "", "--quiet prints nothing on stderr");
    for f in ["candidates.csv", "frontier.csv", "summary.md"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }

    // the search, the validation hold-outs and the snapshot recording
    let cases = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/snapshot/small.cases.yaml"
    );
    let snap = dir.join("small.snap.yaml");
    let traces = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validate/sample.csv");
    for (args, expect) in [
        (
            vec!["search", "--problem", "zdt1", "--generations", "3"],
            "search zdt1: 4/4 generations (100.0%), 400 evaluations,",
        ),
        (
            vec!["validate", "--traces", traces, "--holdout", "device"],
            "validate hold-out: 0/",
        ),
        (
            vec![
                "snapshot",
                "record",
                "--cases",
                cases,
                "--out",
                snap.to_str().unwrap(),
            ],
            "snapshot record: 9/9 cases (100.0%)",
        ),
    ] {
        let loud = run(&args);
        assert!(stderr(&loud).contains(expect), "{args:?}: {}", stderr(&loud));
        let mut q = vec!["--quiet"];
        q.extend(&args);
        let quiet = run(&q);
        assert!(
            !stderr(&quiet).contains(expect),
            "{args:?} --quiet: {}",
            stderr(&quiet)
        );
        // stdout is the same, but for the time taken
        let timeless = |o: &Output| -> Vec<String> {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with("wall time"))
                .map(String::from)
                .collect()
        };
        assert_eq!(timeless(&loud), timeless(&quiet), "{args:?}: stdout is the same");
    }
    let _ = std::fs::remove_dir_all(dir);
}
