"""Hallucinated labels for generated images (Ramaswamy et al. 2021; ``docs/latent_aug.md`` detail 3).

A baseline attribute classifier f_a scores G(z); the hallucinated label is 1[f_a(G(z)) > τ_F1] with τ_F1
the threshold maximising F1 on the **real validation set** (strict ``>``). The threshold search is
:func:`debiaskit.metrics.f1_optimal_threshold` (``method="official"`` = the authors' two-stage grid,
reproduced exactly, the default here; ``"exact"`` checks every distinct score).

Images are labelled as uint8 (N, C, H, W) arrays, passed through the dataset's evaluation transform —
exactly the form in which they are cached and later used for training. A classifier trained by
``debiaskit train`` is rebuilt from its run directory by :func:`debiaskit.experiments.rundir.classifier_from_run`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.metrics import f1_optimal_threshold

__all__ = ["AttributeClassifier", "logits_to_scores", "hallucinate_labels"]


def logits_to_scores(logits: torch.Tensor) -> torch.Tensor:
    """Positive-class probability: softmax[:, 1] for (n, 2) logits, sigmoid for (n,) or (n, 1)."""
    logits = logits.float()
    if logits.dim() == 2 and logits.shape[1] == 2:
        return torch.softmax(logits, 1)[:, 1]
    if logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
        return torch.sigmoid(logits.reshape(-1))
    raise DebiaskitError(f"attribute classifier must return (n,), (n, 1) or (n, 2) logits, got {tuple(logits.shape)}")


@dataclass
class AttributeClassifier:
    """A binary attribute classifier on uint8 images with its validation-F1-optimal threshold."""

    attribute: str
    predict: Callable[[torch.Tensor], torch.Tensor]  # float batch → logits
    transform: Callable[..., torch.Tensor]  # uint8 batch → float batch
    input_shape: tuple[int, int, int]
    threshold: float = 0.5
    batch_size: int = 512

    @torch.no_grad()
    def scores(self, images: torch.Tensor) -> np.ndarray:
        """Positive-class probabilities for uint8 images (n, C, H, W)."""
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DebiaskitError(f"{self.attribute} classifier expects uint8 (n, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
        if tuple(images.shape[1:]) != tuple(self.input_shape):
            raise DebiaskitError(
                f"image shape {tuple(images.shape[1:])} (C, H, W) does not match the {self.attribute} classifier's "
                f"input shape {tuple(self.input_shape)}"
            )
        out = [logits_to_scores(self.predict(self.transform(images[s : s + self.batch_size])))
               for s in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    def fit_threshold(self, images: torch.Tensor, labels: Any, *, method: Literal["official", "exact"] = "official") -> float:
        """Set (and return) τ_F1 on real validation images and their true 0/1 labels."""
        y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64).reshape(-1)
        if y.min() == y.max():
            raise DebiaskitError(f"validation labels of {self.attribute!r} are constant; cannot choose an F1 threshold")
        self.threshold = float(f1_optimal_threshold(y, self.scores(images), method=method))
        return self.threshold

    def labels(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(hallucinated 0/1 labels = scores > τ_F1, scores)."""
        s = self.scores(images)
        return (s > self.threshold).astype(np.int8), s


def hallucinate_labels(images: torch.Tensor, classifiers: dict[str, AttributeClassifier]) -> dict[str, np.ndarray]:
    """Hallucinated labels of ``images`` for each classifier (thresholded at τ_F1); keys = attribute names."""
    return {name: clf.labels(images)[0] for name, clf in classifiers.items()}
