import json

import pytest
import torch
import yaml

from debiaskit.errors import DebiaskitError
from debiaskit.experiments.rundir import load_run
from debiaskit.methods.vanilla import Vanilla
from debiaskit.train.selection import SelectionTracker
from debiaskit.train.trainer import run_training



def _weights(path):
    return torch.load(path, weights_only=False)


def test_run_directory_contents(tmp_path, small_cmnist, tiny_config):
    cfg = tiny_config()
    res = run_training(cfg, tmp_path / "run", splits=small_cmnist)
    d = tmp_path / "run"
    for f in ("config.yaml", "metrics.jsonl", "result.json", "checkpoint.pt", "model_last.pt"):
        assert (d / f).exists(), f
    assert yaml.safe_load((d / "config.yaml").read_text())["hparams"]["steps"] == 30
    lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in lines] == [(s, sp) for s in (10, 20, 30) for sp in ("val", "test")]
    assert all("steps_per_s" in r and "peak_memory_mb" in r and "wall_time_s" in r for r in lines)
    r = json.loads((d / "result.json").read_text())
    assert r["labels_consumed"] == ["target"] and r["uses_bias_labels"] is False
    assert r["selection_rules"] == ["last", "best_val_accuracy"] and r["reported_selection"] == "best_val_accuracy"
    assert "oracle_test" not in r["selection"]
    assert r["data"]["fingerprint"] == small_cmnist.fingerprint
    assert r["debiaskit_version"] and r["seed"] == 0
    best = max((x for x in lines if x["split"] == "val"), key=lambda x: x["accuracy"])
    assert r["selection"]["best_val_accuracy"]["step"] == best["step"]
    assert res.result["reported"]["test"]["unbiased_accuracy"] == r["selection"]["best_val_accuracy"]["metrics"]["test"]["unbiased_accuracy"]


def test_same_seed_same_weights_other_seed_differs(tmp_path, small_cmnist, tiny_config):
    run_training(tiny_config(), tmp_path / "a", splits=small_cmnist)
    run_training(tiny_config(), tmp_path / "b", splits=small_cmnist)
    run_training(tiny_config(seed=1), tmp_path / "c", splits=small_cmnist)
    wa, wb, wc = (_weights(tmp_path / x / "model_last.pt") for x in "abc")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_after_interrupt_gives_identical_weights(tmp_path, small_cmnist, monkeypatch, tiny_config):
    cfg = tiny_config(hparams={"steps": 40}, train={"checkpoint_every": 15})
    run_training(cfg, tmp_path / "full", splits=small_cmnist)

    original = Vanilla.update

    def crashing(self, batch, step):
        if step == 23:
            raise KeyboardInterrupt
        return original(self, batch, step)

    monkeypatch.setattr(Vanilla, "update", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, tmp_path / "resumed", splits=small_cmnist)
    assert not (tmp_path / "resumed" / "result.json").exists()
    monkeypatch.setattr(Vanilla, "update", original)
    res = run_training(cfg, tmp_path / "resumed", splits=small_cmnist)
    assert res.resumed_from == 15
    wf, wr = _weights(tmp_path / "full" / "model_last.pt"), _weights(tmp_path / "resumed" / "model_last.pt")
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    steps = [json.loads(x)["step"] for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) * 2

    # metrics.jsonl is exactly what the uninterrupted run wrote (timing fields aside), including the training
    # logs averaged over steps 11..20, which straddle the checkpoint at step 15
    def rows(d):
        out = [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("wall_time_s", "steps_per_s", "peak_memory_mb")} for r in out]

    assert rows("resumed") == rows("full")
    # a finished run is not retrained
    again = run_training(cfg, tmp_path / "resumed", splits=small_cmnist)
    assert again.already_done


def test_different_config_in_same_dir_is_refused(tmp_path, small_cmnist, tiny_config):
    run_training(tiny_config(), tmp_path / "r", splits=small_cmnist)
    with pytest.raises(DebiaskitError, match="different config"):
        run_training(tiny_config(seed=3), tmp_path / "r", splits=small_cmnist)


def test_oracle_only_when_asked_and_labelled(tmp_path, small_cmnist, tiny_config):
    cfg = tiny_config(train={"selection": ["last", "best_val_accuracy", "oracle_test"]})
    r = run_training(cfg, tmp_path / "o", splits=small_cmnist).result
    assert r["selection"]["oracle_test"]["label"] == "oracle (test-set selection)" and "oracle_note" in r
    assert r["reported_selection"] == "best_val_accuracy"


def test_load_run_predicts_the_selected_model(tmp_path, small_cmnist, tiny_config):
    run_training(tiny_config(), tmp_path / "r", splits=small_cmnist)
    run = load_run(tmp_path / "r")
    logits = run.predict_logits("test")
    acc = float((logits.argmax(1) == run.splits["test"].targets).float().mean())
    sel = run.result["selection"]["best_val_accuracy"]["metrics"]["test"]["accuracy"]
    assert acc == pytest.approx(sel)
    with pytest.raises(DebiaskitError, match="no model for selection"):
        run.method("oracle_test")


def test_selection_tracker_keeps_earliest_best():
    t = SelectionTracker(["last", "best_val_accuracy"])
    t.update(1, {"val": {"accuracy": 0.5}})
    t.update(2, {"val": {"accuracy": 0.7}})
    t.update(3, {"val": {"accuracy": 0.7}})
    assert t.best["best_val_accuracy"]["step"] == 2 and t.best["last"]["step"] == 3


def test_on_eval_hook_stops_training_early(tmp_path, small_cmnist, tiny_config, monkeypatch):
    seen = []

    def on_eval(self, step, results, out_dir=None):
        seen.append((step, sorted(results), out_dir))
        assert self.run_dir == tmp_path / "e"
        return step >= 20

    monkeypatch.setattr(Vanilla, "on_eval", on_eval)
    r = run_training(tiny_config(hparams={"steps": 50}), tmp_path / "e", splits=small_cmnist).result
    assert [s for s, _, _ in seen] == [10, 20] and seen[0][1] == ["test", "val"] and seen[0][2] == tmp_path / "e"
    assert r["early_stopped_at_step"] == 20 and r["selection"]["last"]["step"] == 20
    assert torch.load(tmp_path / "e" / "checkpoint.pt", weights_only=False)["step"] == 20
