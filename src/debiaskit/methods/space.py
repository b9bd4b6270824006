"""Random-search distributions for hyper-parameters (DomainBed-style ``n_hparams`` sweeps).

A method declares, next to its defaults, the range each tunable hyper-parameter is drawn from::

    search_space = {"lr": LogUniform(1e-4, 1e-2), "lambda_dis": Choice([1.0, 5.0, 10.0])}

Draws are made with a ``numpy.random.Generator`` seeded from the hyper-parameter seed, the method and the
dataset (:func:`debiaskit.experiments.hparams.resolve_hparams`), so every backend draws the same settings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Choice", "Distribution", "IntLogUniform", "LogUniform", "Uniform"]


class Distribution:
    """A one-dimensional search distribution."""

    def sample(self, rng: np.random.Generator) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class LogUniform(Distribution):
    """``10 ** Uniform(log10 low, log10 high)`` (learning rates, weight decays)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low <= self.high):
            raise ValueError(f"LogUniform needs 0 < low <= high, got {self.low}, {self.high}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(10 ** rng.uniform(math.log10(self.low), math.log10(self.high)))

    def describe(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class IntLogUniform(Distribution):
    """``int(2 ** Uniform(log2 low, log2 high))`` (batch sizes, widths)."""

    low: int
    high: int

    def sample(self, rng: np.random.Generator) -> int:
        return int(2 ** rng.uniform(math.log2(self.low), math.log2(self.high)))

    def describe(self) -> str:
        return f"int log-uniform [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Uniform(Distribution):
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def describe(self) -> str:
        return f"uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Choice(Distribution):
    options: Sequence[Any]

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.options))
