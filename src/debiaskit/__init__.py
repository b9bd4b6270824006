"""debiaskit: measure and mitigate bias in image classifiers.

Public entry points live in the sub-packages:

* :mod:`debiaskit.data` – the biased-dataset contract and dataset registry;
* :mod:`debiaskit.models` – model registry (MLPs, ResNets, ...);
* :mod:`debiaskit.methods` – training methods registry (vanilla, lff, disent, ...);
* :mod:`debiaskit.train` – step-based trainer, model selection, checkpoints;
* :mod:`debiaskit.metrics` – bias / fairness metrics;
* :mod:`debiaskit.experiments` – run configs, run directories, sweeps.

:func:`debiaskit.fit` trains any method on your own ``nn.Module`` and dataset (``docs/api.md``); it is
imported on first use, so ``import debiaskit`` stays fast (no torch import).
"""

__version__ = "0.1.0"

from debiaskit.errors import DebiaskitError  # noqa: E402

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps `import debiaskit` fast)
if TYPE_CHECKING:  # pragma: no cover
    from debiaskit.api import RunResult, fit

__all__ = ["__version__", "DebiaskitError", "RunResult", "fit"]


def __getattr__(name: str) -> object:
    """Lazy ``debiaskit.fit`` / ``debiaskit.RunResult`` (PEP 562)."""
    if name in ("fit", "RunResult"):
        from debiaskit import api

        return getattr(api, name)
    raise AttributeError(f"module 'debiaskit' has no attribute {name!r}")
