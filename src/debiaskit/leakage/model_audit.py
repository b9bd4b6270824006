"""Leakage audit of a trained model: λ_M, λ_D(F1) and Δ = λ_M − λ_D(F1) (Wang et al., ICCV 2019, Sec. 3).

:func:`audit_model` takes a loaded run (:func:`debiaskit.experiments.rundir.load_run`, or anything with the
same ``splits`` / ``predict_logits`` interface, see :class:`RunLike`) and returns the report that
``debiaskit audit model`` writes as ``report.json``; :func:`format_model_audit` renders it as Markdown.

>>> from debiaskit.experiments.rundir import load_run
>>> from debiaskit.leakage import audit_model, format_model_audit
>>> rep = audit_model(load_run("runs/vanilla"), epochs=100, rounds=5)   # doctest: +SKIP
>>> print(format_model_audit(rep))                                       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch

from debiaskit import __version__
from debiaskit.errors import DebiaskitError
from debiaskit.leakage.attacker import AttackerConfig, ProgressFn
from debiaskit.leakage.leakage import amplification, leakage_at_f1, macro_f1, model_leakage

__all__ = ["RunLike", "audit_model", "format_model_audit"]

#: attacker inputs understood by :func:`audit_model` (the paper uses the logits)
KINDS = ("logits", "probabilities", "thresholded")


class RunLike(Protocol):
    """What :func:`audit_model` needs from a run: its data splits and the model's logits on a split."""

    @property
    def splits(self) -> Mapping[str, Any]: ...  # split name -> BiasedDataset (targets, bias, num_classes)

    def predict_logits(self, split: str) -> torch.Tensor: ...


class _Steps(Protocol):
    """The optional progress reporter of :func:`audit_model` (see :class:`debiaskit.progress.Progress`)."""

    def announce(self, text: str) -> None: ...

    def phase(self, what: str, *, unit: str = ...) -> Any: ...


def audit_model(run: RunLike, *, kind: str = "logits", epochs: int = 20, rounds: int = 5, points: int = 5,
                max_per_group: int = 3000, seed: int = 0, threads: int | None = None,
                progress: _Steps | None = None) -> dict[str, Any]:
    """λ_M, λ_D(F1) and Δ of a trained run; returns the audit report (a JSON-ready dict).

    The attacker is trained on the model's outputs on the run's own ``train`` split (as the authors' code
    computes λ_M; ``docs/leakage.md``), selected on ``val`` (or the first other split; with none, half of
    ``test``) and evaluated on ``test``. The task is single-label (the run's logits over ``num_classes``); the
    protected attribute is the dataset's bias attribute (G ≥ 2 groups; with G > 2 leakage is plain G-way
    accuracy, chance 1/G). Model F1 is the macro-F1 of the argmax on ``test``; λ_D(F1) is read off a curve of
    ``points`` perturbation levels spanning model F1 ± 0.15 (ground truth randomly perturbed, Wang et al.
    2019, Sec. 3.2).

    Args:
        run: a loaded run (:class:`RunLike`).
        kind: attacker input, one of ``logits`` (paper), ``probabilities``, ``thresholded``.
        epochs, rounds: attacker epochs (paper: 100) and leakage rounds (paper: 5).
        points: F1 grid points of the λ_D(F1) curve (at least 2 are used).
        max_per_group: cap on the protected-balanced attacker train subset per group; val / test get half.
        seed: seed of the subsets, perturbations and attackers.
        threads: torch CPU threads for the attackers (None: unchanged).
        progress: optional reporter with ``announce(text)`` and ``phase(what, unit=...)`` (a context manager
            returning a ``(done, total)`` callback), e.g. :class:`debiaskit.progress.Progress`.

    Raises:
        DebiaskitError: a bad option, or a run without ``train`` and ``test`` splits.
    """
    if kind not in KINDS:
        raise DebiaskitError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    for name, v in (("epochs", epochs), ("rounds", rounds), ("points", points), ("max_per_group", max_per_group)):
        if int(v) < 1:
            raise DebiaskitError(f"{name} must be >= 1, got {v}")
    splits = run.splits
    names = list(splits)
    if "train" not in names or "test" not in names:
        raise DebiaskitError(f"the run's dataset needs train and test splits; has {', '.join(names)}")
    val_name = "val" if "val" in names else next((s for s in names if s not in ("train", "test")), None)
    data = {}
    needed = ["train", *([val_name] if val_name else []), "test"]
    if progress is not None:
        progress.announce(f"computing the model's logits on {', '.join(needed)} "
                          f"({', '.join(str(len(splits[s].targets)) for s in needed)} samples)")
    for s in needed:
        ds = splits[s]
        data[s] = (np.asarray(run.predict_logits(s).cpu().numpy(), np.float32), ds.targets.cpu().numpy(),
                   ds.bias.cpu().numpy())
    if val_name is None:
        lo, y, g = data["test"]
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(g))
        h1, h2 = np.sort(perm[: len(g) // 2]), np.sort(perm[len(g) // 2:])
        data["val"] = (lo[h1], y[h1], g[h1])
        data["test"] = (lo[h2], y[h2], g[h2])
        val_name = "val (half of test)"
        vkey = "val"
    else:
        vkey = val_name
    n_classes = int(splits["train"].num_classes)
    lt, yt, gt = data["train"]
    lv, yv, gv = data[vkey]
    le, ye, ge = data["test"]
    model_f1 = float(macro_f1(ye, le.argmax(1), multilabel=False))
    cfg = AttackerConfig(epochs=epochs, num_threads=threads)
    sizes = (max_per_group, max(1, max_per_group // 2), max(1, max_per_group // 2))
    with _phase(progress, f"λ_M: {rounds} attacker(s) on the model's {kind}, {epochs} epochs") as tick:
        lam_m = model_leakage(lt, gt, val=(lv, gv), test=(le, ge), multilabel=False, kind=kind, sizes=sizes,
                              rounds=rounds, seed=seed, config=cfg, progress=tick)
    hi = min(0.999, model_f1 + 0.15)
    lo_f = max(0.02, model_f1 - 0.15)
    f1_grid = list(np.linspace(lo_f, hi, max(2, points)))
    with _phase(progress, f"λ_D(F1) curve: {len(f1_grid)} F1 points x {rounds} round(s), {epochs} epochs") as tick:
        curve, lam_d, extrap = leakage_at_f1(yt, gt, val=(yv, gv), test=(ye, ge), model_f1=model_f1, f1_grid=f1_grid,
                                            num_classes=n_classes, sizes=sizes, rounds=rounds, seed=seed, config=cfg,
                                            progress=tick)
    amp = amplification(lam_m, curve, model_f1)
    return {"version": __version__, "seed": seed, "run": str(getattr(run, "path", "")), "kind": kind,
            "epochs": epochs, "rounds": rounds,
            "splits": {"attacker_train": "train (model outputs on its own training images)",
                       "attacker_val": val_name, "attacker_test": "test"},
            "data_fingerprint": getattr(splits, "fingerprint", None), "model_f1": model_f1,
            "lambda_M": lam_m.to_dict(), "lambda_D_at_F1": lam_d, "extrapolated": extrap, "delta": amp["delta"],
            "curve": curve.to_dict()}


class _NoPhase:
    def __enter__(self) -> ProgressFn | None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _phase(progress: _Steps | None, what: str) -> Any:
    return _NoPhase() if progress is None else progress.phase(what, unit="epoch")


def format_model_audit(report: dict[str, Any], *, title: str | None = None) -> str:
    """The Markdown summary of an :func:`audit_model` report (λ_M, λ_D(F1), Δ and the curve table)."""
    lm = report["lambda_M"]
    epochs = report.get("epochs", (lm.get("config") or {}).get("epochs", "?"))
    rounds = report.get("rounds", len(lm.get("per_round") or []))
    lines = [f"# {title or 'Leakage audit of ' + str(report.get('run'))}", "",
             f"debiaskit {report.get('version', __version__)}, seed {report.get('seed')}, attacker input: "
             f"{report.get('kind')}, {rounds} rounds, {epochs} epochs (paper: 100)", "",
             f"- model macro-F1 (test): {report['model_f1']:.4f}",
             f"- λ_M: {100 * lm['mean']:.2f} ± {100 * lm['std']:.2f} %",
             f"- λ_D(F1): {100 * report['lambda_D_at_F1']:.2f} %"
             + (" (extrapolated: model F1 outside the curve)" if report["extrapolated"] else ""),
             f"- Δ = λ_M − λ_D(F1): {100 * report['delta']:+.2f} points", "",
             "| p | F1 (val) | λ_D |", "|---|---|---|"]
    c = report["curve"]
    for p, f, lk, sd in zip(c["p"], c["f1_mean"], c["leakage_mean"], c["leakage_std"]):
        lines.append(f"| {p:.4f} | {f:.4f} | {100 * lk:.2f} ± {100 * sd:.2f} |")
    return "\n".join(lines) + "\n"
