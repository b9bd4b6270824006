"""The bootstrap engine's shared representation: sample orders, ordered counts, sub-blocks, cell counts read
off an order, and the two layouts of the official KL — each checked against a plain re-computation."""

import importlib

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from debiaskit.metrics import (
    average_precision,
    bias_amplification_cvpr21,
    bootstrap,
    bootstrap_many,
    deo,
    score_kl,
)
from debiaskit.metrics import _batched as B
from debiaskit.metrics.kl import _hists_in_order, histogram_like_numpy

BS = importlib.import_module("debiaskit.metrics.bootstrap")


def _data(n, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    g = (rng.random(n) < 0.45).astype(np.int64)
    y = (rng.random(n) < 0.3 + 0.3 * g).astype(np.int64)
    s = 1 / (1 + np.exp(-(1.5 * (2 * y - 1) + 0.4 * g + rng.normal(size=n))))
    if ties:
        s = np.round(s, 2)
    return y, s, g, (s > 0.5).astype(np.int64)


def _counts_of_int32_draws(n, n_boot, seed):
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=np.int32)
    return np.stack([np.bincount(r, minlength=n) for r in idx])


@pytest.mark.parametrize("n", [7, 300, 5000])
def test_resamples_are_the_int32_index_stream_whatever_the_blocking(monkeypatch, n):
    ref = _counts_of_int32_draws(n, 23, seed=5)
    got = np.concatenate([R.W for R in BS.resample_blocks(n, 23, seed=5)])
    np.testing.assert_array_equal(got, ref)
    monkeypatch.setattr(BS, "_DRAW_ELEMENTS", n * 3 + 1)  # other draw calls, other blocks, reused buffer
    monkeypatch.setattr(BS, "_BLOCK_ELEMENTS", n * 5)
    monkeypatch.setattr(BS, "_MIN_BLOCK_ROWS", 1)
    blocks = [R.W.copy() for R in BS._resample_blocks(n, 23, seed=5, ws=B.Workspace())]
    assert len(blocks) > 1
    np.testing.assert_array_equal(np.concatenate(blocks), ref)


def test_a_count_above_255_is_recounted_exactly():
    class Stub:  # draws sample 0 in every position of the first row
        def integers(self, low, high, size, dtype):
            idx = np.random.default_rng(0).integers(low, high, size=size).astype(dtype)
            idx[0] = 0
            return idx

    n = 300
    W = BS._draw_counts(Stub(), np.empty((3, n), np.uint8), draw_rows=2)
    assert W.dtype == np.int32 and W[0, 0] == n and W[0].sum() == n
    assert (W.sum(1) == n).all()


def test_sample_order_is_a_stable_sort_by_major_then_decreasing_score():
    rng = np.random.default_rng(0)
    score = np.round(rng.random(400), 1)  # many ties
    for major in (rng.integers(0, 3, 400), rng.integers(-500, 500, 400)):  # radix path, lexsort path
        o = B.SampleOrder(major, score)
        np.testing.assert_array_equal(o.perm, np.lexsort((-score, major)))
        np.testing.assert_array_equal(o.desc, np.argsort(-score, kind="stable"))
    a = B.SampleOrder.get(np.array([1, 0, 1], dtype=np.int8), [0.2, 0.5, 0.1])
    b = B.SampleOrder.get(np.array([1, 0, 1], dtype=np.int64), np.array([0.2, 0.5, 0.1]))
    assert a is b and a.key == B.SampleOrder.key_of([1, 0, 1], [0.2, 0.5, 0.1])
    assert a.segment(0) == (0, 1) and a.segment(1) == (1, 3)


@pytest.mark.parametrize("dtype,top", [(np.uint8, 9), (np.int64, 40_000), (np.uint16, 7), (np.float64, 2)])
def test_ordered_counts_and_masked_cumsums(dtype, top):
    rng = np.random.default_rng(1)
    n = 50
    W = rng.integers(0, 3, (4, n)).astype(dtype)
    W[0, 0] = top  # a row total at or above 2**15 needs int32 sums
    order = B.SampleOrder(rng.integers(0, 2, n), rng.random(n))
    R = B.Resamples(W, ws=B.Workspace())
    oc = R.ordered(order)
    assert R.ordered(order) is oc and R.cached_ordered(order.key) is oc and not oc.has_C
    Wo = W[:, order.perm]
    np.testing.assert_array_equal(oc.W, Wo)
    np.testing.assert_array_equal(oc.C, np.concatenate([np.zeros((4, 1)), np.cumsum(Wo, 1)], 1))
    assert oc.has_C and oc.C.dtype == (np.int16 if top < 2**15 else np.int32)
    mask = (rng.random(n) < 0.5).astype(np.uint8)
    Wm, Cm = oc.masked(mask, B.mask_key(mask))
    np.testing.assert_array_equal(Cm[:, 1:], np.cumsum(Wo * mask, 1))


def test_gather_cols_equals_take():
    rng = np.random.default_rng(2)
    cols = rng.integers(0, 30, 17)
    for dt in (np.uint8, np.int16, np.int32, np.float64, bool):
        A = (rng.random((3, 30)) * 9).astype(dt)
        out = np.empty((3, 17), dt)
        np.testing.assert_array_equal(B.gather_cols(A, cols, out=out), np.take(A, cols, axis=1))
    A = rng.random((3, 60))[:, ::2]  # not contiguous: NumPy's take
    np.testing.assert_array_equal(B.gather_cols(A, cols, out=np.empty((3, 17))), np.take(A, cols, axis=1))


def test_workspace_reuses_and_grows_buffers():
    ws = B.Workspace()
    a = ws.get("x", (2, 3), np.int32)
    b = ws.get("x", (3, 2), np.int32)
    assert np.shares_memory(a, b)
    c = ws.get("x", (4, 4), np.int32)
    assert c.shape == (4, 4) and not np.shares_memory(a, c)
    assert not np.shares_memory(ws.get("x", (2,), np.float64), c)  # one buffer per dtype


def _bincount_rows(codes, W, n_cells):
    return np.stack([np.bincount(codes, weights=w, minlength=n_cells) for w in W.astype(np.float64)])


@pytest.mark.parametrize("build_C", [True, False])
def test_cell_counts_read_off_an_order_equal_bincount(build_C):
    y, s, g, p = _data(3000, seed=3)
    R = next(BS.resample_blocks(3000, 9, seed=1))
    order = B.SampleOrder.get(1 - y, s)
    codes = (g * 2 + y) * 2 + p  # piecewise along the order once split by group (p = s > 0.5)
    cells = B.CellIndex(codes, 8)
    plan = cells._plan(order)
    assert plan is not None and plan.mask is not None
    S = B.Resamples(R.W)
    oc = S.ordered(order)
    if build_C:
        oc.C  # noqa: B018 - AP would have built it
    np.testing.assert_array_equal(cells(S), _bincount_rows(codes, R.W, 8))
    assert oc.has_C == build_C  # the cell counts did not need the full cumulative sums
    # codes constant on runs of the order need no mask
    plain = B.CellIndex(1 - y, 2)
    assert plain._plan(order).mask is None
    np.testing.assert_array_equal(plain(S), _bincount_rows(1 - y, R.W, 2))
    # codes that are not piecewise along the order: counted by matmul
    scattered = B.CellIndex(np.random.default_rng(0).integers(0, 8, 3000), 8)
    assert scattered._plan(order) is None
    np.testing.assert_array_equal(scattered(S), _bincount_rows(scattered.codes, R.W, 8))


def test_official_kl_histograms_in_both_layouts_equal_numpy():
    y, s, g, _ = _data(800, seed=4, ties=True)
    W = next(BS.resample_blocks(800, 12, seed=2)).W
    W[3] = 0
    W[3, np.flatnonzero((y == 1) & (g == 0))[0]] = 5  # one subset is a single value, the others empty
    st = score_kl.batched.prepare(y, s, sensitive_features=g, mode="official", reduction="none")
    for lay, build_C in ((st.official.shared, False), (st.official.shared, True), (st.official.own, True)):
        oc = B.Resamples(W).ordered(lay.order)
        if build_C:
            oc.C  # noqa: B018 - group 0 is then read as all minus group 1 (shared layout)
        h = _hists_in_order(lay, oc)
        for k, (cls, grp) in enumerate([(1, 0), (1, 1), (0, 0), (0, 1)]):
            idx = np.flatnonzero((y == cls) & (g == grp))
            np.testing.assert_array_equal(h[:, k], histogram_like_numpy(s[idx], W[:, idx]))


def test_official_kl_alone_or_after_ap_gives_the_same_values():
    y, s, g, p = _data(2500, seed=5, ties=True)
    kw = {"sensitive_features": g, "mode": "official", "reduction": "none"}
    alone = bootstrap(score_kl, y, s, n_boot=40, seed=3, **kw)
    many = bootstrap_many({"kl": (score_kl, (y, s), kw), "ap": (average_precision, (y, s), {})}, n_boot=40, seed=3)
    np.testing.assert_array_equal(many["kl"].values, alone.values)
    np.testing.assert_array_equal(many["kl"].point, alone.point)  # the point value while AP's order is alive
    np.testing.assert_array_equal(alone.point, score_kl(y, s, **kw))


def test_values_do_not_depend_on_job_order_or_sub_block_size(monkeypatch):
    y, s, g, p = _data(4000, seed=6)
    sf = {"sensitive_features": g}
    jobs = {"deo": (deo, (y, p), sf), "ba": (bias_amplification_cvpr21, (y, p), sf),
            "kl": (score_kl, (y, s), {**sf, "mode": "official", "reduction": "none"}),
            "ap": (average_precision, (y, s), {})}
    ref = {k: r.values for k, r in bootstrap_many(jobs, n_boot=30, seed=1).items()}
    alone = {k: bootstrap(fn, *a, n_boot=30, seed=1, **kw).values for k, (fn, a, kw) in jobs.items()}
    for k in jobs:
        np.testing.assert_array_equal(ref[k], alone[k])
    for sub in (1, 3 * 4000, 7 * 4000):  # sub-blocks of 2 (the minimum), 3 and 7 rows
        monkeypatch.setattr(B, "SUB_ELEMENTS", sub)
        got = bootstrap_many(dict(reversed(list(jobs.items()))), n_boot=30, seed=1)
        for k in jobs:
            np.testing.assert_array_equal(got[k].values, ref[k])


def test_ap_on_sub_blocks_matches_sklearn_and_a_lone_row(monkeypatch):
    y, s, _, _ = _data(600, seed=7, ties=True)
    W = next(BS.resample_blocks(600, 5, seed=0)).W
    st = average_precision.batched.prepare(y, s)
    full = average_precision.batched.evaluate(st, B.Resamples(W))
    for r in range(5):
        idx = np.repeat(np.arange(600), W[r])
        assert full[r] == pytest.approx(average_precision_score(y[idx], s[idx]), abs=1e-13)
        # a single row is summed as a row of a multi-row block: the same bits
        assert average_precision.batched.evaluate(st, B.Resamples(W[r : r + 1]))[0] == full[r]


def test_engine_results_do_not_alias_scratch_memory():
    y, s, g, p = _data(1000, seed=8)
    first = bootstrap(average_precision, y, s, n_boot=20, seed=0)
    kept = first.values.copy()
    bootstrap(deo, y, p, sensitive_features=g, n_boot=20, seed=9)
    np.testing.assert_array_equal(first.values, kept)
