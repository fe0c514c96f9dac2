"""``score``: the ABX error of features on an item file, with every cell's counts.

Pipeline: read items -> slice frames -> sort into groups and runs (cells.py) -> for each block of item
pairs: frame distances as one sgemm per tile, DTW for each pair once (both orientations), per-x counting
by sorting (blocks.py, kernels.py; small within-type jobs in numpy alone, small.py) -> per-cell int64
counts -> AbxResult (result.py) averages them. Everything up to the frame products is built by
``prepare`` (prepared.py), which a grid reuses for every feature set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine.conditions import make_condition
from probes.abx_engine.featurefiles import FeatureFiles
from probes.abx_engine.prepared import NoValidCellError, prepare, prepare_items
from probes.abx_engine.ragged import Ragged
from probes.abx_engine.result import AbxResult
from probes.vocabulary import Compat, Context, Distance, Pooling, Speaker

if TYPE_CHECKING:
    import pandas as pd

    from training.data.items import ItemColumns

__all__ = ["score", "NoValidCellError", "prepare_items", "make_condition"]


def _features(
    features: Mapping[str, np.ndarray] | Ragged | FeatureFiles, names: list[str]
) -> Ragged | FeatureFiles:
    if isinstance(features, (Ragged, FeatureFiles)):
        return features
    present = [n for n in names if n in features]
    return Ragged.from_mapping(features, present)


def score(
    features: Mapping[str, np.ndarray] | Ragged | FeatureFiles,
    items: pd.DataFrame | ItemColumns | str | os.PathLike,
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
    progress: bool = False,
) -> AbxResult:
    """ABX error of ``features`` on ``items`` (docs/abx.md).

    features: {file stem: [T, D] array}, a Ragged or a FeatureFiles (``open_feature_dir``); items: an item file path or ``read_items`` table.
    speaker within|across, context within|any|across name the conditions; or give ``on`` (and ``by``,
    ``across``, ``levels``) for the general form. distance angular|cosine|euclidean; pooling None (DTW
    over frames) or "mean"; compat None or "librilight" (slicing and zero frames as libri-light);
    max_size_group / max_x_across / seed: optional seeded subsampling, off by default.
    Returns an AbxResult: ``float(result)`` is the error in [0, 1], ``result.cells`` the per-cell table.
    To score many feature sets on the same items, ``prepare`` once and call its ``score``.
    """
    items = prepare_items(items)
    ragged = _features(features, list(dict.fromkeys(items["file"].astype(str).tolist())))
    prepared = prepare(
        items, ragged, frequency=frequency, speaker=speaker, context=context, on=on, by=by,
        across=across, levels=levels, distance=distance, pooling=pooling, compat=compat,
        max_size_group=max_size_group, max_x_across=max_x_across, seed=seed,
    )  # fmt: skip
    return prepared.score(ragged, progress=progress)
