"""Bias amplification: Zhao et al. 2017, directional (Wang & Russakovsky 2021), and the CVPR 2021 binary form.

Notation (spec §C): A = protected attributes (columns a), T = tasks (columns t), binary indicator matrices
(a 1-D vector of class ids is one-hot encoded, so multi-valued attributes and multi-class tasks work).

* **Zhao et al. 2017** ("Men also like shopping", EMNLP; spec §C1): c(o,g) = #samples with task o and
  attribute g; b(o,g) = c(o,g) / Σ_g' c(o,g'). With b* from ground truth (the reference set if given,
  else the evaluation set) and b̃ from task *predictions* with ground-truth attributes:
  BiasAmp_MALS = (1/|O|) Σ_g Σ_{o : b*(o,g) > 1/|G|} (b̃(o,g) − b*(o,g)).
* **Directional BA** (Wang & Russakovsky, ICML 2021, "Directional Bias Amplification", spec §C2):
  y_at = 1[P(A_a=1, T_t=1) > P(A_a=1) P(T_t=1)];
  A→T: Δ_at = P(T̂_t=1 | A_a=1) − P(T_t=1 | A_a=1); T→A: Δ_at = P(Â_a=1 | T_t=1) − P(A_a=1 | T_t=1);
  BA = 1/(|A||T|) Σ_{a,t} y_at Δ_at + (1 − y_at)(−Δ_at).
  Like the authors' code we use s_at = sign(P(a,t) − P(a)P(t)) ∈ {−1, 0, +1} and BA = mean of s_at·Δ_at,
  so independent (a, t) pairs contribute 0 (the paper's formula would count them as −Δ); pairs with an
  undefined conditional are skipped (nanmean). Unlike the code we do not drop samples with no a and no t
  label (irrelevant for one-hot inputs). y_at comes from ``attributes_ref``/``tasks_ref`` (e.g. training
  labels) when given, else from the evaluation labels.
* **CVPR 2021 binary form** (Ramaswamy et al., gan-debiasing, spec §A9): the A→T form with
  T = {y=0, y=1}, A = {g=0, g=1}, indicator from the evaluation set:
  BA = ¼ Σ_{t,g} sign(P(t,g) − P(t)P(g)) · (P(ŷ=t | g) − P(y=t | g)) = ½ Σ_g s_1g (P(ŷ=1|g) − P(y=1|g)).
  We use the code's sign (P_t̂|g − P_t|g), not the paper text's reversed one (issue GD#5).

All values are fractions (the CVPR 2021 tables show BA ×100).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import CellIndex, PatternSums, batched, ones_weights, safe_div
from debiaskit.metrics._validation import as_numpy, check_binary, check_groups, check_lengths, warn

__all__ = ["bias_amplification_zhao", "bias_amplification_directional", "bias_amplification_cvpr21", "one_hot"]


def one_hot(x: Any, *, name: str = "labels", n_classes: int | None = None) -> np.ndarray:
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


def _onehot_int_or_labels(x: Any, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """One-hot encode; for 1-D input also return the sorted class labels used as columns."""
    arr = as_numpy(x, name=name)
    if arr.ndim == 2:
        return check_binary(arr, name=name, allow_2d=True), None
    labels = np.unique(arr)
    return one_hot(arr, name=name), labels


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


@dataclass
class _DirState:
    F: PatternSums  # features [A, T, A⊗T, pred⊗other]
    n: int
    nA: int
    nT: int
    direction: str
    sign_ref: np.ndarray | None  # (|A|, |T|) fixed indicator from reference labels


def _sign_from(A: np.ndarray, T: np.ndarray) -> np.ndarray:
    n = len(A)
    pa, pt = A.mean(0), T.mean(0)
    pat = (A.astype(np.float64).T @ T.astype(np.float64)) / n
    return np.sign(pat - pa[:, None] * pt[None, :])


def _prep_dir(
    attributes: Any,
    tasks: Any,
    predictions: Any,
    *,
    direction: str = "a->t",
    attributes_ref: Any = None,
    tasks_ref: Any = None,
) -> _DirState:
    if direction not in ("a->t", "t->a"):
        raise DebiaskitError(f"direction must be 'a->t' or 't->a', got {direction!r}")
    A, a_labels = _onehot_int_or_labels(attributes, "attributes")
    T, t_labels = _onehot_int_or_labels(tasks, "tasks")
    check_lengths(attributes=A, tasks=T, predictions=as_numpy(predictions, name="predictions"))
    if direction == "a->t":
        P = _encode_pred_like(predictions, T, t_labels, "predictions")
        if P.shape[1] != T.shape[1]:
            raise DebiaskitError(f"predictions have {P.shape[1]} task columns, tasks have {T.shape[1]}")
        pred_feat = _pair_products(A, P)
    else:
        P = _encode_pred_like(predictions, A, a_labels, "predictions")
        if P.shape[1] != A.shape[1]:
            raise DebiaskitError(f"predictions have {P.shape[1]} attribute columns, attributes have {A.shape[1]}")
        pred_feat = _pair_products(P, T)
    check_lengths(attributes=A, tasks=T, predictions=P)
    sign_ref = None
    if (attributes_ref is None) != (tasks_ref is None):
        raise DebiaskitError("pass both attributes_ref and tasks_ref (reference labels for the indicator) or neither")
    if attributes_ref is not None:
        Ar = _encode_pred_like(attributes_ref, A, a_labels, "attributes_ref")
        Tr = _encode_pred_like(tasks_ref, T, t_labels, "tasks_ref")
        check_lengths(attributes_ref=Ar, tasks_ref=Tr)
        if Ar.shape[1] != A.shape[1] or Tr.shape[1] != T.shape[1]:
            raise DebiaskitError("reference labels must have the same attribute/task columns as the evaluation labels")
        sign_ref = _sign_from(Ar, Tr)
    F = np.concatenate([A, T, _pair_products(A, T), pred_feat], axis=1)
    return _DirState(PatternSums(F), len(F), A.shape[1], T.shape[1], direction, sign_ref)


def _ev_dir(s: _DirState, R: Any) -> np.ndarray:
    S = s.F(R)
    nA, nT = s.nA, s.nT
    B = R.shape[0]
    n = float(s.n)
    cA = S[:, :nA]
    cT = S[:, nA : nA + nT]
    cAT = S[:, nA + nT : nA + nT + nA * nT].reshape(B, nA, nT)
    cPred = S[:, nA + nT + nA * nT :].reshape(B, nA, nT)
    if s.sign_ref is not None:
        sign = np.broadcast_to(s.sign_ref, (B, nA, nT))
    else:
        sign = np.sign(cAT / n - (cA[:, :, None] / n) * (cT[:, None, :] / n))
    if s.direction == "a->t":
        delta = safe_div(cPred - cAT, np.broadcast_to(cA[:, :, None], cAT.shape))
    else:
        delta = safe_div(cPred - cAT, np.broadcast_to(cT[:, None, :], cAT.shape))
    v = (sign * delta).reshape(B, -1)
    ok = np.isfinite(v)
    cnt = ok.sum(1)
    return safe_div(np.where(ok, v, 0.0).sum(1), cnt)


@batched(_prep_dir, _ev_dir, n_arrays=3)
def bias_amplification_directional(
    attributes: Any,
    tasks: Any,
    predictions: Any,
    *,
    direction: Literal["a->t", "t->a"] = "a->t",
    attributes_ref: Any = None,
    tasks_ref: Any = None,
) -> float:
    """Directional bias amplification BiasAmp_{A→T} or BiasAmp_{T→A} (Wang & Russakovsky 2021, eq. 2).

    Args:
        attributes: ``(n,)`` protected-attribute values or ``(n, |A|)`` binary matrix.
        tasks: ``(n,)`` task classes or ``(n, |T|)`` multi-label task matrix.
        predictions: task predictions (shape of ``tasks``) for ``"a->t"``; attribute predictions (shape of
            ``attributes``) for ``"t->a"``.
        direction: ``"a->t"`` (does the model amplify the attribute's influence on task predictions) or
            ``"t->a"``.
        attributes_ref, tasks_ref: labels of a reference (training) set for the indicator y_at.

    Returns:
        BA as a fraction (positive = amplification).
    """
    s = _prep_dir(attributes, tasks, predictions, direction=direction, attributes_ref=attributes_ref, tasks_ref=tasks_ref)
    return float(_ev_dir(s, ones_weights(s.n))[0])


# ---- CVPR 2021 binary form ---------------------------------------------------------------------------


@dataclass
class _CvprState:
    cells: CellIndex


def _prep_cvpr(y_true: Any, y_pred: Any, groups: Any) -> _CvprState:
    y = check_binary(y_true, name="y_true")
    p = check_binary(y_pred, name="y_pred")
    g, labels = check_groups(groups, name="groups")
    if len(labels) != 2:
        raise DebiaskitError(f"the CVPR 2021 BA needs exactly 2 protected groups, got {len(labels)}; "
                             "use bias_amplification_directional for multi-valued attributes")
    check_lengths(y_true=y, y_pred=p, groups=g)
    return _CvprState(CellIndex((g * 2 + y) * 2 + p, 8))


def _ev_cvpr(s: _CvprState, R: Any) -> np.ndarray:
    c = s.cells(R).reshape(R.shape[0], 2, 2, 2)  # g, y, yhat
    n = c.sum((1, 2, 3))[:, None, None]
    p_tg = c.sum(3).transpose(0, 2, 1) / n  # (B, t, g) joint P(y=t, g)
    p_t = p_tg.sum(2, keepdims=True)
    p_g = p_tg.sum(1, keepdims=True)
    ind = np.sign(p_tg - p_t * p_g)
    ng = c.sum((2, 3))  # (B, g)
    p_y_given_g = safe_div(c.sum(3).transpose(0, 2, 1), ng[:, None, :])  # P(y=t | g)
    p_hat_given_g = safe_div(c.sum(2).transpose(0, 2, 1), ng[:, None, :])  # P(ŷ=t | g)
    return (ind * (p_hat_given_g - p_y_given_g)).mean((1, 2))


@batched(_prep_cvpr, _ev_cvpr, n_arrays=3)
def bias_amplification_cvpr21(y_true: Any, y_pred: Any, groups: Any) -> float:
    """BA of Ramaswamy et al. (CVPR 2021, §A9): mean over 4 (t, g) cells of y_tg·(P(ŷ=t|g) − P(y=t|g)).

    Equals ``bias_amplification_directional(groups, y_true, y_pred, direction="a->t")``.
    """
    s = _prep_cvpr(y_true, y_pred, groups)
    return float(_ev_cvpr(s, ones_weights(s.cells.n))[0])


# ---- Zhao et al. 2017 --------------------------------------------------------------------------------


@dataclass
class _ZhaoState:
    F: PatternSums  # [A⊗T, A⊗T̂]
    n: int
    nG: int
    nO: int
    b_ref: np.ndarray | None


def _bias_scores(c: np.ndarray) -> np.ndarray:
    """b(o, g) = c(o, g) / Σ_g' c(o, g'); c has shape (..., G, O)."""
    return safe_div(c, np.broadcast_to(c.sum(-2, keepdims=True), c.shape))


def _prep_zhao(
    attributes: Any, tasks: Any, predictions: Any, *, attributes_ref: Any = None, tasks_ref: Any = None, _warn: bool = False
) -> _ZhaoState:
    A, a_labels = _onehot_int_or_labels(attributes, "attributes")
    T, t_labels = _onehot_int_or_labels(tasks, "tasks")
    check_lengths(attributes=A, tasks=T, predictions=as_numpy(predictions, name="predictions"))
    P = _encode_pred_like(predictions, T, t_labels, "predictions")
    if P.shape[1] != T.shape[1]:
        raise DebiaskitError(f"predictions have {P.shape[1]} task columns, tasks have {T.shape[1]}")
    if A.shape[1] < 2:
        raise DebiaskitError("attributes must take at least 2 values")
    b_ref = None
    if (attributes_ref is None) != (tasks_ref is None):
        raise DebiaskitError("pass both attributes_ref and tasks_ref or neither")
    if attributes_ref is not None:
        Ar = _encode_pred_like(attributes_ref, A, a_labels, "attributes_ref")
        Tr = _encode_pred_like(tasks_ref, T, t_labels, "tasks_ref")
        check_lengths(attributes_ref=Ar, tasks_ref=Tr)
        b_ref = _bias_scores(Ar.astype(np.float64).T @ Tr.astype(np.float64))
    if _warn:
        missing = np.flatnonzero(P.sum(0) == 0)
        if missing.size:
            warn(f"task column(s) {missing.tolist()} are never predicted: b̃ is undefined, Zhao BA reported as NaN")
    F = np.concatenate([_pair_products(A, T), _pair_products(A, P)], axis=1)
    return _ZhaoState(PatternSums(F), len(F), A.shape[1], T.shape[1], b_ref)


def _ev_zhao(s: _ZhaoState, R: Any) -> np.ndarray:
    S = s.F(R)
    B, G, O = R.shape[0], s.nG, s.nO
    c_true = S[:, : G * O].reshape(B, G, O)
    c_pred = S[:, G * O :].reshape(B, G, O)
    b_star = _bias_scores(c_true) if s.b_ref is None else np.broadcast_to(s.b_ref, (B, G, O))
    b_tilde = _bias_scores(c_pred)
    mask = b_star > 1.0 / G
    terms = np.where(mask, b_tilde - b_star, 0.0)
    return terms.sum((1, 2)) / O


@batched(_prep_zhao, _ev_zhao, n_arrays=3)
def bias_amplification_zhao(
    attributes: Any, tasks: Any, predictions: Any, *, attributes_ref: Any = None, tasks_ref: Any = None
) -> float:
    """Bias amplification of Zhao et al. 2017 ("Men also like shopping", EMNLP, §C1).

    Args:
        attributes: ``(n,)`` protected values (e.g. gender) or one-hot ``(n, G)``; ground truth.
        tasks: ``(n,)`` task classes or ``(n, |O|)`` multi-label ground truth.
        predictions: task predictions, same encoding as ``tasks``.
        attributes_ref, tasks_ref: ground truth of the training set for b* (Zhao's protocol); default: the
            evaluation labels.
    """
    s = _prep_zhao(attributes, tasks, predictions, attributes_ref=attributes_ref, tasks_ref=tasks_ref, _warn=True)
    return float(_ev_zhao(s, ones_weights(s.n))[0])
