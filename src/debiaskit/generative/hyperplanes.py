"""Linear hyperplanes in latent space fitted on hallucinated labels (Ramaswamy et al. 2021; official ``linear.py``).

For an attribute a with hallucinated binary labels â(G(z)), a linear SVM on a *fitting block* of z gives
h_a(z) = wᵀz + b ≈ f_a(G(z)); (w, b) is then unit-normalised (w/‖w‖, b/‖w‖) so h_a is the signed
Euclidean distance to the hyperplane. The method assumes the attribute is (nearly) linearly separable in
z-space, so the accuracy on a disjoint *held-out block* is measured and reported.

Defaults follow the official code: ``sklearn.svm.LinearSVC`` with C = 1, squared hinge, L2 penalty,
regularised intercept, ``max_iter`` = 500,000 (``docs/latent_aug.md`` detail 2). One deviation:
``dual="auto"`` lets sklearn solve the primal when n > d (same optimum, faster); the official code used the
dual solver.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.generative.edits import normalize_hyperplane

__all__ = ["LatentHyperplane", "fit_hyperplane", "check_label_counts", "MIN_PER_CLASS"]

#: minimum number of z per class (in the fitting block) before an SVM is fitted
MIN_PER_CLASS = 10


@dataclass
class LatentHyperplane:
    """A unit-normalised hyperplane h(z) = wᵀz + b for one attribute, with its fit diagnostics."""

    attribute: str
    w: np.ndarray
    b: float
    fit_accuracy: float
    heldout_accuracy: float
    n_fit: int
    n_heldout: int
    positives_fit: int
    positive_rate_heldout: float
    heldout_balanced_accuracy: float = float("nan")

    def score(self, z: Any) -> np.ndarray:
        """Signed distance h(z) = wᵀz + b for each row of z."""
        zz = z.detach().cpu().double().numpy() if hasattr(z, "detach") else np.asarray(z, dtype=np.float64)
        return zz @ self.w + self.b

    def predict(self, z: Any) -> np.ndarray:
        return (self.score(z) > 0).astype(np.int8)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["w"] = self.w.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LatentHyperplane":
        d = dict(d)
        d["w"] = np.asarray(d["w"], dtype=np.float64)
        return cls(**d)


def check_label_counts(labels: np.ndarray, attribute: str, *, min_per_class: int = MIN_PER_CLASS, where: str = "") -> None:
    """Refuse constant labels and classes with fewer than ``min_per_class`` z (one-line errors)."""
    lab = np.asarray(labels).astype(np.int64).reshape(-1)
    n = len(lab)
    pos = int(lab.sum())
    if pos == 0 or pos == n:
        raise DebiaskitError(
            f"attribute {attribute!r} is constant on the hallucinated labels{where} (all {n} are "
            f"{int(pos == n)}): the classifier never predicts the other value on generated images, so no "
            "hyperplane can be fitted; check the generator quality and the classifier's threshold"
        )
    few = min(pos, n - pos)
    if few < min_per_class:
        value = 1 if pos < n - pos else 0
        raise DebiaskitError(
            f"only {few} z have hallucinated {attribute}={value}{where} (need at least {min_per_class} per class "
            "for the SVM): sample more z (larger fitting block) or pick a less rare attribute"
        )


def fit_hyperplane(
    z_fit: Any,
    labels_fit: Any,
    z_heldout: Any,
    labels_heldout: Any,
    *,
    attribute: str = "attribute",
    C: float = 1.0,
    max_iter: int = 500_000,
    min_per_class: int = MIN_PER_CLASS,
) -> LatentHyperplane:
    """Fit ``LinearSVC`` on (z_fit, labels_fit), unit-normalise (w, b), measure held-out accuracy."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    Z = np.asarray(z_fit.detach().cpu().numpy() if hasattr(z_fit, "detach") else z_fit, dtype=np.float64)
    Zh = np.asarray(z_heldout.detach().cpu().numpy() if hasattr(z_heldout, "detach") else z_heldout, dtype=np.float64)
    y = np.asarray(labels_fit).astype(np.int64).reshape(-1)
    yh = np.asarray(labels_heldout).astype(np.int64).reshape(-1)
    if Z.ndim != 2 or len(Z) != len(y) or Zh.ndim != 2 or len(Zh) != len(yh) or Zh.shape[1] != Z.shape[1]:
        raise DebiaskitError(
            f"fit_hyperplane: z and labels do not match (fit {Z.shape} vs {y.shape}, held-out {Zh.shape} vs {yh.shape})"
        )
    if not (np.isin(y, (0, 1)).all() and np.isin(yh, (0, 1)).all()):
        raise DebiaskitError(f"fit_hyperplane: labels of {attribute!r} must be binary 0/1")
    check_label_counts(y, attribute, min_per_class=min_per_class, where=" of the fitting block")
    svm = LinearSVC(C=C, max_iter=max_iter, dual="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm.fit(Z, y)
    w, b = normalize_hyperplane(svm.coef_.reshape(-1), float(svm.intercept_[0]))
    fit_acc = float(((Z @ w + b > 0).astype(np.int64) == y).mean())
    pred_h = (Zh @ w + b > 0).astype(np.int64)
    held_acc = float((pred_h == yh).mean()) if len(yh) else float("nan")
    recalls = [float((pred_h[yh == c] == c).mean()) for c in (0, 1) if (yh == c).any()]
    held_bacc = float(np.mean(recalls)) if recalls else float("nan")
    return LatentHyperplane(
        attribute=attribute,
        w=w,
        b=b,
        fit_accuracy=fit_acc,
        heldout_accuracy=held_acc,
        n_fit=len(y),
        n_heldout=len(yh),
        positives_fit=int(y.sum()),
        positive_rate_heldout=float(yh.mean()) if len(yh) else float("nan"),
        heldout_balanced_accuracy=held_bacc,
    )
