//! The Kubernetes templates as far as a machine without a cluster can run them: the Indexed
//! Job's container command, run here once per completion index with the Job's environment
//! plus the `JOB_COMPLETION_INDEX` Kubernetes adds, then the merge Job's command; the merged
//! outputs `cmp` equal to the unsharded sweep with the same settings. Checks that the
//! templates agree with each other (completions, LLMFORGE_SHARD_COUNT, paths) and with the
//! CLI. (The shared volume is a directory here; `llmforge` on PATH is this build.)

use super::{BIN, ROOT, cmp_dirs, ok, scratch};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn job(name: &str) -> Value {
    let path = format!("{ROOT}/cluster/kubernetes/{name}");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The container's `sh -c` script with the volume at `volume`, and its environment.
fn container(job: &Value, volume: &Path) -> (String, Vec<(String, String)>) {
    let spec = &job["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    let command: Vec<&str> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command[..2], ["sh", "-c"]);
    let mount = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let script = command[2].replace(mount, volume.to_str().unwrap());
    let env = c["env"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|v| {
                    (
                        v["name"].as_str().unwrap().to_string(),
                        v["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (script, env)
}

#[test]
fn kubernetes_indexed_job_and_merge_reproduce_the_unsharded_sweep() {
    let dir = scratch("k8s");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("llmforge")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let volume = dir.join("runs");
    std::fs::create_dir_all(&volume).unwrap();

    let sweep = job("sweep-indexed-job.yaml");
    assert_eq!(sweep["spec"]["completionMode"], "Indexed");
    let completions = sweep["spec"]["completions"].as_u64().unwrap();
    let (script, env) = container(&sweep, &volume);
    let var = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        var("LLMFORGE_SHARD_COUNT"),
        completions.to_string(),
        "LLMFORGE_SHARD_COUNT = completions"
    );
    for index in 0..completions {
        let out = Command::new("sh")
            .args(["-c", &script])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("PATH", &path)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("LLMFORGE_SHARD_INDEX")
            .output()
            .unwrap();
        ok(&format!("completion {index}"), out);
    }
    let (merge, merge_env) = container(&job("sweep-merge-job.yaml"), &volume);
    ok(
        "the merge Job",
        Command::new("sh")
            .args(["-c", &merge])
            .envs(merge_env.iter().map(|(k, v)| (k, v)))
            .env("PATH", &path)
            .output()
            .unwrap(),
    );
    // the unsharded sweep with the Job's settings
    let full = dir.join("full");
    let mut args = vec![
        "sweep".to_string(),
        "--grid".into(),
        var("LLMFORGE_GRID"),
        "--substrate".into(),
        var("LLMFORGE_SUBSTRATE"),
    ];
    args.extend(var("LLMFORGE_SWEEP_ARGS").split(' ').map(String::from));
    args.extend(["--out".into(), full.to_str().unwrap().into()]);
    ok(
        "the unsharded sweep",
        Command::new(BIN).args(&args).output().unwrap(),
    );
    cmp_dirs(&full, &volume.join("merged"));
    let _ = std::fs::remove_dir_all(dir);
}
