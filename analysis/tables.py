"""The paper's tables: recall (Table I) and best-layer ABX with the layer in parentheses (Table II).

Each table is a pandas DataFrame with one row per model; `write_table` saves it as CSV and Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import xarray as xr

from training.fileio import write_text_atomic

__all__ = ["recall_table", "best_layer_table", "best_layer", "to_markdown", "write_table"]

# Recall keys as probes.recall reports them -> Table I's column names.
RECALL_COLUMNS = {
    "speech_to_image_r1": "speech→image R@1",
    "speech_to_image_r10": "speech→image R@10",
    "image_to_speech_r1": "image→speech R@1",
    "image_to_speech_r10": "image→speech R@10",
}


def recall_table(
    recalls: Mapping[str, Mapping[str, float]], columns: Mapping[str, str] = RECALL_COLUMNS
) -> pd.DataFrame:
    """Table I: recall in percent, one row per model.

    recalls: model name -> {key: recall as a fraction in [0, 1]}; `columns` maps keys to column titles
    (keys that a model lacks give NaN; a key in no model is left out).
    """
    rows = {
        model: {
            title: 100.0 * float(values[key]) for key, title in columns.items() if key in values
        }
        for model, values in recalls.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table[[title for title in columns.values() if title in table.columns]]
    table.index.name = "model"
    return table


def best_layer(grid: xr.DataArray) -> tuple[float, int]:
    """The lowest value of a (layer,) or (epoch, layer) grid's last epoch, and its layer."""
    values = grid.isel(epoch=-1) if "epoch" in grid.dims else grid
    if values.isnull().all():
        return math.nan, -1
    layer = int(values.idxmin("layer"))
    return float(values.sel(layer=layer)), layer


def best_layer_table(
    grids: Mapping[str, Mapping[str, xr.DataArray]], *, scale: float = 100.0, digits: int = 2
) -> pd.DataFrame:
    """Table II: best-layer error at the final epoch, "4.50 (9)", one row per model, one column per
    condition.

    grids: model name -> condition name -> (epoch, layer) ABX error grid (fractions; shown x `scale`).
    """
    rows = {}
    for model, conditions in grids.items():
        row = {}
        for condition, grid in conditions.items():
            value, layer = best_layer(grid)
            row[condition] = "–" if layer < 0 else f"{scale * value:.{digits}f} ({layer})"
        rows[model] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def to_markdown(table: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub-flavoured Markdown table (index as the first column), numbers to `digits` decimals."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "–" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for index, row in table.iterrows():
        lines.append("| " + " | ".join([str(index)] + [cell(v) for v in row.tolist()]) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: Path | str, digits: int = 2) -> tuple[Path, Path]:
    """Write `table` as STEM.csv and STEM.md (atomically); returns both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    write_text_atomic(csv_path, table.to_csv())
    write_text_atomic(md_path, to_markdown(table, digits))
    return csv_path, md_path
