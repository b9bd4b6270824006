"""LfF's CIFAR ResNet-20 (He et al. 2016, §4.2 CIFAR variant), written from its description.

The architecture is that of the official LfF ``module/resnet.py`` (no code copied).

Structure: conv3x3(C→16) + BN + ReLU; three stages of 3 BasicBlocks with 16 / 32 / 64 channels (stages 2
and 3 start with stride 2); global average pooling; ``head`` = Linear(64, num_classes). Feature dim 64.

Shortcuts are "option A": identity when shapes match, otherwise the input is subsampled by 2 in space and
zero-padded in channels (no parameters). Conv and Linear weights use Kaiming-normal initialisation (LfF
``module/resnet.py``); BatchNorm keeps PyTorch's default (weight 1, bias 0). About 0.27M parameters
(269,722 for 10 classes).

Named submodules ``conv1``, ``bn1``, ``layer1``, ``layer2``, ``layer3``, ``head`` (feature taps hook ``layer3``,
the last 64x8x8 map for 32 px inputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from debiaskit.models.registry import register_model

__all__ = ["BasicBlockA", "CifarResNet", "resnet20"]


class _ShortcutA(nn.Module):
    """Parameter-free shortcut: stride-2 subsampling and symmetric zero-padding of the channels."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad = planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            lo = self.pad // 2
            x = F.pad(x, (0, 0, 0, 0, lo, self.pad - lo))
        return x


class BasicBlockA(nn.Module):
    """Two 3x3 conv-BN layers with a ReLU between, added to an option-A shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _ShortcutA(in_planes, planes, stride) if (stride != 1 or in_planes != planes) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR-style ResNet with ``blocks_per_stage`` BasicBlocks per stage (3 → ResNet-20)."""

    def __init__(self, *, num_classes: int, in_channels: int = 3, blocks_per_stage: int = 3,
                 widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        w1, w2, w3 = (int(w) for w in widths)
        self.conv1 = nn.Conv2d(in_channels, w1, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1)
        self.layer1 = self._stage(w1, w1, blocks_per_stage, 1)
        self.layer2 = self._stage(w1, w2, blocks_per_stage, 2)
        self.layer3 = self._stage(w2, w3, blocks_per_stage, 2)
        self.feature_dim = w3
        self.head = nn.Linear(w3, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlockA(in_planes, planes, stride)]
        blocks += [BasicBlockA(planes, planes, 1) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("resnet20")
def resnet20(*, num_classes: int, in_shape: Sequence[int]) -> CifarResNet:
    """LfF's Corrupted CIFAR-10 network: ResNet-20, option-A shortcuts, Kaiming-normal init, 64-d features."""
    return CifarResNet(num_classes=num_classes, in_channels=int(in_shape[0]), blocks_per_stage=3)
