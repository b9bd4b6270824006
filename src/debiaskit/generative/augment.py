"""The latent augmentation pipeline of Ramaswamy et al. (CVPR 2021): sample z, label G(z), fit hyperplanes,
edit to z′, generate G(z′) (the official ``generate_images.py``, ``get_scores.py``, ``linear.py``), and
assemble the augmented set (``load_data.py``); see ``docs/latent_aug.md``.

:func:`build_augmentation` samples z ~ N(0, I) in three disjoint blocks — *fit* (hyperplanes), *held-out*
(hyperplane accuracy), *augment* (the z that are edited; official code: 10,000 / 5,000 / 160,000) —
generates G(z) as uint8, hallucinates target and protected labels with the baseline classifiers at their
validation-F1 thresholds, fits the two LinearSVC hyperplanes, computes z′ (or an ablation) for the
augment block and generates G(z′). Labels (``docs/latent_aug.md`` detail 4):

* G(z_k):  target = t̂(G(z_k)), protected = ĝ(G(z_k)), source ``gz``;
* G(z′_k): target = t̂(G(z_k)) (the *same* hallucinated target label), protected = 1 − ĝ(G(z_k)), source
  ``gz_prime``.

:func:`save_augmentation` writes a directory (atomically: a temporary sibling renamed into place)::

    augment.npz     images (2n, C, H, W) uint8, targets, bias, source (1 = gz, 2 = gz_prime), pair (k),
                    z (2n, d) float32 (z for gz rows, z′ for gz_prime rows), scores of both classifiers
    manifest.json   config, thresholds, hyperplanes with fit/held-out accuracy, diagnostics, timings
    pairs.png       grid: rows alternate G(z) / G(z′) for the first pairs

:func:`augmented_splits` turns a dataset's splits plus such a directory into training data
real ∪ G(z) ∪ G(z′) with a ``source`` meta column (0 = real, 1 = gz, 2 = gz_prime), optionally
restricted to some sources (ablations: real only, +G(z), +G(z′)).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debiaskit import __version__
from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.errors import DebiaskitError
from debiaskit.generative.edits import ablation_latents
from debiaskit.generative.gan import save_image_grid
from debiaskit.generative.hyperplanes import LatentHyperplane, check_label_counts, fit_hyperplane
from debiaskit.generative.labelling import AttributeClassifier
from debiaskit.generative.protocol import check_output_shape
from debiaskit.io import write_json

__all__ = [
    "SOURCES",
    "EDITS",
    "AugmentConfig",
    "Augmentation",
    "build_augmentation",
    "save_augmentation",
    "load_augmentation",
    "augmented_splits",
]

SOURCES = ("real", "gz", "gz_prime")
EDITS = ("z_prime", "z_prime_0", "z_prime_g", "z_prime_g0")


@dataclass
class AugmentConfig:
    """Sizes of the three z blocks, the edit, the SVM options and the seed of z."""

    n: int = 10_000  # z in the augment block → 2n synthetic images
    n_fit: int = 10_000
    n_heldout: int = 5_000
    edit: str = "z_prime"
    svm_C: float = 1.0
    svm_max_iter: int = 500_000
    min_per_class: int = 10
    seed: int = 0


@dataclass
class Augmentation:
    """In-memory result of :func:`build_augmentation` (arrays as in ``augment.npz``)."""

    images: np.ndarray
    targets: np.ndarray
    bias: np.ndarray
    source: np.ndarray
    pair: np.ndarray
    z: np.ndarray
    scores_target: np.ndarray
    scores_protected: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def hyperplanes(self) -> dict[str, LatentHyperplane]:
        return {k: LatentHyperplane.from_dict(v) for k, v in self.manifest["hyperplanes"].items()}


def build_augmentation(
    generator: Any,
    target_clf: AttributeClassifier,
    protected_clf: AttributeClassifier,
    *,
    config: AugmentConfig | None = None,
) -> Augmentation:
    """Sample z, label G(z), fit the hyperplanes, edit, generate G(z′); return the labelled synthetic set."""
    cfg = config or AugmentConfig()
    if cfg.edit not in EDITS:
        raise DebiaskitError(f"unknown edit {cfg.edit!r}; choose one of {', '.join(EDITS)}")
    for k in ("n", "n_fit", "n_heldout"):
        if int(getattr(cfg, k)) < 1:
            raise DebiaskitError(f"augmentation block size {k} must be positive, got {getattr(cfg, k)}")
    shape = tuple(target_clf.input_shape)
    if tuple(protected_clf.input_shape) != shape:
        raise DebiaskitError(
            f"target and protected classifiers take different input shapes: {shape} vs {tuple(protected_clf.input_shape)}"
        )
    check_output_shape(generator, shape, what="the classifier input shape")
    timings: dict[str, float] = {}
    d = int(generator.latent_dim)
    total = cfg.n_fit + cfg.n_heldout + cfg.n
    z_all = torch.randn(total, d, generator=torch.Generator().manual_seed(cfg.seed))

    t0 = time.perf_counter()
    imgs = generator.generate_uint8(z_all)
    timings["generate_gz_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    t_hat, t_score = target_clf.labels(imgs)
    g_hat, g_score = protected_clf.labels(imgs)
    timings["label_s"] = time.perf_counter() - t0

    f, h = cfg.n_fit, cfg.n_fit + cfg.n_heldout
    t0 = time.perf_counter()
    for name, lab in ((target_clf.attribute, t_hat), (protected_clf.attribute, g_hat)):
        check_label_counts(lab, name, min_per_class=cfg.min_per_class, where=f" of all {total} generated images")
    hp_t = fit_hyperplane(z_all[:f], t_hat[:f], z_all[f:h], t_hat[f:h], attribute=target_clf.attribute,
                          C=cfg.svm_C, max_iter=cfg.svm_max_iter, min_per_class=cfg.min_per_class)
    hp_g = fit_hyperplane(z_all[:f], g_hat[:f], z_all[f:h], g_hat[f:h], attribute=protected_clf.attribute,
                          C=cfg.svm_C, max_iter=cfg.svm_max_iter, min_per_class=cfg.min_per_class)
    timings["svm_s"] = time.perf_counter() - t0

    z_aug = z_all[h:].double().numpy()
    zp = ablation_latents(z_aug, hp_t.w, hp_t.b, hp_g.w, hp_g.b)[cfg.edit]
    t0 = time.perf_counter()
    imgs_p = generator.generate_uint8(torch.from_numpy(zp).float())
    timings["generate_gz_prime_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tp_hat, tp_score = target_clf.labels(imgs_p)
    gp_hat, gp_score = protected_clf.labels(imgs_p)
    timings["label_gz_prime_s"] = time.perf_counter() - t0

    n = cfg.n
    ta, ga = t_hat[h:].astype(np.int64), g_hat[h:].astype(np.int64)
    c = float(hp_t.w @ hp_g.w)
    diagnostics = {
        # how well the classifiers' view of G(z′) matches the intended edit (target kept, protected flipped)
        "protected_flip_rate": float((gp_hat != ga).mean()),
        "target_kept_rate": float((tp_hat == ta).mean()),
        "cos_wt_wg": c,
        "angle_deg": float(np.degrees(np.arccos(np.clip(c, -1, 1)))),
        "positive_rate_gz": {target_clf.attribute: float(t_hat.mean()), protected_clf.attribute: float(g_hat.mean())},
        "positive_rate_gz_prime": {target_clf.attribute: float(tp_hat.mean()), protected_clf.attribute: float(gp_hat.mean())},
        "cells_gz": _cells(ta, ga),
        "cells_augmented": _cells(np.concatenate([ta, ta]), np.concatenate([ga, 1 - ga])),
        "mean_edit_distance": float(np.linalg.norm(zp - z_aug, axis=1).mean()),
    }
    manifest = {
        "kind": "debiaskit-latent-augmentation",
        "version": __version__,
        "config": asdict(cfg),
        "target": target_clf.attribute,
        "protected": protected_clf.attribute,
        "thresholds": {target_clf.attribute: target_clf.threshold, protected_clf.attribute: protected_clf.threshold},
        "generator": {"name": getattr(generator, "name", type(generator).__name__), "latent_dim": d,
                      "output_range": list(generator.output_range)},
        "image_shape": list(shape),
        "blocks": {"fit": [0, f], "heldout": [f, h], "augment": [h, total]},
        "hyperplanes": {"target": hp_t.to_dict(), "protected": hp_g.to_dict()},
        "diagnostics": diagnostics,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "n_images": 2 * n,
        "sources": {"1": "gz", "2": "gz_prime"},
    }
    return Augmentation(
        images=torch.cat([imgs[h:], imgs_p]).numpy(),
        targets=np.concatenate([ta, ta]).astype(np.int64),
        bias=np.concatenate([ga, 1 - ga]).astype(np.int64),
        source=np.concatenate([np.full(n, 1), np.full(n, 2)]).astype(np.int8),
        pair=np.concatenate([np.arange(n), np.arange(n)]).astype(np.int64),
        z=np.concatenate([z_aug, zp]).astype(np.float32),
        scores_target=np.concatenate([t_score[h:], tp_score]).astype(np.float32),
        scores_protected=np.concatenate([g_score[h:], gp_score]).astype(np.float32),
        manifest=manifest,
    )


def _cells(t: np.ndarray, g: np.ndarray) -> dict[str, int]:
    return {f"t{a}_g{b}": int(((t == a) & (g == b)).sum()) for a in (0, 1) for b in (0, 1)}


_ARRAYS = ("images", "targets", "bias", "source", "pair", "z", "scores_target", "scores_protected")


def save_augmentation(aug: Augmentation, out: str | Path, *, grid_pairs: int = 32, overwrite: bool = False) -> Path:
    """Write ``augment.npz``, ``manifest.json`` and ``pairs.png`` into ``out`` atomically (temp dir + rename)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DebiaskitError(f"output directory {out} already exists and is not empty; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with open(tmp / "augment.npz", "wb") as fh:
            np.savez(fh, **{k: getattr(aug, k) for k in _ARRAYS})
        write_json(tmp / "manifest.json", aug.manifest)
        n = len(aug.images) // 2
        k = min(grid_pairs, n) // 8 * 8 or min(grid_pairs, n)
        if k:
            rows = []
            for s in range(0, k, 8):
                rows += [torch.from_numpy(aug.images[s : s + 8]), torch.from_numpy(aug.images[n + s : n + s + 8])]
            save_image_grid(tmp / "pairs.png", torch.cat(rows), nrow=min(8, k))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_augmentation(path: str | Path) -> Augmentation:
    """Load a directory written by :func:`save_augmentation` (or ``debiaskit augment``)."""
    p = Path(path)
    if not (p / "augment.npz").is_file() or not (p / "manifest.json").is_file():
        raise DebiaskitError(f"{p} is not an augmentation directory (augment.npz and manifest.json expected); "
                             "create one with 'debiaskit augment'")
    manifest = json.loads((p / "manifest.json").read_text())
    if manifest.get("kind") != "debiaskit-latent-augmentation":
        raise DebiaskitError(f"{p}/manifest.json is not a debiaskit latent augmentation manifest")
    with np.load(p / "augment.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in _ARRAYS}
    return Augmentation(**arrays, manifest=manifest)


def augmented_splits(
    splits: DatasetSplits,
    aug: Augmentation | str | Path,
    *,
    sources: tuple[str, ...] | list[str] = SOURCES,
    max_synthetic: int | None = None,
) -> DatasetSplits:
    """Replace the training split by real ∪ G(z) ∪ G(z′) (those of ``sources``), with a ``source`` column.

    ``max_synthetic`` keeps only the first pairs (k < max_synthetic // 2 for both sources) — a size ablation.
    Other splits are unchanged. Real rows keep their labels; synthetic rows carry the labels of
    ``docs/latent_aug.md`` detail 4.
    """
    if not isinstance(aug, Augmentation):
        aug = load_augmentation(aug)
    bad = [s for s in sources if s not in SOURCES]
    if bad or not sources:
        raise DebiaskitError(f"unknown augmentation source(s) {bad or sources}; choose from {', '.join(SOURCES)}")
    train = splits["train"]
    if tuple(aug.images.shape[1:]) != tuple(train.image_shape):
        raise DebiaskitError(
            f"generated images have shape {tuple(aug.images.shape[1:])} (C, H, W) but the dataset's images have "
            f"shape {tuple(train.image_shape)}; generate at the dataset's resolution (--resize)"
        )
    for key, real in (("target", train.info.get("target")), ("protected", train.info.get("protected"))):
        if real is not None and aug.manifest.get(key) not in (None, real):
            raise DebiaskitError(
                f"the augmentation was built for {key} {aug.manifest.get(key)!r} but the dataset's {key} is {real!r}"
            )
    keep = np.zeros(len(aug.images), dtype=bool)
    for code, name in ((1, "gz"), (2, "gz_prime")):
        if name in sources:
            keep |= aug.source == code
    if max_synthetic is not None:
        keep &= aug.pair < max(int(max_synthetic) // 2, 0)
    idx = np.nonzero(keep)[0]
    imgs = [train.images] if "real" in sources else []
    tg = [train.targets] if "real" in sources else []
    bs = [train.bias] if "real" in sources else []
    src = [torch.zeros(len(train), dtype=torch.int8)] if "real" in sources else []
    imgs.append(torch.from_numpy(aug.images[idx]))
    tg.append(torch.from_numpy(aug.targets[idx]))
    bs.append(torch.from_numpy(aug.bias[idx]))
    src.append(torch.from_numpy(aug.source[idx].astype(np.int8)))
    info = dict(train.info)
    info["augmentation"] = {"sources": list(sources), "n_synthetic": int(len(idx)),
                            "n_real": len(train) if "real" in sources else 0}
    new_train = BiasedDataset(
        images=torch.cat(imgs),
        targets=torch.cat(tg),
        bias=torch.cat(bs),
        num_classes=train.num_classes,
        num_bias=train.num_bias,
        split="train",
        name=train.name,
        aligned_cells=train.aligned_cells,
        class_names=train.class_names,
        bias_names=train.bias_names,
        meta={"source": torch.cat(src)},
        info=info,
    )
    out = {k: (new_train if k == "train" else splits[k]) for k in splits}
    return DatasetSplits(out, info={**splits.info, "augmentation": info["augmentation"]})
