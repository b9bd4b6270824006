"""``train.float_cache``: the trainer's float32 copy of the training images gives bit-identical runs."""

import copy
import json

import pytest
import torch

from debiaskit.data import augment
from debiaskit.data.augment import make_batch_transform, prescale_images, use_float_cache
from debiaskit.data.base import DatasetSplits
from debiaskit.errors import DebiaskitError
from debiaskit.runkey import run_key
from debiaskit.train.trainer import run_training


def _weights(path):
    return torch.load(path, weights_only=True)


def _rows(d):
    keep = lambda r: {k: v for k, v in r.items() if k not in ("wall_time_s", "steps_per_s", "peak_memory_mb")}  # noqa: E731
    return [keep(json.loads(x)) for x in (d / "metrics.jsonl").read_text().splitlines()]


def _augmented(splits):
    """The same splits with the CIFAR-style crop/flip augmentation and a per-channel normalisation."""
    out = {}
    for name in splits:
        ds = copy.copy(splits[name])
        ds.info = dict(ds.info, train_augment={"padding": 2, "flip": True},
                       normalize={"mean": [0.2, 0.3, 0.4], "std": [0.5, 0.6, 0.7]})
        out[name] = ds
    return DatasetSplits(out, info=splits.info)


@pytest.mark.parametrize("augmented", [False, True])
def test_float_cache_is_bit_identical(tmp_path, small_cmnist, tiny_config, augmented):
    splits = _augmented(small_cmnist) if augmented else small_cmnist
    results = {}
    for mode in ("on", "off"):
        res = run_training(tiny_config(train={"float_cache": mode}), tmp_path / mode, splits=splits)
        results[mode] = res.result
    assert results["on"]["float_cache"] is True and results["off"]["float_cache"] is False
    wa, wb = _weights(tmp_path / "on" / "model_last.pt"), _weights(tmp_path / "off" / "model_last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _rows(tmp_path / "on") == _rows(tmp_path / "off")
    assert results["on"]["run_key"] == results["off"]["run_key"]


def test_prescaled_transform_matches_the_uint8_transform():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=g)
    info = {"train_augment": {"padding": 3, "flip": True}, "normalize": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    a = make_batch_transform(info, train=True)(x, torch.Generator().manual_seed(0))
    b = make_batch_transform(info, train=True, prescaled=True)(prescale_images(x), torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    plain = make_batch_transform({}, train=True, prescaled=True)
    f = prescale_images(x)
    assert torch.equal(plain(f[[0, 2]], None), x[[0, 2]].float() / 255)


def test_auto_policy(monkeypatch):
    assert augment.FLOAT_CACHE_MAX_BYTES == 1 << 30
    small = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    assert use_float_cache("auto", small) is True
    assert use_float_cache("auto", small, torch.device("cpu")) is True
    # training on a GPU from CPU-resident images: the uint8 batch crosses the bus and is converted there
    assert use_float_cache("auto", small, torch.device("cuda")) is False
    assert use_float_cache("off", small) is False
    assert use_float_cache("auto", small.float()) is False  # float user data is used as it is
    monkeypatch.setattr(augment, "FLOAT_CACHE_MAX_BYTES", small.numel() * 4 - 1)
    assert use_float_cache("auto", small) is False  # too large a copy for auto
    assert use_float_cache("on", small) is True


def test_config_values(tiny_config):
    # YAML 1.1 reads a bare on / off as booleans; both spellings mean the same
    assert tiny_config(train={"float_cache": True})["train"]["float_cache"] == "on"
    assert tiny_config(train={"float_cache": False})["train"]["float_cache"] == "off"
    assert run_key(tiny_config(train={"float_cache": "off"})) == run_key(tiny_config())
    with pytest.raises(DebiaskitError, match="train.float_cache must be auto, on or off"):
        tiny_config(train={"float_cache": "maybe"})
