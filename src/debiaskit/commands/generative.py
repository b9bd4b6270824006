"""``debiaskit generative train-gan``: train (or resume) the small DCGAN on a registered dataset.

Example::

    debiaskit generative train-gan --dataset celeba64_mini --data-dir ../shared/data \\
        --size 32 --steps 4000 --max-minutes 30 --out runs/gan_celeba32

Re-running the same command continues from ``<out>/checkpoint.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from debiaskit.commands.argtypes import non_negative_int, positive_float, positive_int, unit_right_open_float
from debiaskit.data.registry import get_splits
from debiaskit.errors import DebiaskitError
from debiaskit.generative.gan import GANConfig, _n_up, train_gan


def _parse_options(items: list[str] | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise DebiaskitError(f"--option expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    return opts


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generative", help="train / inspect the small generator used by latent_aug")
    sub = p.add_subparsers(dest="generative_command", metavar="SUBCOMMAND")
    t = sub.add_parser("train-gan", help="train (or resume) the DCGAN (hinge loss, spectral norm, EMA)")
    t.add_argument("--dataset", required=True, help="registered dataset name, e.g. celeba64_mini, colored_mnist")
    t.add_argument("--option", action="append", metavar="KEY=VALUE", help="dataset option (repeatable)")
    t.add_argument("--data-dir", default=None, help="data directory (else $DEBIASKIT_DATA)")
    t.add_argument("--splits", default="train", help="comma-separated splits to train on (default: train)")
    t.add_argument("--out", required=True, help="output directory (checkpoint, samples, log)")
    t.add_argument("--size", type=positive_int, default=32, help="image size of the GAN (28..64; default 32)")
    t.add_argument("--latent-dim", type=positive_int, default=64)
    t.add_argument("--width", type=positive_int, default=48, help="base channel width of G and D")
    t.add_argument("--batch-size", type=positive_int, default=64)
    t.add_argument("--steps", type=positive_int, default=4000)
    t.add_argument("--lr", type=positive_float, default=2e-4)
    t.add_argument("--ema-decay", type=unit_right_open_float, default=0.999, help="EMA decay of G, in [0, 1)")
    t.add_argument("--max-minutes", type=positive_float, default=None, help="stop (and checkpoint) after this wall time")
    t.add_argument("--sample-every", type=non_negative_int, default=250, help="steps between sample grids (0: none)")
    t.add_argument("--ckpt-every", type=positive_int, default=100)
    t.add_argument("--seed", type=non_negative_int, default=0)
    t.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    t.set_defaults(func=_train_gan)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _train_gan(args: argparse.Namespace) -> int:
    import torch

    _n_up(args.size)
    if args.steps < 1 or args.batch_size < 1:
        raise DebiaskitError("--steps and --batch-size must be positive")
    opts = _parse_options(args.option)
    if args.data_dir is not None:
        opts["data_dir"] = args.data_dir
    splits = get_splits(args.dataset, **opts)
    names = [s.strip() for s in args.splits.split(",") if s.strip()]
    images = torch.cat([splits[s].images for s in names])
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = GANConfig(
        latent_dim=args.latent_dim,
        size=args.size,
        width_g=args.width,
        width_d=args.width,
        batch_size=args.batch_size,
        steps=args.steps,
        lr_g=args.lr,
        lr_d=args.lr,
        ema_decay=args.ema_decay,
        seed=args.seed,
        sample_every=args.sample_every,
        ckpt_every=args.ckpt_every,
        max_minutes=args.max_minutes,
        data={"dataset": args.dataset, "options": {k: str(v) for k, v in opts.items()}, "splits": names,
              "fingerprint": splits.fingerprint},
    )
    summary = train_gan(images, Path(args.out), config=cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps({k: summary[k] for k in ("steps_done", "stopped_by", "elapsed_s", "checkpoint")}))
    return 0
