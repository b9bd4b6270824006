"""``train.nan_policy``: ``error`` stops at the first non-finite step, naming it; ``skip`` undoes such steps.

The poisoned steps come from a toy method (``reliability._nan_methods``) whose update goes NaN at chosen steps;
the reference for ``skip`` is the same method doing *nothing* at those steps: skipping must give exactly its
weights and evaluation metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import apply_overrides, resolve_config
from debiaskit.io import read_jsonl
from debiaskit.methods.vanilla import Vanilla
from debiaskit.runkey import canonical_config, run_key
from debiaskit.train.trainer import NonFiniteGuard, data_devices, nan_max_skips, run_training

from reliability._nan_methods import register  # noqa: E402
from toydata import register_toy  # noqa: E402

TOY = register_toy()
NAN = register()
TIMING = ("wall_time_s", "steps_per_s", "peak_memory_mb")


def cfg(bad_steps: list[int], mode: str = "loss", *, steps: int = 12, policy: str | None = None, **sets) -> dict:
    base = {"dataset": {"name": TOY}, "method": NAN, "device": "cpu", "seed": 1,
            "hparams": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "batch_size": 32, "steps": steps,
                        "bad_steps": bad_steps, "bad_mode": mode},
            "train": {"eval_every": 4, "checkpoint_every": 4, "progress": False, "threads": 1}}
    if policy is not None:
        base["train"]["nan_policy"] = policy
    return resolve_config(apply_overrides(base, [f"{k}={v}" for k, v in sets.items()]))


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_last.pt", map_location="cpu", weights_only=True)


def eval_rows(run: Path) -> list[dict]:
    drop = {*TIMING, "train_logs", "skipped_steps"}
    return [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(run / "metrics.jsonl")]


# ------------------------------------------------------------------------------------------------ error
def test_error_stops_at_the_first_non_finite_step_naming_it_and_its_value(tmp_path):
    d = tmp_path / "run"
    with pytest.raises(DebiaskitError) as ei:
        run_training(cfg([6]), d)
    msg = str(ei.value)
    assert "training diverged at step 6: loss = nan" in msg and "\n" not in msg
    # stopped at step 6: the evaluation and checkpoint of step 4 exist, nothing after it
    assert sorted({r["step"] for r in read_jsonl(d / "metrics.jsonl")}) == [4]
    ckpt = torch.load(d / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4 and not (d / "result.json").exists()


def test_error_is_the_default_and_names_a_first_step_non_finite_loss(tmp_path):
    c = cfg([1])
    assert c["train"]["nan_policy"] == "error"
    with pytest.raises(DebiaskitError, match="at step 1: loss = nan"):
        run_training(c, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").read_text()  # no evaluation happened


def test_error_with_a_huge_learning_rate_names_the_step_where_the_loss_overflows(tmp_path):
    """lr = 1e30 with plain SGD: the weights explode after the first step; the loss of a later step is inf/nan."""
    c = resolve_config({"dataset": {"name": TOY}, "method": "vanilla", "device": "cpu", "seed": 3,
                        "hparams": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "batch_size": 32, "steps": 12,
                                    "lr": 1e30, "optimizer": "sgd", "momentum": 0},
                        "train": {"eval_every": 3, "checkpoint_every": 3, "progress": False, "threads": 1}})
    # the first step whose loss is not finite, computed here by replaying the trainer's updates
    import debiaskit.train.trainer as tm

    losses: list[float] = []
    orig = Vanilla.update

    def spy(self, batch, step):
        logs = orig(self, batch, step)
        losses.append(float(logs["loss"]))
        return logs

    Vanilla.update = spy
    try:
        with pytest.raises(DebiaskitError) as ei:
            tm.run_training(c, tmp_path / "run")
    finally:
        Vanilla.update = orig
    first = next(i + 1 for i, v in enumerate(losses) if not math.isfinite(v))
    assert first == len(losses)  # it stopped at that very step
    assert f"training diverged at step {first}: loss = {losses[-1]}" in str(ei.value)


def test_deferred_check_on_an_accelerator_reports_the_first_bad_step_at_the_next_sync(tmp_path, monkeypatch):
    """On an accelerator the check stays on the device; it is read at the next evaluation or checkpoint.

    Simulated on the CPU by forcing the deferred mode: the error names step 5 (the first bad one, not 6) and
    is raised before the step-8 evaluation or checkpoint is written.
    """
    real = NonFiniteGuard.__init__

    def deferred(self, method, policy, max_skips, device):
        real(self, method, policy, max_skips, torch.device("cuda"))

    monkeypatch.setattr(NonFiniteGuard, "__init__", deferred)
    d = tmp_path / "run"
    with pytest.raises(DebiaskitError, match="at step 5: loss = nan"):
        run_training(cfg([5, 6]), d)
    assert sorted({r["step"] for r in read_jsonl(d / "metrics.jsonl")}) == [4]
    assert torch.load(d / "checkpoint.pt", weights_only=True)["step"] == 4


def test_deferred_guard_unit():
    g = NonFiniteGuard(torch.nn.Linear(1, 1), "error", 0, torch.device("cuda"))  # type: ignore[arg-type]
    assert g.deferred
    g.after_update(1, {"loss": torch.tensor(0.5), "acc": torch.tensor(1.0)})
    g.flush()  # nothing bad yet
    g.after_update(2, {"loss": torch.tensor(0.5), "acc": torch.tensor(float("inf"))})
    g.after_update(3, {"loss": torch.tensor(float("nan")), "acc": torch.tensor(1.0)})
    with pytest.raises(DebiaskitError, match="at step 2: acc = inf"):
        g.flush()


def test_a_plain_float_log_is_checked_too(tmp_path):
    g = NonFiniteGuard(torch.nn.Linear(1, 1), "error", 0, torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(DebiaskitError, match="at step 7: ratio = -inf"):
        g.after_update(7, {"loss": torch.tensor(1.0), "ratio": float("-inf")})


# ------------------------------------------------------------------------------------------------ skip
@pytest.mark.parametrize("mode", ["loss", "grad"])
def test_skip_undoes_the_bad_steps_exactly(tmp_path, mode):
    bad = [3, 7, 8]
    got = run_training(cfg(bad, mode, policy="skip", **{"train.nan_max_skips": 2}), tmp_path / "skip")
    ref = run_training(cfg(bad, "noop"), tmp_path / "ref")
    w, wr = weights(tmp_path / "skip"), weights(tmp_path / "ref")
    assert all(torch.isfinite(v).all() for v in w.values())
    assert list(w) == list(wr) and all(torch.equal(w[k], wr[k]) for k in w)  # parameters and Adam state untouched
    assert eval_rows(tmp_path / "skip") == eval_rows(tmp_path / "ref")
    rows = [r for r in read_jsonl(tmp_path / "skip" / "metrics.jsonl") if r["split"] == "test"]
    assert [(r["step"], r["skipped_steps"]) for r in rows] == [(4, 1), (8, 2), (12, 0)]
    assert all(math.isfinite(r["train_logs"]["loss"]) for r in rows)  # skipped steps are left out of the means
    assert got.result["skipped_steps"] == 3 and "skipped_steps" not in ref.result
    assert "skipped_steps" not in read_jsonl(tmp_path / "ref" / "metrics.jsonl")[0]  # only with nan_policy skip


def test_skip_gives_up_after_more_than_nan_max_skips_in_a_row(tmp_path):
    with pytest.raises(DebiaskitError) as ei:
        run_training(cfg([3, 4, 5, 6, 7], policy="skip", **{"train.nan_max_skips": 2}), tmp_path / "run")
    msg = str(ei.value)
    assert "3 steps in a row were not finite (steps 3..5, more than train.nan_max_skips = 2)" in msg
    assert "at step 5: loss = nan" in msg
    # two in a row are tolerated
    res = run_training(cfg([3, 4, 6, 7], policy="skip", **{"train.nan_max_skips": 2}), tmp_path / "ok")
    assert res.result["skipped_steps"] == 4


def test_nan_max_skips_default_is_a_tenth_of_eval_every():
    assert nan_max_skips({"eval_every": 500, "nan_max_skips": None}) == 50
    assert nan_max_skips({"eval_every": 4, "nan_max_skips": None}) == 1
    assert nan_max_skips({"eval_every": 4, "nan_max_skips": 0}) == 0
    assert cfg([])["train"]["nan_max_skips"] is None


def test_skip_resumes_identically_after_a_kill(tmp_path):
    """Killed at step 10 (after the step-8 checkpoint, a skipped step 6 behind it), then resumed."""
    import os
    import sys

    if not hasattr(os, "fork") or sys.platform != "linux":
        pytest.skip("needs fork (Linux)")
    from reliability._nan_methods import NanAt

    c = cfg([3, 5, 6, 10], policy="skip", **{"train.nan_max_skips": 2})
    run_training(c, tmp_path / "ref")
    d = tmp_path / "killed"
    pid = os.fork()
    if pid == 0:  # child: dies (no cleanup) at the start of step 10
        try:
            orig = NanAt.update
            NanAt.update = lambda self, b, step: os._exit(77) if step == 10 else orig(self, b, step)
            run_training(c, d)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 77
    res = run_training(c, d)
    assert res.resumed_from == 8
    assert all(torch.equal(weights(d)[k], v) for k, v in weights(tmp_path / "ref").items())
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(read_jsonl(d / "metrics.jsonl")) == strip(read_jsonl(tmp_path / "ref" / "metrics.jsonl"))
    assert res.result["skipped_steps"] == 4


# ------------------------------------------------------------------------------------------------ config
def test_nan_policy_values_and_the_run_key():
    with pytest.raises(DebiaskitError, match="train.nan_policy must be error or skip, got 'ignore'"):
        cfg([], policy="ignore")
    with pytest.raises(DebiaskitError, match="train.nan_max_skips must be a non-negative integer"):
        cfg([], policy="skip", **{"train.nan_max_skips": -1})
    error, skip = cfg([]), cfg([], policy="skip")
    assert run_key(error) != run_key(skip)  # skip changes what is trained
    assert "nan_policy" not in canonical_config(error)["train"]  # the default stays out of the key
    assert run_key(skip) == run_key(cfg([], policy="skip", **{"train.nan_max_skips": 7}))  # only when to give up


# ------------------------------------------------------------------------------------------------ devices
def test_batch_indices_are_drawn_where_the_generator_lives():
    """data_on_device: false on CUDA keeps the images on the CPU but draws indices with the CUDA generator."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert data_devices(cuda, False) == (cpu, cuda)
    assert data_devices(cuda, True) == (cuda, cuda)
    assert data_devices(cpu, True) == (cpu, cpu) and data_devices(cpu, False) == (cpu, cpu)


def test_data_on_device_is_outside_the_numbers(tmp_path):
    """On the CPU both settings are the same code path; the run (and its key) must not differ."""
    a = run_training(cfg([]), tmp_path / "a")
    b = run_training(cfg([], **{"train.data_on_device": "false"}), tmp_path / "b")
    assert a.result["run_key"] == b.result["run_key"]
    assert all(torch.equal(weights(tmp_path / "a")[k], v) for k, v in weights(tmp_path / "b").items())
