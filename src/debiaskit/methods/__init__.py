"""Training methods, looked up by name: ``list_methods()``, ``get_method(name)``.

See :class:`debiaskit.methods.base.Method` for the contract every method implements.
"""

from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.registry import METHODS, default_hparams, get_method, list_methods, register_method

__all__ = [
    "Batch",
    "METHODS",
    "Method",
    "TrainContext",
    "default_hparams",
    "get_method",
    "list_methods",
    "register_method",
]
