"""Benchmark: latent-space de-biasing (Ramaswamy et al., CVPR 2021) on celeba64_mini, protected = Male.

Stages (each resumable; finished pieces are skipped on re-run):

1. ``baselines`` — a ``vanilla`` classifier per target attribute and for Male, per seed;
2. ``augment``   — per target: the seed-0 baselines hallucinate labels of G(z) (τ_F1 from real val), LinearSVC
   hyperplanes on a fitting block, held-out accuracy, z′ for the augment block, G(z′)
   (``debiaskit.generative.augment``); written to ``<runs>/aug/<target>``;
3. ``train``     — ``latent_aug`` (real ∪ G(z) ∪ G(z′)) and the +G(z)-only ablation (real ∪ G(z)), per seed,
   with the baseline's step budget (step-matched);
4. ``report``    — AP / DEO / BA / KL on the test split (τ_cal from val; bootstrap median ± 2σ, debiaskit.metrics),
   per attribute and per category, hyperplane accuracies, generator diagnostics, wall time per stage →
   ``benchmarks/results/latent_aug.{json,md}``.

The GAN itself is trained beforehand with ``debiaskit generative train-gan`` (pass ``--gan``).

    python benchmarks/latent_aug.py --gan benchmarks/runs/latent_aug/gan_celeba32/checkpoint.pt --stage all
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = {  # the paper's three categories; membership is our reconstruction, not checked against the paper
    "gender-independent": ["Smiling", "Eyeglasses", "Blond_Hair"],
    "gender-dependent": ["Young", "Arched_Eyebrows"],
    "inconsistently labeled": ["Wavy_Hair"],
}
METHODS = {"baseline": ("vanilla", None), "latent_aug": ("latent_aug", ["real", "gz", "gz_prime"]),
           "gz_only": ("latent_aug", ["real", "gz"])}


def category_of(attr: str) -> str:
    for c, attrs in CATEGORIES.items():
        if attr in attrs:
            return c
    return "other"


def base_cfg(args: argparse.Namespace, *, method: str, target: str, protected: str, seed: int,
             extra_hp: dict[str, Any] | None = None) -> dict[str, Any]:
    from debiaskit.experiments.config import resolve_config

    hp = {"model": "cnn64", "model_kwargs": {"width": args.width}, "batch_size": args.batch_size,
          "steps": args.steps, "lr": args.lr}
    hp.update(extra_hp or {})
    return resolve_config({
        "seed": seed,
        "device": "cpu",
        "dataset": {"name": "celeba64_mini", "data_dir": str(args.data_dir), "size": args.size,
                    "target": target, "protected": protected},
        "method": method,
        "hparams": hp,
        "train": {"progress": False, "eval_every": args.steps, "checkpoint_every": max(args.steps // 4, 1),
                  "selection": ["last"], "report": "last"},
    })


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stage_baselines(args: argparse.Namespace) -> None:
    from debiaskit.train.trainer import run_training

    for seed in args.seeds:
        for attr in [args.protected, *args.targets]:
            other = args.targets[0] if attr == args.protected else args.protected
            out = args.runs / "base" / attr / f"s{seed}"
            if (out / "result.json").exists():
                continue
            log(f"baseline {attr} seed {seed}")
            run_training(base_cfg(args, method="vanilla", target=attr, protected=other, seed=seed), out)


def stage_augment(args: argparse.Namespace) -> None:
    from debiaskit.generative.augment import AugmentConfig, build_augmentation, save_augmentation
    from debiaskit.experiments.rundir import classifier_from_run
    from debiaskit.generative.protocol import load_generator

    gen = load_generator(args.gan, out_size=args.size)
    clf_g = classifier_from_run(args.runs / "base" / args.protected / "s0", attribute=args.protected)
    for attr in args.targets:
        out = args.runs / "aug" / attr
        if (out / "manifest.json").exists():
            continue
        log(f"augment {attr}")
        clf_t = classifier_from_run(args.runs / "base" / attr / "s0", attribute=attr)
        t0 = time.perf_counter()
        try:
            aug = build_augmentation(gen, clf_t, clf_g, config=AugmentConfig(
                n=args.n_aug, n_fit=args.n_fit, n_heldout=args.n_heldout, seed=0))
        except Exception as e:  # noqa: BLE001 - recorded in the report
            (args.runs / "aug").mkdir(parents=True, exist_ok=True)
            (args.runs / "aug" / f"{attr}.error.txt").write_text(f"{type(e).__name__}: {e}\n")
            log(f"augment {attr} failed: {e}")
            continue
        aug.manifest["timings_s"]["total_s"] = round(time.perf_counter() - t0, 2)
        aug.manifest["generator_checkpoint"] = str(args.gan)
        save_augmentation(aug, out)


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _lock(out: Path) -> bool:
    """Claim a run for this worker (several ``--stage train`` workers may run side by side)."""
    import os

    lock = _lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(lock.read_text() or 0), 0)
            return False  # another live worker holds it
        except (ValueError, ProcessLookupError):
            lock.unlink(missing_ok=True)
            return _lock(out)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def stage_train(args: argparse.Namespace) -> None:
    from debiaskit.train.trainer import run_training

    for seed in args.seeds:
        for attr in args.targets:
            aug = args.runs / "aug" / attr
            if not (aug / "manifest.json").exists():
                continue
            for name in ("latent_aug", "gz_only"):
                out = args.runs / "train" / name / attr / f"s{seed}"
                if (out / "result.json").exists() or not _lock(out):
                    continue
                log(f"{name} {attr} seed {seed}")
                cfg = base_cfg(args, method="latent_aug", target=attr, protected=args.protected, seed=seed,
                               extra_hp={"augment": str(aug), "augment_sources": METHODS[name][1]})
                try:
                    run_training(cfg, out)
                finally:
                    _lock_path(out).unlink(missing_ok=True)


def run_dir(args: argparse.Namespace, method: str, attr: str, seed: int) -> Path:
    if method == "baseline":
        return args.runs / "base" / attr / f"s{seed}"
    return args.runs / "train" / method / attr / f"s{seed}"


def evaluate_run(args: argparse.Namespace, path: Path) -> dict[str, Any] | None:
    from debiaskit.experiments.rundir import load_run
    from debiaskit.generative.evaluation import paper_metrics
    from debiaskit.io import write_json

    cache = path / f"paper_metrics_b{args.n_boot}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    if not (path / "result.json").exists():
        return None
    run = load_run(path)
    val, test = run.splits["val"], run.splits["test"]
    s_val = torch.softmax(run.predict_logits("val", selection="last"), 1)[:, 1].numpy()
    s_test = torch.softmax(run.predict_logits("test", selection="last"), 1)[:, 1].numpy()
    m = paper_metrics(val.targets, s_val, test.targets, s_test, test.bias, n_boot=args.n_boot, seed=0)
    m["wall_time_s"] = run.result["wall_time_s"]
    m["train_size"] = run.result["data"]["splits"]["train"]["size"]
    write_json(cache, m)
    return m


def generator_quality(args: argparse.Namespace) -> dict[str, Any]:
    """Positive rates of the baselines on real test images vs on G(z) (hallucinated), per attribute."""
    from debiaskit.experiments.rundir import classifier_from_run

    out: dict[str, Any] = {}
    for attr in [args.protected, *args.targets]:
        p = args.runs / "base" / attr / "s0"
        if not (p / "result.json").exists():
            continue
        clf = classifier_from_run(p, attribute=attr)
        from debiaskit.experiments.rundir import load_run

        test = load_run(p).splits["test"]
        pred, _ = clf.labels(test.images)
        out[attr] = {"tau_f1": clf.threshold, "true_rate_real_test": float(test.targets.float().mean()),
                     "predicted_rate_real_test": float(pred.mean())}
    for attr in args.targets:
        mf = args.runs / "aug" / attr / "manifest.json"
        if mf.exists():
            man = json.loads(mf.read_text())
            rates = man["diagnostics"]["positive_rate_gz"]
            out.setdefault(attr, {})["predicted_rate_gz"] = rates[attr]
            out.setdefault(args.protected, {})["predicted_rate_gz"] = rates[args.protected]
    return out


def cmnist_gan_check(args: argparse.Namespace) -> dict[str, Any]:
    """Colored MNIST GAN: are digit and colour recognisable in G(z)?

    Digit: multinomial logistic regression on *grey-scale* real training images (colour removed), applied to
    grey-scale G(z). Colour: nearest per-colour prototype (mean foreground RGB of real training images of each
    bias colour). Reported: distributions on G(z) vs real test images and mean max-probability of the digit model.
    """
    from sklearn.linear_model import LogisticRegression

    from debiaskit.data.registry import get_splits
    from debiaskit.generative.protocol import load_generator

    ck = Path(args.cmnist_gan)
    if not ck.exists():
        return {}
    splits = get_splits("colored_mnist", ratio=0.01, data_dir=str(args.data_dir))
    tr, te = splits["train"], splits["test"]

    def grey(x: torch.Tensor) -> np.ndarray:
        return x.float().amax(1).flatten(1).numpy() / 255.0

    def fg_colour(x: torch.Tensor) -> np.ndarray:
        xf = x.float() / 255.0
        mask = (xf.amax(1, keepdim=True) > 0.3).float()
        return ((xf * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1)).numpy()

    n_fit = min(len(tr), 10000)
    clf = LogisticRegression(max_iter=300, C=0.1).fit(grey(tr.images[:n_fit]), tr.targets[:n_fit].numpy())
    protos = np.stack([fg_colour(tr.images[tr.bias == b][:500]).mean(0) for b in range(10)])
    gen = load_generator(ck, out_size=tr.image_shape[-1])
    g_imgs = gen.generate_uint8(torch.randn(2000, gen.latent_dim, generator=torch.Generator().manual_seed(0)))

    def describe(x: torch.Tensor) -> dict[str, Any]:
        p = clf.predict_proba(grey(x))
        col = fg_colour(x)
        d = ((col[:, None, :] - protos[None]) ** 2).sum(-1)
        return {"digit_hist": np.bincount(p.argmax(1), minlength=10).tolist(),
                "digit_mean_max_prob": float(p.max(1).mean()),
                "colour_hist": np.bincount(d.argmin(1), minlength=10).tolist(),
                "colour_mean_dist": float(np.sqrt(d.min(1)).mean())}

    pick = torch.from_numpy(np.random.default_rng(0).permutation(len(te))[:2000])  # test colours come in blocks
    real = describe(te.images[pick])
    real["digit_accuracy"] = float((clf.predict(grey(te.images[pick])) == te.targets[pick].numpy()).mean())
    out = {"checkpoint": str(ck), "real_test": real, "generated": describe(g_imgs)}
    c = torch.load(ck, map_location="cpu", weights_only=False)
    out["steps"], out["elapsed_s"] = c["step"], c["elapsed_s"]
    return out


def _fmt(m: dict[str, float] | None, digits: int = 1) -> str:
    if not m:
        return "—"
    half = (m["high"] - m["low"]) / 2
    return f"{m['estimate']:.{digits}f}±{half:.{digits}f}"


def stage_report(args: argparse.Namespace) -> dict[str, Any]:
    from debiaskit import __version__
    from debiaskit.io import write_json, write_text

    results: dict[str, Any] = {"per_run": {}, "per_attribute": {}, "per_category": {}}
    keys = ("AP", "DEO", "BA", "KL", "KL_aligned")
    for attr in args.targets:
        for method in METHODS:
            for seed in args.seeds:
                m = evaluate_run(args, run_dir(args, method, attr, seed))
                if m is not None:
                    results["per_run"][f"{method}/{attr}/s{seed}"] = m
    # mean over seeds (and the mean of the bootstrap half-widths)
    for attr in args.targets:
        for method in METHODS:
            runs = [results["per_run"].get(f"{method}/{attr}/s{s}") for s in args.seeds]
            runs = [r for r in runs if r]
            if not runs:
                continue
            agg = {}
            for k in keys:
                est = np.array([r[k]["estimate"] for r in runs])
                half = np.array([(r[k]["high"] - r[k]["low"]) / 2 for r in runs])
                agg[k] = {"estimate": float(est.mean()), "low": float(est.mean() - half.mean()),
                          "high": float(est.mean() + half.mean()), "seed_std": float(est.std(ddof=1)) if len(est) > 1 else None,
                          "n_seeds": len(runs)}
            agg["wall_time_s"] = float(np.mean([r["wall_time_s"] for r in runs]))
            agg["train_size"] = runs[0]["train_size"]
            results["per_attribute"].setdefault(attr, {})[method] = agg
    for cat, attrs in CATEGORIES.items():
        for method in METHODS:
            vals = [results["per_attribute"].get(a, {}).get(method) for a in attrs if a in args.targets]
            vals = [v for v in vals if v]
            if vals:
                results["per_category"].setdefault(cat, {})[method] = {
                    k: {"estimate": float(np.mean([v[k]["estimate"] for v in vals])),
                        "low": float(np.mean([v[k]["low"] for v in vals])),
                        "high": float(np.mean([v[k]["high"] for v in vals]))} for k in keys
                } | {"n_attributes": len(vals)}
    hyper, diag, timings, errors = {}, {}, {}, {}
    for attr in args.targets:
        mf = args.runs / "aug" / attr / "manifest.json"
        ef = args.runs / "aug" / f"{attr}.error.txt"
        if ef.exists() and not mf.exists():
            errors[attr] = ef.read_text().strip()
        if mf.exists():
            man = json.loads(mf.read_text())
            hyper[attr] = {r: {k: man["hyperplanes"][r][k] for k in ("attribute", "fit_accuracy", "heldout_accuracy",
                                                                    "positives_fit", "n_fit", "n_heldout", "positive_rate_heldout")}
                           for r in ("target", "protected")}
            diag[attr] = man["diagnostics"] | {"thresholds": man["thresholds"]}
            timings.setdefault("augmentation", {})[attr] = man["timings_s"]
    gan_info: dict[str, Any] = {}
    if args.gan and Path(args.gan).exists():
        ck = torch.load(args.gan, map_location="cpu", weights_only=False)
        gan_info = {"checkpoint": str(args.gan), "steps": ck["step"], "elapsed_s": ck["elapsed_s"], "config": ck["config"]}
    timings["gan_s"] = gan_info.get("elapsed_s")
    timings["baseline_training_s"] = {a: results["per_attribute"].get(a, {}).get("baseline", {}).get("wall_time_s")
                                      for a in args.targets}
    timings["latent_aug_training_s"] = {a: results["per_attribute"].get(a, {}).get("latent_aug", {}).get("wall_time_s")
                                        for a in args.targets}
    results.update({
        "debiaskit_version": __version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "categories": CATEGORIES,
        "gan": gan_info,
        "hyperplanes": hyper,
        "diagnostics": diag,
        "generator_quality": generator_quality(args),
        "timings_s": timings,
        "augment_errors": errors,
        "cmnist_gan": cmnist_gan_check(args),
    })
    out_dir = ROOT / "benchmarks" / "results"
    write_json(out_dir / "latent_aug.json", results)
    write_text(out_dir / "latent_aug.md", render_md(args, results))
    return results


def render_md(args: argparse.Namespace, r: dict[str, Any]) -> str:
    L = ["# Latent-space de-biasing (Ramaswamy et al., CVPR 2021) on celeba64_mini", ""]
    g = r.get("gan", {})
    L += [f"debiaskit {r['debiaskit_version']}; generated by `benchmarks/latent_aug.py` (see the command in docs/latent_aug.md).", "",
          "**Reduced configuration (CPU, shared 2 cores):** "
          f"images {args.size}×{args.size} (area-downsampled from 64), classifier `cnn64` width {args.width} from scratch "
          f"(no ImageNet weights), {args.steps} steps × batch {args.batch_size}, seeds {args.seeds}, bootstrap n={args.n_boot} "
          f"(median ± 2σ), GAN {g.get('steps', '?')} steps in {g.get('elapsed_s', 0) / 60:.1f} min, "
          f"z blocks fit/held-out/augment = {args.n_fit}/{args.n_heldout}/{args.n_aug} "
          f"(paper: 10,000/5,000/160,000; real:synthetic = 1:2 as in the paper). Thresholds: τ_F1 (hallucination) and "
          "τ_cal (DEO/BA) from the real validation split. Model = last step (no selection). Training is "
          "step-matched (same number of updates for every method).", ""]
    L += ["## Per attribute (test split; mean over seeds, ± = mean bootstrap 2σ)", "",
          "| category | attribute | method | AP ↑ | DEO ↓ | BA ↓ | KL ↓ (official) | KL (aligned) | n seeds |",
          "|---|---|---|---|---|---|---|---|---|"]
    for attr in args.targets:
        for method, agg in r["per_attribute"].get(attr, {}).items():
            L.append(f"| {category_of(attr)} | {attr} | {method} | {_fmt(agg['AP'])} | {_fmt(agg['DEO'])} | "
                     f"{_fmt(agg['BA'])} | {_fmt(agg['KL'], 2)} | {_fmt(agg['KL_aligned'], 2)} | {agg['AP']['n_seeds']} |")
    L += ["", "## Per category (mean over attributes)", "",
          "| category | method | AP ↑ | DEO ↓ | BA ↓ | KL ↓ (official) | KL (aligned) | n attributes |", "|---|---|---|---|---|---|---|---|"]
    for cat, by in r["per_category"].items():
        for method, agg in by.items():
            L.append(f"| {cat} | {method} | {_fmt(agg['AP'])} | {_fmt(agg['DEO'])} | {_fmt(agg['BA'])} | "
                     f"{_fmt(agg['KL'], 2)} | {_fmt(agg['KL_aligned'], 2)} | {agg['n_attributes']} |")
    L += ["", "Paper (Ramaswamy et al., CVPR 2021, results table averaged per attribute category; CelebA, "
          "ResNet-50, 128 px PGAN): DEO/BA/KL down at ≈1 AP point cost in every category.", "",
          "## Latent hyperplanes (LinearSVC on hallucinated labels) and the edit in image space", "",
          "Majority = accuracy of always predicting the majority hallucinated label on the held-out block (the chance level).", "",
          "| target | target SVM fit / held-out acc (majority) | Male SVM fit / held-out acc (majority) | cos(w_t, w_g) | Male flip rate on G(z′) | target kept on G(z′) | G(z) cells t0g0/t0g1/t1g0/t1g1 |",
          "|---|---|---|---|---|---|---|"]

    def maj(h: dict[str, Any]) -> float:
        p = h["positive_rate_heldout"]
        return max(p, 1 - p)

    for attr, h in r["hyperplanes"].items():
        d = r["diagnostics"][attr]
        c = d["cells_gz"]
        L.append(f"| {attr} | {h['target']['fit_accuracy']:.3f} / {h['target']['heldout_accuracy']:.3f} ({maj(h['target']):.3f}) | "
                 f"{h['protected']['fit_accuracy']:.3f} / {h['protected']['heldout_accuracy']:.3f} ({maj(h['protected']):.3f}) | "
                 f"{d['cos_wt_wg']:+.3f} | {d['protected_flip_rate']:.3f} | {d['target_kept_rate']:.3f} | "
                 f"{c['t0_g0']}/{c['t0_g1']}/{c['t1_g0']}/{c['t1_g1']} |")
    for attr, err in r.get("augment_errors", {}).items():
        L.append(f"\n**{attr}: augmentation refused** — {err}")
    L += ["", "## Generator quality: predicted positive rate of the baselines (at τ_F1)", "",
          "| attribute | true rate, real test | predicted, real test | predicted on G(z) |", "|---|---|---|---|"]
    for attr, q in r["generator_quality"].items():
        L.append(f"| {attr} | {q.get('true_rate_real_test', float('nan')):.3f} | {q.get('predicted_rate_real_test', float('nan')):.3f} | "
                 f"{q.get('predicted_rate_gz', float('nan')):.3f} |")
    cm = r.get("cmnist_gan") or {}
    if cm:
        L += ["", f"## Colored MNIST GAN ({cm['steps']} steps, {cm['elapsed_s'] / 60:.1f} min)", "",
              "Digit = logistic regression on grey-scale real training images; colour = nearest per-colour prototype.", "",
              "| images | digit histogram | mean max digit prob | colour histogram | mean colour distance |", "|---|---|---|---|---|"]
        for k in ("real_test", "generated"):
            v = cm[k]
            L.append(f"| {k} | {v['digit_hist']} | {v['digit_mean_max_prob']:.3f} | {v['colour_hist']} | {v['colour_mean_dist']:.3f} |")
        L.append(f"\nDigit model accuracy on real grey-scale test images: {cm['real_test']['digit_accuracy']:.3f}.")
    t = r["timings_s"]
    L += ["", "## Wall time per stage (shared CPU; seconds)", "",
          f"- GAN training: {t.get('gan_s')}",
          f"- baseline training per run (mean over seeds): {json.dumps({k: round(v, 1) if v else v for k, v in t['baseline_training_s'].items()})}",
          f"- latent_aug training per run: {json.dumps({k: round(v, 1) if v else v for k, v in t['latent_aug_training_s'].items()})}",
          "- augmentation (generation / labelling / SVM / G(z′)) per target: "
          + json.dumps(t.get("augmentation", {})), ""]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="all", choices=["baselines", "augment", "train", "report", "all"])
    ap.add_argument("--gan", type=Path, default=ROOT / "benchmarks/runs/latent_aug/gan_celeba32/checkpoint.pt")
    ap.add_argument("--cmnist-gan", type=Path, default=ROOT / "benchmarks/runs/latent_aug/gan_cmnist28/checkpoint.pt")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--runs", type=Path, default=ROOT / "benchmarks/runs/latent_aug")
    ap.add_argument("--targets", default=",".join(a for v in CATEGORIES.values() for a in v))
    ap.add_argument("--protected", default="Male")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-aug", type=int, default=2400)
    ap.add_argument("--n-fit", type=int, default=10000)
    ap.add_argument("--n-heldout", type=int, default=5000)
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    args.targets = [a.strip() for a in args.targets.split(",") if a.strip()]
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    torch.set_num_threads(args.threads)
    stages = ["baselines", "augment", "train", "report"] if args.stage == "all" else [args.stage]
    for st in stages:
        t0 = time.perf_counter()
        {"baselines": stage_baselines, "augment": stage_augment, "train": stage_train, "report": stage_report}[st](args)
        log(f"stage {st} done in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
