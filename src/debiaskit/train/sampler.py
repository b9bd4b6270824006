"""Shuffled-epoch batch sampling on the device (no DataLoader, no workers)."""

from __future__ import annotations

import torch


class EpochSampler:
    """Yields index batches from successive random permutations of ``range(n)``.

    Each epoch is a fresh permutation drawn with ``generator``; a tail shorter than ``batch_size`` is
    dropped (as DisEnt's ``drop_last``), unless ``n < batch_size`` in which case every batch is a whole
    permutation. The state (generator, permutation, position) is checkpointed so resume is exact.
    """

    def __init__(self, n: int, batch_size: int, *, generator: torch.Generator, device: torch.device) -> None:
        self.n = int(n)
        self.batch_size = min(int(batch_size), self.n)
        self.generator = generator
        self.device = device
        self.perm: torch.Tensor | None = None
        self.pos = 0
        self.epoch = 0

    def next(self) -> torch.Tensor:
        if self.perm is None or self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator, device=self.device)
            self.pos = 0
            self.epoch += 1
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"perm": None if self.perm is None else self.perm.cpu(), "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)
        self.pos = int(state["pos"])
        self.epoch = int(state["epoch"])
