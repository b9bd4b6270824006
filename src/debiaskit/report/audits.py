"""The report context of an audit output folder (``report.json`` written by ``debiaskit audit ...``).

Three kinds are recognised from the keys of ``report.json``:

* ``audit predictions`` (``targets``): the metric table with bootstrap intervals, per-group TPR / FPR /
  selection rate with intervals, score distributions as small multiples per group (read back from the audited
  file when it is still there with the recorded SHA-256; else the audit's own PNGs), group accuracies;
* ``audit labels`` (``bias_card``): the count matrix, the most skewed labels, λ_D and the α-balanced subsets
  (Wang et al., ICCV 2019);
* ``audit model`` (``lambda_M``): λ_M, the λ_D(F1) curve and Δ = λ_M − λ_D(F1) (Wang et al., ICCV 2019, Sec. 3).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from debiaskit.audit.predictions import AuditConfig, build_tasks, read_table
from debiaskit.errors import DebiaskitError
from debiaskit.report import plots

__all__ = ["audit_context", "audit_kind", "read_audit"]

_LABELS = {
    "ap": "AP",
    "deo": "DEO (max pairwise TPR gap)",
    "equalized_odds_difference": "equalized-odds difference",
    "demographic_parity_difference": "demographic-parity difference",
    "demographic_parity_ratio": "demographic-parity ratio",
    "bias_amplification": "bias amplification (A→T directional)",
    "kl_aligned": "score KL (aligned)",
    "kl_official_cvpr21": "score KL (official CVPR 2021 code, median ± 2σ)",
    "map": "mAP (macro)",
    "bias_amplification_directional_a2t": "bias amplification A→T (all targets)",
    "bias_amplification_zhao": "bias amplification (Zhao et al. 2017)",
}
_GAPS = ("deo", "equalized_odds_difference", "demographic_parity_difference")
#: targets of a multi-label / one-vs-rest audit that get figures (those with the largest DEO)
MAX_PLOTTED_TARGETS = 4
#: |Δ| (points) within which an `audit model` summary calls λ_M and λ_D(F1) about equal
AMPLIFICATION_POINTS = 2.0


def read_audit(folder: Path) -> dict[str, Any]:
    f = folder / "report.json"
    try:
        rep = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DebiaskitError(f"cannot read {f}: {type(e).__name__}") from None
    if not isinstance(rep, dict):
        raise DebiaskitError(f"{f} does not hold an audit report object")
    return rep


def audit_kind(rep: dict[str, Any]) -> str | None:
    """``predictions``, ``labels`` or ``model`` from the keys of an audit's report.json (None: not an audit)."""
    if "targets" in rep and "groups" in rep:
        return "predictions"
    if "bias_card" in rep:
        return "labels"
    if "lambda_M" in rep and "curve" in rep:
        return "model"
    return None


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _fmt(v: Any, digits: int = 4) -> str:
    f = _num(v)
    return "–" if not math.isfinite(f) else f"{f:.{digits}f}"


def _ci(d: dict[str, Any] | None, digits: int = 4) -> str:
    if not d or not d.get("ci"):
        return ""
    lo, hi = d["ci"][0], d["ci"][1]
    if lo is None or hi is None or not (math.isfinite(_num(lo)) and math.isfinite(_num(hi))):
        return ""
    return f"[{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


# ------------------------------------------------------------------------------------------ predictions
def _input_scores(rep: dict[str, Any], folder: Path) -> tuple[Any, np.ndarray] | None:
    """Re-read the audited file (if present and unchanged) -> (tasks, group codes), else None."""
    inp = rep.get("input") or {}
    cfg = rep.get("config") or {}
    cands = [Path(inp.get("path", "")), folder.parent / Path(inp.get("path", "")).name, folder / inp.get("name", "")]
    path = next((p for p in cands if str(p) and p.is_file()), None)
    if path is None or not inp.get("sha256"):
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != inp["sha256"]:
        return None
    try:
        df = read_table(path)
        acfg = AuditConfig(file=path, targets=list(cfg.get("targets") or []), scores=list(cfg.get("scores") or []),
                           protected=str(cfg.get("protected")), out=folder, logits=bool(cfg.get("logits")),
                           pred=cfg.get("pred"))
        tt = build_tasks(df, acfg, path=path)
    except DebiaskitError:
        return None
    groups = [str(g) for g in rep.get("groups") or []]
    index = {g: k for k, g in enumerate(groups)}
    prot = [str(v) for v in df[acfg.protected].to_numpy().tolist()]
    if any(p not in index for p in prot):
        return None
    return tt, np.array([index[p] for p in prot], dtype=np.int64)


def _predictions(rep: dict[str, Any], folder: Path) -> dict[str, Any]:
    cfg = rep.get("config") or {}
    groups = [str(g) for g in rep.get("groups") or []]
    inp = rep.get("input") or {}
    meta = [
        ("input", f"{inp.get('name')} ({inp.get('rows')} rows, sha256 {str(inp.get('sha256', ''))[:16]})"),
        ("protected attribute", f"{cfg.get('protected')}: {len(groups)} groups ({', '.join(groups[:12])}"
                                f"{', …' if len(groups) > 12 else ''})"),
        ("layout", f"{rep.get('mode')}; targets {', '.join(cfg.get('targets') or [])}; scores "
                   f"{', '.join(cfg.get('scores') or []) or 'none'}" + (f"; predicted class {cfg['pred']}"
                                                                     if cfg.get("pred") else "")),
        ("threshold", str(rep.get("threshold"))),
        ("intervals", f"{100 * float(cfg.get('ci', 0.95)):g} % bootstrap, {cfg.get('n_boot')} resamples, seed "
                      f"{cfg.get('seed')}; {cfg.get('ci_method', '')}" if (cfg.get("n_boot") or 0) >= 2 else "none"),
        ("debiaskit", str(rep.get("debiaskit_version", "–"))),
    ]
    findings: list[dict[str, str]] = []
    scores = None
    try:
        scores = _input_scores(rep, folder)
    except OSError:
        scores = None
    tasks_by_name = {t.name: t for t in scores[0].tasks} if scores else {}
    targets = []
    all_targets = rep.get("targets") or {}

    def gap(t: dict[str, Any]) -> float:
        v = _num(((t.get("metrics") or {}).get("deo") or {}).get("value"))
        return v if math.isfinite(v) else -1.0

    # many targets (multi-label, one-vs-rest): figures and findings for the most unequal ones, tables for all
    ranked = sorted(all_targets, key=lambda k: -gap(all_targets[k]))
    plotted = set(ranked[:MAX_PLOTTED_TARGETS])
    gap_findings: list[tuple[float, list[dict[str, str]]]] = []
    for name, t in all_targets.items():
        m = t.get("metrics") or {}
        mrows = [[_LABELS.get(k, k), _fmt(v.get("value")), _ci(v), str(v.get("ci_method") or "")] for k, v in m.items()]
        bg = t.get("by_group") or {}
        names = bg.get("metrics") or []
        by = bg.get("by_group") or {}
        bci = bg.get("by_group_ci") or {}
        grows = []
        for g in bg.get("groups") or groups:
            cells = []
            for mm in names:
                v = (by.get(mm) or {}).get(g)
                c = (bci.get(mm) or {}).get(g)
                s = (f"{int(v):,}" if mm == "count" and v is not None else _fmt(v, 3))
                if c and c[0] is not None and mm != "count":
                    s += f" [{_fmt(c[0], 3)}, {_fmt(c[1], 3)}]"
                cells.append(s)
            grows.append([str(g), *cells])
        show = name in plotted
        rates = plots.rate_plot(by, bci or None, [str(g) for g in bg.get("groups") or groups],
                                title=f"{name}: per-group rates at threshold {_fmt((t.get('threshold') or {}).get('value'), 3)}") \
            if show else None
        dist = None
        task = tasks_by_name.get(name) if show else None
        if task is not None:
            dist = plots.score_multiples(task.s, task.y, scores[1], groups, tau=float(t["threshold"]["value"]),
                                         title=f"{name}: score distribution per group")
        dist_png = None
        if dist is None and show:
            stem = _safe(name)
            p = folder / "plots" / f"{stem}_scores.png"
            if p.is_file():
                dist_png = plots.png_to_uri(p.read_bytes())
        tf: list[dict[str, str]] = []
        for k in _GAPS:
            v = m.get(k)
            if v and math.isfinite(_num(v.get("value"))):
                lo = (v.get("ci") or [None])[0]
                sig = lo is not None and math.isfinite(_num(lo)) and _num(lo) > 0
                lvl = "warn" if _num(v["value"]) > 0.1 and sig else "info"
                tf.append({"level": lvl, "text": f"{name}: {_LABELS[k]} = {_fmt(v['value'], 3)} {_ci(v, 3)}"
                           + (" — the interval excludes 0." if sig else ".")})
                break
        tpr = by.get("tpr") or {}
        vals = {g: _num(v) for g, v in tpr.items() if math.isfinite(_num(v))}
        if len(vals) >= 2:
            lo_g, hi_g = min(vals, key=vals.get), max(vals, key=vals.get)
            tf.append({"level": "info", "text": f"{name}: TPR lowest for group {lo_g} ({vals[lo_g]:.3f}), highest for "
                       f"group {hi_g} ({vals[hi_g]:.3f})."})
        gap_findings.append((gap(t), tf))
        thr = t.get("threshold") or {}
        targets.append({
            "name": name,
            "line": f"n = {t.get('n')}, positives = {t.get('positives')} (prevalence {_fmt(t.get('prevalence'))}); "
                    f"threshold {_fmt(thr.get('value'), 4)} ({thr.get('mode')}, fitted on {thr.get('fitted_on')}); "
                    f"predicted positives {t.get('predicted_positives')}",
            "metrics": {"columns": ["metric", "value", "interval", "interval method"], "rows": mrows},
            "groups": {"columns": ["group", *[plots.RATE_NAMES.get(n, n) for n in names]], "rows": grows},
            "rates": rates, "dist": dist or dist_png,
            "dist_note": "" if dist else ("the audit's own score plot (the audited file is not available unchanged, so "
                                          "the distributions could not be redrawn per group)" if dist_png else
                                          "no score distribution available" if show else
                                          f"figures are drawn for the {MAX_PLOTTED_TARGETS} targets with the largest DEO"),
            "note": t.get("kl_note", ""),
        })
    gap_findings.sort(key=lambda x: -x[0])
    for _, tf in gap_findings[:3]:
        findings += tf
    if len(gap_findings) > 3:
        findings.append({"level": "info", "text": f"{len(gap_findings) - 3} more targets have smaller DEO; their "
                         "tables are below."})
    ga = rep.get("group_accuracy")
    gacc = None
    if ga:
        gm = ga.get("metrics") or {}
        rows = [[(f"accuracy in group {k[6:]}" if k.startswith("group:") else k.replace("_", " ")), _fmt(v.get("value")),
                 _ci(v)] for k, v in gm.items()]
        cells = ga.get("cells") or []
        classes = list(dict.fromkeys(str(c["class"]) for c in cells))
        gnames = list(dict.fromkeys(str(c["group"]) for c in cells))
        heat = None
        if classes and gnames:
            acc = np.full((len(classes), len(gnames)), np.nan)
            cnt = np.zeros_like(acc)
            al = np.zeros_like(acc, dtype=bool)
            for c in cells:
                i, j = classes.index(str(c["class"])), gnames.index(str(c["group"]))
                acc[i, j], cnt[i, j], al[i, j] = c["accuracy"], c["count"], bool(c.get("aligned"))
            heat = plots.cell_heatmaps([{"title": "accuracy per (class, group)", "acc": acc, "count": cnt}],
                                       class_names=classes, bias_names=gnames, ylabel="true class", xlabel="protected group",
                                       aligned=al if al.any() else None, ncols=1)
        wg = gm.get("worst_group_accuracy")
        if wg:
            findings.append({"level": "info", "text": f"Worst (class, group) cell accuracy {_fmt(wg.get('value'), 3)} "
                             f"{_ci(wg, 3)}; unbiased accuracy {_fmt((gm.get('unbiased_accuracy') or {}).get('value'), 3)}."})
        gacc = {"note": f"predictions: {ga.get('predictions')}", "table": {"columns": ["metric", "value", "interval"],
                                                                          "rows": rows}, "heatmap": heat}
    summary = None
    if rep.get("summary"):
        s = rep["summary"]
        srows = [[_LABELS.get(k, k), _fmt(v.get("value")), _ci(v)] for k, v in s.items() if isinstance(v, dict)
                 and "value" in v]
        summary = {"columns": ["metric", "value", "interval"], "rows": srows}
    for w in rep.get("warnings") or []:
        findings.append({"level": "warn", "text": str(w)})
    return {"audit": "predictions", "title": f"Fairness audit of {inp.get('name')}", "meta": meta, "targets": targets,
            "group_accuracy": gacc, "summary_table": summary, "findings": findings}


def _chance(leak: dict[str, Any] | None, default: float | None) -> float | None:
    """The attacker's chance level recorded with a leakage result (1 / number of groups), else ``default``."""
    c = ((leak or {}).get("config") or {}).get("chance")
    return _num(c) if c is not None and math.isfinite(_num(c)) else default


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "target"


# ------------------------------------------------------------------------------------------ labels
def _labels_audit(rep: dict[str, Any], folder: Path, top_k: int = 10) -> dict[str, Any]:
    card = rep.get("bias_card") or {}
    data = rep.get("data") or {}
    labels = [str(x) for x in card.get("label_names") or []]
    prot = [str(x) for x in card.get("protected_names") or []]
    counts = np.asarray(card.get("counts") or [], dtype=float)
    findings: list[dict[str, str]] = []
    lk = rep.get("leakage")
    if lk:
        ci = lk.get("ci95") or [None, None]
        chance = _chance(lk, 0.5)
        findings.append({"level": "warn" if _num(lk.get("mean")) > chance + 0.05 else "good",
                         "text": f"Dataset leakage λ_D = {100 * _num(lk['mean']):.2f} ± {100 * _num(lk.get('std')):.2f} % "
                                 f"(95 % CI [{100 * _num(ci[0]):.2f}, {100 * _num(ci[1]):.2f}] over rounds; chance "
                                 f"{100 * chance:.0f} %): how often an attacker recovers the protected attribute from the "
                                 "labels alone."})
    ms = card.get("most_skewed") or {}
    base = {p: _num(b) for p, b in zip(prot, card.get("base_rate") or [])}
    for g, rows in ms.items():
        if rows:
            r0 = rows[0]
            findings.append({"level": "info", "text": f"Most skewed towards {g}: {r0.get('label')} "
                             f"(P({g} | label) = {_num(r0.get('p')):.2f}, base rate {base.get(g, math.nan):.2f}"
                             + (f", n = {r0['count']}" if "count" in r0 else "") + ")."})
    cr = card.get("conflict_ratio")
    if cr is not None and math.isfinite(_num(cr)):
        findings.append({"level": "info", "text": f"Conflict ratio {100 * _num(cr):.2f} %: "
                         f"{card.get('conflict_definition') or 'share of bias-conflicting samples'}."})
    heat, heat_note = None, ""
    if counts.ndim == 2 and counts.size:
        if len(labels) > 40:
            keep = []
            for g in ms:
                keep += [str(r["label"]) for r in ms[g][:top_k]]
            keep = list(dict.fromkeys(k for k in keep if k in labels))
            idx = [labels.index(k) for k in keep]
            heat_note = f"the {len(idx)} most skewed of {len(labels)} labels (all counts are in report.json)"
        else:
            idx = list(range(len(labels)))
        if idx:
            heat = plots.count_heatmap(counts[idx], [labels[i] for i in idx], prot, title="samples per (label, group)",
                                       xlabel="protected group", ylabel="label")
    skew = plots.skew_bars(ms, base, top_k=top_k)
    alpha_rows = []
    for e in rep.get("alpha_splits") or []:
        el = e.get("leakage")
        gs = e.get("group_sizes") or ["–", "–"]
        alpha_rows.append([f"{_num(e.get('alpha')):g}", str(e.get("size")), str(gs[0]), str(gs[1] if len(gs) > 1 else "–"),
                           _fmt(e.get("max_ratio"), 3),
                           f"{100 * _num(el['mean']):.2f} ± {100 * _num(el.get('std')):.2f}" if el
                           else str(e.get("leakage_skipped", "–"))])
    alpha_plot = plots.alpha_leakage_plot(rep.get("alpha_splits") or [], lk, chance=_chance(lk, 0.5))
    meta = [("data", f"{data.get('name')} [{data.get('split')}], {data.get('size')} samples"),
            ("fingerprint", str(data.get("fingerprint") or "–")),
            ("protected groups", ", ".join(prot)),
            ("labels", f"{len(labels)} ({'multi-label' if card.get('multilabel') else 'single-label'})"),
            ("seed / version", f"{rep.get('seed')} / {rep.get('version', '–')}")]
    if lk:
        meta.append(("λ_D protocol", f"{len(lk.get('per_round') or [])} rounds; attacker on the labels, "
                                     "protected-balanced test subsets (see docs/leakage.md)"))
    return {"audit": "labels", "title": f"Label audit of {data.get('name')} [{data.get('split')}]", "meta": meta,
            "findings": findings, "count_heatmap": heat, "count_note": heat_note, "skew": skew,
            "alpha": {"columns": ["α", "size", "#group 0", "#group 1", "max label ratio", "λ_D (%)"], "rows": alpha_rows}
            if alpha_rows else None, "alpha_plot": alpha_plot}


# ------------------------------------------------------------------------------------------ model
def _model_audit(rep: dict[str, Any], folder: Path) -> dict[str, Any]:
    lm = rep.get("lambda_M") or {}
    curve = rep.get("curve") or {}
    f1 = rep.get("model_f1")
    lam_d = rep.get("lambda_D_at_F1")
    delta = rep.get("delta")
    d = _num(delta)
    if d > AMPLIFICATION_POINTS / 100:
        verdict = ("warn", "reveal the protected attribute more than labels of the same quality do (bias "
                           "amplification).")
    elif d >= -AMPLIFICATION_POINTS / 100:
        verdict = ("info", f"reveal about as much as labels of the same quality (within ±{AMPLIFICATION_POINTS:g} "
                           "points).")
    else:
        verdict = ("good", "reveal less than labels of the same quality.")
    findings = [{"level": verdict[0], "text": f"Δ = λ_M − λ_D(F1) = {100 * d:+.2f} points: the model's outputs "
                 + verdict[1]},
                {"level": "info", "text": f"λ_M = {100 * _num(lm.get('mean')):.2f} ± {100 * _num(lm.get('std')):.2f} %, "
                 f"λ_D at the model's macro-F1 {_fmt(f1, 3)} = {100 * _num(lam_d):.2f} %"
                 + (" (extrapolated beyond the curve)" if rep.get("extrapolated") else "") + "."}]
    rows = [[_fmt(p, 4), _fmt(f, 4), f"{100 * _num(lk):.2f} ± {100 * _num(sd):.2f}"]
            for p, f, lk, sd in zip(curve.get("p") or [], curve.get("f1_mean") or [], curve.get("leakage_mean") or [],
                                    curve.get("leakage_std") or [])]
    sp = rep.get("splits") or {}
    meta = [("run", str(rep.get("run"))), ("attacker input", str(rep.get("kind"))),
            ("attacker splits", f"train: {sp.get('attacker_train')}; val: {sp.get('attacker_val')}; test: "
                                f"{sp.get('attacker_test')}"),
            ("data fingerprint", str(rep.get("data_fingerprint") or "–")),
            ("seed / version", f"{rep.get('seed')} / {rep.get('version', '–')}")]
    plot = plots.leakage_curve_plot(curve, model_f1=_num(f1) if f1 is not None else None, lambda_m=lm or None,
                                    lambda_d_at_f1=_num(lam_d) if lam_d is not None else None,
                                    chance=_chance(lm, None))
    return {"audit": "model", "title": f"Leakage audit of {Path(str(rep.get('run'))).name or rep.get('run')}",
            "meta": meta, "findings": findings, "curve": plot,
            "curve_table": {"columns": ["perturbation p", "F1 (val)", "λ_D (%)"], "rows": rows}}


def audit_context(folder: Path, rep: dict[str, Any] | None = None) -> dict[str, Any]:
    """The template context of the audit output in ``folder``."""
    rep = read_audit(folder) if rep is None else rep
    kind = audit_kind(rep)
    if kind == "predictions":
        ctx = _predictions(rep, folder)
    elif kind == "labels":
        ctx = _labels_audit(rep, folder)
    elif kind == "model":
        ctx = _model_audit(rep, folder)
    else:
        raise DebiaskitError(f"{folder / 'report.json'} is not a report written by `debiaskit audit`")
    ctx["kind"] = "audit"
    return ctx
