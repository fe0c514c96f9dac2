"""Catastrophic forgetting read off a run with a stage switch.

For each metric (each recall, best-layer ABX, each loss) the table gives its value at the switch epoch, its
final value, the largest drop after the switch (how much worse it got, in the metric's own units, >= 0),
the epoch of that worst value, and how many epochs after the switch it took to get back to its value at the
switch (``NaN`` if it never did). "Worse" depends on the metric: lower is better for losses and ABX error,
higher for recall (see `higher_is_better`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from analysis.metric_names import metric
from analysis.runs import read_metrics, switch_epoch

__all__ = [
    "forgetting",
    "forgetting_table",
    "higher_is_better",
    "is_tracked_metric",
    "metric_series",
]

# The prefix of the columns `metric_series` adds for grids (ABX error, lower is better).
BEST_LAYER = "best_layer_"

FORGETTING_COLUMNS = [
    "higher_is_better",
    "at_switch",
    "final",
    "largest_drop",
    "worst_epoch",
    "epochs_to_recover",
]


def higher_is_better(name: str) -> bool:
    """Whether larger values of the metric column `name` are better: a logged metric's own direction
    (`analysis.metric_names`); a best-layer grid column (an ABX error) is lower-is-better."""
    known = metric(name)
    if known is not None:
        return known.higher_is_better
    if name.startswith(BEST_LAYER):
        return False
    raise ValueError(f"{name!r}: not a metric the forgetting table knows the direction of")


def is_tracked_metric(name: str) -> bool:
    """Whether a metrics.jsonl column is one the forgetting table follows: each loss (``loss_av``,
    ``loss_aud``; not the weighted ``loss``, whose meaning changes at the switch) and each recall
    (``speech_to_image_r10``, also nested as ``recall_...``). Counters, timings and learning rates are
    not."""
    return metric(name) is not None


def forgetting(
    series: pd.Series, switch: int, *, higher_is_better: bool, tolerance: float = 0.0
) -> dict[str, float]:
    """Forgetting numbers of one metric.

    series: values indexed by epoch (any order; NaN entries are ignored). switch: the last epoch of the
    first stage (the checkpoint the second stage starts from). tolerance: a value within `tolerance` of the
    value at the switch counts as recovered. Returns at_switch, final, largest_drop (>= 0), worst_epoch
    (NaN when it never got worse) and epochs_to_recover (0 when it never got worse, NaN when it never
    recovered).
    """
    values = series.dropna().sort_index()
    if switch not in values.index:
        raise ValueError(
            f"metric {series.name!r} has no value at the switch epoch {switch} "
            f"(epochs with values: {list(values.index)})"
        )
    at_switch = float(values.loc[switch])
    after = values[values.index > switch]
    # Signed so that positive means "worse than at the switch", whatever the metric's direction.
    worsening = (at_switch - after) if higher_is_better else (after - at_switch)
    result = {
        "higher_is_better": higher_is_better,
        "at_switch": at_switch,
        "final": float(values.iloc[-1]),
        "largest_drop": 0.0,
        "worst_epoch": math.nan,
        "epochs_to_recover": 0.0,
    }
    if after.empty or worsening.max() <= 0:
        return result
    worst_epoch = int(worsening.idxmax())
    result["largest_drop"] = float(worsening.max())
    result["worst_epoch"] = float(worst_epoch)
    recovered = worsening[(worsening.index > worst_epoch) & (worsening <= tolerance)]
    result["epochs_to_recover"] = (
        float(recovered.index[0] - switch) if not recovered.empty else math.nan
    )
    return result


def metric_series(
    metrics: pd.DataFrame, grids: Mapping[str, xr.DataArray] | None = None
) -> pd.DataFrame:
    """One column per metric, indexed by epoch: the numeric columns of a metrics table (losses, recall)
    plus, for each grid, its best (lowest) value over layers per epoch, named ``best_layer_<name>``.
    """
    table = metrics.set_index("epoch") if "epoch" in metrics.columns else metrics.copy()
    numeric = [
        c
        for c in table.columns
        if is_tracked_metric(c)
        and pd.api.types.is_numeric_dtype(table[c])
        and table[c].notna().any()
    ]
    columns = {c: table[c].astype(float) for c in numeric}
    for name, grid in (grids or {}).items():
        best = grid.min("layer", skipna=True).to_series()
        best.index = best.index.astype(int)
        columns[f"{BEST_LAYER}{name}"] = best
    return pd.DataFrame(columns).sort_index()


def forgetting_table(
    run: Path | str | pd.DataFrame,
    grids: Mapping[str, xr.DataArray] | None = None,
    *,
    switch: int | None = None,
    tolerance: float = 0.0,
) -> pd.DataFrame:
    """The forgetting table of a run: one row per metric, columns `FORGETTING_COLUMNS`.

    run: a run directory (its metrics.jsonl, its switch from the `stage` column) or a metrics table
    with an `epoch` column. grids: best-layer series to add (e.g. {"abx_within": grid}), lower is better.
    switch: the last epoch of the first stage; read from the metrics' `stage` column when omitted.
    """
    metrics = run if isinstance(run, pd.DataFrame) else read_metrics(run)
    if switch is None:
        switch = switch_epoch(metrics)
        if switch is None:
            raise ValueError(f"{run}: the run has a single stage, so there is no switch to measure")
    table = metric_series(metrics, grids)
    rows = {}
    for name in table.columns:
        direction = higher_is_better(name)
        if not np.isfinite(table[name].get(switch, np.nan)):
            continue  # a metric not logged at the switch (e.g. recall every few epochs) cannot be read
        rows[name] = forgetting(
            table[name], switch, higher_is_better=direction, tolerance=tolerance
        )
    out = pd.DataFrame.from_dict(rows, orient="index", columns=FORGETTING_COLUMNS)
    out.index.name = "metric"
    return out
