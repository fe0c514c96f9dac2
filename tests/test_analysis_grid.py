"""analysis.grid: one value per (epoch, layer), cached beside the run, computed only where missing.

The run here is hand-made: randomly initialised tiny models saved as real checkpoints (so that
training.load_model and training.checkpoint_id are the real ones), probed with a cheap user callable
whose calls are counted through a file (the dask workers are other processes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch
import xarray as xr

from analysis.gridding.driver import cache_path, grid, stack
from analysis.gridding.registry import make_spec
from training.model import SSLVGS
from training.run.checkpoints import save_checkpoint
from training.run.config import config_to_dict, preset

# The probe callables below are defined in this test module, which dask workers cannot import.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

EPOCHS = (1, 2, 3)


def save_random_checkpoint(path: Path, seed: int, epoch: int) -> None:
    torch.manual_seed(seed)
    model_cfg, _ = preset("tiny", num_layers=3, layer_use=2)
    model = SSLVGS(model_cfg)
    payload = {
        "model_config": config_to_dict(model_cfg),
        "model": model.state_dict(),
        "epoch": epoch,
    }
    save_checkpoint(path, payload)


def make_run(folder: Path) -> Path:
    for epoch in EPOCHS:
        save_random_checkpoint(
            folder / "checkpoints" / f"epoch_{epoch:04d}.pt", seed=epoch, epoch=epoch
        )
    (folder / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "stage": 0, "loss_av": 1.0}) + "\n" for e in EPOCHS)
    )
    return folder


@pytest.fixture(scope="module")
def hand_made_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "random")


@pytest.fixture
def run(hand_made_run: Path, tmp_path: Path) -> Path:
    """A fresh copy of the hand-made run, with no cache yet."""
    import shutil

    return Path(shutil.copytree(hand_made_run, tmp_path / "run"))


def layer_norm(model, layer: int, *, calls: str, seconds: float = 0.5) -> float:
    """Mean of the first feature of `layer` on a fixed random waveform; logs each call to `calls`."""
    with open(calls, "a") as log:
        log.write(f"{layer}\n")
    wav = torch.from_numpy(np.random.default_rng(0).standard_normal(int(16000 * seconds))).float()
    with torch.inference_mode():
        states, _ = model.hidden_states(wav[None])
    return float(states[layer][..., 0].mean())


def count(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_grid_has_a_value_per_epoch_and_layer(run: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    result = grid(run, layer_norm, calls=str(calls), progress=False)
    assert result.dims == ("epoch", "layer")
    assert result.epoch.values.tolist() == list(EPOCHS)
    assert result.layer.values.tolist() == [0, 1, 2, 3]  # feature encoder + 3 layers
    assert result.attrs["probe"] == "layer_norm" and json.loads(result.attrs["options"])["calls"]
    import training

    model = training.load_model(run / "checkpoints" / "epoch_0002.pt")
    expected = layer_norm(model, 3, calls=str(tmp_path / "other.txt"))
    assert float(result.sel(epoch=2, layer=3)) == pytest.approx(expected)


def test_second_call_computes_nothing(run: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    first = grid(run, layer_norm, calls=str(calls), progress=False)
    assert count(calls) == len(EPOCHS) * 4
    again = grid(run, layer_norm, calls=str(calls), progress=False)
    assert count(calls) == len(EPOCHS) * 4
    xr.testing.assert_identical(first, again)
    # The log file named in the options changed under the grid: still one cache, keyed by its name.
    assert len(list((run / "analysis").glob("grid-*.nc"))) == 1


def test_only_missing_cells_are_computed(run: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    grid(run, layer_norm, epochs=[1, 2], layers=[0, 1], calls=str(calls), progress=False)
    assert count(calls) == 4
    full = grid(run, layer_norm, calls=str(calls), progress=False)
    assert count(calls) == 4 + (3 * 4 - 4)  # the 8 cells not yet measured
    assert not full.isnull().any()


def test_other_options_are_another_cache(run: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    short = grid(run, layer_norm, epochs="last", calls=str(calls), seconds=0.5, progress=False)
    long = grid(run, layer_norm, epochs="last", calls=str(calls), seconds=1.0, progress=False)
    assert count(calls) == 8 and not np.allclose(short.values, long.values)
    assert len(list((run / "analysis").glob("grid-layer_norm-*.nc"))) == 2


def test_replaced_checkpoint_is_measured_again(run: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    before = grid(run, layer_norm, calls=str(calls), progress=False)
    save_random_checkpoint(run / "checkpoints" / "epoch_0002.pt", seed=99, epoch=2)
    after = grid(run, layer_norm, calls=str(calls), progress=False)
    assert count(calls) == 12 + 4  # only epoch 2, at every layer
    xr.testing.assert_equal(before.sel(epoch=[1, 3]), after.sel(epoch=[1, 3]))
    assert not np.allclose(before.sel(epoch=2), after.sel(epoch=2))


def test_cache_file_is_named_by_probe_and_options(run: Path, tmp_path: Path) -> None:
    options = {"calls": str(tmp_path / "calls.txt")}
    grid(run, layer_norm, epochs=[1], layers=[0], progress=False, **options)
    spec = make_spec(layer_norm, options)
    with xr.open_dataset(cache_path(run, spec), engine="scipy") as cached:
        assert cached.attrs["probe"] == "layer_norm"
        assert cached.done.sum() == 1
    assert not list((run / "analysis").glob(".*"))  # no temp file left behind


def test_dask_path_equals_serial(run: Path, hand_made_run: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    serial = grid(hand_made_run, layer_norm, calls=str(tmp_path / "serial.txt"), progress=False)
    calls = tmp_path / "dask.txt"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        parallel = grid(run, layer_norm, client=client, calls=str(calls), progress=False)
    assert count(calls) == 12
    # Workers run 1 thread, this process 2: float32 reductions may add in another order, so a mean of
    # O(1) features near 0 can differ in its last bits (1.9e-8 seen at 0.0076); nothing else may.
    np.testing.assert_allclose(parallel.values, serial.values, rtol=1e-6, atol=1e-7)
    assert parallel.checkpoint.values.tolist() == serial.checkpoint.values.tolist()
    again = grid(run, layer_norm, calls=str(calls), progress=False)  # the dask run filled the cache
    assert count(calls) == 12 and again.equals(parallel)


def test_abx_cache_key_follows_the_item_file_content(tmp_path: Path) -> None:
    items = tmp_path / "items.item"
    items.write_text(
        "#file onset offset #phone prev-phone next-phone speaker\na 0.0 0.1 p s s s1\n"
    )
    first = make_spec("abx", {"items": str(items), "speaker": "within"})
    assert first.key == make_spec("abx", {"items": items, "speaker": "within"}).key
    assert first.key != make_spec("abx", {"items": str(items), "speaker": "across"}).key
    items.write_text(items.read_text() + "b 0.0 0.1 p s s s1\n")
    assert first.key != make_spec("abx", {"items": str(items), "speaker": "within"}).key


def test_stack_gives_run_epoch_layer(run: Path, tmp_path: Path) -> None:
    calls = str(tmp_path / "calls.txt")
    a = grid(run, layer_norm, calls=calls, progress=False)
    b = a.isel(epoch=slice(0, 2)) * 2
    stacked = stack({"a": a, "b": b})
    assert stacked.dims == ("run", "epoch", "layer")
    assert stacked.sel(run="b", epoch=3).isnull().all()
    np.testing.assert_allclose(stacked.sel(run="b", epoch=1), 2 * a.sel(epoch=1))


def test_bad_requests_are_clear_errors(run: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for epoch\(s\) \[7\]"):
        grid(run, layer_norm, epochs=[7], calls=str(tmp_path / "c"), progress=False)
    with pytest.raises(ValueError, match="unknown probe 'nope'"):
        grid(run, "nope", progress=False)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        grid(tmp_path, layer_norm, progress=False)
