#!/usr/bin/env bash
# Submits a sharded sweep to Slurm: an array of N shards and a merge job that runs when all
# of them succeeded. Prints the two job ids. Example:
#
#   LLMFORGE_GRID=codesign-10m LLMFORGE_SUBSTRATE=jetson-agx-orin-64gb \
#   LLMFORGE_RUN=$HOME/runs/10m LLMFORGE_SWEEP_ARGS="--budget tpot<=20ms" \
#     cluster/slurm/submit-sweep.sh 16
#
# Results: $LLMFORGE_RUN/merged; each shard in $LLMFORGE_RUN/shard-<i>; logs in
# $LLMFORGE_RUN/logs. More sbatch options (partition, account, time) go in SBATCH_* variables
# (e.g. SBATCH_PARTITION=cpu), which sbatch reads itself. LLMFORGE_WAIT=1 waits for the merge.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
shards="${1:?usage: submit-sweep.sh <number of shards>}"
case "$shards" in '' | *[!0-9]* | 0) echo "submit-sweep.sh: the number of shards must be a whole number of at least 1, not \`$shards\`" >&2; exit 2 ;; esac
: "${LLMFORGE_RUN:?set LLMFORGE_RUN (the run directory shared by the shards)}"
mkdir -p "$LLMFORGE_RUN/logs"
array=$(sbatch --parsable --export=ALL --array="0-$((shards - 1))" \
  --output="$LLMFORGE_RUN/logs/shard-%a.out" "$here/sweep-array.sbatch")
array="${array%%;*}"
wait=()
if [ "${LLMFORGE_WAIT:-0}" = 1 ]; then wait=(--wait); fi
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --output="$LLMFORGE_RUN/logs/merge.out" "${wait[@]}" "$here/sweep-merge.sbatch")
echo "array job $array ($shards shards), merge job ${merge%%;*}"
