"""Score many feature sets on one item set and condition, building what does not depend on them once.

A grid scores every layer of every checkpoint on the same items: the parsed item file, the frame ranges
of the items, the cells (groups, runs, their order), the item pairs each block or chunk reads and the
bootstrap's resampling plan are the same for all of them. ``prepare(items, lengths, ...)`` builds them
once; ``Prepared.score(features)`` then computes only the frame products, the DTWs and the counts
(docs/grids.md). ``score`` (engine.py) is ``prepare(...).score(features)``, so a grid's numbers are a
single call's, bit for bit.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine import small
from probes.abx_engine.cells import build_layout, cell_table
from probes.abx_engine.conditions import Subsampling, make_condition
from probes.abx_engine.distances import DISTANCES, POOLINGS, prepare_frames
from probes.abx_engine.featurefiles import FeatureFiles
from probes.abx_engine.gather import FramePlan
from probes.abx_engine.ragged import FeatureFileError, Ragged
from probes.abx_engine.result import AbxResult
from probes.abx_engine.slicing import slice_items
from probes.vocabulary import Compat, Context, Distance, Pooling, Speaker
from training.data.items import ItemColumns

if TYPE_CHECKING:
    import pandas as pd

    from probes.abx_engine.hierarchical import FileCounts

__all__ = ["Prepared", "prepare", "prepare_items", "BUILDS", "NoValidCellError"]

# How many times each structure was built in this process (tests count them: a grid builds once).
BUILDS: Counter = Counter()


class NoValidCellError(ValueError):
    """The condition forms no cell on these items (e.g. no phone with two items in any group)."""


def _lengths(features) -> dict[str, int]:
    if isinstance(features, (Ragged, FeatureFiles)):
        return dict(zip(features.names, features.lengths.tolist(), strict=True))
    if isinstance(features, Mapping):
        return {str(k): int(v if np.ndim(v) == 0 else len(v)) for k, v in features.items()}
    raise TypeError(f"expected features or {{file: frames}}, got {type(features).__name__}")


def prepare_items(items: pd.DataFrame | ItemColumns | str | os.PathLike) -> ItemColumns:
    """The engine's item columns from a path (read without pandas), a ``read_items`` table or
    ``ItemColumns``, checked for the columns every condition needs."""
    if isinstance(items, (str, os.PathLike)):
        from training.data.items import read_item_columns

        items = read_item_columns(items)
    elif not isinstance(items, ItemColumns):
        items = ItemColumns.from_frame(items)
    missing = [c for c in ("file", "onset", "offset") if c not in items]
    if missing:
        raise ValueError(f"{items.path or 'item table'}: no column(s) {', '.join(missing)}")
    return items


class Prepared:
    """One item set and condition, ready to score feature sets with the same files and frame counts.

    Built by ``prepare``. ``score(features)`` -> AbxResult, as ``probes.abx_engine.score`` would give.
    """

    def __init__(self, items: ItemColumns, lengths: Mapping[str, int], *, frequency, condition,
                 distance, pooling, compat, sampling: Subsampling):  # fmt: skip
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.condition, self.distance, self.pooling, self.compat = (
            condition,
            distance,
            pooling,
            compat,
        )
        self.frequency, self.sampling = frequency, sampling
        self.where = items.path or "item table"
        names = list(dict.fromkeys(items["file"].astype(str).tolist()))
        self.lengths = {n: int(lengths[n]) for n in names if n in lengths}
        # Slicing needs only the files' frame counts: a stand-in Ragged of zero-width frames.
        shape = Ragged.from_lengths(
            np.empty((sum(self.lengths.values()), 0), np.float32),
            list(self.lengths.values()),
            list(self.lengths),
        )
        slices = slice_items(items, shape, frequency, compat)
        if not len(slices.rows):
            raise NoValidCellError(f"{self.where}: no item left after slicing")
        kept = items.take(slices.rows)
        self.layout = layout = build_layout(kept, condition)
        # Per item in processing order: its file and first frame in that file, and its frame count.
        file_of = np.array([shape.position(n) for n in kept["file"].astype(str).tolist()], np.int64)
        self.files = list(self.lengths)
        self.item_file = file_of[layout.order]
        self.item_start = (slices.start - shape.offsets[file_of])[layout.order]
        self.item_length = slices.length[layout.order]
        self.dropped = slices.dropped
        self.file_speakers = _file_speakers(items, self.files)
        offsets = np.concatenate([[0], np.cumsum(self.item_length)]).astype(np.int64)
        self.offsets_raw = offsets  # [n + 1] item frame offsets in processing order, before pooling
        self.offsets = np.arange(len(offsets), dtype=np.int64) if pooling == "mean" else offsets
        self.gather = FramePlan(len(self.files), self.item_file, self.item_start,
                                self.item_length, offsets)  # fmt: skip
        self.cost_dtype = np.float32 if compat == "librilight" else np.float64  # zrc-abx2: float32
        if small.eligible(layout, self.offsets, distance, sampling.active):  # numpy: no Numba
            self.plan = small.SmallPlan(layout, self.offsets, self.item_file)
        else:
            from probes.abx_engine.blocks import BlockPlan  # loads the Numba kernels

            self.plan = BlockPlan(layout, self.offsets, sampling, self.cost_dtype, self.item_file)
        self.plans: dict = {}  # collapse and bootstrap plans, shared by every result
        BUILDS["prepared"] += 1

    @property
    def n_items(self) -> int:
        return self.layout.n_items

    def frames(self, features: Mapping[str, np.ndarray] | Ragged | FeatureFiles) -> np.ndarray:
        """The items' frames in processing order, ready for the dot products: [frames, D] float32.

        Only the frames some item uses are read (from a FeatureFiles: straight from its files) and
        checked for NaN and Inf.
        """
        if isinstance(features, (Ragged, FeatureFiles)):
            source = features
        else:
            source = Ragged.from_mapping(features, [n for n in self.files if n in features])
        positions = np.empty(len(self.files), np.int64)
        for k, name in enumerate(self.files):
            if name not in source:
                raise FileNotFoundError(f"{self.where}: no features for file {name!r}")
            positions[k] = source.position(name)
            if source.lengths[positions[k]] != self.lengths[name]:
                raise ValueError(
                    f"features for {name!r} have {source.lengths[positions[k]]} frames, not the "
                    f"{self.lengths[name]} this preparation was built for"
                )
        if source.dim == 0:
            raise FeatureFileError("features have dimension 0")
        frames = self.gather.run(source, positions, self.files)
        frames, _ = prepare_frames(
            frames, self.offsets_raw, self.distance, self.pooling, self.compat == "librilight"
        )
        return frames

    def score(
        self,
        features: Mapping[str, np.ndarray] | Ragged | FeatureFiles,
        *,
        progress: bool = False,
    ) -> AbxResult:
        """The ABX result of ``features`` ({file: [T, D]}, a Ragged or FeatureFiles with the prepared
        frame counts)."""
        frames = self.frames(features)
        if isinstance(self.plan, small.SmallPlan):
            records, pieces = self.plan.run(frames, self.distance, self.cost_dtype)
        else:
            records, pieces = self.plan.run(frames, self.distance, progress)
        if not len(records[0]):
            raise NoValidCellError(
                f"{self.where}: no valid cell for {self.condition.name} ({self.n_items} items; need "
                "a phone with 2 items in a group, or the same phone across groups)"
            )
        cells, order = cell_table(self.layout, *records, return_order=True)
        files = None if pieces is None else self._file_counts(records, pieces, order)
        return AbxResult(cells, self.condition, meta=self.meta, plans=self.plans, files=files)

    def _file_counts(self, records, pieces, order: np.ndarray) -> FileCounts:
        """The cells' counts split by X's file, their cells numbered as the sorted cell table."""
        from probes.abx_engine.hierarchical import FileCounts

        cell, file, correct2, n_x = pieces
        n_a, n_b = records[4][cell], records[5][cell]
        triplets = n_x * (n_a - 1 if self.condition.is_symmetric else n_a) * n_b
        row = np.empty(len(order), np.int64)
        row[order] = np.arange(len(order))
        by = np.lexsort((file, row[cell]))  # pieces in (cell, file) order
        return FileCounts(
            row[cell][by], file[by].astype(np.int64), correct2[by].astype(np.int64),
            triplets[by].astype(np.int64), np.array(self.files, dtype=object), self.file_speakers,
        )  # fmt: skip

    @property
    def meta(self) -> dict:
        return {
            "distance": self.distance,
            "pooling": self.pooling,
            "compat": self.compat,
            "frequency": self.frequency,
            "max_size_group": self.sampling.max_size_group,
            "max_x_across": self.sampling.max_x_across,
            "seed": self.sampling.seed,
            "n_items": self.n_items,
            "dropped_items": self.dropped,
            "items": str(self.where) if self.where != "item table" else None,
        }


def _file_speakers(items: ItemColumns, files: list[str]) -> np.ndarray | None:
    """[files] the speaker of each file, or None if the items name no speaker or a file has two."""
    if "speaker" not in items:
        return None
    pairs = dict.fromkeys(zip(items["file"].astype(str).tolist(),
                              items["speaker"].astype(str).tolist(), strict=True))  # fmt: skip
    speaker: dict[str, str] = {}
    for file, who in pairs:
        if speaker.setdefault(file, who) != who:
            return None
    return np.array([speaker[f] for f in files], dtype=object)


def prepare(
    items: pd.DataFrame | ItemColumns | str | os.PathLike,
    lengths: Mapping[str, int] | Mapping[str, np.ndarray] | Ragged,
    *,
    frequency: float = 50.0,
    speaker: Speaker = "within",
    context: Context = "within",
    on: str | None = None,
    by: list[str] | None = None,
    across: list[str] | None = None,
    levels: list | None = None,
    distance: Distance = "angular",
    pooling: Pooling = None,
    compat: Compat = None,
    max_size_group: int | None = None,
    max_x_across: int | None = None,
    seed: int = 0,
) -> Prepared:
    """Everything about scoring on ``items`` that does not depend on the features, built once.

    lengths: the frame count of each file ({file: n_frames}), or features with those counts (a
    Ragged or {file: [T, D]}); every feature set scored later must have the same counts. The other
    options are ``score``'s. ``prepare(items, features, **options).score(features)`` equals
    ``score(features, items, **options)`` bit for bit.
    """
    items = prepare_items(items)
    condition = make_condition(speaker, context, on, by, across, levels)
    return Prepared(
        items, _lengths(lengths), frequency=frequency, condition=condition, distance=distance,
        pooling=pooling, compat=compat,
        sampling=Subsampling(max_size_group, max_x_across, seed),
    )  # fmt: skip
