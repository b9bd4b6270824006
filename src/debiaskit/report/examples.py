"""Example images for a run report: what the model keys on.

Two grids, computed from a run directory's saved weights and its rebuilt data (``debiaskit report RUN
--examples``):

* **the most bias-conflicting training samples as the biased network sees them** — for LfF / DisEnt, ranked
  by the relative-difficulty weight ``W(x) = CE_b(x) / (CE_b(x) + CE_d(x))`` of the biased (GCE-trained) and
  the debiased network (Nam et al., NeurIPS 2020, Eq. 3; Lee et al., NeurIPS 2021, Sec. 3.1), evaluated with the
  final weights (training uses running averages of the losses; the ranking here is a snapshot). Methods without a
  biased branch are ranked by their own cross-entropy. The share of truly bias-conflicting samples among them,
  against the training base rate, says whether the biased branch found the bias;
* **test samples the model gets wrong in its worst (target, bias) cells**.

Ranking the training set costs one forward pass of each network over it; at most ``max_train`` samples
(a fixed random subset) are scored on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from debiaskit.data.augment import make_batch_transform
from debiaskit.experiments import rundir
from debiaskit.report import plots

__all__ = ["biased_logits", "examples_context"]


def biased_logits(method: Any, x: Any) -> Any | None:
    """Logits of the method's biased branch for a batch ``x`` (LfF: ``model_b``; DisEnt: the bias head), or None."""
    with torch.no_grad():
        if hasattr(method, "predict_biased"):
            return method.predict_biased(x)
        if all(hasattr(method, a) for a in ("enc_i", "enc_b", "head_b")):  # DisEnt: bias head on [z_i; z_b]
            method.eval()
            return method.head_b(method.enc_i.features(x), method.enc_b.features(x))
    return None


def _hwc(images: Any) -> np.ndarray:
    a = images.cpu().numpy()
    return np.transpose(a, (0, 2, 3, 1))


def _logits(method: Any, ds: Any, idx: np.ndarray, device: Any, *, biased: bool, batch: int = 1024) -> Any | None:
    transform = make_batch_transform(ds.info, train=False)
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            x = transform(ds.images[torch.as_tensor(idx[s:s + batch])].to(device))
            o = biased_logits(method, x) if biased else method.predict(x)
            if o is None:
                return None
            out.append(o.float().cpu())
    return torch.cat(out) if out else None


def examples_context(run_dir: str | Path, *, selection: str | None = None, per_grid: int = 24,
                     max_train: int = 20000, device: str = "cpu", data_dir: str | Path | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """The example grids of a run directory: ``{"figures": [{uri, alt, caption}], "findings": [...]}``."""
    run = rundir.load_run(run_dir, device=device, data_dir=data_dir)
    splits = run.splits
    train = splits["train"]
    if train.multilabel:
        return {"figures": [], "findings": [], "note": "multi-label data: no example grids"}
    method = run.method(selection)
    dev = run.device
    cn = train.class_names or [str(i) for i in range(train.num_classes)]
    bn = train.bias_names or [str(i) for i in range(train.num_bias)]
    rng = np.random.default_rng(seed)
    n = len(train)
    idx = np.arange(n) if n <= max_train else np.sort(rng.choice(n, max_train, replace=False))
    y = train.targets[torch.as_tensor(idx)].long()
    b = train.bias[torch.as_tensor(idx)].long()
    conflicting = train.conflicting[torch.as_tensor(idx)].cpu().numpy().astype(bool)
    ce_d = F.cross_entropy(_logits(method, train, idx, dev, biased=False), y, reduction="none")
    lb = _logits(method, train, idx, dev, biased=True)
    figures, findings = [], []
    if lb is not None:
        ce_b = F.cross_entropy(lb, y, reduction="none")
        score = (ce_b / (ce_b + ce_d + 1e-8)).numpy()
        how = "relative difficulty W = CE_b / (CE_b + CE_d) of the biased and debiased networks"
        short = "W"
    else:
        score = ce_d.numpy()
        how = "the model's own cross-entropy (this method has no biased branch)"
        short = "CE"
    order = np.argsort(-score, kind="stable")[:per_grid]
    imgs = _hwc(train.images[torch.as_tensor(idx[order])])
    caps = [f"y={cn[int(y[i])]} b={bn[int(b[i])]}\n{short}={score[i]:.2f}" + (" ✗" if conflicting[i] else "")
            for i in order]
    hit, base = float(conflicting[order].mean()), float(conflicting.mean())
    sub = "" if len(idx) == n else f" (of a random {len(idx):,} of {n:,})"
    figures.append({"uri": plots.examples_grid(imgs, caps, title=f"training samples ranked by {short}{sub}"),
                    "alt": "most bias-conflicting training samples",
                    "caption": f"The {len(order)} training samples ranked highest by {how}; ✗ = truly bias-conflicting "
                               f"(target and bias not an aligned pair). {100 * hit:.0f} % of them are conflicting "
                               f"against a base rate of {100 * base:.1f} %."})
    findings.append({"level": "good" if hit > max(0.5, 3 * base) else "warn",
                     "text": f"Of the {len(order)} training samples ranked highest by {how}, {100 * hit:.0f} % are "
                             f"bias-conflicting (base rate {100 * base:.1f} %)"
                             + (": the ranking finds the bias." if hit > max(0.5, 3 * base) else
                                ": the ranking does not single out the bias-conflicting samples.")})
    test = splits["test"] if "test" in splits else None
    if test is not None:
        tidx = np.arange(len(test))
        pred = _logits(method, test, tidx, dev, biased=False).argmax(1).numpy()
        ty, tb = test.targets.cpu().numpy(), test.bias.cpu().numpy()
        K, G = test.num_classes, test.num_bias
        cnt = np.zeros((K, G))
        ok = np.zeros((K, G))
        np.add.at(cnt, (ty, tb), 1)
        np.add.at(ok, (ty, tb), (pred == ty).astype(float))
        acc = np.where(cnt > 0, ok / np.maximum(cnt, 1), np.inf)
        worst = np.argsort(acc, axis=None, kind="stable")[:4]
        images: list[np.ndarray | None] = []
        caps = []
        per = max(1, per_grid // 4)
        for flat in worst:
            i, j = np.unravel_index(int(flat), acc.shape)
            if not np.isfinite(acc[i, j]) or acc[i, j] >= 1:
                continue
            wrong = np.flatnonzero((ty == i) & (tb == j) & (pred != ty))[:per]
            images += list(_hwc(test.images[torch.as_tensor(wrong)])) + [None] * (per - len(wrong))  # one row a cell
            caps += [f"y={cn[i]} b={bn[j]}\npred {cn[int(pred[w])]}" for w in wrong] + [""] * (per - len(wrong))
        if any(im is not None for im in images):
            figures.append({"uri": plots.examples_grid(images, caps, ncols=per,
                                                       title="test samples the model gets wrong, worst cells first"),
                            "alt": "misclassified test samples per cell",
                            "caption": "One row per (target, bias) cell, the cells with the lowest test accuracy first; "
                                       "each image is a test sample of that cell and the class the model predicted."})
    return {"figures": figures, "findings": findings, "note": ""}
