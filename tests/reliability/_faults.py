"""Fault-injection helpers shared by the reliability tests (``from reliability._faults import ...``)."""

from __future__ import annotations

import io
import os
import pickle
import random
from pathlib import Path


class Payload:
    """A pickle payload: unpickling it calls ``open(marker, "w")``, so the marker file proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: D105
        return (open, (self.marker, "w"))


def payload_pickle(marker: Path) -> bytes:
    """A plain pickle that creates ``marker`` when loaded."""
    return pickle.dumps({"weights": Payload(marker)})


def payload_torch(marker: Path) -> bytes:
    """A ``torch.save`` file whose pickle creates ``marker`` when loaded without ``weights_only``."""
    import torch

    buf = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "evil": Payload(marker)}, buf)
    return buf.getvalue()


def garble(path: Path, *, at: float = 0.5, size: int = 2048, seed: int = 0) -> None:
    """Change ``size`` bytes around the relative position ``at`` of ``path`` (every byte differs after)."""
    data = bytearray(path.read_bytes())
    start = max(0, int(len(data) * at) - size // 2)
    rnd = random.Random(seed)
    for i in range(start, min(len(data), start + size)):
        data[i] = (data[i] + 1 + rnd.randrange(255)) % 256
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def crash_at(k: int, fn, *args, **kwargs) -> int:
    """Run ``fn`` in a forked child that dies (``os._exit``) at its ``k``-th file-system event.

    Events are the calls to ``os.replace``, ``os.link``, ``os.fsync``, ``os.unlink`` and ``shutil.copyfile``
    made by the child; at an ``os.fsync`` event the file is first cut to half its size (a write torn by the
    kill). Returns the child's exit status: 0 when ``fn`` finished before event ``k`` (no crash), 77 when it
    was killed.
    """
    import shutil

    pid = os.fork()
    if pid == 0:  # child
        try:
            count = [0]

            def hook(name, real):
                def wrapped(*a, **kw):
                    count[0] += 1
                    if count[0] == k:
                        if name == "fsync":
                            try:
                                os.ftruncate(a[0], os.fstat(a[0]).st_size // 2)
                            except OSError:  # a directory's fd
                                pass
                        os._exit(77)
                    return real(*a, **kw)
                return wrapped

            os.replace = hook("replace", os.replace)
            os.link = hook("link", os.link)
            os.fsync = hook("fsync", os.fsync)
            os.unlink = hook("unlink", os.unlink)
            shutil.copyfile = hook("copyfile", shutil.copyfile)
            fn(*args, **kwargs)
            os._exit(0)
        except BaseException:  # pragma: no cover - reported through the exit status
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
