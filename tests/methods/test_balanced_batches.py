"""Protected-balanced mini-batches: equal counts, skip counters, no infinite loop."""

from __future__ import annotations

import json

import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.methods.base import TrainContext
from debiaskit.methods.bias_supervised import ProtectedBalancedSampler, balanced_positions



def _ctx(bias: torch.Tensor, num_bias: int, seed: int = 0) -> TrainContext:
    n = len(bias)
    return TrainContext(dataset="toy", num_classes=2, num_bias=num_bias, in_shape=(1, 4, 4), n_train=n,
                        train_targets=torch.zeros(n, dtype=torch.long), train_bias=bias, device=torch.device("cpu"),
                        generator=torch.Generator().manual_seed(seed))


def test_balanced_positions_keep_first_k_per_value_in_order():
    b = torch.tensor([1, 1, 0, 2, 1, 0, 2, 2, 0])
    pos = balanced_positions(b, 2, 3)
    assert pos.tolist() == [0, 1, 2, 3, 5, 6]
    assert balanced_positions(b, 4, 3) is None  # value 0 has only 3


@pytest.mark.parametrize("num_bias,batch", [(2, 32), (3, 30), (10, 256)])
def test_sampler_batches_have_equal_protected_counts(num_bias, batch):
    g = torch.Generator().manual_seed(1)
    bias = torch.multinomial(torch.linspace(1, 3, num_bias), 4000, replacement=True, generator=g)  # skewed groups
    s = ProtectedBalancedSampler(_ctx(bias, num_bias), batch, loader_factor=2.5)
    for _ in range(20):
        idx, skipped = s.next()
        assert idx is not None  # an unlucky draw may be re-drawn (skipped > 0)
        counts = torch.bincount(bias[idx], minlength=num_bias)
        assert counts.tolist() == [batch // num_bias] * num_bias
        assert len(set(idx.tolist())) == len(idx)


def test_unbalanceable_draws_are_skipped_and_counted_without_looping_forever():
    bias = torch.zeros(2000, dtype=torch.long)
    bias[:20] = 1  # 1 % minority: a loader batch of 40 rarely holds 8 of them
    s = ProtectedBalancedSampler(_ctx(bias, 2), 16, loader_factor=2.5, max_redraws=2)
    idx, skipped = s.next()
    assert idx is None and skipped == 3  # 1 + 2 re-draws, then give up on this step


def test_sampler_rejects_impossible_configurations():
    bias = torch.tensor([0] * 50 + [1] * 3)
    with pytest.raises(DebiaskitError, match="need 8 samples of every protected value"):
        ProtectedBalancedSampler(_ctx(bias, 2), 16)
    with pytest.raises(DebiaskitError, match="smaller than the number of protected values"):
        ProtectedBalancedSampler(_ctx(torch.arange(10) % 10, 10), 5)


def test_adversarial_run_logs_skipped_batches(tmp_path, toy, run_method):
    # minority protected value in 30 of 600 samples: loader batches of 80 often hold fewer than 16 of them
    sp = toy(600, corr=0.9)
    tr = sp["train"]
    tr.bias[:] = 0
    tr.bias[:30] = 1
    res = run_method("adversarial", tmp_path / "r", sp, steps=12, batch_size=32, loader_factor=2.5, balance_redraws=0)
    logs = [json.loads(l)["train_logs"] for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert logs[0]["skipped_draws"] > 0 and logs[0]["skipped_step"] > 0  # some steps skipped, counted
    assert logs[0]["skipped_step"] < 1 or res.result["steps"] == 12  # the run finishes regardless
    assert (tmp_path / "r" / "result.json").exists()
