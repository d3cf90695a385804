//! `cluster/ray/sweep.py` on a local Ray (started by the script): 3 shard tasks and the
//! merge; the merged outputs `cmp` equal to the unsharded run. Runs when `ray` is importable
//! by `python3` (or `LLMFORGE_PYTHON`), skips with a message otherwise, unless
//! `LLMFORGE_REQUIRE_RAY=1`.

use super::{BIN, ROOT, SWEEP_ARGS, cmp_dirs, scratch, skip, unsharded};
use std::process::Command;

fn python() -> String {
    std::env::var("LLMFORGE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why Ray cannot run, if it cannot.
fn no_ray() -> Option<String> {
    match Command::new(python()).args(["-c", "import ray"]).output() {
        Err(e) => Some(format!("no {} ({e})", python())),
        Ok(out) if !out.status.success() => {
            Some(format!("`import ray` fails in {} (pip install ray)", python()))
        }
        Ok(_) => None,
    }
}

#[test]
fn ray_script_reproduces_the_unsharded_sweep() {
    if skip("ray_script_reproduces_the_unsharded_sweep", "ray", no_ray()) {
        return;
    }
    let dir = scratch("ray");
    let full = dir.join("full");
    unsharded(&full);
    let run = dir.join("run");
    let mut args = vec![
        format!("{ROOT}/cluster/ray/sweep.py"),
        "--shards".into(),
        "3".into(),
        "--run".into(),
        run.to_str().unwrap().into(),
        "--llmforge".into(),
        BIN.into(),
        "--".into(),
        "--grid".into(),
        "tiny".into(),
        "--substrate".into(),
        "jetson-orin-nano-super".into(),
    ];
    args.extend(SWEEP_ARGS.split(' ').map(String::from));
    let out = Command::new("timeout")
        .arg("170")
        .arg(python())
        .args(&args)
        // a local Ray of its own, whatever cluster this machine may know of
        .env_remove("RAY_ADDRESS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sweep.py failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..3 {
        let m = std::fs::read_to_string(run.join(format!("shard-{i}/manifest.json"))).unwrap();
        let m: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(m["shard"]["from"], format!("LLMFORGE_SHARD_INDEX={i}"));
    }
    cmp_dirs(&full, &run.join("merged"));
    let _ = std::fs::remove_dir_all(dir);
}
