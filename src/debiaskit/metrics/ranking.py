"""Average precision (AP) per label and macro mean AP (mAP).

AP is the step-wise area under the precision-recall curve, exactly as
``sklearn.metrics.average_precision_score`` computes it (unweighted, no interpolation):

    AP = Σ_k (R_k − R_{k−1}) · P_k

over the distinct score thresholds in decreasing order (ties form one threshold). This is the AP of
Ramaswamy et al. (CVPR 2021, §5; reported there ×100) and of Wang et al. (ICCV 2019, mAP over
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
from debiaskit.metrics._batched import Resamples, _key, as_resamples, batched, cumsum_counts, ones_weights
from debiaskit.metrics._validation import ArrayLike, check_binary, check_lengths, check_scores, warn

__all__ = ["average_precision", "mean_average_precision", "average_precision_batched"]


@dataclass
class _APLabel:
    n: int
    order_pos: np.ndarray  # original indices of the positives, by decreasing score
    order_neg: np.ndarray  # original indices of the negatives, by decreasing score
    last_pos: np.ndarray  # per score block containing positives: index (into order_pos) of its last positive
    neg_upto: np.ndarray  # per such block: number of negatives in this or higher-scored blocks
    distinct: bool = False  # no two positives share a score (then each positive is its own block)
    key: str = ""


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
    return _APLabel(len(y), order[pos], order[~pos], last_pos, neg_upto, bool(len(ub) == len(bp)),
                    _key(order[pos], order[~pos]))


def _prepare(
    y_true: ArrayLike, y_score: ArrayLike, *, average: Literal["macro"] | None = "macro", _warn: bool = True
) -> _APState:
    if average not in ("macro", None):
        raise DebiaskitError(f"average must be 'macro' or None, got {average!r}")
    y = check_binary(y_true, name="y_true", allow_2d=True)
    s = check_scores(y_score, name="y_score", allow_2d=True)
    check_lengths(y_true=y, y_score=s)
    if y.shape != s.shape:
        raise DebiaskitError(f"y_true has shape {y.shape} but y_score has shape {s.shape}; they must match")
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


#: count-matrix entries evaluated together (keeps the intermediates of one chunk in cache)
_CHUNK_ELEMENTS = 1 << 21


def _evaluate_label(lab: _APLabel, R: Resamples) -> np.ndarray:
    """AP = (1/P) Σ_blocks Δtp_block · tp_block / (tp_block + fp_block), counts weighted by the rows of W.

    Counts and their cumulative sums are exact integers; precision and the sum are float64.
    """
    B = R.b
    out = np.full(B, np.nan)
    if lab.order_pos.size == 0:
        return out
    fp_at = np.maximum(lab.neg_upto - 1, 0)
    fp_zero = lab.neg_upto == 0
    rows = max(1, _CHUNK_ELEMENTS // max(lab.n, 1))
    for r0 in range(0, B, rows):
        Wc = R.W[r0 : r0 + rows]
        Wp = np.take(Wc, lab.order_pos, axis=1)
        cp = cumsum_counts(Wp)  # cumulative positive weight by decreasing score
        P = cp[:, -1].astype(np.float64)
        if lab.distinct:  # each positive is its own block
            tp, dtp = cp, Wp
        else:
            tp = np.take(cp, lab.last_pos, axis=1)
            dtp = np.diff(tp, axis=1, prepend=0)
        if lab.order_neg.size:
            Wn = np.take(Wc, lab.order_neg, axis=1)
            cn = cumsum_counts(Wn)
            fp = np.take(cn, fp_at, axis=1)
            if fp_zero[0]:
                fp[:, fp_zero] = 0
            tot = tp + fp
        else:
            tot = tp.copy()
        np.maximum(tot, 1, out=tot)  # tot == 0 only where tp == 0 (the term is 0 either way)
        prec = np.divide(tp, tot, dtype=np.float64)
        num = np.einsum("ij,ij->i", dtp.astype(np.float64), prec)
        np.divide(num, P, out=out[r0 : r0 + rows], where=P > 0)
    return out


def _evaluate(state: _APState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    per = np.stack([_evaluate_label(lab, R) for lab in state.labels], axis=1)  # (B, L)
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


def _prepare_quiet(y_true: ArrayLike, y_score: ArrayLike, *, average: Literal["macro"] | None = "macro") -> _APState:
    return _prepare(y_true, y_score, average=average, _warn=False)


@batched(_prepare_quiet, _evaluate, n_arrays=2)
def average_precision(
    y_true: ArrayLike, y_score: ArrayLike, *, average: Literal["macro"] | None = "macro"
) -> float | np.ndarray:
    """Average precision (step-wise, as scikit-learn); multi-label input gives macro mAP or per-label AP.

    Args:
        y_true: ``(n,)`` binary labels or ``(n, L)`` multi-hot labels (NumPy or torch).
        y_score: same shape, higher = more positive (probabilities or logits; AP is rank-based).
        average: ``"macro"`` (mean over labels with positives, i.e. mAP) or ``None`` (per-label array).

    Returns:
        AP in [0, 1] (the CVPR 2021 tables show ×100); NaN for a label without positives.
    """
    state = _prepare(y_true, y_score, average=average)
    out = _evaluate(state, ones_weights(state.labels[0].n))[0]
    return float(out) if np.ndim(out) == 0 else out


def mean_average_precision(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Macro mAP over the columns of multi-hot ``y_true`` (Wang et al. ICCV 2019 report mAP on COCO)."""
    return float(average_precision(y_true, y_score, average="macro"))


def average_precision_batched(
    y_true: ArrayLike, y_score: ArrayLike, *, counts: ArrayLike, average: Literal["macro"] | None = "macro"
) -> np.ndarray:
    """AP for many sample-count vectors at once.

    ``counts`` is a ``(B, n)`` matrix of non-negative integer counts (a bootstrap resample is the count of
    each original sample); row ``b`` of the result equals ``average_precision`` on the data with sample
    ``i`` repeated ``counts[b, i]`` times.
    """
    W = np.asarray(counts)
    if W.ndim == 1:
        W = W[None]
    if W.dtype.kind not in "iub" or (W < 0).any():
        raise DebiaskitError("counts must be non-negative integers (copies of each sample)")
    state = _prepare(y_true, y_score, average=average, _warn=False)
    if W.shape[1] != state.labels[0].n:
        raise DebiaskitError(f"counts has {W.shape[1]} columns but there are {state.labels[0].n} samples")
    return _evaluate(state, Resamples(W))
