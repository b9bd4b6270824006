"""Range checks for every number in a run config (hyper-parameters, training and dataset options).

:func:`validate_numbers` runs on the resolved config before anything is written. Each key is checked by the
first rule that applies:

1. the explicit tables (:data:`HPARAM_RULES`, :data:`TRAIN_RULES`, :data:`DATASET_RULES`, :data:`TOP_RULES`);
2. the name patterns of :data:`PATTERN_RULES` (``lambda_*`` weights are >= 0, ``*_fraction`` is in [0, 1],
   ``*_steps`` is a non-negative integer, ...), so a new method's keys are checked without registering them;
   a pattern applies only to a value that is a number or spells one (``lambda_schedule: linear`` is a name);
3. every other number, at any depth (``model_kwargs`` included), must be finite.

A value of a checked key that is a string spelling a number (``"1e-3"``: YAML 1.1 reads exponents without a
dot as strings) is converted to the number in place; an integer key accepts an integral float (``1e4``).
Every failure is one :class:`~debiaskit.errors.DebiaskitError` naming the key, the allowed range and the value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from debiaskit.errors import DebiaskitError

__all__ = [
    "DATASET_RULES",
    "HPARAM_RULES",
    "PATTERN_RULES",
    "Rule",
    "TOP_RULES",
    "TRAIN_RULES",
    "check_number",
    "looks_like_number",
    "validate_numbers",
]

_NUMBER_RE = re.compile(r"[-+]?(?:(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)")
_SPECIAL = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, ".inf": math.inf, "+.inf": math.inf,
            "-.inf": -math.inf, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf,
            "nan": math.nan, ".nan": math.nan}


def looks_like_number(text: str) -> float | int | None:
    """The number ``text`` spells (``1e-3``, ``5E-4``, ``-2``, ``.5``, ``inf``, ``.nan`` ...), else ``None``."""
    t = text.strip()
    low = t.lower()
    if low in _SPECIAL:
        return _SPECIAL[low]
    if not t or not _NUMBER_RE.fullmatch(t) or t.startswith("_") or t.endswith("_"):
        return None
    t = t.replace("_", "")
    if re.fullmatch(r"[-+]?\d+", t):
        return int(t)
    try:
        return float(t)
    except ValueError:  # pragma: no cover - the regex admits only float syntax
        return None


@dataclass(frozen=True)
class Rule:
    """An allowed range: ``lo``/``hi`` bounds (``None`` = unbounded), open or closed, integer or real.

    ``optional`` lets ``None`` through (the key's "automatic" value).
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    optional: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.lo is not None and self.hi is not None:
            rng = f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            if self.lo == 0 and self.lo_open:
                return f"a positive {kind.split(' ', 1)[1]}" + (" (or null)" if self.optional else "")
            if self.lo == 0:
                return f"a non-negative {kind.split(' ', 1)[1]}" + (" (or null)" if self.optional else "")
            if self.lo == 1 and self.integer:
                return "a positive integer" + (" (or null)" if self.optional else "")
            rng = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        elif self.hi is not None:
            rng = f"{'<' if self.hi_open else '<='} {self.hi:g}"
        else:
            return f"a finite {kind.split(' ', 1)[1]}" + (" (or null)" if self.optional else "")
        return f"{kind} {rng}" + (" (or null)" if self.optional else "")

    def ok(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.integer and v != int(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True


FINITE = Rule()
POSITIVE = Rule(lo=0, lo_open=True)
NON_NEGATIVE = Rule(lo=0)
POSITIVE_INT = Rule(lo=1, integer=True)
NON_NEGATIVE_INT = Rule(lo=0, integer=True)
PROBABILITY = Rule(lo=0, hi=1)
FRACTION_OPEN = Rule(lo=0, hi=1, lo_open=True, hi_open=True)
UNIT_RIGHT_OPEN = Rule(lo=0, hi=1, hi_open=True)
UNIT_LEFT_OPEN = Rule(lo=0, hi=1, lo_open=True)
AT_LEAST_ONE = Rule(lo=1)


def _opt(rule: Rule) -> Rule:
    return Rule(rule.lo, rule.hi, rule.lo_open, rule.hi_open, rule.integer, optional=True)


#: hyper-parameters (``hparams.*``) with a known range
HPARAM_RULES: dict[str, Rule] = {
    "lr": POSITIVE,
    "steps": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "weight_decay": NON_NEGATIVE,
    "momentum": UNIT_RIGHT_OPEN,
    "lr_step_size": POSITIVE_INT,
    "lr_gamma": POSITIVE,
    "q": UNIT_LEFT_OPEN,  # generalised cross-entropy exponent (Zhang & Sabuncu, NeurIPS 2018), used by LfF
    "ema_alpha": PROBABILITY,  # LfF's per-sample loss EMA (Nam et al., NeurIPS 2020)
    "curr_step": NON_NEGATIVE_INT,
    "pretrain_fraction": PROBABILITY,
    "mask_fraction": PROBABILITY,
    "mask_lr": _opt(POSITIVE),
    "mask_init_bias": FINITE,
    "dro_eta": POSITIVE,
    "dro_adjustment": NON_NEGATIVE,
    "balance_alpha": AT_LEAST_ONE,
    "balance_seed": NON_NEGATIVE_INT,
    "balance_redraws": NON_NEGATIVE_INT,
    "loader_factor": AT_LEAST_ONE,
    "adv_hidden": POSITIVE_INT,
    "adv_layers": POSITIVE_INT,
    "unet_depth": POSITIVE_INT,
    "unet_ngf": POSITIVE_INT,
    "grid_every": NON_NEGATIVE_INT,
    "grid_n": POSITIVE_INT,
    "early_stop_patience": NON_NEGATIVE_INT,
    "max_synthetic": _opt(NON_NEGATIVE_INT),
    # loss weights of DisEnt (Lee et al., NeurIPS 2021) and adversarial debiasing (Wang et al., ICCV 2019)
    "lambda_dis": NON_NEGATIVE,
    "lambda_swap": NON_NEGATIVE,
    "lambda_swap_b": NON_NEGATIVE,
    "adv_lambda": NON_NEGATIVE,
    "l1_beta": NON_NEGATIVE,
}

#: training options (``train.*``)
TRAIN_RULES: dict[str, Rule] = {
    "eval_every": POSITIVE_INT,
    "checkpoint_every": POSITIVE_INT,
    "eval_batch_size": POSITIVE_INT,
    "log_every": POSITIVE,
    "weight_average_decay": UNIT_RIGHT_OPEN,
    "weight_average_start": NON_NEGATIVE_INT,
}

#: dataset builder options (``dataset.*``)
DATASET_RULES: dict[str, Rule] = {
    "ratio": FRACTION_OPEN,  # share of bias-conflicting training samples
    "severity": POSITIVE_INT,
    "seed": NON_NEGATIVE_INT,
    "split_seed": NON_NEGATIVE_INT,
    "type": NON_NEGATIVE_INT,
    "val_fraction": UNIT_RIGHT_OPEN,
    "test_fraction": UNIT_RIGHT_OPEN,
    "unbiased_val_size": NON_NEGATIVE_INT,
    "resolution": POSITIVE_INT,
    "size": POSITIVE_INT,
    "limit": _opt(POSITIVE_INT),
    "workers": NON_NEGATIVE_INT,
    "num_workers": _opt(NON_NEGATIVE_INT),
    "balanced_ratio": _opt(POSITIVE),
}

#: top-level keys
TOP_RULES: dict[str, Rule] = {"seed": NON_NEGATIVE_INT, "hparams_seed": NON_NEGATIVE_INT}

#: name patterns (``fnmatch``), tried in order for keys not in the explicit tables
PATTERN_RULES: list[tuple[str, Rule]] = [
    ("*_steps", _opt(NON_NEGATIVE_INT)),
    ("lambda_*", _opt(NON_NEGATIVE)),
    ("*_lambda", _opt(NON_NEGATIVE)),
    ("*_weight", _opt(NON_NEGATIVE)),
    ("*_beta", _opt(NON_NEGATIVE)),
    ("*_every", _opt(NON_NEGATIVE_INT)),
    ("*_fraction", _opt(PROBABILITY)),
    ("*_prob", _opt(PROBABILITY)),
    ("*_seed", _opt(NON_NEGATIVE_INT)),
    ("*_size", _opt(POSITIVE_INT)),
    ("*_lr", _opt(POSITIVE)),
    ("*_decay", _opt(UNIT_RIGHT_OPEN)),
]


def _rule_for(key: str, table: dict[str, Rule]) -> Rule | None:
    if key in table:
        return table[key]
    for pattern, rule in PATTERN_RULES:
        if fnmatchcase(key, pattern):
            return rule
    return None


def check_number(name: str, value: Any, rule: Rule) -> Any:
    """``value`` checked against ``rule`` (a numeric string converted); raises a one-line ``DebiaskitError``."""
    if value is None and rule.optional:
        return None
    v = value
    if isinstance(v, str):
        parsed = looks_like_number(v)
        v = parsed if parsed is not None else v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DebiaskitError(f"{name} must be {rule.describe()}, got {value!r}")
    if not rule.ok(float(v)):
        raise DebiaskitError(f"{name} must be {rule.describe()}, got {value!r}")
    if rule.integer:
        return int(v)
    return v


def _finite_everywhere(name: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise DebiaskitError(f"{name} must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite_everywhere(f"{name}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _finite_everywhere(f"{name}[{i}]", v)


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (isinstance(value, str) and looks_like_number(value) is not None)


def _check_section(prefix: str, section: dict[str, Any], table: dict[str, Rule]) -> None:
    for key in list(section):
        rule = _rule_for(key, table)
        name = f"{prefix}{key}"
        if rule is not None and key not in table and not _numeric(section[key]):
            rule = None  # a pattern only checks numbers: ``lambda_schedule: linear`` is not a weight
        if rule is not None:
            section[key] = check_number(name, section[key], rule)
        else:
            _finite_everywhere(name, section[key])


def validate_numbers(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check (and normalise in place) every number of a resolved run config; returns ``cfg``.

    ``cfg`` has the layout of :func:`debiaskit.experiments.config.resolve_config` (``seed``, ``hparams``,
    ``train``, ``dataset`` ...); sections that are absent are skipped.
    """
    for key, rule in TOP_RULES.items():
        if key in cfg:
            cfg[key] = check_number(key, cfg[key], rule)
    for section, table in (("hparams", HPARAM_RULES), ("train", TRAIN_RULES), ("dataset", DATASET_RULES)):
        node = cfg.get(section)
        if isinstance(node, dict):
            _check_section(f"{section}.", node, table)
    return cfg
