"""debiaskit: measure and mitigate bias in image classifiers.

Public entry points live in the sub-packages:

* :mod:`debiaskit.data` – the biased-dataset contract and dataset registry;
* :mod:`debiaskit.models` – model registry (MLPs, ResNets, ...);
* :mod:`debiaskit.methods` – training methods registry (vanilla, lff, disent, ...);
* :mod:`debiaskit.train` – step-based trainer, model selection, checkpoints;
* :mod:`debiaskit.metrics` – bias / fairness metrics;
* :mod:`debiaskit.experiments` – run configs, run directories, sweeps.
"""

__version__ = "0.1.0"

from debiaskit.errors import DebiaskitError  # noqa: E402

__all__ = ["__version__", "DebiaskitError"]
