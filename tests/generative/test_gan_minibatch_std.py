"""The discriminator's optional minibatch standard-deviation feature (Karras et al., ICLR 2018, Sec. 3)."""

from __future__ import annotations

import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.generative.gan import Discriminator, GANConfig, train_gan


def _images(n=48, s=16, seed=0):
    return torch.randint(0, 256, (n, 3, s, s), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _cfg(**kw):
    base = dict(latent_dim=8, size=16, width_g=8, width_d=8, batch_size=16, steps=2, sample_every=0, ckpt_every=0,
                seed=1, flip=False)
    base.update(kw)
    return GANConfig(**base)


def test_extra_map_is_the_mean_batch_std_of_the_features():
    torch.manual_seed(0)
    d = Discriminator(size=16, channels=3, width=4, minibatch_std=True).eval()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        h = d.body(x)  # (5, 8, 4, 4)
        mean = h.mean(0, keepdim=True)
        s = ((h - mean) ** 2).mean(0).sqrt().mean()  # population std per element, averaged
        expected = d.fc(torch.cat([h, torch.full((5, 1, 4, 4), float(s))], 1).flatten(1)).squeeze(1)
        assert torch.allclose(d(x), expected, atol=1e-6)
        # identical images: the map is 0, so the score equals the linear layer on [h, 0]
        same = x[:1].expand(4, -1, -1, -1)
        h1 = d.body(same)
        zero = d.fc(torch.cat([h1, torch.zeros(4, 1, 4, 4)], 1).flatten(1)).squeeze(1)
        assert torch.allclose(d(same), zero, atol=1e-6)


def test_score_depends_on_the_rest_of_the_batch_only_with_the_option():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 16, 16)
    for flag in (False, True):
        torch.manual_seed(1)
        d = Discriminator(size=16, channels=3, width=4, minibatch_std=flag).eval()
        with torch.no_grad():
            alone = d(x[:3])
            mixed = d(torch.cat([x[:3], 10 * x[3:]]))[:3]
        assert torch.allclose(alone, mixed, atol=1e-6) is (not flag)


def test_trains_and_old_checkpoints_without_the_key_resume(tmp_path):
    torch.set_num_threads(1)
    imgs = _images()
    out = train_gan(imgs, tmp_path / "on", config=_cfg(minibatch_std=True))
    assert out["config"]["minibatch_std"] is True
    # a checkpoint written before the option existed has no such key: it resumes as minibatch_std=False
    train_gan(imgs, tmp_path / "old", config=_cfg())
    ck = torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=True)
    del ck["config"]["minibatch_std"]
    torch.save(ck, tmp_path / "old" / "checkpoint.pt")
    assert train_gan(imgs, tmp_path / "old", config=_cfg(steps=3))["steps_done"] == 3
    with pytest.raises(DebiaskitError, match="minibatch_std"):
        train_gan(imgs, tmp_path / "old", config=_cfg(steps=4, minibatch_std=True))
