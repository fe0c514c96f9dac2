"""The analysis loop with no hand assembly (issue 23): a recall grid over epochs, paired_recall on
what probes.recall returns, the drift probe as analysis.grid documents it, a layer the model does not
have refused by name before any work."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import analysis
import probes
from analysis.gridding.driver import grid


@pytest.fixture
def run(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the session's tiny run (config.json, checkpoints), with no grid cache yet."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("analysis", "probes"))
    return copy


def test_recall_grid_is_epoch_by_direction_by_k_with_intervals(run: Path, small_corpus) -> None:
    from training.run.directory import run_corpus

    corpus = run_corpus(run) or small_corpus
    result = grid(run, "recall", split="test", k=(1, 5), corpus=corpus, bootstrap=50,
                  progress=False)  # fmt: skip
    assert result.dims == ("epoch", "direction", "k")
    assert result.k.values.tolist() == [1, 5]
    assert result.epoch.values.tolist() == sorted(analysis.checkpoints(run))
    assert {"low", "high"} <= set(result.coords)
    assert bool(((result.low <= result) & (result <= result.high)).all())
    last = probes.recall(run, "test", (1, 5), corpus, bootstrap=50, progress=False)
    np.testing.assert_allclose(result.isel(epoch=-1).values, last.values)
    cache = list((run / "analysis").glob("grid-recall-*.nc"))
    assert len(cache) == 1
    stamp = cache[0].stat().st_mtime_ns
    again = grid(run, "recall", split="test", k=(1, 5), corpus=corpus, bootstrap=50,
                 progress=False)  # fmt: skip
    assert cache[0].stat().st_mtime_ns == stamp  # read from the cache, nothing measured
    np.testing.assert_array_equal(again.values, result.values)


def test_paired_recall_takes_what_probes_recall_returns(run: Path) -> None:
    checkpoints = list(analysis.checkpoints(run).values())
    a = probes.recall(checkpoints[-1], "test", progress=False)
    b = probes.recall(checkpoints[0], "test", progress=False)
    comparison = analysis.paired_recall(a, b, names=("last", "first"), n_boot=100)
    assert comparison.units > 0 and comparison.verdict in analysis.paper.evidence.VERDICTS
    with pytest.raises(TypeError, match="probes.recall"):
        analysis.paired_recall(a.drop_attrs(), b, n_boot=10)


def test_drift_probe_is_cka_with_the_reference_epoch(run: Path) -> None:
    result = grid(run, "drift", epochs=[1, 3], layers=[0, 1], reference_epoch=1,
                  max_frames=500, progress=False)  # fmt: skip
    assert result.dims == ("epoch", "layer")
    np.testing.assert_allclose(result.sel(epoch=1).values, 1.0)  # the reference against itself
    assert np.isfinite(result.values).all() and (result.sel(epoch=3).values <= 1.0 + 1e-6).all()


def test_a_layer_the_model_lacks_is_refused_by_name_before_any_work(run: Path) -> None:
    with pytest.raises(ValueError, match=r"layer\(s\) \[13\] out of range: .* layers 0-"):
        grid(run, "abx", layers=[13], items="read", progress=False)
    assert not (run / "analysis").exists()  # nothing measured, nothing cached
