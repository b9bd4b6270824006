"""Step-based trainer over in-memory tensors, evaluation cadence, model selection, checkpoints."""

from debiaskit.train.selection import SELECTION_RULES, SelectionTracker
from debiaskit.train.trainer import RunResult, run_training

__all__ = ["SELECTION_RULES", "RunResult", "SelectionTracker", "run_training"]
