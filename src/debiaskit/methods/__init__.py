"""Training methods, looked up by name: ``list_methods()``, ``get_method(name)``.

See :class:`debiaskit.methods.base.Method` for the contract every method implements.
"""

from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.registry import METHODS, get_method, list_methods, register_method
from debiaskit.methods.space import Choice, Distribution, IntLogUniform, LogUniform, Uniform

__all__ = [
    "Batch",
    "Choice",
    "Distribution",
    "IntLogUniform",
    "LogUniform",
    "Uniform",
    "METHODS",
    "Method",
    "TrainContext",
    "get_method",
    "list_methods",
    "register_method",
]
