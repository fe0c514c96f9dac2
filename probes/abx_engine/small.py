"""Within-type conditions with little work, scored in numpy alone (no Numba kernel is loaded).

Loading Numba's cached kernels costs a fixed ~0.35 s per process (its target context imports every
implementation registry, scipy.linalg included), which is more than the whole work of a typical
within / within job (ZeroSpeech's within-context groups hold a few items each). Below ``SMALL_WORK``
frame pairs such a job runs here instead, with the same arithmetic as the kernels, so the counts are
the same bit for bit (tests/test_abx_small.py):

- frame products: one float32 BLAS product per group (its Gram matrix), only within groups;
- angular / cosine: the kernels' float32 formulas (kernels.py: no FMA contraction in either);
- DTW: every pair of items of a group, the cost matrices of a chunk of groups at once, padded to its
  longest item, cell (i, j) of all pairs in one numpy call (cost = d + min(up, diagonal, left) in
  float64, as ``kernels.dtw_pair``), then docs/abx.md's trace-back for all pairs together, both ways;
- counting: for each x and each item b of another phone in its group, the number of its A items
  closer than b (lower) plus those not farther (upper), found by binary search in x's sorted
  distances to its A items (global ranks make the (x, distance) keys exact integers).
"""

from __future__ import annotations

import math

import numpy as np
from threadpoolctl import threadpool_limits

from probes.abx_engine.cells import Layout

__all__ = [
    "SMALL_WORK",
    "INV_PI",
    "ACOS_POLY",
    "SmallPlan",
    "eligible",
    "score_small",
    "angular_from_dot",
    "cosine_from_dot",
]

SMALL_WORK = (
    1 << 23
)  # sum over groups of (frames in the group)^2 under which numpy beats loading Numba
CHUNK_CELLS = 1 << 18  # padded DTW cells per chunk of groups (2 MB of float64)
INV_PI = 1.0 / math.pi
# Abramowitz & Stegun 4.4.46: acos(x) = sqrt(1 - x) * P(x) on [0, 1], |error| <= 2e-8. Unlike libm's
# acos it vectorises.
ACOS_POLY = (
    1.5707963050,
    -0.2145988016,
    0.0889789874,
    -0.0501743046,
    0.0308918810,
    -0.0170881256,
    0.0066700901,
    -0.0012624911,
)
_A = [np.float32(c) for c in ACOS_POLY]


def eligible(layout: Layout, offsets: np.ndarray, distance: str, subsampled: bool) -> bool:
    """Whether ``score_small`` handles this job: within-type, angular or cosine, no subsampling, small.

    Small: both the frame products (sum over groups of frames^2) and the padded DTW cells (sum over
    groups of pairs x (longest item + 1)^2) stay under SMALL_WORK.
    """
    if subsampled or distance not in ("angular", "cosine") or not layout.condition.is_symmetric:
        return False
    group_frames = np.diff(offsets[layout.group_start]).astype(np.int64)
    pairs, longest = _group_sizes(layout, offsets)
    padded = int((pairs * (longest + 1) ** 2).sum())
    return int((group_frames**2).sum()) <= SMALL_WORK and padded <= SMALL_WORK


def _group_sizes(layout: Layout, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group: its pairs of items, and the frames of its longest item."""
    items = np.diff(layout.group_start)
    lengths = np.diff(offsets)
    starts = layout.group_start[:-1][items > 0]
    longest = np.zeros(len(items), np.int64)
    if len(starts):
        longest[items > 0] = np.maximum.reduceat(lengths, starts)
    return items * (items - 1) // 2, longest


def angular_from_dot(dots: np.ndarray) -> np.ndarray:
    """float32 dot products of unit frames -> arccos(clamp) / pi, as ``kernels.angular_from_dot``."""
    x = np.clip(dots, np.float32(-1.0), np.float32(1.0))
    a = np.abs(x)
    p = _A[7] * a
    for c in _A[6::-1]:
        p += c
        if c is not _A[0]:
            p *= a
    r = np.sqrt(np.float32(1.0) - a) * p
    r = np.where(x < 0, np.float32(math.pi) - r, r)
    return r * np.float32(INV_PI)


def cosine_from_dot(dots: np.ndarray) -> np.ndarray:
    """float32 dot products of unit frames -> 1 - clamp(dot, -1, 1), as ``kernels.cosine_from_dot``."""
    return np.float32(1.0) - np.clip(dots, np.float32(-1.0), np.float32(1.0))


def _ragged_arange(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, index): for each k, index runs over 0..lengths[k]-1 with owner k."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return owner, np.arange(int(lengths.sum())) - starts[owner]


def _pairs(group_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i < j, of items in the same group (items of a group are contiguous)."""
    item_group_end = np.repeat(group_start[1:], np.diff(group_start))
    i, k = _ragged_arange(item_group_end - np.arange(len(item_group_end)) - 1)
    return i, i + 1 + k


def _frame_index(offsets, first_frame, pi, pj, group):
    """Where each DTW cell of the pairs (pi, pj) of groups ``group`` reads its dot product.

    The dot products are one BLAS product per group (its Gram matrix), laid out one after another.
    Returns (groups, gram_start, at, pair, r, c, n, m): the groups, their Gram offsets, per cell its
    Gram entry, pair, row and column; per pair its frame counts. All structure: built once.
    """
    groups = np.unique(group)
    size = first_frame[groups + 1] - first_frame[groups]
    gram_start = np.concatenate([[0], np.cumsum(size * size)])
    n = offsets[pi + 1] - offsets[pi]
    m = offsets[pj + 1] - offsets[pj]
    row_pair, r = _ragged_arange(n)  # one entry per row of every pair's matrix
    pair, c = _ragged_arange(m[row_pair])
    pair, r = row_pair[pair], r[pair]
    local = np.searchsorted(groups, group)
    width = size[local]
    # Gram entry of (row frame, column frame), both counted from the group's first frame.
    top = (
        gram_start[local]
        + (offsets[pi] - first_frame[group]) * width
        + offsets[pj]
        - first_frame[group]
    )
    return groups, gram_start, top[pair] + r * width[pair] + c, pair, r, c, n, m


def _frame_distances(frames, first_frame, groups, gram_start, at, distance):
    """float32 frame distances of the cells ``at`` (``_frame_index``): a BLAS product per group."""
    gram = np.empty(int(gram_start[-1]), np.float32)
    for k, h in enumerate(groups):
        block = frames[first_frame[h] : first_frame[h + 1]]
        size = len(block)
        np.dot(block, block.T, out=gram[gram_start[k] : gram_start[k + 1]].reshape(size, -1))
    dots = gram[at]
    return angular_from_dot(dots) if distance == "angular" else cosine_from_dot(dots)


def _chunks(pairs: np.ndarray, longest: np.ndarray) -> list[tuple[int, int]]:
    """Pair ranges of whole groups whose padded DTW arrays hold about CHUNK_CELLS cells each."""
    bounds, first, count, widest = [], 0, 0, 0
    for group_pairs, group_longest in zip(pairs.tolist(), longest.tolist(), strict=True):
        widest_with = max(widest, group_longest)
        if count and (count + group_pairs) * (widest_with + 1) ** 2 > CHUNK_CELLS:
            bounds.append((first, first + count))
            first, count, widest_with = first + count, 0, group_longest
        count += group_pairs
        widest = widest_with
    if count:
        bounds.append((first, first + count))
    return bounds


def _dtw_costs(dist, pair, r, c, n, m, cost_dtype=np.float64) -> np.ndarray:
    """Accumulated DTW costs [N + 1, M + 1, pairs] of every pair, its cell (i, j) at [i + 1, j + 1].

    A border row and column of +inf (0 at [0, 0]) make the first row and column follow the general
    rule: cost = d + min(up, diagonal, left) in ``cost_dtype``, as ``kernels.dtw_pair``. Cells beyond a
    pair's own n x m are computed too (from zeros) but never read by its cells.
    """
    rows, cols = int(n.max()), int(m.max())
    d = np.zeros((rows, cols, len(n)), cost_dtype)
    d[r, c, pair] = dist
    cost = np.full((rows + 1, cols + 1, len(n)), np.inf, cost_dtype)
    cost[0, 0] = 0.0
    best = np.empty(len(n), cost_dtype)
    for i in range(rows):
        for j in range(cols):
            np.minimum(cost[i, j + 1], cost[i, j], out=best)
            np.minimum(best, cost[i + 1, j], out=best)
            np.add(d[i, j], best, out=cost[i + 1, j + 1])
    return cost


def _path_lengths(cost: np.ndarray, n: np.ndarray, m: np.ndarray, rows_first: bool) -> np.ndarray:
    """Cells on the traced-back path of every pair (docs/abx.md's rule, as ``kernels._path_length``)."""
    flat, stride, pairs = cost.reshape(-1), cost.shape[1] * cost.shape[2], cost.shape[2]
    i, j = n - 1, m - 1
    length = np.ones(len(n), np.int64)
    active = np.flatnonzero((i > 0) & (j > 0))
    while len(active):
        ia, ja = i[active], j[active]
        at = ia * stride + ja * pairs + active  # dense [ia, ja]: the cell (ia - 1, ja - 1)
        c_diag, c_up, c_left = flat[at], flat[at + pairs], flat[at + stride]
        diagonal = (c_diag <= c_left) & (c_diag <= c_up)
        left = ~diagonal & ((c_left < c_up) | ((c_left == c_up) & rows_first))
        i[active] = ia - (~left).astype(np.int64)
        j[active] = ja - (diagonal | left).astype(np.int64)
        length[active] += 1
        active = active[(i[active] > 0) & (j[active] > 0)]
    return length + i + j


def _dtw_pairs(frames, first_frame, chunk, distance, cost_dtype):
    """(d(i, j), d(j, i)) for the pairs of one chunk, in the precision of the costs."""
    groups, gram_start, at, pair, r, c, n, m = chunk
    dist = _frame_distances(frames, first_frame, groups, gram_start, at, distance)
    cost = _dtw_costs(dist, pair, r, c, n, m, cost_dtype)
    total = cost[n, m, np.arange(len(n))].astype(np.float64)
    return tuple(
        (total / _path_lengths(cost, n, m, rows_first)).astype(cost_dtype)
        for rows_first in (True, False)
    )


class SmallPlan:
    """Everything of a small within-type job that does not depend on the features: the item pairs
    some cell reads, their chunks and where each DTW cell finds its dot product, and the counting's
    pairs and cells. Built once per item set and condition (``Prepared``), run per feature set."""

    def __init__(self, layout: Layout, offsets: np.ndarray, item_file: np.ndarray | None = None):
        """item_file: [n] each item's file (in layout order), to split every cell's counts by the
        file of its X items (``run`` then also gives the pieces); None: cells only."""
        self.layout = layout
        pi, pj = _pairs(layout.group_start)
        # Only pairs some cell reads: an X needs another item of its phone in its group.
        run_size = np.diff(layout.run_start)[
            np.searchsorted(layout.run_start, np.arange(len(layout.phone)), "right") - 1
        ]
        needed = (run_size[pi] > 1) | (run_size[pj] > 1)
        pi, pj = pi[needed], pj[needed]
        self.pi, self.pj = pi, pj
        pairs = np.bincount(layout.group[pi], minlength=len(layout.group_start) - 1)
        self.first_frame = offsets[layout.group_start]
        self.chunks = [
            (p0, p1, _frame_index(offsets, self.first_frame, pi[p0:p1], pj[p0:p1],
                                  layout.group[pi[p0:p1]]))
            for p0, p1 in _chunks(pairs, _group_sizes(layout, offsets)[1])
        ]  # fmt: skip
        self.same_run = layout.phone[pi] == layout.phone[pj]
        self.counting = _CountPlan(
            layout, np.concatenate([pi, pj]), np.concatenate([pj, pi]), item_file
        )

    def run(self, frames: np.ndarray, distance: str, cost_dtype=np.float64):
        """(records, pieces): the engine's per-cell records (x_run, a_run, b_run, correct2, n_a, n_b,
        n_x) and each cell's counts split by the file of its X items, (cell, file, correct2, n_x) with
        cell an index into the records (None without ``item_file``)."""
        d_ij, d_ji = np.empty(len(self.pi)), np.empty(len(self.pi))
        # Chunks of whole groups: every temporary stays small (in cache, and no fresh pages to fault
        # in), while each numpy call still covers thousands of cells. Thousands of small products:
        # one BLAS thread (waking a pool costs more than each product).
        with threadpool_limits(limits=1):
            for p0, p1, chunk in self.chunks:
                d_ij[p0:p1], d_ji[p0:p1] = _dtw_pairs(
                    frames, self.first_frame, chunk, distance, cost_dtype
                )
        if (
            cost_dtype == np.float32
        ):  # compat: zrc-abx2's orientation within a run (earlier_on_rows)
            d_ji[self.same_run] = d_ij[self.same_run]
        return self.counting.run(np.concatenate([d_ij, d_ji]), cost_dtype == np.float32)


def score_small(
    layout: Layout, frames: np.ndarray, offsets: np.ndarray, distance: str, cost_dtype=np.float64
):
    """The engine's per-cell records (x_run, a_run, b_run, correct2, n_a, n_b, n_x) for this job.

    cost_dtype: the precision of DTW costs (float32 in compat mode, as zrc-abx2).
    """
    return SmallPlan(layout, offsets).run(frames, distance, cost_dtype)[0]


def earlier_on_rows(layout: Layout, block, dist: np.ndarray) -> None:
    """zrc-abx2's orientation in compat mode: d(x, a) of two items of one run is DTW with the earlier
    item's frames on the rows, whichever is x (libri-light fills the symmetric A x A matrix from its
    upper triangle). In place on a symmetric block's [items, items] distances (d(row item, col item)).
    """
    first, last = layout.group_start[block.r0], layout.group_start[block.r1]
    run = np.searchsorted(layout.run_start, np.arange(first, last), "right")
    lower = np.tri(len(dist), k=-1, dtype=bool) & (run[:, None] == run[None, :])
    np.copyto(dist, dist.T, where=lower)


def zrc_diagonal_ties(layout: Layout, block, dist: np.ndarray, x_run, b_run, per_item=False):
    """Compat mode, within-type cells: the extra correct2 that zrc-abx2 counts per cell (x_run, b_run).

    zrc-abx2 keeps the pairs x = a in its float32 comparison and puts them out of the way with
    d(x, x) = max d(x, b) + 1; from 2^24 on (euclidean distances next to a zero frame are ~1e12) that
    + 1 is lost, and each (x, b) at the maximum counts a tie. ``dist``: a symmetric block's
    [items, items] distances; returns one count per cell, or with ``per_item`` (cell, x item, count)
    for each X item that has such ties (the item numbered in layout order).
    """
    extra = np.zeros(len(x_run), np.int64)
    found: list[tuple[int, int, int]] = []
    first = layout.group_start[block.r0]
    # Below 2**23, M + 1 is exact in float32: no such tie. A cheap test before the loop over cells,
    # on the groups' own squares only, ignoring NaN: a block never computes its distances between
    # groups nor d(x, x), which stay uninitialised memory (NaN made `dist.max()` NaN and hid every
    # tie, now and then). Another stray value can only send it through the loop, whose cells read
    # computed distances only.
    bounds = layout.group_start[block.r0 : block.r1 + 1] - first
    squares = zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    if any(np.fmax.reduce(dist[a:b, a:b], axis=None) >= 2**23 for a, b in squares if b > a):
        starts = layout.run_start - first
        for k, (x, b) in enumerate(zip(x_run.tolist(), b_run.tolist(), strict=True)):
            sub = dist[starts[x] : starts[x + 1], starts[b] : starts[b + 1]]
            top = sub.max()
            if np.float32(top + 1.0) == top:
                rows = (sub == top).sum(axis=1)
                extra[k] = int(rows.sum())
                found += [(k, int(layout.run_start[x]) + i, int(rows[i]))
                          for i in np.flatnonzero(rows)]  # fmt: skip
    if not per_item:
        return extra
    table = np.array(found, np.int64).reshape(-1, 3)  # rows (cell, x item, count)
    return table[:, 0], table[:, 1], table[:, 2]


class _CountPlan:
    """Per-cell records from every ordered pair (x, y) of a group and d(x, y): the pairs' roles and
    cells are structure (built once); only the ranks of the distances are computed per feature set."""

    def __init__(self, layout: Layout, x: np.ndarray, y: np.ndarray, item_file=None):
        run_of = np.repeat(np.arange(len(layout.run_start) - 1), np.diff(layout.run_start))
        self.run_size = run_size = np.diff(layout.run_start)
        self.x, self.same = x, layout.phone[x] == layout.phone[y]
        # x's A set must keep an item besides x
        self.b = b = np.flatnonzero(~self.same & (run_size[run_of[x]] > 1))
        self.xb = x[b]
        cell_key = run_of[self.xb] * len(run_size) + run_of[y[b]]
        self.cells, inverse = np.unique(cell_key, return_inverse=True)
        self.inverse = inverse.reshape(-1)
        self.pieces = None if item_file is None else _pieces(self.inverse, self.xb, item_file)

    def run(self, d: np.ndarray, zrc: bool):
        """d: [pairs] d(x, y) of the plan's pairs; zrc: compat mode."""
        x, b, xb, cells, inverse = self.x, self.b, self.xb, self.cells, self.inverse
        rank = np.unique(d, return_inverse=True)[1].reshape(-1).astype(np.int64)
        key = x * (len(d) + 1) + rank
        a_keys = np.sort(key[self.same])  # per x (in order), its sorted distances to its A items
        start = np.searchsorted(a_keys, xb * (len(d) + 1), "left")
        lower = np.searchsorted(a_keys, key[b], "left") - start
        upper = np.searchsorted(a_keys, key[b], "right") - start
        per_pair = (lower + upper).astype(np.float64)
        if zrc and len(b) and d[b].max() >= 2**23:  # zrc_diagonal_ties, for every cell at once
            top = np.full(len(cells), -np.inf)
            np.maximum.at(top, inverse, d[b])
            lost = np.float32(top + 1.0) == top  # cells whose d(x, x) = max + 1 is the max
            per_pair += (d[b] == top[inverse]) & lost[inverse]
        correct2 = np.bincount(inverse, weights=per_pair, minlength=len(cells))
        x_run, b_run = np.divmod(cells, len(self.run_size))
        n_a, n_b = self.run_size[x_run], self.run_size[b_run]
        records = (x_run, x_run, b_run, np.rint(correct2).astype(np.int64), n_a, n_b, n_a)
        if self.pieces is None:
            return records, None
        cell, file, piece_of_pair, n_x = self.pieces
        piece_correct2 = np.bincount(piece_of_pair, weights=per_pair, minlength=len(cell))
        return records, (cell, file, np.rint(piece_correct2).astype(np.int64), n_x)


def _pieces(cell_of_pair: np.ndarray, x_of_pair: np.ndarray, item_file: np.ndarray):
    """Each cell split by the file of its X items: (cell, file, the piece of every (x, b) pair, the
    piece's X items), pieces sorted by (cell, file). Structure: built once per item set."""
    n_files = int(item_file.max()) + 1 if len(item_file) else 1
    key = cell_of_pair.astype(np.int64) * n_files + item_file[x_of_pair]
    pieces, piece_of_pair = np.unique(key, return_inverse=True)
    # The X items of a piece: distinct (cell, x) pairs, counted per piece.
    n_items = len(item_file)
    cell_x = np.unique(cell_of_pair.astype(np.int64) * n_items + x_of_pair)
    cell, x = np.divmod(cell_x, n_items)
    n_x = np.bincount(np.searchsorted(pieces, cell * n_files + item_file[x]), minlength=len(pieces))
    return pieces // n_files, pieces % n_files, piece_of_pair.reshape(-1), n_x.astype(np.int64)
