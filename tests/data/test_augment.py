import torch

from debiaskit.data.augment import make_batch_transform, random_crop_flip


def test_no_padding_no_flip_is_identity():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(random_crop_flip(x), x)


def test_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.randint(1, 256, (16, 3, 6, 6), dtype=torch.uint8)
    out = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        hits = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(padded[i, :, dy:dy + 6, dx:dx + 6], out[i])]
        assert hits


def test_flip_mirrors_columns():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.uint8).reshape(2, 1, 2, 3)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, flip=True, generator=g)
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))


def test_transform_scales_and_normalises():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    t = make_batch_transform({"normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}, train=False)
    assert torch.allclose(t(x), torch.full((2, 3, 4, 4), 2.0))
    assert make_batch_transform({}, train=True)(x).max() == 1.0
