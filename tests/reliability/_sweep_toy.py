"""A dataset and a method registered when this module is imported, for sweeps whose workers are spawned.

A spawned ``sweep --jobs N`` worker is a fresh interpreter: it re-imports the module that registered a
run's dataset and method (recorded as the entries' provenance), so these two are found there too.
``sweep_sig_vanilla`` is ``vanilla`` sleeping ``$DEBIASKIT_TEST_STEP_SLEEP`` seconds per step (default 0),
so a test can interrupt a run mid-training; the sleep changes no number.
"""

from __future__ import annotations

import os
import time

from debiaskit.data.registry import DATASETS
from debiaskit.methods.registry import METHODS, register_method
from debiaskit.methods.vanilla import Vanilla
from toydata import build_toy

DATASET = "sweep_sig_toy"
METHOD = "sweep_sig_vanilla"


class SleepyVanilla(Vanilla):
    def update(self, batch, step):
        time.sleep(float(os.environ.get("DEBIASKIT_TEST_STEP_SLEEP", "0") or 0))
        return super().update(batch, step)


if DATASET not in DATASETS.list("*"):
    DATASETS.register(DATASET)(build_toy)
if METHOD not in METHODS.list("*"):
    register_method(METHOD)(SleepyVanilla)
