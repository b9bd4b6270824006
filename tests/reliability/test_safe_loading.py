"""Safe loading: no loader of a user- or run-supplied file can run code from it.

Two layers: a scan of the source for unsafe loaders (``torch.load`` without ``weights_only=True``,
``yaml.load``, ``np.load(allow_pickle=True)``, bare ``pickle.load``), and payloads planted in every kind of
file a command loads, asserting that the payload's side effect never happens.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from debiaskit.errors import DebiaskitError

from reliability._faults import payload_pickle, payload_torch  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src" / "debiaskit"
#: deliberate, documented exceptions to safe loading: none
ALLOWED: set[tuple[str, str]] = set()
#: restricted unpicklers: subclasses of pickle.Unpickler whose find_class allows a fixed list of globals
RESTRICTED = {"data/unpickle.py", "data/cifar10_source.py"}


def _calls(text: str, name: str) -> list[str]:
    """The source text of every ``name(...)`` call (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        out.append(" ".join(text[m.start(): i + 1].split()))
    return out


def unsafe_loaders(skip: set[str] = frozenset()) -> list[str]:
    found = []
    for p in sorted(SRC.rglob("*.py")):
        rel = p.relative_to(SRC).as_posix()
        if rel in skip:
            continue
        text = p.read_text(encoding="utf-8")
        for call in _calls(text, "torch.load"):
            if "weights_only=True" not in call and (rel, call) not in ALLOWED:
                found.append(f"{rel}: {call}")
        for call in _calls(text, "yaml.load") + _calls(text, "yaml.unsafe_load") + _calls(text, "yaml.full_load"):
            found.append(f"{rel}: {call}")
        for call in _calls(text, "np.load"):
            if "allow_pickle=True" in call:
                found.append(f"{rel}: {call}")
        if rel not in RESTRICTED:
            for call in _calls(text, "pickle.load") + _calls(text, "pickle.loads") + _calls(text, "pickle.Unpickler"):
                found.append(f"{rel}: {call}")
    return found


def test_no_unsafe_loader_outside_the_trainer():
    assert unsafe_loaders(skip={"train/trainer.py"}) == []


def test_no_unsafe_loader_in_the_trainer():
    assert unsafe_loaders() == []


def test_the_scan_finds_what_it_looks_for(tmp_path, monkeypatch):
    import sys

    fake = tmp_path / "debiaskit"
    fake.mkdir()
    (fake / "bad.py").write_text("import torch, yaml, numpy as np\nx = torch.load(p,\n  weights_only=False)\n"
                                 "y = yaml.load(s)\nz = np.load(f, allow_pickle=True)\nimport pickle\npickle.loads(b)\n"
                                 "ok = torch.load(p, map_location='cpu', weights_only=True)\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    assert len(unsafe_loaders()) == 4


# ------------------------------------------------------------------------------- planted payloads
@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PAYLOAD_RAN"
    yield m
    assert not m.exists(), "a planted payload ran"


@pytest.mark.parametrize("maker", [payload_pickle, payload_torch])
def test_gan_checkpoint_payload(tmp_path, marker, maker):
    from debiaskit.generative.gan import load_gan_generator

    p = tmp_path / "checkpoint.pt"
    p.write_bytes(maker(marker))
    with pytest.raises(DebiaskitError, match="cannot read GAN checkpoint"):
        load_gan_generator(p)


@pytest.mark.parametrize("maker", [payload_pickle, payload_torch])
def test_generator_file_payload_is_never_unpickled(tmp_path, marker, maker):
    from debiaskit.generative.protocol import load_generator

    p = tmp_path / "g.pt"
    p.write_bytes(maker(marker))
    with pytest.raises(DebiaskitError, match="Pickled nn.Module files are not loaded"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_generator(p)


def test_augmentation_with_object_arrays_is_refused(tmp_path, marker):
    from debiaskit.generative.augment import load_augmentation

    d = tmp_path / "aug"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"kind": "debiaskit-latent-augmentation"}))
    obj = np.empty(1, dtype=object)
    obj[0] = __import__("reliability._faults", fromlist=["Payload"]).Payload(marker)
    np.savez(d / "augment.npz", images=obj)
    with pytest.raises((DebiaskitError, ValueError)):
        load_augmentation(d)


def test_label_pickle_payload_is_refused(tmp_path, marker):
    from debiaskit.data.unpickle import restricted_load

    p = tmp_path / "train.data"
    p.write_bytes(payload_pickle(marker))
    with pytest.raises(DebiaskitError, match="refusing to unpickle"):
        restricted_load(p)


def test_run_record_and_result_json_are_plain_json(tmp_path, marker):
    """JSON files cannot carry code; a record with a pickle inside is just an unreadable file."""
    from debiaskit.experiments.records import load_record

    p = tmp_path / "r.json"
    p.write_bytes(payload_pickle(marker))
    with pytest.raises(DebiaskitError, match="cannot read"):
        load_record(p)


def test_checkpoint_and_model_payloads_are_refused(tmp_path, marker):
    from debiaskit.train.checkpoint import load_checkpoint, load_model

    (tmp_path / "checkpoint.pt").write_bytes(payload_torch(marker))
    (tmp_path / "model_last.pt").write_bytes(payload_torch(marker))
    state, warns = load_checkpoint(tmp_path)
    assert state is None and len(warns) == 1
    with pytest.raises(DebiaskitError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(tmp_path / "model_last.pt")


def test_config_yaml_python_tags_are_refused(tmp_path, marker):
    from debiaskit.experiments.config import load_config_file
    from debiaskit.experiments.rundir import load_run

    evil = f"seed: !!python/object/apply:builtins.open ['{marker}', 'w']\n"
    (tmp_path / "c.yaml").write_text(evil)
    with pytest.raises(DebiaskitError, match="not valid YAML"):
        load_config_file(tmp_path / "c.yaml")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(evil)
    with pytest.raises(DebiaskitError, match="config.yaml"):
        load_run(run)


def test_weights_only_refuses_even_torch_files_with_a_valid_structure(tmp_path, marker):
    p = tmp_path / "x.pt"
    p.write_bytes(payload_torch(marker))
    with pytest.raises(Exception):
        torch.load(p, weights_only=True)
