"""Experiments: run configs and the hyper-parameter registry, run records, sweeps, collection and selection.

* :func:`resolve_config` / :func:`resolve_hparams` — one resolution of a run's options for every entry point;
* :func:`expand_sweep` / :func:`run_sweep` — grids of runs in content-addressed directories;
* :func:`export_record` / :func:`load_runs` — finished runs as small committed records;
* :func:`collect` / :func:`format_table` — mean ± std over seeds under any registered selection rule;
* :func:`execute_sweep` — run the cells of a sweep on an execution backend (``local`` processes or ``ray``);
* :func:`load_run` — read back a run directory (predict with its selected model);
  :func:`classifier_from_run` — a finished run as an attribute classifier (latent-space augmentation).
"""

from debiaskit.experiments.backends import execute_sweep
from debiaskit.experiments.collect import collect, format_table
from debiaskit.experiments.config import apply_overrides, load_config_file, resolve_config
from debiaskit.experiments.hparams import COMMON_HPARAMS, DATASET_HPARAMS, explain_hparams, resolve_hparams
from debiaskit.experiments.records import RunData, export_record, find_record, load_record, load_runs, make_record
from debiaskit.experiments.rundir import Run, classifier_from_run, load_run
from debiaskit.experiments.sweep import SweepRun, expand_sweep, load_sweep, run_one, run_sweep

__all__ = [
    "COMMON_HPARAMS",
    "DATASET_HPARAMS",
    "Run",
    "RunData",
    "SweepRun",
    "apply_overrides",
    "classifier_from_run",
    "collect",
    "execute_sweep",
    "expand_sweep",
    "explain_hparams",
    "export_record",
    "find_record",
    "format_table",
    "load_config_file",
    "load_record",
    "load_run",
    "load_runs",
    "load_sweep",
    "make_record",
    "resolve_config",
    "resolve_hparams",
    "run_one",
    "run_sweep",
]
