"""GCE gradient scaling, per-sample EMA, class-max normalisation and the relative-difficulty weight."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from debiaskit.errors import DebiaskitError
from debiaskit.losses import (
    PerSampleEMA,
    RelativeDifficulty,
    class_max,
    classwise_normalize,
    generalized_ce,
    relative_difficulty,
)


def test_gce_gradient_is_q_py_q_times_ce_gradient():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    q = 0.7
    generalized_ce(logits, y, q=q).sum().backward()
    got = logits.grad.clone()

    ref_logits = logits.detach().clone().requires_grad_(True)
    ce = F.cross_entropy(ref_logits, y, reduction="none")
    grad_ce = torch.autograd.grad(ce.sum(), ref_logits)[0]
    p_y = torch.softmax(logits.detach(), 1)[torch.arange(7), y]
    expected = (q * p_y**q)[:, None] * grad_ce
    torch.testing.assert_close(got, expected)

    # = q x the gradient of the textbook GCE (1 - p_y^q)/q, i.e. the gradient of 1 - p_y^q
    tb_logits = logits.detach().clone().requires_grad_(True)
    p = torch.softmax(tb_logits, 1)[torch.arange(7), y]
    textbook = torch.autograd.grad(((1 - p**q) / q).sum(), tb_logits)[0]
    torch.testing.assert_close(got, q * textbook)


def test_gce_value_is_ce_times_detached_weight_and_q_validated():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    p = torch.softmax(logits, 1)[:, 0]
    ce = -torch.log(p)
    torch.testing.assert_close(generalized_ce(logits, y, q=0.5), ce * 0.5 * p**0.5)
    with pytest.raises(DebiaskitError):
        generalized_ce(logits, y, q=0.0)


def test_ema_first_visit_raw_then_alpha_rule():
    ema = PerSampleEMA(5, alpha=0.7)
    out = ema.update(torch.tensor([1, 3]), torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(out, torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(ema.values, torch.tensor([0.0, 2.0, 0.0, 4.0, 0.0]))
    out = ema.update(torch.tensor([3, 0]), torch.tensor([1.0, 5.0]))
    # index 3 seen: 0.7*4 + 0.3*1 = 3.1; index 0 first visit: raw 5
    torch.testing.assert_close(out, torch.tensor([3.1, 5.0]))
    torch.testing.assert_close(ema.seen, torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0]))
    # buffers travel with state_dict (exact resume)
    sd = ema.state_dict()
    assert set(sd) == {"values", "seen"}
    with pytest.raises(DebiaskitError):
        PerSampleEMA(3, alpha=1.0)


def test_class_max_and_normalisation_against_brute_force():
    g = torch.Generator().manual_seed(1)
    n, c = 200, 6
    targets = torch.randint(0, c - 1, (n,), generator=g)  # class c-1 absent
    table = torch.rand(n, generator=g) * 3
    table[torch.rand(n, generator=g) < 0.3] = 0.0  # unvisited entries
    m = class_max(table, targets, c)
    for k in range(c):
        sel = table[targets == k]
        assert m[k] == (sel.max() if sel.numel() else 0.0)
    idx = torch.randperm(n, generator=g)[:32]
    got = classwise_normalize(table[idx], targets[idx], table, targets, c)
    ref = torch.stack([table[i] / table[targets == targets[i]].max() for i in idx.tolist()])
    torch.testing.assert_close(got, ref)


def test_relative_difficulty_in_unit_interval_and_formula():
    g = torch.Generator().manual_seed(2)
    b, d = torch.rand(1000, generator=g), torch.rand(1000, generator=g)
    b[:10] = 0.0
    d[:5] = 0.0
    w = relative_difficulty(b, d)
    assert torch.all((w >= 0) & (w <= 1))
    torch.testing.assert_close(w, b / (b + d + 1e-8))
    assert w[0] == 0.0  # both zero -> 0, no NaN


def test_relative_difficulty_module_updates_before_reading():
    targets = torch.tensor([0, 0, 1, 1])
    rd = RelativeDifficulty(targets, 2, alpha=0.7)
    w = rd.weights(torch.tensor([0, 2]), torch.tensor([0, 1]), torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
    # first visit: EMAs are the raw losses; class max over the table = the same values -> both normalised to 1
    torch.testing.assert_close(w, torch.tensor([0.5, 0.5]), atol=1e-6, rtol=0)
    w = rd.weights(torch.tensor([1]), torch.tensor([0]), torch.tensor([0.5]), torch.tensor([2.0]))
    # b: 0.5/max(1, 0.5)=0.5; d: 2/max(1, 2)=1 -> 0.5/1.5
    torch.testing.assert_close(w, torch.tensor([1 / 3]), atol=1e-6, rtol=0)
