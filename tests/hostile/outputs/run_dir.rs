//! Run directories (`sweep --out`, `search --out`): manifest, lock, reuse only with `--force`.

use super::{BIN, SLOW_GRID, assert_ok, assert_refused, llmforge, s, scratch, search, temporary_files};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn tiny_sweep(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "sweep",
        "--grid",
        "tiny",
        "--substrate",
        "jetson-orin-nano-super",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    llmforge(&args)
}

#[test]
fn a_sweep_records_a_manifest_of_command_settings_inputs_and_version() {
    let dir = scratch("manifest");
    let substrate = super::copy_substrate(&dir);
    let out = dir.join("run");
    assert_ok(&llmforge(&[
        "sweep",
        "--grid",
        "tiny",
        "--substrate",
        s(&substrate),
        "--budget",
        "tpot<=20ms",
        "--out",
        s(&out),
    ]));
    let m = manifest(&out);
    assert_eq!(m["llmforge"], llmforge::provenance::VERSION);
    assert_eq!(m["status"], "complete");
    assert_eq!(m["command"][0], "sweep");
    assert_eq!(m["settings"]["budgets"], serde_json::json!(["tpot<=20ms"]));
    assert_eq!(m["settings"]["prompt"], 1024, "defaults are recorded");
    let inputs = m["inputs"].as_array().unwrap();
    let by_flag = |flag: &str| inputs.iter().find(|i| i["flag"] == flag).unwrap().clone();
    assert_eq!(by_flag("--grid")["shipped"], true);
    assert_eq!(
        by_flag("--substrate")["sha256"],
        llmforge::provenance::sha256_file(&substrate).unwrap()
    );
    let outputs: Vec<&str> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(
        outputs[..5],
        [
            "candidates.csv",
            "frontier.csv",
            "frontier.svg",
            "region.svg",
            "summary.md"
        ]
    );
    // then the frontier's model files, one per frontier row
    assert!(outputs.len() > 5);
    assert!(
        outputs[5..]
            .iter()
            .all(|o| o.starts_with("models/frontier-") && o.ends_with(".yaml"))
    );
    for name in outputs {
        assert!(out.join(name).is_file(), "{name}");
    }
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_second_sweep_into_a_used_out_is_refused_unless_forced() {
    let dir = scratch("reuse-sweep");
    let out = dir.join("run");
    assert_ok(&tiny_sweep(&out, &[]));
    let before = fs::read(out.join("candidates.csv")).unwrap();
    let again = tiny_sweep(&out, &["--precision", "int8"]);
    assert_refused(&again, "holds the outputs of an earlier run");
    assert_refused(&again, "--force");
    assert_eq!(
        fs::read(out.join("candidates.csv")).unwrap(),
        before,
        "left as it was"
    );
    assert_ok(&tiny_sweep(&out, &["--precision", "int8", "--force"]));
    let after = fs::read_to_string(out.join("candidates.csv")).unwrap();
    assert!(after.lines().skip(1).all(|l| l.contains(",int8,")), "{after}");
    assert_eq!(
        manifest(&out)["settings"]["precision"],
        serde_json::json!(["int8"])
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn force_clears_stale_pareto_models_of_the_earlier_run() {
    let dir = scratch("force-search");
    let out = dir.join("run");
    assert_ok(&search(&["--generations", "1", "--out", s(&out)]));
    let models = out.join("models");
    let written = fs::read_dir(&models).unwrap().count();
    assert!(written >= 1);
    // an earlier, larger front left more models than the new one writes
    fs::write(models.join("pareto-57.yaml"), "stale").unwrap();
    assert_refused(
        &search(&["--generations", "1", "--out", s(&out)]),
        "or --resume to continue that run",
    );
    assert_ok(&search(&["--generations", "1", "--out", s(&out), "--force"]));
    assert!(!models.join("pareto-57.yaml").exists(), "stale model kept");
    let listed: Vec<String> = manifest(&out)["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.as_str().filter(|o| o.starts_with("models/")).map(String::from))
        .collect();
    let mut on_disk: Vec<String> = fs::read_dir(&models)
        .unwrap()
        .map(|e| format!("models/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    on_disk.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(listed_sorted, on_disk);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_benchmark_search_into_a_used_out_is_refused_unless_forced() {
    let dir = scratch("reuse-problem");
    let out = dir.join("run");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "search",
            "--problem",
            "zdt1",
            "--population",
            "8",
            "--generations",
            "2",
        ];
        args.extend_from_slice(extra);
        llmforge(&args)
    };
    assert_ok(&run(&["--out", s(&out)]));
    assert_refused(&run(&["--out", s(&out)]), "pareto.csv");
    assert_ok(&run(&["--out", s(&out), "--force"]));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_run_directory_file_that_is_a_symbolic_link_is_refused() {
    let dir = scratch("rundir-link");
    let out = dir.join("run");
    fs::create_dir_all(&out).unwrap();
    let precious = dir.join("precious.md");
    fs::write(&precious, "keep").unwrap();
    std::os::unix::fs::symlink(&precious, out.join("summary.md")).unwrap();
    assert_refused(&tiny_sweep(&out, &["--force"]), "is a symbolic link");
    assert_eq!(fs::read_to_string(&precious).unwrap(), "keep");
    assert!(
        fs::symlink_metadata(out.join("summary.md"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let _ = fs::remove_dir_all(dir);
}

/// Two sweeps into one `--out` used to share the temporary name `.candidates.csv.tmp`: one
/// exited 0 with a truncated row and duplicated indices, the other failed without a path.
#[test]
fn two_concurrent_sweeps_into_one_dir_one_fails_fast_the_other_completes() {
    let dir = scratch("concurrent");
    let out = dir.join("run");
    let sweep = || {
        Command::new(BIN)
            .args([
                "sweep",
                "--grid",
                SLOW_GRID,
                "--substrate",
                "jetson-orin-nano-super",
                "--shard",
                "0/8",
            ])
            .args(["--out", s(&out)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = sweep();
    // the first sweep holds the lock once its candidates.csv is being written
    let deadline = Instant::now() + Duration::from_secs(60);
    while !super::writing_candidates(&out) {
        assert!(Instant::now() < deadline, "the first sweep never started writing");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first sweep ended before the second started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = sweep().wait_with_output().unwrap();
    let first_running = first.try_wait().unwrap().is_none();
    let first = first.wait_with_output().unwrap();
    assert_ok(&first);
    assert_refused(&second, "another llmforge run is writing into");
    assert!(
        first_running,
        "the second sweep waited for the first instead of failing at once"
    );
    let csv = fs::read_to_string(out.join("candidates.csv")).unwrap();
    let indices: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        indices,
        (0..7680).collect::<Vec<u64>>(),
        "every candidate once, in order"
    );
    let columns = csv.lines().next().unwrap().split(',').count();
    assert!(csv.lines().all(|l| l.split(',').count() == columns), "a torn row");
    assert_eq!(temporary_files(&out), Vec::<std::path::PathBuf>::new());
    let _ = fs::remove_dir_all(dir);
}
