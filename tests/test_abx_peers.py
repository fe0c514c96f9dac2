"""Cases from the peers: fastabx's regression test, libri-light's DTW and zero-frame unit tests, and the
two slicing rules of docs/abx.md."""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.abx_engine import DroppedItemsWarning, Ragged, SliceError, score
from probes.abx_engine.distances import frame_distance_tile, prepare_frames
from probes.abx_engine.kernels import dtw_pair
from probes.abx_engine.slicing import _exact_round, slice_items

# fastabx tests/test_regression.py, computed by fastabx on its own synthetic set.
FASTABX_EXPECTED = {"euclidean": 0.4913194353381793, "angular": 0.4809027786056201}


def fastabx_regression_set() -> tuple[Ragged, pd.DataFrame]:
    """36 pooled items (one 6-d vector each), phones a/b/c, speakers s1..s3, contexts c1/c2."""
    features = np.random.default_rng(2026).standard_normal((36, 6)).astype(np.float32)
    names = [f"item{i}" for i in range(36)]
    items = pd.DataFrame(
        {
            "file": names,
            "onset": 0.0,
            "offset": 0.02,  # one frame at 50 Hz
            "phone": ["a", "b", "c"] * 12,
            "speaker": ["s1"] * 12 + ["s2"] * 12 + ["s3"] * 12,
            "context": ["c1", "c2"] * 18,
        }
    )
    return Ragged.from_lengths(features, [1] * 36, names), items


@pytest.mark.parametrize("distance", ["euclidean", "angular", "cosine"])
def test_fastabx_regression_case(distance):
    """on=phone, by=context, across=speaker, collapsed over speaker: fastabx's pinned values.

    fastabx's "cosine" is the angular distance; with one vector per item our cosine (1 - u.v) orders
    every triplet as the angular one does, so it gives the same value.
    """
    features, items = fastabx_regression_set()
    result = score(
        features, items, on="phone", by=["context"], across=["speaker"], distance=distance
    )
    expected = FASTABX_EXPECTED["euclidean" if distance == "euclidean" else "angular"]
    # fastabx keeps cell scores and level means in float32: rounding the same way gives its exact bits
    assert result.collapse(levels=["speaker"], dtype=np.float32) == expected
    assert result.collapse(levels=["speaker"]) == pytest.approx(expected, abs=1e-7)


def test_librilight_dtw_unit_case():
    """libri-light's testDTWFunction: euclidean frames, expected [sqrt(2)/2, 3/4, (2 + sqrt(2))/3]."""
    xs = [
        np.array([[0, 1], [0, 0], [1, 1]], np.float32),
        np.array([[0, 2], [0, 1], [1, 1], [-1, 0]], np.float32),
        np.array([[0, 0], [0, 1]], np.float32),
    ]
    y = np.array([[0, 1], [1, 2], [0, 0]], np.float32)
    expected = [math.sqrt(2) / 2, 3 / 4, (2 + math.sqrt(2)) / 3]
    for x, want in zip(xs, expected, strict=True):
        dist = frame_distance_tile(x, y, "euclidean")
        d_xy, _ = dtw_pair(dist, 0, len(x), 0, len(y), np.empty((4, 4)))
        assert d_xy == pytest.approx(want, abs=1e-6)


def test_librilight_zero_frame_quirk_in_compat_mode():
    """libri-light's testCosineNormalized: an all-zero frame is at distance 1 from the others, 0 from zero."""
    x = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, -1, 0], [0.5, -0.5, 0.5, -0.5]], np.float32)
    y = np.array([[-0.5, -0.5, -0.5, 0.5], [0, 0, 0, 0], [0, 1, 0, 0]], np.float32)
    both, _ = prepare_frames(np.concatenate([x, y]), np.arange(8), "angular", None, compat=True)
    dist = frame_distance_tile(both[:4], both[4:], "angular")
    expected = [[2 / 3, 1, 0.5], [1, 0, 1], [1 / 3, 1, 0.5], [2 / 3, 1, 2 / 3]]
    np.testing.assert_allclose(dist, expected, atol=1e-4)


def test_default_mode_zero_frame_is_the_all_ones_direction():
    frames = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], np.float32)
    unit, _ = prepare_frames(frames, np.arange(4), "angular", None, compat=False)
    dist = frame_distance_tile(unit, unit, "angular")
    assert dist[0, 1] == pytest.approx(0, abs=2e-4)  # the same direction as (1, 1, 1, 1)
    assert dist[0, 2] == pytest.approx(math.acos(0.5) / math.pi, abs=1e-6)


def one_file(n_frames: int, onsets: list[str], offsets: list[str]) -> tuple[Ragged, pd.DataFrame]:
    features = Ragged(np.ones((n_frames, 2), np.float32), [0, n_frames], ["f"])
    items = pd.DataFrame(
        {
            "file": "f",
            "onset": [float(t) for t in onsets],
            "offset": [float(t) for t in offsets],
            "onset_text": onsets,
            "offset_text": offsets,
            "line": range(2, 2 + len(onsets)),
        }
    )
    items.attrs["path"] = "x.item"
    return features, items


def test_default_slicing_is_exact_decimal_arithmetic():
    # 0.29 * 50 - 0.5 = 14.0 exactly: ceil 14. In doubles 0.29 * 50 = 14.499999999999998 and the
    # same formula gives ceil(13.999999999999998) = 14 too, but 0.01 * 50 - 0.5 = 0 exactly while
    # floor(0.01 * 50 - 0.5) + 1 in doubles is 1: only decimal arithmetic is right on every boundary.
    features, items = one_file(40, ["0.29", "0.015", "0.3"], ["0.31", "0.055", "0.7"])
    slices = slice_items(items, features, 50)
    assert slices.start.tolist() == [14, 1, 15]  # ceil(14.0), ceil(0.25), ceil(14.5)
    assert (slices.start + slices.length).tolist() == [
        16,
        3,
        35,
    ]  # floor(15.0)+1, floor(2.25)+1, floor(34.5)+1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 6)), min_size=1, max_size=20),
    st.sampled_from([50.0, 100.0, 16000 / 320, 33.3, 1000.0]),
)
def test_default_slicing_in_doubles_agrees_with_decimal_arithmetic(times, frequency):
    """The fast rule (doubles, decimals only next to half a frame) is the exact decimal one."""
    texts = [f"{mantissa / 10**digits:.{digits}f}" for mantissa, digits in times]
    items = pd.DataFrame({"onset": [float(t) for t in texts], "onset_text": texts})
    f = Decimal(repr(frequency))
    for rounding, name in ((ROUND_CEILING, "ceil"), (ROUND_FLOOR, "floor")):
        expected = [
            int((Decimal(t) * f - Decimal("0.5")).to_integral_value(rounding)) for t in texts
        ]
        assert _exact_round(items, "onset", frequency, rounding).tolist() == expected, name


def test_default_slicing_refuses_out_of_range_and_empty_items_naming_the_line():
    features, items = one_file(10, ["0.0", "0.1"], ["0.1", "0.3"])
    with pytest.raises(SliceError, match=r"x.item:3: .*file has 10 frames"):
        slice_items(items, features, 50)
    features, items = one_file(10, ["0.0", "0.1"], ["0.1", "0.105"])
    with pytest.raises(SliceError, match=r"x.item:3: .*empty"):
        slice_items(items, features, 50)


def test_librilight_slicing_drops_the_last_frame_and_empty_items_with_a_count():
    features, items = one_file(10, ["0.0", "0.1", "0.15", "0.18"], ["0.1", "0.12", "0.3", "0.19"])
    with pytest.warns(DroppedItemsWarning, match="dropped 2 of 4 items"):
        slices = slice_items(items, features, 50, compat="librilight")
    assert slices.rows.tolist() == [0, 2]  # [5, floor(5.5)) and [9, floor(9)) are empty
    assert slices.start.tolist() == [0, 7]  # ceil(-0.5) = 0 (max 0), ceil(7.0) = 7
    assert slices.length.tolist() == [4, 3]  # floor(4.5) = 4; min(10, floor(14.5)) = 10


def test_compat_mode_reports_dropped_items():
    features, items = fastabx_regression_set()
    features = Ragged.from_lengths(np.repeat(features.data, 2, axis=0), [2] * 36, features.names)
    items["offset"] = 0.04  # default: frames [0, 2); librilight: [0, 1)
    items.loc[:5, "offset"] = 0.02  # default: [0, 1); librilight: [0, 0), dropped
    default = score(features, items, on="phone", by=["context"], across=["speaker"])
    assert default.meta["dropped_items"] == 0
    with pytest.warns(DroppedItemsWarning, match="dropped 6 of 36"):
        result = score(
            features, items, on="phone", by=["context"], across=["speaker"], compat="librilight"
        )
    assert result.meta["dropped_items"] == 6 and result.meta["n_items"] == 30
    items.loc[:5, ["onset", "offset"]] = [0.011, 0.019]  # shorter than a frame: an error by default
    with pytest.raises(SliceError, match="empty"):
        score(features, items, on="phone", by=["context"], across=["speaker"])
