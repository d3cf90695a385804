#!/usr/bin/env python3
"""Time the real SCALE-Sim v3 and llmforge's systolic model on the same GEMM; print the ratio.

Default: 512x512x512 (M x N x K) on a 32x32 output-stationary array, the configuration of
tests/fixtures/systolic (64 KiB SRAMs, CALC bandwidth mode, no trace files). SCALE-Sim is run
through its own API in a subprocess (wall time includes its ~0.5 s import); llmforge is timed by
its divan bench (`cargo bench --bench systolic`, release build), per gemm() call. The cycle
counts of both are printed so the timing is of the same answer.

Skips cleanly (exit 0) when scalesim or cargo is not installed.

    python3 benches/scalesim_speed.py [--m 512 --n 512 --k 512 --array 32 --dataflow os]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "systolic"))


def run_scalesim(m, n, k, r, df):
    import scalesim_regen as regen  # the fixture generator: same config, same driver

    t0 = time.time()
    row = regen.run_one(m, n, k, r, df, timeout=3600)
    return time.time() - t0, row["cycles"]


UNITS = {"ps": 1e-12, "ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def run_bench(df):
    """Median seconds per gemm() call from the divan bench for 512^3 on 32x32 ScaleSim mode."""
    proc = subprocess.run(
        ["cargo", "bench", "--bench", "systolic", "--", "gemm_512_cubed_32x32_scalesim"],
        cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    for line in proc.stdout.splitlines():
        # "│  ├─ os   45.1 ns  │ 52.3 ns │ 45.5 ns │ 45.56 ns │ 100 │ 6400": name and fastest
        # share a cell, then slowest, median, mean.
        cells = [c.strip() for c in line.split("│")]
        for i, cell in enumerate(cells):
            if re.search(rf"─ {df}\b", cell) and i + 2 < len(cells):
                val, unit = cells[i + 2].split()
                return float(val) * UNITS[unit]
    raise RuntimeError("could not find the bench row in:\n" + proc.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--m", type=int, default=512)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--array", type=int, default=32)
    ap.add_argument("--dataflow", default="os", choices=["os", "ws", "is"])
    args = ap.parse_args()
    try:
        import scalesim  # noqa: F401
    except ImportError:
        print("scalesim is not installed (pip install scalesim 'numpy<2.4'); skipping.")
        return 0
    if shutil.which("cargo") is None:
        print("cargo not found; skipping.")
        return 0
    if (args.m, args.n, args.k, args.array) != (512, 512, 512, 32):
        print("note: the Rust side is benched at 512x512x512 on 32x32 only")

    print(f"SCALE-Sim v3: {args.m}x{args.n}x{args.k} on {args.array}x{args.array} {args.dataflow} ...",
          flush=True)
    ss_secs, ss_cycles = run_scalesim(args.m, args.n, args.k, args.array, args.dataflow)
    print(f"  SCALE-Sim: {ss_secs:.2f} s wall, Total Cycles {ss_cycles}", flush=True)
    ours = run_bench(args.dataflow)
    print(f"  llmforge gemm(): {ours * 1e9:.1f} ns per call (divan median)")
    # SCALE-Sim's count against the table formula folds * cpf - 1, which the Rust test suite
    # checks the Rust model against on every fixture row.
    sr, sc, t = {"os": (args.m, args.n, args.k), "ws": (args.k, args.n, args.m),
                 "is": (args.k, args.m, args.n)}[args.dataflow]
    r = args.array
    folds = -(-sr // r) * -(-sc // r)
    cpf = t + 2 * r - 2 if args.dataflow == "os" else 3 * r + t - 2
    print(f"  table formula folds*cpf-1 = {folds * cpf - 1}: matches SCALE-Sim {folds * cpf - 1 == ss_cycles}")
    print(f"speed ratio: {ss_secs / ours:.3g}x (SCALE-Sim wall time / llmforge per-call time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
