"""A variant trained from its base run's switch checkpoint is read as one timeline: the base run's
epochs up to the switch, then the variant's. Hand-made run directories (metrics and empty
checkpoint files: only their names are read here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis.paper.study import RunSpec, epochs_to_probe, probe_epochs, stitch_grid, stitch_metrics
from analysis.runs import switch_epoch


def make_run(folder: Path, epochs: list[int], loss: float) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    for epoch in epochs:
        (folder / "checkpoints" / f"epoch_{epoch:04d}.pt").touch()
    rows = [{"epoch": e, "stage": 0, "loss_av": loss + e} for e in epochs]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return make_run(tmp_path / "vgs", [1, 2, 3, 4, 5], loss=0.0)


@pytest.mark.parametrize("own_epochs", [[3, 4, 5], [1, 2, 3]], ids=["numbered-on", "from-1"])
def test_variant_metrics_follow_the_base_up_to_the_switch(
    base: Path, tmp_path: Path, own_epochs: list[int]
) -> None:
    variant = make_run(tmp_path / "vgs-then-w2v2", own_epochs, loss=100.0)
    spec = RunSpec("(VGS,W2V2)", variant, base=base, switch=2)
    table = stitch_metrics(spec)
    assert table["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert table["loss_av"].tolist()[:2] == [1.0, 2.0]  # the base run's
    assert table["loss_av"].tolist()[2:] == [100.0 + e for e in own_epochs]  # the variant's
    assert switch_epoch(table) == 2


def test_variant_grid_is_stitched_the_same_way(base: Path, tmp_path: Path) -> None:
    variant = make_run(tmp_path / "vgs-then-w2v2", [3, 4, 5], loss=0.0)
    spec = RunSpec("(VGS,W2V2)", variant, base=base, switch=2)
    layers = {"layer": [0, 1]}
    base_grid = xr.DataArray(
        np.zeros((5, 2)), dims=("epoch", "layer"), coords={"epoch": [1, 2, 3, 4, 5], **layers}
    )
    own = xr.DataArray(
        np.ones((3, 2)), dims=("epoch", "layer"), coords={"epoch": [3, 4, 5], **layers}
    )
    stitched = stitch_grid(base_grid, own, spec)
    assert stitched.epoch.values.tolist() == [1, 2, 3, 4, 5]
    assert stitched.sel(epoch=2).values.tolist() == [0.0, 0.0]
    assert stitched.sel(epoch=3).values.tolist() == [1.0, 1.0]


def test_probed_epochs_keep_first_last_and_switch() -> None:
    assert probe_epochs(range(1, 8), every=2) == [1, 2, 4, 6, 7]
    assert probe_epochs(range(1, 8), every=100, keep=[3]) == [1, 3, 7]


def test_base_runs_are_probed_at_their_variants_switch(base: Path, tmp_path: Path) -> None:
    variant = make_run(tmp_path / "vgs-then-w2v2", [4, 5], loss=0.0)
    runs = [RunSpec("VGS", base), RunSpec("(VGS,W2V2)", variant, base=base, switch=3)]
    epochs = epochs_to_probe(runs, every=100)
    assert epochs[base.resolve()] == [1, 3, 5]
    assert epochs[variant.resolve()] == [4, 5]


def test_a_run_started_from_a_checkpoint_switched_there(base: Path, tmp_path: Path) -> None:
    variant = make_run(tmp_path / "vgs-then-w2v2", [3, 4, 5], loss=0.0)
    init = {"checkpoint": str(base / "checkpoints" / "epoch_0002.pt"), "epoch": 2}
    (variant / "config.json").write_text(json.dumps({"init_from": init}))
    assert switch_epoch(variant) == 2  # its own metrics have one stage
    assert switch_epoch(base) is None  # a single-stage run without init_from


def test_stack_gives_a_seed_dimension_with_the_intervals() -> None:
    from analysis.gridding.driver import stack

    def grid(offset: float, epochs: list[int]) -> xr.DataArray:
        values = np.full((len(epochs), 2), offset)
        coords = {"epoch": epochs, "layer": [0, 1]}
        array = xr.DataArray(values, dims=("epoch", "layer"), coords=coords)
        return array.assign_coords(low=array - 0.1, high=array + 0.1)

    stacked = stack(
        {"VGS": {0: grid(1.0, [1, 2]), 1: grid(2.0, [1, 2])}, "W2V2": {0: grid(3.0, [1])}}
    )
    assert stacked.dims == ("run", "seed", "epoch", "layer")
    assert stacked.coords["low"].dims == stacked.dims
    assert float(stacked.sel(run="VGS", epoch=2).mean()) == pytest.approx(1.5)
    assert float(stacked.coords["high"].sel(run="VGS", seed=1, epoch=1, layer=0)) == pytest.approx(
        2.1
    )
    assert bool(stacked.sel(run="W2V2", seed=1).isnull().all())  # W2V2 has no seed 1
