"""Write a Study as OUT/report.md with PNG figures and CSV/Markdown tables.

Files (all written atomically, so a report is never half-written):
    report.md
    fig2_abx_by_layer.png          ABX by layer at the final epoch, one line per run, log y
    fig2_best_layer_by_epoch.png   best-layer ABX over epochs, one line per run
    fig3_losses.png                loss_av and loss_aud over epochs, log y, switch marked
    heatmap_<set>_<condition>.png  layer x epoch ABX heatmaps, one panel per run
    drift.png                      CKA of each layer with itself at the switch, one panel per variant
    sharing.png                    CKA between base runs' same layers, per epoch (if measured)
    tables/table1_recall.{csv,md}, tables/table2_best_layer_abx.{csv,md},
    tables/forgetting.{csv,md}, tables/sharing.{csv,md}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from analysis import plots
from analysis.claims import claims_markdown
from analysis.forgetting_metrics import forgetting_table
from analysis.study import RunSpec, Study, collect
from analysis.tables import best_layer_table, recall_table, to_markdown, write_table
from training.fileio import write_text_atomic

__all__ = ["write_report", "report_runs", "forgetting_tables", "sharing_table", "FIGURES"]

FIGURES = ("fig2_abx_by_layer.png", "fig2_best_layer_by_epoch.png", "fig3_losses.png")
# The paper's Fig. 2 and Table II use within- and across-speaker ABX on the other data set (read speech).
FIG2_CONDITIONS = ("within speaker", "across speaker")


def _main_condition(study: Study, condition: str = "within speaker") -> str:
    """The ABX grid name the headline figures use: `condition` on the read set if measured."""
    for name in (f"read, {condition}", f"captions, {condition}"):
        if name in study.abx:
            return name
    return next(iter(study.abx))


def _slug(text: str) -> str:
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


def _fig2(study: Study, draw, out: Path, name: str, **options: Any) -> Path:
    conditions = [_main_condition(study, c) for c in FIG2_CONDITIONS]
    conditions = list(dict.fromkeys(c for c in conditions if c in study.abx))
    figure, axes = _panels(len(conditions), 5.2, 3.8, 2)
    for ax, condition in zip(axes, conditions, strict=False):
        draw(study.abx[condition], ax=ax, title=condition, **options)
    return plots.save_figure(figure, out / name)


def _heatmaps(grids: Mapping[str, xr.DataArray], study: Study, path: Path, draw, **options) -> Path:
    figure, axes = _panels(len(grids))
    for ax, (name, grid) in zip(axes, grids.items(), strict=False):
        switch = study.switch(name) if name in study.runs else None
        draw(grid, ax=ax, title=name, switch=switch, **options)
    return plots.save_figure(figure, path)


def _write_figures(study: Study, out: Path) -> list[Path]:
    """All figures of the report; returns their paths."""
    switches = {study.switch(name) for name in study.runs} - {None}
    switch = switches.pop() if len(switches) == 1 else None  # one shared switch epoch is marked
    written = [
        _fig2(study, plots.abx_by_layer, out, FIGURES[0]),
        _fig2(study, plots.best_layer_by_epoch, out, FIGURES[1], switch=switch),
        plots.save_figure(plots.losses(study.metrics, switch=switch), out / FIGURES[2]),
    ]
    for condition, grids in study.abx.items():
        path = out / f"heatmap_{_slug(condition)}.png"
        written.append(_heatmaps(grids, study, path, plots.heatmap))
    if study.drift:
        written.append(_heatmaps(study.drift, study, out / "drift.png", plots.drift_heatmap))
    if study.similarity:
        draw = _similarity_heatmap
        written.append(_heatmaps(study.similarity, study, out / "sharing.png", draw))
    return written


def _similarity_heatmap(grid: xr.DataArray, *, ax, title: str, switch: int | None) -> Figure:
    return plots.heatmap(
        grid, ax=ax, title=f"CKA {title}", scale=1.0, cmap="magma", label="CKA", vmin=0, vmax=1
    )


def forgetting_tables(study: Study) -> pd.DataFrame:
    """Forgetting of every run with a switch, one block of rows per run (index: run, metric)."""
    blocks = {}
    for name in study.runs:
        switch = study.switch(name)
        if switch is None:
            continue
        grids = {f"abx_{_slug(c)}": study.abx[c][name] for c in study.abx}  # "abx": lower is better
        blocks[name] = forgetting_table(study.metrics[name], grids, switch=switch)
    if not blocks:
        return pd.DataFrame()
    return pd.concat(blocks, names=["run", "metric"])


def sharing_table(study: Study) -> pd.DataFrame:
    """CKA per layer at the last common epoch (between runs) and at the final epoch (drift)."""
    rows = {
        f"CKA {name}": grid.isel(epoch=-1).to_series() for name, grid in study.similarity.items()
    }
    rows.update({f"drift {name}": g.isel(epoch=-1).to_series() for name, g in study.drift.items()})
    table = pd.DataFrame(rows).T
    table.columns = [f"layer {layer}" for layer in table.columns]
    table.index.name = "final epoch"
    return table


def _write_tables(study: Study, out: Path) -> dict[str, pd.DataFrame]:
    """Table I, Table II, forgetting and sharing tables as CSV + Markdown in OUT/tables."""
    conditions = {c: {n: g for n, g in grids.items()} for c, grids in study.abx.items()}
    by_model: dict[str, dict[str, xr.DataArray]] = {}
    for condition, grids in conditions.items():
        for model, grid in grids.items():
            by_model.setdefault(model, {})[condition] = grid
    tables = {
        "table1_recall": recall_table(study.recall),
        "table2_best_layer_abx": best_layer_table(by_model),
        "forgetting": forgetting_tables(study),
    }
    if study.similarity or study.drift:
        tables["sharing"] = sharing_table(study)
    for name, table in tables.items():
        write_table(table, out / "tables" / name, digits=3 if name == "sharing" else 2)
    return tables


def write_report(
    study: Study,
    out: Path | str,
    *,
    title: str = "sslvgs report",
    preamble: str = "",
    claims: bool = True,
) -> Path:
    """Figures, tables and OUT/report.md for `study`; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _write_figures(study, out)
    tables = _write_tables(study, out)
    sections = [f"# {title}\n", preamble]
    if claims:
        sections.append(claims_markdown(study))
    sections += [
        f"## Table I: retrieval recall (%), test split, final epoch{_split_size(study)}\n",
        to_markdown(tables["table1_recall"]),
        "## Table II: best-layer ABX error (%) at the final epoch (layer)\n",
        to_markdown(tables["table2_best_layer_abx"]),
        "## Figures\n",
        *[f"![{p.stem}]({p.name})\n" for p in figures],
        "## Forgetting after the switch\n",
        _forgetting_note(),
        to_markdown(tables["forgetting"].reset_index().set_index("run"), digits=3)
        if not tables["forgetting"].empty
        else "(no run with a stage switch)\n",
    ]
    if "sharing" in tables:
        sections += ["## Sharing: CKA per layer\n", to_markdown(tables["sharing"], digits=3)]
    return write_text_atomic(out / "report.md", "\n".join(sections))


def _split_size(study: Study) -> str:
    """ "(50 images, 250 captions; chance R@1 2.0%)" from the recalls, if they say."""
    sizes = {(r.get("images"), r.get("captions")) for r in study.recall.values()} - {(None, None)}
    if len(sizes) != 1:
        return ""
    images, captions = sizes.pop()
    return f" ({images:.0f} images, {captions:.0f} captions; chance speech→image R@1 {100 / images:.1f}%)"


def _forgetting_note() -> str:
    return (
        "Per run with a stage switch and per metric: the value at the switch, the final value, the "
        "largest drop after the switch (how much worse it got; lower is better for losses and ABX, "
        "higher for recall), the epoch of the worst value and how many epochs after the switch it "
        "took to get back to its value at the switch (– = never).\n"
    )


def report_runs(
    runs: Sequence[Path | str],
    out: Path | str,
    *,
    corpus: Path | str | None = None,
    every: int = 1,
    client: Any = None,
    progress: bool = True,
) -> Path:
    """`sslvgs report`: measure the runs (cached) and write OUT/report.md, without the paper's claims."""
    specs = [_run_spec(Path(run)) for run in runs]
    corpus = corpus if corpus is not None else _corpus_of(specs[0].path)
    study = collect(specs, corpus, every=every, client=client, progress=progress)
    return write_report(study, out, title="sslvgs report", claims=False)


def _config(run: Path) -> dict:
    from training.rundir import read_config

    return read_config(run)


def _run_spec(run: Path) -> RunSpec:
    """A run as the report sees it: one started from another run's checkpoint (init_from) is
    stitched onto that run, whose checkpoint's epoch is its switch."""
    from training.rundir import run_of

    init = _config(run).get("init_from")
    if not init:
        return RunSpec(name=run.resolve().name, path=run)
    checkpoint = Path(init["checkpoint"])
    return RunSpec(
        name=run.resolve().name, path=run, base=run_of(checkpoint), switch=int(init["epoch"])
    )


def _corpus_of(run: Path) -> Path:
    from training.rundir import run_corpus

    corpus = run_corpus(run)
    if corpus is None:
        raise ValueError(f"{run}: its config.json names no corpus; pass --corpus")
    return corpus
