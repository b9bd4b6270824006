"""Shared building blocks of LfF (Nam et al., NeurIPS 2020) and DisEnt (Lee et al., NeurIPS 2021).

Implemented from the papers and our reading of the official code (no code copied); "detail N" refers to
the list "Official-code details we keep" in ``docs/methods_lff_disent.md``:

* :func:`generalized_ce` — the biased branch's loss, with the **official gradient scaling** (detail 1): the
  per-sample value is ``CE(logits, y) · q · p_y^q`` with ``p_y`` *detached*, so its gradient is
  ``q · p_y^q · ∇CE`` = ``q ×`` the textbook GCE gradient ``∇(1 - p_y^q)/q`` (Zhang & Sabuncu 2018, Eq. 5).
  The returned value is not the textbook GCE value; only its gradient matters.
* :class:`PerSampleEMA` — the per-sample loss EMA (detail 4; ``m_i ← α·m_i + (1 − α·u_i)·ℓ_i``,
  ``u_i ← 1``; the first visit stores the raw loss), kept as registered buffers on the training device and updated
  with one vectorised ``index_put``.
* :func:`class_max` / :func:`classwise_normalize` — the class-wise max normalisation (detail 3) over the
  **whole** training table (unvisited zeros included), recomputed every step with one ``scatter_reduce``.
* :func:`relative_difficulty` — LfF Eq. 1 / DisEnt Eq. 1: ``W = m̂_b / (m̂_b + m̂_d + 1e-8)``.

Deviation from the official code (documented in docs/methods_lff_disent.md): the class maximum is clamped to
``>= 1e-12`` before dividing. The official code divides by the raw maximum, which gives ``0/0 = NaN`` in the
(float-underflow) case where every loss of a class is exactly 0; otherwise the results are identical.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from debiaskit.errors import DebiaskitError

#: GCE exponent used by both official repos (LfF default; hard-coded in DisEnt)
DEFAULT_Q = 0.7
#: EMA factor used by both official repos
DEFAULT_EMA_ALPHA = 0.7
#: the epsilon of the relative-difficulty denominator (LfF ``train.py``; DisEnt "Eq.1")
W_EPS = 1e-8
#: guard against 0/0 when a whole class has exactly zero loss (see module docstring)
_MAX_FLOOR = 1e-12


def generalized_ce(logits: torch.Tensor, y: torch.Tensor, *, q: float = DEFAULT_Q) -> torch.Tensor:
    """Per-sample GCE surrogate ``CE(logits, y) · q · sg(p_y)^q`` (Zhang & Sabuncu 2018 Eq. 5).

    The official scaling is explained in ``docs/methods_lff_disent.md`` detail 1.

    Its gradient w.r.t. ``logits`` is ``q · p_y^q · ∇CE`` — the official LfF/DisEnt scaling. ``reduction`` is
    per sample; callers take the batch mean.
    """
    if not 0.0 < q <= 1.0:
        raise DebiaskitError(f"GCE q must be in (0, 1], got {q}")
    ce = F.cross_entropy(logits, y, reduction="none")
    with torch.no_grad():
        p_y = torch.softmax(logits.float(), dim=1).gather(1, y.view(-1, 1)).squeeze(1)
        weight = q * p_y.pow(q)
    return ce * weight.to(ce.dtype)


class PerSampleEMA(nn.Module):
    """Per-sample exponential moving average of a loss (official LfF / DisEnt ``util.py``).

    Update order and first visit: ``docs/methods_lff_disent.md`` detail 4.

    ``values[i]`` starts at 0 and ``seen[i]`` at 0; :meth:`update` applies
    ``m_i ← α·m_i + (1 − α·u_i)·ℓ_i`` then ``u_i ← 1`` for the batch indices, so the first visit stores the
    raw loss and later visits ``α·m_i + (1−α)·ℓ_i``. Both tensors are buffers: they follow ``.to(device)``
    and are saved in ``state_dict`` (exact resume).
    """

    values: torch.Tensor
    seen: torch.Tensor

    def __init__(self, n: int, *, alpha: float = DEFAULT_EMA_ALPHA, device: torch.device | str | None = None) -> None:
        super().__init__()
        if not 0.0 <= alpha < 1.0:
            raise DebiaskitError(f"EMA alpha must be in [0, 1), got {alpha}")
        if n < 1:
            raise DebiaskitError(f"the EMA table needs at least one sample, got n={n}")
        self.alpha = float(alpha)
        self.register_buffer("values", torch.zeros(int(n), dtype=torch.float32, device=device))
        self.register_buffer("seen", torch.zeros(int(n), dtype=torch.float32, device=device))

    @torch.no_grad()
    def update(self, idx: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        """Fold the (detached) per-sample ``loss`` of ``idx`` into the table; returns the new values at ``idx``.

        ``idx`` must not repeat within one call (a mini-batch drawn without replacement).
        """
        loss = loss.detach().to(self.values.dtype)
        u = self.seen[idx]
        new = self.alpha * self.values[idx] + (1.0 - self.alpha * u) * loss
        self.values[idx] = new
        self.seen[idx] = 1.0
        return new


def class_max(values: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``M_c = max_{j: y_j = c} values_j`` over the whole table, one ``scatter_reduce``.

    Why the whole table: ``docs/methods_lff_disent.md`` detail 3.

    Classes without samples get 0. ``values`` are losses (>= 0), so starting from 0 does not change a max.
    """
    out = torch.zeros(num_classes, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, targets, values, reduce="amax", include_self=True)


def classwise_normalize(
    batch_values: torch.Tensor, batch_targets: torch.Tensor, table: torch.Tensor, table_targets: torch.Tensor,
    num_classes: int,
) -> torch.Tensor:
    """Divide each batch EMA value by the maximum EMA of its class over the whole training table (detail 3)."""
    m = class_max(table, table_targets, num_classes).clamp_min(_MAX_FLOOR)
    return batch_values / m[batch_targets]


def relative_difficulty(ema_b: torch.Tensor, ema_d: torch.Tensor) -> torch.Tensor:
    """LfF Eq. 1 / DisEnt Eq. 1: ``W = m̂_b / (m̂_b + m̂_d + 1e-8)`` — a detached weight in [0, 1]."""
    return (ema_b / (ema_b + ema_d + W_EPS)).detach()


class RelativeDifficulty(nn.Module):
    """The two EMAs (biased/debiased branch) plus the relative-difficulty weight (DisEnt paper Eq. 1).

    :meth:`weights` updates both EMAs with the current batch's detached plain CE (CE, not GCE; update
    before reading — ``docs/methods_lff_disent.md`` details 2 and 4), normalises them class-wise over the
    whole table and returns ``W``.
    """

    def __init__(self, targets: torch.Tensor, num_classes: int, *, alpha: float = DEFAULT_EMA_ALPHA) -> None:
        super().__init__()
        n = int(targets.numel())
        self.num_classes = int(num_classes)
        self.register_buffer("targets", targets.detach().long().clone(), persistent=False)
        self.ema_b = PerSampleEMA(n, alpha=alpha, device=targets.device)
        self.ema_d = PerSampleEMA(n, alpha=alpha, device=targets.device)

    @torch.no_grad()
    def weights(self, idx: torch.Tensor, y: torch.Tensor, ce_b: torch.Tensor, ce_d: torch.Tensor) -> torch.Tensor:
        mb = self.ema_b.update(idx, ce_b)
        md = self.ema_d.update(idx, ce_d)
        mb = classwise_normalize(mb, y, self.ema_b.values, self.targets, self.num_classes)
        md = classwise_normalize(md, y, self.ema_d.values, self.targets, self.num_classes)
        return relative_difficulty(mb, md)
