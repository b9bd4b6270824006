"""Step-based trainer over in-memory tensors, evaluation cadence, model selection, checkpoints."""

from debiaskit.train.selection import (
    ORACLE_LABEL,
    SelectionRule,
    SelectionTracker,
    get_selection_rule,
    list_selection_rules,
    register_selection_rule,
    select,
)
from debiaskit.train.trainer import RunResult, build_data, build_method, run_training

__all__ = [
    "ORACLE_LABEL",
    "RunResult",
    "SelectionRule",
    "SelectionTracker",
    "build_data",
    "build_method",
    "get_selection_rule",
    "list_selection_rules",
    "register_selection_rule",
    "run_training",
    "select",
]
