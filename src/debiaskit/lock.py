"""Run locks: a run directory is owned by one process at a time.

:class:`RunLock` takes an exclusive, non-blocking ``fcntl.flock`` on ``<run_dir>/.lock`` and writes the
owner (pid, host, start time, command) into it as JSON. The operating system drops the lock when the owner
exits, however it exits (``kill -9`` included), so a lock is never left stale; the ``.lock`` file itself
stays (deleting it would let two processes lock two different files) and its content only describes the
last owner. A second trainer or sweep sees the run as busy: :meth:`RunLock.acquire` returns ``False`` (or
waits with ``wait=True``), and ``with RunLock(d):`` raises :class:`RunLockedError` naming the owner.
:func:`wait_until_free` waits for the owner to finish without taking the lock (``train --wait-lock``: the
run may be finished by then, and there is nothing left to do).

The lock belongs to the open file, not to the process: two ``RunLock`` objects on the same directory in one
process exclude each other too, and a ``fork()``ed child shares its parent's lock (spawned children, as used
by ``sweep --jobs N``, do not).

Shared file systems: ``flock`` is reliable on local file systems. On NFS, Linux clients emulate it with
NFS byte-range locks, which work only when the server runs a lock manager (NFSv4, or NFSv3 with NLM) and the
share is not mounted with ``nolock`` / ``local_lock``; other network or FUSE file systems may lock only on
one machine or fail with ``ENOLCK``. Put run directories that several machines train into on a file system
with working locks (see ``docs/reliability.md``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from collections.abc import Callable
from types import TracebackType
from typing import Any

from debiaskit.errors import DebiaskitError

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "describe_owner", "wait_until_free"]

LOCK_NAME = ".lock"
_POLL_S = 0.05


class RunLockedError(DebiaskitError):
    """The run directory is locked by another process (the message names it).

    ``waited``: seconds already spent waiting for the lock (``--wait-lock``), named in the message.
    """

    def __init__(self, run_dir: Path, owner: dict[str, Any] | None, *, waited: float | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.owner = owner
        self.waited = waited
        if waited is None:
            hint = "wait for it to finish (or stop it) and run the command again"
        else:
            hint = f"still in use after waiting {waited:.0f} s; wait longer (--wait-lock) or stop that process"
        super().__init__(f"{run_dir} is in use by {describe_owner(owner)}; {hint}")


def describe_owner(owner: dict[str, Any] | None) -> str:
    """``pid 123 on host "node1" since 2024-05-01 10:00:00`` (or ``another process`` if unknown)."""
    if not owner:
        return "another process"
    bits = [f"pid {owner.get('pid', '?')}"]
    if owner.get("host"):
        bits.append(f"on host {owner['host']!r}")
    if owner.get("started"):
        bits.append(f"since {owner['started']}")
    return " ".join(bits)


def _lock_error(path: Path, e: OSError) -> DebiaskitError:
    if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return DebiaskitError(
            f"cannot lock {path}: the file system does not support locks ({e.strerror}); use a local directory "
            "or a shared file system with working locks (docs/reliability.md)"
        )
    return DebiaskitError(f"cannot lock {path}: {e.strerror or e}")


class RunLock:
    """An exclusive OS-level lock on a run directory (see the module docstring).

    ``wait=False``: :meth:`acquire` returns at once; ``wait=True``: it polls until the lock is free or
    ``timeout`` seconds have passed (``None``: no limit). Used as a context manager it raises
    :class:`RunLockedError` when the lock cannot be taken, and releases it on exit.
    """

    def __init__(self, run_dir: str | os.PathLike, *, wait: bool = False, timeout: float | None = None) -> None:
        if timeout is not None and not timeout >= 0:
            raise DebiaskitError(f"lock timeout must be >= 0 seconds, got {timeout!r}")
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.wait = wait
        self.timeout = timeout
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def _open(self) -> int:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as e:
            raise DebiaskitError(f"cannot create the lock file {self.path}: {e.strerror or e}") from None

    def _try_lock(self, fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise _lock_error(self.path, e) from None

    def acquire(self) -> bool:
        """Take the lock; ``True`` on success, ``False`` if another process holds it (after waiting, if asked)."""
        if self._fd is not None:
            return True
        fd = self._open()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            while not self._try_lock(fd):
                if not self.wait or (deadline is not None and time.monotonic() >= deadline):
                    os.close(fd)
                    return False
                time.sleep(_POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - time.monotonic())))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": list(sys.argv[:8])}
        data = (json.dumps(owner) + "\n").encode()
        try:  # describe the owner (the lock itself is the flock, not this content)
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass
        return True

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def owner(self) -> dict[str, Any] | None:
        """Who holds the lock now: the owner's JSON (``pid``, ``host``, ``started``, ``argv``), else ``None``.

        Returns ``{}`` when the lock is held but its owner has not written its details yet.
        """
        if self._fd is not None:
            return self._read_owner() or {}
        if not self.path.is_file():
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as e:
                if isinstance(e, BlockingIOError) or e.errno in (errno.EAGAIN, errno.EACCES):
                    return self._read_owner() or {}
                raise _lock_error(self.path, e) from None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _read_owner(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "null")
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def __enter__(self) -> RunLock:
        if not self.acquire():
            raise RunLockedError(self.run_dir, self.owner())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.release()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"RunLock({str(self.run_dir)!r}, held={self.held})"


def wait_until_free(run_dir: str | os.PathLike, *, timeout: float | None = None,
                    on_wait: Callable[[dict[str, Any] | None], None] | None = None) -> bool:
    """Wait until no process holds the lock of ``run_dir``, without keeping it; ``False`` after ``timeout`` s.

    Creates nothing: a directory without a lock file is free. ``on_wait(owner)`` is called once, before
    waiting, when the lock is held (``owner`` as :meth:`RunLock.owner` returns it). ``timeout=None``: no limit.
    """
    path = Path(run_dir) / LOCK_NAME
    if not path.is_file():
        return True
    lock = RunLock(run_dir)
    if lock.acquire():
        lock.release()
        return True
    if on_wait is not None:
        on_wait(lock.owner())
    lock.wait, lock.timeout = True, timeout
    if not lock.acquire():
        return False
    lock.release()
    return True
