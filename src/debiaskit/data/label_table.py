"""A typed label-only table: label vectors plus a protected attribute for one split, no images.

The leakage tools (Wang et al., ICCV 2019; ``docs/leakage.md``) need label vectors and a protected attribute only.
Such label sets do not fit the :class:`~debiaskit.data.base.BiasedDataset` contract (which requires uint8
images), so they live in this object. Loaders: :mod:`debiaskit.data.attribute_labels` (CelebA attributes, a
generic CSV, the registry of label-only datasets) and :mod:`debiaskit.data.wang2019` (COCO / imSitu gender).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.fingerprint import fingerprint_arrays

__all__ = ["LabelTable"]


@dataclass(eq=False)
class LabelTable:
    """Label vectors plus a protected attribute for one split (no images).

    Attributes:
        labels: ``(N,)`` int64 class ids (``multilabel=False``) or ``(N, K)`` uint8 multi-hot matrix.
        protected: ``(N,)`` int64 protected attribute in ``[0, num_protected)``.
        label_names: one name per class / label column (length ``K``).
        protected_names: one name per protected value.
        multilabel: whether ``labels`` is a multi-hot matrix.
        ids: optional per-row identifiers (image names).
        name, split: where the table came from.
        info: free-form provenance recorded in reports.
    """

    labels: np.ndarray
    protected: np.ndarray
    label_names: list[str]
    protected_names: list[str]
    multilabel: bool
    name: str = "labels"
    split: str = "all"
    ids: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels)
        self.protected = np.asarray(self.protected).astype(np.int64).reshape(-1)
        n = len(self.protected)
        if self.multilabel:
            if self.labels.ndim != 2:
                raise DebiaskitError(
                    f"{self.name}: multi-label labels must be 2-D (N, K), got shape {self.labels.shape}"
                )
            self.labels = self.labels.astype(np.uint8)
        else:
            self.labels = self.labels.astype(np.int64).reshape(-1)
        if len(self.labels) != n:
            raise DebiaskitError(f"{self.name}: {len(self.labels)} label rows but {n} protected values")
        k = self.labels.shape[1] if self.multilabel else (int(self.labels.max()) + 1 if n else 0)
        if len(self.label_names) < k or (self.multilabel and len(self.label_names) != k):
            raise DebiaskitError(f"{self.name}: {len(self.label_names)} label names for {k} labels")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def num_protected(self) -> int:
        return len(self.protected_names)

    def __len__(self) -> int:
        return int(len(self.protected))

    def subset(self, indices: Any, *, split: str | None = None) -> "LabelTable":
        idx = np.asarray(indices, dtype=np.int64)
        return LabelTable(
            labels=self.labels[idx], protected=self.protected[idx], label_names=list(self.label_names),
            protected_names=list(self.protected_names), multilabel=self.multilabel, name=self.name,
            split=split or self.split, ids=None if self.ids is None else [self.ids[i] for i in idx],
            info=dict(self.info),
        )

    def label_matrix(self) -> np.ndarray:
        """``(N, K)`` float32 label vectors (one-hot for single-label tables)."""
        if self.multilabel:
            return self.labels.astype(np.float32)
        out = np.zeros((len(self), self.num_labels), np.float32)
        out[np.arange(len(self)), self.labels] = 1.0
        return out

    @property
    def fingerprint(self) -> str:
        return fingerprint_arrays(self.labels, self.protected)
