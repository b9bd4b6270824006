"""Decision thresholds fitted on a validation set and reused on the evaluation set.

* :func:`calibrated_threshold` — Ramaswamy et al. (CVPR 2021, spec §A9): with ``P`` validation
  positives, τ_cal is the P-th largest validation score and predictions are ``s > τ_cal`` (strict).
  Without ties this predicts exactly **P − 1** positives on validation (the P-th sample sits on the
  threshold); we keep this off-by-one for comparability with the published numbers.
* :func:`f1_optimal_threshold` — the threshold that maximises F1 with ``s > τ``. ``method="exact"``
  searches every distinct score; ``method="grid"`` reproduces the gan-debiasing search (coarse grid
  0.1..0.9 step 0.1, then step 0.01 within ±0.1 of the best coarse value; spec §A2/§G4). Ties are broken
  towards the smallest threshold in both.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._validation import check_binary, check_lengths, check_scores, warn

__all__ = ["calibrated_threshold", "f1_optimal_threshold", "apply_threshold"]


def _prep(y_val: Any, s_val: Any) -> tuple[np.ndarray, np.ndarray]:
    y = check_binary(y_val, name="y_val", allow_2d=True)
    s = check_scores(s_val, name="s_val", allow_2d=True)
    if y.shape != s.shape:
        raise DebiaskitError(f"y_val has shape {y.shape} but s_val has shape {s.shape}; they must match")
    check_lengths(y_val=y, s_val=s)
    return y, s


def _calibrated_1d(y: np.ndarray, s: np.ndarray, j: int | None) -> float:
    P = int(y.sum())
    if P == 0:
        which = "y_val" if j is None else f"label {j} of y_val"
        warn(f"{which} has no positives: calibrated threshold set to the maximum score (no positive predictions)")
        return float(s.max())
    return float(np.partition(s, len(s) - P)[len(s) - P])  # P-th largest


def calibrated_threshold(y_val: Any, s_val: Any) -> float | np.ndarray:
    """τ_cal = P-th largest validation score, P = number of validation positives (CVPR 2021, §A9).

    Use with strict ``scores > τ_cal``. For ``(n, L)`` multi-label input returns one threshold per label.
    """
    y, s = _prep(y_val, s_val)
    if y.ndim == 1:
        return _calibrated_1d(y, s, None)
    return np.array([_calibrated_1d(y[:, j], s[:, j], j) for j in range(y.shape[1])])


def _f1_at(y: np.ndarray, s: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """F1 of ``s > tau`` for each tau (vectorised with one sort)."""
    order = np.argsort(s, kind="stable")
    ss, ys = s[order], y[order].astype(np.int64)
    P = ys.sum()
    # number of samples with score <= tau and positives among them
    k = np.searchsorted(ss, taus, side="right")
    cum_pos = np.concatenate([[0], np.cumsum(ys)])
    tp = P - cum_pos[k]
    pred_pos = len(ss) - k
    den = pred_pos + P
    return np.where(den > 0, 2.0 * tp / np.maximum(den, 1), 0.0)


def _f1_1d(y: np.ndarray, s: np.ndarray, method: str) -> float:
    if method == "exact":
        taus = np.unique(s)
        taus = np.concatenate([[np.nextafter(taus[0], -np.inf)], taus])  # below min: everything positive
    else:
        coarse = np.round(np.arange(0.1, 0.95, 0.1), 10)
        best = coarse[int(np.argmax(_f1_at(y, s, coarse)))]
        taus = np.round(np.arange(best - 0.1, best + 0.1 + 1e-9, 0.01), 10)
    f1 = _f1_at(y, s, taus)
    return float(taus[int(np.argmax(f1))])


def f1_optimal_threshold(
    y_val: Any, s_val: Any, *, method: Literal["exact", "grid"] = "exact"
) -> float | np.ndarray:
    """Threshold τ maximising F1 of ``s_val > τ`` on validation data.

    ``method="grid"`` is the two-stage grid of the gan-debiasing code (scores assumed in [0, 1]);
    ``"exact"`` (default) checks every distinct score. Multi-label input gives one τ per label.
    """
    if method not in ("exact", "grid"):
        raise DebiaskitError(f"method must be 'exact' or 'grid', got {method!r}")
    y, s = _prep(y_val, s_val)
    if y.ndim == 1:
        return _f1_1d(y, s, method)
    return np.array([_f1_1d(y[:, j], s[:, j], method) for j in range(y.shape[1])])


def apply_threshold(scores: Any, threshold: float | np.ndarray) -> np.ndarray:
    """Binary predictions ``scores > threshold`` (strict, as in the CVPR 2021 code) as int8."""
    s = check_scores(scores, name="scores", allow_2d=True)
    return (s > np.asarray(threshold, dtype=np.float64)).astype(np.int8)
