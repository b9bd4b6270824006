"""Bias amplification: Zhao et al. 2017, directional (Wang & Russakovsky 2021), and the CVPR 2021 binary form.

Calling convention (as every metric here): ``(y_true, y_pred, *, sensitive_features=...)``; for bias
amplification ``y_true`` are the task labels T, ``sensitive_features`` the protected attributes A and
``y_pred`` the predictions (of the tasks; of the attributes for the T→A direction). A 1-D vector of class
ids is one-hot encoded, so multi-valued attributes and multi-class tasks work; ``(n, k)`` binary
matrices are multi-label.

* **Zhao et al. 2017** ("Men also like shopping", EMNLP, §3): c(o,g) = #samples with task o and
  attribute g; b(o,g) = c(o,g) / Σ_g' c(o,g'). With b* from ground truth (the reference set if given,
  else the evaluation set) and b̃ from task *predictions* with ground-truth attributes:
  BiasAmp_MALS = (1/|O|) Σ_g Σ_{o : b*(o,g) > 1/|G|} (b̃(o,g) − b*(o,g)). The selection b* > 1/|G| is
  decided on integer counts (c·|G| > Σ_g' c), so an exactly balanced task is never selected.
* **Directional BA** (Wang & Russakovsky, ICML 2021, "Directional Bias Amplification", eq. 2):
  y_at = 1[P(A_a=1, T_t=1) > P(A_a=1) P(T_t=1)];
  A→T: Δ_at = P(T̂_t=1 | A_a=1) − P(T_t=1 | A_a=1); T→A: Δ_at = P(Â_a=1 | T_t=1) − P(A_a=1 | T_t=1);
  BA = 1/(|A||T|) Σ_{a,t} y_at Δ_at + (1 − y_at)(−Δ_at).
  Like the authors' code we use s_at = sign(P(a,t) − P(a)P(t)) ∈ {−1, 0, +1} and BA = mean of s_at·Δ_at,
  so independent (a, t) pairs contribute 0 (the paper's formula would count them as −Δ). The sign is
  taken on **integer counts**, sign(c_at·n − c_a·c_t): in floating point P(a,t) − P(a)P(t) of an exactly
  independent pair can come out as ±3e-17 and flip the pair to ∓Δ. Pairs whose conditional is undefined
  (no sample with A_a = 1, resp. T_t = 1 — e.g. a bootstrap resample without one group) are skipped
  (mean over the defined pairs, as the authors' ``nanmean``); BA is NaN only if no pair is defined.
  y_at comes from ``sensitive_features_ref``/``y_true_ref`` (e.g. training labels) when given, else
  from the evaluation labels.
* **CVPR 2021 binary form** (Ramaswamy et al., "Fair Attribute Classification through Latent Space
  De-biasing", CVPR 2021, §5 and the gan-debiasing code): the A→T form with T = {y=0, y=1},
  A = {g=0, g=1}, indicator from the evaluation set:
  BA = ¼ Σ_{t,g} sign(P(t,g) − P(t)P(g)) · (P(ŷ=t | g) − P(y=t | g)) = ½ Σ_g s_1g (P(ŷ=1|g) − P(y=1|g)).
  We use the code's sign (P_t̂|g − P_t|g), not the paper text's reversed one (gan-debiasing issue #5).
  Same integer sign and the same rule for undefined cells as the directional form, so the two agree on
  every input, including resamples that miss a group (the official code gives 0 there, and so do we).

All values are fractions (the CVPR 2021 tables show BA ×100).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import CellIndex, PatternSums, as_resamples, batched, ones_weights, safe_div
from debiaskit.metrics._validation import ArrayLike, as_numpy, check_binary, check_groups, check_lengths, warn

__all__ = ["bias_amplification_zhao", "bias_amplification_directional", "bias_amplification_cvpr21", "one_hot"]


def one_hot(x: ArrayLike, *, name: str = "labels", n_classes: int | None = None) -> np.ndarray:
    """(n,) class ids -> (n, K) int8 indicator; (n, K) binary input is validated and returned."""
    arr = as_numpy(x, name=name)
    if arr.ndim == 2:
        return check_binary(arr, name=name, allow_2d=True)
    if arr.ndim != 1:
        raise DebiaskitError(f"{name} must be 1-D class ids or a 2-D indicator matrix, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DebiaskitError(f"{name} contains NaN or inf")
    if n_classes is not None and arr.dtype.kind in "iu" and arr.size and (arr.min() >= 0) and arr.max() < n_classes:
        codes, K = arr.astype(np.int64), n_classes
    else:
        labels, codes = np.unique(arr, return_inverse=True)
        K = len(labels)
    out = np.zeros((len(arr), K), dtype=np.int8)
    out[np.arange(len(arr)), codes.reshape(-1)] = 1
    return out


def _onehot_int_or_labels(x: Any, name: str, *also: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """One-hot encode; for 1-D input also return the sorted class labels used as columns.

    The columns are the classes of ``x`` and of the 1-D arrays ``also`` (e.g. predictions: a predicted class
    that never occurs in the labels is still a class).
    """
    arr = as_numpy(x, name=name)
    if arr.ndim == 2:
        return check_binary(arr, name=name, allow_2d=True), None
    if arr.ndim != 1:
        raise DebiaskitError(f"{name} must be 1-D class ids or a 2-D indicator matrix, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DebiaskitError(f"{name} contains NaN or inf")
    parts = [arr] + [np.asarray(as_numpy(a, name=name)) for a in also if a is not None and np.ndim(as_numpy(a)) == 1]
    try:
        labels = np.unique(np.concatenate(parts))
    except (TypeError, ValueError):
        labels = np.unique(arr)
    return _encode_pred_like(arr, None, labels, name), labels


def _encode_pred_like(pred: Any, truth: Any, truth_labels: np.ndarray | None, name: str) -> np.ndarray:
    arr = as_numpy(pred, name=name)
    if arr.ndim == 2:
        return check_binary(arr, name=name, allow_2d=True)
    if truth_labels is None:
        raise DebiaskitError(f"{name} is 1-D but the ground truth is a 2-D indicator matrix; pass the same shape")
    pos = np.searchsorted(truth_labels, arr)
    pos = np.clip(pos, 0, len(truth_labels) - 1)
    if not (truth_labels[pos] == arr).all():
        raise DebiaskitError(f"{name} contains class values that never occur in the ground truth")
    out = np.zeros((len(arr), len(truth_labels)), dtype=np.int8)
    out[np.arange(len(arr)), pos] = 1
    return out


def _pair_products(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """(n, |X|*|Y|) column products X_a * Y_t (a major)."""
    return (X[:, :, None] * Y[:, None, :]).reshape(len(X), -1)


# ---- directional -------------------------------------------------------------------------------------


def _exact_sign(c_at: np.ndarray, c_a: np.ndarray, c_t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """sign(P(a,t) − P(a)P(t)) from integer counts: sign(c_at·n − c_a·c_t) (exact below 2**53)."""
    return np.sign(c_at * n - c_a * c_t)


def _nanmean_last(v: np.ndarray) -> np.ndarray:
    ok = np.isfinite(v)
    return safe_div(np.where(ok, v, 0.0).sum(-1), ok.sum(-1))


@dataclass
class _DirState:
    F: PatternSums  # features [1, A, T, A⊗T, pred⊗other]
    n: int
    nA: int
    nT: int
    direction: str
    sign_ref: np.ndarray | None  # (|A|, |T|) fixed indicator from reference labels


def _sign_from(A: np.ndarray, T: np.ndarray) -> np.ndarray:
    A64, T64 = A.astype(np.int64), T.astype(np.int64)
    return _exact_sign(A64.T @ T64, A64.sum(0)[:, None], T64.sum(0)[None, :], np.int64(len(A)))


def _prep_dir(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    direction: str = "a->t",
    y_true_ref: ArrayLike | None = None,
    sensitive_features_ref: ArrayLike | None = None,
) -> _DirState:
    if direction not in ("a->t", "t->a"):
        raise DebiaskitError(f"direction must be 'a->t' or 't->a', got {direction!r}")
    A, a_labels = _onehot_int_or_labels(sensitive_features, "sensitive_features",
                                        *((y_pred, sensitive_features_ref) if direction == "t->a" else (sensitive_features_ref,)))
    T, t_labels = _onehot_int_or_labels(y_true, "y_true", *((y_pred, y_true_ref) if direction == "a->t" else (y_true_ref,)))
    check_lengths(sensitive_features=A, y_true=T, y_pred=as_numpy(y_pred, name="y_pred"))
    if direction == "a->t":
        P = _encode_pred_like(y_pred, T, t_labels, "y_pred")
        if P.shape[1] != T.shape[1]:
            raise DebiaskitError(f"y_pred has {P.shape[1]} task columns, y_true has {T.shape[1]}")
        pred_feat = _pair_products(A, P)
    else:
        P = _encode_pred_like(y_pred, A, a_labels, "y_pred")
        if P.shape[1] != A.shape[1]:
            raise DebiaskitError(f"y_pred has {P.shape[1]} attribute columns, sensitive_features has {A.shape[1]}")
        pred_feat = _pair_products(P, T)
    sign_ref = None
    if (sensitive_features_ref is None) != (y_true_ref is None):
        raise DebiaskitError("pass both y_true_ref and sensitive_features_ref (reference labels for the indicator) or neither")
    if sensitive_features_ref is not None:
        Ar = _encode_pred_like(sensitive_features_ref, A, a_labels, "sensitive_features_ref")
        Tr = _encode_pred_like(y_true_ref, T, t_labels, "y_true_ref")
        check_lengths(sensitive_features_ref=Ar, y_true_ref=Tr)
        if Ar.shape[1] != A.shape[1] or Tr.shape[1] != T.shape[1]:
            raise DebiaskitError("reference labels must have the same attribute/task columns as the evaluation labels")
        sign_ref = _sign_from(Ar, Tr).astype(np.float64)
    one = np.ones((len(A), 1), dtype=np.int8)
    F = np.concatenate([one, A, T, _pair_products(A, T), pred_feat], axis=1)
    return _DirState(PatternSums(F), len(F), A.shape[1], T.shape[1], direction, sign_ref)


def _ev_dir(s: _DirState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    S = s.F(R)
    nA, nT = s.nA, s.nT
    B = R.b
    n = S[:, 0][:, None, None]
    cA = S[:, 1 : 1 + nA]
    cT = S[:, 1 + nA : 1 + nA + nT]
    o = 1 + nA + nT
    cAT = S[:, o : o + nA * nT].reshape(B, nA, nT)
    cPred = S[:, o + nA * nT :].reshape(B, nA, nT)
    if s.sign_ref is not None:
        sign = np.broadcast_to(s.sign_ref, (B, nA, nT))
    else:
        sign = _exact_sign(cAT, cA[:, :, None], cT[:, None, :], n)
    den = cA[:, :, None] if s.direction == "a->t" else cT[:, None, :]
    delta = safe_div(cPred - cAT, np.broadcast_to(den, cAT.shape))
    return _nanmean_last((sign * delta).reshape(B, -1))


@batched(_prep_dir, _ev_dir, n_arrays=2)
def bias_amplification_directional(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    direction: Literal["a->t", "t->a"] = "a->t",
    y_true_ref: ArrayLike | None = None,
    sensitive_features_ref: ArrayLike | None = None,
) -> float:
    """Directional bias amplification BiasAmp_{A→T} or BiasAmp_{T→A} (Wang & Russakovsky 2021, eq. 2).

    Args:
        y_true: ``(n,)`` task classes or ``(n, |T|)`` multi-label task matrix (T).
        y_pred: task predictions (shape of ``y_true``) for ``"a->t"``; attribute predictions (shape of
            ``sensitive_features``) for ``"t->a"``.
        sensitive_features: ``(n,)`` protected-attribute values or ``(n, |A|)`` binary matrix (A).
        direction: ``"a->t"`` (does the model amplify the attribute's influence on task predictions) or
            ``"t->a"``.
        y_true_ref, sensitive_features_ref: labels of a reference (training) set for the indicator y_at.

    Returns:
        BA as a fraction (positive = amplification); NaN if no (a, t) pair is defined.
    """
    s = _prep_dir(y_true, y_pred, sensitive_features=sensitive_features, direction=direction,
                  y_true_ref=y_true_ref, sensitive_features_ref=sensitive_features_ref)
    return float(_ev_dir(s, ones_weights(s.n))[0])


# ---- CVPR 2021 binary form ---------------------------------------------------------------------------


@dataclass
class _CvprState:
    cells: CellIndex


def _prep_cvpr(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> _CvprState:
    y = check_binary(y_true, name="y_true")
    p = check_binary(y_pred, name="y_pred")
    g, labels = check_groups(sensitive_features, name="sensitive_features")
    if len(labels) != 2:
        raise DebiaskitError(f"the CVPR 2021 BA needs exactly 2 protected groups, got {len(labels)}; "
                             "use bias_amplification_directional for multi-valued attributes")
    check_lengths(y_true=y, y_pred=p, sensitive_features=g)
    return _CvprState(CellIndex((g * 2 + y) * 2 + p, 8))


def _ev_cvpr(s: _CvprState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    c = s.cells(R).reshape(R.b, 2, 2, 2)  # g, y, yhat
    n = c.sum((1, 2, 3))[:, None, None]
    c_gt = c.sum(3)  # (B, g, t) joint counts of (g, y = t)
    c_g = c_gt.sum(2, keepdims=True)
    c_t = c_gt.sum(1, keepdims=True)
    ind = _exact_sign(c_gt, c_g, c_t, n)
    p_y_given_g = safe_div(c_gt, np.broadcast_to(c_g, c_gt.shape))  # P(y = t | g), NaN for an absent group
    p_hat_given_g = safe_div(c.sum(2), np.broadcast_to(c_g, c_gt.shape))  # P(ŷ = t | g)
    return _nanmean_last((ind * (p_hat_given_g - p_y_given_g)).reshape(R.b, 4))


@batched(_prep_cvpr, _ev_cvpr, n_arrays=2)
def bias_amplification_cvpr21(y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike) -> float:
    """BA of Ramaswamy et al. (CVPR 2021): mean over the 4 (t, g) cells of y_tg·(P(ŷ=t|g) − P(y=t|g)).

    Equals ``bias_amplification_directional(y_true, y_pred, sensitive_features=g, direction="a->t")``
    (cells of a group that is absent are skipped, as in the official ``nanmean``).
    """
    s = _prep_cvpr(y_true, y_pred, sensitive_features=sensitive_features)
    return float(_ev_cvpr(s, ones_weights(s.cells.n))[0])


# ---- Zhao et al. 2017 --------------------------------------------------------------------------------


@dataclass
class _ZhaoState:
    F: PatternSums  # [A⊗T, A⊗T̂]
    n: int
    nG: int
    nO: int
    ref_counts: np.ndarray | None  # (G, O) reference counts c*(o, g)


def _bias_scores(c: np.ndarray) -> np.ndarray:
    """b(o, g) = c(o, g) / Σ_g' c(o, g'); c has shape (..., G, O)."""
    return safe_div(c, np.broadcast_to(c.sum(-2, keepdims=True), c.shape))


def _prep_zhao(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    y_true_ref: ArrayLike | None = None,
    sensitive_features_ref: ArrayLike | None = None,
    _warn: bool = False,
) -> _ZhaoState:
    A, a_labels = _onehot_int_or_labels(sensitive_features, "sensitive_features", sensitive_features_ref)
    T, t_labels = _onehot_int_or_labels(y_true, "y_true", y_pred, y_true_ref)
    check_lengths(sensitive_features=A, y_true=T, y_pred=as_numpy(y_pred, name="y_pred"))
    P = _encode_pred_like(y_pred, T, t_labels, "y_pred")
    if P.shape[1] != T.shape[1]:
        raise DebiaskitError(f"y_pred has {P.shape[1]} task columns, y_true has {T.shape[1]}")
    if A.shape[1] < 2:
        raise DebiaskitError("sensitive_features must take at least 2 values")
    ref = None
    if (sensitive_features_ref is None) != (y_true_ref is None):
        raise DebiaskitError("pass both y_true_ref and sensitive_features_ref or neither")
    if sensitive_features_ref is not None:
        Ar = _encode_pred_like(sensitive_features_ref, A, a_labels, "sensitive_features_ref")
        Tr = _encode_pred_like(y_true_ref, T, t_labels, "y_true_ref")
        check_lengths(sensitive_features_ref=Ar, y_true_ref=Tr)
        ref = (Ar.astype(np.int64).T @ Tr.astype(np.int64)).astype(np.float64)
    if _warn:
        missing = np.flatnonzero(P.sum(0) == 0)
        if missing.size:
            warn(f"task column(s) {missing.tolist()} are never predicted: b̃ is undefined, Zhao BA reported as NaN")
    F = np.concatenate([_pair_products(A, T), _pair_products(A, P)], axis=1)
    return _ZhaoState(PatternSums(F), len(F), A.shape[1], T.shape[1], ref)


def _ev_zhao(s: _ZhaoState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    S = s.F(R)
    B, G, O = R.b, s.nG, s.nO
    c_true = S[:, : G * O].reshape(B, G, O)
    c_pred = S[:, G * O :].reshape(B, G, O)
    c_star = c_true if s.ref_counts is None else np.broadcast_to(s.ref_counts, (B, G, O))
    b_star = _bias_scores(c_star)
    b_tilde = _bias_scores(c_pred)
    mask = c_star * G > c_star.sum(-2, keepdims=True)  # b*(o, g) > 1/|G| on integer counts
    terms = np.where(mask, b_tilde - b_star, 0.0)
    return terms.sum((1, 2)) / O


@batched(_prep_zhao, _ev_zhao, n_arrays=2)
def bias_amplification_zhao(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    y_true_ref: ArrayLike | None = None,
    sensitive_features_ref: ArrayLike | None = None,
) -> float:
    """Bias amplification of Zhao et al. 2017 ("Men also like shopping", EMNLP).

    Args:
        y_true: ``(n,)`` task classes or ``(n, |O|)`` multi-label ground truth.
        y_pred: task predictions, same encoding as ``y_true``.
        sensitive_features: ``(n,)`` protected values (e.g. gender) or one-hot ``(n, G)``; ground truth.
        y_true_ref, sensitive_features_ref: ground truth of the training set for b* (Zhao's protocol);
            default: the evaluation labels.

    Returns:
        BA as a fraction; NaN (with a warning) when a selected task is never predicted (b̃ undefined).
    """
    s = _prep_zhao(y_true, y_pred, sensitive_features=sensitive_features, y_true_ref=y_true_ref,
                   sensitive_features_ref=sensitive_features_ref, _warn=True)
    return float(_ev_zhao(s, ones_weights(s.n))[0])
