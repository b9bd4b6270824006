"""Matplotlib figures for the HTML report, returned as self-contained ``data:image/png;base64`` URIs.

Every function builds its own :class:`~matplotlib.figure.Figure` on an Agg canvas (no pyplot state, no
display, safe in worker processes), with legends outside the data area, named axes and group *names*
rather than ids. Figures are sized for a ~1100 px content column at :data:`DPI`.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DPI",
    "RULE_STYLE",
    "SPLIT_COLOURS",
    "alpha_leakage_plot",
    "cell_heatmaps",
    "comparison_chart",
    "count_heatmap",
    "fig_to_uri",
    "group_curves",
    "leakage_curve_plot",
    "new_figure",
    "rate_plot",
    "score_multiples",
    "skew_bars",
    "training_curves",
]

#: resolution of every embedded PNG (figure inches x DPI = pixels)
DPI = 100

#: line colour per split in the training curves
SPLIT_COLOURS = {"train": "#7f7f7f", "val": "#1f77b4", "val_unbiased": "#9467bd", "test": "#ff7f0e"}

#: (colour, line style, marker) of the vertical line / marker that shows the step a rule picked
RULE_STYLE: dict[str, tuple[str, str, str]] = {
    "last": ("#222222", ":", "s"),
    "best_val_accuracy": ("#2ca02c", "--", "o"),
    "min_val_loss": ("#8c564b", "--", "v"),
    "best_val_map": ("#17becf", "--", "D"),
    "best_val_worst_group": ("#bcbd22", "-.", "P"),
    "best_val_group_mean": ("#e7ba52", "-.", "h"),
    "best_val_unbiased": ("#9467bd", "-.", "^"),
    "oracle_test": ("#d62728", "-", "*"),
}
_EXTRA_RULE_COLOURS = ("#e377c2", "#393b79", "#637939", "#8c6d31")
_METHOD_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf")


def rule_style(rule: str, k: int = 0) -> tuple[str, str, str]:
    """The (colour, line style, marker) of a selection rule; unregistered names get a colour by position."""
    return RULE_STYLE.get(rule, (_EXTRA_RULE_COLOURS[k % len(_EXTRA_RULE_COLOURS)], "--", "X"))


def method_colour(k: int) -> str:
    return _METHOD_COLOURS[k % len(_METHOD_COLOURS)]


def new_figure(width: float, height: float) -> Any:
    """A constrained-layout figure on an Agg canvas (``width`` x ``height`` inches)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def fig_to_uri(fig: Any, *, dpi: int = DPI, tight: bool = False) -> str:
    """Render ``fig`` to PNG and return it as a ``data:image/png;base64,...`` URI.

    ``tight``: grow/crop the canvas to every artist (for fixed-aspect panels a layout engine cannot fit).
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", **({"bbox_inches": "tight", "pad_inches": 0.08}
                                                                   if tight else {}))
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_to_uri(data: bytes) -> str:
    """Embed already-encoded PNG bytes as a data URI."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _finite(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _style_axes(ax: Any) -> None:
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def grid_figure(nrows: int, ncols: int, *, panel_w: float, panel_h: float, left: float = 0.75, right: float = 0.2,
                top: float = 0.45, bottom: float = 0.5, wgap: float = 0.3, hgap: float = 0.45, sharex: bool = False,
                sharey: bool = False, min_width: float = 0.0) -> tuple[Any, np.ndarray]:
    """A figure with an exact ``nrows`` x ``ncols`` grid of axes (sizes and margins in inches, no layout engine).

    Small multiples drawn this way need one drawing pass instead of the several a layout engine makes, which
    keeps a report over many runs fast; the margins leave room for the tick labels, titles and a legend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    W = left + ncols * panel_w + (ncols - 1) * wgap + right
    if W < min_width:  # room for a title or legend wider than the grid: centre the grid
        left, right, W = left + (min_width - W) / 2, right + (min_width - W) / 2, min_width
    H = top + nrows * panel_h + (nrows - 1) * hgap + bottom
    fig = Figure(figsize=(W, H))
    FigureCanvasAgg(fig)
    axes = np.empty((nrows, ncols), dtype=object)
    for i in range(nrows):
        for j in range(ncols):
            x0 = left + j * (panel_w + wgap)
            y0 = H - top - (i + 1) * panel_h - i * hgap
            share = {}
            if sharex and (i or j):
                share["sharex"] = axes[0, 0]
            if sharey and (i or j):
                share["sharey"] = axes[0, 0]
            axes[i, j] = fig.add_axes((x0 / W, y0 / H, panel_w / W, panel_h / H), **share)
    return fig, axes


def _step_formatter() -> Any:
    """Tick labels for step axes: 500, 10k, 1.5M."""
    from matplotlib.ticker import FuncFormatter

    def fmt(v: float, _pos: Any = None) -> str:
        a = abs(v)
        if a >= 1e6:
            return f"{v / 1e6:g}M"
        if a >= 1e4:
            return f"{v / 1e3:g}k"
        return f"{v:g}"

    return FuncFormatter(fmt)


def _legend_below(fig: Any, handles: dict[str, Any], *, ncol: int, y_in: float = 0.05) -> None:
    if handles:
        H = fig.get_figheight()
        fig.legend(list(handles.values()), list(handles), loc="lower center", bbox_to_anchor=(0.5, y_in / H),
                   ncol=max(1, min(ncol, len(handles))), fontsize=8, frameon=False, handlelength=2.2)


def _legend_rows(n: int, ncol: int) -> int:
    return math.ceil(n / max(1, min(ncol, n))) if n else 0


# ------------------------------------------------------------------------------------- training curves
#: the panels of a run's training curves: (title, y label, metric keys tried in order, splits, percent?)
CURVE_PANELS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], bool], ...] = (
    ("loss", "loss", ("loss",), ("train", "val", "val_unbiased", "test"), False),
    ("accuracy", "accuracy (%)", ("accuracy", "mAP"), ("val", "val_unbiased", "test"), True),
    ("unbiased accuracy", "unbiased accuracy (%)", ("unbiased_accuracy",), ("val", "val_unbiased", "test"), True),
    ("worst-group accuracy", "worst-group accuracy (%)", ("worst_group_accuracy",), ("val", "val_unbiased", "test"), True),
)


def _series(rows: Sequence[dict[str, Any]], split: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    if split == "train" and key == "loss":  # the mean training loss since the previous evaluation
        pts = {}
        for r in rows:
            tl = r.get("train_logs") or {}
            if "loss" in tl and int(r["step"]) not in pts:
                pts[int(r["step"])] = _finite(tl["loss"])
    else:
        pts = {int(r["step"]): _finite(r.get(key)) for r in rows if r.get("split") == split and key in r}
    steps = np.array(sorted(pts), dtype=float)
    return steps, np.array([pts[int(s)] for s in steps], dtype=float)


def training_curves(rows: Sequence[dict[str, Any]], selected: dict[str, int], *, labels: dict[str, str] | None = None,
                    title: str = "") -> str | None:
    """Loss, accuracy, unbiased and worst-group accuracy vs step, one line per split; each rule's step marked.

    ``rows``: evaluation rows of one run. Rows of the raw weights are solid lines; rows of a weight average
    (``"weights": "ema"``, written with ``train.weight_average: ema``) are a series of their own per split:
    dashed, in the split's colour, labelled ``... EMA weights`` (never mixed into the raw line).
    ``selected``: ``{rule: step}`` (steps picked on the raw weights); ``labels``: display names of the rules.
    Returns ``None`` when there is nothing to plot.
    """
    raw = [r for r in rows if r.get("weights", "raw") == "raw"]
    averaged = {w: [r for r in rows if r.get("weights", "raw") == w]
                for w in dict.fromkeys(str(r["weights"]) for r in rows if r.get("weights", "raw") != "raw")}
    if not raw and not any(averaged.values()):
        return None
    labels = labels or {}
    panels = []
    for title_p, ylab, keys, splits, pct in CURVE_PANELS:
        key = next((k for k in keys if any(k in r for r in rows)), None)
        if key is None:
            continue
        lines = []
        for weights, wrows in (("raw", raw), *averaged.items()):
            for s in splits:
                if s == "train" and weights != "raw":  # the running training loss belongs to the raw weights
                    continue
                x, y = _series(wrows, s, key)
                if len(x) and np.isfinite(y).any():
                    lines.append((s, weights, x, 100 * y if pct else y))
        if lines:
            panels.append(("mAP" if key == "mAP" else title_p, "mAP (%)" if key == "mAP" else ylab, lines))
    if not panels:
        return None
    ncol = 2 if len(panels) > 1 else 1
    nrow = math.ceil(len(panels) / ncol)
    n_leg = len({(s, w) for _, _, lines in panels for s, w, _, _ in lines}) + len(selected)
    fig, axes = grid_figure(nrow, ncol, panel_w=4.45 if ncol == 2 else 8.0, panel_h=2.1, left=0.75, wgap=0.85,
                            hgap=0.75, top=0.45 + (0.25 if title else 0), bottom=0.6 + 0.2 * _legend_rows(n_leg, 4),
                            sharex=True)
    handles: dict[str, Any] = {}
    for k, (t, ylab, lines) in enumerate(panels):
        ax = axes.flat[k]
        for s, w, x, y in lines:
            if s == "train":
                name = "train (running mean)"
            else:
                name = f"{s} split" + ("" if w == "raw" else f", {w.upper()} weights")
            (h,) = ax.plot(x, y, color=SPLIT_COLOURS.get(s, "#333333"), linewidth=1.4 if w == "raw" else 1.2,
                           linestyle="-" if w == "raw" else (0, (4, 2)),
                           marker=("." if w == "raw" else "x") if len(x) < 40 else None, markersize=4, label=name)
            handles.setdefault(h.get_label(), h)
        for j, (rule, step) in enumerate(selected.items()):
            c, ls, _ = rule_style(rule, j)
            h = ax.axvline(step, color=c, linestyle=ls, linewidth=1.2, alpha=0.9,
                           label=f"{labels.get(rule, rule)}: step {step:,}")
            handles.setdefault(h.get_label(), h)
        if ylab.endswith("(%)"):
            ys = np.concatenate([y[np.isfinite(y)] for _, _, _, y in lines])
            if len(ys) and ys.max() - ys.min() < 2:  # a flat line: show it against a readable range
                mid = float(ys.mean())
                ax.set_ylim(max(0.0, mid - 5) - 0.5, min(100.0, mid + 5) + 0.5)
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.set_ylabel(ylab, fontsize=9)
        ax.xaxis.set_major_formatter(_step_formatter())
        _style_axes(ax)
    for k in range(len(panels), axes.size):
        axes.flat[k].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.12 / fig.get_figheight())
    _legend_below(fig, handles, ncol=4)
    return fig_to_uri(fig)


def group_curves(panels: Sequence[dict[str, Any] | None], *, metric: str, split: str, ylabel: str, ncols: int) -> str | None:
    """Small multiples for a sweep: one panel per (method, ratio) group, one thin line per seed.

    Each panel dict: ``title``, ``runs`` = list of ``{"seed", "x", "y", "selected": {rule: (step, value)}}``;
    ``None`` (or no runs) leaves its place in the grid empty. The step each rule picked in each seed is drawn as
    that rule's marker on the seed's line.
    """
    if not any(p and p["runs"] for p in panels):
        return None
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    pw = min(2.6 if ncols > 1 else 4.0, (10.6 - 0.75 - 0.25 * (ncols - 1)) / ncols)
    rules = {r for p in panels if p for run in p["runs"] for r in run["selected"]}
    fig, axes = grid_figure(nrows, ncols, panel_w=pw, panel_h=1.6, wgap=0.25, hgap=0.45, top=0.7,
                            bottom=0.55 + 0.2 * _legend_rows(len(rules), 5), sharex=True, sharey=True, min_width=7.0)
    handles: dict[str, Any] = {}
    for k, p in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        if not p or not p["runs"]:  # a missing (method, ratio) cell keeps its place in the grid
            ax.set_visible(False)
            continue
        for run in p["runs"]:
            ax.plot(run["x"], 100 * np.asarray(run["y"]), color="#4c72b0", alpha=0.75, linewidth=1.0)
            for j, (rule, (step, val)) in enumerate(run["selected"].items()):
                if val is None or not math.isfinite(val):
                    continue
                c, _, mk = rule_style(rule, j)
                h = ax.plot([step], [100 * val], linestyle="none", marker=mk, color=c, markersize=6,
                            markeredgecolor="white", markeredgewidth=0.5, label=p.get("labels", {}).get(rule, rule))[0]
                handles.setdefault(h.get_label(), h)
        ax.set_title(p["title"], fontsize=9)
        _style_axes(ax)
        ax.tick_params(labelleft=k % ncols == 0, labelbottom=k // ncols == nrows - 1 or k + ncols >= len(panels))
        if k % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=8)
        if k // ncols == nrows - 1:
            ax.set_xlabel("step", fontsize=8)
    ys = [100 * float(v) for p in panels if p for run in p["runs"] for v in run["y"] if math.isfinite(float(v))]
    if ys:  # one y range for every panel (set explicitly: shared autoscaling misses panels drawn later)
        lo, hi = min(ys), max(ys)
        pad = max(1.0, 0.06 * (hi - lo))
        for ax in axes.flat:
            ax.set_ylim(max(-1.0, lo - pad), min(101.0, hi + pad))
            ax.xaxis.set_major_formatter(_step_formatter())
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(f"{split} {metric.replace('_', ' ')} per seed; markers: step each rule picked", fontsize=10,
                 y=1 - 0.12 / fig.get_figheight())
    _legend_below(fig, handles, ncol=5)
    return fig_to_uri(fig)


# ------------------------------------------------------------------------------------------ heat maps
def _text_colour(rgba: Sequence[float]) -> str:
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def cell_heatmaps(panels: Sequence[dict[str, Any] | None], *, class_names: Sequence[str], bias_names: Sequence[str],
                  ylabel: str, xlabel: str, palette: np.ndarray | None = None, aligned: np.ndarray | None = None,
                  ncols: int = 3, annotate: bool | None = None) -> str | None:
    """Per-(target, bias) accuracy as heat maps, one panel per entry of ``panels`` (``title``, ``acc``, ``count``).

    ``acc``/``count`` are ``(num_classes, num_bias)`` arrays; empty cells (count 0) are grey; ``None`` panels
    leave their grid place empty. Cells marked in ``aligned`` are outlined. ``palette`` (``(num_bias, 3)`` RGB in
    [0, 1]) colours the bias tick labels. Tick labels are drawn on the left column and bottom row only.
    """
    import matplotlib as mpl

    present = [p for p in panels if p and p.get("acc") is not None]
    if not present:
        return None
    K, G = np.asarray(present[0]["acc"]).shape
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    if annotate is None:
        annotate = K * G <= 144 and ncols <= 4
    longest_x = max(len(str(b)) for b in bias_names)
    rot = longest_x > 2
    longest_y = max(len(str(c)) for c in class_names)
    left = 0.45 + 0.065 * longest_y
    cell = 0.3 if annotate else 0.17
    cell = min(cell, (9.6 - left - 0.25 * (ncols - 1)) / (ncols * G))
    show_names = annotate or max(K, G) <= 12
    x_lab_h = (0.07 * longest_x * 0.72 + 0.15 if rot else 0.2) if show_names else 0.05
    fig, axes = grid_figure(nrows, ncols, panel_w=G * cell, panel_h=K * cell, left=left + 0.2, right=1.0,
                            wgap=0.25, hgap=0.4, top=0.3, bottom=0.5 + x_lab_h)
    cmap = mpl.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    im = None
    last_row_of_col = {}
    for k, p in enumerate(panels):
        if p and p.get("acc") is not None:
            last_row_of_col[k % ncols] = k // ncols
    for k, p in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        if not p or p.get("acc") is None:  # a missing cell of the grid keeps its place
            ax.set_visible(False)
            continue
        acc = np.asarray(p["acc"], dtype=float)
        cnt = np.asarray(p["count"], dtype=float) if p.get("count") is not None else np.ones_like(acc)
        data = np.ma.masked_invalid(np.where(cnt > 0, 100 * acc, np.nan))
        im = ax.imshow(data, cmap=cmap, vmin=0, vmax=100, aspect="auto", interpolation="nearest")
        if annotate:
            for i in range(K):
                for j in range(G):
                    if cnt[i, j] > 0 and np.isfinite(acc[i, j]):
                        ax.text(j, i, f"{100 * acc[i, j]:.0f}", ha="center", va="center", fontsize=7,
                                color=_text_colour(cmap(acc[i, j])))
                    else:
                        ax.text(j, i, "–", ha="center", va="center", fontsize=7, color="#555555")
        if aligned is not None:
            for i, j in zip(*np.nonzero(np.asarray(aligned, dtype=bool))):
                ax.add_patch(mpl.patches.Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, edgecolor="#e6194b",
                                                   linewidth=1.3 if annotate else 0.9))
        ax.tick_params(length=0)
        first_col, bottom = k % ncols == 0, last_row_of_col.get(k % ncols) == k // ncols
        if show_names and bottom:
            ax.set_xticks(range(G))
            ax.set_xticklabels([str(b) for b in bias_names], rotation=45 if rot else 0, ha="right" if rot else "center",
                               rotation_mode="anchor", fontsize=7)
            if palette is not None:
                for j, t in enumerate(ax.get_xticklabels()):
                    rgb = tuple(float(v) for v in palette[j][:3])
                    t.set_bbox({"facecolor": rgb, "edgecolor": "none", "pad": 1.0})
                    t.set_color(_text_colour(rgb))
        else:
            ax.set_xticks([])
        if show_names and first_col:
            ax.set_yticks(range(K))
            ax.set_yticklabels([str(c) for c in class_names], fontsize=7)
        else:
            ax.set_yticks([])
        ax.set_title(p["title"], fontsize=8.5, pad=3)
        if first_col:
            ax.set_ylabel(ylabel, fontsize=8)
        if bottom:
            ax.set_xlabel(xlabel, fontsize=8)
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    W, H = fig.get_figwidth(), fig.get_figheight()
    bottom_in, grid_h = 0.5 + x_lab_h, H - 0.3 - (0.5 + x_lab_h)
    cax = fig.add_axes(((W - 0.75) / W, (bottom_in + 0.05 * grid_h) / H, 0.14 / W, 0.9 * grid_h / H))
    cb = fig.colorbar(im, cax=cax)
    cb.set_label("test accuracy (%)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return fig_to_uri(fig)


def count_heatmap(counts: np.ndarray, row_names: Sequence[str], col_names: Sequence[str], *, title: str,
                  xlabel: str, ylabel: str) -> str:
    """A count matrix (rows = labels, columns = protected groups) with counts written in the cells."""
    import matplotlib as mpl

    counts = np.asarray(counts, dtype=float)
    R, C = counts.shape
    fig = new_figure(min(10.0, 1.2 * C + 3.2 + 0.06 * max(len(str(n)) for n in row_names)), 0.27 * R + 1.4)
    ax = fig.add_subplot(1, 1, 1)
    frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    cmap = mpl.colormaps["Blues"]
    im = ax.imshow(frac, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    for i in range(R):
        for j in range(C):
            ax.text(j, i, f"{int(counts[i, j]):,}", ha="center", va="center", fontsize=7,
                    color=_text_colour(cmap(frac[i, j])))
    ax.set_xticks(range(C))
    ax.set_xticklabels([str(c) for c in col_names], fontsize=8)
    ax.set_yticks(range(R))
    ax.set_yticklabels([str(r) for r in row_names], fontsize=7)
    ax.tick_params(length=0)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("share of the label's samples", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return fig_to_uri(fig, tight=True)


# --------------------------------------------------------------------------------- method comparison
def comparison_chart(series: Sequence[dict[str, Any]], *, x_labels: Sequence[str], rules: Sequence[str],
                     rule_labels: dict[str, str], ylabel: str, published: Sequence[dict[str, Any]] = ()) -> str | None:
    """Grouped bars (mean ± std over seeds): one panel per rule, x = ratio (or setting), one bar per method.

    ``series``: ``{"method", "values": {rule: {x_label: (mean, std, n)}}}``; ``published``: ``{"method",
    "values": {x_label: mean}}`` drawn as black diamonds on that method's bar.
    """
    if not series or not rules:
        return None
    n_m, n_x = len(series), len(x_labels)
    ncols = min(len(rules), 4 if n_m * n_x <= 12 else 2)
    nrows = math.ceil(len(rules) / ncols)
    pw = min(4.5, max(1.8, 0.2 * n_m * n_x + 0.5), (10.6 - 0.75 - 0.3 * (ncols - 1)) / ncols)
    n_leg = n_m + (1 if published else 0)
    fig, axes = grid_figure(nrows, ncols, panel_w=pw, panel_h=2.3, wgap=0.3, hgap=0.65, top=0.35,
                            bottom=0.55 + 0.2 * _legend_rows(n_leg, 6), sharey=True, min_width=5.5)
    width = 0.8 / n_m
    x = np.arange(n_x)
    handles: dict[str, Any] = {}
    for k, rule in enumerate(rules):
        ax = axes[k // ncols][k % ncols]
        for m, s in enumerate(series):
            vals = s["values"].get(rule, {})
            mean = np.array([100 * vals[xl][0] if xl in vals else np.nan for xl in x_labels])
            std = np.array([100 * vals[xl][1] if xl in vals else np.nan for xl in x_labels])
            pos = x - 0.4 + width * (m + 0.5)
            h = ax.bar(pos, np.nan_to_num(mean), width=width * 0.92, color=method_colour(m), label=s["method"],
                       yerr=np.where(np.isfinite(std), std, 0), capsize=2, error_kw={"elinewidth": 0.8})
            handles.setdefault(s["method"], h)
            for pub in published:
                if pub["method"] != s["method"]:
                    continue
                pv = [pub["values"].get(xl) for xl in x_labels]
                px = [p for p, v in zip(pos, pv) if v is not None]
                py = [v for v in pv if v is not None]
                if px:
                    hp = ax.plot(px, py, linestyle="none", marker="D", color="black", markersize=4,
                                 label="published (first source in the table)")[0]
                    handles.setdefault(hp.get_label(), hp)
        ax.set_xticks(x)
        ax.set_xticklabels(list(x_labels), fontsize=8)
        ax.set_title(rule_labels.get(rule, rule), fontsize=9)
        ax.set_ylim(0, 100)
        _style_axes(ax)
        ax.tick_params(labelleft=k % ncols == 0)
        if k % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=8)
    for k in range(len(rules), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    _legend_below(fig, handles, ncol=6)
    return fig_to_uri(fig)


# ---------------------------------------------------------------------------------------- audit plots
RATE_NAMES = {"tpr": "TPR", "fpr": "FPR", "selection_rate": "selection rate", "accuracy": "accuracy",
              "base_rate": "base rate"}


def rate_plot(by_group: dict[str, dict[str, Any]], ci: dict[str, dict[str, Any]] | None, groups: Sequence[str], *,
              metrics: Sequence[str] = ("tpr", "fpr", "selection_rate"), title: str = "") -> str | None:
    """Per-group rates as dots with interval bars: one row of panels per rate, groups on the y axis by name."""
    metrics = [m for m in metrics if m in by_group]
    if not metrics or not groups:
        return None
    G = len(groups)
    fig = new_figure(min(11.0, 3.3 * len(metrics) + 1.2 + 0.05 * max(len(str(g)) for g in groups)), 0.28 * G + 1.5)
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    y = np.arange(G)
    for ax, m in zip(axes, metrics):
        vals = np.array([_finite(by_group[m].get(g)) for g in groups])
        ax.scatter(vals, y, color="#1f77b4", s=18, zorder=3)
        if ci and m in ci:
            lo = np.array([_finite((ci[m].get(g) or [None, None])[0]) for g in groups])
            hi = np.array([_finite((ci[m].get(g) or [None, None])[1]) for g in groups])
            ok = np.isfinite(lo) & np.isfinite(hi)
            ax.hlines(y[ok], lo[ok], hi[ok], color="#1f77b4", linewidth=1.4, alpha=0.7)
        finite = vals[np.isfinite(vals)]
        if len(finite):
            ax.axvline(float(np.mean(finite)), color="#999999", linestyle="--", linewidth=0.8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(RATE_NAMES.get(m, m), fontsize=9)
        ax.set_xlabel("rate (dashed: mean over groups)", fontsize=7)
        _style_axes(ax)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([str(g) for g in groups], fontsize=8)
    axes[0].set_ylabel("protected group", fontsize=8)
    axes[0].invert_yaxis()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig_to_uri(fig)


def score_multiples(scores: np.ndarray, y: np.ndarray, g: np.ndarray, groups: Sequence[str], *, tau: float,
                    title: str = "", max_cols: int = 5) -> str | None:
    """Score histograms as small multiples, one panel per group, positives and negatives overlaid.

    Replaces one crowded overlay of many groups: each panel is named by its group and sample counts, all
    share the x axis and the threshold ``tau`` is drawn in each.
    """
    scores, y, g = np.asarray(scores, float), np.asarray(y), np.asarray(g)
    G = len(groups)
    if G == 0 or len(scores) == 0:
        return None
    ncols = min(max_cols, G)
    nrows = math.ceil(G / ncols)
    fig, axes = grid_figure(nrows, ncols, panel_w=min(1.75, (10.4 - 0.75 - 0.35 * (ncols - 1)) / ncols), panel_h=1.25,
                            wgap=0.35, hgap=0.55, top=0.55 if title else 0.3, bottom=0.8, sharex=True, min_width=5.0)
    bins = np.linspace(0, 1, 31)
    handles: dict[str, Any] = {}
    for k, name in enumerate(groups):
        ax = axes[k // ncols][k % ncols]
        for cls, colour, lab in ((1, "#d62728", "y = 1"), (0, "#1f77b4", "y = 0")):
            sel = (g == k) & (y == cls)
            if sel.any():
                h = ax.hist(scores[sel], bins=bins, density=True, color=colour, alpha=0.45, label=lab,
                            histtype="stepfilled")[2][0]  # one polygon per histogram: cheap to draw
                handles.setdefault(lab, h)
        hl = ax.axvline(tau, color="black", linestyle="--", linewidth=0.9, label=f"threshold {tau:.3g}")
        handles.setdefault(hl.get_label(), hl)
        n1, n0 = int(((g == k) & (y == 1)).sum()), int(((g == k) & (y == 0)).sum())
        ax.set_title(f"{name}  (n={n1}+/{n0}−)", fontsize=8)
        _style_axes(ax)
        ax.tick_params(labelsize=7, labelbottom=k + ncols >= G)
        if k % ncols == 0:
            ax.set_ylabel("density", fontsize=7)
        if k + ncols >= G:
            ax.set_xlabel("score", fontsize=7)
    for k in range(G, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.1 / fig.get_figheight())
    _legend_below(fig, handles, ncol=3)
    return fig_to_uri(fig)


def leakage_curve_plot(curve: dict[str, Any], *, model_f1: float | None, lambda_m: dict[str, Any] | None,
                       lambda_d_at_f1: float | None, chance: float | None = None) -> str | None:
    """λ_D of perturbed ground truth vs its F1 (mean ± std), with the model's λ_M at its F1 (Wang et al. 2019)."""
    f1 = np.asarray(curve.get("f1_mean") or [], float)
    if not len(f1):
        return None
    lk = 100 * np.asarray(curve.get("leakage_mean"), float)
    sd = 100 * np.asarray(curve.get("leakage_std") or np.zeros_like(lk), float)
    f1_sd = np.asarray(curve.get("f1_std") or np.zeros_like(f1), float)
    order = np.argsort(f1)
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.errorbar(f1[order], lk[order], yerr=sd[order], xerr=f1_sd[order], color="#1f77b4", marker="o", markersize=4,
                capsize=2, linewidth=1.4, label="λ_D(F1): perturbed ground truth")
    if model_f1 is not None and lambda_m:
        ax.errorbar([model_f1], [100 * lambda_m["mean"]], yerr=[100 * lambda_m.get("std", 0.0)], color="#d62728",
                    marker="*", markersize=11, capsize=3, linestyle="none", label="λ_M: the model")
        if lambda_d_at_f1 is not None:
            ax.plot([model_f1], [100 * lambda_d_at_f1], marker="o", markersize=7, markerfacecolor="none",
                    markeredgecolor="#1f77b4", linestyle="none", label="λ_D at the model's F1")
            ax.vlines(model_f1, 100 * lambda_d_at_f1, 100 * lambda_m["mean"], color="#d62728", linestyle=":",
                      linewidth=1.2, label="Δ = λ_M − λ_D(F1)")
    if chance is not None and math.isfinite(chance):
        ax.axhline(100 * chance, color="#999999", linestyle="--", linewidth=0.8, label=f"chance ({100 * chance:.1f} %)")
    ax.set_xlabel("macro-F1 of the (perturbed) labels", fontsize=9)
    ax.set_ylabel("leakage (attacker accuracy, %)", fontsize=9)
    _style_axes(ax)
    fig.legend(loc="outside right center", fontsize=8, frameon=False)
    return fig_to_uri(fig)


def alpha_leakage_plot(splits: Sequence[dict[str, Any]], original: dict[str, Any] | None,
                       chance: float | None = None) -> str | None:
    """λ_D of α-balanced subsets vs α (mean ± std), with the original labels' λ_D as a reference line."""
    pts = [(float(e["alpha"]), e["leakage"]) for e in splits if e.get("leakage")]
    if not pts:
        return None
    fig = new_figure(5.6, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    a = [p[0] for p in pts]
    ax.errorbar(a, [100 * p[1]["mean"] for p in pts], yerr=[100 * p[1].get("std", 0) for p in pts], marker="o",
                capsize=3, color="#1f77b4", label="α-balanced subset")
    if original:
        ax.axhline(100 * original["mean"], color="#d62728", linestyle="--", linewidth=1, label="original labels")
    if chance is not None and math.isfinite(chance):
        ax.axhline(100 * chance, color="#999999", linestyle=":", linewidth=0.8, label=f"chance ({100 * chance:.1f} %)")
    ax.set_xlabel("α (max ratio between protected groups per label)", fontsize=9)
    ax.set_ylabel("λ_D (%)", fontsize=9)
    _style_axes(ax)
    fig.legend(loc="outside right center", fontsize=8, frameon=False)
    return fig_to_uri(fig)


def skew_bars(most_skewed: dict[str, list[dict[str, Any]]], base_rate: dict[str, float], *, top_k: int) -> str | None:
    """The most skewed labels towards each protected group: P(group | label) bars with the base rate."""
    groups = [g for g in most_skewed if most_skewed[g]]
    if not groups:
        return None
    rows_n = max(len(most_skewed[g][:top_k]) for g in groups)
    longest = max(len(str(r["label"])) for g in groups for r in most_skewed[g][:top_k])
    fig = new_figure(min(11.0, len(groups) * (3.0 + 0.06 * longest)), 0.26 * rows_n + 1.4)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, grp in zip(axes, groups):
        rows = most_skewed[grp][:top_k][::-1]
        ax.barh([str(r["label"]) for r in rows], [_finite(r["p"]) for r in rows], color="#4c72b0")
        if grp in base_rate:
            ax.axvline(base_rate[grp], color="black", linestyle="--", linewidth=1, label=f"base rate {base_rate[grp]:.2f}")
            ax.legend(loc="lower right", fontsize=7, frameon=True)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"P({grp} | label)", fontsize=8)
        ax.set_title(f"most skewed towards {grp}", fontsize=9)
        ax.tick_params(labelsize=7)
        _style_axes(ax)
    return fig_to_uri(fig)


def examples_grid(images: Sequence[np.ndarray | None], captions: Sequence[str], *, title: str,
                  ncols: int = 8) -> str | None:
    """A grid of ``(H, W, C)`` uint8 images with a caption above each (``None`` leaves a place empty)."""
    n = len(images)
    if n == 0 or all(im is None for im in images):
        return None
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    side = min(1.0, (10.6 - 0.2 * (ncols - 1)) / ncols)
    fig, axes = grid_figure(nrows, ncols, panel_w=side, panel_h=side, left=0.1, right=0.1, wgap=0.2, hgap=0.42,
                            top=0.75, bottom=0.1, min_width=4.0)
    for k in range(nrows * ncols):
        ax = axes[k // ncols][k % ncols]
        ax.axis("off")
        if k < n and images[k] is not None:
            img = images[k]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                      interpolation="nearest")
            ax.set_title(captions[k], fontsize=6.5, pad=2)
    fig.suptitle(title, fontsize=9, y=1 - 0.12 / fig.get_figheight())
    return fig_to_uri(fig)
