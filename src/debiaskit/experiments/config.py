"""Run configuration: defaults, YAML files, ``--set key=value`` overrides, and strict validation.

A resolved config is a plain dict (written verbatim to ``config.yaml`` in the run directory)::

    seed: 0
    device: auto                 # auto | cpu | cuda[:N]
    dataset: {name: colored_mnist, ratio: 0.01, ...}   # builder options, validated by signature
    method: vanilla
    hparams_seed: 0              # 0 = the registry defaults; k > 0 = the k-th random-search draw
    hparams: {model: mlp_lff, lr: 0.001, steps: 23500, ...}  # resolve_hparams(method, dataset, ratio) + overrides
    train: {eval_every: 500, checkpoint_every: 1000, selection: [last, best_val_accuracy], ...}

Unknown keys anywhere are errors (a typo must never be silently ignored).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from debiaskit.data.generic import absolute_path_options
from debiaskit.data.registry import dataset_options
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.hparams import resolve_hparams
from debiaskit.experiments.validation import Rule, check_number, looks_like_number, validate_numbers
from debiaskit.methods.optimizers import OPTIMIZER_IMPLS
from debiaskit.methods.registry import get_method

TOP_LEVEL = ("seed", "hparams_seed", "device", "dataset", "method", "hparams", "train")

#: ``train.nan_policy`` values: what a step with a non-finite loss or gradient does (docs/reliability.md)
NAN_POLICIES = ("error", "skip")

TRAIN_DEFAULTS: dict[str, Any] = {
    "eval_every": 500,
    "checkpoint_every": 1000,
    "eval_splits": None,  # None = every split except train
    "eval_train": False,
    "selection": None,  # None = last + the held-out rules the splits allow (never oracle_test)
    "report": None,  # the rule whose metrics are headlined; None = best held-out rule, else last
    "eval_batch_size": 2048,
    "data_on_device": True,  # keep uint8 images on the accelerator when there is one
    "amp": "none",  # none | bf16: autocast the update and evaluation in bfloat16 (CPU or GPU)
    "channels_last": False,  # NHWC memory format for conv models
    "float_cache": "auto",  # auto | on | off: keep a float32 copy of uint8 training images (exact; CPU speed)
    "optimizer_impl": "auto",  # auto | fused | foreach | for_loop: PyTorch optimiser implementation (rounding only)
    "progress": True,  # progress bar on a terminal, else a plain line every log_every seconds
    "log_every": 30,  # seconds between plain progress lines when stderr is not a terminal
    "threads": "auto",  # intra-op threads: auto (see debiaskit.threads) or a positive integer
    "nan_policy": "error",  # error: a non-finite training loss stops the run naming the step; skip: skip that step
    "nan_max_skips": None,  # skip: more non-finite steps in a row stop the run; None = max(1, eval_every // 10)
    "weight_average": "none",  # none | ema: also evaluate an EMA of the weights (rows with weights: ema)
    "weight_average_decay": 0.999,
    "weight_average_start": 0,  # EMA starts after this step (before: a copy of the weights)
}


def parse_value(text: str) -> Any:
    """A ``--set`` value: a YAML scalar / list, with numbers YAML 1.1 misses (``1e-3``, ``5E-4``, ``nan``) as floats."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, str):
        number = looks_like_number(value)
        if number is not None:
            return number
    return value


def apply_overrides(cfg: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML scalars/lists)."""
    cfg = copy.deepcopy(cfg)
    for item in sets or []:
        if "=" not in item:
            raise DebiaskitError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise DebiaskitError(f"--set has an empty key in {item!r}")
        node = cfg
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise DebiaskitError(f"--set {key}: {p!r} is not a section")
        node[parts[-1]] = parse_value(value)
    return cfg


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a run or sweep config file: a UTF-8 YAML mapping (``yaml.safe_load``; empty file = ``{}``).

    Every problem is one :class:`DebiaskitError` naming the file: missing, a directory, not UTF-8 text (a binary
    file, another encoding), not YAML, not a mapping.
    """
    p = Path(path)
    if p.is_dir():
        raise DebiaskitError(f"config file {p} is a directory, not a YAML file")
    if not p.is_file():
        raise DebiaskitError(f"config file {p} does not exist")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is allowed
    except UnicodeDecodeError as e:
        raise DebiaskitError(f"{p} is not a UTF-8 YAML file (undecodable byte at offset {e.start})") from None
    if "\x00" in text:
        raise DebiaskitError(f"{p} is not a UTF-8 YAML file (it holds NUL bytes: a binary file?)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "syntax error"
        raise DebiaskitError(f"config file {p} is not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DebiaskitError(f"config file {p} must hold a mapping at the top level")
    return data


def _check_keys(section: str, given: dict[str, Any], valid: Any) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise DebiaskitError(
            f"unknown {section} key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
        )


def resolve_config(user: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and validate; returns the full config (see module docstring)."""
    if not isinstance(user, dict):
        raise DebiaskitError("a run config must be a mapping")
    _check_keys("config", user, TOP_LEVEL)
    ds = user.get("dataset")
    if isinstance(ds, str):
        ds = {"name": ds}
    if not isinstance(ds, dict) or not ds.get("name"):
        raise DebiaskitError("the config needs a dataset name (dataset.name or --dataset)")
    ds = dict(ds)
    options = dataset_options(ds["name"])  # raises on unknown dataset
    _check_keys(f"dataset option ({ds['name']})", {k: v for k, v in ds.items() if k != "name"}, options)
    dataset = {"name": ds["name"], **{k: ds.get(k, v) for k, v in options.items()}}
    dataset = absolute_path_options(dataset)  # absolute, resolved paths: the run works from any directory

    method = user.get("method", "vanilla")
    if not isinstance(method, str):
        raise DebiaskitError("method must be a name, e.g. vanilla")
    get_method(method)  # raises on unknown method
    hp_user = user.get("hparams") or {}
    if not isinstance(hp_user, dict):
        raise DebiaskitError("hparams must be a mapping")
    hparams_seed = user.get("hparams_seed", 0)
    hparams = resolve_hparams(method, dataset["name"], ratio=dataset.get("ratio"), hparams_seed=hparams_seed,
                              user=hp_user)

    train_user = user.get("train") or {}
    if not isinstance(train_user, dict):
        raise DebiaskitError("train must be a mapping")
    _check_keys("train", train_user, TRAIN_DEFAULTS)
    train = {**TRAIN_DEFAULTS, **train_user}

    seed = user.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DebiaskitError(f"seed must be a non-negative integer, got {seed!r}")
    cfg = {
        "seed": seed,
        "hparams_seed": hparams_seed,
        "device": str(user.get("device", "auto")),
        "dataset": dataset,
        "method": method,
        "hparams": hparams,
        "train": train,
    }
    validate_numbers(cfg)  # ranges of every number; converts "1e-3"-style strings
    _validate_numbers(cfg)
    return cfg


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DebiaskitError(f"{name} must be a positive integer, got {value!r}")


def _validate_numbers(cfg: dict[str, Any]) -> None:
    hp, tr = cfg["hparams"], cfg["train"]
    _positive_int("steps", hp["steps"])
    _positive_int("batch_size", hp["batch_size"])
    _positive_int("train.eval_every", tr["eval_every"])
    _positive_int("train.checkpoint_every", tr["checkpoint_every"])
    _positive_int("train.eval_batch_size", tr["eval_batch_size"])
    if tr["amp"] not in ("none", "bf16"):
        raise DebiaskitError(f"train.amp must be none or bf16, got {tr['amp']!r}")
    if isinstance(tr["float_cache"], bool):  # YAML 1.1 reads a bare on / off as a boolean
        tr["float_cache"] = "on" if tr["float_cache"] else "off"
    if tr["float_cache"] not in ("auto", "on", "off"):
        raise DebiaskitError(f"train.float_cache must be auto, on or off, got {tr['float_cache']!r}")
    if tr["optimizer_impl"] not in OPTIMIZER_IMPLS:
        raise DebiaskitError(f"train.optimizer_impl must be one of {', '.join(OPTIMIZER_IMPLS)}, "
                             f"got {tr['optimizer_impl']!r}")
    if tr["nan_policy"] not in NAN_POLICIES:
        raise DebiaskitError(f"train.nan_policy must be {' or '.join(NAN_POLICIES)}, got {tr['nan_policy']!r}")
    tr["nan_max_skips"] = check_number("train.nan_max_skips", tr["nan_max_skips"],
                                       Rule(lo=0, integer=True, optional=True))
    if tr["weight_average"] not in ("none", "ema"):
        raise DebiaskitError(f"train.weight_average must be none or ema, got {tr['weight_average']!r}")
    d = tr["weight_average_decay"]
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
        raise DebiaskitError(f"train.weight_average_decay must be a number in [0, 1), got {d!r}")
    w = tr["weight_average_start"]
    if isinstance(w, bool) or not isinstance(w, int) or w < 0:
        raise DebiaskitError(f"train.weight_average_start must be a non-negative integer, got {w!r}")
    t = tr["threads"]
    if t != "auto" and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
        raise DebiaskitError(f"train.threads must be auto or a positive integer, got {t!r}")
    lg = tr["log_every"]
    if isinstance(lg, bool) or not isinstance(lg, (int, float)) or not lg > 0 or lg != lg or lg == float("inf"):
        raise DebiaskitError(f"train.log_every must be a positive number of seconds, got {lg!r}")
    for k in ("lr",):
        if not isinstance(hp[k], (int, float)) or isinstance(hp[k], bool) or not hp[k] > 0:
            raise DebiaskitError(f"{k} must be a positive number, got {hp[k]!r}")
    if not isinstance(hp["weight_decay"], (int, float)) or hp["weight_decay"] < 0:
        raise DebiaskitError(f"weight_decay must be >= 0, got {hp['weight_decay']!r}")
