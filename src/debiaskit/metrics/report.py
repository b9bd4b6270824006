"""``GroupReport``: metrics overall and per protected group, with bootstrap intervals.

Modelled on fairlearn's ``MetricFrame`` (peers.md §2): keyword-only construction from a dict of metrics,
``.overall``, ``.by_group`` (pandas), ``.difference()``, ``.ratio()``, plus ``.to_dict()`` /
``.to_markdown()`` for reports. Bootstrap resamples are drawn over the **whole** sample (group sizes vary
between resamples, as in fairlearn) and shared by all metrics; built-in metrics are evaluated in batches.

Metric values may be

* a built-in name: ``"count"``, ``"base_rate"``, ``"selection_rate"``, ``"accuracy"``, ``"tpr"``,
  ``"fpr"``, ``"fnr"``, ``"tnr"`` (need ``y_pred``) and ``"ap"`` (needs ``scores``);
* any callable ``f(y_true, y_pred) -> float`` (bootstrapped with a per-resample loop unless it is a
  debiaskit batched metric);
* ``on_scores(f)`` to call ``f(y_true, scores)`` instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import BatchedSpec, as_weights, batched, safe_div
from debiaskit.metrics._validation import check_binary, check_groups, check_lengths, check_scores, group_name, warn
from debiaskit.metrics.bootstrap import resample_weights
from debiaskit.metrics.fairness import accuracy, false_positive_rate, selection_rate, true_positive_rate
from debiaskit.metrics.ranking import average_precision

__all__ = ["GroupReport", "on_scores", "BUILTIN_GROUP_METRICS"]


@dataclass(frozen=True)
class _ScoreMetric:
    fn: Callable[..., Any]

    def __call__(self, *a: Any, **k: Any) -> Any:
        return self.fn(*a, **k)


def on_scores(fn: Callable[..., Any]) -> _ScoreMetric:
    """Mark a metric ``fn(y_true, scores)`` so that GroupReport passes scores instead of predictions."""
    return _ScoreMetric(fn)


def _complement(fn: Callable[..., Any]) -> Callable[..., Any]:
    spec: BatchedSpec = fn.batched  # type: ignore[attr-defined]

    def ev(state: Any, W: np.ndarray) -> np.ndarray:
        return 1.0 - spec.evaluate(state, W)

    @batched(spec.prepare, ev, n_arrays=2)
    def comp(y_true: Any, y_pred: Any) -> float:
        return 1.0 - fn(y_true, y_pred)

    return comp


def _count_prepare(y: Any, p: Any) -> int:
    return len(y)


def _count_eval(n: int, W: Any) -> np.ndarray:
    return as_weights(W).sum(1).astype(np.float64)


@batched(_count_prepare, _count_eval, n_arrays=2)
def _count(y_true: Any, y_pred: Any) -> float:
    return float(len(y_true))


def _base_prepare(y: Any, p: Any) -> Any:
    return selection_rate.batched.prepare(y, y)  # type: ignore[attr-defined]


@batched(_base_prepare, lambda s, W: selection_rate.batched.evaluate(s, W), n_arrays=2)  # type: ignore[attr-defined]
def _base_rate(y_true: Any, y_pred: Any) -> float:
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


class GroupReport:
    """Disaggregated metrics (overall and per group) with optional bootstrap intervals.

    Args:
        metrics: ``{name: builtin-name | callable | on_scores(callable)}`` (or a list of built-in names).
        y_true: binary labels. y_pred: binary predictions. scores: real-valued scores.
        sensitive_features: one protected-group label per sample (≥ 2 distinct values).
        n_boot: number of bootstrap resamples (0 = no intervals). ci: interval coverage.
        interval: ``"percentile"`` or ``"2sigma"`` (point ± 2·std). seed: resampling seed.
    """

    def __init__(
        self,
        *,
        metrics: Mapping[str, Any] | list[str],
        y_true: Any,
        y_pred: Any = None,
        scores: Any = None,
        sensitive_features: Any,
        n_boot: int = 0,
        ci: float = 0.95,
        interval: Literal["percentile", "2sigma"] = "percentile",
        seed: int = 0,
    ) -> None:
        if isinstance(metrics, (list, tuple)):
            metrics = {m: m for m in metrics}
        if not metrics:
            raise DebiaskitError("metrics must name at least one metric")
        if interval not in ("percentile", "2sigma"):
            raise DebiaskitError(f"interval must be 'percentile' or '2sigma', got {interval!r}")
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
        s = check_scores(scores, name="scores") if scores is not None else None
        g, labels = check_groups(sensitive_features, name="sensitive_features")
        check_lengths(y_true=y, y_pred=p, scores=s, sensitive_features=g)
        for name, fn in self._fns.items():
            if isinstance(fn, _ScoreMetric) and s is None:
                raise DebiaskitError(f"metric {name!r} needs scores=...")
            if not isinstance(fn, _ScoreMetric) and p is None and fn is not _count and fn is not _base_rate:
                raise DebiaskitError(f"metric {name!r} needs y_pred=...")
        self.n = len(y)
        self.groups = [group_name(labels, k) for k in range(len(labels))]
        self._labels = labels
        self.n_boot, self.ci, self.interval, self.seed = int(n_boot), float(ci), interval, int(seed)
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
        if self.n_boot:
            if self.n_boot < 2:
                raise DebiaskitError(f"n_boot must be 0 or at least 2, got {n_boot}")
            self._boot = self._bootstrap()

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

    def _bootstrap(self) -> np.ndarray:
        names = list(self._fns)
        G = len(self._idx)
        out = np.full((self.n_boot, 1 + G, len(names)), np.nan)
        states: dict[tuple[str, int], Any] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in names:
                spec = self._spec(name)
                if spec is not None:
                    for r, idx in enumerate([None, *self._idx]):
                        states[(name, r)] = spec.prepare(*self._args(name, idx))
            row = 0
            for W in resample_weights(self.n, self.n_boot, seed=self.seed):
                b = W.shape[0]
                for j, name in enumerate(names):
                    spec = self._spec(name)
                    for r, idx in enumerate([None, *self._idx]):
                        Wr = W if idx is None else W[:, idx]
                        if spec is not None:
                            out[row : row + b, r, j] = spec.evaluate(states[(name, r)], Wr)
                        else:
                            a, c = self._args(name, idx)
                            for i in range(b):
                                sel = np.repeat(np.arange(len(a)), Wr[i])
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

    def _interval(self, values: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if self.interval == "percentile":
                lo, hi = np.nanquantile(values, [(1 - self.ci) / 2, (1 + self.ci) / 2], axis=0)
            else:
                sd = np.nanstd(values, axis=0, ddof=1)
                lo, hi = point - 2 * sd, point + 2 * sd
        return lo, hi

    def _require_boot(self) -> np.ndarray:
        if self._boot is None:
            raise DebiaskitError("no bootstrap intervals: construct the GroupReport with n_boot > 0")
        return self._boot

    def overall_ci(self) -> Any:
        import pandas as pd

        lo, hi = self._interval(self._require_boot()[:, 0, :], self._point[0])
        return pd.DataFrame({"ci_low": lo, "ci_high": hi}, index=self.metric_names)

    def by_group_ci(self) -> dict[str, Any]:
        """``{"ci_low": DataFrame, "ci_high": DataFrame}`` shaped like :attr:`by_group`."""
        import pandas as pd

        lo, hi = self._interval(self._require_boot()[:, 1:, :], self._point[1:])
        idx = pd.Index(self.groups, name="group")
        return {"ci_low": pd.DataFrame(lo, index=idx, columns=self.metric_names),
                "ci_high": pd.DataFrame(hi, index=idx, columns=self.metric_names)}

    def difference_ci(self, *, method: Literal["between_groups", "to_overall"] = "between_groups") -> Any:
        import pandas as pd

        self._check_method(method)
        vals = self._diff(self._require_boot(), method)
        lo, hi = self._interval(vals, self._diff(self._point, method))
        return pd.DataFrame({"ci_low": lo, "ci_high": hi}, index=self.metric_names)

    def ratio_ci(self, *, method: Literal["between_groups", "to_overall"] = "between_groups") -> Any:
        import pandas as pd

        self._check_method(method)
        vals = self._ratio(self._require_boot(), method)
        lo, hi = self._interval(vals, self._ratio(self._point, method))
        return pd.DataFrame({"ci_low": lo, "ci_high": hi}, index=self.metric_names)

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
            d["bootstrap"] = {"n_boot": self.n_boot, "ci": self.ci, "interval": self.interval, "seed": self.seed}
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
            rows.append((f"group {g}", cells))
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
        note = ""
        if boot:
            note = f"\n\nIntervals: {self.interval} {int(self.ci * 100)}% over {self.n_boot} bootstrap resamples (seed {self.seed})."
        return "\n".join([head, sep, *body]) + note
