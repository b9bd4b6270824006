"""Dataset bias card: how strongly labels co-occur with a protected / bias attribute.

Works on a :class:`~debiaskit.data.base.BiasedDataset` (targets = labels, bias = protected attribute),
on a :class:`~debiaskit.data.label_table.LabelTable`, or on raw arrays (``labels`` 1-D class ids or
2-D multi-hot, ``protected`` 1-D). Contents:

* counts c(y, g) per (label, protected value) and the base rates P(g);
* P(g | y) = c(y, g) / Σ_g' c(y, g'), which is exactly Zhao et al.'s (EMNLP 2017) co-occurrence bias
  b(o, g); labels with b(o, g) > 1/|G| are "skewed towards g"; the lift P(g | y) / P(g)
  accounts for unequal base rates (the criticism of Wang & Russakovsky 2021);
* the labels most skewed towards each group (largest P(g | y), ties → more samples);
* conflict ratio: for a BiasedDataset its own ``conflict_ratio`` (samples outside the aligned cells);
  for label arrays the share of (sample, label) occurrences whose protected value is not the label's
  majority value;
* optionally λ_D (Wang et al. 2019) with a 95 % t-interval over rounds (binary protected only; slow-ish).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from debiaskit.data.base import BiasedDataset
from debiaskit.data.label_table import LabelTable
from debiaskit.errors import DebiaskitError
from debiaskit.leakage import AttackerConfig, dataset_leakage

__all__ = ["BiasCard", "bias_card", "format_bias_card"]


@dataclass
class BiasCard:
    """Result of :func:`bias_card` (JSON-able through :meth:`to_dict`)."""

    name: str
    split: str
    size: int
    multilabel: bool
    label_names: list[str]
    protected_names: list[str]
    counts: list[list[int]]
    base_rate: list[float]
    p_protected_given_label: list[list[float | None]]
    most_skewed: dict[str, list[dict[str, Any]]]
    conflict_ratio: float
    conflict_definition: str
    leakage: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def zhao_bias(self) -> list[list[float | None]]:
        """Zhao et al. 2017 b(o, g) = c(o, g) / Σ_g' c(o, g') — identical to P(g | label)."""
        return self.p_protected_given_label

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["zhao_bias_note"] = "b(o,g) = c(o,g)/sum_g' c(o,g') equals p_protected_given_label"
        return d


def _from_input(data: Any, protected: Any, label_names: Any, protected_names: Any
                ) -> tuple[np.ndarray, np.ndarray, bool, list[str], list[str], str, str, float | None, str]:
    if isinstance(data, BiasedDataset):
        y = data.targets.cpu().numpy()
        g = data.bias.cpu().numpy()
        ln = list(data.class_names or [str(i) for i in range(data.num_classes)])
        pn = list(data.bias_names or [str(i) for i in range(data.num_bias)])
        return (y, g, False, ln, pn, data.name, data.split, float(data.conflict_ratio),
                "share of samples outside the dataset's bias-aligned (target, bias) cells")
    if isinstance(data, LabelTable):
        return (data.labels, data.protected, data.multilabel, list(data.label_names), list(data.protected_names),
                data.name, data.split, None, "")
    if protected is None:
        raise DebiaskitError("bias_card: give `protected` with label arrays")
    try:
        y = np.asarray(data)
    except ValueError:
        raise DebiaskitError("bias_card: label vectors of inconsistent widths") from None
    if y.dtype == object or y.ndim not in (1, 2):
        raise DebiaskitError("bias_card: labels must be 1-D class ids or a 2-D multi-hot matrix (consistent widths)")
    gv, g = np.unique(np.asarray(protected).reshape(-1), return_inverse=True)
    if len(g) != len(y):
        raise DebiaskitError(f"bias_card: {len(y)} label rows but {len(g)} protected values")
    multilabel = y.ndim == 2
    k = y.shape[1] if multilabel else int(y.max()) + 1
    ln = list(label_names) if label_names is not None else [str(i) for i in range(k)]
    pn = list(protected_names) if protected_names is not None else [str(v) for v in gv]
    return y, g, multilabel, ln, pn, "labels", "all", None, ""


def bias_card(
    data: Any, protected: Any = None, *, label_names: list[str] | None = None,
    protected_names: list[str] | None = None, top_k: int = 10, min_count: int = 1, leakage: bool = False,
    leakage_rounds: int = 5, leakage_epochs: int = 20, seed: int = 0,
) -> BiasCard:
    """Bias card of a dataset / label table / label arrays (see the module docstring).

    Args:
        data: :class:`BiasedDataset`, :class:`LabelTable`, or labels (``(N,)`` ids or ``(N, K)`` multi-hot).
        protected: protected attribute for raw label arrays (ignored otherwise).
        top_k: labels listed per group in ``most_skewed``.
        min_count: labels with fewer occurrences are left out of ``most_skewed``.
        leakage: also estimate λ_D (binary protected only; 60/20/20 split, as many as balance allows).
        leakage_rounds, leakage_epochs: attacker budget for λ_D.
    """
    y, g, multilabel, ln, pn, name, split, conflict, conflict_def = _from_input(data, protected, label_names,
                                                                               protected_names)
    g = np.asarray(g, np.int64)
    n = len(g)
    if n == 0:
        raise DebiaskitError("bias_card: empty dataset")
    n_g = max(len(pn), int(g.max()) + 1)
    k = y.shape[1] if multilabel else max(len(ln), int(y.max()) + 1)
    if len(ln) < k:
        ln = ln + [str(i) for i in range(len(ln), k)]
    if multilabel:
        yb = np.asarray(y).astype(np.float64)
        onehot_g = np.eye(n_g)[g]
        counts = (yb.T @ onehot_g).astype(np.int64)  # (K, G)
    else:
        counts = np.bincount(np.asarray(y) * n_g + g, minlength=k * n_g).reshape(k, n_g)
    tot = counts.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tot > 0, counts / np.maximum(tot, 1), np.nan)
    base = np.bincount(g, minlength=n_g) / n
    most: dict[str, list[dict[str, Any]]] = {}
    eligible = tot[:, 0] >= max(1, min_count)
    for j in range(n_g):
        score = np.where(eligible, p[:, j], -1.0)
        order = np.lexsort((-tot[:, 0], -score))
        rows = []
        for i in order[:top_k]:
            if score[i] < 0:
                break
            rows.append({"label": ln[i], "p": float(p[i, j]), "count": int(tot[i, 0]),
                         "count_in_group": int(counts[i, j]),
                         "lift": float(p[i, j] / base[j]) if base[j] > 0 else None,
                         "zhao_skewed": bool(p[i, j] > 1.0 / n_g)})
        most[pn[j] if j < len(pn) else str(j)] = rows
    if conflict is None:
        maj = counts.argmax(1)  # (K,)
        occ = tot[:, 0].sum()
        conflict = float(1.0 - counts[np.arange(k), maj].sum() / occ) if occ else float("nan")
        conflict_def = "share of (sample, label) occurrences whose protected value is not the label's majority value"
    card = BiasCard(
        name=name, split=split, size=n, multilabel=multilabel, label_names=ln,
        protected_names=pn + [str(i) for i in range(len(pn), n_g)], counts=counts.tolist(),
        base_rate=base.tolist(),
        p_protected_given_label=[[None if np.isnan(v) else float(v) for v in row] for row in p],
        most_skewed=most, conflict_ratio=conflict, conflict_definition=conflict_def,
    )
    if leakage:
        card.leakage = _leakage(y, g, n_g, rounds=leakage_rounds, epochs=leakage_epochs, seed=seed,
                                num_classes=None if multilabel else k)
    return card


def _leakage(y: np.ndarray, g: np.ndarray, n_g: int, *, rounds: int, epochs: int, seed: int,
             num_classes: int | None) -> dict[str, Any]:
    if len(np.unique(g)) != 2:
        return {"skipped": f"λ_D needs a binary protected attribute; this one has {len(np.unique(g))} values"}
    from scipy import stats

    r = dataset_leakage(y, g, num_classes=num_classes, rounds=rounds, seed=seed, config=AttackerConfig(epochs=epochs))
    vals = np.asarray(r.per_round)
    if rounds > 1:
        half = float(stats.t.ppf(0.975, rounds - 1) * vals.std(ddof=1) / np.sqrt(rounds))
    else:
        half = float("nan")
    return {"mean": r.mean, "std": r.std, "ci95": [r.mean - half, r.mean + half], "per_round": r.per_round,
            "rounds": rounds, "epochs": epochs, "per_group": r.per_group, "seed": seed,
            "splits": r.config.get("splits")}


def format_bias_card(card: BiasCard, *, top_k: int | None = None) -> str:
    """Human-readable text of a :class:`BiasCard`."""
    lines = [f"bias card: {card.name} [{card.split}]  {card.size} samples, {len(card.label_names)} "
             f"{'labels (multi-label)' if card.multilabel else 'classes'}, protected: "
             + ", ".join(f"{n} {100 * b:.1f}%" for n, b in zip(card.protected_names, card.base_rate))]
    lines.append(f"conflict ratio: {card.conflict_ratio:.4f} ({card.conflict_definition})")
    if card.leakage:
        lk = card.leakage
        if "skipped" in lk:
            lines.append(f"leakage λ_D: skipped ({lk['skipped']})")
        else:
            lines.append(f"leakage λ_D: {100 * lk['mean']:.2f} ± {100 * lk['std']:.2f} % "
                         f"(95% CI {100 * lk['ci95'][0]:.2f}–{100 * lk['ci95'][1]:.2f}; {lk['rounds']} rounds, "
                         f"{lk['epochs']} epochs)")
    for grp, rows in card.most_skewed.items():
        rows = rows[:top_k] if top_k else rows
        lines.append(f"labels most skewed towards {grp}  (P({grp} | label), count, lift vs base rate):")
        w = max([len(r["label"]) for r in rows] + [5])
        for r in rows:
            lift = "" if r["lift"] is None else f"  x{r['lift']:.2f}"
            lines.append(f"  {r['label']:<{w}}  {r['p']:.3f}  n={r['count']}{lift}")
    return "\n".join(lines)
