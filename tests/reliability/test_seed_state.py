"""RNG state: plain types only (loads with weights_only=True) and an exact round trip."""

from __future__ import annotations

import io
import random

import numpy as np
import torch

from debiaskit.train.checkpoint import check_plain
from debiaskit.train.seed import rng_state, seed_everything, set_rng_state


def draws() -> tuple:
    return (random.random(), random.gauss(0, 1), np.random.randn(3).tolist(), np.random.randint(0, 10**9),
            torch.rand(3).tolist(), torch.randn(2).tolist())


def test_rng_state_is_plain_and_round_trips_through_a_safe_load():
    seed_everything(123)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.standard_normal()  # and in numpy's
    st = rng_state()
    check_plain(st)
    buf = io.BytesIO()
    torch.save(st, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    expected = draws()
    seed_everything(999)
    set_rng_state(loaded)
    assert draws() == expected


def test_python_and_numpy_states_are_tensors_and_ints():
    st = rng_state()
    assert isinstance(st["python"]["state"], tuple) and all(type(v) is int for v in st["python"]["state"])
    assert len(st["python"]["state"]) == 625
    assert st["numpy"]["keys"].dtype == torch.int64 and st["numpy"]["keys"].shape == (624,)
    assert int(st["numpy"]["keys"].max()) < 2**32 and int(st["numpy"]["keys"].min()) >= 0
    assert isinstance(st["numpy"]["pos"], int) and st["torch"].dtype == torch.uint8


def test_older_native_state_is_still_accepted():
    seed_everything(5)
    old = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expected = draws()
    seed_everything(6)
    set_rng_state(old)
    assert draws() == expected
