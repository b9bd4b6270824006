"""A small DCGAN-style GAN (28–64 px) that trains on CPU: hinge loss, spectral norm, EMA generator.

Ramaswamy et al. (CVPR 2021) use a pre-trained Progressive GAN (128×128, z ∈ R^512). That model
cannot be downloaded here, and training one needs GPUs, so debiaskit ships this small substitute; any
other generator can be plugged in through :mod:`debiaskit.generative.protocol`.

Architecture (Radford et al. 2016 "DCGAN" layout; Miyato et al. 2018 "SNGAN" discriminator):

* ``Generator``: z ~ N(0, I_d) → Linear → (C0, s0, s0) → k × [ConvTranspose 4×4 stride 2 → BN → ReLU]
  → Conv 3×3 → tanh, output in **[−1, 1]**. ``s0 = size / 2^k`` with 4 ≤ s0 ≤ 7 (64 → 4·2⁴, 32 → 4·2³,
  28 → 7·2²); channels halve at each up-sampling, down to ``width``.
* ``Discriminator``: k × [Conv 4×4 stride 2 (spectral norm) → LeakyReLU 0.2] → Linear (spectral norm).
  Optional ``minibatch_std`` (Karras et al., ICLR 2018, "Progressive Growing of GANs", Sec. 3): before the
  linear layer, the standard deviation of every feature over the batch, averaged to one number, is appended
  as an extra constant feature map, so D can tell a batch that lacks variety (e.g. every digit in one
  colour) from a real one. Off by default; on in ``benchmarks/latent_aug_cmnist.py``, where without it the
  generator kept only one of the two colours.

Loss: the hinge loss (Lim & Ye 2017; Miyato et al. 2018) L_D = E[relu(1 − D(x))] + E[relu(1 + D(G(z)))],
L_G = −E[D(G(z))], with spectral normalisation on every discriminator layer. Why hinge + SN rather than
non-saturating + R1: both are stable with one D step per G step, but R1 needs a second backward pass
through D on real images (≈ +50 % D cost), which matters on 2 CPU cores; SN costs one power iteration per
layer. Adam(lr 2e-4, betas (0.5, 0.999)) as in SNGAN's DCGAN setting.

EMA: a copy of G whose weights (and BN running statistics) follow θ_ema ← β θ_ema + (1 − β) θ with a
warm-up β_t = min(β, (1 + t) / (10 + t)); samples and the exported generator use the EMA weights.

Training is resumable: every ``ckpt_every`` steps (and at the end or when the wall-clock budget runs
out) G, D, G_ema, both optimisers, the step and the RNG state are written atomically to
``<out>/checkpoint.pt``; re-running with the same ``out`` continues from there, and the result is
identical to an uninterrupted run (same data order and noise; CPU, same thread count). Sample grids of
G_ema on a fixed z are written to ``<out>/samples/step_XXXXXX.png``; losses go to ``<out>/log.jsonl``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from debiaskit import __version__
from debiaskit.errors import DebiaskitError
from debiaskit.io import append_jsonl, torch_save, write_bytes, write_json

__all__ = [
    "GANConfig",
    "Generator",
    "Discriminator",
    "train_gan",
    "load_gan_generator",
    "save_image_grid",
    "CHECKPOINT_KIND",
]

CHECKPOINT_KIND = "debiaskit-gan"


def _n_up(size: int) -> int:
    """Number of 2× up-samplings so that the start size s0 = size / 2^k lies in [4, 7]."""
    if not 16 <= size <= 128:
        raise DebiaskitError(f"GAN image size must be in [16, 128] (e.g. 28, 32, 64), got {size}")
    k = 0
    while size % (2 ** (k + 1)) == 0 and size // 2 ** (k + 1) >= 4:
        k += 1
    if size // 2**k > 7:
        raise DebiaskitError(f"GAN image size {size} is not s0·2^k with 4 ≤ s0 ≤ 7 (use e.g. 28, 32, 48, 64)")
    return k


class Generator(nn.Module):
    """DCGAN generator z (B, latent_dim) → images (B, C, size, size) in [−1, 1]."""

    output_range = (-1.0, 1.0)

    def __init__(self, *, latent_dim: int = 64, size: int = 32, channels: int = 3, width: int = 32) -> None:
        super().__init__()
        self.latent_dim, self.size, self.channels = int(latent_dim), int(size), int(channels)
        k = _n_up(size)
        self.s0 = size // 2**k
        chans = [width * 2 ** (k - i) for i in range(k + 1)]  # e.g. 256,128,64,32 for k=3
        self.fc = nn.Sequential(nn.Linear(latent_dim, chans[0] * self.s0 * self.s0, bias=False))
        self.bn0 = nn.BatchNorm2d(chans[0])
        ups = []
        for i in range(k):
            ups += [
                nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.ups = nn.Sequential(*ups)
        self.out = nn.Conv2d(chans[-1], channels, 3, 1, 1)
        self._c0 = chans[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self._c0, self.s0, self.s0)
        h = F.relu(self.bn0(h))
        return torch.tanh(self.out(self.ups(h)))


class Discriminator(nn.Module):
    """SNGAN-style discriminator: strided 4×4 convs with spectral norm, LeakyReLU 0.2, linear score."""

    def __init__(self, *, size: int = 32, channels: int = 3, width: int = 32, minibatch_std: bool = False) -> None:
        super().__init__()
        k = _n_up(size)
        s0 = size // 2**k
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(k):
            c_out = width * 2**i
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.minibatch_std = bool(minibatch_std)
        self.fc = spectral_norm(nn.Linear((c_in + int(self.minibatch_std)) * s0 * s0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        if self.minibatch_std:  # one extra map: the batch standard deviation of the features, averaged
            s = h.std(0, unbiased=False).mean()
            h = torch.cat([h, s.expand(h.shape[0], 1, h.shape[2], h.shape[3])], 1)
        return self.fc(h.flatten(1)).squeeze(1)


@dataclass
class GANConfig:
    """Hyper-parameters of :func:`train_gan` (all recorded in the checkpoint and ``config.json``)."""

    latent_dim: int = 64
    size: int = 32
    width_g: int = 32
    width_d: int = 32
    batch_size: int = 64
    steps: int = 3000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    flip: bool = True
    minibatch_std: bool = False
    seed: int = 0
    sample_every: int = 250
    ckpt_every: int = 100
    max_minutes: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _build(cfg: GANConfig, channels: int) -> tuple[Generator, Discriminator, Generator]:
    g = Generator(latent_dim=cfg.latent_dim, size=cfg.size, channels=channels, width=cfg.width_g)
    d = Discriminator(size=cfg.size, channels=channels, width=cfg.width_d, minibatch_std=cfg.minibatch_std)
    g_ema = Generator(latent_dim=cfg.latent_dim, size=cfg.size, channels=channels, width=cfg.width_g)
    g_ema.load_state_dict(g.state_dict())
    g_ema.eval().requires_grad_(False)
    return g, d, g_ema


@torch.no_grad()
def _ema_update(g_ema: nn.Module, g: nn.Module, beta: float) -> None:
    for pe, p in zip(g_ema.parameters(), g.parameters()):
        pe.lerp_(p, 1.0 - beta)
    for be, b in zip(g_ema.buffers(), g.buffers()):
        be.copy_(b)


def save_image_grid(path: str | Path, images: torch.Tensor, *, nrow: int = 8, value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """Write a PNG grid of ``images`` (B, C, H, W) (float in ``value_range`` or uint8) atomically."""
    import torchvision.utils as vutils

    x = images.detach().float().cpu()
    if images.dtype == torch.uint8:
        x = x / 255.0
    else:
        lo, hi = value_range
        x = ((x - lo) / (hi - lo)).clamp(0, 1)
    buf = io.BytesIO()
    vutils.save_image(x, buf, format="png", nrow=nrow, padding=2)
    return write_bytes(path, buf.getvalue())


def _images_to_float(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) → float in [−1, 1] at ``size`` (area resampling when needed)."""
    x = images.float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.div_(127.5).sub_(1.0)


def train_gan(
    images: torch.Tensor,
    out: str | Path,
    *,
    config: GANConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the GAN on uint8 ``images`` (N, C, H, W); returns a summary dict.

    Resumes from ``<out>/checkpoint.pt`` when present (its config must match, except ``steps`` and
    ``max_minutes``, which may be raised to train longer). Stops after ``config.steps`` steps or when
    ``config.max_minutes`` of wall time in *this* call are used, always leaving a checkpoint.
    """
    cfg = config or GANConfig()
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DebiaskitError(f"train_gan expects uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if len(images) < cfg.batch_size:
        raise DebiaskitError(f"train_gan: {len(images)} images is fewer than one batch ({cfg.batch_size})")
    _n_up(cfg.size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    channels = int(images.shape[1])
    data = _images_to_float(images, cfg.size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # initialisation depends on the seed only
        g, d, g_ema = _build(cfg, channels)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
    rng = torch.Generator().manual_seed(cfg.seed)
    fixed_z = torch.randn(64, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
    step, elapsed_total = 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck.get("kind") != CHECKPOINT_KIND:
            raise DebiaskitError(f"{ckpt_path} is not a debiaskit GAN checkpoint")
        old = dict(ck["config"])
        old.setdefault("minibatch_std", False)  # checkpoints from before the option existed
        new = asdict(cfg)
        for k in ("steps", "max_minutes", "sample_every", "ckpt_every"):
            old.pop(k, None)
            new.pop(k, None)
        new["betas"] = list(new["betas"])
        old["betas"] = list(old["betas"])
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise DebiaskitError(
                f"{ckpt_path} was trained with a different configuration ({', '.join(diff)}); "
                "use another --out directory or the same options"
            )
        g.load_state_dict(ck["G"])
        d.load_state_dict(ck["D"])
        g_ema.load_state_dict(ck["G_ema"])
        opt_g.load_state_dict(ck["opt_G"])
        opt_d.load_state_dict(ck["opt_D"])
        rng.set_state(ck["rng"])
        step = int(ck["step"])
        elapsed_total = float(ck.get("elapsed_s", 0.0))
        if log:
            log(f"resumed from {ckpt_path} at step {step}")
    write_json(out / "config.json", {"config": asdict(cfg), "version": __version__, "n_images": len(images)})

    def checkpoint() -> None:
        torch_save(
            ckpt_path,
            {
                "kind": CHECKPOINT_KIND,
                "version": __version__,
                "config": asdict(cfg),
                "channels": channels,
                "step": step,
                "elapsed_s": elapsed_total + (time.perf_counter() - t0),
                "G": g.state_dict(),
                "D": d.state_dict(),
                "G_ema": g_ema.state_dict(),
                "opt_G": opt_g.state_dict(),
                "opt_D": opt_d.state_dict(),
                "rng": rng.get_state(),
                "output_range": list(Generator.output_range),
            },
        )

    t0 = time.perf_counter()
    n = len(data)
    g.train()
    d.train()
    stopped = "steps"
    while step < cfg.steps:
        if cfg.max_minutes is not None and time.perf_counter() - t0 > 60.0 * cfg.max_minutes:
            stopped = "time budget"
            break
        idx = torch.randint(0, n, (cfg.batch_size,), generator=rng)
        real = data[idx]
        if cfg.flip:
            f = torch.rand(cfg.batch_size, generator=rng) < 0.5
            real = torch.where(f[:, None, None, None], real.flip(3), real)
        z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=rng)
        # discriminator step (hinge)
        fake = g(z)
        loss_d = F.relu(1.0 - d(real)).mean() + F.relu(1.0 + d(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # generator step
        loss_g = -d(fake).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        _ema_update(g_ema, g, min(cfg.ema_decay, (1.0 + step) / (10.0 + step)))
        step += 1
        if step % 25 == 0 or step == cfg.steps:
            append_jsonl(
                out / "log.jsonl",
                {"step": step, "loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                 "elapsed_s": round(elapsed_total + time.perf_counter() - t0, 2)},
            )
        if cfg.sample_every and step % cfg.sample_every == 0:
            with torch.no_grad():
                save_image_grid(out / "samples" / f"step_{step:06d}.png", g_ema(fixed_z))
        if cfg.ckpt_every and step % cfg.ckpt_every == 0:
            checkpoint()
            if log:
                log(f"step {step}/{cfg.steps} loss_d {float(loss_d.detach()):.3f} loss_g {float(loss_g.detach()):.3f}")
    checkpoint()
    with torch.no_grad():
        save_image_grid(out / "samples" / "final.png", g_ema(fixed_z))
    summary = {
        "steps_done": step,
        "stopped_by": stopped,
        "elapsed_s": round(elapsed_total + time.perf_counter() - t0, 2),
        "checkpoint": str(ckpt_path),
        "config": asdict(cfg),
        "version": __version__,
    }
    write_json(out / "summary.json", summary)
    return summary


def load_gan_generator(path: str | Path, *, use_ema: bool = True) -> Generator:
    """The (EMA) generator of a :func:`train_gan` checkpoint, in eval mode."""
    try:
        ck = torch.load(Path(path), map_location="cpu", weights_only=True)  # tensors and plain containers only
    except Exception as e:  # noqa: BLE001
        raise DebiaskitError(f"cannot read GAN checkpoint {path}: {type(e).__name__}") from None
    if not isinstance(ck, dict) or ck.get("kind") != CHECKPOINT_KIND:
        raise DebiaskitError(f"{path} is not a debiaskit GAN checkpoint (made by 'debiaskit generative train-gan')")
    cfg = ck["config"]
    g = Generator(latent_dim=cfg["latent_dim"], size=cfg["size"], channels=ck["channels"], width=cfg["width_g"])
    g.load_state_dict(ck["G_ema" if use_ema else "G"])
    return g.eval().requires_grad_(False)
