"""Where data and caches live.

* data directory: an explicit ``data_dir`` argument (CLI ``--data-dir``), else ``$DEBIASKIT_DATA``;
* cache directory (built arrays, memory-mapped image caches): ``$DEBIASKIT_CACHE``, else
  ``~/.cache/debiaskit``;
* downloads (through torchvision) are attempted only when ``$DEBIASKIT_NO_DOWNLOAD`` is unset.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from debiaskit.errors import ChecksumError


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data directory given explicitly or through ``DEBIASKIT_DATA``; ``None`` if neither."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("DEBIASKIT_DATA")
    return Path(env).expanduser() if env else None


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("DEBIASKIT_CACHE") or Path.home() / ".cache" / "debiaskit").expanduser()
    p = root.joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def downloads_allowed() -> bool:
    return not os.environ.get("DEBIASKIT_NO_DOWNLOAD")


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, expected: str, algorithm: str = "md5") -> None:
    """Raise :class:`ChecksumError` naming the file when its digest differs from ``expected``."""
    got = file_digest(path, algorithm)
    if got != expected:
        raise ChecksumError(
            f"checksum mismatch for {path}: {algorithm} {got}, expected {expected}; "
            "the file is corrupted or truncated, replace it with the original"
        )
