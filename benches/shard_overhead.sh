#!/usr/bin/env bash
# Sharding overhead in CPU time (issue #17: under 5% on codesign-orin split 8 ways).
#
# The same sweep (codesign-orin, 11,232 grid points, on jetson-agx-orin-64gb with two budgets
# and a reference) run three ways, each process on one thread (RAYON_NUM_THREADS=1), CPU time
# = user + sys of the process (rusage, via python3):
#   whole:  one unsharded run;
#   shards: the 8 shards (`--shard i/8`), one after the other;
#   merge:  `sweep merge` of the 8 shards (reads and checks them, evaluates each shard's first
#           frontier row again, copies candidates.csv, writes the summary, plots and frontier
#           model files as the whole run does).
# overhead = (shards + merge) / whole - 1. Rounds are interleaved (whole, shards, merge, whole,
# ...) so machine load falls on both sides alike; the median of the per-round ratios is
# reported. The merged outputs are checked byte-identical to the unsharded run's (cmp).
#
# With LLMFORGE_BENCH_COUNT=instructions the cost is instructions executed in user space
# (valgrind --tool=callgrind, deterministic, immune to machine load; one round is enough).
#
# Run: cargo build --release && bash benches/shard_overhead.sh [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${LLMFORGE:-target/release/llmforge}"
rounds="${1:-3}"
shards=8
export RAYON_NUM_THREADS=1 LLMFORGE_PROGRESS=off
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
args=(sweep --grid codesign-orin --substrate jetson-agx-orin-64gb
  --budget 'tpot<=20ms' --budget 'weights+kv<=8GB' --reference qwen2.5-0.5b)
# more sweep flags, e.g. LLMFORGE_BENCH_ARGS="--quality chinchilla" (no surrogate to load)
# shellcheck disable=SC2206
args+=(${LLMFORGE_BENCH_ARGS:-})
if [ "${LLMFORGE_BENCH_COUNT:-cpu}" = instructions ]; then
  unit=instructions
  cpu() { # user-space instructions of the command, in units of 1e6
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$@" >/dev/null 2>"$tmp/cg.log" ||
      { cat "$tmp/cg.log" >&2; exit 1; }
    awk '/^summary:/{printf "%.3f", $2 / 1e6}' "$tmp/cg.out"
  }
else
unit=cpu_s
cpu() { # seconds of user + sys CPU of the command, to the microsecond (os.wait4's rusage;
  # /usr/bin/time rounds to 10 ms, too coarse for shards of a few tens of ms)
  python3 -c '
import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit("failed: " + " ".join(sys.argv[1:]))
print("%.4f" % (ru.ru_utime + ru.ru_stime))
' "$@"
}
fi
ratios=()
printf 'round  whole_%s  shards_%s  merge_%s  overhead\n' "$unit" "$unit" "$unit"
for r in $(seq 1 "$rounds"); do
  rm -rf "$tmp/run"
  whole=$(cpu "$bin" "${args[@]}" --out "$tmp/run/whole")
  parts=0
  for i in $(seq 0 $((shards - 1))); do
    s=$(cpu "$bin" "${args[@]}" --shard "$i/$shards" --out "$tmp/run/shard-$i")
    parts=$(awk -v a="$parts" -v b="$s" 'BEGIN{printf "%.4f", a + b}')
  done
  merge=$(cpu "$bin" sweep merge "$tmp"/run/shard-* --out "$tmp/run/merged")
  for f in candidates.csv frontier.csv summary.md frontier.svg region.svg outcome.json; do
    cmp "$tmp/run/whole/$f" "$tmp/run/merged/$f"
  done
  ratio=$(awk -v w="$whole" -v p="$parts" -v m="$merge" 'BEGIN{printf "%.4f", (p + m) / w - 1}')
  ratios+=("$ratio")
  printf '%5d  %12s  %12s  %12s  %+.1f%%\n' "$r" "$whole" "$parts" "$merge" "$(awk -v x="$ratio" 'BEGIN{print 100 * x}')"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR] = $1} END{print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
printf 'median overhead of %d shards + merge: %+.1f%% of the unsharded run (%s; merged outputs cmp-identical)\n' \
  "$shards" "$(awk -v x="$median" 'BEGIN{print 100 * x}')" "$unit"
