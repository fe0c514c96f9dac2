"""A slow, obviously-correct ABX: explicit loops over cells and triplets, docs/abx.md's rules read literally.

It shares no code with the fast path except the Condition (which columns play on/by/across) and exists to
check it (tests/test_abx_reference.py). Use it on tens of items, never more.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import product

import numpy as np
import pandas as pd

from probes.abx_engine.conditions import Condition

__all__ = ["reference_cells", "reference_error", "reference_dtw", "reference_slices"]

NEAR = (
    1e-6  # |d(x,a) - d(x,b)| below this (but not 0) is a near-tie: float32 and float64 may disagree
)


def reference_slices(
    items: pd.DataFrame, lengths: dict[str, int], frequency: float, compat: str | None
):
    """[(row, start, end)] for the items kept, by docs/abx.md's two slicing rules."""
    out = []
    for row, item in enumerate(items.itertuples(index=False)):
        n_frames = lengths[item.file]
        if compat is None:
            f = Decimal(repr(float(frequency)))
            onset = Decimal(getattr(item, "onset_text", repr(float(item.onset))))
            offset = Decimal(getattr(item, "offset_text", repr(float(item.offset))))
            start = int((f * onset - Decimal("0.5")).to_integral_value(ROUND_CEILING))
            end = int((f * offset - Decimal("0.5")).to_integral_value(ROUND_FLOOR)) + 1
            if start < 0 or end > n_frames or end <= start:
                raise ValueError(f"item {row} out of range")
        else:
            start = max(0, math.ceil(frequency * float(item.onset) - 0.5))
            end = min(n_frames, math.floor(frequency * float(item.offset) - 0.5))
            if start >= n_frames or end <= start:
                continue
        out.append((row, start, end))
    return out


def _frame_distance(u: np.ndarray, v: np.ndarray, distance: str, compat: bool) -> float:
    u, v = u.astype(np.float64), v.astype(np.float64)
    if distance == "euclidean" and not compat:
        return float(np.sqrt(((u - v) ** 2).sum()))
    zu, zv = not u.any(), not v.any()
    if compat and (zu or zv):
        # libri-light's quirk: an all-zero frame is maximally far from every other frame, 0 from another.
        apart = {"angular": 1.0, "cosine": 2.0, "euclidean": 2e12}[distance]
        return 0.0 if zu and zv else apart
    u = u / np.linalg.norm(u) if not zu else np.full_like(u, 1 / math.sqrt(len(u)))
    v = v / np.linalg.norm(v) if not zv else np.full_like(v, 1 / math.sqrt(len(v)))
    if distance == "euclidean":
        return float(np.sqrt(((u - v) ** 2).sum()))
    dot = min(max(float(u @ v), -1.0), 1.0)
    return math.acos(dot) / math.pi if distance == "angular" else 1.0 - dot


def reference_dtw(dist: np.ndarray, with_fragility: bool = False, cost_dtype=np.float64):
    """DTW of an n x m frame-distance matrix, rows = x's frames, normalised by the traced path length.

    with_fragility: also say whether a trace-back decision compared costs closer than NEAR (the path
    length, hence the distance, can then differ in the engine's float32). cost_dtype: float32 adds
    the costs in float32 and rounds the result to float32, as libri-light / zrc-abx2 (compat mode).
    """
    n, m = dist.shape
    dist = dist.astype(cost_dtype)
    cost = np.zeros((n, m), cost_dtype)
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                cost[i, j] = dist[0, 0]
            elif i == 0:
                cost[i, j] = dist[i, j] + cost[i, j - 1]
            elif j == 0:
                cost[i, j] = dist[i, j] + cost[i - 1, j]
            else:
                cost[i, j] = dist[i, j] + min(cost[i - 1, j], cost[i - 1, j - 1], cost[i, j - 1])
    i, j, length, fragile = n - 1, m - 1, 1, False
    while i > 0 and j > 0:
        c_up, c_left, c_diag = cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1]
        fragile |= min(abs(c_diag - c_left), abs(c_diag - c_up), abs(c_left - c_up)) < NEAR
        if c_diag <= c_left and c_diag <= c_up:
            i, j = i - 1, j - 1
        elif c_left <= c_up:
            j -= 1
        else:
            i -= 1
        length += 1
    length += i + j  # straight to (0, 0)
    value = float(cost_dtype(float(cost[n - 1, m - 1]) / length))
    return (value, fragile) if with_fragility else value


def _item_distance(x: np.ndarray, y: np.ndarray, distance: str, compat: bool) -> tuple[float, bool]:
    frames = np.array([[_frame_distance(u, v, distance, compat) for v in y] for u in x])
    return reference_dtw(frames, True, np.float32 if compat else np.float64)


def _pool(frames: np.ndarray, compat: bool) -> np.ndarray:
    if not compat:
        return frames.astype(np.float64).mean(axis=0, keepdims=True)
    norms = np.linalg.norm(frames.astype(np.float64), axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("the reference does not pool libri-light's zero frames")
    return (frames / norms).mean(axis=0, keepdims=True)


def reference_cells(
    features: dict[str, np.ndarray],
    items: pd.DataFrame,
    condition: Condition,
    *,
    frequency: float = 50.0,
    distance: str = "angular",
    pooling: str | None = None,
    compat: str | None = None,
    by_x_file: bool = False,
) -> pd.DataFrame:
    """One row per cell: labels, n_triplets, correct2 (twice the correct count) and near_ties;
    ``by_x_file``: one row per cell and file of its X items (column ``x_file``), the cell's triplets
    split by the file x comes from.

    near_ties counts the triplets whose two distances differ by less than NEAR, exact ties included (a
    tie in exact arithmetic can come out either way in float32: (|u1 - y| + |u2 - y|) / 2 is the same
    for every y between u1 and u2), or whose distances came from a fragile DTW trace-back.
    """
    if "context" not in items and "prev" in items:
        items = items.assign(context=items["prev"].astype(str) + "+" + items["next"].astype(str))
    lengths = {name: len(array) for name, array in features.items()}
    kept = []
    for row, start, end in reference_slices(items, lengths, frequency, compat):
        item = items.iloc[row]
        frames = features[item["file"]][start:end]
        if pooling == "mean":
            frames = _pool(frames, compat is not None)
        kept.append((item, frames))
    on, by, across = condition.on, list(condition.by), list(condition.across)
    labels = lambda i, cols: tuple(str(kept[i][0][c]) for c in cols)  # noqa: E731
    n = len(kept)
    pooled_compat = pooling == "mean" and compat is not None

    def d(i, j):
        if pooled_compat:  # no renormalisation of libri-light's pooled vectors
            u, v = kept[i][1][0], kept[j][1][0]
            dot = min(max(float(u @ v), -1.0), 1.0)
            if distance == "euclidean":
                return float(np.sqrt(((u - v) ** 2).sum())), False
            return (math.acos(dot) / math.pi if distance == "angular" else 1.0 - dot), False
        return _item_distance(kept[i][1], kept[j][1], distance, compat is not None)

    rows = []
    values = {c: sorted({labels(i, [c])[0] for i in range(n)}) for c in [on, *by, *across]}
    for by_values in product(*[values[c] for c in by]):
        in_by = [i for i in range(n) if labels(i, by) == by_values]
        across_values = sorted({labels(i, across) for i in in_by})
        for ab_across in across_values:
            in_group = [i for i in in_by if labels(i, across) == ab_across]
            for a_label, b_label in product(values[on], values[on]):
                if a_label == b_label:
                    continue
                A = [i for i in in_group if labels(i, [on])[0] == a_label]
                B = [i for i in in_group if labels(i, [on])[0] == b_label]
                if not A or not B:
                    continue
                if not across:
                    x_sets = [((), A)]
                else:
                    x_sets = []
                    for x_across in across_values:
                        if all(x != y for x, y in zip(x_across, ab_across, strict=True)):
                            X = [
                                i
                                for i in in_by
                                if labels(i, across) == x_across and labels(i, [on])[0] == a_label
                            ]
                            if X:
                                x_sets.append((x_across, X))
                for x_across, X in x_sets:
                    counts: dict[str, list[int]] = {}  # x's file -> [correct2, count, near]
                    for x in X:
                        tally = counts.setdefault(str(kept[x][0]["file"]), [0, 0, 0])
                        for a in A:
                            if a == x:
                                continue
                            # compat, within-type: the earlier item's frames on the rows (zrc-abx2)
                            earlier = compat is not None and not across
                            dxa, fragile_a = d(min(x, a), max(x, a)) if earlier else d(x, a)
                            for b in B:
                                dxb, fragile_b = d(x, b)
                                tally[0] += 2 if dxa < dxb else 1 if dxa == dxb else 0
                                tally[2] += fragile_a or fragile_b or abs(dxa - dxb) < NEAR
                                tally[1] += 1
                    if sum(t[1] for t in counts.values()) == 0:
                        continue
                    if compat is not None and not across:  # zrc-abx2's d(x, x) = max + 1 in float32
                        d_xb = [(d(x, b)[0], str(kept[x][0]["file"])) for x in X for b in B]
                        top = max(v for v, _ in d_xb)
                        if np.float32(top + 1.0) == top:
                            for value, file in d_xb:
                                counts[file][0] += value == top
                    row = {on: a_label, f"{on}_b": b_label}
                    row |= dict(zip(by, by_values, strict=True)) | dict(
                        zip(across, ab_across, strict=True)
                    )
                    row |= {f"{c}_x": v for c, v in zip(across, x_across, strict=True)}
                    parts = {f: t for f, t in counts.items() if t[1]} if by_x_file else {
                        None: [sum(t[k] for t in counts.values()) for k in range(3)]}  # fmt: skip
                    for file, (correct2, count, near) in parts.items():
                        where = {"x_file": file} if by_x_file else {}
                        rows.append(row | where | {"n_triplets": count, "correct2": correct2,
                                                   "near_ties": near})  # fmt: skip
    return pd.DataFrame(rows)


def reference_error(cells: pd.DataFrame, condition: Condition, levels=None) -> float:
    """Average 1 - correct2 / (2 n_triplets) level by level (X labels with the first level), then all."""
    levels = condition.levels if levels is None else levels
    table = cells.assign(error=1 - cells["correct2"] / (2 * cells["n_triplets"]))
    label_columns = [
        c for c in table.columns if c not in ("n_triplets", "correct2", "near_ties", "error")
    ]
    key = [c for c in label_columns if not (c.endswith("_x") and c[:-2] in label_columns)]
    for level in levels:
        level = (level,) if isinstance(level, str) else tuple(level)
        key = [c for c in key if c not in level]
        means: dict[tuple, list[float]] = {}
        for _, row in table.iterrows():
            means.setdefault(tuple(row[c] for c in key), []).append(row["error"])
        table = pd.DataFrame(
            [dict(zip(key, k, strict=True)) | {"error": sum(v) / len(v)} for k, v in means.items()]
        )
    return float(table["error"].mean())
