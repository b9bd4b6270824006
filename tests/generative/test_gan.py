"""Small GAN trainer: runs, writes grids/checkpoints, resumes to the same weights, adapters load it."""

from __future__ import annotations

import json

import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.generative.gan import Discriminator, GANConfig, Generator, load_gan_generator, train_gan
from debiaskit.generative.protocol import ModuleGenerator, check_output_shape, load_generator, to_uint8


def _images(n=96, c=3, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8)


def _cfg(**kw):
    base = dict(latent_dim=8, size=16, width_g=8, width_d=8, batch_size=16, steps=4, sample_every=2, ckpt_every=2, seed=3)
    base.update(kw)
    return GANConfig(**base)


@pytest.mark.parametrize("size,channels", [(28, 3), (32, 1), (64, 3)])
def test_architecture_shapes(size, channels):
    g = Generator(latent_dim=5, size=size, channels=channels, width=4)
    x = g(torch.randn(2, 5))
    assert x.shape == (2, channels, size, size) and x.abs().max() <= 1
    assert Discriminator(size=size, channels=channels, width=4)(x).shape == (2,)


def test_train_resume_identical(tmp_path):
    torch.set_num_threads(1)
    imgs = _images()
    full = train_gan(imgs, tmp_path / "full", config=_cfg())
    assert full["steps_done"] == 4
    assert (tmp_path / "full" / "samples" / "step_000002.png").is_file()
    assert (tmp_path / "full" / "samples" / "final.png").is_file()
    # interrupted after 2 steps, then resumed with the full budget
    train_gan(imgs, tmp_path / "part", config=_cfg(steps=2))
    res = train_gan(imgs, tmp_path / "part", config=_cfg())
    assert res["steps_done"] == 4
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    for key in ("G", "D", "G_ema"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    # a different configuration in the same directory is refused
    with pytest.raises(DebiaskitError, match="different configuration"):
        train_gan(imgs, tmp_path / "part", config=_cfg(latent_dim=9))
    log = [json.loads(l) for l in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 4


def test_adapters(tmp_path):
    imgs = _images()
    train_gan(imgs, tmp_path / "g", config=_cfg(steps=1))
    gen = load_generator(tmp_path / "g" / "checkpoint.pt")
    assert gen.latent_dim == 8 and gen.output_range == (-1.0, 1.0)
    z = torch.randn(5, 8)
    u8 = gen.generate_uint8(z)
    assert u8.dtype == torch.uint8 and u8.shape == (5, 3, 16, 16)
    assert torch.equal(u8, to_uint8(load_gan_generator(tmp_path / "g" / "checkpoint.pt")(z), (-1, 1)))
    # resizing adapter and shape check with both shapes in the message
    big = load_generator(tmp_path / "g" / "checkpoint.pt", out_size=32)
    assert big.output_shape() == (3, 32, 32)
    with pytest.raises(DebiaskitError, match=r"\(3, 16, 16\).*\(3, 64, 64\)"):
        check_output_shape(gen, (3, 64, 64))
    # TorchScript file with declared latent_dim / output_range
    class Lin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3 * 8 * 8)

        def forward(self, z):
            return torch.sigmoid(self.fc(z)).view(-1, 3, 8, 8)

    torch.jit.save(torch.jit.script(Lin()), str(tmp_path / "lin.pt"))
    with pytest.raises(DebiaskitError, match="declare"):
        load_generator(tmp_path / "lin.pt")
    ts = load_generator(tmp_path / "lin.pt", latent_dim=4, output_range=(0.0, 1.0))
    assert ts.generate(torch.randn(3, 4)).shape == (3, 3, 8, 8)
    # a pickled module file is never unpickled; the same module through python:MODULE:FACTORY works
    seq = torch.nn.Sequential(torch.nn.Linear(4, 3 * 8 * 8), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (3, 8, 8)))
    torch.save(seq, tmp_path / "mod.pt")
    with pytest.raises(DebiaskitError, match="Pickled nn.Module files are not loaded"):
        load_generator(tmp_path / "mod.pt", latent_dim=4, output_range=(0.0, 1.0))
    (tmp_path / "my_gen_pkg.py").write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(4, 192), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (3, 8, 8)))\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        m = load_generator("python:my_gen_pkg:make", latent_dim=4, output_range=(0.0, 1.0))
    finally:
        sys.path.remove(str(tmp_path))
    assert isinstance(m, ModuleGenerator) and m.output_shape() == (3, 8, 8)
    with pytest.raises(DebiaskitError, match="cannot import the generator factory"):
        load_generator("python:no_such_module_xyz:make", latent_dim=4, output_range=(0.0, 1.0))
    with pytest.raises(DebiaskitError, match="python:MODULE:FACTORY"):
        load_generator("python:justamodule", latent_dim=4, output_range=(0.0, 1.0))
    with pytest.raises(DebiaskitError, match="output_range"):
        ModuleGenerator(Lin(), latent_dim=4, output_range=(0.0, 255.0))
    with pytest.raises(DebiaskitError, match=r"z must have shape \(n, 4\)"):
        ts.generate(torch.randn(2, 5))


def test_bad_gan_inputs(tmp_path):
    with pytest.raises(DebiaskitError, match="size"):
        Generator(size=100)
    with pytest.raises(DebiaskitError, match="fewer than one batch"):
        train_gan(_images(n=4), tmp_path / "x", config=_cfg())
    with pytest.raises(DebiaskitError, match="uint8"):
        train_gan(torch.rand(40, 3, 16, 16), tmp_path / "y", config=_cfg())
