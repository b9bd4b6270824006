"""Wrap any ``nn.Module`` into debiaskit's model contract: ``features(x)``, ``head``, ``feature_dim``.

Methods that only need logits (``vanilla``, ``lff``, ``groupdro``, ...) call ``model(x)``; those that need the
penultimate features call ``model.features(x)`` (DisEnt's two encoders, the adversary of ``adversarial`` on the
``features`` tap) or replace ``model.head`` (DisEnt). :func:`adapt_model` makes any classifier fit, in this
order (``docs/api.md``, "Bring your own model"):

1. **the protocol** — a module with ``features(x) -> (B, D)``, a ``head`` module and an int ``feature_dim``
   (and ``forward(x) == head(features(x))``) is used as it is (:func:`follows_contract`);
2. **a named layer** — ``feature_layer="avgpool"`` (any name of ``model.named_modules()``): its output is
   captured with a forward hook and the rest of the network is skipped; 4-D maps are pooled (``pool``:
   ``avg`` global average, ``max``, or ``flatten``), other outputs flattened. The head is the last
   ``nn.Linear`` and must map those features to the model's output;
3. **the last ``nn.Linear``** (default) — its input are the features and it is the head.

Both 2 and 3 are checked with one dry run on random inputs (eval mode): ``head(features(x))`` must equal the
model's own output, so a wrong split is an error at construction, never a silently different network. The
wrapped network is :class:`AdaptedModel` (``net`` = your module with its head slot emptied, ``head`` = the
head); :meth:`AdaptedModel.export` gives your module back with the trained weights.

When ``num_classes`` differs from the head's outputs (an ImageNet backbone on a 2-class task), the head is
replaced by a freshly initialised ``nn.Linear(feature_dim, num_classes)``. ``normalize`` (per-channel
``mean`` / ``std``) is applied to the inputs inside the model, for backbones that expect their training
statistics (:mod:`debiaskit.models.backbones`).

Models named ``python:<module>:<qualname>`` (what :func:`debiaskit.fit` records for your class) are rebuilt in
a new process by importing the class, calling it with the recorded constructor arguments and adapting it the
same way; the run's weights are then loaded into it.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import hashlib
import json
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError
from debiaskit.fingerprint import fingerprint_arrays
from debiaskit.models.registry import MODELS

__all__ = [
    "AdaptedModel",
    "ModelContract",
    "POOLS",
    "adapt_model",
    "follows_contract",
    "import_path",
    "init_kwargs_of",
    "python_model_factory",
    "register_live_model",
    "weights_fingerprint",
]

POOLS = ("avg", "max", "flatten")
PREFIX = "python"


@runtime_checkable
class ModelContract(Protocol):
    """What every debiaskit model provides (``docs/api.md``).

    ``feature_dim``: size of the penultimate features; ``features(x)``: ``(B, feature_dim)`` features of a float
    batch ``(B, C, H, W)``; ``head``: the module mapping features to logits, so that
    ``model(x) == model.head(model.features(x))``. Methods may replace ``head``.
    """

    feature_dim: int
    head: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def follows_contract(model: nn.Module) -> bool:
    """Whether ``model`` already implements the protocol (a ``features`` *method*, a ``head`` module, an int ``feature_dim``).

    A ``features`` sub-module (torchvision's VGG / DenseNet name their convolutional trunk so) does not count.
    """
    feats = getattr(type(model), "features", None)
    return (
        callable(feats) and not isinstance(getattr(model, "features", None), nn.Module)
        and isinstance(getattr(model, "head", None), nn.Module)
        and isinstance(getattr(model, "feature_dim", None), int) and not isinstance(model.feature_dim, bool)
    )


class _Captured(Exception):
    """Raised by the feature hook to stop the forward pass once the features exist."""

    def __init__(self, value: Any) -> None:
        super().__init__("features captured")
        self.value = value


def _raise_captured(module: nn.Module, inputs: Any, output: Any) -> None:
    raise _Captured(output[0] if isinstance(output, (tuple, list)) else output)


def _pool(x: torch.Tensor, pool: str) -> torch.Tensor:
    if x.dim() == 4 and pool == "avg":
        return x.mean(dim=(2, 3))
    if x.dim() == 4 and pool == "max":
        return x.amax(dim=(2, 3))
    return x.reshape(x.shape[0], -1)


def _set_submodule(root: nn.Module, path: str, value: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, value)


class AdaptedModel(nn.Module):
    """A user network split into ``features(x)`` and ``head`` (see the module docstring).

    Attributes:
        net: the wrapped network, whose head slot (``head_path``) holds an ``nn.Identity``.
        head: the classifier head (an ``nn.Linear`` unless a method replaced it).
        feature_dim: size of the features.
        head_path: where the head sits inside ``net`` (``fc``, ``classifier.6``, ...).
        feature_layer: the named layer the features are taken from, or ``None`` (the head's input).
        pool: pooling of a 4-D ``feature_layer`` output.
    """

    def __init__(self, net: nn.Module, head: nn.Module, *, head_path: str, feature_dim: int,
                 feature_layer: str | None = None, pool: str = "avg",
                 normalize: dict[str, Sequence[float]] | None = None) -> None:
        super().__init__()
        self.net = net
        self.head = head
        self.head_path = head_path
        self.feature_dim = int(feature_dim)
        self.feature_layer = feature_layer
        self.pool = pool
        if normalize:
            mean = torch.as_tensor(normalize["mean"], dtype=torch.float32).view(1, -1, 1, 1)
            std = torch.as_tensor(normalize["std"], dtype=torch.float32).view(1, -1, 1, 1)
            self.register_buffer("input_mean", mean)
            self.register_buffer("input_std", std)
        else:
            self.input_mean = None
            self.input_std = None

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mean is None:
            return x
        return (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, feature_dim)`` features: the head's input, or the pooled output of ``feature_layer``."""
        x = self.normalize_input(x)
        if self.feature_layer is None:
            return self.net(x).reshape(x.shape[0], -1)
        handle = self.net.get_submodule(self.feature_layer).register_forward_hook(_raise_captured)
        try:
            self.net(x)
        except _Captured as c:
            return _pool(c.value, self.pool)
        finally:
            handle.remove()
        raise DebiaskitError(f"layer {self.feature_layer!r} did not run in the forward pass of {type(self.net).__name__}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def export(self) -> nn.Module:
        """A copy of the wrapped network with its head put back (your module, with these weights)."""
        net = copy.deepcopy(self.net)
        _set_submodule(net, self.head_path, copy.deepcopy(self.head))
        return net


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    found = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and name:
            found = (name, m)
    return found


def _dry_input(model: nn.Module, in_shape: Sequence[int]) -> torch.Tensor:
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, *[int(s) for s in in_shape], generator=g).to(device)


def adapt_model(model: nn.Module, *, in_shape: Sequence[int], num_classes: int | None = None,
                feature_layer: str | None = None, pool: str = "avg",
                normalize: dict[str, Sequence[float]] | None = None) -> nn.Module:
    """Return ``model`` in the features/head contract (the module itself when it already follows it).

    Args:
        model: any classifier ``nn.Module`` taking float images ``(B, C, H, W)`` and returning ``(B, K)`` logits.
            It is modified (its head slot emptied): pass a copy to keep the original.
        in_shape: ``(C, H, W)`` of the inputs (for the dry run that checks the split).
        num_classes: replace the head by a new ``nn.Linear`` when its output size differs.
        feature_layer: name of the layer whose (pooled) output are the features; default: the input of the
            last ``nn.Linear``.
        pool: ``avg`` | ``max`` | ``flatten`` for a 4-D ``feature_layer`` output.
        normalize: ``{"mean": [...], "std": [...]}`` applied to the inputs inside the model.

    Raises:
        DebiaskitError: the model has no ``nn.Linear`` head, the named layer does not exist, or the head applied
            to the features does not reproduce the model's output.
    """
    if not isinstance(model, nn.Module):
        raise DebiaskitError(f"a model must be a torch.nn.Module, got {type(model).__name__}")
    if pool not in POOLS:
        raise DebiaskitError(f"unknown pool {pool!r}; choose from {', '.join(POOLS)}")
    cls = type(model).__name__
    if feature_layer is None and normalize is None and follows_contract(model):
        head = model.head
        if num_classes is not None and isinstance(head, nn.Linear) and head.out_features != num_classes:
            p = next(iter(head.parameters()))
            model.head = nn.Linear(model.feature_dim, num_classes).to(p.device)
        return model
    last = _last_linear(model)
    if last is None:
        raise DebiaskitError(
            f"model {cls} has no nn.Linear classifier head; give it features(x), head and feature_dim "
            f"(see docs/api.md) or name the layer whose output feeds the head (feature_layer=...)"
        )
    head_path, head = last
    modules = dict(model.named_modules())
    if feature_layer is not None and (feature_layer not in modules or not feature_layer):
        names = [n for n in modules if n and "." not in n]
        raise DebiaskitError(f"model {cls} has no layer {feature_layer!r}; top-level layers: {', '.join(names)}")
    x = _dry_input(model, in_shape)
    captured: dict[str, torch.Tensor] = {}

    def grab_head_input(module: nn.Module, inputs: Any) -> None:
        captured["head_in"] = inputs[0]

    def grab_layer(module: nn.Module, inputs: Any, output: Any) -> None:
        captured["layer"] = output[0] if isinstance(output, (tuple, list)) else output

    handles = [head.register_forward_pre_hook(grab_head_input)]
    if feature_layer is not None:
        handles.append(modules[feature_layer].register_forward_hook(grab_layer))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                out = model(x)
            except Exception as e:  # noqa: BLE001 - the user's network rejecting the data shape is a user error
                raise DebiaskitError(
                    f"model {cls} cannot run on inputs of shape {tuple(int(s) for s in in_shape)}: "
                    f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
                ) from None
            if not isinstance(out, torch.Tensor) or out.dim() != 2:
                raise DebiaskitError(
                    f"model {cls} must return a (batch, classes) tensor of logits, got "
                    f"{type(out).__name__}{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}"
                )
            if "head_in" not in captured:
                raise DebiaskitError(f"the last nn.Linear of {cls} ({head_path}) is not used in its forward pass; "
                                     "name the feature layer (feature_layer=...)")
            if feature_layer is None:
                feats = captured["head_in"].reshape(x.shape[0], -1)
                where = f"the input of its last nn.Linear ({head_path})"
            else:
                feats = _pool(captured["layer"], pool)
                where = f"the {pool}-pooled output of {feature_layer!r} ({feats.shape[1]} features)"
            ok = feats.shape[1] == head.in_features and torch.allclose(head(feats), out, rtol=1e-4, atol=1e-5)
            if not ok:
                raise DebiaskitError(
                    f"model {cls}: {where} passed through {head_path} does not give the model's output; the features "
                    f"must be what the final nn.Linear receives (name that layer with feature_layer=..., or give the "
                    f"model features()/head/feature_dim, docs/api.md)"
                )
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    feature_dim = int(feats.shape[1])
    _set_submodule(model, head_path, nn.Identity())
    if num_classes is not None and head.out_features != num_classes:
        p = next(iter(head.parameters()))
        head = nn.Linear(feature_dim, num_classes).to(device=p.device, dtype=p.dtype)
    return AdaptedModel(model, head, head_path=head_path, feature_dim=feature_dim, feature_layer=feature_layer,
                        pool=pool, normalize=normalize)


# -- user classes across processes ------------------------------------------------------------------------
def import_path(obj: Any) -> str:
    """``module:qualname`` of a class or function (what ``python:`` model names hold)."""
    return f"{obj.__module__}:{obj.__qualname__}"


def importable(obj: Any) -> bool:
    """Whether another process can import ``obj`` by its :func:`import_path`.

    False for classes of a script or notebook (``__main__``), of code run with ``exec``, and for classes defined
    inside functions.
    """
    import sys

    module, qual = getattr(obj, "__module__", "__main__"), getattr(obj, "__qualname__", "<")
    mod = sys.modules.get(module)
    if module == "__main__" or "<locals>" in qual or mod is None or getattr(mod, "__spec__", None) is None:
        return False
    target: Any = mod
    for part in qual.split("."):
        target = getattr(target, part, None)
    return target is obj


def _import_object(path: str) -> Any:
    module, _, qual = path.partition(":")
    if not module or not qual:
        raise DebiaskitError(f"a python model must be named python:<module>:<class or function>, got python:{path}")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise DebiaskitError(
            f"model class {path} cannot be imported ({type(e).__name__}: {e}); install the package that provides "
            f"{module.split('.')[0]!r} or add it to PYTHONPATH"
        ) from None
    for part in qual.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise DebiaskitError(f"module {module!r} has no {qual!r} (model python:{path})")
    return obj


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def init_kwargs_of(model: nn.Module) -> dict[str, Any] | None:
    """The constructor arguments that rebuild ``model``'s architecture, or ``None`` when they cannot be found.

    ``model.debiaskit_init_kwargs()`` (or a dict attribute of that name) wins; otherwise each ``__init__``
    parameter is read from the attribute of the same name (the scikit-learn ``get_params`` convention),
    parameters with defaults may be missing. Only JSON values are accepted. The caller checks the result by
    building the class again and comparing parameter shapes.
    """
    own = getattr(model, "debiaskit_init_kwargs", None)
    if callable(own):
        own = own()
    if isinstance(own, dict):
        return dict(own) if _jsonable(own) else None
    try:
        sig = inspect.signature(type(model).__init__)
    except (TypeError, ValueError):
        return None
    out: dict[str, Any] = {}
    for i, (name, p) in enumerate(sig.parameters.items()):
        if i == 0 or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in model.__dict__ and _jsonable(model.__dict__[name]):
            out[name] = model.__dict__[name]
        elif p.default is p.empty:
            return None
    return out


def weights_fingerprint(model: nn.Module) -> str:
    """16 hex digits over a module's state dict (names, shapes, dtypes and values)."""
    state = model.state_dict()
    keys = sorted(state)
    h = hashlib.sha256(json.dumps(keys).encode())
    h.update(fingerprint_arrays(*[state[k] for k in keys]).encode())
    return h.hexdigest()[:16]


#: adapted modules handed to :func:`debiaskit.fit` in this process, by (model name, weights fingerprint)
_LIVE: dict[tuple[str, str], nn.Module] = {}


def register_live_model(name: str, weights: str, module: nn.Module) -> None:
    """Make ``python:`` model ``name`` with ``weights`` build deep copies of ``module`` in this process."""
    _LIVE[(name, weights)] = module


def python_model_factory(name: str) -> Any:
    """The factory of a ``python:<module>:<qualname>`` model name (registry resolver)."""
    path = name.split(":", 1)[1]

    def factory(*, num_classes: int, in_shape: Sequence[int], init: dict[str, Any] | None = None,
                feature_layer: str | None = None, pool: str = "avg", weights: str | None = None) -> nn.Module:
        live = _LIVE.get((name, weights or ""))
        if live is not None:
            model = copy.deepcopy(live)
            if isinstance(model, AdaptedModel) or follows_contract(model):
                return model
        target = _import_object(path)
        if init is None:
            raise DebiaskitError(
                f"model {name}: its constructor arguments were not recorded, so a new process cannot rebuild it; "
                "give the class a debiaskit_init_kwargs() method or attributes named like its __init__ parameters, "
                "or register it as a plugin model (docs/api.md)"
            )
        try:
            built = target(**init)
        except TypeError as e:
            raise DebiaskitError(f"model {name}: cannot be built with {init}: {e}") from None
        if not isinstance(built, nn.Module):
            raise DebiaskitError(f"model {name} did not build a torch.nn.Module (got {type(built).__name__})")
        return adapt_model(built, in_shape=in_shape, num_classes=num_classes, feature_layer=feature_layer, pool=pool)

    factory.__doc__ = f"user model {path} (rebuilt from its recorded constructor arguments)"
    return factory


MODELS.add_resolver(PREFIX, python_model_factory)
