"""Averaging per-cell values level by level, optionally weighted, and bootstrap draws and intervals.

Collapsing (fastabx's semantics): the cell table's label columns are the on-values (``phone``,
``phone_b``), the by- and across-values, and X's across-values (``*_x``). Each level (a column or a tuple
of columns) is averaged out in turn: rows are grouped by the remaining label columns (the ``*_x`` columns
are never kept, so they are averaged with the first level) and their errors are averaged, unweighted;
what is left (the phone pairs) is averaged last. ``CollapsePlan`` precomputes the groupings once for a
cell table; ``evaluate`` weights them by resampled labels' multiplicities (``result.AbxResult.bootstrap``,
``hierarchical``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Interval", "CollapsePlan"]


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval around ``estimate`` (all errors in [0, 1])."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_boot: int
    unit: str
    samples: np.ndarray = field(repr=False)

    def __float__(self) -> float:
        return float(self.estimate)


class CollapsePlan:
    """Precomputed groupings that collapse per-cell values level by level, optionally weighted."""

    def __init__(
        self,
        cells: pd.DataFrame | Mapping[str, np.ndarray],
        labels: list[str],
        levels,
        unit: str | None = None,
    ):
        self.levels = [tuple([lv]) if isinstance(lv, str) else tuple(lv) for lv in levels]
        unknown = [c for lv in self.levels for c in lv if c not in labels]
        if unknown:
            raise ValueError(f"cannot collapse level(s) {unknown}: the cell labels are {labels}")
        resampled = [c for c in labels if unit is not None and c in (unit, f"{unit}_x")]
        # Each label column as (its sorted distinct texts, every cell's index into them).
        text = {c: _text_codes(np.asarray(cells[c])) for c in labels}
        self.unit_labels = (
            np.unique(np.concatenate([text[c][0] for c in resampled])) if resampled else None
        )
        codes = {}
        for c in labels:
            distinct, index = text[c]
            if c in resampled:
                codes[c] = np.searchsorted(self.unit_labels, distinct)[index]
            else:
                codes[c] = _first_appearance(index)
        key = [c for c in labels if not c.endswith("_x") or c[:-2] not in labels]
        self.steps: list[tuple[np.ndarray, int, list[np.ndarray]]] = []
        current = list(labels)
        for level in self.levels:
            new_key = [c for c in key if c not in level and c in current]
            removed = [c for c in current if c not in new_key]
            ids, first, n = _group(codes, new_key, len(next(iter(codes.values()))))
            self.steps.append((ids, n, [codes[c] for c in removed if c in resampled]))
            codes = {c: codes[c][first] for c in new_key}
            current = new_key
        self.final = [codes[c] for c in current if c in resampled]
        self.remaining = current
        self._cells = {c: np.asarray(cells[c]) for c in labels}

    def fits(self, cells: pd.DataFrame | Mapping[str, np.ndarray]) -> bool:
        """Whether ``cells`` has the labels this plan was built on, row for row."""
        mine = self._cells
        if list(mine) != [c for c in cells if c in mine]:
            return False
        return all(np.array_equal(mine[c], np.asarray(cells[c])) for c in mine)

    def evaluate(
        self, values: np.ndarray, multiplicity: np.ndarray | None = None, dtype=np.float64,
        present: np.ndarray | None = None,
    ) -> float:  # fmt: skip
        """The collapsed mean of per-cell ``values``; ``multiplicity`` [n unit labels] weights them;
        ``present`` [cells] leaves out the cells that are False (as if they did not exist).

        dtype float32 rounds the cell values and every level's means to float32 (the last mean stays in
        float64), as fastabx stores them: that reproduces its numbers bit for bit.
        """
        v = _round(np.asarray(values, np.float64), dtype)
        present = np.ones(len(v), bool) if present is None else np.asarray(present, bool)
        for ids, n, removed in self.steps:
            w = present.astype(np.float64)
            if multiplicity is not None:
                for codes in removed:
                    w = w * multiplicity[codes]
            total = np.bincount(ids, w * np.where(present, v, 0.0), minlength=n)
            weight = np.bincount(ids, w, minlength=n)
            present = weight > 0
            v = _round(np.divide(total, weight, out=np.zeros(n), where=present), dtype)
        w = present.astype(np.float64)
        if multiplicity is not None:
            for codes in self.final:
                w = w * multiplicity[codes]
        return float((w * v).sum() / w.sum()) if w.sum() > 0 else float("nan")


def _text_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values.astype(str), return_inverse=True)`` without sorting every cell's text.

    A label column holds a few distinct values over up to millions of cells: the distinct values
    are found with a set, and only they are turned into text and sorted (sorting the cells' strings
    was most of a large result's first ``float``).
    """
    if values.dtype != object:  # numbers or fixed-width text: numpy's sort is fast there
        distinct, index = np.unique(values.astype(str), return_inverse=True)
        return distinct, index.reshape(-1)
    cells = values.tolist()
    as_text = {value: str(value) for value in set(cells)}
    distinct = np.unique(np.array(list(as_text.values()), dtype=str))
    position = {text: i for i, text in enumerate(distinct.tolist())}
    lookup = {value: position[text] for value, text in as_text.items()}
    return distinct, np.fromiter(map(lookup.__getitem__, cells), np.int64, len(cells))


def _first_appearance(index: np.ndarray) -> np.ndarray:
    """Codes numbering the distinct values of ``index`` (small non-negative ints) in order of first
    appearance (pandas.factorize's)."""
    first = np.full(int(index.max()) + 1 if len(index) else 0, len(index), np.int64)
    np.minimum.at(first, index, np.arange(len(index)))
    seen = np.flatnonzero(first < len(index))
    rank = np.empty(len(first), np.int64)
    rank[seen[np.argsort(first[seen])]] = np.arange(len(seen))
    return rank[index]


def _round(values: np.ndarray, dtype) -> np.ndarray:
    return values if np.dtype(dtype) == np.float64 else values.astype(dtype).astype(np.float64)


def _group(
    codes: dict[str, np.ndarray], key: list[str], n_rows: int
) -> tuple[np.ndarray, np.ndarray, int]:
    if not key:
        return (
            np.zeros(n_rows, np.int64),
            np.zeros(1 if n_rows else 0, np.int64),
            1 if n_rows else 0,
        )
    # Rows of codes in lexicographic order = one mixed-radix integer per row (codes are small and
    # non-negative), whose 1-d unique is far faster than a unique over rows.
    sizes = [int(codes[c].max()) + 1 if n_rows else 1 for c in key]
    if float(np.prod(sizes, dtype=np.float64)) < 2**62:
        combined = np.zeros(n_rows, np.int64)
        for c, size in zip(key, sizes, strict=True):
            combined = combined * size + codes[c]
        uniq, first, ids = np.unique(combined, return_index=True, return_inverse=True)
        return ids.reshape(-1), first, len(uniq)
    stacked = np.stack([codes[c] for c in key], axis=1)
    uniq, first, ids = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    return ids.reshape(-1), first, len(uniq)


def _draws(n_labels: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n_labels]: how many times each label is drawn in each resample (seeded)."""
    rng = np.random.default_rng(seed)
    draws = np.zeros((n_boot, n_labels))
    for k in range(n_boot):
        draws[k] = np.bincount(rng.integers(0, n_labels, n_labels), minlength=n_labels)
    return draws


def _bootstrap(evaluate, n_labels: int, n_boot: int, seed: int) -> np.ndarray:
    return np.array([evaluate(m) for m in _draws(n_labels, n_boot, seed)], np.float64)


def _interval(estimate: float, samples: np.ndarray, confidence: float, unit: str) -> Interval:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    finite = samples[np.isfinite(samples)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (np.nan, np.nan)
    return Interval(
        float(estimate), float(low), float(high), confidence, len(samples), unit, samples
    )
