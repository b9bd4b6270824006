"""Vectorised bootstrap confidence intervals for any metric.

Resamples (n draws with replacement from n samples, the ordinary multinomial bootstrap) are the rows of
``default_rng(seed).integers(0, n, size=(n_boot, n))`` (int32 indices), drawn a few rows at a time and
counted into count matrices ``W`` (``W[b, i]`` = how often sample i is in resample b; see
:mod:`debiaskit.metrics._batched`). How the draws are split into blocks does not change them, so the
resamples depend only on ``(seed, n, n_boot)``: **two metrics bootstrapped with the same seed on the same
samples use the same resamples** (a joint bootstrap). Built-in metrics (those with a ``batched`` attribute)
evaluate a whole block of resamples with array operations — there is no Python loop over resamples.
:func:`bootstrap_many` draws blocks into one reused buffer and evaluates them in sub-blocks of about
``_batched.SUB_ELEMENTS`` count-matrix entries, so memory stays bounded at any n and the per-entry passes
run in cache; AP, the official KL and cell-count metrics on the same labels, scores and groups share one
ordered copy of each sub-block and its cumulative sums (see ``docs/metrics.md``, "Speed"). Any other callable
``metric(*arrays, **kw)`` is supported with a per-resample loop over the same resamples.

Calling convention: per-sample arrays are passed positionally (``y_true, y_pred`` or ``y_true, y_score``)
and, for group metrics, as ``sensitive_features=``; all of them are resampled jointly. Every other keyword
is passed to the metric unchanged.

Interval methods (``ci_method``):

* ``"percentile"``: the (1−ci)/2 and (1+ci)/2 quantiles of the resampled values;
* ``"basic"``: 2·point − those quantiles (the reflected percentile interval);
* ``"bca"``: bias-corrected and accelerated percentile interval (Efron 1987, J. Amer. Statist. Assoc.
  82:171–185): bias correction z0 from the share of resampled values below the point value (ties count
  half), acceleration from a jackknife evaluated with the same batched code (leave-one-out for n ≤ 1000,
  else 1000 random groups of samples left out in turn);
* ``"simultaneous"``: for statistics that are gaps or ratios between groups (DEO, equalized-odds and
  demographic-parity differences and ratios): a simultaneous max-t bootstrap band for the per-group rates
  (all of them covered at once with probability ≈ ci), mapped through the max/min of the gap. Conservative,
  and it always contains the point value;
* ``"2sigma"``: estimate ± 2·std — the CVPR 2021 reporting convention (Ramaswamy et al., gan-debiasing
  ``main.py``), available as ``convention="cvpr21"`` (median of 500, ± 2σ with the population std);
* ``"auto"`` (default): ``"simultaneous"`` for gap/ratio metrics, ``"percentile"`` otherwise.

Why not the percentile interval for gaps: the largest gap between groups is biased upwards under
resampling (every resample adds noise to every group, and max − min turns noise into gap), so with many
groups the whole bootstrap distribution can lie above the point value; see ``docs/metrics.md``.

Resamples where the metric is undefined (e.g. a group without positives) give NaN; they are excluded from
the statistics and counted in ``n_nan``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import BatchedSpec, Resamples, Workspace, ones_weights, sub_rows
from debiaskit.metrics._validation import ArrayLike, as_numpy, check_lengths

__all__ = [
    "BootstrapResult",
    "CI_METHODS",
    "bootstrap",
    "bootstrap_many",
    "resample_blocks",
    "resample_weights",
    "jackknife_blocks",
    "block_rows",
    "interval",
]

CIMethod = Literal["auto", "percentile", "basic", "bca", "simultaneous", "2sigma"]
CI_METHODS = ("auto", "percentile", "basic", "bca", "simultaneous", "2sigma")

_DRAW_ELEMENTS = 1 << 18  # indices drawn per call of the generator (bounded scratch; the stream is the same)
_BLOCK_ELEMENTS = 1 << 23  # count-matrix entries per block (uint8: 8 MB) ...
_MIN_BLOCK_ROWS = 32  # ... but at least this many rows while a block stays below _MAX_BLOCK_ELEMENTS, so that
_MAX_BLOCK_ELEMENTS = 1 << 25  # per-block costs (one-hot cell tables, Python calls) are shared by enough rows
#: leave-one-out jackknife up to this many samples, else this many random groups left out in turn
JACKKNIFE_GROUPS = 1000
_N = NormalDist()

#: per-sample keyword arguments resampled together with the positional arrays
RESAMPLED_KEYWORDS = ("sensitive_features",)


def block_rows(n: int, n_boot: int) -> int:
    """Rows per block of resamples for ``n`` samples (depends only on n and n_boot)."""
    n = max(n, 1)
    rows = max(_BLOCK_ELEMENTS // n, min(_MIN_BLOCK_ROWS, _MAX_BLOCK_ELEMENTS // n))
    return max(1, min(n_boot, rows))


def _draw_counts(rng: np.random.Generator, W: np.ndarray, draw_rows: int) -> np.ndarray:
    """Fill ``W`` ``(b, n)`` (uint8) with the count vectors of the next ``b`` resamples of ``rng`` (returns
    ``W``, or an int32 copy in the overflow case below).

    The indices are drawn ``draw_rows`` rows per call of the generator (NumPy's bounded-integer stream does
    not depend on how the draws are split into calls) and counted row by row with ``torch.scatter_add_``
    into ``W`` (faster than ``index_add_`` or ``bincount`` here). A row whose sum is not ``n`` had a count
    above 255 (practically impossible: one sample drawn 256 times); the block is then widened to int32 and
    that row recounted, so counts stay exact.
    """
    b, n = W.shape
    W.fill(0)
    tW = torch.from_numpy(W)
    ones = torch.ones(n, dtype=torch.uint8)
    recount: list[tuple[int, np.ndarray]] = []
    for r0 in range(0, b, draw_rows):
        k = min(draw_rows, b - r0)
        # int64 indices (what scatter_add_ takes): for n < 2**32 NumPy draws them with the same 32-bit
        # bounded generator as int32 indices, so the stream is the one of rng.integers(..., dtype=np.int32)
        idx = rng.integers(0, n, size=(k, n), dtype=np.int64)
        ti = torch.from_numpy(idx)
        for j in range(k):
            tW[r0 + j].scatter_add_(0, ti[j], ones)
        if n >= 256:  # row sums of uint8 counts fit uint32 up to 16.8M samples
            sums = W[r0 : r0 + k].sum(1, dtype=np.uint32 if n < 2**24 else np.uint64)
            recount += [(r0 + int(j), np.bincount(idx[j], minlength=n)) for j in np.flatnonzero(sums != n)]
    if recount:
        W = W.astype(np.int32)
        for r, c in recount:
            W[r] = c
    return W


def _resample_blocks(n: int, n_boot: int, *, seed: int | np.random.Generator, ws: Workspace | None,
                     rows: int | None = None) -> Iterator[Resamples]:
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    rows = block_rows(n, n_boot) if rows is None else max(1, min(int(rows), n_boot))
    draw_rows = max(1, _DRAW_ELEMENTS // max(n, 1))
    done = 0
    while done < n_boot:
        b = min(rows, n_boot - done)
        buf = ws.get("blk.W", (b, n), np.uint8) if ws is not None else np.empty((b, n), dtype=np.uint8)
        R = Resamples(_draw_counts(rng, buf, draw_rows), ws=ws)
        R._cache["totals"] = np.full(b, float(n))  # every multinomial resample has n draws (checked above)
        yield R
        done += b


def resample_blocks(n: int, n_boot: int, *, seed: int | np.random.Generator = 0) -> Iterator[Resamples]:
    """Yield blocks of bootstrap resamples (count matrices ``(b, n)``, b ≤ block size), ``n_boot`` in total.

    The resamples are the rows of ``rng.integers(0, n, size=(n_boot, n))`` (``rng = default_rng(seed)``,
    int32 indices) turned into counts; they depend only on ``(seed, n, n_boot)``, not on the block size.
    Every block is a fresh array (the engine of :func:`bootstrap_many` reuses one buffer instead).
    """
    return _resample_blocks(n, n_boot, seed=seed, ws=None)


def resample_weights(n: int, n_boot: int, *, seed: int | np.random.Generator = 0) -> Iterator[np.ndarray]:
    """Yield int32 count matrices ``(b, n)`` (``W[b, i]`` = copies of sample i) for ``n_boot`` resamples."""
    for R in resample_blocks(n, n_boot, seed=seed):
        yield R.W.astype(np.int32)


def jackknife_blocks(n: int, *, seed: int = 0) -> Iterator[Resamples]:
    """Count matrices of the jackknife replicates used for BCa: leave one sample (n ≤ 1000) or one of 1000
    random groups of samples out in turn. Deterministic in ``seed``; independent of the bootstrap stream."""
    if n <= JACKKNIFE_GROUPS:
        label = np.arange(n)
        K = n
    else:
        rng = np.random.default_rng([int(seed), 0x4A4B])
        label = rng.permutation(n) % JACKKNIFE_GROUPS
        K = JACKKNIFE_GROUPS
    rows = block_rows(n, K)
    for start in range(0, K, rows):
        ks = np.arange(start, min(K, start + rows))
        yield Resamples((label[None, :] != ks[:, None]).astype(np.uint8))


@dataclass
class BootstrapResult:
    """Bootstrap summary of one metric (scalar metric: floats; vector metric: arrays)."""

    point: Any  # metric on the original sample
    median: Any
    mean: Any
    std: Any
    ci_low: Any
    ci_high: Any
    estimate: Any  # the value chosen by ``stat`` (point, median or mean)
    n_boot: int
    n_nan: Any
    ci: float
    ci_method: str
    stat: str
    ddof: int
    seed: int | None
    values: np.ndarray = field(repr=False)
    details: dict[str, Any] = field(default_factory=dict, repr=False)  # bca: z0, acceleration

    def to_dict(self, *, values: bool = False) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, np.generic):
                return v.item()
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v

        d = {k: conv(getattr(self, k)) for k in (
            "estimate", "point", "median", "mean", "std", "ci_low", "ci_high", "n_boot", "n_nan", "ci",
            "ci_method", "stat", "ddof", "seed", "details")}
        if values:
            d["values"] = self.values.tolist()
        return d


# ---- intervals ---------------------------------------------------------------------------------------


def _bca_1d(values: np.ndarray, point: float, jack: np.ndarray, ci: float) -> tuple[float, float, float, float]:
    v = values[np.isfinite(values)]
    j = jack[np.isfinite(jack)]
    if not np.isfinite(point) or v.size < 2:
        return np.nan, np.nan, np.nan, np.nan
    B = v.size
    p = (np.count_nonzero(v < point) + 0.5 * np.count_nonzero(v == point)) / B
    p = min(max(p, 0.5 / B), 1 - 0.5 / B)
    z0 = _N.inv_cdf(p)
    a = 0.0
    if j.size >= 3:
        d = j.mean() - j
        s2 = float((d * d).sum())
        if s2 > 0:
            a = float((d**3).sum() / (6.0 * s2**1.5))
    qs = []
    for alpha in ((1 - ci) / 2, (1 + ci) / 2):
        z = _N.inv_cdf(alpha)
        den = 1 - a * (z0 + z)
        qs.append(_N.cdf(z0 + (z0 + z) / den) if den > 0 else (0.0 if alpha < 0.5 else 1.0))
    lo, hi = np.quantile(v, qs)
    return float(lo), float(hi), z0, a


def interval(
    values: np.ndarray,
    point: np.ndarray,
    *,
    ci: float,
    method: str,
    jackknife: np.ndarray | None = None,
    centre: np.ndarray | None = None,
    ddof: int = 1,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Confidence interval from resampled ``values`` ``(B, ...)`` for the point value ``point`` ``(...)``.

    ``method`` is ``"percentile"``, ``"basic"``, ``"bca"`` (needs ``jackknife`` values ``(K, ...)``) or
    ``"2sigma"`` (``centre`` ± 2·std). NaN values are ignored. Returns ``(low, high, details)``.
    """
    values = np.asarray(values, dtype=np.float64)
    point = np.asarray(point, dtype=np.float64)
    details: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if method in ("percentile", "basic"):
            lo, hi = np.nanquantile(values, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
            if method == "basic":
                lo, hi = 2 * point - hi, 2 * point - lo
        elif method == "2sigma":
            sd = np.nanstd(values, axis=0, ddof=ddof) if len(values) > ddof else np.full(point.shape, np.nan)
            c = point if centre is None else np.asarray(centre, dtype=np.float64)
            lo, hi = c - 2 * sd, c + 2 * sd
        elif method == "bca":
            if jackknife is None:
                raise ValueError("bca needs jackknife values")
            shape = point.shape
            V = values.reshape(len(values), -1)
            J = np.asarray(jackknife, dtype=np.float64).reshape(len(jackknife), -1)
            P = point.reshape(-1)
            out = np.array([_bca_1d(V[:, k], P[k], J[:, k], ci) for k in range(P.size)]).reshape(*shape, 4)
            lo, hi = out[..., 0], out[..., 1]
            details = {"z0": out[..., 2], "acceleration": out[..., 3]}
        else:
            raise ValueError(f"unknown interval method {method!r}")
    return np.asarray(lo), np.asarray(hi), details


def simultaneous_band(
    comps: np.ndarray, point: np.ndarray, *, ci: float, clip: tuple[float, float] | None = (0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray, float]:
    """Max-t simultaneous band ``point ± c·sd`` covering all components at once (≈ ci).

    ``comps`` ``(B, m)`` resampled components, ``point`` ``(m,)``. ``c`` is the ci-quantile over resamples of
    ``max_j |comps_bj − point_j| / sd_j``; components that are constant across resamples get a zero-width
    band, undefined ones (NaN point) a NaN band. Values are clipped to ``clip`` (rates lie in [0, 1]).
    """
    comps = np.asarray(comps, dtype=np.float64)
    point = np.asarray(point, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(comps, axis=0, ddof=1)
        dev = np.abs(comps - point)
        t = np.where(sd > 0, dev / np.where(sd > 0, sd, 1.0), 0.0)
        t = np.where(np.isfinite(dev), t, np.nan)
        tmax = np.nanmax(np.where(np.isfinite(point), t, np.nan), axis=1) if t.size else np.zeros(len(comps))
        c = float(np.nanquantile(tmax, ci)) if np.isfinite(tmax).any() else 0.0
    sd0 = np.where(np.isfinite(sd), sd, 0.0)
    lo, hi = point - c * sd0, point + c * sd0
    if clip is not None:
        lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
    return lo, hi, c


def extremum_bounds(lo: np.ndarray, hi: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Interval of ``max − min`` (``kind="difference"``) or ``min / max`` (``"ratio"``) over the last axis
    when each entry lies in ``[lo, hi]``; NaN if any entry is undefined."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    bad = np.isnan(lo).any(-1) | np.isnan(hi).any(-1)
    if kind == "difference":
        a = np.maximum(lo.max(-1) - hi.min(-1), 0.0)
        b = hi.max(-1) - lo.min(-1)
    elif kind == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(hi.max(-1) > 0, lo.min(-1) / hi.max(-1), np.nan)
            b = np.where(lo.max(-1) > 0, np.minimum(hi.min(-1) / lo.max(-1), 1.0), 1.0)
    else:
        raise ValueError(kind)
    return np.where(bad, np.nan, a), np.where(bad, np.nan, b)


# ---- summaries ---------------------------------------------------------------------------------------


def _resolve(ci_method: str, spec: BatchedSpec | None, pooled: bool) -> str:
    if ci_method == "auto":
        return "simultaneous" if (spec is not None and spec.bounds is not None and not pooled) else "percentile"
    return ci_method


def _summarise(values: np.ndarray, point: Any, *, stat: str, ci: float, ci_method: str, seed: Any, ddof: int,
               jack: np.ndarray | None, simult: tuple[np.ndarray, np.ndarray] | None) -> BootstrapResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(values, axis=0)
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0, ddof=ddof) if len(values) > ddof else np.full(values.shape[1:], np.nan)
    centre = {"point": np.asarray(point, dtype=np.float64), "median": med, "mean": mean}[stat]
    details: dict[str, Any] = {}
    if ci_method == "simultaneous":
        assert simult is not None
        lo, hi = simult
    else:
        lo, hi, details = interval(values, np.asarray(point, dtype=np.float64), ci=ci, method=ci_method,
                                   jackknife=jack, centre=centre, ddof=ddof)
    n_nan = np.isnan(values).sum(0)

    def sc(v: Any) -> Any:
        v = np.asarray(v)
        return float(v) if v.ndim == 0 else v

    return BootstrapResult(
        point=sc(point), median=sc(med), mean=sc(mean), std=sc(std), ci_low=sc(lo), ci_high=sc(hi),
        estimate=sc(centre), n_boot=len(values), n_nan=int(n_nan) if np.ndim(n_nan) == 0 else n_nan,
        ci=ci, ci_method=ci_method, stat=stat, ddof=ddof, seed=seed if isinstance(seed, int) else None,
        values=values, details={k: sc(v) for k, v in details.items()},
    )


def bootstrap(
    metric: Callable[..., Any],
    *arrays: ArrayLike,
    sensitive_features: ArrayLike | None = None,
    n_boot: int = 500,
    stat: Literal["point", "median", "mean"] = "median",
    ci: float = 0.95,
    ci_method: CIMethod = "auto",
    convention: Literal["cvpr21"] | None = None,
    pool: bool = False,
    ddof: int | None = None,
    seed: int = 0,
    **metric_kwargs: Any,
) -> BootstrapResult:
    """Bootstrap a metric over resamples of the samples.

    Args:
        metric: a built-in debiaskit metric (vectorised) or any ``metric(*arrays, **metric_kwargs)``.
        arrays: per-sample arrays resampled jointly (NumPy or torch), e.g. ``y_true, y_pred``.
        sensitive_features: protected group per sample, resampled with ``arrays`` and passed as
            ``sensitive_features=`` (for group metrics such as :func:`~debiaskit.metrics.deo`).
        n_boot: number of resamples (CVPR 2021: 500).
        stat: reported estimate (``estimate``): the bootstrap median (default, as the CVPR 2021 code), the
            mean, or the point value on the full sample (always available as ``point``).
        ci: coverage of the interval.
        ci_method: ``"auto"``, ``"percentile"``, ``"basic"``, ``"bca"``, ``"simultaneous"`` (gap and ratio
            metrics only) or ``"2sigma"``; see the module docstring.
        convention: ``"cvpr21"`` = ``stat="median", ci_method="2sigma", ddof=0`` (Ramaswamy et al. 2021).
        pool: for vector-valued metrics, pool all components into one distribution (the CVPR 2021 KL is
            the median of the pooled {KL(A‖B), KL(B‖A)} × {y=1, y=0} values).
        ddof: delta degrees of freedom of ``std`` (and of ``"2sigma"``): 1 (default) or 0 (``np.std``, what the
            CVPR 2021 code uses; the default under ``convention="cvpr21"``).
        seed: seed of the resampling generator.
        metric_kwargs: options passed to the metric unchanged (e.g. ``mode="official"``).
    """
    kw = dict(metric_kwargs)
    if sensitive_features is not None:
        kw["sensitive_features"] = sensitive_features
    res = bootstrap_many({"metric": (metric, arrays, kw)}, n_boot=n_boot, stat=stat, ci=ci, ci_method=ci_method,
                         convention=convention, pool=pool, ddof=ddof, seed=seed)
    return res["metric"]


def bootstrap_many(
    jobs: Mapping[str, tuple[Callable[..., Any], tuple[ArrayLike, ...], dict[str, Any]]],
    *,
    n_boot: int = 500,
    stat: Literal["point", "median", "mean"] = "median",
    ci: float = 0.95,
    ci_method: CIMethod | Mapping[str, CIMethod] = "auto",
    convention: Literal["cvpr21"] | None = None,
    pool: bool | Mapping[str, bool] = False,
    ddof: int | None = None,
    seed: int = 0,
) -> dict[str, BootstrapResult]:
    """Bootstrap several metrics on the **same** resamples, drawing each block of count vectors once.

    ``jobs`` maps a name to ``(metric, arrays, metric_kwargs)``; ``metric_kwargs["sensitive_features"]``, if
    present, is resampled with ``arrays``. All jobs must have the same number of samples. Results equal
    calling :func:`bootstrap` for each job with the same seed. ``ci_method`` and ``pool`` may be dicts
    ``{name: value}``.
    """
    if convention is not None:
        if convention != "cvpr21":
            raise DebiaskitError(f"unknown convention {convention!r}; the only one is 'cvpr21'")
        stat, ci_method = "median", "2sigma"
        ddof = 0 if ddof is None else ddof
    ddof = 1 if ddof is None else int(ddof)
    if ddof not in (0, 1):
        raise DebiaskitError(f"ddof must be 0 or 1, got {ddof}")
    if stat not in ("point", "median", "mean"):
        raise DebiaskitError(f"stat must be 'point', 'median' or 'mean', got {stat!r}")
    methods = dict(ci_method) if isinstance(ci_method, Mapping) else {name: ci_method for name in jobs}
    for m in methods.values():
        if m not in CI_METHODS:
            raise DebiaskitError(f"ci_method must be one of {', '.join(CI_METHODS)}; got {m!r}")
    if not 0 < ci < 1:
        raise DebiaskitError(f"ci must be in (0, 1), got {ci}")
    if int(n_boot) < 2:
        raise DebiaskitError(f"n_boot must be at least 2, got {n_boot}")
    if not jobs:
        raise DebiaskitError("no metrics to bootstrap")
    n_boot = int(n_boot)
    prepared: dict[str, dict[str, Any]] = {}
    n_all = set()
    for name, (metric, arrays, kw) in jobs.items():
        if not arrays:
            raise DebiaskitError("bootstrap needs the per-sample arrays of the metric (e.g. y_true, y_pred)")
        arrays_np = tuple(as_numpy(a, name=f"array {i}") for i, a in enumerate(arrays))
        kw = dict(kw)
        for k in RESAMPLED_KEYWORDS:
            if kw.get(k) is not None:
                kw[k] = as_numpy(kw[k], name=k)
        per_sample = {f"array_{i}": a for i, a in enumerate(arrays_np)}
        per_sample.update({k: kw[k] for k in RESAMPLED_KEYWORDS if kw.get(k) is not None})
        n_all.add(check_lengths(**per_sample))
        spec: BatchedSpec | None = getattr(metric, "batched", None)
        # the state first: the public call below then finds its sort orders alive and reuses them
        state = spec.prepare(*arrays_np, **kw) if spec is not None else None
        point = np.asarray(metric(*arrays, **kw), dtype=np.float64)
        do_pool = bool(pool.get(name, False) if isinstance(pool, Mapping) else pool)
        method = _resolve(methods.get(name, "auto"), spec, do_pool and point.ndim > 0)
        if method == "simultaneous" and (spec is None or spec.bounds is None):
            raise DebiaskitError(f"ci_method='simultaneous' needs a gap or ratio metric between groups; {name!r} is not one")
        if method == "bca" and do_pool and point.ndim > 0:
            raise DebiaskitError("ci_method='bca' is not defined for pooled values (pool=True)")
        prepared[name] = dict(metric=metric, arrays=arrays_np, kw=kw, spec=spec, state=state, point=point,
                              pool=do_pool, method=method, parts=[], comps=[], jack=[])
    if len(n_all) != 1:
        raise DebiaskitError(f"all bootstrapped metrics must use the same samples; got sizes {sorted(n_all)}")
    n = n_all.pop()
    batched_jobs = [p for p in prepared.values() if p["spec"] is not None]
    # within a sub-block, metrics run by their state's ``eval_priority`` (AP 0, official KL 1, others after):
    # AP builds the ordered counts and their cumulative sums that the KL and the cell counts (DEO, BA,
    # rates) then reuse. The evaluation order does not change any value.
    batched_jobs.sort(key=lambda p: getattr(p["state"], "eval_priority", 10))
    if batched_jobs:
        # one scratch workspace for the whole run; each block is evaluated in sub-blocks (see _batched)
        ws = Workspace()
        sub = sub_rows(n)
        # blocks are drawn one sub-block at a time once sub-blocks have enough rows for the block-level
        # cell counts (matmul); the counts are then still in cache when the sub-block is evaluated
        rows = sub if sub >= _MIN_BLOCK_ROWS else None
        for R in _resample_blocks(n, n_boot, seed=seed, ws=ws, rows=rows):
            for S in R.split(sub):
                for p in batched_jobs:  # np.array copies: results may not point into reused scratch memory
                    p["parts"].append(np.array(p["spec"].evaluate(p["state"], S), dtype=np.float64))
                    if p["method"] == "simultaneous":
                        p["comps"].append(np.array(p["spec"].components(p["state"], S), dtype=np.float64))
        jack_jobs = [p for p in batched_jobs if p["method"] == "bca"]
        if jack_jobs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for J in jackknife_blocks(n, seed=seed):
                    for S in Resamples(J.W, ws=ws).split(sub):
                        for p in jack_jobs:
                            p["jack"].append(np.array(p["spec"].evaluate(p["state"], S), dtype=np.float64))
    out = {}
    for name, p in prepared.items():
        if p["spec"] is not None:
            values = np.concatenate(p["parts"], axis=0)
            jack = np.concatenate(p["jack"], axis=0) if p["jack"] else None
        else:
            values = _loop(p["metric"], p["arrays"], p["kw"], n, resample_weights(n, n_boot, seed=seed))
            jack = _loop(p["metric"], p["arrays"], p["kw"], n, (R.W for R in jackknife_blocks(n, seed=seed))) \
                if p["method"] == "bca" else None
        point = p["point"]
        simult = None
        if p["method"] == "simultaneous":
            comps = np.concatenate(p["comps"], axis=0)
            cpoint = np.asarray(p["spec"].components(p["state"], ones_weights(n)), dtype=np.float64)[0]
            L, U, _ = simultaneous_band(comps, cpoint, ci=ci)
            simult = p["spec"].bounds(p["state"], L, U)
        if p["pool"] and values.ndim == 2:
            values = values.reshape(-1)
            point = np.asarray(np.nanmean(point) if point.ndim else point)
        out[name] = _summarise(values, point, stat=stat, ci=ci, ci_method=p["method"], seed=seed, ddof=ddof,
                               jack=jack, simult=simult)
    return out


def _loop(metric: Callable[..., Any], arrays: tuple[np.ndarray, ...], kw: dict[str, Any], n: int,
          blocks: Iterator[np.ndarray]) -> np.ndarray:
    """Fallback for callables without a batched form: the same count vectors, one call each."""
    out = []
    base = np.arange(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for W in blocks:
            for w in W:
                idx = np.repeat(base, w)
                kk = {k: (v[idx] if k in RESAMPLED_KEYWORDS and v is not None else v) for k, v in kw.items()}
                try:
                    out.append(np.asarray(metric(*(a[idx] for a in arrays), **kk), dtype=np.float64))
                except DebiaskitError:
                    out.append(np.asarray(np.nan))
    shapes = {o.shape for o in out}
    if len(shapes) > 1:  # a vector metric that failed on some resamples
        shape = max(shapes, key=len)
        out = [o if o.shape == shape else np.full(shape, np.nan) for o in out]
    return np.stack(out, axis=0)
