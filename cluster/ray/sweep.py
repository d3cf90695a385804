#!/usr/bin/env python3
"""A sharded llmforge sweep on Ray: one `ray.remote` task per shard, each calling the
llmforge command line (as Vidur-Search wraps its simulator), then `llmforge sweep merge`.

    python3 cluster/ray/sweep.py --shards 16 --run /shared/runs/10m \
        -- --grid codesign-10m --substrate jetson-agx-orin-64gb --budget 'tpot<=20ms'

Connects to the cluster in RAY_ADDRESS (or `--address`), or starts a local Ray when there is
none. The run directory must be one every node sees (shards write shard-<i>, the merge
writes merged). Each task asks Ray for `--cpus` CPUs and runs the sweep on that many threads.
The llmforge binary (`--llmforge`, default `llmforge` on PATH) must exist on every node.
Exits non-zero, naming the shard, when a shard or the merge fails.
"""

import argparse
import os
import subprocess
import sys

import ray


@ray.remote
def shard(llmforge, sweep_args, index, count, run, cpus):
    """One shard of the sweep: `llmforge sweep ... --shard auto` with the index and count in
    LLMFORGE_SHARD_INDEX / LLMFORGE_SHARD_COUNT (recorded in the shard's manifest)."""
    out = os.path.join(run, f"shard-{index}")
    env = dict(os.environ)
    env.update(
        LLMFORGE_SHARD_INDEX=str(index),
        LLMFORGE_SHARD_COUNT=str(count),
        RAYON_NUM_THREADS=str(cpus),
    )
    done = subprocess.run(
        [llmforge, "sweep", *sweep_args, "--shard", "auto", "--out", out],
        env=env,
        capture_output=True,
        text=True,
    )
    return index, out, done.returncode, done.stdout + done.stderr


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shards", type=int, required=True, help="number of shards (Ray tasks)")
    p.add_argument("--run", required=True, help="run directory every node sees")
    p.add_argument("--llmforge", default="llmforge", help="the llmforge binary on the nodes")
    p.add_argument("--cpus", type=int, default=1, help="CPUs per shard")
    p.add_argument("--address", default=None, help="Ray cluster (default: RAY_ADDRESS, else local)")
    p.add_argument("sweep", nargs=argparse.REMAINDER, help="-- then the sweep's flags")
    a = p.parse_args()
    sweep_args = a.sweep[1:] if a.sweep[:1] == ["--"] else a.sweep
    if a.shards < 1:
        p.error("--shards must be at least 1")
    if any(x == "--shard" or x.startswith("--shard=") or x == "--out" for x in sweep_args):
        p.error("give the sweep's flags without --shard and --out: this script sets them")
    run = os.path.abspath(a.run)
    os.makedirs(run, exist_ok=True)
    ray.init(address=a.address, include_dashboard=False, logging_level="WARNING")
    tasks = [
        shard.options(num_cpus=a.cpus).remote(a.llmforge, sweep_args, i, a.shards, run, a.cpus)
        for i in range(a.shards)
    ]
    failed = 0
    outs = []
    for index, out, code, log in ray.get(tasks):
        outs.append(out)
        if code != 0:
            failed += 1
            print(f"shard {index}/{a.shards} failed (exit {code}):\n{log}", file=sys.stderr)
    if failed:
        print(f"{failed} of {a.shards} shards failed; not merging", file=sys.stderr)
        return 1
    merged = os.path.join(run, "merged")
    done = subprocess.run([a.llmforge, "sweep", "merge", *outs, "--out", merged])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
