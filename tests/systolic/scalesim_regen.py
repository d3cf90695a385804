#!/usr/bin/env python3
"""Regenerate tests/fixtures/systolic/scalesim_compute_cycles.csv by running the real SCALE-Sim.

Each (GEMM shape, array, dataflow) is one SCALE-Sim v3 run, in its own subprocess and temp
directory, driven through SCALE-Sim's own top-level API (`scalesim.scale_sim.scalesim`) with
`save_disk_space=True` (no SRAM/DRAM trace files; the reports are identical, only the trace
writing is skipped). The numbers recorded are read back from the report files SCALE-Sim writes
(COMPUTE_REPORT.csv and DETAILED_ACCESS_REPORT.csv), never computed here.

Runs are done cheapest first (estimated from the stall-free cycle count and the array width),
one at a time, and appended as they finish, so an interrupted regeneration keeps its rows and
`--resume` continues where it stopped. `--budget-s` caps the total SCALE-Sim time.

Skips cleanly (exit 0) when scalesim is not installed.

    nice -n 10 python3 tests/systolic/scalesim_regen.py --resume --budget-s 2400
"""

import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "fixtures", "systolic", "scalesim_compute_cycles.csv")

# SRAM sizes (kB, as SCALE-Sim reads them: 1024 bytes) used for every run. They do not change
# the compute cycles (in CALC bandwidth mode SCALE-Sim never stalls reads), but they do decide
# the DRAM read counts that are recorded alongside.
SRAM_KB = {"ifmap": 64, "filter": 64, "ofmap": 64}

ARRAYS = [8, 32, 128]
DATAFLOWS = ["os", "ws", "is"]

# (M, N, K): M = output rows, N = output cols, K = reduction (SCALE-Sim's GEMM convention).
SHAPES = [
    (1, 1, 1),
    (8, 8, 8),
    (7, 9, 5),
    (16, 16, 16),
    (33, 17, 65),
    (32, 32, 32),
    (64, 64, 64),
    (100, 70, 50),
    (1, 64, 64),
    (64, 1, 64),
    (64, 64, 1),
    (128, 128, 128),
    (129, 130, 131),
    (200, 45, 300),
    (1024, 16, 64),
    (16, 1024, 64),
    (64, 16, 1024),
    (2048, 8, 8),
    (8, 8, 2048),
    (1, 512, 256),
    (256, 256, 256),
    # transformer shapes, written tokens x d_in x d_out in the brief: M = tokens,
    # K = d_in (reduction), N = d_out.
    (1, 1536, 576),     # SmolLM2-135M FFN up, decode
    (1, 576, 1536),     # SmolLM2-135M FFN down, decode
    (1, 2560, 960),     # SmolLM2-360M FFN up, decode (1x960x2560)
    (64, 64, 256),      # one attention head, QK^T for 64 queries over 256 keys (d_head 64)
    (256, 1536, 576),   # SmolLM2-135M FFN up, prefill 256 (256x576x1536)
    (512, 512, 512),
    (512, 2880, 960),   # 512x960x2880
    # second batch: more odd sizes and the decode / attention GEMMs of the SmolLM2 models
    (2, 2, 2),
    (3, 5, 7),
    (12, 12, 12),
    (24, 40, 56),
    (31, 31, 31),
    (48, 96, 24),
    (65, 65, 65),
    (96, 32, 128),
    (127, 1, 255),
    (3, 300, 7),
    (5, 5, 500),
    (250, 3, 40),
    (17, 129, 33),
    (64, 128, 32),
    (128, 64, 64),
    (1, 576, 576),      # SmolLM2-135M q/o projection, decode
    (1, 192, 576),      # SmolLM2-135M k/v projection, decode (3 KV groups x 64)
    (1, 960, 960),      # SmolLM2-360M q/o projection, decode
    (1, 320, 960),      # SmolLM2-360M k/v projection, decode (5 KV groups x 64)
    (1, 256, 64),       # attention scores of one decode query over 256 keys (d_head 64)
    (1, 64, 256),       # attention PV of one decode query over 256 values
    (256, 256, 64),     # attention scores, prefill 256, one head
    (256, 64, 256),     # attention PV, prefill 256, one head
    (16, 576, 576),     # SmolLM2-135M q projection, prefill 16
    (4, 1536, 576),     # SmolLM2-135M FFN up, batch-4 decode
    (40, 80, 160),
]


def stall_free_cycles(m, n, k, r, c, df):
    """SCALE-Sim's stall-free cycle count; used only to order and budget the runs."""
    sr, sc, t = {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[df]
    folds = math.ceil(sr / r) * math.ceil(sc / c)
    per = t + r + c - 2 if df == "os" else 2 * r + c + t - 2
    return folds * per - 1


def est_cost(m, n, k, r, df):
    # The memory simulation visits every address of every demand line in Python.
    return stall_free_cycles(m, n, k, r, r, df) * 3 * r


CFG = """[general]
run_name = gemm

[architecture_presets]
ArrayHeight: {r}
ArrayWidth: {c}
IfmapSramSzkB: {ifmap}
FilterSramSzkB: {filter}
OfmapSramSzkB: {ofmap}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {df}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

RUNNER = """
import sys
from scalesim.scale_sim import scalesim
s = scalesim(save_disk_space=True, verbose=False, config=sys.argv[1], topology=sys.argv[2],
             layout=sys.argv[3], input_type_gemm=True)
s.run_scale(top_path=sys.argv[4])
"""

FIELDS = [
    "shape", "m", "n", "k", "array", "rows", "cols", "dataflow", "cycles", "util_pct",
    "stall_cycles", "cycles_incl_prefetch", "mapping_eff_pct", "compute_util_pct",
    "sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes",
    "dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes", "scalesim_seconds",
]


def read_report(path):
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    header = [h.strip() for h in lines[0].split(",") if h.strip()]
    values = [v.strip() for v in lines[1].split(",") if v.strip()]
    return dict(zip(header, values))


def as_int(x):
    v = float(x)
    if v != int(v):
        raise ValueError(f"non-integral count {x}")
    return int(v)


def run_one(m, n, k, r, df, timeout):
    with tempfile.TemporaryDirectory(prefix="scalesim_") as tmp:
        cfg = os.path.join(tmp, "gemm.cfg")
        topo = os.path.join(tmp, "gemm_topo.csv")
        layout = os.path.join(tmp, "gemm_layout.csv")
        with open(cfg, "w") as f:
            f.write(CFG.format(r=r, c=r, df=df, **SRAM_KB))
        with open(topo, "w") as f:
            # SCALE-Sim drops the last comma-separated field of every row: rows must end with ','.
            f.write("Layer, M, N, K,\n")
            f.write(f"gemm, {m}, {n}, {k},\n")
        with open(layout, "w") as f:
            f.write("Layer,unused,\ngemm,1,\n")
        out = os.path.join(tmp, "out")
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-c", RUNNER, cfg, topo, layout, out],
                              capture_output=True, text=True, timeout=timeout)
        secs = time.time() - t0
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        comp = read_report(os.path.join(out, "gemm", "COMPUTE_REPORT.csv"))
        det = read_report(os.path.join(out, "gemm", "DETAILED_ACCESS_REPORT.csv"))
    return {
        "shape": f"{m}x{n}x{k}", "m": m, "n": n, "k": k, "array": f"{r}x{r}", "rows": r,
        "cols": r, "dataflow": df,
        "cycles": as_int(comp["Total Cycles"]),
        "util_pct": comp["Overall Util %"],
        "stall_cycles": as_int(comp["Stall Cycles"]),
        "cycles_incl_prefetch": as_int(comp["Total Cycles (incl. prefetch)"]),
        "mapping_eff_pct": comp["Mapping Efficiency %"],
        "compute_util_pct": comp["Compute Util %"],
        "sram_ifmap_reads": as_int(det["SRAM IFMAP Reads"]),
        "sram_filter_reads": as_int(det["SRAM Filter Reads"]),
        "sram_ofmap_writes": as_int(det["SRAM OFMAP Writes"]),
        "dram_ifmap_reads": as_int(det["DRAM IFMAP Reads"]),
        "dram_filter_reads": as_int(det["DRAM Filter Reads"]),
        "dram_ofmap_writes": as_int(det["DRAM OFMAP Writes"]),
        "scalesim_seconds": f"{secs:.2f}",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--resume", action="store_true", help="keep existing rows, run the rest")
    ap.add_argument("--budget-s", type=float, default=2400.0, help="total SCALE-Sim time cap")
    ap.add_argument("--timeout-s", type=float, default=600.0, help="per-run time limit")
    ap.add_argument("--max-cost", type=float, default=float("inf"),
                    help="skip runs whose estimated cost (cycles*3*rows) exceeds this")
    ap.add_argument("--shapes", default="", help="only these MxNxK shapes (comma-separated)")
    ap.add_argument("--arrays", default="", help="only these array sizes, e.g. 128")
    ap.add_argument("--dataflows", default="", help="only these dataflows, e.g. os,ws")
    args = ap.parse_args()
    only_shapes = {s for s in args.shapes.split(",") if s}
    only_arrays = {int(a) for a in args.arrays.split(",") if a}
    only_dfs = {d for d in args.dataflows.split(",") if d}

    try:
        import scalesim  # noqa: F401
    except ImportError:
        print("scalesim is not installed (pip install scalesim 'numpy<2.4'); skipping.")
        return 0

    done = set()
    if args.resume and os.path.exists(args.out):
        with open(args.out) as f:
            for row in csv.DictReader(f):
                done.add((row["shape"], row["array"], row["dataflow"]))
    else:
        with open(args.out, "w", newline="") as f:
            csv.DictWriter(f, fieldnames=FIELDS).writeheader()

    jobs = []
    for (m, n, k) in SHAPES:
        for r in ARRAYS:
            for df in DATAFLOWS:
                if (f"{m}x{n}x{k}", f"{r}x{r}", df) in done:
                    continue
                if ((only_shapes and f"{m}x{n}x{k}" not in only_shapes)
                        or (only_arrays and r not in only_arrays) or (only_dfs and df not in only_dfs)):
                    continue
                cost = est_cost(m, n, k, r, df)
                if cost <= args.max_cost:
                    jobs.append((cost, m, n, k, r, df))
    jobs.sort()
    spent = 0.0
    for cost, m, n, k, r, df in jobs:
        remaining = args.budget_s - spent
        if remaining <= 1:
            print(f"budget spent; {len(jobs)} jobs planned, stopping", flush=True)
            break
        t0 = time.time()
        try:
            row = run_one(m, n, k, r, df, timeout=min(args.timeout_s, remaining))
        except subprocess.TimeoutExpired:
            print(f"TIMEOUT {m}x{n}x{k} {r}x{r} {df} (est cost {cost:.3g})", flush=True)
            spent += time.time() - t0
            continue
        spent += time.time() - t0
        with open(args.out, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=FIELDS).writerow(row)
        print(f"{row['shape']:>14} {row['array']:>8} {df} cycles={row['cycles']} "
              f"stall={row['stall_cycles']} t={row['scalesim_seconds']}s cost={cost:.3g} "
              f"spent={spent:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
