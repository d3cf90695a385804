//! `search merge`: independent searches (two seeds on gemmini, one on eyeriss) put together.
//! The merged front is the non-dominated set of the union of the fronts (checked by brute
//! force over the runs' pareto.csv), each row names its origin and equals that run's row, the
//! histories are kept whole, the models are the origins' files, and merging is deterministic;
//! searches whose objectives do not compare, or unfinished ones, are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_llmforge");

fn llmforge(args: &[&str]) -> Output {
    Command::new(BIN).arg("--quiet").args(args).output().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn refused(out: &Output, parts: &[&str]) {
    assert!(!out.status.success(), "expected a refusal");
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
}

fn search(out: &Path, substrate: &str, seed: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "search",
        "--space",
        "smollm2-135m-seeded",
        "--substrate",
        substrate,
        "--engine",
        "roofline",
        "--constraint",
        "loss<=3.9",
        "--population",
        "8",
        "--offspring",
        "16",
        "--generations",
        "2",
        "--seed",
        seed,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(llmforge(&args));
    out.to_path_buf()
}

fn rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    (
        header,
        lines.map(|l| l.split(',').map(String::from).collect()).collect(),
    )
}

#[test]
fn merged_searches_give_the_front_of_the_union_with_origins() {
    let dir = std::env::temp_dir().join(format!("llmforge-search-merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runs = [
        search(&dir.join("g1"), "gemmini", "1", &[]),
        search(&dir.join("g2"), "gemmini", "2", &[]),
        search(&dir.join("e1"), "eyeriss", "1", &[]),
    ];
    let merged = dir.join("m");
    let mut args = vec!["search", "merge"];
    args.extend(runs.iter().map(|r| r.to_str().unwrap()));
    args.extend(["--out", merged.to_str().unwrap()]);
    let out = ok(llmforge(&args));
    assert!(String::from_utf8_lossy(&out.stdout).contains("merged 3 searches: front of"));

    // brute force: every row of every run's front, non-dominated (all feasible here)
    let objectives = 4;
    let mut all: Vec<(usize, usize, Vec<f64>)> = Vec::new();
    for (k, r) in runs.iter().enumerate() {
        let (_, rs) = rows(&r.join("pareto.csv"));
        for (rank, row) in rs.iter().enumerate() {
            assert_eq!(row[1 + objectives], "true", "this test's fronts are feasible");
            all.push((
                k,
                rank,
                row[1..=objectives].iter().map(|v| v.parse().unwrap()).collect(),
            ));
        }
    }
    let dominated = |a: &[f64]| {
        all.iter()
            .any(|(_, _, b)| b.iter().zip(a).all(|(x, y)| x <= y) && b.iter().zip(a).any(|(x, y)| x < y))
    };
    let expected: Vec<(usize, usize)> = all
        .iter()
        .filter(|(_, _, o)| !dominated(o))
        .map(|(k, r, _)| (*k, *r))
        .collect();
    let (header, front) = rows(&merged.join("pareto.csv"));
    assert_eq!(
        header[..6],
        [
            "rank",
            "origin",
            "origin_space",
            "origin_substrate",
            "origin_seed",
            "origin_rank"
        ]
    );
    assert_eq!(front.len(), expected.len());
    let mut got = Vec::new();
    for (i, row) in front.iter().enumerate() {
        assert_eq!(row[0], i.to_string());
        let k = runs.iter().position(|r| r.to_str().unwrap() == row[1]).unwrap();
        let rank: usize = row[5].parse().unwrap();
        assert_eq!(row[3], ["gemmini", "gemmini", "eyeriss"][k]);
        assert_eq!(row[4], ["1", "2", "1"][k]);
        // the rest of the row is the origin's row
        let (_, origin) = rows(&runs[k].join("pareto.csv"));
        assert_eq!(row[6..], origin[rank][1..], "row {i}");
        assert_eq!(
            std::fs::read(merged.join(format!("models/pareto-{i}.yaml"))).unwrap(),
            std::fs::read(runs[k].join(format!("models/pareto-{rank}.yaml"))).unwrap()
        );
        got.push((k, rank));
        if i > 0 {
            let prev: f64 = front[i - 1][6].parse().unwrap();
            assert!(
                prev <= row[6].parse::<f64>().unwrap(),
                "sorted by the first objective"
            );
        }
    }
    got.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(got, expected);
    // both substrates contribute here (eyeriss is slower, but uses less energy)
    assert!(got.iter().any(|(k, _)| *k == 2) && got.iter().any(|(k, _)| *k < 2));
    // the histories, whole, with their origin
    let history = std::fs::read_to_string(merged.join("history.csv")).unwrap();
    let lines: usize = runs
        .iter()
        .map(|r| {
            std::fs::read_to_string(r.join("history.csv"))
                .unwrap()
                .lines()
                .count()
                - 1
        })
        .sum();
    assert_eq!(history.lines().count(), lines + 1);
    assert!(history.starts_with("origin,generation,"));
    // deterministic
    let again = dir.join("m2");
    let mut args2 = args.clone();
    *args2.last_mut().unwrap() = again.to_str().unwrap();
    ok(llmforge(&args2));
    for f in ["pareto.csv", "history.csv"] {
        assert_eq!(
            std::fs::read(merged.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap()
        );
    }

    // refused: other objectives, another workload, an unfinished run, a sweep
    let two = search(&dir.join("two"), "gemmini", "3", &["--objectives", "loss,tpot"]);
    let merge = |dirs: &[&Path]| {
        let out = dir.join("refused");
        let mut a = vec!["search", "merge"];
        a.extend(dirs.iter().map(|d| d.to_str().unwrap()));
        a.extend(["--out", out.to_str().unwrap()]);
        llmforge(&a)
    };
    refused(
        &merge(&[&runs[0], &two]),
        &["not comparable", "setting `objectives`", "seed 3"],
    );
    let short = search(&dir.join("short"), "gemmini", "4", &["--prompt", "64"]);
    refused(&merge(&[&runs[0], &short]), &["setting `prompt`"]);
    let manifest = runs[1].join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"status\": \"complete\"", "\"status\": \"interrupted\""),
    )
    .unwrap();
    refused(
        &merge(&[&runs[0], &runs[1]]),
        &["g2` was interrupted", "search --resume"],
    );
    let sweep = dir.join("sweep");
    ok(llmforge(&[
        "sweep",
        "--grid",
        "tiny",
        "--substrate",
        "jetson-orin-nano-super",
        "--out",
        sweep.to_str().unwrap(),
    ]));
    refused(&merge(&[&runs[0], &sweep]), &["not of `llmforge search`"]);
    let _ = std::fs::remove_dir_all(dir);
}
