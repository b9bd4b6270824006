"""Average precision (AP) per label and macro mean AP (mAP).

AP is the step-wise area under the precision-recall curve, exactly as
``sklearn.metrics.average_precision_score`` computes it (unweighted, no interpolation):

    AP = Σ_k (R_k − R_{k−1}) · P_k

over the distinct score thresholds in decreasing order (ties form one threshold). This is the AP of
Ramaswamy et al. (CVPR 2021, §5; reported there ×100) and of Wang et al. (ICCV 2019, mAP over
COCO objects). A label without positives has undefined AP: we return NaN with a :class:`MetricWarning`
(scikit-learn returns 0 with a warning; a silent 0 would pull mAP down).

The batched form sorts the scores once and evaluates AP for many bootstrap count vectors at once with
cumulative sums (``debiaskit.metrics.bootstrap``): the counts are taken in (label, decreasing score) order,
one exact integer cumulative sum per resample gives the true positives at every positive and, gathered
at the negatives' positions, the false positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import Resamples, SampleOrder, as_resamples, batched, gather_cols, ones_weights
from debiaskit.metrics._validation import ArrayLike, check_binary, check_lengths, check_scores, warn

__all__ = ["average_precision", "mean_average_precision", "average_precision_batched"]


@dataclass
class _APLabel:
    n: int
    npos: int
    order: SampleOrder  # positives first (major 1 − y), each part by decreasing score
    tp_at: np.ndarray  # per score block containing positives: column of C after its last positive
    fp_at: np.ndarray  # per such block: column of C after the negatives in this or higher-scored blocks
    distinct: bool = False  # no two positives share a score (then each positive is its own block)

    @property
    def fp_at_t(self) -> torch.Tensor:
        t = self.__dict__.get("_fp_at_t")
        if t is None:
            t = self.__dict__["_fp_at_t"] = torch.from_numpy(self.fp_at.astype(np.int64))
        return t


@dataclass
class _APState:
    labels: list[_APLabel]
    average: str | None
    multilabel: bool

    #: evaluated first in each sub-block of the bootstrap (see ``bootstrap_many``): AP builds the ordered
    #: counts and their cumulative sums that the official KL and the cell counts reuse
    eval_priority = 0


def _prepare_label(y: np.ndarray, s: np.ndarray) -> _APLabel:
    order = SampleOrder.get(1 - y.astype(np.int64), s)
    npos = int(y.sum())
    desc = order.desc  # by decreasing score: the relative order of the positives and of the negatives in ``order``
    ss, ys = s[desc], y[desc]
    block = np.concatenate([[0], np.cumsum(np.diff(ss) != 0)])  # tied scores share a block
    pos = ys == 1
    bp, bn = block[pos], block[~pos]
    ub = bp[np.concatenate([[True], np.diff(bp) != 0])] if bp.size else bp  # bp is non-decreasing
    last_pos = np.searchsorted(bp, ub, side="right") - 1
    neg_upto = np.searchsorted(bn, ub, side="right")
    return _APLabel(len(y), npos, order, (last_pos + 1).astype(np.intp), (npos + neg_upto).astype(np.intp),
                    bool(len(ub) == len(bp)))


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


#: elements of the per-block float temporaries processed together (they stay in cache)
_FLOAT_CHUNK = 1 << 16


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products. NumPy's ``einsum("ij,ij->i")`` sums a lone row in another order than rows of
    a multi-row array; a single row is therefore evaluated as two identical rows, so that a resample's value
    does not depend on how the resamples are split into blocks."""
    if a.shape[0] == 1:
        return np.einsum("ij,ij->i", np.repeat(a, 2, axis=0), np.repeat(b, 2, axis=0))[:1]
    return np.einsum("ij,ij->i", a, b)


def _evaluate_label(lab: _APLabel, R: Resamples, *, share: bool = True) -> np.ndarray:
    """AP = (1/P) Σ_blocks Δtp_block · tp_block / (tp_block + fp_block), counts weighted by the rows of W.

    The counts are taken in the label's :class:`SampleOrder` (positives, then negatives, each by decreasing
    score) with one cumulative sum ``C`` per row: ``tp`` is ``C`` over the positives, ``fp`` a gather in the
    negatives. Counts and their sums are exact integers; precision and the sum are float64, computed a few
    rows at a time so that the temporaries stay in cache. ``share`` caches the ordered counts in the
    (sub-)block, for the official KL (and cell counts) on the same labels and scores.
    """
    B = R.b
    out = np.full(B, np.nan)
    m = lab.tp_at.size
    if lab.npos == 0:
        return out
    fc = max(2, _FLOAT_CHUNK // max(m, 1))  # at least 2 rows: see _rowdot
    r0 = 0
    for S in R.chunks():
        oc = S.ordered(lab.order, cache=share)
        ws = S.ws
        for c0 in range(0, S.b, fc):
            C = oc.C[c0 : c0 + fc]
            b = C.shape[0]
            P = C[:, lab.npos]
            if lab.distinct:  # each positive is its own block
                tp, dtp = C[:, 1 : lab.npos + 1], oc.W[c0 : c0 + b, : lab.npos]
            else:
                tp = np.take(C, lab.tp_at, axis=1)
                dtp = np.diff(tp, axis=1, prepend=0)
            tot = ws.get((S.level, "ap.tot"), (b, m), C.dtype)
            gather_cols(C, lab.fp_at, out=tot, index=lab.fp_at_t)  # C after the negatives scored as high ...
            tot -= P[:, None]  # ... minus all positives = fp
            tot += tp
            np.maximum(tot, 1, out=tot)  # tot == 0 only where tp == 0 (the term is 0 either way)
            prec = ws.get((S.level, "ap.prec"), (b, m), np.float64)
            np.divide(tp, tot, out=prec)
            dtpf = ws.get((S.level, "ap.dtp"), (b, m), np.float64)
            np.copyto(dtpf, dtp)
            np.divide(_rowdot(dtpf, prec), P, out=out[r0 : r0 + b], where=P > 0)
            r0 += b
    return out


def _evaluate(state: _APState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    share = len(state.labels) == 1  # per-label orders of a multi-label AP are not kept in the block cache
    per = np.stack([_evaluate_label(lab, R, share=share) for lab in state.labels], axis=1)  # (B, L)
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
