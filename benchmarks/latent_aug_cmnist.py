"""Benchmark: latent-space de-biasing (Ramaswamy et al., CVPR 2021) with an adequate generator — two-colour MNIST.

The CelebA benchmark (``benchmarks/latent_aug.py``) is limited by its generator. Here the generator is easy to
train on one CPU thread, so the *mechanism* of the paper can be checked:

* data: MNIST digits drawn in one of two foreground colours (red / green). Target ``digit_lt5`` = 1 for digits
  0-4; protected ``green`` = 1 for a green digit. Train and val: colour = target with probability ρ
  (``--rho``, default 0.9, 0.95, 0.99); test: colour drawn independently of the digit (uniform);
* generator: the DCGAN of ``debiaskit.generative.gan`` trained on the (biased) training images, with the
  discriminator's minibatch standard-deviation feature (without it the generator kept only one colour) and no
  horizontal flips (digits are not mirror-symmetric);
* baselines (``vanilla``, ``cnn64``) for the target (per seed) and for the colour (seed 0); the seed-0 pair
  hallucinates labels of G(z) at τ_F1 (real val), LinearSVC hyperplanes in z, held-out accuracy, z′ =
  ``paired_latents`` on a disjoint block, G(z′) (``debiaskit.generative.augment``);
* independent check of the edit: a digit classifier on grey-scale real images (colour removed) and a colour
  classifier on real images, neither of them used by the pipeline, label G(z) and G(z′): *keep rate* = the digit
  class (< 5 or not) of G(z′) equals that of G(z); *flip rate* = the colour of G(z′) differs from that of G(z);
* training: ``baseline`` (real), ``gz_only`` (real ∪ G(z)), ``latent_aug`` (real ∪ G(z) ∪ G(z′)); same number of
  steps for every method (step-matched), seeds ``--seeds``;
* evaluation on the independent test split: AP, DEO, BA, KL (official and aligned), τ_cal from val, bootstrap
  median ± 2σ (``debiaskit.generative.evaluation.paper_metrics``, which uses ``debiaskit.metrics``).

Outputs: ``benchmarks/results/latent_aug_cmnist.{json,md}``, sample grids in ``benchmarks/results/img/``, one
run record per training run in ``benchmarks/results/records/latent_aug_cmnist/``; run directories (weights,
GAN checkpoints, augmentation arrays) stay in ``--runs`` (git-ignored). ``--quick`` writes all of it under
``--runs`` instead. Every stage is resumable: finished
pieces are skipped on re-run.

    python benchmarks/latent_aug_cmnist.py --quick                 # plumbing check (~1 min; its 60-step GAN
                                                                   # usually draws one colour, so the pipeline
                                                                   # refuses the augmentation and says so)
    python benchmarks/latent_aug_cmnist.py --rho 0.95              # one correlation
    python benchmarks/latent_aug_cmnist.py                         # ρ = 0.9, 0.95, 0.99
    python benchmarks/latent_aug_cmnist.py --rho 0.9,0.95,0.99     # again: skips every finished piece and
                                                                   # rebuilds json/md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATASET = "cmnist_2colour"
TARGET, PROTECTED = "digit_lt5", "green"
#: foreground colours (RGB in [0, 1]) of protected value 0 (red) and 1 (green)
COLOURS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
METHODS = {"baseline": None, "gz_only": ["real", "gz"], "latent_aug": ["real", "gz", "gz_prime"]}
METRICS = ("AP", "DEO", "BA", "KL", "KL_aligned")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- data
_MNIST: dict[str, Any] = {}


def _mnist(data_dir: str | None) -> Any:
    from debiaskit.data.mnist_source import load_mnist

    key = str(data_dir)
    if key not in _MNIST:
        _MNIST[key] = load_mnist(data_dir, source="data_dir" if data_dir else "auto")
    return _MNIST[key]


def colourise(grey: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Grey digits (N, 28, 28) uint8 drawn in ``COLOURS[colour]`` → (N, 3, 28, 28) uint8."""
    rgb = COLOURS[colour]  # (N, 3)
    return (rgb[:, :, None, None] * grey[:, None, :, :].astype(np.float32)).round().astype(np.uint8)


def build_cmnist_2colour(*, rho: float = 0.95, n_train: int = 10000, n_val: int = 2000, n_test: int = 4000,
                         split_seed: int = 0, task: str = "target", data_dir: str | None = None):
    """Two-colour Colored MNIST splits; ``task="protected"`` swaps the roles (the colour classifier's data)."""
    from debiaskit.data.base import BiasedDataset, DatasetSplits
    from debiaskit.errors import DebiaskitError

    if not 0.5 <= float(rho) <= 1.0:
        raise DebiaskitError(f"rho must be in [0.5, 1], got {rho}")
    if task not in ("target", "protected"):
        raise DebiaskitError(f"task must be 'target' or 'protected', got {task!r}")
    m = _mnist(data_dir)
    rng = np.random.default_rng(split_seed)
    if n_train + n_val > len(m.train_images) or n_test > len(m.test_images):
        raise DebiaskitError("n_train + n_val must fit MNIST train (60,000) and n_test MNIST test (10,000)")
    perm = rng.permutation(len(m.train_images))
    parts = {"train": (m.train_images, m.train_labels, perm[:n_train], float(rho)),
             "val": (m.train_images, m.train_labels, perm[n_train:n_train + n_val], float(rho)),
             "test": (m.test_images, m.test_labels, rng.permutation(len(m.test_images))[:n_test], None)}
    out = {}
    for split, (imgs, labels, idx, r) in parts.items():
        y = (labels[idx] < 5).astype(np.int64)
        if r is None:  # independent, uniform colour
            g = rng.integers(0, 2, len(idx))
        else:  # colour = target with probability rho
            g = np.where(rng.random(len(idx)) < r, y, 1 - y)
        x = colourise(imgs[idx], g)
        t, b = (y, g) if task == "target" else (g, y)
        names = (TARGET, PROTECTED) if task == "target" else (PROTECTED, TARGET)
        out[split] = BiasedDataset(
            images=torch.from_numpy(x), targets=torch.from_numpy(t), bias=torch.from_numpy(b), num_classes=2,
            num_bias=2, split=split, name=DATASET, aligned_cells=torch.eye(2, dtype=torch.bool),
            class_names=[f"not {names[0]}", names[0]], bias_names=[f"not {names[1]}", names[1]],
            meta={"digit": torch.from_numpy(labels[idx].astype(np.int64))},
            info={"target": names[0], "protected": names[1], "rho": float(rho), "colours": COLOURS.tolist(),
                  "mnist_source": m.source},
        )
    return DatasetSplits(out, info={"name": DATASET, "rho": float(rho)})


def register() -> None:
    from debiaskit.data.registry import DATASETS, register_dataset

    if DATASET not in DATASETS.list("*"):
        register_dataset(DATASET)(build_cmnist_2colour)


_SPLITS: dict[tuple, Any] = {}


def splits_for(args: argparse.Namespace, rho: float, task: str = "target") -> Any:
    key = (rho, task)
    if key not in _SPLITS:
        _SPLITS[key] = build_cmnist_2colour(**dataset_opts(args, rho, task))
    return _SPLITS[key]


def dataset_opts(args: argparse.Namespace, rho: float, task: str = "target") -> dict[str, Any]:
    return {"rho": rho, "n_train": args.n_train, "n_val": args.n_val, "n_test": args.n_test, "split_seed": 0,
            "task": task, "data_dir": str(args.data_dir)}


# ---------------------------------------------------------------------------------------------- paths
def rho_dir(args: argparse.Namespace, rho: float) -> Path:
    return args.runs / f"rho{rho:g}"


def run_dir(args: argparse.Namespace, rho: float, method: str, seed: int) -> Path:
    return rho_dir(args, rho) / "train" / method / f"s{seed}"


def img_name(args: argparse.Namespace, rho: float, what: str) -> Path:
    return args.out / "img" / f"latent_aug_cmnist_rho{rho:g}_{what}.png"


# ---------------------------------------------------------------------------------------------- training
def train_cfg(args: argparse.Namespace, rho: float, *, method: str, seed: int, task: str = "target",
              extra_hp: dict[str, Any] | None = None) -> dict[str, Any]:
    from debiaskit.experiments.config import resolve_config

    hp = {"model": "cnn64", "model_kwargs": {"width": args.width}, "batch_size": args.batch_size,
          "steps": args.steps, "lr": args.lr, **(extra_hp or {})}
    return resolve_config({
        "seed": seed, "device": "cpu", "method": method,
        "dataset": {"name": DATASET, **dataset_opts(args, rho, task)},
        "hparams": hp,
        "train": {"progress": False, "eval_every": args.steps, "checkpoint_every": args.steps,
                  "selection": ["last"], "report": "last", "threads": args.threads},
    })


def train_one(args: argparse.Namespace, rho: float, out: Path, *, method: str, seed: int, task: str = "target",
              extra_hp: dict[str, Any] | None = None) -> float:
    """Train (or skip a finished) run; export its record; returns the wall time of this call."""
    from debiaskit.experiments.records import export_record
    from debiaskit.train.trainer import run_training

    t0 = time.perf_counter()
    if not (out / "result.json").exists():
        log(f"train {out.relative_to(args.runs)}")
        run_training(train_cfg(args, rho, method=method, seed=seed, task=task, extra_hp=extra_hp), out,
                     splits=splits_for(args, rho, task))
    export_record(out, args.out / "records" / "latent_aug_cmnist")
    return time.perf_counter() - t0


def trained_method(out: Path, splits: Any) -> Any:
    """The method of a finished run (config + ``model_last.pt``), eval mode."""
    import yaml

    from debiaskit.train.trainer import build_method

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    m = build_method(cfg, splits, torch.device("cpu"), torch.Generator().manual_seed(0))
    m.load_state_dict(torch.load(out / "model_last.pt", map_location="cpu"))
    return m.eval()


def attribute_classifier(out: Path, splits: Any, attribute: str) -> Any:
    """AttributeClassifier of a finished baseline with τ_F1 fitted on its real val split."""
    from debiaskit.data.augment import make_batch_transform
    from debiaskit.generative.labelling import AttributeClassifier

    m = trained_method(out, splits)
    val = splits["val"]
    clf = AttributeClassifier(attribute=attribute, predict=m.predict, transform=make_batch_transform(val.info, train=False),
                              input_shape=tuple(val.image_shape))
    clf.fit_threshold(val.images, val.targets)
    return clf


def scores(m: Any, images: torch.Tensor) -> np.ndarray:
    from debiaskit.data.augment import make_batch_transform

    tf = make_batch_transform({}, train=False)
    with torch.no_grad():
        out = [torch.softmax(m.predict(tf(images[s:s + 2048])), 1)[:, 1] for s in range(0, len(images), 2048)]
    return torch.cat(out).numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------- stages
def stage_gan(args: argparse.Namespace, rho: float) -> dict[str, Any]:
    from debiaskit.generative.gan import GANConfig, load_gan_generator, save_image_grid, train_gan

    out = rho_dir(args, rho) / "gan"
    cfg = GANConfig(latent_dim=args.latent_dim, size=28, width_g=args.gan_width, width_d=args.gan_width,
                    batch_size=args.gan_batch, steps=args.gan_steps, flip=False, minibatch_std=True, seed=0,
                    sample_every=max(args.gan_steps // 6, 1), ckpt_every=100, max_minutes=args.gan_max_minutes,
                    data={"dataset": DATASET, "rho": rho, "split": "train"})
    summary_f = out / "summary.json"
    done = summary_f.exists() and json.loads(summary_f.read_text()).get("steps_done", 0) >= args.gan_steps
    if not done:
        log(f"GAN rho={rho:g}: {args.gan_steps} steps")
        train_gan(splits_for(args, rho)["train"].images, out, config=cfg, log=log)
    summary = json.loads(summary_f.read_text())
    g = load_gan_generator(out / "checkpoint.pt")
    with torch.no_grad():
        z = torch.randn(64, args.latent_dim, generator=torch.Generator().manual_seed(123))
        save_image_grid(img_name(args, rho, "gan_samples"), g(z))
    return summary


def stage_baselines(args: argparse.Namespace, rho: float) -> dict[str, float]:
    walls = {}
    for seed in args.seeds:
        walls[f"baseline/s{seed}"] = train_one(args, rho, run_dir(args, rho, "baseline", seed), method="vanilla", seed=seed)
    walls["protected/s0"] = train_one(args, rho, rho_dir(args, rho) / "protected" / "s0", method="vanilla", seed=0,
                                      task="protected")
    return walls


def stage_augment(args: argparse.Namespace, rho: float) -> dict[str, Any] | str:
    """The augmentation's manifest, or the one-line reason the pipeline refused it (e.g. a constant label)."""
    from debiaskit.errors import DebiaskitError
    from debiaskit.generative.augment import AugmentConfig, build_augmentation, save_augmentation
    from debiaskit.generative.protocol import load_generator

    out = rho_dir(args, rho) / "aug"
    err = rho_dir(args, rho) / "aug.error.txt"
    if err.exists() and not (out / "manifest.json").exists():
        return err.read_text().strip()
    if not (out / "manifest.json").exists():
        log(f"augment rho={rho:g}")
        t0 = time.perf_counter()
        gen = load_generator(rho_dir(args, rho) / "gan" / "checkpoint.pt", out_size=28)
        clf_t = attribute_classifier(run_dir(args, rho, "baseline", 0), splits_for(args, rho), TARGET)
        clf_g = attribute_classifier(rho_dir(args, rho) / "protected" / "s0", splits_for(args, rho, "protected"), PROTECTED)
        try:
            aug = build_augmentation(gen, clf_t, clf_g, config=AugmentConfig(
                n=args.n_aug, n_fit=args.n_fit, n_heldout=args.n_heldout, seed=0))
        except DebiaskitError as e:  # recorded in the report; the baselines are still evaluated
            log(f"augmentation refused: {e}")
            err.write_text(f"{e}\n")
            return str(e)
        aug.manifest["timings_s"]["total_s"] = round(time.perf_counter() - t0, 2)
        save_augmentation(aug, out)
    shutil.copyfile(out / "pairs.png", img_name(args, rho, "pairs"))
    return json.loads((out / "manifest.json").read_text())


_INDEP: dict[str, Any] = {}


def independent_classifiers(args: argparse.Namespace) -> dict[str, Any]:
    """Digit-< 5 classifier on grey-scale real MNIST and colour classifier on real colour images.

    Both are trained on MNIST training images *outside* the benchmark's train/val subsets, with colours drawn
    independently of the digit, so neither can lean on the planted correlation, and neither is used by the
    pipeline. Digit: logistic regression on the grey image (max over channels), so the colour cannot matter.
    Colour: logistic regression on the per-image mean of each channel over foreground pixels.
    """
    if _INDEP:
        return _INDEP
    from sklearn.linear_model import LogisticRegression

    m = _mnist(str(args.data_dir))
    rng = np.random.default_rng(0)
    perm = np.random.default_rng(0).permutation(len(m.train_images))  # the benchmark's split permutation
    pool = perm[args.n_train + args.n_val:]
    idx = rng.choice(pool, size=min(args.n_indep, len(pool)), replace=False)
    grey_x = m.train_images[idx]
    y = (m.train_labels[idx] < 5).astype(np.int64)
    col = rng.integers(0, 2, len(idx))
    x = colourise(grey_x, col)
    t0 = time.perf_counter()
    digit = LogisticRegression(max_iter=500, C=0.1).fit(grey_features(x), y)
    colour = LogisticRegression(max_iter=500).fit(colour_features(x), col)
    te = rng.permutation(len(m.test_images))[:4000]
    te_col = rng.integers(0, 2, len(te))
    xt = colourise(m.test_images[te], te_col)
    _INDEP.update({
        "digit": digit, "colour": colour, "n_fit": int(len(idx)), "fit_s": round(time.perf_counter() - t0, 2),
        "digit_accuracy_real_test": float(digit.score(grey_features(xt), (m.test_labels[te] < 5).astype(np.int64))),
        "colour_accuracy_real_test": float(colour.score(colour_features(xt), te_col)),
    })
    return _INDEP


def grey_features(x: np.ndarray) -> np.ndarray:
    return x.max(1).reshape(len(x), -1).astype(np.float32) / 255.0


def colour_features(x: np.ndarray) -> np.ndarray:
    xf = x.astype(np.float32) / 255.0
    fg = (xf.max(1, keepdims=True) > 0.3).astype(np.float32)
    return (xf * fg).sum((2, 3)) / np.maximum(fg.sum((2, 3)), 1.0)


def edit_check(args: argparse.Namespace, rho: float) -> dict[str, Any]:
    """Keep / flip rates of the pairs (G(z), G(z′)) by the independent classifiers, and label agreement."""
    ind = independent_classifiers(args)
    from debiaskit.generative import paired_latents

    with np.load(rho_dir(args, rho) / "aug" / "augment.npz", allow_pickle=False) as f:
        images, source, pair, targets, bias, zs = (f[k] for k in ("images", "source", "pair", "targets", "bias", "z"))
    a = np.argsort(pair[source == 1], kind="stable")
    b = np.argsort(pair[source == 2], kind="stable")
    gz, gzp = images[source == 1][a], images[source == 2][b]
    # the stored z′ are the paper's paired latents of the stored z under the manifest's hyperplanes
    hyp = json.loads((rho_dir(args, rho) / "aug" / "manifest.json").read_text())["hyperplanes"]
    wt, wg = np.asarray(hyp["target"]["w"]), np.asarray(hyp["protected"]["w"])
    z, zp = zs[source == 1][a].astype(np.float64), zs[source == 2][b].astype(np.float64)
    zp_ref = paired_latents(z, wt, hyp["target"]["b"], wg, hyp["protected"]["b"])
    h = {"t_z": z @ wt + hyp["target"]["b"], "t_zp": zp @ wt + hyp["target"]["b"],
         "g_z": z @ wg + hyp["protected"]["b"], "g_zp": zp @ wg + hyp["protected"]["b"]}
    t_hal, g_hal = targets[source == 1][a], bias[source == 1][a]
    d_z, d_zp = ind["digit"].predict(grey_features(gz)), ind["digit"].predict(grey_features(gzp))
    c_z, c_zp = ind["colour"].predict(colour_features(gz)), ind["colour"].predict(colour_features(gzp))
    pd_z = ind["digit"].predict_proba(grey_features(gz)).max(1)
    cells = {f"t{t}_g{g}": int(((d_z == t) & (c_z == g)).sum()) for t in (0, 1) for g in (0, 1)}
    cells_p = {f"t{t}_g{g}": int(((d_zp == t) & (c_zp == g)).sum()) for t in (0, 1) for g in (0, 1)}
    return {
        "n_pairs": int(len(gz)),
        "z_prime_vs_paired_latents_max_abs_diff": float(np.abs(zp_ref - zp).max()),
        "latent_target_score_kept_max_abs_diff": float(np.abs(h["t_zp"] - h["t_z"]).max()),
        "latent_protected_score_negated_max_abs_diff": float(np.abs(h["g_zp"] + h["g_z"]).max()),
        "mean_edit_distance": float(np.linalg.norm(zp - z, axis=1).mean()),
        "target_keep_rate": float((d_z == d_zp).mean()),
        "protected_flip_rate": float((c_z != c_zp).mean()),
        "both_rate": float(((d_z == d_zp) & (c_z != c_zp)).mean()),
        "hallucinated_target_agrees": float((t_hal == d_z).mean()),
        "hallucinated_protected_agrees": float((g_hal == c_z).mean()),
        "digit_mean_max_prob_gz": float(pd_z.mean()),
        "independent_cells_gz": cells,
        "independent_cells_gz_prime": cells_p,
        "independent_corr_gz": float((d_z == c_z).mean()),
    }


def stage_train(args: argparse.Namespace, rho: float) -> dict[str, float]:
    walls = {}
    aug = rho_dir(args, rho) / "aug"
    for seed in args.seeds:
        for name in ("gz_only", "latent_aug"):
            walls[f"{name}/s{seed}"] = train_one(args, rho, run_dir(args, rho, name, seed), method="latent_aug", seed=seed,
                                                 extra_hp={"augment": str(aug), "augment_sources": METHODS[name]})
    return walls


def evaluate(args: argparse.Namespace, rho: float, method: str, seed: int) -> dict[str, Any] | None:
    from debiaskit.generative.evaluation import paper_metrics
    from debiaskit.io import write_json

    out = run_dir(args, rho, method, seed)
    cache = out / f"paper_metrics_b{args.n_boot}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    if not (out / "result.json").exists():
        return None
    sp = splits_for(args, rho)
    m = trained_method(out, sp)
    val, test = sp["val"], sp["test"]
    r = paper_metrics(val.targets, scores(m, val.images), test.targets, scores(m, test.images), test.bias,
                      n_boot=args.n_boot, seed=0)
    res = json.loads((out / "result.json").read_text())
    r["test_accuracy"] = res["final"]["test"]["accuracy"]
    r["test_worst_group_accuracy"] = res["final"]["test"]["worst_group_accuracy"]
    r["wall_time_s"] = res["wall_time_s"]
    r["train_size"] = res["data"]["splits"]["train"]["size"]
    write_json(cache, r)
    return r


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    agg: dict[str, Any] = {}
    for k in METRICS:
        est = np.array([r[k]["estimate"] for r in runs])
        half = np.array([(r[k]["high"] - r[k]["low"]) / 2 for r in runs])
        agg[k] = {"estimate": float(est.mean()), "half_width": float(half.mean()),
                  "seed_std": float(est.std(ddof=1)) if len(est) > 1 else None, "per_seed": est.tolist()}
    for k in ("test_accuracy", "test_worst_group_accuracy", "wall_time_s"):
        agg[k] = float(np.mean([r[k] for r in runs]))
    agg["train_size"] = runs[0]["train_size"]
    agg["n_seeds"] = len(runs)
    return agg


def _merge_max(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Per-key maximum (nested): a re-run that skips finished work keeps the cost of the run that did it."""
    out = dict(old)
    for k, v in new.items():
        if isinstance(v, dict):
            out[k] = _merge_max(old.get(k, {}) if isinstance(old.get(k), dict) else {}, v)
        elif k.startswith("load_"):
            out.setdefault(k, v)
        else:
            out[k] = max(v, old.get(k, v)) if isinstance(old.get(k), (int, float)) else v
    return out


def run_rho(args: argparse.Namespace, rho: float) -> dict[str, Any]:
    t: dict[str, Any] = {"load_at_start": round(os.getloadavg()[0], 2)}
    t0 = time.perf_counter()
    gan = stage_gan(args, rho)
    t["gan_stage_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    t["baseline_runs_s"] = stage_baselines(args, rho)
    t["baselines_stage_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    manifest = stage_augment(args, rho)
    t["augment_stage_s"] = time.perf_counter() - t0
    refused = isinstance(manifest, str)
    t0 = time.perf_counter()
    check = None if refused else edit_check(args, rho)
    t["edit_check_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    t["train_runs_s"] = {} if refused else stage_train(args, rho)
    t["train_stage_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_run, per_method = {}, {}
    for method in METHODS:
        rows = []
        for seed in args.seeds:
            r = evaluate(args, rho, method, seed)
            if r is not None:
                per_run[f"{method}/s{seed}"] = r
                rows.append(r)
        if rows:
            per_method[method] = aggregate(rows)
    t["evaluate_stage_s"] = time.perf_counter() - t0
    t["load_at_end"] = round(os.getloadavg()[0], 2)
    tf = rho_dir(args, rho) / "timings.json"
    t = _merge_max(json.loads(tf.read_text()) if tf.exists() else {}, t)
    t["total_s"] = sum(v for k, v in t.items() if k.endswith("_stage_s") or k == "edit_check_s")
    from debiaskit.io import write_json

    write_json(tf, t)
    common = {
        "rho": rho,
        "gan": {"steps": gan["steps_done"], "elapsed_s": gan["elapsed_s"], "stopped_by": gan["stopped_by"],
                "config": gan["config"]},
        "per_run": per_run, "per_method": per_method, "timings_s": t,
        "images": {"gan_samples": _rel(img_name(args, rho, "gan_samples"))},
    }
    if refused:
        return {**common, "augment_error": manifest}
    hp = manifest["hyperplanes"]
    return {
        **common,
        "hyperplanes": {r: {k: hp[r][k] for k in ("attribute", "fit_accuracy", "heldout_accuracy", "positive_rate_heldout",
                                                  "n_fit", "n_heldout")} for r in ("target", "protected")},
        "pipeline_diagnostics": manifest["diagnostics"],
        "thresholds": manifest["thresholds"],
        "augment_timings_s": manifest["timings_s"],
        "edit_check": check,
        "images": {"gan_samples": _rel(img_name(args, rho, "gan_samples")), "pairs": _rel(img_name(args, rho, "pairs"))},
    }


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


# ---------------------------------------------------------------------------------------------- report
def _f(m: dict[str, Any], k: str, d: int = 1) -> str:
    v = m[k]
    s = f"{v['estimate']:.{d}f} ± {v['half_width']:.{d}f}"
    if v.get("seed_std") is not None:
        s += f" (sd {v['seed_std']:.{d}f})"
    return s


def render_md(args: argparse.Namespace, res: dict[str, Any]) -> str:
    L = ["# Latent-space de-biasing (Ramaswamy et al., CVPR 2021) on two-colour Colored MNIST", "",
         f"debiaskit {res['debiaskit_version']}, torch {res['torch_version']}; generated by "
         f"`benchmarks/latent_aug_cmnist.py` (command: `{res['command']}`).", "",
         "**Setting.** MNIST digits drawn red or green. Target `digit_lt5` (digit 0-4), protected `green`. Train/val: "
         f"colour = target with probability ρ ({args.n_train:,} / {args.n_val:,} images); test: colour independent of "
         f"the digit ({args.n_test:,} images, from the MNIST test set). Classifiers `cnn64` width {args.width}, "
         f"{args.steps} steps × batch {args.batch_size}, Adam {args.lr:g}, last step, every method step-matched. "
         f"GAN: `debiaskit.generative.gan` DCGAN, latent {args.latent_dim}, width {args.gan_width}, batch {args.gan_batch}, "
         f"minibatch-std discriminator, no flips, trained on the biased training images. z blocks fit / held-out / augment = {args.n_fit:,} / {args.n_heldout:,} / "
         f"{args.n_aug:,} (real : synthetic = 1 : 2 as in the paper). Seeds {args.seeds}; bootstrap {args.n_boot} "
         "resamples of the test set (median ± 2σ). One thread (`torch.set_num_threads(1)`).", ""]
    for r in res["per_rho"]:
        rho = r["rho"]
        L += [f"## ρ = {rho:g}", "", f"GAN: {r['gan']['steps']} steps, {r['gan']['elapsed_s'] / 60:.1f} min. Samples (fixed z): "
              f"`{r['images']['gan_samples']}`.", ""]
        if "augment_error" in r:
            L += [f"**Augmentation refused by the pipeline:** {r['augment_error']}", "",
                  "| method | AP ↑ | DEO ↓ | BA ↓ | KL ↓ (official) | KL (aligned) | test acc | worst-group acc | n |",
                  "|---|---|---|---|---|---|---|---|---|"]
        else:
            e, hp, d = r["edit_check"], r["hyperplanes"], r["pipeline_diagnostics"]
            L += [f"Pairs G(z) / G(z′) (rows alternate): `{r['images']['pairs']}`.", "", "| check | value |", "|---|---|"]

            def maj(h: dict[str, Any]) -> float:
                return max(h["positive_rate_heldout"], 1 - h["positive_rate_heldout"])

            L += [f"| target hyperplane held-out accuracy (majority rate) | {hp['target']['heldout_accuracy']:.3f} ({maj(hp['target']):.3f}) |",
                  f"| colour hyperplane held-out accuracy (majority rate) | {hp['protected']['heldout_accuracy']:.3f} ({maj(hp['protected']):.3f}) |",
                  f"| cos(w_t, w_g) | {d['cos_wt_wg']:+.3f} |",
                  f"| stored z′ vs `paired_latents(z)`: max abs difference (error of h_t(z′) = h_t(z) / h_g(z′) = −h_g(z)) | "
                  f"{e['z_prime_vs_paired_latents_max_abs_diff']:.1e} ({e['latent_target_score_kept_max_abs_diff']:.1e} / "
                  f"{e['latent_protected_score_negated_max_abs_diff']:.1e}); mean ‖z′ − z‖ {e['mean_edit_distance']:.2f} |",
                  f"| independent digit classifier: digit class kept on G(z′) | {e['target_keep_rate']:.3f} |",
                  f"| independent colour classifier: colour flipped on G(z′) | {e['protected_flip_rate']:.3f} |",
                  f"| both (kept and flipped) | {e['both_rate']:.3f} |",
                  f"| pipeline's own classifiers: target kept / colour flipped | {d['target_kept_rate']:.3f} / {d['protected_flip_rate']:.3f} |",
                  f"| hallucinated labels agree with the independent classifiers (target / colour) | "
                  f"{e['hallucinated_target_agrees']:.3f} / {e['hallucinated_protected_agrees']:.3f} |",
                  f"| independent digit classifier's mean confidence on G(z) | {e['digit_mean_max_prob_gz']:.3f} |",
                  f"| G(z): digit class = colour (independent labels; ρ in the training data) | {e['independent_corr_gz']:.3f} |",
                  f"| G(z) cells t0g0/t0g1/t1g0/t1g1 (independent labels) | "
                  + "/".join(str(e["independent_cells_gz"][k]) for k in ("t0_g0", "t0_g1", "t1_g0", "t1_g1")) + " |",
                  f"| G(z′) cells t0g0/t0g1/t1g0/t1g1 (independent labels) | "
                  + "/".join(str(e["independent_cells_gz_prime"][k]) for k in ("t0_g0", "t0_g1", "t1_g0", "t1_g1")) + " |",
                  "",
                  "| method | AP ↑ | DEO ↓ | BA ↓ | KL ↓ (official) | KL (aligned) | test acc | worst-group acc | n |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for method, m in r["per_method"].items():
            L.append(f"| {method} | {_f(m, 'AP')} | {_f(m, 'DEO')} | {_f(m, 'BA')} | {_f(m, 'KL', 2)} | "
                     f"{_f(m, 'KL_aligned', 2)} | {100 * m['test_accuracy']:.1f} | {100 * m['test_worst_group_accuracy']:.1f} | "
                     f"{m['n_seeds']} |")
        t = r["timings_s"]
        L += ["", f"Wall time (shared, loaded machine): GAN stage {t['gan_stage_s'] / 60:.1f} min (GAN itself "
              f"{r['gan']['elapsed_s'] / 60:.1f} min over all its calls), baselines {t['baselines_stage_s'] / 60:.1f} min, "
              f"augmentation {t['augment_stage_s'] / 60:.1f} min, training {t['train_stage_s'] / 60:.1f} min, "
              f"evaluation {t['evaluate_stage_s'] / 60:.1f} min; total {t['total_s'] / 60:.1f} min, one thread, "
              f"load average {t['load_at_start']} → {t['load_at_end']} on 2 cores (the run that did the work; "
              "re-runs skip finished pieces).", ""]
    L += ["Values: mean over seeds ± mean bootstrap half-width (2σ); sd = standard deviation over seeds. AP, DEO, BA ×100.",
          f"Independent classifiers: digit accuracy {res['independent']['digit_accuracy_real_test']:.3f} and colour "
          f"accuracy {res['independent']['colour_accuracy_real_test']:.3f} on real test images "
          f"(fitted on {res['independent']['n_fit']:,} real images outside the benchmark's splits).", "",
          "Machine: 2 cores shared with a 2-job training grid and other engineers' tests, so every wall time above was "
          "taken under load (several times slower than on an idle core).", ""]
    if res.get("findings"):
        L += ["## Findings (written by hand from the numbers above: `latent_aug_cmnist.findings.md`)", "", res["findings"], ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rho", default="0.9,0.95,0.99", help="comma-separated train/val colour-target correlations")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, a plumbing check (the augmentation may be refused); everything goes under --runs")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--runs", type=Path, default=None, help="run directories (default benchmarks/runs/latent_aug_cmnist)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-val", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=4000)
    ap.add_argument("--width", type=int, default=8, help="cnn64 width of every classifier")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--gan-width", type=int, default=32)
    ap.add_argument("--gan-batch", type=int, default=64)
    ap.add_argument("--gan-steps", type=int, default=1200)
    ap.add_argument("--gan-max-minutes", type=float, default=None)
    ap.add_argument("--n-aug", type=int, default=None, help="pairs (default n_train: real : synthetic = 1 : 2)")
    ap.add_argument("--n-fit", type=int, default=10000)
    ap.add_argument("--n-heldout", type=int, default=5000)
    ap.add_argument("--n-indep", type=int, default=20000)
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--findings", type=Path, default=RESULTS / "latent_aug_cmnist.findings.md",
                    help="hand-written findings (markdown) copied into the md when the file exists")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in {"n_train": 1500, "n_val": 500, "n_test": 1000, "steps": 60, "gan_steps": 60, "gan_width": 16, "n_fit": 800,
                     "n_heldout": 400, "n_indep": 2000, "n_boot": 20}.items():
            if getattr(args, k) == ap.get_default(k):
                setattr(args, k, v)
        if args.seeds == ap.get_default("seeds"):
            args.seeds = "0"
        if args.rho == ap.get_default("rho"):
            args.rho = "0.95"
    args.runs = args.runs or ROOT / "benchmarks" / "runs" / ("latent_aug_cmnist_quick" if args.quick else "latent_aug_cmnist")
    args.n_aug = args.n_aug or args.n_train
    args.out = args.runs / "results" if args.quick else RESULTS
    (args.out / "img").mkdir(parents=True, exist_ok=True)
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    rhos = [float(r) for r in str(args.rho).split(",") if r.strip()]
    torch.set_num_threads(args.threads)
    os.environ.setdefault("DEBIASKIT_NUM_THREADS", str(args.threads))
    register()
    from debiaskit import __version__
    from debiaskit.io import write_json, write_text

    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    name = "latent_aug_cmnist"
    prev = args.out / f"{name}.json"
    kept = []
    if prev.exists():  # keep the results of correlations not run this time
        kept = [r for r in json.loads(prev.read_text()).get("per_rho", []) if r["rho"] not in rhos]
    per_rho = []
    for rho in rhos:
        log(f"rho = {rho:g}")
        per_rho.append(run_rho(args, rho))
    ind = independent_classifiers(args)
    res = {
        "debiaskit_version": __version__, "torch_version": torch.__version__,
        "command": "python benchmarks/latent_aug_cmnist.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "independent": {k: v for k, v in ind.items() if k not in ("digit", "colour")},
        "per_rho": sorted(kept + per_rho, key=lambda r: r["rho"]),
        "wall_time_this_call_s": time.perf_counter() - t0,
        "load_this_call": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "findings": args.findings.read_text().strip() if args.findings and args.findings.is_file() and not args.quick else None,
    }
    write_json(args.out / f"{name}.json", res)
    write_text(args.out / f"{name}.md", render_md(args, res))
    log(f"done in {res['wall_time_this_call_s'] / 60:.1f} min → {args.out / (name + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
