"""Figures from hand-made grids and metrics: they draw what they are given, and are saved as PNG."""

from __future__ import annotations

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
