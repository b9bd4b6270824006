"""torchvision ResNet-18 / ResNet-50 with the debiaskit ``features()`` / ``head`` split.

The network is built by torchvision's own constructor (no model code is copied); its modules are then
re-attached under the same names (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1`` … ``layer4``,
``avgpool``) and its ``fc`` becomes ``head`` = ``Linear(512 | 2048, num_classes)``. Feature taps can
therefore hook ``layer3`` / ``layer4`` by name.

Stems:
    ``stem="imagenet"`` (default) keeps the 7x7 stride-2 conv + max-pool. This is what DisEnt applies to
    32x32 CIFAR and BFFHQ (the last map of a 32 px input is 1x1; ``docs/methods_lff_disent.md`` detail 9)
    and LfF uses on CelebA. ``stem="cifar"`` replaces ``conv1`` by a 3x3 stride-1 conv and drops the max-pool (the common
    CIFAR ResNet-18 variant; not what either paper used).

``pretrained=True`` loads torchvision's ImageNet weights (``IMAGENET1K_V1``) from the torch hub cache, or
downloads them when ``DEBIASKIT_NO_DOWNLOAD`` is unset; otherwise a clear error says where to put the file.
With ``stem="cifar"`` or a non-RGB input the replaced ``conv1`` is freshly initialised (grayscale input
with ``stem="imagenet"`` sums the pretrained RGB filters). ``freeze_backbone=True`` freezes every parameter
except the head (LfF's CelebA setting, ``docs/methods_lff_disent.md`` detail 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError
from debiaskit.models.registry import register_model
from debiaskit.paths import downloads_allowed

__all__ = ["TorchvisionResNet", "resnet18", "resnet50"]

_STEMS = ("imagenet", "cifar")


def _load_weights(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet state dict for ``arch``, from the hub cache or (when allowed) the network."""
    import torchvision.models as tvm

    weights = {"resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1, "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1}[arch]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file() and not downloads_allowed():
        raise DebiaskitError(
            f"{arch}: ImageNet weights cannot be downloaded here (DEBIASKIT_NO_DOWNLOAD is set) and are not cached; "
            f"put {Path(weights.url).name} from {weights.url} at {cached}, or use pretrained=False"
        )
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as e:  # noqa: BLE001 - network / file problems become one user-facing line
        raise DebiaskitError(
            f"{arch}: ImageNet weights cannot be downloaded here ({type(e).__name__}: {e}); put "
            f"{Path(weights.url).name} from {weights.url} at {cached}, or use pretrained=False"
        ) from None


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet split into ``features(x)`` (pooled, ``(B, feature_dim)``) and ``head``.

    Only the modules of the torchvision network are used; ``forward(x) == head(features(x))``.
    """

    def __init__(
        self,
        arch: str,
        *,
        num_classes: int,
        in_channels: int = 3,
        stem: str = "imagenet",
        pretrained: bool = False,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        import torchvision.models as tvm

        if stem not in _STEMS:
            raise DebiaskitError(f"{arch}: stem must be one of {', '.join(_STEMS)}, got {stem!r}")
        if num_classes < 1:
            raise DebiaskitError(f"{arch}: num_classes must be positive, got {num_classes}")
        net = {"resnet18": tvm.resnet18, "resnet50": tvm.resnet50}[arch](weights=None)
        if pretrained:
            net.load_state_dict(_load_weights(arch))
        if stem == "cifar":
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            old = net.conv1
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            if pretrained and in_channels == 1:
                with torch.no_grad():
                    net.conv1.weight.copy_(old.weight.sum(1, keepdim=True))
            else:
                nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.arch, self.stem = arch, stem
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool = net.avgpool
        self.feature_dim = int(net.fc.in_features)
        self.head = nn.Linear(self.feature_dim, num_classes)
        if freeze_backbone:
            for name, p in self.named_parameters():
                if not name.startswith("head."):
                    p.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("resnet18")
def resnet18(
    *,
    num_classes: int,
    in_shape: Sequence[int],
    stem: str = "imagenet",
    pretrained: bool = False,
    freeze_backbone: bool = False,
) -> TorchvisionResNet:
    """torchvision ResNet-18 (features 512): DisEnt's CIFAR10C/BFFHQ network (scratch), LfF's CelebA one."""
    return TorchvisionResNet("resnet18", num_classes=num_classes, in_channels=int(in_shape[0]), stem=stem,
                             pretrained=pretrained, freeze_backbone=freeze_backbone)


@register_model("resnet50")
def resnet50(
    *,
    num_classes: int,
    in_shape: Sequence[int],
    stem: str = "imagenet",
    pretrained: bool = False,
    freeze_backbone: bool = False,
) -> TorchvisionResNet:
    """torchvision ResNet-50 (features 2048): the task model of Wang et al. 2019 and Ramaswamy et al. 2021."""
    return TorchvisionResNet("resnet50", num_classes=num_classes, in_channels=int(in_shape[0]), stem=stem,
                             pretrained=pretrained, freeze_backbone=freeze_backbone)
