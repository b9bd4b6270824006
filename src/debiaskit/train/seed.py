"""Seeding and determinism."""

from __future__ import annotations

import random

import numpy as np
import torch

from debiaskit.errors import DebiaskitError


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def rng_state() -> dict:
    """The global RNG states of Python, numpy and torch (and CUDA), as tensors and plain types only.

    Everything returned is a tensor, int, float, str, ``None`` or a list / tuple / dict of those, so a
    checkpoint holding it loads with ``torch.load(weights_only=True)`` (no pickled numpy objects):

    * ``python``: ``{"version": int, "state": tuple of ints, "gauss_next": float | None}``
      (:func:`random.getstate`);
    * ``numpy``: ``{"keys": uint32 key vector as an int64 tensor, "pos": int, "has_gauss": int,
      "cached_gaussian": float}`` (the legacy ``np.random`` MT19937 state);
    * ``torch``: :func:`torch.get_rng_state` (a uint8 tensor); ``cuda``: a list of those, one per GPU.
    """
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    if name != "MT19937":  # pragma: no cover - numpy's legacy global generator is always MT19937
        raise RuntimeError(f"unexpected numpy global RNG {name!r}")
    state: dict = {
        "python": {"version": int(version), "state": tuple(int(v) for v in internal),
                   "gauss_next": None if gauss_next is None else float(gauss_next)},
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states returned by :func:`rng_state` (also accepts the older native-object form)."""
    py = state["python"]
    if isinstance(py, dict):
        py = (int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"])
    random.setstate(py)
    npst = state["numpy"]
    if isinstance(npst, dict):
        keys = np.asarray(torch.as_tensor(npst["keys"]).cpu().numpy(), dtype=np.int64).astype(np.uint32)
        npst = ("MT19937", keys, int(npst["pos"]), int(npst["has_gauss"]), float(npst["cached_gaussian"]))
    np.random.set_state(npst)
    torch.set_rng_state(torch.as_tensor(state["torch"]).cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(s).cpu() for s in state["cuda"]])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DebiaskitError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise DebiaskitError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
