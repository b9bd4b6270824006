"""Verified checkpoints: SHA-256 sidecars, the last two kept, fallback, crash at every write step."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import torch

from debiaskit.train.checkpoint import (
    CHECKPOINT,
    PREVIOUS_CHECKPOINT,
    check_plain,
    load_checkpoint,
    remove_stale_tmp,
    save_checkpoint,
    sidecar_path,
    verify_file,
)

from reliability._faults import crash_at, garble, payload_pickle, payload_torch, truncate  # noqa: E402


def state(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"step": step, "w": torch.randn(64, 64, generator=g), "opt": {"state": {0: {"m": torch.ones(3) * step}},
                                                                          "param_groups": [{"lr": 0.1, "params": [0]}]},
            "rng": {"python": {"version": 3, "state": tuple(range(5)), "gauss_next": None}}}


def same(a: dict, b: dict) -> bool:
    return a["step"] == b["step"] and torch.equal(a["w"], b["w"]) and torch.equal(a["opt"]["state"][0]["m"], b["opt"]["state"][0]["m"])


def test_sidecar_is_sha256sum_format_and_written_after_the_file(tmp_path):
    p = save_checkpoint(tmp_path, state(1))
    assert p == tmp_path / CHECKPOINT
    digest, name = sidecar_path(p).read_text().split()
    assert name == CHECKPOINT and digest == hashlib.sha256(p.read_bytes()).hexdigest()
    assert sidecar_path(p).stat().st_mtime_ns >= p.stat().st_mtime_ns
    got, warns = load_checkpoint(tmp_path)
    assert warns == [] and same(got, state(1))


def test_keeps_the_last_two_and_loads_the_newest(tmp_path):
    for s in (1, 2, 3):
        save_checkpoint(tmp_path, state(s))
    assert same(torch.load(tmp_path / PREVIOUS_CHECKPOINT, weights_only=True), state(2))
    assert verify_file(tmp_path / PREVIOUS_CHECKPOINT) is None
    got, warns = load_checkpoint(tmp_path)
    assert warns == [] and got["step"] == 3


def test_no_checkpoint_means_a_fresh_start_without_warning(tmp_path):
    assert load_checkpoint(tmp_path) == (None, [])


@pytest.mark.parametrize("damage", ["garble", "truncate", "empty", "sidecar", "no_sidecar"])
def test_damaged_checkpoint_falls_back_to_the_previous_one_with_one_warning(tmp_path, damage):
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    ck = tmp_path / CHECKPOINT
    {"garble": lambda: garble(ck), "truncate": lambda: truncate(ck), "empty": lambda: ck.write_bytes(b""),
     "sidecar": lambda: sidecar_path(ck).write_text("not a digest\n"),
     "no_sidecar": lambda: sidecar_path(ck).unlink()}[damage]()
    got, warns = load_checkpoint(tmp_path)
    assert got is not None and same(got, state(1))
    assert len(warns) == 1 and str(ck) in warns[0] and "previous checkpoint" in warns[0] and "\n" not in warns[0]


def test_both_damaged_restarts_from_scratch_never_garbage(tmp_path):
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    garble(tmp_path / CHECKPOINT)
    garble(tmp_path / PREVIOUS_CHECKPOINT, seed=1)
    got, warns = load_checkpoint(tmp_path)
    assert got is None and len(warns) == 1 and "restarts from step 0" in warns[0]
    assert "SHA-256 mismatch" in warns[0]


def test_a_garbled_checkpoint_is_not_rotated_into_prev(tmp_path):
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    garble(tmp_path / CHECKPOINT)
    save_checkpoint(tmp_path, state(3))  # the garbled step-2 file must not replace the good step-1 one
    assert same(torch.load(tmp_path / PREVIOUS_CHECKPOINT, weights_only=True), state(1))
    assert load_checkpoint(tmp_path)[0]["step"] == 3


@pytest.mark.parametrize("kind", ["pickle", "torch"])
@pytest.mark.parametrize("with_sidecar", [False, True])
def test_planted_payload_never_runs_even_with_a_matching_sidecar(tmp_path, kind, with_sidecar):
    marker = tmp_path / "PAYLOAD_RAN"
    save_checkpoint(tmp_path, state(1))
    data = payload_pickle(marker) if kind == "pickle" else payload_torch(marker)
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        (tmp_path / name).write_bytes(data)
        if with_sidecar:
            sidecar_path(tmp_path / name).write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    got, warns = load_checkpoint(tmp_path)
    assert got is None and len(warns) == 1
    assert not marker.exists()
    if with_sidecar:
        assert ("refused" in warns[0]) or ("not a PyTorch file" in warns[0])


def test_save_refuses_state_that_would_not_load_safely(tmp_path):
    import numpy as np

    with pytest.raises(TypeError, match=r"state\['rng'\]\['numpy'\] is a numpy.ndarray"):
        save_checkpoint(tmp_path, {"rng": {"numpy": np.zeros(3)}})
    assert not (tmp_path / CHECKPOINT).exists()
    check_plain({"a": [1, 2.0, "x", None, (torch.float32, torch.Size([2]))], 3: torch.zeros(1)})


def test_remove_stale_tmp_removes_only_atomic_writer_leftovers(tmp_path):
    stale = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".metrics.jsonl.x.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 10)
    keep = [tmp_path / "checkpoint.pt", tmp_path / "notes.tmp", tmp_path / ".lock"]
    for p in keep:
        p.write_bytes(b"k")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".other.tmp").write_bytes(b"k")
    assert sorted(remove_stale_tmp(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and (tmp_path / "sub" / ".other.tmp").exists()
    assert remove_stale_tmp(tmp_path / "missing") == []


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="needs fork (Linux)")
def test_a_kill_at_every_step_of_a_checkpoint_write_leaves_a_good_checkpoint(tmp_path):
    """Kill the writer at each file-system event of a save (rotation, temp write, renames, sidecars)."""
    killed = 0
    for k in range(1, 50):
        d = tmp_path / f"k{k}"
        save_checkpoint(d, state(1))
        save_checkpoint(d, state(2))
        rc = crash_at(k, save_checkpoint, d, state(3))
        if rc == 0:
            break
        assert rc == 77
        killed += 1
        got, warns = load_checkpoint(d)
        assert got is not None, f"kill at event {k}: no usable checkpoint ({warns})"
        assert got["step"] in (2, 3) and same(got, state(got["step"])), f"kill at event {k}"
        assert len(warns) <= 1
        remove_stale_tmp(d)
        assert not list(d.glob(".*.tmp"))
        save_checkpoint(d, state(4))  # the next save after the crash works and is loaded
        got, warns = load_checkpoint(d)
        assert warns == [] and got["step"] == 4
    else:  # pragma: no cover
        pytest.fail("save_checkpoint never finished")
    assert killed >= 8  # link/replace + sidecar of prev, temp fsync + rename + dir fsync of both new files
