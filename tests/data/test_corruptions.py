"""The 20 Corrupted CIFAR-10 corruptions: contract, severity ordering, determinism, reference equivalences."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data as skdata
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as nd_zoom
from skimage.color import hsv2rgb, rgb2hsv

from debiaskit.data import corruptions as C
from debiaskit.errors import DataMissingError, DebiaskitError

DETERMINISTIC = {"Brightness", "Contrast", "Saturate", "JPEG", "Pixelate", "Gaussian Blur", "Defocus Blur",
                 "Zoom Blur", "Original"}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """48 natural 32x32 tiles cut from skimage's bundled photographs."""
    out = []
    for f in (skdata.astronaut, skdata.chelsea, skdata.coffee, skdata.rocket):
        im = cv2.resize(f(), (128, 96), interpolation=cv2.INTER_AREA)
        out += [im[r : r + 32, c : c + 32] for r in range(0, 96, 32) for c in range(0, 128, 32)]
    return np.ascontiguousarray(np.stack(out))


@pytest.fixture(scope="module")
def frost_dir(tmp_path_factory) -> str:
    """Six synthetic frost textures with the real file names (smooth bright noise)."""
    d = tmp_path_factory.mktemp("frost")
    rng = np.random.default_rng(0)
    for i, name in enumerate(C.FROST_FILES):
        h, w = 300 + 10 * i, 400 + 5 * i
        tex = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), (0, 0), 3)
        cv2.imwrite(str(d / name), tex // 2)  # values well inside [0, 128): little clipping after blending
    return str(d)


def _mad(y, x):
    return float(np.abs(y.astype(np.float64) - x).mean())


def _decorrelation(y, x):
    return 1.0 - float(np.corrcoef(y.ravel().astype(float), x.ravel().astype(float))[0, 1])


def _laplacian(y):
    return float(np.abs(cv2.Laplacian(y.reshape(-1, y.shape[2], 3).astype(np.float32), cv2.CV_32F)).mean())


def _saturation(y):
    return float(rgb2hsv(y.reshape(-1, y.shape[2], 3))[..., 1].mean())


# measure, chains of severities along which it must increase (non-strictly where the table repeats a value)
ORDER = {
    "Snow": (_mad, [[1, 2, 3, 4, 5]]),
    "Frost": (_decorrelation, [[1, 2, 3, 4, 5]]),  # frost/image weight ratio 0.2 .. 0.6
    "Fog": (_mad, [[1, 2, 3, 4, 5]]),
    "Brightness": (_mad, [[1, 2, 3, 4, 5]]),
    "Contrast": (_mad, [[1, 2, 3, 4, 5]]),
    "Spatter": (_mad, [[1, 2, 3], [4, 5]]),  # levels 1-3 water, 4-5 mud
    "Elastic": (lambda y, x: -_mad(y, x), [[1, 2, 3, 4, 5]]),  # the table's affine jitter shrinks with level
    "JPEG": (_mad, [[1, 2, 3, 4, 5]]),
    "Pixelate": (_mad, [[1, 2, 3, 4, 5]]),
    "Saturate": (lambda y, x: _saturation(y), [[2, 1, 3, 4, 5]]),  # factors 0.1 < 0.3 < 1.5 < 2 < 2.5
    "Gaussian Noise": (_mad, [[1, 2, 3, 4, 5]]),
    "Shot Noise": (_mad, [[1, 2, 3, 4, 5]]),
    "Impulse Noise": (_mad, [[1, 2, 3, 4, 5]]),
    "Speckle Noise": (_mad, [[1, 2, 3, 4, 5]]),
    "Gaussian Blur": (_mad, [[1, 2, 3, 4, 5]]),
    "Defocus Blur": (_mad, [[1, 2, 3, 4, 5]]),
    # sigma .05/.25/.4 with one shuffle pass, then .25/.4 with two: blur removes detail, passes add distortion
    "Glass Blur": (lambda y, x: -_laplacian(y), [[1, 2, 3], [4, 5]]),
    "Motion Blur": (_mad, [[1, 2, 3, 4, 5]]),  # levels 3, 4 ~equal: (6, 2), (8, 2) differ by taps < 1e-7
    "Zoom Blur": (_mad, [[1, 2, 3, 4, 5]]),
}


@pytest.fixture(scope="module")
def outputs(images, frost_dir):
    return {
        (n, s): C.apply_corruption(images, n, severity=s, seed=7, frost_dir=frost_dir)
        for n in C.corruption_names()
        for s in range(1, 6)
    }


def test_twenty_names_in_lff_order():
    assert C.TYPE0 == ("Snow", "Frost", "Fog", "Brightness", "Contrast", "Spatter", "Elastic", "JPEG",
                       "Pixelate", "Saturate")
    assert C.TYPE1 == ("Gaussian Noise", "Shot Noise", "Impulse Noise", "Speckle Noise", "Gaussian Blur",
                       "Defocus Blur", "Glass Blur", "Motion Blur", "Zoom Blur", "Original")
    assert len(set(C.corruption_names())) == 20
    assert set(C.SEVERITY_TABLES) == set(C.corruption_names())
    assert C.canonical_name("gaussian_noise") == "Gaussian Noise"
    assert C.canonical_name("jpeg_compression") == "JPEG"


@pytest.mark.parametrize("name", C.corruption_names())
def test_shape_dtype_range_and_single_image(name, images, outputs, frost_dir):
    for s in range(1, 6):
        y = outputs[(name, s)]
        assert y.dtype == np.uint8 and y.shape == images.shape
    one = C.apply_corruption(images[3], name, severity=3, seed=1, frost_dir=frost_dir)
    assert one.dtype == np.uint8 and one.shape == (32, 32, 3)
    assert C.apply_corruption(images[:0], name, severity=1, seed=0, frost_dir=frost_dir).shape == (0, 32, 32, 3)


@pytest.mark.parametrize("name", [n for n in C.corruption_names() if n != "Original"])
def test_severity_ordering(name, images, outputs):
    measure, chains = ORDER[name]
    vals = {s: measure(outputs[(name, s)], images) for s in range(1, 6)}
    assert min(_mad(outputs[(name, s)], images) for s in range(1, 6)) > 0.5, "every level must distort"
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            tol = 1e-3 if (name, a, b) == ("Motion Blur", 3, 4) else 0.0
            assert vals[b] > vals[a] - tol, (name, vals)


def test_original_is_identity(images, outputs):
    for s in range(1, 6):
        np.testing.assert_array_equal(outputs[("Original", s)], images)


def test_glass_blur_adds_distortion_with_second_pass(outputs, images):
    # same sigma, one vs two shuffle passes: levels 2 vs 4 (sigma .25) and 3 vs 5 (sigma .4)
    assert _mad(outputs[("Glass Blur", 4)], images) > _mad(outputs[("Glass Blur", 2)], images)
    assert _mad(outputs[("Glass Blur", 5)], images) > _mad(outputs[("Glass Blur", 3)], images)


@pytest.mark.parametrize("name", C.corruption_names())
def test_determinism_with_seed(name, images, frost_dir):
    x = images[:8]
    a = C.apply_corruption(x, name, severity=5, seed=123, frost_dir=frost_dir)
    b = C.apply_corruption(x, name, severity=5, rng=np.random.default_rng(123), frost_dir=frost_dir)
    np.testing.assert_array_equal(a, b)
    c = C.apply_corruption(x, name, severity=5, seed=124, frost_dir=frost_dir)
    if name in DETERMINISTIC:
        np.testing.assert_array_equal(a, c)
    else:
        assert not np.array_equal(a, c)


def test_bad_inputs(images, tmp_path):
    with pytest.raises(DebiaskitError, match="unknown corruption"):
        C.apply_corruption(images, "rain", severity=1, seed=0)
    with pytest.raises(DebiaskitError, match="severity"):
        C.apply_corruption(images, "Fog", severity=6, seed=0)
    with pytest.raises(DebiaskitError, match="uint8"):
        C.apply_corruption(images.astype(np.float32), "Fog", severity=1, seed=0)
    with pytest.raises(DataMissingError, match="frost1.png.*frost6.jpg"):
        C.apply_corruption(images, "Frost", severity=1, seed=0, frost_dir=tmp_path)
    (tmp_path / "frost1.png").write_bytes(b"")
    with pytest.raises(DataMissingError, match="missing in .*frost2.png") as e:
        C.apply_corruption(images, "Frost", severity=1, seed=0, frost_dir=tmp_path)
    assert "frost1.png," not in str(e.value).split("missing in")[1].split(";")[0]
    with pytest.raises(DataMissingError, match="lff"):
        C.apply_corruption(images, "Frost", severity=1, seed=0, frost_dir=None)


# ---------------------------------------------------------------------------------- reference equivalences
def test_hsv_helpers_match_skimage_round_trip(images):
    x = images[:12] / 255.0
    x[0, :4, :4] = 0.0  # black
    x[0, 4:8, 4:8] = 0.5  # grey (S = 0)
    for delta in (0.05, 0.3):
        ref = np.stack([hsv2rgb(np.dstack([h[..., 0], h[..., 1], np.clip(h[..., 2] + delta, 0, 1)]))
                        for h in map(rgb2hsv, x)])
        np.testing.assert_allclose(C.hsv_shift_value(x, delta), ref, atol=1e-12)
    for a, b in ((0.3, 0.0), (1.5, 0.0), (2.5, 0.2)):
        ref = np.stack([hsv2rgb(np.dstack([h[..., 0], np.clip(h[..., 1] * a + b, 0, 1), h[..., 2]]))
                        for h in map(rgb2hsv, x)])
        np.testing.assert_allclose(C.hsv_scale_saturation(x, a, b), ref, atol=1e-12)


@pytest.mark.parametrize("zoom", [1.0, 1.07, 1.25, 2.25])
def test_clipped_zoom_matches_scipy_zoom(images, zoom):
    x = (images[:6] / 255.0).astype(np.float32)
    h = 32
    ch = int(np.ceil(h / zoom))
    top = (h - ch) // 2
    ref = []
    for im in x:
        z = nd_zoom(im[top : top + ch, top : top + ch], (zoom, zoom, 1), order=1)
        t = (z.shape[0] - h) // 2
        ref.append(z[t : t + h, t : t + h])
    np.testing.assert_allclose(C._clipped_zoom(x, zoom), np.stack(ref), atol=1e-6)


def test_bilinear_reflect_matches_map_coordinates(images):
    x = (images[:4] / 255.0).astype(np.float32)
    rng = np.random.default_rng(0)
    rows = np.arange(32)[None, :, None] + rng.normal(0, 4, (4, 32, 32))
    cols = np.arange(32)[None, None, :] + rng.normal(0, 4, (4, 32, 32))
    ref = np.stack([np.stack([map_coordinates(x[i, :, :, c], [rows[i], cols[i]], order=1, mode="reflect")
                              for c in range(3)], -1) for i in range(4)])
    np.testing.assert_allclose(C.bilinear_sample_reflect(x, rows, cols), ref, atol=1e-6)


def test_glass_shuffle_equals_reference_loop_semantics(images):
    x = images[:3].copy()
    rng = np.random.default_rng(5)
    off = rng.integers(-1, 1, size=(2, 3, 30, 30))
    ref = x.copy()
    for b in range(3):
        img = ref[b]
        for h in range(31, 1, -1):  # the reference's range(32 - 1, 1, -1), same for w
            for w in range(31, 1, -1):
                dy, dx = off[0, b, h - 2, w - 2], off[1, b, h - 2, w - 2]
                img[h, w], img[h + dy, w + dx] = img[h + dy, w + dx], img[h, w]  # numpy views: a copy
    np.testing.assert_array_equal(C.glass_shuffle(x, off), ref)


def test_motion_blur_kernel_is_a_one_sided_normalised_line():
    k, (ax, ay) = C.motion_blur_kernel(6, 2.0, 0.0)
    assert k.shape == (1, 13) and (ax, ay) == (0, 0)
    assert abs(k.sum() - 1) < 1e-6 and np.all(np.diff(k[0]) < 0)  # decaying away from the anchor
    k, (ax, ay) = C.motion_blur_kernel(6, 2.0, 90.0)
    assert k.shape == (13, 1) and (ax, ay) == (0, 0)
    k, (ax, ay) = C.motion_blur_kernel(6, 2.0, -45.0)  # offsets round(0.707 i): 13 taps on 9 diagonal pixels
    assert k.shape == (9, 9) and (ax, ay) == (0, 8)
    assert np.count_nonzero(k) == 9 and np.count_nonzero(np.fliplr(k).diagonal()) == 9 and abs(k.sum() - 1) < 1e-6
    # a delta image leaves a trail on the side opposite to the blur direction
    img = np.zeros((32, 32), np.float32)
    img[16, 16] = 1.0
    out = C._motion_blur_one(img, 6, 2.0, 0.0)
    assert out[16, 16] > 0 and out[16, 10] > 0 and out[16, 20] == 0 and abs(out.sum() - 1) < 1e-5


def test_plasma_fractal_range_and_shape():
    p = C.plasma_fractal(3, mapsize=32, wibbledecay=3, rng=np.random.default_rng(0))
    assert p.shape == (3, 32, 32)
    assert np.allclose(p.min(axis=(1, 2)), 0) and np.allclose(p.max(axis=(1, 2)), 1)
    with pytest.raises(DebiaskitError, match="power of two"):
        C.plasma_fractal(1, mapsize=30, rng=np.random.default_rng(0))


def test_corrupt_by_label_is_independent_of_workers_and_chunking(images, frost_dir):
    labels = np.arange(len(images)) % 10
    a = C.corrupt_by_label(images, labels, C.TYPE0, severity=5, seed=3, frost_dir=frost_dir, progress=False,
                           chunk_size=4)
    b = C.corrupt_by_label(images, labels, C.TYPE0, severity=5, seed=3, frost_dir=frost_dir, progress=False,
                           chunk_size=4, workers=2)
    np.testing.assert_array_equal(a, b)
    # image i got corruption labels[i]: compare with the direct call on the same chunk
    pos = np.flatnonzero(labels == 3)[:4]
    direct = C.apply_corruption(images[pos], C.TYPE0[3], severity=5, rng=np.random.default_rng([3, 0, 3, 0]))
    np.testing.assert_array_equal(a[pos], direct)


def test_broken_pool_falls_back_to_in_process(images, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    labels = np.arange(len(images)) % 10
    ref = C.corrupt_by_label(images, labels, C.TYPE1, severity=2, seed=9, progress=False, chunk_size=8)

    def broken(tasks, where, out, done, bar, workers):
        out[where[0]] = C.corrupt_chunk(tasks[0])  # one chunk finished before the pool died
        done[0] = True
        raise BrokenProcessPool("a worker died")

    monkeypatch.setattr(C, "_run_pool", broken)
    got = C.corrupt_by_label(images, labels, C.TYPE1, severity=2, seed=9, progress=False, chunk_size=8, workers=2)
    np.testing.assert_array_equal(got, ref)
