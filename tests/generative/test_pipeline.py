"""Latent augmentation pipeline with a tiny analytic generator: labels (docs/latent_aug.md detail 4),
hyperplanes, bad input, and an end-to-end run (baselines → augmentation → latent_aug training → AP/DEO/BA/KL)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.data.registry import DATASETS, register_dataset
from debiaskit.errors import DebiaskitError
from debiaskit.generative.augment import (
    AugmentConfig,
    augmented_splits,
    build_augmentation,
    load_augmentation,
    save_augmentation,
)
from debiaskit.generative.hyperplanes import fit_hyperplane
from debiaskit.generative.labelling import AttributeClassifier
from debiaskit.generative.protocol import ModuleGenerator

D = 6
_r = np.random.default_rng(0)
A_T = _r.normal(size=D)
A_T /= np.linalg.norm(A_T)
A_G = 0.5 * A_T + _r.normal(size=D)
A_G /= np.linalg.norm(A_G)


def _tiny_fn(z: torch.Tensor) -> torch.Tensor:
    """z → (3, 8, 8) in [0, 1]: channel 0 encodes the target direction, channel 1 the protected one."""
    at, ag = torch.from_numpy(A_T).float(), torch.from_numpy(A_G).float()
    c0 = torch.sigmoid(3 * (z @ at))
    c1 = torch.sigmoid(3 * (z @ ag))
    c2 = torch.sigmoid(z[:, -1])
    return torch.stack([c0, c1, c2], 1)[:, :, None, None].expand(-1, 3, 8, 8).contiguous()


def tiny_generator(out_size=None) -> ModuleGenerator:
    return ModuleGenerator(_tiny_fn, latent_dim=D, output_range=(0.0, 1.0), out_size=out_size, name="tiny")


def channel_classifier(attr: str, ch: int, *, shape=(3, 8, 8), const: bool = False) -> AttributeClassifier:
    def predict(x):
        m = x[:, ch].mean((1, 2))
        return torch.full_like(m, -5.0) if const else (m - 0.5) * 20

    return AttributeClassifier(attribute=attr, predict=predict, transform=lambda x, g=None: x.float() / 255,
                               input_shape=shape, threshold=0.5)


def test_augmented_labels_follow_spec_a6(tmp_path):
    gen = tiny_generator()
    ct, cg = channel_classifier("T", 0), channel_classifier("G", 1)
    aug = build_augmentation(gen, ct, cg, config=AugmentConfig(n=200, n_fit=400, n_heldout=200, seed=1))
    n = 200
    assert aug.images.shape == (2 * n, 3, 8, 8) and aug.images.dtype == np.uint8
    assert (aug.source[:n] == 1).all() and (aug.source[n:] == 2).all()
    assert np.array_equal(aug.pair[:n], aug.pair[n:])
    # both images of a pair take t̂(G(z)); G(z′) takes the flipped protected label ĝ(G(z))
    t_hat, _ = ct.labels(torch.from_numpy(aug.images[:n]))
    g_hat, _ = cg.labels(torch.from_numpy(aug.images[:n]))
    assert np.array_equal(aug.targets[:n], t_hat) and np.array_equal(aug.targets[n:], t_hat)
    assert np.array_equal(aug.bias[:n], g_hat) and np.array_equal(aug.bias[n:], 1 - g_hat)
    # z′ rows are the paper's edit of the z rows
    hp = aug.hyperplanes
    zt, zg = hp["target"], hp["protected"]
    np.testing.assert_allclose(zt.score(aug.z[n:]), zt.score(aug.z[:n]), atol=1e-4)
    np.testing.assert_allclose(zg.score(aug.z[n:]), -zg.score(aug.z[:n]), atol=1e-4)
    # linearly separable by construction → high held-out accuracy; the edit works in image space
    assert zt.heldout_accuracy > 0.95 and zg.heldout_accuracy > 0.95
    d = aug.manifest["diagnostics"]
    assert d["protected_flip_rate"] > 0.9 and d["target_kept_rate"] > 0.9
    # save / load round trip (atomic directory) and the pair grid
    out = save_augmentation(aug, tmp_path / "aug")
    assert (out / "pairs.png").is_file() and not list(tmp_path.glob(".aug.*"))
    back = load_augmentation(out)
    assert np.array_equal(back.images, aug.images) and back.manifest["target"] == "T"
    with pytest.raises(DebiaskitError, match="not empty"):
        save_augmentation(aug, out)


def _real_splits(n=300, shape_size=8, seed=0, target="T", protected="G") -> DatasetSplits:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for split, k in (("train", n), ("val", n // 2), ("test", n // 2)):
        z = torch.randn(k, D, generator=g)
        x = (_tiny_fn(z) * 255).round().to(torch.uint8)
        if shape_size != 8:
            x = torch.nn.functional.interpolate(x.float(), size=(shape_size, shape_size)).round().to(torch.uint8)
        t = (z @ torch.from_numpy(A_T).float() > 0).long()
        b = (z @ torch.from_numpy(A_G).float() > 0).long()
        lab = {"T": t, "G": b}
        t, b = lab.get(target, t), lab.get(protected, b)
        out[split] = BiasedDataset(images=x, targets=t, bias=b, num_classes=2, num_bias=2, split=split,
                                   name="tiny_latent_test", aligned_cells=torch.eye(2, dtype=torch.bool),
                                   info={"target": target, "protected": protected})
    return DatasetSplits(out)


if "tiny_latent_test" not in DATASETS:

    @register_dataset("tiny_latent_test")
    def _build_tiny(*, target: str = "T", protected: str = "G", seed: int = 0) -> DatasetSplits:
        return _real_splits(seed=seed, target=target, protected=protected)


def test_augmented_splits_sources_and_shape_check(tmp_path):
    aug = build_augmentation(tiny_generator(), channel_classifier("T", 0), channel_classifier("G", 1),
                             config=AugmentConfig(n=50, n_fit=200, n_heldout=50))
    splits = _real_splits()
    full = augmented_splits(splits, aug)
    tr = full["train"]
    assert len(tr) == 300 + 100
    assert tr.meta["source"].tolist() == [0] * 300 + [1] * 50 + [2] * 50
    assert torch.equal(tr.targets[:300], splits["train"].targets)
    only_gz = augmented_splits(splits, aug, sources=("real", "gz"))
    assert len(only_gz["train"]) == 350 and set(only_gz["train"].meta["source"].tolist()) == {0, 1}
    small = augmented_splits(splits, aug, max_synthetic=20)
    assert len(small["train"]) == 320
    assert torch.equal(full["test"].images, splits["test"].images)
    with pytest.raises(DebiaskitError, match=r"\(3, 8, 8\).*\(3, 16, 16\)"):
        augmented_splits(_real_splits(shape_size=16), aug)
    with pytest.raises(DebiaskitError, match="target 'T'.*'Smiling'"):
        augmented_splits(_real_splits(target="Smiling"), aug)
    with pytest.raises(DebiaskitError, match="unknown augmentation source"):
        augmented_splits(splits, aug, sources=("real", "fake"))


def test_bad_input():
    gen = tiny_generator()
    cfg = AugmentConfig(n=20, n_fit=200, n_heldout=50)
    # generator output shape ≠ classifier input: both shapes in the message
    with pytest.raises(DebiaskitError, match=r"\(3, 8, 8\).*\(3, 16, 16\)"):
        build_augmentation(gen, channel_classifier("T", 0, shape=(3, 16, 16)),
                           channel_classifier("G", 1, shape=(3, 16, 16)), config=cfg)
    # attribute constant on the hallucinated labels
    with pytest.raises(DebiaskitError, match="'G' is constant on the hallucinated labels"):
        build_augmentation(gen, channel_classifier("T", 0), channel_classifier("G", 1, const=True), config=cfg)
    # the same attribute twice → identical hyperplanes → refused as nearly parallel
    with pytest.raises(DebiaskitError, match="nearly parallel"):
        build_augmentation(gen, channel_classifier("T", 0), channel_classifier("G", 0), config=cfg)
    # too few z per class for the SVM
    z = np.random.default_rng(0).normal(size=(100, D))
    y = np.zeros(100, int)
    y[:3] = 1
    with pytest.raises(DebiaskitError, match="only 3 z have hallucinated A=1.*at least 10"):
        fit_hyperplane(z, y, z, y, attribute="A")
    with pytest.raises(DebiaskitError, match="unknown edit"):
        build_augmentation(gen, channel_classifier("T", 0), channel_classifier("G", 1),
                           config=AugmentConfig(n=5, n_fit=50, n_heldout=5, edit="z_swap"))


def test_ablation_edits_in_pipeline():
    ct, cg = channel_classifier("T", 0), channel_classifier("G", 1)
    outs = {e: build_augmentation(tiny_generator(), ct, cg, config=AugmentConfig(n=100, n_fit=300, n_heldout=50, edit=e))
            for e in ("z_prime", "z_prime_g", "z_prime_0")}
    # same z block (same seed) for every edit
    assert np.array_equal(outs["z_prime"].z[:100], outs["z_prime_g"].z[:100])
    hp = outs["z_prime"].hyperplanes["protected"]
    np.testing.assert_allclose(hp.score(outs["z_prime_0"].z[100:]), 0, atol=1e-4)
    # z'_g also flips the protected score but moves the target score (c ≠ 0), z' keeps it
    d, dg = outs["z_prime"].manifest["diagnostics"], outs["z_prime_g"].manifest["diagnostics"]
    assert d["target_kept_rate"] >= dg["target_kept_rate"]


def test_end_to_end_tiny(tmp_path):
    """Baselines trained by the trainer → augmentation → latent_aug run → all four paper metrics."""
    from debiaskit.commands.augment import train_baseline
    from debiaskit.experiments.config import resolve_config
    from debiaskit.experiments.rundir import load_run
    from debiaskit.generative.evaluation import paper_metrics
    from debiaskit.experiments.rundir import classifier_from_run
    from debiaskit.train.trainer import run_training

    torch.set_num_threads(1)
    hp = {"steps": 60, "batch_size": 64, "lr": 3e-3}
    rt = train_baseline("tiny_latent_test", {}, "T", "G", tmp_path / "base_T", steps=60, hparams=hp)
    rg = train_baseline("tiny_latent_test", {}, "G", "T", tmp_path / "base_G", steps=60, hparams=hp)
    ct, cg = classifier_from_run(rt, attribute="T"), classifier_from_run(rg, attribute="G")
    assert 0 < ct.threshold < 1
    aug = build_augmentation(tiny_generator(), ct, cg, config=AugmentConfig(n=150, n_fit=300, n_heldout=100))
    save_augmentation(aug, tmp_path / "aug")
    cfg = resolve_config({"seed": 0, "device": "cpu", "dataset": {"name": "tiny_latent_test"}, "method": "latent_aug",
                          "hparams": {**hp, "augment": str(tmp_path / "aug")}, "train": {"progress": False}})
    res = run_training(cfg, tmp_path / "run")
    assert res.result["data"]["splits"]["train"]["size"] == 300 + 300
    run = load_run(tmp_path / "run")
    s_val = torch.softmax(run.predict_logits("val"), 1)[:, 1].numpy()
    s_test = torch.softmax(run.predict_logits("test"), 1)[:, 1].numpy()
    val, test = run.splits["val"], run.splits["test"]
    m = paper_metrics(val.targets, s_val, test.targets, s_test, test.bias, n_boot=30)
    for k in ("AP", "DEO", "BA", "KL"):
        assert math.isfinite(m[k]["estimate"]), k
        assert m[k]["low"] <= m[k]["estimate"] <= m[k]["high"]
    assert m["AP"]["estimate"] > 60  # the task is easy; the model learnt something
    # the method refuses to run without an augmentation directory
    cfg2 = resolve_config({"dataset": {"name": "tiny_latent_test"}, "method": "latent_aug", "hparams": {"steps": 1}})
    with pytest.raises(DebiaskitError, match="augmentation directory"):
        run_training(cfg2, tmp_path / "run2")
