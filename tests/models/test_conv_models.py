"""ResNet-18/50 (torchvision), LfF ResNet-20, cnn64: shapes, features/head split, taps, params, backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError
from debiaskit.models import create_model

CASES = [
    # name, kwargs, in_shape, feature_dim
    ("resnet20", {}, (3, 32, 32), 64),
    ("cnn64", {}, (3, 64, 64), 256),
    ("cnn64", {"width": 8}, (1, 32, 32), 64),
    ("resnet18", {}, (3, 32, 32), 512),
    ("resnet18", {"stem": "cifar"}, (3, 32, 32), 512),
    ("resnet18", {"stem": "imagenet"}, (1, 40, 40), 512),
    ("resnet50", {}, (3, 32, 32), 2048),
    ("resnet50", {"stem": "cifar"}, (3, 16, 16), 2048),
]


@pytest.mark.parametrize("name, kw, in_shape, fdim", CASES)
def test_shapes_split_and_backward(name, kw, in_shape, fdim):
    torch.manual_seed(0)
    m = create_model(name, num_classes=5, in_shape=in_shape, **kw)
    x = torch.randn(2, *in_shape)
    assert m.feature_dim == fdim and isinstance(m.head, nn.Linear) and m.head.in_features == fdim
    m.eval()
    f = m.features(x)
    assert f.shape == (2, fdim)
    out = m(x)
    assert out.shape == (2, 5)
    assert torch.allclose(out, m.head(f), atol=1e-6)
    # replacing the head (DisEnt's concatenated head) uses the same features
    m.head = nn.Linear(fdim, 3)
    assert m(x).shape == (2, 3)
    m.train()
    m(x).sum().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_resnet20_parameter_count_and_structure():
    m = create_model("resnet20", num_classes=10, in_shape=(3, 32, 32))
    n = sum(p.numel() for p in m.parameters())
    assert n == 269_722 and abs(n - 270_000) / 270_000 < 0.01  # LfF/He et al.: ≈0.27M
    assert [len(getattr(m, f"layer{i}")) for i in (1, 2, 3)] == [3, 3, 3]
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) == 19  # 1 stem + 18 in blocks; 19 + fc = 20 weighted layers, option-A shortcuts have none


def test_resnet20_option_a_shortcut_zero_pads():
    from debiaskit.models.resnet_cifar import _ShortcutA

    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).reshape(2, 16, 4, 4)
    y = _ShortcutA(16, 32, 2)(x)
    assert y.shape == (2, 32, 2, 2)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


@pytest.mark.parametrize("name, layer, shape", [("resnet18", "layer3", (2, 256, 4, 4)), ("resnet18", "layer4", (2, 512, 2, 2)),
                                                ("resnet50", "layer4", (2, 2048, 2, 2)), ("resnet20", "layer3", (2, 64, 8, 8)),
                                                ("cnn64", "layer4", (2, 256, 4, 4))])
def test_named_taps(name, layer, shape):
    m = create_model(name, num_classes=2, in_shape=(3, 64, 64) if name != "resnet20" else (3, 32, 32)).eval()
    seen = {}
    mod = dict(m.named_modules())[layer]
    h = mod.register_forward_hook(lambda _m, _i, o: seen.setdefault("o", o))
    m(torch.randn(2, *((3, 64, 64) if name != "resnet20" else (3, 32, 32))))
    h.remove()
    assert tuple(seen["o"].shape) == shape


def test_cifar_stem_and_imagenet_stem_differ():
    a = create_model("resnet18", num_classes=2, in_shape=(3, 32, 32), stem="cifar")
    b = create_model("resnet18", num_classes=2, in_shape=(3, 32, 32))
    assert a.conv1.kernel_size == (3, 3) and a.conv1.stride == (1, 1) and isinstance(a.maxpool, nn.Identity)
    assert b.conv1.kernel_size == (7, 7) and b.conv1.stride == (2, 2) and isinstance(b.maxpool, nn.MaxPool2d)
    with pytest.raises(DebiaskitError, match="stem"):
        create_model("resnet18", num_classes=2, in_shape=(3, 32, 32), stem="tiny")


def test_freeze_backbone_trains_head_only():
    m = create_model("resnet18", num_classes=2, in_shape=(3, 32, 32), freeze_backbone=True)
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]


def test_pretrained_missing_weights_is_clear_error(tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(DebiaskitError, match=r"resnet18: ImageNet weights cannot be downloaded here.*resnet18-"):
            create_model("resnet18", num_classes=2, in_shape=(3, 32, 32), pretrained=True)
    finally:
        torch.hub.set_dir(old)


def test_pretrained_loads_cached_weights(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    ckpt = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    ckpt.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), ckpt)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        m = create_model("resnet18", num_classes=2, in_shape=(3, 32, 32), pretrained=True)
        g = create_model("resnet18", num_classes=2, in_shape=(1, 32, 32), pretrained=True)
    finally:
        torch.hub.set_dir(old)
    assert torch.equal(m.layer3[0].conv1.weight, ref.layer3[0].conv1.weight)
    assert torch.equal(m.conv1.weight, ref.conv1.weight) and m.head.out_features == 2
    assert torch.allclose(g.conv1.weight, ref.conv1.weight.sum(1, keepdim=True))


@pytest.mark.parametrize("name, in_shape, tap, dim", [("resnet18", (3, 32, 32), "conv5", 512 * 1 * 1),
                                                       ("resnet50", (3, 32, 32), "conv4", 1024 * 2 * 2),
                                                       ("resnet20", (3, 32, 32), "layer3", 64 * 8 * 8),
                                                       ("cnn64", (3, 64, 64), "features", 256)])
def test_feature_taps_of_the_adversarial_methods(name, in_shape, tap, dim):
    from debiaskit.models.taps import FeatureTap, available_taps

    m = create_model(name, num_classes=3, in_shape=in_shape).eval()
    assert "features" in available_taps(m) and "layer3" in available_taps(m)
    t = FeatureTap(m, tap, pool="flatten")
    out, feats = t(torch.randn(2, *in_shape))
    t.remove()
    assert out.shape == (2, 3) and feats.shape == (2, dim)
