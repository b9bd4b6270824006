"""GRL gradients (autograd + finite differences) and feature taps."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError
from debiaskit.methods.grl import GradientReversal, check_lambda, grad_reverse
from debiaskit.models import create_model
from debiaskit.models.taps import FeatureTap, available_taps


def _toy(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    trunk = nn.Linear(5, 4)
    adv = nn.Linear(4, 2)
    with torch.no_grad():
        for p in [*trunk.parameters(), *adv.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).float())
    x = torch.randn(7, 5, generator=g)
    b = torch.randint(0, 2, (7,), generator=g)
    return trunk, adv, x, b


@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_grl_backward_is_minus_lambda_times_adversary_gradient(lam):
    trunk, adv, x, b = _toy()
    # plain: gradient of the adversary loss w.r.t. trunk and adversary parameters
    loss = nn.functional.cross_entropy(adv(trunk(x)), b)
    g_trunk = torch.autograd.grad(loss, list(trunk.parameters()), retain_graph=True)
    g_adv = torch.autograd.grad(loss, list(adv.parameters()))
    # through the GRL
    loss_r = nn.functional.cross_entropy(adv(grad_reverse(trunk(x), lam)), b)
    r_trunk = torch.autograd.grad(loss_r, list(trunk.parameters()), retain_graph=True)
    r_adv = torch.autograd.grad(loss_r, list(adv.parameters()))
    assert torch.allclose(loss, loss_r)  # identity forward
    for a, r in zip(g_trunk, r_trunk):
        torch.testing.assert_close(r, -lam * a)
    for a, r in zip(g_adv, r_adv):  # the adversary itself trains on the plain loss
        torch.testing.assert_close(r, a)


def test_grl_matches_finite_differences_on_trunk():
    torch.manual_seed(0)
    x = torch.randn(3, 4, dtype=torch.float64)
    w = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    lam = 1.5

    def f(w_):
        return (torch.tanh(x @ w_) ** 2).sum()

    out = (torch.tanh(grad_reverse(x @ w, lam)) ** 2).sum()
    (g,) = torch.autograd.grad(out, w)
    eps = 1e-6
    fd = torch.zeros_like(w)
    with torch.no_grad():
        for i in range(w.numel()):
            d = torch.zeros(w.numel(), dtype=torch.float64)
            d[i] = eps
            fd.view(-1)[i] = (f(w + d.view_as(w)) - f(w - d.view_as(w))) / (2 * eps)
    torch.testing.assert_close(g, -lam * fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x"])
def test_negative_or_invalid_lambda_rejected(bad):
    with pytest.raises(DebiaskitError, match="adv_lambda"):
        check_lambda(bad)
    with pytest.raises(DebiaskitError):
        GradientReversal(bad)


def test_module_form_schedules_lambda():
    m = GradientReversal(1.0)
    m.lam = 3.0
    x = torch.ones(2, requires_grad=True)
    m(x).sum().backward()
    assert torch.equal(x.grad, torch.full((2,), -3.0))


def test_mlp_taps_match_manual_forward():
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=3, in_shape=(1, 2, 2), hidden=[6, 5])
    x = torch.rand(4, 1, 2, 2)
    tap0 = FeatureTap(model, "layers.0")
    out, h0 = tap0(x)
    torch.testing.assert_close(h0, model.layers[0](x.flatten(1)))
    torch.testing.assert_close(out, model(x))
    tap0.remove()
    _, f = FeatureTap(model, "features")(x)
    torch.testing.assert_close(f, model.features(x))
    assert available_taps(model) == ["features", "layers.0", "layers.1"]


@pytest.mark.parametrize("arch,tap,channels,dim", [("resnet18", "conv4", 256, 256 * 2 * 2), ("resnet18", "conv5", 512, 512),
                                                   ("cnn64", "conv4", 128, 128 * 4 * 4), ("cnn64", "layer4", 256, 256 * 2 * 2)])
def test_resnet_and_cnn_taps_flatten_and_pool(arch, tap, channels, dim):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=2, in_shape=(3, 32, 32))
    t = FeatureTap(model, tap, pool="flatten")
    assert t.dim_for((3, 32, 32)) == dim
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    out, f = t(x)
    assert f.shape == (2, dim)
    assert torch.allclose(out, model(x))
    t.remove()
    _, fa = FeatureTap(model, tap, pool="avg")(x)
    assert fa.shape == (2, channels)
    torch.testing.assert_close(fa, f.view(2, channels, -1).mean(2))
    _, fm = FeatureTap(model, tap, pool="max")(x)
    torch.testing.assert_close(fm, f.view(2, channels, -1).amax(2))


def test_tap_gradients_reach_the_trunk():
    model = create_model("mlp", num_classes=2, in_shape=(1, 2, 2), hidden=[4, 4])
    t = FeatureTap(model, "layers.0")
    _, h = t(torch.rand(3, 1, 2, 2))
    h.sum().backward()
    assert model.layers[0][0].weight.grad is not None and model.layers[1][0].weight.grad is None


def test_unknown_tap_lists_available():
    model = create_model("resnet18", num_classes=2, in_shape=(3, 32, 32))
    with pytest.raises(DebiaskitError, match=r"no tap 'conv9'.*available taps: features, layer1, layer2, layer3, layer4, conv4, conv5"):
        FeatureTap(model, "conv9")
    mlp = create_model("mlp_lff", num_classes=2, in_shape=(3, 28, 28))
    with pytest.raises(DebiaskitError, match=r"available taps: features, layers.0, layers.1, layers.2"):
        FeatureTap(mlp, "conv5")
    with pytest.raises(DebiaskitError, match="pooling"):
        FeatureTap(mlp, "features", pool="median")
