//! `cluster/slurm/submit-sweep.sh` on a real Slurm cluster: a 4-task array job over the tiny
//! grid and the dependent merge job; the merged outputs `cmp` equal to the unsharded run.
//! Needs a running cluster (`sinfo` answers with a usable node); `.ci/run` starts a one-node
//! one with `cluster/slurm/one-node.sh`.

use super::{BIN, ROOT, SWEEP_ARGS, cmp_dirs, ok, scratch, skip, unsharded};
use std::process::Command;

/// Why no Slurm cluster can take jobs, if none can.
fn no_cluster() -> Option<String> {
    match Command::new("sinfo").args(["-h", "-o", "%T"]).output() {
        Err(_) => {
            Some("no sinfo on PATH (apt-get install slurm-wlm munge, then cluster/slurm/one-node.sh)".into())
        }
        Ok(out) => {
            let states = String::from_utf8_lossy(&out.stdout);
            if out.status.success()
                && states
                    .lines()
                    .any(|s| ["idle", "mixed", "alloc"].iter().any(|k| s.starts_with(k)))
            {
                None
            } else {
                Some(format!(
                    "no Slurm node takes jobs (sinfo: {}{}); start one with cluster/slurm/one-node.sh",
                    states.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
    }
}

#[test]
fn slurm_array_and_merge_job_reproduce_the_unsharded_sweep() {
    if skip(
        "slurm_array_and_merge_job_reproduce_the_unsharded_sweep",
        "slurm",
        no_cluster(),
    ) {
        return;
    }
    let dir = scratch("slurm");
    let full = dir.join("full");
    unsharded(&full);
    let run = dir.join("run");
    // sbatch --wait on the merge job; `timeout` keeps a stuck cluster from hanging the tests
    let out = Command::new("timeout")
        .args(["170", "bash"])
        .arg(format!("{ROOT}/cluster/slurm/submit-sweep.sh"))
        .arg("4")
        .env("LLMFORGE", BIN)
        .env("LLMFORGE_GRID", "tiny")
        .env("LLMFORGE_SUBSTRATE", "jetson-orin-nano-super")
        .env("LLMFORGE_SWEEP_ARGS", SWEEP_ARGS)
        .env("LLMFORGE_RUN", &run)
        .env("LLMFORGE_WAIT", "1")
        .output()
        .unwrap();
    let logs = || -> String {
        let mut text = String::new();
        for name in ["shard-0", "shard-1", "shard-2", "shard-3", "merge"] {
            let p = run.join("logs").join(format!("{name}.out"));
            text += &format!(
                "--- {}\n{}\n",
                p.display(),
                std::fs::read_to_string(&p).unwrap_or_default()
            );
        }
        text
    };
    assert!(
        out.status.success(),
        "submit-sweep.sh failed ({}):\n{}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(4 shards), merge job"), "{text}");
    for i in 0..4 {
        let m = std::fs::read_to_string(run.join(format!("shard-{i}/manifest.json"))).unwrap();
        let m: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(m["settings"]["shard"], format!("{i}/4"), "{}", logs());
        let from = m["shard"]["from"].as_str().unwrap();
        assert!(from.starts_with(&format!("SLURM_ARRAY_TASK_ID={i}")), "{from}");
    }
    cmp_dirs(&full, &run.join("merged"));
    ok(
        "the merged directory's manifest",
        Command::new("grep")
            .arg("merged_from")
            .arg(run.join("merged/manifest.json"))
            .output()
            .unwrap(),
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `cluster/slurm/submit-search.sh`: 2 searches (gemmini and eyeriss, seed 7) as an array and
/// their merge; each task's pareto.csv `cmp`-equal to the same search run here, the merge's
/// front drawn from both.
#[test]
fn slurm_search_array_and_merge_job_run_as_shipped() {
    if skip(
        "slurm_search_array_and_merge_job_run_as_shipped",
        "slurm",
        no_cluster(),
    ) {
        return;
    }
    let dir = scratch("slurm-search");
    let flags = "--engine roofline --population 8 --offspring 16 --generations 2";
    let run = dir.join("run");
    let out = Command::new("timeout")
        .args(["170", "bash"])
        .arg(format!("{ROOT}/cluster/slurm/submit-search.sh"))
        .arg("2")
        .env("LLMFORGE", BIN)
        .env("LLMFORGE_SPACE", "smollm2-135m-seeded")
        .env("LLMFORGE_SUBSTRATES", "gemmini eyeriss")
        .env("LLMFORGE_SEED", "7")
        .env("LLMFORGE_SEARCH_ARGS", flags)
        .env("LLMFORGE_RUN", &run)
        .env("LLMFORGE_WAIT", "1")
        .output()
        .unwrap();
    let log = |name: &str| std::fs::read_to_string(run.join("logs").join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "submit-search.sh failed ({}):\n{}{}\n{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log("search-0.out"),
        log("search-1.out"),
        log("merge.out")
    );
    for (i, substrate) in ["gemmini", "eyeriss"].iter().enumerate() {
        let here = dir.join(format!("here-{i}"));
        let mut args = vec![
            "search",
            "--space",
            "smollm2-135m-seeded",
            "--substrate",
            substrate,
            "--seed",
            "7",
        ];
        args.extend(flags.split(' '));
        args.extend(["--out", here.to_str().unwrap()]);
        ok(
            "the search run here",
            Command::new(BIN).args(&args).output().unwrap(),
        );
        for f in ["pareto.csv", "history.csv"] {
            let cmp = Command::new("cmp")
                .arg(here.join(f))
                .arg(run.join(format!("search-{i}/{f}")))
                .output()
                .unwrap();
            assert!(
                cmp.status.success(),
                "search-{i}/{f} differs from the same search run here"
            );
        }
    }
    let merged = std::fs::read_to_string(run.join("merged/pareto.csv")).unwrap();
    for substrate in [",gemmini,7,", ",eyeriss,7,"] {
        assert!(merged.contains(substrate), "{substrate} not in {merged}");
    }
    assert!(
        log("merge.out").contains("merged 2 searches"),
        "{}",
        log("merge.out")
    );
    let _ = std::fs::remove_dir_all(dir);
}
