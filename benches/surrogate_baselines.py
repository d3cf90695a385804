#!/usr/bin/env python3
"""Side-by-side baselines for the loss surrogate, on the SAME folds and features.

Input: the CSV written by

    llmforge surrogate cv --data tests/fixtures/surrogate/llmforge-iha-200m-train.csv \
        --folds 5 --seed 42 --export target/surrogate-cv.csv

which holds, per row, its id, fold, target, our out-of-fold mu / sigma and the surrogate's
feature vector. This script fits, for each fold, a random forest (scikit-learn) and XGBoost on
the other folds' rows of exactly those features, predicts the held-out fold, and prints the
metrics of every out-of-fold prediction set next to ours and the LLMForge paper's surrogate
(Forge-Former, test MAE 0.2055 nats on its own 411-row test split).

Metrics follow src/quality/surrogate/metrics.rs: MAE, RMSE, Spearman (average ranks),
Kendall tau-b, MAE on the true top 5% (lowest loss), k@1% / k@5% (smallest k such that the k
lowest predictions contain the whole true top-p%, p*n rounded up), ties broken by row order.

Skips cleanly (exit 0) when numpy, scikit-learn or xgboost is missing. Usage:

    python3 benches/surrogate_baselines.py [target/surrogate-cv.csv] [--json OUT]
"""

import csv
import json
import math
import sys
import time


def need(name):
    try:
        return __import__(name)
    except ImportError:
        print(f"surrogate_baselines: `{name}` is not installed; skipping (pip install numpy scikit-learn xgboost)")
        sys.exit(0)


np = need("numpy")
need("sklearn")
xgb = need("xgboost")
from sklearn.ensemble import RandomForestRegressor  # noqa: E402


def order(v):
    # stable: ties by row index
    return np.argsort(v, kind="stable")


def average_ranks(v):
    idx = order(v)
    ranks = np.empty(len(v))
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and v[idx[j + 1]] == v[idx[i]]:
            j += 1
        ranks[idx[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def kendall_tau_b(p, t):
    dx = np.sign(p[:, None] - p[None, :])
    dy = np.sign(t[:, None] - t[None, :])
    iu = np.triu_indices(len(p), 1)
    dx, dy = dx[iu], dy[iu]
    s = dx * dy
    conc, disc = np.sum(s > 0), np.sum(s < 0)
    tx = np.sum((dx == 0) & (dy != 0))
    ty = np.sum((dy == 0) & (dx != 0))
    den = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / den if den else float("nan")


def top_count(n, frac):
    return min(max(int(math.ceil(frac * n)), 1), max(n, 1))


def metrics(p, t):
    n = len(t)
    top = lambda frac: order(t)[: top_count(n, frac)]
    pos = np.empty(n, dtype=int)
    pos[order(p)] = np.arange(1, n + 1)
    rp, rt = average_ranks(p), average_ranks(t)
    return {
        "n": n,
        "mae": float(np.mean(np.abs(p - t))),
        "rmse": float(math.sqrt(np.mean((p - t) ** 2))),
        "spearman": float(np.corrcoef(rp, rt)[0, 1]),
        "kendall_tau_b": float(kendall_tau_b(p, t)),
        "top5_mae": float(np.mean(np.abs(p - t)[top(0.05)])),
        "k_at_1pct": int(pos[top(0.01)].max()),
        "k_at_5pct": int(pos[top(0.05)].max()),
    }


def main():
    args = [a for a in sys.argv[1:]]
    out_json = None
    if "--json" in args:
        i = args.index("--json")
        out_json = args[i + 1]
        del args[i : i + 2]
    path = args[0] if args else "target/surrogate-cv.csv"
    try:
        rows = list(csv.reader(open(path)))
    except FileNotFoundError:
        print(f"surrogate_baselines: {path} not found; write it with `llmforge surrogate cv ... --export {path}`")
        sys.exit(2)
    head = rows[0]
    feat_cols = head[6:]
    fold = np.array([int(r[2]) for r in rows[1:]])
    y = np.array([float(r[3]) for r in rows[1:]])
    ours = np.array([float(r[4]) for r in rows[1:]])
    X = np.array([[float(v) for v in r[6:]] for r in rows[1:]])
    k = int(fold.max()) + 1

    def cv(make, log_target=False):
        pred = np.empty_like(y)
        t0 = time.perf_counter()
        for f in range(k):
            tr, te = fold != f, fold == f
            yt = y[tr]
            if log_target:
                lo, hi = yt.min(), yt.max()
                s = lo - max(0.05 * (hi - lo), 1e-6 * abs(lo), 1e-9)
                yt = np.log(yt - s)
            m = make()
            m.fit(X[tr], yt)
            p = m.predict(X[te])
            pred[te] = np.exp(p) + s if log_target else p
        return pred, time.perf_counter() - t0

    results = {"ours (forust GBDT, two regimes, 8 members)": (metrics(ours, y), None)}
    rf = lambda: RandomForestRegressor(n_estimators=300, min_samples_leaf=1, max_features=0.5, random_state=0, n_jobs=2)
    p, s = cv(rf)
    results["random forest (sklearn, 300 trees)"] = (metrics(p, y), s)
    p, s = cv(rf, log_target=True)
    results["random forest, log-shift target"] = (metrics(p, y), s)
    xg = lambda obj: (
        lambda: xgb.XGBRegressor(
            n_estimators=400,
            learning_rate=0.05,
            max_depth=5,
            subsample=0.8,
            colsample_bytree=0.5,
            min_child_weight=3,
            objective=obj,
            random_state=0,
            n_jobs=1,
        )
    )
    p, s = cv(xg("reg:squarederror"))
    results["xgboost (squared error)"] = (metrics(p, y), s)
    p, s = cv(xg("reg:squarederror"), log_target=True)
    results["xgboost, log-shift target"] = (metrics(p, y), s)
    p, s = cv(xg("reg:absoluteerror"))
    results["xgboost (absolute error)"] = (metrics(p, y), s)

    print(f"{k}-fold out-of-fold metrics on {len(y)} rows, {X.shape[1]} features, folds from {path}")
    cols = ["mae", "rmse", "spearman", "kendall_tau_b", "top5_mae", "k_at_1pct", "k_at_5pct"]
    print(f"{'model':<38}" + "".join(f"{c:>14}" for c in cols) + f"{'cv time s':>11}")
    for name, (m, secs) in results.items():
        vals = "".join(f"{m[c]:>14.4f}" if isinstance(m[c], float) else f"{m[c]:>14d}" for c in cols)
        print(f"{name:<38}{vals}{(f'{secs:>11.1f}' if secs is not None else ' ' * 11)}")
    print(f"{'LLMForge Forge-Former (paper, own split)':<38}{0.2055:>14.4f}" + f"{'-':>14}" * 6)
    if out_json:
        with open(out_json, "w") as fh:
            json.dump({n: m for n, (m, _) in results.items()}, fh, indent=2)


if __name__ == "__main__":
    main()
