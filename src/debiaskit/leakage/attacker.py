"""The leakage attacker of Wang et al. (ICCV 2019), trained for many rounds at once.

Architecture (spec §B2, ``GenderClassifier``): ``BatchNorm1d(n_in) → Linear(n_in, 300) →
[BN(300) → LeakyReLU → Linear(300, 300)] × (depth − 2) → BN(300) → LeakyReLU → Linear(300, 2)``;
``depth`` counts Linear layers: 4 for multi-label (COCO) inputs, 5 for single-label (imSitu) inputs.
Training: cross-entropy, Adam lr 5e-5, weight decay 1e-5 (L2 added to the gradient, as ``torch.optim.Adam``),
batch 128, ``epochs`` (paper 100), keep the epoch with the best validation accuracy and report the test
accuracy of that epoch.

Vectorisation: the M attackers of all rounds (and of all perturbation levels of a λ_D(F1) sweep) are one
*batched* model whose weights carry a leading model axis; each forward is a ``baddbmm``. The summed loss
gives every model exactly its own gradient, and Adam / L2 act element-wise, so one Adam over the stacked
weights equals M independent Adams. All data live on the device as tensors; batches are tensor
indexing (no DataLoader). Batch-norm statistics are per model and per batch, as in M separate nets.
Differences from the official code: the paper reshuffles without a seed; we draw every permutation from
a seeded generator. A trailing batch of one sample is dropped (BatchNorm cannot train on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttackerConfig", "BatchedAttacker", "train_attackers", "AttackerRun"]


@dataclass(frozen=True)
class AttackerConfig:
    """Hyper-parameters of the attacker (defaults = the paper's, spec §B7)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 5e-5
    weight_decay: float = 1e-5
    hidden: int = 300
    depth: int | None = None  # None: 4 for multi-label inputs, 5 for single-label inputs
    negative_slope: float = 0.01
    max_models: int = 25  # models trained together in one batched net (memory bound)
    eval_chunk: int = 8192
    num_threads: int | None = None  # torch CPU threads while training (None: leave as is); 1 is often
    # fastest on a shared, oversubscribed CPU (OpenMP spinning), restored afterwards

    def resolved_depth(self, multilabel: bool) -> int:
        return int(self.depth) if self.depth is not None else (4 if multilabel else 5)


class BatchedAttacker(nn.Module):
    """``n_models`` independent attacker MLPs evaluated together on inputs of shape ``(M, B, n_in)``."""

    def __init__(self, n_models: int, n_in: int, *, hidden: int = 300, depth: int = 4, n_out: int = 2,
                 negative_slope: float = 0.01, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("depth (number of Linear layers) must be at least 2")
        self.negative_slope = negative_slope
        self.momentum, self.eps = 0.1, 1e-5
        dims = [n_in] + [hidden] * (depth - 1) + [n_out]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a)  # nn.Linear's default init
            self.weights.append(nn.Parameter((torch.rand(n_models, a, b, generator=generator) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(n_models, 1, b, generator=generator) * 2 - 1) * bound))
        # one BatchNorm before every Linear: the input BN, then BN(hidden) in each block
        bn_dims = [n_in] + [hidden] * (depth - 1)
        self.bn_gamma = nn.ParameterList([nn.Parameter(torch.ones(n_models, 1, d)) for d in bn_dims])
        self.bn_beta = nn.ParameterList([nn.Parameter(torch.zeros(n_models, 1, d)) for d in bn_dims])
        for i, d in enumerate(bn_dims):
            self.register_buffer(f"rm{i}", torch.zeros(n_models, 1, d))
            self.register_buffer(f"rv{i}", torch.ones(n_models, 1, d))
        self.depth = depth

    def _bn(self, i: int, x: torch.Tensor) -> torch.Tensor:
        rm, rv = getattr(self, f"rm{i}"), getattr(self, f"rv{i}")
        if self.training:
            mean = x.mean(1, keepdim=True)
            var = x.var(1, unbiased=False, keepdim=True)
            with torch.no_grad():
                n = x.shape[1]
                rm.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
                rv.mul_(1 - self.momentum).add_(var * (n / max(n - 1, 1)), alpha=self.momentum)
        else:
            mean, var = rm, rv
        return (x - mean) * torch.rsqrt(var + self.eps) * self.bn_gamma[i] + self.bn_beta[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._bn(0, x)
        h = torch.baddbmm(self.biases[0], h, self.weights[0])
        for i in range(1, self.depth):
            h = F.leaky_relu(self._bn(i, h), self.negative_slope)
            h = torch.baddbmm(self.biases[i], h, self.weights[i])
        return h


@dataclass
class AttackerRun:
    """Per-model outcome: best validation accuracy, test accuracy at that epoch, the epoch (1-based)."""

    val_accuracy: torch.Tensor
    test_accuracy: torch.Tensor
    best_epoch: torch.Tensor


@torch.no_grad()
def _accuracy(model: BatchedAttacker, x: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
    correct = torch.zeros(x.shape[0], device=x.device)
    for s in range(0, x.shape[1], chunk):
        pred = model(x[:, s : s + chunk]).argmax(-1)
        correct += (pred == y[:, s : s + chunk]).sum(1)
    return correct / x.shape[1]


def train_attackers(
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
    x_test: torch.Tensor, y_test: torch.Tensor, *, multilabel: bool, config: AttackerConfig, seed: int,
    n_out: int = 2,
) -> AttackerRun:
    """Train M attackers on ``x_train (M, n, F)`` / ``y_train (M, n)`` and score them (spec §B2).

    Model m sees only row m of every tensor. Selection: best validation accuracy (first epoch on ties);
    the returned test accuracy is that epoch's (raw, unfolded).
    """
    device = x_train.device
    m_all = x_train.shape[0]
    old_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    try:
        return _train_all(x_train, y_train, x_val, y_val, x_test, y_test, multilabel=multilabel, config=config,
                          seed=seed, device=device, m_all=m_all, n_out=n_out)
    finally:
        torch.set_num_threads(old_threads)


def _train_all(x_train, y_train, x_val, y_val, x_test, y_test, *, multilabel, config, seed, device, m_all, n_out):
    out_val, out_test, out_ep = [], [], []
    for s in range(0, m_all, config.max_models):
        sl = slice(s, min(s + config.max_models, m_all))
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + s)
        run = _train_chunk(x_train[sl], y_train[sl], x_val[sl], y_val[sl], x_test[sl], y_test[sl],
                           depth=config.resolved_depth(multilabel), config=config, gen=gen, device=device,
                           n_out=n_out)
        out_val.append(run.val_accuracy)
        out_test.append(run.test_accuracy)
        out_ep.append(run.best_epoch)
    return AttackerRun(torch.cat(out_val), torch.cat(out_test), torch.cat(out_ep))


def _train_chunk(xtr, ytr, xva, yva, xte, yte, *, depth, config, gen, device, n_out) -> AttackerRun:
    m, n, f = xtr.shape
    model = BatchedAttacker(m, f, hidden=config.hidden, depth=depth, n_out=n_out,
                            negative_slope=config.negative_slope, generator=gen).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rows = torch.arange(m, device=device)[:, None]
    best_val = torch.full((m,), -1.0, device=device)
    best_test = torch.zeros(m, device=device)
    best_ep = torch.zeros(m, dtype=torch.long, device=device)
    bs = config.batch_size
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = torch.argsort(torch.rand(m, n, generator=gen), dim=1).to(device)
        for s in range(0, n, bs):
            idx = perm[:, s : s + bs]
            if idx.shape[1] < 2:
                break
            logits = model(xtr[rows, idx])
            target = ytr[rows, idx].reshape(-1)
            loss = F.cross_entropy(logits.reshape(-1, n_out), target, reduction="sum") / idx.shape[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        va = _accuracy(model, xva, yva, config.eval_chunk)
        te = _accuracy(model, xte, yte, config.eval_chunk)
        better = va > best_val
        best_val = torch.where(better, va, best_val)
        best_test = torch.where(better, te, best_test)
        best_ep = torch.where(better, torch.full_like(best_ep, epoch), best_ep)
    return AttackerRun(best_val.cpu(), best_test.cpu(), best_ep.cpu())
