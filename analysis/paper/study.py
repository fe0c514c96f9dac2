"""Measurements of a set of runs, gathered for a report: metrics, ABX grids, recall, CKA.

A scheduled variant (A, B) is trained from its base model A's checkpoint at the switch epoch (as in the
paper) instead of training stage A again, so its own run directory holds stage B only. Its timeline is
stitched here: the base run's epochs up to the switch, then the variant's epochs (renumbered to follow
the switch if the variant counts its epochs from 1). Every measurement is a cached grid of the run that
owns the checkpoint, so the three variants that share a base share its stage-A measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from analysis.gridding.driver import grids
from analysis.paper.evidence import Ranks
from analysis.paper.recall_records import final_recall, recall_record
from analysis.paper.tables import best_layer
from analysis.runs import checkpoints, read_metrics, switch_epoch
from training.run.directory import abx_item_file

__all__ = [
    "RunSpec",
    "Study",
    "collect",
    "abx_conditions",
    "subset_items",
    "probe_epochs",
    "epochs_to_probe",
    "stitch_grid",
    "stitch_metrics",
    "final_recall",
    "recall_record",
    "best_layer_cells",
    "material_of",
    "PAIRED_CONDITIONS",
]

# The paper's ABX conditions, for each ABX set of the corpus (captions: in-domain speech; read: read
# speech standing for LibriSpeech, the "other data set" of the paper's claim 3).
CONDITIONS = {
    "within speaker": {"speaker": "within", "context": "within"},
    "across speaker": {"speaker": "across", "context": "within"},
    "across context": {"speaker": "within", "context": "across"},
}
ABX_SETS = ("read", "captions")
# The conditions of the paper's Table II and claim 3: best-layer ABX on read speech, within and across
# speaker. Their per-cell results are kept for paired intervals.
PAIRED_CONDITIONS = ("read, within speaker", "read, across speaker")


def abx_conditions(
    corpus: Path | str,
    sets: Sequence[str] = ABX_SETS,
    conditions: Mapping[str, dict] = CONDITIONS,
    item_files: Mapping[str, Path] | None = None,
    **engine_options: Any,
) -> dict[str, dict[str, Any]]:
    """Grid probe specs "<set>, <condition>" -> {"probe": "abx", "items": file, ...} for a corpus.

    item_files: set name -> an item file to use instead of the corpus's (e.g. a subset, see
    `subset_items`; its wavs stay the corpus's); engine_options (e.g. max_size_group) go to every one.
    """
    specs = {}
    for name in sets:
        wavs = Path(corpus) / "abx" / name / "wavs"
        items = abx_item_file(name, corpus)
        where = {"items": str(items)}
        if item_files and name in item_files:
            where = {"items": str(item_files[name]), "wavs": str(wavs)}
        for condition, options in conditions.items():
            specs[f"{name}, {condition}"] = {"probe": "abx", **where, **options, **engine_options}
    return specs


def subset_items(items: Path | str, out: Path | str, files_per_speaker: int) -> Path:
    """Write the items of the first `files_per_speaker` files (in name order) of each speaker of an
    item file to `out`: an ABX set that is cheaper to extract and score, with every speaker kept."""
    from training.data.items import read_items, write_items

    table = read_items(items)
    files = table[["file", "speaker"]].drop_duplicates().sort_values(["speaker", "file"])
    kept = files.groupby("speaker", sort=False).head(files_per_speaker)["file"]
    subset = table[table["file"].isin(set(kept))]
    if Path(out).is_file() and read_items(out)[list(subset.columns)].equals(subset):
        return Path(out)  # unchanged: keep the file (and its timestamp)
    return write_items(out, subset)


@dataclass(frozen=True)
class RunSpec:
    """A run in a study. base/switch: for a variant started from `base`'s checkpoint at `switch`."""

    name: str
    path: Path
    base: Path | None = None
    switch: int | None = None
    model: str | None = None  # the model this run is a seed of (default: `name`)
    seed: int = 0

    @property
    def model_name(self) -> str:
        return self.model if self.model is not None else self.name

    @property
    def offset(self) -> int:
        """What to add to the run's own epoch numbers to place them on the stitched timeline."""
        if self.base is None or self.switch is None:
            return 0
        return self.switch if min(checkpoints(self.path)) <= self.switch else 0


@dataclass
class Study:
    """Everything a report shows, by run name (stitched timelines)."""

    runs: dict[str, RunSpec]
    metrics: dict[str, pd.DataFrame] = field(default_factory=dict)
    abx: dict[str, dict[str, xr.DataArray]] = field(
        default_factory=dict
    )  # condition -> run -> grid
    recall: dict[str, dict[str, float]] = field(default_factory=dict)
    similarity: dict[str, xr.DataArray] = field(default_factory=dict)  # "A vs B" -> grid
    drift: dict[str, xr.DataArray] = field(default_factory=dict)
    # Test recall's bootstrap interval: run -> recall key -> (low, high); the ranks that paired
    # comparisons resample: run -> Ranks.
    recall_intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    ranks: dict[str, Ranks] = field(default_factory=dict)
    # The ABX engine's per-cell result at each run's best layer of its final epoch, for the
    # conditions compared by paired intervals: condition -> run -> AbxResult.
    best_cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The same on the corpus's full ABX set when the grids probe a subset of it (at the layers the
    # subset chose), for the runs asked for (`full_set_models`): condition -> run -> AbxResult.
    full_cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The material behind the numbers (`analysis.paper.material`): "test" and "validation" splits
    # (sizes, captions per image), "abx": set name -> the probed item file's sizes (and its full set's).
    material: dict[str, Any] = field(default_factory=dict)

    def models(self) -> dict[str, dict[int, str]]:
        """model -> seed -> run name, in the order the runs were given."""
        out: dict[str, dict[int, str]] = {}
        for name, spec in self.runs.items():
            out.setdefault(spec.model_name, {})[spec.seed] = name
        return out

    def seeds(self, model: str) -> dict[int, str]:
        """seed -> run name of `model` ({} if the study has no run of it)."""
        return self.models().get(model, {})

    def switch(self, name: str) -> int | None:
        """The stitched timeline's switch epoch of run `name` (None for a single-stage run)."""
        spec = self.runs[name]
        return spec.switch if spec.base is not None else switch_epoch(self.metrics[name])


def probe_epochs(available: Sequence[int], every: int, keep: Sequence[int] = ()) -> list[int]:
    """The epochs to probe: every `every`-th one, the first and last, and those in `keep`."""
    available = sorted(available)
    chosen = {e for e in available if e % every == 0} | {available[0], available[-1]}
    return sorted(chosen | {e for e in keep if e in available})


def epochs_to_probe(runs: Sequence[RunSpec], every: int) -> dict[Path, list[int]]:
    """Each run directory's (resolved) epochs to probe: every `every`-th, the first, the last and,
    for a base run, the switch epochs its variants start from (the forgetting table reads them)."""
    switches: dict[Path, set[int]] = {}
    for spec in runs:
        if spec.base is not None:
            switches.setdefault(Path(spec.base).resolve(), set()).add(spec.switch)
    paths = {Path(p).resolve() for spec in runs for p in (spec.path, spec.base) if p is not None}
    return {
        path: probe_epochs(list(checkpoints(path)), every, sorted(switches.get(path, ())))
        for path in paths
    }


def stitch_metrics(spec: RunSpec) -> pd.DataFrame:
    """The run's metrics table on its stitched timeline, with `stage` 0 before the switch, 1 after."""
    own = read_metrics(spec.path)
    if spec.base is None:
        return own
    own = own.assign(epoch=own["epoch"] + spec.offset, stage=1)
    base = read_metrics(spec.base)
    base = base[base["epoch"] <= spec.switch].assign(stage=0)
    return pd.concat([base, own], ignore_index=True).sort_values("epoch").reset_index(drop=True)


def stitch_grid(base: xr.DataArray | None, own: xr.DataArray, spec: RunSpec) -> xr.DataArray:
    """A variant's (epoch, layer) grid on its stitched timeline: `base`'s epochs up to the switch,
    then `own`'s (renumbered by the run's offset)."""
    own = own.assign_coords(epoch=own.epoch + spec.offset)
    if base is None:
        return own
    before = base.sel(epoch=base.epoch[base.epoch <= spec.switch])
    stitched = xr.concat([before, own], dim="epoch", combine_attrs="override")
    stitched.attrs["run"] = own.attrs.get("run", "")
    stitched.attrs["switch"] = int(spec.switch)  # heatmaps mark it
    return stitched


def collect(
    runs: Sequence[RunSpec],
    corpus: Path | str,
    *,
    every: int = 1,
    sets: Sequence[str] = ABX_SETS,
    abx_options: Mapping[str, Any] | None = None,
    item_files: Mapping[str, Path] | None = None,
    similarity_pairs: Sequence[tuple[str, str]] = (),
    cka_frames: int | None = 4000,
    bootstrap: int = 0,
    paired_conditions: Sequence[str] = PAIRED_CONDITIONS,
    full_set_models: Sequence[str] = (),
    cka_items: Path | str | None = None,
    regions: Path | str | None = None,
    recall_folds: int = 1,
    client: Any = None,
    progress: bool = True,
) -> Study:
    """Measure `runs` (ABX grids every `every` epochs at every layer, final test recall, CKA between
    the `similarity_pairs` of base runs, drift of the variants) and gather them in a Study.

    abx_options: ABX engine options for every grid (e.g. subsampling); item_files: set name -> item
    file replacing the corpus's (`abx_conditions`); cka_frames: the number of frames (a seeded subset)
    CKA is computed on, None for all; CKA compares the models on the captions the ABX grids probe
    (`item_files["captions"]` when given, else the corpus's captions set). bootstrap: resamples for
    every grid cell's interval (coords `low`, `high`; 0: none). paired_conditions: the ABX
    conditions whose per-cell results at each run's best final layer are kept for paired
    comparisons (and Table II's intervals). full_set_models: the models whose runs are also scored,
    at their final epoch and those best layers, on the corpus's full set of each paired condition
    whose grids probe a subset (`full_cells`; claim 3 is decided on it). cka_items: an item file
    of the corpus's captions set whose audio CKA compares on (default: the captions grids' item
    file when it is a subset, else the whole set). regions: the region
    features to read the test images from (default: the corpus's). recall_folds: rank the test
    recall in this many folds of the test images (COCO's 1k protocol; 1: the whole split).
    """
    study = Study(runs={spec.name: spec for spec in runs})
    study.material = material_of(runs, corpus, sets, item_files, recall_folds)
    specs = abx_conditions(corpus, sets, item_files=item_files, **(abx_options or {}))
    if bootstrap:  # each grid cell gets its speaker-bootstrap interval (coords low, high)
        specs = {name: {**spec, "bootstrap": bootstrap} for name, spec in specs.items()}
    epochs = epochs_to_probe(runs, every)
    measured: dict[Path, dict[str, xr.DataArray]] = {}

    def measure(path: Path) -> dict[str, xr.DataArray]:
        key = Path(path).resolve()
        if key not in measured:
            measured[key] = grids(path, specs, epochs[key], "all", client, progress=progress)
        return measured[key]

    for spec in sorted(runs, key=lambda s: s.base is not None):  # bases first
        study.metrics[spec.name] = stitch_metrics(spec)
        own = measure(spec.path)
        base = measure(spec.base) if spec.base is not None else {}
        for condition in specs:
            grid = stitch_grid(base.get(condition), own[condition], spec)
            study.abx.setdefault(condition, {})[spec.name] = grid
        record = recall_record(
            spec.path, corpus, regions=regions, folds=recall_folds, progress=progress
        )
        study.recall[spec.name] = record["recall"]
        study.recall_intervals[spec.name] = {
            key: (record["low"][key], record["high"][key]) for key in record["low"]
        }
        study.ranks[spec.name] = Ranks.from_json(record["ranks"])
    paired = [c for c in paired_conditions if c in specs]
    for condition in paired:
        for name, grid in study.abx[condition].items():
            cells = best_layer_cells(study.runs[name].path, grid, specs[condition], progress)
            study.best_cells.setdefault(condition, {})[name] = cells
    full = {c: spec for c, spec in abx_conditions(corpus, sets, **(abx_options or {})).items()
            if c in paired and Path(spec["items"]).resolve() != Path(specs[c]["items"]).resolve()}  # fmt: skip
    for name, spec in study.runs.items():
        if full and spec.model_name in full_set_models:
            _full_set_cells(study, name, full, progress)
    cka = {"max_frames": cka_frames} if cka_frames else {}
    captions = next((spec for name, spec in specs.items() if name.startswith("captions,")), None)
    if cka_items is not None:
        cka["source"] = str(Path(cka_items).resolve())
        cka["wavs"] = str((Path(corpus) / "abx" / "captions" / "wavs").resolve())
    elif captions is not None and "wavs" in captions:
        # The ABX grids' captions subset: CKA keeps only cka_frames frames anyway, and extracting
        # the corpus's whole captions set (14 times the audio in the default plan) at every probed
        # checkpoint made the CKA grids most of the probing time.
        cka["source"] = str(Path(captions["items"]).resolve())
        cka["wavs"] = str(Path(captions["wavs"]).resolve())
    _collect_sharing(study, similarity_pairs, every, client, progress, cka)
    return study


def material_of(
    runs: Sequence[RunSpec],
    corpus: Path | str,
    sets: Sequence[str] = ABX_SETS,
    item_files: Mapping[str, Path] | None = None,
    recall_folds: int = 1,
) -> dict[str, Any]:
    """The splits and ABX sets a study measures on, with their sizes (`analysis.paper.material`):
    the test split (ranked in `recall_folds` folds), the validation split the runs log recall on
    (their config's ``eval_split``) and each ABX set's probed item file beside the corpus's full
    one. A split or set the corpus lacks is left out."""
    from analysis.paper.material import item_material, split_material
    from training.run.directory import read_config

    out: dict[str, Any] = {"abx": {}}
    splits = {"test": "test"}
    if runs:
        splits["validation"] = read_config(runs[0].path).get("train", {}).get("eval_split", "val")
    for role, split in splits.items():
        try:
            out[role] = split_material(corpus, split, recall_folds if role == "test" else 1)
        except (FileNotFoundError, ValueError):
            continue
    for name in sets:
        try:
            full = abx_item_file(name, corpus)
            probed = (item_files or {}).get(name, full)
            out["abx"][name] = item_material(probed, full)
        except (FileNotFoundError, ValueError):
            continue
    return out


def best_layer_cells(run: Path | str, grid: xr.DataArray, spec: Mapping[str, Any], progress: bool):
    """The ABX engine's result (every cell, split by X's file) of the run's last checkpoint at the
    grid's best final layer, scored as the grid's `spec` says: read from the grid's cache, where the
    grid keeps every cell's counts (`analysis.gridding.abx_cells`)."""
    from analysis.gridding.abx_results import abx_results

    layer = best_layer(grid)[1]
    if layer < 0:
        return None
    last = max(checkpoints(run))
    return abx_results(run, {"best": spec}, last, {"best": layer}, progress=progress)["best"]


def _full_set_cells(study: Study, name: str, full: Mapping[str, Mapping[str, Any]], progress):
    """Run `name`'s final checkpoint on the full sets `full` (condition -> grid spec), at the best
    final layer of its subset grid: one forward pass, cached as a grid cell of the full set."""
    from analysis.gridding.abx_results import abx_results

    run = study.runs[name].path
    layers = {c: best_layer(study.abx[c][name])[1] for c in full}
    layers = {c: layer for c, layer in layers.items() if layer >= 0}
    if not layers:
        return
    last = max(checkpoints(run))
    results = abx_results(run, {c: full[c] for c in layers}, last, layers, progress=progress)
    for condition, result in results.items():
        study.full_cells.setdefault(condition, {})[name] = result


def _collect_sharing(study: Study, pairs, every: int, client: Any, progress: bool, cka) -> None:
    from analysis.sharing import drift, similarity_between_runs

    for a, b in pairs:
        run_a, run_b = study.runs[a].path, study.runs[b].path
        common = set(checkpoints(run_a)) & set(checkpoints(run_b))
        epochs = probe_epochs(sorted(common), every)
        result = similarity_between_runs(
            run_a, run_b, epochs=epochs, client=client, progress=progress, **cka
        )
        study.similarity[f"{a} vs {b}"] = result
    for name, spec in study.runs.items():
        if spec.base is None:
            continue
        reference = checkpoints(spec.base)[spec.switch]
        base_epochs = [e for e in checkpoints(spec.base) if e <= spec.switch]
        before = drift(
            spec.base,
            reference,
            epochs=probe_epochs(base_epochs, every),
            client=client,
            progress=progress,
            **cka,
        )
        after = drift(
            spec.path,
            reference,
            epochs=probe_epochs(list(checkpoints(spec.path)), every),
            client=client,
            progress=progress,
            **cka,
        )
        study.drift[name] = stitch_grid(before, after, spec)
