"""``latent_aug``: training on real ∪ G(z) ∪ G(z′) — Ramaswamy et al., "Fair Attribute Classification
through Latent Space De-biasing", CVPR 2021 (official ``main.py --experiment model``; ``docs/latent_aug.md``).

The augmentation directory is made beforehand by ``debiaskit augment`` (GAN, baseline classifiers,
hallucinated labels, latent hyperplanes, paired z′; see :mod:`debiaskit.generative.augment`). This
method replaces the training split by real ∪ synthetic (:meth:`prepare_splits`) and then trains exactly
like ``vanilla``: one network, plain cross-entropy on the target, uniformly shuffled batches, no
re-weighting and no real/fake ratio control (as the official code).

Hyper-parameters (``--set hparams.KEY=VALUE``):

* ``augment``: the augmentation directory (required);
* ``augment_sources``: which rows to train on, default ``[real, gz, gz_prime]`` (the paper); ablations
  ``[real, gz]`` (+G(z) only) or ``[real]``;
* ``max_synthetic``: keep only the first pairs (size ablation); ``null`` = all.

Step budget: ``steps`` is the number of updates, as for every method, so with the baseline's ``steps``
the comparison is **step-matched**. The paper trains both for 20 epochs, so its augmented model takes
≈3× more steps; to reproduce that, multiply ``steps`` by (N_real + N_synthetic)/N_real yourself.
Model selection: the trainer's selection rules (the paper selects the augmented model by a
(class, protected)-weighted val AP and the baseline by plain AP, ``docs/latent_aug.md`` detail 6; we use
the same rule for both).
"""

from __future__ import annotations

from typing import Any

from debiaskit.data.base import DatasetSplits
from debiaskit.errors import DebiaskitError
from debiaskit.generative.augment import augmented_splits
from debiaskit.methods.registry import register_method
from debiaskit.methods.vanilla import Vanilla

__all__ = ["LatentAug"]


@register_method("latent_aug")
class LatentAug(Vanilla):
    """Vanilla training on the GAN-augmented training set; target labels only (synthetic ones hallucinated)."""

    labels_consumed = ("target",)
    evaluated_model = "the single network trained on real + G(z) + G(z') images"

    paper = "Ramaswamy et al., Fair Attribute Classification through Latent Space De-biasing, CVPR 2021"
    default_hparams = {"augment": None, "augment_sources": ["real", "gz", "gz_prime"], "max_synthetic": None}

    @classmethod
    def prepare_splits(cls, splits: DatasetSplits, hparams: dict[str, Any]) -> DatasetSplits:
        path = hparams.get("augment")
        if not path:
            raise DebiaskitError(
                "latent_aug needs an augmentation directory: create it with 'debiaskit augment ... --out DIR' "
                "and pass --set hparams.augment=DIR"
            )
        sources = hparams.get("augment_sources") or ["real", "gz", "gz_prime"]
        if isinstance(sources, str):
            sources = [s.strip() for s in sources.split(",") if s.strip()]
        return augmented_splits(splits, path, sources=tuple(sources), max_synthetic=hparams.get("max_synthetic"))
