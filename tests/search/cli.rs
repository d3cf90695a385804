//! `llmforge search --problem ...` end to end.

use llmforge::search::hypervolume::hypervolume;
use std::path::PathBuf;
use std::process::Command;

fn llmforge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmforge"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmforge-cli-search-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn json_summary_and_files_agree_and_repeat() {
    let (first, second) = (scratch("a"), scratch("b"));
    let mut summaries = Vec::new();
    for dir in [&first, &second] {
        let out = llmforge(&[
            "search",
            "--problem",
            "zdt1",
            "--population",
            "20",
            "--generations",
            "15",
            "--seed",
            "3",
            "--format",
            "json",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        summaries.push(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap());
    }
    let summary = &summaries[0];
    assert_eq!(summary["problem"], "zdt1");
    assert_eq!(summary["variables"], 30);
    assert_eq!(summary["evaluations"], 20 + 15 * 20);
    assert_eq!(summary["settings"]["offspring"], 20);
    assert_eq!(summary["reference"], serde_json::json!([1.1, 1.1]));

    // the output files are identical between runs
    for file in ["pareto.csv", "history.csv"] {
        let a = std::fs::read(first.join(file)).unwrap();
        assert_eq!(
            a,
            std::fs::read(second.join(file)).unwrap(),
            "{file} differs between runs"
        );
    }
    // the reported hypervolume is that of pareto.csv, and the last history row
    let pareto = std::fs::read_to_string(first.join("pareto.csv")).unwrap();
    let mut lines = pareto.lines();
    assert!(lines.next().unwrap().starts_with("f1,f2,x1,x2,"));
    let points: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').take(2).map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(points.len() as u64, summary["front_size"].as_u64().unwrap());
    let volume = hypervolume(&points, &[1.1, 1.1]).unwrap();
    assert_eq!(summary["hypervolume"].as_f64().unwrap(), volume);
    let history = std::fs::read_to_string(first.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + 16);
    let last: Vec<&str> = history.lines().last().unwrap().split(',').collect();
    assert_eq!(last[0], "15");
    assert_eq!(last[4].parse::<f64>().unwrap(), volume);
    for dir in [first, second] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn table_output_names_the_figures() {
    let out = llmforge(&[
        "search",
        "--problem",
        "dtlz2",
        "--population",
        "12",
        "--generations",
        "3",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("dtlz2 (12 variables, 3 objectives)"), "{text}");
    assert!(text.contains("evaluations   48 (cache off)"), "{text}");
    assert!(
        text.contains("at reference (1.1, 1.1, 1.1); true front 0.807401"),
        "{text}"
    );
}

#[test]
fn a_target_is_required_and_bad_values_are_refused() {
    let out = llmforge(&["search"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--problem"));
    let out = llmforge(&["search", "--problem", "zdt9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zdt1"));
    let out = llmforge(&["search", "--problem", "zdt1", "--population", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("population"));
}

#[test]
fn the_cache_changes_counts_not_results() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "search",
            "--problem",
            "zdt2",
            "--population",
            "16",
            "--generations",
            "8",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = llmforge(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (plain, cached) = (run(&[]), run(&["--cache"]));
    assert_eq!(plain["cache"], false);
    assert_eq!(cached["cache"], true);
    assert_eq!(plain["hypervolume"], cached["hypervolume"]);
    let total = 16 + 8 * 16;
    assert_eq!(plain["evaluations"], total);
    assert_eq!(
        cached["evaluations"].as_u64().unwrap() + cached["cache_hits"].as_u64().unwrap(),
        total
    );
}
