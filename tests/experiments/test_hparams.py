"""The hyper-parameter registry: one resolution for train, sweep and demo; per-ratio values; random search."""

from __future__ import annotations

import warnings

import pytest

from debiaskit.cli import build_parser
from debiaskit.commands.train import config_from_args
from debiaskit.data.registry import dataset_options, list_datasets
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.hparams import DATASET_HPARAMS, explain_hparams, resolve_hparams
from debiaskit.experiments.sweep import expand_sweep
from debiaskit.methods import get_method, list_methods
from debiaskit.runkey import run_key


def _cells():
    """Every (method, dataset, ratio) the registry knows something about."""
    for m in list_methods():
        cls = get_method(m)
        for d in list_datasets():
            if d.startswith("lffdis_toy"):
                continue
            ratios = [None]
            if "ratio" in dataset_options(d):
                ratios = [0.005, 0.01, 0.02, 0.05]
            for r in ratios:
                yield m, d, r
        for (d, r) in getattr(cls, "ratio_hparams", {}):
            yield m, d, r


def test_train_and_sweep_resolve_identical_configs_for_every_known_cell(tmp_path):
    parser = build_parser()
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m, d, r in _cells():
            argv = ["train", "--dataset", d, "--method", m, "--out", str(tmp_path / "x")]
            spec = {"datasets": [d], "methods": [m], "seeds": [0]}
            if r is not None:
                argv += ["--ratio", str(r)]
                spec["ratios"] = [r]
            cfg_train = config_from_args(parser.parse_args(argv))
            (run,) = expand_sweep(spec, tmp_path)
            assert run_key(cfg_train) == run.run_key, (m, d, r)
            assert cfg_train["hparams"] == run.config["hparams"], (m, d, r)
            n += 1
    assert n > 100


def test_per_ratio_official_values_reach_both_entry_points(tmp_path):
    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["train", "--dataset", "corrupted_cifar10", "--ratio", "0.005",
                                              "--method", "disent", "--out", str(tmp_path / "x")]))
    assert (cfg["hparams"]["lr"], cfg["hparams"]["lambda_dis"], cfg["hparams"]["lambda_swap_b"]) == (5e-4, 1.0, 1.0)
    assert cfg["hparams"]["model"] == "resnet18" and cfg["hparams"]["steps"] == 50000
    # vanilla means the same thing everywhere: DisEnt's baseline on Colored MNIST
    v = resolve_hparams("vanilla", "colored_mnist")
    assert (v["model"], v["lr"], v["steps"]) == ("mlp_disent", 0.01, 50000)
    # subclasses of vanilla inherit its per-dataset values and add their own keys
    g = resolve_hparams("groupdro", "colored_mnist")
    assert (g["model"], g["steps"], g["dro_eta"]) == ("mlp_disent", 50000, 0.01)


def test_layers_are_explained():
    ex = explain_hparams("disent", "corrupted_cifar10", ratio=0.005, user={"steps": 7})
    assert ex["lr"].source == "method:ratio" and ex["lambda_swap"].source == "method:dataset"
    assert ex["q"].source == "method" and ex["optimizer"].source == "common" and ex["steps"].source == "user"
    assert explain_hparams("lff", "celeba")["model"].source == "dataset"


def test_unknown_dataset_gets_a_shape_model_and_a_warning():
    with pytest.warns(UserWarning, match="no registered defaults"):
        hp = resolve_hparams("vanilla", "image_folder")
    assert hp["model"] == "auto"
    from debiaskit.models import auto_model_name, create_model

    assert auto_model_name((3, 64, 64)) == "cnn64" and auto_model_name((1, 28, 28)) == "mlp"
    assert auto_model_name((3, 32, 32)) == "resnet20" and auto_model_name((3, 224, 224)) == "resnet18"
    m = create_model("auto", num_classes=2, in_shape=(3, 64, 64))
    assert m.registry_name == "cnn64"
    assert set(DATASET_HPARAMS) >= {"coco_gender", "imsitu_gender"}  # no silent MLP on the Wang et al. datasets


def test_unknown_keys_are_errors():
    with pytest.raises(DebiaskitError, match="unknown hparam key"):
        resolve_hparams("lff", "colored_mnist", user={"lambda_dis": 1})


def test_random_search_draws_are_seeded_and_in_range():
    a = resolve_hparams("disent", "colored_mnist", ratio=0.01, hparams_seed=3)
    b = resolve_hparams("disent", "colored_mnist", ratio=0.01, hparams_seed=3)
    c = resolve_hparams("disent", "colored_mnist", ratio=0.01, hparams_seed=4)
    d0 = resolve_hparams("disent", "colored_mnist", ratio=0.01)
    assert a == b and a != c
    assert resolve_hparams("disent", "colored_mnist", ratio=0.01, hparams_seed=0) == d0
    for h in range(1, 30):
        hp = resolve_hparams("disent", "colored_mnist", ratio=0.01, hparams_seed=h)
        assert 1e-4 <= hp["lr"] <= 1e-2 and hp["lambda_dis"] in (1.0, 2.0, 5.0, 10.0)
        assert 1e-6 <= hp["weight_decay"] <= 1e-2
        # keys without a search range keep their official values
        assert hp["curr_step"] == d0["curr_step"] and hp["model"] == d0["model"]
    # user values beat draws
    assert resolve_hparams("disent", "colored_mnist", hparams_seed=5, user={"lr": 0.5})["lr"] == 0.5
    with pytest.raises(DebiaskitError, match="hparams_seed"):
        resolve_hparams("disent", "colored_mnist", hparams_seed=-1)


def test_n_hparams_in_a_sweep_gives_distinct_settings(tmp_path):
    spec = {"datasets": ["colored_mnist"], "ratios": [0.01], "methods": ["lff"], "seeds": [0, 1], "n_hparams": 3}
    runs = expand_sweep(spec, tmp_path)
    assert len(runs) == 6
    assert sorted({r.config["hparams_seed"] for r in runs}) == [0, 1, 2]
    assert len({r.run_key for r in runs}) == 6
    assert len({r.run_dir for r in runs}) == 6 and all("-h" in r.run_dir.name for r in runs if r.config["hparams_seed"])
    with pytest.raises(DebiaskitError, match="n_hparams"):
        expand_sweep({**spec, "n_hparams": 0}, tmp_path)
