"""Restricted unpickling for the Python-2 label pickles of Wang et al. (ICCV 2019).

The ``*.data`` / ``*.ids`` / ``*_id.map`` files of the Balanced-Datasets-Are-Not-Enough repository are
Python-2 pickles that hold only lists, dicts, ints, strings and ``set`` objects
(``docs/methods_adversarial.md`` detail 5). A plain ``pickle.load`` would execute any callable a tampered file names (``os.system`` ...), so these files are
read with :class:`RestrictedUnpickler`: the only global it resolves is the builtin ``set``; every other
global is refused with a :class:`~debiaskit.errors.DebiaskitError`. Strings are decoded with
``encoding="latin1"`` (the Python-2 ``str`` convention).
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from debiaskit.errors import DebiaskitError

__all__ = ["RestrictedUnpickler", "restricted_load", "restricted_loads", "ALLOWED_GLOBALS"]

#: (module, name) pairs the unpickler resolves; ``__builtin__`` is the Python-2 spelling of ``builtins``.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {("builtins", "set"): set, ("__builtin__", "set"): set}


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves no global except the builtin ``set``."""

    def __init__(self, file: Any, *, source: str = "<pickle>") -> None:
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle hook
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DebiaskitError(
                f"{self._source}: refusing to unpickle global {module}.{name}; these label files may only "
                "contain lists, dicts, ints, strings and builtins.set (the file is not a Wang et al. 2019 "
                "label pickle, or it was tampered with)"
            ) from None


def restricted_loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (latin1 strings, only ``set`` allowed)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=source).load()
    except DebiaskitError:
        raise
    except Exception as e:  # truncated / not a pickle
        raise DebiaskitError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None


def restricted_load(path: str | os.PathLike) -> Any:
    """Read the pickle at ``path`` with :class:`RestrictedUnpickler`."""
    p = Path(path)
    if not p.is_file():
        raise DebiaskitError(f"file not found: {p}")
    return restricted_loads(p.read_bytes(), source=str(p))
