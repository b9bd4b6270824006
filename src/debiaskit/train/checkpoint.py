"""Verified checkpoints and model files: atomic writes, SHA-256 sidecars, safe loading.

Every file written here gets a sidecar ``<file>.sha256`` (``sha256sum`` format: ``<hex>  <name>``), written
atomically *after* the file. Loading recomputes the digest, compares it with the sidecar and then reads the
file with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers, so a
planted pickle payload never runs (even one with a matching sidecar).

Checkpoints (``checkpoint.pt``) keep the last two good states: before a new checkpoint is written, the
current one is verified and, if good, becomes ``checkpoint.prev.pt`` (a hard link, or a copy where the file
system has none, renamed into place; then its sidecar). At every instant of this sequence at least one of
the two files matches its own sidecar, so a process killed at any point leaves a resumable run directory.
:func:`load_checkpoint` tries ``checkpoint.pt``, then ``checkpoint.prev.pt``, and returns ``None`` (start
from scratch) when neither verifies; it never returns a state it could not verify.

Model files (``model_<rule>.pt``) written by :func:`save_model` are verified the same way by
:func:`load_model`; any problem is a one-line :class:`~debiaskit.errors.DebiaskitError` naming the file.
A model file without a sidecar (run directories from before checksums) is loaded only if it loads with
``weights_only=True``, with an :class:`UnverifiedFileWarning` (garbled bytes inside such a file cannot be
detected: re-run or re-save it to get a checksum); ``require_checksum=True`` refuses it instead.

See ``docs/reliability.md`` for the guarantees and their limits.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from debiaskit.errors import DebiaskitError
from debiaskit.io import write_bytes, write_text

__all__ = [
    "CHECKPOINT",
    "PREVIOUS_CHECKPOINT",
    "SIDECAR_SUFFIX",
    "UnverifiedFileWarning",
    "check_plain",
    "load_checkpoint",
    "load_model",
    "remove_stale_tmp",
    "save_checkpoint",
    "save_model",
    "sha256_file",
    "sidecar_path",
    "verify_file",
]

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
SIDECAR_SUFFIX = ".sha256"
_HEX = frozenset("0123456789abcdef")


class UnverifiedFileWarning(UserWarning):
    """A model file was loaded without a checksum to verify it against (older run directories)."""


# --------------------------------------------------------------------------------------------- checksums
def sidecar_path(path: str | os.PathLike) -> Path:
    """The checksum file of ``path``: ``<path>.sha256``."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _write_sidecar(path: Path, digest: str) -> None:
    write_text(sidecar_path(path), f"{digest}  {path.name}\n")


def _read_sidecar(path: Path) -> str | None:
    """The digest recorded for ``path``; ``None`` if there is no sidecar; ``""`` if the sidecar is unreadable."""
    sc = sidecar_path(path)
    try:
        text = sc.read_bytes().decode("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return ""
    parts = text.split()
    digest = parts[0].lower() if parts else ""
    return digest if len(digest) == 64 and set(digest) <= _HEX else ""


def verify_file(path: str | os.PathLike) -> str | None:
    """``None`` if ``path`` matches its sidecar, else why not (``missing``, ``no checksum``, ``mismatch`` ...)."""
    p = Path(path)
    if not p.is_file():
        return "missing"
    recorded = _read_sidecar(p)
    if recorded is None:
        return "no checksum"
    if recorded == "":
        return f"unreadable checksum file {sidecar_path(p).name}"
    try:
        actual = sha256_file(p)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if actual != recorded:
        return f"SHA-256 mismatch (file {actual[:12]}…, recorded {recorded[:12]}…): the file was modified or garbled"
    return None


# --------------------------------------------------------------------------------------------- payloads
_SCALARS = (int, float, bool, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


def check_plain(obj: Any, where: str = "state") -> None:
    """Raise :class:`TypeError` naming the first value that ``torch.load(weights_only=True)`` would refuse.

    Allowed: tensors, numbers, strings, bytes, ``None``, dtypes / devices / sizes, and lists, tuples and
    dicts (with number, string or tuple keys) of those. Catching e.g. a numpy scalar here, at save time,
    beats a checkpoint that cannot be resumed later.
    """
    if isinstance(obj, torch.Tensor):
        if type(obj) not in (torch.Tensor, torch.nn.Parameter):
            raise TypeError(f"{where} is a {type(obj).__name__}; save a plain tensor")
        return
    if isinstance(obj, _SCALARS):
        return
    if isinstance(obj, (list, tuple)):
        if type(obj) not in (list, tuple):
            raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__name__}; use a list or tuple")
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        if type(obj) not in (dict, OrderedDict):
            raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__name__}; use a dict")
        for k, v in obj.items():
            if not isinstance(k, (int, float, str, bool, tuple, type(None))):
                raise TypeError(f"{where} has a key of type {type(k).__name__}")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__name__}, which torch.load(weights_only=True) refuses; "
        "store tensors, numbers, strings and lists / tuples / dicts of them"
    )


def _serialize(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _safe_load(path: Path, map_location: Any) -> Any:
    """``torch.load(weights_only=True)``; raises ``ValueError`` with a one-line reason on any failure."""
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        detail = next((ln.strip() for ln in first if "Unsupported global" in ln or "GLOBAL" in ln), "")
        raise ValueError(
            "holds objects other than tensors and plain containers; refused, since loading them could run code"
            + (f" ({detail})" if detail else "")
        ) from None
    except (EOFError, RuntimeError, OSError, zipfile.BadZipFile, ValueError, KeyError, AttributeError, TypeError,
            IndexError, UnicodeDecodeError, MemoryError) as e:
        if isinstance(e, EOFError) or (isinstance(e, OSError) and path.is_file() and path.stat().st_size == 0):
            raise ValueError("empty or truncated") from None
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ValueError(f"truncated or not a PyTorch file ({type(e).__name__}: {msg})") from None


# ------------------------------------------------------------------------------------------- checkpoints
def _link_or_copy(src: Path, dst: Path) -> None:
    """Atomically make ``dst`` a second name (hard link, else a copy) of ``src``'s current content."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:  # no hard links on this file system
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_checkpoint(run_dir: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``run_dir/checkpoint.pt`` (atomically, then its sidecar), keeping the previous good one.

    ``state`` must hold only what ``torch.load(weights_only=True)`` accepts (see :func:`check_plain`;
    :func:`debiaskit.train.seed.rng_state` returns such a state). Returns the checkpoint path.
    """
    run_dir = Path(run_dir)
    check_plain(state)
    data = _serialize(state)
    digest = hashlib.sha256(data).hexdigest()
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt, prev = run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    if ckpt.is_file() and verify_file(ckpt) is None:
        recorded = _read_sidecar(ckpt)
        _link_or_copy(ckpt, prev)
        assert recorded
        _write_sidecar(prev, recorded)
    write_bytes(ckpt, data)
    _write_sidecar(ckpt, digest)
    return ckpt


def load_checkpoint(run_dir: str | os.PathLike, *, map_location: Any = "cpu") -> tuple[dict[str, Any] | None, list[str]]:
    """The newest verified checkpoint state of ``run_dir`` and the warnings to print.

    Tries ``checkpoint.pt``, then ``checkpoint.prev.pt``: each must match its SHA-256 sidecar and load with
    ``torch.load(weights_only=True)`` as a dict. Returns ``(state, [])`` for a good ``checkpoint.pt``;
    ``(state, [one line])`` when it fell back to the previous checkpoint; ``(None, [one line])`` when a
    checkpoint exists but none is usable (the caller restarts from scratch); ``(None, [])`` when there is no
    checkpoint at all.
    """
    run_dir = Path(run_dir)
    rejected: list[str] = []
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        p = run_dir / name
        if not p.exists():
            continue
        why = verify_file(p)
        if why is None:
            try:
                state = _safe_load(p, map_location)
            except ValueError as e:
                why = str(e)
            else:
                if isinstance(state, dict):
                    if not rejected:
                        return state, []
                    return state, [f"{'; '.join(rejected)}; resuming from the previous checkpoint {p}"]
                why = f"holds a {type(state).__name__}, not a checkpoint dict"
        rejected.append(f"{p} rejected: {why}")
    if not rejected:
        return None, []
    return None, [f"{'; '.join(rejected)}; no usable checkpoint, so training restarts from step 0"]


def remove_stale_tmp(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files that killed atomic writers left in ``run_dir``.

    Only the top level of ``run_dir`` is cleaned. Call it while holding the run's lock
    (:class:`debiaskit.lock.RunLock`): then no other writer is active there and every such file is
    stale. Returns the removed paths.
    """
    run_dir = Path(run_dir)
    removed: list[Path] = []
    if not run_dir.is_dir():
        return removed
    for p in sorted(run_dir.glob(".*.tmp")):
        if p.is_file() or p.is_symlink():
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed.append(p)
    return removed


# -------------------------------------------------------------------------------------------- model files
def save_model(path: str | os.PathLike, state_dict: Mapping[str, Any]) -> Path:
    """Write a model ``state_dict`` atomically, then its SHA-256 sidecar ``<path>.sha256``."""
    path = Path(path)
    check_plain(dict(state_dict) if type(state_dict) not in (dict, OrderedDict) else state_dict)
    data = _serialize(state_dict)
    write_bytes(path, data)
    _write_sidecar(path, hashlib.sha256(data).hexdigest())
    return path


def load_model(path: str | os.PathLike, *, map_location: Any = "cpu", require_checksum: bool = False) -> dict[str, Any]:
    """Load a model file written by :func:`save_model`, verified; any problem is a one-line ``DebiaskitError``.

    A file without a sidecar is loaded (tensors only) with an :class:`UnverifiedFileWarning`, or refused when
    ``require_checksum`` is true.
    """
    p = Path(path)
    if not p.is_file():
        raise DebiaskitError(f"model file {p} not found")
    why = verify_file(p)
    if why == "no checksum":
        if require_checksum:
            raise DebiaskitError(f"model file {p} has no checksum file {sidecar_path(p).name}; refusing to load it unverified")
        warnings.warn(
            f"model file {p} has no checksum file (written by an older debiaskit?); loaded without verification",
            UnverifiedFileWarning, stacklevel=2,
        )
    elif why is not None:
        raise DebiaskitError(f"model file {p} is corrupted: {why}; re-train the run or restore the file")
    try:
        state = _safe_load(p, map_location)
    except ValueError as e:
        raise DebiaskitError(f"model file {p} cannot be loaded: {e}") from None
    if not isinstance(state, dict):
        raise DebiaskitError(f"model file {p} holds a {type(state).__name__}, not a model state_dict")
    return state
