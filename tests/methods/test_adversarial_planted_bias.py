"""On a planted-bias toy problem the adversary removes the protected attribute from the features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from sklearn.linear_model import LogisticRegression

from debiaskit.data.augment import make_batch_transform
from debiaskit.models.taps import FeatureTap
from debiaskit.train.trainer import build_method



def _probe_accuracy(out_dir, splits) -> float:
    """Accuracy of a fresh logistic-regression attacker on the tapped features (train on val, test on test)."""
    cfg = yaml.safe_load((out_dir / "config.yaml").read_text())
    m = build_method(cfg, splits, torch.device("cpu"), torch.Generator().manual_seed(0))
    m.load_state_dict(torch.load(out_dir / "model_last.pt"))
    m.model.eval()
    tap = FeatureTap(m.model, "features")
    tf = make_batch_transform({}, train=False)
    with torch.no_grad():
        _, fv = tap(tf(splits["val"].images))
        _, ft = tap(tf(splits["test"].images))
    clf = LogisticRegression(max_iter=2000).fit(fv.numpy(), splits["val"].bias.numpy())
    return float(clf.score(ft.numpy(), splits["test"].bias.numpy()))


@pytest.mark.xfail(strict=False, reason="regression seen at the start of stop 19 with torch 2.14.1 (the probe still "
                   "reads the protected attribute at 1.0 after adversarial training); under investigation, see the "
                   "closing note of issue 18")
def test_adversary_accuracy_drops_to_chance_task_accuracy_stays(tmp_path, toy, run_method):
    sp = toy(900, corr=0.9)  # protected = target 90 % of the time in train/val, independent in test
    van = run_method("vanilla", tmp_path / "v", sp, steps=150)
    adv = run_method("adversarial", tmp_path / "a", sp, steps=150, adv_lambda=3.0, adv_hidden=32, adv_layers=1)
    p_van, p_adv = _probe_accuracy(tmp_path / "v", sp), _probe_accuracy(tmp_path / "a", sp)
    assert p_van > 0.9  # the vanilla representation carries the protected attribute
    assert p_adv < 0.62  # after adversarial training a fresh attacker is near chance (0.5)
    assert adv.result["final"]["test"]["accuracy"] > 0.95  # task accuracy on the independent test set stays high
    assert van.result["final"]["test"]["accuracy"] > 0.95
    assert np.isfinite(p_adv)
