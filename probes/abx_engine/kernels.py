"""Numba kernels: frame distances from dot products, DTW over item pairs, per-x counting by sorting.

The DTW rule is docs/abx.md's (libri-light's): rows are x's frames; steps down, right, diagonal; the
total cost divided by the number of cells on the path traced back from (n-1, m-1), going diagonal if
c_diag <= c_left and c_diag <= c_up, else left if c_left <= c_up, else up, then straight to (0, 0).
The cost matrix of (y, x) is the transpose of that of (x, y); only the trace-back differs (a tie
between left and up goes the other way), so one cost matrix gives both orientations exactly.

Counting: for one x and one cell, ``sum over a, b of 2*[d(x,a) < d(x,b)] + [d(x,a) = d(x,b)]``
equals ``sum over b of (lower(d(x,b)) + upper(d(x,b)))`` where lower/upper are the positions of
d(x,b) in the sorted d(x, A), found through a bucket index of the sorted values (a binary search would
mispredict), so each x costs na log na + nb, not na * nb.
Counts are int64 and twice the score (ties count 1), so they stay exact.
"""

from __future__ import annotations

import math
import types

import numba as nb
import numpy as np

from probes.abx_engine.small import ACOS_POLY, INV_PI  # numpy-only constants, shared

__all__ = [
    "angular_from_dot",
    "cosine_from_dot",
    "euclidean_from_dot",
    "dtw_pair",
    "dtw_block",
    "count_block",
    "SERIAL",
]

# Fast-math without "contract" (no fused multiply-adds): every operation rounds as numpy's float32
# does, so small.angular_from_dot gives the same bits without Numba; the loop still vectorises.
NO_FMA = {"nnan", "ninf", "nsz"}


@nb.njit(parallel=True, cache=True, fastmath=NO_FMA)
def angular_from_dot(tile: np.ndarray) -> None:
    """In place: dot products [R, C] of unit frames -> arccos(clamp(dot, -1, 1)) / pi.

    In float32, like the peers' torch.acos, and within ~1.3e-7 of the true value (theirs: ~1.1e-7);
    the loop vectorises, at a quarter of a nanosecond per frame pair.
    """
    rows, cols = tile.shape
    one, pi = np.float32(1.0), np.float32(math.pi)
    c0, c1, c2, c3 = (
        np.float32(ACOS_POLY[0]),
        np.float32(ACOS_POLY[1]),
        np.float32(ACOS_POLY[2]),
        np.float32(ACOS_POLY[3]),
    )
    c4, c5, c6, c7 = (
        np.float32(ACOS_POLY[4]),
        np.float32(ACOS_POLY[5]),
        np.float32(ACOS_POLY[6]),
        np.float32(ACOS_POLY[7]),
    )
    for i in nb.prange(rows):
        row = tile[i]
        for j in range(cols):
            x = min(max(row[j], -one), one)
            a = abs(x)
            p = ((((((c7 * a + c6) * a + c5) * a + c4) * a + c3) * a + c2) * a + c1) * a + c0
            r = math.sqrt(one - a) * p
            r = pi - r if x < 0 else r
            row[j] = r * np.float32(INV_PI)


@nb.njit(parallel=True, cache=True)
def cosine_from_dot(tile: np.ndarray) -> None:
    """In place: dot products [R, C] of unit frames -> 1 - clamp(dot, -1, 1)."""
    rows, cols = tile.shape
    for i in nb.prange(rows):
        row = tile[i]
        for j in range(cols):
            row[j] = 1.0 - min(max(row[j], -1.0), 1.0)


@nb.njit(parallel=True, cache=True)
def euclidean_from_dot(
    tile: np.ndarray,
    sq_rows: np.ndarray,
    sq_cols: np.ndarray,
    rows_data: np.ndarray,
    cols_data: np.ndarray,
) -> None:
    """In place: dot products -> sqrt(|u|^2 + |v|^2 - 2 u.v).

    Where that difference is tiny next to the norms, the cancellation would leave rounding noise
    instead of the true (near) zero, so those entries are recomputed directly as sqrt(sum (u - v)^2).
    """
    rows, cols = tile.shape
    dim = rows_data.shape[1]
    for i in nb.prange(rows):
        row = tile[i]
        for j in range(cols):
            norms = np.float64(sq_rows[i]) + np.float64(sq_cols[j])
            sq = norms - 2.0 * np.float64(row[j])
            if sq < 1e-3 * norms:
                acc = 0.0
                for k in range(dim):
                    diff = np.float64(rows_data[i, k]) - np.float64(cols_data[j, k])
                    acc += diff * diff
                sq = acc
            row[j] = math.sqrt(max(sq, 0.0))


@nb.njit(cache=True)
def dtw_pair(dist: np.ndarray, r0: int, n: int, c0: int, m: int, cost: np.ndarray) -> tuple:
    """DTW of the n x m block of ``dist`` at (r0, c0), as (d(x, y), d(y, x)) with x = the rows.

    ``cost`` is a scratch buffer of at least n x m whose dtype is the precision of the costs: float64,
    or float32 as libri-light / zrc-abx2's Cython DTW (costs added in float32, the result rounded to
    float32; compat mode, where their float32 ties decide triplets).
    """
    if n == 1 or m == 1:  # a single row or column: one path, of n + m - 1 cells
        cost[0, 0] = 0.0
        for i in range(n):
            for j in range(m):
                cost[0, 0] += dist[r0 + i, c0 + j]
        value = _rounded(cost, cost[0, 0] / (n + m - 1))
        return value, value
    cost[0, 0] = dist[r0, c0]
    for i in range(1, n):
        cost[i, 0] = dist[r0 + i, c0] + cost[i - 1, 0]
    for j in range(1, m):
        cost[0, j] = dist[r0, c0 + j] + cost[0, j - 1]
    for i in range(1, n):
        for j in range(1, m):
            best = min(cost[i - 1, j], cost[i - 1, j - 1], cost[i, j - 1])
            cost[i, j] = dist[r0 + i, c0 + j] + best
    total = cost[n - 1, m - 1]
    length, tie = _path_length(cost, n, m, True)
    # No left/up tie on the way: the transposed trace takes the same path.
    other = _path_length(cost, n, m, False)[0] if tie else length
    return _rounded(cost, total / length), _rounded(cost, total / other)


@nb.njit(inline="always")
def _rounded(cost, value):
    # value in the precision of the costs (cost[0, 0] is free once the trace-backs are done)
    cost[0, 0] = value
    return cost[0, 0]


@nb.njit(inline="always")
def _path_length(cost, n, m, rows_first):
    # rows_first: trace (x, y) with x on the rows; otherwise trace the transposed problem (y on the
    # rows), whose "left" is our "up": a left/up tie then goes up instead of left. Also says whether
    # such a tie was met (only then can the two traces differ).
    i, j, length, tie = n - 1, m - 1, 1, False
    while i > 0 and j > 0:
        c_diag = cost[i - 1, j - 1]
        c_up = cost[i - 1, j]
        c_left = cost[i, j - 1]
        if c_diag <= c_left and c_diag <= c_up:
            i -= 1
            j -= 1
        else:
            tie |= c_left == c_up
            if c_left < c_up or (c_left == c_up and rows_first):
                j -= 1
            else:
                i -= 1
        length += 1
    return length + i + j, tie


@nb.njit(parallel=True, cache=True)
def dtw_block(
    dist: np.ndarray,
    row_off: np.ndarray,
    col_off: np.ndarray,
    row_group: np.ndarray,
    col_group: np.ndarray,
    allowed: np.ndarray,
    symmetric: bool,
    out_rc: np.ndarray,
    out_cr: np.ndarray,
    row_index0: int,
    col_index0: int,
    scratch: np.ndarray,
) -> None:
    """DTW for every allowed pair of a tile, both orientations from one cost matrix.

    dist: [row frames, col frames] frame distances; row_off / col_off: [n + 1] item frame offsets,
    relative to the tile; tile row item i is block row row_index0 + i, tile column j is block column
    col_index0 + j. Pair (i, j) is computed if allowed[row_group[i], col_group[j]] and, when
    ``symmetric`` (block rows and columns are the same items), its column comes after its row.
    Writes out_rc[row, col] = d(row item, col item) and out_cr[row, col] = d(col item, row item): both
    row-major, because writing the transpose directly would touch a new cache line per pair.
    ``scratch``: [max item frames, same] whose dtype is the precision of the costs (``dtw_pair``).
    """
    n_rows = row_off.shape[0] - 1
    n_cols = col_off.shape[0] - 1
    for i in nb.prange(n_rows):
        cost = np.empty_like(scratch)
        r0, n = row_off[i], row_off[i + 1] - row_off[i]
        gi = row_group[i]
        row = row_index0 + i
        first = max(row + 1 - col_index0, 0) if symmetric else 0
        for j in range(first, n_cols):
            if not allowed[gi, col_group[j]]:
                continue
            c0, m = col_off[j], col_off[j + 1] - col_off[j]
            d_rc, d_cr = dtw_pair(dist, r0, n, c0, m, cost)
            out_rc[row, col_index0 + j] = d_rc
            out_cr[row, col_index0 + j] = d_cr


@nb.njit(inline="always")
def _bucket_index(sorted_values, n, first):
    """Split [min, max] of sorted_values[:n] into 2n equal buckets; first[k] = entries in buckets < k.

    The bucket of v, int((v - min) * scale), never decreases as v grows, so an entry in a lower bucket
    is < v and one in a higher bucket > v: only v's own bucket (half an entry on average) is compared.
    """
    lo, hi = sorted_values[0], sorted_values[n - 1]
    n_buckets = 2 * n
    scale = n_buckets / (hi - lo) if hi > lo else 0.0
    k = 0
    for i in range(n):
        key = min(int((sorted_values[i] - lo) * scale), n_buckets - 1)
        while k <= key:
            first[k] = i
            k += 1
    while k <= n_buckets:
        first[k] = n
        k += 1
    return n_buckets, scale


@nb.njit(inline="always")
def _bucket_bounds_sum(sorted_values, n, first, n_buckets, scale, value):
    """(entries < value) + (entries <= value) in sorted_values[:n], with the bucket index of it."""
    lo = sorted_values[0]
    if value < lo:
        return 0
    if value > sorted_values[n - 1]:
        return 2 * n
    key = min(int((value - lo) * scale), n_buckets - 1)
    lower = first[key]
    end = first[key + 1]
    while lower < end and sorted_values[lower] < value:
        lower += 1
    upper = lower
    while upper < end and sorted_values[upper] == value:
        upper += 1
    return lower + upper


@nb.njit(parallel=True, cache=True)
def count_block(
    dist: np.ndarray,
    x_phone: np.ndarray,
    x_group: np.ndarray,
    run_start: np.ndarray,
    run_phone: np.ndarray,
    group_runs: np.ndarray,
    col_groups: np.ndarray,
    allowed: np.ndarray,
    symmetric: bool,
    x_index0: int,
    max_run: int,
) -> np.ndarray:
    """Per x and per target run (one phone in one group), twice the number of correct triplets.

    dist: [n_x, n_cols] distances d(x, column item), x on the rows. Runs partition the columns into
    (group, phone) blocks: run r covers columns run_start[r]:run_start[r + 1] with phone run_phone[r];
    group_runs[k]:group_runs[k + 1] are the runs of column group col_groups[k]. For x and an allowed
    group holding x's phone (run A, excluding x itself, column x_index0 + x, when ``symmetric``), every
    other run B of that group gets sum_b (lower + upper) of d(x, b) in sorted d(x, A).
    Returns out[n_x, n_runs] (int64), -1 where the (x, run) pair forms no cell.
    """
    n_x = dist.shape[0]
    n_runs = run_phone.shape[0]
    out = np.full((n_x, n_runs), -1, np.int64)
    for x in nb.prange(n_x):
        da = np.empty(max_run, np.float64)
        first = np.empty(2 * max_run + 2, np.int64)
        phone = x_phone[x]
        for k in range(col_groups.shape[0]):
            if not allowed[x_group[x], col_groups[k]]:
                continue
            run_a = -1
            for r in range(group_runs[k], group_runs[k + 1]):
                if run_phone[r] == phone:
                    run_a = r
            if run_a < 0:
                continue
            na = 0
            for c in range(run_start[run_a], run_start[run_a + 1]):
                if symmetric and c == x_index0 + x:
                    continue
                da[na] = dist[x, c]
                na += 1
            if na == 0:
                continue
            da[:na].sort()
            n_buckets, scale = _bucket_index(da, na, first)
            for r in range(group_runs[k], group_runs[k + 1]):
                if r == run_a:
                    continue
                total = 0
                for c in range(run_start[r], run_start[r + 1]):
                    total += _bucket_bounds_sum(da, na, first, n_buckets, scale, dist[x, c])
                out[x, r] = total
    return out


def _serial_twin(kernel):
    """The same kernel compiled without threads (prange runs as range) and releasing the GIL.

    For the engine's block-level thread pool: each worker runs whole blocks with these, so threads
    meet once per block instead of at every tile (on a busy machine, a parallel region's barrier
    waits for a descheduled thread, and costs more than the work it splits). A new qualname gives it
    its own cache file.
    """
    py_func = kernel.py_func
    twin = types.FunctionType(
        py_func.__code__, py_func.__globals__, py_func.__name__, py_func.__defaults__
    )
    twin.__qualname__ = f"{py_func.__qualname__}_serial"
    twin.__doc__ = py_func.__doc__
    return nb.njit(cache=True, nogil=True, fastmath=kernel.targetoptions.get("fastmath", False))(
        twin
    )


# Single-threaded, GIL-free versions of the parallel kernels, by name.
SERIAL = types.SimpleNamespace(
    angular_from_dot=_serial_twin(angular_from_dot),
    cosine_from_dot=_serial_twin(cosine_from_dot),
    euclidean_from_dot=_serial_twin(euclidean_from_dot),
    dtw_block=_serial_twin(dtw_block),
    count_block=_serial_twin(count_block),
)
