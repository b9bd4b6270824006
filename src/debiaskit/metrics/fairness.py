"""Group-rate fairness gaps: DEO, equalized odds, demographic parity (differences and ratios).

All metrics here are functions of the weighted confusion counts per protected group, so they are computed
from one ``(B, G, 2, 2)`` count tensor (group × y_true × y_pred) and bootstrap in batches for free.

Definitions (G groups; rates per group g):

* TPR_g = P(ŷ=1 | y=1, g), FPR_g = P(ŷ=1 | y=0, g), selection rate SR_g = P(ŷ=1 | g).
* **DEO** (difference in equality of opportunity; Ramaswamy et al., CVPR 2021, §5):
  |TPR_g0 − TPR_g1| = |FNR_g0 − FNR_g1| for two groups. For G > 2 groups ``reduction="max"`` gives the
  largest pairwise gap max_g TPR_g − min_g TPR_g (= fairlearn ``equal_opportunity_difference``),
  ``reduction="mean"`` the mean absolute pairwise gap. The CVPR code evaluates DEO at the calibrated
  threshold; pass predictions made with :func:`~debiaskit.metrics.thresholds.calibrated_threshold`
  to reproduce it (fairlearn and the FFB benchmark use 0.5; see docs/metrics.md).
* **Equalized odds** (Hardt et al. 2016) as in fairlearn: difference = max(ΔTPR, ΔFPR) (``agg="worst_case"``)
  or their mean (``agg="mean"``), Δ = max − min over groups; ratio = min(TPR ratio, FPR ratio), ratio = min/max.
* **Demographic parity**: difference = max_g SR_g − min_g SR_g, ratio = min_g SR_g / max_g SR_g.

A group without positives (or negatives, for FPR) makes the gap undefined: NaN plus a
:class:`~debiaskit.metrics._validation.MetricWarning` naming the group — never a silent 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import CellIndex, as_resamples, batched, ones_weights, safe_div
from debiaskit.metrics._validation import ArrayLike, check_binary, check_groups, check_lengths, group_name, warn
from debiaskit.metrics.bootstrap import extremum_bounds

__all__ = [
    "group_confusion",
    "rates_by_group",
    "tpr_by_group",
    "fpr_by_group",
    "selection_rate_by_group",
    "deo",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "true_positive_rate",
    "false_positive_rate",
    "selection_rate",
    "accuracy",
]


@dataclass
class _GroupState:
    cells: CellIndex
    n_groups: int
    labels: np.ndarray
    options: dict[str, Any]


def _prepare_groups(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    need: str = "",
    _warn: bool = True,
    **options: Any,
) -> _GroupState:
    y = check_binary(y_true, name="y_true")
    p = check_binary(y_pred, name="y_pred")
    g, labels = check_groups(sensitive_features, name="sensitive_features")
    check_lengths(y_true=y, y_pred=p, sensitive_features=g)
    G = len(labels)
    codes = (g * 2 + y) * 2 + p
    if _warn and need:
        pos = np.bincount(g[y == 1], minlength=G)
        neg = np.bincount(g[y == 0], minlength=G)
        for k in range(G):
            if "pos" in need and pos[k] == 0:
                warn(f"group {group_name(labels, k)!r} has no positive samples (y_true == 1): "
                     "its TPR is undefined, so the gap is reported as NaN")
            if "neg" in need and neg[k] == 0:
                warn(f"group {group_name(labels, k)!r} has no negative samples (y_true == 0): "
                     "its FPR is undefined, so the gap is reported as NaN")
    return _GroupState(CellIndex(codes, G * 4), G, labels, options)


def _quiet(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> _GroupState:
    return _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features, _warn=False)


def _counts(state: _GroupState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    return state.cells(R).reshape(R.b, state.n_groups, 2, 2)


def _tpr(c: np.ndarray) -> np.ndarray:
    return safe_div(c[..., 1, 1], c[..., 1, :].sum(-1))


def _fpr(c: np.ndarray) -> np.ndarray:
    return safe_div(c[..., 0, 1], c[..., 0, :].sum(-1))


def _sr(c: np.ndarray) -> np.ndarray:
    return safe_div(c[..., :, 1].sum(-1), c.sum((-1, -2)))


def _diff(r: np.ndarray) -> np.ndarray:
    return r.max(axis=-1) - r.min(axis=-1)  # NaN propagates


def _ratio(r: np.ndarray) -> np.ndarray:
    return safe_div(r.min(axis=-1), r.max(axis=-1))


def _mean_pairwise(r: np.ndarray) -> np.ndarray:
    G = r.shape[-1]
    iu = np.triu_indices(G, 1)
    gaps = np.abs(r[..., :, None] - r[..., None, :])[..., iu[0], iu[1]]
    return gaps.mean(-1)


def _mean_pairwise_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    G = lo.shape[-1]
    i, j = np.triu_indices(G, 1)
    a = np.maximum(np.maximum(lo[..., i] - hi[..., j], lo[..., j] - hi[..., i]), 0.0)
    b = np.maximum(hi[..., i] - lo[..., j], hi[..., j] - lo[..., i])
    return a.mean(-1), b.mean(-1)


def _point(fn: Any, state: _GroupState) -> Any:
    return fn(state, ones_weights(state.cells.n))[0]


# ---- per-group rates -------------------------------------------------------------------------------


def _ev_tpr(s: _GroupState, R: Any) -> np.ndarray:
    return _tpr(_counts(s, R))


def _ev_fpr(s: _GroupState, R: Any) -> np.ndarray:
    return _fpr(_counts(s, R))


def _ev_sr(s: _GroupState, R: Any) -> np.ndarray:
    return _sr(_counts(s, R))


def _series(values: np.ndarray, labels: np.ndarray, name: str) -> Any:
    import pandas as pd

    return pd.Series(values, index=pd.Index(labels, name="group"), name=name)


def group_confusion(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion counts per group: ``(counts[G, y_true, y_pred], group_labels)``."""
    s = _quiet(y_true, y_pred, sensitive_features=sensitive_features)
    return _counts(s, ones_weights(s.cells.n))[0].astype(np.int64), s.labels


@batched(_quiet, _ev_tpr, n_arrays=2)
def tpr_by_group(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> Any:
    """True-positive rate (recall) per group as a pandas Series (NaN + warning for a group without positives)."""
    s = _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features, need="pos")
    return _series(_point(_ev_tpr, s), s.labels, "tpr")


@batched(_quiet, _ev_fpr, n_arrays=2)
def fpr_by_group(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> Any:
    """False-positive rate per group as a pandas Series (NaN + warning for a group without negatives)."""
    s = _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features, need="neg")
    return _series(_point(_ev_fpr, s), s.labels, "fpr")


@batched(_quiet, _ev_sr, n_arrays=2)
def selection_rate_by_group(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> Any:
    """Selection rate P(ŷ=1 | g) per group as a pandas Series."""
    s = _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features)
    return _series(_point(_ev_sr, s), s.labels, "selection_rate")


def rates_by_group(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> Any:
    """DataFrame per group: count, positives, base_rate, selection_rate, tpr, fpr, fnr, tnr, accuracy."""
    import pandas as pd

    c, labels = group_confusion(y_true, y_pred, sensitive_features=sensitive_features)
    c = c.astype(np.float64)
    n = c.sum((1, 2))
    return pd.DataFrame(
        {
            "count": n.astype(np.int64),
            "positives": c[:, 1, :].sum(-1).astype(np.int64),
            "base_rate": safe_div(c[:, 1, :].sum(-1), n),
            "selection_rate": _sr(c),
            "tpr": _tpr(c),
            "fpr": _fpr(c),
            "fnr": 1 - _tpr(c),
            "tnr": 1 - _fpr(c),
            "accuracy": safe_div(c[:, 0, 0] + c[:, 1, 1], n),
        },
        index=pd.Index(labels, name="group"),
    )


# ---- gaps --------------------------------------------------------------------------------------------
# Each gap is a monotone function of per-group rates; ``components`` returns those rates and ``bounds``
# maps a box of rate intervals to an interval of the gap (``ci_method="simultaneous"`` in bootstrap).


def _ev_deo(s: _GroupState, R: Any) -> np.ndarray:
    r = _tpr(_counts(s, R))
    return _mean_pairwise(r) if s.options.get("reduction") == "mean" else _diff(r)


def _bounds_deo(s: _GroupState, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if s.options.get("reduction") == "mean":
        return _mean_pairwise_bounds(lo, hi)
    return extremum_bounds(lo, hi, "difference")


def _prep_deo(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike, reduction: str = "max", _warn: bool = False
) -> _GroupState:
    if reduction not in ("max", "mean"):
        raise DebiaskitError(f"reduction must be 'max' or 'mean', got {reduction!r}")
    return _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features, need="pos", _warn=_warn,
                           reduction=reduction)


@batched(_prep_deo, _ev_deo, n_arrays=2, components=_ev_tpr, bounds=_bounds_deo)
def deo(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike, reduction: Literal["max", "mean"] = "max"
) -> float:
    """Difference in equality of opportunity |TPR_g0 − TPR_g1| (Ramaswamy et al. CVPR 2021, DEO).

    ``y_pred`` are binary predictions (for the CVPR protocol: ``y_score > calibrated_threshold(val)``).
    More than two groups: ``reduction="max"`` = max − min TPR, ``"mean"`` = mean |pairwise gap|.
    Returns a fraction (the paper reports ×100); NaN with a warning if a group has no positives.
    """
    st = _prep_deo(y_true, y_pred, sensitive_features=sensitive_features, reduction=reduction, _warn=True)
    return float(_point(_ev_deo, st))


def equal_opportunity_difference(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> float:
    """max_g TPR_g − min_g TPR_g (fairlearn's name for DEO with ``reduction="max"``)."""
    return deo(y_true, y_pred, sensitive_features=sensitive_features, reduction="max")


equal_opportunity_difference.batched = deo.batched  # type: ignore[attr-defined]


def _ev_eo_ratio(s: _GroupState, R: Any) -> np.ndarray:
    return _ratio(_tpr(_counts(s, R)))


def _bounds_ratio(s: _GroupState, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return extremum_bounds(lo, hi, "ratio")


def _bounds_difference(s: _GroupState, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return extremum_bounds(lo, hi, "difference")


@batched(_quiet, _ev_eo_ratio, n_arrays=2, components=_ev_tpr, bounds=_bounds_ratio)
def equal_opportunity_ratio(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> float:
    """min_g TPR_g / max_g TPR_g (torchmetrics ``BinaryFairness`` EO reports this ratio)."""
    st = _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features, need="pos")
    return float(_point(_ev_eo_ratio, st))


def _prep_eodds(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike, agg: str = "worst_case", _warn: bool = False
) -> _GroupState:
    if agg not in ("worst_case", "mean"):
        raise DebiaskitError(f"agg must be 'worst_case' or 'mean', got {agg!r}")
    return _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features, need="posneg", _warn=_warn, agg=agg)


def _ev_eodds_diff(s: _GroupState, R: Any) -> np.ndarray:
    c = _counts(s, R)
    a, b = _diff(_tpr(c)), _diff(_fpr(c))
    return np.maximum(a, b) if s.options["agg"] == "worst_case" else (a + b) / 2


def _ev_eodds_ratio(s: _GroupState, R: Any) -> np.ndarray:
    c = _counts(s, R)
    a, b = _ratio(_tpr(c)), _ratio(_fpr(c))
    return np.minimum(a, b) if s.options["agg"] == "worst_case" else (a + b) / 2


def _ev_tpr_fpr(s: _GroupState, R: Any) -> np.ndarray:
    c = _counts(s, R)
    return np.concatenate([_tpr(c), _fpr(c)], axis=-1)


def _eodds_bounds(kind: str) -> Any:
    def bounds(s: _GroupState, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        G = s.n_groups
        (a0, a1), (b0, b1) = extremum_bounds(lo[..., :G], hi[..., :G], kind), extremum_bounds(lo[..., G:], hi[..., G:], kind)
        if s.options["agg"] == "mean":
            return (a0 + b0) / 2, (a1 + b1) / 2
        pick = np.maximum if kind == "difference" else np.minimum
        return pick(a0, b0), pick(a1, b1)

    return bounds


@batched(_prep_eodds, _ev_eodds_diff, n_arrays=2, components=_ev_tpr_fpr, bounds=_eodds_bounds("difference"))
def equalized_odds_difference(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike, agg: Literal["worst_case", "mean"] = "worst_case"
) -> float:
    """Equalized-odds difference (Hardt et al. 2016; fairlearn convention): max (or mean) of ΔTPR and ΔFPR."""
    st = _prep_eodds(y_true, y_pred, sensitive_features=sensitive_features, agg=agg, _warn=True)
    return float(_point(_ev_eodds_diff, st))


@batched(_prep_eodds, _ev_eodds_ratio, n_arrays=2, components=_ev_tpr_fpr, bounds=_eodds_bounds("ratio"))
def equalized_odds_ratio(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike, agg: Literal["worst_case", "mean"] = "worst_case"
) -> float:
    """Equalized-odds ratio (fairlearn convention): min (or mean) of the TPR and FPR min/max ratios."""
    st = _prep_eodds(y_true, y_pred, sensitive_features=sensitive_features, agg=agg, _warn=True)
    return float(_point(_ev_eodds_ratio, st))


def _ev_dp_diff(s: _GroupState, R: Any) -> np.ndarray:
    return _diff(_sr(_counts(s, R)))


def _ev_dp_ratio(s: _GroupState, R: Any) -> np.ndarray:
    return _ratio(_sr(_counts(s, R)))


@batched(_quiet, _ev_dp_diff, n_arrays=2, components=_ev_sr, bounds=_bounds_difference)
def demographic_parity_difference(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> float:
    """max_g P(ŷ=1|g) − min_g P(ŷ=1|g) (fairlearn ``demographic_parity_difference``)."""
    return float(_point(_ev_dp_diff, _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features)))


@batched(_quiet, _ev_dp_ratio, n_arrays=2, components=_ev_sr, bounds=_bounds_ratio)
def demographic_parity_ratio(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> float:
    """min_g P(ŷ=1|g) / max_g P(ŷ=1|g) (fairlearn ``demographic_parity_ratio``)."""
    return float(_point(_ev_dp_ratio, _prepare_groups(y_true, y_pred, sensitive_features=sensitive_features)))


# ---- single-population rates (the per-group cells of a GroupReport) -----------------------------------


@dataclass
class _PlainState:
    cells: CellIndex


def _prep_plain(y_true: ArrayLike, y_pred: ArrayLike) -> _PlainState:
    y = check_binary(y_true, name="y_true")
    p = check_binary(y_pred, name="y_pred")
    check_lengths(y_true=y, y_pred=p)
    return _PlainState(CellIndex(y * 2 + p, 4))


def _plain(s: _PlainState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    return s.cells(R).reshape(R.b, 2, 2)


def _ev_tpr1(s: _PlainState, R: Any) -> np.ndarray:
    return _tpr(_plain(s, R))


def _ev_fpr1(s: _PlainState, R: Any) -> np.ndarray:
    return _fpr(_plain(s, R))


def _ev_sr1(s: _PlainState, R: Any) -> np.ndarray:
    return _sr(_plain(s, R))


def _ev_acc1(s: _PlainState, R: Any) -> np.ndarray:
    c = _plain(s, R)
    return safe_div(c[:, 0, 0] + c[:, 1, 1], c.sum((1, 2)))


def _plain_point(fn: Any, y_true: ArrayLike, y_pred: ArrayLike) -> float:
    st = _prep_plain(y_true, y_pred)
    return float(fn(st, ones_weights(st.cells.n))[0])


@batched(_prep_plain, _ev_tpr1, n_arrays=2)
def true_positive_rate(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """TPR = P(ŷ=1 | y=1); NaN when there are no positives."""
    return _plain_point(_ev_tpr1, y_true, y_pred)


@batched(_prep_plain, _ev_fpr1, n_arrays=2)
def false_positive_rate(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """FPR = P(ŷ=1 | y=0); NaN when there are no negatives."""
    return _plain_point(_ev_fpr1, y_true, y_pred)


@batched(_prep_plain, _ev_sr1, n_arrays=2)
def selection_rate(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """P(ŷ=1) (``y_true`` is only checked, as in fairlearn's signature)."""
    return _plain_point(_ev_sr1, y_true, y_pred)


@batched(_prep_plain, _ev_acc1, n_arrays=2)
def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Binary accuracy P(ŷ = y)."""
    return _plain_point(_ev_acc1, y_true, y_pred)
