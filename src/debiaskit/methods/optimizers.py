"""Optimiser construction with a choice of PyTorch implementation (``train.optimizer_impl``).

PyTorch has three implementations of Adam, AdamW and SGD: the per-tensor ``for_loop`` (the default on CPU),
``foreach`` (one multi-tensor call per operation; the default on CUDA) and ``fused`` (one kernel for the
whole update, on CPU and CUDA). They run the same algorithm and differ only in floating-point rounding
(after 50 Adam steps on the LfF Colored MNIST MLP the weights of ``fused`` and ``for_loop`` differ by at most
3e-8), like a different thread count or CPU kind; ``foreach`` and ``for_loop`` are bit-identical on CPU. The
fused kernel is faster on small models: on one quiet Xeon core it cut the Colored MNIST training step by
13-18 % (vanilla 10.7 → 8.7 ms, LfF 23.3 → 20.3, DisEnt 24.5 → 20.2; ``docs/performance.md``).

``auto`` (the default) takes ``fused`` where the kernel supports the parameters (floating point, on CPU or
CUDA) and otherwise PyTorch's own default. The implementation that was used is written to ``result.json``
(``optimizer_impl``); it is not part of the run key (``debiaskit.runkey``), for the same reason the thread
count is not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from debiaskit.errors import DebiaskitError

__all__ = ["OPTIMIZER_IMPLS", "OPTIMIZERS", "build_optimizer", "load_optimizer_state", "optimizer_impl"]

#: values of ``train.optimizer_impl``
OPTIMIZER_IMPLS = ("auto", "fused", "foreach", "for_loop")
_CLASSES: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                                                    "sgd": torch.optim.SGD}
#: values of the ``optimizer`` hyper-parameter
OPTIMIZERS = tuple(_CLASSES)

_FLAGS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False}}


def _fusable(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def _construct(name: str, params: list[Any], flags: dict[str, bool], *, lr: float, weight_decay: float,
               momentum: float) -> torch.optim.Optimizer:
    extra = {"momentum": momentum} if name == "sgd" else {}
    return _CLASSES[name](params, lr=lr, weight_decay=weight_decay, **extra, **flags)


def build_optimizer(name: str, params: Iterable[Any], *, lr: float, weight_decay: float = 0.0, momentum: float = 0.0,
                    impl: str = "auto") -> torch.optim.Optimizer:
    """An ``adam`` / ``adamw`` / ``sgd`` optimiser over ``params`` with the implementation ``impl``.

    ``params`` may be tensors or parameter-group dicts. ``impl="fused"`` raises :class:`DebiaskitError` when
    the fused kernel does not support the parameters; ``auto`` falls back to PyTorch's default.
    """
    if impl not in OPTIMIZER_IMPLS:
        raise DebiaskitError(f"train.optimizer_impl must be one of {', '.join(OPTIMIZER_IMPLS)}, got {impl!r}")
    if name not in OPTIMIZERS:
        raise DebiaskitError(f"unknown optimizer {name!r}; choose {', '.join(OPTIMIZERS)}")
    params = list(params)
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    kw = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum}
    if impl == "auto":
        if _fusable(tensors):
            try:
                return _construct(name, params, _FLAGS["fused"], **kw)
            except (RuntimeError, TypeError, ValueError):  # kernel unavailable for this build or dtype
                pass
        return _construct(name, params, {}, **kw)
    if impl == "fused" and not _fusable(tensors):
        raise DebiaskitError("train.optimizer_impl=fused is not available for these parameters: the fused kernel "
                             "needs floating-point parameters on CPU or CUDA (use auto)")
    try:
        return _construct(name, params, _FLAGS[impl], **kw)
    except (RuntimeError, TypeError, ValueError) as e:
        raise DebiaskitError(f"train.optimizer_impl={impl} is not available for these parameters: {e}") from None


def optimizer_impl(opt: torch.optim.Optimizer) -> str:
    """The implementation an optimiser runs: ``fused``, ``foreach`` or ``for_loop``.

    Where neither flag is set PyTorch picks ``foreach`` when every parameter is on CUDA, else ``for_loop``.
    """
    groups = opt.param_groups
    if groups and all(g.get("fused") for g in groups):
        return "fused"
    if groups and all(g.get("foreach") for g in groups):
        return "foreach"
    if groups and all(g.get("foreach") is None and not g.get("fused") for g in groups):
        on_cuda = all(p.device.type == "cuda" for g in groups for p in g["params"])
        return "foreach" if on_cuda else "for_loop"
    return "for_loop"


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``opt.load_state_dict(state)`` keeping ``opt``'s own implementation flags.

    ``load_state_dict`` copies every parameter-group option from the saved state, ``fused`` and ``foreach``
    included, so a run resumed from a checkpoint written by another implementation would silently switch
    back to it; the state itself (step, moments, momentum buffers) is the same in all three.
    """
    flags = [{k: g.get(k) for k in ("fused", "foreach")} for g in opt.param_groups]
    opt.load_state_dict(state)
    for g, f in zip(opt.param_groups, flags):
        g.update(f)
        on_device = bool(g.get("fused")) or bool(g.get("capturable"))
        for p in g["params"]:
            st = opt.state.get(p)
            step = st.get("step") if st else None
            if isinstance(step, torch.Tensor):
                # fused (and capturable) kernels keep the step count on the parameter's device, the others on CPU
                st["step"] = step.to(device=p.device if on_device else "cpu", dtype=torch.float32)
