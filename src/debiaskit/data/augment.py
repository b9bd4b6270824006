"""Batch-level image transforms that run on the device holding the uint8 batch (CPU or GPU).

A single function turns a uint8 ``(B, C, H, W)`` batch (or a float batch of a user dataset, taken as it is)
into the float input of the model: optional random
crop with zero padding and horizontal flip (training only), scaling to [0, 1], and optional per-channel
normalisation. Everything is vectorised over the batch (no per-image Python or PIL).

Datasets describe their transform in ``BiasedDataset.info``::

    info["train_augment"] = {"crop": 32, "padding": 4, "flip": True}
    info["normalize"] = {"mean": [...], "std": [...]}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

BatchTransform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def random_crop_flip(
    x: torch.Tensor,
    *,
    padding: int = 0,
    flip: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random crop of the original size from a zero-padded batch, and random horizontal flip.

    Offsets and flips are drawn per image with ``generator`` (on ``x``'s device). The crop is one gather of
    whole ``(C, H, W)`` windows from an ``as_strided`` view of the padded batch, so the cost is a few
    tensor ops per batch, on CPU or GPU.
    """
    b, c, h, w = x.shape
    if padding > 0:
        p = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        k = 2 * padding + 1
        dy = torch.randint(0, k, (b,), generator=generator, device=x.device)
        dx = torch.randint(0, k, (b,), generator=generator, device=x.device)
        sb, sc, sh, sw = p.stride()
        windows = p.as_strided((b, k, k, c, h, w), (sb, sh, sw, sc, sh, sw))
        x = windows[torch.arange(b, device=x.device), dy, dx]
    if flip:
        f = torch.rand(b, generator=generator, device=x.device) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def make_batch_transform(info: dict[str, Any], *, train: bool, prescaled: bool = False) -> BatchTransform:
    """Build the uint8 → float transform described by a dataset's ``info``.

    ``prescaled=True``: the batches are float32 images already scaled to [0, 1] by ``x.float() / 255`` (the
    trainer's in-memory float copy, :func:`prescale_images`); the transform skips the scaling and the
    defensive copy and is otherwise the same, so it produces bit-identical inputs (crop, flip and scaling are
    elementwise or pure indexing and commute).
    """
    aug = dict(info.get("train_augment") or {}) if train else {}
    norm = info.get("normalize")
    padding = int(aug.get("padding", 0))
    flip = bool(aug.get("flip", False))

    def transform(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if padding or flip:
            x = random_crop_flip(x, padding=padding, flip=flip, generator=generator)
        if prescaled:
            out = x  # a fresh float32 batch (index_select or the crop/flip above made it)
        else:
            # uint8 images are scaled to [0, 1]; float images (user datasets, debiaskit.fit) are model inputs already
            out = x.float().div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32, copy=True)
        if norm:
            mean = torch.tensor(norm["mean"], device=out.device, dtype=out.dtype).view(1, -1, 1, 1)
            std = torch.tensor(norm["std"], device=out.device, dtype=out.dtype).view(1, -1, 1, 1)
            out = (out - mean) / std
        return out

    return transform


#: largest float32 copy of the training images the trainer keeps in memory (``train.float_cache: auto``)
FLOAT_CACHE_MAX_BYTES = 1 << 30


def prescale_images(images: torch.Tensor) -> torch.Tensor:
    """The float32 copy of uint8 images scaled to [0, 1], computed once, exactly as the transform does per batch."""
    return images.float().div_(255.0)


def use_float_cache(mode: str, images: torch.Tensor, device: torch.device | None = None) -> bool:
    """Whether the trainer keeps a float32 copy of the training images (``train.float_cache``).

    Indexing a float32 copy made once replaces the per-batch uint8 → float conversion (bit-identical inputs;
    on one quiet Xeon core the Colored MNIST step time moved by less than the noise, ``docs/performance.md``). ``auto``: uint8
    images in CPU memory whose float copy fits in :data:`FLOAT_CACHE_MAX_BYTES` (on a GPU
    the uint8 batch is converted there cheaply, device memory is worth more, and a float batch would cross
    the bus at four times the bytes), training on CPU (``device``); ``on``: any uint8 images; ``off``: never.
    """
    if mode == "off" or images.dtype != torch.uint8:
        return False
    if mode == "on":
        return True
    on_cpu = images.device.type == "cpu" and (device is None or torch.device(device).type == "cpu")
    return on_cpu and images.numel() * 4 <= FLOAT_CACHE_MAX_BYTES
