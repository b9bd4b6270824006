"""``debiaskit.fit`` with an ordinary CNN on a planted-bias dataset, for each method family.

The data (``debiaskit_plugin_fixture.data``): the red channel is the bias (easy), a faint green bar the class;
97 % of training images are bias-aligned, the test split is 50 % conflicting. Vanilla training learns the colour
shortcut and fails on conflicting test images; the debiasing methods must do clearly better there. For the
adversary, the test checks that it reads the adapted network's features and that its reversed gradient reaches
the user's layers.
"""

from __future__ import annotations

import pytest
import torch

import debiaskit
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.rundir import load_run
from debiaskit_plugin_fixture.data import PlantedTensors
from debiaskit_plugin_fixture.nets import PlantedCNN

HP = {"lr": 3e-3, "batch_size": 64}
OPTS = {"eval_every": 200, "progress": False}


def _data(ratio: float = 0.03):
    return (PlantedTensors(500, conflicting=ratio, seed=0), PlantedTensors(200, conflicting=ratio, seed=1),
            PlantedTensors(400, conflicting=0.5, seed=2))


def _cnn() -> PlantedCNN:
    torch.manual_seed(0)
    return PlantedCNN(width=8)


def _fit(method, out, data=None, steps=200, **hp):
    tr, va, te = data or _data()
    return debiaskit.fit(method, _cnn(), tr, val=va, test=te, steps=steps, out_dir=out, hparams={**HP, **hp},
                         device="cpu", train_options=OPTS)


@pytest.fixture(scope="module")
def vanilla(tmp_path_factory):
    return _fit("vanilla", tmp_path_factory.mktemp("fit") / "vanilla").result["final"]["test"]


def test_vanilla_learns_the_shortcut(vanilla):
    assert vanilla["aligned_accuracy"] > 0.95
    assert vanilla["conflicting_accuracy"] < 0.5  # the colour, not the bar, decides


@pytest.mark.parametrize("method, extra", [
    ("lff", {}),
    ("groupdro", {"dro_eta": 0.05}),
    ("disent", {"curr_step": 60, "lr_schedule": "none"}),
])
def test_debiasing_methods_beat_vanilla_on_conflicting_samples(tmp_path, vanilla, method, extra):
    res = _fit(method, tmp_path / method, **extra)
    test = res.result["final"]["test"]
    assert test["conflicting_accuracy"] > vanilla["conflicting_accuracy"] + 0.3
    assert test["unbiased_accuracy"] > vanilla["unbiased_accuracy"] + 0.15
    assert res.result["method"] == method and res.result["steps"] == 200
    assert res.result["data"]["info"]["data_path"] == "in-memory"
    assert res.result["model"] == ["python:debiaskit_plugin_fixture.nets:PlantedCNN"]


def test_adversarial_trains_an_adversary_on_the_adapted_features(tmp_path):
    """The adversary reads the adapter's features (the head's input) and its reversed gradient reaches the trunk."""
    from debiaskit.methods.grl import grad_reverse

    tr, va, te = _data(ratio=0.1)
    res = _fit("adversarial", tmp_path / "a", (tr, va, te), steps=150, adv_lambda=1.0, adv_hidden=16, adv_layers=1)
    logs = [r["train_logs"] for r in map(__import__("json").loads, (tmp_path / "a" / "metrics.jsonl").read_text().splitlines())]
    assert logs and 0.5 <= logs[-1]["adv_acc"] <= 1.0 and logs[-1]["lambda"] == 1.0
    assert res.result["final"]["test"]["accuracy"] > 0.8  # the task is still learnt
    m = load_run(tmp_path / "a").method()
    assert m.tap.dim_for((3, 6, 6)) == m.model.feature_dim == 32
    x, y, b = tr.x[:64], tr.y[:64], tr.b[:64]
    m.train()

    def trunk_grad(lam: float) -> torch.Tensor:
        m.zero_grad()
        logits, feats = m.tap(x)
        loss = torch.nn.functional.cross_entropy(logits, y) + torch.nn.functional.cross_entropy(
            m.adversary(grad_reverse(feats, lam)), b)
        loss.backward()
        return torch.cat([p.grad.reshape(-1) for p in m.model.net.parameters()])

    g0, g1, g2 = trunk_grad(0.0), trunk_grad(1.0), trunk_grad(2.0)
    assert (g1 - g0).abs().max() > 1e-6  # the adversary's gradient reaches the user's network...
    torch.testing.assert_close(g2 - g1, g1 - g0, rtol=1e-4, atol=1e-7)  # ...reversed and scaled by λ


def test_bias_label_methods_refuse_data_without_b(tmp_path):
    tr = PlantedTensors(64, conflicting=0.1, seed=0, with_bias=False)
    with pytest.raises(DebiaskitError, match=r"method 'groupdro' reads bias labels.*returns \(x, y\)"):
        debiaskit.fit("groupdro", _cnn(), tr, steps=2, out_dir=tmp_path / "g", device="cpu")
    # a method that needs target labels only trains on the same data; metrics have no conflicting cells
    res = debiaskit.fit("lff", _cnn(), tr, steps=4, out_dir=tmp_path / "l", device="cpu", hparams={"batch_size": 16},
                        train_options={"progress": False})
    assert res.result["data"]["info"]["bias_labels"] is False
    assert res.result["data"]["splits"]["train"]["num_bias"] == 1


def test_fit_resumes_and_returns_a_finished_run(tmp_path):
    tr, va, te = (PlantedTensors(64, conflicting=0.1, seed=s) for s in range(3))
    kw = dict(val=va, test=te, steps=6, out_dir=tmp_path / "r", device="cpu", hparams={"batch_size": 16},
              train_options={"progress": False, "eval_every": 3})
    first = debiaskit.fit("vanilla", _cnn(), tr, **kw)
    again = debiaskit.fit("vanilla", _cnn(), tr, **kw)
    assert not first.already_done and again.already_done
    assert again.result["run_key"] == first.result["run_key"]
    torch.manual_seed(1)
    with pytest.raises(DebiaskitError, match="different config"):  # other initial weights: another run
        debiaskit.fit("vanilla", PlantedCNN(width=8), tr, **kw)


def test_fit_argument_errors(tmp_path):
    tr = PlantedTensors(32, conflicting=0.1, seed=0)
    with pytest.raises(DebiaskitError, match="unknown method 'lfff'.*did you mean 'lff'"):
        debiaskit.fit("lfff", _cnn(), tr, steps=1, out_dir=tmp_path / "x")
    with pytest.raises(DebiaskitError, match="steps must be a positive integer"):
        debiaskit.fit("vanilla", _cnn(), tr, steps=0, out_dir=tmp_path / "x")
    with pytest.raises(DebiaskitError, match="the class PlantedCNN"):
        debiaskit.fit("vanilla", PlantedCNN, tr, steps=1, out_dir=tmp_path / "x")
    with pytest.raises(DebiaskitError, match="unknown hparam key"):
        debiaskit.fit("vanilla", _cnn(), tr, steps=1, out_dir=tmp_path / "x", hparams={"lrr": 1})
    assert not (tmp_path / "x").exists()
