"""Averaging per-cell values level by level, optionally weighted.

Collapsing (fastabx's semantics): the cell table's label columns are the on-values (``phone``,
``phone_b``), the by- and across-values, and X's across-values (``*_x``). Each level (a column or a tuple
of columns) is averaged out in turn: rows are grouped by the remaining label columns (the ``*_x`` columns
are never kept, so they are averaged with the first level) and their errors are averaged, unweighted;
what is left (the phone pairs) is averaged last. ``CollapsePlan`` precomputes the groupings once for a
cell table; ``evaluate`` weights them by resampled labels' multiplicities, and ``evaluate_many`` does so
for every bootstrap resample at once, to the same floats (``result.AbxResult.bootstrap``,
``hierarchical``).

The bootstrap's draws and intervals (``Interval``, ``_draws``, ``_interval``) are in bootstrap.py;
they are imported here too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine.bootstrap import Interval
from probes.abx_engine.bootstrap import _draws as _draws
from probes.abx_engine.bootstrap import _interval as _interval

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import DTypeLike

__all__ = ["Interval", "CollapsePlan"]


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

    def evaluate_many(
        self, values: np.ndarray, multiplicities: np.ndarray, dtype: DTypeLike = np.float64,
        present: np.ndarray | None = None,
    ) -> np.ndarray:  # fmt: skip
        """[n_boot] ``evaluate(values[k], multiplicities[k], dtype, present[k])`` for every row k,
        bit for bit, without a Python call per row.

        multiplicities: [n_boot, n unit labels]; values and present: [cells] (the same for every row)
        or [n_boot, cells]. Rows are evaluated ``chunk_rows`` at a time, in buffers reused from chunk
        to chunk, so memory stays bounded whatever n_boot.
        """
        multiplicities = np.asarray(multiplicities, np.float64)
        values = np.asarray(values, np.float64)
        present = None if present is None else np.asarray(present, bool)
        n_boot, n_cells = len(multiplicities), values.shape[-1]
        rows = chunk_rows(n_cells)
        space = _Workspace()
        out = np.empty(n_boot, np.float64)
        for start in range(0, n_boot, rows):
            chunk = slice(start, start + rows)
            out[chunk] = self._evaluate_columns(
                _columns(values, chunk),
                np.ascontiguousarray(multiplicities[chunk].T),
                dtype,
                np.ones((n_cells, 1), bool) if present is None else _columns(present, chunk),
                space,
            )
        return out

    def _evaluate_columns(
        self, values: np.ndarray, multiplicities: np.ndarray, dtype: DTypeLike,
        present: np.ndarray, space: _Workspace,
    ) -> np.ndarray:  # fmt: skip
        """[b] ``evaluate`` of b resamples at once, one per column: values and present [cells, 1]
        (shared) or [cells, b]; multiplicities [n unit labels, b].

        Each step is ``evaluate``'s, elementwise in the same order, on cells stored rank-major
        (``_StepLayout``): a group's sum adds its cells in ``evaluate``'s order, so the means are
        the same floats bit for bit.
        """
        b = multiplicities.shape[1]
        v = _round(values, dtype)
        for s, layout in enumerate(self._layouts):
            if s == 0:  # later steps' values are 0 where absent already (the divisions' default)
                v = np.where(present, v, 0.0)
            v = space.take("v_in", v, layout.take)
            present = space.take("present_in", present, layout.take)
            w = _column_weights(present, multiplicities, layout.codes, space)
            x = np.multiply(w, v, out=space.get("x", w.shape))
            total = layout.group_sums(x, space.get("total", (len(layout.position), b)))
            weight = layout.group_sums(w, space.get("weight", total.shape))
            present = np.greater(weight, 0, out=space.get("present", total.shape, bool))
            v = space.get("v", total.shape)
            v.fill(0.0)
            np.divide(total, weight, out=v, where=present)
            _round_in_place(v, dtype, space)
        if self._layouts:  # back to the plan's order of the last groups, for the final sum's order
            v = space.take("v_in", v, self._layouts[-1].position)
            present = space.take("present_in", present, self._layouts[-1].position)
        w = _column_weights(present, multiplicities, self.final, space)
        x = np.multiply(w, v, out=space.get("x", w.shape))
        # evaluate's last sums are numpy's pairwise sums of a contiguous 1-d array: a contiguous
        # row summed along its axis is summed the same way (a column sum would add in sequence).
        numerator = space.transposed("x_t", x).sum(axis=1)
        weight = space.transposed("x_t", w).sum(axis=1)
        return np.divide(numerator, weight, out=np.full(b, np.nan), where=weight > 0)

    @functools.cached_property
    def _layouts(self) -> list[_StepLayout]:
        """Each step's ``_StepLayout``, each reading the previous one's order of groups."""
        layouts: list[_StepLayout] = []
        for ids, n, removed in self.steps:
            previous = layouts[-1].position if layouts else np.arange(len(ids))
            layouts.append(_StepLayout.build(ids, n, removed, previous))
        return layouts


# Entries (cells x resamples) per array that CollapsePlan.evaluate_many aims at: 2**16 float64 is
# 512 KiB, so a step's few arrays stay in a core's caches (measured: faster than larger chunks); but
# at least _MIN_ROWS resamples at once (gathering rows of a few floats costs more than the copy), and
# never more than _MAX_FLOATS entries (32 MiB per array), whatever n_boot and the number of cells.
_CHUNK_FLOATS = 2**16
_MIN_ROWS = 16
_MAX_FLOATS = 2**22


def chunk_rows(n_cells: int) -> int:
    """How many resamples ``evaluate_many`` evaluates at once on ``n_cells`` cells."""
    n_cells = max(n_cells, 1)
    return max(1, min(max(_MIN_ROWS, _CHUNK_FLOATS // n_cells), _MAX_FLOATS // n_cells))


# A step sums its groups by slices of cells of one rank (one numpy add per rank) when its ranks hold
# this many cells on average; else (a few large groups: many ranks of a few cells) by one bincount,
# where a Python call per rank would cost more than its adds (measured).
_CELLS_PER_RANK = 32


@dataclass(frozen=True)
class _StepLayout:
    """A collapse step's cells in an order where its group sums are contiguous adds.

    Groups are ordered by decreasing size (``position``: each group's place in that order), and the
    cells by (rank in their group, their group's place): rank r is the cells ``bounds[r]`` to
    ``bounds[r + 1]``, one for each of the first groups, so ``sums[:k] += cells[rows of rank r]`` adds
    rank r. Ranks follow the cells' order in the plan, so every group is summed in ``evaluate``'s
    order (its bincount adds in index order) and to the same float.
    """

    take: np.ndarray  # [cells] the previous step's rows (groups) in this order
    codes: list[np.ndarray]  # [cells] unit-label codes of the resampled labels averaged out
    group: np.ndarray  # [cells] the place of each cell's group
    bounds: np.ndarray  # [largest group + 1] where each rank's cells start
    position: np.ndarray  # [groups] each group's place (in the plan's numbering of groups)

    @classmethod
    def build(
        cls, ids: np.ndarray, n: int, removed: list[np.ndarray], previous: np.ndarray
    ) -> _StepLayout:
        """ids: [cells] each cell's group (of ``n``); removed: the step's unit-label codes [cells];
        previous: [cells] where the previous step left each cell."""
        sizes = np.bincount(ids, minlength=n)
        by_group = np.argsort(ids, kind="stable")
        rank = np.empty(len(ids), np.int64)
        rank[by_group] = np.arange(len(ids)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        position = np.empty(n, np.int64)
        position[np.argsort(-sizes, kind="stable")] = np.arange(n)
        order = np.lexsort((position[ids], rank))
        bounds = np.concatenate([[0], np.cumsum(np.bincount(rank))])
        codes = [c[order] for c in removed]
        return cls(previous[order], codes, position[ids][order], bounds, position)

    def group_sums(self, entries: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out`` [groups, b] := the sums of ``entries`` [cells, b] (in this layout's order) per
        group."""
        b, n = entries.shape[1], len(self.position)
        if len(self.take) < _CELLS_PER_RANK * (len(self.bounds) - 1):
            # bincount adds each bin's entries in index order: the cells' order again.
            flat = (self.group[:, None] * b + np.arange(b)).ravel()
            out[...] = np.bincount(flat, entries.ravel(), minlength=n * b).reshape(n, b)
            return out
        if n == 0:
            return out
        # Every group has a cell of rank 0: they start the sums, 0.0 + x as bincount's first add.
        np.add(entries[: self.bounds[1]], 0.0, out=out)
        for lo, hi in zip(self.bounds[1:-1], self.bounds[2:], strict=True):
            out[: hi - lo] += entries[lo:hi]
        return out


class _Workspace:
    """Buffers by name, reused by every chunk of ``evaluate_many``: fresh arrays of a MiB or more per
    step and chunk are fresh pages from the system, whose faults cost more than the sums."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        """An uninitialised array of ``shape`` in buffer ``name`` (grown when too small)."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)

    def take(self, name: str, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``rows[index]`` (rows: [n, b]) in buffer ``name``."""
        out = self.get(name, (len(index), rows.shape[1]), rows.dtype)
        # mode="clip": the indices are valid, and "raise" would copy through a temporary first.
        return np.take(rows, index, axis=0, out=out, mode="clip")

    def transposed(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``rows.T`` [b, n], contiguous, in buffer ``name``."""
        out = self.get(name, rows.shape[::-1], rows.dtype)
        np.copyto(out, rows.T)
        return out


def _columns(values: np.ndarray, chunk: slice) -> np.ndarray:
    """[cells, 1] of per-cell ``values`` [cells], or [cells, b] of the ``chunk`` of per-resample rows
    [n_boot, cells] (contiguous: its rows are gathered per step)."""
    if values.ndim == 1:
        return values[:, None]
    return np.ascontiguousarray(values[chunk].T)


def _column_weights(
    present: np.ndarray, multiplicities: np.ndarray, codes: list[np.ndarray], space: _Workspace
) -> np.ndarray:
    """[cells, b] ``evaluate``'s weights ``w`` per resample (the products in its order), in buffer
    "w": present [cells, 1] or [cells, b] times the multiplicity [unit labels, b] of each of the
    cell's codes."""
    w = space.get("w", (len(present), multiplicities.shape[1]))
    if not codes:
        np.copyto(w, present)
        return w
    np.take(multiplicities, codes[0], axis=0, out=w, mode="clip")
    np.multiply(present, w, out=w)  # present (as 0.0 or 1.0) times the first multiplicity
    for c in codes[1:]:
        np.multiply(w, space.take("m", multiplicities, c), out=w)
    return w


def _round_in_place(values: np.ndarray, dtype: DTypeLike, space: _Workspace) -> None:
    """``_round`` into ``values`` itself."""
    if np.dtype(dtype) != np.float64:
        rounded = space.get("rounded", values.shape, dtype)
        np.copyto(rounded, values, casting="same_kind")
        np.copyto(values, rounded)


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
