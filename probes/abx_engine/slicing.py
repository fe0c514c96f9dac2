"""Turning item times into frame ranges: the default rule and libri-light's (docs/abx.md).

default:  start = ceil(f*onset - 1/2), end = floor(f*offset - 1/2) + 1 (exclusive), in exact decimal
          arithmetic on the times as written in the item file; out of range or empty: an error.
librilight: start = max(0, ceil(f*onset - 0.5)), end = min(T, floor(f*offset - 0.5)) in doubles (the last
          frame is dropped); items with start >= T or end <= start are dropped, with a warning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine.ragged import FeatureFileError, Ragged
from training.data.items import ItemColumns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Slices", "slice_items", "SliceError", "DroppedItemsWarning", "check_finite"]

HALF = Decimal("0.5")


class SliceError(ValueError):
    """An item whose frames are out of range or empty; the message names the item file line."""


class DroppedItemsWarning(UserWarning):
    """compat="librilight" dropped items that are empty at the feature frequency."""


@dataclass(frozen=True)
class Slices:
    """Frame ranges of the kept items.

    rows: [n] positions of the kept items in the item table; start: [n] global frame index into
    ``features.data``; length: [n] number of frames (>= 1); dropped: how many items were dropped.
    """

    rows: np.ndarray
    start: np.ndarray
    length: np.ndarray
    dropped: int


def _where(items: ItemColumns, row: int) -> str:
    path = items.path or "items"
    line = items["line"][row] if "line" in items else None
    return f"{path}:{line}" if line is not None else f"{path} (item {row})"


def _time_texts(items: ItemColumns, name: str, rows: np.ndarray) -> list[str]:
    if f"{name}_text" in items:
        return items[f"{name}_text"][rows].astype(str).tolist()
    # the shortest text that reads back as the same double
    return [repr(float(v)) for v in items[name][rows]]


def _default_bounds(items: ItemColumns, frequency: float) -> tuple[np.ndarray, np.ndarray]:
    starts = _exact_round(items, "onset", frequency, ROUND_CEILING)
    return starts, _exact_round(items, "offset", frequency, ROUND_FLOOR) + 1


def _exact_round(items: ItemColumns, name: str, frequency: float, rounding: str) -> np.ndarray:
    """ceil or floor of f * t - 1/2 for the times t as written, exactly.

    In doubles, f * t - 1/2 is within 4e-7 of the exact value while |f * t| < 1e9, so its
    ceiling or floor is exact unless it lies that close to an integer (times on half a frame); only
    those are redone in decimal arithmetic on the text of the time.
    """
    value = float(frequency) * np.asarray(items[name], np.float64) - 0.5
    rounded = np.ceil(value) if rounding == ROUND_CEILING else np.floor(value)
    doubtful = np.flatnonzero((np.abs(value - np.rint(value)) < 1e-6) | ~(np.abs(value) < 1e9))
    if len(doubtful):
        f = Decimal(repr(float(frequency)))
        texts = _time_texts(items, name, doubtful)
        rounded[doubtful] = [
            int((Decimal(t) * f - HALF).to_integral_value(rounding=rounding)) for t in texts
        ]
    return rounded.astype(np.int64)


def _librilight_bounds(items: ItemColumns, frequency: float) -> tuple[np.ndarray, np.ndarray]:
    f = float(frequency)
    starts = [max(0, math.ceil(f * float(t) - 0.5)) for t in items["onset"]]
    ends = [math.floor(f * float(t) - 0.5) for t in items["offset"]]
    return np.asarray(starts, np.int64), np.asarray(ends, np.int64)


def slice_items(
    items: ItemColumns | pd.DataFrame, features: Ragged, frequency: float, compat: str | None = None
) -> Slices:
    """Frame ranges for every item (see the module docstring for the two rules).

    Raises FileNotFoundError for an item naming a file absent from ``features`` and SliceError for an
    item out of range or empty (default rule), both naming the item file and line.
    """
    if compat not in (None, "librilight"):
        raise ValueError(f"compat must be None or 'librilight', got {compat!r}")
    if not isinstance(items, ItemColumns):
        items = ItemColumns.from_frame(items)
    files = items["file"].astype(str).tolist()
    position = np.empty(len(files), np.int64)
    for row, name in enumerate(files):
        if name not in features:
            raise FileNotFoundError(f"{_where(items, row)}: no features for file {name!r}")
        position[row] = features.position(name)
    n_frames = features.lengths[position]
    if compat is None:
        start, end = _default_bounds(items, frequency)
        bad = (start < 0) | (end > n_frames) | (end <= start)
        if bad.any():
            row = int(np.argmax(bad))
            raise SliceError(
                f"{_where(items, row)}: item [{items['onset'][row]}, {items['offset'][row]}] s of "
                f"{files[row]!r} gives frames [{start[row]}, {end[row]}) but the file has {n_frames[row]} "
                f"frames at {frequency} Hz"
                + (" (empty: shorter than one frame)" if end[row] <= start[row] else "")
            )
        keep = np.arange(len(files))
    else:
        start, end = _librilight_bounds(items, frequency)
        end = np.minimum(end, n_frames)
        ok = (start < n_frames) & (end > start)
        keep = np.flatnonzero(ok)
        dropped = len(files) - len(keep)
        if dropped:
            first = int(np.flatnonzero(~ok)[0])
            warnings.warn(
                f"compat='librilight' dropped {dropped} of {len(files)} items that are empty at {frequency} Hz "
                f"(as libri-light / zrc-abx2 do), first {_where(items, first)} of {files[first]!r}",
                DroppedItemsWarning,
                stacklevel=3,
            )
    global_start = features.offsets[position[keep]] + start[keep]
    return Slices(
        rows=keep.astype(np.int64),
        start=global_start.astype(np.int64),
        length=(end[keep] - start[keep]).astype(np.int64),
        dropped=len(files) - len(keep),
    )


def check_finite(features: Ragged, names: list[str] | None = None) -> None:
    """Raise FeatureFileError naming the first file (of ``names``) with NaN or Inf frames."""
    for name in names if names is not None else features.names:
        block = features[name]
        if not np.isfinite(block).all():
            frame = int(np.argmax(~np.isfinite(block).all(axis=1)))
            raise FeatureFileError(
                f"features for {name!r} contain NaN or Inf (first at frame {frame})"
            )
