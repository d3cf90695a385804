//! The cluster templates under `cluster/` run as shipped: the Slurm array job and its merge
//! on a real (one-node) Slurm cluster, the Ray script on a local Ray. Each skips with a
//! message when its engine is missing, unless `LLMFORGE_REQUIRE_SLURM=1` /
//! `LLMFORGE_REQUIRE_RAY=1` (`.ci/run` starts a one-node Slurm cluster and sets the first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod kubernetes;
mod ray;
mod slurm;

const BIN: &str = env!("CARGO_BIN_EXE_llmforge");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The files a sweep writes that a merge must reproduce byte for byte.
const SAME: [&str; 6] = [
    "candidates.csv",
    "frontier.csv",
    "summary.md",
    "frontier.svg",
    "region.svg",
    "outcome.json",
];

/// Whether a test needing `thing` must run (`LLMFORGE_REQUIRE_<THING>=1`); when it need not
/// and `missing` is some reason, prints that the test skips.
fn skip(test: &str, thing: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else { return false };
    let var = format!("LLMFORGE_REQUIRE_{}", thing.to_uppercase());
    if std::env::var(&var).as_deref() == Ok("1") {
        panic!("{var}=1 but {why}");
    }
    eprintln!("skipping {test}: {why}");
    true
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmforge-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ok(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The sweep the templates shard: the tiny grid (128 points) with a budget.
const SWEEP_ARGS: &str = "--budget tpot<=40ms --budget weights+kv<=30MB";

/// The unsharded run of that sweep into `out`.
fn unsharded(out: &Path) {
    let mut args = vec!["sweep", "--grid", "tiny", "--substrate", "jetson-orin-nano-super"];
    args.extend(SWEEP_ARGS.split(' '));
    args.extend(["--out", out.to_str().unwrap()]);
    ok(
        "the unsharded sweep",
        Command::new(BIN).args(&args).output().unwrap(),
    );
}

/// Compares each of [`SAME`] with `cmp`, as the CI check asks.
fn cmp_dirs(a: &Path, b: &Path) {
    for f in SAME {
        let out = Command::new("cmp")
            .arg(a.join(f))
            .arg(b.join(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f} differs: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
