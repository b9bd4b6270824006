"""The generator protocol and adapters (our GAN checkpoint, a user's TorchScript / nn.Module file, torch.hub).

A generator is anything with

* ``latent_dim: int`` — z ~ N(0, I_latent_dim);
* ``output_range: tuple[float, float]`` — the declared value range of its images, (−1, 1) or (0, 1);
* ``generate(z: Tensor (n, latent_dim)) -> Tensor (n, C, H, W)`` — float images in that range.

:class:`ModuleGenerator` wraps any ``nn.Module`` z → image and adds batching, optional resizing to the
classifier's resolution (``out_size``; Ramaswamy et al. also pass every image through a 64×64 resize,
``docs/latent_aug.md`` detail 7) and conversion to uint8 (how generated images are cached and fed to
classifiers, so the cached arrays are exactly what the classifiers saw).

:func:`load_generator` accepts

* a checkpoint of ``debiaskit generative train-gan`` (the EMA generator is used);
* a TorchScript file (``torch.jit.save``) — give ``latent_dim`` and ``output_range``;
* ``python:MODULE:FACTORY`` — your own generator class: ``FACTORY()`` (importable from your environment,
  e.g. a plugin package) returns the ``nn.Module``, which may load its own weights. A pickled ``nn.Module``
  file (``torch.save(model)``) is refused: unpickling runs code from the file. Save it as TorchScript
  (``torch.jit.save(torch.jit.script(model), path)``) or expose it through ``python:``;
* ``hub:REPO:ENTRY[?key=value&...]`` — a torch.hub entry point, e.g. the PGAN CelebA model used by the
  paper (needs internet; not exercised by the tests)::

      hub:facebookresearch/pytorch_GAN_zoo:hub:PGAN?model_name=celeba&pretrained=True&useGPU=False

  The GAN-zoo models expose ``test(noise)`` (images in [−1, 1]) and ``buildNoiseData``; the adapter calls
  ``test`` when the hub object is not an ``nn.Module`` with a usable ``forward``. latent_dim is read from
  ``config.noiseVectorDim`` / ``config.latentVectorDim`` when present, else give it explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from debiaskit.errors import DebiaskitError
from debiaskit.generative.gan import load_gan_generator

__all__ = ["Generator", "ModuleGenerator", "load_generator", "check_output_shape", "to_uint8"]

_RANGES = {(-1.0, 1.0), (0.0, 1.0)}


@runtime_checkable
class Generator(Protocol):
    latent_dim: int
    output_range: tuple[float, float]

    def generate(self, z: torch.Tensor) -> torch.Tensor: ...


def to_uint8(images: torch.Tensor, output_range: tuple[float, float]) -> torch.Tensor:
    """Float images in ``output_range`` → uint8 [0, 255] (clamped, rounded)."""
    lo, hi = output_range
    return ((images.float() - lo) / (hi - lo)).clamp_(0, 1).mul_(255.0).round_().to(torch.uint8)


class ModuleGenerator:
    """Adapter: a callable z → images plus the declared ``latent_dim`` and ``output_range``."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        latent_dim: int,
        output_range: tuple[float, float] = (-1.0, 1.0),
        out_size: int | None = None,
        batch_size: int = 256,
        name: str = "generator",
    ) -> None:
        rng = (float(output_range[0]), float(output_range[1]))
        if rng not in _RANGES:
            raise DebiaskitError(f"generator output_range must be (-1, 1) or (0, 1), got {output_range}")
        if int(latent_dim) < 1:
            raise DebiaskitError(f"generator latent_dim must be positive, got {latent_dim}")
        self.fn = fn
        self.latent_dim = int(latent_dim)
        self.output_range = rng
        self.out_size = out_size
        self.batch_size = int(batch_size)
        self.name = name

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images (n, C, H, W) in ``output_range`` (resized to ``out_size`` when set), computed in batches."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise DebiaskitError(f"{self.name}: z must have shape (n, {self.latent_dim}), got {tuple(z.shape)}")
        outs = []
        for s in range(0, len(z), self.batch_size):
            x = self.fn(z[s : s + self.batch_size]).float()
            if x.dim() != 4:
                raise DebiaskitError(f"{self.name}: generator returned shape {tuple(x.shape)}, expected (n, C, H, W)")
            if self.out_size and (x.shape[-1] != self.out_size or x.shape[-2] != self.out_size):
                x = F.interpolate(x, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False,
                                  antialias=x.shape[-1] > self.out_size)
            outs.append(x.cpu())
        return torch.cat(outs) if outs else torch.zeros(0)

    def generate_uint8(self, z: torch.Tensor) -> torch.Tensor:
        return to_uint8(self.generate(z), self.output_range)

    def output_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one generated image (one forward pass on z = 0)."""
        return tuple(int(s) for s in self.generate(torch.zeros(1, self.latent_dim)).shape[1:])  # type: ignore[return-value]


def check_output_shape(generator: Any, expected: tuple[int, int, int], *, what: str = "the classifier input") -> None:
    """Raise a clear error when the generator's image shape differs from ``expected`` (C, H, W)."""
    got = generator.output_shape() if hasattr(generator, "output_shape") else tuple(
        generator.generate(torch.zeros(1, generator.latent_dim)).shape[1:]
    )
    if tuple(got) != tuple(expected):
        raise DebiaskitError(
            f"generator output shape {tuple(got)} (C, H, W) does not match {what} {tuple(expected)}; "
            "train the GAN at that size or resize its output (--resize / out_size)"
        )


def _parse_hub(spec: str) -> tuple[str, str, dict[str, Any]]:
    body = spec[len("hub:") :]
    query: dict[str, Any] = {}
    if "?" in body:
        body, q = body.split("?", 1)
        for item in q.split("&"):
            if item:
                k, _, v = item.partition("=")
                query[k] = {"True": True, "False": False}.get(v, int(v) if v.isdigit() else v)
    repo, sep, entry = body.rpartition(":")
    if not sep or not repo or not entry:
        raise DebiaskitError(f"hub generator spec must be hub:REPO:ENTRY[?k=v&...], got {spec!r}")
    return repo, entry, query


def load_generator(
    spec: str | Path,
    *,
    latent_dim: int | None = None,
    output_range: tuple[float, float] | None = None,
    out_size: int | None = None,
    batch_size: int = 256,
) -> ModuleGenerator:
    """Load a generator from a debiaskit GAN checkpoint, a TorchScript file, ``python:MODULE:FACTORY`` or torch.hub.

    Nothing is unpickled: checkpoints load with ``torch.load(weights_only=True)``, TorchScript archives hold no
    pickled Python objects, and ``python:`` runs only code you installed and named.
    """
    s = str(spec)
    if s.startswith("python:"):
        return _module_generator(_import_factory(s)(), s, latent_dim=latent_dim, output_range=output_range,
                                 out_size=out_size, batch_size=batch_size)
    if s.startswith("hub:"):
        repo, entry, kw = _parse_hub(s)
        model = torch.hub.load(repo, entry, **kw)  # pragma: no cover - needs internet
        cfg = getattr(model, "config", None)  # pragma: no cover
        d = latent_dim or getattr(cfg, "noiseVectorDim", None) or getattr(cfg, "latentVectorDim", None)  # pragma: no cover
        if d is None:  # pragma: no cover
            raise DebiaskitError(f"cannot tell the latent dimension of {s}; pass latent_dim")
        fn = model.test if hasattr(model, "test") else model  # pragma: no cover
        return ModuleGenerator(fn, latent_dim=int(d), output_range=output_range or (-1.0, 1.0), out_size=out_size,
                               batch_size=batch_size, name=s)  # pragma: no cover
    path = Path(s)
    if not path.is_file():
        raise DebiaskitError(f"generator file {path} not found")
    # 1) debiaskit GAN checkpoint (plain tensors/dicts: safe to load with weights_only)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a plain checkpoint
        obj = None
    if isinstance(obj, dict) and obj.get("kind") == "debiaskit-gan":
        g = load_gan_generator(path)
        return ModuleGenerator(g, latent_dim=g.latent_dim, output_range=g.output_range, out_size=out_size,
                               batch_size=batch_size, name=str(path))
    # 2) TorchScript archive
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception:  # noqa: BLE001 - not a TorchScript archive
        scripted = None
    if scripted is not None:
        return _module_generator(scripted, f"{path} (TorchScript)", latent_dim=latent_dim, output_range=output_range,
                                 out_size=out_size, batch_size=batch_size)
    raise DebiaskitError(
        f"{path} is neither a debiaskit GAN checkpoint nor a TorchScript file. Pickled nn.Module files are not "
        "loaded (unpickling runs code from the file): save the generator with "
        "torch.jit.save(torch.jit.script(model), PATH), or pass python:MODULE:FACTORY"
    )


def _import_factory(spec: str) -> Any:
    """``python:pkg.mod:factory`` → the callable (imported from the user's environment)."""
    import importlib

    body = spec.removeprefix("python:")
    mod_name, sep, attr = body.partition(":")
    if not sep or not mod_name or not attr:
        raise DebiaskitError(f"python generator spec must be python:MODULE:FACTORY, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise DebiaskitError(f"cannot import the generator factory {spec!r}: {e}") from None
    if not callable(factory):
        raise DebiaskitError(f"{spec!r} is not callable")
    return factory


def _module_generator(module: Any, name: str, *, latent_dim: int | None, output_range: tuple[float, float] | None,
                      out_size: int | None, batch_size: int) -> ModuleGenerator:
    """Wrap a module, reading ``latent_dim`` / ``output_range`` from it unless given."""
    if not isinstance(module, torch.nn.Module):
        raise DebiaskitError(f"{name} gives a {type(module).__name__}, not an nn.Module generator")
    module.eval()
    d = latent_dim if latent_dim is not None else getattr(module, "latent_dim", None)
    r = output_range if output_range is not None else getattr(module, "output_range", None)
    if d is None or r is None:
        raise DebiaskitError(f"{name}: declare the generator's latent_dim and output_range")
    return ModuleGenerator(module, latent_dim=int(d), output_range=tuple(r), out_size=out_size,
                           batch_size=batch_size, name=name)
