"""Packed within-type blocks compute only their groups' own frame products: the same cells, bit for
bit, as the whole tile they used to compute (blocks._diagonal_tile)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probes.abx_engine import blocks, score, small
from probes.abx_engine.distances import frame_distance_tile


def many_small_groups(seed: int, quantised: bool):
    """{file: [T, 6]} and items: 3 speakers x 4 contexts x 3 phones, 1 to 5 frames an item, so that
    within-type groups hold a few items each and blocks pack many of them; ``quantised`` features
    take a few values only, so that many distances tie."""
    rng = np.random.default_rng(seed)
    features, rows = {}, []
    for f in range(6):
        lengths = rng.integers(1, 6, 40)
        total = int(lengths.sum())
        array = rng.integers(-2, 3, (total, 6)) if quantised else rng.standard_normal((total, 6))
        array[rng.random(total) < 0.05] = 0.0  # some all-zero frames
        features[f"f{f}"] = array.astype(np.float32)
        start = 0
        for k, length in enumerate(lengths):
            rows.append({"file": f"f{f}", "onset": start * 0.02, "offset": (start + length) * 0.02,
                         "phone": "abc"[rng.integers(3)], "prev": "pqrs"[k % 4], "next": "x",
                         "speaker": f"s{f % 3}"})  # fmt: skip
            start += int(length)
    return features, pd.DataFrame(rows)


def whole_tile(frames, offsets, group_start, distance, kernels):
    """The tile as it was: every product between the block's frames."""
    rows = frames[offsets[0] : offsets[-1]]
    return frame_distance_tile(rows, rows, distance, kernels)


@pytest.mark.filterwarnings("ignore::probes.abx_engine.slicing.DroppedItemsWarning")
@pytest.mark.parametrize("seed,quantised", [(0, False), (1, True), (2, True)])
@pytest.mark.parametrize("distance", ["angular", "cosine"])
@pytest.mark.parametrize("compat", [None, "librilight"])
def test_packed_blocks_give_the_whole_tiles_cells(monkeypatch, seed, quantised, distance, compat):
    features, items = many_small_groups(seed, quantised)
    options = dict(speaker="within", context="within", distance=distance, compat=compat)
    monkeypatch.setattr(small, "SMALL_WORK", -1)  # the Numba path, whose blocks are packed
    calls = []
    original = blocks._diagonal_tile
    monkeypatch.setattr(blocks, "_diagonal_tile", lambda *a: calls.append(1) or original(*a))
    result = score(features, items, **options)
    assert calls  # some blocks were packed
    monkeypatch.setattr(blocks, "_diagonal_tile", whole_tile)
    before = score(features, items, **options)
    pd.testing.assert_frame_equal(result.cells, before.cells)
    assert float(result) == float(before)
    np.testing.assert_array_equal(result.files.correct2, before.files.correct2)


def test_euclidean_and_across_blocks_keep_whole_tiles(monkeypatch):
    features, items = many_small_groups(0, False)
    monkeypatch.setattr(small, "SMALL_WORK", -1)
    monkeypatch.setattr(blocks, "_diagonal_tile", None)  # would fail if called
    score(features, items, distance="euclidean")
    score(features, items, speaker="across")
