"""Dataset leakage λ_D, model leakage λ_M, λ_D(F1) and bias amplification Δ (Wang et al., ICCV 2019).

* λ_D: accuracy of an attacker predicting the protected attribute g from the **ground-truth** label vector
  (multi-hot, or one-hot for single-label tasks) on a g-balanced test subset, folded (0.5 + |acc − 0.5|),
  mean ± population std over rounds that each re-draw balanced train/val/test subsets (Wang et al. 2019, §3;
  protocol details in ``docs/leakage.md``).
* λ_M: the same attacker on the task model's **output** vectors (raw logits by default, as the authors' code
  feeds the pre-activation scores; probabilities or thresholded predictions as options, recorded in the result).
* λ_D(F1): λ_D after randomly perturbing the ground truth until it is exactly as good as the model
  (macro-F1); Δ = λ_M − λ_D(F1). The curve (perturbation level → mean F1, mean leakage) is kept.

Perturbation choices (the paper leaves them open; see ``docs/leakage.md``): multi-label = independent bit
flips with probability p on every entry; single-label = replace the label by a uniformly random class with probability p (the official
imSitu code measures F1 with replacement but trains on bit flips; we use replacement for both). The
reading of the curve at the model's F1 is not specified by the paper: we fit a non-decreasing isotonic
curve of leakage in F1 and interpolate linearly (clipped at the ends, flagged ``extrapolated``).

When ``val`` / ``test`` are not given, the data are split once into 60/20/20 % parts, stratified by g,
with the run's seed (the paper always has official splits).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from debiaskit import __version__
from debiaskit.errors import DebiaskitError
from debiaskit.fingerprint import fingerprint_arrays
from debiaskit.leakage.attacker import AttackerConfig, ProgressFn, train_attackers
from debiaskit.leakage.balanced import (
    as_group_codes,
    balanced_indices,
    folded_accuracy,
    resolve_sizes,
)

__all__ = [
    "LeakageResult",
    "LeakageCurve",
    "dataset_leakage",
    "model_leakage",
    "leakage_at_f1",
    "amplification",
    "encode_labels",
    "macro_f1",
    "perturb_labels",
    "expected_macro_f1",
    "perturbation_for_f1",
    "interpolate_monotone",
    "holdout_split",
    "COCO_FLIP_GRID",
    "IMSITU_REPLACE_GRID",
]

#: flip probabilities of the COCO λ_D(F1) sweep in the authors' released code (Wang et al. 2019)
COCO_FLIP_GRID: tuple[float, ...] = (0.0195, 0.020, 0.0205, 0.021, 0.022, 0.023, 0.024, 0.026, 0.027, 0.028, 0.03,
                                     0.032, 0.034, 0.036, 0.038, 0.042, 0.044, 0.048, 0.052, 0.056, 0.06, 0.065)
#: replacement probabilities of the imSitu sweep in the authors' released code (Wang et al. 2019)
IMSITU_REPLACE_GRID: tuple[float, ...] = (0.08, 0.10, 0.12, 0.13, 0.15)

Split = tuple[Any, Any]


# ----------------------------------------------------------------------------------------------- results
@dataclass
class LeakageResult:
    """Leakage mean ± std (population) over rounds, with everything needed to reproduce it."""

    mean: float
    std: float
    per_round: list[float]
    test_accuracy: list[float]
    val_accuracy: list[float]
    best_epoch: list[int]
    per_group: dict[str, int]
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f}"


@dataclass
class LeakageCurve:
    """λ_D as a function of the F1 of perturbed ground truth (one point per perturbation level)."""

    p: list[float]
    f1_mean: list[float]
    f1_std: list[float]
    leakage_mean: list[float]
    leakage_std: list[float]
    mode: str
    config: dict[str, Any] = field(default_factory=dict)

    def at(self, f1: float) -> tuple[float, bool]:
        """λ_D at macro-F1 ``f1`` (monotone-safe interpolation) and whether it was clipped to the range."""
        return interpolate_monotone(self.f1_mean, self.leakage_mean, f1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------ label utils
def encode_labels(
    splits: Sequence[Any], *, num_classes: int | None = None, what: Sequence[str] = ("train", "val", "test")
) -> tuple[list[np.ndarray], bool]:
    """Turn each split's labels into float32 ``(N, K)`` vectors; 1-D integer labels become one-hot.

    All splits must agree on the form and width (error names the widths otherwise).
    """
    arrs = []
    for name, lab in zip(what, splits):
        try:
            a = np.asarray(lab)
        except ValueError:
            raise DebiaskitError(f"{name}: label vectors of inconsistent widths") from None
        if a.dtype == object:
            raise DebiaskitError(f"{name}: label vectors of inconsistent widths (ragged rows)")
        if a.ndim not in (1, 2):
            raise DebiaskitError(f"{name}: labels must be 1-D class ids or 2-D label vectors, got shape {a.shape}")
        arrs.append((name, a))
    dims = {a.ndim for _, a in arrs}
    if len(dims) > 1:
        raise DebiaskitError("labels mix 1-D class ids and 2-D label vectors across splits")
    if dims == {1}:
        for name, a in arrs:
            if not np.issubdtype(a.dtype, np.integer) or (a.size and a.min() < 0):
                raise DebiaskitError(f"{name}: single-label targets must be non-negative integers")
        k = num_classes or max(int(a.max()) + 1 if a.size else 0 for _, a in arrs)
        if any(a.size and a.max() >= k for _, a in arrs):
            raise DebiaskitError(f"class ids exceed num_classes={k}")
        out = []
        for _, a in arrs:
            oh = np.zeros((len(a), k), np.float32)
            oh[np.arange(len(a)), a] = 1.0
            out.append(oh)
        return out, False
    widths = {name: a.shape[1] for name, a in arrs}
    if len(set(widths.values())) > 1:
        shown = ", ".join(f"{k} {v}" for k, v in widths.items())
        raise DebiaskitError(f"label vectors of inconsistent widths: {shown}")
    return [a.astype(np.float32) for _, a in arrs], True


def macro_f1(true: np.ndarray, pred: np.ndarray, *, multilabel: bool, axis_rows: bool = False) -> Any:
    """Macro-F1 as in scikit-learn (``average="macro"``, zero division → 0).

    Multi-label: ``(…, N, K)`` binary arrays, F1 per column, mean over all K columns. Single-label:
    ``(…, N)`` class ids, F1 per class over the classes present in ``true`` or ``pred``. Leading axes are
    batch axes (one F1 each).
    """
    t, p = np.asarray(true), np.asarray(pred)
    if multilabel:
        t, p = t.astype(bool), p.astype(bool)
        tp = (t & p).sum(-2)
        fp = (~t & p).sum(-2)
        fn = (t & ~p).sum(-2)
        den = 2 * tp + fp + fn
        f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
        return f1.mean(-1)
    t2, p2 = t.reshape(-1, t.shape[-1]), p.reshape(-1, p.shape[-1])
    k = int(max(t2.max(), p2.max())) + 1
    off = np.arange(len(t2))[:, None] * k
    cnt = lambda a: np.bincount((a + off).ravel(), minlength=len(t2) * k).reshape(len(t2), k)  # noqa: E731
    hit = t2 == p2
    tp = np.bincount((t2 + off)[hit], minlength=len(t2) * k).reshape(len(t2), k)
    nt, npred = cnt(t2), cnt(p2)
    present = (nt + npred) > 0
    den = nt + npred
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
    res = (f1 * present).sum(1) / present.sum(1)
    return res.reshape(t.shape[:-1]) if t.ndim > 1 else float(res[0])


def perturb_labels(labels: np.ndarray, p: float, *, multilabel: bool, num_classes: int | None = None,
                   rng: np.random.Generator) -> np.ndarray:
    """Random-mistake labeler used for λ_D(F1) (Wang et al. 2019, §3).

    Multi-label: flip every entry of the 0/1 matrix independently with probability ``p``. Single-label
    (class ids): with probability ``p`` replace the label by a class drawn uniformly from all classes
    (possibly the same one).
    """
    if not 0.0 <= p <= 1.0:
        raise DebiaskitError(f"perturbation probability must be in [0, 1], got {p}")
    y = np.asarray(labels)
    if multilabel:
        return (y.astype(bool) ^ (rng.random(y.shape) < p)).astype(np.uint8)
    k = num_classes or int(y.max()) + 1
    repl = rng.random(y.shape) < p
    return np.where(repl, rng.integers(0, k, size=y.shape), y)


def expected_macro_f1(labels: np.ndarray, p: float, *, multilabel: bool, num_classes: int | None = None) -> float:
    """Expected macro-F1 of :func:`perturb_labels` at level ``p`` (per-label ratio of expected counts).

    Bit flips, label with positive rate π: F1 = 2π(1−p) / (2π(1−p) + p). Replacement among K classes,
    class rate π: TP = π(1 − p + p/K), FN = π p (1 − 1/K), FP = (1 − π) p / K.
    """
    y = np.asarray(labels)
    if multilabel:
        pi = y.astype(np.float64).mean(0)
        pi = pi[pi > 0]
        tp = 2 * pi * (1 - p)
        f1 = tp / (tp + p)
        # labels with no positives score F1 = 0 (scikit-learn's zero-division convention)
        return float(f1.sum() / y.shape[1])
    k = num_classes or int(y.max()) + 1
    pi = np.bincount(y, minlength=k) / len(y)
    tp = pi * (1 - p + p / k)
    fn = pi * p * (1 - 1 / k)
    fp = (1 - pi) * p / k
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-300)
    present = (pi > 0) | (p > 0)
    return float(f1[present].mean())


def perturbation_for_f1(labels: np.ndarray, target_f1: float, *, multilabel: bool,
                        num_classes: int | None = None) -> float:
    """The perturbation level p whose expected macro-F1 (:func:`expected_macro_f1`) equals ``target_f1``.

    Bisection on p ∈ [0, 1] (expected F1 decreases in p); raises if the target is out of reach.
    """
    f_hi = expected_macro_f1(labels, 0.0, multilabel=multilabel, num_classes=num_classes)
    if not 0.0 < target_f1 <= f_hi + 1e-12:
        raise DebiaskitError(f"target F1 {target_f1} is outside (0, {f_hi:.4f}] for these labels")
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if expected_macro_f1(labels, mid, multilabel=multilabel, num_classes=num_classes) > target_f1:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def interpolate_monotone(f1: Sequence[float], leakage: Sequence[float], at: float) -> tuple[float, bool]:
    """Read a leakage(F1) curve at ``at`` robustly (the paper does not say how; this is one explicit choice).

    The noisy points are replaced by their isotonic (non-decreasing in F1, since fewer mistakes cannot
    leak less in expectation) least-squares fit; the fit is interpolated linearly and clipped at the ends.
    Returns ``(value, extrapolated)``; input order does not matter and repeated F1 values are pooled.
    """
    from sklearn.isotonic import IsotonicRegression

    x = np.asarray(f1, np.float64)
    y = np.asarray(leakage, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) == 0:
        raise DebiaskitError("the leakage curve has no finite points")
    if len(x) == 1:
        return float(y[0]), bool(at != x[0])
    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x, y)
    return float(iso.predict([at])[0]), bool(at < x.min() or at > x.max())


# ----------------------------------------------------------------------------------------------- core
def _as_array(x: Any, what: str = "labels") -> np.ndarray:
    try:
        a = np.asarray(x)
    except ValueError:
        raise DebiaskitError(f"{what}: label vectors of inconsistent widths (ragged rows)") from None
    if a.dtype == object:
        raise DebiaskitError(f"{what}: label vectors of inconsistent widths (ragged rows)")
    return a


def holdout_split(protected: Any, *, seed: int = 0) -> list[np.ndarray]:
    """Fixed 60/20/20 % train/val/test index split stratified by the protected attribute (seeded)."""
    g, _ = as_group_codes(protected, what="data")
    return _split_holdout(len(g), g, seed)


def _split_holdout(n: int, g: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, 7919])
    parts: list[list[np.ndarray]] = [[], [], []]
    for v in range(int(g.max()) + 1):
        idx = rng.permutation(np.flatnonzero(g == v))
        a, b = int(round(0.6 * len(idx))), int(round(0.8 * len(idx)))
        for j, sl in enumerate((idx[:a], idx[a:b], idx[b:])):
            parts[j].append(sl)
    return [np.sort(np.concatenate(p)) for p in parts]


def _prepare(x: Any, protected: Any, val: Split | None, test: Split | None, *, seed: int,
             num_classes: int | None, is_labels: bool) -> tuple[list[np.ndarray], list[np.ndarray], bool, str]:
    if (val is None) != (test is None):
        raise DebiaskitError("give both val and test splits, or neither (then a 60/20/20 split is made)")
    if val is None:
        g_all, _ = as_group_codes(protected, what="data")
        xa = _as_array(x)
        if len(xa) != len(g_all):
            raise DebiaskitError(f"{len(xa)} label rows but {len(g_all)} protected values")
        parts = _split_holdout(len(g_all), g_all, seed)
        xs = [xa[p] for p in parts]
        gs = [g_all[p] for p in parts]
        how = "random 60/20/20 split stratified by the protected attribute"
    else:
        xs = [x, val[0], test[0]]
        raw = [np.asarray(protected).reshape(-1), np.asarray(val[1]).reshape(-1), np.asarray(test[1]).reshape(-1)]
        codes, n_groups = as_group_codes(np.concatenate(raw), what="protected (all splits)")
        vals = np.unique(np.concatenate(raw))
        cuts = np.cumsum([len(r) for r in raw])[:-1]
        gs = np.split(codes, cuts)
        for name, r in zip(("train", "val", "test"), gs):
            cnt = np.bincount(r, minlength=n_groups)
            if cnt.min() < 2:
                raise DebiaskitError(
                    f"{name}: too few samples to balance the protected groups: "
                    + ", ".join(f"{c} with value {v}" for v, c in zip(vals, cnt)) + " (need at least 2 per group)"
                )
        how = "given train/val/test splits"
    if is_labels:
        feats, multilabel = encode_labels(xs, num_classes=num_classes)
    else:
        feats = []
        for name, a in zip(("train", "val", "test"), xs):
            a = np.asarray(a, np.float32)
            if a.ndim != 2:
                raise DebiaskitError(f"{name}: model outputs must be 2-D (N, K), got shape {a.shape}")
            feats.append(a)
        if len({f.shape[1] for f in feats}) > 1:
            raise DebiaskitError("model output vectors of inconsistent widths: " +
                                 ", ".join(str(f.shape[1]) for f in feats))
        multilabel = True
    for name, f, g in zip(("train", "val", "test"), feats, gs):
        if len(f) != len(g):
            raise DebiaskitError(f"{name}: {len(f)} label rows but {len(g)} protected values")
    return feats, gs, multilabel, how


def _draw(gs: list[np.ndarray], sizes: Any, rounds: int, rng: np.random.Generator
          ) -> tuple[list[np.ndarray], dict[str, int]]:
    req = resolve_sizes(sizes)
    idx, per_group = [], {}
    for name, g, k in zip(("train", "val", "test"), gs, req):
        ii, kk = balanced_indices(g, k, rounds=rounds, rng=rng, what=name)
        idx.append(ii)
        per_group[name] = kk
    return idx, per_group


def _run(xs: list[np.ndarray], ys: list[np.ndarray], *, multilabel: bool, cfg: AttackerConfig, seed: int,
         device: str, n_out: int = 2, progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = [torch.as_tensor(a).to(device) for a in xs]
    yt = [torch.as_tensor(a, dtype=torch.long).to(device) for a in ys]
    run = train_attackers(t[0], yt[0], t[1], yt[1], t[2], yt[2], multilabel=multilabel, config=cfg, seed=seed,
                          n_out=n_out, progress=progress)
    return (run.test_accuracy.numpy().astype(np.float64), run.val_accuracy.numpy().astype(np.float64),
            run.best_epoch.numpy())


def _config(cfg: AttackerConfig, **extra: Any) -> dict[str, Any]:
    d = asdict(cfg)
    d.update(extra)
    d["version"] = __version__
    return d


def _result(test_acc: np.ndarray, val_acc: np.ndarray, ep: np.ndarray, per_group: dict[str, int],
            config: dict[str, Any], n_groups: int = 2) -> LeakageResult:
    # folding (0.5 + |acc - 0.5|) is the paper's binary definition; with G > 2 groups: plain accuracy
    leak = folded_accuracy(test_acc) if n_groups == 2 else np.asarray(test_acc, np.float64)
    return LeakageResult(mean=float(leak.mean()), std=float(leak.std()), per_round=[float(v) for v in leak],
                         test_accuracy=[float(v) for v in test_acc], val_accuracy=[float(v) for v in val_acc],
                         best_epoch=[int(v) for v in ep], per_group=per_group, config=config)


def _leakage(x: Any, protected: Any, *, val: Split | None, test: Split | None, num_classes: int | None,
             is_labels: bool, sizes: Any, rounds: int, seed: int, device: str, cfg: AttackerConfig,
             transform: Any = None, extra: dict[str, Any], progress: ProgressFn | None = None) -> LeakageResult:
    if rounds < 1:
        raise DebiaskitError(f"rounds must be >= 1, got {rounds}")
    feats, gs, multilabel, how = _prepare(x, protected, val, test, seed=seed, num_classes=num_classes,
                                          is_labels=is_labels)
    if transform is not None:
        feats = [transform(f) for f in feats]
    rng = np.random.default_rng(seed)
    idx, per_group = _draw(gs, sizes, rounds, rng)
    xs = [f[i] for f, i in zip(feats, idx)]
    ys = [g[i] for g, i in zip(gs, idx)]
    ml_arch = multilabel if is_labels else extra.get("multilabel_outputs", True)
    n_groups = int(max(int(g.max()) for g in gs)) + 1
    test_acc, val_acc, ep = _run(xs, ys, multilabel=ml_arch, cfg=cfg, seed=seed, device=device, n_out=n_groups,
                                 progress=progress)
    conf = _config(cfg, rounds=rounds, seed=seed, sizes_requested=list(resolve_sizes(sizes)), splits=how,
                   data_fingerprint=fingerprint_arrays(*feats, *gs),
                   depth_used=cfg.resolved_depth(ml_arch), n_features=int(feats[0].shape[1]), n_groups=n_groups,
                   chance=1.0 / n_groups, folded=n_groups == 2, **extra)
    return _result(test_acc, val_acc, ep, per_group, conf, n_groups)


# ------------------------------------------------------------------------------------------ public API
def dataset_leakage(
    labels: Any, protected: Any, *, val: Split | None = None, test: Split | None = None,
    num_classes: int | None = None, sizes: Any = None, rounds: int = 5, seed: int = 0, device: str = "cpu",
    config: AttackerConfig | None = None, progress: ProgressFn | None = None,
) -> LeakageResult:
    """λ_D: leakage of the protected attribute through ground-truth labels (Wang et al., ICCV 2019, §3).

    Args:
        labels: train labels, ``(N,)`` class ids (single-label → one-hot) or ``(N, K)`` multi-hot.
        protected: train protected attribute (exactly two values).
        val, test: ``(labels, protected)`` of the selection / evaluation splits; both ``None`` → one
            60/20/20 stratified split of the given data.
        sizes: per-group subset sizes ``(train, val, test)``, a preset ``"coco"``/``"imsitu"``, or ``None``
            (as many as balance allows); larger requests are capped to what is available.
        rounds: independent rounds (re-drawn subsets, re-initialised attacker); paper 5.
        config: attacker hyper-parameters (:class:`AttackerConfig`; paper defaults, 100 epochs).
        progress: optional ``progress(done_epochs, total_epochs)`` callback, called after every attacker epoch.
    """
    cfg = config or AttackerConfig()
    return _leakage(labels, protected, val=val, test=test, num_classes=num_classes, is_labels=True, sizes=sizes,
                    rounds=rounds, seed=seed, device=device, cfg=cfg, extra={"input": "ground-truth labels"},
                    progress=progress)


_OUTPUT_KINDS = ("logits", "probabilities", "thresholded")


def _output_transform(kind: str, multilabel: bool) -> Any:
    if kind == "logits":
        return None
    if kind == "probabilities":
        if multilabel:
            return lambda a: (1.0 / (1.0 + np.exp(-a))).astype(np.float32)
        return lambda a: torch.softmax(torch.as_tensor(a), -1).numpy()
    if multilabel:
        return lambda a: (a > 0).astype(np.float32)  # sigmoid(a) >= 0.5 ⇔ a >= 0 (ties measure zero)
    return lambda a: np.eye(a.shape[1], dtype=np.float32)[a.argmax(1)]


def model_leakage(
    outputs: Any, protected: Any, *, val: Split | None = None, test: Split | None = None,
    multilabel: bool = True, kind: str = "logits", sizes: Any = None, rounds: int = 5, seed: int = 0,
    device: str = "cpu", config: AttackerConfig | None = None, progress: ProgressFn | None = None,
) -> LeakageResult:
    """λ_M: leakage through a model's output vectors (Wang et al., ICCV 2019, §3; ``docs/leakage.md``).

    ``outputs`` are ``(N, K)`` raw scores. ``kind``: ``"logits"`` (paper: pre-activation potentials),
    ``"probabilities"`` (sigmoid for multi-label, softmax for single-label) or ``"thresholded"`` (sigmoid
    ≥ 0.5 multi-hot / argmax one-hot). ``multilabel`` also picks the attacker depth (4 vs 5 Linear layers).
    The choice is recorded in ``result.config["output_kind"]``. ``progress`` as in :func:`dataset_leakage`.
    """
    if kind not in _OUTPUT_KINDS:
        raise DebiaskitError(f"unknown output kind {kind!r}; valid: {', '.join(_OUTPUT_KINDS)}")
    cfg = config or AttackerConfig()
    return _leakage(outputs, protected, val=val, test=test, num_classes=None, is_labels=False, sizes=sizes,
                    rounds=rounds, seed=seed, device=device, cfg=cfg, transform=_output_transform(kind, multilabel),
                    extra={"input": "model outputs", "output_kind": kind, "multilabel_outputs": multilabel},
                    progress=progress)


def leakage_at_f1(
    labels: Any, protected: Any, *, val: Split | None = None, test: Split | None = None,
    model_f1: float | None = None, grid: Sequence[float] | None = None, f1_grid: Sequence[float] | None = None,
    num_classes: int | None = None, sizes: Any = None, rounds: int = 5, seed: int = 0, device: str = "cpu",
    config: AttackerConfig | None = None, progress: ProgressFn | None = None,
) -> tuple[LeakageCurve, float | None, bool]:
    """λ_D(F1): leakage of randomly perturbed ground truth, read at the model's macro-F1 (Wang et al. 2019, §3).

    For every perturbation level p (``grid``; or ``f1_grid`` of target F1 values converted by
    :func:`perturbation_for_f1` on the train labels; default: the official grid for the label type) and
    every round, the balanced train/val/test subsets are perturbed (:func:`perturb_labels`), the F1 of the
    perturbed vs. true val labels is recorded, and an attacker is trained on the perturbed labels. All
    (p, round) attackers train together as one batched model.

    Returns ``(curve, λ_D(model_f1) or None, extrapolated)``. ``progress`` as in :func:`dataset_leakage`.
    """
    cfg = config or AttackerConfig()
    if rounds < 1:
        raise DebiaskitError(f"rounds must be >= 1, got {rounds}")
    if val is None and test is None:
        g_all, _ = as_group_codes(protected, what="data")
        parts = _split_holdout(len(g_all), g_all, seed)
        lab = _as_array(labels)
        raw = [lab[p] for p in parts]
        gs = [g_all[p] for p in parts]
        how = "random 60/20/20 split stratified by the protected attribute"
    else:
        _, gs, _, how = _prepare(labels, protected, val, test, seed=seed, num_classes=num_classes, is_labels=True)
        raw = [np.asarray(labels), np.asarray(val[0]), np.asarray(test[0])]  # type: ignore[index]
    _, multilabel = encode_labels(raw, num_classes=num_classes)
    k = raw[0].shape[1] if multilabel else (num_classes or max(int(r.max()) + 1 for r in raw))
    mode = "bitflip" if multilabel else "replace"
    if f1_grid is not None:
        ps = [perturbation_for_f1(raw[0], f, multilabel=multilabel, num_classes=k) for f in f1_grid]
    else:
        ps = list(grid if grid is not None else (COCO_FLIP_GRID if multilabel else IMSITU_REPLACE_GRID))
    if not ps:
        raise DebiaskitError("empty perturbation grid")
    rng = np.random.default_rng(seed)
    idx, per_group = _draw(gs, sizes, rounds, rng)
    xs: list[list[np.ndarray]] = [[], [], []]
    ys: list[list[np.ndarray]] = [[], [], []]
    f1s = np.zeros((len(ps), rounds))
    for a, p in enumerate(ps):
        for s in range(3):
            true = raw[s][idx[s]]  # (rounds, n[, K])
            pert = perturb_labels(true, p, multilabel=multilabel, num_classes=k, rng=rng)
            if s == 1:
                f1s[a] = macro_f1(true, pert, multilabel=multilabel)
            enc = pert.astype(np.float32) if multilabel else np.eye(k, dtype=np.float32)[pert]
            xs[s].append(enc)
            ys[s].append(gs[s][idx[s]])
    stacked = [np.concatenate(v, 0) for v in xs]
    ystacked = [np.concatenate(v, 0) for v in ys]
    n_groups = int(max(int(g.max()) for g in gs)) + 1
    test_acc, _, _ = _run(stacked, ystacked, multilabel=multilabel, cfg=cfg, seed=seed, device=device, n_out=n_groups,
                          progress=progress)
    leak = (folded_accuracy(test_acc) if n_groups == 2 else test_acc).reshape(len(ps), rounds)
    curve = LeakageCurve(
        p=[float(v) for v in ps], f1_mean=[float(v) for v in f1s.mean(1)], f1_std=[float(v) for v in f1s.std(1)],
        leakage_mean=[float(v) for v in leak.mean(1)], leakage_std=[float(v) for v in leak.std(1)], mode=mode,
        config=_config(cfg, rounds=rounds, seed=seed, splits=how, per_group=per_group,
                       depth_used=cfg.resolved_depth(multilabel), f1_measured_on="val (perturbed vs true)",
                       interpolation="isotonic non-decreasing fit, linear, clipped"),
    )
    if model_f1 is None:
        return curve, None, False
    value, extrap = curve.at(float(model_f1))
    return curve, value, extrap


def amplification(model: LeakageResult, curve: LeakageCurve, model_f1: float) -> dict[str, Any]:
    """Bias amplification Δ = λ_M(F1) − λ_D(F1) (Wang et al. 2019), with its ingredients."""
    lam_d, extrap = curve.at(float(model_f1))
    return {
        "lambda_M": model.mean, "lambda_M_std": model.std, "model_f1": float(model_f1),
        "lambda_D_at_F1": lam_d, "extrapolated": extrap, "delta": model.mean - lam_d,
        "curve": curve.to_dict(),
    }
