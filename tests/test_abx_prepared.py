"""``prepare`` once, score many feature sets: each result is a fresh ``score`` call's, bit for bit.

A grid scores every layer of every checkpoint on one prepared item set and condition. Here several
random feature sets with the same frame counts (the layers) are scored on one preparation, in every
condition, both slicing modes, with and without subsampling, on the numpy path and the Numba kernels;
each must give the cells that ``score`` gives when it builds everything anew, and its bootstrap (whose
collapse plan and draws the results share) the interval of a fresh result.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from probes.abx_engine import DroppedItemsWarning, prepare, score, small
from probes.abx_engine.prepared import BUILDS

CONDITIONS = [(s, c) for s in ("within", "across") for c in ("within", "any", "across")]
SAMPLING = [{}, {"max_size_group": 2, "max_x_across": 1, "seed": 3}]


def _layers(seed=0, n_files=6, n_items=14, n_layers=3, dim=5):
    """n_layers feature sets over the same files and frame counts, and their item table."""
    rng = np.random.default_rng(seed)
    rows, lengths = [], {}
    for f in range(n_files):
        frames = rng.integers(1, 5, n_items)
        lengths[f"f{f}"] = int(frames.sum()) + 1
        bounds = np.concatenate([[0], np.cumsum(frames)])
        for k in range(n_items):
            rows.append(
                {"file": f"f{f}", "onset": round(bounds[k] * 0.02, 2),
                 "offset": round(bounds[k + 1] * 0.02, 2), "phone": "abcd"[rng.integers(4)],
                 "prev": "xy"[rng.integers(2)], "next": "z", "speaker": f"s{f % 3}"}
            )  # fmt: skip
    layers = [
        {name: rng.standard_normal((n, dim)).astype(np.float32) for name, n in lengths.items()}
        for _ in range(n_layers)
    ]
    return layers, pd.DataFrame(rows)


@pytest.mark.parametrize("numpy_path", [True, False])
@pytest.mark.parametrize("compat", [None, "librilight"])
@pytest.mark.parametrize("sampling", SAMPLING, ids=["exhaustive", "subsampled"])
@pytest.mark.parametrize(("speaker", "context"), CONDITIONS)
def test_prepared_scores_equal_fresh_scores(monkeypatch, speaker, context, sampling, compat,
                                            numpy_path):  # fmt: skip
    if not numpy_path:
        monkeypatch.setattr(small, "SMALL_WORK", -1)
    layers, items = _layers()
    options = dict(speaker=speaker, context=context, compat=compat, **sampling)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedItemsWarning)
        before = BUILDS["prepared"]
        prepared = prepare(items, layers[0], **options)
        results = [prepared.score(features) for features in layers]
        assert BUILDS["prepared"] == before + 1  # one build served every feature set
        for features, result in zip(layers, results, strict=True):
            fresh = score(features, items, **options)
            pd.testing.assert_frame_equal(result.cells, fresh.cells)
            assert float(result) == float(fresh)
            assert result.meta == fresh.meta
            ours = result.bootstrap(n_boot=30, seed=1)
            theirs = fresh.bootstrap(n_boot=30, seed=1)
            np.testing.assert_array_equal(ours.samples, theirs.samples)
    # The layers differ, so their errors do: nothing of one leaked into another.
    assert len({float(r) for r in results}) == len(results)


def test_features_must_have_the_prepared_frame_counts():
    layers, items = _layers()
    prepared = prepare(items, layers[0])
    shorter = dict(layers[1], f2=layers[1]["f2"][:-1])
    with pytest.raises(ValueError, match="'f2' have .* frames, not the"):
        prepared.score(shorter)
    with pytest.raises(FileNotFoundError, match="no features for file 'f3'"):
        prepared.score({k: v for k, v in layers[1].items() if k != "f3"})


def test_prepare_takes_frame_counts_alone():
    layers, items = _layers()
    counts = {name: len(frames) for name, frames in layers[0].items()}
    by_counts = prepare(items, counts, speaker="across", context="within")
    pd.testing.assert_frame_equal(
        by_counts.score(layers[2]).cells,
        score(layers[2], items, speaker="across", context="within").cells,
    )
