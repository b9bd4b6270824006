"""Audit any model's predictions: fairness metrics with bootstrap intervals, a Markdown/JSON report and plots.

Input is a table (CSV or parquet) with one row per sample: ground-truth target column(s), score
column(s) and a protected-attribute column. Three layouts are understood:

* one binary target + one score column;
* k binary targets + k score columns (multi-label; paired in order);
* one multi-class target + one score column per class (one-vs-rest). Score columns are matched to
  classes by a ``_<class>`` suffix (``score_0``, ``p_cat``), else positionally to classes ``0..K-1``;
* one (multi-class or binary) target + a predicted-class column ``--pred`` (with or without score
  columns).

With class predictions (``--pred``, else the argmax of per-class scores) the report also has the group
accuracies of the LfF / DisEnt protocol (Nam et al. NeurIPS 2020; Lee et al. NeurIPS 2021): accuracy,
accuracy per protected group, unbiased accuracy (mean over the non-empty (class, group) cells),
worst-group accuracy (Sagawa et al. ICLR 2020) and, when the protected values name classes (a bias
attribute such as colour = digit), aligned and conflicting accuracy — each with bootstrap intervals on the
same resamples as the other metrics.

Per (binary or one-vs-rest) task we report AP, the decision threshold (calibrated / F1-optimal on
``--val`` or a fixed value), DEO, equalized-odds and demographic-parity gaps, the CVPR 2021 bias
amplification (the A→T directional BA with T = {y=0, y=1}, A = protected groups), the score KL
(``aligned`` and ``official``) and per-group rates, each with bootstrap intervals. Multi-label and
multi-class inputs also get mAP, directional BA over all tasks and Zhao et al.'s BA.

Everything is validated before any output is created, written into a temporary directory next to the
output and renamed into place at the end: an interrupted or failed audit never leaves a partial report.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from debiaskit import __version__
from debiaskit.errors import DebiaskitError
from debiaskit.io import md_cell, write_json, write_text
from debiaskit.metrics import (
    GroupReport,
    MetricWarning,
    average_precision,
    bias_amplification_directional,
    bias_amplification_zhao,
    bootstrap,
    bootstrap_many,
    calibrated_threshold,
    demographic_parity_difference,
    demographic_parity_ratio,
    deo,
    equalized_odds_difference,
    f1_optimal_threshold,
    score_kl,
)
from debiaskit.metrics._batched import CellIndex, ones_weights, safe_div
from debiaskit.metrics._validation import check_groups
from debiaskit.metrics.bootstrap import interval, resample_blocks, simultaneous_band
from debiaskit.progress import Progress

__all__ = ["AuditConfig", "read_table", "run_audit", "build_tasks", "Task"]


@dataclass
class AuditConfig:
    file: Path
    targets: list[str]
    scores: list[str]
    protected: str
    out: Path
    val: Path | None = None
    threshold: str = "auto"  # "calibrated" | "f1" | a number in (0, 1) | "auto"
    n_boot: int = 500
    ci: float = 0.95
    seed: int = 0
    logits: bool = False
    force: bool = False
    plots: bool = True
    pred: str | None = None  # predicted-class column (single multi-class or binary target)


@dataclass
class Task:
    name: str
    y: np.ndarray  # int8 0/1
    s: np.ndarray  # float scores in [0, 1]
    y_val: np.ndarray | None = None
    s_val: np.ndarray | None = None


@dataclass
class _Tasks:
    mode: str  # "binary" | "multilabel" | "multiclass"
    tasks: list[Task]
    class_labels: list[Any] = field(default_factory=list)
    y_class: np.ndarray | None = None  # multiclass: class index per sample
    pred_class: np.ndarray | None = None  # predicted class index: the --pred column, else argmax of the scores
    pred_source: str = ""  # "pred column 'x'" | "argmax of the score columns"


# ---- reading -----------------------------------------------------------------------------------------


def read_table(path: str | os.PathLike) -> Any:
    """Read a CSV or parquet file into a DataFrame; every failure is a one-line DebiaskitError."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DebiaskitError(f"input file not found: {p}")
    if p.stat().st_size == 0:
        raise DebiaskitError(f"input file is empty: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                df = pd.read_parquet(p)
            except ImportError as e:
                raise DebiaskitError(f"reading parquet needs pyarrow or fastparquet (pip install pyarrow): {p}") from e
        elif suffix in (".csv", ".txt", ".tsv", ".gz"):
            df = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise DebiaskitError(f"unsupported file type {suffix!r} for {p}; use .csv or .parquet")
    except DebiaskitError:
        raise
    except pd.errors.EmptyDataError as e:
        raise DebiaskitError(f"input file is empty: {p}") from e
    except Exception as e:  # parser errors of all kinds
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DebiaskitError(f"cannot read {p}: {msg}") from e
    if len(df) == 0:
        raise DebiaskitError(f"input file has a header but no rows: {p}")
    return df


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _require_columns(df: Any, cols: list[str], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        avail = ", ".join(map(str, list(df.columns)[:20]))
        raise DebiaskitError(f"column(s) {missing} not found in {path}; available: {avail}")


def _numeric(df: Any, col: str, path: Path) -> np.ndarray:
    import pandas as pd

    v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DebiaskitError(
            f"column {col!r} in {path} has {int(bad.sum())} missing/non-numeric/inf value(s) (first at row {row})"
        )
    return v


def _binary(v: np.ndarray, col: str, path: Path) -> np.ndarray:
    bad = (v != 0) & (v != 1)
    if bad.any():
        vals = np.unique(v[bad])[:5].tolist()
        raise DebiaskitError(
            f"target {col!r} in {path} must be binary 0/1, found {vals}; for a multi-class target pass one "
            "--score column per class"
        )
    return v.astype(np.int8)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _check_unit(s: np.ndarray, col: str, path: Path) -> None:
    if (s < 0).any() or (s > 1).any():
        raise DebiaskitError(
            f"score column {col!r} in {path} has values outside [0, 1] (min {s.min():.4g}, max {s.max():.4g}); "
            "pass --logits if the scores are logits"
        )


def _class_columns(score_cols: list[str], labels: list[Any], target: str) -> list[int] | None:
    """Map each class label to a score column by ``_<label>`` suffix; None if that is ambiguous."""
    out = []
    for lab in labels:
        hits = [i for i, c in enumerate(score_cols) if str(c).endswith(f"_{lab}") or str(c) == str(lab)]
        if len(hits) != 1:
            return None
        out.append(hits[0])
    return out


def build_tasks(
    df: Any, cfg: AuditConfig, *, path: Path, val_df: Any = None, val_path: Path | None = None
) -> _Tasks:
    """Validate the columns and turn the table into binary tasks (see module docstring)."""
    T, S = cfg.targets, cfg.scores
    frames = [(df, path)] + ([(val_df, val_path)] if val_df is not None else [])
    for d, p in frames:
        _require_columns(d, [*T, *S, cfg.protected] if d is df else [*T, *S], p)
    if cfg.pred is not None:
        if len(T) != 1:
            raise DebiaskitError("--pred gives the predicted class of one target; pass exactly one --target")
        _require_columns(df, [cfg.pred], path)
        if df[cfg.pred].isna().any():
            raise DebiaskitError(f"predicted-class column {cfg.pred!r} has missing values")
    if cfg.pred is not None and not S:
        return _pred_only_tasks(df, cfg, path)
    if len(T) == len(S):
        tasks = []
        for t, s in zip(T, S):
            parts = []
            for d, p in frames:
                y = _binary(_numeric(d, t, p), t, p)
                sc = _numeric(d, s, p)
                sc = _sigmoid(sc) if cfg.logits else sc
                _check_unit(sc, s, p)
                parts.append((y, sc))
            task = Task(name=t, y=parts[0][0], s=parts[0][1])
            if len(parts) > 1:
                task.y_val, task.s_val = parts[1]
            tasks.append(task)
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise DebiaskitError("each --target column may appear only once")
        out = _Tasks("binary" if len(tasks) == 1 else "multilabel", tasks)
        if cfg.pred is not None:  # one binary target with its predicted class
            out.class_labels = [0, 1]
            out.y_class = tasks[0].y.astype(np.int64)
            out.pred_class = _map_pred(df, cfg.pred, [0, 1], path)
            out.pred_source = f"pred column {cfg.pred!r}"
        return out
    if len(T) == 1 and len(S) > 1:
        t = T[0]
        import pandas as pd

        all_vals = pd.concat([d[t] for d, _ in frames], ignore_index=True)
        if all_vals.isna().any():
            raise DebiaskitError(f"target column {t!r} has missing values")
        labels = sorted(pd.unique(all_vals).tolist(), key=lambda v: (str(type(v)), v))
        mapping = _class_columns(S, labels, t)
        if mapping is None:
            ints = all(isinstance(v, (int, np.integer)) or (isinstance(v, float) and float(v).is_integer()) for v in labels)
            if ints and min(labels) >= 0 and max(labels) < len(S):
                labels = list(range(len(S)))
                mapping = list(range(len(S)))
            else:
                raise DebiaskitError(
                    f"target {t!r} has classes {labels[:10]} but the {len(S)} score columns cannot be matched to "
                    "them; name them <prefix>_<class> or use integer classes 0..K-1 in score-column order"
                )
        else:
            # score columns not matched to a class present in the data are kept as classes that never occur
            extra = [i for i in range(len(S)) if i not in mapping]
            if extra:
                raise DebiaskitError(f"score column(s) {[S[i] for i in extra]} match no class of target {t!r}")
        per_frame = []
        for d, p in frames:
            raw = d[t].to_numpy()
            M = np.stack([_numeric(d, S[j], p) for j in mapping], axis=1)
            M = _softmax(M) if cfg.logits else M
            for j in mapping:
                _check_unit(M[:, mapping.index(j)], S[j], p)
            cls = np.full(len(raw), -1)
            for k, lab in enumerate(labels):
                cls[_eq(raw, lab)] = k
            per_frame.append((cls, M))
        cls, M = per_frame[0]
        tasks = []
        for k, lab in enumerate(labels):
            task = Task(name=f"{t}={lab}", y=(cls == k).astype(np.int8), s=M[:, k])
            if len(per_frame) > 1:
                task.y_val = (per_frame[1][0] == k).astype(np.int8)
                task.s_val = per_frame[1][1][:, k]
            tasks.append(task)
        if cfg.pred is not None:
            pred_class, source = _map_pred(df, cfg.pred, labels, path), f"pred column {cfg.pred!r}"
        else:
            pred_class, source = M.argmax(1), "argmax of the score columns"
        return _Tasks("multiclass", tasks, class_labels=labels, y_class=cls, pred_class=pred_class, pred_source=source)
    raise DebiaskitError(
        f"got {len(T)} --target and {len(S)} --score columns: give one score per target, or one multi-class "
        "target with one score column per class"
    )


def _map_pred(df: Any, col: str, labels: list[Any], path: Path) -> np.ndarray:
    """Class index (into ``labels``) of each value of the predicted-class column."""
    raw = df[col].to_numpy()
    out = np.full(len(raw), -1)
    for k, lab in enumerate(labels):
        out[_eq(raw, lab)] = k
    if (out < 0).any():
        bad = sorted({str(v) for v in raw[out < 0]})[:5]
        raise DebiaskitError(f"predicted-class column {col!r} in {path} has values {bad} that are not classes of "
                             f"the target ({', '.join(map(str, labels[:10]))})")
    return out


def _pred_only_tasks(df: Any, cfg: AuditConfig, path: Path) -> _Tasks:
    """One target and its predicted class, no scores: only the accuracy and BA metrics apply."""
    import pandas as pd

    t = cfg.targets[0]
    if df[t].isna().any():
        raise DebiaskitError(f"target column {t!r} has missing values")
    vals = pd.concat([df[t], df[cfg.pred]], ignore_index=True)
    labels = sorted(pd.unique(vals).tolist(), key=lambda v: (str(type(v)), v))
    cls = _map_pred(df, t, labels, path)
    pred = _map_pred(df, cfg.pred, labels, path)
    if len(labels) < 2:
        raise DebiaskitError(f"target {t!r} and --pred {cfg.pred!r} hold a single class; nothing to evaluate")
    return _Tasks("multiclass", [], class_labels=labels, y_class=cls, pred_class=pred,
                  pred_source=f"pred column {cfg.pred!r}")


def _eq(raw: np.ndarray, lab: Any) -> np.ndarray:
    try:
        return raw.astype(type(lab)) == lab if not isinstance(lab, str) else raw.astype(str) == lab
    except (TypeError, ValueError):
        return raw == lab


# ---- computation -------------------------------------------------------------------------------------


def _threshold(task: Task, mode: str) -> tuple[float, str]:
    if mode not in ("calibrated", "f1"):
        return float(mode), "fixed"
    if task.y_val is not None:
        y, s, src = task.y_val, task.s_val, "validation file"
    else:
        y, s, src = task.y, task.s, "audited file itself (no --val: optimistic)"
    tau = calibrated_threshold(y, s) if mode == "calibrated" else f1_optimal_threshold(y, s)
    return float(tau), src


def _clean(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _boot_many(jobs: dict[str, Any], cfg: AuditConfig) -> dict[str, Any]:
    """Point values and (when n_boot >= 2) bootstrap summaries of several metrics on shared resamples."""
    if cfg.n_boot < 2:
        return {k: {"value": float(fn(*arrays, **kw))} for k, (fn, arrays, kw) in jobs.items()}
    res = bootstrap_many(jobs, n_boot=cfg.n_boot, ci=cfg.ci, seed=cfg.seed)
    return {k: {"value": r.point, "median": r.median, "std": r.std, "ci": [r.ci_low, r.ci_high], "n_nan": r.n_nan,
                "ci_method": r.ci_method}
            for k, r in res.items()}


def _audit_task(task: Task, g: np.ndarray, group_labels: list[str], cfg: AuditConfig, thr: str) -> dict[str, Any]:
    tau, src = _threshold(task, thr)
    pred = (task.s > tau).astype(np.int8)
    res: dict[str, Any] = {
        "n": int(len(task.y)),
        "positives": int(task.y.sum()),
        "prevalence": float(task.y.mean()),
        "threshold": {"mode": thr if thr in ("calibrated", "f1") else "fixed", "value": tau, "fitted_on": src},
        "predicted_positives": int(pred.sum()),
    }
    sf = {"sensitive_features": g}
    jobs: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {
        "ap": (average_precision, (task.y, task.s), {}),
        "deo": (deo, (task.y, pred), sf),
        "equalized_odds_difference": (equalized_odds_difference, (task.y, pred), sf),
        "demographic_parity_difference": (demographic_parity_difference, (task.y, pred), sf),
        "demographic_parity_ratio": (demographic_parity_ratio, (task.y, pred), sf),
        "bias_amplification": (bias_amplification_directional, (task.y, pred), sf),
    }
    if len(group_labels) == 2:
        jobs["kl_aligned"] = (score_kl, (task.y, task.s), {**sf, "mode": "aligned"})
    m = _boot_many(jobs, cfg)
    if len(group_labels) == 2:
        if cfg.n_boot >= 2:
            r = bootstrap(score_kl, task.y, task.s, sensitive_features=g, n_boot=cfg.n_boot, seed=cfg.seed,
                          mode="official", reduction="none", pool=True, convention="cvpr21")
            m["kl_official_cvpr21"] = {"value": r.median, "std": r.std, "ci": [r.ci_low, r.ci_high],
                                       "n_nan": r.n_nan, "ci_method": r.ci_method,
                                       "note": "median of pooled bootstrap values ± 2σ (CVPR 2021)"}
        else:
            m["kl_official_cvpr21"] = {"value": float(score_kl(task.y, task.s, sensitive_features=g, mode="official"))}
    else:
        res["kl_note"] = f"score KL compares two groups; {len(group_labels)} groups present, KL not computed"
    res["metrics"] = m
    rep = GroupReport(
        metrics=["count", "base_rate", "selection_rate", "tpr", "fpr", "accuracy", "ap"],
        y_true=task.y, y_pred=pred, y_score=task.s, sensitive_features=np.asarray(group_labels, dtype=object)[g],
        n_boot=cfg.n_boot if cfg.n_boot >= 2 else 0, ci=cfg.ci, seed=cfg.seed,
    )
    res["by_group"] = rep.to_dict()
    res["_group_report"] = rep
    res["_pred"] = pred
    return res


def _group_accuracy(tt: _Tasks, g: np.ndarray, groups: list[str], cfg: AuditConfig) -> dict[str, Any]:
    """LfF / DisEnt group accuracies of class predictions, with bootstrap intervals.

    Cells are (true class, protected group); the point values equal ``debiaskit.metrics.bias_metrics``
    (tested). Percentile intervals for accuracy, per-group, unbiased,
    aligned and conflicting accuracy; the worst-group accuracy (a minimum over cells, biased downwards
    under resampling) gets the simultaneous interval: a max-t band over all cell accuracies mapped
    through the minimum.
    """
    y, p = tt.y_class.astype(np.int64), tt.pred_class.astype(np.int64)
    K, G = len(tt.class_labels), len(groups)
    aligned = np.array([[str(c) == str(gr) for gr in groups] for c in tt.class_labels])  # (K, G)
    has_aligned = bool(aligned.any() and (~aligned).any())
    cells = CellIndex((y * G + g) * 2 + (y == p), K * G * 2)
    present = cells(ones_weights(len(y))).reshape(K, G, 2).sum(-1) > 0  # cells present in the data

    def values(R: Any) -> tuple[np.ndarray, np.ndarray]:
        c = cells(R).reshape(-1, K, G, 2)
        n_kg, ok_kg = c.sum(-1), c[..., 1]
        acc_kg = np.where(present, safe_div(ok_kg, n_kg), np.nan).reshape(len(c), -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            cols = [safe_div(ok_kg.sum((1, 2)), n_kg.sum((1, 2))), np.nanmean(acc_kg, 1), np.nanmin(acc_kg, 1)]
            cols += list(safe_div(ok_kg.sum(1), n_kg.sum(1)).T)  # per protected group
            if has_aligned:
                cols += [np.nanmean(np.where(aligned.ravel(), acc_kg, np.nan), 1),
                         np.nanmean(np.where(~aligned.ravel(), acc_kg, np.nan), 1)]
        return np.stack(cols, 1), acc_kg

    names = ["accuracy", "unbiased_accuracy", "worst_group_accuracy", *[f"group:{gr}" for gr in groups]]
    if has_aligned:
        names += ["aligned_accuracy", "conflicting_accuracy"]
    point, point_cells = values(ones_weights(len(y)))
    point, point_cells = point[0], point_cells[0]
    out: dict[str, Any] = {"predictions": tt.pred_source, "classes": [str(c) for c in tt.class_labels],
                           "aligned_cells": "class label equals protected value" if has_aligned else None}
    lo = hi = None
    methods = ["percentile"] * len(names)
    if cfg.n_boot >= 2:
        parts, cparts = [], []
        for R in resample_blocks(len(y), cfg.n_boot, seed=cfg.seed):
            v, c = values(R)
            parts.append(v)
            cparts.append(c)
        boot, bcells = np.concatenate(parts), np.concatenate(cparts)
        lo, hi, _ = interval(boot, point, ci=cfg.ci, method="percentile")
        keep = np.isfinite(point_cells)
        L, U, _ = simultaneous_band(bcells[:, keep], point_cells[keep], ci=cfg.ci)
        lo[2], hi[2] = L.min(), U.min()
        methods[2] = "simultaneous"
    metrics: dict[str, Any] = {}
    for j, name in enumerate(names):
        d: dict[str, Any] = {"value": float(point[j])}
        if lo is not None:
            d.update(ci=[float(lo[j]), float(hi[j])], ci_method=methods[j])
        metrics[name] = d
    out["metrics"] = metrics
    c0 = cells(ones_weights(len(y))).reshape(K, G, 2)
    out["cells"] = [{"class": str(tt.class_labels[k]), "group": groups[j], "aligned": bool(aligned[k, j]),
                     "count": int(c0[k, j].sum()), "accuracy": float(c0[k, j, 1] / c0[k, j].sum())}
                    for k in range(K) for j in range(G) if c0[k, j].sum() > 0]
    return out


def _audit_summary(tt: _Tasks, g: np.ndarray, preds: list[np.ndarray], cfg: AuditConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": tt.mode, "n_tasks": len(tt.tasks)}
    summary_jobs: dict[str, Any] = {}
    if tt.tasks:
        Y = np.stack([t.y for t in tt.tasks], 1)
        S = np.stack([t.s for t in tt.tasks], 1)
        summary_jobs["map"] = (average_precision, (Y, S), {})
    if tt.mode == "multiclass":
        y, p = tt.y_class, tt.pred_class
        K = len(tt.class_labels)
        Tm = np.eye(K, dtype=np.int8)[y]
        Pm = np.eye(K, dtype=np.int8)[p]
        out["predictions_for_ba"] = tt.pred_source
        if tt.pred_source.startswith("argmax"):
            out["argmax_accuracy"] = float((y == p).mean())  # also under group_accuracy.metrics.accuracy
    else:
        Tm, Pm = Y, np.stack(preds, 1)
        out["predictions_for_ba"] = "thresholded scores"
    summary_jobs["bias_amplification_directional_a2t"] = (bias_amplification_directional, (Tm, Pm), {"sensitive_features": g})
    summary_jobs["bias_amplification_zhao"] = (bias_amplification_zhao, (Tm, Pm), {"sensitive_features": g})
    out.update(_boot_many(summary_jobs, cfg))
    return out


# ---- plots -------------------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "target"


def _plot_rates(rep: Any, title: str, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bg = rep.by_group
    groups = list(bg.index)
    x = np.arange(len(groups))
    fig = Figure(figsize=(max(4.0, 1.2 * len(groups) + 2), 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ci = rep.by_group_ci() if rep.n_boot else None
    for k, (col, lab) in enumerate((("tpr", "TPR"), ("fpr", "FPR"))):
        vals = bg[col].to_numpy(dtype=float)
        err = None
        if ci is not None:
            lo = ci["ci_low"][col].to_numpy(dtype=float)
            hi = ci["ci_high"][col].to_numpy(dtype=float)
            err = np.nan_to_num(np.stack([vals - lo, hi - vals]).clip(min=0))
        ax.bar(x + (k - 0.5) * 0.38, np.nan_to_num(vals), width=0.38, yerr=err, capsize=3, label=lab)
    ax.set_xticks(x)
    ax.set_xticklabels([str(g) for g in groups])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("protected group")
    ax.set_ylabel("rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_scores(task: Task, g: np.ndarray, groups: list[str], tau: float, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2))
    FigureCanvasAgg(fig)
    bins = np.linspace(0, 1, 51)
    for j, cls in enumerate((1, 0)):
        ax = fig.add_subplot(1, 2, j + 1)
        for k, name in enumerate(groups):
            sel = (task.y == cls) & (g == k)
            if sel.any():
                ax.hist(task.s[sel], bins=bins, density=True, histtype="step", label=f"{name} (n={int(sel.sum())})")
        ax.axvline(tau, color="k", linestyle="--", linewidth=1)
        ax.set_title(f"{task.name}: scores | y={cls}", fontsize=9)
        ax.set_xlabel("score")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# ---- report ------------------------------------------------------------------------------------------


def _fmt(d: dict[str, Any] | None, scale: float = 1.0) -> str:
    if d is None:
        return "n/a"
    v = d.get("value")
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "NaN"
    s = f"{v * scale:.4f}"
    if "ci" in d and d["ci"][0] is not None and np.isfinite(d["ci"][0]):
        s += f" [{d['ci'][0] * scale:.4f}, {d['ci'][1] * scale:.4f}]"
    return s


_METHOD_NAMES = {"percentile": "percentile", "simultaneous": "simultaneous", "2sigma": "2σ", "basic": "basic",
                 "bca": "BCa"}

_LABELS = {
    "ap": "AP",
    "deo": "DEO = max pairwise TPR gap",
    "equalized_odds_difference": "Equalized-odds difference",
    "demographic_parity_difference": "Demographic-parity difference",
    "demographic_parity_ratio": "Demographic-parity ratio",
    "bias_amplification": "BA (A→T directional; = CVPR'21 BA for 2 groups)",
    "kl_aligned": "Score KL (aligned, default)",
    "kl_official_cvpr21": "Score KL (official CVPR'21 code, median ± 2σ)",
}


def _markdown(cfg: AuditConfig, meta: dict[str, Any], results: dict[str, Any], summary: dict[str, Any] | None,
              warns: list[str], group_acc: dict[str, Any] | None = None) -> str:
    ci_txt = (f"{cfg.ci * 100:g}% bootstrap intervals over {cfg.n_boot} resamples (seed {cfg.seed}), all metrics on the "
              "same resamples; the method of each interval is named next to it (percentile; simultaneous = max-t band "
              "over the groups' rates mapped through the gap, for gaps and ratios between groups; 2σ = median ± 2σ)")
    lines = [
        f"# Fairness audit of `{meta['input']['name']}`",
        "",
        f"- rows: {meta['input']['rows']}; sha256 `{meta['input']['sha256'][:16]}`",
        f"- protected attribute: `{md_cell(cfg.protected)}` with groups {', '.join(md_cell(g) for g in meta['groups'])}",
        f"- layout: {meta['mode']}; targets: {', '.join(cfg.targets)}; scores: {', '.join(cfg.scores) or 'none'}"
        + (f"; predicted class: {cfg.pred}" if cfg.pred else ""),
        (f"- threshold: {meta['threshold']}" + (f" (from `{cfg.val.name}`)" if cfg.val else "")) if results
        else "- threshold: none (class predictions only)",
        f"- intervals: {ci_txt}" if cfg.n_boot >= 2 else "- intervals: none (--n-boot 0)",
        f"- debiaskit {__version__}; definitions: docs/metrics.md",
        "",
        "Values are fractions (the CVPR 2021 tables show AP, DEO and BA ×100). Lower is fairer for DEO, the gaps, "
        "BA and KL; the demographic-parity ratio is fairer near 1.",
    ]
    for name, r in results.items():
        lines += ["", f"## Target `{name}`", ""]
        thr = r["threshold"]
        lines.append(
            f"n = {r['n']}, positives = {r['positives']} (prevalence {r['prevalence']:.4f}); threshold "
            f"{thr['value']:.6g} ({thr['mode']}, fitted on {thr['fitted_on']}); predicted positives {r['predicted_positives']}."
        )
        lines += ["", "| metric | value [CI] | interval |", "|---|---|---|"]
        for k, v in r["metrics"].items():
            lines.append(f"| {_LABELS.get(k, k)} | {_fmt(v)} | {_METHOD_NAMES.get(v.get('ci_method'), '')} |")
        if "kl_note" in r:
            lines += ["", f"_{r['kl_note']}_"]
        lines += ["", "Per group:", "", r["_group_report"].to_markdown(), ""]
        if cfg.plots:
            stem = _safe(name)
            lines += [f"![rates](plots/{stem}_rates.png) ![scores](plots/{stem}_scores.png)"]
    if group_acc is not None:
        ga = group_acc["metrics"]
        lines += ["", "## Group accuracies (class predictions)", "",
                  f"Predictions: {group_acc['predictions']}. Cells are (true class, protected group); unbiased = mean "
                  "over non-empty cells, worst-group = minimum cell (LfF / DisEnt protocol)"
                  + ("; aligned cells: class label equals the protected value." if group_acc["aligned_cells"] else "."),
                  "", "| metric | value [CI] |", "|---|---|"]
        for k, v in ga.items():
            label = f"accuracy in group {md_cell(k[6:])}" if k.startswith("group:") else k.replace("_", " ")
            lines.append(f"| {label} | {_fmt(v)} |")
        if any("ci_method" in v for v in ga.values()):
            lines += ["", "_Intervals: percentile; worst-group accuracy: simultaneous (max-t band over all cells, "
                      "minimum taken)._"]
        lines += ["", "| class | group | aligned | count | accuracy |", "|---|---|---|---|---|"]
        lines += [f"| {md_cell(c['class'])} | {md_cell(c['group'])} | {'yes' if c['aligned'] else 'no'} | {c['count']} | "
                  f"{c['accuracy']:.4f} |" for c in group_acc["cells"]]
    if summary is not None:
        lines += ["", "## All targets", "", "| metric | value [CI] |", "|---|---|"]
        if "map" in summary:
            lines.append(f"| mAP (macro) | {_fmt(summary['map'])} |")
        lines.append(f"| BA A→T directional ({summary['predictions_for_ba']}) | {_fmt(summary['bias_amplification_directional_a2t'])} |")
        lines.append(f"| BA Zhao et al. 2017 | {_fmt(summary['bias_amplification_zhao'])} |")
    if warns:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warns]
    return "\n".join(lines) + "\n"


def run_audit(cfg: AuditConfig, *, progress: Progress | None = None) -> dict[str, Any]:
    """Validate, compute and write ``report.md``, ``report.json`` and ``plots/`` into ``cfg.out`` atomically.

    ``progress``: optional reporter (:class:`debiaskit.progress.Progress`): the bootstrap over the targets is
    a counted phase, the group accuracies and the plots announce themselves.
    """
    progress = progress if progress is not None else Progress("audit predictions", enabled=False)

    path = Path(cfg.file)
    out = Path(cfg.out)
    # -- validate everything before touching the output location
    if cfg.threshold not in ("auto", "calibrated", "f1"):
        try:
            t = float(cfg.threshold)
        except ValueError:
            raise DebiaskitError(f"--threshold must be calibrated, f1 or a number in (0, 1), got {cfg.threshold!r}") from None
        if not 0 < t < 1:
            raise DebiaskitError(f"--threshold must be in (0, 1), got {t}")
    thr = cfg.threshold if cfg.threshold != "auto" else ("calibrated" if cfg.val else "0.5")
    if cfg.n_boot < 0 or cfg.n_boot == 1:
        raise DebiaskitError(f"--n-boot must be 0 or at least 2, got {cfg.n_boot}")
    if out.exists() and not cfg.force and (not out.is_dir() or any(out.iterdir())):
        raise DebiaskitError(f"output {out} already exists; pass --force to replace it")
    if not cfg.targets or (not cfg.scores and cfg.pred is None):
        raise DebiaskitError("give at least one --target and one --score column (or --pred with one --target)")
    df = read_table(path)
    val_df = read_table(cfg.val) if cfg.val else None
    if cfg.protected not in df.columns:
        avail = ", ".join(map(str, list(df.columns)[:20]))
        raise DebiaskitError(f"protected column {cfg.protected!r} not found in {path}; available: {avail}")
    prot = df[cfg.protected]
    if prot.isna().any():
        raise DebiaskitError(f"protected column {cfg.protected!r} has {int(prot.isna().sum())} missing value(s)")
    tt = build_tasks(df, cfg, path=path, val_df=val_df, val_path=Path(cfg.val) if cfg.val else None)
    g, labels = check_groups(prot.astype(str).to_numpy() if prot.dtype == object else prot.to_numpy(),
                             name=f"protected column {cfg.protected!r}")
    groups = [str(v.item() if hasattr(v, "item") else v) for v in labels]

    # -- compute
    results: dict[str, Any] = {}
    boot = (f"{cfg.n_boot} bootstrap resamples of {len(df)} rows" if cfg.n_boot >= 2 else "no bootstrap")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricWarning)
        if tt.tasks:
            with progress.phase(f"metrics of {len(tt.tasks)} target(s), {len(groups)} groups, {boot}",
                                total=len(tt.tasks), unit="target") as tick:
                for task in tt.tasks:
                    results[task.name] = _audit_task(task, g, groups, cfg, thr)
                    tick.advance()
        summary = None
        if len(tt.tasks) > 1 or (tt.mode == "multiclass" and tt.pred_class is not None):
            progress.announce(f"summary over all targets (mAP, bias amplification), {boot}")
            summary = _audit_summary(tt, g, [results[t.name]["_pred"] for t in tt.tasks], cfg)
        group_acc = None
        if tt.pred_class is not None:
            progress.announce(f"group accuracies of the class predictions, {boot}")
            group_acc = _group_accuracy(tt, g, groups, cfg)
    warns: list[str] = []
    for w in caught:
        if issubclass(w.category, MetricWarning):
            msg = str(w.message)
            if msg not in warns:
                warns.append(msg)
    meta = {
        "input": {"path": str(path), "name": path.name, "rows": int(len(df)), "sha256": _sha256(path)},
        "groups": groups,
        "mode": tt.mode,
        "threshold": thr,
    }
    if cfg.val:
        meta["validation"] = {"path": str(cfg.val), "rows": int(len(val_df)), "sha256": _sha256(Path(cfg.val))}
    report = {
        "debiaskit_version": __version__,
        "config": {
            "targets": cfg.targets, "scores": cfg.scores, "protected": cfg.protected, "threshold": thr,
            "n_boot": cfg.n_boot, "ci": cfg.ci, "seed": cfg.seed, "logits": cfg.logits, "pred": cfg.pred,
            "ci_method": "percentile for AP, KL, BA and per-group values; simultaneous (max-t band over groups, "
                         "projected) for gaps and ratios between groups and the worst-group accuracy; "
                         "official KL: median ± 2σ",
        },
        **meta,
        "targets": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in results.items()},
        "summary": summary,
        "group_accuracy": group_acc,
        "warnings": warns,
    }
    report = _clean(report)
    md = _markdown(cfg, meta, results, summary, warns, group_acc)

    # -- write atomically: temp dir next to the destination, then rename
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write_text(tmp / "report.md", md)
        write_json(tmp / "report.json", report)
        if cfg.plots:
            progress.announce(f"drawing plots/ for {len(tt.tasks)} target(s)")
            (tmp / "plots").mkdir()
            for task in tt.tasks:
                r = results[task.name]
                stem = _safe(task.name)
                _plot_rates(r["_group_report"], f"{task.name}: per-group TPR / FPR at τ={r['threshold']['value']:.3g}",
                            tmp / "plots" / f"{stem}_rates.png")
                _plot_scores(task, g, groups, r["threshold"]["value"], tmp / "plots" / f"{stem}_scores.png")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
