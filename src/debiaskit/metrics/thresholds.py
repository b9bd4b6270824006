"""Decision thresholds fitted on a validation set and reused on the evaluation set.

* :func:`calibrated_threshold` — Ramaswamy et al. (CVPR 2021, evaluation protocol of §5): with ``P``
  validation positives, τ_cal is the P-th largest validation score and predictions are ``s > τ_cal``
  (strict). Without ties this predicts exactly **P − 1** positives on validation (the P-th sample sits on
  the threshold); we keep this off-by-one for comparability with the published numbers. Without any
  positive the official code indexes ``sorted_scores[-0]`` = the *smallest* score (almost everything is
  then predicted positive); we return the largest score instead (nothing predicted positive, matching the
  rate of actual positives) with a :class:`MetricWarning`.
* :func:`f1_optimal_threshold` — the threshold that maximises F1 of ``s > τ``:

  - ``method="exact"`` (default) searches every distinct score (and one value below the minimum);
    among equally good thresholds it returns the smallest;
  - ``method="official"`` is the two-stage grid of the gan-debiasing code, reproduced exactly: coarse
    τ = 0.1·t for t = 1..9, keeping the first strictly better one (start: F1 = 0, τ = −1); then
    τ = (τ_coarse − 0.1) + 0.01·t for t = 1..19 (τ_coarse ± 0.09), replacing the current best only when
    strictly better — so the coarse value survives ties. Both stages compute the thresholds with exactly
    these floating-point expressions. When every coarse F1 is 0 the official search returns a value near
    −1 (it refines around τ = −1); we return that too, with a warning.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._validation import ArrayLike, check_binary, check_lengths, check_scores, warn

__all__ = ["calibrated_threshold", "f1_optimal_threshold", "apply_threshold", "F1_METHODS"]

F1_METHODS = ("exact", "official")


def _prep(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = check_binary(y_true, name="y_true", allow_2d=True)
    s = check_scores(y_score, name="y_score", allow_2d=True)
    if y.shape != s.shape:
        raise DebiaskitError(f"y_true has shape {y.shape} but y_score has shape {s.shape}; they must match")
    check_lengths(y_true=y, y_score=s)
    return y, s


def _calibrated_1d(y: np.ndarray, s: np.ndarray, j: int | None) -> float:
    P = int(y.sum())
    if P == 0:
        which = "y_true" if j is None else f"label {j} of y_true"
        warn(f"{which} has no positives: calibrated threshold set to the maximum score (no positive predictions)")
        return float(s.max())
    return float(np.partition(s, len(s) - P)[len(s) - P])  # P-th largest


def calibrated_threshold(y_true: ArrayLike, y_score: ArrayLike) -> float | np.ndarray:
    """τ_cal = P-th largest validation score, P = number of validation positives (CVPR 2021).

    Pass the **validation** labels and scores; use with strict ``y_score > τ_cal`` on the evaluation set.
    For ``(n, L)`` multi-label input returns one threshold per label.
    """
    y, s = _prep(y_true, y_score)
    if y.ndim == 1:
        return _calibrated_1d(y, s, None)
    return np.array([_calibrated_1d(y[:, j], s[:, j], j) for j in range(y.shape[1])])


def _f1_at(y: np.ndarray, s: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """F1 of ``s > tau`` for each tau, as ``2·tp / (P + predicted positives)`` (0 when undefined, as
    scikit-learn's ``f1_score``)."""
    order = np.argsort(s, kind="stable")
    ss, ys = s[order], y[order].astype(np.int64)
    P = ys.sum()
    k = np.searchsorted(ss, taus, side="right")  # samples with score <= tau
    cum_pos = np.concatenate([[0], np.cumsum(ys)])
    tp = P - cum_pos[k]
    den = (len(ss) - k) + P
    return np.where(den > 0, 2.0 * tp / np.maximum(den, 1), 0.0)


def _official_grid(y: np.ndarray, s: np.ndarray) -> float:
    best_t, best = -1.0, 0.0
    coarse = [0.1 * t for t in range(1, 10)]
    for t, f in zip(coarse, _f1_at(y, s, np.array(coarse))):
        if f > best:
            best, best_t = float(f), t
    if best_t == -1.0:
        warn("F1 is 0 at every coarse threshold 0.1..0.9: the official grid refines around -1 "
             "(every sample predicted positive)")
    one_dec = best_t
    fine = [(one_dec - 0.1) + 0.01 * t for t in range(1, 20)]
    for t, f in zip(fine, _f1_at(y, s, np.array(fine))):
        if f > best:
            best, best_t = float(f), t
    return float(best_t)


def _f1_1d(y: np.ndarray, s: np.ndarray, method: str) -> float:
    if method == "official":
        return _official_grid(y, s)
    taus = np.unique(s)
    taus = np.concatenate([[np.nextafter(taus[0], -np.inf)], taus])  # below min: everything positive
    return float(taus[int(np.argmax(_f1_at(y, s, taus)))])


def f1_optimal_threshold(
    y_true: ArrayLike, y_score: ArrayLike, *, method: Literal["exact", "official"] = "exact"
) -> float | np.ndarray:
    """Threshold τ maximising F1 of ``y_score > τ`` on validation data.

    ``method="exact"`` (default) checks every distinct score and returns the smallest optimal one;
    ``"official"`` reproduces the gan-debiasing two-stage grid exactly (scores assumed in [0, 1]; see the
    module docstring). Multi-label input gives one τ per label.
    """
    if method not in F1_METHODS:
        raise DebiaskitError(f"method must be 'exact' or 'official', got {method!r}")
    y, s = _prep(y_true, y_score)
    if y.ndim == 1:
        return _f1_1d(y, s, method)
    return np.array([_f1_1d(y[:, j], s[:, j], method) for j in range(y.shape[1])])


def apply_threshold(y_score: ArrayLike, *, threshold: float | np.ndarray) -> np.ndarray:
    """Binary predictions ``y_score > threshold`` (strict, as in the CVPR 2021 code) as int8."""
    s = check_scores(y_score, name="y_score", allow_2d=True)
    return (s > np.asarray(threshold, dtype=np.float64)).astype(np.int8)
