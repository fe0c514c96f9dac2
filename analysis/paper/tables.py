"""The paper's tables: recall (Table I) and best-layer ABX with its layer (Table II), with intervals.

Each table is a pandas DataFrame with one row per model and plain numbers: a value column is
followed by its interval ("<column> low", "<column> high") and, in Table II, its layer; `write_table`
saves it as CSV (these columns as they are) and Markdown ("4.50 [4.12, 4.91] (9)").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import xarray as xr

from analysis.metric_names import METRICS, TABLE_RECALLS
from training.fileio import write_text_atomic

__all__ = [
    "recall_table",
    "best_layer_table",
    "best_layer",
    "best_layer_interval",
    "summarise_seeds",
    "to_markdown",
    "write_table",
]

# Recall keys as probes.recall reports them -> Table I's column names.
RECALL_COLUMNS = {key: METRICS[key].title for key in TABLE_RECALLS}
# Suffixes of the columns that go with a value column: its interval, its layer, its seed spread.
LOW, HIGH, LAYER, SEED_SD = " low", " high", " layer", " seed sd"
Interval = tuple[float, float]


def recall_table(
    recalls: Mapping[str, Mapping[str, float]],
    columns: Mapping[str, str] = RECALL_COLUMNS,
    intervals: Mapping[str, Mapping[str, Interval]] | None = None,
) -> pd.DataFrame:
    """Table I: recall in percent, one row per model, each column followed by its interval.

    recalls: model name -> {key: recall as a fraction in [0, 1]}; `columns` maps keys to column titles
    (keys that a model lacks give NaN; a key in no model is left out). intervals: model name -> key ->
    (low, high), fractions; gives the columns "<title> low" and "<title> high".
    """
    rows = {}
    for model, values in recalls.items():
        row = {}
        for key, title in columns.items():
            if key not in values:
                continue
            row[title] = 100.0 * float(values[key])
            low, high = (intervals or {}).get(model, {}).get(key, (math.nan, math.nan))
            row[title + LOW], row[title + HIGH] = 100.0 * low, 100.0 * high
        rows[model] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    order = [t + suffix for t in columns.values() for suffix in ("", LOW, HIGH)]
    table = table[[c for c in order if c in table.columns]]
    if intervals is None:
        table = table[[c for c in table.columns if not c.endswith((LOW, HIGH))]]
    table.index.name = "model"
    return table


def best_layer(grid: xr.DataArray) -> tuple[float, int]:
    """The lowest value of a (layer,) or (epoch, layer) grid's last epoch, and its layer."""
    values = grid.isel(epoch=-1) if "epoch" in grid.dims else grid
    if values.isnull().all():
        return math.nan, -1
    layer = int(values.idxmin("layer"))
    return float(values.sel(layer=layer)), layer


def best_layer_interval(grid: xr.DataArray) -> Interval:
    """The interval (coords `low`, `high` of a grid computed with `bootstrap=`) of the best layer's
    cell at the last epoch; NaNs when the grid has none."""
    value, layer = best_layer(grid)
    if layer < 0 or "low" not in grid.coords or "high" not in grid.coords:
        return math.nan, math.nan
    cell = grid.isel(epoch=-1).sel(layer=layer) if "epoch" in grid.dims else grid.sel(layer=layer)
    return float(cell.coords["low"]), float(cell.coords["high"])


def best_layer_table(
    grids: Mapping[str, Mapping[str, xr.DataArray]],
    *,
    scale: float = 100.0,
    intervals: Mapping[str, Mapping[str, Interval]] | None = None,
) -> pd.DataFrame:
    """Table II: best-layer error at the final epoch, one row per model; per condition the columns
    "<condition>" (error x `scale`), "<condition> low", "<condition> high" (its interval: the grid's
    `low`/`high` coords, else ``intervals[model][condition]``) and "<condition> layer".

    grids: model name -> condition name -> (epoch, layer) ABX error grid (fractions).
    """
    rows = {}
    for model, conditions in grids.items():
        row: dict[str, float] = {}
        for condition, grid in conditions.items():
            value, layer = best_layer(grid)
            low, high = best_layer_interval(grid)
            if math.isnan(low):
                low, high = (intervals or {}).get(model, {}).get(condition, (math.nan, math.nan))
            row[condition] = scale * value
            row[condition + LOW], row[condition + HIGH] = scale * low, scale * high
            row[condition + LAYER] = layer if layer >= 0 else math.nan
        rows[model] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def summarise_seeds(table: pd.DataFrame, groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows of several seeds of a model as one row: each value column's mean over the seeds, its
    between-seed standard deviation ("<column> seed sd"), and the mean of the seeds' within-run
    interval bounds; a layer column keeps the most frequent layer. groups: model -> its rows' names.
    """
    rows = {}
    for model, names in groups.items():
        block = table.loc[[n for n in names if n in table.index]]
        row = {}
        for column in table.columns:
            if column.endswith(LAYER):
                row[column] = (
                    block[column].mode().iloc[0] if block[column].notna().any() else math.nan
                )
            else:
                row[column] = block[column].mean()
            if not column.endswith((LOW, HIGH, LAYER)):
                row[column + SEED_SD] = block[column].std(ddof=1) if len(block) > 1 else math.nan
        rows[model] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = table.index.name
    out.insert(0, "seeds", [len(names) for names in groups.values()])
    return out


def to_markdown(table: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub-flavoured Markdown table (index as the first column), numbers to `digits` decimals.

    A column with companions "<column> low"/"<column> high" is shown as "value [low, high]", with
    "<column> seed sd" as "value ± sd", with "<column> layer" followed by "(layer)".
    """

    def number(value: object) -> str:
        if value is pd.NA:  # a missing integer (e.g. an epoch that never came)
            return "–"
        if isinstance(value, float):
            return "–" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    companions = {c + suffix for c in table.columns for suffix in (LOW, HIGH, LAYER, SEED_SD)}
    shown = [c for c in table.columns if c not in companions]

    def present(row: int, column: str) -> float | None:
        """The companion's value, if the table has it and it is a number."""
        if column not in table.columns:
            return None
        value = float(table[column].iloc[row])
        return None if math.isnan(value) else value

    def cell(row: int, column: str) -> str:
        value = table[column].iloc[row]  # by column: an integer column stays an integer
        text = number(value.item() if hasattr(value, "item") else value)
        if text == "–":
            return text
        if (sd := present(row, column + SEED_SD)) is not None:
            text += f" ± {number(sd)}"
        if (low := present(row, column + LOW)) is not None:
            high = present(row, column + HIGH)
            text += f" [{number(low)}, {number(math.nan if high is None else high)}]"
        if (layer := present(row, column + LAYER)) is not None:
            text += f" ({int(layer)})"
        return text

    header = [table.index.name or ""] + [str(c) for c in shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row, index in enumerate(table.index):
        lines.append("| " + " | ".join([str(index)] + [cell(row, c) for c in shown]) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: Path | str, digits: int = 2) -> tuple[Path, Path]:
    """Write `table` as STEM.csv and STEM.md (atomically); returns both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    write_text_atomic(csv_path, table.to_csv())
    write_text_atomic(md_path, to_markdown(table, digits))
    return csv_path, md_path
