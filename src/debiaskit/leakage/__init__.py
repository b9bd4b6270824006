"""Leakage and bias amplification (Wang et al., "Balanced Datasets Are Not Enough", ICCV 2019).

* :func:`dataset_leakage` (λ_D), :func:`model_leakage` (λ_M), :func:`leakage_at_f1` (λ_D(F1)),
  :func:`amplification` (Δ = λ_M − λ_D(F1));
* :func:`balanced_split` (α-balanced subsets), :func:`folded_accuracy`, :func:`balanced_indices`;
* :class:`AttackerConfig` / :class:`BatchedAttacker` (the paper's attacker MLP, many rounds at once);
* :func:`audit_model` / :func:`format_model_audit`: λ_M, λ_D(F1) and Δ of a trained run (``debiaskit audit model``).
"""

from debiaskit.leakage.attacker import AttackerConfig, BatchedAttacker, train_attackers
from debiaskit.leakage.balanced import PAPER_SIZES, balanced_indices, folded_accuracy
from debiaskit.leakage.leakage import (
    COCO_FLIP_GRID,
    IMSITU_REPLACE_GRID,
    LeakageCurve,
    LeakageResult,
    amplification,
    dataset_leakage,
    expected_macro_f1,
    interpolate_monotone,
    leakage_at_f1,
    macro_f1,
    model_leakage,
    perturb_labels,
    perturbation_for_f1,
)
from debiaskit.leakage.model_audit import audit_model, format_model_audit
from debiaskit.leakage.splits import BalancedSplit, balanced_split, label_ratios

__all__ = [
    "AttackerConfig", "BatchedAttacker", "train_attackers", "PAPER_SIZES", "balanced_indices", "folded_accuracy",
    "COCO_FLIP_GRID", "IMSITU_REPLACE_GRID", "LeakageCurve", "LeakageResult", "amplification", "dataset_leakage",
    "expected_macro_f1", "interpolate_monotone", "leakage_at_f1", "macro_f1", "model_leakage", "perturb_labels",
    "perturbation_for_f1", "BalancedSplit", "balanced_split", "label_ratios", "audit_model", "format_model_audit",
]
