"""Tiny end-to-end training runs through ``debiaskit.train.trainer.run_training``, one per dataset family.

Corrupted CIFAR-10 (vanilla, LfF, DisEnt; the performance options bf16 autocast and channels-last) is built
from the JPEG-tree fixture of this directory's conftest. The file-backed families (BFFHQ, CelebA, Waterbirds,
image_folder, csv, COCO / imSitu gender) get their own tiny trees with the real layouts, built the same way as
in the other ``tests/data`` modules (whose tests train a model by hand, not through the trainer);
``celeba64_mini`` uses the real file of ``../shared/data``. Colored MNIST runs through the trainer in
``tests/train/test_trainer.py`` and ``tests/cli/test_cli.py``. COCO gender has no train split in the public
release: the test checks the error, and trains the multi-label task on a user-provided train split.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from debiaskit.data.registry import get_splits
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import resolve_config
from debiaskit.io import read_jsonl
from debiaskit.train.evaluate import predict_logits
from debiaskit.train.seed import seed_everything
from debiaskit.train.trainer import build_method, run_training


def _run(tmp_path: Path, name: str, dataset: dict, method: str = "vanilla", *, hparams: dict | None = None,
         train: dict | None = None, splits=None):
    cfg = resolve_config({
        "seed": 0, "device": "cpu", "dataset": dataset, "method": method,
        "hparams": {"batch_size": 32, "steps": 4, **(hparams or {})},
        "train": {"eval_every": 2, "checkpoint_every": 2, "progress": False, "eval_batch_size": 64, **(train or {})},
    })
    out = tmp_path / name
    res = run_training(cfg, out, splits=splits)
    return cfg, out, res.result


def _check_run(out: Path, result: dict, *, steps: int, eval_every: int, eval_splits: list[str]) -> list[dict]:
    """Run directory complete, metrics logged at every evaluation, everything finite."""
    for f in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "model_last.pt", "result.json"):
        assert (out / f).is_file(), f
    rows = read_jsonl(out / "metrics.jsonl")
    want = [(s, sp) for s in range(eval_every, steps + 1, eval_every) for sp in eval_splits]
    assert [(r["step"], r["split"]) for r in rows] == want
    assert result["steps"] == steps and result["seed"] == 0
    assert all(math.isfinite(v) for r in rows for v in r["train_logs"].values())
    return rows


# ------------------------------------------------------------------------------------------------ Corrupted CIFAR-10


def _c10c(root: Path, **kw) -> dict:
    return {"name": "corrupted_cifar10", "data_dir": str(root), "ratio": 0.1, "val_fraction": 0.1, "workers": 1,
            "progress": False, **kw}


def test_corrupted_cifar10_vanilla_lff_disent(tmp_path, isolated_cache, make_jpeg_tree, frost_textures):
    make_jpeg_tree(tmp_path / "data", per_class_train=10, per_class_test=10)
    ds = _c10c(tmp_path / "data", type=0)  # type 0 needs the frost textures: <data_dir>/lff/
    splits = get_splits("corrupted_cifar10", **{k: v for k, v in ds.items() if k != "name"})
    assert len(splits["train"]) == 90 and len(splits["val"]) == 10 and len(splits["test"]) == 100
    hp = {"model": "resnet20", "batch_size": 16, "steps": 2}
    results = {}
    for method in ("vanilla", "lff", "disent"):
        extra = {"curr_step": 1, "lr_step_size": 1} if method == "disent" else {}  # swap step included
        cfg, out, result = _run(tmp_path, method, ds, method, hparams={**hp, **extra})
        _check_run(out, result, steps=2, eval_every=2, eval_splits=["val", "test"])
        assert result["dataset"] == "corrupted_cifar10" and result["labels_consumed"] == ["target"]
        # the trainer built the same data as get_splits (second build: cache hit)
        assert result["data"]["fingerprint"] == splits.fingerprint
        assert result["data"]["info"]["cache"] == "hit"
        results[method] = (cfg, out, result)

    # the logged test unbiased accuracy is the mean over the 10x10 (class, corruption) cells of the saved model
    cfg, out, result = results["lff"]
    method = build_method(cfg, splits, torch.device("cpu"), torch.Generator().manual_seed(0))
    method.load_state_dict(torch.load(out / "model_last.pt", weights_only=False))
    test = splits["test"]
    preds = predict_logits(method, test, device=torch.device("cpu"), batch_size=64).argmax(1)
    correct = (preds == test.targets).float()
    cells = torch.zeros(10, 10)
    cells.index_put_((test.targets, test.bias), correct, accumulate=True)  # one image per cell in this fixture
    assert test.group_counts().eq(1).all()
    assert result["final"]["test"]["unbiased_accuracy"] == pytest.approx(float(cells.mean()))
    # every method's weights moved away from the seed-0 initialisation
    for m, (c, o, _) in results.items():
        seed_everything(c["seed"])  # as run_training does before building the method
        init = build_method(c, splits, torch.device("cpu"), torch.Generator().manual_seed(0)).state_dict()
        trained = torch.load(o / "model_last.pt", weights_only=False)
        assert init.keys() == trained.keys()
        moved = [k for k, v in init.items() if v.is_floating_point() and not torch.equal(v, trained[k])]
        assert len(moved) > len(init) // 2, m


def test_corrupted_cifar10_bf16_channels_last_and_resume(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path / "data", per_class_train=10, per_class_test=10)
    ds = _c10c(tmp_path / "data", type=1)
    perf = {"amp": "bf16", "channels_last": True}
    cfg, out, result = _run(tmp_path, "fast", ds, "lff", hparams={"model": "resnet20", "batch_size": 16}, train=perf)
    _check_run(out, result, steps=4, eval_every=2, eval_splits=["val", "test"])
    assert result["config"]["train"]["amp"] == "bf16" and result["config"]["train"]["channels_last"] is True
    test = result["final"]["test"]
    assert 0.0 <= test["unbiased_accuracy"] <= 1.0 and math.isfinite(test["loss"])
    # weights stay float32 under autocast
    sd = torch.load(out / "model_last.pt", weights_only=False)
    assert all(v.dtype == torch.float32 for v in sd.values() if v.is_floating_point())
    # interrupted after the step-2 checkpoint, then resumed: the same final weights as the uninterrupted run
    from debiaskit.methods.registry import get_method

    cls = get_method("lff")
    orig = cls.update

    def crashing(self, batch, step):
        if step == 3:
            raise KeyboardInterrupt
        return orig(self, batch, step)

    cls.update = crashing
    try:
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, tmp_path / "part")
    finally:
        cls.update = orig
    resumed = run_training(cfg, tmp_path / "part")
    assert resumed.resumed_from == 2
    b = torch.load(tmp_path / "part" / "model_last.pt", weights_only=False)
    assert sd.keys() == b.keys() and all(torch.equal(sd[k], b[k]) for k in sd)


# ------------------------------------------------------------------------------------------------ file-backed families


def _img(path: Path, seed: int, size: tuple[int, int] = (12, 10)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _bffhq(root: Path) -> dict:
    d = root / "bffhq"
    k = 0
    for t in (0, 1):
        for _ in range(4):
            _img(d / "0.5pct" / "align" / str(t) / f"{k}_{t}_{t}.png", k); k += 1
    _img(d / "0.5pct" / "conflict" / "0" / f"{k}_0_1.png", k); k += 1
    for t, b in [(1, 1), (0, 1)]:
        _img(d / "valid" / f"{k}_{t}_{b}.png", k); k += 1
    for t, b in [(0, 0), (1, 1), (0, 1), (1, 0)]:
        _img(d / "test" / f"{k}_{t}_{b}.jpg", k); k += 1
    return {"name": "bffhq", "data_dir": str(d)}


def _celeba(root: Path) -> dict:
    from debiaskit.data.attribute_labels import CELEBA_ATTRIBUTES

    d = root / "celeba"
    n, part = 12, [0] * 8 + [1] * 2 + [2] * 2
    attrs = np.random.default_rng(0).choice([-1, 1], size=(n, 40))
    attrs[:, CELEBA_ATTRIBUTES.index("Blond_Hair")] = [1, 1, 1, 1, -1, -1, -1, -1, 1, -1, 1, -1]
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        _img(d / "img_align_celeba" / name, i, (18, 22))
    lines = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "] + [f"{m} " + " ".join(f"{v:2d}" for v in r)
                                                          for m, r in zip(names, attrs)]
    (d / "list_attr_celeba.txt").write_text("\r\n".join(lines) + "\r\n")
    (d / "list_eval_partition.txt").write_text("".join(f"{m} {p}\n" for m, p in zip(names, part)))
    return {"name": "celeba", "data_dir": str(d), "verify_annotations": False}


def _waterbirds(root: Path) -> dict:
    d = root / "waterbird_complete95_forest2water2"
    rows = [("001.Albatross/a1.jpg", 1, 1, 0), ("001.Albatross/a2.jpg", 1, 1, 0), ("001.Albatross/a3.jpg", 1, 0, 0),
            ("002.Sparrow/s1.jpg", 0, 0, 0), ("002.Sparrow/s2.jpg", 0, 0, 0), ("002.Sparrow/s3.jpg", 0, 1, 1),
            ("001.Albatross/a4.jpg", 1, 0, 1), ("002.Sparrow/s4.jpg", 0, 0, 2), ("001.Albatross/a5.jpg", 1, 1, 2)]
    lines = ["img_id,img_filename,y,split,place,place_filename"]
    for i, (f, y, place, split) in enumerate(rows):
        _img(d / f, i, (20, 16))
        lines.append(f"{i + 1},{f},{y},{split},{place},/x/{i}.jpg")
    (d / "metadata.csv").write_text("\n".join(lines) + "\n")
    return {"name": "waterbirds", "data_dir": str(d)}


def _image_folder(root: Path) -> dict:
    d = root / "mine"
    k = 0
    for sub, n in {"cat/indoor": 6, "cat/outdoor": 2, "dog/indoor": 2, "dog/outdoor": 6}.items():
        for _ in range(n):
            _img(d / sub / f"f{k}.png", k, (9, 7)); k += 1
    return {"name": "image_folder", "data_dir": str(d), "val_fraction": 0.2, "test_fraction": 0.2}


def _csv(root: Path) -> dict:
    rows = [(f"im/{i}.png", ["cow", "camel"][i % 2], ["grass", "sand"][(i + (i % 5 == 0)) % 2],
             "train" if i < 10 else ("val" if i < 13 else "test")) for i in range(16)]
    for i, (p, *_r) in enumerate(rows):
        _img(root / p, i)
    (root / "labels.csv").write_text("path,target,bias,split\n" + "".join(",".join(r) + "\n" for r in rows))
    return {"name": "csv", "path": str(root / "labels.csv"), "image_root": str(root)}


def _imsitu(root: Path) -> dict:
    lab = root / "wang2019" / "verb_classification" / "data"
    verbs = ["cooking", "driving"]
    _dump(lab / "verb_id.map", {"id2verb": dict(enumerate(verbs)), "verb2id": {v: i for i, v in enumerate(verbs)}})
    images = root / "imsitu" / "of500_images_resized"
    rows = {"train": [(0, 1), (0, 1), (0, 0), (1, 0), (1, 0), (1, 1)], "val": [(0, 0), (1, 1)], "test": [(1, 1), (0, 1)]}
    k = 0
    for split, rr in rows.items():
        data = []
        for v, g in rr:
            name = f"{verbs[v]}_{k}.jpg"
            _img(images / name, k)
            data.append({"image_name": name, "verb": v, "gender": g})
            k += 1
        _dump(lab / f"{split}.data", data)
    return {"name": "imsitu_gender", "data_dir": str(root), "image_root": str(images.parent)}


def _coco(root: Path) -> dict:
    lab = root / "labels" / "wang2019" / "object_multilabel" / "data"
    objs = ["tie", "handbag", "oven"]
    _dump(lab / "object_id.map", {"id2object": dict(enumerate(objs)), "object2id": {o: i for i, o in enumerate(objs)}})
    recs = {"val": [([1, 0, 0], [1, 0]), ([1, 1, 0], [1, 0]), ([0, 1, 0], [0, 1]), ([0, 1, 1], [0, 1]),
                    ([1, 0, 1], [1, 0]), ([0, 0, 1], [0, 1])],
            "test": [([0, 0, 1], [0, 1]), ([1, 0, 0], [1, 0]), ([0, 1, 0], [0, 1])]}
    images = root / "coco"
    k = 0
    for split, rows in recs.items():
        data = []
        for o, g in rows:
            name = f"COCO_val2014_{k:012d}.jpg"
            _img(images / "val2014" / name, k)
            data.append({"file_name": name, "image_id": k, "objects": o, "gender": g})
            k += 1
        _dump(lab / f"{split}.data", data)
    return {"name": "coco_gender", "data_dir": str(root / "labels"), "image_root": str(images)}


FAMILIES = {"bffhq": _bffhq, "celeba": _celeba, "waterbirds": _waterbirds, "image_folder": _image_folder,
            "csv": _csv, "imsitu_gender": _imsitu}
TINY = {"model": "cnn64", "model_kwargs": {"width": 8}, "batch_size": 8, "lr": 0.01, "optimizer": "adam",
        "weight_decay": 0.0, "steps": 12, "lr_schedule": "none"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_file_backed_family_trains_end_to_end(tmp_path, monkeypatch, family):
    monkeypatch.setenv("DEBIASKIT_CACHE", str(tmp_path / "cache"))
    ds = {**FAMILIES[family](tmp_path / "data"), "resolution": 16, "progress": False}
    splits = get_splits(family, **{k: v for k, v in ds.items() if k != "name"})
    evals = [s for s in splits if s != "train"]
    cfg, out, result = _run(tmp_path, "run", ds, hparams=TINY, train={"eval_every": 6, "checkpoint_every": 6})
    rows = _check_run(out, result, steps=12, eval_every=6, eval_splits=evals)
    assert result["dataset"] == family and result["data"]["fingerprint"] == splits.fingerprint
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["unbiased_accuracy"] <= 1.0
    # the network fits its tiny training set: the mean training loss falls between the two evaluation windows
    losses = [rows[0]["train_logs"]["loss"], rows[-1]["train_logs"]["loss"]]
    assert losses[1] < losses[0]


def _coco_ds(tmp_path: Path, monkeypatch) -> dict:
    monkeypatch.setenv("DEBIASKIT_CACHE", str(tmp_path / "cache"))
    return {**_coco(tmp_path / "data"), "resolution": 16, "progress": False}


def test_coco_gender_without_train_split_is_a_clear_error(tmp_path, monkeypatch):
    ds = _coco_ds(tmp_path, monkeypatch)
    # the public release has no COCO train split: training on it directly is a one-line error, nothing written
    with pytest.raises(DebiaskitError, match="split 'train' does not exist; available: val, test"):
        _run(tmp_path, "nope", ds, hparams=TINY)
    assert not (tmp_path / "nope").exists()


def test_coco_gender_multilabel_through_trainer(tmp_path, monkeypatch):
    ds = _coco_ds(tmp_path, monkeypatch)
    from debiaskit.data.base import DatasetSplits

    # a user-provided train split (here: the val images) trains the multi-label task with BCE, evaluated by mAP
    s = get_splits("coco_gender", **{k: v for k, v in ds.items() if k != "name"})
    splits = DatasetSplits({"train": s["val"], "test": s["test"]}, s.info)
    cfg, out, result = _run(tmp_path, "run", ds, hparams=TINY, train={"eval_every": 6, "checkpoint_every": 6},
                            splits=splits)
    rows = _check_run(out, result, steps=12, eval_every=6, eval_splits=["test"])
    assert all(0.0 <= r["mAP"] <= 1.0 for r in rows)
    assert math.isnan(result["data"]["splits"]["train"]["conflict_ratio"])  # undefined for multi-label tasks
    assert rows[-1]["train_logs"]["loss"] < rows[0]["train_logs"]["loss"]


def test_celeba64_mini_trains_end_to_end(tmp_path, shared_data):
    # the real 4,000-face CelebA file of ../shared/data at 16 px (skipped when the shared data are absent)
    ds = {"name": "celeba64_mini", "data_dir": str(shared_data), "target": "Smiling", "size": 16}
    hp = {**TINY, "batch_size": 64, "steps": 20}
    cfg, out, result = _run(tmp_path, "run", ds, hparams=hp, train={"eval_every": 10, "checkpoint_every": 10})
    splits = get_splits("celeba64_mini", **{k: v for k, v in ds.items() if k != "name"})
    rows = _check_run(out, result, steps=20, eval_every=10, eval_splits=[s for s in splits if s != "train"])
    assert result["data"]["fingerprint"] == splits.fingerprint
    assert rows[-1]["train_logs"]["loss"] < rows[0]["train_logs"]["loss"]
