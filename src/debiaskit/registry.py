"""A small decorator registry shared by datasets, models and methods (timm / DomainBed style), with plugins.

Each registry holds names → entries (classes or factory functions). Entries come from three places:

* the built-in modules (imported on the first lookup, so ``import debiaskit`` stays fast);
* **plugins**: installed distributions that declare entry points in the registry's group —
  ``debiaskit.methods``, ``debiaskit.datasets`` or ``debiaskit.models`` (see ``docs/api.md``). An entry point
  ``name = "pkg.module:obj"`` registers ``obj`` under ``name``; one whose value is a module
  (``name = "pkg.module"``) is imported and registers whatever its decorators register. A plugin that fails to
  import is reported once as a warning and, when its name is looked up, as a one-line error naming it;
* code that calls ``register`` at run time (a user script, :func:`debiaskit.fit`).

Every entry remembers where it came from (:meth:`Registry.source`), so a run can record the plugin or module
that provided its method, dataset and model and a later process can say which one is missing
(:mod:`debiaskit.train.provenance`, which sits above the three registries).

Names with a registered *prefix* (``torchvision:resnet50``, ``timm:convnext_tiny``, ``python:pkg.mod:Class``)
are resolved on demand by a resolver function instead of being listed one by one.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from debiaskit.errors import DebiaskitError

T = TypeVar("T")

__all__ = ["EntrySource", "Registry", "entry_point_group"]

#: entry-point group of each registry kind
_GROUPS = {"method": "debiaskit.methods", "dataset": "debiaskit.datasets", "model": "debiaskit.models"}


def entry_point_group(kind: str) -> str:
    """The entry-point group plugins use for registry ``kind`` (``method``, ``dataset``, ``model``)."""
    return _GROUPS.get(kind, f"debiaskit.{kind}s")


@dataclass(frozen=True)
class EntrySource:
    """Where a registry entry came from.

    ``origin`` is ``builtin`` (debiaskit itself), ``plugin`` (an installed entry point), ``module`` (registered
    by importing a module at run time) or ``main`` (registered by a script, ``__main__``: not importable
    from another process). ``module`` is the module that defines the entry; ``distribution``, ``version``
    and ``entry_point`` describe the plugin that declared it.
    """

    origin: str
    module: str
    qualname: str = ""
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}

    def describe(self) -> str:
        if self.origin == "plugin":
            dist = f"{self.distribution} {self.version}".strip() if self.distribution else "an unknown distribution"
            return f"plugin {dist} ({self.entry_point})"
        if self.origin == "builtin":
            return "built-in"
        return f"{self.module}:{self.qualname}" if self.qualname else self.module


#: modules whose frames are skipped when looking for the code that calls ``register``
_REGISTRY_MODULES = frozenset({__name__, "debiaskit.models.registry", "debiaskit.methods.registry",
                               "debiaskit.data.registry"})


def _registering_module() -> str | None:
    """``__name__`` of the first caller outside the registry modules (the module doing the registering)."""
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name not in _REGISTRY_MODULES:
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return None


class Registry(Generic[T]):
    """Maps names to entries (classes or factory functions).

    >>> MODELS = Registry("model", entry_points=False)
    >>> @MODELS.register("tiny")
    ... def tiny(**kw): return kw
    >>> MODELS.list()
    ['tiny']
    """

    def __init__(self, kind: str, *, builtin_modules: list[str] | None = None, entry_points: bool = True) -> None:
        self.kind = kind
        self.group = entry_point_group(kind)
        self._entries: dict[str, T] = {}
        self._sources: dict[str, EntrySource] = {}
        # modules that register the built-in entries, imported on first lookup (keeps start-up fast and
        # avoids import cycles); the list may be extended until then
        self._builtin_modules = builtin_modules if builtin_modules is not None else []
        self._entry_points = entry_points
        self._loaded = False
        self._failed: dict[str, str] = {}  # plugin entry name -> one-line reason it could not be loaded
        self._loading: EntrySource | None = None  # the plugin being imported (entries it registers are its)
        self._resolvers: dict[str, Callable[[str], T]] = {}

    # -- loading ------------------------------------------------------------------------------------
    def load_builtin(self) -> None:
        """Import the modules that register the built-in entries, then the plugins (once)."""
        if self._loaded:
            return
        self._loaded = True
        for mod in self._builtin_modules:
            importlib.import_module(mod)
        if self._entry_points:
            self._load_plugins()

    def _load_plugins(self) -> None:
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            src = EntrySource(
                "plugin", ep.module, getattr(ep, "attr", None) or "",
                distribution=getattr(dist, "name", None), version=getattr(dist, "version", None), entry_point=ep.value,
            )
            self._loading = src
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001 - a broken plugin must not break the others
                reason = f"{type(e).__name__}: {' '.join(str(e).split())}"
                self._failed[ep.name] = f"{src.describe()} failed to load ({reason})"
                warnings.warn(f"debiaskit {self.kind} plugin {ep.name!r} from {src.describe()} failed to load: {reason}",
                              RuntimeWarning, stacklevel=2)
                continue
            finally:
                self._loading = None
            if isinstance(obj, types.ModuleType):
                continue  # a module entry point: its decorators registered what it provides
            if ep.name in self._entries:
                if self._entries[ep.name] is not obj:
                    warnings.warn(f"debiaskit {self.kind} plugin {ep.name!r} from {src.describe()} is ignored: the "
                                  f"name is already taken by {self._sources[ep.name].describe()}",
                                  RuntimeWarning, stacklevel=2)
                continue
            if self.kind == "method" and isinstance(obj, type):
                obj.name = ep.name  # type: ignore[attr-defined]  # what register_method does
            self._entries[ep.name] = obj
            self._sources[ep.name] = src

    def add_resolver(self, prefix: str, resolver: Callable[[str], T]) -> None:
        """Resolve names ``<prefix>:<rest>`` on demand with ``resolver(full_name)`` (e.g. ``torchvision:``)."""
        self._resolvers[prefix] = resolver

    # -- registering ----------------------------------------------------------------------------------
    def _source_of(self, obj: Any) -> EntrySource:
        if self._loading is not None:
            return self._loading
        qual = getattr(obj, "__qualname__", "") or ""
        # the module that *registers* the entry (importing it again registers it again), which may differ from
        # the module that defines the object
        module = _registering_module() or getattr(obj, "__module__", None) or ""
        if module == "debiaskit" or module.startswith("debiaskit."):
            return EntrySource("builtin", module, qual)
        return EntrySource("main" if module == "__main__" else "module", module, qual)

    def register(self, name: str | None = None, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator registering an entry under ``name`` (default: its ``name`` attribute or ``__name__``).

        ``replace=True`` overwrites an existing entry (temporary registrations, tests); otherwise registering
        a different object under a taken name is an error.
        """

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__")
            if key in self._entries and self._entries[key] is not obj and not replace:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            self._sources[key] = self._source_of(obj)
            self._failed.pop(key, None)
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove an entry (no error when it is absent)."""
        self._entries.pop(name, None)
        self._sources.pop(name, None)

    # -- lookup ---------------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        self.load_builtin()
        try:
            return self._entries[name]
        except KeyError:
            pass
        prefix = name.split(":", 1)[0] if isinstance(name, str) and ":" in name else None
        if prefix is not None and prefix in self._resolvers:
            return self._resolvers[prefix](name)
        if name in self._failed:
            raise DebiaskitError(f"{self.kind} {name!r} comes from {self._failed[name]}") from None
        close = difflib.get_close_matches(name, list(self._entries), n=1) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        extra = f"; prefixes: {', '.join(p + ':NAME' for p in sorted(self._resolvers))}" if self._resolvers else ""
        raise DebiaskitError(
            f"unknown {self.kind} {name!r}{hint}; available: {', '.join(sorted(self._entries))}{extra} "
            f"(plugins register more through the {self.group!r} entry-point group)"
        ) from None

    def source(self, name: str) -> EntrySource | None:
        """Where entry ``name`` came from (``None`` for unknown names and prefix-resolved names)."""
        self.load_builtin()
        return self._sources.get(name)

    def failed_plugins(self) -> dict[str, str]:
        """``{name: reason}`` of the plugins of this registry that could not be loaded."""
        self.load_builtin()
        return dict(self._failed)

    def list(self, pattern: str = "*") -> list[str]:
        self.load_builtin()
        return sorted(k for k in self._entries if fnmatch.fnmatch(k, pattern))

    def prefixes(self) -> list[str]:
        """The name prefixes resolved on demand (``torchvision``, ``timm``, ``python``, ...)."""
        self.load_builtin()
        return sorted(self._resolvers)

    def __contains__(self, name: object) -> bool:
        self.load_builtin()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())
