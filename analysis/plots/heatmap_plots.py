"""The layer x epoch heatmaps: one grid (`heatmap`), small multiples on one colour scale
(`heatmaps`), the cells an interval cannot tell apart (`overlapping_cells`) and drift
(`drift_heatmap`).

Separate from the line plots: a heatmap has its own axis (epochs as a numeric axis with gaps),
seed means and marks (dots, box, gaps).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from analysis.plots.common import (
    SWITCH_LABEL,
    SWITCH_STYLE,
    _axes,
    _legend_below,
    _own,
    _switch_text,
)

__all__ = ["heatmap", "heatmaps", "overlapping_cells", "drift_heatmap"]

GAP_COLOUR = "0.88"  # a heatmap cell of an epoch that was not probed


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
    colorbar: bool = True,
    legend: bool = True,
) -> Figure:
    """Layer x epoch heatmap of a grid (layer 0 at the bottom), values x `scale`, switch marked.

    grid: (epoch, layer); or stacked (`analysis.stack`: a `run` dim) for one panel per run (see
    `heatmaps`: one colour scale and one colourbar for all panels); a `seed` dim is averaged (the
    panel's title says over how many seeds).
    Epochs are a numeric axis: each cell is as wide as the probing step, and an epoch that was not
    probed is a grey gap ("not probed" in the legend), not a missing column.
    switch: an epoch, None (no line) or "auto": the grid's ``switch`` attr (or, stacked, its
    ``switch`` coordinate), else the stage switch of the run (`run`, else the grid's ``run`` attr
    when it names a run directory) read from its metrics or config.json. The line is drawn after
    the switch epoch's cell and labelled. For a stacked grid, `switch` and `run` may also map each
    run's name to its switch or its run directory.
    overlap: a reference cell (epoch, layer), or "switch" (the best layer at the switch epoch): cells
    whose interval (coords `low`, `high`) overlaps the reference cell's are dotted, i.e. not told
    apart from it at this size; the reference cell is boxed.
    vmin, vmax: the colour scale's ends (default: the grid's range); colorbar, legend: draw them
    (panels of one figure share one of each instead).
    """
    if "run" in grid.dims:
        panels = {str(name): _one_run(grid, str(name)) for name in grid.run.values}
        if ax is not None:
            if len(panels) > 1:
                raise ValueError(
                    f"a stacked grid of {len(panels)} runs needs its own figure: pass no ax"
                )
            name, one = next(iter(panels.items()))
            own_switch = switch.get(name) if isinstance(switch, Mapping) else switch
            own_run = run.get(name) if isinstance(run, Mapping) else run
            return heatmap(one, ax=ax, title=title or name, scale=scale, cmap=cmap,
                           switch=own_switch, run=own_run, overlap=overlap, label=label,
                           vmin=vmin, vmax=vmax, colorbar=colorbar, legend=legend)  # fmt: skip
        return heatmaps(panels, title=title, scale=scale, cmap=cmap, switch=switch, run=run,
                        overlap=overlap, label=label, vmin=vmin, vmax=vmax)  # fmt: skip
    own_figure = ax is None
    figure, ax = _axes(ax, (6.0, 4.2))
    mesh, handles = _draw_heatmap(ax, grid, title=title, scale=scale, cmap=cmap, switch=switch,
                                  run=run, overlap=overlap, vmin=vmin, vmax=vmax)  # fmt: skip
    if colorbar:
        figure.colorbar(mesh, ax=ax, label=label)
    if legend and handles and own_figure:
        _legend_below(figure, list(handles.values()), 2)
    elif legend and handles:
        ax.legend(handles=list(handles.values()), fontsize="x-small", framealpha=0.8)
    return figure


def heatmaps(
    grids: Mapping[str, xr.DataArray],
    *,
    title: str | None = None,
    scale: float = 100.0,
    cmap: str = "viridis_r",
    switch: Switch | Mapping[str, int | None] = "auto",
    run: Path | str | Mapping[str, Path | str] | None = None,
    overlap: Cell | str | None | Mapping[str, Cell | str | None] = None,
    label: str = "ABX error (%)",
    vmin: float | None = None,
    vmax: float | None = None,
    columns: int = 3,
) -> Figure:
    """Small multiples: one `heatmap` panel per grid (name -> (epoch, layer) grid, a `seed` dim
    averaged), all on one colour scale (`vmin`/`vmax`, default the range over every panel) with one
    colourbar, and one legend for the marks (switch, dots, box, gaps). `title` is the figure's
    (name the condition there). `switch`, `run` and `overlap` may map a panel's name to its own."""
    grids = {n: _seed_mean(g) if "seed" in g.dims else g for n, g in grids.items()}
    seeds = {n: g.attrs.get("_seeds", 0) for n, g in grids.items()}
    scaled = [scale * g.values for g in grids.values() if np.isfinite(g.values).any()]
    if vmin is None:
        vmin = float(min(np.nanmin(v) for v in scaled)) if scaled else None
    if vmax is None:
        vmax = float(max(np.nanmax(v) for v in scaled)) if scaled else None
    columns = min(columns, max(len(grids), 1))
    rows = int(np.ceil(len(grids) / columns))
    figure = Figure(figsize=(4.4 * columns + 1.0, 3.0 * rows + 1.0), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    handles: dict[str, Any] = {}
    mesh = None
    for ax, (name, grid) in zip(axes, grids.items(), strict=False):
        mesh, marks = _draw_heatmap(ax, grid, title=name, scale=scale, cmap=cmap,
                                    switch=_own(switch, name), run=_own(run, name),
                                    overlap=_own(overlap, name),
                                    vmin=vmin, vmax=vmax, seeds=seeds[name])  # fmt: skip
        handles.update(marks)
    for ax in axes[len(grids) :]:
        ax.set_visible(False)
    drawn = axes[: len(grids)]
    if len(drawn):  # one epoch axis for all panels: the same epoch is at the same place
        left = min(ax.get_xlim()[0] for ax in drawn)
        right = max(ax.get_xlim()[1] for ax in drawn)
        for index, ax in enumerate(drawn):
            ax.set_xlim(left, right)
            if index % columns:
                ax.set_ylabel("")
    if mesh is not None:
        figure.colorbar(mesh, ax=list(axes[: len(grids)]), label=label, shrink=0.9)
    _legend_below(figure, list(handles.values()), 4, title)
    return figure


def _seed_mean(grid: xr.DataArray) -> xr.DataArray:
    """The mean over seeds, with the seeds' mean interval bounds as its `low`/`high` (attr
    ``_seeds``: how many seeds, for the title)."""
    mean = grid.drop_vars(["low", "high"], errors="ignore").mean("seed", keep_attrs=True)
    for bound in ("low", "high"):
        if bound in grid.coords:
            mean = mean.assign_coords({bound: grid.coords[bound].mean("seed")})
    mean.attrs["_seeds"] = int(grid.sizes["seed"])
    return mean


def _epoch_step(epochs: np.ndarray) -> int:
    """The probing step: the greatest common divisor of the gaps between probed epochs (>= 1)."""
    gaps = np.diff(np.sort(np.asarray(epochs, dtype=np.int64)))
    gaps = gaps[gaps > 0]
    return max(1, int(np.gcd.reduce(gaps))) if gaps.size else 1


def _draw_heatmap(ax: Axes, grid: xr.DataArray, *, title, scale, cmap, switch, run, overlap,
                  vmin, vmax, seeds: int = 0):  # fmt: skip
    """Draw one panel; returns (the mesh, {label: legend handle} of the marks it drew)."""
    if "seed" in grid.dims:
        grid = _seed_mean(grid)
    seeds = seeds or grid.attrs.get("_seeds", 0)
    epochs = np.asarray(grid.epoch.values, dtype=np.int64)
    layers = np.asarray(grid.layer.values, dtype=np.int64)
    step = _epoch_step(epochs)
    columns = np.arange(epochs.min(), epochs.max() + step, step) if epochs.size else epochs
    rows = np.arange(layers.min(), layers.max() + 1) if layers.size else layers
    table = (grid * scale).transpose("layer", "epoch").to_pandas()
    table = table.reindex(index=rows, columns=columns)  # unprobed epochs: NaN, a gap
    x_edges = np.append(columns - step / 2, columns[-1] + step / 2) if columns.size else [0, 1]
    y_edges = np.append(rows - 0.5, rows[-1] + 0.5) if rows.size else [0, 1]
    values = np.ma.masked_invalid(table.to_numpy(dtype=float))
    mesh = ax.pcolormesh(x_edges, y_edges, values, cmap=cmap, vmin=vmin, vmax=vmax, zorder=1)
    handles: dict[str, Any] = {}
    if values.mask.any() and columns.size:  # the gaps, inside the probed range only
        ax.add_patch(Rectangle((x_edges[0], y_edges[0]), x_edges[-1] - x_edges[0],
                               y_edges[-1] - y_edges[0], facecolor=GAP_COLOUR, linewidth=0,
                               zorder=0.5))  # fmt: skip
        gap = Patch(facecolor=GAP_COLOUR, edgecolor="0.6", label="not probed")
        handles[gap.get_label()] = gap
    epoch = _resolve_switch(grid, switch, run)
    if epoch is not None and columns.size and columns[0] - step <= epoch <= columns[-1]:
        # The line goes after the switch epoch's cell (before the first, for a run started from
        # another's checkpoint at `epoch`).
        (line,) = [ax.axvline(epoch + step / 2, **SWITCH_STYLE, label=SWITCH_LABEL)]
        _switch_text(ax, epoch + step / 2)
        handles[line.get_label()] = line
    handles.update(_mark_overlap(ax, grid, overlap, epoch, step))
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=min(13, max(len(rows), 1)), integer=True))
    ax.tick_params(axis="both", labelsize="small")
    ax.set_xlabel("epoch")
    ax.set_ylabel("layer")
    name = title if title is not None else grid.attrs.get("run", str(grid.name))
    ax.set_title(f"{name} (mean of {seeds} seeds)" if seeds else name)
    return mesh, handles


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


def _mark_overlap(ax: Axes, grid, overlap, switch: int | None, step: int) -> dict[str, Any]:
    """Dot the cells whose interval overlaps the reference cell's, box the reference cell; returns
    their legend handles."""
    if overlap is None:
        return {}
    if overlap == "switch":
        if switch is None:
            raise ValueError("overlap='switch' needs a switch epoch")
        best = grid.sel(epoch=switch)
        overlap = (switch, int(best.idxmin("layer")))
        reference = f"best layer at the switch (epoch {switch}, layer {overlap[1]})"
    else:
        reference = f"reference cell (epoch {int(overlap[0])}, layer {int(overlap[1])})"
    epoch, layer = (int(v) for v in overlap)
    same = overlapping_cells(grid, (epoch, layer)).fillna(False).astype(bool)
    same = same.transpose("epoch", "layer")
    at_epoch, at_layer = np.nonzero(same.values)
    x, y = same.epoch.values[at_epoch], same.layer.values[at_layer]
    (dots,) = ax.plot(x, y, linestyle="none", marker="o", markersize=2.5, color="white",
                      markeredgecolor="0.2", markeredgewidth=0.5,
                      label="interval overlaps the boxed cell's (not told apart)")  # fmt: skip
    box = Rectangle((epoch - step / 2, layer - 0.5), step, 1, fill=False, edgecolor="red",
                    linewidth=1.5, label=reference)  # fmt: skip
    ax.add_patch(box)
    legend_box = Rectangle((0, 0), 1, 1, fill=False, edgecolor="red", linewidth=1.5,
                           label="boxed: " + reference.split(" (")[0])  # fmt: skip
    return {dots.get_label(): dots, legend_box.get_label(): legend_box}


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
