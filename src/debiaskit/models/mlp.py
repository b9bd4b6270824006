"""MLPs of the Colored MNIST experiments of LfF (Nam et al. 2020) and DisEnt (Lee et al. 2021).

Which paper uses which network: ``docs/methods_lff_disent.md`` detail 9.

* ``mlp_lff``: 2352 → 100 → 100 → 100 (ReLU after each), head Linear(100, C) — LfF ``module/mlp.py``.
* ``mlp_disent``: 2352 → 100 → 100 → 16 (ReLU after each), head Linear(16, C) — DisEnt's vanilla MLP and
  each branch of its MLP_DISENTANGLE (whose head DisEnt replaces by Linear(32, C) on [z_i; z_b]).

**Input scaling.** Both official repos divide inputs that are already in [0, 1] by 255 again, so their MLPs
see values in [0, 1/255] (``docs/methods_lff_disent.md`` detail 8). ``input_scale`` reproduces that: the
default ``1/255`` keeps the published learning rates meaningful (DisEnt's lr 0.01 for CMNIST depends on
it). Pass ``input_scale=1.0`` for the textbook [0, 1] input; this is a documented deviation when used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from debiaskit.models.registry import register_model


class MLP(nn.Module):
    """Fully connected network: flatten → hidden layers (Linear+ReLU) → linear head.

    Hidden layers are exposed as ``layers[i]`` (each ``Sequential(Linear, ReLU)``) so feature taps can hook
    any of them (names ``layers.0``, ``layers.1``, ...).
    """

    def __init__(
        self,
        *,
        in_features: int,
        hidden: Sequence[int],
        num_classes: int,
        input_scale: float = 1.0 / 255.0,
    ) -> None:
        super().__init__()
        dims = [in_features, *hidden]
        self.layers = nn.Sequential(
            *[nn.Sequential(nn.Linear(dims[i], dims[i + 1]), nn.ReLU()) for i in range(len(hidden))]
        )
        self.feature_dim = dims[-1]
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.input_scale = float(input_scale)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1) * self.input_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _numel(in_shape: Sequence[int]) -> int:
    n = 1
    for s in in_shape:
        n *= int(s)
    return n


@register_model("mlp_lff")
def mlp_lff(*, num_classes: int, in_shape: Sequence[int], input_scale: float = 1.0 / 255.0) -> MLP:
    """LfF's Colored MNIST MLP: three hidden layers of 100."""
    return MLP(in_features=_numel(in_shape), hidden=(100, 100, 100), num_classes=num_classes, input_scale=input_scale)


@register_model("mlp_disent")
def mlp_disent(*, num_classes: int, in_shape: Sequence[int], input_scale: float = 1.0 / 255.0) -> MLP:
    """DisEnt's Colored MNIST MLP: hidden 100, 100, 16 (16-d features)."""
    return MLP(in_features=_numel(in_shape), hidden=(100, 100, 16), num_classes=num_classes, input_scale=input_scale)


@register_model("mlp")
def mlp(
    *,
    num_classes: int,
    in_shape: Sequence[int],
    hidden: Sequence[int] = (100, 100),
    input_scale: float = 1.0,
) -> MLP:
    """A configurable MLP (textbook [0, 1] input scaling by default)."""
    return MLP(in_features=_numel(in_shape), hidden=tuple(hidden), num_classes=num_classes, input_scale=input_scale)
