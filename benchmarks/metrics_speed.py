"""Speed of the vectorised bootstrap (AP, DEO, BA, KL) vs the per-resample loop and fairlearn.

Usage::

    python benchmarks/metrics_speed.py                       # 20k and 1M samples, 500 resamples
    python benchmarks/metrics_speed.py --sizes 20000 --quick # smoke run

Writes ``benchmarks/results/metrics_speed.json``. Three implementations run side by side in the same
process on the same synthetic data (binary target, binary protected attribute, sigmoid scores):

* ``debiaskit``: ``bootstrap(metric, ..., n_boot=500)`` for AP, DEO, BA (CVPR 2021 form) and KL (official
  CVPR 2021 recipe, pooled) — count-matrix resamples, batched evaluation;
* ``loop``: the straightforward per-resample loop the CVPR 2021 code uses — draw indices, then
  ``sklearn.metrics.average_precision_score``, ``recall_score`` per group, the BA formula in NumPy and
  ``np.histogram`` + ``scipy.ndimage.gaussian_filter`` for KL, once per resample;
* ``fairlearn``: ``MetricFrame(..., n_boot=...)`` bootstrap of per-group TPR (DEO = its difference) — the
  only one of these metrics fairlearn has.

Loops that would take minutes are run on fewer resamples (``--loop-resamples``) and extrapolated linearly
to ``n_boot``; the JSON says which numbers are measured and which are extrapolated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = (rng.random(n) < 0.45).astype(np.int64)
    y = (rng.random(n) < 0.3 + 0.3 * g).astype(np.int64)
    s = 1.0 / (1.0 + np.exp(-(1.5 * (2 * y - 1) + 0.4 * g + rng.normal(size=n))))
    p = (s > 0.5).astype(np.int64)
    return y, s, g, p


# ---- the per-resample loop (what the CVPR 2021 code does) -------------------------------------------


def loop_metrics(y, s, g, p, idx_iter):
    from scipy.ndimage import gaussian_filter
    from sklearn.metrics import average_precision_score, recall_score

    def dist(x):
        h, _ = np.histogram(x, bins=50)
        h = gaussian_filter(h, 1)
        return h / h.sum() + 1e-6

    def kl(a, b):
        m = a != 0
        return float(np.sum(a[m] * np.log(a[m] / b[m])))

    times = {"ap": 0.0, "deo": 0.0, "ba": 0.0, "kl": 0.0}
    vals = {"ap": [], "deo": [], "ba": [], "kl": []}
    for idx in idx_iter:
        yy, ss, gg, pp = y[idx], s[idx], g[idx], p[idx]
        t0 = time.perf_counter()
        vals["ap"].append(average_precision_score(yy, ss))
        t1 = time.perf_counter()
        vals["deo"].append(abs(recall_score(yy[gg == 0], pp[gg == 0], zero_division=0)
                               - recall_score(yy[gg == 1], pp[gg == 1], zero_division=0)))
        t2 = time.perf_counter()
        ba = 0.0
        for t in (0, 1):
            for a in (0, 1):
                ind = np.sign(np.mean((yy == t) & (gg == a)) - np.mean(yy == t) * np.mean(gg == a))
                ba += ind * (np.mean(pp[gg == a] == t) - np.mean(yy[gg == a] == t))
        vals["ba"].append(ba / 4)
        t3 = time.perf_counter()
        pooled = []
        for cls in (1, 0):
            A, B = dist(ss[(yy == cls) & (gg == 0)]), dist(ss[(yy == cls) & (gg == 1)])
            pooled += [kl(A, B), kl(B, A)]
        vals["kl"].append(pooled)
        t4 = time.perf_counter()
        times["ap"] += t1 - t0
        times["deo"] += t2 - t1
        times["ba"] += t3 - t2
        times["kl"] += t4 - t3
    return times, vals


def run_size(n: int, n_boot: int, loop_resamples: int, fairlearn_resamples: int, seed: int) -> dict:
    from debiaskit.metrics import average_precision, bias_amplification_cvpr21, bootstrap, bootstrap_many, deo, score_kl
    from debiaskit.metrics.bootstrap import resample_weights

    y, s, g, p = make_data(n, seed)
    out: dict = {"n": n, "n_boot": n_boot}

    # debiaskit, vectorised: each metric on its own, then all four sharing one resample draw
    ours = {}
    ours_cpu = {}
    res = {}
    jobs = {
        "ap": (average_precision, (y, s), {}),
        "deo": (deo, (y, p, g), {}),
        "ba": (bias_amplification_cvpr21, (y, p, g), {}),
        "kl": (score_kl, (y, s, g), {"mode": "official", "reduction": "none", "pool": True}),
    }
    # (the KL entry pools its four directional values, as the CVPR 2021 code does)
    for name, (fn, arrays, kw) in jobs.items():
        t0, c0 = time.perf_counter(), time.process_time()
        res[name] = bootstrap(fn, *arrays, n_boot=n_boot, seed=seed, convention="cvpr21", **kw)
        ours[name] = time.perf_counter() - t0
        ours_cpu[name] = time.process_time() - c0
    ours["total"] = sum(ours.values())
    ours_cpu["total"] = sum(ours_cpu.values())
    t0, c0 = time.perf_counter(), time.process_time()
    many = bootstrap_many({k: (fn, arrays, {kk: vv for kk, vv in kw.items() if kk != "pool"})
                           for k, (fn, arrays, kw) in jobs.items()},
                          n_boot=n_boot, seed=seed, convention="cvpr21", pool={"kl": True})
    ours["all_four_shared_resamples"] = time.perf_counter() - t0
    ours_cpu["all_four_shared_resamples"] = time.process_time() - c0
    assert all(np.allclose(many[k].values, res[k].values, equal_nan=True) for k in jobs)
    out["debiaskit_seconds"] = ours
    out["debiaskit_cpu_seconds"] = ours_cpu
    out["debiaskit_cvpr21_values"] = {k: {"median": r.median, "two_sigma": 2 * r.std} for k, r in res.items()}

    # exactness: the loop on the same first resamples gives the same numbers
    W = next(resample_weights(n, min(3, n_boot), seed=seed))
    idx = [np.repeat(np.arange(n), w) for w in W[:3]]
    _, lv = loop_metrics(y, s, g, p, idx)
    diffs = {
        "ap": float(np.max(np.abs(np.array(lv["ap"]) - res["ap"].values[: len(idx)]))),
        "deo": float(np.max(np.abs(np.array(lv["deo"]) - res["deo"].values[: len(idx)]))),
        "ba": float(np.max(np.abs(np.array(lv["ba"]) - res["ba"].values[: len(idx)]))),
        "kl": float(np.nanmax(np.abs(np.array(lv["kl"]).reshape(-1) - res["kl"].values[: 4 * len(idx)]))),
    }
    out["max_abs_diff_vs_loop_on_same_resamples"] = diffs
    out["debiaskit_cvpr21_values"]["note"] = "median of 500 resamples and 2*std (CVPR 2021 reporting convention)"

    # per-resample loop (CVPR 2021 style: fresh indices per resample)
    rng = np.random.default_rng(seed)
    k = min(loop_resamples, n_boot)
    t0, c0 = time.perf_counter(), time.process_time()
    lt, _ = loop_metrics(y, s, g, p, (rng.integers(0, n, n) for _ in range(k)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    scale = n_boot / k
    loop = {m: v * scale for m, v in lt.items()}
    loop["total"] = wall * scale  # includes index draws and fancy indexing
    out["loop_seconds"] = loop
    out["loop_cpu_seconds_total"] = cpu * scale
    out["loop_resamples_measured"] = k
    out["loop_extrapolated"] = k < n_boot
    out["speedup_vs_loop"] = {m: loop[m] / ours[m] for m in ("ap", "deo", "ba", "kl", "total")}
    out["speedup_vs_loop"]["total_shared_resamples"] = loop["total"] / ours["all_four_shared_resamples"]
    out["speedup_vs_loop_cpu_time"] = out["loop_cpu_seconds_total"] / ours_cpu["all_four_shared_resamples"]

    # fairlearn MetricFrame + bootstrap (DEO only: per-group TPR)
    try:
        from fairlearn.metrics import MetricFrame, true_positive_rate

        kf = min(fairlearn_resamples, n_boot)
        t0, c0 = time.perf_counter(), time.process_time()
        mf = MetricFrame(metrics={"tpr": true_positive_rate}, y_true=y, y_pred=p, sensitive_features=g,
                         n_boot=kf, ci_quantiles=[0.025, 0.975], random_state=seed)
        _ = mf.difference()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        fl_sec = wall * n_boot / kf
        out["fairlearn_deo_seconds"] = fl_sec
        out["fairlearn_deo_cpu_seconds"] = cpu * n_boot / kf
        out["fairlearn_resamples_measured"] = kf
        out["fairlearn_extrapolated"] = kf < n_boot
        out["speedup_deo_vs_fairlearn"] = fl_sec / ours["deo"]
    except Exception as e:  # pragma: no cover - fairlearn is a dev dependency
        out["fairlearn_error"] = f"{type(e).__name__}: {e}"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,1000000")
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--loop-resamples", default="500,10", help="per size: resamples actually run in the loop")
    ap.add_argument("--fairlearn-resamples", default="20,2", help="per size: resamples run with fairlearn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "metrics_speed.json"))
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    lr = [int(x) for x in args.loop_resamples.split(",")]
    fr = [int(x) for x in args.fairlearn_resamples.split(",")]
    if args.quick:
        sizes, args.n_boot, lr, fr = [2000], 50, [50], [10]
    import debiaskit
    from debiaskit.io import write_json

    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    record = {
        "benchmark": "metrics_speed",
        "debiaskit_version": debiaskit.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        "loadavg_at_start": load,
        "seed": args.seed,
        "command": " ".join(["python", "benchmarks/metrics_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "results": [],
    }
    for i, n in enumerate(sizes):
        r = run_size(n, args.n_boot, lr[min(i, len(lr) - 1)], fr[min(i, len(fr) - 1)], args.seed)
        record["results"].append(r)
        print(json.dumps({k: r[k] for k in ("n", "debiaskit_seconds", "speedup_vs_loop")}, default=float), flush=True)
    try:
        record["loadavg_at_end"] = os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
