"""The paper's figures and the layer-by-epoch heatmaps, as matplotlib Figures.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: nothing is shown, no global
backend is touched (scripts and tests need no display; a notebook displays the returned figure). Each
function takes an optional ``ax`` to draw into a panel of a larger figure, and returns the figure.
ABX errors are plotted in percent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from training.fileio import write_atomic

__all__ = [
    "heatmap",
    "abx_by_layer",
    "best_layer_by_epoch",
    "losses",
    "drift_heatmap",
    "save_figure",
]

SWITCH_STYLE = {"color": "0.3", "linestyle": "--", "linewidth": 1.0}


def _axes(ax: Axes | None, size: tuple[float, float] = (5.0, 3.6)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def heatmap(
    grid: xr.DataArray,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    scale: float = 100.0,
    cmap: str = "viridis_r",
    switch: int | None = None,
    label: str = "ABX error (%)",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Layer x epoch heatmap of a grid (layer 0 at the bottom), values x `scale`, switch marked."""
    figure, ax = _axes(ax, (6.0, 3.8))
    table = (grid * scale).transpose("layer", "epoch").to_pandas().sort_index(ascending=False)
    sns.heatmap(
        table, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, cbar_kws={"label": label}, linewidths=0
    )
    if switch is not None and switch in list(table.columns):
        # Heatmap cells sit at integer offsets: the line goes after the switch epoch's column.
        ax.axvline(list(table.columns).index(switch) + 1, **SWITCH_STYLE)
    ax.set_xlabel("epoch")
    ax.set_ylabel("layer")
    ax.set_title(title if title is not None else grid.attrs.get("run", str(grid.name)))
    _thin_ticks(ax, table.columns)
    ax.tick_params(axis="y", labelrotation=0, labelsize="small")
    return figure


def _thin_ticks(ax: Axes, epochs: pd.Index, most: int = 12) -> None:
    """At most `most` epoch labels, so long runs stay readable."""
    step = max(1, int(np.ceil(len(epochs) / most)))
    positions = np.arange(0, len(epochs), step)
    ax.set_xticks(positions + 0.5)
    ax.set_xticklabels([str(epochs[i]) for i in positions], rotation=0)


def abx_by_layer(
    grids: Mapping[str, xr.DataArray],
    *,
    epoch: int | None = None,
    ax: Axes | None = None,
    title: str = "ABX error by layer, final epoch",
    scale: float = 100.0,
) -> Figure:
    """The paper's Fig. 2 (left): ABX error by layer at the final (or given) epoch, one line per run,
    log y."""
    figure, ax = _axes(ax)
    rows = {n: g.isel(epoch=-1) if epoch is None else g.sel(epoch=epoch) for n, g in grids.items()}
    _lines(ax, {n: (r.layer.values, scale * r.values) for n, r in rows.items()})
    _log_y(ax, [scale * r.values for r in rows.values()])
    _label(ax, "layer", "ABX error (%)", title)
    return figure


def best_layer_by_epoch(
    grids: Mapping[str, xr.DataArray],
    *,
    ax: Axes | None = None,
    switch: int | None = None,
    title: str = "best-layer ABX error over epochs",
    scale: float = 100.0,
) -> Figure:
    """The paper's Fig. 2 (right): the best layer's ABX error at each epoch, one line per run."""
    figure, ax = _axes(ax)
    best = {name: grid.min("layer", skipna=True) for name, grid in grids.items()}
    _lines(ax, {name: (b.epoch.values, scale * b.values) for name, b in best.items()})
    if switch is not None:
        ax.axvline(switch, **SWITCH_STYLE)
    _label(ax, "epoch", "best-layer ABX error (%)", title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure


def _lines(ax: Axes, series: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="o", markersize=3, label=name)
    if series:
        ax.legend(fontsize="small", ncols=2)


def _log_y(ax: Axes, values: list[np.ndarray]) -> None:
    """Log y; an error of exactly 0 (possible on easy synthetic speech) has no log, so then the axis is
    symlog, linear below the smallest positive value."""
    flat = np.concatenate([np.ravel(v) for v in values]) if values else np.array([])
    positive = flat[np.isfinite(flat) & (flat > 0)]
    if positive.size == flat[np.isfinite(flat)].size:
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)


def _label(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def losses(
    metrics: Mapping[str, pd.DataFrame],
    *,
    switch: int | None = None,
    columns: tuple[str, ...] = ("loss_av", "loss_aud"),
    title: str | None = None,
) -> Figure:
    """The paper's Fig. 3: each loss over epochs (one panel per loss), one line per run, log y, the
    stage switch marked. metrics: run name -> table with `epoch` and the loss columns."""
    figure = Figure(figsize=(4.2 * len(columns), 3.6), layout="constrained")
    panels = figure.subplots(1, len(columns), squeeze=False)[0]
    for ax, column in zip(panels, columns, strict=True):
        for name, table in metrics.items():
            if column in table.columns and table[column].notna().any():
                ax.plot(table["epoch"], table[column], marker="o", markersize=2, label=name)
        if switch is not None:
            ax.axvline(switch, **SWITCH_STYLE)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(column)
        ax.set_title(column)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def drift_heatmap(
    drift: xr.DataArray,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    switch: int | None = None,
) -> Figure:
    """Heatmap of drift: CKA of each layer with itself at the switch epoch (1 = unchanged)."""
    return heatmap(
        drift,
        ax=ax,
        title=title if title is not None else f"drift of {drift.attrs.get('run', '')}",
        scale=1.0,
        cmap="magma",
        switch=switch,
        label="CKA with the switch epoch",
        vmin=0.0,
        vmax=1.0,
    )


def save_figure(figure: Figure, path: Path | str, dpi: int = 120) -> Path:
    """Save `figure` as PNG (atomically) and return the path."""
    return write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))
