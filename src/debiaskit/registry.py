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

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__")
            if key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DebiaskitError(
                f"unknown {self.kind} {name!r}{hint}; available: {', '.join(sorted(self._entries))}"
            ) from None

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(k for k in self._entries if fnmatch.fnmatch(k, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())
