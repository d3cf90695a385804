#!/usr/bin/env bash
# Submits N independent searches (seeds x substrates) as a Slurm job array and their merge as
# a job that runs when all succeeded. Example: 2 seeds on each of 3 substrates:
#
#   LLMFORGE_SPACE=llmforge-200m LLMFORGE_SUBSTRATES="flat-edge gemmini jetson-orin-nano-super" \
#   LLMFORGE_RUN=$HOME/runs/200m cluster/slurm/submit-search.sh 6
#
# Results: $LLMFORGE_RUN/merged (pareto.csv with each row's origin, history.csv, models/);
# each search in $LLMFORGE_RUN/search-<i>; logs in $LLMFORGE_RUN/logs. sbatch options in
# SBATCH_* variables; LLMFORGE_WAIT=1 waits for the merge.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tasks="${1:?usage: submit-search.sh <number of searches>}"
case "$tasks" in '' | *[!0-9]* | 0) echo "submit-search.sh: the number of searches must be a whole number of at least 1, not \`$tasks\`" >&2; exit 2 ;; esac
: "${LLMFORGE_RUN:?set LLMFORGE_RUN (the run directory shared by the tasks)}"
mkdir -p "$LLMFORGE_RUN/logs"
array=$(sbatch --parsable --export=ALL --array="0-$((tasks - 1))" \
  --output="$LLMFORGE_RUN/logs/search-%a.out" "$here/search-array.sbatch")
array="${array%%;*}"
wait=()
if [ "${LLMFORGE_WAIT:-0}" = 1 ]; then wait=(--wait); fi
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --output="$LLMFORGE_RUN/logs/merge.out" "${wait[@]}" "$here/search-merge.sbatch")
echo "array job $array ($tasks searches), merge job ${merge%%;*}"
