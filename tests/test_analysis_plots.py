"""Figures from hand-made grids and metrics: they draw what they are given, and are saved as PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure
from PIL import Image

from analysis import plots


def make_grid(seed: int, epochs: int = 6, layers: int = 5) -> xr.DataArray:
    values = np.random.default_rng(seed).uniform(0.05, 0.4, size=(epochs, layers))
    return xr.DataArray(
        values,
        dims=("epoch", "layer"),
        coords={"epoch": range(1, epochs + 1), "layer": range(layers)},
        attrs={"run": f"run{seed}"},
    )


def line_data(figure: Figure, panel: int = 0) -> dict[str, np.ndarray]:
    ax = figure.axes[panel]
    return {
        line.get_label(): np.asarray(line.get_ydata())
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }


def test_abx_by_layer_plots_the_final_epoch_in_percent_on_log_y() -> None:
    grids = {"VGS": make_grid(0), "W2V2": make_grid(1)}
    figure = plots.abx_by_layer(grids)
    assert figure.axes[0].get_yscale() == "log"
    np.testing.assert_allclose(line_data(figure)["VGS"], 100 * grids["VGS"].isel(epoch=-1).values)


def test_best_layer_by_epoch_is_the_minimum_over_layers() -> None:
    grids = {"VGS": make_grid(0)}
    figure = plots.best_layer_by_epoch(grids, switch=3)
    np.testing.assert_allclose(line_data(figure)["VGS"], 100 * grids["VGS"].values.min(axis=1))


def test_losses_one_panel_per_loss_log_y_switch_marked() -> None:
    table = pd.DataFrame(
        {"epoch": [1, 2, 3], "loss_av": [3.0, 2.0, 4.0], "loss_aud": [5.0, 4.0, 3.0]}
    )
    figure = plots.losses({"(VGS,W2V2)": table}, switch=2)
    assert [ax.get_title() for ax in figure.axes] == ["loss_av", "loss_aud"]
    assert all(ax.get_yscale() == "log" for ax in figure.axes)
    np.testing.assert_allclose(line_data(figure, 1)["(VGS,W2V2)"], [5.0, 4.0, 3.0])
    switch_lines = [line for line in figure.axes[0].get_lines() if line.get_xdata()[0] == 2]
    assert switch_lines, "the switch epoch is marked"


@pytest.mark.parametrize("draw", [plots.heatmap, plots.drift_heatmap])
def test_heatmaps_put_layer_0_at_the_bottom(draw, tmp_path: Path) -> None:
    grid = make_grid(2)
    figure = draw(grid, switch=3)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels[-1] == "0"  # the last tick label (drawn at the bottom) is layer 0
    path = plots.save_figure(figure, tmp_path / "heatmap.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_panels_can_be_drawn_into_a_given_figure() -> None:
    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert plots.abx_by_layer({"a": make_grid(0)}, ax=left) is figure
    assert plots.heatmap(make_grid(0), ax=right) is figure


def test_an_error_of_zero_keeps_the_plot_drawable() -> None:
    grid = make_grid(0)
    grid[-1, 0] = 0.0  # a perfect layer: no logarithm
    figure = plots.abx_by_layer({"VGS": grid})
    assert figure.axes[0].get_yscale() == "symlog"
    assert line_data(figure)["VGS"][0] == 0.0


def with_intervals(grid: xr.DataArray, half: float = 0.02) -> xr.DataArray:
    """A grid as analysis.grid(..., bootstrap=N) returns it: coords low/high, same dims."""
    return grid.assign_coords(low=grid - half, high=grid + half)


def switch_lines(ax) -> list[float]:
    return [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_heatmap_marks_the_switch_from_the_run_itself(tmp_path: Path) -> None:
    run = tmp_path / "vgs-then-w2v2"
    run.mkdir()
    rows = [{"epoch": e, "stage": int(e > 3), "loss_av": 1.0} for e in range(1, 7)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    grid = make_grid(0)
    from analysis.runs import switch_epoch

    assert switch_epoch(run) == 3  # a run directory, not only its metrics table
    figure = plots.heatmap(grid, run=run)
    assert switch_lines(figure.axes[0]) == [3.0]  # after epoch 3's column (epochs 1..6)
    stitched = grid.assign_attrs(switch=2)  # analysis.paper.study's stitched variants say it
    assert switch_lines(plots.heatmap(stitched).axes[0]) == [2.0]
    assert switch_lines(plots.heatmap(stitched, switch=None).axes[0]) == []
    assert switch_lines(plots.heatmap(grid).axes[0]) == []  # nothing says where: no line

    from analysis.gridding.driver import stack

    panels = plots.heatmap(stack({"VGS": grid, "(VGS,W2V2)": stitched})).axes
    assert [switch_lines(ax) for ax in panels if ax.get_title()] == [[], [2.0]]
    panels = plots.heatmap(stack({"VGS": grid, "mine": grid}), run={"mine": run}).axes
    assert [switch_lines(ax) for ax in panels if ax.get_title()] == [[], [3.0]]


def test_stacked_grid_draws_one_panel_per_run_and_the_seed_mean() -> None:
    from analysis.gridding.driver import stack

    seeds = {0: make_grid(0), 1: make_grid(1), 2: make_grid(2)}
    stacked = stack({"VGS": seeds, "W2V2": {0: make_grid(3, epochs=4)}})
    figure = plots.heatmap(stacked)
    heatmaps = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in heatmaps] == [
        "VGS (mean of 3 seeds)",
        "W2V2",  # one seed: no mean
    ]
    mean = 100 * np.mean([g.values for g in seeds.values()], axis=0)
    drawn = heatmaps[0].collections[0].get_array().reshape(5, 6)  # layers (top = 4) x epochs
    np.testing.assert_allclose(drawn[::-1].T, mean)
    assert heatmaps[1].collections[0].get_array().size == 4 * 5  # its own epochs, no NaN padding


def test_cells_overlapping_the_reference_interval_are_marked() -> None:
    values = np.full((4, 3), 0.30)
    values[0, 0] = 0.10  # the reference (epoch 1, layer 0)
    values[1, 1] = 0.11  # within the reference's interval: not told apart
    grid = xr.DataArray(
        values, dims=("epoch", "layer"), coords={"epoch": [1, 2, 3, 4], "layer": [0, 1, 2]}
    )
    grid = with_intervals(grid, 0.02)
    same = plots.overlapping_cells(grid, (1, 0))
    assert same.sum() == 2 and bool(same.sel(epoch=2, layer=1))
    figure = plots.heatmap(grid, overlap=(1, 0), switch=None)
    dots = [line for line in figure.axes[0].get_lines() if line.get_marker() == "o"]
    assert len(dots[0].get_xdata()) == 2
    with pytest.raises(ValueError, match="no intervals"):
        plots.heatmap(make_grid(0), overlap=(1, 0))


def test_fig2_draws_interval_bands() -> None:
    grids = {"VGS": with_intervals(make_grid(0)), "W2V2": make_grid(1)}
    figure = plots.best_layer_by_epoch(grids)
    bands = figure.axes[0].collections
    assert len(bands) == 1  # only the grid with intervals has a band
    best = plots.best_over_layers(grids["VGS"])
    np.testing.assert_allclose(best.low.values, best.values - 0.02)
    left = plots.abx_by_layer(grids)
    assert len(left.axes[0].collections) == 1


def test_overlap_with_the_switch_boxes_its_best_layer() -> None:
    grid = with_intervals(make_grid(4), 0.5)  # wide intervals: every cell overlaps
    best = int(grid.sel(epoch=3).idxmin("layer"))
    figure = plots.heatmap(grid, switch=3, overlap="switch")
    (box,) = figure.axes[0].patches
    assert box.get_x() == 2  # epoch 3 is the third column
    assert box.get_y() == grid.sizes["layer"] - 1 - best  # layer 0 is the bottom row
    dots = [line for line in figure.axes[0].get_lines() if line.get_marker() == "o"]
    assert len(dots[0].get_xdata()) == grid.size
    with pytest.raises(ValueError, match="needs a switch"):
        plots.heatmap(grid, switch=None, overlap="switch")
