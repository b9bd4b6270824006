"""Atomic file writes: write to a temporary file in the same directory, fsync, then rename.

An interrupted run therefore never leaves a half-written result, config or checkpoint behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import yaml

from debiaskit.errors import DebiaskitError


def atomic_write(path: str | os.PathLike, writer: Callable[[IO[bytes]], None]) -> Path:
    """Call ``writer(fileobj)`` on a temp file next to ``path`` and rename it over ``path``.

    The temp file is ``.<name>.<random>.tmp`` in the same directory, fsync'ed before the rename (and the
    directory after it), and removed if ``writer`` raises. A process killed mid-write leaves only such a temp
    file, which :func:`debiaskit.train.checkpoint.remove_stale_tmp` deletes on the next start.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: some file systems cannot fsync a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, default=_json_default, allow_nan=True, sort_keys=False)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, to_json(obj) + "\n")


def write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, yaml.safe_dump(obj, sort_keys=False))


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (a single ``write`` call of a complete line).

    A torn last line left by a writer killed mid-append (bytes after the last newline) is cut off first, so
    the new record never fuses with the fragment into one unreadable middle line.
    """
    line = (to_json(record, indent=None) + "\n").encode("utf-8")
    p = Path(path)
    with open(p, "ab") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            _drop_torn_tail(p, f, end)
        f.write(line)
        f.flush()


def _drop_torn_tail(path: Path, f: IO[bytes], end: int) -> None:
    """Truncate ``f`` (opened for appending) after its last newline if it does not end with one."""
    with open(path, "rb") as r:
        r.seek(end - 1)
        if r.read(1) == b"\n":
            return
        pos, chunk = end, 65536
        while pos > 0:
            start = max(0, pos - chunk)
            r.seek(start)
            buf = r.read(pos - start)
            i = buf.rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            pos = start
    f.truncate(0)


def read_jsonl(path: str | os.PathLike, *, warn: Callable[[str], None] | None = None) -> list[dict]:
    """Read a JSONL file of objects; a missing file reads as no records.

    Only the *last* line may be damaged: a line that is not a complete JSON object there is what a writer
    killed during an append leaves behind, so it is dropped (and reported through ``warn`` if given). A
    damaged line anywhere else means the file was corrupted: :class:`~debiaskit.errors.DebiaskitError` names
    the file and the line, and nothing is returned (callers must never rewrite a file from a partial read).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return []
    except IsADirectoryError:
        raise DebiaskitError(f"{p} is a directory, not a JSONL file") from None
    lines = data.split(b"\n")
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    out: list[dict] = []
    for k, (lineno, raw) in enumerate(numbered):
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict):
                raise ValueError(f"a {type(rec).__name__}, not an object")
        except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
            if k == len(numbered) - 1:
                if warn is not None:
                    warn(f"{p}: ignoring a torn last line {lineno} (an interrupted write)")
                break
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DebiaskitError(
                f"{p} is corrupted at line {lineno} of {len(lines) - (lines[-1] == b'')}: {why}; restore the file "
                "or delete the run directory to start the run again"
            ) from None
        out.append(rec)
    return out


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP "CSV injection" rule).

    A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``,
    except a plain number such as ``-0.25`` or ``+1e-3`` (a spreadsheet reads it as a number, not a formula).
    Non-text values (numbers, ``None``) are returned unchanged; quoting is left to the CSV writer.
    """
    if isinstance(cell, str) and cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def md_cell(text: Any) -> str:
    """``text`` as one Markdown table cell: ``\\`` and ``|`` escaped, line breaks as ``<br>``."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|")
    return s.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    def _w(f: IO[bytes]) -> None:
        buf = io.BytesIO()
        torch.save(obj, buf)
        f.write(buf.getvalue())

    return atomic_write(path, _w)


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    import numpy as np

    return atomic_write(path, lambda f: np.savez(f, **arrays))
