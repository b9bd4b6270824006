"""Evaluation as in Ramaswamy et al. (CVPR 2021): AP, DEO, BA, KL with bootstrap intervals.

The protocol is that of the official ``main.py`` / ``utils.py``; see ``docs/latent_aug.md``.

All metric definitions come from :mod:`debiaskit.metrics` (no copies here):

* AP = ``average_precision(y, s)`` on the evaluation set;
* τ_cal = ``calibrated_threshold`` on the **validation** scores, reused on test (``docs/latent_aug.md`` detail 8);
* DEO = ``deo(y, s > τ_cal, sensitive_features=g)`` = |TPR_g0 − TPR_g1|;
* BA = ``bias_amplification_cvpr21(y, s > τ_cal, sensitive_features=g)`` (attribute → task, eval-set indicator,
  ``docs/latent_aug.md`` detail 9);
* KL = ``score_kl(y, s, sensitive_features=g, mode="official", reduction="none")`` pooled over its four directional values
  (paper-comparable) and ``score_kl(..., mode="aligned")`` (our corrected variant; see metrics.kl).

Each metric is bootstrapped over the evaluation set with the CVPR convention (``n_boot`` resamples,
median, ±2σ; the paper uses 500). AP, DEO and BA are reported ×100 as in the paper; KL unscaled.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from debiaskit.metrics import (
    apply_threshold,
    average_precision,
    bias_amplification_cvpr21,
    bootstrap,
    calibrated_threshold,
    deo,
    score_kl,
)

__all__ = ["paper_metrics", "METRIC_KEYS"]

METRIC_KEYS = ("AP", "DEO", "BA", "KL", "KL_aligned")


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)


def paper_metrics(
    val_y: Any,
    val_scores: Any,
    y: Any,
    scores: Any,
    groups: Any,
    *,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """AP / DEO / BA / KL (+ aligned KL) of ``scores`` on an evaluation set, each as
    ``{"estimate", "low", "high", "point"}`` (bootstrap median ± 2σ), plus ``tau_cal``."""
    vy, vs = _np(val_y).astype(np.int64), _np(val_scores).astype(np.float64)
    yy, ss, gg = _np(y).astype(np.int64), _np(scores).astype(np.float64), _np(groups).astype(np.int64)
    tau = float(calibrated_threshold(vy, vs))
    pred = apply_threshold(ss, threshold=tau)
    out: dict[str, dict[str, float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        specs = {
            "AP": (average_precision, (yy, ss), {}, 100.0, False),
            "DEO": (deo, (yy, pred), {"sensitive_features": gg}, 100.0, False),
            "BA": (bias_amplification_cvpr21, (yy, pred), {"sensitive_features": gg}, 100.0, False),
            "KL": (score_kl, (yy, ss), {"sensitive_features": gg, "mode": "official", "reduction": "none"}, 1.0, True),
            "KL_aligned": (score_kl, (yy, ss), {"sensitive_features": gg, "mode": "aligned"}, 1.0, False),
        }
        for name, (fn, arrays, kw, scale, pool) in specs.items():
            r = bootstrap(fn, *arrays, n_boot=n_boot, convention="cvpr21", pool=pool, seed=seed, **kw)
            out[name] = {
                "estimate": scale * float(r.estimate),
                "low": scale * float(r.ci_low),
                "high": scale * float(r.ci_high),
                "point": scale * float(np.nanmean(r.point)),
            }
    out["tau_cal"] = {"estimate": tau}
    return out
