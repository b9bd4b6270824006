"""Any ``nn.Module`` in the features/head contract, backbones by name, and user classes rebuilt by import path."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError
from debiaskit.models import create_model
from debiaskit.models.adapters import (
    AdaptedModel,
    adapt_model,
    follows_contract,
    init_kwargs_of,
    python_model_factory,
)
from debiaskit.models.backbones import IMAGENET_MEAN, IMAGENET_STD
from debiaskit.models.taps import FeatureTap
from debiaskit_plugin_fixture.nets import ContractCNN, PlantedCNN

X = torch.rand(5, 3, 6, 6, generator=torch.Generator().manual_seed(0))


def _same_function(a: nn.Module, b: nn.Module, x: torch.Tensor = X) -> None:
    a.eval(), b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


def test_last_linear_becomes_the_head():
    torch.manual_seed(0)
    net = PlantedCNN(width=4)
    ref = PlantedCNN(width=4)
    ref.load_state_dict(net.state_dict())
    m = adapt_model(net, in_shape=(3, 6, 6))
    assert isinstance(m, AdaptedModel) and m.head_path == "fc" and m.feature_dim == 16
    assert isinstance(m.net.fc, nn.Identity) and m.head.out_features == 2
    _same_function(m, ref)  # the adapted network computes what the user's network computed
    with torch.no_grad():
        torch.testing.assert_close(m.features(X), ref.flat(ref.body(X)))
        torch.testing.assert_close(m.head(m.features(X)), m(X))
    exported = m.export()  # the user's own class back, same weights, head in place
    assert type(exported) is PlantedCNN and isinstance(exported.fc, nn.Linear)
    _same_function(exported, ref)


def test_named_feature_layer_is_pooled_and_checked():
    torch.manual_seed(0)
    net = PlantedCNN(width=4)  # body ends with a 2x2 average pool: flattening its output feeds fc
    m = adapt_model(net, in_shape=(3, 6, 6), feature_layer="body", pool="flatten")
    assert m.feature_dim == 16 and m.feature_layer == "body"
    with pytest.raises(DebiaskitError, match=r"avg-pooled output of 'body' \(4 features\).*does not give the model's output"):
        adapt_model(PlantedCNN(width=4), in_shape=(3, 6, 6), feature_layer="body", pool="avg")
    with pytest.raises(DebiaskitError, match="has no layer 'nope'; top-level layers: body, flat, fc"):
        adapt_model(PlantedCNN(width=4), in_shape=(3, 6, 6), feature_layer="nope")


def test_contract_models_pass_through_and_heads_are_resized():
    torch.manual_seed(0)
    net = ContractCNN(width=4)
    assert follows_contract(net)
    assert adapt_model(net, in_shape=(3, 6, 6)) is net
    m = adapt_model(PlantedCNN(width=4, num_classes=10), in_shape=(3, 6, 6), num_classes=3)
    assert m.head.out_features == 3 and m(X).shape == (5, 3)
    vgg_like = nn.Module()
    vgg_like.features = nn.Conv2d(3, 3, 1)  # a *sub-module* called features is not the protocol
    assert not follows_contract(vgg_like)


def test_models_that_cannot_be_split_are_clear_errors():
    with pytest.raises(DebiaskitError, match="has no nn.Linear classifier head"):
        adapt_model(nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()), in_shape=(3, 6, 6))
    with pytest.raises(DebiaskitError, match="input of its last nn.Linear.*does not give the model's output"):
        adapt_model(nn.Sequential(nn.Flatten(), nn.Linear(108, 2), nn.Softmax(1)), in_shape=(3, 6, 6))
    with pytest.raises(DebiaskitError, match=r"cannot run on inputs of shape \(3, 6, 6\)"):
        adapt_model(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), in_shape=(3, 6, 6))
    with pytest.raises(DebiaskitError, match="must be a torch.nn.Module"):
        adapt_model("resnet", in_shape=(3, 6, 6))  # type: ignore[arg-type]


def test_methods_can_replace_the_head_and_tap_the_features():
    torch.manual_seed(0)
    m = adapt_model(PlantedCNN(width=4), in_shape=(3, 6, 6))
    tap = FeatureTap(m, "features")
    out, feats = tap(X)
    torch.testing.assert_close(feats, m.features(X))
    assert tap.dim_for((3, 6, 6)) == 16
    tap.remove()
    inner = FeatureTap(m, "net.body")  # any layer of the user's network, by its name under net.
    assert inner.dim_for((3, 6, 6)) == 16
    inner.remove()
    m.head = nn.Identity()  # what DisEnt does with its encoders
    assert m(X).shape == (5, 16) and m.features(X).shape == (5, 16)


def test_init_kwargs_rebuild_the_class_in_a_new_process_way():
    torch.manual_seed(0)
    net = PlantedCNN(width=5, num_classes=3)
    init = init_kwargs_of(net)
    assert init == {"width": 5, "num_classes": 3, "in_channels": 3}
    factory = python_model_factory("python:debiaskit_plugin_fixture.nets:PlantedCNN")
    rebuilt = factory(num_classes=3, in_shape=(3, 6, 6), init=init)
    adapted = adapt_model(net, in_shape=(3, 6, 6), num_classes=3)
    rebuilt.load_state_dict(adapted.state_dict())  # same architecture: the run's weights load into it
    _same_function(rebuilt, adapted)

    class Custom(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.fc = nn.Linear(108, k)

        def debiaskit_init_kwargs(self):
            return {"k": self.fc.out_features}

        def forward(self, x):
            return self.fc(x.flatten(1))

    assert init_kwargs_of(Custom(4)) == {"k": 4}
    with pytest.raises(DebiaskitError, match="cannot be imported.*install the package that provides 'no_such_pkg'"):
        python_model_factory("python:no_such_pkg.nets:Net")(num_classes=2, in_shape=(3, 6, 6), init={})
    with pytest.raises(DebiaskitError, match="constructor arguments were not recorded"):
        factory(num_classes=2, in_shape=(3, 6, 6), init=None)


def test_torchvision_backbone_with_local_weights_and_normalisation(tmp_path):
    import torchvision

    torch.manual_seed(0)
    src = torchvision.models.resnet18()
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)  # a DDP checkpoint
    m = create_model("torchvision:resnet18", num_classes=2, in_shape=(3, 32, 32), pretrained=str(path))
    assert m.registry_name == "torchvision:resnet18" and m.feature_dim == 512 and m.head.out_features == 2
    torch.testing.assert_close(m.net.layer1[0].conv1.weight, src.layer1[0].conv1.weight)
    x = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    src.eval(), m.eval()
    with torch.no_grad():  # pretrained weights get ImageNet-normalised inputs, inside the model
        src.fc = nn.Identity()
        torch.testing.assert_close(m.features(x), src((x - mean) / std))
    plain = create_model("torchvision:resnet18", num_classes=2, in_shape=(3, 32, 32), normalize="none",
                         feature_layer="layer4")
    assert plain.input_mean is None and plain.feature_dim == 512
    with pytest.raises(DebiaskitError, match="torchvision has no classification model 'resnet19'.*resnet18"):
        create_model("torchvision:resnet19", num_classes=2, in_shape=(3, 32, 32))
    with pytest.raises(DebiaskitError, match="expects RGB inputs"):
        create_model("torchvision:resnet18", num_classes=2, in_shape=(1, 32, 32))
    bad = tmp_path / "bad.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(DebiaskitError, match="do not fit this architecture"):
        create_model("torchvision:resnet18", num_classes=2, in_shape=(3, 32, 32), pretrained=str(bad))
    with pytest.raises(DebiaskitError, match="not found.*nothing is downloaded"):
        create_model("torchvision:resnet18", num_classes=2, in_shape=(3, 32, 32), pretrained=str(tmp_path / "x.pt"))


class _FakeTimmNet(nn.Module):
    """The parts of timm's model API debiaskit uses (forward_features / forward_head / classifier reset)."""

    pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}

    def __init__(self, in_chans=3, num_classes=1000):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 6, 3, padding=1)
        self.fc = nn.Linear(6, num_classes)

    def forward_features(self, x):
        return self.conv(x)

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def get_classifier(self):
        return self.fc

    def reset_classifier(self, n):
        self.fc = nn.Identity() if n == 0 else nn.Linear(6, n)


def test_timm_backbones_through_the_timm_api(monkeypatch, tmp_path):
    fake = types.SimpleNamespace(is_model=lambda n: n == "tiny", list_models=lambda: ["tiny"],
                                 create_model=lambda name, pretrained, in_chans: _FakeTimmNet(in_chans))
    monkeypatch.setitem(sys.modules, "timm", fake)
    torch.manual_seed(0)
    ref = _FakeTimmNet()
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    m = create_model("timm:tiny", num_classes=2, in_shape=(3, 8, 8), pretrained=str(tmp_path / "w.pt"))
    assert m.feature_dim == 6 and m.head.out_features == 2
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():  # timm's own statistics (pretrained_cfg) normalise the inputs
        torch.testing.assert_close(m.features(x), ref.forward_head(ref.forward_features((x - 0.5) / 0.25), pre_logits=True))
    with pytest.raises(DebiaskitError, match="timm has no model 'huge'"):
        create_model("timm:huge", num_classes=2, in_shape=(3, 8, 8))
    monkeypatch.setitem(sys.modules, "timm", None)  # not installed
    with pytest.raises(DebiaskitError, match=r"needs the optional dependency timm: pip install 'debiaskit\[timm\]'"):
        create_model("timm:tiny", num_classes=2, in_shape=(3, 8, 8))
