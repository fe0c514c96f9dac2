"""AbxResult: the per-cell table, its averaging at any level, and bootstrap intervals over speakers.

Collapsing (fastabx's semantics): the cell table's label columns are the on-values (``phone``,
``phone_b``), the by- and across-values, and X's across-values (``*_x``). Each level (a column or a tuple
of columns) is averaged out in turn: rows are grouped by the remaining label columns (the ``*_x`` columns
are never kept, so they are averaged with the first level) and their errors are averaged, unweighted;
what is left (the phone pairs) is averaged last.

Bootstrap: the speakers (or another label) are resampled with replacement. A resampled label drawn k
times counts k times wherever it is averaged out (for A/B and for X), which is the same as duplicating
its cells under new names; labels not drawn drop out, and means are taken over the entries that remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine.conditions import Condition

if TYPE_CHECKING:
    import pandas as pd

    from probes.abx_engine.hierarchical import FileCounts

__all__ = ["AbxResult", "Interval", "PairedDifference", "CollapsePlan"]

COUNT_COLUMNS = ("n_a", "n_b", "n_x", "n_triplets", "correct2", "error")


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


class AbxResult:
    """ABX result: ``float(result)`` is the error in [0, 1]; ``cells`` has one row per cell.

    cells columns: the labels (``phone``, ``phone_b``, by/across columns, ``*_x``), ``n_a``, ``n_b``,
    ``n_x``, ``n_triplets`` and ``correct2`` (int64; twice the correct triplets, ties counting 1) and
    ``error`` = 1 - correct2 / (2 n_triplets).
    """

    def __init__(
        self,
        cells: pd.DataFrame | Mapping[str, np.ndarray],
        condition: Condition,
        meta: dict | None = None,
        plans: dict | None = None,
        files: FileCounts | None = None,
    ):
        """cells: a pandas table or {column: [cells] array}; plans: a dict shared by results with the
        same cells (one ``Prepared``), where collapse plans and bootstrap draws are built once for
        all of them; files: the cells' counts split by the file of their X items (the engine gives
        them unless it subsampled), for ``bootstrap(files=True)``."""
        if isinstance(cells, Mapping):  # the engine's columns: the pandas table is made on demand
            self._columns, self._table = {c: np.asarray(v) for c, v in cells.items()}, None
        else:
            self._columns, self._table = {c: cells[c].to_numpy() for c in cells.columns}, cells
        self.condition = condition
        self.meta = dict(meta or {})
        self._plans: dict = {} if plans is None else plans
        self.files = files

    @property
    def cells(self) -> pd.DataFrame:
        """One row per cell (pandas; built on first use)."""
        if self._table is None:
            import pandas as pd

            self._table = pd.DataFrame(self._columns)
        return self._table

    @property
    def n_cells(self) -> int:
        return len(self._columns["error"])

    @property
    def n_triplets(self) -> int:
        return int(self._columns["n_triplets"].sum())

    @property
    def labels(self) -> list[str]:
        return [c for c in self._columns if c not in COUNT_COLUMNS]

    def _plan(self, levels, unit=None) -> CollapsePlan:
        levels = tuple(self.condition.levels if levels is None else levels)
        key = (levels, unit)
        plan = self._plans.get(key)
        # A shared plan fits results whose cells carry the same labels in the same order.
        if plan is None or not plan.fits(self._columns):
            plan = self._plans[key] = CollapsePlan(self._columns, self.labels, levels, unit)
        return plan

    def collapse(self, levels=None, dtype=np.float64) -> float:
        """The error averaged level by level (default: the condition's levels, docs/abx.md).

        dtype=np.float32 rounds as fastabx does (cell errors and level means in float32), to compare
        with its numbers bit for bit; the default keeps the exact float64 means of exact int64 counts.
        """
        return self._plan(levels).evaluate(self._columns["error"], dtype=dtype)

    @property
    def error(self) -> float:
        return self.collapse()

    def __float__(self) -> float:
        return self.error

    def details(self, levels=None) -> pd.DataFrame:
        """The table after averaging out ``levels`` (default: the condition's): one row per remaining key."""
        import pandas as pd

        levels = list(self.condition.levels if levels is None else levels)
        labels = self.labels
        table = self.cells
        keep = [c for c in labels if not c.endswith("_x") or c[:-2] not in labels]
        for level in levels:
            level = (level,) if isinstance(level, str) else tuple(level)
            keep = [c for c in keep if c not in level]
            if not keep:
                return pd.DataFrame(
                    {"error": [table["error"].mean()], "n_triplets": [table["n_triplets"].sum()]}
                )
            table = table.groupby(keep, sort=True, observed=True).agg(
                error=("error", "mean"), n_triplets=("n_triplets", "sum")
            )
            table = table.reset_index()
        return table

    def bootstrap(
        self,
        n_boot: int = 1000,
        confidence: float = 0.95,
        seed: int = 0,
        unit: str = "speaker",
        levels=None,
        files: bool = False,
    ) -> Interval:
        """Percentile interval of the error when ``unit`` labels (speakers) are resampled with
        replacement; ``files``: and each drawn speaker's files (``hierarchical.bootstrap_files``)."""
        if files:
            from probes.abx_engine.hierarchical import bootstrap_files

            if unit != "speaker":
                raise ValueError("files=True resamples speakers and their files: unit='speaker'")
            return bootstrap_files(self, n_boot, confidence, seed, levels)
        plan = self._plan(levels, unit)
        if plan.unit_labels is None:
            raise ValueError(f"cannot resample {unit!r}: the cell labels are {self.labels}")
        key = ("draws", len(plan.unit_labels), n_boot, seed)
        if key not in self._plans:  # the resampling plan: the same draws for every shared result
            self._plans[key] = _draws(len(plan.unit_labels), n_boot, seed)
        errors = self._columns["error"]
        samples = np.array([plan.evaluate(errors, m) for m in self._plans[key]], np.float64)
        return _interval(self.collapse(levels), samples, confidence, unit)

    def summary(self) -> dict:
        """Plain-JSON summary: score (the error), condition, counts and options."""
        out = {
            "score": self.error,
            "speaker": self.condition.speaker,
            "context": self.condition.context,
            "on": self.condition.on,
            "by": list(self.condition.by),
            "across": list(self.condition.across),
            "n_cells": self.n_cells,
            "n_triplets": self.n_triplets,
        }
        return out | {k: v for k, v in self.meta.items() if k not in out}

    def __repr__(self) -> str:
        return (
            f"AbxResult(error={self.error:.6f}, {self.condition.name}, {self.n_cells} cells, "
            f"{self.n_triplets} triplets)"
        )


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


@dataclass(frozen=True)
class PairedDifference:
    """error(a) - error(b) on the same cells, with a paired bootstrap interval over ``unit``."""

    a: AbxResult
    b: AbxResult
    interval: Interval

    @property
    def difference(self) -> float:
        return self.interval.estimate

    def __float__(self) -> float:
        return self.difference


def paired_interval(
    a: AbxResult,
    b: AbxResult,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    unit: str = "speaker",
    files: bool = False,
) -> PairedDifference:
    """Paired bootstrap of error(a) - error(b): the same resampled speakers (``files``: and files
    within them, ``hierarchical.paired_files``) weight both."""
    if files:
        from probes.abx_engine.hierarchical import paired_files

        return PairedDifference(a, b, paired_files(a, b, n_boot, confidence, seed))
    labels = a.labels
    if labels != b.labels or a.condition.levels != b.condition.levels:
        raise ValueError("paired difference needs two results of the same condition")
    merged = a.cells[labels + ["error"]].merge(
        b.cells[labels + ["error"]],
        on=labels,
        how="inner",
        suffixes=("_a", "_b"),
        validate="one_to_one",
    )
    if len(merged) != len(a.cells) or len(merged) != len(b.cells):
        raise ValueError(
            f"paired difference needs the same cells: {len(a.cells)} and {len(b.cells)} cells, {len(merged)} shared"
        )
    plan = CollapsePlan(merged, labels, a.condition.levels, unit)
    if plan.unit_labels is None:
        raise ValueError(f"cannot resample {unit!r}: the cell labels are {labels}")
    ea, eb = merged["error_a"].to_numpy(), merged["error_b"].to_numpy()

    def difference(m):
        return plan.evaluate(ea, m) - plan.evaluate(eb, m)

    samples = _bootstrap(difference, len(plan.unit_labels), n_boot, seed)
    return PairedDifference(
        a, b, _interval(plan.evaluate(ea) - plan.evaluate(eb), samples, confidence, unit)
    )
