"""Latent-space de-biasing (Ramaswamy et al., CVPR 2021): generator protocol, latent hyperplanes, paired latents
z′, a small GAN trainer, label hallucination and the augmented training set (docs/latent_aug.md)."""

from debiaskit.generative.augment import (
    AugmentConfig,
    Augmentation,
    augmented_splits,
    build_augmentation,
    load_augmentation,
    save_augmentation,
)
from debiaskit.generative.edits import (
    ablation_latents,
    complementary_latent,
    domain_dependent_latent,
    least_norm_edit,
    multivalued_protected_latent,
    normalize_hyperplane,
    two_protected_latents,
)
from debiaskit.generative.evaluation import paper_metrics
from debiaskit.generative.gan import GANConfig, load_gan_generator, train_gan
from debiaskit.generative.hyperplanes import LatentHyperplane, fit_hyperplane
from debiaskit.generative.labelling import AttributeClassifier, hallucinate_labels
from debiaskit.generative.protocol import Generator, ModuleGenerator, load_generator, to_uint8

#: the paper's paired latent z′ (keeps the target score, flips the protected one): an alias
paired_latents = complementary_latent

__all__ = [
    "AttributeClassifier",
    "AugmentConfig",
    "Augmentation",
    "GANConfig",
    "Generator",
    "LatentHyperplane",
    "ModuleGenerator",
    "ablation_latents",
    "augmented_splits",
    "build_augmentation",
    "complementary_latent",
    "domain_dependent_latent",
    "fit_hyperplane",
    "hallucinate_labels",
    "least_norm_edit",
    "load_augmentation",
    "load_gan_generator",
    "load_generator",
    "multivalued_protected_latent",
    "normalize_hyperplane",
    "paired_latents",
    "paper_metrics",
    "save_augmentation",
    "to_uint8",
    "train_gan",
    "two_protected_latents",
]
