"""Thread policy (debiaskit.threads): explicit > environment > small model > cores // jobs minus busy cores."""

import pytest

from debiaskit.errors import DebiaskitError
from debiaskit.threads import choose_threads


def test_policy_order():
    env = {}
    assert choose_threads(3, env={"DEBIASKIT_NUM_THREADS": "2"}).threads == 3
    assert choose_threads("auto", env={"DEBIASKIT_NUM_THREADS": "2"}, n_params=10).threads == 2
    assert choose_threads("auto", env=env, n_params=500_000, cores=16, busy=0).threads == 1
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
