"""Thread policy: how many intra-op threads a training run uses.

On a small machine, threads are easily oversubscribed: with the default thread count (one per core) and one
other busy process, a Colored MNIST DisEnt step was measured 7.6x slower than with one thread
(benchmarks/train_speed.py). The policy, in order:

1. an explicit ``--threads`` / ``train.threads: N`` wins, then the environment variable ``DEBIASKIT_NUM_THREADS``;
2. ``auto``: small models (fewer than :data:`SMALL_MODEL_PARAMS` parameters, e.g. the Colored MNIST MLPs) get
   one thread — their matrix products are too small to gain from more, and one thread never thrashes;
3. otherwise ``usable_cores // jobs`` (``jobs`` = runs sharing the machine, e.g. ``sweep --jobs N``), reduced
   by the cores other processes keep busy (1-minute load average), at least one.

The choice and its reason are recorded in ``result.json`` (``threads``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SMALL_MODEL_PARAMS", "ThreadChoice", "apply_threads", "choose_threads", "usable_cores"]

#: below this many parameters a model trains fastest on one thread (measured on the CMNIST MLPs)
SMALL_MODEL_PARAMS = 2_000_000


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


def _busy_elsewhere(cores: int) -> int:
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover
        return 0
    return max(0, min(cores - 1, int(load + 0.5)))


def choose_threads(
    requested: int | str | None = "auto", *, jobs: int = 1, n_params: int | None = None,
    cores: int | None = None, busy: int | None = None, env: dict[str, str] | None = None,
) -> ThreadChoice:
    """Pick the intra-op thread count (see the module docstring); pure given its arguments."""
    from debiaskit.errors import DebiaskitError

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
    if n_params is not None and n_params < SMALL_MODEL_PARAMS:
        return ThreadChoice(1, f"auto: small model ({n_params:,} parameters)")
    cores = usable_cores() if cores is None else cores
    busy = _busy_elsewhere(cores) if busy is None else busy
    per_job = max(1, cores // max(1, jobs))
    n = max(1, min(per_job, cores - busy))
    return ThreadChoice(n, f"auto: {cores} cores, {jobs} job(s), {busy} busy elsewhere")


def apply_threads(choice: ThreadChoice) -> None:
    import torch

    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
