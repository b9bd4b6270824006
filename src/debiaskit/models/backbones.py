"""Backbones by name: ``torchvision:<arch>`` and ``timm:<arch>`` (timm is the optional extra ``debiaskit[timm]``).

Any classification architecture of ``torchvision.models`` (``torchvision:resnet50``, ``torchvision:vit_b_16``,
``torchvision:convnext_tiny``, ...) or of timm (``timm:convnext_tiny``, ``timm:resnet50``, ...) becomes a
debiaskit model with the features/head split, so every method can use it. Options (``hparams.model_kwargs``):

* ``pretrained``: path of a local weights file (a state dict saved with ``torch.save``; a checkpoint dict with
  a ``state_dict`` or ``model`` entry and ``module.`` prefixes are accepted). It is read with
  ``torch.load(weights_only=True)``: tensors only, nothing is unpickled. Nothing is ever downloaded.
* ``feature_layer`` / ``pool``: where the features are taken (default: the input of the classifier; see
  :func:`debiaskit.models.adapters.adapt_model`);
* ``normalize``: input normalisation inside the model. ``auto`` (default): the statistics the backbone was
  trained with (ImageNet mean/std for torchvision; timm's ``pretrained_cfg``) when ``pretrained`` is given, none
  otherwise; ``imagenet``; ``none``; or ``{"mean": [...], "std": [...]}``. Inputs arrive as the dataset's batch
  transform makes them (uint8 images become [0, 1]); use ``none`` when the dataset already normalises.
* ``arch_kwargs``: extra constructor arguments of the architecture (e.g. ``{"dropout": 0.2}``).

The classifier is replaced by a fresh ``nn.Linear(feature_dim, num_classes)`` when the class count differs
(the usual fine-tuning set-up).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError
from debiaskit.models.adapters import adapt_model
from debiaskit.models.registry import MODELS

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "load_weights", "timm_factory", "torchvision_factory"]

#: the ImageNet statistics torchvision's pretrained weights expect (inputs in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file (tensors only: ``torch.load(weights_only=True)``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DebiaskitError(f"pretrained weights file {p} not found (pretrained=PATH takes a local file; nothing is downloaded)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt or non-tensor files are user errors
        raise DebiaskitError(f"pretrained weights {p} cannot be read as a tensor state dict ({type(e).__name__}: "
                             f"{' '.join(str(e).split())[:160]})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DebiaskitError(f"pretrained weights {p} do not hold a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_into(model: nn.Module, path: str | Path, name: str) -> None:
    state = load_weights(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = (str(e).strip().splitlines() or ["mismatch"])
        detail = " ".join(line.strip() for line in first[:3])[:240]
        raise DebiaskitError(f"{name}: the weights in {path} do not fit this architecture ({detail})") from None


def _normalisation(normalize: Any, *, pretrained: bool, default: tuple[Sequence[float], Sequence[float]]) -> dict[str, list[float]] | None:
    if normalize == "auto":
        normalize = "default" if pretrained else "none"
    if normalize in ("none", None, False):
        return None
    if normalize == "imagenet":
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    if normalize == "default":
        return {"mean": list(default[0]), "std": list(default[1])}
    if isinstance(normalize, dict) and "mean" in normalize and "std" in normalize:
        return {"mean": [float(v) for v in normalize["mean"]], "std": [float(v) for v in normalize["std"]]}
    raise DebiaskitError(f"normalize must be auto, imagenet, none or {{mean: [...], std: [...]}}, got {normalize!r}")


def _check_channels(name: str, in_shape: Sequence[int]) -> None:
    if int(in_shape[0]) != 3:
        raise DebiaskitError(f"{name} expects RGB inputs (3 channels), got images of shape {tuple(in_shape)}")


def torchvision_factory(name: str) -> Any:
    """The factory of model name ``torchvision:<arch>`` (registry resolver)."""
    arch = name.split(":", 1)[1]

    def factory(*, num_classes: int, in_shape: Sequence[int], pretrained: str | None = None,
                feature_layer: str | None = None, pool: str = "avg", normalize: Any = "auto",
                arch_kwargs: dict[str, Any] | None = None) -> nn.Module:
        import torchvision.models as tvm

        available = tvm.list_models(module=tvm)
        if arch not in available:
            close = difflib.get_close_matches(arch, available, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise DebiaskitError(f"torchvision has no classification model {arch!r}{hint}")
        _check_channels(name, in_shape)
        try:
            net = tvm.get_model(arch, weights=None, **(arch_kwargs or {}))
        except TypeError as e:
            raise DebiaskitError(f"{name}: bad arch_kwargs {arch_kwargs}: {e}") from None
        if pretrained:
            _load_into(net, pretrained, name)
        norm = _normalisation(normalize, pretrained=bool(pretrained), default=(IMAGENET_MEAN, IMAGENET_STD))
        return adapt_model(net, in_shape=in_shape, num_classes=num_classes, feature_layer=feature_layer, pool=pool,
                           normalize=norm)

    factory.__doc__ = f"torchvision {arch} (local pretrained=PATH weights, features/head split)"
    return factory


class TimmModel(nn.Module):
    """A timm model in the features/head contract: ``features = forward_head(forward_features(x), pre_logits=True)``."""

    def __init__(self, net: nn.Module, head: nn.Module, feature_dim: int, normalize: dict[str, list[float]] | None) -> None:
        super().__init__()
        self.net = net
        self.head = head
        self.feature_dim = int(feature_dim)
        if normalize:
            self.register_buffer("input_mean", torch.tensor(normalize["mean"]).view(1, -1, 1, 1))
            self.register_buffer("input_std", torch.tensor(normalize["std"]).view(1, -1, 1, 1))
        else:
            self.input_mean = None
            self.input_std = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mean is not None:
            x = (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def timm_factory(name: str) -> Any:
    """The factory of model name ``timm:<arch>`` (registry resolver; needs ``pip install 'debiaskit[timm]'``)."""
    arch = name.split(":", 1)[1]

    def factory(*, num_classes: int, in_shape: Sequence[int], pretrained: str | None = None,
                feature_layer: str | None = None, pool: str = "avg", normalize: Any = "auto",
                arch_kwargs: dict[str, Any] | None = None) -> nn.Module:
        try:
            import timm
        except ImportError:
            raise DebiaskitError(f"model {name} needs the optional dependency timm: pip install 'debiaskit[timm]'") from None
        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise DebiaskitError(f"timm has no model {arch!r}{hint}")
        net = timm.create_model(arch, pretrained=False, in_chans=int(in_shape[0]), **(arch_kwargs or {}))
        if pretrained:
            _load_into(net, pretrained, name)
        cfg = getattr(net, "pretrained_cfg", None) or {}
        default = (tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))
        norm = _normalisation(normalize, pretrained=bool(pretrained), default=default)
        if feature_layer is not None:
            return adapt_model(net, in_shape=in_shape, num_classes=num_classes, feature_layer=feature_layer,
                               pool=pool, normalize=norm)
        head = net.get_classifier()
        net.reset_classifier(0)  # forward_head(pre_logits=True) now ends at the pooled features
        model = TimmModel(net, head, 0, norm)
        p = next(iter(net.parameters()))
        was = net.training
        net.eval()
        with torch.no_grad():
            try:
                f = model.features(torch.zeros(2, *[int(s) for s in in_shape], device=p.device))
            except Exception as e:  # noqa: BLE001
                raise DebiaskitError(f"{name} cannot run on inputs of shape {tuple(in_shape)}: {type(e).__name__}: "
                                     f"{' '.join(str(e).split())[:200]}") from None
        net.train(was)
        model.feature_dim = int(f.shape[1])
        if not isinstance(head, nn.Linear) or head.out_features != num_classes or head.in_features != model.feature_dim:
            model.head = nn.Linear(model.feature_dim, num_classes).to(p.device)
        return model

    factory.__doc__ = f"timm {arch} (optional extra; local pretrained=PATH weights)"
    return factory


MODELS.add_resolver("torchvision", torchvision_factory)
MODELS.add_resolver("timm", timm_factory)
