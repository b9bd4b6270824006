"""Corrupted CIFAR-10 as the LfF protocol (Nam et al., NeurIPS 2020; details in ``docs/datasets_cifar10c.md``).

* target = the CIFAR-10 class, bias = the corruption; ``type=0`` uses Snow, Frost, Fog, Brightness, Contrast,
  Spatter, Elastic, JPEG, Pixelate, Saturate and ``type=1`` Gaussian/Shot/Impulse/Speckle Noise, Gaussian/
  Defocus/Glass/Motion/Zoom Blur, Original (bias index = position; :mod:`debiaskit.data.corruptions`).
* Bias assignment is deterministic **by sample order** within each class (:mod:`debiaskit.data.assign`):
  train ``rho = 1 - ratio`` (class ``c`` mostly gets corruption ``c``); test = the CIFAR-10 test images with
  uniform corruptions (``rho = 0.1``).
* ``severity`` is the level 1..5 of the 5-level CIFAR-10-C tables (Hendrycks & Dietterich, ICLR 2019).
  **LfF's dataset folder ``SeverityK`` is built with level ``K + 1``** (its ``make_dataset.py`` passes
  ``severity + 1`` to the corruption functions), so LfF's ``Severity1``..``Severity4`` are levels 2..5 and its
  README setting ``severity4`` is level 5 — our default. Level 1 has no LfF folder.
* The seed drives the corruption randomness (noise draws, frost crops, ...) and the validation hold-out.

Splits: ``train`` (the corrupted training set minus the hold-out), ``val`` (``val_fraction`` of the aligned and of the
conflicting training samples, spread over the classes: a *biased* validation set with the training ratio,
the Colored MNIST convention and DisEnt's, issue #1), ``test`` (uniform corruptions). Transforms are described
in ``info`` (``train_augment``: random crop 32 with padding 4 + horizontal flip; ``normalize``: the CIFAR mean/std
of LfF ``data/util.py``) and applied by :func:`debiaskit.data.augment.make_batch_transform`.

Built arrays are cached as uint8 in ``cache_dir("corrupted_cifar10")/<key>.npz`` (atomic write), keyed by the
source fingerprint, the frost textures, every option and :data:`~debiaskit.data.corruptions.CORRUPTION_VERSION`:
a second build loads in about a second, a changed source or option builds anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debiaskit.data.assign import assign_bias_by_order, stratified_holdout
from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.data.cifar10_source import CIFAR10_CLASSES, SOURCES, locate_cifar10, read_cifar10
from debiaskit.data.corruptions import (
    CORRUPTION_TYPES,
    CORRUPTION_VERSION,
    FROST_FILES,
    corrupt_by_label,
    in_bootstrapping_child,
)
from debiaskit.data.registry import register_dataset
from debiaskit.errors import DebiaskitError
from debiaskit.io import save_npz
from debiaskit.paths import cache_dir, resolve_data_dir

log = logging.getLogger(__name__)

__all__ = ["build_corrupted_cifar10", "CIFAR_MEAN", "CIFAR_STD", "TRAIN_AUGMENT"]

#: the normalisation of LfF's CIFAR-10 transforms (Nam et al. 2020 code, ``data/util.py``)
CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.2023, 0.1994, 0.2010]
TRAIN_AUGMENT = {"crop": 32, "padding": 4, "flip": True}
_SALT = {"train": 1, "test": 2, "holdout": 4}  # same salts as colored_mnist
_LAYOUT = "corrupted_cifar10/v1"


def _frost_location(ctype: int, frost_dir: str | None, data_dir: str | None) -> tuple[str | None, str]:
    """Directory of the frost textures (type 0 only) and a fingerprint of its files."""
    if ctype != 0:
        return None, "-"
    if frost_dir is None:
        root = resolve_data_dir(data_dir)
        frost_dir = str(root / "lff") if root is not None else None
    if frost_dir is None or not Path(frost_dir).is_dir():
        return frost_dir, "missing"  # corrupt_by_label raises the clear error when Frost is needed
    h = hashlib.sha256()
    for n in FROST_FILES:
        p = Path(frost_dir) / n
        if p.is_file():
            st = p.stat()
            h.update(f"{n}:{st.st_size}:{st.st_mtime_ns};".encode())
    return frost_dir, h.hexdigest()[:12]


def _cache_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _dataset(images_chw: np.ndarray, y: np.ndarray, b: np.ndarray, split: str, names: list[str],
             info: dict) -> BiasedDataset:
    return BiasedDataset(
        images=torch.from_numpy(np.ascontiguousarray(images_chw)),
        targets=torch.from_numpy(np.asarray(y, dtype=np.int64)),
        bias=torch.from_numpy(np.asarray(b, dtype=np.int64)),
        num_classes=10,
        num_bias=10,
        split=split,
        name="corrupted_cifar10",
        class_names=list(CIFAR10_CLASSES),
        bias_names=list(names),
        info=dict(info),
    )


def _build_arrays(loc, *, names, ctype, ratio, severity, seed, val_fraction, frost_dir, workers,
                  progress) -> dict[str, np.ndarray]:
    cifar = read_cifar10(loc, progress=progress)
    y = cifar.train_labels
    b = assign_bias_by_order(y, num_bias=10, aligned_fraction=1.0 - ratio)
    n_all = len(y) + len(cifar.test_labels)
    if workers <= 0:
        workers = min(2, os.cpu_count() or 1) if n_all >= 5000 else 1
    x = corrupt_by_label(cifar.train_images, b, names, severity=severity, seed=seed, salt=_SALT["train"],
                         frost_dir=frost_dir, workers=workers, progress=progress,
                         desc=f"corrupting CIFAR-10 train (type {ctype})")
    ty = cifar.test_labels
    tb = assign_bias_by_order(ty, num_bias=10, aligned_fraction=0.1)
    tx = corrupt_by_label(cifar.test_images, tb, names, severity=severity, seed=seed, salt=_SALT["test"],
                          frost_dir=frost_dir, workers=workers, progress=progress,
                          desc=f"corrupting CIFAR-10 test (type {ctype})")
    chw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))  # noqa: E731
    out: dict[str, np.ndarray] = {}
    if val_fraction > 0:
        # exactly val_fraction of the aligned and of the conflicting samples, spread over the classes
        keep, hold = stratified_holdout(y, y != b, fraction=val_fraction,
                                        rng=np.random.default_rng([seed, _SALT["holdout"]]))
        out.update(train_x=chw(x[keep]), train_y=y[keep], train_b=b[keep],
                   val_x=chw(x[hold]), val_y=y[hold], val_b=b[hold])
    else:
        out.update(train_x=chw(x), train_y=y, train_b=b)
    out.update(test_x=chw(tx), test_y=ty, test_b=tb)
    return out


@register_dataset("corrupted_cifar10")
def build_corrupted_cifar10(
    *,
    type: int = 0,  # noqa: A002 - the protocol's name for the corruption family
    ratio: float = 0.01,
    severity: int = 5,
    seed: int = 0,
    val_fraction: float = 0.1,
    data_dir: str | None = None,
    source: str = "auto",
    frost_dir: str | None = None,
    workers: int = 0,
    progress: bool = True,
    use_cache: bool = True,
) -> DatasetSplits:
    """Build (or load from the cache) Corrupted CIFAR-10.

    Args:
        type: corruption family, 0 or 1 (LfF ``cifar10_type0`` / ``cifar10_type1``).
        ratio: fraction of bias-conflicting training samples, in (0, 1) (LfF: 0.005, 0.01, 0.02, 0.05).
        severity: level 1..5 of the CIFAR-10-C tables; default 5 = LfF ``severity4`` (LfF's folder
            ``SeverityK`` is level K + 1; ``info["lff_severity_name"]`` gives the LfF name, None for level 1).
        seed: drives the corruption randomness and the validation hold-out.
        val_fraction: fraction of the aligned and of the conflicting training samples held out as the biased
            ``val`` split (same conflict ratio as train; 0 disables it).
        data_dir: data directory (else ``$DEBIASKIT_DATA``), see :mod:`debiaskit.data.cifar10_source`.
        source: ``auto`` | ``pickles`` | ``download`` | ``jpeg_tar`` | ``lossless5k``.
        frost_dir: directory with the frost textures (type 0); default ``<data_dir>/lff``.
        workers: processes for the build (0 = 2 when there are >= 5,000 images, else 1). Output does not
            depend on it.
        progress: show tqdm progress bars while building.
        use_cache: read/write the on-disk cache.
    """
    ctype = type
    if in_bootstrapping_child():
        # a worker process re-importing an unguarded script: fail fast, the parent finishes in-process
        raise DebiaskitError(
            "corrupted_cifar10 was built while a worker process imported the main script; put the build under "
            "`if __name__ == \"__main__\":` or pass workers=1"
        )
    if ctype not in (0, 1) or isinstance(ctype, bool):
        raise DebiaskitError(f"type must be 0 or 1, got {ctype!r}")
    if isinstance(ratio, bool) or not (isinstance(ratio, (int, float)) and 0.0 < float(ratio) < 1.0):
        raise DebiaskitError(f"ratio must be in (0, 1), got {ratio!r}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= int(severity) <= 5:
        raise DebiaskitError(f"severity must be an integer 1..5 (LfF severity4 = level 5), got {severity!r}")
    if not (isinstance(val_fraction, (int, float)) and 0.0 <= float(val_fraction) < 1.0):
        raise DebiaskitError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if source not in SOURCES:
        raise DebiaskitError(f"unknown CIFAR-10 source {source!r}; choose from {', '.join(SOURCES)}")
    ratio, severity, seed, val_fraction = float(ratio), int(severity), int(seed), float(val_fraction)
    names = list(CORRUPTION_TYPES[ctype])

    loc = locate_cifar10(data_dir, source=source)
    frost, frost_fp = _frost_location(ctype, frost_dir, data_dir)
    payload = {
        "layout": _LAYOUT, "source_fingerprint": loc.fingerprint, "frost": frost_fp, "type": ctype,
        "ratio": ratio, "severity": severity, "seed": seed, "val_fraction": val_fraction,
        "corruption_version": CORRUPTION_VERSION,
    }
    key = _cache_key(payload)
    path = cache_dir("corrupted_cifar10") / f"type{ctype}-{key}.npz"
    msg = f"corrupted_cifar10: CIFAR-10 source = {loc.source} ({loc.path}){' [lossy JPEG]' if loc.lossy else ''}"
    log.info(msg)
    if progress:
        print(msg, file=sys.stderr)

    t0 = time.perf_counter()
    arrays: dict[str, np.ndarray] | None = None
    cache_state = "off"
    if use_cache and path.is_file():
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            cache_state = "hit"
        except (OSError, ValueError, KeyError) as e:  # a damaged cache file is rebuilt
            log.warning("ignoring unreadable cache %s (%s)", path, e)
            arrays = None
    if arrays is None:
        arrays = _build_arrays(loc, names=names, ctype=ctype, ratio=ratio, severity=severity, seed=seed,
                               val_fraction=val_fraction, frost_dir=frost, workers=int(workers), progress=progress)
        if use_cache:
            save_npz(path, **arrays)
            cache_state = "miss"
    seconds = time.perf_counter() - t0
    if progress:
        print(f"corrupted_cifar10: {'loaded from cache' if cache_state == 'hit' else 'built'} in {seconds:.1f} s"
              f" ({path if use_cache else 'cache off'})", file=sys.stderr)

    info = {
        "protocol": "LfF Corrupted CIFAR-10 (Nam et al. 2020)",
        "type": ctype,
        "corruptions": names,
        "ratio": ratio,
        "severity": severity,
        "lff_severity_name": f"severity{severity - 1}" if severity > 1 else None,
        "seed": seed,
        "val_fraction": val_fraction,
        "cifar_source": loc.source,
        "cifar_location": str(loc.path),
        "cifar_lossy": loc.lossy,
        "source_fingerprint": loc.fingerprint,
        "frost_dir": frost,
        "corruption_version": CORRUPTION_VERSION,
        "cache": cache_state,
        "cache_file": str(path) if use_cache else None,
        "seconds": round(seconds, 3),
        "train_augment": dict(TRAIN_AUGMENT),
        "normalize": {"mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)},
    }
    splits = {"train": _dataset(arrays["train_x"], arrays["train_y"], arrays["train_b"], "train", names, info)}
    if "val_x" in arrays:
        splits["val"] = _dataset(arrays["val_x"], arrays["val_y"], arrays["val_b"], "val", names, info)
    splits["test"] = _dataset(arrays["test_x"], arrays["test_y"], arrays["test_b"], "test", names, info)
    return DatasetSplits(splits, info=info)
