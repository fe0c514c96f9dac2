"""The numpy path for small within-type jobs (probes/abx_engine/small.py) against the Numba kernels: same bits.

The engine picks the numpy path below ``small.SMALL_WORK`` frame pairs, so that a small job does not
pay for loading Numba; it must give exactly the counts the kernels give, ties included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.abx_engine import kernels, score, small
from probes.abx_engine.cells import build_layout
from probes.abx_engine.engine import make_condition
from probes.abx_engine.subsample import Subsampling

EDGES = [-2.0, -1.0, -0.9999999, -0.5, -0.0, 0.0, 1e-30, 0.5, 0.9999999, 1.0, 2.0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1.5, 1.5, width=32), min_size=1, max_size=300), st.integers(1, 7))
def test_frame_distances_are_the_kernels_bits(values, cols):
    dots = np.array(values + EDGES, np.float32)
    dots = np.resize(dots, (len(dots) + cols - 1) // cols * cols).reshape(-1, cols)
    for numpy_version, kernel in (
        (small.angular_from_dot, kernels.angular_from_dot),
        (small.cosine_from_dot, kernels.cosine_from_dot),
        (small.angular_from_dot, kernels.SERIAL.angular_from_dot),
    ):
        expected = dots.copy()
        kernel(expected)
        np.testing.assert_array_equal(numpy_version(dots), expected)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=6),
    st.lists(st.integers(0, 3), min_size=150, max_size=150),
)
def test_dtw_of_many_pairs_is_dtw_pair(shapes, values):
    """All pairs at once (padded to the largest) give each pair's d(x, y) and d(y, x) exactly."""
    n = np.array([s[0] for s in shapes])
    m = np.array([s[1] for s in shapes])
    pair = np.repeat(np.arange(len(n)), n * m)
    k = np.arange(len(pair)) - np.repeat(np.cumsum(n * m) - n * m, n * m)
    r, c = np.divmod(k, m[pair])
    dist = (np.resize(np.array(values, np.float32), len(pair)) / 4).astype(np.float32)
    cost = small._dtw_costs(dist, pair, r, c, n, m)
    total = cost[n, m, np.arange(len(n))]
    d_xy = total / small._path_lengths(cost, n, m, True)
    d_yx = total / small._path_lengths(cost, n, m, False)
    for p in range(len(n)):
        block = dist[pair == p].reshape(n[p], m[p])
        expected = kernels.dtw_pair(block, 0, n[p], 0, m[p], np.empty((5, 5)))
        assert (d_xy[p], d_yx[p]) == expected


@st.composite
def within_sets(draw):
    """(features, items): a few files of short items, frames from a small pool (ties), zeros."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    dim = draw(st.integers(1, 4))
    pool = rng.standard_normal((3, dim)).astype(np.float32)
    features, rows = {}, []
    for f in range(draw(st.integers(1, 4))):
        lengths = draw(st.lists(st.integers(1, 4), min_size=1, max_size=8))
        total = sum(lengths) + 1
        if draw(st.booleans()):
            frames = pool[rng.integers(0, len(pool), total)]
        else:
            frames = rng.standard_normal((total, dim)).astype(np.float32)
        frames[rng.random(total) < 0.1] = 0
        features[f"f{f}"] = frames
        start = 0
        for length in lengths:
            rows.append(
                {
                    "file": f"f{f}",
                    "onset": round(start * 0.02, 2),
                    "offset": round((start + length) * 0.02, 2),
                    "phone": draw(st.sampled_from("abc")),
                    "prev": draw(st.sampled_from("xy")),
                    "next": "z",
                    "speaker": f"s{f % 2}",
                }
            )
            start += length
    return features, pd.DataFrame(rows)


@pytest.mark.filterwarnings("ignore::probes.abx_engine.slicing.DroppedItemsWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=within_sets(),
    context=st.sampled_from(["within", "any"]),
    distance=st.sampled_from(["angular", "cosine"]),
    compat=st.sampled_from([None, "librilight"]),
    pooling=st.sampled_from([None, None, "mean"]),
)
def test_numpy_path_gives_the_kernels_cells(data, context, distance, compat, pooling):
    features, items = data
    options = dict(speaker="within", context=context, distance=distance, compat=compat)
    options["pooling"] = pooling
    try:
        fast = score(features, items, **options).cells
    except ValueError as err:  # no valid cell, or nothing left after compat's slicing
        with pytest.raises(type(err)):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(small, "SMALL_WORK", -1)
                score(features, items, **options)
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(small, "SMALL_WORK", -1)
        kernel = score(features, items, **options).cells
    pd.testing.assert_frame_equal(fast, kernel)


def test_which_jobs_take_the_numpy_path():
    items = pd.DataFrame(
        {
            "file": ["f"] * 4,
            "onset": [0.0, 0.02, 0.04, 0.06],
            "offset": [0.02, 0.04, 0.06, 0.08],
            "phone": ["a", "a", "b", "b"],
            "prev": "x",
            "next": "y",
            "speaker": "s",
        }
    )
    offsets = np.arange(5)
    within = build_layout(items.assign(context="x+y"), make_condition("within", "within"))
    across = build_layout(items.assign(context="x+y"), make_condition("across", "within"))
    assert small.eligible(within, offsets, "angular", Subsampling().active)
    assert small.eligible(within, offsets, "cosine", False)
    assert not small.eligible(within, offsets, "euclidean", False)  # its kernel sums in float64
    assert not small.eligible(within, offsets, "angular", True)  # subsampling: the kernels only
    assert not small.eligible(across, offsets, "angular", False)
