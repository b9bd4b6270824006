"""Numeric inputs: numbers YAML 1.1 misses are parsed, every number of a config is range-checked."""

from __future__ import annotations

import argparse
import math

import pytest

from debiaskit.commands.argtypes import positive_float, positive_int, unit_right_open_float
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import apply_overrides, parse_value, resolve_config
from debiaskit.experiments.validation import looks_like_number, validate_numbers


@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("5E-4", 0.0005), ("1.5e3", 1500.0), ("-2e-1", -0.2), (".5", 0.5), ("3", 3), ("1_000", 1000),
    ("0.001", 0.001),
])
def test_parse_value_reads_numbers(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", [".inf", "inf", "-inf", "nan", ".nan", "NaN", "Infinity"])
def test_parse_value_reads_non_finite_numbers_as_floats(text):
    got = parse_value(text)
    assert isinstance(got, float) and not math.isfinite(got)


@pytest.mark.parametrize("text, value", [("abc", "abc"), ("mlp_lff", "mlp_lff"), ("[1, 2]", [1, 2]), ("true", True),
                                         ("null", None), ("1e", "1e"), ("e3", "e3"), ("_1", "_1")])
def test_parse_value_leaves_non_numbers_alone(text, value):
    assert parse_value(text) == value


def test_looks_like_number_rejects_words():
    assert looks_like_number("ten") is None and looks_like_number("") is None and looks_like_number("1.2.3") is None


def cfg_with(*sets: str, method: str = "lff") -> dict:
    return resolve_config(apply_overrides({"dataset": {"name": "colored_mnist"}, "method": method}, list(sets)))


@pytest.mark.parametrize("sets, method, needle", [
    (["hparams.lr=.inf"], "lff", "hparams.lr must be a positive number, got inf"),
    (["hparams.lr=nan"], "lff", "hparams.lr must be a positive number, got nan"),
    (["hparams.lr=-1"], "lff", "hparams.lr must be a positive number, got -1"),
    (["hparams.lr=0"], "vanilla", "hparams.lr must be a positive number, got 0"),
    (["hparams.lambda_dis=.nan"], "disent", "hparams.lambda_dis must be a non-negative number, got nan"),
    (["hparams.lambda_swap=-0.5"], "disent", "hparams.lambda_swap must be a non-negative number"),
    (["hparams.q=0"], "lff", "hparams.q must be a number in (0, 1], got 0"),
    (["hparams.q=1.5"], "lff", "hparams.q must be a number in (0, 1]"),
    (["hparams.ema_alpha=1.01"], "lff", "hparams.ema_alpha must be a number in [0, 1]"),
    (["hparams.steps=0"], "vanilla", "hparams.steps must be a positive integer, got 0"),
    (["hparams.steps=2.5"], "vanilla", "hparams.steps must be a positive integer, got 2.5"),
    (["hparams.batch_size=abc"], "vanilla", "hparams.batch_size must be a positive integer, got 'abc'"),
    (["hparams.weight_decay=-1e-4"], "vanilla", "hparams.weight_decay must be a non-negative number"),
    (["hparams.momentum=1"], "vanilla", "hparams.momentum must be a number in [0, 1)"),
    (["hparams.model_kwargs={hidden: [.inf]}"], "vanilla", "hparams.model_kwargs.hidden[0] must be a finite number"),
    (["train.eval_every=0"], "vanilla", "train.eval_every must be a positive integer"),
    (["train.checkpoint_every=-5"], "vanilla", "train.checkpoint_every must be a positive integer"),
    (["train.weight_average_decay=1"], "vanilla", "train.weight_average_decay must be a number in [0, 1)"),
    (["dataset.ratio=abc"], "vanilla", "dataset.ratio must be a number in (0, 1), got 'abc'"),
    (["dataset.ratio=1"], "vanilla", "dataset.ratio must be a number in (0, 1), got 1"),
    (["dataset.ratio=0"], "vanilla", "dataset.ratio must be a number in (0, 1)"),
    (["dataset.val_fraction=1"], "vanilla", "dataset.val_fraction must be a number in [0, 1)"),
    (["seed=-1"], "vanilla", "seed must be a non-negative integer"),
])
def test_bad_numbers_are_one_line_errors_naming_the_key(sets, method, needle):
    with pytest.raises(DebiaskitError) as ei:
        cfg_with(*sets, method=method)
    assert needle in str(ei.value) and "\n" not in str(ei.value)


def test_numbers_written_the_yaml_1_1_way_are_accepted_and_normalised():
    cfg = cfg_with("hparams.lr=1e-3", "hparams.steps=1e4", "hparams.q=5E-1")
    assert cfg["hparams"]["lr"] == 0.001 and cfg["hparams"]["steps"] == 10000 and type(cfg["hparams"]["steps"]) is int
    assert cfg["hparams"]["q"] == 0.5
    # a YAML config file yields the string "1e-3": the same value after validation
    assert validate_numbers({"hparams": {"lr": "1e-3"}})["hparams"]["lr"] == 0.001
    assert cfg_with("hparams.lr=0.001") == cfg_with("hparams.lr=1e-3")


def test_pattern_rules_check_new_keys_but_not_names():
    cfg = {"hparams": {"lambda_new": -1.0}}
    with pytest.raises(DebiaskitError, match="hparams.lambda_new must be a non-negative number"):
        validate_numbers(cfg)
    validate_numbers({"hparams": {"lambda_schedule": "linear", "warmup_steps": 0, "mix_fraction": 0.2}})
    with pytest.raises(DebiaskitError, match="hparams.warmup_steps must be a non-negative integer"):
        validate_numbers({"hparams": {"warmup_steps": -3}})
    with pytest.raises(DebiaskitError, match="hparams.mix_fraction must be a number in \\[0, 1\\]"):
        validate_numbers({"hparams": {"mix_fraction": 1.5}})


@pytest.mark.parametrize("fn, text, ok", [
    (positive_float, "2e-4", 2e-4), (positive_float, "nan", None), (positive_float, "-1", None),
    (positive_float, "inf", None), (positive_float, "abc", None), (unit_right_open_float, "0.999", 0.999),
    (unit_right_open_float, "2", None), (unit_right_open_float, "1", None), (positive_int, "0", None),
    (positive_int, "3", 3), (positive_int, "1.5", None),
])
def test_cli_number_types(fn, text, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            fn(text)
    else:
        assert fn(text) == ok


@pytest.mark.parametrize("text, ok", [("auto", "auto"), ("AUTO", "auto"), ("4", 4), ("0", None), ("-2", None),
                                      ("1.5", None), ("many", None)])
def test_threads_arg(text, ok):
    from debiaskit.commands.argtypes import threads_arg

    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError, match="must be a positive integer or auto"):
            threads_arg(text)
    else:
        assert threads_arg(text) == ok


@pytest.mark.parametrize("text, ok", [("600", 600.0), ("0.5", 0.5), ("1e3", 1000.0), ("0", None), ("-1", None),
                                      ("inf", None), ("nan", None), ("soon", None)])
def test_seconds_arg(text, ok):
    from debiaskit.commands.argtypes import seconds_arg

    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError, match="must be a positive number of seconds"):
            seconds_arg(text)
    else:
        assert seconds_arg(text) == ok


def test_comma_list_checks_every_element():
    from debiaskit.commands.argtypes import comma_list, non_negative_int, open_unit_float

    seeds = comma_list(non_negative_int, "non-negative integers")
    assert seeds("0,1, 2") == [0, 1, 2] and seeds("3,") == [3]
    for bad in ("0,-1", "a", ",", "", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="comma-separated non-negative integers"):
            seeds(bad)
    ratios = comma_list(open_unit_float, "numbers in (0, 1)")
    assert ratios("0.01,5e-3") == [0.01, 0.005]
    with pytest.raises(argparse.ArgumentTypeError, match=r"numbers in \(0, 1\), got '0.5,1'"):
        ratios("0.5,1")
