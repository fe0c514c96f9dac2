"""The paper's tables from hand-made grids and recalls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.paper.tables import (
    best_layer,
    best_layer_interval,
    best_layer_table,
    recall_table,
    summarise_seeds,
    to_markdown,
    write_table,
)


def make_grid(values: np.ndarray, epochs=None) -> xr.DataArray:
    epochs = list(range(1, values.shape[0] + 1)) if epochs is None else epochs
    return xr.DataArray(
        values, dims=("epoch", "layer"), coords={"epoch": epochs, "layer": range(values.shape[1])}
    )


def test_best_layer_is_the_lowest_of_the_last_epoch() -> None:
    grid = make_grid(np.array([[0.01, 0.50, 0.50], [0.30, 0.20, 0.25]]))
    assert best_layer(grid) == (pytest.approx(0.20), 1)  # epoch 1's 0.01 is not the final epoch


def test_best_layer_table_shows_percent_and_layer() -> None:
    within = make_grid(np.array([[0.2, 0.0450, 0.1]]))
    across = make_grid(np.array([[0.2, 0.1, 0.0602]]))
    table = best_layer_table({"(VGS+,VGS)": {"within": within, "across": across}})
    row = table.loc["(VGS+,VGS)"]
    assert row["within"] == pytest.approx(4.50) and row["within layer"] == 1
    assert row["across"] == pytest.approx(6.02) and row["across layer"] == 2
    assert np.isnan(row["within low"])  # neither the grid nor the caller gave an interval
    assert "| (VGS+,VGS) | 4.50 (1) | 6.02 (2) |" in to_markdown(table)


def with_intervals(grid: xr.DataArray, half: float) -> xr.DataArray:
    """A grid as analysis.grid(..., bootstrap=N) returns it: coords low/high, same dims."""
    return grid.assign_coords(low=grid - half, high=grid + half)


def test_best_layer_interval_comes_from_the_grid_else_from_the_caller() -> None:
    grid = with_intervals(make_grid(np.array([[0.3, 0.2, 0.25], [0.2, 0.0450, 0.1]])), 0.01)
    assert best_layer_interval(grid) == (pytest.approx(0.035), pytest.approx(0.055))
    plain = make_grid(np.array([[0.2, 0.0450, 0.1]]))
    table = best_layer_table(
        {"VGS": {"within": grid}, "W2V2": {"within": plain}},
        intervals={"W2V2": {"within": (0.04, 0.05)}},
    )
    assert table.loc["VGS", ["within low", "within high"]].tolist() == pytest.approx([3.5, 5.5])
    assert table.loc["W2V2", ["within low", "within high"]].tolist() == pytest.approx([4.0, 5.0])
    assert "| VGS | 4.50 [3.50, 5.50] (1) |" in to_markdown(table)


def test_recall_table_carries_intervals() -> None:
    table = recall_table(
        {"VGS": {"speech_to_image_r1": 0.284}},
        intervals={"VGS": {"speech_to_image_r1": (0.2, 0.35)}},
    )
    assert list(table.columns) == [
        "speech→image R@1",
        "speech→image R@1 low",
        "speech→image R@1 high",
    ]
    assert table.loc["VGS"].tolist() == pytest.approx([28.4, 20.0, 35.0])
    assert "| VGS | 28.40 [20.00, 35.00] |" in to_markdown(table)


def test_seeds_summarised_as_mean_spread_and_mean_interval() -> None:
    table = pd.DataFrame(
        {"R@1": [10.0, 20.0, 30.0, 5.0], "R@1 low": [5.0, 15.0, 25.0, 1.0],
         "R@1 high": [15.0, 25.0, 35.0, 9.0]},
        index=pd.Index(["VGS", "VGS seed-1", "VGS seed-2", "W2V2"], name="model"),
    )  # fmt: skip
    summary = summarise_seeds(table, {"VGS": ["VGS", "VGS seed-1", "VGS seed-2"], "W2V2": ["W2V2"]})
    assert summary.loc["VGS", "seeds"] == 3 and summary.loc["VGS", "R@1"] == pytest.approx(20.0)
    assert summary.loc["VGS", "R@1 seed sd"] == pytest.approx(10.0)
    assert summary.loc["VGS", ["R@1 low", "R@1 high"]].tolist() == pytest.approx([15.0, 25.0])
    assert np.isnan(summary.loc["W2V2", "R@1 seed sd"])
    assert "| VGS | 3 | 20.00 ± 10.00 [15.00, 25.00] |" in to_markdown(summary)


def test_recall_table_in_percent_in_paper_column_order() -> None:
    recalls = {
        "VGS": {
            "image_to_speech_r1": 0.401,
            "speech_to_image_r1": 0.284,
            "speech_to_image_r10": 0.694,
        },
        "W2V2": {"speech_to_image_r1": 0.001},
    }
    table = recall_table(recalls)
    assert list(table.columns) == ["speech→image R@1", "speech→image R@10", "image→speech R@1"]
    assert table.loc["VGS", "speech→image R@1"] == pytest.approx(28.4)
    assert np.isnan(table.loc["W2V2", "image→speech R@1"])


def test_markdown_and_csv_round_trip(tmp_path: Path) -> None:
    table = pd.DataFrame({"R@1": [28.4, np.nan]}, index=pd.Index(["VGS", "W2V2"], name="model"))
    markdown = to_markdown(table)
    assert markdown.splitlines() == [
        "| model | R@1 |",
        "|---|---|",
        "| VGS | 28.40 |",
        "| W2V2 | – |",
    ]
    csv_path, md_path = write_table(table, tmp_path / "table1")
    assert md_path.read_text() == markdown
    back = pd.read_csv(csv_path, index_col="model")
    assert back.loc["VGS", "R@1"] == pytest.approx(28.4) and np.isnan(back.loc["W2V2", "R@1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1.csv", "table1.md"]  # no temp left
