"""Read back a finished (or interrupted) run directory written by :func:`debiaskit.train.run_training`.

>>> run = load_run("runs/vanilla")                  # doctest: +SKIP
>>> run.config["method"], run.result["reported_selection"]
>>> logits = run.predict_logits("test")             # the model selected by the reported rule
>>> ds = run.splits["test"]                         # rebuilt from the recorded dataset options

The dataset is rebuilt from the recorded options and its fingerprint is checked against the one recorded
in ``result.json``, so predictions are never silently computed on different data.

:func:`classifier_from_run` turns a finished run into the attribute classifier (with its validation-F1
threshold) that labels generated images for latent-space augmentation (Ramaswamy et al., CVPR 2021).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from debiaskit.data.augment import make_batch_transform
from debiaskit.data.base import DatasetSplits
from debiaskit.data.generic import relocate_dataset
from debiaskit.errors import DebiaskitError
from debiaskit.generative.labelling import AttributeClassifier
from debiaskit.methods.base import Method
from debiaskit.train.checkpoint import load_model
from debiaskit.train.evaluate import predict_logits
from debiaskit.train.provenance import check_provenance
from debiaskit.train.seed import resolve_device
from debiaskit.train.trainer import build_data, build_method

__all__ = ["Run", "classifier_from_run", "load_run"]


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    result: dict[str, Any] | None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _methods: dict[str, Method] = field(default_factory=dict, repr=False)

    @cached_property
    def splits(self) -> DatasetSplits:
        splits = build_data(self.config)
        recorded = (self.result or {}).get("data", {}).get("fingerprint")
        if recorded and recorded != splits.fingerprint:
            raise DebiaskitError(
                f"the data rebuilt for {self.path} (fingerprint {splits.fingerprint}) differs from the data the run "
                f"used ({recorded}); check --data-dir / the MNIST source"
            )
        return splits

    def checkpoint_path(self, selection: str | None = None) -> Path:
        rule = selection or (self.result or {}).get("reported_selection") or "last"
        p = self.path / f"model_{rule}.pt"
        if not p.exists():
            have = sorted(q.stem.removeprefix("model_") for q in self.path.glob("model_*.pt"))
            raise DebiaskitError(f"{self.path} has no model for selection {rule!r}; available: {', '.join(have) or 'none'}")
        return p

    def method(self, selection: str | None = None) -> Method:
        """The trained method with the weights chosen by ``selection`` (default: the reported rule)."""
        p = self.checkpoint_path(selection)
        key = p.name
        if key not in self._methods:
            gen = torch.Generator(device=self.device)
            m = build_method(self.config, self.splits, self.device, gen)
            state = load_model(p, map_location=self.device)  # SHA-256 verified, tensors only
            try:
                m.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError, TypeError) as e:
                why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                raise DebiaskitError(f"model file {p} does not fit the run's configured model: {why}") from None
            m.eval()
            self._methods[key] = m
        return self._methods[key]

    def predict_logits(self, split: str, *, selection: str | None = None, batch_size: int = 2048) -> torch.Tensor:
        """Logits of the model chosen by ``selection`` (default: the reported rule) on split ``split``."""
        return predict_logits(self.method(selection), self.splits[split], device=self.device, batch_size=batch_size)


def load_run(path: str | Path, *, device: str = "cpu", data_dir: str | Path | None = None) -> Run:
    """Read a run directory; ``data_dir`` relocates its data (see :func:`debiaskit.data.generic.relocate_dataset`)."""
    p = Path(path)
    cfg_file = p / "config.yaml"
    if not cfg_file.is_file():
        raise DebiaskitError(f"{p} is not a debiaskit run directory (no config.yaml)")
    try:
        config = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise DebiaskitError(f"{cfg_file} is not a readable run config ({type(e).__name__}); the run directory is "
                             "damaged") from None
    if not isinstance(config, dict):
        raise DebiaskitError(f"{cfg_file} does not hold a run config mapping; the run directory is damaged")
    result_file = p / "result.json"
    result = None
    if result_file.exists():
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DebiaskitError(f"{result_file} is truncated or not JSON ({type(e).__name__}); re-run the training "
                                 "command to rewrite it") from None
        if not isinstance(result, dict):
            raise DebiaskitError(f"{result_file} does not hold a run result object; re-run the training command")
    check_provenance(result, config, where=str(p))  # a missing plugin / module is named in one line
    if data_dir is not None and isinstance(config.get("dataset"), dict):
        config["dataset"] = relocate_dataset(config["dataset"], data_dir)
    return Run(path=p, config=config, result=result, device=resolve_device(device))


def classifier_from_run(
    run_dir: str | Path,
    *,
    attribute: str | None = None,
    model_file: str | None = None,
    threshold_method: Literal["official", "exact"] = "official",
) -> AttributeClassifier:
    """Rebuild a trained baseline from a ``debiaskit train`` run directory and fit τ_F1 on its val split.

    Uses the model of the run's reported selection rule unless ``model_file`` (e.g. ``model_last.pt``) is given.
    The classifier scores uint8 images through the dataset's evaluation transform (Ramaswamy et al., CVPR 2021:
    hallucinated labels are 1[score > τ_F1], τ_F1 maximising F1 on the real validation set).
    """
    run = load_run(run_dir)
    if run.result is None:
        raise DebiaskitError(f"{run_dir} is not a finished debiaskit run (no result.json)")
    method = run.method(None if model_file is None else model_file.removeprefix("model_").removesuffix(".pt"))
    splits = run.splits
    if "val" not in splits:
        raise DebiaskitError(f"{run_dir}: its dataset has no val split to choose the F1 threshold on")
    val = splits["val"]
    clf = AttributeClassifier(
        attribute=attribute or str(val.info.get("target", run.config["dataset"].get("target", "target"))),
        predict=method.predict,
        transform=make_batch_transform(val.info, train=False),
        input_shape=val.image_shape,
    )
    clf.fit_threshold(val.images, val.targets, method=threshold_method)
    return clf
