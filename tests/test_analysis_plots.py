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


def test_losses_one_panel_per_loss_in_the_papers_terms_switch_marked() -> None:
    table = pd.DataFrame(
        {"epoch": [1, 2, 3], "loss_av": [30.0, 2.0, 4.0], "loss_aud": [5.0, 4.0, 3.0]}
    )
    figure = plots.losses({"(VGS,W2V2)": table}, switch=2)
    assert [ax.get_title() for ax in figure.axes] == ["loss_AV (VGS)", "loss_AUD (SSL)"]
    # log y only where the values span more than a factor of 10; plain tick labels either way
    assert [ax.get_yscale() for ax in figure.axes] == ["log", "linear"]
    figure.canvas.draw()
    for ax in figure.axes:
        labels = [t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels()]
        assert not any("times" in text or "^" in text for text in labels), labels
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["(VGS,W2V2)", "stage switch (epoch 2)"]
    np.testing.assert_allclose(line_data(figure, 1)["(VGS,W2V2)"], [5.0, 4.0, 3.0])
    switch_lines = [line for line in figure.axes[0].get_lines() if line.get_xdata()[0] == 2]
    assert switch_lines, "the switch epoch is marked"


@pytest.mark.parametrize("draw", [plots.heatmap, plots.drift_heatmap])
def test_heatmaps_put_layer_0_at_the_bottom(draw, tmp_path: Path) -> None:
    grid = make_grid(2)
    figure = draw(grid, switch=3)
    assert figure.axes[0].get_ylim()[0] == -0.5  # the bottom row is layer 0
    assert figure.axes[0].get_ylim()[1] == grid.sizes["layer"] - 0.5
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
    assert switch_lines(figure.axes[0]) == [3.5]  # after epoch 3's cell (epochs 1..6)
    stitched = grid.assign_attrs(switch=2)  # analysis.paper.study's stitched variants say it
    assert switch_lines(plots.heatmap(stitched).axes[0]) == [2.5]
    assert switch_lines(plots.heatmap(stitched, switch=None).axes[0]) == []
    assert switch_lines(plots.heatmap(grid).axes[0]) == []  # nothing says where: no line

    from analysis.gridding.driver import stack

    panels = plots.heatmap(stack({"VGS": grid, "(VGS,W2V2)": stitched})).axes
    assert [switch_lines(ax) for ax in panels if ax.get_title()] == [[], [2.5]]
    panels = plots.heatmap(stack({"VGS": grid, "mine": grid}), run={"mine": run}).axes
    assert [switch_lines(ax) for ax in panels if ax.get_title()] == [[], [3.5]]


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
    drawn = heatmaps[0].collections[0].get_array().reshape(5, 6)  # layers (bottom = 0) x epochs
    np.testing.assert_allclose(drawn.T, mean)
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
    assert box.get_x() == 2.5  # epoch 3's cell: 2.5 to 3.5 on the epoch axis
    assert box.get_y() == best - 0.5  # layer 0 is the bottom row
    dots = [line for line in figure.axes[0].get_lines() if line.get_marker() == "o"]
    assert len(dots[0].get_xdata()) == grid.size
    with pytest.raises(ValueError, match="needs a switch"):
        plots.heatmap(grid, switch=None, overlap="switch")


def test_panels_share_one_colour_scale_and_one_colourbar() -> None:
    low, high = make_grid(0) * 0.5, make_grid(1) + 0.3  # different ranges
    figure = plots.heatmaps({"a": low, "b": high}, title="read speech, within speaker")
    meshes = [ax.collections[0] for ax in figure.axes if ax.get_title() in ("a", "b")]
    assert len({mesh.get_clim() for mesh in meshes}) == 1  # the same colour is the same value
    vmin, vmax = meshes[0].get_clim()
    assert vmin == pytest.approx(100 * float(low.min()))
    assert vmax == pytest.approx(100 * float(high.max()))
    colourbars = [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]
    assert len(colourbars) == 1
    assert figure.get_suptitle() == "read speech, within speaker"


def test_every_mark_has_a_legend_entry() -> None:
    grid = with_intervals(make_grid(4), 0.5).assign_attrs(switch=3)
    figure = plots.heatmaps(
        {"(VGS,W2V2)": grid, "VGS": make_grid(0)}, overlap={"(VGS,W2V2)": "switch"}
    )
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "stage switch" in legend
    assert any("not told apart" in text for text in legend)  # the dots
    assert any(text.startswith("boxed: best layer at the switch") for text in legend)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts == ["switch"]  # the line itself is labelled


def test_an_unprobed_epoch_is_a_gap_on_a_numeric_axis() -> None:
    grid = make_grid(0, epochs=6).sel(epoch=[1, 2, 3, 5, 6])  # epoch 4 not probed
    figure = plots.heatmap(grid, switch=None)
    ax = figure.axes[0]
    drawn = ax.collections[0].get_array().reshape(grid.sizes["layer"], 6)
    assert drawn.mask[:, 3].all() and not drawn.mask[:, [0, 1, 2, 4, 5]].any()
    assert ax.get_xlim() == (0.5, 6.5)  # epochs 1..6 on a numeric axis, 4 included
    assert "not probed" in [t.get_text() for t in figure.legends[0].get_texts()]
    every_fifth = make_grid(1, epochs=5).assign_coords(epoch=[0, 5, 10, 15, 20])
    ax = plots.heatmap(every_fifth, switch=None).axes[0]
    assert ax.collections[0].get_array().mask.sum() == 0  # a probing step of 5 is no gap
    assert ax.get_xlim() == (-2.5, 22.5)


def test_fig2_small_multiples_one_panel_per_model_one_legend() -> None:
    grids = {
        "read, within speaker": {"VGS": with_intervals(make_grid(0)), "W2V2": make_grid(1)},
        "read, across speaker": {"VGS": make_grid(2), "W2V2": make_grid(3)},
    }
    figure = plots.by_model(plots.best_layer_by_epoch, grids, title="Fig. 2", switch={"VGS": 3})
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["VGS", "W2V2"]
    assert panels[0].get_ylim() == panels[1].get_ylim()  # one shared y axis
    assert set(line_data(figure, 1)) == {"read, within speaker", "read, across speaker"}
    assert switch_lines(panels[0]) == [3] and switch_lines(panels[1]) == []
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[:2] == ["read, within speaker", "read, across speaker"]
    assert any("95% interval" in text for text in legend) and "stage switch" in legend
    left = plots.by_model(plots.abx_by_layer, grids)
    assert [ax.get_title() for ax in left.axes if ax.get_visible()] == ["VGS", "W2V2"]
