"""Bias and fairness metrics (functional API, NumPy and torch inputs).

One calling convention for every metric, as scikit-learn and fairlearn: ``metric(y_true, y_pred_or_score,
*, sensitive_features=..., <options>)`` — labels first, then predictions (or scores, named ``y_score``),
the protected attribute always as the keyword ``sensitive_features``, every other option keyword-only.
Tensors are converted to NumPy at the boundary; every metric validates its inputs and raises a one-line
:class:`~debiaskit.errors.DebiaskitError` for bad input. Definitions and citations: ``docs/metrics.md``.

* group accuracies (LfF / DisEnt protocol): :func:`bias_metrics`, :func:`group_accuracy_matrix`, …;
* ranking: :func:`average_precision`, :func:`mean_average_precision`;
* thresholds: :func:`calibrated_threshold`, :func:`f1_optimal_threshold`, :func:`apply_threshold`;
* group gaps: :func:`deo`, equalized-odds / demographic-parity differences and ratios, per-group rates;
* bias amplification: :func:`bias_amplification_zhao`, :func:`bias_amplification_directional`,
  :func:`bias_amplification_cvpr21`;
* score distributions: :func:`score_kl` (``mode="aligned"`` default, ``"official"`` = CVPR 2021 code);
* uncertainty: :func:`bootstrap`, :func:`bootstrap_many` (vectorised); disaggregation: :class:`GroupReport`.
"""

from debiaskit.metrics._validation import ArrayLike, MetricWarning
from debiaskit.metrics.amplification import (
    bias_amplification_cvpr21,
    bias_amplification_directional,
    bias_amplification_zhao,
)
from debiaskit.metrics.bootstrap import BootstrapResult, bootstrap, bootstrap_many, resample_weights
from debiaskit.metrics.fairness import (
    accuracy,
    demographic_parity_difference,
    demographic_parity_ratio,
    deo,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    fpr_by_group,
    group_confusion,
    rates_by_group,
    selection_rate,
    selection_rate_by_group,
    tpr_by_group,
    true_positive_rate,
)
from debiaskit.metrics.groups import (
    GROUP_METRICS,
    bias_metrics,
    group_accuracy_matrix,
    group_table,
    unbiased_accuracy,
    worst_group_accuracy,
)
from debiaskit.metrics.kl import score_kl
from debiaskit.metrics.ranking import average_precision, average_precision_batched, mean_average_precision
from debiaskit.metrics.report import GroupReport, on_scores
from debiaskit.metrics.thresholds import apply_threshold, calibrated_threshold, f1_optimal_threshold

__all__ = [
    # conventions
    "ArrayLike",
    "MetricWarning",
    # group accuracies (LfF / DisEnt)
    "GROUP_METRICS",
    "bias_metrics",
    "group_accuracy_matrix",
    "group_table",
    "unbiased_accuracy",
    "worst_group_accuracy",
    # ranking
    "average_precision",
    "average_precision_batched",
    "mean_average_precision",
    # thresholds
    "calibrated_threshold",
    "f1_optimal_threshold",
    "apply_threshold",
    # group gaps and rates
    "deo",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "tpr_by_group",
    "fpr_by_group",
    "selection_rate_by_group",
    "rates_by_group",
    "group_confusion",
    "true_positive_rate",
    "false_positive_rate",
    "selection_rate",
    "accuracy",
    # bias amplification
    "bias_amplification_zhao",
    "bias_amplification_directional",
    "bias_amplification_cvpr21",
    # score distributions
    "score_kl",
    # uncertainty and disaggregation
    "bootstrap",
    "bootstrap_many",
    "BootstrapResult",
    "resample_weights",
    "GroupReport",
    "on_scores",
]
