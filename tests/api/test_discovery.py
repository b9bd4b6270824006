"""``methods list|info|rules``, ``models list``, plain-text ``datasets list``, ``train --help`` choices, lazy import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from debiaskit.cli import main
from debiaskit.commands.methods import plain_text


def _out(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_methods_list_names_labels_summary_and_paper(capsys):
    out = _out(capsys, "methods", "list")
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln and not ln.startswith(("METHOD", " ", "Papers", "labels", "Hyper"))}
    for name in ("vanilla", "lff", "disent", "groupdro", "adversarial"):
        assert name in rows
    assert "target, bias" in rows["groupdro"] and "target, bias" not in rows["lff"]
    assert "  lff: Nam et al., Learning from Failure, NeurIPS 2020" in out
    assert "  disent: Lee et al." in out and "  groupdro: Sagawa et al." in out
    assert "``" not in out and ":func:" not in out


def test_methods_info_shows_defaults_and_the_papers_values(capsys):
    out = _out(capsys, "methods", "info", "disent", "--dataset", "corrupted_cifar10", "--ratio", "0.005")
    assert "labels consumed: target" in out
    assert any(ln.split()[:2] == ["curr_step", "10000"] for ln in out.splitlines())
    assert "corrupted_cifar10 at ratio 0.005: lr=0.0005, lambda_dis=1" in out  # the official per-ratio script values
    resolved = out.split("Resolved for corrupted_cifar10 at ratio 0.005:")[1]
    assert any(ln.split() == ["lr", "0.0005", "method:ratio"] for ln in resolved.splitlines())
    assert main(["methods", "info", "lfff"]) == 2
    assert "unknown method 'lfff' (did you mean 'lff'?)" in capsys.readouterr().err


def test_rules_and_models_lists(capsys):
    out = _out(capsys, "methods", "rules")
    line = next(ln for ln in out.splitlines() if ln.startswith("oracle_test"))
    assert "test:target, test:bias" in line and "[oracle: test labels]" in line
    out = _out(capsys, "models", "list")
    assert "cnn64" in out and "resnet20" in out
    assert "torchvision:ARCH" in out and "timm:ARCH" in out and "python:MODULE:CLASS" in out


def test_datasets_list_is_plain_text(capsys):
    out = _out(capsys, "datasets", "list")
    for bad in ("``", ":func:", ":class:", "module docstring"):
        assert bad not in out
    assert "image_folder" in out and "options: data_dir=None, bias_from=subfolder" in out


def test_train_help_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "method name (default vanilla): adversarial, adversarial_image," in text and "lff" in text
    assert "dataset name: bffhq, celeba," in text and "image_folder" in text


@pytest.mark.parametrize("rst, plain", [
    ("Build :func:`~debiaskit.data.generic.build_csv` (see the module docstring).", "Build build_csv."),
    ("Uses ``model.features(x)`` and :class:`torch.nn.Module`.", "Uses model.features(x) and torch.nn.Module."),
    ("See `the paper <https://example.org>`_ for   details.", "See the paper for details."),
])
def test_plain_text(rst, plain):
    assert plain_text(rst) == plain


def test_import_debiaskit_does_not_import_torch():
    code = "import sys, debiaskit; assert 'torch' not in sys.modules; f = debiaskit.fit; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
