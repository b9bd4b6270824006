"""``GroupReport``: metrics overall and per protected group, with bootstrap intervals.

Modelled on fairlearn's ``MetricFrame``: keyword-only construction from a dict of metrics, ``.overall``,
``.by_group`` (pandas), ``.difference()``, ``.ratio()``, plus ``.to_dict()`` / ``.to_markdown()`` for
reports. Bootstrap resamples are drawn over the **whole** sample (group sizes vary between resamples, as in
fairlearn) and shared by all metrics; built-in metrics are evaluated in batches.

Metric values may be

* a built-in name: ``"count"``, ``"base_rate"``, ``"selection_rate"``, ``"accuracy"``, ``"tpr"``,
  ``"fpr"``, ``"fnr"``, ``"tnr"`` (need ``y_pred``) and ``"ap"`` (needs ``y_score``);
* any callable ``f(y_true, y_pred) -> float`` (bootstrapped with a per-resample loop unless it is a
  debiaskit batched metric);
* ``on_scores(f)`` to call ``f(y_true, y_score)`` instead.

Intervals (``ci_method``): ``"auto"`` (default) uses percentile intervals for the overall and per-group
values and the **simultaneous** method for the differences and ratios between groups: a max-t bootstrap
band covering every group's value at once, mapped through max − min (or min / max). The percentile
interval of a max − min over many groups is biased upwards and can exclude the point value (see
``docs/metrics.md``); the simultaneous one is conservative and always contains it. ``"percentile"``,
``"basic"``, ``"bca"``, ``"simultaneous"`` and ``"2sigma"`` apply one method everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.io import md_cell
from debiaskit.metrics._batched import BatchedSpec, Resamples, as_resamples, batched, safe_div
from debiaskit.metrics._validation import (
    ArrayLike,
    check_binary,
    check_groups,
    check_lengths,
    check_scores,
    group_name,
    warn,
)
from debiaskit.metrics.bootstrap import (
    CI_METHODS,
    JACKKNIFE_GROUPS,
    CIMethod,
    extremum_bounds,
    interval,
    jackknife_blocks,
    resample_blocks,
    simultaneous_band,
)
from debiaskit.metrics.fairness import accuracy, false_positive_rate, selection_rate, true_positive_rate
from debiaskit.metrics.ranking import average_precision

__all__ = ["GroupReport", "on_scores", "BUILTIN_GROUP_METRICS"]


@dataclass(frozen=True)
class _ScoreMetric:
    fn: Callable[..., Any]

    def __call__(self, *a: Any, **k: Any) -> Any:
        return self.fn(*a, **k)


def on_scores(fn: Callable[..., Any]) -> _ScoreMetric:
    """Mark a metric ``fn(y_true, y_score)`` so that GroupReport passes scores instead of predictions."""
    return _ScoreMetric(fn)


def _complement(fn: Callable[..., Any]) -> Callable[..., Any]:
    spec: BatchedSpec = fn.batched  # type: ignore[attr-defined]

    def ev(state: Any, R: Any) -> np.ndarray:
        return 1.0 - spec.evaluate(state, R)

    @batched(spec.prepare, ev, n_arrays=2)
    def comp(y_true: ArrayLike, y_pred: ArrayLike) -> float:
        return 1.0 - fn(y_true, y_pred)

    return comp


def _count_prepare(y: ArrayLike, p: ArrayLike) -> int:
    return len(y)


def _count_eval(n: int, R: Any) -> np.ndarray:
    return as_resamples(R).totals


@batched(_count_prepare, _count_eval, n_arrays=2)
def _count(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    return float(len(y_true))


def _base_prepare(y: ArrayLike, p: ArrayLike) -> Any:
    return selection_rate.batched.prepare(y, y)  # type: ignore[attr-defined]


@batched(_base_prepare, lambda s, R: selection_rate.batched.evaluate(s, R), n_arrays=2)  # type: ignore[attr-defined]
def _base_rate(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    return float(np.mean(check_binary(y_true)))


BUILTIN_GROUP_METRICS: dict[str, Any] = {
    "count": _count,
    "base_rate": _base_rate,
    "selection_rate": selection_rate,
    "accuracy": accuracy,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "fnr": _complement(true_positive_rate),
    "tnr": _complement(false_positive_rate),
    "ap": on_scores(average_precision),
}


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "NaN"
    if float(v).is_integer() and abs(v) >= 1:
        return str(int(v))
    return f"{v:.4f}"


_METHOD_TEXT = {
    "percentile": "percentile",
    "basic": "basic (reflected percentile)",
    "bca": "BCa",
    "simultaneous": "simultaneous (max-t band over groups, projected)",
    "2sigma": "point ± 2σ",
}


def _to_overall_bounds(lo: np.ndarray, hi: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of max_g |v_g − v_o| (difference) or min_g min(v_g/v_o, v_o/v_g) (ratio); column 0 = overall."""
    lo_o, hi_o, lo_g, hi_g = lo[..., :1], hi[..., :1], lo[..., 1:], hi[..., 1:]
    bad = np.isnan(lo).any(-1) | np.isnan(hi).any(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "difference":
            a = np.maximum(np.maximum(lo_g - hi_o, lo_o - hi_g), 0.0).max(-1)
            b = np.maximum(hi_g - lo_o, hi_o - lo_g).max(-1)
        else:
            a = (np.minimum(lo_g, lo_o) / np.maximum(hi_g, hi_o)).min(-1)
            overlap = (lo_g <= hi_o) & (lo_o <= hi_g)
            b = np.where(overlap, 1.0, np.minimum(hi_g, hi_o) / np.maximum(lo_g, lo_o)).min(-1)
    return np.where(bad, np.nan, a), np.where(bad, np.nan, b)


class GroupReport:
    """Disaggregated metrics (overall and per group) with optional bootstrap intervals.

    Args:
        metrics: ``{name: builtin-name | callable | on_scores(callable)}`` (or a list of built-in names).
        y_true: binary labels. y_pred: binary predictions. y_score: real-valued scores.
        sensitive_features: one protected-group label per sample (≥ 2 distinct values).
        n_boot: number of bootstrap resamples (0 = no intervals). ci: interval coverage.
        ci_method: ``"auto"`` (percentile for values, simultaneous for differences/ratios) or one of
            ``"percentile"``, ``"basic"``, ``"bca"``, ``"simultaneous"``, ``"2sigma"`` for all intervals.
        seed: resampling seed.
    """

    def __init__(
        self,
        *,
        metrics: Mapping[str, Any] | list[str],
        y_true: ArrayLike,
        y_pred: ArrayLike | None = None,
        y_score: ArrayLike | None = None,
        sensitive_features: ArrayLike,
        n_boot: int = 0,
        ci: float = 0.95,
        ci_method: CIMethod = "auto",
        seed: int = 0,
    ) -> None:
        if isinstance(metrics, (list, tuple)):
            metrics = {m: m for m in metrics}
        if not metrics:
            raise DebiaskitError("metrics must name at least one metric")
        if ci_method not in CI_METHODS:
            raise DebiaskitError(f"ci_method must be one of {', '.join(CI_METHODS)}; got {ci_method!r}")
        if not 0 < ci < 1:
            raise DebiaskitError(f"ci must be in (0, 1), got {ci}")
        self._fns: dict[str, Any] = {}
        for name, m in metrics.items():
            if isinstance(m, str):
                if m not in BUILTIN_GROUP_METRICS:
                    raise DebiaskitError(f"unknown metric {m!r}; built-ins: {', '.join(BUILTIN_GROUP_METRICS)}")
                m = BUILTIN_GROUP_METRICS[m]
            if not callable(m):
                raise DebiaskitError(f"metric {name!r} must be a built-in name or a callable")
            self._fns[str(name)] = m
        y = check_binary(y_true, name="y_true")
        p = check_binary(y_pred, name="y_pred") if y_pred is not None else None
        s = check_scores(y_score, name="y_score") if y_score is not None else None
        g, labels = check_groups(sensitive_features, name="sensitive_features")
        check_lengths(y_true=y, y_pred=p, y_score=s, sensitive_features=g)
        for name, fn in self._fns.items():
            if isinstance(fn, _ScoreMetric) and s is None:
                raise DebiaskitError(f"metric {name!r} needs y_score=...")
            if not isinstance(fn, _ScoreMetric) and p is None and fn is not _count and fn is not _base_rate:
                raise DebiaskitError(f"metric {name!r} needs y_pred=...")
        if int(n_boot) < 0 or int(n_boot) == 1:
            raise DebiaskitError(f"n_boot must be 0 or at least 2, got {n_boot}")
        self.n = len(y)
        self.groups = [group_name(labels, k) for k in range(len(labels))]
        self._labels = labels
        self.n_boot, self.ci, self.seed = int(n_boot), float(ci), int(seed)
        self.ci_method = ci_method
        #: interval method of the overall / per-group values and of the differences / ratios
        self.ci_method_values = "percentile" if ci_method == "auto" else ci_method
        self.ci_method_gaps = "simultaneous" if ci_method == "auto" else ci_method
        self._y, self._p, self._s = y, (p if p is not None else y), s
        self._g = g
        self._idx = [np.flatnonzero(g == k) for k in range(len(labels))]
        names = list(self._fns)
        self._point = np.full((1 + len(labels), len(names)), np.nan)  # row 0 overall, then groups
        for j, name in enumerate(names):
            for r, idx in enumerate([None, *self._idx]):
                self._point[r, j] = self._call(name, idx)
        for j, name in enumerate(names):
            for k in range(len(labels)):
                if np.isnan(self._point[1 + k, j]):
                    warn(f"metric {name!r} is undefined (NaN) for group {self.groups[k]!r}")
        self._boot: np.ndarray | None = None
        self._jack: np.ndarray | None = None
        if self.n_boot:
            self._boot = self._evaluate_all(resample_blocks(self.n, self.n_boot, seed=self.seed), self.n_boot)
            if "bca" in (self.ci_method_values, self.ci_method_gaps):
                K = self.n if self.n <= JACKKNIFE_GROUPS else JACKKNIFE_GROUPS
                self._jack = self._evaluate_all(jackknife_blocks(self.n, seed=self.seed), K)

    # ---- computation -------------------------------------------------------------------------------
    def _args(self, name: str, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        fn = self._fns[name]
        second = self._s if isinstance(fn, _ScoreMetric) else self._p
        if idx is None:
            return self._y, second
        return self._y[idx], second[idx]

    def _call(self, name: str, idx: np.ndarray | None) -> float:
        a, b = self._args(name, idx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return float(self._fns[name](a, b))
            except DebiaskitError:
                return float("nan")

    def _spec(self, name: str) -> BatchedSpec | None:
        fn = self._fns[name]
        fn = fn.fn if isinstance(fn, _ScoreMetric) else fn
        return getattr(fn, "batched", None)

    def _evaluate_all(self, blocks: Any, total: int) -> np.ndarray:
        """Values ``(total, 1 + G, M)`` of every metric, overall and per group, for each count vector."""
        names = list(self._fns)
        G = len(self._idx)
        out = np.full((total, 1 + G, len(names)), np.nan)
        states: dict[tuple[str, int], Any] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in names:
                spec = self._spec(name)
                if spec is not None:
                    for r, idx in enumerate([None, *self._idx]):
                        states[(name, r)] = spec.prepare(*self._args(name, idx))
            row = 0
            for R in blocks:
                b = R.b
                subs: list[Resamples] = [R, *(R.subset(idx) for idx in self._idx)]
                for j, name in enumerate(names):
                    spec = self._spec(name)
                    for r, idx in enumerate([None, *self._idx]):
                        if spec is not None:
                            out[row : row + b, r, j] = spec.evaluate(states[(name, r)], subs[r])
                            continue
                        a, c = self._args(name, idx)
                        for i in range(b):
                            sel = np.repeat(np.arange(len(a)), subs[r].W[i])
                            try:
                                out[row + i, r, j] = float(self._fns[name](a[sel], c[sel]))
                            except (DebiaskitError, ValueError, ZeroDivisionError):
                                out[row + i, r, j] = np.nan
                row += b
        return out

    # ---- fairlearn-like accessors ----------------------------------------------------------------------
    @property
    def metric_names(self) -> list[str]:
        return list(self._fns)

    @property
    def overall(self) -> Any:
        import pandas as pd

        return pd.Series(self._point[0], index=self.metric_names, name="overall")

    @property
    def by_group(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self._point[1:], index=pd.Index(self.groups, name="group"), columns=self.metric_names)

    @staticmethod
    def _diff(v: np.ndarray, method: str) -> np.ndarray:
        """v: (..., 1+G, M) -> (..., M)."""
        grp, ov = v[..., 1:, :], v[..., :1, :]
        if method == "between_groups":
            return grp.max(-2) - grp.min(-2)
        return np.abs(grp - ov).max(-2)

    @staticmethod
    def _ratio(v: np.ndarray, method: str) -> np.ndarray:
        grp, ov = v[..., 1:, :], v[..., :1, :]
        if method == "between_groups":
            return safe_div(grp.min(-2), grp.max(-2))
        r = np.minimum(safe_div(grp, np.broadcast_to(ov, grp.shape)), safe_div(np.broadcast_to(ov, grp.shape), grp))
        return r.min(-2)

    @staticmethod
    def _check_method(method: str) -> None:
        if method not in ("between_groups", "to_overall"):
            raise DebiaskitError(f"method must be 'between_groups' or 'to_overall', got {method!r}")

    def difference(self, *, method: Literal["between_groups", "to_overall"] = "between_groups") -> Any:
        """Largest gap between groups (``max − min``) or to the overall value, per metric (NaN propagates)."""
        import pandas as pd

        self._check_method(method)
        return pd.Series(self._diff(self._point, method), index=self.metric_names, name="difference")

    def ratio(self, *, method: Literal["between_groups", "to_overall"] = "between_groups") -> Any:
        """Smallest ratio between groups (``min / max``) or to the overall value, per metric."""
        import pandas as pd

        self._check_method(method)
        return pd.Series(self._ratio(self._point, method), index=self.metric_names, name="ratio")

    def _require_boot(self) -> np.ndarray:
        if self._boot is None:
            raise DebiaskitError("no bootstrap intervals: construct the GroupReport with n_boot > 0")
        return self._boot

    def _clip(self, j: int) -> tuple[float, float] | None:
        """Clip bands to [0, 1] for metrics whose values all lie there (rates, AP, accuracy)."""
        boot = self._require_boot()[:, :, j]
        vals = np.concatenate([self._point[:, j], boot.ravel()])
        vals = vals[np.isfinite(vals)]
        return (0.0, 1.0) if vals.size and vals.min() >= 0 and vals.max() <= 1 else None

    def _band(self, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """Simultaneous band per metric over the rows ``cols`` of (overall, groups...)."""
        boot = self._require_boot()
        P = self._point[cols]
        lo, hi = np.full(P.shape, np.nan), np.full(P.shape, np.nan)
        for j in range(P.shape[1]):
            lo[:, j], hi[:, j], _ = simultaneous_band(boot[:, cols, j], P[:, j], ci=self.ci, clip=self._clip(j))
        return lo, hi

    def _values_interval(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        m = self.ci_method_values
        if m == "simultaneous":
            return self._band(rows)
        boot = self._require_boot()
        jack = self._jack[:, rows] if self._jack is not None else None
        lo, hi, _ = interval(boot[:, rows], self._point[rows], ci=self.ci, method=m, jackknife=jack)
        return lo, hi

    def _gap_interval(self, kind: str, method: str) -> tuple[np.ndarray, np.ndarray]:
        f = self._diff if kind == "difference" else self._ratio
        m = self.ci_method_gaps
        if m == "simultaneous":
            rows = slice(1, None) if method == "between_groups" else slice(0, None)
            lo, hi = self._band(rows)  # (rows, M)
            if method == "between_groups":
                return extremum_bounds(lo.T, hi.T, kind)
            return _to_overall_bounds(lo.T, hi.T, kind)
        vals = f(self._require_boot(), method)
        jack = f(self._jack, method) if self._jack is not None else None
        lo, hi, _ = interval(vals, f(self._point, method), ci=self.ci, method=m, jackknife=jack)
        return lo, hi

    def overall_ci(self) -> Any:
        import pandas as pd

        lo, hi = self._values_interval(slice(0, 1))
        return pd.DataFrame({"ci_low": lo[0], "ci_high": hi[0]}, index=self.metric_names)

    def by_group_ci(self) -> dict[str, Any]:
        """``{"ci_low": DataFrame, "ci_high": DataFrame}`` shaped like :attr:`by_group`."""
        import pandas as pd

        lo, hi = self._values_interval(slice(1, None))
        idx = pd.Index(self.groups, name="group")
        return {"ci_low": pd.DataFrame(lo, index=idx, columns=self.metric_names),
                "ci_high": pd.DataFrame(hi, index=idx, columns=self.metric_names)}

    def difference_ci(self, *, method: Literal["between_groups", "to_overall"] = "between_groups") -> Any:
        import pandas as pd

        self._check_method(method)
        lo, hi = self._gap_interval("difference", method)
        return pd.DataFrame({"ci_low": lo, "ci_high": hi}, index=self.metric_names)

    def ratio_ci(self, *, method: Literal["between_groups", "to_overall"] = "between_groups") -> Any:
        import pandas as pd

        self._check_method(method)
        lo, hi = self._gap_interval("ratio", method)
        return pd.DataFrame({"ci_low": lo, "ci_high": hi}, index=self.metric_names)

    def interval_note(self) -> str:
        """One line saying how the intervals were computed (for reports)."""
        if self._boot is None:
            return "no intervals (n_boot = 0)"
        pct = f"{self.ci * 100:g}%"
        if self.ci_method_values == self.ci_method_gaps:
            how = _METHOD_TEXT[self.ci_method_values]
        else:
            how = (f"overall and per group: {_METHOD_TEXT[self.ci_method_values]}; difference and ratio: "
                   f"{_METHOD_TEXT[self.ci_method_gaps]}")
        return f"{pct} bootstrap intervals over {self.n_boot} resamples (seed {self.seed}); {how}"

    # ---- export ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            v = float(v)
            return None if np.isnan(v) else v

        names = self.metric_names
        d: dict[str, Any] = {
            "metrics": names,
            "groups": self.groups,
            "n": self.n,
            "overall": {m: clean(v) for m, v in zip(names, self._point[0])},
            "by_group": {m: {g: clean(self._point[1 + k, j]) for k, g in enumerate(self.groups)} for j, m in enumerate(names)},
            "difference": {m: clean(v) for m, v in self.difference().items()},
            "ratio": {m: clean(v) for m, v in self.ratio().items()},
        }
        if self._boot is not None:
            oc, gc, dc, rc = self.overall_ci(), self.by_group_ci(), self.difference_ci(), self.ratio_ci()
            d["bootstrap"] = {"n_boot": self.n_boot, "ci": self.ci, "seed": self.seed,
                              "ci_method": {"values": self.ci_method_values, "gaps": self.ci_method_gaps},
                              "note": self.interval_note()}
            d["overall_ci"] = {m: [clean(oc.loc[m, "ci_low"]), clean(oc.loc[m, "ci_high"])] for m in names}
            d["by_group_ci"] = {
                m: {g: [clean(gc["ci_low"].loc[g, m]), clean(gc["ci_high"].loc[g, m])] for g in self.groups} for m in names
            }
            d["difference_ci"] = {m: [clean(dc.loc[m, "ci_low"]), clean(dc.loc[m, "ci_high"])] for m in names}
            d["ratio_ci"] = {m: [clean(rc.loc[m, "ci_low"]), clean(rc.loc[m, "ci_high"])] for m in names}
        return d

    def to_markdown(self) -> str:
        """A Markdown table: one row per group, then overall, difference and ratio (with CIs if bootstrapped)."""
        names = self.metric_names
        rows: list[tuple[str, list[str]]] = []
        boot = self._boot is not None
        gc = self.by_group_ci() if boot else None
        for k, g in enumerate(self.groups):
            cells = []
            for j, m in enumerate(names):
                v = _fmt(self._point[1 + k, j])
                if gc is not None and m != "count":
                    v += f" [{_fmt(gc['ci_low'].loc[g, m])}, {_fmt(gc['ci_high'].loc[g, m])}]"
                cells.append(v)
            rows.append((md_cell(f"group {g}"), cells))  # a group value may hold | or a line break
        for label, vals, cis in (
            ("overall", self._point[0], self.overall_ci() if boot else None),
            ("difference", self.difference().to_numpy(), self.difference_ci() if boot else None),
            ("ratio", self.ratio().to_numpy(), self.ratio_ci() if boot else None),
        ):
            cells = []
            for j, m in enumerate(names):
                v = _fmt(vals[j])
                if cis is not None and m != "count":
                    v += f" [{_fmt(cis.iloc[j, 0])}, {_fmt(cis.iloc[j, 1])}]"
                cells.append(v)
            rows.append((label, cells))
        head = "| | " + " | ".join(names) + " |"
        sep = "|---|" + "---|" * len(names)
        body = ["| " + lab + " | " + " | ".join(c) + " |" for lab, c in rows]
        note = f"\n\nIntervals: {self.interval_note()}." if boot else ""
        return "\n".join([head, sep, *body]) + note
