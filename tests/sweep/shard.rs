//! Sharded sweeps (`sweep --shard`) put back together by `sweep merge`: byte-identical to the
//! unsharded run for N in {1, 2, 3, 7} and for more shards than grid points; shards of other
//! sweeps, missing, overlapping, unfinished or edited shards refused with the shards named;
//! `--shard auto` from the Slurm and Kubernetes environments. The combining itself is also
//! checked in-process against one run over random partitions of a grid.

use llmforge::quality::ChinchillaPrior;
use llmforge::sim::{Engine, Workload};
use llmforge::sweep::budget::{Budget, Metric};
use llmforge::sweep::grid;
use llmforge::sweep::run::{Axis, SweepSpec, sweep};
use llmforge::sweep::shard::{State, combine};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;

const BIN: &str = env!("CARGO_BIN_EXE_llmforge");
const FIVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sweep/five.yaml");

/// Every file a sweep writes besides the manifest (the plots are deterministic too).
const FILES: [&str; 6] = [
    "candidates.csv",
    "frontier.csv",
    "summary.md",
    "frontier.svg",
    "region.svg",
    "outcome.json",
];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmforge-shard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    for name in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_MAX",
        "SLURM_ARRAY_TASK_STEP",
        "JOB_COMPLETION_INDEX",
        "LLMFORGE_SHARD_INDEX",
        "LLMFORGE_SHARD_COUNT",
    ] {
        c.env_remove(name);
    }
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn refused(out: &Output, parts: &[&str]) -> String {
    assert!(!out.status.success(), "expected a refusal, got success");
    // messages are wrapped at 80 columns behind a `│` margin: compare with the wrapping undone
    let text = String::from_utf8_lossy(&out.stderr).replace('│', " ");
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // a line may also break after a hyphen or inside a path: compare without whitespace too
    let squeezed: String = text.split_whitespace().collect();
    for p in parts {
        let part: String = p.split_whitespace().collect();
        assert!(
            text.contains(p) || squeezed.contains(&part),
            "`{p}` not in: {text}"
        );
    }
    text
}

/// A sweep of `grid` into `out` with the given extra flags (budgets, a reference, a shard).
fn sweep_cmd<'a>(grid: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sweep",
        "--grid",
        grid,
        "--substrate",
        "jetson-orin-nano-super",
        "--budget",
        "tpot<=40ms",
        "--budget",
        "weights+kv<=30MB",
        "--reference",
        "smollm2-135m",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    args
}

fn assert_same_dirs(a: &Path, b: &Path) {
    for f in FILES {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between {} and {}", a.display(), b.display());
    }
    let models = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d.join("models"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(models(a), models(b), "models/ differ");
}

/// Shards `0..n` of `grid` into `dir/n-<i>`, then merged (in reverse order) into `dir/n`.
fn shard_and_merge(grid: &str, dir: &Path, n: usize) -> PathBuf {
    let mut shards = Vec::new();
    for i in 0..n {
        let out = dir.join(format!("{n}-{i}"));
        let label = format!("{i}/{n}");
        let mut args = sweep_cmd(grid, &out, &["--shard", &label]);
        if i == 0 {
            // a global flag before the subcommand: the manifest's command still reads as a sweep
            args.insert(0, "--quiet");
        }
        ok(run(&args, &[]));
        shards.push(out);
    }
    let merged = dir.join(format!("{n}"));
    let mut args = vec!["sweep", "merge"];
    args.extend(shards.iter().rev().map(|p| s(p)));
    args.extend(["--out", s(&merged)]);
    let out = ok(run(&args, &[]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("merged {n} shards")));
    merged
}

#[test]
fn merged_shards_equal_the_unsharded_run_byte_for_byte() {
    let dir = scratch("equal");
    let full = dir.join("full");
    ok(run(&sweep_cmd("tiny", &full, &[]), &[]));
    let summary = std::fs::read_to_string(full.join("summary.md")).unwrap();
    // the budgets' table and the reference line are exercised
    assert!(summary.contains("| `tpot<=40ms` |"), "{summary}");
    assert!(summary.contains("Reference `smollm2-135m`"), "{summary}");
    for n in [1, 2, 3, 7] {
        let merged = shard_and_merge("tiny", &dir, n);
        assert_same_dirs(&full, &merged);
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(merged.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["status"], "complete");
        assert_eq!(m["merged_from"].as_array().unwrap().len(), n);
        assert!(m.get("shard").is_none(), "a merge of the whole grid is no shard");
        assert_eq!(m["settings"]["shard"], serde_json::Value::Null);
    }
    // a shard's manifest records its part of the grid
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("3-1/manifest.json")).unwrap()).unwrap();
    assert_eq!(
        m["shard"],
        serde_json::json!({"index": 1, "count": 3, "indices": [42, 85], "grid_points": 128})
    );
    assert_eq!(m["settings"]["shard"], "1/3");
    // merging merges: (0/3 + 1/3) with --partial, then with 2/3; without --partial the
    // missing third is refused
    let part = dir.join("part");
    refused(
        &run(
            &[
                "sweep",
                "merge",
                s(&dir.join("3-1")),
                s(&dir.join("3-0")),
                "--out",
                s(&part),
            ],
            &[],
        ),
        &["grid indices 85..128 of 128 are missing", "--partial"],
    );
    ok(run(
        &[
            "sweep",
            "merge",
            "--partial",
            s(&dir.join("3-1")),
            s(&dir.join("3-0")),
            "--out",
            s(&part),
        ],
        &[],
    ));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(part.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["shard"]["indices"], serde_json::json!([0, 85]));
    let whole = dir.join("whole");
    ok(run(
        &[
            "sweep",
            "merge",
            s(&part),
            s(&dir.join("3-2")),
            "--out",
            s(&whole),
        ],
        &[],
    ));
    assert_same_dirs(&full, &whole);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn more_shards_than_grid_points_leave_empty_shards_and_still_merge() {
    let dir = scratch("sparse");
    let full = dir.join("full");
    ok(run(&sweep_cmd(FIVE, &full, &[]), &[]));
    let merged = shard_and_merge(FIVE, &dir, 8);
    assert_same_dirs(&full, &merged);
    // shard 0/8 of 5 points is empty
    let empty = std::fs::read_to_string(dir.join("8-0/candidates.csv")).unwrap();
    assert_eq!(empty.lines().count(), 1, "{empty}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn feasible_only_candidates_merge_too() {
    let dir = scratch("feasible");
    let full = dir.join("full");
    ok(run(&sweep_cmd("tiny", &full, &["--candidates", "feasible"]), &[]));
    let mut shards = Vec::new();
    for i in 0..2 {
        let out = dir.join(format!("s{i}"));
        let label = format!("{i}/2");
        ok(run(
            &sweep_cmd("tiny", &out, &["--candidates", "feasible", "--shard", &label]),
            &[],
        ));
        shards.push(out);
    }
    let merged = dir.join("m");
    ok(run(
        &[
            "sweep",
            "merge",
            s(&shards[0]),
            s(&shards[1]),
            "--out",
            s(&merged),
        ],
        &[],
    ));
    assert_same_dirs(&full, &merged);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn shards_of_other_sweeps_missing_overlapping_or_unfinished_shards_are_refused() {
    let dir = scratch("refuse");
    let shard = |name: &str, label: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = sweep_cmd("tiny", &out, &["--shard", label]);
        args.extend_from_slice(extra);
        ok(run(&args, &[]));
        out
    };
    let a = shard("a", "0/2", &[]);
    let b = shard("b", "1/2", &[]);
    let merge = |dirs: &[&Path]| {
        let out = dir.join("merged");
        let _ = std::fs::remove_dir_all(&out);
        let mut args = vec!["sweep", "merge"];
        args.extend(dirs.iter().map(|d| s(d)));
        args.extend(["--out", s(&out)]);
        run(&args, &[])
    };
    ok(merge(&[&a, &b]));

    // missing: the second half
    refused(&merge(&[&a]), &["grid indices 64..128 of 128 are missing", "a`"]);
    // missing in the middle
    let q0 = shard("q0", "0/4", &[]);
    let q3 = shard("q3", "3/4", &[]);
    refused(
        &merge(&[&q3, &q0]),
        &[
            "grid indices 32..96 of 128 are missing",
            "q0` ends at 32",
            "q3` starts at 96",
        ],
    );
    // overlapping: a (0..64) and the first third (0..42); the same shard twice
    let t0 = shard("t0", "0/3", &[]);
    refused(&merge(&[&a, &t0, &b]), &["shards overlap", "0..64", "0..42"]);
    refused(&merge(&[&a, &b, &b]), &["shards overlap", "64..128"]);
    // another substrate, other settings
    let other_substrate = dir.join("c");
    let mut args = sweep_cmd("tiny", &other_substrate, &["--shard", "1/2"]);
    args[4] = "jetson-agx-orin-64gb";
    ok(run(&args, &[]));
    refused(
        &merge(&[&a, &other_substrate]),
        &[
            "not parts of one sweep",
            "setting `substrate`",
            "\"jetson-orin-nano-super\"",
            "\"jetson-agx-orin-64gb\"",
            "input --substrate",
        ],
    );
    let other_workload = shard("d", "1/2", &["--prompt", "512"]);
    refused(
        &merge(&[&a, &other_workload]),
        &[
            "setting `prompt`",
            "has 1024",
            "has 512",
            "shard 1/2, grid indices 64..128",
        ],
    );
    // another grid (five points): both the setting and the grid's size differ
    let five = dir.join("five");
    ok(run(&sweep_cmd(FIVE, &five, &["--shard", "1/2"]), &[]));
    refused(&merge(&[&a, &five]), &["setting `grid`"]);
    // another llmforge version (the manifest edited)
    let old = dir.join("old");
    copy_dir(&b, &old);
    edit(
        &old.join("manifest.json"),
        "\"llmforge\": \"0.1.0\"",
        "\"llmforge\": \"0.0.9\"",
    );
    refused(&merge(&[&a, &old]), &["llmforge version", "0.0.9"]);
    // interrupted or still running
    let stopped = dir.join("stopped");
    copy_dir(&b, &stopped);
    edit(
        &stopped.join("manifest.json"),
        "\"status\": \"complete\"",
        "\"status\": \"interrupted\"",
    );
    refused(
        &merge(&[&a, &stopped]),
        &["stopped` was interrupted", "run that shard again"],
    );
    // candidates.csv cut short
    let cut = dir.join("cut");
    copy_dir(&b, &cut);
    let text = std::fs::read_to_string(cut.join("candidates.csv")).unwrap();
    let keep: Vec<&str> = text.lines().take(10).collect();
    std::fs::write(cut.join("candidates.csv"), keep.join("\n") + "\n").unwrap();
    refused(&merge(&[&a, &cut]), &["9 candidate rows, but", "recorded 48"]);
    // an outcome.json whose frontier was edited: the spot check disagrees
    let edited = dir.join("edited");
    copy_dir(&b, &edited);
    let state = std::fs::read_to_string(edited.join("outcome.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&state).unwrap();
    // the frontier is recorded in packed columns (the little-endian bytes in base64)
    let mut loss = llmforge::packed::decode::<f64>(v["frontier"]["loss"].as_str().unwrap()).unwrap();
    loss[0] *= 0.5;
    v["frontier"]["loss"] = serde_json::json!(llmforge::packed::encode(&loss));
    std::fs::write(
        edited.join("outcome.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    refused(&merge(&[&a, &edited]), &["edited`: grid index", "the loss"]);
    // its columns of unequal lengths, or a state of another format
    v["frontier"]["loss"] = serde_json::json!(llmforge::packed::encode(&loss[1..]));
    std::fs::write(edited.join("outcome.json"), v.to_string()).unwrap();
    refused(
        &merge(&[&a, &edited]),
        &["frontier: column `loss` has", "`index` has"],
    );
    v["format"] = serde_json::json!(2);
    v["frontier"] = serde_json::json!([]);
    std::fs::write(edited.join("outcome.json"), v.to_string()).unwrap();
    refused(
        &merge(&[&a, &edited]),
        &["edited`: its outcome.json has format 2, this llmforge reads format 3"],
    );
    // not a sweep directory at all
    refused(
        &merge(&[&a, &dir.join("nothing")]),
        &["nothing` is not a sweep's run directory"],
    );
    // the merged directory is a run directory like any other: used, it is refused
    let out = dir.join("merged2");
    ok(run(&["sweep", "merge", s(&a), s(&b), "--out", s(&out)], &[]));
    refused(
        &run(&["sweep", "merge", s(&a), s(&b), "--out", s(&out)], &[]),
        &["holds the outputs of an earlier run"],
    );
    ok(run(
        &["sweep", "merge", s(&a), s(&b), "--out", s(&out), "--force"],
        &[],
    ));
    // writing into a shard is refused (its files are the merge's inputs)
    refused(
        &run(&["sweep", "merge", s(&a), s(&b), "--out", s(&a), "--force"], &[]),
        &["is the input"],
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("models")).unwrap();
    for e in walk(from) {
        let rel = e.strip_prefix(from).unwrap();
        std::fs::copy(&e, to.join(rel)).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn shard_auto_takes_the_index_from_slurm_and_kubernetes() {
    let dir = scratch("auto");
    let explicit = dir.join("explicit");
    ok(run(&sweep_cmd("tiny", &explicit, &["--shard", "2/4"]), &[]));
    let slurm = dir.join("slurm");
    ok(run(
        &sweep_cmd("tiny", &slurm, &["--shard", "auto"]),
        &[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")],
    ));
    let k8s = dir.join("k8s");
    ok(run(
        &sweep_cmd("tiny", &k8s, &["--shard", "auto"]),
        &[("JOB_COMPLETION_INDEX", "2"), ("LLMFORGE_SHARD_COUNT", "4")],
    ));
    for d in [&slurm, &k8s] {
        // a shard writes what the merge needs: no plots, summary or frontier of its part
        assert!(!d.join("summary.md").exists() && !d.join("frontier.svg").exists());
        for f in ["candidates.csv", "outcome.json"] {
            assert_eq!(
                std::fs::read(explicit.join(f)).unwrap(),
                std::fs::read(d.join(f)).unwrap(),
                "{f}"
            );
        }
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(slurm.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["shard"]["from"], "SLURM_ARRAY_TASK_ID=2, 4 array tasks");
    assert_eq!(m["settings"]["shard"], "2/4");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(k8s.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["shard"]["from"], "JOB_COMPLETION_INDEX=2");
    // no environment, or an index without a count
    let none = dir.join("none");
    refused(
        &run(&sweep_cmd("tiny", &none, &["--shard", "auto"]), &[]),
        &[
            "SLURM_ARRAY_TASK_ID",
            "JOB_COMPLETION_INDEX",
            "LLMFORGE_SHARD_INDEX",
        ],
    );
    refused(
        &run(
            &sweep_cmd("tiny", &none, &["--shard", "auto"]),
            &[("JOB_COMPLETION_INDEX", "1")],
        ),
        &["--shard auto/N"],
    );
    assert!(!none.join("manifest.json").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(dir);
}

fn tiny_state(range: std::ops::Range<u64>) -> State {
    let g = grid::load("tiny").unwrap();
    let sub = llmforge::substrate::load("jetson-agx-orin-64gb", &[]).unwrap();
    let budgets = vec![
        Budget::parse("tpot<=1ms").unwrap(),
        Budget::parse("weights+kv<=20MB").unwrap(),
    ];
    let loss = ChinchillaPrior {
        tokens_per_param: 20.0,
    };
    let spec = SweepSpec {
        grid: &g,
        substrate: &sub,
        workload: Workload::new(128, 16, 1).unwrap(),
        engine: Engine::Roofline,
        both_engines: false,
        loss: &loss,
        budgets: &budgets,
        x: Metric::Tpot,
        region: (Axis::Depth, Axis::Width),
    };
    let out = sweep(&spec, range.clone(), 16, &AtomicBool::new(false), |_, _| {});
    let state = State::of(&out, range, g.len());
    // outcome.json reads back to the same state, exactly (packed columns)
    assert_eq!(serde_json::from_str::<State>(&state.to_json()).unwrap(), state);
    // a state restores to an outcome with the same state
    assert_eq!(
        State::of(&state.restore(&spec, "x").unwrap(), state.range(), g.len()),
        state
    );
    state
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Any partition of the grid into contiguous shards, given in any order, combines into the
    /// state of one run over the grid.
    #[test]
    fn any_partition_combines_into_the_whole(cuts in proptest::collection::vec(0u64..=128, 0..8), rotate in 0usize..8) {
        let mut cuts = cuts;
        cuts.extend([0, 128]);
        cuts.sort();
        let mut parts: Vec<(String, State)> = cuts
            .windows(2)
            .map(|w| (format!("{}..{}", w[0], w[1]), tiny_state(w[0]..w[1])))
            .collect();
        let k = rotate % parts.len();
        parts.rotate_left(k);
        let (whole, _) = combine(&parts, false).unwrap();
        prop_assert_eq!(whole, tiny_state(0..128));
    }
}
