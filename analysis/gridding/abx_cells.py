"""What an ABX grid keeps of each cell besides its error: the engine's per-cell counts, split by the
file of the X items, so that intervals are computed from the cache alone.

The cells (their labels, set sizes and pieces: a cell's triplets split by X's file) are the same for
every layer and checkpoint of one item set and condition: the cache holds them once (dims ``cell``,
``piece``, ``file``). Per (epoch, layer) it holds each piece's ``correct2`` and ``counted`` = 1. From
these ``result_at`` rebuilds the engine's ``AbxResult`` of that layer exactly (same cells, same
order, same errors), so its bootstrap, and ``intervals``, give what a fresh score would. A result
without pieces (subsampled) is kept as one piece per cell, with no file (``piece_file`` -1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = [
    "LayerCells",
    "STRUCTURE",
    "has_counts",
    "overlay_counts",
    "result_at",
    "fill_intervals",
]

# The variables that describe the cells (not per layer): dims cell, piece, file.
STRUCTURE = ("cell_labels", "cell_n_a", "cell_n_b", "cell_n_x", "cell_n_triplets", "piece_cell",
             "piece_file", "piece_n_triplets", "file_name", "file_speaker")  # fmt: skip
INTERVAL = ("low", "high", "interval_boot", "interval_confidence")


@dataclass
class LayerCells:
    """The ABX results of several layers on one prepared item set and condition, as a grid keeps
    them: values [layers] (the errors), counts [layers, pieces] (correct2 of each piece) and the
    structure (``STRUCTURE`` variables, the label columns as ``label_<name>``)."""

    values: np.ndarray
    counts: np.ndarray
    structure: dict[str, tuple[tuple[str, ...], np.ndarray]]

    @classmethod
    def from_results(cls, results: Sequence) -> LayerCells:
        first = results[0]
        columns = first._columns
        structure = {f"label_{c}": (("cell",), np.asarray(columns[c]).astype(str).astype(object))
                     for c in first.labels}  # fmt: skip
        structure["cell_labels"] = (("label",), np.array(first.labels, dtype=object))
        for name in ("n_a", "n_b", "n_x", "n_triplets"):
            structure[f"cell_{name}"] = (("cell",), np.asarray(columns[name], np.float64))
        files = first.files
        if files is not None:
            pieces = (files.cell, files.file, files.n_triplets)
            speakers = (
                files.speakers if files.speakers is not None else np.full(len(files.names), "")
            )
            names, speakers = files.names.astype(str), np.asarray(speakers).astype(str)
            counts = np.stack([r.files.correct2 for r in results]).astype(np.float64)
        else:  # one piece per cell, no file
            n = first.n_cells
            pieces = (np.arange(n), np.full(n, -1), np.asarray(columns["n_triplets"]))
            names, speakers = np.zeros(0, str), np.zeros(0, str)
            counts = np.stack([r._columns["correct2"] for r in results]).astype(np.float64)
        for name, values in zip(("piece_cell", "piece_file"), pieces[:2], strict=True):
            structure[name] = (("piece",), np.asarray(values, np.int32))
        structure["piece_n_triplets"] = (("piece",), np.asarray(pieces[2], np.float64))
        structure["file_name"] = (("file",), names.astype(object))
        structure["file_speaker"] = (("file",), speakers.astype(object))
        return cls(np.array([float(r) for r in results]), counts, structure)

    def into(self, dataset: xr.Dataset) -> xr.Dataset:
        """``dataset`` (one epoch, these layers) with the structure and the counts added."""
        counts = self.counts[None]  # [1 epoch, layers, pieces]
        done = np.ones(counts.shape[:2], np.int8)
        return dataset.assign(
            {name: xr.Variable(dims, values) for name, (dims, values) in self.structure.items()}
            | {
                "correct2": (("epoch", "layer", "piece"), counts),
                "counted": (("epoch", "layer"), done),
            }  # fmt: skip
        )


def _structure_names(dataset: xr.Dataset) -> list[str]:
    return [*STRUCTURE, *(f"label_{c}" for c in dataset["cell_labels"].values.tolist())]


def has_counts(dataset: xr.Dataset | None) -> bool:
    return dataset is not None and "counted" in dataset and "cell_labels" in dataset


def _same_structure(a: xr.Dataset, b: xr.Dataset) -> bool:
    names = _structure_names(a)
    return names == _structure_names(b) and all(
        a[n].shape == b[n].shape and np.array_equal(a[n].values, b[n].values) for n in names
    )


def overlay_counts(upper: xr.Dataset, lower: xr.Dataset, upper_done: xr.DataArray) -> dict:
    """The counts variables of two caches laid over each other (reindexed to the same epochs and
    layers): each cell's counts come from the side its value comes from (``upper_done``); counts of
    another structure than the kept one (the upper's, else the lower's) are dropped."""
    sides = [d for d in (upper, lower) if has_counts(d)]
    if not sides:
        return {}
    kept = sides[0]
    out = {n: kept[n] for n in _structure_names(kept)}

    def counts_of(side: xr.Dataset):
        if not has_counts(side) or not _same_structure(side, kept):
            return xr.zeros_like(upper_done, dtype=np.int8), None
        return side["counted"].fillna(0).astype(np.int8), side["correct2"]

    (up_counted, up_counts), (low_counted, low_counts) = counts_of(upper), counts_of(lower)
    counted = xr.where(upper_done, up_counted, low_counted).astype(np.int8)
    fallback = kept["correct2"]
    out["correct2"] = xr.where(
        upper_done, up_counts if up_counts is not None else fallback,
        low_counts if low_counts is not None else fallback,
    ).fillna(0.0)  # fmt: skip
    out["counted"] = counted
    return out


def result_at(cache: xr.Dataset, epoch: int, layer: int, condition, plans: dict | None = None):
    """The engine's AbxResult of the cell (epoch, layer), rebuilt from the cache's counts."""
    from probes.abx_engine import AbxResult
    from probes.abx_engine.hierarchical import FileCounts

    labels = cache["cell_labels"].values.tolist()
    piece_cell = cache["piece_cell"].values.astype(np.int64)
    piece_file = cache["piece_file"].values.astype(np.int64)
    counts = cache["correct2"].sel(epoch=epoch, layer=layer).values
    n_cells = cache.sizes["cell"]
    columns = {c: cache[f"label_{c}"].values.astype(str).astype(object) for c in labels}
    for name in ("n_a", "n_b", "n_x", "n_triplets"):
        columns[name] = cache[f"cell_{name}"].values.astype(np.int64)
    correct2 = np.bincount(piece_cell, weights=counts, minlength=n_cells)
    columns["correct2"] = np.rint(correct2).astype(np.int64)
    columns["error"] = 1.0 - columns["correct2"] / (2.0 * columns["n_triplets"])
    files = None
    if len(piece_file) and (piece_file >= 0).all():
        speakers = cache["file_speaker"].values.astype(str)
        files = FileCounts(
            piece_cell, piece_file, np.rint(counts).astype(np.int64),
            cache["piece_n_triplets"].values.astype(np.int64),
            cache["file_name"].values.astype(str).astype(object),
            None if (speakers == "").any() else speakers.astype(object),
        )  # fmt: skip
    return AbxResult(columns, condition, plans=plans, files=files)


def fill_intervals(cache: xr.Dataset, cells: list[tuple[int, int]], condition, n_boot: int,
                   confidence: float) -> tuple[xr.Dataset, bool]:  # fmt: skip
    """The cache with the speaker-bootstrap interval (seed 0) of each (epoch, layer) in ``cells``
    that does not hold one of ``n_boot`` resamples at ``confidence`` yet; and whether it changed."""
    todo = [
        (e, layer) for e, layer in cells if not _has_interval(cache, e, layer, n_boot, confidence)
    ]
    if not todo:
        return cache, False
    cache = cache.copy()
    for name in INTERVAL:  # fresh arrays: the caller's cache is not written into
        cache[name] = (cache[name].copy(deep=True) if name in cache
                       else xr.full_like(cache["value"], np.nan))  # fmt: skip
    plans: dict = {}  # one collapse plan and one set of draws for every cell of the grid
    for epoch, layer in todo:
        interval = result_at(cache, epoch, layer, condition, plans).bootstrap(
            n_boot=n_boot, confidence=confidence
        )
        at = {"epoch": epoch, "layer": layer}
        for name, value in zip(INTERVAL, (interval.low, interval.high, n_boot, confidence),
                               strict=True):  # fmt: skip
            cache[name].loc[at] = value
    return cache, True


def _has_interval(cache, epoch: int, layer: int, n_boot: int, confidence: float) -> bool:
    if "interval_boot" not in cache:
        return False
    at = {"epoch": epoch, "layer": layer}
    return (
        float(cache["interval_boot"].sel(at)) == n_boot
        and float(cache["interval_confidence"].sel(at)) == confidence
    )
