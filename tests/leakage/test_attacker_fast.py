"""The hand-written attacker training step and evaluation equal the autograd reference (Wang et al. 2019 MLP)."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from debiaskit.leakage import AttackerConfig, BatchedAttacker, dataset_leakage, train_attackers
from debiaskit.leakage.attacker import _adam, _EvalSet, _logits, _Step

# parameters whose exact gradient is 0 (a bias right before a batch norm, and the input BN's shift, whose effect
# the next BN removes): their gradients are rounding noise that Adam amplifies, so they are not compared
_NOISE_ONLY = {"biases.0", "biases.1", "biases.2", "bn_beta.0"}


def _problem(m=3, n=60, f=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, n, f, generator=g)
    y = (x[..., 0] + 0.5 * torch.randn(m, n, generator=g) > 0).long()
    return x, y


@pytest.mark.parametrize("depth", [4, 5])
def test_step_gradients_equal_autograd(depth):
    torch.manual_seed(0)
    x, y = _problem()
    m, n, f = x.shape
    ref = BatchedAttacker(m, f, hidden=12, depth=depth)
    fast = copy.deepcopy(ref)
    for p in fast.parameters():
        p.grad = torch.zeros_like(p)
    step = _Step(fast, 16)
    opt_r = torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=1e-5)
    opt_f = _adam(list(fast.parameters()), AttackerConfig(lr=1e-2))
    rows_of = torch.arange(m)[:, None]
    for it in range(4):
        idx = torch.randint(0, n, (m, 16))
        logits = ref(x[rows_of, idx])
        loss = F.cross_entropy(logits.reshape(-1, 2), y[rows_of, idx].reshape(-1), reduction="sum") / 16
        opt_r.zero_grad()
        loss.backward()
        flat = (idx + rows_of * n).reshape(-1)
        step(x.reshape(m * n, f), y.reshape(-1)[flat].view(m, 16), flat)
        for (name, pr), (_, pf) in zip(ref.named_parameters(), fast.named_parameters()):
            if name in _NOISE_ONLY:
                assert pr.grad.abs().max() < 1e-5 and pf.grad.abs().max() < 1e-5  # truly zero
                continue
            torch.testing.assert_close(pf.grad, pr.grad, atol=1e-5, rtol=1e-4, msg=f"step {it}: {name}")
        opt_r.step()
        opt_f.step()
    # the input BN's running statistics follow the same updates (those of later BNs inherit the noise of the
    # biases before them, which the next BN cancels)
    for a, b in zip(ref.running_stats(0), fast.running_stats(0)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and the trained networks compute the same function, in train and in eval mode
    torch.testing.assert_close(fast(x), ref(x), atol=1e-4, rtol=1e-4)
    ref.eval(), fast.eval()
    torch.testing.assert_close(fast(x), ref(x), atol=2e-3, rtol=1e-3)


def test_folded_eval_network_and_distinct_row_evaluation():
    torch.manual_seed(1)
    m, f = 3, 6
    net = BatchedAttacker(m, f, hidden=10, depth=5)
    with torch.no_grad():  # non-trivial batch-norm state
        for i in range(net.depth):
            rm, rv = net.running_stats(i)
            rm.normal_()
            rv.uniform_(0.5, 2.0)
            net.bn_gamma[i].uniform_(0.5, 1.5)
            net.bn_beta[i].normal_()
    net.eval()
    x = torch.randn(m, 40, f)
    torch.testing.assert_close(_logits(net.folded(), x, net.negative_slope), net(x), atol=1e-5, rtol=1e-5)
    # one-hot rows repeat: scored once per distinct row, same accuracies as the direct evaluation
    xo = torch.eye(f)[torch.randint(0, f, (m, 50))]
    y = torch.randint(0, 2, (m, 50))
    es = _EvalSet(xo, y)
    assert es.unique is not None and es.unique.shape[0] <= f
    want = (net(xo).argmax(-1) == y).float().mean(1)
    torch.testing.assert_close(es.accuracy(net.folded(), net.negative_slope, chunk=4), want)
    direct = _EvalSet(x, y[:, :40])
    assert direct.unique is None  # continuous inputs: no de-duplication
    torch.testing.assert_close(direct.accuracy(net.folded(), net.negative_slope, chunk=7),
                               (net(x).argmax(-1) == y[:, :40]).float().mean(1))


def _reference_training(xtr, ytr, xva, yva, xte, yte, *, depth, cfg, seed):
    """The protocol written plainly: autograd net, per-epoch val *and* test accuracy, keep the best-val epoch."""
    m, n, f = xtr.shape
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003)
    net = BatchedAttacker(m, f, hidden=cfg.hidden, depth=depth, generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    rows = torch.arange(m)[:, None]
    best_val, best_test, best_ep = torch.full((m,), -1.0), torch.zeros(m), torch.zeros(m, dtype=torch.long)
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        perm = torch.argsort(torch.rand(m, n, generator=gen), dim=1)
        for s in range(0, n, cfg.batch_size):
            idx = perm[:, s : s + cfg.batch_size]
            if idx.shape[1] < 2:
                break
            loss = F.cross_entropy(net(xtr[rows, idx]).reshape(-1, 2), ytr[rows, idx].reshape(-1),
                                   reduction="sum") / idx.shape[1]
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            va = (net(xva).argmax(-1) == yva).float().mean(1)
            te = (net(xte).argmax(-1) == yte).float().mean(1)
        better = va > best_val
        best_val = torch.where(better, va, best_val)
        best_test = torch.where(better, te, best_test)
        best_ep = torch.where(better, torch.full_like(best_ep, epoch), best_ep)
    return best_val, best_test, best_ep


def test_training_loop_equals_plain_protocol():
    torch.manual_seed(0)
    m, f = 4, 9
    rng = np.random.default_rng(0)

    def split(n):
        g = rng.integers(0, 2, (m, n))
        x = (rng.random((m, n, f)) < 0.3).astype(np.float32)
        x[..., 0] = np.where(rng.random((m, n)) < 0.8, g, 1 - g)
        return torch.from_numpy(x), torch.from_numpy(g)
    (xtr, ytr), (xva, yva), (xte, yte) = split(200), split(120), split(120)
    cfg = AttackerConfig(epochs=6, lr=3e-3, hidden=16, batch_size=32, num_threads=1)
    run = train_attackers(xtr, ytr, xva, yva, xte, yte, multilabel=True, config=cfg, seed=3)
    v, t, e = _reference_training(xtr, ytr, xva, yva, xte, yte, depth=4, cfg=cfg, seed=3)
    np.testing.assert_array_equal(run.best_epoch.numpy(), e.numpy())
    np.testing.assert_allclose(run.val_accuracy.numpy(), v.numpy(), atol=1.5 / 120)
    np.testing.assert_allclose(run.test_accuracy.numpy(), t.numpy(), atol=1.5 / 120)
    assert run.val_accuracy.min() > 0.7  # it learned the planted dependency


def test_progress_callback_counts_every_epoch():
    rng = np.random.default_rng(0)
    y = (rng.random((600, 5)) < 0.3).astype(np.uint8)
    g = rng.integers(0, 2, 600)
    seen = []
    cfg = AttackerConfig(epochs=3, lr=2e-3, hidden=16, num_threads=1, max_models=2)
    dataset_leakage(y, g, rounds=3, config=cfg, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]  # 2 chunks of models × 3 epochs
