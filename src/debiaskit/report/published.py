"""Published test unbiased accuracies (%) shown next to ours in the method comparison of a report.

Only numbers whose source we can name are listed; a missing standard deviation is ``None`` (never guessed).
Ratios are the bias-conflicting fractions of the training set. Sources:

* **DisEnt paper main table** — Lee et al., "Learning Debiased Representation via Disentangled Feature
  Augmentation", NeurIPS 2021, Table 1 (vanilla, LfF re-run and DisEnt), as quoted by Liu et al., "Avoiding
  spurious correlations via logit correction" (ICLR 2023), Table 1, and (Corrupted CIFAR-10, with standard
  deviations) by Barbano et al., "Unbiased Supervised Contrastive Learning" (ICLR 2023), Table 4.
* **LfF paper** — Nam et al., "Learning from Failure", NeurIPS 2020, Colored MNIST table, as printed in
  DeNetDM (NeurIPS 2024) Table 1 rows "ERM" and "LfF".

The DisEnt-paper numbers select the best of many *test* evaluations (see ``docs/methods_lff_disent.md``); they are
comparable with our ``oracle (test-set selection)`` column, not with validation-based selection.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PUBLISHED", "published_for"]

_DISENT = "DisEnt paper (Lee et al. NeurIPS 2021) Table 1"
_LFF = "LfF paper (Nam et al. NeurIPS 2020), as printed in DeNetDM Table 1"

#: ``{dataset: [{"method", "source", "values": {ratio: (mean %, std % or None)}}]}``
PUBLISHED: dict[str, list[dict[str, Any]]] = {
    "colored_mnist": [
        {"method": "vanilla", "source": _DISENT,
         "values": {0.005: (35.19, 3.49), 0.01: (52.09, None), 0.02: (65.86, None), 0.05: (82.17, 0.74)}},
        {"method": "lff", "source": _DISENT + " (LfF re-run)",
         "values": {0.005: (52.5, None), 0.01: (61.89, None), 0.02: (71.03, None), 0.05: (80.57, None)}},
        {"method": "disent", "source": _DISENT,
         "values": {0.005: (65.22, None), 0.01: (81.73, None), 0.02: (84.79, None), 0.05: (89.66, None)}},
        {"method": "vanilla", "source": _LFF,
         "values": {0.005: (35.34, 0.13), 0.01: (50.34, 0.16), 0.02: (62.29, 1.47), 0.05: (77.63, 0.13)}},
        {"method": "lff", "source": _LFF,
         "values": {0.005: (63.39, 1.97), 0.01: (74.01, 2.21), 0.02: (80.48, 0.45), 0.05: (85.39, 0.94)}},
    ],
    "corrupted_cifar10": [
        {"method": "vanilla", "source": _DISENT,
         "values": {0.005: (23.08, 1.25), 0.01: (25.82, 0.33), 0.02: (30.06, 0.71), 0.05: (39.42, 0.64)}},
        {"method": "lff", "source": _DISENT + " (LfF re-run)",
         "values": {0.005: (28.57, 1.30), 0.01: (33.07, 0.77), 0.02: (39.91, 0.30), 0.05: (50.27, 1.56)}},
        {"method": "disent", "source": _DISENT,
         "values": {0.005: (29.95, 0.71), 0.01: (36.49, 1.79), 0.02: (41.78, 2.29), 0.05: (51.13, 1.28)}},
    ],
}


def published_for(dataset: str | None, method: str | None, ratio: float | None) -> list[dict[str, Any]]:
    """Every published ``{"source", "mean", "std"}`` (in %) for a (dataset, method, ratio) cell, first = primary."""
    if dataset is None or method is None or ratio is None:
        return []
    out = []
    for entry in PUBLISHED.get(str(dataset), []):
        if entry["method"] != method:
            continue
        for r, (mean, std) in entry["values"].items():
            if abs(float(r) - float(ratio)) <= 1e-9 * max(1.0, abs(float(r))):
                out.append({"source": entry["source"], "mean": mean, "std": std})
    return out
