"""The leakage attacker of Wang et al. (ICCV 2019, §3), trained for many rounds at once.

Architecture (the paper's gender classifier, see ``docs/leakage.md``): ``BatchNorm1d(n_in) → Linear(n_in, 300)
→ [BN(300) → LeakyReLU → Linear(300, 300)] × (depth − 2) → BN(300) → LeakyReLU → Linear(300, 2)``; ``depth``
counts Linear layers: 4 for multi-label (COCO) inputs, 5 for single-label (imSitu) inputs. Training:
cross-entropy, Adam lr 5e-5, weight decay 1e-5 (L2 added to the gradient, as ``torch.optim.Adam``), batch 128,
``epochs`` (paper 100); keep the epoch with the best validation accuracy and report the test accuracy of
that epoch.

Vectorisation: the M attackers of all rounds (and of all perturbation levels of a λ_D(F1) sweep) are one
*batched* model whose weights carry a leading model axis; every Linear is a ``baddbmm``. The summed loss
gives every model exactly its own gradient and Adam / L2 act element-wise, so one Adam over the stacked
weights equals M independent Adams. Batch-norm statistics are per model and per batch, as in M separate nets.

Speed (the training loop, :func:`train_attackers`): the forward pass and a hand-written backward pass run on
buffers allocated once per batch size (no autograd graph, no per-step allocations of activation-sized
tensors), batches are one ``index_select`` from the device-resident data, Adam is PyTorch's fused kernel
where available. For evaluation the batch norms are folded into the neighbouring Linear layers (exact in
eval mode) and, when the inputs repeat (one-hot verbs, multi-hot object sets), the network runs once per
*distinct* input row. The test split is scored once, at the end, with the weights saved at each model's
best validation epoch — the same number the paper's per-epoch test evaluation gives at that epoch.
:class:`BatchedAttacker`'s ``forward`` is the plain autograd reference of the same computation; the tests
check that the hand-written step matches autograd.

Differences from the official code: the paper reshuffles without a seed; we draw every permutation from a
seeded generator. A trailing batch of one sample is dropped (BatchNorm cannot train on it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttackerConfig", "BatchedAttacker", "train_attackers", "AttackerRun"]

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class AttackerConfig:
    """Hyper-parameters of the attacker (defaults = the paper's, Wang et al. 2019; see ``docs/leakage.md``)."""

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
        """Number of Linear layers: ``depth`` if set, else 4 for multi-label and 5 for single-label inputs."""
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
        self.n_models = int(n_models)
        self.dims = [n_in] + [hidden] * (depth - 1) + [n_out]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(self.dims[:-1], self.dims[1:]):
            bound = 1.0 / math.sqrt(a)  # nn.Linear's default init
            self.weights.append(nn.Parameter((torch.rand(n_models, a, b, generator=generator) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(n_models, 1, b, generator=generator) * 2 - 1) * bound))
        # one BatchNorm before every Linear: the input BN, then BN(hidden) in each block
        bn_dims = self.dims[:-1]
        self.bn_gamma = nn.ParameterList([nn.Parameter(torch.ones(n_models, 1, d)) for d in bn_dims])
        self.bn_beta = nn.ParameterList([nn.Parameter(torch.zeros(n_models, 1, d)) for d in bn_dims])
        for i, d in enumerate(bn_dims):
            self.register_buffer(f"rm{i}", torch.zeros(n_models, 1, d))
            self.register_buffer(f"rv{i}", torch.ones(n_models, 1, d))
        self.depth = depth

    def running_stats(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Running mean and (unbiased) running variance of batch norm ``i``, shapes ``(M, 1, d_i)``."""
        return getattr(self, f"rm{i}"), getattr(self, f"rv{i}")

    def _bn(self, i: int, x: torch.Tensor) -> torch.Tensor:
        rm, rv = self.running_stats(i)
        if self.training:
            mean = x.mean(1, keepdim=True)
            var = (x - mean).square().mean(1, keepdim=True)
            with torch.no_grad():
                n = x.shape[1]
                rm.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
                rv.mul_(1 - self.momentum).add_(var * (n / max(n - 1, 1)), alpha=self.momentum)
        else:
            mean, var = rm, rv
        return (x - mean) * torch.rsqrt(var + self.eps) * self.bn_gamma[i] + self.bn_beta[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, B, n_out)`` for inputs ``(M, B, n_in)`` (autograd reference implementation)."""
        h = self._bn(0, x)
        h = torch.baddbmm(self.biases[0], h, self.weights[0])
        for i in range(1, self.depth):
            h = F.leaky_relu(self._bn(i, h), self.negative_slope)
            h = torch.baddbmm(self.biases[i], h, self.weights[i])
        return h

    def state_tensors(self) -> list[torch.Tensor]:
        """Every tensor that defines the model (parameters, then running statistics), model axis first."""
        out = [*self.weights, *self.biases, *self.bn_gamma, *self.bn_beta]
        for i in range(self.depth):
            out.extend(self.running_stats(i))
        return out

    @torch.no_grad()
    def folded(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Eval-mode network as plain Linear layers: every batch norm folded into its neighbouring Linear.

        Returns ``[(W_l, b_l)]`` so that ``h ← baddbmm(b_l, h, W_l)``, with a LeakyReLU between layers,
        equals :meth:`forward` in ``eval()`` mode (up to float rounding).
        """
        scale, shift = [], []
        for i in range(self.depth):
            rm, rv = self.running_stats(i)
            s = self.bn_gamma[i] * torch.rsqrt(rv + self.eps)
            scale.append(s)
            shift.append(self.bn_beta[i] - rm * s)
        layers = []
        for i in range(self.depth):
            w, b = self.weights[i], self.biases[i]
            if i == 0:  # input BN: scale the rows of W_0, shift goes into the bias
                b = b + torch.bmm(shift[0], w)
                w = w * scale[0].transpose(1, 2)
            if i + 1 < self.depth:  # the next BN acts on this layer's output: scale its columns
                w = w * scale[i + 1]
                b = b * scale[i + 1] + shift[i + 1]
            layers.append((w.contiguous(), b.contiguous()))
        return layers


@dataclass
class AttackerRun:
    """Per-model outcome: best validation accuracy, test accuracy at that epoch, the epoch (1-based)."""

    val_accuracy: torch.Tensor
    test_accuracy: torch.Tensor
    best_epoch: torch.Tensor


# ------------------------------------------------------------------------------------------- training step
class _Step:
    """One training step of a :class:`BatchedAttacker` for a fixed batch size, on preallocated buffers.

    Forward as :meth:`BatchedAttacker.forward` in train mode (batch statistics, running-stat update), then
    the analytic backward of cross-entropy → Linear → LeakyReLU → batch norm, written into ``p.grad``.
    """

    def __init__(self, model: BatchedAttacker, batch: int) -> None:
        p = model.weights[0]
        m, dims, dev, dt = model.n_models, model.dims, p.device, p.dtype
        self.model, self.b = model, batch
        e = lambda d: torch.empty(m, batch, d, device=dev, dtype=dt)  # noqa: E731
        s = lambda d: torch.empty(m, 1, d, device=dev, dtype=dt)  # noqa: E731
        n_bn = len(dims) - 1
        self.a = [e(d) for d in dims]  # a[l]: input of BN l (a[0] = the batch, a[L] = logits)
        self.xhat = [e(d) for d in dims[:-1]]
        self.r = [e(d) for d in dims[:-1]]  # BN (+ LeakyReLU for l >= 1) output = input of Linear l
        self.dr = [e(d) for d in dims[:-1]]
        self.tmp = [e(d) for d in dims[:-1]]
        self.mu = [s(d) for d in dims[:-1]]
        self.var = [s(d) for d in dims[:-1]]
        self.inv = [s(d) for d in dims[:-1]]
        self.n_bn = n_bn
        self.xflat_view = self.a[0].view(m * batch, dims[0])

    @torch.no_grad()
    def __call__(self, x_flat: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> None:
        """Forward + backward on ``x_flat[rows]`` (``rows``: flat indices, model-major) with labels ``y (M, b)``."""
        md = self.model
        torch.index_select(x_flat, 0, rows, out=self.xflat_view)
        b, slope, eps, mom = self.b, md.negative_slope, md.eps, md.momentum
        for i in range(self.n_bn):
            a, xh, r, mu, var, inv = self.a[i], self.xhat[i], self.r[i], self.mu[i], self.var[i], self.inv[i]
            torch.mean(a, 1, keepdim=True, out=mu)
            torch.sub(a, mu, out=xh)
            torch.mul(xh, xh, out=r)
            torch.mean(r, 1, keepdim=True, out=var)
            rm, rv = md.running_stats(i)
            rm.mul_(1 - mom).add_(mu, alpha=mom)
            rv.mul_(1 - mom).add_(var, alpha=mom * b / max(b - 1, 1))
            torch.add(var, eps, out=inv).rsqrt_()
            xh.mul_(inv)
            torch.addcmul(md.bn_beta[i], xh, md.bn_gamma[i], out=r)
            if i > 0:
                F.leaky_relu_(r, slope)
            torch.baddbmm(md.biases[i], r, md.weights[i], out=self.a[i + 1])
        # cross-entropy summed over rows and models, divided by the batch size: d/dlogits = (softmax - 1_y) / b
        g = torch.softmax(self.a[-1], -1)
        g.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(g[..., :1], -1.0))
        g.div_(b)
        for i in range(self.n_bn - 1, -1, -1):
            r, dr, xh, tmp = self.r[i], self.dr[i], self.xhat[i], self.tmp[i]
            torch.bmm(r.transpose(1, 2), g, out=md.weights[i].grad)
            torch.sum(g, 1, keepdim=True, out=md.biases[i].grad)
            torch.bmm(g, md.weights[i].transpose(1, 2), out=dr)
            if i > 0:  # LeakyReLU: r > 0 exactly where its input is > 0 (slope >= 0)
                torch.ops.aten.leaky_relu_backward.grad_input(dr, r, slope, False, grad_input=dr)
            dgamma, dbeta = md.bn_gamma[i].grad, md.bn_beta[i].grad
            torch.sum(dr, 1, keepdim=True, out=dbeta)
            torch.mul(dr, xh, out=tmp)
            torch.sum(tmp, 1, keepdim=True, out=dgamma)
            if i == 0:
                break  # the input's own gradient is not needed
            # batch-norm backward: dx = gamma * inv * (dz - mean(dz) - xhat * mean(dz * xhat))
            torch.mul(xh, dgamma / b, out=tmp)
            torch.sub(dr, tmp, out=tmp)
            tmp.sub_(dbeta / b).mul_(md.bn_gamma[i] * self.inv[i])
            g = tmp


def _adam(params: list[torch.Tensor], config: AttackerConfig) -> torch.optim.Optimizer:
    kw = {"lr": config.lr, "weight_decay": config.weight_decay}
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - fused kernel unavailable
        return torch.optim.Adam(params, **kw)


# ------------------------------------------------------------------------------------------ evaluation
class _EvalSet:
    """An evaluation split ``x (M, n, F)``, ``y (M, n)``, stored once per *distinct* input row when rows repeat."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        m, n, f = x.shape
        self.y, self.n = y, n
        self.unique: torch.Tensor | None = None
        if n > 0:
            uniq, inv = torch.unique(x.reshape(m * n, f), dim=0, return_inverse=True)
            if uniq.shape[0] * 2 <= n:  # worth it: the net runs on U shared rows instead of n rows per model
                self.unique, self.inverse = uniq.contiguous(), inv.reshape(m, n)
        self.x = x

    @torch.no_grad()
    def accuracy(self, layers: list[tuple[torch.Tensor, torch.Tensor]], slope: float, chunk: int) -> torch.Tensor:
        m = layers[0][0].shape[0]
        if self.unique is not None:
            u = self.unique
            preds = torch.cat([_logits(layers, u[s : s + chunk].expand(m, -1, -1), slope).argmax(-1)
                               for s in range(0, u.shape[0], chunk)], 1)
            pred = torch.gather(preds, 1, self.inverse)
            return (pred == self.y).sum(1).to(torch.float32) / self.n
        correct = torch.zeros(m, device=self.x.device)
        for s in range(0, self.n, chunk):
            pred = _logits(layers, self.x[:, s : s + chunk], slope).argmax(-1)
            correct += (pred == self.y[:, s : s + chunk]).sum(1)
        return correct / self.n


def _logits(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor, slope: float) -> torch.Tensor:
    h = x
    for i, (w, b) in enumerate(layers):
        h = torch.baddbmm(b, h, w)
        if i + 1 < len(layers):
            F.leaky_relu_(h, slope)
    return h


# ------------------------------------------------------------------------------------------ public API
def train_attackers(
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
    x_test: torch.Tensor, y_test: torch.Tensor, *, multilabel: bool, config: AttackerConfig, seed: int,
    n_out: int = 2, progress: ProgressFn | None = None,
) -> AttackerRun:
    """Train M attackers on ``x_train (M, n, F)`` / ``y_train (M, n)`` and score them (Wang et al. 2019, §3).

    Model m sees only row m of every tensor. Selection: best validation accuracy (first epoch on ties);
    the returned test accuracy is that epoch's (raw, unfolded). ``progress(done, total)`` is called after
    every epoch of every chunk of ``config.max_models`` models (``total`` = chunks × epochs).
    """
    device = x_train.device
    m_all = x_train.shape[0]
    old_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    try:
        out_val, out_test, out_ep = [], [], []
        starts = list(range(0, m_all, config.max_models))
        for k, s in enumerate(starts):
            sl = slice(s, min(s + config.max_models, m_all))
            gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + s)
            tick = None
            if progress is not None:
                tick = (lambda e, k=k: progress(k * config.epochs + e, len(starts) * config.epochs))  # noqa: E731
            run = _train_chunk(x_train[sl], y_train[sl], x_val[sl], y_val[sl], x_test[sl], y_test[sl],
                               depth=config.resolved_depth(multilabel), config=config, gen=gen, device=device,
                               n_out=n_out, tick=tick)
            out_val.append(run.val_accuracy)
            out_test.append(run.test_accuracy)
            out_ep.append(run.best_epoch)
        return AttackerRun(torch.cat(out_val), torch.cat(out_test), torch.cat(out_ep))
    finally:
        torch.set_num_threads(old_threads)


def _train_chunk(xtr, ytr, xva, yva, xte, yte, *, depth, config, gen, device, n_out, tick=None) -> AttackerRun:
    m, n, f = xtr.shape
    model = BatchedAttacker(m, f, hidden=config.hidden, depth=depth, n_out=n_out,
                            negative_slope=config.negative_slope, generator=gen).to(device)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.zeros_like(p)
    opt = _adam(params, config)
    x_flat = xtr.reshape(m * n, f).contiguous().to(torch.float32)
    y_flat = ytr.reshape(m * n).contiguous()
    offset = (torch.arange(m, device=device) * n)[:, None]
    val_set = _EvalSet(xva.to(torch.float32), yva)
    best_val = torch.full((m,), -1.0, device=device)
    best_ep = torch.zeros(m, dtype=torch.long, device=device)
    state = model.state_tensors()
    best_state = [t.detach().clone() for t in state]
    bs = config.batch_size
    steps: dict[int, _Step] = {}
    for epoch in range(1, config.epochs + 1):
        perm = torch.argsort(torch.rand(m, n, generator=gen), dim=1).to(device) + offset
        for s in range(0, n, bs):
            idx = perm[:, s : s + bs]
            b = idx.shape[1]
            if b < 2:
                break
            step = steps.get(b)
            if step is None:
                step = steps[b] = _Step(model, b)
            rows = idx.reshape(-1)
            step(x_flat, y_flat.index_select(0, rows).view(m, b), rows)
            opt.step()
        va = val_set.accuracy(model.folded(), model.negative_slope, config.eval_chunk)
        better = va > best_val
        if bool(better.any()):
            best_val = torch.where(better, va, best_val)
            best_ep = torch.where(better, torch.full_like(best_ep, epoch), best_ep)
            with torch.no_grad():
                for t, bt in zip(state, best_state):
                    bt[better] = t[better]
        if tick is not None:
            tick(epoch)
    with torch.no_grad():
        for t, bt in zip(state, best_state):
            t.copy_(bt)
    if config.epochs >= 1:
        best_test = _EvalSet(xte.to(torch.float32), yte).accuracy(model.folded(), model.negative_slope,
                                                                  config.eval_chunk)
    else:
        best_test = torch.zeros(m, device=device)
    return AttackerRun(best_val.cpu(), best_test.cpu(), best_ep.cpu())
