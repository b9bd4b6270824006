"""Optimiser implementations (``train.optimizer_impl``): same algorithm, only rounding differs; resume keeps
the chosen implementation; the run key ignores it; result.json records it."""

import json

import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import resolve_config
from debiaskit.methods.optimizers import OPTIMIZER_IMPLS, build_optimizer, load_optimizer_state, optimizer_impl
from debiaskit.runkey import run_key
from debiaskit.train.trainer import run_training


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _train(name, impl, steps=25, *, split_at=None):
    """``steps`` updates with fixed gradients; with ``split_at`` the optimiser is rebuilt from its state dict."""
    m = _model()
    kw = {"lr": 0.01, "weight_decay": 1e-3, "momentum": 0.9}
    opt = build_optimizer(name, m.parameters(), impl=impl, **kw)
    g = torch.Generator().manual_seed(1)
    for s in range(steps):
        if split_at is not None and s == split_at:
            state = opt.state_dict()
            opt = build_optimizer(name, m.parameters(), impl=impl, **kw)
            load_optimizer_state(opt, state)
        for p in m.parameters():
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return torch.cat([p.detach().flatten() for p in m.parameters()]), opt


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_implementations_agree_to_rounding(name):
    ref, opt = _train(name, "for_loop")
    assert optimizer_impl(opt) == "for_loop"
    foreach, opt = _train(name, "foreach")
    assert optimizer_impl(opt) == "foreach"
    assert torch.equal(ref, foreach)  # same per-element operations on CPU
    fused, opt = _train(name, "fused")
    assert optimizer_impl(opt) == "fused"
    assert (fused - ref).abs().max().item() < 1e-5
    # the updates are large against that tolerance, so agreement is not the trivial "nothing moved"
    start = torch.cat([p.detach().flatten() for p in _model().parameters()])
    assert (ref - start).abs().max().item() > 1e-2


def test_auto_is_fused_on_cpu_floats_and_default_elsewhere():
    m = _model()
    assert optimizer_impl(build_optimizer("adam", m.parameters(), lr=0.1)) == "fused"
    ints = [torch.zeros(3, dtype=torch.int64, requires_grad=False)]
    # an integer "parameter" has no fused kernel: auto falls back to PyTorch's default, fused is an error
    with pytest.raises(DebiaskitError, match="optimizer_impl=fused is not available"):
        build_optimizer("sgd", ints, lr=0.1, impl="fused")
    with pytest.raises(DebiaskitError, match="optimizer_impl must be one of"):
        build_optimizer("adam", m.parameters(), lr=0.1, impl="fastest")
    with pytest.raises(DebiaskitError, match="unknown optimizer"):
        build_optimizer("lion", m.parameters(), lr=0.1)
    assert set(OPTIMIZER_IMPLS) == {"auto", "fused", "foreach", "for_loop"}


@pytest.mark.parametrize("impl", ["fused", "for_loop"])
def test_state_round_trip_is_exact(impl):
    whole, _ = _train("adam", impl)
    split, opt = _train("adam", impl, split_at=11)
    assert torch.equal(whole, split)
    assert optimizer_impl(opt) == impl


def test_loading_another_implementations_state_keeps_ours():
    m = _model()
    old = build_optimizer("adam", m.parameters(), lr=0.01, impl="for_loop")
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    old.step()
    new = build_optimizer("adam", m.parameters(), lr=0.01, impl="fused")
    load_optimizer_state(new, old.state_dict())
    assert optimizer_impl(new) == "fused"  # plain load_state_dict would have copied fused=None back
    new.step()  # the fused kernel accepts the loaded step counts
    assert all(int(new.state[p]["step"]) == 2 for p in m.parameters())
    plain = build_optimizer("adam", m.parameters(), lr=0.01, impl="fused")
    plain.load_state_dict(old.state_dict())
    assert optimizer_impl(plain) == "for_loop"


def test_config_validation_and_run_key(tiny_config):
    base = tiny_config()
    for impl in ("fused", "for_loop", "foreach"):
        cfg = tiny_config(train={"optimizer_impl": impl})
        assert run_key(cfg) == run_key(base)
    raw = {"method": "vanilla", "dataset": {"name": "colored_mnist", "ratio": 0.01}, "train": {"optimizer_impl": "x"}}
    with pytest.raises(DebiaskitError, match="train.optimizer_impl must be one of auto, fused, foreach, for_loop"):
        resolve_config(raw)


def test_result_records_the_implementation_used(tmp_path, small_cmnist, tiny_config):
    run_training(tiny_config(), tmp_path / "auto", splits=small_cmnist)
    run_training(tiny_config(train={"optimizer_impl": "for_loop"}), tmp_path / "loop", splits=small_cmnist)
    auto = json.loads((tmp_path / "auto" / "result.json").read_text())
    loop = json.loads((tmp_path / "loop" / "result.json").read_text())
    assert auto["optimizer_impl"] == {"model": "fused"}
    assert loop["optimizer_impl"] == {"model": "for_loop"}
    assert auto["run_key"] == loop["run_key"]
    a, b = (auto["selection"]["last"]["metrics"]["test"]["accuracy"], loop["selection"]["last"]["metrics"]["test"]["accuracy"])
    assert abs(a - b) < 0.05
