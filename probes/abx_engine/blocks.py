"""The Numba path: item pairs in blocks, frame distances as one sgemm per tile, DTW for each pair once
(both orientations), per-x counting by sorting (kernels.py).

``BlockPlan`` is everything about a job's blocks that does not depend on the features (the blocks, how
they are split between the single-threaded loop and the block pool, which group pairs each block reads,
the subsampling thresholds): built once per item set and condition, run for each feature set.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from probes.abx_engine import kernels as parallel_kernels
from probes.abx_engine import small
from probes.abx_engine.cells import Block, Layout, plan_blocks
from probes.abx_engine.conditions import Subsampling
from probes.abx_engine.distances import frame_distance_tile
from probes.abx_engine.kernels import SERIAL
from probes.abx_engine.subsample import count_subsampled, x_thresholds
from training.progress import progress_bar as tqdm

__all__ = ["BlockPlan"]

TILE_ELEMENTS = 1 << 22  # frame pairs per distance tile (16 MB of float32)
SMALL_BLOCK = 1 << 20  # frame pairs below which a block runs single-threaded
PACK_FRAMES = (
    384  # within-type conditions: consecutive small groups share a block up to these frames
)
BLOCK_POOL = True  # large blocks on a pool of single-threaded workers when there are enough of them


class BlockPlan:
    """The blocks of one layout and their schedule; ``run(frames)`` gives the per-cell records.

    offsets: [n + 1] item frame offsets in layout order (after pooling); cost_dtype: the precision of
    the DTW costs (float32 in compat mode, as zrc-abx2).
    """

    def __init__(
        self, layout: Layout, offsets: np.ndarray, sampling: Subsampling, cost_dtype,
        item_file: np.ndarray | None = None,
    ):  # fmt: skip
        """item_file: [n] each item's file (layout order): ``run`` then also splits every cell's
        counts by the file of its X items (not with subsampling, whose samples are per cell)."""
        self.layout, self.offsets, self.sampling, self.cost_dtype = (
            layout,
            offsets,
            sampling,
            cost_dtype,
        )
        self.item_file = None if sampling.active else item_file
        frames_in = offsets[layout.group_start]
        blocks = plan_blocks(layout)
        if layout.condition.is_symmetric:
            blocks = _pack_groups(blocks, frames_in, PACK_FRAMES)
        self.max_len = int(np.diff(offsets).max())
        work = [
            (frames_in[b.r1] - frames_in[b.r0]) * (frames_in[b.c1] - frames_in[b.c0])
            for b in blocks
        ]
        # Small blocks run on one thread: waking a thread pool costs more than their whole work (about
        # a millisecond on a busy machine, against tens of microseconds), and there can be thousands.
        self.light = [b for b, w in zip(blocks, work, strict=True) if w < SMALL_BLOCK]
        self.large = [(w, b) for b, w in zip(blocks, work, strict=True) if w >= SMALL_BLOCK]
        self.n_blocks = len(blocks)
        self.thresholds = _x_thresholds(layout, sampling)
        # zrc-abx2's orientation and x = a ties (compat mode, within-type, exhaustive): see small.py.
        self.zrc = (
            cost_dtype == np.float32 and layout.condition.is_symmetric and not sampling.active
        )
        # Which group pairs each block reads: structure, the same for every feature set.
        self.allowed = {
            b: layout.allowed(np.arange(b.r0, b.r1), np.arange(b.c0, b.c1)) for b in blocks
        }

    def run(self, frames: np.ndarray, distance: str, progress: bool = False):
        """(records, pieces) from prepared ``frames``: (x_run, a_run, b_run, correct2, n_a, n_b, n_x)
        of every cell, and its counts split by X's file, (cell, file, correct2, n_x) with cell an
        index into the records (None without ``item_file``)."""
        scratch = np.empty((self.max_len, self.max_len), self.cost_dtype)  # the DTW buffer
        parts: list = []  # (cells, pieces) of each block orientation
        bar = tqdm(total=self.n_blocks, desc="ABX blocks", disable=not progress, leave=False)
        threads = numba.get_num_threads()
        large = list(self.large)

        def run(block, kernels):
            d_rc, d_cr = self._distances(frames, block, distance, scratch, kernels)
            if self.zrc:
                small.earlier_on_rows(self.layout, block, d_rc)
            out = self._score_block(block, d_rc, d_cr, kernels)
            if self.zrc:
                out[0] = _with_zrc_ties(self.layout, block, d_rc, out[0], self.item_file)
            return out

        try:
            with threadpool_limits(limits=1):
                numba.set_num_threads(1)
                for block in self.light:
                    parts.extend(run(block, SERIAL))
                    bar.update()
                # Enough large blocks for every thread: one block per worker at a time, each with
                # single-threaded BLAS and kernels, so threads synchronise once per block (the
                # subsampled counter has only a parallel kernel, so it keeps per-tile threading).
                if (
                    BLOCK_POOL
                    and threads > 1
                    and len(large) >= threads
                    and not self.sampling.active
                ):
                    parts.extend(_run_pooled(run, large, threads, bar))
                    large = []
            numba.set_num_threads(threads)
            for _, block in large:
                parts.extend(run(block, parallel_kernels))
                bar.update()
        finally:
            numba.set_num_threads(threads)
            bar.close()
        return _concatenate(parts, self.item_file is not None)

    def _score_block(self, block, d_rc, d_cr, kernels):
        layout = self.layout
        if self.sampling.active:
            cells = count_subsampled(layout, block, d_rc, d_cr, self.sampling, self.thresholds)
            return [(cells, None)]
        parts = [self._count(block.r0, block.r1, block.c0, block.c1, d_rc, kernels)]
        if not block.symmetric:
            parts.append(self._count(block.c0, block.c1, block.r0, block.r1, d_cr, kernels))
        return parts

    def _distances(self, frames, block: Block, distance, scratch, kernels):
        layout, offsets = self.layout, self.offsets
        gs = layout.group_start
        ri0, ri1, ci0, ci1 = gs[block.r0], gs[block.r1], gs[block.c0], gs[block.c1]
        d_rc = np.empty((ri1 - ri0, ci1 - ci0), np.float64)
        d_cr = np.empty((ri1 - ri0, ci1 - ci0), np.float64)  # d(col, row), stored at [row, col]
        row_group = layout.group[ri0:ri1] - block.r0
        col_group = layout.group[ci0:ci1] - block.c0
        allowed = self.allowed[block]
        if not allowed.any():  # no cell reads this block
            return d_rc, (d_rc if block.symmetric else np.ascontiguousarray(d_cr.T))
        n_col_frames = offsets[ci1] - offsets[ci0]
        # Within-type groups packed into one block (_pack_groups) meet only themselves (allowed is
        # the identity; an across-type block's groups meet each other).
        packed = (layout.condition.is_symmetric and block.symmetric and block.r1 - block.r0 > 1
                  and distance != "euclidean")  # fmt: skip
        budget = max(TILE_ELEMENTS // max(n_col_frames, 1), len(scratch))
        i0 = 0
        while i0 < ri1 - ri0:
            i1 = int(np.searchsorted(offsets, offsets[ri0 + i0] + budget, side="right")) - 1 - ri0
            i1 = min(max(i1, i0 + 1), ri1 - ri0)
            # A symmetric block needs only the pairs above its diagonal: columns from the tile's first row.
            j0 = i0 if block.symmetric else 0
            rows = frames[offsets[ri0 + i0] : offsets[ri0 + i1]]
            cols = frames[offsets[ci0 + j0] : offsets[ci1]]
            if packed and i1 - i0 == ri1 - ri0:  # one tile: only its groups' own products
                tile = _diagonal_tile(frames, offsets[gs[block.r0] : gs[block.r1] + 1],
                                      gs[block.r0 : block.r1 + 1] - ri0, distance, kernels)  # fmt: skip
            else:
                tile = frame_distance_tile(rows, cols, distance, kernels)
            row_off = offsets[ri0 + i0 : ri0 + i1 + 1] - offsets[ri0 + i0]
            col_off = offsets[ci0 + j0 : ci1 + 1] - offsets[ci0 + j0]
            kernels.dtw_block(
                tile,
                row_off,
                col_off,
                row_group[i0:i1],
                col_group[j0:],
                allowed,
                block.symmetric,
                d_rc,
                d_cr,
                i0,
                j0,
                scratch,
            )
            i0 = i1
        if block.symmetric:  # the pairs below the diagonal are the transposed ones
            lower = np.tri(len(d_rc), k=-1, dtype=bool)
            np.copyto(d_rc, d_cr.T, where=lower)
            return d_rc, d_rc
        return d_rc, np.ascontiguousarray(d_cr.T)

    def _count(self, r0: int, r1: int, c0: int, c1: int, dist: np.ndarray, kernels):
        """Cells with X runs in groups [r0, r1) and A/B runs in groups [c0, c1): (x, a, b runs, counts)."""
        layout = self.layout
        gs, gr = layout.group_start, layout.group_runs
        ri0, ci0 = gs[r0], gs[c0]
        run0, run1 = gr[c0], gr[c1]
        run_start = layout.run_start[run0 : run1 + 1] - ci0
        allowed = self.allowed.get(Block(r0, r1, c0, c1))
        if allowed is None:  # the transposed orientation of a block
            allowed = self.allowed[Block(c0, c1, r0, r1)].T
        symmetric = layout.condition.is_symmetric
        out = kernels.count_block(
            dist,
            layout.phone[ri0 : gs[r1]],
            layout.group[ri0 : gs[r1]] - r0,
            run_start,
            layout.run_phone[run0:run1],
            gr[c0 : c1 + 1] - run0,
            np.arange(c1 - c0, dtype=np.int64),
            np.ascontiguousarray(allowed),
            symmetric,
            0,
            int(np.diff(run_start).max()),
        )
        x_runs = np.arange(gr[r0], gr[r1])
        sums = np.add.reduceat(out, layout.run_start[x_runs] - ri0, axis=0)
        valid = out[layout.run_start[x_runs] - ri0] >= 0
        xi, bi = np.nonzero(valid)
        x_run, b_run = x_runs[xi], run0 + bi
        a_run = (
            x_run
            if symmetric
            else _run_of(layout, layout.run_group[b_run], layout.run_phone[x_run])
        )
        size = np.diff(layout.run_start)
        cells = (x_run, a_run, b_run, sums[xi, bi], size[a_run], size[b_run], size[x_run])
        if self.item_file is None:
            return cells, None
        return cells, _split_by_file(out, valid, layout.run_start[x_runs[0] : gr[r1] + 1] - ri0,
                                     self.item_file[ri0 : gs[r1]])  # fmt: skip


def _split_by_file(out: np.ndarray, valid: np.ndarray, run_start: np.ndarray, files: np.ndarray):
    """The cells of ``valid`` [x runs, b runs] split by the file of their X items: (cell, file,
    correct2, n_x), cell numbered as ``np.nonzero(valid)`` lists them. out: [x items, b runs] counts
    per x item; run_start: [x runs + 1] the x rows of each run; files: [x items] each one's file."""
    run_of_x = np.repeat(np.arange(len(run_start) - 1), np.diff(run_start))
    key = run_of_x * (int(files.max()) + 1) + files
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
    sums = np.add.reduceat(out[order], starts, axis=0)  # [(run, file) segments, b runs]
    segment_run, segment_file = run_of_x[order][starts], files[order][starts]
    segment_nx = np.diff(np.r_[starts, len(key)])
    cell_id = np.full(valid.shape, -1, np.int64)
    cell_id[valid] = np.arange(int(valid.sum()))
    segment, b = np.nonzero(valid[segment_run])
    return (cell_id[segment_run[segment], b], segment_file[segment], sums[segment, b],
            segment_nx[segment])  # fmt: skip


def _concatenate(parts: list, with_pieces: bool):
    """One (records, pieces) from the blocks' parts, piece cells renumbered to the joined records."""
    if not parts:
        empty = tuple(np.zeros(0, np.int64) for _ in range(7))
        return empty, (tuple(np.zeros(0, np.int64) for _ in range(4)) if with_pieces else None)
    records = tuple(np.concatenate([cells[k] for cells, _ in parts]) for k in range(7))
    if not with_pieces:
        return records, None
    first = np.cumsum([0] + [len(cells[0]) for cells, _ in parts[:-1]])
    pieces = tuple(
        np.concatenate([(p[0] + start) if k == 0 else p[k]
                        for (_, p), start in zip(parts, first, strict=True)])
        for k in range(4)
    )  # fmt: skip
    return records, pieces


def _with_zrc_ties(layout: Layout, block: Block, dist: np.ndarray, part, item_file):
    """A symmetric block's (cells, pieces) with zrc-abx2's extra ties (``small.zrc_diagonal_ties``)
    added to each cell and to the piece of the X item that has them."""
    (x_run, a_run, b_run, correct2, *sizes), pieces = part
    cell, item, extra = small.zrc_diagonal_ties(layout, block, dist, x_run, b_run, per_item=True)
    correct2 = correct2 + np.bincount(cell, weights=extra, minlength=len(x_run)).astype(np.int64)
    if pieces is not None and len(cell):
        n_files = int(item_file.max()) + 1
        keys = pieces[0] * n_files + pieces[1]
        order = np.argsort(keys, kind="stable")
        at = order[np.searchsorted(keys[order], cell * n_files + item_file[item])]
        piece_correct2 = pieces[2].copy()
        np.add.at(piece_correct2, at, extra)
        pieces = (pieces[0], pieces[1], piece_correct2, pieces[3])
    return (x_run, a_run, b_run, correct2, *sizes), pieces


def _diagonal_tile(frames, offsets, group_start, distance, kernels) -> np.ndarray:
    """[F, F] float32 frame distances of a packed block's F frames, only within each of its groups.

    offsets: [n + 1] the block's item frame offsets (into ``frames``); group_start: [groups + 1] its
    groups' first items (from 0). Group g's Gram matrix is the one BLAS product its rows of a whole
    tile would be (the same bits: ``small`` relies on it too), at a fraction of the whole tile's
    products (within/within at dev-clean's size: 5 M frame pairs instead of about 330 M). The
    products between groups and of one-item groups, which no cell reads, are left unset.
    """
    base = offsets[0]
    tile = np.empty((offsets[-1] - base, offsets[-1] - base), np.float32)
    for g in np.flatnonzero(np.diff(group_start) > 1):  # a group of one item has no pair
        s, e = offsets[group_start[g]] - base, offsets[group_start[g + 1]] - base
        rows = frames[base + s : base + e]
        tile[s:e, s:e] = frame_distance_tile(rows, rows, distance, kernels)
    return tile


def _pack_groups(blocks: list[Block], frames_in: np.ndarray, limit: int) -> list[Block]:
    """Merge runs of consecutive one-group symmetric blocks into blocks of up to ``limit`` frames.

    A within-type condition has one block per group, often of a few dozen frames (within/within:
    thousands of them), where the Python around each block costs more than its sgemm and DTWs. A
    merged block's frame products, DTWs and counts stay within each group (``Layout.allowed`` is the
    identity; ``_diagonal_tile``).
    """
    packed: list[Block] = []
    for block in blocks:
        last = packed[-1] if packed else None
        if (
            last is not None
            and last.symmetric
            and block.symmetric
            and last.r1 == block.r0
            and frames_in[block.r1] - frames_in[last.r0] <= limit
        ):
            packed[-1] = Block(last.r0, block.r1, last.c0, block.c1)
        else:
            packed.append(block)
    return packed


def _run_pooled(run, large, threads, bar) -> list:
    """Score (work, block) pairs on ``threads`` worker threads, largest first; results in block order."""
    results: list = [None] * len(large)
    order = sorted(range(len(large)), key=lambda i: -large[i][0])
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {pool.submit(run, large[i][1], SERIAL): i for i in order}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return [part for block_parts in results for part in block_parts]


def _x_thresholds(layout: Layout, sampling: Subsampling) -> np.ndarray | None:
    if sampling.max_x_across is None or layout.condition.is_symmetric:
        return None
    return x_thresholds(
        sampling.seed,
        layout.run_start,
        layout.run_group,
        layout.run_phone,
        layout.group_runs,
        layout.group_by,
        layout.by_start,
        layout.group_across,
        int(sampling.max_x_across),
    )


def _run_of(layout: Layout, group: np.ndarray, phone: np.ndarray) -> np.ndarray:
    n_phones = len(layout.labels[layout.condition.on]) + 1
    keys = layout.run_group * n_phones + layout.run_phone
    return np.searchsorted(keys, group * n_phones + phone)
