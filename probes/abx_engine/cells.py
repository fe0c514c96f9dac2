"""Cell structure: items sorted into groups and runs, and the blocks of item pairs that need distances.

Items are sorted by (by-group g, across-group h, on-value p). A *group* h is the set of items sharing
the by- and across-values (for within-type conditions, h = g). A *run* is one on-value inside one group:
the A, B or X set of a cell. A cell is (A run, B run, X run): for within-type conditions X run = A run;
for across conditions, X run has A's on-value, the same g, and a group whose across-values all differ
from the A/B group's.

Blocks: the distances of a within-type by-group are one symmetric block (all pairs of its items); across
groups are packed into chunks of consecutive groups, and each pair of chunks of one by-group is a block.
Every pair of items is in exactly one block, so every DTW is computed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from probes.abx_engine.conditions import Condition
from training.data.items import ItemColumns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Layout", "Block", "build_layout", "plan_blocks", "cell_table", "MissingColumnError"]

CHUNK_ITEMS = 1500  # items per across chunk: bounds a block's distance matrix to ~18 MB of float64


class MissingColumnError(ValueError):
    """The item table lacks a column the condition needs."""


@dataclass(frozen=True)
class Layout:
    """Items in processing order, with their groups and runs.

    order: [n] item positions (into the kept items) in processing order; phone: [n] on-codes;
    group: [n] group ids; run_start: [R + 1] item ranges of runs; run_group, run_phone: [R];
    group_start: [H + 1] item ranges of groups; group_runs: [H + 1] run ranges of groups;
    group_by: [H] by-group id; group_across: [H, k] across codes; group_codes: {by or across column:
    [H] codes}; by_start: [G + 1] group ranges of
    by-groups; labels: {column: array of label strings}, codes index them.
    """

    order: np.ndarray
    phone: np.ndarray
    group: np.ndarray
    run_start: np.ndarray
    run_group: np.ndarray
    run_phone: np.ndarray
    group_start: np.ndarray
    group_runs: np.ndarray
    group_by: np.ndarray
    group_across: np.ndarray
    group_codes: dict[str, np.ndarray]
    by_start: np.ndarray
    labels: dict[str, np.ndarray]
    condition: Condition

    @property
    def n_items(self) -> int:
        return len(self.order)

    def allowed(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """[len(rows), len(cols)] bool: may an X in group rows[i] be scored against group cols[j]?"""
        if self.condition.is_symmetric:
            return rows[:, None] == cols[None, :]
        a = self.group_across[rows][:, None, :]
        b = self.group_across[cols][None, :, :]
        return (a != b).all(axis=2)


def _with_context(items: ItemColumns) -> ItemColumns:
    if "context" not in items and "prev" in items and "next" in items:
        prev, nxt = items["prev"].astype(str).tolist(), items["next"].astype(str).tolist()
        context = [f"{p}+{n}" for p, n in zip(prev, nxt, strict=True)]
        items = items.assign(context=np.array(context, dtype=str))
    return items


def build_layout(items: ItemColumns | pd.DataFrame, condition: Condition) -> Layout:
    """Sort ``items`` (the kept rows) into by-groups, groups and runs for ``condition``."""
    if not isinstance(items, ItemColumns):
        items = ItemColumns.from_frame(items)
    items = _with_context(items)
    missing = [c for c in condition.columns if c not in items]
    if missing:
        where = items.path or "item table"
        raise MissingColumnError(
            f"{where}: no column(s) {', '.join(missing)} needed for {condition.name} (has {', '.join(items.names)})"
        )
    codes, labels = {}, {}
    for column in condition.columns:
        # sorted labels and each item's code, as pandas.factorize(sort=True)
        labels[column], inverse = np.unique(items[column].astype(str), return_inverse=True)
        codes[column] = inverse.reshape(-1).astype(np.int64)
    n = len(items)
    by_key = _combine([codes[c] for c in condition.by], n)
    across_key = _combine([codes[c] for c in condition.across], n)
    g_of_item = _dense(by_key)
    h_key = g_of_item.astype(np.int64) * (int(across_key.max()) + 1 if n else 1) + across_key
    phone_all = codes[condition.on].astype(np.int64)
    order = np.lexsort((phone_all, h_key, g_of_item))
    h_sorted = _dense(h_key[order])
    phone = phone_all[order]
    group_start = _starts(h_sorted)
    run_key = h_sorted.astype(np.int64) * (len(labels[condition.on]) + 1) + phone
    run_start = _starts(run_key)
    run_group = h_sorted[run_start[:-1]]
    run_phone = phone[run_start[:-1]]
    group_runs = np.searchsorted(run_start[:-1], group_start).astype(np.int64)
    first = order[group_start[:-1]]
    group_by = g_of_item[first]
    group_codes = {c: codes[c][first].astype(np.int64) for c in (*condition.by, *condition.across)}
    group_across = np.zeros((len(first), len(condition.across)), np.int64)
    for k, column in enumerate(condition.across):
        group_across[:, k] = group_codes[column]
    by_start = np.searchsorted(group_by, np.arange(group_by.max() + 2 if n else 1)).astype(np.int64)
    return Layout(
        order=order.astype(np.int64),
        phone=phone.astype(np.int64),
        group=h_sorted.astype(np.int64),
        run_start=run_start,
        run_group=run_group.astype(np.int64),
        run_phone=run_phone.astype(np.int64),
        group_start=group_start,
        group_runs=group_runs,
        group_by=group_by.astype(np.int64),
        group_across=group_across,
        group_codes=group_codes,
        by_start=by_start,
        labels={c: np.asarray(labels[c], dtype=object) for c in condition.columns},
        condition=condition,
    )


def _combine(columns: list[np.ndarray], n: int) -> np.ndarray:
    key = np.zeros(n, np.int64)
    for codes in columns:
        key = key * (int(codes.max()) + 1 if n else 1) + codes
        key = _dense(key)  # keep the key small however many columns there are
    return key


def _dense(key: np.ndarray) -> np.ndarray:
    return np.unique(key, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _starts(sorted_key: np.ndarray) -> np.ndarray:
    change = np.flatnonzero(np.diff(sorted_key)) + 1
    return np.concatenate([[0], change, [len(sorted_key)]]).astype(np.int64)


@dataclass(frozen=True)
class Block:
    """Rows groups [r0, r1) x column groups [c0, c1) of one by-group (group ids, contiguous)."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def symmetric(self) -> bool:
        return self.r0 == self.c0


def plan_blocks(layout: Layout, chunk_items: int | None = None) -> list[Block]:
    """The blocks that cover every pair of items whose distance some cell needs, each pair once."""
    chunk_items = CHUNK_ITEMS if chunk_items is None else chunk_items
    blocks = []
    for g in range(len(layout.by_start) - 1):
        h0, h1 = int(layout.by_start[g]), int(layout.by_start[g + 1])
        if layout.condition.is_symmetric:
            blocks.extend(Block(h, h + 1, h, h + 1) for h in range(h0, h1))
            continue
        chunks = _chunks(layout.group_start, h0, h1, chunk_items)
        for i, (a0, a1) in enumerate(chunks):
            for b0, b1 in chunks[i:]:
                blocks.append(Block(a0, a1, b0, b1))
    return blocks


def _chunks(group_start: np.ndarray, h0: int, h1: int, limit: int) -> list[tuple[int, int]]:
    chunks, start = [], h0
    for h in range(h0, h1):
        if h > start and group_start[h + 1] - group_start[start] > limit:
            chunks.append((start, h))
            start = h
    if h1 > start:
        chunks.append((start, h1))
    return chunks


def cell_table(
    layout: Layout, x_run, a_run, b_run, correct2, n_a, n_b, n_x, *, return_order: bool = False
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], np.ndarray]:
    """One row per cell, as columns (``AbxResult`` makes the pandas table when asked for it); n_a, n_b,
    n_x are the (possibly subsampled) set sizes. Rows sorted by the label columns (stable); with
    ``return_order`` also the sort: row k of the table is record order[k]."""
    cond = layout.condition
    if cond.is_symmetric:
        n_triplets = n_a * (n_a - 1) * n_b
    else:
        n_triplets = n_x * n_a * n_b
    phone_labels = layout.labels[cond.on]
    table = {
        cond.on: phone_labels[layout.run_phone[a_run]],
        f"{cond.on}_b": phone_labels[layout.run_phone[b_run]],
    }
    group = layout.run_group[a_run]
    for column in (*cond.by, *cond.across):
        table[column] = layout.labels[column][layout.group_codes[column][group]]
    for column in cond.across:
        table[f"{column}_x"] = layout.labels[column][
            layout.group_codes[column][layout.run_group[x_run]]
        ]
    labels = list(table)
    table |= {
        "n_a": n_a.astype(np.int64),
        "n_b": n_b.astype(np.int64),
        "n_x": (n_a if cond.is_symmetric else n_x).astype(np.int64),
        "n_triplets": n_triplets.astype(np.int64),
        "correct2": np.asarray(correct2, np.int64),
    }
    table["error"] = 1.0 - table["correct2"] / (2.0 * table["n_triplets"])
    # One order, however computed: lexicographic in the labels, stable (as pandas' sort_values).
    order = np.lexsort([table[c].astype(str) for c in reversed(labels)])
    sorted_table = {name: values[order] for name, values in table.items()}
    return (sorted_table, order) if return_order else sorted_table
