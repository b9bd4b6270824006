"""The biased-dataset contract shared by every dataset, method and metric in debiaskit.

A :class:`BiasedDataset` is one split of a dataset whose samples carry a *target* label (what the model
must predict) and a *bias* label (the spurious / protected attribute: colour in Colored MNIST, corruption
in Corrupted CIFAR-10, gender in CelebA/BFFHQ/COCO/imSitu). Images live in memory as a uint8 tensor
``(N, C, H, W)`` (or a memory-mapped uint8 array for large file-backed sets), so batches are assembled
by tensor indexing with no per-image decoding.

Groups follow the SubpopBench / LfF convention: ``group = target * num_bias + bias``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.fingerprint import fingerprint_arrays

__all__ = ["BiasedDataset", "DatasetSplits", "fingerprint_arrays"]


@dataclass(eq=False)
class BiasedDataset(torch.utils.data.Dataset):
    """One split of a biased dataset.

    Attributes:
        images: uint8 tensor ``(N, C, H, W)``.
        targets: long tensor ``(N,)`` in ``[0, num_classes)``.
        bias: long tensor ``(N,)`` in ``[0, num_bias)``; the bias / protected attribute.
        num_classes, num_bias: label cardinalities (fixed by the dataset, not by this split's content).
        split: ``"train"``, ``"val"``, ``"test"``, ``"val_unbiased"``, ...
        name: registry name of the dataset.
        aligned_cells: bool ``(num_classes, num_bias)``; cell (y, b) is *bias-aligned*. Defaults to the
            diagonal ``y == b`` when ``num_classes == num_bias`` (Colored MNIST, Corrupted CIFAR-10, BFFHQ).
        class_names, bias_names: optional human-readable names.
        meta: optional per-sample extra tensors (e.g. all 40 CelebA attributes, a ``source`` column).
        info: free-form description (source of the data, protocol parameters) recorded in run files.
    """

    images: torch.Tensor
    targets: torch.Tensor
    bias: torch.Tensor
    num_classes: int
    num_bias: int
    split: str
    name: str = "dataset"
    aligned_cells: torch.Tensor | None = None
    class_names: list[str] | None = None
    bias_names: list[str] | None = None
    meta: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor):
            self.images = torch.as_tensor(np.asarray(self.images))
        self.targets = torch.as_tensor(self.targets).long()
        if self.targets.dim() != 2:  # (N,) single-label; (N, K) multi-hot for multi-label tasks
            self.targets = self.targets.reshape(-1)
        self.bias = torch.as_tensor(self.bias).long().reshape(-1)
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DebiaskitError(
                f"{self.name}/{self.split}: images must be a uint8 (N, C, H, W) tensor, "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if len(self.targets) != n or self.bias.numel() != n:
            raise DebiaskitError(
                f"{self.name}/{self.split}: {n} images but {len(self.targets)} targets "
                f"and {self.bias.numel()} bias labels"
            )
        if self.multilabel:
            if self.targets.shape[1] != self.num_classes or (n and not bool(((self.targets == 0) | (self.targets == 1)).all())):
                raise DebiaskitError(
                    f"{self.name}/{self.split}: multi-label targets must be 0/1 of width num_classes={self.num_classes}"
                )
        elif n and (int(self.targets.min()) < 0 or int(self.targets.max()) >= self.num_classes):
            raise DebiaskitError(f"{self.name}/{self.split}: targets outside [0, {self.num_classes})")
        if n and (int(self.bias.min()) < 0 or int(self.bias.max()) >= self.num_bias):
            raise DebiaskitError(f"{self.name}/{self.split}: bias labels outside [0, {self.num_bias})")
        for k, v in self.meta.items():
            if len(v) != n:
                raise DebiaskitError(f"{self.name}/{self.split}: meta column {k!r} has {len(v)} rows, expected {n}")
        if self.aligned_cells is None:
            if self.multilabel:
                # per-label majority protected value is a property of the data, not of the task
                self.aligned_cells = torch.zeros(self.num_classes, self.num_bias, dtype=torch.bool)
            elif self.num_classes == self.num_bias:
                self.aligned_cells = torch.eye(self.num_classes, dtype=torch.bool)
            else:
                raise DebiaskitError(
                    f"{self.name}: aligned_cells must be given when num_classes != num_bias"
                )
        self.aligned_cells = torch.as_tensor(self.aligned_cells, dtype=torch.bool)
        if tuple(self.aligned_cells.shape) != (self.num_classes, self.num_bias):
            raise DebiaskitError(f"{self.name}: aligned_cells must have shape (num_classes, num_bias)")

    # -- torch Dataset protocol ---------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, int, int]:
        """Return ``(index, image_uint8, target, bias)``."""
        return index, self.images[index], int(self.targets[index]), int(self.bias[index])

    # -- derived views -------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def multilabel(self) -> bool:
        """True for multi-label tasks: ``targets`` is a ``(N, num_classes)`` multi-hot matrix."""
        return self.targets.dim() == 2

    def _single_label(self, what: str) -> None:
        if self.multilabel:
            raise DebiaskitError(f"{what} is defined for single-label datasets only ({self.name} is multi-label)")

    @property
    def num_groups(self) -> int:
        return self.num_classes * self.num_bias

    @property
    def groups(self) -> torch.Tensor:
        """Group id per sample: ``target * num_bias + bias``."""
        self._single_label("group id")
        return self.targets * self.num_bias + self.bias

    @property
    def aligned(self) -> torch.Tensor:
        """Bool mask of bias-aligned samples."""
        self._single_label("the aligned mask")
        return self.aligned_cells[self.targets, self.bias]

    @property
    def conflicting(self) -> torch.Tensor:
        return ~self.aligned

    @property
    def conflict_ratio(self) -> float:
        """Share of bias-conflicting samples (NaN for multi-label tasks, where it is not defined)."""
        if self.multilabel or not len(self):
            return float("nan")
        return float(self.conflicting.float().mean())

    def group_counts(self) -> torch.Tensor:
        """Counts per (target, bias) cell, shape ``(num_classes, num_bias)``."""
        return torch.bincount(self.groups, minlength=self.num_groups).reshape(self.num_classes, self.num_bias)

    @property
    def fingerprint(self) -> str:
        """Stable checksum of images, targets and bias (cached)."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint_arrays(self.images, self.targets, self.bias)
        return self._fingerprint

    def subset(self, indices: Any, split: str | None = None) -> "BiasedDataset":
        """A new dataset holding the given rows (copied)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return BiasedDataset(
            images=self.images[idx],
            targets=self.targets[idx],
            bias=self.bias[idx],
            num_classes=self.num_classes,
            num_bias=self.num_bias,
            split=split or self.split,
            name=self.name,
            aligned_cells=self.aligned_cells,
            class_names=self.class_names,
            bias_names=self.bias_names,
            meta={k: v[idx] for k, v in self.meta.items()},
            info=dict(self.info),
        )

    def summary(self) -> dict[str, Any]:
        """A small JSON-able description (sizes, fingerprint, conflict ratio)."""
        return {
            "name": self.name,
            "split": self.split,
            "size": len(self),
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "num_bias": self.num_bias,
            "conflict_ratio": self.conflict_ratio,
            "fingerprint": self.fingerprint,
        }


class DatasetSplits(Mapping[str, BiasedDataset]):
    """The splits of one dataset build, keyed by split name (``train``, ``val``, ``test``, ...)."""

    def __init__(self, splits: dict[str, BiasedDataset], info: dict[str, Any] | None = None) -> None:
        self._splits = dict(splits)
        self.info = dict(info or {})

    def __getitem__(self, key: str) -> BiasedDataset:
        try:
            return self._splits[key]
        except KeyError:
            raise DebiaskitError(
                f"split {key!r} does not exist; available: {', '.join(self._splits)}"
            ) from None

    def __iter__(self):
        return iter(self._splits)

    def __len__(self) -> int:
        return len(self._splits)

    @property
    def fingerprint(self) -> str:
        """Checksum over every split's fingerprint, in split-name order."""
        h = hashlib.sha256()
        for k in sorted(self._splits):
            h.update(f"{k}:{self._splits[k].fingerprint};".encode())
        return h.hexdigest()[:16]
