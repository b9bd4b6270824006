"""``debiaskit augment``: build the latent-space augmentation of Ramaswamy et al. (CVPR 2021).

Example::

    debiaskit augment --generator runs/gan/checkpoint.pt --dataset celeba64_mini --data-dir ../shared/data \\
        --option size=32 --target Smiling --protected Male --n 10000 --out runs/aug_smiling
    debiaskit train --method latent_aug --dataset celeba64_mini --set dataset.target=Smiling \\
        --set dataset.size=32 --set hparams.augment=runs/aug_smiling --out runs/latent_aug_smiling

Baseline attribute classifiers: pass finished ``debiaskit train`` run directories with ``--target-run`` /
``--protected-run``; otherwise ``vanilla`` baselines are trained (resumably) under ``--baselines``
(default ``<out>.baselines/``) with ``--baseline-steps`` steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from debiaskit.commands.argtypes import non_negative_int, positive_int
from debiaskit.data.registry import get_splits
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import resolve_config
from debiaskit.experiments.rundir import classifier_from_run
from debiaskit.generative.augment import AugmentConfig, build_augmentation, save_augmentation
from debiaskit.generative.protocol import check_output_shape, load_generator
from debiaskit.train.trainer import run_training


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "augment",
        help="GAN latent augmentation: hallucinated labels, latent hyperplanes, paired z' (CVPR 2021)",
        description="Build real ∪ G(z) ∪ G(z') training data for the latent_aug method.",
    )
    p.add_argument("--generator", required=True,
                   help="GAN checkpoint (debiaskit generative train-gan), TorchScript file, python:MODULE:FACTORY, "
                        "or hub:REPO:ENTRY")
    p.add_argument("--dataset", required=True, help="registered dataset with target/protected options, e.g. celeba64_mini")
    p.add_argument("--target", required=True, help="target attribute, e.g. Smiling")
    p.add_argument("--protected", default="Male", help="protected attribute (default Male)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="further dataset option (repeatable)")
    p.add_argument("--n", type=positive_int, default=10000, help="z in the augment block (→ 2n synthetic images)")
    p.add_argument("--n-fit", type=positive_int, default=10000, help="z used to fit the hyperplanes")
    p.add_argument("--n-heldout", type=positive_int, default=5000, help="z used to measure hyperplane accuracy")
    p.add_argument("--edit", default="z_prime", choices=["z_prime", "z_prime_0", "z_prime_g", "z_prime_g0"])
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of z (and of the baselines trained here)")
    p.add_argument("--target-run", default=None, help="finished baseline run for the target attribute")
    p.add_argument("--protected-run", default=None, help="finished baseline run for the protected attribute")
    p.add_argument("--baselines", default=None, help="where to train missing baselines (default <out>.baselines)")
    p.add_argument("--baseline-steps", type=positive_int, default=None, help="steps of baselines trained here (default: dataset default)")
    p.add_argument("--resize", action="store_true", help="resize generator output to the dataset's image size")
    p.add_argument("--latent-dim", type=positive_int, default=None, help="latent size of a TorchScript / python: generator")
    p.add_argument("--output-range", choices=["-1,1", "0,1"], default=None, help="declared output range of such a generator")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.set_defaults(func=_augment)


def _dataset_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in args.option or []:
        if "=" not in item:
            raise DebiaskitError(f"--option expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    if args.data_dir is not None:
        opts["data_dir"] = args.data_dir
    return opts


def train_baseline(
    dataset: str,
    options: dict[str, Any],
    attribute: str,
    other: str,
    out: Path,
    *,
    seed: int = 0,
    steps: int | None = None,
    hparams: dict[str, Any] | None = None,
) -> Path:
    """Train (or resume / reuse) a ``vanilla`` classifier for ``attribute`` (protected option = ``other``)."""
    hp = dict(hparams or {})
    if steps is not None:
        hp["steps"] = int(steps)
    cfg = resolve_config({
        "seed": seed,
        "device": "cpu",
        "dataset": {"name": dataset, **options, "target": attribute, "protected": other},
        "method": "vanilla",
        "hparams": hp,
        "train": {"progress": False},
    })
    run_training(cfg, out)
    return out


def run_augment(args: argparse.Namespace, *, log: Any = None) -> dict[str, Any]:
    """Programmatic form of the command (also used by the benchmark); returns the manifest."""
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DebiaskitError(f"output directory {out} already exists and is not empty; choose another --out")
    for k in ("n", "n_fit", "n_heldout"):
        if getattr(args, k) < 1:
            raise DebiaskitError(f"--{k.replace('_', '-')} must be positive")
    opts = _dataset_options(args)
    splits = get_splits(args.dataset, **opts, target=args.target, protected=args.protected)
    shape = splits["train"].image_shape
    rng = None if args.output_range is None else tuple(float(v) for v in args.output_range.split(","))
    gen = load_generator(args.generator, latent_dim=args.latent_dim, output_range=rng,
                         out_size=shape[-1] if args.resize else None)
    check_output_shape(gen, shape, what=f"the image shape of {args.dataset}")
    timings: dict[str, float] = {}
    base_dir = Path(args.baselines) if args.baselines else out.parent / f"{out.name}.baselines"
    runs = {}
    for role, attr, other, given in (("target", args.target, args.protected, args.target_run),
                                     ("protected", args.protected, args.target, args.protected_run)):
        if given:
            runs[role] = Path(given)
            continue
        t0 = time.perf_counter()
        say(f"training the {role} baseline ({attr}) in {base_dir / attr}")
        runs[role] = train_baseline(args.dataset, opts, attr, other, base_dir / attr, seed=args.seed,
                                    steps=args.baseline_steps)
        timings[f"baseline_{role}_s"] = round(time.perf_counter() - t0, 2)
    clf_t = classifier_from_run(runs["target"], attribute=args.target)
    clf_g = classifier_from_run(runs["protected"], attribute=args.protected)
    cfg = AugmentConfig(n=args.n, n_fit=args.n_fit, n_heldout=args.n_heldout, edit=args.edit, seed=args.seed)
    t0 = time.perf_counter()
    aug = build_augmentation(gen, clf_t, clf_g, config=cfg)
    timings["augmentation_s"] = round(time.perf_counter() - t0, 2)
    aug.manifest["baseline_runs"] = {k: str(v) for k, v in runs.items()}
    aug.manifest["dataset"] = {"name": args.dataset, "options": {k: str(v) for k, v in opts.items()},
                               "fingerprint": splits.fingerprint}
    aug.manifest["timings_s"].update(timings)
    save_augmentation(aug, out)
    return aug.manifest


def _augment(args: argparse.Namespace) -> int:
    m = run_augment(args)
    hp = m["hyperplanes"]
    print(json.dumps({
        "out": str(args.out),
        "n_images": m["n_images"],
        "heldout_accuracy": {hp["target"]["attribute"]: hp["target"]["heldout_accuracy"],
                             hp["protected"]["attribute"]: hp["protected"]["heldout_accuracy"]},
        "protected_flip_rate": m["diagnostics"]["protected_flip_rate"],
        "target_kept_rate": m["diagnostics"]["target_kept_rate"],
    }))
    return 0
