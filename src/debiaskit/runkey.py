"""The run key: which options define a run, defined once.

``run_key(cfg)`` is the first 16 hex digits of the SHA-256 of :func:`canonical_config` — the resolved config
with the options that change neither what is trained nor its numbers removed:

* display and performance options: ``train.progress``, ``train.threads``, ``train.eval_batch_size``,
  ``train.data_on_device``, ``train.float_cache``, ``train.log_every``, dataset ``progress`` / ``num_workers`` / ``workers`` /
  ``use_cache``;
* ``train.optimizer_impl`` (PyTorch's fused / foreach / for-loop optimiser): like the thread count or the
  CPU kind, it changes floating-point rounding only, never the algorithm; ``result.json`` says which ran;
* ``train.nan_max_skips``: it only decides whether a ``nan_policy: skip`` run gives up, never the numbers of
  a run that finishes (raising it and re-running resumes the same run);
* the *location* of data whose content is fixed and checksummed by its loader (``data_dir``,
  ``image_root``, ``frost_dir`` of the built-in datasets): the same MNIST read from another folder is the
  same run. For user data (``csv``, ``image_folder``) the location *is* the data and stays in the key;
* keys added after the first records were written (:data:`OMIT_AT_DEFAULT`), while they hold their
  default — so records written before a key existed keep their key.

The trainer (``config.yaml`` comparison on resume), the sweep (run directory names, skipping recorded cells)
and ``collect`` (grouping seeds) all use this module.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from debiaskit.io import to_json

__all__ = ["NON_KEY_TRAIN", "OMIT_AT_DEFAULT", "canonical_config", "group_key", "run_key", "run_name", "setting_key"]

#: train options that only change speed or display (or, ``nan_max_skips``, only whether a run gives up)
NON_KEY_TRAIN = frozenset({"progress", "threads", "eval_batch_size", "data_on_device", "log_every", "nan_max_skips",
                           "optimizer_impl", "float_cache"})
#: dataset options that only change speed or display
NON_KEY_DATASET = frozenset({"progress", "num_workers", "workers", "use_cache"})
#: dataset options that locate data whose content the loader verifies
LOCATION_OPTIONS = frozenset({"data_dir", "image_root", "frost_dir"})
#: datasets whose data *is* the user's files: the location identifies the data
USER_DATA_DATASETS = frozenset({"csv", "image_folder"})
#: keys added after records were first written, omitted from the key while at these defaults
OMIT_AT_DEFAULT: dict[tuple[str, ...], Any] = {
    ("hparams_seed",): 0,
    ("train", "nan_policy"): "error",
    ("train", "weight_average"): "none",
    ("train", "weight_average_decay"): 0.999,
    ("train", "weight_average_start"): 0,
}


def canonical_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that defines the run (see the module docstring)."""
    c = copy.deepcopy(cfg)
    train = c.get("train")
    if isinstance(train, dict):
        c["train"] = {k: v for k, v in train.items() if k not in NON_KEY_TRAIN}
    ds = c.get("dataset")
    if isinstance(ds, dict):
        user_data = ds.get("name") in USER_DATA_DATASETS
        c["dataset"] = {
            k: v for k, v in ds.items()
            if k not in NON_KEY_DATASET and (user_data or k not in LOCATION_OPTIONS)
        }
    for path, default in OMIT_AT_DEFAULT.items():
        node = c
        for p in path[:-1]:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node and _same(node[path[-1]], default):
            del node[path[-1]]
    return c


def _same(a: Any, b: Any) -> bool:
    return to_json(a, indent=None) == to_json(b, indent=None)


def _digest(obj: Any) -> str:
    return hashlib.sha256(to_json(obj, indent=None).encode()).hexdigest()


def run_key(cfg: dict[str, Any]) -> str:
    """16 hex digits identifying a run (same config → same key on every machine)."""
    return _digest(canonical_config(cfg))[:16]


def group_key(cfg: dict[str, Any]) -> str:
    """The run key without the seed: runs that differ only in their seed share it (``collect`` pools them)."""
    c = canonical_config(cfg)
    c.pop("seed", None)
    return _digest(c)[:12]


def setting_key(cfg: dict[str, Any]) -> str:
    """The group key without the hyper-parameters: all settings of one (method, dataset, options) cell."""
    c = canonical_config(cfg)
    for k in ("seed", "hparams", "hparams_seed"):
        c.pop(k, None)
    return _digest(c)[:12]


def run_name(cfg: dict[str, Any]) -> str:
    """A readable, unique run directory name: ``<method>-<dataset>[-r<ratio>][-h<k>]-s<seed>-<key>``."""
    ds = cfg["dataset"]
    ratio = ds.get("ratio")
    tag = f"{cfg['method']}-{ds['name']}" + (f"-r{float(ratio):g}" if ratio is not None else "")
    if cfg.get("hparams_seed"):
        tag += f"-h{cfg['hparams_seed']}"
    return f"{tag}-s{cfg['seed']}-{run_key(cfg)}"
