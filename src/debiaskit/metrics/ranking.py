"""Average precision (AP) per label and macro mean AP (mAP).

AP is the step-wise area under the precision-recall curve, exactly as
``sklearn.metrics.average_precision_score`` computes it (unweighted, no interpolation):

    AP = Σ_k (R_k − R_{k−1}) · P_k

over the distinct score thresholds in decreasing order (ties form one threshold). This is the AP of
Ramaswamy et al. (CVPR 2021, spec §A9; reported there ×100) and of Wang et al. (ICCV 2019, mAP over
COCO objects). A label without positives has undefined AP: we return NaN with a :class:`MetricWarning`
(scikit-learn returns 0 with a warning; a silent 0 would pull mAP down).

The batched form sorts the scores once and evaluates AP for many bootstrap count vectors at once with
cumulative sums (``debiaskit.metrics.bootstrap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import as_weights, batched, ones_weights
from debiaskit.metrics._validation import check_binary, check_lengths, check_scores, warn

__all__ = ["average_precision", "mean_average_precision", "average_precision_batched"]


@dataclass
class _APLabel:
    n: int
    order_pos: np.ndarray  # original indices of the positives, by decreasing score
    order_neg: np.ndarray  # original indices of the negatives, by decreasing score
    last_pos: np.ndarray  # per score block containing positives: index (into order_pos) of its last positive
    neg_upto: np.ndarray  # per such block: number of negatives in this or higher-scored blocks
    distinct: bool = False  # no two positives share a score (then each positive is its own block)


@dataclass
class _APState:
    labels: list[_APLabel]
    average: str | None
    multilabel: bool


def _prepare_label(y: np.ndarray, s: np.ndarray) -> _APLabel:
    order = np.argsort(-s, kind="stable")
    ss, ys = s[order], y[order]
    block = np.concatenate([[0], np.cumsum(np.diff(ss) != 0)])  # tied scores share a block
    pos = ys == 1
    bp, bn = block[pos], block[~pos]
    ub = bp[np.concatenate([[True], np.diff(bp) != 0])] if bp.size else bp  # bp is non-decreasing
    last_pos = np.searchsorted(bp, ub, side="right") - 1
    neg_upto = np.searchsorted(bn, ub, side="right")
    return _APLabel(len(y), order[pos], order[~pos], last_pos, neg_upto, bool(len(ub) == len(bp)))


def _prepare(y_true: Any, scores: Any, *, average: Literal["macro"] | None = "macro", _warn: bool = True) -> _APState:
    if average not in ("macro", None):
        raise DebiaskitError(f"average must be 'macro' or None, got {average!r}")
    y = check_binary(y_true, name="y_true", allow_2d=True)
    s = check_scores(scores, name="scores", allow_2d=True)
    check_lengths(y_true=y, scores=s)
    if y.shape != s.shape:
        raise DebiaskitError(f"y_true has shape {y.shape} but scores has shape {s.shape}; they must match")
    multilabel = y.ndim == 2
    Y = y if multilabel else y[:, None]
    S = s if multilabel else s[:, None]
    labels = []
    for j in range(Y.shape[1]):
        labels.append(_prepare_label(Y[:, j], S[:, j]))
        if _warn and not Y[:, j].any():
            which = f"label {j}" if multilabel else "y_true"
            warn(f"{which} has no positive samples: AP is undefined and reported as NaN")
    return _APState(labels, average, multilabel)


def _evaluate_label(lab: _APLabel, W: np.ndarray) -> np.ndarray:
    """AP = (1/P) Σ_blocks Δtp_block · tp_block / (tp_block + fp_block), counts weighted by W."""
    B = W.shape[0]
    out = np.full(B, np.nan)
    if lab.order_pos.size == 0:
        return out
    acc = np.float64 if W.dtype.kind == "f" else (np.int64 if lab.n >= 2**31 else np.int32)
    Wp = W[:, lab.order_pos]
    cp = np.cumsum(Wp, axis=1, dtype=acc)
    P = cp[:, -1].astype(np.float64)
    if lab.order_neg.size:
        cn = np.cumsum(W[:, lab.order_neg], axis=1, dtype=acc)
        fp = cn[:, np.maximum(lab.neg_upto - 1, 0)]
        if lab.neg_upto.size and lab.neg_upto[0] == 0:
            fp[:, lab.neg_upto == 0] = 0
    else:
        fp = np.zeros((W.shape[0], lab.last_pos.size), dtype=acc)
    if lab.distinct:
        # each positive is its own block: Δtp = its weight, tp = cumulative positive weight
        tp, dtp = cp, Wp
    else:
        tp = cp[:, lab.last_pos]
        dtp = np.diff(tp, axis=1, prepend=0)
    tot = tp + fp
    if acc is np.float64:
        prec = np.zeros(tot.shape)
        np.divide(tp, tot, out=prec, where=tot > 0)
    else:
        np.maximum(tot, 1, out=tot)  # tot == 0 only where tp == 0 (term is 0 either way)
        prec = tp / tot
    num = np.einsum("ij,ij->i", dtp.astype(np.float64, copy=False), prec)
    np.divide(num, P, out=out, where=P > 0)
    return out


def _evaluate(state: _APState, R: Any) -> np.ndarray:
    W = as_weights(R)
    per = np.stack([_evaluate_label(lab, W) for lab in state.labels], axis=1)  # (B, L)
    if not state.multilabel:
        return per[:, 0]
    if state.average == "macro":
        with np.errstate(all="ignore"), _quiet_nanmean():
            return np.nanmean(per, axis=1)
    return per


class _quiet_nanmean:
    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


@batched(lambda y_true, scores, **kw: _prepare(y_true, scores, _warn=False, **kw), _evaluate, n_arrays=2)
def average_precision(
    y_true: Any, scores: Any, *, average: Literal["macro"] | None = "macro"
) -> float | np.ndarray:
    """Average precision (step-wise, as scikit-learn); multi-label input gives macro mAP or per-label AP.

    Args:
        y_true: ``(n,)`` binary labels or ``(n, L)`` multi-hot labels (NumPy or torch).
        scores: same shape, higher = more positive (probabilities or logits; AP is rank-based).
        average: ``"macro"`` (mean over labels with positives, i.e. mAP) or ``None`` (per-label array).

    Returns:
        AP in [0, 1] (the CVPR 2021 tables show ×100); NaN for a label without positives.
    """
    state = _prepare(y_true, scores, average=average)
    out = _evaluate(state, ones_weights(state.labels[0].n))[0]
    return float(out) if np.ndim(out) == 0 else out


def mean_average_precision(y_true: Any, scores: Any) -> float:
    """Macro mAP over the columns of multi-hot ``y_true`` (Wang et al. ICCV 2019 report mAP on COCO)."""
    return float(average_precision(y_true, scores, average="macro"))


def average_precision_batched(y_true: Any, scores: Any, weights: Any, *, average: Literal["macro"] | None = "macro") -> np.ndarray:
    """AP for many sample-count vectors at once.

    ``weights`` is a ``(B, n)`` matrix of non-negative integer counts (a bootstrap resample is the count of
    each original sample); row ``b`` of the result equals ``average_precision`` on the data with sample
    ``i`` repeated ``weights[b, i]`` times.
    """
    W = np.asarray(weights)
    if W.ndim == 1:
        W = W[None]
    state = _prepare(y_true, scores, average=average, _warn=False)
    if W.shape[1] != state.labels[0].n:
        raise DebiaskitError(f"weights has {W.shape[1]} columns but there are {state.labels[0].n} samples")
    return _evaluate(state, W)
