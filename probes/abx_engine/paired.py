"""Paired comparison of two feature sets (two layers, epochs or models) scored on the same items."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine.engine import prepare_items, score
from probes.abx_engine.ragged import Ragged
from probes.abx_engine.result import AbxResult, PairedDifference, paired_interval

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["paired_difference"]


def paired_difference(
    features_a: Mapping[str, np.ndarray] | Ragged | AbxResult,
    features_b: Mapping[str, np.ndarray] | Ragged | AbxResult,
    items: pd.DataFrame | str | os.PathLike | None = None,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    unit: str = "speaker",
    files: bool = False,
    **score_options,
) -> PairedDifference:
    """error(a) - error(b) with a paired bootstrap interval that resamples ``unit`` (speakers);
    ``files``: the speakers and the files within each drawn speaker (``hierarchical``).

    Both feature sets are scored by ``score`` on the same items and condition (``score_options``), so
    the cells match one to one; each bootstrap draw weights both with the same resampled speakers.
    Already computed AbxResults of the same condition and items may be passed instead of features.
    """
    results = []
    table = prepare_items(items) if items is not None else None
    for features in (features_a, features_b):
        if isinstance(features, AbxResult):
            results.append(features)
        elif table is None:
            raise ValueError("paired_difference needs items to score features")
        else:
            results.append(score(features, table, **score_options))
    return paired_interval(
        results[0], results[1], n_boot=n_boot, confidence=confidence, seed=seed, unit=unit,
        files=files,
    )  # fmt: skip
