"""Measurements of a set of runs, gathered for a report: metrics, ABX grids, recall, CKA.

A scheduled variant (A, B) is trained from its base model A's checkpoint at the switch epoch (as in the
paper) instead of training stage A again, so its own run directory holds stage B only. Its timeline is
stitched here: the base run's epochs up to the switch, then the variant's epochs (renumbered to follow
the switch if the variant counts its epochs from 1). Every measurement is a cached grid of the run that
owns the checkpoint, so the three variants that share a base share its stage-A measurements.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from analysis.atomic import write_text_atomic
from analysis.gridding import grids
from analysis.runs import checkpoints, read_metrics, switch_epoch

__all__ = ["RunSpec", "Study", "collect", "abx_conditions", "probe_epochs", "final_recall"]

# The paper's ABX conditions, for each ABX set of the corpus (captions: in-domain speech; read: read
# speech standing for LibriSpeech, the "other data set" of the paper's claim 3).
CONDITIONS = {
    "within speaker": {"speaker": "within", "context": "within"},
    "across speaker": {"speaker": "across", "context": "within"},
    "across context": {"speaker": "within", "context": "across"},
}
ABX_SETS = ("read", "captions")


def abx_conditions(
    corpus: Path | str,
    sets: Sequence[str] = ABX_SETS,
    conditions: Mapping[str, dict] = CONDITIONS,
    **engine_options: Any,
) -> dict[str, dict[str, Any]]:
    """Grid probe specs "<set>, <condition>" -> {"probe": "abx", "items": file, ...} for a corpus;
    engine_options (e.g. max_size_group) go to every one."""
    specs = {}
    for name in sets:
        items = Path(corpus) / "abx" / name / "items.item"
        if not items.is_file():
            raise FileNotFoundError(f"{items}: the corpus has no ABX set {name!r}")
        for condition, options in conditions.items():
            specs[f"{name}, {condition}"] = {
                "probe": "abx",
                "items": str(items),
                **options,
                **engine_options,
            }
    return specs


@dataclass(frozen=True)
class RunSpec:
    """A run in a study. base/switch: for a variant started from `base`'s checkpoint at `switch`."""

    name: str
    path: Path
    base: Path | None = None
    switch: int | None = None

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

    def switch(self, name: str) -> int | None:
        """The stitched timeline's switch epoch of run `name` (None for a single-stage run)."""
        spec = self.runs[name]
        return spec.switch if spec.base is not None else switch_epoch(self.metrics[name])


def probe_epochs(available: Sequence[int], every: int, keep: Sequence[int] = ()) -> list[int]:
    """The epochs to probe: every `every`-th one, the first and last, and those in `keep`."""
    available = sorted(available)
    chosen = {e for e in available if e % every == 0} | {available[0], available[-1]}
    return sorted(chosen | {e for e in keep if e in available})


def stitch_metrics(spec: RunSpec) -> pd.DataFrame:
    """The run's metrics table on its stitched timeline, with `stage` 0 before the switch, 1 after."""
    own = read_metrics(spec.path)
    if spec.base is None:
        return own
    own = own.assign(epoch=own["epoch"] + spec.offset, stage=1)
    base = read_metrics(spec.base)
    base = base[base["epoch"] <= spec.switch].assign(stage=0)
    return pd.concat([base, own], ignore_index=True).sort_values("epoch").reset_index(drop=True)


def _stitch(base: xr.DataArray | None, own: xr.DataArray, spec: RunSpec) -> xr.DataArray:
    own = own.assign_coords(epoch=own.epoch + spec.offset)
    if base is None:
        return own
    before = base.sel(epoch=base.epoch[base.epoch <= spec.switch])
    stitched = xr.concat([before, own], dim="epoch", combine_attrs="override")
    stitched.attrs["run"] = own.attrs.get("run", "")
    return stitched


def collect(
    runs: Sequence[RunSpec],
    corpus: Path | str,
    *,
    every: int = 1,
    sets: Sequence[str] = ABX_SETS,
    abx_options: Mapping[str, Any] | None = None,
    similarity_pairs: Sequence[tuple[str, str]] = (),
    cka_frames: int | None = 4000,
    client: Any = None,
    progress: bool = True,
) -> Study:
    """Measure `runs` (ABX grids every `every` epochs at every layer, final test recall, CKA between
    the `similarity_pairs` of base runs, drift of the variants) and gather them in a Study.

    abx_options: ABX engine options for every grid (e.g. subsampling); cka_frames: the number of
    frames (a seeded subset) CKA is computed on, None for all.
    """
    study = Study(runs={spec.name: spec for spec in runs})
    specs = abx_conditions(corpus, sets, **(abx_options or {}))
    measured: dict[Path, dict[str, xr.DataArray]] = {}

    def measure(path: Path, keep: Sequence[int] = ()) -> dict[str, xr.DataArray]:
        key = Path(path).resolve()
        if key not in measured:
            epochs = probe_epochs(list(checkpoints(path)), every, keep)
            measured[key] = grids(path, specs, epochs, "all", client, progress=progress)
        return measured[key]

    switches_of = {}
    for spec in runs:
        if spec.base is not None:
            switches_of.setdefault(Path(spec.base).resolve(), set()).add(spec.switch)
    for spec in sorted(runs, key=lambda s: s.base is not None):  # bases first
        study.metrics[spec.name] = stitch_metrics(spec)
        own = measure(spec.path, sorted(switches_of.get(Path(spec.path).resolve(), ())))
        base = measure(spec.base) if spec.base is not None else {}
        for condition in specs:
            grid = _stitch(base.get(condition), own[condition], spec)
            study.abx.setdefault(condition, {})[spec.name] = grid
        study.recall[spec.name] = final_recall(spec.path, corpus, progress=progress)
    cka = {"max_frames": cka_frames} if cka_frames else {}
    _collect_sharing(study, similarity_pairs, every, client, progress, cka)
    return study


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
        study.drift[name] = _stitch(before, after, spec)


def final_recall(
    run: Path | str, corpus: Path | str, split: str = "test", *, progress: bool = True
) -> dict[str, float]:
    """Recall@1/5/10 both ways of the run's last checkpoint on `split`, as {"speech_to_image_r1": ...};
    cached in RUN/analysis/recall-<split>.json, keyed by the checkpoint's checksum."""
    import probes
    import training

    last = list(checkpoints(run).values())[-1]
    identity = training.checkpoint_id(last)
    cache = Path(run) / "analysis" / f"recall-{split}.json"
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("checkpoint") == identity:
            return stored["recall"]
    result = probes.recall(last, split=split, k=(1, 5, 10), corpus=corpus, progress=progress)
    values = {
        f"{direction}_r{k}": float(result.sel(direction=direction, k=k))
        for direction in result.direction.values
        for k in result.k.values
    }
    write_text_atomic(cache, json.dumps({"checkpoint": identity, "recall": values}, indent=1))
    return values
