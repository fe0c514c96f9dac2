"""The report's figures: Fig. 2 and 3, the layer x epoch heatmaps, drift and sharing (PNG files).

`write_figures` draws every figure of OUT/report.md from a Study (`analysis.plots` does the
drawing; this module decides which grids go in which figure, one panel per model, seeds stacked).
They are apart from report.py, which writes the tables and the Markdown around them; `FIGURES`,
the headline figures' file names, still imports from `analysis.paper.report`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr
from matplotlib.figure import Figure

from analysis import plots
from analysis.gridding.driver import stack
from analysis.paper.study import Study

__all__ = ["FIGURES", "FIG2_CONDITIONS", "write_figures", "slug"]

FIGURES = ("fig2_abx_by_layer.png", "fig2_best_layer_by_epoch.png", "fig3_losses.png")
# The paper's Fig. 2 and Table II use within- and across-speaker ABX on the other data set (read speech).
FIG2_CONDITIONS = ("within speaker", "across speaker")


def _main_condition(study: Study, condition: str = "within speaker") -> str:
    """The ABX grid name the headline figures use: `condition` on the read set if measured."""
    for name in (f"read, {condition}", f"captions, {condition}"):
        if name in study.abx:
            return name
    return next(iter(study.abx))


def slug(text: str) -> str:
    """A file-name-safe version of `text`: "read, within speaker" -> "read_within_speaker"."""
    return re.sub(r"[^A-Za-z0-9+]+", "_", text).strip("_").lower()


def _panels(count: int, width: float = 4.2, height: float = 3.2, columns: int = 3):
    columns = min(columns, max(count, 1))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return figure, axes


def _by_model(study: Study, grids: Mapping[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """One grid per model: a run's own, or its seeds stacked along `seed` (figures draw their mean)."""
    out = {}
    for model, seeds in study.models().items():
        present = {seed: grids[name] for seed, name in seeds.items() if name in grids}
        if len(present) == 1:
            out[model] = next(iter(present.values()))
        elif present:
            out[model] = stack(present, dim="seed")
    return out


def _model_switches(study: Study) -> dict[str, int | None]:
    """model -> its switch epoch (its first seed's run; None for a single-stage model)."""
    return {model: study.switch(seeds[min(seeds)]) for model, seeds in study.models().items()}


def _fig2(study: Study, draw, out: Path, name: str, title: str) -> Path:
    """Fig. 2 as small multiples: one panel per model, one line per condition (read speech, within
    and across speaker), on one y axis."""
    conditions = [_main_condition(study, c) for c in FIG2_CONDITIONS]
    conditions = list(dict.fromkeys(c for c in conditions if c in study.abx))
    grids = {c: _by_model(study, study.abx[c]) for c in conditions}
    figure = plots.by_model(draw, grids, title=title, switch=_model_switches(study))
    return plots.save_figure(figure, out / name)


def _heatmaps(grids: Mapping[str, xr.DataArray], study: Study, path: Path, **options) -> Path:
    """One panel per model on one colour scale; for ABX grids with intervals the cells that
    overlap the best cell at the switch are dotted."""
    by_model = _by_model(study, grids) if set(grids) <= set(study.runs) else dict(grids)
    switches = {name: _model_switches(study).get(name) for name in by_model}
    overlap = {
        name: "switch" if switches[name] is not None and "low" in grid.coords else None
        for name, grid in by_model.items()
    }
    if options.get("scale", 100.0) != 100.0:  # CKA grids: no intervals to compare
        overlap = None
    figure = plots.heatmaps(by_model, switch=switches, overlap=overlap, **options)
    return plots.save_figure(figure, path)


def write_figures(study: Study, out: Path) -> list[Path]:
    """All figures of the report; returns their paths."""
    switches = {study.switch(name) for name in study.runs} - {None}
    switch = switches.pop() if len(switches) == 1 else None  # one shared switch epoch is marked
    written = [
        _fig2(study, plots.abx_by_layer, out, FIGURES[0],
              "Fig. 2 (left): ABX error by layer at the final epoch, read speech"),
        _fig2(study, plots.best_layer_by_epoch, out, FIGURES[1],
              "Fig. 2 (right): best-layer ABX error over epochs, read speech"),
        plots.save_figure(
            plots.losses(_seed0(study, study.metrics), switch=switch,
                         title="Fig. 3: training losses over epochs (seed 0)"),
            out / FIGURES[2],
        ),
    ]  # fmt: skip
    for condition, grids in study.abx.items():
        path = out / f"heatmap_{slug(condition)}.png"
        title = f"ABX error (%), {_condition_title(condition)}: layer × epoch"
        written.append(_heatmaps(grids, study, path, title=title))
    if study.drift:
        title = "Drift: CKA of each layer with itself at the switch (1 = unchanged)"
        written.append(_heatmaps(study.drift, study, out / "drift.png", title=title, scale=1.0,
                                 cmap="magma", label="CKA with the switch epoch", vmin=0.0,
                                 vmax=1.0))  # fmt: skip
    if study.similarity:
        title = "Sharing: CKA between two base runs' same layer (1 = the same representation)"
        written.append(_heatmaps(study.similarity, study, out / "sharing.png", title=title,
                                 scale=1.0, cmap="magma", label="CKA", vmin=0.0,
                                 vmax=1.0))  # fmt: skip
    return written


def _condition_title(condition: str) -> str:
    """ "read, within speaker" -> "read speech, within speaker" (the ABX set said in words)."""
    sets = {"read": "read speech", "captions": "spoken captions"}
    name, _, rest = condition.partition(", ")
    return f"{sets.get(name, name)}, {rest}" if rest else condition


def _seed0(study: Study, by_run: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of each model's first seed, under the model's name (curves of one seed each)."""
    firsts = {seeds[min(seeds)]: model for model, seeds in study.models().items()}
    return {firsts[name]: value for name, value in by_run.items() if name in firsts}
