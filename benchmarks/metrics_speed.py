"""Speed of the vectorised bootstrap (AP, DEO, BA, KL) vs the per-resample loop, on the same resamples.

Usage::

    python benchmarks/metrics_speed.py                         # 2k, 20k, 200k and 1M samples, 500 resamples
    python benchmarks/metrics_speed.py --sizes 20000 --quick   # smoke run

Writes ``benchmarks/results/metrics_speed.json``. Everything runs single-threaded (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` = 1 and ``torch.set_num_threads(1)``) in one process on the
same synthetic data (binary target, binary protected attribute, sigmoid scores, predictions at 0.5):

* ``debiaskit``: ``bootstrap(metric, ..., n_boot=500)`` for AP, DEO, BA (CVPR 2021 form) and KL (official
  CVPR 2021 recipe, pooled) — each on its own (resample draws included) and all four with
  ``bootstrap_many`` on shared resamples;
* ``loop``: the per-resample loop of the CVPR 2021 code (``sklearn.metrics.average_precision_score``,
  ``recall_score`` per group, the BA formula in NumPy, ``np.histogram`` + ``scipy.ndimage.gaussian_filter``
  for KL), run **on the same resamples** (the count rows of ``resample_blocks(n, k, seed)``, the resamples
  ``bootstrap`` draws; the index vector of resample b is ``np.repeat(arange(n), W[b])``; building it is
  timed as part of the loop, as drawing the indices is in the official code);
* ``fairlearn``: ``MetricFrame(..., n_boot=...)`` bootstrap of per-group TPR (DEO = its difference) at the
  sizes where it finishes in reasonable time.

Loops that would take minutes run on the first ``--loop-resamples`` resamples and are extrapolated
linearly to ``n_boot``; the JSON says which numbers are measured and which are extrapolated, and records
the load average and CPU seconds next to wall seconds (on one thread, CPU time is the fairer measure on a
shared machine, though other jobs' cache pressure still inflates it).
"""

from __future__ import annotations

import os

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

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
    """Official-style metrics per resample; ``times`` include building each resample's index vector."""
    from scipy.ndimage import gaussian_filter
    from sklearn.metrics import average_precision_score, recall_score

    def dist(x):
        h, _ = np.histogram(x, bins=50)
        h = gaussian_filter(h, 1)
        return h / h.sum() + 1e-6

    def kl(a, b):
        m = a != 0
        return float(np.sum(a[m] * np.log(a[m] / b[m])))

    times = {"index": 0.0, "ap": 0.0, "deo": 0.0, "ba": 0.0, "kl": 0.0}
    vals: dict[str, list] = {"ap": [], "deo": [], "ba": [], "kl": []}
    it = iter(idx_iter)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        while True:
            t0 = time.perf_counter()
            try:
                idx = next(it)
            except StopIteration:
                break
            yy, ss, gg, pp = y[idx], s[idx], g[idx], p[idx]
            t1 = time.perf_counter()
            vals["ap"].append(average_precision_score(yy, ss))
            t2 = time.perf_counter()
            vals["deo"].append(abs(recall_score(yy[gg == 0], pp[gg == 0], zero_division=0)
                                   - recall_score(yy[gg == 1], pp[gg == 1], zero_division=0)))
            t3 = time.perf_counter()
            ba = 0.0
            for t in (0, 1):
                for a in (0, 1):
                    ind = np.sign(np.mean(yy[gg == a] == t) - np.mean(yy == t))
                    ba += ind * (np.mean(pp[gg == a] == t) - np.mean(yy[gg == a] == t))
            vals["ba"].append(ba / 4)
            t4 = time.perf_counter()
            pooled = []
            for cls in (1, 0):
                A, B = dist(ss[(yy == cls) & (gg == 0)]), dist(ss[(yy == cls) & (gg == 1)])
                pooled += [kl(A, B), kl(B, A)]
            vals["kl"].append(pooled)
            t5 = time.perf_counter()
            times["index"] += t1 - t0
            times["ap"] += t2 - t1
            times["deo"] += t3 - t2
            times["ba"] += t4 - t3
            times["kl"] += t5 - t4
    return times, vals


def _indices(n: int, k: int, seed: int):
    """Index vectors of the first k resamples of ``bootstrap(..., seed=seed)``."""
    from debiaskit.metrics.bootstrap import resample_blocks

    base = np.arange(n)
    done = 0
    for R in resample_blocks(n, k, seed=seed):
        for w in R.W:
            yield np.repeat(base, w)
            done += 1


def run_size(n: int, n_boot: int, loop_resamples: int, fairlearn_resamples: int, seed: int) -> dict:
    from debiaskit.metrics import average_precision, bias_amplification_cvpr21, bootstrap, bootstrap_many, deo, score_kl

    y, s, g, p = make_data(n, seed)
    out: dict = {"n": n, "n_boot": n_boot}
    jobs = {
        "ap": (average_precision, (y, s), {}),
        "deo": (deo, (y, p), {"sensitive_features": g}),
        "ba": (bias_amplification_cvpr21, (y, p), {"sensitive_features": g}),
        "kl": (score_kl, (y, s), {"sensitive_features": g, "mode": "official", "reduction": "none"}),
    }
    pool = {"kl": True}  # the CVPR 2021 KL pools its four directional values
    ours, ours_cpu, res = {}, {}, {}
    bootstrap(average_precision, y[:100], s[:100], n_boot=2)  # warm-up (imports) of both implementations
    loop_metrics(y[:200], s[:200], g[:200], p[:200], [np.arange(200)])
    for name, (fn, arrays, kw) in jobs.items():
        t0, c0 = time.perf_counter(), time.process_time()
        res[name] = bootstrap(fn, *arrays, n_boot=n_boot, seed=seed, convention="cvpr21", pool=pool.get(name, False), **kw)
        ours[name] = time.perf_counter() - t0
        ours_cpu[name] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    many = bootstrap_many(jobs, n_boot=n_boot, seed=seed, convention="cvpr21", pool=pool)
    ours["all_four_shared_resamples"] = time.perf_counter() - t0
    ours_cpu["all_four_shared_resamples"] = time.process_time() - c0
    assert all(np.array_equal(many[k].values, res[k].values, equal_nan=True) for k in jobs)
    out["debiaskit_seconds"] = ours
    out["debiaskit_cpu_seconds"] = ours_cpu
    out["debiaskit_cvpr21_values"] = {k: {"median": r.median, "two_sigma": 2 * r.std} for k, r in res.items()}
    out["debiaskit_cvpr21_values"]["note"] = "median of the resamples and 2·np.std (CVPR 2021 reporting convention)"

    # the per-resample loop on the same resamples
    k = min(loop_resamples, n_boot)
    t0, c0 = time.perf_counter(), time.process_time()
    lt, lv = loop_metrics(y, s, g, p, _indices(n, k, seed))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    diffs = {
        "ap": float(np.nanmax(np.abs(np.array(lv["ap"]) - res["ap"].values[:k]))),
        "deo": float(np.nanmax(np.abs(np.array(lv["deo"]) - res["deo"].values[:k]))),
        "ba": float(np.nanmax(np.abs(np.array(lv["ba"]) - res["ba"].values[:k]))),
        "kl": float(np.nanmax(np.abs(np.array(lv["kl"]).reshape(-1) - res["kl"].values[: 4 * k]))),
    }
    out["max_abs_diff_vs_loop_on_same_resamples"] = diffs
    scale = n_boot / k
    loop = {m: v * scale for m, v in lt.items()}
    loop["total"] = wall * scale
    out["loop_seconds"] = loop
    out["loop_cpu_seconds_total"] = cpu * scale
    out["loop_resamples_measured"] = k
    out["loop_extrapolated"] = k < n_boot
    # a metric's loop time includes its share of building the resample (the index vector)
    per = {m: loop[m] + loop["index"] for m in ("ap", "deo", "ba", "kl")}
    out["speedup_vs_loop"] = {m: per[m] / ours[m] for m in per}
    out["speedup_vs_loop"]["all_four_shared_resamples"] = loop["total"] / ours["all_four_shared_resamples"]
    out["speedup_vs_loop_cpu_time"] = out["loop_cpu_seconds_total"] / ours_cpu["all_four_shared_resamples"]

    # fairlearn MetricFrame + bootstrap (DEO only: per-group TPR)
    if fairlearn_resamples > 0:
        try:
            from fairlearn.metrics import MetricFrame, true_positive_rate

            kf = min(fairlearn_resamples, n_boot)
            t0, c0 = time.perf_counter(), time.process_time()
            mf = MetricFrame(metrics={"tpr": true_positive_rate}, y_true=y, y_pred=p, sensitive_features=g,
                             n_boot=kf, ci_quantiles=[0.025, 0.975], random_state=seed)
            _ = mf.difference()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            out["fairlearn_deo_seconds"] = wall * n_boot / kf
            out["fairlearn_deo_cpu_seconds"] = cpu * n_boot / kf
            out["fairlearn_resamples_measured"] = kf
            out["fairlearn_extrapolated"] = kf < n_boot
            out["speedup_deo_vs_fairlearn"] = out["fairlearn_deo_seconds"] / ours["deo"]
        except Exception as e:  # pragma: no cover - fairlearn is a dev dependency
            out["fairlearn_error"] = f"{type(e).__name__}: {e}"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,20000,200000,1000000")
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--loop-resamples", default="500,500,50,10", help="per size: resamples actually run in the loop")
    ap.add_argument("--fairlearn-resamples", default="20,20,0,0", help="per size: resamples run with fairlearn (0 = skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "metrics_speed.json"))
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    lr = [int(x) for x in args.loop_resamples.split(",")]
    fr = [int(x) for x in args.fairlearn_resamples.split(",")]
    if args.quick:
        sizes, args.n_boot, lr, fr = [2000], 50, [50], [5]
    import torch

    torch.set_num_threads(1)
    import debiaskit
    from debiaskit.io import write_json
    from debiaskit.metrics import _batched

    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    record = {
        "benchmark": "metrics_speed",
        "debiaskit_version": debiaskit.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": {**{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
                    "torch": torch.get_num_threads()},
        "loadavg_at_start": load,
        "engine": {"sub_block_entries": _batched.SUB_ELEMENTS,
                   "note": "sub-blocks; one (class, score) order shared by AP, official KL, cell counts"},
        "seed": args.seed,
        "command": " ".join(["python", "benchmarks/metrics_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "results": [],
    }
    for i, n in enumerate(sizes):
        r = run_size(n, args.n_boot, lr[min(i, len(lr) - 1)], fr[min(i, len(fr) - 1)], args.seed)
        try:
            r["loadavg_after"] = os.getloadavg()
        except OSError:  # pragma: no cover
            pass
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
