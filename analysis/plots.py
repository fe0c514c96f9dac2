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
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from training.fileio import write_atomic

__all__ = [
    "heatmap",
    "overlapping_cells",
    "abx_by_layer",
    "best_layer_by_epoch",
    "best_over_layers",
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


Switch = int | str | None
Cell = tuple[int, int]


def heatmap(
    grid: xr.DataArray,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    scale: float = 100.0,
    cmap: str = "viridis_r",
    switch: Switch | Mapping[str, int | None] = "auto",
    run: Path | str | Mapping[str, Path | str] | None = None,
    overlap: Cell | str | None = None,
    label: str = "ABX error (%)",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Layer x epoch heatmap of a grid (layer 0 at the bottom), values x `scale`, switch marked.

    grid: (epoch, layer); or stacked (`analysis.stack`: a `run` dim) for one panel per run; a `seed`
    dim is averaged (the panel's title says over how many seeds).
    switch: an epoch, None (no line) or "auto": the grid's ``switch`` attr (or, stacked, its
    ``switch`` coordinate), else the stage switch of the run (`run`, else the grid's ``run`` attr
    when it names a run directory) read from its metrics or config.json. For a stacked grid,
    `switch` and `run` may also map each run's name to its switch or its run directory.
    overlap: a reference cell (epoch, layer), or "switch" (the best layer at the switch epoch): cells
    whose interval (coords `low`, `high`) overlaps the reference cell's are dotted, i.e. not told
    apart from it at this size; the reference cell is boxed.
    """
    if "run" in grid.dims:
        options = {"scale": scale, "cmap": cmap, "overlap": overlap, "label": label}
        return _panels_per_run(grid, ax=ax, title=title, switch=switch, run=run, vmin=vmin,
                               vmax=vmax, **options)  # fmt: skip
    seeds = grid.sizes.get("seed", 0)
    if seeds:
        grid = _seed_mean(grid)
    figure, ax = _axes(ax, (6.0, 3.8))
    table = (grid * scale).transpose("layer", "epoch").to_pandas().sort_index(ascending=False)
    sns.heatmap(
        table, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, cbar_kws={"label": label}, linewidths=0
    )
    epoch = _resolve_switch(grid, switch, run)
    if epoch is not None and epoch in list(table.columns):
        # Heatmap cells sit at integer offsets: the line goes after the switch epoch's column.
        ax.axvline(list(table.columns).index(epoch) + 1, **SWITCH_STYLE)
    elif epoch is not None and len(table.columns) and epoch == table.columns[0] - 1:
        ax.axvline(0, **SWITCH_STYLE)  # a run started from another's checkpoint at `epoch`
    _mark_overlap(ax, grid, table, overlap, epoch)
    ax.set_xlabel("epoch")
    ax.set_ylabel("layer")
    name = title if title is not None else grid.attrs.get("run", str(grid.name))
    ax.set_title(f"{name} (mean of {seeds} seeds)" if seeds else name)
    _thin_ticks(ax, table.columns)
    ax.tick_params(axis="y", labelrotation=0, labelsize="small")
    return figure


def _seed_mean(grid: xr.DataArray) -> xr.DataArray:
    """The mean over seeds, with the seeds' mean interval bounds as its `low`/`high`."""
    mean = grid.drop_vars(["low", "high"], errors="ignore").mean("seed", keep_attrs=True)
    for bound in ("low", "high"):
        if bound in grid.coords:
            mean = mean.assign_coords({bound: grid.coords[bound].mean("seed")})
    return mean


def _panels_per_run(
    grid: xr.DataArray, *, ax: Axes | None, title: str | None, switch, run, **options
) -> Figure:
    runs = [str(r) for r in grid.run.values]
    if ax is not None and len(runs) > 1:
        raise ValueError(f"a stacked grid of {len(runs)} runs needs its own figure: pass no ax")

    def draw(panel: Axes, name: str, label: str) -> None:
        own_switch = switch.get(name) if isinstance(switch, Mapping) else switch
        own_run = run.get(name) if isinstance(run, Mapping) else run
        heatmap(_one_run(grid, name), ax=panel, title=label, switch=own_switch, run=own_run,
                **options)  # fmt: skip

    if ax is not None:
        draw(ax, runs[0], title or runs[0])
        return ax.figure
    columns = min(3, len(runs))
    rows = int(np.ceil(len(runs) / columns))
    figure = Figure(figsize=(5.0 * columns, 3.4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for panel, name in zip(axes, runs, strict=False):
        draw(panel, name, name)
    for panel in axes[len(runs) :]:
        panel.set_visible(False)
    if title:
        figure.suptitle(title)
    return figure


def _one_run(grid: xr.DataArray, name: str) -> xr.DataArray:
    """One run of a stacked grid, its epochs the ones it has (a stack pads with NaN)."""
    one = grid.sel(run=name).drop_vars("run")
    for dim in [d for d in ("seed", "epoch") if d in one.dims]:  # drop the stack's NaN padding
        present = one.notnull().any([d for d in one.dims if d != dim])
        one = one.isel({dim: np.flatnonzero(present.values)})
    if one.sizes.get("seed") == 1:
        one = one.squeeze("seed", drop=True)
    one.attrs = {**grid.attrs, "run": name}
    if "switch" in one.coords:  # `analysis.stack` keeps each run's switch as a coordinate
        if np.isfinite(float(one.coords["switch"])):
            one.attrs["switch"] = int(one.coords["switch"])
        one = one.drop_vars("switch")
    return one


def _resolve_switch(grid: xr.DataArray, switch: Switch, run: Path | str | None) -> int | None:
    if switch is None or isinstance(switch, int | np.integer):
        return None if switch is None else int(switch)
    if switch != "auto":
        raise ValueError(f"switch must be an epoch, None or 'auto', not {switch!r}")
    if "switch" in grid.attrs:
        return int(grid.attrs["switch"])
    from analysis.runs import switch_epoch

    candidate = Path(run) if run is not None else Path(str(grid.attrs.get("run", "")))
    if (candidate / "metrics.jsonl").is_file():
        return switch_epoch(candidate)
    if run is not None:
        raise FileNotFoundError(f"{run}: no metrics.jsonl to read the switch from")
    return None


def overlapping_cells(grid: xr.DataArray, reference: Cell) -> xr.DataArray:
    """True where a cell's interval (coords `low`, `high`) overlaps the `reference` (epoch, layer)
    cell's: the cells this grid cannot tell apart from it."""
    if "low" not in grid.coords or "high" not in grid.coords:
        raise ValueError("the grid has no intervals (coords low, high): compute it with bootstrap=")
    epoch, layer = reference
    low, high = grid.coords["low"], grid.coords["high"]
    ref_low, ref_high = (
        float(low.sel(epoch=epoch, layer=layer)),
        float(high.sel(epoch=epoch, layer=layer)),
    )
    return (low <= ref_high) & (high >= ref_low)


def _mark_overlap(ax: Axes, grid, table: pd.DataFrame, overlap, switch: int | None) -> None:
    if overlap is None:
        return
    if overlap == "switch":
        if switch is None:
            raise ValueError("overlap='switch' needs a switch epoch")
        best = grid.sel(epoch=switch)
        overlap = (switch, int(best.idxmin("layer")))
    epoch, layer = (int(v) for v in overlap)
    same = overlapping_cells(grid, (epoch, layer)).transpose("layer", "epoch").to_pandas()
    same = same.reindex(index=table.index, columns=table.columns).fillna(False).astype(bool)
    rows, cols = np.nonzero(same.to_numpy())
    ax.plot(cols + 0.5, rows + 0.5, linestyle="none", marker="o", markersize=2.5, color="white",
            markeredgecolor="0.2", markeredgewidth=0.5, label="overlaps the reference")  # fmt: skip
    row, col = list(table.index).index(layer), list(table.columns).index(epoch)
    ax.add_patch(Rectangle((col, row), 1, 1, fill=False, edgecolor="red", linewidth=1.5))


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
    log y. A band shows each cell's interval (coords `low`, `high`); a grid with a `seed` dim is
    drawn as its seed mean with a band of +-1 between-seed standard deviation."""
    figure, ax = _axes(ax)
    rows = {n: g.isel(epoch=-1) if epoch is None else g.sel(epoch=epoch) for n, g in grids.items()}
    series = {n: (r.layer.values, *_center_and_band(r, scale)) for n, r in rows.items()}
    _lines(ax, series)
    _log_y(ax, [values for _, values, _ in series.values()])
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
    """The paper's Fig. 2 (right): the best layer's ABX error at each epoch, one line per run, with
    the best cell's interval as a band (seeds: their mean, +-1 between-seed SD)."""
    figure, ax = _axes(ax)
    best = {name: best_over_layers(grid) for name, grid in grids.items()}
    _lines(ax, {name: (b.epoch.values, *_center_and_band(b, scale)) for name, b in best.items()})
    if switch is not None:
        ax.axvline(switch, **SWITCH_STYLE)
    _label(ax, "epoch", "best-layer ABX error (%)", title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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


def _lines(ax: Axes, series: Mapping[str, tuple]) -> None:
    """series: name -> (x, y) or (x, y, band), band = (low, high) or None, drawn shaded."""
    for name, (x, y, *band) in series.items():
        (line,) = ax.plot(x, y, marker="o", markersize=3, label=name)
        if band and band[0] is not None:
            low, high = band[0]
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
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
