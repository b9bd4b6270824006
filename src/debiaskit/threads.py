"""Thread policy: how many intra-op threads a training run uses.

On a small machine, threads are easily oversubscribed. Measured with ``benchmarks/train_speed.py --threads
default,1,2 --load idle,busy`` on a 2-core machine: with nothing else running, two threads make a Colored MNIST
step 1.4x faster than one; with one other busy process, two threads make it 2.2x *slower* than one
(``benchmarks/results/train_speed.json``). So the choice depends on the cores that are actually free. The
policy, in order:

1. an explicit ``--threads`` / ``train.threads: N`` wins, then the environment variable ``DEBIASKIT_NUM_THREADS``;
2. ``auto``: ``usable_cores // jobs`` (``jobs`` = runs sharing the machine, e.g. ``sweep --jobs N``), reduced by
   the cores other processes keep busy *now* (runnable tasks sampled from ``/proc/loadavg`` over ~50 ms; the
   1-minute load average where that file is missing), at least one;
3. small models (fewer than :data:`SMALL_MODEL_PARAMS` parameters, e.g. the Colored MNIST MLPs) are capped at
   :data:`SMALL_MODEL_MAX_THREADS`: their matrix products are too small to use many cores.

The choice and its reason are recorded in ``result.json`` (``threads``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from debiaskit.errors import DebiaskitError

__all__ = ["SMALL_MODEL_MAX_THREADS", "SMALL_MODEL_PARAMS", "ThreadChoice", "apply_threads", "busy_elsewhere",
           "choose_threads", "usable_cores"]

#: models below this many parameters count as small (the Colored MNIST MLPs have 10k-100k)
SMALL_MODEL_PARAMS = 2_000_000
#: at most this many threads for a small model (2 measured 1.4x faster than 1 on an idle 2-core machine)
SMALL_MODEL_MAX_THREADS = 2


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _runnable_now(samples: int = 5, interval: float = 0.01) -> int | None:
    """Median number of runnable tasks on the machine (4th field of /proc/loadavg), or None if unavailable."""
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(interval)
    counts.sort()
    return counts[len(counts) // 2]


def busy_elsewhere(cores: int) -> int:
    """Cores other processes keep busy now, between 0 and ``cores - 1``."""
    runnable = _runnable_now()
    if runnable is not None:
        busy = runnable - 1  # this process is runnable while it reads the file
    else:
        try:
            busy = int(os.getloadavg()[0] + 0.5)
        except (AttributeError, OSError):  # pragma: no cover
            busy = 0
    return max(0, min(cores - 1, busy))


def choose_threads(
    requested: int | str | None = "auto", *, jobs: int = 1, n_params: int | None = None,
    cores: int | None = None, busy: int | None = None, env: dict[str, str] | None = None,
) -> ThreadChoice:
    """Pick the intra-op thread count (see the module docstring); pure given its arguments."""
    env = os.environ if env is None else env
    if requested not in (None, "auto"):
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise DebiaskitError(f"threads must be a positive integer or auto, got {requested!r}")
        return ThreadChoice(int(requested), "explicit")
    if env.get("DEBIASKIT_NUM_THREADS"):
        try:
            n = int(env["DEBIASKIT_NUM_THREADS"])
        except ValueError:
            raise DebiaskitError(
                f"DEBIASKIT_NUM_THREADS must be a positive integer, got {env['DEBIASKIT_NUM_THREADS']!r}"
            ) from None
        if n < 1:
            raise DebiaskitError(f"DEBIASKIT_NUM_THREADS must be a positive integer, got {n}")
        return ThreadChoice(n, "DEBIASKIT_NUM_THREADS")
    cores = usable_cores() if cores is None else cores
    busy = busy_elsewhere(cores) if busy is None else busy
    per_job = max(1, cores // max(1, jobs))
    n = max(1, min(per_job, cores - busy))
    reason = f"auto: {cores} cores, {jobs} job(s), {busy} busy elsewhere"
    if n_params is not None and n_params < SMALL_MODEL_PARAMS and n > SMALL_MODEL_MAX_THREADS:
        n = SMALL_MODEL_MAX_THREADS
        reason += f", small model ({n_params:,} parameters) capped at {SMALL_MODEL_MAX_THREADS}"
    return ThreadChoice(n, reason)


def apply_threads(choice: ThreadChoice) -> None:
    import torch

    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
