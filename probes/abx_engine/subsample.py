"""Optional seeded subsampling: at most ``max_size_group`` items of A, B and X per cell, and at most
``max_x_across`` X groups (X speakers) per A set in across conditions.

Off by default (exact, deterministic). When on, every choice is made by ranking a counter-based hash of
(seed, cell, role, item): the k items with the smallest hashes are kept. A cell's sample therefore
depends on nothing but the seed and the cell, is drawn independently of every other cell, and is the
same for any thread count or block order. Within-type cells use one sample for A and X (x = a excluded),
as libri-light does; the X groups of an across A set are chosen once for all its B sets, as libri-light
does for X speakers.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from probes.abx_engine.conditions import Subsampling

__all__ = ["Subsampling", "count_subsampled", "x_thresholds", "keep_smallest"]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
ROLE_A, ROLE_B, ROLE_X = 1, 2, 3


@nb.njit(inline="always")
def _mix(h, v):
    # splitmix64 finaliser applied to the running state xor the next value
    z = (h ^ np.uint64(v)) + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def _hash(seed, a, b, c, d):
    return _mix(_mix(_mix(_mix(np.uint64(seed), a), b), c), d)


@nb.njit(cache=True)
def keep_smallest(
    seed: int, a: int, b: int, role: int, start: int, stop: int, k: int
) -> np.ndarray:
    """The items start..stop-1 whose hash(seed, a, b, role, item) is among the k smallest (sorted)."""
    n = stop - start
    if k < 0 or k >= n:
        return np.arange(start, stop)
    keys = np.empty(n, np.uint64)
    for i in range(n):
        keys[i] = _hash(seed, a, b, role * 1_000_003 + 7, start + i)
    chosen = np.argsort(keys)[:k] + start
    chosen.sort()
    return chosen


@nb.njit(cache=True)
def x_thresholds(
    seed: int,
    run_start: np.ndarray,
    run_group: np.ndarray,
    run_phone: np.ndarray,
    group_runs: np.ndarray,
    group_by: np.ndarray,
    by_group_start: np.ndarray,
    group_across: np.ndarray,
    max_x: int,
) -> np.ndarray:
    """Per A run, the largest hash(seed, A run, X run) among the X runs kept (at most max_x of them)."""
    n_runs = run_phone.shape[0]
    out = np.full(n_runs, np.uint64(0xFFFFFFFFFFFFFFFF))
    for a in range(n_runs):
        h2 = run_group[a]
        g = group_by[h2]
        hashes = np.empty(by_group_start[g + 1] - by_group_start[g], np.uint64)
        n = 0
        for hx in range(by_group_start[g], by_group_start[g + 1]):
            differs = True
            for k in range(group_across.shape[1]):
                differs &= group_across[hx, k] != group_across[h2, k]
            if not differs:
                continue
            for r in range(group_runs[hx], group_runs[hx + 1]):
                if run_phone[r] == run_phone[a]:
                    hashes[n] = _hash(seed, a, r, ROLE_X, 0)
                    n += 1
        if n > max_x:
            out[a] = np.sort(hashes[:n])[max_x - 1]
    return out


@nb.njit(parallel=True, cache=True)
def _count_cells(dist, row_item0, col_item0, x_runs, a_runs, b_runs, run_start, symmetric, k, seed):
    n_cells = x_runs.shape[0]
    correct2 = np.zeros(n_cells, np.int64)
    sizes = np.zeros((n_cells, 3), np.int64)
    for c in nb.prange(n_cells):
        xr, ar, br = x_runs[c], a_runs[c], b_runs[c]
        a_items = keep_smallest(seed, ar, br, ROLE_A, run_start[ar], run_start[ar + 1], k)
        b_items = keep_smallest(seed, ar, br, ROLE_B, run_start[br], run_start[br + 1], k)
        if symmetric:
            x_items = a_items
        else:
            x_items = keep_smallest(
                seed, ar * 7919 + br, xr, ROLE_X, run_start[xr], run_start[xr + 1], k
            )
        total = 0
        for x in x_items:
            for a in a_items:
                if a == x:
                    continue
                dxa = dist[x - row_item0, a - col_item0]
                for b in b_items:
                    dxb = dist[x - row_item0, b - col_item0]
                    total += 2 if dxa < dxb else (1 if dxa == dxb else 0)
        correct2[c] = total
        sizes[c, 0], sizes[c, 1], sizes[c, 2] = len(a_items), len(b_items), len(x_items)
    return correct2, sizes


def _block_cells(layout, r0, r1, c0, c1, thresholds, seed):
    """All cells with X runs in groups [r0, r1) and A/B runs in groups [c0, c1), X groups subsampled."""
    symmetric = layout.condition.is_symmetric
    allowed = layout.allowed(np.arange(r0, r1), np.arange(c0, c1))
    xs, as_, bs = [], [], []
    for hx in range(r0, r1):
        for h2 in np.flatnonzero(allowed[hx - r0]) + c0:
            runs = np.arange(layout.group_runs[h2], layout.group_runs[h2 + 1])
            phones = layout.run_phone[runs]
            for xr in range(layout.group_runs[hx], layout.group_runs[hx + 1]):
                match = runs[phones == layout.run_phone[xr]]
                if not len(match):
                    continue
                ar = int(match[0])
                if symmetric and layout.run_start[ar + 1] - layout.run_start[ar] < 2:
                    continue
                if thresholds is not None and _hash(seed, ar, xr, ROLE_X, 0) > thresholds[ar]:
                    continue
                others = runs[runs != ar]
                xs.append(np.full(len(others), xr))
                as_.append(np.full(len(others), ar))
                bs.append(others)
    if not xs:
        return (np.zeros(0, np.int64),) * 3
    return tuple(np.concatenate(v).astype(np.int64) for v in (xs, as_, bs))


def count_subsampled(layout, block, d_rc, d_cr, sampling: Subsampling, thresholds=None):
    """Cells of one block, each counted on its own sample: (x, a, b runs, correct2, n_a, n_b, n_x)."""
    k = -1 if sampling.max_size_group is None else int(sampling.max_size_group)
    gs = layout.group_start
    parts = []
    orientations = [(block.r0, block.r1, block.c0, block.c1, d_rc)]
    if not block.symmetric:
        orientations.append((block.c0, block.c1, block.r0, block.r1, d_cr))
    for r0, r1, c0, c1, dist in orientations:
        x_run, a_run, b_run = _block_cells(layout, r0, r1, c0, c1, thresholds, sampling.seed)
        correct2, sizes = _count_cells(
            dist,
            gs[r0],
            gs[c0],
            x_run,
            a_run,
            b_run,
            layout.run_start,
            layout.condition.is_symmetric,
            k,
            sampling.seed,
        )
        triplets = (
            sizes[:, 2] * (sizes[:, 0] - (1 if layout.condition.is_symmetric else 0)) * sizes[:, 1]
        )
        keep = triplets > 0
        parts.append((x_run, a_run, b_run, correct2, sizes[:, 0], sizes[:, 1], sizes[:, 2]))
        parts[-1] = tuple(p[keep] for p in parts[-1])
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(7))
