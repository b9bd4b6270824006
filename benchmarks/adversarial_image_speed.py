"""What one ``adversarial_image`` step costs on Colored MNIST, stage by stage, and what a full-budget run needs.

Times the compute of the method's update in each stage of its schedule (``debiaskit.methods.adversarial_image``)
with the networks of ``benchmarks/adversarial.py --budget full``: the mask U-Net (``MaskUNet``, ngf 8, depth 2),
LfF's 100-d MLP as task network and as adversary, a batch of 256 Colored-MNIST-shaped images (3×28×28), Adam:

* ``pretrain``: task net and adversary on the original images (forward, backward, two optimiser steps);
* ``mask``: U-Net forward/backward through the frozen task net and the gradient-reversed frozen adversary,
  L1 term, one optimiser step;
* ``finetune``: U-Net forward without gradients, task net and adversary trained on the masked images.

Data indexing and evaluation are not included. The schedule-weighted mean (30 % / 30 % / 40 %, the method's
defaults) times the step budget gives the training compute of one run. One thread; the stages are interleaved
over ``--repeats`` so a load change hits them alike; median over repeats.

    python benchmarks/adversarial_image_speed.py          # -> benchmarks/results/adversarial_image_speed.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from _machine import cpu_model

HERE = Path(__file__).resolve().parent
STAGE_FRACTIONS = {"pretrain": 0.3, "mask": 0.3, "finetune": 0.4}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--unet-ngf", type=int, default=8)
    ap.add_argument("--unet-depth", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per stage and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=int, default=23500, help="steps of one run (LfF's budget)")
    ap.add_argument("--out", default=str(HERE / "results" / "adversarial_image_speed.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    from debiaskit import __version__
    from debiaskit.io import write_json
    from debiaskit.methods.grl import grad_reverse
    from debiaskit.models import create_model
    from debiaskit.models.unet import MaskUNet

    shape = (3, 28, 28)
    unet = MaskUNet(3, ngf=args.unet_ngf, depth=args.unet_depth)
    task = create_model("mlp_lff", num_classes=10, in_shape=shape)
    adv = create_model("mlp_lff", num_classes=10, in_shape=shape)
    opts = {n: torch.optim.Adam(m.parameters(), lr=1e-3) for n, m in (("unet", unet), ("task", task), ("adv", adv))}
    x = torch.rand(args.batch, *shape)
    y = torch.randint(0, 10, (args.batch,))
    b = torch.randint(0, 10, (args.batch,))

    def zero() -> None:
        for o in opts.values():
            o.zero_grad(set_to_none=True)

    def pretrain() -> None:
        zero()
        (F.cross_entropy(task(x), y) + F.cross_entropy(adv(x), b)).backward()
        opts["task"].step()
        opts["adv"].step()

    def mask() -> None:
        zero()
        xm = x * unet(x)
        loss = F.cross_entropy(task(xm), y) + F.cross_entropy(adv(grad_reverse(xm, 5.0)), b) + 0.1 * (xm - x).abs().mean()
        loss.backward()
        opts["unet"].step()

    def finetune() -> None:
        zero()
        with torch.no_grad():
            xm = x * unet(x)
        (F.cross_entropy(task(xm), y) + F.cross_entropy(adv(xm), b)).backward()
        opts["task"].step()
        opts["adv"].step()

    stages = {"pretrain": pretrain, "mask": mask, "finetune": finetune}
    for fn in stages.values():  # warm-up
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {s: [] for s in stages}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for name, fn in stages.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append((time.perf_counter() - t) / args.steps * 1000)
    ms = {s: statistics.median(v) for s, v in times.items()}
    mean_ms = sum(STAGE_FRACTIONS[s] * ms[s] for s in stages)
    payload = {
        "debiaskit_version": __version__,
        "what": "compute of one adversarial_image update per stage (no data indexing, no evaluation), one thread",
        "machine": {"platform": platform.platform(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "load_average": list(load_before)},
        "load_average_after": list(os.getloadavg()),
        "config": {"batch": args.batch, "unet_ngf": args.unet_ngf, "unet_depth": args.unet_depth,
                   "task_model": "mlp_lff", "adversary": "mlp_lff", "stage_fractions": STAGE_FRACTIONS},
        "ms_per_step": ms, "ms_per_step_repeats": times,
        "schedule_mean_ms_per_step": mean_ms,
        "budget_steps": args.budget,
        "train_compute_min_per_run": mean_ms * args.budget / 1000 / 60,
        "command": " ".join(["python", "benchmarks/adversarial_image_speed.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    write_json(args.out, payload)
    print(", ".join(f"{s} {v:.1f} ms" for s, v in ms.items())
          + f"; schedule mean {mean_ms:.1f} ms/step; {payload['train_compute_min_per_run']:.1f} min of training "
          f"compute for {args.budget:,} steps; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
