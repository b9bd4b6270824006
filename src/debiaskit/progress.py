"""Progress of long commands that stays readable in a terminal and in a log file.

On a terminal a phase is a tqdm bar that names what it measures and stays on screen when done
(``leave=True``). When stderr is not a terminal (a log file, a pipe, a batch job) no bar is drawn: a phase
prints one plain line when it starts, then at most one line every ``every`` seconds (what it is doing,
``i/total``, the rate and the ETA) and one line when it ends. :meth:`Progress.announce` prints a single line
for a long step without a counter (e.g. computing a model's logits).

The interval is ``$DEBIASKIT_PROGRESS_EVERY`` seconds (default :data:`DEFAULT_EVERY`). See ``docs/report.md``.

>>> p = Progress("audit labels")
>>> with p.phase("λ_D attackers", unit="epoch") as tick:     # doctest: +SKIP
...     dataset_leakage(labels, protected, progress=tick)    # tick(done, total) after every epoch
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, TextIO

from debiaskit.errors import DebiaskitError

__all__ = ["DEFAULT_EVERY", "Phase", "Progress", "fmt_seconds", "progress_every"]

#: seconds between two plain progress lines when stderr is not a terminal
DEFAULT_EVERY = 30.0


def progress_every() -> float:
    """The plain-line interval: ``$DEBIASKIT_PROGRESS_EVERY`` (seconds, >= 0) or :data:`DEFAULT_EVERY`."""
    raw = os.environ.get("DEBIASKIT_PROGRESS_EVERY", "").strip()
    if not raw:
        return DEFAULT_EVERY
    try:
        v = float(raw)
    except ValueError:
        raise DebiaskitError(f"DEBIASKIT_PROGRESS_EVERY must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(v) or v < 0:
        raise DebiaskitError(f"DEBIASKIT_PROGRESS_EVERY must be >= 0 seconds, got {raw!r}")
    return v


def fmt_seconds(s: float) -> str:
    """``42s``, ``3m05s``, ``1h02m03s``; ``?`` when unknown."""
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or replaced streams
        return False


class Progress:
    """Progress reporter of one command (``label``, e.g. ``"audit model"``), writing to stderr.

    Args:
        label: printed in brackets at the start of every plain line and in every bar's description.
        every: seconds between plain lines (default :func:`progress_every`); 0 prints at every update.
        stream: where to write (default: ``sys.stderr`` at the time of each write).
        tty: force the terminal (bar) or plain-line mode; default: ``stream.isatty()``.
        enabled: ``False`` makes every method a no-op.
    """

    def __init__(self, label: str, *, every: float | None = None, stream: TextIO | None = None,
                 tty: bool | None = None, enabled: bool = True) -> None:
        self.label = label
        self.every = progress_every() if every is None else float(every)
        self._stream = stream
        self._tty = tty
        self.enabled = enabled

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def tty(self) -> bool:
        return _is_tty(self.stream) if self._tty is None else self._tty

    def announce(self, text: str) -> None:
        """One line for a long step that has no counter (also printed above a running bar on a terminal)."""
        if not self.enabled:
            return
        line = f"[{self.label}] {text}"
        if self.tty:
            from tqdm.auto import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def phase(self, what: str, *, total: int | None = None, unit: str = "it") -> Phase:
        """A counted step: use as a context manager; the returned :class:`Phase` is a ``(done, total)`` callback."""
        return Phase(self, what, total=total, unit=unit)


class Phase:
    """One counted step of a :class:`Progress` (a bar on a terminal, plain lines otherwise).

    Call it as ``phase(done, total)`` (the leakage attackers' progress callback) or :meth:`advance`; the end
    line is printed by :meth:`close` (or leaving the ``with`` block) when the step did not fail.
    """

    def __init__(self, progress: Progress, what: str, *, total: int | None, unit: str) -> None:
        self.p, self.what, self.unit = progress, what, unit
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()
        self._last = self.t0
        self._bar: Any = None
        self._closed = False
        if not progress.enabled:
            return
        if progress.tty:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=f"{progress.label}: {what}", unit=unit, leave=True,
                             dynamic_ncols=True, file=progress.stream)
        else:
            size = f" ({_n(total, unit)})" if total else ""
            self._print(f"{what}: started{size}")

    # -- updates
    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.total:
            self.total = int(total)
            if self._bar is not None:
                self._bar.total = self.total
        self.done = int(done)
        if not self.p.enabled:
            return
        if self._bar is not None:
            self._bar.n = self.done
            self._bar.refresh()
            return
        now = time.monotonic()
        if now - self._last >= self.p.every and (self.total is None or self.done < self.total):
            self._last = now
            self._print(self.line(now))

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self(self.done + n)

    def line(self, now: float | None = None) -> str:
        """The plain progress line: what, i/total, rate, ETA."""
        el = (time.monotonic() if now is None else now) - self.t0
        rate = self.done / el if el > 0 else math.nan
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else math.nan
            pct = 100 * self.done / self.total
            return (f"{self.what}: {self.unit} {self.done}/{self.total} ({pct:.0f} %), {_rate(rate)} {self.unit}/s, "
                    f"elapsed {fmt_seconds(el)}, ETA {fmt_seconds(eta)}")
        return f"{self.what}: {self.unit} {self.done}, {_rate(rate)} {self.unit}/s, elapsed {fmt_seconds(el)}"

    # -- end
    def close(self, ok: bool = True) -> None:
        """Finish the step (the bar stays on screen; a plain end line when ``ok``)."""
        if self._closed:
            return
        self._closed = True
        if not self.p.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            return
        if ok:
            el = time.monotonic() - self.t0
            n = f"{_n(self.done, self.unit)} in " if self.done else ""
            self._print(f"{self.what}: done, {n}{fmt_seconds(el)}")

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(ok=exc_type is None)

    def _print(self, text: str) -> None:
        print(f"[{self.p.label}] {text}", file=self.p.stream, flush=True)


def _n(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _rate(r: float) -> str:
    if not math.isfinite(r):
        return "?"
    return f"{r:.3g}" if r < 100 else f"{r:.0f}"
