"""U-Net mask range, GroupDRO weights, reweight / resample / balanced-split helpers (hand-computed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from debiaskit.methods.balanced import multivalue_balanced_indices
from debiaskit.methods.groupdro import groupdro_step
from debiaskit.methods.resample import group_balanced_probabilities
from debiaskit.methods.reweight import inverse_group_weights
from debiaskit.models.unet import MaskUNet


@pytest.mark.parametrize("shape", [(3, 28, 28), (3, 17, 23), (1, 8, 8)])
def test_unet_mask_starts_near_one_and_has_one_channel(shape):
    torch.manual_seed(0)
    u = MaskUNet(shape[0], ngf=4, depth=2)
    with torch.no_grad():
        m = u(torch.randn(5, *shape))
    assert m.shape == (5, 1, *shape[1:])
    assert float(m.min()) > 0.85 and float(m.mean()) > 0.93  # sigmoid(3) = 0.9526
    assert float(m.max()) < 1.0


def test_unet_mask_stays_strictly_inside_unit_interval():
    torch.manual_seed(0)
    u = MaskUNet(3, ngf=4, depth=2)
    opt = torch.optim.SGD(u.parameters(), lr=5.0)
    x = torch.randn(8, 3, 16, 16)
    for sign in (1.0, -1.0):  # push the mask hard to 1, then hard to 0
        for _ in range(15):
            loss = -sign * u.logits(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        m = u(x).detach()
        assert bool(((m > 0) & (m < 1)).all())


def test_groupdro_step_hand_computed():
    q = torch.full((3,), 1 / 3)
    loss = torch.tensor([1.0, 1.0, 2.0, 4.0])
    groups = torch.tensor([0, 0, 1, 2])
    new_q, robust, gl = groupdro_step(q, loss, groups, eta=0.5)
    e = torch.tensor([math.exp(0.5), math.exp(1.0), math.exp(2.0)])
    torch.testing.assert_close(new_q, e / e.sum())
    torch.testing.assert_close(gl, torch.tensor([1.0, 2.0, 4.0]))
    torch.testing.assert_close(robust, (new_q * gl).sum())


def test_groupdro_weights_move_toward_worst_group():
    q = torch.full((4,), 0.25)
    losses = torch.tensor([0.2, 0.5, 1.5, 0.1])  # group 2 is the worst
    groups = torch.arange(4).repeat_interleave(3)
    per = losses.repeat_interleave(3)
    history = [q]
    for _ in range(50):
        q, _, _ = groupdro_step(q, per, groups, eta=0.1)
        history.append(q)
    qs = torch.stack(history)
    assert bool((qs[1:, 2] > qs[:-1, 2]).all())  # monotone increase of the worst group's weight
    assert float(q[2]) > 0.9 and int(q.argmax()) == 2
    # a group absent from the batch keeps its (relative) weight
    q2, _, _ = groupdro_step(torch.full((4,), 0.25), torch.tensor([1.0]), torch.tensor([0]), eta=1.0)
    assert torch.allclose(q2[1], q2[2]) and float(q2[0]) > float(q2[1])


def test_inverse_group_weights_and_resampling_probabilities():
    g = torch.tensor([0, 0, 0, 1, 3])  # group 2 empty
    w = inverse_group_weights(g, 4)
    torch.testing.assert_close(w, torch.tensor([5 / (3 * 3), 5 / 3, 0.0, 5 / 3]))
    assert math.isclose(float(w[g].mean()), 1.0, rel_tol=1e-6)
    p = group_balanced_probabilities(g, 4)
    torch.testing.assert_close(p, torch.tensor([1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 3]))
    per_group = torch.zeros(4).index_add_(0, g, p)
    torch.testing.assert_close(per_group, torch.tensor([1 / 3, 1 / 3, 0, 1 / 3]))


def test_multivalue_balanced_split_caps_every_cell():
    # label 0: cells (0,0)=6, (0,1)=2, (0,2)=3 ; label 1: (1,0)=4, (1,1)=0, (1,2)=5
    y = np.array([0] * 11 + [1] * 9)
    b = np.array([0] * 6 + [1] * 2 + [2] * 3 + [0] * 4 + [2] * 5)
    idx = multivalue_balanced_indices(y, b, 1.5, num_classes=2, num_bias=3, seed=0)
    counts = np.bincount(y[idx] * 3 + b[idx], minlength=6)
    assert counts.tolist() == [3, 2, 3, 0, 0, 0]  # cap 1.5 * 2 = 3 for label 0; label 1 has an empty cell
    assert np.array_equal(idx, np.sort(idx))
