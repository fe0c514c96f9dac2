"""Write a Study as OUT/report.md with PNG figures and CSV/Markdown tables.

Files (all written atomically, so a report is never half-written):
    report.md
    fig2_abx_by_layer.png          ABX by layer at the final epoch, one line per run, log y
    fig2_best_layer_by_epoch.png   best-layer ABX over epochs, one line per run
    fig3_losses.png                loss_av and loss_aud over epochs, log y, switch marked
    heatmap_<set>_<condition>.png  layer x epoch ABX heatmaps, one panel per run (with grid
                                   intervals: cells that overlap the best cell at the switch dotted)
    drift.png                      CKA of each layer with itself at the switch, one panel per variant
    sharing.png                    CKA between base runs' same layers, per epoch (if measured)
    tables/table1_recall.{csv,md}, tables/table2_best_layer_abx.{csv,md} (with intervals; with
    several seeds also *_seeds.{csv,md}), tables/claims.{csv,md}, tables/forgetting.{csv,md},
    tables/sharing.{csv,md}

The figures are drawn in report_figures.py; `FIGURES` (their file names) and `FIG2_CONDITIONS`
are imported here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from analysis.forgetting_metrics import BEST_LAYER, forgetting_table
from analysis.metric_names import metric
from analysis.paper.claims import claims_markdown, claims_table, decide
from analysis.paper.material import material_markdown, split_text
from analysis.paper.report_figures import FIG2_CONDITIONS as FIG2_CONDITIONS
from analysis.paper.report_figures import FIGURES, slug, write_figures
from analysis.paper.study import RunSpec, Study, collect
from analysis.paper.tables import (
    best_layer_table,
    recall_table,
    summarise_seeds,
    to_markdown,
    write_table,
)
from training.fileio import write_text_atomic

__all__ = ["write_report", "report_runs", "forgetting_tables", "sharing_table", "FIGURES"]


def forgetting_tables(study: Study) -> pd.DataFrame:
    """Forgetting of every run with a switch, one block of rows per run (index: run, metric)."""
    blocks = {}
    for name in study.runs:
        switch = study.switch(name)
        if switch is None:
            continue
        grids = {f"abx_{slug(c)}": study.abx[c][name] for c in study.abx}  # "abx": lower is better
        blocks[name] = forgetting_table(study.metrics[name], grids, switch=switch)
    if not blocks:
        return pd.DataFrame()
    return _in_percent(pd.concat(blocks, names=["run", "metric"]), study)


def _in_percent(table: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The forgetting table as the other tables show numbers: recall and ABX error in percent (the
    losses as they are), what each row is measured on, which way is better, epochs as integers."""
    validation = study.material.get("validation", {}).get("split", "validation")
    metrics = table.index.get_level_values("metric")
    percent = [metric(m) is not None and metric(m).is_recall or m.startswith(BEST_LAYER)
               for m in metrics]  # fmt: skip
    out = table.copy()
    for column in ("at_switch", "final", "largest_drop"):
        out[column] = out[column].where(~pd.Series(percent, index=out.index), out[column] * 100)
    out.insert(0, "measured on", [
        f"validation split `{validation}`, %" if metric(m) is not None and metric(m).is_recall
        else "ABX error, best layer, %" if m.startswith(BEST_LAYER) else "training loss"
        for m in metrics
    ])  # fmt: skip
    out.insert(1, "better", ["higher" if h else "lower" for h in out.pop("higher_is_better")])
    for column in ("worst_epoch", "epochs_to_recover"):
        out[column] = out[column].round().astype("Int64")
    return out


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


def abx_intervals(study: Study, n_boot: int = 1000) -> dict[str, dict[str, tuple[float, float]]]:
    """run -> condition -> the speaker-bootstrap interval of its best final layer's error (from the
    per-cell results the study kept)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for condition, results in study.best_cells.items():
        for name, result in results.items():
            if result is not None:
                interval = result.bootstrap(n_boot=n_boot)
                out.setdefault(name, {})[condition] = (interval.low, interval.high)
    return out


def _write_tables(study: Study, out: Path, claims: list | None) -> dict[str, pd.DataFrame]:
    """Table I, Table II (with intervals; with several seeds also their per-model summaries), the
    claims, forgetting and sharing tables as CSV + Markdown in OUT/tables."""
    by_model: dict[str, dict[str, xr.DataArray]] = {}
    for condition, grids in study.abx.items():
        for model, grid in grids.items():
            by_model.setdefault(model, {})[condition] = grid
    tables = {
        "table1_recall": recall_table(study.recall, intervals=study.recall_intervals),
        "table2_best_layer_abx": best_layer_table(by_model, intervals=abx_intervals(study)),
        "forgetting": forgetting_tables(study),
    }
    groups = {model: list(seeds.values()) for model, seeds in study.models().items()}
    if any(len(names) > 1 for names in groups.values()):
        for name in ("table1_recall", "table2_best_layer_abx"):
            tables[f"{name}_seeds"] = summarise_seeds(tables[name], groups)
    if claims is not None:
        tables["claims"] = claims_table(claims)
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
    figures = write_figures(study, out)
    decided = decide(study) if claims else None
    tables = _write_tables(study, out, decided)
    sections = [f"# {title}\n", preamble, _material_section(study)]
    if decided is not None:
        sections.append(claims_markdown(study, decided))
    if "table1_recall_seeds" in tables:
        sections += [
            "## Tables I and II over seeds\n",
            "Per model: the mean over its seeds ± the between-seed standard deviation, then the "
            "seeds' mean within-run 95% interval in brackets (the test set's sampling noise), and "
            "Table II's most frequent best layer.\n",
            to_markdown(tables["table1_recall_seeds"]),
            to_markdown(tables["table2_best_layer_abx_seeds"]),
        ]
    sections += [
        f"## Table I: retrieval recall (%), test split, final epoch{_split_size(study)}\n",
        "Each value with its 95% interval over resampled test images (images with their "
        "captions).\n",
        to_markdown(tables["table1_recall"]),
        "## Table II: best-layer ABX error (%) at the final epoch [95% interval] (layer)\n",
        "Intervals: the ABX engine's bootstrap over speakers.\n",
        to_markdown(tables["table2_best_layer_abx"]),
        *_layer0_note(tables["table2_best_layer_abx"]),
        "## The paper's Tables I and II, for comparison\n",
        PAPER_TABLES,
        "## Figures\n",
        "Fig. 2's bands: each cell's 95% interval (with several seeds: ± one between-seed SD).\n",
        *[f"![{p.stem}]({p.name})\n" for p in figures],
        "## Forgetting after the switch\n",
        _forgetting_note(study),
        to_markdown(tables["forgetting"].reset_index().set_index("run"), digits=2)
        if not tables["forgetting"].empty
        else "(no run with a stage switch)\n",
    ]
    if "sharing" in tables:
        sections += ["## Sharing: CKA per layer\n", to_markdown(tables["sharing"], digits=3)]
    return write_text_atomic(out / "report.md", "\n".join(sections))


# The paper's Tables I and II (SpokenCOCO test, 5k images x 5 captions, final epoch; ABX on
# LibriSpeech dev-clean, best layer in brackets, numbered 1-12 as the paper prints them).
PAPER_TABLES = """The paper's models on SpokenCOCO's test split (5,000 images, 25,000 captions; chance \
R@1 0.02%) and LibriSpeech dev-clean ABX (best layer in brackets, numbered 1-12 as the paper prints \
them; here layer 0 is the feature encoder's output and 1-N the transformer layers).

| model | speech→image R@1 / R@10 | image→speech R@1 / R@10 | ABX within | ABX across |
| --- | --- | --- | --- | --- |
| W2V2 | 0.0 / 0.2 | 0.0 / 0.2 | 7.05 (3) | 9.53 (4) |
| VGS | 28.4 / 69.4 | 40.1 / 81.5 | 4.82 (4) | 6.44 (4) |
| VGS+ | 29.0 / 70.1 | 40.1 / 81.8 | 5.09 (8) | 6.81 (8) |
| (W2V2,VGS+) | 32.0 / 74.7 | 44.4 / 85.0 | 6.95 (2) | 8.72 (5) |
| (VGS,VGS+) | 27.9 / 68.8 | 39.3 / 81.3 | 5.49 (7) | 7.55 (8) |
| (W2V2,VGS) | 32.3 / 74.9 | 44.8 / 84.8 | 6.74 (2) | 8.75 (2) |
| (VGS,W2V2) | 0.0 / 0.2 | 0.0 / 0.2 | 8.4 (1) | 11.54 (2) |
| (VGS+,W2V2) | 14.5 / 52.0 | 7.5 / 32.5 | 6.23 (8) | 8.35 (8) |
| (VGS+,VGS) | 28.8 / 70.0 | 39.8 / 81.5 | 4.50 (9) | 6.02 (9) |
"""


def _layer0_note(table: pd.DataFrame) -> list[str]:
    """A flag for every model whose best layer is 0, the feature encoder's output: its transformer
    layers did not beat their input, which says more about the model than its score does."""
    flagged = [
        f"{model} ({column[: -len(' layer')]})"
        for column in table.columns
        if column.endswith(" layer")
        for model, layer in table[column].items()
        if layer == 0
    ]
    if not flagged:
        return []
    return [
        "**Best layer 0** (the feature encoder's output, before any transformer layer) for "
        + ", ".join(flagged)
        + ": no transformer layer of these models beats its input on that condition.\n"
    ]


def _material_section(study: Study) -> str:
    material = study.material
    if not material:
        return ""
    full_scored = sorted({c.split(",")[0] for c, runs in study.full_cells.items() if runs})
    return material_markdown(material.get("test"), material.get("validation"),
                             material.get("abx", {}), full_scored)  # fmt: skip


def _split_size(study: Study) -> str:
    """ "(50 images, 250 captions; chance R@1 2.0% ...)" from the study's material, else from the
    recalls, if they say."""
    if study.material.get("test"):
        return f" ({split_text(study.material['test'])})"
    sizes = {(r.get("images"), r.get("captions")) for r in study.recall.values()} - {(None, None)}
    if len(sizes) != 1:
        return ""
    images, captions = sizes.pop()
    return f" ({images:.0f} images, {captions:.0f} captions; chance speech→image R@1 {100 / images:.1f}%)"


def _forgetting_note(study: Study) -> str:
    validation = study.material.get("validation")
    where = (
        f"The recall rows are the trainer's validation recall, logged every epoch on the "
        f"validation split `{validation['split']}` ({split_text(validation)}), not the test "
        "split of Table I. "
        if validation
        else "The recall rows are the trainer's validation recall, not the test split of Table I. "
    )
    return (
        "Per run with a stage switch and per metric: the value at the switch, the final value, the "
        "largest drop after the switch (how much worse it got; lower is better for losses and ABX, "
        "higher for recall), the epoch of the worst value and how many epochs after the switch it "
        "took to get back to its value at the switch (– = never, or never worse). Recall and ABX "
        "error in percent (drops in points), losses as logged. " + where + "\n"
    )


def report_runs(
    runs: Sequence[Path | str],
    out: Path | str,
    *,
    corpus: Path | str | None = None,
    every: int = 1,
    bootstrap: int = 0,
    client: Any = None,
    progress: bool = True,
) -> Path:
    """`sslvgs report`: measure the runs (cached) and write OUT/report.md, without the paper's claims.

    bootstrap: resamples for each grid cell's interval (0: none; Table I and II have intervals
    either way)."""
    specs = [_run_spec(Path(run)) for run in runs]
    corpus = corpus if corpus is not None else _corpus_of(specs[0].path)
    study = collect(
        specs, corpus, every=every, bootstrap=bootstrap, client=client, progress=progress
    )
    return write_report(study, out, title="sslvgs report", claims=False)


def _config(run: Path) -> dict:
    from training.run.directory import read_config

    return read_config(run)


def _run_spec(run: Path) -> RunSpec:
    """A run as the report sees it: one started from another run's checkpoint (init_from) is
    stitched onto that run, whose checkpoint's epoch is its switch."""
    from training.run.directory import recorded_path, run_of

    init = _config(run).get("init_from")
    if not init:
        return RunSpec(name=run.resolve().name, path=run)
    checkpoint = recorded_path(init["checkpoint"], run)
    return RunSpec(
        name=run.resolve().name, path=run, base=run_of(checkpoint), switch=int(init["epoch"])
    )


def _corpus_of(run: Path) -> Path:
    from training.run.directory import run_corpus

    corpus = run_corpus(run, check=True)
    if corpus is None:
        raise ValueError(f"{run}: its config.json names no corpus; pass --corpus")
    return corpus
