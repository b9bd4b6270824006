"""Vectorised bootstrap confidence intervals for any metric.

Resamples (n draws with replacement from n samples) are drawn as index matrices from one seeded NumPy
``Generator`` (and, where a metric needs them, turned into count matrices ``W``, ``W[b, i]`` = how often
sample i is in resample b). Built-in metrics (those with a ``batched`` attribute, see
:mod:`debiaskit.metrics._batched`) evaluate a whole block of resamples with array operations — there is
no Python loop over resamples. Blocks have
``max(1, 2**22 // n)`` rows so memory stays bounded (≈ 32 MB per array) at any n; the block size depends
only on n, so results depend only on (seed, n, n_boot): **two metrics bootstrapped with the same seed on
the same samples use the same resamples** (a joint bootstrap). Any other callable ``metric(*arrays, **kw)``
is supported with a per-resample loop.

Reporting conventions:

* ``interval="percentile"`` (default): the (1−ci)/2 and (1+ci)/2 quantiles of the resampled values;
* ``interval="2sigma"``: centre ± 2·std with centre = ``stat`` — the CVPR 2021 convention (Ramaswamy et al.,
  gan-debiasing ``main.py``; spec §A9) is ``stat="median", n_boot=500, interval="2sigma"``,
  available as ``convention="cvpr21"``.

Resamples where the metric is undefined (e.g. a group without positives) give NaN; they are excluded from
the statistics and counted in ``n_nan``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import BatchedSpec, Resamples
from debiaskit.metrics._validation import as_numpy, check_lengths

__all__ = ["BootstrapResult", "bootstrap", "bootstrap_many", "resample_blocks", "resample_weights", "block_rows"]

_BLOCK_ELEMENTS = 1 << 20


def block_rows(n: int, n_boot: int) -> int:
    return max(1, min(n_boot, _BLOCK_ELEMENTS // max(n, 1)))


def resample_blocks(n: int, n_boot: int, *, seed: int | np.random.Generator = 0) -> Iterator[Resamples]:
    """Yield blocks of bootstrap resamples (index matrices ``(b, n)``, b ≤ block size), ``n_boot`` in total."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    rows = block_rows(n, n_boot)
    itype = np.int32 if n < 2**31 - 1 else np.int64
    done = 0
    while done < n_boot:
        b = min(rows, n_boot - done)
        yield Resamples(idx=rng.integers(0, n, size=(b, n), dtype=itype))
        done += b


def resample_weights(n: int, n_boot: int, *, seed: int | np.random.Generator = 0) -> Iterator[np.ndarray]:
    """Yield count matrices ``(b, n)`` (``W[b, i]`` = copies of sample i) for ``n_boot`` resamples in total."""
    for R in resample_blocks(n, n_boot, seed=seed):
        yield R.W


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
    interval: str
    stat: str
    seed: int | None
    values: np.ndarray = field(repr=False)

    def to_dict(self, *, values: bool = False) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, np.generic):
                return v.item()
            return v

        d = {k: conv(getattr(self, k)) for k in (
            "estimate", "point", "median", "mean", "std", "ci_low", "ci_high", "n_boot", "n_nan", "ci",
            "interval", "stat", "seed")}
        if values:
            d["values"] = self.values.tolist()
        return d


def _summarise(values: np.ndarray, point: Any, *, stat: str, ci: float, interval: str, seed: Any) -> BootstrapResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(values, axis=0)
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0, ddof=1) if len(values) > 1 else np.full(values.shape[1:], np.nan)
        if interval == "percentile":
            lo, hi = np.nanquantile(values, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        centre = {"point": np.asarray(point, dtype=np.float64), "median": med, "mean": mean}[stat]
        if interval == "2sigma":
            lo, hi = centre - 2 * std, centre + 2 * std
    n_nan = np.isnan(values).sum(0)

    def sc(v: Any) -> Any:
        v = np.asarray(v)
        return float(v) if v.ndim == 0 else v

    return BootstrapResult(
        point=sc(point), median=sc(med), mean=sc(mean), std=sc(std), ci_low=sc(lo), ci_high=sc(hi),
        estimate=sc(centre), n_boot=len(values), n_nan=int(n_nan) if np.ndim(n_nan) == 0 else n_nan,
        ci=ci, interval=interval, stat=stat, seed=seed if isinstance(seed, int) else None, values=values,
    )


def bootstrap(
    metric: Callable[..., Any],
    *arrays: Any,
    n_boot: int = 500,
    stat: Literal["point", "median", "mean"] = "median",
    ci: float = 0.95,
    interval: Literal["percentile", "2sigma"] = "percentile",
    convention: Literal["cvpr21"] | None = None,
    pool: bool = False,
    seed: int = 0,
    **metric_kwargs: Any,
) -> BootstrapResult:
    """Bootstrap a metric over resamples of the rows of ``arrays``.

    Args:
        metric: a built-in debiaskit metric (vectorised) or any ``metric(*arrays, **metric_kwargs)``.
        arrays: per-sample arrays resampled jointly (NumPy or torch), e.g. ``y_true, y_pred, groups``.
        n_boot: number of resamples (CVPR 2021: 500).
        stat: reported estimate (``estimate``): the bootstrap median (default, as the CVPR 2021 code), the
            mean, or the point value on the full sample (always available as ``point``).
        ci: coverage of the interval.
        interval: ``"percentile"`` or ``"2sigma"`` (estimate ± 2·std).
        convention: ``"cvpr21"`` sets ``stat="median", interval="2sigma"`` (Ramaswamy et al. 2021).
        pool: for vector-valued metrics, pool all components into one distribution (the CVPR 2021 KL is
            the median of the pooled {KL(A‖B), KL(B‖A)} × {y=1, y=0} values).
        seed: seed of the resampling generator.
    """
    # option validation lives in bootstrap_many (one place for both entry points)
    res = bootstrap_many({"metric": (metric, arrays, metric_kwargs)}, n_boot=n_boot, stat=stat, ci=ci,
                         interval=interval, convention=convention, pool=pool, seed=seed)
    return res["metric"]


def bootstrap_many(
    jobs: dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]],
    *,
    n_boot: int = 500,
    stat: Literal["point", "median", "mean"] = "median",
    ci: float = 0.95,
    interval: Literal["percentile", "2sigma"] = "percentile",
    convention: Literal["cvpr21"] | None = None,
    pool: bool | dict[str, bool] = False,
    seed: int = 0,
) -> dict[str, BootstrapResult]:
    """Bootstrap several metrics on the **same** resamples, drawing each block of count vectors once.

    ``jobs`` maps a name to ``(metric, arrays, metric_kwargs)``; all arrays must have the same number of
    samples. Results equal calling :func:`bootstrap` for each job with the same seed, but the resample
    matrix is generated once per block and shared (faster when there are several metrics).
    ``pool`` may be a dict ``{name: bool}``.
    """
    if convention is not None:
        if convention != "cvpr21":
            raise DebiaskitError(f"unknown convention {convention!r}; the only one is 'cvpr21'")
        stat, interval = "median", "2sigma"
    if stat not in ("point", "median", "mean"):
        raise DebiaskitError(f"stat must be 'point', 'median' or 'mean', got {stat!r}")
    if interval not in ("percentile", "2sigma"):
        raise DebiaskitError(f"interval must be 'percentile' or '2sigma', got {interval!r}")
    if not 0 < ci < 1:
        raise DebiaskitError(f"ci must be in (0, 1), got {ci}")
    if int(n_boot) < 2:
        raise DebiaskitError(f"n_boot must be at least 2, got {n_boot}")
    if not jobs:
        raise DebiaskitError("no metrics to bootstrap")
    prepared = {}
    n_all = set()
    for name, (metric, arrays, kw) in jobs.items():
        if not arrays:
            raise DebiaskitError("bootstrap needs the per-sample arrays of the metric (e.g. y_true, y_pred, groups)")
        arrays_np = tuple(as_numpy(a, name=f"array {i}") for i, a in enumerate(arrays))
        n_all.add(check_lengths(**{f"array_{i}": a for i, a in enumerate(arrays_np)}))
        point = np.asarray(metric(*arrays, **kw), dtype=np.float64)
        spec: BatchedSpec | None = getattr(metric, "batched", None)
        state = spec.prepare(*arrays_np, **kw) if spec is not None else None
        prepared[name] = (metric, arrays_np, kw, spec, state, point)
    if len(n_all) != 1:
        raise DebiaskitError(f"all bootstrapped metrics must use the same samples; got sizes {sorted(n_all)}")
    n = n_all.pop()
    parts: dict[str, list[np.ndarray]] = {name: [] for name in jobs}
    loops = [name for name, v in prepared.items() if v[3] is None]
    if len(loops) < len(prepared):
        for R in resample_blocks(n, n_boot, seed=seed):
            for name, (_, _, _, spec, state, _) in prepared.items():
                if spec is not None:
                    parts[name].append(np.asarray(spec.evaluate(state, R), dtype=np.float64))
    out = {}
    for name, (metric, arrays_np, kw, spec, state, point) in prepared.items():
        values = np.concatenate(parts[name], axis=0) if spec is not None else _loop(metric, arrays_np, kw, n, n_boot, seed)
        do_pool = pool.get(name, False) if isinstance(pool, dict) else pool
        if do_pool and values.ndim == 2:
            values = values.reshape(-1)
            point = np.asarray(np.nanmean(point) if point.ndim else point)
        out[name] = _summarise(values, point, stat=stat, ci=ci, interval=interval, seed=seed)
    return out


def _loop(metric: Callable[..., Any], arrays: tuple[np.ndarray, ...], kw: dict, n: int, n_boot: int, seed: Any) -> np.ndarray:
    """Fallback for callables without a batched form: same resamples, one call each."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for W in resample_weights(n, n_boot, seed=seed):
            for w in W:
                idx = np.repeat(np.arange(n), w)
                try:
                    out.append(np.asarray(metric(*(a[idx] for a in arrays), **kw), dtype=np.float64))
                except DebiaskitError:
                    out.append(np.asarray(np.nan))
    return np.stack(out, axis=0)
