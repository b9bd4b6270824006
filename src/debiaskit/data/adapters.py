"""Any map-style ``torch.utils.data.Dataset`` as debiaskit splits: in memory when it fits, else streamed.

:func:`as_splits` turns the ``train`` / ``val`` / ``test`` data handed to :func:`debiaskit.fit` into
:class:`~debiaskit.data.base.DatasetSplits`. Each split may be

* a :class:`~debiaskit.data.base.BiasedDataset` (used as it is), or
* any map-style dataset (``__len__`` + ``__getitem__``) — or a ``DataLoader`` over one, whose ``num_workers``
  and ``pin_memory`` are reused — returning ``(x, y)`` or ``(x, y, b)``: ``x`` an image (``(C, H, W)`` or
  ``(H, W)`` tensor, ``(H, W, C)`` numpy array, or PIL image), ``y`` the class id, ``b`` the bias / protected
  attribute id. ``uint8`` images are scaled to [0, 1] by the trainer as for the built-in datasets; float images
  are model inputs as they are (already normalised by your transforms).

Two data paths (``docs/api.md``, "Data paths"), recorded in the run as ``data.info.data_path``:

* ``in-memory`` (the fast path): every sample is read once (through a ``DataLoader``) into one tensor, and
  batches are assembled by tensor indexing, as for the built-in datasets. Chosen by ``data_path="auto"`` when
  the images fit ``memory_budget`` bytes and the dataset is deterministic (reading sample 0 twice gives the
  same tensor — random augmentation in ``__getitem__`` would otherwise be frozen);
* ``streaming``: the images stay in your dataset; every batch (training or evaluation) is read through a
  ``DataLoader`` with ``num_workers`` persistent worker processes and pinned memory on CUDA. Only the labels
  are held in memory: they come from ``targets`` / ``bias`` attributes of the dataset when it has them, else
  from one pass over it.

For the same data and seed both paths train the same network (the batches are the same tensors).

Labels: ``num_classes`` = the largest class id + 1 over all splits (or ``len(dataset.classes)``); without
``b`` a split gets a single bias value (every sample aligned) and records ``bias_labels: False`` — methods that
read bias labels refuse it. Bias-aligned cells are the most frequent bias value of each class in the first
split that has bias labels (train, else val, else test), as for ``image_folder``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from debiaskit.data.base import BiasedDataset, DatasetSplits, fingerprint_arrays
from debiaskit.data.filesplits import majority_aligned_cells
from debiaskit.data.registry import register_dataset
from debiaskit.errors import DebiaskitError

__all__ = [
    "DATA_PATHS",
    "DEFAULT_MEMORY_BUDGET",
    "StreamingBiasedDataset",
    "StreamingImages",
    "as_splits",
    "content_key",
    "to_image_tensor",
]

DATA_PATHS = ("auto", "in-memory", "streaming")
#: images up to this many bytes (all splits together) are moved into memory by ``data_path="auto"``
DEFAULT_MEMORY_BUDGET = 2 * 2**30
#: images hashed (evenly spaced) by :func:`content_key`
KEY_SAMPLES = 64


# -- samples ----------------------------------------------------------------------------------------------
def to_image_tensor(x: Any, *, where: str = "sample") -> torch.Tensor:
    """One image as a ``(C, H, W)`` uint8 or float32 tensor (from a tensor, a numpy array or a PIL image)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
        if t.dim() == 3 and t.shape[-1] in (1, 3, 4) and t.shape[0] not in (1, 3, 4):
            t = t.permute(2, 0, 1)  # numpy images are (H, W, C)
    elif type(x).__module__.startswith("PIL"):
        from torchvision.transforms.functional import pil_to_tensor

        t = pil_to_tensor(x)
    else:
        raise DebiaskitError(f"{where}: images must be tensors, numpy arrays or PIL images, got {type(x).__name__}")
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise DebiaskitError(f"{where}: an image must be (C, H, W) or (H, W), got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.contiguous()
    if t.is_floating_point():
        return t.float().contiguous()
    raise DebiaskitError(f"{where}: images must be uint8 or floating point, got {t.dtype}")


def _label(v: Any, what: str, where: str) -> int:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise DebiaskitError(f"{where}: {what} must be one integer id per sample (multi-label targets: build a "
                                 f"BiasedDataset), got a tensor of shape {tuple(v.shape)}")
        v = v.item()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) and not (isinstance(v, float) and v.is_integer()):
        raise DebiaskitError(f"{where}: {what} must be an integer id, got {v!r}")
    return int(v)


def _parse(sample: Any, where: str) -> tuple[Any, int, int | None]:
    if not isinstance(sample, (tuple, list)) or len(sample) not in (2, 3):
        raise DebiaskitError(f"{where}: a dataset must return (x, y) or (x, y, b), got "
                             f"{type(sample).__name__}{f' of length {len(sample)}' if isinstance(sample, (tuple, list)) else ''}")
    b = _label(sample[2], "the bias label b", where) if len(sample) == 3 else None
    return sample[0], _label(sample[1], "the class label y", where), b


class _Samples(torch.utils.data.Dataset):
    """``(image tensor, y, b or -1)`` of a user dataset, for DataLoaders (picklable: module level)."""

    def __init__(self, dataset: Any, indices: Sequence[int] | None = None, *, labels: bool = True) -> None:
        self.dataset = dataset
        self.indices = indices
        self.labels = labels

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        j = int(self.indices[i]) if self.indices is not None else int(i)
        x, y, b = _parse(self.dataset[j], f"sample {j}")
        x = to_image_tensor(x, where=f"sample {j}")
        return (x, y, -1 if b is None else b) if self.labels else x


class _LabelsOnly(_Samples):
    def __getitem__(self, i: int) -> Any:
        j = int(self.indices[i]) if self.indices is not None else int(i)
        _, y, b = _parse(self.dataset[j], f"sample {j}")
        return y, -1 if b is None else b


class _Collate:
    """Stack ``x`` (and the labels) after checking every image has the shape and dtype of sample 0."""

    def __init__(self, shape: Sequence[int], dtype: torch.dtype, where: str) -> None:
        self.shape, self.dtype, self.where = tuple(int(s) for s in shape), dtype, where

    def _x(self, xs: list[torch.Tensor]) -> torch.Tensor:
        for x in xs:
            if tuple(x.shape) != self.shape or x.dtype != self.dtype:
                raise DebiaskitError(f"{self.where}: an image of shape {tuple(x.shape)} {x.dtype}, but sample 0 is "
                                     f"{self.shape} {self.dtype}; every image of a split must have the same shape")
        return torch.stack(xs)

    def __call__(self, batch: list[Any]) -> Any:
        if isinstance(batch[0], torch.Tensor):
            return self._x(batch)
        xs, ys, bs = zip(*batch)
        return self._x(list(xs)), torch.as_tensor(ys, dtype=torch.long), torch.as_tensor(bs, dtype=torch.long)


def _collate_labels(batch: list[Any]) -> Any:
    ys, bs = zip(*batch)
    return torch.as_tensor(ys, dtype=torch.long), torch.as_tensor(bs, dtype=torch.long)


class _Chunks(torch.utils.data.Sampler):
    """A batch sampler whose batches are set before each pass (one pass = one fetch)."""

    def __init__(self) -> None:
        self.chunks: list[list[int]] = []

    def __iter__(self):
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


# -- streaming ----------------------------------------------------------------------------------------------
class StreamingImages:
    """The images of a user dataset, read on demand through a ``DataLoader``.

    Implements what the trainer and the evaluation use of an image tensor — ``shape``, ``dtype``, ``device``,
    ``len``, ``index_select(0, idx)``, slicing ``images[a:b]`` and ``to(device)`` — so streamed data trains
    exactly like in-memory data. ``to(device)`` returns a view whose batches are delivered on ``device`` (from
    pinned memory when it is a CUDA device). Every fetch keeps the order of the requested indices.
    """

    def __init__(self, dataset: Any, *, n: int, sample_shape: Sequence[int], dtype: torch.dtype,
                 indices: Sequence[int] | None = None, num_workers: int = 0, chunk_size: int = 64,
                 device: torch.device | str = "cpu") -> None:
        self.dataset = dataset
        self.indices = list(indices) if indices is not None else None
        self.shape = torch.Size((int(n), *[int(s) for s in sample_shape]))
        self.dtype = dtype
        self.device = torch.device(device)
        self.num_workers = int(num_workers)
        self.chunk_size = max(1, int(chunk_size))
        self._loader: torch.utils.data.DataLoader | None = None
        self._chunks: _Chunks | None = None

    # tensor-like surface ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.shape[0])

    def dim(self) -> int:
        return len(self.shape)

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "StreamingImages":
        device = torch.device(device)
        if device == self.device:
            return self
        view = StreamingImages(self.dataset, n=len(self), sample_shape=self.shape[1:], dtype=self.dtype,
                               indices=self.indices, num_workers=self.num_workers, chunk_size=self.chunk_size,
                               device=device)
        return view

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise ValueError("StreamingImages.index_select supports dim 0 only")
        return self.fetch(torch.as_tensor(index).reshape(-1).tolist())

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, slice):
            return self.fetch(list(range(len(self)))[key])
        if isinstance(key, int):
            return self.fetch([key])[0]
        return self.fetch(torch.as_tensor(key).reshape(-1).tolist())

    def __repr__(self) -> str:
        return f"StreamingImages(shape={tuple(self.shape)}, dtype={self.dtype}, workers={self.num_workers})"

    # reading ------------------------------------------------------------------------------------------------
    def _source(self, positions: list[int]) -> list[int]:
        return positions if self.indices is None else [self.indices[p] for p in positions]

    def _check(self, x: torch.Tensor, j: int) -> torch.Tensor:
        if tuple(x.shape) != tuple(self.shape[1:]) or x.dtype != self.dtype:
            raise DebiaskitError(f"sample {j}: image of shape {tuple(x.shape)} {x.dtype}, but sample 0 is "
                                 f"{tuple(self.shape[1:])} {self.dtype}; every image of a split must have the same shape")
        return x

    def fetch(self, positions: list[int]) -> torch.Tensor:
        """The images at ``positions`` (of this view), stacked in that order, on :attr:`device`."""
        n = len(self)
        for p in positions:
            if not -n <= p < n:
                raise IndexError(f"index {p} is out of range for {n} images")
        positions = [p % n if n else p for p in positions]
        src = self._source(positions)
        pin = self.device.type == "cuda"
        if not src:
            out = torch.empty((0, *self.shape[1:]), dtype=self.dtype)
        elif self.num_workers == 0:
            out = torch.stack([self._check(_Samples(self.dataset, labels=False)[j], j) for j in src])
            if pin:
                out = out.pin_memory()
        else:
            loader = self._get_loader(pin)
            size = max(1, min(self.chunk_size, math.ceil(len(src) / self.num_workers)))
            self._chunks.chunks = [src[i : i + size] for i in range(0, len(src), size)]  # type: ignore[union-attr]
            out = torch.cat(list(loader))
        return out.to(self.device, non_blocking=pin)

    def _get_loader(self, pin: bool) -> torch.utils.data.DataLoader:
        if self._loader is None:
            self._chunks = _Chunks()
            self._loader = torch.utils.data.DataLoader(
                _Samples(self.dataset, labels=False), batch_sampler=self._chunks, num_workers=self.num_workers,
                pin_memory=pin, persistent_workers=True, collate_fn=_Collate(self.shape[1:], self.dtype, "streamed data"),
            )
        return self._loader

    def close(self) -> None:
        """Stop the worker processes (they also stop when the object is garbage-collected)."""
        self._loader = None
        self._chunks = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loader"] = state["_chunks"] = None
        return state


@dataclass(eq=False)
class StreamingBiasedDataset(BiasedDataset):
    """A :class:`BiasedDataset` whose ``images`` is a :class:`StreamingImages` (labels in memory)."""

    def __post_init__(self) -> None:
        _validate_with_placeholder(self)

    @property
    def fingerprint(self) -> str:
        """The dataset's :func:`content_key` (labels, shapes and evenly spaced images; reading every image is avoided)."""
        if self._fingerprint is None:
            self._fingerprint = content_key(self.images, self.targets, self.bias)
        return self._fingerprint

    def subset(self, indices: Any, split: str | None = None) -> "StreamingBiasedDataset":
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        base = self.images
        positions = idx.tolist()
        src = base._source([p % len(base) for p in positions])
        images = StreamingImages(base.dataset, n=len(src), sample_shape=base.shape[1:], dtype=base.dtype, indices=src,
                                 num_workers=base.num_workers, chunk_size=base.chunk_size, device=base.device)
        return StreamingBiasedDataset(
            images=images, targets=self.targets[idx], bias=self.bias[idx], num_classes=self.num_classes,
            num_bias=self.num_bias, split=split or self.split, name=self.name, aligned_cells=self.aligned_cells,
            class_names=self.class_names, bias_names=self.bias_names, meta={k: v[idx] for k, v in self.meta.items()},
            info=dict(self.info),
        )


@dataclass(eq=False)
class _FloatBiasedDataset(BiasedDataset):
    """An in-memory :class:`BiasedDataset` that also accepts float images (model inputs, already normalised)."""

    def __post_init__(self) -> None:
        _validate_with_placeholder(self)

    def subset(self, indices: Any, split: str | None = None) -> "_FloatBiasedDataset":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return _FloatBiasedDataset(
            images=self.images[idx], targets=self.targets[idx], bias=self.bias[idx], num_classes=self.num_classes,
            num_bias=self.num_bias, split=split or self.split, name=self.name, aligned_cells=self.aligned_cells,
            class_names=self.class_names, bias_names=self.bias_names, meta={k: v[idx] for k, v in self.meta.items()},
            info=dict(self.info),
        )


def _validate_with_placeholder(ds: BiasedDataset) -> None:
    """Run :class:`BiasedDataset`'s label checks with a zero-stride uint8 stand-in for the images (no copy)."""
    images = ds.images
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise DebiaskitError(f"{ds.name}/{ds.split}: images must be (N, C, H, W), got shape {shape}")
    ds.images = torch.zeros(1, dtype=torch.uint8).expand(*shape)
    try:
        BiasedDataset.__post_init__(ds)
    finally:
        ds.images = images


def content_key(images: Any, targets: torch.Tensor, bias: torch.Tensor) -> str:
    """16 hex digits over the labels, the image shape and dtype, and up to 64 evenly spaced images.

    The same for the in-memory and the streaming copy of the same data, and cheap for large streamed sets.
    """
    n = int(images.shape[0])
    k = min(n, KEY_SAMPLES)
    pos = sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)}) if n else []
    sample = images.index_select(0, torch.as_tensor(pos, dtype=torch.long)) if pos else torch.zeros(0)
    h = hashlib.sha256(f"{tuple(images.shape)}|{images.dtype}|{pos}".encode())
    h.update(fingerprint_arrays(torch.as_tensor(targets).cpu(), torch.as_tensor(bias).cpu(), sample.cpu()).encode())
    return h.hexdigest()[:16]


# -- conversion ---------------------------------------------------------------------------------------------
@dataclass
class _Raw:
    """One user split before the label ids are known."""

    split: str
    dataset: Any
    n: int
    sample_shape: tuple[int, ...]
    dtype: torch.dtype
    deterministic: bool
    num_workers: int
    images: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    bias: torch.Tensor | None = None  # None: no bias labels


def _unwrap_loader(obj: Any, num_workers: int | None) -> tuple[Any, int]:
    if isinstance(obj, torch.utils.data.DataLoader):
        ds = obj.dataset
        if isinstance(ds, torch.utils.data.IterableDataset):
            raise DebiaskitError("an iterable-style dataset cannot be indexed; give a map-style dataset (__getitem__)")
        return ds, int(obj.num_workers if num_workers is None else num_workers)
    return obj, int(num_workers or 0)


def _attr_labels(ds: Any, n: int, has_b: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    t = getattr(ds, "targets", None)
    b = getattr(ds, "bias", None) if has_b else None
    if t is None or (has_b and b is None):
        return None
    try:
        tt = torch.as_tensor(np.asarray(t)).long().reshape(-1)
        bb = torch.as_tensor(np.asarray(b)).long().reshape(-1) if b is not None else None
    except (TypeError, ValueError):
        return None
    if len(tt) != n or (bb is not None and len(bb) != n):
        return None
    return tt, bb


def _probe(split: str, obj: Any, num_workers: int | None) -> _Raw:
    ds, workers = _unwrap_loader(obj, num_workers)
    if isinstance(ds, torch.utils.data.IterableDataset) or not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__"):
        raise DebiaskitError(f"{split}: expected a BiasedDataset or a map-style dataset (__len__ and __getitem__), "
                             f"got {type(ds).__name__}")
    n = len(ds)
    if n == 0:
        raise DebiaskitError(f"{split}: the dataset is empty")
    first = ds[0]
    x0, _, b0 = _parse(first, f"{split} sample 0")
    x0 = to_image_tensor(x0, where=f"{split} sample 0")
    again = to_image_tensor(_parse(ds[0], f"{split} sample 0")[0])
    deterministic = again.shape == x0.shape and bool(torch.equal(again, x0))
    return _Raw(split, ds, n, tuple(x0.shape), x0.dtype, deterministic, workers, bias=None if b0 is None else torch.empty(0))


def _read_all(raw: _Raw, *, images: bool, batch_size: int = 256) -> None:
    """Fill ``raw.targets`` / ``raw.bias`` (and ``raw.images``) with one pass through a DataLoader."""
    has_b = raw.bias is not None
    if not images:
        got = _attr_labels(raw.dataset, raw.n, has_b)
        if got is not None:
            raw.targets, raw.bias = got
            return
    wrapped = _Samples(raw.dataset) if images else _LabelsOnly(raw.dataset)
    collate = _Collate(raw.sample_shape, raw.dtype, raw.split) if images else _collate_labels
    loader = torch.utils.data.DataLoader(wrapped, batch_size=batch_size, shuffle=False, num_workers=raw.num_workers,
                                         collate_fn=collate)
    xs, ys, bs = [], [], []
    for batch in loader:
        if images:
            x, y, b = batch
            xs.append(x)
        else:
            y, b = batch
        ys.append(torch.as_tensor(y).long())
        bs.append(torch.as_tensor(b).long())
    raw.targets = torch.cat(ys)
    b_all = torch.cat(bs)
    if has_b and bool((b_all < 0).any()):
        raise DebiaskitError(f"{raw.split}: some samples return (x, y, b) and others (x, y); be consistent")
    if not has_b and bool((b_all >= 0).any()):
        raise DebiaskitError(f"{raw.split}: some samples return (x, y, b) and others (x, y); be consistent")
    raw.bias = b_all if has_b else None
    if images:
        raw.images = torch.cat(xs)


def _nbytes(raw: _Raw) -> int:
    return raw.n * int(np.prod(raw.sample_shape)) * torch.empty(0, dtype=raw.dtype).element_size()


def as_splits(
    train: Any, val: Any = None, test: Any = None, *, data_path: str = "auto", memory_budget: int | None = None,
    num_workers: int | None = None, name: str = "user",
) -> DatasetSplits:
    """Build :class:`DatasetSplits` from user data (see the module docstring).

    Args:
        train, val, test: ``BiasedDataset``, map-style dataset or ``DataLoader`` (``val`` / ``test`` optional).
        data_path: ``auto`` | ``in-memory`` | ``streaming``.
        memory_budget: bytes of images (all splits) ``auto`` moves into memory (default 2 GiB).
        num_workers: DataLoader workers for reading (default: the DataLoader's own, else 0).
        name: the dataset name recorded in the splits.

    Raises:
        DebiaskitError: malformed samples, inconsistent shapes, or splits that are not all ``BiasedDataset``
            or all user datasets.
    """
    if data_path not in DATA_PATHS:
        raise DebiaskitError(f"data_path must be one of {', '.join(DATA_PATHS)}, got {data_path!r}")
    given = {k: v for k, v in (("train", train), ("val", val), ("test", test)) if v is not None}
    if train is None:
        raise DebiaskitError("fit needs training data (train=...)")
    if all(isinstance(v, BiasedDataset) for v in given.values()):
        splits = dict(given)
        for k, v in splits.items():
            v.info.setdefault("data_path", "streaming" if isinstance(v, StreamingBiasedDataset) else "in-memory")
        return DatasetSplits(splits, info={"name": train.name})
    if any(isinstance(v, BiasedDataset) for v in given.values()):
        raise DebiaskitError("give every split as a BiasedDataset or none of them (mixing needs one label space)")
    raws = {k: _probe(k, v, num_workers) for k, v in given.items()}
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
    total = sum(_nbytes(r) for r in raws.values())
    if data_path == "auto":
        random = [k for k, r in raws.items() if not r.deterministic]
        path = "in-memory" if total <= budget and not random else "streaming"
        reason = ("fits the memory budget" if path == "in-memory" else
                  f"random transforms in {', '.join(random)}" if random else
                  f"{total / 2**20:.0f} MiB of images > memory budget {budget / 2**20:.0f} MiB")
    else:
        path, reason = data_path, "asked for"
    for r in raws.values():
        _read_all(r, images=path == "in-memory")
    shapes = {r.sample_shape[0] for r in raws.values()}
    if len(shapes) != 1:
        raise DebiaskitError(f"the splits have images with different channel counts ({sorted(shapes)})")
    classes = getattr(raws["train"].dataset, "classes", None)
    num_classes = max(int(r.targets.max()) + 1 for r in raws.values())  # type: ignore[union-attr]
    if isinstance(classes, (list, tuple)) and len(classes) >= num_classes:
        num_classes = len(classes)
    if min(int(r.targets.min()) for r in raws.values()) < 0:  # type: ignore[union-attr]
        raise DebiaskitError("class labels y must be >= 0")
    with_b = [r for r in raws.values() if r.bias is not None]
    if any(int(r.bias.min()) < 0 for r in with_b):  # type: ignore[union-attr]
        raise DebiaskitError("bias labels b must be >= 0")
    num_bias = max((int(r.bias.max()) + 1 for r in with_b), default=1)  # type: ignore[union-attr]
    ref = next((raws[k] for k in ("train", "val", "test") if k in raws and raws[k].bias is not None), None)
    if ref is None:
        aligned = torch.ones(num_classes, num_bias, dtype=torch.bool)
    else:
        aligned = majority_aligned_cells(ref.targets, ref.bias, num_classes, num_bias)
    out: dict[str, BiasedDataset] = {}
    for k, r in raws.items():
        info = {"data_path": path, "data_path_reason": reason, "bias_labels": r.bias is not None,
                "source_class": f"{type(r.dataset).__module__}.{type(r.dataset).__qualname__}"}
        bias = r.bias if r.bias is not None else torch.zeros(r.n, dtype=torch.long)
        common = dict(targets=r.targets, bias=bias, num_classes=num_classes, num_bias=num_bias, split=k, name=name,
                      aligned_cells=aligned, class_names=list(classes) if isinstance(classes, (list, tuple)) and
                      len(classes) == num_classes and all(isinstance(c, str) for c in classes) else None, info=info)
        if path == "in-memory":
            out[k] = _FloatBiasedDataset(images=r.images, **common)  # type: ignore[arg-type]
        else:
            images = StreamingImages(r.dataset, n=r.n, sample_shape=r.sample_shape, dtype=r.dtype,
                                     num_workers=r.num_workers)
            out[k] = StreamingBiasedDataset(images=images, **common)  # type: ignore[arg-type]
    return DatasetSplits(out, info={"name": name, "data_path": path})


def splits_key(splits: DatasetSplits) -> str:
    """16 hex digits identifying user data, the same for both data paths (:func:`content_key` of each split)."""
    h = hashlib.sha256()
    for k in sorted(splits):
        s = splits[k]
        h.update(f"{k}:{content_key(s.images, s.targets, s.bias)}:{s.num_classes}:{s.num_bias};".encode())
    return h.hexdigest()[:16]


#: splits handed to debiaskit.fit in this process, by :func:`splits_key`
_LIVE: dict[str, DatasetSplits] = {}


def register_live_splits(splits: DatasetSplits) -> str:
    """Make dataset ``user`` with ``key=<splits_key>`` build ``splits`` in this process; returns the key."""
    key = splits_key(splits)
    _LIVE[key] = splits
    return key


@register_dataset("user")
def build_user(*, key: str | None = None) -> DatasetSplits:
    """Data handed to debiaskit.fit in this Python process (not buildable from the command line)."""
    if key in _LIVE:
        return _LIVE[key]
    raise DebiaskitError(
        "dataset 'user' is data that was handed to debiaskit.fit in another Python process; pass the data again "
        "with debiaskit.api.predict(run_dir, data), or train on a registered dataset (image_folder, csv, a plugin)"
    )
