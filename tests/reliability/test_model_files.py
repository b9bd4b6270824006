"""Model files: verified on load; every problem is one DebiaskitError naming the file; payloads never run."""

from __future__ import annotations

import hashlib
import warnings

import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.train.checkpoint import UnverifiedFileWarning, load_model, save_model, sidecar_path

from reliability._faults import garble, payload_pickle, payload_torch, truncate  # noqa: E402


def weights() -> dict:
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p)
    return net.state_dict()


def test_round_trip_is_exact_and_verified(tmp_path):
    sd = weights()
    p = save_model(tmp_path / "model_last.pt", sd)
    assert sidecar_path(p).read_text().split() == [hashlib.sha256(p.read_bytes()).hexdigest(), "model_last.pt"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a verified file loads without any warning
        got = load_model(p)
    assert list(got) == list(sd) and all(torch.equal(got[k], sd[k]) for k in sd)


@pytest.mark.parametrize("damage, needle", [
    ("garble", "SHA-256 mismatch"),
    ("truncate", "SHA-256 mismatch"),
    ("empty", "SHA-256 mismatch"),
    ("bad_sidecar", "unreadable checksum file"),
])
def test_damaged_model_file_is_one_line_error_naming_it(tmp_path, damage, needle):
    p = save_model(tmp_path / "model_best.pt", weights())
    {"garble": lambda: garble(p, size=256), "truncate": lambda: truncate(p), "empty": lambda: p.write_bytes(b""),
     "bad_sidecar": lambda: sidecar_path(p).write_bytes(b"\xff\xfe garbage")}[damage]()
    with pytest.raises(DebiaskitError) as ei:
        load_model(p)
    msg = str(ei.value)
    assert str(p) in msg and needle in msg and "\n" not in msg


@pytest.mark.parametrize("damage, needle", [("truncate", "truncated"), ("empty", "empty"), ("text", "not a PyTorch")])
def test_file_without_sidecar_that_cannot_load_is_an_error(tmp_path, damage, needle):
    p = save_model(tmp_path / "model_last.pt", weights())
    sidecar_path(p).unlink()
    {"truncate": lambda: truncate(p), "empty": lambda: p.write_bytes(b""),
     "text": lambda: p.write_text("hello")}[damage]()
    with pytest.raises(DebiaskitError, match="cannot be loaded") as ei, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(p)
    assert str(p) in str(ei.value) and needle in str(ei.value)


def test_older_file_without_sidecar_loads_with_a_warning_or_is_refused_on_request(tmp_path):
    sd = weights()
    p = tmp_path / "model_last.pt"
    torch.save(sd, p)  # how debiaskit < checksums wrote model files
    with pytest.warns(UnverifiedFileWarning, match="no checksum file"):
        got = load_model(p)
    assert torch.equal(got["0.weight"], sd["0.weight"])
    with pytest.raises(DebiaskitError, match="refusing to load it unverified"):
        load_model(p, require_checksum=True)


@pytest.mark.parametrize("kind", ["pickle", "torch"])
@pytest.mark.parametrize("with_sidecar", [False, True])
def test_payload_in_a_model_file_never_runs(tmp_path, kind, with_sidecar):
    marker = tmp_path / "PAYLOAD_RAN"
    p = tmp_path / "model_last.pt"
    data = payload_pickle(marker) if kind == "pickle" else payload_torch(marker)
    p.write_bytes(data)
    if with_sidecar:  # an attacker who also forges the checksum
        sidecar_path(p).write_text(f"{hashlib.sha256(data).hexdigest()}  {p.name}\n")
    with pytest.raises(DebiaskitError) as ei, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(p)
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)
    assert not marker.exists()


def test_missing_model_file(tmp_path):
    with pytest.raises(DebiaskitError, match="not found"):
        load_model(tmp_path / "model_x.pt")


def test_non_dict_model_file_is_refused(tmp_path):
    p = save_model(tmp_path / "m.pt", weights())
    data = __import__("io").BytesIO()
    torch.save([torch.zeros(1)], data)
    p.write_bytes(data.getvalue())
    sidecar_path(p).write_text(hashlib.sha256(data.getvalue()).hexdigest() + "  m.pt\n")
    with pytest.raises(DebiaskitError, match="not a model state_dict"):
        load_model(p)
