"""CLI: generative train-gan (few steps, resume) and augment input checks (one-line errors, exit 2)."""

from __future__ import annotations

import json

from debiaskit.cli import main


def test_train_gan_cli_and_augment_shape_error(tmp_path, shared_data, capsys):
    out = tmp_path / "gan"
    args = ["generative", "train-gan", "--dataset", "celeba64_mini", "--data-dir", str(shared_data),
            "--option", "size=16", "--size", "16", "--width", "4", "--latent-dim", "4", "--batch-size", "8",
            "--steps", "2", "--ckpt-every", "1", "--sample-every", "0", "--threads", "1", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps_done"] == 2 and (out / "checkpoint.pt").is_file()
    assert main([*args[:-4], "--steps", "3", "--out", str(out)]) == 0  # resumes to step 3
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps_done"] == 3
    # generator 16 px vs dataset 64 px: refused with both shapes, nothing written
    aug_out = tmp_path / "aug"
    rc = main(["augment", "--generator", str(out / "checkpoint.pt"), "--dataset", "celeba64_mini",
               "--data-dir", str(shared_data), "--target", "Smiling", "--out", str(aug_out)])
    err = capsys.readouterr().err
    assert rc == 2 and "(3, 16, 16)" in err and "(3, 64, 64)" in err and len(err.strip().splitlines()) == 1
    assert not aug_out.exists()
    rc = main(["augment", "--generator", str(tmp_path / "missing.pt"), "--dataset", "celeba64_mini",
               "--data-dir", str(shared_data), "--target", "Smiling", "--out", str(aug_out)])
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = main(["augment", "--generator", str(out / "checkpoint.pt"), "--dataset", "celeba64_mini",
               "--data-dir", str(shared_data), "--target", "Smile", "--out", str(aug_out)])
    assert rc == 2 and "unknown target attribute" in capsys.readouterr().err
