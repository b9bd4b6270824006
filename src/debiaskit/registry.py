"""A small decorator registry shared by datasets, models and methods (timm / DomainBed style)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from debiaskit.errors import DebiaskitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries (classes or factory functions).

    >>> MODELS = Registry("model")
    >>> @MODELS.register("tiny")
    ... def tiny(**kw): return kw
    >>> MODELS.list()
    ['tiny']
    """

    def __init__(self, kind: str, *, builtin_modules: list[str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        # modules that register the built-in entries, imported on first lookup (keeps start-up fast and
        # avoids import cycles); the list may be extended until then
        self._builtin_modules = builtin_modules if builtin_modules is not None else []
        self._loaded = False

    def load_builtin(self) -> None:
        """Import the modules that register the built-in entries (once)."""
        if self._loaded:
            return
        self._loaded = True
        import importlib

        for mod in self._builtin_modules:
            importlib.import_module(mod)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__")
            if key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        self.load_builtin()
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DebiaskitError(
                f"unknown {self.kind} {name!r}{hint}; available: {', '.join(sorted(self._entries))}"
            ) from None

    def list(self, pattern: str = "*") -> list[str]:
        self.load_builtin()
        return sorted(k for k in self._entries if fnmatch.fnmatch(k, pattern))

    def __contains__(self, name: object) -> bool:
        self.load_builtin()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())
