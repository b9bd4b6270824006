"""``celeba64_mini``: 4,000 real CelebA faces at 64×64 with all 40 attributes (a small, CPU-sized CelebA).

Source file: ``<data_dir>/celeba/celeba_testcrops_64x64_first4000.npz`` — the first 4,000 images of the
official CelebA *test* partition (rows 182,637..186,636 of ``list_attr_celeba.txt``), centre-cropped and
resized to 64×64 (option ``size`` area-downsamples further; not the aligned 178×218 images, and not the
128×128 crop of Ramaswamy et al.; ``docs/latent_aug.md`` detail 7).
Arrays: ``images`` (4000, 64, 64, 3) uint8, ``image_ids``, ``attrs`` (4000, 40) int8 in {−1, 1},
``attr_names``. The file's SHA-256 is checked on load.

Because all images come from one official partition, this dataset makes its **own** deterministic
train/val/test split: a permutation of the 4,000 rows drawn with ``numpy.random.default_rng(split_seed)``,
the first 60 % → train (2,400), next 20 % → val (800), last 20 % → test (800). The split does not
depend on ``target``/``protected``, so models for different attributes see the same images.

Labels: ``targets`` = the ``target`` attribute as 0/1, ``bias`` = the ``protected`` attribute as 0/1
(default Male: 1 = male). ``meta["attrs"]`` holds all 40 attributes as 0/1 (uint8) in ``attr_names``
order (recorded in ``info["attr_names"]``). ``aligned_cells[y]`` marks the protected value that is the
majority among training images with target ``y`` (ties → value 1).

Licence: CelebA is for non-commercial research only; the file is never redistributed by debiaskit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.data.registry import register_dataset
from debiaskit.errors import DataMissingError, DebiaskitError
from debiaskit.paths import resolve_data_dir, verify_file

__all__ = ["build_celeba64_mini", "load_celeba64_arrays", "CELEBA64_FILE", "CELEBA64_SHA256", "SPLIT_FRACTIONS"]

CELEBA64_FILE = "celeba/celeba_testcrops_64x64_first4000.npz"
CELEBA64_SHA256 = "585e5de77d67db577ccbf48d50949edf6a6ad310cdec3e3940902a759b2262f8"
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)

# (path, size, mtime_ns) of files whose checksum was verified in this process
_VERIFIED: set[tuple[str, int, int]] = set()


def _locate(data_dir: str | os.PathLike | None) -> Path:
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DataMissingError(
            f"celeba64_mini needs {CELEBA64_FILE}: pass --data-dir (data_dir=...) or set DEBIASKIT_DATA "
            "to the folder that holds it (CelebA cannot be downloaded automatically)"
        )
    path = root / CELEBA64_FILE
    if not path.is_file():
        raise DataMissingError(
            f"celeba64_mini: file {path} not found; put celeba_testcrops_64x64_first4000.npz under "
            f"{root / 'celeba'} (CelebA cannot be downloaded automatically)"
        )
    return path


def load_celeba64_arrays(data_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Verify (SHA-256) and load the raw arrays: images NHWC uint8, attrs {−1,1}, attr_names, image_ids."""
    path = _locate(data_dir)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        verify_file(path, CELEBA64_SHA256, "sha256")
        _VERIFIED.add(key)
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in ("images", "attrs", "attr_names", "image_ids")}


def _split_indices(n: int, seed: int) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(SPLIT_FRACTIONS[0] * n))
    n_val = int(round(SPLIT_FRACTIONS[1] * n))
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train : n_train + n_val]),
        "test": np.sort(perm[n_train + n_val :]),
    }


@register_dataset("celeba64_mini")
def build_celeba64_mini(
    *,
    target: str = "Blond_Hair",
    protected: str = "Male",
    data_dir: str | os.PathLike | None = None,
    split_seed: int = 0,
    size: int = 64,
) -> DatasetSplits:
    """Build the train/val/test splits (60/20/20, seeded permutation) for one target/protected pair.

    ``size`` < 64 area-downsamples the images (e.g. 32 for fast CPU experiments); the default keeps 64×64.
    """
    if not 8 <= int(size) <= 64:
        raise DebiaskitError(f"celeba64_mini: size must be in [8, 64], got {size}")
    arrays = load_celeba64_arrays(data_dir)
    names = [str(s) for s in arrays["attr_names"]]
    for role, attr in (("target", target), ("protected", protected)):
        if attr not in names:
            raise DebiaskitError(f"celeba64_mini: unknown {role} attribute {attr!r}; valid: {', '.join(names)}")
    if target == protected:
        raise DebiaskitError(f"celeba64_mini: target and protected are both {target!r}")
    attrs01 = (arrays["attrs"] > 0).astype(np.uint8)
    images = torch.from_numpy(np.ascontiguousarray(arrays["images"].transpose(0, 3, 1, 2)))
    if int(size) != images.shape[-1]:
        small = torch.nn.functional.interpolate(images.float(), size=(int(size), int(size)), mode="area")
        images = small.round_().clamp_(0, 255).to(torch.uint8)
    t_all = torch.from_numpy(attrs01[:, names.index(target)].astype(np.int64))
    g_all = torch.from_numpy(attrs01[:, names.index(protected)].astype(np.int64))
    attrs_t = torch.from_numpy(attrs01)
    idx = _split_indices(len(images), split_seed)

    tr = torch.from_numpy(idx["train"])
    counts = torch.bincount(t_all[tr] * 2 + g_all[tr], minlength=4).reshape(2, 2)
    aligned = torch.zeros(2, 2, dtype=torch.bool)
    for y in range(2):
        aligned[y, 1 if counts[y, 1] >= counts[y, 0] else 0] = True

    info = {
        "source": str(_locate(data_dir)),
        "sha256": CELEBA64_SHA256,
        "target": target,
        "protected": protected,
        "split_seed": split_seed,
        "size": int(size),
        "split_fractions": list(SPLIT_FRACTIONS),
        "attr_names": names,
        "train_augment": {"flip": True},
        "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    }
    splits = {}
    for split, ix in idx.items():
        it = torch.from_numpy(ix)
        splits[split] = BiasedDataset(
            images=images[it],
            targets=t_all[it],
            bias=g_all[it],
            num_classes=2,
            num_bias=2,
            split=split,
            name="celeba64_mini",
            aligned_cells=aligned,
            class_names=[f"not {target}", target],
            bias_names=[f"not {protected}", protected],
            meta={"attrs": attrs_t[it], "row": it.clone()},
            info=dict(info),
        )
    return DatasetSplits(splits, info=info)
