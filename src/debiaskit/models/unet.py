"""A small U-Net that predicts a one-channel multiplicative mask M(x) ∈ (0, 1) (Wang et al. ICCV 2019, adv@image).

Written from the paper's description of the adv@image mask network and our reading of the authors' code
(no code copied; see ``docs/methods_adversarial.md``):

* encoder: ``depth`` stride-2 4×4 convolutions (``ngf``, 2·ngf, 4·ngf, … channels, capped at 8·ngf), each
  followed by BatchNorm (not the first) and LeakyReLU(0.2);
* decoder: bilinear ×2 up-sampling (to the skip's exact size, so any input size works) → reflection pad →
  4×4 convolution → BatchNorm → ReLU, concatenated with the encoder map of the same resolution;
* output: a 3×3 convolution to **1 channel** at the input resolution, then a sigmoid (clamped to
  [1e-6, 1 − 1e-6] so the mask never reaches 0 or 1 exactly in float32).

The last convolution's bias is initialised to ``init_bias`` (default 3.0, so the mask starts at
sigmoid(3) ≈ 0.95 everywhere, and its weights are scaled by ``init_weight_scale`` (default 0.1) so the
spatial variation at initialisation is small. The paper draws the bias from N(3, 1) (one scalar for the
single output channel, i.e. a random start between ≈0.88 and ≈0.98); we use the deterministic mean.
The paper uses ngf=64 and 5 down-samplings for 224 px; the defaults here (ngf=16, depth=3) suit 28–64 px.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from debiaskit.errors import DebiaskitError

__all__ = ["MaskUNet", "EPS"]

EPS = 1e-6


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        # reflection padding (paper); replicate for maps of ≤ 2 pixels, where reflection is undefined
        x = F.pad(x, (1, 2, 1, 2), mode="reflect" if min(size) > 2 else "replicate")
        return F.relu(self.bn(self.conv(x)))


class MaskUNet(nn.Module):
    """U-Net mask network: ``forward(x)`` returns ``(B, 1, H, W)`` values in (0, 1)."""

    def __init__(self, in_channels: int, *, ngf: int = 16, depth: int = 3, init_bias: float = 3.0,
                 init_weight_scale: float = 0.1) -> None:
        super().__init__()
        if int(depth) < 1 or int(ngf) < 1:
            raise DebiaskitError(f"U-Net needs depth >= 1 and ngf >= 1, got depth={depth}, ngf={ngf}")
        widths = [min(int(ngf) * 2**i, 8 * int(ngf)) for i in range(int(depth))]
        self.down = nn.ModuleList()
        cin = int(in_channels)
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(cin, w, 4, stride=2, padding=1, bias=i == 0)]
            if i > 0:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
            cin = w
        # decoder: from the deepest map back to depth-1 skips, then to the input resolution
        self.up = nn.ModuleList()
        for i in range(int(depth) - 1, 0, -1):
            cout = widths[i - 1]
            self.up.append(_Up(cin, cout))
            cin = cout + widths[i - 1]
        self.final_up = _Up(cin, int(ngf))
        self.out = nn.Conv2d(int(ngf) + int(in_channels), 1, 3, padding=1)
        with torch.no_grad():
            self.out.weight.mul_(float(init_weight_scale))
            self.out.bias.fill_(float(init_bias))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for d in self.down:
            h = d(h)
            skips.append(h)
        for j, up in enumerate(self.up):
            skip = skips[-2 - j]
            h = torch.cat([up(h, skip.shape[-2:]), skip], 1)
        h = torch.cat([self.final_up(h, x.shape[-2:]), x], 1)
        return self.out(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # clamp: float32 sigmoid rounds to exactly 0 / 1 beyond |logit| ≈ 17; keep the mask strictly inside (0, 1)
        return torch.sigmoid(self.logits(x)).clamp(EPS, 1.0 - EPS)
