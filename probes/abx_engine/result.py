"""AbxResult: the per-cell table, its averaging at any level (collapse.py), and bootstrap intervals.

Bootstrap: the speakers (or another label) are resampled with replacement. A resampled label drawn k
times counts k times wherever it is averaged out (for A/B and for X), which is the same as duplicating
its cells under new names; labels not drawn drop out, and means are taken over the entries that remain.
With ``files=True`` each drawn speaker's files are resampled too (hierarchical.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine.collapse import CollapsePlan, Interval, _draws, _interval
from probes.abx_engine.conditions import Condition

if TYPE_CHECKING:
    import pandas as pd

    from probes.abx_engine.hierarchical import FileCounts

__all__ = ["AbxResult", "Interval", "PairedDifference", "CollapsePlan"]

COUNT_COLUMNS = ("n_a", "n_b", "n_x", "n_triplets", "correct2", "error")


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
        samples = plan.evaluate_many(errors, self._plans[key])
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
    draws = _draws(len(plan.unit_labels), n_boot, seed)
    samples = plan.evaluate_many(ea, draws) - plan.evaluate_many(eb, draws)
    return PairedDifference(
        a, b, _interval(plan.evaluate(ea) - plan.evaluate(eb), samples, confidence, unit)
    )
