"""A text bias card for a dataset build: per split sizes, conflict ratio, per-(target, bias) counts."""

from __future__ import annotations

from debiaskit.data.base import BiasedDataset, DatasetSplits


def _matrix(ds: BiasedDataset) -> str:
    counts = ds.group_counts()
    bn = ds.bias_names or [str(b) for b in range(ds.num_bias)]
    cn = ds.class_names or [str(c) for c in range(ds.num_classes)]
    w = max(6, *(len(n) for n in bn)) + 1
    corner = "target \\ bias"
    head = f"{corner:>14s}" + "".join(f"{n[: w - 1]:>{w}s}" for n in bn)
    rows = []
    for y in range(ds.num_classes):
        cells = []
        for b in range(ds.num_bias):
            mark = "*" if bool(ds.aligned_cells[y, b]) else " "
            cells.append(f"{int(counts[y, b]):>{w - 1}d}{mark}")
        rows.append(f"{cn[y][:14]:>14s}" + "".join(cells))
    return "\n".join([head, *rows])


def format_split_card(splits: DatasetSplits) -> str:
    """Sizes, conflict ratios and the per-group count matrix (aligned cells marked ``*``) of every split."""
    lines = []
    first = next(iter(splits.values()))
    lines.append(f"dataset: {first.name}   fingerprint: {splits.fingerprint}")
    for k, v in splits.info.items():
        if isinstance(v, (str, int, float)):
            lines.append(f"  {k}: {v}")
    for name, ds in splits.items():
        lines.append("")
        lines.append(
            f"[{name}] {len(ds)} samples, image {tuple(ds.image_shape)}, {ds.num_classes} classes x {ds.num_bias} bias values"
        )
        if ds.multilabel:
            pos = ds.targets.sum(0)
            lines.append(f"  multi-label; positives per label: min {int(pos.min())}, max {int(pos.max())}")
            continue
        lines.append(f"  conflict ratio: {100 * ds.conflict_ratio:.2f}%   aligned: {int(ds.aligned.sum())}   "
                     f"conflicting: {int(ds.conflicting.sum())}")
        lines.append(_matrix(ds))
    return "\n".join(lines)
