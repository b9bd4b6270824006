"""``cnn64``: a small convolutional network for 64x64 face images (BFFHQ / CelebA on CPU budgets).

Four blocks ``layer1`` … ``layer4``, each conv3x3 → BatchNorm → ReLU → 2x2 max-pool, with ``width``,
2·width, 4·width, 8·width channels (default 32/64/128/256): a 64 px input ends as a 256x4x4 map; global
average pooling gives the ``feature_dim = 8·width`` features; ``head`` = Linear(feature_dim, num_classes).
Works for any input size ≥ 16 px. Not from either paper: a cheap stand-in for ResNet-18 when a GPU is not
available (about 0.39M parameters at width 32).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError
from debiaskit.models.registry import register_model

__all__ = ["SmallCNN", "cnn64"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )


class SmallCNN(nn.Module):
    """Conv blocks ``layer1..layer4`` + global average pooling + linear ``head``."""

    def __init__(self, *, num_classes: int, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise DebiaskitError(f"cnn64: width must be positive, got {width}")
        w = [width, 2 * width, 4 * width, 8 * width]
        self.layer1 = _block(in_channels, w[0])
        self.layer2 = _block(w[0], w[1])
        self.layer3 = _block(w[1], w[2])
        self.layer4 = _block(w[2], w[3])
        self.feature_dim = w[3]
        self.head = nn.Linear(w[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("cnn64")
def cnn64(*, num_classes: int, in_shape: Sequence[int], width: int = 32) -> SmallCNN:
    """Small CNN for 64 px faces (4 conv blocks + GAP); ``width`` scales the channels."""
    if min(int(in_shape[1]), int(in_shape[2])) < 16:
        raise DebiaskitError(f"cnn64 needs inputs of at least 16x16 pixels, got {tuple(in_shape)}")
    return SmallCNN(num_classes=num_classes, in_channels=int(in_shape[0]), width=width)
