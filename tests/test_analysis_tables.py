"""The paper's tables from hand-made grids and recalls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.tables import best_layer, best_layer_table, recall_table, to_markdown, write_table


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
    assert table.loc["(VGS+,VGS)", "within"] == "4.50 (1)"
    assert table.loc["(VGS+,VGS)", "across"] == "6.02 (2)"


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
