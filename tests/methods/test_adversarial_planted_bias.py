"""Adversarial removal (Wang et al., ICCV 2019, Sec. 5) on planted-bias data: what the gradient-reversal game does.

Data (``toy``): the target sits in pixels 0-3, the protected attribute in pixels 4-7; they agree 90 % of the
time in train/val and are independent in test. The run with ``adv_lambda=0`` is the control: the same adversary
trains on the same protected-balanced batches, but no gradient flows back into the trunk.

What holds (this test's pipeline over seeds 0-7, 150 steps, Adam 1e-2; ``docs/methods_adversarial.md``,
"Planted-bias check"): with λ = 1 the adversary trained *with* the trunk reads the protected attribute on the
independent test split at 0.47-0.77 (control: 0.99-1.00), so the reversed gradient reaches the trunk and defeats
that adversary. What does not hold at this budget: a fresh attacker fitted afterwards on other independent data
still reads the attribute from the same features at 0.99-1.00 (control: 0.99-1.00) — the trunk re-encodes the
attribute so that the current adversary is wrong instead of erasing it. The last two assertions pin that
documented limitation; task accuracy with λ = 1 is seed-dependent (0.56-1.00) and is not asserted.
"""

from __future__ import annotations

import torch
import yaml
from sklearn.linear_model import LogisticRegression

from debiaskit.data.augment import make_batch_transform
from debiaskit.models.taps import FeatureTap
from debiaskit.train.trainer import build_method


def _trained(out_dir, splits):
    """The method of a finished run, rebuilt from its config and ``model_last.pt`` (eval mode)."""
    cfg = yaml.safe_load((out_dir / "config.yaml").read_text())
    m = build_method(cfg, splits, torch.device("cpu"), torch.Generator().manual_seed(0))
    m.load_state_dict(torch.load(out_dir / "model_last.pt"))
    m.eval()
    return m


def _features(m, images: torch.Tensor) -> torch.Tensor:
    tap = FeatureTap(m.model, "features")
    try:
        with torch.no_grad():
            _, f = tap(make_batch_transform({}, train=False)(images))
    finally:
        tap.remove()
    return f


def _adversary_accuracy(m, split) -> float:
    """Accuracy of the run's own adversary on ``split``."""
    x = make_batch_transform({}, train=False)(split.images)
    return float((m.adversary_logits(x).argmax(1) == split.bias).float().mean())


def _fresh_attacker_accuracy(m, fit_split, eval_split) -> float:
    """A logistic-regression attacker fitted after training on ``fit_split`` features, scored on ``eval_split``."""
    clf = LogisticRegression(max_iter=2000).fit(_features(m, fit_split.images).numpy(), fit_split.bias.numpy())
    return float(clf.score(_features(m, eval_split.images).numpy(), eval_split.bias.numpy()))


def test_gradient_reversal_defeats_its_adversary_but_a_fresh_attacker_still_reads_the_attribute(tmp_path, toy, run_method):
    sp = toy(900, corr=0.9)
    attacker_fit = toy(900, corr=0.9, seed=10)["test"]  # another independent (protected ⟂ target) split
    hp = {"steps": 150, "adv_hidden": 32, "adv_layers": 1}
    control = run_method("adversarial", tmp_path / "c", sp, adv_lambda=0.0, **hp)
    adv = run_method("adversarial", tmp_path / "a", sp, adv_lambda=1.0, **hp)
    mc, ma = _trained(tmp_path / "c", sp), _trained(tmp_path / "a", sp)

    # control: the trunk is trained on the task alone, its adversary reads the attribute on independent data
    assert control.result["final"]["test"]["accuracy"] > 0.95
    assert _adversary_accuracy(mc, sp["test"]) > 0.95
    # with gradient reversal that adversary is defeated (seed 0: 0.51; seeds 0-7: at most 0.77)
    acc_adv = _adversary_accuracy(ma, sp["test"])
    assert acc_adv < 0.65
    # ... but the attribute is still in the features: a fresh attacker reads it (seeds 0-7: 0.99-1.00)
    fresh = _fresh_attacker_accuracy(ma, attacker_fit, sp["test"])
    assert fresh > 0.9
    assert fresh - acc_adv > 0.25
