"""Thread policy (debiaskit.threads): explicit > environment > cores // jobs minus busy cores, small models capped."""

import pytest

from debiaskit import threads as th
from debiaskit.errors import DebiaskitError
from debiaskit.threads import choose_threads


def test_policy_order():
    env = {}
    assert choose_threads(3, env={"DEBIASKIT_NUM_THREADS": "2"}).threads == 3
    assert choose_threads("auto", env={"DEBIASKIT_NUM_THREADS": "2"}, n_params=10).threads == 2
    # small models: capped at SMALL_MODEL_MAX_THREADS, still reduced by busy cores
    assert choose_threads("auto", env=env, n_params=500_000, cores=16, busy=0).threads == 2
    assert choose_threads("auto", env=env, n_params=500_000, cores=2, busy=0).threads == 2
    assert choose_threads("auto", env=env, n_params=500_000, cores=2, busy=1).threads == 1
    assert choose_threads("auto", env=env, n_params=500_000, cores=2, busy=0, jobs=2).threads == 1
    assert "capped" in choose_threads("auto", env=env, n_params=500_000, cores=16, busy=0).reason
    big = dict(env=env, n_params=20_000_000)
    assert choose_threads("auto", cores=16, busy=0, jobs=1, **big).threads == 16
    assert choose_threads("auto", cores=16, busy=0, jobs=4, **big).threads == 4
    assert choose_threads("auto", cores=2, busy=1, jobs=1, **big).threads == 1
    assert choose_threads("auto", cores=8, busy=6, jobs=2, **big).threads == 2
    c = choose_threads("auto", cores=8, busy=0, jobs=3, **big)
    assert c.threads == 2 and "8 cores, 3 job(s)" in c.reason


@pytest.mark.parametrize("bad", [0, -1, True, "many"])
def test_bad_values(bad):
    with pytest.raises(DebiaskitError, match="threads"):
        choose_threads(bad, env={})
    with pytest.raises(DebiaskitError, match="DEBIASKIT_NUM_THREADS"):
        choose_threads("auto", env={"DEBIASKIT_NUM_THREADS": "x"})


def test_busy_elsewhere_reads_runnable_tasks(monkeypatch):
    # 3 runnable tasks, one of them us: 2 busy elsewhere, clamped to cores - 1
    monkeypatch.setattr(th, "_runnable_now", lambda: 3)
    assert th.busy_elsewhere(8) == 2
    assert th.busy_elsewhere(2) == 1
    monkeypatch.setattr(th, "_runnable_now", lambda: 1)
    assert th.busy_elsewhere(4) == 0
    # no /proc/loadavg: falls back to the 1-minute load average
    monkeypatch.setattr(th, "_runnable_now", lambda: None)
    monkeypatch.setattr(th.os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    assert th.busy_elsewhere(8) == 3


def test_runnable_now_parses_proc_loadavg():
    n = th._runnable_now(samples=3, interval=0.0)
    if n is None:
        pytest.skip("no /proc/loadavg on this system")
    assert n >= 1  # at least this process is runnable while it reads the file
