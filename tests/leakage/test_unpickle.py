import os
import pickle

import pytest

from debiaskit.data.unpickle import restricted_load, restricted_loads
from debiaskit.errors import DebiaskitError


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_refuses_a_pickle_that_would_call_os_system(monkeypatch, tmp_path):
    payload = pickle.dumps(_Evil(), protocol=2)  # building the payload does not run it
    assert b"system" in payload

    def _boom(*a, **k):  # pragma: no cover - must never be reached
        raise AssertionError("os.system was called")

    monkeypatch.setattr(os, "system", _boom)
    with pytest.raises(DebiaskitError, match=r"refusing to unpickle global (posix|os|nt)\.system"):
        restricted_loads(payload)
    p = tmp_path / "train.data"
    p.write_bytes(payload)
    with pytest.raises(DebiaskitError, match=str(p)):
        restricted_load(p)


def test_refuses_other_builtins():
    with pytest.raises(DebiaskitError, match="builtins.eval"):
        restricted_loads(b"cbuiltins\neval\n(S'1'\ntR.")


def test_accepts_sets_and_python2_latin1_strings():
    assert restricted_loads(pickle.dumps({3, 1, 2}, protocol=2)) == {1, 2, 3}
    assert restricted_loads(b"c__builtin__\nset\n((lp0\nI1\naI2\natp1\nRp2\n.") == {1, 2}
    assert restricted_loads(b"S'caf\xe9'\np0\n.") == "caf\xe9"
    assert restricted_loads(pickle.dumps([{"a": 1}], protocol=0)) == [{"a": 1}]


def test_garbage_and_missing_files(tmp_path):
    with pytest.raises(DebiaskitError, match="not a readable pickle"):
        restricted_loads(b"not a pickle")
    with pytest.raises(DebiaskitError, match="not found"):
        restricted_load(tmp_path / "nope.data")
