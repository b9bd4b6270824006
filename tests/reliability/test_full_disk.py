"""A real full disk and a real read-only file system (a tiny tmpfs; needs root, skipped otherwise)."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch

from debiaskit.cli import main
from debiaskit.train.checkpoint import load_checkpoint, save_checkpoint

LABELS = "smiling,glasses,male\n" + "".join(f"{i % 2},{(i // 2) % 2},{(i // 3) % 2}\n" for i in range(60))


@pytest.fixture
def tiny_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt) -> None:
    with open(mnt / "filler", "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass


def test_checkpoint_on_a_full_disk_keeps_the_previous_one(tiny_fs):
    run = tiny_fs / "run"
    save_checkpoint(run, {"step": 1, "w": torch.zeros(100)})
    fill(tiny_fs)
    with pytest.raises(OSError) as ei:
        save_checkpoint(run, {"step": 2, "w": torch.zeros(200_000)})
    assert ei.value.errno == 28  # ENOSPC
    state, warns = load_checkpoint(run)
    assert state is not None and state["step"] == 1
    assert not list(run.glob(".*.tmp"))


def test_cli_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_fs, tmp_path, capsys):
    (tmp_path / "l.csv").write_text(LABELS)
    fill(tiny_fs)
    rc = main(["audit", "labels", str(tmp_path / "l.csv"), "--protected", "male", "--no-leakage",
               "--out", str(tiny_fs / "report")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1 and "no space left on the device" in err and "Traceback" not in err
    assert not list(tiny_fs.rglob("*.tmp"))


def test_cli_on_a_read_only_file_system_is_one_line(tiny_fs, tmp_path, capsys):
    (tmp_path / "l.csv").write_text(LABELS)
    r = subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot remount read-only")
    rc = main(["audit", "labels", str(tmp_path / "l.csv"), "--protected", "male", "--no-leakage",
               "--out", str(tiny_fs / "report")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1 and "read-only file system" in err and "Traceback" not in err
