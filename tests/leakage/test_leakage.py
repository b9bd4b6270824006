import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from debiaskit.errors import DebiaskitError
from debiaskit.leakage import (
    AttackerConfig,
    BatchedAttacker,
    amplification,
    dataset_leakage,
    expected_macro_f1,
    interpolate_monotone,
    leakage_at_f1,
    macro_f1,
    model_leakage,
    perturb_labels,
    perturbation_for_f1,
)

# tiny budget: few epochs, so a larger learning rate than the paper's 5e-5
CFG = AttackerConfig(epochs=3, lr=2e-3, num_threads=1, hidden=64)


def _planted(n=1600, k=8, strength=0.9, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = (rng.random((n, k)) < 0.25).astype(np.uint8)
    y[:, 0] = np.where(rng.random(n) < strength, g, 1 - g)
    return y, g


def test_random_labels_leak_about_half():
    rng = np.random.default_rng(1)
    y = (rng.random((1600, 8)) < 0.25).astype(np.uint8)
    g = rng.integers(0, 2, 1600)
    r = dataset_leakage(y, g, rounds=5, seed=0, config=CFG)
    assert len(r.per_round) == 5
    assert 0.5 <= r.mean < 0.57  # folding biases chance slightly upwards
    assert all(0.5 <= v < 0.62 for v in r.per_round)


def test_planted_dependency_leaks_strongly():
    y, g = _planted()
    r = dataset_leakage(y, g, rounds=3, seed=0, config=CFG)
    assert r.mean > 0.8
    assert r.per_group["train"] == r.per_group["train"]  # recorded
    assert r.config["depth_used"] == 4 and r.config["folded"] and r.config["seed"] == 0


def test_single_label_uses_one_hot_and_depth_five():
    rng = np.random.default_rng(2)
    g = rng.integers(0, 2, 1600)
    y = np.where(rng.random(1600) < 0.85, g * 3 + rng.integers(0, 3, 1600), rng.integers(0, 6, 1600))
    r = dataset_leakage(y, g, rounds=2, seed=0, config=CFG)
    assert r.config["depth_used"] == 5 and r.config["n_features"] == 6
    assert r.mean > 0.75


def test_given_splits_and_sizes():
    y, g = _planted(n=2400)
    tr, va, te = slice(0, 1600), slice(1600, 2000), slice(2000, 2400)
    r = dataset_leakage(y[tr], g[tr], val=(y[va], g[va]), test=(y[te], g[te]), sizes=(100, 50, 60), rounds=2,
                        config=CFG)
    assert r.per_group == {"train": 100, "val": 50, "test": 60}
    assert r.config["splits"] == "given train/val/test splits"


def test_more_than_two_groups_reports_plain_accuracy():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 3, 1500)
    y = np.eye(3, dtype=np.uint8)[g]
    r = dataset_leakage(y, g, rounds=2, config=CFG)
    assert r.config["n_groups"] == 3 and not r.config["folded"]
    assert r.config["chance"] == pytest.approx(1 / 3)
    assert r.mean > 0.9


def test_bad_inputs():
    y, g = _planted(n=200)
    with pytest.raises(DebiaskitError, match="inconsistent widths"):
        dataset_leakage(y, g, val=(y[:, :5], g), test=(y, g), config=CFG)
    with pytest.raises(DebiaskitError, match="inconsistent widths"):
        dataset_leakage([[0, 1], [1]], [0, 1], config=CFG)
    with pytest.raises(DebiaskitError, match="single value"):
        dataset_leakage(y, np.zeros(200), config=CFG)
    g2 = np.zeros(200, int)
    g2[:3] = 1
    with pytest.raises(DebiaskitError, match="too few samples to balance"):
        dataset_leakage(y, g2, config=CFG)
    with pytest.raises(DebiaskitError, match="both val and test"):
        dataset_leakage(y, g, val=(y, g), config=CFG)


def test_model_leakage_records_output_kind():
    y, g = _planted(n=1200)
    rng = np.random.default_rng(0)
    logits = (y * 4.0 - 2.0 + rng.normal(0, 1, y.shape)).astype(np.float32)
    for kind in ("logits", "probabilities", "thresholded"):
        r = model_leakage(logits, g, kind=kind, rounds=2, config=CFG)
        assert r.config["output_kind"] == kind and r.config["input"] == "model outputs"
        assert r.mean > 0.7
    with pytest.raises(DebiaskitError, match="output kind"):
        model_leakage(logits, g, kind="softmaxed", config=CFG)


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    t = rng.random((300, 6)) < 0.2
    p = rng.random((300, 6)) < 0.3
    t[:, 5] = False
    assert macro_f1(t, p, multilabel=True) == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    a, b = rng.integers(0, 7, 300), rng.integers(0, 9, 300)
    assert macro_f1(a, b, multilabel=False) == pytest.approx(f1_score(a, b, average="macro", zero_division=0))
    batch = macro_f1(np.stack([a, b]), np.stack([b, a]), multilabel=False)
    assert batch.shape == (2,)
    assert batch[1] == pytest.approx(f1_score(b, a, average="macro", zero_division=0))


@pytest.mark.parametrize("multilabel", [True, False])
def test_perturbation_hits_requested_f1_on_average(multilabel):
    rng = np.random.default_rng(5)
    y = (rng.random((3000, 20)) < rng.uniform(0.05, 0.4, 20)).astype(np.uint8) if multilabel else rng.integers(0, 15, 3000)
    for target in (0.9, 0.7, 0.5):
        p = perturbation_for_f1(y, target, multilabel=multilabel, num_classes=None if multilabel else 15)
        f1s = [macro_f1(y, perturb_labels(y, p, multilabel=multilabel, num_classes=15, rng=rng), multilabel=multilabel)
               for _ in range(10)]
        assert np.mean(f1s) == pytest.approx(target, abs=0.01)
        assert expected_macro_f1(y, p, multilabel=multilabel, num_classes=15) == pytest.approx(target, abs=1e-6)


def test_bitflip_flips_both_ways():
    rng = np.random.default_rng(0)
    y = np.zeros((20000, 1), np.uint8)
    y[:10000] = 1
    out = perturb_labels(y, 0.1, multilabel=True, rng=rng)
    assert out[:10000].mean() == pytest.approx(0.9, abs=0.01)
    assert out[10000:].mean() == pytest.approx(0.1, abs=0.01)


def test_interpolation_is_monotone_safe():
    f1 = [0.9, 0.5, 0.7, 0.6, 0.8]
    leak = [0.80, 0.60, 0.66, 0.70, 0.75]  # (0.6, 0.70) breaks monotonicity
    qs = np.linspace(0.5, 0.9, 41)
    vals = [interpolate_monotone(f1, leak, q)[0] for q in qs]
    assert all(b >= a - 1e-12 for a, b in zip(vals, vals[1:]))
    assert min(vals) >= min(leak) and max(vals) <= max(leak)
    v, ext = interpolate_monotone(f1, leak, 0.95)
    assert ext and v == pytest.approx(0.80)
    mono_x, mono_y = [0.5, 0.6, 0.8], [0.55, 0.6, 0.9]
    assert interpolate_monotone(mono_x[::-1], mono_y[::-1], 0.7) == (pytest.approx(np.interp(0.7, mono_x, mono_y)), False)


def test_leakage_at_f1_curve_and_amplification():
    y, g = _planted(n=1600)
    curve, lam, ext = leakage_at_f1(y, g, grid=[0.0, 0.2, 0.45], model_f1=0.75, rounds=2, config=CFG)
    assert curve.mode == "bitflip" and len(curve.p) == 3
    assert curve.f1_mean[0] == 1.0 and curve.f1_mean[0] > curve.f1_mean[1] > curve.f1_mean[2]
    assert curve.leakage_mean[0] > curve.leakage_mean[2]
    assert not ext and min(curve.leakage_mean) <= lam <= max(curve.leakage_mean)
    lm = model_leakage(y.astype(np.float32), g, rounds=2, config=CFG)
    amp = amplification(lm, curve, 0.75)
    assert amp["delta"] == pytest.approx(lm.mean - lam)
    c2, _, _ = leakage_at_f1(np.argmax(y, 1), g, f1_grid=[0.9, 0.6], rounds=1, config=CFG)
    assert c2.mode == "replace" and c2.p[0] < c2.p[1]


def test_batched_attacker_matches_sequential_net_and_models_are_independent():
    from torch import nn

    torch.manual_seed(0)
    m = BatchedAttacker(3, 10, hidden=16, depth=4)
    seq = nn.Sequential(nn.BatchNorm1d(10), nn.Linear(10, 16), nn.BatchNorm1d(16), nn.LeakyReLU(), nn.Linear(16, 16),
                        nn.BatchNorm1d(16), nn.LeakyReLU(), nn.Linear(16, 16), nn.BatchNorm1d(16), nn.LeakyReLU(),
                        nn.Linear(16, 2))
    lins = [layer for layer in seq if isinstance(layer, nn.Linear)]
    for i, layer in enumerate(lins):
        layer.weight.data = m.weights[i][1].T.clone()
        layer.bias.data = m.biases[i][1, 0].clone()
    x = torch.randn(3, 40, 10)
    out = m(x)
    torch.testing.assert_close(out[1], seq(x[1]), atol=1e-5, rtol=1e-5)
    out[2].sum().backward()
    assert m.weights[0].grad[0].abs().sum() == 0 and m.weights[0].grad[1].abs().sum() == 0
    assert m.weights[0].grad[2].abs().sum() > 0
