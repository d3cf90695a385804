#!/usr/bin/env python3
"""Side-by-side: pymoo 0.6.2 NSGA-II against `llmforge search` on ZDT1 (30 variables,
population 100, 250 generations after the initial population = 25,100 evaluations, SBX eta 15
p 0.9, polynomial mutation eta 20 p 1/n: pymoo's defaults, which llmforge copies).

pymoo counts the initial population as generation 1, so it runs n_gen = 251 for the same
25,100 evaluations. Both are timed around the optimisation only (pymoo: `minimize`; llmforge:
the `wall_time_s` it reports, which excludes process start-up), in wall-clock and CPU time
(llmforge's CPU time is the whole child process, start-up included). Hypervolume is pymoo's
HV indicator at reference (1.1, 1.1) for both.

    cargo build --release && python3 benches/pymoo_zdt.py [--seeds 5] [--bin PATH]

Exits 0 with a message when pymoo is not installed (pip install pymoo==0.6.2).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N (default 5)")
    parser.add_argument("--generations", type=int, default=250)
    parser.add_argument("--bin", type=Path, default=None, help="llmforge binary (default: release build)")
    args = parser.parse_args()

    try:
        import pymoo
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.indicators.hv import HV
        from pymoo.optimize import minimize
        from pymoo.problems import get_problem
    except ImportError:
        print("pymoo is not installed (pip install pymoo==0.6.2): skipping the pymoo comparison")
        return 0
    if pymoo.__version__ != "0.6.2":
        print(f"note: pymoo {pymoo.__version__} installed; the reference figures are for 0.6.2")

    repo = Path(__file__).resolve().parent.parent
    binary = args.bin
    if binary is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", repo / "target"))
        binary = target / "release" / "llmforge"
    if not binary.exists():
        print(f"{binary} not found: run `cargo build --release` first (or pass --bin)")
        return 0

    problem = get_problem("zdt1")
    hv = HV(ref_point=[1.1, 1.1])
    # warm-up: first-call costs of numpy and pymoo's imports are not the algorithm's
    minimize(problem, NSGA2(pop_size=100), ("n_gen", 3), seed=0, verbose=False)

    rows = []
    for seed in range(1, args.seeds + 1):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = minimize(problem, NSGA2(pop_size=100), ("n_gen", args.generations + 1), seed=seed, verbose=False)
        pymoo_wall, pymoo_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        pymoo_hv = float(hv(result.F))
        pymoo_evals = int(result.algorithm.evaluator.n_eval)

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        command = [
            str(binary), "search", "--problem", "zdt1", "--population", "100",
            "--generations", str(args.generations), "--seed", str(seed), "--format", "json",
        ]
        completed = subprocess.run(command, check=True, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = json.loads(completed.stdout)
        ours_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        import numpy as np

        # pymoo's indicator on our front too, so both numbers come from the same code
        front = np.array(read_front(ours, binary, seed, args.generations))
        ours_hv = float(hv(front))
        rows.append((seed, pymoo_hv, pymoo_wall, pymoo_cpu, pymoo_evals, ours_hv, ours["wall_time_s"], ours_cpu,
                     ours["evaluations"], ours["hypervolume"]))

    print(f"ZDT1, 30 variables, population 100, {args.generations} generations; "
          f"pymoo {pymoo.__version__} vs {binary}")
    print(f"{'seed':>4} | {'pymoo HV':>9} {'wall s':>7} {'cpu s':>6} {'evals':>6} | "
          f"{'ours HV':>9} {'wall s':>7} {'cpu s':>6} {'evals':>6} | {'wall x':>7} {'cpu x':>6}")
    for seed, p_hv, p_wall, p_cpu, p_ev, o_hv, o_wall, o_cpu, o_ev, o_hv_own in rows:
        assert abs(o_hv - o_hv_own) < 1e-12, f"hypervolume disagreement: pymoo {o_hv} vs llmforge {o_hv_own}"
        print(f"{seed:>4} | {p_hv:9.6f} {p_wall:7.3f} {p_cpu:6.3f} {p_ev:6d} | "
              f"{o_hv:9.6f} {o_wall:7.3f} {o_cpu:6.3f} {o_ev:6d} | {p_wall / o_wall:7.1f} {p_cpu / o_cpu:6.1f}")
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    print(f"median | pymoo HV {med(1):.6f}, wall {med(2):.3f} s, cpu {med(3):.3f} s | "
          f"ours HV {med(5):.6f}, wall {med(6):.3f} s, cpu {med(7):.3f} s")
    print(f"speed-up (ratio of medians): wall {med(2) / med(6):.1f}x, cpu {med(3) / med(7):.1f}x")
    return 0


def read_front(summary, binary, seed, generations):
    """Our final front, read from pareto.csv of a repeat run (the search is deterministic)."""
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [str(binary), "search", "--problem", "zdt1", "--population", "100", "--generations", str(generations),
             "--seed", str(seed), "--format", "json", "--out", out],
            check=True, capture_output=True,
        )
        lines = Path(out, "pareto.csv").read_text().splitlines()[1:]
    front = [[float(v) for v in line.split(",")[:2]] for line in lines]
    assert len(front) == summary["front_size"]
    return front


if __name__ == "__main__":
    sys.exit(main())
