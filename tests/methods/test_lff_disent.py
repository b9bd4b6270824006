"""LfF and DisEnt: gradient routing, swap labels, LR schedule from the curriculum, end-to-end runs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from debiaskit.experiments.config import resolve_config
from debiaskit.losses import generalized_ce
from debiaskit.methods.disent import DisEnt
from debiaskit.methods.lff import LfF
from debiaskit.experiments.hparams import resolve_hparams
from debiaskit.train.trainer import run_training

from toydata import make_batch, make_ctx, small_hparams, toy_splits as _toy_splits  # noqa: E402


@pytest.fixture
def toy_splits():
    return _toy_splits()


def _grads(loss, params):
    gs = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]


def _norm(gs):
    return math.sqrt(sum(float(g.pow(2).sum()) for g in gs))


def test_disent_detach_pattern_by_gradients():
    ctx = make_ctx()
    m = DisEnt(ctx, small_hparams("disent", curr_step=0))
    batch = make_batch(ctx, torch.arange(16))
    t = m.loss_terms(batch, step=5)  # after the curriculum: all four terms
    wce = t["dis_i"] + t["swap_i"]
    gce = t["dis_b"] + t["swap_b"]
    enc_i, enc_b = list(m.enc_i.parameters()), list(m.enc_b.parameters())
    # the bias encoder and bias head get no gradient from the W·CE terms
    assert _norm(_grads(wce, enc_b)) == 0.0
    assert _norm(_grads(wce, list(m.head_b.parameters()))) == 0.0
    # the intrinsic encoder and head get none from the GCE terms
    assert _norm(_grads(gce, enc_i)) == 0.0
    assert _norm(_grads(gce, list(m.head_i.parameters()))) == 0.0
    # ... while each branch does learn from its own terms
    assert _norm(_grads(wce, enc_i)) > 0 and _norm(_grads(gce, enc_b)) > 0
    # C_i's weights on its z_b half still receive gradient (only the input is detached)
    d = m.enc_i.feature_dim
    g_w = _grads(wce, [m.head_i.fc.weight])[0]
    assert g_w[:, d:].abs().sum() > 0


def test_disent_swap_keeps_y_for_intrinsic_head_and_permutes_bias_labels():
    ctx = make_ctx(seed=3)
    m = DisEnt(ctx, small_hparams("disent", curr_step=0))
    batch = make_batch(ctx, torch.arange(32), seed=1)
    state = ctx.generator.get_state()
    t = m.loss_terms(batch, step=2)
    perm = t["perm"]
    # the permutation came from the run's generator (exact resume)
    g = torch.Generator()
    g.set_state(state)
    assert torch.equal(perm, torch.randperm(32, generator=g))
    assert not torch.equal(batch.y[perm], batch.y)  # the check below can tell the labels apart
    with torch.no_grad():
        z_i, z_b = m.enc_i.features(batch.x), m.enc_b.features(batch.x)
        w = t["w"]
        exp_i = (w * F.cross_entropy(m.head_i(z_i, z_b[perm]), batch.y, reduction="none")).mean()
        exp_b = generalized_ce(m.head_b(z_i, z_b[perm]), batch.y[perm]).mean()
        wrong_b = generalized_ce(m.head_b(z_i, z_b[perm]), batch.y).mean()
    torch.testing.assert_close(t["swap_i"].detach(), exp_i)
    torch.testing.assert_close(t["swap_b"].detach(), exp_b)
    assert not torch.isclose(exp_b, wrong_b)


def test_disent_swap_only_after_curriculum_and_generator_untouched_before():
    ctx = make_ctx()
    m = DisEnt(ctx, small_hparams("disent", curr_step=3))
    assert [m.swap_active(s) for s in range(1, 7)] == [False, False, False, False, True, True]
    before = ctx.generator.get_state()
    t = m.loss_terms(make_batch(ctx, torch.arange(8)), step=4)
    assert t["swap_i"] is None and t["perm"] is None
    assert torch.equal(before, ctx.generator.get_state())


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_disent_steplr_counts_from_curriculum_step():
    ctx = make_ctx()
    m = DisEnt(ctx, small_hparams("disent", curr_step=3, lr_step_size=2, lr_gamma=0.5, lr=1.0))
    lrs = []
    for step in range(1, 10):
        lrs.append(m.opt_i.param_groups[0]["lr"])  # the lr used by update `step`
        m.on_step_end(step)
    # official (0-based s): lr0 while s < curr + step_size; here updates 1..5, then halves every 2 updates
    assert lrs == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert m.opt_b.param_groups[0]["lr"] == m.opt_i.param_groups[0]["lr"]


def test_disent_predict_uses_both_encoders():
    ctx = make_ctx()
    m = DisEnt(ctx, small_hparams("disent"))
    x = torch.rand(5, 3, 4, 4)
    base = m.predict(x)
    with torch.no_grad():
        for p in m.enc_b.parameters():
            p.add_(0.5)
    assert not torch.allclose(base, m.predict(x))
    assert m.head_i.fc.in_features == 2 * m.enc_i.feature_dim


def test_disent_defaults_per_dataset_and_ratio():
    hp = resolve_hparams("disent", "colored_mnist", warn=False)
    assert (hp["model"], hp["lr"], hp["lambda_dis"], hp["lambda_swap_b"], hp["lambda_swap"]) == ("mlp_disent", 0.01, 10.0, 10.0, 1.0)
    assert (hp["steps"], hp["curr_step"], hp["lr_step_size"], hp["lr_gamma"], hp["q"], hp["ema_alpha"]) == (50000, 10000, 10000, 0.5, 0.7, 0.7)
    bf = resolve_hparams("disent", "bffhq", warn=False)
    assert (bf["batch_size"], bf["lr_gamma"], bf["lambda_swap"]) == (64, 0.1, 0.1)
    c05 = resolve_hparams("disent", "corrupted_cifar10", ratio=0.005)
    assert (c05["lr"], c05["lambda_dis"], c05["lambda_swap_b"]) == (5e-4, 1.0, 1.0)
    c05b = resolve_hparams("disent", "corrupted_cifar10", ratio=5e-3)  # the same number written differently
    assert c05b == c05
    c5 = resolve_hparams("disent", "corrupted_cifar10", ratio=0.05)
    assert (c5["lr"], c5["lambda_dis"]) == (1e-3, 1.0)
    assert resolve_hparams("disent", "colored_mnist", ratio=0.01) == resolve_hparams("disent", "colored_mnist")
    lff = resolve_hparams("lff", "colored_mnist", warn=False)
    assert (lff["model"], lff["lr"], lff["steps"], lff["q"], lff["ema_alpha"]) == ("mlp_lff", 1e-3, 23500, 0.7, 0.7)


def test_lff_routes_gce_to_biased_and_weighted_ce_to_debiased():
    ctx = make_ctx()
    m = LfF(ctx, small_hparams("lff"))
    batch = make_batch(ctx, torch.arange(16))
    loss, logs = m.losses(batch)
    loss.backward()
    assert all(p.grad is not None for p in m.model_b.parameters())
    # the debiased network's gradient equals that of mean(W * CE) with the logged weights
    w = m.reweight.ema_b.values  # EMAs were updated (first visit = raw CE)
    assert torch.all(m.reweight.ema_b.seen[:16] == 1) and torch.all(m.reweight.ema_b.seen[16:] == 0)
    with torch.no_grad():
        ce_b = F.cross_entropy(m.model_b(batch.x), batch.y, reduction="none")
    torch.testing.assert_close(w[:16], ce_b)
    assert 0.0 <= float(logs["w_mean"]) <= 1.0


@pytest.mark.parametrize("method", ["lff", "disent"])
def test_end_to_end_tiny_run_and_exact_resume(method, toy_splits, tmp_path):
    torch.set_num_threads(1)
    hp = {"model": "mlp", "model_kwargs": {"hidden": [16, 8]}, "batch_size": 32, "lr": 1e-2, "steps": 24}
    if method == "disent":
        hp.update(curr_step=8, lr_step_size=6)
    cfg = resolve_config({"dataset": "colored_mnist", "method": method, "device": "cpu", "hparams": hp,
                          "train": {"eval_every": 12, "checkpoint_every": 12, "progress": False,
                                    "selection": ["last", "best_val_accuracy", "oracle_test"]}})
    full = run_training(cfg, tmp_path / "full", splits=toy_splits)
    res = full.result
    assert res["method"] == method and res["steps"] == 24
    assert set(res["selection"]) == {"last", "best_val_accuracy", "oracle_test"}
    assert 0.0 <= res["final"]["test"]["unbiased_accuracy"] <= 1.0
    # interrupted after the step-12 checkpoint, then resumed: same final weights (EMAs, swap permutations)
    import shutil

    from debiaskit.methods import registry

    cls = registry.get_method(method)
    orig = cls.update

    def crashing(self, batch, step):
        if step == 13:
            raise KeyboardInterrupt
        return orig(self, batch, step)

    cls.update = crashing
    try:
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, tmp_path / "part", splits=toy_splits)
    finally:
        cls.update = orig
    resumed = run_training(cfg, tmp_path / "part", splits=toy_splits)
    assert resumed.resumed_from == 12
    a = torch.load(tmp_path / "full" / "model_last.pt", weights_only=False)
    b = torch.load(tmp_path / "part" / "model_last.pt", weights_only=False)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    shutil.rmtree(tmp_path / "full")
