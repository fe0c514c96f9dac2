"""The paper's line plots: ABX error by layer and the best layer by epoch (its Fig. 2, alone
or one panel per model), and the losses over epochs (its Fig. 3).

Separate from the heatmaps: lines with interval bands on a log y axis with plain tick labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from analysis.plots.common import (
    SWITCH_LABEL,
    SWITCH_STYLE,
    _axes,
    _legend_below,
    _own,
    _switch_line,
)

__all__ = ["abx_by_layer", "best_layer_by_epoch", "by_model", "best_over_layers", "losses"]


def abx_by_layer(
    grids: Mapping[str, xr.DataArray],
    *,
    epoch: int | None = None,
    ax: Axes | None = None,
    title: str = "ABX error by layer, final epoch",
    scale: float = 100.0,
    legend: bool = True,
    colors: Mapping[str, Any] | None = None,
) -> Figure:
    """The paper's Fig. 2 (left): ABX error by layer at the final (or given) epoch, one line per run,
    log y. A band shows each cell's interval (coords `low`, `high`); a grid with a `seed` dim is
    drawn as its seed mean with a band of +-1 between-seed standard deviation. colors: name ->
    colour (default: matplotlib's cycle); legend: False to leave it to the caller (`by_model`)."""
    figure, ax = _axes(ax)
    rows = {n: g.isel(epoch=-1) if epoch is None else g.sel(epoch=epoch) for n, g in grids.items()}
    series = {n: (r.layer.values, *_center_and_band(r, scale)) for n, r in rows.items()}
    _lines(ax, series, legend=legend, colors=colors)
    _log_y(ax, [values for _, values, _ in series.values()])
    _label(ax, "layer", "ABX error (%)", title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure


def best_layer_by_epoch(
    grids: Mapping[str, xr.DataArray],
    *,
    ax: Axes | None = None,
    switch: int | None = None,
    title: str = "best-layer ABX error over epochs",
    scale: float = 100.0,
    legend: bool = True,
    colors: Mapping[str, Any] | None = None,
) -> Figure:
    """The paper's Fig. 2 (right): the best layer's ABX error at each epoch, one line per run, with
    the best cell's interval as a band (seeds: their mean, +-1 between-seed SD), the stage switch
    marked and labelled."""
    figure, ax = _axes(ax)
    best = {name: best_over_layers(grid) for name, grid in grids.items()}
    series = {name: (b.epoch.values, *_center_and_band(b, scale)) for name, b in best.items()}
    _lines(ax, series, legend=False, colors=colors)
    _switch_line(ax, switch)
    _log_y(ax, [values for _, values, _ in series.values()])
    _plain_ticks(ax)
    _label(ax, "epoch", "best-layer ABX error (%)", title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if legend and series:
        ax.legend(fontsize="small", ncols=2)
    return figure


def by_model(
    draw,
    grids: Mapping[str, Mapping[str, xr.DataArray]],
    *,
    title: str | None = None,
    switch: int | None | Mapping[str, int | None] = None,
    columns: int = 3,
    band: str = "shaded: 95% interval of the line of its colour (seeds: ±1 SD)",
    **options: Any,
) -> Figure:
    """Small multiples of Fig. 2: one panel per model, one line per condition, on one shared y axis
    and one legend. draw: `abx_by_layer` or `best_layer_by_epoch`; grids: condition -> model ->
    grid; switch: the models' switch epochs (`best_layer_by_epoch` marks it in each panel)."""
    models = list(dict.fromkeys(m for by in grids.values() for m in by))
    cycle = [f"C{i}" for i in range(10)]
    colors = {condition: cycle[i % 10] for i, condition in enumerate(grids)}
    columns = min(columns, max(len(models), 1))
    rows = int(np.ceil(len(models) / columns))
    figure = Figure(figsize=(3.6 * columns, 2.8 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    banded = False
    for ax, model in zip(axes, models, strict=False):
        own = {c: by[model] for c, by in grids.items() if model in by}
        if draw is best_layer_by_epoch:
            options["switch"] = _own(switch, model)
        draw(own, ax=ax, title=model, legend=False, colors=colors, **options)
        banded = banded or bool(ax.collections)
    for ax in axes[len(models) :]:
        ax.set_visible(False)
    for index, ax in enumerate(axes[: len(models)]):
        if index % columns:
            ax.set_ylabel("")
        if index < len(models) - columns:
            ax.set_xlabel("")
    handles: list[Any] = [Line2D([], [], color=colors[c], marker="o", markersize=3, label=c)
                          for c in grids]  # fmt: skip
    if banded:
        handles.append(Patch(facecolor="0.5", alpha=0.2, edgecolor="0.4", label=band))
    if any(line.get_label() == SWITCH_LABEL for ax in axes for line in ax.get_lines()):
        handles.append(Line2D([], [], **SWITCH_STYLE, label=SWITCH_LABEL))
    _legend_below(figure, handles, 4, title)
    return figure


def best_over_layers(grid: xr.DataArray) -> xr.DataArray:
    """The minimum over layers at each epoch (and seed), with the interval of the cell it comes
    from as coords `low`, `high` when the grid has intervals."""
    best = grid.drop_vars(["low", "high"], errors="ignore").min("layer", skipna=True)
    if "low" not in grid.coords or grid.isnull().all():
        return best
    where = grid.fillna(np.inf).argmin("layer")
    for bound in ("low", "high"):
        best = best.assign_coords({bound: grid.coords[bound].isel(layer=where)})
    return best


def _center_and_band(values: xr.DataArray, scale: float):
    """(line [N], band (low [N], high [N]) or None) of a 1-d series, or of a (seed, x) one."""
    if "seed" in values.dims:
        clean = values.drop_vars(["low", "high"], errors="ignore")
        mean, sd = clean.mean("seed").values, clean.std("seed", ddof=1).values
        return scale * mean, (scale * (mean - sd), scale * (mean + sd))
    if "low" in values.coords and "high" in values.coords:
        return scale * values.values, (scale * values.low.values, scale * values.high.values)
    return scale * values.values, None


def _lines(ax: Axes, series: Mapping[str, tuple], *, legend: bool = True, colors=None) -> None:
    """series: name -> (x, y) or (x, y, band), band = (low, high) or None, drawn shaded."""
    for name, (x, y, *band) in series.items():
        color = (colors or {}).get(name)
        (line,) = ax.plot(x, y, marker="o", markersize=3, label=name, color=color)
        if band and band[0] is not None:
            low, high = band[0]
            # A light fill with edges in the line's colour: overlapping bands stay told apart.
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.12, linewidth=0)
            for edge in (low, high):
                ax.plot(x, edge, color=line.get_color(), linewidth=0.6, alpha=0.7, label="_band")
    if series and legend:
        ax.legend(fontsize="small", ncols=2)


def _log_y(ax: Axes, values: list[np.ndarray]) -> None:
    """Log y; an error of exactly 0 (possible on easy synthetic speech) has no log, so then the axis is
    symlog, linear below the smallest positive value. Ticks are plain numbers (`_plain_ticks`)."""
    flat = np.concatenate([np.ravel(v) for v in values]) if values else np.array([])
    positive = flat[np.isfinite(flat) & (flat > 0)]
    if positive.size == flat[np.isfinite(flat)].size:
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    _plain_ticks(ax)


def _plain_ticks(ax: Axes) -> None:
    """Plain y tick labels ("8.5", "20") on any scale, never "8.9x10^0": on a log axis spanning less
    than a decade the minor ticks are the labelled ones, so both get the plain formatter."""
    if ax.get_yscale() in ("log", "symlog"):
        ax.yaxis.set_major_formatter(FuncFormatter(_plain))
        ax.yaxis.set_minor_formatter(FuncFormatter(_plain_minor))


def _plain(value: float, _position=None) -> str:
    return f"{value:.3g}"


def _plain_minor(value: float, _position=None) -> str:
    """Minor log ticks: labelled at 2 and 5 (times a power of ten) only, so they do not collide."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** np.floor(np.log10(value))
    return _plain(value) if np.isclose(mantissa, 2) or np.isclose(mantissa, 5) else ""


def _label(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


# The paper's names of the two losses (its Fig. 3): the VGS loss and the SSL (wav2vec 2.0) loss.
LOSS_NAMES = {"loss_av": "loss_AV (VGS)", "loss_aud": "loss_AUD (SSL)"}


def losses(
    metrics: Mapping[str, pd.DataFrame],
    *,
    switch: int | None = None,
    columns: tuple[str, ...] = ("loss_av", "loss_aud"),
    title: str | None = None,
) -> Figure:
    """The paper's Fig. 3: each loss over epochs (one panel per loss, named as the paper names it:
    loss_AV, loss_AUD), one line per run, the stage switch marked and labelled, one legend below.
    y is log when a panel's values span more than a factor of 10, else linear; ticks are plain
    numbers. metrics: run name -> table with `epoch` and the loss columns."""
    figure = Figure(figsize=(4.6 * len(columns), 4.2), layout="constrained")
    panels = figure.subplots(1, len(columns), squeeze=False)[0]
    handles: dict[str, Any] = {}
    for ax, column in zip(panels, columns, strict=True):
        drawn = []
        for index, (name, table) in enumerate(metrics.items()):
            if column in table.columns and table[column].notna().any():
                (line,) = ax.plot(table["epoch"], table[column], marker="o", markersize=2,
                                  label=name, color=f"C{index % 10}")  # fmt: skip
                handles.setdefault(name, line)
                drawn.append(table[column].to_numpy(dtype=float))
        _switch_line(ax, switch)
        values = np.concatenate(drawn) if drawn else np.array([])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size and values.max() > 10 * values.min():
            ax.set_yscale("log")
            _plain_ticks(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        name = LOSS_NAMES.get(column, column)
        ax.set_ylabel(name.split(" ")[0])
        ax.set_title(name)
    if switch is not None:
        handles[SWITCH_LABEL] = Line2D(
            [], [], **SWITCH_STYLE, label=f"{SWITCH_LABEL} (epoch {switch})"
        )
    _legend_below(figure, list(handles.values()), 5, title)
    return figure
